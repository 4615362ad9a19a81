//! Everything that touches PostgreSQL: the pool, embedded migrations, the diesel schema
//! and the repositories for tickets, their history, the outbox, client logins and the
//! changes that come back from the peers.

mod cached;
mod error;
pub mod identities;
pub mod inbound;
pub mod migrate;
pub mod outbox;
pub mod pool;
pub mod schema;
pub mod settings;
pub mod tickets;
pub mod wake;

pub use error::StoreError;
pub use pool::Pool;
