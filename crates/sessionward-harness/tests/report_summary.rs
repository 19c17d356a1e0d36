//! The latency recorder's percentiles, the terminal summary and the progress bar.

use sessionward_harness::{
    render_summary, Disagreement, LatencyRecorder, ProgressBar, Report, ThroughputPoint,
};

#[test]
fn p50_of_one_to_a_thousand_is_about_five_hundred() {
    let mut recorder = LatencyRecorder::new();
    for ns in 1..=1000 {
        recorder.record(ns);
    }
    let s = recorder.summary();
    assert_eq!(s.samples, 1000);
    // 3 significant figures: within one unit at this magnitude.
    assert!(s.p50_ns.abs_diff(500) <= 1, "p50 {}", s.p50_ns);
    assert!(s.p99_ns.abs_diff(990) <= 1, "p99 {}", s.p99_ns);
    assert!(s.p999_ns.abs_diff(999) <= 1, "p99.9 {}", s.p999_ns);
    assert!(s.max_ns.abs_diff(1000) <= 1, "max {}", s.max_ns);
}

#[test]
fn merging_per_thread_recorders_equals_one_recorder() {
    let mut whole = LatencyRecorder::new();
    let mut parts = [LatencyRecorder::new(), LatencyRecorder::new()];
    for ns in 1..=10_000u64 {
        whole.record(ns * 7);
        parts[(ns % 2) as usize].record(ns * 7);
    }
    let [mut a, b] = parts;
    a.merge(&b);
    assert_eq!(a.summary(), whole.summary());
    assert_eq!(a.len(), 10_000);
}

#[test]
fn summary_is_short_and_names_the_verdict() {
    let mut report = Report {
        title: "nightly".to_owned(),
        scenario_name: "small-org".to_owned(),
        seed: 9,
        throughput: vec![
            ThroughputPoint {
                threads: 2,
                validations_per_sec: 9_500_000.0,
                duration_secs: 1.0,
            },
            ThroughputPoint {
                threads: 1,
                validations_per_sec: 5_000_000.0,
                duration_secs: 1.0,
            },
        ],
        ..Report::default()
    };
    report.latency.p99_ns = 1_250;
    report.totals.refusals = [
        ("expired_idle".to_owned(), 30),
        ("ip_mismatch".to_owned(), 70),
    ]
    .into();
    report.totals.validations = 1_000;
    report.checks.expected_outcomes = 1_000;
    report.checks.agreed = 1_000;

    let text = render_summary(&report);
    assert!(text.lines().count() <= 16, "{text}");
    assert!(text.contains("PASS"));
    assert!(text.contains("p99 1.25 µs"));
    assert!(text.contains("1 thr 5M/s, 2 thr 9.5M/s"), "{text}");
    // Most frequent reason first.
    assert!(text.contains("ip_mismatch 70, expired_idle 30"), "{text}");

    report.checks.record_disagreement(
        Disagreement {
            minute: 3,
            what: "validate".to_owned(),
            expected: "expired(idle)".to_owned(),
            observed: "ok".to_owned(),
        },
        5,
    );
    let text = render_summary(&report);
    assert!(text.contains("FAIL: 1 disagreement ("), "{text}");
    assert!(text.contains("expected expired(idle), observed ok"));
}

#[test]
fn a_report_that_checked_nothing_fails() {
    let mut report = Report::default();
    assert_eq!(report.checks.expected_outcomes, 0);
    assert!(!report.passed(), "no outcome compared: not a pass");
    let text = render_summary(&report);
    assert!(text.contains("FAIL: nothing was checked"), "{text}");
    assert!(!text.contains("PASS"), "{text}");

    report.checks.expected_outcomes = 5;
    report.checks.agreed = 5;
    assert!(report.passed());
    // Agreement must cover every checked outcome, even when no disagreement was recorded.
    report.checks.agreed = 4;
    assert!(!report.passed());
}

#[test]
fn progress_bar_survives_any_sequence() {
    // Under `cargo test` stderr is usually not a terminal: only finish prints.
    let mut bar = ProgressBar::new(100, "test");
    for done in [0, 10, 5, 100, 1_000] {
        bar.set(done);
    }
    bar.finish();
    bar.finish();
    let mut empty = ProgressBar::new(0, "empty");
    empty.set(0);
    drop(empty);
}
