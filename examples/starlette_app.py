"""A Starlette app protected by sessionward: login (with the emailed-code challenge), a
HIGH_ASSURANCE page with step-up, password change, an admin session list with End Session,
logout, a JSON API with bearer tokens, the browser-close beacon, an OAuth token endpoint and an
API route for OAuth clients (``/api/reports``, scope ``read``).

Run it (``pip install starlette uvicorn``)::

    python examples/starlette_app.py --port 8000 [--insecure-cookies] [--trusted-proxy 10.0.0.0/8]

Browsers treat http://127.0.0.1 and http://localhost as secure, so the default ``__Host-``
Secure cookie works there; ``--insecure-cookies`` is for HTTP clients such as curl or httpx.
The demo users and passwords are in ``sessionward_demo.DEMO_PASSWORDS``; verification codes
are printed to the console (the fake outbox).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sessionward as sw  # noqa: E402
import sessionward_demo as demo  # noqa: E402
from sessionward.asgi import SessionMiddleware  # noqa: E402
from sessionward.web import (  # noqa: E402
    CookieSettings,
    RequestAuth,
    Requirement,
    RouteRequirements,
    requires,
    safe_next,
    session_summary,
)

try:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
    from starlette.routing import Route
except ImportError as exc:  # pragma: no cover - the example needs starlette
    raise SystemExit("this example needs starlette: pip install starlette uvicorn") from exc


def _auth(request: Request) -> RequestAuth:
    auth: RequestAuth = request.scope["sessionward.auth"]
    return auth


def _session(request: Request) -> sw.Session:
    session: sw.Session | None = request.state.session
    assert session is not None, "route is not exempt: the middleware validated a session"
    return session


async def _form(request: Request) -> dict[str, str]:
    return demo.parse_form(await request.body())


def _see_other(location: str, *cookies: str) -> Response:
    response = RedirectResponse(location, status_code=303)
    for cookie in cookies:
        response.headers.append("set-cookie", cookie)
    return response


def create_app(
    org: sw.Org | None = None,
    *,
    directory: demo.Directory | None = None,
    cookie: CookieSettings | None = None,
    trusted_proxies: Iterable[str] = (),
    forwarded_header: Literal["x-forwarded-for", "forwarded"] = "x-forwarded-for",
) -> Starlette:
    """The app around `org` (default: `sessionward_demo.make_org()`). ``app.state.org`` and
    ``app.state.directory`` give tests the org and the fake outbox."""
    org = org if org is not None else demo.make_org()
    directory = directory if directory is not None else demo.Directory()

    def finish_login(request: Request, result: demo.LoginResult) -> Response:
        if result.issued is not None:
            return _see_other(result.next_path, _auth(request).session_cookie(result.issued))
        return HTMLResponse(result.html, status_code=result.status)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def login(request: Request) -> Response:
        if request.method == "GET":
            return HTMLResponse(demo.login_form(safe_next(request.query_params.get("next"))))
        result = demo.password_login(org, directory, await _form(request), str(_auth(request).client_ip))
        return finish_login(request, result)

    async def login_verify(request: Request) -> Response:
        result = demo.verify_login(org, directory, await _form(request), str(_auth(request).client_ip))
        return finish_login(request, result)

    async def home(request: Request) -> Response:
        session = _session(request)
        return HTMLResponse(demo.home_page(session, session.user in directory.admins))

    # The middleware's route table already requires the `setup` operation here; the decorator
    # shows the per-view form (it re-validates with the same requirement).
    @requires(operation="setup")
    async def setup(request: Request) -> Response:
        return HTMLResponse(demo.setup_page(_session(request)))

    async def step_up(request: Request) -> Response:
        session = _session(request)
        if request.method == "GET":
            directory.step_up_codes[session.handle] = directory.send_code(session.user)
            return HTMLResponse(demo.step_up_form(safe_next(request.query_params.get("next"))))
        form = await _form(request)
        next_path = safe_next(form.get("next"))
        expected = directory.step_up_codes.pop(session.handle, None)
        if expected is None or expected != form.get("code"):
            return HTMLResponse(demo.step_up_form(next_path, "Wrong code."), status_code=401)
        _auth(request).step_up(sw.LoginMethod.MFA)
        return _see_other(next_path)

    @requires(operation="password_change")
    async def password_reset(request: Request) -> Response:
        session = _session(request)
        if request.method == "GET":
            return HTMLResponse(demo.reset_form())
        form = await _form(request)
        if not form.get("new_password"):
            return HTMLResponse(demo.reset_form("Choose a password."), status_code=400)
        directory.passwords[session.user] = form["new_password"]
        org.reset_password(session.user)  # ends every session of the user, this one included
        return _see_other("/login", _auth(request).clearing_cookie())

    async def admin_sessions(request: Request) -> Response:
        if _session(request).user not in directory.admins:
            return PlainTextResponse("admins only", status_code=403)
        user = request.query_params.get("user", "")
        ip = request.query_params.get("ip", "")
        try:
            rows = demo.list_sessions(org, user, ip)
        except sw.InvalidInput:
            return PlainTextResponse("bad filter", status_code=400)
        return HTMLResponse(demo.admin_page(rows, user, ip))

    async def admin_end(request: Request) -> Response:
        if _session(request).user not in directory.admins:
            return PlainTextResponse("admins only", status_code=403)
        try:
            org.end_session((await _form(request)).get("handle", ""))
        except sw.InvalidInput:
            return PlainTextResponse("bad handle", status_code=400)
        return _see_other("/admin/sessions")

    async def logout(request: Request) -> Response:
        return _see_other("/login", _auth(request).logout())

    async def api_login(request: Request) -> Response:
        form = await _form(request)
        user = form.get("user", "")
        if not directory.check_password(user, form.get("password", "")):
            return JSONResponse({"error": "invalid_credentials"}, status_code=401)
        outcome = org.login(user, str(_auth(request).client_ip), session_type=sw.SessionType.API)
        if not isinstance(outcome, sw.Issued):
            return JSONResponse({"error": type(outcome).__name__}, status_code=403)
        body = {"access_token": outcome.token, "token_type": "Bearer"}
        return Response(
            json.dumps(body), media_type="application/json", headers={"cache-control": "no-store"}
        )

    async def api_me(request: Request) -> Response:
        summary: dict[str, Any] = session_summary(_session(request))
        summary["client_ip"] = str(_auth(request).client_ip)
        return JSONResponse(summary)

    async def api_reports(request: Request) -> Response:
        # An OAuth resource: the middleware let through only an access token granted "read".
        grant = _auth(request).access_grant
        assert grant is not None, "a scoped route: the middleware authorized an access token"
        return JSONResponse(
            {"client_id": grant.client_id, "scopes": grant.scopes, "user": grant.session.user}
        )

    async def whoami(request: Request) -> Response:
        auth = _auth(request)
        return JSONResponse({"client_ip": str(auth.client_ip)})

    routes = RouteRequirements(
        {"/setup": Requirement(operation="setup"), "/api/reports": Requirement(scopes="read")}
    )
    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/whoami", whoami),
            Route("/login", login, methods=["GET", "POST"]),
            Route("/login/verify", login_verify, methods=["POST"]),
            Route("/", home),
            Route("/setup", setup),
            Route("/step-up", step_up, methods=["GET", "POST"]),
            Route("/password/reset", password_reset, methods=["GET", "POST"]),
            Route("/admin/sessions", admin_sessions),
            Route("/admin/sessions/end", admin_end, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/api/login", api_login, methods=["POST"]),
            Route("/api/me", api_me),
            Route("/api/reports", api_reports),
        ],
        middleware=[
            Middleware(
                SessionMiddleware,
                org=org,
                cookie=cookie,
                trusted_proxies=list(trusted_proxies),
                forwarded_header=forwarded_header,
                exempt_paths=["/healthz", "/whoami", "/login/verify", "/api/login"],
                login_url="/login",
                step_up_url="/step-up",
                api_prefixes=["/api/"],
                routes=routes,
                token_path="/oauth/token" if hasattr(org, "grant_client_credentials") else None,
            )
        ],
    )
    app.state.org = org
    app.state.directory = directory
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--insecure-cookies", action="store_true", help="plain-HTTP clients")
    parser.add_argument("--trusted-proxy", action="append", default=[], metavar="CIDR")
    args = parser.parse_args(argv)
    import uvicorn

    directory = demo.Directory(echo=True)
    cookie = CookieSettings.insecure_for_development() if args.insecure_cookies else None
    app = create_app(directory=directory, cookie=cookie, trusted_proxies=args.trusted_proxy)
    print(f"demo users: {', '.join(demo.DEMO_PASSWORDS)} (passwords in sessionward_demo.py)")
    # proxy_headers=False: sessionward's trusted_proxies decides whose X-Forwarded-For counts
    # (uvicorn would otherwise rewrite the peer address for 127.0.0.1 on its own).
    uvicorn.run(app, host=args.host, port=args.port, proxy_headers=False)


if __name__ == "__main__":
    main()
