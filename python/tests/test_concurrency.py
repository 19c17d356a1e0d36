"""Threads and fork: one Org shared by many Python threads, and across os.fork()."""

from __future__ import annotations

import json
import os
import threading

import pytest
from conftest import OFFICE, OrgFactory, TrackedOrg, issue, remember_secret

import sessionward as sw


@pytest.mark.timeout(60)  # a timeout here means a deadlock
def test_eight_threads_validate_login_and_end_concurrently(make_org: OrgFactory) -> None:
    users = {f"user{i}": "staff" for i in range(8)}
    org = make_org(users={**users, "shared": "staff"})
    shared = [issue(org, "shared") for _ in range(8)]
    events: list[sw.Event] = []
    org.subscribe(events.append)  # callbacks run while other threads are in the engine
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def worker(index: int) -> None:
        try:
            user = f"user{index}"
            start.wait()
            mine = []
            for round_ in range(150):
                mine.append(issue(org, user))
                org.validate(mine[-1], OFFICE)
                results = org.validate_many(shared + mine[-5:], OFFICE)
                assert len(results) == len(shared) + min(5, len(mine))
                if round_ % 10 == 0:
                    org.logout(mine.pop(0))
                if round_ % 50 == 49:
                    org.end_user_sessions(user)
                    mine.clear()
                    assert org.sessions(user=user).total == 0
                if index == 0 and round_ % 30 == 0:
                    org.sweep(shards=16)
                    org.stats()
                    org.events()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=50)
        assert not thread.is_alive(), "deadlock: a worker did not finish"
    assert not errors, errors[0]
    # The shared sessions were only validated, never ended.
    assert all(isinstance(r, sw.Session) for r in org.validate_many(shared, OFFICE))
    assert sum(event.kind == "created" for event in events) == 8 * 150


@pytest.mark.timeout(60)
def test_bulk_ends_release_the_gil_without_losing_sessions(make_org: OrgFactory) -> None:
    org = make_org()
    stop = threading.Event()
    count = [0]

    def issuer() -> None:
        while not stop.is_set():
            issue(org, "bob")
            count[0] += 1

    thread = threading.Thread(target=issuer)
    thread.start()
    try:
        ended = sum(org.end_all_sessions() for _ in range(50))
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert ended + org.stats().live == count[0]


def read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.timeout(60)
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_child_keeps_working_and_never_repeats_parent_tokens(org: TrackedOrg) -> None:
    # Tokens issued before the fork, as under gunicorn --preload after a warm-up.
    before = [issue(org) for _ in range(50)]
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        status = 1
        try:
            os.close(read_end)
            child = org.inner
            tokens = []
            for _ in range(200):
                outcome = child.login("ada", OFFICE)
                assert isinstance(outcome, sw.Issued)
                tokens.append(outcome.token)
            inherited_ok = all(
                isinstance(r, sw.Session) for r in child.validate_many(before, OFFICE)
            )
            os.write(write_end, json.dumps({"tokens": tokens, "inherited": inherited_ok}).encode())
            status = 0
        finally:
            os.close(write_end)
            os._exit(status)
    os.close(write_end)
    payload = read_all(read_end)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    child = json.loads(payload)
    for token in child["tokens"]:
        remember_secret(token)
    assert child["inherited"], "the child could not validate sessions issued before the fork"
    after = [issue(org) for _ in range(200)]
    parent = set(before) | set(after)
    assert len(set(child["tokens"])) == 200
    assert not parent & set(child["tokens"]), "parent and child issued the same token"
    # Each process's table is its own after the fork: the parent does not know the child's.
    with pytest.raises(sw.UnknownSession):
        org.validate(child["tokens"][0], OFFICE)
