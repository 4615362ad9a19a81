//! Invariants of the schema itself: indexes behind foreign keys, reference data equal to
//! the domain's vocabulary, `schema.rs` equal to the tables, reversible migrations.

use crate::ticket_for;
use cons_domain::{
    ConsultationType, HistorySource, Lang, OutboxStatus, Source, SyncState, Target, TicketStatus,
};
use cons_store::schema::{
    clients, idempotency_keys, outbox, outbox_attempts, ticket_history, tickets,
};
use cons_store::tickets::{self as ticket_repo, CreateTicket, IdempotencyKey};
use cons_testdb::TestDatabase;
use diesel::connection::SimpleConnection;
use diesel::sql_types::Text;
use diesel::{Connection, QueryDsl, QueryableByName};
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::{AsyncPgConnection, RunQueryDsl as _, SimpleAsyncConnection};
use diesel_migrations::MigrationHarness;
use std::collections::BTreeSet;

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    value: String,
}

async fn strings(db: &TestDatabase, sql: &str) -> BTreeSet<String> {
    let mut connection = db.pool().get().await.unwrap();
    diesel::sql_query(sql)
        .load::<Row>(&mut connection)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.value)
        .collect()
}

#[tokio::test]
async fn every_foreign_key_is_backed_by_an_index_that_starts_with_its_columns() {
    let db = TestDatabase::new().await;
    let unindexed = strings(
        &db,
        "SELECT c.conrelid::regclass || ' ' || c.conname AS value
         FROM pg_constraint c
         WHERE c.contype = 'f'
           AND NOT EXISTS (
               SELECT 1 FROM pg_index i
               WHERE i.indrelid = c.conrelid
                 AND (i.indkey::int2[])[0:array_length(c.conkey, 1) - 1] = c.conkey)",
    )
    .await;
    assert!(
        unindexed.is_empty(),
        "foreign keys without an index: {unindexed:?}"
    );
}

fn names<T: Copy>(all: &[T], as_str: fn(T) -> &'static str) -> BTreeSet<String> {
    all.iter().map(|v| as_str(*v).to_owned()).collect()
}

/// The values the domain of `table.column` admits, read from its one CHECK constraint.
async fn check_values(db: &TestDatabase, table: &str, column: &str) -> BTreeSet<String> {
    let definitions = strings(
        db,
        &format!(
            "SELECT pg_get_constraintdef(c.oid) AS value
             FROM pg_attribute a JOIN pg_constraint c ON c.contypid = a.atttypid
             WHERE a.attrelid = '{table}'::regclass AND a.attname = '{column}' AND c.contype = 'c'"
        ),
    )
    .await;
    assert_eq!(
        definitions.len(),
        1,
        "one CHECK on the domain of {table}.{column}: {definitions:?}"
    );
    let definition = definitions.into_iter().next().unwrap_or_default();
    definition
        .split('\'')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn reference_data_and_checks_spell_the_domain_vocabulary() {
    let db = TestDatabase::new().await;
    let types = names(ConsultationType::ALL, ConsultationType::as_str);
    assert_eq!(
        strings(&db, "SELECT code AS value FROM dict.consultation_types").await,
        types
    );
    assert_eq!(
        check_values(&db, "cons.tickets", "consultation_type").await,
        types
    );
    let statuses = names(TicketStatus::ALL, TicketStatus::as_str);
    assert_eq!(
        strings(&db, "SELECT code AS value FROM dict.ticket_statuses").await,
        statuses
    );
    assert_eq!(check_values(&db, "cons.tickets", "status").await, statuses);
    let sources = names(Source::ALL, Source::as_str);
    assert_eq!(
        strings(&db, "SELECT code AS value FROM dict.sources").await,
        sources
    );
    assert_eq!(check_values(&db, "cons.tickets", "source").await, sources);
    let langs = names(Lang::ALL, Lang::as_str);
    assert_eq!(
        strings(&db, "SELECT code AS value FROM dict.languages").await,
        langs
    );
    assert_eq!(check_values(&db, "cons.tickets", "lang").await, langs);
    let sync = names(SyncState::ALL, SyncState::as_str);
    assert_eq!(
        check_values(&db, "cons.tickets", "sync_chatwoot").await,
        sync
    );
    assert_eq!(check_values(&db, "cons.tickets", "sync_onec").await, sync);
    assert_eq!(
        check_values(&db, "sys.outbox", "target").await,
        names(Target::ALL, Target::as_str)
    );
    assert_eq!(
        check_values(&db, "sys.outbox", "status").await,
        names(OutboxStatus::ALL, OutboxStatus::as_str)
    );
    assert_eq!(
        check_values(&db, "cons.ticket_history", "source").await,
        names(HistorySource::ALL, HistorySource::as_str)
    );
    // Tables that are to accept routing from dict: accounting goes to 1C, tech support not.
    assert_eq!(
        strings(
            &db,
            "SELECT code AS value FROM dict.consultation_types WHERE to_onec"
        )
        .await,
        ConsultationType::ALL
            .iter()
            .filter(|t| t.targets().contains(&Target::Onec))
            .map(|t| t.as_str().to_owned())
            .collect()
    );
}

#[tokio::test]
async fn schema_rs_reads_every_table_as_the_migrations_made_it() {
    let db = TestDatabase::new().await;
    let mut connection = db.pool().get().await.unwrap();
    let command = ticket_for("+998901234567");
    ticket_repo::create(
        &mut connection,
        &CreateTicket {
            command: &command,
            principal: "service:site",
            idempotency: Some(IdempotencyKey {
                key: "k".into(),
                request_sha256: [0; 32],
            }),
        },
    )
    .await
    .unwrap();
    connection
        .batch_execute(
            "INSERT INTO sys.outbox_attempts (outbox_id, attempt, started_at, outcome, http_status, error)
             SELECT id, 1, now(), 'retry', 503, 'unavailable' FROM sys.outbox LIMIT 1",
        )
        .await
        .unwrap();
    // Loading a row of every table with every declared column fails on a missing column
    // or a type that does not match.
    clients::table
        .select(clients::all_columns)
        .load::<ClientRow>(&mut connection)
        .await
        .unwrap();
    tickets::table
        .select(tickets::all_columns)
        .load::<TicketRow>(&mut connection)
        .await
        .unwrap();
    ticket_history::table
        .select(ticket_history::all_columns)
        .load::<HistoryRow>(&mut connection)
        .await
        .unwrap();
    outbox::table
        .select(outbox::all_columns)
        .load::<OutboxRow>(&mut connection)
        .await
        .unwrap();
    outbox_attempts::table
        .select(outbox_attempts::all_columns)
        .load::<AttemptRow>(&mut connection)
        .await
        .unwrap();
    idempotency_keys::table
        .select(idempotency_keys::all_columns)
        .load::<KeyRow>(&mut connection)
        .await
        .unwrap();
}

type Ts = chrono::DateTime<chrono::Utc>;
type ClientRow = (
    uuid::Uuid,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<uuid::Uuid>,
    Ts,
    Ts,
);
type TicketRow = (
    uuid::Uuid,
    uuid::Uuid,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<i16>,
    Option<Ts>,
    Option<i64>,
    Option<uuid::Uuid>,
    Option<String>,
    String,
    String,
    String,
    Ts,
    Ts,
);
type HistoryRow = (
    i64,
    uuid::Uuid,
    Ts,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
);
type OutboxRow = (
    i64,
    uuid::Uuid,
    String,
    String,
    serde_json::Value,
    String,
    i32,
    Ts,
    Option<String>,
    Option<uuid::Uuid>,
    Option<Ts>,
    Option<String>,
    Ts,
    Option<Ts>,
);
type AttemptRow = (i64, i32, Ts, Ts, String, Option<i16>, Option<String>);
type KeyRow = (String, String, String, Vec<u8>, uuid::Uuid, Ts);

#[tokio::test(flavor = "multi_thread")]
async fn migrations_revert_and_apply_again() {
    let db = TestDatabase::new().await;
    let url = db.url().to_owned();
    tokio::task::spawn_blocking(move || {
        let mut connection = AsyncConnectionWrapper::<AsyncPgConnection>::establish(&url).unwrap();
        SimpleConnection::batch_execute(&mut connection, "SET search_path TO sys").unwrap();
        connection
            .revert_all_migrations(cons_store::migrate::MIGRATIONS)
            .unwrap();
        assert!(
            connection
                .has_pending_migration(cons_store::migrate::MIGRATIONS)
                .unwrap()
        );
    })
    .await
    .unwrap();
    assert!(
        !cons_store::migrate::pending(db.url())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !cons_store::migrate::run_pending(db.url())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        cons_store::migrate::pending(db.url())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        cons_store::migrate::run_pending(db.url())
            .await
            .unwrap()
            .is_empty(),
        "a second run is a no-op"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_database_reports_every_migration_pending() {
    let db = TestDatabase::new().await;
    let mut connection = db.pool().get().await.unwrap();
    connection
        .batch_execute("CREATE DATABASE empty_one")
        .await
        .unwrap();
    let pending = cons_store::migrate::pending(&db.cluster_url("empty_one"))
        .await
        .unwrap();
    assert_eq!(
        pending,
        vec![
            "20261126000001".to_owned(),
            "20261126000002".to_owned(),
            "20261127000003".to_owned(),
            "20261127000004".to_owned(),
            "20261127100000".to_owned(),
            "20261127200000".to_owned(),
            "20261127210000".to_owned()
        ]
    );
}
