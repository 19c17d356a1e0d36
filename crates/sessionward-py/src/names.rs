//! The user ids and profile names of results, as Python strings made once per `Org`.
//!
//! Every `Session` the binding returns names its user and profile. Asking the engine for them
//! takes the directory's read lock and clones an `Arc<str>` twice per result, and the Python
//! `str` was made again on every attribute access. Instead, each `Org` keeps the `str` objects
//! it made, in arrays indexed by the engine's user and profile keys (small integers handed out
//! in order, [`UserKey::index`](sessionward_core::UserKey::index)), and a `Session` holds
//! references to them: resolving the names of a result is one uncontended mutex and two array
//! reads. Arrays, not hash maps: on a large org the map's bucket was a cache miss of its own
//! before the `str` object's (at 1 M sessions over 10,000 users, perf put 15 % of a single
//! `Org.validate` on the two; with arrays 9 %, and the run took 9 % fewer samples).
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

use std::sync::{Mutex, MutexGuard, PoisonError};

use pyo3::prelude::*;
use pyo3::types::PyString;
use sessionward_core::{Engine, SessionInfo};

use crate::results::PySession;

/// Names kept per array before the cache starts over (bounds memory for orgs with many users).
const MAX_ENTRIES: usize = 1 << 16;

/// What an unknown key (a user or profile removed meanwhile) reads as.
const REMOVED: &str = "(removed)";

/// The cached names of one `Org`.
#[derive(Default)]
pub(crate) struct Names {
    arrays: Mutex<NameArrays>,
}

/// The arrays behind the mutex; resolve names with [`NameArrays::session`].
#[derive(Default)]
pub(crate) struct NameArrays {
    users: KeyArray,
    profiles: KeyArray,
}

/// Python strings by key index; `None` where not cached (yet).
#[derive(Default)]
struct KeyArray {
    names: Vec<Option<Py<PyString>>>,
    /// How many entries of `names` are `Some`.
    cached: usize,
}

impl Names {
    /// Locks the arrays (for resolving a batch of results under one lock).
    pub(crate) fn lock(&self, _py: Python<'_>) -> MutexGuard<'_, NameArrays> {
        self.arrays.lock().unwrap_or_else(PoisonError::into_inner)
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

impl NameArrays {
    /// The `Session` of one result: its facts plus the (cached) user id and profile name.
    pub(crate) fn session(
        &mut self,
        py: Python<'_>,
        engine: &Engine,
        info: SessionInfo,
    ) -> PySession {
        PySession {
            user: cached(py, &mut self.users, info.user.index(), || {
                engine.user_id(info.user)
            }),
            profile: cached(py, &mut self.profiles, info.profile.index(), || {
                engine.profile_name(info.profile)
            }),
            info,
        }
    }
}

/// The name at `index` of `array`, or what `lookup` finds (cached when found).
fn cached(
    py: Python<'_>,
    array: &mut KeyArray,
    index: usize,
    lookup: impl FnOnce() -> Option<std::sync::Arc<str>>,
) -> Py<PyString> {
    if let Some(Some(name)) = array.names.get(index) {
        return name.clone_ref(py);
    }
    let Some(name) = lookup() else {
        return pyo3::intern!(py, REMOVED).clone().unbind();
    };
    let name = PyString::new(py, &name).unbind();
    if array.cached >= MAX_ENTRIES {
        *array = KeyArray::default();
    }
    // `index` is a key the engine handed out (its directory holds an entry per key), so the
    // array grows no larger than the directory's own list of users or profiles.
    if array.names.len() <= index {
        array.names.resize_with(index + 1, || None);
    }
    array.names[index] = Some(name.clone_ref(py));
    array.cached += 1;
    name
}
