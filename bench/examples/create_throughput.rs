//! Create throughput: logins per second into an empty memory-only engine on 1 and 2 threads
//! (target: at least 2 M/s on 2 threads), table growth included. The criterion `create`
//! groups of the `lifecycle` bench measure the same thing against the baselines; this prints
//! the plain rate.
//!
//! `cargo run --release -p sessionward-bench --example create_throughput [-- SESSIONS [ROUNDS]]`
//! (defaults: 1000000 sessions, 3 rounds; every round starts from an empty engine).

use std::hint::black_box;
use std::thread;
use std::time::Instant;

use sessionward_bench::*;
use sessionward_core::ManualClock;

/// Logins per second of one round: `sessions` logins on `threads` threads, thread `t` taking
/// every `threads`-th session (so threads use disjoint users).
fn round(sessions: usize, threads: usize) -> f64 {
    let clock = ManualClock::new(T0);
    let users = users_for(sessions);
    let engine = empty_engine(&clock, users);
    let names = user_names(users);
    let start = Instant::now();
    thread::scope(|scope| {
        for t in 0..threads {
            let (engine, names) = (&engine, &names);
            scope.spawn(move || {
                for i in (t..sessions).step_by(threads) {
                    black_box(log_in(engine, &names[i % users]));
                }
            });
        }
    });
    let rate = sessions as f64 / start.elapsed().as_secs_f64();
    assert_eq!(engine.stats().records, sessions);
    rate
}

fn main() {
    let mut args = std::env::args().skip(1);
    let sessions = args
        .next()
        .map(|n| parse_count(&n).expect("SESSIONS: a count"))
        .unwrap_or(1_000_000);
    let rounds: usize = args
        .next()
        .map(|n| n.parse().expect("ROUNDS: a count"))
        .unwrap_or(3);
    println!(
        "{sessions} logins into an empty memory-only engine, {rounds} rounds ({} cores)",
        thread::available_parallelism().map_or(0, |n| n.get())
    );
    for threads in [1, 2] {
        let mut rates: Vec<f64> = (0..rounds.max(1))
            .map(|_| round(sessions, threads))
            .collect();
        rates.sort_by(f64::total_cmp);
        let median = rates[rates.len() / 2];
        let best = rates[rates.len() - 1];
        println!(
            "  {threads} thread(s): median {:.2} M/s, best {:.2} M/s{}",
            median / 1e6,
            best / 1e6,
            if threads == 2 {
                "  (target >= 2 M/s)"
            } else {
                ""
            }
        );
    }
}
