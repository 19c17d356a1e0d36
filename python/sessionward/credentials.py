"""Named credentials: how a job (which has no session) calls an API.

A :class:`NamedCredential` maps a name (``"ERP"``) to an endpoint
(``https://erp.example.com/api``) and an auth protocol: OAuth 2.0 client
credentials (:class:`OAuthClientCredentials`, RFC 6749 section 4.4) or a static
header (:class:`StaticHeader`). A :class:`CredentialRegistry` holds them, says
which job kinds and run-as profiles may use each, and caches OAuth access
tokens.

Inside a job::

    erp = current_context().credentials["ERP"]
    resp = erp.request("GET", "callout:ERP/orders?status=open")   # urllib, retries a 401 once
    requests.get(erp.url("callout:ERP/orders"), auth=erp.auth)      # or httpx: auth=erp.auth

Token cache: one entry per (credential, scopes), kept until ``expires_in -
skew`` on the registry's clock (``time.monotonic`` unless injected). One
caller refreshes at a time (a lock per entry); concurrent callers wait and
reuse the fresh token. Failed token requests are retried with exponential
backoff (bounded attempts, injectable sleep) when the failure can pass
(connection errors, HTTP 429 and 5xx), and reported as :class:`CredentialError`.
An entry belongs to one registered credential object, not to its name: after
``register(..., replace=True)`` a handle obtained before keeps the credential
it was made for (endpoint and token endpoint), and its tokens are never
cached for, nor sent by, handles on the new one.

Secrets: client secrets and access tokens are held in :class:`Secret`, which
never prints, formats or pickles its value; error messages and the
``sessionward.credentials`` logger never carry a secret or a token (they name
the credential only); text echoed by a token endpoint is scrubbed of the
client secret and of sessionward tokens before it is put in an error.
Authorization headers are never forwarded on redirects (redirects are not
followed), and the auth helpers refuse to sign a request for a URL outside the
credential's endpoint.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import functools
import hmac
import http.client
import importlib
import ipaddress
import json as _json
import logging
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncGenerator, Callable, Generator, Iterable, Iterator, Mapping
from typing import Any, Literal, NoReturn, SupportsIndex, final

from sessionward._tokens import redact
from sessionward.jobs import JobContext, JobKind, current_context

__all__ = [
    "CalloutError",
    "CalloutResponse",
    "CredentialAuth",
    "CredentialError",
    "CredentialHandle",
    "CredentialNotPermitted",
    "CredentialRegistry",
    "CredentialsView",
    "NamedCredential",
    "OAuthClientCredentials",
    "OrgClientCredentials",
    "Secret",
    "StaticHeader",
    "UnknownCredential",
    "resolve_callout",
]

_log = logging.getLogger("sessionward.credentials")

_MAX_BODY = 1 << 20  # at most this many bytes are read from a token endpoint
_CALLOUT_PREFIX = "callout:"


# --------------------------------------------------------------------------- errors


class CredentialError(Exception):
    """A named credential could not be used: token endpoint down, refused, or answered nonsense.

    ``credential`` is the credential's name, ``status`` the HTTP status (if
    any) and ``oauth_error`` the OAuth ``error`` code the endpoint returned
    (``invalid_client``, ``invalid_scope``, ...). The message never contains
    the client secret or an access token.
    """

    def __init__(
        self,
        message: str,
        *,
        credential: str | None = None,
        status: int | None = None,
        oauth_error: str | None = None,
    ) -> None:
        super().__init__(message)
        self.credential = credential
        self.status = status
        self.oauth_error = oauth_error

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnknownCredential(CredentialError, KeyError):
    """No credential of that name is registered (or the job has no registry). A ``KeyError``."""


class CredentialNotPermitted(CredentialError):
    """The credential exists but the job's kind or run-as profile may not use it."""


class CalloutError(CredentialError):
    """The callout itself failed (connection refused, timeout) before any HTTP response."""


# --------------------------------------------------------------------------- Secret


@final
class Secret:
    """A secret string that does not leak by accident.

    ``repr``, ``str`` and every format spec give ``Secret('***')``; pickling and
    ``copy`` by reduction raise ``TypeError``; equality is constant-time; the
    value is read only through :meth:`reveal`. Instances are immutable and
    unhashable.
    """

    __slots__ = ("_value",)
    _value: str

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"Secret wraps a str, not {type(value).__name__}")
        object.__setattr__(self, "_value", value)

    def reveal(self) -> str:
        """Return the secret value. Do not log it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "Secret('***')"

    def __format__(self, format_spec: str) -> str:
        return format("Secret('***')", format_spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    __hash__ = None  # type: ignore[assignment]

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("Secret is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("Secret is immutable")

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled: pass the credential's name, not its secret")

    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        raise TypeError("a Secret cannot be pickled: pass the credential's name, not its secret")

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Secret:
        return self


def _as_secret(field: str, value: Secret | str) -> Secret:
    if isinstance(value, Secret):
        return value
    if isinstance(value, str):
        return Secret(value)
    raise TypeError(f"{field} must be a Secret or a str, not {type(value).__name__}")


# --------------------------------------------------------------------------- validation

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(field: str, url: str, *, allow_query: bool) -> str:
    if not isinstance(url, str) or not url:
        raise ValueError(f"{field} must be a non-empty URL string")
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{field} must be an http(s) URL with a host, got {url!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{field} must not carry user info; put secrets in the protocol")
    if scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError(
            f"{field} must use https (plain http is allowed only for loopback hosts), got {url!r}"
        )
    if parts.fragment or (parts.query and not allow_query):
        raise ValueError(
            f"{field} must not have a {'fragment' if parts.fragment else 'query'}, got {url!r}"
        )
    return url


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
_CREDENTIAL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*\Z")


def _normalize_scopes(scopes: Iterable[str] | str) -> tuple[str, ...]:
    items = scopes.split() if isinstance(scopes, str) else list(scopes)
    out: list[str] = []
    for scope in items:
        if (
            not isinstance(scope, str)
            or not scope
            or any(c.isspace() or c == '"' or c == "\\" for c in scope)
        ):
            raise ValueError(
                f"scopes: each scope must be a non-empty token without spaces, got {scope!r}"
            )
        if scope not in out:
            out.append(scope)
    return tuple(out)


# --------------------------------------------------------------------------- protocols


@dataclasses.dataclass(frozen=True, init=False)
class OAuthClientCredentials:
    """OAuth 2.0 client credentials grant (RFC 6749 section 4.4).

    ``client_auth="basic"`` sends the client id and secret in an HTTP Basic
    header (RFC 6749 section 2.3.1); ``"post"`` sends them in the form body.
    ``timeout`` (seconds) bounds each token request.
    """

    token_url: str
    client_id: str
    client_secret: Secret
    scopes: tuple[str, ...]
    client_auth: Literal["basic", "post"]
    timeout: float

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: Secret | str,
        scopes: Iterable[str] | str = (),
        client_auth: Literal["basic", "post"] = "basic",
        timeout: float = 10,
    ) -> None:
        _check_url("token_url", token_url, allow_query=True)
        if not isinstance(client_id, str) or not client_id:
            raise ValueError("client_id must be a non-empty string")
        if client_auth not in ("basic", "post"):
            raise ValueError(f"client_auth must be 'basic' or 'post', got {client_auth!r}")
        if not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        object.__setattr__(self, "token_url", token_url)
        object.__setattr__(self, "client_id", client_id)
        object.__setattr__(self, "client_secret", _as_secret("client_secret", client_secret))
        object.__setattr__(self, "scopes", _normalize_scopes(scopes))
        object.__setattr__(self, "client_auth", client_auth)
        object.__setattr__(self, "timeout", float(timeout))

    def __reduce__(self) -> NoReturn:
        raise TypeError("OAuthClientCredentials holds a Secret and cannot be pickled")


@dataclasses.dataclass(frozen=True, init=False)
class StaticHeader:
    """A fixed header (an API key): ``header_name: value`` on every callout."""

    header_name: str
    value: Secret

    def __init__(self, header_name: str, value: Secret | str) -> None:
        if not isinstance(header_name, str) or not _HEADER_NAME.match(header_name):
            raise ValueError(f"header_name must be an HTTP header name, got {header_name!r}")
        secret = _as_secret("value", value)
        if any(c in secret.reveal() for c in "\r\n\0"):
            raise ValueError("value must not contain CR, LF or NUL")
        object.__setattr__(self, "header_name", header_name)
        object.__setattr__(self, "value", secret)

    def __reduce__(self) -> NoReturn:
        raise TypeError("StaticHeader holds a Secret and cannot be pickled")


@dataclasses.dataclass(frozen=True, init=False)
class OrgClientCredentials:
    """The client-credentials grant against an in-process ``sessionward.Org`` (the org as its
    own token endpoint, without HTTP): tokens come from ``org.grant_client_credentials`` and are
    OAUTH2 sessions of the client's run-as user, cached and refreshed like HTTP-granted ones.
    ``client_ip`` is the address the grant (and the run-as profile's login ranges) sees.
    """

    org: Any
    client_id: str
    client_secret: Secret
    scopes: tuple[str, ...]
    client_ip: str

    def __init__(
        self,
        org: Any,
        client_id: str,
        client_secret: Secret | str,
        scopes: Iterable[str] | str = (),
        client_ip: str = "127.0.0.1",
    ) -> None:
        if not callable(getattr(org, "grant_client_credentials", None)):
            raise TypeError("org must be a sessionward.Org (it has no grant_client_credentials)")
        if not isinstance(client_id, str) or not client_id:
            raise ValueError("client_id must be a non-empty string")
        object.__setattr__(self, "org", org)
        object.__setattr__(self, "client_id", client_id)
        object.__setattr__(self, "client_secret", _as_secret("client_secret", client_secret))
        object.__setattr__(self, "scopes", _normalize_scopes(scopes))
        object.__setattr__(self, "client_ip", client_ip)

    def __repr__(self) -> str:
        return f"OrgClientCredentials(client_id={self.client_id!r}, scopes={self.scopes!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("OrgClientCredentials holds a Secret and cannot be pickled")


AuthProtocol = OAuthClientCredentials | StaticHeader | OrgClientCredentials


@dataclasses.dataclass(frozen=True, init=False)
class NamedCredential:
    """A name mapped to an endpoint and an auth protocol, with who may use it.

    ``allowed_kinds`` / ``allowed_profiles``: ``None`` means any job kind / any
    run-as profile (including none); a collection restricts to its members.
    ``endpoint`` is the base URL that ``callout:NAME/...`` URLs are joined to;
    the auth helpers sign requests only for URLs under it.
    """

    name: str
    endpoint: str
    protocol: AuthProtocol
    allowed_kinds: frozenset[JobKind] | None
    allowed_profiles: frozenset[str] | None

    def __init__(
        self,
        name: str,
        endpoint: str,
        protocol: AuthProtocol,
        allowed_kinds: Iterable[JobKind | str] | None = None,
        allowed_profiles: Iterable[str] | None = None,
    ) -> None:
        if not isinstance(name, str) or not _CREDENTIAL_NAME.match(name):
            raise ValueError(
                "name must start with a letter and contain only letters, digits, '_', '.', '-', "
                f"got {name!r}"
            )
        _check_url("endpoint", endpoint, allow_query=False)
        if not isinstance(protocol, (OAuthClientCredentials, StaticHeader, OrgClientCredentials)):
            raise TypeError(
                "protocol must be OAuthClientCredentials or StaticHeader, "
                f"not {type(protocol).__name__}"
            )
        kinds: frozenset[JobKind] | None = None
        if allowed_kinds is not None:
            if isinstance(allowed_kinds, str):
                allowed_kinds = [allowed_kinds]
            try:
                kinds = frozenset(JobKind(k) for k in allowed_kinds)
            except ValueError as exc:
                raise ValueError(f"allowed_kinds: {exc}") from None
        profiles: frozenset[str] | None = None
        if allowed_profiles is not None:
            if isinstance(allowed_profiles, str):
                allowed_profiles = [allowed_profiles]
            profiles = frozenset(allowed_profiles)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "endpoint", endpoint.rstrip("/"))
        object.__setattr__(self, "protocol", protocol)
        object.__setattr__(self, "allowed_kinds", kinds)
        object.__setattr__(self, "allowed_profiles", profiles)

    def __reduce__(self) -> NoReturn:
        raise TypeError("NamedCredential holds a Secret and cannot be pickled")


# --------------------------------------------------------------------------- URLs


def _origin(parts: urllib.parse.SplitResult) -> tuple[str, str, int | None]:
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


def _has_dot_segment(path: str) -> bool:
    return any(urllib.parse.unquote(seg) in (".", "..") for seg in path.split("/"))


def _under_endpoint(endpoint: str, url: str) -> bool:
    try:
        target = urllib.parse.urlsplit(url)
        base = urllib.parse.urlsplit(endpoint)
        if _origin(target) != _origin(base):
            return False
    except ValueError:  # bad port
        return False
    if target.username is not None or target.password is not None:
        return False
    if _has_dot_segment(target.path):
        return False
    base_path = base.path.rstrip("/")
    return (
        target.path == base_path
        or target.path.startswith(base_path + "/")
        or (base_path == "" and target.path == "")
    )


def _split_callout(url: str) -> tuple[str, str]:
    """``callout:NAME/rest?q`` -> (NAME, "/rest?q")."""
    rest = url[len(_CALLOUT_PREFIX) :]
    cut = len(rest)
    for sep in "/?#":
        i = rest.find(sep)
        if i != -1:
            cut = min(cut, i)
    return rest[:cut], rest[cut:]


def _join(credential: NamedCredential, url: str) -> str:
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, not {type(url).__name__}")
    if url.startswith(_CALLOUT_PREFIX):
        name, tail = _split_callout(url)
        if name != credential.name:
            raise ValueError(
                f"callout URL names credential {name!r}, but this handle is for {credential.name!r}"
            )
    elif url == "" or url.startswith(("/", "?")):
        tail = url
    elif "://" in url:
        if not _under_endpoint(credential.endpoint, url):
            raise ValueError(
                f"URL is outside the endpoint of named credential {credential.name!r}: "
                f"{redact(url)!r}"
            )
        return url
    else:
        raise ValueError(
            f"expected 'callout:{credential.name}/path', '/path' or a URL under the endpoint, "
            f"got {redact(url)!r}"
        )
    if tail.startswith("#"):
        tail = ""
    full = credential.endpoint + tail
    if not _under_endpoint(credential.endpoint, full):
        raise ValueError(
            f"callout path leaves the endpoint of named credential {credential.name!r}: "
            f"{redact(url)!r}"
        )
    return full


def resolve_callout(url: str, ctx: JobContext | None = None) -> str:
    """Turn ``callout:NAME/path?q=1`` into the endpoint URL of credential ``NAME``.

    ``ctx`` defaults to the running job's context; the credential must be
    registered and permitted for that job (else :class:`UnknownCredential` /
    :class:`CredentialNotPermitted`).
    """
    if not isinstance(url, str) or not url.startswith(_CALLOUT_PREFIX):
        raise ValueError(f"a callout URL starts with 'callout:NAME', got {redact(str(url))!r}")
    job = ctx if ctx is not None else current_context()
    name, _tail = _split_callout(url)
    return job.credentials[name].url(url)


# --------------------------------------------------------------------------- HTTP


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Never follow redirects: credentials stay with the host they were meant for."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> None:
        return None


def _default_opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(_NoRedirect())


@dataclasses.dataclass(frozen=True, repr=False)
class CalloutResponse:
    """The answer to :meth:`CredentialHandle.request` (any status; nothing is raised for 4xx/5xx).

    ``headers`` has lower-cased names; repeated headers are joined with ``", "``. Its ``repr``
    shows the status, the URL, the header names and the body's size, never a header value or
    the body.
    """

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str

    def __repr__(self) -> str:
        # The body of an API answer can be a token (the org's own token endpoint answers with
        # one) and headers can set the API's cookies: neither may reach a log or an error
        # reporter that records locals.
        return redact(
            f"CalloutResponse(status={self.status}, url={self.url!r}, "
            f"headers=<{', '.join(sorted(self.headers))}>, body=<{len(self.body)} bytes>)"
        )

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300

    def text(self, encoding: str = "utf-8") -> str:
        """The body decoded (undecodable bytes replaced)."""
        return self.body.decode(encoding, errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return _json.loads(self.body)


def _headers(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in items:
        key = key.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def _send(
    opener: urllib.request.OpenerDirector,
    req: urllib.request.Request,
    timeout: float,
    limit: int | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """Send; return (status, headers with lower-cased names, body) for any HTTP status.

    ``limit`` caps the bytes read (token endpoints); ``None`` reads the whole body.
    """
    amount = -1 if limit is None else limit
    try:
        with opener.open(req, timeout=timeout) as resp:
            return int(resp.status), _headers(resp.headers.items()), resp.read(amount)
    except urllib.error.HTTPError as err:
        try:
            headers = _headers(err.headers.items()) if err.headers is not None else {}
            body = err.read(amount) if err.fp is not None else b""
        finally:
            err.close()
        return int(err.code), headers, body


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        inner = exc.reason
        return (
            f"{type(inner).__name__}: {inner}" if isinstance(inner, BaseException) else str(inner)
        )
    return f"{type(exc).__name__}: {exc}"


def _scrub(text: str, secrets: Iterable[str], limit: int = 200) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = redact(text)
    text = "".join(c if c.isprintable() else " " for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- cache


@dataclasses.dataclass(frozen=True, slots=True)
class _Token:
    value: Secret
    expires_at: float


class _Slot:
    """One cache entry: the token for a (credential, scopes) key, and its refresh lock.

    ``owner`` is the credential the token was fetched with. The cache is keyed by its
    identity, and this reference keeps that identity from being reused by a new object while
    the entry exists.
    """

    __slots__ = ("error", "generation", "lock", "owner", "token")

    def __init__(self, owner: NamedCredential) -> None:
        self.owner = owner
        self.lock = threading.Lock()
        self.token: _Token | None = None
        self.generation = 0
        self.error: CredentialError | None = None


def _copy_error(exc: CredentialError) -> CredentialError:
    return CredentialError(
        str(exc), credential=exc.credential, status=exc.status, oauth_error=exc.oauth_error
    )


# --------------------------------------------------------------------------- registry


class CredentialRegistry:
    """The named credentials of an app, and their token cache. Thread-safe.

    ``clock`` (seconds, monotonic) and ``sleep`` are injectable for tests.
    A token is kept until ``expires_in - skew`` seconds after it was requested
    (half of ``expires_in`` when that is under ``2 * skew``); an endpoint that
    omits ``expires_in`` gets ``default_expires_in``. A token request that
    fails for a reason that can pass is tried up to ``max_attempts`` times,
    sleeping ``backoff * 2**n`` seconds (at most ``max_backoff``) in between.

    Locking: a registry-wide mutex guards the name table and the cache index
    (held for dictionary operations only); each cache entry has its own lock,
    held by the one caller refreshing that entry (for at most
    ``max_attempts`` token requests plus the backoff sleeps) while callers of
    the same entry wait. Cached tokens are read without locking.
    """

    def __init__(
        self,
        credentials: Iterable[NamedCredential] = (),
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        skew: float = 30.0,
        max_attempts: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        default_expires_in: float = 300.0,
        opener: urllib.request.OpenerDirector | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts!r}")
        if skew < 0 or backoff < 0 or max_backoff < 0 or default_expires_in <= 0:
            raise ValueError(
                "skew, backoff and max_backoff must be >= 0 and default_expires_in > 0"
            )
        self._clock = clock
        self._sleep = sleep
        self._skew = float(skew)
        self._max_attempts = max_attempts
        self._backoff = float(backoff)
        self._max_backoff = float(max_backoff)
        self._default_expires_in = float(default_expires_in)
        self._opener = opener if opener is not None else _default_opener()
        self._mutex = threading.Lock()
        self._credentials: dict[str, NamedCredential] = {}
        # Keyed by the credential object's identity, not its name: a name can be re-registered
        # with another endpoint, and a token must only ever go back to where it came from.
        self._slots: dict[tuple[int, tuple[str, ...]], _Slot] = {}
        for credential in credentials:
            self.register(credential)

    def __repr__(self) -> str:
        return f"CredentialRegistry({sorted(self._credentials)!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a CredentialRegistry cannot be pickled: pass credential names to jobs")

    # -- the name table

    def register(self, credential: NamedCredential, *, replace: bool = False) -> NamedCredential:
        """Add ``credential``.

        A name already taken is refused unless ``replace``, which also drops
        the old credential's cached tokens. Handles obtained before the
        replacement keep using the old credential and its endpoint, fetching
        a token for each use (the cache only holds registered credentials'
        tokens): get a new handle from ``ctx.credentials`` to use the new one.
        """
        if not isinstance(credential, NamedCredential):
            raise TypeError(f"expected a NamedCredential, not {type(credential).__name__}")
        with self._mutex:
            if credential.name in self._credentials and not replace:
                raise ValueError(
                    f"a credential named {credential.name!r} is already registered "
                    "(pass replace=True)"
                )
            self._credentials[credential.name] = credential
            self._drop_slots(credential.name)
        _log.debug("registered credential %s", credential.name)
        return credential

    def unregister(self, name: str) -> None:
        """Remove a credential and its cached tokens (no error if absent)."""
        with self._mutex:
            self._credentials.pop(name, None)
            self._drop_slots(name)

    def _drop_slots(self, name: str) -> None:
        for key in [k for k, slot in self._slots.items() if slot.owner.name == name]:
            del self._slots[key]

    def names(self) -> list[str]:
        """The registered names, sorted."""
        with self._mutex:
            return sorted(self._credentials)

    def __contains__(self, name: object) -> bool:
        return name in self._credentials

    def invalidate(self, name: str) -> None:
        """Forget the cached tokens of credential ``name`` (the next use fetches anew)."""
        with self._mutex:
            self._drop_slots(name)

    def _forget(self, credential: NamedCredential) -> None:
        # A handle forgets its own credential's tokens only: one on a replaced credential must
        # not throw away the new credential's.
        with self._mutex:
            for key in [k for k, slot in self._slots.items() if slot.owner is credential]:
                del self._slots[key]

    # -- access

    def _lookup(self, name: str) -> NamedCredential:
        credential = self._credentials.get(name)
        if credential is None:
            raise UnknownCredential(f"no named credential {name!r} is registered", credential=name)
        return credential

    @staticmethod
    def _permits(credential: NamedCredential, context: JobContext) -> bool:
        if credential.allowed_kinds is not None and context.kind not in credential.allowed_kinds:
            return False
        if (
            credential.allowed_profiles is not None
            and context.profile not in credential.allowed_profiles
        ):
            return False
        return True

    def get(self, name: str, context: JobContext) -> CredentialHandle:
        """Return a handle on credential ``name`` for the job ``context``.

        Raises :class:`UnknownCredential` if no such credential is registered,
        :class:`CredentialNotPermitted` if the job's kind or run-as profile is
        not allowed to use it.
        """
        if not isinstance(context, JobContext):
            raise TypeError("context must be the JobContext of the job using the credential")
        credential = self._lookup(name)
        if credential.allowed_kinds is not None and context.kind not in credential.allowed_kinds:
            allowed = ", ".join(sorted(k.value for k in credential.allowed_kinds)) or "none"
            raise CredentialNotPermitted(
                f"named credential {name!r} is not permitted for {context.kind.value} jobs "
                f"(allowed kinds: {allowed})",
                credential=name,
            )
        if (
            credential.allowed_profiles is not None
            and context.profile not in credential.allowed_profiles
        ):
            allowed = ", ".join(sorted(credential.allowed_profiles)) or "none"
            raise CredentialNotPermitted(
                f"named credential {name!r} is not permitted for run-as profile "
                f"{context.profile!r} (allowed profiles: {allowed})",
                credential=name,
            )
        return CredentialHandle(self, credential, context)

    def _permitted_names(self, context: JobContext) -> list[str]:
        with self._mutex:
            creds = list(self._credentials.values())
        return sorted(c.name for c in creds if self._permits(c, context))

    # -- tokens

    def _slot(self, credential: NamedCredential, scopes: tuple[str, ...]) -> _Slot:
        """The cache entry of ``credential`` and ``scopes``.

        Only a credential that is registered now gets a shared entry. A handle on a replaced or
        unregistered credential gets a private one (it fetches a token for each use), so it can
        neither read nor fill the cache of whatever now holds the name, and the registry keeps
        no token of a credential it no longer has.
        """
        with self._mutex:
            if self._credentials.get(credential.name) is not credential:
                _log.debug(
                    "credential %s was replaced: this handle's token is not cached", credential.name
                )
                return _Slot(credential)
            key = (id(credential), scopes)
            slot = self._slots.get(key)
            if slot is None:
                slot = self._slots[key] = _Slot(credential)
            return slot

    def _token(
        self,
        credential: NamedCredential,
        protocol: OAuthClientCredentials | OrgClientCredentials,
        scopes: tuple[str, ...],
    ) -> _Token:
        slot = self._slot(credential, scopes)
        token = slot.token
        if token is not None and self._clock() < token.expires_at:
            return token
        seen = slot.generation
        with slot.lock:
            token = slot.token
            if token is not None and self._clock() < token.expires_at:
                return token  # a concurrent caller just refreshed it
            if slot.generation != seen and slot.error is not None:
                # A concurrent caller's refresh failed while we waited: do not
                # hammer a failing endpoint once per waiting thread.
                raise _copy_error(slot.error)
            try:
                token = self._fetch(credential, protocol, scopes)
            except CredentialError as exc:
                slot.error = exc
                slot.generation += 1
                raise
            slot.token = token
            slot.error = None
            slot.generation += 1
            return token

    def _reject(self, credential: NamedCredential, scopes: tuple[str, ...], token: _Token) -> None:
        """Drop ``token`` from the cache (the API said 401) unless it was already replaced."""
        with self._mutex:
            slot = self._slots.get((id(credential), scopes))
        if slot is None or slot.owner is not credential:
            return  # not cached (a replaced credential's token never is)
        with slot.lock:
            if slot.token is token:
                slot.token = None
        _log.debug("dropped the cached token of credential %s after a 401", credential.name)

    def _fetch(
        self,
        credential: NamedCredential,
        protocol: OAuthClientCredentials | OrgClientCredentials,
        scopes: tuple[str, ...],
    ) -> _Token:
        if isinstance(protocol, OrgClientCredentials):
            return self._grant_in_process(credential.name, protocol, scopes)
        name = credential.name
        secret = protocol.client_secret.reveal()
        form = {"grant_type": "client_credentials"}
        if scopes:
            form["scope"] = " ".join(scopes)
        auth_header: str | None = None
        if protocol.client_auth == "basic":
            pair = (
                f"{urllib.parse.quote_plus(protocol.client_id)}:{urllib.parse.quote_plus(secret)}"
            )
            auth_header = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        else:
            form["client_id"] = protocol.client_id
            form["client_secret"] = secret
        body = urllib.parse.urlencode(form).encode("ascii")

        failure = ""
        status: int | None = None
        for attempt in range(1, self._max_attempts + 1):
            _log.debug("requesting a token for credential %s (attempt %d)", name, attempt)
            request = urllib.request.Request(protocol.token_url, data=body, method="POST")
            request.add_header("Content-Type", "application/x-www-form-urlencoded")
            request.add_header("Accept", "application/json")
            if auth_header is not None:
                request.add_unredirected_header("Authorization", auth_header)
            started = self._clock()
            try:
                status, headers, payload = _send(self._opener, request, protocol.timeout, _MAX_BODY)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                status = None
                failure = f"token endpoint unreachable ({_scrub(_reason(exc), [secret])})"
            else:
                if 200 <= status < 300:
                    return self._parse_token(name, payload, headers, started, secret)
                if status != 429 and status < 500:
                    raise self._refusal(name, status, payload, secret)
                failure = f"token endpoint answered HTTP {status}"
            if attempt < self._max_attempts:
                delay = min(self._backoff * (2 ** (attempt - 1)), self._max_backoff)
                _log.debug(
                    "token request for credential %s failed (attempt %d of %d); retrying in %.3g s",
                    name,
                    attempt,
                    self._max_attempts,
                    delay,
                )
                self._sleep(delay)
        raise CredentialError(
            f"could not get a token for named credential {name!r}: {failure} "
            f"(gave up after {self._max_attempts} attempt(s))",
            credential=name,
            status=status,
        )

    def _grant_in_process(
        self, name: str, protocol: OrgClientCredentials, scopes: tuple[str, ...]
    ) -> _Token:
        started = self._clock()
        _log.debug("granting a token in process for credential %s", name)
        try:
            grant = protocol.org.grant_client_credentials(
                protocol.client_id,
                protocol.client_secret.reveal(),
                " ".join(scopes) or None,
                protocol.client_ip,
            )
        except Exception as exc:
            code = getattr(exc, "code", None)
            if not isinstance(code, str):
                raise
            raise CredentialError(
                f"the org refused named credential {name!r} (error={code})",
                credential=name,
                oauth_error=code,
            ) from None
        expires_in = float(grant.expires_in)
        lifetime = expires_in - self._skew if expires_in > 2 * self._skew else expires_in / 2
        return _Token(Secret(grant.access_token), started + lifetime)

    def _refusal(self, name: str, status: int, payload: bytes, secret: str) -> CredentialError:
        oauth_error: str | None = None
        description = ""
        try:
            data = _json.loads(payload)
        except ValueError:
            data = None
        if isinstance(data, dict):
            if isinstance(data.get("error"), str):
                oauth_error = _scrub(data["error"], [secret], limit=64)
            if isinstance(data.get("error_description"), str):
                description = _scrub(data["error_description"], [secret])
        detail = f"HTTP {status}"
        if oauth_error:
            detail += f", error={oauth_error}"
        if description:
            detail += f": {description}"
        return CredentialError(
            f"token endpoint refused named credential {name!r} ({detail})",
            credential=name,
            status=status,
            oauth_error=oauth_error,
        )

    def _parse_token(
        self, name: str, payload: bytes, headers: Mapping[str, str], started: float, secret: str
    ) -> _Token:
        def bad(what: str) -> CredentialError:
            return CredentialError(
                f"token endpoint for named credential {name!r} {what}", credential=name
            )

        try:
            data = _json.loads(payload)
        except ValueError:
            ctype = _scrub(headers.get("content-type", "none"), [secret], limit=60)
            raise bad(f"did not answer JSON (content-type {ctype})") from None
        if not isinstance(data, dict):
            raise bad("answered JSON that is not an object")
        access_token = data.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise bad("answered without an access_token")
        token_type = data.get("token_type", "Bearer")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            shown = _scrub(str(token_type), [secret, access_token], limit=40)
            raise bad(f"issued an unsupported token_type {shown!r} (only Bearer is supported)")
        expires_in: float = self._default_expires_in
        raw = data.get("expires_in")
        if raw is not None:
            try:
                expires_in = float(raw)
            except (TypeError, ValueError):
                raise bad("answered a non-numeric expires_in") from None
            if not expires_in > 0:
                raise bad("answered a non-positive expires_in")
        lifetime = expires_in - self._skew if expires_in > 2 * self._skew else expires_in / 2
        _log.debug("cached a token for credential %s for %.0f s", name, lifetime)
        return _Token(Secret(access_token), started + lifetime)


# --------------------------------------------------------------------------- handles


@final
class CredentialHandle:
    """A job's handle on one named credential (from ``ctx.credentials[NAME]``).

    Cheap to create; the token cache lives in the registry. Never prints a
    secret.
    """

    __slots__ = ("_context", "_credential", "_registry", "_scopes")

    def __init__(
        self,
        registry: CredentialRegistry,
        credential: NamedCredential,
        context: JobContext,
        scopes: Iterable[str] | None = None,
    ) -> None:
        self._registry = registry
        self._credential = credential
        self._context = context
        protocol = credential.protocol
        default = (
            protocol.scopes
            if isinstance(protocol, (OAuthClientCredentials, OrgClientCredentials))
            else ()
        )
        self._scopes = tuple(sorted(_normalize_scopes(default if scopes is None else scopes)))

    def __repr__(self) -> str:
        return (
            f"CredentialHandle({self._credential.name!r}, endpoint={self._credential.endpoint!r})"
        )

    def __reduce__(self) -> NoReturn:
        raise TypeError("a CredentialHandle cannot be pickled: pass the credential's name")

    @property
    def name(self) -> str:
        """The credential's name."""
        return self._credential.name

    @property
    def endpoint(self) -> str:
        """The base URL callouts are joined to."""
        return self._credential.endpoint

    @property
    def scopes(self) -> tuple[str, ...]:
        """The scopes requested for this handle's tokens (sorted)."""
        return self._scopes

    def with_scopes(self, *scopes: str) -> CredentialHandle:
        """A handle on the same credential requesting other scopes (cached separately)."""
        return CredentialHandle(self._registry, self._credential, self._context, scopes)

    # -- auth material

    def _authorize(self) -> tuple[dict[str, str], _Token | None]:
        protocol = self._credential.protocol
        if isinstance(protocol, StaticHeader):
            return {protocol.header_name: protocol.value.reveal()}, None
        token = self._registry._token(self._credential, protocol, self._scopes)
        return {"Authorization": f"Bearer {token.value.reveal()}"}, token

    def _reject(self, token: _Token) -> None:
        self._registry._reject(self._credential, self._scopes, token)

    def _check_target(self, url: str) -> None:
        if not _under_endpoint(self._credential.endpoint, url):
            raise CredentialError(
                f"refusing to sign a request outside the endpoint of named credential "
                f"{self.name!r}: {redact(url)!r}",
                credential=self.name,
            )

    def headers(self) -> dict[str, str]:
        """The auth header(s) for a callout now, e.g. ``{"Authorization": "Bearer ..."}``.

        Fetches or refreshes the OAuth token as needed. The values are
        secrets: do not log them.
        """
        return self._authorize()[0]

    def invalidate(self) -> None:
        """Forget this handle's cached token (e.g. after your own client saw a 401)."""
        self._registry._forget(self._credential)

    def url(self, url: str) -> str:
        """Resolve ``callout:NAME/path?q=1`` (or ``/path?q=1``) against the endpoint."""
        return _join(self._credential, url)

    @property
    def auth(self) -> CredentialAuth:
        """Auth for ``requests`` (``auth=handle.auth``) and, when installed, ``httpx``.

        Signs only URLs under the endpoint; on a 401 it drops the token and
        resends once with a fresh one.
        """
        return _auth_class()(self)

    def request(
        self,
        method: str,
        url: str,
        data: bytes | str | Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        json: Any = None,
        timeout: float = 30.0,
    ) -> CalloutResponse:
        """Call the API with ``urllib.request`` and return the response (any status).

        ``url`` is ``callout:NAME/path``, ``/path`` or a URL under the endpoint.
        ``data`` is sent as is (``bytes``/``str``) or form-encoded (mapping);
        ``json`` is sent as JSON. A 401 answered to a cached OAuth token drops
        that token and the call is made once more with a fresh one. Redirects
        are returned, not followed. Raises :class:`CalloutError` when no HTTP
        response arrives, :class:`CredentialError` when no token can be had.
        """
        full = self.url(url)
        body, content_type = _encode_body(data, json)
        method = method.upper()
        for attempt in (1, 2):
            auth_headers, token = self._authorize()
            req = urllib.request.Request(full, data=body, method=method)
            if content_type is not None:
                req.add_header("Content-Type", content_type)
            for key, value in (headers or {}).items():
                req.add_header(key, value)
            for key, value in auth_headers.items():
                req.add_unredirected_header(key, value)
            try:
                status, resp_headers, payload = _send(self._registry._opener, req, timeout)
            except (OSError, http.client.HTTPException) as exc:
                secrets = [v for v in auth_headers.values()]
                raise CalloutError(
                    f"callout via named credential {self.name!r} to {redact(full)!r} failed: "
                    f"{_scrub(_reason(exc), secrets)}",
                    credential=self.name,
                ) from None
            if status == 401 and token is not None and attempt == 1:
                _log.debug(
                    "callout via credential %s got 401; retrying once with a new token", self.name
                )
                self._reject(token)
                continue
            return CalloutResponse(status=status, headers=resp_headers, body=payload, url=full)
        raise AssertionError("unreachable")  # pragma: no cover


def _encode_body(
    data: bytes | str | Mapping[str, str] | None, json: Any
) -> tuple[bytes | None, str | None]:
    if json is not None:
        if data is not None:
            raise ValueError("pass data or json, not both")
        return _json.dumps(json).encode(), "application/json"
    if data is None:
        return None, None
    if isinstance(data, bytes):
        return data, None
    if isinstance(data, str):
        return data.encode(), "text/plain; charset=utf-8"
    if isinstance(data, Mapping):
        return urllib.parse.urlencode(data).encode("ascii"), "application/x-www-form-urlencoded"
    raise TypeError(f"data must be bytes, str or a mapping, not {type(data).__name__}")


# --------------------------------------------------------------------------- requests / httpx auth


class CredentialAuth:
    """Signs requests with a named credential, for ``requests`` and ``httpx``.

    For ``requests`` it is an auth callable (``__call__(r)`` sets the headers
    and hooks a one-time 401 retry). When ``httpx`` is installed, the object
    :attr:`CredentialHandle.auth` returns is also an ``httpx.Auth`` subclass
    (created lazily), using :meth:`auth_flow` / :meth:`async_auth_flow`.
    Refuses (``CredentialError``) to sign a URL outside the endpoint.
    """

    requires_request_body = False
    requires_response_body = False

    def __init__(self, handle: CredentialHandle) -> None:
        self._handle = handle

    def __repr__(self) -> str:
        return f"CredentialAuth({self._handle.name!r})"

    # requests

    def __call__(self, r: Any) -> Any:
        self._handle._check_target(str(r.url))
        auth_headers, token = self._handle._authorize()
        r.headers.update(auth_headers)
        if token is not None and hasattr(r, "register_hook"):
            r.register_hook("response", functools.partial(self._retry_401, token))
        return r

    def _retry_401(self, token: _Token, r: Any, **kwargs: Any) -> Any:
        if r.status_code != 401 or getattr(r.request, "_sessionward_retried", False):
            return r
        if r.request.body is not None and not isinstance(r.request.body, (bytes, str)):
            return r  # a streamed body cannot be sent twice
        _log.debug(
            "callout via credential %s got 401; retrying once with a new token", self._handle.name
        )
        self._handle._reject(token)
        r.content  # noqa: B018 - drain so the connection can be reused
        r.close()
        retry = r.request.copy()
        retry.headers.update(self._handle._authorize()[0])
        retry._sessionward_retried = True
        resent = r.connection.send(retry, **kwargs)
        resent.history.append(r)
        resent.request = retry
        return resent

    # httpx

    def auth_flow(self, request: Any) -> Generator[Any, Any, None]:
        """The ``httpx.Auth`` flow (sync clients)."""
        self._handle._check_target(str(request.url))
        auth_headers, token = self._handle._authorize()
        request.headers.update(auth_headers)
        response = yield request
        if response.status_code == 401 and token is not None:
            self._handle._reject(token)
            request.headers.update(self._handle._authorize()[0])
            yield request

    async def async_auth_flow(self, request: Any) -> AsyncGenerator[Any, Any]:
        """The ``httpx.Auth`` flow (async clients): token requests run in a worker thread."""
        self._handle._check_target(str(request.url))
        auth_headers, token = await asyncio.to_thread(self._handle._authorize)
        request.headers.update(auth_headers)
        response = yield request
        if response.status_code == 401 and token is not None:
            await asyncio.to_thread(self._handle._reject, token)
            fresh, _ = await asyncio.to_thread(self._handle._authorize)
            request.headers.update(fresh)
            yield request


_auth_cls: type[CredentialAuth] | None = None
_auth_cls_lock = threading.Lock()


def _auth_class() -> type[CredentialAuth]:
    global _auth_cls
    if _auth_cls is None:
        with _auth_cls_lock:
            if _auth_cls is None:
                try:
                    httpx = importlib.import_module("httpx")
                except ImportError:
                    _auth_cls = CredentialAuth
                else:
                    _auth_cls = type(
                        "CredentialAuth",
                        (CredentialAuth, httpx.Auth),
                        {"__module__": __name__, "__qualname__": "CredentialAuth"},
                    )
    return _auth_cls


# --------------------------------------------------------------------------- the job's view


class CredentialsView(Mapping[str, CredentialHandle]):
    """``JobContext.credentials``: the named credentials one job may use.

    Iteration, ``len`` and ``in`` cover the credentials permitted for the
    job; ``view[name]`` raises :class:`UnknownCredential` (a ``KeyError``)
    for an unknown name and :class:`CredentialNotPermitted` for one the job
    may not use.
    """

    __slots__ = ("_context", "_registry")

    def __init__(self, registry: CredentialRegistry | None, context: JobContext) -> None:
        self._registry = registry
        self._context = context

    def __getitem__(self, name: str) -> CredentialHandle:
        if self._registry is None:
            raise UnknownCredential(
                f"no named credential {name!r}: this job has no credential registry "
                "(pass credentials=registry when starting it)",
                credential=name,
            )
        return self._registry.get(name, self._context)

    def __iter__(self) -> Iterator[str]:
        if self._registry is None:
            return iter(())
        return iter(self._registry._permitted_names(self._context))

    def __len__(self) -> int:
        return 0 if self._registry is None else len(self._registry._permitted_names(self._context))

    def __contains__(self, name: object) -> bool:
        if self._registry is None or not isinstance(name, str):
            return False
        return name in self._registry._permitted_names(self._context)

    def __repr__(self) -> str:
        return f"CredentialsView({list(self)!r})"
