//! OpenID Connect login against a fake provider (R14): ID tokens minted here with test
//! keys; every forgery is refused; an unknown `kid` refetches the JWKS at most once per
//! interval however many tokens arrive.

use crate::idp::{AUDIENCE, FakeIdp, TestKey};
use crate::{TestApp, assert_error};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cons_api::access::JWKS_REFRESH_INTERVAL;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn oidc(id_token: &str) -> Value {
    json!({"provider": "oidc", "id_token": id_token})
}

/// A provider publishing one key, and an app that trusts it.
async fn provider_with_one_key() -> (FakeIdp, TestKey, TestApp) {
    let idp = FakeIdp::start();
    let key = TestKey::generate("key-1");
    idp.publish(&key);
    let app = idp.app(JWKS_REFRESH_INTERVAL).await;
    (idp, key, app)
}

async fn assert_refused(app: &TestApp, id_token: &str) {
    let (status, _, body) = app.login(&oidc(id_token)).await;
    assert_error(status, &body, 401, "unauthorized");
}

#[tokio::test]
async fn a_valid_id_token_logs_in_and_the_same_subject_is_the_same_client() {
    let (idp, key, app) = provider_with_one_key().await;

    let (status, _, body) = app.login(&oidc(&key.sign(&idp.claims("alice")))).await;
    assert_eq!(status, 200, "{body}");
    let client_id = body["client_id"].as_str().unwrap().to_owned();
    let token = body["access_token"].as_str().unwrap();
    let (status, page) = app
        .get_as(token, &format!("/api/tickets/clients/{client_id}/tickets"))
        .await;
    assert_eq!(status, 200, "{page}");

    let mut claims = idp.claims("alice");
    claims["aud"] = json!([AUDIENCE]);
    let (_, _, again) = app.login(&oidc(&key.sign(&claims))).await;
    assert_eq!(again["client_id"], client_id.as_str());
    assert_eq!(app.count("cons.clients").await, 1);
    assert_eq!(idp.fetches(), 1, "the keys were fetched once, at start");
}

#[tokio::test]
async fn forged_and_misdirected_id_tokens_are_refused() {
    let (idp, key, app) = provider_with_one_key().await;
    let now = chrono::Utc::now().timestamp();
    let with = |field: &str, value: Value| {
        let mut claims = idp.claims("alice");
        claims[field] = value;
        key.sign(&claims)
    };
    let encode = |part: &Value| URL_SAFE_NO_PAD.encode(part.to_string());

    let unsigned = format!(
        "{}.{}.",
        encode(&json!({"alg": "none", "typ": "JWT", "kid": "key-1"})),
        encode(&idp.claims("alice"))
    );
    // Algorithm confusion: HS256 keyed with the provider's public key.
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some("key-1".into());
    let hs256_with_public_key = jsonwebtoken::encode(
        &hs_header,
        &idp.claims("alice"),
        &EncodingKey::from_secret(key.public_pem().as_bytes()),
    )
    .unwrap();
    let hs256_with_jwk = jsonwebtoken::encode(
        &hs_header,
        &idp.claims("alice"),
        &EncodingKey::from_secret(key.jwk().to_string().as_bytes()),
    )
    .unwrap();
    // Another key pair claiming to be the provider's key.
    let impostor = TestKey::generate("key-1").sign(&idp.claims("alice"));
    let valid = key.sign(&idp.claims("alice"));
    let (head, _) = valid.rsplit_once('.').unwrap();
    let mut two_audiences = idp.claims("alice");
    two_audiences["aud"] = json!([AUDIENCE, "another-app"]);

    let cases = [
        unsigned,
        hs256_with_public_key,
        hs256_with_jwk,
        impostor,
        format!("{head}."),
        with("iss", json!(format!("{}/", idp.issuer))),
        with("iss", json!("https://evil.example")),
        with("aud", json!("another-app")),
        with("azp", json!("another-app")),
        key.sign(&two_audiences),
        with("exp", json!(now - 120)),
        with("nbf", json!(now + 600)),
        with("iat", json!(now + 600)),
        with("iat", json!(now - 3600)),
        with("sub", Value::Null),
        "x".repeat(9000),
        "not.a.jwt".into(),
    ];
    for case in &cases {
        assert_refused(&app, case).await;
    }
    assert_eq!(app.count("cons.clients").await, 0);
    // Within the clock skew: accepted.
    let (status, _, body) = app.login(&oidc(&with("nbf", json!(now + 30)))).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn unknown_kids_fetch_the_keys_once_per_interval_however_many_tokens_arrive() {
    let idp = FakeIdp::start();
    let old = TestKey::generate("old");
    idp.publish(&old);
    let interval = Duration::from_secs(3);
    let app = idp.app(interval).await;
    let started = Instant::now();
    assert_eq!(idp.fetches(), 1);

    // A flood of unknown kids within the interval fetches nothing.
    let forged: Vec<String> = (0..20)
        .map(|i| old.sign_as(&format!("forged-{i}"), &idp.claims("alice")))
        .collect();
    let refusals = forged.iter().map(|token| assert_refused(&app, token));
    futures_util::future::join_all(refusals).await;
    assert!(started.elapsed() < interval, "the flood took too long");
    assert_eq!(idp.fetches(), 1);

    // The provider rotates: its new key is refused until the interval has passed, then
    // found with exactly one fetch, however many logins ask at once.
    let new = TestKey::generate("new");
    idp.publish(&new);
    tokio::time::sleep(interval.saturating_sub(started.elapsed())).await;
    let logins = (0..10).map(|i| {
        let app = &app;
        let token = new.sign(&idp.claims(&format!("user-{i}")));
        async move { app.login(&oidc(&token)).await.0 }
    });
    let statuses = futures_util::future::join_all(logins).await;
    assert!(statuses.iter().all(|status| *status == 200), "{statuses:?}");
    assert_eq!(idp.fetches(), 2);
    // Tokens of the old key go on working.
    let (status, _, _) = app.login(&oidc(&old.sign(&idp.claims("alice")))).await;
    assert_eq!(status, 200);
    assert_eq!(idp.fetches(), 2);
}
