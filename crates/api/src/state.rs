//! What every handler shares: the pool, the credentials and the intake rules.

use crate::access::Access;
use crate::auth::ServiceTokens;
use crate::batching::CreateBatcher;
use crate::handlers::webhooks::WebhookAuth;
use crate::wake::RelayWaker;
use cons_domain::IntakeLimits;
use cons_store::Pool;
use cons_store::wake::Channel;

#[derive(Clone)]
pub struct AppState {
    pub pool: Pool,
    pub service_tokens: ServiceTokens,
    pub intake: IntakeLimits,
    /// Writes create requests, many per statement under load, and wakes the relay.
    pub creates: CreateBatcher,
    /// Who may deliver webhooks.
    pub webhooks: WebhookAuth,
    /// Wakes the relay's inbox loop after a webhook delivery is recorded.
    pub inbox_waker: RelayWaker,
    /// Client logins, sessions, abuse limits and CORS; one for all workers.
    pub access: std::sync::Arc<Access>,
}

impl AppState {
    /// The state over `pool`, with the create batcher and the inbox waker started on the
    /// current tokio runtime.
    pub fn start(
        pool: Pool,
        service_tokens: ServiceTokens,
        intake: IntakeLimits,
        webhooks: WebhookAuth,
        access: Access,
    ) -> AppState {
        AppState {
            creates: CreateBatcher::start(pool.clone()),
            inbox_waker: RelayWaker::start(pool.clone(), Channel::Inbox),
            pool,
            service_tokens,
            intake,
            webhooks,
            access: std::sync::Arc::new(access),
        }
    }
}
