//! CORS for the browser frontends (website, Telegram Mini App): only the origins listed in
//! `CORS_ALLOWED_ORIGINS`, each named exactly (no wildcard), and never with credentials:
//! the API authenticates with a bearer token in a header, not with cookies. A request from
//! another origin gets no CORS headers, so the browser keeps the answer from its page.

use crate::state::AppState;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};

/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE_SECS: &str = "600";

/// Checks one `CORS_ALLOWED_ORIGINS` entry: `scheme://host[:port]`, as browsers send it.
pub fn parse_origin(raw: &str) -> Result<String, String> {
    let origin = raw.trim();
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or_else(|| format!("{origin} must start with https:// or http://"))?;
    let valid = !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if !valid {
        return Err(format!(
            "{origin} is not an origin like https://app.example.uz (no path, no wildcard)"
        ));
    }
    Ok(origin.to_owned())
}

pub async fn cors(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let state = request.app_data::<web::Data<AppState>>().cloned();
    let origins: &[String] = state.as_ref().map_or(&[], |s| &s.access.cors_origins);
    let allowed = request
        .headers()
        .get(header::ORIGIN)
        .filter(|origin| origins.iter().any(|o| o.as_bytes() == origin.as_bytes()))
        .cloned();
    let is_preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if let (Some(origin), true) = (&allowed, is_preflight) {
        let response = HttpResponse::NoContent()
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone()))
            .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST"))
            .insert_header((
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "Authorization, Content-Type, Idempotency-Key",
            ))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, PREFLIGHT_MAX_AGE_SECS))
            .insert_header((header::VARY, "Origin"))
            .finish();
        return Ok(request.into_response(response).map_into_right_body());
    }
    let mut response = next.call(request).await?;
    let headers = response.headers_mut();
    if let Some(origin) = allowed {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Location, Retry-After, Idempotent-Replayed"),
        );
    }
    if !origins.is_empty() {
        // The answer depends on the Origin: caches must not hand one origin's to another.
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    Ok(response.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_exact_scheme_host_and_port() {
        assert_eq!(
            parse_origin(" https://app.example.uz ").unwrap(),
            "https://app.example.uz"
        );
        assert!(parse_origin("http://localhost:5173").is_ok());
        for bad in [
            "*",
            "https://*.example.uz",
            "app.example.uz",
            "https://app.example.uz/",
            "https://",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }
}
