//! A deliberately simple reference model of the engine: a vector of sessions and a clock.
//!
//! It knows nothing about shards, digests or atomics; it only encodes the rules of the policy,
//! so that the property tests and the fuzz target can check the engine against it.

use std::net::IpAddr;

use proptest::prelude::*;
use sessionward_core::{EndReason, ExpiryKind, Refusal};

/// The addresses operations pick from. 10.0.0.0/8 is trusted; the mapped form of 10.0.0.1 must
/// behave exactly like 10.0.0.1.
pub const IPS: [&str; 4] = ["10.0.0.1", "10.0.0.2", "192.168.1.1", "::ffff:10.0.0.1"];
/// Ranges for `end_sessions_from`.
pub const CIDRS: [&str; 3] = ["10.0.0.1/32", "10.0.0.0/8", "192.168.0.0/16"];
/// Users, with the profile index each belongs to.
pub const USERS: [(&str, usize); 4] = [("ada", 0), ("bob", 0), ("cy", 1), ("di", 1)];
/// Profiles: `p0` uses the org's timeouts, `p1` overrides idle to 15 minutes.
pub const PROFILES: [&str; 2] = ["p0", "p1"];
/// Inactivity timeouts the settings updates choose from, in seconds.
pub const IDLE_CHOICES: [u64; 3] = [15 * 60, 30 * 60, 2 * 3600];
/// Tombstone retention the engine under test is built with.
pub const RETENTION: u64 = 3600;
/// Maximum session length of the org, in seconds.
pub const MAX_LENGTH: u64 = 4 * 3600;

/// One step of a property test.
#[derive(Clone, Debug)]
pub enum Op {
    /// Log `user` in from `ip`; `mfa` picks MFA (HIGH_ASSURANCE) over a password.
    Login {
        /// Index into [`USERS`].
        user: usize,
        /// Index into [`IPS`].
        ip: usize,
        /// MFA instead of password.
        mfa: bool,
    },
    /// Validate session `session` (modulo the sessions issued so far) from `ip`.
    Validate {
        /// Which issued session.
        session: usize,
        /// Index into [`IPS`].
        ip: usize,
        /// Ask for the high-assurance operation `setup`.
        sensitive: bool,
    },
    /// Step session `session` up with MFA from `ip`.
    StepUp {
        /// Which issued session.
        session: usize,
        /// Index into [`IPS`].
        ip: usize,
    },
    /// Move the clock forward.
    Advance {
        /// Seconds.
        secs: u64,
    },
    /// Replace the org settings.
    UpdateSettings {
        /// Index into [`IDLE_CHOICES`].
        idle: usize,
        /// Lock new sessions to their IP.
        lock: bool,
    },
    /// Log a session out.
    Logout {
        /// Which issued session.
        session: usize,
    },
    /// End a session by handle.
    EndHandle {
        /// Which issued session.
        session: usize,
    },
    /// Password reset for a user.
    ResetPassword {
        /// Index into [`USERS`].
        user: usize,
    },
    /// End every session of a profile.
    EndProfile {
        /// Index into [`PROFILES`].
        profile: usize,
    },
    /// End every session.
    EndAll,
    /// End every session from a range.
    EndFrom {
        /// Index into [`CIDRS`].
        cidr: usize,
    },
    /// Sweep every shard.
    Sweep,
    /// Count the active sessions in the admin listing.
    List,
}

/// A strategy for one operation, weighted towards logins and validations.
pub fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..USERS.len(), 0..IPS.len(), any::<bool>())
            .prop_map(|(user, ip, mfa)| Op::Login { user, ip, mfa }),
        10 => (any::<usize>(), 0..IPS.len(), any::<bool>())
            .prop_map(|(session, ip, sensitive)| Op::Validate { session, ip, sensitive }),
        2 => (any::<usize>(), 0..IPS.len()).prop_map(|(session, ip)| Op::StepUp { session, ip }),
        5 => prop_oneof![0_u64..120, 600_u64..2400, 3000_u64..8000]
            .prop_map(|secs| Op::Advance { secs }),
        1 => (0..IDLE_CHOICES.len(), any::<bool>())
            .prop_map(|(idle, lock)| Op::UpdateSettings { idle, lock }),
        2 => any::<usize>().prop_map(|session| Op::Logout { session }),
        2 => any::<usize>().prop_map(|session| Op::EndHandle { session }),
        1 => (0..USERS.len()).prop_map(|user| Op::ResetPassword { user }),
        1 => (0..PROFILES.len()).prop_map(|profile| Op::EndProfile { profile }),
        1 => Just(Op::EndAll),
        1 => (0..CIDRS.len()).prop_map(|cidr| Op::EndFrom { cidr }),
        1 => Just(Op::Sweep),
        1 => Just(Op::List),
    ]
}

/// A session as the model sees it.
#[derive(Clone, Debug)]
pub struct ModelSession {
    /// Index into [`USERS`].
    pub user: usize,
    /// Index into [`PROFILES`].
    pub profile: usize,
    /// Canonical origin address.
    pub origin: IpAddr,
    /// Seconds.
    pub created: u64,
    /// Seconds of the last successful validation.
    pub last: u64,
    /// Snapshotted inactivity timeout.
    pub idle: u64,
    /// Snapshotted IP lock.
    pub locked: bool,
    /// Reached HIGH_ASSURANCE.
    pub high_assurance: bool,
    /// Why and when it ended.
    pub ended: Option<(EndReason, u64)>,
    /// Removed from the table by an explicit sweep.
    pub swept: bool,
}

/// What the model says a validation must return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Success.
    Valid,
    /// This refusal.
    Refused(Refusal),
    /// This refusal, or `Unknown` if an opportunistic sweep already dropped the tombstone.
    RefusedOrForgotten(Refusal),
}

impl Expect {
    /// Whether the engine's answer is acceptable.
    pub fn admits<T>(self, observed: &Result<T, Refusal>) -> bool {
        match (self, observed) {
            (Self::Valid, Ok(_)) => true,
            (Self::Refused(expected), Err(got)) => expected == *got,
            (Self::RefusedOrForgotten(expected), Err(got)) => {
                expected == *got || *got == Refusal::Unknown
            }
            _ => false,
        }
    }
}

impl ModelSession {
    /// Absolute deadline.
    pub fn absolute(&self) -> u64 {
        self.created + MAX_LENGTH
    }

    /// When it stops being valid (exclusive).
    pub fn valid_until(&self) -> u64 {
        (self.last + self.idle).min(self.absolute())
    }

    /// Live and unexpired at `now`.
    pub fn live(&self, now: u64) -> bool {
        self.ended.is_none() && now < self.valid_until()
    }

    /// When the engine may drop its tombstone.
    pub fn removable_at(&self) -> u64 {
        match self.ended {
            Some((_, at)) => at + RETENTION,
            None => self.valid_until() + RETENTION,
        }
    }

    /// The refusal a dead session gets, ignoring sweeping.
    fn death(&self) -> Refusal {
        match self.ended {
            Some((reason, _)) => Refusal::Ended(reason),
            None if self.absolute() <= self.last + self.idle => {
                Refusal::Expired(ExpiryKind::Absolute)
            }
            None => Refusal::Expired(ExpiryKind::Idle),
        }
    }

    /// What a lookup of this session returns if it is not live: `None` if it is live.
    pub fn dead_outcome(&self, now: u64) -> Option<Expect> {
        if self.swept {
            return Some(Expect::Refused(Refusal::Unknown));
        }
        if self.live(now) {
            return None;
        }
        if now >= self.removable_at() {
            Some(Expect::RefusedOrForgotten(self.death()))
        } else {
            Some(Expect::Refused(self.death()))
        }
    }
}

// ----- replaying operations against the engine -------------------------------------------------

use std::sync::Arc;
use std::time::Duration;

use sessionward_core::{
    Engine, Handle, IpNet, LoginMethod, LoginOutcome, LoginRequest, ManualClock, OrgSettings,
    Profile, Requirement, SecurityLevel, SessionFilter, Token,
};

macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

macro_rules! check_eq {
    ($left:expr, $right:expr) => {
        check_eq!($left, $right, "{}", stringify!($left))
    };
    ($left:expr, $right:expr, $($fmt:tt)+) => {{
        let (left, right) = (&$left, &$right);
        if left != right {
            return Err(format!("{}: engine {:?}, model {:?}", format!($($fmt)+), left, right));
        }
    }};
}

/// Start of the manual clock.
pub const T0: u64 = 1_700_000_000;

/// The engine under test, the model beside it, and the clock driving both.
pub struct Replay {
    engine: Engine,
    clock: ManualClock,
    now: u64,
    idle: u64,
    lock: bool,
    sessions: Vec<(Token, Handle, ModelSession)>,
}

fn ip(index: usize) -> IpAddr {
    IPS[index].parse::<IpAddr>().unwrap().to_canonical()
}

fn settings(idle: u64, lock: bool) -> OrgSettings {
    OrgSettings::builder()
        .inactivity_timeout(Duration::from_secs(idle))
        .max_session_length(Duration::from_secs(MAX_LENGTH))
        .lock_sessions_to_ip(lock)
        .trusted_range("10.0.0.0/8")
        .high_assurance_operation("setup")
        .build()
        .unwrap()
}

impl Replay {
    /// A fresh engine and model with the fixture users and profiles.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        let clock = ManualClock::new(T0);
        let engine = Engine::builder()
            .settings(settings(IDLE_CHOICES[1], false))
            .clock(Arc::new(clock.clone()))
            .shards(4)
            .tombstone_retention(Duration::from_secs(RETENTION))
            .build()
            .unwrap();
        engine
            .add_profile(Profile::builder(PROFILES[0]).build().unwrap())
            .unwrap();
        engine
            .add_profile(
                Profile::builder(PROFILES[1])
                    .session_timeout(Duration::from_secs(15 * 60))
                    .build()
                    .unwrap(),
            )
            .unwrap();
        for (user, profile) in USERS {
            engine.add_user(user, PROFILES[profile]).unwrap();
        }
        Self {
            engine,
            clock,
            now: T0,
            idle: IDLE_CHOICES[1],
            lock: false,
            sessions: Vec::new(),
        }
    }

    fn pick(&self, session: usize) -> Option<usize> {
        (!self.sessions.is_empty()).then(|| session % self.sessions.len())
    }

    /// Ends the model sessions matching `matches`; returns how many were live.
    fn end_model(&mut self, reason: EndReason, matches: impl Fn(&ModelSession) -> bool) -> usize {
        let now = self.now;
        let mut count = 0;
        for (_, _, session) in &mut self.sessions {
            if session.live(now) && matches(session) {
                session.ended = Some((reason, now));
                count += 1;
            }
        }
        count
    }

    /// Applies `op` to both and compares; `Err` describes the first disagreement.
    pub fn apply(&mut self, op: &Op) -> Result<(), String> {
        match *op {
            Op::Login {
                user,
                ip: ip_index,
                mfa,
            } => {
                let (name, profile) = USERS[user];
                let method = if mfa {
                    LoginMethod::Mfa
                } else {
                    LoginMethod::Password
                };
                let from = ip(ip_index);
                let outcome = self
                    .engine
                    .login(&LoginRequest::new(name, from).method(method))
                    .unwrap();
                let trusted = from.is_ipv4() && IPS[ip_index].contains("10.");
                let issued = match outcome {
                    LoginOutcome::Issued(issued) => {
                        check!(mfa || trusted, "untrusted password login not challenged");
                        issued
                    }
                    LoginOutcome::ChallengeRequired(challenge) => {
                        check!(!mfa && !trusted, "challenge where none was due");
                        self.engine
                            .complete_challenge(challenge.secret.expose_secret(), false)
                            .unwrap()
                            .issued()
                            .expect("fresh challenge completes")
                    }
                    other => return Err(format!("login: {other:?}")),
                };
                let idle = if profile == 1 { 15 * 60 } else { self.idle };
                check_eq!(u64::from(issued.session.idle_timeout_secs), idle);
                check_eq!(issued.session.ip_locked, self.lock);
                let handle = issued.session.handle;
                self.sessions.push((
                    issued.token,
                    handle,
                    ModelSession {
                        user,
                        profile,
                        origin: from,
                        created: self.now,
                        last: self.now,
                        idle,
                        locked: self.lock,
                        high_assurance: mfa,
                        ended: None,
                        swept: false,
                    },
                ));
            }
            Op::Validate {
                session,
                ip: ip_index,
                sensitive,
            } => {
                let Some(index) = self.pick(session) else {
                    return Ok(());
                };
                let from = ip(ip_index);
                let requirement = if sensitive {
                    Requirement::Operation("setup")
                } else {
                    Requirement::Any
                };
                let (token, _, model) = &mut self.sessions[index];
                let observed = self
                    .engine
                    .validate(token.expose_secret(), from, requirement);
                let expected = match model.dead_outcome(self.now) {
                    Some(dead) => dead,
                    None if model.locked && model.origin != from => {
                        Expect::Refused(Refusal::IpMismatch)
                    }
                    None if sensitive && !model.high_assurance => {
                        Expect::Refused(Refusal::StepUpRequired {
                            required: SecurityLevel::HighAssurance,
                            current: SecurityLevel::Standard,
                        })
                    }
                    None => Expect::Valid,
                };
                check!(
                    expected.admits(&observed),
                    "validate: expected {:?}, engine said {:?}",
                    expected,
                    observed
                );
                if let Ok(info) = observed {
                    model.last = self.now;
                    check_eq!(info.valid_until, model.valid_until());
                }
            }
            Op::StepUp {
                session,
                ip: ip_index,
            } => {
                let Some(index) = self.pick(session) else {
                    return Ok(());
                };
                let from = ip(ip_index);
                let (token, _, model) = &mut self.sessions[index];
                let observed = self
                    .engine
                    .step_up(token.expose_secret(), from, LoginMethod::Mfa);
                let expected = match model.dead_outcome(self.now) {
                    Some(dead) => dead,
                    None if model.locked && model.origin != from => {
                        Expect::Refused(Refusal::IpMismatch)
                    }
                    None => Expect::Valid,
                };
                check!(
                    expected.admits(&observed),
                    "step_up: {:?} vs {:?}",
                    expected,
                    observed
                );
                if observed.is_ok() {
                    model.last = self.now;
                    model.high_assurance = true;
                }
            }
            Op::Advance { secs } => {
                self.clock.advance(Duration::from_secs(secs));
                self.now += secs;
            }
            Op::UpdateSettings { idle, lock } => {
                self.idle = IDLE_CHOICES[idle];
                self.lock = lock;
                self.engine.update_settings(settings(self.idle, lock));
            }
            Op::Logout { session } => {
                let Some(index) = self.pick(session) else {
                    return Ok(());
                };
                let now = self.now;
                let (token, _, model) = &mut self.sessions[index];
                let observed = self.engine.logout(token.expose_secret());
                let expected = model.dead_outcome(now).unwrap_or(Expect::Valid);
                check!(
                    expected.admits(&observed),
                    "logout: {:?} vs {:?}",
                    expected,
                    observed
                );
                if observed.is_ok() {
                    model.ended = Some((EndReason::Logout, now));
                }
            }
            Op::EndHandle { session } => {
                let Some(index) = self.pick(session) else {
                    return Ok(());
                };
                let now = self.now;
                let (_, handle, model) = &mut self.sessions[index];
                let expected = model.live(now);
                check_eq!(self.engine.end_session(*handle), expected);
                if expected {
                    model.ended = Some((EndReason::Admin, now));
                }
            }
            Op::ResetPassword { user } => {
                let ended = self.engine.reset_password(USERS[user].0).unwrap();
                let expected = self.end_model(EndReason::PasswordReset, |s| s.user == user);
                check_eq!(ended, expected);
            }
            Op::EndProfile { profile } => {
                let ended = self.engine.end_profile_sessions(PROFILES[profile]).unwrap();
                let expected = self.end_model(EndReason::ProfileWide, |s| s.profile == profile);
                check_eq!(ended, expected);
            }
            Op::EndAll => {
                let ended = self.engine.end_all_sessions();
                let expected = self.end_model(EndReason::OrgWide, |_| true);
                check_eq!(ended, expected);
            }
            Op::EndFrom { cidr } => {
                let range: IpNet = CIDRS[cidr].parse().unwrap();
                let ended = self.engine.end_sessions_from(range);
                let expected =
                    self.end_model(EndReason::SourceRange, |s| range.contains(&s.origin));
                check_eq!(ended, expected);
            }
            Op::Sweep => {
                self.engine.sweep_all();
                let now = self.now;
                for (_, _, model) in &mut self.sessions {
                    if !model.live(now) && now >= model.removable_at() {
                        model.swept = true;
                    }
                }
            }
            Op::List => {
                let page = self
                    .engine
                    .sessions(&SessionFilter::default(), None, 1000)
                    .unwrap();
                let live = self
                    .sessions
                    .iter()
                    .filter(|(_, _, s)| s.live(self.now))
                    .count();
                check_eq!(page.total, live);
                for (user, (name, _)) in USERS.iter().enumerate() {
                    let filter = SessionFilter {
                        user: Some((*name).to_owned()),
                        ..SessionFilter::default()
                    };
                    let total = self.engine.sessions(&filter, None, 1000).unwrap().total;
                    let expected = self
                        .sessions
                        .iter()
                        .filter(|(_, _, s)| s.user == user && s.live(self.now))
                        .count();
                    check_eq!(total, expected, "sessions of {}", name);
                }
            }
        }
        Ok(())
    }
}
