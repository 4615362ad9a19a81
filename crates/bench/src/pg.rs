//! The PostgreSQL client tools (`psql`, `pgbench`) against a benchmark cluster on
//! 127.0.0.1, as superuser `postgres` with trust authentication.
//!
//! Tools come from the server's own installation (the directory of `initdb`) when found,
//! so that `pgbench` matches the server's version; `PATH` is the fallback.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context as _, bail};
use cons_testdb::{Cluster, ClusterOptions};

/// Where Debian/Ubuntu install versioned binaries (`/usr/lib/postgresql/15/bin`).
const DEBIAN_LIB_DIR: &str = "/usr/lib/postgresql";

/// The anchors' setting (performance.md): no WAL-triggered checkpoint inside a short run.
const MAX_WAL_SIZE_MB: u64 = 2048;

/// A durable throwaway cluster with the settings of the reference measurements in
/// `shared/docs/performance.md` (fsync on, default `synchronous_commit`,
/// `max_connections=200`, `max_wal_size=2GB`), and its client tools. Dropping it stops the
/// server and removes its files.
#[derive(Debug)]
pub struct AnchorCluster {
    pub cluster: Cluster,
    pub pg: Pg,
    /// Server version and the settings that matter, for the report.
    pub description: String,
}

impl AnchorCluster {
    pub fn start() -> anyhow::Result<AnchorCluster> {
        let cluster = Cluster::start(ClusterOptions {
            durable: true,
            max_connections: 200,
            ..ClusterOptions::default()
        })?;
        let pg = Pg::new(cluster.port())?;
        let max_wal_size = pg.ensure_max_wal_size(MAX_WAL_SIZE_MB)?;
        let settings = pg.sql(
            "postgres",
            "SELECT 'PostgreSQL ' || current_setting('server_version') || ', fsync ' || \
             current_setting('fsync') || ', synchronous_commit ' || \
             current_setting('synchronous_commit') || ', shared_buffers ' || \
             current_setting('shared_buffers') || ', max_connections ' || \
             current_setting('max_connections')",
        )?;
        Ok(AnchorCluster {
            cluster,
            pg,
            description: format!("{settings}, max_wal_size {max_wal_size}"),
        })
    }

    /// Creates database `name` with our migrations applied; returns its URL.
    pub fn create_migrated(&self, name: &str) -> anyhow::Result<String> {
        self.pg
            .sql("postgres", &format!("CREATE DATABASE {name}"))?;
        let url = self.cluster.url(name);
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(cons_store::migrate::run_pending(&url))
            .context("cannot migrate the benchmark database")?;
        Ok(url)
    }

    /// The cluster's temporary directory, for services' working directories and logs: no
    /// `.env` there, and removed with the cluster.
    pub fn work_dir(&self) -> anyhow::Result<PathBuf> {
        Ok(self
            .cluster
            .log_path()
            .parent()
            .context("the cluster's log has no directory")?
            .to_path_buf())
    }
}

/// Client tools bound to one server.
#[derive(Debug, Clone)]
pub struct Pg {
    port: u16,
    psql: PathBuf,
    pgbench: PathBuf,
}

impl Pg {
    pub fn new(port: u16) -> anyhow::Result<Pg> {
        Ok(Pg {
            port,
            psql: find_tool("psql")?,
            pgbench: find_tool("pgbench")?,
        })
    }

    pub fn pgbench_path(&self) -> &Path {
        &self.pgbench
    }

    /// A client command with the connection options, and none of the caller's `PG*`
    /// variables that could change what is measured (`PGOPTIONS` could turn off
    /// synchronous_commit, for one).
    fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        for (name, _) in std::env::vars_os() {
            if name.to_str().is_some_and(|n| n.starts_with("PG")) {
                command.env_remove(name);
            }
        }
        command
            .args(["-h", "127.0.0.1", "-U", "postgres", "-p"])
            .arg(self.port.to_string());
        command
    }

    /// Runs SQL (one or more statements) in `database`; returns the unaligned,
    /// tuples-only output.
    pub fn sql(&self, database: &str, sql: &str) -> anyhow::Result<String> {
        let output = self
            .command(&self.psql)
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                database,
                "-c",
                sql,
            ])
            .output()
            .with_context(|| format!("cannot run {}", self.psql.display()))?;
        let output = succeeded(output, &format!("psql -c {sql:?}"))?;
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// Runs an SQL file in `database`.
    pub fn sql_file(&self, database: &str, file: &Path) -> anyhow::Result<()> {
        let output = self
            .command(&self.psql)
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", database, "-f"])
            .arg(file)
            .output()
            .with_context(|| format!("cannot run {}", self.psql.display()))?;
        succeeded(output, &format!("psql -f {}", file.display()))?;
        Ok(())
    }

    /// `pgbench -n -M prepared -c <clients> -j <threads> (-T <seconds> | -t <transactions>)
    /// [-D name=value…] -f <script>` over TCP.
    pub fn pgbench(
        &self,
        database: &str,
        clients: usize,
        threads: usize,
        length: Length,
        defines: &[(&str, &str)],
        script: &Path,
    ) -> anyhow::Result<PgbenchRun> {
        let mut command = self.command(&self.pgbench);
        command
            .args(["-n", "-M", "prepared", "-c"])
            .arg(clients.to_string())
            .arg("-j")
            .arg(threads.to_string());
        match length {
            Length::Seconds(seconds) => command.arg("-T").arg(seconds.to_string()),
            Length::TransactionsPerClient(count) => command.arg("-t").arg(count.to_string()),
        };
        for (name, value) in defines {
            command.arg("-D").arg(format!("{name}={value}"));
        }
        let output = command
            .arg("-f")
            .arg(script)
            .arg(database)
            .output()
            .with_context(|| format!("cannot run {}", self.pgbench.display()))?;
        let output = succeeded(output, "pgbench")?;
        let text = String::from_utf8_lossy(&output.stdout);
        let tps = parse_tps(&text)
            .with_context(|| format!("no `tps = ` line in pgbench's output:\n{text}"))?;
        let transactions = parse_transactions(&text).with_context(|| {
            format!("no `number of transactions actually processed` in pgbench's output:\n{text}")
        })?;
        Ok(PgbenchRun { tps, transactions })
    }

    /// Makes sure `max_wal_size` is at least `at_least_mb`, so that no WAL-triggered
    /// checkpoint lands inside a short run; returns the value in effect.
    ///
    /// A value given on the server's command line wins over `ALTER SYSTEM`, so the setting
    /// is read back rather than assumed.
    pub fn ensure_max_wal_size(&self, at_least_mb: u64) -> anyhow::Result<String> {
        let current_mb = || -> anyhow::Result<u64> {
            let mb = self.sql(
                "postgres",
                "SELECT setting FROM pg_settings WHERE name = 'max_wal_size'",
            )?;
            mb.parse::<u64>()
                .with_context(|| format!("unexpected max_wal_size setting {mb:?}"))
        };
        if current_mb()? < at_least_mb {
            self.sql(
                "postgres",
                &format!("ALTER SYSTEM SET max_wal_size = '{at_least_mb}MB'"),
            )?;
            self.sql("postgres", "SELECT pg_reload_conf()")?;
            // The reload is asynchronous: give the postmaster a moment to signal backends,
            // then read it from a new session.
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        self.sql("postgres", "SHOW max_wal_size")
    }
}

fn succeeded(output: Output, what: &str) -> anyhow::Result<Output> {
    if output.status.success() {
        return Ok(output);
    }
    bail!(
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// How long a pgbench run lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    Seconds(u64),
    /// `-t`: a fixed amount of work, e.g. so that a drain never empties its backlog.
    TransactionsPerClient(u64),
}

/// What one pgbench run reported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PgbenchRun {
    /// Transactions per second, without the initial connection time.
    pub tps: f64,
    /// Transactions completed.
    pub transactions: u64,
}

/// `number of transactions actually processed: 48512` (`48512/50000` with `-t`).
fn parse_transactions(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("number of transactions actually processed: "))
        .and_then(|rest| rest.split('/').next())
        .and_then(|n| n.trim().parse().ok())
}

/// `tps = 9708.123456 (without initial connection time)`.
fn parse_tps(text: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|tps| tps.parse().ok())
}

/// Beside the server binaries `cons_testdb` starts (`PG_BIN_DIR`, `initdb` on `PATH`, the
/// highest `/usr/lib/postgresql/*/bin`), else on `PATH`.
pub fn find_tool(name: &str) -> anyhow::Result<PathBuf> {
    let candidates = cons_testdb::server_bindir().ok().map(|dir| dir.join(name));
    if let Some(tool) = candidates.filter(|tool| tool.is_file()) {
        return Ok(tool);
    }
    on_path(name).with_context(|| {
        format!(
            "`{name}` not found next to initdb, under {DEBIAN_LIB_DIR}/*/bin or on PATH; install \
             the PostgreSQL client tools or set PG_BIN_DIR"
        )
    })
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tps_from_pgbench_output() {
        let text = "number of transactions actually processed: 48512\nlatency average = 1.6 ms\ninitial connection time = 12.3 ms\ntps = 9708.123456 (without initial connection time)\n";
        assert_eq!(parse_tps(text), Some(9708.123456));
        assert_eq!(parse_tps("nothing"), None);
        assert_eq!(parse_transactions(text), Some(48512));
    }
}
