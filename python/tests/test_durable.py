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


def test_oauth_clients_and_grants_survive_a_restart(tmp_path: pathlib.Path, clock: sw.ManualClock) -> None:
    path = tmp_path / "sessions.redb"
    org = open_org(path, clock)
    org.add_profile(sw.Profile("integrations"))
    org.add_user("erp-bot", "integrations")
    secret = org.register_oauth_client("erp", "erp-bot", ["orders.read", "orders.write"])
    gone = org.register_oauth_client("gone", "erp-bot", ["x"])
    assert org.remove_oauth_client("gone") is True
    token = org.grant_client_credentials("erp", secret, "orders.read", "10.0.0.9").access_token
    assert org.store_error() is None
    del org
    gc.collect()
    again = open_org(path, clock)
    assert again.oauth_clients() == [("erp", "erp-bot", ["orders.read", "orders.write"])]
    # The secret from before the restart still works; the removed client stays removed.
    assert again.grant_client_credentials("erp", secret, None, "10.0.0.9").scopes == [
        "orders.read",
        "orders.write",
    ]
    with pytest.raises(sw.OAuthError) as refused:
        again.grant_client_credentials("gone", gone, None, "10.0.0.9")
    assert refused.value.code == "invalid_client"
    # The token granted before the restart keeps exactly its scope.
    granted = again.authorize_access_token(token, "10.0.0.9", "orders.read")
    assert (granted.client_id, granted.scopes) == ("erp", ["orders.read"])
    with pytest.raises(sw.OAuthError) as refused:
        again.authorize_access_token(token, "10.0.0.9", "orders.write")
    assert refused.value.code == "insufficient_scope"


def test_remembered_devices_survive_a_restart(tmp_path: pathlib.Path, clock: sw.ManualClock) -> None:
    path = tmp_path / "sessions.redb"
    outside = "203.0.113.5"
    org = open_org(path, clock)
    org.add_profile(sw.Profile("staff"))
    org.add_user("ada", "staff")
    challenged = org.login("ada", outside, device="laptop-1")
    assert isinstance(challenged, sw.ChallengeRequired)
    assert isinstance(org.complete_challenge(challenged.challenge, remember_device=True), sw.Issued)
    assert org.store_error() is None
    del org
    gc.collect()
    again = open_org(path, clock)
    assert isinstance(again.login("ada", outside, device="laptop-1"), sw.Issued)
    assert isinstance(again.login("ada", outside, device="phone"), sw.ChallengeRequired)
    assert b"laptop-1" not in path.read_bytes()
