//! The simulated Chatwoot account: contacts, contact inboxes, conversations and messages in
//! memory, the indexes that keep every hot-path lookup O(1), and the rules of Chatwoot
//! 4.16.x that the middleware depends on (see `../shared/docs/chatwoot.md` §2–§3).

use super::events::Emitted;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// First contact id. Contact, message and conversation ids live in different ranges so a
/// caller that mixes them up gets a 404 instead of silently touching the wrong record.
pub(super) const CONTACT_ID_BASE: u64 = 1_001;
/// First message id (message ids are global in Chatwoot, like contact ids).
pub(super) const MESSAGE_ID_BASE: u64 = 500_001;
/// The user the API token belongs to: an administrator, so opening a conversation does not
/// self-assign it (Chatwoot only does that for agents).
pub(super) const TOKEN_USER_ID: u64 = 1;
pub(super) const TOKEN_USER_NAME: &str = "Consultation Middleware";
pub(super) const TOKEN_USER_EMAIL: &str = "middleware@consultations.invalid";
/// The simulated account's name (webhook payloads carry `account {id, name}`).
pub(super) const ACCOUNT_NAME: &str = "Consultations";
/// Chatwoot's `CONVERSATION_MESSAGE_PER_MINUTE_LIMIT` default.
pub(super) const DEFAULT_FLOOD_LIMIT: usize = 200;
/// Chatwoot's `Message` content length validation.
const MAX_CONTENT_CHARS: usize = 150_000;
/// Page size of `contacts/filter`.
pub(super) const FILTER_PAGE_SIZE: usize = 15;
/// `contacts/{id}/conversations` returns the newest 20 only.
pub(super) const CONTACT_CONVERSATIONS_LIMIT: usize = 20;
/// `GET …/messages` without `after`: the latest 20; with `after`: up to 100.
pub(super) const MESSAGES_LATEST: usize = 20;
pub(super) const MESSAGES_AFTER: usize = 100;
/// The key under which the middleware keeps its ticket id in conversation custom attributes.
pub const CONS_ID_KEY: &str = "cons_id";

/// Why a request is refused, in Chatwoot's own terms; `routes` renders the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Refusal {
    /// 404 `{"error":"Resource could not be found"}`.
    NotFound,
    /// 422 `{"message": messages joined with ", ", "attributes": [...]}` (a model validation).
    Invalid {
        messages: Vec<String>,
        attributes: Vec<&'static str>,
    },
    /// 422 `{"error": "..."}`.
    Unprocessable(String),
}

/// Conversation status, Chatwoot's enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SimStatus {
    Open,
    Resolved,
    Pending,
    Snoozed,
}

impl SimStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Resolved => "resolved",
            Self::Pending => "pending",
            Self::Snoozed => "snoozed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "open" => Some(Self::Open),
            "resolved" => Some(Self::Resolved),
            "pending" => Some(Self::Pending),
            "snoozed" => Some(Self::Snoozed),
            _ => None,
        }
    }
}

/// Message type; the REST partials carry it as this integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SimMessageType {
    Incoming = 0,
    Outgoing = 1,
    Activity = 2,
    Template = 3,
}

impl SimMessageType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Incoming => "incoming",
            Self::Outgoing => "outgoing",
            Self::Activity => "activity",
            Self::Template => "template",
        }
    }

    /// Rails enums accept the name or the integer (also as a string).
    fn parse(raw: &Value) -> Option<Self> {
        let by_number = |n: u64| match n {
            0 => Some(Self::Incoming),
            1 => Some(Self::Outgoing),
            2 => Some(Self::Activity),
            3 => Some(Self::Template),
            _ => None,
        };
        match raw {
            Value::String(s) => match s.as_str() {
                "incoming" => Some(Self::Incoming),
                "outgoing" => Some(Self::Outgoing),
                "activity" => Some(Self::Activity),
                "template" => Some(Self::Template),
                other => other.parse().ok().and_then(by_number),
            },
            Value::Number(n) => n.as_u64().and_then(by_number),
            _ => None,
        }
    }
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimSender {
    Contact(u64),
    /// A user: the token's user or a configured agent.
    User(u64),
}

/// A team the simulated account has (assignments accept only these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimTeam {
    pub id: u64,
    pub name: String,
}

/// An agent (user) of the simulated account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimAgent {
    pub id: u64,
    pub name: String,
    pub email: String,
}

/// A contact as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct SimContact {
    pub id: u64,
    pub name: String,
    pub email: Option<String>,
    pub phone_number: Option<String>,
    pub identifier: Option<String>,
    pub custom_attributes: Map<String, Value>,
    pub additional_attributes: Map<String, Value>,
    pub blocked: bool,
    pub created_at: i64,
    pub last_activity_at: Option<i64>,
    /// `source_id`s of this contact's contact inboxes in the simulated API inbox, oldest
    /// first (Chatwoot makes a new one for every conversation created without `source_id`).
    pub source_ids: Vec<String>,
    /// Display ids of this contact's conversations, oldest first.
    pub conversation_ids: Vec<u64>,
}

/// A message as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct SimMessage {
    pub id: u64,
    pub conversation_id: u64,
    pub content: Option<String>,
    pub message_type: SimMessageType,
    pub content_type: String,
    pub content_attributes: Map<String, Value>,
    pub private: bool,
    pub source_id: Option<String>,
    pub status: &'static str,
    pub created_at: i64,
    pub sender: SimSender,
}

/// A conversation as stored, addressed by its per-account display id.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConversation {
    pub id: u64,
    pub uuid: String,
    pub contact_id: u64,
    /// The contact inbox (`source_id`) this conversation belongs to.
    pub source_id: String,
    pub status: SimStatus,
    pub custom_attributes: Map<String, Value>,
    pub additional_attributes: Map<String, Value>,
    pub labels: Vec<String>,
    pub team_id: Option<u64>,
    pub assignee_id: Option<u64>,
    pub priority: Option<String>,
    pub snoozed_until: Option<i64>,
    pub created_at: i64,
    pub last_activity_at: i64,
    pub updated_at: f64,
    pub waiting_since: i64,
    pub first_reply_created_at: i64,
    pub unread_count: u64,
    pub messages: Vec<SimMessage>,
    /// Creation instants of the latest messages, for the per-minute flood guard; never
    /// longer than the limit.
    recent: VecDeque<Instant>,
}

impl SimConversation {
    /// The ticket id the middleware stored in `custom_attributes.cons_id`, if any.
    pub fn cons_id(&self) -> Option<&str> {
        self.custom_attributes
            .get(CONS_ID_KEY)
            .and_then(Value::as_str)
    }

    pub(super) fn last_message(&self) -> Option<&SimMessage> {
        self.messages.last()
    }

    /// The last incoming, outgoing or template message that is not private: the one
    /// webhook payloads nest in `messages`.
    pub(super) fn last_public_message(&self) -> Option<&SimMessage> {
        self.messages
            .iter()
            .rev()
            .find(|m| !m.private && m.message_type != SimMessageType::Activity)
    }

    /// Every save moves `updated_at`. Real Chatwoot keeps microseconds, so two saves never
    /// share it; milliseconds, strictly increasing, keep that true here, and let a
    /// receiver order payloads by it.
    fn touch(&mut self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| (d.as_millis() as f64) / 1000.0);
        self.updated_at = now.max(((self.updated_at * 1000.0).round() + 1.0) / 1000.0);
    }

    pub(super) fn last_non_activity_message(&self) -> Option<&SimMessage> {
        self.messages
            .iter()
            .rev()
            .find(|m| m.message_type != SimMessageType::Activity)
    }
}

/// Optional id parameters: Rails takes `3` and `"3"` alike; other text becomes id 0, which
/// finds nothing (a 404, like `find("abc")`).
fn opt_id<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<u64>, D::Error> {
    let raw = Option::<Value>::deserialize(de)?;
    Ok(match raw {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().parse().ok().or(Some(0)),
        _ => None,
    })
}

/// Optional string parameters: numbers are taken as their text, like Rails params.
fn opt_text<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<String>, D::Error> {
    let raw = Option::<Value>::deserialize(de)?;
    Ok(match raw {
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::Bool(b)) => Some(b.to_string()),
        _ => None,
    })
}

/// A parameter whose presence matters: absent is `None`, `null` is `Some(Null)`.
fn given<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(de).map(Some)
}

/// Rails booleans: `true`, `"true"`, `1`, `"1"`.
fn flag<'de, D: serde::Deserializer<'de>>(de: D) -> Result<bool, D::Error> {
    let raw = Option::<Value>::deserialize(de)?;
    Ok(match raw {
        Some(Value::Bool(b)) => b,
        Some(Value::String(s)) => matches!(s.as_str(), "true" | "1" | "t"),
        Some(Value::Number(n)) => n.as_u64() == Some(1),
        _ => false,
    })
}

/// `POST /contacts` parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ContactParams {
    #[serde(deserialize_with = "opt_text")]
    pub name: Option<String>,
    #[serde(deserialize_with = "opt_text")]
    pub email: Option<String>,
    #[serde(deserialize_with = "opt_text")]
    pub phone_number: Option<String>,
    #[serde(deserialize_with = "opt_text")]
    pub identifier: Option<String>,
    #[serde(deserialize_with = "flag")]
    pub blocked: bool,
    pub custom_attributes: Option<Value>,
    pub additional_attributes: Option<Value>,
    #[serde(deserialize_with = "opt_id")]
    pub inbox_id: Option<u64>,
    #[serde(deserialize_with = "opt_text")]
    pub source_id: Option<String>,
}

/// `POST /contacts/{id}/contact_inboxes` parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ContactInboxParams {
    #[serde(deserialize_with = "opt_id")]
    pub inbox_id: Option<u64>,
    #[serde(deserialize_with = "opt_text")]
    pub source_id: Option<String>,
}

/// One condition of `POST /contacts/filter`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct FilterCondition {
    pub attribute_key: String,
    pub filter_operator: String,
    pub values: Vec<Value>,
    pub query_operator: Option<String>,
}

/// `POST /contacts/filter` body.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct FilterParams {
    pub payload: Vec<FilterCondition>,
}

/// `message` inside `POST /conversations`, and the body of `POST …/messages`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct MessageParams {
    #[serde(deserialize_with = "opt_text")]
    pub content: Option<String>,
    pub message_type: Option<Value>,
    #[serde(deserialize_with = "flag")]
    pub private: bool,
    #[serde(deserialize_with = "opt_text")]
    pub content_type: Option<String>,
    pub content_attributes: Option<Value>,
    #[serde(deserialize_with = "opt_text")]
    pub source_id: Option<String>,
}

/// `POST /conversations` parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ConversationParams {
    #[serde(deserialize_with = "opt_text")]
    pub source_id: Option<String>,
    #[serde(deserialize_with = "opt_id")]
    pub inbox_id: Option<u64>,
    #[serde(deserialize_with = "opt_id")]
    pub contact_id: Option<u64>,
    #[serde(deserialize_with = "opt_text")]
    pub status: Option<String>,
    pub custom_attributes: Option<Value>,
    pub additional_attributes: Option<Value>,
    #[serde(deserialize_with = "opt_id")]
    pub assignee_id: Option<u64>,
    #[serde(deserialize_with = "opt_id")]
    pub team_id: Option<u64>,
    pub snoozed_until: Option<Value>,
    pub message: Option<MessageParams>,
}

/// `POST …/toggle_status` parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ToggleParams {
    #[serde(deserialize_with = "opt_text")]
    pub status: Option<String>,
    pub snoozed_until: Option<Value>,
}

/// `POST …/custom_attributes` parameters (`merge` is ignored, as in 4.16.2).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct CustomAttributesParams {
    pub custom_attributes: Option<Value>,
}

/// `POST …/labels` parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct LabelsParams {
    pub labels: Option<Vec<Value>>,
}

/// `POST …/assignments` parameters: `assignee_id` wins over `team_id`, and the presence of
/// the key matters (`{"assignee_id": null}` unassigns).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct AssignmentParams {
    #[serde(deserialize_with = "given")]
    pub assignee_id: Option<Value>,
    #[serde(deserialize_with = "given")]
    pub team_id: Option<Value>,
    #[serde(deserialize_with = "opt_text")]
    pub assignee_type: Option<String>,
}

/// What an assignment ended as (rendered as the agent, the team, or `null`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Assigned {
    Agent(u64),
    Team(u64),
    Nothing,
}

pub(super) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Turns a JSON parameter that must be an object (or absent) into a map.
fn object_param(value: Option<Value>, name: &str) -> Result<Map<String, Value>, Refusal> {
    match value {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map),
        Some(_) => Err(Refusal::Unprocessable(format!("{name} must be an object"))),
    }
}

/// `snoozed_until` as Unix seconds (a number, or digits in a string).
fn unix_param(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn is_e164(phone: &str) -> bool {
    // Anchored at both ends, as on develop/4.17 (PR #15415); 4.16.2 only anchored the end.
    let Some(digits) = phone.strip_prefix('+') else {
        return false;
    };
    let bytes = digits.as_bytes();
    (2..=15).contains(&bytes.len())
        && bytes.first().is_some_and(|b| (b'1'..=b'9').contains(b))
        && bytes.iter().all(u8::is_ascii_digit)
}

fn is_email(email: &str) -> bool {
    // Devise.email_regexp: /\A[^@\s]+@[^@\s]+\z/
    let mut parts = email.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !local.is_empty() && !domain.is_empty() && !email.chars().any(char::is_whitespace)
}

/// Blank strings are absent for the uniqueness rules (`allow_blank: true`).
fn present(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// A contact inbox of the simulated API inbox (webhook payloads carry the whole row).
#[derive(Debug, Clone)]
pub(super) struct ContactInboxRecord {
    pub id: u64,
    pub contact_id: u64,
    pub created_at: i64,
    pub pubsub_token: String,
}

/// The simulated account with its single API inbox.
#[derive(Debug)]
pub(super) struct Account {
    pub account_id: u64,
    pub inbox_id: u64,
    pub inbox_name: String,
    pub contacts: Vec<SimContact>,
    pub conversations: Vec<SimConversation>,
    pub teams: HashMap<u64, SimTeam>,
    pub agents: HashMap<u64, SimAgent>,
    pub flood_limit: Option<usize>,
    /// Exact identifier → contact (the uniqueness rule is case-sensitive).
    identifiers: HashMap<String, u64>,
    /// Lower-cased identifier → contacts (the filter's `equal_to` is case-insensitive).
    identifiers_folded: HashMap<String, Vec<u64>>,
    /// Lower-cased e-mail → contact (Chatwoot stores e-mails lower-cased).
    emails: HashMap<String, u64>,
    phones: HashMap<String, u64>,
    /// Contact-inbox `source_id` in the API inbox → its row.
    source_ids: HashMap<String, ContactInboxRecord>,
    /// `custom_attributes.cons_id` → display ids.
    cons_ids: HashMap<String, Vec<u64>>,
    /// Message `source_id` → number of messages carrying it.
    message_source_ids: HashMap<String, usize>,
    /// Message id → (display id, index in that conversation).
    message_index: Vec<(u64, usize)>,
    /// Whether a webhook is configured: only then are events built.
    pub webhooks_on: bool,
    /// Events of the operation under way, built when they happened; `ChatwootSim` sends
    /// them when it lets go of the account.
    pub emitted: Vec<Emitted>,
}

impl Account {
    pub fn new(account_id: u64, inbox_id: u64) -> Self {
        Self {
            account_id,
            inbox_id,
            inbox_name: "Consultations API".to_owned(),
            contacts: Vec::new(),
            conversations: Vec::new(),
            teams: HashMap::new(),
            agents: HashMap::new(),
            flood_limit: Some(DEFAULT_FLOOD_LIMIT),
            identifiers: HashMap::new(),
            identifiers_folded: HashMap::new(),
            emails: HashMap::new(),
            phones: HashMap::new(),
            source_ids: HashMap::new(),
            cons_ids: HashMap::new(),
            message_source_ids: HashMap::new(),
            message_index: Vec::new(),
            webhooks_on: false,
            emitted: Vec::new(),
        }
    }

    pub fn contact(&self, id: u64) -> Option<&SimContact> {
        let index = usize::try_from(id.checked_sub(CONTACT_ID_BASE)?).ok()?;
        self.contacts.get(index)
    }

    fn contact_mut(&mut self, id: u64) -> Option<&mut SimContact> {
        let index = usize::try_from(id.checked_sub(CONTACT_ID_BASE)?).ok()?;
        self.contacts.get_mut(index)
    }

    pub fn conversation(&self, display_id: u64) -> Option<&SimConversation> {
        let index = usize::try_from(display_id.checked_sub(1)?).ok()?;
        self.conversations.get(index)
    }

    fn conversation_mut(&mut self, display_id: u64) -> Result<&mut SimConversation, Refusal> {
        let index = display_id
            .checked_sub(1)
            .and_then(|i| usize::try_from(i).ok())
            .ok_or(Refusal::NotFound)?;
        self.conversations.get_mut(index).ok_or(Refusal::NotFound)
    }

    pub fn message(&self, id: u64) -> Option<&SimMessage> {
        let index = usize::try_from(id.checked_sub(MESSAGE_ID_BASE)?).ok()?;
        let (display_id, position) = *self.message_index.get(index)?;
        self.conversation(display_id)?.messages.get(position)
    }

    pub fn contact_inbox_row(&self, source_id: &str) -> Option<&ContactInboxRecord> {
        self.source_ids.get(source_id)
    }

    /// Records a new contact inbox of `contact_id`.
    fn add_contact_inbox(&mut self, source_id: &str, contact_id: u64) {
        let record = ContactInboxRecord {
            id: self.source_ids.len() as u64 + 1,
            contact_id,
            created_at: now_secs(),
            // A 24-character token, like Chatwoot's `has_secure_token`.
            pubsub_token: uuid::Uuid::new_v4().simple().to_string()[..24].to_owned(),
        };
        self.source_ids.insert(source_id.to_owned(), record);
    }

    pub fn message_count(&self) -> usize {
        self.message_index.len()
    }

    pub fn contacts_with_identifier(&self, identifier: &str) -> usize {
        usize::from(self.identifiers.contains_key(identifier))
    }

    pub fn conversations_with_cons_id(&self, cons_id: &str) -> usize {
        self.cons_ids.get(cons_id).map_or(0, Vec::len)
    }

    pub fn messages_with_source_id(&self, source_id: &str) -> usize {
        self.message_source_ids.get(source_id).copied().unwrap_or(0)
    }

    /// `POST /contacts`: the contact, and the `source_id` of the contact inbox made when
    /// `inbox_id` was given.
    pub fn create_contact(
        &mut self,
        params: ContactParams,
    ) -> Result<(u64, Option<String>), Refusal> {
        let email = present(params.email).map(|e| e.trim().to_lowercase());
        let phone_number = present(params.phone_number);
        let identifier = present(params.identifier);
        let custom_attributes = object_param(params.custom_attributes, "custom_attributes")?;
        let additional_attributes =
            object_param(params.additional_attributes, "additional_attributes")?;

        // Validations in the order the model declares them; Rails reports all of them.
        let mut messages = Vec::new();
        let mut attributes = Vec::new();
        if let Some(email) = &email {
            if !is_email(email) {
                messages.push("Email Invalid email".to_owned());
                attributes.push("email");
            } else if self.emails.contains_key(email) {
                messages.push("Email has already been taken".to_owned());
                attributes.push("email");
            }
        }
        if let Some(identifier) = &identifier
            && self.identifiers.contains_key(identifier)
        {
            messages.push("Identifier has already been taken".to_owned());
            attributes.push("identifier");
        }
        if let Some(phone) = &phone_number {
            if self.phones.contains_key(phone) {
                messages.push("Phone number has already been taken".to_owned());
                attributes.push("phone_number");
            }
            if !is_e164(phone) {
                messages.push("Phone number should be in e164 format".to_owned());
                if !attributes.contains(&"phone_number") {
                    attributes.push("phone_number");
                }
            }
        }
        if !messages.is_empty() {
            return Err(Refusal::Invalid {
                messages,
                attributes,
            });
        }
        // The contact inbox is built in the same transaction: an unknown inbox or a taken
        // source_id rolls the contact back.
        let source_id = match params.inbox_id {
            None => None,
            Some(inbox_id) if inbox_id != self.inbox_id => return Err(Refusal::NotFound),
            Some(_) => {
                let source_id =
                    present(params.source_id).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                if self.source_ids.contains_key(&source_id) {
                    return Err(Refusal::Unprocessable(
                        "source_id should be unique".to_owned(),
                    ));
                }
                Some(source_id)
            }
        };

        let id = CONTACT_ID_BASE + self.contacts.len() as u64;
        if let Some(email) = &email {
            self.emails.insert(email.clone(), id);
        }
        if let Some(phone) = &phone_number {
            self.phones.insert(phone.clone(), id);
        }
        if let Some(identifier) = &identifier {
            self.identifiers.insert(identifier.clone(), id);
            self.identifiers_folded
                .entry(identifier.to_lowercase())
                .or_default()
                .push(id);
        }
        let mut source_ids = Vec::new();
        if let Some(source_id) = &source_id {
            self.add_contact_inbox(source_id, id);
            source_ids.push(source_id.clone());
        }
        self.contacts.push(SimContact {
            id,
            name: params.name.unwrap_or_default(),
            email,
            phone_number,
            identifier,
            custom_attributes,
            additional_attributes,
            blocked: params.blocked,
            created_at: now_secs(),
            last_activity_at: None,
            source_ids,
            conversation_ids: Vec::new(),
        });
        Ok((id, source_id))
    }

    /// `ContactInboxBuilder`: returns the contact inbox's `source_id`, making one if needed.
    fn contact_inbox(
        &mut self,
        contact_id: u64,
        source_id: Option<String>,
    ) -> Result<String, Refusal> {
        let source_id = present(source_id);
        if let Some(source_id) = &source_id {
            match self.source_ids.get(source_id) {
                Some(owner) if owner.contact_id == contact_id => return Ok(source_id.clone()),
                Some(_) => {
                    return Err(Refusal::Unprocessable(
                        "source_id should be unique".to_owned(),
                    ));
                }
                None => {}
            }
        }
        // An API inbox without a source_id gets a fresh UUID, hence a new contact inbox
        // each time (find_or_create_by with a new key).
        let source_id = source_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let contact = self.contact_mut(contact_id).ok_or(Refusal::NotFound)?;
        contact.source_ids.push(source_id.clone());
        self.add_contact_inbox(&source_id, contact_id);
        Ok(source_id)
    }

    /// `POST /contacts/{id}/contact_inboxes`.
    pub fn create_contact_inbox(
        &mut self,
        contact_id: u64,
        params: ContactInboxParams,
    ) -> Result<String, Refusal> {
        self.contact(contact_id).ok_or(Refusal::NotFound)?;
        match params.inbox_id {
            None => Err(Refusal::Unprocessable(
                "param is missing or the value is empty: inbox_id".to_owned(),
            )),
            Some(inbox_id) if inbox_id != self.inbox_id => Err(Refusal::NotFound),
            Some(_) => self.contact_inbox(contact_id, params.source_id),
        }
    }

    /// `POST /contacts/filter`: matching contact ids, oldest first.
    pub fn filter_contacts(&self, conditions: &[FilterCondition]) -> Result<Vec<u64>, Refusal> {
        if conditions.is_empty() {
            return Err(Refusal::Unprocessable(
                "Invalid filter: payload is empty".to_owned(),
            ));
        }
        // SQL precedence: AND binds tighter than OR, so OR splits the list into groups.
        let mut groups: Vec<Vec<u64>> = Vec::new();
        let mut current: Option<Vec<u64>> = None;
        for (i, condition) in conditions.iter().enumerate() {
            let matched = self.filter_condition(condition)?;
            current = Some(match current {
                None => matched,
                Some(mut acc) => {
                    acc.retain(|id| matched.binary_search(id).is_ok());
                    acc
                }
            });
            let joins_next = conditions
                .get(i)
                .and_then(|c| c.query_operator.as_deref())
                .map(str::to_ascii_lowercase);
            if i + 1 < conditions.len() {
                match joins_next.as_deref() {
                    Some("or") => groups.extend(current.take()),
                    Some("and") | None => {}
                    Some(other) => {
                        return Err(Refusal::Unprocessable(format!(
                            "Invalid query operator. Allowed query operators are AND and OR, got {other}"
                        )));
                    }
                }
            }
        }
        groups.extend(current);
        let mut ids: Vec<u64> = groups.into_iter().flatten().collect();
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// The contacts one condition matches, sorted.
    fn filter_condition(&self, condition: &FilterCondition) -> Result<Vec<u64>, Refusal> {
        let values: Vec<String> = condition
            .values
            .iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s.to_lowercase()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect();
        let key = condition.attribute_key.as_str();
        if !matches!(key, "identifier" | "email" | "phone_number" | "name") {
            return Err(Refusal::Unprocessable(format!(
                "Invalid attribute key - {key}"
            )));
        }
        let mut equal: Vec<u64> = Vec::new();
        match key {
            "identifier" => {
                for value in &values {
                    equal.extend(self.identifiers_folded.get(value).into_iter().flatten());
                }
            }
            "email" => equal.extend(values.iter().filter_map(|v| self.emails.get(v))),
            "phone_number" => {
                for value in &values {
                    // The lookup is on the stored E.164 form, with or without the `+`.
                    let plus;
                    let key = if value.starts_with('+') {
                        value.as_str()
                    } else {
                        plus = format!("+{value}");
                        plus.as_str()
                    };
                    equal.extend(self.phones.get(key));
                }
            }
            // No index on names: not a hot path for the middleware.
            _ => equal.extend(
                self.contacts
                    .iter()
                    .filter(|c| values.iter().any(|v| c.name.to_lowercase() == *v))
                    .map(|c| c.id),
            ),
        }
        equal.sort_unstable();
        equal.dedup();
        match condition.filter_operator.as_str() {
            "equal_to" => Ok(equal),
            "not_equal_to" => Ok(self
                .contacts
                .iter()
                .map(|c| c.id)
                .filter(|id| equal.binary_search(id).is_err())
                .collect()),
            other => Err(Refusal::Unprocessable(format!(
                "Invalid operator. The allowed operators for {key} are [equal_to,not_equal_to]; got {other}"
            ))),
        }
    }

    /// `POST /conversations`: the new display id.
    pub fn create_conversation(&mut self, params: ConversationParams) -> Result<u64, Refusal> {
        // Controller before_actions: inbox, then contact, then the contact inbox.
        if let Some(inbox_id) = params.inbox_id
            && inbox_id != self.inbox_id
        {
            return Err(Refusal::NotFound);
        }
        if let Some(contact_id) = params.contact_id
            && self.contact(contact_id).is_none()
        {
            return Err(Refusal::NotFound);
        }
        let status = match params.status.as_deref().filter(|s| !s.is_empty()) {
            None => SimStatus::Open,
            Some(raw) => SimStatus::parse(raw)
                .ok_or_else(|| Refusal::Unprocessable(format!("'{raw}' is not a valid status")))?,
        };
        if let Some(team_id) = params.team_id
            && !self.teams.contains_key(&team_id)
        {
            return Err(Refusal::Invalid {
                messages: vec!["Team must exist".to_owned()],
                attributes: vec!["team"],
            });
        }
        if let Some(assignee_id) = params.assignee_id
            && !self.agents.contains_key(&assignee_id)
        {
            return Err(Refusal::Invalid {
                messages: vec!["Assignee must exist".to_owned()],
                attributes: vec!["assignee"],
            });
        }
        let custom_attributes = object_param(params.custom_attributes, "custom_attributes")?;
        let additional_attributes =
            object_param(params.additional_attributes, "additional_attributes")?;
        let initial = match params.message {
            Some(message) => Some(self.check_message(message, SimMessageType::Outgoing)?),
            None => None,
        };
        let (contact_id, source_id) = match (params.inbox_id, params.contact_id) {
            (Some(_), Some(contact_id)) => (
                contact_id,
                self.contact_inbox(contact_id, params.source_id)?,
            ),
            // The legacy lookup by source_id alone.
            _ => {
                let source_id = present(params.source_id).ok_or(Refusal::NotFound)?;
                let contact_id = self
                    .source_ids
                    .get(&source_id)
                    .ok_or(Refusal::NotFound)?
                    .contact_id;
                (contact_id, source_id)
            }
        };

        let now = now_secs();
        let display_id = self.conversations.len() as u64 + 1;
        if let Some(cons_id) = custom_attributes.get(CONS_ID_KEY).and_then(Value::as_str) {
            self.cons_ids
                .entry(cons_id.to_owned())
                .or_default()
                .push(display_id);
        }
        let snoozed_until = if status == SimStatus::Snoozed {
            unix_param(params.snoozed_until.as_ref())
        } else {
            None
        };
        self.conversations.push(SimConversation {
            id: display_id,
            uuid: uuid::Uuid::new_v4().to_string(),
            contact_id,
            source_id,
            status,
            custom_attributes,
            additional_attributes,
            labels: Vec::new(),
            team_id: params.team_id,
            assignee_id: params.assignee_id,
            priority: None,
            snoozed_until,
            created_at: now,
            last_activity_at: now,
            updated_at: now as f64,
            waiting_since: now,
            first_reply_created_at: 0,
            unread_count: 0,
            messages: Vec::new(),
            recent: VecDeque::new(),
        });
        if let Some(contact) = self.contact_mut(contact_id) {
            contact.conversation_ids.push(display_id);
        }
        self.conversation_created(display_id);
        if let Some(message) = initial {
            let sender = match message.message_type {
                SimMessageType::Incoming => SimSender::Contact(contact_id),
                _ => SimSender::User(TOKEN_USER_ID),
            };
            self.push_message(display_id, message, sender)?;
        }
        Ok(display_id)
    }

    /// Validates message parameters before anything is stored.
    fn check_message(
        &self,
        params: MessageParams,
        default_type: SimMessageType,
    ) -> Result<CheckedMessage, Refusal> {
        let message_type = match &params.message_type {
            None | Some(Value::Null) => default_type,
            Some(raw) => SimMessageType::parse(raw).ok_or_else(|| {
                Refusal::Unprocessable(format!(
                    "'{}' is not a valid message_type",
                    display_value(raw)
                ))
            })?,
        };
        if params
            .content
            .as_ref()
            .is_some_and(|c| c.chars().count() > MAX_CONTENT_CHARS)
        {
            return Err(Refusal::Unprocessable(format!(
                "Validation failed: Content is too long (maximum is {MAX_CONTENT_CHARS} characters)"
            )));
        }
        let content_attributes = object_param(params.content_attributes, "content_attributes")?;
        Ok(CheckedMessage {
            content: params.content,
            message_type,
            content_type: params.content_type.unwrap_or_else(|| "text".to_owned()),
            content_attributes,
            private: params.private,
            source_id: params.source_id,
        })
    }

    /// `POST /conversations/{id}/messages` from the token's user: the new message id.
    pub fn create_message(
        &mut self,
        display_id: u64,
        params: MessageParams,
    ) -> Result<u64, Refusal> {
        let contact_id = self
            .conversation(display_id)
            .ok_or(Refusal::NotFound)?
            .contact_id;
        let message = self.check_message(params, SimMessageType::Outgoing)?;
        // The sender of an incoming message in an API inbox is the conversation's contact.
        let sender = match message.message_type {
            SimMessageType::Incoming => SimSender::Contact(contact_id),
            _ => SimSender::User(TOKEN_USER_ID),
        };
        self.push_message(display_id, message, sender)
    }

    /// An agent writes in the Chatwoot UI (for tests of the inbound direction).
    pub fn agent_message(
        &mut self,
        display_id: u64,
        agent_id: u64,
        content: &str,
        private: bool,
    ) -> Result<u64, Refusal> {
        let message = CheckedMessage {
            content: Some(content.to_owned()),
            message_type: SimMessageType::Outgoing,
            content_type: "text".to_owned(),
            content_attributes: Map::new(),
            private,
            source_id: None,
        };
        self.push_message(display_id, message, SimSender::User(agent_id))
    }

    fn push_message(
        &mut self,
        display_id: u64,
        message: CheckedMessage,
        sender: SimSender,
    ) -> Result<u64, Refusal> {
        let flood_limit = self.flood_limit;
        let id = MESSAGE_ID_BASE + self.message_index.len() as u64;
        let now = now_secs();
        let before = self.before_change(display_id);
        let conversation = self.conversation_mut(display_id)?;
        if let Some(limit) = flood_limit {
            let minute_ago = Instant::now().checked_sub(Duration::from_secs(60));
            while conversation
                .recent
                .front()
                .is_some_and(|t| minute_ago.is_some_and(|m| *t < m))
            {
                conversation.recent.pop_front();
            }
            if conversation.recent.len() >= limit {
                return Err(Refusal::Unprocessable(
                    "Validation failed: Too many messages".to_owned(),
                ));
            }
            conversation.recent.push_back(Instant::now());
            while conversation.recent.len() > limit {
                conversation.recent.pop_front();
            }
        }
        let position = conversation.messages.len();
        let message_type = message.message_type;
        let private = message.private;
        let source_id = message.source_id.clone();
        conversation.messages.push(SimMessage {
            id,
            conversation_id: display_id,
            content: message.content,
            message_type,
            content_type: message.content_type,
            content_attributes: message.content_attributes,
            private,
            source_id: message.source_id,
            status: "sent",
            created_at: now,
            sender,
        });
        // Side effects of Message#after_create_commit on the conversation.
        if message_type != SimMessageType::Activity {
            conversation.last_activity_at = now;
        }
        conversation.touch();
        match message_type {
            SimMessageType::Incoming => {
                conversation.unread_count += 1;
                if conversation.waiting_since == 0 {
                    conversation.waiting_since = now;
                }
                if matches!(
                    conversation.status,
                    SimStatus::Resolved | SimStatus::Snoozed
                ) {
                    conversation.status = SimStatus::Open;
                    conversation.snoozed_until = None;
                }
            }
            SimMessageType::Outgoing if !private && matches!(sender, SimSender::User(_)) => {
                if conversation.first_reply_created_at == 0 {
                    conversation.first_reply_created_at = now;
                }
                conversation.waiting_since = 0;
            }
            _ => {}
        }
        let contact_id = conversation.contact_id;
        if message_type == SimMessageType::Incoming
            && let Some(contact) = self.contact_mut(contact_id)
        {
            contact.last_activity_at = Some(now);
        }
        if let Some(source_id) = source_id {
            *self.message_source_ids.entry(source_id).or_default() += 1;
        }
        self.message_index.push((display_id, position));
        if message_type != SimMessageType::Activity {
            self.message_created(id);
        }
        self.after_change(display_id, before);
        Ok(id)
    }

    /// `POST …/custom_attributes`: replaces the whole hash (4.16.2; `merge` is ignored).
    pub fn replace_custom_attributes(
        &mut self,
        display_id: u64,
        params: CustomAttributesParams,
    ) -> Result<(), Refusal> {
        let attributes = object_param(params.custom_attributes, "custom_attributes")?;
        let before = self.before_change(display_id);
        let conversation = self.conversation_mut(display_id)?;
        let old = conversation.cons_id().map(str::to_owned);
        let new = attributes
            .get(CONS_ID_KEY)
            .and_then(Value::as_str)
            .map(str::to_owned);
        conversation.custom_attributes = attributes;
        conversation.touch();
        if old != new {
            if let Some(old) = old
                && let Some(ids) = self.cons_ids.get_mut(&old)
            {
                ids.retain(|id| *id != display_id);
                if ids.is_empty() {
                    self.cons_ids.remove(&old);
                }
            }
            if let Some(new) = new {
                self.cons_ids.entry(new).or_default().push(display_id);
            }
        }
        self.after_change(display_id, before);
        Ok(())
    }

    /// `POST …/labels`: replaces the label list.
    pub fn replace_labels(&mut self, display_id: u64, params: LabelsParams) -> Result<(), Refusal> {
        let before = self.before_change(display_id);
        let conversation = self.conversation_mut(display_id)?;
        let mut labels: Vec<String> = Vec::new();
        for raw in params.labels.unwrap_or_default() {
            let label = match raw {
                Value::String(s) => s.trim().to_owned(),
                Value::Number(n) => n.to_string(),
                _ => continue,
            };
            if !label.is_empty() && !labels.contains(&label) {
                labels.push(label);
            }
        }
        conversation.labels = labels;
        conversation.touch();
        self.after_change(display_id, before);
        Ok(())
    }

    /// `POST …/assignments`.
    pub fn assign(
        &mut self,
        display_id: u64,
        params: AssignmentParams,
    ) -> Result<Assigned, Refusal> {
        self.conversation(display_id).ok_or(Refusal::NotFound)?;
        let id_of = |value: &Value| match value {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        if params.assignee_type.as_deref() == Some("AgentBot") {
            // No agent bots in the simulator: Chatwoot finds none and unassigns the bot.
            return Ok(Assigned::Nothing);
        }
        let before = self.before_change(display_id);
        if let Some(assignee) = params.assignee_id {
            // An id that is not a user of the account unassigns (AssignmentService).
            let agent = id_of(&assignee).filter(|id| self.agents.contains_key(id));
            let conversation = self.conversation_mut(display_id)?;
            conversation.assignee_id = agent;
            conversation.touch();
            self.after_change(display_id, before);
            return Ok(agent.map_or(Assigned::Nothing, Assigned::Agent));
        }
        if let Some(team) = params.team_id {
            // `teams.find_by(id:)`: an unknown id (or 0) clears the team.
            let team = id_of(&team).filter(|id| self.teams.contains_key(id));
            let conversation = self.conversation_mut(display_id)?;
            conversation.team_id = team;
            conversation.touch();
            self.after_change(display_id, before);
            return Ok(team.map_or(Assigned::Nothing, Assigned::Team));
        }
        Ok(Assigned::Nothing)
    }

    /// `POST …/toggle_status`: the resulting status.
    pub fn toggle_status(
        &mut self,
        display_id: u64,
        params: ToggleParams,
    ) -> Result<SimStatus, Refusal> {
        let requested =
            match params.status.as_deref().filter(|s| !s.is_empty()) {
                None => None,
                Some(raw) => Some(SimStatus::parse(raw).ok_or_else(|| {
                    Refusal::Unprocessable(format!("'{raw}' is not a valid status"))
                })?),
            };
        let before = self.before_change(display_id);
        let conversation = self.conversation_mut(display_id)?;
        let status = requested.unwrap_or(match conversation.status {
            SimStatus::Open => SimStatus::Resolved,
            _ => SimStatus::Open,
        });
        conversation.status = status;
        // `snoozed_until` only survives on a snoozed conversation.
        conversation.snoozed_until = if status == SimStatus::Snoozed {
            unix_param(params.snoozed_until.as_ref())
        } else {
            None
        };
        conversation.touch();
        self.after_change(display_id, before);
        Ok(status)
    }

    /// Sets a status as an agent would in the UI (no API rules).
    pub fn set_status(&mut self, display_id: u64, status: SimStatus) -> Result<(), Refusal> {
        let before = self.before_change(display_id);
        let conversation = self.conversation_mut(display_id)?;
        conversation.status = status;
        if status != SimStatus::Snoozed {
            conversation.snoozed_until = None;
        }
        conversation.touch();
        self.after_change(display_id, before);
        Ok(())
    }
}

/// Message parameters that passed validation.
#[derive(Debug)]
pub(super) struct CheckedMessage {
    content: Option<String>,
    message_type: SimMessageType,
    content_type: String,
    content_attributes: Map<String, Value>,
    private: bool,
    source_id: Option<String>,
}

fn display_value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(identifier: &str, email: Option<&str>, phone: Option<&str>) -> ContactParams {
        ContactParams {
            name: Some("N".to_owned()),
            identifier: Some(identifier.to_owned()),
            email: email.map(str::to_owned),
            phone_number: phone.map(str::to_owned),
            inbox_id: Some(3),
            ..ContactParams::default()
        }
    }

    #[test]
    fn phone_and_email_formats() {
        assert!(is_e164("+14155550123"));
        assert!(!is_e164("14155550123"));
        assert!(!is_e164("+04155550123"));
        assert!(!is_e164("abc+14155550123"));
        assert!(!is_e164("+1"));
        assert!(is_email("a@b"));
        assert!(!is_email("a b@c"));
        assert!(!is_email("a@b@c"));
    }

    #[test]
    fn uniqueness_reports_every_taken_attribute() {
        let mut account = Account::new(1, 3);
        account
            .create_contact(contact("x-1", Some("A@b.c"), Some("+998901234567")))
            .unwrap();
        let refusal = account
            .create_contact(contact("x-1", Some("a@B.c"), Some("+998901234567")))
            .unwrap_err();
        assert_eq!(
            refusal,
            Refusal::Invalid {
                messages: vec![
                    "Email has already been taken".to_owned(),
                    "Identifier has already been taken".to_owned(),
                    "Phone number has already been taken".to_owned(),
                ],
                attributes: vec!["email", "identifier", "phone_number"],
            }
        );
        assert_eq!(account.contacts.len(), 1);
    }

    #[test]
    fn filter_groups_and_before_or() {
        let mut account = Account::new(1, 3);
        let (a, _) = account
            .create_contact(contact("A-1", Some("a@x"), None))
            .unwrap();
        let (b, _) = account
            .create_contact(contact("b-2", Some("b@x"), None))
            .unwrap();
        let cond = |key: &str, value: &str, op: Option<&str>| FilterCondition {
            attribute_key: key.to_owned(),
            filter_operator: "equal_to".to_owned(),
            values: vec![Value::String(value.to_owned())],
            query_operator: op.map(str::to_owned),
        };
        assert_eq!(
            account
                .filter_contacts(&[cond("identifier", "a-1", None)])
                .unwrap(),
            vec![a]
        );
        let either = [
            cond("identifier", "A-1", Some("OR")),
            cond("email", "B@X", None),
        ];
        assert_eq!(account.filter_contacts(&either).unwrap(), vec![a, b]);
        let both = [
            cond("identifier", "A-1", Some("AND")),
            cond("email", "b@x", None),
        ];
        assert!(account.filter_contacts(&both).unwrap().is_empty());
    }

    #[test]
    fn flood_guard_refuses_beyond_the_limit() {
        let mut account = Account::new(1, 3);
        account.flood_limit = Some(2);
        let (contact_id, _) = account.create_contact(contact("f", None, None)).unwrap();
        let id = account
            .create_conversation(ConversationParams {
                inbox_id: Some(3),
                contact_id: Some(contact_id),
                ..ConversationParams::default()
            })
            .unwrap();
        let message = || MessageParams {
            content: Some("x".to_owned()),
            ..MessageParams::default()
        };
        account.create_message(id, message()).unwrap();
        account.create_message(id, message()).unwrap();
        assert_eq!(
            account.create_message(id, message()),
            Err(Refusal::Unprocessable(
                "Validation failed: Too many messages".to_owned()
            ))
        );
    }
}
