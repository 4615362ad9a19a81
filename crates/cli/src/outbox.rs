//! `consctl outbox …`: list entries and show one with its payload and attempts.

use anyhow::Context;
use clap::{Args, Subcommand};
use cons_domain::{OutboxStatus, Target};
use cons_store::outbox::{self, ListFilter, OutboxEntry};
use cons_store::settings::DatabaseConfig;
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
    }
    Ok(())
}

fn print_table(entries: &[OutboxEntry]) {
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
