//! The raw shape of a scenario file, as serde reads it. Checked and turned into a
//! [`Scenario`](crate::Scenario) by `scenario.rs`.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScenarioFile {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) description: String,
    #[serde(default = "default_seed")]
    pub(crate) seed: u64,
    #[serde(default = "default_minutes")]
    pub(crate) minutes: u32,
    #[serde(default = "default_start")]
    pub(crate) start_unix: u64,
    #[serde(default)]
    pub(crate) org: OrgFile,
    pub(crate) profiles: Vec<ProfileFile>,
    pub(crate) pools: Vec<PoolFile>,
    pub(crate) workday: WorkdayFile,
    #[serde(default)]
    pub(crate) admin_actions: Vec<AdminActionFile>,
    #[serde(default)]
    pub(crate) credentials: Vec<CredentialFile>,
    #[serde(default)]
    pub(crate) jobs: Vec<JobFile>,
    #[serde(default)]
    pub(crate) attackers: AttackersFile,
    #[serde(default)]
    pub(crate) bench: BenchFile,
}

fn default_seed() -> u64 {
    42
}
fn default_minutes() -> u32 {
    480
}
fn default_start() -> u64 {
    // 2024-03-04 08:00:00 UTC, a Monday morning.
    1_709_539_200
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrgFile {
    pub(crate) inactivity_timeout_minutes: Option<u64>,
    pub(crate) max_session_length_minutes: Option<u64>,
    #[serde(default)]
    pub(crate) force_relogin_on_browser_close: bool,
    #[serde(default)]
    pub(crate) lock_sessions_to_ip: bool,
    #[serde(default)]
    pub(crate) enforce_login_ranges_every_request: bool,
    #[serde(default)]
    pub(crate) trusted_ranges: Vec<String>,
    #[serde(default)]
    pub(crate) high_assurance_operations: Vec<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum LevelFile {
    Standard,
    HighAssurance,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum MethodFile {
    Password,
    Sso,
    Delegated,
    Mfa,
    Passkey,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum CapActionFile {
    EndOldest,
    RefuseNew,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProfileFile {
    pub(crate) name: String,
    pub(crate) users: u32,
    #[serde(default)]
    pub(crate) integration: bool,
    pub(crate) session_timeout_minutes: Option<u64>,
    pub(crate) max_session_length_minutes: Option<u64>,
    #[serde(default)]
    pub(crate) login_ranges: Vec<String>,
    pub(crate) required_level: Option<LevelFile>,
    pub(crate) login_method: Option<MethodFile>,
    pub(crate) max_sessions_per_user: Option<u32>,
    pub(crate) cap_action: Option<CapActionFile>,
    #[serde(default)]
    pub(crate) pools: BTreeMap<String, f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PoolFile {
    pub(crate) name: String,
    pub(crate) ranges: Vec<String>,
    #[serde(default)]
    pub(crate) roam_per_hour: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WorkdayFile {
    pub(crate) arrival_weights: Vec<f64>,
    pub(crate) departure_weights: Vec<f64>,
    pub(crate) activity_weights: Vec<f64>,
    pub(crate) requests_per_active_user_per_minute: f64,
    #[serde(default)]
    pub(crate) sensitive_share: f64,
    #[serde(default)]
    pub(crate) sensitive_operations: Vec<String>,
    #[serde(default)]
    pub(crate) absent_share: f64,
    pub(crate) lunch_minute: Option<u32>,
    #[serde(default)]
    pub(crate) lunch_spread_minutes: u32,
    #[serde(default)]
    pub(crate) lunch_length_minutes: Option<[u32; 2]>,
    #[serde(default)]
    pub(crate) logout_share: f64,
    #[serde(default)]
    pub(crate) browser_close_share: f64,
    #[serde(default)]
    pub(crate) remember_device_share: f64,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ActionKind {
    EndSessions,
    EndUserSessions,
    ResetPasswords,
    EndProfile,
    EndRange,
    EndAll,
    TightenProfile,
    TightenOrg,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AdminActionFile {
    pub(crate) minute: u32,
    pub(crate) action: ActionKind,
    pub(crate) count: Option<u32>,
    pub(crate) profile: Option<String>,
    pub(crate) range: Option<String>,
    pub(crate) session_timeout_minutes: Option<u64>,
    pub(crate) max_session_length_minutes: Option<u64>,
    pub(crate) login_ranges: Option<Vec<String>>,
    pub(crate) inactivity_timeout_minutes: Option<u64>,
    pub(crate) high_assurance_operations: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) end_existing: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CredentialFile {
    pub(crate) name: String,
    pub(crate) profile: String,
    #[serde(default)]
    pub(crate) scopes: Vec<String>,
    #[serde(default = "default_refresh")]
    pub(crate) refresh_before_expiry_secs: u64,
}

fn default_refresh() -> u64 {
    60
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JobFile {
    pub(crate) name: String,
    pub(crate) credential: String,
    pub(crate) every_minutes: u32,
    #[serde(default)]
    pub(crate) first_minute: u32,
    pub(crate) calls: u32,
    pub(crate) runner_ip: String,
    /// Scopes the job asks its credential's grant for; default: the credential's scopes.
    pub(crate) scopes: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AttackersFile {
    #[serde(default)]
    pub(crate) start_minute: u32,
    #[serde(default)]
    pub(crate) ranges: Vec<String>,
    #[serde(default)]
    pub(crate) stolen_replays_per_minute: f64,
    #[serde(default)]
    pub(crate) forged_per_minute: f64,
    #[serde(default)]
    pub(crate) malformed_per_minute: f64,
    #[serde(default)]
    pub(crate) client_secret_guesses_per_minute: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BenchFile {
    #[serde(default = "default_closed_loop_secs")]
    pub(crate) closed_loop_secs: f64,
    #[serde(default = "default_closed_loop_sessions")]
    pub(crate) closed_loop_sessions: u32,
    #[serde(default)]
    pub(crate) threads: Vec<usize>,
    #[serde(default)]
    pub(crate) memory_sessions: u32,
}

impl Default for BenchFile {
    fn default() -> Self {
        Self {
            closed_loop_secs: default_closed_loop_secs(),
            closed_loop_sessions: default_closed_loop_sessions(),
            threads: Vec::new(),
            memory_sessions: 0,
        }
    }
}

fn default_closed_loop_secs() -> f64 {
    2.0
}
fn default_closed_loop_sessions() -> u32 {
    100_000
}
