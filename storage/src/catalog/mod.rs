//! The catalog: one SQLite file in the data directory that remembers every torrent the node
//! seeds (its metainfo, data path and state), its files (length, mtime, SHA-256 when known),
//! statistics that survive restarts, the node's settings and its API tokens (issue 11).
//!
//! The contract:
//! - **One writer.** The engine owns one [`Catalog`] on a dedicated thread and sends it commands;
//!   every method is synchronous and may wait for the disk (`fsync`), so none is ever called on
//!   the event loop. Other connections to the same file (a second [`Catalog::open`] on another
//!   thread for reads, or `seednode token …` run while the node is up) are safe: the file is in
//!   WAL mode, readers never block the writer, and a second writer waits up to
//!   [`CATALOG_BUSY_TIMEOUT_MS`].
//! - **An acknowledged write is durable.** Every method that changes the catalog commits before
//!   it returns, with `synchronous=FULL`: when `Ok` comes back the change survives `kill -9` and
//!   power loss. A crash at any instant leaves a catalog that opens and is consistent (each
//!   change is one transaction: a torrent, its files and its statistics row appear together or
//!   not at all). Batches ([`Catalog::add_torrents`], [`Catalog::add_stats`]) share one commit.
//! - **Never a silent downgrade, never someone else's file.** [`Catalog::open`] applies the
//!   numbered migrations of this binary, one transaction each; a catalog written by a newer
//!   binary is refused with [`CatalogError::SchemaTooNew`], a file that is not a seednode catalog
//!   with [`CatalogError::NotACatalog`], and neither is modified.
//! - **SQL always with bound parameters**; every string stored is bounded
//!   ([`limits`](crate::limits), the `CATALOG_*`, `MAX_CATALOG_*`, `MAX_SETTING_*` and
//!   `MAX_TOKEN*` constants) and free of NUL bytes; torrent names such as `'; DROP TABLE t;--`
//!   are stored verbatim (SECURITY M10).
//! - **The metainfo stays on disk.** [`TorrentSummary`] carries what the engine keeps per idle
//!   torrent (a few hundred bytes); [`Catalog::info_dict`] and [`Catalog::info_dict_slice`] read
//!   the info dictionary back with SQLite's incremental BLOB I/O when a peer asks for metadata
//!   (BEP 9), never the whole `.torrent`.
//! - **Token secrets are never stored**: only their SHA-256, compared in constant time.
//!
//! Call order: [`Catalog::open`] at start; [`Catalog::list_torrents`] and, per torrent,
//! [`Catalog::files`] + [`resume::classify`] (fast resume) before seeding; then commands as they
//! come, with statistics coalesced in a [`StatsBatch`] and flushed with [`Catalog::add_stats`]
//! every few seconds. `docs/catalog.md` describes the schema.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};
use seednode_wire::display::escape_path;

use crate::limits::{
    CATALOG_BUSY_TIMEOUT_MS, CATALOG_JOURNAL_SIZE_LIMIT, MAX_SETTING_KEY_LEN, MAX_SETTING_VALUE_LEN,
};

mod approvals;
mod audit;
mod lookup;
mod nostr;
mod outbox;
pub mod resume;
mod schema;
mod tokens;
mod torrents;
mod writer;

pub use approvals::{
    Approval, ApprovalState, DEVICE_KEY_LEN, Device, MAX_APPROVAL_BODY_LEN, MAX_APPROVAL_FIELD_LEN,
    MAX_APPROVAL_PATH_LEN, MAX_CHALLENGE_LEN, MAX_DEVICE_NAME_LEN, MAX_DEVICES,
    MAX_FINISHED_APPROVALS, MAX_PENDING_APPROVALS,
};
pub use audit::{AuditRecord, MAX_AUDIT_DETAILS_LEN, MAX_AUDIT_QUERY_ROWS, MAX_AUDIT_ROWS};
pub use lookup::{LookupFile, LookupMatch, MAX_LOOKUP_MATCHES, MatchedBy};
pub use nostr::{
    MAX_NOSTR_ERROR_LEN, MAX_NOSTR_EVENT_LEN, MAX_PENDING_NOSTR_EVENTS, NewNostrEvent, NostrRow,
};
pub use outbox::{
    EnqueueOutcome, MAX_FINISHED_WEBHOOKS_PER_ENDPOINT, MAX_PENDING_WEBHOOKS_PER_ENDPOINT,
    MAX_WEBHOOK_BODY_LEN, MAX_WEBHOOK_ENDPOINTS, MAX_WEBHOOK_ERROR_LEN, MAX_WEBHOOK_KINDS,
    MAX_WEBHOOK_SECRETS, MAX_WEBHOOK_URL_LEN, NewWebhookEndpoint, OutboxRow, OutboxState,
    WebhookEndpoint, WebhookEvent,
};
pub use schema::{APPLICATION_ID, SCHEMA_VERSION};
pub use tokens::{
    NewToken, Scopes, TOKEN_ID_LEN, TOKEN_LEN, TOKEN_PREFIX, TOKEN_SECRET_LEN, TokenError,
    TokenInfo, TokenVerifier, presented_client, presented_token, token_digest, unknown_token_delay,
};
pub use torrents::{
    FileCheck, FileRecord, NewFile, NewTorrent, Owner, TorrentStats, TorrentSummary,
};
pub use writer::{StatsBatch, StatsDelta};

/// The first 16 bytes of every SQLite database file (the SQLite file format, §1.3).
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Why a catalog operation failed. Variants name what is wrong with the file, the input or the
/// row asked for; [`CatalogError::Sqlite`] carries anything else SQLite reported.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The file exists but is not a seednode catalog (not SQLite, or another application's
    /// database). It was not modified.
    #[error("{shown}: not a seednode catalog ({reason}); left untouched", shown = escape_path(.path))]
    NotACatalog {
        /// The file.
        path: PathBuf,
        /// What gave it away.
        reason: &'static str,
    },
    /// The catalog was written by a newer seednode: its schema version is above the newest this
    /// binary knows. Nothing was changed; run the newer binary (never a silent downgrade).
    #[error("catalog schema version {found} is newer than this binary supports ({supported})")]
    SchemaTooNew {
        /// `user_version` found in the file.
        found: u32,
        /// Newest schema version this binary knows ([`SCHEMA_VERSION`]).
        supported: u32,
    },
    /// SQLite could not put the catalog in WAL mode (a filesystem without shared memory or
    /// locking, such as some network filesystems); durability cannot be promised.
    #[error("catalog cannot use write-ahead logging (journal mode is {mode})")]
    WalUnavailable {
        /// The journal mode SQLite reported instead.
        mode: String,
    },
    /// A torrent with the same v1 or v2 info-hash is already in the catalog (SECURITY U7/U8:
    /// the second of two concurrent adds, or a replayed one).
    #[error("torrent already in the catalog as {id}")]
    Exists {
        /// The torrent already there.
        id: TorrentId,
    },
    /// The owner's quota would be exceeded by this torrent; nothing was added.
    #[error("quota exceeded: at most {limit} {what}")]
    QuotaExceeded {
        /// `torrents` or `bytes`.
        what: &'static str,
        /// The cap.
        limit: u64,
    },
    /// No torrent with this id.
    #[error("no torrent {id} in the catalog")]
    NoSuchTorrent {
        /// The id asked for.
        id: TorrentId,
    },
    /// No file with this index in the torrent.
    #[error("torrent {id} has no file {index}")]
    NoSuchFile {
        /// The torrent.
        id: TorrentId,
        /// The file index asked for.
        index: u32,
    },
    /// No API token with this id.
    #[error("no token {id}")]
    NoSuchToken {
        /// The token id asked for.
        id: String,
    },
    /// An input value is malformed (a NUL byte, an empty name, a non-UTF-8 path, an info
    /// dictionary that is not where the caller says, …).
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An input value is longer than its limit.
    #[error("{field} of {len} bytes exceeds the limit of {limit}")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its length in bytes (or items, for lists).
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The token table is full ([`MAX_TOKENS`](crate::limits::MAX_TOKENS)).
    #[error("too many tokens ({limit}); revoke and delete some first")]
    TooManyTokens {
        /// The limit.
        limit: usize,
    },
    /// The device table is full ([`MAX_DEVICES`]).
    #[error("too many devices ({limit}); revoke and remove some first")]
    TooManyDevices {
        /// The limit.
        limit: usize,
    },
    /// No device with this name or id.
    #[error("no device {name}")]
    NoSuchDevice {
        /// The name asked for.
        name: String,
    },
    /// [`MAX_PENDING_APPROVALS`] approvals wait already.
    #[error("too many approvals pending ({limit}); decide or let some expire first")]
    TooManyApprovals {
        /// The limit.
        limit: usize,
    },
    /// The disk (or the filesystem quota) is full: the transaction was rolled back and nothing
    /// changed (SECURITY S4). Reads still work; retry the write when space returns.
    #[error("disk full: catalog write rolled back")]
    DiskFull,
    /// A row breaks an invariant the schema cannot express (an unknown state or scope): the file
    /// was edited by hand or damaged.
    #[error("catalog row is corrupt: {what}")]
    Corrupt {
        /// What is wrong.
        what: &'static str,
    },
    /// An I/O error outside SQLite (reading the file header, syncing the directory).
    #[error("{shown}: {source}", shown = escape_path(.path))]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// Any other error SQLite reported (including `SQLITE_BUSY` after the busy timeout, and
    /// `integrity_check` failures, as [`rusqlite::Error::SqliteFailure`]).
    #[error("catalog: {0}")]
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for CatalogError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => Self::DiskFull,
            _ => Self::Sqlite(e),
        }
    }
}

/// The catalog's id of a torrent: SQLite's rowid, assigned on add, never reused while the
/// torrent exists (a removed torrent's id may be reused later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TorrentId(pub i64);

impl std::fmt::Display for TorrentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What the node does with a torrent; stored in `torrents.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Served to peers.
    Seeding,
    /// Kept, not served (the operator paused it).
    Paused,
    /// A file is missing or has the wrong length (SECURITY rule 13): not served; the reason
    /// names the file.
    MissingData,
    /// Not served because of another error, named by the reason.
    Error,
}

impl State {
    /// The name stored in the catalog: `seeding`, `paused`, `missing_data`, `error`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Seeding => "seeding",
            Self::Paused => "paused",
            Self::MissingData => "missing_data",
            Self::Error => "error",
        }
    }

    /// The state stored as `s`; `None` for a name this binary does not know.
    #[must_use]
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "seeding" => Self::Seeding,
            "paused" => Self::Paused,
            "missing_data" => Self::MissingData,
            "error" => Self::Error,
            _ => return None,
        })
    }

    /// Whether a state carries a reason: `missing_data` and `error` must, the others must not.
    #[must_use]
    pub const fn has_reason(self) -> bool {
        matches!(self, Self::MissingData | Self::Error)
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An open catalog: one SQLite connection, in WAL mode with `synchronous=FULL` and foreign keys
/// enforced. `Send`, not `Sync`: keep it on one thread (see the module documentation).
#[derive(Debug)]
pub struct Catalog {
    conn: Connection,
    path: PathBuf,
}

impl Catalog {
    /// Opens the catalog at `path`, creating it (and applying every migration) when the file
    /// does not exist or is empty.
    ///
    /// Sets `journal_mode=WAL`, `synchronous=FULL`, `foreign_keys=ON`, `trusted_schema=OFF`,
    /// `busy_timeout` ([`CATALOG_BUSY_TIMEOUT_MS`]) and `journal_size_limit`
    /// ([`CATALOG_JOURNAL_SIZE_LIMIT`]), then brings the schema to [`SCHEMA_VERSION`], one
    /// transaction per migration (a crash between two leaves the older version, migrated again
    /// at the next open). The directory holding a newly created file is synced.
    ///
    /// # Errors
    /// [`CatalogError::NotACatalog`] for a file that is not an SQLite database, or is another
    /// application's (its `application_id` differs, or it has tables but no seednode schema);
    /// [`CatalogError::SchemaTooNew`] for a catalog from a newer binary (both leave the file
    /// as it was); [`CatalogError::WalUnavailable`]; [`CatalogError::Io`] or
    /// [`CatalogError::Sqlite`] when the file cannot be read or created.
    pub fn open(path: &Path) -> Result<Self, CatalogError> {
        let existed = check_header(path)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(Duration::from_millis(u64::from(CATALOG_BUSY_TIMEOUT_MS)))?;
        // Refuse before the first write (switching to WAL rewrites the header).
        schema::check_identity(&conn, path)?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(CatalogError::WalUnavailable { mode });
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.pragma_update(None, "trusted_schema", false)?;
        conn.pragma_update(None, "journal_size_limit", CATALOG_JOURNAL_SIZE_LIMIT)?;
        let foreign_keys: bool = conn.query_row("PRAGMA foreign_keys", [], |row| row.get(0))?;
        if !foreign_keys {
            return Err(CatalogError::Invalid {
                field: "sqlite",
                reason: "foreign keys unsupported",
            });
        }
        schema::migrate(&mut conn)?;
        if !existed {
            sync_parent_dir(path)?;
        }
        Ok(Self {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// The catalog file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the open catalog (`PRAGMA user_version`): [`SCHEMA_VERSION`] after
    /// [`Catalog::open`].
    ///
    /// # Errors
    /// [`CatalogError::Sqlite`].
    pub fn schema_version(&self) -> Result<u32, CatalogError> {
        schema::user_version(&self.conn)
    }

    /// `PRAGMA data_version`: a number that changes when *another* connection (a `seednode
    /// token` command while the node runs) commits to the file; this connection's own commits
    /// leave it as it is. Polling it tells the engine when to reload what it caches (tokens).
    ///
    /// # Errors
    /// [`CatalogError::Sqlite`].
    pub fn data_version(&self) -> Result<i64, CatalogError> {
        Ok(self
            .conn
            .query_row("PRAGMA data_version", [], |row| row.get(0))?)
    }

    /// Runs `PRAGMA integrity_check` and `PRAGMA foreign_key_check`: `Ok` when SQLite finds the
    /// file sound and no row points at a missing torrent. Reads the whole file: for tests, the
    /// `seednode doctor`-style commands and after an unclean shutdown, not on every start.
    ///
    /// # Errors
    /// [`CatalogError::Corrupt`] with the first problem's kind; [`CatalogError::Sqlite`].
    pub fn integrity_check(&self) -> Result<(), CatalogError> {
        let result: String = self
            .conn
            .query_row("PRAGMA integrity_check(1)", [], |row| row.get(0))?;
        if result != "ok" {
            return Err(CatalogError::Corrupt {
                what: "integrity_check failed",
            });
        }
        let orphan: Option<String> = self
            .conn
            .query_row("PRAGMA foreign_key_check", [], |row| row.get(0))
            .optional()?;
        if orphan.is_some() {
            return Err(CatalogError::Corrupt {
                what: "foreign_key_check failed",
            });
        }
        Ok(())
    }

    /// Copies the write-ahead log into the database file and truncates it
    /// (`PRAGMA wal_checkpoint(TRUNCATE)`). SQLite checkpoints on its own every 1 000 pages;
    /// the engine calls this at shutdown and, if it likes, every few minutes when idle
    /// (SECURITY S8). A reader holding an old snapshot can keep part of the log; the next call
    /// finishes the job.
    ///
    /// # Errors
    /// [`CatalogError::Sqlite`] (`SQLITE_BUSY` when another connection is checkpointing).
    pub fn checkpoint(&self) -> Result<(), CatalogError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// Caps the catalog file at about `bytes` (`PRAGMA max_page_count`, rounded down to whole
    /// pages, never below the current size) for this connection: a write that would grow it
    /// further fails with [`CatalogError::DiskFull`] and is rolled back, as on a full disk
    /// (SECURITY S4). Returns the cap in effect, in bytes.
    ///
    /// # Errors
    /// [`CatalogError::Sqlite`].
    pub fn set_size_limit(&self, bytes: u64) -> Result<u64, CatalogError> {
        let page_size: i64 = self
            .conn
            .query_row("PRAGMA page_size", [], |row| row.get(0))?;
        let page_size = from_sql_u64(page_size).max(1);
        // 0 would mean "leave it as it is"; SQLite raises anything below the current size to it.
        let pages = to_sql_u64(bytes / page_size).max(1);
        let set: i64 =
            self.conn
                .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |row| {
                    row.get(0)
                })?;
        Ok(from_sql_u64(set).saturating_mul(page_size))
    }

    /// The value of setting `key`, or `None` when it is not set.
    ///
    /// # Errors
    /// [`CatalogError::Sqlite`].
    pub fn get_setting(&self, key: &str) -> Result<Option<String>, CatalogError> {
        let value = self
            .conn
            .prepare_cached("SELECT value FROM settings WHERE key = ?1")?
            .query_row([key], |row| row.get(0))
            .optional()?;
        Ok(value)
    }

    /// Sets `key` to `value` (replacing any previous value); durable when it returns.
    ///
    /// # Errors
    /// [`CatalogError::TooLong`] over [`MAX_SETTING_KEY_LEN`] or [`MAX_SETTING_VALUE_LEN`]
    /// bytes; [`CatalogError::Invalid`] for an empty key or a NUL byte;
    /// [`CatalogError::DiskFull`]; [`CatalogError::Sqlite`].
    pub fn set_setting(&mut self, key: &str, value: &str) -> Result<(), CatalogError> {
        check_text("setting key", key, MAX_SETTING_KEY_LEN)?;
        if key.is_empty() {
            return Err(CatalogError::Invalid {
                field: "setting key",
                reason: "empty",
            });
        }
        check_text("setting value", value, MAX_SETTING_VALUE_LEN)?;
        let tx = self.write()?;
        tx.prepare_cached(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )?
        .execute([key, value])?;
        tx.commit()?;
        Ok(())
    }

    /// Deletes setting `key`; returns whether it was set.
    ///
    /// # Errors
    /// [`CatalogError::DiskFull`]; [`CatalogError::Sqlite`].
    pub fn delete_setting(&mut self, key: &str) -> Result<bool, CatalogError> {
        let tx = self.write()?;
        let n = tx
            .prepare_cached("DELETE FROM settings WHERE key = ?1")?
            .execute([key])?;
        tx.commit()?;
        Ok(n > 0)
    }

    /// Starts a write transaction that takes the write lock at once (`BEGIN IMMEDIATE`), so two
    /// writers queue on `busy_timeout` instead of failing on a lock upgrade.
    fn write(&mut self) -> Result<rusqlite::Transaction<'_>, CatalogError> {
        Ok(self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?)
    }
}

/// Checks that `path`, if it exists and is not empty, starts with the SQLite header; returns
/// whether it existed. Reading happens before SQLite touches the file, so a file of another
/// kind is never modified.
fn check_header(path: &Path) -> Result<bool, CatalogError> {
    let io_error = |source| CatalogError::Io {
        path: path.to_path_buf(),
        source,
    };
    // Looked at before opening: opening a FIFO for reading would block.
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => {
            return Err(CatalogError::NotACatalog {
                path: path.to_path_buf(),
                reason: "not a regular file",
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_error(e)),
    }
    let mut file = File::open(path).map_err(io_error)?;
    let mut header = [0u8; SQLITE_HEADER.len()];
    let mut got = 0;
    while got < header.len() {
        match file.read(&mut header[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error(e)),
        }
    }
    if got == 0 {
        return Ok(true); // SQLite treats an empty file as a new database
    }
    if got < header.len() || &header != SQLITE_HEADER {
        return Err(CatalogError::NotACatalog {
            path: path.to_path_buf(),
            reason: "not an SQLite database",
        });
    }
    Ok(true)
}

/// Syncs the directory holding `path`, so that a newly created catalog file survives power
/// loss (its directory entry is durable, not only its contents).
fn sync_parent_dir(path: &Path) -> Result<(), CatalogError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| CatalogError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

/// Checks a string for the catalog: at most `limit` bytes, no NUL byte.
pub(crate) fn check_text(field: &'static str, s: &str, limit: usize) -> Result<(), CatalogError> {
    if s.len() > limit {
        return Err(CatalogError::TooLong {
            field,
            len: s.len(),
            limit,
        });
    }
    if s.contains('\0') {
        return Err(CatalogError::Invalid {
            field,
            reason: "contains a NUL byte",
        });
    }
    Ok(())
}

/// A `u64` count or length as SQLite's signed 64-bit integer, saturating at `i64::MAX` (no
/// length seednode accepts comes near it; counters saturate instead of wrapping).
pub(crate) fn to_sql_u64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A stored non-negative integer back as `u64` (the schema's CHECKs keep them non-negative; a
/// negative one from a hand-edited file reads as 0).
pub(crate) fn from_sql_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}
