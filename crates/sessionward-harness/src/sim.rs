//! The simulated day: an org's users, admins, jobs and attackers against one engine on a
//! manual clock, every outcome checked against the harness's own model.
//!
//! # How a day runs
//!
//! Every user gets a plan from the seeded random stream (arrival from the morning storm
//! weights, departure from the evening tail weights, a lunch break, an address pool). Actions
//! (requests, challenge completions, departures, admin actions, job runs, attacks) sit in a
//! calendar queue, one bucket per simulated second, run in the order they were scheduled; the
//! clock is set to each action's second before it runs. Nothing depends on hash-map order or on the engine's random tokens, so a seed
//! replays the same day.
//!
//! # What is checked
//!
//! Before every engine call the model predicts the outcome: the refusal code or success, and
//! on success the session's `valid_until` and level; for logins the whole snapshot (type,
//! level, idle timeout, absolute deadline, IP lock, browser binding, origin). After every
//! minute it compares the number of live sessions with [`Engine::stats`] and the audit events
//! the engine emitted with the ones its answers imply. Every mismatch is a [`Disagreement`].
//!
//! Some calls present an IPv4 address in its IPv4-mapped IPv6 form (`::ffff:a.b.c.d`), and a
//! scenario may spell a range end that way: the model reads them as the IPv4 address or range,
//! as the engine documents, so a canonicalisation slip in the engine shows as a disagreement.

mod forge;
mod jobs;
mod model;
mod rng;
mod run;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sessionward_core::{
    DenyReason, EndReason, Engine, Error, Event, EventKind, GrantError, LoginMethod, LoginOutcome,
    LoginRequest, ManualClock, Refusal, Requirement, SecurityLevel, SessionInfo, SessionType,
    Token,
};

use crate::scenario::AdminAction;
use crate::{
    AttackStats, Checks, Disagreement, LatencyRecorder, MinuteStats, ProgressBar, Scenario,
    SimulatedDay, Totals, WallStats,
};
use jobs::CredentialCache;
use model::{Expect, GrantExpect, LoginExpect, Model, ModelClient, Outcome, SessionId, Snapshot};
use rng::SimRng;
pub use run::{run, RunOptions};

/// How long the engine keeps tombstones of ended and expired sessions: the engine's maximum,
/// longer than any simulated day. With a shorter retention a refusal past it may say
/// `unknown` or the tombstone's reason depending on whether an opportunistic sweep (whose timing
/// depends on which shard each random token lands in) reached the record yet; the model admits
/// both, but the report's refusal counts would then differ between runs of one seed.
const TOMBSTONE_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// Options of a simulated day that are not part of the scenario.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Time one validation in this many (0 times none).
    pub latency_sample_every: u32,
    /// Most disagreements kept in the report (all are counted).
    pub disagreement_cap: usize,
    /// For tests of the harness itself: make the model believe something false about the
    /// policy, to prove that the checks catch a wrong expectation.
    pub model_skew: Option<ModelSkew>,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            progress: false,
            latency_sample_every: 16,
            disagreement_cap: 100,
            model_skew: None,
        }
    }
}

/// A false belief planted in the model (tests only): the engine runs the scenario as written,
/// the model expects something else, and the day must report disagreements.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModelSkew {
    /// The model believes this profile's inactivity timeout is `minutes`.
    SessionTimeoutMinutes {
        /// The profile's name.
        profile: String,
        /// The inactivity timeout the model wrongly believes in (15..=1440).
        minutes: u64,
    },
    /// The model believes an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) is another address
    /// than its IPv4 form, and a mapped range another range: what an engine that forgot to
    /// canonicalise would do.
    MappedAddressesAreIpv6,
}

/// What a simulated day produced: the report's day, totals, checks, latency and wall time.
#[derive(Debug, Clone)]
pub struct DayResult {
    /// Minute-by-minute figures.
    pub simulated: SimulatedDay,
    /// Counts over the day.
    pub totals: Totals,
    /// Agreement between the engine and the model.
    pub checks: Checks,
    /// Sampled latencies of single validations.
    pub latency: LatencyRecorder,
    /// Wall-clock cost of the day.
    pub wall: WallStats,
    /// Sessions alive when the day ended.
    pub live_sessions_at_end: u64,
}

/// Simulates the scenario's day.
///
/// # Errors
///
/// An engine error while setting up the org (profiles, users); a checked [`Scenario`] does not
/// cause one.
///
/// # Examples
///
/// ```
/// use sessionward_harness::{simulate_day, Scenario, SimOptions};
///
/// let day = simulate_day(&Scenario::ci(), &SimOptions::default())?;
/// assert_eq!(day.checks.disagreement_count, 0);
/// assert_eq!(day.simulated.minutes.len(), 120);
/// # Ok::<(), sessionward_core::Error>(())
/// ```
pub fn simulate_day(scenario: &Scenario, options: &SimOptions) -> Result<DayResult, Error> {
    let mut sim = Sim::new(scenario, options)?;
    let started = Instant::now();
    sim.run();
    let secs = started.elapsed().as_secs_f64();
    let per_sec = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    let wall = WallStats {
        simulation_secs: secs,
        validations_per_sec: per_sec(sim.totals.validations),
        logins_per_sec: per_sec(sim.totals.logins),
    };
    let live_sessions_at_end = sim
        .simulated
        .minutes
        .last()
        .map_or(0, |m| m.active_sessions);
    Ok(DayResult {
        simulated: sim.simulated,
        totals: sim.totals,
        checks: sim.checks,
        latency: sim.latency,
        wall,
        live_sessions_at_end,
    })
}

/// Something that happens at a given second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Request(u32),
    Depart(u32),
    CompleteChallenge(u32),
    Admin(u32),
    Job(u32),
    Attack(u8),
}

const ATTACK_STOLEN: u8 = 0;
const ATTACK_FORGED: u8 = 1;
const ATTACK_MALFORMED: u8 = 2;
const ATTACK_CLIENT_SECRET: u8 = 3;

/// Share of IPv4 calls (requests, logins, job runs, attacks) presented in the IPv4-mapped IPv6
/// form (`::ffff:a.b.c.d`), as a dual-stack proxy or listener hands them over: the engine must
/// treat them as the IPv4 address, and the day checks that it does.
const MAPPED_SHARE: f64 = 0.05;

/// Who made a call, for disagreement texts.
#[derive(Clone, Copy, Debug)]
enum Who {
    User(u32),
    Job(u32),
    Attacker(&'static str),
}

struct User {
    id: String,
    profile: usize,
    pool: usize,
    ip: IpAddr,
    last_roam: u64,
    device: String,
    remembers: bool,
    session: Option<SessionId>,
    challenge_pending: bool,
    /// Seconds after the day's start.
    depart: u64,
    lunch: Option<(u64, u64)>,
    gone: bool,
}

struct PendingChallenge {
    user: u32,
    secret: Token,
    ip: IpAddr,
    method: LoginMethod,
    session_type: SessionType,
    device: bool,
    remember: bool,
    expires_at: u64,
}

/// Results of a login as the simulation reacts to them.
enum LoginResult {
    Issued(SessionId),
    Challenge,
    StepUp,
    Denied(DenyReason),
    Failed,
}

#[derive(Default)]
struct MinuteCounters {
    logins: u64,
    validations: u64,
    refusals: BTreeMap<String, u64>,
}

struct Sim<'a> {
    scenario: &'a Scenario,
    options: &'a SimOptions,
    engine: Engine,
    clock: ManualClock,
    rng: SimRng,
    model: Model,
    users: Vec<User>,
    /// One bucket of actions per second of the day, in the order they were scheduled.
    queue: Vec<Vec<Action>>,
    challenges: Vec<Option<PendingChallenge>>,
    credentials: Vec<CredentialCache>,
    /// Sessions that may be live (pruned every minute), in creation order.
    live: Vec<SessionId>,
    observed_events: Arc<Mutex<BTreeMap<String, u64>>>,
    expected_events: BTreeMap<String, u64>,
    day_start: u64,
    minute: u32,
    counters: MinuteCounters,
    simulated: SimulatedDay,
    totals: Totals,
    checks: Checks,
    latency: LatencyRecorder,
    validations_done: u64,
}

impl<'a> Sim<'a> {
    fn new(scenario: &'a Scenario, options: &'a SimOptions) -> Result<Self, Error> {
        let day_start = scenario.start_unix;
        let clock = ManualClock::new(day_start);
        let engine = Engine::builder()
            .settings(scenario.org.clone())
            .clock(Arc::new(clock.clone()))
            .tombstone_retention(TOMBSTONE_RETENTION)
            .event_capacity(0)
            .build()?;
        let observed_events: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
        let sink = Arc::clone(&observed_events);
        engine.subscribe(Arc::new(move |event: &Event| {
            let key = match event.kind {
                EventKind::Ended(reason) => format!("ended_{}", reason.as_str()),
                // Expiry events come from validations or from opportunistic sweeps, whose
                // timing depends on the shards the random tokens land in: not compared.
                EventKind::Expired(_) => return,
                other => other.code().to_owned(),
            };
            if let Ok(mut counts) = sink.lock() {
                *counts.entry(key).or_default() += 1;
            }
        }));

        let mut model_profiles = Vec::new();
        for spec in &scenario.profiles {
            engine.add_profile(spec.profile.clone())?;
            let mut believed = spec.profile.clone();
            if let Some(ModelSkew::SessionTimeoutMinutes { profile, minutes }) = &options.model_skew
            {
                if profile == spec.profile.name() {
                    believed = believed
                        .to_builder()
                        .session_timeout(Duration::from_secs(minutes.saturating_mul(60)))
                        .build()?;
                }
            }
            model_profiles.push(believed);
        }

        let mut rng = SimRng::new(scenario.seed);
        let workday = &scenario.workday;
        let day_len = u64::from(scenario.minutes) * 60;
        let mut users = Vec::new();
        let mut user_profile = Vec::new();
        for (profile_index, spec) in scenario.profiles.iter().enumerate() {
            for i in 0..spec.users {
                let id = format!("{}-{i:05}", spec.profile.name());
                engine.add_user(&id, spec.profile.name())?;
                let global = users.len();
                let mut user = User {
                    id,
                    profile: profile_index,
                    pool: 0,
                    ip: IpAddr::from([0, 0, 0, 0]),
                    last_roam: 0,
                    device: format!("device-{global:07}"),
                    remembers: false,
                    session: None,
                    challenge_pending: false,
                    depart: u64::MAX,
                    lunch: None,
                    gone: true,
                };
                if !spec.integration && !rng.chance(workday.absent_share) {
                    let weights: Vec<f64> = spec.pools.iter().map(|&(_, w)| w).collect();
                    user.pool = spec.pools[rng.weighted(&weights)].0;
                    user.ip = rng.address_in(&scenario.pools[user.pool].ranges);
                    user.remembers = rng.chance(workday.remember_device_share);
                    let arrive =
                        (rng.weighted(&workday.arrival_weights) as u64) * 3600 + rng.below(3600);
                    let mut depart =
                        (rng.weighted(&workday.departure_weights) as u64) * 3600 + rng.below(3600);
                    if depart < arrive + 3600 {
                        depart = arrive + 3600 + rng.below(3600);
                    }
                    user.depart = if depart < day_len { depart } else { u64::MAX };
                    if let Some(lunch) = workday.lunch_minute {
                        let spread = u64::from(workday.lunch_spread_minutes);
                        let start = (u64::from(lunch) * 60 + rng.below(2 * spread * 60 + 1))
                            .saturating_sub(spread * 60);
                        let [shortest, longest] = workday.lunch_length_minutes;
                        let length = (u64::from(shortest)
                            + rng.below(u64::from(longest - shortest) + 1))
                            * 60
                            + rng.below(60);
                        if arrive < start && start < user.depart {
                            user.lunch = Some((start, start + length));
                        }
                    }
                    if arrive < day_len {
                        user.gone = false;
                        user.last_roam = day_start + arrive;
                    }
                }
                users.push(user);
                user_profile.push(profile_index);
            }
        }
        // Every named credential is an OAuth client of the org (the engine's own registry)
        // running as its integration user; the org hands out the secret once, at
        // registration.
        let clients = engine.oauth_clients();
        let mut credentials = Vec::new();
        let mut model_clients = Vec::new();
        for c in &scenario.credentials {
            let first = scenario.profiles[..c.profile]
                .iter()
                .map(|p| p.users)
                .sum::<u32>();
            let user = first + c.user_in_profile;
            let secret = clients.register(
                &c.name,
                &users[user as usize].id,
                c.scopes.iter().map(String::as_str),
            )?;
            credentials.push(CredentialCache {
                name: c.name.clone(),
                user,
                secret,
                refresh_before_expiry_secs: c.refresh_before_expiry_secs,
                cached: None,
            });
            model_clients.push(ModelClient {
                user,
                scopes: c.scopes.iter().cloned().collect(),
            });
        }
        let user_count = users.len();
        let model = Model {
            settings: scenario.org.clone(),
            profiles: model_profiles,
            sessions: Vec::new(),
            user_profile,
            user_sessions: vec![Vec::new(); user_count],
            remembered_device: vec![false; user_count],
            password_reset_at: vec![None; user_count],
            retention: TOMBSTONE_RETENTION.as_secs(),
            mapped_is_ipv4: options.model_skew != Some(ModelSkew::MappedAddressesAreIpv6),
            clients: model_clients,
        };
        let mut sim = Self {
            scenario,
            options,
            engine,
            clock,
            rng,
            model,
            users,
            queue: vec![Vec::new(); (day_len + 1) as usize],
            challenges: Vec::new(),
            credentials,
            live: Vec::new(),
            observed_events,
            expected_events: BTreeMap::new(),
            day_start,
            minute: 0,
            counters: MinuteCounters::default(),
            simulated: SimulatedDay::default(),
            totals: Totals::default(),
            checks: Checks::default(),
            latency: LatencyRecorder::new(),
            validations_done: 0,
        };
        for u in 0..user_count {
            if !sim.users[u].gone {
                let arrive = sim.users[u].last_roam;
                sim.push(arrive, Action::Request(u as u32));
                if sim.users[u].depart != u64::MAX {
                    sim.push(day_start + sim.users[u].depart, Action::Depart(u as u32));
                }
            }
        }
        for (i, (minute, _)) in scenario.admin_actions.iter().enumerate() {
            sim.push(
                day_start + u64::from(*minute) * 60 + 30,
                Action::Admin(i as u32),
            );
        }
        for (i, job) in scenario.jobs.iter().enumerate() {
            let mut minute = job.first_minute;
            while minute < scenario.minutes {
                sim.push(
                    day_start + u64::from(minute) * 60 + 10 + (i as u64 % 40),
                    Action::Job(i as u32),
                );
                minute = minute.saturating_add(job.every_minutes);
            }
        }
        Ok(sim)
    }

    /// Schedules `action` at second `at`; actions past the end of the day never run.
    fn push(&mut self, at: u64, action: Action) {
        if let Some(bucket) = at
            .checked_sub(self.day_start)
            .and_then(|offset| self.queue.get_mut(offset as usize))
        {
            bucket.push(action);
        }
    }

    fn run(&mut self) {
        let scenario = self.scenario;
        let mut bar = self.options.progress.then(|| {
            ProgressBar::new(
                u64::from(scenario.minutes),
                format!("simulating {}", scenario.name),
            )
        });
        for minute in 0..scenario.minutes {
            self.minute = minute;
            let minute_start = self.day_start + u64::from(minute) * 60;
            let minute_end = minute_start + 60;
            let attackers = &scenario.attackers;
            if minute >= attackers.start_minute {
                for (kind, rate) in [
                    (ATTACK_STOLEN, attackers.stolen_replays_per_minute),
                    (ATTACK_FORGED, attackers.forged_per_minute),
                    (ATTACK_MALFORMED, attackers.malformed_per_minute),
                    (
                        ATTACK_CLIENT_SECRET,
                        attackers.client_secret_guesses_per_minute,
                    ),
                ] {
                    // Secret guesses come from a job's runner, the rest from the attacker ranges.
                    let possible = if kind == ATTACK_CLIENT_SECRET {
                        !scenario.jobs.is_empty()
                    } else {
                        !attackers.ranges.is_empty()
                    };
                    if !possible {
                        continue;
                    }
                    for _ in 0..self.rng.count(rate) {
                        let at = minute_start + self.rng.below(60);
                        self.push(at, Action::Attack(kind));
                    }
                }
            }
            for at in minute_start..minute_end {
                self.clock.set(at);
                let slot = (at - self.day_start) as usize;
                // Actions may schedule more at the same second: run until the bucket stays empty.
                loop {
                    let actions = std::mem::take(&mut self.queue[slot]);
                    if actions.is_empty() {
                        break;
                    }
                    for action in actions {
                        self.act(action, at);
                    }
                }
            }
            self.clock.set(minute_end);
            self.end_of_minute(minute_end);
            if let Some(bar) = bar.as_mut() {
                bar.set(u64::from(minute) + 1);
            }
        }
        if let Some(bar) = bar.as_mut() {
            bar.finish();
        }
    }

    fn act(&mut self, action: Action, now: u64) {
        match action {
            Action::Request(u) => self.request(u, now),
            Action::Depart(u) => self.depart(u, now),
            Action::CompleteChallenge(slot) => self.complete_challenge(slot, now),
            Action::Admin(i) => self.admin(i as usize, now),
            Action::Job(i) => self.job(i as usize, now),
            Action::Attack(kind) => self.attack(kind, now),
        }
    }

    // ----- checks -------------------------------------------------------------------------------

    fn agree(&mut self) {
        self.checks.expected_outcomes += 1;
        self.checks.agreed += 1;
    }

    fn disagree(&mut self, what: String, expected: String, observed: String) {
        self.checks.expected_outcomes += 1;
        let minute = self.minute;
        self.checks.record_disagreement(
            Disagreement {
                minute,
                what,
                expected,
                observed,
            },
            self.options.disagreement_cap,
        );
    }

    fn who(&self, who: Who) -> String {
        match who {
            Who::User(u) => format!("user {}", self.users[u as usize].id),
            Who::Job(j) => format!("job {}", self.scenario.jobs[j as usize].name),
            Who::Attacker(kind) => format!("attacker ({kind})"),
        }
    }

    fn end_of_minute(&mut self, minute_end: u64) {
        let model = &self.model;
        self.live
            .retain(|&id| model.sessions[id as usize].live_at(minute_end));
        let expected_live = self.live.len() as u64;
        let observed_live = self.engine.stats().live as u64;
        if expected_live == observed_live {
            self.agree();
        } else {
            self.disagree(
                "live sessions at the end of the minute (Engine::stats)".into(),
                expected_live.to_string(),
                observed_live.to_string(),
            );
        }
        let observed = std::mem::take(
            &mut *self
                .observed_events
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        let expected = std::mem::take(&mut self.expected_events);
        if observed == expected {
            self.agree();
        } else {
            let show = |map: &BTreeMap<String, u64>| {
                map.iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            self.disagree(
                "audit events of the minute".into(),
                show(&expected),
                show(&observed),
            );
        }
        let counters = std::mem::take(&mut self.counters);
        self.simulated.minutes.push(MinuteStats {
            minute: self.minute,
            active_sessions: expected_live,
            logins: counters.logins,
            validations: counters.validations,
            refusals: counters.refusals,
        });
    }

    fn expect_event(&mut self, key: &str, n: u64) {
        if n > 0 {
            *self.expected_events.entry(key.to_owned()).or_default() += n;
        }
    }

    fn count_validation(&mut self, observed: &Outcome) {
        self.counters.validations += 1;
        self.totals.validations += 1;
        if let Outcome::Refused(refusal) = observed {
            let code = refusal.code();
            *self.counters.refusals.entry(code.to_owned()).or_default() += 1;
            *self.totals.refusals.entry(code.to_owned()).or_default() += 1;
            match refusal {
                Refusal::IpMismatch => self.expect_event("ip_mismatch", 1),
                Refusal::IpNotAllowed => self.expect_event("ip_not_allowed", 1),
                Refusal::StepUpRequired { .. } => self.expect_event("step_up_required", 1),
                _ => {}
            }
        }
    }

    /// Counts a login attempt that gave neither a session nor a challenge. Kept apart from
    /// refused validations: each is reported as a share of its own kind of call.
    fn count_login_refusal(&mut self, code: String) {
        *self.totals.login_refusals.entry(code).or_default() += 1;
    }

    // ----- validations --------------------------------------------------------------------------

    /// Calls `Engine::validate` with `token`, timing one call in `latency_sample_every`.
    fn engine_validate(
        &mut self,
        token: &str,
        ip: IpAddr,
        requirement: Requirement<'_>,
    ) -> Outcome {
        timed_validate(
            &self.engine,
            &mut self.latency,
            &mut self.validations_done,
            u64::from(self.options.latency_sample_every),
            (token, ip, requirement),
        )
    }

    /// Validates a session of the model and checks the outcome.
    fn validate(
        &mut self,
        id: SessionId,
        ip: IpAddr,
        requirement: Requirement<'_>,
        now: u64,
        who: Who,
    ) -> Outcome {
        let expect = self.model.expect_validate(id, now, ip, requirement, None);
        let observed = timed_validate(
            &self.engine,
            &mut self.latency,
            &mut self.validations_done,
            u64::from(self.options.latency_sample_every),
            (
                self.model.sessions[id as usize].token.expose_secret(),
                ip,
                requirement,
            ),
        );
        self.judge(
            &expect,
            &observed,
            || format!("validate {requirement:?} from {ip}"),
            who,
            now,
        );
        if matches!(observed, Outcome::Ok { .. }) {
            self.model.touch(id, now, None);
        }
        self.count_validation(&observed);
        observed
    }

    /// Validates a text that is no session of the model (guesses, malformed input).
    fn validate_text(
        &mut self,
        token: &str,
        ip: IpAddr,
        expected: Refusal,
        now: u64,
        who: Who,
    ) -> Outcome {
        let expect = Expect {
            outcome: Outcome::Refused(expected),
            or_else: None,
        };
        let observed = self.engine_validate(token, ip, Requirement::Any);
        self.judge(
            &expect,
            &observed,
            || format!("validate Any from {ip}"),
            who,
            now,
        );
        self.count_validation(&observed);
        observed
    }

    fn judge(
        &mut self,
        expect: &Expect,
        observed: &Outcome,
        call: impl FnOnce() -> String,
        who: Who,
        _now: u64,
    ) {
        if expect.admits(observed) {
            self.agree();
        } else {
            let what = format!("{} ({})", call(), self.who(who));
            self.disagree(
                what,
                expect.describe(self.day_start),
                observed.describe(self.day_start),
            );
        }
    }

    fn step_up(&mut self, id: SessionId, ip: IpAddr, now: u64, who: Who) -> Outcome {
        let raised = model::level_of(LoginMethod::Mfa);
        let expect = self
            .model
            .expect_validate(id, now, ip, Requirement::Any, Some(raised));
        let before = self.model.sessions[id as usize].level;
        let token = self.model.sessions[id as usize].token.clone();
        let observed = Outcome::of(&self.engine.step_up(
            token.expose_secret(),
            ip,
            LoginMethod::Mfa,
        ));
        self.judge(
            &expect,
            &observed,
            || format!("step_up mfa from {ip}"),
            who,
            now,
        );
        if let Outcome::Ok { level, .. } = observed {
            self.model.touch(id, now, Some(raised));
            self.totals.step_ups += 1;
            if level > before {
                self.expect_event("stepped_up", 1);
            }
        }
        self.count_validation(&observed);
        observed
    }

    // ----- logins -------------------------------------------------------------------------------

    fn describe_login(&self, expect: &LoginExpect) -> String {
        match expect {
            LoginExpect::Issued(snapshot) => snapshot.describe(self.day_start),
            LoginExpect::Challenge { expires_at } => format!(
                "challenge (expires t+{}s)",
                expires_at.saturating_sub(self.day_start)
            ),
            LoginExpect::StepUp { required, offered } => {
                format!("step-up outcome (needs {required}, offered {offered})")
            }
            LoginExpect::Denied(reason) => format!("denied ({reason})"),
        }
    }

    fn login(
        &mut self,
        u: u32,
        ip: IpAddr,
        method: LoginMethod,
        session_type: SessionType,
        now: u64,
        who: Who,
    ) -> LoginResult {
        let with_device = session_type == SessionType::Ui;
        let expected = self
            .model
            .expect_login(u, ip, method, session_type, with_device, now);
        let user = &self.users[u as usize];
        let mut request = LoginRequest::new(&user.id, ip)
            .method(method)
            .session_type(session_type);
        if with_device {
            request = request.device(&user.device);
        }
        let outcome = self.engine.login(&request);
        let remember = self.users[u as usize].remembers;
        let call = format!("login {method} from {ip}");
        self.settle_login(
            u,
            outcome,
            &expected,
            now,
            (call, who),
            |secret, expires_at| PendingChallenge {
                user: u,
                secret,
                ip,
                method,
                session_type,
                device: with_device,
                remember,
                expires_at,
            },
        )
    }

    /// Checks a login's (or challenge completion's) outcome and applies it.
    fn settle_login(
        &mut self,
        u: u32,
        outcome: Result<LoginOutcome, Error>,
        expected: &LoginExpect,
        now: u64,
        (call, who): (String, Who),
        pending: impl FnOnce(Token, u64) -> PendingChallenge,
    ) -> LoginResult {
        let what = || call.clone();
        self.totals.login_attempts += 1;
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(err) => {
                let what = format!("{} ({})", what(), self.who(who));
                let expected = self.describe_login(expected);
                self.disagree(what, expected, format!("error: {err}"));
                return LoginResult::Failed;
            }
        };
        let (observed, result) = match outcome {
            LoginOutcome::Issued(issued) => {
                let observed = Snapshot::of_info(&issued.session, now).map_or_else(
                    || "issued with inconsistent times".to_owned(),
                    |s| s.describe(self.day_start),
                );
                let snapshot = match expected {
                    LoginExpect::Issued(snapshot) => Some(snapshot),
                    _ => None,
                };
                let id = self.record_issued(u, issued.token, &issued.session, snapshot, now);
                (observed, LoginResult::Issued(id))
            }
            LoginOutcome::ChallengeRequired(challenge) => {
                let observed = self.describe_login(&LoginExpect::Challenge {
                    expires_at: challenge.expires_at,
                });
                self.totals.challenges += 1;
                self.expect_event("challenge_issued", 1);
                let pending = pending(challenge.secret, challenge.expires_at);
                // Most users answer within a minute; a few are slow and miss the deadline.
                let delay = if self.rng.chance(0.02) {
                    600 + self.rng.below(120)
                } else {
                    5 + self.rng.below(60)
                };
                let slot = self.challenges.len() as u32;
                self.challenges.push(Some(pending));
                self.push(now + delay, Action::CompleteChallenge(slot));
                (observed, LoginResult::Challenge)
            }
            LoginOutcome::StepUpRequired { required, offered } => {
                self.count_login_refusal("login_step_up_required".into());
                (
                    self.describe_login(&LoginExpect::StepUp { required, offered }),
                    LoginResult::StepUp,
                )
            }
            LoginOutcome::Denied(reason) => {
                self.count_login_refusal(format!("login_denied_{reason}"));
                self.expect_event("login_denied", 1);
                (
                    self.describe_login(&LoginExpect::Denied(reason)),
                    LoginResult::Denied(reason),
                )
            }
        };
        let expected_text = self.describe_login(expected);
        if observed == expected_text {
            self.agree();
        } else {
            let what = format!("{} ({})", what(), self.who(who));
            self.disagree(what, expected_text, observed);
        }
        result
    }

    /// Applies an issued session (of a login, a challenge completion or a grant) to the model
    /// and the counts: the older sessions the cap ends, the new one, its `created` event.
    fn record_issued(
        &mut self,
        u: u32,
        token: Token,
        info: &SessionInfo,
        snapshot: Option<&Snapshot>,
        now: u64,
    ) -> SessionId {
        if let Some(snapshot) = snapshot {
            let mut cap_ended = 0;
            for &old in &snapshot.cap_ends {
                cap_ended += u64::from(self.model.end(old, EndReason::SessionCap, now));
            }
            self.expect_event("ended_session_cap", cap_ended);
        }
        let id = self.model.add_session(u, token, info, snapshot, now);
        self.live.push(id);
        self.counters.logins += 1;
        self.totals.logins += 1;
        self.expect_event("created", 1);
        id
    }

    /// `OAuthClients::grant` for the named credential's client, presenting `secret` (the
    /// registered one if `right_secret`) and asking for `requested` scopes, checked against
    /// the model; the issued session if any.
    fn grant(
        &mut self,
        credential: usize,
        (secret, right_secret): (&str, bool),
        requested: Option<&[String]>,
        ip: IpAddr,
        now: u64,
        who: Who,
    ) -> Option<SessionId> {
        let expected = self
            .model
            .expect_grant(credential, right_secret, requested, ip, now);
        let user = self.model.clients[credential].user;
        let scope = requested.map(|scopes| scopes.join(" "));
        let name = self.credentials[credential].name.clone();
        let result =
            self.engine
                .oauth_clients()
                .grant(&self.engine, &name, secret, scope.as_deref(), ip);
        self.totals.login_attempts += 1;
        let (observed, issued) = match result {
            Ok(grant) => {
                let observed = Snapshot::of_info(&grant.session, now).map_or_else(
                    || "granted with inconsistent times".to_owned(),
                    |s| {
                        GrantExpect::describe_granted(
                            &grant.scopes,
                            grant.expires_in,
                            &s,
                            self.day_start,
                        )
                    },
                );
                let snapshot = match &expected {
                    GrantExpect::Granted { snapshot, .. } => Some(snapshot),
                    _ => None,
                };
                let id =
                    self.record_issued(user, grant.access_token, &grant.session, snapshot, now);
                (observed, Some(id))
            }
            Err(error) => {
                self.count_login_refusal(format!("grant_{}", error.code()));
                let observed = match &error {
                    GrantError::InvalidClient => {
                        // A wrong secret is a denied login attempt in the audit stream.
                        self.expect_event("login_denied", 1);
                        "invalid_client".to_owned()
                    }
                    GrantError::InvalidScope { scope } => format!("invalid_scope ({scope})"),
                    GrantError::Unauthorized(reason) => {
                        // The user's login ran: a denial or a challenge left an event.
                        match (reason, &expected) {
                            (
                                DenyReason::ChallengeInvalid,
                                GrantExpect::Unauthorized { challenged, .. },
                            ) => {
                                if *challenged {
                                    self.expect_event("challenge_issued", 1);
                                }
                            }
                            _ => self.expect_event("login_denied", 1),
                        }
                        format!("unauthorized_client ({reason})")
                    }
                    other => format!("error: {other}"),
                };
                (observed, None)
            }
        };
        let expected_text = expected.describe(now, self.day_start);
        if observed == expected_text {
            self.agree();
        } else {
            let what = format!(
                "grant {name}{} scope {} from {ip} ({})",
                if right_secret {
                    ""
                } else {
                    " with a wrong secret"
                },
                scope.as_deref().unwrap_or("(all)"),
                self.who(who)
            );
            self.disagree(what, expected_text, observed);
        }
        issued
    }

    fn complete_challenge(&mut self, slot: u32, now: u64) {
        let Some(pending) = self.challenges[slot as usize].take() else {
            return;
        };
        let u = pending.user;
        self.users[u as usize].challenge_pending = false;
        let expected = self.model.expect_complete(
            u,
            pending.ip,
            pending.method,
            pending.session_type,
            pending.expires_at,
            now,
        );
        if pending.remember
            && pending.device
            && !matches!(
                expected,
                LoginExpect::Denied(DenyReason::ChallengeInvalid | DenyReason::IpNotAllowed)
            )
        {
            self.model.remembered_device[u as usize] = true;
        }
        let outcome = self
            .engine
            .complete_challenge(pending.secret.expose_secret(), pending.remember);
        // A completion never answers with another challenge; if the engine did, the outcome
        // check records it and the user answers that one too.
        let again = |secret, expires_at| PendingChallenge {
            secret,
            expires_at,
            ..pending
        };
        let call = format!("complete_challenge from {}", pending.ip);
        let result = self.settle_login(u, outcome, &expected, now, (call, Who::User(u)), again);
        self.apply_user_login(u, result, now);
    }

    fn apply_user_login(&mut self, u: u32, result: LoginResult, now: u64) {
        match result {
            LoginResult::Issued(id) => self.users[u as usize].session = Some(id),
            LoginResult::Challenge => self.users[u as usize].challenge_pending = true,
            LoginResult::Denied(DenyReason::IpNotAllowed) => self.switch_pool(u, now),
            LoginResult::StepUp | LoginResult::Denied(_) | LoginResult::Failed => {}
        }
    }

    /// Refused for the address: the user connects from another of their pools.
    fn switch_pool(&mut self, u: u32, now: u64) {
        let scenario = self.scenario;
        let spec = &scenario.profiles[self.users[u as usize].profile];
        let weights: Vec<f64> = spec.pools.iter().map(|&(_, w)| w).collect();
        let pool = spec.pools[self.rng.weighted(&weights)].0;
        let user = &mut self.users[u as usize];
        user.pool = pool;
        user.ip = self.rng.address_in(&scenario.pools[pool].ranges);
        user.last_roam = now;
    }

    /// The address a call from `ip` arrives with: now and then the IPv4-mapped IPv6 form of an
    /// IPv4 address (see [`MAPPED_SHARE`]).
    fn present(&mut self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) if self.rng.chance(MAPPED_SHARE) => IpAddr::V6(v4.to_ipv6_mapped()),
            _ => ip,
        }
    }

    fn user_login(&mut self, u: u32, now: u64) {
        let method = self.scenario.profiles[self.users[u as usize].profile].login_method;
        let ip = self.present(self.users[u as usize].ip);
        let mut result = self.login(u, ip, method, SessionType::Ui, now, Who::User(u));
        if matches!(result, LoginResult::StepUp) {
            // The profile needs HIGH_ASSURANCE at login: log in again with MFA.
            result = self.login(u, ip, LoginMethod::Mfa, SessionType::Ui, now, Who::User(u));
        }
        self.apply_user_login(u, result, now);
    }

    // ----- users --------------------------------------------------------------------------------

    fn request(&mut self, u: u32, now: u64) {
        if self.users[u as usize].gone {
            return;
        }
        self.maybe_roam(u, now);
        if !self.users[u as usize].challenge_pending {
            match self.users[u as usize].session {
                None => self.user_login(u, now),
                Some(id) => self.use_session(u, id, now),
            }
        }
        self.schedule_next(u, now);
    }

    fn use_session(&mut self, u: u32, id: SessionId, now: u64) {
        let scenario = self.scenario;
        let workday = &scenario.workday;
        let requirement = if self.rng.chance(workday.sensitive_share) {
            let ops = &workday.sensitive_operations;
            Requirement::Operation(ops[self.rng.below(ops.len() as u64) as usize].as_str())
        } else {
            Requirement::Any
        };
        let ip = self.present(self.users[u as usize].ip);
        match self.validate(id, ip, requirement, now, Who::User(u)) {
            Outcome::Ok { .. } => {}
            Outcome::Refused(Refusal::StepUpRequired { .. }) => {
                if matches!(self.step_up(id, ip, now, Who::User(u)), Outcome::Ok { .. }) {
                    self.validate(id, ip, requirement, now, Who::User(u));
                }
            }
            Outcome::Refused(_) => {
                // Expired, ended or refused for the address: log in again.
                self.users[u as usize].session = None;
                self.user_login(u, now);
            }
        }
    }

    fn maybe_roam(&mut self, u: u32, now: u64) {
        let scenario = self.scenario;
        let user = &self.users[u as usize];
        let per_hour = scenario.pools[user.pool].roam_per_hour;
        if per_hour > 0.0 {
            let elapsed = now.saturating_sub(user.last_roam) as f64;
            if self.rng.chance((per_hour * elapsed / 3600.0).min(1.0)) {
                let ip = self.rng.address_in(&scenario.pools[user.pool].ranges);
                self.users[u as usize].ip = ip;
            }
        }
        self.users[u as usize].last_roam = now;
    }

    fn schedule_next(&mut self, u: u32, now: u64) {
        let workday = &self.scenario.workday;
        let offset = now - self.day_start;
        let hour = ((offset / 3600) as usize).min(workday.activity_weights.len() - 1);
        let rate = workday.requests_per_minute * workday.activity_weights[hour];
        let gap = if rate > 0.0 {
            self.rng.exponential(60.0 / rate).round().clamp(1.0, 3600.0) as u64
        } else {
            3600
        };
        let mut next = offset + gap;
        let user = &mut self.users[u as usize];
        if let Some((start, end)) = user.lunch {
            if next >= start {
                user.lunch = None;
                next = next.max(end) + self.rng.below(120);
            }
        }
        if next >= user.depart || next >= u64::from(self.scenario.minutes) * 60 {
            return;
        }
        self.push(self.day_start + next, Action::Request(u));
    }

    fn depart(&mut self, u: u32, now: u64) {
        let user = &mut self.users[u as usize];
        user.gone = true;
        let Some(id) = user.session.take() else {
            return;
        };
        let workday = &self.scenario.workday;
        let draw = self.rng.unit();
        let expect = self.model.expect_end_token(id, now);
        let token = self.model.sessions[id as usize].token.clone();
        if draw < workday.logout_share {
            let observed = match (self.engine.logout(token.expose_secret()), expect.outcome) {
                (Ok(()), ok @ Outcome::Ok { .. }) => ok,
                (Ok(()), Outcome::Refused(_)) => Outcome::Ok {
                    valid_until: 0,
                    level: SecurityLevel::Low,
                },
                (Err(refusal), _) => Outcome::Refused(refusal),
            };
            self.judge_end(&expect, &observed, "logout", u, now);
            if matches!(observed, Outcome::Ok { .. }) && self.model.end(id, EndReason::Logout, now)
            {
                self.expect_event("ended_logout", 1);
            }
        } else if draw < workday.logout_share + workday.browser_close_share {
            let bound = self.model.sessions[id as usize].browser_bound;
            let observed = self.engine.browser_closed(token.expose_secret());
            let text = |result: &Result<bool, Refusal>| match result {
                Ok(true) => "ended (browser_closed)".to_owned(),
                Ok(false) => "left alone (not browser-bound)".to_owned(),
                Err(refusal) => refusal.code().to_owned(),
            };
            let admits = match (&expect.outcome, &observed) {
                (Outcome::Ok { .. }, Ok(ended)) => *ended == bound,
                (_, Err(refusal)) => expect.admits(&Outcome::Refused(*refusal)),
                _ => false,
            };
            if admits {
                self.agree();
            } else {
                let expected_text = match expect.outcome {
                    Outcome::Ok { .. } => text(&Ok(bound)),
                    _ => expect.describe(self.day_start),
                };
                let what = format!("browser_closed ({})", self.who(Who::User(u)));
                self.disagree(what, expected_text, text(&observed));
            }
            if observed == Ok(true) && self.model.end(id, EndReason::BrowserClosed, now) {
                self.expect_event("ended_browser_closed", 1);
            }
        }
    }

    fn judge_end(
        &mut self,
        expect: &Expect,
        observed: &Outcome,
        call: &'static str,
        u: u32,
        now: u64,
    ) {
        self.judge(expect, observed, || call.to_owned(), Who::User(u), now);
    }

    // ----- admins -------------------------------------------------------------------------------

    fn live_now(&self, now: u64) -> Vec<SessionId> {
        self.live
            .iter()
            .copied()
            .filter(|&id| self.model.sessions[id as usize].live_at(now))
            .collect()
    }

    /// `n` distinct items drawn from `items` (all of them if fewer).
    fn choose<T: Copy>(&mut self, mut items: Vec<T>, n: u32) -> Vec<T> {
        let n = (n as usize).min(items.len());
        for i in 0..n {
            let j = i + self.rng.below((items.len() - i) as u64) as usize;
            items.swap(i, j);
        }
        items.truncate(n);
        items
    }

    fn users_with_sessions(&self, now: u64) -> Vec<u32> {
        let mut users: Vec<u32> = self
            .live_now(now)
            .into_iter()
            .map(|id| self.model.sessions[id as usize].user)
            .collect();
        users.sort_unstable();
        users.dedup();
        users
    }

    fn check_count(
        &mut self,
        what: String,
        expected: usize,
        observed: Result<usize, Error>,
    ) -> u64 {
        match observed {
            Ok(n) if n == expected => self.agree(),
            Ok(n) => self.disagree(what, expected.to_string(), n.to_string()),
            Err(err) => self.disagree(what, expected.to_string(), format!("error: {err}")),
        }
        expected as u64
    }

    /// Ends, in the model, every live session matching `matches`; returns their number.
    fn model_end_matching(
        &mut self,
        reason: EndReason,
        now: u64,
        matches: impl Fn(&model::ModelSession) -> bool,
    ) -> usize {
        let candidates = self.live_now(now);
        let mut ended = 0;
        for id in candidates {
            if matches(&self.model.sessions[id as usize]) && self.model.end(id, reason, now) {
                ended += 1;
            }
        }
        ended
    }

    fn admin(&mut self, index: usize, now: u64) {
        let scenario = self.scenario;
        let action = &scenario.admin_actions[index].1;
        let key = action.report_key();
        let ended: u64 = match action {
            AdminAction::EndSessions(n) => {
                let live = self.live_now(now);
                let chosen = self.choose(live, *n);
                let mut ended = 0;
                for id in chosen {
                    let handle = self.model.sessions[id as usize].handle;
                    let observed = self.engine.end_session(handle);
                    let expected = self.model.end(id, EndReason::Admin, now);
                    let what = format!("end_session {handle}");
                    self.check_count(what, usize::from(expected), Ok(usize::from(observed)));
                    ended += u64::from(observed);
                    self.expect_event("ended_admin", u64::from(observed));
                }
                ended
            }
            AdminAction::EndUserSessions(n) | AdminAction::ResetPasswords(n) => {
                let reset = matches!(action, AdminAction::ResetPasswords(_));
                let reason = if reset {
                    EndReason::PasswordReset
                } else {
                    EndReason::Admin
                };
                let candidates = self.users_with_sessions(now);
                let chosen = self.choose(candidates, *n);
                let mut ended = 0;
                for u in chosen {
                    let id = self.users[u as usize].id.clone();
                    let observed = if reset {
                        self.model.password_reset_at[u as usize] = Some(now);
                        self.engine.reset_password(&id)
                    } else {
                        self.engine.end_user_sessions(&id)
                    };
                    let expected = self.model_end_matching(reason, now, |s| s.user == u);
                    let call = if reset {
                        "reset_password"
                    } else {
                        "end_user_sessions"
                    };
                    let count = *observed.as_ref().unwrap_or(&0) as u64;
                    self.check_count(format!("{call} {id}"), expected, observed);
                    self.expect_event(&format!("ended_{}", reason.as_str()), count);
                    ended += count;
                }
                ended
            }
            AdminAction::EndProfile(p) => self.end_profile(*p, now),
            AdminAction::EndRange(net) => {
                let net = *net;
                let observed = self.engine.end_sessions_from(net);
                // The range as presented (perhaps IPv4-mapped), the model's reading of it to
                // predict which sessions end.
                let canonical = self.model.canonical_net(net);
                let expected = self.model_end_matching(EndReason::SourceRange, now, |s| {
                    canonical.contains(&s.origin)
                });
                self.check_count(format!("end_sessions_from {net}"), expected, Ok(observed));
                self.expect_event("ended_source_range", observed as u64);
                observed as u64
            }
            AdminAction::EndAll => self.end_all(now),
            AdminAction::TightenProfile {
                index,
                profile,
                end_existing,
            } => {
                if let Err(err) = self.engine.update_profile(profile.clone()) {
                    self.disagree(
                        format!("update_profile {}", profile.name()),
                        "ok".into(),
                        format!("error: {err}"),
                    );
                }
                self.model.profiles[*index] = profile.clone();
                if *end_existing {
                    self.end_profile(*index, now)
                } else {
                    0
                }
            }
            AdminAction::TightenOrg {
                settings,
                end_existing,
            } => {
                self.engine.update_settings(settings.clone());
                self.model.settings = settings.clone();
                if *end_existing {
                    self.end_all(now)
                } else {
                    0
                }
            }
        };
        if ended > 0
            || !matches!(
                action,
                AdminAction::TightenProfile { .. } | AdminAction::TightenOrg { .. }
            )
        {
            *self
                .totals
                .ended_by_admin
                .entry(key.to_owned())
                .or_default() += ended;
        }
    }

    fn end_profile(&mut self, profile: usize, now: u64) -> u64 {
        let name = self.scenario.profiles[profile].profile.name().to_owned();
        let observed = self.engine.end_profile_sessions(&name);
        let count = *observed.as_ref().unwrap_or(&0) as u64;
        let expected =
            self.model_end_matching(EndReason::ProfileWide, now, |s| s.profile == profile);
        self.check_count(format!("end_profile_sessions {name}"), expected, observed);
        self.expect_event("ended_profile_wide", count);
        count
    }

    fn end_all(&mut self, now: u64) -> u64 {
        let observed = self.engine.end_all_sessions();
        let expected = self.model_end_matching(EndReason::OrgWide, now, |_| true);
        self.check_count("end_all_sessions".into(), expected, Ok(observed));
        self.expect_event("ended_org_wide", observed as u64);
        observed as u64
    }

    // ----- jobs ---------------------------------------------------------------------------------

    fn job(&mut self, index: usize, now: u64) {
        let scenario = self.scenario;
        let job = &scenario.jobs[index];
        self.totals.jobs_run += 1;
        let ip = self.present(job.runner_ip);
        // The job's own scopes, else its credential's (none registered: ask for all it has).
        let registered = &scenario.credentials[job.credential].scopes;
        let requested = job
            .scopes
            .as_deref()
            .or_else(|| (!registered.is_empty()).then_some(registered.as_slice()));
        let who = Who::Job(index as u32);
        for _ in 0..job.calls {
            let mut retried = false;
            loop {
                let id = match self.credentials[job.credential].fresh(now) {
                    Some(id) => id,
                    None => match self.fetch_token(job.credential, requested, ip, now, who) {
                        Some(id) => id,
                        None => return,
                    },
                };
                match self.validate(id, ip, Requirement::Any, now, who) {
                    Outcome::Ok { valid_until, .. } => {
                        self.credentials[job.credential].cached = Some((id, valid_until));
                        break;
                    }
                    Outcome::Refused(_) => {
                        // Ended by an admin, say: drop the cached token and fetch a new one.
                        self.credentials[job.credential].cached = None;
                        if retried {
                            return;
                        }
                        retried = true;
                    }
                }
            }
        }
    }

    /// The OAuth 2.0 client-credentials grant of a named credential, with the org as token
    /// endpoint (`OAuthClients::grant` with the credential's secret): an OAUTH2 session of
    /// the integration user.
    fn fetch_token(
        &mut self,
        credential: usize,
        requested: Option<&[String]>,
        ip: IpAddr,
        now: u64,
        who: Who,
    ) -> Option<SessionId> {
        let secret = self.credentials[credential].secret.clone();
        let id = self.grant(
            credential,
            (secret.expose_secret(), true),
            requested,
            ip,
            now,
            who,
        )?;
        let valid_until = self.model.sessions[id as usize].valid_until();
        self.credentials[credential].cached = Some((id, valid_until));
        Some(id)
    }

    // ----- attackers ----------------------------------------------------------------------------

    fn attack(&mut self, kind: u8, now: u64) {
        let scenario = self.scenario;
        if kind == ATTACK_CLIENT_SECRET {
            // A host next to a job's runner (inside the integration's login ranges) that knows
            // the client id but not the secret: only the secret check stands in its way.
            let job = &scenario.jobs[self.rng.below(scenario.jobs.len() as u64) as usize];
            let ip = self.present(job.runner_ip);
            let guess = forge::well_formed_guess(&mut self.rng);
            let name = "guessed_client_secret";
            let issued = self.grant(
                job.credential,
                (&guess, false),
                None,
                ip,
                now,
                Who::Attacker(name),
            );
            let stats: &mut AttackStats = self.totals.attacks.entry(name.to_owned()).or_default();
            stats.attempts += 1;
            stats.refused += u64::from(issued.is_none());
            return;
        }
        let ip = self.rng.address_in(&scenario.attackers.ranges);
        let ip = self.present(ip);
        let sessions = self.model.sessions.len() as u64;
        let (name, observed) = match kind {
            ATTACK_STOLEN => {
                if sessions == 0 {
                    return;
                }
                // A token stolen from a real session (live or recently dead), replayed from
                // the attacker's address.
                let mut pick = None;
                for _ in 0..8 {
                    let id = self.rng.below(sessions) as SessionId;
                    if self.model.certain_at(id, now) {
                        pick = Some(id);
                        break;
                    }
                }
                let Some(id) = pick else {
                    return;
                };
                let name = "stolen_token_other_ip";
                (
                    name,
                    self.validate(id, ip, Requirement::Any, now, Who::Attacker(name)),
                )
            }
            ATTACK_FORGED => {
                let token = forge::well_formed_guess(&mut self.rng);
                let name = "forged_token";
                (
                    name,
                    self.validate_text(&token, ip, Refusal::Unknown, now, Who::Attacker(name)),
                )
            }
            _ => {
                let real = (sessions > 0).then(|| self.rng.below(sessions) as usize);
                let real = real.map(|i| self.model.sessions[i].token.clone());
                let token =
                    forge::malformed(&mut self.rng, real.as_ref().map(Token::expose_secret));
                let name = "malformed_token";
                (
                    name,
                    self.validate_text(&token, ip, Refusal::Malformed, now, Who::Attacker(name)),
                )
            }
        };
        let stats: &mut AttackStats = self.totals.attacks.entry(name.to_owned()).or_default();
        stats.attempts += 1;
        stats.refused += u64::from(matches!(observed, Outcome::Refused(_)));
    }
}

/// `Engine::validate`, timed once every `every` calls (counted in `done`).
fn timed_validate(
    engine: &Engine,
    latency: &mut LatencyRecorder,
    done: &mut u64,
    every: u64,
    (token, ip, requirement): (&str, IpAddr, Requirement<'_>),
) -> Outcome {
    *done += 1;
    if every > 0 && *done % every == 0 {
        let started = Instant::now();
        let result = engine.validate(token, ip, requirement);
        latency.record_duration(started.elapsed());
        Outcome::of(&result)
    } else {
        Outcome::of(&engine.validate(token, ip, requirement))
    }
}
