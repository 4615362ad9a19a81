//! Who is calling. Every ticket route takes a `Caller`: a trusted backend holding one of
//! `SERVICE_TOKENS` (full access; each call is logged with the service's name), or a
//! client holding a session token from `POST /api/auth/login` (its own data only, by the
//! `may_act_for` rule). Anything else is 401.

use crate::errors::ApiError;
use crate::state::AppState;
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use sha2::{Digest, Sha256};
use std::future::{Ready, ready};
use subtle::ConstantTimeEq;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A trusted backend (site backend, call centre): full access to every client.
    Service { name: String },
    /// A logged-in client: access to its own tickets only.
    Client { client_id: Uuid },
}

impl Caller {
    /// The scope of idempotency keys and the `created_by` of tickets.
    pub fn principal(&self) -> String {
        match self {
            Caller::Service { name } => format!("service:{name}"),
            Caller::Client { client_id } => format!("client:{client_id}"),
        }
    }

    /// Whether this caller may read or act for `client_id`'s data.
    pub fn may_act_for(&self, client_id: Uuid) -> bool {
        match self {
            Caller::Service { .. } => true,
            Caller::Client { client_id: own } => *own == client_id,
        }
    }
}

/// The configured service tokens, kept as SHA-256 digests so that comparing a presented
/// token takes the same time whatever its length and content.
#[derive(Clone, Default)]
pub struct ServiceTokens {
    tokens: Vec<(String, [u8; 32])>,
}

impl std::fmt::Debug for ServiceTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.tokens.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("ServiceTokens")
            .field("names", &names)
            .finish()
    }
}

impl ServiceTokens {
    /// Parses `name:secret,name:secret`.
    pub fn parse(raw: &str) -> Result<ServiceTokens, String> {
        let mut tokens = Vec::new();
        for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, secret) = pair
                .split_once(':')
                .ok_or_else(|| "expected comma-separated name:secret pairs".to_owned())?;
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err("a service name must be letters, digits, - or _".into());
            }
            if secret.len() < 16 {
                return Err(format!(
                    "the secret of service {name} must be at least 16 characters"
                ));
            }
            tokens.push((name.to_owned(), digest(secret)));
        }
        Ok(ServiceTokens { tokens })
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The service whose secret `presented` is. Every configured token is compared, in
    /// constant time, so timing tells nothing about which or how much matched.
    fn find(&self, presented: &str) -> Option<&str> {
        let presented = digest(presented);
        let mut found = None;
        for (name, expected) in &self.tokens {
            if bool::from(expected.ct_eq(&presented)) {
                found = Some(name.as_str());
            }
        }
        found
    }
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Caller, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(request))
    }
}

fn authenticate(request: &HttpRequest) -> Result<Caller, ApiError> {
    let state = request
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("AppState missing from the app")))?;
    let token = request
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or(ApiError::Unauthorized)?;
    if let Some(name) = state.service_tokens.find(token) {
        tracing::Span::current().record("caller", name);
        tracing::info!(caller.service = name, "service call");
        return Ok(Caller::Service {
            name: name.to_owned(),
        });
    }
    let client_id = state
        .access
        .sessions
        .as_ref()
        .and_then(|sessions| sessions.verify(token))
        .ok_or(ApiError::Unauthorized)?;
    let caller = Caller::Client { client_id };
    tracing::Span::current().record("caller", caller.principal());
    Ok(caller)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_and_match_by_secret() {
        let tokens =
            ServiceTokens::parse("site:0123456789abcdef, call-centre:fedcba9876543210").unwrap();
        assert_eq!(tokens.find("0123456789abcdef"), Some("site"));
        assert_eq!(tokens.find("fedcba9876543210"), Some("call-centre"));
        assert_eq!(tokens.find("0123456789abcde"), None);
        assert_eq!(tokens.find(""), None);
    }

    #[test]
    fn bad_token_lists_are_refused() {
        assert!(ServiceTokens::parse("nosecret").is_err());
        assert!(ServiceTokens::parse("site:short").is_err());
        assert!(ServiceTokens::parse("bad name:0123456789abcdef").is_err());
        assert!(ServiceTokens::parse("").unwrap().is_empty());
    }

    #[test]
    fn a_client_acts_only_for_itself() {
        let me = Uuid::now_v7();
        let client = Caller::Client { client_id: me };
        assert!(client.may_act_for(me));
        assert!(!client.may_act_for(Uuid::now_v7()));
        assert!(
            Caller::Service {
                name: "site".into()
            }
            .may_act_for(me)
        );
    }
}
