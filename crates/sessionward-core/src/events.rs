//! The audit event stream: what happened to sessions and logins, never a token.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::{DenyReason, EndReason, ExpiryKind, Handle, SecurityLevel, SessionType};

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventKind {
    /// A session was issued.
    Created {
        /// Its type.
        session_type: SessionType,
        /// Its level.
        level: SecurityLevel,
    },
    /// A session was ended.
    Ended(EndReason),
    /// A session was found expired (by a validation or a sweep); reported once per session.
    Expired(ExpiryKind),
    /// A login was denied.
    LoginDenied(DenyReason),
    /// A login must complete a verification challenge.
    ChallengeIssued,
    /// A validation came from another address than a locked session's origin.
    IpMismatch,
    /// A validation came from outside the profile's login ranges.
    IpNotAllowed,
    /// A validation needed a higher level.
    StepUpRequired,
    /// A session's level was raised.
    SteppedUp(SecurityLevel),
}

impl EventKind {
    /// Snake-case code of the event kind.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Created { .. } => "created",
            Self::Ended(_) => "ended",
            Self::Expired(_) => "expired",
            Self::LoginDenied(_) => "login_denied",
            Self::ChallengeIssued => "challenge_issued",
            Self::IpMismatch => "ip_mismatch",
            Self::IpNotAllowed => "ip_not_allowed",
            Self::StepUpRequired => "step_up_required",
            Self::SteppedUp(_) => "stepped_up",
        }
    }
}

/// One audit event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Seconds since the Unix epoch.
    pub at: u64,
    /// What happened.
    pub kind: EventKind,
    /// The session concerned, if any.
    pub handle: Option<Handle>,
    /// The user concerned, if known.
    pub user: Option<Arc<str>>,
    /// The client address concerned, if any.
    pub ip: Option<IpAddr>,
}

/// A callback receiving every event as it happens. Called without engine locks held; keep it
/// quick.
pub type EventListener = Arc<dyn Fn(&Event) + Send + Sync>;

/// A bounded buffer of recent events plus listeners.
pub(crate) struct EventLog {
    buffer: Mutex<VecDeque<Event>>,
    capacity: usize,
    dropped: std::sync::atomic::AtomicU64,
    listeners: parking_lot::RwLock<Vec<EventListener>>,
    /// Whether any listener subscribed: lets [`emit`](Self::emit) skip the listeners' lock
    /// (a shared cache line every emitting thread would otherwise write) when there are none.
    has_listeners: std::sync::atomic::AtomicBool,
}

impl EventLog {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            buffer: Mutex::new(VecDeque::new()),
            capacity,
            dropped: std::sync::atomic::AtomicU64::new(0),
            listeners: parking_lot::RwLock::new(Vec::new()),
            has_listeners: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether an event would go anywhere (a listener or the buffer), so callers can skip
    /// building it.
    #[inline]
    pub(crate) fn wanted(&self) -> bool {
        self.capacity != 0
            || self
                .has_listeners
                .load(std::sync::atomic::Ordering::Acquire)
    }

    pub(crate) fn emit(&self, event: Event) {
        if self
            .has_listeners
            .load(std::sync::atomic::Ordering::Acquire)
        {
            for listener in self.listeners.read().iter() {
                listener(&event);
            }
        }
        if self.capacity == 0 {
            return;
        }
        let mut buffer = self.buffer.lock();
        if buffer.len() == self.capacity {
            buffer.pop_front();
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        buffer.push_back(event);
    }

    pub(crate) fn drain(&self) -> Vec<Event> {
        self.buffer.lock().drain(..).collect()
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn subscribe(&self, listener: EventListener) {
        self.listeners.write().push(listener);
        self.has_listeners
            .store(true, std::sync::atomic::Ordering::Release);
    }
}
