"""A Flask app protected by sessionward: login (with the emailed-code challenge), a
HIGH_ASSURANCE page with step-up, password change, an admin session list with End Session,
logout, a JSON API with bearer tokens, the browser-close beacon, an OAuth token endpoint and an
API route for OAuth clients (``/api/reports``, scope ``read``).

Run it (``pip install flask waitress``)::

    python examples/flask_app.py --port 8000 [--insecure-cookies] [--trusted-proxy 10.0.0.0/8]

Same routes and behaviour as ``starlette_app.py``; served by waitress. Verification codes are
printed to the console (the fake outbox).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sessionward as sw  # noqa: E402
import sessionward_demo as demo  # noqa: E402
from sessionward.web import (  # noqa: E402
    CookieSettings,
    RequestAuth,
    Requirement,
    RouteRequirements,
    requires,
    safe_next,
    session_summary,
)
from sessionward.wsgi import SessionMiddleware  # noqa: E402

try:
    from flask import Flask, Response, jsonify, redirect, request
except ImportError as exc:  # pragma: no cover - the example needs flask
    raise SystemExit("this example needs flask: pip install flask waitress") from exc


def _auth() -> RequestAuth:
    auth: RequestAuth = request.environ["sessionward.auth"]
    return auth


def _session() -> sw.Session:
    session: sw.Session | None = request.environ["sessionward.session"]
    assert session is not None, "route is not exempt: the middleware validated a session"
    return session


def _form() -> dict[str, str]:
    return demo.parse_form(request.get_data())


def _see_other(location: str, *cookies: str) -> Any:
    response = redirect(location, code=303)
    for cookie in cookies:
        response.headers.add("Set-Cookie", cookie)
    return response


def _html(body: str, status: int = 200) -> Response:
    return Response(body, status=status, mimetype="text/html")


def create_app(
    org: sw.Org | None = None,
    *,
    directory: demo.Directory | None = None,
    cookie: CookieSettings | None = None,
    trusted_proxies: Iterable[str] = (),
    forwarded_header: Literal["x-forwarded-for", "forwarded"] = "x-forwarded-for",
) -> Flask:
    """The app around `org` (default: `sessionward_demo.make_org()`).
    ``app.config["SESSIONWARD_ORG"]`` and ``app.config["DIRECTORY"]`` give tests the org and
    the fake outbox."""
    org = org if org is not None else demo.make_org()
    directory = directory if directory is not None else demo.Directory()
    app = Flask(__name__)
    app.config["SESSIONWARD_ORG"] = org
    app.config["DIRECTORY"] = directory

    def finish_login(result: demo.LoginResult) -> Any:
        if result.issued is not None:
            return _see_other(result.next_path, _auth().session_cookie(result.issued))
        return _html(result.html, result.status)

    @app.get("/healthz")
    def healthz() -> Any:
        return "ok"

    @app.get("/whoami")
    def whoami() -> Any:
        return jsonify(client_ip=str(_auth().client_ip))

    @app.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        if request.method == "GET":
            return _html(demo.login_form(safe_next(request.args.get("next"))))
        return finish_login(demo.password_login(org, directory, _form(), str(_auth().client_ip)))

    @app.post("/login/verify")
    def login_verify() -> Any:
        return finish_login(demo.verify_login(org, directory, _form(), str(_auth().client_ip)))

    @app.get("/")
    def home() -> Any:
        session = _session()
        return _html(demo.home_page(session, session.user in directory.admins))

    # The middleware's route table already requires the `setup` operation here; the decorator
    # shows the per-view form (it re-validates with the same requirement).
    @app.get("/setup")
    @requires(operation="setup")
    def setup() -> Any:
        return _html(demo.setup_page(_session()))

    @app.route("/step-up", methods=["GET", "POST"])
    def step_up() -> Any:
        session = _session()
        if request.method == "GET":
            directory.step_up_codes[session.handle] = directory.send_code(session.user)
            return _html(demo.step_up_form(safe_next(request.args.get("next"))))
        form = _form()
        next_path = safe_next(form.get("next"))
        expected = directory.step_up_codes.pop(session.handle, None)
        if expected is None or expected != form.get("code"):
            return _html(demo.step_up_form(next_path, "Wrong code."), 401)
        _auth().step_up(sw.LoginMethod.MFA)
        return _see_other(next_path)

    @app.route("/password/reset", methods=["GET", "POST"])
    @requires(operation="password_change")
    def password_reset() -> Any:
        session = _session()
        if request.method == "GET":
            return _html(demo.reset_form())
        form = _form()
        if not form.get("new_password"):
            return _html(demo.reset_form("Choose a password."), 400)
        directory.passwords[session.user] = form["new_password"]
        org.reset_password(session.user)  # ends every session of the user, this one included
        return _see_other("/login", _auth().clearing_cookie())

    @app.get("/admin/sessions")
    def admin_sessions() -> Any:
        if _session().user not in directory.admins:
            return Response("admins only", status=403)
        user = request.args.get("user", "")
        ip = request.args.get("ip", "")
        try:
            rows = demo.list_sessions(org, user, ip)
        except sw.InvalidInput:
            return Response("bad filter", status=400)
        return _html(demo.admin_page(rows, user, ip))

    @app.post("/admin/sessions/end")
    def admin_end() -> Any:
        if _session().user not in directory.admins:
            return Response("admins only", status=403)
        try:
            org.end_session(_form().get("handle", ""))
        except sw.InvalidInput:
            return Response("bad handle", status=400)
        return _see_other("/admin/sessions")

    @app.post("/logout")
    def logout() -> Any:
        return _see_other("/login", _auth().logout())

    @app.post("/api/login")
    def api_login() -> Any:
        form = _form()
        user = form.get("user", "")
        if not directory.check_password(user, form.get("password", "")):
            return jsonify(error="invalid_credentials"), 401
        outcome = org.login(user, str(_auth().client_ip), session_type=sw.SessionType.API)
        if not isinstance(outcome, sw.Issued):
            return jsonify(error=type(outcome).__name__), 403
        response = jsonify(access_token=outcome.token, token_type="Bearer")
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/api/me")
    def api_me() -> Any:
        summary = session_summary(_session())
        summary["client_ip"] = str(_auth().client_ip)
        return jsonify(summary)

    @app.get("/api/reports")
    def api_reports() -> Any:
        # An OAuth resource: the middleware let through only an access token granted "read".
        grant = _auth().access_grant
        assert grant is not None, "a scoped route: the middleware authorized an access token"
        return jsonify(client_id=grant.client_id, scopes=grant.scopes, user=grant.session.user)

    app.wsgi_app = SessionMiddleware(  # type: ignore[method-assign]
        app.wsgi_app,
        org,
        cookie=cookie,
        trusted_proxies=list(trusted_proxies),
        forwarded_header=forwarded_header,
        exempt_paths=["/healthz", "/whoami", "/login/verify", "/api/login"],
        login_url="/login",
        step_up_url="/step-up",
        api_prefixes=["/api/"],
        routes=RouteRequirements(
            {"/setup": Requirement(operation="setup"), "/api/reports": Requirement(scopes="read")}
        ),
        token_path="/oauth/token" if hasattr(org, "grant_client_credentials") else None,
    )
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--insecure-cookies", action="store_true", help="plain-HTTP clients")
    parser.add_argument("--trusted-proxy", action="append", default=[], metavar="CIDR")
    args = parser.parse_args(argv)
    cookie = CookieSettings.insecure_for_development() if args.insecure_cookies else None
    app = create_app(
        directory=demo.Directory(echo=True), cookie=cookie, trusted_proxies=args.trusted_proxy
    )
    print(f"demo users: {', '.join(demo.DEMO_PASSWORDS)} (passwords in sessionward_demo.py)")
    try:
        import waitress
    except ImportError:
        app.run(host=args.host, port=args.port)
    else:
        # waitress removes forwarding headers it was not told to trust; sessionward's
        # trusted_proxies decides instead, so let them through.
        waitress.serve(app, host=args.host, port=args.port, clear_untrusted_proxy_headers=False)


if __name__ == "__main__":
    main()
