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

/// A thread's work for [`rate_on_threads`]: `caller` on each token of the thread's stream.
fn calling(streams: &Arc<Vec<TokenStream>>, caller: Caller) -> ThreadWork {
    let streams = Arc::clone(streams);
    Arc::new(move |thread_index: usize, deadline: Instant| {
        let stream = &streams[thread_index];
        let (mut done, mut accepted) = (0_usize, 0_usize);
        while Instant::now() < deadline {
            for i in 0..256 {
                accepted += usize::from(caller(black_box(stream.token_prefetching(done + i))));
            }
            done += 256;
        }
        assert_eq!(accepted, done, "every token validates");
        done
    })
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
    let names: Vec<&str> = callers.iter().map(|(name, _)| *name).collect();
    let work: Vec<_> = callers
        .into_iter()
        .map(|(_, caller)| calling(streams, caller))
        .collect();
    for threads in [1, 2] {
        let label = format!("{sessions} sessions, {threads} thread(s)");
        print_alternating(&label, &names, rounds, |variant| {
            rate_on_threads(threads, Duration::from_millis(150), &work[variant])
        });
    }
}
