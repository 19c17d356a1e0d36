//! `Org`: the engine, shared by every Python thread.
//!
//! # GIL and locking
//!
//! - Single-session calls (`validate`, `login`, ends by token or user) keep the GIL: they take
//!   one shard lock for well under a microsecond. Measured for `validate` on one thread:
//!   releasing the GIL around the engine call made a cached call 8-18 % slower (CPU time) and
//!   gained nothing at 100k sessions, so it stays held.
//! - Calls that walk the whole table or a batch (`validate_many`, `check_many`, `sessions`,
//!   `end_all_sessions`, `end_profile_sessions`, `end_sessions_from`, `remove_profile`,
//!   `revoke_oauth_client`, `sweep`, `stats`) release the GIL while the engine works, so other Python threads keep
//!   running. Batch tokens are copied out of the caller's objects first (with the GIL), so the
//!   engine never reads a Python object without it.
//! - Event callbacks never run inside the engine: the engine's listener only queues the event,
//!   and the queue is dispatched to the Python callbacks by the `Org` call that emitted it,
//!   after the engine returned. So the engine never waits for the GIL while it holds one of
//!   its locks, and a thread holding the GIL never waits for a lock whose holder waits for the
//!   GIL: no deadlock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, TryLockError};

use pyo3::exceptions::{PyOverflowError, PyTypeError};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDateTime, PyDict, PyList, PyString};
use pyo3::PyTraverseError;
use sessionward_core::{
    Engine, Event, Handle, LoginOutcome, LoginRequest, Refusal, Requirement, SessionFilter,
    SessionInfo,
};

use crate::batch;
use crate::clock::PyManualClock;
use crate::convert;
use crate::enums::{PyLoginMethod, PySecurityLevel, PySessionType};
use crate::errors;
use crate::ffi::untrack;
use crate::names::Names;
use crate::results::{
    PyAccessGrant, PyChallengeRequired, PyDenied, PyEvent, PyGrant, PyIssued, PySession,
    PySessionPage, PySweepStats, PyTableStats,
};
use crate::settings::{PyOrgSettings, PyProfile};

/// Python callbacks subscribed to the event stream, and the events waiting for them.
#[derive(Default)]
struct Subscribers {
    callbacks: Mutex<Vec<Py<PyAny>>>,
    pending: Mutex<Vec<Event>>,
    has_pending: AtomicBool,
    listening: AtomicBool,
}

/// The session authority of one org: thread-safe, fork-safe.
#[pyclass(frozen, module = "sessionward", name = "Org")]
pub(crate) struct PyOrg {
    /// Shared with `check_many`'s helper thread while it works on a batch of this org.
    engine: Arc<Engine>,
    subscribers: Arc<Subscribers>,
    names: Names,
}

/// A token argument: `TypeError` unless `str`; text that is not valid Unicode is passed on as
/// the empty string, which the core refuses as malformed.
fn token_arg<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<&'a str> {
    match obj.cast::<PyString>() {
        Ok(text) => Ok(text.to_str().unwrap_or("")),
        Err(_) => Err(PyTypeError::new_err(format!(
            "token: expected str, got {}",
            convert::type_name(obj)
        ))),
    }
}

/// The requirement of a validation: an operation name or a level, not both.
fn requirement<'a>(
    operation: Option<&'a Bound<'_, PyAny>>,
    level: Option<PySecurityLevel>,
) -> PyResult<Requirement<'a>> {
    match (operation, level) {
        (Some(_), Some(_)) => Err(PyTypeError::new_err(
            "validate: pass operation= or level=, not both",
        )),
        (Some(operation), None) => Ok(Requirement::Operation(convert::str_arg(
            "operation",
            operation,
        )?)),
        (None, Some(level)) => Ok(Requirement::Level(level.into())),
        (None, None) => Ok(Requirement::Any),
    }
}

/// `sessions(limit=...)`: an `int` (or `__index__` object) within `1..=MAX_PAGE_SIZE`, refused
/// with `InvalidInput` naming `limit` and the range (pyo3's own conversion raised a bare
/// `OverflowError` for ints beyond 64 bits), or `TypeError` for other types.
fn page_limit(obj: &Bound<'_, PyAny>) -> PyResult<usize> {
    let py = obj.py();
    let max = sessionward_core::MAX_PAGE_SIZE;
    match obj.extract::<i64>() {
        Ok(limit) => usize::try_from(limit)
            .ok()
            .filter(|limit| (1..=max).contains(limit))
            .ok_or_else(|| {
                errors::invalid_input(
                    py,
                    format!("limit: {limit} is outside the allowed range 1..={max}"),
                )
            }),
        Err(err) if err.is_instance_of::<PyOverflowError>(py) => {
            let shown = obj
                .str()
                .map(|text| convert::shorten(&text.to_string_lossy()))
                .unwrap_or_else(|_| "an int too large to show".to_owned());
            Err(errors::invalid_input(
                py,
                format!("limit: {shown} is outside the allowed range 1..={max}"),
            ))
        }
        Err(_) => Err(PyTypeError::new_err(format!(
            "limit: expected int, got {}",
            convert::type_name(obj)
        ))),
    }
}

/// `register_oauth_client(scopes=...)`: any iterable of `str` but a bare `str` (pyo3's own
/// conversion refused a str with "Can't extract `str` to `Vec`").
fn scope_list(obj: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    convert::str_list("scopes", "scope names", obj)
}

/// `authorize_access_token(scope=...)` as the core's space-separated scope string: `None`, a
/// `str` (already space-separated, RFC 6749 section 3.3) or any other iterable of `str`, whose
/// items are joined with spaces. `TypeError` naming `scope` (or the item) otherwise.
fn scope_arg(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<String>> {
    let Some(obj) = obj else {
        return Ok(None);
    };
    if obj.is_instance_of::<PyString>() {
        return Ok(Some(convert::str_arg("scope", obj)?.to_owned()));
    }
    // `str_list` refuses a bare str, which is handled above; here it reads the iterable.
    Ok(Some(
        convert::str_list("scope", "scope names", obj)?.join(" "),
    ))
}

/// A public session handle (`swh_` + 16 hex digits) given as `str`: `TypeError` for other
/// types, `InvalidInput` naming the (shortened, redacted) text otherwise.
fn handle_arg(obj: &Bound<'_, PyAny>) -> PyResult<Handle> {
    convert::str_arg("handle", obj)?
        .parse()
        .map_err(|err| errors::core_error(obj.py(), err))
}

static LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Logs a callback's exception on the `sessionward` logger (never raised into the engine).
fn log_callback_error(py: Python<'_>, callback: &Py<PyAny>, err: PyErr) {
    let logged = (|| -> PyResult<()> {
        let logger = LOGGER.get_or_try_init(py, || {
            py.import("logging")?
                .call_method1("getLogger", ("sessionward",))
                .map(Bound::unbind)
        })?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("exc_info", err.clone_ref(py).into_value(py))?;
        logger.bind(py).call_method(
            "error",
            ("sessionward: event callback %r raised", callback),
            Some(&kwargs),
        )?;
        Ok(())
    })();
    if let Err(log_err) = logged {
        log_err.write_unraisable(py, None);
    }
}

impl PyOrg {
    fn session(&self, py: Python<'_>, info: SessionInfo) -> PySession {
        self.names.session(py, &self.engine, info)
    }

    fn outcome<'py>(&self, py: Python<'py>, outcome: LoginOutcome) -> PyResult<Bound<'py, PyAny>> {
        Ok(match outcome {
            LoginOutcome::Issued(issued) => Bound::new(
                py,
                PyIssued {
                    token: issued.token.expose_secret().to_owned(),
                    session: Py::new(py, self.session(py, issued.session))?,
                },
            )?
            .into_any(),
            LoginOutcome::ChallengeRequired(challenge) => Bound::new(
                py,
                PyChallengeRequired {
                    challenge: challenge.secret.expose_secret().to_owned(),
                    expires_at: challenge.expires_at,
                },
            )?
            .into_any(),
            LoginOutcome::StepUpRequired { required, offered } => {
                errors::step_up_outcome(py, required, offered)?
            }
            LoginOutcome::Denied(reason) => Bound::new(
                py,
                PyDenied {
                    reason: reason.into(),
                },
            )?
            .into_any(),
        })
    }

    /// Runs the Python callbacks for events queued by the engine (cheap when there are none).
    #[inline]
    fn dispatch(&self, py: Python<'_>) {
        if self.subscribers.has_pending.load(Ordering::Acquire) {
            self.dispatch_pending(py);
        }
    }

    #[cold]
    fn dispatch_pending(&self, py: Python<'_>) {
        let subscribers = &self.subscribers;
        subscribers.has_pending.store(false, Ordering::Release);
        let events = std::mem::take(
            &mut *subscribers
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let callbacks: Vec<Py<PyAny>> = subscribers
            .callbacks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|callback| callback.clone_ref(py))
            .collect();
        for event in events {
            let event = match Bound::new(py, PyEvent { event }) {
                Ok(event) => event,
                Err(err) => {
                    err.write_unraisable(py, None);
                    continue;
                }
            };
            for callback in &callbacks {
                if let Err(err) = callback.call1(py, (&event,)) {
                    log_callback_error(py, callback, err);
                }
            }
        }
    }

    fn refusal<T>(&self, py: Python<'_>, result: Result<T, Refusal>) -> PyResult<T> {
        self.dispatch(py);
        result.map_err(|refusal| errors::refusal_error(py, refusal))
    }

    fn checked<T>(
        &self,
        py: Python<'_>,
        result: Result<T, sessionward_core::Error>,
    ) -> PyResult<T> {
        self.dispatch(py);
        result.map_err(|err| errors::core_error(py, err))
    }
}

#[pymethods]
impl PyOrg {
    #[new]
    #[pyo3(signature = (
        settings = None, *, clock = None, shards = None, path = None, expected_sessions = None
    ))]
    fn new(
        py: Python<'_>,
        settings: Option<&Bound<'_, PyOrgSettings>>,
        clock: Option<&Bound<'_, PyManualClock>>,
        shards: Option<usize>,
        path: Option<std::path::PathBuf>,
        expected_sessions: Option<usize>,
    ) -> PyResult<Self> {
        let mut builder = Engine::builder();
        if let Some(settings) = settings {
            builder = builder.settings(settings.get().inner.clone());
        }
        if let Some(clock) = clock {
            builder = builder.clock(Arc::new(clock.get().inner.clone()));
        }
        if let Some(shards) = shards {
            builder = builder.shards(shards);
        }
        if let Some(path) = path {
            builder = builder.path(path);
        }
        if let Some(sessions) = expected_sessions {
            builder = builder.expected_sessions(sessions);
        }
        // Opening a durable store reads a file, and reserved room is memory to fault in:
        // other threads may run meanwhile.
        let engine = py.detach(|| builder.build());
        Ok(Self {
            engine: Arc::new(engine.map_err(|err| errors::core_error(py, err))?),
            subscribers: Arc::default(),
            names: Names::default(),
        })
    }

    // ----- durability ----------------------------------------------------------------------

    /// Whether the org keeps its sessions in a durable store (`path=`).
    #[getter]
    fn is_durable(&self) -> bool {
        self.engine.is_durable()
    }

    /// Writes the last activity of every live session to the store now.
    fn flush_activity(&self, py: Python<'_>) -> PyResult<()> {
        let engine = &self.engine;
        let result = py.detach(|| engine.flush_activity());
        self.checked(py, result)
    }

    /// The first store failure of an operation that could not report it, as an exception
    /// instance (not raised), or `None`.
    fn store_error<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        self.engine.store_error().map(|err| {
            errors::core_error(py, err)
                .into_value(py)
                .into_bound(py)
                .into_any()
        })
    }

    // ----- policy and directory ------------------------------------------------------------

    /// The current org settings.
    #[getter]
    fn settings(&self) -> PyOrgSettings {
        PyOrgSettings {
            inner: (*self.engine.settings()).clone(),
        }
    }

    /// Replaces the org settings (existing sessions keep their snapshot).
    fn update_settings(&self, settings: &Bound<'_, PyOrgSettings>) {
        self.engine.update_settings(settings.get().inner.clone());
    }

    fn add_profile(&self, py: Python<'_>, profile: &Bound<'_, PyProfile>) -> PyResult<()> {
        let result = self.engine.add_profile(profile.get().inner.clone());
        self.names.invalidate(py);
        self.checked(py, result).map(drop)
    }

    fn update_profile(&self, py: Python<'_>, profile: &Bound<'_, PyProfile>) -> PyResult<()> {
        let result = self.engine.update_profile(profile.get().inner.clone());
        self.checked(py, result)
    }

    fn remove_profile(&self, py: Python<'_>, name: &Bound<'_, PyAny>) -> PyResult<usize> {
        let name = convert::str_arg("profile", name)?;
        let engine = &self.engine;
        let result = py.detach(|| engine.remove_profile(name));
        self.names.invalidate(py);
        self.checked(py, result)
    }

    fn profile(&self, py: Python<'_>, name: &Bound<'_, PyAny>) -> PyResult<PyProfile> {
        let result = self.engine.profile(convert::str_arg("profile", name)?);
        self.checked(py, result).map(|profile| PyProfile {
            inner: (*profile).clone(),
        })
    }

    fn profile_names(&self) -> Vec<String> {
        self.engine
            .profile_names()
            .iter()
            .map(|name| name.to_string())
            .collect()
    }

    fn add_user(
        &self,
        py: Python<'_>,
        user: &Bound<'_, PyAny>,
        profile: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let result = self.engine.add_user(
            convert::str_arg("user", user)?,
            convert::str_arg("profile", profile)?,
        );
        self.names.invalidate(py);
        self.checked(py, result).map(drop)
    }

    fn move_user(
        &self,
        py: Python<'_>,
        user: &Bound<'_, PyAny>,
        profile: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let result = self.engine.move_user(
            convert::str_arg("user", user)?,
            convert::str_arg("profile", profile)?,
        );
        self.checked(py, result)
    }

    fn remove_user(&self, py: Python<'_>, user: &Bound<'_, PyAny>) -> PyResult<usize> {
        let result = self.engine.remove_user(convert::str_arg("user", user)?);
        self.names.invalidate(py);
        self.checked(py, result)
    }

    fn user_profile(&self, py: Python<'_>, user: &Bound<'_, PyAny>) -> PyResult<String> {
        let result = self.engine.user_profile(convert::str_arg("user", user)?);
        self.checked(py, result).map(|name| name.to_string())
    }

    fn user_count(&self) -> usize {
        self.engine.user_count()
    }

    /// The engine's clock reading as a timezone-aware UTC `datetime`.
    fn now<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDateTime>> {
        convert::datetime(py, self.engine.now())
    }

    // ----- login ---------------------------------------------------------------------------

    #[pyo3(signature = (
        user,
        ip,
        method = PyLoginMethod::Password,
        session_type = PySessionType::Ui,
        device = None,
    ))]
    fn login<'py>(
        &self,
        py: Python<'py>,
        user: &Bound<'py, PyAny>,
        ip: &Bound<'py, PyAny>,
        method: PyLoginMethod,
        session_type: PySessionType,
        device: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let user = convert::str_arg("user", user)?;
        let ip = convert::ip_arg(ip)?;
        let mut request = LoginRequest::new(user, ip)
            .method(method.into())
            .session_type(session_type.into());
        if let Some(device) = device {
            request = request.device(convert::str_arg("device", device)?);
        }
        let result = self.engine.login(&request);
        let outcome = self.checked(py, result)?;
        self.outcome(py, outcome)
    }

    #[pyo3(signature = (challenge, remember_device = false))]
    fn complete_challenge<'py>(
        &self,
        py: Python<'py>,
        challenge: &Bound<'py, PyAny>,
        remember_device: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let secret = token_arg(challenge)?;
        let result = self.engine.complete_challenge(secret, remember_device);
        let outcome = self.checked(py, result)?;
        self.outcome(py, outcome)
    }

    // ----- validation ----------------------------------------------------------------------

    #[pyo3(signature = (token, ip, operation = None, level = None))]
    fn validate(
        &self,
        py: Python<'_>,
        token: &Bound<'_, PyAny>,
        ip: &Bound<'_, PyAny>,
        operation: Option<&Bound<'_, PyAny>>,
        level: Option<PySecurityLevel>,
    ) -> PyResult<PySession> {
        let token = token_arg(token)?;
        let ip = convert::ip_arg(ip)?;
        let requirement = requirement(operation, level)?;
        let result = self.engine.validate(token, ip, requirement);
        self.refusal(py, result).map(|info| self.session(py, info))
    }

    #[pyo3(signature = (tokens, ips, operation = None, level = None))]
    fn validate_many<'py>(
        &self,
        py: Python<'py>,
        tokens: &Bound<'py, PyAny>,
        ips: &Bound<'py, PyAny>,
        operation: Option<&Bound<'py, PyAny>>,
        level: Option<PySecurityLevel>,
    ) -> PyResult<Bound<'py, PyList>> {
        // A snapshot (see `batch_tokens`): taken before anything else, so that neither the
        // address conversions below nor other threads (which run between chunks) can change
        // the batch under the call.
        let tokens = batch::batch_tokens(tokens)?;
        let count = tokens.len();
        let addresses = batch::batch_addresses(py, ips, count)?;
        let requirement = requirement(operation, level)?;
        let engine = &*self.engine;
        let mut output = Vec::with_capacity(count);
        // Chunks of tokens are copied out of the snapshot (with the GIL), validated without
        // the GIL (the caller's list may change meanwhile: not the snapshot), named from the org's name
        // cache under one lock, and turned into Python objects (with the GIL). Small chunks
        // keep the buffers in cache and allocation-free after the first.
        const CHUNK: usize = 1024;
        let mut batch = batch::TokenBuffer::with_capacity(CHUNK);
        let mut results = Vec::with_capacity(CHUNK);
        let mut sessions = Vec::with_capacity(CHUNK);
        for first in (0..count).step_by(CHUNK) {
            let last = count.min(first + CHUNK);
            batch.fill(&tokens, first..last)?;
            let chunk_ips = addresses.for_range(first..last);
            py.detach(|| {
                engine.validate_many(&batch.slices(), chunk_ips, requirement, &mut results)
            });
            {
                let mut names = self.names.lock(py);
                sessions.extend(
                    results
                        .drain(..)
                        .map(|result| result.map(|info| names.session(py, engine, info))),
                );
            }
            for result in sessions.drain(..) {
                output.push(match result {
                    Ok(session) => {
                        let session = Bound::new(py, session)?;
                        untrack(&session);
                        session.into_any()
                    }
                    Err(refusal) => errors::refusal_instance(py, refusal)?,
                });
            }
        }
        self.dispatch(py);
        PyList::new(py, output)
    }

    #[pyo3(signature = (tokens, ips, operation = None, level = None))]
    fn check_many<'py>(
        &self,
        py: Python<'py>,
        tokens: &Bound<'py, PyAny>,
        ips: &Bound<'py, PyAny>,
        operation: Option<&Bound<'py, PyAny>>,
        level: Option<PySecurityLevel>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let tokens = batch::batch_tokens(tokens)?; // a snapshot, as in `validate_many`
        let count = tokens.len();
        let addresses = batch::batch_addresses(py, ips, count)?;
        // Checked as `validate_many` checks it, then owned by the job.
        let (operation, level) = match requirement(operation, level)? {
            Requirement::Operation(operation) => (Some(operation.to_owned()), None),
            Requirement::Level(level) => (None, Some(level)),
            _ => (None, None),
        };
        // The tokens are copied out (with the GIL), chunk by chunk; the caller's objects are
        // not touched again, and the validation runs without the GIL, on two threads when the
        // batch is long (see `batch`).
        let job =
            batch::CheckJob::new(Arc::clone(&self.engine), count, addresses, operation, level);
        let codes = job.run(&tokens)?;
        self.dispatch(py);
        Ok(PyBytes::new(py, &codes))
    }

    fn step_up(
        &self,
        py: Python<'_>,
        token: &Bound<'_, PyAny>,
        ip: &Bound<'_, PyAny>,
        method: PyLoginMethod,
    ) -> PyResult<PySession> {
        let token = token_arg(token)?;
        let ip = convert::ip_arg(ip)?;
        let result = self.engine.step_up(token, ip, method.into());
        self.refusal(py, result).map(|info| self.session(py, info))
    }

    // ----- ending sessions -----------------------------------------------------------------

    fn logout(&self, py: Python<'_>, token: &Bound<'_, PyAny>) -> PyResult<()> {
        let result = self.engine.logout(token_arg(token)?);
        self.refusal(py, result)
    }

    fn browser_closed(&self, py: Python<'_>, token: &Bound<'_, PyAny>) -> PyResult<bool> {
        let result = self.engine.browser_closed(token_arg(token)?);
        self.refusal(py, result)
    }

    fn end_session(&self, py: Python<'_>, handle: &Bound<'_, PyAny>) -> PyResult<bool> {
        let ended = self.engine.end_session(handle_arg(handle)?);
        self.dispatch(py);
        Ok(ended)
    }

    /// The live session with this handle, without refreshing it, or `None`. (Named apart from
    /// the helper `session` in Rust; `session` in Python.)
    #[pyo3(name = "session")]
    fn session_by_handle(
        &self,
        py: Python<'_>,
        handle: &Bound<'_, PyAny>,
    ) -> PyResult<Option<PySession>> {
        let info = self.engine.session(handle_arg(handle)?);
        Ok(info.map(|info| self.session(py, info)))
    }

    fn reset_password(&self, py: Python<'_>, user: &Bound<'_, PyAny>) -> PyResult<usize> {
        let result = self.engine.reset_password(convert::str_arg("user", user)?);
        self.checked(py, result)
    }

    fn end_user_sessions(&self, py: Python<'_>, user: &Bound<'_, PyAny>) -> PyResult<usize> {
        let result = self
            .engine
            .end_user_sessions(convert::str_arg("user", user)?);
        self.checked(py, result)
    }

    fn end_profile_sessions(&self, py: Python<'_>, profile: &Bound<'_, PyAny>) -> PyResult<usize> {
        let profile = convert::str_arg("profile", profile)?;
        let engine = &self.engine;
        let result = py.detach(|| engine.end_profile_sessions(profile));
        self.checked(py, result)
    }

    fn end_all_sessions(&self, py: Python<'_>) -> usize {
        let engine = &self.engine;
        let ended = py.detach(|| engine.end_all_sessions());
        self.dispatch(py);
        ended
    }

    fn end_sessions_from(&self, py: Python<'_>, cidr: &Bound<'_, PyAny>) -> PyResult<usize> {
        let range = convert::source_arg(cidr)?;
        let engine = &self.engine;
        let ended = py.detach(|| engine.end_sessions_from(range));
        self.dispatch(py);
        Ok(ended)
    }

    // ----- listing, sweeping, events -------------------------------------------------------

    #[pyo3(signature = (
        *,
        user = None,
        ip = None,
        profile = None,
        session_type = None,
        level = None,
        after = None,
        limit = 100,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn sessions(
        &self,
        py: Python<'_>,
        user: Option<&Bound<'_, PyAny>>,
        ip: Option<&Bound<'_, PyAny>>,
        profile: Option<&Bound<'_, PyAny>>,
        session_type: Option<PySessionType>,
        level: Option<PySecurityLevel>,
        after: Option<&Bound<'_, PyAny>>,
        #[pyo3(from_py_with = page_limit)] limit: usize,
    ) -> PyResult<PySessionPage> {
        let filter = SessionFilter {
            user: user
                .map(|user| convert::str_arg("user", user).map(str::to_owned))
                .transpose()?,
            source: ip.map(convert::source_arg).transpose()?,
            profile: profile
                .map(|profile| convert::str_arg("profile", profile).map(str::to_owned))
                .transpose()?,
            session_type: session_type.map(Into::into),
            level: level.map(Into::into),
        };
        let after: Option<Handle> = after
            .map(|after| {
                convert::str_arg("after", after)?
                    .parse()
                    .map_err(|err| errors::core_error(py, err))
            })
            .transpose()?;
        let engine = &self.engine;
        let result = py.detach(|| engine.sessions(&filter, after, limit));
        let page = self.checked(py, result)?;
        let rows = page
            .rows
            .into_iter()
            .map(|row| {
                let session = Bound::new(
                    py,
                    PySession {
                        info: row.info,
                        user: PyString::new(py, &row.user_id).unbind(),
                        profile: PyString::new(py, &row.profile_name).unbind(),
                    },
                )?;
                untrack(&session);
                Ok(session.unbind())
            })
            .collect::<PyResult<Vec<_>>>()?;
        Ok(PySessionPage {
            rows,
            total: page.total,
            next: page.next,
        })
    }

    /// Sweeps `shards` shards (round robin), or every shard when `None`.
    #[pyo3(signature = (shards = None))]
    fn sweep(&self, py: Python<'_>, shards: Option<usize>) -> PySweepStats {
        let engine = &self.engine;
        let stats = py.detach(|| match shards {
            Some(shards) => engine.sweep(shards),
            None => engine.sweep_all(),
        });
        self.dispatch(py);
        stats.into()
    }

    fn stats(&self, py: Python<'_>) -> PyTableStats {
        let engine = &self.engine;
        let stats = py.detach(|| engine.stats());
        PyTableStats::new(stats, self.engine.dropped_events())
    }

    /// Drains the buffered audit events (oldest first).
    fn events(&self, py: Python<'_>) -> PyResult<Vec<Py<PyEvent>>> {
        self.dispatch(py);
        self.engine
            .drain_events()
            .into_iter()
            .map(|event| {
                let event = Bound::new(py, PyEvent { event })?;
                untrack(&event);
                Ok(event.unbind())
            })
            .collect()
    }

    /// Calls `callback(event)` for every event from now on.
    fn subscribe(&self, callback: &Bound<'_, PyAny>) -> PyResult<()> {
        if !callback.is_callable() {
            return Err(PyTypeError::new_err(format!(
                "callback: expected a callable, got {}",
                convert::type_name(callback)
            )));
        }
        self.subscribers
            .callbacks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(callback.clone().unbind());
        if !self.subscribers.listening.swap(true, Ordering::AcqRel) {
            let subscribers = Arc::clone(&self.subscribers);
            self.engine.subscribe(Arc::new(move |event: &Event| {
                subscribers
                    .pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(event.clone());
                subscribers.has_pending.store(true, Ordering::Release);
            }));
        }
        Ok(())
    }

    /// Shows the subscribed callbacks to the cycle collector: an app that subscribes its own
    /// bound method (`self.org.subscribe(self.on_event)`) makes a cycle App -> Org -> method
    /// -> App, which would otherwise never be freed (and with it the whole session table).
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        // The collector must not block. The lock is only ever held briefly by a thread that
        // is attached to the interpreter, so it is free here in practice; if it is not,
        // visiting nothing this time only keeps the objects alive until a later collection
        // (a reference the collector does not see is treated as external).
        let callbacks = match self.subscribers.callbacks.try_lock() {
            Ok(callbacks) => callbacks,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return Ok(()),
        };
        for callback in callbacks.iter() {
            visit.call(callback)?;
        }
        Ok(())
    }

    /// Breaks a cycle the collector found: forgets the subscribed callbacks.
    fn __clear__(&self) {
        let callbacks = std::mem::take(
            &mut *self
                .subscribers
                .callbacks
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        // Dropped after the lock is released: releasing a callback can run Python code
        // (`__del__`), which could call back into this Org.
        drop(callbacks);
    }

    /// Removes a callback added with `subscribe`; whether it was subscribed.
    fn unsubscribe(&self, callback: &Bound<'_, PyAny>) -> bool {
        let mut callbacks = self
            .subscribers
            .callbacks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let before = callbacks.len();
        callbacks.retain(|known| !known.bind(callback.py()).is(callback));
        callbacks.len() != before
    }

    // ----- the org as an OAuth 2.0 token endpoint ---------------------------------------------

    #[pyo3(signature = (client_id, run_as, scopes = Vec::new()))]
    fn register_oauth_client(
        &self,
        py: Python<'_>,
        client_id: &Bound<'_, PyAny>,
        run_as: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = scope_list)] scopes: Vec<String>,
    ) -> PyResult<String> {
        let client_id = convert::str_arg("client_id", client_id)?;
        let run_as = convert::str_arg("run_as", run_as)?;
        let oauth = self.engine.oauth_clients();
        // With a store, registering waits for the write: other threads may run meanwhile.
        let secret = py.detach(|| oauth.register(client_id, run_as, scopes));
        self.checked(py, secret)
            .map(|secret| secret.expose_secret().to_owned())
    }

    fn remove_oauth_client(&self, py: Python<'_>, client_id: &Bound<'_, PyAny>) -> PyResult<bool> {
        let client_id = convert::str_arg("client_id", client_id)?;
        let oauth = self.engine.oauth_clients();
        let removed = py.detach(|| oauth.remove(client_id));
        self.checked(py, removed)
    }

    /// Ends every live access token granted to one client; how many ended.
    fn revoke_oauth_client(&self, py: Python<'_>, client_id: &Bound<'_, PyAny>) -> PyResult<usize> {
        let client_id = convert::str_arg("client_id", client_id)?;
        let engine = &*self.engine;
        let oauth = engine.oauth_clients();
        // Walks every remembered grant and ends sessions: other threads may run meanwhile.
        let ended = py.detach(|| oauth.revoke(engine, client_id));
        self.dispatch(py);
        Ok(ended)
    }

    /// Checks an access token presented to a resource server, with the scopes it must carry.
    #[pyo3(signature = (token, ip, scope = None))]
    fn authorize_access_token(
        &self,
        py: Python<'_>,
        token: &Bound<'_, PyAny>,
        ip: &Bound<'_, PyAny>,
        scope: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyAccessGrant> {
        let token = token_arg(token)?;
        let ip = convert::ip_arg(ip)?;
        let scope = scope_arg(scope)?;
        let result =
            self.engine
                .oauth_clients()
                .authorize(&self.engine, token, ip, scope.as_deref());
        self.dispatch(py);
        let authorized = result.map_err(|err| errors::authorize_error(py, err))?;
        Ok(PyAccessGrant {
            session: Py::new(py, self.session(py, authorized.session))?,
            client_id: authorized.client_id,
            scopes: authorized.scopes,
        })
    }

    fn oauth_clients(&self) -> Vec<(String, String, Vec<String>)> {
        self.engine
            .oauth_clients()
            .list()
            .into_iter()
            .map(|client| {
                (
                    client.client_id,
                    client.run_as,
                    client.scopes.into_iter().collect(),
                )
            })
            .collect()
    }

    #[pyo3(signature = (client_id, client_secret, scope, ip))]
    fn grant_client_credentials(
        &self,
        py: Python<'_>,
        client_id: &Bound<'_, PyAny>,
        client_secret: &Bound<'_, PyAny>,
        scope: Option<&Bound<'_, PyAny>>,
        ip: &Bound<'_, PyAny>,
    ) -> PyResult<PyGrant> {
        let client_id = convert::str_arg("client_id", client_id)?;
        let client_secret = token_arg(client_secret)?;
        let scope = scope
            .map(|scope| convert::str_arg("scope", scope))
            .transpose()?;
        let ip = convert::ip_arg(ip)?;
        let engine = &*self.engine;
        // With a store, a grant waits for two writes (the session, then its scopes): other
        // threads may run meanwhile.
        let grant = py.detach(|| {
            engine
                .oauth_clients()
                .grant(engine, client_id, client_secret, scope, ip)
        });
        self.dispatch(py);
        let grant = grant.map_err(|err| errors::grant_error(py, err))?;
        Ok(PyGrant {
            access_token: grant.access_token.expose_secret().to_owned(),
            expires_in: grant.expires_in,
            scopes: grant.scopes,
            session: Py::new(py, self.session(py, grant.session))?,
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "Org(users={}, profiles={})",
            self.engine.user_count(),
            self.engine.profile_names().len()
        )
    }
}
