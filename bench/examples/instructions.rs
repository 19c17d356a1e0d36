//! Runs N validations of one contender, for instruction counting under
//! `valgrind --tool=callgrind` (repeatable whatever else the machine is doing):
//! `cargo run --release -p sessionward-bench --example instructions -- sessionward 100000`.
//! Contenders: `sessionward` (one `validate` call per token), `sessionward_batch64`
//! (`validate_many`, 64 tokens a call) and `rwlock_hashmap`.

use sessionward_bench::*;
use sessionward_core::Requirement;

fn main() {
    let mut args = std::env::args().skip(1);
    let contender = args.next().unwrap_or_else(|| "sessionward".into());
    let count: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let (engine, tokens) = populated_engine(10_000);
    let map = RwLockHashMap::<std::collections::hash_map::RandomState>::from_tokens(&tokens);
    let order = index_sequence(tokens.len(), count.max(1), 3);
    let ip = office();
    let mut ok = 0_usize;
    if contender == "sessionward_batch64" {
        let mut results = Vec::with_capacity(64);
        // One buffer for every batch, so that no allocation is counted with the validations.
        let mut batch: Vec<&str> = Vec::with_capacity(64);
        for chunk in order[..count.min(order.len())].chunks(64) {
            batch.clear();
            batch.extend(chunk.iter().map(|&index| tokens[index as usize].as_str()));
            engine.validate_many(
                std::hint::black_box(&batch),
                &[ip],
                Requirement::Any,
                &mut results,
            );
            ok += results.iter().filter(|result| result.is_ok()).count();
        }
        println!("{contender}: {ok} of {count} valid");
        return;
    }
    for &index in order.iter().take(count) {
        let token = std::hint::black_box(&tokens[index as usize]);
        ok += usize::from(match contender.as_str() {
            "sessionward" => engine.validate(token, ip, Requirement::Any).is_ok(),
            _ => map.validate(token, ip, T0 as u32),
        });
    }
    println!("{contender}: {ok} of {count} valid");
}
