//! Changes flowing back: the relay drains the webhook inbox the API fills, polls 1C for
//! documents changed since its watermark (stock 1C pushes nothing), and periodically
//! reconciles open and recently closed tickets with both peers, so a webhook lost for
//! good is healed within one interval. Every path ends in `observe::apply`, one
//! transaction per change.

pub mod inbox;
pub mod observe;
pub mod poll;
pub mod reconcile;

use std::time::Duration;

/// How the inbound loops run (`SYNC_RECONCILE_INTERVAL_MS`, `ONEC_POLL_INTERVAL_MS`,
/// `SYNC_RECONCILE_CLOSED_DAYS`, `WEBHOOK_RETENTION_DAYS`).
#[derive(Debug, Clone)]
pub struct InboundSettings {
    /// How often the inbox is checked when no notification arrives.
    pub inbox_poll: Duration,
    pub onec_poll: Duration,
    pub reconcile_every: Duration,
    /// Closed tickets are reconciled this long after they closed (Chatwoot reopens a
    /// conversation when the client writes again).
    pub reconcile_closed_within: Duration,
    /// Tickets compared per batch; the reconciler pauses between batches.
    pub reconcile_batch: i64,
    pub reconcile_pause: Duration,
    /// Handled webhook deliveries are deleted this long after they arrived.
    pub webhook_retention: Duration,
}

impl Default for InboundSettings {
    fn default() -> Self {
        InboundSettings {
            inbox_poll: Duration::from_secs(1),
            onec_poll: Duration::from_secs(30),
            reconcile_every: Duration::from_secs(300),
            reconcile_closed_within: Duration::from_secs(7 * 24 * 3600),
            reconcile_batch: 50,
            reconcile_pause: Duration::from_millis(200),
            webhook_retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// Sleeps for `period` or until shutdown; false on shutdown.
pub(crate) async fn idle(
    period: Duration,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) -> bool {
    if *shutdown.borrow() {
        return false;
    }
    tokio::select! {
        () = tokio::time::sleep(period) => !*shutdown.borrow(),
        _ = shutdown.changed() => false,
    }
}
