//! Untrusted settings: any combination of durations, ranges and names either builds settings whose
//! values are inside the documented ranges or is refused with an error naming a field.
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sessionward_core::{
    CapAction, OrgSettings, Profile, SecurityLevel, INACTIVITY_TIMEOUT_RANGE,
    MAX_SESSION_LENGTH_RANGE,
};

#[derive(Arbitrary, Debug)]
struct Input {
    idle_secs: u64,
    max_secs: u64,
    trusted: Vec<String>,
    operations: Vec<String>,
    profile_name: String,
    profile_idle: Option<u64>,
    login_ranges: Vec<String>,
    cap: Option<u32>,
    high_assurance_at_login: bool,
}

fuzz_target!(|input: Input| {
    let mut org = OrgSettings::builder()
        .inactivity_timeout(Duration::from_secs(input.idle_secs))
        .max_session_length(Duration::from_secs(input.max_secs));
    for range in &input.trusted {
        org = org.trusted_range(range.clone());
    }
    for operation in &input.operations {
        org = org.high_assurance_operation(operation.clone());
    }
    match org.build() {
        Ok(settings) => {
            assert!(INACTIVITY_TIMEOUT_RANGE.contains(&settings.inactivity_timeout()));
            assert!(MAX_SESSION_LENGTH_RANGE.contains(&settings.max_session_length()));
        }
        Err(error) => assert!(error.to_string().contains(':'), "error names a field"),
    }
    let mut profile = Profile::builder(input.profile_name.clone());
    if let Some(idle) = input.profile_idle {
        profile = profile.session_timeout(Duration::from_secs(idle));
    }
    for range in &input.login_ranges {
        profile = profile.login_range(range.clone());
    }
    if let Some(cap) = input.cap {
        profile = profile.session_cap(cap, CapAction::RefuseNew);
    }
    if input.high_assurance_at_login {
        profile = profile.required_level(SecurityLevel::HighAssurance);
    }
    if let Ok(profile) = profile.build() {
        assert_eq!(profile.name(), input.profile_name);
        if let Some(timeout) = profile.session_timeout() {
            assert!(INACTIVITY_TIMEOUT_RANGE.contains(&timeout));
        }
    }
});
