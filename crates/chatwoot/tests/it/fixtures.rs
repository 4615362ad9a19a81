//! The client's records decode Chatwoot's own response fixtures.

use crate::fixture;
use cons_chatwoot::{Contact, Conversation, ConversationStatus, Message, MessageType};
use serde_json::Value;

fn decode<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).unwrap()
}

#[test]
fn contacts_conversations_and_messages_decode() {
    let created = fixture("api/contacts.create.response.json");
    let contact: Contact = decode(created["payload"]["contact"].clone());
    assert_eq!(
        (contact.id, contact.identifier.as_deref()),
        (42, Some("crm-7f3a9c"))
    );
    assert_eq!(
        contact.source_ids_in(3).collect::<Vec<_>>(),
        vec!["b8e9c2f4-5d1a-4c6e-9f3b-2a7d8e1c0f45"]
    );
    let filtered: Vec<Contact> =
        decode(fixture("api/contacts.filter.response.json")["payload"].clone());
    assert_eq!(filtered.len(), 1);

    let shown: Conversation = decode(fixture("api/conversations.show.response.json"));
    assert_eq!(
        (shown.id, shown.inbox_id, shown.status),
        (118, 3, ConversationStatus::Open)
    );
    assert_eq!(
        (shown.contact_id(), shown.assignee_id(), shown.team_id()),
        (Some(42), Some(7), None)
    );
    let created: Conversation = decode(fixture("api/conversations.create.response.json"));
    assert_eq!(created.custom_attributes["ticket_id"], "TCK-2041");

    let incoming: Message = decode(fixture("api/messages.create.incoming.response.json"));
    assert_eq!(incoming.message_type, MessageType::Incoming);
    assert_eq!(incoming.source_id.as_deref(), Some("helpdesk:TCK-2041:c-1"));
    let note: Message = decode(fixture("api/messages.create.private_note.response.json"));
    assert_eq!(
        (note.message_type, note.private, note.source_id),
        (MessageType::Outgoing, true, None)
    );
}

#[test]
fn webhook_conversations_decode_too() {
    // The conversation object of webhooks has the REST fields the relay reads (webhook
    // messages do not: their `created_at` is an ISO string, so they need their own type).
    let created: Conversation = decode(fixture("webhooks/conversation_created.json"));
    assert_eq!((created.id, created.contact_id()), (118, Some(42)));
}
