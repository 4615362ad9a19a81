//! Black-box tests of the real `cons-api` binary: it serves, refuses to start on pending
//! migrations or bad configuration, and stops cleanly on SIGTERM.

use crate::{SITE_TOKEN, respond, ticket_body};
use cons_testdb::TestDatabase;
use diesel_async::SimpleAsyncConnection;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn cons_api(vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cons-api"));
    // A clean environment in an empty directory: nothing leaks in from the developer's
    // shell or a `.env` file.
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir());
    command.envs(vars.iter().copied());
    command.stdout(Stdio::null()).stderr(Stdio::piped());
    command
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits for the process to exit, killing it after `limit`.
fn wait_with_limit(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("cons-api did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn the_binary_serves_tickets_and_stops_gracefully_on_sigterm() {
    let db = TestDatabase::new().await;
    let port = free_port().to_string();
    let bind = format!("127.0.0.1:{port}");
    let tokens = format!("site:{SITE_TOKEN}");
    let child = cons_api(&[
        ("DATABASE_URL", db.url()),
        ("API_BIND", &bind),
        ("SERVICE_TOKENS", &tokens),
        ("API_WORKERS", "1"),
        ("RUST_LOG", "warn"),
    ])
    .spawn()
    .unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = format!("http://{bind}");

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match http.get(format!("{base}/api/health/db")).send().await {
            Ok(response) if response.status() == 200 => break,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("cons-api never became ready: {other:?}"),
        }
    }
    let (status, _, created) = respond(
        http.post(format!("{base}/api/tickets/create"))
            .bearer_auth(SITE_TOKEN)
            .json(&ticket_body("+998901234567")),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let (status, _, read) = respond(
        http.get(format!(
            "{base}/api/tickets/{}",
            created["cons_id"].as_str().unwrap()
        ))
        .bearer_auth(SITE_TOKEN),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(read["cons_id"], created["cons_id"]);

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let output =
        tokio::task::spawn_blocking(move || wait_with_limit(child, Duration::from_secs(15)))
            .await
            .unwrap();
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn the_binary_refuses_to_start_while_migrations_are_pending() {
    let db = TestDatabase::new().await;
    let mut connection = db.pool().get().await.unwrap();
    connection
        .batch_execute("CREATE DATABASE unmigrated")
        .await
        .unwrap();
    let url = db.cluster_url("unmigrated");
    let port = format!("127.0.0.1:{}", free_port());
    let output = tokio::task::spawn_blocking(move || {
        let child = cons_api(&[("DATABASE_URL", &url), ("API_BIND", &port)])
            .spawn()
            .unwrap();
        wait_with_limit(child, Duration::from_secs(15))
    })
    .await
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("pending migration") && stderr.contains("consctl migrate"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_bad_variable_fails_fast_with_one_line_naming_it() {
    for (variable, value) in [
        ("API_BIND", "everywhere"),
        ("DB_PORT", "fifty"),
        ("SERVICE_TOKENS", "site"),
    ] {
        let output = tokio::task::spawn_blocking(move || {
            let child = cons_api(&[(variable, value)]).spawn().unwrap();
            wait_with_limit(child, Duration::from_secs(5))
        })
        .await
        .unwrap();
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(variable), "{stderr}");
    }
}
