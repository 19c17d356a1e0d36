"""The pure-Python token format helpers (sessionward._tokens).

Tokens are generated at run time from os.urandom; no token-shaped literal is
kept in any file (test_no_token_literals_in_python_tree checks that).
"""

from __future__ import annotations

import os
import pathlib
import zlib

import pytest

from sessionward._tokens import (
    TOKEN_PATTERN,
    find_tokens,
    is_token,
    make_token_for_tests,
    redact,
)

DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def reference_base62(n: int, width: int) -> str:
    """An independent (recursive) base62 encoder, to check the module against."""
    s = "" if n == 0 else reference_base62(n // 62, 0) + DIGITS[n % 62]
    return s.rjust(width, "0")


def reference_token(raw: bytes) -> str:
    selector = int.from_bytes(raw[:8], "big") or 1
    head = (
        "swd_"
        + reference_base62(selector, 11)
        + reference_base62(int.from_bytes(raw, "big"), 43)
    )
    return head + reference_base62(zlib.crc32(head.encode()), 6)


def fresh() -> str:
    return make_token_for_tests(os.urandom(32))


def with_checksum(head58: str) -> str:
    return head58 + reference_base62(zlib.crc32(head58.encode()), 6)


def test_generated_tokens_match_the_documented_format() -> None:
    for _ in range(50):
        raw = os.urandom(32)
        token = make_token_for_tests(raw)
        assert token == reference_token(raw)
        assert len(token) == 64
        assert token.startswith("swd_")
        assert is_token(token)


def test_edge_values_encode_big_endian_zero_padded() -> None:
    assert make_token_for_tests(bytes(32))[4:15] == "0" * 10 + "1"  # selector 0 -> 1
    assert make_token_for_tests(bytes(32))[15:58] == "0" * 43
    assert make_token_for_tests(bytes(31) + b"\x01")[15:58] == "0" * 42 + "1"
    assert make_token_for_tests(bytes(31) + b"\x3e")[15:58] == "0" * 41 + "10"
    assert make_token_for_tests(b"\x00" * 7 + b"\x3e" + bytes(24))[4:15] == "0" * 9 + "10"
    top = make_token_for_tests(b"\xff" * 32)
    assert top == reference_token(b"\xff" * 32)
    assert is_token(top)


def test_make_token_needs_exactly_32_bytes() -> None:
    with pytest.raises(ValueError):
        make_token_for_tests(os.urandom(31))
    with pytest.raises(ValueError):
        make_token_for_tests(os.urandom(33))


def test_is_token_rejects_every_kind_of_damage() -> None:
    token = fresh()
    assert not is_token(token[:-1])
    assert not is_token(token + "0")
    assert not is_token("swx_" + token[4:])
    assert not is_token(" " + token[1:])
    assert not is_token(token[:10] + "-" + token[11:])
    # every single-character change in the body or checksum is caught
    for i in range(4, 64):
        replacement = "0" if token[i] != "0" else "1"
        assert not is_token(token[:i] + replacement + token[i + 1 :]), i
    assert not is_token(token.encode())  # type: ignore[arg-type]


def test_is_token_rejects_a_body_that_no_32_bytes_produce() -> None:
    over = with_checksum("swd_" + "1" * 11 + "z" * 43)  # 62**43 - 1 > 2**256
    assert not is_token(over)
    # it still looks like a leaked token to the scanner (which checks the checksum only)
    assert find_tokens(over) == [(0, 64)]
    big_selector = with_checksum("swd_" + "LygHa16AHYG" + "0" * 43)  # selector 2**64
    assert not is_token(big_selector)
    zero_selector = with_checksum("swd_" + "0" * 11 + "1" * 43)
    assert not is_token(zero_selector)


def test_find_tokens_reports_spans_of_valid_tokens_only() -> None:
    a, b = fresh(), fresh()
    broken = b[:-1] + ("0" if b[-1] != "0" else "1")
    text = f"cookie={a}; other={broken}, Bearer {b}\n"
    spans = find_tokens(text)
    assert [text[s:e] for s, e in spans] == [a, b]


def test_boundaries_are_base62_boundaries() -> None:
    token = fresh()
    assert find_tokens("x" + token) == []  # glued to a longer base62 run: not a token
    assert find_tokens(token + "x") == []
    assert find_tokens("_" + token) == [(1, 65)]
    assert find_tokens("%22" + token + "%22") == [(3, 67)]  # URL-encoded quotes
    assert find_tokens("token%3D" + token) == [(8, 72)]
    assert find_tokens("2" + token) == []
    assert TOKEN_PATTERN.search("(" + token + ")") is not None


def test_redact_replaces_valid_tokens_and_nothing_else() -> None:
    a, b = fresh(), fresh()
    shaped = "swd_" + "A" * 60  # token-shaped, checksum almost surely invalid
    if is_token(shaped):  # pragma: no cover - 2**-32
        pytest.skip("astronomically unlucky")
    text = f"a={a} b={b} c={shaped} d=swd_short"
    out = redact(text)
    assert a not in out and b not in out
    assert out == f"a=swd_[REDACTED] b=swd_[REDACTED] c={shaped} d=swd_short"
    assert redact(out) == out
    assert redact("nothing here") == "nothing here"


def test_no_token_literals_in_python_tree() -> None:
    root = pathlib.Path(__file__).resolve().parents[1]
    offenders = []
    for path in root.rglob("*"):
        if path.is_file() and path.suffix in {".py", ".pyi", ".md", ".txt", ".toml", ".cfg"}:
            if find_tokens(path.read_text(encoding="utf-8", errors="replace")):
                offenders.append(str(path))
    assert offenders == []
