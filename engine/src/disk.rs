//! Disk reads off the event loop (the `--data-path copy` path): a small pool of threads reads
//! pieces with `pread` into a bounded LRU cache of whole pieces and hands blocks back as slices of
//! them, waking the loop with [`mio::Waker`].
//!
//! A piece read into the cache is checked against its SHA-1 first (SECURITY.md S6: data changed
//! on disk is never served). Pieces larger than half the cache are not cached: their blocks are
//! read one by one, unchecked, so a small cache never thrashes.

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use bytes::{Bytes, BytesMut};
use mio::Waker;
use seednode_storage::{Storage, StorageError};
use seednode_wire::peer::{BlockRequest, piece_header};

/// A block to read for connection `key`.
pub(crate) struct DiskJob {
    /// Connection key in the reactor's slab.
    pub(crate) key: usize,
    /// Connection generation, to ignore results for a key reused by a later connection.
    pub(crate) generation: u64,
    /// The session's choke epoch when the read was issued.
    pub(crate) epoch: u32,
    /// The torrent's index in the reactor (the cache key).
    pub(crate) torrent: usize,
    /// Where the torrent's data lives.
    pub(crate) storage: Arc<Storage>,
    /// Checks what is read against the torrent's hashes.
    pub(crate) piece_check: crate::reactor::PieceCheck,
    /// The block; for [`JobKind::Verify`] and [`JobKind::Warm`], its piece (`begin` and
    /// `length` unused).
    pub(crate) req: BlockRequest,
    /// What to do.
    pub(crate) kind: JobKind,
}

impl DiskJob {
    /// A job of `kind` on `req` of `torrent`, for connection `(key, generation)` whose choke
    /// epoch is `epoch`.
    pub(crate) fn new(
        key: usize,
        generation: u64,
        epoch: u32,
        torrent_index: usize,
        torrent: &crate::reactor::SeededTorrent,
        req: BlockRequest,
        kind: JobKind,
    ) -> Self {
        Self {
            key,
            generation,
            epoch,
            torrent: torrent_index,
            storage: Arc::clone(&torrent.storage),
            piece_check: Arc::clone(&torrent.piece_check),
            req,
            kind,
        }
    }
}

/// The work a [`DiskJob`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobKind {
    /// Read the block (through the piece cache) and hand it back to send.
    Block,
    /// Read the whole piece and check it against its hash, send nothing (the first serve of a
    /// piece in a run, libtorrent's seed mode): `Ok` with empty bytes when it matches.
    Verify,
    /// Read the piece into the page cache (opening its files) so that `sendfile` on the loop
    /// never waits for the disk: `Ok` with empty bytes.
    Warm,
}

/// Why a read produced nothing to send.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DiskError {
    /// Reading failed (file missing, truncated, I/O error).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The piece on disk no longer matches its hash.
    #[error("piece {piece} fails its hash check: the data changed on disk")]
    HashMismatch {
        /// Piece index.
        piece: u32,
    },
}

/// A finished read: the `piece` message's header and its block, ready to send.
pub(crate) struct DiskDone {
    pub(crate) torrent: usize,
    pub(crate) kind: JobKind,
    pub(crate) key: usize,
    pub(crate) generation: u64,
    pub(crate) epoch: u32,
    pub(crate) req: BlockRequest,
    pub(crate) result: Result<(Bytes, Bytes), DiskError>,
}

/// Whole pieces, least recently used evicted first, within a byte budget.
struct PieceCache {
    capacity_bytes: usize,
    used_bytes: usize,
    entries: HashMap<(usize, u32), (Bytes, u64)>,
    tick: u64,
}

impl PieceCache {
    fn get(&mut self, key: (usize, u32)) -> Option<Bytes> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(&key).map(|(piece, used)| {
            *used = tick;
            piece.clone()
        })
    }

    fn insert(&mut self, key: (usize, u32), piece: Bytes) {
        while self.used_bytes + piece.len() > self.capacity_bytes {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| *k)
            else {
                return;
            };
            if let Some((old, _)) = self.entries.remove(&oldest) {
                self.used_bytes -= old.len();
            }
        }
        self.tick += 1;
        self.used_bytes += piece.len();
        if let Some((old, _)) = self.entries.insert(key, (piece, self.tick)) {
            self.used_bytes -= old.len();
        }
    }
}

type DoneQueue = Arc<Mutex<Vec<DiskDone>>>;

/// The pool. Dropping it stops and joins the threads.
pub(crate) struct DiskPool {
    jobs: Option<Sender<DiskJob>>,
    done: DoneQueue,
    threads: Vec<JoinHandle<()>>,
}

impl DiskPool {
    /// Starts `threads` readers sharing a cache of `cache_bytes`, waking `waker` when a result is
    /// ready.
    pub(crate) fn new(
        threads: usize,
        cache_bytes: usize,
        waker: Arc<Waker>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<DiskJob>();
        let rx = Arc::new(Mutex::new(rx));
        let done: DoneQueue = Arc::new(Mutex::new(Vec::new()));
        let cache = Arc::new(Mutex::new(PieceCache {
            capacity_bytes: cache_bytes,
            used_bytes: 0,
            entries: HashMap::new(),
            tick: 0,
        }));
        let mut handles = Vec::new();
        for i in 0..threads.max(1) {
            let (rx, done, waker, cache) = (
                Arc::clone(&rx),
                Arc::clone(&done),
                Arc::clone(&waker),
                Arc::clone(&cache),
            );
            handles.push(
                std::thread::Builder::new()
                    .name(format!("disk-{i}"))
                    .spawn(move || worker(&rx, &done, &waker, &cache))?,
            );
        }
        Ok(Self {
            jobs: Some(tx),
            done,
            threads: handles,
        })
    }

    /// Queues a read.
    pub(crate) fn submit(&self, job: DiskJob) {
        if let Some(tx) = &self.jobs {
            // The receiver lives as long as the workers, which live as long as `self`.
            let _ = tx.send(job);
        }
    }

    /// Takes every finished read.
    pub(crate) fn drain(&self, out: &mut Vec<DiskDone>) {
        let mut done = self.done.lock().unwrap_or_else(PoisonError::into_inner);
        out.append(&mut done);
    }
}

impl Drop for DiskPool {
    fn drop(&mut self) {
        self.jobs = None;
        for t in self.threads.drain(..) {
            // A panicked worker already printed its message; nothing more to do at shutdown.
            let _ = t.join();
        }
    }
}

/// The block of `job`: a slice of its cached (and checked) piece, or read alone.
fn read(job: &DiskJob, cache: &Mutex<PieceCache>) -> Result<Bytes, DiskError> {
    let req = job.req;
    let key = (job.torrent, req.piece);
    let (begin, end) = (req.begin as usize, req.begin as usize + req.length as usize);
    let piece_len = job.storage.piece_len(req.piece).unwrap_or(0) as usize;
    let cacheable = piece_len.saturating_mul(2)
        <= cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .capacity_bytes;
    if !cacheable {
        let mut buf = BytesMut::zeroed(req.length as usize);
        job.storage
            .read_block(req.piece, req.begin, req.length, &mut buf)?;
        return Ok(buf.freeze());
    }
    if let Some(piece) = cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(key)
    {
        return Ok(piece.slice(begin..end.min(piece.len())));
    }
    let mut buf = BytesMut::zeroed(piece_len);
    job.storage.read_piece(req.piece, &mut buf)?;
    if !(job.piece_check)(req.piece, &buf) {
        return Err(DiskError::HashMismatch { piece: req.piece });
    }
    let piece = buf.freeze();
    cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(key, piece.clone());
    // The session validated begin + length against the piece length already.
    Ok(piece.slice(begin..end.min(piece.len())))
}

/// Reads piece `job.req.piece` whole and checks it against its hash.
fn verify(job: &DiskJob) -> Result<(), DiskError> {
    let piece = job.req.piece;
    let len = job.storage.piece_len(piece).unwrap_or(0) as usize;
    let mut buf = BytesMut::zeroed(len);
    job.storage.read_piece(piece, &mut buf)?;
    if (job.piece_check)(piece, &buf) {
        Ok(())
    } else {
        Err(DiskError::HashMismatch { piece })
    }
}

fn worker(
    rx: &Mutex<Receiver<DiskJob>>,
    done: &Mutex<Vec<DiskDone>>,
    waker: &Waker,
    cache: &Mutex<PieceCache>,
) {
    // Warming reads land here and are dropped: at most `WARM_CHUNK_LEN` bytes per thread.
    let mut scratch = Vec::new();
    loop {
        let job = {
            let rx = rx.lock().unwrap_or_else(PoisonError::into_inner);
            match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        let result = match job.kind {
            JobKind::Verify => verify(&job).map(|()| (Bytes::new(), Bytes::new())),
            JobKind::Warm => job
                .storage
                .warm_piece(job.req.piece, &mut scratch)
                .map(|()| (Bytes::new(), Bytes::new()))
                .map_err(DiskError::from),
            JobKind::Block => read(&job, cache).map(|block| {
                let header = piece_header(job.req.piece, job.req.begin, job.req.length);
                (Bytes::copy_from_slice(&header), block)
            }),
        };
        let DiskJob {
            key,
            generation,
            epoch,
            req,
            torrent,
            kind,
            ..
        } = job;
        let was_empty = {
            let mut q = done.lock().unwrap_or_else(PoisonError::into_inner);
            q.push(DiskDone {
                torrent,
                kind,
                key,
                generation,
                epoch,
                req,
                result,
            });
            q.len() == 1
        };
        if was_empty {
            // A failed wake leaves the result queued; the loop's next turn picks it up.
            let _ = waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_evicts_least_recently_used_within_budget() {
        let mut c = PieceCache {
            capacity_bytes: 300,
            used_bytes: 0,
            entries: HashMap::new(),
            tick: 0,
        };
        c.insert((0, 1), Bytes::from(vec![1; 100]));
        c.insert((0, 2), Bytes::from(vec![2; 100]));
        c.insert((0, 3), Bytes::from(vec![3; 100]));
        assert!(c.get((0, 1)).is_some(), "touch piece 1");
        c.insert((1, 1), Bytes::from(vec![4; 100]));
        assert!(c.get((0, 2)).is_none(), "piece 2 was least recently used");
        assert!(c.get((0, 1)).is_some() && c.get((0, 3)).is_some() && c.get((1, 1)).is_some());
        assert_eq!(c.used_bytes, 300);
        c.insert((2, 0), Bytes::from(vec![5; 400]));
        assert!(
            c.used_bytes <= 300,
            "an entry larger than the budget is not kept"
        );
    }
}
