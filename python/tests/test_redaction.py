"""Tokens never appear in reprs, errors, events or logs; RedactTokens scrubs log records."""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest
from conftest import HOME, ISSUED, OFFICE, TrackedOrg, find_leaks, issue, remember_secret

import sessionward as sw


@pytest.fixture
def token(org: TrackedOrg) -> str:
    return issue(org)


def make_record(msg: object, *args: object, exc_info: object = None) -> logging.LogRecord:
    return logging.LogRecord("app", logging.INFO, __file__, 1, msg, args or None, exc_info)  # type: ignore[arg-type]


def test_filter_redacts_message_and_args(token: str) -> None:
    record = make_record(f"Authorization: Bearer {token}")
    assert RedactTokensResult(record).msg == "Authorization: Bearer swd_[REDACTED]"
    record = make_record("cookie=%s user=%s n=%d", token, "ada", 3)
    RedactTokensResult(record)
    assert record.args == ("swd_[REDACTED]", "ada", 3)
    assert record.getMessage() == "cookie=swd_[REDACTED] user=ada n=3"


def test_filter_redacts_non_string_args_and_mappings(token: str) -> None:
    headers = {"Authorization": f"Bearer {token}", "Accept": "*/*"}
    record = make_record("headers: %s", headers)
    RedactTokensResult(record)
    assert token not in record.getMessage() and "Accept" in record.getMessage()
    record = make_record("%(auth)s from %(ip)s", {"auth": token, "ip": OFFICE})
    RedactTokensResult(record)
    assert record.getMessage() == f"swd_[REDACTED] from {OFFICE}"


def test_filter_redacts_exception_text_and_leaves_clean_records_alone(token: str) -> None:
    try:
        raise RuntimeError(f"bad header {token}")
    except RuntimeError:
        import sys

        record = make_record("request failed", exc_info=sys.exc_info())
    RedactTokensResult(record)
    assert record.exc_text and token not in record.exc_text and "swd_[REDACTED]" in record.exc_text
    clean = make_record("user %s logged in", "ada")
    RedactTokensResult(clean)
    assert clean.args == ("ada",) and clean.msg == "user %s logged in"


def test_filter_on_a_handler_scrubs_propagated_records(token: str) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(sw.RedactTokens())
    parent = logging.getLogger("redaction-test")
    parent.addHandler(handler)
    try:
        logging.getLogger("redaction-test.child").warning("leaked %s and %r", token, [token])
    finally:
        parent.removeHandler(handler)
    output = stream.getvalue()
    assert token not in output and output.count("swd_[REDACTED]") == 2


def test_tokens_with_neighbouring_text_are_found_but_lookalikes_are_not(token: str) -> None:
    # Glued to more letters, a token is still a working credential to whoever reads the line.
    assert sw.redact_tokens(f"a{token}b") == "aswd_[REDACTED]b"
    assert sw.redact_tokens(f"({token})") == "(swd_[REDACTED])"
    corrupted = token[:-1] + ("0" if token[-1] != "0" else "1")
    assert sw.redact_tokens(corrupted) == corrupted, "bad checksum: not a token"


def test_reprs_and_errors_never_show_tokens(org: TrackedOrg) -> None:
    org.update_settings(org.settings.replace(high_assurance_operations=["setup"]))
    outcome = org.login("ada", OFFICE)
    challenge = org.login("ada", HOME)
    assert isinstance(outcome, sw.Issued) and isinstance(challenge, sw.ChallengeRequired)
    texts = [repr(outcome), str(outcome), repr(challenge), str(challenge), repr(outcome.session)]
    with pytest.raises(sw.StepUpRequired) as refused:
        org.validate(outcome.token, OFFICE, operation="setup")
    texts += [str(refused.value), repr(refused.value)]
    # Bad input that *contains* a token is echoed redacted.
    with pytest.raises(sw.InvalidInput) as bad_ip:
        org.validate(outcome.token, f"{outcome.token} ")
    texts.append(str(bad_ip.value))
    with pytest.raises(sw.InvalidInput) as bad_handle:
        org.end_session(outcome.token)
    texts.append(str(bad_handle.value))
    with pytest.raises(sw.UnknownUser) as unknown:
        org.reset_password(f"user {outcome.token}")
    texts.append(str(unknown.value))
    texts += [repr(event) for event in org.events()]
    assert not find_leaks(texts, {outcome.token, challenge.challenge})
    assert "swd_[REDACTED]" in str(bad_ip.value)


def token_fragments(token: str, width: int = 12) -> set[str]:
    """Every `width`-character piece of the token's random part: echoing any of them leaks
    part of the secret (and a piece one character short of the whole is the whole: the
    checksum at the end can be recomputed)."""
    body = token[len(sw.TOKEN_PREFIX) :]
    return {body[at : at + width] for at in range(len(body) - width + 1)}


def shows_token_text(text: str, token: str) -> bool:
    return any(fragment in text for fragment in token_fragments(token))


@pytest.mark.parametrize("enum", [sw.LoginMethod, sw.SecurityLevel, sw.EndReason, sw.DenyReason])
def test_enum_from_code_redacts_before_shortening(token: str, enum: Any) -> None:
    # Padding pushes the token's end past the 64-character echo limit: shortening first left
    # a token one or more characters short, which redaction no longer recognised. (Booleans
    # are asserted, so that a failure cannot print the token.)
    for padding in (" ", "  ", "x" * 6, "(" * 11, "é" * 3):
        with pytest.raises(sw.InvalidInput, match=enum.__name__) as refused:
            enum.from_code(padding + token)
        leaked = shows_token_text(str(refused.value), token) or shows_token_text(repr(refused.value), token)
        assert not leaked, f"from_code echoed part of a token after {len(padding)} characters"
        assert "swd_[REDACTED]" in str(refused.value)


def test_echoes_redact_tokens_cut_short_or_glued_to_more_text(token: str) -> None:
    # A token the caller cut short is no longer well-formed, yet all but its checksum's last
    # character is the credential; one glued to more letters is still a credential.
    for text in (token[:-1], token + "x", "x" + token, token + token, token[:30]):
        with pytest.raises(sw.InvalidInput) as refused:
            sw.LoginMethod.from_code(text)
        leaked = shows_token_text(str(refused.value), token)
        assert not leaked, "from_code echoed part of a token"
        assert "swd_[REDACTED]" in str(refused.value)


def test_settings_and_grant_reprs_redact_names_holding_tokens(org: TrackedOrg) -> None:
    token = issue(org)
    settings = sw.OrgSettings(high_assurance_operations=[f"op {token}", "setup"])
    kept = f"op {token}" in settings.high_assurance_operations
    assert kept, "the setting itself keeps the name"
    leaked = shows_token_text(repr(settings), token)
    assert not leaked, "OrgSettings repr shows part of a token"
    assert "'setup'" in repr(settings) and "swd_[REDACTED]" in repr(settings)
    secret = remember_secret(org.register_oauth_client("app", "bob", [f"s.{token}", "read"]))
    grant = org.grant_client_credentials("app", secret, None, OFFICE)
    remember_secret(grant.access_token)
    kept = f"s.{token}" in grant.scopes
    assert kept, "the grant itself keeps the scope"
    leaked = shows_token_text(repr(grant), token)
    assert not leaked, "Grant repr shows part of a token"
    assert "'read'" in repr(grant) and "swd_[REDACTED]" in repr(grant)


def test_the_leak_detector_detects_leaks(token: str) -> None:
    assert find_leaks([f"oops {token} here"], {token}) == {token}
    assert find_leaks(["swd_[REDACTED]", repr(token[:20])], {token}) == set()


def test_tracked_orgs_remember_issued_tokens(org: TrackedOrg) -> None:
    # The suite-wide leak check looks for the tokens tracked orgs handed out: the `org`
    # fixture must be a tracked one, and what it issues must be remembered.
    assert isinstance(org, TrackedOrg)
    assert issue(org) in ISSUED


def RedactTokensResult(record: logging.LogRecord) -> logging.LogRecord:  # noqa: N802
    """Runs the filter on `record`; the filter never drops a record."""
    assert sw.RedactTokens().filter(record) is True
    return record
