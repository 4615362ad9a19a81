//! The retry schedule as a pure function: exponential from a base, capped, with full
//! jitter, or the peer's `Retry-After` when it gave one. The relay stores the result as
//! the entry's `next_attempt_at`, so the schedule survives restarts.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Backoff {
    /// The ceiling of the delay after the `attempt`-th failed attempt (1-based):
    /// `min(cap, base · 2^(attempt-1))`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(32);
        self.base
            .saturating_mul(1u32 << doublings.min(31))
            .min(self.cap)
    }

    /// The delay before the next attempt. `jitter` in `[0, 1)` picks a point in
    /// `[0, ceiling]` ("full jitter", so retries of many entries spread out instead of
    /// arriving together). A peer's `Retry-After` wins, but never beyond the cap.
    pub fn delay(&self, attempt: u32, jitter: f64, retry_after: Option<Duration>) -> Duration {
        if let Some(retry_after) = retry_after {
            return retry_after.min(self.cap);
        }
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.ceiling(attempt).mul_f64(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SCHEDULE: Backoff = Backoff {
        base: Duration::from_secs(1),
        cap: Duration::from_secs(600),
    };

    #[test]
    fn the_ceiling_doubles_from_the_base_up_to_the_cap() {
        let ceilings: Vec<u64> = (1..=12).map(|a| SCHEDULE.ceiling(a).as_secs()).collect();
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]);
        assert_eq!(SCHEDULE.ceiling(u32::MAX), SCHEDULE.cap);
    }

    #[test]
    fn retry_after_wins_but_is_capped() {
        assert_eq!(
            SCHEDULE.delay(1, 0.5, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(
            SCHEDULE.delay(1, 0.5, Some(Duration::from_secs(7200))),
            SCHEDULE.cap
        );
    }

    proptest! {
        #[test]
        fn a_delay_is_never_negative_nor_above_its_ceiling(attempt in 0u32..100, jitter in proptest::num::f64::ANY) {
            let delay = SCHEDULE.delay(attempt, jitter, None);
            prop_assert!(delay <= SCHEDULE.ceiling(attempt));
            prop_assert!(delay <= SCHEDULE.cap);
        }

        #[test]
        fn the_ceiling_never_shrinks_as_attempts_grow(attempt in 1u32..100) {
            prop_assert!(SCHEDULE.ceiling(attempt + 1) >= SCHEDULE.ceiling(attempt));
        }

        #[test]
        fn jitter_spreads_the_delay_over_the_whole_window(attempt in 1u32..12, jitter in 0.0f64..1.0) {
            let delay = SCHEDULE.delay(attempt, jitter, None);
            let expected = SCHEDULE.ceiling(attempt).mul_f64(jitter);
            prop_assert_eq!(delay, expected);
        }
    }
}
