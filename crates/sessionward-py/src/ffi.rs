//! The binding's only `unsafe` code: three calls into CPython's C API and one CPU hint, each
//! for a measured cost that the safe pyo3 API cannot avoid.
//!
//! # Why `unsafe` here
//!
//! - [`untrack`]: pyo3 makes every `#[pyclass]` a cycle-collector (GC) object. Results such as
//!   `Session` and `Event` can never be part of a reference cycle, yet a list of 100 k tracked
//!   objects makes every older-generation collection walk all of them (`validate_many` spent a
//!   quarter of its time in the collector). pyo3 has no safe way to untrack an object.
//! - [`list_item_address`] and [`prefetch_object`]: a batch's token `str` objects are scattered
//!   over the heap; prefetching the object a few items ahead hides one cache miss per token
//!   (`check_many` on 100 k sessions from 1.5-2.5 to 2.1-3.1 M/s on one thread). Reading a list
//!   slot without taking a reference needs `PyList_GET_ITEM`; the prefetch is an intrinsic.
//!
//! # Why it is sound
//!
//! Each block states its own conditions in a `SAFETY` comment: a `Bound` proves the GIL is held
//! and the object alive, untracking is allowed for any GC object whose type refers to nothing
//! that could refer back ([`NoPyReferences`]), a list slot is read only within its length and
//! only when Python code cannot run concurrently, and a prefetch never dereferences its address
//! as far as the program can observe, so any address (even a stale one) is harmless.

use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::batch::gil_always_held;
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

/// The object at `list[index]` without taking a reference to it (`None` past the end or when
/// the list could change under us): only for `prefetch_object`.
#[allow(unsafe_code)]
pub(crate) fn list_item_address(
    list: &Bound<'_, PyList>,
    index: usize,
) -> Option<*mut pyo3::ffi::PyObject> {
    if index >= list.len() || !gil_always_held(list.py()) {
        return None;
    }
    // SAFETY: we are attached (a `Bound` proves it) and the interpreter runs Python code only
    // under the GIL (`gil_always_held`), so nothing can resize the list meanwhile, and `index`
    // is within its length: the slot read is initialised memory of the list's item array. The
    // pointer is returned as an address only; it is never dereferenced.
    Some(unsafe { pyo3::ffi::PyList_GET_ITEM(list.as_ptr(), index as pyo3::ffi::Py_ssize_t) })
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
