//! Batched validations per second by the shape of the answer, in one process:
//! `cargo run --release -p sessionward-bench --example batch_shapes -- [SESSIONS [ROUNDS]]`
//! (default 1 M sessions, 12 rounds).
//!
//! Both variants validate the same 64-token batches with the same checks; they differ in what
//! each accepted token is answered with:
//!
//! - `validate_many`: a whole `SessionInfo` (times, source address, login method, ...);
//! - `validate_many_brief`: a 16-byte `SessionBrief` (handle, user, profile, type, level), what
//!   a gateway forwards and what the Python binding's `check_many` needs.
//!
//! The variants alternate in short runs (150 ms each), and each one's median over the rounds is
//! printed: this host's speed moves within minutes, so only figures from one run compare (see
//! "Comparing two versions of a hot path" in the README).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sessionward_bench::*;

fn main() {
    let mut args = std::env::args().skip(1);
    let sessions: usize = args
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let rounds: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(12);
    let workload = TickingWorkload::new(sessions);
    let shapes = [
        ("validate_many", BatchAnswer::Info),
        ("validate_many_brief", BatchAnswer::Brief),
    ];
    let names = shapes.map(|(name, _)| name);
    let variants: Vec<ThreadWork> = shapes
        .iter()
        .map(|&(_, answer)| {
            let (engine, streams) = (Arc::clone(&workload.engine), Arc::clone(&workload.streams));
            let ip = [office()];
            Arc::new(move |thread_index: usize, deadline: Instant| {
                let stream = &streams[thread_index];
                let (mut done, mut accepted) = (0_usize, 0_usize);
                let mut results = BatchResults::default();
                let mut batch: Vec<&str> = Vec::with_capacity(64);
                while Instant::now() < deadline {
                    for _ in 0..16 {
                        stream.batch_prefetching(done, 64, &mut batch);
                        accepted += results.validate(&engine, black_box(&batch), &ip, answer);
                        done += 64;
                    }
                }
                assert_eq!(accepted, done, "every token validates");
                done
            }) as ThreadWork
        })
        .collect();
    for threads in [1, 2] {
        let label = format!("{sessions} sessions, {threads} thread(s)");
        print_alternating(&label, &names, rounds, |variant| {
            rate_on_threads(threads, Duration::from_millis(150), &variants[variant])
        });
    }
}
