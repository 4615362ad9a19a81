//! What a delivery is to the relay loop: one claimed entry in, an `Effect` or a
//! classified failure out. The Chatwoot and 1C effects implement `Deliver`; tests and
//! benchmarks plug in their own.

use cons_store::outbox::{Claimed, Effect};
use std::future::Future;
use std::time::Duration;

/// Why an attempt failed, classified by whoever made the call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DeliveryError {
    pub retryable: bool,
    /// Short, and free of tokens and personal data: it is stored and shown to operators.
    pub message: String,
    pub http_status: Option<u16>,
    /// The peer asked us to wait this long (429 `Retry-After`).
    pub retry_after: Option<Duration>,
    /// False when the failure is ours (e.g. our database was unavailable), so it must
    /// not count against the peer's health and pause it.
    pub peer_fault: bool,
}

impl DeliveryError {
    pub fn retryable(message: impl Into<String>) -> Self {
        DeliveryError {
            retryable: true,
            message: message.into(),
            http_status: None,
            retry_after: None,
            peer_fault: true,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        DeliveryError {
            retryable: false,
            message: message.into(),
            http_status: None,
            retry_after: None,
            peer_fault: true,
        }
    }

    /// A retryable failure on our side, not the peer's.
    pub fn local(message: impl Into<String>) -> Self {
        DeliveryError {
            peer_fault: false,
            ..DeliveryError::retryable(message)
        }
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.http_status = Some(status);
        self
    }
}

/// Delivers one entry to its peer. Must be idempotent in effect: the same entry may be
/// delivered again after an ambiguous attempt (the peer acted, the answer was lost), so
/// an implementation looks up what an earlier attempt may have created before creating.
pub trait Deliver: Send + Sync + 'static {
    fn deliver(
        &self,
        entry: &Claimed,
    ) -> impl Future<Output = Result<Effect, DeliveryError>> + Send;
}
