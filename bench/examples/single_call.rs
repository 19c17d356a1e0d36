//! Single-call validations per second by what the caller reads of the result, in one process:
//! `cargo run --release -p sessionward-bench --example single_call -- [SESSIONS [ROUNDS]]`
//! (default 1 M sessions, 16 rounds).
//!
//! Every variant calls `Engine::validate` once per token through an `Arc<dyn Fn>`, as the
//! criterion contenders are called; they differ in what they keep of the answer:
//!
//! - `reads_user`: the session's user, as the criterion contender does (`validate` is always
//!   inlined, so the caller builds only the facts it reads);
//! - `reads_every_fact`: the whole `Result<SessionInfo, Refusal>`, as the Python binding does;
//! - `not_inlined`: `reads_user` through an `#[inline(never)]` wrapper that returns the whole
//!   result: what every caller got while inlining was left to the compiler and it declined.
//!
//! The variants alternate in short runs (150 ms each), and each one's median over the rounds is
//! printed: this host's speed moves within minutes, so only figures from one run compare (see
//! "Comparing two versions of a hot path" in the README). In a loop like this one, a short
//! enough path lets the processor start the next token's table miss before the current one's
//! has arrived; a server doing other work between two requests gets no such overlap, and sees
//! the `reads_every_fact` figure or below.

use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sessionward_bench::*;
use sessionward_core::{Engine, Refusal, Requirement, SessionInfo};

/// One way of calling the engine: token in, accepted or not.
type Caller = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// `Engine::validate` behind a call the compiler may not inline.
#[inline(never)]
fn validate_not_inlined(engine: &Engine, token: &str, ip: IpAddr) -> Result<SessionInfo, Refusal> {
    engine.validate(token, ip, Requirement::Any)
}

/// Validations per second (millions) of `caller` on `threads` threads for `duration`.
fn run(
    streams: &Arc<Vec<TokenStream>>,
    threads: usize,
    caller: &Caller,
    duration: Duration,
) -> f64 {
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|thread_index| {
            let streams = Arc::clone(streams);
            let caller = Arc::clone(caller);
            std::thread::spawn(move || {
                let stream = &streams[thread_index];
                let (mut done, mut accepted) = (0_usize, 0_usize);
                while start.elapsed() < duration {
                    for i in 0..256 {
                        accepted +=
                            usize::from(caller(black_box(stream.token_prefetching(done + i))));
                    }
                    done += 256;
                }
                assert_eq!(accepted, done, "every token validates");
                done
            })
        })
        .collect();
    let total: usize = handles
        .into_iter()
        .map(|handle| handle.join().expect("thread"))
        .sum();
    total as f64 / start.elapsed().as_secs_f64() / 1e6
}

fn main() {
    let mut args = std::env::args().skip(1);
    let sessions: usize = args
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let rounds: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(16);
    let TickingWorkload {
        engine, streams, ..
    } = &TickingWorkload::new(sessions);
    let ip = office();
    let callers: Vec<(&str, Caller)> = vec![
        ("reads_user", {
            let engine = Arc::clone(engine);
            Arc::new(move |token: &str| validate_reading_user(&engine, token, ip))
        }),
        ("reads_every_fact", {
            let engine = Arc::clone(engine);
            Arc::new(move |token: &str| {
                black_box(engine.validate(token, ip, Requirement::Any)).is_ok()
            })
        }),
        ("not_inlined", {
            let engine = Arc::clone(engine);
            Arc::new(move |token: &str| {
                validate_not_inlined(&engine, token, ip)
                    .map(|info| black_box(info.user))
                    .is_ok()
            })
        }),
    ];
    for threads in [1, 2] {
        let mut rates: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); callers.len()];
        for _ in 0..rounds {
            for (rate, (_, caller)) in rates.iter_mut().zip(&callers) {
                rate.push(run(streams, threads, caller, Duration::from_millis(150)));
            }
        }
        for (rate, (name, _)) in rates.iter_mut().zip(&callers) {
            rate.sort_by(f64::total_cmp);
            println!(
                "{sessions} sessions, {threads} thread(s), {name:16}: median {:.2} M/s (range {:.2}-{:.2})",
                rate[rate.len() / 2],
                rate[0],
                rate[rate.len() - 1]
            );
        }
    }
}
