//! Validation throughput: sessionward (one call per token, and `validate_many` and
//! `validate_many_brief` in batches of 64) against `RwLock<HashMap>` (SipHash), dashmap, moka,
//! scc and papaya (ahash) doing the identical work, at 10 k and 1 M live sessions (5 M with `SESSIONWARD_BENCH_5M=1`), 1 and 2 threads.
//!
//! Traffic mixes, one criterion group each (`validate/<size>/<mix>/<threads>t`):
//! - `hit`: live tokens drawn uniformly;
//! - `miss10`: the same, with one in ten replaced by a well-formed unknown token;
//! - `malformed`: tokens whose checksum fails (refused before hashing);
//! - `zipf`: live tokens drawn from a Zipf distribution (s = 1.0) over the sessions, hot users.
//!
//! At 5 M only `hit`, `miss10` and `zipf` run. `SESSIONWARD_BENCH_SIZES=10k,1m` picks the sizes.
//! Run with `cargo bench -p sessionward-bench --bench validate`. Numbers are elements
//! (validations) per second across all threads.
//!
//! Every contender reads a clock that moves one second per wall-clock second
//! ([`TickingClock`]), so last-activity stores happen as in production (a session's first
//! validation in each new second), and sessions are locked to their origin address, so every
//! contender compares the address.
// criterion_group! and criterion_main! generate undocumented items.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sessionward_bench::*;
use sessionward_core::{Engine, ManualClock};

/// One contender's validation: token in, accepted or not.
type Validator = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Zipf exponent of the hot-user mix.
const ZIPF_S: f64 = 1.0;

/// The token streams of each traffic mix, one per thread.
fn mixes(
    tokens: &[String],
    foreign: &[String],
    big: bool,
) -> Vec<(&'static str, Arc<Vec<TokenStream>>)> {
    let seeds = [7_u64, 8];
    let per_thread = |build: &dyn Fn(u64) -> TokenStream| -> Arc<Vec<TokenStream>> {
        Arc::new(seeds.iter().map(|&seed| build(seed)).collect())
    };
    let mut mixes = vec![
        (
            "hit",
            per_thread(&|seed| TokenStream::uniform(tokens, seed)),
        ),
        (
            "miss10",
            per_thread(&|seed| {
                let order = index_sequence(tokens.len(), TokenStream::LEN, seed);
                TokenStream::new(&order, |i| {
                    if i % 10 == 0 {
                        foreign[(i / 10) % foreign.len()].as_str()
                    } else {
                        tokens[i].as_str()
                    }
                })
            }),
        ),
    ];
    if !big {
        let broken: Vec<String> = tokens.iter().take(10_000).map(|t| malformed(t)).collect();
        mixes.push((
            "malformed",
            per_thread(&|seed| TokenStream::uniform(&broken, seed)),
        ));
    }
    let zipf = Zipf::new(tokens.len(), ZIPF_S);
    mixes.push((
        "zipf",
        per_thread(&|seed| {
            TokenStream::new(&zipf.sequence(TokenStream::LEN, seed), |i| {
                tokens[i].as_str()
            })
        }),
    ));
    mixes
}

/// A baseline holding `tokens`, as a validator reading the benchmark's ticking `seconds` on
/// every validation (as the engine reads its clock).
fn baseline<B: Baseline>(tokens: &[String], seconds: &Arc<AtomicU32>) -> (&'static str, Validator) {
    let table = Arc::new(B::from_tokens(tokens));
    let (ip, seconds) = (office(), Arc::clone(seconds));
    (
        B::NAME,
        Arc::new(move |token: &str| table.validate(token, ip, seconds.load(Ordering::Relaxed))),
    )
}

/// Runs `iters` validations through `Engine::validate_many` (or `validate_many_brief`) in
/// batches of 64, split over `threads` threads; returns the wall time.
fn run_batches(
    threads: usize,
    iters: u64,
    streams: &Arc<Vec<TokenStream>>,
    engine: &Arc<Engine>,
    answer: BatchAnswer,
) -> Duration {
    const BATCH: usize = 64;
    let per_thread = (iters as usize).div_ceil(threads);
    let ip = [office()];
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|thread_index| {
            let streams = Arc::clone(streams);
            let engine = Arc::clone(engine);
            thread::spawn(move || {
                let stream = &streams[thread_index];
                let mut batch: Vec<&str> = Vec::with_capacity(BATCH);
                let mut results = BatchResults::default();
                let mut ok = 0_u64;
                let mut done = 0;
                while done < per_thread {
                    stream.batch_prefetching(done, BATCH.min(per_thread - done), &mut batch);
                    ok += results.validate(&engine, black_box(&batch), &ip, answer) as u64;
                    done += batch.len();
                }
                black_box(ok)
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("bench thread");
    }
    start.elapsed()
}

/// Runs `iters` validations split over `threads` threads; returns the wall time.
fn run_threads(
    threads: usize,
    iters: u64,
    streams: &Arc<Vec<TokenStream>>,
    validate: &Validator,
) -> Duration {
    let per_thread = (iters as usize).div_ceil(threads);
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|thread_index| {
            let streams = Arc::clone(streams);
            let validate = Arc::clone(validate);
            thread::spawn(move || {
                let stream = &streams[thread_index];
                let mut ok = 0_u64;
                for i in 0..per_thread {
                    ok += u64::from(validate(black_box(stream.token_prefetching(i))));
                }
                black_box(ok)
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("bench thread");
    }
    start.elapsed()
}

/// The table sizes to run: `SESSIONWARD_BENCH_SIZES` (default 10 k and 1 M), plus 5 M with
/// `SESSIONWARD_BENCH_5M=1`.
fn sizes() -> Vec<usize> {
    let mut sizes = sizes_from_env("SESSIONWARD_BENCH_SIZES", &[10_000, 1_000_000]);
    if std::env::var("SESSIONWARD_BENCH_5M").is_ok_and(|v| v == "1") && !sizes.contains(&5_000_000)
    {
        sizes.push(5_000_000);
    }
    sizes
}

fn bench_validate(c: &mut Criterion) {
    let (_, foreign) = populated_engine(1000);
    for sessions in sizes() {
        let big = sessions >= 5_000_000;
        let clock = ManualClock::new(T0);
        let mut tokens = Vec::with_capacity(sessions);
        let engine = populate_on(&clock, sessions, |issued| {
            tokens.push(issued.token.expose_secret().to_owned());
        });
        let engine: Arc<Engine> = Arc::new(engine);
        // One second per second for every contender from here on: see `TickingClock`.
        let ticking = TickingClock::start(&clock);
        let seconds = ticking.seconds();
        let ip = office();
        let mixes = mixes(&tokens, &foreign, big);
        let contenders: Vec<(&str, Validator)> = vec![
            ("sessionward", {
                let engine = Arc::clone(&engine);
                Arc::new(move |token: &str| validate_reading_user(&engine, token, ip))
            }),
            baseline::<RwLockHashMap>(&tokens, &seconds),
            baseline::<DashMapAhash>(&tokens, &seconds),
            baseline::<MokaCache>(&tokens, &seconds),
            baseline::<SccHashMap>(&tokens, &seconds),
            baseline::<PapayaMap>(&tokens, &seconds),
        ];
        drop(tokens);
        let size = size_label(sessions);

        for (mix, streams) in &mixes {
            for threads in [1_usize, 2] {
                let mut group = c.benchmark_group(format!("validate/{size}/{mix}/{threads}t"));
                group.throughput(Throughput::Elements(1));
                for (name, validate) in &contenders {
                    group.bench_function(BenchmarkId::from_parameter(name), |b| {
                        b.iter_custom(|iters| run_threads(threads, iters, streams, validate));
                    });
                }
                for (name, answer) in [
                    ("sessionward_batch64", BatchAnswer::Info),
                    ("sessionward_brief64", BatchAnswer::Brief),
                ] {
                    group.bench_function(BenchmarkId::from_parameter(name), |b| {
                        b.iter_custom(|iters| {
                            run_batches(threads, iters, streams, &engine, answer)
                        });
                    });
                }
                group.finish();
            }
        }
        drop(ticking);
    }
}

/// Ten samples, short times, no plots (plotting costs more than measuring here: set
/// `SESSIONWARD_BENCH_PLOTS=1` for the HTML charts). Command-line flags such as
/// `--measurement-time` still override these.
fn config() -> Criterion {
    let config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    if std::env::var("SESSIONWARD_BENCH_PLOTS").is_ok_and(|v| v == "1") {
        config
    } else {
        config.without_plots()
    }
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_validate
}
criterion_main!(benches);
