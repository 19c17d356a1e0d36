//! A whole run of the CI scenario: the report files it writes parse back, the HTML is well
//! formed, and the command-line tool exits with the right codes.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use sessionward_harness::{read_report, run, write_report, BenchSettings, RunOptions, Scenario};

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

// Copied from tests/report_files.rs (integration tests cannot share code without a module).
/// Checks that `html` is well formed: every opened tag is closed in order (void elements and
/// self-closing `/>` tags excepted), every attribute is quoted, no stray `<` or `>` in text,
/// every `&` starts an entity. `<style>` contents are raw text.
fn check_well_formed(html: &str) -> Result<(), String> {
    const VOID: [&str; 8] = ["meta", "br", "hr", "img", "input", "link", "wbr", "col"];
    let bytes = html.as_bytes();
    let mut stack: Vec<String> = Vec::new();
    let mut i = 0;
    let is_name = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b':' || c == b'_';
    let check_entity = |at: usize| -> Result<(), String> {
        let rest = &bytes[at + 1..];
        let len = rest
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'#')
            .count();
        if len == 0 || rest.get(len) != Some(&b';') {
            return Err(format!("bare & at byte {at}"));
        }
        Ok(())
    };
    while i < bytes.len() {
        match bytes[i] {
            b'<' if html[i..].starts_with("<!--") => {
                let end = html[i..].find("-->").ok_or("unclosed comment")?;
                i += end + 3;
            }
            b'<' if html[i..].starts_with("<!") => {
                let end = html[i..].find('>').ok_or("unclosed doctype")?;
                i += end + 1;
            }
            b'<' if html[i..].starts_with("</") => {
                let end = html[i..].find('>').ok_or("unclosed end tag")?;
                let name = html[i + 2..i + end].trim();
                match stack.pop() {
                    Some(open) if open == name => {}
                    Some(open) => {
                        return Err(format!("</{name}> at byte {i} closes <{open}>"));
                    }
                    None => return Err(format!("</{name}> at byte {i} closes nothing")),
                }
                i += end + 1;
            }
            b'<' => {
                let mut j = i + 1;
                while j < bytes.len() && is_name(bytes[j]) {
                    j += 1;
                }
                let name = html[i + 1..j].to_ascii_lowercase();
                if name.is_empty() {
                    return Err(format!("bare < at byte {i}"));
                }
                let mut self_closed = false;
                loop {
                    while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                        j += 1;
                    }
                    match bytes.get(j) {
                        None => return Err(format!("unclosed <{name}> tag at byte {i}")),
                        Some(b'>') => {
                            j += 1;
                            break;
                        }
                        Some(b'/') if bytes.get(j + 1) == Some(&b'>') => {
                            self_closed = true;
                            j += 2;
                            break;
                        }
                        Some(_) => {}
                    }
                    let start = j;
                    while j < bytes.len() && is_name(bytes[j]) {
                        j += 1;
                    }
                    if j == start {
                        return Err(format!("bad attribute in <{name}> at byte {j}"));
                    }
                    let attr = &html[start..j];
                    if bytes.get(j) != Some(&b'=') {
                        return Err(format!("attribute {attr} of <{name}> has no quoted value"));
                    }
                    j += 1;
                    let quote = *bytes.get(j).ok_or("truncated attribute")?;
                    if quote != b'"' && quote != b'\'' {
                        return Err(format!("attribute {attr} of <{name}> is not quoted"));
                    }
                    let close = html[j + 1..]
                        .find(quote as char)
                        .ok_or("unclosed attribute value")?;
                    let value_start = j + 1;
                    let value = &html[value_start..value_start + close];
                    if value.contains('<') {
                        return Err(format!("< inside attribute {attr} of <{name}>"));
                    }
                    for (k, c) in value.bytes().enumerate() {
                        if c == b'&' {
                            check_entity(value_start + k)?;
                        }
                    }
                    j = value_start + close + 1;
                }
                if !self_closed && !VOID.contains(&name.as_str()) {
                    if name == "style" || name == "script" {
                        // Raw text up to the end tag, which the loop then pops.
                        let end = html[j..]
                            .find(&format!("</{name}"))
                            .ok_or("unclosed raw text element")?;
                        j += end;
                    }
                    stack.push(name);
                }
                i = j;
            }
            b'>' => return Err(format!("stray > in text at byte {i}")),
            b'&' => {
                check_entity(i)?;
                i += 1;
            }
            _ => i += 1,
        }
    }
    match stack.last() {
        Some(open) => Err(format!("<{open}> never closed ({} open)", stack.len())),
        None => Ok(()),
    }
}

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
    assert_eq!(report.memory.live_sessions, 20_000);
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
