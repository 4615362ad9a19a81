//! Typed client of 1C:ЦЛ's standard OData interface (`standard.odata`) for the relay:
//! find or create counterparties, create consultations exactly once (each carries our
//! ticket id in [`MARKER_FIELD`], so an ambiguous create is found again instead of
//! duplicated), read and patch them, and poll what changed. Wire facts: onec.md; business
//! meaning: domain.md §1.
//!
//! Values are converted at this boundary: we hold UTC instants, 1C holds the base's local
//! wall-clock time ([`OnecConfig::time_zone`]); 1C's empty GUID and empty date are `None`.

mod client;
mod error;
mod model;
mod wire;

/// The zone type of [`OnecConfig::time_zone`] (`chrono_tz::Asia::Tashkent`, or parse an
/// IANA name).
pub use chrono_tz::Tz;
pub use client::{OnecClient, OnecConfig};
pub use error::{EXCERPT_MAX_CHARS, OnecError};
pub use model::{
    Channel, Consultation, ConsultationKind, ConsultationPatch, ContactInfo, ContactKind,
    Counterparty, DataVersion, Importance, ItsRow, LegalForm, MARKER_FIELD, NewConsultation,
    NewCounterparty, QaRow, consultation_marker,
};
