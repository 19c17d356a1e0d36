//! The core's enums as frozen Python enum classes (`SecurityLevel.HIGH_ASSURANCE`, ...).
//!
//! Each member has `.name` (upper-case Python name) and `.code` (the core's stable string, e.g.
//! `"password"`, `"password_reset"`); `Class.from_code(code)` and `Class.members()` go the other
//! way. Members compare equal only to themselves and are hashable, so they work as dict keys and
//! in `match` statements.

use pyo3::prelude::*;
use sessionward_core as core;

use crate::convert;
use crate::errors;

macro_rules! py_enum {
    (
        $(#[$doc:meta])*
        $py:ident as $name:literal for $core:ty {
            $( $(#[$vdoc:meta])* $variant:ident = $pyname:literal, $code:literal => $core_variant:path, )*
        }
        $( fallback $fallback:ident )?
    ) => {
        $(#[$doc])*
        #[pyclass(frozen, eq, hash, ord, module = "sessionward", name = $name, from_py_object)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub(crate) enum $py {
            $( $(#[$vdoc])* #[pyo3(name = $pyname)] $variant, )*
        }

        impl From<$core> for $py {
            fn from(value: $core) -> Self {
                match value {
                    $( $core_variant => Self::$variant, )*
                    $( #[allow(unreachable_patterns)] _ => Self::$fallback, )?
                }
            }
        }

        impl From<$py> for $core {
            fn from(value: $py) -> Self {
                match value {
                    $( $py::$variant => $core_variant, )*
                }
            }
        }

        #[pymethods]
        impl $py {
            /// The member's upper-case name.
            #[getter]
            fn name(&self) -> &'static str {
                match self {
                    $( Self::$variant => $pyname, )*
                }
            }

            /// The core's stable string for this member.
            #[getter]
            fn code(&self) -> &'static str {
                match self {
                    $( Self::$variant => $code, )*
                }
            }

            /// The member with this code (or upper-case name).
            #[staticmethod]
            fn from_code(py: Python<'_>, code: &str) -> PyResult<Self> {
                match code {
                    $( c if c == $code || c == $pyname => Ok(Self::$variant), )*
                    // `shorten` redacts tokens before cutting: cutting first could leave a
                    // token a checksum character short, no longer recognised, and echoed.
                    other => Err(errors::invalid_input(
                        py,
                        format!(
                            "{}: {:?} is not one of {}",
                            $name,
                            convert::shorten(other),
                            [$($code),*].join(", ")
                        ),
                    )),
                }
            }

            /// Every member, in declaration order.
            #[staticmethod]
            fn members() -> Vec<Self> {
                vec![$( Self::$variant, )*]
            }

            fn __str__(&self) -> &'static str {
                self.code()
            }
        }
    };
}

py_enum! {
    /// How much a session is trusted; operations can require a minimum level.
    PySecurityLevel as "SecurityLevel" for core::SecurityLevel {
        Low = "LOW", "LOW" => core::SecurityLevel::Low,
        Standard = "STANDARD", "STANDARD" => core::SecurityLevel::Standard,
        HighAssurance = "HIGH_ASSURANCE", "HIGH_ASSURANCE" => core::SecurityLevel::HighAssurance,
    }
}

py_enum! {
    /// How the user proved who they are at login or step-up.
    PyLoginMethod as "LoginMethod" for core::LoginMethod {
        Password = "PASSWORD", "password" => core::LoginMethod::Password,
        Sso = "SSO", "sso" => core::LoginMethod::Sso,
        Delegated = "DELEGATED", "delegated" => core::LoginMethod::Delegated,
        Mfa = "MFA", "mfa" => core::LoginMethod::Mfa,
        Passkey = "PASSKEY", "passkey" => core::LoginMethod::Passkey,
        ClientCredentials = "CLIENT_CREDENTIALS", "client_credentials" => core::LoginMethod::ClientCredentials,
    }
}

py_enum! {
    /// What kind of client holds the session.
    PySessionType as "SessionType" for core::SessionType {
        Ui = "UI", "UI" => core::SessionType::Ui,
        Api = "API", "API" => core::SessionType::Api,
        OAuth2 = "OAUTH2", "OAUTH2" => core::SessionType::OAuth2,
    }
}

py_enum! {
    /// What a login past the concurrent-session cap does.
    PyCapAction as "CapAction" for core::CapAction {
        EndOldest = "END_OLDEST", "end_oldest" => core::CapAction::EndOldest,
        RefuseNew = "REFUSE_NEW", "refuse_new" => core::CapAction::RefuseNew,
    }
}

py_enum! {
    /// Why a session was ended before it expired.
    PyEndReason as "EndReason" for core::EndReason {
        Logout = "LOGOUT", "logout" => core::EndReason::Logout,
        Admin = "ADMIN", "admin" => core::EndReason::Admin,
        PasswordReset = "PASSWORD_RESET", "password_reset" => core::EndReason::PasswordReset,
        ProfileWide = "PROFILE_WIDE", "profile_wide" => core::EndReason::ProfileWide,
        OrgWide = "ORG_WIDE", "org_wide" => core::EndReason::OrgWide,
        BrowserClosed = "BROWSER_CLOSED", "browser_closed" => core::EndReason::BrowserClosed,
        SessionCap = "SESSION_CAP", "session_cap" => core::EndReason::SessionCap,
        UserRemoved = "USER_REMOVED", "user_removed" => core::EndReason::UserRemoved,
        SourceRange = "SOURCE_RANGE", "source_range" => core::EndReason::SourceRange,
    }
    fallback Admin
}

py_enum! {
    /// Which timeout a session ran into.
    PyExpiryKind as "ExpiryKind" for core::ExpiryKind {
        Idle = "IDLE", "idle" => core::ExpiryKind::Idle,
        Absolute = "ABSOLUTE", "absolute" => core::ExpiryKind::Absolute,
    }
}

py_enum! {
    /// Why a login was denied.
    PyDenyReason as "DenyReason" for core::DenyReason {
        UnknownUser = "UNKNOWN_USER", "unknown_user" => core::DenyReason::UnknownUser,
        IpNotAllowed = "IP_NOT_ALLOWED", "ip_not_allowed" => core::DenyReason::IpNotAllowed,
        SessionCap = "SESSION_CAP", "session_cap" => core::DenyReason::SessionCap,
        ChallengeInvalid = "CHALLENGE_INVALID", "challenge_invalid" => core::DenyReason::ChallengeInvalid,
        InvalidClient = "INVALID_CLIENT", "invalid_client" => core::DenyReason::InvalidClient,
    }
    fallback UnknownUser
}
