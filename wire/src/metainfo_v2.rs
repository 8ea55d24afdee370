//! v2 and hybrid metainfo (BEP 52): `meta version` 2, `file tree`, `piece layers`, and the
//! SHA-256 info-hash.
//!
//! [`Metainfo::from_bytes`] parses these too; the v2 side lands in [`Metainfo::v2`] as a
//! [`MetainfoV2`].
//!
//! # What is accepted (libtorrent 2.0.8's rules, and the v1 path rules)
//!
//! - `meta version` is checked first: 2 here, above 2 refused. Every dictionary inside `info`
//!   must have sorted, unique keys (libtorrent's "soft error" check; STYLE §9), so the info-hash
//!   is the hash of a canonical encoding.
//! - `piece length`: a power of two, 16 KiB ([`MIN_PIECE_LENGTH_V2`]) ..= [`MAX_PIECE_LENGTH`].
//! - `file tree`: nested dictionaries whose keys are path components (each passes
//!   [`crate::metainfo::validate_component`]); a dictionary whose only key is `""` is a file,
//!   described by `length` and, for a non-empty file, a 32-byte non-zero `pieces root`. Every other
//!   key is a directory name; an empty key anywhere else is refused, empty directories are
//!   skipped. Files come in tree order (keys sorted bytewise, depth first). The tree is walked
//!   with an explicit stack: at most [`MAX_FILE_TREE_DEPTH`] components per path and
//!   [`MAX_FILES`] files. Other keys of a file entry (`attr`, `mtime`) are ignored, as in v1.
//! - A torrent is *single-file* when `info` has no `files` list and the tree's root holds exactly
//!   one entry, a file (libtorrent's rule). Its file is named by that key, not by `name`.
//! - Lengths add up (checked) to 1 ..= [`MAX_TOTAL_LENGTH`] bytes, and so does the piece space
//!   with every file aligned to a piece; at most [`MAX_PIECES`] pieces.
//! - `piece layers` (outside `info`) is optional, as in libtorrent (a torrent without it loads
//!   like a magnet link: hashes must then come from peers or from the data). When present, every
//!   entry's key is the `pieces root` of a file longer than one piece, named once, and its value
//!   holds exactly `ceil(length / piece length)` hashes that hash up to that root
//!   ([`MerkleTree::for_file`]).
//! - *Hybrid*: `info` also has `files` (a list) or `length`; the v1 side is parsed as a v1
//!   torrent and must describe the same files at the same offsets, padding files (BEP 47 `attr`
//!   `p`) where v2 aligns files to pieces; a v1 side without the tail padding of the last file
//!   (libtorrent ≤ 2.0.7) is accepted, as libtorrent does.
//!
//! # The piece space, and [`Metainfo::info`] for a v2-only torrent
//!
//! BEP 52 aligns every non-empty file to a piece boundary: pieces never span files, and `have`,
//! `bitfield` and `request` count pieces over the files in tree order with gaps after each file.
//! That is exactly the v1 layout of a hybrid torrent with BEP 47 padding files, and how
//! libtorrent lays out a v2 torrent internally. So [`Metainfo::info`] is, for
//!
//! - a **hybrid** torrent: its v1 side, as written (what v1 peers and the v1 `pieces` see);
//! - a **v2-only** torrent: a synthesized v1 view, [`InfoV2::v1_view`]: the files in tree order
//!   with a padding entry `.pad/<N>` after every file whose length is not a multiple of the piece
//!   length, *the last one included* (libtorrent 2.0.8 does the same, so the last piece has the
//!   full piece length and the peer protocol's piece sizes match libtorrent's), `name` = the
//!   torrent's `name` (multi-file) or the file's key (single-file), and **placeholder all-zero
//!   `pieces`**, one per piece: there is no SHA-1 for them. A SHA-1 check against a placeholder
//!   always fails, so nothing is ever marked good by mistake; check v2 pieces with
//!   [`MetainfoV2::verify_piece`] instead. [`Metainfo::info_hash`] is the truncated v2 info-hash.
//!
//! `storage::Storage::open(path, &metainfo.info)` therefore serves the peer protocol's piece
//! space of every kind of torrent, padding reading as zeros. [`PieceMap`] maps a piece to its
//! file and its v2 hash.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use sha2::{Digest as _, Sha256};

use crate::InfoHash;
use crate::bencode::{self, Dict, DictEntry, Value};
use crate::limits::{
    MAX_FILE_TREE_DEPTH, MAX_FILES, MAX_PIECE_LENGTH, MAX_PIECES, MAX_TOTAL_LENGTH,
    MIN_PIECE_LENGTH_V2,
};
use crate::merkle::{self, HASH_LEN, MerkleError, MerkleTree};
use crate::metainfo::{
    CREATED_BY, FileEntry, Info, Metainfo, MetainfoError, clean_tiers, info_hash_of,
    is_bep47_padding, parse_info, parse_name, render_path, utf8_component,
};
use crate::types::hex_encode;

/// The `meta version` of BEP 52 torrents.
pub const META_VERSION: i64 = 2;

/// A v2 info-hash: the SHA-256 of the bencoded `info` dictionary, 32 bytes (BEP 52 §infohash).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct InfoHashV2(pub [u8; 32]);

impl InfoHashV2 {
    /// Length of a v2 info-hash in bytes.
    pub const LEN: usize = 32;

    /// The SHA-256 of `info_bytes`, the raw bencoded `info` dictionary.
    #[must_use]
    pub fn of(info_bytes: &[u8]) -> Self {
        Self(Sha256::digest(info_bytes).into())
    }

    /// The 32 raw bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 20 bytes: the identifier trackers, the DHT and the peer handshake use for a v2
    /// torrent (BEP 52 §infohash: "For some uses as torrent identifier it is truncated to 20
    /// bytes").
    #[must_use]
    pub fn truncated(&self) -> InfoHash {
        let mut out = [0u8; 20];
        out.copy_from_slice(&self.0[..20]);
        InfoHash(out)
    }

    /// Lowercase hex, 64 characters.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex_encode(&self.0)
    }

    /// Parses 64 hex digits (either case); `None` for anything else.
    #[must_use]
    pub fn from_hex(s: &str) -> Option<Self> {
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = char::from(pair[0]).to_digit(16)?;
            let lo = char::from(pair[1]).to_digit(16)?;
            out[i] = u8::try_from(hi * 16 + lo).ok()?;
        }
        Some(Self(out))
    }
}

impl fmt::Display for InfoHashV2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for InfoHashV2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHashV2({self})")
    }
}

/// One file of a v2 `file tree`, in tree order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileV2 {
    /// Path components in the `file tree` (at least one), each validated. For a multi-file
    /// torrent they are below the torrent's directory `name`; for a single-file torrent the one
    /// component is the file's name.
    pub path: Vec<String>,
    /// Length in bytes.
    pub length: u64,
    /// Root of the file's merkle tree (BEP 52 `pieces root`); `None` exactly for empty files.
    pub pieces_root: Option<[u8; HASH_LEN]>,
}

/// The v2 side of an `info` dictionary (BEP 52 §info dictionary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoV2 {
    /// `name` (`name.utf-8` preferred): the torrent's directory (multi-file) or its display name
    /// (single-file, whose file is named by its tree key); validated as one path component.
    pub name: String,
    /// Bytes per piece: a power of two, at least 16 KiB.
    pub piece_length: u32,
    /// Files in tree order (keys sorted bytewise, depth first), empty files included.
    pub files: Vec<FileV2>,
    /// False for a single-file torrent (no `files` list, one file at the root of the tree).
    pub multi_file: bool,
}

/// The parsed BEP 52 side of a v2-only or hybrid torrent: [`Metainfo::v2`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetainfoV2 {
    /// The v2 view of `info`.
    pub info: InfoV2,
    /// SHA-256 of [`Metainfo::info_bytes`].
    pub info_hash: InfoHashV2,
    /// The piece layer of each file of [`InfoV2::files`] (same index), from `piece layers`:
    /// `ceil(length / piece length)` hashes, checked against the file's root. `None` for empty
    /// files, files of at most one piece (their root is their piece hash) and files the torrent
    /// gives no layer for. Files with the same root share one entry in the .torrent but each
    /// holds a copy here; all layers together hold at most one hash per piece, so at most
    /// [`MAX_PIECES`] × 32 bytes (64 MiB).
    pub piece_layers: Vec<Option<Vec<[u8; HASH_LEN]>>>,
    /// True for a hybrid torrent: `info` also has a v1 side, [`Metainfo::info`], whose
    /// [`Metainfo::info_hash`] is the SHA-1 one.
    pub hybrid: bool,
}

/// Where a piece of the peer protocol's piece space lies in a v2 torrent (BEP 52: pieces are
/// aligned to files and never span two).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PieceV2 {
    /// Index of the file in [`InfoV2::files`].
    pub file: usize,
    /// Index of the piece within the file.
    pub piece_in_file: u32,
    /// Bytes of file data in the piece (the rest of the piece, if any, is padding).
    pub data_len: u32,
    /// Leaves under the piece's hash ([`merkle::piece_leaves`]): the width to pad the piece's
    /// block hashes to with zero hashes.
    pub leaves: u64,
}

/// The piece space of a v2 torrent: which pieces belong to which file. Build once per torrent
/// with [`PieceMap::new`]; lookups are `O(log files)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PieceMap {
    piece_length: u32,
    /// First piece of each file (an empty file: the next file's), then the piece count.
    starts: Vec<u32>,
    /// Length of each file in bytes.
    lengths: Vec<u64>,
}

impl InfoV2 {
    /// Sum of all file lengths in bytes (no padding).
    #[must_use]
    pub fn total_length(&self) -> u64 {
        self.files.iter().map(|f| f.length).sum()
    }

    /// Number of 16 KiB blocks per piece.
    #[must_use]
    pub const fn blocks_per_piece(&self) -> u32 {
        self.piece_length / merkle::BLOCK_LEN
    }

    /// Number of pieces in the piece space: `ceil(length / piece length)` per file.
    #[must_use]
    pub fn piece_count(&self) -> u32 {
        let pl = u64::from(self.piece_length.max(1));
        let count: u64 = self.files.iter().map(|f| f.length.div_ceil(pl)).sum();
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// The files as v1 lays them out in the piece space: each file in tree order, then, when its
    /// length is not a multiple of the piece length, a BEP 47 padding entry with path
    /// `.pad/<N>` (`N` its length in decimal) that fills the rest of its last piece; after the
    /// last non-empty file only when `tail_padding` is set (libtorrent 2.0.8 pads it, 2.0.0 to
    /// 2.0.7 did not). Paths are v1 paths: a single-file torrent's
    /// file has an empty path (and a padding entry, if any, `.pad/<N>`).
    #[must_use]
    pub fn padded_files(&self, tail_padding: bool) -> Vec<FileEntry> {
        self.layout(tail_padding)
            .into_iter()
            .map(|slot| match slot {
                Slot::File(i) => FileEntry {
                    path: if self.multi_file {
                        self.files[i].path.clone()
                    } else {
                        Vec::new()
                    },
                    length: self.files[i].length,
                },
                Slot::Padding(n) => FileEntry {
                    path: vec![".pad".to_owned(), n.to_string()],
                    length: n,
                },
            })
            .collect()
    }

    /// The v1 view of a v2-only torrent, [`Metainfo::info`] (see the module docs): padded files
    /// with tail padding, `name` = the directory name or the single file's name, and one
    /// placeholder all-zero hash per piece.
    #[must_use]
    pub fn v1_view(&self, private: bool) -> Info {
        let name = if self.multi_file {
            self.name.clone()
        } else {
            self.files
                .first()
                .and_then(|f| f.path.first())
                .cloned()
                .unwrap_or_else(|| self.name.clone())
        };
        Info {
            name,
            piece_length: self.piece_length,
            pieces: vec![[0; 20]; self.piece_count() as usize],
            files: self.padded_files(true),
            multi_file: self.multi_file,
            private,
        }
    }

    /// Bytes of padding after each file in the piece space (same index as [`InfoV2::files`]):
    /// what fills the file's last piece, 0 for a file that ends on a piece boundary (an empty
    /// file included), and 0 after the last non-empty file unless `tail_padding` (see
    /// [`InfoV2::padded_files`]).
    #[must_use]
    pub fn paddings(&self, tail_padding: bool) -> Vec<u64> {
        let pl = u64::from(self.piece_length.max(1));
        let last_data = self.files.iter().rposition(|f| f.length > 0);
        self.files
            .iter()
            .enumerate()
            .map(|(i, f)| {
                if !tail_padding && last_data == Some(i) {
                    0
                } else {
                    (pl - f.length % pl) % pl
                }
            })
            .collect()
    }

    /// Files and padding in piece-space order.
    fn layout(&self, tail_padding: bool) -> Vec<Slot> {
        let mut out = Vec::with_capacity(self.files.len() * 2);
        for (i, gap) in self.paddings(tail_padding).into_iter().enumerate() {
            out.push(Slot::File(i));
            if gap > 0 {
                out.push(Slot::Padding(gap));
            }
        }
        out
    }

    /// The canonical bencoding of this `info` dictionary (keys sorted): `file tree`, then for a
    /// hybrid (`v1_pieces` given) `files` (multi-file, with BEP 47 padding entries `attr: "p"`,
    /// tail padding when there is more than one file, as libtorrent 2.0.8) or `length`
    /// (single-file), `meta version` 2, `name`, `piece length`, `pieces` (hybrid), and `private`
    /// when set.
    ///
    /// `files` must be in tree order (as [`Metainfo::new_v2`] sorts them); otherwise the result
    /// is not canonical and does not parse.
    #[must_use]
    pub fn encode(&self, v1_pieces: Option<&[[u8; 20]]>, private: bool) -> Vec<u8> {
        use bencode::{put_bytes, put_int};
        let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let mut out = Vec::with_capacity(256 + self.files.len() * 96);
        out.push(b'd');
        put_bytes(&mut out, b"file tree");
        self.encode_file_tree(&mut out);
        if v1_pieces.is_some() {
            if self.multi_file {
                put_bytes(&mut out, b"files");
                out.push(b'l');
                for slot in self.layout(self.files.len() > 1) {
                    out.push(b'd');
                    let (length, path): (u64, Vec<&[u8]>) = match slot {
                        Slot::File(i) => (
                            self.files[i].length,
                            self.files[i].path.iter().map(|c| c.as_bytes()).collect(),
                        ),
                        Slot::Padding(n) => {
                            put_bytes(&mut out, b"attr");
                            put_bytes(&mut out, b"p");
                            (n, Vec::new())
                        }
                    };
                    put_bytes(&mut out, b"length");
                    put_int(&mut out, int(length));
                    put_bytes(&mut out, b"path");
                    out.push(b'l');
                    if let Slot::Padding(n) = slot {
                        put_bytes(&mut out, b".pad");
                        put_bytes(&mut out, n.to_string().as_bytes());
                    }
                    for c in path {
                        put_bytes(&mut out, c);
                    }
                    out.push(b'e');
                    out.push(b'e');
                }
                out.push(b'e');
            } else {
                put_bytes(&mut out, b"length");
                put_int(&mut out, int(self.total_length()));
            }
        }
        put_bytes(&mut out, b"meta version");
        put_int(&mut out, META_VERSION);
        put_bytes(&mut out, b"name");
        put_bytes(&mut out, self.name.as_bytes());
        put_bytes(&mut out, b"piece length");
        put_int(&mut out, i64::from(self.piece_length));
        if let Some(pieces) = v1_pieces {
            put_bytes(&mut out, b"pieces");
            let mut all = Vec::with_capacity(pieces.len() * 20);
            for p in pieces {
                all.extend_from_slice(p);
            }
            put_bytes(&mut out, &all);
        }
        if private {
            put_bytes(&mut out, b"private");
            put_int(&mut out, 1);
        }
        out.push(b'e');
        out
    }

    /// Writes `file tree`: nested directories, each file as `{"": {length, pieces root}}`.
    fn encode_file_tree(&self, out: &mut Vec<u8>) {
        use bencode::{put_bytes, put_int};
        out.push(b'd');
        let mut open: Vec<&str> = Vec::new();
        for f in &self.files {
            let Some((name, dirs)) = f.path.split_last() else {
                continue;
            };
            let common = open
                .iter()
                .zip(dirs)
                .take_while(|(a, b)| **a == b.as_str())
                .count();
            while open.len() > common {
                open.pop();
                out.push(b'e');
            }
            for d in &dirs[common..] {
                put_bytes(out, d.as_bytes());
                out.push(b'd');
                open.push(d);
            }
            put_bytes(out, name.as_bytes());
            out.push(b'd');
            put_bytes(out, b"");
            out.push(b'd');
            put_bytes(out, b"length");
            put_int(out, i64::try_from(f.length).unwrap_or(i64::MAX));
            if let Some(root) = &f.pieces_root {
                put_bytes(out, b"pieces root");
                put_bytes(out, root);
            }
            out.push(b'e');
            out.push(b'e');
        }
        for _ in open {
            out.push(b'e');
        }
        out.push(b'e');
    }
}

/// One entry of the piece-space layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// File `i` of [`InfoV2::files`].
    File(usize),
    /// A padding file of this many bytes.
    Padding(u64),
}

impl PieceMap {
    /// Maps the pieces of `info`.
    #[must_use]
    pub fn new(info: &InfoV2) -> Self {
        let pl = u64::from(info.piece_length.max(1));
        let mut starts = Vec::with_capacity(info.files.len() + 1);
        let mut next = 0u64;
        for f in &info.files {
            starts.push(u32::try_from(next).unwrap_or(u32::MAX));
            next = next.saturating_add(f.length.div_ceil(pl));
        }
        starts.push(u32::try_from(next).unwrap_or(u32::MAX));
        Self {
            piece_length: info.piece_length,
            starts,
            lengths: info.files.iter().map(|f| f.length).collect(),
        }
    }

    /// Number of pieces.
    #[must_use]
    pub fn piece_count(&self) -> u32 {
        self.starts.last().copied().unwrap_or(0)
    }

    /// The pieces of file `file` (empty for an empty file or past the last file).
    #[must_use]
    pub fn file_pieces(&self, file: usize) -> Range<u32> {
        match (self.starts.get(file), self.starts.get(file + 1)) {
            (Some(&start), Some(&end)) => start..end,
            _ => 0..0,
        }
    }

    /// The file, index in the file, data length and leaf width of piece `piece`; `None` past the
    /// last piece.
    #[must_use]
    pub fn locate(&self, piece: u32) -> Option<PieceV2> {
        if piece >= self.piece_count() {
            return None;
        }
        // The last file starting at or before `piece`: empty files share the next file's start
        // and come before it, so this is the non-empty file that holds the piece.
        let file = self
            .starts
            .partition_point(|&s| s <= piece)
            .checked_sub(1)?;
        let length = *self.lengths.get(file)?;
        let piece_in_file = piece - self.starts[file];
        let pl = u64::from(self.piece_length);
        let start = u64::from(piece_in_file) * pl;
        let data_len = u32::try_from(length.checked_sub(start)?.min(pl)).ok()?;
        Some(PieceV2 {
            file,
            piece_in_file,
            data_len,
            leaves: merkle::piece_leaves(length, self.piece_length),
        })
    }
}

impl MetainfoV2 {
    /// The expected v2 hash of the piece at `loc` (from [`PieceMap::locate`]): its entry in the
    /// file's piece layer, or the file's root for a file of one piece; `None` when the torrent
    /// gives no piece layer for the file.
    #[must_use]
    pub fn piece_hash(&self, loc: &PieceV2) -> Option<[u8; HASH_LEN]> {
        let file = self.info.files.get(loc.file)?;
        if file.length > u64::from(self.info.piece_length) {
            self.piece_layers
                .get(loc.file)?
                .as_ref()?
                .get(loc.piece_in_file as usize)
                .copied()
        } else {
            file.pieces_root
        }
    }

    /// Checks one piece's data against its v2 hash: `data` is the piece's file bytes
    /// ([`PieceV2::data_len`] of them; padding after them is not part of the hash). `None` when
    /// the hash is unknown (no piece layer for the file: verify the whole file against its root
    /// instead), `Some(false)` also when `data` has the wrong length.
    #[must_use]
    pub fn verify_piece(&self, loc: &PieceV2, data: &[u8]) -> Option<bool> {
        let expected = self.piece_hash(loc)?;
        if data.len() != loc.data_len as usize {
            return Some(false);
        }
        Some(merkle::root_of_data(data, loc.leaves) == expected)
    }

    /// The merkle tree of file `file`, for answering `hash request`s (build it once per file and
    /// keep it: this hashes the whole piece layer).
    ///
    /// # Errors
    /// [`MerkleError::EmptyFile`] for an empty file or an index past the last file,
    /// [`MerkleError::MissingPieceLayer`] when the torrent has no layer for a file of more than
    /// one piece.
    pub fn merkle_tree(&self, file: usize) -> Result<MerkleTree, MerkleError> {
        let f = self.info.files.get(file).ok_or(MerkleError::EmptyFile)?;
        let root = f.pieces_root.ok_or(MerkleError::EmptyFile)?;
        let layer = self.piece_layers.get(file).and_then(Option::as_deref);
        MerkleTree::for_file(f.length, self.info.piece_length, root, layer)
    }

    /// The first file whose `pieces root` is `root` (what a `hash request` names); `O(files)`, so
    /// callers serving many requests keep their own map.
    #[must_use]
    pub fn file_by_root(&self, root: &[u8; HASH_LEN]) -> Option<usize> {
        self.info
            .files
            .iter()
            .position(|f| f.pieces_root.as_ref() == Some(root))
    }
}

impl Metainfo {
    /// Builds a v2-only (`v1_pieces` `None`) or hybrid torrent from a freshly hashed `info`:
    /// files sorted into tree order (with their layers), `info` encoded canonically with
    /// [`InfoV2::encode`], `piece layers` from `piece_layers` (one entry per file, as
    /// [`MetainfoV2::piece_layers`]), trackers and webseeds cleaned as [`Metainfo::new`] does.
    ///
    /// The result is exactly what [`Metainfo::from_bytes`] reads back from
    /// [`Metainfo::to_bytes`]: it is built by encoding and parsing, so every check of the parser
    /// applies. For a hybrid, `v1_pieces` are the SHA-1s of the pieces of
    /// [`InfoV2::padded_files`] (tail padding when there is more than one file).
    ///
    /// # Errors
    /// [`MetainfoError::BadPieceLayer`] when `piece_layers` does not have one entry per file;
    /// any error of [`Metainfo::from_bytes`] for inconsistent input (unsafe or clashing paths,
    /// wrong piece counts, layers that do not match their roots, a single-file hybrid whose
    /// `name` differs from its file's name).
    pub fn new_v2(
        mut info: InfoV2,
        piece_layers: Vec<Option<Vec<[u8; HASH_LEN]>>>,
        v1_pieces: Option<Vec<[u8; 20]>>,
        private: bool,
        announce_list: Vec<Vec<String>>,
        url_list: Vec<String>,
    ) -> Result<Self, MetainfoError> {
        if piece_layers.len() != info.files.len() {
            return Err(MetainfoError::BadPieceLayer {
                reason: "not one piece layer entry per file",
            });
        }
        let mut pairs: Vec<(FileV2, Option<Vec<[u8; HASH_LEN]>>)> =
            info.files.drain(..).zip(piece_layers).collect();
        pairs.sort_by(|a, b| a.0.path.cmp(&b.0.path));
        let (files, layers): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
        info.files = files;
        let info_bytes = info.encode(v1_pieces.as_deref(), private);
        let mut file = Vec::with_capacity(info_bytes.len() + 64);
        file.push(b'd');
        bencode::put_bytes(&mut file, b"info");
        file.extend_from_slice(&info_bytes);
        put_piece_layers(&mut file, &info.files, &layers);
        file.push(b'e');
        let mut metainfo = Self::from_bytes(&file)?;
        metainfo.announce_list = clean_tiers(announce_list);
        metainfo.announce = metainfo
            .announce_list
            .first()
            .and_then(|tier| tier.first())
            .cloned();
        metainfo.url_list = url_list
            .iter()
            .map(|u| u.trim())
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect();
        metainfo.created_by = Some(CREATED_BY.to_owned());
        Ok(metainfo)
    }

    /// The SHA-256 info-hash of a v2 or hybrid torrent.
    #[must_use]
    pub fn info_hash_v2(&self) -> Option<InfoHashV2> {
        self.v2.as_ref().map(|v2| v2.info_hash)
    }

    /// True when the torrent has a v1 side (v1 or hybrid): [`Metainfo::info_hash`] is then a
    /// SHA-1 info-hash and `info.pieces` are real SHA-1 piece hashes.
    #[must_use]
    pub fn has_v1(&self) -> bool {
        self.v2.as_ref().is_none_or(|v2| v2.hybrid)
    }
}

/// Decides how to parse an `info` dictionary from its `meta version` (libtorrent's order of
/// checks): `true` for a v2 or hybrid torrent.
///
/// # Errors
/// [`MetainfoError::UnsupportedMetaVersion`] above 2; [`MetainfoError::NotCanonical`] for a
/// `meta version` of 1 or 2 with unsorted or duplicate keys anywhere in `info`;
/// [`MetainfoError::FileTreeWithoutMetaVersion`]; [`MetainfoError::BadKey`] for `meta version` 2
/// without a `file tree` dictionary.
pub(crate) fn is_v2(info: &Dict<'_>) -> Result<bool, MetainfoError> {
    let version = info.get(b"meta version").and_then(Value::as_int);
    if let Some(got) = version.filter(|&v| v > META_VERSION) {
        return Err(MetainfoError::UnsupportedMetaVersion { got });
    }
    if version.is_some_and(|v| v > 0) && !all_canonical(info) {
        return Err(MetainfoError::NotCanonical);
    }
    let has_tree = matches!(info.get(b"file tree"), Some(Value::Dict(_)));
    if version == Some(META_VERSION) {
        if !has_tree {
            return Err(MetainfoError::BadKey {
                key: "info.file tree",
            });
        }
        return Ok(true);
    }
    if has_tree {
        return Err(MetainfoError::FileTreeWithoutMetaVersion);
    }
    Ok(false)
}

/// True when `dict` and every dictionary inside it have sorted, unique keys. Iterative: the
/// stack holds at most the values decoded, which the bencode token limit bounds.
fn all_canonical(dict: &Dict<'_>) -> bool {
    let mut stack: Vec<&Value<'_>> = Vec::new();
    if !dict.is_canonical() {
        return false;
    }
    stack.extend(dict.entries().iter().map(|e| &e.value));
    while let Some(value) = stack.pop() {
        match value {
            Value::Dict(d) => {
                if !d.is_canonical() {
                    return false;
                }
                stack.extend(d.entries().iter().map(|e| &e.value));
            }
            Value::List(items) => stack.extend(items),
            Value::Int(_) | Value::Bytes(_) => {}
        }
    }
    true
}

/// Parses a torrent whose `info` has `meta version` 2: the v1 view, [`Metainfo::info_hash`] and
/// the v2 side. `root` is the whole .torrent (for `piece layers`).
pub(crate) fn parse(
    root: &Dict<'_>,
    info_entry: &DictEntry<'_>,
) -> Result<(Info, InfoHash, MetainfoV2), MetainfoError> {
    let d = info_entry
        .value
        .as_dict()
        .ok_or(MetainfoError::BadKey { key: "info" })?;
    let piece_length =
        d.get(b"piece length")
            .and_then(Value::as_int)
            .ok_or(MetainfoError::BadKey {
                key: "info.piece length",
            })?;
    let piece_length = u32::try_from(piece_length)
        .ok()
        .filter(|&pl| {
            pl.is_power_of_two() && (MIN_PIECE_LENGTH_V2..=MAX_PIECE_LENGTH).contains(&pl)
        })
        .ok_or(MetainfoError::OutOfRange {
            field: "info.piece length",
            got: i128::from(piece_length),
        })?;
    let name = parse_name(d)?;
    let tree = d
        .get(b"file tree")
        .and_then(Value::as_dict)
        .ok_or(MetainfoError::BadKey {
            key: "info.file tree",
        })?;
    let files_list = matches!(d.get(b"files"), Some(Value::List(_)));
    let hybrid = files_list || d.get(b"length").is_some();
    let files = parse_file_tree(tree)?;
    let multi_file =
        files_list || !(tree.len() == 1 && files.len() == 1 && files[0].path.len() == 1);
    let info = InfoV2 {
        name,
        piece_length,
        files,
        multi_file,
    };
    let piece_count = check_geometry(&info)?;
    let private = d
        .get(b"private")
        .and_then(Value::as_int)
        .is_some_and(|p| p != 0);
    let info_hash_v2 = InfoHashV2::of(info_entry.raw);
    let (v1, info_hash) = if hybrid {
        let v1 = parse_info(d)?;
        let padding: Vec<bool> = match d.get(b"files") {
            Some(Value::List(list)) => list
                .iter()
                .map(|f| f.as_dict().is_some_and(is_bep47_padding))
                .collect(),
            _ => vec![false; v1.files.len()],
        };
        check_hybrid(&info, &v1, &padding)?;
        (v1, info_hash_of(info_entry.raw))
    } else {
        // libtorrent checks a stray `pieces` of a v2-only torrent against the piece count.
        if let Some(pieces) = d.get(b"pieces").and_then(Value::as_bytes) {
            let got = pieces.len() as u64 / 20;
            if pieces.len() % 20 != 0 || got != u64::from(piece_count) {
                return Err(MetainfoError::PieceCountMismatch {
                    got,
                    expected: u64::from(piece_count),
                });
            }
        }
        (info.v1_view(private), info_hash_v2.truncated())
    };
    let piece_layers = parse_piece_layers(root.get(b"piece layers"), &info)?;
    Ok((
        v1,
        info_hash,
        MetainfoV2 {
            info,
            info_hash: info_hash_v2,
            piece_layers,
            hybrid,
        },
    ))
}

/// Walks `file tree` depth first with an explicit stack (BEP 52 §File tree layout).
fn parse_file_tree(tree: &Dict<'_>) -> Result<Vec<FileV2>, MetainfoError> {
    struct Frame<'t, 'a> {
        entries: &'t [DictEntry<'a>],
        next: usize,
    }
    let mut files = Vec::new();
    let mut path: Vec<String> = Vec::new();
    let mut stack = vec![Frame {
        entries: tree.entries(),
        next: 0,
    }];
    let shown = |path: &[String], key: &[u8]| {
        let mut raw: Vec<&[u8]> = path.iter().map(String::as_bytes).collect();
        raw.push(key);
        render_path(&raw)
    };
    while let Some(frame) = stack.last_mut() {
        let Some(entry) = frame.entries.get(frame.next) else {
            stack.pop();
            path.pop();
            continue;
        };
        frame.next += 1;
        if entry.key.is_empty() {
            return Err(MetainfoError::BadFileTree {
                path: shown(&path, b""),
                reason: "empty key outside a file entry",
            });
        }
        let node = entry
            .value
            .as_dict()
            .ok_or_else(|| MetainfoError::BadFileTree {
                path: shown(&path, entry.key),
                reason: "tree node is not a dictionary",
            })?;
        let whole: Vec<&[u8]> = path
            .iter()
            .map(String::as_bytes)
            .chain([entry.key])
            .collect();
        let component = utf8_component(entry.key, &whole)?;
        let leaf = match node.entries() {
            [only] if only.key.is_empty() => Some(&only.value),
            _ => None,
        };
        if let Some(leaf) = leaf {
            if files.len() >= MAX_FILES {
                return Err(MetainfoError::OutOfRange {
                    field: "info.file tree (files)",
                    got: files.len() as i128 + 1,
                });
            }
            let mut file_path = path.clone();
            file_path.push(component);
            files.push(parse_leaf(leaf, file_path)?);
        } else {
            if path.len() + 1 >= MAX_FILE_TREE_DEPTH {
                return Err(MetainfoError::BadPath {
                    path: shown(&path, entry.key),
                    reason: "path deeper than 100 components",
                });
            }
            if node.is_empty() {
                continue;
            }
            path.push(component);
            stack.push(Frame {
                entries: node.entries(),
                next: 0,
            });
        }
    }
    if files.is_empty() {
        return Err(MetainfoError::EmptyFileList);
    }
    Ok(files)
}

/// Parses a file entry: the value of the `""` key.
fn parse_leaf(value: &Value<'_>, path: Vec<String>) -> Result<FileV2, MetainfoError> {
    let bad = |reason| {
        let raw: Vec<&[u8]> = path.iter().map(String::as_bytes).collect();
        MetainfoError::BadFileTree {
            path: render_path(&raw),
            reason,
        }
    };
    let d = value
        .as_dict()
        .ok_or_else(|| bad("file entry is not a dictionary"))?;
    let length = d
        .get(b"length")
        .and_then(Value::as_int)
        .ok_or(MetainfoError::BadKey {
            key: "info.file tree[].length",
        })?;
    let length = u64::try_from(length).map_err(|_| MetainfoError::OutOfRange {
        field: "info.file tree[].length",
        got: i128::from(length),
    })?;
    let pieces_root = if length == 0 {
        None
    } else {
        let root: [u8; HASH_LEN] = d
            .get(b"pieces root")
            .and_then(Value::as_bytes)
            .and_then(|r| r.try_into().ok())
            .ok_or_else(|| bad("missing `pieces root` or not 32 bytes"))?;
        if root == [0; HASH_LEN] {
            return Err(bad("all-zero `pieces root`"));
        }
        Some(root)
    };
    Ok(FileV2 {
        path,
        length,
        pieces_root,
    })
}

/// Checks lengths and the piece space against the limits; returns the piece count.
fn check_geometry(info: &InfoV2) -> Result<u32, MetainfoError> {
    let pl = u64::from(info.piece_length);
    let mut total: u64 = 0;
    let mut pieces: u64 = 0;
    for f in &info.files {
        total = total
            .checked_add(f.length)
            .filter(|&t| t <= MAX_TOTAL_LENGTH)
            .ok_or(MetainfoError::OutOfRange {
                field: "info total length",
                got: i128::from(total) + i128::from(f.length),
            })?;
        pieces += f.length.div_ceil(pl);
    }
    if total == 0 {
        return Err(MetainfoError::OutOfRange {
            field: "info total length",
            got: 0,
        });
    }
    if pieces > u64::from(MAX_PIECES) {
        return Err(MetainfoError::OutOfRange {
            field: "info piece count",
            got: i128::from(pieces),
        });
    }
    // The piece space with every file aligned (what storage addresses), within the same limit.
    if pieces * pl > MAX_TOTAL_LENGTH {
        return Err(MetainfoError::OutOfRange {
            field: "info total length (aligned)",
            got: i128::from(pieces * pl),
        });
    }
    // pieces <= MAX_PIECES < u32::MAX.
    Ok(pieces as u32)
}

/// libtorrent's `files_compatible`: the v1 side lists the same non-empty, non-padding files at
/// the same indices and offsets, with the same total length.
fn check_hybrid(v2: &InfoV2, v1: &Info, v1_padding: &[bool]) -> Result<(), MetainfoError> {
    let mismatch = |reason| Err(MetainfoError::HybridMismatch { reason });
    let mut layout = v2.layout(true);
    if layout.len() == v1.files.len() + 1 {
        // A v1 side without tail padding (libtorrent <= 2.0.7): drop v2's tail padding too.
        let last_data = layout.iter().rposition(|slot| match slot {
            Slot::File(i) => v2.files[*i].length > 0,
            Slot::Padding(n) => *n > 0,
        });
        if let Some(at) = last_data
            && matches!(layout[at], Slot::Padding(_))
        {
            layout.remove(at);
        }
    }
    if layout.len() != v1.files.len() {
        return mismatch("different numbers of files (with padding)");
    }
    if v1.multi_file != v2.multi_file {
        return mismatch("single-file on one side, multi-file on the other");
    }
    let (mut off1, mut off2) = (0u64, 0u64);
    for (i, (slot, entry)) in layout.iter().zip(&v1.files).enumerate() {
        let relevant1 = !v1_padding.get(i).copied().unwrap_or(false) && entry.length > 0;
        let (relevant2, len2) = match slot {
            Slot::File(j) => (v2.files[*j].length > 0, v2.files[*j].length),
            Slot::Padding(n) => (false, *n),
        };
        if relevant1 != relevant2 {
            return mismatch("a file on one side is padding or empty on the other");
        }
        if let (true, Slot::File(j)) = (relevant1, slot) {
            let f2 = &v2.files[*j];
            let same_path = if v2.multi_file {
                entry.path == f2.path
            } else {
                f2.path.first() == Some(&v1.name)
            };
            if !same_path {
                return mismatch("different file paths");
            }
            if entry.length != f2.length || off1 != off2 {
                return mismatch("different file lengths or offsets");
            }
        }
        off1 = off1.saturating_add(entry.length);
        off2 = off2.saturating_add(len2);
    }
    if off1 != off2 {
        return mismatch("different total lengths");
    }
    Ok(())
}

/// Reads `piece layers` (BEP 52 §metainfo files), as libtorrent does: absent or not a
/// dictionary is no layers; every entry must be valid and match a file.
fn parse_piece_layers(
    value: Option<&Value<'_>>,
    info: &InfoV2,
) -> Result<Vec<Option<Vec<[u8; HASH_LEN]>>>, MetainfoError> {
    let mut layers = vec![None; info.files.len()];
    let Some(Value::Dict(dict)) = value else {
        return Ok(layers);
    };
    let bad = |reason| Err(MetainfoError::BadPieceLayer { reason });
    let mut by_root: BTreeMap<[u8; HASH_LEN], Vec<usize>> = BTreeMap::new();
    for (i, f) in info.files.iter().enumerate() {
        if let (Some(root), true) = (f.pieces_root, f.length > u64::from(info.piece_length)) {
            by_root.entry(root).or_default().push(i);
        }
    }
    for entry in dict.entries() {
        let Ok(root) = <[u8; HASH_LEN]>::try_from(entry.key) else {
            return bad("key is not a 32-byte pieces root");
        };
        let Some(bytes) = entry.value.as_bytes() else {
            return bad("value is not a string");
        };
        if bytes.len() % HASH_LEN != 0 {
            return bad("length is not a multiple of 32");
        }
        let Some(indices) = by_root.remove(&root) else {
            return bad("no file longer than one piece has this root, or it is listed twice");
        };
        let hashes: Vec<[u8; HASH_LEN]> = bytes
            .chunks_exact(HASH_LEN)
            .map(|c| {
                let mut h = [0u8; HASH_LEN];
                h.copy_from_slice(c);
                h
            })
            .collect();
        for i in indices {
            let f = &info.files[i];
            match MerkleTree::for_file(f.length, info.piece_length, root, Some(&hashes)) {
                Ok(_) => layers[i] = Some(hashes.clone()),
                Err(MerkleError::RootMismatch) => {
                    return bad("the hashes do not add up to the pieces root");
                }
                Err(_) => return bad("wrong number of hashes for the file"),
            }
        }
    }
    Ok(layers)
}

/// Appends `piece layers` (key and dictionary) for `files` and their `layers`: each known layer
/// once per distinct root, keys sorted.
pub(crate) fn put_piece_layers(
    out: &mut Vec<u8>,
    files: &[FileV2],
    layers: &[Option<Vec<[u8; HASH_LEN]>>],
) {
    let mut by_root: BTreeMap<[u8; HASH_LEN], &[[u8; HASH_LEN]]> = BTreeMap::new();
    for (f, layer) in files.iter().zip(layers) {
        if let (Some(root), Some(layer)) = (f.pieces_root, layer) {
            by_root.entry(root).or_insert(layer);
        }
    }
    bencode::put_bytes(out, b"piece layers");
    out.push(b'd');
    for (root, layer) in by_root {
        bencode::put_bytes(out, &root);
        let len = layer.len() * HASH_LEN;
        out.extend_from_slice(len.to_string().as_bytes());
        out.push(b':');
        for h in layer {
            out.extend_from_slice(h);
        }
    }
    out.push(b'e');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::MAX_PATH_COMPONENT_LEN;

    /// A test-only bencode builder; dictionaries keep the order given.
    #[derive(Clone)]
    enum B {
        I(i64),
        S(Vec<u8>),
        L(Vec<Self>),
        D(Vec<(Vec<u8>, Self)>),
    }

    fn s(text: &str) -> B {
        B::S(text.as_bytes().to_vec())
    }

    fn d(entries: &[(&str, B)]) -> B {
        B::D(
            entries
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.clone()))
                .collect(),
        )
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
                        bencode::put_bytes(out, k);
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

    const PL: i64 = 16384;

    fn root(n: u8) -> B {
        B::S(vec![n; 32])
    }

    fn leaf(length: i64, pieces_root: Option<B>) -> B {
        let mut entries = vec![("length", B::I(length))];
        if let Some(r) = pieces_root {
            entries.push(("pieces root", r));
        }
        d(&[("", d(&entries))])
    }

    fn info(tree: B) -> Vec<(&'static str, B)> {
        vec![
            ("file tree", tree),
            ("meta version", B::I(2)),
            ("name", s("t")),
            ("piece length", B::I(PL)),
        ]
    }

    fn torrent(info: Vec<(&'static str, B)>) -> Vec<u8> {
        d(&[("info", d(&info))]).bytes()
    }

    fn with_layers(info: Vec<(&'static str, B)>, layers: B) -> Vec<u8> {
        d(&[("info", d(&info)), ("piece layers", layers)]).bytes()
    }

    fn err(bytes: &[u8]) -> MetainfoError {
        Metainfo::from_bytes(bytes).unwrap_err()
    }

    /// A two-file tree of small files (one piece each), roots 1 and 2.
    fn small_tree() -> B {
        d(&[
            ("a", leaf(10, Some(root(1)))),
            ("b", leaf(20, Some(root(2)))),
        ])
    }

    /// A real 3-block file (48 KiB, 3 pieces of 16 KiB) with its layer.
    fn big_file() -> (B, [u8; 32], Vec<u8>) {
        let leaves: Vec<[u8; 32]> = (0u8..3).map(|i| merkle::block_hash(&[i; 16384])).collect();
        let r = merkle::root_of_layer(&leaves, 0, 4);
        (leaf(3 * 16384, Some(B::S(r.to_vec()))), r, leaves.concat())
    }

    #[test]
    fn bep52_file_tree_vector() {
        // BEP 52's example ("Bencoded for fileA only"), completed into a valid info dictionary.
        let a32 = "a".repeat(32);
        let bytes = format!(
            "d4:infod9:file treed4:dir1d4:dir2d9:fileA.txtd0:d6:lengthi1024e11:pieces root32:{a32}eeeee\
             12:meta versioni2e4:name1:t12:piece lengthi16384eee"
        );
        let m = Metainfo::from_bytes(bytes.as_bytes()).unwrap();
        let v2 = m.v2.unwrap();
        assert_eq!(v2.info.files.len(), 1);
        assert_eq!(v2.info.files[0].path, ["dir1", "dir2", "fileA.txt"]);
        assert_eq!(v2.info.files[0].length, 1024);
        assert_eq!(v2.info.files[0].pieces_root, Some([b'a'; 32]));
        assert!(v2.info.multi_file && !v2.hybrid);
        assert_eq!(m.info.name, "t");
        assert_eq!(m.info.files[0].path, ["dir1", "dir2", "fileA.txt"]);
        assert_eq!(m.info.files[1].path, [".pad", "15360"]);
        assert_eq!(m.info.total_length(), 16384);
        assert_eq!(m.info_hash, v2.info_hash.truncated());
    }

    #[test]
    fn single_file_is_named_by_its_key() {
        let mut i = info(d(&[("file.bin", leaf(20_000, Some(root(1))))]));
        i[2] = ("name", s("display name"));
        let m = Metainfo::from_bytes(&torrent(i)).unwrap();
        let v2 = m.v2.unwrap();
        assert!(!v2.info.multi_file && !m.info.multi_file);
        assert_eq!(v2.info.name, "display name");
        assert_eq!(m.info.name, "file.bin");
        // Tail padding, as libtorrent: the last piece is a full piece.
        assert_eq!(m.info.files[0].path, Vec::<String>::new());
        assert_eq!(m.info.files[1].path, [".pad", "12768"]);
        assert_eq!(m.info.piece_count(), 2);
        assert_eq!(m.info.piece_len(1), Some(16384));
    }

    #[test]
    fn meta_version_checked_first() {
        let mut i = info(small_tree());
        i[1] = ("meta version", B::I(3));
        i[3] = ("piece length", B::I(3));
        assert_eq!(
            err(&torrent(i)),
            MetainfoError::UnsupportedMetaVersion { got: 3 }
        );
        let mut i = info(small_tree());
        i.remove(1);
        assert_eq!(err(&torrent(i)), MetainfoError::FileTreeWithoutMetaVersion);
        let mut i = info(small_tree());
        i.remove(0);
        assert_eq!(
            err(&torrent(i)),
            MetainfoError::BadKey {
                key: "info.file tree"
            }
        );
    }

    #[test]
    fn stl9_unsorted_or_duplicate_keys_refused_in_v2() {
        // `name` before `meta version`.
        let mut i = info(small_tree());
        i.swap(1, 2);
        assert_eq!(err(&torrent(i)), MetainfoError::NotCanonical);
        // A duplicate file key in the tree.
        let tree = d(&[
            ("a", leaf(10, Some(root(1)))),
            ("a", leaf(20, Some(root(2)))),
        ]);
        assert_eq!(err(&torrent(info(tree))), MetainfoError::NotCanonical);
        // Unsorted keys deep inside a file entry.
        let tree = d(&[(
            "a",
            d(&[("", d(&[("pieces root", root(1)), ("length", B::I(1))]))]),
        )]);
        assert_eq!(err(&torrent(info(tree))), MetainfoError::NotCanonical);
        // `meta version` 1: v1, but canonical keys required too (libtorrent's soft-error check).
        let v1 = |name_first: bool| {
            let mut entries = vec![
                ("length", B::I(5)),
                ("meta version", B::I(1)),
                ("name", s("x")),
                ("piece length", B::I(PL)),
                ("pieces", B::S(vec![0; 20])),
            ];
            if name_first {
                entries.swap(0, 2);
            }
            torrent(entries)
        };
        assert!(Metainfo::from_bytes(&v1(false)).unwrap().v2.is_none());
        assert_eq!(err(&v1(true)), MetainfoError::NotCanonical);
    }

    #[test]
    fn m6_v2_piece_length_must_be_a_power_of_two_of_16_kib_or_more() {
        for pl in [0, -1, 3, 8192, 16383, 3 * 16384, 1 << 30] {
            let mut i = info(small_tree());
            i[3] = ("piece length", B::I(pl));
            assert_eq!(
                err(&torrent(i)),
                MetainfoError::OutOfRange {
                    field: "info.piece length",
                    got: i128::from(pl)
                },
                "{pl}"
            );
        }
        let mut i = info(small_tree());
        i[3] = ("piece length", B::I(1 << 29));
        assert!(Metainfo::from_bytes(&torrent(i)).is_ok());
    }

    #[test]
    fn pieces_roots_checked() {
        for (r, why) in [
            (None, "missing `pieces root` or not 32 bytes"),
            (
                Some(B::S(vec![1; 31])),
                "missing `pieces root` or not 32 bytes",
            ),
            (Some(B::I(5)), "missing `pieces root` or not 32 bytes"),
            (Some(root(0)), "all-zero `pieces root`"),
        ] {
            let tree = d(&[("a", leaf(10, r))]);
            assert_eq!(
                err(&torrent(info(tree))),
                MetainfoError::BadFileTree {
                    path: "a".into(),
                    reason: why
                }
            );
        }
        // Empty files need no root; a stray one is ignored.
        let tree = d(&[
            ("a", leaf(10, Some(root(1)))),
            ("e", leaf(0, None)),
            ("f", leaf(0, Some(root(0)))),
        ]);
        let m = Metainfo::from_bytes(&torrent(info(tree))).unwrap();
        let files = &m.v2.unwrap().info.files;
        assert_eq!((files[1].pieces_root, files[2].pieces_root), (None, None));
    }

    #[test]
    fn bad_tree_shapes_refused() {
        let bad = |tree: B| err(&torrent(info(tree)));
        // The root itself is a file.
        assert!(matches!(
            bad(d(&[("", d(&[("length", B::I(1))]))])),
            MetainfoError::BadFileTree { .. }
        ));
        // A file entry with a sibling key: a directory with an empty key.
        assert!(matches!(
            bad(d(&[(
                "a",
                d(&[
                    ("", d(&[("length", B::I(1))])),
                    ("b", leaf(1, Some(root(1))))
                ])
            )])),
            MetainfoError::BadFileTree {
                reason: "empty key outside a file entry",
                ..
            }
        ));
        assert!(matches!(
            bad(d(&[("a", B::I(1))])),
            MetainfoError::BadFileTree {
                reason: "tree node is not a dictionary",
                ..
            }
        ));
        assert!(matches!(
            bad(d(&[("a", d(&[("", B::L(vec![]))]))])),
            MetainfoError::BadFileTree {
                reason: "file entry is not a dictionary",
                ..
            }
        ));
        assert_eq!(bad(d(&[])), MetainfoError::EmptyFileList);
        assert_eq!(
            bad(d(&[("dir", d(&[]))])),
            MetainfoError::EmptyFileList,
            "empty directories are skipped"
        );
        assert_eq!(
            bad(d(&[("a", leaf(0, None))])),
            MetainfoError::OutOfRange {
                field: "info total length",
                got: 0
            }
        );
        assert!(matches!(
            bad(d(&[("a", leaf(-1, None))])),
            MetainfoError::OutOfRange { .. }
        ));
        assert!(matches!(
            bad(d(&[("a", d(&[("", d(&[]))]))])),
            MetainfoError::BadKey { .. }
        ));
    }

    #[test]
    fn m1_m5_unsafe_tree_paths_refused() {
        let long = "x".repeat(MAX_PATH_COMPONENT_LEN + 1);
        for name in [
            "..",
            ".",
            "a/b",
            "a\\b",
            "C:",
            "nul\0",
            &long,
            "r\u{202E}txt",
        ] {
            let tree = d(&[("dir", d(&[(name, leaf(1, Some(root(1))))]))]);
            assert!(
                matches!(err(&torrent(info(tree))), MetainfoError::BadPath { .. }),
                "{name:?}"
            );
        }
        let tree = B::D(vec![(vec![0xff], leaf(1, Some(root(1))))]);
        assert!(matches!(
            err(&torrent(info(tree))),
            MetainfoError::BadPath { .. }
        ));
        // Nesting is bounded by bencode's depth limit before the tree's own.
        let mut deep = leaf(1, Some(root(1)));
        for _ in 0..MAX_FILE_TREE_DEPTH + 5 {
            deep = d(&[("d", deep)]);
        }
        assert!(Metainfo::from_bytes(&torrent(info(deep))).is_err());
    }

    #[test]
    fn too_many_files_refused() {
        let mut tree = b"d".to_vec();
        let mut names: Vec<String> = (0..=MAX_FILES).map(|i| format!("{i:06}")).collect();
        names.sort();
        for name in &names {
            bencode::put_bytes(&mut tree, name.as_bytes());
            tree.extend_from_slice(b"d0:d6:lengthi0eee");
        }
        tree.push(b'e');
        let mut bytes = b"d4:infod9:file tree".to_vec();
        bytes.extend(tree);
        bytes.extend(b"12:meta versioni2e4:name1:t12:piece lengthi16384eee");
        assert_eq!(
            err(&bytes),
            MetainfoError::OutOfRange {
                field: "info.file tree (files)",
                got: MAX_FILES as i128 + 1
            }
        );
    }

    #[test]
    fn piece_layers_checked_against_roots() {
        let (file, r, layer) = big_file();
        let tree = || d(&[("big", file.clone()), ("small", leaf(5, Some(root(9))))]);
        let ok = with_layers(info(tree()), B::D(vec![(r.to_vec(), B::S(layer.clone()))]));
        let m = Metainfo::from_bytes(&ok).unwrap();
        let v2 = m.v2.as_ref().unwrap();
        assert_eq!(v2.piece_layers[0].as_ref().map(Vec::len), Some(3));
        assert_eq!(v2.piece_layers[1], None);
        assert!(v2.merkle_tree(0).is_ok());
        // Absent or not a dictionary: no layers (as libtorrent); the tree then needs one.
        for layers in [None, Some(B::I(1))] {
            let bytes = match layers {
                None => torrent(info(tree())),
                Some(l) => with_layers(info(tree()), l),
            };
            let v2 = Metainfo::from_bytes(&bytes).unwrap().v2.unwrap();
            assert_eq!(v2.piece_layers, vec![None, None]);
            assert_eq!(v2.merkle_tree(0), Err(MerkleError::MissingPieceLayer));
            assert!(v2.merkle_tree(1).is_ok());
        }
        let mut wrong = layer.clone();
        wrong[40] ^= 1;
        let cases: Vec<(B, &str)> = vec![
            (
                B::D(vec![(r.to_vec(), B::S(wrong))]),
                "the hashes do not add up to the pieces root",
            ),
            (
                B::D(vec![(r.to_vec(), B::S(layer[..64].to_vec()))]),
                "wrong number of hashes for the file",
            ),
            (
                B::D(vec![(r.to_vec(), B::S(layer[..65].to_vec()))]),
                "length is not a multiple of 32",
            ),
            (
                B::D(vec![(r[..31].to_vec(), B::S(layer.clone()))]),
                "key is not a 32-byte pieces root",
            ),
            (
                B::D(vec![(vec![9; 32], B::S(vec![]))]),
                "no file longer than one piece has this root, or it is listed twice",
            ),
            (
                B::D(vec![
                    (r.to_vec(), B::S(layer.clone())),
                    (r.to_vec(), B::S(layer.clone())),
                ]),
                "no file longer than one piece has this root, or it is listed twice",
            ),
            (B::D(vec![(r.to_vec(), B::I(3))]), "value is not a string"),
        ];
        for (layers, reason) in cases {
            assert_eq!(
                err(&with_layers(info(tree()), layers)),
                MetainfoError::BadPieceLayer { reason }
            );
        }
    }

    /// The hybrid of `small_tree`-like files a (10 bytes) and b (20 bytes): v1 files with the
    /// padding `pads` after a (and after b when `tail`).
    fn hybrid(a_len: i64, pad: Option<i64>, tail: bool, pieces: usize) -> Vec<u8> {
        let file =
            |len: i64, name: &str| d(&[("length", B::I(len)), ("path", B::L(vec![s(name)]))]);
        let pad_file = |len: i64| {
            d(&[
                ("attr", s("p")),
                ("length", B::I(len)),
                ("path", B::L(vec![s(".pad"), s(&len.to_string())])),
            ])
        };
        let mut files = vec![file(a_len, "a")];
        if let Some(p) = pad {
            files.push(pad_file(p));
        }
        files.push(file(20, "b"));
        if tail {
            files.push(pad_file(PL - 20));
        }
        torrent(vec![
            ("file tree", small_tree()),
            ("files", B::L(files)),
            ("meta version", B::I(2)),
            ("name", s("t")),
            ("piece length", B::I(PL)),
            ("pieces", B::S(vec![7; 20 * pieces])),
        ])
    }

    #[test]
    fn hybrid_sides_must_agree() {
        let m = Metainfo::from_bytes(&hybrid(10, Some(PL - 10), true, 2)).unwrap();
        assert!(m.v2.as_ref().unwrap().hybrid && m.has_v1());
        assert_eq!(m.info_hash, info_hash_of(&m.info_bytes));
        assert_eq!(m.info.pieces, vec![[7; 20]; 2]);
        // Without tail padding (libtorrent <= 2.0.7): accepted.
        let old = Metainfo::from_bytes(&hybrid(10, Some(PL - 10), false, 2)).unwrap();
        assert_eq!(old.info.piece_len(1), Some(20));
        // No padding after `a`: b is at another offset.
        assert_eq!(
            err(&hybrid(10, None, true, 2)),
            MetainfoError::HybridMismatch {
                reason: "a file on one side is padding or empty on the other"
            }
        );
        assert_eq!(
            err(&hybrid(10, None, false, 1)),
            MetainfoError::HybridMismatch {
                reason: "different numbers of files (with padding)"
            }
        );
        assert_eq!(
            err(&hybrid(11, Some(PL - 11), true, 2)),
            MetainfoError::HybridMismatch {
                reason: "different file lengths or offsets"
            }
        );
        assert_eq!(
            err(&hybrid(10, Some(PL - 9), true, 3)),
            MetainfoError::HybridMismatch {
                reason: "different file lengths or offsets"
            }
        );
        assert_eq!(
            err(&hybrid(10, Some(PL - 10), true, 3)),
            MetainfoError::PieceCountMismatch {
                got: 3,
                expected: 2
            }
        );
        // A single-file hybrid whose `name` is not its file's name.
        let single = |name: &str| {
            torrent(vec![
                ("file tree", d(&[("f", leaf(10, Some(root(1))))])),
                ("length", B::I(10)),
                ("meta version", B::I(2)),
                ("name", s(name)),
                ("piece length", B::I(PL)),
                ("pieces", B::S(vec![7; 20])),
            ])
        };
        assert!(Metainfo::from_bytes(&single("f")).is_ok());
        assert_eq!(
            err(&single("g")),
            MetainfoError::HybridMismatch {
                reason: "different file paths"
            }
        );
    }

    #[test]
    fn v2_only_stray_pieces_checked_like_libtorrent() {
        let mut i = info(small_tree());
        i.push(("pieces", B::S(vec![0; 40])));
        assert!(Metainfo::from_bytes(&torrent(i)).is_ok());
        let mut i = info(small_tree());
        i.push(("pieces", B::S(vec![0; 20])));
        assert_eq!(
            err(&torrent(i)),
            MetainfoError::PieceCountMismatch {
                got: 1,
                expected: 2
            }
        );
    }

    #[test]
    fn piece_map_locates_pieces_past_empty_files() {
        let info = InfoV2 {
            name: "t".into(),
            piece_length: 16384,
            files: vec![
                FileV2 {
                    path: vec!["e0".into()],
                    length: 0,
                    pieces_root: None,
                },
                FileV2 {
                    path: vec!["a".into()],
                    length: 40_000,
                    pieces_root: Some([1; 32]),
                },
                FileV2 {
                    path: vec!["e1".into()],
                    length: 0,
                    pieces_root: None,
                },
                FileV2 {
                    path: vec!["b".into()],
                    length: 5,
                    pieces_root: Some([2; 32]),
                },
                FileV2 {
                    path: vec!["e2".into()],
                    length: 0,
                    pieces_root: None,
                },
            ],
            multi_file: true,
        };
        let map = PieceMap::new(&info);
        assert_eq!(map.piece_count(), 4);
        assert_eq!(map.file_pieces(1), 0..3);
        assert_eq!(map.file_pieces(2), 3..3);
        assert_eq!(map.file_pieces(9), 0..0);
        let at = |p| {
            map.locate(p)
                .map(|l| (l.file, l.piece_in_file, l.data_len, l.leaves))
        };
        assert_eq!(at(0), Some((1, 0, 16384, 1)));
        assert_eq!(at(2), Some((1, 2, 40_000 - 32768, 1)));
        assert_eq!(at(3), Some((3, 0, 5, 1)));
        assert_eq!(at(4), None);
        let padded: Vec<(String, u64)> = info
            .padded_files(false)
            .into_iter()
            .map(|f| (f.path.join("/"), f.length))
            .collect();
        assert_eq!(
            padded,
            [
                ("e0".into(), 0),
                ("a".into(), 40_000),
                (".pad/9152".into(), 9152),
                ("e1".into(), 0),
                ("b".into(), 5),
                ("e2".into(), 0),
            ]
        );
    }

    #[test]
    fn new_v2_sorts_files_and_round_trips() {
        let (_, r, layer) = big_file();
        let layer: Vec<[u8; 32]> = layer.chunks(32).map(|c| c.try_into().unwrap()).collect();
        let info = InfoV2 {
            name: "t".into(),
            piece_length: 16384,
            files: vec![
                FileV2 {
                    path: vec!["z".into()],
                    length: 5,
                    pieces_root: Some([2; 32]),
                },
                FileV2 {
                    path: vec!["d".into(), "big".into()],
                    length: 3 * 16384,
                    pieces_root: Some(r),
                },
            ],
            multi_file: true,
        };
        let m = Metainfo::new_v2(
            info,
            vec![None, Some(layer.clone())],
            None,
            true,
            vec![vec![" http://t/ ".into()], vec![]],
            vec!["".into()],
        )
        .unwrap();
        let v2 = m.v2.as_ref().unwrap();
        assert_eq!(v2.info.files[0].path, ["d", "big"]);
        assert_eq!(v2.piece_layers, vec![Some(layer), None]);
        assert!(m.info.private);
        assert_eq!(m.announce.as_deref(), Some("http://t/"));
        assert!(m.url_list.is_empty());
        assert_eq!(Metainfo::from_bytes(&m.to_bytes()).unwrap(), m);
        assert!(matches!(
            Metainfo::new_v2(v2.info.clone(), vec![], None, false, vec![], vec![]),
            Err(MetainfoError::BadPieceLayer { .. })
        ));
    }

    #[test]
    fn info_hash_v2_text() {
        let h = InfoHashV2::of(b"d4:name1:xe");
        assert_eq!(InfoHashV2::from_hex(&h.to_hex()), Some(h));
        assert_eq!(InfoHashV2::from_hex(&h.to_hex().to_uppercase()), Some(h));
        assert_eq!(InfoHashV2::from_hex("ab"), None);
        assert_eq!(InfoHashV2::from_hex(&"g".repeat(64)), None);
        assert_eq!(&h.truncated().0[..], &h.0[..20]);
        assert_eq!(format!("{h:?}"), format!("InfoHashV2({h})"));
    }

    #[test]
    fn short_input_sweep_never_panics() {
        let (file, r, layer) = big_file();
        let bytes = with_layers(
            info(d(&[("big", file), ("small", leaf(5, Some(root(9))))])),
            B::D(vec![(r.to_vec(), B::S(layer))]),
        );
        assert!(Metainfo::from_bytes(&bytes).is_ok());
        for n in 0..bytes.len() {
            assert!(Metainfo::from_bytes(&bytes[..n]).is_err());
        }
    }
}
