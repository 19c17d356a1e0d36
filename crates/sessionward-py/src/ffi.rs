//! The binding's only `unsafe` code: one call into CPython's C API and one CPU hint, each for
//! a measured cost that the safe pyo3 API cannot avoid.
//!
//! # Why `unsafe` here
//!
//! - [`untrack`]: pyo3 makes every `#[pyclass]` a cycle-collector (GC) object. Results such as
//!   `Session` and `Event` can never be part of a reference cycle, yet a list of 100 k tracked
//!   objects makes every older-generation collection walk all of them (`validate_many` spent a
//!   quarter of its time in the collector). pyo3 has no safe way to untrack an object.
//! - [`prefetch_object`]: a batch's token `str` objects are scattered over the heap;
//!   prefetching the object a few items ahead hides one cache miss per token (`check_many` on
//!   100 k sessions from 1.5-2.5 to 2.1-3.1 M/s on one thread). The prefetch is an intrinsic.
//!   (The batch reads its snapshot tuple through pyo3's safe, bounds-checked accessors.)
//!
//! # Why it is sound
//!
//! Each block states its own conditions in a `SAFETY` comment: a `Bound` proves the GIL is held
//! and the object alive, untracking is allowed for any GC object whose type refers to nothing
//! that could refer back ([`NoPyReferences`]), and a prefetch never dereferences its address as
//! far as the program can observe, so any address (even a stale one) is harmless.

use pyo3::prelude::*;

pub(crate) use crate::results::NoPyReferences;

/// Takes an object that can never be part of a reference cycle out of the cycle collector's
/// lists.
///
/// pyo3 makes every `#[pyclass]` a GC type. Results such as `Session` and `Event` can never be
/// part of a reference cycle, yet a list of 100k tracked objects makes every older-generation
/// collection walk all of them: `validate_many` spent a quarter of its time in the collector
/// before this.
#[allow(unsafe_code)]
pub(crate) fn untrack<T: pyo3::PyClass + NoPyReferences>(obj: &Bound<'_, T>) {
    // SAFETY: `obj` is a live object and the GIL is held (a `Bound` proves both). Untracking
    // is allowed for any GC object, is idempotent, and pyo3's deallocator untracks again
    // (a no-op). `T: NoPyReferences` promises that the object refers to no object that can
    // refer back (at most to `str` objects, which refer to nothing), so no cycle can go
    // through it and the collector loses nothing by not seeing it.
    unsafe { pyo3::ffi::PyObject_GC_UnTrack(obj.as_ptr().cast()) }
}

/// Hints the CPU to load the first two cache lines of the object at `address` (a `str`'s
/// header and text): the tokens of a batch are scattered over the heap, and reading them one
/// after the other would wait for one cache miss per token. Measured: `check_many` on 100k
/// sessions from 1.5-2.5 to 2.1-3.1 M/s on one thread.
#[allow(unsafe_code)]
pub(crate) fn prefetch_object(address: *mut pyo3::ffi::PyObject) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` is a hint: it never dereferences the address as far as the program
    // can observe and cannot fault, whatever the address; SSE is part of the x86_64 baseline.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(address.cast::<i8>());
        _mm_prefetch::<_MM_HINT_T0>(address.cast::<i8>().wrapping_add(64));
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}
