//! The ticket routes over HTTP: create, read, list, history, idempotency, authorisation.

use crate::{CALL_CENTRE_TOKEN, TestApp, assert_error, respond, ticket_body};
use cons_store::pool::PoolSettings;
use diesel_async::{AnsiTransactionManager, SimpleAsyncConnection, TransactionManager};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn create_answers_201_in_the_contract_shape_and_writes_the_outbox() {
    let app = TestApp::new().await;
    let (status, headers, body) = app.create(&ticket_body("+998901234567"), None).await;
    assert_eq!(status, 201, "{body}");
    let cons_id = body["cons_id"].as_str().unwrap();
    assert_eq!(
        headers["location"],
        format!("/api/tickets/{cons_id}").as_str()
    );
    assert!(uuid::Uuid::parse_str(body["client_id"].as_str().unwrap()).is_ok());
    assert_eq!(body["status"], "new");
    assert_eq!(body["consultation_type"], "accounting");
    assert_eq!(body["source"], "site");
    assert!(chrono::DateTime::parse_from_rfc3339(body["created_at"].as_str().unwrap()).is_ok());
    assert_eq!(
        body["chatwoot"],
        json!({"conversation_id": null, "contact_id": null})
    );
    assert_eq!(body["onec"], json!({"ref_key": null, "number": null}));
    assert_eq!(
        body["sync"],
        json!({"chatwoot": "pending", "onec": "pending"})
    );
    assert_eq!(app.count("sys.outbox").await, 2);
}

#[tokio::test]
async fn tech_support_is_not_applicable_to_1c() {
    let app = TestApp::new().await;
    let mut body = ticket_body("+998901234567");
    body["ticket"]["consultation_type"] = json!("tech_support");
    let (status, _, body) = app.create(&body, None).await;
    assert_eq!(status, 201);
    assert_eq!(
        body["sync"],
        json!({"chatwoot": "pending", "onec": "not_applicable"})
    );
    assert_eq!(app.count("sys.outbox").await, 1);
}

#[tokio::test]
async fn a_ticket_reads_back_with_updated_at_and_its_history() {
    let app = TestApp::new().await;
    let (_, _, created) = app.create(&ticket_body("+998901234567"), None).await;
    let cons_id = created["cons_id"].as_str().unwrap();

    let (status, ticket) = app.get(&format!("/api/tickets/{cons_id}")).await;
    assert_eq!(status, 200);
    for field in [
        "cons_id",
        "client_id",
        "status",
        "consultation_type",
        "source",
        "created_at",
        "chatwoot",
        "onec",
        "sync",
    ] {
        assert_eq!(ticket[field], created[field], "{field}");
    }
    assert!(ticket["updated_at"].is_string());
    assert_eq!(ticket["importance"], 2);
    assert_eq!(ticket["topic"], "Закрытие месяца");

    let (status, history) = app.get(&format!("/api/tickets/{cons_id}/history")).await;
    assert_eq!(status, 200);
    assert_eq!(history.as_array().unwrap().len(), 1);
    assert_eq!(history[0]["field"], "status");
    assert_eq!(history[0]["old"], json!(null));
    assert_eq!(history[0]["new"], "new");
    assert_eq!(history[0]["source"], "api");
    assert!(history[0]["at"].is_string());
}

#[tokio::test]
async fn unknown_or_malformed_ticket_ids_are_404() {
    let app = TestApp::new().await;
    let (status, body) = app
        .get(&format!("/api/tickets/{}", uuid::Uuid::now_v7()))
        .await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = app.get("/api/tickets/not-a-uuid").await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = app
        .get(&format!("/api/tickets/{}/history", uuid::Uuid::now_v7()))
        .await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = app.get("/api/no/such/route").await;
    assert_error(status, &body, 404, "not_found");
}

#[tokio::test]
async fn a_clients_tickets_come_newest_first_in_pages_with_a_cursor() {
    let app = TestApp::new().await;
    let mut created = Vec::new();
    for _ in 0..5 {
        let (_, _, body) = app.create(&ticket_body("+998901234567"), None).await;
        created.push(body["cons_id"].as_str().unwrap().to_owned());
    }
    let (_, _, first) = app.create(&ticket_body("+998901234567"), None).await;
    let client_id = first["client_id"].as_str().unwrap();
    created.push(first["cons_id"].as_str().unwrap().to_owned());
    created.reverse();

    let mut seen = Vec::new();
    let mut path = format!("/api/tickets/clients/{client_id}/tickets?limit=4");
    loop {
        let (status, page) = app.get(&path).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["cons_id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                path = format!("/api/tickets/clients/{client_id}/tickets?limit=4&cursor={cursor}")
            }
            None => break,
        }
    }
    assert_eq!(seen, created);

    let (status, page) = app
        .get(&format!("/api/tickets/clients/{client_id}/tickets"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["items"].as_array().unwrap().len(), 6);
    assert_eq!(page["next_cursor"], json!(null));

    for bad in ["limit=0", "limit=101", "limit=x", "cursor=zzz"] {
        let (status, body) = app
            .get(&format!("/api/tickets/clients/{client_id}/tickets?{bad}"))
            .await;
        assert_error(status, &body, 422, "validation_failed");
    }
    let (status, body) = app
        .get(&format!(
            "/api/tickets/clients/{}/tickets",
            uuid::Uuid::now_v7()
        ))
        .await;
    assert_error(status, &body, 404, "not_found");
}

#[tokio::test]
async fn every_ticket_route_refuses_a_missing_or_wrong_credential() {
    let app = TestApp::new().await;
    let (_, _, created) = app.create(&ticket_body("+998901234567"), None).await;
    let cons_id = created["cons_id"].as_str().unwrap();
    let client_id = created["client_id"].as_str().unwrap();
    let paths = [
        format!("/api/tickets/{cons_id}"),
        format!("/api/tickets/{cons_id}/history"),
        format!("/api/tickets/clients/{client_id}/tickets"),
    ];
    for path in &paths {
        for auth in [
            None,
            Some("Bearer wrong-token-0123456789"),
            Some("Basic c2l0ZTpzZWNyZXQ="),
            Some("Bearer "),
        ] {
            let mut request = app.http.get(app.url(path));
            if let Some(auth) = auth {
                request = request.header("Authorization", auth);
            }
            let (status, headers, body) = respond(request).await;
            assert_error(status, &body, 401, "unauthorized");
            assert_eq!(headers["www-authenticate"], "Bearer");
        }
    }
    let (status, _, body) = respond(
        app.http
            .post(app.url("/api/tickets/create"))
            .json(&ticket_body("+998901234567")),
    )
    .await;
    assert_error(status, &body, 401, "unauthorized");
    assert_eq!(app.count("cons.tickets").await, 1);
}

#[tokio::test]
async fn the_same_key_and_body_replay_the_first_answer_and_another_body_is_422() {
    let app = TestApp::new().await;
    let body = ticket_body("+998901234567");
    let (status, _, first) = app.create(&body, Some("order-42")).await;
    assert_eq!(status, 201);
    let (status, headers, again) = app.create(&body, Some("order-42")).await;
    assert_eq!(status, 201);
    assert_eq!(again, first);
    assert_eq!(headers["idempotent-replayed"], "true");

    let mut other = body.clone();
    other["ticket"]["comment"] = json!("another question");
    let (status, _, refused) = app.create(&other, Some("order-42")).await;
    assert_error(status, &refused, 422, "idempotency_key_reused");

    // Keys are the caller's own: the call centre's "order-42" is a new ticket.
    let (status, _, theirs) = respond(
        app.http
            .post(app.url("/api/tickets/create"))
            .bearer_auth(CALL_CENTRE_TOKEN)
            .header("Idempotency-Key", "order-42")
            .json(&body),
    )
    .await;
    assert_eq!(status, 201);
    assert_ne!(theirs["cons_id"], first["cons_id"]);
    assert_eq!(app.count("cons.tickets").await, 2);

    for bad in ["", &"k".repeat(256), "naïve"] {
        let (status, _, refused) = app.create(&body, Some(bad)).await;
        assert_error(status, &refused, 422, "validation_failed");
        assert!(refused["error"]["details"]["Idempotency-Key"].is_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_with_one_key_make_one_ticket() {
    let app = TestApp::with_pool(PoolSettings {
        max_size: 8,
        ..PoolSettings::for_tests()
    })
    .await;
    let body = ticket_body("+998901234567");
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let (http, url, body) = (
            app.http.clone(),
            app.url("/api/tickets/create"),
            body.clone(),
        );
        tasks.push(tokio::spawn(async move {
            respond(
                http.post(url)
                    .bearer_auth(crate::SITE_TOKEN)
                    .header("Idempotency-Key", "dup")
                    .json(&body),
            )
            .await
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        let (status, _, body) = task.await.unwrap();
        assert_eq!(status, 201, "{body}");
        ids.push(body["cons_id"].clone());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1);
    assert_eq!(app.count("cons.tickets").await, 1);
    assert_eq!(app.count("sys.outbox").await, 2);
}

/// Creates that arrive together are written in shared statements (one per batch); each
/// caller still gets the answer it would have had alone. The outbox is locked for a moment
/// so that requests queue up and the batches are certainly larger than one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_creates_is_batched_and_each_gets_its_own_answer() {
    let app = TestApp::with_pool(PoolSettings {
        max_size: 8,
        ..PoolSettings::for_tests()
    })
    .await;
    let alone = |phone: &str| {
        let mut body = ticket_body(phone);
        body["client"]["email"] = json!(null);
        body["client"]["org_inn"] = json!(null);
        body
    };
    let known = ["+998901000001", "+998901000002", "+998901000003"];
    for phone in known {
        let (status, _, body) = app.create(&alone(phone), None).await;
        assert_eq!(status, 201, "{body}");
    }
    let mut blocker = app.db.pool().get().await.unwrap();
    AnsiTransactionManager::begin_transaction(&mut *blocker)
        .await
        .unwrap();
    blocker
        .batch_execute("LOCK TABLE sys.outbox IN SHARE MODE")
        .await
        .unwrap();

    // (body, key, expected status)
    let mut burst: Vec<(serde_json::Value, Option<String>, u16)> = Vec::new();
    for i in 0..24 {
        burst.push((alone(known[i % 3]), None, 201));
    }
    for i in 0..4 {
        burst.push((alone(&format!("+99890200000{i}")), None, 201));
    }
    for _ in 0..3 {
        let mut body = alone(known[0]);
        body["client"] = json!({ "client_id": uuid::Uuid::now_v7() });
        burst.push((body, None, 422));
    }
    for i in 0..4 {
        // Each key twice with the same body: one ticket, the other answer a replay.
        for _ in 0..2 {
            burst.push((alone(known[i % 3]), Some(format!("pair-{i}")), 201));
        }
    }
    let tasks: Vec<_> = burst
        .into_iter()
        .map(|(body, key, expected)| {
            let (http, url) = (app.http.clone(), app.url("/api/tickets/create"));
            tokio::spawn(async move {
                let mut request = http.post(url).bearer_auth(crate::SITE_TOKEN).json(&body);
                if let Some(key) = &key {
                    request = request.header("Idempotency-Key", key);
                }
                let (status, headers, answer) = respond(request).await;
                (body, key, expected, status, headers, answer)
            })
        })
        .collect();
    // Every batch writer blocked on the lock: whatever arrives now queues. (If the burst
    // came in so fast that fewer batches formed, those already hold many tickets each.)
    app.lock_waiters_reach(cons_api::batching::MAX_IN_FLIGHT, Duration::from_secs(2))
        .await;
    AnsiTransactionManager::commit_transaction(&mut *blocker)
        .await
        .unwrap();

    let mut by_key: std::collections::HashMap<String, Vec<(String, bool)>> = Default::default();
    for task in tasks {
        let (body, key, expected, status, headers, answer) = task.await.unwrap();
        assert_eq!(status, expected, "{body} -> {answer}");
        if status == 422 {
            assert_eq!(answer["error"]["code"], "validation_failed", "{answer}");
            continue;
        }
        let phone = body["client"]["phone_number"].as_str().unwrap();
        let client: String = app
            .column(&format!(
                "SELECT client_id::text AS value FROM cons.clients WHERE phone_number = '{phone}'"
            ))
            .await
            .remove(0);
        assert_eq!(answer["client_id"], client.as_str(), "{body}");
        if let Some(key) = key {
            by_key.entry(key).or_default().push((
                answer["cons_id"].as_str().unwrap().to_owned(),
                headers.contains_key("idempotent-replayed"),
            ));
        }
    }
    for (key, answers) in &by_key {
        assert_eq!(answers[0].0, answers[1].0, "{key}: one ticket");
        assert_eq!(
            answers.iter().filter(|(_, replayed)| *replayed).count(),
            1,
            "{key}: one replay"
        );
    }
    // 3 before, 24 for known clients, 4 for new ones, 4 keyed pairs.
    assert_eq!(app.count("cons.tickets").await, 35);
    assert_eq!(app.count("cons.ticket_history").await, 35);
    assert_eq!(app.count("sys.outbox").await, 70);
    assert_eq!(app.count("sys.idempotency_keys").await, 4);
    assert_eq!(app.count("cons.clients").await, 7);
    // Tickets written by one statement share its transaction's time.
    let batched = app
        .column(
            "SELECT count(*)::text AS value FROM (SELECT created_at FROM cons.tickets
             GROUP BY created_at HAVING count(*) > 1) shared",
        )
        .await;
    assert_ne!(batched, ["0"], "no batch held more than one ticket");
}

/// The first request with `key`, as another API process would hold it: its ticket and
/// key inserted, not yet committed. Roll back or commit the returned connection.
async fn key_in_flight(app: &TestApp, key: &str) -> cons_store::pool::PooledConnection {
    let mut first = app.db.pool().get().await.unwrap();
    AnsiTransactionManager::begin_transaction(&mut *first)
        .await
        .unwrap();
    first
        .batch_execute(&format!(
            "INSERT INTO cons.clients (client_id, name) VALUES ('00000000-0000-7000-8000-000000000001', 'x');
             INSERT INTO cons.tickets (cons_id, client_id, consultation_type, source, lang, sync_chatwoot, sync_onec, created_by)
             VALUES ('00000000-0000-7000-8000-000000000002', '00000000-0000-7000-8000-000000000001',
                     'accounting', 'site', 'ru', 'pending', 'pending', 'service:site');
             INSERT INTO sys.idempotency_keys (principal, operation, key, request_sha256, cons_id)
             VALUES ('service:site', 'ticket.create', '{key}', '\\x00', '00000000-0000-7000-8000-000000000002');",
        ))
        .await
        .unwrap();
    first
}

#[tokio::test]
async fn a_request_whose_key_is_still_in_flight_is_409() {
    let app = TestApp::with_pool(PoolSettings {
        lock_timeout: Duration::from_millis(300),
        ..PoolSettings::for_tests()
    })
    .await;
    let mut first = key_in_flight(&app, "busy").await;
    let (status, headers, body) = app
        .create(&ticket_body("+998901234567"), Some("busy"))
        .await;
    assert_error(status, &body, 409, "idempotency_key_in_flight");
    assert!(headers.contains_key("retry-after"));
    AnsiTransactionManager::rollback_transaction(&mut *first)
        .await
        .unwrap();
    assert_eq!(app.count("cons.tickets").await, 0);
}

/// A create stuck behind a lock (its key still in flight elsewhere) holds up the others
/// for a moment at most: the next batch starts beside the stuck one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_waiting_on_a_lock_does_not_hold_up_the_others() {
    let app = TestApp::with_pool(PoolSettings {
        max_size: 8,
        lock_timeout: Duration::from_secs(3),
        ..PoolSettings::for_tests()
    })
    .await;
    let mut first = key_in_flight(&app, "busy").await;
    let stuck = {
        let (http, url) = (app.http.clone(), app.url("/api/tickets/create"));
        tokio::spawn(async move {
            respond(
                http.post(url)
                    .bearer_auth(crate::SITE_TOKEN)
                    .header("Idempotency-Key", "busy")
                    .json(&ticket_body("+998901234567")),
            )
            .await
        })
    };
    assert!(
        app.lock_waiters_reach(1, Duration::from_secs(10)).await,
        "the keyed create reached the key's lock"
    );

    let started = std::time::Instant::now();
    for i in 0..5 {
        let (status, _, body) = app
            .create(&ticket_body(&format!("+99890765432{i}")), None)
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let others = started.elapsed();
    assert!(!stuck.is_finished(), "the stuck create is still waiting");
    assert!(others < Duration::from_secs(1), "{others:?}");

    AnsiTransactionManager::rollback_transaction(&mut *first)
        .await
        .unwrap();
    let (status, _, body) = stuck.await.unwrap();
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn a_created_ticket_wakes_a_listening_relay() {
    use diesel_async::AsyncConnection;
    use futures_util::StreamExt;
    let app = TestApp::new().await;
    let mut listener = diesel_async::AsyncPgConnection::establish(app.db.url())
        .await
        .unwrap();
    listener.batch_execute("LISTEN outbox").await.unwrap();
    let (status, _, _) = app.create(&ticket_body("+998901234567"), None).await;
    assert_eq!(status, 201);
    let mut notifications = std::pin::pin!(listener.notifications_stream());
    let notification = tokio::time::timeout(Duration::from_secs(5), notifications.next()).await;
    assert_eq!(notification.unwrap().unwrap().unwrap().channel, "outbox");
}
