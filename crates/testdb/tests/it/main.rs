//! Integration tests of the throwaway PostgreSQL harness (one test binary for the crate).

// `cfg(test)` is always true here; it tells clippy that helper functions in these modules are
// test code, where the workspace allows `unwrap`/`expect` (clippy.toml).
#[cfg(test)]
mod cluster;
#[cfg(test)]
mod test_database;
