//! Ticket creation: what one create writes, client matching, idempotency keys, atomicity
//! and concurrency.

use crate::{ticket_for, with_email, with_inn};
use cons_domain::{ClientRef, ConsultationType, NewTicket, Source};
use cons_store::pool::{self, PoolSettings};
use cons_store::tickets::{self, CreateOutcome, CreateTicket, CreatedTicket, IdempotencyKey};
use cons_store::{Pool, StoreError};
use cons_testdb::TestDatabase;
use diesel::sql_types::BigInt;
use diesel_async::{
    AnsiTransactionManager, RunQueryDsl, SimpleAsyncConnection, TransactionManager,
};
use std::time::Duration;
use uuid::Uuid;

async fn create(
    pool: &Pool,
    command: &NewTicket,
    key: Option<(&str, u8)>,
) -> Result<CreateOutcome, StoreError> {
    create_as(pool, "service:site", command, key).await
}

async fn create_as(
    pool: &Pool,
    principal: &str,
    command: &NewTicket,
    key: Option<(&str, u8)>,
) -> Result<CreateOutcome, StoreError> {
    let mut connection = pool.get().await?;
    let request = CreateTicket {
        command,
        principal,
        idempotency: key.map(|(key, body)| IdempotencyKey {
            key: key.into(),
            request_sha256: [body; 32],
        }),
    };
    tickets::create(&mut connection, &request).await
}

fn created(outcome: CreateOutcome) -> CreatedTicket {
    match outcome {
        CreateOutcome::Created(created) => created,
        other => panic!("expected Created, got {other:?}"),
    }
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

pub(crate) async fn count(pool: &Pool, sql: &str) -> i64 {
    let mut connection = pool.get().await.unwrap();
    diesel::sql_query(sql)
        .get_result::<Count>(&mut connection)
        .await
        .unwrap()
        .n
}

#[tokio::test]
async fn an_accounting_ticket_is_written_with_its_history_and_one_outbox_entry_per_peer() {
    let db = TestDatabase::new().await;
    let ticket = created(
        create(db.pool(), &ticket_for("+998901234567"), None)
            .await
            .unwrap(),
    );

    assert_eq!(ticket.consultation_type, ConsultationType::Accounting);
    assert_eq!(ticket.source, Source::Site);
    let mut connection = db.pool().get().await.unwrap();
    let view = tickets::get(&mut connection, ticket.cons_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.ticket.status, "new");
    assert_eq!(view.ticket.client_id, ticket.client_id);
    assert_eq!(
        (
            view.ticket.sync_chatwoot.as_str(),
            view.ticket.sync_onec.as_str()
        ),
        ("pending", "pending")
    );
    assert_eq!(
        count(
            db.pool(),
            "SELECT count(*) AS n FROM cons.tickets WHERE created_by = 'service:site'"
        )
        .await,
        1
    );
    let history = tickets::history(&mut connection, ticket.cons_id)
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(
        (
            history[0].field.as_str(),
            history[0].old_value.as_deref(),
            history[0].new_value.as_deref()
        ),
        ("status", None, Some("new"))
    );
    assert_eq!(
        count(db.pool(), "SELECT count(*) AS n FROM sys.outbox WHERE target IN ('chatwoot', 'onec') AND status = 'pending' AND kind = 'ticket.create'").await,
        2
    );
}

#[tokio::test]
async fn a_tech_support_ticket_goes_to_chatwoot_only() {
    let db = TestDatabase::new().await;
    let mut command = ticket_for("+998901234567");
    command.ticket.consultation_type = ConsultationType::TechSupport;
    let ticket = created(create(db.pool(), &command, None).await.unwrap());
    let mut connection = db.pool().get().await.unwrap();
    let view = tickets::get(&mut connection, ticket.cons_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.ticket.sync_onec, "not_applicable");
    assert_eq!(
        count(
            db.pool(),
            "SELECT count(*) AS n FROM sys.outbox WHERE target = 'chatwoot'"
        )
        .await,
        1
    );
    assert_eq!(
        count(db.pool(), "SELECT count(*) AS n FROM sys.outbox").await,
        1
    );
}

#[tokio::test]
async fn clients_are_found_by_phone_then_email_then_inn() {
    let db = TestDatabase::new().await;
    let first = created(
        create(
            db.pool(),
            &with_inn(
                with_email(ticket_for("+998901111111"), "a@example.uz"),
                "301234567",
            ),
            None,
        )
        .await
        .unwrap(),
    );
    let by_phone = created(
        create(db.pool(), &ticket_for("+998901111111"), None)
            .await
            .unwrap(),
    );
    let by_email = created(
        create(
            db.pool(),
            &with_email(ticket_for("+998902222222"), "A@Example.uz"),
            None,
        )
        .await
        .unwrap(),
    );
    let by_inn = created(
        create(
            db.pool(),
            &with_inn(ticket_for("+998903333333"), "301234567"),
            None,
        )
        .await
        .unwrap(),
    );
    let other = created(
        create(db.pool(), &ticket_for("+998904444444"), None)
            .await
            .unwrap(),
    );

    assert_eq!(by_phone.client_id, first.client_id);
    assert_eq!(by_email.client_id, first.client_id);
    assert_eq!(by_inn.client_id, first.client_id);
    assert_ne!(other.client_id, first.client_id);
    assert_eq!(
        count(db.pool(), "SELECT count(*) AS n FROM cons.clients").await,
        2
    );
}

#[tokio::test]
async fn an_existing_client_is_used_by_id_and_an_unknown_id_writes_nothing() {
    let db = TestDatabase::new().await;
    let first = created(
        create(db.pool(), &ticket_for("+998901234567"), None)
            .await
            .unwrap(),
    );
    let mut command = ticket_for("+998901234567");
    command.client = ClientRef::Existing(first.client_id);
    assert_eq!(
        created(create(db.pool(), &command, None).await.unwrap()).client_id,
        first.client_id
    );

    command.client = ClientRef::Existing(Uuid::now_v7());
    assert_eq!(
        create(db.pool(), &command, Some(("k", 1))).await.unwrap(),
        CreateOutcome::UnknownClient
    );
    assert_eq!(
        count(db.pool(), "SELECT count(*) AS n FROM cons.tickets").await,
        2
    );
    assert_eq!(
        count(db.pool(), "SELECT count(*) AS n FROM sys.idempotency_keys").await,
        0
    );
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_ticket_and_refuses_another_body() {
    let db = TestDatabase::new().await;
    let command = ticket_for("+998901234567");
    let first = created(
        create(db.pool(), &command, Some(("key-1", 1)))
            .await
            .unwrap(),
    );

    assert_eq!(
        create(db.pool(), &command, Some(("key-1", 1)))
            .await
            .unwrap(),
        CreateOutcome::Replayed(first.clone())
    );
    assert_eq!(
        create(db.pool(), &command, Some(("key-1", 2)))
            .await
            .unwrap(),
        CreateOutcome::KeyReused
    );
    // Keys are scoped to the caller: another service's "key-1" is its own.
    let theirs = created(
        create_as(
            db.pool(),
            "service:call-centre",
            &command,
            Some(("key-1", 2)),
        )
        .await
        .unwrap(),
    );
    assert_ne!(theirs.cons_id, first.cons_id);
    assert_eq!(
        count(db.pool(), "SELECT count(*) AS n FROM cons.tickets").await,
        2
    );
    assert_eq!(
        count(db.pool(), "SELECT count(*) AS n FROM sys.outbox").await,
        4
    );
}

/// From now on the outbox refuses every 1C entry: the last write of an accounting create.
async fn refuse_onec_entries(db: &TestDatabase) {
    let mut connection = db.pool().get().await.unwrap();
    connection
        .batch_execute(
            "CREATE FUNCTION sys.refuse_onec() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN IF NEW.target = 'onec' THEN RAISE EXCEPTION 'outbox refused'; END IF; RETURN NEW; END $$;
             CREATE TRIGGER refuse_onec BEFORE INSERT ON sys.outbox FOR EACH ROW EXECUTE FUNCTION sys.refuse_onec();",
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn the_ticket_and_its_outbox_entries_commit_or_roll_back_together() {
    let db = TestDatabase::new().await;
    // Make the last write of the create fail: the outbox refuses its second entry.
    refuse_onec_entries(&db).await;

    let error = create(db.pool(), &ticket_for("+998901234567"), Some(("k", 1)))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("outbox refused"), "{error}");
    for table in [
        "cons.clients",
        "cons.tickets",
        "cons.ticket_history",
        "sys.outbox",
        "sys.idempotency_keys",
    ] {
        assert_eq!(
            count(db.pool(), &format!("SELECT count(*) AS n FROM {table}")).await,
            0,
            "{table}"
        );
    }
}

fn request<'a>(
    command: &'a NewTicket,
    principal: &'a str,
    key: Option<(&str, u8)>,
) -> CreateTicket<'a> {
    CreateTicket {
        command,
        principal,
        idempotency: key.map(|(key, body)| IdempotencyKey {
            key: key.into(),
            request_sha256: [body; 32],
        }),
    }
}

#[tokio::test]
async fn a_batch_creates_the_tickets_of_known_clients_and_leaves_the_rest_to_the_single_create() {
    let db = TestDatabase::new().await;
    let known = created(
        create(db.pool(), &ticket_for("+998901111111"), Some(("taken", 1)))
            .await
            .unwrap(),
    );
    let by_phone = ticket_for("+998901111111");
    let mut by_id = ticket_for("+998909999999");
    by_id.client = ClientRef::Existing(known.client_id);
    by_id.ticket.consultation_type = ConsultationType::TechSupport;
    let new_client = ticket_for("+998902222222");
    let mut nobody = ticket_for("+998903333333");
    nobody.client = ClientRef::Existing(Uuid::now_v7());
    let batch = [
        request(&by_phone, "service:site", None),
        request(&by_id, "service:call-centre", Some(("k1", 1))),
        request(&new_client, "service:site", None),
        request(&nobody, "service:site", None),
        // The same key again in the same batch, and a key used before.
        request(&by_phone, "service:call-centre", Some(("k1", 1))),
        request(&by_phone, "service:site", Some(("taken", 2))),
    ];

    let mut connection = db.pool().get().await.unwrap();
    let outcome = tickets::create_batch(&mut connection, &batch)
        .await
        .unwrap();

    let made: Vec<bool> = outcome.iter().map(Option::is_some).collect();
    assert_eq!(made, [true, true, false, false, false, false]);
    for created in outcome.iter().flatten() {
        assert_eq!(created.client_id, known.client_id);
    }
    assert_eq!(
        outcome[1].as_ref().unwrap().consultation_type,
        ConsultationType::TechSupport
    );
    let batch_ids = format!(
        "('{}', '{}')",
        outcome[0].as_ref().unwrap().cons_id,
        outcome[1].as_ref().unwrap().cons_id
    );
    for (sql, expected) in [
        (
            format!(
                "SELECT count(*) AS n FROM cons.tickets WHERE cons_id IN {batch_ids} AND status = 'new'"
            ),
            2,
        ),
        (
            format!(
                "SELECT count(*) AS n FROM cons.tickets WHERE cons_id IN {batch_ids} AND sync_onec = 'not_applicable' AND created_by = 'service:call-centre'"
            ),
            1,
        ),
        (
            format!(
                "SELECT count(*) AS n FROM cons.ticket_history WHERE cons_id IN {batch_ids} AND new_value = 'new' AND source = 'api'"
            ),
            2,
        ),
        // Accounting: Chatwoot and 1C; tech support: Chatwoot only.
        (
            format!(
                "SELECT count(*) AS n FROM sys.outbox WHERE cons_id IN {batch_ids} AND kind = 'ticket.create' AND status = 'pending'"
            ),
            3,
        ),
        (
            "SELECT count(*) AS n FROM sys.idempotency_keys".to_owned(),
            2,
        ),
        ("SELECT count(*) AS n FROM cons.clients".to_owned(), 1),
    ] {
        assert_eq!(count(db.pool(), &sql).await, expected, "{sql}");
    }

    // What the batch left, the single create settles.
    let rest: Vec<CreateOutcome> = {
        let mut rest = Vec::new();
        for request in &batch[2..] {
            rest.push(tickets::create(&mut connection, request).await.unwrap());
        }
        rest
    };
    assert!(matches!(rest[0], CreateOutcome::Created(_)));
    assert_eq!(rest[1], CreateOutcome::UnknownClient);
    assert_eq!(
        rest[2],
        CreateOutcome::Replayed(outcome[1].clone().unwrap())
    );
    assert_eq!(rest[3], CreateOutcome::KeyReused);
}

#[tokio::test]
async fn a_batch_commits_or_rolls_back_as_a_whole() {
    let db = TestDatabase::new().await;
    created(
        create(db.pool(), &ticket_for("+998901111111"), None)
            .await
            .unwrap(),
    );
    refuse_onec_entries(&db).await;
    let mut connection = db.pool().get().await.unwrap();
    let mut tech_support = ticket_for("+998901111111");
    tech_support.ticket.consultation_type = ConsultationType::TechSupport;
    let accounting = ticket_for("+998901111111");

    // The tech-support ticket alone would pass; the accounting one's 1C entry fails.
    let error = tickets::create_batch(
        &mut connection,
        &[
            request(&tech_support, "service:site", Some(("a", 1))),
            request(&accounting, "service:site", Some(("b", 1))),
        ],
    )
    .await
    .unwrap_err();

    assert!(error.to_string().contains("outbox refused"), "{error}");
    for (table, before) in [
        ("cons.tickets", 1),
        ("cons.ticket_history", 1),
        ("sys.outbox", 2),
        ("sys.idempotency_keys", 0),
    ] {
        assert_eq!(
            count(db.pool(), &format!("SELECT count(*) AS n FROM {table}")).await,
            before,
            "{table}"
        );
    }
}

/// A pool big enough for the concurrency tests.
pub(crate) fn wide_pool(db: &TestDatabase, lock_timeout: Duration) -> Pool {
    let settings = PoolSettings {
        max_size: 16,
        lock_timeout,
        ..PoolSettings::for_tests()
    };
    pool::build(db.url(), &settings).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_for_one_new_client_create_it_once() {
    let db = TestDatabase::new().await;
    let pool = wide_pool(&db, Duration::from_secs(5));
    let command = ticket_for("+998901234567");
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (pool, command) = (pool.clone(), command.clone());
            tokio::spawn(async move { created(create(&pool, &command, None).await.unwrap()) })
        })
        .collect();
    let mut clients = Vec::new();
    for task in tasks {
        clients.push(task.await.unwrap().client_id);
    }
    clients.dedup();
    assert_eq!(clients.len(), 1, "every ticket belongs to the one client");
    assert_eq!(
        count(&pool, "SELECT count(*) AS n FROM cons.clients").await,
        1
    );
    assert_eq!(
        count(&pool, "SELECT count(*) AS n FROM cons.tickets").await,
        16
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_duplicates_with_one_key_make_one_ticket() {
    let db = TestDatabase::new().await;
    let pool = wide_pool(&db, Duration::from_secs(5));
    let command = ticket_for("+998901234567");
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (pool, command) = (pool.clone(), command.clone());
            tokio::spawn(async move {
                create(&pool, &command, Some(("same-key", 7)))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut cons_ids = Vec::new();
    let mut created_count = 0;
    for task in tasks {
        match task.await.unwrap() {
            CreateOutcome::Created(ticket) => {
                created_count += 1;
                cons_ids.push(ticket.cons_id);
            }
            CreateOutcome::Replayed(ticket) => cons_ids.push(ticket.cons_id),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(created_count, 1);
    cons_ids.dedup();
    assert_eq!(cons_ids.len(), 1);
    assert_eq!(
        count(&pool, "SELECT count(*) AS n FROM cons.tickets").await,
        1
    );
    assert_eq!(
        count(&pool, "SELECT count(*) AS n FROM sys.outbox").await,
        2
    );
}

#[tokio::test]
async fn a_key_whose_first_request_is_still_running_times_out_as_a_lock_wait() {
    let db = TestDatabase::new().await;
    let pool = wide_pool(&db, Duration::from_millis(300));
    let command = ticket_for("+998901234567");

    // The "first request": its transaction holds the key and has not committed.
    let mut first = pool.get().await.unwrap();
    AnsiTransactionManager::begin_transaction(&mut *first)
        .await
        .unwrap();
    let CreateOutcome::Created(_) = tickets::create(
        &mut first,
        &CreateTicket {
            command: &command,
            principal: "service:site",
            idempotency: Some(IdempotencyKey {
                key: "k".into(),
                request_sha256: [1; 32],
            }),
        },
    )
    .await
    .unwrap() else {
        panic!("the first request creates");
    };

    let second = create(&pool, &command, Some(("k", 1))).await;
    assert!(matches!(second, Err(StoreError::LockTimeout)), "{second:?}");

    // Once the first one is gone (rolled back here), the key is free again.
    AnsiTransactionManager::rollback_transaction(&mut *first)
        .await
        .unwrap();
    drop(first);
    assert!(matches!(
        create(&pool, &command, Some(("k", 1))).await.unwrap(),
        CreateOutcome::Created(_)
    ));
}

#[tokio::test]
async fn a_clients_tickets_are_listed_newest_first_in_keyset_pages() {
    let db = TestDatabase::new().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(created(
            create(db.pool(), &ticket_for("+998901234567"), None)
                .await
                .unwrap(),
        ));
    }
    let client_id = ids[0].client_id;
    let mut connection = db.pool().get().await.unwrap();
    let page = tickets::list_for_client(&mut connection, client_id, None, 3)
        .await
        .unwrap();
    let listed: Vec<Uuid> = page.iter().map(|v| v.ticket.cons_id).collect();
    assert_eq!(listed, vec![ids[4].cons_id, ids[3].cons_id, ids[2].cons_id]);
    let rest = tickets::list_for_client(&mut connection, client_id, Some(ids[2].cons_id), 3)
        .await
        .unwrap();
    let listed: Vec<Uuid> = rest.iter().map(|v| v.ticket.cons_id).collect();
    assert_eq!(listed, vec![ids[1].cons_id, ids[0].cons_id]);
    assert!(
        tickets::client_exists(&mut connection, client_id)
            .await
            .unwrap()
    );
    assert!(
        !tickets::client_exists(&mut connection, Uuid::now_v7())
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn an_unreachable_database_is_reported_as_unavailable() {
    // Nothing listens on port 1.
    let settings = PoolSettings {
        acquire_timeout: Duration::from_millis(500),
        ..PoolSettings::for_tests()
    };
    let pool = pool::build("postgres://postgres@127.0.0.1:1/none", &settings).unwrap();
    let error = pool::ping(&pool).await.unwrap_err();
    assert!(error.is_unavailable(), "{error:?}");
}
