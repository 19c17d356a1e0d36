//! Untrusted token text: shape check, validation, logout and redaction never panic; anything not
//! well-formed is refused as malformed before a lookup; redaction leaves no well-formed token.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sessionward_core::{is_well_formed, redact_tokens, Engine, Refusal, Requirement, TOKEN_LEN};

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::builder().shards(4).build().expect("default engine"))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let well_formed = is_well_formed(&text);
    if well_formed {
        assert_eq!(text.len(), TOKEN_LEN);
    }
    let ip = "10.0.0.1".parse().expect("literal address");
    let result = engine().validate(&text, ip, Requirement::Any);
    if !well_formed {
        assert_eq!(result, Err(Refusal::Malformed));
    } else {
        assert_eq!(result, Err(Refusal::Unknown), "nothing was ever issued");
    }
    assert_eq!(engine().logout(&text).is_err(), true);
    let redacted = redact_tokens(&text);
    for start in 0..redacted.len() {
        if let Some(window) = redacted.get(start..start + TOKEN_LEN) {
            assert!(!is_well_formed(window), "redaction left a token");
        }
    }
});
