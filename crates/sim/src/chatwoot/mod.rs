//! The Chatwoot simulator: one account with one API-channel inbox, speaking Chatwoot 4.16.x's
//! application API on the wire (bodies shaped like `../shared/fixtures/chatwoot/api/`,
//! errors as in `errors.json`) and keeping the rules the middleware relies on: the token,
//! per-account uniqueness of contact `identifier`/`email`/`phone_number`, display ids,
//! replace semantics of conversation custom attributes and labels, `source_id` echoed on
//! messages, the message flood guard. Served by `crate::server::serve`, so every request is
//! recorded and scripted `Fault`s apply.
//!
//! Webhooks ([`ChatwootSim::set_webhook`]): like an API inbox's `webhook_url`, every
//! conversation and message event of the inbox goes to one URL, as 4.16 sends them
//! (chatwoot.md §4): `conversation_created`; `conversation_status_changed` (with
//! `changed_attributes: null`) and `conversation_updated` for a status change;
//! `conversation_updated` for assignee, team, custom attributes, labels, and the
//! `waiting_since`/`first_reply_created_at` a message moves; `message_created` for every
//! message, private notes and our own incoming ones included. Payloads are built when the
//! change happens (a delayed delivery carries an older state) and sent asynchronously, at
//! most once, signed when a secret is set, with optional seeded chaos (see
//! [`crate::webhooks`]). Changes through the REST API and the `agent_*` actions of a test
//! emit alike.
//!
//! What it does not do: agent bots, account webhooks (contact events), `message_updated`,
//! typing events, the public client API, contact search/update, conversation list/filter,
//! attachments, `merge` on custom attributes (4.17), the content normalisation of webhook
//! messages. Those routes answer 404 and count in [`ChatwootSim::unimplemented_calls`].

mod events;
mod routes;
mod state;
mod wire;

pub use state::{
    CONS_ID_KEY, SimAgent, SimContact, SimConversation, SimMessage, SimMessageType, SimSender,
    SimStatus, SimTeam,
};

use crate::faults::Faults;
use crate::server::{Recorded, SimServer, Wiring, serve};
use crate::webhooks::{CHATWOOT_HEADERS, SimWebhook, SimWebhooks, Webhooks};
use actix_web::web::Bytes;
use serde_json::{Map, Value};
use state::{Account, AssignmentParams, CustomAttributesParams, LabelsParams, MessageParams};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Where and as what the simulator runs.
#[derive(Clone)]
pub struct ChatwootSimConfig {
    /// `127.0.0.1:0` for a free port.
    pub bind: String,
    pub account_id: u64,
    /// The id of the simulated API-channel inbox.
    pub inbox_id: u64,
    /// The only access token it accepts.
    pub api_token: String,
    /// actix workers.
    pub workers: usize,
}

impl Default for ChatwootSimConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:0".to_owned(),
            account_id: 1,
            inbox_id: 3,
            api_token: "sim-chatwoot-token".to_owned(),
            workers: 1,
        }
    }
}

impl std::fmt::Debug for ChatwootSimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatwootSimConfig")
            .field("bind", &self.bind)
            .field("account_id", &self.account_id)
            .field("inbox_id", &self.inbox_id)
            .field("api_token", &"<redacted>")
            .field("workers", &self.workers)
            .finish()
    }
}

/// What the handlers share: the account behind one mutex (every operation is a few hash
/// lookups, far shorter than the HTTP work around it), the counter of unsimulated calls,
/// and the webhook sender.
pub(crate) struct Shared {
    account_id: u64,
    api_token: String,
    account: Mutex<Account>,
    unimplemented: AtomicU64,
    webhooks: Webhooks,
}

impl Shared {
    fn lock(&self) -> AccountGuard<'_> {
        AccountGuard {
            // A panicking handler must not poison the simulator for every later call.
            account: self.account.lock().unwrap_or_else(PoisonError::into_inner),
            webhooks: &self.webhooks,
        }
    }
}

/// The locked account. Letting go of it hands the events of the operation to the sender,
/// still under the lock, so deliveries are numbered in the order the changes happened, by
/// whichever path (REST handler or test action) made them.
struct AccountGuard<'a> {
    account: MutexGuard<'a, Account>,
    webhooks: &'a Webhooks,
}

impl Deref for AccountGuard<'_> {
    type Target = Account;

    fn deref(&self) -> &Account {
        &self.account
    }
}

impl DerefMut for AccountGuard<'_> {
    fn deref_mut(&mut self) -> &mut Account {
        &mut self.account
    }
}

impl Drop for AccountGuard<'_> {
    fn drop(&mut self) {
        for emitted in std::mem::take(&mut self.account.emitted) {
            self.webhooks.emit(
                emitted.event,
                emitted.conversation_id.to_string(),
                Bytes::from(emitted.body),
            );
        }
    }
}

/// Counts of what the simulated account holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimCounts {
    pub contacts: usize,
    pub conversations: usize,
    pub messages: usize,
}

/// A running Chatwoot simulator. Dropping it stops the server.
pub struct ChatwootSim {
    server: SimServer,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ChatwootSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatwootSim")
            .field("base_url", &self.server.base_url)
            .finish_non_exhaustive()
    }
}

impl ChatwootSim {
    /// Starts serving on the current tokio runtime.
    pub fn start(config: ChatwootSimConfig) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            account_id: config.account_id,
            api_token: config.api_token,
            account: Mutex::new(Account::new(config.account_id, config.inbox_id)),
            unimplemented: AtomicU64::new(0),
            webhooks: Webhooks::new(CHATWOOT_HEADERS),
        });
        let for_routes = shared.clone();
        let server = serve(
            &config.bind,
            config.workers,
            Arc::new(Wiring::default()),
            move |cfg| {
                routes::configure(cfg, for_routes.clone());
            },
        )?;
        Ok(Self { server, shared })
    }

    /// `http://127.0.0.1:<port>`, the Chatwoot base URL to give a client.
    pub fn base_url(&self) -> &str {
        &self.server.base_url
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }

    pub fn account_id(&self) -> u64 {
        self.shared.account_id
    }

    pub fn inbox_id(&self) -> u64 {
        self.shared.lock().inbox_id
    }

    pub fn faults(&self) -> &Faults {
        self.server.faults()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.server.requests()
    }

    pub fn clear_requests(&self) {
        self.server.wiring.clear_requests();
    }

    /// Stops accepting and drops open connections.
    pub async fn stop(&self) {
        self.server.stop().await;
    }

    /// Adds a team that assignments (and conversation creation) accept.
    pub fn add_team(&self, id: u64, name: &str) {
        self.shared.lock().teams.insert(
            id,
            SimTeam {
                id,
                name: name.to_owned(),
            },
        );
    }

    /// Adds an agent (a user of the account) that assignments accept.
    pub fn add_agent(&self, id: u64, name: &str, email: &str) {
        let agent = SimAgent {
            id,
            name: name.to_owned(),
            email: email.to_owned(),
        };
        self.shared.lock().agents.insert(id, agent);
    }

    /// Messages per conversation per minute before Chatwoot's flood guard answers 422
    /// "Too many messages" (200 by default, as Chatwoot; `None` turns it off for load tests).
    pub fn set_message_flood_limit(&self, limit: Option<usize>) {
        self.shared.lock().flood_limit = limit;
    }

    /// Calls to routes (or methods) the simulator does not implement.
    pub fn unimplemented_calls(&self) -> u64 {
        self.shared.unimplemented.load(Ordering::Relaxed)
    }

    pub fn counts(&self) -> SimCounts {
        let account = self.shared.lock();
        SimCounts {
            contacts: account.contacts.len(),
            conversations: account.conversations.len(),
            messages: account.message_count(),
        }
    }

    pub fn contacts(&self) -> Vec<SimContact> {
        self.shared.lock().contacts.clone()
    }

    pub fn contact(&self, id: u64) -> Option<SimContact> {
        self.shared.lock().contact(id).cloned()
    }

    pub fn conversations(&self) -> Vec<SimConversation> {
        self.shared.lock().conversations.clone()
    }

    /// A conversation by display id.
    pub fn conversation(&self, id: u64) -> Option<SimConversation> {
        self.shared.lock().conversation(id).cloned()
    }

    /// All messages of a conversation, oldest first (empty for an unknown id).
    pub fn messages(&self, conversation_id: u64) -> Vec<SimMessage> {
        self.shared
            .lock()
            .conversation(conversation_id)
            .map(|c| c.messages.clone())
            .unwrap_or_default()
    }

    /// Contacts with exactly this identifier (0 or 1: it is unique per account).
    pub fn contacts_with_identifier(&self, identifier: &str) -> usize {
        self.shared.lock().contacts_with_identifier(identifier)
    }

    /// Conversations whose `custom_attributes.cons_id` is this ticket id.
    pub fn conversations_with_cons_id(&self, cons_id: &str) -> usize {
        self.shared.lock().conversations_with_cons_id(cons_id)
    }

    /// Messages (in any conversation) created with this `source_id`.
    pub fn messages_with_source_id(&self, source_id: &str) -> usize {
        self.shared.lock().messages_with_source_id(source_id)
    }

    /// An agent replies in the Chatwoot UI (an outgoing message from that agent, or a
    /// private note). Returns the message id, `None` for an unknown conversation.
    pub fn agent_reply(
        &self,
        conversation_id: u64,
        agent_id: u64,
        content: &str,
        private: bool,
    ) -> Option<u64> {
        self.shared
            .lock()
            .agent_message(conversation_id, agent_id, content, private)
            .ok()
    }

    /// An agent changes the status in the Chatwoot UI. `false` for an unknown conversation.
    pub fn agent_set_status(&self, conversation_id: u64, status: SimStatus) -> bool {
        self.shared
            .lock()
            .set_status(conversation_id, status)
            .is_ok()
    }

    /// An agent assigns the conversation to an agent (`None` unassigns). `false` for an
    /// unknown conversation or agent.
    pub fn agent_assign(&self, conversation_id: u64, agent_id: Option<u64>) -> bool {
        let params = AssignmentParams {
            assignee_id: Some(agent_id.map_or(Value::Null, Value::from)),
            ..AssignmentParams::default()
        };
        self.assign_in_ui(conversation_id, params, |account| {
            agent_id.is_none_or(|id| account.agents.contains_key(&id))
        })
    }

    /// An agent gives the conversation to a team (`None` clears it). `false` for an
    /// unknown conversation or team.
    pub fn agent_set_team(&self, conversation_id: u64, team_id: Option<u64>) -> bool {
        let params = AssignmentParams {
            team_id: Some(team_id.map_or(Value::Null, Value::from)),
            ..AssignmentParams::default()
        };
        self.assign_in_ui(conversation_id, params, |account| {
            team_id.is_none_or(|id| account.teams.contains_key(&id))
        })
    }

    /// The UI offers only agents and teams that exist, so unlike the REST API an unknown
    /// one changes nothing.
    fn assign_in_ui(
        &self,
        conversation_id: u64,
        params: AssignmentParams,
        exists: impl FnOnce(&Account) -> bool,
    ) -> bool {
        let mut account = self.shared.lock();
        exists(&account) && account.assign(conversation_id, params).is_ok()
    }

    /// An agent edits the conversation's custom attributes: the whole hash is replaced,
    /// as by the REST API. `false` for an unknown conversation.
    pub fn agent_set_custom_attributes(
        &self,
        conversation_id: u64,
        attributes: Map<String, Value>,
    ) -> bool {
        let params = CustomAttributesParams {
            custom_attributes: Some(Value::Object(attributes)),
        };
        self.shared
            .lock()
            .replace_custom_attributes(conversation_id, params)
            .is_ok()
    }

    /// An agent sets the conversation's labels (replacing them). `false` for an unknown
    /// conversation.
    pub fn agent_set_labels(&self, conversation_id: u64, labels: &[&str]) -> bool {
        let params = LabelsParams {
            labels: Some(labels.iter().map(|l| Value::from(*l)).collect()),
        };
        self.shared
            .lock()
            .replace_labels(conversation_id, params)
            .is_ok()
    }

    /// The contact writes again (an incoming message; reopens a resolved or snoozed
    /// conversation, as in Chatwoot). The message id, `None` for an unknown conversation.
    pub fn contact_reply(&self, conversation_id: u64, content: &str) -> Option<u64> {
        let params = MessageParams {
            content: Some(content.to_owned()),
            message_type: Some(Value::from("incoming")),
            ..MessageParams::default()
        };
        self.shared
            .lock()
            .create_message(conversation_id, params)
            .ok()
    }

    /// Where webhooks go from now on (`None`: nowhere, and no events are built). Events
    /// emitted before are delivered to the target they had.
    pub fn set_webhook(&self, webhook: Option<SimWebhook>) {
        let mut account = self.shared.lock();
        account.webhooks_on = webhook.is_some();
        self.shared.webhooks.set_target(webhook);
    }
}

impl SimWebhooks for ChatwootSim {
    fn webhooks(&self) -> &Webhooks {
        &self.shared.webhooks
    }
}
