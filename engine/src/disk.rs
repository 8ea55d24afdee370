//! Disk reads off the event loop: a small pool of threads reads blocks with `pread` and hands them
//! back through a queue, waking the loop with [`mio::Waker`].

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use bytes::{Bytes, BytesMut};
use mio::Waker;
use seednode_storage::Storage;
use seednode_wire::peer::{BlockRequest, PIECE_HEADER_LEN, piece_header};

/// A block to read for connection `key`.
pub(crate) struct DiskJob {
    /// Connection key in the reactor's slab.
    pub(crate) key: usize,
    /// Connection generation, to ignore results for a key reused by a later connection.
    pub(crate) generation: u64,
    /// The session's choke epoch when the read was issued.
    pub(crate) epoch: u32,
    /// Where the torrent's data lives.
    pub(crate) storage: Arc<Storage>,
    /// The block.
    pub(crate) req: BlockRequest,
}

/// A finished read: `Ok` holds the whole `piece` message (header and block) ready to send.
pub(crate) struct DiskDone {
    pub(crate) key: usize,
    pub(crate) generation: u64,
    pub(crate) epoch: u32,
    pub(crate) req: BlockRequest,
    pub(crate) result: Result<Bytes, seednode_storage::StorageError>,
}

type DoneQueue = Arc<Mutex<Vec<DiskDone>>>;

/// The pool. Dropping it stops and joins the threads.
pub(crate) struct DiskPool {
    jobs: Option<Sender<DiskJob>>,
    done: DoneQueue,
    threads: Vec<JoinHandle<()>>,
}

impl DiskPool {
    /// Starts `threads` readers that wake `waker` when a result is ready.
    pub(crate) fn new(threads: usize, waker: Arc<Waker>) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<DiskJob>();
        let rx = Arc::new(Mutex::new(rx));
        let done: DoneQueue = Arc::new(Mutex::new(Vec::new()));
        let mut handles = Vec::new();
        for i in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            let done = Arc::clone(&done);
            let waker = Arc::clone(&waker);
            handles.push(
                std::thread::Builder::new()
                    .name(format!("disk-{i}"))
                    .spawn(move || worker(&rx, &done, &waker))?,
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

fn worker(rx: &Mutex<Receiver<DiskJob>>, done: &Mutex<Vec<DiskDone>>, waker: &Waker) {
    loop {
        let job = {
            let rx = rx.lock().unwrap_or_else(PoisonError::into_inner);
            match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        let DiskJob {
            key,
            generation,
            epoch,
            storage,
            req,
        } = job;
        let len = req.length as usize;
        let mut buf = BytesMut::zeroed(PIECE_HEADER_LEN + len);
        buf[..PIECE_HEADER_LEN].copy_from_slice(&piece_header(req.piece, req.begin, req.length));
        let result = storage
            .read_block(
                req.piece,
                req.begin,
                req.length,
                &mut buf[PIECE_HEADER_LEN..],
            )
            .map(|()| buf.freeze());
        let was_empty = {
            let mut q = done.lock().unwrap_or_else(PoisonError::into_inner);
            q.push(DiskDone {
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
