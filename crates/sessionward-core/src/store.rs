//! Persistence: what an engine writes so that a restart or a crash loses no session and
//! resurrects no ended one.
//!
//! The engine talks to a [`SessionStore`]: a sink of [`StoreChange`]s that are durable when
//! [`SessionStore::commit`] returns, and a source of the [`StoredState`] an engine starts from.
//! The trait is about sessions, ends and the org's directory, not about one storage engine:
//! [`RedbStore`] keeps them in an embedded [redb](https://www.redb.org) file (what
//! [`EngineBuilder::path`](crate::EngineBuilder::path) opens); a shared store (Redis) can
//! implement the same contract.
//!
//! # The contract
//!
//! - `commit` returns only when every change it was given is durable (survives `kill -9` and,
//!   as far as the disk's `fsync` goes, power loss). Concurrent `commit` calls may be grouped
//!   into one write: that is how durable logins stay fast.
//! - Changes about one session may arrive in any order between `Created` and `Ended`: an admin
//!   can end a session listed by handle before the login that made it has returned. A store
//!   must keep the end whichever comes first.
//! - `Activity` is written behind: it may lag, but a stored last activity must never be later
//!   than the engine's. After a restart a session can then only expire earlier, never later.
//! - A store keeps only token digests, never tokens.
//!
//! See `docs/durability.md` for the file format and the exact write-behind bound.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use crate::{EndReason, Error, LoginMethod, OrgSettings, Profile, SecurityLevel, SessionType};

pub(crate) mod codec;
mod redb_store;

pub use redb_store::{RedbStore, FORMAT_VERSION};

/// One session as a store keeps it: the session key (never the token) and the policy
/// snapshotted at login.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// The session key: the token's selector (8 bytes, little endian: the public handle), then
    /// the first 20 bytes of the SHA-256 of the token's random characters.
    pub digest: [u8; 28],
    /// Address the session started from.
    pub origin: IpAddr,
    /// Login time, seconds since the Unix epoch.
    pub created: u32,
    /// Last successful validation as far as the store knows (never later than the engine's).
    pub last_activity: u32,
    /// When the maximum session length runs out.
    pub absolute_deadline: u32,
    /// Inactivity timeout snapshotted at login, in seconds.
    pub idle_secs: u32,
    /// The user's key in the engine's directory.
    pub user: u32,
    /// The profile's key in the engine's directory (the profile at login).
    pub profile: u16,
    /// Security level (step-up raises it).
    pub level: SecurityLevel,
    /// UI, API or OAuth2.
    pub session_type: SessionType,
    /// How the user logged in.
    pub method: LoginMethod,
    /// Locked to `origin`.
    pub ip_locked: bool,
    /// Ends when the browser closes.
    pub browser_bound: bool,
    /// Why and when the session ended, if it did.
    pub ended: Option<(EndReason, u32)>,
}

impl StoredSession {
    /// The public handle: the key's first 8 bytes (the selector), little endian.
    pub fn handle(&self) -> crate::Handle {
        crate::Handle(crate::table::hash_of(&self.digest))
    }
}

impl fmt::Debug for StoredSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The digest is not a credential, but there is no reason to print all of it.
        f.debug_struct("StoredSession")
            .field("handle", &self.handle())
            .field("created", &self.created)
            .field("user", &self.user)
            .field("profile", &self.profile)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

/// A user as the directory keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredUser {
    /// The user's key (never reused within one database).
    pub key: u32,
    /// The user's id.
    pub id: Arc<str>,
    /// The key of the user's profile.
    pub profile: u16,
}

/// A registered OAuth client as a store keeps it: the SHA-256 of its secret, never the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredClient {
    /// The client id.
    pub client_id: String,
    /// The integration user the client's sessions run as.
    pub run_as: String,
    /// Scopes the client may be granted, sorted.
    pub scopes: Vec<String>,
    /// SHA-256 of the client secret.
    pub secret_digest: [u8; 32],
}

impl fmt::Debug for StoredClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The digest of a 256-bit random secret reveals nothing, but it is no one's business.
        f.debug_struct("StoredClient")
            .field("client_id", &self.client_id)
            .field("run_as", &self.run_as)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// What one OAuth grant gave its access token, kept by the token's session handle while the
/// session is (or its tombstone is).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredGrant {
    /// The access token's session handle number.
    pub handle: u64,
    /// The client the token was granted to.
    pub client_id: String,
    /// The scopes granted, sorted.
    pub scopes: Vec<String>,
}

/// One change an engine asks a store to make durable.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreChange {
    /// A session was issued.
    Created(StoredSession),
    /// A session ended (any reason, one session or part of a bulk end).
    Ended {
        /// The session's handle number.
        handle: u64,
        /// Why.
        reason: EndReason,
        /// When, seconds since the Unix epoch.
        at: u32,
    },
    /// A session's level was raised.
    SteppedUp {
        /// The session's handle number.
        handle: u64,
        /// The new level.
        level: SecurityLevel,
    },
    /// Written behind: the session was last validated at `at`.
    Activity {
        /// The session's handle number.
        handle: u64,
        /// Seconds since the Unix epoch.
        at: u32,
    },
    /// The engine dropped the session's tombstone: the store may forget what it no longer
    /// needs, but must still load the session as ended (or expired) while it keeps anything
    /// of it: a restart must never find it live again.
    Forget {
        /// The session's handle number.
        handle: u64,
    },
    /// The org settings were replaced.
    Settings(OrgSettings),
    /// A profile was added or replaced.
    ProfilePut {
        /// The profile's key (never reused within one database).
        key: u16,
        /// The profile.
        profile: Profile,
    },
    /// A profile was removed.
    ProfileRemoved {
        /// The profile's key.
        key: u16,
    },
    /// A user was added or moved to another profile.
    UserPut(StoredUser),
    /// A user was removed.
    UserRemoved {
        /// The user's key.
        key: u32,
    },
    /// An OAuth client was registered, or registered again with a new secret.
    ClientPut(StoredClient),
    /// An OAuth client was removed (its tokens stay as they were granted).
    ClientRemoved {
        /// The client id.
        client_id: String,
    },
    /// An access token was granted. A store keeps the grant while it keeps the session, and
    /// may drop it with the session's other entries (`Forget`, pruning).
    Granted(StoredGrant),
    /// A user's remembered devices changed (see
    /// [`Engine::complete_challenge`](crate::Engine::complete_challenge)): the whole list,
    /// oldest first, replacing the stored one. Each is the SHA-256 of a device id, never the
    /// id. A store drops the list with the user (`UserRemoved`).
    DevicesRemembered {
        /// The user's key.
        user: u32,
        /// SHA-256 of each remembered device id, oldest first, at most
        /// [`MAX_REMEMBERED_DEVICES`](crate::MAX_REMEMBERED_DEVICES).
        devices: Vec<[u8; 32]>,
    },
}

/// What an engine starts from: the directory and every session a store still holds.
#[derive(Clone, Debug, Default)]
pub struct StoredState {
    /// The org settings, `None` for a new, empty store.
    pub settings: Option<OrgSettings>,
    /// Profiles with their keys.
    pub profiles: Vec<(u16, Profile)>,
    /// Users.
    pub users: Vec<StoredUser>,
    /// One more than the largest profile key ever used.
    pub next_profile: u32,
    /// One more than the largest user key ever used.
    pub next_user: u64,
    /// Sessions not yet past their tombstone retention, ends and step-ups applied.
    pub sessions: Vec<StoredSession>,
    /// Registered OAuth clients (a store that keeps none leaves this empty).
    pub oauth_clients: Vec<StoredClient>,
    /// Grants of the access tokens among `sessions` (others may be left out).
    pub oauth_grants: Vec<StoredGrant>,
    /// Remembered devices by user key (SHA-256 of each device id, oldest first); users with
    /// none are left out, as are all of them by a store that keeps none.
    pub remembered_devices: Vec<(u32, Vec<[u8; 32]>)>,
}

/// Where an engine keeps sessions and its directory across restarts.
///
/// Implementations must follow this contract (`docs/durability.md`): `commit` is durable when
/// it returns, ends win over creations whatever their order, activity never runs ahead of the
/// engine, and no token is ever stored.
pub trait SessionStore: Send + Sync + fmt::Debug {
    /// Reads the directory and the sessions an engine opening at `now` needs; sessions dead
    /// for longer than `retention` seconds (ended, or expired by the stored activity) are left
    /// out and may be deleted.
    fn load(&self, now: u64, retention: u32) -> Result<StoredState, Error>;

    /// Makes `changes` durable, in order, before returning. Concurrent calls may share one
    /// write. After a failure the store may refuse every later call.
    fn commit(&self, changes: Vec<StoreChange>) -> Result<(), Error>;
}
