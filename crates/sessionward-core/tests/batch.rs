//! `Engine::validate_many` answers every token of any batch exactly as `Engine::validate`
//! answers it alone: whatever mix of live, ended, unknown, malformed and garbage tokens, at any
//! position relative to the batch's groups and hashing pairs, with one address for all or one
//! per token (or too few). `Engine::validate_many_brief` answers each as `validate_many` does,
//! its acceptances cut to a `SessionBrief`.

use std::net::IpAddr;
use std::sync::Arc;

use proptest::prelude::*;
use sessionward_core::*;

const T0: u64 = 1_700_000_000;

/// What a batch slot holds.
#[derive(Clone, Copy, Debug)]
enum Slot {
    /// Live session `n` of the eight.
    Live(usize),
    /// Session `n` of the three ended by logout.
    Ended(usize),
    /// Live session `n` with its checksum broken.
    BadChecksum(usize),
    /// A well-formed token this engine never issued (another engine's session `n`).
    Unknown(usize),
    /// Not token-shaped at all.
    Garbage,
}

fn slot() -> impl Strategy<Value = Slot> {
    prop_oneof![
        4 => (0..8_usize).prop_map(Slot::Live),
        1 => (0..3_usize).prop_map(Slot::Ended),
        1 => (0..8_usize).prop_map(Slot::BadChecksum),
        1 => (0..8_usize).prop_map(Slot::Unknown),
        1 => Just(Slot::Garbage),
    ]
}

/// How the batch gives its addresses.
#[derive(Clone, Copy, Debug)]
enum Addresses {
    /// One for all: the sessions' origin.
    Shared,
    /// One per token: the origin, or another address where `token index % 3 == 0`.
    PerToken,
    /// `n` addresses, and always fewer than the tokens (the rest get none; a batch of two
    /// gets one, which serves all).
    Short(usize),
}

fn addresses() -> impl Strategy<Value = Addresses> {
    prop_oneof![
        Just(Addresses::Shared),
        Just(Addresses::PerToken),
        (2..6_usize).prop_map(Addresses::Short),
    ]
}

/// `token` with its last character (the checksum's) replaced by another base62 character.
fn with_bad_checksum(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    let last = bytes.len() - 1;
    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

fn engine_with_sessions() -> (Engine, Vec<String>, Vec<String>) {
    let clock = ManualClock::new(T0);
    let engine = Engine::builder()
        .settings(
            OrgSettings::builder()
                .trusted_range("10.0.0.0/8")
                .lock_sessions_to_ip(true)
                .build()
                .unwrap(),
        )
        .clock(Arc::new(clock))
        .shards(4)
        .build()
        .unwrap();
    engine
        .add_profile(Profile::builder("staff").build().unwrap())
        .unwrap();
    engine.add_user("ada", "staff").unwrap();
    let origin: IpAddr = "10.0.0.1".parse().unwrap();
    let login = || match engine.login(&LoginRequest::new("ada", origin)).unwrap() {
        LoginOutcome::Issued(issued) => issued.token.expose_secret().to_owned(),
        other => panic!("login refused: {other:?}"),
    };
    let live: Vec<String> = (0..8).map(|_| login()).collect();
    let ended: Vec<String> = (0..3).map(|_| login()).collect();
    for token in &ended {
        engine.logout(token).unwrap();
    }
    (engine, live, ended)
}

/// An engine with sessions, and a batch of `slots` with addresses given as `given`.
fn batch(slots: &[Slot], given: Addresses) -> (Engine, Vec<String>, Vec<IpAddr>) {
    let (engine, live, ended) = engine_with_sessions();
    let (_other, unknown, _) = engine_with_sessions();
    let tokens: Vec<String> = slots
        .iter()
        .map(|slot| match *slot {
            Slot::Live(n) => live[n].clone(),
            Slot::Ended(n) => ended[n].clone(),
            Slot::BadChecksum(n) => with_bad_checksum(&live[n]),
            Slot::Unknown(n) => unknown[n].clone(),
            Slot::Garbage => "garbage".into(),
        })
        .collect();
    let origin: IpAddr = "10.0.0.1".parse().unwrap();
    let elsewhere: IpAddr = "10.9.9.9".parse().unwrap();
    let ips: Vec<IpAddr> = match given {
        Addresses::Shared => vec![origin],
        Addresses::PerToken => (0..tokens.len())
            .map(|index| if index % 3 == 0 { elsewhere } else { origin })
            .collect(),
        Addresses::Short(count) => vec![origin; count.min(tokens.len().saturating_sub(1))],
    };
    (engine, tokens, ips)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn a_batch_answers_as_single_calls_do(
        slots in proptest::collection::vec(slot(), 0..24),
        given in addresses(),
    ) {
        let (engine, tokens, ips) = batch(&slots, given);
        let mut results = Vec::new();
        engine.validate_many(&tokens, &ips, Requirement::Any, &mut results);
        prop_assert_eq!(results.len(), tokens.len());
        for (index, (token, result)) in tokens.iter().zip(&results).enumerate() {
            let address = match ips.len() {
                1 => Some(ips[0]),
                _ => ips.get(index).copied(),
            };
            let single = match address {
                Some(address) => engine.validate(token, address, Requirement::Any),
                // No address for a well-formed token: refused without a lookup.
                None if is_well_formed(token) => Err(Refusal::IpMismatch),
                None => Err(Refusal::Malformed),
            };
            prop_assert_eq!(result, &single, "token {} of {} ({:?})", index, tokens.len(), slots[index]);
        }
    }

    #[test]
    fn a_brief_batch_answers_as_the_full_batch_does(
        slots in proptest::collection::vec(slot(), 0..24),
        given in addresses(),
    ) {
        let (engine, tokens, ips) = batch(&slots, given);
        let (mut briefs, mut results) = (Vec::new(), Vec::new());
        // Briefs first: the full batch after it must still accept what the brief one did (the
        // clock stands still, so neither changes what the other sees).
        engine.validate_many_brief(&tokens, &ips, Requirement::Any, &mut briefs);
        engine.validate_many(&tokens, &ips, Requirement::Any, &mut results);
        let expected: Vec<Result<SessionBrief, Refusal>> = results
            .iter()
            .map(|result| result.map(SessionBrief::from))
            .collect();
        prop_assert_eq!(&briefs, &expected);
        let live = slots.iter().filter(|slot| matches!(slot, Slot::Live(_))).count();
        if matches!(given, Addresses::Shared) {
            prop_assert_eq!(briefs.iter().filter(|brief| brief.is_ok()).count(), live);
        }
    }
}
