//! Polling 1C: stock 1C:ЦЛ pushes nothing, so every `ONEC_POLL_INTERVAL_MS` the relay reads
//! the consultation documents changed since its watermark (`ДатаИзменения` plus `Ref_Key`
//! as the tie-breaker, kept in `sys.sync_cursors`), applies each that belongs to one of
//! our tickets, and moves the watermark, page by page. A restart continues from the
//! stored watermark; a document seen twice (a page boundary, a change meanwhile) is
//! recognised by its `DataVersion` and changes nothing.

use super::observe::{self, Observation};
use chrono::{DateTime, Duration as Span, Utc};
use cons_onec::{OnecClient, OnecError};
use cons_store::inbound::{self, InboxStatus};
use cons_store::{Pool, StoreError};
use diesel_async::AsyncConnection;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

const CURSOR: &str = "onec_poll";
/// Documents read per request.
const PAGE: u32 = 100;
/// Where a first poll starts: documents changed in the last day (older tickets have no
/// 1C document changes we could have missed that reconciliation would not repair).
const FIRST_LOOKBACK: Span = Span::days(1);
/// How far behind our clock the watermark stays. 1C stamps a change to the second (and
/// its clock may differ a little from ours), so a document can still change within a
/// second the watermark has reached, with a `Ref_Key` below the watermark's: keyed on
/// that second, it would be skipped. Documents of this window are read again by the next
/// pass and change nothing (their `DataVersion` is known).
const SETTLE: Span = Span::seconds(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    pub changed_at: DateTime<Utc>,
    pub ref_key: Uuid,
}

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("1C: {0}")]
    Onec(#[from] OnecError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PollReport {
    pub read: usize,
    pub applied: usize,
}

/// One pass: read every page changed since the watermark and apply it.
///
/// A database connection is taken only around the database work, never held while 1C
/// answers (a slow publication can take a minute, and the relay's pool is small).
pub async fn poll_once(pool: &Pool, client: &OnecClient) -> Result<PollReport, PollError> {
    let connection = || async { pool.get().await.map_err(StoreError::from) };
    let stored = inbound::read_cursor(&mut connection().await?, CURSOR)
        .await?
        .and_then(|value| serde_json::from_value::<Watermark>(value).ok());
    // Where this pass reads next: after the last document it read.
    let mut position = stored.unwrap_or(Watermark {
        changed_at: Utc::now() - FIRST_LOOKBACK,
        ref_key: Uuid::nil(),
    });
    let mut report = PollReport::default();
    loop {
        let page = client
            .consultations_changed_since((position.changed_at, position.ref_key), PAGE)
            .await?;
        let mut connection = connection().await?;
        for document in &page {
            let (key, observed) = observe::onec(document);
            let status = connection
                .transaction::<InboxStatus, StoreError, _>(async |tx| {
                    observe::apply(tx, key, &Observation::Onec(observed), "poll").await
                })
                .await?;
            report.read += 1;
            report.applied += usize::from(status == InboxStatus::Applied);
        }
        drop(connection);
        let Some(last) = page.last() else {
            break;
        };
        position = Watermark {
            changed_at: last.date_changed.unwrap_or(position.changed_at),
            ref_key: last.ref_key,
        };
        // Pages are in date order: after one ending in the future (a scheduled
        // consultation's `ДатаИзменения`, onec.md §8) only future ones follow.
        if page.len() < PAGE as usize || position.changed_at > Utc::now() {
            break;
        }
    }
    // The stored watermark never passes `SETTLE` before now: documents of a second that
    // may still see changes, and future-dated ones, are read again by the next passes
    // (and change nothing) until their time has passed, so nothing changed meanwhile is
    // skipped.
    let settled = Utc::now() - SETTLE;
    let watermark = if position.changed_at > settled {
        Watermark {
            changed_at: settled,
            ref_key: Uuid::nil(),
        }
    } else {
        position
    };
    if stored != Some(watermark) {
        inbound::write_cursor(
            &mut connection().await?,
            CURSOR,
            &serde_json::json!(watermark),
        )
        .await?;
    }
    metrics::counter!("onec_poll_total", "outcome" => "ok").increment(1);
    Ok(report)
}

/// Polls every `period` until shutdown.
pub async fn run(
    pool: Pool,
    client: OnecClient,
    period: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        match poll_once(&pool, &client).await {
            Ok(report) if report.read > 0 => {
                tracing::debug!(read = report.read, applied = report.applied, "1C polled");
            }
            Ok(_) => {}
            Err(error) => {
                metrics::counter!("onec_poll_total", "outcome" => "error").increment(1);
                tracing::warn!(%error, "polling 1C failed; the next pass retries from the same watermark");
            }
        }
        if !super::idle(period, &mut shutdown).await {
            return;
        }
    }
}
