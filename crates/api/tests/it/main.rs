//! API tests: the production app (`cons_api::app`) served in-process on a free port over
//! a fresh database per test, driven over real HTTP; and black-box tests of the real
//! `cons-api` binary.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on anything unexpected"
)]

mod access;
mod binary;
mod health;
mod idp;
mod input;
mod login;
mod oidc;
mod openapi;
mod tickets;
mod webhooks;

use actix_web::HttpServer;
use cons_api::access::config::AccessConfig;
use cons_api::access::telegram::TelegramLogin;
use cons_api::access::{Access, JWKS_REFRESH_INTERVAL};
use cons_api::auth::ServiceTokens;
use cons_api::signature::WebhookSecrets;
use cons_api::state::AppState;
use cons_domain::IntakeLimits;
use cons_store::Pool;
use cons_store::pool::PoolSettings;
use cons_testdb::TestDatabase;
use serde_json::{Value, json};
use std::net::TcpListener;

pub const SITE_TOKEN: &str = "site-secret-0123456789";
pub const CALL_CENTRE_TOKEN: &str = "call-centre-secret-0123456789";
pub const CHATWOOT_SECRET: &str = "dN4cQz8pVt2sWm6hJr9kXe3B";
pub const ONEC_SECRET: &str = "onec-extension-secret-0123456789";
pub const SESSION_SECRET: &str = "test-session-secret-0123456789abcdef";
pub const BOT_TOKEN: &str = "123456:test-bot-token";

/// Sessions and Telegram login on, limits out of the way: what most tests need.
pub fn access_config(extra: &[(&str, &str)]) -> AccessConfig {
    let mut pairs = vec![
        ("SESSION_SECRET", SESSION_SECRET),
        ("TELEGRAM_BOT_TOKEN", BOT_TOKEN),
        ("LOGIN_RATE_PER_MINUTE", "10000"),
        ("TICKET_RATE_PER_MINUTE", "10000"),
    ];
    pairs.extend_from_slice(extra);
    AccessConfig::from_env(&cons_store::settings::Env::from_pairs(pairs).unwrap()).unwrap()
}

pub struct TestApp {
    pub db: TestDatabase,
    pub base: String,
    pub http: reqwest::Client,
}

impl TestApp {
    pub async fn new() -> TestApp {
        Self::with_pool(PoolSettings::for_tests()).await
    }

    pub async fn with_pool(settings: PoolSettings) -> TestApp {
        Self::build(
            settings,
            Access::new(&access_config(&[]), JWKS_REFRESH_INTERVAL).unwrap(),
        )
        .await
    }

    pub async fn with_access(access: Access) -> TestApp {
        Self::build(PoolSettings::for_tests(), access).await
    }

    async fn build(settings: PoolSettings, access: Access) -> TestApp {
        let db = TestDatabase::new().await;
        let pool = cons_store::pool::build(db.url(), &settings).unwrap();
        let base = serve_with(pool, access);
        TestApp {
            db,
            base,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn create(
        &self,
        body: &Value,
        key: Option<&str>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        self.create_as(SITE_TOKEN, body, key).await
    }

    /// Creates a ticket with this bearer token (a service token or a session).
    pub async fn create_as(
        &self,
        token: &str,
        body: &Value,
        key: Option<&str>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut request = self
            .http
            .post(self.url("/api/tickets/create"))
            .bearer_auth(token)
            .json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        respond(request).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.get_as(SITE_TOKEN, path).await
    }

    pub async fn get_as(&self, token: &str, path: &str) -> (u16, Value) {
        let (status, _, body) = respond(self.http.get(self.url(path)).bearer_auth(token)).await;
        (status, body)
    }

    pub async fn login(&self, body: &Value) -> (u16, reqwest::header::HeaderMap, Value) {
        respond(self.http.post(self.url("/api/auth/login")).json(body)).await
    }

    /// Logs in with this initData; the session token, and the client it acts for.
    pub async fn login_telegram(&self, init_data: &str) -> (String, String) {
        let (status, _, body) = self
            .login(&json!({"provider": "telegram", "init_data": init_data}))
            .await;
        assert_eq!(status, 200, "{body}");
        (
            body["access_token"].as_str().unwrap().to_owned(),
            body["client_id"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn count(&self, table: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut connection = self.db.pool().get().await.unwrap();
        let query = diesel::sql_query(format!("SELECT count(*) AS n FROM {table}"));
        diesel_async::RunQueryDsl::get_result::<Count>(query, &mut connection)
            .await
            .unwrap()
            .n
    }

    /// Waits until at least `waiters` statements on this database wait for a lock (a
    /// request reached a row or table someone holds); false if that took over `limit`.
    pub async fn lock_waiters_reach(&self, waiters: usize, limit: std::time::Duration) -> bool {
        let started = std::time::Instant::now();
        loop {
            let waiting = self
                .column(
                    "SELECT count(*)::text AS value FROM pg_stat_activity
                     WHERE datname = current_database() AND wait_event_type = 'Lock'",
                )
                .await;
            if waiting.first().and_then(|n| n.parse::<usize>().ok()) >= Some(waiters) {
                return true;
            }
            if started.elapsed() > limit {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// The `value` column of every row `sql` returns.
    pub async fn column(&self, sql: &str) -> Vec<String> {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            value: String,
        }
        let mut connection = self.db.pool().get().await.unwrap();
        diesel_async::RunQueryDsl::load::<Row>(diesel::sql_query(sql), &mut connection)
            .await
            .unwrap()
            .into_iter()
            .map(|row| row.value)
            .collect()
    }
}

/// Serves the production app over `pool` on a free loopback port; returns its base URL.
pub fn serve(pool: Pool) -> String {
    serve_with(
        pool,
        Access::new(&access_config(&[]), JWKS_REFRESH_INTERVAL).unwrap(),
    )
}

pub fn serve_with(pool: Pool, access: Access) -> String {
    let state = AppState::start(
        pool,
        ServiceTokens::parse(&format!(
            "site:{SITE_TOKEN},call-centre:{CALL_CENTRE_TOKEN}"
        ))
        .unwrap(),
        IntakeLimits::default(),
        cons_api::WebhookAuth {
            chatwoot: WebhookSecrets::parse(CHATWOOT_SECRET).unwrap(),
            chatwoot_allow_unsigned: false,
            onec: WebhookSecrets::parse(ONEC_SECRET).unwrap(),
        },
        access,
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || cons_api::app(state.clone()))
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
    tokio::spawn(server);
    format!("http://127.0.0.1:{port}")
}

pub async fn respond(request: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, headers, body)
}

/// initData of Telegram user `user_id`, signed for the tests' bot, dated `age_secs` ago.
pub fn init_data(user_id: i64, age_secs: i64) -> String {
    let auth_date = (chrono::Utc::now().timestamp() - age_secs).to_string();
    let user = json!({"id": user_id, "first_name": "Dilnoza", "last_name": "Karimova"}).to_string();
    TelegramLogin::new(BOT_TOKEN, std::time::Duration::from_secs(86_400)).sign(&[
        ("auth_date", &auth_date),
        ("query_id", "AAHdF6IQAAAAAN0XohDhrOrc"),
        ("user", &user),
    ])
}

/// A valid create-ticket body for a new client with this phone.
pub fn ticket_body(phone: &str) -> Value {
    json!({
        "client": {
            "name": "Dilnoza Karimova",
            "phone_number": phone,
            "email": "d.karimova@example.uz",
            "org_inn": "301234567",
            "code_abonent": "10240",
            "company_name": "Karimova Trade"
        },
        "ticket": {
            "consultation_type": "accounting",
            "comment": "Как закрыть месяц в 1С:Бухгалтерии?",
            "topic": "Закрытие месяца",
            "lang": "ru",
            "importance": 2
        },
        "source": "site"
    })
}

/// Asserts the contract's error envelope with this status and code.
pub fn assert_error(status: u16, body: &Value, expected_status: u16, code: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}
