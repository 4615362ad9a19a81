//! Waking the relay: the channels it listens on, and the one way to notify them.

use crate::{StoreError, pool::PooledConnection};

/// What was committed, as a NOTIFY channel the relay LISTENs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// Outbox entries to deliver.
    Outbox,
    /// Webhook deliveries to apply.
    Inbox,
}

impl Channel {
    pub const fn name(self) -> &'static str {
        match self {
            Channel::Outbox => "outbox",
            Channel::Inbox => "inbox",
        }
    }
}

/// Tells listening relays that something was committed. Its own transaction, committed
/// asynchronously: a NOTIFY serialises the commits of all notifying transactions behind
/// one lock held through the WAL flush, so it must not ride in the transaction that
/// writes the work, and losing one (a crash right now) only delays the relay until its
/// next poll.
pub async fn notify(connection: &mut PooledConnection, channel: Channel) -> Result<(), StoreError> {
    use diesel_async::SimpleAsyncConnection;
    connection
        .batch_execute(&format!(
            "BEGIN; SET LOCAL synchronous_commit TO off; NOTIFY {}; COMMIT",
            channel.name()
        ))
        .await?;
    Ok(())
}
