//! Tickets: creation (client, ticket, history and outbox in one statement), reads, the
//! client's ticket list and the change history.

use crate::schema::{clients, idempotency_keys, ticket_history, tickets};
use crate::{StoreError, pool::PooledConnection};
use chrono::{DateTime, Utc};
use cons_domain::{ClientRef, ConsultationType, NewTicket, Source};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{Array, Bool, Bytea, Int2, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

/// The operation name idempotency keys of ticket creation are stored under.
const CREATE_OPERATION: &str = "ticket.create";

/// An `Idempotency-Key` with the fingerprint of the request that first used it.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub key: String,
    pub request_sha256: [u8; 32],
}

/// Everything needed to create one ticket.
#[derive(Debug, Clone)]
pub struct CreateTicket<'a> {
    pub command: &'a NewTicket,
    /// Who asks: `service:<name>` or `client:<id>`; scopes idempotency keys.
    pub principal: &'a str,
    pub idempotency: Option<IdempotencyKey>,
}

/// The facts fixed at creation; the 201 answer is a function of them, which is what lets
/// a replay return the first answer without storing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedTicket {
    pub cons_id: Uuid,
    pub client_id: Uuid,
    pub consultation_type: ConsultationType,
    pub source: Source,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    Created(CreatedTicket),
    /// The same caller sent the same key with the same body before.
    Replayed(CreatedTicket),
    /// The same caller sent the same key with another body.
    KeyReused,
    /// `client_id` names no client.
    UnknownClient,
}

/// The client a create names: by id, else by phone, else e-mail, else INN (the first
/// that matches). One rule for the single and the batched create; the arguments are the
/// SQL expressions holding the four values.
#[rustfmt::skip]
macro_rules! find_client {
    ($id:literal, $phone:literal, $email:literal, $inn:literal) => {
        concat!(
            "SELECT client_id FROM (",
            " SELECT client_id, 1 AS rank FROM cons.clients WHERE client_id = ", $id,
            " UNION ALL SELECT client_id, 2 FROM cons.clients WHERE phone_number = ", $phone,
            " UNION ALL SELECT client_id, 3 FROM cons.clients WHERE email = ", $email,
            " UNION ALL SELECT client_id, 4 FROM cons.clients WHERE org_inn = ", $inn,
            ") matches ORDER BY rank LIMIT 1"
        )
    };
}

/// One statement, so one atomic unit and one round trip: claim the idempotency key, find
/// the client by id or natural key (or create it), insert the ticket, its first history
/// row and one outbox entry per target. When the key is already taken the statement
/// inserts nothing (every insert hangs off `go`).
///
/// A new client that a concurrent request committed after this statement's snapshot is
/// invisible to `found` and skipped by `ON CONFLICT`; then the ticket's `client_id` is NULL
/// and the NOT NULL constraint aborts the whole statement, which `create` runs again.
const CREATE_SQL: &str = concat!(
    r#"
WITH claim AS (
    INSERT INTO sys.idempotency_keys (principal, operation, key, request_sha256, cons_id)
    SELECT $1, $2, $3, $4, $5 WHERE $3 IS NOT NULL
    ON CONFLICT DO NOTHING
    RETURNING 1
), go AS (
    SELECT 1 WHERE $3 IS NULL OR EXISTS (SELECT 1 FROM claim)
), found AS (
    "#,
    find_client!("$6", "$7", "$8", "$9"),
    r#"
), created AS (
    INSERT INTO cons.clients (client_id, name, phone_number, email, org_inn, code_abonent, company_name)
    SELECT $10, $11, $7, $8, $9, $12, $13 FROM go
    WHERE $6 IS NULL AND NOT EXISTS (SELECT 1 FROM found)
    ON CONFLICT DO NOTHING
    RETURNING client_id
), ticket AS (
    INSERT INTO cons.tickets (cons_id, client_id, consultation_type, source, lang, topic, comment,
                              importance, scheduled_at, sync_chatwoot, sync_onec, created_by)
    SELECT $5, (SELECT client_id FROM found UNION ALL SELECT client_id FROM created LIMIT 1),
           $14, $15, $16, $17, $18, $19, $20, $21, $22, $1
    FROM go
    RETURNING cons_id, client_id, created_at
), history AS (
    INSERT INTO cons.ticket_history (cons_id, field, old_value, new_value, source, actor)
    SELECT cons_id, 'status', NULL, 'new', 'api', $1 FROM ticket
), outbox AS (
    INSERT INTO sys.outbox (cons_id, target, kind, payload)
    SELECT ticket.cons_id, target, 'ticket.create', jsonb_build_object('cons_id', ticket.cons_id)
    FROM ticket CROSS JOIN unnest($23::text[]) AS target
)
SELECT cons_id, client_id, created_at FROM ticket
"#
);

#[derive(QueryableByName)]
struct InsertedTicket {
    #[diesel(sql_type = SqlUuid)]
    cons_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    client_id: Uuid,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
}

/// How often a create is re-run after losing a race for a new client. One re-run always
/// suffices (the winner has committed by then); the bound only guards against a bug.
const CREATE_ATTEMPTS: usize = 3;

pub async fn create(
    connection: &mut PooledConnection,
    request: &CreateTicket<'_>,
) -> Result<CreateOutcome, StoreError> {
    for _ in 0..CREATE_ATTEMPTS {
        match insert(connection, request).await {
            Ok(Some(row)) => {
                let ticket = &request.command.ticket;
                return Ok(CreateOutcome::Created(CreatedTicket {
                    cons_id: row.cons_id,
                    client_id: row.client_id,
                    consultation_type: ticket.consultation_type,
                    source: ticket.source,
                    created_at: row.created_at,
                }));
            }
            Ok(None) => {
                // The key was taken: by this caller with this body (replay) or another.
                if let Some(outcome) = replay(connection, request).await? {
                    return Ok(outcome);
                }
                // The key's ticket vanished between the two statements (purged): retry.
            }
            Err(DieselError::DatabaseError(DatabaseErrorKind::NotNullViolation, info))
                if info.column_name() == Some("client_id") =>
            {
                if matches!(request.command.client, ClientRef::Existing(_)) {
                    return Ok(CreateOutcome::UnknownClient);
                }
                tracing::debug!("lost the race to create a client; running the create again");
            }
            Err(error) => return Err(error.into()),
        }
    }
    Err(StoreError::Query(DieselError::RollbackTransaction))
}

async fn insert(
    connection: &mut PooledConnection,
    request: &CreateTicket<'_>,
) -> Result<Option<InsertedTicket>, DieselError> {
    let NewTicket { client, ticket } = request.command;
    let (existing_id, new_client) = match client {
        ClientRef::Existing(id) => (Some(*id), None),
        ClientRef::Match(new_client) => (None, Some(new_client)),
    };
    let targets: Vec<&str> = ticket
        .consultation_type
        .targets()
        .iter()
        .map(|t| t.as_str())
        .collect();
    let sync = |target| ticket.consultation_type.initial_sync(target).as_str();
    crate::cached::Cached(
        diesel::sql_query(CREATE_SQL)
            .bind::<Text, _>(request.principal)
            .bind::<Text, _>(CREATE_OPERATION)
            .bind::<Nullable<Text>, _>(request.idempotency.as_ref().map(|k| k.key.as_str()))
            .bind::<Nullable<Bytea>, _>(
                request
                    .idempotency
                    .as_ref()
                    .map(|k| k.request_sha256.as_slice()),
            )
            .bind::<SqlUuid, _>(Uuid::now_v7())
            .bind::<Nullable<SqlUuid>, _>(existing_id)
            .bind::<Nullable<Text>, _>(new_client.map(|c| c.phone_number.as_str()))
            .bind::<Nullable<Text>, _>(
                new_client
                    .and_then(|c| c.email.as_ref())
                    .map(|e| e.as_str()),
            )
            .bind::<Nullable<Text>, _>(
                new_client
                    .and_then(|c| c.org_inn.as_ref())
                    .map(|i| i.as_str()),
            )
            .bind::<SqlUuid, _>(Uuid::now_v7())
            .bind::<Nullable<Text>, _>(new_client.map(|c| c.name.as_str()))
            .bind::<Nullable<Text>, _>(
                new_client
                    .and_then(|c| c.code_abonent.as_ref())
                    .map(|c| c.as_str()),
            )
            .bind::<Nullable<Text>, _>(
                new_client
                    .and_then(|c| c.company_name.as_ref())
                    .map(|c| c.as_str()),
            )
            .bind::<Text, _>(ticket.consultation_type.as_str())
            .bind::<Text, _>(ticket.source.as_str())
            .bind::<Text, _>(ticket.lang.as_str())
            .bind::<Nullable<Text>, _>(ticket.topic.as_ref().map(|t| t.as_str()))
            .bind::<Nullable<Text>, _>(ticket.comment.as_ref().map(|c| c.as_str()))
            .bind::<Nullable<Int2>, _>(ticket.importance.map(|i| i16::from(i.get())))
            .bind::<Nullable<Timestamptz>, _>(ticket.scheduled_at)
            .bind::<Text, _>(sync(cons_domain::Target::Chatwoot))
            .bind::<Text, _>(sync(cons_domain::Target::Onec))
            .bind::<Array<Text>, _>(targets),
    )
    .get_result::<InsertedTicket>(connection)
    .await
    .optional()
}

/// Many creates in one statement, for requests whose client already exists: the
/// transaction's fixed costs (planning, executor start-up, constraint set-up, the commit
/// and its WAL flush) are paid once per batch instead of once per ticket, while every
/// ticket still commits together with its history row, its outbox entries and its key.
///
/// A request is skipped, never failed, when its client is not found (it is new, or
/// `client_id` names nobody) or its idempotency key is already taken (also by an earlier
/// request of the same batch); the caller runs those through [`create`], which knows how
/// to create a client, replay, or refuse. A key still in flight in another transaction
/// makes the claim wait, as in [`create`], and `lock_timeout` then fails the whole batch.
const CREATE_BATCH_SQL: &str = concat!(
    r#"
WITH request AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bytea[], $5::uuid[], $6::text[],
                         $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
                         $13::text[], $14::int2[], $15::timestamptz[], $16::text[], $17::text[],
                         $18::bool[], $19::bool[])
        AS r(cons_id, principal, key, request_sha256, client_id, phone_number, email, org_inn,
             consultation_type, source, lang, topic, comment, importance, scheduled_at,
             sync_chatwoot, sync_onec, to_chatwoot, to_onec)
), found AS (
    SELECT request.*, found.client_id AS found_client_id FROM request CROSS JOIN LATERAL (
        "#,
    find_client!(
        "request.client_id",
        "request.phone_number",
        "request.email",
        "request.org_inn"
    ),
    r#"
    ) found
), claim AS (
    INSERT INTO sys.idempotency_keys (principal, operation, key, request_sha256, cons_id)
    SELECT principal, $20, key, request_sha256, cons_id FROM found WHERE key IS NOT NULL
    ON CONFLICT DO NOTHING
    RETURNING cons_id
), go AS (
    SELECT * FROM found WHERE key IS NULL OR cons_id IN (SELECT cons_id FROM claim)
), ticket AS (
    INSERT INTO cons.tickets (cons_id, client_id, consultation_type, source, lang, topic, comment,
                              importance, scheduled_at, sync_chatwoot, sync_onec, created_by)
    SELECT cons_id, found_client_id, consultation_type, source, lang, topic, comment,
           importance, scheduled_at, sync_chatwoot, sync_onec, principal
    FROM go
    RETURNING cons_id, client_id, created_at
), history AS (
    INSERT INTO cons.ticket_history (cons_id, field, old_value, new_value, source, actor)
    SELECT cons_id, 'status', NULL, 'new', 'api', principal FROM go
), outbox AS (
    INSERT INTO sys.outbox (cons_id, target, kind, payload)
    SELECT cons_id, target, 'ticket.create', jsonb_build_object('cons_id', cons_id)
    FROM go CROSS JOIN LATERAL (VALUES ('chatwoot', to_chatwoot), ('onec', to_onec)) AS t(target, wanted)
    WHERE wanted
)
SELECT cons_id, client_id, created_at FROM ticket
"#
);

/// Creates, in one statement, every ticket of `requests` whose client exists and whose
/// key (if any) is free. The answer has one entry per request, in order: `None` for a
/// request the caller must still run through [`create`].
pub async fn create_batch(
    connection: &mut PooledConnection,
    requests: &[CreateTicket<'_>],
) -> Result<Vec<Option<CreatedTicket>>, StoreError> {
    let cons_ids: Vec<Uuid> = requests.iter().map(|_| Uuid::now_v7()).collect();
    let drafts = || requests.iter().map(|r| &r.command.ticket);
    let matches = || {
        requests.iter().map(|r| match &r.command.client {
            ClientRef::Existing(_) => None,
            ClientRef::Match(client) => Some(client),
        })
    };
    let sync = |target| -> Vec<&str> {
        drafts()
            .map(|t| t.consultation_type.initial_sync(target).as_str())
            .collect()
    };
    let wants = |target| -> Vec<bool> {
        drafts()
            .map(|t| t.consultation_type.targets().contains(&target))
            .collect()
    };
    use cons_domain::Target::{Chatwoot, Onec};
    let rows = crate::cached::Cached(
        diesel::sql_query(CREATE_BATCH_SQL)
            .bind::<Array<SqlUuid>, _>(&cons_ids)
            .bind::<Array<Text>, _>(requests.iter().map(|r| r.principal).collect::<Vec<_>>())
            .bind::<Array<Nullable<Text>>, _>(
                requests
                    .iter()
                    .map(|r| r.idempotency.as_ref().map(|k| k.key.as_str()))
                    .collect::<Vec<_>>(),
            )
            .bind::<Array<Nullable<Bytea>>, _>(
                requests
                    .iter()
                    .map(|r| r.idempotency.as_ref().map(|k| k.request_sha256.as_slice()))
                    .collect::<Vec<_>>(),
            )
            .bind::<Array<Nullable<SqlUuid>>, _>(
                requests
                    .iter()
                    .map(|r| match &r.command.client {
                        ClientRef::Existing(id) => Some(*id),
                        ClientRef::Match(_) => None,
                    })
                    .collect::<Vec<_>>(),
            )
            .bind::<Array<Nullable<Text>>, _>(
                matches()
                    .map(|c| c.map(|c| c.phone_number.as_str()))
                    .collect::<Vec<_>>(),
            )
            .bind::<Array<Nullable<Text>>, _>(
                matches()
                    .map(|c| c.and_then(|c| c.email.as_ref()).map(|e| e.as_str()))
                    .collect::<Vec<_>>(),
            )
            .bind::<Array<Nullable<Text>>, _>(
                matches()
                    .map(|c| c.and_then(|c| c.org_inn.as_ref()).map(|i| i.as_str()))
                    .collect::<Vec<_>>(),
            )
            .bind::<Array<Text>, _>(
                drafts()
                    .map(|t| t.consultation_type.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind::<Array<Text>, _>(drafts().map(|t| t.source.as_str()).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(drafts().map(|t| t.lang.as_str()).collect::<Vec<_>>())
            .bind::<Array<Nullable<Text>>, _>(
                drafts()
                    .map(|t| t.topic.as_ref().map(|t| t.as_str()))
                    .collect::<Vec<_>>(),
            )
            .bind::<Array<Nullable<Text>>, _>(
                drafts()
                    .map(|t| t.comment.as_ref().map(|c| c.as_str()))
                    .collect::<Vec<_>>(),
            )
            .bind::<Array<Nullable<Int2>>, _>(
                drafts()
                    .map(|t| t.importance.map(|i| i16::from(i.get())))
                    .collect::<Vec<_>>(),
            )
            .bind::<Array<Nullable<Timestamptz>>, _>(
                drafts().map(|t| t.scheduled_at).collect::<Vec<_>>(),
            )
            .bind::<Array<Text>, _>(sync(Chatwoot))
            .bind::<Array<Text>, _>(sync(Onec))
            .bind::<Array<Bool>, _>(wants(Chatwoot))
            .bind::<Array<Bool>, _>(wants(Onec))
            .bind::<Text, _>(CREATE_OPERATION),
    )
    .load::<InsertedTicket>(connection)
    .await?;
    let mut created: std::collections::HashMap<Uuid, InsertedTicket> =
        rows.into_iter().map(|row| (row.cons_id, row)).collect();
    Ok(cons_ids
        .iter()
        .zip(requests)
        .map(|(cons_id, request)| {
            created.remove(cons_id).map(|row| CreatedTicket {
                cons_id: row.cons_id,
                client_id: row.client_id,
                consultation_type: request.command.ticket.consultation_type,
                source: request.command.ticket.source,
                created_at: row.created_at,
            })
        })
        .collect())
}

async fn replay(
    connection: &mut PooledConnection,
    request: &CreateTicket<'_>,
) -> Result<Option<CreateOutcome>, StoreError> {
    let Some(key) = &request.idempotency else {
        return Ok(None);
    };
    let first = idempotency_keys::table
        .inner_join(tickets::table)
        .filter(idempotency_keys::principal.eq(request.principal))
        .filter(idempotency_keys::operation.eq(CREATE_OPERATION))
        .filter(idempotency_keys::key.eq(&key.key))
        .select((
            idempotency_keys::request_sha256,
            tickets::cons_id,
            tickets::client_id,
            tickets::consultation_type,
            tickets::source,
            tickets::created_at,
        ))
        .first::<(Vec<u8>, Uuid, Uuid, String, String, DateTime<Utc>)>(connection)
        .await
        .optional()?;
    let Some((sha256, cons_id, client_id, consultation_type, source, created_at)) = first else {
        return Ok(None);
    };
    if sha256 != key.request_sha256 {
        return Ok(Some(CreateOutcome::KeyReused));
    }
    Ok(Some(CreateOutcome::Replayed(CreatedTicket {
        cons_id,
        client_id,
        consultation_type: parse_stored(ConsultationType::parse(&consultation_type))?,
        source: parse_stored(Source::parse(&source))?,
        created_at,
    })))
}

/// A value read back from a column whose CHECK constraint only admits valid values.
fn parse_stored<T>(parsed: Result<T, cons_domain::InvalidValue>) -> Result<T, StoreError> {
    parsed.map_err(|e| StoreError::Query(DieselError::DeserializationError(Box::new(e))))
}

/// A ticket as the API shows it, with the client's Chatwoot contact.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = tickets)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct TicketRecord {
    pub cons_id: Uuid,
    pub client_id: Uuid,
    pub status: String,
    pub consultation_type: String,
    pub source: String,
    pub lang: String,
    pub topic: Option<String>,
    pub comment: Option<String>,
    pub importance: Option<i16>,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub chatwoot_conversation_id: Option<i64>,
    pub onec_ref_key: Option<Uuid>,
    pub onec_number: Option<String>,
    pub sync_chatwoot: String,
    pub sync_onec: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct TicketView {
    pub ticket: TicketRecord,
    pub chatwoot_contact_id: Option<i64>,
}

fn with_contact((ticket, chatwoot_contact_id): (TicketRecord, Option<i64>)) -> TicketView {
    TicketView {
        ticket,
        chatwoot_contact_id,
    }
}

pub async fn get(
    connection: &mut PooledConnection,
    cons_id: Uuid,
) -> Result<Option<TicketView>, StoreError> {
    let row = tickets::table
        .inner_join(clients::table)
        .filter(tickets::cons_id.eq(cons_id))
        .select((TicketRecord::as_select(), clients::chatwoot_contact_id))
        .first(connection)
        .await
        .optional()?;
    Ok(row.map(with_contact))
}

/// The client's tickets, newest first, strictly older than `before` when given.
pub async fn list_for_client(
    connection: &mut PooledConnection,
    client_id: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<TicketView>, StoreError> {
    let mut query = tickets::table
        .inner_join(clients::table)
        .filter(tickets::client_id.eq(client_id))
        .select((TicketRecord::as_select(), clients::chatwoot_contact_id))
        .order(tickets::cons_id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(tickets::cons_id.lt(before));
    }
    Ok(query
        .load(connection)
        .await?
        .into_iter()
        .map(with_contact)
        .collect())
}

pub async fn client_exists(
    connection: &mut PooledConnection,
    client_id: Uuid,
) -> Result<bool, StoreError> {
    let found = diesel::select(diesel::dsl::exists(clients::table.find(client_id)))
        .get_result(connection)
        .await?;
    Ok(found)
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = ticket_history)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct HistoryRecord {
    pub at: DateTime<Utc>,
    pub field: String,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub source: String,
}

/// Every recorded change of the ticket, oldest first.
pub async fn history(
    connection: &mut PooledConnection,
    cons_id: Uuid,
) -> Result<Vec<HistoryRecord>, StoreError> {
    Ok(ticket_history::table
        .filter(ticket_history::cons_id.eq(cons_id))
        .order(ticket_history::id.asc())
        .select(HistoryRecord::as_select())
        .load(connection)
        .await?)
}

/// What the relay needs to deliver a ticket: the ticket, and its client as the peers
/// must know it.
#[derive(Debug, Clone)]
pub struct DeliveryView {
    pub ticket: TicketRecord,
    pub client: ClientRecord,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = clients)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct ClientRecord {
    pub client_id: Uuid,
    pub name: String,
    pub phone_number: Option<String>,
    pub email: Option<String>,
    pub org_inn: Option<String>,
    pub code_abonent: Option<String>,
    pub company_name: Option<String>,
    pub chatwoot_contact_id: Option<i64>,
    pub onec_counterparty_key: Option<Uuid>,
}

pub async fn delivery_view(
    connection: &mut PooledConnection,
    cons_id: Uuid,
) -> Result<Option<DeliveryView>, StoreError> {
    let row = tickets::table
        .inner_join(clients::table)
        .filter(tickets::cons_id.eq(cons_id))
        .select((TicketRecord::as_select(), ClientRecord::as_select()))
        .first::<(TicketRecord, ClientRecord)>(connection)
        .await
        .optional()?;
    Ok(row.map(|(ticket, client)| DeliveryView { ticket, client }))
}
