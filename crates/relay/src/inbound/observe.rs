//! What Chatwoot and 1C records mean as observations of a ticket, and applying one: lock
//! the ticket, plan with the domain rules, write the plan, all in the caller's
//! transaction.

use chrono::{DateTime, NaiveDateTime, Utc};
use cons_chatwoot::{Conversation, ConversationStatus};
use cons_domain::sync::{
    self, ChatwootObservation, OnecDocumentState, OnecObservation, Outcome, marker_cons_id,
};
use cons_domain::{ChatwootStatus, HistorySource, OnecKind};
use cons_onec::{Consultation, ConsultationKind};
use cons_store::StoreError;
use cons_store::inbound::{self, InboxStatus, TicketKey};
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

/// The custom attribute that carries the scheduled date (`date_con`, the original's name).
pub const SCHEDULED_ATTRIBUTE: &str = "date_con";

/// The conversation as an observation, with the key of its ticket; `None` when it
/// carries no `updated_at` (nothing could order it against other states).
pub fn chatwoot(conversation: &Conversation) -> Option<(TicketKey, ChatwootObservation)> {
    let updated_at = seconds(conversation.updated_at?)?;
    let key = TicketKey::Chatwoot {
        conversation_id: i64::try_from(conversation.id).ok()?,
        cons_id: conversation
            .cons_id()
            .and_then(|id| Uuid::parse_str(id).ok()),
    };
    let observation = ChatwootObservation {
        updated_at,
        status: chatwoot_status(conversation.status),
        assignee_id: conversation
            .assignee_id()
            .and_then(|id| i64::try_from(id).ok()),
        team_id: conversation
            .meta
            .team
            .as_ref()
            .and_then(|team| i64::try_from(team.id).ok()),
        scheduled_at: conversation
            .custom_attributes
            .get(SCHEDULED_ATTRIBUTE)
            .and_then(serde_json::Value::as_str)
            .and_then(parse_scheduled),
        last_activity_at: conversation
            .last_activity_at
            .and_then(|at| DateTime::from_timestamp(at, 0)),
    };
    Some((key, observation))
}

/// Chatwoot's wire status as the domain's.
pub fn chatwoot_status(status: ConversationStatus) -> ChatwootStatus {
    match status {
        ConversationStatus::Open => ChatwootStatus::Open,
        ConversationStatus::Pending => ChatwootStatus::Pending,
        ConversationStatus::Snoozed => ChatwootStatus::Snoozed,
        ConversationStatus::Resolved => ChatwootStatus::Resolved,
    }
}

/// The domain's status as Chatwoot's wire status.
pub fn conversation_status(status: ChatwootStatus) -> ConversationStatus {
    match status {
        ChatwootStatus::Open => ConversationStatus::Open,
        ChatwootStatus::Pending => ConversationStatus::Pending,
        ChatwootStatus::Snoozed => ConversationStatus::Snoozed,
        ChatwootStatus::Resolved => ConversationStatus::Resolved,
    }
}

/// How we write the scheduled date into `date_con`: UTC, to the second, no zone (what
/// Chatwoot's date attribute shows agents).
pub fn format_scheduled(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// `date_con` as we write it, or as an agent's date picker stores it (RFC 3339).
fn parse_scheduled(raw: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw)
        .map(|at| at.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S")
                .ok()
                .map(|naive| naive.and_utc())
        })
}

fn seconds(value: f64) -> Option<DateTime<Utc>> {
    if !value.is_finite() {
        return None;
    }
    let whole = value.floor();
    let micros = ((value - whole) * 1_000_000.0).round() as u32;
    DateTime::from_timestamp(whole as i64, micros.min(999_999) * 1000)
}

/// The document as an observation, with the key of its ticket.
pub fn onec(document: &Consultation) -> (TicketKey, OnecObservation) {
    let key = TicketKey::Onec {
        ref_key: document.ref_key,
        cons_id: marker_cons_id(&document.marker),
    };
    let observation = OnecObservation {
        // Never empty on a saved document; the document date is the fallback.
        changed_at: document
            .date_changed
            .or(document.date)
            .unwrap_or(DateTime::UNIX_EPOCH),
        data_version: document.data_version.as_str().to_owned(),
        number: document.number.clone(),
        state: OnecDocumentState {
            kind: match document.kind {
                ConsultationKind::Queued => Some(OnecKind::Queued),
                ConsultationKind::ItsConsultation => Some(OnecKind::Its),
                ConsultationKind::Other => Some(OnecKind::Other),
                ConsultationKind::Unset | ConsultationKind::Unknown(_) => None,
            },
            ended: document.end.is_some(),
            closed_without_consultation: document.closed_without_consultation,
            deletion_mark: document.deletion_mark,
        },
        end: document.end,
        manager_key: document.manager_key,
        consultation_date: document.consultation_date,
    };
    (key, observation)
}

/// An observation of either peer.
pub enum Observation {
    Chatwoot(ChatwootObservation),
    Onec(OnecObservation),
}

/// Applies an observation to its ticket inside `tx`. `actor` says which path saw it
/// (`webhook`, `poll`, `reconcile`) in the history.
pub async fn apply(
    tx: &mut AsyncPgConnection,
    key: TicketKey,
    observation: &Observation,
    actor: &str,
) -> Result<InboxStatus, StoreError> {
    let Some((cons_id, current)) = inbound::lock_ticket(tx, key).await? else {
        return Ok(InboxStatus::Ignored);
    };
    let (plan, source) = match observation {
        Observation::Chatwoot(observed) => (
            sync::plan_chatwoot(&current, observed),
            HistorySource::Chatwoot,
        ),
        Observation::Onec(observed) => (sync::plan_onec(&current, observed), HistorySource::Onec),
    };
    if plan.outcome != Outcome::Stale && plan.next != current {
        inbound::write_plan(tx, cons_id, &plan, source, actor).await?;
    }
    metrics::counter!(
        "inbound_events_total",
        "source" => source.as_str(),
        "outcome" => InboxStatus::from(plan.outcome).as_str()
    )
    .increment(1);
    if plan.outcome == Outcome::Applied {
        tracing::info!(%cons_id, source = source.as_str(), actor, changes = plan.changes.len(), "ticket changed at a peer");
    }
    Ok(plan.outcome.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduled_dates_read_back_as_written() {
        let at = DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default();
        assert_eq!(parse_scheduled(&format_scheduled(at)), Some(at));
        assert_eq!(
            parse_scheduled("2026-12-01T10:00:00+05:00").map(|t| t.to_rfc3339()),
            Some("2026-12-01T05:00:00+00:00".into())
        );
        assert_eq!(parse_scheduled("tomorrow"), None);
    }

    #[test]
    fn chatwoot_seconds_keep_their_fraction() {
        let at = seconds(1_786_958_525.187).unwrap_or_default();
        assert_eq!(at.timestamp(), 1_786_958_525);
        assert_eq!(at.timestamp_subsec_millis(), 187);
        assert_eq!(seconds(f64::NAN), None);
    }
}
