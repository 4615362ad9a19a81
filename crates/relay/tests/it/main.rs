//! Relay tests against a real PostgreSQL with an in-process deliverer whose behaviour each
//! test scripts: claiming, leases and fencing, order, retries, dead entries, effects.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on anything unexpected"
)]

mod inbound;
mod loop_and_leases;
mod peers;
mod process;
mod snapshots;

use cons_domain::Target;
use cons_relay::backoff::Backoff;
use cons_relay::pause::PausePolicy;
use cons_relay::{Deliver, DeliveryError, RelaySettings, TargetSettings};
use cons_store::Pool;
use cons_store::outbox::{Claimed, Effect};
use diesel_async::RunQueryDsl;
use std::sync::Mutex;
use std::time::Duration;

/// A deliverer whose answer per entry comes from a closure, and which keeps a log of
/// every attempt it saw.
pub struct Scripted<F> {
    pub answer: F,
    pub log: Mutex<Vec<(i64, uuid::Uuid, String, String)>>,
}

impl<F> Scripted<F>
where
    F: Fn(&Claimed) -> Result<Effect, DeliveryError> + Send + Sync + 'static,
{
    pub fn new(answer: F) -> Self {
        Scripted {
            answer,
            log: Mutex::new(Vec::new()),
        }
    }

    /// (outbox id, ticket, target, kind) of every attempt, in the order they started.
    pub fn attempts(&self) -> Vec<(i64, uuid::Uuid, String, String)> {
        self.log.lock().unwrap().clone()
    }
}

impl<F> Deliver for Scripted<F>
where
    F: Fn(&Claimed) -> Result<Effect, DeliveryError> + Send + Sync + 'static,
{
    async fn deliver(&self, entry: &Claimed) -> Result<Effect, DeliveryError> {
        self.log.lock().unwrap().push((
            entry.id,
            entry.cons_id,
            entry.target.clone(),
            entry.kind.clone(),
        ));
        (self.answer)(entry)
    }
}

pub fn settings() -> RelaySettings {
    RelaySettings {
        owner: "test-relay".into(),
        targets: vec![
            TargetSettings {
                target: Target::Chatwoot,
                concurrency: 8,
                lease: Duration::from_secs(30),
            },
            TargetSettings {
                target: Target::Onec,
                concurrency: 8,
                lease: Duration::from_secs(30),
            },
        ],
        batch_size: 50,
        flush_interval: Duration::from_millis(2),
        poll_interval: Duration::from_millis(200),
        max_attempts: 3,
        backoff: Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
        },
        pause: PausePolicy {
            after_failures: 1000,
            pause: Duration::from_secs(1),
            max: Duration::from_secs(1),
        },
    }
}

/// Inserts a ticket for a fresh client, with one `ticket.create` entry per target given.
pub async fn ticket(pool: &Pool, targets: &[&str]) -> uuid::Uuid {
    let mut connection = pool.get().await.unwrap();
    let client = uuid::Uuid::now_v7();
    let cons_id = uuid::Uuid::now_v7();
    let sync = |t: &str| {
        if targets.contains(&t) {
            "pending"
        } else {
            "not_applicable"
        }
    };
    let sql = format!(
        "WITH c AS (INSERT INTO cons.clients (client_id, name) VALUES ('{client}', 'n')),
              t AS (INSERT INTO cons.tickets (cons_id, client_id, consultation_type, source, lang, sync_chatwoot, sync_onec, created_by)
                    VALUES ('{cons_id}', '{client}', 'accounting', 'site', 'ru', '{}', '{}', 'test'))
         INSERT INTO sys.outbox (cons_id, target, kind, payload)
         SELECT '{cons_id}', target, 'ticket.create', '{{}}' FROM unnest(ARRAY[{}]::text[]) AS target",
        sync("chatwoot"),
        sync("onec"),
        targets.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(","),
    );
    diesel::sql_query(sql)
        .execute(&mut connection)
        .await
        .unwrap();
    cons_id
}

/// Adds a further entry of `kind` for the ticket and target.
pub async fn enqueue(pool: &Pool, cons_id: uuid::Uuid, target: &str, kind: &str) {
    let mut connection = pool.get().await.unwrap();
    diesel::sql_query(format!(
        "INSERT INTO sys.outbox (cons_id, target, kind, payload) VALUES ('{cons_id}', '{target}', '{kind}', '{{}}')"
    ))
    .execute(&mut connection)
    .await
    .unwrap();
}

#[derive(diesel::QueryableByName, Debug, PartialEq, Eq)]
pub struct Row {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub value: String,
}

/// The first column of a query, as text, one string per row.
pub async fn column(pool: &Pool, sql: &str) -> Vec<String> {
    let mut connection = pool.get().await.unwrap();
    diesel::sql_query(sql)
        .load::<Row>(&mut connection)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.value)
        .collect()
}

/// The peers' variables pointing at the Chatwoot and 1C simulators (the 1C keys are the
/// customer's, domain.md §1.7).
pub fn peer_env(
    chatwoot_url: &str,
    onec_url: &str,
    account: u64,
    inbox: u64,
) -> Vec<(String, String)> {
    [
        ("CHATWOOT_API_URL", chatwoot_url),
        ("CHATWOOT_API_TOKEN", "sim-chatwoot-token"),
        ("CHATWOOT_ACCOUNT_ID", &account.to_string()),
        ("CHATWOOT_INBOX_ID", &inbox.to_string()),
        ("CHATWOOT_LABELS", "consultation"),
        ("ONEC_ODATA_URL", onec_url),
        ("ONEC_USER", "odata"),
        ("ONEC_PASSWORD", "odata-password"),
        (
            "ONEC_COUNTERPARTY_FOLDER_KEY",
            "7ccd31ca-887b-11eb-938b-00e04cd03b68",
        ),
        (
            "ONEC_LANGUAGE_RU_KEY",
            "15d38cda-1812-11ef-b824-c67597d01fa8",
        ),
        (
            "ONEC_LANGUAGE_UZ_KEY",
            "15d38cdb-1812-11ef-b824-c67597d01fa8",
        ),
        (
            "ONEC_CONTACT_KIND_PHONE_KEY",
            "c07763c7-2ae8-4708-a608-7691be9d782b",
        ),
        (
            "ONEC_CONTACT_KIND_EMAIL_KEY",
            "f0dddb0f-1cac-49ab-ad37-f9480b0ef654",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}
