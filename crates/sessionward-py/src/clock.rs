//! `ManualClock`: simulated time for tests and simulations.

use pyo3::prelude::*;
use pyo3::types::PyDateTime;
use sessionward_core::{Clock, ManualClock};

use crate::convert;

/// A clock that moves only when told to. Pass it to `Org(clock=...)`; clocks share their time
/// with every `Org` they were given to.
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
    fn advance(&self, by: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.advance(convert::duration_arg("by", by)?);
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
