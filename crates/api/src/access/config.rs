//! `AccessConfig`: client logins, sessions, abuse limits and CORS, from the environment.
//!
//! Variables: `SESSION_SECRET` (keys that sign sessions, comma-separated, the signing key
//! first, each at least 32 characters; required when a login provider is configured),
//! `SESSION_TTL_SECONDS` (default 3600), `OIDC_ISSUER` `OIDC_AUDIENCE` (both, or neither),
//! `OIDC_JWKS_URL` (default: discovery from the issuer), `OIDC_ALGORITHMS` (default
//! `RS256,ES256`), `TELEGRAM_BOT_TOKEN`, `TELEGRAM_MAX_AGE_SECONDS` (default 86400),
//! `LOGIN_RATE_PER_MINUTE` (per IP, default 10), `TICKET_RATE_PER_MINUTE` (per client
//! session, default 10), `CORS_ALLOWED_ORIGINS`, `TRUSTED_PROXIES`.

use super::cors::parse_origin;
use super::oidc::parse_algorithms;
use super::session::SessionKeys;
use super::telegram::TelegramLogin;
use cons_store::settings::{ConfigError, Env};
use jsonwebtoken::Algorithm;
use std::net::IpAddr;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct AccessConfig {
    pub sessions: Option<SessionKeys>,
    pub oidc: Option<OidcConfig>,
    pub telegram: Option<TelegramLogin>,
    pub login_per_minute: u32,
    pub tickets_per_minute: u32,
    pub cors_origins: Vec<String>,
    pub trusted_proxies: Vec<IpAddr>,
}

#[derive(Debug, Clone)]
pub struct OidcConfig {
    pub issuer: String,
    pub audience: String,
    pub jwks_url: Option<String>,
    pub algorithms: Vec<Algorithm>,
}

impl AccessConfig {
    pub fn from_env(env: &Env) -> Result<AccessConfig, ConfigError> {
        let oidc = match (env.get("OIDC_ISSUER"), env.get("OIDC_AUDIENCE")) {
            (None, None) => None,
            (Some(issuer), Some(audience)) => Some(OidcConfig {
                issuer: checked_url("OIDC_ISSUER", issuer)?,
                audience,
                jwks_url: env
                    .get("OIDC_JWKS_URL")
                    .map(|url| checked_url("OIDC_JWKS_URL", url))
                    .transpose()?,
                algorithms: parse_algorithms(
                    &env.get("OIDC_ALGORITHMS")
                        .unwrap_or_else(|| "RS256,ES256".into()),
                )
                .map_err(|reason| ConfigError::new("OIDC_ALGORITHMS", reason))?,
            }),
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "OIDC_AUDIENCE",
                    "is required with OIDC_ISSUER (our client id at the provider)",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "OIDC_ISSUER",
                    "is required with OIDC_AUDIENCE",
                ));
            }
        };
        let telegram_max_age = seconds(env, "TELEGRAM_MAX_AGE_SECONDS", 86_400, 60..=2_592_000)?;
        let telegram = match env.get("TELEGRAM_BOT_TOKEN") {
            None => None,
            Some(token) => {
                let well_formed = token.split_once(':').is_some_and(|(id, secret)| {
                    !id.is_empty()
                        && id.bytes().all(|b| b.is_ascii_digit())
                        && !secret.is_empty()
                        && secret
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                });
                if !well_formed {
                    return Err(ConfigError::new(
                        "TELEGRAM_BOT_TOKEN",
                        "expected a bot token like 123456:ABC-def_0 (from @BotFather)",
                    ));
                }
                Some(TelegramLogin::new(&token, telegram_max_age))
            }
        };
        let ttl = seconds(env, "SESSION_TTL_SECONDS", 3600, 60..=86_400)?;
        let sessions = env
            .get("SESSION_SECRET")
            .map(|raw| SessionKeys::parse(&raw, ttl))
            .transpose()
            .map_err(|reason| ConfigError::new("SESSION_SECRET", reason))?;
        if sessions.is_none() && (oidc.is_some() || telegram.is_some()) {
            return Err(ConfigError::new(
                "SESSION_SECRET",
                "is required when OIDC_ISSUER or TELEGRAM_BOT_TOKEN is set",
            ));
        }
        Ok(AccessConfig {
            sessions,
            oidc,
            telegram,
            login_per_minute: per_minute(env, "LOGIN_RATE_PER_MINUTE")?,
            tickets_per_minute: per_minute(env, "TICKET_RATE_PER_MINUTE")?,
            cors_origins: list(env, "CORS_ALLOWED_ORIGINS", parse_origin)?,
            trusted_proxies: list(env, "TRUSTED_PROXIES", |raw| {
                raw.parse()
                    .map_err(|_| format!("{raw} is not an IP address"))
            })?,
        })
    }
}

/// The provider's URLs: https, or http on the loopback interface (tests, development).
fn checked_url(variable: &str, url: String) -> Result<String, ConfigError> {
    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"];
    let secure = url.starts_with("https://")
        || loopback.iter().any(|prefix| {
            url.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']))
        });
    if secure && url.len() > "https://".len() {
        Ok(url)
    } else {
        Err(ConfigError::new(
            variable,
            "must be an https:// URL (http:// only on the loopback interface)",
        ))
    }
}

fn seconds(
    env: &Env,
    variable: &str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Duration, ConfigError> {
    let value: u64 = env.parse_or(variable, default, "a whole number of seconds")?;
    if !range.contains(&value) {
        return Err(ConfigError::new(
            variable,
            format!("must be from {} to {} seconds", range.start(), range.end()),
        ));
    }
    Ok(Duration::from_secs(value))
}

fn per_minute(env: &Env, variable: &str) -> Result<u32, ConfigError> {
    let value: u32 = env.parse_or(variable, 10, "a number of requests per minute")?;
    if value == 0 {
        return Err(ConfigError::new(variable, "must be at least 1"));
    }
    Ok(value)
}

fn list<T>(
    env: &Env,
    variable: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, ConfigError> {
    env.get(variable)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| parse(item).map_err(|reason| ConfigError::new(variable, reason)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn config(pairs: &[(&str, &str)]) -> Result<AccessConfig, ConfigError> {
        AccessConfig::from_env(&Env::from_pairs(pairs.iter().copied()).unwrap())
    }

    #[test]
    fn nothing_configured_means_no_login_and_default_limits() {
        let config = config(&[]).unwrap();
        assert!(config.sessions.is_none() && config.oidc.is_none() && config.telegram.is_none());
        assert_eq!(
            (config.login_per_minute, config.tickets_per_minute),
            (10, 10)
        );
        assert!(config.cors_origins.is_empty());
    }

    #[test]
    fn a_full_login_configuration_reads() {
        let config = config(&[
            ("SESSION_SECRET", SECRET),
            ("SESSION_TTL_SECONDS", "900"),
            ("OIDC_ISSUER", "https://id.example.uz/realms/cons"),
            ("OIDC_AUDIENCE", "cons-web"),
            (
                "TELEGRAM_BOT_TOKEN",
                "5768337691:AAH5YkoiEuPk8-FZa32hStHTqXiLPtAEhx8",
            ),
            (
                "CORS_ALLOWED_ORIGINS",
                "https://app.example.uz, https://t.example.uz",
            ),
            ("TRUSTED_PROXIES", "10.0.0.1,::1"),
        ])
        .unwrap();
        assert_eq!(config.sessions.unwrap().ttl(), Duration::from_secs(900));
        let oidc = config.oidc.unwrap();
        assert_eq!(oidc.algorithms, vec![Algorithm::RS256, Algorithm::ES256]);
        assert!(oidc.jwks_url.is_none());
        assert!(config.telegram.is_some());
        assert_eq!(config.cors_origins.len(), 2);
        assert_eq!(config.trusted_proxies.len(), 2);
    }

    #[test]
    fn bad_values_name_their_variable() {
        let issuer = ("OIDC_ISSUER", "https://id.example.uz");
        let audience = ("OIDC_AUDIENCE", "cons-web");
        let secret = ("SESSION_SECRET", SECRET);
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("SESSION_SECRET", "short")], "SESSION_SECRET"),
            (&[issuer, audience], "SESSION_SECRET"),
            (&[("TELEGRAM_BOT_TOKEN", "1:x")], "SESSION_SECRET"),
            (&[secret, issuer], "OIDC_AUDIENCE"),
            (&[secret, audience], "OIDC_ISSUER"),
            (
                &[secret, ("OIDC_ISSUER", "http://id.example.uz"), audience],
                "OIDC_ISSUER",
            ),
            (
                &[secret, issuer, audience, ("OIDC_JWKS_URL", "ftp://x")],
                "OIDC_JWKS_URL",
            ),
            (
                &[secret, issuer, audience, ("OIDC_ALGORITHMS", "HS256")],
                "OIDC_ALGORITHMS",
            ),
            (
                &[secret, ("TELEGRAM_BOT_TOKEN", "not-a-token")],
                "TELEGRAM_BOT_TOKEN",
            ),
            (
                &[("TELEGRAM_MAX_AGE_SECONDS", "0")],
                "TELEGRAM_MAX_AGE_SECONDS",
            ),
            (&[("SESSION_TTL_SECONDS", "forever")], "SESSION_TTL_SECONDS"),
            (&[("LOGIN_RATE_PER_MINUTE", "0")], "LOGIN_RATE_PER_MINUTE"),
            (
                &[("TICKET_RATE_PER_MINUTE", "-1")],
                "TICKET_RATE_PER_MINUTE",
            ),
            (&[("CORS_ALLOWED_ORIGINS", "*")], "CORS_ALLOWED_ORIGINS"),
            (&[("TRUSTED_PROXIES", "proxy.local")], "TRUSTED_PROXIES"),
        ];
        for (pairs, variable) in cases {
            assert_eq!(config(pairs).unwrap_err().variable, *variable, "{pairs:?}");
        }
        assert!(
            config(&[secret, ("OIDC_ISSUER", "http://127.0.0.1:8080"), audience]).is_ok(),
            "http on the loopback interface is fine for tests and development"
        );
    }
}
