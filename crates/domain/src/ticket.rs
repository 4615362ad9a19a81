//! Ticket vocabulary: consultation types, statuses, sources, languages, targets and
//! the bounded text fields of a ticket.

use crate::InvalidValue;
use serde::{Deserialize, Serialize};

/// Declares a closed set of wire names with `as_str`, `parse` and `ALL`, so the API, the
/// database checks and the `dict` seed all spell a value the same way.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }

            pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
                match raw {
                    $($wire => Ok($name::$variant),)+
                    _ => Err(InvalidValue(concat!("must be one of:", $(" ", $wire),+))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary!(
    /// What the client asks about; decides where the ticket goes.
    ConsultationType, "consultation type" {
        Accounting => "accounting",
        TechSupport => "tech_support",
    }
);

vocabulary!(
    /// Language the consultation is held in.
    Lang, "language" { Ru => "ru", Uz => "uz" }
);

vocabulary!(
    /// Which frontend the ticket came from.
    Source, "source" { Site => "site", Telegram => "telegram", CallCenter => "call_center" }
);

vocabulary!(
    /// The canonical status of a ticket (the contract's list).
    TicketStatus, "status" {
        New => "new",
        Open => "open",
        Pending => "pending",
        Resolved => "resolved",
        Cancelled => "cancelled",
    }
);

vocabulary!(
    /// A conversation's status in Chatwoot.
    ChatwootStatus, "Chatwoot status" {
        Open => "open",
        Pending => "pending",
        Snoozed => "snoozed",
        Resolved => "resolved",
    }
);

vocabulary!(
    /// `ВидОбращения` of a 1C consultation document.
    OnecKind, "1C consultation kind" {
        Queued => "ВОчередьНаКонсультацию",
        Its => "КонсультацияИТС",
        Other => "Другое",
    }
);

vocabulary!(
    /// A peer system an outbox entry is delivered to.
    Target, "target" { Chatwoot => "chatwoot", Onec => "onec" }
);

vocabulary!(
    /// Delivery state of a ticket towards one target, as the API reports it.
    SyncState, "sync state" {
        Pending => "pending",
        Delivered => "delivered",
        Failed => "failed",
        Dead => "dead",
        NotApplicable => "not_applicable",
    }
);

vocabulary!(
    /// Lifecycle of one outbox entry.
    OutboxStatus, "outbox status" {
        Pending => "pending",
        InFlight => "in_flight",
        Delivered => "delivered",
        Dead => "dead",
    }
);

vocabulary!(
    /// Who made a change recorded in a ticket's history.
    HistorySource, "history source" {
        Api => "api",
        Chatwoot => "chatwoot",
        Onec => "onec",
        Operator => "operator",
    }
);

impl TicketStatus {
    /// Resolved and cancelled tickets are closed; the others are still being worked on.
    pub fn is_terminal(self) -> bool {
        matches!(self, TicketStatus::Resolved | TicketStatus::Cancelled)
    }
}

impl ConsultationType {
    /// Where a new ticket of this type must be delivered. Accounting consultations are
    /// booked in 1C:ЦЛ as well; technical support lives in Chatwoot only.
    pub fn targets(self) -> &'static [Target] {
        match self {
            ConsultationType::Accounting => &[Target::Chatwoot, Target::Onec],
            ConsultationType::TechSupport => &[Target::Chatwoot],
        }
    }

    /// The sync state a freshly accepted ticket reports for `target`.
    pub fn initial_sync(self, target: Target) -> SyncState {
        if self.targets().contains(&target) {
            SyncState::Pending
        } else {
            SyncState::NotApplicable
        }
    }
}

/// How urgent the client says the question is: 1 (low) to 3 (high).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Importance(u8);

impl Importance {
    pub fn new(value: i64) -> Result<Self, InvalidValue> {
        match value {
            1..=3 => Ok(Importance(value as u8)),
            _ => Err(InvalidValue("must be 1, 2 or 3")),
        }
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

/// Declares a trimmed, non-empty text with a maximum length in characters.
macro_rules! bounded_text {
    ($(#[$meta:meta])* $name:ident, max = $max:expr, $too_long:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            pub const MAX_CHARS: usize = $max;

            pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
                let text = raw.trim();
                if text.is_empty() {
                    return Err(InvalidValue("must not be empty"));
                }
                if text.chars().count() > Self::MAX_CHARS {
                    return Err(InvalidValue($too_long));
                }
                if text.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
                    return Err(InvalidValue("must not contain control characters"));
                }
                Ok($name(text.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_inner(self) -> String {
                self.0
            }
        }
    };
}
pub(crate) use bounded_text;

bounded_text!(
    /// The client's question as typed; it becomes the first message of the conversation.
    Comment, max = 4000, "must be at most 4000 characters"
);
bounded_text!(
    /// A short subject line.
    Topic, max = 255, "must be at most 255 characters"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vocabulary_round_trips_through_its_wire_name() {
        for t in ConsultationType::ALL {
            assert_eq!(ConsultationType::parse(t.as_str()), Ok(*t));
        }
        for s in TicketStatus::ALL {
            assert_eq!(TicketStatus::parse(s.as_str()), Ok(*s));
        }
        for s in Source::ALL {
            assert_eq!(Source::parse(s.as_str()), Ok(*s));
        }
        for s in SyncState::ALL {
            assert_eq!(SyncState::parse(s.as_str()), Ok(*s));
        }
        assert!(Lang::parse("en").is_err());
        // serde (the API and its OpenAPI schema) spells every value as the database does
        for t in Target::ALL {
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
        for s in SyncState::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in Source::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in OutboxStatus::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for t in ConsultationType::ALL {
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
        assert!(ConsultationType::parse("Accounting").is_err());
    }

    #[test]
    fn accounting_goes_to_both_peers_and_tech_support_to_chatwoot_only() {
        assert_eq!(
            ConsultationType::Accounting.targets(),
            &[Target::Chatwoot, Target::Onec]
        );
        assert_eq!(
            ConsultationType::TechSupport.initial_sync(Target::Onec),
            SyncState::NotApplicable
        );
        assert_eq!(
            ConsultationType::TechSupport.initial_sync(Target::Chatwoot),
            SyncState::Pending
        );
    }

    #[test]
    fn importance_accepts_one_to_three_only() {
        assert!(Importance::new(0).is_err());
        assert_eq!(Importance::new(1).map(Importance::get), Ok(1));
        assert_eq!(Importance::new(3).map(Importance::get), Ok(3));
        assert!(Importance::new(4).is_err());
        assert!(Importance::new(-1).is_err());
    }

    #[test]
    fn comment_is_trimmed_and_bounded_in_characters_not_bytes() {
        assert_eq!(
            Comment::parse("  вопрос \n").map(Comment::into_inner),
            Ok("вопрос".into())
        );
        assert!(Comment::parse("   ").is_err());
        assert!(Comment::parse(&"я".repeat(4000)).is_ok());
        assert!(Comment::parse(&"я".repeat(4001)).is_err());
        assert!(Comment::parse("a\u{0}b").is_err());
    }
}
