//! A whole run of the CI scenario: the report files it writes parse back, the HTML is well
//! formed, and the command-line tool exits with the right codes.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use sessionward_harness::{
    read_report, render_summary, run, write_report, BenchSettings, RunOptions, Scenario,
};

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Self(std::env::temp_dir().join(format!(
            "sessionward-sim-test-{}-{name}-{nanos}",
            std::process::id()
        )))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[path = "support/html.rs"]
mod html;
use html::check_well_formed;

#[path = "support/numbers.rs"]
mod numbers;
use numbers::group_digits;

#[test]
fn a_full_ci_run_writes_files_that_parse() {
    let scenario = Scenario::ci().with_bench(BenchSettings {
        closed_loop_secs: 0.05,
        closed_loop_sessions: 2_000,
        threads: vec![1, 2],
        memory_sessions: 20_000,
    });
    let report = run(&scenario, &RunOptions::default()).expect("run");
    assert!(report.passed(), "{:?}", report.checks.disagreements);
    assert_eq!(report.throughput.len(), 2);
    assert!(report
        .throughput
        .iter()
        .all(|p| p.validations_per_sec > 0.0));
    // The memory figure is its own engine's, the day's live sessions are the day's.
    let memory = report.memory.expect("memory measured on Linux");
    assert_eq!(memory.live_sessions, 20_000);
    assert!(
        memory.records_at_home * 10 >= memory.live_sessions * 8,
        "logins chose free slots: {memory:?}"
    );
    let day_end = report
        .simulated
        .minutes
        .last()
        .expect("minutes")
        .active_sessions;
    assert_eq!(report.simulated.live_sessions_at_end(), day_end);
    assert_ne!(day_end, 20_000);
    assert!(report.latency.samples > 0);
    assert!(report.totals.jobs_run > 0);
    assert!(!report.totals.attacks.is_empty());

    let dir = TempDir::new("full");
    let files = write_report(&dir.0, &report).expect("written");
    assert_eq!(read_report(&files.json).expect("parses"), report);
    let html = fs::read_to_string(&files.html).expect("html");
    check_well_formed(&html).expect("well-formed html");
    assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());
    assert!(html.matches("<svg").count() >= 5, "five charts");
    let markdown = fs::read_to_string(&files.markdown).expect("markdown");
    assert!(markdown.contains("ci"));
    assert!(markdown.contains(&format!(
        "| live sessions at the end of the day | {} |",
        group_digits(day_end)
    )));
    assert!(markdown.contains("measured with 20,000 sessions in a separate engine"));
}

#[test]
fn a_run_without_the_memory_measurement_says_so() {
    let options = RunOptions {
        closed_loop: false,
        memory: false,
        ..RunOptions::default()
    };
    let report = run(&Scenario::ci(), &options).expect("run");
    assert_eq!(report.memory, None);
    let text = render_summary(&report);
    assert!(text.contains("memory       not measured"), "{text}");
    assert!(!text.contains(" 0 B"), "{text}");
    assert!(text.contains(&format!(
        ", {} at the end",
        group_digits(report.simulated.live_sessions_at_end())
    )));
}

fn harness() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sessionward-harness"))
}

#[test]
fn the_cli_passes_the_ci_scenario_and_refuses_bad_input_with_exit_code_2() {
    let dir = TempDir::new("cli");
    let out = harness()
        .args([
            "--ci",
            "--no-closed-loop",
            "--no-progress",
            "--seed",
            "5",
            "--out",
        ])
        .arg(&dir.0)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("PASS"), "{stdout}");
    let report = read_report(&dir.0.join("report.json")).expect("report.json");
    assert_eq!(report.seed, 5);
    assert!(report.command.contains("--seed 5"), "{}", report.command);

    let bad = dir.0.join("bad.toml");
    let text = Scenario::default_toml().replace(
        "session_timeout_minutes = 30\nmax_session_length_minutes = 240",
        "session_timeout_minutes = 10\nmax_session_length_minutes = 240",
    );
    fs::write(&bad, text).expect("write");
    let out = harness()
        .arg("--scenario")
        .arg(&bad)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("profiles[1].session_timeout_minutes"),
        "{stderr}"
    );
    assert!(stderr.contains("15m..=24h"), "{stderr}");
    assert!(stderr.contains("bad.toml:"), "{stderr}");

    for args in [
        &["--seed", "minus one"][..],
        &["--frobnicate"][..],
        &["--threads", "0"][..],
    ] {
        let out = harness().args(args).output().expect("runs");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    let help = harness().arg("--help").output().expect("runs");
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--closed-loop-secs"));
}
