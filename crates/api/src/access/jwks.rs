//! The identity provider's signing keys (its JWKS), fetched from `OIDC_JWKS_URL` or from
//! the `jwks_uri` of the issuer's discovery document, and cached. Never fetched per
//! request: a set is kept for its `Cache-Control: max-age` (within bounds), and an
//! unknown `kid` refetches at most once per `min_refresh_interval` however many tokens
//! arrive, so forged `kid`s cannot turn into a flood of fetches. A failed fetch keeps the
//! last good set.

use jsonwebtoken::jwk::{Jwk, JwkSet};
use serde::Deserialize;
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// Bounds on how long a fetched set is used before it is fetched again.
const MIN_MAX_AGE: Duration = Duration::from_secs(5 * 60);
const MAX_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);
/// Used when the provider sends no `max-age`.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(60 * 60);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// A JWKS is a few kilobytes.
const MAX_DOCUMENT_BYTES: usize = 512 * 1024;

/// Where the keys come from.
#[derive(Debug, Clone)]
pub enum JwksSource {
    /// `OIDC_JWKS_URL`.
    Url(String),
    /// The issuer's `/.well-known/openid-configuration`, whose `issuer` must be this one.
    Discovery { issuer: String },
}

#[derive(Debug)]
struct Cached {
    keys: JwkSet,
    fetched_at: Instant,
    max_age: Duration,
}

#[derive(Debug)]
pub struct Jwks {
    source: JwksSource,
    http: reqwest::Client,
    min_refresh_interval: Duration,
    cached: RwLock<Option<Cached>>,
    /// Held while fetching, so concurrent requests wait for one fetch instead of each
    /// starting their own; holds when the last fetch started.
    refresh: tokio::sync::Mutex<Option<Instant>>,
}

#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    #[error("{0}")]
    Document(String),
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

impl Jwks {
    pub fn new(source: JwksSource, min_refresh_interval: Duration) -> anyhow::Result<Jwks> {
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            // Requests run on whichever actix worker asked; a pooled connection would stay
            // bound to that worker's runtime. Fetches are rare, so none is kept.
            .pool_max_idle_per_host(0)
            .build()?;
        Ok(Jwks {
            source,
            http,
            min_refresh_interval,
            cached: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(None),
        })
    }

    /// The key named `kid` (or the only key, when the token names none), refetching the set
    /// if it does not have it or is past its age, within the refresh limit.
    pub async fn key(&self, kid: Option<&str>) -> Option<Jwk> {
        if let Some((key, fresh)) = self.lookup(kid)
            && fresh
        {
            return Some(key);
        }
        self.refresh().await;
        self.lookup(kid).map(|(key, _)| key)
    }

    fn lookup(&self, kid: Option<&str>) -> Option<(Jwk, bool)> {
        let cached = self.cached.read().ok()?;
        let cached = cached.as_ref()?;
        let key = match kid {
            Some(kid) => cached.keys.find(kid)?,
            None => match cached.keys.keys.as_slice() {
                [only] => only,
                _ => return None,
            },
        };
        Some((key.clone(), cached.fetched_at.elapsed() < cached.max_age))
    }

    /// Fetches the set unless a fetch started less than `min_refresh_interval` ago. Also
    /// called once at start, so the first login finds the keys.
    pub async fn refresh(&self) {
        let mut last = self.refresh.lock().await;
        if last.is_some_and(|at| at.elapsed() < self.min_refresh_interval) {
            return;
        }
        *last = Some(Instant::now());
        match self.fetch().await {
            Ok((keys, max_age)) => {
                tracing::info!(
                    jwks.keys = keys.keys.len(),
                    jwks.max_age_seconds = max_age.as_secs(),
                    "fetched the identity provider's keys"
                );
                if let Ok(mut cached) = self.cached.write() {
                    *cached = Some(Cached {
                        keys,
                        fetched_at: Instant::now(),
                        max_age,
                    });
                }
            }
            Err(error) => {
                tracing::warn!(%error, "could not fetch the identity provider's keys; keeping the last ones");
            }
        }
    }

    async fn fetch(&self) -> Result<(JwkSet, Duration), FetchError> {
        let url = match &self.source {
            JwksSource::Url(url) => url.clone(),
            JwksSource::Discovery { issuer } => {
                let (bytes, _) = self
                    .get(&format!(
                        "{}/.well-known/openid-configuration",
                        issuer.trim_end_matches('/')
                    ))
                    .await?;
                let discovery: Discovery = serde_json::from_slice(&bytes)
                    .map_err(|e| FetchError::Document(format!("discovery document: {e}")))?;
                if discovery.issuer != *issuer {
                    return Err(FetchError::Document(
                        "the discovery document names another issuer".into(),
                    ));
                }
                discovery.jwks_uri
            }
        };
        let (bytes, max_age) = self.get(&url).await?;
        let keys = serde_json::from_slice(&bytes)
            .map_err(|e| FetchError::Document(format!("JWKS: {e}")))?;
        Ok((keys, max_age))
    }

    async fn get(&self, url: &str) -> Result<(Vec<u8>, Duration), FetchError> {
        let response = self.http.get(url).send().await?.error_for_status()?;
        if response
            .content_length()
            .is_some_and(|length| length > MAX_DOCUMENT_BYTES as u64)
        {
            return Err(FetchError::Document("the document is too large".into()));
        }
        let max_age = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|value| value.to_str().ok())
            .and_then(max_age)
            .unwrap_or(DEFAULT_MAX_AGE)
            .clamp(MIN_MAX_AGE, MAX_MAX_AGE);
        let bytes = response.bytes().await?;
        if bytes.len() > MAX_DOCUMENT_BYTES {
            return Err(FetchError::Document("the document is too large".into()));
        }
        Ok((bytes.to_vec(), max_age))
    }
}

/// `max-age` of a `Cache-Control` value.
fn max_age(cache_control: &str) -> Option<Duration> {
    cache_control.split(',').find_map(|directive| {
        let (name, value) = directive.trim().split_once('=')?;
        name.eq_ignore_ascii_case("max-age")
            .then(|| value.trim().parse().ok())
            .flatten()
            .map(Duration::from_secs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_from_cache_control() {
        assert_eq!(
            max_age("public, max-age=3600, must-revalidate"),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(max_age("no-cache"), None);
        assert_eq!(max_age("max-age=soon"), None);
    }
}
