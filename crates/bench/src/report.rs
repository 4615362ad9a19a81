//! What every benchmark prints besides its own table: progress lines, how it was started,
//! where the shared anchors are, and CPU figures (per unit of work, and how much of the
//! machine went to processes outside the measurement).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::machine::{CpuUsage, Machine};

/// Prints a progress line to stderr (stdout carries only the report).
pub fn progress(message: &str) {
    eprintln!("[{}] {message}", chrono::Local::now().format("%H:%M:%S"));
}

/// How this run was started, relative to the workspace when run from there (as the `just`
/// recipes do).
pub fn command_line(default_name: &str) -> String {
    let mut words = std::env::args();
    let program = words.next().unwrap_or_else(|| default_name.to_owned());
    let program = std::env::current_dir()
        .ok()
        .and_then(|cwd| {
            Path::new(&program)
                .strip_prefix(&cwd)
                .ok()
                .map(|p| format!("./{}", p.display()))
        })
        .unwrap_or(program);
    std::iter::once(program)
        .chain(words)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `explicit` (`--shared-dir`/`SHARED_DIR`), else `shared/` beside the workspace, where the
/// anchors live; it must hold `files`.
pub fn shared_dir(explicit: Option<&Path>, files: &[&str]) -> anyhow::Result<PathBuf> {
    let dir = explicit.map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
        Path::to_path_buf,
    );
    let dir = dir.canonicalize().with_context(|| {
        format!(
            "shared directory {} not found (set SHARED_DIR)",
            dir.display()
        )
    })?;
    for file in files {
        anyhow::ensure!(
            dir.join(file).is_file(),
            "{} has no {file} (set SHARED_DIR)",
            dir.display()
        );
    }
    Ok(dir)
}

/// CPU time per unit of work, in µs.
pub fn per(cpu: Duration, count: u64) -> String {
    if count == 0 {
        return "n/a".to_owned();
    }
    format!("{:.0}", cpu.as_secs_f64() * 1e6 / count as f64)
}

/// How busy the machine was, and how much of that went outside the processes measured:
/// kernel threads (a few percent: journal commits of fsync) and other processes (a
/// build, another benchmark). A run with much of the latter measured its neighbours too.
pub fn busy(usage: &CpuUsage) -> String {
    format!(
        "machine {:.0}% busy, {:.0}% outside the processes measured",
        usage.machine_busy_share() * 100.0,
        outside_share(usage) * 100.0
    )
}

/// The share of the machine's capacity busy outside the accounts measured, 0..=1.
pub fn outside_share(usage: &CpuUsage) -> f64 {
    let attributed: Duration = usage.accounts.iter().sum();
    let total = usage.machine_total.as_secs_f64();
    if total > 0.0 {
        usage.machine_busy.saturating_sub(attributed).as_secs_f64() / total
    } else {
        0.0
    }
}

/// `met` or `missed`.
pub fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "missed" }
}

/// When, where and how a benchmark ran: the head of its report.
#[derive(Debug)]
pub struct RunInfo {
    pub command: String,
    pub started: chrono::DateTime<chrono::Utc>,
    clock: Instant,
    pub elapsed: Duration,
    pub machine: Machine,
    pub load_at_start: f64,
    pub load_at_end: f64,
    /// Server version and settings.
    pub postgres: String,
}

impl RunInfo {
    /// Notes the start: time, machine, load.
    pub fn begin(name: &str) -> anyhow::Result<RunInfo> {
        Ok(RunInfo {
            command: command_line(name),
            started: chrono::Utc::now(),
            clock: Instant::now(),
            elapsed: Duration::ZERO,
            machine: Machine::describe(),
            load_at_start: crate::machine::load_average()?,
            load_at_end: 0.0,
            postgres: String::new(),
        })
    }

    /// Notes the end, and the server the run used.
    pub fn end(&mut self, postgres: &str) -> anyhow::Result<()> {
        self.elapsed = self.clock.elapsed();
        self.load_at_end = crate::machine::load_average()?;
        postgres.clone_into(&mut self.postgres);
        Ok(())
    }

    /// The report's first lines.
    pub fn header(&self) -> String {
        let m = &self.machine;
        format!(
            "Run {} ({:.0} s in all). Machine: {} CPUs ({}), {:.0} GiB, Linux {}; {}.\n\
             Command: `{}`\n",
            self.started.format("%Y-%m-%d %H:%M UTC"),
            self.elapsed.as_secs_f64(),
            m.cpus,
            m.cpu_model,
            m.memory_gib,
            m.kernel,
            self.postgres,
            self.command,
        )
    }

    /// The load averages, for the report's machine row.
    pub fn load(&self) -> String {
        format!(
            "{} CPUs, load average {:.2} at start, {:.2} at end",
            self.machine.cpus, self.load_at_start, self.load_at_end
        )
    }
}
