//! Quick throughput probe (not a benchmark of record; criterion's `validate` bench is):
//! `cargo run --release -p sessionward-bench --example throughput -- [sessions] [seconds]`
//! prints validations per second for single calls and 64-token batches on 1 and 2 threads.
//! Tokens come from a [`TokenStream`] prefetched ahead, and time moves one second per second
//! ([`TickingClock`]), as in the criterion benches. (Up to 59ac1a7 this probe's clock stood
//! still, so no validation stored its last activity, while criterion's has ticked since
//! daf3636.)

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sessionward_bench::*;
use sessionward_core::Engine;

fn run(
    engine: &Arc<Engine>,
    streams: &Arc<Vec<TokenStream>>,
    threads: usize,
    batch: bool,
    for_: Duration,
) -> f64 {
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let engine = Arc::clone(engine);
            let streams = Arc::clone(streams);
            std::thread::spawn(move || {
                let stream = &streams[t];
                let ip = [office()];
                let mut done = 0_u64;
                let mut ok = 0_u64;
                let mut results = BatchResults::default();
                let mut tokens: Vec<&str> = Vec::with_capacity(64);
                while start.elapsed() < for_ {
                    for _ in 0..64 {
                        if batch {
                            stream.batch_prefetching(done as usize, 64, &mut tokens);
                            let batch = black_box(&tokens);
                            ok += results.validate(&engine, batch, &ip, BatchAnswer::Info) as u64;
                            done += 64;
                        } else {
                            for i in 0..64 {
                                let token = stream.token_prefetching(done as usize + i);
                                ok += u64::from(validate_reading_user(
                                    &engine,
                                    black_box(token),
                                    ip[0],
                                ));
                            }
                            done += 64;
                        }
                    }
                }
                assert_eq!(ok, done, "every token validates");
                done
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    total as f64 / start.elapsed().as_secs_f64() / 1e6
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("create") {
        for threads in [1, 2] {
            let rate = 1.0 / time_creates(1_000_000, threads).as_secs_f64();
            println!("create, {threads} thread(s): {rate:.2} M/s");
        }
        return;
    }
    let mut args = std::env::args().skip(1);
    let sessions: usize = args
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let seconds: f64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(2.0);
    let TickingWorkload {
        engine, streams, ..
    } = &TickingWorkload::new(sessions);
    let for_ = Duration::from_secs_f64(seconds);
    for threads in [1, 2] {
        for batch in [false, true] {
            let rate = run(engine, streams, threads, batch, for_);
            println!(
                "{sessions} sessions, {threads} thread(s), {}: {rate:.2} M/s",
                if batch { "batch64" } else { "single" }
            );
        }
    }
}
