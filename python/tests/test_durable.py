"""Org(path=...): sessions survive a restart; ended ones are not resurrected."""

from __future__ import annotations

import gc
import pathlib

import pytest
from conftest import OFFICE, TrackedOrg, issue

import sessionward as sw


def open_org(path: pathlib.Path, clock: sw.ManualClock) -> TrackedOrg:
    return TrackedOrg(
        sw.Org(sw.OrgSettings(trusted_ranges=["10.0.0.0/8"]), clock=clock, path=path)
    )


def test_sessions_survive_a_restart(tmp_path: pathlib.Path, clock: sw.ManualClock) -> None:
    path = tmp_path / "sessions.redb"
    org = open_org(path, clock)
    assert org.is_durable
    org.add_profile(sw.Profile("staff"))
    org.add_user("ada", "staff")
    kept, ended = issue(org), issue(org)
    org.logout(ended)
    org.flush_activity()
    assert org.store_error() is None
    del org
    gc.collect()
    again = open_org(path, clock)
    assert again.validate(kept, OFFICE).user == "ada"
    with pytest.raises((sw.SessionEnded, sw.UnknownSession)):
        again.validate(ended, OFFICE)
    assert sw.Org().is_durable is False


def test_unopenable_store_is_a_store_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(sw.StoreError) as refused:
        sw.Org(path=tmp_path / "missing-dir" / "sessions.redb")
    assert isinstance(refused.value, OSError)
    with pytest.raises(TypeError):
        sw.Org(path=42)  # type: ignore[arg-type]
