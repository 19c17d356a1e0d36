"""ASGI middleware (Starlette, FastAPI, any ASGI app): every request validated by the org.

::

    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    import sessionward as sw
    from sessionward.asgi import SessionMiddleware
    from sessionward.web import Requirement

    org = sw.Org(sw.OrgSettings(high_assurance_operations=["setup"]))
    app = Starlette(routes=[...], middleware=[
        Middleware(SessionMiddleware, org=org, exempt_paths=["/login", "/healthz"],
                   login_url="/login", step_up_url="/step-up",
                   routes={"/setup": Requirement(operation="setup")}),
    ])

For each HTTP or WebSocket request the middleware resolves the client IP (the socket peer, or
the forwarding header when the peer is a trusted proxy), reads the token (``Authorization:
Bearer`` first, then the session cookie), and validates it with the route's `Requirement`.
On success the `Session` is in ``scope["state"]["session"]`` (Starlette: ``request.state.session``)
and ``scope["sessionward.session"]``, the `~sessionward.web.RequestAuth` in
``scope["sessionward.auth"]``, and both are published for the duration of the request
(`sessionward.jobs.current_session`, `sessionward.web.current_request`); a job started from the
request runs without them. A refusal is answered by the middleware: JSON 401 for API requests,
a 303 redirect to the login or step-up page for browsers, a clearing cookie when the session is
over; a refused WebSocket is closed with code 1008 before it is accepted.

Behind a reverse proxy, let the middleware decide whom to trust: run uvicorn with
``proxy_headers=False`` (``--no-proxy-headers``); by default uvicorn itself rewrites the client
address from ``X-Forwarded-For`` for peers in ``forwarded_allow_ips`` (127.0.0.1).

The middleware also answers the browser-close beacon (``POST /sessionward/beacon``) and, with
``token_path=``, the OAuth 2.0 token endpoint.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from sessionward import jobs
from sessionward.web import (
    MAX_TOKEN_REQUEST,
    CookieSettings,
    GateMiddleware,
    Requirement,
    RequestAuth,
    RouteRequirements,
    WebResponse,
    _asgi_headers,
    _Request,
    _reset_current,
    _set_current,
    cookie_header_without,
    is_bearer_authorization,
)

__all__ = ["ASGIApp", "Receive", "Scope", "Send", "SessionMiddleware", "send_response"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def send_response(send: Send, response: WebResponse) -> None:
    """Sends a `WebResponse` as ``http.response.start`` + ``http.response.body``."""
    await send(
        {
            "type": "http.response.start",
            "status": response.status,
            "headers": _asgi_headers(response),
        }
    )
    await send({"type": "http.response.body", "body": response.body, "more_body": False})


def _headers_without_credentials(headers: Any, cookie_name: str) -> list[tuple[bytes, bytes]]:
    """The scope's headers without the session cookie and any ``Authorization: Bearer``."""
    kept: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        name, value = bytes(name), bytes(value)
        lowered = name.lower()
        if lowered == b"cookie":
            rest = cookie_header_without(value.decode("latin-1"), cookie_name)
            if rest:
                kept.append((name, rest.encode("latin-1")))
        elif not (lowered == b"authorization" and is_bearer_authorization(value.decode("latin-1"))):
            kept.append((name, value))
    return kept


def _request(scope: Scope) -> _Request:
    headers: dict[str, list[str]] = {}
    for name, value in scope.get("headers", ()):
        headers.setdefault(bytes(name).decode("latin-1").lower(), []).append(
            bytes(value).decode("latin-1")
        )
    client = scope.get("client")
    return _Request(
        method=str(scope.get("method", "GET")),
        path=str(scope.get("path", "/")),
        query=bytes(scope.get("query_string", b"")).decode("latin-1"),
        peer=str(client[0]) if client else None,
        headers=headers,
    )


async def _read_body(receive: Receive, limit: int) -> bytes:
    """The request body, at most `limit` + 1 bytes (the rest is drained and dropped)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = bytes(message.get("body", b""))
        if size <= limit:
            chunks.append(chunk[: limit + 1 - size])
            size += len(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


class SessionMiddleware(GateMiddleware[ASGIApp]):
    """Validates every request of an ASGI app against `org`.

    Options (all keyword-only):

    - `cookie`: `CookieSettings` of the session cookie (default ``__Host-sessionward``, Secure,
      HttpOnly, SameSite=Lax).
    - `trusted_proxies`: CIDR ranges whose forwarding header is honoured (default none: the
      socket peer is the client); `forwarded_header`: ``"x-forwarded-for"`` or ``"forwarded"``.
    - `exempt_paths`: patterns (``/login``, ``/static/*``) let through without a session (the
      request still gets a `RequestAuth` with ``session=None`` and its client IP). The login URL,
      beacon path and token path are always exempt.
    - `login_url`, `step_up_url`: where browsers are sent on refusal (``?next=`` appended).
    - `api_prefixes`: paths answered in API style (JSON 401), besides any bearer request.
    - `routes`: a `RouteRequirements` (or mapping of pattern to `Requirement`) checked before
      the app runs; use `sessionward.web.requires` on a view for the same in the view.
      ``Requirement(scopes=...)`` serves a route to OAuth clients: a bearer access token with
      those scopes, refused per RFC 6750 (401 ``invalid_token``, 403 ``insufficient_scope``).
    - `beacon_path`: the browser-close beacon (``None`` disables it).
    - `token_path`: serve the OAuth 2.0 client-credentials token endpoint here (off by default).
    - `keep_credentials`: by default the app sees the request without its credentials: the
      session cookie is taken out of the ``Cookie`` header (the other cookies stay) and an
      ``Authorization: Bearer`` header is removed, so that an error reporter or debug page
      that records the request's headers (the ASGI scope, WSGI environ, a framework's
      ``request.headers`` or ``META``) records no token. The app does not need them: the
      `RequestAuth` acts with the token (`logout`, `step_up`, `revalidate`). ``True`` passes
      them through, for an app that forwards them itself (a proxy).
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request = _request(scope)
        auth, refusal = self.gate.check(request)
        if auth is None:
            assert refusal is not None
            if kind == "websocket":
                await receive()  # websocket.connect
                await send({"type": "websocket.close", "code": 1008})
            else:
                await send_response(send, refusal)
            return
        endpoint = self.gate.endpoint(request.path) if kind == "http" else None
        if endpoint is not None:
            body = await _read_body(receive, MAX_TOKEN_REQUEST)
            await send_response(send, self.gate.answer_endpoint(endpoint, request, auth, body))
            return
        await self._run(auth, dict(scope), receive, send)

    async def _run(self, auth: RequestAuth, scope: Scope, receive: Receive, send: Send) -> None:
        state = dict(scope.get("state") or {})
        state["session"] = auth.session
        scope["state"] = state
        scope["sessionward.session"] = auth.session
        scope["sessionward.auth"] = auth
        if not self.keep_credentials:
            scope["headers"] = _headers_without_credentials(scope.get("headers", ()), self.cookie.name)
        published = jobs.set_request_session(auth.session)
        current = _set_current(auth)
        try:
            await self.app(scope, receive, send)
        finally:
            _reset_current(current)
            jobs.reset_request_session(published)
