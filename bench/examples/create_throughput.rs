//! Create throughput: logins per second into a memory-only engine on 1 and 2 threads (target:
//! at least 2 M/s on 2 threads), each round from a fresh engine whose tables start either
//! empty (the default: table growth included) or with room for every session
//! (`EngineBuilder::expected_sessions`, taken at build, outside the timed logins). The two
//! alternate round by round, in one process. The criterion `create` groups of the `lifecycle`
//! bench measure the first against the baselines; this prints the plain rates.
//!
//! `cargo run --release -p sessionward-bench --example create_throughput [-- SESSIONS [ROUNDS]]`
//! (defaults: 1000000 sessions, 3 rounds).

use std::thread;

use sessionward_bench::*;

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
        "{sessions} logins into a fresh memory-only engine, {rounds} rounds ({} cores)",
        thread::available_parallelism().map_or(0, |n| n.get())
    );
    for threads in [1, 2] {
        let mut rates = [Vec::new(), Vec::new()];
        for _ in 0..rounds.max(1) {
            for (rates, tables) in rates.iter_mut().zip(TableStart::BOTH) {
                let elapsed = time_creates_into(sessions, threads, tables);
                rates.push(sessions as f64 / elapsed.as_secs_f64());
            }
        }
        for (rates, tables) in rates.iter_mut().zip(TableStart::BOTH) {
            rates.sort_by(f64::total_cmp);
            println!(
                "  {threads} thread(s), {:22}: median {:.2} M/s, best {:.2} M/s{}",
                tables.label(),
                rates[rates.len() / 2] / 1e6,
                rates[rates.len() - 1] / 1e6,
                if threads == 2 {
                    "  (target >= 2 M/s)"
                } else {
                    ""
                }
            );
        }
    }
}
