//! Per-target pauses: a target that keeps failing, or that asked us to wait (429), is not
//! claimed from for a while, so its outage neither burns the attempts of every entry nor
//! slows the other target, whose worker loop is separate.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PausePolicy {
    /// Consecutive retryable failures that pause the target.
    pub after_failures: u32,
    /// The first pause; each further one without a success in between doubles, up to `max`.
    pub pause: Duration,
    pub max: Duration,
}

#[derive(Debug)]
pub struct TargetHealth {
    policy: PausePolicy,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    consecutive_failures: u32,
    pauses_in_a_row: u32,
    paused_until: Option<Instant>,
}

impl TargetHealth {
    pub fn new(policy: PausePolicy) -> Self {
        TargetHealth {
            policy,
            state: Mutex::default(),
        }
    }

    /// How long until the target may be claimed from again (zero: now).
    pub fn paused_for(&self, now: Instant) -> Duration {
        self.lock()
            .paused_until
            .map_or(Duration::ZERO, |until| until.saturating_duration_since(now))
    }

    /// How many deliveries may be in flight: after a pause, one probe at a time until a
    /// delivery succeeds, so a peer that is still down costs one attempt, not one per slot.
    pub fn allowed_in_flight(&self, concurrency: usize) -> usize {
        if self.lock().pauses_in_a_row > 0 {
            1
        } else {
            concurrency
        }
    }

    pub fn succeeded(&self) {
        let mut state = self.lock();
        state.consecutive_failures = 0;
        state.pauses_in_a_row = 0;
    }

    /// Records a retryable failure; `retry_after` (a 429) pauses at once for that long.
    /// Returns the pause this failure started, if any.
    pub fn failed(&self, now: Instant, retry_after: Option<Duration>) -> Option<Duration> {
        let mut state = self.lock();
        state.consecutive_failures += 1;
        let pause = if let Some(wait) = retry_after {
            Some(wait)
        } else if state.consecutive_failures >= self.policy.after_failures {
            state.consecutive_failures = 0;
            let doublings = state.pauses_in_a_row.min(16);
            state.pauses_in_a_row += 1;
            Some(
                self.policy
                    .pause
                    .saturating_mul(1 << doublings)
                    .min(self.policy.max),
            )
        } else {
            None
        };
        if let Some(pause) = pause {
            let until = now + pause;
            state.paused_until = Some(
                state
                    .paused_until
                    .map_or(until, |current| current.max(until)),
            );
        }
        pause
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: PausePolicy = PausePolicy {
        after_failures: 3,
        pause: Duration::from_secs(10),
        max: Duration::from_secs(25),
    };

    #[test]
    fn repeated_failures_pause_and_the_pause_grows_to_its_max() {
        let health = TargetHealth::new(POLICY);
        let now = Instant::now();
        health.failed(now, None);
        health.failed(now, None);
        assert_eq!(health.paused_for(now), Duration::ZERO);
        health.failed(now, None);
        assert_eq!(health.paused_for(now), Duration::from_secs(10));
        assert_eq!(health.allowed_in_flight(32), 1, "probing after a pause");
        for _ in 0..3 {
            health.failed(now, None);
        }
        assert_eq!(health.paused_for(now), Duration::from_secs(20));
        for _ in 0..3 {
            health.failed(now, None);
        }
        assert_eq!(health.paused_for(now), Duration::from_secs(25));
        health.succeeded();
        assert_eq!(health.allowed_in_flight(32), 32);
        for _ in 0..3 {
            health.failed(now + Duration::from_secs(100), None);
        }
        assert_eq!(
            health.paused_for(now + Duration::from_secs(100)),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn retry_after_pauses_at_once() {
        let health = TargetHealth::new(POLICY);
        let now = Instant::now();
        health.failed(now, Some(Duration::from_secs(2)));
        assert_eq!(health.paused_for(now), Duration::from_secs(2));
        assert_eq!(
            health.paused_for(now + Duration::from_secs(3)),
            Duration::ZERO
        );
    }
}
