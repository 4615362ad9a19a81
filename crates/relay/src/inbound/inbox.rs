//! Draining the webhook inbox: lock a batch of pending deliveries (SKIP LOCKED, so
//! several relays share the work), apply each in a savepoint, mark each with its outcome,
//! commit. A delivery whose apply fails is retried a few times, then marked `failed` for
//! an operator; an unreadable one is `ignored` with the reason.

use super::observe::{self, Observation};
use cons_chatwoot::WebhookEvent;
use cons_domain::sync::OnecEvent;
use cons_store::inbound::{self, InboxRow, InboxStatus, TicketKey};
use cons_store::{Pool, StoreError};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// Deliveries locked per transaction.
const BATCH: i64 = 50;
/// Attempts before a delivery that keeps failing is marked `failed`.
const MAX_ATTEMPTS: i32 = 5;

/// Applies pending deliveries until none is left; returns how many were handled.
pub async fn drain(pool: &Pool) -> Result<usize, StoreError> {
    let mut handled = 0;
    loop {
        let batch = drain_batch(pool).await?;
        handled += batch;
        if batch < BATCH as usize {
            return Ok(handled);
        }
    }
}

async fn drain_batch(pool: &Pool) -> Result<usize, StoreError> {
    let mut connection = pool.get().await.map_err(StoreError::from)?;
    let mut failures: Vec<(i64, String)> = Vec::new();
    let handled = connection
        .transaction::<usize, StoreError, _>(async |tx| {
            let rows = inbound::lock_pending(tx, BATCH).await?;
            for row in &rows {
                // A savepoint per delivery: one that fails does not undo the others.
                let outcome = tx
                    .transaction::<(InboxStatus, Option<String>), StoreError, _>(async |sp| {
                        apply(sp, row).await
                    })
                    .await;
                match outcome {
                    Ok((status, note)) => {
                        inbound::finish_delivery(tx, row.id, status, note.as_deref()).await?;
                    }
                    Err(error) => failures.push((row.id, error.to_string())),
                }
            }
            Ok(rows.len())
        })
        .await?;
    for (id, error) in failures {
        tracing::warn!(inbox_id = id, %error, "could not apply a webhook delivery");
        inbound::delivery_attempt_failed(&mut connection, id, MAX_ATTEMPTS, &error).await?;
    }
    Ok(handled)
}

/// Reads one delivery and applies what it shows.
async fn apply(
    tx: &mut AsyncPgConnection,
    row: &InboxRow,
) -> Result<(InboxStatus, Option<String>), StoreError> {
    let (key, observation) = match row.source.as_str() {
        "chatwoot" => {
            let event = match WebhookEvent::parse(&row.body) {
                Ok(event) => event,
                Err(error) => return Ok((InboxStatus::Ignored, Some(error.to_string()))),
            };
            match event.conversation().and_then(observe::chatwoot) {
                Some((key, observed)) => (key, Observation::Chatwoot(observed)),
                None => return Ok((InboxStatus::Ignored, Some("no conversation state".into()))),
            }
        }
        "onec" => match serde_json::from_value::<OnecEvent>(row.body.clone()) {
            Ok(event) => (
                TicketKey::Onec {
                    ref_key: event.data.ref_key,
                    cons_id: event.cons_id(),
                },
                Observation::Onec(event.observation()),
            ),
            Err(error) => return Ok((InboxStatus::Ignored, Some(error.to_string()))),
        },
        other => {
            return Ok((
                InboxStatus::Ignored,
                Some(format!("unknown source {other}")),
            ));
        }
    };
    let status = observe::apply(tx, key, &observation, "webhook").await?;
    let note = (status == InboxStatus::Ignored).then(|| "not one of our tickets".to_owned());
    Ok((status, note))
}

/// Drains on every notification and every `poll`, until shutdown.
pub async fn run(
    pool: Pool,
    wake: Arc<Notify>,
    poll: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let notified = wake.notified();
        match drain(&pool).await {
            Ok(0) => {}
            Ok(handled) => tracing::debug!(handled, "webhook deliveries applied"),
            Err(error) => tracing::warn!(%error, "could not drain the webhook inbox"),
        }
        tokio::select! {
            () = notified => {}
            () = tokio::time::sleep(poll) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}
