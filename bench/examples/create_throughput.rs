//! Create throughput: logins per second into an empty memory-only engine on 1 and 2 threads
//! (target: at least 2 M/s on 2 threads), table growth included. The criterion `create`
//! groups of the `lifecycle` bench measure the same thing against the baselines; this prints
//! the plain rate.
//!
//! `cargo run --release -p sessionward-bench --example create_throughput [-- SESSIONS [ROUNDS]]`
//! (defaults: 1000000 sessions, 3 rounds; every round starts from an empty engine).

use std::thread;

use sessionward_bench::*;

/// Logins per second of one round (see [`time_creates`]).
fn round(sessions: usize, threads: usize) -> f64 {
    sessions as f64 / time_creates(sessions, threads).as_secs_f64()
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
