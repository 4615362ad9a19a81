//! Logging set-up shared by the binaries: an `EnvFilter` from `RUST_LOG` and a
//! `LOG_FORMAT` switch between human-readable and JSON lines. Logs carry ids, never
//! payloads, tokens or personal data.

use cons_store::settings::{ConfigError, Env};
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
