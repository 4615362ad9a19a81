//! API tests: the production app (`cons_api::app`) served in-process on a free port over
//! a fresh database per test, driven over real HTTP; and black-box tests of the real
//! `cons-api` binary.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on anything unexpected"
)]

mod binary;
mod health;
mod input;
mod openapi;
mod tickets;
mod webhooks;

use actix_web::HttpServer;
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
        let db = TestDatabase::new().await;
        let pool = cons_store::pool::build(db.url(), &settings).unwrap();
        let base = serve(pool);
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
        let mut request = self
            .http
            .post(self.url("/api/tickets/create"))
            .bearer_auth(SITE_TOKEN)
            .json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        respond(request).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let (status, _, body) =
            respond(self.http.get(self.url(path)).bearer_auth(SITE_TOKEN)).await;
        (status, body)
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
}

/// Serves the production app over `pool` on a free loopback port; returns its base URL.
pub fn serve(pool: Pool) -> String {
    let state = AppState {
        relay_waker: cons_api::wake::RelayWaker::start(pool.clone()),
        pool,
        service_tokens: ServiceTokens::parse(&format!(
            "site:{SITE_TOKEN},call-centre:{CALL_CENTRE_TOKEN}"
        ))
        .unwrap(),
        intake: IntakeLimits::default(),
        webhooks: cons_api::WebhookAuth {
            chatwoot: WebhookSecrets::parse(CHATWOOT_SECRET).unwrap(),
            chatwoot_allow_unsigned: false,
            onec: WebhookSecrets::parse(ONEC_SECRET).unwrap(),
        },
    };
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
