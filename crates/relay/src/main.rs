//! `cons-relay`: reads the configuration and runs the relay until SIGTERM or SIGINT.

use cons_relay::config::RelayConfig;
use cons_relay::effects::config::PeersConfig;
use cons_store::settings::Env;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let configs = Env::load().and_then(|env| {
        let relay = RelayConfig::from_env(&env)?;
        // The benchmark mode has no peers to configure.
        let peers = match relay.bench_sink_url {
            Some(_) => None,
            None => Some(PeersConfig::from_env(
                &env,
                relay.chatwoot_timeout,
                relay.onec_timeout,
            )?),
        };
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
    let ran = match (&peers, &config.bench_sink_url) {
        (Some(peers), _) => cons_relay::service::run(&config, peers, shutdown).await,
        (None, url) => {
            let url = url.clone().unwrap_or_default();
            tracing::warn!(
                sink = %url,
                "BENCHMARK MODE (RELAY_BENCH_SINK_URL): every entry is posted to the sink and \
                 marked delivered; nothing reaches Chatwoot or 1C"
            );
            let timeout = config.chatwoot_timeout;
            cons_relay::service::run_with(
                &config,
                |_| cons_relay::sink::HttpSink::new(&url, timeout),
                None,
                shutdown,
            )
            .await
        }
    };
    match ran {
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
