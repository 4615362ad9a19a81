//! Configuration from the environment, shared by every binary: a `.env` file in the
//! working directory is read first when present (the real environment wins), values are
//! typed once at start, and a bad one fails with a single line naming the variable.
//!
//! The database variables live here because every binary needs them:
//! `DATABASE_URL`, or `DB_HOST` `DB_PORT` `DB_NAME` `DB_USER` `DB_PASS` (the original
//! system's names); `DB_POOL_SIZE`, `DB_ACQUIRE_TIMEOUT_MS`, `DB_STATEMENT_TIMEOUT_MS`,
//! `DB_LOCK_TIMEOUT_MS`.

use crate::pool::PoolSettings;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A bad or missing configuration value; its message names the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration: {variable}: {reason}")]
pub struct ConfigError {
    pub variable: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(variable: &str, reason: impl Into<String>) -> Self {
        ConfigError {
            variable: variable.to_owned(),
            reason: reason.into(),
        }
    }
}

/// The process environment (after `.env`), read through the `config` crate.
pub struct Env {
    values: config::Config,
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values are secrets more often than not.
        f.write_str("Env { .. }")
    }
}

impl Env {
    /// Reads `.env` (if present) into the process environment, then snapshots it.
    pub fn load() -> Result<Env, ConfigError> {
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(error) if error.not_found() => {}
            Err(error) => return Err(ConfigError::new(".env", error.to_string())),
        }
        Self::from_source(config::Environment::default())
    }

    /// An environment made of the given pairs only (tests, `consctl dev`).
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Env, ConfigError> {
        let map = pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Self::from_source(config::Environment::default().source(Some(map)))
    }

    fn from_source(source: config::Environment) -> Result<Env, ConfigError> {
        let values = config::Config::builder()
            .add_source(source)
            .build()
            .map_err(|e| ConfigError::new("environment", e.to_string()))?;
        Ok(Env { values })
    }

    /// The raw value, `None` when unset or empty.
    pub fn get(&self, variable: &str) -> Option<String> {
        // The config crate folds keys to lower case.
        self.values
            .get_string(&variable.to_ascii_lowercase())
            .ok()
            .filter(|v| !v.trim().is_empty())
    }

    pub fn required(&self, variable: &str) -> Result<String, ConfigError> {
        self.get(variable)
            .ok_or_else(|| ConfigError::new(variable, "is required but not set"))
    }

    /// Parses the value, or returns `default` when unset.
    pub fn parse_or<T: FromStr>(
        &self,
        variable: &str,
        default: T,
        expected: &str,
    ) -> Result<T, ConfigError> {
        match self.get(variable) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse()
                .map_err(|_| ConfigError::new(variable, format!("expected {expected}"))),
        }
    }

    /// A duration given in milliseconds.
    pub fn millis_or(&self, variable: &str, default: Duration) -> Result<Duration, ConfigError> {
        let default_ms = u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
        self.parse_or(variable, default_ms, "a whole number of milliseconds")
            .map(Duration::from_millis)
    }
}

/// Where the database is and how to pool connections to it.
#[derive(Clone)]
pub struct DatabaseConfig {
    pub url: String,
    pub pool: PoolSettings,
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password.
        f.debug_struct("DatabaseConfig")
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl DatabaseConfig {
    pub fn from_env(env: &Env, defaults: PoolSettings) -> Result<DatabaseConfig, ConfigError> {
        let url = match env.get("DATABASE_URL") {
            Some(url) => url,
            None => {
                let host = env.get("DB_HOST").unwrap_or_else(|| "localhost".into());
                let port: u16 = env.parse_or("DB_PORT", 5432, "a port number")?;
                let name = env.get("DB_NAME").unwrap_or_else(|| "cons_backend".into());
                let user = env.get("DB_USER").unwrap_or_else(|| "postgres".into());
                let credentials = match env.get("DB_PASS") {
                    Some(pass) => format!("{}:{}", encode(&user), encode(&pass)),
                    None => encode(&user),
                };
                format!("postgres://{credentials}@{host}:{port}/{}", encode(&name))
            }
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(ConfigError::new(
                "DATABASE_URL",
                "must start with postgres:// or postgresql://",
            ));
        }
        let max_size =
            env.parse_or("DB_POOL_SIZE", defaults.max_size, "a number of connections")?;
        if max_size == 0 {
            return Err(ConfigError::new("DB_POOL_SIZE", "must be at least 1"));
        }
        let pool = PoolSettings {
            max_size,
            acquire_timeout: env.millis_or("DB_ACQUIRE_TIMEOUT_MS", defaults.acquire_timeout)?,
            statement_timeout: env
                .millis_or("DB_STATEMENT_TIMEOUT_MS", defaults.statement_timeout)?,
            lock_timeout: env.millis_or("DB_LOCK_TIMEOUT_MS", defaults.lock_timeout)?,
            ..defaults
        };
        Ok(DatabaseConfig { url, pool })
    }
}

/// Percent-encodes a URL userinfo or path component.
fn encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_is_built_from_the_seed_variables_when_unset() {
        let env = Env::from_pairs([
            ("DB_HOST", "db"),
            ("DB_PASS", "p@ss word"),
            ("DB_NAME", "cons"),
        ])
        .unwrap();
        let config = DatabaseConfig::from_env(&env, PoolSettings::default()).unwrap();
        assert_eq!(config.url, "postgres://postgres:p%40ss%20word@db:5432/cons");
    }

    #[test]
    fn database_url_wins_over_the_parts() {
        let env =
            Env::from_pairs([("DATABASE_URL", "postgres://u@h/d"), ("DB_HOST", "other")]).unwrap();
        assert_eq!(
            DatabaseConfig::from_env(&env, PoolSettings::default())
                .unwrap()
                .url,
            "postgres://u@h/d"
        );
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let env = Env::from_pairs([("DB_PORT", "fifty")]).unwrap();
        let error = DatabaseConfig::from_env(&env, PoolSettings::default()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "configuration: DB_PORT: expected a port number"
        );
        let env = Env::from_pairs([("DATABASE_URL", "mysql://x")]).unwrap();
        assert_eq!(
            DatabaseConfig::from_env(&env, PoolSettings::default())
                .unwrap_err()
                .variable,
            "DATABASE_URL"
        );
    }
}
