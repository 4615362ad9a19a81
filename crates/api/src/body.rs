//! `JsonBody<T>`: the JSON request body, read with a size limit and parsed so that every
//! failure is the contract's envelope: 415 for another content type, 413 past the limit,
//! 400 for malformed JSON, 422 naming the field for a well-formed body of the wrong shape.
//! It also fingerprints the body for idempotency keys.

use crate::errors::ApiError;
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Request bodies larger than this are refused with 413.
pub const BODY_LIMIT: usize = 64 * 1024;

#[derive(Debug)]
pub struct JsonBody<T> {
    pub value: T,
    /// SHA-256 of the body in canonical form (keys sorted, no insignificant white space),
    /// so that a retry that re-serialises the same document matches.
    pub sha256: [u8; 32],
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let read = read_json_bytes(request, payload, BODY_LIMIT);
        Box::pin(async move { parse(&read.await?) })
    }
}

/// Webhook bodies larger than this are refused with 413 (Chatwoot's are a few KiB).
pub const WEBHOOK_BODY_LIMIT: usize = 256 * 1024;

/// The raw bytes of a JSON body: webhooks verify their signature over exactly these
/// bytes before anything parses them.
#[derive(Debug)]
pub struct RawJson(pub Vec<u8>);

impl FromRequest for RawJson {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let read = read_json_bytes(request, payload, WEBHOOK_BODY_LIMIT);
        Box::pin(async move { Ok(RawJson(read.await?)) })
    }
}

/// Reads a body declared as JSON, refusing another content type (415) and anything past
/// `limit` (413) before reading it all.
fn read_json_bytes(
    request: &HttpRequest,
    payload: &mut Payload,
    limit: usize,
) -> LocalBoxFuture<'static, Result<Vec<u8>, ApiError>> {
    let is_json = matches!(
        request.mime_type(),
        Ok(Some(mime)) if mime.type_() == "application"
            && (mime.subtype() == "json" || mime.suffix().is_some_and(|s| s == "json"))
    );
    let declared_length = request
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let mut payload = payload.take();
    Box::pin(async move {
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        if declared_length.is_some_and(|length| length > limit) {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        let mut body = Vec::with_capacity(declared_length.unwrap_or(1024).min(limit));
        while let Some(chunk) = payload.next().await {
            let chunk =
                chunk.map_err(|_| ApiError::MalformedJson("the body could not be read".into()))?;
            if body.len() + chunk.len() > limit {
                return Err(ApiError::PayloadTooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    })
}

/// Parses and fingerprints a JSON body already read (400 malformed, 422 wrong shape).
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<JsonBody<T>, ApiError> {
    let document: Value = serde_json::from_slice(body).map_err(|error| {
        ApiError::MalformedJson(format!("line {} column {}", error.line(), error.column()))
    })?;
    let sha256 = canonical_sha256(&document);
    let value = serde_path_to_error::deserialize(document).map_err(|error| {
        let path = error.path().to_string();
        let (field, reason) = describe(
            error.inner(),
            if path == "." { String::new() } else { path },
        );
        ApiError::invalid(if field.is_empty() { "body" } else { &field }, reason)
    })?;
    Ok(JsonBody { value, sha256 })
}

/// Turns a serde error into (field path, reason) without echoing the offending value,
/// which may be personal data.
fn describe(error: &serde_json::Error, path: String) -> (String, String) {
    let message = error.to_string();
    let quoted = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned)
    };
    let join = |field: String| {
        if path.is_empty() {
            field
        } else {
            format!("{path}.{field}")
        }
    };
    if let Some(field) = quoted("missing field `") {
        (join(field), "is required".into())
    } else if message.starts_with("unknown field `") {
        // serde_path_to_error's path already ends with the unknown field.
        (path, "is not a known field".into())
    } else if let Some((_, expected)) = message.split_once(", expected ") {
        (path, format!("must be {expected}"))
    } else {
        (path, "is invalid".into())
    }
}

fn canonical_sha256(document: &Value) -> [u8; 32] {
    let mut hasher = Sha256::new();
    write_canonical(document, &mut hasher);
    hasher.finalize().into()
}

/// Feeds a canonical serialisation to the hasher: object keys in sorted order whatever
/// order the map keeps them in.
fn write_canonical(value: &Value, hasher: &mut Sha256) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            hasher.update(b"{");
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    hasher.update(b",");
                }
                hasher.update(Value::String(key.clone()).to_string().as_bytes());
                hasher.update(b":");
                if let Some(inner) = map.get(key) {
                    write_canonical(inner, hasher);
                }
            }
            hasher.update(b"}");
        }
        Value::Array(items) => {
            hasher.update(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    hasher.update(b",");
                }
                write_canonical(item, hasher);
            }
            hasher.update(b"]");
        }
        scalar => hasher.update(scalar.to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "fields exist to be deserialised")]
    struct Outer {
        inner: Inner,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "fields exist to be deserialised")]
    struct Inner {
        phone: String,
        count: Option<i64>,
    }

    fn field_error(body: &str) -> (String, String) {
        match parse::<Outer>(body.as_bytes()) {
            Err(ApiError::Validation(errors)) => {
                let (field, reason) = errors.fields().iter().next().unwrap();
                (field.clone(), reason.clone())
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn shape_errors_name_the_field_and_never_echo_the_value() {
        assert_eq!(
            field_error(r#"{"inner": {}}"#),
            ("inner.phone".into(), "is required".into())
        );
        assert_eq!(
            field_error(r#"{"inner": {"phone": "1", "x": 1}}"#).0,
            "inner.x"
        );
        let (field, reason) = field_error(r#"{"inner": {"phone": 998901234567}}"#);
        assert_eq!(field, "inner.phone");
        assert!(!reason.contains("998901234567"), "{reason}");
        assert_eq!(field_error(r#"[]"#).0, "body");
    }

    #[test]
    fn malformed_json_is_not_a_validation_error() {
        assert!(matches!(
            parse::<Outer>(b"{\"inner\": "),
            Err(ApiError::MalformedJson(_))
        ));
        assert!(matches!(
            parse::<Outer>(b"nope"),
            Err(ApiError::MalformedJson(_))
        ));
    }

    #[test]
    fn the_fingerprint_ignores_key_order_and_white_space() {
        let a = parse::<Value>(br#"{"b": 1, "a": {"y": [1, 2], "x": "z"}}"#)
            .unwrap()
            .sha256;
        let b = parse::<Value>(br#"{"a":{"x":"z","y":[1,2]},"b":1}"#)
            .unwrap()
            .sha256;
        let c = parse::<Value>(br#"{"a":{"x":"z","y":[2,1]},"b":1}"#)
            .unwrap()
            .sha256;
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
