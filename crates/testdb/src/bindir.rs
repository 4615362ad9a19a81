//! Finding the installed PostgreSQL server binaries (`initdb`, `postgres`).

use std::path::{Path, PathBuf};

use crate::ClusterError;

/// Where Debian/Ubuntu install versioned server binaries (`/usr/lib/postgresql/15/bin`).
const DEBIAN_LIB_DIR: &str = "/usr/lib/postgresql";

/// The directory holding `initdb` and `postgres`: `PG_BIN_DIR` if set, else the (symlink
/// resolved) directory of `initdb` on `PATH`, else the highest version under
/// `/usr/lib/postgresql/*/bin`.
pub(crate) fn find() -> Result<PathBuf, ClusterError> {
    if let Some(dir) = std::env::var_os("PG_BIN_DIR") {
        let dir = PathBuf::from(dir);
        return if has_server_binaries(&dir) {
            Ok(dir)
        } else {
            Err(ClusterError::BinariesNotFound(format!(
                "PG_BIN_DIR={} does not contain both `initdb` and `postgres`",
                dir.display()
            )))
        };
    }
    if let Some(dir) = from_path() {
        return Ok(dir);
    }
    if let Some(dir) = highest_debian_version() {
        return Ok(dir);
    }
    Err(ClusterError::BinariesNotFound(format!(
        "no `initdb` on PATH and no {DEBIAN_LIB_DIR}/*/bin; install the server \
         (`apt-get install postgresql`) or set PG_BIN_DIR to the directory holding \
         `initdb` and `postgres`"
    )))
}

fn has_server_binaries(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("postgres").is_file()
}

fn from_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("initdb"))
        .filter(|candidate| candidate.is_file())
        // Resolve symlinks: `/usr/local/bin/initdb` -> `/usr/lib/postgresql/15/bin/initdb`, and
        // `postgres` must come from the same installation as `initdb`.
        .filter_map(|candidate| candidate.canonicalize().ok())
        .filter_map(|initdb| initdb.parent().map(Path::to_path_buf))
        .find(|dir| has_server_binaries(dir))
}

fn highest_debian_version() -> Option<PathBuf> {
    let entries = std::fs::read_dir(DEBIAN_LIB_DIR).ok()?;
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            // Versions are "9.6", "15", "16"...: compare numerically, component by component.
            let version = name
                .split('.')
                .map(str::parse::<u32>)
                .collect::<Result<Vec<_>, _>>()
                .ok()?;
            let bin = entry.path().join("bin");
            has_server_binaries(&bin).then_some((version, bin))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, bin)| bin)
}
