//! A whole harness run: memory, the simulated day, the closed loop, assembled into a
//! [`Report`].

use std::time::Duration;

use sessionward_core::Error;

use super::{simulate_day, SimOptions};
use crate::{
    closed_loop, command_line, measure_memory, ClosedLoopOptions, Machine, Report, Scenario,
};

/// What a [`run`] includes beyond the simulated day.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Options of the simulated day (progress bar, latency sampling, ...).
    pub sim: SimOptions,
    /// Measure closed-loop throughput after the day (the scenario's `bench` settings).
    pub closed_loop: bool,
    /// Measure memory per session before the day, when the scenario's `bench.memory_sessions`
    /// is above 0.
    pub memory: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            sim: SimOptions::default(),
            closed_loop: true,
            memory: true,
        }
    }
}

/// Runs the scenario and returns the filled-in report: memory per session first (on a clean
/// heap), then the simulated day, then the closed loop.
///
/// # Errors
///
/// An engine error while setting up (a checked scenario does not cause one).
///
/// # Examples
///
/// ```
/// use sessionward_harness::{run, RunOptions, Scenario};
///
/// let options = RunOptions { closed_loop: false, ..RunOptions::default() };
/// let report = run(&Scenario::ci(), &options)?;
/// assert!(report.passed());
/// assert_eq!(report.seed, 42);
/// # Ok::<(), sessionward_core::Error>(())
/// ```
pub fn run(scenario: &Scenario, options: &RunOptions) -> Result<Report, Error> {
    let bench = scenario.bench();
    let memory = if options.memory && bench.memory_sessions > 0 {
        measure_memory(bench.memory_sessions)?
    } else {
        None
    };
    let day = simulate_day(scenario, &options.sim)?;
    let throughput = if options.closed_loop {
        closed_loop(&ClosedLoopOptions {
            sessions: bench.closed_loop_sessions,
            duration: Duration::from_secs_f64(bench.closed_loop_secs),
            threads: if bench.threads.is_empty() {
                ClosedLoopOptions::default_threads()
            } else {
                bench.threads.clone()
            },
            seed: scenario.seed(),
            progress: options.sim.progress,
        })?
    } else {
        Vec::new()
    };
    Ok(Report {
        title: format!(
            "{}: {} users, {} simulated minutes",
            scenario.name(),
            scenario.users(),
            scenario.minutes()
        ),
        command: command_line(),
        machine: Machine::detect(),
        scenario_name: scenario.name().to_owned(),
        seed: scenario.seed(),
        simulated: day.simulated,
        totals: day.totals,
        checks: day.checks,
        throughput,
        latency: day.latency.summary(),
        wall: day.wall,
        // The measurement's own engine, never the day's sessions (those are
        // `simulated.live_sessions_at_end()`); `None` says "not measured".
        memory,
        ..Report::default()
    })
}
