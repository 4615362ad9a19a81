//! Wake-ups: a dedicated connection LISTENs on the `outbox` channel, which writers notify
//! after they commit entries (`cons_store::outbox::wake_relay`), and wakes the relay's
//! idle loops.
//! NOTIFY is only a hint: the loops also poll, and the listener reconnects with a capped
//! backoff (waking everyone after a reconnect, since notifications sent while it was away
//! are lost).

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// The channel writers notify after committing outbox entries.
pub const CHANNEL: &str = "outbox";

/// Listens until `shutdown` turns true.
pub async fn listen(database_url: String, wake: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
    let mut pause = Duration::from_millis(100);
    while !*shutdown.borrow() {
        match AsyncPgConnection::establish(&database_url).await {
            Ok(mut connection) => {
                match connection.batch_execute(&format!("LISTEN {CHANNEL}")).await {
                    Ok(()) => {
                        tracing::debug!("listening for outbox notifications");
                        pause = Duration::from_millis(100);
                        // Anything committed while we were not listening is due now.
                        wake.notify_waiters();
                        let mut notifications = std::pin::pin!(connection.notifications_stream());
                        loop {
                            tokio::select! {
                                next = notifications.next() => match next {
                                    Some(Ok(_)) => {
                                        metrics::counter!("relay_notifications_total").increment(1);
                                        wake.notify_waiters();
                                    }
                                    Some(Err(error)) => {
                                        tracing::warn!(%error, "the notification connection failed");
                                        break;
                                    }
                                    None => {
                                        tracing::warn!("the notification connection closed");
                                        break;
                                    }
                                },
                                _ = shutdown.changed() => return,
                            }
                        }
                    }
                    Err(error) => tracing::warn!(%error, "LISTEN failed"),
                }
            }
            Err(error) => tracing::warn!(%error, "could not connect to listen for notifications"),
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = shutdown.changed() => return,
        }
        pause = (pause * 2).min(Duration::from_secs(10));
    }
}
