//! `report.html`: one self-contained page with inline SVG charts, no external resources.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::format::{clock, compact, count, escape_html, group, memory, nanos, percent};
use super::model::{MinuteStats, Report};
use super::svg::{color, Bar, BarChart, MinuteChart, MinuteKind, Series};

const STYLE: &str = "
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; color: #1f2328;
  background: #f6f8fa; margin: 0; padding: 24px; }
main { max-width: 980px; margin: 0 auto; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 28px 0 10px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }
.sub { color: #57606a; margin: 0 0 16px; }
.banner { border-radius: 6px; padding: 12px 16px; font-size: 16px; font-weight: 600; }
.banner.pass { background: #dafbe1; border: 1px solid #4ac26b; color: #116329; }
.banner.fail { background: #ffebe9; border: 1px solid #ff8182; color: #a40e26; }
table { border-collapse: collapse; background: #fff; margin: 8px 0; }
th, td { border: 1px solid #d0d7de; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f0f3f6; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin-right: 6px;
  vertical-align: -1px; }
.bad { color: #a40e26; font-weight: 600; }
pre { background: #fff; border: 1px solid #d0d7de; border-radius: 6px; padding: 10px;
  white-space: pre-wrap; word-break: break-all; }
svg.chart { display: block; max-width: 100%; height: auto; margin: 12px 0; }
svg.chart .bg { fill: #fff; }
svg.chart .plot { fill: none; stroke: #d0d7de; }
svg.chart text { font: 12px system-ui, sans-serif; fill: #1f2328; }
svg.chart .chart-title { font-size: 15px; font-weight: 600; }
svg.chart .axis-title { fill: #57606a; }
svg.chart .grid { stroke: #eaeef2; }
svg.chart .tick { stroke: #8c959f; }
svg.chart .no-data { fill: #8c959f; font-size: 16px; }
svg.chart .bar-value { font-size: 11px; }
";

/// A table cell: escaped text, right-aligned escaped number, or trusted markup built here.
enum Cell {
    Text(String),
    Num(String),
    Markup(String),
}

fn table(out: &mut String, headers: &[&str], rows: &[Vec<Cell>]) {
    out.push_str("<table>\n<thead><tr>");
    for h in headers {
        let _ = write!(out, "<th>{}</th>", escape_html(h));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            match cell {
                Cell::Text(t) => {
                    let _ = write!(out, "<td>{}</td>", escape_html(t));
                }
                Cell::Num(t) => {
                    let _ = write!(out, "<td class=\"num\">{}</td>", escape_html(t));
                }
                Cell::Markup(m) => {
                    let _ = write!(out, "<td>{m}</td>");
                }
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
}

fn text(s: impl Into<String>) -> Cell {
    Cell::Text(s.into())
}

fn num(s: impl Into<String>) -> Cell {
    Cell::Num(s.into())
}

fn swatch(name: &str, colour: &str) -> Cell {
    Cell::Markup(format!(
        "<span class=\"swatch\" style=\"background: {}\"></span>{}",
        escape_html(colour),
        escape_html(name)
    ))
}

/// Every refusal reason of the report, per-minute and total, sorted: the legend order.
pub(crate) fn all_reasons(report: &Report) -> Vec<String> {
    let mut reasons: BTreeSet<&str> = report.simulated.refusal_reasons().into_iter().collect();
    reasons.extend(report.totals.refusals.keys().map(String::as_str));
    reasons.into_iter().map(str::to_owned).collect()
}

/// Renders the whole page.
pub(crate) fn render_html(report: &Report) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let title = escape_html(&report.title);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title} - sessionward harness report</title>\n<style>{STYLE}</style>\n</head>\n\
         <body>\n<main>\n<h1>{title}</h1>\n<p class=\"sub\">scenario {} &middot; seed {} &middot; \
         report schema {}</p>\n",
        escape_html(&report.scenario_name),
        report.seed,
        report.schema_version
    );

    banner(&mut out, report);
    summary_table(&mut out, report);
    checks(&mut out, report);

    let mut minutes: Vec<&MinuteStats> = report.simulated.minutes.iter().collect();
    minutes.sort_by_key(|m| m.minute);
    let xs: Vec<f64> = minutes.iter().map(|m| f64::from(m.minute)).collect();
    let reasons = all_reasons(report);

    out.push_str("<h2>Simulated day</h2>\n");
    out.push_str(
        &MinuteChart {
            id: "chart-active-sessions",
            title: "Active sessions over the simulated day",
            y_label: "active sessions",
            minutes: &xs,
            series: vec![Series {
                name: "active sessions",
                color: color(0),
                values: minutes.iter().map(|m| m.active_sessions as f64).collect(),
            }],
            kind: MinuteKind::Lines { right: None },
        }
        .render(),
    );
    out.push_str(
        &MinuteChart {
            id: "chart-logins-validations",
            title: "Logins and validations per simulated minute",
            y_label: "validations per minute",
            minutes: &xs,
            series: vec![Series {
                name: "validations (left axis)",
                color: color(0),
                values: minutes.iter().map(|m| m.validations as f64).collect(),
            }],
            kind: MinuteKind::Lines {
                right: Some((
                    "logins per minute",
                    Series {
                        name: "logins (right axis)",
                        color: color(1),
                        values: minutes.iter().map(|m| m.logins as f64).collect(),
                    },
                )),
            },
        }
        .render(),
    );
    out.push_str(
        &MinuteChart {
            id: "chart-refusals",
            title: "Refused validations by reason per simulated minute (stacked)",
            y_label: "refusals per minute",
            minutes: &xs,
            series: reasons
                .iter()
                .enumerate()
                .map(|(i, reason)| Series {
                    name: reason,
                    color: color(i),
                    values: minutes
                        .iter()
                        .map(|m| m.refusals.get(reason).copied().unwrap_or(0) as f64)
                        .collect(),
                })
                .collect(),
            kind: MinuteKind::Stacked,
        }
        .render(),
    );

    refusals_table(&mut out, report, &reasons);
    admin_and_attacks(&mut out, report);
    latency(&mut out, report);
    throughput(&mut out, report);
    machine(&mut out, report);

    out.push_str("</main>\n</body>\n</html>\n");
    out
}

fn banner(out: &mut String, report: &Report) {
    let c = &report.checks;
    if report.passed() {
        let _ = writeln!(
            out,
            "<div class=\"banner pass\" id=\"verdict\">PASS: the engine agreed with the model on \
             all {} checked outcomes</div>",
            group(c.expected_outcomes)
        );
    } else if c.expected_outcomes == 0 {
        out.push_str(
            "<div class=\"banner fail\" id=\"verdict\">FAIL: nothing was checked (the model compared 0 outcomes with the engine)</div>\n",
        );
    } else {
        let _ = writeln!(
            out,
            "<div class=\"banner fail\" id=\"verdict\">FAIL: {} between the engine and the \
             model ({} of {} checked outcomes agreed)</div>",
            count(
                c.disagreement_count.max(c.disagreements.len() as u64),
                "disagreement"
            ),
            group(c.agreed),
            group(c.expected_outcomes)
        );
    }
}

fn summary_table(out: &mut String, report: &Report) {
    let t = &report.totals;
    let attacks = t.attacks_total();
    let day = &report.simulated;
    let span = match (day.minutes.first(), day.minutes.last()) {
        (Some(_), Some(_)) => {
            let lo = day.minutes.iter().map(|m| m.minute).min().unwrap_or(0);
            let hi = day.minutes.iter().map(|m| m.minute).max().unwrap_or(0);
            format!(
                "{} minutes ({} to {})",
                group(day.minutes.len() as u64),
                clock(f64::from(lo)),
                clock(f64::from(hi))
            )
        }
        _ => "none".to_owned(),
    };
    out.push_str("<h2>Summary</h2>\n");
    let rows = vec![
        vec![text("simulated minutes"), num(span)],
        vec![
            text("peak active sessions"),
            num(group(day.peak_active_sessions())),
        ],
        vec![text("logins"), num(group(t.logins))],
        vec![text("validations"), num(group(t.validations))],
        vec![
            text("refused validations"),
            num(format!(
                "{} ({} of validations)",
                group(t.refusals_total()),
                percent(t.refusals_total(), t.validations)
            )),
        ],
        vec![text("login attempts"), num(group(t.login_attempts))],
        vec![
            text("refused logins"),
            num(format!(
                "{} ({} of login attempts)",
                group(t.login_refusals_total()),
                percent(t.login_refusals_total(), t.login_attempts)
            )),
        ],
        vec![text("login challenges"), num(group(t.challenges))],
        vec![text("step-ups"), num(group(t.step_ups))],
        vec![
            text("sessions ended by admins"),
            num(group(t.ended_by_admin_total())),
        ],
        vec![text("jobs run (no session)"), num(group(t.jobs_run))],
        vec![
            text("attacker attempts refused"),
            num(format!(
                "{} of {}",
                group(attacks.refused),
                group(attacks.attempts)
            )),
        ],
        vec![
            text("wall time of the simulation"),
            num(format!("{:.2} s", report.wall.simulation_secs)),
        ],
        vec![
            text("validations per wall second"),
            num(compact(report.wall.validations_per_sec)),
        ],
        vec![
            text("logins per wall second"),
            num(compact(report.wall.logins_per_sec)),
        ],
        vec![
            text("live sessions at the end of the day"),
            num(group(day.live_sessions_at_end())),
        ],
        vec![
            text("memory (separate measurement)"),
            num(memory(report.memory.as_ref())),
        ],
    ];
    table(out, &["measure", "value"], &rows);
}

fn checks(out: &mut String, report: &Report) {
    let c = &report.checks;
    out.push_str("<h2>Checks</h2>\n");
    let _ = writeln!(
        out,
        "<p>{} outcomes checked against the model, {} agreed, {} disagreed.</p>",
        group(c.expected_outcomes),
        group(c.agreed),
        group(c.disagreement_count)
    );
    if c.disagreements.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "<p class=\"bad\">First {} disagreements (of {}):</p>",
        group(c.disagreements.len() as u64),
        group(c.disagreement_count.max(c.disagreements.len() as u64))
    );
    let rows: Vec<Vec<Cell>> = c
        .disagreements
        .iter()
        .map(|d| {
            vec![
                num(clock(f64::from(d.minute))),
                text(d.what.as_str()),
                text(d.expected.as_str()),
                text(d.observed.as_str()),
            ]
        })
        .collect();
    table(out, &["minute", "what", "expected", "observed"], &rows);
}

/// Refused validations (coloured as in the per-minute chart) and refused logins, in two
/// tables: each share is taken within its own kind of call.
fn refusals_table(out: &mut String, report: &Report, reasons: &[String]) {
    let t = &report.totals;
    out.push_str("<h2>Refused validations by reason</h2>\n");
    if reasons.is_empty() {
        out.push_str("<p>No refused validations.</p>\n");
    } else {
        let total = t.refusals_total();
        let rows: Vec<Vec<Cell>> = reasons
            .iter()
            .enumerate()
            .map(|(i, reason)| {
                let n = t.refusals.get(reason).copied().unwrap_or(0);
                vec![
                    swatch(reason, &color(i)),
                    num(group(n)),
                    num(percent(n, total)),
                ]
            })
            .collect();
        table(
            out,
            &["reason", "refusals", "share of refused validations"],
            &rows,
        );
    }
    out.push_str("<h2>Refused logins by reason</h2>\n");
    if t.login_refusals.is_empty() {
        out.push_str("<p>No refused logins.</p>\n");
        return;
    }
    let total = t.login_refusals_total();
    let rows: Vec<Vec<Cell>> = t
        .login_refusals
        .iter()
        .map(|(reason, n)| {
            vec![
                text(reason.as_str()),
                num(group(*n)),
                num(percent(*n, total)),
            ]
        })
        .collect();
    table(
        out,
        &["reason", "refusals", "share of refused logins"],
        &rows,
    );
}

fn admin_and_attacks(out: &mut String, report: &Report) {
    let t = &report.totals;
    out.push_str("<h2>Admin actions</h2>\n");
    if t.ended_by_admin.is_empty() {
        out.push_str("<p>No admin action ended a session.</p>\n");
    } else {
        let rows: Vec<Vec<Cell>> = t
            .ended_by_admin
            .iter()
            .map(|(action, n)| vec![text(action.as_str()), num(group(*n))])
            .collect();
        table(out, &["action", "sessions ended"], &rows);
    }

    out.push_str("<h2>Attacker attempts</h2>\n");
    if t.attacks.is_empty() {
        out.push_str("<p>No attacks simulated.</p>\n");
        return;
    }
    let rows: Vec<Vec<Cell>> = t
        .attacks
        .iter()
        .map(|(kind, a)| {
            let let_through = a.attempts.saturating_sub(a.refused);
            let through = if let_through == 0 {
                num("0")
            } else {
                Cell::Markup(format!("<span class=\"bad\">{}</span>", group(let_through)))
            };
            vec![
                text(kind.as_str()),
                num(group(a.attempts)),
                num(group(a.refused)),
                through,
            ]
        })
        .collect();
    table(out, &["kind", "attempts", "refused", "not refused"], &rows);
}

fn latency(out: &mut String, report: &Report) {
    let l = &report.latency;
    out.push_str("<h2>Validation latency</h2>\n");
    let bars = [
        ("p50", l.p50_ns),
        ("p99", l.p99_ns),
        ("p99.9", l.p999_ns),
        ("max", l.max_ns),
    ]
    .into_iter()
    .map(|(label, ns)| Bar {
        label: label.to_owned(),
        value: ns as f64,
        value_text: nanos(ns),
    })
    .collect();
    let tick = |v: f64| nanos(v.round() as u64);
    out.push_str(
        &BarChart {
            id: "chart-latency",
            title: "Validation latency percentiles (log scale)",
            x_label: "percentile",
            y_label: "latency",
            bars,
            log: true,
            tick_format: &tick,
            color: &color(0),
        }
        .render(),
    );
    let rows = vec![vec![
        num(nanos(l.p50_ns)),
        num(nanos(l.p99_ns)),
        num(nanos(l.p999_ns)),
        num(nanos(l.max_ns)),
        num(group(l.samples)),
    ]];
    table(out, &["p50", "p99", "p99.9", "max", "samples"], &rows);
}

fn throughput(out: &mut String, report: &Report) {
    out.push_str("<h2>Validation throughput</h2>\n");
    let mut points = report.throughput.clone();
    points.sort_by_key(|p| p.threads);
    let bars = points
        .iter()
        .map(|p| Bar {
            label: format!("{} thr", p.threads),
            value: p.validations_per_sec,
            value_text: format!("{}/s", compact(p.validations_per_sec)),
        })
        .collect();
    out.push_str(
        &BarChart {
            id: "chart-throughput",
            title: "Validations per second by thread count",
            x_label: "threads",
            y_label: "validations per second",
            bars,
            log: false,
            tick_format: &compact,
            color: &color(4),
        }
        .render(),
    );
    if points.is_empty() {
        out.push_str("<p>No throughput measured.</p>\n");
        return;
    }
    let rows: Vec<Vec<Cell>> = points
        .iter()
        .map(|p| {
            vec![
                num(p.threads.to_string()),
                num(group(p.validations_per_sec.round() as u64)),
                num(format!("{:.2} s", p.duration_secs)),
            ]
        })
        .collect();
    table(
        out,
        &["threads", "validations per second", "measured for"],
        &rows,
    );
}

fn machine(out: &mut String, report: &Report) {
    let m = &report.machine;
    out.push_str("<h2>Machine and command</h2>\n");
    let rows = vec![
        vec![text("cores"), num(m.cores.to_string())],
        vec![text("CPU"), text(m.cpu_model.as_str())],
        vec![text("OS"), text(m.os.as_str())],
        vec![text("scenario"), text(report.scenario_name.as_str())],
        vec![text("seed"), num(report.seed.to_string())],
    ];
    table(out, &["", ""], &rows);
    let _ = writeln!(
        out,
        "<p>Command:</p>\n<pre><code>{}</code></pre>",
        escape_html(&report.command)
    );
}
