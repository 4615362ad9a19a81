//! Typed client of Chatwoot's application API (4.16.x), the calls the relay makes to
//! deliver tickets: contacts, conversations in one API-channel inbox, messages, custom
//! attributes, labels, teams, status. Each method is one HTTP call; failures come back as
//! a [`ChatwootError`] that says whether to retry, how long to wait, and whether the call
//! may have taken effect anyway ([`ChatwootError::is_ambiguous`]).
//!
//! Chatwoot has no idempotency keys, so the relay makes writes idempotent by looking first:
//!
//! - contacts: `identifier` (our client id) is unique per account. Look up with
//!   [`ChatwootClient::find_contact_by_identifier`]; a create that answers
//!   [`ChatwootError::AlreadyTaken`] means "exists, look it up again" (check `attributes`:
//!   an e-mail or phone number can also be taken by another contact).
//! - conversations: created with our ticket id in `custom_attributes.cons_id`
//!   ([`NewConversation::for_ticket`]). Find an existing one in
//!   [`ChatwootClient::conversations_of_contact`] (the contact's newest 20) by
//!   [`Conversation::cons_id`].
//! - messages: created with our marker in `source_id`, which Chatwoot echoes in the
//!   response, in message listings ([`ChatwootClient::messages`], the latest 20) and in
//!   webhooks (`source_id` of `message_created`).
//!
//! Ids: a conversation id is the per-account display id (`Conversation::id`); contact and
//! message ids are global. Nothing here logs bodies, tokens or personal data: traces carry
//! the method, the route template, the status and the elapsed time.

mod client;
mod error;
mod types;
mod webhook;

pub use client::{ChatwootClient, ChatwootConfig};
pub use error::{ChatwootError, EXCERPT_MAX_CHARS};
pub use types::{
    Agent, CONS_ID_ATTRIBUTE, Contact, ContactInbox, Conversation, ConversationMeta,
    ConversationStatus, InboxRef, Message, MessageSender, MessageType, NewContact, NewConversation,
    NewMessage, Team,
};
pub use webhook::{WebhookError, WebhookEvent, WebhookMessage};
