"""Real servers for the web tests: the example apps under uvicorn (ASGI) and waitress (WSGI),
each in a thread of the test process on 127.0.0.1 with an ephemeral port, plus HTTP clients
bound to a chosen loopback source address (127.0.0.1 or 127.0.0.2).

Servers are started with a readiness poll (GET /healthz until it answers) and always stopped
(context managers). Nothing here prints a token.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx

# httpcore logs response headers (Set-Cookie with the token) at DEBUG, and the suite-wide leak
# check captures every record at DEBUG: keep the HTTP client's own chatter out.
for _name in ("httpcore", "httpx"):
    logging.getLogger(_name).setLevel(logging.WARNING)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
START_TIMEOUT = 10.0


def load_example(name: str) -> ModuleType:
    """Imports ``examples/<name>.py`` (once) by path."""
    module_name = f"_sessionward_example_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def _wait_ready(base_url: str, thread: threading.Thread) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise RuntimeError("server thread died during start-up")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"server at {base_url} not ready after {START_TIMEOUT}s")


@contextlib.contextmanager
def uvicorn_server(app: Any) -> Iterator[str]:
    """Serves an ASGI app with uvicorn on 127.0.0.1:<ephemeral>; yields the base URL."""
    import uvicorn

    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        lifespan="off",
        proxy_headers=False,  # the middleware decides which peers are trusted proxies
        ws="none",
        http="h11",
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base_url, thread)
        yield base_url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        assert not thread.is_alive(), "uvicorn did not stop"


@contextlib.contextmanager
def waitress_server(app: Any) -> Iterator[str]:
    """Serves a WSGI app with waitress on 127.0.0.1:<ephemeral>; yields the base URL."""
    import waitress.server
    from waitress import wasyncore

    server = waitress.server.create_server(
        app,
        host="127.0.0.1",
        port=0,
        threads=4,
        clear_untrusted_proxy_headers=False,  # the middleware decides, not waitress
    )
    port = server.effective_port  # type: ignore[union-attr]
    socket_map = server._map  # type: ignore[union-attr]
    stop = threading.Event()

    def run() -> None:
        # The loop runs and closes in this thread: closing sockets under a select() running in
        # another thread races.
        try:
            while not stop.is_set():
                wasyncore.loop(timeout=0.05, map=socket_map, count=1)
        finally:
            server.task_dispatcher.shutdown()
            wasyncore.close_all(socket_map)

    thread = threading.Thread(target=run, name="waitress-test", daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base_url, thread)
        yield base_url
    finally:
        stop.set()
        thread.join(timeout=10)
        assert not thread.is_alive(), "waitress did not stop"


@contextlib.contextmanager
def serve(framework: str, app: Any) -> Iterator[str]:
    """``uvicorn_server`` for ``"starlette"``, ``waitress_server`` for ``"flask"``."""
    runner = uvicorn_server if framework == "starlette" else waitress_server
    with runner(app) as base_url:
        yield base_url


def client(base_url: str, source: str = "127.0.0.1") -> httpx.Client:
    """An HTTP client keeping cookies, connecting from loopback address `source`, not following
    redirects (the tests look at them)."""
    return httpx.Client(
        base_url=base_url,
        transport=httpx.HTTPTransport(local_address=source),
        follow_redirects=False,
        timeout=10.0,
    )
