"""The example apps under real servers (uvicorn for Starlette, waitress for Flask) on 127.0.0.1,
driven by httpx clients that keep cookies and connect from 127.0.0.1 or 127.0.0.2.

Every test runs against both apps. Refusal reasons are read from the API-style answer
(``/api/me`` with the same cookie answers JSON ``{"error": "<code>"}``); browser-style answers
are 303 redirects. Tokens are never printed: assertions compare booleans or cookie attributes.
"""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from conftest import TrackedOrg, remember_secret
from web_helpers import client, load_example, serve

import sessionward as sw
from sessionward._tokens import make_token_for_tests
from sessionward.web import CookieSettings

for _server_dependency in ("starlette", "uvicorn", "flask", "waitress"):
    pytest.importorskip(_server_dependency, reason="the web end-to-end tests run the example apps")

DEV_COOKIE = CookieSettings.insecure_for_development()
COOKIE = DEV_COOKIE.name
PASSWORD = "correct horse"
OTHER = "127.0.0.2"

demo = load_example("sessionward_demo")
APPS = {"starlette": load_example("starlette_app"), "flask": load_example("flask_app")}


def cookie_attributes(set_cookie: str) -> dict[str, str]:
    """The attributes of a Set-Cookie value (lower-case names), without the name=value pair."""
    attributes: dict[str, str] = {}
    for part in set_cookie.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        attributes[name.lower()] = value
    return attributes


def cookie_name(set_cookie: str) -> str:
    return set_cookie.split("=", 1)[0]


@dataclass
class Site:
    url: str
    org: Any
    clock: sw.ManualClock
    directory: Any
    stack: contextlib.ExitStack
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, source: str = "127.0.0.1", token: str | None = None) -> httpx.Client:
        """A client from `source`; with `token`, one that presents it as the session cookie
        (a copied cookie: same token, another client)."""
        c = self.stack.enter_context(client(self.url, source))
        if token is not None:
            c.headers["Cookie"] = f"{COOKIE}={token}"
        return c

    def login(self, user: str = "ada", source: str = "127.0.0.1", password: str | None = None) -> httpx.Client:
        c = self.client(source)
        r = c.post("/login", data={"user": user, "password": password or demo.DEMO_PASSWORDS[user]})
        if r.status_code == 200 and "Check your email" in r.text:  # challenge from outside
            pid = r.text.split('name="pid" value="', 1)[1].split('"', 1)[0]
            r = c.post("/login/verify", data={"pid": pid, "code": self.directory.last_code(user)})
        assert r.status_code == 303, r.status_code
        return c

    @staticmethod
    def token(c: httpx.Client) -> str:
        token = c.cookies.get(COOKIE)
        assert token is not None
        return remember_secret(token)

    def reason(self, c: httpx.Client) -> str | None:
        """The refusal code of an API request with the client's cookie (None if accepted)."""
        r = c.get("/api/me")
        if r.status_code == 200:
            return None
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Bearer")
        code = r.json()["error"]
        assert isinstance(code, str)
        return code


@pytest.fixture(params=["starlette", "flask"])
def framework(request: pytest.FixtureRequest) -> str:
    return str(request.param)


SiteFactory = Callable[..., Site]


@pytest.fixture
def make_site(framework: str, clock: sw.ManualClock) -> Iterator[SiteFactory]:
    with contextlib.ExitStack() as stack:

        def build(
            *,
            cookie: CookieSettings = DEV_COOKIE,
            staff: sw.Profile | None = None,
            trusted_proxies: tuple[str, ...] = (),
            forwarded_header: str = "x-forwarded-for",
            **settings: Any,
        ) -> Site:
            org = TrackedOrg(
                demo.make_org(demo.default_settings().replace(**settings), clock=clock, staff=staff)
            )
            directory = demo.Directory()
            app = APPS[framework].create_app(
                org,
                directory=directory,
                cookie=cookie,
                trusted_proxies=trusted_proxies,
                forwarded_header=forwarded_header,
            )
            url = stack.enter_context(serve(framework, app))
            return Site(url, org, clock, directory, stack)

        yield build


# ----------------------------------------------------------------------------- cookies


def test_login_sets_a_max_age_cookie_and_the_session_works(make_site: SiteFactory) -> None:
    site = make_site()
    c = site.client()
    r = c.post("/login", data={"user": "ada", "password": PASSWORD, "next": "/setup"})
    assert r.status_code == 303 and r.headers["location"] == "/setup"
    attributes = cookie_attributes(r.headers["set-cookie"])
    assert attributes["max-age"] == str(8 * 3600)  # the session's maximum length
    assert {"httponly", "path", "samesite"} <= attributes.keys()
    assert attributes["samesite"] == "Lax" and attributes["path"] == "/"
    assert "expires" not in attributes
    site.token(c)
    assert c.get("/").status_code == 200
    me = c.get("/api/me").json()
    assert me["user"] == "ada" and me["source_ip"] == "127.0.0.1" and me["session_type"] == "UI"


def test_default_cookie_is_host_prefixed_and_secure(make_site: SiteFactory) -> None:
    site = make_site(cookie=CookieSettings())
    c = site.client()
    r = c.post("/login", data={"user": "ada", "password": PASSWORD})
    set_cookie = r.headers["set-cookie"]
    assert cookie_name(set_cookie) == "__Host-sessionward"
    attributes = cookie_attributes(set_cookie)
    assert {"secure", "httponly"} <= attributes.keys()
    assert attributes["path"] == "/" and "domain" not in attributes
    # A browser would send it back over HTTPS; the HTTP client does not, so send it by hand.
    token = remember_secret(set_cookie.split(";", 1)[0].split("=", 1)[1])
    assert site.client().get("/", headers={"Cookie": f"__Host-sessionward={token}"}).status_code == 200
    assert site.client().get("/").status_code == 303


def test_browser_bound_session_cookie_and_beacon(make_site: SiteFactory) -> None:
    site = make_site(force_relogin_on_browser_close=True)
    c = site.client()
    r = c.post("/login", data={"user": "ada", "password": PASSWORD})
    attributes = cookie_attributes(r.headers["set-cookie"])
    assert "max-age" not in attributes and "expires" not in attributes
    token = site.token(c)
    page = c.get("/")
    assert "sendBeacon" in page.text  # the snippet is on the pages of a browser-bound session
    other = site.client(token=token)
    beacon = c.post("/sessionward/beacon")
    assert beacon.status_code == 204
    assert cookie_attributes(beacon.headers["set-cookie"])["max-age"] == "0"
    assert site.reason(other) == "ended_browser_closed"


def test_beacon_leaves_a_session_that_is_not_browser_bound(make_site: SiteFactory) -> None:
    site = make_site()
    c = site.login()
    assert c.post("/sessionward/beacon").status_code == 204
    assert site.reason(c) is None


# ----------------------------------------------------------------------------- refusals


def test_missing_malformed_and_unknown_tokens(make_site: SiteFactory) -> None:
    site = make_site()
    anonymous = site.client()
    r = anonymous.get("/admin/sessions?user=ada")
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=/admin/sessions%3Fuser%3Dada"
    assert "set-cookie" not in r.headers
    api = anonymous.get("/api/me")
    assert api.status_code == 401 and api.json() == {"error": "missing_token"}
    assert api.headers["www-authenticate"] == 'Bearer realm="sessionward"'

    garbage = site.client(token="not-a-token")
    r = garbage.get("/")
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    assert cookie_attributes(r.headers["set-cookie"])["max-age"] == "0"
    assert site.reason(garbage) == "malformed"

    unknown = site.client(token=make_token_for_tests(os.urandom(32)))
    assert site.reason(unknown) == "unknown"
    r = unknown.get("/api/me")
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    assert cookie_attributes(r.headers["set-cookie"])["max-age"] == "0"


def test_bearer_refusals_are_json_401_without_cookie_changes(make_site: SiteFactory) -> None:
    site = make_site()
    api = site.client()
    r = api.post("/api/login", data={"user": "ada", "password": PASSWORD})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    token = remember_secret(r.json()["access_token"])
    bearer = {"Authorization": f"Bearer {token}"}
    me = api.get("/api/me", headers=bearer)
    assert me.status_code == 200 and me.json()["session_type"] == "API"
    # A bearer request is API style on any path, and a step-up refusal says so (RFC 9470).
    r = api.get("/setup", headers=bearer)
    assert r.status_code == 401
    assert r.json() == {"error": "step_up_required", "required_level": "HIGH_ASSURANCE"}
    assert 'error="insufficient_user_authentication"' in r.headers["www-authenticate"]
    site.org.end_user_sessions("ada")
    r = api.get("/api/me", headers=bearer)
    assert r.status_code == 401 and r.json() == {"error": "ended_admin"}
    assert "set-cookie" not in r.headers


def test_logout_clears_the_cookie_and_ends_the_session(make_site: SiteFactory) -> None:
    site = make_site()
    c = site.login()
    copy = site.client(token=site.token(c))
    r = c.post("/logout")
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert cookie_attributes(r.headers["set-cookie"])["max-age"] == "0"
    assert c.cookies.get(COOKIE) is None
    assert c.get("/").status_code == 303
    assert site.reason(copy) == "ended_logout"
    r = copy.get("/")
    assert r.status_code == 303 and cookie_attributes(r.headers["set-cookie"])["max-age"] == "0"


def test_idle_and_absolute_expiry(make_site: SiteFactory) -> None:
    site = make_site(inactivity_timeout=timedelta(minutes=30), max_session_length=timedelta(hours=1))
    idle = site.login("ada")
    busy = site.login("bob")
    busy_browser = site.client(token=site.token(busy))
    for _ in range(2):
        site.clock.advance(timedelta(minutes=25))
        assert site.reason(busy) is None
    assert site.reason(idle) == "expired_idle"
    site.clock.advance(timedelta(minutes=15))  # 65 minutes after login, active 15 minutes ago
    assert site.reason(busy) == "expired_absolute"
    r = busy_browser.get("/")
    assert r.status_code == 303 and cookie_attributes(r.headers["set-cookie"])["max-age"] == "0"


def test_admin_lists_with_filters_and_ends_a_session(make_site: SiteFactory) -> None:
    site = make_site(trusted_ranges=["127.0.0.0/8"])
    ada = site.login("ada")
    bob = site.login("bob", source=OTHER)
    admin = site.login("root")
    assert ada.get("/admin/sessions").status_code == 403
    listing = admin.get("/admin/sessions", params={"user": "ada"})
    assert listing.status_code == 200 and "1 session(s)" in listing.text
    handle = site.org.sessions(user="ada").rows[0].handle
    assert handle in listing.text
    by_ip = admin.get("/admin/sessions", params={"ip": "127.0.0.2/32"}).text
    assert "1 session(s)" in by_ip and ">bob<" in by_ip
    assert admin.get("/admin/sessions", params={"ip": "nonsense"}).status_code == 400
    r = admin.post("/admin/sessions/end", data={"handle": handle})
    assert r.status_code == 303
    assert site.reason(ada) == "ended_admin"
    assert site.reason(bob) is None


@pytest.mark.parametrize(
    ("end", "code"),
    [
        (lambda org: org.end_profile_sessions("staff"), "ended_profile_wide"),
        (lambda org: org.end_all_sessions(), "ended_org_wide"),
        (lambda org: org.end_sessions_from("127.0.0.0/8"), "ended_source_range"),
        (lambda org: org.remove_user("ada"), "ended_user_removed"),
    ],
)
def test_bulk_ends_reach_the_browser(make_site: SiteFactory, end: Callable[[Any], int], code: str) -> None:
    site = make_site()
    c = site.login()
    end(site.org)
    assert site.reason(c) == code


def test_password_reset_ends_sessions_in_flight(make_site: SiteFactory) -> None:
    site = make_site(trusted_ranges=["127.0.0.0/8"])
    here = site.login("ada")
    there = site.login("ada", source=OTHER)
    there_browser = site.client(OTHER, token=site.token(there))
    bob = site.login("bob")
    assert here.get("/password/reset").status_code == 200
    r = here.post("/password/reset", data={"new_password": "new horse"})
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert cookie_attributes(r.headers["set-cookie"])["max-age"] == "0"
    assert site.reason(there) == "ended_password_reset"
    r = there_browser.get("/")  # the browser is sent to the login page and loses the cookie
    assert r.status_code == 303 and cookie_attributes(r.headers["set-cookie"])["max-age"] == "0"
    assert site.reason(bob) is None
    old = site.client().post("/login", data={"user": "ada", "password": PASSWORD})
    assert old.status_code == 401
    site.login("ada", password="new horse")


def test_password_reset_can_require_step_up(make_site: SiteFactory) -> None:
    # The view's @requires(operation="password_change") follows the org's current settings.
    site = make_site(high_assurance_operations=["setup", "password_change"])
    c = site.login()
    r = c.post("/password/reset", data={"new_password": "x"})
    assert r.status_code == 303 and r.headers["location"] == "/step-up?next=/password/reset"
    assert "set-cookie" not in r.headers
    assert site.reason(c) is None


def test_step_up_flow(make_site: SiteFactory) -> None:
    site = make_site()
    c = site.login()
    r = c.get("/setup")
    assert r.status_code == 303 and r.headers["location"] == "/step-up?next=/setup"
    assert "set-cookie" not in r.headers  # the session goes on
    assert c.get("/step-up", params={"next": "/setup"}).status_code == 200
    wrong = c.post("/step-up", data={"code": "not it", "next": "/setup"})
    assert wrong.status_code == 401
    c.get("/step-up", params={"next": "/setup"})  # a fresh code
    r = c.post("/step-up", data={"code": site.directory.last_code("ada"), "next": "/setup"})
    assert r.status_code == 303 and r.headers["location"] == "/setup"
    assert c.get("/setup").status_code == 200
    assert c.get("/api/me").json()["level"] == "HIGH_ASSURANCE"


def test_open_redirects_are_refused(make_site: SiteFactory) -> None:
    site = make_site()
    c = site.client()
    r = c.post("/login", data={"user": "ada", "password": PASSWORD, "next": "//evil.example/"})
    assert r.status_code == 303 and r.headers["location"] == "/"


# ----------------------------------------------------------------------------- addresses


def test_challenge_from_an_untrusted_network(make_site: SiteFactory) -> None:
    site = make_site()  # only 127.0.0.1 is trusted
    c = site.client(OTHER)
    r = c.post("/login", data={"user": "ada", "password": PASSWORD, "next": "/setup"})
    assert r.status_code == 200 and "Check your email" in r.text and "set-cookie" not in r.headers
    pid = r.text.split('name="pid" value="', 1)[1].split('"', 1)[0]
    assert c.post("/login/verify", data={"pid": pid, "code": "000000x"}).status_code == 401
    r = c.post("/login", data={"user": "ada", "password": PASSWORD, "next": "/setup"})
    pid = r.text.split('name="pid" value="', 1)[1].split('"', 1)[0]
    r = c.post("/login/verify", data={"pid": pid, "code": site.directory.last_code("ada")})
    assert r.status_code == 303 and r.headers["location"] == "/setup"
    assert c.get("/api/me").json()["source_ip"] == OTHER


def test_ip_lock_with_two_source_addresses(make_site: SiteFactory) -> None:
    site = make_site(lock_sessions_to_ip=True)
    owner = site.login()
    token = site.token(owner)
    elsewhere = site.client(OTHER, token=token)
    assert site.reason(elsewhere) == "ip_mismatch"
    r = elsewhere.get("/")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert cookie_attributes(r.headers["set-cookie"])["max-age"] == "0"
    # A spoofed X-Forwarded-For from an untrusted peer changes nothing.
    spoofed = elsewhere.get("/api/me", headers={"X-Forwarded-For": "127.0.0.1"})
    assert spoofed.json() == {"error": "ip_mismatch"}
    assert site.reason(owner) is None  # the owner's session goes on
    unlocked = make_site()
    owner = unlocked.login()
    assert unlocked.reason(unlocked.client(OTHER, token=unlocked.token(owner))) is None


def test_login_ranges_on_every_request(make_site: SiteFactory) -> None:
    site = make_site(
        enforce_login_ranges_every_request=True,
        staff=sw.Profile("staff", login_ranges=["127.0.0.1/32"]),
    )
    c = site.login()
    denied = site.client(OTHER).post("/login", data={"user": "ada", "password": PASSWORD})
    assert denied.status_code == 403 and "ip_not_allowed" in denied.text
    moved = site.client(OTHER, token=site.token(c))
    assert site.reason(moved) == "ip_not_allowed"
    r = moved.get("/")
    assert r.status_code == 303 and "set-cookie" not in r.headers  # the session is not over
    assert site.reason(c) is None


def test_trusted_proxy_forwarded_for(make_site: SiteFactory) -> None:
    site = make_site(trusted_proxies=("127.0.0.1/32",), lock_sessions_to_ip=True)
    proxy = site.client()
    untrusted = site.client(OTHER)
    header = {"X-Forwarded-For": "203.0.113.9, 198.51.100.7"}
    assert proxy.get("/whoami", headers=header).json() == {"client_ip": "198.51.100.7"}
    assert untrusted.get("/whoami", headers=header).json() == {"client_ip": OTHER}
    assert proxy.get("/whoami", headers={"X-Forwarded-For": "bogus"}).json() == {"client_ip": "127.0.0.1"}
    # A login through the proxy is locked to the forwarded address ...
    r = proxy.post(
        "/login", data={"user": "root", "password": demo.DEMO_PASSWORDS["root"]}, headers={"X-Forwarded-For": "127.0.0.1"}
    )
    assert r.status_code == 303
    via_proxy = site.client()
    via_proxy.headers["X-Forwarded-For"] = "198.51.100.7"
    r = via_proxy.post("/login", data={"user": "ada", "password": PASSWORD})
    assert r.status_code == 200 and "Check your email" in r.text  # 198.51.100.7 is not trusted
    pid = r.text.split('name="pid" value="', 1)[1].split('"', 1)[0]
    r = via_proxy.post("/login/verify", data={"pid": pid, "code": site.directory.last_code("ada")})
    assert r.status_code == 303
    assert via_proxy.get("/api/me").json()["source_ip"] == "198.51.100.7"
    # ... and a stolen cookie with the same header from an untrusted peer is still refused.
    thief = site.client(OTHER, token=site.token(via_proxy))
    thief.headers["X-Forwarded-For"] = "198.51.100.7"
    assert site.reason(thief) == "ip_mismatch"


def test_trusted_proxy_rfc7239_forwarded(make_site: SiteFactory) -> None:
    site = make_site(trusted_proxies=("127.0.0.1/32",), forwarded_header="forwarded")
    proxy = site.client()
    header = {"Forwarded": 'for=192.0.2.60;proto=http, for="[2001:db8:cafe::17]:4711"'}
    assert proxy.get("/whoami", headers=header).json() == {"client_ip": "2001:db8:cafe::17"}
    assert site.client(OTHER).get("/whoami", headers=header).json() == {"client_ip": OTHER}
    # X-Forwarded-For is not read when the proxies maintain Forwarded.
    assert proxy.get("/whoami", headers={"X-Forwarded-For": "198.51.100.7"}).json() == {
        "client_ip": "127.0.0.1"
    }


def test_login_ranges_cannot_be_bypassed_with_a_spoofed_header(make_site: SiteFactory) -> None:
    site = make_site(
        trusted_proxies=("127.0.0.1/32",), staff=sw.Profile("staff", login_ranges=["198.51.100.0/24"])
    )
    spoofed = site.client(OTHER).post(
        "/login", data={"user": "ada", "password": PASSWORD}, headers={"X-Forwarded-For": "198.51.100.7"}
    )
    assert spoofed.status_code == 403 and "ip_not_allowed" in spoofed.text
    proxied = site.client().post(
        "/login", data={"user": "ada", "password": PASSWORD}, headers={"X-Forwarded-For": "198.51.100.7"}
    )
    assert proxied.status_code == 200 and "Check your email" in proxied.text


# ----------------------------------------------------------------------------- OAuth


def test_oauth_token_endpoint_over_http(make_site: SiteFactory) -> None:
    if not hasattr(sw.Org, "grant_client_credentials"):
        pytest.skip("the binding does not expose Org.grant_client_credentials yet")
    site = make_site(trusted_ranges=["127.0.0.0/8"])
    site.org.add_user("integration", "staff")
    secret = site.org.register_oauth_client("reporting", "integration", ["read", "write"])
    c = site.client()
    basic = base64.b64encode(f"reporting:{secret}".encode()).decode()
    r = c.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "read"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    body = r.json()
    token = remember_secret(body["access_token"])
    assert body["token_type"] == "Bearer" and body["scope"] == "read" and body["expires_in"] > 0
    me = c.get("/api/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["user"] == "integration" and me["session_type"] == "OAUTH2"
    r = c.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": "reporting", "client_secret": "wrong"},
    )
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert r.headers["www-authenticate"].startswith("Basic")
    r = c.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "reporting",
            "client_secret": secret,
            "scope": "admin",
        },
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"
    r = c.post("/oauth/token", data={"grant_type": "password"})
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"


def test_named_credential_pointing_at_the_org_over_http(make_site: SiteFactory) -> None:
    """A job calls out with a named credential whose token endpoint is the org itself (served
    by the example app): it gets an OAUTH2 session of the integration user, the job never sees
    a session ID, and the callout reaches the protected API with the granted token."""
    from sessionward import credentials, jobs

    site = make_site(trusted_ranges=["127.0.0.0/8"])
    site.org.add_user("integration", "staff")
    secret = remember_secret(site.org.register_oauth_client("reporting", "integration", ["read"]))
    registry = credentials.CredentialRegistry()
    registry.register(
        credentials.NamedCredential(
            "ORG",
            site.url,
            credentials.OAuthClientCredentials(f"{site.url}/oauth/token", "reporting", secret, ["read"]),
            allowed_kinds={jobs.JobKind.BATCH},
        )
    )

    def sync() -> dict[str, Any]:
        ctx = jobs.current_context()
        assert ctx.session_id is None
        response = ctx.credentials["ORG"].request("GET", "callout:ORG/api/me")
        assert response.status == 200, response.status
        body: dict[str, Any] = response.json()
        return body

    me = jobs.run_job(sync, kind=jobs.JobKind.BATCH, run_as="integration", credentials=registry)
    assert me["user"] == "integration" and me["session_type"] == "OAUTH2"
    listed = site.org.sessions(user="integration")
    assert listed.total == 1 and listed.rows[0].session_type == sw.SessionType.OAUTH2
    with pytest.raises(credentials.CredentialNotPermitted):
        jobs.run_job(
            lambda: jobs.current_context().credentials["ORG"],
            kind=jobs.JobKind.SCHEDULED,
            credentials=registry,
        )


def test_scoped_api_route_over_http(make_site: SiteFactory) -> None:
    """``/api/reports`` in the example apps requires scope ``read``: an access token with it
    passes (the view sees the client and scopes), one without it is 403 insufficient_scope, a
    browser or API login is not an access token, and a revoked client's token is
    invalid_token, each with an RFC 6750 ``WWW-Authenticate: Bearer`` challenge."""
    site = make_site(trusted_ranges=["127.0.0.0/8"])
    site.org.add_user("integration", "staff")
    secret = remember_secret(site.org.register_oauth_client("reporting", "integration", ["read", "write"]))
    c = site.client()

    def access_token(scope: str) -> str:
        r = c.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", "scope": scope},
            auth=("reporting", secret),
        )
        assert r.status_code == 200
        return remember_secret(r.json()["access_token"])

    read, write = access_token("read"), access_token("read write")
    only_write = access_token("write")
    r = c.get("/api/reports", headers={"Authorization": f"Bearer {read}"})
    assert r.status_code == 200
    assert r.json() == {"client_id": "reporting", "scopes": ["read"], "user": "integration"}
    assert c.get("/api/reports", headers={"Authorization": f"Bearer {write}"}).json()["scopes"] == ["read", "write"]

    r = c.get("/api/reports", headers={"Authorization": f"Bearer {only_write}"})
    assert r.status_code == 403 and r.json()["error"] == "insufficient_scope"
    assert r.headers["www-authenticate"] == 'Bearer realm="sessionward", error="insufficient_scope", scope="read"'

    browser = site.login("ada")
    r = browser.get("/api/reports")
    assert r.status_code == 401 and r.json() == {"error": "missing_token"}, "a cookie is not an access token"
    assert "set-cookie" not in r.headers and browser.get("/api/me").status_code == 200
    api = site.client().post("/api/login", data={"user": "ada", "password": demo.DEMO_PASSWORDS["ada"]})
    api_token = remember_secret(api.json()["access_token"])
    r = c.get("/api/reports", headers={"Authorization": f"Bearer {api_token}"})
    assert r.status_code == 401 and r.json()["error_description"] == "not_an_access_token"
    assert 'error="invalid_token"' in r.headers["www-authenticate"]

    assert site.org.revoke_oauth_client("reporting") == 3
    r = c.get("/api/reports", headers={"Authorization": f"Bearer {read}"})
    assert r.status_code == 401 and r.json() == {"error": "invalid_token", "error_description": "ended_admin"}
    assert r.headers["www-authenticate"].startswith('Bearer realm="sessionward", error="invalid_token"')
