//! The report writer: the data a harness run fills in, and its renderings as `report.json`,
//! `report.md`, `report.html` and a terminal summary, plus a latency recorder and a progress
//! bar for the run itself.
//!
//! Everything here is plain data and pure rendering: the simulation owns the measurements,
//! this module only presents them. Every text taken from the report is escaped before it goes
//! into HTML, SVG or a Markdown table.

mod error;
mod format;
mod html;
mod latency;
mod machine;
mod markdown;
mod model;
mod progress;
mod summary;
mod svg;
mod write;

pub use error::ReportError;
pub use latency::LatencyRecorder;
pub use machine::command_line;
pub use model::{
    AttackStats, Checks, Disagreement, LatencySummary, Machine, MemoryStats, MinuteStats, Report,
    SimulatedDay, ThroughputPoint, Totals, WallStats, SCHEMA_VERSION,
};
pub use progress::ProgressBar;
pub use summary::render_summary;
pub use write::{read_report, write_report, ReportFiles};
