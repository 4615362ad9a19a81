//! The relay as a service: check migrations, connect, then run the loops, the NOTIFY
//! listener, the gauges and the metrics endpoint until shutdown. `cons-relay` and
//! `consctl dev` both start it from here.

use crate::config::RelayConfig;
use crate::deliver::Deliver;
use crate::effects::config::PeersConfig;
use crate::worker::Relay;
use anyhow::Context;
use cons_store::Pool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Runs until `shutdown` turns true, then lets deliveries in flight finish for up to
/// `config.shutdown_grace` (anything unfinished is taken again when its lease expires).
pub async fn run(
    config: &RelayConfig,
    peers: &PeersConfig,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    run_with(config, |pool| peers.connect(pool), shutdown).await
}

/// `run` with the deliverer `connect` makes (the benchmark's sink instead of the peers).
pub async fn run_with<D: Deliver>(
    config: &RelayConfig,
    connect: impl FnOnce(Pool) -> anyhow::Result<D>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    cons_store::migrate::ensure_current(&config.database.url)
        .await
        .context("cannot start")?;
    let pool = cons_store::pool::build(&config.database.url, &config.database.pool)?;
    let relay = Arc::new(Relay::new(
        pool.clone(),
        config.relay.clone(),
        connect(pool.clone())?,
    ));

    let metrics = crate::observe::serve(config.metrics_bind)
        .with_context(|| format!("could not bind {}", config.metrics_bind))?;
    let metrics_handle = metrics.handle();
    tokio::spawn(metrics);
    tokio::spawn(crate::listener::listen(
        config.database.url.clone(),
        relay.waker(),
        shutdown.clone(),
    ));
    tokio::spawn(crate::observe::refresh_gauges(
        pool,
        Duration::from_secs(5),
        shutdown.clone(),
    ));
    tracing::info!(owner = %config.relay.owner, metrics = %config.metrics_bind, "cons-relay running");

    let mut stop = shutdown.clone();
    let loops = tokio::spawn(relay.run(shutdown));
    // Wait for the signal, then give the loops their grace period.
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            break;
        }
    }
    let finished = tokio::time::timeout(config.shutdown_grace, loops).await;
    metrics_handle.stop(true).await;
    match finished {
        Ok(Ok(result)) => result.map_err(Into::into),
        Ok(Err(panic)) => Err(anyhow::anyhow!("the relay loops panicked: {panic}")),
        Err(_) => {
            tracing::warn!(
                "deliveries still in flight after the grace period; their leases will expire"
            );
            Ok(())
        }
    }
}
