//! Shared set-up for the sessionward benchmarks: populated engines, token streams, a Zipf
//! sampler, and the baselines a user would pick instead, doing the identical work per
//! operation.
//!
//! Identical work per validation: token shape and CRC check, SHA-256 of the token as the key,
//! one lookup, the end check and the two expiry checks (idle and absolute), the IP check, and a
//! relaxed last-seen store (see [`BaselineRecord`]). Every baseline implements [`Baseline`], so
//! the benches drive them all through the same code.
//!
//! Token lengths are never assumed: tokens are measured with `len()` (the engine's
//! [`TOKEN_LEN`](sessionward_core::TOKEN_LEN) may change).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, RngCore, SeedableRng};
use sessionward_core::{
    token_key, Clock, Engine, Issued, LoginRequest, ManualClock, OrgSettings, Profile, Refusal,
    Requirement, SessionBrief, SessionInfo, KEY_LEN,
};
use sha2::{Digest, Sha256};

mod prefetch;

/// Start of the simulated clock in benchmarks.
pub const T0: u64 = 1_700_000_000;

/// How far to move a clock so that every session created before is expired, and past the
/// engine's tombstone retention (1 h by default) so that a sweep drops it: one day.
pub const PAST_EXPIRY: Duration = Duration::from_secs(24 * 3600);

/// Inactivity timeout of every session, engine and baselines alike (the engine's default).
pub const IDLE: Duration = Duration::from_secs(2 * 3600);

/// Maximum session length of every session, engine and baselines alike (the engine's default).
pub const MAX_LENGTH: Duration = Duration::from_secs(12 * 3600);

/// How long the engine keeps an expired session as a tombstone before a sweep drops it (set
/// explicitly to the engine's default).
pub const RETENTION: Duration = Duration::from_secs(3600);

/// Most users the benchmark sessions are spread over.
pub const MAX_USERS: usize = 10_000;

/// The address every benchmark session logs in and validates from (inside the trusted range).
pub fn office() -> IpAddr {
    IpAddr::from([10, 0, 0, 1])
}

/// A memory-only engine on `clock` with a `staff` profile, a trusted range holding
/// [`office`], sessions locked to their origin address (so that validations compare the
/// address, as every baseline's [`BaselineRecord::check`] does), no event buffer, and `users`
/// users named by [`user_names`].
pub fn empty_engine(clock: &ManualClock, users: usize) -> Engine {
    empty_engine_for(clock, users, 0)
}

/// [`empty_engine`], built with room for `expected_sessions` (see
/// `EngineBuilder::expected_sessions`).
pub fn empty_engine_for(clock: &ManualClock, users: usize, expected_sessions: usize) -> Engine {
    let engine = Engine::builder()
        .settings(
            OrgSettings::builder()
                .trusted_range("10.0.0.0/8")
                .lock_sessions_to_ip(true)
                .inactivity_timeout(IDLE)
                .max_session_length(MAX_LENGTH)
                .build()
                .expect("valid settings"),
        )
        .clock(Arc::new(clock.clone()))
        .tombstone_retention(RETENTION)
        .event_capacity(0)
        .expected_sessions(expected_sessions)
        .build()
        .expect("valid engine");
    engine
        .add_profile(Profile::builder("staff").build().expect("valid profile"))
        .expect("new profile");
    for name in user_names(users) {
        engine.add_user(&name, "staff").expect("new user");
    }
    engine
}

/// The names of the first `users` benchmark users: `user0`, `user1`, ...
pub fn user_names(users: usize) -> Vec<String> {
    (0..users).map(|i| format!("user{i}")).collect()
}

/// Logs `sessions` sessions into a fresh memory-only engine on `threads` threads, thread `t`
/// taking every `threads`-th session (so threads use disjoint users); returns the wall time of
/// the logins alone (set-up excluded) and checks that every session was created. The engine's
/// tables start empty and grow.
pub fn time_creates(sessions: usize, threads: usize) -> Duration {
    time_creates_into(sessions, threads, TableStart::Empty)
}

/// How a create benchmark's engine starts its tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableStart {
    /// Empty: the tables grow as sessions come (the default engine).
    Empty,
    /// With room for every session the benchmark creates (`expected_sessions`), taken at
    /// build, outside the timed logins.
    Reserved,
}

impl TableStart {
    /// Both, in the order the examples alternate them.
    pub const BOTH: [Self; 2] = [Self::Empty, Self::Reserved];

    /// How the reports name it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Empty => "tables start empty",
            Self::Reserved => "room reserved at build",
        }
    }

    /// The `expected_sessions` of an engine that will hold `sessions` sessions.
    pub fn expected_sessions(self, sessions: usize) -> usize {
        match self {
            Self::Empty => 0,
            Self::Reserved => sessions,
        }
    }
}

/// [`time_creates`] into an engine whose tables start as `tables` says.
pub fn time_creates_into(sessions: usize, threads: usize, tables: TableStart) -> Duration {
    let clock = ManualClock::new(T0);
    let users = users_for(sessions);
    let engine = empty_engine_for(&clock, users, tables.expected_sessions(sessions));
    let names = user_names(users);
    let start = std::time::Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (engine, names) = (&engine, &names);
            scope.spawn(move || {
                for i in (t..sessions).step_by(threads) {
                    std::hint::black_box(log_in(engine, &names[i % users]));
                }
            });
        }
    });
    let elapsed = start.elapsed();
    assert_eq!(engine.stats().records, sessions);
    elapsed
}

/// How many users `sessions` sessions are spread over: [`MAX_USERS`] at most.
pub fn users_for(sessions: usize) -> usize {
    MAX_USERS.min(sessions.max(1))
}

/// Logs `user` in from [`office`]; panics unless a session is issued.
#[inline]
pub fn log_in(engine: &Engine, user: &str) -> Issued {
    engine
        .login(&LoginRequest::new(user, office()))
        .expect("login")
        .issued()
        .expect("trusted login is issued")
}

/// An engine on `clock` holding `sessions` live sessions spread over [`users_for`] users; each
/// session is handed to `keep` and then dropped.
pub fn populate_on(clock: &ManualClock, sessions: usize, mut keep: impl FnMut(Issued)) -> Engine {
    let users = users_for(sessions);
    let engine = empty_engine(clock, users);
    let names = user_names(users);
    for i in 0..sessions {
        keep(log_in(&engine, &names[i % users]));
    }
    engine
}

/// An engine holding `sessions` live sessions spread over 10,000 users, and their tokens.
pub fn populated_engine(sessions: usize) -> (Engine, Vec<String>) {
    let mut tokens = Vec::with_capacity(sessions);
    let engine = populate(sessions, |token| tokens.push(token.to_owned()));
    (engine, tokens)
}

/// An engine holding `sessions` live sessions; each token is handed to `keep` and then dropped.
pub fn populate(sessions: usize, mut keep: impl FnMut(&str)) -> Engine {
    populate_on(&ManualClock::new(T0), sessions, |issued| {
        keep(issued.token.expose_secret());
    })
}

/// What the validation probes run against: an engine holding `sessions` live sessions on a
/// clock that ticks one second per second (see [`TickingClock`]), and one stream of its tokens
/// for each of two threads, drawn uniformly.
pub struct TickingWorkload {
    /// The engine, shared with the validating threads.
    pub engine: Arc<Engine>,
    /// One token stream per thread.
    pub streams: Arc<Vec<TokenStream>>,
    /// Keeps the engine's clock moving until the workload is dropped.
    _ticking: TickingClock,
}

impl TickingWorkload {
    /// Logs `sessions` sessions in and starts the clock (seeds 7 and 8 draw the streams, as in
    /// the criterion benches).
    pub fn new(sessions: usize) -> Self {
        let clock = ManualClock::new(T0);
        let mut tokens = Vec::with_capacity(sessions);
        let engine = populate_on(&clock, sessions, |issued| {
            tokens.push(issued.token.expose_secret().to_owned());
        });
        let streams = vec![
            TokenStream::uniform(&tokens, 7),
            TokenStream::uniform(&tokens, 8),
        ];
        Self {
            engine: Arc::new(engine),
            streams: Arc::new(streams),
            _ticking: TickingClock::start(&clock),
        }
    }
}

/// What a batch answers each accepted token with.
#[derive(Clone, Copy, Debug)]
pub enum BatchAnswer {
    /// `Engine::validate_many`: a whole `SessionInfo`.
    Info,
    /// `Engine::validate_many_brief`: a `SessionBrief` (what a gateway forwards).
    Brief,
}

/// One thread's result buffers for batched validations, reused from batch to batch.
#[derive(Default)]
pub struct BatchResults {
    infos: Vec<Result<SessionInfo, Refusal>>,
    briefs: Vec<Result<SessionBrief, Refusal>>,
}

impl BatchResults {
    /// Validates `batch` from `ips` through the call `answer` names; how many were accepted.
    #[inline]
    pub fn validate(
        &mut self,
        engine: &Engine,
        batch: &[&str],
        ips: &[IpAddr],
        answer: BatchAnswer,
    ) -> usize {
        match answer {
            BatchAnswer::Info => {
                engine.validate_many(batch, ips, Requirement::Any, &mut self.infos);
                self.infos.iter().filter(|result| result.is_ok()).count()
            }
            BatchAnswer::Brief => {
                engine.validate_many_brief(batch, ips, Requirement::Any, &mut self.briefs);
                self.briefs.iter().filter(|result| result.is_ok()).count()
            }
        }
    }
}

/// One thread's share of a measured run: `work(thread_index, deadline)` validates until
/// `deadline` and returns how many tokens it validated.
pub type ThreadWork = Arc<dyn Fn(usize, Instant) -> usize + Send + Sync>;

/// Millions of validations per second of `work` on `threads` threads for `duration`. Used by
/// the examples that alternate variants of one path.
pub fn rate_on_threads(threads: usize, duration: Duration, work: &ThreadWork) -> f64 {
    let start = Instant::now();
    let deadline = start + duration;
    let handles: Vec<_> = (0..threads)
        .map(|thread_index| {
            let work = Arc::clone(work);
            std::thread::spawn(move || work(thread_index, deadline))
        })
        .collect();
    let total: usize = handles
        .into_iter()
        .map(|handle| handle.join().expect("validating thread"))
        .sum();
    total as f64 / start.elapsed().as_secs_f64() / 1e6
}

/// Runs the variants `names` in turn, `rounds` times (`rate(variant index)` gives one run's
/// rate in M/s), and prints each one's median and range under `label`: this host's speed moves
/// within minutes, so only figures taken alternately in one process compare.
pub fn print_alternating(
    label: &str,
    names: &[&str],
    rounds: usize,
    mut rate: impl FnMut(usize) -> f64,
) {
    let mut rates: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); names.len()];
    for _ in 0..rounds {
        for (variant, rates) in rates.iter_mut().enumerate() {
            rates.push(rate(variant));
        }
    }
    let width = names.iter().map(|name| name.len()).max().unwrap_or(0);
    for (rates, name) in rates.iter_mut().zip(names) {
        rates.sort_by(f64::total_cmp);
        println!(
            "{label}, {name:width$}: median {:.2} M/s (range {:.2}-{:.2})",
            rates[rates.len() / 2],
            rates[0],
            rates[rates.len() - 1]
        );
    }
}

/// One single-call validation as the benches make it: `Engine::validate` from `ip`, reading
/// the user of the session as any caller reads who a request is from. (A caller that only
/// asks `is_ok` lets the compiler skip the session's facts altogether.)
#[inline(always)]
pub fn validate_reading_user(engine: &Engine, token: &str, ip: IpAddr) -> bool {
    engine
        .validate(token, ip, Requirement::Any)
        .map(|info| std::hint::black_box(info.user))
        .is_ok()
}

/// Seconds of [`T0`] as the baselines keep time.
pub fn t0_secs() -> u32 {
    u32::try_from(T0).expect("T0 fits in u32")
}

/// Benchmark time that moves one second per second of wall time, for the engine (its
/// [`ManualClock`]) and the baselines (the [`seconds`](Self::seconds) they read per validation)
/// alike, as a real clock does: the first validation of a session in each new second stores
/// its last activity, so that store (and the dirty line it leaves) is part of every
/// contender's work, as in production. Stops when dropped.
pub struct TickingClock {
    seconds: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
}

impl TickingClock {
    /// Starts ticking `clock` (and the baselines' seconds) from `clock`'s current time.
    pub fn start(clock: &ManualClock) -> Self {
        let seconds = Arc::new(AtomicU32::new(
            u32::try_from(clock.now()).expect("benchmark time fits in u32"),
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let (clock, seconds, stop) = (clock.clone(), Arc::clone(&seconds), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut next = Instant::now() + Duration::from_secs(1);
                while !stop.load(Ordering::Relaxed) {
                    // Short naps, so that dropping the clock does not wait a second.
                    std::thread::sleep(Duration::from_millis(10));
                    if Instant::now() >= next {
                        next += Duration::from_secs(1);
                        clock.advance(Duration::from_secs(1));
                        seconds.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };
        Self {
            seconds,
            stop,
            ticker: Some(ticker),
        }
    }

    /// The current benchmark second, for baselines to read on every validation.
    pub fn seconds(&self) -> Arc<AtomicU32> {
        Arc::clone(&self.seconds)
    }
}

impl Drop for TickingClock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(ticker) = self.ticker.take() {
            let _ = ticker.join();
        }
    }
}

/// A session record as a straightforward implementation would keep it.
#[derive(Debug)]
pub struct BaselineRecord {
    last_seen: AtomicU32,
    idle_secs: u32,
    absolute_deadline: u32,
    state: AtomicU8,
    origin: IpAddr,
}

impl BaselineRecord {
    /// A live session created at `now` from [`office`], with the engine's default timeouts.
    pub fn new(now: u32) -> Self {
        let idle = u32::try_from(IDLE.as_secs()).expect("idle fits");
        let length = u32::try_from(MAX_LENGTH.as_secs()).expect("length fits");
        Self {
            last_seen: AtomicU32::new(now),
            idle_secs: idle,
            absolute_deadline: now + length,
            state: AtomicU8::new(0),
            origin: office(),
        }
    }

    #[inline]
    fn valid_until(&self, last: u32) -> u64 {
        (u64::from(last) + u64::from(self.idle_secs)).min(u64::from(self.absolute_deadline))
    }

    /// The same checks as the engine: ended, expired (idle and absolute), IP, then refresh last
    /// activity with a relaxed store (skipped when the second has not changed).
    #[inline]
    pub fn check(&self, now: u32, ip: IpAddr) -> bool {
        if self.state.load(Ordering::Acquire) != 0 {
            return false;
        }
        let last = self.last_seen.load(Ordering::Relaxed);
        if u64::from(now) >= self.valid_until(last) {
            return false;
        }
        if self.origin != ip {
            return false;
        }
        if now > last {
            self.last_seen.store(now, Ordering::Relaxed);
        }
        true
    }

    /// Ends the session (one atomic state flip, as the engine does); whether it was live.
    #[inline]
    pub fn end(&self) -> bool {
        self.state
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Whether a sweep at `now` keeps the record: not ended and not expired.
    #[inline]
    pub fn keep_at(&self, now: u32) -> bool {
        self.state.load(Ordering::Acquire) == 0
            && u64::from(now) < self.valid_until(self.last_seen.load(Ordering::Relaxed))
    }
}

/// [`BaselineRecord::keep_at`], counting the records dropped (a concurrent map's `len` may
/// be approximate while it resizes).
#[inline]
fn counted_keep(record: &BaselineRecord, now: u32, dropped: &mut usize) -> bool {
    let keep = record.keep_at(now);
    *dropped += usize::from(!keep);
    keep
}

/// The key of a session in every table: the engine's own [`token_key`] (selector + 160-bit
/// SHA-256 prefix), so baselines and engine do the identical shape check, CRC and hashing.
pub type Key = [u8; KEY_LEN];

/// The key of a well-formed token, exactly as the engine computes it; `None` for malformed
/// input, refused before any hashing as the engine does.
#[inline]
pub fn digest(token: &str) -> Option<Key> {
    token_key(token)
}

/// A fresh token as a baseline would issue one: 256 bits from ChaCha20, hex-encoded.
pub fn random_token(rng: &mut ChaCha20Rng) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut random = [0_u8; 32];
    rng.fill_bytes(&mut random);
    let mut token = String::with_capacity(68);
    token.push_str("tok_");
    for byte in random {
        token.push(char::from(HEX[usize::from(byte >> 4)]));
        token.push(char::from(HEX[usize::from(byte & 15)]));
    }
    token
}

/// A ChaCha20 generator seeded by the OS, as the engine seeds its own.
pub fn os_seeded_rng() -> ChaCha20Rng {
    let mut seed = [0_u8; 32];
    OsRng.fill_bytes(&mut seed);
    ChaCha20Rng::from_seed(seed)
}

/// `count` distinct-with-overwhelming-probability digests from a seeded generator: handles of
/// baseline sessions whose tokens the benchmark never presents (ends and sweeps).
pub fn random_digests(count: usize, seed: u64) -> Vec<Key> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            let mut digest = [0_u8; KEY_LEN];
            rng.fill_bytes(&mut digest);
            digest
        })
        .collect()
}

/// A session table a user might build instead of sessionward. Every method does the work the
/// engine does for the same call, no more and no less (see the crate documentation).
pub trait Baseline: Send + Sync + Sized + 'static {
    /// The contender's name in benchmark ids and printouts.
    const NAME: &'static str;

    /// An empty table.
    fn empty() -> Self;

    /// Stores a live session created at `now` under `digest`.
    fn insert(&self, digest: Key, now: u32);

    /// Validates like the engine does: shape check, SHA-256, lookup, [`BaselineRecord::check`].
    fn validate(&self, token: &str, ip: IpAddr, now: u32) -> bool;

    /// Ends the session whose handle (digest) is `digest`; whether a live session ended.
    fn end(&self, digest: &Key) -> bool;

    /// Drops every ended or expired record at `now`; returns how many were dropped.
    fn sweep(&self, now: u32) -> usize;

    /// Records held.
    fn len(&self) -> usize;

    /// Whether the table holds no record.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Issues a session at `now`: a fresh random token, its SHA-256, one insert. The token is
    /// returned to the caller, as the engine returns it.
    #[inline]
    fn login(&self, rng: &mut ChaCha20Rng, now: u32) -> String {
        let token = random_token(rng);
        let hashed = Sha256::digest(token.as_bytes());
        let mut key = [0_u8; KEY_LEN];
        key.copy_from_slice(&hashed[..KEY_LEN]);
        self.insert(key, now);
        token
    }

    /// A table holding `tokens` (well-formed sessionward tokens), created at [`T0`].
    fn from_tokens<S: AsRef<str>>(tokens: &[S]) -> Self {
        let table = Self::empty();
        for token in tokens {
            table.insert(digest(token.as_ref()).expect("well-formed"), t0_secs());
        }
        table
    }

    /// A table holding `digests`, every one of them expired at the returned time, so that
    /// [`sweep`](Self::sweep) at that time drops them all.
    fn expired_table(digests: &[Key]) -> (Self, u32) {
        let late = t0_secs() + u32::try_from(PAST_EXPIRY.as_secs()).expect("fits");
        (Self::from_digests(digests, t0_secs()), late)
    }

    /// A table holding `digests`, created at `now`.
    fn from_digests(digests: &[Key], now: u32) -> Self {
        let table = Self::empty();
        for digest in digests {
            table.insert(*digest, now);
        }
        table
    }
}

/// `std::sync::RwLock<HashMap>` with the default (SipHash) hasher: the first thing most people
/// write.
#[derive(Debug, Default)]
pub struct RwLockHashMap<S = std::collections::hash_map::RandomState> {
    map: RwLock<HashMap<Key, BaselineRecord, S>>,
}

impl<S: BuildHasher + Default + Send + Sync + 'static> Baseline for RwLockHashMap<S> {
    const NAME: &'static str = "rwlock_hashmap";

    fn empty() -> Self {
        Self {
            map: RwLock::new(HashMap::with_hasher(S::default())),
        }
    }

    fn insert(&self, digest: Key, now: u32) {
        self.map
            .write()
            .expect("not poisoned")
            .insert(digest, BaselineRecord::new(now));
    }

    #[inline]
    fn validate(&self, token: &str, ip: IpAddr, now: u32) -> bool {
        let Some(digest) = digest(token) else {
            return false;
        };
        let map = self.map.read().expect("not poisoned");
        map.get(&digest).is_some_and(|record| record.check(now, ip))
    }

    fn end(&self, digest: &Key) -> bool {
        let map = self.map.read().expect("not poisoned");
        map.get(digest).is_some_and(BaselineRecord::end)
    }

    fn sweep(&self, now: u32) -> usize {
        let mut dropped = 0;
        self.map
            .write()
            .expect("not poisoned")
            .retain(|_, record| counted_keep(record, now, &mut dropped));
        dropped
    }

    fn len(&self) -> usize {
        self.map.read().expect("not poisoned").len()
    }
}

/// `dashmap::DashMap` with ahash: the popular concurrent map, with a fast hasher.
#[derive(Debug)]
pub struct DashMapAhash {
    map: dashmap::DashMap<Key, BaselineRecord, ahash::RandomState>,
}

impl Baseline for DashMapAhash {
    const NAME: &'static str = "dashmap_ahash";

    fn empty() -> Self {
        Self {
            map: dashmap::DashMap::with_hasher(ahash::RandomState::new()),
        }
    }

    fn insert(&self, digest: Key, now: u32) {
        self.map.insert(digest, BaselineRecord::new(now));
    }

    #[inline]
    fn validate(&self, token: &str, ip: IpAddr, now: u32) -> bool {
        let Some(digest) = digest(token) else {
            return false;
        };
        self.map
            .get(&digest)
            .is_some_and(|record| record.check(now, ip))
    }

    fn end(&self, digest: &Key) -> bool {
        self.map.get(digest).is_some_and(|record| record.end())
    }

    fn sweep(&self, now: u32) -> usize {
        let mut dropped = 0;
        self.map
            .retain(|_, record| counted_keep(record, now, &mut dropped));
        dropped
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

/// moka's sync `Cache` with ahash, time-to-idle and time-to-live set to the sessions' timeouts:
/// the expiring cache a user would pick to get timeouts for free. It keeps its own access
/// order and timers on top of the records' checks; expired entries leave it in
/// `run_pending_tasks`, driven by the real clock (it has no injectable one).
pub struct MokaCache {
    cache: moka::sync::Cache<Key, Arc<BaselineRecord>, ahash::RandomState>,
}

impl std::fmt::Debug for MokaCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MokaCache")
            .field("entries", &self.cache.entry_count())
            .finish()
    }
}

/// Time allowed per insert when [`MokaCache`]'s `expired_table` picks a time-to-idle.
const MOKA_INSERT_ALLOWANCE: Duration = Duration::from_micros(2);

impl MokaCache {
    /// A cache whose entries expire after `idle` without a read (and [`MAX_LENGTH`] at most),
    /// in real time.
    pub fn with_idle(idle: Duration) -> Self {
        Self {
            cache: moka::sync::Cache::builder()
                .time_to_idle(idle)
                .time_to_live(MAX_LENGTH.max(idle))
                .build_with_hasher(ahash::RandomState::new()),
        }
    }

    /// Runs moka's pending housekeeping (applies buffered reads and writes, drops expired
    /// entries) and returns the entries left.
    pub fn run_pending_tasks(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }
}

impl Baseline for MokaCache {
    const NAME: &'static str = "moka";

    fn empty() -> Self {
        Self::with_idle(IDLE)
    }

    fn insert(&self, digest: Key, now: u32) {
        self.cache
            .insert(digest, Arc::new(BaselineRecord::new(now)));
    }

    #[inline]
    fn validate(&self, token: &str, ip: IpAddr, now: u32) -> bool {
        let Some(digest) = digest(token) else {
            return false;
        };
        self.cache
            .get(&digest)
            .is_some_and(|record| record.check(now, ip))
    }

    fn end(&self, digest: &Key) -> bool {
        self.cache.get(digest).is_some_and(|record| record.end())
    }

    /// moka expires entries on its own clock: `now` is not used; this is one
    /// `run_pending_tasks`. The count is right when the caller ran one before the entries
    /// expired (moka updates its count only in housekeeping).
    fn sweep(&self, _now: u32) -> usize {
        let before = self.cache.entry_count();
        self.cache.run_pending_tasks();
        usize::try_from(before.saturating_sub(self.cache.entry_count())).unwrap_or(usize::MAX)
    }

    /// Runs pending housekeeping first: moka updates its count only there.
    fn len(&self) -> usize {
        usize::try_from(self.run_pending_tasks()).unwrap_or(usize::MAX)
    }

    /// moka has no injectable clock: the entries get a time-to-idle just long enough to insert
    /// them all, and the call sleeps until it has run out (the sleep is set-up, not sweep).
    fn expired_table(digests: &[Key]) -> (Self, u32) {
        let mut idle = Duration::from_millis(20) + MOKA_INSERT_ALLOWANCE * digests.len() as u32;
        loop {
            let cache = Self::with_idle(idle);
            for digest in digests {
                cache.insert(*digest, t0_secs());
            }
            // Applies the buffered writes; if any entry already expired, the idle time was too
            // short for this machine: try again with a longer one.
            if cache.run_pending_tasks() == digests.len() as u64 {
                std::thread::sleep(idle + Duration::from_millis(5));
                return (cache, t0_secs());
            }
            idle *= 2;
        }
    }
}

/// `scc::HashMap` with ahash: lock-free reads, per-bucket locks for writes.
#[derive(Debug)]
pub struct SccHashMap {
    map: scc::HashMap<Key, BaselineRecord, ahash::RandomState>,
}

impl Baseline for SccHashMap {
    const NAME: &'static str = "scc";

    fn empty() -> Self {
        Self {
            map: scc::HashMap::with_hasher(ahash::RandomState::new()),
        }
    }

    fn insert(&self, digest: Key, now: u32) {
        // A fresh 256-bit digest collides with nothing: an `Err` would be a bug in the bench.
        assert!(
            self.map
                .insert_sync(digest, BaselineRecord::new(now))
                .is_ok(),
            "duplicate digest"
        );
    }

    #[inline]
    fn validate(&self, token: &str, ip: IpAddr, now: u32) -> bool {
        let Some(digest) = digest(token) else {
            return false;
        };
        self.map
            .read_sync(&digest, |_, record| record.check(now, ip))
            .unwrap_or(false)
    }

    fn end(&self, digest: &Key) -> bool {
        self.map
            .read_sync(digest, |_, record| record.end())
            .unwrap_or(false)
    }

    fn sweep(&self, now: u32) -> usize {
        let mut dropped = 0;
        self.map
            .retain_sync(|_, record| counted_keep(record, now, &mut dropped));
        dropped
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

/// `papaya::HashMap` with ahash: lock-free, epoch-reclaimed, tuned for read-heavy workloads.
/// Each call pins the map (enters an epoch), as an application would.
#[derive(Debug)]
pub struct PapayaMap {
    map: papaya::HashMap<Key, BaselineRecord, ahash::RandomState>,
}

impl Baseline for PapayaMap {
    const NAME: &'static str = "papaya";

    fn empty() -> Self {
        Self {
            map: papaya::HashMap::with_hasher(ahash::RandomState::new()),
        }
    }

    fn insert(&self, digest: Key, now: u32) {
        self.map.pin().insert(digest, BaselineRecord::new(now));
    }

    #[inline]
    fn validate(&self, token: &str, ip: IpAddr, now: u32) -> bool {
        let Some(digest) = digest(token) else {
            return false;
        };
        self.map
            .pin()
            .get(&digest)
            .is_some_and(|record| record.check(now, ip))
    }

    fn end(&self, digest: &Key) -> bool {
        self.map.pin().get(digest).is_some_and(BaselineRecord::end)
    }

    fn sweep(&self, now: u32) -> usize {
        let mut dropped = 0;
        self.map
            .pin()
            .retain(|_, record| counted_keep(record, now, &mut dropped));
        dropped
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

/// The next value of a xorshift64* generator.
#[inline]
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// A deterministic pseudo-random sequence of indices below `len` (xorshift64*).
pub fn index_sequence(len: usize, count: usize, seed: u64) -> Vec<u32> {
    let mut state = seed | 1;
    (0..count)
        .map(|_| (xorshift(&mut state) % len as u64) as u32)
        .collect()
}

/// A Zipf distribution over `len` items: rank `k` (1-based) is drawn with probability
/// proportional to `1 / k^s`. Ranks are mapped to items by a fixed permutation, so the hot
/// items are scattered over the table rather than being the first sessions created.
///
/// Sampling inverts the cumulative distribution (a binary search in a table of `len` `f64`s),
/// which is exact for any `s`.
#[derive(Debug, Clone)]
pub struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    /// The distribution over `len` items (at least one) with exponent `s` (≥ 0).
    pub fn new(len: usize, s: f64) -> Self {
        let mut total = 0.0;
        let mut cumulative: Vec<f64> = (1..=len.max(1))
            .map(|rank| {
                total += (rank as f64).powf(-s);
                total
            })
            .collect();
        for value in &mut cumulative {
            *value /= total;
        }
        Self { cumulative }
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.cumulative.len()
    }

    /// Whether the distribution is over no item (never: `new` makes at least one).
    pub fn is_empty(&self) -> bool {
        self.cumulative.is_empty()
    }

    /// The item (index below [`len`](Self::len)) of 0-based rank `rank`: a bijection, because
    /// the multiplier is a prime larger than any table here.
    pub fn item_of_rank(&self, rank: usize) -> usize {
        const PRIME: u64 = 2_654_435_761;
        ((rank as u64 * PRIME) % self.len() as u64) as usize
    }

    /// The 0-based rank for a uniform `u` in `[0, 1)`.
    pub fn rank_for(&self, u: f64) -> usize {
        self.cumulative
            .partition_point(|&c| c <= u)
            .min(self.len() - 1)
    }

    /// `count` items drawn with a seeded generator.
    pub fn sequence(&self, count: usize, seed: u64) -> Vec<u32> {
        let mut state = seed | 1;
        (0..count)
            .map(|_| {
                let u = (xorshift(&mut state) >> 11) as f64 / (1_u64 << 53) as f64;
                self.item_of_rank(self.rank_for(u)) as u32
            })
            .collect()
    }
}

/// Tokens a thread will present, laid out back to back in the (random) order it presents them:
/// a gateway validates tokens it just read from a request, so they are in cache; reading them
/// from a million scattered heap strings would add a cache miss per validation that no
/// session table can avoid.
#[derive(Debug)]
pub struct TokenStream {
    text: String,
    width: usize,
    count: usize,
}

impl TokenStream {
    /// Positions in a stream (it wraps around).
    pub const LEN: usize = 1 << 18;

    /// The stream presenting `pick(i)` for each `i` of `order`; every picked token must have
    /// the same length, and `order`'s length must be a power of two (wrapping is then a mask:
    /// a division per token would be timed with every contender).
    pub fn new<'a>(order: &[u32], pick: impl Fn(usize) -> &'a str) -> Self {
        assert!(
            order.len().is_power_of_two(),
            "a stream's length is a power of two"
        );
        let width = order.first().map_or(0, |&first| pick(first as usize).len());
        let mut text = String::with_capacity(order.len() * width);
        for &index in order {
            let token = pick(index as usize);
            assert_eq!(token.len(), width, "tokens of one stream share a length");
            text.push_str(token);
        }
        Self {
            text,
            width,
            count: order.len(),
        }
    }

    /// [`LEN`](Self::LEN) tokens drawn uniformly from `tokens`.
    pub fn uniform(tokens: &[String], seed: u64) -> Self {
        let order = index_sequence(tokens.len(), Self::LEN, seed);
        Self::new(&order, |i| tokens[i].as_str())
    }

    /// The token at position `i` (modulo the stream's length).
    #[inline]
    pub fn token(&self, i: usize) -> &str {
        let at = self.offset(i);
        &self.text[at..at + self.width]
    }

    /// Where the token at position `i` (modulo the stream's length) starts in the text.
    #[inline]
    fn offset(&self, i: usize) -> usize {
        (i & (self.count - 1)) * self.width
    }

    /// [`token`](Self::token)`(i)`, after starting to load the token
    /// [`PREFETCH_DISTANCE`](Self::PREFETCH_DISTANCE) positions ahead: what the benches present,
    /// so that a token is in cache when it is validated, as a token a gateway just read is
    /// (see the `prefetch` module).
    #[inline]
    pub fn token_prefetching(&self, i: usize) -> &str {
        let ahead = self.offset(i + Self::PREFETCH_DISTANCE);
        prefetch::prefetch(self.text.as_bytes()[ahead..].as_ptr());
        self.token(i)
    }

    /// Replaces `batch` with the `len` tokens from position `start`, after starting to load the
    /// `len` tokens after them: what a batched bench presents, so that each batch is in cache
    /// when it is validated, as a batch a gateway just read from its requests is (see
    /// [`token_prefetching`](Self::token_prefetching)). One token ahead is not enough here:
    /// filling a batch takes a few nanoseconds per token, so the batch's tokens must be on
    /// their way a whole batch (one validation call) earlier.
    pub fn batch_prefetching<'a>(&'a self, start: usize, len: usize, batch: &mut Vec<&'a str>) {
        batch.clear();
        batch.extend((start..start + len).map(|i| self.token(i)));
        // One more than `len`: a token may end in the line after the next batch's last start.
        for i in start + len..=start + 2 * len {
            prefetch::prefetch(self.text.as_bytes()[self.offset(i)..].as_ptr());
        }
    }

    /// How far ahead [`token_prefetching`](Self::token_prefetching) loads.
    pub const PREFETCH_DISTANCE: usize = 8;

    /// Tokens in the stream before it wraps.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the stream holds no token.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// A malformed variant of `token`: same length, last character changed, so the checksum fails.
pub fn malformed(token: &str) -> String {
    let (head, last) = token.split_at(token.len() - 1);
    format!("{head}{}", if last == "x" { 'y' } else { 'x' })
}

/// Resident set size of this process in bytes, from `/proc/self/statm` (Linux).
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Sizes (session counts) from the environment variable `name`: comma-separated counts, with
/// `k` and `m` suffixes allowed (`10k,1m`); `default` when unset or empty.
pub fn sizes_from_env(name: &str, default: &[usize]) -> Vec<usize> {
    match std::env::var(name) {
        Ok(text) if !text.trim().is_empty() => text
            .split(',')
            .map(|part| parse_count(part).unwrap_or_else(|| panic!("{name}: bad size {part:?}")))
            .collect(),
        _ => default.to_vec(),
    }
}

/// Parses `10000`, `10k` or `1m` (case-insensitive).
pub fn parse_count(text: &str) -> Option<usize> {
    let text = text.trim().to_ascii_lowercase();
    let (digits, scale) = if let Some(digits) = text.strip_suffix('k') {
        (digits, 1_000)
    } else if let Some(digits) = text.strip_suffix('m') {
        (digits, 1_000_000)
    } else {
        (text.as_str(), 1)
    };
    digits.parse::<usize>().ok()?.checked_mul(scale)
}

/// A short label for a session count: `10k`, `1M`, `5M`, or the number.
pub fn size_label(sessions: usize) -> String {
    if sessions >= 1_000_000 && sessions % 1_000_000 == 0 {
        format!("{}M", sessions / 1_000_000)
    } else if sessions >= 1_000 && sessions % 1_000 == 0 {
        format!("{}k", sessions / 1_000)
    } else {
        sessions.to_string()
    }
}

/// Nanoseconds as microseconds with one decimal, for the latency reports.
pub fn micros(nanos: u32) -> String {
    format!("{:.1} µs", f64::from(nanos) / 1000.0)
}

/// An empty vector for latencies whose capacity is already backed by memory, so that pushing
/// into it while timing faults no page in.
pub fn prefaulted(capacity: usize) -> Vec<u32> {
    let mut latencies = vec![1_u32; capacity];
    latencies.clear();
    latencies
}

/// Percentile `p` (0..=100) of sorted `values` (nearest rank); 0 when empty.
pub fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use sessionward_core::Requirement;

    fn check_baseline<B: Baseline>() {
        let (engine, tokens) = populated_engine(100);
        let table = B::from_tokens(&tokens);
        let ip = office();
        let now = t0_secs() + 1;
        for token in &tokens {
            assert_eq!(
                table.validate(token, ip, now),
                engine.validate(token, ip, Requirement::Any).is_ok(),
                "{}",
                B::NAME
            );
            assert!(!table.validate(&malformed(token), ip, now), "{}", B::NAME);
        }
        let elsewhere = IpAddr::from([192, 0, 2, 1]);
        assert!(!table.validate(&tokens[0], elsewhere, now), "{}", B::NAME);
        assert!(
            engine
                .validate(&tokens[0], elsewhere, Requirement::Any)
                .is_err(),
            "the engine compares the address too"
        );
        let first = digest(&tokens[0]).expect("well-formed");
        assert!(table.end(&first), "{}", B::NAME);
        assert!(!table.end(&first), "{}: ends once", B::NAME);
        assert!(!table.validate(&tokens[0], ip, now), "{}", B::NAME);
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let _ = table.login(&mut rng, now);
        assert_eq!(table.len(), 101, "{}", B::NAME);
    }

    #[test]
    fn baselines_agree_with_the_engine() {
        check_baseline::<RwLockHashMap>();
        check_baseline::<DashMapAhash>();
        check_baseline::<MokaCache>();
        check_baseline::<SccHashMap>();
        check_baseline::<PapayaMap>();
    }

    fn check_sweep<B: Baseline>() {
        let table = B::from_digests(&random_digests(50, 3), t0_secs());
        let late = t0_secs() + u32::try_from(PAST_EXPIRY.as_secs()).expect("fits");
        table.insert([7; KEY_LEN], late);
        assert!(table.end(&random_digests(1, 3)[0]));
        assert_eq!(table.sweep(t0_secs() + 10), 1, "{}: the ended one", B::NAME);
        assert_eq!(table.sweep(late), 49, "{}: the expired ones", B::NAME);
        assert_eq!(table.len(), 1, "{}", B::NAME);
    }

    #[test]
    fn baselines_sweep_ended_and_expired_records() {
        check_sweep::<RwLockHashMap>();
        check_sweep::<DashMapAhash>();
        check_sweep::<SccHashMap>();
        check_sweep::<PapayaMap>();
    }

    fn check_expired_table<B: Baseline>() {
        let digests = random_digests(200, 5);
        let (table, now) = B::expired_table(&digests);
        assert_eq!(table.sweep(now), 200, "{}", B::NAME);
        assert!(table.is_empty(), "{}", B::NAME);
    }

    #[test]
    fn every_baseline_builds_a_table_that_sweeps_empty() {
        check_expired_table::<RwLockHashMap>();
        check_expired_table::<DashMapAhash>();
        check_expired_table::<MokaCache>();
        check_expired_table::<SccHashMap>();
        check_expired_table::<PapayaMap>();
    }

    #[test]
    fn moka_expires_in_real_time() {
        let cache = MokaCache::with_idle(Duration::from_millis(50));
        for digest in random_digests(100, 4) {
            cache.insert(digest, t0_secs());
        }
        assert_eq!(cache.run_pending_tasks(), 100);
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(cache.sweep(0), 100);
        assert!(cache.is_empty());
    }

    #[test]
    fn the_engine_sweeps_what_the_clock_expired() {
        let clock = ManualClock::new(T0);
        let engine = populate_on(&clock, 1000, drop);
        clock.advance(PAST_EXPIRY);
        let stats = engine.sweep_all();
        assert_eq!(stats.removed, 1000);
        assert_eq!(engine.stats().records, 0);
    }

    #[test]
    fn zipf_is_skewed_and_stays_in_range() {
        let zipf = Zipf::new(10_000, 1.0);
        let draws = zipf.sequence(100_000, 9);
        assert!(draws.iter().all(|&i| (i as usize) < 10_000));
        let hottest = zipf.item_of_rank(0) as u32;
        let share = draws.iter().filter(|&&i| i == hottest).count() as f64 / 1e5;
        // 1 / H(10,000) ≈ 0.102 for s = 1.
        assert!((0.09..0.115).contains(&share), "hottest share {share}");
        let mut seen = vec![false; 10_000];
        for rank in 0..10_000 {
            seen[zipf.item_of_rank(rank)] = true;
        }
        assert!(seen.iter().all(|&s| s), "ranks map onto every item");
    }

    #[test]
    fn streams_follow_token_length() {
        let (_, tokens) = populated_engine(10);
        let stream = TokenStream::uniform(&tokens, 1);
        assert_eq!(stream.len(), TokenStream::LEN);
        assert!(tokens.iter().any(|t| t == stream.token(5)));
        assert_eq!(stream.token(3).len(), tokens[0].len());
        // Prefetching changes nothing presented, up to and across the wrap-around.
        for i in [0, 5, TokenStream::LEN - 1, TokenStream::LEN + 2] {
            assert_eq!(stream.token_prefetching(i), stream.token(i));
        }
        let mut batch = vec!["stale"];
        for start in [0, TokenStream::LEN - 3] {
            stream.batch_prefetching(start, 5, &mut batch);
            let expected: Vec<&str> = (start..start + 5).map(|i| stream.token(i)).collect();
            assert_eq!(
                batch, expected,
                "a batch is the positions from `start`, wrapping"
            );
        }
        assert_eq!(malformed(&tokens[0]).len(), tokens[0].len());
        assert!(!sessionward_core::is_well_formed(&malformed(&tokens[0])));
    }

    #[test]
    fn the_ticking_clock_moves_engine_and_baselines_together() {
        let clock = ManualClock::new(T0);
        let ticking = TickingClock::start(&clock);
        let seconds = ticking.seconds();
        // Waits for a tick (not timed: a slow machine only waits longer).
        let deadline = Instant::now() + Duration::from_secs(120);
        while seconds.load(Ordering::Relaxed) == t0_secs() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(ticking); // joins the ticker: both values are final
        assert!(clock.now() > T0, "the engine's clock moved");
        assert_eq!(u64::from(seconds.load(Ordering::Relaxed)), clock.now());
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_count("10k"), Some(10_000));
        assert_eq!(parse_count(" 5M"), Some(5_000_000));
        assert_eq!(parse_count("123"), Some(123));
        assert_eq!(parse_count("x"), None);
        assert_eq!(size_label(1_000_000), "1M");
        assert_eq!(size_label(10_000), "10k");
        assert_eq!(percentile(&[1, 2, 3, 4], 50.0), 2);
        assert_eq!(percentile(&[1, 2, 3, 4], 100.0), 4);
    }
}
