"""Framework-free web logic shared by `sessionward.asgi` and `sessionward.wsgi`.

Nothing here imports a web framework: the ASGI and WSGI middleware translate their request into
plain values (a method, a path, a header list, the socket peer) and a `WebResponse` back into
their protocol. The pieces can be used on their own:

* **Cookies**: `CookieSettings` (``__Host-`` name, ``Secure; HttpOnly; SameSite=Lax; Path=/`` by
  default), `session_cookie` (no ``Max-Age`` for a browser-bound session, otherwise the session's
  maximum length), `clearing_cookie`, `parse_cookies`, `cookie_header_without` (what the
  middleware leaves of a ``Cookie`` header for the app).
* **Client IP**: `ClientIpResolver` takes the socket peer, and honours ``X-Forwarded-For`` or
  ``Forwarded`` (RFC 7239) only when the peer is a configured trusted proxy, taking the right-most
  hop that is not a trusted proxy. Headers from any other peer are ignored, so neither the IP lock
  nor login IP ranges can be bypassed with a spoofed header.
* **Per-route requirements**: `Requirement`, `RouteRequirements` (path patterns handed to the
  middleware) and the `requires` decorator (re-validates inside a Starlette endpoint or a Flask
  view with the stricter requirement). ``Requirement(scopes=...)`` makes a route an OAuth 2.0
  resource: only an access token from the org's token endpoint, presented as ``Authorization:
  Bearer``, with every listed scope, passes (`Org.authorize_access_token`).
* **Refusals**: `refusal_response` maps a missing token or a `SessionError` to one answer: JSON
  401 ``{"error": "<code>"}`` with ``WWW-Authenticate: Bearer`` for API requests, a 303 redirect
  to the login (or step-up) page for browsers, and a clearing cookie whenever the refusal means
  the session is over. `access_token_refusal` answers a refused access token on a scoped route
  per RFC 6750 section 3: 401 ``invalid_token`` or 403 ``insufficient_scope``.
* **Browser close**: `BEACON_JS`, the snippet that posts to the beacon path on ``pagehide``, and
  `handle_beacon`, which ends a browser-bound session.
* **OAuth 2.0 token endpoint**: `handle_token_request`, the client-credentials grant (RFC 6749
  section 4.4) with RFC 6749 section 5.2 errors, backed by the org.

Tokens never appear in a response other than the one that issues them, in a ``repr``, or in an
exception message.
"""

from __future__ import annotations

import base64
import binascii
import contextvars
import dataclasses
import functools
import inspect
import ipaddress
import json
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Generic, Literal, Protocol, TypeVar, cast

from sessionward import _native, jobs
from sessionward._native import (
    AccessGrant,
    Issued,
    LoginMethod,
    OAuthError,
    SecurityLevel,
    Session,
    SessionError,
    StepUpRequired,
)
from sessionward._tokens import redact

if TYPE_CHECKING:
    from sessionward._native import Org

__all__ = [
    "BEACON_JS",
    "DEFAULT_BEACON_PATH",
    "DEFAULT_COOKIE_NAME",
    "MAX_TOKEN_REQUEST",
    "ClientIpResolver",
    "CookieSettings",
    "Gate",
    "GateMiddleware",
    "GrantLike",
    "IPAddress",
    "IPNetwork",
    "OAuthOrg",
    "PathSet",
    "Requirement",
    "RequestAuth",
    "RouteRequirements",
    "WebResponse",
    "access_token_refusal",
    "beacon_script",
    "bearer_token",
    "clearing_cookie",
    "cookie_header_without",
    "current_request",
    "ends_session",
    "handle_beacon",
    "handle_token_request",
    "is_bearer_authorization",
    "json_response",
    "oauth_error",
    "parse_cookies",
    "redirect_response",
    "refusal_response",
    "requires",
    "safe_next",
    "session_cookie",
    "session_summary",
    "status_line",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_COOKIE_NAME: Final = "__Host-sessionward"
"""The session cookie's default name. The ``__Host-`` prefix makes browsers insist on ``Secure``,
``Path=/`` and no ``Domain``, so a sibling subdomain cannot plant or shadow the cookie."""

DEFAULT_BEACON_PATH: Final = "/sessionward/beacon"
"""Where the middleware answers the browser-close beacon."""

BEACON_JS: Final = """<script>
(function () {
  // sessionward: end a browser-bound session when the user leaves the site.
  // In-site navigation (same-origin links and forms) does not count as leaving.
  var leavingInternally = false;
  document.addEventListener("click", function (e) {
    var a = e.target && e.target.closest ? e.target.closest("a[href]") : null;
    if (a && a.origin === location.origin) { leavingInternally = true; }
  }, true);
  document.addEventListener("submit", function () { leavingInternally = true; }, true);
  addEventListener("pageshow", function () { leavingInternally = false; });
  addEventListener("pagehide", function (e) {
    if (!e.persisted && !leavingInternally) { navigator.sendBeacon("%(path)s"); }
  });
})();
</script>""".replace("%(path)s", DEFAULT_BEACON_PATH)
"""An HTML ``<script>`` for every page of a browser-bound app: on ``pagehide`` (tab or window
closed, or navigation away from the site) it calls ``navigator.sendBeacon`` on the beacon path,
which ends the session if it is browser-bound. Best effort only: the cookie without ``Max-Age``
is what really ends the session with the browser; a reload or a typed URL also counts as
leaving. Use `beacon_script` for another path."""

# Reason codes whose refusal means the session can never validate again from this client: the
# middleware sends a clearing cookie with them.
_ENDING_CODES: Final = frozenset({"malformed", "unknown", "ip_mismatch"})


def beacon_script(path: str = DEFAULT_BEACON_PATH) -> str:
    """`BEACON_JS` posting to `path` instead of the default beacon path."""
    if not path.startswith("/") or any(c in path for c in "\"'<>\\\n\r"):
        raise ValueError("beacon path must be a plain absolute path")
    return BEACON_JS.replace(f'"{DEFAULT_BEACON_PATH}"', f'"{path}"')


# ----------------------------------------------------------------------------- responses


@dataclasses.dataclass(frozen=True, slots=True)
class WebResponse:
    """A complete HTTP response, independent of ASGI and WSGI.

    `headers` are ``(name, value)`` pairs in order (``Set-Cookie`` may repeat).
    """

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or `None`."""
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None

    def with_headers(self, *extra: tuple[str, str]) -> WebResponse:
        """A copy with `extra` headers appended."""
        return dataclasses.replace(self, headers=self.headers + tuple(extra))

    def __repr__(self) -> str:
        # The body of a token response carries a token: never shown.
        return f"WebResponse(status={self.status}, headers=<{len(self.headers)}>, body=<{len(self.body)} bytes>)"


_REASONS: Final = {
    200: "OK",
    204: "No Content",
    303: "See Other",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
}


def status_line(status: int) -> str:
    """``"303 See Other"``, for WSGI's ``start_response``."""
    return f"{status} {_REASONS.get(status, 'Unknown')}"


def json_response(
    status: int, payload: Mapping[str, object], *headers: tuple[str, str]
) -> WebResponse:
    """A JSON response that caches nowhere (``Cache-Control: no-store``)."""
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return WebResponse(
        status,
        (
            ("Content-Type", "application/json"),
            ("Cache-Control", "no-store"),
            *headers,
        ),
        body,
    )


def redirect_response(location: str, *headers: tuple[str, str]) -> WebResponse:
    """A ``303 See Other`` to `location` (a GET follows, whatever the request's method)."""
    return WebResponse(
        303,
        (("Location", location), ("Cache-Control", "no-store"), *headers),
        b"",
    )


def safe_next(value: str | None, default: str = "/") -> str:
    """`value` if it is a local path (``/x``, not ``//host`` or ``/\\host``), else `default`.

    Use it on a ``next`` parameter before redirecting to it, so that the login form is not an
    open redirect.
    """
    if (
        not value
        or not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)
    ):
        return default
    return value


def _with_next(url: str, next_path: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}next={urllib.parse.quote(next_path, safe='/')}"


# ----------------------------------------------------------------------------- cookies


_SAME_SITE = ("Lax", "Strict", "None")
_COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")


@dataclasses.dataclass(frozen=True, slots=True)
class CookieSettings:
    """How the session cookie is named and scoped. Validated on construction.

    The defaults are the strict ones: name ``__Host-sessionward``, ``Secure``, ``HttpOnly``,
    ``SameSite=Lax``, ``Path=/``, no ``Domain``. A ``__Host-`` name requires ``Secure``,
    ``Path=/`` and no domain (browsers drop the cookie otherwise), and ``SameSite=None``
    requires ``Secure``. For plain-HTTP development use `CookieSettings.insecure_for_development`.
    """

    name: str = DEFAULT_COOKIE_NAME
    secure: bool = True
    http_only: bool = True
    same_site: Literal["Lax", "Strict", "None"] = "Lax"
    path: str = "/"
    domain: str | None = None

    def __post_init__(self) -> None:
        if not _COOKIE_NAME.match(self.name):
            raise ValueError(f"cookie name {self.name!r} is not an RFC 6265 token")
        if self.same_site not in _SAME_SITE:
            raise ValueError(f"same_site must be one of {_SAME_SITE}, not {self.same_site!r}")
        if not self.path.startswith("/") or any(c in self.path for c in ";,\r\n "):
            raise ValueError(f"cookie path {self.path!r} must be an absolute path")
        if self.domain is not None and not re.fullmatch(r"[A-Za-z0-9.-]+", self.domain):
            raise ValueError(f"cookie domain {self.domain!r} is not a host name")
        if self.name.startswith("__Host-") and (
            not self.secure or self.path != "/" or self.domain is not None
        ):
            raise ValueError("a __Host- cookie needs secure=True, path='/' and no domain")
        if self.name.startswith("__Secure-") and not self.secure:
            raise ValueError("a __Secure- cookie needs secure=True")
        if self.same_site == "None" and not self.secure:
            raise ValueError("same_site='None' needs secure=True")

    @classmethod
    def insecure_for_development(cls, name: str = "sessionward") -> CookieSettings:
        """Settings for plain-HTTP development and tests: no ``Secure`` flag (so an HTTP client
        sends the cookie back) and no ``__Host-`` prefix; still ``HttpOnly; SameSite=Lax``.
        Never use them in production."""
        return cls(name=name, secure=False)

    def _attributes(self) -> list[str]:
        parts = [f"Path={self.path}"]
        if self.domain is not None:
            parts.append(f"Domain={self.domain}")
        if self.secure:
            parts.append("Secure")
        if self.http_only:
            parts.append("HttpOnly")
        parts.append(f"SameSite={self.same_site}")
        return parts


def _max_age(session: Session) -> int:
    return max(0, int((session.absolute_deadline - session.created).total_seconds()))


def session_cookie(
    token: str | Issued, session: Session | None = None, settings: CookieSettings | None = None
) -> str:
    """The ``Set-Cookie`` value for a newly issued session.

    Pass the `Issued` login outcome (or the token and its `Session`). A browser-bound session
    (the org forces re-login on browser close) gets a session cookie: no ``Max-Age`` and no
    ``Expires``, so the browser forgets it when it closes. Any other session gets
    ``Max-Age`` = its maximum length (absolute deadline minus creation).
    """
    if isinstance(token, Issued):
        session = token.session if session is None else session
        token = token.token
    if session is None:
        raise TypeError("session_cookie needs the session (or pass the Issued outcome)")
    if not _native.is_well_formed(token):
        raise ValueError("session_cookie needs a sessionward token")
    settings = settings or CookieSettings()
    parts = [f"{settings.name}={token}"]
    if not session.browser_bound:
        parts.append(f"Max-Age={_max_age(session)}")
    parts.extend(settings._attributes())
    return "; ".join(parts)


def clearing_cookie(settings: CookieSettings | None = None) -> str:
    """The ``Set-Cookie`` value that removes the session cookie (``Max-Age=0`` and an
    ``Expires`` in the past, same name, path and domain)."""
    settings = settings or CookieSettings()
    parts = [f"{settings.name}=", "Max-Age=0", "Expires=Thu, 01 Jan 1970 00:00:00 GMT"]
    parts.extend(settings._attributes())
    return "; ".join(parts)


def parse_cookies(headers: Iterable[str]) -> dict[str, str]:
    """Name -> value of the cookies in ``Cookie`` header values. The first cookie of a name wins
    (browsers send the most specific path first); pairs without ``=`` are skipped; surrounding
    double quotes are removed."""
    cookies: dict[str, str] = {}
    for header in headers:
        for pair in header.split(";"):
            name, sep, value = pair.partition("=")
            if not sep:
                continue
            name = name.strip()
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            if name and name not in cookies:
                cookies[name] = value
    return cookies


def cookie_header_without(header: str, name: str) -> str:
    """A ``Cookie`` header value without the cookies named `name`, the others kept as sent
    (``""`` when none is left). A cookie after a ``,`` counts too: a server that joins two
    ``Cookie`` headers with ``", "`` puts one there."""
    kept: list[str] = []
    for piece in header.split(";"):
        parts = [part for part in piece.split(",") if part.partition("=")[0].strip() != name]
        text = ",".join(parts).strip()
        if text:
            kept.append(text)
    return "; ".join(kept)


def is_bearer_authorization(header: str) -> bool:
    """Whether an ``Authorization`` value uses the Bearer scheme (compared case-insensitively):
    its credentials are a session token or an access token."""
    return header.strip().partition(" ")[0].lower() == "bearer"


def bearer_token(headers: Iterable[str]) -> str | None:
    """The credentials of the first ``Authorization: Bearer <token>`` value (scheme compared
    case-insensitively, RFC 6750 section 2.1), or `None`."""
    for header in headers:
        scheme, _, credentials = header.strip().partition(" ")
        if scheme.lower() == "bearer":
            credentials = credentials.strip()
            return credentials or None
    return None


# ----------------------------------------------------------------------------- client IP


def _parse_ip(text: str) -> IPAddress | None:
    text = text.strip()
    if not text:
        return None
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _parse_node(text: str) -> IPAddress | None:
    """An address from an X-Forwarded-For hop or a Forwarded ``for=`` value: ``1.2.3.4``,
    ``1.2.3.4:80``, ``2001:db8::1``, ``[2001:db8::1]`` or ``[2001:db8::1]:80``; `None` for
    anything else (``unknown``, obfuscated ``_names``, garbage)."""
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        rest = text[end + 1 :]
        if rest and not re.fullmatch(r":\d{1,5}", rest):
            return None
        ip = _parse_ip(text[1:end])
        return ip if isinstance(ip, ipaddress.IPv6Address) else None
    if text.count(":") == 1:  # IPv4 with a port
        host, _, port = text.partition(":")
        if not re.fullmatch(r"\d{1,5}", port):
            return None
        ip = _parse_ip(host)
        return ip if isinstance(ip, ipaddress.IPv4Address) else None
    return _parse_ip(text)


def _split_list(value: str) -> list[str]:
    """Splits an HTTP list on commas outside double-quoted strings."""
    items: list[str] = []
    current: list[str] = []
    quoted = False
    escaped = False
    for char in value:
        if escaped:
            current.append(char)
            escaped = False
        elif quoted and char == "\\":
            current.append(char)
            escaped = True
        elif char == '"':
            current.append(char)
            quoted = not quoted
        elif char == "," and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return items


def _forwarded_for(element: str) -> str | None:
    """The ``for=`` value of one RFC 7239 forwarded-element (unquoted), or `None`."""
    found: str | None = None
    for pair in element.split(";"):
        name, sep, value = pair.partition("=")
        if not sep:
            if pair.strip():
                return None
            continue
        if name.strip().lower() != "for":
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        if found is not None:  # for= twice in one element
            return None
        found = value
    return found


_MAX_HOPS: Final = 64


class ClientIpResolver:
    """Resolves a request's client address from the socket peer and, only behind trusted
    proxies, a forwarding header.

    `trusted_proxies` are CIDR ranges or addresses (``"10.0.0.0/8"``, ``"::1"``); the special
    entry ``"unix"`` trusts a peer without an IP address (a proxy on a Unix socket).
    `header` picks the one header the proxies maintain: ``"x-forwarded-for"`` (default) or
    ``"forwarded"`` (RFC 7239). Only one is read, because a proxy passes the other one through
    from the client unchanged.

    The algorithm: if the peer is not a trusted proxy, the peer is the client, whatever the
    headers say. Otherwise the hops of the header (all occurrences, in order) are walked from the
    right: the first hop that is not a trusted proxy is the client; a malformed hop (garbage,
    ``unknown``, an obfuscated name) stops the walk at the last good address; if every hop is a
    trusted proxy, the left-most is the client. No header, or a header that cannot be parsed at
    all, leaves the peer.
    """

    __slots__ = ("_header", "_networks", "_trust_unix")

    def __init__(
        self,
        trusted_proxies: Iterable[str | IPAddress | IPNetwork] = (),
        *,
        header: Literal["x-forwarded-for", "forwarded"] = "x-forwarded-for",
    ) -> None:
        networks: list[IPNetwork] = []
        trust_unix = False
        for entry in trusted_proxies:
            if isinstance(entry, str) and entry.strip().lower() == "unix":
                trust_unix = True
                continue
            try:
                network = ipaddress.ip_network(entry, strict=False)
            except ValueError as exc:
                raise ValueError(f"trusted_proxies: {entry!r} is not an address or CIDR range") from exc
            networks.append(network)
        if header not in ("x-forwarded-for", "forwarded"):
            raise ValueError(f"header must be 'x-forwarded-for' or 'forwarded', not {header!r}")
        self._networks = tuple(networks)
        self._trust_unix = trust_unix
        self._header = header

    @property
    def header(self) -> str:
        """The forwarding header read from trusted proxies (lower case)."""
        return self._header

    def is_trusted(self, ip: IPAddress) -> bool:
        """Whether `ip` is one of the trusted proxies."""
        return any(ip.version == n.version and ip in n for n in self._networks)

    def _hops(self, values: Sequence[str]) -> list[str] | None:
        raw = _split_list(",".join(values))
        if self._header == "x-forwarded-for":
            return [hop.strip() for hop in raw]
        hops: list[str] = []
        for element in raw:
            if not element.strip():
                hops.append("")
                continue
            value = _forwarded_for(element)
            hops.append("" if value is None else value)
        return hops

    def resolve(self, peer: str | None, headers: Mapping[str, Sequence[str]]) -> IPAddress | None:
        """The client address; `None` only when there is no usable peer address and the peer is
        not a trusted Unix socket.

        `peer` is the socket peer's host (``scope["client"][0]``, ``REMOTE_ADDR``) or `None`;
        `headers` maps lower-case header names to all their values in order.
        """
        peer_ip = _parse_ip(peer) if peer is not None else None
        if peer_ip is None:
            if not self._trust_unix or (peer not in (None, "", "unix", "localhost")):
                return None
            trusted_peer = True
        else:
            trusted_peer = self.is_trusted(peer_ip)
        if not trusted_peer:
            return peer_ip
        values = headers.get(self._header)
        if not values:
            return peer_ip
        hops = self._hops(values)
        if hops is None:
            return peer_ip
        candidate = peer_ip
        for hop in reversed(hops[-_MAX_HOPS:]):
            ip = _parse_node(hop)
            if ip is None:
                break
            candidate = ip
            if not self.is_trusted(ip):
                break
        return candidate


# ----------------------------------------------------------------------------- requirements


@dataclasses.dataclass(frozen=True, slots=True)
class Requirement:
    """What a route needs beyond a valid session: an operation name (checked against the org's
    high-assurance operations at each request) or a minimum security level, not both; or, for
    an API served to OAuth clients, `scopes`.

    With `scopes` (a space-separated ``str`` or scope names; stored sorted, without repeats)
    the route takes only an access token granted by the org's client-credentials grant,
    presented in the ``Authorization: Bearer`` header (RFC 6750 section 2.1; a session cookie
    is never an access token), carrying every listed scope (``scopes=()``: any access token).
    It is checked with `Org.authorize_access_token`, and refused per RFC 6750 section 3 (see
    `access_token_refusal`). Scopes are not combined with `operation` or `level`: access
    tokens are checked by their scopes alone.
    """

    operation: str | None = None
    level: SecurityLevel | None = None
    scopes: Sequence[str] | None = None

    def __post_init__(self) -> None:
        if self.operation is not None and self.level is not None:
            raise ValueError("a requirement names an operation or a level, not both")
        if self.operation is not None and not self.operation:
            raise ValueError("operation must be a non-empty name")
        if self.scopes is not None:
            if self.operation is not None or self.level is not None:
                raise ValueError(
                    "a requirement names scopes, or an operation or a level: access tokens are "
                    "checked by their scopes alone"
                )
            # Frozen: set once here, so that equal requirements compare (and hash) equal.
            object.__setattr__(self, "scopes", _scope_names(self.scopes))


_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+\Z")


def _scope_names(scopes: object) -> tuple[str, ...]:
    """`Requirement.scopes` as a sorted tuple of RFC 6749 scope-tokens. Refused items are
    named by position, never echoed: the text is the caller's and could hold anything."""
    items: list[object]
    if isinstance(scopes, str):
        items = [item for item in scopes.split(" ") if item]
    elif isinstance(scopes, Iterable):
        items = list(scopes)
    else:
        raise TypeError(f"scopes: expected a str or an iterable of str, got {type(scopes).__name__}")
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise TypeError(f"scopes[{index}]: expected str, got {type(item).__name__}")
        # Printable ASCII without space, quote or backslash: also what lets the scopes be
        # quoted in a WWW-Authenticate header as they are.
        if not _SCOPE_TOKEN.match(item):
            raise ValueError(
                f"scopes[{index}] is not an RFC 6749 scope-token (1 or more printable ASCII "
                "characters, no space, quote or backslash)"
            )
    return tuple(sorted(set(cast(list[str], items))))


_DOT_SEGMENT = re.compile(r"(?:^|/)\.{1,2}(?:/|$)")


class _PathPattern:
    """``/exact`` or ``/prefix/*`` (matches ``/prefix`` and everything under it)."""

    __slots__ = ("exact", "prefix")

    def __init__(self, pattern: str) -> None:
        if not pattern.startswith("/"):
            raise ValueError(f"path pattern {pattern!r} must start with '/'")
        if pattern.endswith("/*"):
            self.prefix: str | None = pattern[:-2]
            self.exact = pattern[:-2] or "/"
        elif "*" in pattern:
            raise ValueError(f"path pattern {pattern!r}: '*' is only allowed as a final '/*'")
        else:
            self.prefix = None
            self.exact = _normalise(pattern)

    def specificity(self) -> tuple[int, int]:
        return (1 if self.prefix is None else 0, len(self.exact))

    def matches(self, path: str) -> bool:
        if _DOT_SEGMENT.search(path):
            return False  # never let /public/../admin match /public/*
        path = _normalise(path)
        if self.prefix is None:
            return path == self.exact
        return path == self.exact or path.startswith(self.prefix + "/")


def _normalise(path: str) -> str:
    return path[:-1] if len(path) > 1 and path.endswith("/") else path


class PathSet:
    """A set of path patterns (``/login``, ``/static/*``): the middleware's exempt paths."""

    __slots__ = ("_patterns",)

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self._patterns = tuple(_PathPattern(p) for p in patterns)

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and any(p.matches(path) for p in self._patterns)


class RouteRequirements:
    """Path patterns (``/setup``, ``/admin/*``) and methods mapped to a `Requirement`, checked by
    the middleware before the app runs. The most specific matching pattern wins (an exact path
    before any prefix, a longer prefix before a shorter one); among equals, the first added. A
    requirement for ``GET`` also covers ``HEAD``, which frameworks serve with the ``GET`` view
    (see `lookup`).

    ::

        routes = RouteRequirements({"/setup": Requirement(operation="setup")})
        routes.add("/admin/*", Requirement(level=SecurityLevel.HIGH_ASSURANCE), methods=["POST"])
    """

    __slots__ = ("_routes",)

    def __init__(self, routes: Mapping[str, Requirement] | None = None) -> None:
        self._routes: list[tuple[_PathPattern, frozenset[str] | None, Requirement]] = []
        for pattern, requirement in (routes or {}).items():
            self.add(pattern, requirement)

    def add(
        self, pattern: str, requirement: Requirement, *, methods: Iterable[str] | None = None
    ) -> None:
        """Requires `requirement` on `pattern` (for the given HTTP methods, or all)."""
        if not isinstance(requirement, Requirement):
            raise TypeError("requirement must be a Requirement")
        allowed = None if methods is None else frozenset(m.upper() for m in methods)
        self._routes.append((_PathPattern(pattern), allowed, requirement))

    def lookup(self, method: str, path: str) -> Requirement | None:
        """The requirement of the most specific pattern matching `path` and `method`.

        ``HEAD`` counts as ``GET``: Starlette, Flask and most frameworks answer ``HEAD`` with
        the ``GET`` handler, so a requirement added for ``GET`` applies to ``HEAD`` too. A
        requirement that names ``HEAD`` itself wins over one that only names ``GET`` on an
        equally specific pattern; a more specific pattern still wins over a less specific one.
        """
        method = method.upper()
        best: tuple[tuple[int, int, int], Requirement] | None = None
        for pattern, methods, requirement in self._routes:
            # Without this, HEAD on a GET-only requirement matched nothing and the GET view
            # ran with only a valid session.
            named = methods is not None and method in methods
            if not (methods is None or named or (method == "HEAD" and "GET" in methods)):
                continue
            if pattern.matches(path):
                # Only an entry naming HEAD outranks the others: an all-methods entry ranks as
                # it does for GET, so HEAD resolves exactly like GET unless HEAD is named.
                rank = (*pattern.specificity(), 1 if named and method == "HEAD" else 0)
                if best is None or rank > best[0]:
                    best = (rank, requirement)
        return None if best is None else best[1]


# ----------------------------------------------------------------------------- refusals


def ends_session(code: str) -> bool:
    """Whether a refusal with this reason code means the cookie is useless from now on (the
    session ended or expired, the token is unknown or malformed, or it is locked to another IP):
    the middleware then clears the cookie."""
    return code in _ENDING_CODES or code.startswith(("ended_", "expired_"))


def refusal_response(
    error: SessionError | None,
    *,
    api: bool,
    next_path: str,
    login_url: str,
    step_up_url: str | None,
    cookie: CookieSettings,
    cookie_sent: bool,
) -> WebResponse:
    """The one answer to a refused request.

    `error` is the `SessionError` from the org, or `None` when the request carried no token.
    API requests get ``401`` with ``{"error": "<code>"}`` (``missing_token`` without a token)
    and ``WWW-Authenticate: Bearer error="invalid_token"`` (RFC 6750), except a step-up refusal,
    which says ``error="insufficient_user_authentication"`` (RFC 9470) and adds
    ``required_level``. Browsers get ``303`` to `login_url` (or to `step_up_url` for a step-up
    refusal) with ``?next=<path>``. If `cookie_sent` and the reason ends the session, a
    clearing cookie is added.
    """
    headers: list[tuple[str, str]] = []
    code = "missing_token" if error is None else error.code
    if error is not None and cookie_sent and ends_session(code):
        headers.append(("Set-Cookie", clearing_cookie(cookie)))
    step_up = isinstance(error, StepUpRequired)
    if api:
        payload: dict[str, object] = {"error": code}
        if error is None:
            challenge = 'Bearer realm="sessionward"'
        elif step_up:
            assert isinstance(error, StepUpRequired)
            payload["required_level"] = error.required.name
            challenge = (
                'Bearer realm="sessionward", error="insufficient_user_authentication", '
                f'error_description="step_up_required", acr_values="{error.required.name}"'
            )
        else:
            challenge = f'Bearer realm="sessionward", error="invalid_token", error_description="{code}"'
        headers.append(("WWW-Authenticate", challenge))
        return json_response(401, payload, *headers)
    target = step_up_url if (step_up and step_up_url) else login_url
    return redirect_response(_with_next(target, next_path), *headers)


def access_token_refusal(
    error: SessionError | OAuthError | None, *, scopes: Sequence[str] = ()
) -> WebResponse:
    """The answer to a refused access token on a route that requires OAuth `scopes` (RFC 6750
    section 3), always API style, never touching a cookie. ``WWW-Authenticate: Bearer
    realm="sessionward"`` carries ``scope="<scopes>"`` (the route's, space-separated) when
    there are any, and:

    - no token (`error` is `None`): no error code (section 3.1), 401 ``{"error":
      "missing_token"}``;
    - a `SessionError` (the token's session does not validate): ``error="invalid_token"`` and
      ``error_description="<reason code>"``, 401 ``{"error": "invalid_token",
      "error_description": "<reason code>"}`` (``ended_admin``, ``expired_idle``...);
    - `OAuthError` ``invalid_token`` (a valid session, but not an access token):
      the same with ``not_an_access_token``;
    - `OAuthError` ``insufficient_scope``: ``error="insufficient_scope"``, 403 ``{"error":
      "insufficient_scope", "scope": "<scopes>"}`` (``scope`` only when there are scopes).
    """
    challenge = 'Bearer realm="sessionward"'
    scope = " ".join(scopes)
    if error is None:
        payload: dict[str, object] = {"error": "missing_token"}
        status = 401
    elif isinstance(error, OAuthError) and error.code == "insufficient_scope":
        payload = {"error": "insufficient_scope"}
        if scope:
            payload["scope"] = scope
        challenge += ', error="insufficient_scope"'
        status = 403
    else:
        reason = error.code if isinstance(error, SessionError) else "not_an_access_token"
        payload = {"error": "invalid_token", "error_description": reason}
        challenge += f', error="invalid_token", error_description="{reason}"'
        status = 401
    if scope:
        # Safe to quote as is: `Requirement` admits only scope-tokens (no quote, backslash,
        # space or control character).
        challenge += f', scope="{scope}"'
    return json_response(status, payload, ("WWW-Authenticate", challenge))


def _error_response(status: int, code: str) -> WebResponse:
    return json_response(status, {"error": code})


# ----------------------------------------------------------------------------- request auth


class RequestAuth:
    """What the middleware knows about the current request, attached to it (ASGI
    ``scope["sessionward.auth"]``, WSGI ``environ["sessionward.auth"]``) and returned by
    `current_request` while the request runs.

    `session` is the validated `Session` (`None` on exempt paths, where the token, if any, is
    not checked). On a route that requires OAuth scopes, `access_grant` is the `AccessGrant`
    (the client and its scopes), else `None`. The token itself is not exposed: the methods that
    need it (`logout`, `step_up`, `revalidate`) use it for you. Its ``repr`` never shows it.
    """

    __slots__ = ("_token", "access_grant", "api", "client_ip", "cookie", "org", "session", "_refuse")

    def __init__(
        self,
        *,
        org: Org,
        token: str | None,
        client_ip: IPAddress,
        api: bool,
        cookie: CookieSettings,
        session: Session | None,
        refuse: Callable[[SessionError | OAuthError | None], WebResponse],
        access_grant: AccessGrant | None = None,
    ) -> None:
        self.org = org
        self._token = token
        self.client_ip = client_ip
        self.api = api
        self.cookie = cookie
        self.session = session
        self.access_grant = access_grant
        self._refuse = refuse

    def __repr__(self) -> str:
        handle = None if self.session is None else self.session.handle
        return (
            f"RequestAuth(client_ip={str(self.client_ip)!r}, api={self.api}, "
            f"session={handle!r}, token={'<present>' if self._token else None})"
        )

    @property
    def has_token(self) -> bool:
        """Whether the request carried a session token (cookie or bearer)."""
        return self._token is not None

    def revalidate(self, requirement: Requirement) -> Session:
        """Validates the token again with `requirement` (for a view that needs more than its
        route's requirement); updates `session`. Raises the `SessionError` on refusal. With
        `Requirement.scopes`, the token is authorized as an access token instead (updating
        `access_grant` too), which may also raise `OAuthError`."""
        if self._token is None:
            raise LookupError("the request carries no session token")
        if requirement.scopes is not None:
            # Validating would ignore the scopes: a scoped requirement is an access-token check.
            grant = self.org.authorize_access_token(
                self._token, self.client_ip, requirement.scopes
            )
            self.access_grant = grant
            self.session = grant.session
            return grant.session
        session = self.org.validate(
            self._token, self.client_ip, requirement.operation, requirement.level
        )
        self.session = session
        return session

    def refusal(self, error: SessionError | OAuthError | None) -> WebResponse:
        """The middleware's answer to `error` for this request (see `refusal_response`; on a
        scoped route, or for an `OAuthError`, `access_token_refusal`)."""
        return self._refuse(error)

    def step_up(self, method: LoginMethod) -> Session:
        """`Org.step_up` for this request's token and client IP, after the app verified the
        user again (e.g. an MFA code); updates `session`."""
        if self._token is None:
            raise LookupError("the request carries no session token")
        session = self.org.step_up(self._token, self.client_ip, method)
        self.session = session
        return session

    def logout(self) -> str:
        """Ends this request's session (`Org.logout`; a session already gone is fine) and
        returns the clearing ``Set-Cookie`` value to send."""
        if self._token is not None:
            try:
                self.org.logout(self._token)
            except SessionError:
                pass
        return clearing_cookie(self.cookie)

    def session_cookie(self, issued: Issued) -> str:
        """`session_cookie` for a session this request issued, with the middleware's settings."""
        return session_cookie(issued, settings=self.cookie)

    def clearing_cookie(self) -> str:
        """`clearing_cookie` with the middleware's settings."""
        return clearing_cookie(self.cookie)


_CURRENT: contextvars.ContextVar[RequestAuth | None] = contextvars.ContextVar(
    "sessionward.web.current_request", default=None
)


def current_request() -> RequestAuth | None:
    """The `RequestAuth` of the request being handled in this context, or `None`."""
    return _CURRENT.get()


def _set_current(auth: RequestAuth) -> contextvars.Token[RequestAuth | None]:
    return _CURRENT.set(auth)


def _reset_current(token: contextvars.Token[RequestAuth | None]) -> None:
    _CURRENT.reset(token)


F = TypeVar("F", bound=Callable[..., Any])


def requires(*, operation: str | None = None, level: SecurityLevel | None = None) -> Callable[[F], F]:
    """Decorator for a Starlette endpoint or a Flask view that needs more than the route's
    requirement: the session is validated again with `operation` or `level` before the view
    runs, and a refusal is answered exactly as the middleware would (JSON 401 or redirect to the
    step-up page). Works on sync and async functions; the requirement is also stored as
    ``fn.__sessionward_requirement__``.

    The middleware must cover the route: calling a decorated view without it (or on an exempt
    path, without a token) is refused as ``missing_token``; with no middleware at all it raises
    `RuntimeError` (a configuration error must not open the route).
    """
    requirement = Requirement(operation=operation, level=level)

    def check() -> WebResponse | None:
        auth = _CURRENT.get()
        if auth is None:
            raise RuntimeError(
                "sessionward.web.requires: no SessionMiddleware around this request"
            )
        if not auth.has_token:
            return auth.refusal(None)
        try:
            session = auth.revalidate(requirement)
        except SessionError as refused:
            return auth.refusal(refused)
        jobs.set_request_session(session)  # reset with the middleware's own token
        return None

    def decorate(fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                refused = check()
                if refused is not None:
                    return _as_framework_response(refused)
                return await cast(Callable[..., Awaitable[Any]], fn)(*args, **kwargs)

            wrapper: Callable[..., Any] = async_wrapper
        else:

            @functools.wraps(fn)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                refused = check()
                if refused is not None:
                    return _as_framework_response(refused)
                return fn(*args, **kwargs)

            wrapper = sync_wrapper
        wrapper.__sessionward_requirement__ = requirement  # type: ignore[attr-defined]
        return cast(F, wrapper)

    return decorate


def _as_framework_response(response: WebResponse) -> object:
    # An object both Starlette (an ASGI callable returned by an endpoint) and Flask (a WSGI
    # callable returned by a view) accept as a response, so this module imports neither.
    return _DualResponse(response)


class _DualResponse:
    """A `WebResponse` usable as an ASGI app (3 arguments) or a WSGI app (2 arguments)."""

    __slots__ = ("response",)

    def __init__(self, response: WebResponse) -> None:
        self.response = response

    def __call__(self, *args: Any) -> Any:
        if len(args) == 3:
            return self._asgi(*args)
        environ, start_response = args
        del environ
        start_response(
            status_line(self.response.status),
            list(self.response.headers) + [("Content-Length", str(len(self.response.body)))],
        )
        return [self.response.body]

    async def _asgi(self, scope: Any, receive: Any, send: Any) -> None:
        del scope, receive
        await send(
            {
                "type": "http.response.start",
                "status": self.response.status,
                "headers": _asgi_headers(self.response),
            }
        )
        await send({"type": "http.response.body", "body": self.response.body})


def _asgi_headers(response: WebResponse) -> list[tuple[bytes, bytes]]:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    headers.append((b"content-length", str(len(response.body)).encode()))
    return headers


# ----------------------------------------------------------------------------- beacon


def handle_beacon(org: Org, token: str | None, cookie: CookieSettings) -> WebResponse:
    """The browser-close beacon: ends the session of `token` if it is browser-bound
    (`Org.browser_closed`). Always ``204`` (a beacon's answer is never read); the clearing
    cookie is sent when the session ended or was already unusable."""
    if token is None:
        return WebResponse(204, (("Cache-Control", "no-store"),))
    try:
        ended = org.browser_closed(token)
    except SessionError:
        ended = True
    headers: list[tuple[str, str]] = [("Cache-Control", "no-store")]
    if ended:
        headers.append(("Set-Cookie", clearing_cookie(cookie)))
    return WebResponse(204, tuple(headers))


# ----------------------------------------------------------------------------- OAuth 2.0


class GrantLike(Protocol):
    """What `grant_client_credentials` returns (``sessionward.Grant``)."""

    @property
    def access_token(self) -> str: ...
    @property
    def expires_in(self) -> int: ...
    @property
    def scopes(self) -> list[str]: ...


class OAuthOrg(Protocol):
    """The part of `Org` the token endpoint uses."""

    def grant_client_credentials(
        self, client_id: str, client_secret: str, scope: str | None, ip: str
    ) -> GrantLike: ...


_SCOPE = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+(?: [\x21\x23-\x5B\x5D-\x7E]+)*\Z")
_FORM = "application/x-www-form-urlencoded"
MAX_TOKEN_REQUEST: Final = 16 * 1024
"""Largest token-request body read (bytes); a larger one is answered ``413``."""

_OAUTH_STATUS: Final = {
    "invalid_request": 400,
    "invalid_client": 401,
    "invalid_grant": 400,
    "unauthorized_client": 400,
    "unsupported_grant_type": 400,
    "invalid_scope": 400,
    "server_error": 500,
}
_OAUTH_DESCRIPTION: Final = {
    "invalid_request": "the request is missing a parameter or is malformed",
    "invalid_client": "client authentication failed",
    "invalid_grant": "the grant is invalid",
    "unauthorized_client": "the client may not use this grant type",
    "unsupported_grant_type": "only grant_type=client_credentials is supported",
    "invalid_scope": "the requested scope is invalid or exceeds the client's scopes",
    "server_error": "the server could not grant a token",
}


def oauth_error(code: str, description: str | None = None) -> WebResponse:
    """An RFC 6749 section 5.2 error response: ``{"error", "error_description"}``, 400 (401
    with ``WWW-Authenticate: Basic`` for ``invalid_client``), ``Cache-Control: no-store``."""
    status = _OAUTH_STATUS.get(code, 400)
    payload = {"error": code, "error_description": description or _OAUTH_DESCRIPTION.get(code, code)}
    extra: list[tuple[str, str]] = [("Pragma", "no-cache")]
    if code == "invalid_client":
        extra.append(("WWW-Authenticate", 'Basic realm="sessionward", charset="UTF-8"'))
    return json_response(status, payload, *extra)


def _oauth_error_code(exc: BaseException) -> str | None:
    oauth_error_type = getattr(_native, "OAuthError", None)
    is_oauth = (isinstance(oauth_error_type, type) and isinstance(exc, oauth_error_type)) or (
        type(exc).__name__ == "OAuthError"
    )
    code = getattr(exc, "code", None)
    return code if is_oauth and isinstance(code, str) else None


def _basic_credentials(value: str) -> tuple[str, str] | None:
    scheme, _, encoded = value.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return None
    # RFC 6749 2.3.1: both are form-urlencoded before Basic encoding.
    return urllib.parse.unquote_plus(client_id), urllib.parse.unquote_plus(secret)


def handle_token_request(
    org: OAuthOrg,
    *,
    method: str,
    content_type: str | None,
    authorization: Sequence[str],
    body: bytes,
    client_ip: IPAddress,
) -> WebResponse:
    """An OAuth 2.0 token endpoint for the client-credentials grant (RFC 6749 section 4.4).

    The request is a ``POST`` of ``application/x-www-form-urlencoded`` with
    ``grant_type=client_credentials`` and an optional ``scope``; the client authenticates with
    HTTP Basic (`authorization` holds the ``Authorization`` values) or with ``client_id`` and
    ``client_secret`` in the body, not both. Success: ``200`` ``{"access_token",
    "token_type": "Bearer", "expires_in", "scope"}``; errors per section 5.2 (``invalid_request``,
    ``invalid_client`` (401), ``unsupported_grant_type``, ``invalid_scope``,
    ``unauthorized_client``). Every answer carries ``Cache-Control: no-store``.
    """
    if method.upper() != "POST":
        return oauth_error("invalid_request", "the token endpoint accepts POST only").with_headers(
            ("Allow", "POST")
        )
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != _FORM:
        return oauth_error("invalid_request", f"the request body must be {_FORM}")
    if len(body) > MAX_TOKEN_REQUEST:
        return oauth_error("invalid_request", "the request body is too large")
    try:
        pairs = urllib.parse.parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body), errors="strict"
        )
    except (UnicodeDecodeError, ValueError):
        return oauth_error("invalid_request", "the request body is not valid form data")
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            return oauth_error("invalid_request", f"parameter {name!r} is repeated")
        params[name] = value
    grant_type = params.get("grant_type")
    if not grant_type:
        return oauth_error("invalid_request", "grant_type is missing")
    if grant_type != "client_credentials":
        return oauth_error("unsupported_grant_type")

    header_credentials: tuple[str, str] | None = None
    basic_values = [v for v in authorization if v.strip().lower().startswith("basic ")]
    if len(basic_values) > 1:
        return oauth_error("invalid_request", "more than one Authorization header")
    if basic_values:
        header_credentials = _basic_credentials(basic_values[0])
        if header_credentials is None:
            return oauth_error("invalid_client", "malformed HTTP Basic credentials")
    body_id = params.get("client_id")
    body_secret = params.get("client_secret")
    if header_credentials is not None:
        if body_secret is not None:
            return oauth_error("invalid_request", "use one client authentication method, not two")
        if body_id is not None and body_id != header_credentials[0]:
            return oauth_error("invalid_request", "client_id differs from the authenticated client")
        client_id, client_secret = header_credentials
    elif body_id and body_secret is not None:
        client_id, client_secret = body_id, body_secret
    else:
        return oauth_error("invalid_client", "no client authentication")
    scope = params.get("scope")
    if scope is not None and not _SCOPE.match(scope):
        return oauth_error("invalid_scope", "scope must be space-separated scope tokens")
    try:
        grant = org.grant_client_credentials(client_id, client_secret, scope, str(client_ip))
    except Exception as exc:  # OAuthError is matched by its code, others propagate
        code = _oauth_error_code(exc)
        if code is None:
            raise
        return oauth_error(code)
    return json_response(
        200,
        {
            "access_token": grant.access_token,
            "token_type": "Bearer",
            "expires_in": int(grant.expires_in),
            "scope": " ".join(grant.scopes),
        },
        ("Pragma", "no-cache"),
    )


# ----------------------------------------------------------------------------- the core


@dataclasses.dataclass(frozen=True, slots=True, repr=False)
class _Request:
    """A request as both middlewares see it. Its ``repr`` names the headers but never shows
    their values, nor the query."""

    method: str
    path: str
    query: str
    peer: str | None
    headers: Mapping[str, Sequence[str]]

    def __repr__(self) -> str:
        # Error reporters that record the locals of a failing frame (Sentry, rich tracebacks)
        # call this: Cookie and Authorization hold the session token, and a query string can
        # carry one (or another secret) too. Names and sizes are enough to debug with.
        return redact(
            f"_Request(method={self.method!r}, path={self.path!r}, "
            f"query=<{len(self.query)} chars>, peer={self.peer!r}, "
            f"headers=<{', '.join(sorted(self.headers))}>)"
        )


class Gate:
    """The request check both middlewares run (ASGI and WSGI only translate): exempt paths,
    the beacon and token endpoints, client IP, token lookup, validation, refusals. Built by the
    middleware from its options; usable directly by other integrations."""

    def __init__(
        self,
        org: Org,
        *,
        cookie: CookieSettings | None = None,
        trusted_proxies: Iterable[str | IPAddress | IPNetwork] = (),
        forwarded_header: Literal["x-forwarded-for", "forwarded"] = "x-forwarded-for",
        exempt_paths: Iterable[str] = (),
        login_url: str = "/login",
        step_up_url: str | None = None,
        api_prefixes: Iterable[str] = ("/api/",),
        routes: RouteRequirements | Mapping[str, Requirement] | None = None,
        beacon_path: str | None = DEFAULT_BEACON_PATH,
        token_path: str | None = None,
    ) -> None:
        self.org = org
        self.cookie = cookie if cookie is not None else CookieSettings()
        self.ips = ClientIpResolver(trusted_proxies, header=forwarded_header)
        self.login_url = login_url
        self.step_up_url = step_up_url
        self.api_prefixes = tuple(api_prefixes)
        self.routes = routes if isinstance(routes, RouteRequirements) else RouteRequirements(routes)
        self.beacon_path = beacon_path
        self.token_path = token_path
        always_exempt = [p for p in (login_url.split("?", 1)[0], beacon_path, token_path) if p]
        self.exempt = PathSet([*exempt_paths, *always_exempt])
        if token_path is not None and not hasattr(org, "grant_client_credentials"):
            raise ValueError("token_path needs an Org with grant_client_credentials")

    def is_api(self, path: str, bearer: bool) -> bool:
        """API style (JSON 401) for bearer requests and paths under an API prefix."""
        return bearer or any(
            path == prefix.rstrip("/") or path.startswith(prefix) for prefix in self.api_prefixes
        )

    def token_of(self, request: _Request) -> tuple[str | None, bool, bool]:
        """(token, from the bearer header, cookie present)."""
        bearer = bearer_token(request.headers.get("authorization", ()))
        cookies = parse_cookies(request.headers.get("cookie", ()))
        cookie_value = cookies.get(self.cookie.name)
        if bearer is not None:
            return bearer, True, cookie_value is not None
        return (cookie_value or None), False, cookie_value is not None

    def check(self, request: _Request) -> tuple[RequestAuth | None, WebResponse | None]:
        """The `RequestAuth` to attach and run the app with, or the response to send instead.
        Endpoint paths (beacon, token) return ``(None, response)`` after reading no body: the
        caller reads it and calls `answer_endpoint`."""
        client_ip = self.ips.resolve(request.peer, request.headers)
        if client_ip is None:
            return None, _error_response(400, "client_address_unavailable")
        token, from_header, cookie_sent = self.token_of(request)
        exempt = request.path in self.exempt
        requirement = None if exempt else self.routes.lookup(request.method, request.path)
        scopes = None if requirement is None else requirement.scopes
        # A scoped route serves OAuth clients: always API style.
        api = scopes is not None or self.is_api(request.path, from_header)
        next_path = request.path + (f"?{request.query}" if request.query else "")

        def refuse(error: SessionError | OAuthError | None) -> WebResponse:
            if scopes is not None or isinstance(error, OAuthError):
                return access_token_refusal(error, scopes=scopes or ())
            return refusal_response(
                error,
                api=api,
                next_path=next_path,
                login_url=self.login_url,
                step_up_url=self.step_up_url,
                cookie=self.cookie,
                cookie_sent=cookie_sent and not from_header,
            )

        auth = RequestAuth(
            org=self.org,
            token=token,
            client_ip=client_ip,
            api=api,
            cookie=self.cookie,
            session=None,
            refuse=refuse,
        )
        if exempt:
            return auth, None
        if scopes is not None:
            if not from_header:
                # A cookie holds a browser session, never an access token (RFC 6750 2.1).
                return None, refuse(None)
            assert token is not None
            try:
                auth.access_grant = self.org.authorize_access_token(token, client_ip, scopes)
            except (SessionError, OAuthError) as refused:
                return None, refuse(refused)
            auth.session = auth.access_grant.session
            return auth, None
        if token is None:
            return None, refuse(None)
        requirement = requirement or Requirement()
        try:
            auth.session = self.org.validate(
                token, client_ip, requirement.operation, requirement.level
            )
        except SessionError as refused:
            return None, refuse(refused)
        return auth, None

    def endpoint(self, path: str) -> Literal["beacon", "token"] | None:
        """Which built-in endpoint `path` is, if any."""
        if self.beacon_path is not None and path == self.beacon_path:
            return "beacon"
        if self.token_path is not None and path == self.token_path:
            return "token"
        return None

    def answer_endpoint(
        self, kind: Literal["beacon", "token"], request: _Request, auth: RequestAuth, body: bytes
    ) -> WebResponse:
        """Answers the beacon or the token endpoint."""
        if kind == "beacon":
            if request.method.upper() != "POST":
                return WebResponse(405, (("Allow", "POST"),))
            return handle_beacon(self.org, auth._token, self.cookie)
        content_type = request.headers.get("content-type", (None,))[0]
        return handle_token_request(
            cast(OAuthOrg, self.org),
            method=request.method,
            content_type=content_type,
            authorization=request.headers.get("authorization", ()),
            body=body,
            client_ip=auth.client_ip,
        )


AppT = TypeVar("AppT")


class GateMiddleware(Generic[AppT]):
    """What the ASGI and WSGI middlewares share: the wrapped app and the `Gate` built from the
    options (documented on `sessionward.asgi.SessionMiddleware`). Subclasses only translate
    their protocol's request and response to and from the gate."""

    def __init__(
        self,
        app: AppT,
        org: Org,
        *,
        cookie: CookieSettings | None = None,
        trusted_proxies: Iterable[str | IPAddress | IPNetwork] = (),
        forwarded_header: Literal["x-forwarded-for", "forwarded"] = "x-forwarded-for",
        exempt_paths: Iterable[str] = (),
        login_url: str = "/login",
        step_up_url: str | None = None,
        api_prefixes: Iterable[str] = ("/api/",),
        routes: RouteRequirements | Mapping[str, Requirement] | None = None,
        beacon_path: str | None = DEFAULT_BEACON_PATH,
        token_path: str | None = None,
        keep_credentials: bool = False,
    ) -> None:
        self.app = app
        self.keep_credentials = keep_credentials
        self.gate = Gate(
            org,
            cookie=cookie,
            trusted_proxies=trusted_proxies,
            forwarded_header=forwarded_header,
            exempt_paths=exempt_paths,
            login_url=login_url,
            step_up_url=step_up_url,
            api_prefixes=api_prefixes,
            routes=routes,
            beacon_path=beacon_path,
            token_path=token_path,
        )

    @property
    def org(self) -> Org:
        """The org the middleware validates against."""
        return self.gate.org

    @property
    def cookie(self) -> CookieSettings:
        """The session cookie's settings."""
        return self.gate.cookie


def session_summary(session: Session) -> dict[str, object]:
    """The public fields of a session as JSON-ready values (for an API's ``/me``)."""

    def iso(value: datetime) -> str:
        return value.isoformat()

    return {
        "handle": session.handle,
        "user": session.user,
        "profile": session.profile,
        "session_type": session.session_type.name,
        "login_method": session.login_method.code,
        "level": session.level.name,
        "source_ip": str(session.source_ip),
        "created": iso(session.created),
        "last_activity": iso(session.last_activity),
        "valid_until": iso(session.valid_until),
        "browser_bound": session.browser_bound,
        "ip_locked": session.ip_locked,
    }
