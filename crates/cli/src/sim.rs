//! `consctl sim`: the built-in Chatwoot and 1C simulators as a standalone process, so a
//! deployment (the compose `sim` profile) can be tried end to end with no external
//! accounts. Their state lives in memory and is gone when the process stops.

use anyhow::Context;
use clap::Args;
use cons_sim::SimWebhook;
use cons_sim::chatwoot::{ChatwootSim, ChatwootSimConfig};
use cons_sim::onec::{OnecSim, OnecSimConfig};
use cons_store::settings::Env;
use std::net::SocketAddr;

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Address of the Chatwoot simulator (application API, account 1, inbox 3).
    #[arg(long, default_value = "127.0.0.1:3100")]
    chatwoot_bind: SocketAddr,
    /// Address of the 1C:ЦЛ simulator (standard OData under /int/rbd_sl_copy/).
    #[arg(long, default_value = "127.0.0.1:3200")]
    onec_bind: SocketAddr,
    /// Where the Chatwoot simulator sends its webhooks (e.g. http://api:7070/webhook/chatwoot),
    /// signed with CHATWOOT_WEBHOOK_SECRET when it is set.
    #[arg(long)]
    chatwoot_webhook_url: Option<String>,
    /// Where the 1C simulator pushes its events (e.g. http://api:7070/webhook/1c_cl), signed
    /// with ONEC_WEBHOOK_SECRET when it is set.
    #[arg(long)]
    onec_webhook_url: Option<String>,
}

pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    let chatwoot_config = ChatwootSimConfig {
        bind: args.chatwoot_bind.to_string(),
        ..ChatwootSimConfig::default()
    };
    let onec_config = OnecSimConfig {
        bind: args.onec_bind.to_string(),
        ..OnecSimConfig::default()
    };
    let (token, account, inbox) = (
        chatwoot_config.api_token.clone(),
        chatwoot_config.account_id,
        chatwoot_config.inbox_id,
    );
    let (user, password) = (onec_config.user.clone(), onec_config.password.clone());
    let chatwoot = ChatwootSim::start(chatwoot_config)
        .with_context(|| format!("could not bind {}", args.chatwoot_bind))?;
    let onec = OnecSim::start(onec_config)
        .with_context(|| format!("could not bind {}", args.onec_bind))?;
    let env = Env::load()?;
    if let Some(url) = args.chatwoot_webhook_url {
        let secret = env.get("CHATWOOT_WEBHOOK_SECRET");
        chatwoot.set_webhook(Some(SimWebhook { url, secret }));
    }
    if let Some(url) = args.onec_webhook_url {
        let secret = env.get("ONEC_WEBHOOK_SECRET");
        onec.set_webhook(Some(SimWebhook { url, secret }));
    }
    // The simulators report 127.0.0.1 URLs; the path is what the relay needs, the host is
    // whatever name reaches this process (a compose service name, say).
    let onec_path = onec
        .base_url()
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|slash| &rest[slash..]))
        .unwrap_or("/");
    println!(
        "Chatwoot simulator on {chatwoot_bind}: CHATWOOT_API_URL=http://<host>:{chatwoot_port} \
         CHATWOOT_API_TOKEN={token} CHATWOOT_ACCOUNT_ID={account} CHATWOOT_INBOX_ID={inbox}\n\
         1C simulator on {onec_bind}: ONEC_ODATA_URL=http://<host>:{onec_port}{onec_path} \
         ONEC_USER={user} ONEC_PASSWORD={password}\n\
         State is kept in memory only. SIGTERM or Ctrl-C stops both.",
        chatwoot_bind = args.chatwoot_bind,
        chatwoot_port = chatwoot.port(),
        onec_bind = args.onec_bind,
        onec_port = onec.port(),
    );
    wait_for_stop().await?;
    chatwoot.stop().await;
    onec.stop().await;
    Ok(())
}

/// SIGTERM (a container stopping) or SIGINT. As PID 1 in a container the process has no
/// default handler for SIGTERM, so it must listen for it itself.
async fn wait_for_stop() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("listen for SIGTERM")?;
    tokio::select! {
        _ = terminate.recv() => {}
        interrupted = tokio::signal::ctrl_c() => interrupted.context("listen for SIGINT")?,
    }
    Ok(())
}
