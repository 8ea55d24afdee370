//! The catalog's schema: numbered migrations tracked by `PRAGMA user_version`.
//!
//! Migration `n` (1-based) is `MIGRATIONS[n - 1]`; a catalog at version `v` has had the first
//! `v` applied, each in its own transaction together with the `user_version` bump. Migrations are
//! append-only: a released one is never edited, a change is a new one.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::CatalogError;

/// `PRAGMA application_id` of a seednode catalog: the bytes `SNCT` as a big-endian `i32`
/// (SQLite file format §1.3.21), so `file(1)` and [`Catalog::open`](super::Catalog::open) can
/// tell a seednode catalog from another application's database.
pub const APPLICATION_ID: i32 = i32::from_be_bytes(*b"SNCT");

/// Schema version 1: torrents, files, statistics, settings and tokens. `docs/catalog.md`
/// explains each column.
const V1: &str = "
CREATE TABLE torrents (
    id           INTEGER PRIMARY KEY,
    info_hash_v1 BLOB UNIQUE CHECK (info_hash_v1 IS NULL OR length(info_hash_v1) = 20),
    info_hash_v2 BLOB UNIQUE CHECK (info_hash_v2 IS NULL OR length(info_hash_v2) = 32),
    name         TEXT NOT NULL CHECK (length(CAST(name AS BLOB)) BETWEEN 1 AND 255),
    metainfo     BLOB NOT NULL,
    info_offset  INTEGER NOT NULL CHECK (info_offset >= 0),
    info_len     INTEGER NOT NULL CHECK (info_len >= 2),
    data_path    TEXT NOT NULL CHECK (length(CAST(data_path AS BLOB)) BETWEEN 1 AND 4096),
    added_at     INTEGER NOT NULL,
    state        TEXT NOT NULL DEFAULT 'seeding'
                 CHECK (state IN ('seeding', 'paused', 'missing_data', 'error')),
    state_reason TEXT,
    CHECK (info_hash_v1 IS NOT NULL OR info_hash_v2 IS NOT NULL),
    CHECK (info_offset + info_len <= length(metainfo)),
    CHECK ((state IN ('seeding', 'paused')) = (state_reason IS NULL))
) STRICT;

-- BEP 52: a v2 torrent's swarm is named by its SHA-256 info-hash truncated to 20 bytes.
CREATE INDEX torrents_v2_swarm ON torrents (substr(info_hash_v2, 1, 20));

CREATE TABLE files (
    torrent_id INTEGER NOT NULL REFERENCES torrents (id) ON DELETE CASCADE,
    idx        INTEGER NOT NULL CHECK (idx >= 0),
    path       TEXT NOT NULL,
    length     INTEGER NOT NULL CHECK (length >= 0),
    padding    INTEGER NOT NULL DEFAULT 0 CHECK (padding IN (0, 1)),
    mtime_ns   INTEGER,
    sha256     BLOB CHECK (sha256 IS NULL OR length(sha256) = 32),
    PRIMARY KEY (torrent_id, idx)
) STRICT, WITHOUT ROWID;

CREATE TABLE stats (
    torrent_id     INTEGER PRIMARY KEY REFERENCES torrents (id) ON DELETE CASCADE,
    uploaded_bytes INTEGER NOT NULL DEFAULT 0 CHECK (uploaded_bytes >= 0),
    peers_served   INTEGER NOT NULL DEFAULT 0 CHECK (peers_served >= 0),
    last_activity  INTEGER
) STRICT;

CREATE TABLE settings (
    key   TEXT PRIMARY KEY CHECK (length(CAST(key AS BLOB)) BETWEEN 1 AND 128),
    value TEXT NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE tokens (
    id         TEXT PRIMARY KEY CHECK (length(id) = 12),
    hash       BLOB NOT NULL UNIQUE CHECK (length(hash) = 32),
    scopes     TEXT NOT NULL CHECK (scopes <> ''),
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER,
    label      TEXT NOT NULL DEFAULT ''
) STRICT, WITHOUT ROWID;
";

/// Schema version 2: the audit log (issue 12's event bus writes it; `seednode audit` and
/// `GET /api/v1/audit` read it). Rows are only ever appended, and pruned oldest first past
/// [`crate::catalog::MAX_AUDIT_ROWS`].
const V2: &str = "
CREATE TABLE audit (
    id      INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    kind    TEXT NOT NULL CHECK (length(kind) BETWEEN 1 AND 64),
    actor   TEXT CHECK (actor IS NULL OR length(CAST(actor AS BLOB)) <= 128),
    source  TEXT CHECK (source IS NULL OR length(source) <= 64),
    details TEXT NOT NULL DEFAULT '{}' CHECK (length(CAST(details AS BLOB)) <= 4096)
) STRICT;

CREATE INDEX audit_at ON audit (at);
";

/// Schema version 3: OAuth2 clients (RFC 6749 §2.3.1 client credentials) share the tokens
/// table (an id, the SHA-256 of a secret, scopes, expiry, revocation, label); `kind` tells a
/// bearer token from a client, whose secret is only good at `POST /oauth/token`.
const V3: &str = "
ALTER TABLE tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'token' CHECK (kind IN ('token', 'client'));
";

/// Schema version 4: quotas (issue 12). A token or client may carry a cap on the torrents it
/// adds and on their total bytes; each torrent records who added it (`owner`, a token or client
/// id; NULL for torrents added by hand or before this version, which count against no one).
const V4: &str = "
ALTER TABLE tokens ADD COLUMN quota_torrents INTEGER CHECK (quota_torrents IS NULL OR quota_torrents >= 0);
ALTER TABLE tokens ADD COLUMN quota_bytes INTEGER CHECK (quota_bytes IS NULL OR quota_bytes >= 0);
ALTER TABLE torrents ADD COLUMN owner TEXT CHECK (owner IS NULL OR length(owner) <= 64);
ALTER TABLE torrents ADD COLUMN size_bytes INTEGER NOT NULL DEFAULT 0 CHECK (size_bytes >= 0);
CREATE INDEX torrents_owner ON torrents (owner) WHERE owner IS NOT NULL;
";

/// Schema version 5: webhook endpoints and their durable outbox (issue 13). An endpoint's
/// `secrets` are its Standard Webhooks `whsec_` signing secrets **in clear** (HMAC needs them;
/// the catalog directory is 0700), space-separated, newest first. `kinds` is a space-separated
/// filter (`*`, a kind, or a prefix ending in `.`). Outbox rows of an endpoint are delivered in
/// `id` order; `event_id` is the `webhook-id`, the same for every endpoint and every retry.
const V5: &str = "
CREATE TABLE webhook_endpoints (
    id            INTEGER PRIMARY KEY,
    url           TEXT NOT NULL CHECK (length(CAST(url AS BLOB)) BETWEEN 1 AND 2048),
    kinds         TEXT NOT NULL CHECK (length(kinds) BETWEEN 1 AND 2048),
    secrets       TEXT NOT NULL CHECK (length(secrets) BETWEEN 1 AND 1024),
    recipient_key BLOB CHECK (recipient_key IS NULL OR length(recipient_key) = 32),
    allow_private INTEGER NOT NULL DEFAULT 0 CHECK (allow_private IN (0, 1)),
    created_at    INTEGER NOT NULL,
    label         TEXT NOT NULL DEFAULT '' CHECK (length(CAST(label AS BLOB)) <= 128)
) STRICT;

CREATE TABLE webhook_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint_id     INTEGER NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id        TEXT NOT NULL CHECK (length(event_id) BETWEEN 1 AND 64),
    kind            TEXT NOT NULL CHECK (length(kind) BETWEEN 1 AND 64),
    body            TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_ms INTEGER NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'failed')),
    finished_at     INTEGER,
    last_error      TEXT CHECK (last_error IS NULL OR length(CAST(last_error AS BLOB)) <= 512),
    UNIQUE (endpoint_id, event_id)
) STRICT;

CREATE INDEX webhook_outbox_pending ON webhook_outbox (endpoint_id, id) WHERE state = 'pending';
";

/// Schema version 6: one content identity (issue 14). Each file may carry its BEP 52
/// `pieces root` (v2 and hybrid torrents, from the metainfo at insert), and both it and the
/// file's SHA-256 are indexed, so `GET /api/v1/lookup/<hash>` finds a file by either. Rows
/// inserted before this version have no `pieces_root` (their torrents are still found by
/// info-hash and SHA-256).
const V6: &str = "
ALTER TABLE files ADD COLUMN pieces_root BLOB CHECK (pieces_root IS NULL OR length(pieces_root) = 32);
CREATE INDEX files_sha256 ON files (sha256) WHERE sha256 IS NOT NULL;
CREATE INDEX files_pieces_root ON files (pieces_root) WHERE pieces_root IS NOT NULL;
";

/// Schema version 7: the durable queue of signed Nostr events (issue 14), one row per event
/// and relay. `info_hash` (hex of the swarm info-hash) ties announcements (kinds 1063, 2003)
/// to their torrent, so a removal can publish a NIP-09 deletion naming them; it is no foreign
/// key, because the rows must outlive the torrent. `docs/nostr.md` explains the states.
const V7: &str = "
CREATE TABLE nostr_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    info_hash       TEXT NOT NULL CHECK (length(info_hash) = 40),
    relay           TEXT NOT NULL CHECK (length(CAST(relay AS BLOB)) BETWEEN 1 AND 2048),
    event_id        TEXT NOT NULL CHECK (length(event_id) = 64),
    kind            INTEGER NOT NULL CHECK (kind BETWEEN 0 AND 65535),
    event           TEXT NOT NULL CHECK (length(CAST(event AS BLOB)) <= 262144),
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_ms INTEGER NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'published', 'failed', 'cancelled')),
    finished_at     INTEGER,
    last_error      TEXT CHECK (last_error IS NULL OR length(CAST(last_error AS BLOB)) <= 512),
    UNIQUE (relay, event_id)
) STRICT;

CREATE INDEX nostr_outbox_due ON nostr_outbox (next_attempt_ms) WHERE state = 'pending';
CREATE INDEX nostr_outbox_torrent ON nostr_outbox (info_hash);
";

/// Schema version 8: out-of-band approvals (issue 13, docs/approvals.md). `devices` are the
/// operator's Ed25519 public keys (RFC 8032); `approvals` are the critical API writes waiting
/// for a device's signature over `challenge`, with the request to run (`method`, `path`,
/// `body`, emptied once decided). An approval leaves `pending` once.
const V8: &str = "
CREATE TABLE devices (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE CHECK (length(CAST(name AS BLOB)) BETWEEN 1 AND 64),
    public_key BLOB NOT NULL UNIQUE CHECK (length(public_key) = 32),
    added_at   INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;

CREATE TABLE approvals (
    id         TEXT PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 64),
    action     TEXT NOT NULL CHECK (length(action) BETWEEN 1 AND 256),
    target     TEXT NOT NULL CHECK (length(CAST(target AS BLOB)) <= 256),
    actor      TEXT CHECK (actor IS NULL OR length(actor) <= 64),
    source     TEXT CHECK (source IS NULL OR length(source) <= 64),
    challenge  BLOB NOT NULL CHECK (length(challenge) <= 1024),
    method     TEXT NOT NULL CHECK (length(method) BETWEEN 1 AND 16),
    path       TEXT NOT NULL CHECK (length(CAST(path AS BLOB)) <= 8192),
    body       BLOB NOT NULL CHECK (length(body) <= 1048576),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    state      TEXT NOT NULL DEFAULT 'pending'
               CHECK (state IN ('pending', 'granted', 'refused', 'expired')),
    device_id  INTEGER REFERENCES devices (id) ON DELETE SET NULL,
    decided_at INTEGER
) STRICT;

CREATE INDEX approvals_state ON approvals (state, created_at);
";

/// Every migration this binary knows, in order.
const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6, V7, V8];

/// Newest schema version this binary knows: the number of migrations.
#[allow(clippy::cast_possible_truncation)] // a handful of migrations
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// `PRAGMA user_version`: the schema version of the catalog (0 for a new file).
pub(super) fn user_version(conn: &Connection) -> Result<u32, CatalogError> {
    let v: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    // user_version is a signed 32-bit header field; a negative one is no version of ours.
    u32::try_from(v).map_err(|_| CatalogError::Corrupt {
        what: "negative user_version",
    })
}

/// Refuses a database that is not a seednode catalog, or is newer than this binary, without
/// writing to it.
pub(super) fn check_identity(conn: &Connection, path: &Path) -> Result<(), CatalogError> {
    let app_id: i32 = conn.query_row("PRAGMA application_id", [], |row| row.get(0))?;
    let version = user_version(conn)?;
    let not_ours = |reason| CatalogError::NotACatalog {
        path: path.to_path_buf(),
        reason,
    };
    if app_id != APPLICATION_ID {
        if app_id != 0 {
            return Err(not_ours("another application's SQLite database"));
        }
        let objects: i64 =
            conn.query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))?;
        if objects != 0 || version != 0 {
            return Err(not_ours("an SQLite database without a seednode schema"));
        }
    }
    if version > SCHEMA_VERSION {
        return Err(CatalogError::SchemaTooNew {
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(())
}

/// Applies the migrations the catalog lacks, one transaction each. The version is read again
/// under the write lock, so two processes opening a new catalog at once migrate it once.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), CatalogError> {
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version = user_version(&tx)?;
        if version > SCHEMA_VERSION {
            return Err(CatalogError::SchemaTooNew {
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        let Some(sql) = MIGRATIONS.get(version as usize) else {
            return Ok(()); // up to date; the empty transaction rolls back on drop
        };
        if version == 0 {
            tx.pragma_update(None, "application_id", APPLICATION_ID)?;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version + 1)?;
        tx.commit()?;
        tracing::debug!(version = version + 1, "catalog migrated");
    }
}
