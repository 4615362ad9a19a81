//! Chatwoot's webhooks from the simulated account (chatwoot.md §4.2–4.3): which events a
//! change causes, and their payloads in the shapes of `../shared/fixtures/chatwoot/webhooks/`
//! (`Conversations::EventDataPresenter#webhook_data`, `Message#webhook_data`), built the
//! moment the change happens and serialised like Rails' `to_json`.

use super::state::{
    ACCOUNT_NAME, Account, SimContact, SimConversation, SimMessage, SimSender, SimStatus,
    TOKEN_USER_EMAIL, TOKEN_USER_NAME,
};
use super::wire::{ContactPush, EMPTY, MessagePush, Sender, UserPush, iso, iso_millis};
use serde::Serialize;
use serde_json::{Map, Value};

/// One event, built when it happened, waiting to be handed to the sender.
#[derive(Debug)]
pub(super) struct Emitted {
    pub event: &'static str,
    pub conversation_id: u64,
    pub body: Vec<u8>,
}

/// The conversation columns whose change makes Chatwoot send `conversation_updated`, and
/// `updated_at`, which every save changes and which rides along as an incidental entry.
#[derive(Debug, Clone)]
pub(super) struct Tracked {
    status: SimStatus,
    assignee_id: Option<u64>,
    updated_at: f64,
    team_id: Option<u64>,
    snoozed_until: Option<i64>,
    custom_attributes: Map<String, Value>,
    first_reply_created_at: i64,
    waiting_since: i64,
    labels: Vec<String>,
}

impl Tracked {
    fn of(conversation: &SimConversation) -> Self {
        Self {
            status: conversation.status,
            assignee_id: conversation.assignee_id,
            updated_at: conversation.updated_at,
            team_id: conversation.team_id,
            snoozed_until: conversation.snoozed_until,
            custom_attributes: conversation.custom_attributes.clone(),
            first_reply_created_at: conversation.first_reply_created_at,
            waiting_since: conversation.waiting_since,
            labels: conversation.labels.clone(),
        }
    }

    /// `changed_attributes` of the save from `self` to `after`: one-key objects
    /// `{column: {previous_value, current_value}}` in the order of the `conversations`
    /// table's columns. Empty when nothing Chatwoot reports changed (`updated_at` alone
    /// sends nothing).
    fn changes(&self, after: &Self) -> Vec<Value> {
        let time = |secs: Option<i64>| {
            secs.filter(|s| *s != 0)
                .map_or(Value::Null, |s| Value::String(iso(s)))
        };
        let id = |id: Option<u64>| id.map_or(Value::Null, Value::from);
        // acts-as-taggable's cached list: the labels joined by ", ".
        let label_list = |labels: &[String]| {
            if labels.is_empty() {
                Value::Null
            } else {
                Value::String(labels.join(", "))
            }
        };
        let columns = [
            (
                "status",
                Value::from(self.status.as_str()),
                Value::from(after.status.as_str()),
            ),
            ("assignee_id", id(self.assignee_id), id(after.assignee_id)),
            (
                "updated_at",
                Value::String(iso_millis(self.updated_at)),
                Value::String(iso_millis(after.updated_at)),
            ),
            ("team_id", id(self.team_id), id(after.team_id)),
            (
                "snoozed_until",
                time(self.snoozed_until),
                time(after.snoozed_until),
            ),
            (
                "custom_attributes",
                Value::Object(self.custom_attributes.clone()),
                Value::Object(after.custom_attributes.clone()),
            ),
            (
                "first_reply_created_at",
                time(Some(self.first_reply_created_at)),
                time(Some(after.first_reply_created_at)),
            ),
            (
                "waiting_since",
                time(Some(self.waiting_since)),
                time(Some(after.waiting_since)),
            ),
            (
                "cached_label_list",
                label_list(&self.labels),
                label_list(&after.labels),
            ),
        ];
        let reported = columns
            .iter()
            .any(|(column, previous, current)| *column != "updated_at" && previous != current);
        if !reported {
            return Vec::new();
        }
        columns
            .into_iter()
            .filter(|(_, previous, current)| previous != current)
            .map(|(column, previous, current)| {
                let mut change = Map::new();
                change.insert("previous_value".to_owned(), previous);
                change.insert("current_value".to_owned(), current);
                let mut entry = Map::new();
                entry.insert(column.to_owned(), Value::Object(change));
                Value::Object(entry)
            })
            .collect()
    }
}

impl Account {
    /// What a change starts from, kept only while a webhook is configured.
    pub(super) fn before_change(&self, display_id: u64) -> Option<Tracked> {
        if !self.webhooks_on {
            return None;
        }
        self.conversation(display_id).map(Tracked::of)
    }

    /// The events of one save of a conversation: `conversation_status_changed` (with
    /// `changed_attributes: null`, as the listener reads it after the commit cleared it)
    /// when the status changed, and `conversation_updated` when anything it reports did.
    pub(super) fn after_change(&mut self, display_id: u64, before: Option<Tracked>) {
        let Some(before) = before else {
            return;
        };
        let Some(after) = self.conversation(display_id).map(Tracked::of) else {
            return;
        };
        let changes = before.changes(&after);
        if changes.is_empty() {
            return;
        }
        if before.status != after.status {
            self.emit_conversation(display_id, "conversation_status_changed", Some(Value::Null));
        }
        self.emit_conversation(
            display_id,
            "conversation_updated",
            Some(Value::Array(changes)),
        );
    }

    pub(super) fn conversation_created(&mut self, display_id: u64) {
        if self.webhooks_on {
            self.emit_conversation(display_id, "conversation_created", None);
        }
    }

    /// `message_created`, for every message but activity messages (private notes too).
    pub(super) fn message_created(&mut self, message_id: u64) {
        if !self.webhooks_on {
            return;
        }
        let Some(message) = self.message(message_id) else {
            return;
        };
        let Some(conversation) = self.conversation(message.conversation_id) else {
            return;
        };
        let conversation_id = conversation.id;
        let body = rails_json(&MessageEvent::of(self, conversation, message));
        self.emitted.push(Emitted {
            event: "message_created",
            conversation_id,
            body,
        });
    }

    fn emit_conversation(
        &mut self,
        display_id: u64,
        event: &'static str,
        changed_attributes: Option<Value>,
    ) {
        let Some(conversation) = self.conversation(display_id) else {
            return;
        };
        let body = rails_json(&ConversationEvent {
            conversation: ConversationData::of(self, conversation),
            event,
            changed_attributes,
        });
        self.emitted.push(Emitted {
            event,
            conversation_id: display_id,
            body,
        });
    }
}

/// Rails' `to_json`: compact; `<`, `>`, `&` (and U+2028/2029) escaped as `\uXXXX`;
/// other non-ASCII left as UTF-8. These characters only ever stand inside JSON strings,
/// so escaping them in the finished text is exact.
fn rails_json<T: Serialize>(view: &T) -> Vec<u8> {
    let compact = serde_json::to_string(view).unwrap_or_else(|_| "null".to_owned());
    let mut out = String::with_capacity(compact.len() + 16);
    for c in compact.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            other => out.push(other),
        }
    }
    out.into_bytes()
}

/// `Account#webhook_data`.
#[derive(Serialize)]
struct AccountRef {
    id: u64,
    name: &'static str,
}

impl AccountRef {
    fn of(account: &Account) -> Self {
        Self {
            id: account.account_id,
            name: ACCOUNT_NAME,
        }
    }
}

/// The whole `contact_inbox` row.
#[derive(Serialize)]
struct ContactInboxRow<'a> {
    id: u64,
    contact_id: u64,
    inbox_id: u64,
    source_id: &'a str,
    created_at: String,
    updated_at: String,
    hmac_verified: bool,
    pubsub_token: &'a str,
}

/// `Team#push_event_data` (chatwoot.md §4.3).
#[derive(Serialize)]
struct TeamPush<'a> {
    id: u64,
    name: &'a str,
    icon: Option<()>,
    icon_color: Option<()>,
}

#[derive(Serialize)]
struct WebhookMeta<'a> {
    sender: Option<ContactPush<'a>>,
    assignee: Option<UserPush<'a>>,
    assignee_type: Option<&'static str>,
    team: Option<TeamPush<'a>>,
    hmac_verified: bool,
}

/// `Conversations::EventDataPresenter#webhook_data`: the conversation of every event.
#[derive(Serialize)]
struct ConversationData<'a> {
    additional_attributes: &'a Map<String, Value>,
    can_reply: bool,
    channel: &'static str,
    contact_inbox: Option<ContactInboxRow<'a>>,
    id: u64,
    inbox_id: u64,
    messages: Vec<MessagePush<'a>>,
    labels: &'a [String],
    meta: WebhookMeta<'a>,
    status: &'static str,
    custom_attributes: &'a Map<String, Value>,
    snoozed_until: Option<String>,
    unread_count: u64,
    first_reply_created_at: Option<String>,
    priority: Option<&'a str>,
    waiting_since: i64,
    agent_last_seen_at: i64,
    contact_last_seen_at: i64,
    last_activity_at: i64,
    timestamp: i64,
    created_at: i64,
    updated_at: f64,
    account: AccountRef,
}

impl<'a> ConversationData<'a> {
    fn of(account: &'a Account, conversation: &'a SimConversation) -> Self {
        let assignee = conversation
            .assignee_id
            .filter(|id| account.agents.contains_key(id))
            .map(|id| UserPush::of(account, id));
        let contact_inbox = account
            .contact_inbox_row(&conversation.source_id)
            .map(|row| ContactInboxRow {
                id: row.id,
                contact_id: row.contact_id,
                inbox_id: account.inbox_id,
                source_id: &conversation.source_id,
                created_at: iso(row.created_at),
                updated_at: iso(row.created_at),
                hmac_verified: false,
                pubsub_token: &row.pubsub_token,
            });
        Self {
            additional_attributes: &conversation.additional_attributes,
            can_reply: true,
            channel: "Channel::Api",
            contact_inbox,
            id: conversation.id,
            inbox_id: account.inbox_id,
            messages: conversation
                .last_public_message()
                .map(|m| MessagePush::of(account, conversation, m))
                .into_iter()
                .collect(),
            labels: &conversation.labels,
            meta: WebhookMeta {
                sender: account
                    .contact(conversation.contact_id)
                    .map(ContactPush::of),
                assignee_type: assignee.as_ref().map(|_| "User"),
                assignee,
                team: conversation
                    .team_id
                    .and_then(|id| account.teams.get(&id))
                    .map(|team| TeamPush {
                        id: team.id,
                        name: &team.name,
                        icon: None,
                        icon_color: None,
                    }),
                hmac_verified: false,
            },
            status: conversation.status.as_str(),
            custom_attributes: &conversation.custom_attributes,
            snoozed_until: conversation.snoozed_until.map(iso),
            unread_count: conversation.unread_count,
            first_reply_created_at: (conversation.first_reply_created_at != 0)
                .then(|| iso(conversation.first_reply_created_at)),
            priority: conversation.priority.as_deref(),
            waiting_since: conversation.waiting_since,
            agent_last_seen_at: 0,
            contact_last_seen_at: 0,
            last_activity_at: conversation.last_activity_at,
            timestamp: conversation.last_activity_at,
            created_at: conversation.created_at,
            updated_at: conversation.updated_at,
            account: AccountRef::of(account),
        }
    }
}

/// `conversation_created` / `_status_changed` / `_updated`: the conversation plus `event`
/// (and `changed_attributes` for the last two).
#[derive(Serialize)]
struct ConversationEvent<'a> {
    #[serde(flatten)]
    conversation: ConversationData<'a>,
    event: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    changed_attributes: Option<Value>,
}

#[derive(Serialize)]
struct InboxRef<'a> {
    id: u64,
    name: &'a str,
}

/// `Contact#webhook_data`: a message's contact sender (no `type` key).
#[derive(Serialize)]
struct ContactSender<'a> {
    account: AccountRef,
    additional_attributes: &'a Map<String, Value>,
    avatar: &'static str,
    custom_attributes: &'a Map<String, Value>,
    email: Option<&'a str>,
    id: u64,
    identifier: Option<&'a str>,
    name: &'a str,
    phone_number: Option<&'a str>,
    thumbnail: &'static str,
    blocked: bool,
}

/// `User#webhook_data`.
#[derive(Serialize)]
struct UserSender<'a> {
    id: u64,
    name: &'a str,
    email: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// A message webhook's `sender`: `Contact#webhook_data` or `User#webhook_data`.
type MessageSender<'a> = Sender<ContactSender<'a>, UserSender<'a>>;

fn contact_sender<'a>(account: &Account, c: &'a SimContact) -> ContactSender<'a> {
    ContactSender {
        account: AccountRef::of(account),
        additional_attributes: &c.additional_attributes,
        avatar: "",
        custom_attributes: &c.custom_attributes,
        email: c.email.as_deref(),
        id: c.id,
        identifier: c.identifier.as_deref(),
        name: &c.name,
        phone_number: c.phone_number.as_deref(),
        thumbnail: "",
        blocked: c.blocked,
    }
}

fn message_sender(account: &Account, sender: SimSender) -> MessageSender<'_> {
    let user = |id: u64| {
        let (name, email) = account
            .agents
            .get(&id)
            .map_or((TOKEN_USER_NAME, TOKEN_USER_EMAIL), |agent| {
                (agent.name.as_str(), agent.email.as_str())
            });
        UserSender {
            id,
            name,
            email,
            kind: "user",
        }
    };
    Sender::of(account, sender, |c| contact_sender(account, c), user)
}

/// `Message#webhook_data` + `event`: string `message_type`, ISO `created_at`, the whole
/// conversation nested, no top-level `status` or `conversation_id`.
#[derive(Serialize)]
struct MessageEvent<'a> {
    account: AccountRef,
    additional_attributes: &'a Map<String, Value>,
    content_attributes: &'a Map<String, Value>,
    content_type: &'a str,
    content: Option<&'a str>,
    conversation: ConversationData<'a>,
    created_at: String,
    id: u64,
    inbox: InboxRef<'a>,
    message_type: &'static str,
    private: bool,
    sender: MessageSender<'a>,
    source_id: Option<&'a str>,
    event: &'static str,
}

impl<'a> MessageEvent<'a> {
    fn of(
        account: &'a Account,
        conversation: &'a SimConversation,
        message: &'a SimMessage,
    ) -> Self {
        Self {
            account: AccountRef::of(account),
            additional_attributes: &EMPTY,
            content_attributes: &message.content_attributes,
            content_type: &message.content_type,
            content: message.content.as_deref(),
            conversation: ConversationData::of(account, conversation),
            created_at: iso(message.created_at),
            id: message.id,
            inbox: InboxRef {
                id: account.inbox_id,
                name: &account.inbox_name,
            },
            message_type: message.message_type.as_str(),
            private: message.private,
            sender: message_sender(account, message.sender),
            source_id: message.source_id.as_deref(),
            event: "message_created",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rails_json_escapes_html_characters_only() {
        let body = rails_json(&serde_json::json!({"a": "Цена < 10 & > 5\u{2028}"}));
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"a":"Цена \u003c 10 \u0026 \u003e 5\u2028"}"#
        );
    }
}
