//! Growth stall: the worst validation latency a validating thread sees while another thread
//! logs sessions in, for an engine whose tables start empty and one built with room for every
//! session (`EngineBuilder::expected_sessions`).
//!
//! A table that runs out of room moves its records into a larger one under its shard's write
//! lock, and a validation of that shard waits for the move; an engine built with room never
//! moves. Each round builds both kinds afresh with 100 k live sessions, then one thread
//! validates their tokens (timing every validation with `Instant`) while the main thread logs
//! in `SESSIONS` more, timing every login: the login that moves a table takes as long as the
//! move and the faulting-in of its new memory. Printed per kind: how long the engine took to
//! build (the reserved room is faulted in then); logins per second, how many took over a
//! millisecond and the slowest; the validations' p50, p99.9, how many took over 100 µs and
//! over 1 ms, and the maximum. This VM also stalls a thread for a millisecond or more now and
//! then with no table involved (see `sweep_stall`'s busy windows): compare the kinds, not a
//! lone maximum.
//!
//! `cargo run --release -p sessionward-bench --example growth_stall [-- SESSIONS [ROUNDS]]`
//! (defaults: 5000000 sessions, 3 rounds).

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use sessionward_bench::*;
use sessionward_core::{ManualClock, Requirement};

/// Live sessions the validating thread presents tokens of.
const LIVE: usize = 100_000;

/// What one round of one kind measured.
struct Round {
    /// How long the engine took to build (with its users; the reserved room is faulted in).
    build: Duration,
    logins_per_second: f64,
    slowest_login: Duration,
    /// Logins that took over a millisecond.
    slow_logins: usize,
    validations: Vec<u32>,
}

fn round(sessions: usize, tables: TableStart) -> Round {
    let clock = ManualClock::new(T0);
    let users = users_for(sessions);
    let build_start = Instant::now();
    let engine = empty_engine_for(&clock, users, tables.expected_sessions(LIVE + sessions));
    let build = build_start.elapsed();
    let names = user_names(users);
    let tokens: Vec<String> = (0..LIVE)
        .map(|i| {
            let issued = log_in(&engine, &names[i % users]);
            issued.token.expose_secret().to_owned()
        })
        .collect();
    let stream = TokenStream::uniform(&tokens, 7);
    // Faulted in here, before anything is timed: in the validating thread it took the first
    // few hundred milliseconds of the logins, which ran without validations beside them.
    let mut latencies = prefaulted(64 << 20);
    let (started, stop) = (AtomicBool::new(false), AtomicBool::new(false));
    thread::scope(|scope| {
        let validator = scope.spawn(|| {
            started.store(true, Ordering::Release);
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) && latencies.len() < latencies.capacity() {
                let token = stream.token_prefetching(i);
                let start = Instant::now();
                let valid = engine.validate(token, office(), Requirement::Any).is_ok();
                let nanos = start.elapsed().as_nanos();
                assert!(valid, "every live token validates");
                latencies.push(u32::try_from(nanos).unwrap_or(u32::MAX));
                i += 1;
            }
            latencies
        });
        while !started.load(Ordering::Acquire) {
            std::hint::spin_loop();
        }
        let (mut slowest_login, mut slow_logins) = (Duration::ZERO, 0);
        let start = Instant::now();
        for i in 0..sessions {
            let login_start = Instant::now();
            std::hint::black_box(log_in(&engine, &names[i % users]));
            let took = login_start.elapsed();
            slowest_login = slowest_login.max(took);
            slow_logins += usize::from(took > Duration::from_millis(1));
        }
        let elapsed = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        let mut validations = validator.join().expect("validating thread");
        validations.sort_unstable();
        Round {
            build,
            logins_per_second: sessions as f64 / elapsed.as_secs_f64(),
            slowest_login,
            slow_logins,
            validations,
        }
    })
}

fn main() {
    let mut args = std::env::args().skip(1);
    let sessions = args
        .next()
        .map(|n| parse_count(&n).expect("SESSIONS: a count"))
        .unwrap_or(5_000_000);
    let rounds: usize = args
        .next()
        .map(|n| n.parse().expect("ROUNDS: a count"))
        .unwrap_or(3);
    println!(
        "{sessions} logins on one thread while another validates {LIVE} live sessions, \
         {rounds} rounds"
    );
    for index in 0..rounds.max(1) {
        for tables in TableStart::BOTH {
            let round = round(sessions, tables);
            let latencies = &round.validations;
            let over = |micros: u32| {
                latencies.len() - latencies.partition_point(|&nanos| nanos <= micros * 1000)
            };
            println!(
                "  round {index}, {}: built in {} ms; {:.2} M logins/s, {} over 1 ms, \
                 slowest {}; {} validations, p50 {}, p99.9 {}, {} over 100 µs, {} over 1 ms, \
                 max {}",
                tables.label(),
                round.build.as_millis(),
                round.logins_per_second / 1e6,
                round.slow_logins,
                micros(u32::try_from(round.slowest_login.as_nanos()).unwrap_or(u32::MAX)),
                latencies.len(),
                micros(percentile(latencies, 50.0)),
                micros(percentile(latencies, 99.9)),
                over(100),
                over(1000),
                micros(latencies.last().copied().unwrap_or(0)),
            );
        }
    }
}
