//! Telegram Mini App login, client sessions and what they may reach (R14): one identity is
//! one client; a session reads and writes only its own tickets; every refused credential
//! gets the envelope and writes nothing.

use crate::{BOT_TOKEN, SESSION_SECRET, TestApp, assert_error, init_data, respond, ticket_body};
use cons_api::access::session::SessionKeys;
use cons_api::access::telegram::TelegramLogin;
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;

fn telegram(init_data: &str) -> serde_json::Value {
    json!({"provider": "telegram", "init_data": init_data})
}

fn session_ticket() -> serde_json::Value {
    let mut body = ticket_body("+998901234567");
    body.as_object_mut().unwrap().remove("client");
    body["source"] = json!("telegram");
    body
}

#[tokio::test]
async fn a_telegram_login_answers_a_session_of_one_stable_client() {
    let app = TestApp::new().await;
    let (status, headers, body) = app.login(&telegram(&init_data(42, 5))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert!(body["access_token"].as_str().unwrap().len() > 20);
    assert_eq!(headers["cache-control"], "no-store");
    let client_id = body["client_id"].as_str().unwrap();

    let (_, again) = app.login_telegram(&init_data(42, 1)).await;
    assert_eq!(
        again, client_id,
        "the same Telegram user is the same client"
    );
    let (_, other) = app.login_telegram(&init_data(43, 1)).await;
    assert_ne!(other, client_id);
    assert_eq!(app.count("cons.clients").await, 2);
    assert_eq!(app.count("cons.client_identities").await, 2);
}

#[tokio::test]
async fn a_session_creates_and_reads_only_its_own_tickets() {
    let app = TestApp::new().await;
    let (token, own_id) = app.login_telegram(&init_data(42, 1)).await;
    // Another client's ticket, made by a trusted backend.
    let (_, _, other) = app.create(&ticket_body("+998907654321"), None).await;
    let (other_ticket, other_client) = (
        other["cons_id"].as_str().unwrap(),
        other["client_id"].as_str().unwrap(),
    );

    let (status, _, own) = app.create_as(&token, &session_ticket(), None).await;
    assert_eq!(status, 201, "{own}");
    assert_eq!(own["client_id"], own_id.as_str());
    let own_ticket = own["cons_id"].as_str().unwrap();

    // Naming itself is fine; naming another client is 403 and writes nothing.
    let mut body = session_ticket();
    body["client"] = json!({"client_id": own_id});
    assert_eq!(app.create_as(&token, &body, None).await.0, 201);
    body["client"] = json!({"client_id": other_client});
    let (status, _, refused) = app.create_as(&token, &body, None).await;
    assert_error(status, &refused, 403, "forbidden");
    assert_eq!(app.count("cons.tickets").await, 3);

    let (status, ticket) = app
        .get_as(&token, &format!("/api/tickets/{own_ticket}"))
        .await;
    assert_eq!(
        (status, ticket["cons_id"].as_str()),
        (200, Some(own_ticket))
    );
    let (status, page) = app
        .get_as(&token, &format!("/api/tickets/clients/{own_id}/tickets"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);

    // Someone else's ticket, history and list look exactly like unknown ones.
    for path in [
        format!("/api/tickets/{other_ticket}"),
        format!("/api/tickets/{other_ticket}/history"),
        format!("/api/tickets/clients/{other_client}/tickets"),
        format!("/api/tickets/{}", Uuid::now_v7()),
    ] {
        let (status, body) = app.get_as(&token, &path).await;
        assert_error(status, &body, 404, "not_found");
    }
}

#[tokio::test]
async fn refused_telegram_logins_are_401_and_write_nothing() {
    let app = TestApp::new().await;
    let another_bot = TelegramLogin::new("654321:another-bot", Duration::from_secs(86_400));
    let now = chrono::Utc::now().timestamp().to_string();
    let fresh = init_data(42, 0);
    let cases = [
        // stale: older than TELEGRAM_MAX_AGE_SECONDS (one day)
        init_data(42, 86_400 + 60),
        // from the future
        init_data(42, -600),
        // tampered: another user id under the same hash
        fresh.replace("%3A42", "%3A43"),
        // another bot's initData
        another_bot.sign(&[("auth_date", &now), ("user", r#"{"id":42}"#)]),
        // Telegram's public vector: valid for its own bot only, and years old
        "query_id=AAHdF6IQAAAAAN0XohDhrOrc&user=%7B%22id%22%3A279058397%7D&auth_date=1662771648&hash=c501b71e775f74ce10e377dea85a7ea24ecd640b223ea86dfe453e0eaed2e2b2".into(),
        // no hash, garbage
        "user=%7B%22id%22%3A42%7D".into(),
        "%%%".into(),
    ];
    assert_ne!(cases[2], fresh, "the tampering changed something");
    for case in &cases {
        let (status, headers, body) = app.login(&telegram(case)).await;
        assert_error(status, &body, 401, "unauthorized");
        assert_eq!(headers["www-authenticate"], "Bearer");
    }
    // OIDC is not configured in this app.
    let (status, _, body) = app
        .login(&json!({"provider": "oidc", "id_token": "a.b.c"}))
        .await;
    assert_error(status, &body, 401, "unauthorized");
    assert_eq!(app.count("cons.clients").await, 0);
    assert_eq!(app.count("cons.client_identities").await, 0);
}

#[tokio::test]
async fn malformed_login_requests_are_refused_with_the_field() {
    let app = TestApp::new().await;
    for (body, field) in [
        (json!({"provider": "facebook", "id_token": "x"}), "provider"),
        (json!({"provider": "telegram"}), "init_data"),
        (json!({"provider": "oidc", "id_token": ""}), "id_token"),
        (
            json!({"provider": "telegram", "init_data": "x", "extra": 1}),
            "extra",
        ),
    ] {
        let (status, _, answer) = app.login(&body).await;
        assert_error(status, &answer, 422, "validation_failed");
        assert!(answer["error"]["details"][field].is_string(), "{answer}");
    }
    let (status, _, answer) = respond(
        app.http
            .post(app.url("/api/auth/login"))
            .header("Content-Type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_error(status, &answer, 400, "malformed_json");
}

#[tokio::test]
async fn no_ticket_route_is_reachable_without_a_valid_credential() {
    let app = TestApp::new().await;
    let (token, client_id) = app.login_telegram(&init_data(42, 1)).await;
    let client = Uuid::parse_str(&client_id).unwrap();
    let now = chrono::Utc::now().timestamp();
    let keys = SessionKeys::parse(SESSION_SECRET, Duration::from_secs(3600)).unwrap();
    let foreign_keys = SessionKeys::parse(
        "another-secret-0123456789abcdef-xyz",
        Duration::from_secs(3600),
    )
    .unwrap();
    let (head, _) = token.rsplit_once('.').unwrap();
    let credentials = [
        None,
        Some(String::new()),
        Some("not-a-token".to_owned()),
        // expired an hour ago
        Some(keys.issue(client, now - 7200).unwrap().token),
        // signed with a secret we do not hold
        Some(foreign_keys.issue(client, now).unwrap().token),
        // our token with its signature cut off or replaced
        Some(format!("{head}.")),
        Some(format!("{head}.{}", "A".repeat(43))),
        // the bot token is not a credential
        Some(BOT_TOKEN.to_owned()),
    ];
    let ticket = format!("/api/tickets/{}", Uuid::now_v7());
    for credential in &credentials {
        for (method, path) in [
            ("POST", "/api/tickets/create".to_owned()),
            ("GET", ticket.clone()),
            ("GET", format!("{ticket}/history")),
            ("GET", format!("/api/tickets/clients/{client_id}/tickets")),
        ] {
            let mut request = match method {
                "POST" => app.http.post(app.url(&path)).json(&session_ticket()),
                _ => app.http.get(app.url(&path)),
            };
            if let Some(credential) = credential {
                request = request.bearer_auth(credential);
            }
            let (status, _, body) = respond(request).await;
            assert_error(status, &body, 401, "unauthorized");
        }
    }
    assert_eq!(app.count("cons.tickets").await, 0);
}
