//! A release binary of ours (`cons-api`, `cons-relay`) run as the system under test:
//! a child process with a clean environment, its output in a log file, waited for until
//! it answers on HTTP, and stopped with SIGTERM when the benchmark ends or fails.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::http::{Connection, request_bytes};

/// How often readiness is polled.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How long SIGTERM may take before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How many log lines go into error messages.
const LOG_TAIL_LINES: usize = 30;

/// The binary named `name` next to the running benchmark executable: `cargo build
/// --release -p <its package>` puts both into `target/release/`.
pub fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("cannot find the running executable")?;
    let binary = me.with_file_name(name);
    if !binary.is_file() {
        bail!(
            "{} not found: build it next to this benchmark first (the `just bench-…` recipes \
             do: `cargo build --release -p <its package> -p cons_bench`)",
            binary.display()
        );
    }
    Ok(binary)
}

/// A loopback address nothing listens on right now (the service binds it a moment later).
pub fn free_loopback_addr() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .context("cannot bind 127.0.0.1:0 to pick a free port")?;
    Ok(listener.local_addr()?)
}

/// 32 random hex digits from the kernel, for throwaway secrets.
pub fn random_hex() -> anyhow::Result<String> {
    use std::io::Read as _;
    let mut bytes = [0u8; 16];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A running service; dropping it stops it (SIGTERM, then SIGKILL after a timeout).
#[derive(Debug)]
pub struct Service {
    name: String,
    child: Option<Child>,
    log_path: PathBuf,
}

impl Service {
    /// Starts `binary` with only the variables in `env` (no inherited environment, so
    /// nothing from the caller's shell changes what is measured), in `work_dir` (where it
    /// finds no `.env` file), with stdout and stderr in `work_dir/<name>.log`.
    pub fn spawn(
        binary: &Path,
        env: &[(&str, String)],
        work_dir: &Path,
    ) -> anyhow::Result<Service> {
        let name = binary.file_name().map_or_else(
            || "service".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        );
        let log_path = work_dir.join(format!("{name}.log"));
        let log = File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let mut command = Command::new(binary);
        command
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(work_dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = command
            .spawn()
            .with_context(|| format!("cannot run {}", binary.display()))?;
        Ok(Service {
            name,
            child: Some(child),
            log_path,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Fails (with the end of the service's log) if the service has exited.
    pub fn check_running(&mut self) -> anyhow::Result<u32> {
        let Some(child) = self.child.as_mut() else {
            bail!("{} was already stopped", self.name);
        };
        if let Some(status) = child.try_wait()? {
            self.child = None;
            bail!(
                "{} exited ({status}); end of its log:\n{}",
                self.name,
                self.log_tail()
            );
        }
        Ok(child.id())
    }

    /// Waits until `GET <path>` on `addr` answers 200.
    pub fn wait_http_ok(
        &mut self,
        addr: SocketAddr,
        path: &str,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        let request = request_bytes("GET", path, addr, &[], b"");
        let deadline = Instant::now() + timeout;
        loop {
            self.check_running()?;
            let answer = runtime.block_on(async {
                let mut connection = Connection::connect(addr).await?;
                connection.send(&request).await
            });
            let last = match answer {
                Ok(200) => return Ok(()),
                Ok(status) => format!("status {status}"),
                Err(error) => error.to_string(),
            };
            if Instant::now() > deadline {
                bail!(
                    "{} did not answer 200 on {path} within {timeout:?} (last: {last}); end of its \
                     log:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Stops the service with SIGTERM (its graceful shutdown) and waits; SIGKILL after
    /// [`STOP_TIMEOUT`]. Returns how it exited.
    pub fn stop(&mut self) -> anyhow::Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            bail!("{} was already stopped", self.name);
        };
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        // `kill` rather than libc: the workspace has no unsafe code.
        let signalled = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        if !signalled.is_ok_and(|s| s.success()) {
            child.kill().context("cannot kill the service")?;
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                child.kill().context("cannot kill the service")?;
                return Ok(child.wait()?);
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// The last lines of the service's log.
    pub fn log_tail(&self) -> String {
        match std::fs::read_to_string(&self.log_path) {
            Ok(text) => {
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
            }
            Err(error) => format!("(cannot read {}: {error})", self.log_path.display()),
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if self.child.is_some()
            && let Err(error) = self.stop()
        {
            eprintln!("cannot stop {}: {error:#}", self.name);
        }
    }
}
