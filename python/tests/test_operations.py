"""Every Org operation and every refusal reason, through the Python API."""

from __future__ import annotations

import gc
import ipaddress
import logging
import weakref
from datetime import datetime, timedelta, timezone

import pytest
from conftest import HOME, HOUR, MINUTE, OFFICE, START, OrgFactory, TrackedOrg, issue, remember_secret

import sessionward as sw

UTC = timezone.utc


def describe(outcome: object) -> str:
    """A `match` over every login outcome, as an app would write it."""
    match outcome:
        case sw.Issued(token=token, session=session):
            assert sw.is_well_formed(token)
            return f"issued {session.user}"
        case sw.ChallengeRequired(challenge=challenge, expires_at=expires_at):
            assert sw.is_well_formed(challenge)
            return f"challenge until {expires_at:%H:%M}"
        case sw.StepUpRequired(required=required, current=current):
            return f"step up {current.name}->{required.name}"
        case sw.Denied(reason=reason):
            return f"denied {reason.code}"
    raise AssertionError(outcome)


# ----- login -------------------------------------------------------------------------------


def test_login_outcomes_match(make_org: OrgFactory) -> None:
    org = make_org(
        profiles=(
            sw.Profile("staff"),
            sw.Profile("admins", required_level=sw.SecurityLevel.HIGH_ASSURANCE),
            sw.Profile("office", login_ranges=["10.0.0.0/8"]),
        ),
        users={"ada": "staff", "root": "admins", "clerk": "office"},
    )
    assert describe(org.login("ada", OFFICE)) == "issued ada"
    assert describe(org.login("ada", HOME)) == "challenge until 22:23"
    assert describe(org.login("root", OFFICE)) == "step up STANDARD->HIGH_ASSURANCE"
    assert describe(org.login("root", OFFICE, method=sw.LoginMethod.MFA)) == "issued root"
    assert describe(org.login("clerk", HOME)) == "denied ip_not_allowed"
    assert describe(org.login("nobody", OFFICE)) == "denied unknown_user"


def test_issued_session_facts(org: TrackedOrg, clock: sw.ManualClock) -> None:
    outcome = org.login("ada", OFFICE, session_type=sw.SessionType.API)
    assert isinstance(outcome, sw.Issued)
    session = outcome.session
    assert session.handle.startswith("swh_") and len(session.handle) == 20
    assert session.user == "ada" and session.profile == "staff"
    assert session.session_type == sw.SessionType.API
    assert session.login_method == sw.LoginMethod.PASSWORD
    assert session.level == sw.SecurityLevel.STANDARD
    assert session.source_ip == ipaddress.ip_address(OFFICE)
    assert session.created == datetime.fromtimestamp(START, UTC)
    assert session.created.tzinfo is not None
    assert session.last_activity == session.created
    assert session.valid_until == session.created + 2 * HOUR
    assert session.absolute_deadline == session.created + 12 * HOUR
    assert session.idle_timeout == 2 * HOUR
    assert not session.ip_locked and not session.browser_bound
    assert not hasattr(session, "token")
    assert outcome.token not in repr(outcome) and "swd_[REDACTED]" in repr(outcome)


def test_challenge_then_complete_and_remembered_device(org: TrackedOrg) -> None:
    challenged = org.login("ada", HOME, device="laptop-1")
    assert isinstance(challenged, sw.ChallengeRequired)
    assert challenged.challenge not in repr(challenged)
    assert challenged.expires_at == datetime.fromtimestamp(START + 600, UTC)
    issued = org.complete_challenge(challenged.challenge, remember_device=True)
    assert isinstance(issued, sw.Issued)
    assert org.validate(issued.token, HOME).user == "ada"
    # The same challenge works once.
    again = org.complete_challenge(challenged.challenge)
    assert again == sw.Denied(sw.DenyReason.CHALLENGE_INVALID)
    # The remembered device is not challenged again; another device is.
    assert isinstance(org.login("ada", HOME, device="laptop-1"), sw.Issued)
    assert isinstance(org.login("ada", HOME, device="phone"), sw.ChallengeRequired)
    # A high-assurance method from outside is not challenged.
    assert isinstance(org.login("ada", HOME, method=sw.LoginMethod.PASSKEY), sw.Issued)


def test_remembered_devices_are_capped_oldest_first(org: TrackedOrg) -> None:
    def remember(device: str) -> None:
        challenged = org.login("ada", HOME, device=device)
        assert isinstance(challenged, sw.ChallengeRequired)
        issued = org.complete_challenge(challenged.challenge, remember_device=True)
        assert isinstance(issued, sw.Issued)

    def remembered(device: str) -> bool:
        return isinstance(org.login("ada", HOME, device=device), sw.Issued)

    devices = [f"device-{n}" for n in range(sw.MAX_REMEMBERED_DEVICES + 1)]
    assert sw.MAX_REMEMBERED_DEVICES == 32
    for device in devices[:-1]:
        remember(device)
    remember(devices[-1])
    assert not remembered(devices[0])
    assert all(remembered(device) for device in devices[1:])


def test_challenge_expires(org: TrackedOrg, clock: sw.ManualClock) -> None:
    challenged = org.login("ada", HOME)
    assert isinstance(challenged, sw.ChallengeRequired)
    clock.advance(11 * MINUTE)
    assert org.complete_challenge(challenged.challenge) == sw.Denied(
        sw.DenyReason.CHALLENGE_INVALID
    )


def test_step_up_outcome_is_a_value_and_an_exception_class(make_org: OrgFactory) -> None:
    org = make_org(
        profiles=(sw.Profile("admins", required_level=sw.SecurityLevel.HIGH_ASSURANCE),),
        users={"root": "admins"},
    )
    outcome = org.login("root", OFFICE)
    assert isinstance(outcome, sw.StepUpRequired) and isinstance(outcome, sw.SessionError)
    assert outcome.required == sw.SecurityLevel.HIGH_ASSURANCE
    assert outcome.current == outcome.offered == sw.SecurityLevel.STANDARD
    assert outcome.code == "step_up_required"
    assert "stronger method" in str(outcome)


def test_session_cap_end_oldest_and_refuse_new(make_org: OrgFactory) -> None:
    org = make_org(
        profiles=(
            sw.Profile("one", max_sessions_per_user=1),
            sw.Profile("strict", max_sessions_per_user=1, on_session_cap=sw.CapAction.REFUSE_NEW),
        ),
        users={"ada": "one", "bob": "strict"},
    )
    first = issue(org, "ada")
    second = issue(org, "ada")
    with pytest.raises(sw.SessionEnded) as ended:
        org.validate(first, OFFICE)
    assert ended.value.reason == sw.EndReason.SESSION_CAP
    assert org.validate(second, OFFICE).user == "ada"
    issue(org, "bob")
    assert org.login("bob", OFFICE) == sw.Denied(sw.DenyReason.SESSION_CAP)


# ----- validation and its refusals -----------------------------------------------------------


def test_validate_refreshes_activity_and_reports_valid_until(
    org: TrackedOrg, clock: sw.ManualClock
) -> None:
    token = issue(org)
    clock.advance(90 * MINUTE)
    session = org.validate(token, OFFICE)
    assert session.last_activity == datetime.fromtimestamp(START + 5400, UTC)
    assert session.valid_until == session.last_activity + 2 * HOUR


def test_malformed_and_unknown(org: TrackedOrg) -> None:
    token = issue(org)
    with pytest.raises(sw.MalformedToken) as malformed:
        org.validate("swd_" + "x" * 10, OFFICE)
    assert malformed.value.code == "malformed"
    flipped = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    with pytest.raises(sw.MalformedToken):
        org.validate(flipped, OFFICE)  # the checksum catches it
    other = TrackedOrg(sw.Org(sw.OrgSettings(trusted_ranges=["0.0.0.0/0"])))
    other.add_profile(sw.Profile("p"))
    other.add_user("u", "p")
    stranger = other.login("u", OFFICE)
    assert isinstance(stranger, sw.Issued)
    with pytest.raises(sw.UnknownSession) as unknown:
        org.validate(stranger.token, OFFICE)
    assert unknown.value.code == "unknown"


def test_idle_and_absolute_expiry(make_org: OrgFactory, clock: sw.ManualClock) -> None:
    org = make_org(inactivity_timeout=30 * MINUTE, max_session_length=HOUR)
    idle = issue(org)
    absolute = issue(org, "bob")
    clock.advance(29 * MINUTE)
    org.validate(absolute, OFFICE)
    clock.advance(2 * MINUTE)
    with pytest.raises(sw.SessionExpired) as expired:
        org.validate(idle, OFFICE)
    assert expired.value.kind == sw.ExpiryKind.IDLE and expired.value.code == "expired_idle"
    match expired.value:
        case sw.SessionExpired(kind=sw.ExpiryKind.IDLE):
            pass
        case _:
            raise AssertionError("SessionExpired must match on kind")
    for _ in range(3):
        clock.advance(20 * MINUTE)
        try:
            org.validate(absolute, OFFICE)
        except sw.SessionExpired as late:
            assert late.kind == sw.ExpiryKind.ABSOLUTE
            break
    else:
        raise AssertionError("the absolute timeout never hit")


def test_refused_requests_do_not_keep_a_session_alive(
    make_org: OrgFactory, clock: sw.ManualClock
) -> None:
    org = make_org(inactivity_timeout=30 * MINUTE, lock_sessions_to_ip=True)
    token = issue(org)
    clock.advance(20 * MINUTE)
    with pytest.raises(sw.IpMismatch):
        org.validate(token, "10.9.9.9")
    clock.advance(11 * MINUTE)
    with pytest.raises(sw.SessionExpired):
        org.validate(token, OFFICE)


def test_ip_lock(make_org: OrgFactory) -> None:
    org = make_org(lock_sessions_to_ip=True)
    token = issue(org)
    assert org.validate(token, OFFICE).ip_locked
    assert org.validate(token, f"::ffff:{OFFICE}").user == "ada"  # IPv4-mapped is the same
    with pytest.raises(sw.IpMismatch) as mismatch:
        org.validate(token, "10.1.2.4")
    assert mismatch.value.code == "ip_mismatch"


def test_login_ranges_enforced_every_request(make_org: OrgFactory) -> None:
    org = make_org(
        enforce_login_ranges_every_request=True,
        profiles=(sw.Profile("office", login_ranges=["10.0.0.0/8"]),),
        users={"ada": "office"},
    )
    token = issue(org)
    org.validate(token, "10.200.0.1")
    with pytest.raises(sw.IpNotAllowed) as refused:
        org.validate(token, HOME)
    assert refused.value.code == "ip_not_allowed"
    # Without enforcement, only the login is checked.
    org.update_settings(org.settings.replace(enforce_login_ranges_every_request=False))
    assert org.validate(token, HOME).user == "ada"


def test_high_assurance_operation_and_step_up(org: TrackedOrg) -> None:
    org.update_settings(org.settings.replace(high_assurance_operations=["setup"]))
    token = issue(org)
    org.validate(token, OFFICE, operation="reports")
    with pytest.raises(sw.StepUpRequired) as needed:
        org.validate(token, OFFICE, operation="setup")
    assert needed.value.required == sw.SecurityLevel.HIGH_ASSURANCE
    assert needed.value.current == sw.SecurityLevel.STANDARD
    with pytest.raises(sw.StepUpRequired):
        org.validate(token, OFFICE, level=sw.SecurityLevel.HIGH_ASSURANCE)
    raised = org.step_up(token, OFFICE, sw.LoginMethod.MFA)
    assert raised.level == sw.SecurityLevel.HIGH_ASSURANCE
    assert org.validate(token, OFFICE, operation="setup").level == sw.SecurityLevel.HIGH_ASSURANCE
    with pytest.raises(TypeError, match="not both"):
        org.validate(token, OFFICE, operation="setup", level=sw.SecurityLevel.LOW)


def test_step_up_is_refused_like_a_validation(org: TrackedOrg) -> None:
    with pytest.raises(sw.MalformedToken):
        org.step_up("nope", OFFICE, sw.LoginMethod.MFA)


# ----- ending sessions ---------------------------------------------------------------------


def ended_reason(org: TrackedOrg, token: str) -> sw.EndReason:
    with pytest.raises(sw.SessionEnded) as ended:
        org.validate(token, OFFICE)
    return ended.value.reason


def test_logout(org: TrackedOrg) -> None:
    token = issue(org)
    org.logout(token)
    assert ended_reason(org, token) == sw.EndReason.LOGOUT
    with pytest.raises(sw.SessionEnded):
        org.logout(token)


def test_browser_closed(make_org: OrgFactory) -> None:
    org = make_org(force_relogin_on_browser_close=True)
    ui = issue(org)
    api = issue(org, session_type=sw.SessionType.API)
    assert org.validate(ui, OFFICE).browser_bound
    assert org.browser_closed(ui) is True
    assert org.browser_closed(api) is False
    assert ended_reason(org, ui) == sw.EndReason.BROWSER_CLOSED
    org.validate(api, OFFICE)


def test_end_session_by_handle(org: TrackedOrg) -> None:
    token = issue(org)
    handle = org.validate(token, OFFICE).handle
    assert org.end_session(handle) is True
    assert org.end_session(handle) is False
    assert ended_reason(org, token) == sw.EndReason.ADMIN
    with pytest.raises(sw.InvalidInput, match="handle"):
        org.end_session("swh_xyz")


def test_reset_password_and_end_user_sessions(org: TrackedOrg) -> None:
    a1, a2, b = issue(org), issue(org), issue(org, "bob")
    assert org.reset_password("ada") == 2
    assert ended_reason(org, a1) == ended_reason(org, a2) == sw.EndReason.PASSWORD_RESET
    assert org.end_user_sessions("bob") == 1
    assert ended_reason(org, b) == sw.EndReason.ADMIN
    with pytest.raises(sw.UnknownUser):
        org.reset_password("nobody")


def test_end_profile_and_all_sessions(make_org: OrgFactory) -> None:
    org = make_org(
        profiles=(sw.Profile("staff"), sw.Profile("ops")),
        users={"ada": "staff", "bob": "ops"},
    )
    a, b = issue(org), issue(org, "bob")
    assert org.end_profile_sessions("ops") == 1
    assert ended_reason(org, b) == sw.EndReason.PROFILE_WIDE
    org.validate(a, OFFICE)
    with pytest.raises(sw.UnknownProfile):
        org.end_profile_sessions("nope")
    assert org.end_all_sessions() == 1
    assert ended_reason(org, a) == sw.EndReason.ORG_WIDE


def test_end_sessions_from_a_range(org: TrackedOrg) -> None:
    inside = issue(org, ip="10.1.0.1")
    outside = issue(org, ip="10.2.0.1")
    assert org.end_sessions_from("10.1.0.0/16") == 1
    with pytest.raises(sw.SessionEnded) as ended:
        org.validate(inside, "10.1.0.1")
    assert ended.value.reason == sw.EndReason.SOURCE_RANGE
    org.validate(outside, "10.2.0.1")
    assert org.end_sessions_from(ipaddress.ip_network("10.2.0.0/16")) == 1
    with pytest.raises(sw.InvalidInput):
        org.end_sessions_from("10.0.0.0/99")


# ----- directory -----------------------------------------------------------------------------


def test_users_and_profiles(org: TrackedOrg) -> None:
    org.add_profile(sw.Profile("ops", session_timeout=30 * MINUTE))
    assert sorted(org.profile_names()) == ["ops", "staff"]
    assert org.profile("ops").session_timeout == 30 * MINUTE
    with pytest.raises(sw.AlreadyExists):
        org.add_profile(sw.Profile("ops"))
    with pytest.raises(sw.AlreadyExists):
        org.add_user("ada", "staff")
    with pytest.raises(sw.UnknownProfile):
        org.add_user("cy", "nope")
    old = issue(org)
    org.move_user("ada", "ops")
    assert org.user_profile("ada") == "ops"
    new = issue(org)
    assert org.validate(old, OFFICE).profile == "staff", "existing sessions keep their profile"
    assert org.validate(new, OFFICE).idle_timeout == 30 * MINUTE
    org.update_profile(sw.Profile("ops", session_timeout=HOUR))
    assert org.validate(new, OFFICE).idle_timeout == 30 * MINUTE, "snapshot at creation"
    with pytest.raises(sw.ProfileInUse):
        org.remove_profile("ops")
    assert org.remove_user("ada") == 2
    with pytest.raises(sw.SessionEnded):
        org.validate(new, OFFICE)
    assert org.remove_profile("ops") == 0
    assert org.user_count() == 1
    with pytest.raises(sw.UnknownUser):
        org.user_profile("ada")


def test_results_name_their_user_beyond_the_name_cache_bound(org: TrackedOrg) -> None:
    # The binding caches each user's id `str` (an array indexed by the engine's user key) and
    # starts the cache over after 65,536 names: every result must name its own user before,
    # across and after that reset, in any order.
    count = 70_000
    users = [f"user{i}" for i in range(count)]
    for user in users:
        org.add_user(user, "staff")
    tokens = [issue(org, user) for user in users]
    order = list(range(count))
    order = order[::2] + order[1::2][::-1]
    for index in order:
        assert org.validate(tokens[index], OFFICE).user == users[index]
    results = org.validate_many([tokens[i] for i in order[:5_000]], OFFICE)
    assert [result.user for result in results if isinstance(result, sw.Session)] == [
        users[i] for i in order[:5_000]
    ]


def test_tightening_a_timeout_changes_only_new_sessions(
    org: TrackedOrg, clock: sw.ManualClock
) -> None:
    before = issue(org)
    org.update_settings(org.settings.replace(inactivity_timeout=15 * MINUTE))
    after = issue(org)
    clock.advance(20 * MINUTE)
    org.validate(before, OFFICE)
    with pytest.raises(sw.SessionExpired):
        org.validate(after, OFFICE)


# ----- listing, sweep, stats, events --------------------------------------------------------


def test_sessions_filters_and_pagination(org: TrackedOrg) -> None:
    for _ in range(5):
        issue(org)
    issue(org, "bob", ip="10.9.0.1", session_type=sw.SessionType.API)
    page = org.sessions(limit=4)
    assert page.total == 6 and len(page) == 4 and page.next is not None
    rest = org.sessions(limit=4, after=page.next)
    assert len(rest.rows) == 2 and rest.next is None
    handles = [row.handle for row in list(page) + rest.rows]
    assert handles == sorted(handles) and len(set(handles)) == 6
    assert org.sessions(user="bob").total == 1
    assert org.sessions(ip="10.9.0.0/16").total == 1
    assert org.sessions(ip="10.9.0.1").total == 1
    assert org.sessions(ip=ipaddress.ip_address(OFFICE)).total == 5
    assert org.sessions(profile="staff").total == 6
    assert org.sessions(session_type=sw.SessionType.API).total == 1
    assert org.sessions(level=sw.SecurityLevel.HIGH_ASSURANCE).total == 0
    row = org.sessions(user="bob").rows[0]
    assert (row.user, row.profile, row.session_type) == ("bob", "staff", sw.SessionType.API)
    assert isinstance(row.created, datetime)
    with pytest.raises(sw.UnknownUser):
        org.sessions(user="nobody")
    for bad in (0, -5, 10_001, 2**70, -(2**70)):
        with pytest.raises(sw.InvalidInput, match="limit: .* outside the allowed range 1..=10000"):
            org.sessions(limit=bad)
    for wrong in ("5", 5.0, None):
        with pytest.raises(TypeError, match="limit: expected int"):
            org.sessions(limit=wrong)
    with pytest.raises(sw.InvalidInput):
        org.sessions(after="not-a-handle")


def test_sweep_and_stats(make_org: OrgFactory, clock: sw.ManualClock) -> None:
    org = make_org(inactivity_timeout=15 * MINUTE)
    for _ in range(3):
        issue(org)
    stats = org.stats()
    assert stats.live == 3 and stats.records == 3
    assert stats.at_home == 3, "each login took a selector whose slot was free"
    assert "at_home=3" in repr(stats)
    clock.advance(16 * MINUTE)
    assert org.stats().live == 0
    swept = org.sweep()
    assert swept.expired == 3 and swept.shards == 256
    assert org.sweep(shards=4).shards == 4
    clock.advance(2 * HOUR)
    assert org.sweep().removed == 3
    assert org.stats().records == 0


def test_events_never_carry_tokens(org: TrackedOrg, clock: sw.ManualClock) -> None:
    token = issue(org)
    org.login("nobody", HOME)
    org.logout(token)
    events = org.events()
    kinds = [event.kind for event in events]
    assert kinds == ["created", "login_denied", "ended"]
    created, denied, ended = events
    assert created.user == "ada" and created.ip == ipaddress.ip_address(OFFICE)
    assert created.level == sw.SecurityLevel.STANDARD
    assert created.session_type == sw.SessionType.UI
    assert created.at == datetime.fromtimestamp(START, UTC)
    assert denied.reason == "unknown_user" and denied.handle is None
    assert ended.reason == "logout" and ended.handle == created.handle
    assert org.events() == []
    for event in events:
        assert token not in repr(event)


def test_subscribe_delivers_events_and_logs_callback_errors(
    org: TrackedOrg, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[sw.Event] = []

    def broken(event: sw.Event) -> None:
        raise RuntimeError("callback bug")

    org.subscribe(seen.append)
    org.subscribe(broken)
    with caplog.at_level(logging.ERROR, logger="sessionward"):
        token = issue(org)
        org.validate(token, OFFICE)
        org.end_all_sessions()
    assert [event.kind for event in seen] == ["created", "ended"]
    assert seen[1].reason == "org_wide"
    failures = [r for r in caplog.records if r.name == "sessionward"]
    assert len(failures) == 2 and "callback bug" in caplog.text
    assert org.unsubscribe(broken) and not org.unsubscribe(broken)
    with pytest.raises(TypeError, match="callable"):
        org.subscribe(42)
    issue(org)
    assert len(seen) == 3


def test_a_cycle_through_a_subscribed_callback_is_collected() -> None:
    # Org -> bound method -> App -> Org: without GC support in Org, the cycle (and the whole
    # session table) was never freed.
    delivered: list[str] = []

    class App:
        def __init__(self) -> None:
            self.org = sw.Org(sw.OrgSettings(trusted_ranges=["10.0.0.0/8"]))
            self.org.add_profile(sw.Profile("staff"))
            self.org.add_user("ada", "staff")
            self.org.subscribe(self.on_event)

        def on_event(self, event: sw.Event) -> None:
            delivered.append(event.kind)

    app = App()
    gc.collect()  # traversing a live Org must not disturb its callbacks
    outcome = app.org.login("ada", OFFICE)
    assert isinstance(outcome, sw.Issued) and delivered == ["created"]
    app.org.logout(remember_secret(outcome.token))
    assert delivered == ["created", "ended"]
    apps = weakref.ref(app)
    del app, outcome
    gc.collect()
    assert apps() is None, "the Org <-> callback cycle was not collected"


def test_validate_many(org: TrackedOrg, clock: sw.ManualClock) -> None:
    tokens = [issue(org) for _ in range(2500)]
    ended = tokens[7]
    org.logout(ended)
    batch = tokens + ["garbage", None, ended]
    results = org.validate_many(batch, OFFICE)
    assert len(results) == len(batch)
    sessions = results[: len(tokens)]
    assert all(isinstance(r, sw.Session) for i, r in enumerate(sessions) if i != 7)
    assert isinstance(results[7], sw.SessionEnded) and results[7].reason == sw.EndReason.LOGOUT
    assert isinstance(results[-3], sw.MalformedToken)
    assert isinstance(results[-2], sw.MalformedToken)
    assert isinstance(results[-1], sw.SessionEnded)
    # One address per token, as a tuple or list, and a generator of tokens.
    per_token = org.validate_many((t for t in tokens[:3]), [OFFICE, OFFICE, "10.0.0.1"])
    assert all(isinstance(r, sw.Session) for r in per_token)
    assert org.validate_many([], OFFICE) == []
    with pytest.raises(ValueError, match="2 addresses for 3 tokens"):
        org.validate_many(tokens[:3], [OFFICE, OFFICE])
    with pytest.raises(sw.InvalidInput, match=r"ips\[1\]"):
        org.validate_many(tokens[:2], [OFFICE, "not an ip"])
    with pytest.raises(TypeError, match="single str"):
        org.validate_many(tokens[0], OFFICE)
    # Step-up requirements apply to the batch.
    refused = org.validate_many(tokens[:2], OFFICE, level=sw.SecurityLevel.HIGH_ASSURANCE)
    assert all(isinstance(r, sw.StepUpRequired) for r in refused)
    clock.advance(3 * HOUR)
    assert all(isinstance(r, sw.SessionExpired) for r in org.validate_many(tokens[:5], OFFICE))


def test_manual_clock(clock: sw.ManualClock) -> None:
    assert clock.now() == datetime.fromtimestamp(START, UTC)
    clock.advance(timedelta(seconds=90))
    assert clock.seconds == START + 90
    clock.set(datetime(2030, 1, 1, tzinfo=UTC))
    assert clock.now() == datetime(2030, 1, 1, tzinfo=UTC)
    org = sw.Org(clock=clock)
    assert org.now() == clock.now()
    with pytest.raises(sw.InvalidInput, match="naive datetime"):
        sw.ManualClock(datetime(2030, 1, 1))
    with pytest.raises(sw.SettingsError, match="negative"):
        clock.advance(timedelta(seconds=-1))
    with pytest.raises(TypeError):
        clock.advance(5)  # type: ignore[arg-type]
    with pytest.raises(sw.InvalidInput):
        sw.ManualClock(-1)
    assert abs(sw.ManualClock().now() - datetime.now(UTC)) < timedelta(minutes=1)


def test_org_construction_checks_shards() -> None:
    with pytest.raises(sw.SettingsError, match="shards"):
        sw.Org(shards=3)
    assert sw.Org(shards=1).stats().capacity >= 0
    assert "Org(" in repr(sw.Org())


def test_expected_sessions_take_their_room_at_construction() -> None:
    assert sw.Org(shards=4).stats().capacity == 0
    reserved = sw.Org(shards=4, expected_sessions=10_000)
    room = reserved.stats().capacity
    assert room * 7 >= 10_000 * 8
    with pytest.raises(sw.SettingsError, match="expected_sessions"):
        sw.Org(expected_sessions=100_000_001)
    with pytest.raises(OverflowError):
        sw.Org(expected_sessions=-1)
