//! Chatwoot's JSON shapes (the jbuilder views of 4.16.x, as in
//! `../shared/fixtures/chatwoot/api/`), serialised straight from the stored records by
//! borrowing them: no intermediate `serde_json::Value` trees on the hot path.

use super::state::{
    Account, SimContact, SimConversation, SimMessage, SimSender, SimStatus, TOKEN_USER_NAME,
};
use serde::Serialize;
use serde::ser::Serializer;
use serde_json::{Map, Value};

/// Rails' `Time#as_json`: ISO-8601 with milliseconds and `Z`.
const RAILS_TIME: &str = "%Y-%m-%dT%H:%M:%S%.3fZ";

pub(super) fn iso(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.format(RAILS_TIME).to_string())
        .unwrap_or_default()
}

/// [`iso`] of a time kept with milliseconds (`updated_at`).
pub(super) fn iso_millis(secs: f64) -> String {
    chrono::DateTime::from_timestamp_millis((secs * 1000.0).round() as i64)
        .map(|t| t.format(RAILS_TIME).to_string())
        .unwrap_or_default()
}

pub(super) static EMPTY: std::sync::LazyLock<Map<String, Value>> =
    std::sync::LazyLock::new(Map::new);

/// `api/v1/models/_inbox_slim`.
#[derive(Serialize)]
struct InboxSlim<'a> {
    id: u64,
    avatar_url: &'static str,
    channel_id: u64,
    name: &'a str,
    channel_type: &'static str,
    provider: Option<()>,
}

impl<'a> InboxSlim<'a> {
    fn of(account: &'a Account) -> Self {
        Self {
            id: account.inbox_id,
            avatar_url: "",
            channel_id: account.inbox_id,
            name: &account.inbox_name,
            channel_type: "Channel::Api",
            provider: None,
        }
    }
}

/// The full inbox record (`payload.contact_inbox.inbox` of a contact create).
#[derive(Serialize)]
struct InboxFull<'a> {
    id: u64,
    channel_id: u64,
    account_id: u64,
    name: &'a str,
    created_at: &'static str,
    updated_at: &'static str,
    channel_type: &'static str,
    enable_auto_assignment: bool,
    greeting_enabled: bool,
    greeting_message: Option<()>,
    email_address: Option<()>,
    working_hours_enabled: bool,
    out_of_office_message: Option<()>,
    timezone: &'static str,
    enable_email_collect: bool,
    csat_survey_enabled: bool,
    allow_messages_after_resolved: bool,
    auto_assignment_config: &'a Map<String, Value>,
    lock_to_single_conversation: bool,
    portal_id: Option<()>,
    sender_name_type: &'static str,
    business_name: Option<()>,
    csat_config: &'a Map<String, Value>,
}

impl<'a> InboxFull<'a> {
    fn of(account: &'a Account) -> Self {
        Self {
            id: account.inbox_id,
            channel_id: account.inbox_id,
            account_id: account.account_id,
            name: &account.inbox_name,
            created_at: "2026-08-01T08:00:11.000Z",
            updated_at: "2026-08-01T08:00:11.000Z",
            channel_type: "Channel::Api",
            enable_auto_assignment: true,
            greeting_enabled: false,
            greeting_message: None,
            email_address: None,
            working_hours_enabled: false,
            out_of_office_message: None,
            timezone: "UTC",
            enable_email_collect: true,
            csat_survey_enabled: false,
            allow_messages_after_resolved: true,
            auto_assignment_config: &EMPTY,
            lock_to_single_conversation: false,
            portal_id: None,
            sender_name_type: "friendly",
            business_name: None,
            csat_config: &EMPTY,
        }
    }
}

#[derive(Serialize)]
struct ContactInboxJson<'a> {
    source_id: &'a str,
    inbox: InboxSlim<'a>,
}

/// `contact_inboxes` of a contact, serialised lazily from its source ids.
struct ContactInboxes<'a> {
    account: &'a Account,
    source_ids: &'a [String],
}

impl Serialize for ContactInboxes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.source_ids.iter().map(|source_id| ContactInboxJson {
            source_id,
            inbox: InboxSlim::of(self.account),
        }))
    }
}

/// `api/v1/models/_contact`.
#[derive(Serialize)]
struct ContactJson<'a> {
    additional_attributes: &'a Map<String, Value>,
    availability_status: &'static str,
    email: Option<&'a str>,
    id: u64,
    name: &'a str,
    phone_number: Option<&'a str>,
    blocked: bool,
    identifier: Option<&'a str>,
    thumbnail: &'static str,
    custom_attributes: &'a Map<String, Value>,
    created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_activity_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    contact_inboxes: Option<ContactInboxes<'a>>,
}

impl<'a> ContactJson<'a> {
    fn of(account: &'a Account, contact: &'a SimContact, with_inboxes: bool) -> Self {
        Self {
            additional_attributes: &contact.additional_attributes,
            availability_status: "offline",
            email: contact.email.as_deref(),
            id: contact.id,
            name: &contact.name,
            phone_number: contact.phone_number.as_deref(),
            blocked: contact.blocked,
            identifier: contact.identifier.as_deref(),
            thumbnail: "",
            custom_attributes: &contact.custom_attributes,
            created_at: contact.created_at,
            last_activity_at: contact.last_activity_at,
            contact_inboxes: with_inboxes.then_some(ContactInboxes {
                account,
                source_ids: &contact.source_ids,
            }),
        }
    }
}

/// `Contact#push_event_data` (message senders).
#[derive(Serialize)]
pub(super) struct ContactPush<'a> {
    additional_attributes: &'a Map<String, Value>,
    custom_attributes: &'a Map<String, Value>,
    email: Option<&'a str>,
    id: u64,
    identifier: Option<&'a str>,
    name: &'a str,
    phone_number: Option<&'a str>,
    thumbnail: &'static str,
    blocked: bool,
    #[serde(rename = "type")]
    kind: &'static str,
}

impl<'a> ContactPush<'a> {
    pub(super) fn of(contact: &'a SimContact) -> Self {
        Self {
            additional_attributes: &contact.additional_attributes,
            custom_attributes: &contact.custom_attributes,
            email: contact.email.as_deref(),
            id: contact.id,
            identifier: contact.identifier.as_deref(),
            name: &contact.name,
            phone_number: contact.phone_number.as_deref(),
            thumbnail: "",
            blocked: contact.blocked,
            kind: "contact",
        }
    }
}

/// `User#push_event_data` (message senders).
#[derive(Serialize)]
pub(super) struct UserPush<'a> {
    id: u64,
    name: &'a str,
    available_name: &'a str,
    avatar_url: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    availability_status: &'static str,
    thumbnail: &'static str,
}

impl<'a> UserPush<'a> {
    pub(super) fn of(account: &'a Account, user_id: u64) -> Self {
        let name = match account.agents.get(&user_id) {
            Some(agent) => agent.name.as_str(),
            None => TOKEN_USER_NAME,
        };
        Self {
            id: user_id,
            name,
            available_name: name,
            avatar_url: "",
            kind: "user",
            availability_status: "offline",
            thumbnail: "",
        }
    }
}

/// A message's `sender`: a contact, a user, or `null` (a contact that is gone), each in
/// the format of the view at hand.
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum Sender<C, U> {
    Contact(C),
    User(U),
    Nobody(Option<()>),
}

impl<C, U> Sender<C, U> {
    pub(super) fn of<'a>(
        account: &'a Account,
        sender: SimSender,
        contact: impl FnOnce(&'a SimContact) -> C,
        user: impl FnOnce(u64) -> U,
    ) -> Self {
        match sender {
            SimSender::Contact(id) => account
                .contact(id)
                .map_or(Self::Nobody(None), |c| Self::Contact(contact(c))),
            SimSender::User(id) => Self::User(user(id)),
        }
    }
}

/// The push format (REST messages and messages nested in conversations).
type SenderJson<'a> = Sender<ContactPush<'a>, UserPush<'a>>;

fn sender_json(account: &Account, sender: SimSender) -> SenderJson<'_> {
    Sender::of(account, sender, ContactPush::of, |id| {
        UserPush::of(account, id)
    })
}

/// `api/v1/models/_agent`.
#[derive(Serialize)]
struct AgentJson<'a> {
    id: u64,
    account_id: u64,
    availability_status: &'static str,
    auto_offline: bool,
    confirmed: bool,
    email: &'a str,
    provider: &'static str,
    available_name: &'a str,
    name: &'a str,
    role: &'static str,
    thumbnail: &'static str,
    custom_role_id: Option<()>,
}

impl<'a> AgentJson<'a> {
    fn of(account: &'a Account, agent_id: u64) -> Option<Self> {
        let agent = account.agents.get(&agent_id)?;
        Some(Self {
            id: agent.id,
            account_id: account.account_id,
            availability_status: "online",
            auto_offline: true,
            confirmed: true,
            email: &agent.email,
            provider: "email",
            available_name: &agent.name,
            name: &agent.name,
            role: "agent",
            thumbnail: "",
            custom_role_id: None,
        })
    }
}

/// `api/v1/models/_team` (and `render json: @team`).
#[derive(Serialize)]
struct TeamJson<'a> {
    id: u64,
    name: &'a str,
    description: &'static str,
    allow_auto_assign: bool,
    account_id: u64,
    is_member: bool,
}

impl<'a> TeamJson<'a> {
    fn of(account: &'a Account, team_id: u64) -> Option<Self> {
        let team = account.teams.get(&team_id)?;
        Some(Self {
            id: team.id,
            name: &team.name,
            description: "",
            allow_auto_assign: true,
            account_id: account.account_id,
            is_member: false,
        })
    }
}

/// The REST message partial (create response, messages index): integer `message_type`.
#[derive(Serialize)]
struct MessageJson<'a> {
    id: u64,
    content: Option<&'a str>,
    inbox_id: u64,
    conversation_id: u64,
    message_type: u8,
    content_type: &'a str,
    status: &'static str,
    content_attributes: &'a Map<String, Value>,
    created_at: i64,
    private: bool,
    source_id: Option<&'a str>,
    sender: SenderJson<'a>,
}

impl<'a> MessageJson<'a> {
    fn of(account: &'a Account, message: &'a SimMessage) -> Self {
        Self {
            id: message.id,
            content: message.content.as_deref(),
            inbox_id: account.inbox_id,
            conversation_id: message.conversation_id,
            message_type: message.message_type as u8,
            content_type: &message.content_type,
            status: message.status,
            content_attributes: &message.content_attributes,
            created_at: message.created_at,
            private: message.private,
            source_id: message.source_id.as_deref(),
            sender: sender_json(account, message.sender),
        }
    }
}

#[derive(Serialize)]
struct SourceIdJson<'a> {
    source_id: &'a str,
}

#[derive(Serialize)]
struct MessageConversationJson<'a> {
    assignee_id: Option<u64>,
    unread_count: u64,
    last_activity_at: i64,
    contact_inbox: SourceIdJson<'a>,
}

/// `Message#push_event_data`: the message objects nested in conversations.
#[derive(Serialize)]
pub(super) struct MessagePush<'a> {
    id: u64,
    content: Option<&'a str>,
    account_id: u64,
    inbox_id: u64,
    conversation_id: u64,
    message_type: u8,
    created_at: i64,
    updated_at: String,
    private: bool,
    status: &'static str,
    source_id: Option<&'a str>,
    content_type: &'a str,
    content_attributes: &'a Map<String, Value>,
    sender_type: &'static str,
    sender_id: u64,
    external_source_ids: &'a Map<String, Value>,
    additional_attributes: &'a Map<String, Value>,
    processed_message_content: Option<&'a str>,
    sentiment: &'a Map<String, Value>,
    conversation: MessageConversationJson<'a>,
    sender: SenderJson<'a>,
}

impl<'a> MessagePush<'a> {
    pub(super) fn of(
        account: &'a Account,
        conversation: &'a SimConversation,
        message: &'a SimMessage,
    ) -> Self {
        let (sender_type, sender_id) = match message.sender {
            SimSender::Contact(id) => ("Contact", id),
            SimSender::User(id) => ("User", id),
        };
        Self {
            id: message.id,
            content: message.content.as_deref(),
            account_id: account.account_id,
            inbox_id: account.inbox_id,
            conversation_id: message.conversation_id,
            message_type: message.message_type as u8,
            created_at: message.created_at,
            updated_at: iso(message.created_at),
            private: message.private,
            status: message.status,
            source_id: message.source_id.as_deref(),
            content_type: &message.content_type,
            content_attributes: &message.content_attributes,
            sender_type,
            sender_id,
            external_source_ids: &EMPTY,
            additional_attributes: &EMPTY,
            processed_message_content: message.content.as_deref(),
            sentiment: &EMPTY,
            conversation: MessageConversationJson {
                assignee_id: conversation.assignee_id,
                unread_count: conversation.unread_count,
                last_activity_at: conversation.last_activity_at,
                contact_inbox: SourceIdJson {
                    source_id: &conversation.source_id,
                },
            },
            sender: sender_json(account, message.sender),
        }
    }
}

#[derive(Serialize)]
struct ConversationMeta<'a> {
    sender: Option<ContactJson<'a>>,
    channel: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    assignee: Option<AgentJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    assignee_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    team: Option<TeamJson<'a>>,
    hmac_verified: bool,
}

/// `api/v1/conversations/partials/_conversation`.
#[derive(Serialize)]
struct ConversationJson<'a> {
    meta: ConversationMeta<'a>,
    id: u64,
    messages: Vec<MessagePush<'a>>,
    account_id: u64,
    uuid: &'a str,
    additional_attributes: &'a Map<String, Value>,
    agent_last_seen_at: i64,
    assignee_last_seen_at: i64,
    can_reply: bool,
    contact_last_seen_at: i64,
    custom_attributes: &'a Map<String, Value>,
    inbox_id: u64,
    labels: &'a [String],
    muted: bool,
    snoozed_until: Option<String>,
    status: &'static str,
    created_at: i64,
    updated_at: f64,
    timestamp: i64,
    first_reply_created_at: i64,
    unread_count: u64,
    last_non_activity_message: Option<MessagePush<'a>>,
    last_activity_at: i64,
    priority: Option<&'a str>,
    waiting_since: i64,
    sla_policy_id: Option<()>,
}

impl<'a> ConversationJson<'a> {
    fn of(account: &'a Account, conversation: &'a SimConversation) -> Self {
        let assignee = conversation
            .assignee_id
            .and_then(|id| AgentJson::of(account, id));
        let assignee_type = assignee.as_ref().map(|_| "User");
        Self {
            meta: ConversationMeta {
                sender: account
                    .contact(conversation.contact_id)
                    .map(|c| ContactJson::of(account, c, false)),
                channel: "Channel::Api",
                assignee,
                assignee_type,
                team: conversation
                    .team_id
                    .and_then(|id| TeamJson::of(account, id)),
                hmac_verified: false,
            },
            id: conversation.id,
            messages: conversation
                .last_message()
                .map(|m| MessagePush::of(account, conversation, m))
                .into_iter()
                .collect(),
            account_id: account.account_id,
            uuid: &conversation.uuid,
            additional_attributes: &conversation.additional_attributes,
            agent_last_seen_at: 0,
            assignee_last_seen_at: 0,
            can_reply: true,
            contact_last_seen_at: 0,
            custom_attributes: &conversation.custom_attributes,
            inbox_id: account.inbox_id,
            labels: &conversation.labels,
            muted: false,
            snoozed_until: conversation.snoozed_until.map(iso),
            status: conversation.status.as_str(),
            created_at: conversation.created_at,
            updated_at: conversation.updated_at,
            timestamp: conversation.last_activity_at,
            first_reply_created_at: conversation.first_reply_created_at,
            unread_count: conversation.unread_count,
            last_non_activity_message: conversation
                .last_non_activity_message()
                .map(|m| MessagePush::of(account, conversation, m)),
            last_activity_at: conversation.last_activity_at,
            priority: conversation.priority.as_deref(),
            waiting_since: conversation.waiting_since,
            sla_policy_id: None,
        }
    }
}

/// Serialises a view; the maps hold only JSON values, so this cannot fail in practice.
fn body<T: Serialize>(view: &T) -> Vec<u8> {
    serde_json::to_vec(view).unwrap_or_else(|_| b"null".to_vec())
}

/// `POST /contacts` → `{payload: {contact, contact_inbox}}`.
pub(super) fn contact_created(
    account: &Account,
    contact: &SimContact,
    source_id: Option<&str>,
) -> Vec<u8> {
    #[derive(Serialize)]
    struct CreatedContactInbox<'a> {
        inbox: Option<InboxFull<'a>>,
        source_id: Option<&'a str>,
    }
    #[derive(Serialize)]
    struct Payload<'a> {
        contact: ContactJson<'a>,
        contact_inbox: CreatedContactInbox<'a>,
    }
    #[derive(Serialize)]
    struct Body<'a> {
        payload: Payload<'a>,
    }
    body(&Body {
        payload: Payload {
            contact: ContactJson::of(account, contact, true),
            contact_inbox: CreatedContactInbox {
                inbox: source_id.map(|_| InboxFull::of(account)),
                source_id,
            },
        },
    })
}

/// `GET /contacts/{id}` → `{payload: contact}`.
pub(super) fn contact_shown(account: &Account, contact: &SimContact) -> Vec<u8> {
    #[derive(Serialize)]
    struct Body<'a> {
        payload: ContactJson<'a>,
    }
    body(&Body {
        payload: ContactJson::of(account, contact, true),
    })
}

/// `POST /contacts/filter` → `{meta: {count, current_page}, payload: [contact]}`.
pub(super) fn contacts_filtered(
    account: &Account,
    ids: &[u64],
    page: usize,
    page_size: usize,
) -> Vec<u8> {
    #[derive(Serialize)]
    struct Meta {
        count: usize,
        current_page: usize,
    }
    #[derive(Serialize)]
    struct Body<'a> {
        meta: Meta,
        payload: Vec<ContactJson<'a>>,
    }
    let payload = ids
        .iter()
        .skip(page.saturating_sub(1).saturating_mul(page_size))
        .take(page_size)
        .filter_map(|id| account.contact(*id))
        .map(|c| ContactJson::of(account, c, true))
        .collect();
    body(&Body {
        meta: Meta {
            count: ids.len(),
            current_page: page,
        },
        payload,
    })
}

/// `POST /contacts/{id}/contact_inboxes` → `{source_id, inbox}`.
pub(super) fn contact_inbox_created(account: &Account, source_id: &str) -> Vec<u8> {
    body(&ContactInboxJson {
        source_id,
        inbox: InboxSlim::of(account),
    })
}

/// A conversation object (create and show).
pub(super) fn conversation(account: &Account, conversation: &SimConversation) -> Vec<u8> {
    body(&ConversationJson::of(account, conversation))
}

/// `GET /contacts/{id}/conversations` → `{payload: [conversation]}`, newest first.
pub(super) fn contact_conversations(
    account: &Account,
    contact: &SimContact,
    limit: usize,
) -> Vec<u8> {
    #[derive(Serialize)]
    struct Body<'a> {
        payload: Vec<ConversationJson<'a>>,
    }
    let payload = contact
        .conversation_ids
        .iter()
        .rev()
        .take(limit)
        .filter_map(|id| account.conversation(*id))
        .map(|c| ConversationJson::of(account, c))
        .collect();
    body(&Body { payload })
}

/// `POST …/messages` → the message.
pub(super) fn message(account: &Account, message: &SimMessage) -> Vec<u8> {
    body(&MessageJson::of(account, message))
}

/// `GET …/messages` → `{meta: {labels, additional_attributes, contact, assignee?,
/// agent_last_seen_at}, payload: [message]}`.
pub(super) fn messages(
    account: &Account,
    conversation: &SimConversation,
    page: &[SimMessage],
) -> Vec<u8> {
    #[derive(Serialize)]
    struct Meta<'a> {
        labels: &'a [String],
        additional_attributes: &'a Map<String, Value>,
        contact: Option<ContactPush<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        assignee: Option<UserPush<'a>>,
        agent_last_seen_at: i64,
    }
    #[derive(Serialize)]
    struct Body<'a> {
        meta: Meta<'a>,
        payload: Vec<MessageJson<'a>>,
    }
    body(&Body {
        meta: Meta {
            labels: &conversation.labels,
            additional_attributes: &conversation.additional_attributes,
            contact: account
                .contact(conversation.contact_id)
                .map(ContactPush::of),
            assignee: conversation.assignee_id.map(|id| UserPush::of(account, id)),
            agent_last_seen_at: 0,
        },
        payload: page.iter().map(|m| MessageJson::of(account, m)).collect(),
    })
}

/// `POST …/custom_attributes` → `{custom_attributes}`.
pub(super) fn custom_attributes(conversation: &SimConversation) -> Vec<u8> {
    #[derive(Serialize)]
    struct Body<'a> {
        custom_attributes: &'a Map<String, Value>,
    }
    body(&Body {
        custom_attributes: &conversation.custom_attributes,
    })
}

/// `GET`/`POST …/labels` → `{payload: [label]}`.
pub(super) fn labels(conversation: &SimConversation) -> Vec<u8> {
    #[derive(Serialize)]
    struct Body<'a> {
        payload: &'a [String],
    }
    body(&Body {
        payload: &conversation.labels,
    })
}

/// `POST …/assignments` → the agent, the team, or `null`.
pub(super) fn assigned_agent(account: &Account, agent_id: u64) -> Vec<u8> {
    body(&AgentJson::of(account, agent_id))
}

pub(super) fn assigned_team(account: &Account, team_id: u64) -> Vec<u8> {
    body(&TeamJson::of(account, team_id))
}

/// `GET /teams` → `[team]`, by id.
pub(super) fn teams(account: &Account) -> Vec<u8> {
    let mut ids: Vec<u64> = account.teams.keys().copied().collect();
    ids.sort_unstable();
    let teams: Vec<TeamJson<'_>> = ids
        .into_iter()
        .filter_map(|id| TeamJson::of(account, id))
        .collect();
    body(&teams)
}

/// `POST …/toggle_status` → `{meta: {}, payload: {success, conversation_id, current_status,
/// snoozed_until}}`.
pub(super) fn toggled(conversation: &SimConversation, status: SimStatus) -> Vec<u8> {
    #[derive(Serialize)]
    struct Payload {
        success: bool,
        conversation_id: u64,
        current_status: &'static str,
        snoozed_until: Option<String>,
    }
    #[derive(Serialize)]
    struct Body<'a> {
        meta: &'a Map<String, Value>,
        payload: Payload,
    }
    body(&Body {
        meta: &EMPTY,
        payload: Payload {
            success: true,
            conversation_id: conversation.id,
            current_status: status.as_str(),
            snoozed_until: conversation.snoozed_until.map(iso),
        },
    })
}
