//! Verification: hashing a torrent's data on disk against its piece hashes (BEP 3 `pieces`).

use seednode_wire::metainfo::Info;

use crate::hash::hash_pieces;
use crate::{Storage, StorageError};

/// Hashes every piece of `storage` and compares it with `info.pieces`: `result[i]` is true when
/// piece `i` on disk matches its hash.
///
/// `threads` hashing threads are used (0 = one per core, see
/// [`default_threads`](crate::default_threads)), fewer for small torrents. `progress` receives the
/// number of bytes hashed so far, from any thread but one call at a time, never decreasing.
///
/// Changed bytes make their pieces `false`. Missing data is an error, not bad pieces: a file
/// deleted, replaced or truncated since [`Storage::open`] fails the whole verification
/// ([`StorageError::Truncated`], [`StorageError::FileMissing`] or
/// [`StorageError::WrongLength`]), because such a torrent must stop serving until its data is
/// back (SECURITY S5), not be rechecked piece by piece.
///
/// # Errors
/// [`StorageError::InfoMismatch`] when `info` is not the one `storage` was opened with; any read
/// error of [`Storage::read_piece`].
pub fn verify(
    storage: &Storage,
    info: &Info,
    threads: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<bool>, StorageError> {
    let geometry = storage.geometry();
    if info.piece_length != geometry.piece_length {
        return Err(StorageError::InfoMismatch {
            what: "piece length",
        });
    }
    if info.pieces.len() != usize::try_from(geometry.piece_count).unwrap_or(usize::MAX) {
        return Err(StorageError::InfoMismatch {
            what: "piece count",
        });
    }
    let slots = storage.files().slots();
    if info.files.len() != slots.len()
        || info
            .files
            .iter()
            .zip(slots)
            .any(|(entry, slot)| entry.length != slot.length)
    {
        return Err(StorageError::InfoMismatch {
            what: "file lengths",
        });
    }
    let mut good = vec![false; info.pieces.len()];
    let check = |piece: u32, digest: [u8; 20]| {
        usize::try_from(piece)
            .ok()
            .and_then(|i| info.pieces.get(i))
            .is_some_and(|expected| *expected == digest)
    };
    hash_pieces(
        storage.files(),
        geometry,
        threads,
        progress,
        &mut good,
        &check,
    )?;
    Ok(good)
}
