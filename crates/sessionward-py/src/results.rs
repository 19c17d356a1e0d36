//! What the engine hands back, as frozen Python values: `Session`, the login outcomes, pages,
//! events and statistics. None of them holds a token except `Issued.token`, `Grant.access_token`
//! and `ChallengeRequired.challenge`, and no `repr` shows those.

use std::net::IpAddr;

use pyo3::basic::CompareOp;
use pyo3::prelude::*;
use pyo3::types::{PyDateTime, PyDelta, PyList, PyString};
use sessionward_core::{Event, EventKind, Handle, SessionInfo, SweepStats, TableStats};

use crate::convert;
use crate::enums::{PyDenyReason, PyLoginMethod, PySecurityLevel, PySessionType};

/// Marker of pyclasses whose fields hold only Rust data and `str` objects: never an object that
/// could refer back to them.
pub(crate) trait NoPyReferences {}

impl NoPyReferences for PySession {}
impl NoPyReferences for PyEvent {}

/// Public facts about a session: never the token.
///
/// Made once per result, so it is kept small: the engine's `SessionInfo` (plain data) and the
/// user id and profile name as shared `str` objects (from the org's name cache, `names`).
/// Everything else (handle, datetimes, address, enums) is converted when read.
#[pyclass(frozen, module = "sessionward", name = "Session")]
pub(crate) struct PySession {
    pub(crate) info: SessionInfo,
    pub(crate) user: Py<PyString>,
    pub(crate) profile: Py<PyString>,
}

#[pymethods]
impl PySession {
    /// Public handle, `swh_` + 16 hex digits: for admins and events, not a credential.
    #[getter]
    fn handle(&self) -> String {
        self.info.handle.to_string()
    }
    #[getter]
    fn user(&self, py: Python<'_>) -> Py<PyString> {
        self.user.clone_ref(py)
    }
    #[getter]
    fn profile(&self, py: Python<'_>) -> Py<PyString> {
        self.profile.clone_ref(py)
    }
    #[getter]
    fn session_type(&self) -> PySessionType {
        self.info.session_type.into()
    }
    #[getter]
    fn login_method(&self) -> PyLoginMethod {
        self.info.login_method.into()
    }
    #[getter]
    fn level(&self) -> PySecurityLevel {
        self.info.level.into()
    }
    #[getter]
    fn source_ip<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        convert::ip_object(py, self.info.source_ip)
    }
    #[getter]
    fn created<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDateTime>> {
        convert::datetime(py, self.info.created)
    }
    #[getter]
    fn last_activity<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDateTime>> {
        convert::datetime(py, self.info.last_activity)
    }
    #[getter]
    fn valid_until<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDateTime>> {
        convert::datetime(py, self.info.valid_until)
    }
    #[getter]
    fn absolute_deadline<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDateTime>> {
        convert::datetime(py, self.info.absolute_deadline)
    }
    #[getter]
    fn idle_timeout<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDelta>> {
        convert::timedelta(
            py,
            std::time::Duration::from_secs(u64::from(self.info.idle_timeout_secs)),
        )
    }
    #[getter]
    fn ip_locked(&self) -> bool {
        self.info.ip_locked
    }
    #[getter]
    fn browser_bound(&self) -> bool {
        self.info.browser_bound
    }

    /// Equal when every public fact is: the same session seen at the same moment. Unhashable
    /// (no `__hash__`), as before.
    fn __richcmp__(
        &self,
        other: &Bound<'_, PyAny>,
        op: CompareOp,
        py: Python<'_>,
    ) -> PyResult<Py<PyAny>> {
        let Ok(other) = other.cast::<PySession>() else {
            return Ok(py.NotImplemented());
        };
        let other = other.get();
        let equal = || -> PyResult<bool> {
            Ok(self.info == other.info
                && self.user.bind(py).as_any().eq(other.user.bind(py))?
                && self.profile.bind(py).as_any().eq(other.profile.bind(py))?)
        };
        match op {
            CompareOp::Eq => Ok(equal()?.into_pyobject(py)?.to_owned().into_any().unbind()),
            CompareOp::Ne => Ok((!equal()?)
                .into_pyobject(py)?
                .to_owned()
                .into_any()
                .unbind()),
            _ => Ok(py.NotImplemented()),
        }
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let info = &self.info;
        Ok(format!(
            "Session(handle='{}', user={}, profile={}, session_type=SessionType.{}, \
             level=SecurityLevel.{}, source_ip='{}', valid_until='{}')",
            info.handle,
            convert::quoted(&self.user.bind(py).to_cow()?),
            convert::quoted(&self.profile.bind(py).to_cow()?),
            info.session_type,
            info.level,
            info.source_ip,
            convert::iso(info.valid_until),
        ))
    }
}

/// A session was issued: `token` (send it to the client; shown only here) and `session`.
#[pyclass(frozen, module = "sessionward", name = "Issued")]
pub(crate) struct PyIssued {
    pub(crate) token: String,
    pub(crate) session: Py<PySession>,
}

#[pymethods]
impl PyIssued {
    #[classattr]
    fn __match_args__() -> (&'static str, &'static str) {
        ("token", "session")
    }
    /// The bearer token. Never log it.
    #[getter]
    fn token(&self) -> &str {
        &self.token
    }
    #[getter]
    fn session(&self, py: Python<'_>) -> Py<PySession> {
        self.session.clone_ref(py)
    }
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Issued(token='swd_[REDACTED]', session={})",
            self.session.get().__repr__(py)?
        ))
    }
}

/// An access token granted to an OAuth client (client-credentials grant).
#[pyclass(frozen, module = "sessionward", name = "Grant")]
pub(crate) struct PyGrant {
    pub(crate) access_token: String,
    pub(crate) expires_in: u64,
    pub(crate) scopes: Vec<String>,
    pub(crate) session: Py<PySession>,
}

#[pymethods]
impl PyGrant {
    /// The access token (an OAUTH2 session token). Never log it.
    #[getter]
    fn access_token(&self) -> &str {
        &self.access_token
    }
    /// Seconds until the token expires if unused.
    #[getter]
    fn expires_in(&self) -> u64 {
        self.expires_in
    }
    /// The scopes granted, sorted.
    #[getter]
    fn scopes(&self) -> Vec<String> {
        self.scopes.clone()
    }
    /// The session behind the token.
    #[getter]
    fn session(&self, py: Python<'_>) -> Py<PySession> {
        self.session.clone_ref(py)
    }
    fn __repr__(&self) -> String {
        // Scopes are the caller's text: quoted like every echo (tokens redacted).
        let scopes: Vec<String> = self.scopes.iter().map(|s| convert::quoted(s)).collect();
        format!(
            "Grant(access_token='swd_[REDACTED]', expires_in={}, scopes=[{}])",
            self.expires_in,
            scopes.join(", ")
        )
    }
}

/// An access token that passed `Org.authorize_access_token`: the session behind it, the client
/// it was granted to and every scope it carries. Holds no token.
#[pyclass(frozen, module = "sessionward", name = "AccessGrant")]
pub(crate) struct PyAccessGrant {
    pub(crate) session: Py<PySession>,
    pub(crate) client_id: String,
    pub(crate) scopes: Vec<String>,
}

#[pymethods]
impl PyAccessGrant {
    /// The session behind the token (last activity refreshed by the check).
    #[getter]
    fn session(&self, py: Python<'_>) -> Py<PySession> {
        self.session.clone_ref(py)
    }
    /// The client the token was granted to.
    #[getter]
    fn client_id(&self) -> &str {
        &self.client_id
    }
    /// Every scope the token was granted, sorted.
    #[getter]
    fn scopes(&self) -> Vec<String> {
        self.scopes.clone()
    }
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        // The client id and scopes are the caller's text: quoted like every echo (tokens
        // redacted), as in `Grant`.
        let scopes: Vec<String> = self.scopes.iter().map(|s| convert::quoted(s)).collect();
        Ok(format!(
            "AccessGrant(client_id={}, scopes=[{}], session={})",
            convert::quoted(&self.client_id),
            scopes.join(", "),
            self.session.get().__repr__(py)?
        ))
    }
}

/// The login must be verified out of band first; then call `Org.complete_challenge(challenge)`.
#[pyclass(frozen, module = "sessionward", name = "ChallengeRequired")]
pub(crate) struct PyChallengeRequired {
    pub(crate) challenge: String,
    pub(crate) expires_at: u64,
}

#[pymethods]
impl PyChallengeRequired {
    #[classattr]
    fn __match_args__() -> (&'static str, &'static str) {
        ("challenge", "expires_at")
    }
    /// One-time secret naming the pending login (token-shaped; never log it).
    #[getter]
    fn challenge(&self) -> &str {
        &self.challenge
    }
    #[getter]
    fn expires_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDateTime>> {
        convert::datetime(py, self.expires_at)
    }
    fn __repr__(&self) -> String {
        format!(
            "ChallengeRequired(challenge='swd_[REDACTED]', expires_at='{}')",
            convert::iso(self.expires_at)
        )
    }
}

/// No session, for `reason`.
#[pyclass(frozen, eq, module = "sessionward", name = "Denied")]
#[derive(PartialEq)]
pub(crate) struct PyDenied {
    pub(crate) reason: PyDenyReason,
}

#[pymethods]
impl PyDenied {
    #[new]
    fn new(reason: PyDenyReason) -> Self {
        Self { reason }
    }
    #[classattr]
    fn __match_args__() -> (&'static str,) {
        ("reason",)
    }
    #[getter]
    fn reason(&self) -> PyDenyReason {
        self.reason
    }
    fn __repr__(&self) -> String {
        format!("Denied(reason=DenyReason.{})", self.reason.name_str())
    }
}

impl PyDenyReason {
    fn name_str(self) -> &'static str {
        match self {
            Self::UnknownUser => "UNKNOWN_USER",
            Self::IpNotAllowed => "IP_NOT_ALLOWED",
            Self::SessionCap => "SESSION_CAP",
            Self::ChallengeInvalid => "CHALLENGE_INVALID",
            Self::InvalidClient => "INVALID_CLIENT",
        }
    }
}

/// One page of the admin session list, ordered by handle.
#[pyclass(frozen, module = "sessionward", name = "SessionPage")]
pub(crate) struct PySessionPage {
    pub(crate) rows: Vec<Py<PySession>>,
    pub(crate) total: usize,
    pub(crate) next: Option<Handle>,
}

#[pymethods]
impl PySessionPage {
    #[classattr]
    fn __match_args__() -> (&'static str, &'static str, &'static str) {
        ("rows", "total", "next")
    }
    #[getter]
    fn rows<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.rows.iter().map(|row| row.clone_ref(py)))
    }
    #[getter]
    fn total(&self) -> usize {
        self.total
    }
    /// Pass as `after=` for the next page; `None` on the last page.
    #[getter]
    fn next(&self) -> Option<String> {
        self.next.map(|handle| handle.to_string())
    }
    fn __len__(&self) -> usize {
        self.rows.len()
    }
    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.rows(py)?.try_iter()?.into_any())
    }
    fn __repr__(&self) -> String {
        format!(
            "SessionPage(rows=<{} sessions>, total={}, next={})",
            self.rows.len(),
            self.total,
            self.next
                .map_or("None".to_owned(), |handle| format!("'{handle}'"))
        )
    }
}

/// One audit event. Never carries a token.
#[pyclass(frozen, module = "sessionward", name = "Event")]
pub(crate) struct PyEvent {
    pub(crate) event: Event,
}

impl PyEvent {
    fn reason_code(&self) -> Option<&'static str> {
        match self.event.kind {
            EventKind::Ended(reason) => Some(reason.as_str()),
            EventKind::Expired(kind) => Some(kind.as_str()),
            EventKind::LoginDenied(reason) => Some(reason.as_str()),
            _ => None,
        }
    }
}

#[pymethods]
impl PyEvent {
    /// `created`, `ended`, `expired`, `login_denied`, `challenge_issued`, `ip_mismatch`,
    /// `ip_not_allowed`, `step_up_required` or `stepped_up`.
    #[getter]
    fn kind(&self) -> &'static str {
        self.event.kind.code()
    }
    #[getter]
    fn at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDateTime>> {
        convert::datetime(py, self.event.at)
    }
    #[getter]
    fn handle(&self) -> Option<String> {
        self.event.handle.map(|handle| handle.to_string())
    }
    #[getter]
    fn user(&self) -> Option<&str> {
        self.event.user.as_deref()
    }
    #[getter]
    fn ip<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.event
            .ip
            .map(|ip: IpAddr| convert::ip_object(py, ip))
            .transpose()
    }
    /// The end reason, expiry kind or deny reason code, for `ended`, `expired` and
    /// `login_denied` events.
    #[getter]
    fn reason(&self) -> Option<&'static str> {
        self.reason_code()
    }
    /// The session's level, for `created` and `stepped_up` events.
    #[getter]
    fn level(&self) -> Option<PySecurityLevel> {
        match self.event.kind {
            EventKind::Created { level, .. } | EventKind::SteppedUp(level) => Some(level.into()),
            _ => None,
        }
    }
    /// The session's type, for `created` events.
    #[getter]
    fn session_type(&self) -> Option<PySessionType> {
        match self.event.kind {
            EventKind::Created { session_type, .. } => Some(session_type.into()),
            _ => None,
        }
    }
    fn __repr__(&self) -> String {
        let event = &self.event;
        format!(
            "Event(kind='{}', at='{}', handle={}, user={}, ip={}, reason={})",
            event.kind.code(),
            convert::iso(event.at),
            event
                .handle
                .map_or("None".to_owned(), |handle| format!("'{handle}'")),
            event
                .user
                .as_deref()
                .map_or("None".to_owned(), convert::quoted),
            event.ip.map_or("None".to_owned(), |ip| format!("'{ip}'")),
            self.reason_code()
                .map_or("None".to_owned(), |reason| format!("'{reason}'")),
        )
    }
}

/// What one sweep did.
#[pyclass(frozen, get_all, eq, module = "sessionward", name = "SweepStats")]
#[derive(PartialEq)]
pub(crate) struct PySweepStats {
    /// Shards visited.
    shards: usize,
    /// Records dropped (tombstones past retention).
    removed: usize,
    /// Sessions newly found expired.
    expired: usize,
}

impl From<SweepStats> for PySweepStats {
    fn from(stats: SweepStats) -> Self {
        Self {
            shards: stats.shards,
            removed: stats.removed,
            expired: stats.expired,
        }
    }
}

#[pymethods]
impl PySweepStats {
    fn __repr__(&self) -> String {
        format!(
            "SweepStats(shards={}, removed={}, expired={})",
            self.shards, self.removed, self.expired
        )
    }
}

/// Counts of what the session table holds.
#[pyclass(frozen, get_all, eq, module = "sessionward", name = "TableStats")]
#[derive(PartialEq)]
pub(crate) struct PyTableStats {
    /// Sessions that would validate now (ignoring IP and level checks).
    live: usize,
    /// Records held, including tombstones of ended and expired sessions.
    records: usize,
    /// Slots allocated across all shards.
    capacity: usize,
    /// Records at their home slot (a validation finds them in the first line it reads).
    at_home: usize,
    /// Events dropped from the `events()` buffer because nobody drained it.
    dropped_events: u64,
}

impl PyTableStats {
    pub(crate) fn new(stats: TableStats, dropped_events: u64) -> Self {
        Self {
            live: stats.live,
            records: stats.records,
            capacity: stats.capacity,
            at_home: stats.at_home,
            dropped_events,
        }
    }
}

#[pymethods]
impl PyTableStats {
    fn __repr__(&self) -> String {
        format!(
            "TableStats(live={}, records={}, capacity={}, at_home={}, dropped_events={})",
            self.live, self.records, self.capacity, self.at_home, self.dropped_events
        )
    }
}
