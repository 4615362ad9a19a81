//! `ApiError`: every failure a handler can return, mapped explicitly to a status and the
//! contract's envelope `{"error": {"code", "message", "details"}}`. A 5xx never carries
//! internal text; its cause is logged once, here.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use cons_domain::FieldErrors;
use cons_store::StoreError;
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("missing or invalid credentials")]
    Unauthorized,
    #[error("not allowed for this caller")]
    Forbidden,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("a request with this Idempotency-Key is still in progress")]
    IdempotencyKeyInFlight,
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    #[error("the request is invalid")]
    Validation(FieldErrors),
    #[error("this Idempotency-Key was used with a different request body")]
    IdempotencyKeyReused,
    #[error("too many requests; retry later")]
    RateLimited { retry_after: std::time::Duration },
    #[error("the database is unavailable")]
    DatabaseUnavailable,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// The error envelope of every non-2xx answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable snake_case code, e.g. `validation_failed`.
    pub code: &'static str,
    pub message: String,
    /// For `validation_failed`: field path → reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<BTreeMap<String, String>>,
}

impl ApiError {
    /// A single invalid field.
    pub fn invalid(field: &str, reason: impl Into<String>) -> ApiError {
        let mut errors = FieldErrors::new();
        errors.add(field, reason);
        ApiError::Validation(errors)
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::IdempotencyKeyInFlight => "idempotency_key_in_flight",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Validation(_) => "validation_failed",
            ApiError::IdempotencyKeyReused => "idempotency_key_reused",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::DatabaseUnavailable => "database_unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(_) => ApiError::DatabaseUnavailable,
            other => ApiError::Internal(other.into()),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::IdempotencyKeyInFlight => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation(_) | ApiError::IdempotencyKeyReused => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::DatabaseUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            // Logged once, where it is turned into an answer; the body stays generic.
            let cause = match self {
                ApiError::Internal(error) => format!("{error:#}"),
                other => other.to_string(),
            };
            tracing::error!(error.code = self.code(), error.cause_chain = %cause, "request failed");
        }
        let details = match self {
            ApiError::Validation(errors) => Some(errors.fields().clone()),
            _ => None,
        };
        let mut response = HttpResponse::build(status);
        if matches!(self, ApiError::Unauthorized) {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        if matches!(
            self,
            ApiError::IdempotencyKeyInFlight | ApiError::DatabaseUnavailable
        ) {
            response.insert_header(("Retry-After", "1"));
        }
        if let ApiError::RateLimited { retry_after } = self {
            // Whole seconds, rounded up: retrying at the stated time succeeds.
            let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            response.insert_header(("Retry-After", seconds.max(1).to_string()));
        }
        response.json(ErrorEnvelope {
            error: ErrorBody {
                code: self.code(),
                message: self.to_string(),
                details,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;

    async fn render(error: ApiError) -> (u16, serde_json::Value) {
        let response = error.error_response();
        let status = response.status().as_u16();
        let body = to_bytes(response.into_body()).await.unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[actix_web::test]
    async fn every_variant_has_its_status_and_envelope() {
        let cases = [
            (ApiError::MalformedJson("x".into()), 400, "malformed_json"),
            (ApiError::Unauthorized, 401, "unauthorized"),
            (ApiError::Forbidden, 403, "forbidden"),
            (ApiError::NotFound("ticket"), 404, "not_found"),
            (
                ApiError::IdempotencyKeyInFlight,
                409,
                "idempotency_key_in_flight",
            ),
            (
                ApiError::PayloadTooLarge { limit: 10 },
                413,
                "payload_too_large",
            ),
            (
                ApiError::UnsupportedMediaType,
                415,
                "unsupported_media_type",
            ),
            (
                ApiError::invalid("ticket.importance", "must be 1, 2 or 3"),
                422,
                "validation_failed",
            ),
            (
                ApiError::IdempotencyKeyReused,
                422,
                "idempotency_key_reused",
            ),
            (
                ApiError::RateLimited {
                    retry_after: std::time::Duration::from_millis(1500),
                },
                429,
                "rate_limited",
            ),
            (ApiError::DatabaseUnavailable, 503, "database_unavailable"),
        ];
        for (error, status, code) in cases {
            let (got_status, body) = render(error).await;
            assert_eq!(got_status, status);
            assert_eq!(body["error"]["code"], code);
            assert!(body["error"]["message"].is_string());
        }
    }

    #[actix_web::test]
    async fn rate_limited_answers_say_when_to_retry_in_whole_seconds() {
        let response = ApiError::RateLimited {
            retry_after: std::time::Duration::from_millis(1500),
        }
        .error_response();
        assert_eq!(response.headers().get("Retry-After").unwrap(), "2");
    }

    #[actix_web::test]
    async fn validation_details_name_the_field() {
        let (_, body) = render(ApiError::invalid("client.phone_number", "must be E.164")).await;
        assert_eq!(
            body["error"]["details"]["client.phone_number"],
            "must be E.164"
        );
    }

    #[actix_web::test]
    async fn an_internal_error_never_shows_its_cause() {
        let secret = "password authentication failed for user postgres at 10.0.0.5";
        let (status, body) = render(ApiError::Internal(anyhow::anyhow!(secret))).await;
        assert_eq!(status, 500);
        assert_eq!(body["error"]["message"], "internal error");
        assert!(!body.to_string().contains("10.0.0.5"));
    }
}
