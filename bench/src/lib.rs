//! Shared set-up for the sessionward benchmarks: populated engines, and the baselines a user
//! would pick instead, doing the identical work per validation (token shape and CRC check,
//! SHA-256, one lookup, end and expiry checks, IP check, relaxed last-seen store).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, RwLock};

use sessionward_core::{is_well_formed, Engine, LoginRequest, ManualClock, OrgSettings, Profile};
use sha2::{Digest, Sha256};

/// Start of the simulated clock in benchmarks.
pub const T0: u64 = 1_700_000_000;

/// The address every benchmark session logs in and validates from (inside the trusted range).
pub fn office() -> IpAddr {
    IpAddr::from([10, 0, 0, 1])
}

/// An engine holding `sessions` live sessions spread over 10,000 users, and their tokens.
pub fn populated_engine(sessions: usize) -> (Engine, Vec<String>) {
    let mut tokens = Vec::with_capacity(sessions);
    let engine = populate(sessions, |token| tokens.push(token.to_owned()));
    (engine, tokens)
}

/// An engine holding `sessions` live sessions; each token is handed to `keep` and then dropped.
pub fn populate(sessions: usize, mut keep: impl FnMut(&str)) -> Engine {
    let engine = Engine::builder()
        .settings(
            OrgSettings::builder()
                .trusted_range("10.0.0.0/8")
                .build()
                .expect("valid settings"),
        )
        .clock(Arc::new(ManualClock::new(T0)))
        .event_capacity(0)
        .build()
        .expect("valid engine");
    engine
        .add_profile(Profile::builder("staff").build().expect("valid profile"))
        .expect("new profile");
    let users = 10_000.min(sessions.max(1));
    let names: Vec<String> = (0..users).map(|i| format!("user{i}")).collect();
    for name in &names {
        engine.add_user(name, "staff").expect("new user");
    }
    for i in 0..sessions {
        let issued = engine
            .login(&LoginRequest::new(&names[i % users], office()))
            .expect("login")
            .issued()
            .expect("trusted login is issued");
        keep(issued.token.expose_secret());
    }
    engine
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
    fn new(now: u32) -> Self {
        Self {
            last_seen: AtomicU32::new(now),
            idle_secs: 7200,
            absolute_deadline: now + 12 * 3600,
            state: AtomicU8::new(0),
            origin: office(),
        }
    }

    /// The same checks as the engine: ended, expired, IP, then refresh last activity.
    #[inline]
    fn check(&self, now: u32, ip: IpAddr) -> bool {
        if self.state.load(Ordering::Acquire) != 0 {
            return false;
        }
        let last = self.last_seen.load(Ordering::Relaxed);
        if u64::from(now)
            >= (u64::from(last) + u64::from(self.idle_secs)).min(u64::from(self.absolute_deadline))
        {
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
}

fn digest(token: &str) -> Option<[u8; 32]> {
    is_well_formed(token).then(|| Sha256::digest(token.as_bytes()).into())
}

/// `std::sync::RwLock<HashMap>` with the default (SipHash) hasher: the first thing most people
/// write.
#[derive(Debug, Default)]
pub struct RwLockHashMap<S = std::collections::hash_map::RandomState> {
    map: RwLock<HashMap<[u8; 32], BaselineRecord, S>>,
}

impl<S: BuildHasher + Default> RwLockHashMap<S> {
    /// A map holding `tokens`.
    pub fn from_tokens(tokens: &[String]) -> Self {
        let mut map = HashMap::with_hasher(S::default());
        for token in tokens {
            map.insert(
                digest(token).expect("well-formed"),
                BaselineRecord::new(T0 as u32),
            );
        }
        Self {
            map: RwLock::new(map),
        }
    }

    /// Validates like the engine does.
    #[inline]
    pub fn validate(&self, token: &str, ip: IpAddr, now: u32) -> bool {
        let Some(digest) = digest(token) else {
            return false;
        };
        let map = self.map.read().expect("not poisoned");
        map.get(&digest).is_some_and(|record| record.check(now, ip))
    }
}

/// `dashmap::DashMap` with ahash: the popular concurrent map, with a fast hasher.
#[derive(Debug)]
pub struct DashMapAhash {
    map: dashmap::DashMap<[u8; 32], BaselineRecord, ahash::RandomState>,
}

impl DashMapAhash {
    /// A map holding `tokens`.
    pub fn from_tokens(tokens: &[String]) -> Self {
        let map = dashmap::DashMap::with_hasher(ahash::RandomState::new());
        for token in tokens {
            map.insert(
                digest(token).expect("well-formed"),
                BaselineRecord::new(T0 as u32),
            );
        }
        Self { map }
    }

    /// Validates like the engine does.
    #[inline]
    pub fn validate(&self, token: &str, ip: IpAddr, now: u32) -> bool {
        let Some(digest) = digest(token) else {
            return false;
        };
        self.map
            .get(&digest)
            .is_some_and(|record| record.check(now, ip))
    }
}

/// A deterministic pseudo-random sequence of indices below `len` (xorshift64*).
pub fn index_sequence(len: usize, count: usize, seed: u64) -> Vec<u32> {
    let mut state = seed | 1;
    (0..count)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_F491_4F6C_DD1D) % len as u64) as u32
        })
        .collect()
}

/// Resident set size of this process in bytes, from `/proc/self/statm` (Linux).
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
