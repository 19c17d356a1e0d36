//! # sessionward-harness
//!
//! Simulates a whole org's session traffic against the sessionward engine, checks every
//! outcome against its own model of the policy, and writes a benchmark report an operator can
//! read. The binary `sessionward-harness` runs it from the command line:
//!
//! ```text
//! cargo run --release -p sessionward-harness -- --out reports/latest
//! ```
//!
//! - [`Scenario`]: the org (settings, profiles, users, address pools), its workday, admin
//!   actions, async jobs with named credentials and attackers; read from TOML or JSON and
//!   checked with errors naming the line and field ([`ScenarioError`]), or the embedded
//!   [`Scenario::default_day`] (10,000 users, 8 hours, seed 42) and [`Scenario::ci`].
//! - [`simulate_day`]: the day on a manual clock, deterministic for a seed; every validation,
//!   login, OAuth grant, step-up, logout and admin end is compared with the model's
//!   expectation, and every disagreement lands in [`Checks`].
//! - [`closed_loop`] and [`measure_memory`]: wall-clock throughput on 1..=N threads and memory
//!   per live session.
//! - [`run`]: all of the above assembled into a [`Report`].
//!
//! The **report writer**: the [`Report`] data the simulation fills in, [`write_report`] which
//! renders it as `report.json` (machine-readable, versioned by [`SCHEMA_VERSION`]), `report.md`
//! (operator-readable) and `report.html` (one self-contained page with inline SVG charts, no
//! external resources), [`render_summary`] for the terminal, [`LatencyRecorder`] for
//! validation latencies and [`ProgressBar`] for long runs.
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
//! // Each of the 7,200 validations was predicted by the model and the engine agreed: a report
//! // passes only if something was checked.
//! report.checks.expected_outcomes = 7_200;
//! report.checks.agreed = 7_200;
//!
//! let dir = std::env::temp_dir().join(format!("swd-quickstart-{}", std::process::id()));
//! let files = write_report(&dir, &report)?;
//! assert!(files.json.exists() && files.markdown.exists() && files.html.exists());
//! assert!(render_summary(&report).contains("PASS"));
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), sessionward_harness::ReportError>(())
//! ```
//!
//! ## Simulating a day
//!
//! ```no_run
//! use sessionward_harness::{simulate_day, Scenario, SimOptions};
//!
//! let day = simulate_day(&Scenario::ci().with_seed(3), &SimOptions::default())?;
//! assert_eq!(day.checks.disagreement_count, 0, "{:?}", day.checks.disagreements);
//! # Ok::<(), sessionward_core::Error>(())
//! ```
//!
//! ## Concurrency model
//!
//! The simulated day runs on one thread (its outcomes must not depend on scheduling); the
//! closed loop runs 1..=N threads against one engine, each with its own random stream.
//! The report types are plain data with no interior mutability. A [`LatencyRecorder`] is not
//! shared between threads: give each worker thread its own, then [`LatencyRecorder::merge`]
//! them into one after the threads join, so recording never contends on a lock.
#![forbid(unsafe_code)]

mod closed_loop;
mod memory;
mod report;
mod scenario;
mod sim;

pub use closed_loop::{closed_loop, ClosedLoopOptions};
pub use memory::{measure_memory, resident_bytes};
pub use report::{
    command_line, read_report, render_summary, write_report, AttackStats, Checks, Disagreement,
    LatencyRecorder, LatencySummary, Machine, MemoryStats, MinuteStats, ProgressBar, Report,
    ReportError, ReportFiles, SimulatedDay, ThroughputPoint, Totals, WallStats, SCHEMA_VERSION,
};
pub use scenario::{BenchSettings, Scenario, ScenarioError, ScenarioFormat};
pub use sim::{run, simulate_day, DayResult, ModelSkew, RunOptions, SimOptions};
