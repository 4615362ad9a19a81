//! What the machine is and what it was doing: CPU count and model, load average, and CPU
//! time and peak memory of processes, read from `/proc` (Linux only, like the benchmarks).

use std::io;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;

/// The machine, for the report header.
#[derive(Debug, Clone)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub kernel: String,
}

impl Machine {
    pub fn describe() -> Machine {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = field(&cpuinfo, "model name")
            .unwrap_or("unknown CPU")
            .to_owned();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_gib = field(&meminfo, "MemTotal")
            .and_then(|v| v.trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kib| kib / (1024.0 * 1024.0));
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|k| k.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
        Machine {
            cpus,
            cpu_model,
            memory_gib,
            kernel,
        }
    }
}

/// `name: value` lines of `/proc/cpuinfo` and `/proc/meminfo`.
fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == name).then_some(value.trim())
    })
}

/// The 1-minute load average.
pub fn load_average() -> anyhow::Result<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").context("cannot read /proc/loadavg")?;
    text.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .context("malformed /proc/loadavg")
}

/// Converts `/proc/<pid>/stat` clock ticks to time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    ticks_per_second: u64,
}

impl Clock {
    /// Asks `getconf CLK_TCK` (without `unsafe` there is no `sysconf`); Linux has used 100
    /// for user-visible ticks on every common architecture for decades, so that is the
    /// fallback.
    pub fn new() -> Clock {
        let ticks_per_second = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .filter(|&ticks| ticks > 0)
            .unwrap_or(100);
        Clock { ticks_per_second }
    }

    pub fn duration(self, ticks: u64) -> Duration {
        Duration::from_secs_f64(ticks as f64 / self.ticks_per_second as f64)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// `/proc/<pid>/stat` fields after the command name, which may contain spaces and
/// parentheses: field 3 (state) is the first element.
fn stat_fields(pid: u32) -> io::Result<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_name = text
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed stat"))?;
    Ok(after_name.split_whitespace().map(str::to_owned).collect())
}

/// Parses the `/proc/<pid>/stat` field `index` (counted after the state, field 3).
fn stat_number(fields: &[String], index: usize) -> io::Result<u64> {
    fields
        .get(index)
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed stat"))
}

/// User plus system CPU time of a process (all its threads), in clock ticks.
pub fn cpu_ticks(pid: u32) -> io::Result<u64> {
    let fields = stat_fields(pid)?;
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the state.
    Ok(stat_number(&fields, 11)? + stat_number(&fields, 12)?)
}

/// CPU ticks of the children a process has waited for (cutime + cstime): the time of
/// `pgbench` runs after they exit, for instance.
pub fn waited_children_ticks(pid: u32) -> io::Result<u64> {
    let fields = stat_fields(pid)?;
    // cutime and cstime are fields 16 and 17.
    Ok(stat_number(&fields, 13)? + stat_number(&fields, 14)?)
}

/// CPU ticks of `parent` and all its children, running or exited: a postmaster and its
/// backends. A backend that exits between two snapshots moves its time from the running
/// children into the parent's waited-for children, so differences stay right.
pub fn cpu_ticks_with_children(parent: u32) -> io::Result<u64> {
    let mut total = cpu_ticks(parent)? + waited_children_ticks(parent)?;
    for entry in std::fs::read_dir("/proc")?.filter_map(Result::ok) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fields) = stat_fields(pid) else {
            // Exited meanwhile.
            continue;
        };
        // ppid is field 4, the first after the state.
        if fields.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(parent) {
            total += stat_number(&fields, 11).unwrap_or(0) + stat_number(&fields, 12).unwrap_or(0);
        }
    }
    Ok(total)
}

/// Busy and total CPU ticks of the whole machine, summed over all CPUs (`/proc/stat`).
pub fn machine_ticks() -> io::Result<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat")?;
    let line = text
        .lines()
        .find(|line| line.starts_with("cpu "))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no cpu line in /proc/stat"))?;
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = values.iter().sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    Ok((total - idle, total))
}

/// Whose CPU time a [`CpuMeter`] adds up.
#[derive(Debug, Clone, Copy)]
pub enum Account {
    /// One process, all its threads.
    Process(u32),
    /// A process and all its children, running or exited (a postmaster and its backends).
    WithChildren(u32),
    /// The children a process waited for (`pgbench` runs of this process).
    WaitedChildren(u32),
}

impl Account {
    fn ticks(self) -> io::Result<u64> {
        match self {
            Account::Process(pid) => cpu_ticks(pid),
            Account::WithChildren(pid) => cpu_ticks_with_children(pid),
            Account::WaitedChildren(pid) => waited_children_ticks(pid),
        }
    }
}

/// CPU time of a few accounts and of the whole machine, between two snapshots.
#[derive(Debug, Clone)]
pub struct CpuMeter {
    clock: Clock,
    accounts: Vec<Account>,
}

/// Counters at one moment; see [`CpuMeter::since`].
#[derive(Debug, Clone)]
pub struct CpuSnapshot {
    accounts: Vec<u64>,
    machine_busy: u64,
    machine_total: u64,
}

/// CPU time spent between two snapshots.
#[derive(Debug, Clone)]
pub struct CpuUsage {
    /// Per account, in the order given to [`CpuMeter::new`].
    pub accounts: Vec<Duration>,
    /// Busy time of all CPUs together.
    pub machine_busy: Duration,
    /// Elapsed time times the number of CPUs.
    pub machine_total: Duration,
}

impl CpuUsage {
    /// Share of the machine's CPU capacity that was busy, 0..=1.
    pub fn machine_busy_share(&self) -> f64 {
        let total = self.machine_total.as_secs_f64();
        if total > 0.0 {
            self.machine_busy.as_secs_f64() / total
        } else {
            0.0
        }
    }
}

impl CpuMeter {
    pub fn new(accounts: Vec<Account>) -> CpuMeter {
        CpuMeter {
            clock: Clock::new(),
            accounts,
        }
    }

    pub fn snapshot(&self) -> io::Result<CpuSnapshot> {
        let (machine_busy, machine_total) = machine_ticks()?;
        Ok(CpuSnapshot {
            accounts: self
                .accounts
                .iter()
                .map(|account| account.ticks())
                .collect::<io::Result<_>>()?,
            machine_busy,
            machine_total,
        })
    }

    /// Usage from `before` to now. Ticks are 10 ms, so a run of a few seconds is exact to
    /// about a percent.
    pub fn since(&self, before: &CpuSnapshot) -> io::Result<CpuUsage> {
        let now = self.snapshot()?;
        let ticks = |after: u64, before: u64| self.clock.duration(after.saturating_sub(before));
        Ok(CpuUsage {
            accounts: now
                .accounts
                .iter()
                .zip(&before.accounts)
                .map(|(&after, &before)| ticks(after, before))
                .collect(),
            machine_busy: ticks(now.machine_busy, before.machine_busy),
            machine_total: ticks(now.machine_total, before.machine_total),
        })
    }
}

/// Peak resident set size (`VmHWM`) of a running process, in KiB.
pub fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status =
        std::fs::read_to_string(Path::new(&path)).with_context(|| format!("cannot read {path}"))?;
    field(&status, "VmHWM")
        .and_then(|v| v.trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no VmHWM in {path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_process() {
        let me = std::process::id();
        assert!(peak_rss_kib(me).unwrap() > 0);
        cpu_ticks(me).unwrap();
        cpu_ticks_with_children(me).unwrap();
        waited_children_ticks(me).unwrap();
        let (busy, total) = machine_ticks().unwrap();
        assert!(busy <= total);
        let meter = CpuMeter::new(vec![Account::Process(me), Account::WaitedChildren(me)]);
        let before = meter.snapshot().unwrap();
        assert_eq!(meter.since(&before).unwrap().accounts.len(), 2);
        assert!(load_average().unwrap() >= 0.0);
        assert!(Machine::describe().cpus >= 1);
    }
}
