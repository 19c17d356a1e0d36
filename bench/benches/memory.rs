//! Memory per live session: the resident-set growth of populating 1 M sessions, for sessionward
//! (everything a session needs: table record, slack, the user's session index) and for the
//! baselines holding the same digests and records. Run with
//! `cargo bench -p sessionward-bench --bench memory`.

use sessionward_bench::*;

fn measure<T>(label: &str, sessions: usize, build: impl FnOnce() -> T) -> T {
    let before = resident_bytes().unwrap_or(0);
    let value = build();
    let after = resident_bytes().unwrap_or(0);
    let per = after.saturating_sub(before) as f64 / sessions as f64;
    println!("{label:<28} {sessions:>9} sessions  {per:>7.1} bytes/session");
    value
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument selects the size.
    let sessions = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(1_000_000_usize);
    println!(
        "machine: {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    // Tokens are the clients' side: generate them first, outside the measured deltas. The
    // engine's own sessions are logged in afresh (tokens dropped as they come), so its delta
    // holds only what the engine keeps.
    let (seed_engine, tokens) = populated_engine(sessions);
    drop(seed_engine);
    let engine = measure("sessionward", sessions, || populate(sessions, |_| ()));
    let map = measure("rwlock_hashmap (std)", sessions, || {
        RwLockHashMap::<std::collections::hash_map::RandomState>::from_tokens(&tokens)
    });
    let dash = measure("dashmap_ahash", sessions, || {
        DashMapAhash::from_tokens(&tokens)
    });
    std::hint::black_box((engine, map, dash));
}
