//! The one read-and-hash loop, shared by creation and verification.
//!
//! Each byte is read once, by `pread`, into a per-thread buffer of [`READ_BUF_LEN`] bytes and
//! hashed in place; pieces may straddle buffers and files.
//!
//! With `n` threads, the piece range is cut into contiguous chunks of about [`HASH_CHUNK_LEN`]
//! bytes, and `n` scoped threads take the next chunk from a shared queue until none is left.
//! Each chunk is read sequentially, the threads work on neighbouring chunks (one sequential
//! sweep over the data, which disks and readahead like), and a thread slowed down by other work
//! on its core simply takes fewer chunks. (A fixed split into `n` halves was measured: on a
//! machine with one core half taken, it waited for the slow half and lost 12% to mktorrent's
//! work queue.)

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread;

use crate::StorageError;
use crate::files::FileSet;
use crate::hash_v2::PieceHasher;
use crate::layout::Geometry;
use crate::limits::{HASH_CHUNK_LEN, MAX_HASH_THREADS, MIN_BYTES_PER_HASH_THREAD, READ_BUF_LEN};

/// One hashing thread per core the OS lets this process use (1 if that cannot be known).
#[must_use]
pub fn default_threads() -> usize {
    thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// Threads worth using for `total_length` bytes in `piece_count` pieces when `requested` were
/// asked for (0 = [`default_threads`]): clamped to [`MAX_HASH_THREADS`], to one per
/// [`MIN_BYTES_PER_HASH_THREAD`] bytes and to one per piece, and at least 1.
pub(crate) fn effective_threads(requested: usize, total_length: u64, piece_count: u32) -> usize {
    let requested = if requested == 0 {
        default_threads()
    } else {
        requested
    };
    let by_size = usize::try_from(total_length / MIN_BYTES_PER_HASH_THREAD).unwrap_or(usize::MAX);
    let by_pieces = usize::try_from(piece_count).unwrap_or(usize::MAX);
    requested
        .min(MAX_HASH_THREADS)
        .min(by_size)
        .min(by_pieces)
        .max(1)
}

/// Reports progress to the caller's callback: calls are serialized and the totals never go down,
/// whichever thread reports. Shared by v1 and v2 hashing.
pub(crate) struct Progress<'a> {
    callback: &'a (dyn Fn(u64) + Sync),
    hashed: Mutex<u64>,
}

impl<'a> Progress<'a> {
    pub(crate) fn new(callback: &'a (dyn Fn(u64) + Sync)) -> Self {
        Self {
            callback,
            hashed: Mutex::new(0),
        }
    }

    /// Adds `bytes` to the total and reports the new total.
    pub(crate) fn add(&self, bytes: u64) {
        let mut hashed = self.hashed.lock().unwrap_or_else(PoisonError::into_inner);
        *hashed = hashed.saturating_add(bytes);
        (self.callback)(*hashed);
    }
}

/// Fills `out` (one slot per piece of `piece_length` bytes) on `threads` threads, the scaffolding
/// of v1 and v2 hashing alike: `out` is cut into runs of contiguous pieces of about
/// [`HASH_CHUNK_LEN`] bytes (at least one piece), and each thread takes the next run from a shared
/// queue until none is left (see the module docs). Each thread makes its own state (its read
/// buffer) with `worker`, then calls `run(state, first, slots, abort)` for each run it takes, to
/// fill the slots of pieces `first..first + slots.len()`; `run` should return early once `abort`
/// is set. With one thread, everything runs on the caller's thread.
///
/// # Errors
/// The first error any `run` returns; the other threads stop at their next run (or sooner,
/// through `abort`).
pub(crate) fn hash_in_runs<T, S, W, R>(
    out: &mut [T],
    piece_length: u64,
    threads: usize,
    worker: W,
    run: R,
) -> Result<(), StorageError>
where
    T: Send,
    W: Fn() -> S + Sync,
    R: Fn(&mut S, u32, &mut [T], &AtomicBool) -> Result<(), StorageError> + Sync,
{
    let abort = AtomicBool::new(false);
    let chunk_pieces = usize::try_from(HASH_CHUNK_LEN.checked_div(piece_length).unwrap_or(0))
        .unwrap_or(usize::MAX)
        .max(1);
    // The queue of work: (run index, output slots of its pieces). ChunksMut hands out disjoint
    // `&mut` slices that outlive the lock guard, so threads fill them without further locking.
    let queue = Mutex::new(out.chunks_mut(chunk_pieces).enumerate());
    let work = || -> Result<(), StorageError> {
        let mut state = worker();
        loop {
            if abort.load(Ordering::Relaxed) {
                return Ok(());
            }
            let next = queue.lock().unwrap_or_else(PoisonError::into_inner).next();
            let Some((chunk, slots)) = next else {
                return Ok(());
            };
            // chunk * chunk_pieces < out.len(); callers keep it within u32 (piece counts).
            let result = u32::try_from(chunk * chunk_pieces)
                .map_err(|_| StorageError::LengthOverflow)
                .and_then(|first| run(&mut state, first, slots, &abort));
            if result.is_err() {
                abort.store(true, Ordering::Relaxed);
                return result;
            }
        }
    };
    if threads <= 1 {
        return work();
    }
    thread::scope(|scope| {
        let handles: Vec<_> = (0..threads).map(|_| scope.spawn(work)).collect();
        let mut result = Ok(());
        for handle in handles {
            let thread_result = handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            if result.is_ok() {
                result = thread_result;
            }
        }
        result
    })
}

/// Hashes every piece of `files` and stores `map(piece, sha1)` in `out[piece]`.
///
/// `out.len()` must be `geometry.piece_count`. `progress` receives the bytes hashed so far, about
/// every [`READ_BUF_LEN`] bytes per thread.
///
/// # Errors
/// The first read error of any thread ([`StorageError::Truncated`], [`StorageError::Io`], ...);
/// the other threads stop at their next buffer.
pub(crate) fn hash_pieces<T: Send>(
    files: &FileSet,
    geometry: Geometry,
    threads: usize,
    progress: &(dyn Fn(u64) + Sync),
    out: &mut [T],
    map: &(dyn Fn(u32, [u8; 20]) -> T + Sync),
) -> Result<(), StorageError> {
    if out.len() != usize::try_from(geometry.piece_count).unwrap_or(usize::MAX) {
        return Err(StorageError::BufferLength {
            expected: usize::try_from(geometry.piece_count).unwrap_or(usize::MAX),
            got: out.len(),
        });
    }
    if out.is_empty() {
        return Ok(());
    }
    let threads = effective_threads(threads, geometry.total_length, geometry.piece_count);
    let progress = Progress::new(progress);
    hash_in_runs(
        out,
        u64::from(geometry.piece_length),
        threads,
        || vec![0u8; read_buf_len(geometry.total_length)],
        |buf: &mut Vec<u8>, first, slots: &mut [T], abort: &AtomicBool| {
            hash_run(files, geometry, first, slots, map, buf, &progress, abort)
        },
    )
}

/// Bytes of read buffer for a torrent of `total_length` bytes: [`READ_BUF_LEN`], or less for a
/// smaller torrent.
fn read_buf_len(total_length: u64) -> usize {
    usize::try_from(total_length).map_or(READ_BUF_LEN, |len| len.min(READ_BUF_LEN))
}

/// Hashes the pieces `first..first + out.len()` on the calling thread, reading through `buf`.
#[allow(clippy::too_many_arguments)] // private; each argument is a different part of one job
fn hash_run<T>(
    files: &FileSet,
    geometry: Geometry,
    first: u32,
    out: &mut [T],
    map: &(dyn Fn(u32, [u8; 20]) -> T + Sync),
    buf: &mut [u8],
    progress: &Progress<'_>,
    abort: &AtomicBool,
) -> Result<(), StorageError> {
    let piece_length = u64::from(geometry.piece_length);
    // Every product below is at most piece_count * piece_length, which is < total_length +
    // piece_length; Geometry::new checked piece_count == ceil(total_length / piece_length).
    let start = u64::from(first) * piece_length;
    let pieces = u64::try_from(out.len()).map_err(|_| StorageError::LengthOverflow)?;
    let end = start
        .checked_add(
            pieces
                .checked_mul(piece_length)
                .ok_or(StorageError::LengthOverflow)?,
        )
        .ok_or(StorageError::LengthOverflow)?
        .min(geometry.total_length);
    // SHA-1 only: the same piece hasher v2 creation and streaming ingest use.
    let mut hasher = PieceHasher::new(true, false);
    let mut slots = out.iter_mut();
    let mut piece = first;
    let mut piece_left = geometry.piece_len(piece).map_or(0, u64::from);
    let mut pos = start;
    while pos < end {
        if abort.load(Ordering::Relaxed) {
            return Ok(());
        }
        let n = usize::try_from(end - pos).map_or(buf.len(), |left| left.min(buf.len()));
        let chunk = &mut buf[..n];
        files.read_exact_at(pos, chunk)?;
        let mut rest: &[u8] = chunk;
        while !rest.is_empty() && piece_left > 0 {
            let take = usize::try_from(piece_left).map_or(rest.len(), |left| left.min(rest.len()));
            let (now, later) = rest.split_at(take);
            hasher.data(now)?;
            rest = later;
            piece_left -= take as u64;
            if piece_left == 0 {
                let digest = hasher.finish(0)?.v1;
                if let Some(slot) = slots.next() {
                    *slot = map(piece, digest);
                }
                piece += 1;
                piece_left = geometry.piece_len(piece).map_or(0, u64::from);
            }
        }
        pos += n as u64;
        progress.add(n as u64);
    }
    Ok(())
}
