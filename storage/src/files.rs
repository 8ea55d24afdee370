//! The files behind a torrent's byte range: offsets, a bounded cache of read-only handles, and the
//! `pread` loop every read goes through (block reads, verification and creation alike).
//!
//! Every handle is opened beneath the torrent's [`Root`], through no symbolic link (SECURITY §0
//! rule 8), each time it is opened: a handle evicted from the cache and opened again is checked
//! again.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::StorageError;
use crate::limits::MAX_OPEN_FILES_PER_TORRENT;
use crate::root::Root;

/// What backs one file of the torrent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backing {
    /// A regular file on disk that must have exactly the entry's length.
    Disk,
    /// A BEP 47 padding file: reads as zeros, nothing on disk.
    Padding,
}

/// A file to place in a [`FileSet`]: where it is and how long.
#[derive(Debug, Clone)]
pub(crate) struct FileSpec {
    /// The file's path as the caller knows it, for messages (never opened).
    pub(crate) path: PathBuf,
    /// The path opened, relative to the [`Root`]: plain names only (empty for padding).
    pub(crate) rel: PathBuf,
    /// Length in bytes.
    pub(crate) length: u64,
    /// Where its bytes come from.
    pub(crate) backing: Backing,
}

/// One file of the torrent, placed in the torrent's byte range.
#[derive(Debug)]
pub(crate) struct FileSlot {
    /// The file's path as the caller knows it, for messages and [`Storage::file_path`]
    /// (crate::Storage::file_path); never opened.
    pub(crate) path: PathBuf,
    /// The path opened, relative to the set's [`Root`].
    pub(crate) rel: PathBuf,
    /// Offset of the file's first byte in the torrent, in bytes.
    pub(crate) offset: u64,
    /// Length in bytes.
    pub(crate) length: u64,
    /// Where its bytes come from.
    pub(crate) backing: Backing,
}

/// A part of a byte range of the torrent that lies in one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Index of the file in the torrent's file list (`Info::files`).
    pub file_index: usize,
    /// Offset of the segment's first byte within that file, in bytes.
    pub file_offset: u64,
    /// Length of the segment in bytes (never 0).
    pub len: u64,
    /// True when the file is a BEP 47 padding file: the segment's bytes are zeros and there is
    /// no file to read or `sendfile` from.
    pub padding: bool,
}

/// The [`Segment`]s of a byte range of the torrent, in order; from
/// [`Storage::segments`](crate::Storage::segments) and
/// [`Storage::block_segments`](crate::Storage::block_segments).
#[derive(Debug, Clone)]
pub struct SegmentIter<'a> {
    slots: &'a [FileSlot],
    /// Next slot to look at.
    index: usize,
    /// Torrent offset of the next byte to place.
    pos: u64,
    /// Torrent offset one past the range.
    end: u64,
}

impl Iterator for SegmentIter<'_> {
    type Item = Segment;

    fn next(&mut self) -> Option<Segment> {
        while self.pos < self.end {
            let slot = self.slots.get(self.index)?;
            let file_index = self.index;
            self.index += 1;
            // Slots are contiguous, so slot.offset <= pos < slot.offset + slot.length for every
            // non-empty slot reached here; zero-length slots are skipped.
            if slot.length == 0 {
                continue;
            }
            let file_offset = self.pos - slot.offset;
            let len = (slot.length - file_offset).min(self.end - self.pos);
            self.pos += len;
            return Some(Segment {
                file_index,
                file_offset,
                len,
                padding: slot.backing == Backing::Padding,
            });
        }
        None
    }
}

impl std::iter::FusedIterator for SegmentIter<'_> {}

/// The files of one torrent and a bounded LRU cache of their read-only handles.
#[derive(Debug)]
pub(crate) struct FileSet {
    /// The directory every file is opened beneath.
    root: Root,
    slots: Vec<FileSlot>,
    total_length: u64,
    cache: Mutex<HandleCache>,
}

#[derive(Debug, Default)]
struct HandleCache {
    /// File index → (handle, tick of last use).
    handles: HashMap<usize, (Arc<File>, u64)>,
    tick: u64,
}

impl HandleCache {
    fn get(&mut self, index: usize) -> Option<Arc<File>> {
        self.tick = self.tick.wrapping_add(1);
        let tick = self.tick;
        self.handles.get_mut(&index).map(|(file, used)| {
            *used = tick;
            Arc::clone(file)
        })
    }

    /// Caches `file`, evicting the least recently used handle when full; returns the handle to
    /// use (an entry another thread inserted meanwhile wins, so one file has one handle).
    fn insert(&mut self, index: usize, file: Arc<File>) -> Arc<File> {
        if let Some(existing) = self.get(index) {
            return existing;
        }
        if self.handles.len() >= MAX_OPEN_FILES_PER_TORRENT {
            let oldest = self
                .handles
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(i, _)| *i);
            if let Some(oldest) = oldest {
                self.handles.remove(&oldest);
            }
        }
        self.handles.insert(index, (Arc::clone(&file), self.tick));
        file
    }
}

impl FileSet {
    /// Places `files` one after another from offset 0, each to be opened beneath `root`.
    ///
    /// # Errors
    /// [`StorageError::LengthOverflow`] when the lengths add up past `u64::MAX`.
    pub(crate) fn new(
        root: Root,
        files: impl IntoIterator<Item = FileSpec>,
    ) -> Result<Self, StorageError> {
        let files = files.into_iter();
        let mut offset = 0u64;
        let mut slots = Vec::with_capacity(files.size_hint().0);
        for FileSpec {
            path,
            rel,
            length,
            backing,
        } in files
        {
            let next = offset
                .checked_add(length)
                .ok_or(StorageError::LengthOverflow)?;
            slots.push(FileSlot {
                path,
                rel,
                offset,
                length,
                backing,
            });
            offset = next;
        }
        Ok(Self {
            root,
            slots,
            total_length: offset,
            cache: Mutex::default(),
        })
    }

    pub(crate) fn total_length(&self) -> u64 {
        self.total_length
    }

    pub(crate) fn slots(&self) -> &[FileSlot] {
        &self.slots
    }

    /// The segments of `len` bytes starting at torrent offset `offset`, in order.
    ///
    /// # Errors
    /// [`StorageError::RangeOutOfBounds`] when the range does not lie within the torrent.
    pub(crate) fn segments(&self, offset: u64, len: u64) -> Result<SegmentIter<'_>, StorageError> {
        let out_of_bounds = || StorageError::RangeOutOfBounds {
            offset,
            len,
            total: self.total_length,
        };
        let end = offset.checked_add(len).ok_or_else(out_of_bounds)?;
        if end > self.total_length {
            return Err(out_of_bounds());
        }
        // First file that ends after `offset` (offsets were summed with checked arithmetic).
        let index = self
            .slots
            .partition_point(|s| s.offset + s.length <= offset);
        Ok(SegmentIter {
            slots: &self.slots,
            index,
            pos: offset,
            end,
        })
    }

    /// Fills `buf` with the torrent's bytes starting at torrent offset `offset`.
    ///
    /// # Errors
    /// [`StorageError::RangeOutOfBounds`] for a range outside the torrent; the errors of
    /// [`Self::handle`]; [`StorageError::Truncated`] when a file ends early;
    /// [`StorageError::Io`] for a failed read.
    pub(crate) fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), StorageError> {
        let len = u64::try_from(buf.len()).map_err(|_| StorageError::LengthOverflow)?;
        let mut rest = buf;
        for segment in self.segments(offset, len)? {
            // `segment.len` <= `len`, which came from a usize.
            let (chunk, tail) = rest.split_at_mut(segment.len as usize);
            rest = tail;
            if segment.padding {
                chunk.fill(0);
                continue;
            }
            let file = self.handle(segment.file_index)?;
            self.pread_exact(segment.file_index, &file, segment.file_offset, chunk)?;
        }
        Ok(())
    }

    /// `pread` until `buf` is full, retrying on `EINTR`; end of file first is an error, never
    /// zeros (SECURITY S5).
    fn pread_exact(
        &self,
        index: usize,
        file: &File,
        mut file_offset: u64,
        mut buf: &mut [u8],
    ) -> Result<(), StorageError> {
        let slot = &self.slots[index];
        while !buf.is_empty() {
            match file.read_at(buf, file_offset) {
                Ok(0) => {
                    return Err(StorageError::Truncated {
                        path: slot.path.clone(),
                        offset: file_offset,
                        expected: slot.length,
                    });
                }
                Ok(n) => {
                    buf = &mut buf[n..];
                    // n <= buf.len(), a usize; the sum stays below slot.length.
                    file_offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(StorageError::Io {
                        path: slot.path.clone(),
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// The read-only handle of file `index`, opened on first use and cached (bounded, LRU).
    ///
    /// # Errors
    /// [`StorageError::FileMissing`], [`StorageError::SymlinkInPath`],
    /// [`StorageError::NotRegularFile`], [`StorageError::WrongLength`] (the file changed since it
    /// was checked), or [`StorageError::Io`].
    pub(crate) fn handle(&self, index: usize) -> Result<Arc<File>, StorageError> {
        if let Some(file) = self.lock_cache().get(index) {
            return Ok(file);
        }
        // Open without holding the lock: other threads keep reading through cached handles.
        let file = Arc::new(self.open(index)?);
        Ok(self.lock_cache().insert(index, file))
    }

    /// The cached handle of file `index`, if it is open (never opens).
    pub(crate) fn cached(&self, index: usize) -> Option<Arc<File>> {
        self.lock_cache().get(index)
    }

    /// Drops every cached handle; reads in flight keep theirs until they finish.
    pub(crate) fn close_all(&self) {
        self.lock_cache().handles.clear();
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HandleCache> {
        // The cache holds no invariant a panicking reader could break half-way.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens file `index` beneath the root (see [`Root::open_file`]) and checks its length.
    ///
    /// # Errors
    /// The errors of [`Root::open_file`]; [`StorageError::WrongLength`] when the file has
    /// another length than the torrent says.
    pub(crate) fn open(&self, index: usize) -> Result<File, StorageError> {
        let slot = &self.slots[index];
        let (file, actual) = self.root.open_file(&slot.rel, &slot.path)?;
        if actual != slot.length {
            return Err(StorageError::WrongLength {
                path: slot.path.clone(),
                expected: slot.length,
                actual,
            });
        }
        Ok(file)
    }
}

/// Names the error of resolving or stat'ing `path` by path (only the operator's own paths are
/// reached this way; files below a root go through [`Root::open_file`]).
pub(crate) fn open_error(path: &Path, source: io::Error) -> StorageError {
    let path = path.to_path_buf();
    match source.kind() {
        io::ErrorKind::NotFound => StorageError::FileMissing { path },
        _ => StorageError::Io { path, source },
    }
}
