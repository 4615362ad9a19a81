//! The one error type of the store: the database refused, or could not be reached.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No connection could be had in time (pool exhausted, server down or slow).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Waiting for a row lock took longer than `lock_timeout`.
    #[error("lock wait timed out")]
    LockTimeout,
    #[error(transparent)]
    Query(DieselError),
    #[error("migrations: {0}")]
    Migration(String),
}

impl StoreError {
    /// True when the database itself is the problem (a caller should answer 503), not the
    /// request.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<DieselError> for StoreError {
    fn from(error: DieselError) -> Self {
        match &error {
            // 55P03 lock_not_available: raised by lock_timeout.
            DieselError::DatabaseError(DatabaseErrorKind::Unknown, info)
                if info.message().contains("lock timeout") =>
            {
                StoreError::LockTimeout
            }
            DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => {
                StoreError::Unavailable(error.to_string())
            }
            _ => StoreError::Query(error),
        }
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for StoreError {
    fn from(error: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        StoreError::Unavailable(error.to_string())
    }
}
