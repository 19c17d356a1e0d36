//! The one error type of the core crate.

use std::fmt;
use std::path::PathBuf;

/// Why a settings change, an admin call or an input was refused. Nothing changed.
///
/// Messages are lowercase, name the offending field and value, and never contain a token: values
/// echoed back pass through [`redact_token_like`](crate::redact_token_like) (tokens, parts of
/// tokens and tokens glued to more text), then are shortened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A setting is outside its allowed range. Fix: pick a value inside `allowed`.
    OutOfRange {
        /// Setting name, e.g. `inactivity_timeout`.
        field: &'static str,
        /// The refused value, formatted.
        value: String,
        /// The allowed range, e.g. `15m..=24h`.
        allowed: &'static str,
    },
    /// A CIDR range did not parse. Fix: write it as `10.0.0.0/8` or `2001:db8::/32`.
    InvalidCidr {
        /// Setting or argument name.
        field: &'static str,
        /// The refused text (shortened).
        value: String,
    },
    /// An IP address did not parse. Fix: pass a bare IPv4 or IPv6 address.
    InvalidIp {
        /// The refused text (shortened).
        value: String,
    },
    /// A session handle did not parse. Fix: pass the `swh_...` handle shown in session listings.
    InvalidHandle {
        /// The refused text (shortened, tokens redacted).
        value: String,
    },
    /// A name or id is empty, too long or holds control characters. Fix: shorten it.
    InvalidName {
        /// Which argument.
        field: &'static str,
        /// The refused text (shortened).
        value: String,
        /// The rule it broke.
        allowed: &'static str,
    },
    /// No user with this id. Fix: `add_user` first.
    UnknownUser {
        /// The user id (shortened).
        user: String,
    },
    /// No profile with this name. Fix: `add_profile` first.
    UnknownProfile {
        /// The profile name (shortened).
        profile: String,
    },
    /// A user with this id already exists. Fix: `move_user` to change its profile.
    DuplicateUser {
        /// The user id.
        user: String,
    },
    /// A profile with this name already exists. Fix: `update_profile` to change it.
    DuplicateProfile {
        /// The profile name.
        profile: String,
    },
    /// The profile still has users. Fix: move or remove them first.
    ProfileInUse {
        /// The profile name.
        profile: String,
        /// How many users it has.
        users: usize,
    },
    /// The engine holds the maximum number of profiles (65,535).
    TooManyProfiles,
    /// The operating system's random number generator failed; no token could be made.
    Entropy,
    /// The session database could not be opened or created: the directory is missing or not
    /// writable, the path is not a file, or another process holds it open. Fix: point the
    /// engine at a writable path that no other engine uses.
    StoreOpen {
        /// The database file.
        path: PathBuf,
        /// What the operating system or the database said.
        reason: String,
    },
    /// The session database is damaged (a flipped byte, a truncated file) or is not a
    /// sessionward database. Nothing was loaded. Fix: restore the file from a backup, or move
    /// it aside to start empty (every user logs in again).
    StoreCorrupt {
        /// The database file.
        path: PathBuf,
        /// What was found wrong.
        reason: String,
    },
    /// The session database was written by a newer sessionward (a newer format version).
    /// Fix: run that version, or see `docs/durability.md` for the upgrade path.
    StoreVersion {
        /// The database file.
        path: PathBuf,
        /// The format version in the file.
        found: u64,
        /// The newest format version this build reads.
        supported: u64,
    },
    /// A write to the session database failed (disk full, I/O error). The change was not made
    /// durable; the store refuses later writes until the engine is reopened. Fix: free space or
    /// repair the disk, then restart.
    StoreWrite {
        /// The database file, or the store's address.
        path: PathBuf,
        /// What the database said.
        reason: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfRange {
                field,
                value,
                allowed,
            } => write!(f, "{field}: {value} is outside the allowed range {allowed}"),
            Self::InvalidCidr { field, value } => write!(
                f,
                "{field}: {value:?} is not an IPv4 or IPv6 CIDR range (e.g. 10.0.0.0/8)"
            ),
            Self::InvalidIp { value } => {
                write!(f, "ip: {value:?} is not an IPv4 or IPv6 address")
            }
            Self::InvalidHandle { value } => write!(
                f,
                "handle: {value:?} is not a session handle (swh_ + 16 hex digits)"
            ),
            Self::InvalidName {
                field,
                value,
                allowed,
            } => write!(f, "{field}: {value:?} is not allowed ({allowed})"),
            Self::UnknownUser { user } => write!(f, "user: no user {user:?}"),
            Self::UnknownProfile { profile } => write!(f, "profile: no profile {profile:?}"),
            Self::DuplicateUser { user } => write!(f, "user: {user:?} already exists"),
            Self::DuplicateProfile { profile } => {
                write!(f, "profile: {profile:?} already exists")
            }
            Self::ProfileInUse { profile, users } => write!(
                f,
                "profile: {profile:?} still has {users} user(s); move or remove them first"
            ),
            Self::TooManyProfiles => f.write_str("profile: the engine holds 65535 profiles"),
            Self::Entropy => f.write_str("token: the operating system's random source failed"),
            Self::StoreOpen { path, reason } => write!(
                f,
                "path: cannot open the session database {}: {reason}",
                path.display()
            ),
            Self::StoreCorrupt { path, reason } => write!(
                f,
                "path: the session database {} is corrupt: {reason}",
                path.display()
            ),
            Self::StoreVersion {
                path,
                found,
                supported,
            } => write!(
                f,
                "path: the session database {} has format version {found}, newer than the \
                 supported {supported}",
                path.display()
            ),
            Self::StoreWrite { path, reason } => write!(
                f,
                "path: writing the session database {} failed: {reason}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for Error {}

/// The form in which refused input is echoed back: anything token-like redacted (a token,
/// part of one, or one glued to more text: [`redact_token_like`](crate::redact_token_like),
/// before the cut, so the cut cannot turn a token into an unrecognised prefix), control
/// characters and every other character that `{:?}` would escape as `\u{...}` replaced (so
/// that the echo cannot blow one character up into a ten-byte escape, and terminals and log
/// lines stay intact), at most 64 characters.
pub(crate) fn shorten(text: &str) -> String {
    let redacted = crate::redact_token_like(text);
    // `escape_debug` is longer than two characters (`\n`, `\"`) only for `\u{...}` escapes.
    let mut chars = redacted.chars().map(|c| {
        if c.is_control() || c.escape_debug().count() > 2 {
            '\u{FFFD}'
        } else {
            c
        }
    });
    let mut short: String = chars.by_ref().take(64).collect();
    if chars.next().is_some() {
        short.push('…');
    }
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorten_caps_length_and_redacts() {
        let long = "x".repeat(1000);
        assert_eq!(shorten(&long).chars().count(), 65);
        let token = crate::Token::generate().unwrap();
        let echoed = shorten(&format!("bad {}", token.expose_secret()));
        assert!(!echoed.contains(&token.expose_secret()[4..]));
    }

    #[test]
    fn shorten_replaces_characters_debug_would_escape() {
        // Found by the `addresses` fuzz target: 64 unassigned code points (U+61019) are
        // echoed by `{:?}` as `\u{61019}` each, a 600-byte message.
        let echoed = shorten(&"\u{61019}".repeat(100));
        assert!(echoed.chars().take(64).all(|c| c == '\u{FFFD}'));
        let message = Error::InvalidCidr {
            field: "trusted_ranges",
            value: echoed,
        }
        .to_string();
        assert!(message.len() < 400, "{} bytes", message.len());
        assert_eq!(
            shorten("é ü 東京 \"x\""),
            "é ü 東京 \"x\"",
            "printable text is kept"
        );
    }

    #[test]
    fn shorten_replaces_control_characters() {
        // Found by the `addresses` fuzz target: 64 control characters echoed with `{:?}`
        // became a 400-byte message.
        let echoed = shorten(&"\u{19}".repeat(100));
        assert!(echoed.chars().all(|c| !c.is_control()));
        let message = Error::InvalidIp { value: echoed }.to_string();
        assert!(message.len() < 300, "{} bytes", message.len());
    }
}
