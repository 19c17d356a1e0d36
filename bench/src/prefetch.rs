//! Software prefetch of the token stream, the bench crate's one use of `unsafe`.
//!
//! # Why
//!
//! A [`TokenStream`](crate::TokenStream) stands for tokens a gateway has just read from its
//! requests, which are in cache. The stream itself is 16 MiB, read in order but only one token
//! per validation, and the hardware prefetcher does not keep up with so slow a walk: each
//! token's line was a cache miss timed inside every contender's validation (a fifth of a call
//! at 1 M sessions, from `perf`). [`TokenStream::token_prefetching`](crate::TokenStream) asks
//! for the line a few tokens ahead, identically for every contender.
//!
//! # Why `unsafe` here, and why it is sound
//!
//! `_mm_prefetch` is an intrinsic, hence `unsafe` to call; it is a hint to the cache hierarchy
//! that never reads the address as far as the program can observe and cannot fault, whatever
//! the address (SSE, which provides it, is part of every x86_64 CPU).

/// Starts loading the cache line holding `address`; a no-op off x86_64.
#[inline(always)]
pub(crate) fn prefetch(address: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: see the module documentation: a hint, no memory access, cannot fault.
    #[allow(unsafe_code)]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}
