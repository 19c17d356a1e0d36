"""The compiled core of sessionward (Rust, pyo3). Import names from `sessionward`, not from here.

Times are whole seconds from the engine's clock, shown as timezone-aware UTC datetimes.
Tokens (`str`) appear exactly once, in `Issued.token`; no `repr`, `str`, exception message or
event ever contains one.
"""

import ipaddress
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import ClassVar, Final, final

__all__ = [
    "AccessGrant",
    "AlreadyExists",
    "CHECK_CODES",
    "CapAction",
    "ChallengeRequired",
    "Denied",
    "DenyReason",
    "EndReason",
    "EntropyError",
    "Event",
    "ExpiryKind",
    "Grant",
    "InvalidInput",
    "IpMismatch",
    "IpNotAllowed",
    "Issued",
    "LoginMethod",
    "MAX_PAGE_SIZE",
    "MAX_REMEMBERED_DEVICES",
    "MalformedToken",
    "ManualClock",
    "OAuthError",
    "Org",
    "OrgSettings",
    "Profile",
    "ProfileInUse",
    "SecurityLevel",
    "Session",
    "SessionEnded",
    "SessionError",
    "SessionExpired",
    "SessionPage",
    "SessionType",
    "SessionwardError",
    "SettingsError",
    "StepUpRequired",
    "StoreError",
    "SweepStats",
    "TOKEN_LEN",
    "TOKEN_PREFIX",
    "TableStats",
    "UnknownProfile",
    "UnknownSession",
    "UnknownUser",
    "__version__",
    "is_well_formed",
    "redact_tokens",
]

__version__: Final[str]
"""The package version (the Rust crates' version)."""

TOKEN_PREFIX: Final[str]
"""Prefix of every token: ``"swd_"``."""

TOKEN_LEN: Final[int]
"""Length of every token: 64 characters (prefix, 11-character selector, 43-character secret, 6-character checksum)."""

MAX_PAGE_SIZE: Final[int]
"""Largest `limit` of `Org.sessions`: 10,000."""

MAX_REMEMBERED_DEVICES: Final[int]
"""Most devices remembered per user (32): remembering one more forgets the oldest."""

CHECK_CODES: Final[Mapping[int, str]]
"""The codes `Org.check_many` reports, one byte per token, mapped to the `SessionError.code` of
the refusal each stands for (read-only). Codes never change meaning:

====  =========================  =============================================
code  ``CHECK_CODES[code]``       what `Org.validate` does for that token
====  =========================  =============================================
0     ``valid``                  returns the `Session`
1     ``malformed``              raises `MalformedToken`
2     ``unknown``                raises `UnknownSession`
3     ``expired_idle``           raises `SessionExpired` (``kind=ExpiryKind.IDLE``)
4     ``expired_absolute``       raises `SessionExpired` (``kind=ExpiryKind.ABSOLUTE``)
5     ``ip_mismatch``            raises `IpMismatch`
6     ``ip_not_allowed``         raises `IpNotAllowed`
7     ``step_up_required``       raises `StepUpRequired` (levels: call `validate`)
16+i  ``ended_<reason>``         raises `SessionEnded` with
                                 ``reason=EndReason.members()[i]``: 16 ``ended_logout``
                                 ... 24 ``ended_source_range``
255   ``refused``                a refusal reason newer than this table: raises a
                                 `SessionError`; call `validate` for details
====  =========================  =============================================
"""

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

def redact_tokens(text: str) -> str:
    """`text` with every well-formed token replaced by ``swd_[REDACTED]``."""

def is_well_formed(text: object) -> bool:
    """Whether `text` is a `str` with the exact shape of a token, checksum included."""

# ----- enums ---------------------------------------------------------------------------------

@final
class SecurityLevel:
    """How much a session is trusted: LOW < STANDARD < HIGH_ASSURANCE (members are ordered)."""

    LOW: ClassVar[SecurityLevel]
    """API-only sessions (e.g. OAuth client credentials)."""
    STANDARD: ClassVar[SecurityLevel]
    """A password, SSO or delegated login."""
    HIGH_ASSURANCE: ClassVar[SecurityLevel]
    """A login or step-up with MFA or a passkey."""
    @property
    def name(self) -> str:
        """Upper-case name, e.g. ``"HIGH_ASSURANCE"``."""
    @property
    def code(self) -> str:
        """The core's string for the member (here the same as `name`)."""
    @staticmethod
    def from_code(code: str) -> SecurityLevel:
        """The member with this code or name; `InvalidInput` otherwise."""
    @staticmethod
    def members() -> list[SecurityLevel]:
        """Every member, lowest first."""
    def __lt__(self, other: SecurityLevel, /) -> bool: ...
    def __le__(self, other: SecurityLevel, /) -> bool: ...
    def __gt__(self, other: SecurityLevel, /) -> bool: ...
    def __ge__(self, other: SecurityLevel, /) -> bool: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __int__(self) -> int: ...

@final
class LoginMethod:
    """How the user proved who they are at login or step-up."""

    PASSWORD: ClassVar[LoginMethod]
    """Username and password (STANDARD by default)."""
    SSO: ClassVar[LoginMethod]
    """Single sign-on from an identity provider (STANDARD by default)."""
    DELEGATED: ClassVar[LoginMethod]
    """Delegated authentication (STANDARD by default)."""
    MFA: ClassVar[LoginMethod]
    """A login with a second factor (HIGH_ASSURANCE by default)."""
    PASSKEY: ClassVar[LoginMethod]
    """A passkey / WebAuthn (HIGH_ASSURANCE by default)."""
    CLIENT_CREDENTIALS: ClassVar[LoginMethod]
    """The OAuth 2.0 client-credentials grant, no person (LOW by default)."""
    @property
    def name(self) -> str:
        """Upper-case name, e.g. ``"PASSWORD"``."""
    @property
    def code(self) -> str:
        """Lower-case code, e.g. ``"password"``, ``"client_credentials"``."""
    @staticmethod
    def from_code(code: str) -> LoginMethod:
        """The member with this code or name; `InvalidInput` otherwise."""
    @staticmethod
    def members() -> list[LoginMethod]:
        """Every member, in declaration order."""
    def __lt__(self, other: LoginMethod, /) -> bool: ...
    def __le__(self, other: LoginMethod, /) -> bool: ...
    def __gt__(self, other: LoginMethod, /) -> bool: ...
    def __ge__(self, other: LoginMethod, /) -> bool: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __int__(self) -> int: ...

@final
class SessionType:
    """What kind of client holds the session."""

    UI: ClassVar[SessionType]
    """A browser (cookie) session."""
    API: ClassVar[SessionType]
    """An API client with a bearer header."""
    OAUTH2: ClassVar[SessionType]
    """A token granted through OAuth 2.0."""
    @property
    def name(self) -> str:
        """Upper-case name, e.g. ``"UI"``."""
    @property
    def code(self) -> str:
        """The core's string (same as `name`)."""
    @staticmethod
    def from_code(code: str) -> SessionType:
        """The member with this code or name; `InvalidInput` otherwise."""
    @staticmethod
    def members() -> list[SessionType]:
        """Every member, in declaration order."""
    def __lt__(self, other: SessionType, /) -> bool: ...
    def __le__(self, other: SessionType, /) -> bool: ...
    def __gt__(self, other: SessionType, /) -> bool: ...
    def __ge__(self, other: SessionType, /) -> bool: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __int__(self) -> int: ...

@final
class CapAction:
    """What a login past a profile's concurrent-session cap does."""

    END_OLDEST: ClassVar[CapAction]
    """End the user's oldest session (`EndReason.SESSION_CAP`)."""
    REFUSE_NEW: ClassVar[CapAction]
    """Refuse the login (`Denied(DenyReason.SESSION_CAP)`)."""
    @property
    def name(self) -> str:
        """Upper-case name."""
    @property
    def code(self) -> str:
        """Lower-case code, ``"end_oldest"`` or ``"refuse_new"``."""
    @staticmethod
    def from_code(code: str) -> CapAction:
        """The member with this code or name; `InvalidInput` otherwise."""
    @staticmethod
    def members() -> list[CapAction]:
        """Every member, in declaration order."""
    def __lt__(self, other: CapAction, /) -> bool: ...
    def __le__(self, other: CapAction, /) -> bool: ...
    def __gt__(self, other: CapAction, /) -> bool: ...
    def __ge__(self, other: CapAction, /) -> bool: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __int__(self) -> int: ...

@final
class EndReason:
    """Why a session was ended before it expired (`SessionEnded.reason`)."""

    LOGOUT: ClassVar[EndReason]
    """The user logged out."""
    ADMIN: ClassVar[EndReason]
    """An admin ended this session or all of the user's sessions."""
    PASSWORD_RESET: ClassVar[EndReason]
    """The user's password was reset."""
    PROFILE_WIDE: ClassVar[EndReason]
    """An admin ended every session of the profile."""
    ORG_WIDE: ClassVar[EndReason]
    """An admin ended every session of the org."""
    BROWSER_CLOSED: ClassVar[EndReason]
    """The browser closed and the session was browser-bound."""
    SESSION_CAP: ClassVar[EndReason]
    """A newer login pushed the user over the profile's session cap."""
    USER_REMOVED: ClassVar[EndReason]
    """The user was deleted."""
    SOURCE_RANGE: ClassVar[EndReason]
    """An admin ended every session from a network range."""
    @property
    def name(self) -> str:
        """Upper-case name."""
    @property
    def code(self) -> str:
        """Snake-case code, e.g. ``"password_reset"``."""
    @staticmethod
    def from_code(code: str) -> EndReason:
        """The member with this code or name; `InvalidInput` otherwise."""
    @staticmethod
    def members() -> list[EndReason]:
        """Every member, in declaration order."""
    def __lt__(self, other: EndReason, /) -> bool: ...
    def __le__(self, other: EndReason, /) -> bool: ...
    def __gt__(self, other: EndReason, /) -> bool: ...
    def __ge__(self, other: EndReason, /) -> bool: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __int__(self) -> int: ...

@final
class ExpiryKind:
    """Which timeout a session ran into (`SessionExpired.kind`)."""

    IDLE: ClassVar[ExpiryKind]
    """No successful validation for the inactivity timeout."""
    ABSOLUTE: ClassVar[ExpiryKind]
    """The maximum session length passed."""
    @property
    def name(self) -> str:
        """Upper-case name."""
    @property
    def code(self) -> str:
        """``"idle"`` or ``"absolute"``."""
    @staticmethod
    def from_code(code: str) -> ExpiryKind:
        """The member with this code or name; `InvalidInput` otherwise."""
    @staticmethod
    def members() -> list[ExpiryKind]:
        """Every member, in declaration order."""
    def __lt__(self, other: ExpiryKind, /) -> bool: ...
    def __le__(self, other: ExpiryKind, /) -> bool: ...
    def __gt__(self, other: ExpiryKind, /) -> bool: ...
    def __ge__(self, other: ExpiryKind, /) -> bool: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __int__(self) -> int: ...

@final
class DenyReason:
    """Why a login was denied (`Denied.reason`)."""

    UNKNOWN_USER: ClassVar[DenyReason]
    """No such user."""
    IP_NOT_ALLOWED: ClassVar[DenyReason]
    """The source IP is outside the profile's login ranges."""
    SESSION_CAP: ClassVar[DenyReason]
    """The user is at the profile's session cap and the cap refuses new logins."""
    CHALLENGE_INVALID: ClassVar[DenyReason]
    """The challenge is unknown, already used or expired."""
    INVALID_CLIENT: ClassVar[DenyReason]
    """An OAuth client-credentials grant named an unknown client or the wrong secret (in
    ``login_denied`` events only: the grant itself raises ``OAuthError``)."""
    @property
    def name(self) -> str:
        """Upper-case name."""
    @property
    def code(self) -> str:
        """Snake-case code, e.g. ``"ip_not_allowed"``."""
    @staticmethod
    def from_code(code: str) -> DenyReason:
        """The member with this code or name; `InvalidInput` otherwise."""
    @staticmethod
    def members() -> list[DenyReason]:
        """Every member, in declaration order."""
    def __lt__(self, other: DenyReason, /) -> bool: ...
    def __le__(self, other: DenyReason, /) -> bool: ...
    def __gt__(self, other: DenyReason, /) -> bool: ...
    def __ge__(self, other: DenyReason, /) -> bool: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __int__(self) -> int: ...

# ----- exceptions ----------------------------------------------------------------------------

class SessionwardError(Exception):
    """Base class of every exception sessionward raises."""

class SettingsError(SessionwardError, ValueError):
    """A setting is outside its allowed range, or a CIDR range or name is malformed.

    The message is the core's and names the field, the value and the allowed range, e.g.
    ``inactivity_timeout: 14m is outside the allowed range 15m..=24h``.
    """

class InvalidInput(SessionwardError, ValueError):
    """An argument is not valid: an IP address, a session handle, a user id, a naive datetime.

    The message names the argument and echoes the value shortened to 64 characters, tokens
    redacted.
    """

class UnknownUser(SessionwardError, LookupError):
    """No user with this id: `Org.add_user` first."""

class UnknownProfile(SessionwardError, LookupError):
    """No profile with this name: `Org.add_profile` first."""

class AlreadyExists(SessionwardError, ValueError):
    """A user or profile with this name already exists (use `move_user` / `update_profile`)."""

class ProfileInUse(SessionwardError, ValueError):
    """The profile still has users: move or remove them first."""

class EntropyError(SessionwardError, OSError):
    """The operating system's random source failed: no token could be made."""

class StoreError(SessionwardError, OSError):
    """The durable session store (``Org(path=...)``) could not be opened, is corrupt, was
    written by a newer sessionward, or a write failed. The message names the file and cause."""

class OAuthError(SessionwardError):
    """An OAuth 2.0 request was refused; ``code`` is the RFC error code.

    - `Org.grant_client_credentials` (RFC 6749 section 5.2): ``invalid_client``,
      ``invalid_scope``, ``unauthorized_client`` or ``server_error``.
    - `Org.authorize_access_token` (RFC 6750 section 3.1): ``invalid_token`` when the token's
      session is valid but it is not an access token granted to a client (a browser or API
      login's token, say), ``insufficient_scope`` when a requested scope was not granted (the
      message names it). A session refusal raises the `SessionError` subclass `Org.validate`
      raises instead (its RFC 6750 code is ``invalid_token`` too).

    The message never contains the client secret or a token."""

    code: str
    """The RFC 6749 / RFC 6750 error code."""

class SessionError(SessionwardError):
    """A validation (or logout, step-up) was refused: exactly one subclass per reason.

    Raised by `Org.validate`, `Org.step_up`, `Org.logout`, `Org.browser_closed`; returned as a
    value, not raised, in the list `Org.validate_many` returns.
    """

    code: str
    """The reason's stable snake-case code: ``malformed``, ``unknown``, ``expired_idle``,
    ``expired_absolute``, ``ended_<reason>``, ``ip_mismatch``, ``ip_not_allowed``,
    ``step_up_required``."""

class MalformedToken(SessionError):
    """The text is not a sessionward token (length, prefix, alphabet or checksum): refused
    before any lookup."""

class UnknownSession(SessionError):
    """Well-formed, but no such session (never issued, or forgotten after the retention)."""

class SessionExpired(SessionError):
    """The session timed out."""

    __match_args__: ClassVar[tuple[str, ...]]
    kind: ExpiryKind
    """`ExpiryKind.IDLE` or `ExpiryKind.ABSOLUTE`."""

class SessionEnded(SessionError):
    """The session was ended (logout, admin, password reset, ...)."""

    __match_args__: ClassVar[tuple[str, ...]]
    reason: EndReason
    """Why it was ended."""

class IpMismatch(SessionError):
    """The session is locked to the IP address it started from, and this is another one."""

class IpNotAllowed(SessionError):
    """The source IP is outside the profile's login ranges (the org enforces them on every
    request)."""

class StepUpRequired(SessionError):
    """A higher security level is needed.

    One class for one concept, under two roles:

    - `Org.validate` *raises* it when the operation needs a level the session lacks: verify the
      user again (e.g. MFA) and call `Org.step_up`;
    - `Org.login` *returns* an instance of it (it is not raised) when the profile requires a
      higher level than the login method grants: log in again with a stronger method.

    So ``match outcome: case StepUpRequired(required=level)`` and
    ``except StepUpRequired as e`` both work.
    """

    __match_args__: ClassVar[tuple[str, ...]]
    required: SecurityLevel
    """The level needed."""
    current: SecurityLevel
    """The session's level (validate) or the level the offered method grants (login)."""
    offered: SecurityLevel
    """Alias of `current`, the natural name for a login outcome."""

# ----- settings ------------------------------------------------------------------------------

@final
class OrgSettings:
    """Org-wide session settings, validated on construction and immutable.

    Timeouts are `datetime.timedelta`: inactivity 15 min ..= 24 h (default 2 h), maximum
    session length 1 h ..= 24 h (default 12 h). Ranges are strings (``"10.0.0.0/8"``) or
    `ipaddress` networks. `method_levels` overrides the level some methods grant (defaults:
    password/SSO/delegated STANDARD, MFA/passkey HIGH_ASSURANCE, client credentials LOW).
    Anything out of range raises `SettingsError` naming the field, the value and the range.

    Timeouts, IP lock and browser binding are snapshotted by each session at login; the
    high-assurance operations and per-request range enforcement apply to every validation.
    """

    def __new__(
        cls,
        *,
        inactivity_timeout: timedelta | None = None,
        max_session_length: timedelta | None = None,
        force_relogin_on_browser_close: bool = False,
        lock_sessions_to_ip: bool = False,
        enforce_login_ranges_every_request: bool = False,
        trusted_ranges: Iterable[str | _IPNetwork] | None = None,
        high_assurance_operations: Iterable[str] | None = None,
        method_levels: Mapping[LoginMethod, SecurityLevel] | None = None,
    ) -> OrgSettings: ...
    def replace(
        self,
        *,
        inactivity_timeout: timedelta | None = None,
        max_session_length: timedelta | None = None,
        force_relogin_on_browser_close: bool | None = None,
        lock_sessions_to_ip: bool | None = None,
        enforce_login_ranges_every_request: bool | None = None,
        trusted_ranges: Iterable[str | _IPNetwork] | None = None,
        high_assurance_operations: Iterable[str] | None = None,
        method_levels: Mapping[LoginMethod, SecurityLevel] | None = None,
    ) -> OrgSettings:
        """A validated copy with the given settings changed (`None` keeps a setting)."""
    @property
    def inactivity_timeout(self) -> timedelta:
        """Sessions end after this long without a successful validation."""
    @property
    def max_session_length(self) -> timedelta:
        """Sessions end this long after login, whatever the activity."""
    @property
    def force_relogin_on_browser_close(self) -> bool:
        """New UI sessions are browser-bound: `Org.browser_closed` ends them."""
    @property
    def lock_sessions_to_ip(self) -> bool:
        """New sessions are locked to the IP address they logged in from."""
    @property
    def enforce_login_ranges_every_request(self) -> bool:
        """Every validation checks the source IP against the profile's login ranges."""
    @property
    def trusted_ranges(self) -> tuple[_IPNetwork, ...]:
        """Logins from inside these ranges skip the verification challenge (normalised)."""
    @property
    def high_assurance_operations(self) -> frozenset[str]:
        """Operations that need a HIGH_ASSURANCE session."""
    @property
    def method_levels(self) -> dict[LoginMethod, SecurityLevel]:
        """The level every login method grants."""
    def level_for(self, method: LoginMethod) -> SecurityLevel:
        """The level a login or step-up with `method` grants."""
    def __eq__(self, other: object, /) -> bool: ...
    __hash__: ClassVar[None]  # type: ignore[assignment]

@final
class Profile:
    """A profile: the users that share login rules and stricter overrides. Immutable.

    `session_timeout` (15 min ..= 24 h) and `max_session_length` (1 h ..= 24 h) override the
    org's when set. `login_ranges` (empty: anywhere) are checked at login, and on every request
    when the org enforces them. `required_level` is STANDARD or HIGH_ASSURANCE: a UI login
    below it gets a `StepUpRequired` outcome. `max_sessions_per_user` (1 ..= 1000) caps
    concurrent sessions, with `on_session_cap` deciding what a login past the cap does.
    """

    def __new__(
        cls,
        name: str,
        *,
        session_timeout: timedelta | None = None,
        max_session_length: timedelta | None = None,
        login_ranges: Iterable[str | _IPNetwork] | None = None,
        required_level: SecurityLevel = ...,
        max_sessions_per_user: int | None = None,
        on_session_cap: CapAction = ...,
    ) -> Profile: ...
    @property
    def name(self) -> str:
        """The profile's unique name (1 to 256 bytes, no control characters)."""
    @property
    def session_timeout(self) -> timedelta | None:
        """Inactivity timeout overriding the org's, or `None`."""
    @property
    def max_session_length(self) -> timedelta | None:
        """Maximum session length overriding the org's, or `None`."""
    @property
    def login_ranges(self) -> tuple[_IPNetwork, ...]:
        """Where the profile's users may log in from; empty means anywhere."""
    @property
    def required_level(self) -> SecurityLevel:
        """The level a UI login must reach to get a session directly."""
    @property
    def max_sessions_per_user(self) -> int | None:
        """The cap on concurrent sessions per user, or `None`."""
    @property
    def on_session_cap(self) -> CapAction:
        """What a login past the cap does."""
    def allows(self, ip: str | _IPAddress) -> bool:
        """Whether `ip` may log in under this profile."""
    def __eq__(self, other: object, /) -> bool: ...
    __hash__: ClassVar[None]  # type: ignore[assignment]

@final
class ManualClock:
    """A clock that moves only when told to, for tests and simulations: `Org(clock=...)`."""

    def __new__(cls, start: datetime | int | None = None) -> ManualClock:
        """Starts at `start` (a timezone-aware datetime, or whole seconds since 1970), or now.

        The clock's reading stays within 0 ..= 4,294,794,495 seconds since 1970
        (2106-02-05T06:28:15Z): the engine keeps times as 32-bit seconds, and this leaves room
        for the longest session (24 h) and tombstone retention (24 h) after it. A later time
        would refuse new sessions as expired or cut their deadlines, so it raises
        `InvalidInput` naming the range, as do a negative time and a naive datetime."""
    def advance(self, by: timedelta) -> None:
        """Moves the clock forward by `by` (non-negative; sub-second parts are dropped).
        `InvalidInput` if that would take it past 2106-02-05T06:28:15Z (see the constructor)."""
    def set(self, at: datetime | int) -> None:
        """Sets the clock (a timezone-aware datetime or seconds since 1970, within the range
        the constructor accepts); may go back."""
    def now(self) -> datetime:
        """The clock's reading, timezone-aware UTC."""
    @property
    def seconds(self) -> int:
        """The clock's reading in whole seconds since 1970."""

# ----- results -------------------------------------------------------------------------------

@final
class Session:
    """Public facts about a session. There is no token attribute.

    Returned by `validate`, `step_up`, `session`, `Issued.session`, `Grant.session`,
    `AccessGrant.session` and the rows of `sessions()`.
    """

    @property
    def handle(self) -> str:
        """Public handle, ``swh_`` + 16 hex digits: for admins, events and `end_session`;
        it cannot be used to authenticate."""
    @property
    def user(self) -> str:
        """The user's id."""
    @property
    def profile(self) -> str:
        """The profile the session was created under."""
    @property
    def session_type(self) -> SessionType:
        """UI, API or OAUTH2."""
    @property
    def login_method(self) -> LoginMethod:
        """How the user logged in."""
    @property
    def level(self) -> SecurityLevel:
        """Current security level (step-up raises it)."""
    @property
    def source_ip(self) -> _IPAddress:
        """The address the session started from (IPv4-mapped IPv6 shown as IPv4)."""
    @property
    def created(self) -> datetime:
        """Login time (UTC)."""
    @property
    def last_activity(self) -> datetime:
        """Time of the last successful validation (UTC)."""
    @property
    def valid_until(self) -> datetime:
        """The session is valid before this time (idle and absolute deadlines combined): use
        it to warn the user before the session times out."""
    @property
    def absolute_deadline(self) -> datetime:
        """When the maximum session length runs out."""
    @property
    def idle_timeout(self) -> timedelta:
        """The inactivity timeout snapshotted at login."""
    @property
    def ip_locked(self) -> bool:
        """Locked to `source_ip` (snapshotted at login)."""
    @property
    def browser_bound(self) -> bool:
        """Ends when the browser closes (snapshotted at login)."""
    def __eq__(self, other: object, /) -> bool: ...
    __hash__: ClassVar[None]  # type: ignore[assignment]

@final
class Issued:
    """Login outcome: a session was issued. Its `repr` never shows the token."""

    __match_args__: ClassVar[tuple[str, str]]
    @property
    def token(self) -> str:
        """The bearer token, shown only here: send it to the client, never log it."""
    @property
    def session(self) -> Session:
        """The new session's public facts."""

@final
class Grant:
    """An access token granted to an OAuth client. Its `repr` never shows the token."""

    @property
    def access_token(self) -> str:
        """The access token (an OAUTH2 session token): never log it."""
    @property
    def expires_in(self) -> int:
        """Seconds until the token expires if unused."""
    @property
    def scopes(self) -> list[str]:
        """The scopes granted, sorted."""
    @property
    def session(self) -> Session:
        """The OAUTH2 session behind the token (listed and ended like any other)."""

@final
class AccessGrant:
    """An access token that passed `Org.authorize_access_token`. Holds no token; its `repr`
    shows the client, the scopes and the session."""

    @property
    def session(self) -> Session:
        """The OAUTH2 session behind the token (its last activity refreshed by the check)."""
    @property
    def client_id(self) -> str:
        """The client the token was granted to."""
    @property
    def scopes(self) -> list[str]:
        """Every scope the token was granted (not only those required), sorted."""

@final
class ChallengeRequired:
    """Login outcome: verify the user out of band (the source IP is outside the trusted
    ranges), then call `Org.complete_challenge(challenge)`. Its `repr` never shows the secret.
    """

    __match_args__: ClassVar[tuple[str, str]]
    @property
    def challenge(self) -> str:
        """One-time, token-shaped secret naming the pending login: never log it."""
    @property
    def expires_at(self) -> datetime:
        """After this the challenge can no longer be completed (10 minutes)."""

@final
class Denied:
    """Login outcome: no session, for `reason`. Compares equal by reason."""

    __match_args__: ClassVar[tuple[str]]
    def __new__(cls, reason: DenyReason) -> Denied: ...
    @property
    def reason(self) -> DenyReason:
        """Why the login was denied."""
    def __eq__(self, other: object, /) -> bool: ...
    __hash__: ClassVar[None]  # type: ignore[assignment]

@final
class SessionPage:
    """One page of `Org.sessions`, ordered by handle. Iterating yields the rows."""

    __match_args__: ClassVar[tuple[str, str, str]]
    @property
    def rows(self) -> list[Session]:
        """The sessions of this page."""
    @property
    def total(self) -> int:
        """How many sessions match the filter in all."""
    @property
    def next(self) -> str | None:
        """Pass as ``after=`` to get the next page; `None` on the last page."""
    def __len__(self) -> int:
        """Rows on this page."""
    def __iter__(self) -> Iterator[Session]:
        """Iterates over the rows."""

@final
class Event:
    """One audit event. Never carries a token."""

    @property
    def kind(self) -> str:
        """``created``, ``ended``, ``expired``, ``login_denied``, ``challenge_issued``,
        ``ip_mismatch``, ``ip_not_allowed``, ``step_up_required`` or ``stepped_up``."""
    @property
    def at(self) -> datetime:
        """When it happened (UTC)."""
    @property
    def handle(self) -> str | None:
        """The session concerned, if any."""
    @property
    def user(self) -> str | None:
        """The user concerned, if known."""
    @property
    def ip(self) -> _IPAddress | None:
        """The client address concerned, if any."""
    @property
    def reason(self) -> str | None:
        """The end reason (``ended``), expiry kind (``expired``) or deny reason
        (``login_denied``) code."""
    @property
    def level(self) -> SecurityLevel | None:
        """The session's level, for ``created`` and ``stepped_up``."""
    @property
    def session_type(self) -> SessionType | None:
        """The session's type, for ``created``."""

@final
class SweepStats:
    """What one `Org.sweep` did."""

    @property
    def shards(self) -> int:
        """Shards visited."""
    @property
    def removed(self) -> int:
        """Records dropped (tombstones of ended or expired sessions past retention)."""
    @property
    def expired(self) -> int:
        """Sessions newly found expired (each reported once as an event)."""
    def __eq__(self, other: object, /) -> bool: ...
    __hash__: ClassVar[None]  # type: ignore[assignment]

@final
class TableStats:
    """Counts of what the session table holds (`Org.stats`)."""

    @property
    def live(self) -> int:
        """Sessions that would validate now (ignoring IP and level checks)."""
    @property
    def records(self) -> int:
        """Records held, including tombstones of ended and expired sessions."""
    @property
    def capacity(self) -> int:
        """Slots allocated across all shards."""
    @property
    def at_home(self) -> int:
        """Records at their home slot, which a validation finds in the first cache line it
        reads: near `records` when logins made them (they choose free slots); fewer in a
        table restored from a store or shrunk, until its sessions are replaced."""
    @property
    def dropped_events(self) -> int:
        """Events dropped from the `Org.events` buffer because nobody drained it."""
    def __eq__(self, other: object, /) -> bool: ...
    __hash__: ClassVar[None]  # type: ignore[assignment]

# ----- the engine ----------------------------------------------------------------------------

@final
class Org:
    """The session authority of one org. Thread-safe; fork-safe (an `Org` made before
    `os.fork()` keeps working in the child, and parent and child never issue the same token).

    `shards` is a power of two in 1..=4096 (default 256). `clock` defaults to the system clock.
    `expected_sessions` (0..=100,000,000, default 0) makes room for that many sessions when the
    org is built, 73 bytes each or more, taken at once: up to that many, no table ever stops its
    validations to grow, and logins run faster (`SettingsError` beyond the range).
    With `path`, sessions, users, profiles and settings are kept in an embedded database file
    (created if missing, loaded if present): a restart loses no session and resurrects no
    ended one. Without it the org lives in memory only. `StoreError` if the file cannot be
    opened.

    Calls that walk the whole table or a batch (`validate_many`, `check_many`, `sessions`,
    bulk ends, `sweep`, `stats`) release the GIL; single-session calls keep it (they are
    shorter than a GIL hand-off).
    """

    def __new__(
        cls,
        settings: OrgSettings | None = None,
        *,
        clock: ManualClock | None = None,
        shards: int | None = None,
        path: str | os.PathLike[str] | None = None,
        expected_sessions: int | None = None,
    ) -> Org: ...
    @property
    def is_durable(self) -> bool:
        """Whether the org keeps its sessions in a durable store (`path`)."""
    def flush_activity(self) -> None:
        """Writes the last activity of every live session to the store now (a no-op without
        a store; closing the org does it too). `StoreError` if the write fails."""
    def store_error(self) -> StoreError | None:
        """The first store failure met by an operation that could not report it (logout,
        ends, sweeps...), as an exception instance, or `None` while every write worked. The
        change took effect in memory but may not survive a restart."""
    @property
    def settings(self) -> OrgSettings:
        """The current org settings."""
    def update_settings(self, settings: OrgSettings) -> None:
        """Replaces the org settings. Existing sessions keep the timeouts, IP lock and browser
        binding they snapshotted; high-assurance operations and per-request range enforcement
        apply to every validation from now on."""
    def add_profile(self, profile: Profile) -> None:
        """Adds a profile; `AlreadyExists` if the name is taken."""
    def update_profile(self, profile: Profile) -> None:
        """Replaces the profile with the same name (existing sessions keep their snapshot)."""
    def remove_profile(self, name: str) -> int:
        """Removes a profile without users; its remaining sessions end. Returns how many."""
    def profile(self, name: str) -> Profile:
        """The profile with this name; `UnknownProfile` otherwise."""
    def profile_names(self) -> list[str]:
        """Names of all profiles."""
    def add_user(self, user: str, profile: str) -> None:
        """Adds a user (1 to 256 bytes, no control characters) to a profile."""
    def move_user(self, user: str, profile: str) -> None:
        """Moves a user to another profile; existing sessions keep their profile's policy."""
    def remove_user(self, user: str) -> int:
        """Deletes a user and ends their sessions; returns how many ended."""
    def user_profile(self, user: str) -> str:
        """The profile a user is in now."""
    def user_count(self) -> int:
        """How many users the org has."""
    def now(self) -> datetime:
        """The engine's clock reading (UTC)."""
    def login(
        self,
        user: str,
        ip: str | _IPAddress,
        method: LoginMethod = ...,
        session_type: SessionType = ...,
        device: str | None = None,
    ) -> Issued | ChallengeRequired | StepUpRequired | Denied:
        """Attempts a login (default: a UI password login) and returns the outcome, fit for
        `match`. Order of the rules: unknown user, IP outside the profile's login ranges
        (`Denied`); a UI login below the profile's required level (`StepUpRequired`, returned
        not raised); a STANDARD method from outside the trusted ranges on a device not
        remembered (`ChallengeRequired`); the session cap; then `Issued`.
        `device` is a long-lived device id that `complete_challenge(remember_device=True)`
        remembers (stored as a digest)."""
    def complete_challenge(
        self, challenge: str, remember_device: bool = False
    ) -> Issued | ChallengeRequired | StepUpRequired | Denied:
        """Completes a challenge after the app verified the user: `Issued`, or
        `Denied(DenyReason.CHALLENGE_INVALID)` if it is unknown, used or expired. With
        `remember_device`, the login's device is not challenged again (at most
        `MAX_REMEMBERED_DEVICES` per user; remembering one more forgets the oldest; an
        engine with a `path` keeps them across restarts, as digests)."""
    def validate(
        self,
        token: str,
        ip: str | _IPAddress,
        operation: str | None = None,
        level: SecurityLevel | None = None,
    ) -> Session:
        """Checks a token presented from `ip`, for an operation name or a minimum level (not
        both). Returns the session (and refreshes its last activity) or raises exactly one
        `SessionError` subclass: `MalformedToken`, `UnknownSession`, `SessionEnded`,
        `SessionExpired`, `IpMismatch`, `IpNotAllowed`, `StepUpRequired`, checked in that
        order. A refused request never keeps a session alive. `TypeError` if `token` is not a
        `str`; `InvalidInput` for a bad address."""
    def validate_many(
        self,
        tokens: Iterable[str],
        ips: str | _IPAddress | Sequence[str | _IPAddress],
        operation: str | None = None,
        level: SecurityLevel | None = None,
    ) -> list[Session | SessionError]:
        """Validates many tokens at once, without the GIL (for gateways and simulations).
        `ips` is one address for all, or one per token. Item `i` of the result is what
        `validate(tokens[i], ips[i])` would return, or the `SessionError` it would raise (as a
        value, not raised). Items that are not `str` count as malformed.

        The call works on a snapshot of `tokens` taken first (a list is copied into a tuple of
        the same objects): changing the list during the call, from another thread (the call
        lets other threads run between chunks of 1,024 tokens) or from code the call runs,
        changes nothing. A subclass of list or tuple is read through its iterator like any
        iterable, never through `__len__`."""
    def check_many(
        self,
        tokens: Iterable[str],
        ips: str | _IPAddress | Sequence[str | _IPAddress],
        operation: str | None = None,
        level: SecurityLevel | None = None,
    ) -> bytes:
        """Validates many tokens at once and reports one code per token, for gateways that only
        need the verdict: byte `i` is 0 when `validate(tokens[i], ips[i])` would return a
        session (whose last activity is refreshed, as by `validate`), else the code of the
        refusal it would raise (table: `CHECK_CODES`; ``codes.count(0)`` counts the valid
        ones). Same arguments, argument errors and snapshot of `tokens` as `validate_many`.

        Much cheaper than `validate_many`, as no Python object is made per token. The tokens
        are copied out of the objects (about 60 bytes each, with the GIL), then validated
        without the GIL. On a machine with two cores or more, batches of 1,024 tokens or more
        are shared, in chunks of 256, with one helper thread per process (started on first
        use), which starts on the first chunks while the rest are copied; the calling thread
        never waits for the helper to start, it takes whatever chunks are left. (On Python
        3.12+, ``os.fork()`` warns about the running helper thread; the child works.)"""
    def step_up(self, token: str, ip: str | _IPAddress, method: LoginMethod) -> Session:
        """Raises the session's level to what `method` grants, after the app verified the
        user again. The token must validate from `ip` first (same refusals as `validate`)."""
    def logout(self, token: str) -> None:
        """Ends the session of this token (`EndReason.LOGOUT`). Refused like a validation if
        the token is malformed, unknown, already ended or expired; no IP check."""
    def browser_closed(self, token: str) -> bool:
        """The browser closed: ends the session if it is browser-bound (True), else leaves it
        (False). Refused like `logout`."""
    def end_session(self, handle: str) -> bool:
        """Ends one session by its public handle (admin); whether a live session ended.
        `InvalidInput` if `handle` is not ``swh_`` + 16 hex digits."""
    def session(self, handle: str) -> Session | None:
        """The live session with this public handle (the admin view of one session), or
        `None` if it ended, expired or never existed. Only reads: last activity is not
        refreshed. `InvalidInput` if `handle` is not ``swh_`` + 16 hex digits, `TypeError` if
        it is not a `str`."""
    def reset_password(self, user: str) -> int:
        """A password reset: ends all the user's sessions (`PASSWORD_RESET`); returns how many."""
    def end_user_sessions(self, user: str) -> int:
        """Ends all the user's sessions (`ADMIN`); returns how many."""
    def end_profile_sessions(self, profile: str) -> int:
        """Ends every session created under the profile (`PROFILE_WIDE`); returns how many."""
    def end_all_sessions(self) -> int:
        """Ends every session of the org (`ORG_WIDE`); returns how many."""
    def end_sessions_from(self, cidr: str | _IPAddress | _IPNetwork) -> int:
        """Ends every session that started inside `cidr` (an address is a /32 or /128)
        (`SOURCE_RANGE`); returns how many."""
    def sessions(
        self,
        *,
        user: str | None = None,
        ip: str | _IPAddress | _IPNetwork | None = None,
        profile: str | None = None,
        session_type: SessionType | None = None,
        level: SecurityLevel | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> SessionPage:
        """One page of the live sessions matching every given filter, ordered by handle,
        starting after the handle `after`; `limit` is an int in 1..=10,000 (`InvalidInput`
        otherwise, `TypeError` for a non-int). `ip` is an address or a CIDR range. Rows show
        public fields only."""
    def sweep(self, shards: int | None = None) -> SweepStats:
        """Reclaims expired sessions in the next `shards` shards (round robin), or all shards,
        one shard lock at a time; reports newly expired sessions as events."""
    def stats(self) -> TableStats:
        """Counts of live sessions, records and capacity."""
    def events(self) -> list[Event]:
        """Drains the buffered audit events (oldest first; the buffer keeps the newest 10,000)."""
    def subscribe(self, callback: Callable[[Event], object]) -> None:
        """Calls `callback(event)` for every event from now on. Callbacks run on the thread of
        the `Org` call that caused the event, after the engine returned (never inside it); an
        exception from a callback is logged on the ``sessionward`` logger, not raised."""
    def unsubscribe(self, callback: Callable[[Event], object]) -> bool:
        """Removes a subscribed callback (compared by identity); whether it was subscribed."""
    def register_oauth_client(
        self, client_id: str, run_as: str, scopes: Iterable[str] = ...
    ) -> str:
        """Registers (or re-registers, rotating the secret) an OAuth client that runs as the
        integration user `run_as` with `scopes` (scope names: a list or any iterable of str;
        a single space-separated str raises `TypeError`); returns the client secret, shown
        only here. With a store (``Org(path=...)``) the client is durable when this returns:
        a restarted org knows it and its secret, and the scopes of every live access token.
        Raises `StoreError` if it could not be written (nothing changes)."""
    def remove_oauth_client(self, client_id: str) -> bool:
        """Removes a client; tokens already granted stay valid until they expire or are ended
        (`revoke_oauth_client` ends them). Whether it was registered. Durable when it returns,
        with a store (`StoreError` if not written: the client stays)."""
    def revoke_oauth_client(self, client_id: str) -> int:
        """Ends every live access token granted to `client_id` (`EndReason.ADMIN`), and only
        those: other clients running as the same integration user keep theirs. Returns how
        many ended. The client stays registered (and may be granted new tokens): remove it
        too to shut it out."""
    def oauth_clients(self) -> list[tuple[str, str, list[str]]]:
        """The registered clients as ``(client_id, run_as, scopes)``, sorted by id."""
    def grant_client_credentials(
        self, client_id: str, client_secret: str, scope: str | None, ip: str | _IPAddress
    ) -> Grant:
        """The OAuth 2.0 client-credentials grant (RFC 6749 section 4.4): checks the client and
        secret and the space-separated `scope` (None = every registered scope), then logs the
        run-as user in from `ip` as an OAUTH2 session under that user's profile policy. Raises
        `OAuthError` with the RFC error code."""
    def authorize_access_token(
        self, token: str, ip: str | _IPAddress, scope: str | Iterable[str] | None = None
    ) -> AccessGrant:
        """Checks an access token presented to a resource server (RFC 6750): its session must
        validate from `ip` (every rule of `validate`), it must have been granted by this org's
        client-credentials grant, and it must carry every scope in `scope` (a space-separated
        `str` as in RFC 6749 section 3.3, or an iterable of scope names; `None` or empty
        requires none). Returns an `AccessGrant`; only a token that passes refreshes its
        session's last activity.

        Raises, in this order: the `SessionError` subclass `validate` raises for the session
        (`MalformedToken`, `SessionEnded`, ...); `OAuthError` with ``code="invalid_token"`` for
        a valid session that is not an access token; `OAuthError` with
        ``code="insufficient_scope"`` naming the first scope not granted. `TypeError` if
        `token` is not a `str` or `scope` is neither a `str` nor an iterable of `str` (naming
        the item); `InvalidInput` for a bad address."""
