//! Waking the relay after a commit. Writers call `wake()` (no I/O, never blocks); one
//! background task per channel turns the signals into NOTIFYs, one at a time, so a burst
//! of commits costs one NOTIFY, not one each (see `cons_store::wake::notify` for why the
//! NOTIFY is not part of the writing transaction).

use cons_store::Pool;
use cons_store::wake::Channel;
use std::sync::Arc;
use tokio::sync::Notify;

#[derive(Clone, Debug)]
pub struct RelayWaker {
    signal: Arc<Notify>,
}

impl RelayWaker {
    /// Starts the task notifying `channel` on the current tokio runtime.
    pub fn start(pool: Pool, channel: Channel) -> RelayWaker {
        let signal = Arc::new(Notify::new());
        let pending = signal.clone();
        tokio::spawn(async move {
            loop {
                // A permit left by `notify_one` while a NOTIFY was in flight makes this
                // return at once: signals during a NOTIFY fold into the next one.
                pending.notified().await;
                let sent = match pool.get().await {
                    Ok(mut connection) => cons_store::wake::notify(&mut connection, channel).await,
                    Err(error) => Err(error.into()),
                };
                if let Err(error) = sent {
                    // The relay polls as well; a lost wake-up only delays delivery.
                    tracing::warn!(%error, channel = channel.name(), "could not wake the relay");
                }
            }
        });
        RelayWaker { signal }
    }

    pub fn wake(&self) {
        self.signal.notify_one();
    }
}
