//! `report.md`: the operator-readable report.

use std::fmt::Write as _;

use super::format::{clock, compact, count, escape_md_cell as cell, group, memory, nanos, percent};
use super::html::all_reasons;
use super::model::Report;

/// Renders the whole Markdown report.
pub(crate) fn render_markdown(report: &Report) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let t = &report.totals;
    let c = &report.checks;
    let attacks = t.attacks_total();

    let _ = writeln!(out, "# {}\n", cell(&report.title));
    let _ = writeln!(
        out,
        "Scenario `{}`, seed {}, report schema {}.\n",
        report.scenario_name.replace('`', "'"),
        report.seed,
        report.schema_version
    );
    if report.passed() {
        let _ = writeln!(
            out,
            "**Checks: PASS** - the engine agreed with the model on all {} checked outcomes.\n",
            group(c.expected_outcomes)
        );
    } else if c.expected_outcomes == 0 {
        out.push_str("**Checks: FAIL** - nothing was checked (the model compared 0 outcomes with the engine).\n\n");
    } else {
        let _ = writeln!(
            out,
            "**Checks: FAIL** - {}; {} of {} checked outcomes agreed.\n",
            count(
                c.disagreement_count.max(c.disagreements.len() as u64),
                "disagreement"
            ),
            group(c.agreed),
            group(c.expected_outcomes)
        );
    }

    out.push_str("## Summary\n\n| measure | value |\n| --- | ---: |\n");
    let rows = [
        (
            "simulated minutes",
            group(report.simulated.minutes.len() as u64),
        ),
        (
            "peak active sessions",
            group(report.simulated.peak_active_sessions()),
        ),
        ("logins", group(t.logins)),
        ("validations", group(t.validations)),
        (
            "refused validations",
            format!(
                "{} ({} of validations)",
                group(t.refusals_total()),
                percent(t.refusals_total(), t.validations)
            ),
        ),
        ("login attempts", group(t.login_attempts)),
        (
            "refused logins",
            format!(
                "{} ({} of login attempts)",
                group(t.login_refusals_total()),
                percent(t.login_refusals_total(), t.login_attempts)
            ),
        ),
        ("login challenges", group(t.challenges)),
        ("step-ups", group(t.step_ups)),
        ("sessions ended by admins", group(t.ended_by_admin_total())),
        ("jobs run (no session)", group(t.jobs_run)),
        (
            "attacker attempts refused",
            format!("{} of {}", group(attacks.refused), group(attacks.attempts)),
        ),
        (
            "wall time of the simulation",
            format!("{:.2} s", report.wall.simulation_secs),
        ),
        (
            "validations per wall second",
            compact(report.wall.validations_per_sec),
        ),
        (
            "logins per wall second",
            compact(report.wall.logins_per_sec),
        ),
        (
            "live sessions at the end of the day",
            group(report.simulated.live_sessions_at_end()),
        ),
        (
            "memory (separate measurement)",
            memory(report.memory.as_ref()),
        ),
    ];
    for (name, value) in rows {
        let _ = writeln!(out, "| {name} | {} |", cell(&value));
    }

    out.push_str("\n## Checks\n\n");
    let _ = writeln!(
        out,
        "{} outcomes checked, {} agreed, {} disagreed.",
        group(c.expected_outcomes),
        group(c.agreed),
        group(c.disagreement_count)
    );
    if !c.disagreements.is_empty() {
        let _ = writeln!(
            out,
            "\nFirst {} disagreements:\n\n| minute | what | expected | observed |\n| ---: | --- | --- | --- |",
            c.disagreements.len()
        );
        for d in &c.disagreements {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                clock(f64::from(d.minute)),
                cell(&d.what),
                cell(&d.expected),
                cell(&d.observed)
            );
        }
    }

    // Two tables: a refused login is not a refused validation, and each share is taken
    // within its own kind.
    out.push_str("\n## Refused validations by reason\n\n");
    let reasons = all_reasons(report);
    if reasons.is_empty() {
        out.push_str("No refused validations.\n");
    } else {
        out.push_str(
            "| reason | refusals | share of refused validations |\n| --- | ---: | ---: |\n",
        );
        let total = t.refusals_total();
        for reason in &reasons {
            let n = t.refusals.get(reason).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                cell(reason),
                group(n),
                percent(n, total)
            );
        }
    }

    out.push_str("\n## Refused logins by reason\n\n");
    if t.login_refusals.is_empty() {
        out.push_str("No refused logins.\n");
    } else {
        out.push_str("| reason | refusals | share of refused logins |\n| --- | ---: | ---: |\n");
        let total = t.login_refusals_total();
        for (reason, n) in &t.login_refusals {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                cell(reason),
                group(*n),
                percent(*n, total)
            );
        }
    }

    out.push_str("\n## Admin actions\n\n");
    if t.ended_by_admin.is_empty() {
        out.push_str("No admin action ended a session.\n");
    } else {
        out.push_str("| action | sessions ended |\n| --- | ---: |\n");
        for (action, n) in &t.ended_by_admin {
            let _ = writeln!(out, "| {} | {} |", cell(action), group(*n));
        }
    }

    out.push_str("\n## Attacker attempts\n\n");
    if t.attacks.is_empty() {
        out.push_str("No attacks simulated.\n");
    } else {
        out.push_str("| kind | attempts | refused | not refused |\n| --- | ---: | ---: | ---: |\n");
        for (kind, a) in &t.attacks {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                cell(kind),
                group(a.attempts),
                group(a.refused),
                group(a.attempts.saturating_sub(a.refused))
            );
        }
    }

    let l = &report.latency;
    out.push_str(
        "\n## Validation latency\n\n| percentile | ns | readable |\n| --- | ---: | ---: |\n",
    );
    for (name, ns) in [
        ("p50", l.p50_ns),
        ("p99", l.p99_ns),
        ("p99.9", l.p999_ns),
        ("max", l.max_ns),
    ] {
        let _ = writeln!(out, "| {name} | {ns} | {} |", nanos(ns));
    }
    let _ = writeln!(out, "\n{} samples.", group(l.samples));

    out.push_str("\n## Validation throughput\n\n");
    if report.throughput.is_empty() {
        out.push_str("No throughput measured.\n");
    } else {
        out.push_str(
            "| threads | validations per second | measured for |\n| ---: | ---: | ---: |\n",
        );
        let mut points = report.throughput.clone();
        points.sort_by_key(|p| p.threads);
        for p in &points {
            let _ = writeln!(
                out,
                "| {} | {} | {:.2} s |",
                p.threads,
                group(p.validations_per_sec.round() as u64),
                p.duration_secs
            );
        }
    }

    let m = &report.machine;
    out.push_str("\n## Machine and command\n\n| | |\n| --- | --- |\n");
    let _ = writeln!(out, "| cores | {} |", m.cores);
    let _ = writeln!(out, "| CPU | {} |", cell(&m.cpu_model));
    let _ = writeln!(out, "| OS | {} |", cell(&m.os));
    let fence = "`".repeat(longest_backtick_run(&report.command).max(2) + 1);
    let _ = writeln!(out, "\nCommand:\n\n{fence}sh\n{}\n{fence}", report.command);
    out
}

fn longest_backtick_run(text: &str) -> usize {
    let (mut longest, mut run) = (0, 0);
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    longest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fence_is_longer_than_any_backtick_run_in_the_command() {
        let report = Report {
            command: "run ```` weird".to_owned(),
            ..Report::default()
        };
        let md = render_markdown(&report);
        assert!(md.contains("`````sh\nrun ```` weird\n`````"));
    }
}
