//! Webhook receivers: Chatwoot's own deliveries and the events of a 1C extension. Each
//! verifies the signature over the raw bytes before parsing, records the delivery in the
//! inbox (`log.webhook_inbox`, de-duplicated) and answers 200 at once; the relay applies
//! it. Nothing here calls a peer.

use crate::body::{self, RawJson};
use crate::errors::{ApiError, ErrorEnvelope};
use crate::signature::{Rejection, WebhookSecrets};
use crate::state::AppState;
use actix_web::{HttpRequest, post, web};
use chrono::Utc;
use cons_domain::sync::OnecEvent;
use cons_store::inbound::{self, Delivery, InboxSource};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// Chatwoot events the relay acts on; every other event is acknowledged and dropped.
const CHATWOOT_EVENTS: &[&str] = &[
    "conversation_created",
    "conversation_status_changed",
    "conversation_updated",
    "message_created",
];

/// Who may send webhooks, from the configuration.
#[derive(Debug, Clone, Default)]
pub struct WebhookAuth {
    pub chatwoot: WebhookSecrets,
    /// Accept unsigned Chatwoot deliveries (Chatwoot older than 4.12 signs nothing).
    /// Only possible while no Chatwoot secret is configured.
    pub chatwoot_allow_unsigned: bool,
    pub onec: WebhookSecrets,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAck {
    /// `accepted` (recorded), `duplicate` (recorded before) or `ignored` (an event we do
    /// not act on).
    #[schema(example = "accepted")]
    status: &'static str,
}

/// A delivery from Chatwoot (account webhook or API-inbox callback), in Chatwoot's own
/// format, signed with `X-Chatwoot-Signature` / `X-Chatwoot-Timestamp`.
#[utoipa::path(
    tag = "webhooks",
    request_body(content = Object, content_type = "application/json", description = "Chatwoot's payload, unchanged: a flat object with `event`"),
    params(
        ("X-Chatwoot-Signature" = Option<String>, Header, description = "sha256=<hex HMAC-SHA256(secret, timestamp + \".\" + body)>"),
        ("X-Chatwoot-Timestamp" = Option<String>, Header, description = "Unix seconds; at most 5 minutes from our clock"),
    ),
    responses(
        (status = 200, body = WebhookAck),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 413, body = ErrorEnvelope), (status = 415, body = ErrorEnvelope),
        (status = 503, body = ErrorEnvelope),
    )
)]
#[post("/webhook/chatwoot")]
pub async fn chatwoot(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: Result<RawJson, ApiError>,
) -> Result<web::Json<WebhookAck>, ApiError> {
    const SOURCE: InboxSource = InboxSource::Chatwoot;
    let RawJson(body) = body.inspect_err(|_| count(SOURCE, "malformed"))?;
    let auth = &state.webhooks;
    if !(auth.chatwoot.is_empty() && auth.chatwoot_allow_unsigned) {
        check_signature(
            &auth.chatwoot,
            &request,
            ("x-chatwoot-timestamp", "x-chatwoot-signature"),
            &body,
            SOURCE,
        )?;
    }
    #[derive(Deserialize)]
    struct Event {
        event: String,
    }
    let event: Event = serde_json::from_slice(&body).map_err(|_| {
        count(SOURCE, "malformed");
        ApiError::MalformedJson("expected a JSON object with an event".into())
    })?;
    if !CHATWOOT_EVENTS.contains(&event.event.as_str()) {
        count(SOURCE, "ignored");
        return Ok(web::Json(WebhookAck { status: "ignored" }));
    }
    // Chatwoot has no event id and sends a fresh delivery id per target, so the same
    // event delivered twice is recognised by its bytes.
    let dedup_key = hex::encode(Sha256::digest(&body));
    let delivery_id = header(&request, "x-chatwoot-delivery").filter(|id| id.len() <= 64);
    record(
        &state,
        Delivery {
            source: SOURCE,
            event: &event.event,
            dedup_key: &dedup_key,
            delivery_id,
            body: std::str::from_utf8(&body).map_err(|_| {
                count(SOURCE, "malformed");
                ApiError::MalformedJson("the body is not UTF-8".into())
            })?,
        },
    )
    .await
}

/// An event of the 1C extension, signed with `X-Signature` / `X-Timestamp`
/// (`ONEC_WEBHOOK_SECRET`).
#[utoipa::path(
    tag = "webhooks",
    request_body = OnecEvent,
    params(
        ("X-Signature" = String, Header, description = "sha256=<hex HMAC-SHA256(secret, timestamp + \".\" + body)>"),
        ("X-Timestamp" = String, Header, description = "Unix seconds; at most 5 minutes from our clock"),
    ),
    responses(
        (status = 200, body = WebhookAck),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 413, body = ErrorEnvelope), (status = 415, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope),
    )
)]
#[post("/webhook/1c_cl")]
pub async fn onec(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: Result<RawJson, ApiError>,
) -> Result<web::Json<WebhookAck>, ApiError> {
    const SOURCE: InboxSource = InboxSource::Onec;
    let RawJson(body) = body.inspect_err(|_| count(SOURCE, "malformed"))?;
    check_signature(
        &state.webhooks.onec,
        &request,
        ("x-timestamp", "x-signature"),
        &body,
        SOURCE,
    )?;
    let parsed = body::parse::<OnecEvent>(&body).inspect_err(|_| count(SOURCE, "malformed"))?;
    let event = parsed.value;
    if event.event_id.is_empty() || event.event_id.len() > OnecEvent::MAX_ID_LEN {
        count(SOURCE, "malformed");
        return Err(ApiError::invalid("event_id", "must be 1 to 255 characters"));
    }
    if !event.event.starts_with("consultation.") {
        count(SOURCE, "ignored");
        return Ok(web::Json(WebhookAck { status: "ignored" }));
    }
    tracing::debug!(
        event = %event.event,
        occurred_at = %event.occurred_at.with_timezone(&Utc),
        "1C event"
    );
    record(
        &state,
        Delivery {
            source: SOURCE,
            event: &event.event,
            dedup_key: &event.event_id,
            delivery_id: None,
            body: std::str::from_utf8(&body)
                .map_err(|_| ApiError::MalformedJson("the body is not UTF-8".into()))?,
        },
    )
    .await
}

fn check_signature(
    secrets: &WebhookSecrets,
    request: &HttpRequest,
    (timestamp_header, signature_header): (&str, &str),
    body: &[u8],
    source: InboxSource,
) -> Result<(), ApiError> {
    let verdict = secrets.verify(
        header(request, timestamp_header),
        header(request, signature_header),
        body,
        Utc::now().timestamp(),
    );
    verdict.map_err(|rejection| {
        let outcome = match rejection {
            Rejection::BadSignature => "bad_signature",
            Rejection::Stale => "stale",
        };
        count(source, outcome);
        tracing::warn!(source = source.as_str(), outcome, "webhook refused");
        ApiError::Unauthorized
    })
}

async fn record(
    state: &AppState,
    delivery: Delivery<'_>,
) -> Result<web::Json<WebhookAck>, ApiError> {
    let mut connection = state
        .pool
        .get()
        .await
        .map_err(cons_store::StoreError::from)?;
    let new = inbound::record_webhook(&mut connection, &delivery).await?;
    if new {
        state.inbox_waker.wake();
    }
    let status = if new { "accepted" } else { "duplicate" };
    count(delivery.source, status);
    tracing::info!(
        source = delivery.source.as_str(),
        event = delivery.event,
        delivery_id = delivery.delivery_id,
        status,
        "webhook recorded"
    );
    Ok(web::Json(WebhookAck { status }))
}

fn header<'a>(request: &'a HttpRequest, name: &str) -> Option<&'a str> {
    request.headers().get(name).and_then(|v| v.to_str().ok())
}

fn count(source: InboxSource, outcome: &'static str) {
    metrics::counter!("webhook_deliveries_total", "source" => source.as_str(), "outcome" => outcome)
        .increment(1);
}
