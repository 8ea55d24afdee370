//! Fast resume: decide at start, from file metadata alone, whether a torrent can seed at once.
//!
//! For each torrent the engine calls [`observe`] (one confined `open` + `fstat` per file, no
//! read) and [`classify`] (pure) with the files recorded in the catalog
//! ([`Catalog::files`](super::Catalog::files)):
//! - every file has its recorded length and mtime → [`Resume::Ready`]: seed at once, no hashing;
//! - some files have another mtime, or were never verified → [`Resume::Recheck`]: the pieces they
//!   touch are withheld (not in the bitfield, requests for them refused) until a background
//!   verification passes; the others are served at once. After it, the engine records the new
//!   mtimes with [`Catalog::record_file_checks`](super::Catalog::record_file_checks);
//! - a file is missing, is not a regular file, or has another length → [`Resume::MissingData`]:
//!   nothing is served (SECURITY rule 13, S5: never zeros), the torrent's state becomes
//!   `missing_data` with the reason.
//!
//! The mtime recorded must be the one seen *before* the verification started: a write during
//! hashing then changes the mtime and the next start checks the file again.

use std::num::NonZeroU32;
use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::FileRecord;
use crate::StorageError;
use crate::path::SafeRelPath;
use crate::root::Root;

/// What is on disk for one file of a torrent ([`observe`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnDisk {
    /// Nothing is needed: a padding or zero-length file.
    Nothing,
    /// A regular file.
    File {
        /// Its length in bytes.
        length: u64,
        /// Its modification time, in nanoseconds since the Unix epoch.
        mtime_ns: i64,
    },
    /// No such file.
    Missing,
    /// Something is there that cannot be served (a directory, a symbolic link below the data
    /// path, an I/O error); the reason says what.
    Unusable {
        /// The error, for the torrent's state reason.
        reason: String,
    },
}

/// What to do with a torrent at start ([`classify`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// Every file matches its record: seed every piece at once.
    Ready,
    /// These pieces (sorted, disjoint, non-adjacent ranges of piece indices) must be verified
    /// before they are served; every other piece can be served at once.
    Recheck {
        /// Piece ranges to verify.
        pieces: Vec<Range<u32>>,
    },
    /// A file cannot be served: the torrent must not seed (state `missing_data`).
    MissingData {
        /// Index of the first such file in `Info::files`.
        file: u32,
        /// Why, for the torrent's state reason.
        reason: String,
    },
}

/// Looks at each recorded file of a torrent whose data is at `data_path` (as
/// [`Storage::open`](crate::Storage::open) would open it): one `open` beneath the data path
/// through no symbolic link and one `fstat` per file, never a read. Padding and empty files are
/// [`OnDisk::Nothing`]; a torrent whose first file has an empty path is a single-file torrent
/// whose file is `data_path` itself.
#[must_use]
pub fn observe(data_path: &Path, files: &[FileRecord]) -> Vec<OnDisk> {
    let single = files.first().is_some_and(|f| f.path.is_empty());
    let root = if single {
        Root::for_file(data_path).map(|(root, name)| (root, Some(name)))
    } else {
        Root::open_dir(data_path).map(|root| (root, None))
    };
    files
        .iter()
        .enumerate()
        .map(|(index, file)| {
            if file.padding || file.length == 0 {
                return OnDisk::Nothing;
            }
            let (root, name) = match &root {
                Ok(r) => r,
                Err(e) => return on_disk_error(e),
            };
            let rel = match (index, name) {
                (0, Some(name)) => name.clone(),
                (_, Some(_)) => {
                    return OnDisk::Unusable {
                        reason: "single-file torrent with a second file on disk".into(),
                    };
                }
                (_, None) => {
                    let components: Vec<&str> = file.path.split('/').collect();
                    match SafeRelPath::new(&components) {
                        Ok(p) => p.as_path().to_path_buf(),
                        Err(e) => {
                            return OnDisk::Unusable {
                                reason: e.to_string(),
                            };
                        }
                    }
                }
            };
            let shown: PathBuf = if single {
                data_path.to_path_buf()
            } else {
                data_path.join(&rel)
            };
            match root.open_file(&rel, &shown) {
                Ok((handle, length)) => match handle.metadata() {
                    Ok(meta) => OnDisk::File {
                        length,
                        mtime_ns: meta
                            .mtime()
                            .saturating_mul(1_000_000_000)
                            .saturating_add(meta.mtime_nsec()),
                    },
                    Err(e) => OnDisk::Unusable {
                        reason: e.to_string(),
                    },
                },
                Err(e) => on_disk_error(&e),
            }
        })
        .collect()
}

fn on_disk_error(e: &StorageError) -> OnDisk {
    match e {
        StorageError::FileMissing { .. } => OnDisk::Missing,
        e => OnDisk::Unusable {
            reason: e.to_string(),
        },
    }
}

/// Classifies a torrent from its recorded `files` (in `Info::files` order, as
/// [`Catalog::files`](super::Catalog::files) returns them) and what [`observe`] saw (same
/// order; a missing entry counts as [`OnDisk::Missing`]). Pure: no I/O. Files are contiguous in
/// the piece space (v1 layout, BEP 47 padding included), pieces `piece_length` bytes long.
#[must_use]
pub fn classify(files: &[FileRecord], on_disk: &[OnDisk], piece_length: NonZeroU32) -> Resume {
    let piece_length = u64::from(piece_length.get());
    let mut pieces: Vec<Range<u32>> = Vec::new();
    let mut offset = 0u64;
    for (index, file) in files.iter().enumerate() {
        let start = offset;
        offset = offset.saturating_add(file.length);
        if file.padding || file.length == 0 {
            continue;
        }
        let file_index = u32::try_from(index).unwrap_or(u32::MAX);
        let missing = |reason: String| Resume::MissingData {
            file: file_index,
            reason,
        };
        let shown = if file.path.is_empty() {
            "the file"
        } else {
            file.path.as_str()
        };
        match on_disk.get(index).unwrap_or(&OnDisk::Missing) {
            OnDisk::File { length, mtime_ns } => {
                if *length != file.length {
                    return missing(format!(
                        "{shown}: {length} bytes on disk, torrent says {}",
                        file.length
                    ));
                }
                if file.mtime_ns == Some(*mtime_ns) {
                    continue;
                }
                // Pieces are counted in u32 (wire's MAX_PIECES is far below); saturate anyway.
                let first = u32::try_from(start / piece_length).unwrap_or(u32::MAX);
                let last = u32::try_from((offset - 1) / piece_length).unwrap_or(u32::MAX - 1);
                let range = first..last.saturating_add(1);
                match pieces.last_mut() {
                    Some(prev) if prev.end >= range.start => prev.end = prev.end.max(range.end),
                    _ => pieces.push(range),
                }
            }
            OnDisk::Missing | OnDisk::Nothing => return missing(format!("{shown}: missing")),
            OnDisk::Unusable { reason } => return missing(reason.clone()),
        }
    }
    if pieces.is_empty() {
        Resume::Ready
    } else {
        Resume::Recheck { pieces }
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // one range of pieces is the point
mod tests {
    use super::*;

    fn rec(path: &str, length: u64, mtime_ns: Option<i64>) -> FileRecord {
        FileRecord {
            index: 0,
            path: path.into(),
            length,
            padding: false,
            mtime_ns,
            sha256: None,
        }
    }

    const PL: NonZeroU32 = NonZeroU32::new(100).unwrap();

    #[test]
    fn all_matching_resumes_at_once() {
        let files = [rec("a", 150, Some(1)), rec("b", 50, Some(2))];
        let disk = [
            OnDisk::File {
                length: 150,
                mtime_ns: 1,
            },
            OnDisk::File {
                length: 50,
                mtime_ns: 2,
            },
        ];
        assert_eq!(classify(&files, &disk, PL), Resume::Ready);
    }

    #[test]
    fn changed_mtime_rechecks_only_the_pieces_it_touches() {
        // Pieces: 0..100 | 100..200 | 200..300 | 300..350. a = 0..150, b = 150..160, c = 160..350.
        let files = [
            rec("a", 150, Some(1)),
            rec("b", 10, Some(2)),
            rec("c", 190, Some(3)),
        ];
        let file = |length, mtime_ns| OnDisk::File { length, mtime_ns };
        let disk = [file(150, 1), file(10, 9), file(190, 3)];
        assert_eq!(
            classify(&files, &disk, PL),
            Resume::Recheck { pieces: vec![1..2] }
        );
        let disk = [file(150, 9), file(10, 2), file(190, 9)];
        assert_eq!(
            classify(&files, &disk, PL),
            Resume::Recheck { pieces: vec![0..4] }
        );
        // Never verified: recheck.
        let files = [
            rec("a", 150, None),
            rec("b", 10, Some(2)),
            rec("c", 190, Some(3)),
        ];
        let disk = [file(150, 1), file(10, 2), file(190, 3)];
        assert_eq!(
            classify(&files, &disk, PL),
            Resume::Recheck { pieces: vec![0..2] }
        );
    }

    #[test]
    fn missing_or_resized_file_is_missing_data() {
        let files = [rec("a", 150, Some(1)), rec("b", 50, Some(2))];
        let disk = [
            OnDisk::File {
                length: 150,
                mtime_ns: 5,
            },
            OnDisk::Missing,
        ];
        assert!(matches!(
            classify(&files, &disk, PL),
            Resume::MissingData { file: 1, .. }
        ));
        let disk = [OnDisk::File {
            length: 149,
            mtime_ns: 1,
        }];
        assert!(matches!(
            classify(&files, &disk, PL),
            Resume::MissingData { file: 0, .. }
        ));
    }

    #[test]
    fn padding_and_empty_files_need_nothing() {
        let mut pad = rec(".pad/50", 50, None);
        pad.padding = true;
        let files = [
            rec("a", 50, Some(1)),
            pad,
            rec("e", 0, None),
            rec("b", 100, Some(2)),
        ];
        let disk = [
            OnDisk::File {
                length: 50,
                mtime_ns: 1,
            },
            OnDisk::Nothing,
            OnDisk::Nothing,
            OnDisk::File {
                length: 100,
                mtime_ns: 3,
            },
        ];
        assert_eq!(
            classify(&files, &disk, PL),
            Resume::Recheck { pieces: vec![1..2] }
        );
    }
}
