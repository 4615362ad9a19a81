//! `consctl dev`: the whole system on an embedded default. With no configuration it starts
//! a private PostgreSQL cluster from the installed server binaries (also as root), applies
//! the migrations, starts the Chatwoot and 1C simulators, the relay and the API on
//! 127.0.0.1:7070. `DATABASE_URL`, `CHATWOOT_API_URL` or `ONEC_ODATA_URL` in the
//! environment replace the embedded part. Without `SESSION_SECRET` it makes a random one,
//! and without `TELEGRAM_BOT_TOKEN` a random local bot, so that client login works (it
//! prints a login with initData signed for that bot). Ctrl-C stops everything and removes
//! the cluster.

use anyhow::Context;
use clap::Args;
use cons_api::config::ApiConfig;
use cons_relay::config::RelayConfig;
use cons_relay::effects::config::PeersConfig;
use cons_sim::SimWebhook;
use cons_sim::chatwoot::{ChatwootSim, ChatwootSimConfig};
use cons_sim::onec::{OnecSim, OnecSimConfig};
use cons_store::settings::Env;
use cons_testdb::{Cluster, ClusterOptions};

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Address of the API.
    #[arg(long, default_value = "127.0.0.1:7070")]
    bind: std::net::SocketAddr,
    /// Address of the relay's /metrics and /health.
    #[arg(long, default_value = "127.0.0.1:9091")]
    relay_metrics: std::net::SocketAddr,
}

/// The base's keys the 1C simulator accepts (the customer's values, domain.md §1.7).
const ONEC_KEYS: [(&str, &str); 5] = [
    (
        "ONEC_COUNTERPARTY_FOLDER_KEY",
        "7ccd31ca-887b-11eb-938b-00e04cd03b68",
    ),
    (
        "ONEC_LANGUAGE_RU_KEY",
        "15d38cda-1812-11ef-b824-c67597d01fa8",
    ),
    (
        "ONEC_LANGUAGE_UZ_KEY",
        "15d38cdb-1812-11ef-b824-c67597d01fa8",
    ),
    (
        "ONEC_CONTACT_KIND_PHONE_KEY",
        "c07763c7-2ae8-4708-a608-7691be9d782b",
    ),
    (
        "ONEC_CONTACT_KIND_EMAIL_KEY",
        "f0dddb0f-1cac-49ab-ad37-f9480b0ef654",
    ),
];

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let env = Env::load()?;
    let mut log = cons_telemetry::LogConfig::from_env(&env)?;
    if env.get("RUST_LOG").is_none() {
        log.filter = "info,actix_server=warn".into();
    }
    cons_telemetry::init(&log);

    // Kept alive until the end of this function: dropping them stops PostgreSQL and the
    // simulators.
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

    // Everything the services read, with the embedded parts filled in.
    let mut pairs: Vec<(String, String)> = std::env::vars().collect();
    let mut set = |key: &str, value: String| pairs.push((key.to_owned(), value));
    set("DATABASE_URL", database_url.clone());
    set("API_BIND", args.bind.to_string());
    set("RELAY_METRICS_BIND", args.relay_metrics.to_string());
    let token = env
        .get("SERVICE_TOKENS")
        .is_none()
        .then(|| uuid::Uuid::new_v4().simple().to_string());
    if let Some(token) = &token {
        set("SERVICE_TOKENS", format!("dev:{token}"));
    }
    if env.get("SESSION_SECRET").is_none() {
        set(
            "SESSION_SECRET",
            format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            ),
        );
    }
    // A bot nobody else knows: its initData can only come from the login printed below.
    let dev_bot = env
        .get("TELEGRAM_BOT_TOKEN")
        .is_none()
        .then(|| format!("1:dev-{}", uuid::Uuid::new_v4().simple()));
    if let Some(bot) = &dev_bot {
        set("TELEGRAM_BOT_TOKEN", bot.clone());
    }
    let chatwoot_sim = match env.get("CHATWOOT_API_URL") {
        Some(_) => None,
        None => {
            let sim = ChatwootSim::start(ChatwootSimConfig::default())?;
            set("CHATWOOT_API_URL", sim.base_url().to_owned());
            set("CHATWOOT_API_TOKEN", "sim-chatwoot-token".into());
            set("CHATWOOT_ACCOUNT_ID", sim.account_id().to_string());
            set("CHATWOOT_INBOX_ID", sim.inbox_id().to_string());
            Some(sim)
        }
    };
    let onec_sim = match env.get("ONEC_ODATA_URL") {
        Some(_) => None,
        None => {
            let config = OnecSimConfig::default();
            let (user, password) = (config.user.clone(), config.password.clone());
            let sim = OnecSim::start(config)?;
            set("ONEC_ODATA_URL", sim.base_url().to_owned());
            set("ONEC_USER", user);
            set("ONEC_PASSWORD", password);
            for (key, value) in ONEC_KEYS {
                set(key, value.to_owned());
            }
            Some(sim)
        }
    };
    // The embedded simulators send their webhooks back to our API, signed with secrets
    // made for this run (like a real Chatwoot API inbox and the 1C extension).
    let api_url = format!(
        "http://{}",
        if args.bind.ip().is_unspecified() {
            std::net::SocketAddr::from(([127, 0, 0, 1], args.bind.port()))
        } else {
            args.bind
        }
    );
    let webhook_secret = |variable: &str, pairs: &mut Vec<(String, String)>| {
        env.get(variable).unwrap_or_else(|| {
            let secret = uuid::Uuid::new_v4().simple().to_string();
            pairs.push((variable.to_owned(), secret.clone()));
            secret
        })
    };
    if let Some(sim) = &chatwoot_sim {
        let secret = webhook_secret("CHATWOOT_WEBHOOK_SECRET", &mut pairs);
        sim.set_webhook(Some(SimWebhook {
            url: format!("{api_url}/webhook/chatwoot"),
            secret: Some(secret),
        }));
    }
    if let Some(sim) = &onec_sim {
        let secret = webhook_secret("ONEC_WEBHOOK_SECRET", &mut pairs);
        sim.set_webhook(Some(SimWebhook {
            url: format!("{api_url}/webhook/1c_cl"),
            secret: Some(secret),
        }));
        if env.get("ONEC_POLL_INTERVAL_MS").is_none() {
            pairs.push(("ONEC_POLL_INTERVAL_MS".into(), "5000".into()));
        }
    }
    // Later pairs win over the inherited environment.
    let services_env = Env::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;

    let relay_config = RelayConfig::from_env(&services_env)?;
    let peers = PeersConfig::from_env(
        &services_env,
        relay_config.chatwoot_timeout,
        relay_config.onec_timeout,
    )?;
    let (stop_relay, relay_shutdown) = tokio::sync::watch::channel(false);
    let relay = tokio::spawn(async move {
        cons_relay::service::run(&relay_config, &peers, relay_shutdown).await
    });
    let api = cons_api::build(&ApiConfig::from_env(&services_env)?).await?;

    let base = format!("http://{}", args.bind);
    let bearer = token
        .as_deref()
        .unwrap_or("<one of your SERVICE_TOKENS secrets>");
    let login_text = match &dev_bot {
        Some(bot) => format!(
            "\nLog in as a client (Telegram Mini App initData, signed for the local dev bot):\n\n\
             curl -sS -X POST {base}/api/auth/login -H 'Content-Type: application/json' \\\n  \
             -d '{}'\n\n\
             Its access_token is a Bearer for the ticket routes, acting for that client only \
             (create without a \"client\" block).\n",
            serde_json::json!({"provider": "telegram", "init_data": dev_init_data(bot)})
        ),
        None => String::new(),
    };
    let mut peers_text = String::new();
    if let Some(sim) = &chatwoot_sim {
        peers_text.push_str(&format!(
            "  Chatwoot sim  {0}  (token sim-chatwoot-token; e.g. curl -H 'api_access_token: sim-chatwoot-token' {0}/api/v1/accounts/{1}/conversations/1)\n\
             \x20               act as an agent, and watch the ticket follow through the webhook:\n\
             \x20               curl -X POST -H 'api_access_token: sim-chatwoot-token' -H 'Content-Type: application/json' \\\n\
             \x20                 -d '{{\"status\":\"pending\"}}' {0}/api/v1/accounts/{1}/conversations/1/toggle_status\n",
            sim.base_url(),
            sim.account_id()
        ));
    }
    if let Some(sim) = &onec_sim {
        peers_text.push_str(&format!(
            "  1C sim        {0}  (odata / odata-password; e.g. curl -u odata:odata-password '{0}Document_%D0%A2%D0%B5%D0%BB%D0%B5%D1%84%D0%BE%D0%BD%D0%BD%D1%8B%D0%B9%D0%97%D0%B2%D0%BE%D0%BD%D0%BE%D0%BA?$format=json')\n",
            sim.base_url()
        ));
    }
    println!(
        r#"
The consultation middleware is running.

  API           {base}/api/health
  Swagger UI    {base}/docs/
  API metrics   {base}/metrics
  relay         http://{metrics}/metrics
  database      {database_url}
{peers_text}
Create a ticket:

curl -sS -X POST {base}/api/tickets/create \
  -H 'Authorization: Bearer {bearer}' \
  -H 'Content-Type: application/json' \
  -H "Idempotency-Key: demo-$(date +%s)" \
  -d '{{"client": {{"name": "Dilnoza Karimova", "phone_number": "+998901234567", "email": "d.karimova@example.uz", "org_inn": "301234567", "code_abonent": "10240"}}, "ticket": {{"consultation_type": "accounting", "comment": "Как закрыть месяц в 1С:Бухгалтерии?", "lang": "ru"}}, "source": "site"}}'

Watch it arrive (the Chatwoot conversation id and the 1C number appear within a moment):

curl -sS {base}/api/tickets/<cons_id> -H 'Authorization: Bearer {bearer}'
DATABASE_URL='{database_url}' consctl ticket show <cons_id>
{login_text}
Ctrl-C stops everything."#,
        metrics = args.relay_metrics,
    );
    // The API stops on Ctrl-C (actix handles the signal); then the relay, then the rest.
    api.server.await.context("the API server failed")?;
    println!("stopping…");
    let _ = stop_relay.send(true);
    match relay.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => eprintln!("relay: {error:#}"),
        Err(error) => eprintln!("relay: {error}"),
    }
    drop((chatwoot_sim, onec_sim, cluster));
    Ok(())
}

/// initData of a dev Telegram user, signed for the dev bot and valid for a day.
fn dev_init_data(bot_token: &str) -> String {
    let bot = cons_api::access::telegram::TelegramLogin::new(bot_token, std::time::Duration::ZERO);
    let auth_date = chrono::Utc::now().timestamp().to_string();
    let user = serde_json::json!({"id": 100_000_001, "first_name": "Dev", "last_name": "Client"});
    bot.sign(&[("auth_date", &auth_date), ("user", &user.to_string())])
}
