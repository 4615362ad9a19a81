//! Abuse limits: a keyed rate limiter (per IP for logins, per client for ticket creation)
//! and the client's IP address behind trusted reverse proxies. The limits hold per
//! process; with several API processes each allows its share.

use actix_web::HttpRequest;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries below this count are never swept.
const SWEEP_FLOOR: usize = 4096;

/// Up to `per_minute` requests per key at once, refilled evenly over a minute (the
/// generic cell rate algorithm: one instant per key, the "theoretical arrival time").
#[derive(Debug)]
pub struct RateLimiter<K> {
    interval: Duration,
    burst: Duration,
    state: Mutex<State<K>>,
}

#[derive(Debug)]
struct State<K> {
    arrivals: HashMap<K, Instant>,
    /// Sweep expired keys when the map reaches this size, then double it: amortised
    /// constant work per request, however many distinct keys arrive.
    sweep_at: usize,
}

impl<K: Hash + Eq> RateLimiter<K> {
    pub fn per_minute(per_minute: u32) -> RateLimiter<K> {
        let interval = Duration::from_secs(60) / per_minute.max(1);
        RateLimiter {
            interval,
            burst: interval * per_minute.max(1).saturating_sub(1),
            state: Mutex::new(State {
                arrivals: HashMap::new(),
                sweep_at: SWEEP_FLOOR,
            }),
        }
    }

    /// Counts a request of `key` at `now`; `Err(wait)` when it is over the limit and may
    /// be retried after `wait`.
    pub fn check(&self, key: K, now: Instant) -> Result<(), Duration> {
        let Ok(mut state) = self.state.lock() else {
            // A panic elsewhere poisoned the lock; limiting is not worth failing requests.
            return Ok(());
        };
        if state.arrivals.len() >= state.sweep_at {
            state.arrivals.retain(|_, arrival| *arrival > now);
            state.sweep_at = (state.arrivals.len() * 2).max(SWEEP_FLOOR);
        }
        let arrival = state
            .arrivals
            .get(&key)
            .copied()
            .filter(|arrival| *arrival > now)
            .unwrap_or(now);
        let ahead = arrival - now;
        if ahead > self.burst {
            return Err(ahead - self.burst);
        }
        state.arrivals.insert(key, arrival + self.interval);
        Ok(())
    }
}

/// The caller's address: the peer, or, when the peer is one of `trusted_proxies`, the
/// nearest address in `X-Forwarded-For` that is not a trusted proxy (addresses further
/// left were written by whoever sent the request and prove nothing).
pub fn client_ip(request: &HttpRequest, trusted_proxies: &[IpAddr]) -> Option<IpAddr> {
    let peer = request.peer_addr()?.ip();
    if !trusted_proxies.contains(&peer) {
        return Some(peer);
    }
    let mut forwarded = request
        .headers()
        .get_all("X-Forwarded-For")
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|address| address.trim().parse::<IpAddr>())
        .collect::<Vec<_>>();
    while let Some(address) = forwarded.pop() {
        match address {
            Ok(address) if trusted_proxies.contains(&address) => continue,
            Ok(address) => return Some(address),
            Err(_) => break,
        }
    }
    Some(peer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn a_burst_passes_then_requests_wait_for_the_refill() {
        let limiter = RateLimiter::per_minute(3);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check("ip", start), Ok(()));
        }
        let wait = limiter.check("ip", start).unwrap_err();
        assert_eq!(wait, Duration::from_secs(20));
        assert_eq!(limiter.check("other", start), Ok(()), "keys are separate");
        assert!(limiter.check("ip", start + wait).is_ok());
        assert!(limiter.check("ip", start + wait).is_err());
        assert!(
            limiter
                .check("ip", start + Duration::from_secs(120))
                .is_ok()
        );
    }

    #[test]
    fn expired_keys_are_swept() {
        let limiter = RateLimiter::per_minute(60);
        let start = Instant::now();
        for key in 0..SWEEP_FLOOR {
            limiter.check(key, start).unwrap();
        }
        limiter
            .check(usize::MAX, start + Duration::from_secs(2))
            .unwrap();
        assert_eq!(limiter.state.lock().unwrap().arrivals.len(), 1);
    }

    #[test]
    fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let request = |peer: &str| {
            TestRequest::default()
                .peer_addr(format!("{peer}:5000").parse().unwrap())
                .insert_header(("X-Forwarded-For", "6.6.6.6, 203.0.113.7, 10.0.0.1"))
                .to_http_request()
        };
        assert_eq!(
            client_ip(&request("10.0.0.1"), &[proxy]),
            Some("203.0.113.7".parse().unwrap())
        );
        assert_eq!(
            client_ip(&request("198.51.100.2"), &[proxy]),
            Some("198.51.100.2".parse().unwrap()),
            "an untrusted peer's header is ignored"
        );
        assert_eq!(
            client_ip(&request("10.0.0.1"), &[]),
            Some("10.0.0.1".parse().unwrap())
        );
    }
}
