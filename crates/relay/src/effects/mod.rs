//! The real effects: what each kind of outbox entry does at its peer. `Peers` routes an
//! entry by target and kind after reading the ticket and client it concerns.

pub mod chatwoot;
pub mod config;
pub mod onec;

use crate::deliver::{Deliver, DeliveryError};
use cons_store::Pool;
use cons_store::outbox::{Claimed, Effect};

pub struct Peers {
    pub pool: Pool,
    pub chatwoot: chatwoot::ChatwootEffects,
    pub onec: onec::OnecEffects,
}

impl Deliver for Peers {
    async fn deliver(&self, entry: &Claimed) -> Result<Effect, DeliveryError> {
        let view = {
            let mut connection = self
                .pool
                .get()
                .await
                .map_err(|e| DeliveryError::local(format!("database unavailable: {e}")))?;
            cons_store::tickets::delivery_view(&mut connection, entry.cons_id)
                .await
                .map_err(|e| DeliveryError::local(format!("could not read the ticket: {e}")))?
        };
        let Some(view) = view else {
            return Err(DeliveryError::permanent("the ticket no longer exists"));
        };
        match (entry.target.as_str(), entry.kind.as_str()) {
            ("chatwoot", "ticket.create") => self.chatwoot.create_ticket(&view).await,
            // The number follow-up is a sync whose news is the number.
            ("chatwoot", "ticket.onec_number" | cons_store::inbound::SYNC_KIND) => {
                self.chatwoot.sync_ticket(&view, entry).await
            }
            ("onec", "ticket.create") => self.onec.create_ticket(&view).await,
            ("onec", cons_store::inbound::SYNC_KIND) => self.onec.sync_ticket(&view).await,
            (target, kind) => Err(DeliveryError::permanent(format!(
                "no effect for {kind} to {target}"
            ))),
        }
    }
}
