//! Validates hot tokens against a 1 M-session engine in a loop, for `perf record`:
//! `cargo build --release -p sessionward-bench --example profile_validate` then
//! `perf record -g target/release/examples/profile_validate [SESSIONS [ROUNDS [batch|brief]]]`
//! (`batch`: through `validate_many` in batches of 64 instead of one call per token; `brief`:
//! through `validate_many_brief`). Tokens
//! come from a [`TokenStream`] prefetched ahead, as in the criterion benches.

use sessionward_bench::*;
use sessionward_core::Requirement;

fn main() {
    let sessions: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let (engine, tokens) = populated_engine(sessions);
    let stream = TokenStream::uniform(&tokens, 5);
    let ip = office();
    let start = std::time::Instant::now();
    let mut ok = 0_u64;
    let rounds: usize = std::env::args()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let answer = match std::env::args().nth(3).as_deref() {
        Some("batch") => Some(BatchAnswer::Info),
        Some("brief") => Some(BatchAnswer::Brief),
        _ => None,
    };
    let mut batch_tokens: Vec<&str> = Vec::with_capacity(64);
    let mut results = BatchResults::default();
    for _ in 0..rounds {
        if let Some(answer) = answer {
            for chunk in 0..stream.len() / 64 {
                stream.batch_prefetching(chunk * 64, 64, &mut batch_tokens);
                let batch = std::hint::black_box(&batch_tokens);
                ok += results.validate(&engine, batch, &[ip], answer) as u64;
            }
            continue;
        }
        for i in 0..stream.len() {
            let token = stream.token_prefetching(i);
            ok += u64::from(
                engine
                    .validate(std::hint::black_box(token), ip, Requirement::Any)
                    .is_ok(),
            );
        }
    }
    let elapsed = start.elapsed();
    let count = rounds * stream.len();
    println!(
        "{ok} ok, {:.0} ns per validation",
        elapsed.as_nanos() as f64 / count as f64
    );
}
