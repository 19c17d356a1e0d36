//! The short end-of-run summary printed to the terminal.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::format::{compact, count, group, memory, nanos, percent};
use super::model::Report;

/// How many disagreements and refusal reasons the summary lists before eliding the rest.
const LISTED: usize = 3;

/// The end-of-run summary for the terminal: a dozen plain-text lines, verdict first.
///
/// # Examples
///
/// ```
/// use sessionward_harness::{render_summary, Report};
///
/// let mut report = Report { title: "demo".into(), ..Report::default() };
/// assert!(render_summary(&report).contains("FAIL: nothing was checked"));
/// report.checks.expected_outcomes = 10;
/// report.checks.agreed = 10;
/// assert!(render_summary(&report).contains("PASS: 10 of 10 outcomes agreed"));
/// ```
#[must_use]
pub fn render_summary(report: &Report) -> String {
    let mut out = String::with_capacity(1024);
    let t = &report.totals;
    let c = &report.checks;
    let attacks = t.attacks_total();

    let _ = writeln!(out, "sessionward harness: {}", report.title);
    let _ = writeln!(
        out,
        "  scenario     {} (seed {}), {} simulated minutes, peak {} active sessions, {} at the end",
        report.scenario_name,
        report.seed,
        group(report.simulated.minutes.len() as u64),
        group(report.simulated.peak_active_sessions()),
        group(report.simulated.live_sessions_at_end())
    );
    if report.passed() {
        let _ = writeln!(
            out,
            "  checks       PASS: {} of {} outcomes agreed with the model",
            group(c.agreed),
            group(c.expected_outcomes)
        );
    } else if c.expected_outcomes == 0 {
        let _ = writeln!(out, "  checks       FAIL: nothing was checked (the model compared 0 outcomes with the engine)");
    } else {
        let _ = writeln!(
            out,
            "  checks       FAIL: {} ({} of {} agreed)",
            count(
                c.disagreement_count.max(c.disagreements.len() as u64),
                "disagreement"
            ),
            group(c.agreed),
            group(c.expected_outcomes)
        );
        for d in c.disagreements.iter().take(LISTED) {
            let _ = writeln!(
                out,
                "    minute {}: {}: expected {}, observed {}",
                d.minute, d.what, d.expected, d.observed
            );
        }
    }
    let _ = writeln!(
        out,
        "  logins       {} ({} challenges, {} step-ups); {} jobs run",
        group(t.logins),
        group(t.challenges),
        group(t.step_ups),
        group(t.jobs_run)
    );
    // Refused logins and refused validations are separate figures, each a share of its own
    // kind of call: a denied login is not a refused request.
    let _ = writeln!(
        out,
        "               {} of {} login attempts refused ({}){}",
        group(t.login_refusals_total()),
        group(t.login_attempts),
        percent(t.login_refusals_total(), t.login_attempts),
        top_reasons(&t.login_refusals)
    );
    let _ = writeln!(
        out,
        "  validations  {}, {} refused ({} of validations){}",
        group(t.validations),
        group(t.refusals_total()),
        percent(t.refusals_total(), t.validations),
        top_reasons(&t.refusals)
    );
    let _ = writeln!(
        out,
        "  admin ends   {} sessions{}",
        group(t.ended_by_admin_total()),
        if t.ended_by_admin.is_empty() {
            String::new()
        } else {
            let parts: Vec<String> = t
                .ended_by_admin
                .iter()
                .map(|(action, n)| format!("{action} {}", group(*n)))
                .collect();
            format!(" ({})", parts.join(", "))
        }
    );
    let _ = writeln!(
        out,
        "  attacks      {} attempts, {} refused{}",
        group(attacks.attempts),
        group(attacks.refused),
        if attacks.refused < attacks.attempts {
            format!(
                ", {} NOT refused",
                group(attacks.attempts - attacks.refused)
            )
        } else {
            String::new()
        }
    );
    let l = &report.latency;
    let _ = writeln!(
        out,
        "  latency      p50 {}, p99 {}, p99.9 {}, max {} ({} samples)",
        nanos(l.p50_ns),
        nanos(l.p99_ns),
        nanos(l.p999_ns),
        nanos(l.max_ns),
        group(l.samples)
    );
    let mut points = report.throughput.clone();
    points.sort_by_key(|p| p.threads);
    let throughput: Vec<String> = points
        .iter()
        .map(|p| format!("{} thr {}/s", p.threads, compact(p.validations_per_sec)))
        .collect();
    let _ = writeln!(
        out,
        "  throughput   {}",
        if throughput.is_empty() {
            "not measured".to_owned()
        } else {
            throughput.join(", ")
        }
    );
    let w = &report.wall;
    let _ = writeln!(
        out,
        "  wall         {:.2} s for the day: {} validations/s, {} logins/s",
        w.simulation_secs,
        compact(w.validations_per_sec),
        compact(w.logins_per_sec)
    );
    let _ = writeln!(out, "  memory       {}", memory(report.memory.as_ref()));
    let m = &report.machine;
    let _ = writeln!(
        out,
        "  machine      {} cores, {}, {}",
        m.cores, m.cpu_model, m.os
    );
    out
}

/// `: reason n, reason n, reason n, k more reasons`, most frequent first, or nothing.
fn top_reasons(counts: &BTreeMap<String, u64>) -> String {
    let mut top: Vec<(&String, &u64)> = counts.iter().collect();
    top.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    let mut text: Vec<String> = top
        .iter()
        .take(LISTED)
        .map(|(reason, n)| format!("{reason} {}", group(**n)))
        .collect();
    if top.len() > LISTED {
        let more = top.len() - LISTED;
        text.push(format!(
            "{more} more reason{}",
            if more == 1 { "" } else { "s" }
        ));
    }
    if text.is_empty() {
        String::new()
    } else {
        format!(": {}", text.join(", "))
    }
}
