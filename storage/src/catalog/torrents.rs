//! Torrents, their files and their statistics: adding, listing, reading the metainfo back.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, Row, params};
use seednode_wire::InfoHash;
use seednode_wire::metainfo::{FileEntry, Metainfo};
use seednode_wire::metainfo_v2::InfoHashV2;
use sha1::{Digest as _, Sha1};
use sha2::Sha256;

use super::{Catalog, CatalogError, State, TorrentId, check_text, from_sql_u64, to_sql_u64};
use crate::limits::{
    MAX_CATALOG_DATA_PATH_LEN, MAX_CATALOG_FILE_PATH_LEN, MAX_CATALOG_METAINFO_LEN,
    MAX_CATALOG_NAME_LEN, MAX_FILES, MAX_INFO_SLICE_LEN, MAX_STATE_REASON_LEN, MAX_TOTAL_LENGTH,
};

/// A torrent to add to the catalog ([`Catalog::add_torrent`]). Build it with
/// [`NewTorrent::from_metainfo`]; the fields are public for callers that know better (tests,
/// imports), and [`Catalog::add_torrent`] checks them all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTorrent {
    /// SHA-1 info-hash of a v1 or hybrid torrent; `None` for a v2-only torrent.
    pub info_hash_v1: Option<InfoHash>,
    /// SHA-256 info-hash of a v2 or hybrid torrent (BEP 52); `None` for a v1 torrent.
    pub info_hash_v2: Option<InfoHashV2>,
    /// The torrent's name (`info.name`), 1 to [`MAX_CATALOG_NAME_LEN`] bytes.
    pub name: String,
    /// The whole `.torrent` file, at most [`MAX_CATALOG_METAINFO_LEN`] bytes.
    pub metainfo: Vec<u8>,
    /// Offset of the bencoded info dictionary in `metainfo`, in bytes.
    pub info_offset: usize,
    /// Length of the bencoded info dictionary, in bytes. Its SHA-1 must be `info_hash_v1` and
    /// its SHA-256 `info_hash_v2` (those given).
    pub info_len: usize,
    /// Where the data is: the file of a single-file torrent, the directory of a multi-file one
    /// (see [`Storage::open`](crate::Storage::open)). UTF-8, at most
    /// [`MAX_CATALOG_DATA_PATH_LEN`] bytes. Whether it lies inside the data directory is the
    /// engine's check.
    pub data_path: PathBuf,
    /// When the torrent was added, in seconds since the Unix epoch (the caller's wall clock).
    pub added_at: i64,
    /// State to start in: usually [`State::Seeding`] or [`State::Paused`].
    pub state: State,
    /// The reason that goes with a `missing_data` or `error` state; `None` otherwise.
    pub state_reason: Option<String>,
    /// The files in `Info::files` order (the v1 piece space, padding files included), at most
    /// [`MAX_FILES`].
    pub files: Vec<NewFile>,
    /// Who adds it (a token or client id), and the quota it is added under: checked in the
    /// same transaction as the insert ([`CatalogError::QuotaExceeded`]). `None` for torrents
    /// added by the operator.
    pub owner: Option<Owner>,
}

/// Who adds a torrent, and the caps on everything that owner has added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The token's or client's public id.
    pub id: String,
    /// Most torrents it may have in the catalog; `None` for no cap.
    pub max_torrents: Option<u64>,
    /// Most payload bytes over its torrents; `None` for no cap.
    pub max_bytes: Option<u64>,
}

/// One file of a [`NewTorrent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFile {
    /// Path below the torrent's data path, components joined by `/`; empty for the file of a
    /// single-file torrent (the data path itself). At most [`MAX_CATALOG_FILE_PATH_LEN`] bytes.
    pub path: String,
    /// Length in bytes, as the torrent says.
    pub length: u64,
    /// A BEP 47 padding file: zeros, nothing on disk.
    pub padding: bool,
    /// Modification time of the file when its data was last verified, in nanoseconds since the
    /// Unix epoch; `None` when it never was (the first start then checks its pieces).
    pub mtime_ns: Option<i64>,
    /// SHA-256 of the whole file, when known.
    pub sha256: Option<[u8; 32]>,
    /// The file's BEP 52 `pieces root` (v2 and hybrid torrents; `None` for v1, padding and
    /// empty files).
    pub pieces_root: Option<[u8; 32]>,
}

/// What the catalog keeps about one torrent, without its metainfo: what the engine holds in
/// memory for an idle torrent (a few hundred bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorrentSummary {
    /// The catalog's id.
    pub id: TorrentId,
    /// SHA-1 info-hash (v1 and hybrid torrents).
    pub info_hash_v1: Option<InfoHash>,
    /// SHA-256 info-hash (v2 and hybrid torrents).
    pub info_hash_v2: Option<InfoHashV2>,
    /// The torrent's name.
    pub name: String,
    /// Length of the bencoded info dictionary, in bytes: BEP 9's `metadata_size`.
    pub info_len: u32,
    /// Length of the whole `.torrent`, in bytes.
    pub metainfo_len: u32,
    /// Where the data is ([`NewTorrent::data_path`]).
    pub data_path: PathBuf,
    /// When it was added, in seconds since the Unix epoch.
    pub added_at: i64,
    /// Its state.
    pub state: State,
    /// The reason of a `missing_data` or `error` state.
    pub state_reason: Option<String>,
    /// Its statistics.
    pub stats: TorrentStats,
}

impl TorrentSummary {
    /// The info-hash peers, trackers and the DHT use for its swarm (BEP 52 §infohash): the SHA-1
    /// one when there is one, else the SHA-256 one truncated to 20 bytes.
    #[must_use]
    pub fn swarm_hash(&self) -> InfoHash {
        match (self.info_hash_v1, self.info_hash_v2) {
            (Some(v1), _) => v1,
            (None, Some(v2)) => v2.truncated(),
            (None, None) => InfoHash::default(), // the schema forbids this row
        }
    }
}

/// Statistics of a torrent that survive restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TorrentStats {
    /// Bytes of piece data sent to peers, in total (saturates at `i64::MAX`).
    pub uploaded_bytes: u64,
    /// Peers that were sent at least one block, in total.
    pub peers_served: u64,
    /// Last time a peer was served, in seconds since the Unix epoch; `None` if never.
    pub last_activity: Option<i64>,
}

/// One file of a torrent as recorded ([`Catalog::files`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    /// Index in `Info::files`.
    pub index: u32,
    /// Path below the data path (components joined by `/`; empty for a single file).
    pub path: String,
    /// Length in bytes.
    pub length: u64,
    /// A BEP 47 padding file (nothing on disk).
    pub padding: bool,
    /// Modification time when the file's data was last verified, in nanoseconds since the Unix
    /// epoch; `None` if never.
    pub mtime_ns: Option<i64>,
    /// SHA-256 of the file, when known.
    pub sha256: Option<[u8; 32]>,
}

/// The result of checking one file, for [`Catalog::record_file_checks`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileCheck {
    /// Index in `Info::files`.
    pub index: u32,
    /// Modification time of the file whose pieces all verified, in nanoseconds since the Unix
    /// epoch; `None` to mark the file unverified (a piece of it failed its hash).
    pub mtime_ns: Option<i64>,
    /// SHA-256 of the whole file, if computed. `None` keeps a known hash only while the mtime is
    /// unchanged, and clears it otherwise.
    pub sha256: Option<[u8; 32]>,
}

impl NewTorrent {
    /// Describes a parsed `.torrent` for the catalog: hashes, name and files from `meta`, the
    /// info dictionary located in `metainfo` (the bytes `meta` was parsed from), starting in
    /// [`State::Seeding`] with no file verified yet.
    ///
    /// # Errors
    /// [`CatalogError::Invalid`] when `meta.info_bytes` is not the `info` value of `metainfo`.
    pub fn from_metainfo(
        metainfo: Vec<u8>,
        meta: &Metainfo,
        data_path: PathBuf,
        added_at: i64,
    ) -> Result<Self, CatalogError> {
        let info_offset = find_info(&metainfo, &meta.info_bytes).ok_or(CatalogError::Invalid {
            field: "metainfo",
            reason: "info dictionary not found in the metainfo bytes",
        })?;
        // BEP 52: each v2 file's root, by its path (the v1 view of a hybrid adds padding files,
        // which have none).
        let roots: std::collections::HashMap<&[String], [u8; 32]> = meta
            .v2
            .iter()
            .flat_map(|v2| &v2.info.files)
            .filter_map(|f| Some((f.path.as_slice(), f.pieces_root?)))
            .collect();
        let files = meta
            .info
            .files
            .iter()
            .map(|entry| NewFile {
                path: entry.path.join("/"),
                length: entry.length,
                padding: is_padding(entry),
                mtime_ns: None,
                sha256: None,
                pieces_root: roots.get(entry.path.as_slice()).copied(),
            })
            .collect();
        Ok(Self {
            info_hash_v1: meta.has_v1().then_some(meta.info_hash),
            info_hash_v2: meta.info_hash_v2(),
            name: meta.info.name.clone(),
            info_len: meta.info_bytes.len(),
            metainfo,
            info_offset,
            data_path,
            added_at,
            state: State::Seeding,
            state_reason: None,
            files,
            owner: None,
        })
    }

    /// Checks every field against the limits and the info dictionary against the info-hashes.
    pub(super) fn validate(&self) -> Result<(), CatalogError> {
        if self.info_hash_v1.is_none() && self.info_hash_v2.is_none() {
            return Err(CatalogError::Invalid {
                field: "info-hash",
                reason: "neither v1 nor v2",
            });
        }
        check_text("name", &self.name, MAX_CATALOG_NAME_LEN)?;
        if self.name.is_empty() {
            return Err(CatalogError::Invalid {
                field: "name",
                reason: "empty",
            });
        }
        if self.metainfo.len() > MAX_CATALOG_METAINFO_LEN {
            return Err(CatalogError::TooLong {
                field: "metainfo",
                len: self.metainfo.len(),
                limit: MAX_CATALOG_METAINFO_LEN,
            });
        }
        let info = self
            .info_offset
            .checked_add(self.info_len)
            .and_then(|end| self.metainfo.get(self.info_offset..end))
            .filter(|info| info.len() >= 2 && info[0] == b'd' && info[info.len() - 1] == b'e')
            .ok_or(CatalogError::Invalid {
                field: "info_offset",
                reason: "no info dictionary at this offset and length",
            })?;
        if let Some(v1) = self.info_hash_v1
            && <[u8; 20]>::from(Sha1::digest(info)) != v1.0
        {
            return Err(CatalogError::Invalid {
                field: "info_hash_v1",
                reason: "not the SHA-1 of the info dictionary",
            });
        }
        if let Some(v2) = self.info_hash_v2
            && <[u8; 32]>::from(Sha256::digest(info)) != v2.0
        {
            return Err(CatalogError::Invalid {
                field: "info_hash_v2",
                reason: "not the SHA-256 of the info dictionary",
            });
        }
        data_path_text(&self.data_path)?;
        check_reason(self.state, self.state_reason.is_some())?;
        if self.files.len() > MAX_FILES {
            return Err(CatalogError::TooLong {
                field: "files",
                len: self.files.len(),
                limit: MAX_FILES,
            });
        }
        let mut total = 0u64;
        for file in &self.files {
            check_text("file path", &file.path, MAX_CATALOG_FILE_PATH_LEN)?;
            total = total
                .checked_add(file.length)
                .filter(|t| *t <= MAX_TOTAL_LENGTH)
                .ok_or(CatalogError::Invalid {
                    field: "files",
                    reason: "total length over the limit",
                })?;
        }
        Ok(())
    }
}

/// Finds `info` as the value of an `info` key in `metainfo`: the offset of its first byte.
fn find_info(metainfo: &[u8], info: &[u8]) -> Option<usize> {
    const KEY: &[u8] = b"4:info";
    let mut from = 0;
    while let Some(pos) = metainfo
        .get(from..)?
        .windows(KEY.len())
        .position(|w| w == KEY)
    {
        let at = from + pos + KEY.len();
        if metainfo.get(at..at.checked_add(info.len())?) == Some(info) {
            return Some(at);
        }
        from += pos + 1;
    }
    None
}

/// BEP 47 padding, recognised as [`Storage`](crate::Storage) does: the path `.pad/<length>`.
fn is_padding(entry: &FileEntry) -> bool {
    matches!(entry.path.as_slice(), [dir, n] if dir == ".pad" && *n == entry.length.to_string())
}

/// The data path as stored text.
fn data_path_text(path: &Path) -> Result<&str, CatalogError> {
    let text = path.to_str().ok_or(CatalogError::Invalid {
        field: "data path",
        reason: "not UTF-8",
    })?;
    check_text("data path", text, MAX_CATALOG_DATA_PATH_LEN)?;
    if text.is_empty() {
        return Err(CatalogError::Invalid {
            field: "data path",
            reason: "empty",
        });
    }
    Ok(text)
}

/// Checks that a reason is given exactly for the states that carry one.
fn check_reason(state: State, has_reason: bool) -> Result<(), CatalogError> {
    match (state.has_reason(), has_reason) {
        (true, false) => Err(CatalogError::Invalid {
            field: "state reason",
            reason: "missing_data and error need a reason",
        }),
        (false, true) => Err(CatalogError::Invalid {
            field: "state reason",
            reason: "only missing_data and error take a reason",
        }),
        _ => Ok(()),
    }
}

/// A reason as stored: NUL bytes replaced, cut at [`MAX_STATE_REASON_LEN`] bytes on a character
/// boundary (never rejected: the state change matters more than its words).
fn clean_reason(reason: &str) -> String {
    let mut end = reason.len().min(MAX_STATE_REASON_LEN);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].replace('\0', "\u{fffd}")
}

/// The columns [`summary_from_row`] reads, for `FROM torrents t LEFT JOIN stats s`.
pub(super) const SUMMARY_COLUMNS: &str = "t.id, t.info_hash_v1, t.info_hash_v2, t.name, t.info_len, \
     length(t.metainfo), t.data_path, t.added_at, t.state, t.state_reason, \
     s.uploaded_bytes, s.peers_served, s.last_activity";

/// Builds a summary from a row of [`SUMMARY_COLUMNS`]; the outer error is SQLite's, the inner
/// one a row that breaks an invariant.
pub(super) fn summary_from_row(
    row: &Row<'_>,
) -> rusqlite::Result<Result<TorrentSummary, CatalogError>> {
    let v1: Option<Vec<u8>> = row.get(1)?;
    let v2: Option<Vec<u8>> = row.get(2)?;
    let state: String = row.get(8)?;
    let info_len: i64 = row.get(4)?;
    let metainfo_len: i64 = row.get(5)?;
    let data_path: String = row.get(6)?;
    let stats = TorrentStats {
        uploaded_bytes: from_sql_u64(row.get::<_, Option<i64>>(10)?.unwrap_or(0)),
        peers_served: from_sql_u64(row.get::<_, Option<i64>>(11)?.unwrap_or(0)),
        last_activity: row.get(12)?,
    };
    let id = TorrentId(row.get(0)?);
    let name = row.get(3)?;
    let added_at = row.get(7)?;
    let state_reason = row.get(9)?;
    Ok((|| {
        let corrupt = |what| CatalogError::Corrupt { what };
        Ok(TorrentSummary {
            id,
            info_hash_v1: v1
                .map(|b| <[u8; 20]>::try_from(b).map(InfoHash))
                .transpose()
                .map_err(|_| corrupt("info_hash_v1 length"))?,
            info_hash_v2: v2
                .map(|b| <[u8; 32]>::try_from(b).map(InfoHashV2))
                .transpose()
                .map_err(|_| corrupt("info_hash_v2 length"))?,
            name,
            info_len: u32::try_from(info_len).map_err(|_| corrupt("info_len"))?,
            metainfo_len: u32::try_from(metainfo_len).map_err(|_| corrupt("metainfo length"))?,
            data_path: PathBuf::from(data_path),
            added_at,
            state: State::from_name(&state).ok_or(corrupt("unknown state"))?,
            state_reason,
            stats,
        })
    })())
}

impl Catalog {
    /// Adds a torrent with its files and a zeroed statistics row, in one transaction; durable
    /// when it returns (the upload may then be acknowledged, SECURITY rule 12).
    ///
    /// # Errors
    /// [`CatalogError::Exists`] when a torrent with the same v1 or v2 info-hash is there
    /// (also the loser of two concurrent adds: exactly one row is written, SECURITY U7);
    /// [`CatalogError::Invalid`] or [`CatalogError::TooLong`] for a field that fails its check
    /// ([`NewTorrent`]); [`CatalogError::DiskFull`]; [`CatalogError::Sqlite`].
    pub fn add_torrent(&mut self, torrent: &NewTorrent) -> Result<TorrentId, CatalogError> {
        torrent.validate()?;
        let tx = self.write()?;
        let id = insert_torrent(&tx, torrent)?;
        tx.commit()?;
        Ok(id)
    }

    /// Removes a torrent, its files and its statistics (the data on disk is the engine's).
    ///
    /// # Errors
    /// [`CatalogError::NoSuchTorrent`]; [`CatalogError::DiskFull`]; [`CatalogError::Sqlite`].
    pub fn remove_torrent(&mut self, id: TorrentId) -> Result<(), CatalogError> {
        self.remove_torrent_reported(id, &[], 0)
    }

    /// [`Catalog::remove_torrent`], queueing `events` (the `torrent.removed` webhook events)
    /// in the outbox in the removal's own transaction (due at `now_ms`).
    ///
    /// # Errors
    /// As [`Catalog::remove_torrent`]; [`CatalogError::TooLong`] for an event out of bounds
    /// (nothing is removed).
    pub fn remove_torrent_reported(
        &mut self,
        id: TorrentId,
        events: &[super::WebhookEvent],
        now_ms: i64,
    ) -> Result<(), CatalogError> {
        let tx = self.write()?;
        let n = tx
            .prepare_cached("DELETE FROM torrents WHERE id = ?1")?
            .execute([id.0])?;
        if n == 0 {
            return Err(CatalogError::NoSuchTorrent { id });
        }
        super::outbox::enqueue_in(&tx, events, now_ms)?;
        tx.commit()?;
        Ok(())
    }

    /// Sets a torrent's state. `reason` is required for [`State::MissingData`] and
    /// [`State::Error`] (cut to [`MAX_STATE_REASON_LEN`] bytes) and refused for the others.
    ///
    /// # Errors
    /// [`CatalogError::Invalid`] for a reason given or missing against the state;
    /// [`CatalogError::NoSuchTorrent`]; [`CatalogError::DiskFull`]; [`CatalogError::Sqlite`].
    pub fn set_state(
        &mut self,
        id: TorrentId,
        state: State,
        reason: Option<&str>,
    ) -> Result<(), CatalogError> {
        check_reason(state, reason.is_some())?;
        let reason = reason.map(clean_reason);
        let tx = self.write()?;
        let n = tx
            .prepare_cached("UPDATE torrents SET state = ?2, state_reason = ?3 WHERE id = ?1")?
            .execute(params![id.0, state.as_str(), reason])?;
        if n == 0 {
            return Err(CatalogError::NoSuchTorrent { id });
        }
        tx.commit()?;
        Ok(())
    }

    /// Every torrent, by id, without metainfo.
    ///
    /// # Errors
    /// [`CatalogError::Corrupt`] for a row this binary cannot read; [`CatalogError::Sqlite`].
    pub fn list_torrents(&self) -> Result<Vec<TorrentSummary>, CatalogError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM torrents t LEFT JOIN stats s ON s.torrent_id = t.id \
             ORDER BY t.id"
        ))?;
        let rows = stmt.query_map([], summary_from_row)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row??);
        }
        Ok(out)
    }

    /// One torrent, without metainfo.
    ///
    /// # Errors
    /// [`CatalogError::NoSuchTorrent`]; [`CatalogError::Corrupt`]; [`CatalogError::Sqlite`].
    pub fn torrent(&self, id: TorrentId) -> Result<TorrentSummary, CatalogError> {
        self.summary_where("t.id = ?1", &id.0)?
            .ok_or(CatalogError::NoSuchTorrent { id })
    }

    /// Who added torrent `id` (its owner: a token, client or Nostr public key id; `None` for the
    /// operator) and when (seconds since the Unix epoch): what a Blossom blob descriptor and
    /// list show.
    ///
    /// # Errors
    /// [`CatalogError::NoSuchTorrent`]; [`CatalogError::Sqlite`].
    pub fn owner_and_added_at(&self, id: TorrentId) -> Result<(Option<String>, i64), CatalogError> {
        self.conn
            .query_row(
                "SELECT owner, added_at FROM torrents WHERE id = ?1",
                [id.0],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?
            .ok_or(CatalogError::NoSuchTorrent { id })
    }

    /// The torrent whose swarm is `info_hash` (a peer's handshake, an announce): its SHA-1
    /// info-hash, or its SHA-256 one truncated to 20 bytes (BEP 52); `None` if none.
    ///
    /// # Errors
    /// [`CatalogError::Corrupt`]; [`CatalogError::Sqlite`].
    pub fn by_info_hash(
        &self,
        info_hash: &[u8; 20],
    ) -> Result<Option<TorrentSummary>, CatalogError> {
        if let Some(found) = self.summary_where("t.info_hash_v1 = ?1", info_hash)? {
            return Ok(Some(found));
        }
        self.summary_where("substr(t.info_hash_v2, 1, 20) = ?1", info_hash)
    }

    /// The torrent with SHA-256 info-hash `info_hash` (BEP 52); `None` if none.
    ///
    /// # Errors
    /// [`CatalogError::Corrupt`]; [`CatalogError::Sqlite`].
    pub fn by_info_hash_v2(
        &self,
        info_hash: &[u8; 32],
    ) -> Result<Option<TorrentSummary>, CatalogError> {
        self.summary_where("t.info_hash_v2 = ?1", info_hash)
    }

    fn summary_where(
        &self,
        condition: &'static str,
        param: &dyn rusqlite::ToSql,
    ) -> Result<Option<TorrentSummary>, CatalogError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM torrents t LEFT JOIN stats s ON s.torrent_id = t.id \
             WHERE {condition}"
        ))?;
        match stmt.query_row([param], summary_from_row).optional()? {
            Some(summary) => Ok(Some(summary?)),
            None => Ok(None),
        }
    }

    /// The bencoded info dictionary of a torrent, exactly as in its `.torrent` (what BEP 9
    /// `ut_metadata` serves), read with incremental BLOB I/O: only these bytes reach the heap.
    ///
    /// # Errors
    /// [`CatalogError::NoSuchTorrent`]; [`CatalogError::Sqlite`].
    pub fn info_dict(&self, id: TorrentId) -> Result<Vec<u8>, CatalogError> {
        let (offset, len) = self.info_location(id)?;
        self.read_metainfo(id, offset, len)
    }

    /// `len` bytes of a torrent's info dictionary from `offset` (one BEP 9 metadata piece:
    /// `offset` = piece × 16 KiB, `len` up to 16 KiB, shorter for the last piece).
    ///
    /// # Errors
    /// [`CatalogError::TooLong`] for `len` over [`MAX_INFO_SLICE_LEN`];
    /// [`CatalogError::Invalid`] for a range past the end of the dictionary;
    /// [`CatalogError::NoSuchTorrent`]; [`CatalogError::Sqlite`].
    pub fn info_dict_slice(
        &self,
        id: TorrentId,
        offset: usize,
        len: usize,
    ) -> Result<Vec<u8>, CatalogError> {
        if len > MAX_INFO_SLICE_LEN {
            return Err(CatalogError::TooLong {
                field: "info slice",
                len,
                limit: MAX_INFO_SLICE_LEN,
            });
        }
        let (info_offset, info_len) = self.info_location(id)?;
        if offset.checked_add(len).is_none_or(|end| end > info_len) {
            return Err(CatalogError::Invalid {
                field: "info slice",
                reason: "past the end of the info dictionary",
            });
        }
        self.read_metainfo(id, info_offset + offset, len)
    }

    /// The whole `.torrent` of a torrent, as it was added.
    ///
    /// # Errors
    /// [`CatalogError::NoSuchTorrent`]; [`CatalogError::Sqlite`].
    pub fn metainfo(&self, id: TorrentId) -> Result<Vec<u8>, CatalogError> {
        self.conn
            .prepare_cached("SELECT metainfo FROM torrents WHERE id = ?1")?
            .query_row([id.0], |row| row.get(0))
            .optional()?
            .ok_or(CatalogError::NoSuchTorrent { id })
    }

    /// Offset and length of a torrent's info dictionary in its metainfo, in bytes.
    fn info_location(&self, id: TorrentId) -> Result<(usize, usize), CatalogError> {
        let (offset, len): (i64, i64) = self
            .conn
            .prepare_cached("SELECT info_offset, info_len FROM torrents WHERE id = ?1")?
            .query_row([id.0], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?
            .ok_or(CatalogError::NoSuchTorrent { id })?;
        let corrupt = || CatalogError::Corrupt {
            what: "info location",
        };
        Ok((
            usize::try_from(offset).map_err(|_| corrupt())?,
            usize::try_from(len).map_err(|_| corrupt())?,
        ))
    }

    /// Reads `len` bytes of a torrent's metainfo from `offset` without loading the rest.
    fn read_metainfo(
        &self,
        id: TorrentId,
        offset: usize,
        len: usize,
    ) -> Result<Vec<u8>, CatalogError> {
        let blob = self
            .conn
            .blob_open("main", "torrents", "metainfo", id.0, true)?;
        let mut buf = vec![0u8; len];
        blob.read_at_exact(&mut buf, offset)?;
        Ok(buf)
    }

    /// The files of a torrent, in `Info::files` order.
    ///
    /// # Errors
    /// [`CatalogError::NoSuchTorrent`]; [`CatalogError::Corrupt`]; [`CatalogError::Sqlite`].
    pub fn files(&self, id: TorrentId) -> Result<Vec<FileRecord>, CatalogError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT idx, path, length, padding, mtime_ns, sha256 FROM files \
             WHERE torrent_id = ?1 ORDER BY idx",
        )?;
        let rows = stmt.query_map([id.0], |row| {
            let index: i64 = row.get(0)?;
            let sha256: Option<Vec<u8>> = row.get(5)?;
            Ok((
                index,
                FileRecord {
                    index: 0,
                    path: row.get(1)?,
                    length: from_sql_u64(row.get(2)?),
                    padding: row.get(3)?,
                    mtime_ns: row.get(4)?,
                    sha256: None,
                },
                sha256,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (index, mut file, sha256) = row?;
            let corrupt = |what| CatalogError::Corrupt { what };
            file.index = u32::try_from(index).map_err(|_| corrupt("file index"))?;
            file.sha256 = sha256
                .map(<[u8; 32]>::try_from)
                .transpose()
                .map_err(|_| corrupt("sha256 length"))?;
            out.push(file);
        }
        if out.is_empty() {
            self.info_location(id)?; // NoSuchTorrent, or a torrent without files
        }
        Ok(out)
    }

    /// Records the outcome of checking files of a torrent (after its pieces verified, or one
    /// failed), all in one transaction: the next start resumes a file whose length and mtime
    /// still match without hashing it ([`resume`](super::resume)).
    ///
    /// # Errors
    /// [`CatalogError::NoSuchFile`] (nothing is recorded); [`CatalogError::DiskFull`];
    /// [`CatalogError::Sqlite`].
    pub fn record_file_checks(
        &mut self,
        id: TorrentId,
        checks: &[FileCheck],
    ) -> Result<(), CatalogError> {
        let tx = self.write()?;
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE files SET
                     sha256 = CASE WHEN ?4 IS NOT NULL THEN ?4
                                   WHEN mtime_ns IS ?3 THEN sha256 END,
                     mtime_ns = ?3
                 WHERE torrent_id = ?1 AND idx = ?2",
            )?;
            for check in checks {
                let sha256 = check.sha256.as_ref().map(<[u8; 32]>::as_slice);
                let n = stmt.execute(params![id.0, check.index, check.mtime_ns, sha256])?;
                if n == 0 {
                    return Err(CatalogError::NoSuchFile {
                        id,
                        index: check.index,
                    });
                }
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// Inserts a validated torrent, its files and its statistics row inside the transaction open
/// on `tx`.
pub(super) fn insert_torrent(
    tx: &Connection,
    torrent: &NewTorrent,
) -> Result<TorrentId, CatalogError> {
    let v1 = torrent.info_hash_v1.map(|h| h.0);
    let v2 = torrent.info_hash_v2.map(|h| h.0);
    // Under the write lock (BEGIN IMMEDIATE), so no other writer can add it in between; the
    // UNIQUE constraints are the second line of defence.
    let existing: Option<i64> = tx
        .prepare_cached("SELECT id FROM torrents WHERE info_hash_v1 = ?1 OR info_hash_v2 = ?2")?
        .query_row(
            params![
                v1.as_ref().map(<[u8; 20]>::as_slice),
                v2.as_ref().map(<[u8; 32]>::as_slice)
            ],
            |row| row.get(0),
        )
        .optional()?;
    if let Some(id) = existing {
        return Err(CatalogError::Exists { id: TorrentId(id) });
    }
    let data_path = data_path_text(&torrent.data_path)?;
    let reason = torrent.state_reason.as_deref().map(clean_reason);
    let size: u64 = torrent
        .files
        .iter()
        .filter(|f| !f.padding)
        .fold(0u64, |a, f| a.saturating_add(f.length));
    if let Some(owner) = &torrent.owner {
        let (count, bytes): (i64, i64) = tx
            .prepare_cached(
                "SELECT count(*), coalesce(sum(size_bytes), 0) FROM torrents WHERE owner = ?1",
            )?
            .query_row([&owner.id], |row| Ok((row.get(0)?, row.get(1)?)))?;
        let (count, bytes) = (
            u64::try_from(count).unwrap_or(0),
            u64::try_from(bytes).unwrap_or(0),
        );
        if owner.max_torrents.is_some_and(|max| count >= max) {
            return Err(CatalogError::QuotaExceeded {
                what: "torrents",
                limit: owner.max_torrents.unwrap_or(0),
            });
        }
        if owner
            .max_bytes
            .is_some_and(|max| bytes.saturating_add(size) > max)
        {
            return Err(CatalogError::QuotaExceeded {
                what: "bytes",
                limit: owner.max_bytes.unwrap_or(0),
            });
        }
    }
    tx.prepare_cached(
        "INSERT INTO torrents (info_hash_v1, info_hash_v2, name, metainfo, info_offset, info_len,
                               data_path, added_at, state, state_reason, owner, size_bytes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        v1.as_ref().map(<[u8; 20]>::as_slice),
        v2.as_ref().map(<[u8; 32]>::as_slice),
        torrent.name,
        torrent.metainfo,
        to_sql_u64(torrent.info_offset as u64),
        to_sql_u64(torrent.info_len as u64),
        data_path,
        torrent.added_at,
        torrent.state.as_str(),
        reason,
        torrent.owner.as_ref().map(|o| o.id.as_str()),
        to_sql_u64(size),
    ])?;
    let id = tx.last_insert_rowid();
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO files (torrent_id, idx, path, length, padding, mtime_ns, sha256,
                                pieces_root)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for (index, file) in torrent.files.iter().enumerate() {
            stmt.execute(params![
                id,
                to_sql_u64(index as u64),
                file.path,
                to_sql_u64(file.length),
                file.padding,
                file.mtime_ns,
                file.sha256.as_ref().map(<[u8; 32]>::as_slice),
                file.pieces_root.as_ref().map(<[u8; 32]>::as_slice),
            ])?;
        }
    }
    tx.prepare_cached("INSERT INTO stats (torrent_id) VALUES (?1)")?
        .execute([id])?;
    Ok(TorrentId(id))
}
