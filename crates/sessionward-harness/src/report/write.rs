//! Writing the three report files, and reading `report.json` back.

use std::fs;
use std::path::{Path, PathBuf};

use super::error::ReportError;
use super::html::render_html;
use super::markdown::render_markdown;
use super::model::{Report, SCHEMA_VERSION};

/// The files [`write_report`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFiles {
    /// `report.json`: the whole report, machine-readable.
    pub json: PathBuf,
    /// `report.md`: the operator-readable report.
    pub markdown: PathBuf,
    /// `report.html`: one self-contained page with charts.
    pub html: PathBuf,
}

/// Writes `report.json`, `report.md` and `report.html` into `dir`, creating it if missing.
///
/// Each file is written to a temporary name first and then renamed, so a reader never sees
/// half a report.
///
/// # Errors
///
/// [`ReportError::NotFinite`] if a measured number is NaN or infinite (nothing is written);
/// [`ReportError::CreateDir`] or [`ReportError::Write`] naming the path the OS refused.
///
/// # Examples
///
/// ```
/// use sessionward_harness::{write_report, Report};
///
/// let dir = std::env::temp_dir().join(format!("swd-doc-{}", std::process::id()));
/// let files = write_report(&dir, &Report::default())?;
/// assert!(files.html.exists());
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), sessionward_harness::ReportError>(())
/// ```
pub fn write_report(dir: &Path, report: &Report) -> Result<ReportFiles, ReportError> {
    let files = ReportFiles {
        json: dir.join("report.json"),
        markdown: dir.join("report.md"),
        html: dir.join("report.html"),
    };
    check_finite(report, &files.json)?;
    let json = serde_json::to_string_pretty(report).map_err(|source| ReportError::Json {
        path: files.json.clone(),
        source,
    })?;
    fs::create_dir_all(dir).map_err(|source| ReportError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    write_atomically(&files.json, (json + "\n").as_bytes())?;
    write_atomically(&files.markdown, render_markdown(report).as_bytes())?;
    write_atomically(&files.html, render_html(report).as_bytes())?;
    Ok(files)
}

/// Reads a `report.json` written by [`write_report`].
///
/// # Errors
///
/// [`ReportError::Read`] if the file cannot be read, [`ReportError::UnsupportedSchema`] if it
/// carries another `schema_version`, [`ReportError::Json`] if it is not a report.
pub fn read_report(path: &Path) -> Result<Report, ReportError> {
    let text = fs::read_to_string(path).map_err(|source| ReportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let json_error = |source| ReportError::Json {
        path: path.to_path_buf(),
        source,
    };
    // Look at the version before the layout, so that a newer file is named as such.
    #[derive(serde::Deserialize)]
    struct Version {
        schema_version: u32,
    }
    let version: Version = serde_json::from_str(&text).map_err(json_error)?;
    if version.schema_version != SCHEMA_VERSION {
        return Err(ReportError::UnsupportedSchema {
            path: path.to_path_buf(),
            found: version.schema_version,
            supported: SCHEMA_VERSION,
        });
    }
    serde_json::from_str(&text).map_err(json_error)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let result = fs::write(&tmp, bytes).and_then(|()| fs::rename(&tmp, path));
    result.map_err(|source| {
        let _ = fs::remove_file(&tmp);
        ReportError::Write {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Refuses NaN and infinities, which JSON would turn into `null` and could not read back.
fn check_finite(report: &Report, json: &Path) -> Result<(), ReportError> {
    let mut fields: Vec<(String, f64)> = vec![
        ("wall.simulation_secs".into(), report.wall.simulation_secs),
        (
            "wall.validations_per_sec".into(),
            report.wall.validations_per_sec,
        ),
        ("wall.logins_per_sec".into(), report.wall.logins_per_sec),
    ];
    if let Some(memory) = &report.memory {
        fields.push((
            "memory.bytes_per_live_session".into(),
            memory.bytes_per_live_session,
        ));
    }
    for (i, p) in report.throughput.iter().enumerate() {
        fields.push((
            format!("throughput[{i}].validations_per_sec"),
            p.validations_per_sec,
        ));
        fields.push((format!("throughput[{i}].duration_secs"), p.duration_secs));
    }
    match fields.into_iter().find(|(_, v)| !v.is_finite()) {
        Some((field, value)) => Err(ReportError::NotFinite {
            path: json.to_path_buf(),
            field,
            value,
        }),
        None => Ok(()),
    }
}
