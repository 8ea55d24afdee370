//! The loop's side of the long-lived node (`seednode run`): the catalog worker's replies,
//! statistics flushes, the in-memory bearer tokens, and pieces withheld until re-verified.
//!
//! Nothing here touches SQLite: commands go to the worker's bounded queue
//! ([`Reactor::catalog_submit`], [`Busy`] when full), replies come back through the waker
//! ([`Reactor::catalog_reply`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use seednode_storage::catalog::{Scopes, StatsBatch, TokenError, TorrentId};
use seednode_wire::InfoHash;
use tracing::{debug, info, warn};

use super::Reactor;
use crate::daemon::recheck::{self, Rechecker};
use crate::daemon::resume::Loaded;
use crate::daemon::tokens::TokenTable;
use crate::daemon::unix_now;
use crate::daemon::worker::{Busy, CatalogWorker, Command, Reply};

/// Who is waiting for a catalog reply: the connection (key and generation) to answer. Filled
/// by the front door through [`Reactor::catalog_request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Requester {
    /// The connection's slab key.
    pub(crate) key: usize,
    /// Its generation (a reply for a closed connection is dropped).
    pub(crate) generation: u64,
    /// Who asked (the token's id), for the events the reply causes.
    pub(crate) actor: Option<Box<str>>,
    /// From where.
    pub(crate) source: Option<std::net::IpAddr>,
}

/// Catalog requests waiting for their reply, at most: the worker's queue bounds them, this
/// guards the map against a worker that never answers.
const MAX_PENDING_REQUESTS: usize = 4 * crate::daemon::worker::CATALOG_QUEUE_CAPACITY;

/// The loop's link to the catalog: the worker, the re-check thread, which catalog torrent each
/// info-hash is, and statistics not yet flushed.
pub(crate) struct CatalogLink {
    worker: CatalogWorker,
    rechecker: Rechecker,
    /// Catalog id of every seeded torrent, by its info-hash.
    ids: HashMap<InfoHash, TorrentId>,
    /// Bytes of each torrent already handed to the worker (of `TorrentSlot::uploaded`).
    flushed: HashMap<InfoHash, u64>,
    /// Statistics not yet saved (failed flushes come back here).
    batch: StatsBatch,
    flush_interval: Duration,
    next_flush: Instant,
    /// Requests waiting for a reply, by request id.
    pending: HashMap<u64, Requester>,
    next_request: u64,
    replies: Vec<Reply>,
    /// This node's own tracker URLs: left out of the tiers announced to (it knows about
    /// itself; announcing to itself would also hold shutdown up).
    own_urls: Vec<String>,
    /// Webhook events committed with a catalog change, by the change's request id: their kind
    /// and `webhook-id`, for the bus events the reply emits (bounded like `pending`).
    reports: HashMap<u64, Vec<(&'static str, String)>>,
    /// `upload.completed` ids of `UPLOAD_FILE` uploads whose add is committed, by info-hash,
    /// until the upload's thread reports it finished (at most [`MAX_PENDING_REQUESTS`]).
    file_upload_reports: HashMap<InfoHash, String>,
}

impl CatalogLink {
    /// Links a started worker and re-check thread; statistics are flushed every
    /// `flush_interval`; `own_urls` are this node's tracker URLs (never announced to).
    pub(crate) fn new(
        worker: CatalogWorker,
        rechecker: Rechecker,
        flush_interval: Duration,
        now: Instant,
        own_urls: Vec<String>,
    ) -> Self {
        Self {
            worker,
            rechecker,
            ids: HashMap::new(),
            flushed: HashMap::new(),
            batch: StatsBatch::new(),
            flush_interval,
            next_flush: now + flush_interval,
            pending: HashMap::new(),
            next_request: 1,
            replies: Vec::new(),
            own_urls,
            reports: HashMap::new(),
            file_upload_reports: HashMap::new(),
        }
    }
}

impl CatalogLink {
    /// Makes room for `n` more torrents.
    pub(super) fn reserve(&mut self, n: usize) {
        self.ids.reserve(n);
        self.flushed.reserve(n);
    }
}

impl Reactor {
    /// Connects the loop to the catalog, with the token table loaded at start.
    pub(crate) fn attach_catalog(&mut self, link: CatalogLink, tokens: TokenTable) {
        self.catalog = Some(link);
        self.tokens = Some(tokens);
        let buffer = std::rc::Rc::new(std::cell::RefCell::new(
            crate::events::audit::AuditBuffer::default(),
        ));
        self.events
            .subscribe(Box::new(crate::events::audit::AuditSubscriber(
                std::rc::Rc::clone(&buffer),
            )));
        self.audit = Some(buffer);
    }

    /// Starts delivering webhooks: `sender` runs on its own thread; every event goes to the
    /// catalog's outbox (which keeps it only for endpoints that want it); the sender's notices
    /// come back through `notices` and the loop's waker.
    pub(crate) fn attach_webhooks(
        &mut self,
        sender: crate::events::webhook::sender::WebhookSender,
        notices: std::sync::mpsc::Receiver<crate::events::webhook::sender::WebhookNotice>,
    ) {
        let buffer = std::rc::Rc::new(std::cell::RefCell::new(
            crate::events::webhook::WebhookBuffer::default(),
        ));
        // Every kind: endpoints added while the node runs (`seednode webhook add`) get their
        // events without a restart; the catalog filters per endpoint.
        self.events
            .subscribe(Box::new(crate::events::webhook::WebhookSubscriber::new(
                std::rc::Rc::clone(&buffer),
                vec!["*".to_owned()],
            )));
        self.webhooks = Some(super::Webhooks {
            buffer,
            sender,
            notices,
        });
    }

    /// Starts announcing to Nostr relays: the publisher's subscriber joins the bus (it hands
    /// added and removed torrents to the publisher's thread); its notices come back through
    /// `notices` and the loop's waker ([`Reactor::on_nostr_notices`]).
    pub(crate) fn attach_nostr(
        &mut self,
        publisher: crate::nostr::publisher::Publisher,
        notices: std::sync::mpsc::Receiver<crate::nostr::publisher::NostrNotice>,
    ) {
        self.events.subscribe(Box::new(publisher.subscriber()));
        self.nostr = Some((publisher, notices));
    }

    /// Emits the Nostr publisher's notices (`nostr.published`, `nostr.failed`) on the bus.
    pub(super) fn on_nostr_notices(&mut self) {
        let Some((_, notices)) = &self.nostr else {
            return;
        };
        let notices: Vec<_> = notices.try_iter().collect();
        let now = self.now;
        for notice in notices {
            let event = notice.to_event(unix_now());
            self.events.emit(now, &event);
        }
    }

    /// Emits the webhook sender's notices (`webhook.failed`) on the bus.
    pub(super) fn on_webhook_notices(&mut self) {
        let Some(w) = &self.webhooks else { return };
        let notices: Vec<_> = w.notices.try_iter().collect();
        let now = self.now;
        for notice in notices {
            match notice.to_event(unix_now()) {
                Some(event) => self.events.emit(now, &event),
                None => warn!(?notice, "webhook sender"),
            }
        }
    }

    /// Hands the webhook events waiting to the worker and wakes the sender.
    fn flush_webhooks(&mut self) {
        let Some(w) = &self.webhooks else { return };
        let events = w.buffer.borrow_mut().take();
        if events.is_empty() {
            return;
        }
        let Some(link) = &self.catalog else { return };
        if let Err(Busy) = link.worker.submit(Command::Webhooks(events.clone())) {
            w.buffer.borrow_mut().restore(events);
        } else {
            w.sender.wake();
        }
    }

    /// Hands the audit records waiting to the worker (once a turn); a full queue keeps them
    /// for the next turn.
    fn flush_audit(&mut self) {
        let Some(buffer) = &self.audit else { return };
        let records = buffer.borrow_mut().take();
        if records.is_empty() {
            return;
        }
        let Some(link) = &self.catalog else { return };
        if let Err(Busy) = link.worker.submit(Command::Audit(records.clone())) {
            buffer.borrow_mut().restore(records);
        }
    }

    /// Checks a presented bearer token against the in-memory table at `now_unix` (seconds since
    /// the Unix epoch; the front door reads the clock once per request): its scopes and public
    /// id. Without a catalog (`seed`) every token is unknown.
    ///
    /// # Errors
    /// [`TokenError::Malformed`], [`TokenError::Unknown`], [`TokenError::Revoked`],
    /// [`TokenError::Expired`]: answer all with one 401 (RFC 6750 §3.1).
    pub(crate) fn verify_bearer_at(
        &self,
        presented: &str,
        now_unix: i64,
    ) -> Result<(Scopes, Box<str>), TokenError> {
        match &self.tokens {
            Some(table) => table
                .verify(presented, now_unix)
                .map(|v| (v.scopes, Box::from(v.id))),
            None => Err(TokenError::Unknown),
        }
    }

    /// Who adds a torrent on behalf of token or client `actor`, with its quota.
    pub(crate) fn owner_of(&self, actor: &str) -> seednode_storage::catalog::Owner {
        let (max_torrents, max_bytes) = self.nostr_quota(actor).unwrap_or_else(|| {
            self.tokens
                .as_ref()
                .map_or((None, None), |t| t.quota(actor))
        });
        seednode_storage::catalog::Owner {
            id: actor.to_owned(),
            max_torrents,
            max_bytes,
        }
    }

    /// Queues `command` for the catalog worker without waiting.
    ///
    /// # Errors
    /// [`Busy`] when the queue is full or the node has no catalog (answer 503).
    pub(crate) fn catalog_submit(&mut self, command: Command) -> Result<(), Busy> {
        self.catalog.as_ref().ok_or(Busy)?.worker.submit(command)
    }

    /// The webhook events reporting a catalog change, built before the change so that the
    /// worker commits them in its transaction (issue 13): one per `(kind, details)`, with
    /// `requester`'s actor and source. Empty when webhooks are off (then nothing to report).
    pub(crate) fn reports(
        &self,
        requester: &Requester,
        events: Vec<(&'static str, serde_json::Value)>,
    ) -> (
        Vec<seednode_storage::catalog::WebhookEvent>,
        Vec<(&'static str, String)>,
    ) {
        if self.webhooks.is_none() {
            return (Vec::new(), Vec::new());
        }
        let rng = ring::rand::SystemRandom::new();
        let mut rows = Vec::with_capacity(events.len());
        let mut ids = Vec::with_capacity(events.len());
        for (kind, details) in events {
            let Ok(id) = crate::events::webhook::new_event_id(&rng) else {
                continue; // reported the ordinary way, after the reply
            };
            let mut event = crate::events::Event::new(kind, unix_now());
            event.actor = requester.actor.as_deref().map(str::to_owned);
            event.source = requester.source;
            event.details = details;
            rows.push(seednode_storage::catalog::WebhookEvent {
                id: id.clone(),
                kind: kind.to_owned(),
                body: crate::events::webhook::event_body(&event),
                created_at: event.at,
                exclude_endpoint: None,
            });
            ids.push((kind, id));
        }
        (rows, ids)
    }

    /// Remembers the `webhook-id`s committed with catalog request `request`.
    pub(crate) fn remember_reports(&mut self, request: u64, ids: Vec<(&'static str, String)>) {
        if let Some(link) = &mut self.catalog
            && !ids.is_empty()
            && link.reports.len() < MAX_PENDING_REQUESTS
        {
            link.reports.insert(request, ids);
        }
    }

    /// The `webhook-id` of the `kind` event committed with request `request`, taken.
    pub(crate) fn take_report(&mut self, request: u64, kind: &str) -> Option<String> {
        let ids = self.catalog.as_mut()?.reports.get_mut(&request)?;
        let i = ids.iter().position(|(k, _)| *k == kind)?;
        Some(ids.swap_remove(i).1)
    }

    /// Forgets what is left for request `request` (its reply was handled).
    fn forget_reports(&mut self, request: u64) {
        if let Some(link) = &mut self.catalog {
            link.reports.remove(&request);
        }
    }

    /// The `upload.completed` id committed with an `UPLOAD_FILE` upload of `ih`, taken.
    pub(crate) fn take_file_upload_report(&mut self, ih: &InfoHash) -> Option<String> {
        self.catalog.as_mut()?.file_upload_reports.remove(ih)
    }

    /// Queues the command `make(request)` on behalf of connection `requester`; its reply comes
    /// back to [`Reactor::catalog_reply`] with the same `request` id. Returns the id.
    ///
    /// # Errors
    /// [`Busy`] when the queue (or the table of waiting requests) is full, or there is no
    /// catalog.
    pub(crate) fn catalog_request(
        &mut self,
        requester: Requester,
        make: impl FnOnce(u64) -> Command,
    ) -> Result<u64, Busy> {
        let link = self.catalog.as_mut().ok_or(Busy)?;
        if link.pending.len() >= MAX_PENDING_REQUESTS {
            return Err(Busy);
        }
        let request = link.next_request;
        link.next_request += 1;
        link.worker.submit(make(request))?;
        link.pending.insert(request, requester);
        Ok(request)
    }

    /// Bytes re-hashed at start for fast resume (`seednode_rehashed_bytes_total`); `None`
    /// without a catalog.
    pub(super) fn rehashed_bytes(&self) -> Option<u64> {
        self.catalog.as_ref().map(|c| c.rechecker.rehashed_bytes())
    }

    /// Seeds a torrent loaded from the catalog: adds it, withholds the pieces to re-verify
    /// (left out of bitfields, requests refused) and queues their check. Returns whether a
    /// check was queued (its end is a `torrent.verified` event when every piece passed).
    pub(crate) fn seed_loaded(&mut self, loaded: Loaded) -> bool {
        let Loaded {
            id,
            torrent,
            mut tiers,
            recheck,
            blob,
        } = loaded;
        if let Some(link) = &self.catalog {
            for tier in &mut tiers {
                tier.retain(|url| !link.own_urls.contains(url));
            }
            tiers.retain(|t| !t.is_empty());
        }
        let info_hash = torrent.info_hash;
        if self.by_hash.contains_key(&info_hash) {
            debug!(%info_hash, "already seeded");
            return false;
        }
        let job = recheck.map(|plan| recheck::Job {
            id,
            info_hash,
            storage: std::sync::Arc::clone(&torrent.storage),
            piece_check: std::sync::Arc::clone(&torrent.piece_check),
            plan,
        });
        let name = torrent.name.clone();
        let size = torrent.total_length;
        let index = self.add_torrent(torrent);
        if let Some(blob) = blob {
            self.index_blob(info_hash, &name, size, blob);
        }
        if let Some(slot) = self.torrents.get_mut(index)
            && let Some(job) = &job
        {
            for piece in job.plan.pieces.iter().flat_map(Clone::clone) {
                slot.failed.set(piece);
            }
        }
        if !tiers.is_empty() {
            self.announce_to(info_hash, &tiers);
        }
        let checking = job.is_some();
        if let Some(link) = &mut self.catalog {
            link.ids.insert(info_hash, id);
            link.flushed.insert(info_hash, 0);
            if let Some(job) = job {
                link.rechecker.submit(job);
            }
        }
        checking
    }

    /// Drains the worker's replies (on a wake of the loop).
    pub(super) fn on_catalog_replies(&mut self) {
        let Some(link) = &mut self.catalog else {
            return;
        };
        let mut replies = std::mem::take(&mut link.replies);
        link.worker.drain(&mut replies);
        for reply in replies.drain(..) {
            self.catalog_reply(reply);
        }
        if let Some(link) = &mut self.catalog {
            link.replies = replies; // keep the allocation
        }
    }

    /// Handles one reply of the catalog worker. The extension point of the HTTP API: a reply
    /// with a `request` id answers the connection registered by [`Reactor::catalog_request`]
    /// (taken out of the pending table here; the HTTP response itself is the front door's).
    pub(crate) fn catalog_reply(&mut self, reply: Reply) {
        let requester = |this: &mut Self, request: u64| {
            this.catalog
                .as_mut()
                .and_then(|l| l.pending.remove(&request))
        };
        match reply {
            Reply::Added { request, result } => {
                let waiting = requester(self, request);
                let mut added_hash = None;
                let mut verifying = false;
                let answer = match result {
                    Ok(added) => match added.seed {
                        Ok(loaded) => {
                            info!(torrent = %added.id, "added to the catalog; seeding");
                            let ih = loaded.torrent.info_hash;
                            verifying = self.seed_loaded(*loaded);
                            added_hash = Some((ih, true));
                            Ok((ih, true))
                        }
                        Err(reason) => {
                            warn!(torrent = %added.id, reason = %reason, "added to the catalog, not seeded");
                            if let Some((ih, entry)) = added.idle {
                                added_hash = Some((ih, false));
                                self.idle.insert(ih, entry);
                            }
                            Err((
                                202,
                                "added_not_seeded",
                                format!("added to the catalog, not seeded: {reason}"),
                            ))
                        }
                    },
                    Err(e) => {
                        debug!(request, error = %e, "add refused");
                        Err(match &*e {
                            seednode_storage::catalog::CatalogError::Exists { .. } => (
                                409,
                                "exists",
                                "the catalog holds this torrent already".into(),
                            ),
                            seednode_storage::catalog::CatalogError::DiskFull => {
                                (507, "disk_full", "the catalog's disk is full".into())
                            }
                            quota @ seednode_storage::catalog::CatalogError::QuotaExceeded {
                                ..
                            } => (403, "quota", quota.to_string()),
                            other => (500, "internal", other.to_string()),
                        })
                    }
                };
                if let Some((ih, seeding)) = added_hash {
                    let webhook_id = self.take_report(request, crate::events::kind::TORRENT_ADDED);
                    self.emit_torrent_event(
                        crate::events::kind::TORRENT_ADDED,
                        waiting.as_ref(),
                        ih,
                        // `verifying`: its pieces are withheld until the node has read them;
                        // `torrent.verified` follows when they all pass.
                        serde_json::json!({ "seeding": seeding, "verifying": verifying }),
                        webhook_id,
                    );
                    if self.is_detached_upload(request)
                        && let Some(id) =
                            self.take_report(request, crate::events::kind::UPLOAD_COMPLETED)
                        && let Some(link) = &mut self.catalog
                        && link.file_upload_reports.len() < MAX_PENDING_REQUESTS
                    {
                        link.file_upload_reports.insert(ih, id);
                    }
                }
                let answer = match (answer, added_hash) {
                    // Committed without its data (202): an upload waits for it, stored anyway.
                    (Err((202, _, _)), Some((ih, false))) if self.is_detached_upload(request) => {
                        Ok((ih, false))
                    }
                    (answer, _) => answer,
                };
                if self.finish_detached_upload(request, &answer) {
                    // Answered on the upload's own thread.
                } else if let Some(waiting) = waiting
                    && !self.finish_upload(&waiting, request, &answer, added_hash.map(|(h, _)| h))
                {
                    self.finish_deferred(waiting, request, super::front::added_response(answer));
                }
                self.forget_reports(request);
            }
            Reply::Removed {
                request,
                id,
                result,
                deleted,
            } => {
                let waiting = requester(self, request);
                self.on_removed(waiting, request, id, result, deleted);
                self.forget_reports(request);
            }
            Reply::StateSet {
                request,
                id,
                state,
                result,
            } => {
                let waiting = requester(self, request);
                self.on_state_set(waiting, request, id, state, result);
            }
            Reply::Resumed {
                request,
                id,
                result,
            } => {
                let waiting = requester(self, request);
                self.on_resumed(waiting, request, id, result);
            }
            Reply::Lookup { request, result } => {
                let waiting = requester(self, request);
                if let Some(waiting) = waiting {
                    self.finish_deferred(waiting, request, super::front::lookup_response(result));
                }
            }
            Reply::Audit { request, result } => {
                let waiting = requester(self, request);
                if let Some(waiting) = waiting {
                    self.finish_deferred(waiting, request, super::front::audit_response(result));
                }
            }
            Reply::Job { request, done } => {
                let waiting = requester(self, request);
                self.on_job_done(waiting, request, done);
            }
            Reply::Tokens(table) => {
                debug!(tokens = table.len(), "token table reloaded");
                self.tokens = Some(table);
            }
            Reply::StatsNotSaved { deltas, error } => {
                warn!(error = %error, "statistics not saved; retrying at the next flush");
                if let Some(link) = &mut self.catalog {
                    link.batch.restore(deltas);
                }
            }
            Reply::Rechecked(outcome) => self.rechecked(&outcome),
        }
    }

    /// Serves the pieces that passed their re-check; the others stay withheld.
    fn rechecked(&mut self, outcome: &recheck::Outcome) {
        let Some(&index) = self.by_hash.get(&outcome.info_hash) else {
            return;
        };
        let Some(slot) = self.torrents.get_mut(index) else {
            return;
        };
        for &piece in &outcome.good {
            slot.failed.clear(piece);
            slot.verified.set(piece);
        }
        if !outcome.bad.is_empty() {
            slot.fault = Some(format!(
                "{} pieces failed their re-check at start",
                outcome.bad.len()
            ));
            self.stats.pieces_failed += outcome.bad.len() as u64;
            warn!(info_hash = %outcome.info_hash, failed = outcome.bad.len(), "pieces changed on disk: withheld");
        } else if !outcome.good.is_empty() {
            // Every withheld piece passed, and the files' records (mtime, SHA-256) are
            // committed: the catalog worker answers only after writing them.
            self.emit_torrent_event(
                crate::events::kind::TORRENT_VERIFIED,
                None,
                outcome.info_hash,
                serde_json::json!({ "pieces": outcome.good.len() }),
                None,
            );
        }
        // Peers that connected meanwhile got bitfields without these pieces: tell them.
        if !outcome.good.is_empty() {
            let keys: Vec<usize> = self
                .conns
                .iter_mut()
                .filter_map(|(key, conn)| match &mut conn.state {
                    super::conn::ConnState::Peer { torrent, session } if *torrent == index => {
                        for &piece in &outcome.good {
                            session.announce_piece(piece);
                        }
                        Some(key)
                    }
                    _ => None,
                })
                .collect();
            for key in keys {
                self.drain_outbox(key);
                self.flush(key);
            }
        }
    }

    /// Emits a `torrent.*` event of `kind` for `ih`, with the requester as actor and source;
    /// `webhook_id` when its webhook rows were committed with the change.
    pub(super) fn emit_torrent_event(
        &mut self,
        kind: &'static str,
        requester: Option<&Requester>,
        ih: InfoHash,
        mut details: serde_json::Value,
        webhook_id: Option<String>,
    ) {
        let mut event = crate::events::Event::new(kind, unix_now());
        event.webhook_id = webhook_id;
        event.actor = requester.and_then(|r| r.actor.as_deref().map(str::to_owned));
        event.source = requester.and_then(|r| r.source);
        details["info_hash"] = serde_json::Value::String(ih.to_hex());
        event.details = details;
        let now = self.now;
        self.events.emit(now, &event);
    }

    /// The catalog id of the seeded torrent `ih`.
    pub(super) fn catalog_id(&self, ih: &InfoHash) -> Option<TorrentId> {
        self.catalog.as_ref()?.ids.get(ih).copied()
    }

    /// The info-hash of the seeded catalog torrent `id`.
    pub(super) fn catalog_hash(&self, id: TorrentId) -> Option<InfoHash> {
        let link = self.catalog.as_ref()?;
        link.ids.iter().find(|(_, v)| **v == id).map(|(h, _)| *h)
    }

    /// Forgets the catalog id of `ih` (it stopped seeding; its statistics were flushed).
    pub(super) fn forget_catalog_id(&mut self, ih: &InfoHash) {
        if let Some(link) = &mut self.catalog {
            link.ids.remove(ih);
            link.flushed.remove(ih);
        }
    }

    /// Moves what torrent `ih` uploaded since the last flush into the statistics batch (before
    /// it stops seeding).
    pub(super) fn flush_torrent_stats(&mut self, ih: &InfoHash) {
        let Some(link) = &mut self.catalog else {
            return;
        };
        let Some(slot) = self.by_hash.get(ih).and_then(|&i| self.torrents.get(i)) else {
            return;
        };
        if let (Some(id), Some(done)) = (link.ids.get(ih), link.flushed.get_mut(ih)) {
            let delta = slot.uploaded.saturating_sub(*done);
            if delta > 0 {
                link.batch.record(*id, delta, 0, unix_now());
                *done = slot.uploaded;
            }
        }
    }

    /// Moves what was uploaded since the last call into the statistics batch.
    fn collect_stats(&mut self) {
        let Some(link) = &mut self.catalog else {
            return;
        };
        let now = unix_now();
        for slot in self.torrents.iter().filter(|t| !t.removed) {
            let ih = slot.torrent.info_hash;
            let (Some(id), Some(done)) = (link.ids.get(&ih), link.flushed.get_mut(&ih)) else {
                continue;
            };
            let delta = slot.uploaded.saturating_sub(*done);
            if delta > 0 {
                link.batch.record(*id, delta, 0, now);
                *done = slot.uploaded;
            }
        }
    }

    /// Flushes statistics every `flush_interval` (called once per loop turn).
    pub(super) fn catalog_tick(&mut self, now: Instant) {
        self.flush_audit();
        self.flush_webhooks();
        let due = self.catalog.as_ref().is_some_and(|l| now >= l.next_flush);
        if !due {
            return;
        }
        self.collect_stats();
        let Some(link) = &mut self.catalog else {
            return;
        };
        link.next_flush = now + link.flush_interval;
        if link.batch.is_empty() {
            return;
        }
        let deltas = link.batch.take();
        if let Err(Busy) = link.worker.submit(Command::Stats(deltas.clone())) {
            link.batch.restore(deltas);
        }
    }

    /// Asks the worker for a fresh token table (SIGHUP).
    pub(super) fn reload_tokens(&mut self) {
        if self.catalog.is_some() && self.catalog_submit(Command::ReloadTokens).is_err() {
            warn!("catalog busy: tokens not reloaded (they reload within seconds anyway)");
        }
    }

    /// After the loop stopped: saves the last statistics, checkpoints the catalog and stops
    /// the worker (bounded wait). Blocking: call it only once [`Reactor::run`] returned.
    pub(crate) fn close_catalog(&mut self) {
        self.collect_stats();
        let Some(mut link) = self.catalog.take() else {
            return;
        };
        link.rechecker.stop();
        if let Some((publisher, _)) = self.nostr.take()
            && !publisher.stop(Duration::from_secs(2))
        {
            warn!(
                "the Nostr publisher did not stop in time; an event in flight is sent again at the next start"
            );
        }
        let deltas = link.batch.take();
        let audit = self
            .audit
            .as_ref()
            .map(|b| b.borrow_mut().take())
            .unwrap_or_default();
        let webhooks = match self.webhooks.take() {
            Some(w) => {
                let events = w.buffer.borrow_mut().take();
                if !w.sender.stop(Duration::from_secs(2)) {
                    warn!(
                        "the webhook sender did not stop in time; a delivery in flight is retried at the next start"
                    );
                }
                events
            }
            None => Vec::new(),
        };
        if link.worker.stop(deltas, audit, webhooks) {
            info!("catalog saved");
        } else {
            warn!("the catalog worker did not finish in time; the last statistics may be lost");
        }
    }
}
