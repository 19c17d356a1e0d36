//! `sessionward-harness`: simulate an org's day against the engine and write the report.
//!
//! Exit codes: 0 when every outcome agreed with the model, 1 when some disagreed, 2 for bad
//! arguments or a bad scenario file, 3 when the report could not be written.

use std::path::PathBuf;
use std::process::ExitCode;

use sessionward_harness::{render_summary, run, write_report, RunOptions, Scenario, SimOptions};

const USAGE: &str = "\
sessionward-harness: simulate an org's session traffic against sessionward and write a report

USAGE:
    sessionward-harness [OPTIONS]

OPTIONS:
    --scenario FILE         scenario file (.toml or .json); default: the embedded 10,000-user day
    --ci                    use the embedded small CI scenario instead
    --seed N                override the scenario's seed
    --out DIR               where report.json, report.md and report.html go [default: reports/latest]
    --closed-loop-secs S    seconds of closed-loop validation per thread count
    --threads LIST          closed-loop thread counts, e.g. 1,2,4 [default: 1..=cores]
    --no-closed-loop        skip the closed-loop throughput measurement
    --memory-sessions N     sessions to populate for the memory measurement (0 skips it)
    --no-progress           no progress bar on stderr
    --print-default-scenario
                            print the embedded default scenario (a commented example) and exit
    -h, --help              print this help

EXIT CODES:
    0  every outcome agreed with the model    1  disagreements (see the report)
    2  bad arguments or scenario file         3  the report could not be written
";

struct Args {
    scenario: Option<PathBuf>,
    ci: bool,
    seed: Option<u64>,
    out: PathBuf,
    closed_loop_secs: Option<f64>,
    threads: Option<Vec<usize>>,
    closed_loop: bool,
    memory_sessions: Option<u32>,
    progress: bool,
}

enum Parsed {
    Run(Args),
    Help,
    PrintDefault,
}

fn parse_args(raw: impl IntoIterator<Item = String>) -> Result<Parsed, String> {
    let mut args = Args {
        scenario: None,
        ci: false,
        seed: None,
        out: PathBuf::from("reports/latest"),
        closed_loop_secs: None,
        threads: None,
        closed_loop: true,
        memory_sessions: None,
        progress: true,
    };
    let mut raw = raw.into_iter();
    while let Some(arg) = raw.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| raw.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--print-default-scenario" => return Ok(Parsed::PrintDefault),
            "--scenario" => args.scenario = Some(PathBuf::from(value("--scenario")?)),
            "--ci" => args.ci = true,
            "--seed" => {
                let text = value("--seed")?;
                args.seed = Some(text.parse().map_err(|_| {
                    format!("--seed: {text:?} is not a whole number 0..=18446744073709551615")
                })?);
            }
            "--out" => args.out = PathBuf::from(value("--out")?),
            "--closed-loop-secs" => {
                let text = value("--closed-loop-secs")?;
                let secs: f64 = text
                    .parse()
                    .map_err(|_| format!("--closed-loop-secs: {text:?} is not a number"))?;
                if !(secs.is_finite() && secs > 0.0 && secs <= 600.0) {
                    return Err(format!(
                        "--closed-loop-secs: {text} is outside the allowed range (0, 600]"
                    ));
                }
                args.closed_loop_secs = Some(secs);
            }
            "--threads" => {
                let text = value("--threads")?;
                let threads = text
                    .split(',')
                    .map(|part| match part.trim().parse::<usize>() {
                        Ok(n) if (1..=1024).contains(&n) => Ok(n),
                        _ => Err(format!("--threads: {part:?} is not a thread count 1..=1024 (give a list like 1,2,4)")),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                args.threads = Some(threads);
            }
            "--no-closed-loop" => args.closed_loop = false,
            "--memory-sessions" => {
                let text = value("--memory-sessions")?;
                let n: u32 = text
                    .parse()
                    .map_err(|_| format!("--memory-sessions: {text:?} is not a whole number"))?;
                if n > 10_000_000 {
                    return Err(format!(
                        "--memory-sessions: {n} is outside the allowed range 0..=10000000"
                    ));
                }
                args.memory_sessions = Some(n);
            }
            "--no-progress" => args.progress = false,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.ci && args.scenario.is_some() {
        return Err("--ci and --scenario cannot be combined".to_owned());
    }
    Ok(Parsed::Run(args))
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Parsed::Run(args)) => args,
        Ok(Parsed::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::PrintDefault) => {
            print!("{}", Scenario::default_toml());
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("error: {message}\n\nRun with --help for the options.");
            return ExitCode::from(2);
        }
    };
    let scenario = match (&args.scenario, args.ci) {
        (Some(path), _) => match Scenario::from_path(path) {
            Ok(scenario) => scenario,
            Err(err) => {
                eprintln!("error: scenario refused: {err}");
                return ExitCode::from(2);
            }
        },
        (None, true) => Scenario::ci(),
        (None, false) => Scenario::default_day(),
    };
    let scenario = match args.seed {
        Some(seed) => scenario.with_seed(seed),
        None => scenario,
    };
    let mut bench = scenario.bench().clone();
    if let Some(secs) = args.closed_loop_secs {
        bench.closed_loop_secs = secs;
    }
    if let Some(threads) = args.threads {
        bench.threads = threads;
    }
    if let Some(n) = args.memory_sessions {
        bench.memory_sessions = n;
    }
    let scenario = scenario.with_bench(bench);
    let options = RunOptions {
        sim: SimOptions {
            progress: args.progress,
            ..SimOptions::default()
        },
        closed_loop: args.closed_loop,
        memory: true,
    };
    let report = match run(&scenario, &options) {
        Ok(report) => report,
        Err(err) => {
            eprintln!("error: the engine refused the scenario's setup: {err}");
            return ExitCode::from(2);
        }
    };
    let files = match write_report(&args.out, &report) {
        Ok(files) => files,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(3);
        }
    };
    print!("{}", render_summary(&report));
    println!(
        "  report       {}, {}, {}",
        files.json.display(),
        files.markdown.display(),
        files.html.display()
    );
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Parsed, String> {
        parse_args(args.iter().map(|a| (*a).to_owned()))
    }

    #[test]
    fn flags_parse_in_both_forms() {
        let Ok(Parsed::Run(args)) = parse(&[
            "--seed=7",
            "--threads",
            "1,2",
            "--no-closed-loop",
            "--out",
            "x",
        ]) else {
            panic!("should parse");
        };
        assert_eq!(args.seed, Some(7));
        assert_eq!(args.threads, Some(vec![1, 2]));
        assert!(!args.closed_loop);
        assert_eq!(args.out, PathBuf::from("x"));
    }

    #[test]
    fn bad_arguments_are_named() {
        for (args, needle) in [
            (&["--seed", "x"][..], "--seed"),
            (&["--threads", "0"][..], "--threads"),
            (&["--closed-loop-secs", "-1"][..], "--closed-loop-secs"),
            (&["--bogus"][..], "--bogus"),
            (&["--out"][..], "--out needs a value"),
        ] {
            let err = parse(args).err().expect("refused");
            assert!(err.contains(needle), "{err}");
        }
        assert!(matches!(parse(&["-h"]), Ok(Parsed::Help)));
    }
}
