//! Batch calls (`Org.validate_many`, `Org.check_many`): reading the caller's tokens and
//! addresses, and running a `check_many` batch on this thread and a helper thread.
//!
//! # Two threads without waiting for one
//!
//! A `check_many` batch is cut into chunks of 256 tokens that the calling thread and one
//! process-wide helper thread take in turn from a shared counter (work sharing). The caller
//! copies the chunks out of the Python objects first (with the GIL), publishing each one as
//! it goes, so the helper validates the first chunks while the caller copies the rest. The calling
//! thread never waits for work the helper has not started: if the helper is slow to be
//! scheduled (a busy machine) the caller simply takes every chunk itself, and only waits for
//! the chunks the helper is in the middle of. Splitting a batch in two fixed halves over a
//! scoped thread instead was slower than one thread on a loaded two-core machine (the caller
//! waited for a helper that had not been scheduled yet).
//!
//! The helper is started on first use and lives for the process; after `fork()` the child
//! starts its own (the parent's is not copied). Jobs own everything they read (the copied
//! tokens, the addresses, an `Arc` of the engine), so the helper never touches a Python object
//! and never needs the GIL.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};
use sessionward_core::{Engine, Requirement, SecurityLevel, TOKEN_LEN};

use crate::convert;
use crate::errors;
use crate::ffi::prefetch_object;

/// The tokens of a batch call, as a snapshot that cannot change under the call: a `tuple` is
/// used as it is (immutable), a `list` is copied into a tuple (references only: one `memcpy`
/// and a reference count per item, small next to validating them), and any other iterable but
/// a bare `str` is collected into one.
///
/// The snapshot matters because the call runs Python code (conversions of the addresses,
/// garbage collection) and `validate_many` lets other threads run between chunks: a list that
/// shrank meanwhile made the call fail part-way, after earlier chunks had been validated (and
/// their sessions' last activity refreshed).
///
/// List and tuple *subclasses* are read through their iterator like any other iterable, never
/// through `__len__`, which a subclass may override: buffers sized from a lying length aborted
/// the process or read past the end.
pub(crate) fn batch_tokens<'py>(tokens: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
    if tokens.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(
            "tokens: expected a list of tokens, got a single str (use validate)",
        ));
    }
    if let Ok(tuple) = tokens.cast_exact::<PyTuple>() {
        return Ok(tuple.clone());
    }
    if let Ok(list) = tokens.cast_exact::<PyList>() {
        return Ok(list.to_tuple());
    }
    let items = tokens.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "tokens: expected an iterable of str, got {}",
            convert::type_name(tokens)
        ))
    })?;
    // Pushed one by one: no capacity is taken from the iterator's length hint, which a
    // Python class may also make up.
    let mut collected = Vec::new();
    for item in items {
        collected.push(item?);
    }
    PyTuple::new(tokens.py(), collected)
}

/// The addresses of a batch call: one for all tokens, or a list or tuple with one per token.
pub(crate) enum Addresses {
    One([IpAddr; 1]),
    PerToken(Vec<IpAddr>),
}

impl Addresses {
    /// The addresses of `range`'s tokens, as `Engine::validate_many` takes them.
    pub(crate) fn for_range(&self, range: std::ops::Range<usize>) -> &[IpAddr] {
        match self {
            Self::One(one) => one,
            Self::PerToken(all) => &all[range],
        }
    }
}

pub(crate) fn batch_addresses(
    py: Python<'_>,
    ips: &Bound<'_, PyAny>,
    count: usize,
) -> PyResult<Addresses> {
    if !(ips.is_instance_of::<PyList>() || ips.is_instance_of::<PyTuple>()) {
        return Ok(Addresses::One([convert::ip_arg(ips)?]));
    }
    let mut addresses = Vec::with_capacity(count);
    for (index, item) in ips.try_iter()?.enumerate() {
        addresses.push(convert::ip_arg(&item?).map_err(|err| {
            let message = format!("ips[{index}]: {}", err.value(py));
            if err.is_instance_of::<PyTypeError>(py) {
                PyTypeError::new_err(message)
            } else {
                errors::invalid_input(py, message)
            }
        })?);
    }
    match addresses.len() {
        1 => Ok(Addresses::One([addresses[0]])),
        len if len == count => Ok(Addresses::PerToken(addresses)),
        len => Err(PyValueError::new_err(format!(
            "ips: {len} addresses for {count} tokens (pass one per token, or one for all)"
        ))),
    }
}

/// Tokens copied out of Python objects into one buffer, so that they can be validated without
/// the GIL while the caller's objects change or go away.
pub(crate) struct TokenBuffer {
    text: String,
    ends: Vec<usize>,
}

impl TokenBuffer {
    pub(crate) fn with_capacity(tokens: usize) -> Self {
        Self {
            text: String::with_capacity(tokens * TOKEN_LEN),
            ends: Vec::with_capacity(tokens),
        }
    }

    /// Replaces the contents with the items `range` of `tokens` (a snapshot from
    /// `batch_tokens`; `range` within its length). Anything that is not a `str` of the token
    /// length is malformed whatever it holds: it is kept as the empty string, which the engine
    /// refuses as malformed like any other malformed text.
    pub(crate) fn fill(
        &mut self,
        tokens: &Bound<'_, PyTuple>,
        range: std::ops::Range<usize>,
    ) -> PyResult<()> {
        self.text.clear();
        self.ends.clear();
        let push = |text: &mut String, item: &Bound<'_, PyAny>| {
            if let Ok(item) = item.cast::<PyString>() {
                if let Ok(item) = item.to_str() {
                    if item.len() == TOKEN_LEN {
                        text.push_str(item);
                    }
                }
            }
        };
        for index in range {
            if index + PREFETCH_AHEAD < tokens.len() {
                prefetch_object(tokens.get_borrowed_item(index + PREFETCH_AHEAD)?.as_ptr());
            }
            push(&mut self.text, &*tokens.get_borrowed_item(index)?);
            self.ends.push(self.text.len());
        }
        Ok(())
    }

    /// Token `index` (the empty string for an item that was not a token-length `str`).
    fn token(&self, index: usize) -> &str {
        let start = index.checked_sub(1).map_or(0, |before| self.ends[before]);
        &self.text[start..self.ends[index]]
    }

    /// The tokens, in order.
    pub(crate) fn slices(&self) -> Vec<&str> {
        let mut start = 0;
        self.ends
            .iter()
            .map(|&end| {
                let slice = &self.text[start..end];
                start = end;
                slice
            })
            .collect()
    }
}

/// How many items ahead `TokenBuffer::fill` prefetches the caller's `str` objects.
const PREFETCH_AHEAD: usize = 8;

/// Tokens per chunk of a `check_many` job: small enough to share a batch between two threads
/// evenly, large enough for the engine's prefetching (16 at a time) and cheap bookkeeping.
const CHUNK: usize = 256;

/// Batches at least this long are offered to the helper thread (when the machine has two
/// cores or more); shorter ones run on the calling thread only.
const PARALLEL_MIN_TOKENS: usize = 4 * CHUNK;

/// A `check_many` batch: owns its tokens (copied chunk by chunk) and addresses, so that the
/// helper thread can work on it without the GIL and outlive the call.
pub(crate) struct CheckJob {
    engine: Arc<Engine>,
    /// Each chunk's tokens, published by the calling thread as it copies them.
    chunks: Vec<OnceLock<TokenBuffer>>,
    addresses: Addresses,
    operation: Option<String>,
    level: Option<SecurityLevel>,
    next_chunk: AtomicUsize,
    codes: Vec<AtomicU8>,
    /// Chunks not finished yet; `finished` is signalled when it reaches zero.
    unfinished: Mutex<usize>,
    finished: Condvar,
    /// A chunk panicked (a bug): its codes are missing.
    failed: AtomicBool,
    /// Copying the tokens failed: the call raised, no chunk will be published any more.
    aborted: AtomicBool,
}

/// Counts a chunk as finished when dropped, even when its work panicked, so that the caller
/// waiting for the batch is always woken.
struct ChunkDone<'a>(&'a CheckJob);

impl Drop for ChunkDone<'_> {
    fn drop(&mut self) {
        let job = self.0;
        if std::thread::panicking() {
            job.failed.store(true, Ordering::Relaxed);
        }
        let mut unfinished = job
            .unfinished
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *unfinished -= 1;
        if *unfinished == 0 {
            job.finished.notify_all();
        }
    }
}

impl CheckJob {
    /// A job for `count` tokens whose chunks are still to be copied.
    pub(crate) fn new(
        engine: Arc<Engine>,
        count: usize,
        addresses: Addresses,
        operation: Option<String>,
        level: Option<SecurityLevel>,
    ) -> Self {
        let chunks = count.div_ceil(CHUNK);
        Self {
            engine,
            chunks: (0..chunks).map(|_| OnceLock::new()).collect(),
            addresses,
            operation,
            level,
            next_chunk: AtomicUsize::new(0),
            codes: (0..count).map(|_| AtomicU8::new(0)).collect(),
            unfinished: Mutex::new(chunks),
            finished: Condvar::new(),
            failed: AtomicBool::new(false),
            aborted: AtomicBool::new(false),
        }
    }

    fn requirement(&self) -> Requirement<'_> {
        match (&self.operation, self.level) {
            (Some(operation), _) => Requirement::Operation(operation),
            (None, Some(level)) => Requirement::Level(level),
            (None, None) => Requirement::Any,
        }
    }

    /// Runs the batch and returns one code per token (`errors::check_code`).
    ///
    /// A long batch is offered to the helper thread first. Then the tokens are copied out of
    /// `tokens` chunk by chunk with the GIL held, each chunk published as soon as it is copied
    /// (the helper starts validating while the rest is copied); then, without the GIL, this
    /// thread takes the chunks left, and waits for those the helper is still on.
    pub(crate) fn run(self, tokens: &Bound<'_, PyTuple>) -> PyResult<Vec<u8>> {
        let count = self.codes.len();
        let job = Arc::new(self);
        if count >= PARALLEL_MIN_TOKENS && parallelism() >= 2 {
            offer(&job);
        }
        for (index, chunk) in job.chunks.iter().enumerate() {
            let first = index * CHUNK;
            let mut buffer = TokenBuffer::with_capacity(CHUNK);
            // Reading the snapshot within its length cannot fail (a tuple never shrinks);
            // should it ever, the helper stops at the first unpublished chunk.
            if let Err(err) = buffer.fill(tokens, first..count.min(first + CHUNK)) {
                job.aborted.store(true, Ordering::Release);
                return Err(err);
            }
            let _ = chunk.set(buffer); // only this thread sets chunks
        }
        let codes = tokens.py().detach(|| {
            job.work();
            job.wait()
        });
        // A panic must not cross into Python (it would surface as pyo3's PanicException, or
        // worse): a chunk that panicked on the helper thread is reported as an error.
        codes.ok_or_else(|| {
            PyRuntimeError::new_err(
                "check_many: validating a chunk failed on the helper thread (a bug: please \
                 report it)",
            )
        })
    }

    /// Waits until every chunk is finished, then collects the codes (`None` if a chunk
    /// panicked: its codes are missing).
    fn wait(&self) -> Option<Vec<u8>> {
        let mut unfinished = self
            .unfinished
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while *unfinished > 0 {
            unfinished = self
                .finished
                .wait(unfinished)
                .unwrap_or_else(PoisonError::into_inner);
        }
        drop(unfinished);
        if self.failed.load(Ordering::Relaxed) {
            return None;
        }
        // The helper's stores happened before it released `unfinished`, which we acquired.
        Some(
            self.codes
                .iter()
                .map(|code| code.load(Ordering::Relaxed))
                .collect(),
        )
    }

    /// The tokens of chunk `index`, once published (`None` if the job was aborted first). Only
    /// the helper ever waits here, for the few microseconds the caller takes to copy a chunk.
    fn published(&self, index: usize) -> Option<&TokenBuffer> {
        let mut spins = 0_u32;
        loop {
            if let Some(chunk) = self.chunks[index].get() {
                return Some(chunk);
            }
            if self.aborted.load(Ordering::Acquire) {
                return None;
            }
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// Takes chunks until none is left (or the job was aborted).
    fn work(&self) {
        let count = self.codes.len();
        let requirement = self.requirement();
        let mut tokens = Vec::with_capacity(CHUNK);
        let mut results = Vec::with_capacity(CHUNK);
        loop {
            let index = self.next_chunk.fetch_add(1, Ordering::Relaxed);
            if index >= self.chunks.len() {
                return;
            }
            let done = ChunkDone(self);
            let Some(chunk) = self.published(index) else {
                return;
            };
            let first = index * CHUNK;
            let last = count.min(first + CHUNK);
            tokens.clear();
            tokens.extend((0..last - first).map(|offset| chunk.token(offset)));
            // Briefs, not whole `SessionInfo`s: a code needs only the refusal, and a brief
            // batch builds 16 bytes per token instead of 72 (8-13 % faster in the core).
            self.engine.validate_many_brief(
                &tokens,
                self.addresses.for_range(first..last),
                requirement,
                &mut results,
            );
            for (code, result) in self.codes[first..last].iter().zip(&results) {
                code.store(errors::check_code(result), Ordering::Relaxed);
            }
            drop(done);
        }
    }
}

/// The process's helper thread: where to send it jobs, and the process it belongs to.
struct Helper {
    pid: u32,
    jobs: Sender<Arc<CheckJob>>,
}

static HELPER: Mutex<Option<Helper>> = Mutex::new(None);

/// Hands `job` to the helper thread (starting it if this process has none). Best effort: if
/// the helper cannot be started or reached, the calling thread does all the work.
fn offer(job: &Arc<CheckJob>) {
    // `try_lock`: after `fork()`, a lock held by a parent thread that no longer exists must
    // not block the child; it then works alone.
    let Ok(mut helper) = HELPER.try_lock() else {
        return;
    };
    let pid = std::process::id();
    if helper.as_ref().is_none_or(|helper| helper.pid != pid) {
        // A helper of the parent process (before a fork) has no thread here: leak its
        // channel rather than drop it, as its state was copied mid-flight.
        std::mem::forget(helper.take());
        let (jobs, inbox) = mpsc::channel::<Arc<CheckJob>>();
        let spawned = std::thread::Builder::new()
            .name("sessionward-check".to_owned())
            .spawn(move || {
                for job in inbox {
                    // A panic (a bug) is reported to the caller by the job; the helper lives on.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.work()));
                }
            });
        if spawned.is_err() {
            return;
        }
        *helper = Some(Helper { pid, jobs });
    }
    let sent = helper
        .as_ref()
        .is_some_and(|helper| helper.jobs.send(Arc::clone(job)).is_ok());
    if !sent {
        *helper = None; // its thread is gone: start a new one next time
    }
}

/// The number of cores this process may use (read once).
fn parallelism() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
