//! The relay as a service: check migrations, connect, then run the delivery loops, the
//! inbound loops (webhook inbox, 1C poll, reconciliation), the NOTIFY listener, the
//! gauges and the metrics endpoint until shutdown. `cons-relay` and
//! `consctl dev` both start it from here.

use crate::config::RelayConfig;
use crate::deliver::Deliver;
use crate::effects::config::PeersConfig;
use crate::worker::Relay;
use anyhow::Context;
use cons_store::Pool;
use cons_store::wake::Channel;
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
    run_with(config, |pool| peers.connect(pool), Some(peers), shutdown).await
}

/// `run` with the deliverer `connect` makes (the benchmark's sink instead of the peers),
/// and the inbound loops only when there are `inbound` peers to read from.
pub async fn run_with<D: Deliver>(
    config: &RelayConfig,
    connect: impl FnOnce(Pool) -> anyhow::Result<D>,
    inbound: Option<&PeersConfig>,
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
    let inbox_wake = Arc::new(tokio::sync::Notify::new());
    tokio::spawn(crate::listener::listen(
        config.database.url.clone(),
        vec![
            (Channel::Outbox, relay.waker()),
            (Channel::Inbox, inbox_wake.clone()),
        ],
        shutdown.clone(),
    ));
    if let Some(peers) = inbound {
        spawn_inbound(&pool, config, peers, inbox_wake, &shutdown)?;
    }
    tokio::spawn(crate::observe::refresh_gauges(
        pool.clone(),
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

/// The inbound loops: the webhook inbox, the 1C poll and reconciliation.
fn spawn_inbound(
    pool: &cons_store::Pool,
    config: &RelayConfig,
    peers: &PeersConfig,
    inbox_wake: Arc<tokio::sync::Notify>,
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let settings = config.inbound.clone();
    let chatwoot = cons_chatwoot::ChatwootClient::new(peers.chatwoot.clone())?;
    let onec = cons_onec::OnecClient::new(peers.onec.clone())?;
    tokio::spawn(crate::inbound::inbox::run(
        pool.clone(),
        inbox_wake,
        settings.inbox_poll,
        shutdown.clone(),
    ));
    tokio::spawn(crate::inbound::poll::run(
        pool.clone(),
        onec.clone(),
        settings.onec_poll,
        shutdown.clone(),
    ));
    let reconciler = crate::inbound::reconcile::Reconciler {
        pool: pool.clone(),
        chatwoot,
        onec,
        settings,
    };
    tokio::spawn(reconciler.run(shutdown.clone()));
    Ok(())
}
