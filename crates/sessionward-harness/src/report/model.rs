//! The report's data: plain, serde-friendly structs that the simulation fills in.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The version of the `report.json` layout written by this crate.
///
/// Bumped whenever a field is renamed, removed or changes meaning, so that tools comparing
/// reports across runs can refuse a file they would misread. Version 2: `memory` is `null`
/// when memory was not measured and describes its own engine, never the simulated day;
/// `totals.refusals` counts refused validations only, refused logins are in
/// `totals.login_refusals` out of `totals.login_attempts`.
pub const SCHEMA_VERSION: u32 = 2;

/// Everything one harness run measured: what was simulated, whether the engine agreed with the
/// model, and how fast it went on which machine.
///
/// Plain data: the simulation fills the fields, [`write_report`](crate::write_report) renders
/// them as `report.json`, `report.md` and `report.html`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Layout version of this report; [`SCHEMA_VERSION`] for reports built by this crate.
    pub schema_version: u32,
    /// Human title shown at the top of every rendering.
    pub title: String,
    /// The exact command line that produced the run (see [`command_line`](crate::command_line)).
    pub command: String,
    /// The machine the run was measured on.
    pub machine: Machine,
    /// Name of the simulated scenario (org size, traffic mix, attack mix).
    pub scenario_name: String,
    /// Seed of the simulation's random generator: the same seed replays the same day.
    pub seed: u64,
    /// What happened in each simulated minute.
    pub simulated: SimulatedDay,
    /// Counts over the whole run.
    pub totals: Totals,
    /// Agreement between the engine and the simulation's model of expected outcomes.
    pub checks: Checks,
    /// Validation throughput measured at several thread counts.
    pub throughput: Vec<ThroughputPoint>,
    /// Latency of single validations.
    pub latency: LatencySummary,
    /// Wall-clock cost of simulating the day.
    pub wall: WallStats,
    /// Memory per session, measured in a separate engine filled for the purpose (not the
    /// simulated day's, whose live sessions at the end are
    /// [`SimulatedDay::live_sessions_at_end`]); `None` when memory was not measured.
    pub memory: Option<MemoryStats>,
}

impl Default for Report {
    /// An empty report carrying the current [`SCHEMA_VERSION`].
    fn default() -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            title: String::new(),
            command: String::new(),
            machine: Machine::default(),
            scenario_name: String::new(),
            seed: 0,
            simulated: SimulatedDay::default(),
            totals: Totals::default(),
            checks: Checks::default(),
            throughput: Vec::new(),
            latency: LatencySummary::default(),
            wall: WallStats::default(),
            memory: None,
        }
    }
}

impl Report {
    /// True when the model checked at least one outcome and the engine agreed on every one:
    /// something was compared, every comparison agreed, and no disagreement was counted or
    /// recorded. A run that checked nothing has not passed.
    ///
    /// # Examples
    ///
    /// ```
    /// use sessionward_harness::{Disagreement, Report};
    ///
    /// let mut report = Report::default();
    /// assert!(!report.passed(), "nothing was checked");
    /// report.checks.expected_outcomes = 100;
    /// report.checks.agreed = 100;
    /// assert!(report.passed());
    /// report.checks.record_disagreement(
    ///     Disagreement {
    ///         minute: 7,
    ///         what: "validate after end_user".into(),
    ///         expected: "ended(admin)".into(),
    ///         observed: "ok".into(),
    ///     },
    ///     100,
    /// );
    /// assert!(!report.passed());
    /// ```
    #[must_use]
    pub fn passed(&self) -> bool {
        let c = &self.checks;
        c.expected_outcomes > 0
            && c.agreed == c.expected_outcomes
            && c.disagreement_count == 0
            && c.disagreements.is_empty()
    }
}

/// The machine a run was measured on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// Logical cores available to the process.
    pub cores: usize,
    /// CPU model name, as the OS reports it (`unknown` when it does not).
    pub cpu_model: String,
    /// Operating system, architecture and, where known, distribution and kernel.
    pub os: String,
}

/// The simulated day, minute by minute.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SimulatedDay {
    /// One entry per simulated minute, in time order.
    pub minutes: Vec<MinuteStats>,
}

impl SimulatedDay {
    /// The largest number of active sessions seen at the end of any minute (0 for no minutes).
    #[must_use]
    pub fn peak_active_sessions(&self) -> u64 {
        self.minutes
            .iter()
            .map(|m| m.active_sessions)
            .max()
            .unwrap_or(0)
    }

    /// Sessions live when the simulated day ended: the last minute's active sessions (0 for no
    /// minutes).
    ///
    /// # Examples
    ///
    /// ```
    /// use sessionward_harness::{MinuteStats, SimulatedDay};
    ///
    /// let day = SimulatedDay {
    ///     minutes: (0..3)
    ///         .map(|minute| MinuteStats {
    ///             minute,
    ///             active_sessions: [5, 9, 7][minute as usize],
    ///             ..MinuteStats::default()
    ///         })
    ///         .collect(),
    /// };
    /// assert_eq!(day.live_sessions_at_end(), 7);
    /// assert_eq!(day.peak_active_sessions(), 9);
    /// ```
    #[must_use]
    pub fn live_sessions_at_end(&self) -> u64 {
        self.minutes
            .iter()
            .max_by_key(|m| m.minute)
            .map_or(0, |m| m.active_sessions)
    }

    /// Every refusal reason that occurs in any minute, sorted.
    #[must_use]
    pub fn refusal_reasons(&self) -> Vec<&str> {
        let mut reasons: Vec<&str> = self
            .minutes
            .iter()
            .flat_map(|m| m.refusals.keys().map(String::as_str))
            .collect();
        reasons.sort_unstable();
        reasons.dedup();
        reasons
    }
}

/// What happened during one simulated minute.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinuteStats {
    /// Minutes since the start of the simulated day.
    pub minute: u32,
    /// Sessions active at the end of the minute.
    pub active_sessions: u64,
    /// Sessions issued during the minute.
    pub logins: u64,
    /// Validations performed during the minute (successful or refused).
    pub validations: u64,
    /// Refused validations during the minute, by reason code.
    pub refusals: BTreeMap<String, u64>,
}

impl MinuteStats {
    /// All refusals of the minute, whatever the reason.
    #[must_use]
    pub fn refusals_total(&self) -> u64 {
        self.refusals.values().sum()
    }
}

/// Counts over the whole run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Sessions issued.
    pub logins: u64,
    /// Validations performed (successful or refused), step-ups included.
    pub validations: u64,
    /// Refused validations (and step-ups), by reason code: a share of `validations`.
    pub refusals: BTreeMap<String, u64>,
    /// Login attempts: logins, challenge completions and OAuth client-credentials grants,
    /// whatever their outcome.
    pub login_attempts: u64,
    /// Login attempts that gave no session and no challenge, by reason code (e.g.
    /// `login_denied_ip_not_allowed`, `login_step_up_required`, `grant_invalid_client`): a
    /// share of `login_attempts`, never of `validations`.
    pub login_refusals: BTreeMap<String, u64>,
    /// Verification challenges issued at login (source outside the trusted ranges).
    pub challenges: u64,
    /// Step-ups performed to reach a higher security level.
    pub step_ups: u64,
    /// Sessions ended by each admin action (e.g. `end_session`, `end_user`, `end_profile`).
    pub ended_by_admin: BTreeMap<String, u64>,
    /// Async jobs run (they carry no session ID).
    pub jobs_run: u64,
    /// Attacker attempts by kind (e.g. `stolen_token_other_ip`, `forged_token`).
    pub attacks: BTreeMap<String, AttackStats>,
}

impl Totals {
    /// All refused validations, whatever the reason (refused logins are not included).
    #[must_use]
    pub fn refusals_total(&self) -> u64 {
        self.refusals.values().sum()
    }

    /// All refused login attempts, whatever the reason.
    #[must_use]
    pub fn login_refusals_total(&self) -> u64 {
        self.login_refusals.values().sum()
    }

    /// All sessions ended by admin actions.
    #[must_use]
    pub fn ended_by_admin_total(&self) -> u64 {
        self.ended_by_admin.values().sum()
    }

    /// All attacker attempts and how many of them were refused, over every kind.
    #[must_use]
    pub fn attacks_total(&self) -> AttackStats {
        self.attacks
            .values()
            .fold(AttackStats::default(), |acc, a| AttackStats {
                attempts: acc.attempts + a.attempts,
                refused: acc.refused + a.refused,
            })
    }
}

/// Attempts of one kind of attack.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttackStats {
    /// Attempts made.
    pub attempts: u64,
    /// Attempts the engine refused.
    pub refused: u64,
}

/// Agreement between the engine's outcomes and the simulation's model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checks {
    /// Outcomes the model predicted and the harness compared.
    pub expected_outcomes: u64,
    /// Outcomes where the engine agreed with the model.
    pub agreed: u64,
    /// Every disagreement counted, including those not kept in `disagreements`.
    pub disagreement_count: u64,
    /// The first disagreements, kept for the report (capped by the caller).
    pub disagreements: Vec<Disagreement>,
}

impl Checks {
    /// Counts a disagreement and keeps it while fewer than `cap` are kept.
    pub fn record_disagreement(&mut self, disagreement: Disagreement, cap: usize) {
        self.disagreement_count += 1;
        if self.disagreements.len() < cap {
            self.disagreements.push(disagreement);
        }
    }
}

/// One outcome where the engine and the model disagreed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disagreement {
    /// Simulated minute in which it happened.
    pub minute: u32,
    /// The operation checked (never a token).
    pub what: String,
    /// The outcome the model expected.
    pub expected: String,
    /// The outcome the engine gave.
    pub observed: String,
}

/// Validation throughput at one thread count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ThroughputPoint {
    /// Threads validating concurrently.
    pub threads: usize,
    /// Validations per second, all threads together.
    pub validations_per_sec: f64,
    /// Length of the measurement in seconds.
    pub duration_secs: f64,
}

/// Latency percentiles of single validations, in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Median.
    pub p50_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// Largest sample.
    pub max_ns: u64,
    /// Number of samples.
    pub samples: u64,
}

/// Wall-clock cost of simulating the day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct WallStats {
    /// Seconds the whole simulation took.
    pub simulation_secs: f64,
    /// Validations per wall-clock second during the simulation.
    pub validations_per_sec: f64,
    /// Logins per wall-clock second during the simulation.
    pub logins_per_sec: f64,
}

/// The memory measurement: a fresh engine filled with sessions of its own (see
/// [`measure_memory`](crate::measure_memory)), separate from the simulated day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryStats {
    /// Sessions live in the measurement's own engine (not the simulated day's sessions).
    pub live_sessions: u64,
    /// Growth of the process's resident set per session of that engine, in bytes.
    pub bytes_per_live_session: f64,
    /// Records of that engine at their home slot, which a validation finds in the first cache
    /// line it reads (`TableStats::at_home`); 0 in reports written before it was recorded.
    #[serde(default)]
    pub records_at_home: u64,
}
