//! Recording validation latencies into an HDR histogram.

use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::model::LatencySummary;

/// Records latencies in nanoseconds with 3 significant figures, growing its range as needed.
///
/// A thin wrapper over [`hdrhistogram::Histogram`]: one recorder per thread, then
/// [`merge`](Self::merge) them and take the [`summary`](Self::summary).
///
/// # Examples
///
/// ```
/// use sessionward_harness::LatencyRecorder;
///
/// let mut recorder = LatencyRecorder::new();
/// for ns in 1..=1000 {
///     recorder.record(ns);
/// }
/// let summary = recorder.summary();
/// assert_eq!(summary.samples, 1000);
/// assert!((499..=501).contains(&summary.p50_ns));
/// ```
#[derive(Clone)]
pub struct LatencyRecorder {
    histogram: Histogram<u64>,
}

impl LatencyRecorder {
    /// An empty recorder.
    #[must_use]
    pub fn new() -> Self {
        // `new` enables auto-resize: any u64 value can be recorded.
        let histogram =
            Histogram::new(3).expect("3 significant figures is within hdrhistogram's 0..=5");
        Self { histogram }
    }

    /// Records one latency of `ns` nanoseconds.
    pub fn record(&mut self, ns: u64) {
        if self.histogram.record(ns).is_err() {
            // Only when the histogram could not grow (a value beyond what fits in memory
            // indexing): keep the sample, clamped to the largest trackable value.
            self.histogram.saturating_record(ns);
        }
    }

    /// Records one latency given as a [`Duration`] (saturating at `u64::MAX` nanoseconds).
    pub fn record_duration(&mut self, latency: Duration) {
        self.record(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Adds every sample of `other` to this recorder.
    pub fn merge(&mut self, other: &LatencyRecorder) {
        if self.histogram.add(&other.histogram).is_err() {
            // Only when this histogram could not grow: clamp the other's samples instead.
            for value in other.histogram.iter_recorded() {
                self.histogram
                    .saturating_record_n(value.value_iterated_to(), value.count_at_value());
            }
        }
    }

    /// Number of samples recorded.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.histogram.len()
    }

    /// True when nothing was recorded.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.histogram.is_empty()
    }

    /// The percentiles of what was recorded (all zero when nothing was).
    #[must_use]
    pub fn summary(&self) -> LatencySummary {
        if self.histogram.is_empty() {
            return LatencySummary::default();
        }
        let h = &self.histogram;
        LatencySummary {
            p50_ns: h.value_at_quantile(0.5),
            p99_ns: h.value_at_quantile(0.99),
            p999_ns: h.value_at_quantile(0.999),
            max_ns: h.max(),
            samples: h.len(),
        }
    }
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for LatencyRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencyRecorder")
            .field("summary", &self.summary())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_samples_and_empty_summary_is_zero() {
        let mut a = LatencyRecorder::new();
        assert_eq!(a.summary(), LatencySummary::default());
        let mut b = LatencyRecorder::new();
        a.record(100);
        b.record(1_000_000_000_000);
        b.record_duration(Duration::from_micros(3));
        a.merge(&b);
        let s = a.summary();
        assert_eq!(s.samples, 3);
        // 3 significant figures: within 0.1 %.
        assert!(s.max_ns.abs_diff(1_000_000_000_000) <= 1_000_000_000);
        assert!(s.p50_ns.abs_diff(3_000) <= 3);
    }
}
