//! Health, database readiness and metrics.

use crate::{TestApp, assert_error, respond, serve};
use cons_store::pool::PoolSettings;
use serde_json::json;
use std::net::TcpListener;
use std::time::{Duration, Instant};

#[tokio::test]
async fn health_and_database_health_answer_200_while_all_is_well() {
    let app = TestApp::new().await;
    let (status, body) = app.get("/api/health").await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));
    let (status, body) = app.get("/api/health/db").await;
    assert_eq!(
        (status, body),
        (200, json!({"status": "ok", "database": "connected"}))
    );
}

#[tokio::test]
async fn database_health_is_503_within_a_second_when_the_database_does_not_answer() {
    // A "database" that accepts connections and never says a word.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let settings = PoolSettings {
        acquire_timeout: Duration::from_secs(30),
        ..PoolSettings::for_tests()
    };
    let pool = cons_store::pool::build(
        &format!("postgres://postgres@127.0.0.1:{port}/x"),
        &settings,
    )
    .unwrap();
    let base = serve(pool);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();

    let started = Instant::now();
    let (status, headers, body) = respond(http.get(format!("{base}/api/health/db"))).await;
    let elapsed = started.elapsed();
    assert_error(status, &body, 503, "database_unavailable");
    assert!(headers.contains_key("retry-after"));
    assert!(
        elapsed < Duration::from_millis(1500),
        "answered after {elapsed:?}"
    );
    assert!(
        !body.to_string().contains(&port.to_string()),
        "no internal detail: {body}"
    );

    let (status, _, _) = respond(http.get(format!("{base}/api/health"))).await;
    assert_eq!(status, 200, "the process itself is alive");
    drop(silent);
}

#[tokio::test]
async fn metrics_count_requests_by_route_pattern() {
    let app = TestApp::new().await;
    app.create(&crate::ticket_body("+998901234567"), None).await;
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("http_requests_total{"), "{text}");
    assert!(text.contains(r#"route="/api/tickets/create""#), "{text}");
    assert!(text.contains("tickets_created_total"), "{text}");
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "{text}"
    );
}
