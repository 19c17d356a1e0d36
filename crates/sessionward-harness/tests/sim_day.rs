//! The simulated day on the CI scenario: the engine agrees with the model on several seeds, a
//! seed replays the same day, and a wrong expectation is caught (the checks are not hollow).

use sessionward_harness::{simulate_day, DayResult, ModelSkew, Scenario, SimOptions};

fn day(seed: u64, options: &SimOptions) -> DayResult {
    simulate_day(&Scenario::ci().with_seed(seed), options).expect("the CI scenario runs")
}

#[test]
fn the_ci_scenario_passes_its_checks_on_three_seeds() {
    for seed in [1, 2, 3] {
        let day = day(seed, &SimOptions::default());
        assert_eq!(
            day.checks.disagreement_count, 0,
            "seed {seed}: {:#?}",
            day.checks.disagreements
        );
        assert!(day.checks.expected_outcomes > 10_000, "seed {seed}");
        assert_eq!(day.checks.agreed, day.checks.expected_outcomes);
        assert_eq!(day.simulated.minutes.len(), 120);
        // The day exercises every kind of refusal the scenario is built to produce, refused
        // validations and refused logins each in their own count.
        let refusals = &day.totals.refusals;
        for code in [
            "malformed",
            "unknown",
            "expired_idle",
            "ip_mismatch",
            "step_up_required",
            "ended_admin",
        ] {
            assert!(
                refusals.get(code).copied().unwrap_or(0) > 0,
                "seed {seed}: no {code} in {refusals:?}"
            );
        }
        let login_refusals = &day.totals.login_refusals;
        for code in ["login_denied_ip_not_allowed", "login_step_up_required"] {
            assert!(
                login_refusals.get(code).copied().unwrap_or(0) > 0,
                "seed {seed}: no {code} in {login_refusals:?}"
            );
        }
        assert!(
            refusals.keys().all(|code| !code.starts_with("login_")),
            "seed {seed}: a login refusal among refused validations: {refusals:?}"
        );
        // Refused validations are exactly the per-minute ones (which count validations only).
        let per_minute: u64 = day
            .simulated
            .minutes
            .iter()
            .map(|m| m.refusals_total())
            .sum();
        assert_eq!(day.totals.refusals_total(), per_minute, "seed {seed}");
        // Every login attempt gave a session, a challenge or a refusal.
        let t = &day.totals;
        assert_eq!(
            t.login_attempts,
            t.logins + t.challenges + t.login_refusals_total(),
            "seed {seed}"
        );
        for action in [
            "end_session",
            "end_user_sessions",
            "reset_password",
            "end_profile",
            "end_range",
            "end_all",
        ] {
            assert!(
                day.totals.ended_by_admin.contains_key(action),
                "seed {seed}: no {action}"
            );
        }
        // Grants with a guessed client secret, from inside the integration's login ranges: the
        // secret check alone refuses them, each one as invalid_client.
        let guesses = day.totals.attacks["guessed_client_secret"];
        assert!(guesses.attempts > 0, "seed {seed}");
        assert_eq!(guesses.refused, guesses.attempts, "seed {seed}");
        assert_eq!(
            login_refusals.get("grant_invalid_client").copied(),
            Some(guesses.attempts),
            "seed {seed}"
        );
        let attacks = day.totals.attacks_total();
        assert!(attacks.attempts > 0);
        assert_eq!(
            attacks.refused, attacks.attempts,
            "seed {seed}: an attack got through"
        );
        assert!(day.totals.jobs_run > 0 && day.totals.challenges > 0 && day.totals.step_ups > 0);
        assert!(!day.latency.is_empty());
        assert!(day.wall.validations_per_sec.is_finite());
    }
}

#[test]
fn a_seed_replays_the_same_day() {
    let options = SimOptions::default();
    let (a, b) = (day(7, &options), day(7, &options));
    assert_eq!(a.simulated, b.simulated);
    assert_eq!(a.totals, b.totals);
    assert_eq!(a.checks, b.checks);
    assert_eq!(
        a.latency.len(),
        b.latency.len(),
        "the same validations are sampled"
    );
    let other = day(8, &options);
    assert_ne!(a.simulated, other.simulated, "another seed, another day");
}

#[test]
fn a_wrong_expectation_is_caught() {
    let skewed = SimOptions {
        model_skew: Some(ModelSkew::SessionTimeoutMinutes {
            profile: "finance".into(),
            minutes: 20,
        }),
        ..SimOptions::default()
    };
    let day = day(1, &skewed);
    assert!(
        day.checks.disagreement_count > 0,
        "a model that believes 20 minutes where the engine has 30 must disagree"
    );
    assert!(day.checks.agreed < day.checks.expected_outcomes);
    let first = &day.checks.disagreements[0];
    assert!(first.what.contains("finance"), "{first:?}");
    assert!(
        day.checks
            .disagreements
            .iter()
            .any(|d| d.expected.contains("idle 1200s") && d.observed.contains("idle 1800s")),
        "{:#?}",
        day.checks.disagreements
    );
    assert!(
        day.checks.disagreements.len() <= 100,
        "kept disagreements are capped"
    );
}

/// One integration user and one job that makes no call, over three minutes.
const IDLE_JOB: &str = r#"
name = "idle-job"
minutes = 3

[[pools]]
name = "datacenter"
ranges = ["192.0.2.0/24"]

[[profiles]]
name = "integration"
users = 1
integration = true
login_ranges = ["192.0.2.0/24"]

[workday]
arrival_weights = [1]
departure_weights = [1]
activity_weights = [1]
requests_per_active_user_per_minute = 1.0

[[credentials]]
name = "erp"
profile = "integration"
scopes = ["orders", "invoices"]

[[jobs]]
name = "idle"
credential = "erp"
every_minutes = 1
calls = CALLS
runner_ip = "192.0.2.10"
"#;

#[test]
fn a_job_counts_only_the_engine_calls_it_makes() {
    let idle = Scenario::from_toml_str(&IDLE_JOB.replace("CALLS", "0"), "idle.toml")
        .expect("scenario loads");
    let day = simulate_day(&idle, &SimOptions::default()).expect("runs");
    assert_eq!(day.totals.jobs_run, 3);
    // Only the two end-of-minute checks (live sessions, audit events) per minute: a job that
    // calls nothing adds no "agreed" outcome of its own.
    assert_eq!(day.checks.expected_outcomes, 2 * 3);
    assert_eq!(day.checks.agreed, day.checks.expected_outcomes);

    let busy = Scenario::from_toml_str(&IDLE_JOB.replace("CALLS", "2"), "busy.toml")
        .expect("scenario loads");
    let day = simulate_day(&busy, &SimOptions::default()).expect("runs");
    assert_eq!(
        day.checks.disagreement_count, 0,
        "{:?}",
        day.checks.disagreements
    );
    // One grant, then two validations per run: 1 + 3 * 2 engine outcomes on top.
    assert_eq!(day.checks.expected_outcomes, 2 * 3 + 1 + 3 * 2);
    assert_eq!(day.totals.logins, 1);
    assert_eq!(day.totals.validations, 6);
}

#[test]
fn jobs_get_their_tokens_from_the_oauth_grant_with_its_scope_check() {
    // The job asks for a scope its credential was not registered with: the grant refuses it
    // (invalid_scope) before any login, as the model predicts; a direct login of the
    // integration user would have issued a session.
    let text = IDLE_JOB.replace("CALLS", "2").replace(
        "runner_ip = \"192.0.2.10\"",
        "runner_ip = \"192.0.2.10\"\nscopes = [\"orders\", \"admin\"]",
    );
    let scenario = Scenario::from_toml_str(&text, "scopes.toml").expect("scenario loads");
    let day = simulate_day(&scenario, &SimOptions::default()).expect("runs");
    assert_eq!(
        day.checks.disagreement_count, 0,
        "{:?}",
        day.checks.disagreements
    );
    assert_eq!(day.totals.logins, 0, "no session for a refused grant");
    assert_eq!(day.totals.login_attempts, 3);
    assert_eq!(
        day.totals
            .login_refusals
            .get("grant_invalid_scope")
            .copied(),
        Some(3)
    );
    // One grant per run, refused, then the job gives up: 3 checked grants.
    assert_eq!(day.checks.expected_outcomes, 2 * 3 + 3);

    // A scope name the org would refuse to register is refused with the scenario's line.
    let bad = IDLE_JOB
        .replace("CALLS", "2")
        .replace("\"invoices\"]", "\"has space\"]");
    let err = Scenario::from_toml_str(&bad, "bad.toml").expect_err("refused");
    assert_eq!(err.field(), Some("credentials[0].scopes[1]"), "{err}");
}

#[test]
fn ipv4_mapped_addresses_are_presented_and_checked_as_their_ipv4_form() {
    // The day presents some requests, logins and job calls as `::ffff:a.b.c.d` and ends one
    // range spelled `::ffff:172.16.0.0/113`; with the model's address rule the engine agrees
    // (the CI day passes, above). A model that reads mapped addresses as other addresses -
    // what an engine that forgot to canonicalise would do - must disagree on each kind of call,
    // which proves those calls are made and compared.
    let skewed = SimOptions {
        model_skew: Some(ModelSkew::MappedAddressesAreIpv6),
        disagreement_cap: usize::MAX,
        ..SimOptions::default()
    };
    let day = day(1, &skewed);
    let whats: Vec<&str> = day
        .checks
        .disagreements
        .iter()
        .map(|d| d.what.as_str())
        .collect();
    for call in [
        "validate Any from ::ffff:",
        "login password from ::ffff:",
        "grant warehouse scope (all) from ::ffff:192.0.2.11",
    ] {
        assert!(
            whats.iter().any(|what| what.starts_with(call)),
            "no disagreement on {call}: {whats:#?}"
        );
    }
    // Disagreements name calls and outcomes, never a token or a client secret.
    for d in &day.checks.disagreements {
        for text in [&d.what, &d.expected, &d.observed] {
            assert!(!text.contains("swd_"), "{d:?}");
        }
    }
    let range_end = day
        .checks
        .disagreements
        .iter()
        .find(|d| d.what == "end_sessions_from ::ffff:172.16.0.0/113")
        .unwrap_or_else(|| panic!("the mapped range end was not checked: {whats:#?}"));
    // The skewed model ends only the sessions it believes began at a mapped address; the
    // engine ends every session of the IPv4 range.
    let count = |text: &str| text.parse::<u64>().expect("a count");
    assert!(
        count(&range_end.expected) < count(&range_end.observed),
        "{range_end:?}"
    );
}
