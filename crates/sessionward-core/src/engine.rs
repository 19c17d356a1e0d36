//! The engine: the directory of users and profiles, the sharded table and every operation.
//!
//! # Concurrency model
//!
//! - The session table is split into a power-of-two number of shards (256 by default), each a
//!   cache-padded `parking_lot::RwLock` around one [`Table`]. The shard is picked from the low bits
//!   of the token digest.
//! - A validation takes one shard's read lock, reads one record, and refreshes last activity with
//!   a relaxed atomic store (only when the second changed). The policy it checks against
//!   (high-assurance operations, per-request login ranges) is a copy kept inside each shard, so no
//!   global lock is read on the hot path.
//! - Ending a session flips an atomic state byte under the shard's read lock: ends never block
//!   validations. Bulk ends walk the shards one at a time (profile, org, CIDR) or the user's own
//!   session list (user ends, password resets); each session is ended before the call returns.
//! - Creating a session takes the user's own mutex (for the concurrent-session cap) and one shard's
//!   write lock. Sweeping takes one shard's write lock at a time.
//! - The directory of users and profiles is read at login and written by admin changes;
//!   validations never touch it. It is striped by thread ([`ReadMostly`]): a login takes the
//!   read lock of its thread's stripe only, so two cores logging users in never write the same
//!   lock word; a change takes every stripe's write lock.
//!
//! Lock order, where more than one is held: the directory lock, then a user's mutex, then a
//! shard lock. Only settings and profile changes hold the directory (write) lock while taking
//! shard locks, to publish the validation policy to every shard; nothing takes the directory
//! lock or a user's mutex while holding a shard lock, and nothing holds the directory lock
//! while taking a user's mutex.
//!
//! # Durability
//!
//! Given a [`SessionStore`] (or a path, for the embedded [`RedbStore`]), every operation that
//! changes state commits its changes to the store before it returns: the memory change comes
//! first (so an end takes effect at once), then the commit, which concurrent callers share.
//! No lock is held during a commit, except the directory write lock for directory changes.
//! Validations never touch the store: last activity is written behind by a flusher thread
//! (see `docs/durability.md` for the bound).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use parking_lot::{Mutex, RwLock, RwLockWriteGuard};

use crate::events::{EventListener, EventLog};
use crate::raw::slots::{SlotPool, Slots};
use crate::settings::{canonical_net, check_name};
use crate::store::{RedbStore, SessionStore, StoreChange, StoredSession, StoredState, StoredUser};
use crate::striped::ReadMostly;
use crate::table::{
    selector_candidates, NewRecord, Record, SlotsHint, Table, EXPIRY_REPORTED, REASON_MASK,
    STATE_LIVE,
};
use crate::token::{random_u64, rest_is_well_formed, selector_of, sha256, TokenDigest};
use crate::{
    is_well_formed, CapAction, Challenge, Clock, DenyReason, EndReason, Error, Event, EventKind,
    ExpiryKind, Handle, Issued, LoginMethod, LoginOutcome, LoginRequest, OrgSettings, Profile,
    ProfileKey, Refusal, Requirement, SecurityLevel, SessionBrief, SessionFilter, SessionInfo,
    SessionPage, SessionRow, SessionType, SystemClock, Token, UserKey,
};

/// Tokens [`Engine::validate_many`] checks and prefetches ahead of hashing and looking them
/// up, as one group: four keep a dozen misses in flight (three lines a token). Measured in
/// one process against the pipeline it replaced (each token checked four ahead of its own
/// lookup, hashed alone), alternating 150 ms runs at 1 M sessions: ahead in all seven
/// round-sets over four builds, 3-6 % on one thread and 1-9 % on two. Groups of 8 and 16
/// were no faster.
pub(crate) const BATCH_GROUP: usize = 4;

/// How long a verification challenge can be completed.
pub const CHALLENGE_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// Most challenges pending at once; past it the oldest are dropped.
const MAX_PENDING_CHALLENGES: usize = 100_000;
/// Most devices remembered per user (see [`Engine::complete_challenge`]); remembering one more
/// forgets the one remembered longest ago, so that a user's list stays small whatever an app
/// sends as device ids.
pub const MAX_REMEMBERED_DEVICES: usize = 32;
/// How often (simulated or real seconds) a shard sweeps itself while inserting.
const OPPORTUNISTIC_SWEEP_INTERVAL: u32 = 60;
/// Largest page of a session listing.
pub const MAX_PAGE_SIZE: usize = 10_000;
/// Default interval of the last-activity write-behind of a durable engine.
pub const DEFAULT_ACTIVITY_FLUSH_INTERVAL: Duration = Duration::from_secs(2);

/// A shard, padded to its own cache lines so that two shards' locks never share one: the lock
/// and table header on the first 64-byte line, the slots hint on the second.
#[repr(align(128))]
struct Shard {
    state: RwLock<ShardState>,
    /// Where the table's slots are, for prefetching before the lock is taken.
    slots_hint: SlotsHint,
}

const _: () = assert!(std::mem::size_of::<Shard>() == 128);

impl Shard {
    fn new(state: ShardState) -> Self {
        let slots_hint = SlotsHint::default();
        slots_hint.publish(&state.table);
        Self {
            state: RwLock::new(state),
            slots_hint,
        }
    }

    /// Takes the write lock; the guard republishes the slots hint when it is dropped, since
    /// any insert or removal may have moved the slots.
    fn write(&self) -> ShardWriteGuard<'_> {
        ShardWriteGuard {
            state: self.state.write(),
            slots_hint: &self.slots_hint,
        }
    }
}

/// A shard's write lock (see [`Shard::write`]).
struct ShardWriteGuard<'a> {
    state: RwLockWriteGuard<'a, ShardState>,
    slots_hint: &'a SlotsHint,
}

impl std::ops::Deref for ShardWriteGuard<'_> {
    type Target = ShardState;
    fn deref(&self) -> &ShardState {
        &self.state
    }
}

impl std::ops::DerefMut for ShardWriteGuard<'_> {
    fn deref_mut(&mut self) -> &mut ShardState {
        &mut self.state
    }
}

impl Drop for ShardWriteGuard<'_> {
    fn drop(&mut self) {
        self.slots_hint.publish(&self.state.table);
    }
}

struct ShardState {
    table: Table,
    policy: Arc<ValidationPolicy>,
    next_sweep: u32,
}

/// The part of the current policy that validations evaluate per request.
#[derive(Default)]
struct ValidationPolicy {
    high_assurance_operations: HashSet<Box<str>, ahash::RandomState>,
    enforce_login_ranges: bool,
    /// Login ranges by profile key (empty = anywhere).
    profile_ranges: Vec<Arc<[IpNet]>>,
}

impl ValidationPolicy {
    fn allows(&self, profile: u16, ip: IpAddr) -> bool {
        match self.profile_ranges.get(usize::from(profile)) {
            Some(ranges) => ranges.is_empty() || ranges.iter().any(|net| net.contains(&ip)),
            None => true,
        }
    }
}

struct ProfileEntry {
    profile: Arc<Profile>,
    name: Arc<str>,
    users: usize,
}

struct UserEntry {
    id: Arc<str>,
    key: u32,
    profile: u16,
    sessions: Arc<Mutex<UserSessions>>,
}

/// A user's own session bookkeeping, behind the user's mutex.
struct UserSessions {
    /// Set when the user is deleted, so a login racing the deletion issues nothing.
    removed: bool,
    /// Handles of sessions issued to the user, oldest first; may hold ended or expired ones
    /// until the next prune.
    handles: Vec<u64>,
    /// Length after the last prune; the list is pruned again when it doubles (see
    /// [`wants_prune`](Self::wants_prune)).
    pruned_len: usize,
    /// No session in `handles` can expire before this second (`u32::MAX` for none): the
    /// least of their deadlines when last computed, which stays a lower bound because
    /// activity only moves a deadline later.
    first_expiry: u32,
    /// SHA-256 of device ids that completed a challenge ("activated browsers"), oldest
    /// first, at most [`MAX_REMEMBERED_DEVICES`]: a short list scanned in place.
    devices: Vec<[u8; 32]>,
}

impl Default for UserSessions {
    fn default() -> Self {
        Self {
            removed: false,
            handles: Vec::new(),
            pruned_len: 0,
            first_expiry: u32::MAX,
            devices: Vec::new(),
        }
    }
}

impl UserSessions {
    /// Records a new session's handle; `valid_until` is when the session expires unless it
    /// is used. Grows the list by a quarter rather than doubling it: across millions of users
    /// the slack of doubling would cost ~2 bytes per session.
    fn push_handle(&mut self, handle: u64, valid_until: u64) {
        if self.handles.len() == self.handles.capacity() {
            self.handles.reserve_exact(self.handles.len() / 4 + 4);
        }
        self.handles.push(handle);
        self.first_expiry = self.first_expiry.min(clamp_u32(valid_until));
    }

    /// Whether a login at `now` should drop the list's ended and expired handles first.
    ///
    /// Under a session cap, always: the cap counts live sessions exactly. Otherwise pruning
    /// only bounds the list's memory, so it waits until the list has doubled since the last
    /// prune (each handle is then checked about twice over its life, whatever the list's
    /// length) *and* one of its sessions may have expired. Until then every handle is of a
    /// live session or of one ended by a logout or an admin, and checking them all (a table
    /// lookup each, a random memory access) would find too few to drop to be worth it: a
    /// burst of logins (a morning's sign-ins, the `create` benchmarks) did it for nothing,
    /// 1-10 % of a login (1 M logins, pruning on and off alternating in one process,
    /// see the README's "Pruning after a burst"). The handles of ended
    /// sessions linger at most until the first idle timeout, 8 bytes each, beside the ended
    /// session's own record, which the table keeps for the tombstone retention anyway.
    fn wants_prune(&self, capped: bool, now: u32) -> bool {
        capped || (self.handles.len() >= 2 * self.pruned_len.max(8) && now >= self.first_expiry)
    }

    /// Remembers `device` as the newest, forgetting the oldest beyond
    /// [`MAX_REMEMBERED_DEVICES`].
    fn remember_device(&mut self, device: [u8; 32]) {
        self.devices.retain(|known| *known != device);
        if self.devices.len() == MAX_REMEMBERED_DEVICES {
            self.devices.remove(0);
        }
        self.devices.push(device);
    }
}

#[derive(Default)]
struct Directory {
    settings: Arc<OrgSettings>,
    profiles: Vec<Option<ProfileEntry>>,
    /// Keyed by name with ahash (randomly seeded, so still resistant to collision flooding):
    /// every login looks its user up here.
    profile_keys: HashMap<Arc<str>, u16, ahash::RandomState>,
    users: Vec<Option<UserEntry>>,
    user_keys: HashMap<Arc<str>, u32, ahash::RandomState>,
}

impl Directory {
    fn user(&self, id: &str) -> Option<&UserEntry> {
        let key = *self.user_keys.get(id)?;
        self.users.get(key as usize)?.as_ref()
    }

    fn profile_key(&self, name: &str) -> Result<u16, Error> {
        self.profile_keys
            .get(name)
            .copied()
            .ok_or_else(|| Error::UnknownProfile {
                profile: crate::error::shorten(name),
            })
    }

    fn profile(&self, key: u16) -> Option<&ProfileEntry> {
        self.profiles.get(usize::from(key))?.as_ref()
    }

    fn validation_policy(&self) -> Arc<ValidationPolicy> {
        let settings = &self.settings;
        Arc::new(ValidationPolicy {
            high_assurance_operations: settings
                .high_assurance_operations()
                .iter()
                .map(|op| op.as_str().into())
                .collect(),
            enforce_login_ranges: settings.enforce_login_ranges_every_request(),
            profile_ranges: self
                .profiles
                .iter()
                .map(|entry| match entry {
                    Some(entry) => Arc::from(entry.profile.login_ranges()),
                    None => Arc::from(Vec::new()),
                })
                .collect(),
        })
    }
}

struct PendingChallenge {
    user: Arc<str>,
    ip: IpAddr,
    method: LoginMethod,
    session_type: SessionType,
    device: Option<[u8; 32]>,
    expires_at: u64,
}

/// Where a durable engine keeps its state.
enum StoreSource {
    Path(PathBuf),
    Store(Arc<dyn SessionStore>),
}

/// Tunables of an [`Engine`] that are not org policy.
#[must_use]
pub struct EngineBuilder {
    settings: OrgSettings,
    clock: Arc<dyn Clock>,
    shards: usize,
    tombstone_retention: Duration,
    event_capacity: usize,
    store: Option<StoreSource>,
    activity_flush_interval: Duration,
    expected_sessions: usize,
}

/// The most sessions [`EngineBuilder::expected_sessions`] reserves room for: 64 bytes a slot,
/// about 7.3 GiB of tables.
pub const MAX_EXPECTED_SESSIONS: usize = 100_000_000;

impl EngineBuilder {
    /// The org settings to start with (default: [`OrgSettings::default`]).
    pub fn settings(mut self, settings: OrgSettings) -> Self {
        self.settings = settings;
        self
    }
    /// The clock (default: [`SystemClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
    /// Number of shards, a power of two in 1..=4096 (default 256).
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = shards;
        self
    }
    /// How long an ended or expired session is remembered so that validations can say why it
    /// stopped working (0 ..= 24 h, default 1 h). After that it is "unknown".
    pub fn tombstone_retention(mut self, retention: Duration) -> Self {
        self.tombstone_retention = retention;
        self
    }
    /// How many events the engine buffers for [`Engine::drain_events`] (default 10,000;
    /// 0 keeps none, for listener-only use). Older events are dropped first.
    ///
    /// Each core's share of the buffer holds up to this many (threads emit into their own
    /// share, so that concurrent logins do not queue at one lock): until drained, memory is
    /// up to one such buffer per core emitting, 72 bytes an event (the user's id is shared,
    /// not copied); a drain returns the most recent `capacity` of them all.
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity;
        self
    }

    /// How many sessions (live ones and tombstones) to make room for when the engine is
    /// built, 0 ..= [`MAX_EXPECTED_SESSIONS`] (default 0: the tables start empty and grow).
    ///
    /// Each shard's table then starts at the size its share needs and never shrinks below
    /// it, so that up to that many sessions are created without a table ever growing: no
    /// shard stops its validations to move its records into a larger table (about 120 µs for
    /// a shard of a 5 M-session engine), and logins do not pay for the moves and for faulting
    /// in the intermediate sizes (the login that grew a shard of that engine waited ~6 ms for
    /// its new memory on the project's VM; see `bench/examples/growth_stall.rs`). The memory
    /// (about 64 bytes × 8/7 per expected session, plus the rounding to the next table size)
    /// is taken and touched at build, like `Vec::with_capacity`'s; beyond the expectation the
    /// tables grow as usual.
    ///
    /// # Examples
    ///
    /// ```
    /// use sessionward_core::Engine;
    ///
    /// let engine = Engine::builder().expected_sessions(100_000).build()?;
    /// assert!(engine.stats().capacity >= 100_000);
    /// assert!(Engine::builder().expected_sessions(usize::MAX).build().is_err());
    /// # Ok::<(), sessionward_core::Error>(())
    /// ```
    pub fn expected_sessions(mut self, sessions: usize) -> Self {
        self.expected_sessions = sessions;
        self
    }

    /// Makes the engine durable in the embedded database at `path` (created if missing, its
    /// directory must exist). Opening loads every session that is still live or within its
    /// tombstone retention, the org settings, profiles and users; the builder's
    /// [`settings`](Self::settings) only seed a new database. Without a path or a
    /// [`store`](Self::store) the engine is memory-only.
    ///
    /// # Examples
    ///
    /// ```
    /// use sessionward_core::*;
    ///
    /// let dir = std::env::temp_dir().join(format!("swd-path-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("sessions.redb");
    /// let ip = "10.0.0.1".parse()?;
    /// let token = {
    ///     let engine = Engine::builder().path(&path).build()?;
    ///     engine.add_profile(Profile::builder("staff").build()?)?;
    ///     engine.add_user("ada", "staff")?;
    ///     let request = LoginRequest::new("ada", ip).method(LoginMethod::Mfa);
    ///     engine.login(&request)?.issued().unwrap().token
    /// };
    /// // A new engine on the same file knows the user and the session.
    /// let engine = Engine::builder().path(&path).build()?;
    /// assert!(engine.validate(token.expose_secret(), ip, Requirement::Any).is_ok());
    /// # drop(engine);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn path(mut self, path: impl Into<PathBuf>) -> Self {
        self.store = Some(StoreSource::Path(path.into()));
        self
    }
    /// Makes the engine durable in `store` (see [`path`](Self::path) for what is loaded).
    pub fn store(mut self, store: Arc<dyn SessionStore>) -> Self {
        self.store = Some(StoreSource::Store(store));
        self
    }
    /// How often a durable engine writes last activity behind (100 ms ..= 10 s, default 2 s).
    /// A crash loses at most this interval plus one flush of activity; see
    /// `docs/durability.md`.
    pub fn activity_flush_interval(mut self, interval: Duration) -> Self {
        self.activity_flush_interval = interval;
        self
    }

    /// Checks the tunables and builds the engine; with a path or a store, opens it and loads
    /// its state.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfRange`] for a tunable, and for a durable engine the store's errors
    /// ([`Error::StoreOpen`], [`Error::StoreCorrupt`], [`Error::StoreVersion`], ...), each
    /// naming the path.
    pub fn build(self) -> Result<Engine, Error> {
        if !(Duration::from_millis(100)..=Duration::from_secs(10))
            .contains(&self.activity_flush_interval)
        {
            return Err(Error::OutOfRange {
                field: "activity_flush_interval",
                value: crate::settings::format_duration(self.activity_flush_interval),
                allowed: "100ms..=10s",
            });
        }
        if !self.shards.is_power_of_two() || self.shards > 4096 {
            return Err(Error::OutOfRange {
                field: "shards",
                value: self.shards.to_string(),
                allowed: "a power of two in 1..=4096",
            });
        }
        if self.tombstone_retention > Duration::from_secs(24 * 3600) {
            return Err(Error::OutOfRange {
                field: "tombstone_retention",
                value: crate::settings::format_duration(self.tombstone_retention),
                allowed: "0s..=24h",
            });
        }
        if self.expected_sessions > MAX_EXPECTED_SESSIONS {
            return Err(Error::OutOfRange {
                field: "expected_sessions",
                value: self.expected_sessions.to_string(),
                allowed: "0..=100000000",
            });
        }
        let store: Option<Arc<dyn SessionStore>> = match self.store {
            None => None,
            Some(StoreSource::Store(store)) => Some(store),
            Some(StoreSource::Path(path)) => Some(Arc::new(RedbStore::open(path)?)),
        };
        let retention = self.tombstone_retention.as_secs() as u32;
        let mut loaded = match &store {
            Some(store) => Some(store.load(self.clock.now(), retention)?),
            None => None,
        };
        let stored_settings = loaded.as_mut().and_then(|state| state.settings.take());
        let new_store = store.is_some() && stored_settings.is_none();
        let settings = stored_settings.unwrap_or(self.settings);
        if new_store {
            if let Some(store) = &store {
                store.commit(vec![StoreChange::Settings(settings.clone())])?;
            }
        }
        let mut directory = Directory {
            settings: Arc::new(settings),
            ..Directory::default()
        };
        if let Some(state) = &mut loaded {
            restore_directory(&mut directory, state);
        }
        let policy = directory.validation_policy();
        let slot_pool = SlotPool::new(self.shards);
        // Selectors pick shards uniformly, so a shard's count is binomial around the even
        // share: four standard deviations more (6 % at 1 M sessions over 256 shards) keep
        // every shard within its room but about one in 30,000.
        let even_share = self.expected_sessions.div_ceil(self.shards);
        let share = even_share + 4 * (even_share as f64).sqrt().ceil() as usize;
        let shards = (0..self.shards)
            .map(|_| {
                let mut table = Table::new(Arc::clone(&slot_pool));
                if even_share > 0 {
                    table.reserve(share);
                }
                Shard::new(ShardState {
                    table,
                    policy: Arc::clone(&policy),
                    next_sweep: 0,
                })
            })
            .collect();
        let mut engine = Engine {
            clock: self.clock,
            shards,
            slot_pool,
            shard_mask: self.shards as u64 - 1,
            directory: ReadMostly::new(directory),
            challenges: Mutex::new(HashMap::new()),
            events: EventLog::new(self.event_capacity),
            tombstone_retention: retention,
            sweep_cursor: AtomicUsize::new(0),
            store: None,
            store_error: Mutex::new(None),
            flusher: None,
            oauth: crate::OAuthClients::default(),
        };
        let (mut oauth_clients, mut oauth_grants) = (Vec::new(), Vec::new());
        if let Some(state) = loaded {
            oauth_clients = state.oauth_clients;
            oauth_grants = state.oauth_grants;
            engine.restore_sessions(state.sessions);
        }
        if let Some(store) = store {
            engine.oauth =
                crate::OAuthClients::restored(Arc::clone(&store), oauth_clients, oauth_grants);
            engine.flusher = Some(Flusher::start(
                Arc::clone(&engine.shards),
                Arc::clone(&engine.clock),
                Arc::clone(&store),
                self.activity_flush_interval,
            )?);
            engine.store = Some(store);
        }
        Ok(engine)
    }
}

/// Rebuilds the directory from a store: keys are kept, so that stored sessions still point at
/// their user and profile; removed keys stay empty and are never reused.
fn restore_directory(directory: &mut Directory, state: &StoredState) {
    directory.profiles = (0..state.next_profile).map(|_| None).collect();
    for (key, profile) in &state.profiles {
        let name: Arc<str> = profile.name().into();
        directory.profile_keys.insert(Arc::clone(&name), *key);
        directory.profiles[usize::from(*key)] = Some(ProfileEntry {
            profile: Arc::new(profile.clone()),
            name,
            users: 0,
        });
    }
    directory.users = (0..state.next_user).map(|_| None).collect();
    for user in &state.users {
        directory.user_keys.insert(Arc::clone(&user.id), user.key);
        directory.users[user.key as usize] = Some(UserEntry {
            id: Arc::clone(&user.id),
            key: user.key,
            profile: user.profile,
            sessions: Arc::default(),
        });
        if let Some(Some(profile)) = directory.profiles.get_mut(usize::from(user.profile)) {
            profile.users += 1;
        }
    }
    for (key, devices) in &state.remembered_devices {
        // A removed user's list may outlive it in a store; keys are never reused.
        if let Some(Some(entry)) = directory.users.get(*key as usize) {
            let kept = devices.len().saturating_sub(MAX_REMEMBERED_DEVICES);
            entry.sessions.lock().devices = devices[kept..].to_vec();
        }
    }
}

/// The write-behind of last activity: a thread that walks the table every interval and
/// commits the last activity of every live session validated since the previous walk.
struct Flusher {
    stop: Arc<(Mutex<bool>, parking_lot::Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    fn start(
        shards: Arc<[Shard]>,
        clock: Arc<dyn Clock>,
        store: Arc<dyn SessionStore>,
        interval: Duration,
    ) -> Result<Self, Error> {
        let stop = Arc::new((Mutex::new(false), parking_lot::Condvar::new()));
        let signal = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("sessionward-activity".into())
            .spawn(move || {
                // Activity at or after `since` has not been written yet. One second of slack
                // covers a validation that read the clock just before a flush read it.
                let mut since = clamp_u32(clock.now()).saturating_sub(1);
                let mut next = Instant::now() + interval;
                loop {
                    let stopping = {
                        let (lock, wake) = &*signal;
                        let mut stop = lock.lock();
                        while !*stop && !wake.wait_until(&mut stop, next).timed_out() {}
                        *stop
                    };
                    let now = clamp_u32(clock.now());
                    if store.commit(activity_since(&shards, since)).is_ok() {
                        since = now.saturating_sub(1);
                    }
                    if stopping {
                        return;
                    }
                    // Fixed rate: a slow flush does not push the next one back.
                    next += interval;
                    next = next.max(Instant::now());
                }
            })
            .map_err(|err| Error::StoreOpen {
                path: PathBuf::from("(activity flusher)"),
                reason: format!("cannot start the activity flusher thread: {err}"),
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        *self.stop.0.lock() = true;
        self.stop.1.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Last activity of every live session validated at or after `since` (and after its login).
///
/// Locking: each shard's read lock in turn.
fn activity_since(shards: &[Shard], since: u32) -> Vec<StoreChange> {
    let mut changes = Vec::new();
    for shard in shards {
        let shard = shard.state.read();
        for record in shard.table.iter() {
            let last_seen = record.last_seen.load(Ordering::Relaxed);
            // Not for reported expiries: a refresh that raced the report must not reach the
            // store, where a restart would find the session live again.
            let state = record.state.load(Ordering::Acquire);
            if state & (REASON_MASK | EXPIRY_REPORTED) == STATE_LIVE
                && last_seen >= since
                && last_seen > record.created
            {
                changes.push(StoreChange::Activity {
                    handle: record.hash(),
                    at: last_seen,
                });
            }
        }
    }
    changes
}

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepStats {
    /// Shards visited.
    pub shards: usize,
    /// Records dropped (tombstones past retention).
    pub removed: usize,
    /// Sessions newly found expired (each reported once as an event).
    pub expired: usize,
}

/// Counts of what the table holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Sessions that would validate now (ignoring IP and level checks).
    pub live: usize,
    /// Records held, including tombstones of ended and expired sessions.
    pub records: usize,
    /// Slots allocated across all shards.
    pub capacity: usize,
    /// Records at their home slot, which a validation finds in the first cache line it
    /// reads. Logins choose selectors to keep this near `records` (nine in ten or more); a
    /// table restored from a store, or moved to a smaller capacity, holds fewer until its
    /// sessions are replaced, and validates them with a second line read.
    pub at_home: usize,
}

/// The session authority: issues, validates and ends sessions under an org's policy.
///
/// # Examples
///
/// ```
/// use sessionward_core::*;
/// use std::sync::Arc;
///
/// let clock = ManualClock::new(1_700_000_000);
/// let engine = Engine::builder().clock(Arc::new(clock.clone())).build()?;
/// engine.add_profile(Profile::builder("staff").build()?)?;
/// engine.add_user("ada", "staff")?;
///
/// let office: std::net::IpAddr = "10.0.0.7".parse().unwrap();
/// // Outside the trusted ranges a password login is challenged first.
/// let LoginOutcome::ChallengeRequired(challenge) = engine.login(&LoginRequest::new("ada", office))? else {
///     panic!("expected a challenge");
/// };
/// // ... the app verifies the user out of band, then:
/// let issued = engine.complete_challenge(challenge.secret.expose_secret(), false)?.issued().unwrap();
///
/// let session = engine.validate(issued.token.expose_secret(), office, Requirement::Any)?;
/// assert_eq!(engine.user_id(session.user).as_deref(), Some("ada"));
///
/// assert_eq!(engine.reset_password("ada")?, 1);
/// assert_eq!(
///     engine.validate(issued.token.expose_secret(), office, Requirement::Any),
///     Err(Refusal::Ended(EndReason::PasswordReset))
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Engine {
    clock: Arc<dyn Clock>,
    shards: Arc<[Shard]>,
    /// Where the shards' tables take their slot memory from.
    slot_pool: Arc<SlotPool>,
    shard_mask: u64,
    directory: ReadMostly<Directory>,
    challenges: Mutex<HashMap<[u8; 32], PendingChallenge>>,
    events: EventLog,
    tombstone_retention: u32,
    sweep_cursor: AtomicUsize,
    /// Where changes are made durable; `None` for a memory-only engine.
    store: Option<Arc<dyn SessionStore>>,
    /// The first failed commit of an operation whose signature cannot report it.
    store_error: Mutex<Option<Error>>,
    /// The activity write-behind; stopped (after a last flush) by `Drop for Engine`, before
    /// the store is dropped.
    flusher: Option<Flusher>,
    /// The org's OAuth clients, kept in the store with everything else.
    oauth: crate::OAuthClients,
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Stops the flusher after one last flush, so a clean shutdown loses no activity.
        self.flusher.take();
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("shards", &self.shards.len())
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

fn clamp_u32(value: u64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

impl Engine {
    /// A builder with the defaults: default settings, system clock, 256 shards, 1 h tombstones.
    pub fn builder() -> EngineBuilder {
        EngineBuilder {
            settings: OrgSettings::default(),
            clock: Arc::new(SystemClock),
            shards: 256,
            tombstone_retention: Duration::from_secs(3600),
            event_capacity: 10_000,
            store: None,
            activity_flush_interval: DEFAULT_ACTIVITY_FLUSH_INTERVAL,
            expected_sessions: 0,
        }
    }

    /// The org's OAuth clients and the grants of their access tokens (see
    /// [`OAuthClients`](crate::OAuthClients)): in the engine's store when it has one, so that
    /// a restart keeps every registered client (its secret still works) and the scopes of
    /// every live access token.
    pub fn oauth_clients(&self) -> &crate::OAuthClients {
        &self.oauth
    }

    /// The engine's clock reading, in seconds.
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    #[inline(always)]
    fn now32(&self) -> u32 {
        clamp_u32(self.clock.now())
    }

    fn shard(&self, hash: u64) -> &Shard {
        &self.shards[(hash & self.shard_mask) as usize]
    }

    /// Moves shard `index`'s table to the capacity class `wanted` asks for, if it asks for
    /// one, taking the new slot memory with the lock released: fresh memory can take
    /// milliseconds to fault in (huge pages under a hypervisor), far too long to hold up the
    /// shard's validations. Returns the guard, retaken, and the slots the table no longer
    /// uses, which the caller drops *after* releasing the guard (the last part of a
    /// generation unmaps it).
    fn resized<'a>(
        &'a self,
        index: usize,
        guard: ShardWriteGuard<'a>,
        wanted: impl Fn(&Table) -> Option<usize>,
    ) -> (ShardWriteGuard<'a>, Option<Slots>) {
        let Some(class) = wanted(&guard.table) else {
            return (guard, None);
        };
        drop(guard);
        let fresh = self.slot_pool.slots(class);
        let mut guard = self.shards[index].write();
        // Another thread may have resized the table meanwhile.
        let unused = if wanted(&guard.table) == Some(class) {
            guard.table.move_into(fresh)
        } else {
            fresh
        };
        (guard, Some(unused))
    }

    // ----- durability -------------------------------------------------------------------------

    /// Whether the engine has a store (a path or a [`SessionStore`]).
    pub fn is_durable(&self) -> bool {
        self.store.is_some()
    }

    /// Writes the last activity of every live session now, instead of waiting for the
    /// write-behind (a no-op for a memory-only engine). Dropping the engine does this too.
    ///
    /// Locking: each shard's read lock in turn, then a commit.
    pub fn flush_activity(&self) -> Result<(), Error> {
        match &self.store {
            Some(store) => store.commit(activity_since(&self.shards, 0)),
            None => Ok(()),
        }
    }

    /// The first store failure met by an operation whose signature cannot report it
    /// ([`end_session`](Self::end_session), [`logout`](Self::logout),
    /// [`update_settings`](Self::update_settings), bulk ends, step-up, sweeps). The change
    /// took effect in memory; it may not survive a restart. `None` while every commit worked.
    pub fn store_error(&self) -> Option<Error> {
        self.store_error.lock().clone()
    }

    /// Commits `changes` if the engine is durable.
    fn persist(&self, changes: Vec<StoreChange>) -> Result<(), Error> {
        match &self.store {
            Some(store) if !changes.is_empty() => store.commit(changes),
            _ => Ok(()),
        }
    }

    /// Commits `changes`, remembering a failure for [`store_error`](Self::store_error).
    fn persist_or_note(&self, changes: Vec<StoreChange>) {
        if let Err(err) = self.persist(changes) {
            self.store_error.lock().get_or_insert(err);
        }
    }

    fn ends(hashes: &[u64], reason: EndReason, now: u32) -> Vec<StoreChange> {
        hashes
            .iter()
            .map(|&handle| StoreChange::Ended {
                handle,
                reason,
                at: now,
            })
            .collect()
    }

    /// Puts stored sessions into the table and the live ones into their users' lists.
    fn restore_sessions(&mut self, mut sessions: Vec<StoredSession>) {
        let now = u64::from(self.now32());
        sessions.sort_unstable_by_key(|session| session.created);
        let directory = self.directory.read();
        for session in sessions {
            let record = Record::new(&NewRecord {
                digest: session.digest,
                origin: session.origin,
                now: session.created,
                absolute_deadline: session.absolute_deadline,
                idle_secs: session.idle_secs,
                user: session.user,
                profile: session.profile,
                level: session.level as u8,
                session_type: session.session_type as u8,
                method: session.method as u8,
                ip_locked: session.ip_locked,
                browser_bound: session.browser_bound,
            });
            match session.ended {
                Some((reason, at)) => {
                    record.set_ended(reason as u8);
                    record.last_seen.store(at, Ordering::Relaxed);
                }
                None => record
                    .last_seen
                    .store(session.last_activity, Ordering::Relaxed),
            }
            let valid_until = record.valid_until(record.last_seen.load(Ordering::Relaxed));
            let live = session.ended.is_none() && now < valid_until;
            let hash = record.hash();
            let shard = &self.shards[(hash & self.shard_mask) as usize];
            if shard.write().table.insert(record).is_ok() && live {
                if let Some(Some(user)) = directory.users.get(session.user as usize) {
                    user.sessions.lock().push_handle(hash, valid_until);
                }
            }
        }
    }

    // ----- policy and directory -------------------------------------------------------------

    /// The current org settings.
    pub fn settings(&self) -> Arc<OrgSettings> {
        Arc::clone(&self.directory.read().settings)
    }

    /// Replaces the org settings. Sessions already issued keep the timeouts, IP lock and browser
    /// binding they snapshotted; high-assurance operations and per-request range enforcement
    /// apply to every validation from now on.
    ///
    /// Durable before it returns; a failed commit is reported by
    /// [`store_error`](Self::store_error) and the settings apply in memory all the same.
    ///
    /// Locking: the directory write lock (held during the commit), then each shard's write lock
    /// in turn (briefly).
    pub fn update_settings(&self, settings: OrgSettings) {
        let mut directory = self.directory.write();
        if self.store.is_some() {
            self.persist_or_note(vec![StoreChange::Settings(settings.clone())]);
        }
        directory.settings = Arc::new(settings);
        self.publish_policy(&directory);
    }

    fn publish_policy(&self, directory: &Directory) {
        let policy = directory.validation_policy();
        for shard in self.shards.iter() {
            shard.state.write().policy = Arc::clone(&policy);
        }
    }

    /// Adds a profile.
    pub fn add_profile(&self, profile: Profile) -> Result<ProfileKey, Error> {
        let mut directory = self.directory.write();
        if directory.profile_keys.contains_key(profile.name()) {
            return Err(Error::DuplicateProfile {
                profile: crate::error::shorten(profile.name()),
            });
        }
        let key = u16::try_from(directory.profiles.len())
            .ok()
            .filter(|&key| key < u16::MAX)
            .ok_or(Error::TooManyProfiles)?;
        if self.store.is_some() {
            self.persist(vec![StoreChange::ProfilePut {
                key,
                profile: profile.clone(),
            }])?;
        }
        let name: Arc<str> = profile.name().into();
        directory.profiles.push(Some(ProfileEntry {
            profile: Arc::new(profile),
            name: Arc::clone(&name),
            users: 0,
        }));
        directory.profile_keys.insert(name, key);
        self.publish_policy(&directory);
        Ok(ProfileKey(key))
    }

    /// Replaces the profile with the same name. Existing sessions keep their snapshot; login
    /// ranges apply to new logins and, when the org enforces them per request, to every request.
    pub fn update_profile(&self, profile: Profile) -> Result<(), Error> {
        let mut directory = self.directory.write();
        let key = directory.profile_key(profile.name())?;
        if self.store.is_some() {
            self.persist(vec![StoreChange::ProfilePut {
                key,
                profile: profile.clone(),
            }])?;
        }
        if let Some(Some(entry)) = directory.profiles.get_mut(usize::from(key)) {
            entry.profile = Arc::new(profile);
        }
        self.publish_policy(&directory);
        Ok(())
    }

    /// Removes a profile that has no users; its remaining sessions end (profile-wide).
    pub fn remove_profile(&self, name: &str) -> Result<usize, Error> {
        let key = {
            let mut directory = self.directory.write();
            let key = directory.profile_key(name)?;
            let users = directory.profile(key).map_or(0, |entry| entry.users);
            if users > 0 {
                return Err(Error::ProfileInUse {
                    profile: crate::error::shorten(name),
                    users,
                });
            }
            directory.profile_keys.remove(name);
            directory.profiles[usize::from(key)] = None;
            self.publish_policy(&directory);
            key
        };
        let now = self.now32();
        let ended = self
            .end_matching_in_memory(EndReason::ProfileWide, now, |record| record.profile == key);
        if self.store.is_some() {
            let mut changes = vec![StoreChange::ProfileRemoved { key }];
            changes.extend(Self::ends(&ended, EndReason::ProfileWide, now));
            self.persist(changes)?;
        }
        Ok(ended.len())
    }

    /// A profile by name.
    pub fn profile(&self, name: &str) -> Result<Arc<Profile>, Error> {
        let directory = self.directory.read();
        let key = directory.profile_key(name)?;
        Ok(Arc::clone(
            &directory.profile(key).expect("key from the map").profile,
        ))
    }

    /// Names of all profiles.
    pub fn profile_names(&self) -> Vec<Arc<str>> {
        let directory = self.directory.read();
        directory
            .profiles
            .iter()
            .flatten()
            .map(|entry| Arc::clone(&entry.name))
            .collect()
    }

    /// Adds a user to a profile.
    pub fn add_user(&self, user: &str, profile: &str) -> Result<UserKey, Error> {
        check_name("user", user)?;
        let mut directory = self.directory.write();
        if directory.user_keys.contains_key(user) {
            return Err(Error::DuplicateUser {
                user: crate::error::shorten(user),
            });
        }
        let profile_key = directory.profile_key(profile)?;
        let key = u32::try_from(directory.users.len()).map_err(|_| Error::OutOfRange {
            field: "users",
            value: "4294967296".into(),
            allowed: "fewer than 2^32 users over the engine's life",
        })?;
        let id: Arc<str> = user.into();
        if self.store.is_some() {
            self.persist(vec![StoreChange::UserPut(StoredUser {
                key,
                id: Arc::clone(&id),
                profile: profile_key,
            })])?;
        }
        directory.users.push(Some(UserEntry {
            id: Arc::clone(&id),
            key,
            profile: profile_key,
            sessions: Arc::default(),
        }));
        directory.user_keys.insert(id, key);
        if let Some(Some(entry)) = directory.profiles.get_mut(usize::from(profile_key)) {
            entry.users += 1;
        }
        Ok(UserKey(key))
    }

    /// Moves a user to another profile. Their existing sessions keep the profile and policy they
    /// were created under; new logins use the new profile.
    pub fn move_user(&self, user: &str, profile: &str) -> Result<(), Error> {
        let mut directory = self.directory.write();
        let to = directory.profile_key(profile)?;
        let key = *directory
            .user_keys
            .get(user)
            .ok_or_else(|| Error::UnknownUser {
                user: crate::error::shorten(user),
            })?;
        if self.store.is_some() {
            self.persist(vec![StoreChange::UserPut(StoredUser {
                key,
                id: user.into(),
                profile: to,
            })])?;
        }
        let entry = directory.users[key as usize]
            .as_mut()
            .expect("key from the map");
        let from = std::mem::replace(&mut entry.profile, to);
        for (profile_key, delta) in [(from, -1_isize), (to, 1)] {
            if let Some(Some(entry)) = directory.profiles.get_mut(usize::from(profile_key)) {
                entry.users = entry.users.saturating_add_signed(delta);
            }
        }
        Ok(())
    }

    /// Deletes a user and ends all their sessions; returns how many ended.
    pub fn remove_user(&self, user: &str) -> Result<usize, Error> {
        let sessions = {
            let mut directory = self.directory.write();
            let key = directory
                .user_keys
                .remove(user)
                .ok_or_else(|| Error::UnknownUser {
                    user: crate::error::shorten(user),
                })?;
            let entry = directory.users[key as usize]
                .take()
                .expect("key from the map");
            if let Some(Some(profile)) = directory.profiles.get_mut(usize::from(entry.profile)) {
                profile.users = profile.users.saturating_sub(1);
            }
            (entry.key, entry.sessions)
        };
        let (key, sessions) = sessions;
        let mut sessions = sessions.lock();
        sessions.removed = true;
        let now = self.now32();
        let ended = self.end_handles(&mut sessions, EndReason::UserRemoved, Some(user), now);
        drop(sessions);
        if self.store.is_some() {
            let mut changes = vec![StoreChange::UserRemoved { key }];
            changes.extend(Self::ends(&ended, EndReason::UserRemoved, now));
            self.persist(changes)?;
        }
        Ok(ended.len())
    }

    /// The profile a user is in now.
    pub fn user_profile(&self, user: &str) -> Result<Arc<str>, Error> {
        let directory = self.directory.read();
        let entry = directory.user(user).ok_or_else(|| Error::UnknownUser {
            user: crate::error::shorten(user),
        })?;
        Ok(Arc::clone(
            &directory.profile(entry.profile).expect("live profile").name,
        ))
    }

    /// How many users the engine knows.
    pub fn user_count(&self) -> usize {
        self.directory.read().user_keys.len()
    }

    /// The id of the user behind a key (`None` once the user was removed).
    pub fn user_id(&self, user: UserKey) -> Option<Arc<str>> {
        let directory = self.directory.read();
        directory
            .users
            .get(user.0 as usize)?
            .as_ref()
            .map(|entry| Arc::clone(&entry.id))
    }

    /// The name of the profile behind a key (`None` once the profile was removed).
    pub fn profile_name(&self, profile: ProfileKey) -> Option<Arc<str>> {
        let directory = self.directory.read();
        directory
            .profile(profile.0)
            .map(|entry| Arc::clone(&entry.name))
    }

    // ----- login ------------------------------------------------------------------------------

    /// Attempts a login; see [`LoginOutcome`] for what can come back.
    ///
    /// Order of the rules: unknown user; source IP outside the profile's login ranges; for UI
    /// sessions, a method below the profile's required level (step-up outcome); a STANDARD
    /// method from outside the trusted ranges on a device not remembered for the user
    /// (challenge); the concurrent-session cap; then the session is issued with the timeouts,
    /// IP lock and browser binding of the current policy.
    ///
    /// Locking: the directory read lock of this thread's stripe (released before the rest), the
    /// user's mutex, one shard write lock.
    pub fn login(&self, request: &LoginRequest<'_>) -> Result<LoginOutcome, Error> {
        self.login_with(request, None)
    }

    /// [`login`](Self::login), committing `also(handle)` in the new session's own commit (a
    /// durable engine): the OAuth grant records its scopes this way, so that a durable grant
    /// costs one commit and no token is handed out whose grant a restart would forget.
    pub(crate) fn login_with(
        &self,
        request: &LoginRequest<'_>,
        also: Option<&dyn Fn(Handle) -> StoreChange>,
    ) -> Result<LoginOutcome, Error> {
        let ip = request.ip.to_canonical();
        let now = self.now32();
        // Drawn first: the table lines the new session's selector is chosen among load while
        // the user is looked up (a few lines wasted when the login is denied or challenged).
        let draw = self.start_draw()?;
        let Some(context) = self.login_context(request.user, ip, request.method) else {
            self.emit(
                now,
                EventKind::LoginDenied(DenyReason::UnknownUser),
                None,
                None,
                Some(ip),
            );
            return Ok(LoginOutcome::Denied(DenyReason::UnknownUser));
        };
        let policy = context.policy;
        if !policy.ip_allowed {
            return Ok(self.deny(now, &context, ip, DenyReason::IpNotAllowed));
        }
        let level = policy.level;
        if request.session_type == SessionType::Ui && level < policy.required_level {
            return Ok(LoginOutcome::StepUpRequired {
                required: policy.required_level,
                offered: level,
            });
        }
        let device = request.device.map(sha256);
        if level == SecurityLevel::Standard && !policy.ip_trusted {
            let remembered =
                device.is_some_and(|device| context.sessions.lock().devices.contains(&device));
            if !remembered {
                return self.challenge(now, &context, request, ip, device);
            }
        }
        let terms = SessionTerms {
            method: request.method,
            session_type: request.session_type,
            level,
        };
        self.issue(now, context, ip, terms, draw, also)
    }

    /// Completes a challenge after the app verified the user out of band. With
    /// `remember_device`, the device id given at login is remembered for the user and not
    /// challenged again (up to [`MAX_REMEMBERED_DEVICES`] per user, the oldest forgotten
    /// first; a durable engine keeps them across restarts, as digests). A challenge works
    /// once, within [`CHALLENGE_LIFETIME`].
    ///
    /// The profile's login ranges and required level are checked again (the profile may have
    /// changed meanwhile): a UI login whose method no longer meets the level gets
    /// [`LoginOutcome::StepUpRequired`], as at login, and the challenge is used up.
    pub fn complete_challenge(
        &self,
        secret: &str,
        remember_device: bool,
    ) -> Result<LoginOutcome, Error> {
        let now = self.now32();
        let pending = if is_well_formed(secret) {
            self.challenges.lock().remove(&sha256(secret))
        } else {
            None
        };
        let Some(pending) = pending.filter(|pending| u64::from(now) < pending.expires_at) else {
            self.emit(
                now,
                EventKind::LoginDenied(DenyReason::ChallengeInvalid),
                None,
                None,
                None,
            );
            return Ok(LoginOutcome::Denied(DenyReason::ChallengeInvalid));
        };
        let Some(context) = self.login_context(&pending.user, pending.ip, pending.method) else {
            return Ok(LoginOutcome::Denied(DenyReason::UnknownUser));
        };
        if !context.policy.ip_allowed {
            return Ok(self.deny(now, &context, pending.ip, DenyReason::IpNotAllowed));
        }
        let level = context.policy.level;
        if pending.session_type == SessionType::Ui && level < context.policy.required_level {
            return Ok(LoginOutcome::StepUpRequired {
                required: context.policy.required_level,
                offered: level,
            });
        }
        if remember_device {
            if let Some(device) = pending.device {
                self.remember_device(&context, device);
            }
        }
        let terms = SessionTerms {
            method: pending.method,
            session_type: pending.session_type,
            level,
        };
        self.issue(now, context, pending.ip, terms, self.start_draw()?, None)
    }

    /// Remembers `device` for the context's user. A durable engine commits the user's whole
    /// list (a failure is kept for [`store_error`](Self::store_error); the device is
    /// remembered until the engine stops all the same) while holding the user's lock, so that
    /// two remembers of one user reach the store in the order they were made, and none after
    /// the user's removal (which marks the list under that lock before it commits).
    fn remember_device(&self, context: &LoginContext, device: [u8; 32]) {
        let mut sessions = context.sessions.lock();
        sessions.remember_device(device);
        if self.store.is_some() && !sessions.removed {
            self.persist_or_note(vec![StoreChange::DevicesRemembered {
                user: context.user_key,
                devices: sessions.devices.clone(),
            }]);
        }
    }

    /// What a login of `user` from `ip` with `method` needs from the directory, read under
    /// one directory read lock.
    fn login_context(&self, user: &str, ip: IpAddr, method: LoginMethod) -> Option<LoginContext> {
        let directory = self.directory.read();
        let entry = directory.user(user)?;
        // Cloning the user's session list `Arc` is a locked increment on its line, which
        // waits for the line: start loading it now, and clone it last.
        crate::raw::prefetch::prefetch_write(Arc::as_ptr(&entry.sessions) as usize);
        let profile = &directory.profile(entry.profile)?.profile;
        let settings = &directory.settings;
        let policy = LoginPolicy {
            ip_allowed: profile.allows(ip),
            ip_trusted: settings
                .trusted_ranges()
                .iter()
                .any(|net| net.contains(&ip)),
            level: settings.level_for(method),
            required_level: profile.required_level(),
            idle: profile
                .session_timeout()
                .unwrap_or(settings.inactivity_timeout()),
            max_length: profile
                .max_session_length()
                .unwrap_or(settings.max_session_length()),
            lock_to_ip: settings.lock_sessions_to_ip(),
            relogin_on_browser_close: settings.force_relogin_on_browser_close(),
            cap: profile.session_cap(),
        };
        Some(LoginContext {
            user: Arc::clone(&entry.id),
            user_key: entry.key,
            profile_key: entry.profile,
            policy,
            sessions: Arc::clone(&entry.sessions),
        })
    }

    fn deny(
        &self,
        now: u32,
        context: &LoginContext,
        ip: IpAddr,
        reason: DenyReason,
    ) -> LoginOutcome {
        self.emit(
            now,
            EventKind::LoginDenied(reason),
            None,
            Some(Arc::clone(&context.user)),
            Some(ip),
        );
        LoginOutcome::Denied(reason)
    }

    fn challenge(
        &self,
        now: u32,
        context: &LoginContext,
        request: &LoginRequest<'_>,
        ip: IpAddr,
        device: Option<[u8; 32]>,
    ) -> Result<LoginOutcome, Error> {
        let secret = Token::generate()?;
        let expires_at = u64::from(now) + CHALLENGE_LIFETIME.as_secs();
        {
            let mut challenges = self.challenges.lock();
            if challenges.len() >= MAX_PENDING_CHALLENGES {
                challenges.retain(|_, pending| pending.expires_at > u64::from(now));
                if challenges.len() >= MAX_PENDING_CHALLENGES {
                    // Still full of live ones: drop the closest to expiry.
                    if let Some(oldest) = challenges
                        .iter()
                        .min_by_key(|(_, pending)| pending.expires_at)
                        .map(|(key, _)| *key)
                    {
                        challenges.remove(&oldest);
                    }
                }
            }
            challenges.insert(
                sha256(secret.expose_secret()),
                PendingChallenge {
                    user: Arc::clone(&context.user),
                    ip,
                    method: request.method,
                    session_type: request.session_type,
                    device,
                    expires_at,
                },
            );
        }
        self.emit(
            now,
            EventKind::ChallengeIssued,
            None,
            Some(Arc::clone(&context.user)),
            Some(ip),
        );
        Ok(LoginOutcome::ChallengeRequired(Challenge {
            secret,
            expires_at,
        }))
    }

    fn issue(
        &self,
        now: u32,
        context: LoginContext,
        ip: IpAddr,
        terms: SessionTerms,
        draw: SelectorDraw,
        also: Option<&dyn Fn(Handle) -> StoreChange>,
    ) -> Result<LoginOutcome, Error> {
        let SessionTerms {
            method,
            session_type,
            level,
        } = terms;
        let policy = &context.policy;
        let idle = policy.idle;
        let absolute_deadline = clamp_u32(u64::from(now) + policy.max_length.as_secs());
        let browser_bound = policy.relogin_on_browser_close && session_type == SessionType::Ui;

        // Drawn before anything else, so that the slot the insert will probe is on its way
        // while the user's list is locked and pruned.
        let mut drawn = Some(self.draw_token(draw)?);
        let mut sessions = context.sessions.lock();
        if sessions.removed {
            drop(sessions);
            return Ok(self.deny(now, &context, ip, DenyReason::UnknownUser));
        }
        // The handle is pushed after the insert: the list's end loads meanwhile.
        let handles = &sessions.handles;
        crate::raw::prefetch::prefetch_write(handles.as_ptr().wrapping_add(handles.len()) as usize);
        let durable = self.store.is_some();
        let mut cap_ended = Vec::new();
        let cap = policy.cap;
        if sessions.wants_prune(cap.is_some(), now) {
            self.prune(&mut sessions, now);
        }
        if let Some(cap) = cap {
            let limit = cap.max_sessions as usize;
            if sessions.handles.len() >= limit {
                match cap.action {
                    CapAction::RefuseNew => {
                        drop(sessions);
                        return Ok(self.deny(now, &context, ip, DenyReason::SessionCap));
                    }
                    CapAction::EndOldest => {
                        let excess = sessions.handles.len() + 1 - limit;
                        let oldest: Vec<u64> = sessions.handles.drain(..excess).collect();
                        for hash in oldest {
                            if self.end_hash(hash, EndReason::SessionCap, now, Some(&context.user))
                                && durable
                            {
                                cap_ended.push(hash);
                            }
                        }
                    }
                }
            }
        }

        loop {
            let (token, digest) = match drawn.take() {
                Some(drawn) => drawn,
                None => self.draw_token(self.start_draw()?)?,
            };
            let record = Record::new(&NewRecord {
                digest: digest.0,
                origin: ip,
                now,
                absolute_deadline,
                idle_secs: clamp_u32(idle.as_secs()),
                user: context.user_key,
                profile: context.profile_key,
                level: level as u8,
                session_type: session_type as u8,
                method: method as u8,
                ip_locked: policy.lock_to_ip,
                browser_bound,
            });
            let hash = record.hash();
            let info = self.info(&record, record.last_seen.load(Ordering::Relaxed));
            let mut swept = Vec::new();
            let mut forgotten = Vec::new();
            {
                let index = (hash & self.shard_mask) as usize;
                let (mut shard, grown_out_of) =
                    self.resized(index, self.shards[index].write(), Table::class_to_grow);
                if shard.table.insert(record).is_err() {
                    // 64-bit handle collision (or a zero hash): draw another token.
                    drop(shard);
                    drop(grown_out_of);
                    continue;
                }
                let mut shrunk_out_of = None;
                if now >= shard.next_sweep {
                    shard.next_sweep = now.saturating_add(OPPORTUNISTIC_SWEEP_INTERVAL);
                    let forgotten = durable.then_some(&mut forgotten);
                    self.sweep_locked(&mut shard, now, &mut swept, forgotten);
                    (shard, shrunk_out_of) = self.resized(index, shard, Table::class_to_shrink);
                }
                drop(shard);
                drop((grown_out_of, shrunk_out_of));
            }
            sessions.push_handle(hash, info.valid_until);
            drop(sessions);
            self.emit_expired(now, swept);
            if durable {
                let mut changes = Vec::with_capacity(2 + cap_ended.len() + forgotten.len());
                changes.push(StoreChange::Created(StoredSession {
                    digest: digest.0,
                    origin: ip,
                    created: now,
                    last_activity: now,
                    absolute_deadline,
                    idle_secs: info.idle_timeout_secs,
                    user: context.user_key,
                    profile: context.profile_key,
                    level,
                    session_type,
                    method,
                    ip_locked: info.ip_locked,
                    browser_bound,
                    ended: None,
                }));
                changes.extend(also.map(|also| also(info.handle)));
                changes.extend(Self::ends(&cap_ended, EndReason::SessionCap, now));
                changes.extend(
                    forgotten
                        .into_iter()
                        .map(|handle| StoreChange::Forget { handle }),
                );
                if let Err(err) = self.persist(changes) {
                    // Not durable: the token is never handed out, and the session goes.
                    self.shard(hash)
                        .write()
                        .table
                        .retain(|record| record.hash() != hash);
                    context
                        .sessions
                        .lock()
                        .handles
                        .retain(|&other| other != hash);
                    return Err(err);
                }
            }
            self.emit(
                now,
                EventKind::Created {
                    session_type,
                    level,
                },
                Some(info.handle),
                // Moved, not cloned: a clone and the context's drop were two locked
                // instructions on the user's id, each waiting for the login's stores to drain
                // (`perf` put a sixth of `issue`'s samples on the clone; logins per second
                // moved by less than this host's noise, 1.4-2.4 M/s between runs).
                Some(context.user),
                Some(ip),
            );
            return Ok(LoginOutcome::Issued(Issued {
                token,
                session: info,
            }));
        }
    }

    /// The random draw a new session's selector will be chosen from (see
    /// [`choose_selector`](Self::choose_selector)), its candidates' home lines requested:
    /// a login draws first, so that those misses overlap with looking the user up.
    fn start_draw(&self) -> Result<SelectorDraw, Error> {
        let drawn = random_u64()?;
        let shard = self.shard(drawn);
        for candidate in selector_candidates(drawn, self.shard_mask) {
            shard.slots_hint.prefetch_home_line(candidate);
        }
        Ok(SelectorDraw(drawn))
    }

    /// A fresh token from `draw` and its digest, the lines its insert will probe already on
    /// their way.
    fn draw_token(&self, draw: SelectorDraw) -> Result<(Token, TokenDigest), Error> {
        let (token, selector) = Token::generate_with(draw.0, |drawn| self.choose_selector(drawn))?;
        // Made well-formed, so not checked again (a test checks that generated tokens are).
        let digest = TokenDigest::of_token(token.expose_secret(), selector);
        Ok((token, digest))
    }

    /// The selector a new session takes, given a random draw: the roomiest of
    /// [`SELECTOR_CANDIDATES`](crate::table::SELECTOR_CANDIDATES) selectors derived from it
    /// (see [`Table::roomiest`]), so that its record sits at its home slot and every
    /// validation of it reads one line.
    ///
    /// The candidates share the draw's shard bits, so one read lock sees all their slots;
    /// their home lines were requested together (by [`start_draw`](Self::start_draw)), so
    /// choosing costs at most about one miss. If a concurrent login takes the chosen slot
    /// first, the insert still succeeds, one slot on.
    fn choose_selector(&self, drawn: u64) -> u64 {
        let candidates = selector_candidates(drawn, self.shard_mask);
        let shard = self.shard(drawn);
        let state = shard.state.read();
        let chosen = state.table.roomiest(&candidates).unwrap_or(candidates[0]);
        drop(state);
        shard.slots_hint.prefetch(chosen);
        chosen
    }

    /// Drops handles of sessions that are no longer live from a user's list.
    ///
    /// The handles are random table positions: each lookup's lines are prefetched a few
    /// handles ahead (as in [`validate_many`](Self::validate_many)), so the misses overlap.
    fn prune(&self, sessions: &mut UserSessions, now: u32) {
        const AHEAD: usize = 4;
        let handles = &mut sessions.handles;
        let prefetch = |hash: u64| self.shard(hash).slots_hint.prefetch(hash);
        handles.iter().take(AHEAD).copied().for_each(prefetch);
        let mut kept = 0;
        let mut first_expiry = u64::MAX;
        for index in 0..handles.len() {
            if let Some(&ahead) = handles.get(index + AHEAD) {
                prefetch(ahead);
            }
            let hash = handles[index];
            let shard = self.shard(hash).state.read();
            let live_until = shard
                .table
                .find_hash(hash)
                .filter(|record| record.is_live(u64::from(now)))
                .map(|record| record.valid_until(record.last_seen.load(Ordering::Relaxed)));
            drop(shard);
            if let Some(live_until) = live_until {
                handles[kept] = hash;
                kept += 1;
                first_expiry = first_expiry.min(live_until);
            }
        }
        handles.truncate(kept);
        sessions.pruned_len = kept;
        sessions.first_expiry = clamp_u32(first_expiry);
    }

    // ----- validation -------------------------------------------------------------------------

    /// Checks a token presented from `ip` for `requirement`; on success refreshes last activity
    /// and returns the session's public facts, otherwise exactly one [`Refusal`].
    ///
    /// Order of the checks: malformed, unknown, ended, expired (idle or absolute, whichever came
    /// first), IP mismatch (locked sessions), IP outside login ranges (when enforced per
    /// request), step-up required. A refused request never refreshes last activity.
    ///
    /// Locking: one shard read lock; allocation-free on success and on the silent refusals
    /// (malformed, unknown, ended). Refusals that emit an event resolve the user's id after the
    /// lock is released.
    ///
    /// # Examples
    ///
    /// ```
    /// use sessionward_core::{Engine, Refusal, Requirement};
    ///
    /// let engine = Engine::builder().build().unwrap();
    /// let ip = "10.0.0.1".parse().unwrap();
    /// assert_eq!(engine.validate("swd_nope", ip, Requirement::Any), Err(Refusal::Malformed));
    /// ```
    // Always inlined, with everything it calls up to the record's facts: a caller then builds
    // only the facts it reads, and in a loop the next call's table miss can start before this
    // one's has arrived. Left to the compiler, inlining came and went with unrelated code (one
    // more caller in the binary was enough), and single-call throughput at 1 M sessions with
    // it: 7.25 M/s on one thread inlined, 5.09 not (`--example single_call`, one process).
    #[inline(always)]
    pub fn validate(
        &self,
        token: &str,
        ip: IpAddr,
        requirement: Requirement<'_>,
    ) -> Result<SessionInfo, Refusal> {
        let selector = self.check_and_prefetch(token).ok_or(Refusal::Malformed)?;
        let digest = TokenDigest::of_token(token, selector);
        self.validate_digest(
            &digest,
            ip.to_canonical(),
            requirement,
            self.now32(),
            Refresh::Yes,
        )
    }

    /// Checks `token`'s shape and checksum and starts loading what its lookup will read;
    /// its selector if it is well-formed.
    ///
    /// The selector names the home slot: its line and the next (where logins put nearly
    /// every record, see `choose_selector`) are requested first, so that the miss overlaps
    /// with the checksum and the SHA-256 that follow instead of coming after them. The shard's
    /// lock line (the read lock's atomic add needs it exclusive, and the other core may hold
    /// it) only once the token is well-formed, so that a flood of malformed tokens does not
    /// pull lock lines away from real validations.
    #[inline(always)]
    fn check_and_prefetch(&self, token: &str) -> Option<u64> {
        let selector = selector_of(token)?;
        let shard = self.shard(selector);
        shard.slots_hint.prefetch(selector);
        if !rest_is_well_formed(token) {
            return None;
        }
        crate::raw::prefetch::prefetch_write(std::ptr::from_ref(&shard.state) as usize);
        Some(selector)
    }

    /// [`check_and_prefetch`](Self::check_and_prefetch) for a batch, which checks the whole
    /// token before it requests any line: a batch requests a group's lines a group ahead of
    /// its lookups, so the check's few nanoseconds delay nothing, while a malformed token's
    /// two lines, requested and never read, took memory bandwidth and miss buffers from the
    /// tokens around it. Measured in one process, alternating (1 M sessions, batches of 64,
    /// brief answers): malformed tokens 19.67 -> 27.73 M/s on one thread and 39.25 -> 54.52
    /// on two, well-formed ones 10.74 -> 10.98 and 20.70 -> 20.98 (medians of 10). A single
    /// call keeps the other order: there the check overlaps with the line's miss, and
    /// checking first cost hits 30 % (7.42 -> 5.27 M/s on one thread).
    #[inline(always)]
    fn check_then_prefetch(&self, token: &str) -> Option<u64> {
        let selector = selector_of(token)?;
        if !rest_is_well_formed(token) {
            return None;
        }
        let shard = self.shard(selector);
        shard.slots_hint.prefetch(selector);
        crate::raw::prefetch::prefetch_write(std::ptr::from_ref(&shard.state) as usize);
        Some(selector)
    }

    /// Validates many tokens at once (for gateways and bindings): `results[i]` is what
    /// [`validate`](Self::validate) would return for `tokens[i]` from `ips[i]` (or from `ips[0]`
    /// when one address is given for all). A well-formed token with no address (`ips` empty, or
    /// longer than one address and shorter than `tokens`) is refused with
    /// [`Refusal::IpMismatch`] and not looked up: a mismatched batch never borrows another
    /// request's address. Reads the clock once.
    ///
    /// A software pipeline over groups of four tokens: the next group is checked
    /// (shape and checksum, once per token) and the lines of its well-formed tokens' lookups
    /// (each one's two slots and its shard's lock) are put on their way before this group is
    /// hashed and looked up, so the cache misses overlap with the hashing instead of following
    /// it. Within a group, well-formed neighbours are hashed in pairs, their compressions
    /// interleaved (see `raw::sha256`).
    ///
    /// Locking: per token, one shard read lock for the lookup (prefetching takes none).
    ///
    /// A gateway that forwards only whose session it is can call
    /// [`validate_many_brief`](Self::validate_many_brief) instead, which does the same checks
    /// and builds less.
    pub fn validate_many<S: AsRef<str>>(
        &self,
        tokens: &[S],
        ips: &[IpAddr],
        requirement: Requirement<'_>,
        results: &mut Vec<Result<SessionInfo, Refusal>>,
    ) {
        self.validate_batch(tokens, ips, requirement, results, |info| info);
    }

    /// [`validate_many`](Self::validate_many) answering each accepted token with a
    /// [`SessionBrief`] (handle, user, profile, type and level) instead of the whole
    /// [`SessionInfo`]: the same checks, refusals, events and refreshed activity, for callers
    /// that forward only whose session it is (a gateway, the Python binding's `check_many`).
    ///
    /// Measured with the two alternating in one process (`cargo run --release -p
    /// sessionward-bench --example batch_shapes`), 10 k and 1 M sessions: 8-13 % more
    /// validations per second, since a brief is 16 bytes where a `SessionInfo` is 72, and the
    /// facts it leaves out (times, the source address) are never computed.
    ///
    /// # Examples
    ///
    /// ```
    /// use sessionward_core::*;
    ///
    /// let engine = Engine::builder().build()?;
    /// engine.add_profile(Profile::builder("staff").build()?)?;
    /// let ada = engine.add_user("ada", "staff")?;
    /// let office = "10.0.0.1".parse()?;
    /// let request = LoginRequest::new("ada", office).method(LoginMethod::Mfa);
    /// let issued = engine.login(&request)?.issued().unwrap();
    /// let tokens = [issued.token.expose_secret(), "swd_nope"];
    /// let mut briefs = Vec::new();
    /// engine.validate_many_brief(&tokens, &[office], Requirement::Any, &mut briefs);
    /// assert_eq!(briefs[0].map(|brief| brief.user), Ok(ada));
    /// assert_eq!(briefs[0].map(|brief| brief.handle), Ok(issued.session.handle));
    /// assert_eq!(briefs[1], Err(Refusal::Malformed));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn validate_many_brief<S: AsRef<str>>(
        &self,
        tokens: &[S],
        ips: &[IpAddr],
        requirement: Requirement<'_>,
        results: &mut Vec<Result<SessionBrief, Refusal>>,
    ) {
        self.validate_batch(tokens, ips, requirement, results, SessionBrief::from);
    }

    /// The pipeline of [`validate_many`](Self::validate_many); `answer` shapes each accepted
    /// token's result. Everything down to the record's facts is inlined into it, so the
    /// facts an answer leaves out are never built.
    #[inline(always)]
    fn validate_batch<S: AsRef<str>, T>(
        &self,
        tokens: &[S],
        ips: &[IpAddr],
        requirement: Requirement<'_>,
        results: &mut Vec<Result<T, Refusal>>,
        answer: impl Fn(SessionInfo) -> T,
    ) {
        let now = self.now32();
        results.clear();
        results.reserve(tokens.len());
        // One address for the whole batch (a gateway's common case) is made canonical once.
        let shared_ip = match ips {
            [ip] => Some(ip.to_canonical()),
            _ => None,
        };
        // Each token's selector if it is well-formed, its lines requested.
        let check_group = |group: &[S]| {
            let mut selectors = [None; BATCH_GROUP];
            for (selector, token) in selectors.iter_mut().zip(group) {
                *selector = self.check_then_prefetch(token.as_ref());
            }
            selectors
        };
        let mut groups = tokens.chunks(BATCH_GROUP);
        let mut next = groups.next().map(|group| (group, check_group(group)));
        let mut first_index = 0;
        while let Some((group, selectors)) = next {
            next = groups.next().map(|group| (group, check_group(group)));
            let mut digests = [None; BATCH_GROUP];
            let mut at = 0;
            while at < group.len() {
                match (selectors[at], selectors.get(at + 1).copied().flatten()) {
                    (Some(selector), Some(next_selector)) => {
                        let [digest, next_digest] = TokenDigest::of_token_pair(
                            [group[at].as_ref(), group[at + 1].as_ref()],
                            [selector, next_selector],
                        );
                        digests[at] = Some(digest);
                        digests[at + 1] = Some(next_digest);
                        at += 2;
                    }
                    (Some(selector), None) => {
                        digests[at] = Some(TokenDigest::of_token(group[at].as_ref(), selector));
                        at += 1;
                    }
                    (None, _) => at += 1,
                }
            }
            // `extend` over the group (its length known up front) rather than a `push` per
            // token, which checks the capacity and stores the length each time.
            results.extend(
                digests[..group.len()]
                    .iter()
                    .enumerate()
                    .map(|(at, digest)| {
                        let ip = shared_ip
                            .or_else(|| ips.get(first_index + at).map(|ip| ip.to_canonical()));
                        match (digest, ip) {
                            (Some(digest), Some(ip)) => self
                                .validate_digest(digest, ip, requirement, now, Refresh::Yes)
                                .map(&answer),
                            (None, _) => Err(Refusal::Malformed),
                            (Some(_), None) => Err(Refusal::IpMismatch),
                        }
                    }),
            );
            first_index += group.len();
        }
    }

    /// Everything [`validate`](Self::validate) checks, without refreshing last activity: for
    /// callers that still have a check of their own to make (an access token's scope) and must
    /// not keep a session alive with a request they then refuse.
    pub(crate) fn check(
        &self,
        token: &str,
        ip: IpAddr,
        requirement: Requirement<'_>,
    ) -> Result<SessionInfo, Refusal> {
        let digest = TokenDigest::of_well_formed(token).ok_or(Refusal::Malformed)?;
        self.validate_digest(
            &digest,
            ip.to_canonical(),
            requirement,
            self.now32(),
            Refresh::No,
        )
    }

    /// The validation proper; `refresh` says what a pass changes. Always inlined (see
    /// [`validate`](Self::validate)); its refusals' events are out of line (`emit_for`).
    #[inline(always)]
    fn validate_digest(
        &self,
        digest: &TokenDigest,
        ip: IpAddr,
        requirement: Requirement<'_>,
        now: u32,
        refresh: Refresh,
    ) -> Result<SessionInfo, Refusal> {
        let shard = self.shard(digest.handle().0).state.read();
        let record = shard.table.find(&digest.0).ok_or(Refusal::Unknown)?;
        let state = record.state.load(Ordering::Acquire);
        if let Some(reason) = EndReason::from_u8(state & REASON_MASK) {
            return Err(Refusal::Ended(reason));
        }
        let last_seen = record.last_seen.load(Ordering::Relaxed);
        // A reported expiry is final (see `Record::is_live`), even if a validation that read
        // an earlier second refreshed last activity after the report.
        if state & EXPIRY_REPORTED != 0 || u64::from(now) >= record.valid_until(last_seen) {
            let kind = record.expiry_kind(last_seen);
            let first_report = state & EXPIRY_REPORTED == 0
                && record.state.fetch_or(EXPIRY_REPORTED, Ordering::AcqRel) & EXPIRY_REPORTED == 0;
            if first_report {
                let (hash, user) = (record.hash(), record.user);
                drop(shard);
                self.emit_for(now, EventKind::Expired(kind), hash, user, None);
            }
            return Err(Refusal::Expired(kind));
        }
        if record.ip_locked() && !record.origin_is(ip) {
            let (hash, user) = (record.hash(), record.user);
            drop(shard);
            self.emit_for(now, EventKind::IpMismatch, hash, user, Some(ip));
            return Err(Refusal::IpMismatch);
        }
        let policy = &shard.policy;
        if policy.enforce_login_ranges && !policy.allows(record.profile, ip) {
            let (hash, user) = (record.hash(), record.user);
            drop(shard);
            self.emit_for(now, EventKind::IpNotAllowed, hash, user, Some(ip));
            return Err(Refusal::IpNotAllowed);
        }
        let current = SecurityLevel::from_u8(Record::level_in(state));
        let required = match requirement {
            Requirement::Any => None,
            Requirement::Level(level) => Some(level),
            Requirement::Operation(operation) => policy
                .high_assurance_operations
                .contains(operation)
                .then_some(SecurityLevel::HighAssurance),
        };
        if let Some(required) = required.filter(|&required| current < required) {
            let (hash, user) = (record.hash(), record.user);
            drop(shard);
            self.emit_for(now, EventKind::StepUpRequired, hash, user, Some(ip));
            return Err(Refusal::StepUpRequired { required, current });
        }
        if refresh == Refresh::No {
            let facts = RecordFacts::of(record);
            drop(shard);
            return Ok(facts.info(last_seen));
        }
        if now > last_seen {
            // Racing validations may store an older second than the newest; the loss is at most
            // one second of idle time, which only makes the session expire earlier.
            record.last_seen.store(now, Ordering::Relaxed);
        }
        // The facts as they were before a raise: `step_up` compares them with the raised level
        // to emit its event and persist the change.
        let facts = RecordFacts::of(record);
        if let Refresh::AndRaiseTo(level) = refresh {
            record.raise_level(level as u8);
        }
        // The result is built after the unlock, from the copied facts, so that nothing stands
        // between building it and returning it: the compiler then writes it straight into
        // the caller's slot. Built before the unlock, it went to the stack and was copied,
        // and the copy's wide loads of its narrow fresh stores stalled (a store-to-load
        // forwarding failure, a tenth of a batched validation).
        drop(shard);
        Ok(facts.info(now.max(last_seen)))
    }

    #[inline]
    fn info(&self, record: &Record, last_seen: u32) -> SessionInfo {
        RecordFacts::of(record).info(last_seen)
    }

    /// Raises a session's level after the app verified the user with `method` (e.g. MFA). The
    /// session must validate from `ip` first. Returns the updated facts.
    pub fn step_up(
        &self,
        token: &str,
        ip: IpAddr,
        method: LoginMethod,
    ) -> Result<SessionInfo, Refusal> {
        let digest = TokenDigest::of_well_formed(token).ok_or(Refusal::Malformed)?;
        let level = self.directory.read().settings.level_for(method);
        let now = self.now32();
        let info = self.validate_digest(
            &digest,
            ip.to_canonical(),
            Requirement::Any,
            now,
            Refresh::AndRaiseTo(level),
        )?;
        // `info` was read before the raise; report the raised level.
        let raised = SessionInfo {
            level: info.level.max(level),
            ..info
        };
        if raised.level > info.level {
            if self.store.is_some() {
                self.persist_or_note(vec![StoreChange::SteppedUp {
                    handle: info.handle.0,
                    level: raised.level,
                }]);
            }
            self.emit_for(
                now,
                EventKind::SteppedUp(raised.level),
                info.handle.0,
                info.user.0,
                Some(ip),
            );
        }
        Ok(raised)
    }

    // ----- ending sessions ----------------------------------------------------------------------

    /// Ends the session of this token (logout). Refused like a validation if the token is
    /// malformed, unknown, already ended or expired; no IP check (whoever holds the token may
    /// end it).
    pub fn logout(&self, token: &str) -> Result<(), Refusal> {
        self.end_token(token, EndReason::Logout, |_| true)
            .map(|_| ())
    }

    /// The browser was closed: ends the session if it is browser-bound (returns `true`); other
    /// sessions are left alone (`false`).
    pub fn browser_closed(&self, token: &str) -> Result<bool, Refusal> {
        self.end_token(token, EndReason::BrowserClosed, Record::browser_bound)
    }

    fn end_token(
        &self,
        token: &str,
        reason: EndReason,
        applies: impl Fn(&Record) -> bool,
    ) -> Result<bool, Refusal> {
        let digest = TokenDigest::of_well_formed(token).ok_or(Refusal::Malformed)?;
        let now = self.now32();
        let shard = self.shard(digest.handle().0).state.read();
        let record = shard.table.find(&digest.0).ok_or(Refusal::Unknown)?;
        if let Some(ended) = EndReason::from_u8(record.end_reason()) {
            return Err(Refusal::Ended(ended));
        }
        let last_seen = record.last_seen.load(Ordering::Relaxed);
        if !record.is_live(u64::from(now)) {
            return Err(Refusal::Expired(record.expiry_kind(last_seen)));
        }
        if !applies(record) {
            return Ok(false);
        }
        let ended = record.end(reason as u8, now);
        let (hash, user) = (record.hash(), record.user);
        drop(shard);
        if ended {
            if self.store.is_some() {
                self.persist_or_note(Self::ends(&[hash], reason, now));
            }
            self.emit_for(now, EventKind::Ended(reason), hash, user, None);
        }
        Ok(ended)
    }

    /// The live session with this public handle (the admin view of one session), or `None` if
    /// it ended, expired or is unknown. Reads only: last activity is not refreshed.
    ///
    /// Locking: one shard read lock.
    pub fn session(&self, handle: Handle) -> Option<SessionInfo> {
        let now = u64::from(self.now32());
        let shard = self.shard(handle.0).state.read();
        let record = shard
            .table
            .find_hash(handle.0)
            .filter(|record| record.is_live(now))?;
        let facts = RecordFacts::of(record);
        let last_seen = record.last_seen.load(Ordering::Relaxed);
        drop(shard);
        Some(facts.info(last_seen))
    }

    /// Ends one session by its public handle (admin "End Session"); whether a live session ended.
    ///
    /// Locking: one shard read lock.
    pub fn end_session(&self, handle: Handle) -> bool {
        let now = self.now32();
        let ended = self.end_hash(handle.0, EndReason::Admin, now, None);
        if ended && self.store.is_some() {
            self.persist_or_note(Self::ends(&[handle.0], EndReason::Admin, now));
        }
        ended
    }

    fn end_hash(&self, hash: u64, reason: EndReason, now: u32, user: Option<&Arc<str>>) -> bool {
        let shard = self.shard(hash).state.read();
        let Some(record) = shard.table.find_hash(hash) else {
            return false;
        };
        let ended = record.end(reason as u8, now);
        let user_key = record.user;
        drop(shard);
        if ended {
            match user {
                Some(user) => self.emit(
                    now,
                    EventKind::Ended(reason),
                    Some(Handle(hash)),
                    Some(Arc::clone(user)),
                    None,
                ),
                None => self.emit_for(now, EventKind::Ended(reason), hash, user_key, None),
            }
        }
        ended
    }

    /// Ends the sessions in a user's list; returns the handles that ended.
    fn end_handles(
        &self,
        sessions: &mut UserSessions,
        reason: EndReason,
        user: Option<&str>,
        now: u32,
    ) -> Vec<u64> {
        let user: Option<Arc<str>> = user.map(Into::into);
        let handles = std::mem::take(&mut sessions.handles);
        sessions.pruned_len = 0;
        sessions.first_expiry = u32::MAX;
        handles
            .into_iter()
            .filter(|&hash| self.end_hash(hash, reason, now, user.as_ref()))
            .collect()
    }

    /// Ends all of a user's sessions (admin action); returns how many ended.
    ///
    /// Locking: the user's mutex, then one shard read lock per session of the user.
    pub fn end_user_sessions(&self, user: &str) -> Result<usize, Error> {
        self.end_user(user, EndReason::Admin)
    }

    /// A password reset: ends all of the user's sessions with reason `password_reset`.
    pub fn reset_password(&self, user: &str) -> Result<usize, Error> {
        self.end_user(user, EndReason::PasswordReset)
    }

    fn end_user(&self, user: &str, reason: EndReason) -> Result<usize, Error> {
        let sessions = {
            let directory = self.directory.read();
            let entry = directory.user(user).ok_or_else(|| Error::UnknownUser {
                user: crate::error::shorten(user),
            })?;
            Arc::clone(&entry.sessions)
        };
        let mut sessions = sessions.lock();
        let now = self.now32();
        let ended = self.end_handles(&mut sessions, reason, Some(user), now);
        drop(sessions);
        if self.store.is_some() {
            self.persist(Self::ends(&ended, reason, now))?;
        }
        Ok(ended.len())
    }

    /// Ends every session created under a profile; returns how many ended.
    ///
    /// Locking: each shard's read lock in turn; validations are never blocked.
    pub fn end_profile_sessions(&self, profile: &str) -> Result<usize, Error> {
        let key = self.directory.read().profile_key(profile)?;
        Ok(self.end_matching(EndReason::ProfileWide, |record| record.profile == key))
    }

    /// Ends every session in the org; returns how many ended.
    pub fn end_all_sessions(&self) -> usize {
        self.end_matching(EndReason::OrgWide, |_| true)
    }

    /// Ends every session whose source IP is inside `range`; returns how many ended.
    ///
    /// An IPv4-mapped range (`::ffff:10.0.0.0/104`) is its IPv4 form, as in
    /// [`parse_cidr`](crate::parse_cidr) and the listing's source filter: origins are stored
    /// in canonical form, so the mapped spelling would otherwise match nothing.
    pub fn end_sessions_from(&self, range: IpNet) -> usize {
        let range = canonical_net(range);
        self.end_matching(EndReason::SourceRange, |record| {
            range.contains(&record.origin_ip())
        })
    }

    /// Ends every matching session, then commits one end per session that ended (a store
    /// failure is kept for [`store_error`](Self::store_error)).
    fn end_matching(&self, reason: EndReason, matches: impl Fn(&Record) -> bool) -> usize {
        let now = self.now32();
        let ended = self.end_matching_in_memory(reason, now, matches);
        if self.store.is_some() {
            self.persist_or_note(Self::ends(&ended, reason, now));
        }
        ended.len()
    }

    /// Ends every matching session in memory and emits the events; returns their handles.
    ///
    /// Bulk ends are persisted as one end per session rather than as an epoch record: the
    /// set on disk is then exactly the set that ended in memory, with no sequence number in
    /// the 64-byte record and no lock shared with logins (see `docs/durability.md`).
    fn end_matching_in_memory(
        &self,
        reason: EndReason,
        now: u32,
        matches: impl Fn(&Record) -> bool,
    ) -> Vec<u64> {
        let mut ended = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.state.read();
            for record in shard.table.iter() {
                if matches(record) && record.end(reason as u8, now) {
                    ended.push((record.hash(), record.user));
                }
            }
        }
        for &(hash, user) in &ended {
            self.emit_for(now, EventKind::Ended(reason), hash, user, None);
        }
        ended.into_iter().map(|(hash, _)| hash).collect()
    }

    // ----- listing, sweeping, stats ----------------------------------------------------------

    /// One page of the active sessions matching `filter`, ordered by handle, starting after
    /// `after`; `limit` is 1..=10,000. Expired and ended sessions never appear.
    ///
    /// Locking: each shard's read lock in turn, then the directory read lock.
    pub fn sessions(
        &self,
        filter: &SessionFilter,
        after: Option<Handle>,
        limit: usize,
    ) -> Result<SessionPage, Error> {
        if !(1..=MAX_PAGE_SIZE).contains(&limit) {
            return Err(Error::OutOfRange {
                field: "limit",
                value: limit.to_string(),
                allowed: "1..=10000",
            });
        }
        let (user, profile) = {
            let directory = self.directory.read();
            let user = filter
                .user
                .as_ref()
                .map(|id| directory.user(id).map(|entry| entry.key));
            let profile = match &filter.profile {
                Some(name) => Some(directory.profile_key(name)?),
                None => None,
            };
            (user, profile)
        };
        if user == Some(None) {
            return Err(Error::UnknownUser {
                user: crate::error::shorten(filter.user.as_deref().unwrap_or_default()),
            });
        }
        let user = user.flatten();
        let source = filter.source.map(canonical_net);
        let now = u64::from(self.now32());
        let mut matching = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.state.read();
            for record in shard.table.iter() {
                if !record.is_live(now)
                    || user.is_some_and(|key| key != record.user)
                    || profile.is_some_and(|key| key != record.profile)
                    || filter
                        .session_type
                        .is_some_and(|kind| kind as u8 != record.session_type())
                    || filter
                        .level
                        .is_some_and(|level| level as u8 != record.level())
                    || source.is_some_and(|net| !net.contains(&record.origin_ip()))
                {
                    continue;
                }
                matching.push(self.info(record, record.last_seen.load(Ordering::Relaxed)));
            }
        }
        matching.sort_unstable_by_key(|info| info.handle);
        let total = matching.len();
        let start = after.map_or(0, |after| {
            matching.partition_point(|info| info.handle <= after)
        });
        let page: Vec<SessionInfo> = matching.iter().skip(start).take(limit).copied().collect();
        let next = (start + page.len() < total)
            .then(|| page.last().map(|info| info.handle))
            .flatten();
        let directory = self.directory.read();
        let rows = page
            .into_iter()
            .map(|info| SessionRow {
                user_id: directory
                    .users
                    .get(info.user.0 as usize)
                    .and_then(Option::as_ref)
                    .map_or_else(|| Arc::from("(removed)"), |entry| Arc::clone(&entry.id)),
                profile_name: directory
                    .profile(info.profile.0)
                    .map_or_else(|| Arc::from("(removed)"), |entry| Arc::clone(&entry.name)),
                info,
            })
            .collect();
        Ok(SessionPage { rows, total, next })
    }

    /// Sweeps the next `shards` shards (round robin): reports newly expired sessions and drops
    /// tombstones older than the retention. Each shard is locked for writing on its own, so a
    /// sweep delays validations of one shard at a time, for that shard's share of the table.
    pub fn sweep(&self, shards: usize) -> SweepStats {
        let now = self.now32();
        let mut stats = SweepStats::default();
        let mut expired = Vec::new();
        let mut forgotten = Vec::new();
        for _ in 0..shards.min(self.shards.len()) {
            let index =
                self.sweep_cursor.fetch_add(1, Ordering::Relaxed) & self.shard_mask as usize;
            let mut shard = self.shards[index].write();
            let before = expired.len();
            let forget = self.store.is_some().then_some(&mut forgotten);
            stats.removed += self.sweep_locked(&mut shard, now, &mut expired, forget);
            stats.shards += 1;
            stats.expired += expired.len() - before;
            let (shard, shrunk_out_of) = self.resized(index, shard, Table::class_to_shrink);
            drop(shard);
            drop(shrunk_out_of);
            self.emit_expired(now, std::mem::take(&mut expired));
        }
        if !forgotten.is_empty() {
            self.persist_or_note(
                forgotten
                    .into_iter()
                    .map(|handle| StoreChange::Forget { handle })
                    .collect(),
            );
        }
        stats
    }

    /// Sweeps every shard once.
    pub fn sweep_all(&self) -> SweepStats {
        self.sweep(self.shards.len())
    }

    /// Sweeps one locked shard; with `forgotten`, collects the handles of dropped records.
    fn sweep_locked(
        &self,
        shard: &mut ShardState,
        now: u32,
        expired: &mut Vec<(u64, u32, ExpiryKind)>,
        mut forgotten: Option<&mut Vec<u64>>,
    ) -> usize {
        let retention = self.tombstone_retention;
        let now64 = u64::from(now);
        shard.table.retain(|record| {
            let state = record.state.load(Ordering::Acquire);
            let last_seen = record.last_seen.load(Ordering::Relaxed);
            if state & REASON_MASK == STATE_LIVE
                && state & EXPIRY_REPORTED == 0
                && now64 >= record.valid_until(last_seen)
            {
                record.state.fetch_or(EXPIRY_REPORTED, Ordering::AcqRel);
                expired.push((record.hash(), record.user, record.expiry_kind(last_seen)));
            }
            let keep = now64 < record.removable_at(retention);
            if !keep {
                if let Some(forgotten) = forgotten.as_mut() {
                    forgotten.push(record.hash());
                }
            }
            keep
        })
    }

    /// Counts live sessions and records. Walks every shard (read locks): for monitoring, not
    /// for hot paths.
    pub fn stats(&self) -> TableStats {
        let now = u64::from(self.now32());
        let mut stats = TableStats::default();
        for shard in self.shards.iter() {
            let shard = shard.state.read();
            stats.records += shard.table.len();
            stats.capacity += shard.table.capacity();
            stats.at_home += shard.table.at_home();
            stats.live += shard
                .table
                .iter()
                .filter(|record| record.is_live(now))
                .count();
        }
        stats
    }

    // ----- events -------------------------------------------------------------------------------

    /// Takes the buffered events, oldest first: the most recent
    /// [`event_capacity`](EngineBuilder::event_capacity) of them. Events of one thread come in
    /// the order it emitted them, and an event that happened after another (a session ended by
    /// a thread that was handed its token after the login) comes after it.
    pub fn drain_events(&self) -> Vec<Event> {
        self.events.drain()
    }

    /// How many events were dropped because the buffer was full (counted when a thread's
    /// share overflows, or when a drain finds more than the capacity).
    pub fn dropped_events(&self) -> u64 {
        self.events.dropped()
    }

    /// Calls `listener` for every future event.
    pub fn subscribe(&self, listener: EventListener) {
        self.events.subscribe(listener);
    }

    /// A denied login attempt that names no user (an OAuth client's wrong secret), for the
    /// audit stream.
    pub(crate) fn emit_denied(&self, reason: DenyReason, ip: IpAddr) {
        self.emit(
            self.now32(),
            EventKind::LoginDenied(reason),
            None,
            None,
            Some(ip.to_canonical()),
        );
    }

    fn emit(
        &self,
        now: u32,
        kind: EventKind,
        handle: Option<Handle>,
        user: Option<Arc<str>>,
        ip: Option<IpAddr>,
    ) {
        if !self.events.wanted() {
            return;
        }
        self.events.emit(Event {
            at: u64::from(now),
            kind,
            handle,
            user,
            ip,
        });
    }

    /// Emits an event about a record, resolving the user's id (the directory read lock).
    /// Cold and out of line: validations that refuse with an event call it, and the validation
    /// path is inlined into every caller.
    #[cold]
    #[inline(never)]
    fn emit_for(&self, now: u32, kind: EventKind, hash: u64, user: u32, ip: Option<IpAddr>) {
        if !self.events.wanted() {
            return;
        }
        let user = self.user_id(UserKey(user));
        self.emit(now, kind, Some(Handle(hash)), user, ip);
    }

    fn emit_expired(&self, now: u32, expired: Vec<(u64, u32, ExpiryKind)>) {
        for (hash, user, kind) in expired {
            self.emit_for(now, EventKind::Expired(kind), hash, user, None);
        }
    }
}

/// What a validation that passes changes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Refresh {
    /// Nothing: a check only.
    No,
    /// Last activity (every validation).
    Yes,
    /// Last activity, and the level raised to at least this one (step-up).
    AndRaiseTo(SecurityLevel),
}

/// What a login asks its new session to be.
#[derive(Clone, Copy)]
struct SessionTerms {
    method: LoginMethod,
    session_type: SessionType,
    level: SecurityLevel,
}

/// A random draw for a new session's selector whose candidates' table lines were requested
/// ([`Engine::start_draw`]); consumed by one token.
struct SelectorDraw(u64);

/// A record's fixed fields and level, copied out under the shard lock, from which a
/// [`SessionInfo`] is built once the lock is released.
#[derive(Clone, Copy)]
struct RecordFacts {
    hash: u64,
    origin: IpAddr,
    created: u32,
    absolute_deadline: u32,
    idle_secs: u32,
    user: u32,
    profile: u16,
    session_type: u8,
    method: u8,
    level: u8,
    ip_locked: bool,
    browser_bound: bool,
}

impl RecordFacts {
    #[inline(always)]
    fn of(record: &Record) -> Self {
        Self {
            hash: record.hash(),
            origin: record.origin_ip(),
            created: record.created,
            absolute_deadline: record.absolute_deadline,
            idle_secs: record.idle_secs,
            user: record.user,
            profile: record.profile,
            session_type: record.session_type(),
            method: record.method(),
            level: record.level(),
            ip_locked: record.ip_locked(),
            browser_bound: record.browser_bound(),
        }
    }

    /// The session's public facts, given its last activity.
    #[inline(always)]
    fn info(self, last_seen: u32) -> SessionInfo {
        SessionInfo {
            handle: Handle(self.hash),
            user: UserKey(self.user),
            profile: ProfileKey(self.profile),
            session_type: SessionType::from_u8(self.session_type),
            login_method: LoginMethod::from_u8(self.method),
            level: SecurityLevel::from_u8(self.level),
            source_ip: self.origin,
            created: u64::from(self.created),
            last_activity: u64::from(last_seen),
            valid_until: crate::table::valid_until(
                last_seen,
                self.idle_secs,
                self.absolute_deadline,
            ),
            absolute_deadline: u64::from(self.absolute_deadline),
            idle_timeout_secs: self.idle_secs,
            ip_locked: self.ip_locked,
            browser_bound: self.browser_bound,
        }
    }
}

struct LoginContext {
    user: Arc<str>,
    user_key: u32,
    profile_key: u16,
    sessions: Arc<Mutex<UserSessions>>,
    policy: LoginPolicy,
}

/// The settings and profile facts a login applies, copied out under the directory lock: a
/// login then clones no `Arc` that every login shares (whose reference count would bounce
/// between cores on every login).
#[derive(Clone, Copy)]
struct LoginPolicy {
    /// The address is inside the profile's login ranges (or the profile has none).
    ip_allowed: bool,
    /// The address is inside the org's trusted ranges (no verification challenge).
    ip_trusted: bool,
    /// The level the login method gives.
    level: SecurityLevel,
    /// The level the profile requires at login.
    required_level: SecurityLevel,
    idle: Duration,
    max_length: Duration,
    lock_to_ip: bool,
    relogin_on_browser_close: bool,
    cap: Option<crate::SessionCap>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    const T0: u64 = 1_700_000_000;
    const MINUTE: u64 = 60;

    /// An engine with a 15-minute inactivity timeout and user `ada`.
    fn engine_on(clock: &ManualClock) -> Engine {
        let engine = Engine::builder()
            .settings(
                OrgSettings::builder()
                    .trusted_range("10.0.0.0/8")
                    .inactivity_timeout(Duration::from_secs(15 * MINUTE))
                    .build()
                    .unwrap(),
            )
            .clock(Arc::new(clock.clone()))
            .shards(4)
            .build()
            .unwrap();
        engine
            .add_profile(Profile::builder("staff").build().unwrap())
            .unwrap();
        engine.add_user("ada", "staff").unwrap();
        engine
    }

    fn log_in(engine: &Engine) -> Token {
        let request = LoginRequest::new("ada", "10.0.0.1".parse().unwrap());
        engine.login(&request).unwrap().issued().unwrap().token
    }

    /// How many handles `ada`'s list holds, ended and expired ones included.
    fn listed(engine: &Engine) -> usize {
        let directory = engine.directory.read();
        let sessions = directory.user("ada").unwrap().sessions.lock();
        sessions.handles.len()
    }

    #[test]
    fn lists_are_pruned_once_a_session_may_have_expired_not_before() {
        let clock = ManualClock::new(T0);
        let engine = engine_on(&clock);
        // 16 sessions; at minute 14 all are used and half end.
        let tokens: Vec<Token> = (0..16).map(|_| log_in(&engine)).collect();
        clock.advance(Duration::from_secs(14 * MINUTE));
        let office = "10.0.0.1".parse().unwrap();
        for token in &tokens {
            assert!(engine
                .validate(token.expose_secret(), office, Requirement::Any)
                .is_ok());
        }
        for token in &tokens[..8] {
            engine.logout(token.expose_secret()).unwrap();
        }
        // Minute 16: the first logins' idle deadline (minute 15) has passed, so the login
        // checks the 16 handles, keeps the 8 live ones (used at minute 14: live until 29).
        clock.advance(Duration::from_secs(2 * MINUTE));
        log_in(&engine);
        assert_eq!(listed(&engine), 9);
        // Minute 17: 16 logins and logouts. The list passes twice its pruned length, but no
        // listed session can expire before minute 29, so the ended handles stay listed.
        clock.advance(Duration::from_secs(MINUTE));
        for _ in 0..16 {
            let token = log_in(&engine);
            engine.logout(token.expose_secret()).unwrap();
        }
        assert_eq!(listed(&engine), 25);
        // Minute 30: the 8 sessions used at minute 14 expired, the 16 ended; the one from
        // minute 16 is live until 31. The next login drops the rest.
        clock.advance(Duration::from_secs(13 * MINUTE));
        log_in(&engine);
        assert_eq!(listed(&engine), 2);
    }

    #[test]
    fn capped_lists_are_pruned_at_every_login() {
        let clock = ManualClock::new(T0);
        let engine = engine_on(&clock);
        engine
            .update_profile(
                Profile::builder("staff")
                    .session_cap(2, CapAction::RefuseNew)
                    .build()
                    .unwrap(),
            )
            .unwrap();
        // Logging out makes room at once: the cap counts live sessions, never ended ones.
        for _ in 0..20 {
            let token = log_in(&engine);
            engine.logout(token.expose_secret()).unwrap();
        }
        log_in(&engine);
        log_in(&engine);
        assert_eq!(listed(&engine), 2);
        let request = LoginRequest::new("ada", "10.0.0.1".parse().unwrap());
        assert!(matches!(
            engine.login(&request),
            Ok(LoginOutcome::Denied(DenyReason::SessionCap))
        ));
    }
}
