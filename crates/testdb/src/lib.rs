#![doc = include_str!("../README.md")]

mod bindir;
mod cluster;
mod spawner;
mod sys;
mod test_database;

pub use cluster::{Cluster, ClusterError, ClusterOptions};

/// The directory of the installed PostgreSQL server binaries (see `bindir::find`); its
/// client tools (`pgbench`, `psql`) sit beside them.
pub fn server_bindir() -> Result<std::path::PathBuf, ClusterError> {
    bindir::find()
}
pub use test_database::{TestDatabase, TestDatabaseError};
