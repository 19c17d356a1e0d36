//! A dependency-free progress bar for the terminal.

use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

/// Minimum time between two redraws (at most ten per second).
const REDRAW_EVERY: Duration = Duration::from_millis(100);
/// Width of the bar itself, in characters.
const BAR_WIDTH: usize = 30;

/// A one-line progress bar on stderr.
///
/// On a terminal it redraws in place at most ten times per second; when stderr is not a
/// terminal (CI logs, redirects) it stays silent until [`finish`](Self::finish), which prints one
/// line. Dropping an unfinished bar finishes it.
///
/// # Examples
///
/// ```
/// use sessionward_harness::ProgressBar;
///
/// let mut bar = ProgressBar::new(1440, "simulating");
/// for minute in 1..=1440 {
///     bar.set(minute);
/// }
/// bar.finish();
/// ```
#[derive(Debug)]
pub struct ProgressBar {
    total: u64,
    done: u64,
    label: String,
    started: Instant,
    last_draw: Option<Instant>,
    terminal: bool,
    finished: bool,
}

impl ProgressBar {
    /// A bar for `total` units of work, shown after `label`.
    #[must_use]
    pub fn new(total: u64, label: impl Into<String>) -> Self {
        Self {
            total,
            done: 0,
            label: label.into(),
            started: Instant::now(),
            last_draw: None,
            terminal: io::stderr().is_terminal(),
            finished: false,
        }
    }

    /// Records that `done` units are complete (clamped to the total), redrawing if the last
    /// redraw is at least 100 ms old.
    pub fn set(&mut self, done: u64) {
        self.done = done.min(self.total);
        if !self.terminal || self.finished {
            return;
        }
        let now = Instant::now();
        if self
            .last_draw
            .is_none_or(|last| now.duration_since(last) >= REDRAW_EVERY)
        {
            self.last_draw = Some(now);
            self.draw(false);
        }
    }

    /// Draws the final state and ends the line; on a non-terminal prints one summary line.
    /// Later calls do nothing.
    pub fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        if self.terminal {
            self.draw(true);
        } else {
            let _ = writeln!(
                io::stderr().lock(),
                "{}: {}/{} in {:.1}s",
                self.label,
                self.done,
                self.total,
                self.started.elapsed().as_secs_f64()
            );
        }
    }

    fn draw(&self, last: bool) {
        let line = render_line(
            &self.label,
            self.done,
            self.total,
            self.started.elapsed().as_secs_f64(),
        );
        let end = if last { "\n" } else { "" };
        let mut err = io::stderr().lock();
        // `\x1b[K` clears what a longer previous line left behind.
        let _ = write!(err, "\r{line}\x1b[K{end}");
        let _ = err.flush();
    }
}

impl Drop for ProgressBar {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The bar's text: `label [#######.......]  45% 450/1000 1.2s`.
pub(crate) fn render_line(label: &str, done: u64, total: u64, secs: f64) -> String {
    let fraction = if total == 0 {
        1.0
    } else {
        done.min(total) as f64 / total as f64
    };
    let filled = ((fraction * BAR_WIDTH as f64).floor() as usize).min(BAR_WIDTH);
    format!(
        "{label} [{}{}] {:>3.0}% {done}/{total} {secs:.1}s",
        "#".repeat(filled),
        ".".repeat(BAR_WIDTH - filled),
        fraction * 100.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_shows_fraction() {
        let line = render_line("sim", 450, 1000, 1.24);
        assert_eq!(
            line,
            format!(
                "sim [{}{}]  45% 450/1000 1.2s",
                "#".repeat(13),
                ".".repeat(17)
            )
        );
        assert!(render_line("x", 0, 0, 0.0).contains("100% 0/0"));
        assert!(render_line("x", 5, 3, 0.0).contains(&"#".repeat(BAR_WIDTH)));
    }

    #[test]
    fn set_clamps_and_finish_is_idempotent() {
        let mut bar = ProgressBar::new(10, "t");
        bar.terminal = false;
        bar.set(50);
        assert_eq!(bar.done, 10);
        bar.finish();
        bar.finish();
        assert!(bar.finished);
    }
}
