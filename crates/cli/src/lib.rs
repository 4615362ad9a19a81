//! `consctl`, the operator CLI: apply migrations, run the whole system on an embedded
//! default (`dev`), serve the peer simulators on their own (`sim`), and inspect the outbox. Listings take `--json` (one JSON document on
//! stdout, nothing else). Exit codes: 0 success, 1 failure, 2 bad usage (clap's).

mod dev;
mod outbox;
mod sim;
mod ticket;

use anyhow::Context;
use clap::{Parser, Subcommand};
use cons_store::pool::PoolSettings;
use cons_store::settings::{DatabaseConfig, Env};

#[derive(Debug, Parser)]
#[command(
    name = "consctl",
    version,
    about = "Operate the consultation middleware"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply pending migrations (a no-op when there are none).
    Migrate,
    /// Run the whole system on an embedded default: a private PostgreSQL and the API.
    Dev(dev::DevArgs),
    /// Serve the Chatwoot and 1C simulators until stopped (for trying a deployment).
    Sim(sim::SimArgs),
    /// Inspect and repair outbox entries.
    #[command(subcommand)]
    Outbox(outbox::OutboxCommand),
    /// Inspect a ticket.
    #[command(subcommand)]
    Ticket(ticket::TicketCommand),
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Dev(args) => dev::run(args).await,
        Command::Sim(args) => sim::run(args).await,
        Command::Migrate => {
            let database = database_config()?;
            let applied = cons_store::migrate::run_pending(&database.url)
                .await
                .context("migrate")?;
            if applied.is_empty() {
                println!("nothing to migrate: the database is up to date");
            } else {
                println!(
                    "applied {} migration(s): {}",
                    applied.len(),
                    applied.join(", ")
                );
            }
            Ok(())
        }
        Command::Outbox(command) => outbox::run(command, &database_config()?).await,
        Command::Ticket(command) => ticket::run(command, &database_config()?).await,
    }
}

/// Asks on the terminal; anything but y/yes is no. Without a terminal (a script) the
/// answer is no: scripts pass `--yes`.
fn confirm(question: &str) -> anyhow::Result<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Ok(false);
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim().to_lowercase().as_str(), "y" | "yes"))
}

/// A progress bar on a terminal, nothing otherwise (logs and pipes stay clean).
fn progress(length: u64, visible: bool) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if visible && std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(length)
    } else {
        indicatif::ProgressBar::hidden()
    }
}

fn database_config() -> anyhow::Result<DatabaseConfig> {
    let env = Env::load()?;
    let settings = PoolSettings {
        max_size: 2,
        ..PoolSettings::default()
    };
    Ok(DatabaseConfig::from_env(&env, settings)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
