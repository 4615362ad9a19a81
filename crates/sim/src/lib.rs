//! Simulators of the peers the relay talks to: Chatwoot's application API and 1C:ЦЛ's
//! standard OData interface. Each speaks the real wire format (see `../shared/fixtures`),
//! keeps the rules the middleware depends on, records every request, and takes scripted
//! faults, and both send their webhooks back (Chatwoot's own, and the events of a 1C
//! extension) when told where. The same simulators serve the tests, the benchmarks and
//! `consctl dev`; beside them, a TCP fault proxy for the link and a no-op peer for the
//! relay benchmark.

pub mod chatwoot;
pub mod faults;
pub mod noop;
pub mod onec;
pub mod proxy;
pub mod server;
pub mod webhooks;

pub use faults::{Fault, Faults};
pub use noop::NoopSink;
pub use proxy::{FaultProxy, TcpFault};
pub use server::{Recorded, SimServer, serve_recorder};
pub use webhooks::{SentWebhook, SimWebhook, SimWebhooks, WebhookChaos, WebhookOutcome};
