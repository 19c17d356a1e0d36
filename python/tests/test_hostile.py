"""Hostile input through the Python API: every kind of bad input gets a clear exception and
leaves the org exactly as it was (same sessions, same counts, no events)."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sessionward as sw
from conftest import OFFICE, OrgFactory, TrackedOrg, issue, remember_secret
from sessionward._tokens import make_token_for_tests


def snapshot(org: TrackedOrg) -> tuple[Any, ...]:
    """Everything an operation could have changed, as comparable values."""
    page = org.sessions(limit=1000)
    rows = [(s.handle, s.user, s.level, s.last_activity, s.valid_until) for s in page.rows]
    stats = org.stats()
    return (page.total, rows, stats.live, stats.records, org.user_count(), org.profile_names())


@pytest.fixture
def busy_org(make_org: OrgFactory) -> TrackedOrg:
    org = make_org(lock_sessions_to_ip=True, high_assurance_operations=["setup"])
    for _ in range(3):
        issue(org, "ada")
    issue(org, "bob")
    org.events()  # start from an empty event buffer
    return org


def unchanged(org: TrackedOrg, before: tuple[Any, ...]) -> None:
    assert snapshot(org) == before
    assert org.events() == [], "a refused input must not emit audit events"


def test_tokens_with_a_valid_checksum_but_unknown(busy_org: TrackedOrg) -> None:
    before = snapshot(busy_org)
    for _ in range(200):
        forged = make_token_for_tests(os.urandom(32))
        assert sw.is_well_formed(forged)
        with pytest.raises(sw.UnknownSession):
            busy_org.validate(forged, OFFICE)
        with pytest.raises(sw.UnknownSession):
            busy_org.logout(forged)
    unchanged(busy_org, before)


@pytest.mark.parametrize(
    "token",
    [
        "Bearer swd_",
        "ghp_" + "a" * 36,  # another vendor's token format
        "eyJhbGciOiJIUzI1NiJ9.e30.sig",  # a JWT
        "swd_" + "0" * 60,  # the right shape, a wrong checksum
        "SWD_" + "a" * 60,
        " " * 64,
        "swd_" + "\u0430" * 60,  # Cyrillic look-alikes
        "x" * 10_000_000,  # enormous
    ],
)
def test_tokens_of_other_formats_are_malformed(busy_org: TrackedOrg, token: str) -> None:
    before = snapshot(busy_org)
    with pytest.raises(sw.MalformedToken):
        busy_org.validate(token, OFFICE)
    with pytest.raises(sw.MalformedToken):
        busy_org.step_up(token, OFFICE, sw.LoginMethod.MFA)
    unchanged(busy_org, before)


@pytest.mark.parametrize(
    ("field", "value", "ok"),
    [
        ("inactivity_timeout", timedelta(minutes=15) - timedelta(seconds=1), False),
        ("inactivity_timeout", timedelta(minutes=15), True),
        ("inactivity_timeout", timedelta(hours=24), True),
        ("inactivity_timeout", timedelta(hours=24, seconds=1), False),
        ("inactivity_timeout", timedelta(days=-1), False),
        ("inactivity_timeout", timedelta.max, False),
        ("max_session_length", timedelta(minutes=59, seconds=59), False),
        ("max_session_length", timedelta(hours=1), True),
        ("max_session_length", timedelta(hours=24, microseconds=1), False),
    ],
)
def test_near_boundary_durations(busy_org: TrackedOrg, field: str, value: timedelta, ok: bool) -> None:
    before = snapshot(busy_org)
    old = busy_org.settings
    if ok:
        assert getattr(sw.OrgSettings(**{field: value}), field) == value
        return
    with pytest.raises(sw.SettingsError) as refused:
        busy_org.update_settings(sw.OrgSettings(**{field: value}))
    assert field in str(refused.value)
    assert busy_org.settings == old
    unchanged(busy_org, before)


def test_ipv4_mapped_ipv6_is_the_same_address_for_lock_and_ranges(make_org: OrgFactory) -> None:
    org = make_org(
        profiles=(sw.Profile("staff", login_ranges=["10.0.0.0/8"]),),
        lock_sessions_to_ip=True,
        enforce_login_ranges_every_request=True,
    )
    token = issue(org, "ada", "::ffff:10.0.0.1")
    session = org.validate(token, "10.0.0.1")
    assert str(session.source_ip) == "10.0.0.1"
    org.validate(token, "::ffff:10.0.0.1")
    org.validate(token, "::ffff:a00:1")
    with pytest.raises(sw.IpMismatch):
        org.validate(token, "::ffff:10.0.0.2")
    # Login ranges: the mapped form of an outside address is still outside.
    assert isinstance(org.login("bob", "::ffff:192.0.2.1"), sw.Denied)
    assert org.end_sessions_from("::ffff:10.0.0.0/104") == 1


@pytest.mark.parametrize(
    "ip",
    ["fe80::1%eth0", "10.0.0.1%1", "010.000.000.001", "10.0.0.01", "0x0a.0.0.1", "10.1", "1e1.0.0.1",
     "10.0.0.1/32", " 10.0.0.1", "10.0.0.1\n", "::ffff:10.0.0.1%eth0", "1" * 100_000],
)
def test_zone_ids_leading_zeros_and_odd_spellings_are_refused(busy_org: TrackedOrg, ip: str) -> None:
    before = snapshot(busy_org)
    token = issue(busy_org, "ada")
    before = snapshot(busy_org)
    busy_org.events()
    with pytest.raises(sw.InvalidInput) as refused:
        busy_org.validate(token, ip)
    assert len(str(refused.value)) < 300, "the error echoes a bounded prefix only"
    with pytest.raises(sw.InvalidInput):
        busy_org.login("ada", ip)
    unchanged(busy_org, before)


@pytest.mark.parametrize("cidr", ["10.0.0.0/33", "10.0.0.0/", "::/129", "fe80::/10%eth0", "x" * 1_000_000, ""])
def test_malformed_cidrs_change_nothing(busy_org: TrackedOrg, cidr: str) -> None:
    before = snapshot(busy_org)
    with pytest.raises((sw.InvalidInput, sw.SettingsError)):
        busy_org.end_sessions_from(cidr)
    with pytest.raises(sw.SettingsError):
        sw.Profile("p", login_ranges=[cidr])
    unchanged(busy_org, before)


def test_enormous_names_are_refused_without_echoing_them(busy_org: TrackedOrg) -> None:
    huge = "u" * 5_000_000
    before = snapshot(busy_org)
    for call in (
        lambda: busy_org.add_user(huge, "staff"),
        lambda: busy_org.reset_password(huge),
        lambda: busy_org.sessions(user=huge),
        lambda: busy_org.add_profile(sw.Profile(huge)),
        lambda: busy_org.end_session(huge),
    ):
        with pytest.raises(sw.SessionwardError) as refused:
            call()
        assert len(str(refused.value)) < 400
    assert len(busy_org.events()) <= 0
    unchanged(busy_org, before)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    token=st.one_of(st.text(max_size=120), st.binary(max_size=120).map(lambda b: b.decode("latin-1"))),
    ip=st.one_of(st.ip_addresses().map(str), st.text(max_size=60)),
    operation=st.none() | st.text(max_size=40),
)
def test_random_unicode_and_bytes_leave_the_org_unchanged(
    busy_org: TrackedOrg, token: str, ip: str, operation: str | None
) -> None:
    before = snapshot(busy_org)
    try:
        busy_org.validate(token, ip, operation=operation)
    except (sw.SessionError, sw.InvalidInput, sw.SettingsError):
        pass
    else:  # pragma: no cover - a random string is never a live token
        pytest.fail("a random string validated")
    unchanged(busy_org, before)


def test_forged_tokens_are_recognised_by_the_redaction_filter() -> None:
    forged = remember_secret(make_token_for_tests(os.urandom(32)))
    assert sw.redact_tokens(f"Cookie: sid={forged}") == "Cookie: sid=swd_[REDACTED]"
