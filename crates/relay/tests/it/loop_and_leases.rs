//! Claiming, leases, order, retries and dead entries, driven deterministically with
//! `drain`, and the long-running loop woken by `waker`.

use crate::{Scripted, column, enqueue, settings, ticket};
use cons_domain::Target;
use cons_relay::{DeliveryError, Relay};
use cons_store::outbox::{self, Effect, Outcome};
use cons_testdb::TestDatabase;
use std::time::Duration;

fn delivered(_: &cons_store::outbox::Claimed) -> Result<Effect, DeliveryError> {
    Ok(Effect::None)
}

#[tokio::test]
async fn drain_delivers_every_due_entry_once_and_the_ticket_reports_it() {
    let db = TestDatabase::new().await;
    let first = ticket(db.pool(), &["chatwoot", "onec"]).await;
    let second = ticket(db.pool(), &["chatwoot"]).await;
    let relay = Relay::new(db.pool().clone(), settings(), Scripted::new(delivered));

    let report = relay.drain().await.unwrap();
    assert_eq!((report.attempts, report.delivered), (3, 3));
    assert_eq!(
        relay.drain().await.unwrap().attempts,
        0,
        "nothing is delivered twice"
    );
    assert_eq!(
        column(db.pool(), "SELECT status AS value FROM sys.outbox").await,
        ["delivered"; 3]
    );
    let sync = column(db.pool(), &format!("SELECT sync_chatwoot || '/' || sync_onec AS value FROM cons.tickets WHERE cons_id = '{first}'")).await;
    assert_eq!(sync, ["delivered/delivered"]);
    let sync = column(db.pool(), &format!("SELECT sync_chatwoot || '/' || sync_onec AS value FROM cons.tickets WHERE cons_id = '{second}'")).await;
    assert_eq!(sync, ["delivered/not_applicable"]);
    let outcomes = column(
        db.pool(),
        "SELECT outcome || ':' || attempt AS value FROM sys.outbox_attempts",
    )
    .await;
    assert_eq!(outcomes, ["delivered:1"; 3]);
}

#[tokio::test]
async fn a_retryable_failure_is_rescheduled_within_the_backoff_and_its_error_kept() {
    let db = TestDatabase::new().await;
    ticket(db.pool(), &["chatwoot"]).await;
    let relay = Relay::new(
        db.pool().clone(),
        settings(),
        Scripted::new(|_: &cons_store::outbox::Claimed| {
            Err(DeliveryError::retryable("HTTP 503 from chatwoot").with_status(503))
        }),
    );
    let report = relay.drain().await.unwrap();
    assert_eq!((report.attempts, report.retried), (1, 1));
    let row = column(
        db.pool(),
        "SELECT status || '|' || attempts || '|' || last_error || '|' ||
                (next_attempt_at > now() - interval '1 second' AND next_attempt_at <= now() + interval '1 second')::text AS value
         FROM sys.outbox",
    )
    .await;
    assert_eq!(
        row,
        ["pending|1|HTTP 503 from chatwoot|true"],
        "attempt 1: delay within [0, base]"
    );
    assert_eq!(
        column(db.pool(), "SELECT sync_chatwoot AS value FROM cons.tickets").await,
        ["failed"]
    );
    let log = column(
        db.pool(),
        "SELECT outcome || ':' || http_status || ':' || error AS value FROM sys.outbox_attempts",
    )
    .await;
    assert_eq!(log, ["retry:503:HTTP 503 from chatwoot"]);
}

#[tokio::test]
async fn attempts_run_out_into_dead_and_a_permanent_refusal_is_dead_at_once() {
    let db = TestDatabase::new().await;
    let doomed = ticket(db.pool(), &["chatwoot"]).await;
    let refused = ticket(db.pool(), &["onec"]).await;
    let relay = Relay::new(
        db.pool().clone(),
        settings(),
        Scripted::new(move |entry: &cons_store::outbox::Claimed| {
            if entry.cons_id == refused {
                Err(
                    DeliveryError::permanent("HTTP 422: Абонент_Key is not a GUID")
                        .with_status(422),
                )
            } else {
                Err(DeliveryError::retryable("timed out"))
            }
        }),
    );
    for _ in 0..3 {
        relay.drain().await.unwrap();
        // Make the rescheduled entry due now instead of waiting for its backoff.
        column(db.pool(), "UPDATE sys.outbox SET next_attempt_at = now() WHERE status = 'pending' RETURNING '' AS value").await;
    }
    let rows = column(
        db.pool(),
        "SELECT cons_id || ' ' || status || ' ' || attempts AS value FROM sys.outbox ORDER BY id",
    )
    .await;
    assert_eq!(
        rows,
        [format!("{doomed} dead 3"), format!("{refused} dead 1")]
    );
    let error = column(
        db.pool(),
        &format!("SELECT last_error AS value FROM sys.outbox WHERE cons_id = '{doomed}'"),
    )
    .await;
    assert_eq!(error, ["timed out (gave up after 3 attempts)"]);
    assert_eq!(
        column(
            db.pool(),
            &format!("SELECT sync_onec AS value FROM cons.tickets WHERE cons_id = '{refused}'")
        )
        .await,
        ["dead"]
    );
}

#[tokio::test]
async fn a_dead_entry_holds_back_its_own_ticket_and_target_only() {
    let db = TestDatabase::new().await;
    let blocked = ticket(db.pool(), &["chatwoot", "onec"]).await;
    enqueue(db.pool(), blocked, "chatwoot", "ticket.update").await;
    let other = ticket(db.pool(), &["chatwoot"]).await;
    let relay = Relay::new(
        db.pool().clone(),
        settings(),
        Scripted::new(move |entry: &cons_store::outbox::Claimed| {
            if entry.cons_id == blocked && entry.target == "chatwoot" {
                Err(DeliveryError::permanent("refused"))
            } else {
                Ok(Effect::None)
            }
        }),
    );
    relay.drain().await.unwrap();
    let rows = column(
        db.pool(),
        "SELECT cons_id || ' ' || target || ' ' || kind || ' ' || status AS value FROM sys.outbox ORDER BY id",
    )
    .await;
    assert_eq!(
        rows,
        [
            format!("{blocked} chatwoot ticket.create dead"),
            format!("{blocked} onec ticket.create delivered"),
            format!("{blocked} chatwoot ticket.update pending"),
            format!("{other} chatwoot ticket.create delivered"),
        ]
    );
    assert_eq!(
        relay.drain().await.unwrap().attempts,
        0,
        "the later entry stays behind the dead one"
    );
}

#[tokio::test]
async fn entries_of_one_ticket_and_target_are_delivered_in_order() {
    let db = TestDatabase::new().await;
    let cons_id = ticket(db.pool(), &["chatwoot"]).await;
    for kind in ["ticket.a", "ticket.b", "ticket.c"] {
        enqueue(db.pool(), cons_id, "chatwoot", kind).await;
    }
    let relay = Relay::new(db.pool().clone(), settings(), Scripted::new(delivered));
    relay.drain().await.unwrap();
    let kinds: Vec<String> = relay
        .deliverer()
        .attempts()
        .into_iter()
        .map(|a| a.3)
        .collect();
    assert_eq!(kinds, ["ticket.create", "ticket.a", "ticket.b", "ticket.c"]);
}

/// Found by the TCP-fault test (R9): follow-ups enqueued while their ticket's first entry was
/// being retried are due before it, and are held back behind it. A claim that took the
/// earliest due entries first and held them back afterwards found nothing, again and
/// again: the target stopped for good.
#[tokio::test]
async fn entries_held_back_behind_a_retried_one_do_not_starve_the_target() {
    let db = TestDatabase::new().await;
    let mut tickets = Vec::new();
    for _ in 0..3 {
        let cons_id = ticket(db.pool(), &["chatwoot"]).await;
        enqueue(db.pool(), cons_id, "chatwoot", "ticket.onec_number").await;
        tickets.push(cons_id);
    }
    // Each ticket's first entry failed and is due again now; its follow-up has waited longer.
    column(
        db.pool(),
        "UPDATE sys.outbox SET next_attempt_at = now() - CASE kind WHEN 'ticket.create'
             THEN interval '1 second' ELSE interval '1 hour' END, attempts = 1
         RETURNING '' AS value",
    )
    .await;
    let mut connection = db.pool().get().await.unwrap();
    let claimed = outbox::claim(
        &mut connection,
        "worker",
        &[Target::Chatwoot],
        2,
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let kinds: Vec<&str> = claimed.iter().map(|c| c.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["ticket.create", "ticket.create"],
        "the heads, not nothing"
    );
}

#[tokio::test]
async fn an_expired_lease_is_claimed_again_and_the_late_worker_is_fenced_off() {
    let db = TestDatabase::new().await;
    ticket(db.pool(), &["chatwoot"]).await;
    let mut connection = db.pool().get().await.unwrap();
    let first = outbox::claim(
        &mut connection,
        "worker-a",
        &[Target::Chatwoot],
        10,
        Duration::from_millis(200),
    )
    .await
    .unwrap();
    assert_eq!(first.len(), 1);
    let nothing = outbox::claim(
        &mut connection,
        "worker-b",
        &[Target::Chatwoot],
        10,
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert!(nothing.is_empty(), "a leased entry is nobody else's");

    // Time passes beyond the lease (on the database clock, the only clock leases use).
    column(
        db.pool(),
        "UPDATE sys.outbox SET lease_expires_at = now() - interval '1 millisecond' RETURNING '' AS value",
    )
    .await;
    let second = outbox::claim(
        &mut connection,
        "worker-b",
        &[Target::Chatwoot],
        10,
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].attempts, 2);

    // worker-a comes back late: its outcome is refused; worker-b's stands.
    let late = outbox::complete(
        &mut connection,
        &[(
            first[0].clone(),
            Outcome::Dead {
                error: "late".into(),
                http_status: None,
            },
        )],
    )
    .await
    .unwrap();
    assert!(late.is_empty());
    let current = outbox::complete(
        &mut connection,
        &[(
            second[0].clone(),
            Outcome::Delivered {
                effect: Effect::None,
            },
        )],
    )
    .await
    .unwrap();
    assert_eq!(current, [second[0].lease_token]);
    assert_eq!(
        column(db.pool(), "SELECT status AS value FROM sys.outbox").await,
        ["delivered"]
    );
}

/// A relay can hold two results for one entry: its own attempt whose lease expired, and
/// the attempt of its claim after that. Recorded together, only the current one counts:
/// one attempt logged, one set of effects (one follow-up), one delivery.
#[tokio::test]
async fn a_stale_and_a_current_result_for_one_entry_record_once() {
    let db = TestDatabase::new().await;
    ticket(db.pool(), &["onec"]).await;
    let mut connection = db.pool().get().await.unwrap();
    let claim = async |connection: &mut cons_store::pool::PooledConnection| {
        outbox::claim(
            connection,
            "worker-a",
            &[Target::Onec],
            10,
            Duration::from_secs(30),
        )
        .await
        .unwrap()
    };
    let stale = claim(&mut connection).await;
    column(
        db.pool(),
        "UPDATE sys.outbox SET lease_expires_at = now() - interval '1 millisecond' RETURNING '' AS value",
    )
    .await;
    let current = claim(&mut connection).await;
    assert_eq!((stale.len(), current.len()), (1, 1));
    assert_eq!(stale[0].id, current[0].id);
    let delivered = || Outcome::Delivered {
        effect: Effect::OnecTicket {
            counterparty_key: uuid::Uuid::now_v7(),
            ref_key: uuid::Uuid::now_v7(),
            number: "ЦЛ-000001".into(),
        },
    };

    let recorded = outbox::complete(
        &mut connection,
        &[
            (stale[0].clone(), delivered()),
            (current[0].clone(), delivered()),
        ],
    )
    .await
    .unwrap();

    assert_eq!(recorded, [current[0].lease_token]);
    assert_eq!(
        column(
            db.pool(),
            "SELECT kind || ' ' || status AS value FROM sys.outbox ORDER BY id",
        )
        .await,
        ["ticket.create delivered", "ticket.onec_number pending"]
    );
    assert_eq!(
        column(
            db.pool(),
            "SELECT attempt || ' ' || outcome AS value FROM sys.outbox_attempts",
        )
        .await,
        ["2 delivered"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_relays_never_work_on_one_entry_at_the_same_time() {
    let db = TestDatabase::new().await;
    for _ in 0..200 {
        ticket(db.pool(), &["chatwoot", "onec"]).await;
    }
    let busy = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let overlaps = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let make = |name: &str| {
        let (busy, overlaps) = (busy.clone(), overlaps.clone());
        let mut relay_settings = settings();
        relay_settings.owner = name.into();
        relay_settings.batch_size = 7;
        Relay::new(
            db.pool().clone(),
            relay_settings,
            Scripted::new(move |entry: &cons_store::outbox::Claimed| {
                if !busy.lock().unwrap().insert(entry.id) {
                    overlaps.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_micros(200));
                busy.lock().unwrap().remove(&entry.id);
                Ok(Effect::None)
            }),
        )
    };
    let (a, b) = (make("relay-a"), make("relay-b"));
    let (ra, rb) = tokio::join!(a.drain(), b.drain());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(overlaps.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(
        ra.attempts + rb.attempts,
        400,
        "every entry exactly once: {ra:?} {rb:?}"
    );
    assert!(
        ra.attempts > 0 && rb.attempts > 0,
        "both relays took work: {ra:?} {rb:?}"
    );
    assert_eq!(
        column(
            db.pool(),
            "SELECT count(*)::text AS value FROM sys.outbox WHERE status = 'delivered'"
        )
        .await,
        ["400"]
    );
}

#[tokio::test]
async fn delivered_effects_write_external_ids_history_and_follow_ups() {
    let db = TestDatabase::new().await;
    ticket(db.pool(), &["chatwoot", "onec"]).await;
    let ref_key = uuid::Uuid::now_v7();
    let counterparty = uuid::Uuid::now_v7();
    let relay = Relay::new(
        db.pool().clone(),
        settings(),
        Scripted::new(move |entry: &cons_store::outbox::Claimed| {
            match (entry.target.as_str(), entry.kind.as_str()) {
                ("chatwoot", "ticket.create") => Ok(Effect::ChatwootTicket {
                    contact_id: 42,
                    conversation_id: 118,
                }),
                ("onec", "ticket.create") => Ok(Effect::OnecTicket {
                    counterparty_key: counterparty,
                    ref_key,
                    number: "ЦЛ-000123".into(),
                }),
                _ => Ok(Effect::None),
            }
        }),
    );
    relay.drain().await.unwrap();
    let ticket_row = column(
        db.pool(),
        "SELECT chatwoot_conversation_id || ' ' || onec_ref_key || ' ' || onec_number AS value FROM cons.tickets",
    )
    .await;
    assert_eq!(ticket_row, [format!("118 {ref_key} ЦЛ-000123")]);
    let client_row = column(
        db.pool(),
        "SELECT chatwoot_contact_id || ' ' || onec_counterparty_key AS value FROM cons.clients",
    )
    .await;
    assert_eq!(client_row, [format!("42 {counterparty}")]);
    let history = column(
        db.pool(),
        "SELECT field || '=' || new_value || ' by ' || source AS value FROM cons.ticket_history ORDER BY field",
    )
    .await;
    assert_eq!(
        history,
        [
            "chatwoot_conversation_id=118 by chatwoot",
            "onec_number=ЦЛ-000123 by onec",
            "status=open by chatwoot"
        ]
    );
    assert_eq!(
        column(db.pool(), "SELECT status AS value FROM cons.tickets").await,
        ["open"],
        "in Chatwoot: open"
    );
    let follow_up = column(db.pool(), "SELECT target || ' ' || kind || ' ' || payload::text || ' ' || status AS value FROM sys.outbox WHERE kind <> 'ticket.create'").await;
    assert_eq!(
        follow_up,
        [r#"chatwoot ticket.onec_number {"number": "ЦЛ-000123"} delivered"#],
        "drained after the 1C entry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_loop_delivers_new_entries_when_woken_and_stops_on_shutdown() {
    let db = TestDatabase::new().await;
    let mut relay_settings = settings();
    relay_settings.poll_interval = Duration::from_secs(3600); // only a wake-up can start work
    let relay = std::sync::Arc::new(Relay::new(
        db.pool().clone(),
        relay_settings,
        Scripted::new(delivered),
    ));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(relay.clone().run(stopped));

    ticket(db.pool(), &["chatwoot", "onec"]).await;
    relay.waker().notify_waiters();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let delivered = column(
            db.pool(),
            "SELECT count(*)::text AS value FROM sys.outbox WHERE status = 'delivered'",
        )
        .await;
        if delivered == ["2"] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not delivered after a wake-up"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// Waits until `count` entries are delivered, failing after `limit`.
async fn wait_delivered(pool: &cons_store::Pool, count: usize, limit: Duration) {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let delivered = column(
            pool,
            "SELECT count(*)::text AS value FROM sys.outbox WHERE status = 'delivered'",
        )
        .await;
        if delivered == [count.to_string()] {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{delivered:?} of {count} delivered after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notify_after_commit_wakes_an_idle_relay_also_after_the_listening_session_is_lost() {
    let db = TestDatabase::new().await;
    let mut relay_settings = settings();
    relay_settings.poll_interval = Duration::from_secs(3600); // only NOTIFY can start work
    let relay = std::sync::Arc::new(Relay::new(
        db.pool().clone(),
        relay_settings,
        Scripted::new(delivered),
    ));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let listener = tokio::spawn(cons_relay::listener::listen(
        db.url().to_owned(),
        vec![(cons_store::wake::Channel::Outbox, relay.waker())],
        stopped.clone(),
    ));
    let running = tokio::spawn(relay.clone().run(stopped));
    // The listener is up once its LISTEN session exists.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let listening =
        "SELECT count(*)::text AS value FROM pg_stat_activity WHERE query = 'LISTEN outbox'";
    while column(db.pool(), listening).await != ["1"] {
        assert!(
            std::time::Instant::now() < deadline,
            "the listener never listened"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    ticket(db.pool(), &["chatwoot"]).await;
    wake(db.pool()).await;
    wait_delivered(db.pool(), 1, Duration::from_secs(5)).await;

    // The server drops the listening session; the listener reconnects and work still
    // starts on commit.
    let old = column(
        db.pool(),
        "SELECT pid::text AS value FROM pg_stat_activity WHERE query = 'LISTEN outbox'",
    )
    .await;
    column(db.pool(), "SELECT pg_terminate_backend(pid)::text AS value FROM pg_stat_activity WHERE query = 'LISTEN outbox'").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let fresh = format!(
        "SELECT count(*)::text AS value FROM pg_stat_activity WHERE query = 'LISTEN outbox' AND pid <> {}",
        old[0]
    );
    while column(db.pool(), &fresh).await != ["1"] {
        assert!(
            std::time::Instant::now() < deadline,
            "the listener did not reconnect"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ticket(db.pool(), &["chatwoot"]).await;
    wake(db.pool()).await;
    wait_delivered(db.pool(), 2, Duration::from_secs(5)).await;

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), listener)
        .await
        .unwrap()
        .unwrap();
}

/// What a writer does after committing entries.
async fn wake(pool: &cons_store::Pool) {
    let mut connection = pool.get().await.unwrap();
    cons_store::wake::notify(&mut connection, cons_store::wake::Channel::Outbox)
        .await
        .unwrap();
}

#[tokio::test]
async fn only_the_peers_own_failures_pause_it() {
    for (local, expected_attempts) in [(true, 2), (false, 1)] {
        let db = TestDatabase::new().await;
        let failing = ticket(db.pool(), &["chatwoot"]).await;
        ticket(db.pool(), &["chatwoot"]).await;
        let mut relay_settings = settings();
        relay_settings.batch_size = 1; // one claim per entry, so a pause shows between them
        relay_settings.pause.after_failures = 1;
        relay_settings.pause.pause = Duration::from_secs(3600);
        let relay = Relay::new(
            db.pool().clone(),
            relay_settings,
            Scripted::new(move |entry: &cons_store::outbox::Claimed| {
                if entry.cons_id != failing {
                    Ok(Effect::None)
                } else if local {
                    Err(DeliveryError::local("database unavailable"))
                } else {
                    Err(DeliveryError::retryable("HTTP 503"))
                }
            }),
        );
        let report = relay.drain().await.unwrap();
        assert_eq!(
            report.attempts, expected_attempts,
            "local failure: {local}: {report:?}"
        );
    }
}

/// The relay's sessions plan each statement once, without its parameters' values
/// (`generic_plans`), and that plan is made while the statistics may be stale. Claiming a
/// large batch and recording a small one must then still find rows by key: no scan of a
/// whole table, and no pass over every entry in flight per outcome (the first recording
/// statement did that once statistics counted few entries in flight).
#[tokio::test]
async fn generically_planned_claims_and_records_find_their_rows_by_key() {
    use cons_store::pool::{self, PoolSettings};
    use diesel_async::AsyncConnection;
    const IN_FLIGHT: i64 = 1000;
    const RECORDED: usize = 10;
    let db = TestDatabase::new().await;
    column(
        db.pool(),
        "WITH c AS (INSERT INTO cons.clients (client_id, name)
                    SELECT gen_random_uuid(), 'n' FROM generate_series(1, 10000) RETURNING client_id),
              t AS (INSERT INTO cons.tickets (cons_id, client_id, consultation_type, source, lang, sync_chatwoot, sync_onec, created_by)
                    SELECT gen_random_uuid(), c.client_id, 'accounting', 'site', 'ru', 'pending', 'pending', 'test'
                    FROM c RETURNING cons_id)
         INSERT INTO sys.outbox (cons_id, target, kind, payload)
         SELECT cons_id, 'chatwoot', 'ticket.create', '{}' FROM t RETURNING '' AS value",
    )
    .await;
    // Statistics that count nothing in flight.
    diesel_async::SimpleAsyncConnection::batch_execute(
        &mut db.pool().get().await.unwrap(),
        "ANALYZE",
    )
    .await
    .unwrap();
    let relay_pool = pool::build(
        db.url(),
        &PoolSettings {
            generic_plans: true,
            ..PoolSettings::for_tests()
        },
    )
    .unwrap();
    let mut connection = relay_pool.get().await.unwrap();
    // Never committed: `pg_stat_xact_user_tables` counts this transaction's reads.
    connection.begin_test_transaction().await.unwrap();
    let claimed = outbox::claim(
        &mut connection,
        "worker",
        &[Target::Chatwoot],
        IN_FLIGHT,
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert_eq!(claimed.len(), usize::try_from(IN_FLIGHT).unwrap());
    let reads = async |connection: &mut cons_store::pool::PooledConnection| {
        let row: Vec<String> = diesel_async::RunQueryDsl::load::<crate::Row>(
            diesel::sql_query(
                "SELECT (sum(seq_scan) FILTER (WHERE relname IN ('outbox', 'tickets', 'clients')))::text
                        || ' ' || (sum(idx_tup_fetch) FILTER (WHERE relname = 'outbox'))::text AS value
                 FROM pg_stat_xact_user_tables",
            ),
            connection,
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.value)
        .collect();
        let (scans, fetched) = row[0].split_once(' ').unwrap();
        (
            scans.parse::<i64>().unwrap(),
            fetched.parse::<i64>().unwrap(),
        )
    };
    let (scans_claiming, fetched_claiming) = reads(&mut connection).await;
    let outcomes: Vec<(cons_store::outbox::Claimed, Outcome)> = claimed[..RECORDED]
        .iter()
        .enumerate()
        .map(|(n, entry)| {
            let n = i64::try_from(n).unwrap();
            let effect = Effect::ChatwootTicket {
                contact_id: 1000 + n,
                conversation_id: 2000 + n,
            };
            (entry.clone(), Outcome::Delivered { effect })
        })
        .collect();
    let recorded = outbox::complete(&mut connection, &outcomes).await.unwrap();
    assert_eq!(recorded.len(), RECORDED);
    let (scans, fetched) = reads(&mut connection).await;
    assert_eq!(
        (scans_claiming, scans),
        (0, 0),
        "no table was scanned whole"
    );
    assert!(
        fetched - fetched_claiming < 10 * i64::try_from(RECORDED).unwrap(),
        "recording {RECORDED} outcomes read {} outbox rows; {IN_FLIGHT} are in flight",
        fetched - fetched_claiming
    );
}
