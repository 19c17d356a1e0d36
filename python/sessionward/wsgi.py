"""WSGI middleware (Flask, Django's WSGI handler, any WSGI app): every request validated by the org.

::

    from flask import Flask
    import sessionward as sw
    from sessionward.wsgi import SessionMiddleware

    org = sw.Org()
    app = Flask(__name__)
    app.wsgi_app = SessionMiddleware(app.wsgi_app, org, exempt_paths=["/login", "/healthz"],
                                     login_url="/login", step_up_url="/step-up")

Same options and behaviour as `sessionward.asgi.SessionMiddleware` (the app sees the environ
without the session cookie and any ``Authorization: Bearer`` header unless
``keep_credentials=True``: changed in place). On success the `Session` is
in ``environ["sessionward.session"]`` and the `~sessionward.web.RequestAuth` in
``environ["sessionward.auth"]``; both are published (`sessionward.jobs.current_session`,
`sessionward.web.current_request`) while the application callable runs. A body the app streams
*after* returning (a generator consumed by the server) runs without them: read what you need
first.

The client IP is ``REMOTE_ADDR``, or the forwarding header when ``REMOTE_ADDR`` is a trusted
proxy. WSGI servers turn ``X-Forwarded-For`` into ``HTTP_X_FORWARDED_FOR``; waitress and
gunicorn drop headers spelled with underscores, so ``X_Forwarded_For`` cannot pose as it.
waitress also removes forwarding headers unless told otherwise: serve with
``clear_untrusted_proxy_headers=False`` so that ``trusted_proxies`` here decides (or leave
``trusted_proxies`` empty and configure waitress's own ``trusted_proxy``).
"""

from __future__ import annotations

from collections.abc import Iterable
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from sessionward import jobs
from sessionward.web import (
    MAX_TOKEN_REQUEST,
    GateMiddleware,
    WebResponse,
    _Request,
    _reset_current,
    _set_current,
    cookie_header_without,
    is_bearer_authorization,
    status_line,
)

__all__ = ["SessionMiddleware", "send_response"]


def send_response(start_response: StartResponse, response: WebResponse) -> list[bytes]:
    """Starts a `WebResponse` and returns its body iterable."""
    headers = list(response.headers)
    headers.append(("Content-Length", str(len(response.body))))
    start_response(status_line(response.status), headers)
    return [response.body]


def _path(environ: WSGIEnvironment) -> str:
    raw = str(environ.get("PATH_INFO", "") or "/")
    try:  # PEP 3333: the bytes as latin-1; the URL was UTF-8
        return raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return raw


def _request(environ: WSGIEnvironment) -> _Request:
    headers: dict[str, list[str]] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_") and isinstance(value, str):
            headers.setdefault(key[5:].replace("_", "-").lower(), []).append(value)
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = [str(environ["CONTENT_TYPE"])]
    # A WSGI server joins repeated headers with ", ": split Cookie back on ";" only (done by
    # parse_cookies) and forwarding headers on "," (done by the resolver).
    peer = environ.get("REMOTE_ADDR")
    return _Request(
        method=str(environ.get("REQUEST_METHOD", "GET")),
        path=_path(environ),
        query=str(environ.get("QUERY_STRING", "")),
        peer=str(peer) if peer else None,
        headers=headers,
    )


def _read_body(environ: WSGIEnvironment, limit: int) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length <= 0:
        return b""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    data = stream.read(min(length, limit + 1))
    return bytes(data)


def _remove_credentials(environ: WSGIEnvironment, cookie_name: str) -> None:
    """Takes the session cookie out of ``HTTP_COOKIE`` and removes an ``Authorization: Bearer``
    header, in place: PEP 3333 lets middleware change the environ, and so a reporter that holds
    the same dict further out (a WSGI error middleware) sees no token either."""
    cookie = environ.get("HTTP_COOKIE")
    if isinstance(cookie, str):
        rest = cookie_header_without(cookie, cookie_name)
        if rest:
            environ["HTTP_COOKIE"] = rest
        else:
            del environ["HTTP_COOKIE"]
    authorization = environ.get("HTTP_AUTHORIZATION")
    if isinstance(authorization, str) and is_bearer_authorization(authorization):
        del environ["HTTP_AUTHORIZATION"]


class SessionMiddleware(GateMiddleware[WSGIApplication]):
    """Validates every request of a WSGI app against `org`; the options are those of
    `sessionward.asgi.SessionMiddleware`."""

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = _request(environ)
        auth, refusal = self.gate.check(request)
        if auth is None:
            assert refusal is not None
            return send_response(start_response, refusal)
        endpoint = self.gate.endpoint(request.path)
        if endpoint is not None:
            body = _read_body(environ, MAX_TOKEN_REQUEST)
            return send_response(
                start_response, self.gate.answer_endpoint(endpoint, request, auth, body)
            )
        environ["sessionward.session"] = auth.session
        environ["sessionward.auth"] = auth
        if not self.keep_credentials:
            _remove_credentials(environ, self.cookie.name)
        published = jobs.set_request_session(auth.session)
        current = _set_current(auth)
        try:
            return self.app(environ, start_response)
        finally:
            _reset_current(current)
            jobs.reset_request_session(published)
