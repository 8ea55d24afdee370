//! The BEP 52 read-and-hash loop, shared by v2/hybrid creation and [`verify_v2`].
//!
//! Pieces of a v2 torrent never span files (every file starts on a piece boundary), so each
//! piece is hashed on its own: its bytes are read once, by `pread`, into a per-thread buffer, and
//! from that same buffer fed to SHA-256 one 16 KiB block at a time (the merkle leaves, reduced to
//! the piece's root at its end) and, for a hybrid torrent, to SHA-1 over the whole piece of the
//! padded stream (the v1 piece hash). No byte is read or copied twice. Threads take chunks of
//! contiguous pieces from a shared queue, as in `hash.rs` (its `hash_in_runs`).

use std::sync::atomic::{AtomicBool, Ordering};

use seednode_wire::merkle::{self, BLOCK_LEN, HASH_LEN, LeafSpan};
use seednode_wire::metainfo_v2::{InfoV2, MetainfoV2, PieceMap};
use sha1::{Digest as _, Sha1};
use sha2::Sha256;

use crate::files::FileSet;
use crate::hash::{Progress, effective_threads, hash_in_runs};
use crate::limits::{MAX_BLOCK_HASHES_PER_CALL, MAX_LEAVES_PER_PIECE, READ_BUF_LEN};
use crate::{Storage, StorageError};

/// The hashes of one piece.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PieceDigest {
    /// The piece's v2 hash: the merkle root over its blocks ([`merkle::piece_leaves`] wide).
    pub(crate) v2: [u8; HASH_LEN],
    /// SHA-1 of the whole piece of the padded stream (hybrid only; zeros otherwise).
    pub(crate) v1: [u8; 20],
}

/// Hashes one piece from its bytes as they stream by, in chunks of any size, each byte seen once:
/// SHA-1 over the whole piece (when v1 hashes are wanted), SHA-256 per 16 KiB block of the file's
/// data (the merkle leaves, when v2 hashes are wanted), reduced to the piece's root by
/// [`PieceHasher::finish`]. Shared by creation and verification (whole pieces read from disk) and
/// by streaming ingest (`crate::ingest`, bytes from the network, hashed from the buffer that is
/// written to disk).
#[derive(Clone)]
pub(crate) struct PieceHasher {
    /// SHA-1 of the piece so far, when v1 hashes are wanted.
    pub(crate) sha1: Option<Sha1>,
    /// Whether v2 leaves are computed.
    pub(crate) v2: bool,
    /// SHA-256 of the block in progress.
    pub(crate) block: Sha256,
    /// Bytes in the block in progress (below 16 KiB).
    pub(crate) block_fill: u32,
    /// Leaf hashes of the piece's whole blocks so far.
    pub(crate) leaves: Vec<[u8; HASH_LEN]>,
}

impl PieceHasher {
    /// A hasher at the start of a piece: SHA-1 when `sha1`, merkle leaves when `v2`.
    pub(crate) fn new(sha1: bool, v2: bool) -> Self {
        Self {
            sha1: sha1.then(Sha1::new),
            v2,
            block: Sha256::new(),
            block_fill: 0,
            leaves: Vec::new(),
        }
    }

    /// Feeds file data (hashed by both).
    ///
    /// # Errors
    /// [`StorageError::LengthOverflow`] past [`MAX_LEAVES_PER_PIECE`] leaves (a piece longer
    /// than any torrent may have).
    pub(crate) fn data(&mut self, mut bytes: &[u8]) -> Result<(), StorageError> {
        if let Some(sha1) = &mut self.sha1 {
            sha1.update(bytes);
        }
        if !self.v2 {
            return Ok(());
        }
        while !bytes.is_empty() {
            // block_fill < BLOCK_LEN.
            let room = (BLOCK_LEN - self.block_fill) as usize;
            let take = room.min(bytes.len());
            let (now, later) = bytes.split_at(take);
            self.block.update(now);
            // take <= room < BLOCK_LEN, a u32.
            self.block_fill += take as u32;
            bytes = later;
            if self.block_fill == BLOCK_LEN {
                self.push_leaf()?;
            }
        }
        Ok(())
    }

    /// Feeds padding after the file's data (BEP 47): v1 hashes it, v2 does not.
    pub(crate) fn padding(&mut self, bytes: &[u8]) {
        if let Some(sha1) = &mut self.sha1 {
            sha1.update(bytes);
        }
    }

    /// Ends the block in progress as a leaf.
    fn push_leaf(&mut self) -> Result<(), StorageError> {
        if self.leaves.len() >= MAX_LEAVES_PER_PIECE {
            return Err(StorageError::LengthOverflow);
        }
        self.leaves.push(self.block.finalize_reset().into());
        self.block_fill = 0;
        Ok(())
    }

    /// The piece's hashes, its v2 root over `width` leaves ([`merkle::piece_leaves`]); the
    /// hasher is reset for the next piece.
    ///
    /// # Errors
    /// As [`PieceHasher::data`].
    pub(crate) fn finish(&mut self, width: u64) -> Result<PieceDigest, StorageError> {
        if self.block_fill > 0 {
            self.push_leaf()?;
        }
        let digest = PieceDigest {
            v2: if self.v2 {
                merkle::root_of_layer(&self.leaves, 0, width)
            } else {
                [0; HASH_LEN]
            },
            v1: self
                .sha1
                .as_mut()
                .map_or([0; 20], |sha1| sha1.finalize_reset().into()),
        };
        self.leaves.clear();
        Ok(digest)
    }
}

/// Hashes every piece of `info`'s piece space, read from `files` (the piece space itself:
/// padding after files as `Backing::Padding`). With `sha1`, also the SHA-1 of each whole piece
/// (padding included, the piece as long as `files` makes it); without, padding is not read.
///
/// # Errors
/// [`StorageError::BadGeometry`] when `files` is shorter than the piece space; the first read
/// error of any thread (the others stop at their next piece).
pub(crate) fn hash_pieces_v2(
    files: &FileSet,
    info: &InfoV2,
    map: &PieceMap,
    sha1: bool,
    threads: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<PieceDigest>, StorageError> {
    let piece_count = map.piece_count();
    let mut out = vec![PieceDigest::default(); piece_count as usize];
    if out.is_empty() {
        return Ok(out);
    }
    let piece_length = u64::from(info.piece_length);
    let threads = effective_threads(threads, files.total_length(), piece_count);
    let progress = Progress::new(progress);
    let job = PieceJob {
        files,
        map,
        piece_length,
        sha1,
    };
    hash_in_runs(
        &mut out,
        piece_length,
        threads,
        || {
            // A power of two of at least 16 KiB, so every read but a piece's last ends on a
            // block.
            let buf = vec![0u8; READ_BUF_LEN.min(info.piece_length as usize)];
            let mut hasher = PieceHasher::new(sha1, true);
            hasher.leaves = Vec::with_capacity((info.piece_length / BLOCK_LEN).max(1) as usize);
            (buf, hasher)
        },
        |(buf, hasher): &mut (Vec<u8>, PieceHasher),
         first: u32,
         slots: &mut [PieceDigest],
         abort: &AtomicBool| {
            for (k, slot) in slots.iter_mut().enumerate() {
                if abort.load(Ordering::Relaxed) {
                    return Ok(());
                }
                // first + k < piece_count, a u32.
                let piece = u32::try_from(k)
                    .ok()
                    .and_then(|k| first.checked_add(k))
                    .ok_or(StorageError::LengthOverflow)?;
                *slot = job.hash(piece, buf, hasher, &progress)?;
            }
            Ok(())
        },
    )?;
    Ok(out)
}

/// What every piece of one hashing run shares.
struct PieceJob<'a> {
    files: &'a FileSet,
    map: &'a PieceMap,
    piece_length: u64,
    sha1: bool,
}

impl PieceJob<'_> {
    /// Reads piece `piece` through `buf` and hashes it.
    fn hash(
        &self,
        piece: u32,
        buf: &mut [u8],
        hasher: &mut PieceHasher,
        progress: &Progress<'_>,
    ) -> Result<PieceDigest, StorageError> {
        let total = self.files.total_length();
        let bad = || StorageError::BadGeometry {
            piece_length: u32::try_from(self.piece_length).unwrap_or(u32::MAX),
            pieces: self.map.piece_count() as usize,
            total_length: total,
        };
        let loc = self.map.locate(piece).ok_or_else(bad)?;
        let start = u64::from(piece) * self.piece_length;
        let piece_len = total
            .checked_sub(start)
            .map(|rest| rest.min(self.piece_length))
            .ok_or_else(bad)?;
        let data_len = u64::from(loc.data_len);
        if piece_len < data_len {
            return Err(bad());
        }
        let read_len = if self.sha1 { piece_len } else { data_len };
        hasher.leaves.clear();
        let mut pos = 0u64;
        while pos < read_len {
            let n = usize::try_from(read_len - pos).map_or(buf.len(), |left| left.min(buf.len()));
            let chunk = &mut buf[..n];
            self.files.read_exact_at(start + pos, chunk)?;
            // The file's bytes in this chunk, then padding (read only for SHA-1).
            let data = usize::try_from(data_len.saturating_sub(pos)).map_or(n, |d| d.min(n));
            let (data, padding) = chunk.split_at(data);
            hasher.data(data).map_err(|_| bad())?;
            hasher.padding(padding);
            pos += n as u64;
            progress.add(n as u64);
        }
        hasher.finish(loc.leaves).map_err(|_| bad())
    }
}

/// Hashes every piece of a v2 or hybrid torrent's data with SHA-256 merkle trees (BEP 52) and
/// compares it with the torrent's hashes: `result[i]` is true when piece `i` of the piece space
/// matches.
///
/// `storage` must have been opened with the torrent's
/// [`Metainfo::info`](seednode_wire::metainfo::Metainfo::info). A piece is checked against its
/// entry in the file's piece layer, or, for a file of one piece, against the file's
/// `pieces root`. A file longer than one piece whose layer the torrent lacks is checked as a
/// whole against its root: all its pieces are good or none is. `threads` and `progress` are as
/// in [`verify`](crate::verify); padding is not read. Missing or truncated data is an error, not
/// bad pieces (SECURITY S5).
///
/// # Errors
/// [`StorageError::InfoMismatch`] when the piece length or piece count of `storage` differs from
/// `v2`'s; [`StorageError::BadGeometry`] when its files are shorter than the piece space; any read
/// error of [`Storage::read_piece`].
pub fn verify_v2(
    storage: &Storage,
    v2: &MetainfoV2,
    threads: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<bool>, StorageError> {
    let info = &v2.info;
    let map = PieceMap::new(info);
    if storage.piece_length() != info.piece_length {
        return Err(StorageError::InfoMismatch {
            what: "piece length",
        });
    }
    if storage.piece_count() != map.piece_count() {
        return Err(StorageError::InfoMismatch {
            what: "piece count",
        });
    }
    let digests = hash_pieces_v2(storage.files(), info, &map, false, threads, progress)?;
    let mut good = vec![false; digests.len()];
    let piece_height = info.blocks_per_piece().max(1).ilog2();
    for (i, file) in info.files.iter().enumerate() {
        let range = map.file_pieces(i);
        let (Some(root), false) = (file.pieces_root, range.is_empty()) else {
            continue;
        };
        let pieces = range.start as usize..range.end as usize;
        let roots: Vec<[u8; HASH_LEN]> = digests[pieces.clone()].iter().map(|d| d.v2).collect();
        let layer = v2.piece_layers.get(i).and_then(Option::as_deref);
        if file.length <= u64::from(info.piece_length) {
            good[pieces.start] = roots.first() == Some(&root);
        } else if let Some(layer) = layer {
            for (k, slot) in good[pieces].iter_mut().enumerate() {
                *slot = layer.get(k) == roots.get(k);
            }
        } else {
            let height = merkle::tree_height(merkle::block_count(file.length));
            let width = 1u64 << (height - piece_height);
            let ok = merkle::root_of_layer(&roots, piece_height, width) == root;
            good[pieces].fill(ok);
        }
    }
    Ok(good)
}

/// The leaf hashes (SHA-256 of each 16 KiB block, the last maybe short) of `span` of file `file`
/// of a v2 or hybrid torrent: what
/// [`MerkleTree::hashes`](seednode_wire::merkle::MerkleTree::hashes) needs to answer a
/// `hash request` below the piece layer (its `leaves_needed` names the span).
///
/// `storage` is opened with the torrent's `Metainfo::info`; `map` is `PieceMap::new(info)`.
/// Reads only the span's bytes (at most one piece, [`MAX_BLOCK_HASHES_PER_CALL`] blocks).
///
/// # Errors
/// [`StorageError::NoSuchFile`]; [`StorageError::RangeOutOfBounds`] for an empty span, one past
/// the file's last block or longer than one piece; any read error of [`Storage::read_block`].
pub fn block_hashes_v2(
    storage: &Storage,
    info: &InfoV2,
    map: &PieceMap,
    file: usize,
    span: LeafSpan,
) -> Result<Vec<[u8; HASH_LEN]>, StorageError> {
    let f = info.files.get(file).ok_or(StorageError::NoSuchFile {
        index: file,
        count: info.files.len(),
    })?;
    let block = u64::from(BLOCK_LEN);
    let out_of_bounds = StorageError::RangeOutOfBounds {
        offset: span.first_block.saturating_mul(block),
        len: span.blocks.saturating_mul(block),
        total: f.length,
    };
    let max_blocks = u64::from(info.blocks_per_piece()).min(MAX_BLOCK_HASHES_PER_CALL as u64);
    let end_block = span.first_block.checked_add(span.blocks);
    if span.blocks == 0
        || span.blocks > max_blocks
        || end_block.is_none_or(|end| end > merkle::block_count(f.length))
    {
        return Err(out_of_bounds);
    }
    let begin = span.first_block * block;
    let len = (span.blocks * block).min(f.length - begin);
    let file_start = u64::from(map.file_pieces(file).start) * u64::from(info.piece_length);
    let mut buf = vec![0u8; READ_BUF_LEN.min(info.piece_length as usize)];
    let mut leaves = Vec::with_capacity(span.blocks as usize);
    let mut pos = 0u64;
    while pos < len {
        let n = usize::try_from(len - pos).map_or(buf.len(), |left| left.min(buf.len()));
        let chunk = &mut buf[..n];
        storage
            .files()
            .read_exact_at(file_start + begin + pos, chunk)?;
        leaves.extend(chunk.chunks(BLOCK_LEN as usize).map(merkle::block_hash));
        pos += n as u64;
    }
    Ok(leaves)
}
