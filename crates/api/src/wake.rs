//! Waking the relay after a commit. Writers call `wake()` (no I/O, never blocks); one
//! background task turns the signals into NOTIFYs, one at a time, so a burst of commits
//! costs one NOTIFY, not one each (see `cons_store::outbox::wake_relay` for why this is not
//! a trigger).

use cons_store::Pool;
use std::sync::Arc;
use tokio::sync::Notify;

#[derive(Clone, Debug)]
pub struct RelayWaker {
    signal: Arc<Notify>,
}

impl RelayWaker {
    /// Starts the notifying task on the current tokio runtime.
    pub fn start(pool: Pool) -> RelayWaker {
        let signal = Arc::new(Notify::new());
        let pending = signal.clone();
        tokio::spawn(async move {
            loop {
                // A permit left by `notify_one` while a NOTIFY was in flight makes this
                // return at once: signals during a NOTIFY fold into the next one.
                pending.notified().await;
                let sent = match pool.get().await {
                    Ok(mut connection) => cons_store::outbox::wake_relay(&mut connection).await,
                    Err(error) => Err(error.into()),
                };
                if let Err(error) = sent {
                    // The relay polls as well; a lost wake-up only delays delivery.
                    tracing::warn!(%error, "could not wake the relay");
                }
            }
        });
        RelayWaker { signal }
    }

    pub fn wake(&self) {
        self.signal.notify_one();
    }
}
