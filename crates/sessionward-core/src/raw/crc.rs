//! The CRC-32 of a token's checked characters by carry-less multiplication. Part of
//! [`raw`](crate::raw), the one module of the core that uses `unsafe`.
//!
//! # Why `unsafe` here
//!
//! Every validation checks the CRC-32 of the token's first 58 bytes before it hashes the
//! token, and every login computes it. `crc32fast::hash` costs ~25 ns for those 58 bytes on
//! the project's machine, a quarter of a validation in cache: it is a general routine (a
//! call, a feature check, a loop over 16-byte blocks, a shuffle for the partial last block).
//! For exactly 58 bytes, the message is four 16-byte loads: six zero bytes in front do not
//! change a CRC once its initial value is folded into the first four message bytes, so the
//! first load is shifted right by six and the other three start at bytes 10, 26 and 42;
//! three folds and the final reduction follow, with no loop and no partial block. The
//! carry-less multiply (`PCLMULQDQ`) and the unaligned loads are `unsafe fn`s in Rust
//! (`#[target_feature]`, and raw pointers).
//!
//! # Why it is sound
//!
//! - **CPU features.** The folding runs only after `is_x86_feature_detected!("pclmulqdq")`
//!   said yes (std caches the answer); SSE2 is the x86_64 baseline. Elsewhere, and on CPUs
//!   without `PCLMULQDQ`, `crc32fast` computes the same value.
//! - **Memory.** The input is a `&[u8; 64]`; the four 16-byte loads read bytes 0..16, 10..26,
//!   26..42 and 42..58, all inside it. Unaligned loads have no alignment requirement.
//! - **Value.** The tests compare the result with `crc32fast::hash` on random, all-zero and
//!   all-ones input and on every byte changed in turn; every token the engine makes or checks
//!   goes through it, so the token tests would fail on any difference too.
//!
//! The constants and the reduction are those of Intel's "Fast CRC Computation for Generic
//! Polynomials Using PCLMULQDQ Instruction" for the bit-reflected CRC-32 (IEEE) polynomial,
//! as crc32fast uses them.

/// Bytes of a token the CRC covers (the prefix, the selector and the secret).
pub(crate) const CHECKED: usize = 58;

/// The CRC-32 (IEEE, as `crc32fast::hash` computes it) of `bytes[..58]`.
#[inline]
pub(crate) fn crc32_of_checked(bytes: &[u8; 64]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("pclmulqdq") {
        // SAFETY: the CPU has PCLMULQDQ (just checked) and SSE2 (the x86_64 baseline), the
        // features `folded` is compiled for; see the module documentation.
        #[allow(unsafe_code)]
        return unsafe { folded(bytes) };
    }
    crc32fast::hash(&bytes[..CHECKED])
}

/// Folding constants for a distance of 128 bits (one block): x^(128+32) and x^(128-32) mod
/// the polynomial, bit-reflected.
#[cfg(target_arch = "x86_64")]
const K3: i64 = 0x1_7519_97d0;
#[cfg(target_arch = "x86_64")]
const K4: i64 = 0x0_ccaa_009e;
/// Reduces 96 bits to 64.
#[cfg(target_arch = "x86_64")]
const K5: i64 = 0x1_63cd_6124;
/// The polynomial and its Barrett constant (bit-reflected), for the last 64 bits to 32.
#[cfg(target_arch = "x86_64")]
const P_X: i64 = 0x1_DB71_0641;
#[cfg(target_arch = "x86_64")]
const U_PRIME: i64 = 0x1_F701_1641;

/// The CRC-32 of `bytes[..58]` by carry-less multiplication.
///
/// The body is an `unsafe fn`'s, so its unsafe operations need no blocks of their own: the
/// unaligned loads (each reads 16 bytes at `at <= 42` of the 64, see the module
/// documentation), and, before Rust 1.87, the register-only intrinsics.
///
/// # Safety
///
/// The CPU must support `PCLMULQDQ` (and SSE2, which every x86_64 CPU does).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "pclmulqdq", enable = "sse2")]
#[allow(unsafe_code)]
unsafe fn folded(bytes: &[u8; 64]) -> u32 {
    use std::arch::x86_64::{
        _mm_and_si128, _mm_clmulepi64_si128, _mm_cvtsi128_si32, _mm_cvtsi32_si128, _mm_loadu_si128,
        _mm_set_epi32, _mm_set_epi64x, _mm_slli_si128, _mm_srli_si128, _mm_xor_si128,
    };
    // Macros rather than closures: closures do not inherit `target_feature` before Rust 1.86,
    // and their intrinsics would then be calls.
    macro_rules! block {
        ($at:literal) => {{
            const _: () = assert!($at + 16 <= CHECKED);
            // SAFETY: bytes `$at..$at + 16` lie inside the 64-byte array (asserted above), and
            // `_mm_loadu_si128` has no alignment requirement.
            _mm_loadu_si128(bytes.as_ptr().add($at).cast())
        }};
    }
    let k3k4 = _mm_set_epi64x(K4, K3);
    macro_rules! fold {
        ($x:expr, $next:expr) => {{
            let x = $x;
            let low = _mm_clmulepi64_si128::<0x00>(x, k3k4);
            let high = _mm_clmulepi64_si128::<0x11>(x, k3k4);
            _mm_xor_si128(_mm_xor_si128($next, low), high)
        }};
    }
    // The initial value (all ones) goes into the first four message bytes; then the block
    // moves up six bytes: the six zero bytes in front that make 58 bytes 64.
    let first = _mm_xor_si128(block!(0), _mm_cvtsi32_si128(-1));
    let mut x = _mm_slli_si128::<6>(first);
    x = fold!(x, block!(10));
    x = fold!(x, block!(26));
    x = fold!(x, block!(42));
    // 128 bits to 64, then Barrett reduction to 32 (bit-reflected, so the result is the
    // second 32-bit lane).
    let low32 = _mm_set_epi32(0, 0, 0, -1);
    let x = _mm_xor_si128(
        _mm_clmulepi64_si128::<0x10>(x, k3k4),
        _mm_srli_si128::<8>(x),
    );
    let x = _mm_xor_si128(
        _mm_clmulepi64_si128::<0x00>(_mm_and_si128(x, low32), _mm_set_epi64x(0, K5)),
        _mm_srli_si128::<4>(x),
    );
    let pu = _mm_set_epi64x(U_PRIME, P_X);
    let t1 = _mm_clmulepi64_si128::<0x10>(_mm_and_si128(x, low32), pu);
    let t2 = _mm_clmulepi64_si128::<0x00>(_mm_and_si128(t1, low32), pu);
    !(_mm_cvtsi128_si32(_mm_srli_si128::<4>(_mm_xor_si128(x, t2))) as u32)
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::{RngCore, SeedableRng};

    use super::*;

    fn reference(bytes: &[u8; 64]) -> u32 {
        crc32fast::hash(&bytes[..CHECKED])
    }

    #[test]
    fn equals_crc32fast_on_random_input() {
        let mut rng = ChaCha20Rng::seed_from_u64(58);
        // Miri interprets every instruction: a few hundred inputs there, as many as a second
        // of the native run takes here.
        let inputs = if cfg!(miri) { 200 } else { 20_000 };
        for _ in 0..inputs {
            let mut bytes = [0_u8; 64];
            rng.fill_bytes(&mut bytes);
            assert_eq!(crc32_of_checked(&bytes), reference(&bytes));
        }
    }

    #[test]
    fn equals_crc32fast_on_edge_input_and_every_single_change() {
        for fill in [0x00, 0xFF, b'0', b'z'] {
            let bytes = [fill; 64];
            assert_eq!(crc32_of_checked(&bytes), reference(&bytes));
            for at in 0..64 {
                for flip in [0x01, 0x80, 0xFF] {
                    let mut changed = bytes;
                    changed[at] ^= flip;
                    let crc = crc32_of_checked(&changed);
                    assert_eq!(crc, reference(&changed), "byte {at} ^ {flip:#x}");
                    // The last six bytes (the checksum's own place) are not covered.
                    assert_eq!(crc == crc32_of_checked(&bytes), at >= CHECKED);
                }
            }
        }
    }

    #[test]
    fn the_folding_itself_is_tested_where_the_cpu_has_it() {
        // Built with the feature on (as `make miri` does for Miri, which then emulates it),
        // the folding must run: the test may not pass by skipping it.
        #[cfg(target_feature = "pclmulqdq")]
        assert!(std::arch::is_x86_feature_detected!("pclmulqdq"));
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("pclmulqdq") {
            // Any 64 bytes: distinct ones, made here rather than written as a token-shaped
            // literal (which secret scanners would flag).
            let bytes: [u8; 64] = std::array::from_fn(|at| (at as u8).wrapping_mul(37) ^ 0x5A);
            // SAFETY: the CPU has PCLMULQDQ (checked above).
            #[allow(unsafe_code)]
            let folded = unsafe { folded(&bytes) };
            assert_eq!(folded, reference(&bytes));
        }
    }
}
