//! The Chatwoot records the relay reads and the inputs it writes. Reading is tolerant
//! (unknown fields ignored, `null` where Chatwoot may send it); `Debug` never prints names,
//! e-mails, phone numbers or message text.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

/// The conversation custom attribute that carries our ticket id (`cons_id`).
pub const CONS_ID_ATTRIBUTE: &str = "cons_id";

/// Conversation status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationStatus {
    Open,
    Resolved,
    Pending,
    Snoozed,
}

impl ConversationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Resolved => "resolved",
            Self::Pending => "pending",
            Self::Snoozed => "snoozed",
        }
    }
}

/// Message type. REST message objects carry it as an integer (0 incoming, 1 outgoing,
/// 2 activity, 3 template), webhooks and requests as the name; both are read, the name is
/// written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// From the contact (allowed through the API in API inboxes only).
    Incoming,
    /// From an agent to the contact (or a private note when `private`).
    Outgoing,
    Activity,
    Template,
}

impl MessageType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Incoming => "incoming",
            Self::Outgoing => "outgoing",
            Self::Activity => "activity",
            Self::Template => "template",
        }
    }

    fn from_code(code: u64) -> Option<Self> {
        match code {
            0 => Some(Self::Incoming),
            1 => Some(Self::Outgoing),
            2 => Some(Self::Activity),
            3 => Some(Self::Template),
            _ => None,
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "incoming" => Some(Self::Incoming),
            "outgoing" => Some(Self::Outgoing),
            "activity" => Some(Self::Activity),
            "template" => Some(Self::Template),
            _ => None,
        }
    }
}

impl Serialize for MessageType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MessageType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TypeVisitor;
        impl Visitor<'_> for TypeVisitor {
            type Value = MessageType;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a message type (0-3 or its name)")
            }

            fn visit_u64<E: de::Error>(self, code: u64) -> Result<MessageType, E> {
                MessageType::from_code(code).ok_or_else(|| E::custom("unknown message type code"))
            }

            fn visit_i64<E: de::Error>(self, code: i64) -> Result<MessageType, E> {
                u64::try_from(code)
                    .ok()
                    .and_then(MessageType::from_code)
                    .ok_or_else(|| E::custom("unknown message type code"))
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<MessageType, E> {
                MessageType::from_name(name).ok_or_else(|| E::custom("unknown message type name"))
            }
        }
        deserializer.deserialize_any(TypeVisitor)
    }
}

/// `null` reads as an empty map (Chatwoot's jsonb columns can be null on old rows).
fn map_or_null<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Map<String, Value>, D::Error> {
    Ok(Option::<Map<String, Value>>::deserialize(deserializer)?.unwrap_or_default())
}

fn vec_or_null<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// The inbox of a contact inbox.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InboxRef {
    pub id: u64,
    #[serde(default)]
    pub channel_type: Option<String>,
}

/// A contact's identity in one inbox.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ContactInbox {
    #[serde(default)]
    pub source_id: Option<String>,
    #[serde(default)]
    pub inbox: Option<InboxRef>,
}

/// A Chatwoot contact.
#[derive(Clone, PartialEq, Deserialize)]
pub struct Contact {
    pub id: u64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone_number: Option<String>,
    /// Our client id (unique per account, compared case-sensitively).
    #[serde(default)]
    pub identifier: Option<String>,
    #[serde(default, deserialize_with = "map_or_null")]
    pub custom_attributes: Map<String, Value>,
    #[serde(default, deserialize_with = "map_or_null")]
    pub additional_attributes: Map<String, Value>,
    #[serde(default)]
    pub blocked: bool,
    #[serde(default)]
    pub created_at: Option<i64>,
    /// Absent in conversation `meta.sender`.
    #[serde(default, deserialize_with = "vec_or_null")]
    pub contact_inboxes: Vec<ContactInbox>,
}

impl Contact {
    /// The contact's `source_id`s in one inbox (an API inbox holds one per conversation
    /// created without a `source_id`).
    pub fn source_ids_in(&self, inbox_id: u64) -> impl Iterator<Item = &str> {
        self.contact_inboxes
            .iter()
            .filter(move |ci| ci.inbox.as_ref().is_some_and(|i| i.id == inbox_id))
            .filter_map(|ci| ci.source_id.as_deref())
    }
}

impl std::fmt::Debug for Contact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names, e-mails and phone numbers are personal data: never in logs.
        f.debug_struct("Contact")
            .field("id", &self.id)
            .field("identifier", &self.identifier)
            .field("has_email", &self.email.is_some())
            .field("has_phone_number", &self.phone_number.is_some())
            .field("contact_inboxes", &self.contact_inboxes.len())
            .finish_non_exhaustive()
    }
}

/// An agent, as conversations and assignments show it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Agent {
    pub id: u64,
    #[serde(default)]
    pub name: Option<String>,
}

/// A team of the account.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Team {
    pub id: u64,
    #[serde(default)]
    pub name: String,
}

/// `meta` of a conversation.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ConversationMeta {
    /// The conversation's contact.
    #[serde(default)]
    pub sender: Option<Contact>,
    #[serde(default)]
    pub assignee: Option<Agent>,
    #[serde(default)]
    pub team: Option<Team>,
}

/// A Chatwoot conversation. `id` is the per-account display id, the one every
/// `conversations/{id}` path takes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Conversation {
    pub id: u64,
    #[serde(default)]
    pub account_id: Option<u64>,
    pub inbox_id: u64,
    pub status: ConversationStatus,
    #[serde(default)]
    pub uuid: Option<String>,
    #[serde(default, deserialize_with = "map_or_null")]
    pub custom_attributes: Map<String, Value>,
    #[serde(default, deserialize_with = "map_or_null")]
    pub additional_attributes: Map<String, Value>,
    #[serde(default, deserialize_with = "vec_or_null")]
    pub labels: Vec<String>,
    #[serde(default)]
    pub priority: Option<String>,
    #[serde(default)]
    pub created_at: Option<i64>,
    #[serde(default)]
    pub last_activity_at: Option<i64>,
    /// Seconds with a fraction; Chatwoot's clock for "which state is newer".
    #[serde(default, deserialize_with = "seconds_or_null")]
    pub updated_at: Option<f64>,
    #[serde(default)]
    pub meta: ConversationMeta,
}

impl Conversation {
    /// Our ticket id, from `custom_attributes.cons_id`.
    pub fn cons_id(&self) -> Option<&str> {
        self.custom_attributes
            .get(CONS_ID_ATTRIBUTE)
            .and_then(Value::as_str)
    }

    /// The contact's id (`meta.sender.id`).
    pub fn contact_id(&self) -> Option<u64> {
        self.meta.sender.as_ref().map(|c| c.id)
    }

    pub fn assignee_id(&self) -> Option<u64> {
        self.meta.assignee.as_ref().map(|a| a.id)
    }

    pub fn team_id(&self) -> Option<u64> {
        self.meta.team.as_ref().map(|t| t.id)
    }
}

/// Who wrote a message: `type` is `contact`, `user`, `agent_bot`, … (absent for contacts
/// in some views).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MessageSender {
    #[serde(default)]
    pub id: Option<u64>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

/// A Chatwoot message.
#[derive(Clone, PartialEq, Deserialize)]
pub struct Message {
    pub id: u64,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub inbox_id: Option<u64>,
    /// Display id of the conversation.
    pub conversation_id: u64,
    pub message_type: MessageType,
    #[serde(default)]
    pub content_type: Option<String>,
    /// `sent`, `delivered`, `read`, `failed`.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub private: bool,
    /// Echo of the `source_id` the message was created with: our outbox marker.
    #[serde(default)]
    pub source_id: Option<String>,
    #[serde(default)]
    pub created_at: Option<i64>,
    #[serde(default, deserialize_with = "map_or_null")]
    pub content_attributes: Map<String, Value>,
    #[serde(default)]
    pub sender: Option<MessageSender>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Message text is personal data: only its length.
        f.debug_struct("Message")
            .field("id", &self.id)
            .field("conversation_id", &self.conversation_id)
            .field("message_type", &self.message_type)
            .field("private", &self.private)
            .field("source_id", &self.source_id)
            .field(
                "content_chars",
                &self.content.as_ref().map(|c| c.chars().count()),
            )
            .finish_non_exhaustive()
    }
}

/// A contact to create. `identifier` is our client id; Chatwoot keeps it unique per
/// account, which makes creation idempotent by lookup.
#[derive(Clone, PartialEq, Default)]
pub struct NewContact {
    pub identifier: String,
    pub name: String,
    /// E.164 with `+`, or Chatwoot refuses the contact (422).
    pub phone_number: Option<String>,
    pub email: Option<String>,
    pub custom_attributes: Map<String, Value>,
    pub additional_attributes: Map<String, Value>,
}

impl std::fmt::Debug for NewContact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewContact")
            .field("identifier", &self.identifier)
            .field("has_email", &self.email.is_some())
            .field("has_phone_number", &self.phone_number.is_some())
            .finish_non_exhaustive()
    }
}

/// A conversation to create in the configured API inbox.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewConversation {
    pub contact_id: u64,
    /// The contact inbox to use; `None` makes Chatwoot create a new one (a fresh UUID).
    pub source_id: Option<String>,
    /// Must hold our ticket id under [`CONS_ID_ATTRIBUTE`] (see [`NewConversation::for_ticket`]).
    pub custom_attributes: Map<String, Value>,
    pub team_id: Option<u64>,
    pub assignee_id: Option<u64>,
    /// `open` when absent.
    pub status: Option<ConversationStatus>,
}

impl NewConversation {
    /// A conversation of `contact_id` tagged with our ticket id.
    pub fn for_ticket(contact_id: u64, cons_id: &str) -> Self {
        let mut custom_attributes = Map::new();
        custom_attributes.insert(
            CONS_ID_ATTRIBUTE.to_owned(),
            Value::String(cons_id.to_owned()),
        );
        Self {
            contact_id,
            custom_attributes,
            ..Self::default()
        }
    }
}

/// A message to post.
#[derive(Clone, PartialEq)]
pub struct NewMessage {
    pub content: String,
    pub message_type: MessageType,
    /// A private note (agents only) when true.
    pub private: bool,
    /// Our marker, echoed back as `source_id` in responses, listings and webhooks: how a
    /// retry finds the message an ambiguous attempt created, and how echo suppression
    /// recognises our own messages.
    pub source_id: Option<String>,
    pub content_attributes: Map<String, Value>,
}

impl NewMessage {
    /// A message from the contact (what the client wrote to us).
    pub fn incoming(content: impl Into<String>, source_id: impl Into<String>) -> Self {
        Self::new(
            content.into(),
            MessageType::Incoming,
            false,
            source_id.into(),
        )
    }

    /// A message to the contact, sent as the token's user.
    pub fn outgoing(content: impl Into<String>, source_id: impl Into<String>) -> Self {
        Self::new(
            content.into(),
            MessageType::Outgoing,
            false,
            source_id.into(),
        )
    }

    /// A private note, visible to agents only.
    pub fn private_note(content: impl Into<String>, source_id: impl Into<String>) -> Self {
        Self::new(
            content.into(),
            MessageType::Outgoing,
            true,
            source_id.into(),
        )
    }

    fn new(content: String, message_type: MessageType, private: bool, source_id: String) -> Self {
        Self {
            content,
            message_type,
            private,
            source_id: Some(source_id),
            content_attributes: Map::new(),
        }
    }
}

impl std::fmt::Debug for NewMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewMessage")
            .field("message_type", &self.message_type)
            .field("private", &self.private)
            .field("source_id", &self.source_id)
            .field("content_chars", &self.content.chars().count())
            .finish_non_exhaustive()
    }
}

/// A number of seconds; `null`, a missing field or an ISO string (nested objects use one)
/// read as `None` rather than failing the whole conversation.
fn seconds_or_null<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::Number(number) => number.as_f64(),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_type_reads_codes_and_names_and_writes_names() {
        let read = |raw: &str| serde_json::from_str::<MessageType>(raw).ok();
        assert_eq!(read("0"), Some(MessageType::Incoming));
        assert_eq!(read("1"), Some(MessageType::Outgoing));
        assert_eq!(read("3"), Some(MessageType::Template));
        assert_eq!(read("\"outgoing\""), Some(MessageType::Outgoing));
        assert_eq!(read("7"), None);
        assert_eq!(
            serde_json::to_string(&MessageType::Incoming)
                .ok()
                .as_deref(),
            Some("\"incoming\"")
        );
    }

    #[test]
    fn nulls_read_as_empty() {
        let conversation: Conversation = serde_json::from_str(
            r#"{"id":5,"inbox_id":3,"status":"snoozed","custom_attributes":null,"labels":null}"#,
        )
        .unwrap();
        assert!(conversation.custom_attributes.is_empty());
        assert!(conversation.labels.is_empty());
        assert_eq!(conversation.cons_id(), None);
        assert_eq!(conversation.status, ConversationStatus::Snoozed);
    }

    #[test]
    fn debug_keeps_personal_data_out() {
        let contact = NewContact {
            identifier: "client-1".to_owned(),
            name: "Jane Doe".to_owned(),
            email: Some("jane@acme.inc".to_owned()),
            phone_number: Some("+14155550123".to_owned()),
            ..NewContact::default()
        };
        let printed = format!("{contact:?}");
        assert!(printed.contains("client-1"));
        assert!(
            !printed.contains("Jane") && !printed.contains("jane@") && !printed.contains("4155")
        );
        let message = NewMessage::incoming("my card number is 4111", "m-1");
        assert!(!format!("{message:?}").contains("4111"));
    }

    #[test]
    fn for_ticket_tags_the_conversation() {
        let new = NewConversation::for_ticket(42, "0190-abc");
        assert_eq!(
            new.custom_attributes.get("cons_id"),
            Some(&Value::String("0190-abc".to_owned()))
        );
        assert_eq!(new.contact_id, 42);
    }
}
