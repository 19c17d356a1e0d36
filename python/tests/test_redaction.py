"""Tokens never appear in reprs, errors, events or logs; RedactTokens scrubs log records."""

from __future__ import annotations

import io
import logging

import pytest
from conftest import HOME, ISSUED, OFFICE, TrackedOrg, find_leaks, issue

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
