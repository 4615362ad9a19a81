//! What can go wrong with one 1C call, classified for the relay: retry or not, wait how
//! long, whether a write may have taken effect although it failed, and whether ЦЛ's own
//! code refused it (a business rule such as the daily limit, onec.md §5.3).

use serde::Deserialize;
use std::time::Duration;

/// Longest error excerpt kept (characters); excerpts end up in outbox rows and logs.
pub const EXCERPT_MAX_CHARS: usize = 200;

/// How a configuration event handler's refusal starts (onec.md §5.3,
/// `error.500.business_rule.json`); the rest of the text is ЦЛ's.
const HANDLER_REFUSAL: &str = "Ошибка при выполнении обработчика";

/// One failed 1C call. Excerpts are short, come from 1C's error message (never from our
/// request, so no personal data of ours and never the credentials).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OnecError {
    /// The client could not be built (bad base URL, credentials a header cannot carry).
    #[error("invalid 1C client configuration: {0}")]
    Config(String),
    /// The call cannot be expressed (e.g. a subscriber code that is not a number): a bug
    /// or bad data on our side, nothing was sent.
    #[error("invalid argument for a 1C call: {0}")]
    InvalidArgument(String),
    /// No complete answer within the timeout. A write may have been committed (1C often
    /// takes longer than its callers wait, onec.md §1).
    #[error("1C did not answer in time")]
    Timeout,
    /// No connection could be made (refused, DNS, TLS, connect timeout): nothing was sent.
    #[error("could not connect to 1C: {0}")]
    Connect(String),
    /// The connection broke after the request went out: a write may have been committed.
    #[error("connection to 1C lost mid-call: {0}")]
    Disconnected(String),
    /// 401 from the web server or 1C (wrong credentials, or 1C's code 20: no right).
    #[error("1C refused the credentials (401)")]
    Unauthorized,
    /// 404 with 1C's code 9: no object with this key.
    #[error("1C has no such object (404)")]
    NotFound,
    /// 429: only a proxy in front of 1C sends it (1C has no rate limiting).
    #[error("1C (or its proxy) rate-limited the call (429)")]
    RateLimited { retry_after: Option<Duration> },
    /// 5xx. With `code` `-1` this is either ЦЛ's code refusing the write (see
    /// [`is_business_refusal`](Self::is_business_refusal)) or 1C failing on a malformed
    /// request; 502/503/504 without a code come from the web server in front.
    #[error("1C failed with {status}{}: {excerpt}", code.as_deref().map(|c| format!(" (code {c})")).unwrap_or_default())]
    Server {
        status: u16,
        code: Option<String>,
        excerpt: String,
    },
    /// Any other refusal: 4xx (a `$filter` 1C cannot parse, a bad value in the body, an
    /// IIS 404 for a too-long URL), or an unexpected 3xx.
    #[error("1C rejected the call with {status}{}: {excerpt}", code.as_deref().map(|c| format!(" (code {c})")).unwrap_or_default())]
    Rejected {
        status: u16,
        code: Option<String>,
        excerpt: String,
    },
    /// A 2xx whose body is not what 1C sends. The message names the place, never a value.
    #[error("unexpected 1C response: {0}")]
    Decode(String),
}

impl OnecError {
    /// Worth trying again later: timeouts, connection failures, 429, 408/425 and 5xx —
    /// except a business refusal (it will refuse again until something changes in 1C).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Timeout | Self::Connect(_) | Self::Disconnected(_) | Self::RateLimited { .. } => {
                true
            }
            Self::Server { .. } => !self.is_business_refusal(),
            Self::Rejected { status, .. } => matches!(status, 408 | 425),
            Self::Config(_)
            | Self::InvalidArgument(_)
            | Self::Unauthorized
            | Self::NotFound
            | Self::Decode(_) => false,
        }
    }

    /// For a write: the call may have taken effect although it failed, so look before
    /// sending it again (consultations by marker, counterparties by subscriber code and
    /// INN). True for timeouts, connections lost after sending, a 5xx that did not come
    /// from 1C itself (a gateway's 502/504 while 1C may still be committing) and
    /// undecodable 2xx answers. A 5xx with an `odata.error` code came from inside 1C,
    /// whose write is transactional: nothing was stored.
    pub fn is_ambiguous(&self) -> bool {
        match self {
            Self::Timeout | Self::Disconnected(_) | Self::Decode(_) => true,
            Self::Server { status, code, .. } => code.is_none() && *status != 503,
            _ => false,
        }
    }

    /// ЦЛ's configuration code refused the write in an event handler (`ПередЗаписью`,
    /// `ПриЗаписи`): 500, code `-1`, text "Ошибка при выполнении обработчика - …". For a
    /// consultation create this is, as far as we know, the daily limit of 3 consultations
    /// per subscriber and day; the exact ЦЛ wording is unknown (onec.md §9.4), so the
    /// relay should keep the excerpt. The same status and code also mean "1C could not
    /// process a malformed body"; only the text tells them apart (onec.md §5.3).
    pub fn is_business_refusal(&self) -> bool {
        matches!(self, Self::Server { status: 500, code: Some(code), excerpt } if code == "-1" && excerpt.starts_with(HANDLER_REFUSAL))
    }

    /// How long the peer asked us to wait (`Retry-After`), when it said so.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status 1C answered with, when it answered.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::Unauthorized => Some(401),
            Self::NotFound => Some(404),
            Self::RateLimited { .. } => Some(429),
            Self::Server { status, .. } | Self::Rejected { status, .. } => Some(*status),
            Self::Config(_)
            | Self::InvalidArgument(_)
            | Self::Timeout
            | Self::Connect(_)
            | Self::Disconnected(_)
            | Self::Decode(_) => None,
        }
    }

    /// 1C's internal error code (`odata.error.code`), when the answer had one.
    pub fn onec_code(&self) -> Option<&str> {
        match self {
            Self::Server { code, .. } | Self::Rejected { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// A short, stable name of the variant for metrics labels and log fields.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Config(_) => "config",
            Self::InvalidArgument(_) => "invalid_argument",
            Self::Timeout => "timeout",
            Self::Connect(_) => "connect",
            Self::Disconnected(_) => "disconnected",
            Self::Unauthorized => "unauthorized",
            Self::NotFound => "not_found",
            Self::RateLimited { .. } => "rate_limited",
            Self::Server { .. } if self.is_business_refusal() => "business_refusal",
            Self::Server { .. } => "server",
            Self::Rejected { .. } => "rejected",
            Self::Decode(_) => "decode",
        }
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "odata.error")]
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: Option<serde_json::Value>,
    message: Option<ErrorMessage>,
}

#[derive(Deserialize)]
struct ErrorMessage {
    value: Option<String>,
}

/// `code` and message text of an `odata.error` body (onec.md §5.1), if it is one.
pub(crate) fn odata_error(body: &[u8]) -> Option<(Option<String>, Option<String>)> {
    let parsed: ErrorBody = serde_json::from_slice(body).ok()?;
    let code = parsed.error.code.map(|code| match code {
        serde_json::Value::String(text) => text,
        other => other.to_string(),
    });
    Some((code, parsed.error.message.and_then(|m| m.value)))
}

/// Classifies a non-2xx answer.
pub(crate) fn from_status(status: u16, retry_after: Option<&str>, body: &[u8]) -> OnecError {
    let (code, message) = odata_error(body).unwrap_or((None, None));
    let excerpt = || excerpt(message.as_deref(), body);
    match status {
        401 => OnecError::Unauthorized,
        404 if code.as_deref() == Some("9") => OnecError::NotFound,
        429 => OnecError::RateLimited {
            retry_after: retry_after
                .and_then(|r| r.trim().parse().ok())
                .map(Duration::from_secs),
        },
        500..=599 => OnecError::Server {
            status,
            excerpt: excerpt(),
            code,
        },
        _ => OnecError::Rejected {
            status,
            excerpt: excerpt(),
            code,
        },
    }
}

/// A short, single-line excerpt: 1C's message when there is one, else the body's text
/// without HTML tags; at most [`EXCERPT_MAX_CHARS`] characters.
pub(crate) fn excerpt(message: Option<&str>, body: &[u8]) -> String {
    let text = match message {
        Some(message) => message.to_owned(),
        None => strip_tags(&String::from_utf8_lossy(body)),
    };
    truncate(
        text.split_whitespace().collect::<Vec<_>>().join(" "),
        EXCERPT_MAX_CHARS,
    )
}

fn strip_tags(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// Cuts to `max` characters (on a character boundary), marking the cut with `…`.
pub(crate) fn truncate(text: String, max: usize) -> String {
    if text.chars().count() <= max {
        return text;
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../../../shared/fixtures/onec/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn fixtures_classify() {
        let business = from_status(500, None, &fixture("error.500.business_rule.json"));
        assert!(business.is_business_refusal(), "{business:?}");
        assert!(!business.is_retryable());
        assert!(!business.is_ambiguous());
        assert_eq!(business.onec_code(), Some("-1"));
        assert_eq!(business.kind(), "business_refusal");
        let OnecError::Server { excerpt, .. } = &business else {
            panic!()
        };
        assert!(
            excerpt.starts_with("Ошибка при выполнении обработчика - 'ПередЗаписью' {Документ"),
            "{excerpt}"
        );
        assert!(!excerpt.contains('\n'));

        let internal = from_status(500, None, &fixture("error.500.internal.json"));
        assert!(!internal.is_business_refusal());
        assert!(internal.is_retryable());
        assert!(!internal.is_ambiguous());

        assert_eq!(
            from_status(404, None, &fixture("error.404.not_found.json")),
            OnecError::NotFound
        );
        let filter = from_status(400, None, &fixture("error.400.filter_syntax.json"));
        assert_eq!(
            filter,
            OnecError::Rejected {
                status: 400,
                code: Some("14".into()),
                excerpt: "Ошибка при разборе опции запроса $filter".into()
            }
        );
        assert!(!filter.is_retryable());
        let guid = from_status(400, None, &fixture("error.400.bad_guid.json"));
        assert_eq!(guid.onec_code(), Some("1"));
        assert_eq!(
            from_status(400, None, &fixture("error.400.duplicate_record.json")).onec_code(),
            Some("15")
        );
    }

    #[test]
    fn web_server_answers_classify() {
        let iis = from_status(
            404,
            None,
            b"<!DOCTYPE html><html><body><h2>404 - File or directory not found.</h2></body></html>",
        );
        assert_eq!(
            iis,
            OnecError::Rejected {
                status: 404,
                code: None,
                excerpt: "404 - File or directory not found.".into()
            }
        );
        assert_eq!(
            from_status(401, None, b"<html>401</html>"),
            OnecError::Unauthorized
        );
        let gateway = from_status(504, None, b"Gateway Timeout");
        assert!(gateway.is_retryable() && gateway.is_ambiguous());
        let unavailable = from_status(503, None, b"Service Unavailable");
        assert!(unavailable.is_retryable() && !unavailable.is_ambiguous());
        assert_eq!(
            from_status(429, Some("7"), b""),
            OnecError::RateLimited {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert!(OnecError::Timeout.is_ambiguous() && OnecError::Timeout.is_retryable());
        assert!(!OnecError::Connect("refused".into()).is_ambiguous());
        assert_eq!(OnecError::Timeout.http_status(), None);
        assert_eq!(from_status(500, None, b"{}").http_status(), Some(500));
    }

    #[test]
    fn excerpts_are_short() {
        let long = "я".repeat(500);
        let body = format!(
            r#"{{"odata.error":{{"code":"-1","message":{{"lang":"ru","value":"{long}"}}}}}}"#
        );
        let OnecError::Server { excerpt, .. } = from_status(500, None, body.as_bytes()) else {
            panic!()
        };
        assert_eq!(excerpt.chars().count(), EXCERPT_MAX_CHARS);
        assert!(excerpt.ends_with('…'));
    }
}
