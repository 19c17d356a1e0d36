//! The wall clock in whole seconds, read the cheap way. Part of [`raw`](crate::raw), the one
//! module of the core that uses `unsafe`.
//!
//! # Why
//!
//! Every validation reads the clock ([`SystemClock`](crate::SystemClock) unless the engine
//! was given another). `SystemTime::now()` reads `CLOCK_REALTIME` to the nanosecond, which on
//! the project's KVM machine costs 56-68 ns a call (the vDSO scales a TSC read through the
//! hypervisor's clock page): as much as a third of a validation of a session in cache. The
//! engine keeps whole seconds, and Linux's `CLOCK_REALTIME_COARSE` gives the realtime clock as
//! of the last timer tick (at most a few milliseconds old) from the vDSO's data page, without
//! reading the TSC: 6-13 ns a call on the same machine. Nothing else in std exposes it.
//!
//! # Why `unsafe` here, and why it is sound
//!
//! `libc::clock_gettime` is a foreign function, so calling it is `unsafe`. It writes the one
//! `timespec` it is given, a local this function owns, and reads nothing of ours; the clock id
//! is a constant the kernel defines. It returns -1 for an unknown clock (a kernel before
//! 2.6.32), and then the precise clock is read instead. Elsewhere than Linux, and under Miri,
//! only the precise clock is read.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (0 before it): the coarse realtime clock where there is one.
#[inline]
pub(crate) fn unix_seconds() -> u64 {
    #[cfg(all(target_os = "linux", not(miri)))]
    if let Some(seconds) = coarse_unix_seconds() {
        return seconds;
    }
    precise_unix_seconds()
}

/// `CLOCK_REALTIME_COARSE` in whole seconds, or `None` if the kernel refuses it.
#[cfg(all(target_os = "linux", not(miri)))]
#[inline]
fn coarse_unix_seconds() -> Option<u64> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a live, writable `timespec` owned by this frame, the only memory the
    // call touches; the clock id is a kernel constant (see the module documentation).
    #[allow(unsafe_code)]
    let status = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut now) };
    (status == 0).then(|| u64::try_from(now.tv_sec).unwrap_or(0))
}

/// `SystemTime::now()` in whole seconds.
fn precise_unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The coarse clock lags the precise one by at most a timer tick, so the two readings,
    /// taken in either order, are at most a second apart.
    #[test]
    #[cfg_attr(
        miri,
        ignore = "Miri isolates the realtime clock, and under Miri only the precise path runs"
    )]
    fn the_coarse_clock_agrees_with_the_system_time() {
        for _ in 0..1000 {
            let before = precise_unix_seconds();
            let coarse = unix_seconds();
            let after = precise_unix_seconds();
            assert!(
                coarse + 1 >= before && coarse <= after,
                "{before} <= {coarse} <= {after} (within a second)"
            );
        }
    }

    #[cfg(all(target_os = "linux", not(miri)))]
    #[test]
    fn linux_has_the_coarse_clock() {
        assert!(coarse_unix_seconds().is_some_and(|seconds| seconds > 1_700_000_000));
    }
}
