//! [`Storage`]: a torrent's files on disk, mapped onto its pieces, read block by block.

use std::fs::File;
use std::io::{self, IoSliceMut};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use seednode_wire::display::escape_path;
use seednode_wire::limits::MAX_BLOCK_LEN;
use seednode_wire::metainfo::{FileEntry, Info};

use crate::files::{Backing, FileSet, FileSpec, SegmentIter};
use crate::path::{PathError, SafeRelPath};
use crate::root::{Root, SymlinkPolicy};

/// Why a torrent's data could not be opened or read. Variants name what is wrong with the data
/// on disk or with the request; every I/O variant carries the file's path.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A file of the torrent does not exist (SECURITY S5: the torrent must stop serving).
    #[error("{shown}: file missing", shown = escape_path(.path))]
    FileMissing {
        /// The file's path.
        path: PathBuf,
    },
    /// A file has another length than the torrent says.
    #[error("{shown}: {actual} bytes on disk, torrent says {expected}", shown = escape_path(.path))]
    WrongLength {
        /// The file's path.
        path: PathBuf,
        /// Length in the torrent, in bytes.
        expected: u64,
        /// Length on disk, in bytes.
        actual: u64,
    },
    /// A file ended before the torrent's length while reading: it was truncated after it was
    /// opened. Its bytes are never replaced by zeros.
    #[error("{shown}: end of file at byte {offset}, torrent says {expected} bytes", shown = escape_path(.path))]
    Truncated {
        /// The file's path.
        path: PathBuf,
        /// Offset in the file where the read hit end of file, in bytes.
        offset: u64,
        /// Length in the torrent, in bytes.
        expected: u64,
    },
    /// A path below the data root is, or passes through, a symbolic link (or would leave the
    /// root). Storage never follows links below the root (SECURITY §0 rule 8).
    #[error("{shown}: symbolic link below the data root", shown = escape_path(.path))]
    SymlinkInPath {
        /// The link's path (the file's path when the link could not be located).
        path: PathBuf,
    },
    /// A path that must be a regular file (or, for the root of a multi-file torrent, a
    /// directory) is something else.
    #[error("{shown}: not a regular file or directory as the torrent requires", shown = escape_path(.path))]
    NotRegularFile {
        /// The path.
        path: PathBuf,
    },
    /// An I/O call failed.
    #[error("{shown}: {source}", shown = escape_path(.path))]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// A path from the torrent failed [`SafeRelPath`] validation.
    #[error("unsafe path in torrent: {0}")]
    UnsafePath(#[from] PathError),
    /// File lengths or an offset add up past `u64::MAX`.
    #[error("lengths overflow 64 bits")]
    LengthOverflow,
    /// The torrent's piece table does not match its files (wire normally rejects this first).
    #[error("{pieces} piece hashes for {total_length} bytes in pieces of {piece_length} bytes")]
    BadGeometry {
        /// Piece length in bytes.
        piece_length: u32,
        /// Number of piece hashes.
        pieces: usize,
        /// Sum of the file lengths in bytes.
        total_length: u64,
    },
    /// The `Info` passed along does not describe this storage.
    #[error("info does not match the storage: {what}")]
    InfoMismatch {
        /// Which property differs.
        what: &'static str,
    },
    /// A request named a piece past the last one.
    #[error("piece {piece} out of range ({count} pieces)")]
    PieceOutOfRange {
        /// Requested piece index.
        piece: u32,
        /// Number of pieces.
        count: u32,
    },
    /// A block request asked for 0 bytes or more than `MAX_BLOCK_LEN` (BEP 3).
    #[error("block length {length} outside 1..={max}")]
    BadBlockLength {
        /// Requested length in bytes.
        length: u32,
        /// Largest block in bytes.
        max: u32,
    },
    /// A block request ends past the end of its piece.
    #[error("block {begin}+{length} past the end of piece {piece} ({piece_len} bytes)")]
    BlockOutOfPiece {
        /// Piece index.
        piece: u32,
        /// Offset of the block in the piece, in bytes.
        begin: u32,
        /// Requested length in bytes.
        length: u32,
        /// Length of the piece in bytes.
        piece_len: u32,
    },
    /// A byte range does not lie within the torrent.
    #[error("range {offset}+{len} outside the torrent's {total} bytes")]
    RangeOutOfBounds {
        /// Start of the range in the torrent, in bytes.
        offset: u64,
        /// Length of the range in bytes.
        len: u64,
        /// Length of the torrent in bytes.
        total: u64,
    },
    /// A file index past the last file.
    #[error("file {index} out of range ({count} files)")]
    NoSuchFile {
        /// Requested file index.
        index: usize,
        /// Number of files.
        count: usize,
    },
    /// The file is a padding or zero-length file: it has no bytes on disk to open.
    #[error("file {index} has nothing on disk (padding or empty)")]
    NothingOnDisk {
        /// File index.
        index: usize,
    },
    /// The caller's buffer does not have the length of what it asked to read.
    #[error("buffer of {got} bytes for a read of {expected} bytes")]
    BufferLength {
        /// Bytes the read needs.
        expected: usize,
        /// Bytes in the buffer.
        got: usize,
    },
}

/// The files of one torrent on disk, mapped onto its pieces; read-only.
///
/// Built by [`Storage::open`], which checks that every file exists with its exact length and
/// holds the torrent's root directory open. Handles are opened lazily, read-only, beneath that
/// root through no symbolic link, and cached (at most
/// [`MAX_OPEN_FILES_PER_TORRENT`](crate::limits::MAX_OPEN_FILES_PER_TORRENT), least recently
/// used evicted). `Storage` is `Send + Sync`: share it between disk threads with an `Arc`; reads
/// use `pread` and never move a file position.
#[derive(Debug)]
pub struct Storage {
    files: FileSet,
    piece_length: u32,
    piece_count: u32,
    /// A multi-file torrent (BEP 3 `files`): file paths are relative to its directory.
    multi_file: bool,
}

/// Which files of a torrent are BEP 47 padding files that read as zeros.
///
/// `wire`'s [`FileEntry`] does not carry BEP 47's `attr`, so padding files are recognised by the
/// path libtorrent gives them, `.pad/<N>` with `N` the file's length in decimal. A real file
/// with that exact path and length would be read as zeros; its piece hash then fails, so
/// verification reports the piece bad (nothing wrong is ever marked good).
fn is_padding(entry: &FileEntry) -> bool {
    matches!(entry.path.as_slice(), [dir, n] if dir == ".pad" && *n == entry.length.to_string())
}

/// Whether a block's bytes can be sent without waiting for the disk
/// ([`Storage::block_residency`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Residency {
    /// Files open, bytes in the page cache.
    Cached,
    /// A file is not open or the bytes are not cached: warm it on a disk thread first.
    Cold,
    /// Cannot tell (`RWF_NOWAIT` unsupported, or an error the send path will report).
    Unknown,
}

/// Bytes read per call when warming a piece: small enough to stay in L2, large enough to keep
/// the syscall count low.
pub const WARM_CHUNK_LEN: u32 = 256 * 1024;

impl Storage {
    /// Opens a torrent's data at `data_path` and checks that it is all there.
    ///
    /// For a single-file torrent `data_path` is the file itself (the engine's choice, usually
    /// `root/<name>`); a second entry `.pad/<N>` after it (the v1 view of a v2-only torrent, see
    /// `seednode_wire::metainfo_v2`) is padding that reads as zeros. For a multi-file torrent it
    /// is the directory that holds the files (usually `root/<name>`); every path below it comes
    /// from [`SafeRelPath`].
    ///
    /// `data_path` is resolved once, here, and may be a symbolic link (the operator chose it):
    /// the directory it names (for a single file, the directory of the file it names) is held
    /// open as the torrent's root, and every open of a file, now and whenever a handle is opened
    /// again later, is relative to it and passes through no link: `openat2` with
    /// `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, or a component-by-component `O_NOFOLLOW` walk
    /// where the kernel lacks it (SECURITY §0 rule 8). A file or directory below the root swapped
    /// for a link at any time fails the next open with [`StorageError::SymlinkInPath`]; pointing
    /// `data_path` elsewhere after `open` changes nothing.
    ///
    /// Every non-empty file must exist as a regular file with exactly the torrent's length;
    /// zero-length files and BEP 47 padding files (`.pad/<N>`) need nothing on disk. Each file
    /// is opened once to check it, and closed: [`Storage::read_block`] opens them on demand.
    ///
    /// # Errors
    /// [`StorageError::UnsafePath`] for a path that fails validation;
    /// [`StorageError::BadGeometry`] or [`StorageError::LengthOverflow`] for an inconsistent
    /// `info`; [`StorageError::FileMissing`], [`StorageError::WrongLength`],
    /// [`StorageError::NotRegularFile`], [`StorageError::SymlinkInPath`] or [`StorageError::Io`]
    /// for data on disk that does not match.
    pub fn open(data_path: &Path, info: &Info) -> Result<Self, StorageError> {
        Self::open_with(data_path, info, SymlinkPolicy::Refuse)
    }

    /// [`Storage::open`], following links below the data path as `symlinks` says
    /// ([`SymlinkPolicy::FollowWithinRoot`]: only links that stay beneath it, checked by the
    /// kernel at every open).
    ///
    /// # Errors
    /// As [`Storage::open`].
    pub fn open_with(
        data_path: &Path,
        info: &Info,
        symlinks: SymlinkPolicy,
    ) -> Result<Self, StorageError> {
        let storage = Self::layout(data_path, info, symlinks)?;
        for (index, slot) in storage.files.slots().iter().enumerate() {
            if slot.backing == Backing::Padding || slot.length == 0 {
                continue;
            }
            storage.files.open(index)?;
        }
        Ok(storage)
    }

    /// Maps `info`'s files under `data_path`, checks the geometry, then opens the root they are
    /// opened beneath (so an inconsistent `info` is reported before anything on disk).
    fn layout(
        data_path: &Path,
        info: &Info,
        symlinks: SymlinkPolicy,
    ) -> Result<Self, StorageError> {
        let mut specs = if info.multi_file {
            let mut files = Vec::with_capacity(info.files.len());
            for entry in &info.files {
                let rel = SafeRelPath::new(&entry.path)?;
                let backing = if is_padding(entry) {
                    Backing::Padding
                } else {
                    Backing::Disk
                };
                files.push(FileSpec {
                    path: rel.under(data_path),
                    rel: rel.as_path().to_path_buf(),
                    length: entry.length,
                    backing,
                });
            }
            files
        } else {
            // One file, and for a v2-only torrent (BEP 52) the padding that fills its last piece.
            let (entry, tail) = match info.files.as_slice() {
                [entry] => (entry, None),
                [entry, pad] if is_padding(pad) => (entry, Some(pad)),
                _ => {
                    return Err(StorageError::InfoMismatch {
                        what: "single-file torrent with files",
                    });
                }
            };
            let mut files = vec![FileSpec {
                path: data_path.to_path_buf(),
                rel: PathBuf::new(), // the name in its root, set below
                length: entry.length,
                backing: Backing::Disk,
            }];
            if let Some(pad) = tail {
                files.push(FileSpec {
                    path: PathBuf::new(),
                    rel: PathBuf::new(),
                    length: pad.length,
                    backing: Backing::Padding,
                });
            }
            files
        };
        let total_length = specs
            .iter()
            .try_fold(0u64, |sum, f| sum.checked_add(f.length))
            .ok_or(StorageError::LengthOverflow)?;
        let geometry = Geometry::new(info.piece_length, info.pieces.len(), total_length)?;
        let root = if info.multi_file {
            Root::open_dir(data_path)?
        } else {
            let (root, name) = Root::for_file(data_path)?;
            if let Some(file) = specs.first_mut() {
                file.rel = name;
            }
            root
        }
        .with_symlinks(symlinks);
        Ok(Self {
            files: FileSet::new(root, specs)?,
            piece_length: geometry.piece_length,
            piece_count: geometry.piece_count,
            multi_file: info.multi_file,
        })
    }

    /// Bytes per piece (the last piece may be shorter).
    #[must_use]
    pub fn piece_length(&self) -> u32 {
        self.piece_length
    }

    /// Number of pieces.
    #[must_use]
    pub fn piece_count(&self) -> u32 {
        self.piece_count
    }

    /// Length of the torrent in bytes (sum of its files).
    #[must_use]
    pub fn total_length(&self) -> u64 {
        self.files.total_length()
    }

    /// Number of files, as in `Info::files`.
    #[must_use]
    pub fn file_count(&self) -> usize {
        self.files.slots().len()
    }

    /// Path on disk of file `index` (for error messages and `sendfile`); `None` past the end.
    #[must_use]
    pub fn file_path(&self, index: usize) -> Option<&Path> {
        self.files
            .slots()
            .get(index)
            .map(|slot| slot.path.as_path())
    }

    /// Length in bytes of piece `piece`; `None` past the last piece.
    #[must_use]
    pub fn piece_len(&self, piece: u32) -> Option<u32> {
        self.geometry().piece_len(piece)
    }

    pub(crate) fn geometry(&self) -> Geometry {
        Geometry {
            piece_length: self.piece_length,
            piece_count: self.piece_count,
            total_length: self.total_length(),
        }
    }

    pub(crate) fn files(&self) -> &FileSet {
        &self.files
    }

    /// Reads the block `begin..begin + length` of piece `piece` into `buf` (BEP 3 `request`).
    ///
    /// `buf` must be exactly `length` bytes. Reads spanning several files use one `pread` loop
    /// per file; padding files read as zeros.
    ///
    /// # Errors
    /// [`StorageError::PieceOutOfRange`], [`StorageError::BadBlockLength`] (0 or over
    /// `MAX_BLOCK_LEN`), [`StorageError::BlockOutOfPiece`] for a bad request;
    /// [`StorageError::BufferLength`] when `buf` has another length; and any error of reading the
    /// files: [`StorageError::FileMissing`], [`StorageError::WrongLength`],
    /// [`StorageError::Truncated`], [`StorageError::SymlinkInPath`], [`StorageError::Io`].
    pub fn read_block(
        &self,
        piece: u32,
        begin: u32,
        length: u32,
        buf: &mut [u8],
    ) -> Result<(), StorageError> {
        let offset = self.block_offset(piece, begin, length)?;
        self.read_range(offset, length, buf)
    }

    /// Reads the whole piece `piece` into `buf`, which must be exactly
    /// [`Storage::piece_len`] bytes.
    ///
    /// # Errors
    /// [`StorageError::PieceOutOfRange`], [`StorageError::BufferLength`], and the file errors of
    /// [`Storage::read_block`].
    pub fn read_piece(&self, piece: u32, buf: &mut [u8]) -> Result<(), StorageError> {
        let piece_len = self.checked_piece_len(piece)?;
        let offset = u64::from(piece) * u64::from(self.piece_length);
        self.read_range(offset, piece_len, buf)
    }

    /// The file segments that hold the block `begin..begin + length` of piece `piece`, in order,
    /// validated like [`Storage::read_block`]; for sending with `sendfile`.
    ///
    /// # Errors
    /// [`StorageError::PieceOutOfRange`], [`StorageError::BadBlockLength`],
    /// [`StorageError::BlockOutOfPiece`].
    pub fn block_segments(
        &self,
        piece: u32,
        begin: u32,
        length: u32,
    ) -> Result<SegmentIter<'_>, StorageError> {
        let offset = self.block_offset(piece, begin, length)?;
        self.segments(offset, u64::from(length))
    }

    /// The file segments that hold the torrent's bytes `offset..offset + len`, in order; zero-
    /// length files never appear.
    ///
    /// # Errors
    /// [`StorageError::RangeOutOfBounds`] when the range does not lie within the torrent.
    pub fn segments(&self, offset: u64, len: u64) -> Result<SegmentIter<'_>, StorageError> {
        self.files.segments(offset, len)
    }

    /// The cached read-only handle of file `index`, opened if needed (for `sendfile`).
    ///
    /// # Errors
    /// [`StorageError::NoSuchFile`] past the last file; [`StorageError::NothingOnDisk`] for a
    /// padding or zero-length file; otherwise the file errors of [`Storage::read_block`].
    pub fn file(&self, index: usize) -> Result<Arc<File>, StorageError> {
        let slot = self
            .files
            .slots()
            .get(index)
            .ok_or(StorageError::NoSuchFile {
                index,
                count: self.file_count(),
            })?;
        if slot.backing == Backing::Padding || slot.length == 0 {
            return Err(StorageError::NothingOnDisk { index });
        }
        self.files.handle(index)
    }

    /// The index of the file at `path` in the torrent, never a padding file: for a multi-file
    /// torrent, the components after the torrent's name (BEP 3 `path`); for a single-file
    /// torrent, no components (the name is the file). Only compares with the torrent's own
    /// list: a path from a URL never reaches the filesystem (BEP 19 webseeds).
    #[must_use]
    pub fn file_index_by_path(&self, path: &[String]) -> Option<usize> {
        let slots = self.files.slots();
        if !self.multi_file {
            return (path.is_empty() && !slots.is_empty()).then_some(0);
        }
        slots.iter().position(|slot| {
            slot.backing == Backing::Disk
                && slot.rel.components().count() == path.len()
                && slot
                    .rel
                    .components()
                    .zip(path)
                    .all(|(c, p)| c.as_os_str() == p.as_str())
        })
    }

    /// Length in bytes of file `index`; `None` past the last file.
    #[must_use]
    pub fn file_len(&self, index: usize) -> Option<u64> {
        self.files.slots().get(index).map(|s| s.length)
    }

    /// The cached handle of file `index`, or `None` when it is not open (never opens: for the
    /// event loop, which must not wait on the disk).
    #[must_use]
    pub fn cached_file(&self, index: usize) -> Option<Arc<File>> {
        self.files.cached(index)
    }

    /// Whether the block `begin..begin + length` of piece `piece` can be sent without waiting
    /// for the disk: its files are open and the first and last byte of each segment are in the
    /// page cache, probed with `preadv2(RWF_NOWAIT)` (Linux 5.9+ for buffered reads). Pages in
    /// between are taken to follow (the kernel reads ahead in runs). Never blocks on I/O.
    #[must_use]
    pub fn block_residency(&self, piece: u32, begin: u32, length: u32) -> Residency {
        let Ok(segments) = self.block_segments(piece, begin, length) else {
            return Residency::Unknown;
        };
        let mut probe = [0u8; 1];
        for seg in segments.filter(|s| !s.padding) {
            let Some(file) = self.cached_file(seg.file_index) else {
                return Residency::Cold;
            };
            let last = seg.file_offset + seg.len.saturating_sub(1);
            for at in [seg.file_offset, last] {
                let mut bufs = [IoSliceMut::new(&mut probe)];
                match rustix::io::preadv2(&*file, &mut bufs, at, rustix::io::ReadWriteFlags::NOWAIT)
                {
                    Ok(1) => {}
                    // A short read: the file shrank; the send path reports it.
                    Ok(_) => return Residency::Unknown,
                    Err(rustix::io::Errno::AGAIN) => return Residency::Cold,
                    Err(_) => return Residency::Unknown,
                }
            }
        }
        Residency::Cached
    }

    /// Reads piece `piece` (opening its files) so that its bytes sit in the page cache for a
    /// later `sendfile`; for a disk thread. Reads in chunks of [`WARM_CHUNK_LEN`] bytes into
    /// `scratch`, which it grows to that size at most.
    ///
    /// # Errors
    /// The errors of [`Storage::read_piece`].
    pub fn warm_piece(&self, piece: u32, scratch: &mut Vec<u8>) -> Result<(), StorageError> {
        let piece_len = self.checked_piece_len(piece)?;
        let start = u64::from(piece) * u64::from(self.piece_length);
        let mut done = 0u32;
        while done < piece_len {
            let n = (piece_len - done).min(WARM_CHUNK_LEN);
            scratch.resize(n as usize, 0);
            self.read_range(start + u64::from(done), n, scratch)?;
            done += n;
        }
        Ok(())
    }

    /// Closes every cached file handle (a read or `sendfile` in flight keeps its own until it
    /// finishes); the next read opens its file again, beneath the data root. For a torrent that
    /// went idle, or to give descriptors back under `EMFILE`.
    pub fn close_files(&self) {
        self.files.close_all();
    }

    fn checked_piece_len(&self, piece: u32) -> Result<u32, StorageError> {
        self.piece_len(piece).ok_or(StorageError::PieceOutOfRange {
            piece,
            count: self.piece_count,
        })
    }

    /// Validates a block request (BEP 3 `request`) and returns its torrent offset in bytes.
    fn block_offset(&self, piece: u32, begin: u32, length: u32) -> Result<u64, StorageError> {
        let piece_len = self.checked_piece_len(piece)?;
        if length == 0 || length > MAX_BLOCK_LEN {
            return Err(StorageError::BadBlockLength {
                length,
                max: MAX_BLOCK_LEN,
            });
        }
        match begin.checked_add(length) {
            Some(end) if end <= piece_len => {}
            _ => {
                return Err(StorageError::BlockOutOfPiece {
                    piece,
                    begin,
                    length,
                    piece_len,
                });
            }
        }
        // piece < piece_count, so piece * piece_length < total_length <= u64::MAX.
        Ok(u64::from(piece) * u64::from(self.piece_length) + u64::from(begin))
    }

    fn read_range(&self, offset: u64, length: u32, buf: &mut [u8]) -> Result<(), StorageError> {
        let expected = usize::try_from(length).map_err(|_| StorageError::LengthOverflow)?;
        if buf.len() != expected {
            return Err(StorageError::BufferLength {
                expected,
                got: buf.len(),
            });
        }
        self.files.read_exact_at(offset, buf)
    }
}

/// Piece geometry, checked: `piece_count == ceil(total_length / piece_length)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    pub(crate) piece_length: u32,
    pub(crate) piece_count: u32,
    pub(crate) total_length: u64,
}

impl Geometry {
    /// # Errors
    /// [`StorageError::BadGeometry`] unless `pieces == ceil(total_length / piece_length)` with a
    /// non-zero piece length and a count that fits `u32`.
    pub(crate) fn new(
        piece_length: u32,
        pieces: usize,
        total_length: u64,
    ) -> Result<Self, StorageError> {
        let bad = StorageError::BadGeometry {
            piece_length,
            pieces,
            total_length,
        };
        if piece_length == 0 {
            return Err(bad);
        }
        let expected = total_length.div_ceil(u64::from(piece_length));
        match u32::try_from(pieces) {
            Ok(piece_count) if u64::from(piece_count) == expected => Ok(Self {
                piece_length,
                piece_count,
                total_length,
            }),
            _ => Err(bad),
        }
    }

    pub(crate) fn piece_len(&self, piece: u32) -> Option<u32> {
        if piece >= self.piece_count {
            return None;
        }
        let start = u64::from(piece) * u64::from(self.piece_length);
        let len = (self.total_length - start).min(u64::from(self.piece_length));
        // len <= piece_length, a u32.
        u32::try_from(len).ok()
    }
}
