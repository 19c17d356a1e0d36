//! SHA-256 of two single-block messages at once, with their rounds interleaved, and the one
//! block of a token. Part of [`raw`](crate::raw), the one module of the core that uses `unsafe`.
//!
//! # Why two at once
//!
//! A token's digest is one SHA-256 compression, and with the SHA extensions a compression is
//! a chain of 32 `SHA256RNDS2` instructions, each waiting for the one before (~55 ns for the
//! chain on the project's AMD EPYC machine). Between a batch's lookups, ~80 ns of other work
//! separates one token's compression from the next, too much for the core's out-of-order
//! window to overlap them by itself; written side by side, the two chains run in parallel.
//! A batched validation ([`Engine::validate_many`](crate::Engine::validate_many)) hashes its
//! tokens in pairs this way (with its grouping, 1-9 % more validations per second at 1 M
//! sessions; see the README's "Batches hash in pairs"). Two compressions back to back in a
//! loop with nothing else in it do overlap unaided, which is why a microbenchmark of the idea
//! once showed no gain. The Linux
//! kernel interleaves SHA-256 for the same reason (`sha256_finup_2x`, for dm-verity and
//! fs-verity, 2024).
//!
//! The instruction sequence for one block is the one of the `sha2` crate's x86 backend (after
//! Intel's "New Instructions Supporting the Secure Hash Algorithm on Intel Architecture
//! Processors"), written for two states; `sha2` has no multi-message interface.
//!
//! # Why `unsafe` here
//!
//! The SHA intrinsics are `#[target_feature]` functions, callable only from code compiled for
//! the feature, which is `unsafe fn` code; the unaligned block loads are raw pointer reads.
//! A token's block is assembled with SSE2 loads and stores ([`token_block`], which says why).
//!
//! # Why it is sound
//!
//! - **CPU features.** [`compress_pair`] runs [`interleaved`] only after
//!   `is_x86_feature_detected!` said yes to `sha`, `ssse3` and `sse4.1` (std caches the
//!   answer; SSE2 is the x86_64 baseline). Elsewhere, and on CPUs without them, it makes two
//!   calls of `sha2::compress256`, which computes the same value.
//! - **Memory.** The blocks are `&[u8; 64]`; the four 16-byte loads of each read bytes 0..16,
//!   16..32, 32..48 and 48..64, all inside it. [`token_block`] reads 16 bytes at 4, 20, 36
//!   and 48 of its 64-byte token and writes 16 at 0, 16, 32 and 48 of its 64-byte block.
//!   Unaligned loads and stores have no alignment requirement.
//!   The output is returned by value.
//! - **Value.** The tests compare every output with `sha2::compress256` on random blocks, on
//!   all-zero and all-ones blocks, and on every bit of a block flipped in turn; every batched
//!   validation's result is compared with single calls' in the engine's tests. Token blocks
//!   are compared with the padded message built byte by byte, for random and edge tokens.

use sha2::digest::generic_array::GenericArray;

/// SHA-256's initial hash value (FIPS 180-4, 5.3.3).
pub(crate) const INITIAL_STATE: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// Where a token's hashed characters (its selector and secret) start, and how many there are:
/// with SHA-256's padding they make exactly one block.
pub(crate) const TOKEN_HASHED_AT: usize = 4;
/// See [`TOKEN_HASHED_AT`].
pub(crate) const TOKEN_HASHED_LEN: usize = 54;

/// The block's last 16 bytes besides the token's last 6 hashed characters (the low 6 bytes
/// of this little-endian number): the padding's 0x80, a zero, then the message length in
/// bits, big-endian.
const TAIL_PADDING: u128 =
    0x80 << 48 | (((TOKEN_HASHED_LEN as u64) * 8).swap_bytes() as u128) << 64;

/// The one SHA-256 block of a token's hashed characters, `token[4..58]`, then the padding.
///
/// The block is assembled in four 16-byte words, each read whole from the token and stored
/// whole, because the compression reads it back 16 bytes at a time: a read that spans
/// several narrower stores cannot be forwarded from the store buffer and waits for them to
/// reach the cache. The last word (the token's bytes 52..58 moved down, then the padding) is
/// made in a vector register: made as a `u128`, it left its general registers as two 8-byte
/// stores, that wait again. In one process, alternating with the `u128` version: 2-8 % more
/// validations per second at 1 M sessions, 2-12 % at 10 k (single calls and batches, one and
/// two threads).
#[inline]
pub(crate) fn token_block(token: &[u8; 64]) -> [u8; 64] {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        // SAFETY: SSE2 is enabled at compile time (the x86_64 baseline), the only feature
        // `token_block_sse2` needs; see the module documentation.
        #[allow(unsafe_code)]
        unsafe {
            token_block_sse2(token)
        }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        token_block_portable(token)
    }
}

/// [`token_block`] in `u128`s: for other CPUs, and the reference of the tests.
#[cfg(any(test, not(all(target_arch = "x86_64", target_feature = "sse2"))))]
fn token_block_portable(token: &[u8; 64]) -> [u8; 64] {
    let word = |at: usize| {
        let mut word = [0_u8; 16];
        word.copy_from_slice(&token[at..at + 16]);
        u128::from_le_bytes(word)
    };
    let tail = (word(48) >> 32) & ((1 << 48) - 1) | TAIL_PADDING;
    let mut block = [0_u8; 64];
    for (chunk, word) in block
        .chunks_exact_mut(16)
        .zip([word(4), word(20), word(36), tail])
    {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    block
}

/// [`token_block`] in SSE2.
///
/// The body is an `unsafe fn`'s, so its unsafe operations need no blocks of their own: the
/// four unaligned 16-byte loads (at bytes 4, 20, 36 and 48 of the 64-byte token), the four
/// unaligned 16-byte stores (at bytes 0, 16, 32 and 48 of the 64-byte block), and, before
/// Rust 1.87, the register-only intrinsics.
///
/// # Safety
///
/// The CPU must support SSE2 (every x86_64 CPU does).
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline]
#[allow(unsafe_code)]
unsafe fn token_block_sse2(token: &[u8; 64]) -> [u8; 64] {
    use std::arch::x86_64::{
        _mm_and_si128, _mm_loadu_si128, _mm_or_si128, _mm_set_epi64x, _mm_srli_si128,
        _mm_storeu_si128,
    };
    const _: () = assert!(TOKEN_HASHED_AT == 4 && TOKEN_HASHED_AT + TOKEN_HASHED_LEN == 58);
    let source = token.as_ptr();
    // SAFETY (all four): 16 bytes at 4, 20, 36 and 48, inside the 64-byte token.
    let words = [
        _mm_loadu_si128(source.add(4).cast()),
        _mm_loadu_si128(source.add(20).cast()),
        _mm_loadu_si128(source.add(36).cast()),
    ];
    let last = _mm_loadu_si128(source.add(48).cast());
    // Bytes 52..58 down to 0..6, the rest cleared, then the padding.
    let kept = _mm_and_si128(_mm_srli_si128::<4>(last), _mm_set_epi64x(0, (1 << 48) - 1));
    let padding = _mm_set_epi64x((TAIL_PADDING >> 64) as i64, TAIL_PADDING as u64 as i64);
    let tail = _mm_or_si128(kept, padding);
    let mut block = [0_u8; 64];
    let target = block.as_mut_ptr();
    for (at, word) in [0, 16, 32, 48]
        .into_iter()
        .zip([words[0], words[1], words[2], tail])
    {
        // SAFETY: 16 bytes at `at <= 48`, inside the 64-byte block.
        _mm_storeu_si128(target.add(at).cast(), word);
    }
    block
}

/// The state after compressing each of `blocks` from [`INITIAL_STATE`]: what
/// `sha2::compress256` gives for each block alone.
#[inline]
pub(crate) fn compress_pair(blocks: [&[u8; 64]; 2]) -> [[u32; 8]; 2] {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("sha")
        && std::arch::is_x86_feature_detected!("ssse3")
        && std::arch::is_x86_feature_detected!("sse4.1")
    {
        // SAFETY: the CPU has SHA, SSSE3 and SSE4.1 (just checked) and SSE2 (the x86_64
        // baseline), the features `interleaved` is compiled for; see the module documentation.
        #[allow(unsafe_code)]
        return unsafe { interleaved(blocks) };
    }
    blocks.map(compress_one)
}

/// The state after compressing `block` from [`INITIAL_STATE`], through `sha2`.
#[inline]
pub(crate) fn compress_one(block: &[u8; 64]) -> [u32; 8] {
    let mut state = INITIAL_STATE;
    sha2::compress256(&mut state, &[GenericArray::from(*block)]);
    state
}

/// SHA-256's round constants, four to a vector in the order `_mm_set_epi32` takes them.
#[cfg(target_arch = "x86_64")]
const K32X4: [[u32; 4]; 16] = {
    const K32: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut table = [[0_u32; 4]; 16];
    let mut group = 0;
    while group < 16 {
        let mut lane = 0;
        while lane < 4 {
            table[group][lane] = K32[group * 4 + 3 - lane];
            lane += 1;
        }
        group += 1;
    }
    table
};

/// [`compress_pair`] with the SHA extensions: the two blocks' rounds interleaved.
///
/// Written out in full (macros, not loops over arrays): indexed message vectors were kept
/// on the stack, and each schedule step then waited for a store to be forwarded.
///
/// The body is an `unsafe fn`'s, so its unsafe operations need no blocks of their own: the
/// unaligned loads (each reads 16 bytes at `16 * i`, `i < 4`, of a 64-byte block), and,
/// before Rust 1.87, the register-only intrinsics.
///
/// # Safety
///
/// The CPU must support SHA, SSSE3 and SSE4.1 (and SSE2, which every x86_64 CPU does).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
#[allow(unsafe_code)]
unsafe fn interleaved(blocks: [&[u8; 64]; 2]) -> [[u32; 8]; 2] {
    use std::arch::x86_64::{
        __m128i, _mm_add_epi32, _mm_alignr_epi8, _mm_blend_epi16, _mm_extract_epi32,
        _mm_loadu_si128, _mm_set_epi32, _mm_set_epi64x, _mm_sha256msg1_epu32, _mm_sha256msg2_epu32,
        _mm_sha256rnds2_epu32, _mm_shuffle_epi32, _mm_shuffle_epi8,
    };
    // Big-endian message words to lanes.
    let byte_swap = _mm_set_epi64x(
        0x0C0D_0E0F_0809_0A0B_u64 as i64,
        0x0405_0607_0001_0203_u64 as i64,
    );
    // The initial state as the round instructions hold it: (a, b, e, f) and (c, d, g, h).
    let [a, b, c, d, e, f, g, h] = INITIAL_STATE.map(|word| word as i32);
    let abef_initial = _mm_set_epi32(a, b, e, f);
    let cdgh_initial = _mm_set_epi32(c, d, g, h);
    let (mut first_abef, mut first_cdgh) = (abef_initial, cdgh_initial);
    let (mut second_abef, mut second_cdgh) = (abef_initial, cdgh_initial);
    // The block's message vector `at` (words 4 * at..4 * at + 4).
    macro_rules! load {
        ($block:expr, $at:literal) => {{
            const _: () = assert!($at < 4);
            // SAFETY: bytes `16 * $at..16 * $at + 16` lie inside the 64-byte block (asserted
            // above), and `_mm_loadu_si128` has no alignment requirement.
            _mm_shuffle_epi8(
                _mm_loadu_si128($block.as_ptr().add(16 * $at).cast()),
                byte_swap,
            )
        }};
    }
    let [mut x0, mut x1, mut x2, mut x3] = [
        load!(blocks[0], 0),
        load!(blocks[0], 1),
        load!(blocks[0], 2),
        load!(blocks[0], 3),
    ];
    let [mut y0, mut y1, mut y2, mut y3] = [
        load!(blocks[1], 0),
        load!(blocks[1], 1),
        load!(blocks[1], 2),
        load!(blocks[1], 3),
    ];
    // Each block's fifth message vector: the schedule keeps the last four in a window of five
    // (as sha2's backend does), written first by group 4.
    let (mut x4, mut y4): (__m128i, __m128i);
    // The next four message words from the previous sixteen (w[i - 16], w[i - 15],
    // w[i - 7] and w[i - 2] of FIPS 180-4's schedule, four at a time).
    // (Macros rather than closures, here and below: closures do not inherit
    // `target_feature` before Rust 1.86, and their intrinsics would then be calls.)
    macro_rules! schedule {
        ($w0:expr, $w1:expr, $w2:expr, $w3:expr) => {{
            let sigma0 = _mm_sha256msg1_epu32($w0, $w1);
            _mm_sha256msg2_epu32(_mm_add_epi32(sigma0, _mm_alignr_epi8::<4>($w3, $w2)), $w3)
        }};
    }
    // Rounds `4 * group..4 * group + 4` of both blocks, with message vectors `$x` and `$y`.
    macro_rules! rounds {
        ($group:literal, $x:expr, $y:expr) => {{
            let k = K32X4[$group];
            let k = _mm_set_epi32(k[0] as i32, k[1] as i32, k[2] as i32, k[3] as i32);
            let (x, y) = (_mm_add_epi32($x, k), _mm_add_epi32($y, k));
            first_cdgh = _mm_sha256rnds2_epu32(first_cdgh, first_abef, x);
            second_cdgh = _mm_sha256rnds2_epu32(second_cdgh, second_abef, y);
            first_abef =
                _mm_sha256rnds2_epu32(first_abef, first_cdgh, _mm_shuffle_epi32::<0x0E>(x));
            second_abef =
                _mm_sha256rnds2_epu32(second_abef, second_cdgh, _mm_shuffle_epi32::<0x0E>(y));
        }};
    }
    // Schedule the next vector of both blocks into `$x4`/`$y4`, then run its rounds.
    macro_rules! scheduled_rounds {
        ($group:literal, $x0:ident $x1:ident $x2:ident $x3:ident => $x4:ident,
         $y0:ident $y1:ident $y2:ident $y3:ident => $y4:ident) => {{
            $x4 = schedule!($x0, $x1, $x2, $x3);
            $y4 = schedule!($y0, $y1, $y2, $y3);
            rounds!($group, $x4, $y4);
        }};
    }
    rounds!(0, x0, y0);
    rounds!(1, x1, y1);
    rounds!(2, x2, y2);
    rounds!(3, x3, y3);
    scheduled_rounds!(4, x0 x1 x2 x3 => x4, y0 y1 y2 y3 => y4);
    scheduled_rounds!(5, x1 x2 x3 x4 => x0, y1 y2 y3 y4 => y0);
    scheduled_rounds!(6, x2 x3 x4 x0 => x1, y2 y3 y4 y0 => y1);
    scheduled_rounds!(7, x3 x4 x0 x1 => x2, y3 y4 y0 y1 => y2);
    scheduled_rounds!(8, x4 x0 x1 x2 => x3, y4 y0 y1 y2 => y3);
    scheduled_rounds!(9, x0 x1 x2 x3 => x4, y0 y1 y2 y3 => y4);
    scheduled_rounds!(10, x1 x2 x3 x4 => x0, y1 y2 y3 y4 => y0);
    scheduled_rounds!(11, x2 x3 x4 x0 => x1, y2 y3 y4 y0 => y1);
    scheduled_rounds!(12, x3 x4 x0 x1 => x2, y3 y4 y0 y1 => y2);
    scheduled_rounds!(13, x4 x0 x1 x2 => x3, y4 y0 y1 y2 => y3);
    scheduled_rounds!(14, x0 x1 x2 x3 => x4, y0 y1 y2 y3 => y4);
    scheduled_rounds!(15, x1 x2 x3 x4 => x0, y1 y2 y3 y4 => y0);
    // Back to (a, b, c, d) and (e, f, g, h), after adding the initial state.
    macro_rules! state {
        ($abef:expr, $cdgh:expr) => {{
            let feba = _mm_shuffle_epi32::<0x1B>(_mm_add_epi32($abef, abef_initial));
            let dchg = _mm_shuffle_epi32::<0xB1>(_mm_add_epi32($cdgh, cdgh_initial));
            let dcba = _mm_blend_epi16::<0xF0>(feba, dchg);
            let hgef = _mm_alignr_epi8::<8>(dchg, feba);
            macro_rules! lanes {
                ($vector:expr) => {
                    [
                        _mm_extract_epi32::<0>($vector),
                        _mm_extract_epi32::<1>($vector),
                        _mm_extract_epi32::<2>($vector),
                        _mm_extract_epi32::<3>($vector),
                    ]
                    .map(|word| word as u32)
                };
            }
            let ([a, b, c, d], [e, f, g, h]) = (lanes!(dcba), lanes!(hgef));
            [a, b, c, d, e, f, g, h]
        }};
    }
    [
        state!(first_abef, first_cdgh),
        state!(second_abef, second_cdgh),
    ]
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::{RngCore, SeedableRng};

    use super::*;

    fn check(first: &[u8; 64], second: &[u8; 64]) {
        assert_eq!(
            compress_pair([first, second]),
            [compress_one(first), compress_one(second)]
        );
    }

    #[test]
    fn equals_sha2_on_random_blocks() {
        let mut rng = ChaCha20Rng::seed_from_u64(256);
        // The rounds have no data-dependent branch, so any block runs every instruction; a
        // few thousand random pairs catch a lane or order mistake many times over, and keep
        // the test short under valgrind (`make memcheck`), which interprets sha2's portable
        // code for the reference.
        let pairs = if cfg!(miri) { 20 } else { 2_000 };
        for _ in 0..pairs {
            let (mut first, mut second) = ([0_u8; 64], [0_u8; 64]);
            rng.fill_bytes(&mut first);
            rng.fill_bytes(&mut second);
            check(&first, &second);
        }
    }

    #[test]
    fn equals_sha2_on_edge_blocks_and_every_bit_flipped() {
        for fill in [0x00, 0xFF] {
            let block = [fill; 64];
            check(&block, &block);
            let bits = if cfg!(miri) { 0..8 } else { 0..512 };
            for bit in bits {
                let mut flipped = block;
                flipped[bit / 8] ^= 1 << (bit % 8);
                check(&block, &flipped);
                check(&flipped, &block);
                assert_ne!(compress_pair([&block, &flipped])[1], compress_one(&block));
            }
        }
    }

    #[test]
    fn a_token_block_is_its_hashed_characters_then_the_padding() {
        let mut rng = ChaCha20Rng::seed_from_u64(54);
        let tokens = if cfg!(miri) { 20 } else { 2_000 };
        for round in 0..tokens {
            let mut token = [0_u8; 64];
            if round > 1 {
                rng.fill_bytes(&mut token);
            } else {
                token = [[0x00, 0xFF][round]; 64];
            }
            let mut expected = [0_u8; 64];
            expected[..54].copy_from_slice(&token[4..58]);
            expected[54] = 0x80;
            expected[56..].copy_from_slice(&(54_u64 * 8).to_be_bytes());
            assert_eq!(token_block(&token), expected);
            assert_eq!(token_block_portable(&token), expected);
        }
    }

    #[test]
    fn the_interleaving_itself_is_tested_where_the_cpu_has_it() {
        #[cfg(target_feature = "sha")]
        assert!(std::arch::is_x86_feature_detected!("sha"));
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("sha")
            && std::arch::is_x86_feature_detected!("ssse3")
            && std::arch::is_x86_feature_detected!("sse4.1")
        {
            let first: [u8; 64] = std::array::from_fn(|at| (at as u8).wrapping_mul(37) ^ 0x5A);
            let second: [u8; 64] = std::array::from_fn(|at| (at as u8).wrapping_mul(101) ^ 0xC3);
            // SAFETY: the CPU has the features (checked above).
            #[allow(unsafe_code)]
            let both = unsafe { interleaved([&first, &second]) };
            assert_eq!(both, [compress_one(&first), compress_one(&second)]);
        }
    }
}
