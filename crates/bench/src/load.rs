//! Load shapes for HTTP benchmarks, over [`crate::http::Connection`]s:
//!
//! - a **closed loop**: every connection sends its next request as soon as the previous
//!   answer is in, which finds the maximum rate;
//! - an **open loop**: requests on a fixed schedule, with latency counted from the
//!   *scheduled* send time, so that a server falling behind shows up as latency instead of
//!   quietly slowing the generator down (no coordinated omission).
//!
//! Each connection runs on its own OS thread with a single-threaded tokio runtime. That
//! lets the open loop wait for its next send time with `std::thread::sleep`, which wakes
//! within tens of microseconds, where tokio's timer rounds up to the next millisecond and
//! would add that to every measured latency.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::http::Connection;
use crate::stats::{Latencies, micros};

/// How long a connection pauses after an I/O error before it connects again, so that a
/// dead server produces a countable trickle of errors rather than a busy loop.
const RECONNECT_PAUSE: Duration = Duration::from_millis(10);
/// How many error answers are kept verbatim for the report.
const ERROR_SAMPLES: usize = 3;
/// How much of an error answer's body is kept.
const SAMPLE_BYTES: usize = 300;

/// What to send and what counts as success.
#[derive(Debug)]
pub struct Target<'a> {
    pub addr: SocketAddr,
    /// Prepared requests, used round-robin across all connections.
    pub requests: &'a [Vec<u8>],
    /// Shared position in `requests`; keep it across runs to keep rotating.
    pub next: &'a AtomicUsize,
    /// The status of a successful answer; anything else is an error.
    pub expected_status: u16,
}

impl Target<'_> {
    fn next_request(&self) -> &[u8] {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.requests
            .get(i % self.requests.len().max(1))
            .map_or(&[][..], Vec::as_slice)
    }
}

/// Answers that were not the expected status, and failed exchanges.
#[derive(Debug, Default, Clone)]
pub struct Errors {
    pub by_status: BTreeMap<u16, u64>,
    /// Connect, write or read failures (including malformed answers).
    pub io: u64,
    /// Requests an open loop never sent because it fell too far behind.
    pub unsent: u64,
    /// The first few error answers or I/O errors, for the report.
    pub samples: Vec<String>,
}

impl Errors {
    pub fn total(&self) -> u64 {
        self.by_status.values().sum::<u64>() + self.io + self.unsent
    }

    fn status(&mut self, status: u16, body: &[u8]) {
        *self.by_status.entry(status).or_default() += 1;
        if self.samples.len() < ERROR_SAMPLES {
            let body = String::from_utf8_lossy(&body[..body.len().min(SAMPLE_BYTES)]);
            self.samples.push(format!("{status}: {body}"));
        }
    }

    fn io(&mut self, error: &std::io::Error) {
        self.io += 1;
        if self.samples.len() < ERROR_SAMPLES {
            self.samples.push(format!("I/O: {error}"));
        }
    }

    fn merge(&mut self, other: Errors) {
        for (status, count) in other.by_status {
            *self.by_status.entry(status).or_default() += count;
        }
        self.io += other.io;
        self.unsent += other.unsent;
        let room = ERROR_SAMPLES.saturating_sub(self.samples.len());
        self.samples.extend(other.samples.into_iter().take(room));
    }

    /// `0`, or e.g. `12 (422 × 10, I/O × 2)`.
    pub fn describe(&self) -> String {
        let total = self.total();
        if total == 0 {
            return "0".to_owned();
        }
        let mut parts: Vec<String> = self
            .by_status
            .iter()
            .map(|(status, count)| format!("{status} × {count}"))
            .collect();
        if self.io > 0 {
            parts.push(format!("I/O × {}", self.io));
        }
        if self.unsent > 0 {
            parts.push(format!("not sent × {}", self.unsent));
        }
        format!("{total} ({})", parts.join(", "))
    }
}

/// The result of one run.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Answers with the expected status inside the measured window.
    pub ok: u64,
    /// Latency of each of those answers, in µs.
    pub latencies: Latencies,
    pub errors: Errors,
    /// The measured window.
    pub window: Duration,
    /// Open loop only: how late the generator itself sent requests whose connection was
    /// idle at the scheduled time (its sleep overshoot and CPU wait), in µs. Everything in
    /// the latencies beyond this is the server's.
    pub send_lag: Latencies,
}

impl Outcome {
    /// Successful answers per second of the window.
    pub fn rate(&self) -> f64 {
        let seconds = self.window.as_secs_f64();
        if seconds > 0.0 {
            self.ok as f64 / seconds
        } else {
            0.0
        }
    }
}

#[derive(Debug, Default)]
struct ConnectionOutcome {
    ok: u64,
    latencies: Vec<u32>,
    send_lag: Vec<u32>,
    errors: Errors,
}

/// Closed loop over `connections` keep-alive connections for `window`. With
/// `min_requests`, the run goes on past the window until that many requests were sent in
/// total (a warm-up that must touch every prepared request once).
///
/// Only answers that arrive inside the window count; requests still in flight at its end
/// are finished and dropped.
pub fn closed_loop(
    target: &Target<'_>,
    connections: usize,
    window: Duration,
    min_requests: usize,
) -> anyhow::Result<Outcome> {
    let start = start_time(connections);
    let end = start + window;
    let sent_before = target.next.load(Ordering::Relaxed);
    let outcomes = per_connection(connections, |_| async move {
        let mut outcome = ConnectionOutcome {
            latencies: Vec::with_capacity(64 * 1024),
            ..ConnectionOutcome::default()
        };
        let mut connection = Connection::connect(target.addr).await;
        sleep_until(start);
        loop {
            let now = Instant::now();
            let sent = target.next.load(Ordering::Relaxed) - sent_before;
            if now >= end && sent >= min_requests {
                break;
            }
            let conn = match &mut connection {
                Ok(conn) => conn,
                Err(error) => {
                    outcome.errors.io(error);
                    if now >= end {
                        // The server is gone; `min_requests` can no longer be reached.
                        break;
                    }
                    std::thread::sleep(RECONNECT_PAUSE);
                    connection = Connection::connect(target.addr).await;
                    continue;
                }
            };
            let request = target.next_request();
            let began = Instant::now();
            let result = conn.send(request).await;
            let done = Instant::now();
            match result {
                Ok(status) if done <= end => {
                    if status == target.expected_status {
                        outcome.ok += 1;
                        outcome.latencies.push(micros(done - began));
                    } else {
                        outcome.errors.status(status, conn.body());
                    }
                }
                // After the window: not counted, either way.
                Ok(_) => {}
                Err(error) => {
                    outcome.errors.io(&error);
                    connection = Connection::connect(target.addr).await;
                    continue;
                }
            }
            if conn.closed_by_server() {
                connection = Connection::connect(target.addr).await;
            }
        }
        outcome
    })?;
    Ok(combine(outcomes, window))
}

/// Open loop at `rate` requests/s in total for `window`, spread evenly over
/// `connections`: connection `c` sends its `k`-th request at
/// `start + (c / connections + k) · connections / rate`. Latency runs from that scheduled
/// time to the end of the answer, so time spent waiting behind a slow earlier answer on the
/// same connection counts.
///
/// Requests scheduled inside the window are all sent and awaited, except when a connection
/// is more than `max_overrun` behind: the rest are counted as not sent.
pub fn open_loop(
    target: &Target<'_>,
    connections: usize,
    rate: f64,
    window: Duration,
    max_overrun: Duration,
) -> anyhow::Result<Outcome> {
    anyhow::ensure!(
        rate > 0.0 && rate.is_finite(),
        "the open-loop rate must be positive, not {rate}"
    );
    let start = start_time(connections);
    let end = start + window;
    let give_up = end + max_overrun;
    let period = Duration::from_secs_f64(connections as f64 / rate);
    let outcomes = per_connection(connections, |c| async move {
        let mut outcome = ConnectionOutcome {
            latencies: Vec::with_capacity(64 * 1024),
            send_lag: Vec::with_capacity(64 * 1024),
            ..ConnectionOutcome::default()
        };
        let offset = period.mul_f64(c as f64 / connections as f64);
        let mut connection = Connection::connect(target.addr).await;
        let mut idle_since = start;
        let mut k: u32 = 0;
        loop {
            let scheduled = start + offset + period * k;
            if scheduled >= end {
                break;
            }
            k += 1;
            if Instant::now() > give_up {
                outcome.errors.unsent += 1;
                continue;
            }
            sleep_until(scheduled);
            let conn = match &mut connection {
                Ok(conn) => conn,
                Err(error) => {
                    outcome.errors.io(error);
                    std::thread::sleep(RECONNECT_PAUSE);
                    connection = Connection::connect(target.addr).await;
                    continue;
                }
            };
            let request = target.next_request();
            let began = Instant::now();
            if scheduled >= idle_since {
                outcome.send_lag.push(micros(began - scheduled));
            }
            let result = conn.send(request).await;
            let done = Instant::now();
            idle_since = done;
            match result {
                Ok(status) if status == target.expected_status => {
                    outcome.ok += 1;
                    outcome.latencies.push(micros(done - scheduled));
                }
                Ok(status) => outcome.errors.status(status, conn.body()),
                Err(error) => {
                    outcome.errors.io(&error);
                    connection = Connection::connect(target.addr).await;
                    continue;
                }
            }
            if conn.closed_by_server() {
                connection = Connection::connect(target.addr).await;
            }
        }
        outcome
    })?;
    Ok(combine(outcomes, window))
}

/// When the connections start: far enough ahead that every thread has connected by then,
/// so the first scheduled sends are not late because of set-up.
fn start_time(connections: usize) -> Instant {
    Instant::now() + Duration::from_millis(50 + 2 * connections as u64)
}

/// Sleeps (blocking the calling thread: each connection has its own) until `deadline`.
fn sleep_until(deadline: Instant) {
    let now = Instant::now();
    if deadline > now {
        std::thread::sleep(deadline - now);
    }
}

/// Runs `work(c)` for each connection `c` on its own thread with a current-thread tokio
/// runtime, and collects the results.
fn per_connection<W, F>(connections: usize, work: W) -> anyhow::Result<Vec<ConnectionOutcome>>
where
    W: Fn(usize) -> F + Sync,
    F: Future<Output = ConnectionOutcome>,
{
    anyhow::ensure!(connections > 0, "at least one connection is needed");
    std::thread::scope(|scope| {
        let work = &work;
        let threads = (0..connections)
            .map(|c| {
                std::thread::Builder::new()
                    .name(format!("load-{c}"))
                    .spawn_scoped(scope, move || -> anyhow::Result<ConnectionOutcome> {
                        let runtime = tokio::runtime::Builder::new_current_thread()
                            .enable_io()
                            .build()?;
                        Ok(runtime.block_on(work(c)))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        threads
            .into_iter()
            .map(|thread| {
                thread
                    .join()
                    .map_err(|_| anyhow::anyhow!("a load thread panicked"))?
            })
            .collect()
    })
}

fn combine(outcomes: Vec<ConnectionOutcome>, window: Duration) -> Outcome {
    let mut ok = 0;
    let mut latencies = Vec::new();
    let mut send_lag = Vec::new();
    let mut errors = Errors::default();
    for outcome in outcomes {
        ok += outcome.ok;
        latencies.extend(outcome.latencies);
        send_lag.extend(outcome.send_lag);
        errors.merge(outcome.errors);
    }
    Outcome {
        ok,
        latencies: Latencies::from_unsorted(latencies),
        errors,
        window,
        send_lag: Latencies::from_unsorted(send_lag),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_describe_themselves() {
        let mut errors = Errors::default();
        assert_eq!(errors.describe(), "0");
        errors.status(422, b"{\"error\":{}}");
        errors.status(422, b"");
        errors.io(&std::io::Error::other("reset"));
        assert_eq!(errors.describe(), "3 (422 × 2, I/O × 1)");
        assert_eq!(errors.samples.len(), 3);
    }
}
