//! The real effects against the Chatwoot and 1C simulators: a ticket reaches both with
//! every external id stored, and faults (5xx, 429, "act, then time out", business
//! refusals) never create anything twice; TCP resets, black holes and refusals on the link
//! are retried within the clients' timeouts (R9).

use cons_domain::{
    ClientRef, CodeAbonent, Comment, ConsultationType, Inn, Lang, NewClient, NewTicket, PersonName,
    PhoneNumber, Source, TicketDraft,
};
use cons_relay::effects::Peers;
use cons_relay::effects::config::PeersConfig;
use cons_relay::{DrainReport, Relay, RelaySettings};
use cons_sim::chatwoot::{ChatwootSim, ChatwootSimConfig};
use cons_sim::onec::{OnecSim, OnecSimConfig};
use cons_sim::{Fault, FaultProxy, TcpFault};
use cons_store::settings::Env;
use cons_store::tickets::{self, CreateOutcome, CreateTicket};
use cons_testdb::TestDatabase;
use std::time::Duration;
use uuid::Uuid;

/// The Chatwoot and 1C clients' timeout in these tests.
pub const PEER_TIMEOUT: Duration = Duration::from_millis(500);

pub struct World {
    pub db: TestDatabase,
    pub chatwoot: ChatwootSim,
    pub onec: OnecSim,
    pub relay: Relay<Peers>,
    pub peers: PeersConfig,
}

pub async fn world() -> World {
    let chatwoot = ChatwootSim::start(ChatwootSimConfig::default()).unwrap();
    let onec = OnecSim::start(OnecSimConfig::default()).unwrap();
    let urls = (chatwoot.base_url().to_owned(), onec.base_url().to_owned());
    let mut settings = crate::settings();
    settings.backoff.base = Duration::from_millis(1);
    settings.max_attempts = 5;
    world_with(chatwoot, onec, urls, settings).await
}

/// The simulators reached at `urls` (`(chatwoot, onec)`, e.g. through a fault proxy) by a
/// relay with `settings`.
pub async fn world_with(
    chatwoot: ChatwootSim,
    onec: OnecSim,
    urls: (String, String),
    settings: RelaySettings,
) -> World {
    let db = TestDatabase::new().await;
    let pairs = crate::peer_env(&urls.0, &urls.1, chatwoot.account_id(), chatwoot.inbox_id());
    let env = Env::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap();
    // Short timeouts: a stalled simulator call must end quickly in a test.
    let peers = PeersConfig::from_env(&env, PEER_TIMEOUT, PEER_TIMEOUT).unwrap();
    let relay = Relay::new(
        db.pool().clone(),
        settings,
        peers.connect(db.pool().clone()).unwrap(),
    );
    World {
        db,
        chatwoot,
        onec,
        relay,
        peers,
    }
}

pub fn accounting_ticket(phone: &str, inn: Option<&str>) -> NewTicket {
    NewTicket {
        client: ClientRef::Match(NewClient {
            name: PersonName::parse("Dilnoza Karimova").unwrap(),
            phone_number: PhoneNumber::parse(phone).unwrap(),
            email: None,
            org_inn: inn.map(|i| Inn::parse(i).unwrap()),
            code_abonent: inn.map(|_| CodeAbonent::parse("10240").unwrap()),
            company_name: None,
        }),
        ticket: TicketDraft {
            consultation_type: ConsultationType::Accounting,
            comment: Some(Comment::parse("Как закрыть месяц в 1С:Бухгалтерии?").unwrap()),
            topic: None,
            lang: Lang::Ru,
            scheduled_at: None,
            importance: Some(cons_domain::Importance::new(2).unwrap()),
            source: Source::Site,
        },
    }
}

pub async fn create(world: &World, command: &NewTicket) -> Uuid {
    let mut connection = world.db.pool().get().await.unwrap();
    let outcome = tickets::create(
        &mut connection,
        &CreateTicket {
            command,
            principal: "service:test",
            idempotency: None,
        },
    )
    .await
    .unwrap();
    match outcome {
        CreateOutcome::Created(created) => created.cons_id,
        other => panic!("{other:?}"),
    }
}

/// Drains until nothing is due, making rescheduled entries due at once (the schedule
/// itself is tested elsewhere); gives up after `rounds`.
pub async fn drain_all(world: &World, rounds: usize) -> DrainReport {
    let mut total = DrainReport::default();
    for _ in 0..rounds {
        let report = world.relay.drain().await.unwrap();
        total.attempts += report.attempts;
        total.delivered += report.delivered;
        total.retried += report.retried;
        total.dead += report.dead;
        let left = crate::column(
            world.db.pool(),
            "WITH due AS (UPDATE sys.outbox SET next_attempt_at = now() WHERE status = 'pending' RETURNING 1)
             SELECT count(*)::text AS value FROM due",
        )
        .await;
        if left == ["0"] {
            break;
        }
    }
    total
}

async fn ticket_row(world: &World, cons_id: Uuid) -> String {
    crate::column(
        world.db.pool(),
        &format!(
            "SELECT coalesce(chatwoot_conversation_id::text, '-') || ' ' || coalesce(onec_number, '-') || ' ' ||
                    sync_chatwoot || '/' || sync_onec AS value
             FROM cons.tickets WHERE cons_id = '{cons_id}'"
        ),
    )
    .await
    .join("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_reaches_both_peers_with_every_external_id_stored() {
    let world = world().await;
    let cons_id = create(
        &world,
        &accounting_ticket("+998901234567", Some("301234567")),
    )
    .await;
    let report = drain_all(&world, 5).await;
    assert_eq!(report.dead, 0, "{report:?}");

    let row = ticket_row(&world, cons_id).await;
    let conversation_id: u64 = row.split(' ').next().unwrap().parse().unwrap();
    assert!(row.ends_with("delivered/delivered"), "{row}");
    let conversation = world.chatwoot.conversation(conversation_id).unwrap();
    assert_eq!(
        conversation.custom_attributes["cons_id"],
        cons_id.to_string()
    );
    let number = row.split(' ').nth(1).unwrap();
    assert_eq!(
        conversation.custom_attributes["number_con"], number,
        "the 1C number reached Chatwoot"
    );
    assert_eq!(conversation.labels, ["consultation"]);
    assert_eq!(
        world
            .chatwoot
            .messages_with_source_id(&format!("cons:{cons_id}:question")),
        1
    );
    assert_eq!(
        world
            .onec
            .consultations_with_marker(&cons_onec::consultation_marker(cons_id)),
        1
    );
    assert_eq!(world.onec.counterparty_count(), 1);
    let client = crate::column(world.db.pool(), "SELECT (chatwoot_contact_id IS NOT NULL AND onec_counterparty_key IS NOT NULL)::text AS value FROM cons.clients").await;
    assert_eq!(client, ["true"]);
    assert_eq!(world.chatwoot.unimplemented_calls(), 0);
    assert_eq!(world.onec.unimplemented_calls(), 0);

    // A second ticket of the same client reuses the contact and the counterparty.
    let second = create(
        &world,
        &accounting_ticket("+998901234567", Some("301234567")),
    )
    .await;
    drain_all(&world, 5).await;
    assert!(
        ticket_row(&world, second)
            .await
            .ends_with("delivered/delivered")
    );
    assert_eq!(world.chatwoot.counts().contacts, 1);
    assert_eq!(world.onec.counterparty_count(), 1);
    assert_eq!(world.chatwoot.counts().conversations, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acting_then_timing_out_creates_nothing_twice() {
    let world = world().await;
    // Every creating call: the peer does the work, the answer never comes.
    for call in [
        "POST /api/v1/accounts/1/contacts",
        "POST /api/v1/accounts/1/conversations",
        "/messages",
    ] {
        world
            .chatwoot
            .faults()
            .next_matching(call, 1, Fault::ActThenStall);
    }
    world
        .onec
        .faults()
        .next_matching("POST", 2, Fault::ActThenStall);
    let cons_id = create(
        &world,
        &accounting_ticket("+998901234567", Some("301234567")),
    )
    .await;
    let report = drain_all(&world, 10).await;
    assert!(
        report.retried >= 4,
        "each stalled call cost an attempt: {report:?}"
    );
    assert!(
        ticket_row(&world, cons_id)
            .await
            .ends_with("delivered/delivered")
    );
    assert_eq!(
        world
            .chatwoot
            .contacts_with_identifier(&client_id(&world).await),
        1
    );
    assert_eq!(
        world
            .chatwoot
            .conversations_with_cons_id(&cons_id.to_string()),
        1
    );
    assert_eq!(
        world
            .chatwoot
            .messages_with_source_id(&format!("cons:{cons_id}:question")),
        1
    );
    assert_eq!(world.onec.counterparty_count(), 1);
    assert_eq!(
        world
            .onec
            .consultations_with_marker(&cons_onec::consultation_marker(cons_id)),
        1
    );
}

async fn client_id(world: &World) -> String {
    crate::column(
        world.db.pool(),
        "SELECT client_id::text AS value FROM cons.clients",
    )
    .await
    .join("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_burst_is_retried_and_every_attempt_is_logged() {
    let world = world().await;
    world.chatwoot.faults().next(
        3,
        Fault::Status {
            status: 503,
            body: "{}".into(),
        },
    );
    let cons_id = create(
        &world,
        &accounting_ticket("+998901234567", Some("301234567")),
    )
    .await;
    let report = drain_all(&world, 10).await;
    assert_eq!(report.dead, 0);
    assert!(
        ticket_row(&world, cons_id)
            .await
            .ends_with("delivered/delivered")
    );
    let attempts = crate::column(
        world.db.pool(),
        "SELECT a.outcome || ':' || coalesce(a.http_status::text, '-') AS value
         FROM sys.outbox_attempts a JOIN sys.outbox o ON o.id = a.outbox_id
         WHERE o.target = 'chatwoot' AND o.kind = 'ticket.create' ORDER BY a.attempt",
    )
    .await;
    assert_eq!(
        attempts,
        ["retry:503", "retry:503", "retry:503", "delivered:-"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_pauses_the_target_for_its_retry_after_and_not_the_other() {
    let world = world().await;
    world.chatwoot.faults().next(
        1,
        Fault::RateLimited {
            retry_after_secs: 1,
        },
    );
    let cons_id = create(
        &world,
        &accounting_ticket("+998901234567", Some("301234567")),
    )
    .await;
    let started = std::time::Instant::now();
    let first = world.relay.drain().await.unwrap();
    assert_eq!(
        (first.retried, first.delivered),
        (1, 1),
        "1C was delivered while Chatwoot waits: {first:?}"
    );
    let calls = world.chatwoot.requests().len();
    // Keep the entry due and drain until Chatwoot is tried again: that must not happen
    // before Retry-After (1 s) has passed, and must happen soon after.
    loop {
        crate::column(world.db.pool(), "UPDATE sys.outbox SET next_attempt_at = now() WHERE status = 'pending' RETURNING '' AS value").await;
        if world.relay.drain().await.unwrap().attempts > 0 {
            break;
        }
        assert_eq!(
            world.chatwoot.requests().len(),
            calls,
            "paused: nothing sent before Retry-After"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the pause never ended"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "retried after {:?}",
        started.elapsed()
    );
    drain_all(&world, 5).await;
    assert!(
        ticket_row(&world, cons_id)
            .await
            .ends_with("delivered/delivered")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_business_refusal_is_dead_at_once_and_a_replay_after_the_fix_delivers_once() {
    let world = world().await;
    world.onec.set_daily_limit(Some(0));
    let cons_id = create(
        &world,
        &accounting_ticket("+998901234567", Some("301234567")),
    )
    .await;
    let report = drain_all(&world, 3).await;
    assert_eq!(report.dead, 1, "{report:?}");
    assert!(
        ticket_row(&world, cons_id)
            .await
            .ends_with("delivered/dead")
    );

    world.onec.set_daily_limit(None);
    let mut connection = world.db.pool().get().await.unwrap();
    let dead = cons_store::outbox::dead_ids(&mut connection, &Default::default())
        .await
        .unwrap();
    assert_eq!(
        cons_store::outbox::replay(&mut connection, &dead)
            .await
            .unwrap(),
        dead
    );
    assert!(
        cons_store::outbox::replay(&mut connection, &dead)
            .await
            .unwrap()
            .is_empty(),
        "a second replay moves nothing"
    );
    drain_all(&world, 5).await;
    assert!(
        ticket_row(&world, cons_id)
            .await
            .ends_with("delivered/delivered")
    );
    assert_eq!(
        world
            .onec
            .consultations_with_marker(&cons_onec::consultation_marker(cons_id)),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_subscriber_code_and_inn_cannot_be_booked_in_1c() {
    let world = world().await;
    let cons_id = create(&world, &accounting_ticket("+998901234567", None)).await;
    drain_all(&world, 3).await;
    assert!(
        ticket_row(&world, cons_id)
            .await
            .ends_with("delivered/dead")
    );
    let error = crate::column(
        world.db.pool(),
        "SELECT last_error AS value FROM sys.outbox WHERE target = 'onec'",
    )
    .await;
    assert!(error[0].contains("subscriber code and INN"), "{error:?}");
    assert_eq!(world.onec.requests().len(), 0, "nothing was sent to 1C");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_peer_within_the_timeout_is_not_retried() {
    let world = world().await;
    // 0.8 × the 500 ms client timeout on every call.
    world
        .chatwoot
        .faults()
        .set_latency(Duration::from_millis(400));
    let cons_id = create(
        &world,
        &accounting_ticket("+998901234567", Some("301234567")),
    )
    .await;
    let report = drain_all(&world, 3).await;
    assert_eq!(report.retried, 0, "{report:?}");
    assert!(
        ticket_row(&world, cons_id)
            .await
            .ends_with("delivered/delivered")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_hole_is_retried_until_it_answers_and_a_refused_connection_until_attempts_run_out()
{
    let world = world().await;
    world.onec.stop().await; // connections refused from now on
    world.chatwoot.faults().next(2, Fault::Stall); // the client times out twice
    let cons_id = create(
        &world,
        &accounting_ticket("+998901234567", Some("301234567")),
    )
    .await;
    drain_all(&world, 10).await;
    let row = ticket_row(&world, cons_id).await;
    assert!(row.ends_with("delivered/dead"), "{row}");
    let attempts = crate::column(
        world.db.pool(),
        "SELECT o.target || ' ' || a.outcome || ' ' || coalesce(split_part(a.error, ':', 1), '') AS value
         FROM sys.outbox_attempts a JOIN sys.outbox o ON o.id = a.outbox_id
         WHERE o.kind = 'ticket.create' ORDER BY o.target, a.attempt",
    )
    .await;
    assert_eq!(
        attempts,
        [
            "chatwoot retry chatwoot timeout",
            "chatwoot retry chatwoot timeout",
            "chatwoot delivered ",
            "onec retry 1c connect",
            "onec retry 1c connect",
            "onec retry 1c connect",
            "onec retry 1c connect",
            "onec dead 1c connect",
        ],
        "max_attempts is 5 in these tests"
    );
}

/// R9 on a real TCP link: a fault proxy in front of each simulator resets the connection
/// after the peer acted, black-holes it, drops its SYNs or refuses it. Each is a retry (not
/// dead), each attempt ends within the client's timeout (not the relay's lease cut-off),
/// and once the link passes again every ticket reaches both peers exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_resets_black_holes_and_refusals_are_retried_within_the_timeout_and_create_nothing_twice()
 {
    let chatwoot = ChatwootSim::start(ChatwootSimConfig::default()).unwrap();
    let onec = OnecSim::start(OnecSimConfig::default()).unwrap();
    let chatwoot_link = FaultProxy::start(chatwoot.port()).await.unwrap();
    let onec_link = FaultProxy::start(onec.port()).await.unwrap();
    let urls = (
        chatwoot_link.url_for(chatwoot.base_url()),
        onec_link.url_for(onec.base_url()),
    );
    let mut settings = crate::settings();
    // A failed entry is not due again within its drain: one attempt per entry and fault.
    // (Full jitter draws the wait from zero up: over a day, a wait short enough to be
    // due again within the drain has odds of about one in a hundred thousand.)
    settings.backoff.base = Duration::from_secs(86_400);
    settings.backoff.cap = Duration::from_secs(86_400);
    let world = world_with(chatwoot, onec, urls, settings).await;

    // With the call timeout below the clients' connect timeout, the call timeout may be
    // what ends a hanging connect.
    let faults: [(TcpFault, &[&str]); 4] = [
        (TcpFault::Reset, &["disconnected"]),
        (TcpFault::BlackHole, &["timeout"]),
        (TcpFault::Unreachable, &["connect", "timeout"]),
        (TcpFault::Refuse, &["connect"]),
    ];
    let mut tickets = Vec::new();
    for (i, (fault, classes)) in faults.into_iter().enumerate() {
        chatwoot_link.set(fault);
        onec_link.set(fault);
        let cons_id = create(
            &world,
            &accounting_ticket(&format!("+99890123456{i}"), Some(&format!("30123456{i}"))),
        )
        .await;
        let report = world.relay.drain().await.unwrap();
        assert_eq!(
            (report.attempts, report.retried),
            (2, 2),
            "{fault:?}: {report:?}"
        );
        let attempts = crate::column(
            world.db.pool(),
            &format!(
                "SELECT split_part(a.error, ':', 1) || '|' ||
                        round(extract(epoch FROM a.finished_at - a.started_at) * 1000)::text AS value
                 FROM sys.outbox_attempts a JOIN sys.outbox o ON o.id = a.outbox_id
                 WHERE o.cons_id = '{cons_id}' ORDER BY o.target"
            ),
        )
        .await;
        assert_eq!(attempts.len(), 2, "{fault:?}: {attempts:?}");
        for (attempt, peer) in attempts.iter().zip(["chatwoot", "1c"]) {
            let (error, ms) = attempt.split_once('|').unwrap();
            assert!(
                classes.iter().any(|c| error == format!("{peer} {c}")),
                "{fault:?}: {error}"
            );
            let took = Duration::from_millis(ms.parse().unwrap());
            assert!(
                took < PEER_TIMEOUT * 2,
                "{fault:?}: the client's timeout ended it, not the lease: {took:?}"
            );
            if matches!(fault, TcpFault::BlackHole | TcpFault::Unreachable) {
                assert!(took >= PEER_TIMEOUT, "{fault:?}: it did hang: {took:?}");
            }
        }
        tickets.push(cons_id);
    }
    for link in [&chatwoot_link, &onec_link] {
        assert!(
            link.resets() > 0 && link.swallowed() > 0,
            "{:?}",
            link.counts()
        );
    }

    chatwoot_link.set(TcpFault::Pass);
    onec_link.set(TcpFault::Pass);
    let report = drain_all(&world, 10).await;
    assert_eq!(report.dead, 0, "{report:?}");
    for cons_id in &tickets {
        let row = ticket_row(&world, *cons_id).await;
        assert!(row.ends_with("delivered/delivered"), "{row}");
        assert_eq!(
            world
                .chatwoot
                .messages_with_source_id(&format!("cons:{cons_id}:question")),
            1
        );
    }
    let counts = world.chatwoot.counts();
    assert_eq!(
        (counts.contacts, counts.conversations),
        (4, 4),
        "{counts:?}"
    );
    assert_eq!(world.onec.counterparty_count(), 4);
    assert_eq!(world.onec.consultation_count(), 4);
}
