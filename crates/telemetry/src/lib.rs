//! Telemetry shared by the binaries: logging (an `EnvFilter` from `RUST_LOG` and a
//! `LOG_FORMAT` switch between human-readable and JSON lines; logs carry ids, never
//! payloads, tokens or personal data) and the process-wide Prometheus recorder.

use cons_store::settings::{ConfigError, Env};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub filter: String,
    pub format: LogFormat,
}

impl LogConfig {
    pub fn from_env(env: &Env) -> Result<LogConfig, ConfigError> {
        let format = match env.get("LOG_FORMAT").as_deref() {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(_) => return Err(ConfigError::new("LOG_FORMAT", "expected pretty or json")),
        };
        let filter = env.get("RUST_LOG").unwrap_or_else(|| "info".into());
        EnvFilter::try_new(&filter).map_err(|e| ConfigError::new("RUST_LOG", e.to_string()))?;
        Ok(LogConfig { filter, format })
    }
}

/// Installs the global subscriber; a second call (tests, `consctl dev`) is a no-op.
pub fn init(config: &LogConfig) {
    let filter = EnvFilter::try_new(&config.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _already_set = match config.format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Latency buckets in seconds, fine-grained below 50 ms where requests and deliveries
/// should live.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

static RECORDER: std::sync::OnceLock<Option<PrometheusHandle>> = std::sync::OnceLock::new();

/// The process-wide Prometheus recorder, installed on first use. `None` only if another
/// recorder was installed first; `/metrics` then answers empty instead of panicking.
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    RECORDER
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => Some(handle),
                Err(error) => {
                    tracing::warn!(%error, "could not install the metrics recorder");
                    None
                }
            }
        })
        .as_ref()
}
