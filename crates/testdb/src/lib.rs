#![doc = include_str!("../README.md")]

mod bindir;
mod cluster;
mod spawner;
mod sys;
mod test_database;

pub use cluster::{Cluster, ClusterError, ClusterOptions};
pub use test_database::{TestDatabase, TestDatabaseError};
