//! `OrgSettings` and `Profile`: validated by the core on construction, read-only after.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDelta, PyDict, PyFrozenSet, PyString, PyTuple};
use sessionward_core::{CapAction, LoginMethod, OrgSettings, OrgSettingsBuilder, Profile};

use crate::convert;
use crate::enums::{PyCapAction, PyLoginMethod, PySecurityLevel};
use crate::errors;

/// Org-wide session settings (immutable; `replace(...)` makes a changed copy).
#[pyclass(frozen, eq, module = "sessionward", name = "OrgSettings")]
#[derive(PartialEq)]
pub(crate) struct PyOrgSettings {
    pub(crate) inner: OrgSettings,
}

/// The settings a constructor or `replace` call was given; `None` keeps the starting value.
struct SettingsArgs<'a, 'py> {
    inactivity_timeout: Option<&'a Bound<'py, PyAny>>,
    max_session_length: Option<&'a Bound<'py, PyAny>>,
    force_relogin_on_browser_close: Option<bool>,
    lock_sessions_to_ip: Option<bool>,
    enforce_login_ranges_every_request: Option<bool>,
    trusted_ranges: Option<&'a Bound<'py, PyAny>>,
    high_assurance_operations: Option<&'a Bound<'py, PyAny>>,
    method_levels: Option<&'a Bound<'py, PyAny>>,
}

impl SettingsArgs<'_, '_> {
    fn apply(self, py: Python<'_>, mut builder: OrgSettingsBuilder) -> PyResult<OrgSettings> {
        if let Some(value) = self.inactivity_timeout {
            builder =
                builder.inactivity_timeout(convert::duration_arg("inactivity_timeout", value)?);
        }
        if let Some(value) = self.max_session_length {
            builder =
                builder.max_session_length(convert::duration_arg("max_session_length", value)?);
        }
        if let Some(on) = self.force_relogin_on_browser_close {
            builder = builder.force_relogin_on_browser_close(on);
        }
        if let Some(on) = self.lock_sessions_to_ip {
            builder = builder.lock_sessions_to_ip(on);
        }
        if let Some(on) = self.enforce_login_ranges_every_request {
            builder = builder.enforce_login_ranges_every_request(on);
        }
        if let Some(ranges) = self.trusted_ranges {
            builder = builder.trusted_ranges(convert::cidr_list("trusted_ranges", ranges)?);
        }
        if let Some(operations) = self.high_assurance_operations {
            if operations.is_instance_of::<PyString>() {
                return Err(PyTypeError::new_err(
                    "high_assurance_operations: expected a collection of names, got a single \
                     str (wrap it in a list)",
                ));
            }
            builder = builder.clear_high_assurance_operations();
            for operation in operations.try_iter()? {
                let operation = operation?;
                builder = builder.high_assurance_operation(convert::str_arg(
                    "high_assurance_operations",
                    &operation,
                )?);
            }
        }
        if let Some(levels) = self.method_levels {
            let levels = levels.cast::<PyDict>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "method_levels: expected a dict {{LoginMethod: SecurityLevel}}, got {}",
                    convert::type_name(levels)
                ))
            })?;
            for (method, level) in levels.iter() {
                let method: PyLoginMethod = method.extract().map_err(|_| {
                    PyTypeError::new_err(format!(
                        "method_levels: keys must be LoginMethod, got {}",
                        convert::type_name(&method)
                    ))
                })?;
                let level: PySecurityLevel = level.extract().map_err(|_| {
                    PyTypeError::new_err(format!(
                        "method_levels: values must be SecurityLevel, got {}",
                        convert::type_name(&level)
                    ))
                })?;
                builder = builder.method_level(method.into(), level.into());
            }
        }
        builder.build().map_err(|err| errors::core_error(py, err))
    }
}

#[pymethods]
impl PyOrgSettings {
    #[new]
    #[pyo3(signature = (
        *,
        inactivity_timeout = None,
        max_session_length = None,
        force_relogin_on_browser_close = false,
        lock_sessions_to_ip = false,
        enforce_login_ranges_every_request = false,
        trusted_ranges = None,
        high_assurance_operations = None,
        method_levels = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        inactivity_timeout: Option<&Bound<'_, PyAny>>,
        max_session_length: Option<&Bound<'_, PyAny>>,
        force_relogin_on_browser_close: bool,
        lock_sessions_to_ip: bool,
        enforce_login_ranges_every_request: bool,
        trusted_ranges: Option<&Bound<'_, PyAny>>,
        high_assurance_operations: Option<&Bound<'_, PyAny>>,
        method_levels: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let args = SettingsArgs {
            inactivity_timeout,
            max_session_length,
            force_relogin_on_browser_close: Some(force_relogin_on_browser_close),
            lock_sessions_to_ip: Some(lock_sessions_to_ip),
            enforce_login_ranges_every_request: Some(enforce_login_ranges_every_request),
            trusted_ranges,
            high_assurance_operations,
            method_levels,
        };
        Ok(Self {
            inner: args.apply(py, OrgSettings::builder())?,
        })
    }

    /// A copy with the given settings changed (validated like the constructor).
    #[pyo3(signature = (
        *,
        inactivity_timeout = None,
        max_session_length = None,
        force_relogin_on_browser_close = None,
        lock_sessions_to_ip = None,
        enforce_login_ranges_every_request = None,
        trusted_ranges = None,
        high_assurance_operations = None,
        method_levels = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn replace(
        &self,
        py: Python<'_>,
        inactivity_timeout: Option<&Bound<'_, PyAny>>,
        max_session_length: Option<&Bound<'_, PyAny>>,
        force_relogin_on_browser_close: Option<bool>,
        lock_sessions_to_ip: Option<bool>,
        enforce_login_ranges_every_request: Option<bool>,
        trusted_ranges: Option<&Bound<'_, PyAny>>,
        high_assurance_operations: Option<&Bound<'_, PyAny>>,
        method_levels: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let args = SettingsArgs {
            inactivity_timeout,
            max_session_length,
            force_relogin_on_browser_close,
            lock_sessions_to_ip,
            enforce_login_ranges_every_request,
            trusted_ranges,
            high_assurance_operations,
            method_levels,
        };
        Ok(Self {
            inner: args.apply(py, self.inner.to_builder())?,
        })
    }

    #[getter]
    fn inactivity_timeout<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDelta>> {
        convert::timedelta(py, self.inner.inactivity_timeout())
    }

    #[getter]
    fn max_session_length<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDelta>> {
        convert::timedelta(py, self.inner.max_session_length())
    }

    #[getter]
    fn force_relogin_on_browser_close(&self) -> bool {
        self.inner.force_relogin_on_browser_close()
    }

    #[getter]
    fn lock_sessions_to_ip(&self) -> bool {
        self.inner.lock_sessions_to_ip()
    }

    #[getter]
    fn enforce_login_ranges_every_request(&self) -> bool {
        self.inner.enforce_login_ranges_every_request()
    }

    #[getter]
    fn trusted_ranges<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        convert::network_tuple(py, self.inner.trusted_ranges())
    }

    #[getter]
    fn high_assurance_operations<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyFrozenSet>> {
        PyFrozenSet::new(py, self.inner.high_assurance_operations())
    }

    #[getter]
    fn method_levels<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let levels = PyDict::new(py);
        for method in LoginMethod::ALL {
            levels.set_item(
                PyLoginMethod::from(method),
                PySecurityLevel::from(self.inner.level_for(method)),
            )?;
        }
        Ok(levels)
    }

    /// The level a login or step-up with `method` grants.
    fn level_for(&self, method: PyLoginMethod) -> PySecurityLevel {
        self.inner.level_for(method.into()).into()
    }

    fn __repr__(&self) -> String {
        let s = &self.inner;
        format!(
            "OrgSettings(inactivity_timeout={}s, max_session_length={}s, \
             force_relogin_on_browser_close={}, lock_sessions_to_ip={}, \
             enforce_login_ranges_every_request={}, trusted_ranges={:?}, \
             high_assurance_operations={:?})",
            s.inactivity_timeout().as_secs(),
            s.max_session_length().as_secs(),
            py_bool(s.force_relogin_on_browser_close()),
            py_bool(s.lock_sessions_to_ip()),
            py_bool(s.enforce_login_ranges_every_request()),
            s.trusted_ranges()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            // Operation names are caller text: quoted like every echo (tokens redacted).
            py_set(s.high_assurance_operations().iter().map(String::as_str)),
        )
    }
}

/// A Python-style set literal of `names` (`{'a', 'b'}`), each shortened with tokens redacted.
fn py_set<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<String> = names.map(convert::quoted).collect();
    format!("{{{}}}", names.join(", "))
}

fn py_bool(value: bool) -> &'static str {
    if value {
        "True"
    } else {
        "False"
    }
}

/// A profile: users sharing login rules and stricter overrides (immutable).
#[pyclass(frozen, eq, module = "sessionward", name = "Profile")]
#[derive(PartialEq)]
pub(crate) struct PyProfile {
    pub(crate) inner: Profile,
}

#[pymethods]
impl PyProfile {
    #[new]
    #[pyo3(signature = (
        name,
        *,
        session_timeout = None,
        max_session_length = None,
        login_ranges = None,
        required_level = PySecurityLevel::Standard,
        max_sessions_per_user = None,
        on_session_cap = PyCapAction::EndOldest,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        session_timeout: Option<&Bound<'_, PyAny>>,
        max_session_length: Option<&Bound<'_, PyAny>>,
        login_ranges: Option<&Bound<'_, PyAny>>,
        required_level: PySecurityLevel,
        max_sessions_per_user: Option<&Bound<'_, PyAny>>,
        on_session_cap: PyCapAction,
    ) -> PyResult<Self> {
        let mut builder =
            Profile::builder(convert::str_arg("name", name)?).required_level(required_level.into());
        if let Some(value) = session_timeout {
            builder = builder.session_timeout(convert::duration_arg("session_timeout", value)?);
        }
        if let Some(value) = max_session_length {
            builder =
                builder.max_session_length(convert::duration_arg("max_session_length", value)?);
        }
        if let Some(ranges) = login_ranges {
            builder = builder.login_ranges(convert::cidr_list("login_ranges", ranges)?);
        }
        if let Some(cap) = max_sessions_per_user {
            if !cap.is_instance_of::<pyo3::types::PyInt>()
                || cap.is_instance_of::<pyo3::types::PyBool>()
            {
                return Err(PyTypeError::new_err(format!(
                    "max_sessions_per_user: expected int or None, got {}",
                    convert::type_name(cap)
                )));
            }
            // Out-of-u32 values go to the core as 0, which it refuses with the allowed range.
            let max = cap.extract::<u32>().unwrap_or(0);
            if max == 0 {
                let shown = convert::shorten(&cap.str()?.to_cow()?);
                return Err(errors::settings_error(
                    py,
                    format!("max_sessions_per_user: {shown} is outside the allowed range 1..=1000"),
                ));
            }
            builder = builder.session_cap(max, on_session_cap.into());
        }
        Ok(Self {
            inner: builder.build().map_err(|err| errors::core_error(py, err))?,
        })
    }

    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    #[getter]
    fn session_timeout<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDelta>>> {
        self.inner
            .session_timeout()
            .map(|value| convert::timedelta(py, value))
            .transpose()
    }

    #[getter]
    fn max_session_length<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDelta>>> {
        self.inner
            .max_session_length()
            .map(|value| convert::timedelta(py, value))
            .transpose()
    }

    #[getter]
    fn login_ranges<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        convert::network_tuple(py, self.inner.login_ranges())
    }

    #[getter]
    fn required_level(&self) -> PySecurityLevel {
        self.inner.required_level().into()
    }

    #[getter]
    fn max_sessions_per_user(&self) -> Option<u32> {
        self.inner.session_cap().map(|cap| cap.max_sessions)
    }

    #[getter]
    fn on_session_cap(&self) -> PyCapAction {
        self.inner
            .session_cap()
            .map_or(CapAction::EndOldest, |cap| cap.action)
            .into()
    }

    /// Whether `ip` may log in (or, when enforced, make requests) under this profile.
    fn allows(&self, ip: &Bound<'_, PyAny>) -> PyResult<bool> {
        Ok(self.inner.allows(convert::ip_arg(ip)?))
    }

    fn __repr__(&self) -> String {
        let p = &self.inner;
        format!(
            "Profile({}, session_timeout={}, max_session_length={}, login_ranges={:?}, \
             required_level=SecurityLevel.{}, max_sessions_per_user={})",
            convert::quoted(p.name()),
            p.session_timeout()
                .map_or("None".to_owned(), |d| format!("{}s", d.as_secs())),
            p.max_session_length()
                .map_or("None".to_owned(), |d| format!("{}s", d.as_secs())),
            p.login_ranges()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            p.required_level(),
            p.session_cap()
                .map_or("None".to_owned(), |cap| cap.max_sessions.to_string()),
        )
    }
}
