//! The webhook receivers: signatures over the raw bytes, the timestamp window, the inbox
//! and its de-duplication, and every refusal leaving nothing behind.

use crate::{CHATWOOT_SECRET, ONEC_SECRET, TestApp, respond};
use serde_json::{Value, json};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../../shared/fixtures/chatwoot/webhooks/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(path).unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl TestApp {
    async fn deliver(
        &self,
        path: &str,
        (timestamp_header, signature_header): (&str, &str),
        secret: Option<&str>,
        timestamp: i64,
        body: &[u8],
    ) -> (u16, Value) {
        let mut request = self
            .http
            .post(self.url(path))
            .header("Content-Type", "application/json")
            .body(body.to_vec());
        if let Some(secret) = secret {
            let timestamp = timestamp.to_string();
            request = request.header(timestamp_header, &timestamp).header(
                signature_header,
                cons_sim::webhooks::sign(secret, &timestamp, body),
            );
        }
        let (status, _, body) = respond(request).await;
        (status, body)
    }

    async fn chatwoot(&self, secret: Option<&str>, timestamp: i64, body: &[u8]) -> (u16, Value) {
        let headers = ("X-Chatwoot-Timestamp", "X-Chatwoot-Signature");
        self.deliver("/webhook/chatwoot", headers, secret, timestamp, body)
            .await
    }

    async fn onec(&self, secret: Option<&str>, timestamp: i64, body: &[u8]) -> (u16, Value) {
        self.deliver(
            "/webhook/1c_cl",
            ("X-Timestamp", "X-Signature"),
            secret,
            timestamp,
            body,
        )
        .await
    }

    async fn inbox(&self) -> i64 {
        self.count("log.webhook_inbox").await
    }
}

#[tokio::test]
async fn every_chatwoot_fixture_is_recorded_once() {
    let app = TestApp::new().await;
    let handled = [
        "conversation_created.json",
        "conversation_status_changed.json",
        "conversation_updated.assignee.json",
        "conversation_updated.custom_attributes.json",
        "conversation_updated.status.json",
        "message_created.incoming.json",
        "message_created.outgoing.json",
        "message_created.outgoing.wire-body.txt",
        "message_created.private_note.json",
    ];
    for (i, name) in handled.iter().enumerate() {
        let body = fixture(name);
        let (status, answer) = app.chatwoot(Some(CHATWOOT_SECRET), now(), &body).await;
        assert_eq!(
            (status, &answer["status"]),
            (200, &json!("accepted")),
            "{name}"
        );
        // Chatwoot sends some events twice: the same bytes are one delivery.
        let (status, answer) = app.chatwoot(Some(CHATWOOT_SECRET), now() + 1, &body).await;
        assert_eq!(
            (status, &answer["status"]),
            (200, &json!("duplicate")),
            "{name}"
        );
        assert_eq!(app.inbox().await, i as i64 + 1);
    }
    for name in [
        "contact_created.json",
        "contact_updated.json",
        "conversation_typing_on.json",
        "message_updated.status_delivered.json",
    ] {
        let (status, answer) = app
            .chatwoot(Some(CHATWOOT_SECRET), now(), &fixture(name))
            .await;
        assert_eq!(
            (status, &answer["status"]),
            (200, &json!("ignored")),
            "{name}"
        );
    }
    assert_eq!(app.inbox().await, handled.len() as i64);
}

#[tokio::test]
async fn forged_unsigned_stale_and_malformed_deliveries_change_nothing() {
    let app = TestApp::new().await;
    let body = fixture("conversation_status_changed.json");
    let refused = [
        ("unsigned", app.chatwoot(None, now(), &body).await),
        (
            "another secret",
            app.chatwoot(Some("another-secret-0123456789"), now(), &body)
                .await,
        ),
        (
            "six minutes old",
            app.chatwoot(Some(CHATWOOT_SECRET), now() - 360, &body)
                .await,
        ),
        (
            "six minutes ahead",
            app.chatwoot(Some(CHATWOOT_SECRET), now() + 360, &body)
                .await,
        ),
    ];
    for (why, (status, answer)) in refused {
        assert_eq!(status, 401, "{why}");
        assert_eq!(answer["error"]["code"], "unauthorized", "{why}");
    }
    // A signature over the body alone (Chatwoot issue #13809's mistake) is refused.
    let body_only = app
        .http
        .post(app.url("/webhook/chatwoot"))
        .header("Content-Type", "application/json")
        .header("X-Chatwoot-Timestamp", now().to_string())
        .header(
            "X-Chatwoot-Signature",
            cons_sim::webhooks::sign(CHATWOOT_SECRET, "", &body).replace("sha256=", "sha256=0"),
        )
        .body(body.clone());
    assert_eq!(respond(body_only).await.0, 401);
    // Tampered after signing.
    let timestamp = now().to_string();
    let signature = cons_sim::webhooks::sign(CHATWOOT_SECRET, &timestamp, &body);
    let mut tampered = body.clone();
    tampered.push(b' ');
    let request = app
        .http
        .post(app.url("/webhook/chatwoot"))
        .header("Content-Type", "application/json")
        .header("X-Chatwoot-Timestamp", &timestamp)
        .header("X-Chatwoot-Signature", &signature)
        .body(tampered);
    assert_eq!(respond(request).await.0, 401);

    let (status, answer) = app
        .chatwoot(Some(CHATWOOT_SECRET), now(), b"{not json")
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("malformed_json"))
    );
    let (status, _) = app.chatwoot(Some(CHATWOOT_SECRET), now(), b"[1,2]").await;
    assert_eq!(status, 400);
    let wrong_type = app
        .http
        .post(app.url("/webhook/chatwoot"))
        .header("Content-Type", "text/plain")
        .body(body.clone());
    assert_eq!(respond(wrong_type).await.0, 415);
    let huge = format!(
        r#"{{"event":"message_created","content":"{}"}}"#,
        "x".repeat(300_000)
    );
    let (status, answer) = app
        .chatwoot(Some(CHATWOOT_SECRET), now(), huge.as_bytes())
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    assert_eq!(app.inbox().await, 0);
}

fn onec_event(event_id: &str) -> Value {
    json!({
        "event_id": event_id,
        "event": "consultation.updated",
        "occurred_at": "2026-11-27T10:00:00+05:00",
        "data": {
            "ref_key": "8f6c2a4e-1b2c-11f1-9a3b-00e04cd03b68",
            "number": "ЦЛ00-004812",
            "status_1c": "КонсультацияИТС",
            "end": "2026-11-27T09:58:00+05:00",
            "closed_without_consultation": false,
            "deletion_mark": false,
            "manager_key": null,
            "consultation_date": null,
            "date_changed": "2026-11-27T10:00:00+05:00",
            "data_version": "AAAAAQAAAAA=",
            "marker": "cons:0193c1a0-0000-7000-8000-000000000001"
        }
    })
}

#[tokio::test]
async fn a_onec_event_id_has_one_effect() {
    let app = TestApp::new().await;
    let body = serde_json::to_vec(&onec_event("evt-1")).unwrap();
    let (status, answer) = app.onec(Some(ONEC_SECRET), now(), &body).await;
    assert_eq!((status, &answer["status"]), (200, &json!("accepted")));
    // The same event id with other bytes (re-serialised by a retry) is still one event.
    let mut again = onec_event("evt-1");
    again["occurred_at"] = json!("2026-11-27T05:00:00Z");
    let again = serde_json::to_vec(&again).unwrap();
    let (status, answer) = app.onec(Some(ONEC_SECRET), now(), &again).await;
    assert_eq!((status, &answer["status"]), (200, &json!("duplicate")));
    assert_eq!(app.inbox().await, 1);

    assert_eq!(app.onec(None, now(), &body).await.0, 401);
    assert_eq!(app.onec(Some(CHATWOOT_SECRET), now(), &body).await.0, 401);
    assert_eq!(app.onec(Some(ONEC_SECRET), now() - 301, &body).await.0, 401);
    let mut bad = onec_event("evt-2");
    bad["data"]["ref_key"] = json!("not-a-guid");
    let (status, answer) = app
        .onec(Some(ONEC_SECRET), now(), &serde_json::to_vec(&bad).unwrap())
        .await;
    assert_eq!(status, 422);
    assert_eq!(answer["error"]["code"], "validation_failed");
    assert!(
        answer["error"]["details"]["data.ref_key"].is_string(),
        "{answer}"
    );
    assert!(
        !answer.to_string().contains("not-a-guid"),
        "never echoes values"
    );
    assert_eq!(app.inbox().await, 1);
}
