//! Scenario files: the embedded ones load, and a file with an error is refused with its line
//! and field named, in TOML and in JSON.

use std::fs;

use sessionward_harness::{Scenario, ScenarioError};

fn toml_err(text: &str) -> ScenarioError {
    Scenario::from_toml_str(text, "test.toml").expect_err("refused")
}

/// 1-based line of the first occurrence of `needle` in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in the text"));
    text[..at].matches('\n').count() + 1
}

#[test]
fn the_embedded_scenarios_load() {
    let day = Scenario::default_day();
    assert_eq!((day.users(), day.minutes(), day.seed()), (10_000, 480, 42));
    assert_eq!(day.profiles().count(), 4);
    let finance = day
        .profiles()
        .find(|p| p.name() == "finance")
        .expect("finance");
    assert_eq!(
        finance.session_timeout().map(|d| d.as_secs()),
        Some(30 * 60)
    );
    let admins = day
        .profiles()
        .find(|p| p.name() == "admins")
        .expect("admins");
    assert_eq!(admins.session_timeout().map(|d| d.as_secs()), Some(15 * 60));
    assert_eq!(
        admins.required_level(),
        sessionward_core::SecurityLevel::HighAssurance
    );
    assert!(!admins.login_ranges().is_empty());
    assert!(day.bench().memory_sessions > 0);
    let ci = Scenario::ci();
    assert!(ci.users() < 1_000);
    assert_eq!(ci.bench().memory_sessions, 0);
}

#[test]
fn a_wrong_type_names_line_and_field() {
    let text = Scenario::default_toml().replace("users = 1200", "users = \"many\"");
    let err = toml_err(&text);
    assert_eq!(
        err.line(),
        Some(line_of(&text, "users = \"many\"")),
        "{err}"
    );
    assert_eq!(err.field(), Some("profiles[1].users"), "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("test.toml:{}:", err.line().unwrap())),
        "{err}"
    );
}

#[test]
fn an_out_of_range_timeout_is_refused_by_the_core_with_line_and_field() {
    let text = Scenario::default_toml().replace(
        "session_timeout_minutes = 15",
        "session_timeout_minutes = 14",
    );
    let err = toml_err(&text);
    assert_eq!(
        err.line(),
        Some(line_of(&text, "session_timeout_minutes = 14")),
        "{err}"
    );
    assert_eq!(
        err.field(),
        Some("profiles[2].session_timeout_minutes"),
        "{err}"
    );
    assert_eq!(
        err.message(),
        "session_timeout: 14m is outside the allowed range 15m..=24h"
    );

    let text = Scenario::default_toml().replace(
        "inactivity_timeout_minutes = 120",
        "inactivity_timeout_minutes = 1441",
    );
    let err = toml_err(&text);
    assert_eq!(err.field(), Some("org.inactivity_timeout_minutes"), "{err}");
    assert_eq!(
        err.line(),
        Some(line_of(&text, "inactivity_timeout_minutes = 1441"))
    );
}

#[test]
fn a_bad_range_is_refused_by_the_core_with_line_and_field() {
    let text = Scenario::default_toml().replace(
        "login_ranges = [\"10.20.0.0/16\", \"172.16.0.0/16\"]",
        "login_ranges = [\"10.20.0.0/16\",\n  \"172.16.0.0/33\"]",
    );
    let err = toml_err(&text);
    assert_eq!(err.field(), Some("profiles[2].login_ranges[1]"), "{err}");
    assert_eq!(
        err.line(),
        Some(line_of(&text, "\"172.16.0.0/33\"")),
        "{err}"
    );
    assert!(
        err.message().contains("not an IPv4 or IPv6 CIDR range"),
        "{err}"
    );
}

#[test]
fn unknown_and_missing_fields_are_named() {
    let text = Scenario::default_toml().replace("users = 1200", "users = 1200\nsesion_timeout = 3");
    let err = toml_err(&text);
    assert_eq!(err.field(), Some("profiles[1].sesion_timeout"), "{err}");
    assert!(err.message().contains("unknown field"), "{err}");
    assert!(err.line().is_some());

    let text = Scenario::default_toml().replace("minute = 180\n", "");
    let err = toml_err(&text);
    assert_eq!(err.field(), Some("admin_actions[2].minute"), "{err}");
    assert!(err.message().contains("missing field"), "{err}");

    let text = Scenario::default_toml().replace(
        "profile = \"finance\"\nmax_session",
        "profile = \"fnance\"\nmax_session",
    );
    let err = toml_err(&text);
    assert_eq!(err.field(), Some("admin_actions[5].profile"), "{err}");
    assert_eq!(err.line(), Some(line_of(&text, "\"fnance\"")));

    let err = toml_err("name = \"x\"\nminutes = 480\n[org\n");
    assert_eq!(err.line(), Some(3), "{err}");
}

#[test]
fn json_scenarios_load_and_name_line_and_field() {
    let value: serde_json::Value = toml::from_str(Scenario::default_toml()).expect("toml");
    let json = serde_json::to_string_pretty(&value).expect("json");
    let parsed = Scenario::from_json_str(&json, "day.json").expect("the same scenario in JSON");
    assert_eq!(parsed, Scenario::default_day());

    let bad = json.replace(
        "\"session_timeout_minutes\": 15",
        "\"session_timeout_minutes\": 7",
    );
    assert_ne!(bad, json);
    let err = Scenario::from_json_str(&bad, "day.json").expect_err("refused");
    assert_eq!(
        err.field(),
        Some("profiles[2].session_timeout_minutes"),
        "{err}"
    );
    assert_eq!(
        err.line(),
        Some(line_of(&bad, "\"session_timeout_minutes\": 7")),
        "{err}"
    );

    let bad = json.replace("\"users\": 1200", "\"users\": -4");
    let err = Scenario::from_json_str(&bad, "day.json").expect_err("refused");
    assert_eq!(err.field(), Some("profiles[1].users"), "{err}");
    assert_eq!(err.line(), Some(line_of(&bad, "\"users\": -4")), "{err}");

    let dir = std::env::temp_dir().join(format!("sessionward-scenario-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("day.json");
    fs::write(&path, &json).expect("write");
    assert_eq!(
        Scenario::from_path(&path).expect("by extension"),
        Scenario::default_day()
    );
    let missing = Scenario::from_path(&dir.join("nope.toml")).expect_err("missing file");
    assert!(missing.to_string().contains("nope.toml"));
    let _ = fs::remove_dir_all(&dir);
}
