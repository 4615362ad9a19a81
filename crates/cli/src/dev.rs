//! `consctl dev`: the whole system on an embedded default. With no configuration it starts
//! a private PostgreSQL cluster from the installed server binaries (also as root), applies
//! the migrations and serves the API on 127.0.0.1:7070; `DATABASE_URL` in the environment
//! replaces the private cluster. Ctrl-C stops everything and removes the cluster.

use anyhow::Context;
use clap::Args;
use cons_api::config::ApiConfig;
use cons_store::settings::Env;
use cons_testdb::{Cluster, ClusterOptions};

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Address of the API.
    #[arg(long, default_value = "127.0.0.1:7070")]
    bind: std::net::SocketAddr,
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let env = Env::load()?;
    let mut log = cons_telemetry::LogConfig::from_env(&env)?;
    if env.get("RUST_LOG").is_none() {
        log.filter = "info,actix_server=warn".into();
    }
    cons_telemetry::init(&log);

    // Kept alive until the end of this function: dropping it stops PostgreSQL.
    let mut cluster = None;
    let database_url = match env.get("DATABASE_URL") {
        Some(url) => url,
        None => {
            println!("starting a private PostgreSQL cluster…");
            let started = tokio::task::spawn_blocking(|| Cluster::start(ClusterOptions::default()))
                .await?
                .context("could not start PostgreSQL (are the server binaries installed?)")?;
            let url = started.url("postgres");
            cluster = Some(started);
            url
        }
    };
    let applied = cons_store::migrate::run_pending(&database_url)
        .await
        .context("migrate")?;
    tracing::info!(applied = applied.len(), "migrations applied");

    let token = env.get("SERVICE_TOKENS").is_none().then(random_secret);
    let mut pairs = vec![
        ("DATABASE_URL", database_url.clone()),
        ("API_BIND", args.bind.to_string()),
    ];
    if let Some(token) = &token {
        pairs.push(("SERVICE_TOKENS", format!("dev:{token}")));
    }
    for inherited in [
        "SERVICE_TOKENS",
        "TICKET_MAX_SCHEDULE_DAYS",
        "API_WORKERS",
        "RUST_LOG",
        "LOG_FORMAT",
    ] {
        if let Some(value) = env.get(inherited) {
            pairs.push((inherited, value));
        }
    }
    let api_env = Env::from_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())))?;
    let api = cons_api::build(&ApiConfig::from_env(&api_env)?).await?;

    let base = format!("http://{}", args.bind);
    let bearer = token
        .as_deref()
        .unwrap_or("<one of your SERVICE_TOKENS secrets>");
    println!(
        r#"
The consultation middleware is running.

  API          {base}/api/health
  Swagger UI   {base}/docs/
  metrics      {base}/metrics
  database     {database_url}

Create a ticket:

curl -sS -X POST {base}/api/tickets/create \
  -H 'Authorization: Bearer {bearer}' \
  -H 'Content-Type: application/json' \
  -H "Idempotency-Key: demo-$(date +%s)" \
  -d '{{"client": {{"name": "Dilnoza Karimova", "phone_number": "+998901234567", "email": "d.karimova@example.uz", "org_inn": "301234567"}}, "ticket": {{"consultation_type": "accounting", "comment": "Как закрыть месяц в 1С:Бухгалтерии?", "lang": "ru"}}, "source": "site"}}'

Watch its outbox entries (one per destination) wait for the relay:

DATABASE_URL='{database_url}' consctl outbox list

Ctrl-C stops everything."#
    );
    api.server.await.context("the API server failed")?;
    println!("stopping…");
    drop(cluster);
    Ok(())
}

/// A fresh random secret for the dev service token.
fn random_secret() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
