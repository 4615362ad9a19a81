//! A validated "create ticket" command: who the client is, what they ask, and the rules
//! on when a consultation may be scheduled.

use crate::{
    CodeAbonent, Comment, CompanyName, ConsultationType, Email, Importance, Inn, InvalidValue,
    Lang, PersonName, PhoneNumber, Source, Topic,
};
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

/// Identity data of a client who may not exist yet. It is matched against existing
/// clients by phone, then e-mail, then INN; a new client is created when nothing matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewClient {
    pub name: PersonName,
    pub phone_number: PhoneNumber,
    pub email: Option<Email>,
    pub org_inn: Option<Inn>,
    pub code_abonent: Option<CodeAbonent>,
    pub company_name: Option<CompanyName>,
}

/// Whom a ticket is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientRef {
    /// A client we already know by id (a logged-in client, or a backend that stored it).
    Existing(Uuid),
    /// Find by natural keys, or create.
    Match(NewClient),
}

/// What the client asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketDraft {
    pub consultation_type: ConsultationType,
    pub comment: Option<Comment>,
    pub topic: Option<Topic>,
    pub lang: Lang,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub importance: Option<Importance>,
    pub source: Source,
}

/// A create-ticket request that passed every rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTicket {
    pub client: ClientRef,
    pub ticket: TicketDraft,
}

/// Configurable bounds of intake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntakeLimits {
    /// How far ahead a consultation may be booked.
    pub max_schedule_ahead: Duration,
    /// How far in the past a `scheduled_at` may lie and still count as "now": frontends
    /// often send the moment the form was filled in, and clocks drift.
    pub schedule_tolerance: Duration,
}

impl Default for IntakeLimits {
    fn default() -> Self {
        IntakeLimits {
            max_schedule_ahead: Duration::days(30),
            schedule_tolerance: Duration::minutes(2),
        }
    }
}

impl IntakeLimits {
    pub fn check_scheduled_at(
        &self,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, InvalidValue> {
        if at < now - self.schedule_tolerance {
            Err(InvalidValue("must not be in the past"))
        } else if at > now + self.max_schedule_ahead {
            Err(InvalidValue("is too far ahead"))
        } else {
            Ok(at)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z")
            .map(|t| t.to_utc())
            .unwrap()
    }

    #[test]
    fn schedule_window_edges() {
        let limits = IntakeLimits::default();
        assert!(limits.check_scheduled_at(now(), now()).is_ok());
        assert!(
            limits
                .check_scheduled_at(now() - Duration::minutes(2), now())
                .is_ok()
        );
        assert!(
            limits
                .check_scheduled_at(now() - Duration::minutes(3), now())
                .is_err()
        );
        assert!(
            limits
                .check_scheduled_at(now() + Duration::days(30), now())
                .is_ok()
        );
        assert!(
            limits
                .check_scheduled_at(now() + Duration::days(30) + Duration::seconds(1), now())
                .is_err()
        );
    }

    proptest! {
        #[test]
        fn accepted_exactly_inside_the_window(offset_s in -86_400i64 * 40..86_400 * 40, days in 1i64..60) {
            let limits = IntakeLimits { max_schedule_ahead: Duration::days(days), ..IntakeLimits::default() };
            let at = now() + Duration::seconds(offset_s);
            let inside = offset_s >= -120 && offset_s <= days * 86_400;
            prop_assert_eq!(limits.check_scheduled_at(at, now()).is_ok(), inside);
        }
    }
}
