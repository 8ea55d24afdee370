//! Finding content by any of its identities (issue 14, "one content identity"): a torrent's v1
//! or v2 info-hash, a file's SHA-256, or a file's BEP 52 `pieces root`.

use rusqlite::params;

use super::torrents::{SUMMARY_COLUMNS, summary_from_row};
use super::{Catalog, CatalogError, TorrentSummary};

/// Most matches one lookup returns: the same file may be in several torrents (a v1 and a v2
/// torrent of it, say), but an answer naming thousands is no longer a lookup.
pub const MAX_LOOKUP_MATCHES: usize = 64;

/// Which identity a [`LookupMatch`] was found by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchedBy {
    /// The torrent's SHA-1 info-hash (BEP 3).
    InfoHashV1,
    /// The torrent's SHA-256 info-hash (BEP 52), whole (32 bytes).
    InfoHashV2,
    /// The first 20 bytes of the SHA-256 info-hash: the v2 swarm's name (BEP 52).
    SwarmHashV2,
    /// A file's SHA-256.
    Sha256,
    /// A file's BEP 52 `pieces root`.
    PiecesRoot,
}

impl MatchedBy {
    /// The name used in the API (`info_hash_v1`, `info_hash_v2`, `swarm_hash_v2`, `sha256`,
    /// `pieces_root`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InfoHashV1 => "info_hash_v1",
            Self::InfoHashV2 => "info_hash_v2",
            Self::SwarmHashV2 => "swarm_hash_v2",
            Self::Sha256 => "sha256",
            Self::PiecesRoot => "pieces_root",
        }
    }
}

/// One file a lookup found, with its identities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupFile {
    /// Index in `Info::files`.
    pub index: u32,
    /// Path below the torrent's data path (`/`-joined; empty for a single-file torrent).
    pub path: String,
    /// Length in bytes.
    pub length: u64,
    /// Its SHA-256, when known.
    pub sha256: Option<[u8; 32]>,
    /// Its BEP 52 `pieces root`, for v2 and hybrid torrents.
    pub pieces_root: Option<[u8; 32]>,
}

/// One answer of [`Catalog::lookup`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupMatch {
    /// How it was found.
    pub matched_by: MatchedBy,
    /// The torrent.
    pub torrent: TorrentSummary,
    /// The file, for a match by file identity (`None` for a match by info-hash).
    pub file: Option<LookupFile>,
}

impl Catalog {
    /// The torrents and files `hash` names: 20 bytes are a v1 info-hash or a v2 swarm hash;
    /// 32 bytes a v2 info-hash, a file's SHA-256 or a file's `pieces root`. At most
    /// [`MAX_LOOKUP_MATCHES`], info-hash matches first, then files by torrent and index.
    ///
    /// # Errors
    /// [`CatalogError::Invalid`] for a hash of another length; [`CatalogError::Corrupt`];
    /// [`CatalogError::Sqlite`].
    pub fn lookup(&self, hash: &[u8]) -> Result<Vec<LookupMatch>, CatalogError> {
        let limit = i64::try_from(MAX_LOOKUP_MATCHES).unwrap_or(i64::MAX);
        let mut out = Vec::new();
        let by_torrent: &[(MatchedBy, &str)] = match hash.len() {
            20 => &[
                (MatchedBy::InfoHashV1, "t.info_hash_v1 = ?1"),
                (MatchedBy::SwarmHashV2, "substr(t.info_hash_v2, 1, 20) = ?1"),
            ],
            32 => &[(MatchedBy::InfoHashV2, "t.info_hash_v2 = ?1")],
            _ => {
                return Err(CatalogError::Invalid {
                    field: "hash",
                    reason: "a lookup takes 20 bytes (SHA-1) or 32 (SHA-256)",
                });
            }
        };
        for (matched_by, predicate) in by_torrent {
            let mut stmt = self.conn.prepare_cached(&format!(
                "SELECT {SUMMARY_COLUMNS} FROM torrents t LEFT JOIN stats s \
                 ON s.torrent_id = t.id WHERE {predicate} ORDER BY t.id LIMIT ?2"
            ))?;
            for row in stmt.query_map(params![hash, limit], summary_from_row)? {
                out.push(LookupMatch {
                    matched_by: *matched_by,
                    torrent: row??,
                    file: None,
                });
            }
        }
        if hash.len() == 32 {
            for (matched_by, column) in [
                (MatchedBy::Sha256, "sha256"),
                (MatchedBy::PiecesRoot, "pieces_root"),
            ] {
                let mut stmt = self.conn.prepare_cached(&format!(
                    "SELECT {SUMMARY_COLUMNS}, f.idx, f.path, f.length, f.sha256, f.pieces_root \
                     FROM files f JOIN torrents t ON t.id = f.torrent_id \
                     LEFT JOIN stats s ON s.torrent_id = t.id \
                     WHERE f.{column} = ?1 ORDER BY t.id, f.idx LIMIT ?2"
                ))?;
                let rows = stmt.query_map(params![hash, limit], |row| {
                    let summary = summary_from_row(row)?;
                    let n = SUMMARY_COLUMNS.split(',').count();
                    let index: i64 = row.get(n)?;
                    let path: String = row.get(n + 1)?;
                    let length: i64 = row.get(n + 2)?;
                    let sha256: Option<Vec<u8>> = row.get(n + 3)?;
                    let root: Option<Vec<u8>> = row.get(n + 4)?;
                    Ok((summary, index, path, length, sha256, root))
                })?;
                for row in rows {
                    let (summary, index, path, length, sha256, root) = row?;
                    let corrupt = |what| CatalogError::Corrupt { what };
                    let hash32 = |v: Option<Vec<u8>>, what| {
                        v.map(<[u8; 32]>::try_from)
                            .transpose()
                            .map_err(|_| corrupt(what))
                    };
                    out.push(LookupMatch {
                        matched_by,
                        torrent: summary?,
                        file: Some(LookupFile {
                            index: u32::try_from(index).map_err(|_| corrupt("file index"))?,
                            path,
                            length: u64::try_from(length).map_err(|_| corrupt("file length"))?,
                            sha256: hash32(sha256, "sha256 length")?,
                            pieces_root: hash32(root, "pieces_root length")?,
                        }),
                    });
                }
            }
        }
        out.truncate(MAX_LOOKUP_MATCHES);
        Ok(out)
    }
}
