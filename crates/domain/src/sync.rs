//! The one status model and the rules that apply a change seen in Chatwoot or 1C to a
//! ticket: who may set which status, what each peer's state means in ours, and when the
//! other side must be told. `docs/STATUS.md` is this file as a table; its tests keep the
//! two equal.
//!
//! Echoes and duplicates are recognised by comparing an observation with what we last
//! knew that peer to hold (its "view" on the ticket), never with our own canonical value:
//! a peer change is a value that differs from the peer's previous value. Staleness is
//! judged by the peer's own clock (Chatwoot's `updated_at`, 1C's `ДатаИзменения` and
//! `DataVersion`), so a reordered older delivery never wins.

use crate::{ChatwootStatus, ConsultationType, OnecKind, Target, TicketStatus};
use chrono::{DateTime, Utc};
use uuid::Uuid;

impl ChatwootStatus {
    /// What a conversation status means for the ticket.
    pub fn ticket_status(self) -> TicketStatus {
        match self {
            ChatwootStatus::Open => TicketStatus::Open,
            ChatwootStatus::Pending | ChatwootStatus::Snoozed => TicketStatus::Pending,
            ChatwootStatus::Resolved => TicketStatus::Resolved,
        }
    }
}

/// The fields of a 1C consultation document that carry its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OnecDocumentState {
    /// `ВидОбращения`; `None` when empty.
    pub kind: Option<OnecKind>,
    /// `Конец` is filled: the consultation took place.
    pub ended: bool,
    /// `ЗакрытоБезКонсультации`.
    pub closed_without_consultation: bool,
    /// `DeletionMark`: an operator deleted the document.
    pub deletion_mark: bool,
}

impl OnecDocumentState {
    /// The ticket status the document implies, `None` when it implies none (`Другое` or
    /// an empty kind on a live document).
    pub fn ticket_status(&self) -> Option<TicketStatus> {
        if self.deletion_mark || self.closed_without_consultation {
            return Some(TicketStatus::Cancelled);
        }
        if self.ended {
            return Some(TicketStatus::Resolved);
        }
        match self.kind? {
            OnecKind::Queued => Some(TicketStatus::Pending),
            OnecKind::Its => Some(TicketStatus::Open),
            OnecKind::Other => None,
        }
    }
}

/// What to do with a status a peer reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The ticket takes this status.
    Apply(TicketStatus),
    /// The ticket keeps its status and the peer keeps its own (no correction).
    Keep,
    /// The peer may not make this change: the ticket keeps its status and the peer is
    /// set back (an agent resolving an accounting conversation in Chatwoot).
    Refuse,
}

/// A status change made in Chatwoot.
///
/// Technical support lives in Chatwoot only, so Chatwoot decides its status, reopening a
/// resolved ticket included (Chatwoot reopens a conversation when the client writes
/// again). Accounting consultations are finished in 1C: Chatwoot may move an open
/// accounting ticket between open and pending, its resolve is refused, and once 1C has
/// closed the ticket a reopened conversation (the client wrote again) leaves it closed.
/// Cancelled is final for Chatwoot.
pub fn status_from_chatwoot(
    consultation_type: ConsultationType,
    current: TicketStatus,
    observed: ChatwootStatus,
) -> Verdict {
    let wanted = observed.ticket_status();
    if current == TicketStatus::Cancelled || wanted == current {
        return Verdict::Keep;
    }
    match consultation_type {
        ConsultationType::TechSupport => Verdict::Apply(wanted),
        ConsultationType::Accounting if current.is_terminal() => Verdict::Keep,
        ConsultationType::Accounting if wanted == TicketStatus::Resolved => Verdict::Refuse,
        ConsultationType::Accounting => Verdict::Apply(wanted),
    }
}

/// A status change made in 1C. 1C is where accounting consultations are queued, held,
/// closed and cancelled, so what its document implies is applied, reopening included
/// (an operator cleared `Конец` or the deletion mark). Technical support never reaches
/// 1C, so 1C has no say on it.
pub fn status_from_onec(
    consultation_type: ConsultationType,
    current: TicketStatus,
    implied: Option<TicketStatus>,
) -> Verdict {
    match (consultation_type, implied) {
        (ConsultationType::Accounting, Some(implied)) if implied != current => {
            Verdict::Apply(implied)
        }
        _ => Verdict::Keep,
    }
}

/// The Chatwoot status to set so the conversation agrees with the ticket on whether the
/// consultation is closed, or `None` when it already agrees (open, pending and snoozed
/// are the agents' own business while the ticket is open). A ticket not yet in Chatwoot
/// (`new`) is never pushed.
pub fn chatwoot_status_to_push(
    ticket: TicketStatus,
    chatwoot: Option<ChatwootStatus>,
) -> Option<ChatwootStatus> {
    let closed_in_chatwoot = chatwoot == Some(ChatwootStatus::Resolved);
    match ticket {
        TicketStatus::New => None,
        TicketStatus::Resolved | TicketStatus::Cancelled if !closed_in_chatwoot => {
            Some(ChatwootStatus::Resolved)
        }
        TicketStatus::Open | TicketStatus::Pending if closed_in_chatwoot => {
            Some(ChatwootStatus::Open)
        }
        _ => None,
    }
}

/// What the ticket's sync columns hold: the canonical values and each peer's view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketSync {
    pub consultation_type: ConsultationType,
    pub status: TicketStatus,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub onec_number: Option<String>,
    pub onec_manager_key: Option<Uuid>,
    pub chatwoot_assignee_id: Option<i64>,
    pub chatwoot_team_id: Option<i64>,
    pub last_activity_at: Option<DateTime<Utc>>,
    pub chatwoot: ChatwootView,
    pub onec: OnecView,
}

/// What Chatwoot held when we last looked or wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatwootView {
    pub status: Option<ChatwootStatus>,
    pub scheduled_at: Option<DateTime<Utc>>,
    /// The conversation's `updated_at` of the newest state applied.
    pub seen_at: Option<DateTime<Utc>>,
}

/// What 1C held when we last looked or wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OnecView {
    pub status: Option<TicketStatus>,
    pub scheduled_at: Option<DateTime<Utc>>,
    /// `ДатаИзменения` and `DataVersion` of the newest version applied.
    pub seen_at: Option<DateTime<Utc>>,
    pub data_version: Option<String>,
}

/// A conversation as a webhook or a read showed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatwootObservation {
    /// The conversation's own `updated_at`.
    pub updated_at: DateTime<Utc>,
    pub status: ChatwootStatus,
    pub assignee_id: Option<i64>,
    pub team_id: Option<i64>,
    /// The `date_con` custom attribute.
    pub scheduled_at: Option<DateTime<Utc>>,
    pub last_activity_at: Option<DateTime<Utc>>,
}

/// A consultation document as the poll, a read or the 1C extension's event showed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnecObservation {
    /// `ДатаИзменения` (one-second resolution) and `DataVersion`.
    pub changed_at: DateTime<Utc>,
    pub data_version: String,
    pub number: String,
    pub state: OnecDocumentState,
    /// `Конец`.
    pub end: Option<DateTime<Utc>>,
    pub manager_key: Option<Uuid>,
    /// `ДатаКонсультации`.
    pub consultation_date: Option<DateTime<Utc>>,
}

/// How an observation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The ticket changed.
    Applied,
    /// Nothing to change: an echo of our own write, a duplicate, or nothing new.
    Unchanged,
    /// Older than what was already applied.
    Stale,
}

/// One line of the ticket's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    pub field: &'static str,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// What applying an observation does: the ticket's next sync state, the history lines,
/// and the peers that must be brought in line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub outcome: Outcome,
    pub next: TicketSync,
    pub changes: Vec<FieldChange>,
    /// For Chatwoot: the status to set there, if any, and whether its attributes
    /// (scheduled date, 1C number) must be rewritten.
    pub push_chatwoot: Option<ChatwootPush>,
    /// 1C must be brought in line (its scheduled date).
    pub push_onec: bool,
}

/// What a Chatwoot sync entry carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatwootPush {
    pub status: Option<ChatwootStatus>,
}

impl Plan {
    fn unchanged(current: &TicketSync, outcome: Outcome) -> Plan {
        Plan {
            outcome,
            next: current.clone(),
            changes: Vec::new(),
            push_chatwoot: None,
            push_onec: false,
        }
    }

    /// The targets with something to deliver.
    pub fn targets(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        if self.push_chatwoot.is_some() {
            targets.push(Target::Chatwoot);
        }
        if self.push_onec {
            targets.push(Target::Onec);
        }
        targets
    }
}

struct Recorder<'a> {
    changes: &'a mut Vec<FieldChange>,
}

impl Recorder<'_> {
    fn set<T: PartialEq + ToString>(&mut self, field: &'static str, slot: &mut T, value: T) {
        if *slot != value {
            self.changes.push(FieldChange {
                field,
                old: Some(slot.to_string()),
                new: Some(value.to_string()),
            });
            *slot = value;
        }
    }

    fn set_opt<T: PartialEq + ToString>(
        &mut self,
        field: &'static str,
        slot: &mut Option<T>,
        value: Option<T>,
    ) {
        if *slot != value {
            self.changes.push(FieldChange {
                field,
                old: slot.as_ref().map(ToString::to_string),
                new: value.as_ref().map(ToString::to_string),
            });
            *slot = value;
        }
    }
}

/// Applies a conversation state seen in Chatwoot.
pub fn plan_chatwoot(current: &TicketSync, observed: &ChatwootObservation) -> Plan {
    if current
        .chatwoot
        .seen_at
        .is_some_and(|seen| observed.updated_at < seen)
    {
        return Plan::unchanged(current, Outcome::Stale);
    }
    let mut next = current.clone();
    let mut changes = Vec::new();
    let mut record = Recorder {
        changes: &mut changes,
    };
    let mut push_chatwoot = None;
    let mut push_onec = false;

    if current.chatwoot.status != Some(observed.status) {
        record.set_opt(
            "chatwoot_status",
            &mut next.chatwoot.status,
            Some(observed.status),
        );
        match status_from_chatwoot(current.consultation_type, current.status, observed.status) {
            Verdict::Apply(status) => {
                set_status(&mut record, &mut next, status, observed.updated_at)
            }
            Verdict::Keep => {}
            Verdict::Refuse => {
                push_chatwoot = Some(ChatwootPush {
                    status: chatwoot_status_to_push(next.status, Some(observed.status)),
                });
            }
        }
    }
    if current.chatwoot.scheduled_at != observed.scheduled_at {
        next.chatwoot.scheduled_at = observed.scheduled_at;
        if current.scheduled_at != observed.scheduled_at {
            record.set_opt(
                "scheduled_at",
                &mut next.scheduled_at,
                observed.scheduled_at,
            );
            push_onec = current.consultation_type.targets().contains(&Target::Onec);
        }
    }
    record.set_opt(
        "chatwoot_assignee_id",
        &mut next.chatwoot_assignee_id,
        observed.assignee_id,
    );
    record.set_opt(
        "chatwoot_team_id",
        &mut next.chatwoot_team_id,
        observed.team_id,
    );
    if observed.last_activity_at > next.last_activity_at {
        next.last_activity_at = observed.last_activity_at;
    }
    next.chatwoot.seen_at = Some(observed.updated_at);
    finish(next, changes, push_chatwoot, push_onec)
}

/// Applies a consultation document seen in 1C.
pub fn plan_onec(current: &TicketSync, observed: &OnecObservation) -> Plan {
    if let Some(seen) = current.onec.seen_at {
        let same_version = current.onec.data_version.as_deref() == Some(&observed.data_version);
        if observed.changed_at < seen || (observed.changed_at == seen && same_version) {
            let outcome = if same_version {
                Outcome::Unchanged
            } else {
                Outcome::Stale
            };
            return Plan::unchanged(current, outcome);
        }
    }
    let mut next = current.clone();
    let mut changes = Vec::new();
    let mut record = Recorder {
        changes: &mut changes,
    };
    let mut push_chatwoot = false;

    let implied = observed.state.ticket_status();
    if current.onec.status != implied {
        next.onec.status = implied;
        if let Verdict::Apply(status) =
            status_from_onec(current.consultation_type, current.status, implied)
        {
            let at = observed.end.unwrap_or(observed.changed_at);
            set_status(&mut record, &mut next, status, at);
            // Chatwoot hears of it only when open and closed disagree.
            push_chatwoot = chatwoot_status_to_push(next.status, next.chatwoot.status).is_some();
        }
    }
    if !observed.number.is_empty() {
        let before = next.onec_number.clone();
        record.set_opt(
            "onec_number",
            &mut next.onec_number,
            Some(observed.number.clone()),
        );
        push_chatwoot |= before != next.onec_number;
    }
    record.set_opt(
        "onec_manager_key",
        &mut next.onec_manager_key,
        observed.manager_key,
    );
    if current.onec.scheduled_at != observed.consultation_date {
        next.onec.scheduled_at = observed.consultation_date;
        if observed.consultation_date.is_some()
            && current.scheduled_at != observed.consultation_date
        {
            record.set_opt(
                "scheduled_at",
                &mut next.scheduled_at,
                observed.consultation_date,
            );
            push_chatwoot = true;
        }
    }
    next.onec.seen_at = Some(observed.changed_at);
    next.onec.data_version = Some(observed.data_version.clone());
    let push_chatwoot = push_chatwoot.then(|| ChatwootPush {
        status: chatwoot_status_to_push(next.status, next.chatwoot.status),
    });
    finish(next, changes, push_chatwoot, false)
}

/// Sets the status and keeps `ended_at` in step: set when the ticket closes (at the
/// peer's time), cleared when it reopens.
fn set_status(
    record: &mut Recorder<'_>,
    next: &mut TicketSync,
    status: TicketStatus,
    at: DateTime<Utc>,
) {
    let was_terminal = next.status.is_terminal();
    record.set("status", &mut next.status, status);
    if status.is_terminal() && !was_terminal {
        record.set_opt("ended_at", &mut next.ended_at, Some(at));
    } else if !status.is_terminal() {
        record.set_opt("ended_at", &mut next.ended_at, None);
    }
}

fn finish(
    next: TicketSync,
    changes: Vec<FieldChange>,
    push_chatwoot: Option<ChatwootPush>,
    push_onec: bool,
) -> Plan {
    // A plan without changes still carries the peer's clock and view in `next`, so that
    // a later, older delivery is recognised as stale.
    let outcome = if changes.is_empty() {
        Outcome::Unchanged
    } else {
        Outcome::Applied
    };
    Plan {
        outcome,
        next,
        changes,
        push_chatwoot,
        push_onec,
    }
}

/// An event pushed by the 1C:ЦЛ extension to `POST /webhook/1c_cl` (the contract's
/// format; `docs/STATUS.md` lists its fields): the document as it is after the change.
#[derive(Debug, Clone, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OnecEvent {
    /// Unique per event: the same id twice has one effect.
    pub event_id: String,
    /// `consultation.created`, `consultation.updated` or `consultation.closed`.
    pub event: String,
    pub occurred_at: DateTime<chrono::FixedOffset>,
    pub data: OnecEventData,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OnecEventData {
    pub ref_key: Uuid,
    pub number: Option<String>,
    /// `ВидОбращения`: `ВОчередьНаКонсультацию`, `КонсультацияИТС`, `Другое` or empty.
    pub status_1c: Option<String>,
    /// `Конец`, or null while the consultation has not taken place.
    pub end: Option<DateTime<chrono::FixedOffset>>,
    #[serde(default)]
    pub closed_without_consultation: bool,
    #[serde(default)]
    pub deletion_mark: bool,
    pub manager_key: Option<Uuid>,
    /// `ДатаКонсультации`.
    pub consultation_date: Option<DateTime<chrono::FixedOffset>>,
    /// `ДатаИзменения`: orders the versions of one document.
    pub date_changed: DateTime<chrono::FixedOffset>,
    /// `DataVersion`.
    pub data_version: String,
    /// Our marker field (`cons:<ticket id>`) when the document is one of ours.
    pub marker: Option<String>,
}

impl OnecEvent {
    pub const MAX_ID_LEN: usize = 255;

    /// The document as an observation; an unknown `status_1c` counts as empty.
    pub fn observation(&self) -> OnecObservation {
        let data = &self.data;
        let utc = |at: DateTime<chrono::FixedOffset>| at.with_timezone(&Utc);
        OnecObservation {
            changed_at: utc(data.date_changed),
            data_version: data.data_version.clone(),
            number: data.number.clone().unwrap_or_default(),
            state: OnecDocumentState {
                kind: data
                    .status_1c
                    .as_deref()
                    .and_then(|raw| OnecKind::parse(raw).ok()),
                ended: data.end.is_some(),
                closed_without_consultation: data.closed_without_consultation,
                deletion_mark: data.deletion_mark,
            },
            end: data.end.map(utc),
            manager_key: data.manager_key,
            consultation_date: data.consultation_date.map(utc),
        }
    }

    /// Our ticket id from the marker, when the document carries one.
    pub fn cons_id(&self) -> Option<Uuid> {
        marker_cons_id(self.data.marker.as_deref()?)
    }
}

/// The ticket id in a 1C marker field value `cons:<uuid>`.
pub fn marker_cons_id(marker: &str) -> Option<Uuid> {
    Uuid::parse_str(marker.strip_prefix("cons:")?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ChatwootStatus as C;
    use ConsultationType::{Accounting, TechSupport};
    use TicketStatus::{Cancelled, New, Open, Pending, Resolved};

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000 + seconds, 0).unwrap_or_default()
    }

    fn ticket(consultation_type: ConsultationType, status: TicketStatus) -> TicketSync {
        TicketSync {
            consultation_type,
            status,
            scheduled_at: None,
            ended_at: None,
            onec_number: None,
            onec_manager_key: None,
            chatwoot_assignee_id: None,
            chatwoot_team_id: None,
            last_activity_at: None,
            chatwoot: ChatwootView {
                status: Some(C::Open),
                scheduled_at: None,
                seen_at: Some(at(0)),
            },
            onec: OnecView::default(),
        }
    }

    fn conversation(status: ChatwootStatus, seconds: i64) -> ChatwootObservation {
        ChatwootObservation {
            updated_at: at(seconds),
            status,
            assignee_id: None,
            team_id: None,
            scheduled_at: None,
            last_activity_at: None,
        }
    }

    fn document(state: OnecDocumentState, seconds: i64, version: &str) -> OnecObservation {
        OnecObservation {
            changed_at: at(seconds),
            data_version: version.into(),
            number: "ЦЛ00-000001".into(),
            state,
            end: state.ended.then(|| at(seconds)),
            manager_key: None,
            consultation_date: None,
        }
    }

    /// The whole Chatwoot table, every (type, current, observed) cell.
    #[test]
    fn chatwoot_table() {
        for &consultation_type in ConsultationType::ALL {
            for &current in TicketStatus::ALL {
                for &observed in ChatwootStatus::ALL {
                    let verdict = status_from_chatwoot(consultation_type, current, observed);
                    let wanted = observed.ticket_status();
                    let expected = if current == Cancelled || wanted == current {
                        Verdict::Keep
                    } else if consultation_type == TechSupport {
                        Verdict::Apply(wanted)
                    } else if current.is_terminal() {
                        Verdict::Keep
                    } else if wanted == Resolved {
                        Verdict::Refuse
                    } else {
                        Verdict::Apply(wanted)
                    };
                    assert_eq!(
                        verdict, expected,
                        "{consultation_type} {current} {observed}"
                    );
                    // Chatwoot can never cancel, and never closes an accounting ticket.
                    assert_ne!(verdict, Verdict::Apply(Cancelled));
                    if consultation_type == Accounting {
                        assert_ne!(verdict, Verdict::Apply(Resolved));
                    }
                }
            }
        }
    }

    #[test]
    fn onec_document_states() {
        let live = |kind| OnecDocumentState {
            kind,
            ..OnecDocumentState::default()
        };
        assert_eq!(live(Some(OnecKind::Queued)).ticket_status(), Some(Pending));
        assert_eq!(live(Some(OnecKind::Its)).ticket_status(), Some(Open));
        assert_eq!(live(Some(OnecKind::Other)).ticket_status(), None);
        assert_eq!(live(None).ticket_status(), None);
        for kind in [
            None,
            Some(OnecKind::Queued),
            Some(OnecKind::Its),
            Some(OnecKind::Other),
        ] {
            let ended = OnecDocumentState {
                ended: true,
                ..live(kind)
            };
            assert_eq!(ended.ticket_status(), Some(Resolved));
            let without = OnecDocumentState {
                closed_without_consultation: true,
                ..ended
            };
            assert_eq!(without.ticket_status(), Some(Cancelled));
            let deleted = OnecDocumentState {
                deletion_mark: true,
                ..live(kind)
            };
            assert_eq!(deleted.ticket_status(), Some(Cancelled));
        }
    }

    #[test]
    fn onec_table() {
        for &current in TicketStatus::ALL {
            for implied in [
                None,
                Some(Open),
                Some(Pending),
                Some(Resolved),
                Some(Cancelled),
            ] {
                assert_eq!(
                    status_from_onec(TechSupport, current, implied),
                    Verdict::Keep
                );
                let expected = match implied {
                    Some(implied) if implied != current => Verdict::Apply(implied),
                    _ => Verdict::Keep,
                };
                assert_eq!(status_from_onec(Accounting, current, implied), expected);
            }
        }
    }

    #[test]
    fn chatwoot_push_table() {
        for &ticket in TicketStatus::ALL {
            for chatwoot in [
                None,
                Some(C::Open),
                Some(C::Pending),
                Some(C::Snoozed),
                Some(C::Resolved),
            ] {
                let push = chatwoot_status_to_push(ticket, chatwoot);
                let closed_there = chatwoot == Some(C::Resolved);
                let expected = match ticket {
                    New => None,
                    _ if ticket.is_terminal() && !closed_there => Some(C::Resolved),
                    _ if !ticket.is_terminal() && closed_there => Some(C::Open),
                    _ => None,
                };
                assert_eq!(push, expected, "{ticket} {chatwoot:?}");
            }
        }
    }

    #[test]
    fn an_echo_of_our_own_status_changes_nothing() {
        let mut current = ticket(Accounting, Resolved);
        current.chatwoot.status = Some(C::Resolved);
        let plan = plan_chatwoot(&current, &conversation(C::Resolved, 5));
        assert_eq!(plan.outcome, Outcome::Unchanged);
        assert!(plan.targets().is_empty());
        assert_eq!(plan.next.chatwoot.seen_at, Some(at(5)));
    }

    #[test]
    fn an_older_conversation_state_is_stale() {
        let mut current = ticket(TechSupport, Open);
        current.chatwoot.seen_at = Some(at(10));
        let plan = plan_chatwoot(&current, &conversation(C::Resolved, 9));
        assert_eq!(plan.outcome, Outcome::Stale);
        assert_eq!(plan.next, current);
    }

    #[test]
    fn tech_support_closes_and_reopens_in_chatwoot() {
        let current = ticket(TechSupport, Open);
        let closed = plan_chatwoot(&current, &conversation(C::Resolved, 5));
        assert_eq!(closed.next.status, Resolved);
        assert_eq!(closed.next.ended_at, Some(at(5)));
        assert!(closed.targets().is_empty(), "nothing goes back to Chatwoot");
        let reopened = plan_chatwoot(&closed.next, &conversation(C::Open, 6));
        assert_eq!(reopened.next.status, Open);
        assert_eq!(reopened.next.ended_at, None);
        // The reordered older "resolved" does not win.
        let late = plan_chatwoot(&reopened.next, &conversation(C::Resolved, 5));
        assert_eq!(late.outcome, Outcome::Stale);
    }

    #[test]
    fn an_accounting_resolve_in_chatwoot_is_set_back() {
        let current = ticket(Accounting, Open);
        let plan = plan_chatwoot(&current, &conversation(C::Resolved, 5));
        assert_eq!(plan.next.status, Open);
        assert_eq!(plan.next.chatwoot.status, Some(C::Resolved));
        assert_eq!(
            plan.push_chatwoot,
            Some(ChatwootPush {
                status: Some(C::Open)
            })
        );
        assert!(!plan.push_onec);
        assert_eq!(plan.changes.len(), 1, "the peer's change is in the history");
    }

    #[test]
    fn a_close_in_onec_reaches_chatwoot_once() {
        let mut current = ticket(Accounting, Open);
        current.onec.status = Some(Open);
        let ended = OnecDocumentState {
            kind: Some(OnecKind::Its),
            ended: true,
            ..OnecDocumentState::default()
        };
        let plan = plan_onec(&current, &document(ended, 20, "v2"));
        assert_eq!(plan.next.status, Resolved);
        assert_eq!(plan.next.ended_at, Some(at(20)));
        assert_eq!(
            plan.push_chatwoot,
            Some(ChatwootPush {
                status: Some(C::Resolved)
            })
        );
        // The same version again (the poll and the extension's event) changes nothing.
        let again = plan_onec(&plan.next, &document(ended, 20, "v2"));
        assert_eq!(again.outcome, Outcome::Unchanged);
        // Our push comes back from Chatwoot: no effect, nothing sent to 1C.
        let mut pushed = plan.next.clone();
        pushed.chatwoot.status = Some(C::Resolved);
        let echo = plan_chatwoot(&pushed, &conversation(C::Resolved, 21));
        assert_eq!(echo.outcome, Outcome::Unchanged);
        assert!(echo.targets().is_empty());
        // Even when the echo arrives before the push was recorded as delivered.
        let early = plan_chatwoot(&plan.next, &conversation(C::Resolved, 21));
        assert_eq!(early.next.status, Resolved);
        assert!(early.targets().is_empty());
    }

    #[test]
    fn an_older_document_version_is_stale() {
        let mut current = ticket(Accounting, Pending);
        current.onec.seen_at = Some(at(30));
        current.onec.data_version = Some("v3".into());
        let queued = OnecDocumentState {
            kind: Some(OnecKind::Its),
            ..OnecDocumentState::default()
        };
        assert_eq!(
            plan_onec(&current, &document(queued, 29, "v2")).outcome,
            Outcome::Stale
        );
        // Same second, another version: applied (1C's clock has one-second resolution).
        assert_eq!(
            plan_onec(&current, &document(queued, 30, "v4")).next.status,
            Open
        );
    }

    #[test]
    fn a_new_date_from_chatwoot_goes_to_onec_and_its_echo_stops() {
        let current = ticket(Accounting, Open);
        let mut observed = conversation(C::Open, 5);
        observed.scheduled_at = Some(at(3600));
        let plan = plan_chatwoot(&current, &observed);
        assert_eq!(plan.next.scheduled_at, Some(at(3600)));
        assert!(plan.push_onec);
        assert_eq!(plan.push_chatwoot, None);
        // 1C shows the date we wrote: nothing goes back to Chatwoot.
        let mut written = plan.next.clone();
        written.onec.scheduled_at = Some(at(3600));
        written.onec_number = Some("ЦЛ00-000001".into());
        let mut doc = document(OnecDocumentState::default(), 40, "v5");
        doc.consultation_date = Some(at(3600));
        let back = plan_onec(&written, &doc);
        assert!(back.push_chatwoot.is_none());
        assert!(!back.changes.iter().any(|c| c.field == "scheduled_at"));
    }

    #[test]
    fn tech_support_dates_stay_in_chatwoot() {
        let current = ticket(TechSupport, Open);
        let mut observed = conversation(C::Open, 5);
        observed.scheduled_at = Some(at(3600));
        assert!(!plan_chatwoot(&current, &observed).push_onec);
    }

    #[test]
    fn cancelled_is_final_for_chatwoot() {
        let mut current = ticket(Accounting, Cancelled);
        current.chatwoot.status = Some(C::Resolved);
        let plan = plan_chatwoot(&current, &conversation(C::Open, 5));
        assert_eq!(plan.next.status, Cancelled);
        assert!(
            plan.targets().is_empty(),
            "the client may write again; nobody fights it"
        );
    }
}
