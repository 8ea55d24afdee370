//! Re-verifying, off the loop, the pieces fast resume could not vouch for (files changed, or
//! never verified): one thread reads each piece whole, checks it against the torrent's hash,
//! and tells the loop which passed (they are served from then on) and which failed (withheld
//! for the run). Files whose pieces all passed get their mtime (seen *before* hashing)
//! recorded, so the next start needs no hashing; files with a failed piece are marked
//! unverified. The same read also gives each fully re-verified file its SHA-256 (the content
//! identity the catalog records, `files.sha256`): the bytes are hashed from the buffer the
//! piece check read, never in a second pass.
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
use sha2::{Digest as _, Sha256};
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
        let mut digests = FileDigests::new(&job.plan);
        for piece in job.plan.pieces.iter().flat_map(Clone::clone) {
            let Some(len) = job.storage.piece_len(piece) else {
                bad.push(piece);
                continue;
            };
            buf.resize(len as usize, 0);
            let read = job.storage.read_piece(piece, &mut buf).is_ok();
            if read {
                digests.feed(u64::from(piece) * u64::from(job.plan.piece_length), &buf);
            }
            let ok = read && (job.piece_check)(piece, &buf);
            rehashed.fetch_add(u64::from(len), Ordering::Relaxed);
            if ok {
                good.push(piece);
            } else {
                bad.push(piece);
            }
        }
        info!(info_hash = %job.info_hash, verified = good.len(), failed = bad.len(), "re-verified the pieces of changed files");
        let checks = file_checks(&job.plan, &bad, &digests.finish());
        let outcome = Outcome {
            info_hash: job.info_hash,
            good,
            bad,
        };
        // Through the catalog worker, which writes the checks first and then hands the
        // outcome to the loop: whoever hears of it finds the files' records in the catalog.
        let outcome = match catalog {
            Some(tx) => match tx.send(Command::FileChecks {
                id: job.id,
                checks,
                outcome: Some(outcome),
            }) {
                Ok(()) => None,
                Err(mpsc::SendError(command)) => {
                    warn!("catalog worker gone: file checks not recorded");
                    match command {
                        Command::FileChecks { outcome, .. } => outcome,
                        _ => None,
                    }
                }
            },
            None => Some(outcome),
        };
        if let Some(outcome) = outcome {
            outbox.push(Reply::Rechecked(outcome));
        }
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

/// The SHA-256 of each file of a [`RecheckPlan`] whose bytes the re-check reads from its first
/// to its last, in order (files wholly inside the plan's pieces), fed from the buffers the piece
/// checks read. A file read only in part, or out of order, gets none.
struct FileDigests {
    /// Per file of the plan, padding files included (they take no bytes): its hashing so far.
    files: Vec<FileDigest>,
    /// The first file that may still take bytes (pieces come in increasing order).
    cursor: usize,
}

/// One file's hashing.
struct FileDigest {
    /// Offset of its first byte in the torrent's piece space.
    start: u64,
    /// Its length in bytes.
    length: u64,
    /// Bytes hashed so far (from `start`, contiguous).
    fed: u64,
    /// `None` for a padding file (BEP 47), which has no identity of its own.
    hasher: Option<Sha256>,
    /// A gap or a read out of order: no digest.
    broken: bool,
}

impl FileDigests {
    fn new(plan: &RecheckPlan) -> Self {
        let mut offset = 0u64;
        let files = plan
            .files
            .iter()
            .map(|file| {
                let start = offset;
                offset = offset.saturating_add(file.length);
                FileDigest {
                    start,
                    length: file.length,
                    fed: 0,
                    hasher: (!file.padding).then(Sha256::new),
                    broken: false,
                }
            })
            .collect();
        Self { files, cursor: 0 }
    }

    /// Hashes `data`, the bytes at `offset` of the piece space, into the files it covers.
    fn feed(&mut self, offset: u64, data: &[u8]) {
        let end = offset.saturating_add(data.len() as u64);
        while self
            .files
            .get(self.cursor)
            .is_some_and(|f| f.start.saturating_add(f.length) <= offset)
        {
            self.cursor += 1;
        }
        for file in &mut self.files[self.cursor..] {
            if file.start >= end {
                break;
            }
            let lo = file.start.max(offset);
            let hi = file.start.saturating_add(file.length).min(end);
            let Some(hasher) = file.hasher.as_mut() else {
                continue;
            };
            if lo >= hi {
                continue;
            }
            if file.start.saturating_add(file.fed) != lo {
                file.broken = true;
                continue;
            }
            // offset <= lo < hi <= end = offset + data.len(): both are indices into `data`.
            let (a, b) = ((lo - offset) as usize, (hi - offset) as usize);
            hasher.update(&data[a..b]);
            file.fed += hi - lo;
        }
    }

    /// Each file's SHA-256, when all its bytes were hashed in order.
    fn finish(self) -> Vec<Option<[u8; 32]>> {
        self.files
            .into_iter()
            .map(|f| match f.hasher {
                Some(hasher) if !f.broken && f.fed == f.length => Some(hasher.finalize().into()),
                _ => None,
            })
            .collect()
    }
}

/// What to record for each file that was re-verified (its recorded mtime differs from the one
/// observed): the observed mtime when every piece it touches passed, "unverified" otherwise;
/// with the file's SHA-256 from `digests` (one per file of `plan`) when it passed and was read
/// whole. `bad` is sorted (pieces are verified in order).
fn file_checks(plan: &RecheckPlan, bad: &[u32], digests: &[Option<[u8; 32]>]) -> Vec<FileCheck> {
    let mut checks = Vec::new();
    let mut offset = 0u64;
    for ((file, seen), digest) in plan.files.iter().zip(&plan.observed).zip(digests) {
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
            sha256: if failed { None } else { *digest },
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
        let none = [None, None, None];
        let checks = file_checks(&plan, &[], &none);
        assert_eq!(checks.len(), 2);
        assert_eq!((checks[0].index, checks[0].mtime_ns), (1, Some(7)));
        assert_eq!((checks[1].index, checks[1].mtime_ns), (2, Some(8)));
        let checks = file_checks(&plan, &[2], &none);
        assert_eq!((checks[0].index, checks[0].mtime_ns), (1, None));
        assert_eq!((checks[1].index, checks[1].mtime_ns), (2, None));
        assert_eq!(pieces_of(0, 0, 100), 0..0);
        assert_eq!(pieces_of(100, 100, 100), 1..2);
    }

    #[test]
    fn digests_cover_files_read_whole_and_in_order() {
        // Pieces of 100: a = 0..150, pad = 150..200, b = 200..260, c (empty), d = 260..300.
        let mut pad = rec(1, 50, None);
        pad.padding = true;
        let plan = RecheckPlan {
            pieces: vec![0..3],
            files: vec![
                rec(0, 150, None),
                pad,
                rec(2, 60, None),
                rec(3, 0, None),
                rec(4, 40, None),
            ],
            observed: Vec::new(),
            piece_length: 100,
        };
        let data: Vec<u8> = (0..300u32).map(|i| (i % 251) as u8).collect();
        let sha = |b: &[u8]| -> [u8; 32] { Sha256::digest(b).into() };
        let mut d = FileDigests::new(&plan);
        for piece in 0..3usize {
            d.feed(piece as u64 * 100, &data[piece * 100..(piece + 1) * 100]);
        }
        let got = d.finish();
        assert_eq!(got[0], Some(sha(&data[..150])));
        assert_eq!(got[1], None, "padding has no identity");
        assert_eq!(got[2], Some(sha(&data[200..260])));
        assert_eq!(got[3], Some(sha(b"")));
        assert_eq!(got[4], Some(sha(&data[260..300])));
        // Piece 1 never read: `a` is partial; `b` and `d` lie whole in piece 2.
        let mut d = FileDigests::new(&plan);
        d.feed(0, &data[..100]);
        d.feed(200, &data[200..300]);
        let got = d.finish();
        assert_eq!(got[0], None);
        assert_eq!(got[2], Some(sha(&data[200..260])));
        assert_eq!(got[4], Some(sha(&data[260..300])));
        // Piece 0 not read, piece 1 read: `a` has a gap at its start.
        let mut d = FileDigests::new(&plan);
        d.feed(100, &data[100..200]);
        assert_eq!(d.finish()[0], None);
    }
}
