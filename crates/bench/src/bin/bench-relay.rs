//! `bench-relay`: the real `cons-relay` release binary draining the outbox to a no-op HTTP
//! peer, against two limits measured in the same run: the raw claim-and-complete rate of
//! PostgreSQL (`pgbench` with the anchor's `claim_tx.sql`, batches of 100, 4 connections)
//! and the peer's own loopback ceiling (64 requests in flight, no database). Then
//! commit-to-delivery latency at a steady rate, and the drain again with a million
//! delivered rows in the table. Prints a markdown table; see `docs/BENCHMARKS.md`.
//!
//! `cargo build --release -p cons_relay -p cons_bench && ./target/release/bench-relay`

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use cons_bench::http::request_bytes;
use cons_bench::load::{self, Outcome, Target};
use cons_bench::machine::{self, Account, CpuMeter, CpuUsage};
use cons_bench::pg::{AnchorCluster, Length, Pg, PgbenchRun};
use cons_bench::report::{RunInfo, busy, outside_share, per, progress, shared_dir, verdict};
use cons_bench::service::{self, Service};
use cons_bench::stats::{Latencies, median, micros, ms, thousands};
use cons_domain::{
    ClientRef, CodeAbonent, Comment, ConsultationType, Inn, Lang, NewClient, NewTicket, PersonName,
    PhoneNumber, Source, TicketDraft,
};
use cons_sim::NoopSink;
use cons_store::tickets::{CreateOutcome, CreateTicket};

/// The raw limit as `shared/bench/run.sh` measures it (step b): batches of 100, 4
/// connections, a fixed 60,000 rows per run so that the 200,000-row backlog never runs dry.
const CLAIM_BATCH: u64 = 100;
const CLAIM_CONNECTIONS: usize = 4;
const CLAIM_ROWS_PER_RUN: u64 = 60_000;
/// The best PostgreSQL queues drained here with no network work at all (performance.md
/// §2c, documented tuning): pgqueuer and graphile-worker, no-op jobs per second.
const PGQUEUER_TUNED: f64 = 20_000.0;
const GRAPHILE_BATCHED: f64 = 17_600.0;
/// Targets of the relay issue.
const TARGET_RATE: f64 = 10_000.0;
const TARGET_P50: Duration = Duration::from_millis(2);
const TARGET_P99: Duration = Duration::from_millis(10);
const TARGET_FULL_TABLE_RATIO: f64 = 0.9;
const TARGET_RSS_MIB: f64 = 64.0;
/// A drain that delivers nothing for this long has failed.
const STALL: Duration = Duration::from_secs(60);
/// How long the last deliveries of the latency run may take to arrive.
const LATENCY_GRACE: Duration = Duration::from_secs(10);
/// Where the relay posts; the sink answers every path.
const SINK_PATH: &str = "/deliveries";
/// Entries per ticket: every benchmark ticket is an accounting one (Chatwoot and 1C).
const TARGETS: u64 = 2;

/// The relay draining the outbox to a no-op HTTP peer, against the raw claim limit and the
/// peer's loopback ceiling, on one durable cluster.
#[derive(Debug, Parser)]
#[command(name = "bench-relay")]
struct Args {
    /// Entries to drain (two per ticket), in each of the two drains.
    #[arg(long, default_value_t = 100_000)]
    entries: u64,
    /// Delivered rows put into the table before the second drain.
    #[arg(long, default_value_t = 1_000_000)]
    delivered_rows: u64,
    /// Tickets per second in the latency run (each makes two entries).
    #[arg(long, default_value_t = 200.0)]
    latency_rate: f64,
    #[arg(long, default_value_t = 10)]
    latency_seconds: u64,
    /// Connections (requests in flight) of the loopback ceiling.
    #[arg(long, default_value_t = 64)]
    ceiling_connections: usize,
    #[arg(long, default_value_t = 5)]
    ceiling_seconds: u64,
    /// pgbench repetitions; the median is reported.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Drains of each kind (few and a million delivered rows in the table); the medians
    /// are compared. The machine is shared: one drain each was often ±10 % off.
    #[arg(long, default_value_t = 3)]
    drain_reps: usize,
    /// actix workers of the no-op sink.
    #[arg(long, default_value_t = 2)]
    sink_workers: usize,
    /// Extra `NAME=value` settings for cons-relay (repeatable), e.g. RELAY_CONCURRENCY=64.
    #[arg(long = "relay-env", value_parser = parse_pair)]
    relay_env: Vec<(String, String)>,
    /// The shared reference directory holding bench/schema.sql and bench/pgbench/.
    #[arg(long, env = "SHARED_DIR")]
    shared_dir: Option<PathBuf>,
}

fn parse_pair(raw: &str) -> Result<(String, String), String> {
    raw.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected NAME=value, not {raw:?}"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench-relay: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// One drain of a filled outbox by a fresh cons-relay.
struct Drain {
    entries: u64,
    /// From the first request the sink received to the moment the database showed every
    /// entry recorded.
    window: Duration,
    cpu: CpuUsage,
    /// Requests the sink received beyond one per entry.
    extra_posts: u64,
    /// Entries claimed more than once.
    redelivered: u64,
    not_delivered: u64,
    /// WAL written during the drain, all processes together.
    wal_bytes: u64,
    /// Updates of tickets and of outbox entries during the drain, and how many of them
    /// were HOT (no new index entries).
    updates: TableUpdates,
    peak_rss_kib: u64,
    exit: String,
}

/// `n_tup_upd` and `n_tup_hot_upd` of `cons.tickets` and `sys.outbox`.
#[derive(Debug, Clone, Copy, Default)]
struct TableUpdates {
    tickets: (u64, u64),
    outbox: (u64, u64),
}

impl TableUpdates {
    fn read(pg: &Pg) -> anyhow::Result<TableUpdates> {
        let row = |table: &str| -> anyhow::Result<(u64, u64)> {
            let value = pg.sql(
                "cons",
                &format!(
                    "SELECT n_tup_upd || ' ' || n_tup_hot_upd FROM pg_stat_user_tables
                     WHERE relid = '{table}'::regclass"
                ),
            )?;
            let (all, hot) = value
                .split_once(' ')
                .with_context(|| format!("unexpected statistics {value:?}"))?;
            Ok((all.parse()?, hot.parse()?))
        };
        Ok(TableUpdates {
            tickets: row("cons.tickets")?,
            outbox: row("sys.outbox")?,
        })
    }

    fn since(self, before: TableUpdates) -> TableUpdates {
        let minus =
            |a: (u64, u64), b: (u64, u64)| (a.0.saturating_sub(b.0), a.1.saturating_sub(b.1));
        TableUpdates {
            tickets: minus(self.tickets, before.tickets),
            outbox: minus(self.outbox, before.outbox),
        }
    }

    fn hot_share(pair: (u64, u64)) -> String {
        if pair.0 == 0 {
            "-".into()
        } else {
            format!("{:.0} %", 100.0 * pair.1 as f64 / pair.0 as f64)
        }
    }
}

impl Drain {
    fn rate(&self) -> f64 {
        self.entries as f64 / self.window.as_secs_f64().max(f64::EPSILON)
    }
}

struct LatencyRun {
    tickets: u64,
    scheduled_rate: f64,
    /// Commit-to-arrival per entry, µs.
    latencies: Latencies,
    missing: u64,
    duplicates: u64,
    /// How late the generator itself committed (its own lag behind the schedule), µs.
    create_lag: Latencies,
    cpu: CpuUsage,
}

struct Report {
    run: RunInfo,
    raw_runs: Vec<PgbenchRun>,
    raw_cpu: Vec<CpuUsage>,
    ceiling: Outcome,
    ceiling_cpu: CpuUsage,
    fresh: Drain,
    /// Rates (entries/s) of every drain of each kind, the detailed one first.
    fresh_rates: Vec<f64>,
    latency: LatencyRun,
    full: Drain,
    full_rates: Vec<f64>,
    full_fill: Duration,
    delivered_in_table: u64,
}

fn run(args: &Args) -> anyhow::Result<()> {
    let mut run = RunInfo::begin("bench-relay")?;
    anyhow::ensure!(
        args.entries >= TARGETS && args.entries.is_multiple_of(TARGETS),
        "--entries must be a positive even number (two entries per ticket)"
    );
    anyhow::ensure!(args.reps > 0, "--reps must be at least 1");
    anyhow::ensure!(args.drain_reps > 0, "--drain-reps must be at least 1");
    anyhow::ensure!(
        args.latency_rate > 0.0 && args.latency_seconds > 0,
        "the latency run needs a positive rate and length"
    );
    let shared = shared_dir(
        args.shared_dir.as_deref(),
        &[
            "bench/schema.sql",
            "bench/pgbench/prefill.sql",
            "bench/pgbench/claim_tx.sql",
        ],
    )?;
    let relay_binary = service::sibling_binary("cons-relay")?;
    if cfg!(debug_assertions) {
        progress("warning: this is a debug build; numbers are only meaningful from --release");
    }

    progress("starting a durable throwaway PostgreSQL cluster");
    let anchor = AnchorCluster::start()?;
    let pg = &anchor.pg;
    let postgres_pid = anchor.cluster.pid();

    // The raw limit first, on its own database, while nothing else runs.
    let (raw_runs, raw_cpu) = raw_claim_limit(args, &anchor, &shared)?;

    // The no-op peer lives in this process, so its arrival times and the generator's
    // commit times are read from one clock.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let sink = runtime.block_on(async { NoopSink::start(args.sink_workers) })?;
    let sink_addr = SocketAddr::from(([127, 0, 0, 1], sink.server.port));
    let (ceiling, ceiling_cpu) = http_ceiling(args, sink_addr)?;

    progress("creating database cons and applying migrations");
    let database_url = anchor.create_migrated("cons")?;
    let work_dir = anchor.work_dir()?;
    let sink_url = format!("{}{SINK_PATH}", sink.server.base_url);
    let relay_env = relay_env(args, &database_url, &sink_url)?;
    let relay = Relay {
        binary: relay_binary,
        env: relay_env,
        work_dir,
        postgres_pid,
    };

    // Drain 1: a fresh table.
    let fresh_from = fill(pg, args.entries / TARGETS, Fill::Pending, 0)?;
    let (mut fresh, mut running) = drain(pg, &sink, &relay, args.entries, fresh_from)?;
    let relay_pid = running.check_running()?;

    // Commit-to-delivery latency, with the same relay now idle and woken by NOTIFY.
    let latency = runtime.block_on(latency_run(
        args,
        &database_url,
        &sink,
        &relay.meter(relay_pid),
    ))?;
    running.check_running()?;
    fresh.peak_rss_kib = machine::peak_rss_kib(relay_pid)?;
    fresh.exit = running.stop()?.to_string();
    let mut fresh_rates = vec![fresh.rate()];
    fresh_rates.extend(more_drains(pg, &sink, &relay, args, 0)?);

    // Drain 2: the same work with a million delivered rows already in the table.
    let filling = Instant::now();
    fill(
        pg,
        args.delivered_rows / TARGETS,
        Fill::Delivered,
        1_000_000_000,
    )?;
    let full_fill = filling.elapsed();
    let full_from = fill(pg, args.entries / TARGETS, Fill::Pending, 2_000_000_000)?;
    let delivered_in_table = count(
        pg,
        "SELECT count(*) FROM sys.outbox WHERE status = 'delivered'",
    )?;
    let (mut full, mut running) = drain(pg, &sink, &relay, args.entries, full_from)?;
    full.peak_rss_kib = machine::peak_rss_kib(running.check_running()?)?;
    full.exit = running.stop()?.to_string();
    let mut full_rates = vec![full.rate()];
    full_rates.extend(more_drains(pg, &sink, &relay, args, 2_000_000_000)?);

    progress("stopping the sink and the cluster");
    drop(sink);
    drop(runtime);
    run.end(&anchor.description)?;
    drop(anchor);

    let report = Report {
        run,
        raw_runs,
        raw_cpu,
        ceiling,
        ceiling_cpu,
        fresh,
        fresh_rates,
        latency,
        full,
        full_rates,
        full_fill,
        delivered_in_table,
    };
    print!("{}", render(args, &report));
    Ok(())
}

/// `claim_tx.sql` on database `anchor` after `prefill.sql`, as `run.sh` step b does for
/// its `b.claim_tx.n100.c4` point. Also measures the CPU PostgreSQL and pgbench spent.
fn raw_claim_limit(
    args: &Args,
    anchor: &AnchorCluster,
    shared: &Path,
) -> anyhow::Result<(Vec<PgbenchRun>, Vec<CpuUsage>)> {
    let pg = &anchor.pg;
    pg.sql("postgres", "CREATE DATABASE anchor")?;
    pg.sql_file("anchor", &shared.join("bench/schema.sql"))?;
    progress("raw limit: prefill.sql (200,000 pending rows)");
    pg.sql_file("anchor", &shared.join("bench/pgbench/prefill.sql"))?;
    let script = shared.join("bench/pgbench/claim_tx.sql");
    let per_client = CLAIM_ROWS_PER_RUN / (CLAIM_CONNECTIONS as u64 * CLAIM_BATCH);
    let meter = CpuMeter::new(vec![
        Account::WithChildren(anchor.cluster.pid()),
        Account::WaitedChildren(std::process::id()),
    ]);
    let mut runs = Vec::with_capacity(args.reps);
    let mut usage = Vec::with_capacity(args.reps);
    for rep in 1..=args.reps {
        let before = meter.snapshot()?;
        let run = pg.pgbench(
            "anchor",
            CLAIM_CONNECTIONS,
            2,
            Length::TransactionsPerClient(per_client),
            &[("n", &CLAIM_BATCH.to_string())],
            &script,
        )?;
        usage.push(meter.since(&before)?);
        progress(&format!(
            "raw limit {rep}/{}: {} rows/s",
            args.reps,
            thousands(run.tps * CLAIM_BATCH as f64)
        ));
        runs.push(run);
    }
    Ok((runs, usage))
}

/// The sink alone: closed loop over `ceiling_connections` keep-alive connections, each
/// posting what the relay posts. Generator and sink share this process (and the machine).
fn http_ceiling(args: &Args, sink: SocketAddr) -> anyhow::Result<(Outcome, CpuUsage)> {
    let cons_id = uuid::Uuid::now_v7();
    let body = serde_json::to_vec(&serde_json::json!({
        "id": 123_456,
        "cons_id": cons_id,
        "target": "chatwoot",
        "kind": "ticket.create",
        "attempt": 1,
        "payload": {"cons_id": cons_id},
    }))?;
    let request = request_bytes(
        "POST",
        SINK_PATH,
        sink,
        &[("Content-Type", "application/json")],
        &body,
    );
    let requests = [request];
    let next = AtomicUsize::new(0);
    let target = Target {
        addr: sink,
        requests: &requests,
        next: &next,
        expected_status: 204,
    };
    progress(&format!(
        "loopback ceiling: {} connections, {} s",
        args.ceiling_connections, args.ceiling_seconds
    ));
    let meter = CpuMeter::new(vec![Account::Process(std::process::id())]);
    let before = meter.snapshot()?;
    let outcome = load::closed_loop(
        &target,
        args.ceiling_connections,
        Duration::from_secs(args.ceiling_seconds),
        0,
    )?;
    let cpu = meter.since(&before)?;
    if outcome.ok == 0 {
        bail!("the sink answered nothing: {}", outcome.errors.describe());
    }
    progress(&format!(
        "loopback ceiling: {} req/s",
        thousands(outcome.rate())
    ));
    Ok((outcome, cpu))
}

/// Everything cons-relay gets: defaults but for the database, the sink, a free metrics
/// port, quiet logs, and what `--relay-env` adds.
fn relay_env(
    args: &Args,
    database_url: &str,
    sink_url: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut env = vec![
        ("DATABASE_URL".to_owned(), database_url.to_owned()),
        ("RELAY_BENCH_SINK_URL".to_owned(), sink_url.to_owned()),
        (
            "RELAY_METRICS_BIND".to_owned(),
            service::free_loopback_addr()?.to_string(),
        ),
        ("RUST_LOG".to_owned(), "warn".to_owned()),
    ];
    env.extend(args.relay_env.iter().cloned());
    Ok(env)
}

/// How to start cons-relay, and whose CPU a drain counts.
struct Relay {
    binary: PathBuf,
    env: Vec<(String, String)>,
    work_dir: PathBuf,
    postgres_pid: u32,
}

impl Relay {
    /// Starts it; it drains at once, before it answers on `/health`.
    fn start(&self) -> anyhow::Result<Service> {
        let pairs: Vec<(&str, String)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        progress(&format!("starting {}", self.binary.display()));
        Service::spawn(&self.binary, &pairs, &self.work_dir)
    }

    /// PostgreSQL (postmaster and backends), cons-relay, and this process (the sink).
    fn meter(&self, relay_pid: u32) -> CpuMeter {
        CpuMeter::new(vec![
            Account::WithChildren(self.postgres_pid),
            Account::Process(relay_pid),
            Account::Process(std::process::id()),
        ])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fill {
    /// Due now, as the API writes them.
    Pending,
    /// Delivered once long ago, with their attempt logged, as a relay leaves them.
    Delivered,
}

/// Writes `tickets` accounting tickets of one client, each with its Chatwoot and 1C entry,
/// then vacuums, analyses and checkpoints, so each drain starts from a settled table.
/// Ticket ids are UUIDv7-shaped and increasing from `offset`, like the API's. Returns the
/// largest outbox id before the fill: the new entries are those above it.
fn fill(pg: &Pg, tickets: u64, fill: Fill, offset: u64) -> anyhow::Result<u64> {
    progress(&format!(
        "writing {} {fill:?} entries ({tickets} tickets)",
        thousands((tickets * TARGETS) as f64)
    ));
    let before = count(pg, "SELECT coalesce(max(id), 0) FROM sys.outbox")?;
    let (status, sync, attempts, delivered_at) = match fill {
        Fill::Pending => ("pending", "pending", 0, "NULL"),
        Fill::Delivered => ("delivered", "delivered", 1, "now()"),
    };
    pg.sql(
        "cons",
        &format!(
            "WITH client AS (
                 INSERT INTO cons.clients (client_id, name) VALUES (gen_random_uuid(), 'Bench client')
                 RETURNING client_id
             ), tickets AS (
                 INSERT INTO cons.tickets (cons_id, client_id, consultation_type, source, lang, comment,
                                           sync_chatwoot, sync_onec, created_by)
                 SELECT ('01900000-0000-7000-8000-' || lpad(to_hex({offset} + g), 12, '0'))::uuid,
                        client.client_id, 'accounting', 'site', 'ru', 'Bench question ' || g,
                        '{sync}', '{sync}', 'service:bench'
                 FROM client, generate_series(1, {tickets}) g
                 RETURNING cons_id
             ), entries AS (
                 INSERT INTO sys.outbox (cons_id, target, kind, payload, status, attempts, delivered_at)
                 SELECT cons_id, target, 'ticket.create', jsonb_build_object('cons_id', cons_id),
                        '{status}', {attempts}, {delivered_at}
                 FROM tickets, (VALUES ('chatwoot'), ('onec')) AS t(target)
                 ORDER BY cons_id, target
                 RETURNING id
             )
             INSERT INTO sys.outbox_attempts (outbox_id, attempt, started_at, outcome)
             SELECT id, 1, now(), 'delivered' FROM entries WHERE '{status}' = 'delivered'"
        ),
    )?;
    pg.sql("cons", "VACUUM ANALYZE")?;
    pg.sql("cons", "CHECKPOINT")?;
    Ok(before)
}

/// The repetitions of a drain after its first (detailed) one, each of fresh pending
/// entries (ticket ids above `offset`) by a fresh relay; their rates.
fn more_drains(
    pg: &Pg,
    sink: &NoopSink,
    relay: &Relay,
    args: &Args,
    offset: u64,
) -> anyhow::Result<Vec<f64>> {
    let mut rates = Vec::new();
    for rep in 1..args.drain_reps {
        let tickets_from = offset + rep as u64 * 100_000_000;
        let from = fill(pg, args.entries / TARGETS, Fill::Pending, tickets_from)?;
        let (again, mut running) = drain(pg, sink, relay, args.entries, from)?;
        running.stop()?;
        rates.push(again.rate());
    }
    Ok(rates)
}

fn count(pg: &Pg, sql: &str) -> anyhow::Result<u64> {
    let value = pg.sql("cons", sql)?;
    value
        .parse()
        .with_context(|| format!("{sql}: unexpected answer {value:?}"))
}

/// Starts a relay and waits while it drains `entries` entries above id `from`: from the
/// sink's first request to the moment the database shows all of them recorded. Returns
/// the relay still running.
fn drain(
    pg: &Pg,
    sink: &NoopSink,
    relay: &Relay,
    entries: u64,
    from: u64,
) -> anyhow::Result<(Drain, Service)> {
    let posted_before = sink.received();
    let wal_before = pg.sql("cons", "SELECT pg_current_wal_insert_lsn()")?;
    let updates_before = TableUpdates::read(pg)?;
    let mut running = relay.start()?;
    let meter = relay.meter(running.check_running()?);
    let before = meter.snapshot()?;
    let relay = &mut running;
    let posted = || sink.received() - posted_before;
    let waiting = Instant::now();
    while posted() == 0 {
        relay.check_running()?;
        if waiting.elapsed() > STALL {
            bail!("the sink received nothing within {STALL:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let first = Instant::now();
    progress(&format!("draining {} entries", thousands(entries as f64)));
    let (mut last, mut progressed) = (0, Instant::now());
    while posted() < entries {
        relay.check_running()?;
        let now = posted();
        if now > last {
            (last, progressed) = (now, Instant::now());
        } else if progressed.elapsed() > STALL {
            return Err(stalled(
                pg,
                relay,
                from,
                &format!("{now} of {entries} entries posted"),
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // Posted is not delivered: delivered is when the outcome is committed.
    let open = format!(
        "SELECT count(*) FROM sys.outbox WHERE id > {from} AND status IN ('pending', 'in_flight')"
    );
    while count(pg, &open)? > 0 {
        relay.check_running()?;
        if progressed.elapsed() > STALL {
            return Err(stalled(
                pg,
                relay,
                from,
                "entries were posted but not recorded",
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let window = first.elapsed();
    let cpu = meter.since(&before)?;
    let wal_bytes = count(
        pg,
        &format!("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '{wal_before}')::bigint"),
    )?;
    // Table statistics reach the shared counters within a second of each transaction.
    std::thread::sleep(Duration::from_millis(1500));
    let updates = TableUpdates::read(pg)?.since(updates_before);
    let extra_posts = posted().saturating_sub(entries);
    let redelivered = count(
        pg,
        &format!("SELECT count(*) FROM sys.outbox WHERE id > {from} AND attempts > 1"),
    )?;
    let not_delivered = count(
        pg,
        &format!("SELECT count(*) FROM sys.outbox WHERE id > {from} AND status <> 'delivered'"),
    )?;
    let drain = Drain {
        entries,
        window,
        cpu,
        extra_posts,
        redelivered,
        not_delivered,
        wal_bytes,
        updates,
        peak_rss_kib: 0,
        exit: String::new(),
    };
    progress(&format!("drained: {} entries/s", thousands(drain.rate())));
    Ok((drain, running))
}

/// A drain that stopped making progress, with what the table and the relay's log say.
fn stalled(pg: &Pg, relay: &Service, from: u64, what: &str) -> anyhow::Error {
    let left = pg
        .sql(
            "cons",
            &format!(
                "SELECT status || ' ' || count(*) || ' attempts ' || max(attempts) || ' ' || \
                 coalesce(max(last_error), '') FROM sys.outbox WHERE id > {from} GROUP BY status"
            ),
        )
        .unwrap_or_else(|e| e.to_string());
    anyhow::anyhow!(
        "the drain stalled ({what}):\n{left}\ncons-relay:\n{}",
        relay.log_tail()
    )
}

/// Ticket `n` of its own client, as the site sends it: accounting, so one entry for
/// Chatwoot and one for 1C.
fn ticket(n: u64) -> anyhow::Result<NewTicket> {
    let invalid = |e| anyhow::anyhow!("bench ticket {n}: {e:?}");
    Ok(NewTicket {
        client: ClientRef::Match(NewClient {
            name: PersonName::parse("Dilnoza Karimova").map_err(invalid)?,
            phone_number: PhoneNumber::parse(&format!("+99891{n:07}")).map_err(invalid)?,
            email: None,
            org_inn: Some(Inn::parse(&format!("4{n:08}")).map_err(invalid)?),
            code_abonent: Some(CodeAbonent::parse(&(10_000 + n).to_string()).map_err(invalid)?),
            company_name: None,
        }),
        ticket: TicketDraft {
            consultation_type: ConsultationType::Accounting,
            comment: Some(
                Comment::parse("Как закрыть месяц в 1С:Бухгалтерии, если не сходится сальдо?")
                    .map_err(invalid)?,
            ),
            topic: None,
            lang: Lang::Ru,
            scheduled_at: None,
            importance: None,
            source: Source::Site,
        },
    })
}

/// What the relay posts, as far as latency needs it.
#[derive(serde::Deserialize)]
struct Posted {
    cons_id: uuid::Uuid,
}

/// Tickets created on a fixed schedule through the API's own store path (`tickets::create`,
/// then the wake-up NOTIFY), each commit's moment kept; the sink keeps each arrival's. The
/// difference is commit-to-delivery latency: NOTIFY, claim, HTTP.
async fn latency_run(
    args: &Args,
    database_url: &str,
    sink: &NoopSink,
    meter: &CpuMeter,
) -> anyhow::Result<LatencyRun> {
    let pool = cons_store::pool::build(
        database_url,
        &cons_store::pool::PoolSettings {
            max_size: 1,
            ..cons_store::pool::PoolSettings::default()
        },
    )?;
    let mut connection = pool.get().await?;
    let tickets = (args.latency_rate * args.latency_seconds as f64).round() as u64;
    let period = Duration::from_secs_f64(1.0 / args.latency_rate);
    let commands = (0..tickets)
        .map(ticket)
        .collect::<anyhow::Result<Vec<_>>>()?;
    progress(&format!(
        "latency: {} tickets/s for {} s",
        args.latency_rate, args.latency_seconds
    ));
    sink.take_recorded();
    sink.record(true);
    let before = meter.snapshot()?;
    let mut committed: HashMap<uuid::Uuid, Instant> = HashMap::with_capacity(commands.len());
    let mut lag = Vec::with_capacity(commands.len());
    let start = tokio::time::Instant::now() + Duration::from_millis(10);
    for (k, command) in commands.iter().enumerate() {
        let scheduled = start + period * u32::try_from(k)?;
        tokio::time::sleep_until(scheduled).await;
        let outcome = cons_store::tickets::create(
            &mut connection,
            &CreateTicket {
                command,
                principal: "service:bench",
                idempotency: None,
            },
        )
        .await?;
        let now = Instant::now();
        lag.push(micros(now.saturating_duration_since(scheduled.into_std())));
        match outcome {
            CreateOutcome::Created(created) => {
                committed.insert(created.cons_id, now);
            }
            other => bail!("ticket {k} was not created: {other:?}"),
        }
        cons_store::wake::notify(&mut connection, cons_store::wake::Channel::Outbox).await?;
    }
    let expected = tickets * TARGETS;
    let waiting = Instant::now();
    let mut arrivals = Vec::with_capacity(usize::try_from(expected)?);
    while (arrivals.len() as u64) < expected && waiting.elapsed() < LATENCY_GRACE {
        arrivals.extend(sink.take_recorded());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sink.record(false);
    arrivals.extend(sink.take_recorded());
    let cpu = meter.since(&before)?;

    let mut latencies = Vec::with_capacity(arrivals.len());
    let mut seen: HashMap<uuid::Uuid, u64> = HashMap::with_capacity(committed.len());
    for (arrived, body) in &arrivals {
        let posted: Posted = serde_json::from_slice(body).context("the relay posted no cons_id")?;
        let Some(commit) = committed.get(&posted.cons_id) else {
            continue;
        };
        *seen.entry(posted.cons_id).or_default() += 1;
        latencies.push(micros(arrived.saturating_duration_since(*commit)));
    }
    let delivered: u64 = seen.values().map(|n| (*n).min(TARGETS)).sum();
    let duplicates: u64 = seen.values().map(|n| n.saturating_sub(TARGETS)).sum();
    Ok(LatencyRun {
        tickets,
        scheduled_rate: args.latency_rate,
        latencies: Latencies::from_unsorted(latencies),
        missing: expected - delivered,
        duplicates,
        create_lag: Latencies::from_unsorted(lag),
        cpu,
    })
}

fn render(args: &Args, r: &Report) -> String {
    let rows: Vec<f64> = r
        .raw_runs
        .iter()
        .map(|run| run.tps * CLAIM_BATCH as f64)
        .collect();
    let raw = median(&rows).unwrap_or(0.0);
    let raw_list = rows
        .iter()
        .map(|&v| thousands(v))
        .collect::<Vec<_>>()
        .join(" / ");
    let median_run = rows.iter().position(|&v| v == raw).unwrap_or(0);
    let raw_rows = r
        .raw_runs
        .get(median_run)
        .map_or(0, |run| run.transactions * CLAIM_BATCH);
    let raw_cpu = r.raw_cpu.get(median_run);
    let account = |usage: Option<&CpuUsage>, i: usize| {
        usage
            .and_then(|u| u.accounts.get(i).copied())
            .unwrap_or_default()
    };
    let ceiling = r.ceiling.rate();
    let fresh = median(&r.fresh_rates).unwrap_or(0.0);
    let full = median(&r.full_rates).unwrap_or(0.0);
    let rates = |all: &[f64]| {
        all.iter()
            .map(|rate| thousands(*rate))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let mib = |kib: u64| kib as f64 / 1024.0;
    let p = |l: &Latencies, q: f64| l.percentile(q);
    let p50 = p(&r.latency.latencies, 50.0);
    let p99 = p(&r.latency.latencies, 99.0);
    let within = |value: Option<u32>, limit: Duration| {
        value.is_some_and(|v| u128::from(v) <= limit.as_micros())
    };

    let mut out = String::new();
    out.push_str(&r.run.header());
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    let extra = if args.relay_env.is_empty() {
        "defaults".to_owned()
    } else {
        args.relay_env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    line(format!(
        "Settings: cons-relay {extra}, RELAY_BENCH_SINK_URL (one POST per entry); {} entries per drain; \
         no-op sink with {} actix workers in the benchmark process; pgbench {} × {} rows.",
        thousands(args.entries as f64),
        args.sink_workers,
        args.reps,
        thousands(CLAIM_ROWS_PER_RUN as f64),
    ));
    line(String::new());
    line("| measurement | value | ratio / target |".into());
    line("| --- | --- | --- |".into());
    line(format!(
        "| delivered entries/s, {} entries to the no-op sink over HTTP, median of {} | {} (runs {}) | target ≥ 10,000: {} |",
        thousands(args.entries as f64),
        r.fresh_rates.len(),
        thousands(fresh),
        rates(&r.fresh_rates),
        verdict(fresh >= TARGET_RATE)
    ));
    line(format!(
        "| raw claim-and-complete limit: `claim_tx.sql`, batch {CLAIM_BATCH}, {CLAIM_CONNECTIONS} connections, median of {} (rows/s) | {} (runs {raw_list}) | drain / raw: {:.2} |",
        args.reps,
        thousands(raw),
        ratio(fresh, raw)
    ));
    line(format!(
        "| loopback HTTP ceiling of the sink: {} in flight, no database (req/s) | {} | drain / ceiling: {:.2} |",
        args.ceiling_connections,
        thousands(ceiling),
        ratio(fresh, ceiling)
    ));
    line(format!(
        "| against the best PostgreSQL queues here, which did no network work: pgqueuer tuned ≈ 20,000, graphile-worker batched ≈ 17,600 jobs/s | {:.2} / {:.2} | aim > 1: {} |",
        ratio(fresh, PGQUEUER_TUNED),
        ratio(fresh, GRAPHILE_BATCHED),
        verdict(fresh > PGQUEUER_TUNED.max(GRAPHILE_BATCHED))
    ));
    line(format!(
        "| commit-to-delivery p50 / p99 / max at {} tickets/s ({} entries/s, {} tickets) | {} / {} / {} | target p50 ≤ 2 ms, p99 ≤ 10 ms: {} |",
        r.latency.scheduled_rate,
        r.latency.scheduled_rate * TARGETS as f64,
        r.latency.tickets,
        ms(p50),
        ms(p99),
        ms(r.latency.latencies.max()),
        verdict(within(p50, TARGET_P50) && within(p99, TARGET_P99))
    ));
    line(format!(
        "| delivered entries/s with {} delivered rows in the table, median of {} | {} (runs {}) | with / without: {:.2}, target ≥ 0.9: {} |",
        thousands(r.delivered_in_table as f64),
        r.full_rates.len(),
        thousands(full),
        rates(&r.full_rates),
        ratio(full, fresh),
        verdict(ratio(full, fresh) >= TARGET_FULL_TABLE_RATIO)
    ));
    let peak = mib(r.fresh.peak_rss_kib.max(r.full.peak_rss_kib));
    line(format!(
        "| cons-relay peak RSS (VmHWM): first drain and latency run / second drain | {:.1} / {:.1} MiB | target < 64 MiB: {} |",
        mib(r.fresh.peak_rss_kib),
        mib(r.full.peak_rss_kib),
        verdict(peak < TARGET_RSS_MIB)
    ));
    for (name, d) in [("first", &r.fresh), ("second", &r.full)] {
        line(format!(
            "| {name} drain: {:.2} s; CPU per entry: PostgreSQL / cons-relay / sink | {} / {} / {} µs | {} |",
            d.window.as_secs_f64(),
            per(account(Some(&d.cpu), 0), d.entries),
            per(account(Some(&d.cpu), 1), d.entries),
            per(account(Some(&d.cpu), 2), d.entries),
            busy(&d.cpu)
        ));
        line(format!(
            "| {name} drain: WAL per entry; HOT share of ticket / outbox updates | {} bytes; {} / {} | |",
            d.wal_bytes / d.entries.max(1),
            TableUpdates::hot_share(d.updates.tickets),
            TableUpdates::hot_share(d.updates.outbox)
        ));
        line(format!(
            "| {name} drain: not delivered / claimed more than once / extra posts | {} / {} / {} | |",
            d.not_delivered, d.redelivered, d.extra_posts
        ));
    }
    line(format!(
        "| latency run: missing / duplicate deliveries; generator lag p50 / p99 | {} / {}; {} / {} | {} |",
        r.latency.missing,
        r.latency.duplicates,
        ms(p(&r.latency.create_lag, 50.0)),
        ms(p(&r.latency.create_lag, 99.0)),
        busy(&r.latency.cpu)
    ));
    line(format!(
        "| CPU per row, raw limit (median run, {} rows): PostgreSQL / pgbench | {} / {} µs | {} |",
        thousands(raw_rows as f64),
        per(account(raw_cpu, 0), raw_rows),
        per(account(raw_cpu, 1), raw_rows),
        raw_cpu.map_or_else(|| "n/a".to_owned(), busy)
    ));
    line(format!(
        "| CPU per request, HTTP ceiling: sink and load generator | {} µs | {}; errors {} |",
        per(account(Some(&r.ceiling_cpu), 0), r.ceiling.ok),
        busy(&r.ceiling_cpu),
        r.ceiling.errors.describe()
    ));
    line(format!(
        "| writing {} delivered rows (with their tickets and attempts), vacuum, checkpoint | {:.0} s | |",
        thousands(args.delivered_rows as f64),
        r.full_fill.as_secs_f64()
    ));
    let outside = [&r.fresh.cpu, &r.full.cpu, &r.latency.cpu, &r.ceiling_cpu]
        .into_iter()
        .chain(r.raw_cpu.iter())
        .map(outside_share)
        .fold(0.0_f64, f64::max);
    line(format!(
        "| machine | {} | at most {:.0}% outside the processes measured in any phase |",
        r.run.load(),
        outside * 100.0
    ));
    line(format!(
        "| cons-relay exit after SIGTERM: first / second | {} / {} | |",
        r.fresh.exit, r.full.exit
    ));
    out
}
