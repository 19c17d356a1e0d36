//! A small end-to-end tour of the engine: an org with two profiles, logins from trusted and
//! untrusted addresses, validations, a step-up, an IP-lock refusal, a password reset, expiry and
//! a sweep. Run with `cargo run -p sessionward-core --example quickstart`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use sessionward_core::{
    Engine, LoginMethod, LoginOutcome, LoginRequest, ManualClock, OrgSettings, Profile,
    Requirement, SecurityLevel, SessionFilter,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let clock = ManualClock::new(1_700_000_000);
    let settings = OrgSettings::builder()
        .inactivity_timeout(Duration::from_secs(30 * 60))
        .lock_sessions_to_ip(true)
        .trusted_range("10.0.0.0/8")
        .high_assurance_operation("setup")
        .build()?;
    let engine = Engine::builder()
        .settings(settings)
        .clock(Arc::new(clock.clone()))
        .build()?;
    engine.add_profile(Profile::builder("staff").build()?)?;
    engine.add_profile(
        Profile::builder("admins")
            .session_timeout(Duration::from_secs(15 * 60))
            .required_level(SecurityLevel::HighAssurance)
            .build()?,
    )?;
    engine.add_user("ada", "staff")?;
    engine.add_user("root", "admins")?;

    let office: IpAddr = "10.0.0.7".parse()?;
    let cafe: IpAddr = "203.0.113.9".parse()?;

    let ada = engine
        .login(&LoginRequest::new("ada", office))?
        .issued()
        .ok_or("ada was not issued a session")?;
    println!(
        "ada logged in from the office: session {}",
        ada.session.handle
    );

    let outcome = engine.login(&LoginRequest::new("ada", cafe))?;
    if let LoginOutcome::ChallengeRequired(challenge) = outcome {
        println!(
            "ada from a cafe: challenged (expires at {})",
            challenge.expires_at
        );
    }
    let outcome = engine.login(&LoginRequest::new("root", office))?;
    println!("root with a password: {outcome:?}");
    let root = engine
        .login(&LoginRequest::new("root", office).method(LoginMethod::Mfa))?
        .issued()
        .ok_or("root was not issued a session")?;
    println!(
        "root with MFA: session {} ({})",
        root.session.handle, root.session.level
    );

    let token = ada.token.expose_secret();
    println!(
        "validate from the office: {:?}",
        engine
            .validate(token, office, Requirement::Any)
            .map(|s| s.handle)
    );
    println!(
        "validate from elsewhere: {:?}",
        engine.validate(token, cafe, Requirement::Any).err()
    );
    println!(
        "setup without step-up: {:?}",
        engine
            .validate(token, office, Requirement::Operation("setup"))
            .err()
    );
    engine.step_up(token, office, LoginMethod::Mfa)?;
    println!(
        "setup after step-up: {:?}",
        engine
            .validate(token, office, Requirement::Operation("setup"))
            .map(|s| s.level)
    );

    let page = engine.sessions(&SessionFilter::default(), None, 10)?;
    println!("active sessions: {}", page.total);
    for row in &page.rows {
        println!(
            "  {} {} {} from {}",
            row.info.handle, row.user_id, row.profile_name, row.info.source_ip
        );
    }

    println!(
        "password reset for ada ended {} session(s)",
        engine.reset_password("ada")?
    );
    println!(
        "ada's token now: {:?}",
        engine.validate(token, office, Requirement::Any).err()
    );

    clock.advance(Duration::from_secs(20 * 60));
    println!(
        "root after 20 idle minutes: {:?}",
        engine
            .validate(root.token.expose_secret(), office, Requirement::Any)
            .err()
    );
    println!("sweep: {:?}", engine.sweep_all());
    for event in engine.drain_events() {
        println!(
            "event at {}: {} {:?} user={:?}",
            event.at,
            event.kind.code(),
            event.handle.map(|h| h.to_string()),
            event.user
        );
    }
    Ok(())
}
