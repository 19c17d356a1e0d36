//! Memory per live session: the resident-set growth of populating 1 M sessions, for sessionward
//! (everything a session needs: table record, slack, the user's session index) and for each
//! baseline holding the same digests and records (std `RwLock<HashMap>`, dashmap, moka, scc,
//! papaya).
//!
//! Each contender is measured in a fresh child process (this binary re-executed with
//! `--child <name> <sessions>`), so memory one contender freed cannot be reused by the next
//! and hide part of its growth. The parent generates the tokens once and writes them to each
//! baseline child's standard input; the child reads them before its first measurement.
//! sessionward's child logs its sessions in afresh (each token dropped as it comes), so its
//! delta holds only what the engine keeps.
//!
//! Run with `cargo bench -p sessionward-bench --bench memory` (any numeric argument sets the
//! session count: `cargo bench -p sessionward-bench --bench memory -- 100000`).

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use sessionward_bench::*;

/// The contenders, in printing order.
const CONTENDERS: [&str; 6] = [
    "sessionward",
    RwLockHashMap::<std::collections::hash_map::RandomState>::NAME,
    DashMapAhash::NAME,
    MokaCache::NAME,
    SccHashMap::NAME,
    PapayaMap::NAME,
];

/// Builds the named contender from `tokens` and returns its resident-set growth in bytes.
fn child(name: &str, sessions: usize, tokens: &[&str]) -> u64 {
    fn grow<T>(build: impl FnOnce() -> T) -> u64 {
        let before = resident_bytes().expect("/proc/self/statm");
        let value = build();
        let after = resident_bytes().expect("/proc/self/statm");
        std::hint::black_box(&value);
        after.saturating_sub(before)
    }
    match name {
        "sessionward" => grow(|| populate(sessions, |_| ())),
        "rwlock_hashmap" => {
            grow(|| RwLockHashMap::<std::collections::hash_map::RandomState>::from_tokens(tokens))
        }
        "dashmap_ahash" => grow(|| DashMapAhash::from_tokens(tokens)),
        "moka" => grow(|| {
            let cache = MokaCache::from_tokens(tokens);
            // Applies buffered writes: the steady state a running server would be in.
            cache.run_pending_tasks();
            cache
        }),
        "scc" => grow(|| SccHashMap::from_tokens(tokens)),
        "papaya" => grow(|| PapayaMap::from_tokens(tokens)),
        other => panic!("unknown contender {other:?}"),
    }
}

/// Child mode: reads tokens (one per line) from standard input unless it is sessionward,
/// measures, and prints the byte count.
fn run_child(name: &str, sessions: usize) {
    let mut text = String::new();
    if name != "sessionward" {
        std::io::stdin()
            .read_to_string(&mut text)
            .expect("tokens on stdin");
    }
    let tokens: Vec<&str> = text.lines().collect();
    assert!(
        name == "sessionward" || tokens.len() == sessions,
        "{name}: token count"
    );
    println!("{}", child(name, sessions, &tokens));
}

/// Runs one contender in a fresh process; its resident-set growth in bytes.
fn measure_in_child(name: &str, sessions: usize, tokens: &str) -> u64 {
    let exe = std::env::current_exe().expect("own executable");
    let mut child = Command::new(exe)
        .args(["--child", name, &sessions.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("re-executing the bench");
    let mut stdin = child.stdin.take().expect("piped stdin");
    if name != "sessionward" {
        stdin.write_all(tokens.as_bytes()).expect("tokens to child");
    }
    drop(stdin);
    let output = child.wait_with_output().expect("child ran");
    assert!(output.status.success(), "{name}: child failed");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("child prints a byte count")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|arg| arg == "--child") {
        let name = args.get(at + 1).expect("--child NAME SESSIONS");
        let sessions = args
            .get(at + 2)
            .and_then(|n| n.parse().ok())
            .expect("--child NAME SESSIONS");
        run_child(name, sessions);
        return;
    }
    // `cargo bench` passes `--bench`; a numeric argument selects the size.
    let sessions = args
        .iter()
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(1_000_000_usize);
    println!(
        "machine: {} cores; each contender in a fresh process",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let (engine, tokens) = populated_engine(sessions);
    drop(engine);
    let mut lines = tokens.join("\n");
    lines.push('\n');
    drop(tokens);
    for name in CONTENDERS {
        let bytes = measure_in_child(name, sessions, &lines);
        let per = bytes as f64 / sessions as f64;
        println!("{name:<28} {sessions:>9} sessions  {per:>7.1} bytes/session");
    }
}
