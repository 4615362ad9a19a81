//! Helpers shared by the benchmark binaries (`bench-intake`, `bench-relay`): the
//! PostgreSQL client tools, a release binary run as a child process, a lean HTTP/1.1 load
//! generator with closed- and open-loop shapes, latency summaries, and what the machine
//! was doing meanwhile.
//!
//! The benchmarks run the server, the database and the load generator on the same (small)
//! machine, so everything here tries to spend as little CPU per request as possible and
//! to say what it measured rather than judge it: a benchmark reports, it does not assert.

pub mod http;
pub mod load;
pub mod machine;
pub mod pg;
pub mod report;
pub mod service;
pub mod stats;
