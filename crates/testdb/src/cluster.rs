//! A throwaway PostgreSQL cluster: `initdb` plus a `postgres` child process on a private port,
//! socket directory and (by default) temporary data directory.

use std::fs::{DirBuilder, File, OpenOptions};
use std::hash::{BuildHasher as _, Hasher as _, RandomState};
use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::{bindir, spawner, sys};

/// Prefix of the per-cluster temporary directories: `cons-pg-<our pid>-<random>`. The pid lets
/// a later run tell leftovers of dead processes from directories still in use.
const WORK_DIR_PREFIX: &str = "cons-pg-";
/// How long `start`/`restart` wait for the server to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a fast shutdown may take before we fall back to SIGKILL.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(15);
/// How long `kill` waits for the killed postmaster's backends to exit.
const ORPHAN_TIMEOUT: Duration = Duration::from_secs(10);
/// How often we look at the server while waiting for it.
const POLL_INTERVAL: Duration = Duration::from_millis(5);
/// How many lines of the server log go into error messages.
const LOG_TAIL_LINES: usize = 40;
/// How many times `start` tries a fresh port when another process grabbed the one it picked.
const PORT_ATTEMPTS: usize = 3;

/// How to run a [`Cluster`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterOptions {
    /// `false` turns off `fsync`, `synchronous_commit` and `full_page_writes`: much faster, and
    /// a crash of the *machine* corrupts the data, which is fine for tests. A crash of only the
    /// server (see [`Cluster::kill`]) still recovers to a consistent state, but without
    /// `synchronous_commit` the last few hundred milliseconds of acknowledged commits may be
    /// gone: tests that check "committed means kept" across a kill need `durable: true`.
    pub durable: bool,
    /// The server's `max_connections`.
    pub max_connections: u32,
    /// TCP port on 127.0.0.1; `None` picks a free one.
    pub port: Option<u16>,
    /// Data directory to use (initialised if it has no `PG_VERSION`) and keep; `None` uses a
    /// fresh one inside the cluster's temporary directory, removed on drop.
    pub data_dir: Option<PathBuf>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            durable: false,
            max_connections: 200,
            port: None,
            data_dir: None,
        }
    }
}

/// Why a [`Cluster`] could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// No `initdb`/`postgres` found.
    #[error("PostgreSQL server binaries not found: {0}")]
    BinariesNotFound(String),
    /// Running as root with no `postgres` OS user to drop to.
    #[error(
        "running as root, which PostgreSQL refuses, and there is no `postgres` OS user to run the \
         server as: install the server package (`apt-get install postgresql`, which creates the \
         user) or create the user (`useradd --system --user-group postgres`), or run as non-root"
    )]
    NoPostgresUser,
    /// A file-system or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What we were doing.
        what: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// `initdb` exited unsuccessfully.
    #[error("initdb failed ({status}):\n{output}")]
    Initdb {
        /// initdb's exit status.
        status: ExitStatus,
        /// initdb's stdout and stderr.
        output: String,
    },
    /// The postmaster exited before it accepted connections.
    #[error("postgres exited during start-up ({status}); end of the server log:\n{log_tail}")]
    ServerExited {
        /// The postmaster's exit status.
        status: ExitStatus,
        /// The last lines the server logged.
        log_tail: String,
    },
    /// The postmaster did not accept connections in time.
    #[error(
        "postgres did not accept connections on port {port} within {timeout:?}; end of the \
         server log:\n{log_tail}"
    )]
    NotReady {
        /// The port we waited on.
        port: u16,
        /// How long we waited.
        timeout: Duration,
        /// The last lines the server logged.
        log_tail: String,
    },
}

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> ClusterError {
    let what = what.into();
    move |source| ClusterError::Io { what, source }
}

/// The OS user the server runs as when we are root.
#[derive(Debug, Clone, Copy)]
struct OsUser {
    uid: u32,
    gid: u32,
}

/// A running PostgreSQL server (our child process) with superuser `postgres` and trust
/// authentication on 127.0.0.1.
///
/// Dropping it shuts the server down (fast shutdown) and removes its temporary directory. If the
/// whole process dies instead, the kernel sends the server SIGQUIT (see [`Cluster::start`]) and
/// the next `start` removes the directory.
#[derive(Debug)]
pub struct Cluster {
    /// `None` after [`Cluster::kill`] (until [`Cluster::restart`]) and during drop.
    postmaster: Option<Child>,
    /// Pid of the most recent postmaster.
    pid: u32,
    /// Set by `kill`, cleared by a successful `restart`: the data directory needs crash
    /// recovery, and shared memory of the dead server is still registered.
    crashed: bool,
    port: u16,
    durable: bool,
    max_connections: u32,
    bindir: PathBuf,
    /// `Some` when we are root and run the server as the `postgres` user.
    run_as: Option<OsUser>,
    /// `cons-pg-<pid>-<random>` under the system temp dir: sockets, log, and the data directory
    /// unless the caller gave one. Removed on drop.
    work_dir: PathBuf,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    log_path: PathBuf,
}

impl Cluster {
    /// Initialises (unless `opts.data_dir` already holds a cluster) and starts a server, and
    /// waits until it accepts connections. Blocking; about a second, mostly `initdb`.
    ///
    /// The postmaster gets SIGQUIT (immediate shutdown) when this process dies, so a crashed
    /// or interrupted test run leaves no server behind. SIGQUIT rather than SIGKILL because a
    /// killed postmaster leaks its System V and `/dev/shm` shared memory (about 1 MB of RAM per
    /// cluster), while an immediate shutdown releases it and takes only milliseconds.
    pub fn start(opts: ClusterOptions) -> Result<Self, ClusterError> {
        let started = Instant::now();
        let bindir = bindir::find()?;
        let run_as = if sys::is_root() {
            let user = sys::lookup_user("postgres")
                .map_err(io_error("cannot look up the `postgres` OS user"))?
                .ok_or(ClusterError::NoPostgresUser)?;
            Some(OsUser {
                uid: user.0,
                gid: user.1,
            })
        } else {
            None
        };

        remove_leftovers();
        let work_dir = create_work_dir()?;
        let data_dir = opts
            .data_dir
            .clone()
            .unwrap_or_else(|| work_dir.join("data"));
        let socket_dir = work_dir.join("sockets");
        let log_path = work_dir.join("postgres.log");

        // From here on, dropping `cluster` on an error cleans up the work directory.
        let mut cluster = Self {
            postmaster: None,
            pid: 0,
            crashed: false,
            port: 0,
            durable: opts.durable,
            max_connections: opts.max_connections,
            bindir,
            run_as,
            work_dir,
            data_dir,
            socket_dir,
            log_path,
        };
        cluster.make_private_dir(&cluster.socket_dir, 0o755)?;
        if !cluster.data_dir.join("PG_VERSION").is_file() {
            if opts.data_dir.is_some() {
                std::fs::create_dir_all(&cluster.data_dir).map_err(io_error(format!(
                    "cannot create data directory {}",
                    cluster.data_dir.display()
                )))?;
            }
            cluster.make_private_dir(&cluster.data_dir, 0o700)?;
            cluster.initdb()?;
            tracing::debug!(elapsed = ?started.elapsed(), data_dir = %cluster.data_dir.display(), "initialised PostgreSQL data directory");
        }

        let mut attempt = 1;
        loop {
            cluster.port = match opts.port {
                Some(port) => port,
                None => free_port()?,
            };
            match cluster.spawn_and_wait() {
                Ok(()) => break,
                Err(ClusterError::ServerExited { log_tail, .. })
                    if opts.port.is_none()
                        && attempt < PORT_ATTEMPTS
                        && log_tail.contains("could not bind") =>
                {
                    // Another process took the port between our probe and the server's bind.
                    tracing::debug!(port = cluster.port, "picked port was taken; trying another");
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
        tracing::info!(
            port = cluster.port,
            pid = cluster.pid,
            elapsed = ?started.elapsed(),
            "started throwaway PostgreSQL"
        );
        Ok(cluster)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The postmaster's pid (of the most recent one, after a `kill`).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The server log (stdout and stderr of the postmaster). It lives in the temporary
    /// directory, so it is removed on drop.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Connection URL for `database` as superuser `postgres` (trust authentication, no
    /// password).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Kills the postmaster with SIGKILL, as a crash would, and waits until it and its backends
    /// are gone, so that [`Cluster::restart`] can start a new one on the same data directory.
    /// Does nothing if the server is not running.
    pub fn kill(&mut self) {
        let Some(mut child) = self.postmaster.take() else {
            return;
        };
        // Read before the kill: the pid file names the shared memory whose attach count tells
        // us when the orphaned backends are gone.
        let shmid = self.shared_memory_id();
        if let Err(e) = child.kill() {
            tracing::warn!(error = %e, pid = self.pid, "cannot SIGKILL postgres");
        }
        if let Err(e) = child.wait() {
            tracing::warn!(error = %e, pid = self.pid, "cannot wait for postgres");
        }
        self.crashed = true;
        // The backends notice the postmaster's death on their own and exit. A new postmaster
        // refuses to start while any of them is still attached to the old shared memory, so
        // wait for that here rather than make `restart` flaky.
        if let Some(shmid) = shmid {
            let deadline = Instant::now() + ORPHAN_TIMEOUT;
            while let Ok(Some(true)) = sys::shm_in_use(shmid) {
                if Instant::now() > deadline {
                    tracing::warn!(
                        pid = self.pid,
                        "backends of the killed postgres are still running"
                    );
                    break;
                }
                std::thread::sleep(POLL_INTERVAL);
            }
        }
    }

    /// Starts the server again on the same port and data directory (after [`Cluster::kill`]:
    /// crash recovery) and waits until it accepts connections. A running server is shut down
    /// (fast) first.
    pub fn restart(&mut self) -> Result<(), ClusterError> {
        self.shutdown();
        self.spawn_and_wait()?;
        self.crashed = false;
        Ok(())
    }

    /// Fast shutdown (SIGINT), waiting for the server to exit; the same as dropping.
    pub fn stop(self) {
        drop(self);
    }

    /// Creates `dir` (if needed) with `mode`, owned by the server's OS user.
    fn make_private_dir(&self, dir: &Path, mode: u32) -> Result<(), ClusterError> {
        match DirBuilder::new().mode(mode).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_error(format!("cannot create {}", dir.display()))(e)),
        }
        // Set the mode explicitly: DirBuilder's is filtered through the umask.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
            .map_err(io_error(format!("cannot chmod {}", dir.display())))?;
        if let Some(user) = self.run_as {
            std::os::unix::fs::chown(dir, Some(user.uid), Some(user.gid)).map_err(io_error(
                format!("cannot chown {} to the postgres user", dir.display()),
            ))?;
        }
        Ok(())
    }

    /// A command for one of the server binaries, run as the server's OS user.
    fn server_command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bindir.join(program));
        // A directory the server's OS user can enter (our own cwd may be under /root).
        cmd.current_dir(&self.work_dir).stdin(Stdio::null());
        if let Some(user) = self.run_as {
            // std also drops the supplementary groups when it changes the uid as root.
            cmd.uid(user.uid).gid(user.gid);
        }
        cmd
    }

    fn initdb(&self) -> Result<(), ClusterError> {
        let output = self
            .server_command("initdb")
            .arg("-D")
            .arg(&self.data_dir)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                // No fsync of the new files: a throwaway cluster does not outlive the machine,
                // and syncing costs more than the rest of initdb.
                "-N",
            ])
            .output()
            .map_err(io_error(format!(
                "cannot run {}",
                self.bindir.join("initdb").display()
            )))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(ClusterError::Initdb {
                status: output.status,
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ),
            })
        }
    }

    /// Spawns the postmaster on `self.port` and waits until it accepts connections.
    fn spawn_and_wait(&mut self) -> Result<(), ClusterError> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(io_error(format!("cannot open {}", self.log_path.display())))?;
        let log_start = log
            .metadata()
            .map_err(io_error(format!("cannot stat {}", self.log_path.display())))?
            .len();
        let log_for_stderr = log
            .try_clone()
            .map_err(io_error("cannot duplicate the log file handle"))?;

        let mut cmd = self.server_command("postgres");
        cmd.arg("-D")
            .arg(&self.data_dir)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(&self.socket_dir);
        for setting in self.settings() {
            cmd.arg("-c").arg(setting);
        }
        cmd.stdout(log).stderr(log_for_stderr);
        sys::set_parent_death_signal(&mut cmd, sys::SIGQUIT)
            .map_err(io_error("cannot set up the postgres command"))?;
        let child = spawner::spawn(cmd).map_err(io_error(format!(
            "cannot run {}",
            self.bindir.join("postgres").display()
        )))?;
        self.pid = child.id();
        self.postmaster = Some(child);
        self.wait_ready(log_start)
    }

    /// Server settings, passed with `-c` on every start so that they also apply to a
    /// caller-provided data directory initialised earlier.
    fn settings(&self) -> Vec<String> {
        let mut settings = vec![
            format!("max_connections={}", self.max_connections),
            "listen_addresses=127.0.0.1".to_owned(),
            "shared_buffers=128MB".to_owned(),
            "max_wal_size=2GB".to_owned(),
        ];
        if !self.durable {
            settings.extend(
                [
                    "fsync=off",
                    "synchronous_commit=off",
                    "full_page_writes=off",
                ]
                .map(str::to_owned),
            );
        }
        settings
    }

    /// Waits until the postmaster reports "ready" in its pid file and accepts a TCP connection.
    fn wait_ready(&mut self, log_start: u64) -> Result<(), ClusterError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            let Some(child) = self.postmaster.as_mut() else {
                return Err(io_error("postgres is not running")(
                    io::ErrorKind::NotFound.into(),
                ));
            };
            match child.try_wait() {
                Ok(Some(status)) => {
                    self.postmaster = None;
                    return Err(ClusterError::ServerExited {
                        status,
                        log_tail: self.log_tail(log_start),
                    });
                }
                Ok(None) => {}
                Err(e) => return Err(io_error("cannot check on postgres")(e)),
            }
            // The pid check matters after a kill: the dead server's pid file says "ready" too.
            if self.pid_file_status().as_deref() == Some("ready")
                && TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ClusterError::NotReady {
                    port: self.port,
                    timeout: READY_TIMEOUT,
                    log_tail: self.log_tail(log_start),
                });
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Lines of `postmaster.pid` if it belongs to the current postmaster.
    fn pid_file_lines(&self) -> Option<Vec<String>> {
        let text = std::fs::read_to_string(self.data_dir.join("postmaster.pid")).ok()?;
        let lines: Vec<String> = text.lines().map(|l| l.trim().to_owned()).collect();
        (lines.first()?.parse::<u32>().ok()? == self.pid).then_some(lines)
    }

    /// Line 8 of `postmaster.pid`: "starting", "ready", "stopping"...
    fn pid_file_status(&self) -> Option<String> {
        self.pid_file_lines()?.into_iter().nth(7)
    }

    /// Line 7 of `postmaster.pid`: "<shared memory key> <shared memory id>".
    fn shared_memory_id(&self) -> Option<i32> {
        let lines = self.pid_file_lines()?;
        lines.get(6)?.split_whitespace().nth(1)?.parse().ok()
    }

    /// The last lines of the server log written since byte `from`.
    fn log_tail(&self, from: u64) -> String {
        let mut text = String::new();
        let read = File::open(&self.log_path).and_then(|mut f| {
            f.seek(SeekFrom::Start(from))?;
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes)?;
            text = String::from_utf8_lossy(&bytes).into_owned();
            Ok(())
        });
        if let Err(e) = read {
            return format!("(cannot read {}: {e})", self.log_path.display());
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    /// Fast shutdown of a running server: SIGINT, then SIGKILL if it takes too long.
    fn shutdown(&mut self) {
        let Some(mut child) = self.postmaster.take() else {
            return;
        };
        let pid = child.id();
        if let Err(e) = sys::send_signal(pid, sys::SIGINT) {
            tracing::warn!(error = %e, pid, "cannot send SIGINT to postgres");
        }
        let deadline = Instant::now() + SHUTDOWN_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL_INTERVAL),
                Ok(None) => {
                    tracing::warn!(pid, "postgres did not shut down in time; killing it");
                    let _ = child.kill();
                    let _ = child.wait();
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, pid, "cannot wait for postgres");
                    return;
                }
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.crashed && self.postmaster.is_none() {
            // Killed and not restarted: its shared memory (System V segment and /dev/shm
            // files) is still allocated, and only a postmaster on the same data directory
            // knows how to find and free all of it. Start one and let it shut down cleanly.
            if let Err(e) = self.spawn_and_wait() {
                tracing::warn!(error = %e, "cannot restart killed postgres to free its shared memory");
            }
        }
        self.shutdown();
        if let Err(e) = std::fs::remove_dir_all(&self.work_dir) {
            tracing::warn!(error = %e, dir = %self.work_dir.display(), "cannot remove PostgreSQL temp dir");
        }
    }
}

/// A port on 127.0.0.1 that nothing listens on right now.
fn free_port() -> Result<u16, ClusterError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(io_error("cannot bind 127.0.0.1:0 to pick a free port"))?;
    let port = listener
        .local_addr()
        .map_err(io_error("cannot read the picked port"))?
        .port();
    Ok(port)
}

/// Creates `<tmp>/cons-pg-<pid>-<random>` with mode 0755, so that the `postgres` user can
/// traverse it when we are root.
fn create_work_dir() -> Result<PathBuf, ClusterError> {
    let tmp = std::env::temp_dir();
    let pid = std::process::id();
    loop {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u32(pid);
        let random = hasher.finish() & 0xffff_ffff;
        let dir = tmp.join(format!("{WORK_DIR_PREFIX}{pid}-{random:08x}"));
        match DirBuilder::new().mode(0o755).create(&dir) {
            Ok(()) => {
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
                    .map_err(io_error(format!("cannot chmod {}", dir.display())))?;
                return Ok(dir);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_error(format!("cannot create {}", dir.display()))(e)),
        }
    }
}

/// Removes `cons-pg-<pid>-*` directories left in the temp dir by processes that died without
/// cleaning up (a killed test run, or the per-process test cluster, which is never dropped).
fn remove_leftovers() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    let me = std::process::id();
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(owner) = name
            .to_str()
            .and_then(|n| n.strip_prefix(WORK_DIR_PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if owner == me || sys::pid_alive(owner) {
            continue;
        }
        // The server of a dead test process gets SIGQUIT and exits within milliseconds; if one
        // still runs on this directory, leave it for a later sweep.
        let server_pid = std::fs::read_to_string(entry.path().join("data/postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next()?.trim().parse::<u32>().ok());
        if server_pid.is_some_and(sys::pid_alive) {
            continue;
        }
        match std::fs::remove_dir_all(entry.path()) {
            Ok(()) => {
                tracing::debug!(dir = %entry.path().display(), "removed leftover PostgreSQL temp dir")
            }
            // Another process may be sweeping the same directory right now.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(error = %e, dir = %entry.path().display(), "cannot remove leftover PostgreSQL temp dir")
            }
        }
    }
}
