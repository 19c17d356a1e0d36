"""Job contexts (sessionward.jobs): no session inside a job, ever, and no token in a payload."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import dataclasses
import functools
import ipaddress
import logging
import os
from typing import Any

import pytest
from conftest import HOME, OFFICE, remember_secret

import sessionward as sw
from sessionward._tokens import make_token_for_tests
from sessionward.credentials import Secret, UnknownCredential
from sessionward.jobs import (
    JobContext,
    JobKind,
    NoSessionInJob,
    NotInJob,
    TokenInJobPayload,
    arun_job,
    current_context,
    current_session,
    guard_payload,
    in_job,
    request_session,
    reset_request_session,
    run_job,
    set_request_session,
    submit_job,
)
from sessionward.web import CookieSettings, RequestAuth, Requirement


def fresh_token() -> str:
    return make_token_for_tests(os.urandom(32))


class FakeSession:
    """Stands in for the native session object the web middleware publishes."""

    def __init__(self) -> None:
        self.session_id = "handle-of-a-request-session"


def observe() -> dict[str, Any]:
    """What a job body can see about sessions."""
    ctx = current_context()
    try:
        current_session()
    except NoSessionInJob as exc:
        raised: str | None = str(exc)
    else:
        raised = None
    return {
        "ctx": ctx,
        "session_id": ctx.session_id,
        "current_session_raised": raised,
        "request_session": request_session(),
        "in_job": in_job(),
    }


def assert_sessionless(seen: dict[str, Any]) -> None:
    assert seen["session_id"] is None
    assert seen["current_session_raised"] is not None
    assert "named credential" in seen["current_session_raised"]
    assert seen["request_session"] is None
    assert seen["in_job"] is True


@pytest.fixture
def request_scope() -> Any:
    """Publish a session like the web middleware does, and withdraw it afterwards."""
    session = FakeSession()
    token = set_request_session(session)
    try:
        yield session
    finally:
        reset_request_session(token)


# --------------------------------------------------------------------------- basics


def test_context_fields_inside_a_job() -> None:
    seen = run_job(observe, kind=JobKind.BATCH, run_as="005-integration", profile="Integration")
    ctx: JobContext = seen["ctx"]
    assert ctx.kind is JobKind.BATCH
    assert ctx.run_as == "005-integration"
    assert ctx.profile == "Integration"
    assert ctx.job_id  # generated
    assert_sessionless(seen)


def test_job_ids_are_unique_unless_given() -> None:
    a = run_job(current_context, kind="future")
    b = run_job(current_context, kind="future")
    assert a.job_id != b.job_id
    assert run_job(current_context, kind="future", job_id="job-7").job_id == "job-7"


def test_kind_accepts_names_and_rejects_unknown_kinds() -> None:
    assert run_job(current_context, kind="SCHEDULED").kind is JobKind.SCHEDULED
    with pytest.raises(ValueError, match="kind must be one of batch, future"):
        run_job(current_context, kind="cron")


def test_context_is_immutable_and_session_id_always_none() -> None:
    ctx = run_job(current_context, kind=JobKind.EVENT)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.run_as = "someone"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        ctx.session_id = "x"  # type: ignore[misc]
    assert ctx.session_id is None


def test_outside_a_job() -> None:
    assert not in_job()
    with pytest.raises(NotInJob):
        current_context()
    assert current_session() is None


def test_current_session_outside_jobs_returns_the_request_session(
    request_scope: FakeSession,
) -> None:
    assert current_session() is request_scope
    assert request_session() is request_scope


def test_args_and_kwargs_reach_the_body() -> None:
    def body(a: int, b: int, *, scale: int) -> int:
        return (a + b) * scale

    assert run_job(body, 2, 3, kind=JobKind.BATCH, scale=10) == 50


def test_a_job_cannot_publish_a_session() -> None:
    def body() -> None:
        set_request_session(FakeSession())

    with pytest.raises(NoSessionInJob):
        run_job(body, kind=JobKind.FUTURE)


def test_a_job_has_no_credentials_without_a_registry() -> None:
    ctx = run_job(current_context, kind=JobKind.FUTURE)
    assert len(ctx.credentials) == 0
    assert "ERP" not in ctx.credentials
    with pytest.raises(UnknownCredential, match="no credential registry"):
        ctx.credentials["ERP"]
    with pytest.raises(KeyError):  # UnknownCredential is a KeyError
        ctx.credentials["ERP"]


# --------------------------------------------------------------------------- from inside a request


def test_sync_job_started_inside_a_request_has_no_session(request_scope: FakeSession) -> None:
    seen = run_job(observe, kind=JobKind.QUEUEABLE)
    assert_sessionless(seen)
    # the caller's request context is untouched
    assert current_session() is request_scope
    assert not in_job()


def test_asyncio_task_created_inside_a_request_runs_the_job_without_session() -> None:
    async def request_handler() -> tuple[Any, dict[str, Any], dict[str, Any]]:
        session = FakeSession()
        set_request_session(session)

        async def async_body() -> dict[str, Any]:
            await asyncio.sleep(0)
            return observe()

        async def plain_task() -> Any:
            return current_session()

        # Control: an ordinary task inherits a copy of the request context and
        # does see the session. The job, spawned the same way, must not.
        leaked = await asyncio.create_task(plain_task())
        seen_async = await asyncio.create_task(arun_job(async_body, kind=JobKind.FUTURE))
        seen_sync = await asyncio.create_task(arun_job(observe, kind=JobKind.FUTURE))
        assert current_session() is session
        return leaked, seen_async, seen_sync

    leaked, seen_async, seen_sync = asyncio.run(request_handler())
    assert isinstance(leaked, FakeSession)
    assert_sessionless(seen_async)
    assert_sessionless(seen_sync)
    assert seen_async["ctx"].kind is JobKind.FUTURE


def test_thread_pool_job_has_no_session_even_on_a_reused_worker(request_scope: FakeSession) -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        # A web framework that runs sync handlers on a pool leaves the session
        # in the worker thread's context (e.g. a request handled there earlier).
        pool.submit(set_request_session, FakeSession()).result(timeout=10)
        assert pool.submit(request_session).result(timeout=10) is not None
        # A context copied at submit time would carry the caller's session too.
        seen = submit_job(pool, observe, kind=JobKind.QUEUEABLE).result(timeout=10)
    assert_sessionless(seen)


def test_arun_job_cancellation_reaches_the_job() -> None:
    started = asyncio.Event()
    cancelled = []

    async def body() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(current_context().kind)
            raise

    async def main() -> None:
        outer = asyncio.create_task(arun_job(body, kind=JobKind.BATCH))
        await started.wait()
        outer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await outer

    asyncio.run(main())
    assert cancelled == [JobKind.BATCH]


def test_run_job_runs_an_async_body_to_completion() -> None:
    async def body(x: int) -> tuple[int, Any]:
        await asyncio.sleep(0)
        inner = await asyncio.create_task(asyncio.sleep(0, result=current_context().kind))
        return x * 2, inner

    assert run_job(body, 21, kind=JobKind.SCHEDULED) == (42, JobKind.SCHEDULED)


def test_run_job_refuses_an_async_body_inside_a_running_loop() -> None:
    ran = []

    async def body() -> None:
        ran.append(True)

    async def main() -> None:
        with pytest.raises(RuntimeError, match="arun_job"):
            run_job(body, kind=JobKind.FUTURE)

    asyncio.run(main())  # -W error would turn a "never awaited" warning into a failure
    assert ran == []


def test_submit_job_returns_the_result_and_propagates_errors() -> None:
    def boom() -> None:
        raise LookupError("from the job")

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        assert (
            submit_job(pool, lambda: current_context().kind, kind="event").result(timeout=10)
            is JobKind.EVENT
        )
        with pytest.raises(LookupError, match="from the job"):
            submit_job(pool, boom, kind="event").result(timeout=10)


def test_nested_jobs_get_their_own_context() -> None:
    def outer() -> tuple[str, str, str]:
        me = current_context().job_id
        inner = run_job(lambda: current_context().job_id, kind=JobKind.FUTURE)
        return me, inner, current_context().job_id

    me, inner, after = run_job(outer, kind=JobKind.BATCH)
    assert me != inner
    assert after == me


# --------------------------------------------------------------------------- enqueue guard


@dataclasses.dataclass
class Envelope:
    user: str
    note: str


@pytest.mark.parametrize(
    ("args", "kwargs", "headers", "path"),
    [
        (("{t}",), {}, None, "args[0]"),
        ((1, ["a", ("b", "x={t}")]), {}, None, "args[1][1][1]"),
        ((), {"user": {"id": 5, "cookie": "{t}"}}, None, "kwargs['user']['cookie']"),
        ((), {"blob": b"session={t}"}, None, "kwargs['blob']"),
        ((), {"tags": {"ok", "{t}"}}, None, "kwargs['tags'][<set item>]"),
        ((), {"env": Envelope(user="u1", note="{t}")}, None, "kwargs['env'].note"),
        ((), {}, {"x-forwarded-session": "{t}"}, "headers['x-forwarded-session']"),
    ],
)
def test_guard_names_the_path_and_never_the_token(
    args: tuple[Any, ...], kwargs: dict[str, Any], headers: dict[str, Any] | None, path: str
) -> None:
    token = fresh_token()

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace("{t}", token)
        if isinstance(value, bytes):
            return value.replace(b"{t}", token.encode())
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, (list, tuple, set)):
            return type(value)(fill(v) for v in value)
        if isinstance(value, Envelope):
            return Envelope(fill(value.user), fill(value.note))
        return value

    with pytest.raises(TokenInJobPayload) as info:
        guard_payload(fill(args), fill(kwargs), fill(headers))
    assert info.value.path == path
    assert path in str(info.value)
    assert token not in str(info.value)
    assert token not in repr(info.value)


def test_guard_error_pickles_with_its_path() -> None:
    import pickle

    with pytest.raises(TokenInJobPayload) as info:
        guard_payload((fresh_token(),), {})
    copy = pickle.loads(pickle.dumps(info.value))
    assert copy.path == "args[0]" and str(copy) == str(info.value)


def test_guard_checks_dict_keys_without_echoing_them() -> None:
    token = fresh_token()
    with pytest.raises(TokenInJobPayload) as info:
        guard_payload((), {"sessions": {token: "alice"}})
    assert info.value.path == "kwargs['sessions'].keys()[0]"
    assert token not in str(info.value)


def test_guard_accepts_clean_and_token_shaped_payloads_and_survives_cycles() -> None:
    token = fresh_token()
    broken = token[:-1] + ("0" if token[-1] != "0" else "1")  # checksum no longer matches
    loop: list[Any] = ["ok"]
    loop.append(loop)
    guard_payload((broken, loop, 3, None, 1.5), {"nested": {"k": [b"bytes", {"s"}]}}, {"h": "v"})


@pytest.mark.parametrize("starter", ["run_job", "submit_job", "arun_job"])
def test_starters_refuse_a_token_before_running_the_body(starter: str) -> None:
    token = fresh_token()
    ran = []

    def body(**kwargs: Any) -> None:
        ran.append(kwargs)

    with pytest.raises(TokenInJobPayload) as info:
        if starter == "run_job":
            run_job(body, kind=JobKind.BATCH, user={"cookie": token})
        elif starter == "submit_job":
            with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
                submit_job(pool, body, kind=JobKind.BATCH, user={"cookie": token})
        else:
            asyncio.run(arun_job(body, kind=JobKind.BATCH, user={"cookie": token}))
    assert info.value.path == "kwargs['user']['cookie']"
    assert token not in str(info.value)
    assert ran == []


# --------------------------------------------------------------------------- objects holding a token


class Slotted:
    """A class with __slots__ (one of them name-mangled) and no __dict__."""

    __slots__ = ("__hidden", "label")

    def __init__(self, hidden: object) -> None:
        self.__hidden = hidden
        self.label = "slotted"


class Holder:
    """A plain object keeping what it is given in its __dict__."""

    def __init__(self, **attributes: object) -> None:
        self.__dict__.update(attributes)


class Tripwire:
    """Fails the test if the guard runs anything but the interpreter's own attribute reads."""

    def __init__(self) -> None:
        self.plain = "nothing to see"

    @property
    def computed(self) -> str:
        raise AssertionError("the guard called a property")

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the guard asked for a missing attribute {name!r}")


class LazyMapping(dict[str, object]):
    """A library's container whose own iteration must not run when it sits inside an object."""

    def __iter__(self) -> Any:
        raise AssertionError("the guard iterated a dict subclass through its override")

    def items(self) -> Any:
        raise AssertionError("the guard called a dict subclass's items()")


@pytest.fixture
def request_auth(org: Any) -> tuple[Any, Any]:
    """What the web middleware attaches to a request: a RequestAuth holding the user's token."""
    issued = org.login("ada", OFFICE)
    assert isinstance(issued, sw.Issued)
    auth = RequestAuth(
        org=org,
        token=issued.token,
        client_ip=ipaddress.ip_address(OFFICE),
        api=True,
        cookie=CookieSettings(),
        session=issued.session,
        refuse=lambda error: None,  # type: ignore[arg-type,return-value]
    )
    return auth, issued


def holders(auth: Any, issued: Any, token: str) -> list[tuple[str, tuple[Any, ...], dict[str, Any], str]]:
    """(case, args, kwargs, expected path) for every kind of object that can carry a token."""

    def make_closure() -> Any:
        return lambda: token

    def with_default(value: str = token) -> str:
        return value

    return [
        ("RequestAuth", (auth,), {}, "args[0]._token"),
        ("Issued", (issued,), {}, "args[0].token"),
        ("nested Issued", (), {"result": {"outcome": [issued]}}, "kwargs['result']['outcome'][0].token"),
        ("Secret wrapper", (Secret(token),), {}, "args[0]._value"),
        ("object attribute", (Holder(user="ada", cookie=token),), {}, "args[0].cookie"),
        ("object holding RequestAuth", (Holder(auth=auth),), {}, "args[0].auth._token"),
        ("mangled slot", (Slotted(token),), {}, "args[0].__hidden"),
        ("closure", (), {"callback": make_closure()}, "kwargs['callback'].<closure token>"),
        ("default", (), {"callback": with_default}, "kwargs['callback'].__defaults__[0]"),
        ("bound method", (), {"callback": auth.revalidate}, "kwargs['callback'].__self__._token"),
        ("partial", (functools.partial(print, token),), {}, "args[0].args[0]"),
        ("builtin bound method", ([token].copy,), {}, "args[0].__self__[0]"),
        ("exception", (RuntimeError("failed for", token),), {}, "args[0].args[1]"),
        (
            "dict subclass inside an object",
            (Holder(data=LazyMapping(cookie=token)),),
            {},
            "args[0].data['cookie']",
        ),
    ]


def test_guard_refuses_objects_that_hold_a_token(request_auth: tuple[Any, Any]) -> None:
    # Before the fix only str/bytes, containers and dataclasses were looked into: the request's
    # RequestAuth, an Issued and every other object here went into the job with the token.
    auth, issued = request_auth
    token = issued.token
    for case, args, kwargs, path in holders(auth, issued, token):
        with pytest.raises(TokenInJobPayload) as info:
            guard_payload(args, kwargs)
        assert info.value.path == path, case
        assert token not in str(info.value) and token not in repr(info.value), case


def test_guard_refuses_other_token_bearing_results(org: Any) -> None:
    challenge = org.login("ada", HOME)  # outside the trusted ranges
    assert isinstance(challenge, sw.ChallengeRequired)
    secret = remember_secret(org.register_oauth_client("erp", "bob", ["orders.read"]))
    grant = org.grant_client_credentials("erp", secret, None, OFFICE)
    for value, path in ((challenge, "args[0].challenge"), (grant, "args[0].access_token")):
        with pytest.raises(TokenInJobPayload) as info:
            guard_payload((value,), {})
        assert info.value.path == path
    # The public parts are fine to hand over: a Session has a handle, never a token.
    guard_payload((grant.session, challenge.expires_at), {"user": "ada"})


@pytest.mark.parametrize("starter", ["run_job", "submit_job", "arun_job"])
def test_starters_refuse_a_request_auth_as_argument_or_body(
    starter: str, request_auth: tuple[Any, Any]
) -> None:
    auth, issued = request_auth
    ran: list[object] = []

    def body(a: Any) -> None:
        ran.append(a.revalidate(Requirement()))  # would act with the user's session

    def start(fn: Any, *args: Any) -> None:
        if starter == "run_job":
            run_job(fn, *args, kind=JobKind.BATCH)
        elif starter == "submit_job":
            with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
                submit_job(pool, fn, *args, kind=JobKind.BATCH).result(timeout=30)
        else:
            asyncio.run(arun_job(fn, *args, kind=JobKind.BATCH))

    for fn, args, path in (
        (body, (auth,), "args[0]._token"),
        (body, (issued,), "args[0].token"),
        (functools.partial(body, auth), (), "fn.args[0]._token"),
        (auth.revalidate, (Requirement(),), "fn.__self__._token"),
        (lambda: body(auth), (), "fn.<closure auth>._token"),
    ):
        with pytest.raises(TokenInJobPayload) as info:
            start(fn, *args)
        assert info.value.path == path
        assert issued.token not in str(info.value)
    assert ran == []


def test_guard_reads_objects_without_running_their_code() -> None:
    token = fresh_token()
    tripwire = Tripwire()
    guard_payload((tripwire, Holder(inner=tripwire)), {})
    tripwire.__dict__["late"] = token  # found through __dict__, still without __getattr__
    with pytest.raises(TokenInJobPayload) as info:
        guard_payload((Holder(inner=tripwire),), {})
    assert info.value.path == "args[0].inner.late"


def test_guard_accepts_objects_without_a_token(request_auth: tuple[Any, Any]) -> None:
    auth, issued = request_auth
    cyclic = Holder(name="cycle")
    cyclic.__dict__["me"] = cyclic
    guard_payload(
        (issued.session, FakeSession(), cyclic, Slotted("no token"), logging.getLogger("x")),
        {"org": auth.org, "when": issued.session.created, "fn": observe, "cls": Holder},
    )


def test_guard_refuses_a_payload_too_large_to_check(monkeypatch: pytest.MonkeyPatch) -> None:
    import sessionward.jobs as jobs_module

    monkeypatch.setattr(jobs_module, "_MAX_OPENED", 50)
    rows = [{"id": i} for i in range(47)]
    guard_payload((), {"rows": rows})  # args, kwargs, the list and 47 rows: 50 opened
    rows.append({"id": 47})
    with pytest.raises(TokenInJobPayload, match="too large to check") as info:
        guard_payload((), {"rows": rows})
    assert info.value.path == "kwargs['rows'][47]"


# --------------------------------------------------------------------------- Celery


@pytest.fixture
def celery() -> Any:
    return pytest.importorskip("celery")


@pytest.fixture
def eager_app(celery: Any) -> Any:
    """A real Celery app in eager mode (task_always_eager=True): tasks run in-process, no broker."""
    app = celery.Celery("sessionward-test-eager", set_as_current=False)
    app.conf.update(task_always_eager=True, task_eager_propagates=True, broker_url="memory://")
    yield app
    app.close()


def test_celery_task_body_runs_as_a_job_without_session(
    eager_app: Any, request_scope: FakeSession
) -> None:
    """Eager mode (task_always_eager=True): the body runs in this thread, right
    where a request session is published, so only the fresh job context hides it."""
    from sessionward.jobs import SessionwardTask

    @eager_app.task(base=SessionwardTask, job_kind="batch", job_profile="Integration", shared=False)
    def report(x: int) -> dict[str, Any]:
        seen = observe()
        seen["x"] = x
        return seen

    result = report.delay(7)
    seen = result.get(timeout=10)
    assert seen["x"] == 7
    assert_sessionless(seen)
    assert seen["ctx"].kind is JobKind.BATCH
    assert seen["ctx"].profile == "Integration"
    assert seen["ctx"].job_id == result.id
    assert current_session() is request_scope


def test_celery_default_kind_is_queueable(eager_app: Any) -> None:
    """Eager mode (task_always_eager=True)."""
    from sessionward.jobs import SessionwardTask

    @eager_app.task(base=SessionwardTask, shared=False)
    def kind() -> JobKind:
        return current_context().kind

    assert kind.delay().get(timeout=10) is JobKind.QUEUEABLE


def test_celery_guard_refuses_a_token_before_queueing(
    eager_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Eager mode (task_always_eager=True): apply_async refuses before anything runs."""
    from sessionward.jobs import SessionwardTask

    token = fresh_token()
    ran = []

    @eager_app.task(base=SessionwardTask, shared=False)
    def sync_user(user: dict[str, Any]) -> None:
        ran.append(user)

    from celery.signals import task_prerun

    started: list[str] = []

    def on_prerun(task_id: Any = None, **_: Any) -> None:
        started.append(str(task_id))

    caplog.set_level(logging.DEBUG)
    task_prerun.connect(on_prerun, weak=False)
    try:
        with pytest.raises(TokenInJobPayload) as info:
            sync_user.delay(user={"id": 1, "cookie": f"sid={token}"})
        assert info.value.path == "kwargs['user']['cookie']"
        with pytest.raises(TokenInJobPayload) as info2:
            sync_user.apply_async((token,))
        assert info2.value.path == "args[0]"
        with pytest.raises(TokenInJobPayload):
            sync_user.s(user={"cookie": token}).apply_async()
        # refused in apply_async: the (eager) task was never even started
        assert started == []
        assert ran == []
        for text in (str(info.value), repr(info.value), str(info2.value), caplog.text):
            assert token not in text
        # the body still runs for clean payloads
        sync_user.delay(user={"id": 1})
        assert ran == [{"id": 1}]
        assert len(started) == 1
    finally:
        task_prerun.disconnect(on_prerun)


def test_celery_task_refuses_a_token_on_the_consuming_side(eager_app: Any) -> None:
    """Eager mode (task_always_eager=True); .apply() skips apply_async, the body still refuses."""
    from sessionward.jobs import SessionwardTask

    ran = []

    @eager_app.task(base=SessionwardTask, shared=False)
    def work(value: str) -> None:
        ran.append(value)

    with pytest.raises(TokenInJobPayload):
        work.apply((fresh_token(),)).get(timeout=10)
    assert ran == []


@pytest.fixture
def broker_app(celery: Any) -> Any:
    """A real Celery app publishing to kombu's in-memory broker (not eager)."""
    app = celery.Celery("sessionward-test-broker", set_as_current=False)
    app.conf.update(task_always_eager=False, broker_url="memory://", result_backend=None)
    yield app
    app.close()


def test_install_celery_guard_rejects_before_publish(broker_app: Any) -> None:
    """Not eager: messages really go to the in-memory broker; after_task_publish counts them."""
    from celery.signals import after_task_publish

    from sessionward.jobs import install_celery_guard

    published: list[str] = []

    def count(sender: Any = None, **_: Any) -> None:
        published.append(str(sender))

    @broker_app.task(shared=False)
    def plain(value: Any) -> None:  # not a SessionwardTask: only the app guard protects it
        pass

    after_task_publish.connect(count, weak=False)
    try:
        install_celery_guard(broker_app)
        install_celery_guard(broker_app)  # idempotent
        token = fresh_token()
        with pytest.raises(TokenInJobPayload) as info:
            plain.apply_async(({"session": token},))
        assert info.value.path == "args[0]['session']"
        with pytest.raises(TokenInJobPayload):
            broker_app.send_task("any.task", kwargs={"cookie": token})
        with pytest.raises(TokenInJobPayload) as info3:
            plain.apply_async((1,), headers={"x-session": token})
        assert info3.value.path == "headers['x-session']"
        assert published == []
        assert token not in str(info.value)
        plain.apply_async((1,))
        assert published == [plain.name]
    finally:
        after_task_publish.disconnect(count)


def test_sessionward_task_refuses_before_publish_without_app_guard(broker_app: Any) -> None:
    """Not eager: SessionwardTask.apply_async alone keeps the message off the in-memory broker."""
    from celery.signals import after_task_publish

    from sessionward.jobs import SessionwardTask

    published: list[str] = []

    def count(sender: Any = None, **_: Any) -> None:
        published.append(str(sender))

    @broker_app.task(base=SessionwardTask, shared=False)
    def guarded(value: Any) -> None:
        pass

    after_task_publish.connect(count, weak=False)
    try:
        with pytest.raises(TokenInJobPayload):
            guarded.delay(fresh_token())
        assert published == []
        guarded.delay("clean")
        assert published == [guarded.name]
    finally:
        after_task_publish.disconnect(count)


def test_before_task_publish_receiver_redacts_and_reports(
    broker_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The last line for publishes that bypass the app guard. Celery swallows
    exceptions raised in signal receivers, so the receiver cannot stop the
    publish; it must redact the monitoring reprs and log, without the token."""
    from celery.signals import before_task_publish

    from sessionward.jobs import install_celery_guard

    install_celery_guard(broker_app)
    token = fresh_token()
    headers = {"argsrepr": f"('{token}',)", "kwargsrepr": "{}", "task": "t"}
    caplog.set_level(logging.DEBUG)
    responses = before_task_publish.send(
        sender="t",
        body=((token,), {}, {"callbacks": None}),
        headers=headers,
        exchange="",
        routing_key="celery",
        declare=[],
        properties={},
        retry_policy={},
    )
    errors = [r for _, r in responses if isinstance(r, TokenInJobPayload)]
    assert len(errors) == 1 and errors[0].path == "args[0]"
    assert token not in headers["argsrepr"]
    assert "swd_[REDACTED]" in headers["argsrepr"]
    assert "bypassing install_celery_guard" in caplog.text
    assert token not in caplog.text
    clean = before_task_publish.send(
        sender="t",
        body=((1,), {}, {}),
        headers={"argsrepr": "(1,)"},
        exchange="",
        routing_key="celery",
        declare=[],
        properties={},
        retry_policy={},
    )
    assert not any(isinstance(r, Exception) for _, r in clean)


def test_session_task_attribute_is_lazy(celery: Any) -> None:
    import sessionward.jobs as jobs

    assert "SessionwardTask" not in jobs.__all__
    assert issubclass(jobs.SessionwardTask, celery.Task)
    with pytest.raises(AttributeError):
        jobs.NoSuchThing  # noqa: B018


def test_fresh_context_is_not_a_copy() -> None:
    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")
    marker.set("caller")
    assert run_job(marker.get, kind=JobKind.BATCH) == "unset"
