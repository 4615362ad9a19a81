//! Scripted faults: "the next k matching calls fail like this". Shared by both simulators
//! and applied around their handlers by `server::serve`.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

/// What goes wrong with one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer this status with this body instead of doing the work.
    Status { status: u16, body: String },
    /// 429 with `Retry-After: <seconds>`, without doing the work.
    RateLimited { retry_after_secs: u64 },
    /// Wait this long, then do the work and answer normally (a slow peer).
    Latency(Duration),
    /// Never answer, without doing the work (a black hole; the client times out).
    Stall,
    /// Do the work, commit it, then never answer: the peer acted but the caller cannot
    /// know ("act, then time out").
    ActThenStall,
}

/// One scripted rule: applies to the next `remaining` calls whose `METHOD path` contains
/// `matching` (every call when `matching` is empty).
#[derive(Debug, Clone)]
struct Rule {
    matching: String,
    fault: Fault,
    remaining: usize,
}

/// The fault script of one simulator. Cheap to share (`Arc`), safe to change while the
/// simulator runs.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Mutex<VecDeque<Rule>>,
    latency: Mutex<Duration>,
}

impl Faults {
    /// The next `times` calls (of any route) fail with `fault`.
    pub fn next(&self, times: usize, fault: Fault) {
        self.next_matching("", times, fault);
    }

    /// The next `times` calls whose `METHOD path` contains `matching` (e.g.
    /// `"POST /api/v1/accounts/1/conversations"`) fail with `fault`. Rules apply in the
    /// order they were added.
    pub fn next_matching(&self, matching: &str, times: usize, fault: Fault) {
        if times == 0 {
            return;
        }
        let rule = Rule {
            matching: matching.to_owned(),
            fault,
            remaining: times,
        };
        self.lock_rules().push_back(rule);
    }

    /// A latency added to every call from now on (zero to remove it).
    pub fn set_latency(&self, latency: Duration) {
        *self
            .latency
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = latency;
    }

    pub fn latency(&self) -> Duration {
        *self
            .latency
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forgets every scripted fault and the latency.
    pub fn clear(&self) {
        self.lock_rules().clear();
        self.set_latency(Duration::ZERO);
    }

    /// Scripted faults not yet used up.
    pub fn pending(&self) -> usize {
        self.lock_rules().iter().map(|r| r.remaining).sum()
    }

    /// Takes the fault for a call to `method path`, if a rule matches.
    pub fn take(&self, method: &str, path: &str) -> Option<Fault> {
        let call = format!("{method} {path}");
        let mut rules = self.lock_rules();
        let index = rules.iter().position(|r| call.contains(&r.matching))?;
        let rule = &mut rules[index];
        rule.remaining -= 1;
        let fault = rule.fault.clone();
        if rule.remaining == 0 {
            rules.remove(index);
        }
        Some(fault)
    }

    fn lock_rules(&self) -> std::sync::MutexGuard<'_, VecDeque<Rule>> {
        // A panicking test thread must not poison the simulator for the others.
        self.rules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_apply_to_matching_calls_in_order_and_run_out() {
        let faults = Faults::default();
        faults.next_matching("POST /contacts", 2, Fault::Stall);
        faults.next(
            1,
            Fault::RateLimited {
                retry_after_secs: 3,
            },
        );
        assert_eq!(
            faults.take("GET", "/contacts/1"),
            Some(Fault::RateLimited {
                retry_after_secs: 3
            })
        );
        assert_eq!(faults.take("POST", "/contacts"), Some(Fault::Stall));
        assert_eq!(faults.take("POST", "/contacts"), Some(Fault::Stall));
        assert_eq!(faults.take("POST", "/contacts"), None);
        assert_eq!(faults.pending(), 0);
    }
}
