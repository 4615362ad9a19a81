//! The client: one pooled `reqwest::Client`, one HTTP call per method, every answer
//! classified into a [`ChatwootError`] or decoded into the typed records.

use crate::error::{self, ChatwootError};
use crate::types::{
    Contact, Conversation, ConversationStatus, Message, NewContact, NewConversation, NewMessage,
    Team,
};
use reqwest::header::{ACCEPT, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Where Chatwoot is and who we are there.
#[derive(Clone)]
pub struct ChatwootConfig {
    /// Chatwoot's base URL, e.g. `https://chat.example.com` or `http://127.0.0.1:3000`.
    pub base_url: String,
    /// A user access token of an administrator (agents only see their inboxes).
    pub api_token: String,
    pub account_id: u64,
    /// The API-channel inbox conversations are created in.
    pub inbox_id: u64,
    /// The whole call, from connecting to the last byte of the answer.
    pub timeout: Duration,
}

impl std::fmt::Debug for ChatwootConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatwootConfig")
            .field("base_url", &self.base_url)
            .field("api_token", &"<redacted>")
            .field("account_id", &self.account_id)
            .field("inbox_id", &self.inbox_id)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Longest wait for a TCP (and TLS) connection: a peer that cannot be reached should fail
/// fast and unambiguously (`Connect`), well inside the call timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Idle pooled connections are dropped before Puma's 20 s `persistent_timeout` closes them
/// on the other side, so we do not send into a connection the server is closing.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(15);
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);

/// The token header. The dash spelling: Rack maps it to the same key as
/// `api_access_token`, and nginx drops headers with underscores by default
/// (`underscores_in_headers off`, a common cause of 401s: chatwoot.md §1).
const TOKEN_HEADER: &str = "api-access-token";

/// Page size of `contacts/filter`; an exact identifier never needs a second page.
const FILTER_PAGE: u32 = 1;

/// A typed client of Chatwoot's application API, scoped to one account and API inbox.
/// Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct ChatwootClient {
    http: reqwest::Client,
    /// `{base_url}/api/v1/accounts/{account_id}`.
    base: String,
    inbox_id: u64,
    /// Kept only to mask it in error excerpts.
    token: String,
}

impl std::fmt::Debug for ChatwootClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatwootClient")
            .field("base", &self.base)
            .field("inbox_id", &self.inbox_id)
            .finish_non_exhaustive()
    }
}

/// `true` for `localhost` and loopback addresses: calls there skip any system proxy
/// (tests, the simulator, a Chatwoot on the same host).
fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host_str() {
        None => false,
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
    }
}

/// `POST /contacts` body: the contact plus our inbox, so the contact inbox exists too.
#[derive(Serialize)]
struct ContactBody<'a> {
    inbox_id: u64,
    identifier: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone_number: Option<&'a str>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    custom_attributes: &'a Map<String, Value>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    additional_attributes: &'a Map<String, Value>,
}

#[derive(Serialize)]
struct FilterCondition<'a> {
    attribute_key: &'a str,
    filter_operator: &'a str,
    values: [&'a str; 1],
    query_operator: Option<&'a str>,
}

/// `POST /contacts/filter` body: one exact condition.
#[derive(Serialize)]
struct FilterBody<'a> {
    payload: [FilterCondition<'a>; 1],
}

/// `POST /conversations` body.
#[derive(Serialize)]
struct ConversationBody<'a> {
    inbox_id: u64,
    contact_id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_id: Option<&'a str>,
    custom_attributes: &'a Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    team_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    assignee_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<ConversationStatus>,
}

/// `POST /conversations/{id}/messages` body.
#[derive(Serialize)]
struct MessageBody<'a> {
    content: &'a str,
    message_type: crate::MessageType,
    private: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    content_attributes: &'a Map<String, Value>,
}

#[derive(Serialize)]
struct CustomAttributesBody<'a> {
    custom_attributes: &'a Map<String, Value>,
}

#[derive(Serialize)]
struct LabelsBody<'a> {
    labels: &'a [String],
}

#[derive(Serialize)]
struct TeamAssignment {
    team_id: u64,
}

#[derive(Serialize)]
struct AgentAssignment {
    /// `null` unassigns.
    assignee_id: Option<u64>,
}

#[derive(Serialize)]
struct ToggleBody {
    status: ConversationStatus,
}

#[derive(Debug, Deserialize)]
struct Payload<T> {
    payload: T,
}

#[derive(Deserialize)]
struct CreatedContact {
    contact: Contact,
}

#[derive(Deserialize)]
struct Toggled {
    current_status: ConversationStatus,
}

#[derive(Deserialize)]
struct IdOnly {
    #[expect(
        dead_code,
        reason = "only its presence is checked: the record Chatwoot assigned"
    )]
    id: u64,
}

impl ChatwootClient {
    /// Builds the client and its connection pool. Fails only on a bad base URL or a token
    /// a header cannot carry.
    pub fn new(config: ChatwootConfig) -> Result<Self, ChatwootError> {
        let base_url = config.base_url.trim_end_matches('/');
        let url = reqwest::Url::parse(base_url)
            .map_err(|e| ChatwootError::Config(format!("base_url is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ChatwootError::Config(
                "base_url must be http or https".to_owned(),
            ));
        }
        let mut token = HeaderValue::from_str(&config.api_token).map_err(|_| {
            ChatwootError::Config("api_token cannot be sent as a header".to_owned())
        })?;
        // Marked sensitive: reqwest and hyper then never print it.
        token.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(HeaderName::from_static(TOKEN_HEADER), token);
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));

        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!(
                "consultation-middleware/",
                env!("CARGO_PKG_VERSION")
            ))
            .connect_timeout(CONNECT_TIMEOUT.min(config.timeout))
            .timeout(config.timeout)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .tcp_keepalive(TCP_KEEPALIVE)
            // HTTP/1.1 with keep-alive, what Chatwoot's Puma speaks: one call per
            // connection at a time, so a stalled call never holds up the others.
            .http1_only()
            // A redirect would turn a POST into a GET and carry the token to wherever it
            // points; a misconfigured base URL must fail loudly instead.
            .redirect(reqwest::redirect::Policy::none())
            // Exactly one attempt per method: retrying is the relay's decision, made with
            // the ambiguity of the outcome in mind.
            .retry(reqwest::retry::never());
        if is_loopback(&url) {
            builder = builder.no_proxy();
        }
        let http = builder
            .build()
            .map_err(|e| ChatwootError::Config(format!("HTTP client: {}", transport_detail(&e))))?;
        Ok(Self {
            http,
            base: format!("{base_url}/api/v1/accounts/{}", config.account_id),
            inbox_id: config.inbox_id,
            token: config.api_token,
        })
    }

    /// The API inbox this client creates conversations in.
    pub fn inbox_id(&self) -> u64 {
        self.inbox_id
    }

    /// The contact whose `identifier` is exactly this one (`POST contacts/filter`,
    /// `equal_to`; Chatwoot compares case-insensitively, we then keep the exact match).
    pub async fn find_contact_by_identifier(
        &self,
        identifier: &str,
    ) -> Result<Option<Contact>, ChatwootError> {
        let contacts = self.filter_contacts("identifier", identifier).await?;
        Ok(contacts
            .into_iter()
            .find(|c| c.identifier.as_deref() == Some(identifier)))
    }

    /// The contact with this e-mail (Chatwoot stores and compares e-mails lower-cased).
    pub async fn find_contact_by_email(
        &self,
        email: &str,
    ) -> Result<Option<Contact>, ChatwootError> {
        let contacts = self.filter_contacts("email", email).await?;
        Ok(contacts.into_iter().find(|c| {
            c.email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(email))
        }))
    }

    /// The contact with this phone number (E.164).
    pub async fn find_contact_by_phone_number(
        &self,
        phone_number: &str,
    ) -> Result<Option<Contact>, ChatwootError> {
        let contacts = self.filter_contacts("phone_number", phone_number).await?;
        Ok(contacts
            .into_iter()
            .find(|c| c.phone_number.as_deref() == Some(phone_number)))
    }

    async fn filter_contacts(
        &self,
        attribute_key: &str,
        value: &str,
    ) -> Result<Vec<Contact>, ChatwootError> {
        let body = FilterBody {
            payload: [FilterCondition {
                attribute_key,
                filter_operator: "equal_to",
                values: [value],
                query_operator: None,
            }],
        };
        let path = format!("/contacts/filter?page={FILTER_PAGE}");
        let page: Payload<Vec<Contact>> = self
            .call(Method::POST, "/contacts/filter", &path, Some(&body))
            .await?;
        Ok(page.payload)
    }

    /// `GET contacts/{id}`.
    pub async fn get_contact(&self, contact_id: u64) -> Result<Contact, ChatwootError> {
        let path = format!("/contacts/{contact_id}");
        let shown: Payload<Contact> = self
            .call(Method::GET, "/contacts/{id}", &path, None::<&()>)
            .await?;
        Ok(shown.payload)
    }

    /// `POST contacts` with our inbox, so the contact also gets a contact inbox there.
    /// [`ChatwootError::AlreadyTaken`] when the identifier (or e-mail, or phone number) is
    /// taken: look the contact up again.
    pub async fn create_contact(&self, contact: &NewContact) -> Result<Contact, ChatwootError> {
        let body = ContactBody {
            inbox_id: self.inbox_id,
            identifier: &contact.identifier,
            name: &contact.name,
            email: contact.email.as_deref(),
            phone_number: contact.phone_number.as_deref(),
            custom_attributes: &contact.custom_attributes,
            additional_attributes: &contact.additional_attributes,
        };
        let created: Payload<CreatedContact> = self
            .call(Method::POST, "/contacts", "/contacts", Some(&body))
            .await?;
        Ok(created.payload.contact)
    }

    /// `GET contacts/{id}/conversations`: the contact's **newest 20** conversations in the
    /// inboxes the token's user can see, newest first.
    pub async fn conversations_of_contact(
        &self,
        contact_id: u64,
    ) -> Result<Vec<Conversation>, ChatwootError> {
        let path = format!("/contacts/{contact_id}/conversations");
        let list: Payload<Vec<Conversation>> = self
            .call(
                Method::GET,
                "/contacts/{id}/conversations",
                &path,
                None::<&()>,
            )
            .await?;
        Ok(list.payload)
    }

    /// `POST conversations` in the configured API inbox. Not idempotent: after an
    /// ambiguous failure, look for the ticket's `cons_id` in
    /// [`conversations_of_contact`](Self::conversations_of_contact) before creating again.
    pub async fn create_conversation(
        &self,
        conversation: &NewConversation,
    ) -> Result<Conversation, ChatwootError> {
        let body = ConversationBody {
            inbox_id: self.inbox_id,
            contact_id: conversation.contact_id,
            source_id: conversation.source_id.as_deref(),
            custom_attributes: &conversation.custom_attributes,
            team_id: conversation.team_id,
            assignee_id: conversation.assignee_id,
            status: conversation.status,
        };
        self.call(
            Method::POST,
            "/conversations",
            "/conversations",
            Some(&body),
        )
        .await
    }

    /// `GET conversations/{id}` (display id).
    pub async fn get_conversation(
        &self,
        conversation_id: u64,
    ) -> Result<Conversation, ChatwootError> {
        let path = format!("/conversations/{conversation_id}");
        self.call(Method::GET, "/conversations/{id}", &path, None::<&()>)
            .await
    }

    /// `GET conversations/{id}/messages`: the **latest 20** messages (of any kind,
    /// activity messages included), oldest first.
    pub async fn messages(&self, conversation_id: u64) -> Result<Vec<Message>, ChatwootError> {
        let path = format!("/conversations/{conversation_id}/messages");
        let page: Payload<Vec<Message>> = self
            .call(
                Method::GET,
                "/conversations/{id}/messages",
                &path,
                None::<&()>,
            )
            .await?;
        Ok(page.payload)
    }

    /// `GET conversations/{id}/messages?after=…`: up to 100 messages newer than
    /// `after_message_id`, oldest first (page through a long conversation).
    pub async fn messages_after(
        &self,
        conversation_id: u64,
        after_message_id: u64,
    ) -> Result<Vec<Message>, ChatwootError> {
        let path = format!("/conversations/{conversation_id}/messages?after={after_message_id}");
        let page: Payload<Vec<Message>> = self
            .call(
                Method::GET,
                "/conversations/{id}/messages",
                &path,
                None::<&()>,
            )
            .await?;
        Ok(page.payload)
    }

    /// `POST conversations/{id}/messages`. Not idempotent: Chatwoot stores `source_id` but
    /// does not keep it unique, so after an ambiguous failure look for it in
    /// [`messages`](Self::messages) before posting again.
    pub async fn create_message(
        &self,
        conversation_id: u64,
        message: &NewMessage,
    ) -> Result<Message, ChatwootError> {
        let body = MessageBody {
            content: &message.content,
            message_type: message.message_type,
            private: message.private,
            source_id: message.source_id.as_deref(),
            content_attributes: &message.content_attributes,
        };
        let path = format!("/conversations/{conversation_id}/messages");
        self.call(
            Method::POST,
            "/conversations/{id}/messages",
            &path,
            Some(&body),
        )
        .await
    }

    /// `POST conversations/{id}/custom_attributes`. **Replaces** the whole map on 4.16.x:
    /// send every attribute the conversation should keep, `cons_id` included.
    pub async fn set_custom_attributes(
        &self,
        conversation_id: u64,
        custom_attributes: &Map<String, Value>,
    ) -> Result<(), ChatwootError> {
        let path = format!("/conversations/{conversation_id}/custom_attributes");
        let body = CustomAttributesBody { custom_attributes };
        let _: Value = self
            .call(
                Method::POST,
                "/conversations/{id}/custom_attributes",
                &path,
                Some(&body),
            )
            .await?;
        Ok(())
    }

    /// `POST conversations/{id}/labels`: **replaces** the labels; returns them as stored.
    pub async fn set_labels(
        &self,
        conversation_id: u64,
        labels: &[String],
    ) -> Result<Vec<String>, ChatwootError> {
        let path = format!("/conversations/{conversation_id}/labels");
        let stored: Payload<Vec<String>> = self
            .call(
                Method::POST,
                "/conversations/{id}/labels",
                &path,
                Some(&LabelsBody { labels }),
            )
            .await?;
        Ok(stored.payload)
    }

    /// `POST conversations/{id}/assignments` with `team_id` (`0` clears the team).
    /// [`ChatwootError::UnknownTeam`] when the account has no such team (Chatwoot then
    /// clears the team and answers `null`).
    pub async fn assign_team(
        &self,
        conversation_id: u64,
        team_id: u64,
    ) -> Result<(), ChatwootError> {
        let path = format!("/conversations/{conversation_id}/assignments");
        let team: Option<IdOnly> = self
            .call(
                Method::POST,
                "/conversations/{id}/assignments",
                &path,
                Some(&TeamAssignment { team_id }),
            )
            .await?;
        match team {
            None if team_id != 0 => Err(ChatwootError::UnknownTeam(team_id)),
            _ => Ok(()),
        }
    }

    /// `POST conversations/{id}/assignments` with `assignee_id` (`None` unassigns).
    /// [`ChatwootError::UnknownAgent`] when the user is not an agent of the account.
    pub async fn assign_agent(
        &self,
        conversation_id: u64,
        agent_id: Option<u64>,
    ) -> Result<(), ChatwootError> {
        let path = format!("/conversations/{conversation_id}/assignments");
        let body = AgentAssignment {
            assignee_id: agent_id,
        };
        let agent: Option<IdOnly> = self
            .call(
                Method::POST,
                "/conversations/{id}/assignments",
                &path,
                Some(&body),
            )
            .await?;
        match (agent, agent_id) {
            (None, Some(id)) => Err(ChatwootError::UnknownAgent(id)),
            _ => Ok(()),
        }
    }

    /// `POST conversations/{id}/toggle_status` with an explicit status (a snooze lasts until
    /// the contact's next message). Returns the status Chatwoot reports.
    pub async fn toggle_status(
        &self,
        conversation_id: u64,
        status: ConversationStatus,
    ) -> Result<ConversationStatus, ChatwootError> {
        let path = format!("/conversations/{conversation_id}/toggle_status");
        let toggled: Payload<Toggled> = self
            .call(
                Method::POST,
                "/conversations/{id}/toggle_status",
                &path,
                Some(&ToggleBody { status }),
            )
            .await?;
        Ok(toggled.payload.current_status)
    }

    /// `GET teams`: the account's teams (to resolve configured team names to ids).
    pub async fn teams(&self) -> Result<Vec<Team>, ChatwootError> {
        self.call(Method::GET, "/teams", "/teams", None::<&()>)
            .await
    }

    /// One HTTP call: sends, classifies, decodes. `template` names the route in traces
    /// (no ids, no personal data); `path` is the concrete path under the account.
    async fn call<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        template: &'static str,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ChatwootError> {
        let started = Instant::now();
        let outcome = self.exchange(method.clone(), path, body).await;
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match &outcome {
            Ok((status, _)) => {
                tracing::debug!(method = %method, path = template, status = status.as_u16(), elapsed_ms, "chatwoot call");
            }
            Err(error) => tracing::debug!(
                method = %method,
                path = template,
                status = error.http_status(),
                error = error.kind(),
                elapsed_ms,
                "chatwoot call failed"
            ),
        }
        outcome.map(|(_, value)| value)
    }

    /// Sends, reads the whole answer, and classifies or decodes it.
    async fn exchange<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<(StatusCode, T), ChatwootError> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| from_transport(&e))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await.map_err(|e| from_transport(&e))?;
        if status.is_success() {
            Ok((status, decode(&body)?))
        } else {
            Err(error::from_status(
                status.as_u16(),
                retry_after.as_deref(),
                &body,
                &self.token,
            ))
        }
    }
}

/// Decodes a 2xx body; the error names where it failed and how, never the value.
fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ChatwootError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let category = match e.inner().classify() {
            serde_json::error::Category::Io => "unreadable body",
            serde_json::error::Category::Syntax => "not JSON",
            serde_json::error::Category::Data => "unexpected shape",
            serde_json::error::Category::Eof => "truncated JSON",
        };
        ChatwootError::Decode(format!(
            "{category} at `{}` (line {}, column {})",
            e.path(),
            e.inner().line(),
            e.inner().column()
        ))
    })
}

/// A reqwest error's causes without its URL (the URL is ours, the causes are what helps).
fn transport_detail(error: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(error);
    while let Some(cause) = source {
        parts.push(cause.to_string());
        source = cause.source();
    }
    if parts.is_empty() {
        parts.push(error.to_string());
    }
    error::truncate(parts.join(": "), error::EXCERPT_MAX_CHARS)
}

/// Classifies a failure below HTTP: no connection (nothing sent), timeout (maybe
/// processed), or a connection lost mid-call (maybe processed).
fn from_transport(error: &reqwest::Error) -> ChatwootError {
    if error.is_builder() {
        ChatwootError::Config(transport_detail(error))
    } else if error.is_connect() {
        // Includes the connect timeout: no connection, so nothing was sent.
        ChatwootError::Connect(transport_detail(error))
    } else if error.is_timeout() {
        ChatwootError::Timeout
    } else {
        ChatwootError::Disconnected(transport_detail(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(base_url: &str) -> ChatwootConfig {
        ChatwootConfig {
            base_url: base_url.to_owned(),
            api_token: "tok-123".to_owned(),
            account_id: 7,
            inbox_id: 3,
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn debug_never_prints_the_token() {
        let config = config("http://127.0.0.1:3000/");
        assert!(!format!("{config:?}").contains("tok-123"));
        let client = ChatwootClient::new(config).unwrap();
        assert!(!format!("{client:?}").contains("tok-123"));
        assert_eq!(client.base, "http://127.0.0.1:3000/api/v1/accounts/7");
    }

    #[test]
    fn bad_configuration_is_refused() {
        assert!(matches!(
            ChatwootClient::new(config("chat.example.com")),
            Err(ChatwootError::Config(_))
        ));
        assert!(matches!(
            ChatwootClient::new(config("ftp://chat.example.com")),
            Err(ChatwootError::Config(_))
        ));
        let mut bad_token = config("https://chat.example.com");
        bad_token.api_token = "line\nbreak".to_owned();
        assert!(matches!(
            ChatwootClient::new(bad_token),
            Err(ChatwootError::Config(_))
        ));
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        let loopback = |raw: &str| is_loopback(&reqwest::Url::parse(raw).unwrap());
        assert!(loopback("http://127.0.0.1:3000"));
        assert!(loopback("http://localhost:3000"));
        assert!(loopback("http://[::1]:3000"));
        assert!(!loopback("https://chat.example.com"));
        assert!(!loopback("http://10.0.0.5"));
    }

    #[test]
    fn request_bodies_have_chatwoots_shape() {
        let filter = FilterBody {
            payload: [FilterCondition {
                attribute_key: "identifier",
                filter_operator: "equal_to",
                values: ["crm-7f3a9c"],
                query_operator: None,
            }],
        };
        let fixture = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/fixtures/chatwoot/api/contacts.filter.request.json"
        );
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
        assert_eq!(serde_json::to_value(&filter).unwrap(), expected);

        let empty = Map::new();
        let contact = ContactBody {
            inbox_id: 3,
            identifier: "crm-7f3a9c",
            name: "Jane Doe",
            email: None,
            phone_number: Some("+14155550123"),
            custom_attributes: &empty,
            additional_attributes: &empty,
        };
        assert_eq!(
            serde_json::to_value(&contact).unwrap(),
            json!({"inbox_id": 3, "identifier": "crm-7f3a9c", "name": "Jane Doe", "phone_number": "+14155550123"})
        );

        let message = NewMessage::incoming("hello", "cons:outbox-1");
        let body = MessageBody {
            content: &message.content,
            message_type: message.message_type,
            private: message.private,
            source_id: message.source_id.as_deref(),
            content_attributes: &message.content_attributes,
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({"content": "hello", "message_type": "incoming", "private": false, "source_id": "cons:outbox-1"})
        );

        let conversation = NewConversation::for_ticket(42, "t-1");
        let body = ConversationBody {
            inbox_id: 3,
            contact_id: conversation.contact_id,
            source_id: None,
            custom_attributes: &conversation.custom_attributes,
            team_id: Some(2),
            assignee_id: None,
            status: Some(ConversationStatus::Pending),
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({"inbox_id": 3, "contact_id": 42, "custom_attributes": {"cons_id": "t-1"}, "team_id": 2, "status": "pending"})
        );
        assert_eq!(
            serde_json::to_value(AgentAssignment { assignee_id: None }).unwrap(),
            json!({"assignee_id": null})
        );
    }

    #[test]
    fn decode_errors_name_the_place_not_the_value() {
        let error =
            decode::<Payload<Vec<Contact>>>(br#"{"payload":[{"id":"Jane Doe"}]}"#).unwrap_err();
        let ChatwootError::Decode(text) = error else {
            panic!("{error:?}")
        };
        assert!(text.contains("payload[0].id"), "{text}");
        assert!(!text.contains("Jane"), "{text}");
        assert!(matches!(
            decode::<Value>(b"<html>"),
            Err(ChatwootError::Decode(_))
        ));
    }
}
