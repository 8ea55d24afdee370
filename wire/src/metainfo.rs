//! Metainfo (.torrent) files: BEP 3, with `announce-list` (BEP 12), `url-list` (BEP 19) and
//! `private` (BEP 27); v2 and hybrid torrents (BEP 52) are parsed by [`crate::metainfo_v2`] from
//! [`Metainfo::from_bytes`] too, and their v2 side is [`Metainfo::v2`].
//!
//! The info-hash is always the SHA-1 of the exact bytes of the `info` dictionary as they stand in the
//! file, never of a re-encoding (for a v2-only torrent, which has no v1 side,
//! [`Metainfo::info_hash`] is the v2 info-hash truncated to 20 bytes, see [`crate::metainfo_v2`]).
//!
//! # What is accepted
//!
//! Bencode is read with the lenient decoder of [`crate::bencode`] (unsorted and duplicate keys
//! accepted, first occurrence wins, as libtorrent). On top of it:
//!
//! - Required: `info` (a dictionary) with `name`, `piece length` (1 ..= [`MAX_PIECE_LENGTH`],
//!   a power of two not required), `pieces` (a multiple of 20 bytes, exactly
//!   `ceil(total / piece length)` hashes, at most [`MAX_PIECES`]) and either `files` (a list, then
//!   multi-file, even with one entry) or `length` (single-file).
//! - `name.utf-8` and `path.utf-8` are preferred over `name` and `path` when present and valid
//!   UTF-8 (as libtorrent). A name or path that is not UTF-8 without such a variant is refused.
//! - Every path component and the `name` pass [`validate_component`] (security rules M1/M5: no
//!   empty, `.`, `..`, separator, NUL, control, bidi or zero-width character, Windows drive form,
//!   or more than [`MAX_PATH_COMPONENT_LEN`] bytes), a path has 1 ..= [`MAX_PATH_DEPTH`]
//!   components, there are at most [`MAX_FILES`] files, no two files have the same path and no
//!   file is also used as a directory.
//! - File lengths are non-negative, summed with checked arithmetic, and the total is
//!   1 ..= [`MAX_TOTAL_LENGTH`] bytes (zero-length files are fine, an all-empty torrent is not).
//! - BEP 47 padding files (`attr` containing `p`) are kept as ordinary entries (their bytes are
//!   zeros). Files whose path is `.pad/<their length>` (libtorrent's padding files: every one of a
//!   length has that path) are exempt from the distinct-path rule. Other `attr` flags, including
//!   symlinks (`l`) and their `symlink path`, are ignored: such an entry is an ordinary file of
//!   its `length`, so no symlink is ever created or followed.
//! - `private` is set when it is a non-zero integer (libtorrent tests `!= 0`; BEP 27 writes 1).
//! - Optional keys of the wrong type (`announce`, `announce-list`, `url-list`, `comment`,
//!   `created by`, `creation date`) are ignored rather than fatal, as in libtorrent. Tracker and
//!   webseed URLs are trimmed of surrounding whitespace; empty ones and empty tiers are dropped.
//!   When `announce-list` gives no tracker, `announce` becomes the only tier (as libtorrent).
//! - `meta version` (BEP 52) decides the format, as in libtorrent: 2 is a v2 or hybrid torrent
//!   ([`crate::metainfo_v2`]), above 2 is refused ([`MetainfoError::UnsupportedMetaVersion`]),
//!   1 requires sorted unique keys throughout `info`; a `file tree` without `meta version` 2 is
//!   refused ([`MetainfoError::FileTreeWithoutMetaVersion`]). Without `meta version`, everything
//!   above applies unchanged.

use sha1::{Digest as _, Sha1};

use crate::bencode::{self, Dict, Value};
use crate::limits::{
    MAX_FILES, MAX_PATH_COMPONENT_LEN, MAX_PATH_DEPTH, MAX_PIECE_LENGTH, MAX_PIECES,
    MAX_TORRENT_LEN, MAX_TOTAL_LENGTH,
};
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
    /// Parsed `info` dictionary, as v1 sees it: the piece space of the peer protocol. For a hybrid
    /// torrent this is its v1 side; for a v2-only torrent a view synthesized from the `file tree`
    /// with placeholder piece hashes (see [`crate::metainfo_v2`]).
    pub info: Info,
    /// SHA-1 of [`Metainfo::info_bytes`]; for a v2-only torrent, the SHA-256 info-hash truncated
    /// to 20 bytes (BEP 52 §infohash: what trackers, the DHT and the handshake use).
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
    /// The BEP 52 side of a v2-only or hybrid torrent (`meta version` 2): file tree, SHA-256
    /// info-hash and piece layers; `None` for a v1 torrent.
    pub v2: Option<crate::metainfo_v2::MetainfoV2>,
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
    Bencode(#[from] bencode::DecodeError),
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
    /// The file is larger than [`MAX_TORRENT_LEN`]; it was not decoded.
    #[error("torrent file of {len} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// File length in bytes.
        len: usize,
        /// [`MAX_TORRENT_LEN`].
        limit: usize,
    },
    /// The top-level value is not a dictionary.
    #[error("torrent file is not a bencoded dictionary")]
    NotADictionary,
    /// `pieces` is not a whole number of 20-byte SHA-1 hashes.
    #[error("`info.pieces` is {len} bytes, not a multiple of 20")]
    PiecesNotMultipleOf20 {
        /// Length of `pieces` in bytes.
        len: usize,
    },
    /// The number of piece hashes does not match `ceil(total length / piece length)`.
    #[error("`info.pieces` holds {got} hashes but the files need {expected}")]
    PieceCountMismatch {
        /// Hashes in `pieces`.
        got: u64,
        /// `ceil(total length / piece length)`.
        expected: u64,
    },
    /// A multi-file torrent whose `files` list (or a v2 torrent whose `file tree`) is empty.
    #[error("`info.files` is empty")]
    EmptyFileList,
    /// `meta version` is newer than BEP 52's 2 (BEP 52: implementations must check it first).
    #[error("`info.meta version` {got} is newer than this parser supports (2)")]
    UnsupportedMetaVersion {
        /// The `meta version` found.
        got: i64,
    },
    /// A dictionary inside a v2 (or `meta version` 1) `info` has unsorted or duplicate keys;
    /// libtorrent refuses these (BEP 52 §infohash: no decode-encode round trip on invalid data).
    #[error("`info` of a v2 torrent has unsorted or duplicate dictionary keys")]
    NotCanonical,
    /// A `file tree` in a torrent without `meta version` 2 (libtorrent refuses it).
    #[error("`info.file tree` without `meta version` 2")]
    FileTreeWithoutMetaVersion,
    /// A v2 `file tree` node is malformed (BEP 52 §File tree layout).
    #[error("bad file tree at {path:?}: {reason}")]
    BadFileTree {
        /// Lossy rendering of the path of the node.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An entry of `piece layers` is malformed or does not match its file (BEP 52 §metainfo
    /// files: "A torrent is not valid if ... the contained hashes do not match the merkle roots
    /// or are not from the correct layer").
    #[error("bad `piece layers`: {reason}")]
    BadPieceLayer {
        /// What is wrong.
        reason: &'static str,
    },
    /// The v1 and v2 sides of a hybrid torrent describe different files or alignment (BEP 52
    /// §Upgrade Path; libtorrent's `torrent_inconsistent_files`).
    #[error("hybrid torrent's v1 and v2 sides differ: {reason}")]
    HybridMismatch {
        /// What differs.
        reason: &'static str,
    },
}

impl Metainfo {
    /// Parses a .torrent file (BEP 3, 12, 19, 27); the module documentation lists what is
    /// accepted.
    ///
    /// # Errors
    /// [`MetainfoError`] for a file over [`MAX_TORRENT_LEN`], malformed bencode, missing keys,
    /// unsafe paths or out-of-range numbers.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MetainfoError> {
        if bytes.len() > MAX_TORRENT_LEN {
            return Err(MetainfoError::TooLarge {
                len: bytes.len(),
                limit: MAX_TORRENT_LEN,
            });
        }
        let root = bencode::decode(bytes)?;
        let root = root.as_dict().ok_or(MetainfoError::NotADictionary)?;
        let info_entry = root
            .get_entry(b"info")
            .ok_or(MetainfoError::BadKey { key: "info" })?;
        let info_dict = info_entry
            .value
            .as_dict()
            .ok_or(MetainfoError::BadKey { key: "info" })?;
        let (info, info_hash, v2) = if crate::metainfo_v2::is_v2(info_dict)? {
            let (info, info_hash, v2) = crate::metainfo_v2::parse(root, info_entry)?;
            (info, info_hash, Some(v2))
        } else {
            (parse_info(info_dict)?, info_hash_of(info_entry.raw), None)
        };

        let announce = root.get(b"announce").and_then(url);
        let mut announce_list = root
            .get(b"announce-list")
            .map(parse_tiers)
            .unwrap_or_default();
        if announce_list.is_empty()
            && let Some(a) = &announce
        {
            announce_list.push(vec![a.clone()]);
        }
        let url_list = match root.get(b"url-list") {
            Some(Value::List(items)) => items.iter().filter_map(url).collect(),
            Some(v) => url(v).into_iter().collect(),
            None => Vec::new(),
        };
        let text = |utf8_key: &[u8], key: &[u8]| {
            root.get(utf8_key)
                .and_then(Value::as_str)
                .or_else(|| root.get(key).and_then(Value::as_str))
                .map(str::to_owned)
        };
        Ok(Self {
            info,
            info_hash,
            info_bytes: Bytes::copy_from_slice(info_entry.raw),
            announce,
            announce_list,
            url_list,
            comment: text(b"comment.utf-8", b"comment"),
            created_by: text(b"created by.utf-8", b"created by"),
            creation_date: root.get(b"creation date").and_then(Value::as_int),
            v2,
        })
    }

    /// Builds a metainfo from a freshly created `info` (encoded canonically with [`Info::encode`]).
    ///
    /// Tracker and webseed URLs are trimmed, empty ones and empty tiers dropped (as
    /// [`Metainfo::from_bytes`] does, so the result round-trips). `announce` is the first URL of
    /// the first tier, `created_by` is `seednode/<version>`, `comment` and `creation_date` are
    /// `None` (set the fields afterwards if wanted; wall time is the caller's).
    #[must_use]
    pub fn new(info: Info, announce_list: Vec<Vec<String>>, url_list: Vec<String>) -> Self {
        // Exact size: the encoder's buffer grows by doubling, and a seed keeps these bytes for
        // as long as it serves the torrent.
        let info_bytes = Bytes::from(info.encode().into_boxed_slice());
        let announce_list = clean_tiers(announce_list);
        Self {
            info_hash: info_hash_of(&info_bytes),
            info,
            info_bytes,
            announce: announce_list.first().and_then(|tier| tier.first()).cloned(),
            announce_list,
            url_list: url_list.into_iter().filter_map(|u| clean_url(&u)).collect(),
            comment: None,
            created_by: Some(CREATED_BY.to_owned()),
            creation_date: None,
            v2: None,
        }
    }

    /// The info dictionary's `pieces` string (BEP 3: the 20-byte SHA-1 hash of every piece,
    /// concatenated) as a zero-copy slice of [`Metainfo::info_bytes`], so a seed need not keep a
    /// second copy of the hashes; empty when the dictionary has none (v2-only, BEP 52).
    #[must_use]
    pub fn piece_hashes(&self) -> Bytes {
        match bencode::decode(&self.info_bytes) {
            Ok(Value::Dict(d)) => match d.get(b"pieces") {
                Some(Value::Bytes(p)) => self.info_bytes.slice_ref(p),
                _ => Bytes::new(),
            },
            _ => Bytes::new(),
        }
    }

    /// Bencodes the whole .torrent, splicing in [`Metainfo::info_bytes`] unchanged so the
    /// info-hash is preserved.
    ///
    /// Keys are written in canonical order: `announce`, `announce-list` (only when it says more
    /// than `announce` alone, i.e. more than one URL as mktorrent does), `comment`, `created by`,
    /// `creation date`, `info`, `piece layers` (v2 and hybrid torrents only, always, as
    /// libtorrent: one entry per distinct root of a file longer than one piece whose layer is
    /// known), `url-list` (a string for one webseed, a list for several, as mktorrent).
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        use bencode::{put_bytes, put_int};
        let mut out = Vec::with_capacity(self.info_bytes.len() + 512);
        out.push(b'd');
        if let Some(announce) = &self.announce {
            put_bytes(&mut out, b"announce");
            put_bytes(&mut out, announce.as_bytes());
        }
        let urls: usize = self.announce_list.iter().map(Vec::len).sum();
        let implied = urls == 1
            && self.announce.as_deref()
                == self
                    .announce_list
                    .first()
                    .and_then(|t| t.first())
                    .map(String::as_str);
        if urls > 0 && !implied {
            put_bytes(&mut out, b"announce-list");
            out.push(b'l');
            for tier in &self.announce_list {
                out.push(b'l');
                for u in tier {
                    put_bytes(&mut out, u.as_bytes());
                }
                out.push(b'e');
            }
            out.push(b'e');
        }
        if let Some(comment) = &self.comment {
            put_bytes(&mut out, b"comment");
            put_bytes(&mut out, comment.as_bytes());
        }
        if let Some(created_by) = &self.created_by {
            put_bytes(&mut out, b"created by");
            put_bytes(&mut out, created_by.as_bytes());
        }
        if let Some(date) = self.creation_date {
            put_bytes(&mut out, b"creation date");
            put_int(&mut out, date);
        }
        put_bytes(&mut out, b"info");
        out.extend_from_slice(&self.info_bytes);
        if let Some(v2) = &self.v2 {
            crate::metainfo_v2::put_piece_layers(&mut out, &v2.info.files, &v2.piece_layers);
        }
        match self.url_list.as_slice() {
            [] => {}
            [one] => {
                put_bytes(&mut out, b"url-list");
                put_bytes(&mut out, one.as_bytes());
            }
            many => {
                put_bytes(&mut out, b"url-list");
                out.push(b'l');
                for u in many {
                    put_bytes(&mut out, u.as_bytes());
                }
                out.push(b'e');
            }
        }
        out.push(b'e');
        out
    }
}

impl Info {
    /// Canonical bencoding of this `info` dictionary, with exactly mktorrent's keys (`files` or
    /// `length`, `name`, `piece length`, `pieces`, and `private` only when set), keys sorted.
    ///
    /// Byte-identical to mktorrent 1.1 for the same files (in the same order), name and piece
    /// length. Files are written in [`Info::files`] order; sorting them is the creator's job
    /// (mktorrent sorts by full path, byte order).
    ///
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        use bencode::{DictWriter, put_bytes, put_uint};
        let mut out = Vec::with_capacity(self.pieces.len() * 20 + self.files.len() * 64 + 128);
        let mut dict = DictWriter::new(&mut out);
        if self.multi_file {
            let files = dict.key(b"files");
            files.push(b'l');
            for file in &self.files {
                let mut f = DictWriter::new(files);
                put_uint(f.key(b"length"), file.length);
                let path = f.key(b"path");
                path.push(b'l');
                for c in &file.path {
                    put_bytes(path, c.as_bytes());
                }
                path.push(b'e');
                f.finish();
            }
            files.push(b'e');
        } else {
            put_uint(dict.key(b"length"), self.total_length());
        }
        put_bytes(dict.key(b"name"), self.name.as_bytes());
        put_uint(dict.key(b"piece length"), u64::from(self.piece_length));
        let pieces = dict.key(b"pieces");
        bencode::put_decimal(pieces, (self.pieces.len() * 20) as u64);
        pieces.push(b':');
        for hash in &self.pieces {
            pieces.extend_from_slice(hash);
        }
        if self.private {
            put_uint(dict.key(b"private"), 1);
        }
        dict.finish();
        out
    }
}

/// SHA-1 of a bencoded `info` dictionary: the v1 info-hash (BEP 3). Also what a BEP 9
/// `ut_metadata` download is checked against.
#[must_use]
pub fn info_hash_of(info_bytes: &[u8]) -> InfoHash {
    InfoHash(Sha1::digest(info_bytes).into())
}

/// Checks one path component (or a torrent `name`) against security rules M1/M5, returning what
/// is wrong with it.
///
/// Refused: empty, `.` or `..`, `/` or `\`, NUL or any other control character, bidi-override or
/// zero-width characters, a Windows drive prefix (`C:`), or more than [`MAX_PATH_COMPONENT_LEN`]
/// bytes.
///
/// # Errors
/// A short reason, used as [`MetainfoError::BadPath::reason`](MetainfoError::BadPath).
pub fn validate_component(component: &str) -> Result<(), &'static str> {
    if component.is_empty() {
        return Err("empty path component");
    }
    if component == "." || component == ".." {
        return Err("`.` or `..` path component");
    }
    if component.len() > MAX_PATH_COMPONENT_LEN {
        return Err("path component longer than 255 bytes");
    }
    for ch in component.chars() {
        match ch {
            '/' | '\\' => return Err("path separator inside a component"),
            '\0' => return Err("NUL byte in a path component"),
            c if c.is_control() => return Err("control character in a path component"),
            // Zero-width and bidi controls: they make a name display as another.
            '\u{061C}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}' => {
                return Err("bidi or zero-width character in a path component");
            }
            _ => {}
        }
    }
    let bytes = component.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        return Err("Windows drive prefix in a path component");
    }
    Ok(())
}

/// The `created by` value of [`Metainfo::new`] and [`Metainfo::new_v2`].
pub(crate) const CREATED_BY: &str = concat!("seednode/", env!("CARGO_PKG_VERSION"));

/// Tracker tiers trimmed, empty URLs and empty tiers dropped (as [`Metainfo::from_bytes`] reads
/// them).
pub(crate) fn clean_tiers(announce_list: Vec<Vec<String>>) -> Vec<Vec<String>> {
    announce_list
        .into_iter()
        .map(|tier| {
            tier.into_iter()
                .filter_map(|u| clean_url(&u))
                .collect::<Vec<_>>()
        })
        .filter(|tier| !tier.is_empty())
        .collect()
}

/// The validated `name` of an `info` dictionary, from `name.utf-8` when it is valid UTF-8.
pub(crate) fn parse_name(d: &Dict<'_>) -> Result<String, MetainfoError> {
    let name_value = d
        .get(b"name.utf-8")
        .filter(|v| v.as_str().is_some())
        .or_else(|| d.get(b"name"))
        .ok_or(MetainfoError::BadKey { key: "info.name" })?;
    let name_bytes = name_value
        .as_bytes()
        .ok_or(MetainfoError::BadKey { key: "info.name" })?;
    utf8_component(name_bytes, &[])
}

/// Parses a v1 `info` dictionary (also the v1 side of a hybrid torrent).
pub(crate) fn parse_info(d: &Dict<'_>) -> Result<Info, MetainfoError> {
    let name = parse_name(d)?;

    let piece_length =
        d.get(b"piece length")
            .and_then(Value::as_int)
            .ok_or(MetainfoError::BadKey {
                key: "info.piece length",
            })?;
    let piece_length = u32::try_from(piece_length)
        .ok()
        .filter(|&pl| pl > 0 && pl <= MAX_PIECE_LENGTH)
        .ok_or(MetainfoError::OutOfRange {
            field: "info.piece length",
            got: i128::from(piece_length),
        })?;

    let pieces_raw = d
        .get(b"pieces")
        .and_then(Value::as_bytes)
        .ok_or(MetainfoError::BadKey { key: "info.pieces" })?;
    if pieces_raw.len() % 20 != 0 {
        return Err(MetainfoError::PiecesNotMultipleOf20 {
            len: pieces_raw.len(),
        });
    }
    let piece_count = pieces_raw.len() / 20;
    if piece_count > MAX_PIECES as usize {
        return Err(MetainfoError::OutOfRange {
            field: "info.pieces (count)",
            got: piece_count as i128,
        });
    }

    let (files, multi_file) = match d.get(b"files") {
        Some(Value::List(list)) => (parse_files(list)?, true),
        _ => {
            let length = d
                .get(b"length")
                .and_then(Value::as_int)
                .ok_or(MetainfoError::BadKey { key: "info.length" })?;
            let length = file_length(length, "info.length")?;
            (
                vec![FileEntry {
                    path: Vec::new(),
                    length,
                }],
                false,
            )
        }
    };

    let mut total: u64 = 0;
    for f in &files {
        total = total
            .checked_add(f.length)
            .filter(|&t| t <= MAX_TOTAL_LENGTH)
            .ok_or(MetainfoError::OutOfRange {
                field: "info total length",
                got: i128::from(total) + i128::from(f.length),
            })?;
    }
    if total == 0 {
        return Err(MetainfoError::OutOfRange {
            field: "info total length",
            got: 0,
        });
    }
    let expected = total.div_ceil(u64::from(piece_length));
    let got = piece_count as u64;
    if got != expected {
        return Err(MetainfoError::PieceCountMismatch { got, expected });
    }

    let pieces = pieces_raw
        .chunks_exact(20)
        .map(|c| {
            let mut hash = [0u8; 20];
            hash.copy_from_slice(c);
            hash
        })
        .collect();
    let private = d
        .get(b"private")
        .and_then(Value::as_int)
        .is_some_and(|p| p != 0);
    Ok(Info {
        name,
        piece_length,
        pieces,
        files,
        multi_file,
        private,
    })
}

fn file_length(length: i64, field: &'static str) -> Result<u64, MetainfoError> {
    u64::try_from(length).map_err(|_| MetainfoError::OutOfRange {
        field,
        got: i128::from(length),
    })
}

fn parse_files(list: &[Value<'_>]) -> Result<Vec<FileEntry>, MetainfoError> {
    if list.len() > MAX_FILES {
        return Err(MetainfoError::OutOfRange {
            field: "info.files (count)",
            got: list.len() as i128,
        });
    }
    if list.is_empty() {
        return Err(MetainfoError::EmptyFileList);
    }
    let mut files = Vec::with_capacity(list.len());
    for entry in list {
        let d = entry.as_dict().ok_or(MetainfoError::BadKey {
            key: "info.files[]",
        })?;
        let length = d
            .get(b"length")
            .and_then(Value::as_int)
            .ok_or(MetainfoError::BadKey {
                key: "info.files[].length",
            })?;
        let length = file_length(length, "info.files[].length")?;
        files.push(FileEntry {
            path: parse_path(d)?,
            length,
        });
    }
    let not_padding: Vec<&FileEntry> = files.iter().filter(|f| !has_padding_path(f)).collect();
    check_distinct_paths(&not_padding)?;
    Ok(files)
}

/// True when a `files` entry has a BEP 47 `attr` containing `p` (a padding file).
pub(crate) fn is_bep47_padding(d: &Dict<'_>) -> bool {
    d.get(b"attr")
        .and_then(Value::as_bytes)
        .is_some_and(|attr| attr.contains(&b'p'))
}

/// True when the file's path is `.pad/<its length>`, the name libtorrent gives padding files
/// (BEP 47's recommendation) and the one storage reads as zeros. Such files may repeat (every
/// padding file of one length has this path), so the distinct-path rule skips them; it does not
/// look at `attr`, so that [`Info::encode`], which writes no `attr`, round-trips.
fn has_padding_path(f: &FileEntry) -> bool {
    matches!(f.path.as_slice(), [dir, n] if dir == ".pad" && *n == f.length.to_string())
}

/// The validated path of one `files` entry, from `path.utf-8` when it is a list of UTF-8 strings,
/// else from `path`.
fn parse_path(d: &Dict<'_>) -> Result<Vec<String>, MetainfoError> {
    let utf8_list = d
        .get(b"path.utf-8")
        .and_then(Value::as_list)
        .filter(|l| l.iter().all(|c| c.as_str().is_some()));
    let list = utf8_list
        .or_else(|| d.get(b"path").and_then(Value::as_list))
        .ok_or(MetainfoError::BadKey {
            key: "info.files[].path",
        })?;
    let raw: Vec<&[u8]> = list
        .iter()
        .map(|c| {
            c.as_bytes().ok_or(MetainfoError::BadKey {
                key: "info.files[].path[]",
            })
        })
        .collect::<Result<_, _>>()?;
    if raw.is_empty() {
        return Err(MetainfoError::BadPath {
            path: String::new(),
            reason: "empty path list",
        });
    }
    if raw.len() > MAX_PATH_DEPTH {
        return Err(MetainfoError::BadPath {
            path: render_path(&raw),
            reason: "path deeper than 100 components",
        });
    }
    raw.iter().map(|c| utf8_component(c, &raw)).collect()
}

/// Decodes and validates one component; `whole` is the full path for the error message (empty
/// for a `name`).
pub(crate) fn utf8_component(component: &[u8], whole: &[&[u8]]) -> Result<String, MetainfoError> {
    let shown = || {
        if whole.is_empty() {
            render_path(&[component])
        } else {
            render_path(whole)
        }
    };
    let s = std::str::from_utf8(component).map_err(|_| MetainfoError::BadPath {
        path: shown(),
        reason: "not valid UTF-8 (and no valid `.utf-8` variant)",
    })?;
    validate_component(s).map_err(|reason| MetainfoError::BadPath {
        path: shown(),
        reason,
    })?;
    Ok(s.to_owned())
}

/// Lossy `/`-joined rendering of a path for error messages, cut to 200 characters.
pub(crate) fn render_path(components: &[&[u8]]) -> String {
    const MAX_SHOWN_CHARS: usize = 200;
    let mut out = String::new();
    for (i, c) in components.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(&String::from_utf8_lossy(c));
        if out.chars().count() > MAX_SHOWN_CHARS {
            let cut: String = out.chars().take(MAX_SHOWN_CHARS).collect();
            return cut + "…";
        }
    }
    out
}

/// Refuses two files with the same path, or a file whose path is also a directory of another.
/// Sorted by components, a path that is a prefix of another sorts right before some path it
/// prefixes, so comparing neighbours finds every clash.
fn check_distinct_paths(files: &[&FileEntry]) -> Result<(), MetainfoError> {
    let mut paths: Vec<&[String]> = files.iter().map(|f| f.path.as_slice()).collect();
    paths.sort_unstable();
    for pair in paths.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if b.starts_with(a) {
            let reason = if a.len() == b.len() {
                "two files with the same path"
            } else {
                "a file is also used as a directory"
            };
            let raw: Vec<&[u8]> = a.iter().map(|c| c.as_bytes()).collect();
            return Err(MetainfoError::BadPath {
                path: render_path(&raw),
                reason,
            });
        }
    }
    Ok(())
}

/// The tiers of an `announce-list` (BEP 12): a list of lists of URLs. Non-list tiers, non-string
/// or empty URLs and empty tiers are skipped.
fn parse_tiers(value: &Value<'_>) -> Vec<Vec<String>> {
    let Some(tiers) = value.as_list() else {
        return Vec::new();
    };
    tiers
        .iter()
        .filter_map(Value::as_list)
        .map(|tier| tier.iter().filter_map(url).collect::<Vec<_>>())
        .filter(|tier| !tier.is_empty())
        .collect()
}

/// A URL string value, trimmed; `None` for non-strings, non-UTF-8 or empty.
fn url(value: &Value<'_>) -> Option<String> {
    value.as_str().and_then(clean_url)
}

fn clean_url(u: &str) -> Option<String> {
    let u = u.trim();
    (!u.is_empty()).then(|| u.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test-only bencode builder that keeps dictionary entries in the order given.
    enum B {
        I(i64),
        S(Vec<u8>),
        L(Vec<Self>),
        D(Vec<(&'static str, Self)>),
    }

    fn s(text: &str) -> B {
        B::S(text.as_bytes().to_vec())
    }

    fn path(components: &[&str]) -> B {
        B::L(components.iter().map(|c| s(c)).collect())
    }

    fn pieces(n: usize) -> B {
        B::S((0..n * 20).map(|i| i as u8).collect())
    }

    impl B {
        fn encode(&self, out: &mut Vec<u8>) {
            match self {
                Self::I(i) => bencode::put_int(out, *i),
                Self::S(b) => bencode::put_bytes(out, b),
                Self::L(items) => {
                    out.push(b'l');
                    items.iter().for_each(|i| i.encode(out));
                    out.push(b'e');
                }
                Self::D(entries) => {
                    out.push(b'd');
                    for (k, v) in entries {
                        bencode::put_bytes(out, k.as_bytes());
                        v.encode(out);
                    }
                    out.push(b'e');
                }
            }
        }

        fn bytes(&self) -> Vec<u8> {
            let mut out = Vec::new();
            self.encode(&mut out);
            out
        }
    }

    fn torrent(info: Vec<(&'static str, B)>) -> Vec<u8> {
        B::D(vec![
            ("announce", s("http://t.example/a")),
            ("info", B::D(info)),
        ])
        .bytes()
    }

    fn single(length: i64, piece_length: i64, n_pieces: usize) -> Vec<(&'static str, B)> {
        vec![
            ("length", B::I(length)),
            ("name", s("file.bin")),
            ("piece length", B::I(piece_length)),
            ("pieces", pieces(n_pieces)),
        ]
    }

    /// A multi-file torrent with 16 KiB pieces and as many piece hashes as the lengths need.
    fn multi(files: Vec<B>) -> Vec<u8> {
        let total: i64 = files
            .iter()
            .filter_map(|f| match f {
                B::D(entries) => entries.iter().find_map(|(k, v)| match v {
                    B::I(len) if *k == "length" => Some((*len).clamp(0, 1 << 20)),
                    _ => None,
                }),
                _ => None,
            })
            .sum();
        let n = usize::try_from(total.max(1)).unwrap().div_ceil(16384);
        torrent(vec![
            ("files", B::L(files)),
            ("name", s("dir")),
            ("piece length", B::I(16384)),
            ("pieces", pieces(n)),
        ])
    }

    fn file(length: i64, components: &[&str]) -> B {
        B::D(vec![("length", B::I(length)), ("path", path(components))])
    }

    fn bad_path_reason(bytes: &[u8]) -> &'static str {
        match Metainfo::from_bytes(bytes) {
            Err(MetainfoError::BadPath { reason, .. }) => reason,
            other => panic!("expected BadPath, got {other:?}"),
        }
    }

    fn sha1(bytes: &[u8]) -> [u8; 20] {
        Sha1::digest(bytes).into()
    }

    #[test]
    fn parses_single_file() {
        let m = Metainfo::from_bytes(&torrent(single(40_000, 16384, 3))).unwrap();
        assert_eq!(m.info.name, "file.bin");
        assert_eq!(
            m.info.files,
            [FileEntry {
                path: vec![],
                length: 40_000
            }]
        );
        assert!(!m.info.multi_file && !m.info.private);
        assert_eq!(m.info.piece_count(), 3);
        assert_eq!(m.info.piece_len(2), Some(40_000 - 2 * 16384));
        assert_eq!(m.announce.as_deref(), Some("http://t.example/a"));
        assert_eq!(m.announce_list, [["http://t.example/a"]]);
    }

    #[test]
    fn info_hash_is_sha1_of_raw_info_with_unsorted_keys() {
        // `name` before `length` and `pieces` before `piece length`: not canonical.
        let info = vec![
            ("name", s("x")),
            ("length", B::I(5)),
            ("pieces", pieces(1)),
            ("piece length", B::I(16384)),
        ];
        let raw_info = B::D(vec![
            ("name", s("x")),
            ("length", B::I(5)),
            ("pieces", pieces(1)),
            ("piece length", B::I(16384)),
        ])
        .bytes();
        let file = torrent(info);
        let m = Metainfo::from_bytes(&file).unwrap();
        assert_eq!(m.info_bytes, raw_info);
        assert_eq!(m.info_hash, InfoHash(sha1(&raw_info)));
        assert_ne!(
            m.info_hash,
            info_hash_of(&m.info.encode()),
            "re-encoding would change the hash"
        );
        let start = file
            .windows(raw_info.len())
            .position(|w| w == raw_info)
            .unwrap();
        assert_eq!(
            m.info_hash,
            InfoHash(sha1(&file[start..start + raw_info.len()]))
        );
    }

    #[test]
    fn duplicate_keys_accepted_first_wins() {
        let mut info = single(5, 16384, 1);
        info.push(("name", s("second")));
        let m = Metainfo::from_bytes(&torrent(info)).unwrap();
        assert_eq!(m.info.name, "file.bin");
        assert_eq!(m.info_hash, info_hash_of(&m.info_bytes));
    }

    #[test]
    fn parses_multi_file_with_padding_and_empty_files() {
        let pad = B::D(vec![
            ("attr", s("p")),
            ("length", B::I(16384 - 100)),
            ("path", path(&[".pad", "16284"])),
        ]);
        let m = Metainfo::from_bytes(&multi(vec![
            file(100, &["a", "b.txt"]),
            pad,
            file(0, &["empty"]),
            file(16384, &["c"]),
        ]))
        .unwrap();
        assert!(m.info.multi_file);
        assert_eq!(m.info.files.len(), 4);
        assert_eq!(m.info.files[1].path, [".pad", "16284"]);
        assert_eq!(m.info.total_length(), 32768);
    }

    #[test]
    fn repeated_padding_paths_accepted() {
        // libtorrent names every padding file of a length `.pad/<length>`.
        let pad = |n: i64| {
            B::D(vec![
                ("attr", s("p")),
                ("length", B::I(n)),
                ("path", path(&[".pad", &n.to_string()])),
            ])
        };
        let files = vec![
            file(100, &["a"]),
            pad(16284),
            file(100, &["b"]),
            pad(16284),
            file(5, &["c"]),
        ];
        let m = Metainfo::from_bytes(&multi(files)).unwrap();
        assert_eq!(m.info.files.len(), 5);
        // Re-encoded without `attr`, it still loads.
        let again = Metainfo::new(m.info.clone(), vec![], vec![]);
        assert_eq!(
            Metainfo::from_bytes(&again.to_bytes()).unwrap().info,
            m.info
        );
        // A `.pad/<N>` path whose N is not the file's length is an ordinary path.
        let fake = || {
            B::D(vec![
                ("length", B::I(3)),
                ("path", path(&[".pad", "16284"])),
            ])
        };
        assert_eq!(
            bad_path_reason(&multi(vec![fake(), fake()])),
            "two files with the same path"
        );
    }

    #[test]
    fn m1_unsafe_paths_rejected() {
        let cases: &[&[&str]] = &[
            &["..", "etc", "passwd"],
            &["a", "..", "..", "x"],
            &["/etc/x"],
            &["C:\\x"],
            &["C:x"],
            &["\\\\srv\\s"],
            &["a/b"],
            &["."],
            &[""],
            &["a\0b"],
            &["a\nb"],
            &["evil\u{202E}txt.exe"],
            &["zero\u{200B}width"],
        ];
        for &components in cases {
            let reason = bad_path_reason(&multi(vec![file(1, components)]));
            assert!(!reason.is_empty(), "{components:?}");
        }
        assert_eq!(
            bad_path_reason(&multi(vec![file(1, &[])])),
            "empty path list"
        );
    }

    #[test]
    fn m1_unsafe_name_rejected() {
        for name in ["..", ".", "", "a/b", "C:", "x\\y"] {
            let mut info = single(5, 16384, 1);
            info[1] = ("name", s(name));
            bad_path_reason(&torrent(info));
        }
    }

    #[test]
    fn m5_deep_or_long_paths_rejected() {
        let deep: Vec<&str> = vec!["d"; MAX_PATH_DEPTH + 1];
        assert_eq!(
            bad_path_reason(&multi(vec![file(1, &deep)])),
            "path deeper than 100 components"
        );
        let ok: Vec<&str> = vec!["d"; MAX_PATH_DEPTH];
        assert!(Metainfo::from_bytes(&multi(vec![file(1, &ok)])).is_ok());
        let long = "x".repeat(10_000);
        let err = Metainfo::from_bytes(&multi(vec![file(1, &[&long])])).unwrap_err();
        let MetainfoError::BadPath { path, reason } = err else {
            panic!("{err:?}")
        };
        assert_eq!(reason, "path component longer than 255 bytes");
        assert!(path.chars().count() <= 201, "error message stays short");
        let max = "x".repeat(MAX_PATH_COMPONENT_LEN);
        assert!(Metainfo::from_bytes(&multi(vec![file(1, &[&max])])).is_ok());
    }

    #[test]
    fn duplicate_and_clashing_paths_rejected() {
        let dup = multi(vec![
            file(1, &["a", "b"]),
            file(1, &["c"]),
            file(1, &["a", "b"]),
        ]);
        assert_eq!(bad_path_reason(&dup), "two files with the same path");
        let clash = multi(vec![
            file(1, &["a", "b", "c"]),
            file(1, &["a", "z"]),
            file(1, &["a", "b"]),
        ]);
        assert_eq!(
            bad_path_reason(&clash),
            "a file is also used as a directory"
        );
    }

    #[test]
    fn empty_file_list_rejected() {
        assert_eq!(
            Metainfo::from_bytes(&multi(vec![])),
            Err(MetainfoError::EmptyFileList)
        );
    }

    #[test]
    fn utf8_variants_preferred_and_non_utf8_rejected() {
        let info = vec![
            (
                "files",
                B::L(vec![B::D(vec![
                    ("length", B::I(5)),
                    ("path", B::L(vec![B::S(vec![0xff, b'a'])])),
                    ("path.utf-8", path(&["é"])),
                ])]),
            ),
            ("name", B::S(vec![0xfe])),
            ("name.utf-8", s("répertoire")),
            ("piece length", B::I(16384)),
            ("pieces", pieces(1)),
        ];
        let m = Metainfo::from_bytes(&torrent(info)).unwrap();
        assert_eq!(m.info.name, "répertoire");
        assert_eq!(m.info.files[0].path, ["é"]);

        let mut info = single(5, 16384, 1);
        info[1] = ("name", B::S(vec![b'c', b'a', b'f', 0xe9]));
        let err = Metainfo::from_bytes(&torrent(info)).unwrap_err();
        assert!(err.to_string().contains("not valid UTF-8"), "{err}");
        let bad = B::D(vec![
            ("length", B::I(5)),
            ("path", B::L(vec![B::S(vec![0xff])])),
        ]);
        assert!(bad_path_reason(&multi(vec![bad])).contains("UTF-8"));
    }

    #[test]
    fn m6_bad_piece_geometry_rejected() {
        for pl in [0, -1, 1 << 40, i64::from(MAX_PIECE_LENGTH) + 1] {
            assert_eq!(
                Metainfo::from_bytes(&torrent(single(5, pl, 1))),
                Err(MetainfoError::OutOfRange {
                    field: "info.piece length",
                    got: i128::from(pl)
                })
            );
        }
        // Non-power-of-two piece length is fine on read.
        assert!(Metainfo::from_bytes(&torrent(single(5, 3, 2))).is_ok());
        let mut info = single(5, 16384, 1);
        info[3] = ("pieces", B::S(vec![0; 19]));
        assert_eq!(
            Metainfo::from_bytes(&torrent(info)),
            Err(MetainfoError::PiecesNotMultipleOf20 { len: 19 })
        );
        assert_eq!(
            Metainfo::from_bytes(&torrent(single(16385, 16384, 1))),
            Err(MetainfoError::PieceCountMismatch {
                got: 1,
                expected: 2
            })
        );
        assert_eq!(
            Metainfo::from_bytes(&torrent(single(16384, 16384, 2))),
            Err(MetainfoError::PieceCountMismatch {
                got: 2,
                expected: 1
            })
        );
    }

    #[test]
    fn m7_bad_lengths_rejected() {
        assert_eq!(
            Metainfo::from_bytes(&torrent(single(-1, 16384, 1))),
            Err(MetainfoError::OutOfRange {
                field: "info.length",
                got: -1
            })
        );
        assert_eq!(
            Metainfo::from_bytes(&multi(vec![file(-1, &["a"])])),
            Err(MetainfoError::OutOfRange {
                field: "info.files[].length",
                got: -1
            })
        );
        let overflow = multi(vec![
            file(i64::MAX, &["a"]),
            file(i64::MAX, &["b"]),
            file(i64::MAX, &["c"]),
        ]);
        assert!(matches!(
            Metainfo::from_bytes(&overflow),
            Err(MetainfoError::OutOfRange {
                field: "info total length",
                ..
            })
        ));
        let too_big = i64::try_from(MAX_TOTAL_LENGTH).unwrap() + 1;
        assert!(matches!(
            Metainfo::from_bytes(&torrent(single(too_big, 16384, 1))),
            Err(MetainfoError::OutOfRange {
                field: "info total length",
                ..
            })
        ));
        assert!(matches!(
            Metainfo::from_bytes(&torrent(single(0, 16384, 0))),
            Err(MetainfoError::OutOfRange {
                field: "info total length",
                got: 0
            })
        ));
    }

    #[test]
    fn m9_oversized_file_rejected_before_decoding() {
        let big = vec![b'x'; MAX_TORRENT_LEN + 1];
        assert_eq!(
            Metainfo::from_bytes(&big),
            Err(MetainfoError::TooLarge {
                len: MAX_TORRENT_LEN + 1,
                limit: MAX_TORRENT_LEN
            })
        );
    }

    #[test]
    fn structural_errors() {
        assert_eq!(
            Metainfo::from_bytes(b"i1e"),
            Err(MetainfoError::NotADictionary)
        );
        assert_eq!(
            Metainfo::from_bytes(b"de"),
            Err(MetainfoError::BadKey { key: "info" })
        );
        assert_eq!(
            Metainfo::from_bytes(b"d4:infoi1ee"),
            Err(MetainfoError::BadKey { key: "info" })
        );
        assert!(matches!(
            Metainfo::from_bytes(b"d4:infodee"),
            Err(MetainfoError::BadKey { .. })
        ));
        let mut trailing = torrent(single(5, 16384, 1));
        trailing.extend_from_slice(b"de");
        assert!(matches!(
            Metainfo::from_bytes(&trailing),
            Err(MetainfoError::Bencode(_))
        ));
    }

    #[test]
    fn bep12_announce_list_skips_junk() {
        let file = B::D(vec![
            ("announce", s("http://a/")),
            (
                "announce-list",
                B::L(vec![
                    B::L(vec![s(" http://a/ "), B::I(3), s("")]),
                    B::L(vec![]),
                    s("not a tier"),
                    B::L(vec![s("udp://b:1"), s("udp://c:2")]),
                ]),
            ),
            ("info", B::D(single(5, 16384, 1))),
            ("url-list", s("http://ws/")),
        ])
        .bytes();
        let m = Metainfo::from_bytes(&file).unwrap();
        assert_eq!(
            m.announce_list,
            vec![vec!["http://a/"], vec!["udp://b:1", "udp://c:2"]]
        );
        assert_eq!(m.url_list, ["http://ws/"]);
    }

    #[test]
    fn bep27_private_flag() {
        let mut info = single(5, 16384, 1);
        info.push(("private", B::I(1)));
        assert!(Metainfo::from_bytes(&torrent(info)).unwrap().info.private);
        let mut info = single(5, 16384, 1);
        info.push(("private", B::I(0)));
        assert!(!Metainfo::from_bytes(&torrent(info)).unwrap().info.private);
    }

    fn sample_info(multi_file: bool) -> Info {
        let files = if multi_file {
            vec![
                FileEntry {
                    path: vec!["a".into(), "b.txt".into()],
                    length: 20_000,
                },
                FileEntry {
                    path: vec!["c".into()],
                    length: 0,
                },
                FileEntry {
                    path: vec!["d".into()],
                    length: 30_000,
                },
            ]
        } else {
            vec![FileEntry {
                path: vec![],
                length: 50_000,
            }]
        };
        Info {
            name: "sample".into(),
            piece_length: 32768,
            pieces: vec![[1; 20], [2; 20]],
            files,
            multi_file,
            private: multi_file,
        }
    }

    #[test]
    fn new_to_bytes_from_bytes_round_trip() {
        for multi_file in [false, true] {
            for (tiers, webseeds) in [
                (vec![], vec![]),
                (
                    vec![vec!["http://t/a".to_owned()]],
                    vec!["http://w/".to_owned()],
                ),
                (
                    vec![
                        vec!["http://t/a".into(), " ".into()],
                        vec![],
                        vec!["udp://u:1".into()],
                    ],
                    vec!["http://w1/".into(), "http://w2/".into()],
                ),
            ] {
                let mut m = Metainfo::new(sample_info(multi_file), tiers, webseeds);
                let bytes = m.to_bytes();
                assert_eq!(Metainfo::from_bytes(&bytes).unwrap(), m);
                m.comment = Some("comment".into());
                m.creation_date = Some(1_700_000_000);
                let bytes = m.to_bytes();
                assert_eq!(Metainfo::from_bytes(&bytes).unwrap(), m);
                let root = bencode::decode(&bytes).unwrap();
                let root = root.as_dict().unwrap();
                assert!(root.is_canonical(), "outer keys sorted");
                assert!(
                    root.get(b"info")
                        .and_then(Value::as_dict)
                        .unwrap()
                        .is_canonical()
                );
            }
        }
    }

    #[test]
    fn piece_hashes_is_a_view_of_the_info_bytes() {
        for multi_file in [false, true] {
            let m = Metainfo::new(sample_info(multi_file), vec![], vec![]);
            let hashes = m.piece_hashes();
            assert_eq!(hashes, m.info.pieces.concat());
            let range =
                m.info_bytes.as_ptr() as usize..m.info_bytes.as_ptr() as usize + m.info_bytes.len();
            assert!(range.contains(&(hashes.as_ptr() as usize)), "no copy");
            let parsed = Metainfo::from_bytes(&m.to_bytes()).unwrap();
            assert_eq!(parsed.piece_hashes(), m.info.pieces.concat());
        }
    }

    #[test]
    fn new_sets_announce_and_created_by() {
        let m = Metainfo::new(
            sample_info(false),
            vec![vec![], vec!["http://t/a".into(), "http://t/b".into()]],
            vec![],
        );
        assert_eq!(m.announce.as_deref(), Some("http://t/a"));
        assert_eq!(m.announce_list.len(), 1);
        assert_eq!(
            m.created_by.as_deref(),
            Some(concat!("seednode/", env!("CARGO_PKG_VERSION")))
        );
        assert_eq!(m.info_hash, info_hash_of(&m.info.encode()));
        let bytes = m.to_bytes();
        assert!(bytes.windows(16).any(|w| w == b"13:announce-list"));
        let one = Metainfo::new(sample_info(false), vec![vec!["http://t/a".into()]], vec![]);
        assert!(!one.to_bytes().windows(13).any(|w| w == b"announce-list"));
    }

    #[test]
    fn encode_single_file_exact_bytes() {
        let info = Info {
            name: "a".into(),
            piece_length: 16384,
            pieces: vec![[0x61; 20]],
            files: vec![FileEntry {
                path: vec![],
                length: 3,
            }],
            multi_file: false,
            private: true,
        };
        let want = format!(
            "d6:lengthi3e4:name1:a12:piece lengthi16384e6:pieces20:{}7:privatei1ee",
            "a".repeat(20)
        );
        assert_eq!(String::from_utf8(info.encode()).unwrap(), want);
    }

    /// mktorrent 1.1 fixtures (`mktorrent -d -l 15 ...`): re-encoding the parsed `info` must give
    /// back the exact bytes, so torrents created here have mktorrent's info-hash.
    #[test]
    fn encode_matches_mktorrent_byte_for_byte() {
        let fixtures: [&[u8]; 3] = [
            include_bytes!("../tests/data/mktorrent_single.torrent"),
            include_bytes!("../tests/data/mktorrent_multi_private.torrent"),
            include_bytes!("../tests/data/mktorrent_single_webseeds.torrent"),
        ];
        for bytes in fixtures {
            let m = Metainfo::from_bytes(bytes).unwrap();
            assert_eq!(m.info.encode(), m.info_bytes);
            assert_eq!(
                Metainfo::new(m.info.clone(), vec![], vec![]).info_hash,
                m.info_hash
            );
        }
        let multi = Metainfo::from_bytes(fixtures[1]).unwrap();
        assert!(multi.info.private && multi.info.multi_file);
        assert_eq!(multi.announce_list.len(), 2);
        assert_eq!(multi.url_list, ["http://ws.example/f"]);
        assert_eq!(multi.comment.as_deref(), Some("a comment"));
        assert_eq!(multi.created_by.as_deref(), Some("mktorrent 1.1"));
        let paths: Vec<String> = multi.info.files.iter().map(|f| f.path.join("/")).collect();
        assert_eq!(paths, ["Z upper.txt", "a.txt", "sub/b.bin", "sub/zero"]);
        let webseeds = Metainfo::from_bytes(fixtures[2]).unwrap();
        assert_eq!(
            webseeds.url_list,
            ["http://w1.example/x", "http://w2.example/y"]
        );
        assert_eq!(webseeds.info.name, "renamed.bin");
        assert!(webseeds.creation_date.is_some());
    }

    #[test]
    fn short_input_sweep_never_panics() {
        let bytes = include_bytes!("../tests/data/mktorrent_multi_private.torrent");
        for n in 0..bytes.len() {
            assert!(Metainfo::from_bytes(&bytes[..n]).is_err());
        }
    }
}
