//! The rest of a session's life: creating, ending and sweeping sessions, sessionward against the
//! same baselines as `validate` (std `RwLock<HashMap>`, dashmap, moka, scc, papaya) doing the
//! identical work, at 10 k and 1 M sessions. One criterion group per scenario and size:
//!
//! - `create/<size>/<threads>t`: `<size>` logins into an empty memory-only engine (table growth
//!   included), 1 and 2 threads. Baselines: a ChaCha20 token, its SHA-256, one insert.
//! - `end/<size>/<threads>t`: ending every session of a `<size>`-session table by its handle,
//!   1 and 2 threads. Baselines: look the digest up, flip the record's state.
//! - `sweep/<size>/1t`: one `sweep_all` over `<size>` sessions that are all expired (the clock
//!   moved a day on), per session swept. Baselines: `retain` the live records; moka: one
//!   `run_pending_tasks` after its time-to-idle ran out. One thread: a sweep is one background
//!   task (`examples/sweep_stall.rs` measures what it does to validations running alongside).
//!
//! Each round builds its table afresh, untimed; a round handles the whole table and the time is
//! scaled to the iterations criterion asked for. Elements are sessions created, ended or swept.
//! `SESSIONWARD_BENCH_SIZES=10k,1m` picks the sizes.
//! Run with `cargo bench -p sessionward-bench --bench lifecycle`.
// criterion_group! and criterion_main! generate undocumented items.
#![allow(missing_docs)]

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use sessionward_bench::*;
use sessionward_core::{Handle, ManualClock};

/// Runs whole rounds of `per_round` elements until `iters` are covered and returns the time
/// of `iters` elements (the rounds' time, scaled).
fn per_element(iters: u64, per_round: usize, mut round: impl FnMut() -> Duration) -> Duration {
    let rounds = iters.div_ceil(per_round as u64).max(1);
    let total: Duration = (0..rounds).map(|_| round()).sum();
    total.mul_f64(iters as f64 / (rounds * per_round as u64) as f64)
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group.throughput(Throughput::Elements(1));
}

/// Ten samples, short times, no plots (set `SESSIONWARD_BENCH_PLOTS=1` for the HTML charts).
/// Command-line flags such as `--measurement-time` still override these.
fn config() -> Criterion {
    let config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    if std::env::var("SESSIONWARD_BENCH_PLOTS").is_ok_and(|v| v == "1") {
        config
    } else {
        config.without_plots()
    }
}

// ----- create ------------------------------------------------------------------------------

/// `sessions` logins on `threads` threads into a fresh engine (see [`time_creates`]).
fn create_engine(sessions: usize, threads: usize) -> Duration {
    time_creates(sessions, threads)
}

/// `sessions` baseline logins on `threads` threads into a fresh table.
fn create_baseline<B: Baseline>(sessions: usize, threads: usize) -> Duration {
    let table = B::empty();
    let now = t0_secs();
    let start = Instant::now();
    thread::scope(|scope| {
        for t in 0..threads {
            let table = &table;
            scope.spawn(move || {
                let mut rng = os_seeded_rng();
                for _ in (t..sessions).step_by(threads) {
                    black_box(table.login(&mut rng, now));
                }
            });
        }
    });
    let elapsed = start.elapsed();
    assert_eq!(table.len(), sessions);
    elapsed
}

fn bench_create_baseline<B: Baseline>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    sessions: usize,
    threads: usize,
) {
    group.bench_function(B::NAME, |b| {
        b.iter_custom(|iters| {
            per_element(iters, sessions, || create_baseline::<B>(sessions, threads))
        });
    });
}

fn bench_create(c: &mut Criterion) {
    for sessions in sizes() {
        for threads in [1_usize, 2] {
            let mut group =
                c.benchmark_group(format!("create/{}/{threads}t", size_label(sessions)));
            configure(&mut group);
            group.bench_function("sessionward", |b| {
                b.iter_custom(|iters| {
                    per_element(iters, sessions, || create_engine(sessions, threads))
                });
            });
            bench_create_baseline::<RwLockHashMap>(&mut group, sessions, threads);
            bench_create_baseline::<DashMapAhash>(&mut group, sessions, threads);
            bench_create_baseline::<MokaCache>(&mut group, sessions, threads);
            bench_create_baseline::<SccHashMap>(&mut group, sessions, threads);
            bench_create_baseline::<PapayaMap>(&mut group, sessions, threads);
            group.finish();
        }
    }
}

// ----- end ---------------------------------------------------------------------------------

/// Splits `items` over `threads` threads, calls `end` on each, and returns the wall time;
/// checks that every call ended a live session.
fn time_ends<T: Sync>(items: &[T], threads: usize, end: impl Fn(&T) -> bool + Sync) -> Duration {
    let chunk = items.len().div_ceil(threads).max(1);
    let start = Instant::now();
    let ended: usize = thread::scope(|scope| {
        let workers: Vec<_> = items
            .chunks(chunk)
            .map(|mine| {
                let end = &end;
                scope.spawn(move || mine.iter().filter(|&item| end(black_box(item))).count())
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("end thread"))
            .sum()
    });
    let elapsed = start.elapsed();
    assert_eq!(ended, items.len());
    elapsed
}

/// Ends every session of a fresh `sessions`-session engine by handle on `threads` threads.
fn end_engine(sessions: usize, threads: usize) -> Duration {
    let clock = ManualClock::new(T0);
    let mut handles: Vec<Handle> = Vec::with_capacity(sessions);
    let engine = populate_on(&clock, sessions, |issued| {
        handles.push(issued.session.handle)
    });
    time_ends(&handles, threads, |&handle| engine.end_session(handle))
}

/// Ends every session of a fresh baseline table by handle (digest) on `threads` threads.
fn end_baseline<B: Baseline>(digests: &[Key], threads: usize) -> Duration {
    let table = B::from_digests(digests, t0_secs());
    time_ends(digests, threads, |digest| table.end(digest))
}

fn bench_end_baseline<B: Baseline>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    digests: &[Key],
    threads: usize,
) {
    group.bench_function(B::NAME, |b| {
        b.iter_custom(|iters| {
            per_element(iters, digests.len(), || end_baseline::<B>(digests, threads))
        });
    });
}

fn bench_end(c: &mut Criterion) {
    for sessions in sizes() {
        let digests = random_digests(sessions, 11);
        for threads in [1_usize, 2] {
            let mut group = c.benchmark_group(format!("end/{}/{threads}t", size_label(sessions)));
            configure(&mut group);
            group.bench_function("sessionward", |b| {
                b.iter_custom(|iters| {
                    per_element(iters, sessions, || end_engine(sessions, threads))
                });
            });
            bench_end_baseline::<RwLockHashMap>(&mut group, &digests, threads);
            bench_end_baseline::<DashMapAhash>(&mut group, &digests, threads);
            bench_end_baseline::<MokaCache>(&mut group, &digests, threads);
            bench_end_baseline::<SccHashMap>(&mut group, &digests, threads);
            bench_end_baseline::<PapayaMap>(&mut group, &digests, threads);
            group.finish();
        }
    }
}

// ----- sweep -------------------------------------------------------------------------------

/// One `sweep_all` over a fresh engine whose `sessions` sessions are all expired and past the
/// tombstone retention.
fn sweep_engine(sessions: usize) -> Duration {
    let clock = ManualClock::new(T0);
    let engine = populate_on(&clock, sessions, drop);
    clock.advance(PAST_EXPIRY);
    let start = Instant::now();
    let stats = engine.sweep_all();
    let elapsed = start.elapsed();
    assert_eq!(stats.removed, sessions);
    elapsed
}

/// One sweep over a fresh baseline table whose records are all expired.
fn sweep_baseline<B: Baseline>(digests: &[Key]) -> Duration {
    let (table, now) = B::expired_table(digests);
    let start = Instant::now();
    let removed = table.sweep(now);
    let elapsed = start.elapsed();
    assert_eq!(removed, digests.len(), "{}", B::NAME);
    elapsed
}

fn bench_sweep_baseline<B: Baseline>(group: &mut BenchmarkGroup<'_, WallTime>, digests: &[Key]) {
    group.bench_function(B::NAME, |b| {
        b.iter_custom(|iters| per_element(iters, digests.len(), || sweep_baseline::<B>(digests)));
    });
}

fn bench_sweep(c: &mut Criterion) {
    for sessions in sizes() {
        let digests = random_digests(sessions, 13);
        let mut group = c.benchmark_group(format!("sweep/{}/1t", size_label(sessions)));
        configure(&mut group);
        group.bench_function("sessionward", |b| {
            b.iter_custom(|iters| per_element(iters, sessions, || sweep_engine(sessions)));
        });
        bench_sweep_baseline::<RwLockHashMap>(&mut group, &digests);
        bench_sweep_baseline::<DashMapAhash>(&mut group, &digests);
        bench_sweep_baseline::<MokaCache>(&mut group, &digests);
        bench_sweep_baseline::<SccHashMap>(&mut group, &digests);
        bench_sweep_baseline::<PapayaMap>(&mut group, &digests);
        group.finish();
    }
}

/// The table sizes to run: `SESSIONWARD_BENCH_SIZES` (default 10 k and 1 M; 5 M is for the
/// `validate` groups only).
fn sizes() -> Vec<usize> {
    sizes_from_env("SESSIONWARD_BENCH_SIZES", &[10_000, 1_000_000])
        .into_iter()
        .filter(|&sessions| sessions < 5_000_000)
        .collect()
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_create, bench_end, bench_sweep
}
criterion_main!(benches);
