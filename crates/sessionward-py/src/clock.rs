//! `ManualClock`: simulated time for tests and simulations.

use pyo3::prelude::*;
use pyo3::types::PyDateTime;
use sessionward_core::{Clock, ManualClock};

use crate::convert;
use crate::errors;

/// A clock that moves only when told to. Pass it to `Org(clock=...)`; clocks share their time
/// with every `Org` they were given to.
///
/// Its reading stays within `0..=convert::MAX_TIMESTAMP` (1970 to 2106-02-05): the engine keeps
/// times as 32-bit seconds, and a later reading would refuse new sessions as expired or cut
/// their deadlines. Starting, setting or advancing it past that raises `InvalidInput`.
#[pyclass(frozen, module = "sessionward", name = "ManualClock")]
pub(crate) struct PyManualClock {
    pub(crate) inner: ManualClock,
}

#[pymethods]
impl PyManualClock {
    #[new]
    #[pyo3(signature = (start = None))]
    fn new(start: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let seconds = match start {
            Some(start) => convert::timestamp_arg("start", start)?,
            None => sessionward_core::SystemClock.now(),
        };
        Ok(Self {
            inner: ManualClock::new(seconds),
        })
    }

    /// Moves the clock forward by a non-negative `timedelta` (sub-second parts are dropped).
    /// `InvalidInput` if that would take it past `MAX_TIMESTAMP`. (Checked against the reading
    /// before the move: threads advancing one clock at once should stay well within range.)
    fn advance(&self, py: Python<'_>, by: &Bound<'_, PyAny>) -> PyResult<()> {
        let by = convert::duration_arg("by", by)?;
        let now = self.inner.now();
        if now.saturating_add(by.as_secs()) > convert::MAX_TIMESTAMP {
            return Err(errors::invalid_input(
                py,
                format!(
                    "by: moving the clock from {now} by {} s would leave the allowed range \
                     0..={} (seconds since 1970, up to {})",
                    by.as_secs(),
                    convert::MAX_TIMESTAMP,
                    convert::iso(convert::MAX_TIMESTAMP)
                ),
            ));
        }
        self.inner.advance(by);
        Ok(())
    }

    /// Sets the clock to a timezone-aware `datetime` or whole seconds since the Unix epoch.
    fn set(&self, at: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.set(convert::timestamp_arg("at", at)?);
        Ok(())
    }

    /// The clock's reading as a timezone-aware UTC `datetime`.
    fn now<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDateTime>> {
        convert::datetime(py, self.inner.now())
    }

    /// The clock's reading in whole seconds since the Unix epoch.
    #[getter]
    fn seconds(&self) -> u64 {
        self.inner.now()
    }

    fn __repr__(&self) -> String {
        format!("ManualClock({})", self.inner.now())
    }
}
