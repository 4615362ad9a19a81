//! Reading the outbox for operators: listing entries and showing one with its attempts.
//! (Entries are written with their ticket, in `tickets::create`; the relay claims them.)

use crate::schema::{outbox, outbox_attempts};
use crate::{StoreError, pool::PooledConnection};
use chrono::{DateTime, Utc};
use cons_domain::{OutboxStatus, Target};
use diesel::QueryableByName;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Serialize;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, Queryable, Selectable)]
#[diesel(table_name = outbox)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct OutboxEntry {
    pub id: i64,
    pub target: String,
    pub kind: String,
    pub status: String,
    pub attempts: i32,
    pub cons_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Queryable, Selectable)]
#[diesel(table_name = outbox_attempts)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct Attempt {
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub outcome: String,
    pub http_status: Option<i16>,
    pub error: Option<String>,
}

/// One entry with everything an operator needs to judge it.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxDetail {
    #[serde(flatten)]
    pub entry: OutboxEntry,
    pub payload: serde_json::Value,
    pub attempt_log: Vec<Attempt>,
}

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<OutboxStatus>,
    pub target: Option<Target>,
    pub cons_id: Option<Uuid>,
    pub limit: i64,
}

/// Entries matching `filter`, oldest first.
pub async fn list(
    connection: &mut PooledConnection,
    filter: &ListFilter,
) -> Result<Vec<OutboxEntry>, StoreError> {
    let mut query = outbox::table
        .select(OutboxEntry::as_select())
        .order(outbox::id.asc())
        .limit(filter.limit)
        .into_boxed();
    if let Some(status) = filter.status {
        query = query.filter(outbox::status.eq(status.as_str()));
    }
    if let Some(target) = filter.target {
        query = query.filter(outbox::target.eq(target.as_str()));
    }
    if let Some(cons_id) = filter.cons_id {
        query = query.filter(outbox::cons_id.eq(cons_id));
    }
    Ok(query.load(connection).await?)
}

pub async fn show(
    connection: &mut PooledConnection,
    id: i64,
) -> Result<Option<OutboxDetail>, StoreError> {
    let found = outbox::table
        .find(id)
        .select((OutboxEntry::as_select(), outbox::payload))
        .first::<(OutboxEntry, serde_json::Value)>(connection)
        .await
        .optional()?;
    let Some((entry, payload)) = found else {
        return Ok(None);
    };
    let attempt_log = outbox_attempts::table
        .filter(outbox_attempts::outbox_id.eq(id))
        .order(outbox_attempts::attempt.asc())
        .select(Attempt::as_select())
        .load(connection)
        .await?;
    Ok(Some(OutboxDetail {
        entry,
        payload,
        attempt_log,
    }))
}

// ---- the relay's side: claim, then complete under the lease -------------------------

/// An entry a relay worker holds under a lease.
#[derive(Debug, Clone, QueryableByName)]
pub struct Claimed {
    #[diesel(sql_type = diesel::sql_types::Int8)]
    pub id: i64,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub cons_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub target: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub kind: String,
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    pub payload: serde_json::Value,
    /// Attempts including this one.
    #[diesel(sql_type = diesel::sql_types::Int4)]
    pub attempts: i32,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub lease_token: Uuid,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    pub created_at: DateTime<Utc>,
    /// When this attempt was claimed (database clock).
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    pub claimed_at: DateTime<Utc>,
}

/// Claims up to `limit` due entries of `targets` for `owner` in one short transaction
/// (one statement), leasing them for `lease`.
///
/// Due: `pending` whose time has come, or `in_flight` whose lease expired (its worker
/// died). Only the head of each (ticket, target) is due: an entry waits while an older
/// one of its ticket and target is undelivered (in flight, pending or dead), so one
/// ticket's effects reach a peer in order. That check comes before the `LIMIT`: entries
/// held back are often the ones due longest (a follow-up behind a retried entry), and a
/// limit taken first could fill with them and find nothing, every time. An entry, once
/// at the head, stays there (older entries only move towards delivered), so the check
/// needs no repeating under the lock. The time and status conditions are repeated in the
/// locking query because `FOR UPDATE` re-checks only its own `WHERE` against the newest
/// row version when a concurrent worker changed the row. Rows are found by id through
/// `= ANY (ARRAY(…))`, which plans as primary-key look-ups also without knowing the
/// limit, so the statement can be planned once per connection (`generic_plans`).
pub async fn claim(
    connection: &mut PooledConnection,
    owner: &str,
    targets: &[Target],
    limit: i64,
    lease: std::time::Duration,
) -> Result<Vec<Claimed>, StoreError> {
    const CLAIM_SQL: &str = r#"
WITH candidates AS (
    (SELECT o.id FROM sys.outbox o
     WHERE o.status = 'pending' AND o.next_attempt_at <= now() AND o.target = ANY($1)
       AND NOT EXISTS (
           SELECT 1 FROM sys.outbox older
           WHERE older.cons_id = o.cons_id AND older.target = o.target
             AND older.id < o.id AND older.status <> 'delivered')
     ORDER BY o.next_attempt_at, o.id LIMIT $2)
    UNION ALL
    (SELECT id FROM sys.outbox
     WHERE status = 'in_flight' AND lease_expires_at <= now() AND target = ANY($1)
     ORDER BY lease_expires_at LIMIT $2)
), due AS (
    SELECT o.id FROM sys.outbox o
    WHERE o.id = ANY (ARRAY(SELECT id FROM candidates))
      AND ((o.status = 'pending' AND o.next_attempt_at <= now())
           OR (o.status = 'in_flight' AND o.lease_expires_at <= now()))
    ORDER BY o.id
    LIMIT $2
    FOR UPDATE OF o SKIP LOCKED
)
UPDATE sys.outbox o
SET status = 'in_flight', attempts = o.attempts + 1, lease_owner = $3,
    lease_token = gen_random_uuid(), lease_expires_at = now() + make_interval(secs => $4)
WHERE o.id = ANY (ARRAY(SELECT id FROM due))
RETURNING o.id, o.cons_id, o.target, o.kind, o.payload, o.attempts, o.lease_token, o.created_at,
          now() AS claimed_at
"#;
    let targets: Vec<&str> = targets.iter().map(|t| t.as_str()).collect();
    let mut claimed = crate::cached::Cached(
        diesel::sql_query(CLAIM_SQL)
            .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(targets)
            .bind::<diesel::sql_types::Int8, _>(limit)
            .bind::<diesel::sql_types::Text, _>(owner)
            .bind::<diesel::sql_types::Double, _>(lease.as_secs_f64()),
    )
    .load::<Claimed>(connection)
    .await?;
    claimed.sort_by_key(|c| c.id);
    Ok(claimed)
}

/// How one attempt ended, as the relay records it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The peer has the effect. `effect` says what to write back to the ticket.
    Delivered { effect: Effect },
    /// Try again after `delay` (computed by the relay: backoff or `Retry-After`).
    Retry {
        delay: std::time::Duration,
        error: String,
        http_status: Option<u16>,
    },
    /// Give up: a permanent refusal, or the attempts are used up.
    Dead {
        error: String,
        http_status: Option<u16>,
    },
}

/// What a delivered entry changes on our side, written in the transaction that completes
/// the entry so that ids and sync state never disagree with the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Nothing beyond marking the entry delivered.
    None,
    /// The ticket exists in Chatwoot.
    ChatwootTicket {
        contact_id: i64,
        conversation_id: i64,
    },
    /// The ticket exists in 1C; its number must then reach the Chatwoot conversation,
    /// so a follow-up Chatwoot entry is enqueued.
    OnecTicket {
        counterparty_key: Uuid,
        ref_key: Uuid,
        number: String,
    },
    /// The conversation now holds this status and scheduled date (what a sync wrote or
    /// found there), so their echoes are recognised.
    ChatwootSynced {
        status: cons_domain::ChatwootStatus,
        scheduled_at: Option<DateTime<Utc>>,
    },
    /// The 1C document now holds this scheduled date.
    OnecSynced { scheduled_at: Option<DateTime<Utc>> },
}

/// Records the outcomes of a batch in one transaction of a few set-based statements,
/// whatever the batch size. Each outbox update matches the lease token the entry was
/// claimed with, so a worker whose lease expired (and whose entry another worker may have
/// taken) changes nothing, and its effects are not written either. Returns the lease
/// tokens whose outcome was recorded: a worker can hold two results for one entry (its
/// own expired claim and the claim after it), and only the current one counts.
pub async fn complete(
    connection: &mut PooledConnection,
    results: &[(Claimed, Outcome)],
) -> Result<Vec<Uuid>, StoreError> {
    use diesel_async::AsyncConnection;
    if results.is_empty() {
        return Ok(Vec::new());
    }
    connection
        .transaction::<Vec<Uuid>, StoreError, _>(async |tx| {
            let recorded = record_outcomes(tx, results).await?;
            let delivered: Vec<&(Claimed, Outcome)> = results
                .iter()
                .filter(|(entry, outcome)| {
                    recorded.contains(&entry.lease_token)
                        && matches!(outcome, Outcome::Delivered { .. })
                })
                .collect();
            write_effects(tx, &delivered).await?;
            let touched: Vec<&Claimed> = results
                .iter()
                .map(|(entry, _)| entry)
                .filter(|e| recorded.contains(&e.lease_token))
                .collect();
            refresh_sync_state(tx, &touched).await?;
            Ok(recorded)
        })
        .await
}

#[derive(QueryableByName)]
struct RecordedToken {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    token: Uuid,
}

/// Moves each entry to its new status and logs the attempt, fenced by the lease token.
/// Returns the tokens that matched.
async fn record_outcomes(
    tx: &mut diesel_async::AsyncPgConnection,
    results: &[(Claimed, Outcome)],
) -> Result<Vec<Uuid>, StoreError> {
    use diesel::sql_types::{
        Array, Int2, Int4, Int8, Nullable, Text, Timestamptz, Uuid as SqlUuid,
    };
    let mut ids = Vec::with_capacity(results.len());
    let mut tokens = Vec::with_capacity(results.len());
    let mut statuses = Vec::with_capacity(results.len());
    let mut delays_ms = Vec::with_capacity(results.len());
    let mut errors: Vec<Option<&str>> = Vec::with_capacity(results.len());
    let mut http_statuses: Vec<Option<i16>> = Vec::with_capacity(results.len());
    let mut attempts = Vec::with_capacity(results.len());
    let mut started = Vec::with_capacity(results.len());
    for (entry, outcome) in results {
        let (status, delay, error, http_status) = match outcome {
            Outcome::Delivered { .. } => ("delivered", 0, None, None),
            Outcome::Retry {
                delay,
                error,
                http_status,
            } => (
                "pending",
                i64::try_from(delay.as_millis()).unwrap_or(i64::MAX),
                Some(error.as_str()),
                *http_status,
            ),
            Outcome::Dead { error, http_status } => ("dead", 0, Some(error.as_str()), *http_status),
        };
        ids.push(entry.id);
        tokens.push(entry.lease_token);
        statuses.push(status);
        delays_ms.push(delay);
        errors.push(error);
        http_statuses.push(http_status.and_then(|s| i16::try_from(s).ok()));
        attempts.push(entry.attempts);
        started.push(entry.claimed_at);
    }
    let recorded = crate::cached::Cached(diesel::sql_query(
        r#"
WITH input AS (
    SELECT * FROM unnest($1::int8[], $2::uuid[], $3::text[], $4::int8[], $5::text[], $6::int2[], $7::int4[], $8::timestamptz[])
        AS i(id, token, status, delay_ms, error, http_status, attempt, started_at)
), updated AS (
    UPDATE sys.outbox o
    SET status = i.status,
        next_attempt_at = CASE WHEN i.status = 'pending'
                               THEN now() + i.delay_ms * interval '1 millisecond'
                               ELSE o.next_attempt_at END,
        delivered_at = CASE WHEN i.status = 'delivered' THEN now() END,
        last_error = COALESCE(i.error, o.last_error),
        lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
    FROM input i
    -- The token is the fence: an entry has one only while in flight (a CHECK holds it).
    -- Matching on status as well offered the planner the in-flight index, and a plan
    -- made while statistics counted few entries in flight compared every entry in flight
    -- with every outcome.
    WHERE o.id = i.id AND o.lease_token = i.token
    RETURNING o.id, i.token
), attempts AS (
    INSERT INTO sys.outbox_attempts (outbox_id, attempt, started_at, outcome, http_status, error)
    SELECT i.id, i.attempt, i.started_at,
           CASE i.status WHEN 'pending' THEN 'retry' ELSE i.status END, i.http_status, i.error
    FROM input i JOIN updated u ON u.token = i.token
    ON CONFLICT (outbox_id, attempt) DO NOTHING
)
SELECT token FROM updated
"#,
    )
    .bind::<Array<Int8>, _>(ids)
    .bind::<Array<SqlUuid>, _>(tokens)
    .bind::<Array<Text>, _>(statuses)
    .bind::<Array<Int8>, _>(delays_ms)
    .bind::<Array<Nullable<Text>>, _>(errors)
    .bind::<Array<Nullable<Int2>>, _>(http_statuses)
    .bind::<Array<Int4>, _>(attempts)
    .bind::<Array<Timestamptz>, _>(started))
    .load::<RecordedToken>(tx)
    .await?;
    Ok(recorded.into_iter().map(|r| r.token).collect())
}

/// Writes what delivered entries created at the peers: external ids on the ticket and the
/// client, a history row per new external id, and follow-up entries.
/// Records what a sync delivery left at the peer. Syncs are rare (a human changed
/// something), so one statement per entry is fine here.
async fn write_peer_views(
    tx: &mut diesel_async::AsyncPgConnection,
    delivered: &[&(Claimed, Outcome)],
) -> Result<(), StoreError> {
    use diesel::sql_types::{Nullable, Text, Timestamptz, Uuid as SqlUuid};
    for (entry, outcome) in delivered {
        match outcome {
            Outcome::Delivered {
                effect:
                    Effect::ChatwootSynced {
                        status,
                        scheduled_at,
                    },
            } => {
                diesel::sql_query(
                    "UPDATE cons.tickets SET chatwoot_status = $2, chatwoot_scheduled_at = $3
                     WHERE cons_id = $1",
                )
                .bind::<SqlUuid, _>(entry.cons_id)
                .bind::<Text, _>(status.as_str())
                .bind::<Nullable<Timestamptz>, _>(*scheduled_at)
                .execute(tx)
                .await?;
            }
            Outcome::Delivered {
                effect: Effect::OnecSynced { scheduled_at },
            } => {
                diesel::sql_query(
                    "UPDATE cons.tickets SET onec_scheduled_at = $2 WHERE cons_id = $1",
                )
                .bind::<SqlUuid, _>(entry.cons_id)
                .bind::<Nullable<Timestamptz>, _>(*scheduled_at)
                .execute(tx)
                .await?;
            }
            _ => {}
        }
    }
    Ok(())
}

async fn write_effects(
    tx: &mut diesel_async::AsyncPgConnection,
    delivered: &[&(Claimed, Outcome)],
) -> Result<(), StoreError> {
    use diesel::sql_types::{Array, Int8, Nullable, Text, Uuid as SqlUuid};
    let mut cons_ids = Vec::new();
    let mut contacts: Vec<Option<i64>> = Vec::new();
    let mut conversations: Vec<Option<i64>> = Vec::new();
    let mut counterparties: Vec<Option<Uuid>> = Vec::new();
    let mut ref_keys: Vec<Option<Uuid>> = Vec::new();
    let mut numbers: Vec<Option<&str>> = Vec::new();
    for (entry, outcome) in delivered {
        let Outcome::Delivered { effect } = outcome else {
            continue;
        };
        match effect {
            Effect::None | Effect::ChatwootSynced { .. } | Effect::OnecSynced { .. } => continue,
            Effect::ChatwootTicket {
                contact_id,
                conversation_id,
            } => {
                cons_ids.push(entry.cons_id);
                contacts.push(Some(*contact_id));
                conversations.push(Some(*conversation_id));
                counterparties.push(None);
                ref_keys.push(None);
                numbers.push(None);
            }
            Effect::OnecTicket {
                counterparty_key,
                ref_key,
                number,
            } => {
                cons_ids.push(entry.cons_id);
                contacts.push(None);
                conversations.push(None);
                counterparties.push(Some(*counterparty_key));
                ref_keys.push(Some(*ref_key));
                numbers.push(Some(number.as_str()));
            }
        }
    }
    write_peer_views(tx, delivered).await?;
    if cons_ids.is_empty() {
        return Ok(());
    }
    crate::cached::Cached(diesel::sql_query(
        r#"
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::int8[], $3::int8[], $4::uuid[], $5::uuid[], $6::text[])
        AS i(cons_id, contact_id, conversation_id, counterparty_key, ref_key, number)
), per_ticket AS (
    SELECT cons_id, max(conversation_id) AS conversation_id, max(ref_key::text)::uuid AS ref_key,
           max(number) AS number
    FROM input GROUP BY cons_id
), before AS (
    SELECT t.cons_id, t.status, t.chatwoot_conversation_id, t.onec_ref_key, t.onec_number
    FROM cons.tickets t JOIN per_ticket p USING (cons_id)
), tickets AS (
    UPDATE cons.tickets t
    SET chatwoot_conversation_id = COALESCE(p.conversation_id, t.chatwoot_conversation_id),
        -- "new" means "not yet in Chatwoot": the conversation exists now, open.
        status = CASE WHEN t.status = 'new' AND p.conversation_id IS NOT NULL THEN 'open' ELSE t.status END,
        -- What the new conversation holds, unless a webhook has already shown it.
        chatwoot_status = CASE WHEN p.conversation_id IS NOT NULL AND t.chatwoot_seen_at IS NULL
                               THEN COALESCE(t.chatwoot_status, 'open') ELSE t.chatwoot_status END,
        chatwoot_scheduled_at = CASE WHEN p.conversation_id IS NOT NULL AND t.chatwoot_seen_at IS NULL
                                     THEN t.scheduled_at ELSE t.chatwoot_scheduled_at END,
        -- The date the new 1C document was booked for (the client's, else the creation
        -- time, to the second as 1C keeps it), so 1C's default is not taken for a change.
        onec_scheduled_at = CASE WHEN p.ref_key IS NOT NULL AND t.onec_seen_at IS NULL
                                 THEN date_trunc('second', COALESCE(t.scheduled_at, t.created_at))
                                 ELSE t.onec_scheduled_at END,
        onec_ref_key = COALESCE(p.ref_key, t.onec_ref_key),
        onec_number = COALESCE(p.number, t.onec_number),
        updated_at = now()
    FROM per_ticket p WHERE t.cons_id = p.cons_id
), history AS (
    INSERT INTO cons.ticket_history (cons_id, field, old_value, new_value, source, actor)
    SELECT b.cons_id, 'chatwoot_conversation_id', b.chatwoot_conversation_id::text, p.conversation_id::text, 'chatwoot', 'relay'
    FROM before b JOIN per_ticket p USING (cons_id)
    WHERE p.conversation_id IS DISTINCT FROM b.chatwoot_conversation_id AND p.conversation_id IS NOT NULL
    UNION ALL
    SELECT b.cons_id, 'onec_number', b.onec_number, p.number, 'onec', 'relay'
    FROM before b JOIN per_ticket p USING (cons_id)
    WHERE p.number IS DISTINCT FROM b.onec_number AND p.number IS NOT NULL
    UNION ALL
    SELECT b.cons_id, 'status', b.status, 'open', 'chatwoot', 'relay'
    FROM before b JOIN per_ticket p USING (cons_id)
    WHERE b.status = 'new' AND p.conversation_id IS NOT NULL
), clients AS (
    UPDATE cons.clients c
    SET chatwoot_contact_id = COALESCE(c.chatwoot_contact_id, p.contact_id),
        onec_counterparty_key = COALESCE(c.onec_counterparty_key, p.counterparty_key),
        updated_at = now()
    FROM (SELECT t.client_id, max(i.contact_id) AS contact_id,
                 max(i.counterparty_key::text)::uuid AS counterparty_key
          FROM input i JOIN cons.tickets t USING (cons_id) GROUP BY t.client_id) p
    WHERE c.client_id = p.client_id
), follow_ups AS (
    INSERT INTO sys.outbox (cons_id, target, kind, payload)
    SELECT cons_id, 'chatwoot', 'ticket.onec_number', jsonb_build_object('number', number)
    FROM input WHERE number IS NOT NULL
)
SELECT 1
"#,
    )
    .bind::<Array<SqlUuid>, _>(cons_ids)
    .bind::<Array<Nullable<Int8>>, _>(contacts)
    .bind::<Array<Nullable<Int8>>, _>(conversations)
    .bind::<Array<Nullable<SqlUuid>>, _>(counterparties)
    .bind::<Array<Nullable<SqlUuid>>, _>(ref_keys)
    .bind::<Array<Nullable<Text>>, _>(numbers))
    .execute(tx)
    .await?;
    Ok(())
}

/// Recomputes the ticket's `sync_<target>` from the outbox entries of each touched
/// (ticket, target): dead if any is dead, failed if one is being retried, pending while
/// any is undelivered, else delivered.
async fn refresh_sync_state(
    tx: &mut diesel_async::AsyncPgConnection,
    touched: &[&Claimed],
) -> Result<(), StoreError> {
    use diesel::sql_types::{Array, Text, Uuid as SqlUuid};
    if touched.is_empty() {
        return Ok(());
    }
    let cons_ids: Vec<Uuid> = touched.iter().map(|e| e.cons_id).collect();
    let targets: Vec<&str> = touched.iter().map(|e| e.target.as_str()).collect();
    crate::cached::Cached(diesel::sql_query(
        r#"
WITH touched AS (
    SELECT DISTINCT * FROM unnest($1::uuid[], $2::text[]) AS t(cons_id, target)
), state AS (
    SELECT o.cons_id, o.target,
           CASE WHEN bool_or(o.status = 'dead') THEN 'dead'
                WHEN bool_or(o.status IN ('pending', 'in_flight') AND o.last_error IS NOT NULL) THEN 'failed'
                WHEN bool_or(o.status IN ('pending', 'in_flight')) THEN 'pending'
                ELSE 'delivered' END AS sync
    FROM sys.outbox o JOIN touched USING (cons_id, target)
    GROUP BY o.cons_id, o.target
), per_ticket AS (
    SELECT cons_id, max(sync) FILTER (WHERE target = 'chatwoot') AS chatwoot,
           max(sync) FILTER (WHERE target = 'onec') AS onec
    FROM state GROUP BY cons_id
)
UPDATE cons.tickets t
SET sync_chatwoot = COALESCE(p.chatwoot, t.sync_chatwoot),
    sync_onec = COALESCE(p.onec, t.sync_onec),
    updated_at = now()
FROM per_ticket p
WHERE t.cons_id = p.cons_id
  AND (t.sync_chatwoot IS DISTINCT FROM COALESCE(p.chatwoot, t.sync_chatwoot)
       OR t.sync_onec IS DISTINCT FROM COALESCE(p.onec, t.sync_onec))
"#,
    )
    .bind::<Array<SqlUuid>, _>(cons_ids)
    .bind::<Array<Text>, _>(targets))
    .execute(tx)
    .await?;
    Ok(())
}

/// Undelivered entries of one target and status.
#[derive(Debug, Clone, Serialize, QueryableByName)]
pub struct StatusCount {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub target: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub status: String,
    #[diesel(sql_type = diesel::sql_types::Int8)]
    pub count: i64,
    /// Seconds since the oldest of them was committed.
    #[diesel(sql_type = diesel::sql_types::Double)]
    pub oldest_age_seconds: f64,
}

/// Counts of pending, in-flight and dead entries per target, with the age of the oldest.
/// Delivered rows are left out: counting them would scan the whole table, while these
/// come from the small partial indexes.
pub async fn live_counts(
    connection: &mut PooledConnection,
) -> Result<Vec<StatusCount>, StoreError> {
    Ok(crate::cached::Cached(diesel::sql_query(
        "SELECT target, status, count(*) AS count,
                COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 AS oldest_age_seconds
         FROM sys.outbox WHERE status IN ('pending', 'in_flight', 'dead')
         GROUP BY target, status ORDER BY target, status",
    ))
    .load(connection)
    .await?)
}

/// Which dead entries a bulk replay takes.
#[derive(Debug, Clone, Default)]
pub struct DeadFilter {
    pub target: Option<Target>,
    pub cons_id: Option<Uuid>,
    /// Only entries created at most this long ago.
    pub since: Option<std::time::Duration>,
}

/// Ids of the dead entries matching `filter`, oldest first.
pub async fn dead_ids(
    connection: &mut PooledConnection,
    filter: &DeadFilter,
) -> Result<Vec<i64>, StoreError> {
    let mut query = outbox::table
        .filter(outbox::status.eq("dead"))
        .select(outbox::id)
        .order(outbox::id.asc())
        .into_boxed();
    if let Some(target) = filter.target {
        query = query.filter(outbox::target.eq(target.as_str()));
    }
    if let Some(cons_id) = filter.cons_id {
        query = query.filter(outbox::cons_id.eq(cons_id));
    }
    if let Some(since) = filter.since {
        let from = Utc::now() - chrono::Duration::from_std(since).unwrap_or(chrono::Duration::MAX);
        query = query.filter(outbox::created_at.ge(from));
    }
    Ok(query.load(connection).await?)
}

/// Puts these entries back to `pending`, due now, with a fresh attempt budget, and wakes
/// the relay. Only dead entries move: replaying an entry twice (or one that is already
/// pending or delivered) changes nothing, so it cannot cause a second effect. Returns the
/// ids that moved.
pub async fn replay(
    connection: &mut PooledConnection,
    ids: &[i64],
) -> Result<Vec<i64>, StoreError> {
    #[derive(QueryableByName)]
    struct Moved {
        #[diesel(sql_type = diesel::sql_types::Int8)]
        id: i64,
    }
    let moved = crate::cached::Cached(diesel::sql_query(
        "WITH moved AS (
             UPDATE sys.outbox SET status = 'pending', attempts = 0, next_attempt_at = now()
             WHERE id = ANY($1) AND status = 'dead'
             RETURNING id, cons_id, target
         ), sync AS (
             UPDATE cons.tickets t
             SET sync_chatwoot = CASE WHEN m.chatwoot THEN 'failed' ELSE t.sync_chatwoot END,
                 sync_onec = CASE WHEN m.onec THEN 'failed' ELSE t.sync_onec END,
                 updated_at = now()
             FROM (SELECT cons_id, bool_or(target = 'chatwoot') AS chatwoot, bool_or(target = 'onec') AS onec
                   FROM moved GROUP BY cons_id) m
             WHERE t.cons_id = m.cons_id
         ), wake AS (SELECT pg_notify($2, '') WHERE EXISTS (SELECT 1 FROM moved))
         SELECT id FROM moved, (SELECT count(*) FROM wake) w ORDER BY id",
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::Int8>, _>(ids)
    .bind::<diesel::sql_types::Text, _>(crate::wake::Channel::Outbox.name()))
    .load::<Moved>(connection)
    .await?;
    Ok(moved.into_iter().map(|m| m.id).collect())
}

/// Deletes delivered entries delivered more than `older_than` ago, in chunks so that no
/// single statement holds many locks; returns how many went.
pub async fn purge_delivered(
    connection: &mut PooledConnection,
    older_than: std::time::Duration,
) -> Result<usize, StoreError> {
    const CHUNK: i64 = 10_000;
    let mut purged = 0;
    loop {
        let deleted = crate::cached::Cached(
            diesel::sql_query(
                "DELETE FROM sys.outbox WHERE id IN (
                 SELECT id FROM sys.outbox
                 WHERE status = 'delivered' AND delivered_at < now() - make_interval(secs => $1)
                 LIMIT $2)",
            )
            .bind::<diesel::sql_types::Double, _>(older_than.as_secs_f64())
            .bind::<diesel::sql_types::Int8, _>(CHUNK),
        )
        .execute(connection)
        .await?;
        purged += deleted;
        if (deleted as i64) < CHUNK {
            return Ok(purged);
        }
    }
}

/// All delivered entries (a full count: for operators, not for dashboards).
pub async fn delivered_count(connection: &mut PooledConnection) -> Result<i64, StoreError> {
    Ok(outbox::table
        .filter(outbox::status.eq("delivered"))
        .count()
        .get_result(connection)
        .await?)
}
