//! Detecting the machine a run is measured on, and the command that started it.

use std::fs;

use super::model::Machine;

impl Machine {
    /// Describes the current machine: logical cores from
    /// [`std::thread::available_parallelism`], CPU model from `/proc/cpuinfo`, OS from
    /// [`std::env::consts`], `/etc/os-release` and `/proc/sys/kernel/osrelease`.
    ///
    /// Never fails: what cannot be read is reported as `unknown` (or 1 core).
    ///
    /// # Examples
    ///
    /// ```
    /// let machine = sessionward_harness::Machine::detect();
    /// assert!(machine.cores >= 1);
    /// assert!(!machine.cpu_model.is_empty());
    /// ```
    #[must_use]
    pub fn detect() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cpu_model = fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| cpu_model_from_cpuinfo(&text))
            .unwrap_or_else(|| "unknown".to_owned());
        Self {
            cores,
            cpu_model,
            os: detect_os(),
        }
    }
}

/// The CPU model named in a `/proc/cpuinfo` text: `model name` on x86, `Model` or `Hardware`
/// on ARM boards, `cpu` on POWER.
pub(crate) fn cpu_model_from_cpuinfo(text: &str) -> Option<String> {
    for key in ["model name", "Model", "Hardware", "cpu model", "cpu"] {
        let found = text.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            (k.trim() == key && !v.trim().is_empty()).then(|| v.trim().to_owned())
        });
        if found.is_some() {
            return found;
        }
    }
    None
}

fn detect_os() -> String {
    let mut os = format!("{} {}", std::env::consts::OS, std::env::consts::ARCH);
    let distro = fs::read_to_string("/etc/os-release").ok().and_then(|text| {
        text.lines().find_map(|line| {
            let value = line.strip_prefix("PRETTY_NAME=")?;
            Some(value.trim().trim_matches('"').to_owned())
        })
    });
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty());
    match (distro, kernel) {
        (Some(d), Some(k)) => os.push_str(&format!(" ({d}, kernel {k})")),
        (Some(d), None) => os.push_str(&format!(" ({d})")),
        (None, Some(k)) => os.push_str(&format!(" (kernel {k})")),
        (None, None) => {}
    }
    os
}

/// The command line of the current process, quoted so that it can be pasted into a POSIX
/// shell to run again.
///
/// # Examples
///
/// ```
/// let command = sessionward_harness::command_line();
/// assert!(!command.is_empty());
/// ```
#[must_use]
pub fn command_line() -> String {
    quote_args(std::env::args_os().map(|a| a.to_string_lossy().into_owned()))
}

/// Joins arguments with spaces, single-quoting those a shell would split or expand.
pub(crate) fn quote_args(args: impl IntoIterator<Item = String>) -> String {
    args.into_iter()
        .map(|arg| {
            let plain = !arg.is_empty()
                && arg.chars().all(|c| {
                    c.is_ascii_alphanumeric()
                        || matches!(c, '-' | '_' | '.' | '/' | '=' | ':' | ',' | '+' | '@')
                });
            if plain {
                arg
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_model_prefers_model_name() {
        let text = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel\t\t: 85\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.80GHz\n";
        assert_eq!(
            cpu_model_from_cpuinfo(text).as_deref(),
            Some("Intel(R) Xeon(R) CPU @ 2.80GHz")
        );
        assert_eq!(cpu_model_from_cpuinfo("processor : 0\n"), None);
        assert_eq!(
            cpu_model_from_cpuinfo("Hardware\t: BCM2835\n").as_deref(),
            Some("BCM2835")
        );
    }

    #[test]
    fn quoting_keeps_plain_args_and_quotes_the_rest() {
        let args = ["swd-harness", "--seed=42", "it's here", ""].map(String::from);
        assert_eq!(quote_args(args), r"swd-harness --seed=42 'it'\''s here' ''");
    }
}
