//! Webhook delivery, shared by both simulators: each event the simulated peer emits is
//! POSTed once to the configured URL, signed like Chatwoot signs (`sha256=` + hex
//! HMAC-SHA256 of `timestamp + "." + raw body`), asynchronously and at most once (no
//! retry on any failure, as Chatwoot), with seedable chaos (duplicates, drops, random
//! extra delays that reorder) and a log that tests wait on and inspect.

use actix_web::web::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::Sha256;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::runtime::Handle;
use tokio::sync::watch;

/// Where a simulator sends its webhooks.
#[derive(Clone, PartialEq, Eq)]
pub struct SimWebhook {
    pub url: String,
    /// The signing secret; `None` sends unsigned deliveries (Chatwoot before 4.12/4.13).
    pub secret: Option<String>,
}

impl std::fmt::Debug for SimWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimWebhook")
            .field("url", &self.url)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// What goes wrong with deliveries, drawn per event from a generator seeded with `seed`,
/// so a test gets the same drops, duplicates and delays on every run (for the same
/// sequence of events). The default is none of it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WebhookChaos {
    /// Chance that an event is delivered twice (the copy has its own delivery id and
    /// delay, the same body).
    pub duplicate_probability: f64,
    /// Chance that an event is never delivered.
    pub drop_probability: f64,
    /// Each delivery waits a random time up to this before it is sent, which reorders them.
    pub max_extra_delay: Duration,
    pub seed: u64,
}

impl Default for WebhookChaos {
    fn default() -> Self {
        Self {
            duplicate_probability: 0.0,
            drop_probability: 0.0,
            max_extra_delay: Duration::ZERO,
            seed: 0,
        }
    }
}

/// How one delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// Waiting for its delay or for the answer.
    Pending,
    /// The receiver answered this status (any status: nothing is retried).
    Answered(u16),
    /// No answer: connection refused, the 5 s timeout, a bad URL.
    Failed(String),
    /// Chaos dropped it: never sent.
    Dropped,
}

/// One delivery (or dropped delivery) in the log, in the order the events were emitted.
#[derive(Debug, Clone)]
pub struct SentWebhook {
    /// The emitted event's number, from 0; its duplicate and resends share it.
    pub sequence: u64,
    /// `conversation_updated`, `message_created`, `consultation.updated`, …
    pub event: String,
    /// What the event is about: the conversation's display id (Chatwoot) or the
    /// document's `Ref_Key` (1C), as text.
    pub subject: String,
    /// A fresh UUID per delivery (`X-Chatwoot-Delivery` for Chatwoot).
    pub delivery_id: String,
    /// The exact bytes sent (or that would have been sent).
    pub body: Bytes,
    /// The timestamp header sent, when signed and sent.
    pub timestamp: Option<String>,
    /// The signature header sent, when signed and sent.
    pub signature: Option<String>,
    pub extra_delay: Duration,
    /// The second delivery of a duplicated event.
    pub duplicate: bool,
    /// Sent by [`SimWebhooks::resend`].
    pub resent: bool,
    pub outcome: WebhookOutcome,
}

impl SentWebhook {
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The Chatwoot conversation's display id this delivery is about.
    pub fn conversation_id(&self) -> Option<u64> {
        self.subject.parse().ok()
    }
}

/// `sha256=` + lowercase hex HMAC-SHA256(key = secret, message = timestamp + "." + body):
/// Chatwoot's `X-Chatwoot-Signature`, and the contract's `X-Signature` of 1C events.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Which headers a peer's deliveries carry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeaderNames {
    /// The per-delivery UUID header, when the peer sends one.
    pub delivery: Option<&'static str>,
    pub timestamp: &'static str,
    pub signature: &'static str,
}

pub(crate) const CHATWOOT_HEADERS: HeaderNames = HeaderNames {
    delivery: Some("X-Chatwoot-Delivery"),
    timestamp: "X-Chatwoot-Timestamp",
    signature: "X-Chatwoot-Signature",
};

/// The contract's headers for events of the 1C extension (the event id is in the body).
pub(crate) const ONEC_HEADERS: HeaderNames = HeaderNames {
    delivery: None,
    timestamp: "X-Timestamp",
    signature: "X-Signature",
};

/// Chatwoot's default `WEBHOOK_TIMEOUT`, for connecting and for the answer.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// How many deliveries the log keeps; later ones are still sent, but not kept, so a load
/// test with webhooks on does not grow the simulator without bound.
const LOG_LIMIT: usize = 50_000;

/// The timestamp and signature of a delivery: made at send time, or those of an earlier
/// delivery (a byte-exact replay).
#[derive(Debug, Clone)]
enum Stamp {
    Fresh,
    Reuse {
        timestamp: Option<String>,
        signature: Option<String>,
    },
}

/// The seeded generator behind [`WebhookChaos`].
#[derive(Debug)]
struct Chaos {
    settings: WebhookChaos,
    rng: StdRng,
}

impl Chaos {
    fn new(settings: WebhookChaos) -> Self {
        Self {
            settings,
            rng: StdRng::seed_from_u64(settings.seed),
        }
    }

    /// The delays of the deliveries of one event: none when dropped, two when duplicated.
    /// Always the same number of draws per event, so one event's fate does not shift the
    /// next one's.
    fn plan(&mut self) -> Vec<Duration> {
        let dropped = self.draw(self.settings.drop_probability);
        let duplicated = self.draw(self.settings.duplicate_probability);
        let first = self.delay();
        let second = self.delay();
        match (dropped, duplicated) {
            (true, _) => Vec::new(),
            (false, false) => vec![first],
            (false, true) => vec![first, second],
        }
    }

    fn draw(&mut self, probability: f64) -> bool {
        self.rng.random::<f64>() < probability.clamp(0.0, 1.0)
    }

    fn delay(&mut self) -> Duration {
        let max = u64::try_from(self.settings.max_extra_delay.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(self.rng.random_range(0..=max))
    }
}

/// A simulator's webhook machinery: the target, the chaos, the log and the count of
/// deliveries not yet attempted. Used through [`SimWebhooks`].
#[derive(Debug, Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    headers: HeaderNames,
    target: Mutex<Option<SimWebhook>>,
    chaos: Mutex<Chaos>,
    log: Mutex<Log>,
    /// Deliveries emitted and not yet attempted; `webhooks_settled` waits for 0.
    pending: watch::Sender<usize>,
    /// Deliveries run here, never on the thread of the handler that caused them.
    runtime: Option<Handle>,
    /// Built on first use: most simulators never send a webhook.
    http: OnceLock<Result<reqwest::Client, String>>,
}

#[derive(Debug, Default)]
struct Log {
    entries: Vec<SentWebhook>,
    next_sequence: u64,
}

/// Counts a delivery as pending until dropped, even when its task is cancelled (a runtime
/// shutting down), so `settled` never waits for a delivery that cannot happen.
struct PendingDelivery(Arc<Inner>);

impl PendingDelivery {
    fn new(inner: &Arc<Inner>) -> Self {
        inner.pending.send_modify(|n| *n += 1);
        Self(inner.clone())
    }
}

impl Drop for PendingDelivery {
    fn drop(&mut self) {
        self.0.pending.send_modify(|n| *n = n.saturating_sub(1));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not poison the simulator for the others.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn unix_now() -> String {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .to_string()
}

impl Webhooks {
    /// Call on the tokio runtime that should run the deliveries (the simulator's).
    pub(crate) fn new(headers: HeaderNames) -> Self {
        Self {
            inner: Arc::new(Inner {
                headers,
                target: Mutex::new(None),
                chaos: Mutex::new(Chaos::new(WebhookChaos::default())),
                log: Mutex::new(Log::default()),
                pending: watch::Sender::new(0),
                runtime: Handle::try_current().ok(),
                http: OnceLock::new(),
            }),
        }
    }

    pub(crate) fn set_target(&self, target: Option<SimWebhook>) {
        *lock(&self.inner.target) = target;
    }

    /// Whether events should be built at all.
    pub(crate) fn is_on(&self) -> bool {
        lock(&self.inner.target).is_some()
    }

    fn set_chaos(&self, chaos: WebhookChaos) {
        *lock(&self.inner.chaos) = Chaos::new(chaos);
    }

    /// Sends one event (or not, or twice, as the chaos decides). Never blocks: the
    /// deliveries run on the runtime. Nothing happens without a target.
    pub(crate) fn emit(&self, event: &str, subject: String, body: Bytes) {
        let Some(target) = lock(&self.inner.target).clone() else {
            return;
        };
        let delays = lock(&self.inner.chaos).plan();
        let mut log = lock(&self.inner.log);
        let sequence = log.next_sequence;
        log.next_sequence += 1;
        let entry = |duplicate: bool, extra_delay: Duration, outcome: WebhookOutcome| SentWebhook {
            sequence,
            event: event.to_owned(),
            subject: subject.clone(),
            delivery_id: uuid::Uuid::new_v4().to_string(),
            body: body.clone(),
            timestamp: None,
            signature: None,
            extra_delay,
            duplicate,
            resent: false,
            outcome,
        };
        if delays.is_empty() {
            log.push(entry(false, Duration::ZERO, WebhookOutcome::Dropped));
            return;
        }
        for (copy, delay) in delays.into_iter().enumerate() {
            let sent = entry(copy > 0, delay, WebhookOutcome::Pending);
            let delivery_id = sent.delivery_id.clone();
            let index = log.push(sent);
            self.spawn(index, target.clone(), delivery_id, body.clone(), delay);
        }
    }

    fn spawn(
        &self,
        index: Option<usize>,
        target: SimWebhook,
        delivery_id: String,
        body: Bytes,
        delay: Duration,
    ) {
        let Some(runtime) = &self.inner.runtime else {
            self.inner
                .finish(index, WebhookOutcome::Failed("no tokio runtime".to_owned()));
            return;
        };
        let pending = PendingDelivery::new(&self.inner);
        let inner = self.inner.clone();
        runtime.spawn(async move {
            let _pending = pending;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            inner
                .send(index, &target, &delivery_id, body, Stamp::Fresh)
                .await;
        });
    }

    async fn settled(&self) {
        let mut pending = self.inner.pending.subscribe();
        // The sender lives as long as `self`, so this only ends at zero.
        let _ = pending.wait_for(|n| *n == 0).await;
    }

    fn log(&self) -> Vec<SentWebhook> {
        lock(&self.inner.log).entries.clone()
    }

    async fn resend(&self, delivery_id: &str, fresh_timestamp: bool) -> Option<SentWebhook> {
        let target = lock(&self.inner.target).clone()?;
        let original = lock(&self.inner.log)
            .entries
            .iter()
            .find(|e| e.delivery_id == delivery_id)
            .cloned()?;
        // A never-sent original has no old timestamp to reuse: it gets a fresh one.
        let replay = !fresh_timestamp && original.outcome != WebhookOutcome::Dropped;
        let (stamp, delivery_id) = if replay {
            let stamp = Stamp::Reuse {
                timestamp: original.timestamp.clone(),
                signature: original.signature.clone(),
            };
            (stamp, original.delivery_id.clone())
        } else {
            (Stamp::Fresh, uuid::Uuid::new_v4().to_string())
        };
        let body = original.body.clone();
        let index = lock(&self.inner.log).push(SentWebhook {
            delivery_id: delivery_id.clone(),
            timestamp: None,
            signature: None,
            extra_delay: Duration::ZERO,
            duplicate: false,
            resent: true,
            outcome: WebhookOutcome::Pending,
            ..original
        });
        let _pending = PendingDelivery::new(&self.inner);
        self.inner
            .send(index, &target, &delivery_id, body, stamp)
            .await;
        index.and_then(|i| lock(&self.inner.log).entries.get(i).cloned())
    }
}

impl Log {
    /// Keeps the entry while there is room; its index, for the outcome.
    fn push(&mut self, entry: SentWebhook) -> Option<usize> {
        if self.entries.len() >= LOG_LIMIT {
            return None;
        }
        self.entries.push(entry);
        Some(self.entries.len() - 1)
    }
}

impl Inner {
    fn client(&self) -> Result<&reqwest::Client, String> {
        self.http
            .get_or_init(|| {
                reqwest::Client::builder()
                    .no_proxy()
                    .connect_timeout(DELIVERY_TIMEOUT)
                    .timeout(DELIVERY_TIMEOUT)
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Changes a kept log entry (an entry beyond the log limit has no index).
    fn update(&self, index: Option<usize>, change: impl FnOnce(&mut SentWebhook)) {
        let Some(index) = index else {
            return;
        };
        if let Some(entry) = lock(&self.log).entries.get_mut(index) {
            change(entry);
        }
    }

    fn finish(&self, index: Option<usize>, outcome: WebhookOutcome) {
        self.update(index, |entry| entry.outcome = outcome);
    }

    /// One POST; records the headers it carried and how it ended. No retry.
    async fn send(
        &self,
        index: Option<usize>,
        target: &SimWebhook,
        delivery_id: &str,
        body: Bytes,
        stamp: Stamp,
    ) {
        let (timestamp, signature) = match (stamp, &target.secret) {
            (
                Stamp::Reuse {
                    timestamp,
                    signature,
                },
                _,
            ) => (timestamp, signature),
            (Stamp::Fresh, Some(secret)) => {
                let timestamp = unix_now();
                let signature = sign(secret, &timestamp, &body);
                (Some(timestamp), Some(signature))
            }
            (Stamp::Fresh, None) => (None, None),
        };
        self.update(index, |entry| {
            entry.timestamp.clone_from(&timestamp);
            entry.signature.clone_from(&signature);
        });
        let client = match self.client() {
            Ok(client) => client,
            Err(error) => return self.finish(index, WebhookOutcome::Failed(error)),
        };
        let mut request = client
            .post(&target.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body);
        if let Some(name) = self.headers.delivery {
            request = request.header(name, delivery_id);
        }
        if let Some(timestamp) = timestamp {
            request = request.header(self.headers.timestamp, timestamp);
        }
        if let Some(signature) = signature {
            request = request.header(self.headers.signature, signature);
        }
        let outcome = match request.send().await {
            Ok(response) => WebhookOutcome::Answered(response.status().as_u16()),
            Err(error) => WebhookOutcome::Failed(error.to_string()),
        };
        self.finish(index, outcome);
    }
}

/// What both simulators offer for their webhooks (each also has its own `set_webhook`).
pub trait SimWebhooks {
    /// The simulator's delivery machinery.
    fn webhooks(&self) -> &Webhooks;

    /// Scripted chaos from now on (a fresh generator seeded with `chaos.seed`).
    fn set_webhook_chaos(&self, chaos: WebhookChaos) {
        self.webhooks().set_chaos(chaos);
    }

    /// Resolves once every delivery emitted so far has been attempted: answered, failed,
    /// or dropped. Emission happens before the action that caused it returns, so
    /// `act; webhooks_settled().await` sees the action's webhooks delivered.
    fn webhooks_settled(&self) -> impl Future<Output = ()> + Send {
        self.webhooks().settled()
    }

    /// Every delivery so far (up to 50 000), in the order the events were emitted.
    fn webhook_log(&self) -> Vec<SentWebhook> {
        self.webhooks().log()
    }

    /// Sends an earlier delivery's exact body again, now, to the current target: with
    /// `fresh_timestamp`, a new timestamp, signature and delivery id; without, the old
    /// headers unchanged (a replay). The new log entry, or `None` for an unknown delivery
    /// id or no target.
    fn resend(
        &self,
        delivery_id: &str,
        fresh_timestamp: bool,
    ) -> impl Future<Output = Option<SentWebhook>> + Send {
        self.webhooks().resend(delivery_id, fresh_timestamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chaos_is_deterministic_per_seed() {
        let settings = WebhookChaos {
            duplicate_probability: 0.3,
            drop_probability: 0.3,
            max_extra_delay: Duration::from_millis(50),
            seed: 7,
        };
        let plans = |settings| {
            let mut chaos = Chaos::new(settings);
            (0..50).map(|_| chaos.plan()).collect::<Vec<_>>()
        };
        let first = plans(settings);
        assert_eq!(first, plans(settings));
        assert!(first.iter().any(Vec::is_empty));
        assert!(first.iter().any(|p| p.len() == 2));
        assert!(
            first
                .iter()
                .all(|p| p.iter().all(|d| *d <= settings.max_extra_delay))
        );
        let calm = plans(WebhookChaos::default());
        assert!(calm.iter().all(|p| *p == vec![Duration::ZERO]));
    }
}
