//! `cons-relay`: reads the configuration and runs the relay until SIGTERM or SIGINT.

use cons_relay::config::RelayConfig;
use cons_relay::effects::config::PeersConfig;
use cons_store::settings::Env;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let configs = Env::load().and_then(|env| {
        let relay = RelayConfig::from_env(&env)?;
        let peers = PeersConfig::from_env(&env, relay.chatwoot_timeout, relay.onec_timeout)?;
        Ok((relay, peers))
    });
    let (config, peers) = match configs {
        Ok(configs) => configs,
        Err(error) => {
            eprintln!("cons-relay: {error}");
            return ExitCode::FAILURE;
        }
    };
    cons_telemetry::init(&config.log);
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("stopping: no new claims; finishing deliveries in flight");
        let _ = stop.send(true);
    });
    match cons_relay::service::run(&config, &peers, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("cons-relay: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
