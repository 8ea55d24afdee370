//! The long-lived node of `seednode run` (issue 11): its data directory and catalog, the
//! catalog worker thread, the in-memory token table, the configuration file, and the start-up
//! fast resume.
//!
//! The event loop never touches SQLite: every catalog write goes through the [`worker`] thread
//! (a bounded queue, answers through the loop's `mio::Waker`), and bearer tokens are checked
//! against a [`tokens::TokenTable`] the loop owns, reloaded from the catalog by the worker.

pub(crate) mod config;
pub(crate) mod oauth;
pub(crate) mod recheck;
pub(crate) mod resume;
pub(crate) mod tokens;
pub(crate) mod worker;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use seednode_storage::catalog::Catalog;
use seednode_wire::display::escape_path;

use crate::cli::CliError;

/// Name of the catalog file in the data directory.
pub(crate) const CATALOG_FILE_NAME: &str = "catalog.sqlite";

/// Name of the data directory below `$XDG_DATA_HOME` (or `~/.local/share`).
const DATA_DIR_NAME: &str = "seednode";

/// The default data directory: `$STATE_DIRECTORY` (its first entry) when systemd sets it
/// (`StateDirectory=seednode`), else `$XDG_DATA_HOME/seednode`, else
/// `~/.local/share/seednode`; `None` when none of these variables is set.
pub(crate) fn default_data_dir() -> Option<PathBuf> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(state) = non_empty("STATE_DIRECTORY") {
        // systemd joins several StateDirectory= entries with ':'.
        let first = state
            .to_str()
            .and_then(|s| s.split(':').next())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(state));
        return Some(first);
    }
    if let Some(xdg) = non_empty("XDG_DATA_HOME") {
        return Some(PathBuf::from(xdg).join(DATA_DIR_NAME));
    }
    non_empty("HOME").map(|home| {
        PathBuf::from(home)
            .join(".local")
            .join("share")
            .join(DATA_DIR_NAME)
    })
}

/// The data directory asked for, or the default one.
///
/// # Errors
/// No `--data-dir` and no variable to derive a default from.
pub(crate) fn data_dir(asked: Option<&Path>) -> Result<PathBuf, CliError> {
    asked
        .map(Path::to_path_buf)
        .or_else(default_data_dir)
        .ok_or_else(|| {
            "no data directory: pass --data-dir DIR (or set STATE_DIRECTORY, XDG_DATA_HOME or HOME)"
                .to_owned()
        })
}

/// Opens the catalog of data directory `dir`, creating the directory (mode 0700: it holds
/// token hashes) and the catalog when they do not exist.
///
/// # Errors
/// The directory cannot be created, or the catalog cannot be opened (worded for the
/// operator).
pub(crate) fn open_catalog(dir: &Path) -> Result<Catalog, CliError> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("data directory {}: {e}", escape_path(dir)))?;
    Catalog::open(&dir.join(CATALOG_FILE_NAME)).map_err(|e| e.to_string())
}

/// The wall clock in seconds since the Unix epoch (catalog timestamps, token expiry); a clock
/// before 1970 reads as 0 (SECURITY rule 14: no unwrap on `duration_since`).
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The wall clock in milliseconds since the Unix epoch (retry times of the webhook and Nostr
/// queues, webhook timestamps); a clock before 1970 reads as 0.
pub(crate) fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
