"""Wrong types, None, huge or non-ASCII strings, invalid IPs, naive datetimes: always a clear
Python exception, never a crash or a pyo3 PanicException."""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from conftest import OFFICE, START, TrackedOrg, issue
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sessionward as sw

HUGE = "x" * 1_000_000
WEIRD_STRINGS = ["", " ", HUGE, "ünïcødé", "\ud800", "swd_" + "é" * 60, "\x00", "10.0.0.1\x00"]


def call_is_refused_cleanly(call: Any, *args: Any, **kwargs: Any) -> BaseException | None:
    """Runs the call; a refusal must be TypeError/ValueError/SessionwardError, short, and
    never a panic."""
    try:
        call(*args, **kwargs)
    except (TypeError, ValueError, sw.SessionwardError) as exc:
        assert type(exc).__name__ != "PanicException"
        assert len(str(exc)) < 400, "refused values are echoed shortened"
        return exc
    except BaseException as exc:  # pragma: no cover - the failure being tested for
        raise AssertionError(f"{type(exc).__name__}: {exc}") from exc
    return None


@pytest.mark.parametrize("token", [None, 42, b"bytes", 3.5, object(), ["list"]])
def test_non_string_tokens_are_type_errors(org: TrackedOrg, token: Any) -> None:
    for call in (org.validate, org.step_up):
        args = (token, OFFICE) if call is org.validate else (token, OFFICE, sw.LoginMethod.MFA)
        with pytest.raises(TypeError, match="token: expected str"):
            call(*args)
    with pytest.raises(TypeError):
        org.logout(token)
    with pytest.raises(TypeError):
        org.browser_closed(token)
    with pytest.raises(TypeError):
        org.complete_challenge(token)


@pytest.mark.parametrize("token", WEIRD_STRINGS)
def test_weird_token_strings_are_malformed(org: TrackedOrg, token: str) -> None:
    with pytest.raises(sw.MalformedToken):
        org.validate(token, OFFICE)
    with pytest.raises(sw.MalformedToken):
        org.logout(token)
    assert org.complete_challenge(token) == sw.Denied(sw.DenyReason.CHALLENGE_INVALID)


@pytest.mark.parametrize(
    "ip",
    ["", "banana", "10.0.0.256", "010.0.0.1", "fe80::1%eth0", "10.0.0.0/8", HUGE, "\ud800", "١٠.٠.٠.١"],
)
def test_invalid_ips_are_invalid_input_naming_the_value(org: TrackedOrg, ip: str) -> None:
    token = issue(org)
    for call, args in (
        (org.validate, (token, ip)),
        (org.login, ("ada", ip)),
        (org.step_up, (token, ip, sw.LoginMethod.MFA)),
    ):
        exc = call_is_refused_cleanly(call, *args)
        assert isinstance(exc, sw.InvalidInput) and isinstance(exc, ValueError)
        assert str(exc).startswith("ip:")


@pytest.mark.parametrize("ip", [None, 167772161, b"\n\x00\x00\x01", ipaddress.ip_network("10.0.0.0/8")])
def test_wrong_ip_types_are_type_errors(org: TrackedOrg, ip: Any) -> None:
    token = issue(org)
    with pytest.raises(TypeError, match="ip: expected str, ipaddress"):
        org.validate(token, ip)


def test_ipaddress_objects_and_mapped_addresses_are_accepted(org: TrackedOrg) -> None:
    token = issue(org)
    assert org.validate(token, ipaddress.ip_address(OFFICE)).user == "ada"
    assert org.validate(token, ipaddress.ip_address(f"::ffff:{OFFICE}")).user == "ada"
    v6 = issue(org, ip="2001:db8::1", method=sw.LoginMethod.MFA)
    assert org.validate(v6, "2001:db8::1").source_ip == ipaddress.ip_address("2001:db8::1")


@pytest.mark.parametrize("user", [None, 42, b"ada"])
def test_wrong_user_types(org: TrackedOrg, user: Any) -> None:
    for call, args in (
        (org.login, (user, OFFICE)),
        (org.add_user, (user, "staff")),
        (org.reset_password, (user,)),
        (org.remove_user, (user,)),
    ):
        with pytest.raises(TypeError, match="user: expected str"):
            call(*args)


@pytest.mark.parametrize("user", ["", "x" * 257, "a\nb", HUGE, "\ud800"])
def test_invalid_user_ids(org: TrackedOrg, user: str) -> None:
    exc = call_is_refused_cleanly(org.add_user, user, "staff")
    assert isinstance(exc, sw.InvalidInput)
    try:
        outcome = org.login(user, OFFICE)
    except sw.InvalidInput:  # not valid Unicode
        return
    assert outcome == sw.Denied(sw.DenyReason.UNKNOWN_USER)


def test_unicode_user_ids_work(org: TrackedOrg) -> None:
    org.add_user("zoë 🚀", "staff")
    token = issue(org, "zoë 🚀")
    assert org.validate(token, OFFICE).user == "zoë 🚀"


def test_enum_arguments_must_be_enums(org: TrackedOrg) -> None:
    with pytest.raises(TypeError):
        org.login("ada", OFFICE, method="password")
    with pytest.raises(TypeError):
        org.login("ada", OFFICE, session_type=0)
    token = issue(org)
    with pytest.raises(TypeError):
        org.validate(token, OFFICE, level=2)
    with pytest.raises(TypeError):
        org.validate(token, OFFICE, operation=5)
    with pytest.raises(TypeError):
        org.sessions(session_type="UI")


def test_settings_objects_must_be_the_right_class(org: TrackedOrg) -> None:
    with pytest.raises(TypeError):
        sw.Org({"inactivity_timeout": timedelta(hours=1)})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        org.update_settings(None)
    with pytest.raises(TypeError):
        org.add_profile("staff")
    with pytest.raises(TypeError):
        sw.Org(clock=1_700_000_000)  # type: ignore[arg-type]


def test_naive_datetimes_are_refused() -> None:
    clock = sw.ManualClock(0)
    with pytest.raises(sw.InvalidInput, match="naive datetime"):
        clock.set(datetime(2024, 5, 1, 12, 0))
    with pytest.raises(TypeError):
        clock.set("2024-05-01")
    with pytest.raises(TypeError):
        clock.set(True)
    with pytest.raises(sw.InvalidInput):
        clock.set(2**70)


#: The last second a clock may read: the engine keeps times as 32-bit seconds and needs room
#: for a 24 h session and 24 h of tombstone retention after it.
LAST_SECOND = 2**32 - 1 - 2 * 86_400


def test_clock_times_beyond_the_engines_range_are_refused() -> None:
    clock = sw.ManualClock(START)
    too_late = datetime(2200, 1, 1, tzinfo=timezone.utc)
    for bad in (LAST_SECOND + 1, 2**32 + 100, 2**63, 2**64, 2**70, -1, too_late):
        with pytest.raises(sw.InvalidInput, match=f"allowed range 0..={LAST_SECOND}") as refused:
            sw.ManualClock(bad)
        assert "2106-02-05T06:28:15Z" in str(refused.value)
        with pytest.raises(sw.InvalidInput, match=f"allowed range 0..={LAST_SECOND}"):
            clock.set(bad)
        assert clock.seconds == START
    with pytest.raises(sw.InvalidInput, match=f"allowed range 0..={LAST_SECOND}"):
        clock.advance(timedelta(seconds=LAST_SECOND - START + 1))
    assert clock.seconds == START


def test_the_last_second_of_the_clock_range_still_works() -> None:
    clock = sw.ManualClock(LAST_SECOND)
    assert clock.now() == datetime.fromtimestamp(LAST_SECOND, timezone.utc)
    settings = sw.OrgSettings(trusted_ranges=["10.0.0.0/8"], max_session_length=timedelta(hours=24))
    org = TrackedOrg(sw.Org(settings, clock=clock))
    org.add_profile(sw.Profile("staff"))
    org.add_user("ada", "staff")
    session = org.validate(issue(org), OFFICE)  # not refused as expired on arrival
    assert session.absolute_deadline == clock.now() + timedelta(hours=24)
    with pytest.raises(sw.InvalidInput):
        clock.advance(timedelta(seconds=1))
    clock.set(datetime(2024, 5, 1, tzinfo=timezone.utc))
    assert clock.seconds == 1_714_521_600


def test_scoped_ipv6_addresses_are_refused_as_objects_too(org: TrackedOrg) -> None:
    # SECURITY.md: zone ids are refused, so that the IP lock cannot be sidestepped by spelling.
    text = "fe80::1%eth0"
    scoped = ipaddress.IPv6Address(text)
    token = issue(org)
    for ip in (text, scoped):
        with pytest.raises(sw.InvalidInput, match="fe80::1"):
            org.validate(token, ip)
        with pytest.raises(sw.InvalidInput, match="fe80::1"):
            org.login("ada", ip)
        with pytest.raises(sw.InvalidInput):
            org.check_many([token], [ip])
        with pytest.raises(sw.InvalidInput):
            sw.Profile("p").allows(ip)
    assert isinstance(org.validate(token, ipaddress.IPv6Address("fe80::1")), sw.Session)


def test_redaction_helpers_take_any_str() -> None:
    assert sw.redact_tokens("\ud800 plain") is not None
    assert sw.redact_tokens(HUGE) == HUGE
    with pytest.raises(TypeError):
        sw.redact_tokens(None)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(token=st.text(max_size=80), ip=st.text(max_size=50), operation=st.none() | st.text(max_size=20))
def test_fuzzed_validate_never_crashes(org: TrackedOrg, token: str, ip: str, operation: str | None) -> None:
    call_is_refused_cleanly(org.validate, token, ip, operation)
    call_is_refused_cleanly(org.validate_many, [token, token], ip)
    call_is_refused_cleanly(org.sessions, ip=ip or None)
    call_is_refused_cleanly(org.end_session, token)
