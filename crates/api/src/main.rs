//! `cons-api`: reads the configuration, checks migrations and serves the HTTP API.

use cons_api::config::ApiConfig;
use cons_store::settings::Env;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Env::load().and_then(|env| ApiConfig::from_env(&env)) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("cons-api: {error}");
            return ExitCode::FAILURE;
        }
    };
    cons_telemetry::init(&config.log);
    let result = async {
        cons_api::build(&config)
            .await?
            .server
            .await
            .map_err(anyhow::Error::from)
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("cons-api: {error:#}");
            ExitCode::FAILURE
        }
    }
}
