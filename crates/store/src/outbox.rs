//! Reading the outbox for operators: listing entries and showing one with its attempts.
//! (Entries are written with their ticket, in `tickets::create`; the relay claims them.)

use crate::schema::{outbox, outbox_attempts};
use crate::{StoreError, pool::PooledConnection};
use chrono::{DateTime, Utc};
use cons_domain::{OutboxStatus, Target};
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
