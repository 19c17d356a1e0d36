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
//! ## How it is fast
//!
//! **Layout of a record.** The table is split into 256 cache-padded shards (`Engine::builder()
//! .shards(n)` for another power of two), each a `parking_lot::RwLock` around one
//! open-addressing Robin Hood table whose records live inline in one array: no node
//! allocations, no pointers to chase. A record is one 64-byte cache line, aligned to one:
//!
//! | bytes | field |
//! | --- | --- |
//! | 8 | selector: the probe hash and the public handle |
//! | 16 | first 128 bits of SHA-256 over the token's random characters |
//! | 16 | origin address (IPv4 as IPv4-mapped IPv6) |
//! | 4 × 5 | last activity (atomic), created, absolute deadline, idle timeout, user key |
//! | 2 + 2 | profile key; state (atomic: end reason, level, expiry reported), type/method/flags |
//!
//! Timeouts and flags are snapshotted into the record, so a validation never reads the
//! directory of users and profiles. The capacity grows by half at 7/8 load (the home slot is
//! `hash × capacity >> 64`, so any capacity works), and per-user handle lists grow by a quarter:
//! about 95 bytes per live session at 1 M (RSS growth of a fresh process), index of each
//! user's sessions included.
//!
//! **Huge pages.** At 1 M sessions a validation's cost is one random memory access, and with
//! 4 KiB pages that access also misses the TLB (a nested page walk under a hypervisor). So the
//! tables of all shards at one capacity share one allocation advised for 2 MiB pages
//! (`madvise(MADV_HUGEPAGE)` on Linux), each table owning one part; a growing table moves to
//! the first free part of the next such generation. Each shard still has its own lock and grows on its
//! own (only its records are rehashed under its write lock). See the `raw::slots` module source
//! for the design and why its `unsafe` is sound.
//!
//! **Records at home.** The selector is public (it is the session's handle), so the engine
//! is free to choose it. A login derives eight candidate selectors from one random draw, all
//! in one shard, and takes the first whose home slot is free (else the first whose next slot
//! is): the record then sits at its home, and no other record moves for it. Filled with
//! random selectors, a Robin Hood table near 7/8 load keeps under half of its records at
//! home and a third or more beyond the next slot; filled this way, nine in ten sit at home
//! and all but a few in a thousand within the next slot, through every growth (a capacity 1.5x
//! the last maps each old slot to one or two new ones, so records at home mostly stay
//! there). The secret, which is the token's strength, is drawn independently of the
//! choice. [`TableStats::at_home`] counts them.
//!
//! **What the hot path touches.** A token is `swd_` + a 64-bit selector + a 256-bit secret + a
//! CRC32. [`Engine::validate`]:
//! 1. decodes the 11-character selector (no table access yet) and issues a software prefetch
//!    of its home slot's line and the next (where nearly every record sits, see above),
//!    through a lock-free hint of where the shard's slots are;
//! 2. checks the shape and CRC32, prefetches the shard's lock line for writing (the other
//!    core may hold it), and computes SHA-256 over one 64-byte block (SHA-NI where the CPU
//!    has it) *while those lines are on their way*: on a table larger than the caches the
//!    miss (~180 ns here, with huge pages) is the dominant cost, and this hides most of the
//!    hashing and checking under it;
//! 3. takes the shard's read lock (one atomic add), finds the record at its home slot or
//!    the next (lines already in the cache or on their way), checks state, expiry, IP lock,
//!    per-request login ranges and the operation's level against a copy of the validation
//!    policy kept inside the shard, and
//!    refreshes last activity with a relaxed store, skipped when the second has not changed;
//!    it copies the record's fields out and builds the result after releasing the lock.
//!
//! Two of those steps are shaped for the CPU's store buffer: the SHA-256 block is assembled
//! from whole 16-byte words of the token (the padded last one in a vector register), and the
//! result is built after the unlock, where the compiler writes it in place. Built byte by byte
//! and then read back 16 bytes at a time, each stalled its reader until the stores reached the
//! cache (no store-to-load forwarding), which cost a validation in cache about 15 %; the last
//! word, built as a `u128` and stored in two halves, another 2-12 %.
//!
//! All of it is inlined into the caller (`#[inline(always)]`; the events of refusals stay out
//! of line), so a caller builds only the facts it reads, and a loop of single calls can start
//! the next token's miss while this one's is on its way. Left to the compiler, inlining came
//! and went with unrelated code, and with it a third of single-call throughput at 1 M
//! sessions (the README's "Always inlined").
//!
//! One lock word, one or two record lines, no allocation, no global state.
//! [`Engine::validate_many`] is a software pipeline over groups of four tokens: it checks
//! the next group's tokens (shape and CRC32) and requests their lines (step 1's and the lock
//! line) before steps 2-3 for this one, so the misses of the next tokens overlap with the
//! hashing of these; checking before requesting costs a group ahead nothing, and a malformed
//! token then requests no line at all. It hashes its tokens two at a time with the two
//! SHA-256 compressions' rounds interleaved: a compression is a chain of dependent round
//! instructions, which the core does not overlap with the next token's across a lookup, and
//! two chains written side by side run in parallel. A batch is
//! compute-bound once its misses overlap (at 1 M sessions it runs within a tenth of its speed
//! in cache), so what it builds per token counts: [`Engine::validate_many_brief`] answers each
//! acceptance with a 16-byte [`SessionBrief`] instead of a whole [`SessionInfo`], through the
//! same inlined pipeline, and does 8-13 % more validations per second.
//!
//! **Why no global lock.** Shards are picked by the selector's low bits, so two validations
//! share a lock word only when they hit the same shard (1 in 256); ends flip an atomic state
//! byte under a *read* lock, so they never block validations; creates and sweeps take one
//! shard's write lock at a time; bulk ends walk shards one by one or the user's own list. A
//! login copies the few settings it applies under the directory's read lock instead of cloning
//! shared `Arc`s, whose reference counts would bounce between cores; that read lock, and the
//! audit event buffer's lock, are striped by thread, so two cores logging users in write no
//! lock word in common. See the `engine` module
//! source for the lock order. `unsafe` lives in one module, `raw`, whose parts each say why
//! theirs is sound: `raw::prefetch` (the prefetch intrinsic), `raw::crc` (the checksum by
//! carry-less multiplication), `raw::sha256` (two SHA-256 compressions interleaved, for
//! batches), `raw::slots` (shard tables sharing huge-page memory),
//! `raw::fork` (a `pthread_atfork` handler, so tokens need no `getpid` call to stay
//! fork-safe) and `raw::clock` (the coarse realtime clock every validation reads through
//! [`SystemClock`]: a sixth of `SystemTime::now()`'s cost under a hypervisor).
//!
//! ## Bearer-token discipline
//!
//! Tokens are `swd_` + an 11-character base62 selector (64 bits) + 43 random base62 characters
//! of secret (over 256 bits; both from ChaCha20 seeded by the OS, reseeded in a forked child) + a
//! 6-character base62 CRC32: 64 characters. The selector picks the session's slot and is its
//! public handle; the table keeps a SHA-256 prefix of the random part, never the secret. [`Token`]'s `Debug` and `Display` are
//! redacted; errors, events and listings carry only the public [`Handle`].
// `unsafe` is denied everywhere but in `raw`, whose submodules' documentation justifies it.
#![deny(unsafe_code)]

mod clock;
mod engine;
mod error;
mod events;
mod oauth;
mod raw;
mod session;
mod settings;
mod store;
mod striped;
mod table;
mod token;

/// The threat model: which attacks the design stops, which it leaves to the application, and
/// the tests behind each claim (the repository's `SECURITY.md`).
#[doc = include_str!("../../../SECURITY.md")]
pub mod threat_model {}

/// Entry points for the cargo-fuzz targets that reach parsers the public API only feeds from
/// a database file (`cargo fuzz` builds with `--cfg fuzzing`; other builds have no such module).
#[cfg(fuzzing)]
#[doc(hidden)]
pub use store::codec::fuzzing;

/// The README's Rust quickstart, compiled and run as a doctest.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

pub use clock::{Clock, ManualClock, SystemClock};
pub use engine::{
    Engine, EngineBuilder, SweepStats, TableStats, CHALLENGE_LIFETIME,
    DEFAULT_ACTIVITY_FLUSH_INTERVAL, MAX_EXPECTED_SESSIONS, MAX_PAGE_SIZE, MAX_REMEMBERED_DEVICES,
};
pub use error::Error;
pub use events::{Event, EventKind, EventListener};
pub use ipnet::IpNet;
pub use oauth::{AuthorizeError, Authorized, Grant, GrantError, OAuthClient, OAuthClients};
pub use session::{
    Challenge, DenyReason, EndReason, ExpiryKind, Issued, LoginOutcome, LoginRequest, ProfileKey,
    Refusal, Requirement, SessionBrief, SessionFilter, SessionInfo, SessionPage, SessionRow,
    UserKey,
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
    is_well_formed, redact_token_like, redact_tokens, token_key, Handle, Token, KEY_LEN, TOKEN_LEN,
    TOKEN_PREFIX,
};
