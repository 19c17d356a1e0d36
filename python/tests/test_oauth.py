"""The org as an OAuth 2.0 token endpoint: registered clients, the client-credentials grant,
and grants as OAUTH2 sessions under the integration user's profile policy."""

from __future__ import annotations

import pytest

import sessionward as sw
from conftest import OFFICE, OrgFactory, remember_secret, record_text


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
