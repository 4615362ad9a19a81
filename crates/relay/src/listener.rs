//! Wake-ups: a dedicated connection LISTENs on the `outbox` channel, which writers notify
//! after they commit entries, and on `inbox`, which the API notifies after recording a
//! webhook (both with `cons_store::wake::notify`), and wakes the loops waiting on each.
//! NOTIFY is only a hint: the loops also poll, and the listener reconnects with a capped
//! backoff (waking everyone after a reconnect, since notifications sent while it was away
//! are lost).

use cons_store::wake::Channel;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// Listens on each channel and wakes its `Notify`, until `shutdown` turns true.
pub async fn listen(
    database_url: String,
    channels: Vec<(Channel, Arc<Notify>)>,
    mut shutdown: watch::Receiver<bool>,
) {
    let wake_all = || channels.iter().for_each(|(_, wake)| wake.notify_waiters());
    let mut pause = Duration::from_millis(100);
    while !*shutdown.borrow() {
        match AsyncPgConnection::establish(&database_url).await {
            Ok(mut connection) => {
                let mut listening = Ok(());
                for (channel, _) in &channels {
                    listening = connection
                        .batch_execute(&format!("LISTEN {}", channel.name()))
                        .await;
                    if listening.is_err() {
                        break;
                    }
                }
                match listening {
                    Ok(()) => {
                        tracing::debug!("listening for notifications");
                        pause = Duration::from_millis(100);
                        // Anything committed while we were not listening is due now.
                        wake_all();
                        let mut notifications = std::pin::pin!(connection.notifications_stream());
                        loop {
                            tokio::select! {
                                next = notifications.next() => match next {
                                    Some(Ok(notification)) => {
                                        metrics::counter!("relay_notifications_total").increment(1);
                                        channels
                                            .iter()
                                            .filter(|(channel, _)| channel.name() == notification.channel)
                                            .for_each(|(_, wake)| wake.notify_waiters());
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
