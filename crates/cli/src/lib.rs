//! `consctl`, the operator CLI: apply migrations, run the whole system on an embedded
//! default (`dev`), and inspect the outbox. Listings take `--json` (one JSON document on
//! stdout, nothing else). Exit codes: 0 success, 1 failure, 2 bad usage (clap's).

mod dev;
mod outbox;

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
    /// Inspect outbox entries.
    #[command(subcommand)]
    Outbox(outbox::OutboxCommand),
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Dev(args) => dev::run(args).await,
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
