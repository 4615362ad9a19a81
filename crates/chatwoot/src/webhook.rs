//! Chatwoot's webhook deliveries as the relay reads them (chatwoot.md §4.3): a flat JSON
//! object with `event`; conversation events are the conversation object itself, message
//! events nest it under `conversation`. Both carry the conversation's full state, which
//! is all the sync needs.

use crate::types::{Conversation, MessageType};
use serde::Deserialize;
use serde_json::Value;

/// A delivery the sync acts on.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookEvent {
    /// `conversation_created`, `conversation_status_changed`, `conversation_updated`.
    Conversation(Conversation),
    /// `message_created`.
    Message {
        conversation: Conversation,
        message: WebhookMessage,
    },
    /// Any other event (acknowledged, not acted on).
    Other,
}

/// The parts of a delivered message the sync reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WebhookMessage {
    pub id: u64,
    pub message_type: MessageType,
    #[serde(default)]
    pub private: bool,
    /// Echoed verbatim: our own messages carry our marker here.
    #[serde(default)]
    pub source_id: Option<String>,
    /// ISO 8601 in webhooks.
    #[serde(default)]
    pub created_at: Option<String>,
}

/// Why a delivery could not be read.
#[derive(Debug, thiserror::Error)]
#[error("unreadable {event} delivery: {reason}")]
pub struct WebhookError {
    pub event: String,
    pub reason: String,
}

impl WebhookEvent {
    pub fn parse(body: &Value) -> Result<WebhookEvent, WebhookError> {
        let event = body
            .get("event")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let fail = |error: serde_json::Error| WebhookError {
            event: event.to_owned(),
            // serde's message names the field and the expected type, never the value.
            reason: error.to_string(),
        };
        match event {
            "conversation_created" | "conversation_status_changed" | "conversation_updated" => {
                Conversation::deserialize(body)
                    .map(WebhookEvent::Conversation)
                    .map_err(fail)
            }
            "message_created" => {
                let conversation = body.get("conversation").ok_or_else(|| WebhookError {
                    event: event.to_owned(),
                    reason: "no conversation".into(),
                })?;
                Ok(WebhookEvent::Message {
                    conversation: Conversation::deserialize(conversation).map_err(fail)?,
                    message: WebhookMessage::deserialize(body).map_err(fail)?,
                })
            }
            _ => Ok(WebhookEvent::Other),
        }
    }

    /// The conversation the delivery shows, if any.
    pub fn conversation(&self) -> Option<&Conversation> {
        match self {
            WebhookEvent::Conversation(conversation)
            | WebhookEvent::Message { conversation, .. } => Some(conversation),
            WebhookEvent::Other => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConversationStatus;

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/../../../shared/fixtures/chatwoot/webhooks/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn every_fixture_parses() {
        for name in [
            "conversation_created.json",
            "conversation_status_changed.json",
            "conversation_updated.assignee.json",
            "conversation_updated.custom_attributes.json",
            "conversation_updated.status.json",
            "message_created.incoming.json",
            "message_created.outgoing.json",
            "message_created.outgoing.wire-body.txt",
            "message_created.private_note.json",
        ] {
            let event = WebhookEvent::parse(&fixture(name)).unwrap();
            let conversation = event.conversation().unwrap();
            assert!(conversation.id > 0, "{name}");
            assert!(conversation.updated_at.is_some(), "{name}: no updated_at");
        }
        for name in ["contact_created.json", "conversation_typing_on.json"] {
            assert_eq!(
                WebhookEvent::parse(&fixture(name)).unwrap(),
                WebhookEvent::Other
            );
        }
    }

    #[test]
    fn status_assignee_and_message_are_read() {
        let resolved = WebhookEvent::parse(&fixture("conversation_updated.status.json")).unwrap();
        assert_eq!(
            resolved.conversation().unwrap().status,
            ConversationStatus::Resolved
        );
        let assigned = WebhookEvent::parse(&fixture("conversation_updated.assignee.json")).unwrap();
        assert!(assigned.conversation().unwrap().assignee_id().is_some());
        let WebhookEvent::Message { message, .. } =
            WebhookEvent::parse(&fixture("message_created.private_note.json")).unwrap()
        else {
            panic!("a message event")
        };
        assert!(message.private);
        assert_eq!(message.message_type, MessageType::Outgoing);
    }

    /// Any JSON at all: scalars, arrays and objects nested a few levels, with keys that
    /// collide with the ones the parser reads.
    fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            let key = prop_oneof![
                Just("id".to_owned()),
                Just("status".to_owned()),
                Just("meta".to_owned()),
                Just("updated_at".to_owned()),
                Just("custom_attributes".to_owned()),
                Just("message_type".to_owned()),
                "[a-z_]{1,10}",
            ];
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                proptest::collection::btree_map(key, inner, 0..8)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn any_json_is_read_or_refused_without_panic(
            event in proptest::sample::select(vec![
                "conversation_created", "conversation_status_changed",
                "conversation_updated", "message_created", "other",
            ]),
            body in any_json(),
            conversation in any_json(),
        ) {
            let mut body = match body {
                Value::Object(map) => Value::Object(map),
                other => serde_json::json!({"payload": other}),
            };
            body["event"] = Value::from(event);
            body["conversation"] = conversation;
            let _ = WebhookEvent::parse(&body);
        }
    }
}
