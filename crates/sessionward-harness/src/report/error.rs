//! The report writer's error type.

use std::error::Error;
use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why a report could not be written or read. Every variant names the path involved.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReportError {
    /// The output directory could not be created. Fix: choose a writable location or create
    /// the directory with the right permissions.
    CreateDir {
        /// The directory that could not be created.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// A report file could not be written. Fix: check free space and permissions of the
    /// directory.
    Write {
        /// The file that could not be written.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// A report file could not be read. Fix: check that the path names an existing, readable
    /// `report.json`.
    Read {
        /// The file that could not be read.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// `report.json` could not be serialized or parsed. Fix when reading: the file is not a
    /// report written by this crate, or it was truncated.
    Json {
        /// The JSON file involved.
        path: PathBuf,
        /// What serde_json said.
        source: serde_json::Error,
    },
    /// `report.json` carries a `schema_version` this crate does not read. Fix: read it with
    /// the harness version that wrote it.
    UnsupportedSchema {
        /// The JSON file involved.
        path: PathBuf,
        /// The version found in the file.
        found: u32,
        /// The version this crate reads ([`SCHEMA_VERSION`](crate::SCHEMA_VERSION)).
        supported: u32,
    },
    /// A measured number is NaN or infinite (typically a rate divided by a zero duration),
    /// which JSON cannot carry. Fix: the simulation should report 0 when nothing was measured.
    NotFinite {
        /// The report file that was not written.
        path: PathBuf,
        /// The offending field, e.g. `wall.validations_per_sec`.
        field: String,
        /// The offending value.
        value: f64,
    },
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CreateDir { path, source } => {
                write!(
                    f,
                    "cannot create report directory {}: {source}",
                    path.display()
                )
            }
            Self::Write { path, source } => {
                write!(f, "cannot write report file {}: {source}", path.display())
            }
            Self::Read { path, source } => {
                write!(f, "cannot read report file {}: {source}", path.display())
            }
            Self::Json { path, source } => {
                write!(f, "invalid report json in {}: {source}", path.display())
            }
            Self::UnsupportedSchema {
                path,
                found,
                supported,
            } => write!(
                f,
                "unsupported schema_version {found} in {} (this harness reads version {supported})",
                path.display()
            ),
            Self::NotFinite { path, field, value } => write!(
                f,
                "report field {field} is {value}, not a finite number; {} not written",
                path.display()
            ),
        }
    }
}

impl Error for ReportError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::CreateDir { source, .. }
            | Self::Write { source, .. }
            | Self::Read { source, .. } => Some(source),
            Self::Json { source, .. } => Some(source),
            Self::UnsupportedSchema { .. } | Self::NotFinite { .. } => None,
        }
    }
}
