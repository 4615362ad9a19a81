//! The benchmark delivery mode (`RELAY_BENCH_SINK_URL`): every entry becomes exactly one
//! `POST` of its id, ticket, target, kind, attempt and payload to one URL, and a 2xx answer
//! counts as delivered. Claiming, leases, concurrency, batched recording and wake-ups are
//! the production ones; only the effects are replaced, so `bench-relay` measures the
//! relay's own machinery at one HTTP call per entry (the real effects make several calls
//! and read the ticket first).
//!
//! Nothing reaches Chatwoot or 1C in this mode while every entry is marked delivered: it
//! is for a throwaway benchmark database only, and `cons-relay` says so loudly at start.

use crate::deliver::{Deliver, DeliveryError};
use cons_store::outbox::{Claimed, Effect};
use std::time::Duration;

pub struct HttpSink {
    client: reqwest::Client,
    url: reqwest::Url,
}

impl HttpSink {
    pub fn new(url: &str, timeout: Duration) -> anyhow::Result<HttpSink> {
        let url = reqwest::Url::parse(url)?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .http1_only()
            .no_proxy()
            .retry(reqwest::retry::never())
            .build()?;
        Ok(HttpSink { client, url })
    }
}

#[derive(serde::Serialize)]
struct Delivery<'a> {
    id: i64,
    cons_id: uuid::Uuid,
    target: &'a str,
    kind: &'a str,
    attempt: i32,
    payload: &'a serde_json::Value,
}

impl Deliver for HttpSink {
    async fn deliver(&self, entry: &Claimed) -> Result<Effect, DeliveryError> {
        let body = serde_json::to_vec(&Delivery {
            id: entry.id,
            cons_id: entry.cons_id,
            target: &entry.target,
            kind: &entry.kind,
            attempt: entry.attempts,
            payload: &entry.payload,
        })
        .map_err(|e| DeliveryError::permanent(format!("sink: cannot encode: {e}")))?;
        let answer = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| DeliveryError::retryable(format!("sink: {e}")))?;
        let status = answer.status();
        if status.is_success() {
            Ok(Effect::None)
        } else if status.is_server_error() || status.as_u16() == 429 {
            Err(DeliveryError::retryable(format!("sink: {status}")).with_status(status.as_u16()))
        } else {
            Err(DeliveryError::permanent(format!("sink: {status}")).with_status(status.as_u16()))
        }
    }
}
