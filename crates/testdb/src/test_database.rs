//! One database per test, cloned from a migrated template on a server shared by the whole test
//! process.

use std::sync::OnceLock;

use diesel::sql_types::Bool;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
use uuid::Uuid;

use crate::{Cluster, ClusterOptions};

/// Environment variable naming an existing server (superuser URL) to use instead of starting a
/// throwaway cluster.
const SERVER_URL_VAR: &str = "TEST_DATABASE_URL";
/// The migrated database every test database is cloned from.
const TEMPLATE: &str = "cons_template";
/// Advisory lock (taken in the server's admin database) serialising template set-up across
/// processes sharing one `TEST_DATABASE_URL` server. "constpl" in ASCII.
const TEMPLATE_LOCK: i64 = 0x0063_6f6e_7374_706c;

/// Why a [`TestDatabase`] could not be set up.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct TestDatabaseError(String);

/// The server all tests of this process use.
struct Server {
    /// The throwaway cluster, unless `TEST_DATABASE_URL` named a server. It sits in a static,
    /// which is never dropped: when the process exits, the kernel's parent-death signal shuts
    /// the server down, and the next run's `Cluster::start` removes its directory.
    _cluster: Option<Cluster>,
    /// Superuser URL of the admin database (`postgres`, or whatever `TEST_DATABASE_URL` names).
    admin_url: String,
}

/// Started on first use. Set-up errors are kept too, so that every later test fails at once
/// with the same message instead of retrying a slow start.
static SERVER: OnceLock<Result<Server, TestDatabaseError>> = OnceLock::new();

/// A fresh database for one test, with every migration applied, and a pool on it.
///
/// The database is not dropped afterwards: the per-process cluster is throwaway and its data
/// directory goes away with it, and dropping would cost a round trip plus a checkpoint per test.
/// (With `TEST_DATABASE_URL` the `t_*` databases do pile up on that server; drop them at will.)
pub struct TestDatabase {
    name: String,
    url: String,
    pool: cons_store::Pool,
    admin_url: &'static str,
}

impl std::fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDatabase")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl TestDatabase {
    /// Creates this test's database. Panics with the reason on failure: it is a test helper,
    /// and a test without its database cannot do anything useful.
    pub async fn new() -> Self {
        match Self::try_new().await {
            Ok(db) => db,
            Err(e) => panic!("cannot set up a test database: {e}"),
        }
    }

    /// Like [`TestDatabase::new`], returning the error instead of panicking.
    pub async fn try_new() -> Result<Self, TestDatabaseError> {
        // The first call starts the server and builds the template, which blocks for a second
        // or two; concurrent first calls wait for that one set-up. Off the async thread, since
        // the caller's runtime may be driving other tasks.
        let server = tokio::task::spawn_blocking(server)
            .await
            .map_err(|e| TestDatabaseError(format!("test database set-up panicked: {e}")))??;

        let name = format!("t_{}", Uuid::now_v7().simple());
        let mut admin = connect(&server.admin_url).await?;
        // FILE_COPY copies the template's files, much faster than the default WAL_LOG for a
        // small database.
        diesel::sql_query(format!(
            "CREATE DATABASE \"{name}\" TEMPLATE {TEMPLATE} STRATEGY FILE_COPY"
        ))
        .execute(&mut admin)
        .await
        .map_err(|e| TestDatabaseError(format!("cannot create database {name}: {e}")))?;

        let url = with_database(&server.admin_url, &name);
        let pool = cons_store::pool::build(&url, &cons_store::pool::PoolSettings::for_tests())
            .map_err(|e| TestDatabaseError(format!("cannot build a pool for {url}: {e}")))?;
        Ok(Self {
            name,
            url,
            pool,
            admin_url: &server.admin_url,
        })
    }

    /// The name of this test's database.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// URL of this test's database (superuser).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A pool on this test's database ([`cons_store::pool::PoolSettings::for_tests`]).
    pub fn pool(&self) -> &cons_store::Pool {
        &self.pool
    }

    /// URL of another database on the same server, e.g. `"postgres"`.
    pub fn cluster_url(&self, database: &str) -> String {
        with_database(self.admin_url, database)
    }
}

/// The process-wide server, set up on first call.
fn server() -> Result<&'static Server, TestDatabaseError> {
    SERVER
        .get_or_init(start_server)
        .as_ref()
        .map_err(Clone::clone)
}

fn start_server() -> Result<Server, TestDatabaseError> {
    let (cluster, admin_url) = match std::env::var(SERVER_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => (None, url.trim().to_owned()),
        _ => {
            let cluster = Cluster::start(ClusterOptions::default()).map_err(|e| {
                TestDatabaseError(format!("cannot start a throwaway PostgreSQL: {e}"))
            })?;
            let url = cluster.url("postgres");
            (Some(cluster), url)
        }
    };

    // The template work runs on its own thread and runtime: the callers' runtimes belong to
    // single tests and end with them, so nothing async may outlive a call into one of them.
    // Multi-threaded, because diesel's synchronous migration harness needs to block.
    let admin = admin_url.clone();
    let prepared = std::thread::Builder::new()
        .name("cons-testdb-template".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .map_err(|e| TestDatabaseError(format!("cannot start a tokio runtime: {e}")))?;
            runtime.block_on(prepare_template(&admin))
        })
        .map_err(|e| TestDatabaseError(format!("cannot start the template thread: {e}")))?
        .join()
        .map_err(|_| TestDatabaseError("the template thread panicked".to_owned()))?;
    prepared?;

    Ok(Server {
        _cluster: cluster,
        admin_url,
    })
}

/// Creates the template database if it does not exist yet and applies pending migrations.
async fn prepare_template(admin_url: &str) -> Result<(), TestDatabaseError> {
    let started = std::time::Instant::now();
    let mut admin = connect(admin_url).await?;
    // Another test process may be doing the same on a shared TEST_DATABASE_URL server. The lock
    // is released when this connection closes, also on error.
    diesel::sql_query(format!("SELECT pg_advisory_lock({TEMPLATE_LOCK})"))
        .execute(&mut admin)
        .await
        .map_err(|e| TestDatabaseError(format!("cannot take the template lock: {e}")))?;
    let exists = diesel::select(diesel::dsl::sql::<Bool>(&format!(
        "EXISTS (SELECT 1 FROM pg_database WHERE datname = '{TEMPLATE}')"
    )))
    .get_result::<bool>(&mut admin)
    .await
    .map_err(|e| TestDatabaseError(format!("cannot look for database {TEMPLATE}: {e}")))?;
    if !exists {
        // template0, not template1: on a shared server template1 may have been changed.
        diesel::sql_query(format!("CREATE DATABASE {TEMPLATE} TEMPLATE template0"))
            .execute(&mut admin)
            .await
            .map_err(|e| TestDatabaseError(format!("cannot create database {TEMPLATE}: {e}")))?;
    }
    let template_url = with_database(admin_url, TEMPLATE);
    let applied = cons_store::migrate::run_pending(&template_url)
        .await
        .map_err(|e| TestDatabaseError(format!("cannot migrate {template_url}: {e}")))?;
    tracing::debug!(
        created = !exists,
        migrations = applied.len(),
        elapsed = ?started.elapsed(),
        "test database template ready"
    );
    Ok(())
}

async fn connect(url: &str) -> Result<AsyncPgConnection, TestDatabaseError> {
    AsyncPgConnection::establish(url)
        .await
        .map_err(|e| TestDatabaseError(format!("cannot connect to {url}: {e}")))
}

/// `url` with its database (the path) replaced by `database`; user, host, port and query
/// parameters are kept.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    let mut out = format!("{}/{database}", &base[..path]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_of_a_url() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t_1"),
            "postgres://postgres@127.0.0.1:5432/t_1"
        );
        assert_eq!(
            with_database("postgres://u:p@db:5432/app?sslmode=disable", "x"),
            "postgres://u:p@db:5432/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://u@db:5432", "x"),
            "postgres://u@db:5432/x"
        );
        assert_eq!(
            with_database("postgres://u@db?application_name=t", "x"),
            "postgres://u@db/x?application_name=t"
        );
    }
}
