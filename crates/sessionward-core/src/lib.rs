//! # sessionward-core
//!
//! The engine of sessionward, an org-wide session authority: it issues server-side session IDs
//! (bearer tokens), validates them on every request and enforces the org's session policy:
//! inactivity and absolute timeouts, re-login on browser close, sessions locked to their origin
//! IP, high-assurance operations and step-up, per-profile overrides and login IP ranges, trusted
//! ranges that skip the verification challenge, concurrent-session caps, and admin ends (one
//! session, a user's, a profile's, the org's, a network range's).
//!
//! ## Quickstart
//!
//! ```
//! use sessionward_core::*;
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! let clock = ManualClock::new(1_700_000_000);
//! let settings = OrgSettings::builder()
//!     .inactivity_timeout(Duration::from_secs(30 * 60))
//!     .trusted_range("10.0.0.0/8")
//!     .high_assurance_operation("setup")
//!     .build()?;
//! let engine = Engine::builder().settings(settings).clock(Arc::new(clock.clone())).build()?;
//! engine.add_profile(Profile::builder("staff").build()?)?;
//! engine.add_user("ada", "staff")?;
//!
//! let office = "10.1.2.3".parse()?;
//! let issued = engine.login(&LoginRequest::new("ada", office))?.issued().expect("trusted range");
//! let token = issued.token.expose_secret();
//!
//! assert!(engine.validate(token, office, Requirement::Any).is_ok());
//! // A sensitive operation needs HIGH_ASSURANCE: step up with MFA first.
//! assert!(matches!(
//!     engine.validate(token, office, Requirement::Operation("setup")),
//!     Err(Refusal::StepUpRequired { .. })
//! ));
//! engine.step_up(token, office, LoginMethod::Mfa)?;
//! assert!(engine.validate(token, office, Requirement::Operation("setup")).is_ok());
//!
//! // Thirty idle minutes later the session is gone, and the refusal says why.
//! clock.advance(Duration::from_secs(30 * 60));
//! assert_eq!(
//!     engine.validate(token, office, Requirement::Any),
//!     Err(Refusal::Expired(ExpiryKind::Idle))
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Semantics
//!
//! - **Snapshots.** A session snapshots its inactivity timeout, maximum length, IP lock and
//!   browser binding at creation: tightening a policy changes only sessions created afterwards.
//!   High-assurance operations and "enforce login IP ranges on every request" are evaluated
//!   against the current settings on every validation. To force a new policy on everyone now,
//!   end the affected sessions.
//! - **Time** is whole seconds from an injected [`Clock`]. A session is valid while
//!   `now < min(last_activity + inactivity_timeout, created + max_length)`; only a successful
//!   validation refreshes last activity.
//! - **Ends take effect before the call returns**: the next validation anywhere fails with
//!   [`Refusal::Ended`] and its [`EndReason`]. Ended and expired sessions are kept as tombstones
//!   for the engine's retention (1 h by default), so refusals can say why; after that the token
//!   is simply unknown.
//!
//! ## Concurrency model and why it is fast
//!
//! The table is split into 256 cache-padded shards, each a `parking_lot::RwLock` around an
//! open-addressing Robin Hood table whose 76-byte records are stored inline. A validation
//! checks the token's shape and CRC32, hashes it with SHA-256 (the table stores only digests),
//! takes one shard read lock picked by the digest, compares one or two records, and refreshes
//! last activity with a relaxed atomic store (skipped when the second has not changed). No
//! global lock, no allocation. Ends flip an atomic state byte under a read lock, so they never
//! block validations; creates and sweeps take one shard's write lock at a time. See the
//! `engine` module source for the lock order.
//!
//! ## Bearer-token discipline
//!
//! Tokens are `swd_` + an 11-character base62 selector (64 bits) + 43 base62 characters of
//! secret (256 bits; both from ChaCha20 seeded by the OS, reseeded in a forked child) + a
//! 6-character base62 CRC32: 64 characters. The selector picks the session's slot and is its
//! public handle; the table keeps a SHA-256 prefix of the random part, never the secret. [`Token`]'s `Debug` and `Display` are
//! redacted; errors, events and listings carry only the public [`Handle`].
// `unsafe` is denied everywhere but in `prefetch`, whose module documentation justifies it.
#![deny(unsafe_code)]

mod clock;
mod engine;
mod error;
mod events;
mod oauth;
mod prefetch;
mod session;
mod settings;
mod store;
mod table;
mod token;

/// The threat model: which attacks the design stops, which it leaves to the application, and
/// the tests behind each claim (the repository's `SECURITY.md`).
#[doc = include_str!("../../../SECURITY.md")]
pub mod threat_model {}

/// The README's Rust quickstart, compiled and run as a doctest.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

pub use clock::{Clock, ManualClock, SystemClock};
pub use engine::{
    Engine, EngineBuilder, SweepStats, TableStats, CHALLENGE_LIFETIME,
    DEFAULT_ACTIVITY_FLUSH_INTERVAL, MAX_PAGE_SIZE,
};
pub use error::Error;
pub use events::{Event, EventKind, EventListener};
pub use ipnet::IpNet;
pub use oauth::{Grant, GrantError, OAuthClient, OAuthClients};
pub use session::{
    Challenge, DenyReason, EndReason, ExpiryKind, Issued, LoginOutcome, LoginRequest, ProfileKey,
    Refusal, Requirement, SessionFilter, SessionInfo, SessionPage, SessionRow, UserKey,
};
pub use settings::{
    parse_cidr, parse_ip, CapAction, LoginMethod, OrgSettings, OrgSettingsBuilder, Profile,
    ProfileBuilder, SecurityLevel, SessionCap, SessionType, INACTIVITY_TIMEOUT_RANGE, MAX_NAME_LEN,
    MAX_RANGES, MAX_SESSION_LENGTH_RANGE, SESSION_CAP_RANGE,
};
pub use store::{
    RedbStore, SessionStore, StoreChange, StoredSession, StoredState, StoredUser, FORMAT_VERSION,
};
pub use token::{
    is_well_formed, redact_tokens, token_key, Handle, Token, KEY_LEN, TOKEN_LEN, TOKEN_PREFIX,
};
