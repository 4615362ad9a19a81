//! Embedded migrations. `consctl migrate` applies them; the API and the relay only check
//! that none is pending and refuse to start otherwise (they never migrate implicitly).

use crate::StoreError;
use diesel::connection::SimpleConnection;
use diesel::migration::MigrationSource;
use diesel::pg::Pg;
use diesel::{Connection, RunQueryDsl, sql_query};
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// Migrations table lives in `sys`, beside the other bookkeeping tables.
const USE_SYS: &str = "CREATE SCHEMA IF NOT EXISTS sys; SET search_path TO sys";
/// Serialises concurrent `migrate` runs (two deploy jobs, or a job and a developer).
const MIGRATION_LOCK: i64 = 0x0063_6f6e_736d_6967; // "consmig"

type BlockingConnection = AsyncConnectionWrapper<AsyncPgConnection>;

/// Applies every pending migration; returns the versions applied (empty: nothing to do).
pub async fn run_pending(database_url: &str) -> Result<Vec<String>, StoreError> {
    blocking(database_url, |connection| {
        connection.batch_execute(USE_SYS)?;
        sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK})")).execute(connection)?;
        let applied = connection
            .run_pending_migrations(MIGRATIONS)
            .map(|versions| versions.iter().map(ToString::to_string).collect())
            .map_err(|e| StoreError::Migration(e.to_string()));
        sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})")).execute(connection)?;
        applied
    })
    .await
}

/// Refuses a database with pending migrations, naming them and the fix: the services never
/// migrate implicitly.
pub async fn ensure_current(database_url: &str) -> Result<(), StoreError> {
    let pending = pending(database_url).await?;
    if pending.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Migration(format!(
            "the database has {} pending migration(s) ({}): run `consctl migrate` first",
            pending.len(),
            pending.join(", ")
        )))
    }
}

/// Versions embedded in this binary that the database has not applied yet.
pub async fn pending(database_url: &str) -> Result<Vec<String>, StoreError> {
    blocking(database_url, |connection| {
        connection.batch_execute("SET search_path TO sys")?;
        #[derive(diesel::QueryableByName)]
        struct Exists {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            exists: bool,
        }
        let table =
            sql_query("SELECT to_regclass('sys.__diesel_schema_migrations') IS NOT NULL AS exists")
                .get_result::<Exists>(connection)?;
        if !table.exists {
            return embedded_versions();
        }
        connection
            .pending_migrations(MIGRATIONS)
            .map(|list| {
                list.iter()
                    .map(|m| m.name().version().to_string())
                    .collect()
            })
            .map_err(|e| StoreError::Migration(e.to_string()))
    })
    .await
}

/// Every migration version embedded in this binary, oldest first.
fn embedded_versions() -> Result<Vec<String>, StoreError> {
    MigrationSource::<Pg>::migrations(&MIGRATIONS)
        .map(|list| {
            list.iter()
                .map(|m| m.name().version().to_string())
                .collect()
        })
        .map_err(|e| StoreError::Migration(e.to_string()))
}

/// Runs diesel's synchronous migration harness on a blocking thread, over the async
/// driver (no libpq).
async fn blocking<T: Send + 'static>(
    database_url: &str,
    work: impl FnOnce(&mut BlockingConnection) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let url = database_url.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut connection = BlockingConnection::establish(&url)
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        work(&mut connection)
    })
    .await
    .map_err(|e| StoreError::Migration(format!("migration thread failed: {e}")))?
}
