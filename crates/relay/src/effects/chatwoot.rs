//! Chatwoot effects. Each looks up what an earlier, ambiguous attempt may have created
//! before creating it: the contact by our client id (`identifier`), the conversation by
//! our ticket id (custom attribute `cons_id`), the message by our `source_id` marker.

use crate::deliver::DeliveryError;
use crate::inbound::observe::{
    SCHEDULED_ATTRIBUTE, chatwoot_status, conversation_status, format_scheduled,
};
use cons_chatwoot::{
    CONS_ID_ATTRIBUTE, ChatwootClient, ChatwootError, Contact, Conversation, NewContact,
    NewConversation, NewMessage,
};
use cons_domain::ChatwootStatus;
use cons_store::outbox::{Claimed, Effect};
use cons_store::tickets::DeliveryView;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Default)]
pub struct ChatwootRouting {
    /// Team per consultation type (`accounting`, `tech_support`), when configured.
    pub team_accounting: Option<u64>,
    pub team_tech_support: Option<u64>,
    /// Labels put on every new conversation.
    pub labels: Vec<String>,
}

pub struct ChatwootEffects {
    pub client: ChatwootClient,
    pub routing: ChatwootRouting,
}

impl ChatwootEffects {
    /// `ticket.create`: contact, conversation with our ticket id, the client's question as
    /// an incoming message, team and labels. Returns the ids to store.
    pub async fn create_ticket(&self, view: &DeliveryView) -> Result<Effect, DeliveryError> {
        let contact = self.contact_for(view).await?;
        let cons_id = view.ticket.cons_id.to_string();
        let conversation = match self.existing_conversation(contact.id, &cons_id).await? {
            Some(conversation) => conversation,
            None => {
                let mut new = NewConversation::for_ticket(contact.id, &cons_id);
                new.custom_attributes = self.attributes(view, None);
                new.source_id = contact
                    .source_ids_in(self.client.inbox_id())
                    .next()
                    .map(str::to_owned);
                new.team_id = match view.ticket.consultation_type.as_str() {
                    "accounting" => self.routing.team_accounting,
                    _ => self.routing.team_tech_support,
                };
                self.client
                    .create_conversation(&new)
                    .await
                    .map_err(failure)?
            }
        };
        if let Some(content) = view
            .ticket
            .comment
            .as_deref()
            .or(view.ticket.topic.as_deref())
        {
            let marker = format!("cons:{cons_id}:question");
            let messages = self
                .client
                .messages(conversation.id)
                .await
                .map_err(failure)?;
            if !messages
                .iter()
                .any(|m| m.source_id.as_deref() == Some(marker.as_str()))
            {
                self.client
                    .create_message(conversation.id, &NewMessage::incoming(content, marker))
                    .await
                    .map_err(failure)?;
            }
        }
        if !self.routing.labels.is_empty() && conversation.labels != self.routing.labels {
            self.client
                .set_labels(conversation.id, &self.routing.labels)
                .await
                .map_err(failure)?;
        }
        Ok(Effect::ChatwootTicket {
            contact_id: to_i64(contact.id)?,
            conversation_id: to_i64(conversation.id)?,
        })
    }

    /// `ticket.sync` (and the `ticket.onec_number` follow-up): brings the conversation in
    /// line with the ticket. The status is set only when the entry asks for one (a
    /// close or reopen decided by the sync rules) and Chatwoot does not already show it;
    /// the scheduled date and the 1C number are merged into the custom attributes, which
    /// Chatwoot (≤ 4.16) replaces as a whole, so the current ones are read first.
    /// Returns what the conversation now holds, so the echo of this write is recognised.
    pub async fn sync_ticket(
        &self,
        view: &DeliveryView,
        entry: &Claimed,
    ) -> Result<Effect, DeliveryError> {
        let Some(conversation_id) = view.ticket.chatwoot_conversation_id else {
            return Err(DeliveryError::retryable(
                "the ticket has no Chatwoot conversation yet",
            ));
        };
        let conversation_id = u64::try_from(conversation_id)
            .map_err(|_| DeliveryError::permanent("bad conversation id"))?;
        let conversation = self
            .client
            .get_conversation(conversation_id)
            .await
            .map_err(failure)?;
        let mut status = conversation.status;
        if let Some(wanted) = entry
            .payload
            .get("status")
            .and_then(Value::as_str)
            .and_then(|raw| ChatwootStatus::parse(raw).ok())
            .map(conversation_status)
            .filter(|wanted| *wanted != conversation.status)
        {
            status = self
                .client
                .toggle_status(conversation_id, wanted)
                .await
                .map_err(failure)?;
        }
        let ticket = &view.ticket;
        let mut attributes = conversation.custom_attributes.clone();
        attributes.insert(
            CONS_ID_ATTRIBUTE.into(),
            Value::String(ticket.cons_id.to_string()),
        );
        if let Some(number) = &ticket.onec_number {
            attributes.insert("number_con".into(), Value::String(number.clone()));
        }
        if let Some(at) = ticket.scheduled_at {
            attributes.insert(
                SCHEDULED_ATTRIBUTE.into(),
                Value::String(format_scheduled(at)),
            );
        }
        if attributes != conversation.custom_attributes {
            self.client
                .set_custom_attributes(conversation_id, &attributes)
                .await
                .map_err(failure)?;
        }
        Ok(Effect::ChatwootSynced {
            status: chatwoot_status(status),
            scheduled_at: ticket.scheduled_at,
        })
    }

    /// The client's contact: by our client id, else created; a create that finds the
    /// identifier taken (an earlier attempt made it) looks it up again. An e-mail or phone
    /// taken by a contact agents made by hand adopts that contact.
    async fn contact_for(&self, view: &DeliveryView) -> Result<Contact, DeliveryError> {
        let identifier = view.client.client_id.to_string();
        if let Some(contact) = self
            .client
            .find_contact_by_identifier(&identifier)
            .await
            .map_err(failure)?
        {
            return Ok(contact);
        }
        let new = NewContact {
            identifier: identifier.clone(),
            name: view.client.name.clone(),
            phone_number: view.client.phone_number.clone(),
            email: view.client.email.clone(),
            ..NewContact::default()
        };
        match self.client.create_contact(&new).await {
            Ok(contact) => Ok(contact),
            Err(ChatwootError::AlreadyTaken { attributes }) => {
                let found = if attributes.iter().any(|a| a == "identifier") {
                    self.client
                        .find_contact_by_identifier(&identifier)
                        .await
                        .map_err(failure)?
                } else if let (true, Some(email)) =
                    (attributes.iter().any(|a| a == "email"), &view.client.email)
                {
                    self.client
                        .find_contact_by_email(email)
                        .await
                        .map_err(failure)?
                } else if let Some(phone) = &view.client.phone_number {
                    self.client
                        .find_contact_by_phone_number(phone)
                        .await
                        .map_err(failure)?
                } else {
                    None
                };
                found.ok_or_else(|| {
                    DeliveryError::retryable("the contact was taken but cannot be found")
                })
            }
            Err(error) => Err(failure(error)),
        }
    }

    async fn existing_conversation(
        &self,
        contact_id: u64,
        cons_id: &str,
    ) -> Result<Option<Conversation>, DeliveryError> {
        let conversations = self
            .client
            .conversations_of_contact(contact_id)
            .await
            .map_err(failure)?;
        Ok(conversations
            .into_iter()
            .find(|c| c.cons_id() == Some(cons_id)))
    }

    fn attributes(&self, view: &DeliveryView, number: Option<&str>) -> Map<String, Value> {
        let mut attributes = Map::new();
        let ticket = &view.ticket;
        attributes.insert(
            CONS_ID_ATTRIBUTE.into(),
            Value::String(ticket.cons_id.to_string()),
        );
        attributes.insert(
            "consultation_type".into(),
            Value::String(ticket.consultation_type.clone()),
        );
        attributes.insert(
            "code_abonent".into(),
            Value::String(
                view.client
                    .code_abonent
                    .clone()
                    .unwrap_or_else(|| "N/A".into()),
            ),
        );
        attributes.insert("lang".into(), Value::String(ticket.lang.clone()));
        if let Some(at) = ticket.scheduled_at {
            attributes.insert(
                SCHEDULED_ATTRIBUTE.into(),
                Value::String(format_scheduled(at)),
            );
        }
        if let Some(number) = number {
            attributes.insert("number_con".into(), Value::String(number.to_owned()));
        }
        attributes
    }
}

fn to_i64(id: u64) -> Result<i64, DeliveryError> {
    i64::try_from(id).map_err(|_| DeliveryError::permanent("Chatwoot returned an id out of range"))
}

/// A Chatwoot failure as the relay records it.
pub fn failure(error: ChatwootError) -> DeliveryError {
    DeliveryError {
        retryable: error.is_retryable(),
        message: format!("chatwoot {}: {error}", error.kind()),
        http_status: error.http_status().filter(|s| *s >= 300),
        retry_after: error.retry_after(),
        peer_fault: true,
    }
}
