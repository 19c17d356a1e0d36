//! Validates hot tokens against a 1 M-session engine in a loop, for `perf record`:
//! `cargo build --release -p sessionward-bench --example profile_validate` then
//! `perf record -g target/release/examples/profile_validate [SESSIONS [ROUNDS [batch]]]`
//! (`batch`: through `validate_many` in batches of 64 instead of one call per token).

use sessionward_bench::*;
use sessionward_core::Requirement;

fn main() {
    let sessions: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let (engine, tokens) = populated_engine(sessions);
    let order = index_sequence(tokens.len(), 1 << 18, 5);
    let stream: Vec<u8> = order
        .iter()
        .flat_map(|&i| tokens[i as usize].bytes())
        .collect();
    let stream = String::from_utf8(stream).expect("ascii");
    // Every token has the engine's one length; never assume which.
    let width = tokens[0].len();
    let ip = office();
    let start = std::time::Instant::now();
    let mut ok = 0_u64;
    let rounds: usize = std::env::args()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let batch = std::env::args().nth(3).as_deref() == Some("batch");
    let mut tokens: Vec<&str> = Vec::with_capacity(64);
    let mut results = Vec::with_capacity(64);
    for _ in 0..rounds {
        if batch {
            for chunk in 0..(1 << 18) / 64 {
                tokens.clear();
                tokens.extend(
                    (chunk * 64..(chunk + 1) * 64).map(|i| &stream[i * width..(i + 1) * width]),
                );
                engine.validate_many(
                    std::hint::black_box(&tokens),
                    &[ip],
                    Requirement::Any,
                    &mut results,
                );
                ok += results.iter().filter(|result| result.is_ok()).count() as u64;
            }
            continue;
        }
        for i in 0..(1 << 18) {
            let token = &stream[i * width..(i + 1) * width];
            ok += u64::from(
                engine
                    .validate(std::hint::black_box(token), ip, Requirement::Any)
                    .is_ok(),
            );
        }
    }
    let elapsed = start.elapsed();
    let count = rounds * (1 << 18);
    println!(
        "{ok} ok, {:.0} ns per validation",
        elapsed.as_nanos() as f64 / count as f64
    );
}
