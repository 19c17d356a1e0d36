//! The embedded store: one redb file, written by one committer thread that groups concurrent
//! commits into one write transaction.
//!
//! # Tables (format version 2)
//!
//! | table | key | value |
//! | --- | --- | --- |
//! | `meta` | `&str` | `format_version` (u64), `settings`, `next_profile` (u32), `next_user` (u64) |
//! | `sessions` | login time << 64 \| sequence, `u128` | the session row (68 bytes, see the codec) |
//! | `ends` | handle `u64` | reason << 32 \| time |
//! | `activity` | handle `u64` | last activity written behind, `u32` seconds |
//! | `levels` | handle `u64` | level after a step-up, `u8` |
//! | `profiles` | key `u16` | the profile |
//! | `users` | key `u32` | profile key + id |
//! | `oauth_clients` | client id `&str` | run-as user, secret SHA-256, scopes |
//! | `oauth_grants` | handle `u64` | the client and scopes an access token was granted |
//! | `remembered_devices` | user key `u32` | SHA-256 of each remembered device id, oldest first |
//!
//! Session rows are keyed by login time and a sequence number, not by handle: a batch of
//! logins then appends to the right edge of the B-tree instead of dirtying one random leaf
//! per login, which triples the commits' throughput. Ends, step-ups and activity live beside
//! the rows, keyed by handle, so that all three are blind inserts (a bulk end of a million
//! sessions writes a million 16-byte entries, no reads) and so that an end that reaches the
//! store before its session's creation is kept. Rows are never looked up by handle: a session
//! row is deleted once no session that old can be alive (login time older than the longest
//! session length, 24 h, plus the tombstone retention), by a range delete at the left edge,
//! which also deletes the pruned rows' handle-keyed entries. `Forget` (the engine dropped a
//! tombstone) deletes a session's activity, level and grant entries but not its end: a row
//! whose end entry is gone would load as a live session at the next open.
//!
//! The two OAuth tables and `remembered_devices` came after version 2 was first written,
//! without a version change: a file that lacks them loads with no clients, grants or
//! remembered devices, and the first write that needs them creates them. (An older build
//! ignores them.)
//!
//! # Group commit
//!
//! [`RedbStore::commit`] appends its changes to a queue, wakes the committer and waits on a
//! condition variable until the batch holding its changes is committed. The committer takes
//! everything queued, writes it in one transaction with `Durability::Immediate` and two-phase
//! commit (two `fsync`s), then wakes every waiter of that batch. While one batch commits the
//! next one fills, so the number of `fsync`s per second stays bounded whatever the number of
//! callers.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};
use redb::{Database, ReadableTable, TableDefinition, TableHandle};

use super::codec::{self, Malformed};
use super::{SessionStore, StoreChange, StoredSession, StoredState, StoredUser};
use crate::Error;
use redb::ReadTransaction;

/// The format version this build writes, and the newest it opens (newer files are refused
/// with [`Error::StoreVersion`]).
///
/// Version 2 keys sessions by selector and SHA-256 prefix (64-character split tokens).
/// Version 1 files hold sessions of 53-character tokens, which no longer validate: they are
/// migrated at open, keeping their org (settings, profiles, users) and dropping their
/// sessions.
pub const FORMAT_VERSION: u64 = 2;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const SESSIONS: TableDefinition<u128, &[u8]> = TableDefinition::new("sessions");
const LEVELS: TableDefinition<u64, u8> = TableDefinition::new("levels");
const ENDS: TableDefinition<u64, u64> = TableDefinition::new("ends");
const ACTIVITY: TableDefinition<u64, u32> = TableDefinition::new("activity");
const PROFILES: TableDefinition<u16, &[u8]> = TableDefinition::new("profiles");
const USERS: TableDefinition<u32, &[u8]> = TableDefinition::new("users");
const CLIENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("oauth_clients");
const GRANTS: TableDefinition<u64, &[u8]> = TableDefinition::new("oauth_grants");
const DEVICES: TableDefinition<u32, &[u8]> = TableDefinition::new("remembered_devices");

const KEY_VERSION: &str = "format_version";
const KEY_SETTINGS: &str = "settings";
const KEY_NEXT_PROFILE: &str = "next_profile";
const KEY_NEXT_USER: &str = "next_user";

/// redb's page cache. The engine keeps every session in its own table, so the cache only
/// serves the load at open and the B-tree pages a commit touches.
const CACHE_BYTES: usize = 64 << 20;

/// A session store in one embedded [redb](https://www.redb.org) file.
///
/// Opened by [`EngineBuilder::path`](crate::EngineBuilder::path); open it yourself only to
/// share one store between engines in turn (one engine at a time) or to inspect a file.
///
/// # Examples
///
/// ```
/// use sessionward_core::{Engine, RedbStore};
/// use std::sync::Arc;
///
/// let dir = std::env::temp_dir().join(format!("swd-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let store = RedbStore::open(dir.join("sessions.redb"))?;
/// let engine = Engine::builder().store(Arc::new(store)).build()?;
/// assert!(engine.is_durable());
/// # drop(engine);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RedbStore {
    inner: Arc<Inner>,
    committer: Option<JoinHandle<()>>,
}

struct Inner {
    path: PathBuf,
    db: Database,
    /// Committer-only state: the next row sequence number and the pruning schedule.
    rows: Mutex<Rows>,
    queue: Mutex<Queue>,
    /// Signalled when work is queued or the store stops.
    work: Condvar,
    /// Signalled when a batch is committed or failed.
    done: Condvar,
    /// Test-only fault injection, run before each batch is written: lets a unit test fail a
    /// chosen batch, and hold it while more commits queue behind it.
    #[cfg(test)]
    fault: Mutex<Option<Fault>>,
}

/// A unit test's fault, run before each batch is written: an error fails the batch.
#[cfg(test)]
type Fault = Box<dyn FnMut() -> Result<(), Error> + Send>;

struct Rows {
    /// Sequence number of the next session row (unique within a login second).
    next_seq: u64,
    /// Newest login time seen, the store's idea of "now" for pruning.
    newest: u32,
    /// Tombstone retention of the engine (from `load`; 24 h until then).
    retention: u32,
    /// When old rows were last pruned.
    pruned: std::time::Instant,
}

/// Longest possible session (the top of the maximum-session-length range).
const LONGEST_SESSION: u32 = 24 * 3600;
/// How often the committer deletes rows too old to matter.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Default)]
struct Queue {
    pending: Vec<StoreChange>,
    /// Number of the batch `pending` will be committed as.
    filling: u64,
    /// Every batch numbered below this is durable.
    committed: u64,
    /// The first failure; once set, every later commit is refused.
    failure: Option<Error>,
    stop: bool,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl RedbStore {
    /// Opens the database at `path`, creating it (not its directory) if missing, and checks
    /// its integrity and format version.
    ///
    /// # Errors
    ///
    /// [`Error::StoreOpen`] if the file cannot be opened or created for writing or is held
    /// by another engine, [`Error::StoreCorrupt`] if it is damaged or not a sessionward
    /// database, [`Error::StoreVersion`] if a newer sessionward wrote it. Every error names
    /// the path.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        let open_error = |reason: String| Error::StoreOpen {
            path: path.clone(),
            reason,
        };
        if path.is_dir() {
            return Err(open_error("it is a directory".into()));
        }
        if !path.exists() {
            create(&path).map_err(open_error)?;
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|err| open_error(err.to_string()))?;
        if file
            .metadata()
            .map_err(|err| open_error(err.to_string()))?
            .len()
            == 0
        {
            return Err(corrupt(&path, "the file is empty"));
        }
        let opened = guarded(&path, || {
            let mut db = builder().create_file(file).map_err(|err| match err {
                redb::DatabaseError::DatabaseAlreadyOpen => {
                    open_error("another engine or process holds it open".into())
                }
                redb::DatabaseError::Storage(redb::StorageError::Io(io))
                    if matches!(
                        io.kind(),
                        std::io::ErrorKind::PermissionDenied
                            | std::io::ErrorKind::ReadOnlyFilesystem
                            | std::io::ErrorKind::StorageFull
                    ) =>
                {
                    open_error(io.to_string())
                }
                other => corrupt(&path, other),
            })?;
            // Verifies every page checksum: a flipped byte anywhere in the live data is an
            // error here rather than a silently shorter table later.
            db.check_integrity().map_err(|err| corrupt(&path, err))?;
            Ok(db)
        })?;
        let db = opened;
        if check_format(&path, &db)? == 1 {
            guarded(&path, || migrate_from_version_1(&path, &db))?;
        }
        let next_seq = guarded(&path, || {
            let fail = |err: redb::Error| corrupt(&path, err);
            let read = db.begin_read().map_err(|e| fail(e.into()))?;
            let sessions = read.open_table(SESSIONS).map_err(|e| fail(e.into()))?;
            let mut next = 0_u64;
            for entry in sessions.iter().map_err(|e| fail(e.into()))? {
                let (key, _) = entry.map_err(|e| fail(e.into()))?;
                next = next.max((key.value() as u64).wrapping_add(1));
            }
            Ok(next)
        })?;
        let inner = Arc::new(Inner {
            path,
            db,
            rows: Mutex::new(Rows {
                next_seq,
                newest: 0,
                retention: 24 * 3600,
                pruned: std::time::Instant::now(),
            }),
            queue: Mutex::new(Queue::default()),
            work: Condvar::new(),
            done: Condvar::new(),
            #[cfg(test)]
            fault: Mutex::new(None),
        });
        let committer = {
            let worker = Arc::clone(&inner);
            std::thread::Builder::new()
                .name("sessionward-commit".into())
                .spawn(move || worker.run())
                .map_err(|err| Error::StoreOpen {
                    path: inner.path.clone(),
                    reason: format!("cannot start the committer thread: {err}"),
                })?
        };
        Ok(Self {
            inner,
            committer: Some(committer),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }
}

fn builder() -> redb::Builder {
    let mut builder = redb::Builder::new();
    // The v3 file format is the one redb 3 and later read: no file migration when the
    // dependency moves on (see docs/durability.md).
    builder
        .create_with_file_format_v3(true)
        .set_cache_size(CACHE_BYTES);
    builder
}

/// Creates a new database beside `path` and renames it into place once its format version is
/// written, so that a crash during creation never leaves a half-made file at `path`.
fn create(path: &Path) -> Result<(), String> {
    let name = path
        .file_name()
        .ok_or_else(|| "the path has no file name".to_owned())?
        .to_string_lossy();
    let fresh = path.with_file_name(format!(".{name}.new-{}", std::process::id()));
    let _ = std::fs::remove_file(&fresh);
    let made = builder()
        .create(&fresh)
        .map_err(|err| err.to_string())
        .and_then(|db| init(&fresh, &db).map_err(|err| err.to_string()));
    if let Err(err) = made {
        let _ = std::fs::remove_file(&fresh);
        return Err(err);
    }
    std::fs::rename(&fresh, path).map_err(|err| err.to_string())?;
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        // Make the rename itself durable.
        std::fs::File::open(dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|err| err.to_string())?;
    }
    Ok(())
}

/// Upgrades a version-1 file in one write transaction: its sessions belong to 53-character
/// tokens, which no longer validate, so they and their ends, activity and levels go; the org
/// (settings, profiles, users) stays. The version is written last, so a crash leaves a
/// version-1 file that the next open migrates again.
fn migrate_from_version_1(path: &Path, db: &Database) -> Result<(), Error> {
    let fail = |err: redb::Error| corrupt(path, err);
    let write = db.begin_write().map_err(|e| fail(e.into()))?;
    for table in [SESSIONS.name(), ENDS.name(), ACTIVITY.name(), LEVELS.name()] {
        let definition = TableDefinition::<u8, u8>::new(table);
        write.delete_table(definition).map_err(|e| fail(e.into()))?;
    }
    create_tables_and_version(&write).map_err(|e| fail(*e))?;
    write.commit().map_err(|e| fail(e.into()))
}

/// Writes the format version and creates the tables of a new database.
fn init(path: &Path, db: &Database) -> Result<(), Error> {
    let fail = |err: redb::Error| corrupt(path, err);
    let write = db.begin_write().map_err(|e| fail(e.into()))?;
    create_tables_and_version(&write).map_err(|e| fail(*e))?;
    write.commit().map_err(|e| fail(e.into()))
}

/// Creates every table that does not exist yet, then writes the format version.
///
/// The error is boxed: `redb::Error` is large, and this is a cold path.
fn create_tables_and_version(write: &redb::WriteTransaction) -> Result<(), Box<redb::Error>> {
    let open = |err: redb::TableError| Box::new(redb::Error::from(err));
    write.open_table(SESSIONS).map_err(open)?;
    write.open_table(ENDS).map_err(open)?;
    write.open_table(ACTIVITY).map_err(open)?;
    write.open_table(LEVELS).map_err(open)?;
    write.open_table(PROFILES).map_err(open)?;
    write.open_table(USERS).map_err(open)?;
    write.open_table(CLIENTS).map_err(open)?;
    write.open_table(GRANTS).map_err(open)?;
    write.open_table(DEVICES).map_err(open)?;
    let mut meta = write.open_table(META).map_err(open)?;
    meta.insert(KEY_VERSION, FORMAT_VERSION.to_le_bytes().as_slice())
        .map_err(|err| Box::new(redb::Error::from(err)))?;
    Ok(())
}

fn corrupt(path: &Path, err: impl std::fmt::Display) -> Error {
    Error::StoreCorrupt {
        path: path.to_path_buf(),
        reason: err.to_string(),
    }
}

fn malformed(path: &Path, err: Malformed) -> Error {
    corrupt(path, err.0)
}

/// Runs `work`, turning a panic inside redb (a damaged file can make it index out of bounds)
/// into [`Error::StoreCorrupt`].
fn guarded<T>(path: &Path, work: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "the database engine panicked".into());
            Err(corrupt(path, what))
        }
    }
}

/// Checks the format version of an opened file; returns it (1 or [`FORMAT_VERSION`]).
fn check_format(path: &Path, db: &Database) -> Result<u64, Error> {
    guarded(path, || {
        let fail = |err: redb::Error| corrupt(path, err);
        let read = db.begin_read().map_err(|e| fail(e.into()))?;
        let tables: Vec<String> = read
            .list_tables()
            .map_err(|e| fail(e.into()))?
            .map(|table| table.name().to_owned())
            .collect();
        if tables.iter().any(|name| name == META.name()) {
            let meta = read.open_table(META).map_err(|e| fail(e.into()))?;
            let version = meta
                .get(KEY_VERSION)
                .map_err(|e| fail(e.into()))?
                .ok_or_else(|| corrupt(path, "no format version in the meta table"))?;
            let bytes: [u8; 8] = version
                .value()
                .try_into()
                .map_err(|_| corrupt(path, "the format version is not 8 bytes"))?;
            let found = u64::from_le_bytes(bytes);
            if found > FORMAT_VERSION {
                return Err(Error::StoreVersion {
                    path: path.to_path_buf(),
                    found,
                    supported: FORMAT_VERSION,
                });
            }
            if found == 0 {
                return Err(corrupt(path, "format version 0"));
            }
            return Ok(found);
        }
        Err(corrupt(
            path,
            "not a sessionward database (no meta table with a format version)",
        ))
    })
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        self.inner.queue.lock().stop = true;
        self.inner.work.notify_all();
        if let Some(committer) = self.committer.take() {
            let _ = committer.join();
        }
    }
}

impl SessionStore for RedbStore {
    fn load(&self, now: u64, retention: u32) -> Result<StoredState, Error> {
        let path = &self.inner.path;
        self.inner.rows.lock().retention = retention;
        let (state, dead) = guarded(path, || load(&self.inner.db, path, now, retention))?;
        guarded(path, || forget(&self.inner.db, path, &dead))?;
        Ok(state)
    }

    fn commit(&self, changes: Vec<StoreChange>) -> Result<(), Error> {
        if changes.is_empty() {
            return Ok(());
        }
        let inner = &self.inner;
        let mut queue = inner.queue.lock();
        if let Some(failure) = &queue.failure {
            return Err(failure.clone());
        }
        if queue.pending.is_empty() {
            queue.pending = changes;
        } else {
            queue.pending.extend(changes);
        }
        let batch = queue.filling;
        inner.work.notify_one();
        loop {
            if queue.committed > batch {
                return Ok(());
            }
            if let Some(failure) = &queue.failure {
                return Err(failure.clone());
            }
            inner.done.wait(&mut queue);
        }
    }
}

impl Inner {
    /// The committer thread: takes the queued batch, writes it, wakes its waiters.
    fn run(&self) {
        loop {
            let (changes, batch) = {
                let mut queue = self.queue.lock();
                while queue.pending.is_empty() && !queue.stop {
                    self.work.wait(&mut queue);
                }
                if queue.pending.is_empty() {
                    return;
                }
                if queue.failure.is_some() {
                    // The latch covers batches queued before the failure too: their waiters
                    // were woken with the failure, so nothing of theirs may reach the file.
                    queue.pending.clear();
                    continue;
                }
                let batch = queue.filling;
                queue.filling += 1;
                (std::mem::take(&mut queue.pending), batch)
            };
            let result = guarded(&self.path, || self.write(&changes)).map_err(|err| match err {
                Error::StoreCorrupt { path, reason } | Error::StoreWrite { path, reason } => {
                    Error::StoreWrite { path, reason }
                }
                other => other,
            });
            let mut queue = self.queue.lock();
            match result {
                Ok(()) => queue.committed = batch + 1,
                Err(err) => {
                    queue.failure.get_or_insert(err);
                }
            }
            drop(queue);
            self.done.notify_all();
        }
    }

    /// One write transaction for a batch of changes.
    fn write(&self, changes: &[StoreChange]) -> Result<(), Error> {
        #[cfg(test)]
        if let Some(fault) = self.fault.lock().as_mut() {
            fault()?;
        }
        let fail = |err: redb::Error| Error::StoreWrite {
            path: self.path.clone(),
            reason: err.to_string(),
        };
        let mut txn = self.db.begin_write().map_err(|e| fail(e.into()))?;
        // Two-phase commit: the primary commit slot is always valid, so a damaged one is an
        // error at open, never a silent rollback to the previous commit. (Quick repair would
        // also save the allocator state, ten times the cost of a commit here, to speed up a
        // reopen after a crash; the open verifies every checksum anyway.)
        txn.set_two_phase_commit(true);
        {
            let mut sessions = txn.open_table(SESSIONS).map_err(|e| fail(e.into()))?;
            let mut ends = txn.open_table(ENDS).map_err(|e| fail(e.into()))?;
            let mut activity = txn.open_table(ACTIVITY).map_err(|e| fail(e.into()))?;
            let mut levels = txn.open_table(LEVELS).map_err(|e| fail(e.into()))?;
            let mut grants = txn.open_table(GRANTS).map_err(|e| fail(e.into()))?;
            let mut directory: Option<Directory<'_>> = None;
            let mut rows = self.rows.lock();
            for change in changes {
                match change {
                    StoreChange::Created(session) => {
                        let key = (u128::from(session.created) << 64) | u128::from(rows.next_seq);
                        rows.next_seq = rows.next_seq.wrapping_add(1);
                        rows.newest = rows.newest.max(session.created);
                        sessions
                            .insert(key, codec::encode_session(session).as_slice())
                            .map_err(|e| fail(e.into()))?;
                    }
                    StoreChange::Ended { handle, reason, at } => {
                        ends.insert(*handle, codec::encode_end(*reason, *at))
                            .map_err(|e| fail(e.into()))?;
                    }
                    StoreChange::Activity { handle, at } => {
                        activity.insert(*handle, *at).map_err(|e| fail(e.into()))?;
                    }
                    StoreChange::SteppedUp { handle, level } => {
                        levels
                            .insert(*handle, *level as u8)
                            .map_err(|e| fail(e.into()))?;
                    }
                    StoreChange::Forget { handle } => {
                        // The end stays while the row does (until the prune below): a row
                        // without its end loads as a live session.
                        activity.remove(*handle).map_err(|e| fail(e.into()))?;
                        levels.remove(*handle).map_err(|e| fail(e.into()))?;
                        grants.remove(*handle).map_err(|e| fail(e.into()))?;
                    }
                    StoreChange::Granted(grant) => {
                        grants
                            .insert(grant.handle, codec::encode_grant(grant).as_slice())
                            .map_err(|e| fail(e.into()))?;
                    }
                    directory_change => {
                        if directory.is_none() {
                            directory = Some(Directory {
                                meta: txn.open_table(META).map_err(|e| fail(e.into()))?,
                                profiles: txn.open_table(PROFILES).map_err(|e| fail(e.into()))?,
                                users: txn.open_table(USERS).map_err(|e| fail(e.into()))?,
                                clients: txn.open_table(CLIENTS).map_err(|e| fail(e.into()))?,
                                devices: txn.open_table(DEVICES).map_err(|e| fail(e.into()))?,
                            });
                        }
                        if let Some(directory) = directory.as_mut() {
                            directory.apply(directory_change).map_err(|e| fail(*e))?;
                        }
                    }
                }
            }
            if rows.pruned.elapsed() >= PRUNE_EVERY {
                rows.pruned = std::time::Instant::now();
                let cutoff = rows
                    .newest
                    .saturating_sub(LONGEST_SESSION)
                    .saturating_sub(rows.retention);
                if cutoff > 0 {
                    let mut pruned = Vec::new();
                    sessions
                        .retain_in(..(u128::from(cutoff) << 64), |_, row| {
                            // A row that does not decode is dropped all the same; entries it
                            // leaves behind are removed by the next load.
                            if let Ok(session) = codec::decode_session(row) {
                                pruned.push(session.handle().as_u64());
                            }
                            false
                        })
                        .map_err(|e| fail(e.into()))?;
                    for handle in pruned {
                        ends.remove(handle).map_err(|e| fail(e.into()))?;
                        activity.remove(handle).map_err(|e| fail(e.into()))?;
                        levels.remove(handle).map_err(|e| fail(e.into()))?;
                        grants.remove(handle).map_err(|e| fail(e.into()))?;
                    }
                }
            }
        }
        txn.commit().map_err(|e| fail(e.into()))
    }
}

/// The directory tables (with the OAuth clients and remembered devices), opened only by
/// batches that change them.
struct Directory<'txn> {
    meta: redb::Table<'txn, &'static str, &'static [u8]>,
    profiles: redb::Table<'txn, u16, &'static [u8]>,
    users: redb::Table<'txn, u32, &'static [u8]>,
    clients: redb::Table<'txn, &'static str, &'static [u8]>,
    devices: redb::Table<'txn, u32, &'static [u8]>,
}

impl Directory<'_> {
    fn apply(&mut self, change: &StoreChange) -> Result<(), Box<redb::Error>> {
        match change {
            StoreChange::Settings(settings) => {
                self.meta
                    .insert(KEY_SETTINGS, codec::encode_settings(settings).as_slice())
                    .map_err(boxed)?;
            }
            StoreChange::ProfilePut { key, profile } => {
                self.profiles
                    .insert(*key, codec::encode_profile(profile).as_slice())
                    .map_err(boxed)?;
                let next = u32::from(*key) + 1;
                if self.counter(KEY_NEXT_PROFILE)? < u64::from(next) {
                    self.meta
                        .insert(KEY_NEXT_PROFILE, u64::from(next).to_le_bytes().as_slice())
                        .map_err(boxed)?;
                }
            }
            StoreChange::ProfileRemoved { key } => {
                self.profiles.remove(*key).map_err(boxed)?;
            }
            StoreChange::UserPut(user) => {
                self.users
                    .insert(
                        user.key,
                        codec::encode_user(&user.id, user.profile).as_slice(),
                    )
                    .map_err(boxed)?;
                let next = u64::from(user.key) + 1;
                if self.counter(KEY_NEXT_USER)? < next {
                    self.meta
                        .insert(KEY_NEXT_USER, next.to_le_bytes().as_slice())
                        .map_err(boxed)?;
                }
            }
            StoreChange::UserRemoved { key } => {
                self.users.remove(*key).map_err(boxed)?;
                self.devices.remove(*key).map_err(boxed)?;
            }
            StoreChange::DevicesRemembered { user, devices } => {
                self.devices
                    .insert(*user, codec::encode_devices(devices).as_slice())
                    .map_err(boxed)?;
            }
            StoreChange::ClientPut(client) => {
                self.clients
                    .insert(
                        client.client_id.as_str(),
                        codec::encode_client(client).as_slice(),
                    )
                    .map_err(boxed)?;
            }
            StoreChange::ClientRemoved { client_id } => {
                self.clients.remove(client_id.as_str()).map_err(boxed)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn counter(&self, key: &str) -> Result<u64, Box<redb::Error>> {
        Ok(self
            .meta
            .get(key)
            .map_err(boxed)?
            .and_then(|value| <[u8; 8]>::try_from(value.value()).ok())
            .map_or(0, u64::from_le_bytes))
    }
}

fn boxed(err: redb::StorageError) -> Box<redb::Error> {
    Box::new(err.into())
}

/// Reads everything; returns the state and the handles of dead sessions (and orphan rows) to
/// delete.
/// What `load` found dead: session rows by key, handle-keyed entries by handle.
#[derive(Default)]
struct Dead {
    rows: Vec<u128>,
    handles: Vec<u64>,
}

/// Deletes what `load` found dead, in one transaction.
fn forget(db: &Database, path: &Path, dead: &Dead) -> Result<(), Error> {
    if dead.rows.is_empty() && dead.handles.is_empty() {
        return Ok(());
    }
    let fail = |err: redb::Error| Error::StoreWrite {
        path: path.to_path_buf(),
        reason: err.to_string(),
    };
    let mut txn = db.begin_write().map_err(|e| fail(e.into()))?;
    txn.set_two_phase_commit(true);
    {
        let mut sessions = txn.open_table(SESSIONS).map_err(|e| fail(e.into()))?;
        for key in &dead.rows {
            sessions.remove(*key).map_err(|e| fail(e.into()))?;
        }
        let mut ends = txn.open_table(ENDS).map_err(|e| fail(e.into()))?;
        let mut activity = txn.open_table(ACTIVITY).map_err(|e| fail(e.into()))?;
        let mut levels = txn.open_table(LEVELS).map_err(|e| fail(e.into()))?;
        let mut grants = txn.open_table(GRANTS).map_err(|e| fail(e.into()))?;
        for handle in &dead.handles {
            ends.remove(*handle).map_err(|e| fail(e.into()))?;
            activity.remove(*handle).map_err(|e| fail(e.into()))?;
            levels.remove(*handle).map_err(|e| fail(e.into()))?;
            grants.remove(*handle).map_err(|e| fail(e.into()))?;
        }
    }
    txn.commit().map_err(|e| fail(e.into()))
}

fn load(
    db: &Database,
    path: &Path,
    now: u64,
    retention: u32,
) -> Result<(StoredState, Dead), Error> {
    let fail = |err: redb::Error| corrupt(path, err);
    let read = db.begin_read().map_err(|e| fail(e.into()))?;
    let meta = read.open_table(META).map_err(|e| fail(e.into()))?;
    let mut state = StoredState::default();
    let counter = |key: &str| -> Result<u64, Error> {
        match meta.get(key).map_err(|e| fail(e.into()))? {
            None => Ok(0),
            Some(value) => <[u8; 8]>::try_from(value.value())
                .map(u64::from_le_bytes)
                .map_err(|_| corrupt(path, format!("meta {key} is not 8 bytes"))),
        }
    };
    state.next_profile = u32::try_from(counter(KEY_NEXT_PROFILE)?)
        .ok()
        .filter(|&next| next <= u32::from(u16::MAX))
        .ok_or_else(|| corrupt(path, "next profile key out of range"))?;
    state.next_user = counter(KEY_NEXT_USER)?;
    if state.next_user > u64::from(u32::MAX) + 1 {
        return Err(corrupt(path, "next user key out of range"));
    }
    if let Some(settings) = meta.get(KEY_SETTINGS).map_err(|e| fail(e.into()))? {
        state.settings =
            Some(codec::decode_settings(settings.value()).map_err(|e| malformed(path, e))?);
    }
    let profiles = read.open_table(PROFILES).map_err(|e| fail(e.into()))?;
    for entry in profiles.iter().map_err(|e| fail(e.into()))? {
        let (key, value) = entry.map_err(|e| fail(e.into()))?;
        let profile = codec::decode_profile(value.value()).map_err(|e| malformed(path, e))?;
        if u32::from(key.value()) >= state.next_profile {
            return Err(corrupt(path, "profile key beyond the next profile key"));
        }
        state.profiles.push((key.value(), profile));
    }
    let users = read.open_table(USERS).map_err(|e| fail(e.into()))?;
    for entry in users.iter().map_err(|e| fail(e.into()))? {
        let (key, value) = entry.map_err(|e| fail(e.into()))?;
        let (id, profile) = codec::decode_user(value.value()).map_err(|e| malformed(path, e))?;
        if u64::from(key.value()) >= state.next_user {
            return Err(corrupt(path, "user key beyond the next user key"));
        }
        state.users.push(StoredUser {
            key: key.value(),
            id: id.into(),
            profile,
        });
    }
    let mut ends = HashMap::new();
    for entry in read
        .open_table(ENDS)
        .map_err(|e| fail(e.into()))?
        .iter()
        .map_err(|e| fail(e.into()))?
    {
        let (handle, value) = entry.map_err(|e| fail(e.into()))?;
        let end = codec::decode_end(value.value()).map_err(|e| malformed(path, e))?;
        ends.insert(handle.value(), end);
    }
    let mut activity = HashMap::new();
    for entry in read
        .open_table(ACTIVITY)
        .map_err(|e| fail(e.into()))?
        .iter()
        .map_err(|e| fail(e.into()))?
    {
        let (handle, value) = entry.map_err(|e| fail(e.into()))?;
        activity.insert(handle.value(), value.value());
    }
    let mut levels = HashMap::new();
    for entry in read
        .open_table(LEVELS)
        .map_err(|e| fail(e.into()))?
        .iter()
        .map_err(|e| fail(e.into()))?
    {
        let (handle, value) = entry.map_err(|e| fail(e.into()))?;
        if value.value() > 2 {
            return Err(corrupt(path, "level row holds an unknown level"));
        }
        levels.insert(handle.value(), value.value());
    }
    let clients = load_clients(&read, path)?;
    let mut grants = load_grants(&read, path)?;
    let mut dead = Dead::default();
    let sessions = read.open_table(SESSIONS).map_err(|e| fail(e.into()))?;
    for entry in sessions.iter().map_err(|e| fail(e.into()))? {
        let (key, value) = entry.map_err(|e| fail(e.into()))?;
        let key = key.value();
        let mut session: StoredSession =
            codec::decode_session(value.value()).map_err(|e| malformed(path, e))?;
        if (key >> 64) as u32 != session.created || key >> 96 != 0 {
            return Err(corrupt(path, "session row stored under another login time"));
        }
        let handle = session.handle().as_u64();
        session.ended = ends.remove(&handle);
        if let Some(at) = activity.remove(&handle) {
            session.last_activity = session.last_activity.max(at);
        }
        if let Some(level) = levels.remove(&handle) {
            session.level = session.level.max(crate::SecurityLevel::from_u8(level));
        }
        let dead_since = match session.ended {
            Some((_, at)) => u64::from(at),
            None => (u64::from(session.last_activity) + u64::from(session.idle_secs))
                .min(u64::from(session.absolute_deadline)),
        };
        if now >= dead_since + u64::from(retention) {
            dead.rows.push(key);
            dead.handles.push(handle);
            grants.remove(&handle);
        } else {
            if let Some(grant) = grants.remove(&handle) {
                state.oauth_grants.push(grant);
            }
            state.sessions.push(session);
        }
    }
    // Entries without a session: their login never returned, or the row was pruned.
    dead.handles.extend(ends.into_keys());
    dead.handles.extend(activity.into_keys());
    dead.handles.extend(levels.into_keys());
    dead.handles.extend(grants.into_keys());
    state.oauth_clients = clients;
    state.remembered_devices = rows_of_optional_table(&read, path, DEVICES, |user, bytes| {
        codec::decode_devices(bytes).map(|devices| (user, devices))
    })?;
    Ok((state, dead))
}

/// Every row of `table`, decoded by `decode` from its key and value; none if the file has no
/// such table (one written before the OAuth and device tables existed).
fn rows_of_optional_table<K: redb::Key + 'static, T>(
    read: &ReadTransaction,
    path: &Path,
    table: TableDefinition<K, &[u8]>,
    mut decode: impl for<'a> FnMut(K::SelfType<'a>, &'a [u8]) -> Result<T, Malformed>,
) -> Result<Vec<T>, Error> {
    let fail = |err: redb::Error| corrupt(path, err);
    let table = match read.open_table(table) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(err) => return Err(fail(err.into())),
    };
    let mut rows = Vec::new();
    for entry in table.iter().map_err(|e| fail(e.into()))? {
        let (key, value) = entry.map_err(|e| fail(e.into()))?;
        rows.push(decode(key.value(), value.value()).map_err(|e| malformed(path, e))?);
    }
    Ok(rows)
}

/// The registered OAuth clients, sorted by id.
fn load_clients(
    read: &ReadTransaction,
    path: &Path,
) -> Result<Vec<crate::store::StoredClient>, Error> {
    rows_of_optional_table(read, path, CLIENTS, codec::decode_client)
}

/// Every stored OAuth grant, by handle.
fn load_grants(
    read: &ReadTransaction,
    path: &Path,
) -> Result<HashMap<u64, crate::store::StoredGrant>, Error> {
    let grants = rows_of_optional_table(read, path, GRANTS, codec::decode_grant)?;
    Ok(grants
        .into_iter()
        .map(|grant| (grant.handle, grant))
        .collect())
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::{EndReason, LoginMethod, SecurityLevel, SessionType};
    use redb::ReadableTableMetadata;

    const NOW: u32 = 1_700_000_000;

    fn session(n: u8) -> StoredSession {
        StoredSession {
            digest: [n; 28],
            origin: IpAddr::from([10, 0, 0, n]),
            created: NOW,
            last_activity: NOW,
            absolute_deadline: NOW + 3600,
            idle_secs: 1800,
            user: 0,
            profile: 0,
            level: SecurityLevel::Standard,
            session_type: SessionType::Ui,
            method: LoginMethod::Password,
            ip_locked: false,
            browser_bound: false,
            ended: None,
        }
    }

    /// A fresh directory for one test's database (removed first if a run left it), and the
    /// database's path in it.
    fn fresh_dir(name: &str) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("swd-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sessions.redb");
        (dir, path)
    }

    /// A new store at `path`, loaded, holding `session(1)`.
    fn store_with_one_session(path: &Path) -> RedbStore {
        let store = RedbStore::open(path).unwrap();
        store.load(u64::from(NOW), 3600).unwrap();
        store
            .commit(vec![StoreChange::Created(session(1))])
            .unwrap();
        store
    }

    /// The latch, with a failure redb itself does not latch (after an I/O error redb refuses
    /// every later write on its own, which would hide a store that kept writing).
    #[test]
    fn a_failed_batch_fails_the_batches_queued_behind_it_and_every_later_commit() {
        let (dir, path) = fresh_dir("latch");
        let store = store_with_one_session(&path);

        let failure = Error::StoreWrite {
            path: path.clone(),
            reason: "injected".into(),
        };
        let (writing, entered) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let injected = failure.clone();
        let mut batches = 0;
        // Only the first batch fails: a store that wrote on after it would succeed.
        *store.inner.fault.lock() = Some(Box::new(move || {
            batches += 1;
            if batches > 1 {
                return Ok(());
            }
            writing.send(()).unwrap();
            released.recv().unwrap();
            Err(injected.clone())
        }));
        std::thread::scope(|scope| {
            let failing = scope.spawn(|| store.commit(vec![StoreChange::Created(session(2))]));
            entered.recv().unwrap();
            let queued = scope.spawn(|| {
                store.commit(vec![
                    StoreChange::Created(session(3)),
                    StoreChange::Ended {
                        handle: session(1).handle().as_u64(),
                        reason: EndReason::Admin,
                        at: NOW,
                    },
                ])
            });
            // Fail the batch being written only once the next one is queued behind it.
            while store.inner.queue.lock().pending.is_empty() {
                std::thread::sleep(Duration::from_millis(1));
            }
            release.send(()).unwrap();
            assert_eq!(failing.join().unwrap(), Err(failure.clone()));
            assert_eq!(
                queued.join().unwrap(),
                Err(failure.clone()),
                "a batch queued before the failure fails with it"
            );
        });
        assert_eq!(
            store.commit(vec![StoreChange::Created(session(4))]),
            Err(failure),
            "every later commit is refused"
        );
        drop(store);

        let store = RedbStore::open(&path).unwrap();
        let loaded = store.load(u64::from(NOW), 3600).unwrap();
        let kept: Vec<(u8, bool)> = loaded
            .sessions
            .iter()
            .map(|session| (session.digest[0], session.ended.is_some()))
            .collect();
        assert_eq!(
            kept,
            [(1, false)],
            "nothing of a failed or refused batch reached the file"
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn grants_load_with_their_sessions_and_leave_with_them() {
        let (dir, path) = fresh_dir("grants");
        let grant = |n: u8| crate::store::StoredGrant {
            handle: session(n).handle().as_u64(),
            client_id: "erp".into(),
            scopes: vec![format!("scope{n}")],
        };
        let client = crate::store::StoredClient {
            client_id: "erp".into(),
            run_as: "bot".into(),
            scopes: vec!["scope1".into(), "scope2".into()],
            secret_digest: [3; 32],
        };
        {
            let store = RedbStore::open(&path).unwrap();
            store.load(u64::from(NOW), 3600).unwrap();
            store
                .commit(vec![
                    StoreChange::ClientPut(client.clone()),
                    StoreChange::Created(session(1)),
                    StoreChange::Granted(grant(1)),
                    StoreChange::Created(session(2)),
                    StoreChange::Granted(grant(2)),
                    // A grant whose session row never arrived, and one forgotten.
                    StoreChange::Granted(grant(3)),
                    StoreChange::Forget {
                        handle: grant(2).handle,
                    },
                ])
                .unwrap();
            let state = store.load(u64::from(NOW), 3600).unwrap();
            assert_eq!(state.oauth_clients, std::slice::from_ref(&client));
            assert_eq!(state.oauth_grants, [grant(1)]);
        }
        // Reopened past session 1's life and retention: no grant loads, and the file keeps
        // none (the load deletes what it found dead).
        let store = RedbStore::open(&path).unwrap();
        let later = u64::from(NOW) + 3 * 3600;
        assert!(store.load(later, 3600).unwrap().oauth_grants.is_empty());
        let read = store.inner.db.begin_read().unwrap();
        assert_eq!(read.open_table(GRANTS).unwrap().len().unwrap(), 0);
        assert_eq!(read.open_table(CLIENTS).unwrap().len().unwrap(), 1);
        drop(read);
        store
            .commit(vec![StoreChange::ClientRemoved {
                client_id: "erp".into(),
            }])
            .unwrap();
        assert!(store.load(later, 3600).unwrap().oauth_clients.is_empty());
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_from_before_the_oauth_and_device_tables_opens_and_gets_them_on_first_write() {
        let (dir, path) = fresh_dir("pre-oauth");
        {
            let store = store_with_one_session(&path);
            // What a file written before the OAuth and device tables existed looks like.
            let write = store.inner.db.begin_write().unwrap();
            assert!(write.delete_table(CLIENTS).unwrap());
            assert!(write.delete_table(GRANTS).unwrap());
            assert!(write.delete_table(DEVICES).unwrap());
            write.commit().unwrap();
        }
        let store = RedbStore::open(&path).unwrap();
        let state = store.load(u64::from(NOW), 3600).unwrap();
        assert_eq!(state.sessions.len(), 1);
        assert!(state.oauth_clients.is_empty() && state.oauth_grants.is_empty());
        assert!(state.remembered_devices.is_empty());
        let devices = vec![[3; 32], [4; 32]];
        store
            .commit(vec![StoreChange::DevicesRemembered {
                user: 1,
                devices: devices.clone(),
            }])
            .unwrap();
        assert_eq!(
            store.load(u64::from(NOW), 3600).unwrap().remembered_devices,
            [(1, devices)]
        );
        let client = crate::store::StoredClient {
            client_id: "erp".into(),
            run_as: "bot".into(),
            scopes: Vec::new(),
            secret_digest: [1; 32],
        };
        store
            .commit(vec![StoreChange::ClientPut(client.clone())])
            .unwrap();
        assert_eq!(
            store.load(u64::from(NOW), 3600).unwrap().oauth_clients,
            [client]
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
