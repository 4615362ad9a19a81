//! Every client method against the simulator, and the effects it leaves there.

use crate::setup;
use cons_chatwoot::{ConversationStatus, MessageType, NewContact, NewConversation, NewMessage};
use serde_json::{Map, Value, json};

fn jane() -> NewContact {
    NewContact {
        identifier: "client-0190a".to_owned(),
        name: "Jane Doe".to_owned(),
        phone_number: Some("+998901112233".to_owned()),
        email: Some("Jane@Acme.inc".to_owned()),
        ..NewContact::default()
    }
}

#[tokio::test]
async fn contacts_are_created_in_the_inbox_and_found_exactly() {
    let s = setup();
    assert_eq!(
        s.client
            .find_contact_by_identifier("client-0190a")
            .await
            .unwrap(),
        None
    );

    let created = s.client.create_contact(&jane()).await.unwrap();
    assert_eq!(created.identifier.as_deref(), Some("client-0190a"));
    assert_eq!(created.email.as_deref(), Some("jane@acme.inc"));
    // `inbox_id` was sent: the contact has a contact inbox in our API inbox.
    assert_eq!(created.source_ids_in(3).count(), 1);

    let found = s
        .client
        .find_contact_by_identifier("client-0190a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, created.id);
    // Chatwoot's filter is case-insensitive; identifiers are not.
    assert_eq!(
        s.client
            .find_contact_by_identifier("CLIENT-0190A")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.client
            .find_contact_by_email("jane@ACME.inc")
            .await
            .unwrap()
            .map(|c| c.id),
        Some(created.id)
    );
    assert_eq!(
        s.client
            .find_contact_by_phone_number("+998901112233")
            .await
            .unwrap()
            .map(|c| c.id),
        Some(created.id)
    );
    assert_eq!(
        s.client.get_contact(created.id).await.unwrap().id,
        created.id
    );

    let request = s
        .sim
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path == "/api/v1/accounts/1/contacts")
        .unwrap();
    assert_eq!(request.header("api-access-token"), Some(crate::TOKEN));
    assert_eq!(request.json().unwrap()["inbox_id"], json!(3));
    assert_eq!(s.sim.unimplemented_calls(), 0);
}

#[tokio::test]
async fn conversations_carry_the_ticket_and_are_found_through_the_contact() {
    let s = setup();
    s.sim.add_team(2, "техническая поддержка");
    let contact = s.client.create_contact(&jane()).await.unwrap();

    let mut new = NewConversation::for_ticket(contact.id, "0190b7e2-ticket");
    new.team_id = Some(2);
    new.status = Some(ConversationStatus::Pending);
    let created = s.client.create_conversation(&new).await.unwrap();
    assert_eq!(created.id, 1, "display ids start at 1 per account");
    assert_eq!(created.inbox_id, 3);
    assert_eq!(created.status, ConversationStatus::Pending);
    assert_eq!(created.cons_id(), Some("0190b7e2-ticket"));
    assert_eq!(created.contact_id(), Some(contact.id));
    assert_eq!(created.team_id(), Some(2));

    let other = s
        .client
        .create_conversation(&NewConversation::for_ticket(contact.id, "other"))
        .await
        .unwrap();
    let listed = s.client.conversations_of_contact(contact.id).await.unwrap();
    assert_eq!(
        listed.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![other.id, created.id]
    );
    let existing = listed
        .iter()
        .find(|c| c.cons_id() == Some("0190b7e2-ticket"))
        .unwrap();
    assert_eq!(existing.id, created.id);

    let fetched = s.client.get_conversation(created.id).await.unwrap();
    assert_eq!(fetched, created);
    assert_eq!(s.sim.conversations_with_cons_id("0190b7e2-ticket"), 1);
    assert_eq!(s.sim.unimplemented_calls(), 0);
}

#[tokio::test]
async fn messages_round_trip_their_source_id() {
    let s = setup();
    let contact = s.client.create_contact(&jane()).await.unwrap();
    let conversation = s
        .client
        .create_conversation(&NewConversation::for_ticket(contact.id, "t-1"))
        .await
        .unwrap();

    let incoming = s
        .client
        .create_message(
            conversation.id,
            &NewMessage::incoming("Здравствуйте", "cons:o-1"),
        )
        .await
        .unwrap();
    assert_eq!(incoming.message_type, MessageType::Incoming);
    assert_eq!(incoming.source_id.as_deref(), Some("cons:o-1"));
    assert_eq!(incoming.conversation_id, conversation.id);
    assert_eq!(
        incoming.sender.as_ref().and_then(|s| s.id),
        Some(contact.id)
    );
    let note = s
        .client
        .create_message(
            conversation.id,
            &NewMessage::private_note("escalated", "cons:o-2"),
        )
        .await
        .unwrap();
    assert!(note.private);
    assert_eq!(note.message_type, MessageType::Outgoing);
    s.client
        .create_message(
            conversation.id,
            &NewMessage::outgoing("ticket received", "cons:o-3"),
        )
        .await
        .unwrap();

    let listed = s.client.messages(conversation.id).await.unwrap();
    let markers: Vec<_> = listed.iter().map(|m| m.source_id.as_deref()).collect();
    assert_eq!(
        markers,
        vec![Some("cons:o-1"), Some("cons:o-2"), Some("cons:o-3")]
    );
    assert_eq!(listed[0].content.as_deref(), Some("Здравствуйте"));
    let after = s
        .client
        .messages_after(conversation.id, incoming.id)
        .await
        .unwrap();
    assert_eq!(after.len(), 2);
    assert_eq!(s.sim.messages_with_source_id("cons:o-1"), 1);
}

#[tokio::test]
async fn attributes_labels_assignment_and_status() {
    let s = setup();
    s.sim.add_team(1, "консультация по ведению учета");
    s.sim.add_agent(7, "John Smith", "john@acme.inc");
    let contact = s.client.create_contact(&jane()).await.unwrap();
    let id = s
        .client
        .create_conversation(&NewConversation::for_ticket(contact.id, "t-1"))
        .await
        .unwrap()
        .id;

    let mut attributes = Map::new();
    attributes.insert("cons_id".to_owned(), json!("t-1"));
    attributes.insert("number_con".to_owned(), json!("000123"));
    s.client
        .set_custom_attributes(id, &attributes)
        .await
        .unwrap();
    assert_eq!(
        s.client
            .get_conversation(id)
            .await
            .unwrap()
            .custom_attributes,
        attributes
    );
    // Replace semantics: what is not sent is gone.
    let mut only = Map::new();
    only.insert("code_abonent".to_owned(), Value::from("N/A"));
    s.client.set_custom_attributes(id, &only).await.unwrap();
    assert_eq!(
        s.client
            .get_conversation(id)
            .await
            .unwrap()
            .custom_attributes,
        only
    );

    let labels = vec!["рус".to_owned(), "сайт".to_owned()];
    assert_eq!(s.client.set_labels(id, &labels).await.unwrap(), labels);
    assert_eq!(
        s.client.set_labels(id, &["тех".to_owned()]).await.unwrap(),
        vec!["тех".to_owned()]
    );
    assert_eq!(
        s.client.get_conversation(id).await.unwrap().labels,
        vec!["тех".to_owned()]
    );

    s.client.assign_team(id, 1).await.unwrap();
    s.client.assign_agent(id, Some(7)).await.unwrap();
    let conversation = s.client.get_conversation(id).await.unwrap();
    assert_eq!(
        (conversation.team_id(), conversation.assignee_id()),
        (Some(1), Some(7))
    );
    s.client.assign_agent(id, None).await.unwrap();
    s.client.assign_team(id, 0).await.unwrap();
    let conversation = s.client.get_conversation(id).await.unwrap();
    assert_eq!(
        (conversation.team_id(), conversation.assignee_id()),
        (None, None)
    );

    assert_eq!(
        s.client
            .toggle_status(id, ConversationStatus::Resolved)
            .await
            .unwrap(),
        ConversationStatus::Resolved
    );
    assert_eq!(
        s.client.get_conversation(id).await.unwrap().status,
        ConversationStatus::Resolved
    );
    assert_eq!(
        s.client
            .toggle_status(id, ConversationStatus::Snoozed)
            .await
            .unwrap(),
        ConversationStatus::Snoozed
    );

    let teams = s.client.teams().await.unwrap();
    assert_eq!(
        teams
            .iter()
            .map(|t| (t.id, t.name.as_str()))
            .collect::<Vec<_>>(),
        vec![(1, "консультация по ведению учета")]
    );
    assert_eq!(s.sim.unimplemented_calls(), 0);
}
