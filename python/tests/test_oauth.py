"""The org as an OAuth 2.0 token endpoint: registered clients, the client-credentials grant,
and grants as OAUTH2 sessions under the integration user's profile policy; access tokens
checked with their scopes (`Org.authorize_access_token`), revoked per client, and one session
read by handle (`Org.session`)."""

from __future__ import annotations

import os
from typing import Any

import pytest
from test_redaction import shows_token_text

import sessionward as sw
from conftest import HOUR, MINUTE, OFFICE, OrgFactory, find_leaks, issue, remember_secret, record_text
from sessionward._tokens import make_token_for_tests


@pytest.fixture
def integration_org(make_org: OrgFactory) -> object:
    return make_org(
        profiles=(sw.Profile("integrations", login_ranges=["10.0.0.0/8"]),),
        users={"erp-bot": "integrations"},
    )


def test_grant_is_an_oauth2_session_listed_and_ended_like_any_other(integration_org: object) -> None:
    org = integration_org
    secret = remember_secret(org.register_oauth_client("erp", "erp-bot", ["orders.read", "orders.write"]))
    assert org.oauth_clients() == [("erp", "erp-bot", ["orders.read", "orders.write"])]
    grant = org.grant_client_credentials("erp", secret, "orders.read", OFFICE)
    remember_secret(grant.access_token)
    record_text(grant)
    assert grant.scopes == ["orders.read"]
    assert grant.expires_in == 2 * 3600
    assert grant.session.session_type == sw.SessionType.OAUTH2
    assert grant.session.login_method == sw.LoginMethod.CLIENT_CREDENTIALS
    assert grant.session.level == sw.SecurityLevel.LOW
    assert "swd_[REDACTED]" in repr(grant)
    session = org.validate(grant.access_token, OFFICE)
    assert session.user == "erp-bot"
    page = org.sessions(user="erp-bot")
    assert page.total == 1
    assert org.end_user_sessions("erp-bot") == 1
    with pytest.raises(sw.SessionEnded):
        org.validate(grant.access_token, OFFICE)


@pytest.mark.parametrize(
    ("client", "use_secret", "scope", "ip", "code"),
    [
        ("erp", False, None, OFFICE, "invalid_client"),
        ("crm", True, None, OFFICE, "invalid_client"),
        ("erp", True, "orders.read admin", OFFICE, "invalid_scope"),
        ("erp", True, None, "192.0.2.1", "unauthorized_client"),
    ],
)
def test_refused_grants_carry_the_rfc_code_and_no_secret(
    integration_org: object, client: str, use_secret: bool, scope: str | None, ip: str, code: str
) -> None:
    org = integration_org
    secret = remember_secret(org.register_oauth_client("erp", "erp-bot", ["orders.read"]))
    presented = secret if use_secret else "wrong-secret"
    with pytest.raises(sw.OAuthError) as caught:
        org.grant_client_credentials(client, presented, scope, ip)
    record_text(caught.value)
    assert caught.value.code == code
    assert secret not in str(caught.value)


def test_rotation_and_removal_invalidate_the_old_secret(integration_org: object) -> None:
    org = integration_org
    first = remember_secret(org.register_oauth_client("erp", "erp-bot", ["a"]))
    second = remember_secret(org.register_oauth_client("erp", "erp-bot", ["a"]))
    with pytest.raises(sw.OAuthError):
        org.grant_client_credentials("erp", first, None, OFFICE)
    remember_secret(org.grant_client_credentials("erp", second, None, OFFICE).access_token)
    assert org.remove_oauth_client("erp") is True
    with pytest.raises(sw.OAuthError):
        org.grant_client_credentials("erp", second, None, OFFICE)


def test_bad_registrations_are_refused(integration_org: object) -> None:
    org = integration_org
    with pytest.raises(sw.SettingsError):
        org.register_oauth_client("erp", "erp-bot", ["has space"])
    with pytest.raises(sw.InvalidInput):
        org.grant_client_credentials("erp", "x", None, "not-an-ip")
    with pytest.raises(TypeError):
        org.grant_client_credentials("erp", 42, None, OFFICE)
    # A space-separated string (the grant's `scope` form) is not a list of scopes.
    single = r"scopes: expected an iterable of str \(scope names\), got a single str"
    with pytest.raises(TypeError, match=single):
        org.register_oauth_client("erp", "erp-bot", "orders.read orders.write")
    with pytest.raises(TypeError, match=r"scopes\[1\]: expected str, got int"):
        org.register_oauth_client("erp", "erp-bot", ["orders.read", 5])
    with pytest.raises(TypeError, match="scopes: expected an iterable of str"):
        org.register_oauth_client("erp", "erp-bot", 5)
    assert org.oauth_clients() == []
    remember_secret(org.register_oauth_client("erp", "erp-bot", (scope for scope in ("b", "a"))))
    assert org.oauth_clients() == [("erp", "erp-bot", ["a", "b"])]


def test_named_credential_pointing_at_the_org_in_process(integration_org: object) -> None:
    """A job's named credential with the org as its in-process token endpoint: one grant is
    cached and reused, the token is an OAUTH2 session, and a refused grant is a clear
    CredentialError without the secret."""
    from sessionward import credentials, jobs

    org = integration_org
    secret = remember_secret(org.register_oauth_client("erp", "erp-bot", ["orders.read"]))
    registry = credentials.CredentialRegistry()
    registry.register(
        credentials.NamedCredential(
            "SELF",
            "http://127.0.0.1:9",
            credentials.OrgClientCredentials(org.inner, "erp", secret, ["orders.read"], client_ip=OFFICE),
        )
    )

    def job() -> tuple[str, str]:
        ctx = jobs.current_context()
        assert ctx.session_id is None
        first = ctx.credentials["SELF"].headers()["Authorization"]
        second = ctx.credentials["SELF"].headers()["Authorization"]
        return first, second

    first, second = jobs.run_job(job, kind=jobs.JobKind.QUEUEABLE, credentials=registry)
    assert first == second, "the grant is cached"
    token = remember_secret(first.removeprefix("Bearer "))
    assert org.validate(token, OFFICE).session_type == sw.SessionType.OAUTH2
    assert org.sessions(user="erp-bot").total == 1
    assert "swd_" not in repr(registry) and secret not in repr(credentials.OrgClientCredentials(org.inner, "erp", secret))

    wrong = credentials.CredentialRegistry()
    wrong.register(
        credentials.NamedCredential(
            "SELF", "http://127.0.0.1:9", credentials.OrgClientCredentials(org.inner, "erp", "nope")
        )
    )
    with pytest.raises(credentials.CredentialError) as refused:
        jobs.run_job(lambda: jobs.current_context().credentials["SELF"].headers(), kind="batch", credentials=wrong)
    assert refused.value.oauth_error == "invalid_client"
    assert secret not in str(refused.value)


# ----------------------------------------------------------------------------- access tokens


@pytest.fixture
def resource_org(make_org: OrgFactory) -> Any:
    """An org with two clients running as the same integration user, and a staff user."""
    org = make_org(
        profiles=(sw.Profile("integrations", login_ranges=["10.0.0.0/8"]), sw.Profile("staff")),
        users={"erp-bot": "integrations", "ada": "staff"},
    )
    org.secrets = {
        client: remember_secret(org.register_oauth_client(client, "erp-bot", ["orders.read", "orders.write"]))
        for client in ("erp", "crm")
    }
    return org


def access_token(org: Any, scope: str | None, client: str = "erp") -> sw.Grant:
    grant: sw.Grant = org.grant_client_credentials(client, org.secrets[client], scope, OFFICE)
    remember_secret(grant.access_token)
    return grant


def test_authorize_returns_the_session_client_and_every_granted_scope(resource_org: Any) -> None:
    org = resource_org
    grant = access_token(org, "orders.read orders.write")
    for scope in (None, "", "orders.read", "orders.write orders.read", ["orders.read"], (name for name in ["orders.write"])):
        authorized = org.authorize_access_token(grant.access_token, OFFICE, scope)
        assert isinstance(authorized, sw.AccessGrant)
        assert authorized.client_id == "erp"
        assert authorized.scopes == ["orders.read", "orders.write"], "every granted scope, sorted"
        assert authorized.session.handle == grant.session.handle
        assert authorized.session.session_type == sw.SessionType.OAUTH2
    assert org.authorize_access_token(grant.access_token, OFFICE).client_id == "erp"  # scope defaults to None
    text = repr(authorized)
    assert text.startswith("AccessGrant(client_id='erp', scopes=['orders.read', 'orders.write'], session=Session(")
    assert grant.access_token not in text and "swd_" not in text


@pytest.mark.parametrize("scope", ["orders.write", "orders.read orders.write", ["orders.read", "orders.write"]])
def test_a_scope_not_granted_is_insufficient_scope(resource_org: Any, scope: Any) -> None:
    org = resource_org
    grant = access_token(org, "orders.read")
    with pytest.raises(sw.OAuthError) as refused:
        org.authorize_access_token(grant.access_token, OFFICE, scope)
    assert refused.value.code == "insufficient_scope"
    assert '"orders.write"' in str(refused.value), "the message names the missing scope"
    assert not isinstance(refused.value, sw.SessionError)
    # Granted by another client with that scope: still this token's scopes that count.
    assert access_token(org, "orders.write", client="crm").scopes == ["orders.write"]
    with pytest.raises(sw.OAuthError):
        org.authorize_access_token(grant.access_token, OFFICE, scope)


def test_a_token_with_no_scope_passes_only_without_a_required_scope(resource_org: Any) -> None:
    org = resource_org
    grant = access_token(org, "")
    assert grant.scopes == []
    assert org.authorize_access_token(grant.access_token, OFFICE, None).scopes == []
    assert org.authorize_access_token(grant.access_token, OFFICE, []).scopes == []
    with pytest.raises(sw.OAuthError, match="insufficient_scope"):
        org.authorize_access_token(grant.access_token, OFFICE, "orders.read")


def refusal_of(call: Any) -> BaseException:
    try:
        call()
    except sw.SessionwardError as refused:
        return refused
    raise AssertionError("the call was not refused")


def test_a_session_refusal_is_what_validate_raises(resource_org: Any, clock: sw.ManualClock) -> None:
    org = resource_org
    unknown = make_token_for_tests(os.urandom(32))
    ended = access_token(org, "orders.read")
    org.end_session(ended.session.handle)
    idle = access_token(org, "orders.read")
    cases = {"malformed": "not-a-token", "unknown": unknown, "ended_admin": ended.access_token}
    for code, token in cases.items():
        for scope in (None, "orders.read", "orders.write"):
            # Refused as invalid_token whatever the scope asked: never insufficient_scope.
            by_authorize = refusal_of(lambda: org.authorize_access_token(token, OFFICE, scope))
            by_validate = refusal_of(lambda: org.validate(token, OFFICE))
            assert type(by_authorize) is type(by_validate), (code, scope)
            assert isinstance(by_authorize, sw.SessionError) and by_authorize.code == code
    clock.advance(HOUR * 3)  # past the 2 h inactivity timeout
    expired = refusal_of(lambda: org.authorize_access_token(idle.access_token, OFFICE, "orders.write"))
    assert isinstance(expired, sw.SessionExpired) and expired.kind == sw.ExpiryKind.IDLE
    assert isinstance(refusal_of(lambda: org.validate(idle.access_token, OFFICE)), sw.SessionExpired)


def test_a_browser_sessions_token_is_not_an_access_token(resource_org: Any) -> None:
    org = resource_org
    token = issue(org, "ada")
    with pytest.raises(sw.OAuthError) as refused:
        org.authorize_access_token(token, OFFICE)
    assert refused.value.code == "invalid_token"
    assert "not an access token" in str(refused.value)
    assert org.validate(token, OFFICE).user == "ada", "the session itself is fine"


def test_a_refused_scope_does_not_refresh_last_activity(resource_org: Any, clock: sw.ManualClock) -> None:
    org = resource_org
    grant = access_token(org, "orders.read")
    handle = grant.session.handle
    created = grant.session.last_activity
    clock.advance(MINUTE * 10)
    with pytest.raises(sw.OAuthError):
        org.authorize_access_token(grant.access_token, OFFICE, "orders.write")
    with pytest.raises(sw.OAuthError):
        org.authorize_access_token(grant.access_token, OFFICE, ["orders.read", "orders.write"])
    assert org.session(handle).last_activity == created, "a refused request kept the session alive"
    passed = org.authorize_access_token(grant.access_token, OFFICE, "orders.read")
    assert passed.session.last_activity == created + MINUTE * 10
    assert org.session(handle).last_activity == created + MINUTE * 10


def test_authorize_argument_errors(resource_org: Any) -> None:
    org = resource_org
    grant = access_token(org, "orders.read")
    with pytest.raises(TypeError, match=r"scope\[1\]: expected str, got int"):
        org.authorize_access_token(grant.access_token, OFFICE, ["orders.read", 5])
    with pytest.raises(TypeError, match=r"scope: expected an iterable of str \(scope names\), got int"):
        org.authorize_access_token(grant.access_token, OFFICE, 5)
    with pytest.raises(TypeError, match="token: expected str, got bytes"):
        org.authorize_access_token(grant.access_token.encode(), OFFICE)
    with pytest.raises(sw.InvalidInput):
        org.authorize_access_token(grant.access_token, "not-an-ip")


def test_revoke_ends_one_clients_tokens_and_leaves_the_others(resource_org: Any) -> None:
    org = resource_org
    erp = [access_token(org, "orders.read") for _ in range(2)]
    crm = access_token(org, "orders.read", client="crm")
    ui = issue(org, "ada")
    assert org.revoke_oauth_client("erp") == 2
    for grant in erp:
        with pytest.raises(sw.SessionEnded) as ended:
            org.authorize_access_token(grant.access_token, OFFICE)
        assert ended.value.reason == sw.EndReason.ADMIN
        assert org.session(grant.session.handle) is None
    assert org.authorize_access_token(crm.access_token, OFFICE).client_id == "crm", "same run-as user, kept"
    assert org.validate(ui, OFFICE).user == "ada"
    assert org.revoke_oauth_client("erp") == 0
    assert org.revoke_oauth_client("nobody") == 0
    # Revoking ends tokens; the client stays registered.
    assert org.authorize_access_token(access_token(org, None).access_token, OFFICE).client_id == "erp"
    with pytest.raises(TypeError, match="client_id: expected str"):
        org.revoke_oauth_client(None)


def test_session_by_handle_reads_without_refreshing(resource_org: Any, clock: sw.ManualClock) -> None:
    org = resource_org
    outcome = org.login("ada", OFFICE)
    assert isinstance(outcome, sw.Issued)
    handle = outcome.session.handle
    clock.advance(MINUTE * 5)
    shown = org.session(handle)
    assert shown == outcome.session, "the same public facts, last activity untouched"
    assert org.session(handle) == outcome.session, "reading twice changes nothing"
    assert org.validate(outcome.token, OFFICE).last_activity == outcome.session.last_activity + MINUTE * 5
    assert org.session(handle).last_activity == outcome.session.last_activity + MINUTE * 5
    assert org.end_session(handle) is True
    assert org.session(handle) is None
    assert org.session("swh_0000000000000001") is None
    # The same handle argument as end_session: the `swh_` string.
    for bad in ("swh_xyz", outcome.token):
        with pytest.raises(sw.InvalidInput):
            org.session(bad)
        with pytest.raises(sw.InvalidInput):
            org.end_session(bad)
    with pytest.raises(TypeError, match="handle: expected str"):
        org.session(1)


def test_access_grants_and_authorize_errors_never_show_a_token(make_org: OrgFactory) -> None:
    org = make_org(profiles=(sw.Profile("integrations"),), users={"bot": "integrations"})
    token = issue(org, "bot", session_type=sw.SessionType.API)
    # Client ids and scopes are the caller's text and may hold a token: echoed redacted.
    client = f"app-{token}"
    secret = remember_secret(org.register_oauth_client(client, "bot", [f"s.{token}", "read"]))
    grant = access_token_of(org, client, secret)
    texts: list[str] = []
    authorized = org.authorize_access_token(grant.access_token, OFFICE, f"s.{token}")
    assert authorized.client_id == client and f"s.{token}" in authorized.scopes, "kept as given"
    texts += [repr(authorized), str(authorized)]
    for scope in (grant.access_token, f"x.{token}", f"{grant.access_token[:-1]}", ["read", grant.access_token]):
        with pytest.raises(sw.OAuthError) as refused:
            org.authorize_access_token(grant.access_token, OFFICE, scope)
        assert refused.value.code == "insufficient_scope"
        texts += [str(refused.value), repr(refused.value)]
    with pytest.raises(sw.OAuthError) as not_access:
        org.authorize_access_token(token, OFFICE)
    texts += [str(not_access.value), repr(not_access.value)]
    org.revoke_oauth_client(client)
    with pytest.raises(sw.SessionEnded) as ended:
        org.authorize_access_token(grant.access_token, OFFICE, grant.access_token)
    texts += [str(ended.value), repr(ended.value)]
    leaked = [text for text in texts if shows_token_text(text, token) or shows_token_text(text, grant.access_token)]
    assert len(leaked) == 0, f"{len(leaked)} texts show part of a token"
    assert find_leaks(texts, {token, grant.access_token}) == set()
    assert "swd_[REDACTED]" in repr(authorized)


def access_token_of(org: Any, client: str, secret: str) -> sw.Grant:
    grant: sw.Grant = org.grant_client_credentials(client, secret, None, OFFICE)
    remember_secret(grant.access_token)
    return grant


def test_a_wrong_client_secret_is_a_denied_login_in_the_audit_stream(integration_org: object) -> None:
    org: Any = integration_org
    remember_secret(org.register_oauth_client("erp", "erp-bot", ["orders.read"]))
    org.events()
    with pytest.raises(sw.OAuthError) as caught:
        org.grant_client_credentials("erp", "not-the-secret", None, OFFICE)
    assert caught.value.code == "invalid_client"
    events = org.events()
    assert [(event.kind, event.reason) for event in events] == [("login_denied", "invalid_client")]
    assert events[0].user is None and str(events[0].ip) == OFFICE
    assert sw.DenyReason.from_code("invalid_client") == sw.DenyReason.INVALID_CLIENT
