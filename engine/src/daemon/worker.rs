//! The catalog worker: one thread owns the node's [`Catalog`] and runs every write, so the
//! event loop never waits for SQLite or `fsync`.
//!
//! The loop sends [`Command`]s through a bounded queue ([`CATALOG_QUEUE_CAPACITY`]): a full
//! queue is [`Busy`] at once (the HTTP layer answers 503), never a wait. Each turn the worker
//! takes every waiting command (at most [`MAX_COMMANDS_PER_TURN`]), runs the turn's adds through
//! one `add_torrents` (one commit for the burst), then the others in order, and pushes one
//! [`Reply`] per command that has a requester, waking the loop through its `mio::Waker` (as
//! the disk pool does). An add is answered only after its commit: acknowledging it is safe
//! (SECURITY rule 12). Replies carry the caller's `request` id.
//!
//! Between commands the worker polls `PRAGMA data_version` every [`TOKEN_RELOAD_INTERVAL`]:
//! when another process changed the catalog (`seednode token create|revoke` while the node
//! runs), it reloads the token table and hands it to the loop.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::Waker;
use seednode_storage::DeleteReport;
use seednode_storage::catalog::{
    AuditRecord, Catalog, CatalogError, FileCheck, LookupMatch, NewTorrent, State, StatsDelta,
    TorrentId, WebhookEvent,
};
use tracing::{debug, warn};

use super::recheck::Outcome;
use super::resume::{self, Loaded};
use super::tokens::TokenTable;

/// Commands waiting for the worker, at most: past it [`CatalogWorker::submit`] is [`Busy`].
/// An add carries its `.torrent` (up to 10 MiB, SECURITY §2.7), so this bounds the memory
/// queued uploads can pin, together with the HTTP layer's own limits.
pub(crate) const CATALOG_QUEUE_CAPACITY: usize = 256;

/// Commands taken in one turn, at most (one `add_torrents` for the adds among them).
pub(crate) const MAX_COMMANDS_PER_TURN: usize = CATALOG_QUEUE_CAPACITY;

/// How often the worker looks for changes made by other processes (`PRAGMA data_version`)
/// and reloads the token table: a token revoked with `seednode token revoke` stops working on
/// a running node within this long (at once on SIGHUP).
pub(crate) const TOKEN_RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// How long [`CatalogWorker::stop`] waits for the worker's last writes (final statistics,
/// checkpoint) before giving up on them; within the 5 s systemd-friendly stop budget.
pub(crate) const WORKER_STOP_TIMEOUT: Duration = Duration::from_millis(1500);

/// What the loop asks of the catalog.
#[derive(Debug)]
pub(crate) enum Command {
    /// Add a torrent (acknowledged after its commit), then prepare it for seeding.
    Add {
        /// The caller's id for the reply.
        request: u64,
        /// The torrent, its data path and files.
        torrent: Box<NewTorrent>,
        /// The webhook events reporting the add, queued in its own savepoint.
        events: Vec<WebhookEvent>,
    },
    /// Remove a torrent (its rows), then, when `delete_data` names the node's content
    /// directory, the torrent's files beneath it ([`seednode_storage::delete_torrent_data`]).
    Remove {
        /// The caller's id for the reply.
        request: u64,
        /// The torrent.
        id: TorrentId,
        /// The content directory, to delete the torrent's data in; `None` keeps the data.
        delete_data: Option<PathBuf>,
        /// The webhook events reporting the removal, queued in its transaction.
        events: Vec<WebhookEvent>,
    },
    /// Set a paused (or missing-data) torrent back to seeding and prepare it, like an add.
    Resume {
        /// The caller's id for the reply.
        request: u64,
        /// The torrent.
        id: TorrentId,
    },
    /// Change a torrent's state.
    SetState {
        /// The caller's id for the reply.
        request: u64,
        /// The torrent.
        id: TorrentId,
        /// The new state.
        state: State,
        /// The reason, for `missing_data` and `error`.
        reason: Option<String>,
    },
    /// Add statistics to the totals (one transaction); on failure they come back in
    /// [`Reply::StatsNotSaved`] to be merged into the next flush.
    Stats(Vec<StatsDelta>),
    /// Record the outcome of a verification (file mtimes), so the next start needs no hashing.
    FileChecks {
        /// The torrent.
        id: TorrentId,
        /// One entry per file checked.
        checks: Vec<FileCheck>,
        /// The re-check's verdict, passed back to the loop once `checks` are written (so what
        /// the loop announces about the torrent is already in the catalog).
        outcome: Option<Outcome>,
    },
    /// Append audit records (one transaction).
    Audit(Vec<AuditRecord>),
    /// Queue events for the webhook endpoints that want them (one transaction); the sender
    /// thread finds them within its poll interval, or at once when the loop wakes it.
    Webhooks(Vec<WebhookEvent>),
    /// Find torrents and files by an identity for `GET /api/v1/lookup/<hash>`
    /// ([`Catalog::lookup`]).
    Lookup {
        /// The caller's id for the reply.
        request: u64,
        /// 20 or 32 bytes.
        hash: Vec<u8>,
    },
    /// Read audit records for `GET /api/v1/audit`.
    AuditQuery {
        /// The caller's id for the reply.
        request: u64,
        /// Rows at or after this time, seconds since the epoch.
        since: i64,
        /// A kind, or a prefix ending in `.`.
        kind: Option<String>,
        /// Most rows.
        limit: usize,
    },
    /// Reload the token table (SIGHUP, or after the node changed tokens).
    ReloadTokens,
    /// Run `job` on the catalog and answer with what it returns (approvals, devices, tokens
    /// over the API: small reads and writes whose answer is already an HTTP response).
    Job {
        /// The caller's id for the reply.
        request: u64,
        /// The work.
        job: Job,
    },
    /// Checkpoint the write-ahead log.
    Checkpoint,
}

/// Work the loop hands to the worker as a closure ([`Command::Job`]); it runs on the worker's
/// thread with the catalog, never on the loop.
pub(crate) struct Job(pub(crate) Box<dyn FnOnce(&mut Catalog) -> JobDone + Send>);

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

/// What a [`Job`] did ([`Reply::Job`]).
pub(crate) struct JobDone {
    /// The answer to the waiting request (unless `run` says what to do first).
    pub(crate) response: crate::http::Response,
    /// Events for the bus (audit, webhooks), in order.
    pub(crate) events: Vec<crate::events::Event>,
    /// An approved request to run now on the loop, answering the waiting request with its
    /// result instead of `response`.
    pub(crate) run: Option<Box<seednode_storage::catalog::Approval>>,
    /// The token table changed: reload it.
    pub(crate) reload_tokens: bool,
}

impl JobDone {
    /// A response alone.
    pub(crate) fn answer(response: crate::http::Response) -> Self {
        Self {
            response,
            events: Vec::new(),
            run: None,
            reload_tokens: false,
        }
    }
}

/// A torrent added to the catalog ([`Reply::Added`]).
pub(crate) struct Added {
    /// Its catalog id.
    pub(crate) id: TorrentId,
    /// Ready to seed, or why it cannot be (its data is missing, …): it stays in the catalog,
    /// in state `missing_data`.
    pub(crate) seed: Result<Box<Loaded>, String>,
    /// When it does not seed: its entry for the API's list.
    pub(crate) idle: Option<(seednode_wire::InfoHash, crate::reactor::IdleTorrent)>,
}

/// What the worker (and the re-check thread) tell the loop.
pub(crate) enum Reply {
    /// An add was committed (durable), or refused.
    Added {
        /// The caller's id.
        request: u64,
        /// The torrent added; the error is shared by every add of a batch whose commit failed.
        result: Result<Added, Arc<CatalogError>>,
    },
    /// A removal was committed, or refused.
    Removed {
        /// The caller's id.
        request: u64,
        /// The torrent.
        id: TorrentId,
        /// The outcome of the removal from the catalog.
        result: Result<(), CatalogError>,
        /// When data deletion was asked (and the removal committed): what was deleted, or why
        /// not (the catalog rows are gone either way).
        deleted: Option<Result<DeleteReport, String>>,
    },
    /// A resume: the torrent prepared for seeding (or why not: its state says so), or the
    /// catalog error.
    Resumed {
        /// The caller's id.
        request: u64,
        /// The torrent.
        id: TorrentId,
        /// Ready to seed, why it cannot (state set to `missing_data`), or the catalog error.
        result: Result<Result<Box<Loaded>, String>, CatalogError>,
    },
    /// A state change was committed, or refused.
    StateSet {
        /// The caller's id.
        request: u64,
        /// The torrent.
        id: TorrentId,
        /// The state asked for.
        state: State,
        /// The outcome.
        result: Result<(), CatalogError>,
    },
    /// What a lookup found.
    Lookup {
        /// The caller's id.
        request: u64,
        /// The matches, or the error.
        result: Result<Vec<LookupMatch>, CatalogError>,
    },
    /// Audit rows read for a request.
    Audit {
        /// The caller's id.
        request: u64,
        /// The rows, oldest first, or the error.
        result: Result<Vec<AuditRecord>, CatalogError>,
    },
    /// A fresh token table.
    Tokens(TokenTable),
    /// A [`Command::Job`] ran.
    Job {
        /// The caller's id.
        request: u64,
        /// What it did.
        done: JobDone,
    },
    /// A statistics flush failed: the deltas to merge into the next one.
    StatsNotSaved {
        /// The deltas not saved.
        deltas: Vec<StatsDelta>,
        /// Why.
        error: CatalogError,
    },
    /// Pieces withheld at start were verified ([`super::recheck`]).
    Rechecked(Outcome),
}

/// The worker's queue is full (or the worker is gone): try again later (HTTP 503).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the catalog is busy")]
pub(crate) struct Busy;

/// Where replies go: a list the loop drains, and the loop's waker. Cheap to clone (shared by
/// the worker and the re-check thread).
#[derive(Clone)]
pub(crate) struct Outbox {
    replies: Arc<Mutex<Vec<Reply>>>,
    waker: Arc<Waker>,
}

impl Outbox {
    /// An outbox waking `waker`.
    pub(crate) fn new(waker: Arc<Waker>) -> Self {
        Self {
            replies: Arc::new(Mutex::new(Vec::new())),
            waker,
        }
    }

    /// Queues `reply` and wakes the loop.
    pub(crate) fn push(&self, reply: Reply) {
        self.replies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(reply);
        // A failed wake leaves the reply queued; the loop's next turn picks it up.
        let _ = self.waker.wake();
    }

    /// Moves every queued reply into `out`.
    pub(crate) fn drain(&self, out: &mut Vec<Reply>) {
        out.append(&mut self.replies.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

/// The loop's handle on the worker thread.
pub(crate) struct CatalogWorker {
    tx: Option<SyncSender<Command>>,
    outbox: Outbox,
    thread: Option<JoinHandle<()>>,
}

impl CatalogWorker {
    /// Starts the worker on `catalog`, answering through `outbox`.
    ///
    /// # Errors
    /// The thread cannot be spawned.
    pub(crate) fn start(catalog: Catalog, outbox: Outbox) -> io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel(CATALOG_QUEUE_CAPACITY);
        let out = outbox.clone();
        let thread = std::thread::Builder::new()
            .name("catalog".into())
            .spawn(move || run(catalog, &rx, &out))?;
        Ok(Self {
            tx: Some(tx),
            outbox,
            thread: Some(thread),
        })
    }

    /// Queues `command` without waiting.
    ///
    /// # Errors
    /// [`Busy`] when the queue is full or the worker stopped.
    pub(crate) fn submit(&self, command: Command) -> Result<(), Busy> {
        let tx = self.tx.as_ref().ok_or(Busy)?;
        tx.try_send(command).map_err(|e| {
            if matches!(e, TrySendError::Disconnected(_)) {
                warn!("the catalog worker is gone");
            }
            Busy
        })
    }

    /// A sender for threads that may wait (the re-check thread), never for the loop.
    pub(crate) fn sender(&self) -> Option<SyncSender<Command>> {
        self.tx.clone()
    }

    /// Moves every reply waiting into `out`.
    pub(crate) fn drain(&self, out: &mut Vec<Reply>) {
        self.outbox.drain(out);
    }

    /// Stops the worker after its last writes: `final_audit`, `final_stats` and a checkpoint, waiting at most
    /// [`WORKER_STOP_TIMEOUT`]. Blocking: call it after the loop stopped. Returns false when
    /// the worker did not finish in time (its writes may still land, or not).
    pub(crate) fn stop(
        &mut self,
        final_stats: Vec<StatsDelta>,
        final_audit: Vec<AuditRecord>,
        final_webhooks: Vec<WebhookEvent>,
    ) -> bool {
        let deadline = Instant::now() + WORKER_STOP_TIMEOUT;
        if let Some(tx) = self.tx.take() {
            for command in [
                Command::Webhooks(final_webhooks),
                Command::Audit(final_audit),
                Command::Stats(final_stats),
                Command::Checkpoint,
            ] {
                // The queue may be full: wait for room, bounded by the deadline.
                let mut command = Some(command);
                while let Some(c) = command.take() {
                    match tx.try_send(c) {
                        Ok(()) => {}
                        Err(TrySendError::Full(c)) if Instant::now() < deadline => {
                            command = Some(c);
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        Err(_) => break,
                    }
                }
            }
        }
        let Some(thread) = self.thread.take() else {
            return true;
        };
        while !thread.is_finished() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = thread.join();
        true
    }
}

/// The worker's loop: until every sender is gone, take a turn's commands and run them.
fn run(mut catalog: Catalog, rx: &Receiver<Command>, out: &Outbox) {
    let mut version = catalog.data_version().ok();
    let mut next_poll = Instant::now() + TOKEN_RELOAD_INTERVAL;
    loop {
        let wait = next_poll.saturating_duration_since(Instant::now());
        let mut turn = Vec::new();
        match rx.recv_timeout(wait) {
            Ok(c) => turn.push(c),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        while turn.len() < MAX_COMMANDS_PER_TURN {
            match rx.try_recv() {
                Ok(c) => turn.push(c),
                Err(_) => break,
            }
        }
        run_turn(&mut catalog, turn, out);
        if Instant::now() >= next_poll {
            next_poll = Instant::now() + TOKEN_RELOAD_INTERVAL;
            let now = catalog.data_version().ok();
            if now != version {
                version = now;
                debug!("the catalog changed elsewhere: reloading tokens");
                reload_tokens(&catalog, out);
            }
        }
    }
}

fn reload_tokens(catalog: &Catalog, out: &Outbox) {
    match TokenTable::load(catalog) {
        Ok(table) => out.push(Reply::Tokens(table)),
        Err(e) => warn!(error = %e, "tokens not reloaded; the old ones stay in force"),
    }
}

/// Runs one turn: the adds together (one commit), then the rest in order.
fn run_turn(catalog: &mut Catalog, turn: Vec<Command>, out: &Outbox) {
    let mut adds: Vec<(u64, NewTorrent)> = Vec::new();
    let mut reports: Vec<Vec<WebhookEvent>> = Vec::new();
    let mut rest = Vec::new();
    for c in turn {
        match c {
            Command::Add {
                request,
                torrent,
                events,
            } => {
                adds.push((request, *torrent));
                reports.push(events);
            }
            other => rest.push(other),
        }
    }
    if !adds.is_empty() {
        let torrents: Vec<NewTorrent> = adds.iter().map(|(_, t)| t.clone()).collect();
        match catalog.add_torrents_reported(&torrents, &reports, now_ms()) {
            Ok(results) => {
                for ((request, torrent), result) in adds.into_iter().zip(results) {
                    let result = result.map_err(Arc::new).map(|id| {
                        let seed = prepare_added(catalog, id, &torrent.data_path);
                        let idle = match &seed {
                            Ok(_) => None,
                            Err(reason) => {
                                if let Err(e) =
                                    catalog.set_state(id, State::MissingData, Some(reason))
                                {
                                    warn!(torrent = %id, error = %e, "state not recorded");
                                }
                                catalog
                                    .torrent(id)
                                    .ok()
                                    .map(|t| resume::idle_entry(catalog, &t))
                            }
                        };
                        Added { id, seed, idle }
                    });
                    out.push(Reply::Added { request, result });
                }
            }
            Err(e) => {
                let e = Arc::new(e);
                for (request, _) in adds {
                    out.push(Reply::Added {
                        request,
                        result: Err(Arc::clone(&e)),
                    });
                }
            }
        }
    }
    for c in rest {
        match c {
            Command::Add { .. } => {} // taken above
            Command::Remove {
                request,
                id,
                delete_data,
                events,
            } => out.push(remove(
                catalog,
                request,
                id,
                delete_data.as_deref(),
                &events,
            )),
            Command::Resume { request, id } => out.push(Reply::Resumed {
                request,
                id,
                result: resume_torrent(catalog, id),
            }),
            Command::SetState {
                request,
                id,
                state,
                reason,
            } => out.push(Reply::StateSet {
                request,
                id,
                state,
                result: catalog.set_state(id, state, reason.as_deref()),
            }),
            Command::Stats(deltas) => {
                if let Err(error) = catalog.add_stats(&deltas) {
                    out.push(Reply::StatsNotSaved { deltas, error });
                }
            }
            Command::FileChecks {
                id,
                checks,
                outcome,
            } => {
                if !checks.is_empty()
                    && let Err(e) = catalog.record_file_checks(id, &checks)
                {
                    warn!(torrent = %id, error = %e, "file checks not recorded; the next start verifies again");
                }
                if let Some(outcome) = outcome {
                    out.push(Reply::Rechecked(outcome));
                }
            }
            Command::Webhooks(events) => match catalog.enqueue_webhooks(&events, now_ms()) {
                Ok(outcome) if outcome.dropped > 0 => {
                    warn!(
                        dropped = outcome.dropped,
                        "webhook events not queued: endpoint backlog full"
                    );
                }
                Ok(_) => {}
                Err(e) => warn!(events = events.len(), error = %e, "webhook events not queued"),
            },
            Command::Audit(records) => {
                if let Err(e) = catalog.append_audit(&records) {
                    warn!(records = records.len(), error = %e, "audit records not written");
                }
            }
            Command::Lookup { request, hash } => out.push(Reply::Lookup {
                request,
                result: catalog.lookup(&hash),
            }),
            Command::AuditQuery {
                request,
                since,
                kind,
                limit,
            } => out.push(Reply::Audit {
                request,
                result: catalog.audit(since, kind.as_deref(), limit),
            }),
            Command::ReloadTokens => reload_tokens(catalog, out),
            Command::Job { request, job } => {
                let done = (job.0)(catalog);
                if done.reload_tokens {
                    reload_tokens(catalog, out);
                }
                out.push(Reply::Job { request, done });
            }
            Command::Checkpoint => {
                if let Err(e) = catalog.checkpoint() {
                    debug!(error = %e, "checkpoint not done");
                }
            }
        }
    }
}

/// Milliseconds since the Unix epoch: when queued webhook rows are due.
fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis()),
    )
    .unwrap_or(i64::MAX)
}

/// Removes torrent `id` from the catalog and, when asked, its data beneath `content_root`.
/// The files to delete are read before the rows go; they are deleted only after the commit.
fn remove(
    catalog: &mut Catalog,
    request: u64,
    id: TorrentId,
    content_root: Option<&Path>,
    events: &[WebhookEvent],
) -> Reply {
    let doomed = match content_root {
        Some(root) => match catalog
            .torrent(id)
            .and_then(|t| Ok((t, catalog.files(id)?)))
        {
            Ok((t, files)) => {
                // Never delete what another torrent of the catalog also points at (the same
                // path, or one beneath the other): its data would go with it.
                let shared = catalog.list_torrents().map(|all| {
                    all.iter().any(|o| {
                        o.id != id
                            && (o.data_path.starts_with(&t.data_path)
                                || t.data_path.starts_with(&o.data_path))
                    })
                });
                match shared {
                    Ok(false) => Some((root, t.data_path, files)),
                    Ok(true) => {
                        let result = catalog.remove_torrent_reported(id, events, now_ms());
                        let deleted = result.is_ok().then(|| {
                            Err(
                                "its data is shared with another torrent of the catalog; kept"
                                    .to_owned(),
                            )
                        });
                        return Reply::Removed {
                            request,
                            id,
                            result,
                            deleted,
                        };
                    }
                    Err(e) => {
                        return Reply::Removed {
                            request,
                            id,
                            result: Err(e),
                            deleted: None,
                        };
                    }
                }
            }
            Err(e) => {
                return Reply::Removed {
                    request,
                    id,
                    result: Err(e),
                    deleted: None,
                };
            }
        },
        None => None,
    };
    let result = catalog.remove_torrent_reported(id, events, now_ms());
    let deleted = match (&result, doomed) {
        (Ok(()), Some((root, data_path, files))) => Some(
            seednode_storage::delete_torrent_data(root, &data_path, &files)
                .map_err(|e| e.to_string()),
        ),
        _ => None,
    };
    Reply::Removed {
        request,
        id,
        result,
        deleted,
    }
}

/// Resumes torrent `id`: prepares it (its files are looked at; changed ones re-verified in
/// the background) and records `seeding`, or `missing_data` with the reason.
fn resume_torrent(
    catalog: &mut Catalog,
    id: TorrentId,
) -> Result<Result<Box<Loaded>, String>, CatalogError> {
    let t = catalog.torrent(id)?;
    let prepared = prepare_added(catalog, id, &t.data_path);
    match &prepared {
        Ok(_) => catalog.set_state(id, State::Seeding, None)?,
        Err(reason) => catalog.set_state(id, State::MissingData, Some(reason))?,
    }
    Ok(prepared)
}

/// Prepares a torrent just added for seeding (off the loop: this opens its files).
fn prepare_added(
    catalog: &Catalog,
    id: TorrentId,
    data_path: &Path,
) -> Result<Box<Loaded>, String> {
    match resume::load(catalog, id, data_path)? {
        resume::Start::Seed(loaded) => Ok(loaded),
        resume::Start::Missing { reason } => Err(reason),
    }
}
