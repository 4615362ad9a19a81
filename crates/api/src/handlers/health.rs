//! Liveness, database readiness, Prometheus metrics and the OpenAPI document.

use crate::errors::{ApiError, ErrorEnvelope};
use crate::state::AppState;
use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use std::time::Duration;
use utoipa::ToSchema;

/// How long `/api/health/db` waits for the database before answering 503.
const DB_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "connected")]
    database: Option<&'static str>,
}

/// 200 while the process serves.
#[utoipa::path(tag = "health", responses((status = 200, body = Health)))]
#[get("/api/health")]
pub async fn health() -> web::Json<Health> {
    web::Json(Health {
        status: "ok",
        database: None,
    })
}

/// 200 when the database answers within a second, else 503.
#[utoipa::path(tag = "health", responses((status = 200, body = Health), (status = 503, body = ErrorEnvelope)))]
#[get("/api/health/db")]
pub async fn health_db(state: web::Data<AppState>) -> Result<web::Json<Health>, ApiError> {
    match tokio::time::timeout(DB_CHECK_TIMEOUT, cons_store::pool::ping(&state.pool)).await {
        Ok(Ok(())) => Ok(web::Json(Health {
            status: "ok",
            database: Some("connected"),
        })),
        Ok(Err(error)) => {
            tracing::warn!(%error, "database check failed");
            Err(ApiError::DatabaseUnavailable)
        }
        Err(_elapsed) => {
            tracing::warn!("database check timed out");
            Err(ApiError::DatabaseUnavailable)
        }
    }
}

/// Prometheus text exposition.
#[utoipa::path(tag = "health", responses((status = 200, content_type = "text/plain", body = String)))]
#[get("/metrics")]
pub async fn metrics() -> HttpResponse {
    let body = cons_telemetry::prometheus()
        .map(|h| h.render())
        .unwrap_or_default();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(body)
}
