//! `RelayConfig`: everything `cons-relay` reads from the environment, typed once at start.
//!
//! Relay: `RELAY_METRICS_BIND` (default `0.0.0.0:9091`), `RELAY_MAX_ATTEMPTS` (12),
//! `RELAY_BACKOFF_BASE_MS` (1000), `RELAY_BACKOFF_MAX_MS` (600000), `RELAY_CONCURRENCY`
//! (deliveries in flight per target, 32), `RELAY_BATCH_SIZE` (100), `RELAY_POLL_INTERVAL_MS`
//! (1000), `RELAY_PAUSE_AFTER_FAILURES` (5), `RELAY_PAUSE_MS` (10000),
//! `RELAY_SHUTDOWN_GRACE_MS` (30000). Leases follow from the peer timeouts
//! (`RELAY_HTTP_TIMEOUT_MS` 10000 for Chatwoot, `ONEC_HTTP_TIMEOUT_MS` 60000 for 1C): an
//! effect makes several calls, so a lease is eight timeouts long, or `RELAY_LEASE_MS`.
//!
//! Inbound sync: `ONEC_POLL_INTERVAL_MS` (30000), `SYNC_RECONCILE_INTERVAL_MS` (300000),
//! `SYNC_RECONCILE_CLOSED_DAYS` (7: closed tickets are compared this long after closing),
//! `WEBHOOK_RETENTION_DAYS` (30: handled webhook deliveries are deleted after this).
//!
//! `RELAY_BENCH_SINK_URL` (benchmarks only, unset in production): deliver every entry as
//! one POST to this URL instead of running the Chatwoot and 1C effects (`crate::sink`).

use crate::backoff::Backoff;
use crate::inbound::InboundSettings;
use crate::pause::PausePolicy;
use crate::worker::{RelaySettings, TargetSettings};
use cons_domain::Target;
use cons_store::pool::PoolSettings;
use cons_store::settings::{ConfigError, DatabaseConfig, Env};
use cons_telemetry::LogConfig;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub database: DatabaseConfig,
    pub metrics_bind: SocketAddr,
    pub relay: RelaySettings,
    pub chatwoot_timeout: Duration,
    pub onec_timeout: Duration,
    pub shutdown_grace: Duration,
    pub inbound: InboundSettings,
    pub log: LogConfig,
    /// The benchmark mode: no peers, one POST per entry to this URL.
    pub bench_sink_url: Option<String>,
}

impl RelayConfig {
    pub fn from_env(env: &Env) -> Result<RelayConfig, ConfigError> {
        let chatwoot_timeout = env.millis_or("RELAY_HTTP_TIMEOUT_MS", Duration::from_secs(10))?;
        let onec_timeout = env.millis_or("ONEC_HTTP_TIMEOUT_MS", Duration::from_secs(60))?;
        let lease_override = env
            .get("RELAY_LEASE_MS")
            .map(|_| env.millis_or("RELAY_LEASE_MS", Duration::ZERO))
            .transpose()?;
        let concurrency: usize = env.parse_or("RELAY_CONCURRENCY", 32, "a number of deliveries")?;
        let batch_size: usize = env.parse_or("RELAY_BATCH_SIZE", 100, "a number of entries")?;
        if concurrency == 0 || batch_size == 0 {
            return Err(ConfigError::new(
                "RELAY_CONCURRENCY",
                "and RELAY_BATCH_SIZE must be at least 1",
            ));
        }
        let lease = |timeout: Duration| lease_override.unwrap_or(timeout * 8);
        let max_attempts: u32 = env.parse_or("RELAY_MAX_ATTEMPTS", 12, "a number of attempts")?;
        if max_attempts == 0 {
            return Err(ConfigError::new("RELAY_MAX_ATTEMPTS", "must be at least 1"));
        }
        let backoff = Backoff {
            base: env.millis_or("RELAY_BACKOFF_BASE_MS", Duration::from_secs(1))?,
            cap: env.millis_or("RELAY_BACKOFF_MAX_MS", Duration::from_secs(600))?,
        };
        let pause_for = env.millis_or("RELAY_PAUSE_MS", Duration::from_secs(10))?;
        Ok(RelayConfig {
            // Workers run for days: verify connections on checkout so a restarted server
            // is noticed at once. The relay's few statements run thousands of times a
            // second and plan well generically (see `cons_store::pool`).
            database: DatabaseConfig::from_env(
                env,
                PoolSettings {
                    max_size: 8,
                    verify_on_checkout: true,
                    generic_plans: true,
                    ..PoolSettings::default()
                },
            )?,
            metrics_bind: env.parse_or(
                "RELAY_METRICS_BIND",
                SocketAddr::from(([0, 0, 0, 0], 9091)),
                "an address like 0.0.0.0:9091",
            )?,
            relay: RelaySettings {
                owner: owner(),
                targets: vec![
                    TargetSettings {
                        target: Target::Chatwoot,
                        concurrency,
                        lease: lease(chatwoot_timeout),
                    },
                    TargetSettings {
                        target: Target::Onec,
                        concurrency,
                        lease: lease(onec_timeout),
                    },
                ],
                batch_size,
                flush_interval: Duration::from_millis(20),
                poll_interval: env.millis_or("RELAY_POLL_INTERVAL_MS", Duration::from_secs(1))?,
                max_attempts,
                backoff,
                pause: PausePolicy {
                    after_failures: env.parse_or(
                        "RELAY_PAUSE_AFTER_FAILURES",
                        5,
                        "a number of failures",
                    )?,
                    pause: pause_for,
                    max: pause_for * 30,
                },
            },
            chatwoot_timeout,
            onec_timeout,
            shutdown_grace: env.millis_or("RELAY_SHUTDOWN_GRACE_MS", Duration::from_secs(30))?,
            inbound: inbound_settings(env)?,
            log: LogConfig::from_env(env)?,
            bench_sink_url: env.get("RELAY_BENCH_SINK_URL"),
        })
    }
}

fn inbound_settings(env: &Env) -> Result<InboundSettings, ConfigError> {
    let defaults = InboundSettings::default();
    let days: u32 = env.parse_or("SYNC_RECONCILE_CLOSED_DAYS", 7, "a number of days")?;
    let retention_days: u32 = env.parse_or("WEBHOOK_RETENTION_DAYS", 30, "a number of days")?;
    if retention_days == 0 {
        return Err(ConfigError::new(
            "WEBHOOK_RETENTION_DAYS",
            "must be at least 1",
        ));
    }
    let settings = InboundSettings {
        onec_poll: env.millis_or("ONEC_POLL_INTERVAL_MS", defaults.onec_poll)?,
        reconcile_every: env.millis_or("SYNC_RECONCILE_INTERVAL_MS", defaults.reconcile_every)?,
        reconcile_closed_within: Duration::from_secs(u64::from(days) * 24 * 3600),
        webhook_retention: Duration::from_secs(u64::from(retention_days) * 24 * 3600),
        ..defaults
    };
    for (variable, value) in [
        ("ONEC_POLL_INTERVAL_MS", settings.onec_poll),
        ("SYNC_RECONCILE_INTERVAL_MS", settings.reconcile_every),
    ] {
        if value < Duration::from_millis(100) {
            return Err(ConfigError::new(variable, "must be at least 100 ms"));
        }
    }
    Ok(settings)
}

/// `host:pid:random`, so leases name the process that holds them.
fn owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{}:{}:{}", host.trim(), std::process::id(), &random[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_contract() {
        let config = RelayConfig::from_env(&Env::from_pairs([]).unwrap()).unwrap();
        assert_eq!(config.metrics_bind.to_string(), "0.0.0.0:9091");
        assert_eq!(config.relay.max_attempts, 12);
        assert_eq!(
            config.relay.backoff,
            Backoff {
                base: Duration::from_secs(1),
                cap: Duration::from_secs(600)
            }
        );
        assert_eq!(config.chatwoot_timeout, Duration::from_secs(10));
        assert_eq!(config.onec_timeout, Duration::from_secs(60));
        assert!(
            config
                .relay
                .targets
                .iter()
                .all(|t| t.lease > t.lease.mul_f64(0.75))
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (variable, value) in [
            ("RELAY_MAX_ATTEMPTS", "0"),
            ("RELAY_BACKOFF_BASE_MS", "soon"),
            ("RELAY_METRICS_BIND", "x"),
        ] {
            let error =
                RelayConfig::from_env(&Env::from_pairs([(variable, value)]).unwrap()).unwrap_err();
            assert_eq!(error.variable, variable);
        }
    }
}
