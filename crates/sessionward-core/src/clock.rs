//! Time source of the engine.
//!
//! Every deadline in sessionward is a whole number of seconds read from a [`Clock`]. The clock is
//! injected so that tests, property tests and the harness drive simulated time with a
//! [`ManualClock`] and never sleep.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A source of the current time in whole seconds since the Unix epoch.
///
/// Implementations must be cheap: the engine reads the clock once per validation.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Seconds since 1970-01-01T00:00:00Z.
    fn now(&self) -> u64;
}

/// The operating system's wall clock, in whole seconds.
///
/// On Linux it reads `CLOCK_REALTIME_COARSE`: the realtime clock as of the last timer tick,
/// at most a few milliseconds behind the precise one and, under a hypervisor, a sixth of its
/// cost (every validation reads the clock). Elsewhere it reads `SystemTime::now()`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        crate::raw::clock::unix_seconds()
    }
}

/// A clock that only moves when told to; clones share the same time.
///
/// # Examples
///
/// ```
/// use sessionward_core::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new(1_700_000_000);
/// clock.advance(Duration::from_secs(90));
/// assert_eq!(clock.now(), 1_700_000_090);
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    seconds: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock reading `start` seconds since the Unix epoch.
    pub fn new(start: u64) -> Self {
        Self {
            seconds: Arc::new(AtomicU64::new(start)),
        }
    }

    /// Moves the clock forward by `by` (whole seconds; sub-second parts are dropped).
    pub fn advance(&self, by: Duration) {
        self.seconds.fetch_add(by.as_secs(), Ordering::SeqCst);
    }

    /// Sets the clock to `seconds` since the Unix epoch. Moving it backwards is allowed, as
    /// real clocks can step back; deadlines already recorded are not rewritten.
    pub fn set(&self, seconds: u64) {
        self.seconds.store(seconds, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> u64 {
        self.seconds.load(Ordering::SeqCst)
    }
}
