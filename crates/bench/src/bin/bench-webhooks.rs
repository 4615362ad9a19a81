//! `bench-webhooks`: the Chatwoot webhook receiver of the real `cons-api` (signature check
//! over the raw bytes, then the durable inbox insert) at a steady 500 deliveries/s, and its
//! maximum rate, beside the raw limit of the same insert measured by pgbench in the same
//! run on the same table. Prints one report; `docs/BENCHMARKS.md` records it.

use anyhow::Context;
use clap::Parser;
use cons_bench::http::request_bytes;
use cons_bench::load::{self, Target};
use cons_bench::machine::{self, Account, CpuMeter, Machine};
use cons_bench::pg::{AnchorCluster, Length};
use cons_bench::report::{busy, command_line, outside_share, progress, shared_dir, verdict};
use cons_bench::service::{self, Service};
use cons_bench::stats::{ms, thousands};
use cons_sim::webhooks::sign;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_OVERRUN: Duration = Duration::from_secs(5);
/// The target: p99 under 20 ms at 500 deliveries/s.
const TARGET_P99_MS: f64 = 20.0;

#[derive(Debug, Parser)]
#[command(about = "Webhook intake of cons-api vs the raw insert limit, measured in one run")]
struct Args {
    /// Deliveries per second of the steady run.
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    /// Length of the steady run and of the maximum-rate run, in seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Connections (Chatwoot's Sidekiq sends from several workers at once).
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// `../shared` (found beside the working directory or the binary when not given).
    #[arg(long)]
    shared_dir: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let shared = shared_dir(
        args.shared_dir.as_deref(),
        &["fixtures/chatwoot/webhooks/conversation_status_changed.json"],
    )?;
    let fixture = std::fs::read_to_string(
        shared.join("fixtures/chatwoot/webhooks/conversation_status_changed.json"),
    )?;
    let api_binary = service::sibling_binary("cons-api")?;
    if cfg!(debug_assertions) {
        progress("warning: this is a debug build; numbers are only meaningful from --release");
    }
    let machine = Machine::describe();

    progress("starting a durable throwaway PostgreSQL cluster");
    let anchor = AnchorCluster::start()?;
    let (pg, cluster) = (&anchor.pg, &anchor.cluster);
    let database_url = anchor.create_migrated("cons")?;

    // Every delivery distinct (the receiver de-duplicates by content), each as big as a
    // real one. Signed now: the whole run stays well inside the 5-minute window.
    let total = (args.rate as usize + 8_000) * args.seconds as usize;
    let bodies: Vec<String> = (0..total)
        .map(|i| fixture.replacen("\"event\"", &format!("\"bench_seq\":{i},\"event\""), 1))
        .collect();

    // The raw limit: the handler's own insert, by pgbench, into the same table.
    let script = anchor.work_dir()?.join("inbox_insert.sql");
    let literal = bodies[0].replace('\'', "''").replace('\n', " ");
    std::fs::write(
        &script,
        format!(
            "\\set k random(1, 1000000000000)\n\
             INSERT INTO log.webhook_inbox (source, event, dedup_key, delivery_id, body) \
             VALUES ('chatwoot', 'conversation_status_changed', 'raw-' || :k || '-' || :client_id, NULL, '{literal}'::jsonb) \
             ON CONFLICT (source, dedup_key) DO NOTHING;\n"
        ),
    )?;
    let meter_pg = CpuMeter::new(vec![
        Account::WithChildren(cluster.pid()),
        Account::WaitedChildren(std::process::id()),
    ]);
    progress(&format!(
        "raw limit: pgbench -c {} -T {}",
        args.clients, args.seconds
    ));
    let before = meter_pg.snapshot()?;
    let raw = pg.pgbench(
        "cons",
        args.clients,
        args.clients.min(2),
        Length::Seconds(args.seconds),
        &[],
        &script,
    )?;
    let raw_cpu = meter_pg.since(&before)?;
    pg.sql("cons", "TRUNCATE log.webhook_inbox; CHECKPOINT")?;

    let addr = service::free_loopback_addr()?;
    let secret = service::random_hex()?;
    let env = vec![
        ("DATABASE_URL", database_url),
        ("API_BIND", addr.to_string()),
        ("CHATWOOT_WEBHOOK_SECRET", secret.clone()),
        ("RUST_LOG", "warn".to_owned()),
    ];
    let work_dir = anchor.work_dir()?;
    progress(&format!("starting {} on {addr}", api_binary.display()));
    let mut api = Service::spawn(&api_binary, &env, &work_dir)?;
    api.wait_http_ok(addr, "/api/health/db", READY_TIMEOUT)?;
    let api_pid = api.check_running()?;

    let timestamp = chrono::Utc::now().timestamp().to_string();
    let requests: Vec<Vec<u8>> = bodies
        .iter()
        .map(|body| {
            let signature = sign(&secret, &timestamp, body.as_bytes());
            request_bytes(
                "POST",
                "/webhook/chatwoot",
                addr,
                &[
                    ("Content-Type", "application/json"),
                    ("X-Chatwoot-Timestamp", &timestamp),
                    ("X-Chatwoot-Signature", &signature),
                ],
                body.as_bytes(),
            )
        })
        .collect();
    drop(bodies);
    let next = AtomicUsize::new(0);
    let target = Target {
        addr,
        requests: &requests,
        next: &next,
        expected_status: 200,
    };
    let meter = CpuMeter::new(vec![
        Account::WithChildren(cluster.pid()),
        Account::Process(api_pid),
        Account::Process(std::process::id()),
    ]);

    progress("warm-up: 3 s");
    load::closed_loop(&target, args.clients, Duration::from_secs(3), 0)?;
    progress(&format!(
        "steady: {} deliveries/s for {} s",
        args.rate, args.seconds
    ));
    let before = meter.snapshot()?;
    let steady = load::open_loop(
        &target,
        args.clients,
        args.rate,
        Duration::from_secs(args.seconds),
        MAX_OVERRUN,
    )?;
    let steady_cpu = meter.since(&before)?;
    progress(&format!(
        "maximum rate: closed loop, {} connections, {} s",
        args.clients, args.seconds
    ));
    let before = meter.snapshot()?;
    let max = load::closed_loop(&target, args.clients, Duration::from_secs(args.seconds), 0)?;
    let max_cpu = meter.since(&before)?;
    api.check_running()?;
    let sent = next.load(std::sync::atomic::Ordering::Relaxed) as i64;
    let recorded: i64 = pg
        .sql("cons", "SELECT count(*) FROM log.webhook_inbox")?
        .parse()
        .context("unexpected inbox count")?;
    let peak_rss_kib = machine::peak_rss_kib(api_pid)?;
    api.stop()?;
    let postgres = anchor.description.clone();
    drop(anchor);

    let p50 = steady.latencies.percentile(50.0);
    let p99 = steady.latencies.percentile(99.0);
    let p99_ms = p99.map_or(f64::INFINITY, |p99| f64::from(p99) / 1000.0);
    println!("\n# bench-webhooks\n");
    println!("command: `{}`", command_line("bench-webhooks"));
    println!(
        "machine: {} × {}, {:.0} GiB, Linux {}; PostgreSQL: {postgres}",
        machine.cpus, machine.cpu_model, machine.memory_gib, machine.kernel
    );
    println!(
        "deliveries: `conversation_status_changed` fixture ({} bytes), each distinct, signed; {} connections\n",
        fixture.len(),
        args.clients
    );
    println!("| figure | value |");
    println!("| --- | --- |");
    println!(
        "| steady {} deliveries/s: answered | {} ok, errors {} |",
        args.rate,
        steady.ok,
        steady.errors.describe()
    );
    println!(
        "| steady: latency p50 / p99 / max (from the scheduled send, incl. the durable insert) | {} / {} / {} |",
        ms(p50),
        ms(p99),
        ms(steady.latencies.max())
    );
    println!(
        "| target p99 < {TARGET_P99_MS} ms | {} |",
        verdict(p99_ms < TARGET_P99_MS && steady.errors.total() == 0)
    );
    println!("| steady: CPU | {} |", busy(&steady_cpu));
    println!(
        "| maximum rate (closed loop) | {} deliveries/s, p99 {}, errors {} |",
        thousands(max.rate()),
        ms(max.latencies.percentile(99.0)),
        max.errors.describe()
    );
    println!(
        "| raw limit: the same insert by pgbench -c {} | {} inserts/s ({}) |",
        args.clients,
        thousands(raw.tps),
        busy(&raw_cpu)
    );
    println!(
        "| ratio maximum / raw limit | {:.2} |",
        max.rate() / raw.tps
    );
    println!("| maximum rate: CPU | {} |", busy(&max_cpu));
    println!(
        "| every answered delivery recorded | {} sent, {recorded} rows |",
        sent
    );
    println!(
        "| cons-api peak RSS | {:.1} MiB |",
        peak_rss_kib as f64 / 1024.0
    );
    println!(
        "| CPU used outside the measured processes (noise) | {:.0} % steady, {:.0} % maximum |",
        outside_share(&steady_cpu) * 100.0,
        outside_share(&max_cpu) * 100.0
    );
    Ok(())
}
