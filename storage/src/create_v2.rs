//! v2-only and hybrid torrent creation (BEP 52).
//!
//! The input is walked as for a v1 torrent (symbolic links below a directory skipped, names
//! validated, the same limits), then its files are put in BEP 52 file-tree order: paths compared
//! component by component, bytewise, so `x/y` comes before `x.txt` (libtorrent's order, and the
//! order of a hybrid's v1 `files`, which must match the tree). Every non-empty file starts on a
//! piece boundary; the gap after it is padding, zeros that are never read from disk.
//!
//! Each piece is read once into a per-thread buffer and hashed from it twice over: SHA-256 per
//! 16 KiB block, reduced to the piece's merkle root (the v2 piece hash) and, for a hybrid,
//! SHA-1 over the whole piece with its padding (the v1 hash) — see `hash_v2.rs`. A file's piece
//! hashes are its piece layer (kept in `piece layers` when the file is longer than one piece);
//! their root is its `pieces root` (BEP 52 §metainfo files).
//!
//! For the same files, name, piece length and `private` flag, the `info` dictionary, and so
//! both info-hashes, equal libtorrent 2.0.8's (`create_torrent(fs, piece_size)` for a hybrid,
//! with `flags=create_torrent.v2_only` for v2): the same keys, the same file order, BEP 47
//! padding files `{attr: "p", path: [".pad", "<N>"]}` after every file that does not end on a
//! piece boundary, the last one included when there is more than one file.

use std::path::{Path, PathBuf};

use seednode_wire::merkle::{self, HASH_LEN};
use seednode_wire::metainfo::Metainfo;
use seednode_wire::metainfo_v2::{FileV2, InfoV2, PieceMap};

use crate::create::{
    CreateError, CreateOptions, Input, choose_piece_length, estimate_options_len,
    estimate_string_len, read_input, threads, torrent_name, total_length, with_options,
};
use crate::files::{Backing, FileSet, FileSpec};
use crate::hash_v2::{PieceDigest, hash_pieces_v2};
use crate::limits::MAX_TORRENT_LEN;

/// Which metainfo format a new torrent uses ([`CreateOptions::version`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum TorrentVersion {
    /// BEP 3 only: the default, byte-for-byte mktorrent's format.
    #[default]
    V1,
    /// BEP 52 only: `meta version` 2, `file tree`, `piece layers`; one SHA-256 info-hash (peers
    /// and trackers use its first 20 bytes). Only BEP 52 clients (libtorrent 2, qBittorrent 4.4+)
    /// can use it.
    V2,
    /// BEP 52 §Upgrade Path: a v2 torrent whose `info` also carries the v1 `files` (with BEP 47
    /// padding) or `length`, and `pieces`, for the same piece-aligned data. Two info-hashes: the
    /// SHA-1 one ([`Metainfo::info_hash`]) for v1 swarms, the SHA-256 one for v2.
    Hybrid,
}

/// [`create_torrent`](crate::create_torrent) for [`TorrentVersion::V2`] and
/// [`TorrentVersion::Hybrid`].
pub(crate) fn create_v2(
    path: &Path,
    opts: &CreateOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Metainfo, CreateError> {
    let hybrid = opts.version == TorrentVersion::Hybrid;
    let name = torrent_name(path, opts.name.as_deref())?;
    let Input {
        root,
        files: mut found,
        multi_file,
        ..
    } = read_input(path, opts.symlinks)?;
    if !multi_file {
        // BEP 52: a single file's tree entry is named after the torrent.
        for f in &mut found {
            f.rel = vec![name.clone()];
        }
    }
    // BEP 52 file-tree order: component by component, bytewise.
    found.sort_unstable_by(|a, b| a.rel.cmp(&b.rel));
    if multi_file && !hybrid && matches!(found.as_slice(), [only] if only.rel.len() == 1) {
        return Err(CreateError::SingleFileDirectory {
            path: path.to_path_buf(),
        });
    }
    let total_length = total_length(&found, path)?;
    let piece_length = choose_piece_length(opts, total_length)?;
    let info = InfoV2 {
        name,
        piece_length,
        files: found
            .iter()
            .map(|f| FileV2 {
                path: f.rel.clone(),
                length: f.length,
                pieces_root: None,
            })
            .collect(),
        multi_file,
    };
    let estimated = estimate_torrent_len(&info, hybrid, opts);
    if estimated > MAX_TORRENT_LEN {
        return Err(CreateError::TorrentTooLarge {
            estimated,
            limit: MAX_TORRENT_LEN,
        });
    }
    // The piece space as the finished torrent's `info` will describe it: a hybrid's v1 files
    // (tail padding when there is more than one file), or a v2 torrent's view (always).
    let tail_padding = !hybrid || info.files.len() > 1;
    let mut slots: Vec<FileSpec> = Vec::with_capacity(found.len() * 2);
    for (f, gap) in found.iter().zip(info.paddings(tail_padding)) {
        slots.push(f.spec());
        if gap > 0 {
            slots.push(FileSpec {
                path: PathBuf::new(),
                rel: PathBuf::new(),
                length: gap,
                backing: Backing::Padding,
            });
        }
    }
    let file_set = FileSet::new(root, slots)?;
    let map = PieceMap::new(&info);
    let digests = hash_pieces_v2(&file_set, &info, &map, hybrid, threads(opts), progress)?;

    build_v2(info, &map, &digests, hybrid, opts)
}

/// The v2 or hybrid metainfo of `info` (whose `pieces_root`s are still unset) from the digests
/// of every piece of its piece space (`map`): each file's root from its pieces (its piece layer
/// when longer than one piece), the piece layers, and for a hybrid the v1 `pieces`, wrapped with
/// the fields of `opts` outside `info`. The one way both creation from disk and streaming ingest
/// build a v2 or hybrid torrent.
///
/// # Errors
/// [`CreateError::Invalid`] when the result does not load.
pub(crate) fn build_v2(
    mut info: InfoV2,
    map: &PieceMap,
    digests: &[PieceDigest],
    hybrid: bool,
    opts: &CreateOptions,
) -> Result<Metainfo, CreateError> {
    let piece_length = info.piece_length;
    let piece_height = info.blocks_per_piece().max(1).ilog2();
    let mut layers: Vec<Option<Vec<[u8; HASH_LEN]>>> = Vec::with_capacity(info.files.len());
    for (i, file) in info.files.iter_mut().enumerate() {
        let range = map.file_pieces(i);
        let roots: Vec<[u8; HASH_LEN]> = digests
            .get(range.start as usize..range.end as usize)
            .unwrap_or_default()
            .iter()
            .map(|d| d.v2)
            .collect();
        match roots.as_slice() {
            [] => layers.push(None),
            [only] if file.length <= u64::from(piece_length) => {
                file.pieces_root = Some(*only);
                layers.push(None);
            }
            _ => {
                let height = merkle::tree_height(merkle::block_count(file.length));
                let width = 1u64 << (height - piece_height);
                file.pieces_root = Some(merkle::root_of_layer(&roots, piece_height, width));
                layers.push(Some(roots));
            }
        }
    }
    let v1_pieces = hybrid.then(|| digests.iter().map(|d| d.v1).collect());
    let metainfo = Metainfo::new_v2(
        info,
        layers,
        v1_pieces,
        opts.private,
        opts.trackers.clone(),
        opts.url_list.clone(),
    )?;
    Ok(with_options(metainfo, opts))
}

/// Upper estimate of the bencoded `.torrent` size in bytes (saturating): the file tree, piece
/// layers, and for a hybrid the v1 `files` with padding entries and `pieces`.
pub(crate) fn estimate_torrent_len(info: &InfoV2, hybrid: bool, opts: &CreateOptions) -> u64 {
    let pl = u64::from(info.piece_length);
    let mut total = estimate_string_len(&info.name).saturating_add(256);
    for f in &info.files {
        let path = f
            .path
            .iter()
            .map(|c| estimate_string_len(c))
            .fold(0u64, u64::saturating_add);
        let pieces = f.length.div_ceil(pl);
        // `d0:d6:lengthi…e11:pieces root32:…ee` and its key; a layer entry when > 1 piece.
        total = total.saturating_add(path).saturating_add(100);
        if pieces > 1 {
            total = total.saturating_add(pieces.saturating_mul(32).saturating_add(60));
        }
        if hybrid {
            // The v1 entry (path again), its padding entry, and its SHA-1s.
            total = total
                .saturating_add(path)
                .saturating_add(100)
                .saturating_add(pieces.saturating_mul(20));
        }
    }
    total.saturating_add(estimate_options_len(opts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_grows_with_pieces_and_hybrid() {
        let info = InfoV2 {
            name: "n".into(),
            piece_length: 16384,
            files: vec![FileV2 {
                path: vec!["f".into()],
                length: 16384 * 100,
                pieces_root: None,
            }],
            multi_file: false,
        };
        let opts = CreateOptions::default();
        let v2 = estimate_torrent_len(&info, false, &opts);
        let hybrid = estimate_torrent_len(&info, true, &opts);
        assert!(v2 >= 100 * 32, "{v2}");
        assert!(hybrid >= v2 + 100 * 20, "{hybrid}");
    }
}
