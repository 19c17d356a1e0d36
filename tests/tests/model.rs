//! The engine and a simple reference model must agree on every outcome of random operation
//! sequences: logins, validations from various addresses, clock moves, settings changes, every
//! kind of end, sweeps and listings.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use sessionward_core::*;
use sessionward_tests::model::*;

const T0: u64 = 1_700_000_000;

struct Harness {
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

impl Harness {
    fn new() -> Self {
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

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
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
                        prop_assert!(mfa || trusted, "untrusted password login not challenged");
                        issued
                    }
                    LoginOutcome::ChallengeRequired(challenge) => {
                        prop_assert!(!mfa && !trusted, "challenge where none was due");
                        self.engine
                            .complete_challenge(challenge.secret.expose_secret(), false)
                            .unwrap()
                            .issued()
                            .expect("fresh challenge completes")
                    }
                    other => return Err(TestCaseError::fail(format!("login: {other:?}"))),
                };
                let idle = if profile == 1 { 15 * 60 } else { self.idle };
                prop_assert_eq!(u64::from(issued.session.idle_timeout_secs), idle);
                prop_assert_eq!(issued.session.ip_locked, self.lock);
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
                prop_assert!(
                    expected.admits(&observed),
                    "validate: expected {:?}, engine said {:?}",
                    expected,
                    observed
                );
                if let Ok(info) = observed {
                    model.last = self.now;
                    prop_assert_eq!(info.valid_until, model.valid_until());
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
                prop_assert!(
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
                prop_assert!(
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
                prop_assert_eq!(self.engine.end_session(*handle), expected);
                if expected {
                    model.ended = Some((EndReason::Admin, now));
                }
            }
            Op::ResetPassword { user } => {
                let ended = self.engine.reset_password(USERS[user].0).unwrap();
                let expected = self.end_model(EndReason::PasswordReset, |s| s.user == user);
                prop_assert_eq!(ended, expected);
            }
            Op::EndProfile { profile } => {
                let ended = self.engine.end_profile_sessions(PROFILES[profile]).unwrap();
                let expected = self.end_model(EndReason::ProfileWide, |s| s.profile == profile);
                prop_assert_eq!(ended, expected);
            }
            Op::EndAll => {
                let ended = self.engine.end_all_sessions();
                let expected = self.end_model(EndReason::OrgWide, |_| true);
                prop_assert_eq!(ended, expected);
            }
            Op::EndFrom { cidr } => {
                let range: IpNet = CIDRS[cidr].parse().unwrap();
                let ended = self.engine.end_sessions_from(range);
                let expected =
                    self.end_model(EndReason::SourceRange, |s| range.contains(&s.origin));
                prop_assert_eq!(ended, expected);
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
                prop_assert_eq!(page.total, live);
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
                    prop_assert_eq!(total, expected, "sessions of {}", name);
                }
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn engine_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..120)) {
        let mut harness = Harness::new();
        for op in &ops {
            harness.apply(op)?;
        }
    }
}
