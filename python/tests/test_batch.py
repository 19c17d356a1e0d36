"""The batch APIs (`Org.validate_many`, `Org.check_many`) agree with `Org.validate` token by
token, for every refusal reason; `Session` keeps its names, equality and repr whatever path
made it; and the address fast path accepts exactly what the general parser accepts."""

from __future__ import annotations

import ipaddress
import os
import sys
import threading
from datetime import timedelta
from typing import Any

import pytest
from conftest import HOME, HOUR, OFFICE, OrgFactory, TrackedOrg, issue
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sessionward as sw

# Sessions validated from here are locked to OFFICE; "ranged" users may only come from 10/8.
ELSEWHERE = "10.9.9.9"


def outcome(org: TrackedOrg, token: object, ip: object, **kwargs: Any) -> sw.Session | sw.SessionError:
    """What `validate` returns, or the refusal it raises."""
    try:
        return org.validate(token, ip, **kwargs)  # type: ignore[no-any-return]
    except sw.SessionError as refusal:
        return refusal


def expected_code(result: sw.Session | sw.SessionError) -> int:
    """The code the `CHECK_CODES` table documents for a `validate` result."""
    if isinstance(result, sw.Session):
        return 0
    codes = {name: code for code, name in sw.CHECK_CODES.items()}
    code = codes[result.code]
    # The documented mapping from codes to exception classes and attributes.
    if 16 <= code < 32:
        assert isinstance(result, sw.SessionEnded)
        assert result.reason == sw.EndReason.members()[code - 16]
    else:
        expected = {
            1: sw.MalformedToken,
            2: sw.UnknownSession,
            3: sw.SessionExpired,
            4: sw.SessionExpired,
            5: sw.IpMismatch,
            6: sw.IpNotAllowed,
            7: sw.StepUpRequired,
        }[code]
        assert type(result) is expected
        if code in (3, 4):
            assert isinstance(result, sw.SessionExpired)
            assert result.kind == (sw.ExpiryKind.IDLE if code == 3 else sw.ExpiryKind.ABSOLUTE)
    return code


def same_result(a: object, b: object) -> bool:
    if isinstance(a, sw.Session):
        return a == b
    assert isinstance(a, sw.SessionError) and isinstance(b, sw.SessionError)
    return type(a) is type(b) and a.code == b.code and str(a) == str(b)


@pytest.fixture
def zoo(make_org: OrgFactory, clock: sw.ManualClock) -> tuple[TrackedOrg, list[object]]:
    """An org and a list of tokens (and non-tokens) covering every refusal reason."""
    org = make_org(
        profiles=(
            sw.Profile("staff"),
            sw.Profile("short", session_timeout=timedelta(minutes=15)),
            sw.Profile("ranged", login_ranges=["10.0.0.0/8"]),
            sw.Profile("capped", max_sessions_per_user=1),
            sw.Profile("doomed"),
        ),
        users={
            "ada": "staff",
            "bob": "staff",
            "cy": "staff",
            "dee": "short",
            "eve": "ranged",
            "fay": "capped",
            "gus": "staff",
            "hal": "doomed",
        },
        enforce_login_ranges_every_request=True,
        force_relogin_on_browser_close=True,
        high_assurance_operations=["setup"],
        max_session_length=timedelta(hours=1),
    )
    # Expired (absolute): issued first, then the clock passes the maximum session length.
    absolute = issue(org, "ada")
    clock.advance(timedelta(minutes=50))
    idle = issue(org, "dee")  # expires after 15 idle minutes
    clock.advance(timedelta(minutes=16))
    ranged = issue(org, "eve")  # not IP-locked; will be presented from HOME (outside 10/8)
    org.update_settings(org.settings.replace(lock_sessions_to_ip=True))
    valid = issue(org, "ada")
    mismatch = issue(org, "bob")  # will be presented from ELSEWHERE
    ended: dict[sw.EndReason, str] = {}
    ended[sw.EndReason.LOGOUT] = issue(org, "ada")
    org.logout(ended[sw.EndReason.LOGOUT])
    ended[sw.EndReason.ADMIN] = issue(org, "ada")
    org.end_session(org.validate(ended[sw.EndReason.ADMIN], OFFICE).handle)
    ended[sw.EndReason.PASSWORD_RESET] = issue(org, "cy")
    org.reset_password("cy")
    ended[sw.EndReason.BROWSER_CLOSED] = issue(org, "ada")
    assert org.browser_closed(ended[sw.EndReason.BROWSER_CLOSED])
    ended[sw.EndReason.SESSION_CAP] = issue(org, "fay")
    issue(org, "fay")
    ended[sw.EndReason.USER_REMOVED] = issue(org, "gus")
    org.remove_user("gus")
    ended[sw.EndReason.PROFILE_WIDE] = issue(org, "hal")
    org.end_profile_sessions("doomed")
    ended[sw.EndReason.SOURCE_RANGE] = issue(org, "bob", ip="10.200.0.1")
    org.end_sessions_from("10.200.0.0/16")
    other = sw.Org()
    other.add_profile(sw.Profile("p"))
    other.add_user("x", "p")
    foreign = other.login("x", "127.0.0.1")  # well-formed, but not this org's
    assert isinstance(foreign, sw.ChallengeRequired | sw.Issued)
    unknown = foreign.challenge if isinstance(foreign, sw.ChallengeRequired) else foreign.token
    assert sw.is_well_formed(unknown)
    tokens: list[object] = [
        valid,
        "garbage",
        None,
        42,
        "\ud800",
        valid[:-1],
        unknown,
        idle,
        absolute,
        mismatch,
        ranged,
        *ended.values(),
    ]
    assert set(ended) == set(sw.EndReason.members()) - {sw.EndReason.ORG_WIDE}
    return org, tokens


def ips_for(tokens: list[object], mismatch_index: int = 9, ranged_index: int = 10) -> list[str]:
    ips = [OFFICE] * len(tokens)
    ips[mismatch_index] = ELSEWHERE
    ips[ranged_index] = HOME
    return ips


def test_check_codes_table_is_documented_and_complete() -> None:
    codes = dict(sw.CHECK_CODES)
    assert codes[0] == "valid" and codes[255] == "refused"
    refusal_codes = {"malformed", "unknown", "expired_idle", "expired_absolute", "ip_mismatch",
                     "ip_not_allowed", "step_up_required"}
    refusal_codes |= {f"ended_{reason.code}" for reason in sw.EndReason.members()}
    assert set(codes.values()) == refusal_codes | {"valid", "refused"}
    for index, reason in enumerate(sw.EndReason.members()):
        assert codes[16 + index] == f"ended_{reason.code}"
    with pytest.raises(TypeError):
        sw.CHECK_CODES[0] = "changed"  # type: ignore[index]


def test_every_refusal_reason_agrees_with_validate(
    zoo: tuple[TrackedOrg, list[object]], clock: sw.ManualClock
) -> None:
    org, tokens = zoo
    ips = ips_for(tokens)
    codes = org.check_many(tokens, ips)
    many = org.validate_many(tokens, ips)
    single = [outcome(org, token, ip) if isinstance(token, str) else None
              for token, ip in zip(tokens, ips, strict=True)]
    assert isinstance(codes, bytes) and len(codes) == len(tokens) == len(many)
    for index, (code, batch, one) in enumerate(zip(codes, many, single, strict=True)):
        if one is None:  # not a str: validate raises TypeError, the batches say malformed
            assert code == 1 and isinstance(batch, sw.MalformedToken), index
            continue
        assert code == expected_code(one), (index, sw.CHECK_CODES[code], one)
        assert same_result(one, batch), index
    seen = {sw.CHECK_CODES[code] for code in codes}
    assert seen >= {"valid", "malformed", "unknown", "expired_idle", "expired_absolute",
                    "ip_mismatch", "ip_not_allowed", "ended_logout", "ended_source_range"}
    # A requirement applies to the whole batch: valid tokens need a step-up for "setup".
    for kwargs in ({"operation": "setup"}, {"level": sw.SecurityLevel.HIGH_ASSURANCE}):
        codes = org.check_many(tokens, ips, **kwargs)
        assert codes[0] == 7 and sw.CHECK_CODES[7] == "step_up_required"
        for token, ip, code in zip(tokens, ips, codes, strict=True):
            if isinstance(token, str):
                assert code == expected_code(outcome(org, token, ip, **kwargs))
    # Everything the org wide end leaves is ended_org_wide; malformed stays malformed.
    org.end_all_sessions()
    codes = org.check_many(tokens, ips)
    assert codes[0] == 16 + sw.EndReason.members().index(sw.EndReason.ORG_WIDE)
    assert codes[1] == 1


def test_check_many_refreshes_like_validate(org: TrackedOrg, clock: sw.ManualClock) -> None:
    token = issue(org)
    for _ in range(5):
        clock.advance(HOUR + timedelta(minutes=50))  # within the 2 h idle timeout each time
        assert org.check_many([token], OFFICE) == b"\x00"
    assert org.validate(token, OFFICE).last_activity == org.now()
    clock.advance(3 * HOUR)
    assert sw.CHECK_CODES[org.check_many([token], OFFICE)[0]] == "expired_idle"


def test_long_batches_split_over_threads_agree(org: TrackedOrg, clock: sw.ManualClock) -> None:
    tokens: list[object] = [issue(org, "ada" if i % 2 else "bob") for i in range(3000)]
    for index in range(0, 3000, 7):
        org.logout(tokens[index])
    for index in range(3, 3000, 11):
        tokens[index] = "not a token"
    tokens += [None] * 1500 + tokens[:2500]  # 7000 items: above the two-thread threshold
    ips = [OFFICE if i % 13 else HOME for i in range(len(tokens))]
    codes = org.check_many(tokens, ips)
    many = org.validate_many(tokens, ips)
    assert len(codes) == len(many) == len(tokens)
    for code, result in zip(codes, many, strict=True):
        assert code == expected_code(result)
    assert codes.count(0) == sum(isinstance(r, sw.Session) for r in many)
    assert 0 < codes.count(0) < len(codes)
    # One address for all, a tuple, a generator: the same verdicts.
    assert org.check_many(tuple(tokens), OFFICE) == org.check_many(iter(tokens), OFFICE)
    assert org.check_many(tokens, ipaddress.ip_address(OFFICE)) == org.check_many(tokens, OFFICE)
    assert org.check_many([], OFFICE) == b"" and org.check_many((), [OFFICE]) == b""


def test_check_many_bad_input(org: TrackedOrg) -> None:
    token = issue(org)
    with pytest.raises(TypeError, match="single str"):
        org.check_many(token, OFFICE)
    with pytest.raises(TypeError, match="iterable of str"):
        org.check_many(42, OFFICE)
    with pytest.raises(ValueError, match="2 addresses for 3 tokens"):
        org.check_many([token] * 3, [OFFICE, OFFICE])
    with pytest.raises(sw.InvalidInput, match=r"ips\[1\]"):
        org.check_many([token] * 2, [OFFICE, "not an ip"])
    with pytest.raises(TypeError, match=r"ips\[0\]"):
        org.check_many([token], [None])
    with pytest.raises(TypeError):
        org.check_many([token], None)
    with pytest.raises(TypeError, match="not both"):
        org.check_many([token], OFFICE, operation="x", level=sw.SecurityLevel.LOW)
    with pytest.raises(TypeError):
        org.check_many([token], OFFICE, operation=42)

    def broken() -> Any:
        yield token
        raise RuntimeError("iterator failed")

    with pytest.raises(RuntimeError, match="iterator failed"):
        org.check_many(broken(), OFFICE)
    # A token passed where an address goes is echoed redacted (the leak check sees this text).
    with pytest.raises(sw.InvalidInput) as bad:
        org.check_many([token], [token])
    assert token not in str(bad.value) and "swd_[REDACTED]" in str(bad.value)


class LyingList(list[object]):
    """A list whose `__len__` claims `claimed` items, whatever it holds."""

    claimed = 0

    def __len__(self) -> int:
        return self.claimed


class LyingTuple(tuple[object, ...]):
    claimed = 0

    def __len__(self) -> int:
        return self.claimed


@pytest.mark.parametrize("kind", [LyingList, LyingTuple])
@pytest.mark.parametrize("claimed", [0, 1, 1_000_000, 2**62, sys.maxsize])
def test_batches_of_list_and_tuple_subclasses_use_the_items_not_len(
    make_org: OrgFactory, kind: type[LyingList] | type[LyingTuple], claimed: int
) -> None:
    # Buffers sized from a lying `__len__` aborted the process (allocation failure) or raised
    # PanicException; a short lie read past the end (IndexError).
    org = make_org(lock_sessions_to_ip=True)
    token = issue(org)
    lying = type("Lying", (kind,), {"claimed": claimed})
    tokens = lying([token, "junk", token])
    assert len(tokens) == claimed
    assert org.check_many(tokens, OFFICE) == bytes([0, 1, 0])
    results = org.validate_many(tokens, OFFICE)
    assert [type(result) for result in results] == [sw.Session, sw.MalformedToken, sw.Session]
    ips = lying([OFFICE, OFFICE, HOME])
    assert org.check_many(tokens, ips) == bytes([0, 1, 5])
    results = org.validate_many(tokens, ips)
    assert [type(result) for result in results] == [sw.Session, sw.MalformedToken, sw.IpMismatch]


def test_batches_read_a_snapshot_of_a_list_changed_during_the_call(org: TrackedOrg) -> None:
    tokens = [issue(org) for _ in range(3000)]

    class Shrinking(ipaddress.IPv4Address):
        """An address whose conversion empties the caller's token list (runs Python code
        in the middle of the call)."""

        @property
        def packed(self) -> bytes:
            del batch[1:]
            return super().packed

    for call in (org.validate_many, org.check_many):
        batch = list(tokens)
        results = call(batch, Shrinking(OFFICE))
        assert len(batch) == 1 and len(results) == len(tokens)
    assert org.check_many(tokens, OFFICE) == bytes(len(tokens))


@pytest.mark.timeout(60)
def test_validate_many_is_unaffected_by_another_thread_shrinking_the_list(org: TrackedOrg) -> None:
    # validate_many lets other threads run between chunks: one that shortened the list made
    # the call fail with IndexError after earlier chunks had been validated (and refreshed).
    tokens = [issue(org) for _ in range(6000)]
    for _ in range(5):
        batch = list(tokens)
        start = threading.Event()

        def shrink(batch: list[str] = batch, start: threading.Event = start) -> None:
            start.wait()
            del batch[100:]

        thread = threading.Thread(target=shrink)
        thread.start()
        start.set()
        try:
            results = org.validate_many(batch, OFFICE)
        finally:
            thread.join()
        # Whichever ran first, the call saw one consistent list: all of it or the first 100.
        assert len(results) in (100, len(tokens))
        assert all(isinstance(result, sw.Session) for result in results)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    items=st.lists(st.one_of(st.text(max_size=70), st.none(), st.integers(), st.binary()), max_size=8),
    ip=st.one_of(st.text(max_size=40), st.sampled_from([OFFICE, HOME, "::1"])),
)
def test_fuzzed_check_many_never_crashes(org: TrackedOrg, items: list[object], ip: str) -> None:
    try:
        codes = org.check_many(items, ip)
    except (TypeError, ValueError) as exc:  # a bad address: never a panic
        assert type(exc).__name__ != "PanicException"
        assert isinstance(exc, sw.InvalidInput)
    else:
        assert codes == bytes([1]) * len(items)  # none of them is a token of this org


def test_sessions_keep_names_equality_and_repr_on_every_path(
    make_org: OrgFactory, clock: sw.ManualClock
) -> None:
    org = make_org(users={"ada": "staff", "ünï": "staff"}, high_assurance_operations=["setup"])
    outcome_ = org.login("ünï", OFFICE)
    assert isinstance(outcome_, sw.Issued)
    token = outcome_.token
    issued = outcome_.session
    one = org.validate(token, OFFICE)
    two = org.validate(token, OFFICE)
    (batch,) = org.validate_many([token], OFFICE)
    (row,) = org.sessions(user="ünï").rows
    stepped = org.step_up(token, OFFICE, sw.LoginMethod.MFA)
    for session in (issued, one, two, batch, row, stepped):
        assert isinstance(session, sw.Session)
        assert session.user == "ünï" and session.profile == "staff"
        assert repr(session).startswith(f"Session(handle='{one.handle}', user='ünï', profile='staff'")
    assert issued == one == two == batch == row and not one != two
    assert stepped != one and stepped.level == sw.SecurityLevel.HIGH_ASSURANCE
    assert one != "a string" and not one == None  # noqa: E711
    with pytest.raises(TypeError, match="unhashable"):
        hash(one)
    with pytest.raises(TypeError):
        one < two  # type: ignore[operator]  # noqa: B015
    clock.advance(timedelta(minutes=1))
    assert org.validate(token, OFFICE) != one  # last activity moved
    # Removing and re-adding a user and a profile: the new names are the ones shown.
    org.remove_user("ünï")
    with pytest.raises(sw.SessionEnded):
        org.validate(token, OFFICE)
    assert one.user == "ünï", "a result keeps the names it was made with"
    org.add_profile(sw.Profile("other"))
    org.add_user("ünï", "other")
    again = issue(org, "ünï")
    session = org.validate(again, OFFICE)
    assert (session.user, session.profile) == ("ünï", "other")
    org.move_user("ünï", "staff")
    assert org.validate(again, OFFICE).profile == "other", "sessions keep their profile"
    org.logout(again)
    org.remove_user("ünï")
    org.remove_profile("other")
    org.add_profile(sw.Profile("other", session_timeout=timedelta(minutes=30)))
    org.add_user("zed", "other")
    assert org.validate(issue(org, "zed"), OFFICE).profile == "other"


@pytest.mark.parametrize(
    "ip",
    ["10.1.2.3", "0.0.0.0", "255.255.255.255", "10.1.2.03", "10.1.2.256", "10.1.2", "10.1.2.3.4",
     "1000.1.2.3", "10..2.3", ".10.1.2", "10.1.2.", "10.1.2.3 ", " 10.1.2.3", "+10.1.2.3",
     "10.1.2.-3", "０.0.0.0", "10.1.2.3/32", "::ffff:10.1.2.3", "::1", "010.1.2.3", "00.0.0.0"],
)
def test_dotted_quads_parse_like_the_general_parser(make_org: OrgFactory, ip: str) -> None:
    check_address(make_org(lock_sessions_to_ip=True), ip)


def check_address(org: TrackedOrg, ip: str) -> None:
    """`validate` accepts `ip` exactly when `ipaddress` does, as the same address."""
    token = issue(org, ip=OFFICE)
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        address = None
    if address is None or "%" in ip:
        with pytest.raises(sw.InvalidInput):
            org.validate(token, ip)
        return
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address == ipaddress.ip_address(OFFICE):
        assert org.validate(token, ip).source_ip == address
    else:
        with pytest.raises(sw.IpMismatch):
            org.validate(token, ip)
    assert sw.CHECK_CODES[org.check_many([token], [ip])[0]] in ("valid", "ip_mismatch")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ip=st.text(alphabet="0123456789.", min_size=1, max_size=17) | st.from_regex(
    r"\A(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d|0\d)){3}\Z"))
def test_fuzzed_dotted_quads_parse_like_ipaddress(make_org: OrgFactory, ip: str) -> None:
    check_address(make_org(lock_sessions_to_ip=True), ip)


@pytest.mark.timeout(60)
def test_check_many_from_many_threads_agrees(org: TrackedOrg) -> None:
    tokens = [issue(org, "ada" if i % 2 else "bob") for i in range(1500)]
    for token in tokens[::5]:
        org.logout(token)
    expected = org.check_many(tokens, OFFICE)
    assert expected.count(0) == 1200
    failures: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(20):
                assert org.check_many(tokens, OFFICE) == expected
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=50)
    assert not any(thread.is_alive() for thread in threads), "check_many deadlocked"
    assert not failures


@pytest.mark.timeout(60)
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_check_many_works_in_a_forked_child(org: TrackedOrg) -> None:
    tokens = [issue(org) for _ in range(2000)]
    assert org.check_many(tokens, OFFICE) == bytes(2000)  # long: starts the helper thread
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        status = 1
        try:
            child = org.inner
            ok = child.check_many(tokens, OFFICE) == bytes(2000)
            child.logout(tokens[0])
            codes = child.check_many(tokens, OFFICE)
            ok = ok and codes[0] == 16 and codes.count(0) == 1999
            status = 0 if ok else 2
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert org.check_many(tokens, OFFICE) == bytes(2000), "the child's logout is its own"
