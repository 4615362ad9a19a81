//! The connection pool: deadpool over diesel-async, with explicit timeouts so that a slow
//! or absent database turns into a quick error instead of a hung request.

use diesel::ConnectionError;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use std::time::Duration;

pub type Pool = diesel_async::pooled_connection::deadpool::Pool<AsyncPgConnection>;
pub type PooledConnection = diesel_async::pooled_connection::deadpool::Object<AsyncPgConnection>;

#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_size: usize,
    /// How long a caller waits for a free connection, and for a new one to be made.
    pub acquire_timeout: Duration,
    /// `statement_timeout` of every session.
    pub statement_timeout: Duration,
    /// `lock_timeout` of every session: a request blocked on a row lock (e.g. behind an
    /// in-flight request with the same idempotency key) fails instead of piling up.
    pub lock_timeout: Duration,
    /// Recycle with a test query. Off for the API, whose hot path should not pay a round
    /// trip per checkout (a broken connection is still noticed by the driver); on for
    /// long-running workers that must notice a restarted server.
    pub verify_on_checkout: bool,
    /// `plan_cache_mode = force_generic_plan`: prepared statements are planned once per
    /// connection instead of on every execution. For a session whose statements all plan
    /// well without their parameters' values (the relay's, checked by its tests, and the
    /// API's key lookups and inserts): left to itself PostgreSQL re-planned the relay's
    /// claim and the API's create statements on every execution, which cost as much as
    /// running them.
    pub generic_plans: bool,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_size: 16,
            acquire_timeout: Duration::from_secs(2),
            statement_timeout: Duration::from_secs(5),
            lock_timeout: Duration::from_secs(2),
            verify_on_checkout: false,
            generic_plans: false,
        }
    }
}

impl PoolSettings {
    pub fn for_tests() -> Self {
        PoolSettings {
            max_size: 4,
            acquire_timeout: Duration::from_secs(10),
            ..PoolSettings::default()
        }
    }
}

pub fn build(database_url: &str, settings: &PoolSettings) -> Result<Pool, crate::StoreError> {
    let mut session_setup = format!(
        "SET statement_timeout = {}; SET lock_timeout = {}",
        settings.statement_timeout.as_millis(),
        settings.lock_timeout.as_millis()
    );
    if settings.generic_plans {
        session_setup.push_str("; SET plan_cache_mode = force_generic_plan");
    }
    let mut config = ManagerConfig::default();
    config.recycling_method = if settings.verify_on_checkout {
        RecyclingMethod::Verified
    } else {
        RecyclingMethod::Fast
    };
    config.custom_setup = Box::new(move |url| {
        let setup = session_setup.clone();
        let url = url.to_owned();
        Box::pin(async move {
            let mut connection = AsyncPgConnection::establish(&url).await?;
            connection
                .batch_execute(&setup)
                .await
                .map_err(|e| ConnectionError::BadConnection(e.to_string()))?;
            Ok(connection)
        })
    });
    let manager =
        AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(database_url, config);
    diesel_async::pooled_connection::deadpool::Pool::builder(manager)
        .max_size(settings.max_size)
        .runtime(deadpool::Runtime::Tokio1)
        .wait_timeout(Some(settings.acquire_timeout))
        .create_timeout(Some(settings.acquire_timeout))
        .recycle_timeout(Some(settings.acquire_timeout))
        .build()
        .map_err(|e| crate::StoreError::Unavailable(e.to_string()))
}

/// Checks that the database answers a trivial query.
pub async fn ping(pool: &Pool) -> Result<(), crate::StoreError> {
    let mut connection = pool.get().await?;
    connection.batch_execute("SELECT 1").await?;
    Ok(())
}
