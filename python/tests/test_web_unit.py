"""Unit tests of sessionward.web (headers, client IP, cookies, requirements, refusals, the OAuth
token endpoint against a fake org, routes that require OAuth scopes) and of the middlewares in
process (httpx's ASGI and WSGI transports, no server)."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest
from conftest import MINUTE, START, TrackedOrg, issue, remember_secret

import sessionward as sw
from sessionward import jobs
from sessionward._tokens import make_token_for_tests
from sessionward.asgi import SessionMiddleware as AsgiMiddleware
from sessionward.web import (
    BEACON_JS,
    ClientIpResolver,
    CookieSettings,
    PathSet,
    Requirement,
    RouteRequirements,
    WebResponse,
    _Request,
    access_token_refusal,
    bearer_token,
    beacon_script,
    clearing_cookie,
    cookie_header_without,
    current_request,
    ends_session,
    handle_token_request,
    is_bearer_authorization,
    parse_cookies,
    requires,
    safe_next,
    session_cookie,
)
from sessionward.wsgi import SessionMiddleware as WsgiMiddleware

ip = ipaddress.ip_address
START_DATETIME = datetime.fromtimestamp(START, timezone.utc)


# ----------------------------------------------------------------------------- client IP


def resolve(peer: str | None, trusted: list[str], header: str = "x-forwarded-for", *values: str) -> str | None:
    resolver = ClientIpResolver(trusted, header=header)  # type: ignore[arg-type]
    result = resolver.resolve(peer, {header: list(values)} if values else {})
    return None if result is None else str(result)


PROXY = ["10.0.0.0/8"]


@pytest.mark.parametrize(
    ("peer", "values", "expected"),
    [
        ("203.0.113.5", ["198.51.100.1"], "203.0.113.5"),  # untrusted peer: header ignored
        ("10.0.0.1", [], "10.0.0.1"),  # no header
        ("10.0.0.1", ["198.51.100.1"], "198.51.100.1"),
        ("10.0.0.1", ["1.1.1.1, 198.51.100.1"], "198.51.100.1"),  # right-most untrusted hop
        ("10.0.0.1", ["1.1.1.1, 198.51.100.1, 10.0.0.7"], "198.51.100.1"),  # skip trusted hops
        ("10.0.0.1", ["1.1.1.1", "198.51.100.1"], "198.51.100.1"),  # repeated header lines
        ("10.0.0.1", ["10.0.0.9, 10.0.0.8"], "10.0.0.9"),  # all trusted: the left-most
        ("10.0.0.1", ["bogus"], "10.0.0.1"),  # malformed: ignored
        ("10.0.0.1", [""], "10.0.0.1"),
        ("10.0.0.1", ["bogus, 198.51.100.1"], "198.51.100.1"),  # garbage left of the client
        ("10.0.0.1", ["198.51.100.1, bogus"], "10.0.0.1"),  # garbage from a proxy stops
        ("10.0.0.1", ["198.51.100.1, 10.0.0.2, junk!, 10.0.0.3"], "10.0.0.3"),
        ("10.0.0.1", ["198.51.100.1:8080"], "198.51.100.1"),
        ("10.0.0.1", ["[2001:db8::1]:443"], "2001:db8::1"),
        ("10.0.0.1", ["2001:db8::1"], "2001:db8::1"),
        ("10.0.0.1", ["::ffff:198.51.100.1"], "198.51.100.1"),  # mapped IPv6 shown as IPv4
        ("10.0.0.1", ["198.51.100.1:99999999"], "10.0.0.1"),
        ("10.0.0.1", ["[2001:db8::1"], "10.0.0.1"),
        ("10.0.0.1", ["unknown"], "10.0.0.1"),
        ("::ffff:10.0.0.1", ["198.51.100.1"], "198.51.100.1"),  # a dual-stack socket's peer
        ("fe80::1%eth0", ["198.51.100.1"], "fe80::1"),
    ],
)
def test_x_forwarded_for(peer: str, values: list[str], expected: str) -> None:
    assert resolve(peer, PROXY, "x-forwarded-for", *values) == expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["for=198.51.100.1"], "198.51.100.1"),
        (['for="[2001:db8:cafe::17]:4711"'], "2001:db8:cafe::17"),
        (["For=198.51.100.1;proto=https;by=10.0.0.1"], "198.51.100.1"),
        (["for=1.1.1.1, for=198.51.100.1"], "198.51.100.1"),
        (['for=1.1.1.1;host="a,b", for=198.51.100.1'], "198.51.100.1"),  # comma in quotes
        (["for=198.51.100.1, for=10.0.0.5"], "198.51.100.1"),
        (["for=unknown"], "10.0.0.1"),
        (["for=_hidden, for=198.51.100.1"], "198.51.100.1"),
        (["for=198.51.100.1, for=_hidden"], "10.0.0.1"),
        (["proto=https"], "10.0.0.1"),  # no for=
        (["for=1.1.1.1;for=2.2.2.2"], "10.0.0.1"),  # for= twice in an element
        (['for="198.51.100.1:80"'], "198.51.100.1"),
        (["garbage"], "10.0.0.1"),
    ],
)
def test_forwarded_rfc7239(values: list[str], expected: str) -> None:
    assert resolve("10.0.0.1", PROXY, "forwarded", *values) == expected


def test_only_the_configured_header_is_read() -> None:
    resolver = ClientIpResolver(PROXY)
    headers = {"forwarded": ["for=198.51.100.1"]}
    assert str(resolver.resolve("10.0.0.1", headers)) == "10.0.0.1"
    resolver = ClientIpResolver(PROXY, header="forwarded")
    assert str(resolver.resolve("10.0.0.1", {"x-forwarded-for": ["198.51.100.1"]})) == "10.0.0.1"


def test_peer_without_address() -> None:
    assert resolve(None, PROXY) is None
    assert resolve("not-an-ip", PROXY) is None
    assert resolve(None, ["unix"], "x-forwarded-for", "198.51.100.1") == "198.51.100.1"
    assert resolve(None, ["unix"]) is None  # a Unix socket, and nothing says who the client is


def test_resolver_rejects_bad_configuration() -> None:
    with pytest.raises(ValueError, match="trusted_proxies"):
        ClientIpResolver(["10.0.0.0/33"])
    with pytest.raises(ValueError, match="header"):
        ClientIpResolver([], header="x-real-ip")  # type: ignore[arg-type]
    resolver = ClientIpResolver(["10.0.0.0/8", "2001:db8::/32", ip("192.0.2.1")])
    assert resolver.is_trusted(ip("2001:db8::5")) and resolver.is_trusted(ip("192.0.2.1"))
    assert not resolver.is_trusted(ip("11.0.0.1"))


def test_long_chains_only_look_at_the_right_end() -> None:
    chain = ", ".join(["198.51.100.9"] * 10_000 + ["10.0.0.2"])
    assert resolve("10.0.0.1", PROXY, "x-forwarded-for", chain) == "198.51.100.9"


# ----------------------------------------------------------------------------- headers


def test_parse_cookies() -> None:
    assert parse_cookies(['a=1; b="two"; junk; =x; a=3', "c=4"]) == {"a": "1", "b": "two", "c": "4"}
    assert parse_cookies([]) == {}


def test_cookie_header_without() -> None:
    name = "sessionward"
    assert cookie_header_without("a=1; sessionward=tok; b=2", name) == "a=1; b=2"
    assert cookie_header_without("sessionward=tok", name) == ""
    assert cookie_header_without(' sessionward = "tok" ;theme=dark', name) == "theme=dark"
    # Every occurrence, and one after a "," where a server joined two Cookie headers.
    assert cookie_header_without("sessionward=a; x=1, sessionward=b; sessionward=c", name) == "x=1"
    # Only that name: a longer name, a value that mentions it and a comma in a value stay.
    kept = "sessionward2=1; note=sessionward; list=a,b"
    assert cookie_header_without(kept, name) == kept


def test_is_bearer_authorization() -> None:
    assert is_bearer_authorization("Bearer abc") and is_bearer_authorization("  bEaReR abc")
    assert not is_bearer_authorization("Basic YTpi") and not is_bearer_authorization("")
    assert not is_bearer_authorization("Bearerish abc")


def test_bearer_token() -> None:
    assert bearer_token(["Bearer abc"]) == "abc"
    assert bearer_token(["bearer   abc  "]) == "abc"
    assert bearer_token(["Basic xyz", "Bearer abc"]) == "abc"
    assert bearer_token(["Bearer"]) is None
    assert bearer_token(["Basic xyz"]) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/setup?x=1", "/setup?x=1"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example", "/"),
        ("", "/"),
        (None, "/"),
        ("/a\r\nLocation: x", "/"),
    ],
)
def test_safe_next(value: str | None, expected: str) -> None:
    assert safe_next(value) == expected


# ----------------------------------------------------------------------------- cookies


def attributes(set_cookie: str) -> dict[str, str]:
    return {p.strip().partition("=")[0].lower(): p.strip().partition("=")[2] for p in set_cookie.split(";")[1:]}


def test_session_cookie_max_age_and_browser_bound(make_org: Any) -> None:
    org = make_org(max_session_length=sw.OrgSettings().max_session_length)
    issued = org.login("ada", "10.1.2.3")
    value = session_cookie(issued)
    assert value.split("=", 1)[0] == "__Host-sessionward"
    attrs = attributes(value)
    assert attrs["max-age"] == str(12 * 3600)
    assert {"secure", "httponly"} <= attrs.keys() and attrs["samesite"] == "Lax" and attrs["path"] == "/"
    bound = make_org(force_relogin_on_browser_close=True).login("ada", "10.1.2.3")
    assert "max-age" not in attributes(session_cookie(bound)) and "expires" not in attributes(session_cookie(bound))
    with pytest.raises(ValueError):
        session_cookie("not a token", issued.session)


def test_clearing_cookie() -> None:
    attrs = attributes(clearing_cookie())
    assert attrs["max-age"] == "0" and "1970" in attrs["expires"] and "secure" in attrs
    dev = clearing_cookie(CookieSettings.insecure_for_development())
    assert dev.startswith("sessionward=;") and "secure" not in attributes(dev)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"secure": False},  # __Host- needs Secure
        {"path": "/app"},
        {"domain": "example.com"},
        {"name": "bad name"},
        {"name": "x", "same_site": "None", "secure": False},
        {"name": "__Secure-x", "secure": False},
        {"name": "x", "same_site": "lax"},
        {"name": "x", "path": "/a;b"},
    ],
)
def test_cookie_settings_are_validated(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        CookieSettings(**kwargs)


def test_beacon_script() -> None:
    assert "sendBeacon" in BEACON_JS and "/sessionward/beacon" in BEACON_JS
    assert '"/custom/beacon"' in beacon_script("/custom/beacon")
    with pytest.raises(ValueError):
        beacon_script('/x"</script>')


# ----------------------------------------------------------------------------- requirements


def test_route_requirements_most_specific_wins() -> None:
    ha = Requirement(level=sw.SecurityLevel.HIGH_ASSURANCE)
    routes = RouteRequirements({"/admin/*": Requirement(operation="admin"), "/admin/audit": ha})
    routes.add("/reports/*", Requirement(operation="export"), methods=["post"])
    assert routes.lookup("GET", "/admin/users") == Requirement(operation="admin")
    assert routes.lookup("GET", "/admin") == Requirement(operation="admin")
    assert routes.lookup("GET", "/admin/audit/") == ha
    assert routes.lookup("GET", "/administrator") is None
    assert routes.lookup("GET", "/reports/x") is None
    assert routes.lookup("POST", "/reports/x") == Requirement(operation="export")
    with pytest.raises(ValueError):
        Requirement(operation="x", level=sw.SecurityLevel.STANDARD)
    with pytest.raises(ValueError):
        RouteRequirements({"/a*b": Requirement()})


def test_head_gets_the_requirement_of_get_unless_it_has_its_own() -> None:
    # HEAD used to match only requirements naming HEAD, so a GET-only requirement left the GET
    # view (which frameworks run for HEAD) behind a bare session check.
    export = Requirement(operation="export")
    high = Requirement(level=sw.SecurityLevel.HIGH_ASSURANCE)
    routes = RouteRequirements()
    routes.add("/export", export, methods=["GET"])
    routes.add("/reports/*", high, methods=["get", "post"])
    routes.add("/upload", export, methods=["POST"])
    assert routes.lookup("HEAD", "/export") == export
    assert routes.lookup("head", "/reports/q1") == high
    assert routes.lookup("HEAD", "/upload") is None  # nothing to do with GET
    assert routes.lookup("GET", "/upload") is None and routes.lookup("POST", "/export") is None

    # HEAD named on its own: that requirement, and GET keeps its own.
    head = Requirement(level=sw.SecurityLevel.STANDARD)
    routes.add("/export", head, methods=["HEAD"])
    assert routes.lookup("HEAD", "/export") == head and routes.lookup("GET", "/export") == export
    # A more specific GET requirement still beats a less specific HEAD one.
    routes.add("/reports/*", head, methods=["HEAD"])
    routes.add("/reports/annual", export, methods=["GET"])
    assert routes.lookup("HEAD", "/reports/annual") == export
    assert routes.lookup("HEAD", "/reports/q1") == head

    # An all-methods entry ranks for HEAD as it does for GET (first added among equals), so
    # HEAD cannot end up with a weaker requirement than GET without naming HEAD.
    for first, second in ((export, Requirement()), (Requirement(), export)):
        mixed = RouteRequirements()
        mixed.add("/x", first, methods=None if first == Requirement() else ["GET"])
        mixed.add("/x", second, methods=None if second == Requirement() else ["GET"])
        assert mixed.lookup("HEAD", "/x") == mixed.lookup("GET", "/x") == first


def starlette_export_site(org: Any, ran: list[str], **options: Any) -> Callable[[str, str], httpx.Response]:
    """A Starlette app with one plain GET route, behind the ASGI middleware, called in process."""
    applications = pytest.importorskip("starlette.applications")
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    def export_view(request: Any) -> Any:
        ran.append(request.method)
        return PlainTextResponse("every order")

    app = AsgiMiddleware(applications.Starlette(routes=[Route("/export", export_view)]), org, **options)

    async def call(method: str, token: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return await c.request(method, "/export", headers={"Authorization": f"Bearer {token}"})

    return lambda method, token: asyncio.run(call(method, token))


def flask_export_site(org: Any, ran: list[str], **options: Any) -> Callable[[str, str], httpx.Response]:
    """A Flask app with one plain GET route, behind the WSGI middleware, called in process."""
    flask = pytest.importorskip("flask")
    flask_app = flask.Flask("head_test")

    @flask_app.get("/export")
    def export_view() -> str:
        ran.append(flask.request.method)
        return "every order"

    app = WsgiMiddleware(flask_app.wsgi_app, org, **options)

    def call(method: str, token: str) -> httpx.Response:
        transport = httpx.WSGITransport(app=app, remote_addr="10.1.2.3")
        with httpx.Client(transport=transport, base_url="http://t") as c:
            return c.request(method, "/export", headers={"Authorization": f"Bearer {token}"})

    return call


@pytest.mark.parametrize("site", [starlette_export_site, flask_export_site])
def test_head_on_a_get_only_route_is_checked_like_get(make_org: Any, site: Any) -> None:
    # Starlette and Flask both answer HEAD with the GET view: the middleware must check it so.
    org = make_org(high_assurance_operations=["export"])
    token = issue(org, ip="10.1.2.3")
    routes = RouteRequirements()
    routes.add("/export", Requirement(operation="export"), methods=["GET"])
    ran: list[str] = []
    call = site(org, ran, routes=routes, cookie=CookieSettings.insecure_for_development())
    for method in ("GET", "HEAD"):
        r = call(method, token)
        assert r.status_code == 401, method
        assert "insufficient_user_authentication" in r.headers["www-authenticate"]
    assert ran == []
    org.step_up(token, "10.1.2.3", sw.LoginMethod.MFA)
    assert call("HEAD", token).status_code == 200
    assert ran == ["HEAD"]  # the framework did run the GET view for HEAD


def test_exempt_paths_do_not_cover_dot_segments() -> None:
    exempt = PathSet(["/login", "/static/*"])
    assert "/login" in exempt and "/login/" in exempt and "/static/app.js" in exempt
    assert "/static" in exempt
    assert "/static/../admin" not in exempt and "/login/.." not in exempt
    assert "/loginx" not in exempt and "/" not in exempt


def test_ends_session() -> None:
    for code in ("malformed", "unknown", "ip_mismatch", "ended_admin", "expired_idle"):
        assert ends_session(code)
    for code in ("ip_not_allowed", "step_up_required", "missing_token"):
        assert not ends_session(code)


def test_web_response_repr_hides_the_body() -> None:
    response = WebResponse(200, (("X", "y"),), b"secret")
    assert "secret" not in repr(response) and response.header("x") == "y"


def test_request_repr_names_headers_but_never_shows_values_or_the_query(org: TrackedOrg) -> None:
    # _Request used to be a dataclass with the generated repr: Cookie and Authorization in full.
    token = issue(org, ip="10.1.2.3")
    request = _Request(
        "GET",
        f"/reset/{token}",
        f"token={token}&next=/home",
        "10.1.2.3",
        {
            "cookie": [f"sessionward={token}"],
            "authorization": [f"Bearer {token}"],
            "x-api-key": ["key-of-another-service"],
        },
    )
    text = repr(request)
    assert token not in text and "key-of-another-service" not in text and "next=" not in text
    assert text == (
        f"_Request(method='GET', path='/reset/swd_[REDACTED]', query=<{len(request.query)} chars>, "
        "peer='10.1.2.3', headers=<authorization, cookie, x-api-key>)"
    )


def failing_wsgi_app(environ: Any, start_response: Any) -> Any:
    raise RuntimeError("the view failed")


async def failing_asgi_app(scope: Any, receive: Any, send: Any) -> None:
    raise RuntimeError("the view failed")


@pytest.mark.parametrize("protocol", ["wsgi", "asgi"])
def test_error_reporters_see_no_token_in_the_middlewares_locals(
    org: TrackedOrg, protocol: str
) -> None:
    # What Sentry and traceback's capture_locals record: the repr of every local of every frame.
    token = issue(org, ip="10.1.2.3")
    cookie = CookieSettings.insecure_for_development()
    with pytest.raises(RuntimeError, match="the view failed") as info:
        if protocol == "wsgi":
            wsgi = WsgiMiddleware(failing_wsgi_app, org, cookie=cookie)  # type: ignore[arg-type]
            environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "REMOTE_ADDR": "10.1.2.3"}
            wsgi({**environ, "HTTP_COOKIE": f"sessionward={token}"}, lambda *a: None)
        else:
            asgi = AsgiMiddleware(failing_asgi_app, org, cookie=cookie)
            scope = {
                "type": "http",
                "method": "GET",
                "path": "/",
                "headers": [(b"cookie", f"sessionward={token}".encode())],
                "client": ("10.1.2.3", 1234),
            }
            asyncio.run(asgi(scope, None, None))  # type: ignore[arg-type]
    frames = [
        frame
        for frame, _ in traceback.walk_tb(info.value.__traceback__)
        if frame.f_globals.get("__name__", "").startswith("sessionward.")
    ]
    assert frames, "the traceback passes through the middleware"
    seen = set()
    for frame in frames:
        for name, value in frame.f_locals.items():
            if name == "scope" and frame.f_code.co_name == "__call__":
                continue  # the server's own scope, which ASGI middleware copies, never changes
            seen.add(name)
            assert token not in repr(value), f"{frame.f_code.co_name}: local {name!r}"
    assert {"request", "auth"} <= seen


def run_seeing_the_request(
    org: TrackedOrg, protocol: str, headers: dict[str, str], **options: Any
) -> tuple[int, str, Any]:
    """One GET / through the middleware; the status, the `repr` of the environ (WSGI) or
    scope (ASGI) the app was called with, and the user of the session the app saw."""
    seen: dict[str, Any] = {}
    cookie = CookieSettings.insecure_for_development()
    if protocol == "wsgi":

        def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            seen["request"] = repr(environ)
            seen["user"] = environ["sessionward.session"].user
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok"]

        wsgi = WsgiMiddleware(wsgi_app, org, cookie=cookie, **options)  # type: ignore[arg-type]
        transport: Any = httpx.WSGITransport(app=wsgi, remote_addr="10.1.2.3")
        with httpx.Client(transport=transport, base_url="http://t") as client:
            status = client.get("/", headers=headers).status_code
    else:

        async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
            seen["request"] = repr(scope)
            seen["user"] = scope["sessionward.session"].user
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        asgi = AsgiMiddleware(asgi_app, org, cookie=cookie, **options)  # type: ignore[arg-type]

        async def run() -> int:
            transport = httpx.ASGITransport(app=asgi, client=("10.1.2.3", 1234))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return (await client.get("/", headers=headers)).status_code

        status = asyncio.run(run())
    return status, seen.get("request", ""), seen.get("user")


@pytest.mark.parametrize("protocol", ["wsgi", "asgi"])
def test_the_app_sees_the_request_without_its_credentials(org: TrackedOrg, protocol: str) -> None:
    token = issue(org, ip="10.1.2.3")
    # The session cookie among others: only it goes; a Basic Authorization header stays.
    status, request, user = run_seeing_the_request(
        org,
        protocol,
        {"Cookie": f"theme=dark; sessionward={token}; lang=en", "Authorization": "Basic YTpi", "X-Trace": "t1"},
    )
    # (Booleans, so that a failure does not print the token.)
    leaked = token in request or "sessionward=" in request
    assert (status, user, leaked) == (200, "ada", False)
    assert "theme=dark; lang=en" in request and "Basic YTpi" in request and "t1" in request
    # A bearer token: the header goes, the cookies stay.
    status, request, user = run_seeing_the_request(
        org, protocol, {"Authorization": f"Bearer {token}", "Cookie": "theme=dark"}
    )
    leaked = token in request or "Bearer" in request
    assert (status, user, leaked) == (200, "ada", False)
    assert "theme=dark" in request
    # Nothing but the session cookie: no Cookie header at all.
    status, request, _ = run_seeing_the_request(org, protocol, {"Cookie": f"sessionward={token}"})
    leaked = token in request
    assert (status, leaked) == (200, False)
    assert ("HTTP_COOKIE" if protocol == "wsgi" else "b'cookie'") not in request


@pytest.mark.parametrize("protocol", ["wsgi", "asgi"])
def test_keep_credentials_passes_them_to_the_app(org: TrackedOrg, protocol: str) -> None:
    token = issue(org, ip="10.1.2.3")
    headers = {"Cookie": f"sessionward={token}", "Authorization": f"Bearer {token}"}
    status, request, user = run_seeing_the_request(org, protocol, headers, keep_credentials=True)
    assert (status, user) == (200, "ada")
    assert request.count(token) == 2, "the cookie and the header, as sent"


# ----------------------------------------------------------------------------- OAuth (fake org)


class FakeOAuthError(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


FakeOAuthError.__name__ = "OAuthError"


@dataclass
class FakeGrant:
    access_token: str
    expires_in: int
    scopes: list[str]


@dataclass
class FakeOrg:
    calls: list[tuple[str, str, str | None, str]] = field(default_factory=list)

    def grant_client_credentials(self, client_id: str, client_secret: str, scope: str | None, ip: str) -> FakeGrant:
        self.calls.append((client_id, client_secret, scope, ip))
        if client_id != "app" or client_secret != "s3cret:+/":
            raise FakeOAuthError("invalid_client")
        if scope not in (None, "read", "read write"):
            raise FakeOAuthError("invalid_scope")
        return FakeGrant("at", 3600, (scope or "read").split())


def token_request(
    org: FakeOrg,
    body: str,
    *,
    auth: str | None = None,
    method: str = "POST",
    content_type: str | None = "application/x-www-form-urlencoded",
) -> tuple[int, dict[str, Any], WebResponse]:
    response = handle_token_request(
        org,
        method=method,
        content_type=content_type,
        authorization=[auth] if auth else [],
        body=body.encode(),
        client_ip=ip("192.0.2.1"),
    )
    assert response.header("Cache-Control") == "no-store"
    return response.status, json.loads(response.body), response


def basic(client_id: str, secret: str) -> str:
    from urllib.parse import quote_plus

    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def test_token_endpoint_success_basic_and_body() -> None:
    org = FakeOrg()
    status, body, response = token_request(org, "grant_type=client_credentials&scope=read+write", auth=basic("app", "s3cret:+/"))
    assert status == 200
    assert body == {"access_token": "at", "token_type": "Bearer", "expires_in": 3600, "scope": "read write"}
    assert response.header("Pragma") == "no-cache"
    assert org.calls[-1] == ("app", "s3cret:+/", "read write", "192.0.2.1")
    status, body, _ = token_request(
        org, "grant_type=client_credentials&client_id=app&client_secret=s3cret%3A%2B%2F", content_type="application/x-www-form-urlencoded; charset=UTF-8"
    )
    assert status == 200 and org.calls[-1][2] is None


@pytest.mark.parametrize(
    ("body", "auth", "status", "error"),
    [
        ("grant_type=client_credentials", None, 401, "invalid_client"),
        ("grant_type=client_credentials&client_id=app&client_secret=wrong", None, 401, "invalid_client"),
        ("grant_type=client_credentials", "Basic !!!", 401, "invalid_client"),
        ("grant_type=client_credentials", "Basic " + base64.b64encode(b"nocolon").decode(), 401, "invalid_client"),
        ("grant_type=client_credentials&client_secret=x", "basic", 400, "invalid_request"),
        ("grant_type=password&client_id=app&client_secret=s3cret", None, 400, "unsupported_grant_type"),
        ("client_id=app&client_secret=s3cret", None, 400, "invalid_request"),
        ("grant_type=client_credentials&grant_type=client_credentials", None, 400, "invalid_request"),
        ("grant_type=client_credentials&scope=admin", "basic", 400, "invalid_scope"),
        ('grant_type=client_credentials&scope=a"b', "basic", 400, "invalid_scope"),
        ("grant_type=client_credentials&scope=a++b", "basic", 400, "invalid_scope"),
        ("grant_type=client_credentials&client_id=other", "basic", 400, "invalid_request"),
        ("%zz", None, 400, "invalid_request"),
    ],
)
def test_token_endpoint_errors(body: str, auth: str | None, status: int, error: str) -> None:
    if auth == "basic":
        auth = basic("app", "s3cret:+/")
    got_status, payload, response = token_request(FakeOrg(), body, auth=auth)
    assert (got_status, payload["error"]) == (status, error)
    assert isinstance(payload["error_description"], str)
    if error == "invalid_client":
        assert (response.header("WWW-Authenticate") or "").startswith("Basic")


def test_token_endpoint_method_and_media_type() -> None:
    status, payload, response = token_request(FakeOrg(), "", method="GET")
    assert status == 400 and payload["error"] == "invalid_request" and response.header("Allow") == "POST"
    status, payload, _ = token_request(FakeOrg(), "{}", content_type="application/json")
    assert status == 400 and payload["error"] == "invalid_request"
    status, payload, _ = token_request(FakeOrg(), "a=" + "x" * 20_000)
    assert status == 400


def test_token_endpoint_lets_other_exceptions_through() -> None:
    class Broken(FakeOrg):
        def grant_client_credentials(self, *args: Any) -> FakeGrant:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        token_request(Broken(), "grant_type=client_credentials", auth=basic("app", "x"))


# ----------------------------------------------------------------------------- middleware in process


def asgi_app_seeing(seen: dict[str, Any]) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen["session"] = jobs.current_session()
        seen["state"] = scope["state"]["session"]
        seen["auth"] = current_request()
        try:
            await jobs.arun_job(jobs.current_session, kind="queueable")
        except jobs.NoSessionInJob:
            seen["job"] = "no session"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def test_asgi_publishes_the_session_only_for_the_request(org: TrackedOrg) -> None:
    token = issue(org, ip="10.1.2.3")
    seen: dict[str, Any] = {}
    app = AsgiMiddleware(asgi_app_seeing(seen), org, cookie=CookieSettings.insecure_for_development())  # type: ignore[arg-type]

    async def run() -> int:
        transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            r = await c.get("/", headers={"Authorization": f"Bearer {token}"})
            return r.status_code

    assert asyncio.run(run()) == 200
    assert seen["session"].user == "ada" and seen["state"] == seen["session"]
    assert seen["job"] == "no session"
    assert "swd_" not in repr(seen["auth"]) and "10.1.2.3" in repr(seen["auth"])
    assert jobs.request_session() is None and current_request() is None


def test_asgi_refuses_a_websocket_before_accepting(org: TrackedOrg) -> None:
    called = False

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        nonlocal called
        called = True

    app = AsgiMiddleware(inner, org)  # type: ignore[arg-type]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/ws", "headers": [], "client": ("10.1.2.3", 1)}
    asyncio.run(app(scope, receive, send))
    assert not called and sent == [{"type": "websocket.close", "code": 1008}]


def test_asgi_passes_lifespan_through(org: TrackedOrg) -> None:
    seen: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    async def nothing() -> dict[str, Any]:
        return {}

    async def ignore(message: Any) -> None:
        return None

    asyncio.run(AsgiMiddleware(inner, org)({"type": "lifespan"}, nothing, ignore))  # type: ignore[arg-type]
    assert seen == ["lifespan"]


def wsgi_app_seeing(seen: dict[str, Any]) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen["session"] = jobs.current_session()
        seen["environ"] = environ["sessionward.session"]
        try:
            jobs.run_job(jobs.current_session, kind="batch")
        except jobs.NoSessionInJob:
            seen["job"] = "no session"
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    return app


def test_wsgi_publishes_the_session_only_for_the_request(org: TrackedOrg) -> None:
    token = issue(org, ip="10.1.2.3")
    seen: dict[str, Any] = {}
    app = WsgiMiddleware(wsgi_app_seeing(seen), org, cookie=CookieSettings.insecure_for_development())  # type: ignore[arg-type]
    with httpx.Client(transport=httpx.WSGITransport(app=app, remote_addr="10.1.2.3"), base_url="http://t") as c:
        r = c.get("/", headers={"Cookie": f"sessionward={token}"})
        assert r.status_code == 200
        assert seen["session"].user == "ada" and seen["environ"] == seen["session"]
        assert seen["job"] == "no session"
        assert jobs.request_session() is None
        r = c.get("/", headers={"Cookie": "sessionward=garbage"})
        assert r.status_code == 303 and r.headers["location"] == "/login?next=/"
        assert "Max-Age=0" in r.headers["set-cookie"]


def test_requires_without_middleware_raises() -> None:
    @requires(level=sw.SecurityLevel.HIGH_ASSURANCE)
    def view() -> str:
        return "opened"

    assert view.__sessionward_requirement__ == Requirement(level=sw.SecurityLevel.HIGH_ASSURANCE)  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError, match="no SessionMiddleware"):
        view()


def test_requires_refuses_in_the_view(make_org: Any) -> None:
    org = make_org(high_assurance_operations=["setup"])
    token = issue(org, ip="10.1.2.3")

    @requires(operation="setup")
    def view() -> Any:
        return "opened"

    def framework(environ: Any, start_response: Any) -> Any:
        # What Flask does with a view's return value: a WSGI callable is the response.
        rv = view()
        if callable(rv):
            return rv(environ, start_response)
        start_response("200 OK", [])
        return [rv.encode()]

    app = WsgiMiddleware(framework, org, cookie=CookieSettings.insecure_for_development(), step_up_url="/step-up")
    with httpx.Client(transport=httpx.WSGITransport(app=app, remote_addr="10.1.2.3"), base_url="http://t") as c:
        r = c.get("/anything", headers={"Cookie": f"sessionward={token}"})
        assert r.status_code == 303 and r.headers["location"] == "/step-up?next=/anything"
        assert "set-cookie" not in r.headers
        org.step_up(token, "10.1.2.3", sw.LoginMethod.MFA)
        r = c.get("/anything", headers={"Cookie": f"sessionward={token}"})
        assert r.status_code == 200 and r.text == "opened"


def test_unknown_token_in_process(org: TrackedOrg) -> None:
    app = WsgiMiddleware(wsgi_app_seeing({}), org, cookie=CookieSettings.insecure_for_development())  # type: ignore[arg-type]
    fake = make_token_for_tests(os.urandom(32))
    with httpx.Client(transport=httpx.WSGITransport(app=app, remote_addr="10.1.2.3"), base_url="http://t") as c:
        r = c.get("/api/x", headers={"Authorization": f"Bearer {fake}"})
    assert r.status_code == 401 and r.json() == {"error": "unknown"}


# ----------------------------------------------------------------------------- OAuth scopes on routes


def test_requirement_scopes_are_normalised_and_checked() -> None:
    assert Requirement(scopes="read  write read").scopes == ("read", "write")
    assert Requirement(scopes=["write", "read"]) == Requirement(scopes="read write")
    assert hash(Requirement(scopes=["write", "read"])) == hash(Requirement(scopes=("read", "write")))
    assert Requirement(scopes="").scopes == () and Requirement(scopes=[]).scopes == ()
    assert Requirement().scopes is None, "no scopes: not an OAuth route"
    with pytest.raises(ValueError, match="scopes, or an operation or a level"):
        Requirement(operation="setup", scopes="read")
    with pytest.raises(ValueError, match="scopes, or an operation or a level"):
        Requirement(level=sw.SecurityLevel.STANDARD, scopes=())
    with pytest.raises(TypeError, match=r"scopes\[1\]: expected str, got int"):
        Requirement(scopes=["read", 5])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="scopes: expected a str or an iterable of str, got int"):
        Requirement(scopes=5)  # type: ignore[arg-type]
    secret_looking = make_token_for_tests(os.urandom(32))
    for bad in ('a"b', "a\\b", "tab\there", "é"):
        with pytest.raises(ValueError, match=r"scopes\[0\] is not an RFC 6749 scope-token") as refused:
            Requirement(scopes=[f"{bad}{secret_looking}"])
        assert "swd_" not in str(refused.value), "the refused item is named, never echoed"


def oauth_org(make_org: Any) -> Any:
    """A tracked org with an integration user, a client granted read/write, and a staff user."""
    org = make_org(
        profiles=(sw.Profile("staff"), sw.Profile("integrations")),
        users={"ada": "staff", "bot": "integrations"},
    )
    org.client_secret = org.register_oauth_client("reports", "bot", ["read", "write"])
    remember_secret(org.client_secret)
    return org


def grant_token(org: Any, scope: str | None) -> tuple[str, str]:
    """(access token, session handle) of a fresh grant."""
    grant = org.grant_client_credentials("reports", org.client_secret, scope, "10.1.2.3")
    return remember_secret(grant.access_token), grant.session.handle


def challenge_of(response: WebResponse) -> str:
    value = response.header("WWW-Authenticate")
    assert value is not None and value.startswith('Bearer realm="sessionward"')
    return value


def test_access_token_refusal_follows_rfc6750(make_org: Any) -> None:
    org = oauth_org(make_org)
    token, _ = grant_token(org, "read")
    with pytest.raises(sw.OAuthError) as insufficient:
        org.authorize_access_token(token, "10.1.2.3", "write")
    with pytest.raises(sw.OAuthError) as not_access:
        org.authorize_access_token(issue(org, ip="10.1.2.3"), "10.1.2.3")
    with pytest.raises(sw.SessionError) as malformed:
        org.authorize_access_token("nope", "10.1.2.3")

    missing = access_token_refusal(None, scopes=("read", "write"))
    assert missing.status == 401 and json.loads(missing.body) == {"error": "missing_token"}
    # No error code without credentials (RFC 6750 section 3.1), but the scope needed.
    assert challenge_of(missing) == 'Bearer realm="sessionward", scope="read write"'

    r = access_token_refusal(insufficient.value, scopes=("write",))
    assert r.status == 403 and json.loads(r.body) == {"error": "insufficient_scope", "scope": "write"}
    assert challenge_of(r) == 'Bearer realm="sessionward", error="insufficient_scope", scope="write"'

    r = access_token_refusal(not_access.value, scopes=())
    assert r.status == 401
    assert json.loads(r.body) == {"error": "invalid_token", "error_description": "not_an_access_token"}
    assert challenge_of(r) == 'Bearer realm="sessionward", error="invalid_token", error_description="not_an_access_token"'

    r = access_token_refusal(malformed.value, scopes=("read",))
    assert r.status == 401 and json.loads(r.body) == {"error": "invalid_token", "error_description": "malformed"}
    assert challenge_of(r).endswith('error="invalid_token", error_description="malformed", scope="read"')
    for response in (missing, r):
        assert response.header("Set-Cookie") is None and response.header("Cache-Control") == "no-store"


def scoped_site(org: Any, protocol: str, seen: list[Any]) -> Callable[..., httpx.Response]:
    """An app behind the ASGI or WSGI middleware, called in process from 10.1.2.3, with
    ``/reports`` requiring scope ``read`` (GET only), ``/reports/write`` requiring ``write``,
    and ``/plain`` an ordinary route whose view re-checks the token for scope ``write``."""
    routes = RouteRequirements()
    routes.add("/reports", Requirement(scopes="read"), methods=["GET"])
    routes.add("/reports/write", Requirement(scopes=["write"]))
    options: dict[str, Any] = {"routes": routes, "cookie": CookieSettings.insecure_for_development()}

    def answer() -> tuple[int, bytes]:
        auth = current_request()
        assert auth is not None
        if auth.access_grant is None:  # /plain: the view asks for more itself
            try:
                auth.revalidate(Requirement(scopes="write"))
            except (sw.SessionError, sw.OAuthError) as refused:
                response = auth.refusal(refused)
                return response.status, response.body
        seen.append(auth.access_grant)
        assert auth.session is not None and jobs.current_session() == auth.session
        return 200, b"ok"

    if protocol == "asgi":

        async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
            status, body = answer()
            await send({"type": "http.response.start", "status": status, "headers": []})
            await send({"type": "http.response.body", "body": body})

        app: Any = AsgiMiddleware(asgi_app, org, **options)

        async def acall(method: str, path: str, headers: dict[str, str]) -> httpx.Response:
            transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 1234))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                return await c.request(method, path, headers=headers)

        return lambda method, path, headers: asyncio.run(acall(method, path, headers))

    def wsgi_app(environ: Any, start_response: Any) -> list[bytes]:
        status, body = answer()
        start_response(f"{status} X", [])
        return [body]

    wsgi = WsgiMiddleware(wsgi_app, org, **options)

    def call(method: str, path: str, headers: dict[str, str]) -> httpx.Response:
        with httpx.Client(transport=httpx.WSGITransport(app=wsgi, remote_addr="10.1.2.3"), base_url="http://t") as c:
            return c.request(method, path, headers=headers)

    return call


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("protocol", ["asgi", "wsgi"])
def test_a_scoped_route_takes_only_an_access_token_with_its_scopes(
    make_org: Any, clock: sw.ManualClock, protocol: str
) -> None:
    org = oauth_org(make_org)
    seen: list[Any] = []
    call = scoped_site(org, protocol, seen)
    read, read_handle = grant_token(org, "read")
    write, _ = grant_token(org, "write")

    for method in ("GET", "HEAD"):  # HEAD runs the GET view: it gets GET's requirement
        assert call(method, "/reports", bearer(read)).status_code == 200, method
    assert [grant.client_id for grant in seen] == ["reports", "reports"]
    assert seen[0].scopes == ["read"] and seen[0].session.user == "bot"

    clock.advance(MINUTE * 5)
    r = call("GET", "/reports", bearer(write))
    assert r.status_code == 403 and r.json() == {"error": "insufficient_scope", "scope": "read"}
    assert r.headers["www-authenticate"] == 'Bearer realm="sessionward", error="insufficient_scope", scope="read"'
    r = call("GET", "/reports/write", bearer(read))
    assert r.status_code == 403 and 'scope="write"' in r.headers["www-authenticate"]
    assert org.session(read_handle).last_activity == START_DATETIME, "a refused scope refreshed the session"
    assert len(seen) == 2, "the app never ran for a refused request"

    # A browser session is not an access token, as a bearer token or (never read here) a cookie.
    ui = issue(org, ip="10.1.2.3")
    r = call("GET", "/reports", bearer(ui))
    assert r.status_code == 401 and r.json() == {"error": "invalid_token", "error_description": "not_an_access_token"}
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    r = call("GET", "/reports", {"Cookie": f"sessionward={ui}"})
    assert r.status_code == 401 and r.json() == {"error": "missing_token"}, "API style, no redirect"
    assert r.headers["www-authenticate"] == 'Bearer realm="sessionward", scope="read"'
    assert "set-cookie" not in r.headers
    r = call("GET", "/reports", {})
    assert r.status_code == 401 and r.json() == {"error": "missing_token"}

    # A view on an ordinary route can require scopes itself.
    r = call("GET", "/plain", bearer(read))
    assert r.status_code == 403 and json.loads(r.content) == {"error": "insufficient_scope"}
    assert call("GET", "/plain", bearer(write)).status_code == 200
    assert seen[-1].scopes == ["write"]

    # Revoked: invalid_token with the session's reason, the cookie (none here) untouched.
    assert org.revoke_oauth_client("reports") == 2
    r = call("GET", "/reports", bearer(read))
    assert r.status_code == 401 and r.json() == {"error": "invalid_token", "error_description": "ended_admin"}
    assert r.headers["www-authenticate"].endswith('error_description="ended_admin", scope="read"')
