//! The relay loop. One loop per target, so a slow or failing peer never holds up the
//! other. Each loop keeps up to `concurrency` deliveries in flight: it claims due entries
//! in short transactions (never holding one open while a peer is called), delivers them
//! concurrently, and records the outcomes in batches, fenced by the lease each entry was
//! claimed with.

use crate::backoff::Backoff;
use crate::deliver::{Deliver, DeliveryError};
use crate::pause::{PausePolicy, TargetHealth};
use cons_domain::Target;
use cons_store::outbox::{self, Claimed, Effect, Outcome};
use cons_store::{Pool, StoreError};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};

/// How one target is worked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSettings {
    pub target: Target,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// How long a claim is ours. A delivery is cut off at three quarters of it, so the
    /// outcome is recorded before anyone else may take the entry.
    pub lease: Duration,
}

#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Who holds the leases (host, pid and a random part): visible in `outbox list`.
    pub owner: String,
    pub targets: Vec<TargetSettings>,
    /// Entries claimed per query at most.
    pub batch_size: usize,
    /// How long finished deliveries may wait to be recorded together.
    pub flush_interval: Duration,
    /// How often an idle loop looks for due entries without a wake-up (the fallback for a
    /// lost NOTIFY, and what makes retries due later happen).
    pub poll_interval: Duration,
    pub max_attempts: u32,
    pub backoff: Backoff,
    pub pause: PausePolicy,
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Relay<D> {
    pool: Pool,
    settings: RelaySettings,
    deliver: Arc<D>,
    wake: Arc<Notify>,
    health: HashMap<Target, Arc<TargetHealth>>,
}

/// What `drain` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainReport {
    pub attempts: usize,
    pub delivered: usize,
    pub retried: usize,
    pub dead: usize,
}

impl<D: Deliver> Relay<D> {
    pub fn new(pool: Pool, settings: RelaySettings, deliver: D) -> Self {
        let health = settings
            .targets
            .iter()
            .map(|t| (t.target, Arc::new(TargetHealth::new(settings.pause))))
            .collect();
        Relay {
            pool,
            settings,
            deliver: Arc::new(deliver),
            wake: Arc::new(Notify::new()),
            health,
        }
    }

    /// Wakes every idle loop (the NOTIFY listener calls it).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    pub fn deliverer(&self) -> &D {
        &self.deliver
    }

    /// Delivers everything due now, batch by batch, until nothing is due; entries that
    /// fail are rescheduled (or dead) and not waited for. Deterministic: for tests and
    /// for `consctl`, not for production (which runs `run`).
    pub async fn drain(&self) -> Result<DrainReport, RelayError> {
        let mut report = DrainReport::default();
        // Passes over every target until one finds nothing: a delivery to one target
        // may enqueue a follow-up for another (the 1C number goes to Chatwoot).
        loop {
            let before = report.attempts;
            for target in &self.settings.targets {
                loop {
                    if !self
                        .health(target.target)
                        .paused_for(Instant::now())
                        .is_zero()
                    {
                        break;
                    }
                    let claimed = self.claim(target, self.settings.batch_size).await?;
                    if claimed.is_empty() {
                        break;
                    }
                    let deliveries: FuturesUnordered<_> = claimed
                        .into_iter()
                        .map(|entry| self.attempt(target, entry))
                        .collect();
                    let results: Vec<(Claimed, Outcome)> = deliveries.collect().await;
                    report.attempts += results.len();
                    for (_, outcome) in &results {
                        match outcome {
                            Outcome::Delivered { .. } => report.delivered += 1,
                            Outcome::Retry { .. } => report.retried += 1,
                            Outcome::Dead { .. } => report.dead += 1,
                        }
                    }
                    self.record(&results).await?;
                }
            }
            if report.attempts == before {
                break;
            }
        }
        Ok(report)
    }

    /// Runs one loop per target until `shutdown` turns true; then claims nothing more and
    /// lets deliveries in flight finish (and be recorded) within their own deadlines.
    pub async fn run(self: Arc<Self>, shutdown: watch::Receiver<bool>) -> Result<(), RelayError> {
        let mut loops = tokio::task::JoinSet::new();
        for target in self.settings.targets.clone() {
            let relay = self.clone();
            let shutdown = shutdown.clone();
            loops.spawn(async move { relay.run_target(target, shutdown).await });
        }
        let mut outcome = Ok(());
        while let Some(finished) = loops.join_next().await {
            match finished {
                Ok(Ok(())) => {}
                Ok(Err(error)) => outcome = Err(error),
                Err(panic) => tracing::error!(error = %panic, "a relay loop panicked"),
            }
        }
        outcome
    }

    async fn run_target(
        self: &Arc<Self>,
        target: TargetSettings,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), RelayError> {
        // Deliveries run as their own tasks: they must progress (and give back any pooled
        // connection they hold) while this loop waits on the pool to claim or record.
        let mut in_flight: tokio::task::JoinSet<(Claimed, Outcome)> = tokio::task::JoinSet::new();
        let mut finished: Vec<(Claimed, Outcome)> = Vec::new();
        let mut oldest_finished: Option<Instant> = None;
        // One batch of outcomes at a time is recorded by a task of its own, so that claims
        // and deliveries go on while it commits; what finishes meanwhile goes into the next
        // batch (the busier the loop, the larger the batches).
        let mut recording: Option<tokio::task::JoinHandle<()>> = None;
        let mut stopping = false;
        loop {
            stopping |= *shutdown.borrow();
            // Register for a wake-up before looking for work, so a NOTIFY that arrives
            // between an empty claim and the wait is not lost.
            let woken = self.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();

            let idle;
            let health = self.health(target.target);
            let paused_for = health.paused_for(Instant::now());
            let allowed = health.allowed_in_flight(target.concurrency);
            let free = allowed.saturating_sub(in_flight.len());
            // Under load, claim once half the slots are free rather than for every slot
            // that frees up: a claim costs a commit whatever its size, and claims of one or
            // two entries made the database the bottleneck. An idle loop claims at once.
            let worth_a_claim = in_flight.is_empty() || free >= (allowed / 2).max(1);
            if !stopping && paused_for.is_zero() && free > 0 && worth_a_claim {
                let free = free.min(self.settings.batch_size);
                match self.claim(&target, free).await {
                    Ok(claimed) => {
                        idle = claimed.is_empty();
                        for entry in claimed {
                            let (relay, target) = (self.clone(), target.clone());
                            in_flight.spawn(async move { relay.attempt(&target, entry).await });
                        }
                    }
                    Err(error) => {
                        tracing::warn!(target = %target.target, %error, "claim failed; retrying after the poll interval");
                        idle = true;
                    }
                }
            } else {
                idle = in_flight.is_empty();
            }
            if stopping && in_flight.is_empty() {
                if let Some(batch) = recording.take() {
                    let _ = batch.await;
                }
                self.record_until_done(&finished).await;
                return Ok(());
            }
            let flush_at = oldest_finished.map(|t| t + self.settings.flush_interval);
            let wait = if !paused_for.is_zero() {
                paused_for.min(self.settings.poll_interval)
            } else {
                self.settings.poll_interval
            };
            tokio::select! {
                Some(joined) = in_flight.join_next(), if !in_flight.is_empty() => {
                    // A panicking delivery loses its entry's outcome; the lease expires and
                    // the entry is tried again.
                    let mut push = |joined: Result<(Claimed, Outcome), tokio::task::JoinError>| match joined {
                        Ok(result) => finished.push(result),
                        Err(error) => tracing::error!(%error, "a delivery task failed"),
                    };
                    push(joined);
                    // Take whatever else has finished too, without waiting.
                    while let Some(joined) = in_flight.try_join_next() {
                        push(joined);
                    }
                    oldest_finished.get_or_insert_with(Instant::now);
                }
                () = &mut woken, if idle || in_flight.len() < target.concurrency => {}
                () = recorded(&mut recording), if recording.is_some() => recording = None,
                () = sleep_until(flush_at), if flush_at.is_some() && recording.is_none() => {}
                () = tokio::time::sleep(wait), if idle => {}
                _ = shutdown.changed(), if !stopping => {}
            }
            // Record when nothing else is in flight (the quiet case: at once), or, under
            // load, once half the slots' worth has finished or the oldest outcome has
            // waited `flush_interval`: like a claim, a record costs a commit whatever its
            // size.
            let due = flush_at.is_some_and(|at| Instant::now() >= at);
            let enough =
                finished.len() >= (target.concurrency / 2).clamp(1, self.settings.batch_size);
            if recording.is_none()
                && !finished.is_empty()
                && (due || in_flight.is_empty() || enough)
            {
                let rest = finished.split_off(finished.len().min(self.settings.batch_size));
                let batch = std::mem::replace(&mut finished, rest);
                if finished.is_empty() {
                    oldest_finished = None;
                }
                let relay = self.clone();
                recording = Some(tokio::spawn(async move {
                    relay.record_until_done(&batch).await;
                }));
            }
        }
    }

    async fn record_until_done(&self, finished: &[(Claimed, Outcome)]) {
        if finished.is_empty() {
            return;
        }
        // Keep trying: these effects happened at the peers and must be recorded. If the
        // database stays away longer than the lease, the entries are delivered again and
        // the effects' look-ups make that harmless.
        let mut pause = Duration::from_millis(50);
        loop {
            match self.record(finished).await {
                Ok(()) => break,
                Err(error) => {
                    tracing::warn!(%error, entries = finished.len(), "recording outcomes failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn claim(
        &self,
        target: &TargetSettings,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        let mut connection = self.pool.get().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        outbox::claim(
            &mut connection,
            &self.settings.owner,
            &[target.target],
            limit,
            target.lease,
        )
        .await
    }

    async fn record(&self, results: &[(Claimed, Outcome)]) -> Result<(), RelayError> {
        let started = Instant::now();
        let mut connection = self.pool.get().await.map_err(StoreError::from)?;
        let recorded = outbox::complete(&mut connection, results).await?;
        // Recording may have enqueued follow-ups (the 1C number for Chatwoot): wake our own
        // loops; other relays find them by polling.
        if results.iter().any(|(_, o)| {
            matches!(
                o,
                Outcome::Delivered {
                    effect: Effect::OnecTicket { .. }
                }
            )
        }) {
            self.wake.notify_waiters();
        }
        metrics::histogram!("relay_record_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        let now = chrono::Utc::now();
        for (entry, outcome) in results {
            if !recorded.contains(&entry.lease_token) {
                tracing::warn!(outbox.id = entry.id, outbox.target = %entry.target, "lease lost before the outcome was recorded");
                metrics::counter!("outbox_lease_lost_total", "target" => entry.target.clone())
                    .increment(1);
                continue;
            }
            let target = entry.target.clone();
            match outcome {
                Outcome::Delivered { .. } => {
                    metrics::counter!("outbox_delivered_total", "target" => target.clone())
                        .increment(1);
                    let latency = (now - entry.created_at).to_std().unwrap_or_default();
                    metrics::histogram!("outbox_delivery_latency_seconds", "target" => target)
                        .record(latency.as_secs_f64());
                }
                Outcome::Retry { .. } => {
                    metrics::counter!("outbox_attempt_failed_total", "target" => target, "class" => "retry").increment(1);
                }
                Outcome::Dead { .. } => {
                    metrics::counter!("outbox_attempt_failed_total", "target" => target.clone(), "class" => "dead").increment(1);
                    metrics::counter!("outbox_dead_total", "target" => target).increment(1);
                }
            }
        }
        Ok(())
    }

    /// One delivery attempt, cut off at three quarters of the lease, classified into an
    /// outcome.
    async fn attempt(&self, target: &TargetSettings, entry: Claimed) -> (Claimed, Outcome) {
        let deadline = target.lease.mul_f64(0.75);
        let started = Instant::now();
        let result = match tokio::time::timeout(deadline, self.deliver.deliver(&entry)).await {
            Ok(result) => result,
            Err(_elapsed) => Err(DeliveryError::retryable(
                "the delivery took longer than its lease allows",
            )),
        };
        metrics::histogram!("outbox_attempt_duration_seconds", "target" => entry.target.clone())
            .record(started.elapsed().as_secs_f64());
        let outcome = self.classify(&entry, result);
        match &outcome {
            Outcome::Delivered { .. } => self.health(target.target).succeeded(),
            Outcome::Retry { error, .. } | Outcome::Dead { error, .. } => {
                tracing::info!(
                    outbox.id = entry.id, outbox.target = %entry.target, outbox.kind = %entry.kind,
                    outbox.attempt = entry.attempts, error = %error, "delivery attempt failed"
                );
            }
        }
        (entry, outcome)
    }

    fn classify(&self, entry: &Claimed, result: Result<Effect, DeliveryError>) -> Outcome {
        match result {
            Ok(effect) => Outcome::Delivered { effect },
            Err(error) if !error.retryable => Outcome::Dead {
                error: error.message,
                http_status: error.http_status,
            },
            Err(error) => {
                // Only the peer's own failures count against it: a failure on our side
                // (our database) must not pause a healthy peer.
                if error.peer_fault
                    && let Ok(target) = Target::parse(&entry.target)
                    && let Some(pause) = self
                        .health(target)
                        .failed(Instant::now(), error.retry_after)
                {
                    tracing::warn!(
                        outbox.target = %entry.target,
                        pause_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
                        "target paused after failures"
                    );
                }
                let attempts = u32::try_from(entry.attempts).unwrap_or(u32::MAX);
                if attempts >= self.settings.max_attempts {
                    Outcome::Dead {
                        error: format!("{} (gave up after {attempts} attempts)", error.message),
                        http_status: error.http_status,
                    }
                } else {
                    let delay = self.settings.backoff.delay(
                        attempts,
                        rand::random::<f64>(),
                        error.retry_after,
                    );
                    Outcome::Retry {
                        delay,
                        error: error.message,
                        http_status: error.http_status,
                    }
                }
            }
        }
    }

    fn health(&self, target: Target) -> &TargetHealth {
        // Every target the relay works has an entry; a missing one would be a programming
        // error, so fall back to a fresh, never-paused health rather than panic.
        self.health
            .get(&target)
            .map_or_else(|| unpaused(), |h| h.as_ref())
    }
}

fn unpaused() -> &'static TargetHealth {
    static NEVER: std::sync::OnceLock<TargetHealth> = std::sync::OnceLock::new();
    NEVER.get_or_init(|| {
        TargetHealth::new(PausePolicy {
            after_failures: u32::MAX,
            pause: Duration::ZERO,
            max: Duration::ZERO,
        })
    })
}

/// Waits for the batch being recorded, if any.
async fn recorded(recording: &mut Option<tokio::task::JoinHandle<()>>) {
    match recording {
        Some(batch) => {
            if let Err(error) = batch.await {
                tracing::error!(%error, "recording a batch of outcomes failed");
            }
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
