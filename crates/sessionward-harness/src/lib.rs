//! # sessionward-harness
//!
//! Simulates a whole org's session traffic against the sessionward engine and writes a
//! benchmark report an operator can read.
//!
//! This crate currently holds the **report writer**: the [`Report`] data the simulation fills
//! in, [`write_report`] which renders it as `report.json` (machine-readable, versioned by
//! [`SCHEMA_VERSION`]), `report.md` (operator-readable) and `report.html` (one self-contained
//! page with inline SVG charts, no external resources), [`render_summary`] for the terminal,
//! [`LatencyRecorder`] for validation latencies and [`ProgressBar`] for long runs.
//!
//! ## Quickstart
//!
//! ```
//! use sessionward_harness::{
//!     command_line, render_summary, write_report, LatencyRecorder, Machine, MinuteStats, Report,
//! };
//!
//! let mut latency = LatencyRecorder::new();
//! let mut report = Report {
//!     title: "Quickstart".into(),
//!     command: command_line(),
//!     machine: Machine::detect(),
//!     scenario_name: "tiny-org".into(),
//!     seed: 7,
//!     ..Report::default()
//! };
//! for minute in 0..60 {
//!     latency.record(80 + u64::from(minute));
//!     report.simulated.minutes.push(MinuteStats {
//!         minute,
//!         active_sessions: u64::from(minute) * 3,
//!         logins: 3,
//!         validations: 120,
//!         refusals: [("expired_idle".to_owned(), 1)].into(),
//!     });
//! }
//! report.latency = latency.summary();
//!
//! let dir = std::env::temp_dir().join(format!("swd-quickstart-{}", std::process::id()));
//! let files = write_report(&dir, &report)?;
//! assert!(files.json.exists() && files.markdown.exists() && files.html.exists());
//! assert!(render_summary(&report).contains("PASS"));
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), sessionward_harness::ReportError>(())
//! ```
//!
//! ## Concurrency model
//!
//! The report types are plain data with no interior mutability. A [`LatencyRecorder`] is not
//! shared between threads: give each worker thread its own, then [`LatencyRecorder::merge`]
//! them into one after the threads join, so recording never contends on a lock.
#![forbid(unsafe_code)]

mod report;

pub use report::{
    command_line, read_report, render_summary, write_report, AttackStats, Checks, Disagreement,
    LatencyRecorder, LatencySummary, Machine, MemoryStats, MinuteStats, ProgressBar, Report,
    ReportError, ReportFiles, SimulatedDay, ThroughputPoint, Totals, WallStats, SCHEMA_VERSION,
};
