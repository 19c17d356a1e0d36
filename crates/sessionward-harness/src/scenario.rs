//! Scenarios: what org the harness simulates and how its day goes.
//!
//! A scenario is read from TOML or JSON (chosen by the file extension), or taken from the
//! embedded defaults ([`Scenario::default_day`], [`Scenario::ci`]). Every value is checked
//! before anything runs; policy values (timeouts, CIDR ranges, names) are checked by building
//! the real [`OrgSettings`] and [`Profile`] with the core's builders, so the range errors are
//! the engine's own. A refused file names its line and the field path
//! (`profiles[1].session_timeout_minutes`).

mod file;
mod locate;

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use sessionward_core::{
    parse_cidr, parse_ip, CapAction, IpNet, LoginMethod, OAuthClients, OrgSettings, Profile,
    SecurityLevel,
};

use file::{ActionKind, CapActionFile, LevelFile, MethodFile, ScenarioFile};
use locate::{line_col, offset_of, FieldMap};

/// The built-in default scenario: a 10,000-user org over an 8-hour day, seed 42.
const DEFAULT_TOML: &str = include_str!("../scenarios/default.toml");
/// A small scenario for CI and tests: a few hundred users over two hours.
const CI_TOML: &str = include_str!("../scenarios/ci.toml");

/// Longest profile name a scenario accepts (user ids are made from it).
const MAX_PROFILE_NAME: usize = 200;
/// Most users a scenario may simulate.
const MAX_USERS: u64 = 2_000_000;
/// Longest simulated day, in minutes (one day: tombstones and deadlines stay simple).
const MAX_MINUTES: u32 = 24 * 60;

/// Why a scenario file was refused: where (file, line, column), which field, and what is wrong.
///
/// # Examples
///
/// ```
/// use sessionward_harness::Scenario;
///
/// let text = "name = \"x\"\nminutes = \"many\"\n";
/// let err = Scenario::from_toml_str(text, "bad.toml").unwrap_err();
/// assert_eq!(err.line(), Some(2));
/// assert_eq!(err.field(), Some("minutes"));
/// assert!(err.to_string().starts_with("bad.toml:2:"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    source_name: String,
    line: Option<usize>,
    column: Option<usize>,
    field: Option<String>,
    message: String,
}

impl ScenarioError {
    /// The file (or `<default>`, `<ci>`) the scenario came from.
    #[must_use]
    pub fn source_name(&self) -> &str {
        &self.source_name
    }
    /// 1-based line of the offending value, when known.
    #[must_use]
    pub fn line(&self) -> Option<usize> {
        self.line
    }
    /// 1-based column of the offending value, when known.
    #[must_use]
    pub fn column(&self) -> Option<usize> {
        self.column
    }
    /// Path of the offending field, e.g. `profiles[1].session_timeout_minutes`.
    #[must_use]
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }
    /// What is wrong, without the location.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source_name)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        f.write_str(": ")?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ScenarioError {}

/// The format of a scenario text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScenarioFormat {
    /// TOML (`.toml`).
    Toml,
    /// JSON (`.json`).
    Json,
}

/// An address pool users connect from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pool {
    pub(crate) name: String,
    pub(crate) ranges: Vec<IpNet>,
    /// Probability per hour that a user of this pool moves to another address.
    pub(crate) roam_per_hour: f64,
}

/// A profile with its users and how they behave.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ProfileSpec {
    pub(crate) profile: Profile,
    pub(crate) users: u32,
    /// Integration users: no interactive traffic, used by named credentials.
    pub(crate) integration: bool,
    /// How the profile's users log in first.
    pub(crate) login_method: LoginMethod,
    /// (pool index, weight) of the addresses the users connect from.
    pub(crate) pools: Vec<(usize, f64)>,
}

/// The shape of the workday.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Workday {
    pub(crate) arrival_weights: Vec<f64>,
    pub(crate) departure_weights: Vec<f64>,
    pub(crate) activity_weights: Vec<f64>,
    pub(crate) requests_per_minute: f64,
    pub(crate) sensitive_share: f64,
    pub(crate) sensitive_operations: Vec<String>,
    pub(crate) absent_share: f64,
    pub(crate) lunch_minute: Option<u32>,
    pub(crate) lunch_spread_minutes: u32,
    pub(crate) lunch_length_minutes: [u32; 2],
    pub(crate) logout_share: f64,
    pub(crate) browser_close_share: f64,
    pub(crate) remember_device_share: f64,
}

/// What an admin does at a given minute.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AdminAction {
    /// End this many random live sessions by handle.
    EndSessions(u32),
    /// End all sessions of this many random users with sessions.
    EndUserSessions(u32),
    /// Reset the passwords of this many random users with sessions.
    ResetPasswords(u32),
    /// End every session of a profile.
    EndProfile(usize),
    /// End every session started from a range, spelled as in the scenario (an IPv4-mapped
    /// range stays mapped).
    EndRange(IpNet),
    /// End every session of the org.
    EndAll,
    /// Replace a profile (tightened), optionally ending its sessions.
    TightenProfile {
        index: usize,
        profile: Profile,
        end_existing: bool,
    },
    /// Replace the org settings (tightened), optionally ending every session.
    TightenOrg {
        settings: OrgSettings,
        end_existing: bool,
    },
}

impl AdminAction {
    /// The key under which the sessions this action ended are counted in the report.
    pub(crate) fn report_key(&self) -> &'static str {
        match self {
            Self::EndSessions(_) => "end_session",
            Self::EndUserSessions(_) => "end_user_sessions",
            Self::ResetPasswords(_) => "reset_password",
            Self::EndProfile(_) | Self::TightenProfile { .. } => "end_profile",
            Self::EndRange(_) => "end_range",
            Self::EndAll | Self::TightenOrg { .. } => "end_all",
        }
    }
}

/// A named credential: an OAuth 2.0 client registered with the org, running as one
/// integration user.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Credential {
    pub(crate) name: String,
    pub(crate) profile: usize,
    /// Index of the integration user within its profile.
    pub(crate) user_in_profile: u32,
    pub(crate) scopes: Vec<String>,
    pub(crate) refresh_before_expiry_secs: u64,
}

/// An async job that calls the org's API with a named credential.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Job {
    pub(crate) name: String,
    pub(crate) credential: usize,
    pub(crate) every_minutes: u32,
    pub(crate) first_minute: u32,
    pub(crate) calls: u32,
    /// The address the job calls from, spelled as in the scenario (IPv4-mapped stays mapped).
    pub(crate) runner_ip: IpAddr,
    /// Scopes the job asks the grant for; `None`: the credential's scopes.
    pub(crate) scopes: Option<Vec<String>>,
}

/// The attackers' traffic.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Attackers {
    pub(crate) start_minute: u32,
    pub(crate) ranges: Vec<IpNet>,
    pub(crate) stolen_replays_per_minute: f64,
    pub(crate) forged_per_minute: f64,
    pub(crate) malformed_per_minute: f64,
    /// Client-credentials grants with a job's client id and a guessed secret, sent from that
    /// job's runner address (a neighbour host inside the integration's login ranges).
    pub(crate) client_secret_guesses_per_minute: f64,
}

/// Settings of the wall-clock measurements that follow the simulated day.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchSettings {
    /// Seconds of closed-loop validation per thread count.
    pub closed_loop_secs: f64,
    /// Sessions populated for the closed loop.
    pub closed_loop_sessions: u32,
    /// Thread counts of the closed loop; empty means 1..=available parallelism.
    pub threads: Vec<usize>,
    /// Sessions populated in a fresh engine to measure memory per session; 0 skips it.
    pub memory_sessions: u32,
}

/// A checked scenario: the org, its users and their day. The file format is shown by the
/// embedded default, `scenarios/default.toml` in this crate (`sessionward-harness
/// --print-default-scenario` prints it): org settings, address pools, profiles with user
/// counts, the workday shape, admin actions, named credentials, jobs, attackers and the
/// wall-clock measurement settings. Times are whole minutes, ranges CIDR strings.
///
/// # Examples
///
/// ```
/// use sessionward_harness::Scenario;
///
/// let day = Scenario::default_day();
/// assert_eq!(day.users(), 10_000);
/// assert_eq!(day.minutes(), 480);
/// assert_eq!(day.seed(), 42);
/// assert_eq!(day.with_seed(7).seed(), 7);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) seed: u64,
    pub(crate) minutes: u32,
    pub(crate) start_unix: u64,
    pub(crate) org: OrgSettings,
    pub(crate) profiles: Vec<ProfileSpec>,
    pub(crate) pools: Vec<Pool>,
    pub(crate) workday: Workday,
    /// Sorted by minute (stable: file order within a minute).
    pub(crate) admin_actions: Vec<(u32, AdminAction)>,
    pub(crate) credentials: Vec<Credential>,
    pub(crate) jobs: Vec<Job>,
    pub(crate) attackers: Attackers,
    pub(crate) bench: BenchSettings,
}

impl Scenario {
    /// The embedded default: 10,000 users over an 8-hour day (480 simulated minutes), seed 42.
    #[must_use]
    pub fn default_day() -> Self {
        Self::from_toml_str(DEFAULT_TOML, "<default>")
            .expect("the embedded default scenario is valid")
    }

    /// The embedded small scenario for CI and tests (a few hundred users, two hours).
    #[must_use]
    pub fn ci() -> Self {
        Self::from_toml_str(CI_TOML, "<ci>").expect("the embedded CI scenario is valid")
    }

    /// The text of the embedded default scenario (a commented example of the format).
    #[must_use]
    pub fn default_toml() -> &'static str {
        DEFAULT_TOML
    }

    /// Reads a scenario file: JSON if the name ends in `.json`, TOML otherwise.
    ///
    /// # Errors
    ///
    /// A [`ScenarioError`] naming the file, and for content errors the line and field.
    pub fn from_path(path: &Path) -> Result<Self, ScenarioError> {
        let source = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|err| ScenarioError {
            source_name: source.clone(),
            line: None,
            column: None,
            field: None,
            message: format!("cannot read scenario file: {err}"),
        })?;
        let json = path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
        let format = if json {
            ScenarioFormat::Json
        } else {
            ScenarioFormat::Toml
        };
        Self::parse(&text, &source, format)
    }

    /// Parses a TOML scenario; `source` names it in errors.
    ///
    /// # Errors
    ///
    /// A [`ScenarioError`] naming the line and field.
    pub fn from_toml_str(text: &str, source: &str) -> Result<Self, ScenarioError> {
        Self::parse(text, source, ScenarioFormat::Toml)
    }

    /// Parses a JSON scenario; `source` names it in errors.
    ///
    /// # Errors
    ///
    /// A [`ScenarioError`] naming the line and field.
    pub fn from_json_str(text: &str, source: &str) -> Result<Self, ScenarioError> {
        Self::parse(text, source, ScenarioFormat::Json)
    }

    /// Parses a scenario in the given format; `source` names it in errors.
    ///
    /// # Errors
    ///
    /// A [`ScenarioError`] naming the line and field.
    pub fn parse(text: &str, source: &str, format: ScenarioFormat) -> Result<Self, ScenarioError> {
        let fields = match format {
            ScenarioFormat::Toml => FieldMap::toml(text),
            ScenarioFormat::Json => FieldMap::json(text),
        };
        let ctx = Ctx {
            text,
            source,
            fields,
        };
        let raw: ScenarioFile = match format {
            ScenarioFormat::Toml => toml::from_str(text).map_err(|err| {
                let offset = err.span().map(|span| span.start);
                ctx.serde_error(offset, err.message())
            })?,
            ScenarioFormat::Json => serde_json::from_str(text).map_err(|err| {
                let offset = (err.line() > 0).then(|| offset_of(text, err.line(), err.column()));
                let message = err.to_string();
                // serde_json appends " at line L column C"; the location is given separately.
                let message = message
                    .rsplit_once(" at line ")
                    .map_or(message.as_str(), |(head, _)| head);
                ctx.serde_error(offset, message)
            })?,
        };
        ctx.build(raw)
    }

    /// The scenario's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
    /// A one-line description (may be empty).
    #[must_use]
    pub fn description(&self) -> &str {
        &self.description
    }
    /// Seed of the simulation's random stream.
    #[must_use]
    pub fn seed(&self) -> u64 {
        self.seed
    }
    /// Length of the simulated day in minutes.
    #[must_use]
    pub fn minutes(&self) -> u32 {
        self.minutes
    }
    /// Users simulated, over all profiles (integration users included).
    #[must_use]
    pub fn users(&self) -> u64 {
        self.profiles.iter().map(|p| u64::from(p.users)).sum()
    }
    /// The org settings the day starts with.
    #[must_use]
    pub fn org_settings(&self) -> &OrgSettings {
        &self.org
    }
    /// The profiles the day starts with.
    pub fn profiles(&self) -> impl Iterator<Item = &Profile> {
        self.profiles.iter().map(|spec| &spec.profile)
    }
    /// The wall-clock measurement settings.
    #[must_use]
    pub fn bench(&self) -> &BenchSettings {
        &self.bench
    }
    /// The same scenario with another seed.
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// The same scenario with other measurement settings.
    #[must_use]
    pub fn with_bench(mut self, bench: BenchSettings) -> Self {
        self.bench = bench;
        self
    }
}

struct Ctx<'a> {
    text: &'a str,
    source: &'a str,
    fields: FieldMap,
}

type Checked<T> = Result<T, ScenarioError>;

fn minutes(value: u64) -> Duration {
    Duration::from_secs(value.saturating_mul(60))
}

fn level(level: LevelFile) -> SecurityLevel {
    match level {
        LevelFile::Standard => SecurityLevel::Standard,
        LevelFile::HighAssurance => SecurityLevel::HighAssurance,
    }
}

fn method(method: MethodFile) -> LoginMethod {
    match method {
        MethodFile::Password => LoginMethod::Password,
        MethodFile::Sso => LoginMethod::Sso,
        MethodFile::Delegated => LoginMethod::Delegated,
        MethodFile::Mfa => LoginMethod::Mfa,
        MethodFile::Passkey => LoginMethod::Passkey,
    }
}

impl Ctx<'_> {
    fn error_at(
        &self,
        offset: Option<usize>,
        field: Option<String>,
        message: String,
    ) -> ScenarioError {
        let (line, column) = match offset {
            Some(offset) => {
                let (line, column) = line_col(self.text, offset);
                (Some(line), Some(column))
            }
            None => (None, None),
        };
        ScenarioError {
            source_name: self.source.to_owned(),
            line,
            column,
            field,
            message,
        }
    }

    /// An error about the value at `path` (or the nearest ancestor present in the file).
    fn err(&self, path: &str, message: impl Into<String>) -> ScenarioError {
        let offset = self.fields.span_of(path).map(|span| span.start);
        self.error_at(offset, Some(path.to_owned()), message.into())
    }

    /// A serde error at byte `offset`: the field is the deepest value there, plus the key a
    /// `missing field`/`unknown field` message names.
    fn serde_error(&self, offset: Option<usize>, message: &str) -> ScenarioError {
        let mut field = offset
            .and_then(|offset| self.fields.field_at(offset))
            .map(str::to_owned);
        for prefix in ["missing field `", "unknown field `"] {
            if let Some(rest) = message.strip_prefix(prefix) {
                if let Some((key, _)) = rest.split_once('`') {
                    field = Some(match field {
                        Some(path) if path == key || path.ends_with(&format!(".{key}")) => path,
                        Some(parent) if !parent.is_empty() => format!("{parent}.{key}"),
                        _ => key.to_owned(),
                    });
                }
            }
        }
        let offset = offset.or_else(|| {
            field
                .as_deref()
                .and_then(|f| self.fields.span_of(f))
                .map(|span| span.start)
        });
        let message = message.trim().trim_end_matches('\n').to_owned();
        self.error_at(
            offset,
            field.or_else(|| Some("(top level)".to_owned())),
            message,
        )
    }

    fn share(&self, path: &str, value: f64) -> Checked<f64> {
        if value.is_finite() && (0.0..=1.0).contains(&value) {
            Ok(value)
        } else {
            Err(self.err(path, format!("{value} is not a share between 0 and 1")))
        }
    }

    fn rate(&self, path: &str, value: f64, max: f64) -> Checked<f64> {
        if value.is_finite() && (0.0..=max).contains(&value) {
            Ok(value)
        } else {
            Err(self.err(
                path,
                format!("{value} is outside the allowed range 0..={max}"),
            ))
        }
    }

    fn cidrs(&self, path: &str, field: &'static str, texts: &[String]) -> Checked<Vec<IpNet>> {
        texts
            .iter()
            .enumerate()
            .map(|(i, text)| {
                parse_cidr(field, text)
                    .map_err(|e| self.err(&format!("{path}[{i}]"), e.to_string()))
            })
            .collect()
    }

    fn weights(
        &self,
        path: &str,
        weights: &[f64],
        hours: usize,
        need_positive: bool,
    ) -> Checked<Vec<f64>> {
        if weights.len() < hours {
            return Err(self.err(
                path,
                format!(
                    "{} hourly weights given, the day has {hours} hour(s): give one per hour",
                    weights.len()
                ),
            ));
        }
        for (i, &w) in weights.iter().enumerate() {
            if !w.is_finite() || w < 0.0 {
                return Err(self.err(&format!("{path}[{i}]"), format!("{w} is not a weight >= 0")));
            }
        }
        if need_positive && weights[..hours].iter().sum::<f64>() <= 0.0 {
            return Err(self.err(path, "at least one hour of the day needs a weight above 0"));
        }
        Ok(weights[..hours].to_vec())
    }

    fn build(&self, raw: ScenarioFile) -> Checked<Scenario> {
        if raw.name.trim().is_empty() {
            return Err(self.err("name", "the scenario needs a name"));
        }
        if raw.minutes == 0 || raw.minutes > MAX_MINUTES {
            return Err(self.err(
                "minutes",
                format!(
                    "{} is outside the allowed range 1..={MAX_MINUTES}",
                    raw.minutes
                ),
            ));
        }
        if raw.start_unix > u64::from(u32::MAX) - 3 * 86_400 {
            return Err(self.err(
                "start_unix",
                format!(
                    "{} is too late (the engine counts seconds in 32 bits)",
                    raw.start_unix
                ),
            ));
        }
        let org = self.org(&raw.org)?;
        let pools = self.pools(&raw.pools)?;
        let profiles = self.profiles(&raw.profiles, &pools)?;
        let hours = raw.minutes.div_ceil(60) as usize;
        let workday = self.workday(&raw.workday, hours, raw.minutes)?;
        let admin_actions = self.admin_actions(&raw, &org, &profiles)?;
        let credentials = self.credentials(&raw, &profiles)?;
        let jobs = self.jobs(&raw, &credentials)?;
        let attackers = self.attackers(&raw.attackers, raw.minutes)?;
        let bench = self.bench(&raw.bench)?;
        Ok(Scenario {
            name: raw.name,
            description: raw.description,
            seed: raw.seed,
            minutes: raw.minutes,
            start_unix: raw.start_unix,
            org,
            profiles,
            pools,
            workday,
            admin_actions,
            credentials,
            jobs,
            attackers,
            bench,
        })
    }

    fn org(&self, raw: &file::OrgFile) -> Checked<OrgSettings> {
        let mut builder = OrgSettings::builder()
            .force_relogin_on_browser_close(raw.force_relogin_on_browser_close)
            .lock_sessions_to_ip(raw.lock_sessions_to_ip)
            .enforce_login_ranges_every_request(raw.enforce_login_ranges_every_request)
            .trusted_ranges(self.cidrs(
                "org.trusted_ranges",
                "trusted_ranges",
                &raw.trusted_ranges,
            )?);
        if let Some(m) = raw.inactivity_timeout_minutes {
            builder = builder.inactivity_timeout(minutes(m));
        }
        if let Some(m) = raw.max_session_length_minutes {
            builder = builder.max_session_length(minutes(m));
        }
        for (i, op) in raw.high_assurance_operations.iter().enumerate() {
            // Checked one by one so that a bad name is located.
            OrgSettings::builder()
                .high_assurance_operation(op.clone())
                .build()
                .map_err(|e| {
                    self.err(
                        &format!("org.high_assurance_operations[{i}]"),
                        e.to_string(),
                    )
                })?;
            builder = builder.high_assurance_operation(op.clone());
        }
        builder.build().map_err(|e| self.core_error("org", &e))
    }

    /// A core builder error, located at the scenario key that carries the core's field.
    fn core_error(&self, prefix: &str, error: &sessionward_core::Error) -> ScenarioError {
        let message = error.to_string();
        let core_field = message.split(':').next().unwrap_or_default();
        let key = match core_field {
            "inactivity_timeout" => "inactivity_timeout_minutes",
            "session_timeout" => "session_timeout_minutes",
            "max_session_length" => "max_session_length_minutes",
            "max_sessions_per_user" => "max_sessions_per_user",
            "profile" => "name",
            other => other,
        };
        self.err(&format!("{prefix}.{key}"), message)
    }

    fn pools(&self, raw: &[file::PoolFile]) -> Checked<Vec<Pool>> {
        let mut pools: Vec<Pool> = Vec::new();
        for (i, pool) in raw.iter().enumerate() {
            let path = format!("pools[{i}]");
            if pool.name.trim().is_empty() || pools.iter().any(|p| p.name == pool.name) {
                return Err(self.err(
                    &format!("{path}.name"),
                    format!("{:?} is empty or names another pool too", pool.name),
                ));
            }
            if pool.ranges.is_empty() {
                return Err(self.err(
                    &format!("{path}.ranges"),
                    "a pool needs at least one CIDR range",
                ));
            }
            pools.push(Pool {
                name: pool.name.clone(),
                ranges: self.cidrs(&format!("{path}.ranges"), "ranges", &pool.ranges)?,
                roam_per_hour: self.rate(
                    &format!("{path}.roam_per_hour"),
                    pool.roam_per_hour,
                    60.0,
                )?,
            });
        }
        Ok(pools)
    }

    fn profiles(&self, raw: &[file::ProfileFile], pools: &[Pool]) -> Checked<Vec<ProfileSpec>> {
        if raw.is_empty() {
            return Err(self.err("profiles", "the scenario needs at least one profile"));
        }
        let mut specs: Vec<ProfileSpec> = Vec::new();
        let mut total = 0_u64;
        for (i, p) in raw.iter().enumerate() {
            let path = format!("profiles[{i}]");
            if specs.iter().any(|s| s.profile.name() == p.name) {
                return Err(self.err(
                    &format!("{path}.name"),
                    format!("{:?} names another profile too", p.name),
                ));
            }
            if p.name.len() > MAX_PROFILE_NAME {
                return Err(self.err(
                    &format!("{path}.name"),
                    format!("longer than {MAX_PROFILE_NAME} bytes"),
                ));
            }
            let mut builder = Profile::builder(p.name.clone()).login_ranges(self.cidrs(
                &format!("{path}.login_ranges"),
                "login_ranges",
                &p.login_ranges,
            )?);
            if let Some(m) = p.session_timeout_minutes {
                builder = builder.session_timeout(minutes(m));
            }
            if let Some(m) = p.max_session_length_minutes {
                builder = builder.max_session_length(minutes(m));
            }
            if let Some(l) = p.required_level {
                builder = builder.required_level(level(l));
            }
            match (p.max_sessions_per_user, p.cap_action) {
                (Some(max), action) => {
                    let action = match action.unwrap_or(CapActionFile::EndOldest) {
                        CapActionFile::EndOldest => CapAction::EndOldest,
                        CapActionFile::RefuseNew => CapAction::RefuseNew,
                    };
                    builder = builder.session_cap(max, action);
                }
                (None, Some(_)) => {
                    return Err(self.err(
                        &format!("{path}.cap_action"),
                        "cap_action needs max_sessions_per_user",
                    ));
                }
                (None, None) => {}
            }
            let profile = builder.build().map_err(|e| self.core_error(&path, &e))?;
            let mut weights = Vec::new();
            for (name, &weight) in &p.pools {
                let at = format!("{path}.pools.{name}");
                let index = pools
                    .iter()
                    .position(|pool| &pool.name == name)
                    .ok_or_else(|| self.err(&at, format!("no pool named {name:?}")))?;
                let weight = self.rate(&at, weight, 1e9)?;
                if weight > 0.0 {
                    weights.push((index, weight));
                }
            }
            if !p.integration && p.users > 0 && weights.is_empty() {
                return Err(self.err(
                    &format!("{path}.pools"),
                    "interactive users need at least one address pool with a weight above 0",
                ));
            }
            total += u64::from(p.users);
            if total > MAX_USERS {
                return Err(self.err(
                    &format!("{path}.users"),
                    format!("more than {MAX_USERS} users in all"),
                ));
            }
            specs.push(ProfileSpec {
                profile,
                users: p.users,
                integration: p.integration,
                login_method: p.login_method.map_or(LoginMethod::Password, method),
                pools: weights,
            });
        }
        Ok(specs)
    }

    fn workday(&self, raw: &file::WorkdayFile, hours: usize, day_minutes: u32) -> Checked<Workday> {
        let lunch_length = raw.lunch_length_minutes.unwrap_or([30, 60]);
        if lunch_length[0] > lunch_length[1] {
            return Err(self.err(
                "workday.lunch_length_minutes",
                format!(
                    "[{}, {}] is not a [shortest, longest] pair",
                    lunch_length[0], lunch_length[1]
                ),
            ));
        }
        if let Some(m) = raw.lunch_minute {
            if m >= day_minutes {
                return Err(self.err(
                    "workday.lunch_minute",
                    format!("{m} is not within the day (0..{day_minutes})"),
                ));
            }
        }
        let sensitive_share = self.share("workday.sensitive_share", raw.sensitive_share)?;
        if sensitive_share > 0.0 && raw.sensitive_operations.is_empty() {
            return Err(self.err(
                "workday.sensitive_operations",
                "name at least one operation when sensitive_share is above 0",
            ));
        }
        for (i, op) in raw.sensitive_operations.iter().enumerate() {
            if op.is_empty() || op.len() > 256 || op.chars().any(char::is_control) {
                return Err(self.err(
                    &format!("workday.sensitive_operations[{i}]"),
                    format!("{op:?} is not an operation name"),
                ));
            }
        }
        Ok(Workday {
            arrival_weights: self.weights(
                "workday.arrival_weights",
                &raw.arrival_weights,
                hours,
                true,
            )?,
            departure_weights: self.weights(
                "workday.departure_weights",
                &raw.departure_weights,
                hours,
                true,
            )?,
            activity_weights: self.weights(
                "workday.activity_weights",
                &raw.activity_weights,
                hours,
                true,
            )?,
            requests_per_minute: self.rate(
                "workday.requests_per_active_user_per_minute",
                raw.requests_per_active_user_per_minute,
                600.0,
            )?,
            sensitive_share,
            sensitive_operations: raw.sensitive_operations.clone(),
            absent_share: self.share("workday.absent_share", raw.absent_share)?,
            lunch_minute: raw.lunch_minute,
            lunch_spread_minutes: raw.lunch_spread_minutes,
            lunch_length_minutes: lunch_length,
            logout_share: self.share("workday.logout_share", raw.logout_share)?,
            browser_close_share: self
                .share("workday.browser_close_share", raw.browser_close_share)?,
            remember_device_share: self
                .share("workday.remember_device_share", raw.remember_device_share)?,
        })
        .and_then(|w| {
            if w.logout_share + w.browser_close_share > 1.0 {
                Err(self.err(
                    "workday.browser_close_share",
                    "logout_share + browser_close_share is above 1",
                ))
            } else {
                Ok(w)
            }
        })
    }

    fn admin_actions(
        &self,
        raw: &ScenarioFile,
        org: &OrgSettings,
        profiles: &[ProfileSpec],
    ) -> Checked<Vec<(u32, AdminAction)>> {
        let mut order: Vec<usize> = (0..raw.admin_actions.len()).collect();
        order.sort_by_key(|&i| raw.admin_actions[i].minute);
        // Tightenings build on the policy of the moment: apply them in time order.
        let mut current_org = org.clone();
        let mut current: Vec<Profile> = profiles.iter().map(|s| s.profile.clone()).collect();
        let mut actions = Vec::new();
        for i in order {
            let a = &raw.admin_actions[i];
            let path = format!("admin_actions[{i}]");
            if a.minute >= raw.minutes {
                return Err(self.err(
                    &format!("{path}.minute"),
                    format!("{} is not within the day (0..{})", a.minute, raw.minutes),
                ));
            }
            let count = || {
                a.count.ok_or_else(|| {
                    self.err(
                        &format!("{path}.count"),
                        format!("{:?} needs a count", a.action),
                    )
                })
            };
            let profile_index = || -> Checked<usize> {
                let name = a.profile.as_deref().ok_or_else(|| {
                    self.err(&format!("{path}.profile"), "this action needs a profile")
                })?;
                profiles
                    .iter()
                    .position(|s| s.profile.name() == name)
                    .ok_or_else(|| {
                        self.err(
                            &format!("{path}.profile"),
                            format!("no profile named {name:?}"),
                        )
                    })
            };
            let action = match a.action {
                ActionKind::EndSessions => AdminAction::EndSessions(count()?),
                ActionKind::EndUserSessions => AdminAction::EndUserSessions(count()?),
                ActionKind::ResetPasswords => AdminAction::ResetPasswords(count()?),
                ActionKind::EndProfile => AdminAction::EndProfile(profile_index()?),
                ActionKind::EndAll => AdminAction::EndAll,
                ActionKind::EndRange => {
                    let text = a.range.as_deref().ok_or_else(|| {
                        self.err(&format!("{path}.range"), "end_range needs a range")
                    })?;
                    let checked = parse_cidr("range", text)
                        .map_err(|e| self.err(&format!("{path}.range"), e.to_string()))?;
                    // Kept as written, so that an IPv4-mapped spelling (`::ffff:10.0.0.0/104`)
                    // reaches the engine as such: the day checks that it ends the sessions of
                    // the IPv4 range. The core's parser above has accepted the text.
                    let as_written = text
                        .trim()
                        .parse::<IpNet>()
                        .map_or(checked, |net| net.trunc());
                    AdminAction::EndRange(as_written)
                }
                ActionKind::TightenProfile => {
                    let index = profile_index()?;
                    let mut builder = current[index].to_builder();
                    if let Some(m) = a.session_timeout_minutes {
                        builder = builder.session_timeout(minutes(m));
                    }
                    if let Some(m) = a.max_session_length_minutes {
                        builder = builder.max_session_length(minutes(m));
                    }
                    if let Some(ranges) = &a.login_ranges {
                        builder = builder.login_ranges(self.cidrs(
                            &format!("{path}.login_ranges"),
                            "login_ranges",
                            ranges,
                        )?);
                    }
                    if a.session_timeout_minutes.is_none()
                        && a.max_session_length_minutes.is_none()
                        && a.login_ranges.is_none()
                    {
                        return Err(self.err(&path, "tighten_profile needs session_timeout_minutes, max_session_length_minutes or login_ranges"));
                    }
                    let profile = builder.build().map_err(|e| self.core_error(&path, &e))?;
                    current[index] = profile.clone();
                    AdminAction::TightenProfile {
                        index,
                        profile,
                        end_existing: a.end_existing,
                    }
                }
                ActionKind::TightenOrg => {
                    let mut builder = current_org.to_builder();
                    if let Some(m) = a.inactivity_timeout_minutes {
                        builder = builder.inactivity_timeout(minutes(m));
                    }
                    if let Some(m) = a.max_session_length_minutes {
                        builder = builder.max_session_length(minutes(m));
                    }
                    if let Some(ops) = &a.high_assurance_operations {
                        builder = builder.clear_high_assurance_operations();
                        for op in ops {
                            builder = builder.high_assurance_operation(op.clone());
                        }
                    }
                    let settings = builder.build().map_err(|e| self.core_error(&path, &e))?;
                    current_org = settings.clone();
                    AdminAction::TightenOrg {
                        settings,
                        end_existing: a.end_existing,
                    }
                }
            };
            actions.push((a.minute, action));
        }
        Ok(actions)
    }

    fn credentials(
        &self,
        raw: &ScenarioFile,
        profiles: &[ProfileSpec],
    ) -> Checked<Vec<Credential>> {
        let mut credentials: Vec<Credential> = Vec::new();
        for (i, c) in raw.credentials.iter().enumerate() {
            let path = format!("credentials[{i}]");
            if c.name.trim().is_empty() || credentials.iter().any(|k| k.name == c.name) {
                return Err(self.err(
                    &format!("{path}.name"),
                    format!("{:?} is empty or names another credential too", c.name),
                ));
            }
            let profile = profiles
                .iter()
                .position(|s| s.profile.name() == c.profile)
                .ok_or_else(|| {
                    self.err(
                        &format!("{path}.profile"),
                        format!("no profile named {:?}", c.profile),
                    )
                })?;
            if !profiles[profile].integration {
                return Err(self.err(
                    &format!("{path}.profile"),
                    format!(
                        "profile {:?} is not an integration profile (integration = true)",
                        c.profile
                    ),
                ));
            }
            let user_in_profile =
                credentials.iter().filter(|k| k.profile == profile).count() as u32;
            if user_in_profile >= profiles[profile].users {
                return Err(self.err(
                    &format!("{path}.profile"),
                    format!(
                        "profile {:?} has {} user(s): one integration user per credential",
                        c.profile, profiles[profile].users
                    ),
                ));
            }
            self.check_scopes(&format!("{path}.scopes"), &c.scopes)?;
            if c.refresh_before_expiry_secs > 3600 {
                return Err(self.err(
                    &format!("{path}.refresh_before_expiry_secs"),
                    format!(
                        "{} is outside the allowed range 0..=3600",
                        c.refresh_before_expiry_secs
                    ),
                ));
            }
            credentials.push(Credential {
                name: c.name.clone(),
                profile,
                user_in_profile,
                scopes: c.scopes.clone(),
                refresh_before_expiry_secs: c.refresh_before_expiry_secs,
            });
        }
        Ok(credentials)
    }

    /// Scope names as the org's OAuth client registry checks them (RFC 6749 scope tokens):
    /// the engine's own check, so that registering the scenario's clients cannot fail.
    fn check_scopes(&self, path: &str, scopes: &[String]) -> Checked<()> {
        for (i, scope) in scopes.iter().enumerate() {
            OAuthClients::default()
                .register("scenario-check", "scenario-check", [scope.as_str()])
                .map_err(|e| self.err(&format!("{path}[{i}]"), e.to_string()))?;
        }
        // Then the list as a whole (at most 64 scopes per client).
        OAuthClients::default()
            .register(
                "scenario-check",
                "scenario-check",
                scopes.iter().map(String::as_str),
            )
            .map(drop)
            .map_err(|e| self.err(path, e.to_string()))
    }

    fn jobs(&self, raw: &ScenarioFile, credentials: &[Credential]) -> Checked<Vec<Job>> {
        raw.jobs
            .iter()
            .enumerate()
            .map(|(i, j)| {
                let path = format!("jobs[{i}]");
                let credential = credentials
                    .iter()
                    .position(|c| c.name == j.credential)
                    .ok_or_else(|| {
                        self.err(
                            &format!("{path}.credential"),
                            format!("no credential named {:?}", j.credential),
                        )
                    })?;
                if j.every_minutes == 0 {
                    return Err(self.err(
                        &format!("{path}.every_minutes"),
                        "0 is outside the allowed range 1..",
                    ));
                }
                if j.first_minute >= raw.minutes {
                    return Err(self.err(
                        &format!("{path}.first_minute"),
                        format!(
                            "{} is not within the day (0..{})",
                            j.first_minute, raw.minutes
                        ),
                    ));
                }
                if j.calls > 100_000 {
                    return Err(self.err(
                        &format!("{path}.calls"),
                        format!("{} is outside the allowed range 0..=100000", j.calls),
                    ));
                }
                let checked = parse_ip(&j.runner_ip)
                    .map_err(|e| self.err(&format!("{path}.runner_ip"), e.to_string()))?;
                // Kept as written, like range ends: a runner on a dual-stack host calls from
                // its IPv4-mapped address, which the engine must read as the IPv4 one.
                let runner_ip = j.runner_ip.trim().parse().unwrap_or(checked);
                if let Some(scopes) = &j.scopes {
                    self.check_scopes(&format!("{path}.scopes"), scopes)?;
                }
                Ok(Job {
                    name: j.name.clone(),
                    credential,
                    every_minutes: j.every_minutes,
                    first_minute: j.first_minute,
                    calls: j.calls,
                    runner_ip,
                    scopes: j.scopes.clone(),
                })
            })
            .collect()
    }

    fn attackers(&self, raw: &file::AttackersFile, day_minutes: u32) -> Checked<Attackers> {
        let attackers = Attackers {
            start_minute: raw.start_minute,
            ranges: self.cidrs("attackers.ranges", "ranges", &raw.ranges)?,
            stolen_replays_per_minute: self.rate(
                "attackers.stolen_replays_per_minute",
                raw.stolen_replays_per_minute,
                100_000.0,
            )?,
            forged_per_minute: self.rate(
                "attackers.forged_per_minute",
                raw.forged_per_minute,
                100_000.0,
            )?,
            malformed_per_minute: self.rate(
                "attackers.malformed_per_minute",
                raw.malformed_per_minute,
                100_000.0,
            )?,
            client_secret_guesses_per_minute: self.rate(
                "attackers.client_secret_guesses_per_minute",
                raw.client_secret_guesses_per_minute,
                100_000.0,
            )?,
        };
        let from_ranges = attackers.stolen_replays_per_minute
            + attackers.forged_per_minute
            + attackers.malformed_per_minute
            > 0.0;
        // Secret guesses come from the jobs' runner addresses, not the attacker ranges.
        let active = from_ranges || attackers.client_secret_guesses_per_minute > 0.0;
        if from_ranges && attackers.ranges.is_empty() {
            return Err(self.err(
                "attackers.ranges",
                "attackers need at least one CIDR range to come from",
            ));
        }
        if active && raw.start_minute >= day_minutes {
            return Err(self.err(
                "attackers.start_minute",
                format!(
                    "{} is not within the day (0..{day_minutes})",
                    raw.start_minute
                ),
            ));
        }
        Ok(attackers)
    }

    fn bench(&self, raw: &file::BenchFile) -> Checked<BenchSettings> {
        if !raw.closed_loop_secs.is_finite()
            || raw.closed_loop_secs <= 0.0
            || raw.closed_loop_secs > 600.0
        {
            return Err(self.err(
                "bench.closed_loop_secs",
                format!(
                    "{} is outside the allowed range (0, 600]",
                    raw.closed_loop_secs
                ),
            ));
        }
        if raw.closed_loop_sessions == 0 || raw.closed_loop_sessions > 10_000_000 {
            return Err(self.err(
                "bench.closed_loop_sessions",
                format!(
                    "{} is outside the allowed range 1..=10000000",
                    raw.closed_loop_sessions
                ),
            ));
        }
        for (i, &t) in raw.threads.iter().enumerate() {
            if !(1..=1024).contains(&t) {
                return Err(self.err(
                    &format!("bench.threads[{i}]"),
                    format!("{t} is outside the allowed range 1..=1024"),
                ));
            }
        }
        if raw.memory_sessions > 10_000_000 {
            return Err(self.err(
                "bench.memory_sessions",
                format!(
                    "{} is outside the allowed range 0..=10000000",
                    raw.memory_sessions
                ),
            ));
        }
        Ok(BenchSettings {
            closed_loop_secs: raw.closed_loop_secs,
            closed_loop_sessions: raw.closed_loop_sessions,
            threads: raw.threads.clone(),
            memory_sessions: raw.memory_sessions,
        })
    }
}
