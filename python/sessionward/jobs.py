"""Job contexts: code that runs with no session.

A job (batch, future, queueable, scheduled, event trigger) never runs with a
session id. Job code that must call an API uses a *named credential* instead
(see :mod:`sessionward.credentials`).

How the "no session" rule is kept:

* The web middleware publishes the current request's session with
  :func:`set_request_session`; :func:`current_session` returns it.
* :func:`run_job`, :func:`arun_job`, :func:`submit_job` and the Celery
  :class:`SessionwardTask` run the job body in a **brand-new**
  :class:`contextvars.Context` (not a copy of the caller's), holding only the
  :class:`JobContext`. A job started from inside a request handler therefore
  cannot see the request's session, and :func:`current_session` raises
  :class:`NoSessionInJob` inside a job. The flip side: other libraries'
  context variables (tracing spans, structured-logging context) are not
  carried into the job either; pass what the job needs as arguments.
* Before a job is started or queued, :func:`guard_payload` refuses any
  argument that carries a sessionward token (:class:`TokenInJobPayload`), so a
  session token cannot ride into a queue, a broker or a job's logs. That
  includes objects holding one (the request's
  :class:`~sessionward.web.RequestAuth`, an ``Issued``, a secret wrapper, a
  closure); :func:`run_job`, :func:`arun_job` and :func:`submit_job` check
  what the job body itself is bound to as well (``run_job(auth.revalidate)``).

Celery support is optional and imported lazily: :data:`SessionwardTask` (a
``celery.Task`` subclass, built on first access) and
:func:`install_celery_guard`.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import dataclasses
import enum
import functools
import importlib
import inspect
import logging
import types
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence, Set
from concurrent.futures import Executor, Future
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

from sessionward._tokens import find_tokens, redact

if TYPE_CHECKING:
    from sessionward.credentials import CredentialHandle, CredentialRegistry

# SessionwardTask is deliberately not in __all__: it is built on first access
# (module __getattr__) and needs celery; a star-import must not import celery.
__all__ = [
    "JobContext",
    "JobKind",
    "NoSessionInJob",
    "NotInJob",
    "TokenInJobPayload",
    "arun_job",
    "current_context",
    "current_session",
    "guard_payload",
    "in_job",
    "install_celery_guard",
    "request_session",
    "reset_request_session",
    "run_job",
    "set_request_session",
    "submit_job",
]

_log = logging.getLogger("sessionward.jobs")

R = TypeVar("R")


# --------------------------------------------------------------------------- errors


class NoSessionInJob(RuntimeError):
    """Raised by :func:`current_session` (and :func:`set_request_session`) inside a job.

    A job never has a session id. To call an API from a job, use a named
    credential: ``current_context().credentials["NAME"]``.
    """


class NotInJob(LookupError):
    """Raised by :func:`current_context` when no job is running in this context."""


class TokenInJobPayload(ValueError):
    """A job's arguments or headers carry a sessionward session token.

    ``path`` names where (for example ``kwargs['user']['cookie']``); neither it
    nor the message ever contains the token. Fix: do not hand a session to a
    job (nor an object holding one, such as the request's
    :class:`~sessionward.web.RequestAuth` or an ``Issued``); pass the user id
    and let the job use a named credential. Also raised, with a message saying
    so, for a payload too large to be checked.
    """

    def __init__(self, message: str, *, path: str = "") -> None:
        super().__init__(message)
        self.path = path


# --------------------------------------------------------------------------- context


class JobKind(enum.StrEnum):
    """The kinds of asynchronous job (the names follow the reference platform)."""

    BATCH = "batch"
    FUTURE = "future"
    QUEUEABLE = "queueable"
    SCHEDULED = "scheduled"
    EVENT = "event"

    @classmethod
    def _missing_(cls, value: object) -> JobKind | None:
        if isinstance(value, str):
            lowered = value.lower()
            for member in cls:
                if member.value == lowered:
                    return member
        return None


@dataclasses.dataclass(frozen=True)
class JobContext:
    """What a running job knows about itself. Immutable.

    ``session_id`` is always ``None``: a job has no session. ``credentials``
    is a read-only mapping of the named credentials this job may use (by its
    kind and run-as profile); see :class:`sessionward.credentials.CredentialsView`.
    """

    kind: JobKind
    job_id: str
    run_as: str | None = None
    profile: str | None = None
    registry: CredentialRegistry | None = dataclasses.field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", JobKind(self.kind))
        if not isinstance(self.job_id, str) or not self.job_id:
            raise ValueError(f"job_id must be a non-empty string, got {self.job_id!r}")

    @property
    def session_id(self) -> None:
        """Always ``None``: a job runs without a session."""
        return None

    @property
    def credentials(self) -> Mapping[str, CredentialHandle]:
        """The named credentials this job may use, by name."""
        from sessionward.credentials import CredentialsView

        return CredentialsView(self.registry, self)


_JOB: contextvars.ContextVar[JobContext | None] = contextvars.ContextVar(
    "sessionward_job", default=None
)
_REQUEST_SESSION: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "sessionward_request_session", default=None
)


def in_job() -> bool:
    """Return True when called from inside a job."""
    return _JOB.get() is not None


def current_context() -> JobContext:
    """Return the running job's :class:`JobContext`.

    Raises :class:`NotInJob` outside a job.
    """
    job = _JOB.get()
    if job is None:
        raise NotInJob(
            "no job is running in this context: current_context() works only inside "
            "run_job/arun_job/submit_job or a SessionwardTask"
        )
    return job


def current_session() -> Any:
    """Return the session the web layer published for the current request.

    Returns ``None`` outside a request. Raises :class:`NoSessionInJob` inside a
    job, whatever the job was started from.
    """
    job = _JOB.get()
    if job is not None:
        raise NoSessionInJob(
            f"{job.kind.value} job {job.job_id!r} has no session: jobs never run with a "
            "session id; call APIs through a named credential "
            "(current_context().credentials[NAME])"
        )
    return _REQUEST_SESSION.get()


def request_session() -> Any:
    """Return the session published with :func:`set_request_session`, or ``None``.

    The raw hook for the web layer; job code should use :func:`current_session`.
    """
    return _REQUEST_SESSION.get()


def set_request_session(session: Any) -> contextvars.Token[Any]:
    """Publish the current request's session (called by the web middleware).

    Returns a token for :func:`reset_request_session`. Refused inside a job.
    """
    job = _JOB.get()
    if job is not None:
        raise NoSessionInJob(
            f"cannot publish a session inside {job.kind.value} job {job.job_id!r}: "
            "jobs never run with a session"
        )
    return _REQUEST_SESSION.set(session)


def reset_request_session(token: contextvars.Token[Any]) -> None:
    """Undo :func:`set_request_session` (at the end of the request)."""
    _REQUEST_SESSION.reset(token)


# --------------------------------------------------------------------------- guard


def _key_repr(key: object) -> str:
    text = repr(key)
    if len(text) > 60:
        text = text[:57] + "..."
    return redact(text)


# The walk is iterative (nesting cannot exhaust the interpreter's stack); what bounds it is the
# number of containers and objects it opens. A payload that needs more is refused, not passed
# unchecked: the guard cannot vouch for what it did not look at.
_MAX_OPENED = 100_000

# Leaves that never hold a token, skipped without looking for attributes.
_ATOMIC: frozenset[type] = frozenset(
    {int, float, complex, bool, type(None), type(Ellipsis), range, slice}
)

# Objects whose attributes are code or interpreter state rather than data handed to the job:
# walking a class, a module or a frame would reach the whole program, not the payload.
_OPAQUE = (
    type,
    types.ModuleType,
    types.CodeType,
    types.FrameType,
    types.TracebackType,
    types.GeneratorType,
    types.CoroutineType,
    types.AsyncGeneratorType,
)

# The builtin containers, read through the builtin methods so that a subclass's overrides
# (or a proxy's) never run during the walk.
_BUILTIN_SEQUENCES = (list, tuple, collections.deque)
_BUILTIN_SETS = (set, frozenset)
# Scanned as text, never iterated item by item.
_TEXT = (str, bytes, bytearray, memoryview)


class _Key:
    """A path segment naming a mapping key; its (redacted) repr is made only if reported."""

    __slots__ = ("key",)

    def __init__(self, key: object) -> None:
        self.key = key


# A path is built only when it is reported: each entry links to its parent and holds one
# segment (text, a sequence index or a mapping key), so a large payload costs no strings.
_Segment = str | int | _Key
_Link = tuple["_Link | None", _Segment]


def _path_text(link: _Link | None) -> str:
    parts: list[str] = []
    while link is not None:
        link, segment = link
        if isinstance(segment, int):
            parts.append(f"[{segment}]")
        elif isinstance(segment, _Key):
            parts.append(f"[{_key_repr(segment.key)}]")
        else:
            parts.append(segment)
    return "".join(reversed(parts))


@functools.cache
def _native_types() -> frozenset[type]:
    # The extension's result types (Issued, Grant, ChallengeRequired, ...) keep their fields in
    # Rust, behind getters: no __dict__ or __slots__ for the walk to see.
    try:
        native = importlib.import_module("sessionward._native")
    except ImportError:  # pragma: no cover - the pure-Python helpers without the extension
        return frozenset()
    return frozenset(v for v in vars(native).values() if isinstance(v, type))


# (extension getters, the standard ``__dict__`` descriptor or None, slot descriptors)
_Layout = tuple[tuple[tuple[str, Any], ...], Any, tuple[tuple[str, Any], ...]]
# Per class; bounded, as a program that makes classes at run time would grow it forever.
_LAYOUTS: dict[type, _Layout] = {}
_MAX_LAYOUTS = 1024


def _layout(cls: type) -> _Layout:
    layout = _LAYOUTS.get(cls)
    if layout is None:
        layout = _compute_layout(cls)
        if len(_LAYOUTS) < _MAX_LAYOUTS:
            _LAYOUTS[cls] = layout
    return layout


def _compute_layout(cls: type) -> _Layout:
    """How instances of ``cls`` store data: (extension getters, the ``__dict__`` descriptor if
    it is the standard one, slot descriptors), each as (shown name, descriptor)."""
    natives = _native_types()
    getters = tuple(
        (name, attribute)
        for klass in cls.__mro__
        if klass in natives
        for name, attribute in vars(klass).items()
        if isinstance(attribute, types.GetSetDescriptorType) and not name.startswith("_")
    )
    namespace = None
    for klass in cls.__mro__:
        candidate = klass.__dict__.get("__dict__")
        if candidate is not None:
            # Anything but the interpreter's own descriptor (a proxy's property, say) would
            # run code: such an object's __dict__ is not read.
            if isinstance(candidate, types.GetSetDescriptorType):
                namespace = candidate
            break
    slots: list[tuple[str, Any]] = []
    for klass in cls.__mro__:
        declared = klass.__dict__.get("__slots__")
        if declared is None:
            continue
        for name in (declared,) if isinstance(declared, str) else declared:
            if name in ("__dict__", "__weakref__"):
                continue
            stored = name
            if name.startswith("__") and not name.endswith("__"):
                stored = f"_{klass.__name__.lstrip('_')}{name}"  # private names are mangled
            descriptor = klass.__dict__.get(stored)
            if isinstance(descriptor, types.MemberDescriptorType):
                slots.append((name, descriptor))
    return getters, namespace, tuple(slots)


def _attributes(value: object, cls: type) -> list[tuple[object, _Segment]]:
    """What an object holds beyond its items: the values a job could reach through it.

    Instance storage only (``__dict__`` and ``__slots__``, read through the interpreter's own
    descriptors, so no property, ``__getattr__`` or proxy runs), the bound state of callables
    (closure cells, defaults, ``partial`` arguments, a bound method's ``self``), an exception's
    arguments, and the getters of the extension's own types (``Issued.token``).
    """
    if issubclass(cls, _OPAQUE):
        return []
    out: list[tuple[object, _Segment]] = []
    if issubclass(cls, types.FunctionType):
        function = cast(types.FunctionType, value)
        names = function.__code__.co_freevars
        for name, cell in zip(names, function.__closure__ or ()):
            try:
                out.append((cell.cell_contents, f".<closure {name}>"))
            except ValueError:  # an empty cell
                pass
        defaults = function.__defaults__ or ()
        out.extend((item, f".__defaults__[{i}]") for i, item in enumerate(defaults))
        keyword_defaults = function.__kwdefaults__ or {}
        out.extend((item, f".__kwdefaults__[{k!r}]") for k, item in keyword_defaults.items())
    elif issubclass(cls, types.MethodType):
        method = cast(types.MethodType, value)
        out += [(method.__self__, ".__self__"), (method.__func__, ".__func__")]
    elif issubclass(cls, (types.BuiltinMethodType, types.MethodWrapperType)):
        # list.append bound to a list, say (a builtin function's __self__ is its module).
        out.append((getattr(value, "__self__", None), ".__self__"))
    elif issubclass(cls, functools.partial):
        partial = cast("functools.partial[Any]", value)
        out += [(partial.func, ".func"), (partial.args, ".args"), (partial.keywords, ".keywords")]
    elif issubclass(cls, BaseException):
        error = cast(BaseException, value)
        out += [(error.args, ".args"), (error.__cause__, ".__cause__")]
        out.append((error.__context__, ".__context__"))
    getters, namespace, slots = _layout(cls)
    out.extend((getter.__get__(value, cls), f".{name}") for name, getter in getters)
    if namespace is not None:
        try:
            stored = namespace.__get__(value, cls)
        except AttributeError:
            stored = None
        if isinstance(stored, dict):
            out.extend((item, f".{key}") for key, item in list(dict.items(stored)))
    for name, descriptor in slots:
        try:
            out.append((descriptor.__get__(value, cls), f".{name}"))
        except AttributeError:  # a slot never assigned
            pass
    return out


def _builtin_members(value: object, cls: type, bases: tuple[type, ...]) -> list[object] | None:
    # The base's own __iter__, not the subclass's: an override never runs during the walk.
    for base in bases:
        if issubclass(cls, base):
            base_iter: Callable[[object], Iterable[object]] = getattr(base, "__iter__")
            return list(base_iter(value))
    return None


def _items(value: object, cls: type, plain: bool) -> list[tuple[object, _Segment]]:
    """The items of a container: mapping keys and values, set and sequence members.

    Builtin containers are read through the builtin methods. Other ``Mapping``, ``Set`` and
    ``Sequence`` implementations are iterated only on the plain-data part of the payload
    (reached from the arguments through containers and dataclasses alone); inside another
    object, iterating a library's container would run its code, and its contents are found
    through its attributes.
    """
    pairs: list[tuple[object, object]] | None = None
    if issubclass(cls, dict):
        pairs = list(dict.items(cast("dict[object, object]", value)))
    elif plain and issubclass(cls, Mapping):
        pairs = list(cast("Mapping[object, object]", value).items())
    if pairs is not None:
        out: list[tuple[object, _Segment]] = []
        for index, (key, item) in enumerate(pairs):
            out.append((key, f".keys()[{index}]"))
            out.append((item, _Key(key)))
        return out
    members = _builtin_members(value, cls, _BUILTIN_SETS)
    if members is None and plain and issubclass(cls, Set):
        members = list(cast("Set[object]", value))
    if members is not None:
        return [(item, "[<set item>]") for item in members]
    members = _builtin_members(value, cls, _BUILTIN_SEQUENCES)
    if members is None and plain and issubclass(cls, Sequence) and not issubclass(cls, _TEXT):
        members = list(cast("Sequence[object]", value))
    if members is not None:
        return [(item, index) for index, item in enumerate(members)]
    return []


@dataclasses.dataclass(frozen=True)
class _Finding:
    path: str
    too_large: bool = False


def _find_token_path(roots: Sequence[tuple[str, object]]) -> _Finding | None:
    """Depth-first walk; the path of the first value carrying a token, or of the value at
    which the walk gave up because the payload opens more than ``_MAX_OPENED`` containers and
    objects."""
    # (value, path link, reached from the roots through containers and dataclasses alone)
    stack: list[tuple[object, _Link, bool]] = [(v, (None, p), True) for p, v in reversed(roots)]
    # Maps id -> object and so keeps every opened object alive: a getter's fresh result that
    # was freed could otherwise hand its id to a later, unvisited object.
    opened: dict[int, object] = {}
    while stack:
        value, link, plain = stack.pop()
        cls = type(value)
        if cls in _ATOMIC:
            continue
        if issubclass(cls, str):
            if find_tokens(str.__str__(cast(str, value))):
                return _Finding(_path_text(link))
            if cls is str:
                continue
        elif issubclass(cls, _TEXT):
            if find_tokens(bytes(cast(bytes, value)).decode("latin-1")):
                return _Finding(_path_text(link))
            if cls is bytes:
                continue
        if id(value) in opened:
            continue
        if len(opened) >= _MAX_OPENED:
            return _Finding(_path_text(link), too_large=True)
        opened[id(value)] = value
        children = [
            (item, (link, seg), plain)
            for item, seg in _items(value, cls, plain)
            if type(item) not in _ATOMIC
        ]
        # A dataclass's fields are plain data like a dict's values (as they always were);
        # other objects' attributes are a library's internals.
        fields_plain = plain and dataclasses.is_dataclass(cls)
        children += [(item, (link, seg), fields_plain) for item, seg in _attributes(value, cls)]
        stack.extend(reversed(children))
    return None


def _refuse(finding: _Finding) -> TokenInJobPayload:
    safe = redact(finding.path)
    if finding.too_large:
        return TokenInJobPayload(
            f"job payload is too large to check for a sessionward session token (more than "
            f"{_MAX_OPENED} containers and objects; stopped at {safe}): pass ids and plain "
            "data, and let the job load the rest",
            path=safe,
        )
    return TokenInJobPayload(
        f"job payload carries a sessionward session token at {safe}: jobs run without "
        "a session; pass the user id and use a named credential instead",
        path=safe,
    )


def guard_payload(
    args: Sequence[object] | None,
    kwargs: Mapping[str, object] | None,
    headers: Mapping[str, object] | None = None,
) -> None:
    """Refuse a job payload that carries a sessionward token.

    Walks nested ``str``/``bytes``/list/tuple/dict (keys too)/set values and
    the objects among them: instance attributes (``__dict__`` and
    ``__slots__``, so dataclasses, :class:`~sessionward.web.RequestAuth` and
    secret wrappers), the getters of sessionward's own result types
    (``Issued.token``, ``Grant.access_token``, ``ChallengeRequired.challenge``),
    closure cells, defaults and ``functools.partial`` arguments of callables,
    a bound method's ``self`` and an exception's arguments. Classes, modules,
    frames and generators are not entered, and properties are never called.
    Raises :class:`TokenInJobPayload` naming the path (``args[0]``,
    ``kwargs['user']['cookie']``, ``args[0]._token``, ``headers['x']``) of the
    first value holding a token with a valid checksum. The token itself is
    never part of the error. A payload that would open more than 100,000
    containers and objects is refused too, as it cannot be checked.
    """
    roots: list[tuple[str, object]] = [
        ("args", tuple(args) if args is not None else ()),
        ("kwargs", dict(kwargs) if kwargs is not None else {}),
    ]
    if headers is not None:
        roots.append(("headers", headers))
    finding = _find_token_path(roots)
    if finding is not None:
        raise _refuse(finding)


def _guard_job(
    fn: Callable[..., Any], args: Sequence[object], kwargs: Mapping[str, object]
) -> None:
    """:func:`guard_payload` for a job about to start, and its body too: a ``partial``, a bound
    method or a closure carries what it was bound to into the job just as an argument would
    (``run_job(auth.revalidate, ...)`` would otherwise run with the request's session)."""
    finding = _find_token_path([("args", tuple(args)), ("kwargs", dict(kwargs)), ("fn", fn)])
    if finding is not None:
        raise _refuse(finding)


# --------------------------------------------------------------------------- running


def _coerce_kind(kind: JobKind | str) -> JobKind:
    try:
        return JobKind(kind)
    except ValueError:
        names = ", ".join(k.value for k in JobKind)
        raise ValueError(f"kind must be one of {names}, got {kind!r}") from None


def _make_context(
    kind: JobKind | str,
    *,
    job_id: str | None,
    run_as: str | None,
    profile: str | None,
    registry: CredentialRegistry | None,
) -> JobContext:
    return JobContext(
        kind=_coerce_kind(kind),
        job_id=job_id or uuid.uuid4().hex,
        run_as=run_as,
        profile=profile,
        registry=registry,
    )


async def _await(awaitable: Awaitable[R]) -> R:
    return await awaitable


def _enter(
    job: JobContext, fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]
) -> Any:
    _JOB.set(job)
    _log.debug("starting %s job %s", job.kind.value, job.job_id)
    return fn(*args, **kwargs)


def _enter_blocking(
    job: JobContext, fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]
) -> Any:
    result = _enter(job, fn, args, kwargs)
    if inspect.isawaitable(result):
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            if inspect.iscoroutine(result):
                result.close()
            raise RuntimeError(
                "run_job() got an async job body while an event loop is running in this "
                "thread: use 'await arun_job(...)' instead"
            )
        # Runs in the current (fresh) context: the loop's tasks copy it.
        return asyncio.run(_await(result))
    return result


def _execute(
    job: JobContext, fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]
) -> Any:
    """Run ``fn`` to completion in a brand-new Context holding only ``job``."""
    return contextvars.Context().run(_enter_blocking, job, fn, args, kwargs)


def _refuse_async_under_loop(fn: Callable[..., Any]) -> None:
    if not inspect.iscoroutinefunction(fn):
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(
        "run_job() got an async job body while an event loop is running in this "
        "thread: use 'await arun_job(...)' instead"
    )


@overload
def run_job(
    fn: Callable[..., Coroutine[Any, Any, R]],
    *args: Any,
    kind: JobKind | str,
    run_as: str | None = None,
    profile: str | None = None,
    credentials: CredentialRegistry | None = None,
    job_id: str | None = None,
    **kwargs: Any,
) -> R: ...


@overload
def run_job(
    fn: Callable[..., R],
    *args: Any,
    kind: JobKind | str,
    run_as: str | None = None,
    profile: str | None = None,
    credentials: CredentialRegistry | None = None,
    job_id: str | None = None,
    **kwargs: Any,
) -> R: ...


def run_job(
    fn: Callable[..., Any],
    *args: Any,
    kind: JobKind | str,
    run_as: str | None = None,
    profile: str | None = None,
    credentials: CredentialRegistry | None = None,
    job_id: str | None = None,
    **kwargs: Any,
) -> Any:
    """Run ``fn(*args, **kwargs)`` as a job, from synchronous code, and return its result.

    The body runs in a brand-new context where :func:`current_context` is the
    job's :class:`JobContext` and :func:`current_session` raises. An ``async``
    body is run to completion on a private event loop (from async code use
    :func:`arun_job`). ``credentials`` is the registry the job's
    ``ctx.credentials`` reads from. The payload is checked with
    :func:`guard_payload` first, and so is what ``fn`` is bound to (a
    ``partial``'s arguments, a bound method's object, closure cells).
    ``kind``, ``run_as``, ``profile``, ``credentials`` and ``job_id`` are
    consumed here, not passed to ``fn``.
    """
    _guard_job(fn, args, kwargs)
    _refuse_async_under_loop(fn)
    job = _make_context(kind, job_id=job_id, run_as=run_as, profile=profile, registry=credentials)
    return _execute(job, fn, args, kwargs)


@overload
async def arun_job(
    fn: Callable[..., Awaitable[R]],
    *args: Any,
    kind: JobKind | str,
    run_as: str | None = None,
    profile: str | None = None,
    credentials: CredentialRegistry | None = None,
    job_id: str | None = None,
    **kwargs: Any,
) -> R: ...


@overload
async def arun_job(
    fn: Callable[..., R],
    *args: Any,
    kind: JobKind | str,
    run_as: str | None = None,
    profile: str | None = None,
    credentials: CredentialRegistry | None = None,
    job_id: str | None = None,
    **kwargs: Any,
) -> R: ...


async def arun_job(
    fn: Callable[..., Any],
    *args: Any,
    kind: JobKind | str,
    run_as: str | None = None,
    profile: str | None = None,
    credentials: CredentialRegistry | None = None,
    job_id: str | None = None,
    **kwargs: Any,
) -> Any:
    """Run ``fn(*args, **kwargs)`` as a job from async code and return its result.

    A coroutine function is awaited on the running loop, in a task whose
    context is brand-new (cancelling the caller cancels the job). Any other
    callable runs in the loop's default executor, also in a brand-new context,
    so a blocking body does not stall the loop. Otherwise as :func:`run_job`.
    """
    _guard_job(fn, args, kwargs)
    job = _make_context(kind, job_id=job_id, run_as=run_as, profile=profile, registry=credentials)
    loop = asyncio.get_running_loop()
    if inspect.iscoroutinefunction(fn):
        fresh = contextvars.Context()
        coro = fresh.run(_enter, job, fn, args, kwargs)
        if not inspect.iscoroutine(coro):  # pragma: no cover - defensive
            coro = _await(coro)
        return await loop.create_task(coro, context=fresh)
    return await loop.run_in_executor(None, _execute, job, fn, args, kwargs)


def submit_job(
    executor: Executor,
    fn: Callable[..., R] | Callable[..., Coroutine[Any, Any, R]],
    *args: Any,
    kind: JobKind | str,
    run_as: str | None = None,
    profile: str | None = None,
    credentials: CredentialRegistry | None = None,
    job_id: str | None = None,
    **kwargs: Any,
) -> Future[R]:
    """Submit ``fn(*args, **kwargs)`` as a job to a ``concurrent.futures`` executor.

    The payload (and ``fn``, as in :func:`run_job`) is checked in the caller
    (so a token never reaches the pool); the body runs in the worker in a
    brand-new context, exactly as :func:`run_job`. Meant for thread pools: the
    job context holds the credential registry, which does not pickle.
    """
    _guard_job(fn, args, kwargs)
    job = _make_context(kind, job_id=job_id, run_as=run_as, profile=profile, registry=credentials)
    return cast("Future[R]", executor.submit(_execute, job, fn, args, kwargs))


# --------------------------------------------------------------------------- Celery


class _SessionwardTaskMixin:
    """The behaviour of :data:`SessionwardTask`, mixed in front of ``celery.Task``.

    Options (class attributes, or ``@app.task(base=SessionwardTask, job_kind=...)``):
    ``job_kind`` (default ``"queueable"``), ``job_run_as``, ``job_profile`` and
    ``job_credentials`` (a :class:`~sessionward.credentials.CredentialRegistry`).
    """

    job_kind: JobKind | str = JobKind.QUEUEABLE
    job_run_as: str | None = None
    job_profile: str | None = None
    job_credentials: CredentialRegistry | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Also checked on the consuming side: a producer without the guard
        # must not get a session token into a job body.
        guard_payload(args, kwargs)
        request = getattr(self, "request", None)
        task_id = getattr(request, "id", None)
        job = _make_context(
            self.job_kind,
            job_id=task_id if isinstance(task_id, str) else None,
            run_as=self.job_run_as,
            profile=self.job_profile,
            registry=self.job_credentials,
        )
        body = cast(Any, super()).__call__
        return _execute(job, body, args, kwargs)

    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        *rest: Any,
        **options: Any,
    ) -> Any:
        headers = options.get("headers")
        guard_payload(args, kwargs, headers if isinstance(headers, Mapping) else None)
        return cast(Any, super()).apply_async(args, kwargs, *rest, **options)


_celery_task_class: type[Any] | None = None


def _build_celery_task() -> type[Any]:
    global _celery_task_class
    if _celery_task_class is None:
        celery = importlib.import_module("celery")
        _celery_task_class = type(
            "SessionwardTask",
            (_SessionwardTaskMixin, celery.Task),
            {
                "__module__": __name__,
                "__qualname__": "SessionwardTask",
                "__doc__": (
                    "celery.Task base whose body runs as a sessionward job (no session) "
                    "and whose apply_async refuses payloads carrying a session token."
                ),
            },
        )
    return _celery_task_class


def __getattr__(name: str) -> Any:
    # SessionwardTask is built on first access so that celery stays optional.
    if name == "SessionwardTask":
        return _build_celery_task()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_PUBLISH_GUARD_UID = "sessionward.jobs.before_task_publish"


def _before_task_publish(
    sender: object = None,
    body: object = None,
    headers: object = None,
    **_: object,
) -> None:
    roots: list[tuple[str, object]] = []
    if isinstance(body, tuple) and len(body) == 3:  # task message protocol 2
        roots += [("args", body[0]), ("kwargs", body[1]), ("embed", body[2])]
    else:  # protocol 1: a dict with args/kwargs
        roots.append(("body", body))
    if isinstance(headers, dict):
        roots.append(("headers", headers))
    finding = _find_token_path(roots)
    if finding is None:
        return
    # Celery logs and swallows exceptions raised by signal receivers, so this
    # cannot stop the publish; install_celery_guard's send_task wrapper does.
    # Here: keep the token out of the monitoring reprs, and shout.
    if isinstance(headers, dict):
        for key in ("argsrepr", "kwargsrepr"):
            value = headers.get(key)
            if isinstance(value, str):
                headers[key] = redact(value)
    _log.error(
        "task %s was published with %s at %s, bypassing install_celery_guard(app) on the "
        "publishing app",
        redact(str(sender)),
        "a payload too large to check" if finding.too_large else "a sessionward session token",
        redact(finding.path),
    )
    raise _refuse(finding)


def install_celery_guard(app: Any) -> None:
    """Refuse, on ``app``, to queue any task whose payload carries a session token.

    Wraps ``app.send_task`` (through which ``apply_async``, ``delay``,
    signatures and canvases publish), raising :class:`TokenInJobPayload`
    before anything reaches the broker, and connects a
    ``before_task_publish`` receiver as a last line for publishes that bypass
    it. Note that Celery logs and swallows exceptions raised in signal
    receivers, so that receiver can only redact the ``argsrepr``/``kwargsrepr``
    headers and log an error; the wrapper is what rejects. Idempotent.
    """
    signals = importlib.import_module("celery.signals")
    signals.before_task_publish.connect(
        _before_task_publish, weak=False, dispatch_uid=_PUBLISH_GUARD_UID
    )
    original = app.send_task
    if getattr(original, "_sessionward_guard", False):
        return

    @functools.wraps(original)
    def send_task(
        name: str,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        *rest: Any,
        **options: Any,
    ) -> Any:
        headers = options.get("headers")
        guard_payload(args, kwargs, headers if isinstance(headers, Mapping) else None)
        return original(name, args, kwargs, *rest, **options)

    send_task._sessionward_guard = True  # type: ignore[attr-defined]
    app.send_task = send_task
