//! 1C:ЦЛ effects. The counterparty is looked up (folder, subscriber code and INN) before
//! it is created, and the consultation by our ticket id, which it carries as a marker, so
//! an attempt whose answer was lost (1C committed, the connection dropped) is found, not
//! duplicated.

use crate::deliver::DeliveryError;
use cons_onec::{
    Channel, ConsultationPatch, ContactInfo, ContactKind, Counterparty, Importance, LegalForm,
    NewConsultation, NewCounterparty, OnecClient, OnecError,
};
use cons_store::outbox::Effect;
use cons_store::tickets::DeliveryView;
use uuid::Uuid;

/// The base's own keys, from configuration (domain.md §1.7).
#[derive(Debug, Clone)]
pub struct OnecRouting {
    /// `Parent_Key` of the folder our counterparties live in.
    pub counterparty_folder: Uuid,
    pub language_ru: Uuid,
    pub language_uz: Uuid,
    pub author: Option<Uuid>,
    pub contact_kind_phone: Uuid,
    pub contact_kind_email: Uuid,
}

pub struct OnecEffects {
    pub client: OnecClient,
    pub routing: OnecRouting,
}

impl OnecEffects {
    /// `ticket.create`: the client's counterparty, then the consultation document.
    pub async fn create_ticket(&self, view: &DeliveryView) -> Result<Effect, DeliveryError> {
        let counterparty = self.counterparty_for(view).await?;
        let ticket = &view.ticket;
        let consultation = match self
            .client
            .find_consultation_by_ticket(ticket.cons_id)
            .await
            .map_err(failure)?
        {
            Some(found) => found,
            None => {
                let client = &view.client;
                let contact = [
                    client.phone_number.as_deref(),
                    Some(client.name.as_str()),
                    Some(ticket.source.as_str()),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" / ");
                let description = ticket.comment.clone().unwrap_or_default();
                let new = NewConsultation {
                    ticket_id: ticket.cons_id,
                    counterparty_key: counterparty.ref_key,
                    author_key: self.routing.author,
                    manager_key: None,
                    scheduled_at: ticket.scheduled_at.unwrap_or(ticket.created_at),
                    created_at: ticket.created_at,
                    comment: format!("Создано из Clobus.uz\n{description}"),
                    description,
                    topic: ticket.topic.clone(),
                    language_key: if ticket.lang == "uz" {
                        self.routing.language_uz
                    } else {
                        self.routing.language_ru
                    },
                    category_key: None,
                    question_key: None,
                    channel: match ticket.source.as_str() {
                        "telegram" => Channel::Telegram,
                        "call_center" => Channel::Phone,
                        _ => Channel::Site,
                    },
                    how_to_contact: contact,
                    importance: match ticket.importance {
                        Some(1) => Importance::Low,
                        Some(3) => Importance::High,
                        _ => Importance::Normal,
                    },
                };
                self.client
                    .create_consultation(&new)
                    .await
                    .map_err(failure)?
            }
        };
        Ok(Effect::OnecTicket {
            counterparty_key: counterparty.ref_key,
            ref_key: consultation.ref_key,
            number: consultation.number,
        })
    }

    async fn counterparty_for(&self, view: &DeliveryView) -> Result<Counterparty, DeliveryError> {
        let client = &view.client;
        let (Some(code), Some(inn)) = (client.code_abonent.as_deref(), client.org_inn.as_deref())
        else {
            // 1C books accounting consultations against a subscriber, found by code and
            // INN; without them no retry can succeed until an operator adds them.
            return Err(DeliveryError::permanent(
                "the client has no subscriber code and INN, which 1C needs to book the consultation",
            ));
        };
        if let Some(found) = self
            .client
            .find_counterparty(self.routing.counterparty_folder, code, inn)
            .await
            .map_err(failure)?
        {
            return Ok(found);
        }
        let name = client
            .company_name
            .as_deref()
            .unwrap_or(client.name.as_str());
        let mut contacts = Vec::new();
        if let Some(phone) = &client.phone_number {
            contacts.push(ContactInfo {
                kind: ContactKind::Phone,
                kind_key: self.routing.contact_kind_phone,
                presentation: phone.clone(),
            });
        }
        if let Some(email) = &client.email {
            contacts.push(ContactInfo {
                kind: ContactKind::Email,
                kind_key: self.routing.contact_kind_email,
                presentation: email.clone(),
            });
        }
        let new = NewCounterparty {
            folder: self.routing.counterparty_folder,
            description: format!("Clobus {name} {code} ({inn})"),
            inn: inn.to_owned(),
            code_abonent: code.to_owned(),
            legal_form: LegalForm::from_inn(inn),
            contacts,
        };
        self.client.create_counterparty(&new).await.map_err(failure)
    }

    /// `ticket.sync`: brings the document in line with the ticket: the scheduled date
    /// (changed in Chatwoot) and a cancellation (the deletion mark). Only the fields that
    /// differ are patched, so a repeated delivery changes nothing. Returns the date the
    /// document now holds, so its echo in the next poll is recognised.
    pub async fn sync_ticket(&self, view: &DeliveryView) -> Result<Effect, DeliveryError> {
        let ticket = &view.ticket;
        let Some(ref_key) = ticket.onec_ref_key else {
            return Err(DeliveryError::retryable(
                "the ticket has no 1C document yet",
            ));
        };
        let Some(document) = self
            .client
            .get_consultation(ref_key)
            .await
            .map_err(failure)?
        else {
            return Err(DeliveryError::permanent("the 1C document no longer exists"));
        };
        let mut patch = ConsultationPatch::default();
        if ticket.scheduled_at.is_some() && ticket.scheduled_at != document.consultation_date {
            patch.consultation_date = ticket.scheduled_at;
        }
        let cancelled_here = ticket.status == cons_domain::TicketStatus::Cancelled.as_str();
        if cancelled_here && !document.deletion_mark && !document.closed_without_consultation {
            patch.deletion_mark = Some(true);
        }
        if !patch.is_empty() {
            self.client
                .patch_consultation(ref_key, &patch)
                .await
                .map_err(failure)?;
        }
        Ok(Effect::OnecSynced {
            scheduled_at: ticket.scheduled_at.or(document.consultation_date),
        })
    }
}

/// A 1C failure as the relay records it. A business refusal (e.g. the daily limit of
/// consultations per subscriber) is permanent: retrying cannot change the rule.
pub fn failure(error: OnecError) -> DeliveryError {
    DeliveryError {
        retryable: error.is_retryable() && !error.is_business_refusal(),
        message: format!("1c {}: {error}", error.kind()),
        http_status: error.http_status(),
        retry_after: error.retry_after(),
        peer_fault: true,
    }
}
