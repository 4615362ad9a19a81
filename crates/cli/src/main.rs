//! `consctl`: the operator CLI. Parses arguments and hands over to the library.

use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cons_cli::Cli::parse();
    match cons_cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("consctl: {error:#}");
            ExitCode::FAILURE
        }
    }
}
