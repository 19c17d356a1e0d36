//! Software prefetch. Part of [`raw`](crate::raw), the one module of the core that uses
//! `unsafe`.
//!
//! # Why `unsafe` here
//!
//! A batch validation ([`Engine::validate_many`](crate::Engine::validate_many)) knows every
//! record it will read before it reads the first one. Asking the CPU to start loading all of
//! them up front turns a chain of dependent cache misses (~150 ns each on a 1 M-session table)
//! into overlapping ones. The instruction for that, `prefetcht0`, is exposed by Rust only as
//! `core::arch::x86_64::_mm_prefetch`, which is an `unsafe fn` (it carries
//! `#[target_feature(enable = "sse")]`).
//!
//! # Why it is sound
//!
//! A prefetch is a hint: it never dereferences the address in the Rust sense, never faults on
//! an invalid, unmapped or freed address, and has no effect on program semantics, only on
//! timing. SSE is part of the x86_64 baseline, so the target feature is always present. The
//! address passed here may therefore be stale (a table that has since grown) without any
//! consequence beyond a wasted prefetch. On other architectures the function does nothing.

/// Hints the CPU to start loading the cache line holding `address` into all cache levels.
#[inline(always)]
pub(crate) fn prefetch_read(address: usize) {
    #[cfg(target_arch = "x86_64")]
    prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

/// Hints the CPU to start loading the cache line holding `address` for writing (exclusive
/// ownership), so that a later atomic read-modify-write on it does not wait for another
/// core to give the line up. Same soundness argument as [`prefetch_read`].
#[inline(always)]
pub(crate) fn prefetch_write(address: usize) {
    #[cfg(target_arch = "x86_64")]
    prefetch::<{ std::arch::x86_64::_MM_HINT_ET0 }>(address);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch<const HINT: i32>(address: usize) {
    // SAFETY: `_mm_prefetch` only hints the cache hierarchy; it never reads the address as far
    // as the program can observe, cannot fault, and SSE is always available on x86_64 (see the
    // module documentation).
    #[allow(unsafe_code)]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<HINT>(std::ptr::without_provenance(address));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetching_any_address_is_harmless() {
        let data = vec![7_u8; 4096];
        prefetch_read(data.as_ptr() as usize);
        prefetch_read(0);
        prefetch_read(usize::MAX);
        let freed = {
            let gone = Box::new([1_u64; 16]);
            gone.as_ptr() as usize
        };
        prefetch_read(freed);
        prefetch_write(data.as_ptr() as usize);
        prefetch_write(0);
        prefetch_write(freed);
        assert_eq!(data[4095], 7);
    }
}
