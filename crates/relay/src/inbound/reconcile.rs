//! Reconciliation: Chatwoot sends each webhook at most once, so every
//! `SYNC_RECONCILE_INTERVAL_MS` the relay reads, in small paced batches, the conversation
//! and the 1C document of every ticket still open or closed within the window, and feeds
//! them through the same apply as webhooks. It only reads from the peers; a ticket that
//! already agrees is not written at all, so a quiet system stays quiet.

use super::InboundSettings;
use super::observe::{self, Observation};
use cons_chatwoot::{ChatwootClient, ChatwootError};
use cons_onec::OnecClient;
use cons_store::inbound::{self, InboxStatus, ReconcileTarget};
use cons_store::{Pool, StoreError};
use diesel_async::AsyncConnection;
use tokio::sync::watch;
use uuid::Uuid;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReconcileReport {
    pub compared: usize,
    pub repaired: usize,
    pub unreachable: usize,
}

pub struct Reconciler {
    pub pool: Pool,
    pub chatwoot: ChatwootClient,
    pub onec: OnecClient,
    pub settings: InboundSettings,
}

impl Reconciler {
    /// One pass over every ticket in scope.
    pub async fn pass(&self) -> Result<ReconcileReport, StoreError> {
        let closed_since = chrono::Utc::now()
            - chrono::Duration::from_std(self.settings.reconcile_closed_within)
                .unwrap_or(chrono::Duration::days(7));
        let mut report = ReconcileReport::default();
        let mut after = Uuid::nil();
        loop {
            let batch = {
                let mut connection = self.pool.get().await.map_err(StoreError::from)?;
                inbound::reconcile_batch(
                    &mut connection,
                    after,
                    closed_since,
                    self.settings.reconcile_batch,
                )
                .await?
            };
            let Some(last) = batch.last() else {
                break;
            };
            after = last.cons_id;
            for ticket in &batch {
                self.compare(ticket, &mut report).await?;
            }
            // Paced, so a large backlog never bursts into the peers' rate limits.
            tokio::time::sleep(self.settings.reconcile_pause).await;
        }
        Ok(report)
    }

    async fn compare(
        &self,
        ticket: &ReconcileTarget,
        report: &mut ReconcileReport,
    ) -> Result<(), StoreError> {
        report.compared += 1;
        let mut observations = Vec::new();
        if let Some(id) = ticket
            .chatwoot_conversation_id
            .and_then(|id| u64::try_from(id).ok())
        {
            match self.chatwoot.get_conversation(id).await {
                Ok(conversation) => {
                    if let Some((key, observed)) = observe::chatwoot(&conversation) {
                        observations.push((key, Observation::Chatwoot(observed)));
                    }
                }
                Err(ChatwootError::NotFound) => {
                    tracing::warn!(cons_id = %ticket.cons_id, "the ticket's conversation no longer exists in Chatwoot");
                }
                Err(error) => {
                    report.unreachable += 1;
                    tracing::debug!(%error, "reconcile: Chatwoot unreachable");
                }
            }
        }
        if let Some(ref_key) = ticket.onec_ref_key {
            match self.onec.get_consultation(ref_key).await {
                Ok(Some(document)) => {
                    let (key, observed) = observe::onec(&document);
                    observations.push((key, Observation::Onec(observed)));
                }
                Ok(None) => {
                    tracing::warn!(cons_id = %ticket.cons_id, "the ticket's 1C document no longer exists");
                }
                Err(error) => {
                    report.unreachable += 1;
                    tracing::debug!(%error, "reconcile: 1C unreachable");
                }
            }
        }
        let mut connection = self.pool.get().await.map_err(StoreError::from)?;
        for (key, observation) in observations {
            let status = connection
                .transaction::<InboxStatus, StoreError, _>(async |tx| {
                    observe::apply(tx, key, &observation, "reconcile").await
                })
                .await?;
            report.repaired += usize::from(status == InboxStatus::Applied);
        }
        Ok(())
    }

    /// Deletes the handled webhook deliveries past their retention.
    pub async fn purge_inbox(&self) -> Result<usize, StoreError> {
        let before = chrono::Utc::now()
            - chrono::Duration::from_std(self.settings.webhook_retention)
                .unwrap_or(chrono::Duration::days(30));
        let mut connection = self.pool.get().await.map_err(StoreError::from)?;
        let purged = inbound::purge_handled(&mut connection, before).await?;
        if purged > 0 {
            tracing::info!(purged, "old webhook deliveries deleted");
        }
        Ok(purged)
    }

    /// Runs a pass every `reconcile_every` until shutdown.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        while super::idle(self.settings.reconcile_every, &mut shutdown).await {
            match self.pass().await {
                Ok(report) => {
                    metrics::counter!("reconcile_repairs_total").increment(report.repaired as u64);
                    tracing::info!(
                        compared = report.compared,
                        repaired = report.repaired,
                        unreachable = report.unreachable,
                        "reconciliation pass"
                    );
                }
                Err(error) => tracing::warn!(%error, "reconciliation pass failed"),
            }
            if let Err(error) = self.purge_inbox().await {
                tracing::warn!(%error, "could not purge old webhook deliveries");
            }
        }
    }
}
