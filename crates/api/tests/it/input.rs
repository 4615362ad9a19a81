//! Bad input gets the envelope with the right status, names the field, and writes nothing.

use crate::{SITE_TOKEN, TestApp, assert_error, respond, ticket_body};
use serde_json::{Value, json};

fn with(path: &[&str], value: Value) -> Value {
    let mut body = ticket_body("+998901234567");
    let mut target = &mut body;
    for key in &path[..path.len() - 1] {
        target = &mut target[*key];
    }
    target[path[path.len() - 1]] = value;
    body
}

#[tokio::test]
async fn each_invalid_field_is_422_naming_it() {
    let app = TestApp::new().await;
    let in_days = |days: i64| (chrono::Utc::now() + chrono::Duration::days(days)).to_rfc3339();
    let cases: Vec<(Value, &str)> = vec![
        (
            with(&["client", "phone_number"], json!("998901234567")),
            "client.phone_number",
        ),
        (
            with(&["client", "phone_number"], json!("+998 90 123 45 67")),
            "client.phone_number",
        ),
        (
            with(&["client", "phone_number"], json!(998901234567u64)),
            "client.phone_number",
        ),
        (
            with(&["client", "org_inn"], json!("12345678")),
            "client.org_inn",
        ),
        (
            with(&["client", "org_inn"], json!("1234567890")),
            "client.org_inn",
        ),
        (
            with(&["client", "email"], json!("not-an-email")),
            "client.email",
        ),
        (
            with(&["client", "client_id"], json!("42")),
            "client.client_id",
        ),
        (
            with(&["client", "client_id"], json!(uuid::Uuid::now_v7())),
            "client.client_id",
        ),
        (with(&["client", "name"], json!("   ")), "client.name"),
        (with(&["client", "unknown"], json!(1)), "client.unknown"),
        (
            with(&["ticket", "consultation_type"], json!("legal")),
            "ticket.consultation_type",
        ),
        (with(&["ticket", "lang"], json!("en")), "ticket.lang"),
        (with(&["source"], json!("fax")), "source"),
        (
            with(&["ticket", "importance"], json!(0)),
            "ticket.importance",
        ),
        (
            with(&["ticket", "importance"], json!(4)),
            "ticket.importance",
        ),
        (
            with(&["ticket", "importance"], json!("high")),
            "ticket.importance",
        ),
        (
            with(
                &["ticket", "scheduled_at"],
                json!("2020-01-01T10:00:00+05:00"),
            ),
            "ticket.scheduled_at",
        ),
        (
            with(&["ticket", "scheduled_at"], json!(in_days(31))),
            "ticket.scheduled_at",
        ),
        (
            with(&["ticket", "scheduled_at"], json!("tomorrow")),
            "ticket.scheduled_at",
        ),
        (
            with(&["ticket", "comment"], json!("я".repeat(4001))),
            "ticket.comment",
        ),
        (
            with(&["ticket", "topic"], json!("t".repeat(256))),
            "ticket.topic",
        ),
        (
            json!({"ticket": ticket_body("+1")["ticket"], "source": "site"}),
            "client",
        ),
        (
            json!({"client": {"phone_number": "+998901234567"}, "ticket": ticket_body("+1")["ticket"], "source": "site"}),
            "client.name",
        ),
        (
            json!({"client": {"name": "A"}, "ticket": ticket_body("+1")["ticket"], "source": "site"}),
            "client.phone_number",
        ),
        (
            json!({"client": ticket_body("+998901234567")["client"], "source": "site"}),
            "ticket",
        ),
    ];
    for (body, field) in cases {
        let (status, _, answer) = app.create(&body, None).await;
        assert_error(status, &answer, 422, "validation_failed");
        assert!(
            answer["error"]["details"][field].is_string(),
            "{field}: {answer}"
        );
        // The reason never echoes the value (personal data stays out of answers and logs).
        assert!(!answer.to_string().contains("998901234567"), "{answer}");
    }
    let (status, _, _) = app
        .create(&with(&["ticket", "scheduled_at"], json!(in_days(29))), None)
        .await;
    assert_eq!(status, 201, "29 days ahead is allowed");
    assert_eq!(app.count("cons.tickets").await, 1);
    assert_eq!(app.count("cons.clients").await, 1);
}

#[tokio::test]
async fn every_error_of_one_body_is_reported_at_once() {
    let app = TestApp::new().await;
    let body = json!({
        "client": {"name": "A", "phone_number": "123", "org_inn": "1"},
        "ticket": {"consultation_type": "legal", "importance": 9},
        "source": "fax"
    });
    let (status, _, answer) = app.create(&body, None).await;
    assert_eq!(status, 422);
    let details = answer["error"]["details"].as_object().unwrap();
    for field in [
        "client.phone_number",
        "client.org_inn",
        "ticket.consultation_type",
        "ticket.importance",
        "source",
    ] {
        assert!(details.contains_key(field), "{field}: {answer}");
    }
}

#[tokio::test]
async fn malformed_json_wrong_type_and_oversized_bodies_are_refused() {
    let app = TestApp::new().await;
    let post = || {
        app.http
            .post(app.url("/api/tickets/create"))
            .bearer_auth(SITE_TOKEN)
    };

    let (status, _, body) = respond(
        post()
            .header("Content-Type", "application/json")
            .body("{\"client\": {\"name\": "),
    )
    .await;
    assert_error(status, &body, 400, "malformed_json");

    let (status, _, body) = respond(
        post()
            .header("Content-Type", "text/plain")
            .body(ticket_body("+998901234567").to_string()),
    )
    .await;
    assert_error(status, &body, 415, "unsupported_media_type");
    let (status, _, body) = respond(post().body(ticket_body("+998901234567").to_string())).await;
    assert_error(status, &body, 415, "unsupported_media_type");

    let mut huge = ticket_body("+998901234567");
    huge["ticket"]["comment"] = json!("x".repeat(70 * 1024));
    let (status, _, body) = respond(post().json(&huge)).await;
    assert_error(status, &body, 413, "payload_too_large");

    // Chunked, without a Content-Length, so the limit is enforced while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..80).map(|_| Ok(vec![b' '; 1024])).collect();
    let stream = futures_util::stream::iter(chunks);
    let (status, _, body) = respond(
        post()
            .header("Content-Type", "application/json")
            .body(reqwest::Body::wrap_stream(stream)),
    )
    .await;
    assert_error(status, &body, 413, "payload_too_large");

    let (status, _, body) = respond(
        post()
            .header("Content-Type", "application/json; charset=utf-8")
            .body("[1, 2]"),
    )
    .await;
    assert_error(status, &body, 422, "validation_failed");
    assert_eq!(app.count("cons.tickets").await, 0);
    assert_eq!(app.count("cons.clients").await, 0);
}
