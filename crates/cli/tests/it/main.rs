//! Black-box tests of the real `consctl` binary against a fresh database per test.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on anything unexpected"
)]

use cons_testdb::TestDatabase;
use diesel_async::SimpleAsyncConnection;
use serde_json::Value;
use std::process::{Command, Output};

fn consctl(db: &TestDatabase, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_consctl"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", db.url())
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap()
}

fn json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

/// Two tickets: one whose Chatwoot entry is dead, one with both entries delivered long ago.
async fn seed(db: &TestDatabase) {
    let mut connection = db.pool().get().await.unwrap();
    connection
        .batch_execute(
            "INSERT INTO cons.clients (client_id, name) VALUES ('00000000-0000-7000-8000-000000000001', 'n');
             INSERT INTO cons.tickets (cons_id, client_id, consultation_type, source, lang, sync_chatwoot, sync_onec, created_by)
             VALUES ('00000000-0000-7000-8000-00000000000a', '00000000-0000-7000-8000-000000000001', 'accounting', 'site', 'ru', 'dead', 'delivered', 't'),
                    ('00000000-0000-7000-8000-00000000000b', '00000000-0000-7000-8000-000000000001', 'accounting', 'site', 'ru', 'delivered', 'delivered', 't');
             INSERT INTO sys.outbox (cons_id, target, kind, payload, status, attempts, last_error, delivered_at) VALUES
               ('00000000-0000-7000-8000-00000000000a', 'chatwoot', 'ticket.create', '{}', 'dead', 12, 'HTTP 422', NULL),
               ('00000000-0000-7000-8000-00000000000a', 'onec', 'ticket.create', '{}', 'delivered', 1, NULL, now()),
               ('00000000-0000-7000-8000-00000000000b', 'chatwoot', 'ticket.create', '{}', 'delivered', 1, NULL, now() - interval '10 days'),
               ('00000000-0000-7000-8000-00000000000b', 'onec', 'ticket.create', '{}', 'delivered', 1, NULL, now() - interval '10 days');
             INSERT INTO sys.outbox_attempts (outbox_id, attempt, started_at, outcome, http_status, error)
             SELECT id, 12, now(), 'dead', 422, 'HTTP 422' FROM sys.outbox WHERE status = 'dead';",
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn migrate_is_a_no_op_on_a_migrated_database() {
    let db = TestDatabase::new().await;
    let output = consctl(&db, &["migrate"]);
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("up to date"));
}

#[tokio::test]
async fn list_and_show_print_one_json_document_with_the_contract_fields() {
    let db = TestDatabase::new().await;
    seed(&db).await;
    let all = json(&consctl(&db, &["outbox", "list", "--json"]));
    assert_eq!(all.as_array().unwrap().len(), 4);
    for field in [
        "id",
        "target",
        "kind",
        "status",
        "attempts",
        "cons_id",
        "created_at",
        "next_attempt_at",
        "last_error",
    ] {
        assert!(all[0].get(field).is_some(), "{field}");
    }
    let dead = json(&consctl(
        &db,
        &[
            "outbox", "list", "--status", "dead", "--target", "chatwoot", "--json",
        ],
    ));
    assert_eq!(dead.as_array().unwrap().len(), 1);
    let id = dead[0]["id"].as_i64().unwrap().to_string();
    let shown = json(&consctl(&db, &["outbox", "show", &id, "--json"]));
    assert_eq!(shown["payload"], serde_json::json!({}));
    assert_eq!(shown["attempt_log"][0]["http_status"], 422);
    assert_eq!(shown["attempt_log"][0]["error"], "HTTP 422");

    let missing = consctl(&db, &["outbox", "show", "999999"]);
    assert_eq!(missing.status.code(), Some(1));
    let bad = consctl(&db, &["outbox", "list", "--status", "lost"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[tokio::test]
async fn replaying_a_dead_entry_twice_moves_it_once() {
    let db = TestDatabase::new().await;
    seed(&db).await;
    let dry = json(&consctl(
        &db,
        &[
            "outbox",
            "replay",
            "--status",
            "dead",
            "--dry-run",
            "--json",
        ],
    ));
    assert_eq!(dry["would_replay"].as_array().unwrap().len(), 1);
    let unconfirmed = consctl(&db, &["outbox", "replay", "--status", "dead"]);
    assert_eq!(
        unconfirmed.status.code(),
        Some(1),
        "a bulk replay without a terminal needs --yes"
    );

    let first = json(&consctl(
        &db,
        &["outbox", "replay", "--status", "dead", "--yes", "--json"],
    ));
    assert_eq!(first["replayed"].as_array().unwrap().len(), 1);
    let id = first["replayed"][0].as_i64().unwrap().to_string();
    let again = json(&consctl(&db, &["outbox", "replay", &id, "--json"]));
    assert_eq!(again["replayed"], serde_json::json!([]));
    assert_eq!(again["skipped"], serde_json::json!([first["replayed"][0]]));

    let entry = json(&consctl(&db, &["outbox", "show", &id, "--json"]));
    assert_eq!(
        (entry["status"].as_str(), entry["attempts"].as_i64()),
        (Some("pending"), Some(0))
    );
}

#[tokio::test]
async fn stats_count_live_entries_and_purge_removes_only_old_delivered_ones() {
    let db = TestDatabase::new().await;
    seed(&db).await;
    let stats = json(&consctl(&db, &["outbox", "stats", "--json"]));
    assert_eq!(stats["delivered"], 3);
    assert_eq!(stats["live"][0]["status"], "dead");
    assert_eq!(stats["live"][0]["count"], 1);

    let purged = json(&consctl(
        &db,
        &[
            "outbox",
            "purge",
            "--delivered-older-than",
            "7d",
            "--yes",
            "--json",
        ],
    ));
    assert_eq!(purged["purged"], 2);
    let left = json(&consctl(&db, &["outbox", "list", "--json"]));
    assert_eq!(left.as_array().unwrap().len(), 2);
    let bad = consctl(
        &db,
        &[
            "outbox",
            "purge",
            "--delivered-older-than",
            "a week",
            "--yes",
        ],
    );
    assert_eq!(bad.status.code(), Some(2));
}

#[tokio::test]
async fn ticket_show_gives_the_ticket_its_history_and_its_entries() {
    let db = TestDatabase::new().await;
    seed(&db).await;
    let shown = json(&consctl(
        &db,
        &[
            "ticket",
            "show",
            "00000000-0000-7000-8000-00000000000a",
            "--json",
        ],
    ));
    assert_eq!(shown["ticket"]["sync"]["chatwoot"], "dead");
    assert_eq!(shown["outbox"].as_array().unwrap().len(), 2);
    let text = consctl(
        &db,
        &["ticket", "show", "00000000-0000-7000-8000-00000000000a"],
    );
    assert!(text.status.success());
    assert_eq!(
        consctl(
            &db,
            &["ticket", "show", "00000000-0000-7000-8000-0000000000ff"]
        )
        .status
        .code(),
        Some(1)
    );
}
