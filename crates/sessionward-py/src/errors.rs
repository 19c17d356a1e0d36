//! The exception hierarchy and the one place where core errors and refusals become Python
//! exceptions.
//!
//! ```text
//! SessionwardError(Exception)                 everything the package raises
//! ├── SettingsError(SessionwardError, ValueError)   a setting outside its range, a bad CIDR or name
//! ├── InvalidInput(SessionwardError, ValueError)    a bad IP address, handle, user id or datetime
//! ├── UnknownUser(SessionwardError, LookupError)
//! ├── UnknownProfile(SessionwardError, LookupError)
//! ├── AlreadyExists(SessionwardError, ValueError)   duplicate user or profile
//! ├── ProfileInUse(SessionwardError, ValueError)
//! ├── EntropyError(SessionwardError, OSError)       the OS random source failed
//! ├── StoreError(SessionwardError, OSError)         the durable store failed (path=...)
//! ├── OAuthError(SessionwardError)                  a grant or an access token was refused (.code)
//! └── SessionError(SessionwardError)                a validation refusal: exactly one reason
//!     ├── MalformedToken, UnknownSession, IpMismatch, IpNotAllowed
//!     ├── SessionExpired   (.kind: ExpiryKind)
//!     ├── SessionEnded     (.reason: EndReason)
//!     └── StepUpRequired   (.required, .current: SecurityLevel); also a login outcome
//! ```
//!
//! The classes are made with `type(name, bases, namespace)` at module import, because several
//! need two bases (ours and a builtin such as `ValueError`), which `create_exception!` cannot
//! express. Every refusal carries `.code` (the core's stable snake-case code).

use pyo3::exceptions::{PyException, PyLookupError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyMappingProxy, PyTuple, PyType};
use sessionward_core::{EndReason, Error, ExpiryKind, Refusal, SecurityLevel};

use crate::enums::{PyEndReason, PyExpiryKind, PySecurityLevel};

/// The exception classes, made once per process.
pub(crate) struct Exceptions {
    sessionward_error: Py<PyType>,
    settings_error: Py<PyType>,
    invalid_input: Py<PyType>,
    unknown_user: Py<PyType>,
    unknown_profile: Py<PyType>,
    already_exists: Py<PyType>,
    profile_in_use: Py<PyType>,
    entropy_error: Py<PyType>,
    store_error: Py<PyType>,
    oauth_error: Py<PyType>,
    session_error: Py<PyType>,
    malformed_token: Py<PyType>,
    unknown_session: Py<PyType>,
    session_expired: Py<PyType>,
    session_ended: Py<PyType>,
    ip_mismatch: Py<PyType>,
    ip_not_allowed: Py<PyType>,
    step_up_required: Py<PyType>,
}

static EXCEPTIONS: PyOnceLock<Exceptions> = PyOnceLock::new();

fn make<'py>(
    py: Python<'py>,
    name: &str,
    bases: &[&Bound<'py, PyType>],
    doc: &str,
    match_args: &[&str],
) -> PyResult<Py<PyType>> {
    let namespace = PyDict::new(py);
    namespace.set_item("__doc__", doc)?;
    namespace.set_item("__module__", "sessionward")?;
    if !match_args.is_empty() {
        namespace.set_item("__match_args__", PyTuple::new(py, match_args)?)?;
    }
    let bases = PyTuple::new(py, bases)?;
    let class = py
        .get_type::<PyType>()
        .call1((name, bases, namespace))?
        .cast_into::<PyType>()?;
    Ok(class.unbind())
}

fn create(py: Python<'_>) -> PyResult<Exceptions> {
    let exception = py.get_type::<PyException>();
    let value_error = py.get_type::<PyValueError>();
    let lookup_error = py.get_type::<PyLookupError>();
    let os_error = py.get_type::<PyOSError>();
    let base = make(
        py,
        "SessionwardError",
        &[&exception],
        "Base class of every exception sessionward raises.",
        &[],
    )?;
    let base_ref = base.bind(py).clone();
    let sub = |name: &str, extra: Option<&Bound<'_, PyType>>, doc: &str| {
        let mut bases = vec![&base_ref];
        if let Some(extra) = extra {
            bases.push(extra);
        }
        make(py, name, &bases, doc, &[])
    };
    let settings_error = sub(
        "SettingsError",
        Some(&value_error),
        "A setting is outside its allowed range, or a CIDR range or name is malformed. \
         The message names the field, the value and the allowed range.",
    )?;
    let invalid_input = sub(
        "InvalidInput",
        Some(&value_error),
        "An argument is not valid: an IP address, a session handle, a user id, a naive datetime.",
    )?;
    let unknown_user = sub(
        "UnknownUser",
        Some(&lookup_error),
        "No user with this id: add_user first.",
    )?;
    let unknown_profile = sub(
        "UnknownProfile",
        Some(&lookup_error),
        "No profile with this name: add_profile first.",
    )?;
    let already_exists = sub(
        "AlreadyExists",
        Some(&value_error),
        "A user or profile with this name already exists.",
    )?;
    let profile_in_use = sub(
        "ProfileInUse",
        Some(&value_error),
        "The profile still has users: move or remove them first.",
    )?;
    let entropy_error = sub(
        "EntropyError",
        Some(&os_error),
        "The operating system's random source failed: no token could be made.",
    )?;
    let store_error = sub(
        "StoreError",
        Some(&os_error),
        "The durable session store (Org(path=...)) could not be opened, is corrupt, has a newer \
         format, or a write failed. The message names the file and the cause.",
    )?;
    let oauth_error = sub(
        "OAuthError",
        None,
        "An OAuth 2.0 request was refused; `.code` is the RFC error code. A client-credentials \
         grant (RFC 6749 section 5.2): invalid_client, invalid_scope, unauthorized_client or \
         server_error. An access token (RFC 6750 section 3.1, Org.authorize_access_token): \
         invalid_token (a valid session, but not an access token granted to a client) or \
         insufficient_scope (a requested scope was not granted); a session refusal raises \
         the SessionError subclass validate() raises instead.",
    )?;
    let session_error = sub(
        "SessionError",
        None,
        "A validation was refused. Exactly one subclass per reason; `.code` is the stable \
         snake-case code of the reason.",
    )?;
    let session_ref = session_error.bind(py).clone();
    let refusal = |name: &str, doc: &str, match_args: &[&str]| {
        make(py, name, &[&session_ref], doc, match_args)
    };
    Ok(Exceptions {
        malformed_token: refusal(
            "MalformedToken",
            "The text is not a sessionward token (length, prefix, alphabet or checksum).",
            &[],
        )?,
        unknown_session: refusal(
            "UnknownSession",
            "Well-formed, but no such session (never issued, or forgotten after retention).",
            &[],
        )?,
        session_expired: refusal(
            "SessionExpired",
            "The session timed out; `.kind` is ExpiryKind.IDLE or ExpiryKind.ABSOLUTE.",
            &["kind"],
        )?,
        session_ended: refusal(
            "SessionEnded",
            "The session was ended; `.reason` is the EndReason.",
            &["reason"],
        )?,
        ip_mismatch: refusal(
            "IpMismatch",
            "The session is locked to another IP address.",
            &[],
        )?,
        ip_not_allowed: refusal(
            "IpNotAllowed",
            "The source IP is outside the profile's login ranges (enforced on every request).",
            &[],
        )?,
        step_up_required: refusal(
            "StepUpRequired",
            "A higher security level is needed: `.required` and `.current` (alias `.offered`) \
             are SecurityLevel values. Raised by validate(); also returned (not raised) by \
             login() when the profile requires a stronger login method.",
            &["required", "current"],
        )?,
        sessionward_error: base,
        settings_error,
        invalid_input,
        unknown_user,
        unknown_profile,
        already_exists,
        profile_in_use,
        entropy_error,
        store_error,
        oauth_error,
        session_error,
    })
}

fn exceptions(py: Python<'_>) -> &Exceptions {
    EXCEPTIONS
        .get_or_try_init(py, || create(py))
        .expect("creating exception classes with type() cannot fail")
}

/// Adds every exception class to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let all = EXCEPTIONS.get_or_try_init(py, || create(py))?;
    for class in [
        &all.sessionward_error,
        &all.settings_error,
        &all.invalid_input,
        &all.unknown_user,
        &all.unknown_profile,
        &all.already_exists,
        &all.profile_in_use,
        &all.entropy_error,
        &all.store_error,
        &all.oauth_error,
        &all.session_error,
        &all.malformed_token,
        &all.unknown_session,
        &all.session_expired,
        &all.session_ended,
        &all.ip_mismatch,
        &all.ip_not_allowed,
        &all.step_up_required,
    ] {
        let class = class.bind(py);
        m.add(class.name()?, class)?;
    }
    Ok(())
}

fn new_err(class: &Py<PyType>, py: Python<'_>, message: String) -> PyErr {
    PyErr::from_type(class.bind(py).clone(), message)
}

/// `SettingsError` with this message (for checks the binding makes before the core sees a value).
pub(crate) fn settings_error(py: Python<'_>, message: String) -> PyErr {
    new_err(&exceptions(py).settings_error, py, message)
}

/// `InvalidInput` with this message.
pub(crate) fn invalid_input(py: Python<'_>, message: String) -> PyErr {
    new_err(&exceptions(py).invalid_input, py, message)
}

/// A core [`Error`] as the matching Python exception; the message is the core's own.
pub(crate) fn core_error(py: Python<'_>, error: Error) -> PyErr {
    let all = exceptions(py);
    let class = match &error {
        Error::OutOfRange { .. } | Error::TooManyProfiles => &all.settings_error,
        Error::InvalidCidr { field, .. } => match *field {
            "trusted_ranges" | "login_ranges" => &all.settings_error,
            _ => &all.invalid_input,
        },
        Error::InvalidName { field, .. } => match *field {
            "user" => &all.invalid_input,
            _ => &all.settings_error,
        },
        Error::InvalidIp { .. } | Error::InvalidHandle { .. } => &all.invalid_input,
        Error::UnknownUser { .. } => &all.unknown_user,
        Error::UnknownProfile { .. } => &all.unknown_profile,
        Error::DuplicateUser { .. } | Error::DuplicateProfile { .. } => &all.already_exists,
        Error::ProfileInUse { .. } => &all.profile_in_use,
        Error::Entropy => &all.entropy_error,
        Error::StoreOpen { .. }
        | Error::StoreCorrupt { .. }
        | Error::StoreVersion { .. }
        | Error::StoreWrite { .. } => &all.store_error,
        _ => &all.sessionward_error,
    };
    new_err(class, py, error.to_string())
}

/// `OAuthError` with this message and `.code`.
fn oauth_error(py: Python<'_>, message: String, code: &'static str) -> PyErr {
    let class = exceptions(py).oauth_error.bind(py);
    match class.call1((message,)) {
        Ok(instance) => match instance.setattr(pyo3::intern!(py, "code"), code) {
            Ok(()) => PyErr::from_value(instance),
            Err(err) => err,
        },
        Err(err) => err,
    }
}

/// A refused grant as `OAuthError` with `.code` set; the message never holds the secret.
pub(crate) fn grant_error(py: Python<'_>, error: sessionward_core::GrantError) -> PyErr {
    oauth_error(py, error.to_string(), error.code())
}

/// A refused access token: a session refusal as the `SessionError` subclass `validate` raises
/// for it (so one `except` serves both calls), anything else as `OAuthError` with the RFC 6750
/// `.code`. The core's messages hold no token, and a missing scope is shortened and redacted.
pub(crate) fn authorize_error(py: Python<'_>, error: sessionward_core::AuthorizeError) -> PyErr {
    match error {
        sessionward_core::AuthorizeError::Session(refusal) => refusal_error(py, refusal),
        other => oauth_error(py, other.to_string(), other.code()),
    }
}

/// A refusal as an exception *instance* with its attributes set (for `validate_many`, which
/// returns them, and for raising).
pub(crate) fn refusal_instance(py: Python<'_>, refusal: Refusal) -> PyResult<Bound<'_, PyAny>> {
    let all = exceptions(py);
    let class = match refusal {
        Refusal::Malformed => &all.malformed_token,
        Refusal::Unknown => &all.unknown_session,
        Refusal::Expired(_) => &all.session_expired,
        Refusal::Ended(_) => &all.session_ended,
        Refusal::IpMismatch => &all.ip_mismatch,
        Refusal::IpNotAllowed => &all.ip_not_allowed,
        Refusal::StepUpRequired { .. } => &all.step_up_required,
        _ => &all.session_error,
    };
    let instance = class.bind(py).call1((refusal.to_string(),))?;
    instance.setattr(pyo3::intern!(py, "code"), refusal.code())?;
    match refusal {
        Refusal::Expired(kind) => {
            instance.setattr(pyo3::intern!(py, "kind"), PyExpiryKind::from(kind))?;
        }
        Refusal::Ended(reason) => {
            instance.setattr(pyo3::intern!(py, "reason"), PyEndReason::from(reason))?;
        }
        Refusal::StepUpRequired { required, current } => {
            set_levels(&instance, required, current)?;
        }
        _ => {}
    }
    Ok(instance)
}

fn set_levels(
    instance: &Bound<'_, PyAny>,
    required: SecurityLevel,
    current: SecurityLevel,
) -> PyResult<()> {
    let py = instance.py();
    instance.setattr(
        pyo3::intern!(py, "required"),
        PySecurityLevel::from(required),
    )?;
    instance.setattr(pyo3::intern!(py, "current"), PySecurityLevel::from(current))?;
    instance.setattr(pyo3::intern!(py, "offered"), PySecurityLevel::from(current))?;
    Ok(())
}

/// A refusal as a raisable error.
pub(crate) fn refusal_error(py: Python<'_>, refusal: Refusal) -> PyErr {
    match refusal_instance(py, refusal) {
        Ok(instance) => PyErr::from_value(instance),
        Err(err) => err,
    }
}

/// The login outcome "the profile requires a stronger method": a `StepUpRequired` instance,
/// returned rather than raised, so that one name serves `match` on outcomes and `except`.
pub(crate) fn step_up_outcome(
    py: Python<'_>,
    required: SecurityLevel,
    offered: SecurityLevel,
) -> PyResult<Bound<'_, PyAny>> {
    let message = format!(
        "login needs {required}, the method grants {offered}: log in with a stronger method"
    );
    let instance = exceptions(py).step_up_required.bind(py).call1((message,))?;
    instance.setattr(pyo3::intern!(py, "code"), "step_up_required")?;
    set_levels(&instance, required, offered)?;
    Ok(instance)
}

/// `Org.check_many`'s code of a valid token.
pub(crate) const CHECK_VALID: u8 = 0;
/// `Org.check_many`'s code of the first end reason: `16 + i` is `EndReason.members()[i]`.
const CHECK_ENDED: u8 = 16;
/// `Org.check_many`'s code of a refusal this build does not know (a newer core's reason).
const CHECK_OTHER: u8 = 255;

/// The one-byte code `Org.check_many` reports for a validation result; the table is
/// `CHECK_CODES` (`check_codes`), documented in `_native.pyi`. Codes never change meaning.
/// Only the refusal matters: what an acceptance carries (a `SessionBrief` from `check_many`)
/// is not looked at.
pub(crate) fn check_code<T>(result: &Result<T, Refusal>) -> u8 {
    let Err(refusal) = result else {
        return CHECK_VALID;
    };
    match refusal {
        Refusal::Malformed => 1,
        Refusal::Unknown => 2,
        Refusal::Expired(ExpiryKind::Idle) => 3,
        Refusal::Expired(ExpiryKind::Absolute) => 4,
        Refusal::IpMismatch => 5,
        Refusal::IpNotAllowed => 6,
        Refusal::StepUpRequired { .. } => 7,
        Refusal::Ended(reason) => EndReason::ALL
            .iter()
            .position(|known| known == reason)
            .and_then(|index| u8::try_from(index).ok())
            .filter(|&index| index < 16)
            .map_or(CHECK_OTHER, |index| CHECK_ENDED + index),
        _ => CHECK_OTHER,
    }
}

/// `CHECK_CODES`: every code `check_code` can report, mapped to the `.code` of the refusal it
/// stands for (`"valid"` for 0, `"refused"` for a reason this build does not know), as a
/// read-only mapping.
pub(crate) fn check_codes(py: Python<'_>) -> PyResult<Bound<'_, PyMappingProxy>> {
    let table = PyDict::new(py);
    table.set_item(CHECK_VALID, "valid")?;
    let level = SecurityLevel::HighAssurance;
    let refusals = [
        Refusal::Malformed,
        Refusal::Unknown,
        Refusal::Expired(ExpiryKind::Idle),
        Refusal::Expired(ExpiryKind::Absolute),
        Refusal::IpMismatch,
        Refusal::IpNotAllowed,
        Refusal::StepUpRequired {
            required: level,
            current: level,
        },
    ];
    for refusal in refusals
        .into_iter()
        .chain(EndReason::ALL.into_iter().map(Refusal::Ended))
    {
        table.set_item(check_code::<()>(&Err(refusal)), refusal.code())?;
    }
    table.set_item(CHECK_OTHER, "refused")?;
    Ok(PyMappingProxy::new(py, table.as_mapping()))
}
