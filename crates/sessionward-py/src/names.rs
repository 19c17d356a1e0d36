//! The user ids and profile names of results, as Python strings made once per `Org`.
//!
//! Every `Session` the binding returns names its user and profile. Asking the engine for them
//! takes the directory's read lock and clones an `Arc<str>` twice per result, and the Python
//! `str` was made again on every attribute access. Instead, each `Org` keeps the `str` objects
//! it made, keyed by the engine's user and profile keys, and a `Session` holds references to
//! them: resolving the names of a result is one uncontended mutex and two hash lookups.
//!
//! The engine hands out keys that are never reused, and a key's name never changes while the
//! entry exists (`move_user` changes a user's profile, not the profile a session was created
//! under). The cache is emptied after every directory change that adds or removes a user or
//! profile (see `PyOrg`), so a removed user reads `(removed)` as before, even if a later core
//! reuses keys. Names the engine no longer knows are not cached.
//!
//! Locking: the mutex is taken with the GIL held (or attached, on free-threaded builds), never
//! across a call that could release it or run Python code, and never while an engine lock is
//! held; the engine's directory lock is taken inside it on a miss only.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};

use pyo3::prelude::*;
use pyo3::types::PyString;
use sessionward_core::{Engine, ProfileKey, SessionInfo, UserKey};

use crate::results::PySession;

/// Entries kept per map before the cache starts over (bounds memory for orgs with many users).
const MAX_ENTRIES: usize = 1 << 16;

/// What an unknown key (a user or profile removed meanwhile) reads as.
const REMOVED: &str = "(removed)";

/// A fast hasher for the engine's small integer keys (FxHash's mixing step). Keys are assigned
/// by the engine, not by callers, so no flooding resistance is needed.
#[derive(Default)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }
    fn write_u16(&mut self, value: u16) {
        self.write_u64(u64::from(value));
    }
    fn write_u32(&mut self, value: u32) {
        self.write_u64(u64::from(value));
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn write_usize(&mut self, value: usize) {
        self.write_u64(value as u64);
    }
}

type KeyMap<K> = HashMap<K, Py<PyString>, BuildHasherDefault<KeyHasher>>;

/// The cached names of one `Org`.
#[derive(Default)]
pub(crate) struct Names {
    maps: Mutex<Maps>,
}

/// The maps behind the mutex; resolve names with [`Maps::session`].
#[derive(Default)]
pub(crate) struct Maps {
    users: KeyMap<UserKey>,
    profiles: KeyMap<ProfileKey>,
}

impl Names {
    /// Locks the maps (for resolving a batch of results under one lock).
    pub(crate) fn lock(&self, _py: Python<'_>) -> MutexGuard<'_, Maps> {
        self.maps.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The `Session` of one result.
    pub(crate) fn session(&self, py: Python<'_>, engine: &Engine, info: SessionInfo) -> PySession {
        self.lock(py).session(py, engine, info)
    }

    /// Forgets every cached name: call after the engine added or removed a user or profile,
    /// before any Python code (event callbacks) runs.
    pub(crate) fn invalidate(&self, py: Python<'_>) {
        let old = std::mem::take(&mut *self.lock(py));
        drop(old); // the `str` references are released here, with the GIL held
    }
}

impl Maps {
    /// The `Session` of one result: its facts plus the (cached) user id and profile name.
    pub(crate) fn session(
        &mut self,
        py: Python<'_>,
        engine: &Engine,
        info: SessionInfo,
    ) -> PySession {
        PySession {
            user: cached(py, &mut self.users, info.user, |key| engine.user_id(key)),
            profile: cached(py, &mut self.profiles, info.profile, |key| {
                engine.profile_name(key)
            }),
            info,
        }
    }
}

fn cached<K: Copy + Eq + std::hash::Hash>(
    py: Python<'_>,
    map: &mut KeyMap<K>,
    key: K,
    lookup: impl FnOnce(K) -> Option<std::sync::Arc<str>>,
) -> Py<PyString> {
    if let Some(name) = map.get(&key) {
        return name.clone_ref(py);
    }
    let Some(name) = lookup(key) else {
        return pyo3::intern!(py, REMOVED).clone().unbind();
    };
    let name = PyString::new(py, &name).unbind();
    if map.len() >= MAX_ENTRIES {
        map.clear();
    }
    map.insert(key, name.clone_ref(py));
    name
}
