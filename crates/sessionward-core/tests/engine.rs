//! Every rule of the engine, through the public API, on a manual clock.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sessionward_core::*;

const T0: u64 = 1_700_000_000;
const MIN: u64 = 60;
const HOUR: u64 = 3600;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

struct Org {
    engine: Engine,
    clock: ManualClock,
}

impl Org {
    /// An org trusting 10.0.0.0/8, with `staff`, `admins` (15 min, HIGH_ASSURANCE at login,
    /// login from 10.0.0.0/8 only) and `finance` (30 min) profiles.
    fn new(settings: OrgSettingsBuilder) -> Self {
        let clock = ManualClock::new(T0);
        let engine = Engine::builder()
            .settings(settings.trusted_range("10.0.0.0/8").build().unwrap())
            .clock(Arc::new(clock.clone()))
            .shards(8)
            .build()
            .unwrap();
        engine
            .add_profile(Profile::builder("staff").build().unwrap())
            .unwrap();
        engine
            .add_profile(
                Profile::builder("admins")
                    .session_timeout(Duration::from_secs(15 * MIN))
                    .required_level(SecurityLevel::HighAssurance)
                    .login_range("10.0.0.0/8")
                    .build()
                    .unwrap(),
            )
            .unwrap();
        engine
            .add_profile(
                Profile::builder("finance")
                    .session_timeout(Duration::from_secs(30 * MIN))
                    .build()
                    .unwrap(),
            )
            .unwrap();
        engine.add_user("ada", "staff").unwrap();
        engine.add_user("bob", "staff").unwrap();
        engine.add_user("root", "admins").unwrap();
        engine.add_user("fin", "finance").unwrap();
        Self { engine, clock }
    }

    fn default() -> Self {
        Self::new(OrgSettings::builder())
    }

    fn login(&self, user: &str, from: &str) -> Issued {
        self.login_with(LoginRequest::new(user, ip(from)))
    }

    fn login_with(&self, request: LoginRequest<'_>) -> Issued {
        match self.engine.login(&request).unwrap() {
            LoginOutcome::Issued(issued) => issued,
            LoginOutcome::ChallengeRequired(challenge) => self
                .engine
                .complete_challenge(challenge.secret.expose_secret(), false)
                .unwrap()
                .issued()
                .expect("challenge completes"),
            other => panic!("login refused: {other:?}"),
        }
    }

    fn check(&self, issued: &Issued, from: &str) -> Result<SessionInfo, Refusal> {
        self.engine
            .validate(issued.token.expose_secret(), ip(from), Requirement::Any)
    }

    fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }
}

#[test]
fn login_from_trusted_range_issues_a_session_with_snapshotted_policy() {
    let org = Org::default();
    let issued = org.login("ada", "10.0.0.1");
    let info = issued.session;
    assert_eq!(info.created, T0);
    assert_eq!(info.idle_timeout_secs, 2 * HOUR as u32);
    assert_eq!(info.absolute_deadline, T0 + 12 * HOUR);
    assert_eq!(info.valid_until, T0 + 2 * HOUR);
    assert_eq!(info.level, SecurityLevel::Standard);
    assert_eq!(info.session_type, SessionType::Ui);
    assert!(!info.ip_locked && !info.browser_bound);
    assert_eq!(org.engine.user_id(info.user).as_deref(), Some("ada"));
    assert_eq!(
        org.engine.profile_name(info.profile).as_deref(),
        Some("staff")
    );
    assert_eq!(org.check(&issued, "10.0.0.1").unwrap().handle, info.handle);
}

#[test]
fn untrusted_standard_login_is_challenged_and_a_remembered_device_is_not() {
    let org = Org::default();
    let request = LoginRequest::new("ada", ip("203.0.113.5")).device("laptop-1");
    let LoginOutcome::ChallengeRequired(challenge) = org.engine.login(&request).unwrap() else {
        panic!("expected a challenge");
    };
    assert_eq!(challenge.expires_at, T0 + CHALLENGE_LIFETIME.as_secs());
    let secret = challenge.secret.expose_secret().to_owned();
    let issued = org
        .engine
        .complete_challenge(&secret, true)
        .unwrap()
        .issued()
        .unwrap();
    assert!(org.check(&issued, "203.0.113.5").is_ok());
    // One use only.
    assert!(matches!(
        org.engine.complete_challenge(&secret, true).unwrap(),
        LoginOutcome::Denied(DenyReason::ChallengeInvalid)
    ));
    // The remembered device logs in directly; another device is challenged.
    assert!(matches!(
        org.engine.login(&request).unwrap(),
        LoginOutcome::Issued(_)
    ));
    let other = LoginRequest::new("ada", ip("203.0.113.5")).device("phone");
    assert!(matches!(
        org.engine.login(&other).unwrap(),
        LoginOutcome::ChallengeRequired(_)
    ));
    // Devices are per user.
    let bob = LoginRequest::new("bob", ip("203.0.113.5")).device("laptop-1");
    assert!(matches!(
        org.engine.login(&bob).unwrap(),
        LoginOutcome::ChallengeRequired(_)
    ));
    // MFA from anywhere is not challenged.
    let mfa = LoginRequest::new("bob", ip("203.0.113.5")).method(LoginMethod::Mfa);
    assert!(matches!(
        org.engine.login(&mfa).unwrap(),
        LoginOutcome::Issued(_)
    ));
}

/// A user's remembered devices are capped: remembering one more forgets the one remembered
/// longest ago, and remembering a known device again makes it the newest.
#[test]
fn remembered_devices_are_capped_oldest_first() {
    let org = Org::default();
    fn from(device: &str) -> LoginRequest<'_> {
        LoginRequest::new("ada", ip("203.0.113.5")).device(device)
    }
    let remember = |device: &str| {
        let LoginOutcome::ChallengeRequired(challenge) = org.engine.login(&from(device)).unwrap()
        else {
            panic!("{device} should be challenged");
        };
        let outcome = org
            .engine
            .complete_challenge(challenge.secret.expose_secret(), true)
            .unwrap();
        assert!(outcome.issued().is_some());
    };
    let remembered = |device: &str| {
        matches!(
            org.engine.login(&from(device)).unwrap(),
            LoginOutcome::Issued(_)
        )
    };
    let names: Vec<String> = (0..=MAX_REMEMBERED_DEVICES)
        .map(|n| format!("device-{n}"))
        .collect();
    for name in &names[..MAX_REMEMBERED_DEVICES] {
        remember(name);
    }
    assert!(names[..MAX_REMEMBERED_DEVICES]
        .iter()
        .all(|name| remembered(name)));
    // One more: device-0, the oldest, is forgotten.
    remember(&names[MAX_REMEMBERED_DEVICES]);
    assert!(!remembered(&names[0]), "the oldest is forgotten");
    assert!(names[1..].iter().all(|name| remembered(name)));
    // Remembering device-0 again forgets device-1, now the oldest.
    remember(&names[0]);
    assert!(remembered(&names[0]));
    assert!(!remembered(&names[1]));
    assert!(names[2..].iter().all(|name| remembered(name)));
}

#[test]
fn challenges_expire() {
    let org = Org::default();
    let LoginOutcome::ChallengeRequired(challenge) = org
        .engine
        .login(&LoginRequest::new("ada", ip("203.0.113.5")))
        .unwrap()
    else {
        panic!("expected a challenge");
    };
    org.advance(CHALLENGE_LIFETIME.as_secs());
    assert!(matches!(
        org.engine
            .complete_challenge(challenge.secret.expose_secret(), false)
            .unwrap(),
        LoginOutcome::Denied(DenyReason::ChallengeInvalid)
    ));
    assert!(matches!(
        org.engine.complete_challenge("garbage", false).unwrap(),
        LoginOutcome::Denied(DenyReason::ChallengeInvalid)
    ));
}

#[test]
fn login_denials_and_step_up_outcome() {
    let org = Org::default();
    assert!(matches!(
        org.engine
            .login(&LoginRequest::new("nobody", ip("10.0.0.1")))
            .unwrap(),
        LoginOutcome::Denied(DenyReason::UnknownUser)
    ));
    assert!(matches!(
        org.engine
            .login(&LoginRequest::new("root", ip("203.0.113.1")).method(LoginMethod::Mfa))
            .unwrap(),
        LoginOutcome::Denied(DenyReason::IpNotAllowed)
    ));
    assert!(matches!(
        org.engine
            .login(&LoginRequest::new("root", ip("10.0.0.2")))
            .unwrap(),
        LoginOutcome::StepUpRequired {
            required: SecurityLevel::HighAssurance,
            offered: SecurityLevel::Standard
        }
    ));
    let admin =
        org.login_with(LoginRequest::new("root", ip("10.0.0.2")).method(LoginMethod::Passkey));
    assert_eq!(admin.session.level, SecurityLevel::HighAssurance);
    assert_eq!(admin.session.idle_timeout_secs, 15 * MIN as u32);
}

#[test]
fn every_refusal_reason() {
    let org = Org::new(
        OrgSettings::builder()
            .lock_sessions_to_ip(true)
            .high_assurance_operation("setup"),
    );
    let ada = org.login("ada", "10.0.0.1");
    let token = ada.token.expose_secret();
    let from = ip("10.0.0.1");

    assert_eq!(
        org.engine.validate("", from, Requirement::Any),
        Err(Refusal::Malformed)
    );
    assert_eq!(
        org.engine
            .validate(&token.replace('s', "S"), from, Requirement::Any),
        Err(Refusal::Malformed)
    );
    let unknown = {
        // A well-formed token this engine never issued: issue it on another engine.
        let other = Org::default();
        other.login("ada", "10.0.0.1").token
    };
    assert_eq!(
        org.engine
            .validate(unknown.expose_secret(), from, Requirement::Any),
        Err(Refusal::Unknown)
    );
    assert_eq!(
        org.engine.validate(token, ip("10.0.0.2"), Requirement::Any),
        Err(Refusal::IpMismatch)
    );
    assert_eq!(
        org.engine
            .validate(token, from, Requirement::Operation("setup")),
        Err(Refusal::StepUpRequired {
            required: SecurityLevel::HighAssurance,
            current: SecurityLevel::Standard
        })
    );
    assert_eq!(
        org.engine
            .validate(
                token,
                from,
                Requirement::Level(SecurityLevel::HighAssurance)
            )
            .unwrap_err()
            .code(),
        "step_up_required"
    );
    assert!(org
        .engine
        .validate(token, from, Requirement::Operation("read"))
        .is_ok());
    org.engine.logout(token).unwrap();
    assert_eq!(
        org.engine.validate(token, from, Requirement::Any),
        Err(Refusal::Ended(EndReason::Logout))
    );
    assert_eq!(
        org.engine.logout(token),
        Err(Refusal::Ended(EndReason::Logout))
    );
}

#[test]
fn idle_and_absolute_expiry_and_only_success_refreshes() {
    let org = Org::new(
        OrgSettings::builder()
            .inactivity_timeout(Duration::from_secs(15 * MIN))
            .max_session_length(Duration::from_secs(HOUR))
            .lock_sessions_to_ip(true),
    );
    let ada = org.login("ada", "10.0.0.1");
    // Refused requests (wrong IP) do not keep the session alive.
    org.advance(10 * MIN);
    assert_eq!(org.check(&ada, "10.9.9.9"), Err(Refusal::IpMismatch));
    org.advance(5 * MIN - 1);
    let info = org.check(&ada, "10.0.0.1").unwrap();
    assert_eq!(info.last_activity, T0 + 15 * MIN - 1);
    assert_eq!(info.valid_until, T0 + 30 * MIN - 1);
    org.advance(15 * MIN - 1);
    assert!(
        org.check(&ada, "10.0.0.1").is_ok(),
        "one second before idle expiry"
    );
    org.advance(15 * MIN);
    assert_eq!(
        org.check(&ada, "10.0.0.1"),
        Err(Refusal::Expired(ExpiryKind::Idle))
    );

    let bob = org.login("bob", "10.0.0.1");
    for _ in 0..4 {
        org.advance(14 * MIN);
        assert!(org.check(&bob, "10.0.0.1").is_ok());
    }
    org.advance(14 * MIN);
    assert_eq!(
        org.check(&bob, "10.0.0.1"),
        Err(Refusal::Expired(ExpiryKind::Absolute)),
        "active sessions still end at the maximum length"
    );
}

#[test]
fn settings_changes_apply_only_to_new_sessions() {
    let org = Org::default();
    let before = org.login("ada", "10.0.0.1");
    org.engine.update_settings(
        org.engine
            .settings()
            .to_builder()
            .inactivity_timeout(Duration::from_secs(15 * MIN))
            .lock_sessions_to_ip(true)
            .force_relogin_on_browser_close(true)
            .build()
            .unwrap(),
    );
    let after = org.login("ada", "10.0.0.1");
    assert!(after.session.ip_locked && after.session.browser_bound);
    assert!(!before.session.ip_locked && !before.session.browser_bound);
    org.advance(20 * MIN);
    assert!(
        org.check(&before, "10.0.0.2").is_ok(),
        "old session keeps its snapshot"
    );
    assert_eq!(
        org.check(&after, "10.0.0.1"),
        Err(Refusal::Expired(ExpiryKind::Idle))
    );

    // Profile overrides too.
    let fin = org.login("fin", "10.0.0.1");
    org.engine
        .update_profile(
            Profile::builder("finance")
                .session_timeout(Duration::from_secs(15 * MIN))
                .build()
                .unwrap(),
        )
        .unwrap();
    let fin_after = org.login("fin", "10.0.0.1");
    assert_eq!(fin.session.idle_timeout_secs, 30 * MIN as u32);
    assert_eq!(fin_after.session.idle_timeout_secs, 15 * MIN as u32);
}

#[test]
fn operation_requirements_and_range_enforcement_follow_current_settings() {
    let org = Org::default();
    let ada = org.login("ada", "10.0.0.1");
    let token = ada.token.expose_secret();
    assert!(org
        .engine
        .validate(token, ip("10.0.0.1"), Requirement::Operation("setup"))
        .is_ok());
    org.engine.update_settings(
        org.engine
            .settings()
            .to_builder()
            .high_assurance_operation("setup")
            .enforce_login_ranges_every_request(true)
            .build()
            .unwrap(),
    );
    assert!(matches!(
        org.engine
            .validate(token, ip("10.0.0.1"), Requirement::Operation("setup")),
        Err(Refusal::StepUpRequired { .. })
    ));
    org.engine.drain_events();
    let stepped = org
        .engine
        .step_up(token, ip("10.0.0.1"), LoginMethod::Mfa)
        .unwrap();
    assert_eq!(stepped.level, SecurityLevel::HighAssurance);
    let events = org.engine.drain_events();
    assert_eq!(
        events.last().map(|event| event.kind),
        Some(EventKind::SteppedUp(SecurityLevel::HighAssurance)),
        "a step-up that raised the level is audited"
    );
    org.engine
        .step_up(token, ip("10.0.0.1"), LoginMethod::Mfa)
        .unwrap();
    assert!(
        org.engine
            .drain_events()
            .iter()
            .all(|event| event.kind.code() != "stepped_up"),
        "a step-up that changed nothing is not"
    );
    assert!(org
        .engine
        .validate(token, ip("10.0.0.1"), Requirement::Operation("setup"))
        .is_ok());

    // Enforcing ranges per request: tighten staff's ranges after login.
    org.engine
        .update_profile(
            Profile::builder("staff")
                .login_range("10.1.0.0/16")
                .build()
                .unwrap(),
        )
        .unwrap();
    assert_eq!(org.check(&ada, "10.0.0.1"), Err(Refusal::IpNotAllowed));
    assert!(org.check(&ada, "10.1.2.3").is_ok());
    // ::ffff:10.1.2.3 is 10.1.2.3.
    assert!(org.check(&ada, "::ffff:10.1.2.3").is_ok());
}

#[test]
fn step_up_needs_a_valid_session_and_never_lowers() {
    let org = Org::new(OrgSettings::builder().lock_sessions_to_ip(true));
    let ada = org.login_with(LoginRequest::new("ada", ip("10.0.0.1")).method(LoginMethod::Mfa));
    let token = ada.token.expose_secret();
    assert_eq!(
        org.engine.step_up(token, ip("10.0.0.9"), LoginMethod::Mfa),
        Err(Refusal::IpMismatch)
    );
    let info = org
        .engine
        .step_up(token, ip("10.0.0.1"), LoginMethod::Password)
        .unwrap();
    assert_eq!(info.level, SecurityLevel::HighAssurance);
}

#[test]
fn ends_take_effect_and_count() {
    let org = Org::default();
    let a1 = org.login("ada", "10.0.0.1");
    let a2 = org.login("ada", "10.0.0.2");
    let b1 = org.login("bob", "10.0.0.3");
    let f1 = org.login("fin", "10.5.0.1");
    let r1 = org.login_with(LoginRequest::new("root", ip("10.0.0.4")).method(LoginMethod::Mfa));

    assert!(org.engine.end_session(a1.session.handle));
    assert!(!org.engine.end_session(a1.session.handle), "already ended");
    assert_eq!(
        org.check(&a1, "10.0.0.1"),
        Err(Refusal::Ended(EndReason::Admin))
    );

    assert_eq!(org.engine.reset_password("ada").unwrap(), 1);
    assert_eq!(
        org.check(&a2, "10.0.0.2"),
        Err(Refusal::Ended(EndReason::PasswordReset))
    );

    assert_eq!(
        org.engine.end_sessions_from("10.5.0.0/16".parse().unwrap()),
        1
    );
    assert_eq!(
        org.check(&f1, "10.5.0.1"),
        Err(Refusal::Ended(EndReason::SourceRange))
    );

    assert_eq!(org.engine.end_profile_sessions("admins").unwrap(), 1);
    assert_eq!(
        org.check(&r1, "10.0.0.4"),
        Err(Refusal::Ended(EndReason::ProfileWide))
    );
    assert!(org.check(&b1, "10.0.0.3").is_ok());

    assert_eq!(org.engine.end_all_sessions(), 1);
    assert_eq!(
        org.check(&b1, "10.0.0.3"),
        Err(Refusal::Ended(EndReason::OrgWide))
    );
    assert_eq!(org.engine.end_all_sessions(), 0);

    assert!(matches!(
        org.engine.reset_password("ghost"),
        Err(Error::UnknownUser { .. })
    ));
    assert!(matches!(
        org.engine.end_profile_sessions("ghosts"),
        Err(Error::UnknownProfile { .. })
    ));
}

#[test]
fn expired_sessions_are_not_counted_as_ended() {
    let org = Org::default();
    org.login("ada", "10.0.0.1");
    org.advance(3 * HOUR);
    assert_eq!(org.engine.reset_password("ada").unwrap(), 0);
    assert_eq!(org.engine.end_all_sessions(), 0);
}

#[test]
fn browser_close_ends_only_browser_bound_sessions() {
    let org = Org::default();
    let unbound = org.login("ada", "10.0.0.1");
    assert_eq!(
        org.engine.browser_closed(unbound.token.expose_secret()),
        Ok(false)
    );
    org.engine.update_settings(
        OrgSettings::builder()
            .force_relogin_on_browser_close(true)
            .trusted_range("10.0.0.0/8")
            .build()
            .unwrap(),
    );
    let bound = org.login("ada", "10.0.0.1");
    let api =
        org.login_with(LoginRequest::new("ada", ip("10.0.0.1")).session_type(SessionType::Api));
    assert!(!api.session.browser_bound, "API sessions have no browser");
    assert_eq!(
        org.engine.browser_closed(bound.token.expose_secret()),
        Ok(true)
    );
    assert_eq!(
        org.check(&bound, "10.0.0.1"),
        Err(Refusal::Ended(EndReason::BrowserClosed))
    );
    assert!(org.check(&unbound, "10.0.0.1").is_ok());
}

#[test]
fn concurrent_session_cap_end_oldest_and_refuse_new() {
    let org = Org::default();
    org.engine
        .update_profile(
            Profile::builder("staff")
                .session_cap(2, CapAction::EndOldest)
                .build()
                .unwrap(),
        )
        .unwrap();
    let first = org.login("ada", "10.0.0.1");
    let second = org.login("ada", "10.0.0.1");
    let third = org.login("ada", "10.0.0.1");
    assert_eq!(
        org.check(&first, "10.0.0.1"),
        Err(Refusal::Ended(EndReason::SessionCap))
    );
    assert!(org.check(&second, "10.0.0.1").is_ok());
    assert!(org.check(&third, "10.0.0.1").is_ok());

    org.engine
        .update_profile(
            Profile::builder("staff")
                .session_cap(2, CapAction::RefuseNew)
                .build()
                .unwrap(),
        )
        .unwrap();
    assert!(matches!(
        org.engine
            .login(&LoginRequest::new("ada", ip("10.0.0.1")))
            .unwrap(),
        LoginOutcome::Denied(DenyReason::SessionCap)
    ));
    // Once one ends, there is room again.
    org.engine.logout(second.token.expose_secret()).unwrap();
    org.login("ada", "10.0.0.1");
}

#[test]
fn users_move_and_removal_ends_their_sessions() {
    let org = Org::default();
    let ada = org.login("ada", "10.0.0.1");
    org.engine.move_user("ada", "finance").unwrap();
    assert_eq!(org.engine.user_profile("ada").unwrap().as_ref(), "finance");
    let moved = org.login("ada", "10.0.0.1");
    assert_eq!(moved.session.idle_timeout_secs, 30 * MIN as u32);
    assert_eq!(
        org.engine.profile_name(ada.session.profile).as_deref(),
        Some("staff")
    );
    assert!(matches!(
        org.engine.remove_profile("finance"),
        Err(Error::ProfileInUse { users: 2, .. })
    ));
    assert_eq!(org.engine.remove_user("ada").unwrap(), 2);
    assert_eq!(
        org.check(&moved, "10.0.0.1"),
        Err(Refusal::Ended(EndReason::UserRemoved))
    );
    assert!(matches!(
        org.engine.remove_user("ada"),
        Err(Error::UnknownUser { .. })
    ));
    assert!(matches!(
        org.engine.move_user("ghost", "staff"),
        Err(Error::UnknownUser { .. })
    ));
    assert!(matches!(
        org.engine.add_user("bob", "staff"),
        Err(Error::DuplicateUser { .. })
    ));
    assert!(matches!(
        org.engine.add_user("x", "nope"),
        Err(Error::UnknownProfile { .. })
    ));
    assert!(matches!(
        org.engine.add_user(&"u".repeat(10_000), "staff"),
        Err(Error::InvalidName { .. })
    ));
}

#[test]
fn listing_filters_paginates_and_hides_dead_sessions() {
    let org = Org::default();
    let mut handles = Vec::new();
    for i in 0..25 {
        let user = if i % 2 == 0 { "ada" } else { "bob" };
        handles.push(
            org.login(user, &format!("10.0.{}.{}", i % 3, i))
                .session
                .handle,
        );
    }
    let api =
        org.login_with(LoginRequest::new("fin", ip("10.7.0.1")).session_type(SessionType::Api));
    let all = SessionFilter::default();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = org.engine.sessions(&all, after, 10).unwrap();
        assert_eq!(page.total, 26);
        seen.extend(page.rows.iter().map(|row| row.info.handle));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 26);
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "ordered by handle, no repeats"
    );

    let ada = SessionFilter {
        user: Some("ada".into()),
        ..SessionFilter::default()
    };
    let page = org.engine.sessions(&ada, None, 100).unwrap();
    assert_eq!(page.total, 13);
    assert!(page.rows.iter().all(|row| row.user_id.as_ref() == "ada"));

    let subnet = SessionFilter {
        source: Some("10.0.1.0/24".parse().unwrap()),
        ..SessionFilter::default()
    };
    assert_eq!(org.engine.sessions(&subnet, None, 100).unwrap().total, 8);
    let exact = SessionFilter {
        source: Some("10.0.1.1/32".parse().unwrap()),
        ..SessionFilter::default()
    };
    assert_eq!(org.engine.sessions(&exact, None, 100).unwrap().total, 1);
    let by_type = SessionFilter {
        session_type: Some(SessionType::Api),
        ..SessionFilter::default()
    };
    let rows = org.engine.sessions(&by_type, None, 100).unwrap().rows;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].info.handle, api.session.handle);
    assert_eq!(rows[0].profile_name.as_ref(), "finance");

    org.engine.end_session(handles[0]);
    assert_eq!(org.engine.sessions(&all, None, 100).unwrap().total, 25);
    org.advance(3 * HOUR);
    assert_eq!(org.engine.sessions(&all, None, 100).unwrap().total, 0);

    assert!(org.engine.sessions(&all, None, 0).is_err());
    let ghost = SessionFilter {
        user: Some("ghost".into()),
        ..SessionFilter::default()
    };
    assert!(matches!(
        org.engine.sessions(&ghost, None, 10),
        Err(Error::UnknownUser { .. })
    ));
}

#[test]
fn tombstones_explain_then_sweep_forgets() {
    let org = Org::default();
    let ada = org.login("ada", "10.0.0.1");
    let bob = org.login("bob", "10.0.0.1");
    org.advance(2 * HOUR - 1);
    org.engine.logout(ada.token.expose_secret()).unwrap();
    org.advance(1);
    let stats = org.engine.sweep_all();
    assert_eq!(stats.expired, 1, "bob's idle expiry reported once");
    assert_eq!(stats.removed, 0, "still within the tombstone retention");
    assert_eq!(
        org.check(&ada, "10.0.0.1"),
        Err(Refusal::Ended(EndReason::Logout))
    );
    assert_eq!(
        org.check(&bob, "10.0.0.1"),
        Err(Refusal::Expired(ExpiryKind::Idle))
    );
    org.advance(HOUR);
    let stats = org.engine.sweep_all();
    assert_eq!(stats.removed, 2);
    assert_eq!(org.check(&ada, "10.0.0.1"), Err(Refusal::Unknown));
    assert_eq!(org.check(&bob, "10.0.0.1"), Err(Refusal::Unknown));
    assert_eq!(org.engine.stats().records, 0);
}

#[test]
fn events_tell_the_story_without_tokens() {
    let org = Org::new(OrgSettings::builder().lock_sessions_to_ip(true));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    org.engine.subscribe(Arc::new(move |event: &Event| {
        sink.lock().unwrap().push(format!("{event:?}"));
    }));
    let ada = org.login("ada", "10.0.0.1");
    let _ = org
        .engine
        .login(&LoginRequest::new("ghost", ip("10.0.0.1")));
    let _ = org.check(&ada, "10.0.0.2");
    org.advance(3 * HOUR);
    let _ = org.check(&ada, "10.0.0.1");
    let _ = org.check(&ada, "10.0.0.1");
    let events = org.engine.drain_events();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.code()).collect();
    assert_eq!(kinds, ["created", "login_denied", "ip_mismatch", "expired"]);
    assert_eq!(events[0].user.as_deref(), Some("ada"));
    assert_eq!(events[0].handle, Some(ada.session.handle));
    assert_eq!(events[2].ip, Some(ip("10.0.0.2")));
    let secret = ada.token.expose_secret();
    for line in seen.lock().unwrap().iter() {
        assert!(!line.contains(&secret[4..20]), "token in event: {line}");
    }
    assert!(!format!("{ada:?}").contains(&secret[4..20]));
    assert!(org.engine.drain_events().is_empty());
}

#[test]
fn validate_many_matches_validate() {
    let org = Org::default();
    let sessions: Vec<Issued> = (0..40).map(|_| org.login("ada", "10.0.0.1")).collect();
    org.engine
        .logout(sessions[3].token.expose_secret())
        .unwrap();
    let mut tokens: Vec<String> = sessions
        .iter()
        .map(|s| s.token.expose_secret().to_owned())
        .collect();
    tokens.push("garbage".into());
    // Malformed tokens among good ones, next to each other and one token apart: the batch
    // checks each token once, ahead of hashing it, and must keep those answers in order.
    let bad_checksum = |token: &str| {
        let mut bytes = token.as_bytes().to_vec();
        let last = bytes.len() - 1;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).unwrap()
    };
    for at in [1, 5, 6, 8, 17] {
        let broken = bad_checksum(&tokens[at]);
        tokens[at] = broken;
    }
    let mut results = Vec::new();
    let same_as_single = |tokens: &[String], results: &[Result<SessionInfo, Refusal>]| {
        assert_eq!(results.len(), tokens.len());
        for (token, result) in tokens.iter().zip(results) {
            let single = org.engine.validate(token, ip("10.0.0.1"), Requirement::Any);
            assert_eq!(
                result.map(|info| info.handle),
                single.map(|info| info.handle)
            );
        }
    };
    org.engine
        .validate_many(&tokens, &[ip("10.0.0.1")], Requirement::Any, &mut results);
    same_as_single(&tokens, &results);
    assert_eq!(results[3], Err(Refusal::Ended(EndReason::Logout)));
    for at in [1, 5, 6, 8, 17, 40] {
        assert_eq!(results[at], Err(Refusal::Malformed), "token {at}");
    }
    assert!(results[7].is_ok() && results[9].is_ok());
    // Batches shorter than, as long as, and just longer than the look-ahead.
    for len in 0..=7 {
        org.engine.validate_many(
            &tokens[4..4 + len],
            &[ip("10.0.0.1")],
            Requirement::Any,
            &mut results,
        );
        same_as_single(&tokens[4..4 + len], &results);
    }
    // One address per token, or one for all: a batch with fewer addresses than tokens refuses
    // the tokens without one instead of using another request's address.
    let good = [tokens[0].clone(), tokens[2].clone(), tokens[7].clone()];
    let addresses = [ip("10.0.0.1"), ip("10.0.0.1")];
    org.engine
        .validate_many(&good, &addresses, Requirement::Any, &mut results);
    assert!(results[0].is_ok() && results[1].is_ok());
    assert_eq!(results[2], Err(Refusal::IpMismatch));
    org.engine
        .validate_many(&good, &[], Requirement::Any, &mut results);
    assert!(results.iter().all(|r| *r == Err(Refusal::IpMismatch)));
}

#[test]
fn validate_many_brief_keeps_sessions_alive_and_reports_refusals() {
    let org = Org::default();
    let ada = org.login("ada", "10.0.0.1");
    let fin = org.login("fin", "10.0.0.1");
    let (ada_token, fin_token) = (ada.token.expose_secret(), fin.token.expose_secret());
    let batch = [ada_token, fin_token];
    let office = [ip("10.0.0.1")];
    let mut briefs = Vec::new();
    // Finance idles out after 30 minutes: a brief acceptance at 20 refreshes it, as a full one
    // does, so it is still live at 40.
    org.advance(20 * MIN);
    org.engine
        .validate_many_brief(&batch, &office, Requirement::Any, &mut briefs);
    let fin_brief = briefs[1].expect("finance session accepted");
    assert_eq!(fin_brief.user, fin.session.user);
    assert_eq!(fin_brief.profile, fin.session.profile);
    assert_eq!(fin_brief.level, fin.session.level);
    assert_eq!(fin_brief.session_type, SessionType::Ui);
    org.advance(20 * MIN);
    org.engine.drain_events();
    org.engine
        .validate_many_brief(&batch, &office, Requirement::Any, &mut briefs);
    assert_eq!(briefs[1].map(|brief| brief.handle), Ok(fin.session.handle));
    // Idle for 31 minutes: expired, reported once, as by a single call.
    org.advance(31 * MIN);
    org.engine
        .validate_many_brief(&batch[1..], &office, Requirement::Any, &mut briefs);
    assert_eq!(briefs, [Err(Refusal::Expired(ExpiryKind::Idle))]);
    let events = org.engine.drain_events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].kind, EventKind::Expired(ExpiryKind::Idle));
    assert_eq!(events[0].handle, Some(fin.session.handle));
    // A step-up requirement refuses a brief as it refuses a full answer.
    org.engine.validate_many_brief(
        &batch[..1],
        &office,
        Requirement::Level(SecurityLevel::HighAssurance),
        &mut briefs,
    );
    assert!(matches!(briefs[0], Err(Refusal::StepUpRequired { .. })));
    assert!(!format!("{briefs:?}").contains(&ada_token[4..20]));
}

#[test]
fn engine_tunables_are_checked() {
    assert!(Engine::builder().shards(3).build().is_err());
    assert!(Engine::builder().shards(8192).build().is_err());
    assert!(Engine::builder()
        .tombstone_retention(Duration::from_secs(25 * HOUR))
        .build()
        .is_err());
}

#[test]
fn tables_grow_and_shrink_through_shared_generations_without_losing_a_session() {
    let org = Org::default();
    let many: Vec<Issued> = (0..4000).map(|_| org.login("ada", "10.0.0.1")).collect();
    let grown = org.engine.stats();
    assert_eq!(grown.records, 4000);
    // Chosen selectors keep about nine in ten at home at this load (random ones about three
    // in ten); the margin is for the draws' randomness.
    assert!(
        grown.at_home * 10 >= grown.records * 8,
        "logins chose selectors whose slots were free, through every growth: {grown:?}"
    );
    assert!(
        grown.capacity * 7 >= 4000 * 8,
        "8 shards grew well past their first 16 slots: {grown:?}"
    );
    org.advance(MIN);
    for issued in &many {
        assert!(
            org.check(issued, "10.0.0.1").is_ok(),
            "no session lost moving"
        );
    }

    // Ada's sessions expire 2 h after their last use and are forgotten an hour later; Bob's,
    // issued in between (opportunistic sweeps running), outlive them.
    org.advance(2 * HOUR + 30 * MIN);
    let few: Vec<Issued> = (0..40).map(|_| org.login("bob", "10.0.0.1")).collect();
    org.advance(HOUR);
    let swept = org.engine.sweep_all();
    assert_eq!(swept.removed, 4000);
    let shrunk = org.engine.stats();
    assert_eq!((shrunk.records, shrunk.live), (40, 40));
    assert!(
        shrunk.capacity * 4 < grown.capacity,
        "sparse tables gave their slots back: {grown:?} -> {shrunk:?}"
    );
    for issued in &few {
        assert!(
            org.check(issued, "10.0.0.1").is_ok(),
            "survivors still validate"
        );
    }
    for issued in many.iter().step_by(97) {
        assert_eq!(org.check(issued, "10.0.0.1"), Err(Refusal::Unknown));
    }

    // And grow again, into generations the first growth freed or still holds.
    let again: Vec<Issued> = (0..3000).map(|_| org.login("ada", "10.0.0.1")).collect();
    for issued in again.iter().chain(&few) {
        assert!(org.check(issued, "10.0.0.1").is_ok());
    }
    assert_eq!(org.engine.stats().live, 3040);
}

#[test]
fn user_and_profile_keys_are_dense_indices_never_reused() {
    // Bindings keep per-key caches in arrays indexed by `index()`: keys must count up from 0
    // in the order entries are added, and a removed entry's index must not come back.
    let engine = Engine::builder().build().unwrap();
    let profiles: Vec<usize> = ["staff", "admins"]
        .iter()
        .map(|name| {
            let profile = Profile::builder(*name).build().unwrap();
            engine.add_profile(profile).unwrap().index()
        })
        .collect();
    assert_eq!(profiles, [0, 1]);
    let users: Vec<usize> = ["ada", "bob", "eve"]
        .iter()
        .map(|user| engine.add_user(user, "staff").unwrap().index())
        .collect();
    assert_eq!(users, [0, 1, 2]);
    engine.remove_user("bob").unwrap();
    assert_eq!(engine.add_user("bob", "admins").unwrap().index(), 3);
    let org = Org::default();
    let session = org.login("fin", "10.0.0.1").session;
    assert_eq!((session.user.index(), session.profile.index()), (3, 2));
}

/// Found by an audit: a validation that read an earlier second than the one that reported a
/// session's expiry (another core, or a clock stepped back) refreshed its last activity, so
/// the session validated again, yet every end refused it as expired: a session nothing could
/// end. A reported expiry is now final.
#[test]
fn a_reported_expiry_is_final() {
    let org = Org::default();
    let issued = org.login("ada", "10.0.0.1");
    let other = org.login("ada", "10.0.0.2");
    let idle = 2 * HOUR;
    org.clock.set(T0 + idle);
    assert_eq!(
        org.check(&issued, "10.0.0.1"),
        Err(Refusal::Expired(ExpiryKind::Idle))
    );
    // A request that read the clock one second earlier, then later ones.
    org.clock.set(T0 + idle - 1);
    assert_eq!(
        org.check(&issued, "10.0.0.1"),
        Err(Refusal::Expired(ExpiryKind::Idle))
    );
    assert!(
        org.check(&other, "10.0.0.2").is_ok(),
        "unreported: still live"
    );
    org.clock.set(T0 + idle + 10);
    assert_eq!(
        org.check(&issued, "10.0.0.1"),
        Err(Refusal::Expired(ExpiryKind::Idle))
    );
    assert_eq!(
        org.engine.logout(issued.token.expose_secret()),
        Err(Refusal::Expired(ExpiryKind::Idle))
    );
    let listed = org
        .engine
        .sessions(&SessionFilter::default(), None, 100)
        .unwrap();
    assert!(listed
        .rows
        .iter()
        .all(|row| row.info.handle != issued.session.handle));
}

/// A sweep's report is as final as a validation's.
#[test]
fn a_sweep_reported_expiry_is_final() {
    let org = Org::default();
    let issued = org.login("ada", "10.0.0.1");
    org.clock.set(T0 + 2 * HOUR);
    assert_eq!(org.engine.sweep_all().expired, 1);
    org.clock.set(T0 + 2 * HOUR - 1);
    assert_eq!(
        org.check(&issued, "10.0.0.1"),
        Err(Refusal::Expired(ExpiryKind::Idle))
    );
    assert_eq!(org.engine.stats().live, 0);
}

/// Found by an audit: the listing's source filter read `::ffff:10.0.0.0/104` as 10.0.0.0/8,
/// but `end_sessions_from` compared the mapped range with canonical origins and ended nothing.
#[test]
fn ending_a_mapped_range_ends_what_the_listing_shows() {
    let org = Org::default();
    let inside = org.login("ada", "10.0.0.1");
    let outside = org.login("bob", "203.0.113.9");
    let net: IpNet = "::ffff:10.0.0.0/104".parse().unwrap();
    let filter = SessionFilter {
        source: Some(net),
        ..SessionFilter::default()
    };
    assert_eq!(org.engine.sessions(&filter, None, 100).unwrap().total, 1);
    assert_eq!(org.engine.end_sessions_from(net), 1);
    assert_eq!(
        org.check(&inside, "10.0.0.1"),
        Err(Refusal::Ended(EndReason::SourceRange))
    );
    assert!(org.check(&outside, "203.0.113.9").is_ok());
}

/// Found by an audit: completing a challenge re-checked the login ranges but not the
/// profile's required level, so a profile raised to HIGH_ASSURANCE meanwhile still got a
/// STANDARD session from the pending password login.
#[test]
fn completing_a_challenge_rechecks_the_required_level() {
    let org = Org::default();
    let LoginOutcome::ChallengeRequired(challenge) = org
        .engine
        .login(&LoginRequest::new("ada", ip("203.0.113.5")))
        .unwrap()
    else {
        panic!("expected a challenge");
    };
    org.engine
        .update_profile(
            Profile::builder("staff")
                .required_level(SecurityLevel::HighAssurance)
                .build()
                .unwrap(),
        )
        .unwrap();
    let before = org.engine.stats().records;
    assert!(matches!(
        org.engine
            .complete_challenge(challenge.secret.expose_secret(), false)
            .unwrap(),
        LoginOutcome::StepUpRequired {
            required: SecurityLevel::HighAssurance,
            offered: SecurityLevel::Standard,
        }
    ));
    assert_eq!(org.engine.stats().records, before, "no session issued");
    assert!(matches!(
        org.engine
            .complete_challenge(challenge.secret.expose_secret(), false)
            .unwrap(),
        LoginOutcome::Denied(DenyReason::ChallengeInvalid)
    ));
}

/// Found by an audit: errors echo refused input, and a token glued to one more letter was
/// echoed whole (redaction wanted a boundary after it, and the echo keeps 64 characters).
#[test]
fn errors_never_echo_a_token_however_it_is_wrapped() {
    let org = Org::default();
    let issued = org.login("ada", "10.0.0.1");
    let token = issued.token.expose_secret();
    let secret_part = &token[TOKEN_PREFIX.len()..TOKEN_PREFIX.len() + 20];
    for input in [
        format!("{token}x"),
        format!("x{token}"),
        format!(" {}", &token[..TOKEN_LEN - 1]),
        format!("{token}{token}"),
    ] {
        let messages = [
            org.engine.user_profile(&input).unwrap_err().to_string(),
            org.engine
                .end_user_sessions(&input)
                .unwrap_err()
                .to_string(),
            input.parse::<Handle>().unwrap_err().to_string(),
            parse_cidr("ranges", &input).unwrap_err().to_string(),
            parse_ip(&input).unwrap_err().to_string(),
            org.engine.add_user(&input, "nope").unwrap_err().to_string(),
        ];
        for message in messages {
            assert!(
                !message.contains(secret_part),
                "{}",
                redact_token_like(&message)
            );
        }
    }
    org.engine.add_user(token, "staff").unwrap();
    let duplicate = org.engine.add_user(token, "staff").unwrap_err().to_string();
    assert!(
        !duplicate.contains(secret_part),
        "{}",
        redact_token_like(&duplicate)
    );
}

#[test]
fn one_session_by_handle_is_shown_while_live_and_never_refreshed() {
    let org = Org::default();
    let issued = org.login("ada", "10.0.0.1");
    org.advance(10 * MIN);
    let shown = org.engine.session(issued.session.handle).unwrap();
    assert_eq!(shown.last_activity, T0, "reading is not activity");
    assert_eq!(shown.user, issued.session.user);
    assert!(org.engine.end_session(issued.session.handle));
    assert_eq!(org.engine.session(issued.session.handle), None);
    assert_eq!(
        org.engine.session("swh_0000000000000001".parse().unwrap()),
        None
    );
}

/// An engine built for an expected number of sessions takes their room at build: logins up to
/// it never grow a table, and sweeping them all away does not shrink one below it, where an
/// engine built without the expectation grows and then gives the memory back.
#[test]
fn expected_sessions_reserve_room_that_logins_and_sweeps_keep() {
    const SESSIONS: usize = 4_000;
    let clock = ManualClock::new(T0);
    let build = |expected: usize| {
        let engine = Engine::builder()
            .settings(
                OrgSettings::builder()
                    .trusted_range("10.0.0.0/8")
                    .build()
                    .unwrap(),
            )
            .clock(Arc::new(clock.clone()))
            .shards(8)
            .tombstone_retention(Duration::ZERO)
            .expected_sessions(expected)
            .build()
            .unwrap();
        engine
            .add_profile(Profile::builder("staff").build().unwrap())
            .unwrap();
        engine.add_user("ada", "staff").unwrap();
        engine
    };
    let reserved = build(SESSIONS);
    let unreserved = build(0);
    let room = reserved.stats().capacity;
    assert!(
        room * 7 >= SESSIONS * 8,
        "{room} slots for {SESSIONS} sessions"
    );
    assert_eq!(unreserved.stats().capacity, 0);
    for engine in [&reserved, &unreserved] {
        for _ in 0..SESSIONS {
            let outcome = engine.login(&LoginRequest::new("ada", ip("10.0.0.1")));
            assert!(outcome.unwrap().issued().is_some());
        }
        assert_eq!(engine.stats().records, SESSIONS);
    }
    assert_eq!(reserved.stats().capacity, room, "no table grew");
    let grown = unreserved.stats().capacity;
    assert!(grown * 7 >= SESSIONS * 8);
    clock.advance(Duration::from_secs(25 * HOUR));
    for engine in [&reserved, &unreserved] {
        assert_eq!(engine.sweep_all().removed, SESSIONS);
        assert_eq!(engine.stats().records, 0);
    }
    assert_eq!(
        reserved.stats().capacity,
        room,
        "no table shrank below its room"
    );
    assert!(
        unreserved.stats().capacity < grown,
        "the others gave memory back"
    );

    let too_many = Engine::builder()
        .expected_sessions(MAX_EXPECTED_SESSIONS + 1)
        .build();
    assert!(matches!(
        too_many,
        Err(Error::OutOfRange {
            field: "expected_sessions",
            ..
        })
    ));
}
