//! What a cheaper verifier than SHA-256 would buy: issue #9 asks to measure any construction
//! that keeps the guarantee (a copy of memory or of the database file yields nothing that
//! validates) at lower cost than SHA-256 per validation, and to propose it, not adopt it.
//!
//! `cargo run --release -p sessionward-bench --example verifiers [-- SESSIONS [ROUNDS]]`
//! (defaults: 10000 sessions, 9 rounds).
//!
//! Every candidate is a one-way function of the token's 54 random characters (11 of selector,
//! 43 of secret: 2^256 secrets) whose first 128 bits the record would keep, so a preimage
//! costs 2^128 generic work per session, as the engine's truncated SHA-256 does. Each is timed
//! two ways on one core, over 1,024 real tokens (in cache):
//! - **latency**: a dependent chain, the next token's index taken from the last output, which
//!   is what a single-call validation pays when the record is already in cache;
//! - **throughput**: independent tokens, which is what a batched validation pays, since its
//!   pipeline overlaps one token's hashing with the next ones'.
//!
//! The candidates, interleaved round by round so the host's noise hits them alike:
//! - `shape + CRC32`: what the engine checks before it hashes ([`is_well_formed`]); the
//!   engine's SHA-256 costs `token_key` minus this.
//! - `shape + CRC32 + SHA-256`: the engine's own path ([`token_key`]; one SHA-256 block, with
//!   the SHA extensions where the CPU has them).
//! - `SHA-256 (sha2 Digest)`: the same hash through the generic streaming API, for reference.
//! - `BLAKE3`: one 64-byte block of BLAKE3 (SIMD, no hardware hash instructions).
//! - `AES-256, key = secret`: the block cipher as a one-way function of its key: the secret's
//!   first 40 digits packed 6 bits each (240 bits) are the key, the 11 selector characters
//!   and the last 3 digits the plaintext; the ciphertext is the verifier. Finding a key that
//!   maps a known plaintext to a known ciphertext is AES-256 key recovery (2^128 generic for a
//!   128-bit block; best known attack on the full cipher ~2^254), and the selector in the
//!   plaintext keeps one trial from testing many sessions at once. AES-NI, key schedule
//!   included.
//!
//! Then, for scale, the engine's own single-call and batched validation of `SESSIONS` sessions
//! in the same run, so the saving can be read as a share of a validation.

use std::hint::black_box;
use std::time::Instant;

use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockEncrypt, KeyInit};
use sessionward_bench::*;
use sessionward_core::{is_well_formed, token_key, Requirement};
use sha2::{Digest, Sha256};

/// Tokens per timed pass: they and their strings stay in L1/L2.
const SAMPLE: usize = 1024;
/// Calls per timed pass.
const CALLS: usize = 200_000;
/// The token's random characters: selector then secret (after `swd_`, before the checksum).
const HASHED: std::ops::Range<usize> = 4..58;
/// Where the secret's characters start.
const SECRET_AT: usize = 15;

/// A verifier candidate: the first 128 bits of its output for a token.
type Candidate = fn(&str) -> u128;

fn first_128(bytes: &[u8]) -> u128 {
    let mut word = [0_u8; 16];
    word.copy_from_slice(&bytes[..16]);
    u128::from_le_bytes(word)
}

fn shape_and_crc(token: &str) -> u128 {
    u128::from(is_well_formed(token))
}

fn engine_sha256(token: &str) -> u128 {
    // Bytes 0..8 are the selector; the digest follows.
    token_key(token).map_or(0, |key| first_128(&key[8..]))
}

fn sha2_digest(token: &str) -> u128 {
    first_128(&Sha256::digest(&token.as_bytes()[HASHED]))
}

fn blake3_hash(token: &str) -> u128 {
    first_128(blake3::hash(&token.as_bytes()[HASHED]).as_bytes())
}

/// Base62 digit value of each ASCII letter and digit (the candidates only see well-formed
/// tokens, so the other bytes never come up).
const DIGIT: [u8; 256] = {
    let alphabet = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut table = [0_u8; 256];
    let mut value = 0;
    while value < alphabet.len() {
        table[alphabet[value] as usize] = value as u8;
        value += 1;
    }
    table
};

fn aes256_secret_key(token: &str) -> u128 {
    let bytes = token.as_bytes();
    let secret = &bytes[SECRET_AT..HASHED.end];
    // The first 40 digits, 10 of 6 bits per 64-bit word (four independent chains), are the
    // key; the last 3 join the selector in the plaintext. Both packings are injective.
    let mut key = [0_u8; 32];
    for (word, digits) in key.chunks_exact_mut(8).zip(secret.chunks_exact(10)) {
        let packed = digits
            .iter()
            .fold(0_u64, |acc, &b| acc << 6 | u64::from(DIGIT[usize::from(b)]));
        word.copy_from_slice(&packed.to_le_bytes());
    }
    let mut block = [0_u8; 16];
    block[..11].copy_from_slice(&bytes[HASHED.start..SECRET_AT]);
    block[11..14].copy_from_slice(&secret[40..]);
    let mut block = GenericArray::from(block);
    aes::Aes256::new(&GenericArray::from(key)).encrypt_block(&mut block);
    first_128(&block)
}

/// Nanoseconds per call when each call waits for the one before (its index depends on it).
fn latency(candidate: Candidate, tokens: &[String]) -> f64 {
    let start = Instant::now();
    let mut index = 0;
    for _ in 0..CALLS {
        let out = candidate(black_box(&tokens[index]));
        index = (index + 1 + (out & 1) as usize) % tokens.len();
    }
    black_box(index);
    start.elapsed().as_nanos() as f64 / CALLS as f64
}

/// Nanoseconds per call over independent tokens.
fn throughput(candidate: Candidate, tokens: &[String]) -> f64 {
    let start = Instant::now();
    let mut folded = 0_u128;
    for round in 0..CALLS / tokens.len() {
        for token in tokens {
            folded ^= candidate(black_box(token)).rotate_left(round as u32);
        }
    }
    black_box(folded);
    let calls = CALLS / tokens.len() * tokens.len();
    start.elapsed().as_nanos() as f64 / calls as f64
}

/// Nanoseconds per validation of the engine's single-call and batched (64 per call) paths.
fn engine_rates(engine: &sessionward_core::Engine, stream: &TokenStream) -> (f64, f64) {
    let ip = [office()];
    let start = Instant::now();
    let mut valid = 0;
    for i in 0..CALLS {
        let token = stream.token_prefetching(i);
        valid += usize::from(
            engine
                .validate(black_box(token), ip[0], Requirement::Any)
                .is_ok(),
        );
    }
    let single = start.elapsed().as_nanos() as f64 / CALLS as f64;
    let mut batch = Vec::with_capacity(64);
    let mut results = Vec::with_capacity(64);
    let start = Instant::now();
    for first in (0..CALLS).step_by(64) {
        stream.batch_prefetching(first, 64, &mut batch);
        engine.validate_many(black_box(&batch), &ip, Requirement::Any, &mut results);
        valid += results.iter().filter(|result| result.is_ok()).count();
    }
    let batched = start.elapsed().as_nanos() as f64 / CALLS as f64;
    assert_eq!(valid, 2 * CALLS, "every token validates");
    (single, batched)
}

/// The best and the median of `values`, formatted: the best is the least disturbed by the
/// host's other work, the median shows how much it disturbed.
fn best_and_median(mut values: Vec<f64>) -> String {
    values.sort_by(f64::total_cmp);
    format!("{:.1} ({:.1})", values[0], values[values.len() / 2])
}

fn main() {
    let mut args = std::env::args().skip(1);
    let sessions = args
        .next()
        .map(|n| parse_count(&n).expect("SESSIONS: a count"))
        .unwrap_or(10_000);
    let rounds: usize = args
        .next()
        .map(|n| n.parse().expect("ROUNDS: a count"))
        .unwrap_or(9);
    let (engine, tokens) = populated_engine(sessions.max(SAMPLE));
    let sample = &tokens[..SAMPLE];
    let stream = TokenStream::uniform(&tokens, 7);
    let candidates: [(&str, Candidate); 5] = [
        ("shape + CRC32", shape_and_crc),
        ("shape + CRC32 + SHA-256 (engine)", engine_sha256),
        ("SHA-256 (sha2 Digest)", sha2_digest),
        ("BLAKE3", blake3_hash),
        ("AES-256, key = secret", aes256_secret_key),
    ];
    // Each real candidate (not the check alone) gives distinct outputs for distinct tokens.
    for (name, candidate) in &candidates[1..] {
        let mut outputs: Vec<u128> = sample.iter().map(|token| candidate(token)).collect();
        outputs.sort_unstable();
        outputs.dedup();
        assert_eq!(outputs.len(), SAMPLE, "{name}: outputs collide");
    }
    let mut timings = vec![(Vec::new(), Vec::new()); candidates.len()];
    let mut engine_timings = (Vec::new(), Vec::new());
    for _ in 0..rounds.max(1) {
        for ((_, candidate), (latencies, throughputs)) in candidates.iter().zip(&mut timings) {
            latencies.push(latency(*candidate, sample));
            throughputs.push(throughput(*candidate, sample));
        }
        let (single, batched) = engine_rates(&engine, &stream);
        engine_timings.0.push(single);
        engine_timings.1.push(batched);
    }
    println!(
        "verifier candidates, one core, ns per call: best (median) of {} rounds ({} cores here)",
        rounds.max(1),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("{:<34} {:>16} {:>16}", "", "latency", "throughput");
    for ((name, _), (latencies, throughputs)) in candidates.iter().zip(timings) {
        println!(
            "{name:<34} {:>16} {:>16}",
            best_and_median(latencies),
            best_and_median(throughputs)
        );
    }
    println!(
        "engine validation at {} sessions, ns per token: single call {}, batched {}",
        size_label(sessions.max(SAMPLE)),
        best_and_median(engine_timings.0),
        best_and_median(engine_timings.1)
    );
}
