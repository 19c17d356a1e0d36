//! Validations on every core while other threads create and end sessions: no ended session ever
//! validates after its end returned, no panic, no deadlock (a watchdog fails the test if the
//! threads do not finish; it measures liveness, not speed).

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use sessionward_core::*;

const SESSIONS: usize = 2_000;
const ROUNDS: usize = 30_000;

fn office() -> IpAddr {
    "10.0.0.1".parse().unwrap()
}

#[test]
fn ended_sessions_never_validate_after_the_end_returned() {
    let engine = Arc::new(
        Engine::builder()
            .settings(
                OrgSettings::builder()
                    .trusted_range("10.0.0.0/8")
                    .build()
                    .unwrap(),
            )
            .shards(16)
            .build()
            .unwrap(),
    );
    engine
        .add_profile(Profile::builder("staff").build().unwrap())
        .unwrap();
    for user in 0..50 {
        engine.add_user(&format!("user{user}"), "staff").unwrap();
    }
    let tokens: Arc<Vec<Token>> = Arc::new(
        (0..SESSIONS)
            .map(|i| {
                engine
                    .login(&LoginRequest::new(&format!("user{}", i % 50), office()))
                    .unwrap()
                    .issued()
                    .unwrap()
                    .token
            })
            .collect(),
    );
    // ended[i] is set (release) only after the end of session i returned.
    let ended: Arc<Vec<AtomicBool>> =
        Arc::new((0..SESSIONS).map(|_| AtomicBool::new(false)).collect());
    let violations = Arc::new(AtomicU64::new(0));
    let validations = Arc::new(AtomicU64::new(0));
    let next_to_end = Arc::new(AtomicUsize::new(0));
    let (done_tx, done_rx) = mpsc::channel();

    let mut workers = Vec::new();
    let cores = thread::available_parallelism().map_or(2, |n| n.get());
    for worker in 0..cores {
        let (engine, tokens, ended, violations, validations, done) = (
            Arc::clone(&engine),
            Arc::clone(&tokens),
            Arc::clone(&ended),
            Arc::clone(&violations),
            Arc::clone(&validations),
            done_tx.clone(),
        );
        workers.push(thread::spawn(move || {
            let mut state = 0x9E37_79B9_7F4A_7C15_u64 ^ worker as u64;
            for _ in 0..ROUNDS {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let index = (state % SESSIONS as u64) as usize;
                let was_ended = ended[index].load(Ordering::Acquire);
                let result =
                    engine.validate(tokens[index].expose_secret(), office(), Requirement::Any);
                if was_ended && result.is_ok() {
                    violations.fetch_add(1, Ordering::Relaxed);
                }
                validations.fetch_add(1, Ordering::Relaxed);
            }
            done.send(()).unwrap();
        }));
    }
    // Enders: logouts, admin ends by handle, password resets, each publishing after return.
    for ender in 0..2 {
        let (engine, tokens, ended, next, done) = (
            Arc::clone(&engine),
            Arc::clone(&tokens),
            Arc::clone(&ended),
            Arc::clone(&next_to_end),
            done_tx.clone(),
        );
        workers.push(thread::spawn(move || {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= SESSIONS / 2 {
                    break;
                }
                let token = tokens[index].expose_secret();
                if ender == 0 {
                    let _ = engine.logout(token);
                } else if let Ok(info) = engine.validate(token, office(), Requirement::Any) {
                    engine.end_session(info.handle);
                } else {
                    let _ = engine.logout(token);
                }
                ended[index].store(true, Ordering::Release);
            }
            done.send(()).unwrap();
        }));
    }
    // Creators and bulk enders keep the shards' write locks busy meanwhile.
    {
        let (engine, done) = (Arc::clone(&engine), done_tx.clone());
        workers.push(thread::spawn(move || {
            for i in 0..5_000 {
                let user = format!("user{}", i % 50);
                let issued = engine.login(&LoginRequest::new(&user, office())).unwrap();
                assert!(matches!(issued, LoginOutcome::Issued(_)));
                if i % 1000 == 999 {
                    engine.sweep(4);
                    let _ = engine
                        .sessions(&SessionFilter::default(), None, 10)
                        .unwrap();
                }
            }
            done.send(()).unwrap();
        }));
    }
    drop(done_tx);
    let total = workers.len();
    for finished in 0..total {
        if done_rx.recv_timeout(Duration::from_secs(120)).is_err() {
            panic!("deadlock: only {finished} of {total} threads finished within the watchdog");
        }
    }
    for worker in workers {
        worker.join().expect("no thread panicked");
    }
    assert_eq!(
        violations.load(Ordering::Relaxed),
        0,
        "an ended session validated"
    );
    assert_eq!(validations.load(Ordering::Relaxed), (cores * ROUNDS) as u64);
    // Everything that was ended is refused now, with the right reason family.
    for (index, token) in tokens.iter().enumerate().take(SESSIONS / 2) {
        let result = engine.validate(token.expose_secret(), office(), Requirement::Any);
        assert!(
            matches!(result, Err(Refusal::Ended(_))),
            "session {index}: {result:?}"
        );
    }
    for token in tokens.iter().skip(SESSIONS / 2) {
        assert!(engine
            .validate(token.expose_secret(), office(), Requirement::Any)
            .is_ok());
    }
}

#[test]
fn bulk_ends_racing_logins_leave_no_survivor_that_logged_in_before() {
    let engine = Arc::new(
        Engine::builder()
            .settings(
                OrgSettings::builder()
                    .trusted_range("10.0.0.0/8")
                    .build()
                    .unwrap(),
            )
            .shards(8)
            .build()
            .unwrap(),
    );
    engine
        .add_profile(Profile::builder("staff").build().unwrap())
        .unwrap();
    engine.add_user("ada", "staff").unwrap();
    let (tx, rx) = mpsc::channel::<Token>();
    let stop = Arc::new(AtomicBool::new(false));
    let login_thread = {
        let (engine, stop) = (Arc::clone(&engine), Arc::clone(&stop));
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let issued = engine
                    .login(&LoginRequest::new("ada", office()))
                    .unwrap()
                    .issued()
                    .unwrap();
                if tx.send(issued.token).is_err() {
                    break;
                }
            }
        })
    };
    for _ in 0..50 {
        // Every token received before the reset was issued before the reset started.
        let before: Vec<Token> = rx.try_iter().collect();
        engine.reset_password("ada").unwrap();
        for token in &before {
            let result = engine.validate(token.expose_secret(), office(), Requirement::Any);
            assert!(
                result.is_err(),
                "a session issued before the reset survived it"
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    drop(rx);
    login_thread.join().unwrap();
}
