//! What can go wrong with one Chatwoot call, classified for the relay: retry or not, wait
//! how long, and whether the call may have taken effect although it failed.

use serde_json::Value;
use std::time::Duration;

/// Longest error excerpt kept (characters); excerpts end up in outbox rows and logs.
pub const EXCERPT_MAX_CHARS: usize = 200;

/// Chatwoot's per-conversation message flood guard counts the last minute.
const FLOOD_WINDOW: Duration = Duration::from_secs(60);

/// One failed Chatwoot call. Excerpts are short, never contain the access token, and come
/// from Chatwoot's error message rather than the request (no personal data from us).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChatwootError {
    /// The client could not be built or the request could not be formed (bad base URL,
    /// token with characters a header cannot carry).
    #[error("invalid Chatwoot client configuration: {0}")]
    Config(String),
    /// No complete answer within the timeout. The request may have been processed.
    #[error("Chatwoot did not answer in time")]
    Timeout,
    /// No connection could be made (refused, DNS, TLS, connect timeout): nothing was sent.
    #[error("could not connect to Chatwoot: {0}")]
    Connect(String),
    /// The connection broke after the request went out: it may have been processed.
    #[error("connection to Chatwoot lost mid-call: {0}")]
    Disconnected(String),
    /// 429 (Rack::Attack). Chatwoot sends no `Retry-After`; a proxy may.
    #[error("Chatwoot rate-limited the call (429)")]
    RateLimited { retry_after: Option<Duration> },
    /// 422 "Too many messages": more than 200 messages in one conversation in the last
    /// minute (Chatwoot's flood guard). Nothing was created; retry after the window.
    #[error(
        "Chatwoot refused the message: too many messages in this conversation in the last minute (422)"
    )]
    MessageFlood,
    /// 5xx. Chatwoot can answer 500 after committing (issue #6446), so a write may have
    /// taken effect.
    #[error("Chatwoot failed with {status}: {excerpt}")]
    Server { status: u16, excerpt: String },
    /// 401: a missing or wrong token, a user outside the account, or a policy refusal
    /// (Chatwoot answers 401, not 403, for those).
    #[error("Chatwoot refused the credentials (401): {excerpt}")]
    Unauthorized { excerpt: String },
    /// 404: no such contact, conversation, inbox or account.
    #[error("Chatwoot has no such record (404)")]
    NotFound,
    /// 422 "… has already been taken": a contact with this identifier, e-mail or phone
    /// number exists. `attributes` names which (e.g. `["identifier"]`).
    #[error("Chatwoot already has a contact with this {}", attributes.join(", "))]
    AlreadyTaken { attributes: Vec<String> },
    /// An assignment named a team the account does not have (Chatwoot clears the team and
    /// answers `null`).
    #[error("the Chatwoot account has no team {0}")]
    UnknownTeam(u64),
    /// An assignment named a user who is not an agent of the account (Chatwoot unassigns
    /// and answers `null`).
    #[error("the Chatwoot account has no agent {0}")]
    UnknownAgent(u64),
    /// Any other refusal (other 4xx, an unexpected 3xx).
    #[error("Chatwoot rejected the call with {status}: {excerpt}")]
    Rejected { status: u16, excerpt: String },
    /// A 2xx whose body is not what Chatwoot sends: the call took effect, but we cannot
    /// tell what it did. The message names the place, never a value.
    #[error("unexpected Chatwoot response: {0}")]
    Decode(String),
}

impl ChatwootError {
    /// Worth trying again later: timeouts, connection failures, 429, the message flood
    /// guard and 5xx. 4xx and undecodable answers will not get better by themselves.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Timeout
                | Self::Connect(_)
                | Self::Disconnected(_)
                | Self::RateLimited { .. }
                | Self::MessageFlood
                | Self::Server { .. }
        )
    }

    /// For a write: the call may have taken effect although it failed, so look before
    /// sending it again (contacts by identifier, conversations by `cons_id`, messages by
    /// `source_id`). True for timeouts, connections lost after sending, 5xx (Chatwoot can
    /// fail after committing) and undecodable 2xx answers.
    pub fn is_ambiguous(&self) -> bool {
        matches!(
            self,
            Self::Timeout | Self::Disconnected(_) | Self::Server { .. } | Self::Decode(_)
        )
    }

    /// How long the peer asked us to wait, when it said so (`Retry-After`), or the flood
    /// guard's window.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => *retry_after,
            Self::MessageFlood => Some(FLOOD_WINDOW),
            _ => None,
        }
    }

    /// The HTTP status Chatwoot answered with, when it answered.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::RateLimited { .. } => Some(429),
            Self::Server { status, .. } | Self::Rejected { status, .. } => Some(*status),
            Self::Unauthorized { .. } => Some(401),
            Self::NotFound => Some(404),
            Self::AlreadyTaken { .. } | Self::MessageFlood => Some(422),
            Self::UnknownTeam(_) | Self::UnknownAgent(_) => Some(200),
            Self::Config(_)
            | Self::Timeout
            | Self::Connect(_)
            | Self::Disconnected(_)
            | Self::Decode(_) => None,
        }
    }

    /// A short, stable name of the variant for metrics labels and log fields.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Config(_) => "config",
            Self::Timeout => "timeout",
            Self::Connect(_) => "connect",
            Self::Disconnected(_) => "disconnected",
            Self::RateLimited { .. } => "rate_limited",
            Self::MessageFlood => "message_flood",
            Self::Server { .. } => "server",
            Self::Unauthorized { .. } => "unauthorized",
            Self::NotFound => "not_found",
            Self::AlreadyTaken { .. } => "already_taken",
            Self::UnknownTeam(_) => "unknown_team",
            Self::UnknownAgent(_) => "unknown_agent",
            Self::Rejected { .. } => "rejected",
            Self::Decode(_) => "decode",
        }
    }
}

/// Classifies a non-2xx answer.
pub(crate) fn from_status(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    token: &str,
) -> ChatwootError {
    match status {
        429 => ChatwootError::RateLimited {
            retry_after: retry_after.and_then(parse_retry_after),
        },
        401 => ChatwootError::Unauthorized {
            excerpt: excerpt(body, token),
        },
        404 => ChatwootError::NotFound,
        422 => {
            let parsed = serde_json::from_slice::<Value>(body).ok();
            let message = parsed.as_ref().and_then(error_message).unwrap_or_default();
            if message.contains("has already been taken") {
                ChatwootError::AlreadyTaken {
                    attributes: taken_attributes(parsed.as_ref(), &message),
                }
            } else if message.contains("Too many messages") {
                ChatwootError::MessageFlood
            } else {
                ChatwootError::Rejected {
                    status,
                    excerpt: excerpt(body, token),
                }
            }
        }
        500..=599 => ChatwootError::Server {
            status,
            excerpt: excerpt(body, token),
        },
        _ => ChatwootError::Rejected {
            status,
            excerpt: excerpt(body, token),
        },
    }
}

/// `Retry-After` in seconds (the HTTP-date form is not used by anything in front of
/// Chatwoot that we know of, and is ignored).
fn parse_retry_after(raw: &str) -> Option<Duration> {
    raw.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The human message of Chatwoot's three error shapes: `{"error": "…"}`,
/// `{"message": "…", "attributes": […]}` and devise's `{"errors": ["…"]}`.
fn error_message(body: &Value) -> Option<String> {
    let object = body.as_object()?;
    if let Some(error) = object.get("error").and_then(Value::as_str) {
        return Some(error.to_owned());
    }
    if let Some(message) = object.get("message").and_then(Value::as_str) {
        return Some(message.to_owned());
    }
    let errors = object.get("errors")?.as_array()?;
    let texts: Vec<&str> = errors.iter().filter_map(Value::as_str).collect();
    (!texts.is_empty()).then(|| texts.join("; "))
}

/// Which unique attributes a 422 names: its `attributes` list, else the message's words.
fn taken_attributes(body: Option<&Value>, message: &str) -> Vec<String> {
    let listed: Vec<String> = body
        .and_then(|b| b.get("attributes"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if !listed.is_empty() {
        return listed;
    }
    [
        ("Identifier", "identifier"),
        ("Email", "email"),
        ("Phone number", "phone_number"),
    ]
    .into_iter()
    .filter(|(label, _)| message.contains(&format!("{label} has already been taken")))
    .map(|(_, attribute)| attribute.to_owned())
    .collect()
}

/// A short, single-line excerpt of an error body: Chatwoot's message when the body has
/// one, else the raw text; the token masked; at most [`EXCERPT_MAX_CHARS`] characters.
pub(crate) fn excerpt(body: &[u8], token: &str) -> String {
    let text = serde_json::from_slice::<Value>(body)
        .ok()
        .as_ref()
        .and_then(error_message)
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let mut text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if !token.is_empty() {
        text = text.replace(token, "<redacted>");
    }
    truncate(text, EXCERPT_MAX_CHARS)
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

    const TOKEN: &str = "s3cr3t-token";

    #[test]
    fn statuses_map_to_variants() {
        assert_eq!(
            from_status(429, Some(" 7 "), b"Retry later\n", TOKEN),
            ChatwootError::RateLimited {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(
            from_status(429, None, b"Retry later\n", TOKEN),
            ChatwootError::RateLimited { retry_after: None }
        );
        assert_eq!(
            from_status(429, Some("Wed, 21 Oct 2026 07:28:00 GMT"), b"", TOKEN),
            ChatwootError::RateLimited { retry_after: None }
        );
        assert_eq!(
            from_status(401, None, br#"{"error":"Invalid Access Token"}"#, TOKEN),
            ChatwootError::Unauthorized {
                excerpt: "Invalid Access Token".to_owned()
            }
        );
        assert_eq!(
            from_status(
                401,
                None,
                br#"{"errors":["You need to sign in or sign up before continuing."]}"#,
                TOKEN
            ),
            ChatwootError::Unauthorized {
                excerpt: "You need to sign in or sign up before continuing.".to_owned()
            }
        );
        assert_eq!(
            from_status(
                404,
                None,
                br#"{"error":"Resource could not be found"}"#,
                TOKEN
            ),
            ChatwootError::NotFound
        );
        assert_eq!(
            from_status(
                503,
                None,
                b"<html>\n  <body>Service   Unavailable</body>\n</html>",
                TOKEN
            ),
            ChatwootError::Server {
                status: 503,
                excerpt: "<html> <body>Service Unavailable</body> </html>".to_owned()
            }
        );
        assert_eq!(
            from_status(
                403,
                None,
                br#"{"error":"API access is not enabled for this account"}"#,
                TOKEN
            ),
            ChatwootError::Rejected {
                status: 403,
                excerpt: "API access is not enabled for this account".to_owned()
            }
        );
        assert_eq!(
            from_status(
                422,
                None,
                br#"{"error":"source_id should be unique"}"#,
                TOKEN
            ),
            ChatwootError::Rejected {
                status: 422,
                excerpt: "source_id should be unique".to_owned()
            }
        );
    }

    #[test]
    fn taken_names_the_attributes() {
        assert_eq!(
            from_status(
                422,
                None,
                br#"{"message":"Identifier has already been taken","attributes":["identifier"]}"#,
                TOKEN
            ),
            ChatwootError::AlreadyTaken {
                attributes: vec!["identifier".to_owned()]
            }
        );
        assert_eq!(
            from_status(
                422,
                None,
                br#"{"message":"Email has already been taken, Phone number has already been taken"}"#,
                TOKEN
            ),
            ChatwootError::AlreadyTaken { attributes: vec!["email".to_owned(), "phone_number".to_owned()] }
        );
    }

    #[test]
    fn flood_guard_is_retryable_after_the_window() {
        let error = from_status(
            422,
            None,
            br#"{"error":"Validation failed: Too many messages"}"#,
            TOKEN,
        );
        assert_eq!(error, ChatwootError::MessageFlood);
        assert!(error.is_retryable());
        assert!(!error.is_ambiguous());
        assert_eq!(error.retry_after(), Some(Duration::from_secs(60)));
    }

    #[test]
    fn retryable_and_ambiguous() {
        let cases = [
            (ChatwootError::Timeout, true, true),
            (ChatwootError::Connect("refused".to_owned()), true, false),
            (ChatwootError::Disconnected("reset".to_owned()), true, true),
            (
                ChatwootError::RateLimited { retry_after: None },
                true,
                false,
            ),
            (
                ChatwootError::Server {
                    status: 500,
                    excerpt: String::new(),
                },
                true,
                true,
            ),
            (
                ChatwootError::Unauthorized {
                    excerpt: String::new(),
                },
                false,
                false,
            ),
            (ChatwootError::NotFound, false, false),
            (
                ChatwootError::AlreadyTaken { attributes: vec![] },
                false,
                false,
            ),
            (
                ChatwootError::Rejected {
                    status: 400,
                    excerpt: String::new(),
                },
                false,
                false,
            ),
            (ChatwootError::UnknownTeam(9), false, false),
            (ChatwootError::Decode("x".to_owned()), false, true),
            (ChatwootError::Config("x".to_owned()), false, false),
        ];
        for (error, retryable, ambiguous) in cases {
            assert_eq!(error.is_retryable(), retryable, "{error:?}");
            assert_eq!(error.is_ambiguous(), ambiguous, "{error:?}");
        }
        assert_eq!(
            ChatwootError::Server {
                status: 502,
                excerpt: String::new()
            }
            .http_status(),
            Some(502)
        );
        assert_eq!(ChatwootError::Timeout.http_status(), None);
    }

    #[test]
    fn excerpts_are_short_single_line_and_never_carry_the_token() {
        let body = format!("{{\"error\":\"bad token {TOKEN} given\"}}");
        assert_eq!(
            excerpt(body.as_bytes(), TOKEN),
            "bad token <redacted> given"
        );
        let long = "é".repeat(500);
        let cut = excerpt(long.as_bytes(), TOKEN);
        assert_eq!(cut.chars().count(), EXCERPT_MAX_CHARS);
        assert!(cut.ends_with('…'));
        let raw = format!("line one\n{TOKEN}\r\nline\tthree");
        assert_eq!(
            excerpt(raw.as_bytes(), TOKEN),
            "line one <redacted> line three"
        );
    }
}
