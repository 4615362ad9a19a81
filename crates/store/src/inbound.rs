//! Changes coming back from Chatwoot and 1C: the webhook inbox (written by the API,
//! drained by the relay), the 1C polling cursor, and applying one observation to its
//! ticket in one transaction (ticket, history, outbox entries for the other side).

use crate::StoreError;
use crate::pool::PooledConnection;
use chrono::{DateTime, Utc};
use cons_domain::sync::{ChatwootView, OnecView, Outcome, Plan, TicketSync};
use cons_domain::{ChatwootStatus, ConsultationType, HistorySource, Target, TicketStatus};
use diesel::sql_types::{Bool, Int4, Int8, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel::{OptionalExtension, QueryableByName};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

/// The outbox kind that brings a peer in line with the ticket.
pub const SYNC_KIND: &str = "ticket.sync";

/// Where a webhook came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxSource {
    Chatwoot,
    Onec,
}

impl InboxSource {
    pub fn as_str(self) -> &'static str {
        match self {
            InboxSource::Chatwoot => "chatwoot",
            InboxSource::Onec => "onec",
        }
    }
}

/// A delivery to record.
pub struct Delivery<'a> {
    pub source: InboxSource,
    pub event: &'a str,
    pub dedup_key: &'a str,
    pub delivery_id: Option<&'a str>,
    /// The raw body, already known to be JSON.
    pub body: &'a str,
}

/// Records a delivery unless the same one was recorded before; true when it is new. The
/// caller wakes the relay afterwards (`wake::notify` with `Channel::Inbox`).
pub async fn record_webhook(
    connection: &mut PooledConnection,
    delivery: &Delivery<'_>,
) -> Result<bool, StoreError> {
    #[derive(QueryableByName)]
    struct Inserted {
        #[diesel(sql_type = Int8)]
        #[expect(dead_code, reason = "only its presence matters")]
        id: i64,
    }
    let inserted = crate::cached::Cached(
        diesel::sql_query(
            "INSERT INTO log.webhook_inbox (source, event, dedup_key, delivery_id, body)
             VALUES ($1, $2, $3, $4, $5::jsonb)
             ON CONFLICT (source, dedup_key) DO NOTHING
             RETURNING id",
        )
        .bind::<Text, _>(delivery.source.as_str())
        .bind::<Text, _>(delivery.event)
        .bind::<Text, _>(delivery.dedup_key)
        .bind::<Nullable<Text>, _>(delivery.delivery_id)
        .bind::<Text, _>(delivery.body),
    )
    .get_result::<Inserted>(connection)
    .await
    .optional()?;
    Ok(inserted.is_some())
}

/// A recorded delivery the relay has to apply.
#[derive(Debug, Clone, QueryableByName)]
pub struct InboxRow {
    #[diesel(sql_type = Int8)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub source: String,
    #[diesel(sql_type = Text)]
    pub event: String,
    #[diesel(sql_type = Jsonb)]
    pub body: serde_json::Value,
    #[diesel(sql_type = Int4)]
    pub attempts: i32,
}

/// Locks up to `limit` pending deliveries, oldest first, skipping those another relay
/// holds. Call inside a transaction; the locks last until it ends.
pub async fn lock_pending(
    tx: &mut AsyncPgConnection,
    limit: i64,
) -> Result<Vec<InboxRow>, StoreError> {
    Ok(crate::cached::Cached(
        diesel::sql_query(
            "SELECT id, source, event, body, attempts FROM log.webhook_inbox
         WHERE status = 'pending' ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind::<Int8, _>(limit),
    )
    .load(tx)
    .await?)
}

/// How a delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxStatus {
    Applied,
    Unchanged,
    Stale,
    /// Not about one of our tickets, or an event we do not act on.
    Ignored,
    /// Could not be applied after several attempts.
    Failed,
}

impl InboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InboxStatus::Applied => "applied",
            InboxStatus::Unchanged => "unchanged",
            InboxStatus::Stale => "stale",
            InboxStatus::Ignored => "ignored",
            InboxStatus::Failed => "failed",
        }
    }
}

impl From<Outcome> for InboxStatus {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Applied => InboxStatus::Applied,
            Outcome::Unchanged => InboxStatus::Unchanged,
            Outcome::Stale => InboxStatus::Stale,
        }
    }
}

pub async fn finish_delivery(
    tx: &mut AsyncPgConnection,
    id: i64,
    status: InboxStatus,
    note: Option<&str>,
) -> Result<(), StoreError> {
    crate::cached::Cached(diesel::sql_query(
        "UPDATE log.webhook_inbox SET status = $2, note = $3, processed_at = now() WHERE id = $1",
    )
    .bind::<Int8, _>(id)
    .bind::<Text, _>(status.as_str())
    .bind::<Nullable<Text>, _>(note))
    .execute(tx)
    .await?;
    Ok(())
}

/// Counts a failed attempt on a delivery, in its own statement outside the failed
/// transaction; after `max_attempts` it is `failed` for good.
pub async fn delivery_attempt_failed(
    connection: &mut PooledConnection,
    id: i64,
    max_attempts: i32,
    error: &str,
) -> Result<(), StoreError> {
    diesel::sql_query(
        "UPDATE log.webhook_inbox
         SET attempts = attempts + 1, note = $3,
             status = CASE WHEN attempts + 1 >= $2 THEN 'failed' ELSE status END,
             processed_at = CASE WHEN attempts + 1 >= $2 THEN now() ELSE processed_at END
         WHERE id = $1 AND status = 'pending'",
    )
    .bind::<Int8, _>(id)
    .bind::<Int4, _>(max_attempts)
    .bind::<Text, _>(error)
    .execute(connection)
    .await?;
    Ok(())
}

/// How to find the ticket an observation is about.
#[derive(Debug, Clone, Copy)]
pub enum TicketKey {
    /// The conversation id, else our ticket id from its custom attributes (a webhook can
    /// arrive before the relay has stored the conversation id).
    Chatwoot {
        conversation_id: i64,
        cons_id: Option<Uuid>,
    },
    /// The document's `Ref_Key`, else our ticket id from its marker.
    Onec {
        ref_key: Uuid,
        cons_id: Option<Uuid>,
    },
}

#[derive(QueryableByName)]
struct SyncRow {
    #[diesel(sql_type = SqlUuid)]
    cons_id: Uuid,
    #[diesel(sql_type = Text)]
    consultation_type: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    scheduled_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    ended_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    onec_number: Option<String>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    onec_manager_key: Option<Uuid>,
    #[diesel(sql_type = Nullable<Int8>)]
    chatwoot_assignee_id: Option<i64>,
    #[diesel(sql_type = Nullable<Int8>)]
    chatwoot_team_id: Option<i64>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    last_activity_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    chatwoot_status: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    chatwoot_scheduled_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    chatwoot_seen_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    onec_status: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    onec_scheduled_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    onec_seen_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    onec_data_version: Option<String>,
}

const SYNC_COLUMNS: &str = "cons_id, consultation_type, status, scheduled_at, ended_at, onec_number, \
    onec_manager_key, chatwoot_assignee_id, chatwoot_team_id, last_activity_at, chatwoot_status, \
    chatwoot_scheduled_at, chatwoot_seen_at, onec_status, onec_scheduled_at, onec_seen_at, onec_data_version";

impl SyncRow {
    fn into_sync(self) -> Result<(Uuid, TicketSync), StoreError> {
        let bad = |what: &str, value: &str| {
            StoreError::Query(diesel::result::Error::DeserializationError(
                format!("unexpected {what} {value:?} in cons.tickets").into(),
            ))
        };
        let status = |raw: &str| TicketStatus::parse(raw).map_err(|_| bad("status", raw));
        Ok((
            self.cons_id,
            TicketSync {
                consultation_type: ConsultationType::parse(&self.consultation_type)
                    .map_err(|_| bad("consultation type", &self.consultation_type))?,
                status: status(&self.status)?,
                scheduled_at: self.scheduled_at,
                ended_at: self.ended_at,
                onec_number: self.onec_number,
                onec_manager_key: self.onec_manager_key,
                chatwoot_assignee_id: self.chatwoot_assignee_id,
                chatwoot_team_id: self.chatwoot_team_id,
                last_activity_at: self.last_activity_at,
                chatwoot: ChatwootView {
                    status: self
                        .chatwoot_status
                        .as_deref()
                        .map(|raw| {
                            ChatwootStatus::parse(raw).map_err(|_| bad("Chatwoot status", raw))
                        })
                        .transpose()?,
                    scheduled_at: self.chatwoot_scheduled_at,
                    seen_at: self.chatwoot_seen_at,
                },
                onec: OnecView {
                    status: self.onec_status.as_deref().map(status).transpose()?,
                    scheduled_at: self.onec_scheduled_at,
                    seen_at: self.onec_seen_at,
                    data_version: self.onec_data_version,
                },
            },
        ))
    }
}

/// Locks the ticket an observation is about and reads its sync state; `None` when it is
/// not one of ours. A match on the external id wins over one on our id.
pub async fn lock_ticket(
    tx: &mut AsyncPgConnection,
    key: TicketKey,
) -> Result<Option<(Uuid, TicketSync)>, StoreError> {
    let row: Option<SyncRow> = match key {
        TicketKey::Chatwoot {
            conversation_id,
            cons_id,
        } => diesel::sql_query(format!(
            "SELECT {SYNC_COLUMNS} FROM cons.tickets
             WHERE chatwoot_conversation_id = $1 OR cons_id = $2
             ORDER BY chatwoot_conversation_id = $1 DESC NULLS LAST LIMIT 1 FOR UPDATE"
        ))
        .bind::<Int8, _>(conversation_id)
        .bind::<Nullable<SqlUuid>, _>(cons_id)
        .get_result(tx)
        .await
        .optional()?,
        TicketKey::Onec { ref_key, cons_id } => diesel::sql_query(format!(
            "SELECT {SYNC_COLUMNS} FROM cons.tickets
             WHERE onec_ref_key = $1 OR cons_id = $2
             ORDER BY onec_ref_key = $1 DESC NULLS LAST LIMIT 1 FOR UPDATE"
        ))
        .bind::<SqlUuid, _>(ref_key)
        .bind::<Nullable<SqlUuid>, _>(cons_id)
        .get_result(tx)
        .await
        .optional()?,
    };
    row.map(SyncRow::into_sync).transpose()
}

/// Writes a plan: the ticket's new sync state, its history lines, and one sync entry per
/// peer that must be brought in line (unless an identical one is already waiting).
pub async fn write_plan(
    tx: &mut AsyncPgConnection,
    cons_id: Uuid,
    plan: &Plan,
    source: HistorySource,
    actor: &str,
) -> Result<(), StoreError> {
    let next = &plan.next;
    diesel::sql_query(
        "UPDATE cons.tickets SET
            status = $2, scheduled_at = $3, ended_at = $4, onec_number = $5, onec_manager_key = $6,
            chatwoot_assignee_id = $7, chatwoot_team_id = $8, last_activity_at = $9,
            chatwoot_status = $10, chatwoot_scheduled_at = $11, chatwoot_seen_at = $12,
            onec_status = $13, onec_scheduled_at = $14, onec_seen_at = $15, onec_data_version = $16,
            updated_at = CASE WHEN $17 THEN now() ELSE updated_at END
         WHERE cons_id = $1",
    )
    .bind::<SqlUuid, _>(cons_id)
    .bind::<Text, _>(next.status.as_str())
    .bind::<Nullable<Timestamptz>, _>(next.scheduled_at)
    .bind::<Nullable<Timestamptz>, _>(next.ended_at)
    .bind::<Nullable<Text>, _>(next.onec_number.as_deref())
    .bind::<Nullable<SqlUuid>, _>(next.onec_manager_key)
    .bind::<Nullable<Int8>, _>(next.chatwoot_assignee_id)
    .bind::<Nullable<Int8>, _>(next.chatwoot_team_id)
    .bind::<Nullable<Timestamptz>, _>(next.last_activity_at)
    .bind::<Nullable<Text>, _>(next.chatwoot.status.map(ChatwootStatus::as_str))
    .bind::<Nullable<Timestamptz>, _>(next.chatwoot.scheduled_at)
    .bind::<Nullable<Timestamptz>, _>(next.chatwoot.seen_at)
    .bind::<Nullable<Text>, _>(next.onec.status.map(TicketStatus::as_str))
    .bind::<Nullable<Timestamptz>, _>(next.onec.scheduled_at)
    .bind::<Nullable<Timestamptz>, _>(next.onec.seen_at)
    .bind::<Nullable<Text>, _>(next.onec.data_version.as_deref())
    .bind::<Bool, _>(!plan.changes.is_empty())
    .execute(tx)
    .await?;
    for change in &plan.changes {
        diesel::sql_query(
            "INSERT INTO cons.ticket_history (cons_id, field, old_value, new_value, source, actor)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind::<SqlUuid, _>(cons_id)
        .bind::<Text, _>(change.field)
        .bind::<Nullable<Text>, _>(change.old.as_deref())
        .bind::<Nullable<Text>, _>(change.new.as_deref())
        .bind::<Text, _>(source.as_str())
        .bind::<Text, _>(actor)
        .execute(tx)
        .await?;
    }
    if let Some(push) = plan.push_chatwoot {
        let payload = serde_json::json!({ "status": push.status.map(ChatwootStatus::as_str) });
        enqueue_sync(tx, cons_id, Target::Chatwoot, &payload).await?;
    }
    if plan.push_onec {
        enqueue_sync(tx, cons_id, Target::Onec, &serde_json::json!({})).await?;
    }
    Ok(())
}

/// Enqueues a sync entry unless an identical one is still waiting untouched (it will
/// read the ticket as it is when delivered), and wakes the relay on commit.
async fn enqueue_sync(
    tx: &mut AsyncPgConnection,
    cons_id: Uuid,
    target: Target,
    payload: &serde_json::Value,
) -> Result<(), StoreError> {
    diesel::sql_query(
        "WITH ins AS (
             INSERT INTO sys.outbox (cons_id, target, kind, payload)
             SELECT $1, $2, $3, $4
             WHERE NOT EXISTS (
                 SELECT 1 FROM sys.outbox
                 WHERE cons_id = $1 AND target = $2 AND kind = $3 AND status = 'pending'
                   AND attempts = 0 AND payload = $4)
             RETURNING cons_id)
         UPDATE cons.tickets t
         SET sync_chatwoot = CASE WHEN $2 = 'chatwoot' AND sync_chatwoot = 'delivered' THEN 'pending' ELSE sync_chatwoot END,
             sync_onec = CASE WHEN $2 = 'onec' AND sync_onec = 'delivered' THEN 'pending' ELSE sync_onec END
         FROM ins WHERE t.cons_id = ins.cons_id",
    )
    .bind::<SqlUuid, _>(cons_id)
    .bind::<Text, _>(target.as_str())
    .bind::<Text, _>(SYNC_KIND)
    .bind::<Jsonb, _>(payload)
    .execute(tx)
    .await?;
    diesel::sql_query("SELECT pg_notify($1, '')")
        .bind::<Text, _>(crate::wake::Channel::Outbox.name())
        .execute(tx)
        .await?;
    Ok(())
}

/// A named cursor the relay keeps between runs.
pub async fn read_cursor(
    connection: &mut PooledConnection,
    name: &str,
) -> Result<Option<serde_json::Value>, StoreError> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Jsonb)]
        value: serde_json::Value,
    }
    let row: Option<Row> = diesel::sql_query("SELECT value FROM sys.sync_cursors WHERE name = $1")
        .bind::<Text, _>(name)
        .get_result(connection)
        .await
        .optional()?;
    Ok(row.map(|r| r.value))
}

pub async fn write_cursor(
    connection: &mut PooledConnection,
    name: &str,
    value: &serde_json::Value,
) -> Result<(), StoreError> {
    diesel::sql_query(
        "INSERT INTO sys.sync_cursors (name, value) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
         WHERE sys.sync_cursors.value IS DISTINCT FROM EXCLUDED.value",
    )
    .bind::<Text, _>(name)
    .bind::<Jsonb, _>(value)
    .execute(connection)
    .await?;
    Ok(())
}

/// A ticket reconciliation compares with its peers.
#[derive(Debug, Clone, QueryableByName)]
pub struct ReconcileTarget {
    #[diesel(sql_type = SqlUuid)]
    pub cons_id: Uuid,
    #[diesel(sql_type = Nullable<Int8>)]
    pub chatwoot_conversation_id: Option<i64>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub onec_ref_key: Option<Uuid>,
}

/// The next `limit` tickets after `after` that are open, or closed within `closed_within`
/// (Chatwoot reopens a conversation when the client writes again), and exist at a peer.
pub async fn reconcile_batch(
    connection: &mut PooledConnection,
    after: Uuid,
    closed_since: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<ReconcileTarget>, StoreError> {
    Ok(diesel::sql_query(
        "SELECT cons_id, chatwoot_conversation_id, onec_ref_key FROM cons.tickets
         WHERE (status IN ('new', 'open', 'pending') OR ended_at IS NOT NULL)
           AND cons_id > $1
           AND (status IN ('new', 'open', 'pending') OR ended_at >= $2)
           AND (chatwoot_conversation_id IS NOT NULL OR onec_ref_key IS NOT NULL)
         ORDER BY cons_id LIMIT $3",
    )
    .bind::<SqlUuid, _>(after)
    .bind::<Timestamptz, _>(closed_since)
    .bind::<Int8, _>(limit)
    .load(connection)
    .await?)
}

/// Deletes handled deliveries received before `before` (they hold message text, which is
/// personal data, and de-duplication only needs the sender's retry horizon); pending and
/// failed ones stay for the operator. Returns how many were deleted.
pub async fn purge_handled(
    connection: &mut PooledConnection,
    before: DateTime<Utc>,
) -> Result<usize, StoreError> {
    Ok(diesel::sql_query(
        "DELETE FROM log.webhook_inbox
         WHERE received_at < $1 AND status IN ('applied', 'unchanged', 'stale', 'ignored')",
    )
    .bind::<Timestamptz, _>(before)
    .execute(connection)
    .await?)
}
