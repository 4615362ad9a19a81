//! Client access beyond service tokens: logins (OpenID Connect, Telegram Mini App), the
//! session tokens they yield, abuse limits and CORS. The `Caller` extractor
//! (`crate::auth`) turns a session token into `Caller::Client`; `POST /api/auth/login`
//! (`handlers::auth`) issues them.

pub mod config;
pub mod cors;
pub mod jwks;
pub mod oidc;
pub mod rate_limit;
pub mod session;
pub mod telegram;

use self::config::AccessConfig;
use self::jwks::{Jwks, JwksSource};
use self::oidc::OidcLogin;
use self::rate_limit::RateLimiter;
use self::session::SessionKeys;
use self::telegram::TelegramLogin;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// An unknown `kid` refetches the provider's keys at most this often.
pub const JWKS_REFRESH_INTERVAL: Duration = Duration::from_secs(60);

/// Why a credential was refused: for the log only; the answer is a plain 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal(pub &'static str);

/// Everything the login route, the `Caller` extractor and the CORS middleware share,
/// process-wide (one instance behind every actix worker).
#[derive(Debug)]
pub struct Access {
    pub sessions: Option<SessionKeys>,
    pub oidc: Option<OidcLogin>,
    pub telegram: Option<TelegramLogin>,
    pub login_limit: RateLimiter<IpAddr>,
    pub ticket_limit: RateLimiter<Uuid>,
    pub trusted_proxies: Vec<IpAddr>,
    pub cors_origins: Vec<String>,
}

impl Access {
    pub fn new(config: &AccessConfig, jwks_refresh_interval: Duration) -> anyhow::Result<Access> {
        let oidc = match &config.oidc {
            None => None,
            Some(oidc) => {
                let source = match &oidc.jwks_url {
                    Some(url) => JwksSource::Url(url.clone()),
                    None => JwksSource::Discovery {
                        issuer: oidc.issuer.clone(),
                    },
                };
                Some(OidcLogin::new(
                    oidc.issuer.clone(),
                    oidc.audience.clone(),
                    oidc.algorithms.clone(),
                    Arc::new(Jwks::new(source, jwks_refresh_interval)?),
                ))
            }
        };
        Ok(Access {
            sessions: config.sessions.clone(),
            oidc,
            telegram: config.telegram.clone(),
            login_limit: RateLimiter::per_minute(config.login_per_minute),
            ticket_limit: RateLimiter::per_minute(config.tickets_per_minute),
            trusted_proxies: config.trusted_proxies.clone(),
            cors_origins: config.cors_origins.clone(),
        })
    }
}
