//! The relay (`cons-relay`): drains the transactional outbox to Chatwoot and 1C, at least
//! once and idempotent in effect. Entries are claimed under a lease in short
//! transactions, delivered with no transaction open, and completed fenced by the lease;
//! retries follow a schedule stored in the database.

pub mod backoff;
pub mod config;
pub mod deliver;
pub mod effects;
pub mod inbound;
pub mod listener;
pub mod observe;
pub mod pause;
pub mod service;
pub mod sink;
pub mod worker;

pub use deliver::{Deliver, DeliveryError};
pub use worker::{DrainReport, Relay, RelaySettings, TargetSettings};
