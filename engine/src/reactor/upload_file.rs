//! `UPLOAD_FILE` (issue 12, `docs/upload.md`): a file streamed to the node, hashed as it
//! arrives, stored, turned into a torrent and seeded.
//!
//! The event loop decodes the header and checks everything that can be checked before a payload
//! byte is read (lockout, token, scope, the byte quota against the announced length, the number
//! of uploads at once). Then the connection leaves the loop: its socket goes, blocking, to a
//! thread of its own ([`MAX_CONCURRENT_UPLOADS`] at most), which runs
//! [`seednode_storage::Ingest`] (write and hash from the same buffer, `fsync`, rename into
//! place, torrent built as `seednode create` builds it), hands the torrent to the loop for the
//! catalog commit (an [`UploadEvent::Stored`] through a channel and the loop's waker), waits for
//! the verdict, writes the reply line and, when the commit was refused, removes the file again.
//! A dropped connection keeps its checkpoint for `UPLOAD_RESUME` (not served yet; partial files
//! are listed by `seednode_storage::ingest::partial_uploads` for cleanup).

use crate::daemon::unix_now;
use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, SyncSender};
use std::time::{Duration, Instant};

use mio::Waker;
use seednode_storage::{CreateOptions, Ingest, NewUpload};
use seednode_wire::metainfo::Metainfo;
use seednode_wire::upload::{ErrorCode, FileHeader, Reply, UploadId};
use serde_json::json;
use tracing::{debug, info, warn};

use super::Reactor;
use super::catalog::Requester;
use crate::events::{Event, kind};

/// Uploads streaming at once over the whole node: each holds a thread and a file open; more are
/// answered `ERR busy` before any payload byte.
pub(crate) const MAX_CONCURRENT_UPLOADS: usize = 4;

/// Uploads streaming at once for one token or client: the others wait (`ERR busy`), so one
/// uploader cannot hold every slot.
pub(crate) const MAX_UPLOADS_PER_OWNER: usize = 2;

/// How long an upload may go without a byte before it is cut off (its checkpoint is kept).
pub(crate) const UPLOAD_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The window over which an upload's rate is checked.
pub(crate) const UPLOAD_RATE_WINDOW: Duration = Duration::from_secs(60);

/// Fewest bytes an upload must deliver per [`UPLOAD_RATE_WINDOW`] (64 KiB a minute, about
/// 1 KiB/s: any real link does more) before it is cut with `ERR busy`, its checkpoint kept: a
/// trickle would otherwise hold one of the [`MAX_CONCURRENT_UPLOADS`] slots for ever.
pub(crate) const MIN_UPLOAD_BYTES_PER_WINDOW: u64 = 64 * 1024;

/// Bytes read from the socket per write to the file (and per hash update).
pub(crate) const UPLOAD_CHUNK_LEN: usize = 256 * 1024;

/// How long a finished upload waits for the catalog's verdict before giving up (the file is
/// then removed and the client told `ERR internal`).
pub(crate) const UPLOAD_VERDICT_TIMEOUT: Duration = Duration::from_secs(30);

/// What an upload thread tells the loop.
pub(crate) enum UploadEvent {
    /// The file is in place and this is its torrent: commit it, then send the reply on `reply`.
    Stored {
        /// The `.torrent` bytes.
        metainfo: Vec<u8>,
        /// Where the file is.
        data_path: PathBuf,
        /// Who uploaded (token or client id).
        owner: String,
        /// Where the client connected from.
        source: SocketAddr,
        /// The stored file's modification time (nanoseconds since the epoch) and SHA-256,
        /// recorded as verified: its pieces were hashed as they arrived, so nothing is read
        /// back to seed it.
        verified: Option<(i64, [u8; 32])>,
        /// The verdict's way back to the thread.
        reply: SyncSender<Reply>,
    },
    /// The thread ended (stored, refused or interrupted): a slot is free.
    Finished {
        /// The upload.
        upload_id: UploadId,
        /// Where the client connected from.
        source: SocketAddr,
        /// The token or client id.
        owner: String,
        /// What happened, for the `upload.completed` / `upload.rejected` event.
        outcome: Result<String, (ErrorCode, String)>,
        /// The surface, for the event: `upload` (`UPLOAD_FILE`) or `blossom`.
        surface: &'static str,
    },
}

/// The loop's side of the upload threads.
pub(crate) struct UploadThreads {
    pub(super) active: usize,
    /// Uploads running now (a resume of one of them is refused: one writer per file).
    pub(super) ids: std::collections::HashSet<UploadId>,
    /// Uploads running now per owner (token or client id).
    pub(super) owners: std::collections::HashMap<String, usize>,
    pub(super) tx: Sender<UploadEvent>,
    rx: Receiver<UploadEvent>,
    /// Catalog requests of stored uploads, with the way back to their thread.
    waiters: std::collections::HashMap<u64, SyncSender<Reply>>,
}

impl UploadThreads {
    /// Whether another upload by `owner` must wait: [`MAX_CONCURRENT_UPLOADS`] in all, or
    /// [`MAX_UPLOADS_PER_OWNER`] for this token, client or key.
    pub(super) fn full_for(&self, owner: &str) -> bool {
        self.active >= MAX_CONCURRENT_UPLOADS
            || self.owners.get(owner).copied().unwrap_or(0) >= MAX_UPLOADS_PER_OWNER
    }

    /// Counts upload `id` of `owner` as running.
    fn claim(&mut self, owner: &str, id: UploadId) {
        self.active += 1;
        *self.owners.entry(owner.to_owned()).or_insert(0) += 1;
        self.ids.insert(id);
    }

    /// Upload `id` of `owner` ended (or never started).
    fn release(&mut self, owner: &str, id: UploadId) {
        self.active = self.active.saturating_sub(1);
        self.ids.remove(&id);
        if let Some(n) = self.owners.get_mut(owner) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.owners.remove(owner);
            }
        }
    }

    /// Runs `work` (upload `id` of `owner`) on a thread named `name`, counted as running until
    /// its `Finished` event; uncounted again when the thread cannot be started.
    pub(super) fn spawn(
        &mut self,
        name: &str,
        owner: &str,
        id: UploadId,
        work: impl FnOnce() + Send + 'static,
    ) {
        self.claim(owner, id);
        if let Err(e) = std::thread::Builder::new().name(name.into()).spawn(work) {
            warn!(error = %e, thread = name, "upload thread not started");
            self.release(owner, id);
        }
    }
}

impl Default for UploadThreads {
    fn default() -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        Self {
            active: 0,
            ids: std::collections::HashSet::new(),
            owners: std::collections::HashMap::new(),
            tx,
            rx,
            waiters: std::collections::HashMap::new(),
        }
    }
}

impl Reactor {
    /// Starts an `UPLOAD_FILE` of connection `key` whose token (id `actor`) may upload.
    pub(super) fn upload_file(
        &mut self,
        key: usize,
        now: Instant,
        header: FileHeader,
        actor: &str,
    ) {
        let Some(conn) = self.conns.get(key) else {
            return;
        };
        let remote = conn.remote;
        let Some(root) = self.config.content_root.clone() else {
            self.upload_refuse(
                key,
                remote,
                Some(actor),
                ErrorCode::Internal,
                "uploads need `seednode run` (the catalog)",
            );
            return;
        };
        let owner = self.owner_of(actor);
        if owner.max_bytes.is_some_and(|max| header.length > max) {
            self.upload_refuse(
                key,
                remote,
                Some(actor),
                ErrorCode::Quota,
                "the file is larger than the token's byte quota",
            );
            return;
        }
        if self.uploads.full_for(actor) {
            self.upload_refuse(
                key,
                remote,
                Some(actor),
                ErrorCode::Busy,
                "too many uploads at once; retry later",
            );
            return;
        }
        let mut id = [0u8; seednode_wire::upload::UPLOAD_ID_LEN];
        if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id).is_err() {
            self.upload_refuse(
                key,
                remote,
                Some(actor),
                ErrorCode::Internal,
                "no randomness",
            );
            return;
        }
        let upload_id = UploadId::from_bytes(id);
        let Some((stream, leftover)) = self.detach(key) else {
            return;
        };
        let mut event = Event::new(kind::UPLOAD_STARTED, unix_now());
        event.source = Some(remote.ip());
        event.actor = Some(actor.to_owned());
        event.details = json!({
            "surface": "upload",
            "kind": "file",
            "name": header.name.as_str(),
            "bytes": header.length,
            "upload_id": upload_id.to_string(),
        });
        self.events.emit(now, &event);
        let job = Job {
            stream,
            leftover,
            start: Start::New(header),
            upload_id,
            owner: actor.to_owned(),
            source: remote,
            content_root: root,
            events: self.uploads.tx.clone(),
            waker: self.waker(),
        };
        self.uploads
            .spawn("upload", actor, upload_id, move || run(job));
    }

    /// Continues the interrupted upload `upload_id` of connection `key` (`UPLOAD_RESUME`), whose
    /// token (id `actor`) may upload; the thread checks that `actor` started it.
    pub(super) fn upload_resume(
        &mut self,
        key: usize,
        now: Instant,
        upload_id: UploadId,
        actor: &str,
    ) {
        let Some(conn) = self.conns.get(key) else {
            return;
        };
        let remote = conn.remote;
        let Some(root) = self.config.content_root.clone() else {
            self.upload_refuse(
                key,
                remote,
                Some(actor),
                ErrorCode::Internal,
                "uploads need `seednode run`",
            );
            return;
        };
        if self.uploads.full_for(actor) || self.uploads.ids.contains(&upload_id) {
            self.upload_refuse(
                key,
                remote,
                Some(actor),
                ErrorCode::Busy,
                "too many uploads at once, or this one is still running; retry later",
            );
            return;
        }
        let Some((stream, leftover)) = self.detach(key) else {
            return;
        };
        let mut event = Event::new(kind::UPLOAD_STARTED, unix_now());
        event.source = Some(remote.ip());
        event.actor = Some(actor.to_owned());
        event.details =
            json!({ "surface": "upload", "kind": "resume", "upload_id": upload_id.to_string() });
        self.events.emit(now, &event);
        let job = Job {
            stream,
            leftover,
            start: Start::Resume,
            upload_id,
            owner: actor.to_owned(),
            source: remote,
            content_root: root,
            events: self.uploads.tx.clone(),
            waker: self.waker(),
        };
        self.uploads
            .spawn("upload", actor, upload_id, move || run(job));
    }

    /// Takes connection `key` out of the loop (deregistered, its accounting undone) and returns
    /// its socket in blocking mode with the bytes already received.
    pub(super) fn detach(&mut self, key: usize) -> Option<(std::net::TcpStream, bytes::BytesMut)> {
        // Uploads over uTP are refused before they get here (uTP carries peer wire only).
        if self.conns.get(key).is_none_or(|c| c.transport.is_utp()) {
            return None;
        }
        let conn = self.conns.remove(key);
        let super::utp::Transport::Tcp(mut tcp) = conn.transport else {
            return None;
        };
        let _ = self.poll.registry().deregister(&mut tcp);
        let ip = seednode_wire::addr::limit_key(conn.remote.ip());
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
        let stream: std::net::TcpStream = tcp.into();
        stream.set_nonblocking(false).ok()?;
        stream.set_read_timeout(Some(UPLOAD_IDLE_TIMEOUT)).ok()?;
        stream.set_write_timeout(Some(UPLOAD_IDLE_TIMEOUT)).ok()?;
        Some((stream, conn.rbuf))
    }

    /// Handles what the upload threads reported (on a wake of the loop).
    pub(super) fn on_upload_events(&mut self) {
        let now = self.now;
        while let Ok(event) = self.uploads.rx.try_recv() {
            match event {
                UploadEvent::Stored {
                    metainfo,
                    data_path,
                    owner,
                    source,
                    verified,
                    reply,
                } => self.commit_upload(metainfo, data_path, &owner, source, verified, reply),
                UploadEvent::Finished {
                    upload_id,
                    source,
                    owner,
                    outcome,
                    surface,
                } => {
                    self.uploads.release(&owner, upload_id);
                    let mut event = match &outcome {
                        Ok(ih) => {
                            let mut e = Event::new(kind::UPLOAD_COMPLETED, unix_now());
                            e.webhook_id = seednode_wire::InfoHash::from_text(ih)
                                .ok()
                                .and_then(|h| self.take_file_upload_report(&h));
                            e.details =
                                json!({ "surface": surface, "kind": "file", "info_hash": ih });
                            e
                        }
                        Err((code, reason)) => {
                            let mut e = Event::new(kind::UPLOAD_REJECTED, unix_now());
                            e.details = json!({ "surface": surface, "kind": "file",
                                "code": code.as_str(), "reason": reason });
                            e
                        }
                    };
                    event.source = Some(source.ip());
                    event.actor = Some(owner);
                    self.events.emit(now, &event);
                }
            }
        }
    }

    /// Commits a stored upload's torrent; the verdict goes back to its thread when the
    /// catalog answers ([`Reactor::finish_detached_upload`]).
    fn commit_upload(
        &mut self,
        metainfo: Vec<u8>,
        data_path: PathBuf,
        owner: &str,
        source: SocketAddr,
        verified: Option<(i64, [u8; 32])>,
        reply: SyncSender<Reply>,
    ) {
        let refuse = |reply: &SyncSender<Reply>, code, reason: &str| {
            let _ = reply.try_send(Reply::Err {
                code,
                reason: reason.to_owned(),
            });
        };
        let meta = match Metainfo::from_bytes(&metainfo) {
            Ok(m) => m,
            Err(e) => return refuse(&reply, ErrorCode::Internal, &e.to_string()),
        };
        if self.by_hash.contains_key(&meta.info_hash) || self.idle.contains_key(&meta.info_hash) {
            return refuse(
                &reply,
                ErrorCode::Exists,
                "the node has this torrent already",
            );
        }
        let mut new = match seednode_storage::catalog::NewTorrent::from_metainfo(
            metainfo,
            &meta,
            data_path,
            unix_now(),
        ) {
            Ok(t) => t,
            Err(e) => return refuse(&reply, ErrorCode::Internal, &e.to_string()),
        };
        new.owner = Some(self.owner_of(owner));
        if let (Some((mtime_ns, sha256)), [file]) = (verified, new.files.as_mut_slice()) {
            file.mtime_ns = Some(mtime_ns);
            file.sha256 = Some(sha256);
        }
        let requester = Requester {
            key: usize::MAX,
            generation: 0,
            actor: Some(owner.into()),
            source: Some(source.ip()),
        };
        let ih = meta.info_hash.to_hex();
        let (events, ids) = self.reports(
            &requester,
            vec![
                (kind::TORRENT_ADDED, json!({ "info_hash": ih })),
                (
                    kind::UPLOAD_COMPLETED,
                    json!({ "surface": "upload", "kind": "file", "info_hash": ih }),
                ),
            ],
        );
        match self.catalog_request(requester, |request| crate::daemon::worker::Command::Add {
            request,
            torrent: Box::new(new),
            events,
        }) {
            Ok(request) => {
                self.remember_reports(request, ids);
                self.uploads.waiters.insert(request, reply);
            }
            Err(_) => refuse(&reply, ErrorCode::Busy, "the catalog is busy; retry"),
        }
    }

    /// Whether catalog request `request` is a detached upload's add.
    pub(super) fn is_detached_upload(&self, request: u64) -> bool {
        self.uploads.waiters.contains_key(&request)
    }

    /// The catalog answered the add of a detached upload (`request`): its verdict goes to the
    /// upload's thread. Returns false when `request` is no such upload.
    pub(super) fn finish_detached_upload(
        &mut self,
        request: u64,
        answer: &Result<(seednode_wire::InfoHash, bool), (u16, &'static str, String)>,
    ) -> bool {
        let Some(reply) = self.uploads.waiters.remove(&request) else {
            return false;
        };
        let verdict = match answer {
            Ok((ih, _)) => Reply::Ok {
                info_hash: *ih,
                magnet: self.upload_magnet(*ih, None),
            },
            Err((409, _, m)) => Reply::Err {
                code: ErrorCode::Exists,
                reason: m.clone(),
            },
            Err((403, _, m)) => Reply::Err {
                code: ErrorCode::Quota,
                reason: m.clone(),
            },
            Err((_, _, m)) => Reply::Err {
                code: ErrorCode::Internal,
                reason: m.clone(),
            },
        };
        let _ = reply.try_send(verdict);
        true
    }
}

/// What an upload thread does: a new file, or an interrupted one continued.
enum Start {
    /// `UPLOAD_FILE`.
    New(FileHeader),
    /// `UPLOAD_RESUME`: from the saved checkpoint of the upload.
    Resume,
}

/// Everything an upload thread needs.
struct Job {
    stream: std::net::TcpStream,
    leftover: bytes::BytesMut,
    start: Start,
    upload_id: UploadId,
    owner: String,
    source: SocketAddr,
    content_root: PathBuf,
    events: Sender<UploadEvent>,
    waker: Arc<Waker>,
}

/// The upload thread: stream, hash, store, get the verdict, answer.
fn run(mut job: Job) {
    let outcome = stream_and_store(&mut job);
    let (line, result) = match outcome {
        Ok(reply) => {
            let result = match &reply {
                Reply::Ok { info_hash, .. } => Ok(info_hash.to_hex()),
                Reply::Err { code, reason } => Err((*code, reason.clone())),
                Reply::Upload { .. } => Err((ErrorCode::Internal, "unexpected".into())),
            };
            (Some(reply), result)
        }
        Err(None) => (None, Err((ErrorCode::Malformed, "connection lost".into()))),
        Err(Some((code, reason))) => (
            Some(Reply::Err {
                code,
                reason: reason.clone(),
            }),
            Err((code, reason)),
        ),
    };
    if let Some(line) = line {
        let mut bytes = Vec::new();
        line.encode(&mut bytes);
        let _ = job.stream.write_all(&bytes);
    }
    let _ = job.stream.shutdown(std::net::Shutdown::Both);
    let _ = job.events.send(UploadEvent::Finished {
        upload_id: job.upload_id,
        source: job.source,
        owner: job.owner.clone(),
        outcome: result,
        surface: "upload",
    });
    let _ = job.waker.wake();
}

/// Streams the payload into an [`Ingest`], stores it and waits for the catalog's verdict.
/// `Err(None)`: the connection dropped (the checkpoint is kept for a resume).
fn stream_and_store(job: &mut Job) -> Result<Reply, Option<(ErrorCode, String)>> {
    let refuse = |code: ErrorCode, reason: String| Err(Some((code, reason)));
    let opts = CreateOptions {
        threads: 1,
        ..CreateOptions::default()
    };
    let mut ingest = match &job.start {
        Start::New(header) => {
            let upload = NewUpload {
                upload_id: job.upload_id,
                name: header.name.as_str(),
                length: header.length,
                sha256: header.sha256,
                owner: &job.owner,
            };
            match Ingest::start(&job.content_root, &upload, &opts) {
                Ok(i) => i,
                Err(e) => return refuse(e.code(), e.to_string()),
            }
        }
        Start::Resume => match Ingest::resume_saved(&job.content_root, job.upload_id, &opts) {
            Ok(i) if i.owner() == job.owner => i,
            // Someone else's upload answers like a missing one.
            Ok(_) | Err(seednode_storage::IngestError::NotFound) => {
                return refuse(ErrorCode::Auth, "no such upload of this token".into());
            }
            Err(e) => return refuse(e.code(), e.to_string()),
        },
    };
    let length = ingest.length();
    let name = ingest.name().to_owned();
    let mut line = Vec::new();
    Reply::Upload {
        upload_id: job.upload_id,
        offset: ingest.offset(),
    }
    .encode(&mut line);
    if job.stream.write_all(&line).is_err() {
        if let Err(e) = ingest.save_checkpoint() {
            debug!(error = %e, "checkpoint not saved");
        }
        return Err(None);
    }
    if job.leftover.len() as u64 > length - ingest.offset() {
        let _ = ingest.abort();
        return refuse(ErrorCode::Malformed, "bytes after the file".into());
    }
    if !job.leftover.is_empty()
        && let Err(e) = ingest.write(&job.leftover)
    {
        let _ = ingest.abort();
        return refuse(e.code(), e.to_string());
    }
    let mut buf = vec![0u8; UPLOAD_CHUNK_LEN];
    // The rate check: bytes received since the start of the current window.
    let (mut window_start, mut window_bytes) = (Instant::now(), 0u64);
    while ingest.offset() < length {
        let want =
            usize::try_from(length - ingest.offset()).map_or(buf.len(), |r| r.min(buf.len()));
        if window_start.elapsed() >= UPLOAD_RATE_WINDOW {
            if window_bytes < MIN_UPLOAD_BYTES_PER_WINDOW {
                // A trickle holds one of the few upload slots: cut it, resumable.
                if let Err(e) = ingest.save_checkpoint() {
                    debug!(error = %e, "checkpoint not saved");
                }
                return refuse(
                    ErrorCode::Busy,
                    format!(
                        "slower than {} bytes in {} s; resume it with UPLOAD_RESUME",
                        MIN_UPLOAD_BYTES_PER_WINDOW,
                        UPLOAD_RATE_WINDOW.as_secs()
                    ),
                );
            }
            (window_start, window_bytes) = (Instant::now(), 0);
        }
        match job.stream.read(&mut buf[..want]) {
            Ok(0) | Err(_) => {
                // Dropped or idle too long: keep what arrived for UPLOAD_RESUME.
                if let Err(e) = ingest.save_checkpoint() {
                    debug!(error = %e, "checkpoint not saved");
                }
                return Err(None);
            }
            Ok(n) => {
                window_bytes += n as u64;
                if let Err(e) = ingest.write(&buf[..n]) {
                    let _ = ingest.abort();
                    return refuse(e.code(), e.to_string());
                }
            }
        }
    }
    let ingested = match ingest.finish() {
        Ok(i) => i,
        Err(e) => return refuse(e.code(), e.to_string()),
    };
    let data_path = job.content_root.join(&name);
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let verified = std::fs::symlink_metadata(&data_path).ok().map(|m| {
        use std::os::unix::fs::MetadataExt as _;
        (
            m.mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(m.mtime_nsec()),
            ingested.sha256,
        )
    });
    let stored = UploadEvent::Stored {
        metainfo: ingested.metainfo.to_bytes(),
        data_path: data_path.clone(),
        owner: job.owner.clone(),
        source: job.source,
        verified,
        reply: tx,
    };
    if job.events.send(stored).is_err() {
        let _ = std::fs::remove_file(&data_path);
        return refuse(ErrorCode::Internal, "the node is stopping".into());
    }
    let _ = job.waker.wake();
    let Ok(verdict) = rx.recv_timeout(UPLOAD_VERDICT_TIMEOUT) else {
        // The commit may still land: the file stays (the next start verifies it or reports
        // it missing), and the client is told to look before retrying.
        return refuse(
            ErrorCode::Busy,
            "stored, but the catalog did not confirm in time; check the node's list before retrying"
                .into(),
        );
    };
    if let Reply::Err { .. } = &verdict {
        // Not committed: the file goes, so a refusal leaves nothing behind.
        if let Err(e) = std::fs::remove_file(&data_path) {
            warn!(error = %e, "uploaded file not removed after a refusal");
        }
    } else {
        info!(name = %seednode_wire::display::escape_name(&name),
              bytes = length, "file upload stored");
    }
    Ok(verdict)
}
