//! `bench-intake`: ticket creation through the real `cons-api` release binary, against the
//! raw PostgreSQL limit (`pgbench` with the anchor's `ticket_create.sql`) measured on the same
//! throwaway durable cluster in the same run, plus latency at half the maximum rate and the
//! API's peak memory. Prints a markdown table; see `docs/BENCHMARKS.md`.
//!
//! `cargo build --release -p cons_api -p cons_bench && ./target/release/bench-intake`

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;
use cons_bench::http::{Connection, request_bytes};
use cons_bench::load::{self, Errors, Outcome, Target};
use cons_bench::machine::{self, Account, CpuMeter, CpuUsage};
use cons_bench::pg::{AnchorCluster, Length, Pg, PgbenchRun};
use cons_bench::report::{RunInfo, busy, per, progress, shared_dir};
use cons_bench::service::{self, Service};
use cons_bench::stats::{median, ms, thousands};
use cons_testdb::Cluster;

/// The "half rate" run is at this fraction of the measured maximum.
const HALF: f64 = 0.5;
/// How far an open loop may fall behind its schedule before it stops sending.
const MAX_OVERRUN: Duration = Duration::from_secs(5);
/// How long cons-api may take to answer its readiness check.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// ~60 characters of Cyrillic, like a real question from the site's form.
const COMMENT: &str = "Как закрыть месяц в 1С:Бухгалтерии, если не сходится сальдо?";
const FIRST_NAMES: [&str; 8] = [
    "Dilnoza", "Akmal", "Nodira", "Bekzod", "Malika", "Sardor", "Gulnora", "Jasur",
];
const LAST_NAMES: [&str; 6] = [
    "Karimova",
    "Rashidova",
    "Yusupova",
    "Tursunova",
    "Aliyeva",
    "Nazarova",
];

/// Ticket creation through cons-api against the raw pgbench limit, on one durable cluster.
#[derive(Debug, Parser)]
#[command(name = "bench-intake")]
struct Args {
    /// Concurrent keep-alive HTTP connections (and pgbench clients).
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Length of each measured HTTP run (maximum rate, then half rate).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Warm-up before the maximum-rate run; it goes on until every client exists.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Length of each pgbench run (default: --seconds).
    #[arg(long)]
    pgbench_seconds: Option<u64>,
    /// pgbench repetitions; the median is reported.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Distinct clients, used round-robin (all exist after the warm-up).
    #[arg(long, default_value_t = 2000)]
    population: usize,
    /// cons-api's DB_POOL_SIZE.
    #[arg(long, default_value_t = 16)]
    pool_size: usize,
    /// cons-api's API_WORKERS (default: cons-api's own, the number of CPUs).
    #[arg(long)]
    api_workers: Option<usize>,
    /// The shared reference directory holding bench/schema.sql and bench/pgbench/.
    #[arg(long, env = "SHARED_DIR")]
    shared_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench-intake: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// cons-api's `ticket_create_batch_size` histogram: how many create statements it ran and
/// how many tickets they carried.
#[derive(Debug, Clone, Copy, Default)]
struct BatchSizes {
    statements: f64,
    tickets: f64,
}

impl BatchSizes {
    fn scrape(addr: SocketAddr) -> anyhow::Result<BatchSizes> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        let text = runtime.block_on(async {
            let mut connection = Connection::connect(addr).await?;
            let status = connection
                .send(&request_bytes("GET", "/metrics", addr, &[], b""))
                .await?;
            anyhow::ensure!(status == 200, "GET /metrics answered {status}");
            Ok(String::from_utf8_lossy(connection.body()).into_owned())
        })?;
        let value = |name: &str| {
            text.lines()
                .find_map(|line| {
                    line.strip_prefix(name)?
                        .strip_prefix(' ')?
                        .trim()
                        .parse()
                        .ok()
                })
                .unwrap_or(0.0)
        };
        Ok(BatchSizes {
            statements: value("ticket_create_batch_size_count"),
            tickets: value("ticket_create_batch_size_sum"),
        })
    }

    fn since(self, before: BatchSizes) -> BatchSizes {
        BatchSizes {
            statements: self.statements - before.statements,
            tickets: self.tickets - before.tickets,
        }
    }

    fn mean(self) -> String {
        if self.statements > 0.0 {
            format!("{:.1}", self.tickets / self.statements)
        } else {
            "-".into()
        }
    }
}

/// Everything the report needs.
struct Report {
    run: RunInfo,
    pgbench_runs: Vec<PgbenchRun>,
    pgbench_cpu: Vec<CpuUsage>,
    warmup: Outcome,
    max: Outcome,
    max_cpu: CpuUsage,
    half_rate: f64,
    half: Outcome,
    half_cpu: CpuUsage,
    /// Tickets per create statement in each run (cons-api batches concurrent creates).
    max_batches: BatchSizes,
    half_batches: BatchSizes,
    peak_rss_kib: u64,
    api_exit: String,
    clients_in_db: i64,
}

fn run(args: &Args) -> anyhow::Result<()> {
    let mut run = RunInfo::begin("bench-intake")?;
    anyhow::ensure!(args.clients > 0, "--clients must be at least 1");
    anyhow::ensure!(args.reps > 0, "--reps must be at least 1");
    anyhow::ensure!(args.seconds > 0, "--seconds must be at least 1");
    anyhow::ensure!(
        (1..=10_000_000).contains(&args.population),
        "--population must be 1..=10,000,000 (phone numbers have 7 free digits)"
    );
    let shared = shared_dir(
        args.shared_dir.as_deref(),
        &["bench/schema.sql", "bench/pgbench/ticket_create.sql"],
    )?;
    let schema = shared.join("bench/schema.sql");
    let script = shared.join("bench/pgbench/ticket_create.sql");
    let api_binary = service::sibling_binary("cons-api")?;
    if cfg!(debug_assertions) {
        progress("warning: this is a debug build; numbers are only meaningful from --release");
    }

    progress("starting a durable throwaway PostgreSQL cluster");
    let anchor = AnchorCluster::start()?;
    let (pg, cluster) = (&anchor.pg, &anchor.cluster);

    // The raw limit first, on its own database, while nothing else runs.
    let (pgbench_runs, pgbench_cpu) = raw_limit(args, pg, cluster, &schema, &script)?;

    progress("creating database cons and applying migrations");
    let database_url = anchor.create_migrated("cons")?;

    let addr = service::free_loopback_addr()?;
    let token = service::random_hex()?;
    let mut env = vec![
        ("DATABASE_URL", database_url),
        ("API_BIND", addr.to_string()),
        ("SERVICE_TOKENS", format!("bench:{token}")),
        ("RUST_LOG", "warn".to_owned()),
        ("DB_POOL_SIZE", args.pool_size.to_string()),
    ];
    if let Some(workers) = args.api_workers {
        env.push(("API_WORKERS", workers.to_string()));
    }
    let work_dir = anchor.work_dir()?;
    progress(&format!("starting {} on {addr}", api_binary.display()));
    let mut api = Service::spawn(&api_binary, &env, &work_dir)?;
    api.wait_http_ok(addr, "/api/health/db", READY_TIMEOUT)?;
    let api_pid = api.check_running()?;

    let requests = intake_requests(args.population, addr, &token)?;
    let next = AtomicUsize::new(0);
    let target = Target {
        addr,
        requests: &requests,
        next: &next,
        expected_status: 201,
    };

    progress(&format!(
        "warm-up: {} s or until all {} clients exist",
        args.warmup, args.population
    ));
    let warmup = load::closed_loop(
        &target,
        args.clients,
        Duration::from_secs(args.warmup),
        args.population,
    )?;
    api.check_running()?;
    let clients_in_db: i64 = pg
        .sql("cons", "SELECT count(*) FROM cons.clients")?
        .parse()
        .context("unexpected client count")?;
    pg.sql("cons", "CHECKPOINT")?;

    progress(&format!(
        "maximum rate: {} connections, {} s",
        args.clients, args.seconds
    ));
    let meter = CpuMeter::new(vec![
        Account::WithChildren(cluster.pid()),
        Account::Process(api_pid),
        Account::Process(std::process::id()),
    ]);
    let batches_before = BatchSizes::scrape(addr)?;
    let before = meter.snapshot()?;
    let max = load::closed_loop(&target, args.clients, Duration::from_secs(args.seconds), 0)?;
    let max_cpu = meter.since(&before)?;
    let max_batches = BatchSizes::scrape(addr)?.since(batches_before);
    api.check_running()?;
    if max.ok == 0 {
        bail!(
            "no request succeeded at the maximum rate; errors: {}{}",
            max.errors.describe(),
            samples(&max.errors)
        );
    }
    progress(&format!(
        "maximum rate: {} req/s, p99 {}",
        thousands(max.rate()),
        ms(max.latencies.percentile(99.0))
    ));

    pg.sql("cons", "CHECKPOINT")?;
    let half_rate = max.rate() * HALF;
    progress(&format!(
        "half rate: {} req/s on a fixed schedule, {} s",
        thousands(half_rate),
        args.seconds
    ));
    let batches_before = BatchSizes::scrape(addr)?;
    let before = meter.snapshot()?;
    let half = load::open_loop(
        &target,
        args.clients,
        half_rate,
        Duration::from_secs(args.seconds),
        MAX_OVERRUN,
    )?;
    let half_cpu = meter.since(&before)?;
    let half_batches = BatchSizes::scrape(addr)?.since(batches_before);
    api.check_running()?;
    let peak_rss_kib = machine::peak_rss_kib(api_pid)?;

    progress("stopping cons-api and the cluster");
    let api_exit = api.stop()?.to_string();
    run.end(&anchor.description)?;
    drop(anchor);

    let report = Report {
        run,
        pgbench_runs,
        pgbench_cpu,
        warmup,
        max,
        max_cpu,
        half_rate,
        half,
        half_cpu,
        max_batches,
        half_batches,
        peak_rss_kib,
        api_exit,
        clients_in_db,
    };
    print!("{}", render(args, &report));
    Ok(())
}

/// pgbench's ticket_create on database `anchor`: `reps` runs, each on empty tables after a
/// checkpoint, as in the anchor script. Also measures the CPU PostgreSQL and pgbench spent.
fn raw_limit(
    args: &Args,
    pg: &Pg,
    cluster: &Cluster,
    schema: &Path,
    script: &Path,
) -> anyhow::Result<(Vec<PgbenchRun>, Vec<CpuUsage>)> {
    pg.sql("postgres", "CREATE DATABASE anchor")?;
    pg.sql_file("anchor", schema)?;
    let seconds = args.pgbench_seconds.unwrap_or(args.seconds);
    let threads = args.clients.min(2);
    let meter = CpuMeter::new(vec![
        Account::WithChildren(cluster.pid()),
        Account::WaitedChildren(std::process::id()),
    ]);
    let mut runs = Vec::with_capacity(args.reps);
    let mut usage = Vec::with_capacity(args.reps);
    for rep in 1..=args.reps {
        pg.sql("anchor", "TRUNCATE tickets, outbox; CHECKPOINT")?;
        progress(&format!(
            "raw limit {rep}/{}: {} -c {} -j {threads} -T {seconds}",
            args.reps,
            pg.pgbench_path().display(),
            args.clients
        ));
        let before = meter.snapshot()?;
        let run = pg.pgbench(
            "anchor",
            args.clients,
            threads,
            Length::Seconds(seconds),
            &[],
            script,
        )?;
        usage.push(meter.since(&before)?);
        progress(&format!(
            "raw limit {rep}/{}: {} tx/s",
            args.reps,
            thousands(run.tps)
        ));
        runs.push(run);
    }
    pg.sql("anchor", "CHECKPOINT")?;
    Ok((runs, usage))
}

/// One prepared `POST /api/tickets/create` per client of the population.
fn intake_requests(
    population: usize,
    addr: SocketAddr,
    token: &str,
) -> anyhow::Result<Vec<Vec<u8>>> {
    // Tomorrow 10:00 in Tashkent: inside the 30-day booking window for the whole run.
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).format("%Y-%m-%d");
    let scheduled_at = format!("{tomorrow}T10:00:00+05:00");
    let authorization = format!("Bearer {token}");
    let headers = [
        ("Authorization", authorization.as_str()),
        ("Content-Type", "application/json"),
    ];
    (0..population)
        .map(|n| {
            let body = serde_json::to_vec(&ticket_body(n, &scheduled_at))?;
            Ok(request_bytes(
                "POST",
                "/api/tickets/create",
                addr,
                &headers,
                &body,
            ))
        })
        .collect()
}

/// The contract's example request for client `n`: unique phone (`+99890` and 7 digits),
/// e-mail and INN, so each body names exactly one client.
fn ticket_body(n: usize, scheduled_at: &str) -> serde_json::Value {
    let first = FIRST_NAMES[n % FIRST_NAMES.len()];
    let last = LAST_NAMES[(n / FIRST_NAMES.len()) % LAST_NAMES.len()];
    serde_json::json!({
        "client": {
            "name": format!("{first} {last}"),
            "phone_number": format!("+99890{n:07}"),
            "email": format!("c{n}@example.uz"),
            "org_inn": format!("{}", 300_000_000 + n),
            "code_abonent": format!("{}", 10_000 + n),
            "company_name": format!("{last} Trade"),
        },
        "ticket": {
            "consultation_type": "accounting",
            "comment": COMMENT,
            "topic": "Закрытие месяца",
            "lang": "ru",
            "scheduled_at": scheduled_at,
            "importance": 2,
        },
        "source": "site",
    })
}

fn samples(errors: &Errors) -> String {
    errors.samples.iter().map(|s| format!("\n  {s}")).collect()
}

fn render(args: &Args, r: &Report) -> String {
    let tps: Vec<f64> = r.pgbench_runs.iter().map(|run| run.tps).collect();
    let raw = median(&tps).unwrap_or(0.0);
    let http = r.max.rate();
    let ratio = if raw > 0.0 { http / raw } else { 0.0 };
    let runs = tps
        .iter()
        .map(|&t| thousands(t))
        .collect::<Vec<_>>()
        .join(" / ");
    // CPU of the median pgbench run.
    let median_run = r
        .pgbench_runs
        .iter()
        .position(|run| run.tps == raw)
        .unwrap_or(0);
    let (raw_pg, raw_bench, raw_busy, raw_tx) = match (
        r.pgbench_cpu.get(median_run),
        r.pgbench_runs.get(median_run),
    ) {
        (Some(cpu), Some(run)) => (
            per(
                cpu.accounts.first().copied().unwrap_or_default(),
                run.transactions,
            ),
            per(
                cpu.accounts.get(1).copied().unwrap_or_default(),
                run.transactions,
            ),
            busy(cpu),
            run.transactions,
        ),
        _ => ("n/a".into(), "n/a".into(), "n/a".into(), 0),
    };
    let cpu = |i: usize| {
        per(
            r.max_cpu.accounts.get(i).copied().unwrap_or_default(),
            r.max.ok,
        )
    };
    let c = args.clients;
    let n = args.reps;
    let mut out = String::new();
    out.push_str(&r.run.header());
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!(
        "Settings: {c} connections, {} s per HTTP run after a {} s warm-up, {} clients round-robin ({} in the database after the warm-up), cons-api DB_POOL_SIZE={}, API_WORKERS={}; pgbench {n} × {} s.",
        args.seconds,
        args.warmup,
        args.population,
        r.clients_in_db,
        args.pool_size,
        args.api_workers.map_or_else(
            || format!("default ({})", r.run.machine.cpus),
            |w| w.to_string()
        ),
        args.pgbench_seconds.unwrap_or(args.seconds),
    ));
    line(String::new());
    line("| measurement | value | ratio / target |".into());
    line("| --- | --- | --- |".into());
    line(format!(
        "| HTTP create req/s ({c} clients) | {} | |",
        thousands(http)
    ));
    line(format!(
        "| raw pgbench ticket_create tx/s ({c} clients, median of {n}) | {} (runs {runs}) | |",
        thousands(raw)
    ));
    line(format!(
        "| ratio | {ratio:.2} | target ≥ 0.7: {} |",
        if ratio >= 0.7 { "met" } else { "missed" }
    ));
    line(format!(
        "| p50 / p99 at max | {} / {} | |",
        ms(r.max.latencies.percentile(50.0)),
        ms(r.max.latencies.percentile(99.0))
    ));
    let p99_half = r.half.latencies.percentile(99.0);
    line(format!(
        "| p50 / p99 at half rate ({} req/s scheduled, {} answered/s) | {} / {} | target p99 < 15 ms: {} |",
        thousands(r.half_rate),
        thousands(r.half.rate()),
        ms(r.half.latencies.percentile(50.0)),
        ms(p99_half),
        if p99_half.is_some_and(|p| p < 15_000) {
            "met"
        } else {
            "missed"
        }
    ));
    let rss_mib = r.peak_rss_kib as f64 / 1024.0;
    line(format!(
        "| cons-api peak RSS (VmHWM) | {rss_mib:.1} MiB | target < 64 MiB: {} |",
        if rss_mib < 64.0 { "met" } else { "missed" }
    ));
    line(format!(
        "| errors: warm-up / max / half rate | {} / {} / {} | |",
        r.warmup.errors.describe(),
        r.max.errors.describe(),
        r.half.errors.describe()
    ));
    line(format!(
        "| tickets per create statement (mean): max / half rate | {} / {} | |",
        r.max_batches.mean(),
        r.half_batches.mean()
    ));
    line(format!(
        "| CPU per request at max: PostgreSQL / cons-api / load generator | {} / {} / {} µs | {} |",
        cpu(0),
        cpu(1),
        cpu(2),
        busy(&r.max_cpu)
    ));
    line(format!(
        "| CPU per transaction, raw limit (median run, {} tx): PostgreSQL / pgbench | {raw_pg} / {raw_bench} µs | {raw_busy} |",
        thousands(raw_tx as f64),
    ));
    line(format!(
        "| half-rate sender lag p50 / p99 (generator's own) | {} / {} | |",
        ms(r.half.send_lag.percentile(50.0)),
        ms(r.half.send_lag.percentile(99.0))
    ));
    line(format!(
        "| machine | {} | half-rate run: {} |",
        r.run.load(),
        busy(&r.half_cpu)
    ));
    line(format!(
        "| cons-api exit after SIGTERM | {} | |",
        r.api_exit
    ));
    for (what, outcome) in [
        ("warm-up", &r.warmup),
        ("max", &r.max),
        ("half rate", &r.half),
    ] {
        if !outcome.errors.samples.is_empty() {
            line(format!(
                "\nFirst errors ({what}):{}",
                samples(&outcome.errors)
            ));
        }
    }
    out
}
