//! # sessionward-py
//!
//! The `sessionward._native` extension module: thin pyo3 glue around `sessionward-core`. No
//! policy lives here; every rule, range and message comes from the core. This crate only
//! converts values (str / `ipaddress` / `datetime` / `timedelta` <-> core types), maps errors
//! and refusals to one Python exception hierarchy (`errors`), and decides where to release the
//! GIL (`org`).
//!
//! The Python package (`python/sessionward/`) re-exports these names; its `_native.pyi` stub
//! documents each one and is checked against this module with `mypy.stubtest`.
//!
//! Python names are the core's vocabulary: `Org`, `OrgSettings`, `Profile`, `ManualClock`,
//! `Session`, `Issued`, `Grant`, `AccessGrant`, `ChallengeRequired`, `StepUpRequired`, `Denied`,
//! `SessionPage`, `Event`, the enums, and the exceptions under `SessionwardError`.

mod batch;
mod clock;
mod convert;
mod enums;
mod errors;
mod ffi;
mod names;
mod org;
mod results;
mod settings;

use pyo3::prelude::*;
use pyo3::types::PyString;

/// Replaces every well-formed sessionward token in `text` with `swd_[REDACTED]`.
#[pyfunction]
fn redact_tokens(text: &Bound<'_, PyString>) -> String {
    match text.to_str() {
        Ok(text) => sessionward_core::redact_tokens(text),
        Err(_) => sessionward_core::redact_tokens(&text.to_string_lossy()),
    }
}

/// Whether `text` has the exact shape of a sessionward token, checksum included.
#[pyfunction]
fn is_well_formed(text: &Bound<'_, PyAny>) -> bool {
    text.cast::<PyString>()
        .ok()
        .and_then(|text| text.to_str().ok())
        .is_some_and(sessionward_core::is_well_formed)
}

/// The extension module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("TOKEN_PREFIX", sessionward_core::TOKEN_PREFIX)?;
    m.add("TOKEN_LEN", sessionward_core::TOKEN_LEN)?;
    m.add("MAX_PAGE_SIZE", sessionward_core::MAX_PAGE_SIZE)?;
    m.add(
        "MAX_REMEMBERED_DEVICES",
        sessionward_core::MAX_REMEMBERED_DEVICES,
    )?;
    m.add("CHECK_CODES", errors::check_codes(m.py())?)?;
    m.add_function(wrap_pyfunction!(redact_tokens, m)?)?;
    m.add_function(wrap_pyfunction!(is_well_formed, m)?)?;
    m.add_class::<enums::PySecurityLevel>()?;
    m.add_class::<enums::PyLoginMethod>()?;
    m.add_class::<enums::PySessionType>()?;
    m.add_class::<enums::PyCapAction>()?;
    m.add_class::<enums::PyEndReason>()?;
    m.add_class::<enums::PyExpiryKind>()?;
    m.add_class::<enums::PyDenyReason>()?;
    m.add_class::<settings::PyOrgSettings>()?;
    m.add_class::<settings::PyProfile>()?;
    m.add_class::<clock::PyManualClock>()?;
    m.add_class::<results::PySession>()?;
    m.add_class::<results::PyIssued>()?;
    m.add_class::<results::PyGrant>()?;
    m.add_class::<results::PyAccessGrant>()?;
    m.add_class::<results::PyChallengeRequired>()?;
    m.add_class::<results::PyDenied>()?;
    m.add_class::<results::PySessionPage>()?;
    m.add_class::<results::PyEvent>()?;
    m.add_class::<results::PySweepStats>()?;
    m.add_class::<results::PyTableStats>()?;
    m.add_class::<org::PyOrg>()?;
    errors::register(m)?;
    Ok(())
}
