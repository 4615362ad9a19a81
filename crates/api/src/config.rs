//! `ApiConfig`: everything `cons-api` reads from the environment, typed once at start.
//!
//! Variables: `API_BIND` (default `0.0.0.0:7070`), `API_WORKERS` (default: the number of
//! CPUs), `SERVICE_TOKENS` (`name:secret,…`), `TICKET_MAX_SCHEDULE_DAYS` (default 30),
//! `CHATWOOT_WEBHOOK_SECRET` and `ONEC_WEBHOOK_SECRET` (comma-separated while rotating),
//! `CHATWOOT_WEBHOOK_ALLOW_UNSIGNED` (default false),
//! `RUST_LOG`, `LOG_FORMAT` (`pretty` or `json`), the database variables of
//! `cons_store::settings`, and the login, session, rate-limit and CORS variables of
//! `access::config`.

use crate::access::config::AccessConfig;
use crate::auth::ServiceTokens;
use crate::handlers::webhooks::WebhookAuth;
use crate::signature::WebhookSecrets;
use cons_domain::IntakeLimits;
use cons_store::pool::PoolSettings;
use cons_store::settings::{ConfigError, DatabaseConfig, Env};
use cons_telemetry::LogConfig;
use std::net::SocketAddr;

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub database: DatabaseConfig,
    pub bind: SocketAddr,
    pub workers: usize,
    pub service_tokens: ServiceTokens,
    pub intake: IntakeLimits,
    pub webhooks: WebhookAuth,
    pub log: LogConfig,
    pub access: AccessConfig,
}

impl ApiConfig {
    pub fn from_env(env: &Env) -> Result<ApiConfig, ConfigError> {
        let cpus = std::thread::available_parallelism().map_or(2, usize::from);
        let workers = env.parse_or("API_WORKERS", cpus, "a number of worker threads")?;
        if workers == 0 {
            return Err(ConfigError::new("API_WORKERS", "must be at least 1"));
        }
        let service_tokens = ServiceTokens::parse(&env.get("SERVICE_TOKENS").unwrap_or_default())
            .map_err(|reason| ConfigError::new("SERVICE_TOKENS", reason))?;
        let days: u16 = env.parse_or("TICKET_MAX_SCHEDULE_DAYS", 30, "a number of days")?;
        if days == 0 {
            return Err(ConfigError::new(
                "TICKET_MAX_SCHEDULE_DAYS",
                "must be at least 1",
            ));
        }
        let secrets = |variable: &'static str| {
            WebhookSecrets::parse(&env.get(variable).unwrap_or_default())
                .map_err(|reason| ConfigError::new(variable, reason))
        };
        let webhooks = WebhookAuth {
            chatwoot: secrets("CHATWOOT_WEBHOOK_SECRET")?,
            chatwoot_allow_unsigned: env.parse_or(
                "CHATWOOT_WEBHOOK_ALLOW_UNSIGNED",
                false,
                "true or false",
            )?,
            onec: secrets("ONEC_WEBHOOK_SECRET")?,
        };
        if webhooks.chatwoot_allow_unsigned && !webhooks.chatwoot.is_empty() {
            return Err(ConfigError::new(
                "CHATWOOT_WEBHOOK_ALLOW_UNSIGNED",
                "cannot be true while CHATWOOT_WEBHOOK_SECRET is set",
            ));
        }
        Ok(ApiConfig {
            // Every API statement is a lookup by key or an insert, which plans as well
            // without its parameters' values; left to itself PostgreSQL re-planned the
            // create statements on every execution (half a millisecond each).
            database: DatabaseConfig::from_env(
                env,
                PoolSettings {
                    generic_plans: true,
                    ..PoolSettings::default()
                },
            )?,
            bind: env.parse_or(
                "API_BIND",
                SocketAddr::from(([0, 0, 0, 0], 7070)),
                "an address like 0.0.0.0:7070",
            )?,
            workers,
            service_tokens,
            webhooks,
            intake: IntakeLimits {
                max_schedule_ahead: chrono::Duration::days(i64::from(days)),
                ..IntakeLimits::default()
            },
            log: LogConfig::from_env(env)?,
            access: AccessConfig::from_env(env)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_contract() {
        let config = ApiConfig::from_env(&Env::from_pairs([]).unwrap()).unwrap();
        assert_eq!(config.bind.to_string(), "0.0.0.0:7070");
        assert_eq!(config.intake.max_schedule_ahead, chrono::Duration::days(30));
        assert_eq!(
            config.database.url,
            "postgres://postgres@localhost:5432/cons_backend"
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (variable, value) in [
            ("API_BIND", "7070"),
            ("SERVICE_TOKENS", "site"),
            ("TICKET_MAX_SCHEDULE_DAYS", "-1"),
            ("LOG_FORMAT", "xml"),
            ("API_WORKERS", "0"),
        ] {
            let error =
                ApiConfig::from_env(&Env::from_pairs([(variable, value)]).unwrap()).unwrap_err();
            assert_eq!(error.variable, variable);
        }
    }
}
