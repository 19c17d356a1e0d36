//! The three report files: JSON round trip, Markdown content, and a self-contained,
//! well-formed, escaped HTML page with five charts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};
use std::{fs, io};

use sessionward_harness::{
    read_report, render_summary, write_report, AttackStats, Checks, Disagreement, LatencyRecorder,
    Machine, MemoryStats, MinuteStats, Report, ReportError, SimulatedDay, ThroughputPoint, Totals,
    WallStats, SCHEMA_VERSION,
};

const EVIL_REASON: &str = "<img onerror=x>";
const COMMAND: &str =
    r#"target/release/sessionward-harness --scenario "mid-size org" --seed 42 --out 'r&d'"#;

/// A report over 600 simulated minutes with varying traffic and five refusal reasons, one of
/// them an HTML injection attempt and one present only in the totals.
fn synthetic_report() -> Report {
    let mut minutes = Vec::new();
    let mut totals = Totals::default();
    let mut latency = LatencyRecorder::new();
    for minute in 0..600u32 {
        let m = u64::from(minute);
        let mut refusals = BTreeMap::new();
        for (reason, n) in [
            ("expired_idle", m % 7 + m / 60),
            ("ip_mismatch", m % 3),
            ("step_up_required", if m > 100 { m % 5 } else { 0 }),
            (EVIL_REASON, u64::from(m % 50 == 0)),
        ] {
            if n > 0 {
                refusals.insert(reason.to_owned(), n);
                *totals.refusals.entry(reason.to_owned()).or_default() += n;
            }
        }
        let stats = MinuteStats {
            minute,
            active_sessions: 1_000 + (m * 37) % 500 + m * 2,
            logins: 10 + m % 17,
            validations: 5_000 + (m * 97) % 3_000,
            refusals,
        };
        totals.logins += stats.logins;
        totals.validations += stats.validations;
        latency.record(60 + (m * 13) % 200);
        minutes.push(stats);
    }
    totals.refusals.insert("malformed_token".to_owned(), 17);
    totals.login_attempts = 2_000;
    totals.login_refusals = [
        ("login_denied_ip_not_allowed".to_owned(), 30),
        ("login_step_up_required".to_owned(), 10),
    ]
    .into();
    totals.challenges = 321;
    totals.step_ups = 45;
    totals.jobs_run = 900;
    totals.ended_by_admin = [("end_user".to_owned(), 12), ("end_profile".to_owned(), 340)].into();
    totals.attacks = [
        (
            "forged_token".to_owned(),
            AttackStats {
                attempts: 1_000,
                refused: 1_000,
            },
        ),
        (
            "stolen_token_other_ip".to_owned(),
            AttackStats {
                attempts: 250,
                refused: 250,
            },
        ),
    ]
    .into();
    Report {
        schema_version: SCHEMA_VERSION,
        title: "Mid-size org, one day".to_owned(),
        command: COMMAND.to_owned(),
        machine: Machine {
            cores: 2,
            cpu_model: "Test CPU @ 2.80GHz".to_owned(),
            os: "linux x86_64".to_owned(),
        },
        scenario_name: "mid-size-org".to_owned(),
        seed: 42,
        simulated: SimulatedDay { minutes },
        totals,
        checks: Checks {
            expected_outcomes: 3_500_000,
            agreed: 3_500_000,
            disagreement_count: 0,
            disagreements: Vec::new(),
        },
        throughput: vec![
            ThroughputPoint {
                threads: 2,
                validations_per_sec: 11_234_567.891,
                duration_secs: 2.0 / 3.0,
            },
            ThroughputPoint {
                threads: 1,
                validations_per_sec: 6_100_000.25,
                duration_secs: 1.0,
            },
        ],
        latency: latency.summary(),
        wall: WallStats {
            simulation_secs: 3.217_592_653_589_793,
            validations_per_sec: 1.0 / 3.0 * 1e7,
            logins_per_sec: 12_345.678,
        },
        // The memory measurement fills an engine of its own, far larger than the day's.
        memory: Some(MemoryStats {
            live_sessions: 1_000_000,
            bytes_per_live_session: 93.25,
            records_at_home: 916_000,
        }),
    }
}

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!(
            "sessionward-report-test-{}-{name}-{nanos}",
            std::process::id()
        ));
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[path = "support/html.rs"]
mod html;
use html::check_well_formed;

#[path = "support/numbers.rs"]
mod numbers;
use numbers::group_digits;

/// The `<svg ...>...</svg>` element with the given id.
fn svg_by_id<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("<svg class=\"chart\" id=\"{id}\""))
        .unwrap_or_else(|| panic!("no chart {id}"));
    let end = html[start..].find("</svg>").expect("chart closed");
    &html[start..start + end + "</svg>".len()]
}

/// The `<g class="legend">` group of a chart.
fn legend_of(svg: &str) -> &str {
    let start = svg
        .find("<g class=\"legend\">")
        .expect("chart has a legend");
    let end = svg[start..].find("</g>").expect("legend closed");
    &svg[start..start + end]
}

#[test]
fn checker_rejects_broken_html() {
    assert!(check_well_formed("<p><b>x</b></p>").is_ok());
    assert!(check_well_formed("<meta charset=\"utf-8\"><br><rect x='1'/>").is_ok());
    assert!(check_well_formed("<p><b>x</p></b>").is_err());
    assert!(check_well_formed("<p>x").is_err());
    assert!(check_well_formed("<p class=x>y</p>").is_err());
    assert!(check_well_formed("<input disabled>").is_err());
    assert!(check_well_formed("<p>a > b</p>").is_err());
    assert!(check_well_formed("<p>R&D</p>").is_err());
    assert!(check_well_formed("<style>a > b { }</style><p>&amp;</p>").is_ok());
}

#[test]
fn json_round_trips_into_the_same_report() {
    let report = synthetic_report();
    let dir = TempDir::new("json");
    let files = write_report(&dir.0, &report).expect("report written");
    assert_eq!(files.json, dir.0.join("report.json"));

    let text = fs::read_to_string(&files.json).expect("report.json readable");
    let value: serde_json::Value = serde_json::from_str(&text).expect("valid json");
    assert_eq!(value["schema_version"], SCHEMA_VERSION);
    assert!(text.contains("\n  \"title\""), "pretty-printed");

    let parsed: Report = serde_json::from_str(&text).expect("parses as a Report");
    assert_eq!(parsed, report);
    assert_eq!(parsed.schema_version, SCHEMA_VERSION);
    assert_eq!(read_report(&files.json).expect("read_report"), report);
    // No temporary files are left behind.
    let mut names: Vec<String> = fs::read_dir(&dir.0)
        .expect("dir listed")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["report.html", "report.json", "report.md"]);
}

#[test]
fn html_is_well_formed_self_contained_and_escaped() {
    let report = synthetic_report();
    let dir = TempDir::new("html");
    let files = write_report(&dir.0, &report).expect("report written");
    let html = fs::read_to_string(&files.html).expect("report.html readable");

    check_well_formed(&html).expect("well-formed html");
    assert_eq!(html.matches("<svg").count(), 5, "five charts");
    assert!(!html.contains("<script src"));
    assert!(!html.contains("http://") && !html.contains("https://"));
    assert!(!html.contains("<link"), "no external stylesheet");

    // The injected reason appears only escaped.
    assert!(!html.contains(EVIL_REASON));
    assert!(!html.contains("<img"));
    assert!(html.contains(&escape(EVIL_REASON)));
    assert!(html.contains(&escape(COMMAND)));
    assert!(!html.contains(COMMAND));

    // Every refusal reason has a legend entry in the refusals chart.
    let legend = legend_of(svg_by_id(&html, "chart-refusals"));
    for reason in report.totals.refusals.keys() {
        let entry = format!(">{}</text>", escape(reason));
        assert!(legend.contains(&entry), "legend lacks {reason}");
    }
    let legend = legend_of(svg_by_id(&html, "chart-logins-validations"));
    assert!(legend.contains("logins") && legend.contains("validations"));

    // Axes have tick labels: the simulated day's clock and the percentiles.
    let active = svg_by_id(&html, "chart-active-sessions");
    assert!(active.contains(">2:00</text>") && active.contains(">8:00</text>"));
    assert!(active.contains("<polyline"));
    let latency = svg_by_id(&html, "chart-latency");
    for label in [">p50</text>", ">p99</text>", ">p99.9</text>", ">max</text>"] {
        assert!(latency.contains(label), "latency chart lacks {label}");
    }
    let throughput = svg_by_id(&html, "chart-throughput");
    assert_eq!(throughput.matches("<rect class=\"bar\"").count(), 2);
    assert!(throughput.contains(">1 thr</text>") && throughput.contains(">2 thr</text>"));

    assert!(html.contains("class=\"banner pass\""));
    assert!(!html.contains("FAIL"));
}

#[test]
fn markdown_names_the_command_and_the_p99() {
    let report = synthetic_report();
    let dir = TempDir::new("md");
    let files = write_report(&dir.0, &report).expect("report written");
    let md = fs::read_to_string(&files.markdown).expect("report.md readable");
    assert!(md.contains(COMMAND), "command verbatim");
    let p99 = report.latency.p99_ns;
    assert!(p99 > 0);
    assert!(md.contains(&format!("| p99 | {p99} |")), "p99 row:\n{md}");
    assert!(md.contains("**Checks: PASS**"));
    assert!(md.contains("| end_profile | 340 |"));
    assert!(md.contains("| forged_token | 1,000 | 1,000 | 0 |"));
    assert!(md.contains(&format!("| {} | 12 |", "&lt;img onerror=x&gt;")));
}

/// The text of the summary table row named `name` in `report.html`.
fn html_summary_value(html: &str, name: &str) -> String {
    let row = format!("<tr><td>{name}</td><td class=\"num\">");
    let start = html.find(&row).unwrap_or_else(|| panic!("no row {name}")) + row.len();
    let end = html[start..].find("</td>").expect("cell closed");
    html[start..start + end].to_owned()
}

#[test]
fn live_sessions_at_the_end_come_from_the_day_and_memory_from_its_own_engine() {
    let report = synthetic_report();
    let day_end = report
        .simulated
        .minutes
        .last()
        .expect("minutes")
        .active_sessions;
    assert_eq!(day_end, 2_361);
    assert_eq!(report.simulated.live_sessions_at_end(), day_end);
    assert_ne!(report.simulated.peak_active_sessions(), day_end);
    let dir = TempDir::new("live");
    let files = write_report(&dir.0, &report).expect("report written");
    let measured = "93 B per session, measured with 1,000,000 sessions in a separate engine \
                    (91.6% of its records at their home slot)";

    let md = fs::read_to_string(&files.markdown).expect("report.md readable");
    assert!(
        md.contains("| live sessions at the end of the day | 2,361 |"),
        "{md}"
    );
    assert!(md.contains(&format!("| memory (separate measurement) | {measured} |")));
    let html = fs::read_to_string(&files.html).expect("report.html readable");
    assert_eq!(
        html_summary_value(&html, "live sessions at the end of the day"),
        "2,361"
    );
    assert_eq!(
        html_summary_value(&html, "memory (separate measurement)"),
        measured
    );
    let summary = render_summary(&report);
    assert!(summary.contains(", 2,361 at the end"), "{summary}");
    assert!(
        summary.contains(&format!("memory       {measured}")),
        "{summary}"
    );
    for text in [&md, &html, &summary] {
        assert!(
            !text.contains("1,000,000 live"),
            "the measurement is not the day"
        );
    }

    // Not measured: said so, and no "0 B" anywhere.
    let unmeasured = Report {
        memory: None,
        ..report
    };
    let dir = TempDir::new("unmeasured");
    let files = write_report(&dir.0, &unmeasured).expect("report written");
    let md = fs::read_to_string(&files.markdown).expect("report.md readable");
    let html = fs::read_to_string(&files.html).expect("report.html readable");
    let summary = render_summary(&unmeasured);
    assert!(md.contains("| memory (separate measurement) | not measured |"));
    assert_eq!(
        html_summary_value(&html, "memory (separate measurement)"),
        "not measured"
    );
    assert!(summary.contains("memory       not measured"), "{summary}");
    for text in [&md, &html, &summary] {
        assert!(!text.contains(" 0 B"), "{text}");
        assert!(text.contains("2,361"));
    }
    assert_eq!(read_report(&files.json).expect("read back"), unmeasured);
}

#[test]
fn refused_logins_are_reported_apart_from_refused_validations() {
    let report = synthetic_report();
    let t = &report.totals;
    let refused = t.refusals_total();
    assert_eq!(t.login_refusals_total(), 40);
    let share = format!(
        "{:.1}% of validations",
        refused as f64 * 100.0 / t.validations as f64
    );
    let dir = TempDir::new("refusals");
    let files = write_report(&dir.0, &report).expect("report written");

    let md = fs::read_to_string(&files.markdown).expect("report.md readable");
    let validation_row = format!(
        "| refused validations | {} ({share}) |",
        group_digits(refused)
    );
    assert!(md.contains(&validation_row), "{validation_row}\n{md}");
    assert!(md.contains("| login attempts | 2,000 |"));
    assert!(md.contains("| refused logins | 40 (2.0% of login attempts) |"));
    let validations_table = section(&md, "## Refused validations by reason", "##");
    let logins_table = section(&md, "## Refused logins by reason", "##");
    assert!(!validations_table.contains("login_"), "{validations_table}");
    assert!(validations_table.contains("| malformed_token | 17 |"));
    assert!(logins_table.contains("| login_denied_ip_not_allowed | 30 | 75.0% |"));
    assert!(logins_table.contains("| login_step_up_required | 10 | 25.0% |"));

    let html = fs::read_to_string(&files.html).expect("report.html readable");
    assert_eq!(
        html_summary_value(&html, "refused validations"),
        format!("{} ({share})", group_digits(refused))
    );
    assert_eq!(
        html_summary_value(&html, "refused logins"),
        "40 (2.0% of login attempts)"
    );
    let validations_table = section(&html, "<h2>Refused validations by reason</h2>", "<h2>");
    let logins_table = section(&html, "<h2>Refused logins by reason</h2>", "<h2>");
    assert!(!validations_table.contains("login_"));
    assert!(logins_table.contains("login_step_up_required"));
    assert!(!legend_of(svg_by_id(&html, "chart-refusals")).contains("login_"));

    let summary = render_summary(&report);
    assert!(
        summary.contains(&format!(
            "{} refused ({share}): expired_idle",
            group_digits(refused)
        )),
        "{summary}"
    );
    assert!(
        summary.contains(
            "40 of 2,000 login attempts refused (2.0%): login_denied_ip_not_allowed 30, \
             login_step_up_required 10"
        ),
        "{summary}"
    );
}

/// The text from `heading` to the next `next` after it (or to the end).
fn section<'a>(text: &'a str, heading: &str, next: &str) -> &'a str {
    let start = text.find(heading).unwrap_or_else(|| panic!("no {heading}")) + heading.len();
    let end = text[start..].find(next).map_or(text.len(), |i| start + i);
    &text[start..end]
}

#[test]
fn a_disagreement_fails_the_report_and_the_banner() {
    let mut report = synthetic_report();
    assert!(report.passed());
    report.checks.agreed -= 1;
    report.checks.record_disagreement(
        Disagreement {
            minute: 61,
            what: "validate after end_user <u1>".to_owned(),
            expected: "ended(admin)".to_owned(),
            observed: "ok".to_owned(),
        },
        10,
    );
    assert!(!report.passed());
    assert_eq!(report.checks.disagreement_count, 1);

    let dir = TempDir::new("fail");
    let files = write_report(&dir.0, &report).expect("report written");
    let html = fs::read_to_string(&files.html).expect("report.html readable");
    check_well_formed(&html).expect("well-formed html");
    let banner_start = html
        .find("<div class=\"banner fail\"")
        .expect("fail banner");
    let banner = &html[banner_start..banner_start + html[banner_start..].find("</div>").unwrap()];
    assert!(banner.contains("FAIL"), "{banner}");
    assert!(!html.contains("banner pass"));
    assert!(html.contains("validate after end_user &lt;u1&gt;"));
    let md = fs::read_to_string(&files.markdown).expect("report.md readable");
    assert!(md.contains("**Checks: FAIL**"));

    // A count beyond the kept list still fails.
    let mut counted_only = synthetic_report();
    counted_only.checks.disagreement_count = 3;
    assert!(!counted_only.passed());
}

#[test]
fn empty_report_still_renders_five_charts() {
    let dir = TempDir::new("empty");
    let files = write_report(&dir.0, &Report::default()).expect("report written");
    let html = fs::read_to_string(&files.html).expect("report.html readable");
    check_well_formed(&html).expect("well-formed html");
    assert_eq!(html.matches("<svg").count(), 5);
    assert_eq!(html.matches(">no data</text>").count(), 5);
    // Nothing was checked: that is no pass.
    assert!(html.contains("<div class=\"banner fail\" id=\"verdict\">FAIL: nothing was checked"));
    assert!(!html.contains("banner pass"));
    let md = fs::read_to_string(&files.markdown).expect("report.md readable");
    assert!(
        md.contains("**Checks: FAIL** - nothing was checked"),
        "{md}"
    );
}

#[test]
fn errors_name_the_path_or_field() {
    // A non-finite rate is refused before anything is written.
    let mut report = synthetic_report();
    report.wall.validations_per_sec = f64::INFINITY;
    let dir = TempDir::new("nan");
    match write_report(&dir.0, &report) {
        Err(ReportError::NotFinite { field, .. }) => assert_eq!(field, "wall.validations_per_sec"),
        other => panic!("expected NotFinite, got {other:?}"),
    }
    assert!(!dir.0.exists());

    // A directory below a regular file cannot be created.
    let file_dir = TempDir::new("blocker");
    fs::create_dir_all(&file_dir.0).expect("temp dir");
    let blocker = file_dir.0.join("plain-file");
    fs::write(&blocker, b"x").expect("blocker written");
    let target = blocker.join("reports");
    let err = write_report(&target, &synthetic_report()).expect_err("cannot create under a file");
    assert!(matches!(err, ReportError::CreateDir { ref path, .. } if path == &target));
    assert!(err.to_string().contains(&target.display().to_string()));

    // Another schema version is named as such; a missing file is a read error.
    let json = file_dir.0.join("future.json");
    let mut value = serde_json::to_value(synthetic_report()).expect("to value");
    value["schema_version"] = (SCHEMA_VERSION + 1).into();
    fs::write(&json, value.to_string()).expect("json written");
    match read_report(&json) {
        Err(ReportError::UnsupportedSchema {
            found, supported, ..
        }) => assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION)),
        other => panic!("expected UnsupportedSchema, got {other:?}"),
    }
    let missing = file_dir.0.join("missing.json");
    match read_report(&missing) {
        Err(ReportError::Read { path, source }) => {
            assert_eq!(path, missing);
            assert_eq!(source.kind(), io::ErrorKind::NotFound);
        }
        other => panic!("expected Read, got {other:?}"),
    }
}
