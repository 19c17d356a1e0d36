//! Memory per live session: the growth of the process's resident set while a fresh engine is
//! filled with sessions.

use sessionward_core::Error;

use crate::closed_loop::populate;
use crate::MemoryStats;

/// Resident set size of this process in bytes (`VmRSS` of `/proc/self/status`), or `None` where
/// the OS does not say.
#[must_use]
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Populates `sessions` sessions in a fresh engine (tokens discarded) and reports the RSS
/// growth per live session (the table's records, the per-user handle lists and allocator
/// overhead) and how many records sit at their home slot. `None` when the OS does not report
/// RSS (or no session went live), so that a report says "not measured" rather than a made-up
/// 0 bytes.
///
/// The figure includes what the allocator keeps, so it is an upper bound of the table's own
/// footprint; run it before other large allocations for a clean number.
///
/// # Errors
///
/// An engine error while populating (none is expected).
///
/// # Examples
///
/// ```
/// if let Some(stats) = sessionward_harness::measure_memory(20_000)? {
///     assert_eq!(stats.live_sessions, 20_000);
///     assert!(stats.bytes_per_live_session.is_finite());
///     // Logins choose selectors whose table slot is free.
///     assert!(stats.records_at_home * 10 >= stats.live_sessions * 8);
/// }
/// # Ok::<(), sessionward_core::Error>(())
/// ```
pub fn measure_memory(sessions: u32) -> Result<Option<MemoryStats>, Error> {
    let before = resident_bytes();
    let (engine, _) = populate(sessions, false)?;
    let after = resident_bytes();
    let stats = engine.stats();
    let live = stats.live as u64;
    drop(engine);
    Ok(match (before, after) {
        (Some(before), Some(after)) if live > 0 => Some(MemoryStats {
            live_sessions: live,
            bytes_per_live_session: after.saturating_sub(before) as f64 / live as f64,
            records_at_home: stats.at_home as u64,
        }),
        _ => None,
    })
}
