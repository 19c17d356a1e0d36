//! The policy model: org settings and profiles, validated on construction and immutable after.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;

use crate::Error;

/// Allowed inactivity (idle) timeouts, org-wide or per profile.
pub const INACTIVITY_TIMEOUT_RANGE: RangeInclusive<Duration> =
    Duration::from_secs(15 * 60)..=Duration::from_secs(24 * 3600);
/// Allowed maximum session lengths (absolute timeouts), org-wide or per profile.
pub const MAX_SESSION_LENGTH_RANGE: RangeInclusive<Duration> =
    Duration::from_secs(3600)..=Duration::from_secs(24 * 3600);
/// Allowed caps on concurrent sessions per user.
pub const SESSION_CAP_RANGE: RangeInclusive<u32> = 1..=1000;
/// Most login or trusted ranges one setting may hold.
pub const MAX_RANGES: usize = 1024;
/// Longest user id, profile name or operation name, in bytes.
pub const MAX_NAME_LEN: usize = 256;

const INACTIVITY_ALLOWED: &str = "15m..=24h";
const MAX_LENGTH_ALLOWED: &str = "1h..=24h";

/// How much a session is trusted; operations can require a minimum level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SecurityLevel {
    /// API-only sessions (e.g. OAuth client credentials): never enough for a UI operation that
    /// needs more.
    Low = 0,
    /// A password, SSO or delegated login.
    Standard = 1,
    /// A login or step-up with MFA or a passkey.
    HighAssurance = 2,
}

impl SecurityLevel {
    /// Upper-case name as used by the reference platform (`HIGH_ASSURANCE`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "LOW",
            Self::Standard => "STANDARD",
            Self::HighAssurance => "HIGH_ASSURANCE",
        }
    }

    pub(crate) fn from_u8(value: u8) -> Self {
        match value {
            0 => Self::Low,
            1 => Self::Standard,
            _ => Self::HighAssurance,
        }
    }
}

impl fmt::Display for SecurityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the user proved who they are at login or step-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LoginMethod {
    /// Username and password.
    Password = 0,
    /// Single sign-on from an identity provider.
    Sso = 1,
    /// Delegated authentication (the org calls out to verify the password).
    Delegated = 2,
    /// A login with a second factor.
    Mfa = 3,
    /// A passkey (WebAuthn).
    Passkey = 4,
    /// The OAuth 2.0 client-credentials grant (an integration, no person).
    ClientCredentials = 5,
}

impl LoginMethod {
    /// Every method, in declaration order.
    pub const ALL: [Self; 6] = [
        Self::Password,
        Self::Sso,
        Self::Delegated,
        Self::Mfa,
        Self::Passkey,
        Self::ClientCredentials,
    ];

    /// Lowercase name (`password`, `sso`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Sso => "sso",
            Self::Delegated => "delegated",
            Self::Mfa => "mfa",
            Self::Passkey => "passkey",
            Self::ClientCredentials => "client_credentials",
        }
    }

    pub(crate) fn from_u8(value: u8) -> Self {
        Self::ALL
            .get(usize::from(value))
            .copied()
            .unwrap_or(Self::Password)
    }
}

impl fmt::Display for LoginMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of client holds the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SessionType {
    /// A browser (cookie) session.
    Ui = 0,
    /// An API client with a bearer header.
    Api = 1,
    /// A token granted through OAuth 2.0.
    OAuth2 = 2,
}

impl SessionType {
    /// Upper-case name (`UI`, `API`, `OAUTH2`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ui => "UI",
            Self::Api => "API",
            Self::OAuth2 => "OAUTH2",
        }
    }

    pub(crate) fn from_u8(value: u8) -> Self {
        match value {
            0 => Self::Ui,
            1 => Self::Api,
            _ => Self::OAuth2,
        }
    }
}

impl fmt::Display for SessionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens when a user at their concurrent-session cap logs in again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CapAction {
    /// End the user's oldest session (reason [`EndReason::SessionCap`](crate::EndReason::SessionCap)).
    EndOldest,
    /// Refuse the new login ([`DenyReason::SessionCap`](crate::DenyReason::SessionCap)).
    RefuseNew,
}

/// A cap on concurrent sessions per user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionCap {
    /// Most live sessions one user may hold (1..=1000).
    pub max_sessions: u32,
    /// What a login past the cap does.
    pub action: CapAction,
}

/// Org-wide session settings. Build with [`OrgSettings::builder`]; immutable once built.
///
/// # Examples
///
/// ```
/// use sessionward_core::{OrgSettings, Error};
/// use std::time::Duration;
///
/// let settings = OrgSettings::builder()
///     .inactivity_timeout(Duration::from_secs(30 * 60))
///     .trusted_range("10.0.0.0/8")
///     .high_assurance_operation("setup")
///     .build()?;
/// assert_eq!(settings.inactivity_timeout(), Duration::from_secs(1800));
///
/// let refused = OrgSettings::builder().inactivity_timeout(Duration::from_secs(14 * 60)).build();
/// assert_eq!(
///     refused.unwrap_err().to_string(),
///     "inactivity_timeout: 14m is outside the allowed range 15m..=24h"
/// );
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgSettings {
    inactivity_timeout: Duration,
    max_session_length: Duration,
    force_relogin_on_browser_close: bool,
    lock_sessions_to_ip: bool,
    enforce_login_ranges_every_request: bool,
    trusted_ranges: Vec<IpNet>,
    high_assurance_operations: BTreeSet<String>,
    method_levels: [SecurityLevel; 6],
}

impl Default for OrgSettings {
    fn default() -> Self {
        Self {
            inactivity_timeout: Duration::from_secs(2 * 3600),
            max_session_length: Duration::from_secs(12 * 3600),
            force_relogin_on_browser_close: false,
            lock_sessions_to_ip: false,
            enforce_login_ranges_every_request: false,
            trusted_ranges: Vec::new(),
            high_assurance_operations: BTreeSet::new(),
            method_levels: [
                SecurityLevel::Standard,
                SecurityLevel::Standard,
                SecurityLevel::Standard,
                SecurityLevel::HighAssurance,
                SecurityLevel::HighAssurance,
                SecurityLevel::Low,
            ],
        }
    }
}

impl OrgSettings {
    /// A builder starting from the defaults: 2 h inactivity, 12 h maximum length, no IP lock,
    /// no browser binding, no trusted ranges, no high-assurance operations, and the default
    /// method levels (password/SSO/delegated STANDARD, MFA/passkey HIGH_ASSURANCE, client
    /// credentials LOW).
    pub fn builder() -> OrgSettingsBuilder {
        OrgSettingsBuilder::from(Self::default())
    }

    /// A builder starting from these settings, to change a few of them.
    pub fn to_builder(&self) -> OrgSettingsBuilder {
        OrgSettingsBuilder::from(self.clone())
    }

    /// Sessions end after this long without a successful validation.
    pub fn inactivity_timeout(&self) -> Duration {
        self.inactivity_timeout
    }
    /// Sessions end this long after login, whatever the activity.
    pub fn max_session_length(&self) -> Duration {
        self.max_session_length
    }
    /// New UI sessions are browser-bound: closing the browser ends them.
    pub fn force_relogin_on_browser_close(&self) -> bool {
        self.force_relogin_on_browser_close
    }
    /// New sessions are locked to the IP address they logged in from.
    pub fn lock_sessions_to_ip(&self) -> bool {
        self.lock_sessions_to_ip
    }
    /// Every validation checks the source IP against the session's profile login ranges.
    pub fn enforce_login_ranges_every_request(&self) -> bool {
        self.enforce_login_ranges_every_request
    }
    /// Logins from inside these ranges skip the verification challenge.
    pub fn trusted_ranges(&self) -> &[IpNet] {
        &self.trusted_ranges
    }
    /// Operations that need a HIGH_ASSURANCE session.
    pub fn high_assurance_operations(&self) -> &BTreeSet<String> {
        &self.high_assurance_operations
    }
    /// The security level a login or step-up with `method` grants.
    pub fn level_for(&self, method: LoginMethod) -> SecurityLevel {
        self.method_levels[method as usize]
    }
}

/// Builder of [`OrgSettings`]; [`build`](Self::build) checks every value.
#[must_use]
#[derive(Clone, Debug)]
pub struct OrgSettingsBuilder {
    settings: OrgSettings,
    trusted_texts: Vec<String>,
    operation_texts: Vec<String>,
}

impl From<OrgSettings> for OrgSettingsBuilder {
    fn from(settings: OrgSettings) -> Self {
        Self {
            settings,
            trusted_texts: Vec::new(),
            operation_texts: Vec::new(),
        }
    }
}

impl OrgSettingsBuilder {
    /// Inactivity timeout, 15 min ..= 24 h.
    pub fn inactivity_timeout(mut self, timeout: Duration) -> Self {
        self.settings.inactivity_timeout = timeout;
        self
    }
    /// Maximum session length, 1 h ..= 24 h.
    pub fn max_session_length(mut self, length: Duration) -> Self {
        self.settings.max_session_length = length;
        self
    }
    /// Force re-login after the browser closes (new UI sessions are browser-bound).
    pub fn force_relogin_on_browser_close(mut self, on: bool) -> Self {
        self.settings.force_relogin_on_browser_close = on;
        self
    }
    /// Lock new sessions to the IP address they started from.
    pub fn lock_sessions_to_ip(mut self, on: bool) -> Self {
        self.settings.lock_sessions_to_ip = on;
        self
    }
    /// Check profile login ranges on every request, not only at login.
    pub fn enforce_login_ranges_every_request(mut self, on: bool) -> Self {
        self.settings.enforce_login_ranges_every_request = on;
        self
    }
    /// Adds a trusted range given as text (`10.0.0.0/8`); parsed by `build`.
    pub fn trusted_range(mut self, cidr: impl Into<String>) -> Self {
        self.trusted_texts.push(cidr.into());
        self
    }
    /// Replaces the trusted ranges.
    pub fn trusted_ranges(mut self, ranges: impl IntoIterator<Item = IpNet>) -> Self {
        self.settings.trusted_ranges = ranges.into_iter().collect();
        self.trusted_texts.clear();
        self
    }
    /// Adds an operation that requires a HIGH_ASSURANCE session.
    pub fn high_assurance_operation(mut self, operation: impl Into<String>) -> Self {
        self.operation_texts.push(operation.into());
        self
    }
    /// Removes every high-assurance operation (before adding new ones).
    pub fn clear_high_assurance_operations(mut self) -> Self {
        self.settings.high_assurance_operations.clear();
        self.operation_texts.clear();
        self
    }
    /// Sets the level a login method grants.
    pub fn method_level(mut self, method: LoginMethod, level: SecurityLevel) -> Self {
        self.settings.method_levels[method as usize] = level;
        self
    }

    /// Checks every value and returns the settings, or the first error naming field, value and
    /// allowed range.
    pub fn build(self) -> Result<OrgSettings, Error> {
        let Self {
            mut settings,
            trusted_texts,
            operation_texts,
        } = self;
        check_duration(
            "inactivity_timeout",
            settings.inactivity_timeout,
            &INACTIVITY_TIMEOUT_RANGE,
            INACTIVITY_ALLOWED,
        )?;
        check_duration(
            "max_session_length",
            settings.max_session_length,
            &MAX_SESSION_LENGTH_RANGE,
            MAX_LENGTH_ALLOWED,
        )?;
        for text in &trusted_texts {
            settings
                .trusted_ranges
                .push(parse_cidr("trusted_ranges", text)?);
        }
        settings.trusted_ranges = normalize_ranges("trusted_ranges", settings.trusted_ranges)?;
        for operation in operation_texts {
            check_name("high_assurance_operations", &operation)?;
            settings.high_assurance_operations.insert(operation);
        }
        Ok(settings)
    }
}

/// A profile: the group of users that share login rules and stricter overrides.
///
/// # Examples
///
/// ```
/// use sessionward_core::{Profile, SecurityLevel, CapAction};
/// use std::time::Duration;
///
/// let admins = Profile::builder("admins")
///     .session_timeout(Duration::from_secs(15 * 60))
///     .login_range("203.0.113.0/24")
///     .required_level(SecurityLevel::HighAssurance)
///     .session_cap(3, CapAction::EndOldest)
///     .build()?;
/// assert_eq!(admins.name(), "admins");
/// # Ok::<(), sessionward_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    name: String,
    session_timeout: Option<Duration>,
    max_session_length: Option<Duration>,
    login_ranges: Vec<IpNet>,
    required_level: SecurityLevel,
    session_cap: Option<SessionCap>,
}

impl Profile {
    /// A builder for a profile named `name` (1..=256 bytes, no control characters).
    pub fn builder(name: impl Into<String>) -> ProfileBuilder {
        ProfileBuilder {
            profile: Self {
                name: name.into(),
                session_timeout: None,
                max_session_length: None,
                login_ranges: Vec::new(),
                required_level: SecurityLevel::Standard,
                session_cap: None,
            },
            range_texts: Vec::new(),
            cap: None,
        }
    }

    /// A builder starting from this profile, to change a few settings.
    pub fn to_builder(&self) -> ProfileBuilder {
        ProfileBuilder {
            profile: self.clone(),
            range_texts: Vec::new(),
            cap: None,
        }
    }

    /// The profile's unique name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Inactivity timeout overriding the org's, if set.
    pub fn session_timeout(&self) -> Option<Duration> {
        self.session_timeout
    }
    /// Maximum session length overriding the org's, if set.
    pub fn max_session_length(&self) -> Option<Duration> {
        self.max_session_length
    }
    /// Where the profile's users may log in from; empty means anywhere.
    pub fn login_ranges(&self) -> &[IpNet] {
        &self.login_ranges
    }
    /// The level a login must reach to get a session directly.
    pub fn required_level(&self) -> SecurityLevel {
        self.required_level
    }
    /// The cap on concurrent sessions per user, if any.
    pub fn session_cap(&self) -> Option<SessionCap> {
        self.session_cap
    }

    /// Whether `ip` may log in (or, when enforced, make requests) under this profile.
    pub fn allows(&self, ip: std::net::IpAddr) -> bool {
        self.login_ranges.is_empty() || self.login_ranges.iter().any(|net| net.contains(&ip))
    }
}

/// Builder of [`Profile`]; [`build`](Self::build) checks every value.
#[must_use]
#[derive(Clone, Debug)]
pub struct ProfileBuilder {
    profile: Profile,
    range_texts: Vec<String>,
    cap: Option<(u32, CapAction)>,
}

impl ProfileBuilder {
    /// Inactivity timeout for this profile's new sessions, 15 min ..= 24 h.
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.profile.session_timeout = Some(timeout);
        self
    }
    /// Use the org's inactivity timeout.
    pub fn no_session_timeout(mut self) -> Self {
        self.profile.session_timeout = None;
        self
    }
    /// Maximum length for this profile's new sessions, 1 h ..= 24 h.
    pub fn max_session_length(mut self, length: Duration) -> Self {
        self.profile.max_session_length = Some(length);
        self
    }
    /// Use the org's maximum session length.
    pub fn no_max_session_length(mut self) -> Self {
        self.profile.max_session_length = None;
        self
    }
    /// Adds a login range given as text; parsed by `build`.
    pub fn login_range(mut self, cidr: impl Into<String>) -> Self {
        self.range_texts.push(cidr.into());
        self
    }
    /// Replaces the login ranges (empty = anywhere).
    pub fn login_ranges(mut self, ranges: impl IntoIterator<Item = IpNet>) -> Self {
        self.profile.login_ranges = ranges.into_iter().collect();
        self.range_texts.clear();
        self
    }
    /// The level a login must reach (STANDARD or HIGH_ASSURANCE).
    pub fn required_level(mut self, level: SecurityLevel) -> Self {
        self.profile.required_level = level;
        self
    }
    /// Caps concurrent sessions per user (1..=1000).
    pub fn session_cap(mut self, max_sessions: u32, action: CapAction) -> Self {
        self.cap = Some((max_sessions, action));
        self
    }
    /// Removes the cap on concurrent sessions.
    pub fn no_session_cap(mut self) -> Self {
        self.cap = None;
        self.profile.session_cap = None;
        self
    }

    /// Checks every value and returns the profile.
    pub fn build(self) -> Result<Profile, Error> {
        let Self {
            mut profile,
            range_texts,
            cap,
        } = self;
        check_name("profile", &profile.name)?;
        if let Some(timeout) = profile.session_timeout {
            check_duration(
                "session_timeout",
                timeout,
                &INACTIVITY_TIMEOUT_RANGE,
                INACTIVITY_ALLOWED,
            )?;
        }
        if let Some(length) = profile.max_session_length {
            check_duration(
                "max_session_length",
                length,
                &MAX_SESSION_LENGTH_RANGE,
                MAX_LENGTH_ALLOWED,
            )?;
        }
        for text in &range_texts {
            profile.login_ranges.push(parse_cidr("login_ranges", text)?);
        }
        profile.login_ranges = normalize_ranges("login_ranges", profile.login_ranges)?;
        if profile.required_level == SecurityLevel::Low {
            return Err(Error::OutOfRange {
                field: "required_level",
                value: "LOW".into(),
                allowed: "STANDARD or HIGH_ASSURANCE",
            });
        }
        if let Some((max_sessions, action)) = cap {
            if !SESSION_CAP_RANGE.contains(&max_sessions) {
                return Err(Error::OutOfRange {
                    field: "max_sessions_per_user",
                    value: max_sessions.to_string(),
                    allowed: "1..=1000",
                });
            }
            profile.session_cap = Some(SessionCap {
                max_sessions,
                action,
            });
        }
        Ok(profile)
    }
}

/// Parses an IPv4 or IPv6 CIDR (host bits are cleared), or an error naming `field`.
///
/// # Examples
///
/// ```
/// let net = sessionward_core::parse_cidr("ranges", "10.1.2.3/8").unwrap();
/// assert_eq!(net.to_string(), "10.0.0.0/8");
/// assert!(sessionward_core::parse_cidr("ranges", "10.0.0.0/33").is_err());
/// ```
pub fn parse_cidr(field: &'static str, text: &str) -> Result<IpNet, Error> {
    let invalid = || Error::InvalidCidr {
        field,
        value: crate::error::shorten(text),
    };
    if text.len() > 64 {
        return Err(invalid());
    }
    let net = IpNet::from_str(text.trim()).map_err(|_| invalid())?;
    Ok(canonical_net(net))
}

/// Parses an IP address; IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) become IPv4 and zone ids
/// are refused.
///
/// # Examples
///
/// ```
/// let ip = sessionward_core::parse_ip("::ffff:10.0.0.1").unwrap();
/// assert_eq!(ip.to_string(), "10.0.0.1");
/// ```
pub fn parse_ip(text: &str) -> Result<std::net::IpAddr, Error> {
    if text.len() > 64 {
        return Err(Error::InvalidIp {
            value: crate::error::shorten(text),
        });
    }
    std::net::IpAddr::from_str(text)
        .map(|ip| ip.to_canonical())
        .map_err(|_| Error::InvalidIp {
            value: crate::error::shorten(text),
        })
}

/// IPv4-mapped IPv6 networks (`::ffff:10.0.0.0/104`) become their IPv4 form, so that ranges and
/// addresses compare in one family. Every range the engine compares origins with goes through
/// here: settings, profiles, the listing's filter and range ends.
pub(crate) fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net {
        if let Some(v4) = v6.addr().to_ipv4_mapped() {
            if v6.prefix_len() >= 96 {
                if let Ok(mapped) = ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96) {
                    return IpNet::V4(mapped.trunc());
                }
            }
        }
    }
    net.trunc()
}

fn normalize_ranges(field: &'static str, ranges: Vec<IpNet>) -> Result<Vec<IpNet>, Error> {
    if ranges.len() > MAX_RANGES {
        return Err(Error::OutOfRange {
            field,
            value: format!("{} ranges", ranges.len()),
            allowed: "at most 1024 ranges",
        });
    }
    let mut ranges: Vec<IpNet> = ranges.into_iter().map(canonical_net).collect();
    ranges.sort();
    ranges.dedup();
    Ok(ranges)
}

pub(crate) fn check_name(field: &'static str, name: &str) -> Result<(), Error> {
    if name.is_empty() || name.len() > MAX_NAME_LEN || name.chars().any(char::is_control) {
        return Err(Error::InvalidName {
            field,
            value: crate::error::shorten(name),
            allowed: "1 to 256 bytes, no control characters",
        });
    }
    Ok(())
}

fn check_duration(
    field: &'static str,
    value: Duration,
    range: &RangeInclusive<Duration>,
    allowed: &'static str,
) -> Result<(), Error> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(Error::OutOfRange {
            field,
            value: format_duration(value),
            allowed,
        })
    }
}

/// `14m`, `24h 1m`, `90s`, `1h 0m 5s`: the form settings errors use.
pub(crate) fn format_duration(value: Duration) -> String {
    let total = value.as_secs();
    let (hours, minutes, seconds) = (total / 3600, total / 60 % 60, total % 60);
    let subsecond = value.subsec_nanos() != 0;
    let mut text = String::new();
    if hours > 0 {
        text.push_str(&format!("{hours}h"));
    }
    if minutes > 0 || (hours > 0 && seconds > 0) {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&format!("{minutes}m"));
    }
    if seconds > 0 || text.is_empty() || subsecond {
        if !text.is_empty() {
            text.push(' ');
        }
        if subsecond {
            text.push_str(&format!(
                "{}s",
                seconds as f64 + f64::from(value.subsec_nanos()) / 1e9
            ));
        } else {
            text.push_str(&format!("{seconds}s"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60;
    const HOUR: u64 = 3600;

    fn org_idle(secs: u64) -> Result<OrgSettings, Error> {
        OrgSettings::builder()
            .inactivity_timeout(Duration::from_secs(secs))
            .build()
    }

    #[test]
    fn inactivity_timeout_boundaries() {
        let err = org_idle(14 * MIN).unwrap_err();
        assert_eq!(
            err.to_string(),
            "inactivity_timeout: 14m is outside the allowed range 15m..=24h"
        );
        assert!(org_idle(15 * MIN).is_ok());
        assert!(org_idle(24 * HOUR).is_ok());
        let err = org_idle(24 * HOUR + MIN).unwrap_err();
        assert_eq!(
            err.to_string(),
            "inactivity_timeout: 24h 1m is outside the allowed range 15m..=24h"
        );
        assert!(org_idle(15 * MIN - 1).is_err());
    }

    #[test]
    fn max_length_boundaries() {
        let build = |secs| {
            OrgSettings::builder()
                .max_session_length(Duration::from_secs(secs))
                .build()
        };
        assert!(matches!(
            build(59 * MIN),
            Err(Error::OutOfRange {
                field: "max_session_length",
                ..
            })
        ));
        assert!(build(HOUR).is_ok());
        assert!(build(24 * HOUR).is_ok());
        assert!(build(24 * HOUR + MIN).is_err());
    }

    #[test]
    fn profile_override_boundaries() {
        let with_timeout = |secs| {
            Profile::builder("p")
                .session_timeout(Duration::from_secs(secs))
                .build()
        };
        assert!(with_timeout(14 * MIN)
            .unwrap_err()
            .to_string()
            .starts_with("session_timeout: 14m"));
        assert!(with_timeout(15 * MIN).is_ok());
        assert!(with_timeout(24 * HOUR).is_ok());
        assert!(with_timeout(24 * HOUR + MIN).is_err());
        let with_length = |secs| {
            Profile::builder("p")
                .max_session_length(Duration::from_secs(secs))
                .build()
        };
        assert!(with_length(HOUR - MIN).is_err());
        assert!(with_length(HOUR).is_ok());
        assert!(with_length(24 * HOUR).is_ok());
        assert!(with_length(24 * HOUR + MIN).is_err());
    }

    #[test]
    fn cidrs_are_parsed_normalized_and_refused_when_malformed() {
        let settings = OrgSettings::builder()
            .trusted_range("10.1.2.3/8")
            .trusted_range("::ffff:192.168.0.0/112")
            .trusted_range("2001:db8::/32")
            .build()
            .unwrap();
        let shown: Vec<String> = settings
            .trusted_ranges()
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(shown, ["10.0.0.0/8", "192.168.0.0/16", "2001:db8::/32"]);
        for bad in [
            "10.0.0.0/33",
            "10.0.0/8",
            "",
            "banana",
            "10.0.0.0/8/8",
            "fe80::1%eth0/64",
        ] {
            let err = OrgSettings::builder()
                .trusted_range(bad)
                .build()
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InvalidCidr {
                        field: "trusted_ranges",
                        ..
                    }
                ),
                "{bad:?} gave {err:?}"
            );
        }
    }

    #[test]
    fn ips_canonicalize_mapped_and_refuse_zones() {
        assert_eq!(parse_ip("::ffff:10.0.0.1").unwrap().to_string(), "10.0.0.1");
        assert!(parse_ip("fe80::1%eth0").is_err());
        assert!(
            parse_ip("010.0.0.1").is_err(),
            "leading zeros are ambiguous (octal)"
        );
        assert!(parse_ip(&"1".repeat(10_000)).is_err());
    }

    #[test]
    fn profile_rules() {
        assert!(Profile::builder("").build().is_err());
        assert!(Profile::builder("x".repeat(257)).build().is_err());
        assert!(Profile::builder("a\nb").build().is_err());
        assert!(Profile::builder("p")
            .required_level(SecurityLevel::Low)
            .build()
            .is_err());
        assert!(Profile::builder("p")
            .session_cap(0, CapAction::RefuseNew)
            .build()
            .is_err());
        assert!(Profile::builder("p")
            .session_cap(1001, CapAction::RefuseNew)
            .build()
            .is_err());
        let p = Profile::builder("p")
            .session_cap(1000, CapAction::RefuseNew)
            .login_range("10.0.0.0/8")
            .build()
            .unwrap();
        assert!(p.allows("10.9.9.9".parse().unwrap()));
        assert!(!p.allows("11.0.0.1".parse().unwrap()));
    }

    #[test]
    fn durations_format_readably() {
        assert_eq!(format_duration(Duration::from_secs(14 * 60)), "14m");
        assert_eq!(
            format_duration(Duration::from_secs(24 * 3600 + 60)),
            "24h 1m"
        );
        assert_eq!(format_duration(Duration::from_secs(90)), "1m 30s");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h");
    }
}
