"""Named credentials (sessionward.credentials) against a real local HTTP server.

The fixture server is a ThreadingHTTPServer on 127.0.0.1 (port 0) acting as an
OAuth 2.0 token endpoint (client credentials grant, client auth by Basic
header or form body) and as a resource API that answers 401 to unknown or
revoked bearer tokens. Time is a fake clock; backoff sleeps are recorded, not
slept.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import copy
import json
import logging
import os
import pickle
import secrets
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from sessionward._tokens import make_token_for_tests
from sessionward.credentials import (
    CalloutError,
    CalloutResponse,
    CredentialError,
    CredentialHandle,
    CredentialNotPermitted,
    CredentialRegistry,
    NamedCredential,
    OAuthClientCredentials,
    Secret,
    StaticHeader,
    UnknownCredential,
    resolve_callout,
)
from sessionward.jobs import JobKind, arun_job, current_context, run_job, submit_job

CLIENT_ID = "sessionward-test-client"


# --------------------------------------------------------------------------- the server


class ServerState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.client_secret = "cs-" + secrets.token_urlsafe(24)
        self.api_key = "ak-" + secrets.token_urlsafe(24)
        self.token_hits = 0
        self.api_hits = 0
        self.issued: list[str] = []
        self.valid: set[str] = set()
        self.expires_in: Any = 3600
        self.token_delay = 0.0
        self.fail_next = 0  # answer 503 to this many token requests
        self.token_mode = "ok"  # ok | html | no_token | echo_secret
        self.reject_all_bearers = False
        self.auth_modes: list[str] = []
        self.scopes: list[str | None] = []
        self.api_tokens: list[str | None] = []
        self.api_requests: list[dict[str, Any]] = []

    def revoke_all(self) -> None:
        with self.lock:
            self.valid.clear()


class Handler(BaseHTTPRequestHandler):
    server: Any

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr
        pass

    @property
    def state(self) -> ServerState:
        return self.server.state  # type: ignore[no-any-return]

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _reply(
        self,
        status: int,
        payload: Any,
        content_type: str = "application/json",
        extra: dict[str, str] | None = None,
    ) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        if self.path == "/token":
            self._token()
        else:
            self._api()

    def do_GET(self) -> None:
        self._api()

    def _token(self) -> None:
        st = self.state
        form = urllib.parse.parse_qs(self._body().decode(), keep_blank_values=True)
        field = {k: v[0] for k, v in form.items()}
        with st.lock:
            st.token_hits += 1
            fail = st.fail_next > 0
            if fail:
                st.fail_next -= 1
        if st.token_delay:
            threading.Event().wait(st.token_delay)
        if fail:
            self._reply(503, {"error": "temporarily_unavailable"})
            return
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            raw = base64.b64decode(header[6:]).decode()
            cid, _, csecret = raw.partition(":")
            cid, csecret = urllib.parse.unquote_plus(cid), urllib.parse.unquote_plus(csecret)
            mode = "basic"
        else:
            cid, csecret, mode = field.get("client_id", ""), field.get("client_secret", ""), "post"
        with st.lock:
            st.auth_modes.append(mode)
            st.scopes.append(field.get("scope"))
        if field.get("grant_type") != "client_credentials":
            self._reply(400, {"error": "unsupported_grant_type"})
            return
        if cid != CLIENT_ID or csecret != st.client_secret:
            description = "client authentication failed"
            if st.token_mode == "echo_secret":
                description += f" for secret {csecret}"
            self._reply(
                401,
                {"error": "invalid_client", "error_description": description},
                extra={"WWW-Authenticate": "Basic"},
            )
            return
        if st.token_mode == "html":
            self._reply(200, b"<html>maintenance</html>", "text/html")
            return
        token = "at-" + secrets.token_urlsafe(16)
        with st.lock:
            st.issued.append(token)
            st.valid.add(token)
        if st.token_mode == "no_token":
            self._reply(200, {"token_type": "Bearer"})
            return
        self._reply(
            200,
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": st.expires_in,
                "scope": field.get("scope", ""),
            },
        )

    def _api(self) -> None:
        st = self.state
        body = self._body()
        with st.lock:
            st.api_hits += 1
        if self.path.startswith("/redirect"):
            self._reply(302, {}, extra={"Location": "http://127.0.0.2:9/elsewhere"})
            return
        if self.path.startswith("/static"):
            ok = self.headers.get("X-Api-Key") == st.api_key
            token = None
        else:
            auth = self.headers.get("Authorization", "")
            token = auth[7:] if auth.startswith("Bearer ") else None
            with st.lock:
                ok = token in st.valid and not st.reject_all_bearers
        with st.lock:
            st.api_tokens.append(token)
            st.api_requests.append(
                {
                    "path": self.path,
                    "method": self.command,
                    "body": body,
                    "content_type": self.headers.get("Content-Type"),
                }
            )
        if not ok:
            self._reply(
                401,
                {"error": "invalid_token"},
                extra={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
            return
        self._reply(200, {"path": self.path, "method": self.command, "body": body.decode()})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # 20 clients connect at once


@contextlib.contextmanager
def serve() -> Iterator[tuple[str, ServerState]]:
    """A token endpoint and API on 127.0.0.1 (ephemeral port): its base URL and state."""
    httpd = Server(("127.0.0.1", 0), Handler)
    httpd.state = ServerState()  # type: ignore[attr-defined]
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd.state  # type: ignore[attr-defined]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def server() -> Iterator[tuple[str, ServerState]]:
    with serve() as running:
        yield running


@pytest.fixture
def other_server() -> Iterator[tuple[str, ServerState]]:
    """A second, independent host (another token endpoint, another API)."""
    with serve() as running:
        yield running


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def erp(
    base: str,
    state: ServerState,
    *,
    secret: str | None = None,
    client_auth: str = "basic",
    token_url: str | None = None,
    **kw: Any,
) -> NamedCredential:
    return NamedCredential(
        "ERP",
        f"{base}/api",
        OAuthClientCredentials(
            token_url or f"{base}/token",
            CLIENT_ID,
            Secret(secret if secret is not None else state.client_secret),
            scopes=("write", "read"),
            client_auth=client_auth,  # type: ignore[arg-type]
            timeout=5,
        ),
        **kw,
    )


def registry(clock: FakeClock, sleeps: Sleeps, *creds: NamedCredential) -> CredentialRegistry:
    return CredentialRegistry(creds, clock=clock, sleep=sleeps)


def assert_no_secrets(
    state: ServerState, *texts: str, caplog: pytest.LogCaptureFixture | None = None
) -> None:
    everything = list(texts)
    if caplog is not None:
        everything += [r.getMessage() for r in caplog.records]
        everything += [str(r.args) for r in caplog.records]
        everything.append(caplog.text)
    for text in everything:
        assert state.client_secret not in text
        for token in state.issued:
            assert token not in text


# --------------------------------------------------------------------------- happy path


def test_callout_from_a_job(
    server: tuple[str, ServerState],
    clock: FakeClock,
    sleeps: Sleeps,
    caplog: pytest.LogCaptureFixture,
) -> None:
    base, state = server
    caplog.set_level(logging.DEBUG)
    reg = registry(clock, sleeps, erp(base, state))

    def body() -> tuple[Any, Any, str, dict[str, str]]:
        handle = current_context().credentials["ERP"]
        first = handle.request("GET", "callout:ERP/orders?status=open")
        second = handle.request("POST", "callout:ERP/orders", json={"n": 1})
        return first, second, resolve_callout("callout:ERP/orders?q=1"), handle.headers()

    first, second, resolved, headers = run_job(body, kind=JobKind.QUEUEABLE, credentials=reg)
    assert first.status == 200 and first.ok
    assert first.json()["path"] == "/api/orders?status=open"
    assert second.json() == {"path": "/api/orders", "method": "POST", "body": '{"n": 1}'}
    assert state.api_requests[1]["content_type"] == "application/json"
    assert resolved == f"{base}/api/orders?q=1"
    assert state.token_hits == 1  # cached across calls
    assert state.auth_modes == ["basic"]
    assert state.scopes == ["read write"]
    assert headers == {"Authorization": f"Bearer {state.issued[0]}"}
    assert state.api_tokens == [state.issued[0], state.issued[0]]
    assert "ERP" in caplog.text
    assert_no_secrets(state, caplog=caplog)


def test_client_secret_in_post_body(
    server: tuple[str, ServerState], clock: FakeClock, sleeps: Sleeps
) -> None:
    base, state = server
    reg = registry(clock, sleeps, erp(base, state, client_auth="post"))
    resp = run_job(
        lambda: current_context().credentials["ERP"].request("GET", "/ping"),
        kind=JobKind.BATCH,
        credentials=reg,
    )
    assert resp.status == 200
    assert resp.url == f"{base}/api/ping"
    assert state.auth_modes == ["post"]


def test_handle_url_forms(
    server: tuple[str, ServerState], clock: FakeClock, sleeps: Sleeps
) -> None:
    base, state = server
    reg = registry(clock, sleeps, erp(base, state))
    handle: CredentialHandle = run_job(
        lambda: current_context().credentials["ERP"], kind="batch", credentials=reg
    )
    assert handle.url("callout:ERP") == f"{base}/api"
    assert handle.url("callout:ERP?x=1") == f"{base}/api?x=1"
    assert handle.url("callout:ERP/a/b?x=1") == f"{base}/api/a/b?x=1"
    assert handle.url("/a") == f"{base}/api/a"
    assert handle.url(f"{base}/api/a") == f"{base}/api/a"
    for bad in (
        "callout:ERP/../admin",
        "callout:ERP/%2e%2e/admin",
        "callout:ERP@evil.example/x",
        "callout:OTHER/x",
        f"{base}/apix",
        f"{base}/admin",
        "https://evil.example/api/a",
        "a/b",
    ):
        with pytest.raises(ValueError):
            handle.url(bad)
    assert "Secret('***')" in repr(reg._credentials["ERP"].protocol)
    assert state.client_secret not in repr(handle) + repr(reg) + repr(reg._credentials["ERP"])


def test_resolve_callout_checks_the_job_may_use_the_credential(
    server: tuple[str, ServerState], clock: FakeClock, sleeps: Sleeps
) -> None:
    base, state = server
    reg = registry(clock, sleeps, erp(base, state, allowed_kinds=["batch"]))
    ctx = run_job(current_context, kind=JobKind.FUTURE, credentials=reg)
    with pytest.raises(CredentialNotPermitted):
        resolve_callout("callout:ERP/x", ctx)
    with pytest.raises(UnknownCredential):
        resolve_callout("callout:NOPE/x", ctx)
    with pytest.raises(ValueError):
        resolve_callout("https://example.com/x", ctx)


# --------------------------------------------------------------------------- cache and expiry


def test_token_expiry_and_refresh_on_the_fake_clock(
    server: tuple[str, ServerState], clock: FakeClock, sleeps: Sleeps
) -> None:
    base, state = server
    state.expires_in = 120  # kept for 120 - 30 (skew) = 90 s
    reg = registry(clock, sleeps, erp(base, state))
    handle = run_job(lambda: current_context().credentials["ERP"], kind="batch", credentials=reg)

    assert handle.request("GET", "/a").status == 200
    clock.now += 89
    assert handle.request("GET", "/b").status == 200
    assert state.token_hits == 1
    clock.now += 2
    assert handle.request("GET", "/c").status == 200
    assert state.token_hits == 2
    first, second = state.issued
    assert first != second
    assert state.api_tokens == [first, first, second]


def test_expires_in_as_a_string_and_short_lifetimes(
    server: tuple[str, ServerState], clock: FakeClock, sleeps: Sleeps
) -> None:
    base, state = server
    state.expires_in = "40"  # shorter than 2 * skew: kept for half its life
    reg = registry(clock, sleeps, erp(base, state))
    handle = run_job(lambda: current_context().credentials["ERP"], kind="batch", credentials=reg)
    handle.headers()
    clock.now += 19
    handle.headers()
    assert state.token_hits == 1
    clock.now += 2
    handle.headers()
    assert state.token_hits == 2


def test_twenty_concurrent_jobs_share_one_refresh(
    server: tuple[str, ServerState], clock: FakeClock, sleeps: Sleeps
) -> None:
    base, state = server
    state.token_delay = 0.3  # keep the refresh in flight while the others arrive
    reg = registry(clock, sleeps, erp(base, state))
    start = threading.Barrier(20)

    def job(i: int) -> int:
        start.wait(timeout=10)
        return current_context().credentials["ERP"].request("GET", f"callout:ERP/item/{i}").status

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        futures = [
            submit_job(pool, job, i, kind=JobKind.QUEUEABLE, credentials=reg) for i in range(20)
        ]
        statuses = [f.result(timeout=30) for f in futures]
    assert statuses == [200] * 20
    assert state.token_hits == 1
    assert set(state.api_tokens) == {state.issued[0]}


def test_401_is_retried_once_with_a_new_token(
    server: tuple[str, ServerState], clock: FakeClock, sleeps: Sleeps
) -> None:
    base, state = server
    reg = registry(clock, sleeps, erp(base, state))
    handle = run_job(lambda: current_context().credentials["ERP"], kind="batch", credentials=reg)
    assert handle.request("GET", "/a").status == 200
    state.revoke_all()  # the API forgets the token before it expires
    resp = handle.request("GET", "/b")
    assert resp.status == 200
    assert state.token_hits == 2
    first, second = state.issued
    assert state.api_tokens == [first, first, second]


def test_a_second_401_is_returned_not_looped(
    server: tuple[str, ServerState], clock: FakeClock, sleeps: Sleeps
) -> None:
    base, state = server
    state.reject_all_bearers = True
    reg = registry(clock, sleeps, erp(base, state))
    handle = run_job(lambda: current_context().credentials["ERP"], kind="batch", credentials=reg)
    resp = handle.request("GET", "/a")
    assert resp.status == 401
    assert resp.json() == {"error": "invalid_token"}
    assert state.api_hits == 2
    assert state.token_hits == 2


def test_redirects_are_not_followed(
    server: tuple[str, ServerState], clock: FakeClock, sleeps: Sleeps
) -> None:
    base, state = server
    reg = registry(
        clock,
        sleeps,
        NamedCredential(
            "R", base, OAuthClientCredentials(f"{base}/token", CLIENT_ID, state.client_secret)
        ),
    )
    handle = run_job(lambda: current_context().credentials["R"], kind="batch", credentials=reg)
    resp = handle.request("GET", "/redirect")
    assert resp.status == 302
    assert resp.headers["location"] == "http://127.0.0.2:9/elsewhere"
    assert state.api_hits == 1


# --------------------------------------------------------------------------- failures


def test_wrong_secret_is_a_clear_error_without_the_secret(
    server: tuple[str, ServerState],
    clock: FakeClock,
    sleeps: Sleeps,
    caplog: pytest.LogCaptureFixture,
) -> None:
    base, state = server
    state.token_mode = "echo_secret"  # a sloppy endpoint that echoes what it got
    wrong = "wrong-" + secrets.token_urlsafe(16)
    caplog.set_level(logging.DEBUG)
    reg = registry(clock, sleeps, erp(base, state, secret=wrong))
    handle = run_job(lambda: current_context().credentials["ERP"], kind="batch", credentials=reg)
    with pytest.raises(CredentialError) as info:
        handle.request("GET", "/a")
    err = info.value
    assert err.oauth_error == "invalid_client"
    assert err.status == 401
    assert err.credential == "ERP"
    assert "invalid_client" in str(err) and "'ERP'" in str(err)
    assert "client authentication failed" in str(err)
    assert state.token_hits == 1  # a refusal is not retried
    assert sleeps == []
    assert state.api_hits == 0
    for text in (str(err), repr(err)):
        assert wrong not in text
    assert all(wrong not in r.getMessage() for r in caplog.records)
    assert wrong not in caplog.text
    assert_no_secrets(state, str(err), caplog=caplog)


def test_concurrent_callers_share_a_failed_refresh(
    server: tuple[str, ServerState], clock: FakeClock, sleeps: Sleeps
) -> None:
    base, state = server
    state.token_delay = 0.3
    reg = registry(clock, sleeps, erp(base, state, secret="not-the-secret"))
    start = threading.Barrier(5)

    def job() -> str:
        start.wait(timeout=10)
        try:
            current_context().credentials["ERP"].headers()
        except CredentialError as exc:
            return exc.oauth_error or "?"
        return "no error"

    with concurrent.futures.ThreadPoolExecutor(max_workers=5) as pool:
        futures = [submit_job(pool, job, kind="batch", credentials=reg) for _ in range(5)]
        outcomes = [f.result(timeout=30) for f in futures]
    assert outcomes == ["invalid_client"] * 5
    assert state.token_hits == 1  # the waiters did not each retry a failing endpoint


def test_endpoint_down_fails_after_bounded_backoff(
    clock: FakeClock, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"  # closed: connection refused
    secret = "cs-" + secrets.token_urlsafe(24)
    caplog.set_level(logging.DEBUG)
    reg = registry(
        clock,
        sleeps,
        NamedCredential("ERP", base, OAuthClientCredentials(f"{base}/token", CLIENT_ID, secret)),
    )
    handle = run_job(lambda: current_context().credentials["ERP"], kind="batch", credentials=reg)
    with pytest.raises(CredentialError) as info:
        handle.headers()
    assert "unreachable" in str(info.value)
    assert "3 attempt" in str(info.value)
    assert sleeps == [0.5, 1.0]
    assert secret not in str(info.value) and secret not in caplog.text


def test_transient_503_is_retried_with_backoff(
    server: tuple[str, ServerState], clock: FakeClock, sleeps: Sleeps
) -> None:
    base, state = server
    state.fail_next = 2
    reg = registry(clock, sleeps, erp(base, state))
    handle = run_job(lambda: current_context().credentials["ERP"], kind="batch", credentials=reg)
    assert handle.request("GET", "/a").status == 200
    assert state.token_hits == 3
    assert sleeps == [0.5, 1.0]


def test_persistent_503_gives_up(
    server: tuple[str, ServerState], clock: FakeClock, sleeps: Sleeps
) -> None:
    base, state = server
    state.fail_next = 10
    reg = CredentialRegistry(
        [erp(base, state)], clock=clock, sleep=sleeps, max_attempts=4, backoff=1, max_backoff=3
    )
    handle = run_job(lambda: current_context().credentials["ERP"], kind="batch", credentials=reg)
    with pytest.raises(CredentialError, match="HTTP 503") as info:
        handle.headers()
    assert info.value.status == 503
    assert state.token_hits == 4
    assert sleeps == [1, 2, 3]


@pytest.mark.parametrize(
    ("mode", "message"), [("html", "did not answer JSON"), ("no_token", "without an access_token")]
)
def test_nonsense_from_the_token_endpoint(
    server: tuple[str, ServerState], clock: FakeClock, sleeps: Sleeps, mode: str, message: str
) -> None:
    base, state = server
    state.token_mode = mode
    reg = registry(clock, sleeps, erp(base, state))
    handle = run_job(lambda: current_context().credentials["ERP"], kind="batch", credentials=reg)
    with pytest.raises(CredentialError, match=message):
        handle.headers()
    assert state.token_hits == 1


def test_callout_to_a_dead_api_is_a_callout_error(
    server: tuple[str, ServerState], clock: FakeClock, sleeps: Sleeps
) -> None:
    base, state = server
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    cred = NamedCredential(
        "ERP", dead, OAuthClientCredentials(f"{base}/token", CLIENT_ID, state.client_secret)
    )
    reg = registry(clock, sleeps, cred)
    handle = run_job(lambda: current_context().credentials["ERP"], kind="batch", credentials=reg)
    with pytest.raises(CalloutError) as info:
        handle.request("GET", "/a")
    assert_no_secrets(state, str(info.value))


# --------------------------------------------------------------------------- permissions


def test_kind_and_profile_restrictions(
    server: tuple[str, ServerState], clock: FakeClock, sleeps: Sleeps
) -> None:
    base, state = server
    cred = erp(
        base, state, allowed_kinds=["batch", JobKind.SCHEDULED], allowed_profiles=["Integration"]
    )
    reg = registry(clock, sleeps, cred)

    def use() -> str:
        return current_context().credentials["ERP"].name

    assert run_job(use, kind="batch", profile="Integration", credentials=reg) == "ERP"
    with pytest.raises(CredentialNotPermitted, match="not permitted for future jobs") as kind_err:
        run_job(use, kind="future", profile="Integration", credentials=reg)
    assert "batch, scheduled" in str(kind_err.value)
    with pytest.raises(CredentialNotPermitted, match="run-as profile 'Standard User'"):
        run_job(use, kind="batch", profile="Standard User", credentials=reg)
    with pytest.raises(CredentialNotPermitted, match="run-as profile None"):
        run_job(use, kind="batch", credentials=reg)
    with pytest.raises(UnknownCredential) as unknown:
        run_job(lambda: current_context().credentials["CRM"], kind="batch", credentials=reg)
    assert str(unknown.value) == "no named credential 'CRM' is registered"
    assert isinstance(unknown.value, KeyError)
    assert not isinstance(kind_err.value, KeyError)
    assert state.token_hits == 0  # refused before any token request

    allowed = run_job(
        lambda: (list(current_context().credentials), "ERP" in current_context().credentials),
        kind="batch",
        profile="Integration",
        credentials=reg,
    )
    denied = run_job(
        lambda: (
            list(current_context().credentials),
            "ERP" in current_context().credentials,
            current_context().credentials.get("CRM"),
        ),
        kind="event",
        profile="Integration",
        credentials=reg,
    )
    assert allowed == (["ERP"], True)
    assert denied == ([], False, None)


def test_registry_names_are_unique_and_replace_drops_the_cache(
    server: tuple[str, ServerState], clock: FakeClock, sleeps: Sleeps
) -> None:
    base, state = server
    reg = registry(clock, sleeps, erp(base, state))
    handle = run_job(lambda: current_context().credentials["ERP"], kind="batch", credentials=reg)
    handle.headers()
    with pytest.raises(ValueError, match="already registered"):
        reg.register(erp(base, state))
    reg.register(erp(base, state), replace=True)
    handle.headers()
    assert state.token_hits == 2
    assert reg.names() == ["ERP"]
    reg.unregister("ERP")
    with pytest.raises(UnknownCredential):
        run_job(lambda: current_context().credentials["ERP"], kind="batch", credentials=reg)


def test_a_replaced_credential_never_shares_tokens_with_its_successor(
    server: tuple[str, ServerState],
    other_server: tuple[str, ServerState],
    clock: FakeClock,
    sleeps: Sleeps,
) -> None:
    # The cache used to be keyed by name: a handle taken before the replacement fetched a token
    # from the old token endpoint and stored it under "ERP", and handles on the new credential
    # then sent the old host's token to the new host.
    old_base, old_host = server
    new_base, new_host = other_server
    reg = registry(clock, sleeps, erp(old_base, old_host))

    def job() -> list[int]:
        stale = current_context().credentials["ERP"]
        statuses = [stale.request("GET", "callout:ERP/before").status]
        reg.register(erp(new_base, new_host), replace=True)
        statuses.append(stale.request("GET", "callout:ERP/in-flight").status)
        fresh = current_context().credentials["ERP"]
        statuses.append(fresh.request("GET", "callout:ERP/after").status)
        statuses.append(stale.request("GET", "callout:ERP/in-flight-again").status)
        stale.invalidate()  # forgets the old credential's tokens, not the new one's
        statuses.append(fresh.request("GET", "callout:ERP/again").status)
        assert fresh.endpoint == f"{new_base}/api" and stale.endpoint == f"{old_base}/api"
        return statuses

    assert run_job(job, kind="batch", credentials=reg) == [200] * 5
    # Each host only ever saw tokens it issued itself.
    assert [r["path"] for r in new_host.api_requests] == ["/api/after", "/api/again"]
    assert new_host.api_tokens == [new_host.issued[0]] * 2
    assert new_host.token_hits == 1  # cached, and kept through the stale handle's invalidate()
    assert [r["path"] for r in old_host.api_requests] == [
        "/api/before",
        "/api/in-flight",
        "/api/in-flight-again",
    ]
    assert set(old_host.api_tokens) <= set(old_host.issued)
    # After the replacement the old credential's tokens are fetched per use, never cached.
    assert old_host.token_hits == 3


def test_callout_response_repr_shows_neither_header_values_nor_the_body() -> None:
    # A callout's answer can be a token (the org's own token endpoint answers with one) or set
    # the API's cookies; the generated dataclass repr printed both.
    token = make_token_for_tests(os.urandom(32))
    response = CalloutResponse(
        status=200,
        headers={"content-type": "application/json", "set-cookie": "sid=cookie-of-the-api"},
        body=json.dumps({"access_token": token}).encode(),
        url="https://erp.example.com/api/token",
    )
    text = repr(response)
    assert token not in text and "cookie-of-the-api" not in text and "access_token" not in text
    assert text == (
        "CalloutResponse(status=200, url='https://erp.example.com/api/token', "
        f"headers=<content-type, set-cookie>, body=<{len(response.body)} bytes>)"
    )
    assert response.json() == {"access_token": token}  # the data itself is all there


def test_configuration_is_validated() -> None:
    with pytest.raises(ValueError, match="https"):
        NamedCredential("ERP", "http://erp.example.com/api", StaticHeader("X-Key", "k"))
    with pytest.raises(ValueError, match="https"):
        OAuthClientCredentials("http://login.example.com/token", "id", "s")
    with pytest.raises(ValueError, match="user info"):
        NamedCredential("ERP", "https://u:p@erp.example.com", StaticHeader("X-Key", "k"))
    with pytest.raises(ValueError, match="client_auth"):
        OAuthClientCredentials("https://login.example.com/token", "id", "s", client_auth="jwt")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="name must start with a letter"):
        NamedCredential("ERP/x", "https://erp.example.com", StaticHeader("X-Key", "k"))
    with pytest.raises(ValueError, match="allowed_kinds"):
        NamedCredential(
            "ERP", "https://erp.example.com", StaticHeader("X-Key", "k"), allowed_kinds=["cron"]
        )
    with pytest.raises(ValueError, match="CR, LF"):
        StaticHeader("X-Key", "k\r\nX-Injected: 1")
    ok = OAuthClientCredentials("https://login.example.com/token", "id", "s", scopes="a b a")
    assert ok.scopes == ("a", "b")
    assert (
        NamedCredential("E", "http://[::1]:8080/", StaticHeader("X-Key", "k")).endpoint
        == "http://[::1]:8080"
    )


# --------------------------------------------------------------------------- Secret


def test_secret_is_masked_everywhere_and_does_not_pickle() -> None:
    value = "s3cr3t-" + secrets.token_urlsafe(12)
    s = Secret(value)
    renderings = [
        repr(s),
        str(s),
        f"{s}",
        f"{s!r}",
        f"{s!s}",
        f"{s:>40}",
        "%s" % s,  # noqa: UP031 - on purpose
        "%r" % (s,),  # noqa: UP031
        "{}".format(s),  # noqa: UP032 - on purpose
        repr([s]),
        repr({"k": s}),
        repr(OAuthClientCredentials("https://l.example/t", "id", s)),
        repr(StaticHeader("X-Key", s)),
    ]
    for text in renderings:
        assert value not in text
        assert "Secret('***')" in text
    assert s.reveal() == value
    for obj in (
        s,
        [s],
        OAuthClientCredentials("https://l.example/t", "id", s),
        StaticHeader("X-Key", s),
        NamedCredential("E", "https://e.example", StaticHeader("X-Key", s)),
    ):
        with pytest.raises(TypeError):
            pickle.dumps(obj)
    with pytest.raises(TypeError):
        json.dumps({"s": s})
    with pytest.raises(TypeError):
        hash(s)
    with pytest.raises(AttributeError):
        s._value = "other"  # type: ignore[misc]
    assert copy.copy(s) is s and copy.deepcopy(s) is s
    assert s == Secret(value)
    assert s != Secret(value + "x")
    assert s != value  # a Secret never equals a plain str
    with pytest.raises(TypeError):
        Secret(b"bytes")  # type: ignore[arg-type]


def test_errors_survive_pickling_with_their_fields() -> None:
    # job results travel through brokers and result backends
    err = pickle.loads(
        pickle.dumps(
            CredentialError("m", credential="ERP", status=401, oauth_error="invalid_client")
        )
    )
    assert (str(err), err.credential, err.status, err.oauth_error) == (
        "m",
        "ERP",
        401,
        "invalid_client",
    )
    unknown = pickle.loads(
        pickle.dumps(UnknownCredential("no named credential 'X' is registered", credential="X"))
    )
    assert isinstance(unknown, KeyError) and str(unknown) == "no named credential 'X' is registered"
    assert unknown.credential == "X"


def test_large_callout_bodies_are_read_whole(
    server: tuple[str, ServerState], clock: FakeClock, sleeps: Sleeps
) -> None:
    base, state = server
    reg = registry(clock, sleeps, erp(base, state))
    handle = run_job(lambda: current_context().credentials["ERP"], kind="batch", credentials=reg)
    payload = b"x" * (3 << 20)
    resp = handle.request("POST", "/echo", data=payload)
    assert resp.status == 200
    assert len(resp.json()["body"]) == len(payload)


def test_secret_comparison_uses_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    import hmac

    import sessionward.credentials as mod

    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(mod.hmac, "compare_digest", spy)
    assert Secret("abc") == Secret("abc")
    assert calls == [(b"abc", b"abc")]


# --------------------------------------------------------------------------- static header


def test_static_header_credential(
    server: tuple[str, ServerState], clock: FakeClock, sleeps: Sleeps
) -> None:
    base, state = server
    reg = registry(
        clock,
        sleeps,
        NamedCredential("KEYED", base, StaticHeader("X-Api-Key", Secret(state.api_key))),
    )
    handle = run_job(lambda: current_context().credentials["KEYED"], kind="event", credentials=reg)
    assert handle.headers() == {"X-Api-Key": state.api_key}
    assert handle.request("GET", "callout:KEYED/static/x").status == 200
    state.api_key = "rotated"
    assert handle.request("GET", "callout:KEYED/static/x").status == 401
    assert state.api_hits == 2  # nothing to refresh: a static key's 401 is not retried
    assert state.token_hits == 0


# --------------------------------------------------------------------------- requests / httpx


def test_requests_auth(server: tuple[str, ServerState], clock: FakeClock, sleeps: Sleeps) -> None:
    requests = pytest.importorskip("requests")
    base, state = server
    reg = registry(clock, sleeps, erp(base, state))

    def body() -> tuple[Any, Any]:
        handle = current_context().credentials["ERP"]
        with requests.Session() as http:
            first = http.get(handle.url("callout:ERP/one"), auth=handle.auth, timeout=10)
            state.revoke_all()
            second = http.post(
                handle.url("callout:ERP/two"), data=b"payload", auth=handle.auth, timeout=10
            )
            with pytest.raises(CredentialError, match="outside the endpoint"):
                http.get(f"{base}/other", auth=handle.auth, timeout=10)
        return (first.status_code, first.json()["path"]), (
            second.status_code,
            len(second.history),
            second.json(),
        )

    first, second = run_job(body, kind="batch", credentials=reg)
    assert first == (200, "/api/one")
    assert second[0] == 200 and second[1] == 1
    assert second[2]["body"] == "payload"  # the body was sent again on the retry
    assert state.token_hits == 2
    t1, t2 = state.issued
    assert state.api_tokens == [t1, t1, t2]


def test_httpx_auth_sync_and_async(
    server: tuple[str, ServerState], clock: FakeClock, sleeps: Sleeps
) -> None:
    httpx = pytest.importorskip("httpx")
    base, state = server
    reg = registry(clock, sleeps, erp(base, state))

    def sync_body() -> tuple[int, int]:
        handle = current_context().credentials["ERP"]
        assert isinstance(handle.auth, httpx.Auth)
        with httpx.Client() as client:
            assert client.get(handle.url("callout:ERP/a"), auth=handle.auth).status_code == 200
            state.revoke_all()
            resp = client.get(handle.url("callout:ERP/b"), auth=handle.auth)
            with pytest.raises(CredentialError):
                client.get(f"{base}/other", auth=handle.auth)
            return resp.status_code, len(resp.history)

    assert run_job(sync_body, kind="batch", credentials=reg) == (200, 1)
    assert state.token_hits == 2

    async def async_body() -> tuple[int, int]:
        handle = current_context().credentials["ERP"]
        async with httpx.AsyncClient() as client:
            state.revoke_all()
            resp = await client.get(handle.url("callout:ERP/c"), auth=handle.auth)
            return resp.status_code, len(resp.history)

    assert asyncio.run(arun_job(async_body, kind="future", credentials=reg)) == (200, 1)
    assert state.token_hits == 3
    t1, t2, t3 = state.issued
    assert state.api_tokens == [t1, t1, t2, t2, t3]
