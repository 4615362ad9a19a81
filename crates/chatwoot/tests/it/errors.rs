//! Failures classified from real answers and scripted faults: what the relay decides on.

use crate::{TOKEN, client_of, setup, setup_with_timeout};
use cons_chatwoot::{ChatwootError, NewContact, NewConversation, NewMessage};
use cons_sim::Fault;
use std::time::Duration;

fn contact(identifier: &str) -> NewContact {
    NewContact {
        identifier: identifier.to_owned(),
        name: "N".to_owned(),
        ..NewContact::default()
    }
}

#[tokio::test]
async fn a_taken_identifier_is_already_taken_and_the_contact_is_found_again() {
    let s = setup();
    let first = s.client.create_contact(&contact("client-1")).await.unwrap();
    let again = s
        .client
        .create_contact(&contact("client-1"))
        .await
        .unwrap_err();
    assert_eq!(
        again,
        ChatwootError::AlreadyTaken {
            attributes: vec!["identifier".to_owned()]
        }
    );
    assert!(!again.is_retryable());
    assert_eq!(again.http_status(), Some(422));
    assert_eq!(
        s.client
            .find_contact_by_identifier("client-1")
            .await
            .unwrap()
            .map(|c| c.id),
        Some(first.id)
    );
    assert_eq!(s.sim.contacts_with_identifier("client-1"), 1);

    // Another client with the same e-mail: the relay must see that it is not the identifier.
    let mut with_email = contact("client-2");
    with_email.email = Some("same@acme.inc".to_owned());
    s.client.create_contact(&with_email).await.unwrap();
    with_email.identifier = "client-3".to_owned();
    let taken = s.client.create_contact(&with_email).await.unwrap_err();
    assert_eq!(
        taken,
        ChatwootError::AlreadyTaken {
            attributes: vec!["email".to_owned()]
        }
    );
}

#[tokio::test]
async fn rate_limits_server_errors_and_refusals() {
    let s = setup();
    s.sim.faults().next(
        1,
        Fault::RateLimited {
            retry_after_secs: 3,
        },
    );
    let limited = s.client.find_contact_by_identifier("x").await.unwrap_err();
    assert_eq!(
        limited,
        ChatwootError::RateLimited {
            retry_after: Some(Duration::from_secs(3))
        }
    );
    assert!(limited.is_retryable() && !limited.is_ambiguous());
    assert_eq!(limited.retry_after(), Some(Duration::from_secs(3)));

    // Chatwoot's own 429 has no Retry-After.
    s.sim.faults().next(
        1,
        Fault::Status {
            status: 429,
            body: "Retry later\n".to_owned(),
        },
    );
    assert_eq!(
        s.client.teams().await.unwrap_err(),
        ChatwootError::RateLimited { retry_after: None }
    );

    let body = format!("<html>boom {TOKEN} boom</html>");
    s.sim.faults().next(1, Fault::Status { status: 502, body });
    let server = s.client.teams().await.unwrap_err();
    assert_eq!(
        server,
        ChatwootError::Server {
            status: 502,
            excerpt: "<html>boom <redacted> boom</html>".to_owned()
        }
    );
    assert!(server.is_retryable() && server.is_ambiguous());
    assert!(!server.to_string().contains(TOKEN));

    assert_eq!(
        s.client.get_conversation(12).await.unwrap_err(),
        ChatwootError::NotFound
    );
    let wrong = client_of(&s.sim, "wrong-token", Duration::from_secs(5));
    assert_eq!(
        wrong.teams().await.unwrap_err(),
        ChatwootError::Unauthorized {
            excerpt: "Invalid Access Token".to_owned()
        }
    );

    // A 2xx that is not Chatwoot's: the effect may exist, the answer is unreadable.
    s.sim.faults().next(
        1,
        Fault::Status {
            status: 200,
            body: "<html>proxy login</html>".to_owned(),
        },
    );
    let decode = s.client.teams().await.unwrap_err();
    assert!(matches!(decode, ChatwootError::Decode(_)), "{decode:?}");
    assert!(decode.is_ambiguous() && !decode.is_retryable());
}

#[tokio::test]
async fn unknown_teams_and_agents_are_reported() {
    let s = setup();
    let c = s.client.create_contact(&contact("client-1")).await.unwrap();
    let id = s
        .client
        .create_conversation(&NewConversation::for_ticket(c.id, "t-1"))
        .await
        .unwrap()
        .id;
    assert_eq!(
        s.client.assign_team(id, 42).await.unwrap_err(),
        ChatwootError::UnknownTeam(42)
    );
    assert_eq!(
        s.client.assign_agent(id, Some(8)).await.unwrap_err(),
        ChatwootError::UnknownAgent(8)
    );
}

#[tokio::test]
async fn the_flood_guard_is_retryable() {
    let s = setup();
    s.sim.set_message_flood_limit(Some(1));
    let c = s.client.create_contact(&contact("client-1")).await.unwrap();
    let id = s
        .client
        .create_conversation(&NewConversation::for_ticket(c.id, "t-1"))
        .await
        .unwrap()
        .id;
    s.client
        .create_message(id, &NewMessage::incoming("one", "m-1"))
        .await
        .unwrap();
    let flood = s
        .client
        .create_message(id, &NewMessage::incoming("two", "m-2"))
        .await
        .unwrap_err();
    assert_eq!(flood, ChatwootError::MessageFlood);
    assert!(flood.is_retryable() && !flood.is_ambiguous());
}

#[tokio::test]
async fn a_stalled_call_times_out_without_effect() {
    let s = setup_with_timeout(Duration::from_millis(400));
    let c = s.client.create_contact(&contact("client-1")).await.unwrap();
    let id = s
        .client
        .create_conversation(&NewConversation::for_ticket(c.id, "t-1"))
        .await
        .unwrap()
        .id;

    s.sim.faults().next_matching("/messages", 1, Fault::Stall);
    let stalled = s
        .client
        .create_message(id, &NewMessage::incoming("hi", "m-1"))
        .await
        .unwrap_err();
    assert_eq!(stalled, ChatwootError::Timeout);
    assert!(stalled.is_retryable() && stalled.is_ambiguous());
    assert_eq!(s.sim.messages_with_source_id("m-1"), 0);
}

#[tokio::test]
async fn act_then_stall_leaves_the_effect_and_a_retry_finds_it() {
    let s = setup_with_timeout(Duration::from_millis(400));
    let c = s.client.create_contact(&contact("client-1")).await.unwrap();
    let id = s
        .client
        .create_conversation(&NewConversation::for_ticket(c.id, "t-1"))
        .await
        .unwrap()
        .id;

    s.sim.faults().next_matching(
        "POST /api/v1/accounts/1/conversations/",
        1,
        Fault::ActThenStall,
    );
    let message = NewMessage::incoming("hi", "cons:outbox-7");
    let lost = s.client.create_message(id, &message).await.unwrap_err();
    assert_eq!(lost, ChatwootError::Timeout);
    assert!(lost.is_ambiguous());
    assert_eq!(s.sim.messages_with_source_id("cons:outbox-7"), 1);

    // The reconciliation the relay does before re-sending.
    let existing = s.client.messages(id).await.unwrap();
    assert!(
        existing
            .iter()
            .any(|m| m.source_id.as_deref() == Some("cons:outbox-7"))
    );

    // The same for a conversation: it exists although the create timed out.
    s.sim.faults().next_matching(
        "POST /api/v1/accounts/1/conversations",
        1,
        Fault::ActThenStall,
    );
    let lost = s
        .client
        .create_conversation(&NewConversation::for_ticket(c.id, "t-2"))
        .await
        .unwrap_err();
    assert_eq!(lost, ChatwootError::Timeout);
    let found = s.client.conversations_of_contact(c.id).await.unwrap();
    assert_eq!(
        found
            .iter()
            .filter(|conv| conv.cons_id() == Some("t-2"))
            .count(),
        1
    );
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error_not_ambiguous() {
    let s = setup();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = cons_chatwoot::ChatwootClient::new(cons_chatwoot::ChatwootConfig {
        base_url: format!("http://127.0.0.1:{port}"),
        api_token: TOKEN.to_owned(),
        account_id: 1,
        inbox_id: 3,
        timeout: Duration::from_secs(2),
    })
    .unwrap();
    let refused = client
        .create_contact(&contact("client-1"))
        .await
        .unwrap_err();
    assert!(matches!(refused, ChatwootError::Connect(_)), "{refused:?}");
    assert!(refused.is_retryable() && !refused.is_ambiguous());
    assert_eq!(s.sim.counts().contacts, 0);
}
