//! Summaries of measurements: latency percentiles (nearest rank), medians of repeated runs,
//! and the number formats of the reports.

use std::time::Duration;

/// Latency samples in microseconds, sorted once when a run is over.
#[derive(Debug, Default, Clone)]
pub struct Latencies {
    sorted: Vec<u32>,
}

impl Latencies {
    pub fn from_unsorted(mut samples: Vec<u32>) -> Self {
        samples.sort_unstable();
        Latencies { sorted: samples }
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// Nearest-rank percentile (`p` in 0..=100): the smallest sample that at least `p`% of
    /// the samples do not exceed. No interpolation, so every value printed was observed.
    pub fn percentile(&self, p: f64) -> Option<u32> {
        let n = self.sorted.len();
        if n == 0 {
            return None;
        }
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        self.sorted.get(rank.clamp(1, n) - 1).copied()
    }

    pub fn max(&self) -> Option<u32> {
        self.sorted.last().copied()
    }
}

/// A duration as whole microseconds, saturating (a sample of over an hour is a bug anyway).
pub fn micros(duration: Duration) -> u32 {
    u32::try_from(duration.as_micros()).unwrap_or(u32::MAX)
}

/// The median; for an even count the lower middle, like the anchor script (`run.sh`), so
/// the value is always one of the runs.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len().checked_sub(1)? / 2;
    sorted.get(middle).copied()
}

/// Microseconds as milliseconds with two decimals: `1234` → `1.23 ms`.
pub fn ms(micros: Option<u32>) -> String {
    match micros {
        Some(us) => format!("{:.2} ms", f64::from(us) / 1000.0),
        None => "n/a".to_owned(),
    }
}

/// A rate rounded to a whole number with thousands separators: `9708.4` → `9,708`.
pub fn thousands(value: f64) -> String {
    let rounded = value.round();
    let digits = format!("{:.0}", rounded.abs());
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if rounded < 0.0 {
        out.push('-');
    }
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let latencies = Latencies::from_unsorted((1..=100).rev().collect());
        assert_eq!(latencies.percentile(50.0), Some(50));
        assert_eq!(latencies.percentile(99.0), Some(99));
        assert_eq!(latencies.percentile(100.0), Some(100));
        assert_eq!(latencies.percentile(0.0), Some(1));
        assert_eq!(Latencies::default().percentile(50.0), None);
        let one = Latencies::from_unsorted(vec![7]);
        assert_eq!(one.percentile(99.0), Some(7));
    }

    #[test]
    fn median_is_one_of_the_runs() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.0));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn formats() {
        assert_eq!(thousands(9708.4), "9,708");
        assert_eq!(thousands(999.5), "1,000");
        assert_eq!(thousands(12.0), "12");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
        assert_eq!(ms(Some(1234)), "1.23 ms");
        assert_eq!(ms(None), "n/a");
    }
}
