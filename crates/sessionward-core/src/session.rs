//! What the engine hands back: session information, login outcomes and refusal reasons.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use crate::{Handle, LoginMethod, SecurityLevel, SessionType, Token};

/// Why a session was ended before it expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EndReason {
    /// The user logged out.
    Logout = 1,
    /// An admin ended this session (by handle) or all of a user's sessions.
    Admin = 2,
    /// The user's password was reset: all their sessions end.
    PasswordReset = 3,
    /// An admin ended every session of the session's profile.
    ProfileWide = 4,
    /// An admin ended every session in the org.
    OrgWide = 5,
    /// The browser was closed and the session was browser-bound.
    BrowserClosed = 6,
    /// A newer login pushed the user over the profile's concurrent-session cap.
    SessionCap = 7,
    /// The user was deleted.
    UserRemoved = 8,
    /// An admin ended every session started from a network range.
    SourceRange = 9,
}

impl EndReason {
    /// Every reason, in declaration order.
    pub const ALL: [Self; 9] = [
        Self::Logout,
        Self::Admin,
        Self::PasswordReset,
        Self::ProfileWide,
        Self::OrgWide,
        Self::BrowserClosed,
        Self::SessionCap,
        Self::UserRemoved,
        Self::SourceRange,
    ];

    /// Snake-case code (`password_reset`), stable for logs and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::Admin => "admin",
            Self::PasswordReset => "password_reset",
            Self::ProfileWide => "profile_wide",
            Self::OrgWide => "org_wide",
            Self::BrowserClosed => "browser_closed",
            Self::SessionCap => "session_cap",
            Self::UserRemoved => "user_removed",
            Self::SourceRange => "source_range",
        }
    }

    pub(crate) fn from_u8(value: u8) -> Option<Self> {
        Self::ALL.get(usize::from(value).checked_sub(1)?).copied()
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which timeout a session ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExpiryKind {
    /// No successful validation for the inactivity timeout.
    Idle,
    /// The maximum session length passed.
    Absolute,
}

impl ExpiryKind {
    /// `idle` or `absolute`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Absolute => "absolute",
        }
    }
}

/// Why a validation was refused: exactly one reason per refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refusal {
    /// The text is not a sessionward token (wrong length, prefix, alphabet or checksum).
    Malformed,
    /// Well-formed, but no such session (never issued, or its tombstone was swept).
    Unknown,
    /// The session timed out.
    Expired(ExpiryKind),
    /// The session was ended.
    Ended(EndReason),
    /// The session is locked to another IP address.
    IpMismatch,
    /// The source IP is outside the profile's login ranges (enforced on every request).
    IpNotAllowed,
    /// The operation needs a higher security level: step up first.
    StepUpRequired {
        /// The level the operation needs.
        required: SecurityLevel,
        /// The session's level.
        current: SecurityLevel,
    },
}

impl Refusal {
    /// Snake-case code (`expired_idle`, `ended_logout`, ...), stable for APIs and reports.
    pub fn code(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Unknown => "unknown",
            Self::Expired(ExpiryKind::Idle) => "expired_idle",
            Self::Expired(ExpiryKind::Absolute) => "expired_absolute",
            Self::Ended(EndReason::Logout) => "ended_logout",
            Self::Ended(EndReason::Admin) => "ended_admin",
            Self::Ended(EndReason::PasswordReset) => "ended_password_reset",
            Self::Ended(EndReason::ProfileWide) => "ended_profile_wide",
            Self::Ended(EndReason::OrgWide) => "ended_org_wide",
            Self::Ended(EndReason::BrowserClosed) => "ended_browser_closed",
            Self::Ended(EndReason::SessionCap) => "ended_session_cap",
            Self::Ended(EndReason::UserRemoved) => "ended_user_removed",
            Self::Ended(EndReason::SourceRange) => "ended_source_range",
            Self::IpMismatch => "ip_mismatch",
            Self::IpNotAllowed => "ip_not_allowed",
            Self::StepUpRequired { .. } => "step_up_required",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed => f.write_str("session token is malformed"),
            Self::Unknown => f.write_str("session is unknown"),
            Self::Expired(kind) => write!(f, "session expired ({})", kind.as_str()),
            Self::Ended(reason) => write!(f, "session ended ({reason})"),
            Self::IpMismatch => f.write_str("session is locked to another IP address"),
            Self::IpNotAllowed => f.write_str("source IP is outside the profile's login ranges"),
            Self::StepUpRequired { required, current } => {
                write!(
                    f,
                    "operation needs {required}, session is {current}: step up"
                )
            }
        }
    }
}

impl std::error::Error for Refusal {}

/// What a validation needs beyond a live session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Requirement<'a> {
    /// Any live session.
    #[default]
    Any,
    /// The named operation: HIGH_ASSURANCE if the org lists it, else any level.
    Operation(&'a str),
    /// At least this level.
    Level(SecurityLevel),
}

/// Opaque key of a user inside one engine; resolve it with [`Engine::user_id`](crate::Engine::user_id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserKey(pub(crate) u32);

impl UserKey {
    /// The key as a small integer: keys are handed out 0, 1, 2, ... in the order users are
    /// added and never reused, so bindings can keep per-user data in a dense array indexed by
    /// it rather than a hash map.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// Opaque key of a profile inside one engine; resolve it with
/// [`Engine::profile_name`](crate::Engine::profile_name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProfileKey(pub(crate) u16);

impl ProfileKey {
    /// The key as a small integer (below 65,536): handed out 0, 1, 2, ... in the order
    /// profiles are added and never reused, like [`UserKey::index`].
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// Public facts about a session (never the token). Cheap to copy: no allocation on validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// Public handle (for admins and events; not a credential).
    pub handle: Handle,
    /// Who the session belongs to.
    pub user: UserKey,
    /// The user's profile when the session was created.
    pub profile: ProfileKey,
    /// UI, API or OAuth2.
    pub session_type: SessionType,
    /// How the user logged in.
    pub login_method: LoginMethod,
    /// Current security level (step-up raises it).
    pub level: SecurityLevel,
    /// Address the session started from.
    pub source_ip: IpAddr,
    /// Seconds since the Unix epoch at login.
    pub created: u64,
    /// Seconds since the Unix epoch of the last successful validation.
    pub last_activity: u64,
    /// The session is valid while the clock reads less than this (idle and absolute combined).
    pub valid_until: u64,
    /// When the maximum session length runs out.
    pub absolute_deadline: u64,
    /// Inactivity timeout snapshotted at login, in seconds.
    pub idle_timeout_secs: u32,
    /// Locked to `source_ip` (snapshotted at login).
    pub ip_locked: bool,
    /// Ends when the browser closes (snapshotted at login).
    pub browser_bound: bool,
}

/// What a gateway forwards of a validated session: whose it is and how strongly they logged
/// in, without the times and addresses of a [`SessionInfo`]. Sixteen bytes (a `SessionInfo`
/// is 72), so that [`Engine::validate_many_brief`](crate::Engine::validate_many_brief) builds
/// and writes under a quarter of what [`validate_many`](crate::Engine::validate_many) does
/// per token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionBrief {
    /// Public handle (for admins and events; not a credential).
    pub handle: Handle,
    /// Who the session belongs to.
    pub user: UserKey,
    /// The user's profile when the session was created.
    pub profile: ProfileKey,
    /// UI, API or OAuth2.
    pub session_type: SessionType,
    /// Current security level (step-up raises it).
    pub level: SecurityLevel,
}

// The docs and the batch's measurements rest on the size: keep it at two words.
const _: () = assert!(std::mem::size_of::<SessionBrief>() == 16);
const _: () = assert!(std::mem::size_of::<Result<SessionBrief, Refusal>>() == 16);

impl From<SessionInfo> for SessionBrief {
    #[inline(always)]
    fn from(info: SessionInfo) -> Self {
        Self {
            handle: info.handle,
            user: info.user,
            profile: info.profile,
            session_type: info.session_type,
            level: info.level,
        }
    }
}

/// A row of the admin session list: the public facts plus user id and profile name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRow {
    /// The session's public facts.
    pub info: SessionInfo,
    /// The user's id.
    pub user_id: Arc<str>,
    /// The profile's name.
    pub profile_name: Arc<str>,
}

/// A newly issued session: the token (shown once) and its public facts.
#[derive(Debug)]
pub struct Issued {
    /// The bearer token. Send it to the client; never log it.
    pub token: Token,
    /// Public facts.
    pub session: SessionInfo,
}

/// A verification challenge the app must complete before a session is issued.
#[derive(Debug)]
pub struct Challenge {
    /// One-time secret naming the pending login; pass it to
    /// [`Engine::complete_challenge`](crate::Engine::complete_challenge). Redacted in `Debug`.
    pub secret: Token,
    /// Seconds since the Unix epoch after which the challenge can no longer be completed.
    pub expires_at: u64,
}

/// Why a login was denied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DenyReason {
    /// No such user.
    UnknownUser,
    /// The source IP is outside the profile's login ranges.
    IpNotAllowed,
    /// The user is at the profile's concurrent-session cap and the cap refuses new logins.
    SessionCap,
    /// The challenge is unknown, already used or expired.
    ChallengeInvalid,
    /// An OAuth client-credentials grant named an unknown client or the wrong secret (the
    /// event carries the caller's address and no user: the client is not a user).
    InvalidClient,
}

impl DenyReason {
    /// Snake-case code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownUser => "unknown_user",
            Self::IpNotAllowed => "ip_not_allowed",
            Self::SessionCap => "session_cap",
            Self::ChallengeInvalid => "challenge_invalid",
            Self::InvalidClient => "invalid_client",
        }
    }
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of a login attempt.
#[derive(Debug)]
pub enum LoginOutcome {
    /// A session was issued.
    Issued(Issued),
    /// Verify the user out of band, then call
    /// [`complete_challenge`](crate::Engine::complete_challenge).
    ChallengeRequired(Challenge),
    /// The profile requires a higher level at login: log in again with a stronger method.
    StepUpRequired {
        /// The level the profile requires.
        required: SecurityLevel,
        /// The level the offered method grants.
        offered: SecurityLevel,
    },
    /// No session, for this reason.
    Denied(DenyReason),
}

impl LoginOutcome {
    /// The issued session, if any.
    pub fn issued(self) -> Option<Issued> {
        match self {
            Self::Issued(issued) => Some(issued),
            _ => None,
        }
    }
}

/// A login attempt.
#[derive(Clone, Copy, Debug)]
pub struct LoginRequest<'a> {
    /// The user's id.
    pub user: &'a str,
    /// The client's address.
    pub ip: IpAddr,
    /// How the app verified the user.
    pub method: LoginMethod,
    /// UI, API or OAuth2.
    pub session_type: SessionType,
    /// A device identifier (e.g. a long-lived device cookie) that can be remembered after a
    /// challenge so that it is not challenged again. Stored only as a SHA-256 digest.
    pub device: Option<&'a str>,
}

impl<'a> LoginRequest<'a> {
    /// A UI login with a password, no device id.
    pub fn new(user: &'a str, ip: IpAddr) -> Self {
        Self {
            user,
            ip,
            method: LoginMethod::Password,
            session_type: SessionType::Ui,
            device: None,
        }
    }

    /// With this login method.
    pub fn method(mut self, method: LoginMethod) -> Self {
        self.method = method;
        self
    }

    /// With this session type.
    pub fn session_type(mut self, session_type: SessionType) -> Self {
        self.session_type = session_type;
        self
    }

    /// With this device id.
    pub fn device(mut self, device: &'a str) -> Self {
        self.device = Some(device);
        self
    }
}

/// Which sessions an admin listing shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// Only this user's sessions.
    pub user: Option<String>,
    /// Only sessions whose source IP is in this range (a single address is a /32 or /128).
    pub source: Option<ipnet::IpNet>,
    /// Only sessions created under this profile.
    pub profile: Option<String>,
    /// Only this session type.
    pub session_type: Option<SessionType>,
    /// Only this security level.
    pub level: Option<SecurityLevel>,
}

/// One page of the admin session list, ordered by handle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionPage {
    /// The rows of this page.
    pub rows: Vec<SessionRow>,
    /// How many sessions match the filter in all.
    pub total: usize,
    /// Pass as `after` to get the next page; `None` on the last page.
    pub next: Option<Handle>,
}
