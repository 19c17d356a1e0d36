//! Validation throughput: sessionward against `RwLock<HashMap>` (SipHash) and dashmap+ahash doing
//! the identical work, at 10 k and 1 M live sessions, 1 and 2 threads; hits, 10 % misses
//! (well-formed unknown tokens) and malformed tokens.
//!
//! Run with `make bench` (or `cargo bench -p sessionward-bench --bench validate`). Numbers are
//! elements (validations) per second across all threads.
// criterion_group! and criterion_main! generate undocumented items.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sessionward_bench::*;
use sessionward_core::{Engine, Requirement};

/// One contender's validation: token in, accepted or not.
type Validator = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Token lists for each traffic mix: indices into them are drawn at random per thread.
struct Workload {
    hit: Vec<String>,
    miss10: Vec<String>,
    malformed: Vec<String>,
}

impl Workload {
    fn new(tokens: &[String], foreign: &[String]) -> Self {
        let mut miss10 = tokens.to_vec();
        for (slot, unknown) in miss10.iter_mut().step_by(10).zip(foreign.iter().cycle()) {
            *slot = unknown.clone();
        }
        let malformed = tokens
            .iter()
            .take(10_000)
            .map(|token| format!("{}x", &token[..token.len() - 1]))
            .collect();
        Self {
            hit: tokens.to_vec(),
            miss10,
            malformed,
        }
    }

    fn mixes(&self) -> [(&'static str, &[String]); 3] {
        [
            ("hit", &self.hit),
            ("miss10", &self.miss10),
            ("malformed", &self.malformed),
        ]
    }
}

/// Tokens a thread will present, laid out back to back in the (random) order it presents them:
/// a gateway validates tokens it just read from a request, so they are in cache; reading them
/// from a million scattered heap strings would add a cache miss per validation that no
/// session table can avoid.
struct Stream {
    text: String,
    count: usize,
}

impl Stream {
    const LEN: usize = 1 << 18;

    fn new(tokens: &[String], seed: u64) -> Self {
        let order = index_sequence(tokens.len(), Self::LEN, seed);
        let mut text = String::with_capacity(Self::LEN * 53);
        for &index in &order {
            text.push_str(&tokens[index as usize]);
        }
        Self {
            text,
            count: Self::LEN,
        }
    }

    fn token(&self, i: usize) -> &str {
        // Tokens of a mix all have one length (53, or 53 for the malformed variant too).
        let width = self.text.len() / self.count;
        let at = (i % self.count) * width;
        &self.text[at..at + width]
    }
}

/// Runs `iters` validations through `Engine::validate_many` in batches of 64, split over
/// `threads` threads; returns the wall time.
fn run_batches(
    threads: usize,
    iters: u64,
    streams: &Arc<Vec<Stream>>,
    engine: &Arc<Engine>,
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
                let mut results = Vec::with_capacity(BATCH);
                let mut ok = 0_u64;
                let mut done = 0;
                while done < per_thread {
                    batch.clear();
                    for i in done..(done + BATCH).min(per_thread) {
                        batch.push(stream.token(i));
                    }
                    engine.validate_many(black_box(&batch), &ip, Requirement::Any, &mut results);
                    ok += results.iter().filter(|result| result.is_ok()).count() as u64;
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
    streams: &Arc<Vec<Stream>>,
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
                    ok += u64::from(validate(black_box(stream.token(i))));
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

fn bench_validate(c: &mut Criterion) {
    for sessions in [10_000_usize, 1_000_000] {
        let (engine, tokens) = populated_engine(sessions);
        let (_, foreign) = populated_engine(1000);
        let workload = Workload::new(&tokens, &foreign);
        let engine: Arc<Engine> = Arc::new(engine);
        let rwlock: Arc<RwLockHashMap> = Arc::new(RwLockHashMap::from_tokens(&tokens));
        let dash = Arc::new(DashMapAhash::from_tokens(&tokens));
        let now = T0 as u32;
        let ip = office();

        let contenders: Vec<(&str, Validator)> = vec![
            ("sessionward", {
                let engine = Arc::clone(&engine);
                Arc::new(move |token: &str| engine.validate(token, ip, Requirement::Any).is_ok())
            }),
            ("rwlock_hashmap", {
                let map = Arc::clone(&rwlock);
                Arc::new(move |token: &str| map.validate(token, ip, now))
            }),
            ("dashmap_ahash", {
                let map = Arc::clone(&dash);
                Arc::new(move |token: &str| map.validate(token, ip, now))
            }),
        ];

        for (mix, tokens) in workload.mixes() {
            let streams = Arc::new(vec![Stream::new(tokens, 7), Stream::new(tokens, 8)]);
            for threads in [1_usize, 2] {
                let mut group = c.benchmark_group(format!("validate/{sessions}/{mix}/{threads}t"));
                group.throughput(Throughput::Elements(1));
                group.sample_size(10);
                group.warm_up_time(Duration::from_millis(500));
                group.measurement_time(Duration::from_secs(2));
                for (name, validate) in &contenders {
                    group.bench_function(BenchmarkId::from_parameter(name), |b| {
                        b.iter_custom(|iters| run_threads(threads, iters, &streams, validate));
                    });
                }
                group.bench_function(BenchmarkId::from_parameter("sessionward_batch64"), |b| {
                    b.iter_custom(|iters| run_batches(threads, iters, &streams, &engine));
                });
                group.finish();
            }
        }
    }
}

criterion_group!(benches, bench_validate);
criterion_main!(benches);
