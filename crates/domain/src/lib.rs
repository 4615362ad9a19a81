//! Domain types and rules of the consultation middleware: what a ticket and a client are,
//! which values are valid, and where a ticket must be delivered. No I/O lives here.

mod client;
mod errors;
mod intake;
pub mod sync;
mod ticket;

pub use client::{CodeAbonent, CompanyName, Email, Inn, PersonName, PhoneNumber};
pub use errors::{FieldErrors, InvalidValue};
pub use intake::{ClientRef, IntakeLimits, NewClient, NewTicket, TicketDraft};
pub use ticket::{
    ChatwootStatus, Comment, ConsultationType, HistorySource, Importance, Lang, OnecKind,
    OutboxStatus, Source, SyncState, Target, TicketStatus, Topic,
};
