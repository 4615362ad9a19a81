//! `consctl outbox …`: list entries and show one with its payload and attempts.

use anyhow::Context;
use clap::{Args, Subcommand};
use cons_domain::{OutboxStatus, Target};
use cons_store::outbox::{self, ListFilter, OutboxEntry};
use cons_store::settings::DatabaseConfig;
use std::time::Duration;
use uuid::Uuid;

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Outbox entries, oldest first.
    List(ListArgs),
    /// One entry: payload, and every attempt with its time and error.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Put dead entries back to pending with a fresh attempt budget.
    Replay(ReplayArgs),
    /// Counts per target and status, and the age of the oldest undelivered entry.
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// Delete delivered entries past retention.
    Purge {
        /// e.g. 7d, 24h, 30m
        #[arg(long, value_parser = parse_duration)]
        delivered_older_than: Duration,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["ids", "status"])))]
pub struct ReplayArgs {
    /// Entries by id.
    ids: Vec<i64>,
    /// Every entry in this status (only `dead` can be replayed).
    #[arg(long, value_parser = parse_replayable)]
    status: Option<OutboxStatus>,
    #[arg(long, value_parser = parse_target, requires = "status")]
    target: Option<Target>,
    #[arg(long, requires = "status")]
    ticket: Option<Uuid>,
    /// Only entries created within this period, e.g. 24h.
    #[arg(long, value_parser = parse_duration, requires = "status")]
    since: Option<Duration>,
    /// Show what would be replayed, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Do not ask for confirmation before a bulk replay.
    #[arg(long)]
    yes: bool,
    #[arg(long)]
    json: bool,
}

fn parse_replayable(raw: &str) -> Result<OutboxStatus, String> {
    match OutboxStatus::parse(raw) {
        Ok(OutboxStatus::Dead) => Ok(OutboxStatus::Dead),
        _ => Err("only dead entries can be replayed".into()),
    }
}

/// `90s`, `30m`, `24h`, `7d`.
fn parse_duration(raw: &str) -> Result<Duration, String> {
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("expected a duration like 24h or 7d, got {raw:?}"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "expected a duration like 90s, 30m, 24h or 7d, got {raw:?}"
            ));
        }
    };
    Ok(Duration::from_secs(number.saturating_mul(seconds)))
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long, value_parser = parse_status)]
    status: Option<OutboxStatus>,
    #[arg(long, value_parser = parse_target)]
    target: Option<Target>,
    /// Only the entries of this ticket.
    #[arg(long)]
    ticket: Option<Uuid>,
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=100_000))]
    limit: i64,
    #[arg(long)]
    json: bool,
}

fn parse_status(raw: &str) -> Result<OutboxStatus, String> {
    OutboxStatus::parse(raw).map_err(|e| e.to_string())
}

fn parse_target(raw: &str) -> Result<Target, String> {
    Target::parse(raw).map_err(|e| e.to_string())
}

pub async fn run(command: OutboxCommand, database: &DatabaseConfig) -> anyhow::Result<()> {
    let pool = cons_store::pool::build(&database.url, &database.pool)?;
    let mut connection = pool
        .get()
        .await
        .context("could not connect to the database")?;
    match command {
        OutboxCommand::List(args) => {
            let filter = ListFilter {
                status: args.status,
                target: args.target,
                cons_id: args.ticket,
                limit: args.limit,
            };
            let entries = outbox::list(&mut connection, &filter).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&entries)?);
            } else {
                print_table(&entries);
            }
        }
        OutboxCommand::Show { id, json } => {
            let detail = outbox::show(&mut connection, id)
                .await?
                .with_context(|| format!("no outbox entry {id}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&detail)?);
            } else {
                print_table(std::slice::from_ref(&detail.entry));
                println!(
                    "\npayload: {}",
                    serde_json::to_string_pretty(&detail.payload)?
                );
                if detail.attempt_log.is_empty() {
                    println!("\nno attempts yet");
                }
                for attempt in &detail.attempt_log {
                    println!(
                        "\nattempt {} at {}: {}{}{}",
                        attempt.attempt,
                        attempt.started_at.to_rfc3339(),
                        attempt.outcome,
                        attempt
                            .http_status
                            .map(|s| format!(" (HTTP {s})"))
                            .unwrap_or_default(),
                        attempt
                            .error
                            .as_deref()
                            .map(|e| format!(": {e}"))
                            .unwrap_or_default(),
                    );
                }
            }
        }
        OutboxCommand::Replay(args) => replay(&mut connection, args).await?,
        OutboxCommand::Stats { json } => {
            let live = outbox::live_counts(&mut connection).await?;
            let delivered = outbox::delivered_count(&mut connection).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"live": live, "delivered": delivered})
                    )?
                );
            } else {
                println!(
                    "{:<8}  {:<9}  {:>8}  OLDEST (s)",
                    "TARGET", "STATUS", "COUNT"
                );
                for row in &live {
                    println!(
                        "{:<8}  {:<9}  {:>8}  {:.1}",
                        row.target, row.status, row.count, row.oldest_age_seconds
                    );
                }
                println!("{:<8}  {:<9}  {:>8}", "all", "delivered", delivered);
            }
        }
        OutboxCommand::Purge {
            delivered_older_than,
            yes,
            json,
        } => {
            if !yes
                && !crate::confirm(&format!(
                    "delete delivered entries older than {delivered_older_than:?}?"
                ))?
            {
                anyhow::bail!("not confirmed: nothing deleted");
            }
            let purged = outbox::purge_delivered(&mut connection, delivered_older_than).await?;
            if json {
                println!("{}", serde_json::json!({"purged": purged}));
            } else {
                println!("purged {purged} delivered entries");
            }
        }
    }
    Ok(())
}

async fn replay(
    connection: &mut cons_store::pool::PooledConnection,
    args: ReplayArgs,
) -> anyhow::Result<()> {
    let bulk = args.status.is_some();
    let ids = if bulk {
        let filter = outbox::DeadFilter {
            target: args.target,
            cons_id: args.ticket,
            since: args.since,
        };
        outbox::dead_ids(connection, &filter).await?
    } else {
        args.ids.clone()
    };
    if args.dry_run {
        if args.json {
            println!("{}", serde_json::json!({"would_replay": ids}));
        } else {
            println!("would replay {} entries: {ids:?}", ids.len());
        }
        return Ok(());
    }
    if bulk
        && !ids.is_empty()
        && !args.yes
        && !crate::confirm(&format!("replay {} dead entries?", ids.len()))?
    {
        anyhow::bail!("not confirmed: nothing replayed");
    }
    let progress = crate::progress(ids.len() as u64, bulk && !args.json);
    let mut moved = Vec::new();
    for chunk in ids.chunks(500) {
        moved.extend(outbox::replay(connection, chunk).await?);
        progress.inc(chunk.len() as u64);
    }
    progress.finish_and_clear();
    let skipped: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|id| !moved.contains(id))
        .collect();
    if args.json {
        println!(
            "{}",
            serde_json::json!({"replayed": moved, "skipped": skipped})
        );
    } else {
        println!("replayed {} entries", moved.len());
        if !skipped.is_empty() {
            println!(
                "skipped {} that were not dead (already pending, in flight or delivered): {skipped:?}",
                skipped.len()
            );
        }
    }
    Ok(())
}

pub fn print_table(entries: &[OutboxEntry]) {
    println!(
        "{:>8}  {:<8}  {:<14}  {:<9}  {:>8}  {:<36}  {:<25}  LAST ERROR",
        "ID", "TARGET", "KIND", "STATUS", "ATTEMPTS", "TICKET", "NEXT ATTEMPT"
    );
    for e in entries {
        println!(
            "{:>8}  {:<8}  {:<14}  {:<9}  {:>8}  {:<36}  {:<25}  {}",
            e.id,
            e.target,
            e.kind,
            e.status,
            e.attempts,
            e.cons_id,
            e.next_attempt_at.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            e.last_error.as_deref().unwrap_or("-"),
        );
    }
    if entries.is_empty() {
        println!("(no entries)");
    }
}
