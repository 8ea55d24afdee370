//! Re-verifying, off the loop, the pieces fast resume could not vouch for (files changed, or
//! never verified): one thread reads each piece whole, checks it against the torrent's hash,
//! and tells the loop which passed (they are served from then on) and which failed (withheld
//! for the run). Files whose pieces all passed get their mtime (seen *before* hashing)
//! recorded, so the next start needs no hashing; files with a failed piece are marked
//! unverified.
//!
//! Every byte read here counts in `seednode_rehashed_bytes_total`: with fast resume and
//! unchanged files it stays 0.

use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;

use seednode_storage::Storage;
use seednode_storage::catalog::resume::OnDisk;
use seednode_storage::catalog::{FileCheck, TorrentId};
use seednode_wire::InfoHash;
use tracing::{info, warn};

use super::resume::RecheckPlan;
use super::worker::{Command, Outbox, Reply};
use crate::reactor::PieceCheck;

/// One torrent's pieces to verify.
pub(crate) struct Job {
    /// The torrent's catalog id.
    pub(crate) id: TorrentId,
    /// Its info-hash (how the loop finds it).
    pub(crate) info_hash: InfoHash,
    /// Its data.
    pub(crate) storage: Arc<Storage>,
    /// Its hash check.
    pub(crate) piece_check: PieceCheck,
    /// What to verify.
    pub(crate) plan: RecheckPlan,
}

/// The verdict on one torrent's withheld pieces.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// The torrent's info-hash.
    pub(crate) info_hash: InfoHash,
    /// Pieces that matched their hash: serve them.
    pub(crate) good: Vec<u32>,
    /// Pieces that did not (or could not be read): keep withholding them.
    pub(crate) bad: Vec<u32>,
}

/// The loop's handle on the re-check thread.
pub(crate) struct Rechecker {
    tx: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    /// Bytes read and hashed so far (`seednode_rehashed_bytes_total`).
    pub(crate) rehashed: Arc<AtomicU64>,
}

impl Rechecker {
    /// Starts the thread: outcomes go to `outbox`, file records to the catalog worker through
    /// `catalog` (a sender that may wait: this is not the loop).
    ///
    /// # Errors
    /// The thread cannot be spawned.
    pub(crate) fn start(outbox: Outbox, catalog: Option<SyncSender<Command>>) -> io::Result<Self> {
        // Unbounded, but bounded in practice: one job per catalog torrent (start-up) or per
        // add the worker acknowledged.
        let (tx, rx) = mpsc::channel();
        let rehashed = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&rehashed);
        let thread = std::thread::Builder::new()
            .name("recheck".into())
            .spawn(move || run(&rx, &outbox, catalog.as_ref(), &counter))?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
            rehashed,
        })
    }

    /// Queues `job`.
    pub(crate) fn submit(&self, job: Job) {
        if let Some(tx) = &self.tx
            && tx.send(job).is_err()
        {
            warn!("the re-check thread is gone; withheld pieces stay withheld");
        }
    }

    /// Bytes hashed so far.
    pub(crate) fn rehashed_bytes(&self) -> u64 {
        self.rehashed.load(Ordering::Relaxed)
    }

    /// Stops taking jobs; the thread ends after the piece it is reading (not joined: a
    /// re-check of a large torrent must not delay shutdown).
    pub(crate) fn stop(&mut self) {
        self.tx = None;
        self.thread = None;
    }
}

fn run(
    rx: &Receiver<Job>,
    outbox: &Outbox,
    catalog: Option<&SyncSender<Command>>,
    rehashed: &AtomicU64,
) {
    let mut buf = Vec::new();
    while let Ok(job) = rx.recv() {
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for piece in job.plan.pieces.iter().flat_map(Clone::clone) {
            let Some(len) = job.storage.piece_len(piece) else {
                bad.push(piece);
                continue;
            };
            buf.resize(len as usize, 0);
            let ok =
                job.storage.read_piece(piece, &mut buf).is_ok() && (job.piece_check)(piece, &buf);
            rehashed.fetch_add(u64::from(len), Ordering::Relaxed);
            if ok {
                good.push(piece);
            } else {
                bad.push(piece);
            }
        }
        info!(info_hash = %job.info_hash, verified = good.len(), failed = bad.len(), "re-verified the pieces of changed files");
        let checks = file_checks(&job.plan, &bad);
        if let Some(tx) = catalog
            && !checks.is_empty()
            && tx.send(Command::FileChecks { id: job.id, checks }).is_err()
        {
            warn!("catalog worker gone: file checks not recorded");
        }
        outbox.push(Reply::Rechecked(Outcome {
            info_hash: job.info_hash,
            good,
            bad,
        }));
    }
}

/// The piece range a file of `length` bytes at `start` touches (empty for an empty file).
fn pieces_of(start: u64, length: u64, piece_length: u32) -> Range<u32> {
    if length == 0 {
        return 0..0;
    }
    let pl = u64::from(piece_length.max(1));
    let first = u32::try_from(start / pl).unwrap_or(u32::MAX);
    let last = u32::try_from((start + length - 1) / pl).unwrap_or(u32::MAX - 1);
    first..last.saturating_add(1)
}

/// What to record for each file that was re-verified (its recorded mtime differs from the one
/// observed): the observed mtime when every piece it touches passed, "unverified" otherwise.
/// `bad` is sorted (pieces are verified in order).
fn file_checks(plan: &RecheckPlan, bad: &[u32]) -> Vec<FileCheck> {
    let mut checks = Vec::new();
    let mut offset = 0u64;
    for (file, seen) in plan.files.iter().zip(&plan.observed) {
        let start = offset;
        offset = offset.saturating_add(file.length);
        let OnDisk::File { mtime_ns, .. } = seen else {
            continue;
        };
        if file.padding || file.mtime_ns == Some(*mtime_ns) {
            continue;
        }
        let range = pieces_of(start, file.length, plan.piece_length);
        let failed = bad.iter().any(|p| range.contains(p));
        checks.push(FileCheck {
            index: file.index,
            mtime_ns: (!failed).then_some(*mtime_ns),
            sha256: None,
        });
    }
    checks
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // one range of pieces is the point
mod tests {
    use super::*;
    use seednode_storage::catalog::FileRecord;

    fn rec(index: u32, length: u64, mtime_ns: Option<i64>) -> FileRecord {
        FileRecord {
            index,
            path: format!("f{index}"),
            length,
            padding: false,
            mtime_ns,
            sha256: None,
        }
    }

    #[test]
    fn records_only_changed_files_and_only_when_their_pieces_pass() {
        // Pieces of 100: a = 0..150 (pieces 0-1), b = 150..250 (1-2), c = 250..300 (2).
        let plan = RecheckPlan {
            pieces: vec![0..3],
            files: vec![rec(0, 150, Some(1)), rec(1, 100, None), rec(2, 50, Some(3))],
            observed: vec![
                OnDisk::File {
                    length: 150,
                    mtime_ns: 1,
                },
                OnDisk::File {
                    length: 100,
                    mtime_ns: 7,
                },
                OnDisk::File {
                    length: 50,
                    mtime_ns: 8,
                },
            ],
            piece_length: 100,
        };
        let checks = file_checks(&plan, &[]);
        assert_eq!(checks.len(), 2);
        assert_eq!((checks[0].index, checks[0].mtime_ns), (1, Some(7)));
        assert_eq!((checks[1].index, checks[1].mtime_ns), (2, Some(8)));
        let checks = file_checks(&plan, &[2]);
        assert_eq!((checks[0].index, checks[0].mtime_ns), (1, None));
        assert_eq!((checks[1].index, checks[1].mtime_ns), (2, None));
        assert_eq!(pieces_of(0, 0, 100), 0..0);
        assert_eq!(pieces_of(100, 100, 100), 1..2);
    }
}
