//! v1 metainfo (.torrent) files: BEP 3, with `announce-list` (BEP 12), `url-list` (BEP 19) and
//! `private` (BEP 27).
//!
//! The info-hash is always the SHA-1 of the exact bytes of the `info` dictionary as they stand in the
//! file, never of a re-encoding. CONTRACT SKELETON: bodies are filled in by the wire work.

use bytes::Bytes;

use crate::InfoHash;

/// One file of a torrent, in the order the `info` dictionary lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Path components below the torrent's `name`, each validated (no `..`, `.`, empty, separator,
    /// NUL or absolute form). Empty for a single-file torrent, whose file is `name` itself.
    pub path: Vec<String>,
    /// Length in bytes.
    pub length: u64,
}

/// The `info` dictionary of a v1 torrent (BEP 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// Suggested file name (single-file) or directory name (multi-file); validated as one path
    /// component.
    pub name: String,
    /// Bytes per piece (the last piece may be shorter).
    pub piece_length: u32,
    /// SHA-1 of every piece, in order.
    pub pieces: Vec<[u8; 20]>,
    /// Files in `info` order. A single-file torrent has exactly one entry with an empty `path`.
    pub files: Vec<FileEntry>,
    /// True when the torrent uses the multi-file form (`files` key), even with one file.
    pub multi_file: bool,
    /// BEP 27 `private` flag.
    pub private: bool,
}

/// A parsed .torrent file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metainfo {
    /// Parsed `info` dictionary.
    pub info: Info,
    /// SHA-1 of [`Metainfo::info_bytes`].
    pub info_hash: InfoHash,
    /// The raw bencoded `info` dictionary exactly as it stands in the file (also what BEP 9
    /// `ut_metadata` serves).
    pub info_bytes: Bytes,
    /// `announce` URL (BEP 3).
    pub announce: Option<String>,
    /// `announce-list` tiers (BEP 12).
    pub announce_list: Vec<Vec<String>>,
    /// `url-list` webseeds (BEP 19); a single string is read as a one-element list.
    pub url_list: Vec<String>,
    /// `comment`.
    pub comment: Option<String>,
    /// `created by`.
    pub created_by: Option<String>,
    /// `creation date`, seconds since the Unix epoch.
    pub creation_date: Option<i64>,
}

impl Info {
    /// Sum of all file lengths in bytes.
    #[must_use]
    pub fn total_length(&self) -> u64 {
        self.files.iter().map(|f| f.length).sum()
    }

    /// Number of pieces.
    #[must_use]
    pub fn piece_count(&self) -> u32 {
        u32::try_from(self.pieces.len()).unwrap_or(u32::MAX)
    }

    /// Length in bytes of piece `index` (the last one may be short); `None` when out of range.
    #[must_use]
    pub fn piece_len(&self, index: u32) -> Option<u32> {
        let count = self.piece_count();
        if index >= count {
            return None;
        }
        let pl = u64::from(self.piece_length);
        let start = u64::from(index) * pl;
        let len = self.total_length().saturating_sub(start).min(pl);
        u32::try_from(len).ok()
    }
}

/// Why a .torrent was refused. Variants name what the file did wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetainfoError {
    /// The bencode itself is malformed or over a limit.
    #[error("bad bencode: {0}")]
    Bencode(#[from] crate::bencode::DecodeError),
    /// A required key is missing or has the wrong type.
    #[error("missing or mistyped key `{key}`")]
    BadKey {
        /// The key, e.g. `"info.piece length"`.
        key: &'static str,
    },
    /// A file path is unsafe or malformed; carries the offending path for the error message.
    #[error("unsafe file path {path:?}: {reason}")]
    BadPath {
        /// Lossy rendering of the path components.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A numeric field is out of its allowed range.
    #[error("`{field}` out of range: got {got}")]
    OutOfRange {
        /// Field name.
        field: &'static str,
        /// Value received.
        got: i128,
    },
}

impl Metainfo {
    /// Parses a .torrent file.
    ///
    /// # Errors
    /// [`MetainfoError`] for malformed bencode, missing keys, unsafe paths or out-of-range numbers.
    pub fn from_bytes(_bytes: &[u8]) -> Result<Self, MetainfoError> {
        todo!("wire work")
    }

    /// Builds a metainfo from a freshly created `info` (encoded canonically with [`Info::encode`]).
    #[must_use]
    pub fn new(_info: Info, _announce_list: Vec<Vec<String>>, _url_list: Vec<String>) -> Self {
        todo!("wire work")
    }

    /// Bencodes the whole .torrent, splicing in [`Metainfo::info_bytes`] unchanged so the
    /// info-hash is preserved.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        todo!("wire work")
    }
}

impl Info {
    /// Canonical bencoding of this `info` dictionary, with exactly mktorrent's keys (`files` or
    /// `length`, `name`, `piece length`, `pieces`, and `private` only when set), keys sorted.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        todo!("wire work")
    }
}
