"""The sessionward bearer-token format, in pure Python.

A token is ``swd_`` + 11 base62 characters (the 64-bit selector, which locates
the session and is its public handle) + 43 base62 characters (the 32-byte secret
as one big-endian base-62 number, zero-padded) + 6 base62 characters encoding
``zlib.crc32`` of the first 58 characters as a fixed-width big-endian base-62
number: 64 characters in all. The alphabet is ``0-9A-Za-z`` in that order.

The checksum lets secret scanners, the job enqueue guard and the log-redaction
filter tell a real token from something that merely looks like one (a random
60-character base62 string passes the check with probability 2**-32).

This module never generates production tokens (the Rust core does, from a
CSPRNG); :func:`make_token_for_tests` exists so tests can build valid tokens
from ``os.urandom`` at run time instead of keeping token-shaped literals in
source files.
"""

from __future__ import annotations

import re
import zlib

__all__ = [
    "TOKEN_PATTERN",
    "find_tokens",
    "is_token",
    "make_token_for_tests",
    "redact",
]

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_INDEX = {c: i for i, c in enumerate(_ALPHABET)}
_PREFIX = "swd_"
_SELECTOR_LEN = 11
_SECRET_LEN = 43
_CRC_LEN = 6
_SECRET_AT = len(_PREFIX) + _SELECTOR_LEN  # 15
_CHECKED_LEN = _SECRET_AT + _SECRET_LEN  # 58: what the CRC covers
_TOKEN_LEN = _CHECKED_LEN + _CRC_LEN  # 64
_RANDOM_BYTES = 32
_REDACTED = "swd_[REDACTED]"

TOKEN_PATTERN: re.Pattern[str] = re.compile(
    r"(?:(?<![0-9A-Za-z])|(?<=%[0-9A-Fa-f]{2}))swd_[0-9A-Za-z]{60}(?![0-9A-Za-z])"
)
"""Finds token-shaped substrings.

The boundaries are base62 word boundaries: the match may not be preceded or
followed by a base62 character, except that a percent-escape (``%22``,
``%3D``) right before it counts as a separator, so URL-encoded leaks are
found. ``_`` is a separator too (unlike ``\b``). A match is only *shaped*
like a token; check it with :func:`is_token`, or use :func:`find_tokens` and
:func:`redact`, which verify the checksum.
"""

_EXACT = re.compile(r"swd_[0-9A-Za-z]{60}\Z")


def _encode(n: int, width: int) -> str:
    digits = []
    for _ in range(width):
        n, r = divmod(n, 62)
        digits.append(_ALPHABET[r])
    if n:
        raise ValueError(f"value does not fit in {width} base62 digits")
    return "".join(reversed(digits))


def _decode(s: str) -> int:
    n = 0
    for c in s:
        n = n * 62 + _INDEX[c]
    return n


def _checksum(head: str) -> str:
    return _encode(zlib.crc32(head.encode("ascii")) & 0xFFFFFFFF, _CRC_LEN)


def _checksum_ok(candidate: str) -> bool:
    # candidate is already known to be swd_ + 60 base62 characters
    return _checksum(candidate[:_CHECKED_LEN]) == candidate[_CHECKED_LEN:]


def is_token(s: str) -> bool:
    """Return True if ``s`` is exactly one well-formed token.

    Checks the prefix, the length, the alphabet, the checksum, that the selector
    is a nonzero number below 2**64 and that the secret is below 2**256 (i.e. came
    from 32 bytes).
    """
    if not isinstance(s, str) or len(s) != _TOKEN_LEN or _EXACT.match(s) is None:
        return False
    if not _checksum_ok(s):
        return False
    selector = _decode(s[len(_PREFIX) : _SECRET_AT])
    secret = _decode(s[_SECRET_AT:_CHECKED_LEN])
    return 0 < selector < (1 << 64) and secret < (1 << (8 * _RANDOM_BYTES))


def find_tokens(text: str) -> list[tuple[int, int]]:
    """Return the ``(start, end)`` spans of the tokens in ``text``.

    Only token-shaped substrings whose checksum is valid are reported, so
    ordinary text and identifiers that happen to start with ``swd_`` are not.
    """
    if _PREFIX not in text:
        return []
    return [m.span() for m in TOKEN_PATTERN.finditer(text) if _checksum_ok(m.group())]


def redact(text: str) -> str:
    """Replace every token in ``text`` (valid checksum) with ``swd_[REDACTED]``."""
    if _PREFIX not in text:
        return text

    def _sub(m: re.Match[str]) -> str:
        return _REDACTED if _checksum_ok(m.group()) else m.group()

    return TOKEN_PATTERN.sub(_sub, text)


def make_token_for_tests(rand_bytes: bytes) -> str:
    """Build a valid token from exactly 32 bytes (for tests: pass ``os.urandom(32)``).

    The bytes are the secret; the selector is taken from their first 8 bytes
    (nonzero), so different bytes give different selectors.
    """
    if not isinstance(rand_bytes, (bytes, bytearray)) or len(rand_bytes) != _RANDOM_BYTES:
        raise ValueError(f"rand_bytes must be {_RANDOM_BYTES} bytes")
    selector = int.from_bytes(rand_bytes[:8], "big") or 1
    head = (
        _PREFIX
        + _encode(selector, _SELECTOR_LEN)
        + _encode(int.from_bytes(rand_bytes, "big"), _SECRET_LEN)
    )
    return head + _checksum(head)
