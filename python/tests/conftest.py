"""Shared fixtures of the sessionward tests, and the suite-wide token-leak check.

Every `Org` the tests get from the `make_org` / `org` fixtures is wrapped in `TrackedOrg`,
which records the `repr` and `str` of everything an operation returns or raises, and
remembers every issued token and challenge secret. A session-scoped autouse fixture also
captures every log record of the run. At the end of the session, no remembered secret may
appear in any recorded text: a token in a repr, an exception message, an event or a log line
fails the run.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

import sessionward as sw

START = 1_700_000_000
OFFICE = "10.1.2.3"
HOME = "192.0.2.7"

#: Every token and challenge secret the tests were handed.
ISSUED: set[str] = set()
#: Every repr/str of a returned or raised object, and every log line.
TEXTS: list[str] = []
#: How many `TrackedOrg`s the run made: a run that made none (say, only the README's blocks)
#: has nothing for the leak check to have seen.
TRACKED_ORGS = 0
_lock = threading.Lock()

# Built from the module's constants, not literals: the token length may change.
_TOKEN_SHAPE = re.compile(
    re.escape(sw.TOKEN_PREFIX) + f"[0-9A-Za-z]{{{sw.TOKEN_LEN - len(sw.TOKEN_PREFIX)}}}"
)


def remember_secret(secret: str) -> str:
    """Adds a token (or challenge secret) to those that must never leak."""
    with _lock:
        ISSUED.add(secret)
    return secret


def record_text(obj: object) -> None:
    """Records the repr and str of `obj` (and of the items of a list) for the leak check."""
    items = obj if isinstance(obj, list) else [obj]
    texts = []
    for item in items:
        if isinstance(item, sw.Issued):
            remember_secret(item.token)
        elif isinstance(item, sw.ChallengeRequired):
            remember_secret(item.challenge)
        elif isinstance(item, sw.Grant):
            remember_secret(item.access_token)
        texts.append(repr(item))
        texts.append(str(item))
        if isinstance(item, BaseException):
            texts.extend(str(arg) for arg in item.args)
    with _lock:
        TEXTS.extend(texts)


def find_leaks(texts: list[str], secrets: set[str]) -> set[str]:
    """The secrets that appear in any of `texts`."""
    found: set[str] = set()
    for text in texts:
        found.update(_TOKEN_SHAPE.findall(text))
    return found & secrets


#: Org methods whose return value is a secret by design.
_RETURNS_SECRET = frozenset({"register_oauth_client"})


class TrackedOrg:
    """An `Org` whose every result and exception is recorded for the leak check."""

    def __init__(self, org: sw.Org) -> None:
        global TRACKED_ORGS
        self.inner = org
        with _lock:
            TRACKED_ORGS += 1

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if not callable(attribute):
            record_text(attribute)
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                result = attribute(*args, **kwargs)
            except BaseException as exc:
                record_text(exc)
                raise
            if name in _RETURNS_SECRET:
                # The return value is the secret itself, handed out by design (like
                # Issued.token): remember it so any later appearance counts as a leak.
                remember_secret(result)
            else:
                record_text(result)
            return result

        return call

    def __repr__(self) -> str:
        return repr(self.inner)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.lines: list[str] = []
        self.formatter_ = logging.Formatter("%(name)s %(levelname)s %(message)s")

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.formatter_.format(record))
        except Exception:  # a record that cannot be formatted is still recorded raw
            self.lines.append(f"{record.msg!r} {record.args!r}")


@pytest.fixture(scope="session", autouse=True)
def no_token_leaks() -> Iterator[None]:
    """Captures every log record of the run; at the end, no issued token may appear anywhere."""
    handler = _Collect()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    leaks = find_leaks(TEXTS + handler.lines, ISSUED)
    # Compare the count, not the set: a failing `assert not leaks` would print the tokens.
    assert len(leaks) == 0, f"{len(leaks)} issued token(s) leaked into reprs, errors or logs"
    # Tracked orgs that never issued a token would mean the check saw nothing. (Whether the
    # suite still tracks its orgs at all is `test_tracked_orgs_remember_issued_tokens`.)
    assert ISSUED or not TRACKED_ORGS, "the leak check saw no issued token from tracked orgs"


@pytest.fixture
def clock() -> sw.ManualClock:
    return sw.ManualClock(START)


OrgFactory = Callable[..., TrackedOrg]


@pytest.fixture
def make_org(clock: sw.ManualClock) -> OrgFactory:
    """Builds a tracked Org on the test's manual clock, with profile "staff" and users
    "ada" and "bob" unless told otherwise. Settings are OrgSettings keyword arguments;
    by default 10.0.0.0/8 is trusted (no challenge from OFFICE)."""

    def build(
        *,
        profiles: tuple[sw.Profile, ...] = (sw.Profile("staff"),),
        users: dict[str, str] | None = None,
        shards: int | None = None,
        **settings: Any,
    ) -> TrackedOrg:
        settings.setdefault("trusted_ranges", ["10.0.0.0/8"])
        org = TrackedOrg(sw.Org(sw.OrgSettings(**settings), clock=clock, shards=shards))
        for profile in profiles:
            org.add_profile(profile)
        for user, profile_name in (users or {"ada": "staff", "bob": "staff"}).items():
            org.add_user(user, profile_name)
        return org

    return build


@pytest.fixture
def org(make_org: OrgFactory) -> TrackedOrg:
    return make_org()


def issue(org: TrackedOrg, user: str = "ada", ip: str = OFFICE, **kwargs: Any) -> str:
    """Logs `user` in and returns the token (failing the test if no session was issued)."""
    outcome = org.login(user, ip, **kwargs)
    assert isinstance(outcome, sw.Issued), outcome
    return outcome.token


MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
