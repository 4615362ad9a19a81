//! Abuse limits and CORS over HTTP: logins per IP and tickets per client session answer
//! 429 with `Retry-After`; only configured origins get CORS headers, never credentials.

use crate::{TestApp, access_config, assert_error, init_data, respond, ticket_body};
use cons_api::access::{Access, JWKS_REFRESH_INTERVAL};
use serde_json::json;

async fn app_with(pairs: &[(&str, &str)]) -> TestApp {
    TestApp::with_access(Access::new(&access_config(pairs), JWKS_REFRESH_INTERVAL).unwrap()).await
}

#[tokio::test]
async fn logins_from_one_address_are_limited_with_retry_after() {
    let app = app_with(&[("LOGIN_RATE_PER_MINUTE", "2")]).await;
    let body = json!({"provider": "telegram", "init_data": init_data(42, 1)});
    assert_eq!(app.login(&body).await.0, 200);
    // Refused logins count too: guessing is what the limit is for.
    let bad = json!({"provider": "telegram", "init_data": "hash=00"});
    assert_eq!(app.login(&bad).await.0, 401);
    let (status, headers, answer) = app.login(&body).await;
    assert_error(status, &answer, 429, "rate_limited");
    let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry_after), "{retry_after}");
}

#[tokio::test]
async fn ticket_creation_is_limited_per_client_session_not_per_service() {
    let app = app_with(&[("TICKET_RATE_PER_MINUTE", "1")]).await;
    let (alice, _) = app.login_telegram(&init_data(42, 1)).await;
    let (bob, _) = app.login_telegram(&init_data(43, 1)).await;
    let mut body = ticket_body("+998901234567");
    body.as_object_mut().unwrap().remove("client");

    assert_eq!(app.create_as(&alice, &body, None).await.0, 201);
    let (status, headers, answer) = app.create_as(&alice, &body, None).await;
    assert_error(status, &answer, 429, "rate_limited");
    assert!(headers.contains_key("retry-after"));
    assert_eq!(app.create_as(&bob, &body, None).await.0, 201, "per client");
    for phone in ["+998901111111", "+998902222222"] {
        assert_eq!(app.create(&ticket_body(phone), None).await.0, 201);
    }
    assert_eq!(app.count("cons.tickets").await, 4);
}

#[tokio::test]
async fn only_configured_origins_get_cors_headers_and_never_credentials() {
    let app = app_with(&[("CORS_ALLOWED_ORIGINS", "https://app.example.uz")]).await;
    let preflight = |origin: &str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/api/auth/login"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "content-type")
    };
    let (status, headers, _) = respond(preflight("https://app.example.uz")).await;
    assert_eq!(status, 204);
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example.uz"
    );
    assert!(
        headers["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("Authorization")
    );
    assert!(!headers.contains_key("access-control-allow-credentials"));

    let (_, headers, _) = respond(preflight("https://evil.example")).await;
    assert!(!headers.contains_key("access-control-allow-origin"));

    let (status, headers, _) = respond(
        app.http
            .get(app.url("/api/health"))
            .header("Origin", "https://app.example.uz"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example.uz"
    );
    assert_eq!(headers["vary"], "Origin");
    let (_, headers, _) = respond(
        app.http
            .get(app.url("/api/health"))
            .header("Origin", "https://app.example.uz.evil.example"),
    )
    .await;
    assert!(!headers.contains_key("access-control-allow-origin"));
}
