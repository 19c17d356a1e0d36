//! What one random memory access costs on this machine, which bounds what a single-call
//! validation can reach: a validation that misses the cache waits for its record's line
//! however early it asks for it, so on one core it takes at least one dependent access.
//!
//! `cargo run --release -p sessionward-bench --example memory_latency [-- MIB...]`
//! (default 1 4 16 72: 72 MiB is a 1 M-session table). For each size it chases a random
//! cycle through 64-byte lines (each access depends on the one before: a cache miss's full
//! latency) and then reads random lines independently (the misses overlap: the bandwidth a
//! batched or multi-threaded lookup can use). The buffer lives in small pages; the engine's
//! table asks for huge pages (`madvise`), which saves it part of the address-translation cost.

use std::time::Instant;

/// One cache line: the index of the next line of the cycle, padding.
#[derive(Clone, Copy)]
#[repr(align(64))]
struct Line {
    next: u32,
    _pad: [u32; 15],
}

/// xorshift64: cheap, and its output is independent enough of the lines' order.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|n| {
            n.parse()
                .ok()
                .filter(|&mib| mib > 0)
                .expect("MIB: a whole number of MiB, at least 1")
        })
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1, 4, 16, 72]
    } else {
        sizes
    };
    println!("random 64-byte line reads, one thread (small pages)");
    for mib in sizes {
        let count = mib * 1024 * 1024 / 64;
        // A random cyclic order of all lines (Sattolo's shuffle), so the chase visits each.
        let mut order: Vec<u32> = (0..count as u32).collect();
        let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
        for i in (1..count).rev() {
            let j = (next_random(&mut seed) % i as u64) as usize;
            order.swap(i, j);
        }
        let mut lines = vec![
            Line {
                next: 0,
                _pad: [0; 15]
            };
            count
        ];
        for window in order.windows(2) {
            lines[window[0] as usize].next = window[1];
        }
        lines[order[count - 1] as usize].next = order[0];
        let steps = 5_000_000;
        let mut at = 0_u32;
        let start = Instant::now();
        for _ in 0..steps {
            at = lines[at as usize].next;
        }
        let dependent = start.elapsed().as_nanos() as f64 / steps as f64;
        std::hint::black_box(at);
        let mut sum = 0_u64;
        let start = Instant::now();
        for _ in 0..steps {
            sum += u64::from(lines[(next_random(&mut seed) % count as u64) as usize].next);
        }
        let independent = start.elapsed().as_nanos() as f64 / steps as f64;
        std::hint::black_box(sum);
        println!(
            "  {mib:>4} MiB: {dependent:6.1} ns per dependent access, \
             {independent:5.1} ns per independent access"
        );
    }
}
