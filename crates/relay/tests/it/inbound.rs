//! Inbound sync end to end: the simulators send their real, signed webhooks to the real
//! API, the relay applies them from the inbox, polls 1C and reconciles; agents and 1C
//! operators are played by the test. Every scenario ends by checking both peers and the
//! database agree and that nothing bounced.

use crate::column;
use crate::peers::{World, accounting_ticket, create, drain_all, world};
use actix_web::HttpServer;
use cons_api::WebhookAuth;
use cons_api::auth::ServiceTokens;
use cons_api::signature::WebhookSecrets;
use cons_api::state::AppState;
use cons_domain::{ConsultationType, IntakeLimits, NewTicket};
use cons_relay::inbound::reconcile::Reconciler;
use cons_relay::inbound::{InboundSettings, inbox, poll};
use cons_sim::chatwoot::SimStatus;
use cons_sim::{SimWebhook, SimWebhooks, WebhookChaos};
use std::net::TcpListener;
use std::time::Duration;
use uuid::Uuid;

const CHATWOOT_SECRET: &str = "chatwoot-webhook-secret-0123";
const ONEC_SECRET: &str = "onec-webhook-secret-0123456";

/// Serves the production API over the world's database and points both simulators'
/// webhooks at it.
fn receive_webhooks(world: &World) {
    let state = AppState::start(
        world.db.pool().clone(),
        ServiceTokens::default(),
        IntakeLimits::default(),
        WebhookAuth {
            chatwoot: WebhookSecrets::parse(CHATWOOT_SECRET).unwrap(),
            chatwoot_allow_unsigned: false,
            onec: WebhookSecrets::parse(ONEC_SECRET).unwrap(),
        },
        // No logins here: only the webhook routes are used.
        cons_api::access::Access::new(
            &cons_api::access::config::AccessConfig::from_env(
                &cons_store::settings::Env::from_pairs([]).unwrap(),
            )
            .unwrap(),
            cons_api::access::JWKS_REFRESH_INTERVAL,
        )
        .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = HttpServer::new(move || cons_api::app(state.clone()))
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
    tokio::spawn(server);
    world.chatwoot.set_webhook(Some(SimWebhook {
        url: format!("{base}/webhook/chatwoot"),
        secret: Some(CHATWOOT_SECRET.into()),
    }));
    world.onec.set_webhook(Some(SimWebhook {
        url: format!("{base}/webhook/1c_cl"),
        secret: Some(ONEC_SECRET.into()),
    }));
}

/// Lets every webhook arrive, then applies the inbox, delivers what that enqueued, and
/// repeats until nothing moves: the system at rest.
async fn settle(world: &World) {
    for _ in 0..10 {
        world.chatwoot.webhooks_settled().await;
        world.onec.webhooks_settled().await;
        let applied = inbox::drain(world.db.pool()).await.unwrap();
        let delivered = drain_all(world, 10).await;
        if applied == 0 && delivered.attempts == 0 {
            return;
        }
    }
    panic!("the system did not come to rest: something bounces");
}

fn reconciler(world: &World) -> Reconciler {
    Reconciler {
        pool: world.db.pool().clone(),
        chatwoot: cons_chatwoot::ChatwootClient::new(world.peers.chatwoot.clone()).unwrap(),
        onec: cons_onec::OnecClient::new(world.peers.onec.clone()).unwrap(),
        settings: InboundSettings {
            reconcile_pause: Duration::ZERO,
            ..InboundSettings::default()
        },
    }
}

async fn value(world: &World, sql: &str) -> String {
    column(world.db.pool(), sql).await.join(",")
}

async fn ticket_field(world: &World, cons_id: Uuid, expression: &str) -> String {
    value(
        world,
        &format!("SELECT coalesce(({expression})::text, '-') AS value FROM cons.tickets WHERE cons_id = '{cons_id}'"),
    )
    .await
}

async fn conversation_of(world: &World, cons_id: Uuid) -> u64 {
    ticket_field(world, cons_id, "chatwoot_conversation_id")
        .await
        .parse()
        .unwrap()
}

async fn ref_key_of(world: &World, cons_id: Uuid) -> Uuid {
    ticket_field(world, cons_id, "onec_ref_key")
        .await
        .parse()
        .unwrap()
}

async fn outbox_count(world: &World, cons_id: Uuid) -> String {
    value(
        world,
        &format!("SELECT count(*)::text AS value FROM sys.outbox WHERE cons_id = '{cons_id}'"),
    )
    .await
}

/// Writes (anything but GET) the simulators received since `clear_requests`.
fn writes(world: &World) -> Vec<String> {
    world
        .chatwoot
        .requests()
        .into_iter()
        .chain(world.onec.requests())
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

/// An accounting ticket delivered to both peers, with webhooks flowing back.
async fn delivered_accounting_ticket(world: &World, phone: &str) -> Uuid {
    receive_webhooks(world);
    let cons_id = create(world, &accounting_ticket(phone, Some("301234567"))).await;
    drain_all(world, 10).await;
    // The first poll sees the new document (queued in 1C).
    poll::poll_once(world.db.pool(), &reconciler(world).onec)
        .await
        .unwrap();
    settle(world).await;
    cons_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_in_onec_reaches_chatwoot_exactly_once_and_does_not_bounce() {
    let world = world().await;
    let cons_id = delivered_accounting_ticket(&world, "+998901110001").await;
    assert_eq!(
        ticket_field(&world, cons_id, "status").await,
        "pending",
        "queued in 1C"
    );
    let conversation = conversation_of(&world, cons_id).await;
    world.chatwoot.clear_requests();
    world.onec.clear_requests();

    world
        .onec
        .close_consultation(ref_key_of(&world, cons_id).await)
        .unwrap();
    settle(&world).await;
    // The next poll shows the same version again: no effect.
    poll::poll_once(world.db.pool(), &reconciler(&world).onec)
        .await
        .unwrap();
    settle(&world).await;

    assert_eq!(ticket_field(&world, cons_id, "status").await, "resolved");
    assert_ne!(ticket_field(&world, cons_id, "ended_at").await, "-");
    assert_eq!(
        world.chatwoot.conversation(conversation).unwrap().status,
        SimStatus::Resolved
    );
    let toggles: Vec<String> = writes(&world)
        .into_iter()
        .filter(|w| w.ends_with("toggle_status"))
        .collect();
    assert_eq!(toggles.len(), 1, "Chatwoot was told once: {toggles:?}");
    assert!(
        world.onec.requests().iter().all(|r| r.method == "GET"),
        "nothing went back to 1C"
    );
    let history = value(
        &world,
        &format!("SELECT field || ':' || coalesce(new_value, '') || ':' || source AS value FROM cons.ticket_history WHERE cons_id = '{cons_id}' AND field = 'status' ORDER BY id"),
    )
    .await;
    assert!(history.ends_with("status:resolved:onec"), "{history}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accounting_resolve_in_chatwoot_is_set_back_once() {
    let world = world().await;
    let cons_id = delivered_accounting_ticket(&world, "+998901110002").await;
    let conversation = conversation_of(&world, cons_id).await;
    world.chatwoot.clear_requests();

    assert!(
        world
            .chatwoot
            .agent_set_status(conversation, SimStatus::Resolved)
    );
    settle(&world).await;

    assert_eq!(ticket_field(&world, cons_id, "status").await, "pending");
    assert_eq!(
        world.chatwoot.conversation(conversation).unwrap().status,
        SimStatus::Open,
        "accounting consultations are finished in 1C"
    );
    let toggles = writes(&world)
        .into_iter()
        .filter(|w| w.ends_with("toggle_status"))
        .count();
    assert_eq!(toggles, 1);
    let seen = value(
        &world,
        &format!("SELECT new_value AS value FROM cons.ticket_history WHERE cons_id = '{cons_id}' AND field = 'chatwoot_status' ORDER BY id"),
    )
    .await;
    assert!(
        seen.contains("resolved"),
        "the refused close is in the history: {seen}"
    );
}

fn tech_support(phone: &str) -> NewTicket {
    let mut command = accounting_ticket(phone, None);
    command.ticket.consultation_type = ConsultationType::TechSupport;
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_and_reordering_converge_to_chatwoots_final_state() {
    let world = world().await;
    receive_webhooks(&world);
    let cons_id = create(&world, &tech_support("+998901110003")).await;
    drain_all(&world, 10).await;
    settle(&world).await;
    let conversation = conversation_of(&world, cons_id).await;
    world.chatwoot.set_webhook_chaos(WebhookChaos {
        duplicate_probability: 0.5,
        drop_probability: 0.0,
        max_extra_delay: Duration::from_millis(300),
        seed: 7,
    });
    let mut attributes = serde_json::Map::new();
    attributes.insert("date_con".into(), "2026-12-24T09:30:00".into());
    for status in [SimStatus::Pending, SimStatus::Open, SimStatus::Resolved] {
        assert!(world.chatwoot.agent_set_status(conversation, status));
    }
    world.chatwoot.add_agent(7, "Agent", "agent@example.uz");
    assert!(world.chatwoot.agent_assign(conversation, Some(7)));
    assert!(
        world
            .chatwoot
            .agent_set_custom_attributes(conversation, attributes)
    );
    assert!(
        world
            .chatwoot
            .agent_set_status(conversation, SimStatus::Open)
    );
    assert!(
        world
            .chatwoot
            .agent_set_status(conversation, SimStatus::Resolved)
    );
    settle(&world).await;

    let log = world.chatwoot.webhook_log();
    assert!(
        log.iter().any(|w| w.duplicate),
        "the chaos duplicated something"
    );
    assert_eq!(ticket_field(&world, cons_id, "status").await, "resolved");
    assert_eq!(
        ticket_field(
            &world,
            cons_id,
            "to_char(scheduled_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI')"
        )
        .await,
        "2026-12-24 09:30"
    );
    assert_eq!(
        ticket_field(&world, cons_id, "chatwoot_assignee_id").await,
        "7"
    );
    assert_eq!(
        outbox_count(&world, cons_id).await,
        "1",
        "nothing is sent back to Chatwoot"
    );
    let stale = value(
        &world,
        "SELECT count(*)::text AS value FROM log.webhook_inbox WHERE status IN ('stale', 'unchanged')",
    )
    .await;
    assert_ne!(
        stale, "0",
        "reordered and echoed deliveries were recognised"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_lost_for_good_is_healed_by_reconciliation() {
    let world = world().await;
    receive_webhooks(&world);
    let cons_id = create(&world, &tech_support("+998901110004")).await;
    drain_all(&world, 10).await;
    settle(&world).await;
    let conversation = conversation_of(&world, cons_id).await;
    world.chatwoot.set_webhook_chaos(WebhookChaos {
        drop_probability: 1.0,
        ..WebhookChaos::default()
    });
    assert!(
        world
            .chatwoot
            .agent_set_status(conversation, SimStatus::Resolved)
    );
    settle(&world).await;
    assert_eq!(
        ticket_field(&world, cons_id, "status").await,
        "open",
        "the webhook was lost"
    );

    let report = reconciler(&world).pass().await.unwrap();
    assert_eq!(report.repaired, 1);
    assert_eq!(ticket_field(&world, cons_id, "status").await, "resolved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_system_writes_nothing_for_a_whole_reconcile_interval() {
    let world = world().await;
    let accounting = delivered_accounting_ticket(&world, "+998901110005").await;
    let support = create(&world, &tech_support("+998901110006")).await;
    drain_all(&world, 10).await;
    settle(&world).await;
    let before = value(
        &world,
        "SELECT string_agg(cons_id::text || updated_at::text || coalesce(chatwoot_seen_at::text, '') || coalesce(onec_seen_at::text, ''), ';' ORDER BY cons_id) AS value FROM cons.tickets",
    )
    .await;
    let history = value(
        &world,
        "SELECT count(*)::text AS value FROM cons.ticket_history",
    )
    .await;
    world.chatwoot.clear_requests();
    world.onec.clear_requests();

    let report = reconciler(&world).pass().await.unwrap();
    poll::poll_once(world.db.pool(), &reconciler(&world).onec)
        .await
        .unwrap();
    settle(&world).await;

    assert_eq!(report.compared, 2, "{accounting} {support}");
    assert_eq!(report.repaired, 0);
    assert_eq!(
        writes(&world),
        Vec::<String>::new(),
        "no writes to either peer"
    );
    let after = value(
        &world,
        "SELECT string_agg(cons_id::text || updated_at::text || coalesce(chatwoot_seen_at::text, '') || coalesce(onec_seen_at::text, ''), ';' ORDER BY cons_id) AS value FROM cons.tickets",
    )
    .await;
    assert_eq!(before, after, "no ticket was written");
    assert_eq!(
        history,
        value(
            &world,
            "SELECT count(*)::text AS value FROM cons.ticket_history"
        )
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poller_misses_nothing_across_pages_and_restarts() {
    let world = world().await;
    // More tickets than one page, all changed in 1C within the same second, which may be
    // the second of their creation: the poller's watermark must not skip them (it stays
    // behind the seconds that may still change).
    world.onec.set_daily_limit(None);
    let mut tickets = Vec::new();
    for i in 0..130 {
        let (phone, inn) = (format!("+9989022{i:05}"), format!("30{i:07}"));
        tickets.push(create(&world, &accounting_ticket(&phone, Some(&inn))).await);
    }
    drain_all(&world, 20).await;
    let stuck = value(
        &world,
        "SELECT target || ' ' || status || ' ' || coalesce(last_error, '') AS value FROM sys.outbox WHERE status <> 'delivered' LIMIT 3",
    )
    .await;
    assert_eq!(stuck, "", "every ticket reached both peers");
    let client = reconciler(&world).onec;
    poll::poll_once(world.db.pool(), &client).await.unwrap();
    world.onec.freeze_clock(world.onec.now_local());
    for cons_id in &tickets {
        world
            .onec
            .close_consultation(ref_key_of(&world, *cons_id).await)
            .unwrap();
    }
    let first = poll::poll_once(world.db.pool(), &client).await.unwrap();
    assert_eq!(first.applied, tickets.len(), "{first:?}");
    let resolved = value(
        &world,
        "SELECT count(*)::text AS value FROM cons.tickets WHERE status = 'resolved'",
    )
    .await;
    assert_eq!(resolved, tickets.len().to_string());
    // A restarted poller continues from the stored watermark: nothing is applied twice.
    let again = poll::poll_once(world.db.pool(), &client).await.unwrap();
    assert_eq!(again.applied, 0, "{again:?}");
    let pushes = value(
        &world,
        "SELECT count(*)::text AS value FROM sys.outbox WHERE kind = 'ticket.sync'",
    )
    .await;
    assert_eq!(
        pushes,
        tickets.len().to_string(),
        "one close to Chatwoot per ticket"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chatwoot_change_is_on_the_ticket_within_a_second_of_its_webhook() {
    let world = world().await;
    receive_webhooks(&world);
    let cons_id = create(&world, &tech_support("+998901110007")).await;
    drain_all(&world, 10).await;
    settle(&world).await;
    let conversation = conversation_of(&world, cons_id).await;
    // The running inbox loop, woken only by NOTIFY (its poll is an hour).
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let wake = std::sync::Arc::new(tokio::sync::Notify::new());
    tokio::spawn(cons_relay::listener::listen(
        world.db.url().to_owned(),
        vec![(cons_store::wake::Channel::Inbox, wake.clone())],
        stopped.clone(),
    ));
    tokio::spawn(inbox::run(
        world.db.pool().clone(),
        wake,
        Duration::from_secs(3600),
        stopped,
    ));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while value(
        &world,
        "SELECT count(*)::text AS value FROM pg_stat_activity WHERE query = 'LISTEN inbox'",
    )
    .await
        != "1"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the listener never listened"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    assert!(
        world
            .chatwoot
            .agent_set_status(conversation, SimStatus::Resolved)
    );
    world.chatwoot.webhooks_settled().await;
    let answered = std::time::Instant::now();
    while ticket_field(&world, cons_id, "status").await != "resolved" {
        assert!(
            answered.elapsed() < Duration::from_secs(1),
            "not applied within a second of the webhook"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "applied {:?} after the webhook was answered",
        answered.elapsed()
    );
    stop.send(true).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handled_deliveries_past_their_retention_are_deleted_and_pending_ones_kept() {
    let world = world().await;
    let mut connection = world.db.pool().get().await.unwrap();
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query(
            "INSERT INTO log.webhook_inbox (source, event, dedup_key, body, status, received_at) VALUES
             ('chatwoot', 'message_created', 'old-applied', '{}', 'applied', now() - interval '31 days'),
             ('chatwoot', 'message_created', 'old-ignored', '{}', 'ignored', now() - interval '31 days'),
             ('chatwoot', 'message_created', 'old-pending', '{}', 'pending', now() - interval '31 days'),
             ('chatwoot', 'message_created', 'old-failed', '{}', 'failed', now() - interval '31 days'),
             ('chatwoot', 'message_created', 'new-applied', '{}', 'applied', now() - interval '29 days')",
        ),
        &mut connection,
    )
    .await
    .unwrap();
    assert_eq!(reconciler(&world).purge_inbox().await.unwrap(), 2);
    let left = value(
        &world,
        "SELECT string_agg(dedup_key, ',' ORDER BY dedup_key) AS value FROM log.webhook_inbox",
    )
    .await;
    assert_eq!(left, "new-applied,old-failed,old-pending");
}
