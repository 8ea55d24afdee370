//! Authenticated push uploads over raw TCP (issue 12; `docs/upload.md`): a connection that opens
//! with `UPLOAD_TORRENT:` is decoded by [`seednode_wire::upload::Decoder`], its token checked
//! against the in-memory table (and the lockout) before the torrent is looked at, the torrent
//! added to the catalog by the worker, and one reply line written: `OK <info-hash> <magnet>` once
//! the add is committed, or `ERR <code> <reason>`. Then the connection closes.
//!
//! The torrent's data is expected at `<content directory>/<torrent name>`: when it is there the
//! torrent seeds at once (verified in the background), otherwise it is kept in state
//! `missing_data` ("awaiting data") and not advertised until it arrives and is resumed.

use crate::daemon::unix_now;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use seednode_storage::catalog::Scopes;
use seednode_wire::InfoHash;
use seednode_wire::magnet::MagnetLink;
use seednode_wire::metainfo::Metainfo;
use seednode_wire::upload::{ErrorCode, Reply, Request};
use serde_json::json;
use tracing::{debug, info};

use super::Reactor;
use super::catalog::Requester;
use super::conn::ConnState;
use crate::events::{Event, kind};

/// How long an upload connection may take to send its whole `UPLOAD_TORRENT` request (a 10 MiB
/// torrent at 200 KiB/s takes 50 s); then it gets `ERR too_large` or is closed.
pub(crate) const UPLOAD_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// `UPLOAD_TORRENT`s of one token or client being received at once, at most: an authenticated
/// uploader cannot fill the connection table with half-sent torrents (those are no longer
/// evicted for newcomers once their token passed).
pub(crate) const MAX_TORRENT_UPLOADS_PER_OWNER: usize = 8;

/// How long an upload connection may take to send its header (everything up to the token of an
/// `UPLOAD_TORRENT`, the first line of the others): SECURITY's header deadline.
pub(crate) const UPLOAD_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the reply may wait for the catalog's commit before the connection is closed (the
/// add may still land: the client sees no `OK` and may retry, getting `ERR exists`).
pub(crate) const UPLOAD_COMMIT_TIMEOUT: Duration = Duration::from_secs(30);

impl Reactor {
    /// Writes `reply` on upload connection `key` and closes it once written.
    pub(super) fn upload_reply(&mut self, key: usize, reply: &Reply) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.state = ConnState::Closing;
        conn.rbuf.clear();
        let mut line = Vec::new();
        reply.encode(&mut line);
        self.queue(key, line.into());
        self.flush(key);
    }

    /// Refuses an upload: the reply, and an `upload.rejected` event.
    pub(super) fn upload_refuse(
        &mut self,
        key: usize,
        remote: SocketAddr,
        actor: Option<&str>,
        code: ErrorCode,
        reason: &str,
    ) {
        let mut event = Event::new(kind::UPLOAD_REJECTED, unix_now());
        event.source = Some(remote.ip());
        event.actor = actor.map(str::to_owned);
        event.details = json!({ "code": code.as_str(), "reason": reason });
        let now = self.now;
        self.events.emit(now, &event);
        self.upload_reply(
            key,
            &Reply::Err {
                code,
                reason: reason.to_owned(),
            },
        );
    }

    /// Authenticates an upload of connection `key` presenting `token`: a locked-out address is
    /// refused without an event (no audit or webhook flood), an unknown token with
    /// `auth.oauth.failed` (counted by the lockout), a token without the `upload` (or `admin`)
    /// scope with `auth.oauth.denied`. Returns the token's id when the upload may go on; the
    /// connection was answered `ERR` otherwise.
    fn upload_authorize(&mut self, key: usize, now: Instant, token: &str) -> Option<Box<str>> {
        let remote = self.conns.get(key)?.remote;
        let ip = seednode_wire::addr::canonical_ip(remote.ip());
        if self.lockout.borrow().is_locked(ip, now) {
            self.upload_reply(
                key,
                &Reply::Err {
                    code: ErrorCode::Auth,
                    reason: "too many failed authentications from this address".into(),
                },
            );
            return None;
        }
        let now_unix = unix_now();
        let (kind, actor, reason, code, message) = match self.verify_bearer_at(token, now_unix) {
            Ok((scopes, actor))
                if scopes.contains(Scopes::UPLOAD) || scopes.contains(Scopes::ADMIN) =>
            {
                return Some(actor);
            }
            Ok((_, actor)) => (
                kind::AUTH_DENIED,
                Some(actor),
                "insufficient_scope".to_owned(),
                ErrorCode::Scope,
                "the token may not upload",
            ),
            Err(e) => (
                kind::AUTH_FAILED,
                None,
                e.to_string(),
                ErrorCode::Auth,
                "unknown, expired or revoked token",
            ),
        };
        let mut event = Event::new(kind, now_unix);
        event.source = Some(ip);
        event.actor = actor.as_deref().map(str::to_owned);
        event.details = json!({ "surface": "upload", "reason": reason });
        self.events.emit(now, &event);
        self.upload_refuse(key, remote, actor.as_deref(), code, message);
        None
    }

    /// `UPLOAD_TORRENT`s of `actor` being received on connections other than `key`.
    fn torrent_uploads_of(&self, actor: &str, key: usize) -> usize {
        self.conns
            .iter()
            .filter(|(k, c)| {
                *k != key
                    && matches!(&c.state, ConnState::Upload { owner: Some(o), .. } if **o == *actor)
            })
            .count()
    }

    /// Checks the token of an `UPLOAD_TORRENT` as soon as it is complete (before the torrent is
    /// read), with the same checks and events as after the whole request, and the limit of
    /// torrent uploads in progress per token.
    pub(super) fn upload_early_auth(&mut self, key: usize, now: Instant, token: &str) {
        let Some(actor) = self.upload_authorize(key, now, token) else {
            return;
        };
        if self.torrent_uploads_of(&actor, key) >= MAX_TORRENT_UPLOADS_PER_OWNER {
            let Some(remote) = self.conns.get(key).map(|c| c.remote) else {
                return;
            };
            self.upload_refuse(
                key,
                remote,
                Some(&actor),
                ErrorCode::Busy,
                "too many uploads of this token at once; retry later",
            );
            return;
        }
        if let Some(ConnState::Upload { owner, .. }) = self.conns.get_mut(key).map(|c| &mut c.state)
        {
            *owner = Some(actor);
        }
    }

    /// Handles a decoded upload request of connection `key`.
    pub(super) fn upload_request(&mut self, key: usize, now: Instant, request: Request) {
        let Some(conn) = self.conns.get(key) else {
            return;
        };
        let (remote, generation) = (conn.remote, conn.generation);
        let trailing = !conn.rbuf.is_empty();
        let (token, torrent, file, resume) = match request {
            Request::Torrent { token, torrent } => (token, torrent, None, None),
            Request::File(header) => (
                header.token.clone(),
                bytes::Bytes::new(),
                Some(header),
                None,
            ),
            Request::Resume(header) => (
                header.token.clone(),
                bytes::Bytes::new(),
                None,
                Some(header.upload_id),
            ),
        };
        let Some(actor) = self.upload_authorize(key, now, token.as_str()) else {
            return;
        };
        let now_unix = unix_now();
        if let Some(header) = file {
            self.upload_file(key, now, header, &actor);
            return;
        }
        if let Some(upload_id) = resume {
            self.upload_resume(key, now, upload_id, &actor);
            return;
        }
        if self.torrent_uploads_of(&actor, key) >= MAX_TORRENT_UPLOADS_PER_OWNER {
            self.upload_refuse(
                key,
                remote,
                Some(&actor),
                ErrorCode::Busy,
                "too many uploads of this token at once; retry later",
            );
            return;
        }
        if trailing {
            self.upload_refuse(
                key,
                remote,
                Some(&actor),
                ErrorCode::Malformed,
                "bytes after the torrent",
            );
            return;
        }
        let meta = match Metainfo::from_bytes(&torrent) {
            Ok(m) => m,
            Err(e) => {
                self.upload_refuse(
                    key,
                    remote,
                    Some(&actor),
                    ErrorCode::Malformed,
                    &e.to_string(),
                );
                return;
            }
        };
        let swarm = meta.info_hash;
        if self.by_hash.contains_key(&swarm) || self.idle.contains_key(&swarm) {
            self.upload_refuse(
                key,
                remote,
                Some(&actor),
                ErrorCode::Exists,
                "the node has this torrent already",
            );
            return;
        }
        let Some(root) = self.config.content_root.clone() else {
            self.upload_refuse(
                key,
                remote,
                Some(&actor),
                ErrorCode::Internal,
                "uploads need `seednode run` (the catalog)",
            );
            return;
        };
        let name = meta.info.name.clone();
        let rel = match seednode_storage::SafeRelPath::new(&[name.as_str()]) {
            Ok(p) => p,
            Err(e) => {
                self.upload_refuse(
                    key,
                    remote,
                    Some(&actor),
                    ErrorCode::Malformed,
                    &e.to_string(),
                );
                return;
            }
        };
        let new = match seednode_storage::catalog::NewTorrent::from_metainfo(
            torrent.to_vec(),
            &meta,
            rel.under(&root),
            now_unix,
        ) {
            Ok(mut t) => {
                t.owner = Some(self.owner_of(&actor));
                t
            }
            Err(e) => {
                self.upload_refuse(
                    key,
                    remote,
                    Some(&actor),
                    ErrorCode::Malformed,
                    &e.to_string(),
                );
                return;
            }
        };
        let requester = Requester {
            key,
            generation,
            actor: Some(actor.clone()),
            source: Some(remote.ip()),
        };
        let (events, ids) = self.reports(
            &requester,
            vec![
                (kind::TORRENT_ADDED, json!({ "info_hash": swarm.to_hex() })),
                (
                    kind::UPLOAD_COMPLETED,
                    json!({ "surface": "upload", "info_hash": swarm.to_hex() }),
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
                let mut event = Event::new(kind::UPLOAD_STARTED, now_unix);
                event.source = Some(remote.ip());
                event.actor = Some(actor.to_string());
                event.details = json!({
                    "surface": "upload",
                    "kind": "torrent",
                    "info_hash": swarm.to_hex(),
                    "bytes": torrent.len(),
                });
                self.events.emit(now, &event);
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.state = ConnState::UploadWaiting {
                        request,
                        since: now,
                    };
                }
                debug!(peer = %remote, info_hash = %swarm, "upload waiting for its commit");
            }
            Err(_) => self.upload_refuse(
                key,
                remote,
                Some(&actor),
                ErrorCode::Busy,
                "the catalog is busy; retry",
            ),
        }
    }

    /// The catalog answered the add of an upload connection: `OK` once committed (seeding, or
    /// kept until its data arrives), `ERR` otherwise. Returns false when `requester` is not an
    /// upload connection waiting for `request` (the caller answers over HTTP then).
    pub(super) fn finish_upload(
        &mut self,
        requester: &Requester,
        request: u64,
        answer: &Result<(InfoHash, bool), (u16, &'static str, String)>,
        awaiting: Option<InfoHash>,
    ) -> bool {
        let Some(conn) = self.conns.get(requester.key) else {
            return false;
        };
        let waiting =
            matches!(conn.state, ConnState::UploadWaiting { request: r, .. } if r == request);
        if conn.generation != requester.generation || !waiting {
            return false;
        }
        let remote = conn.remote;
        let actor = requester.actor.as_deref();
        let ok_hash = match answer {
            Ok((ih, _)) => Some(*ih),
            // Committed, its data not there yet: kept as `missing_data` ("awaiting data").
            Err((202, _, _)) => awaiting,
            Err(_) => None,
        };
        if let Some(ih) = ok_hash {
            let local = self.conns.get(requester.key).map(|c| c.local);
            let magnet = self.upload_magnet(ih, local);
            let mut event = Event::new(kind::UPLOAD_COMPLETED, unix_now());
            event.webhook_id = self.take_report(request, kind::UPLOAD_COMPLETED);
            event.source = Some(remote.ip());
            event.actor = actor.map(str::to_owned);
            event.details = json!({
                "surface": "upload",
                "info_hash": ih.to_hex(),
                "seeding": matches!(answer, Ok((_, true))),
            });
            let now = self.now;
            self.events.emit(now, &event);
            info!(peer = %remote, info_hash = %ih, "upload stored");
            self.upload_reply(
                requester.key,
                &Reply::Ok {
                    info_hash: ih,
                    magnet,
                },
            );
            return true;
        }
        let (code, reason) = match answer {
            Err((409, _, m)) => (ErrorCode::Exists, m.clone()),
            Err((403, _, m)) => (ErrorCode::Quota, m.clone()),
            Err((507, _, m)) => (ErrorCode::Busy, m.clone()),
            Err((_, _, m)) => (ErrorCode::Internal, m.clone()),
            Ok(_) => (ErrorCode::Internal, String::new()),
        };
        self.upload_refuse(requester.key, remote, actor, code, &reason);
        true
    }

    /// The magnet link of torrent `ih` as this node serves it: its name, this node's tracker
    /// and this node as a peer (`x.pe`), as reached at `local` (the announce address when
    /// configured; neither when unknown).
    pub(super) fn upload_magnet(&self, ih: InfoHash, local: Option<SocketAddr>) -> String {
        let host = self
            .config
            .announce_ip
            .or_else(|| local.map(|l| l.ip()))
            .map(|ip| SocketAddr::new(ip, self.config.peer_port).to_string());
        let name = self
            .by_hash
            .get(&ih)
            .and_then(|&i| self.torrents.get(i))
            .map(|t| t.torrent.name.to_string())
            .or_else(|| self.idle.get(&ih).map(|t| t.name.to_string()));
        let mut link = MagnetLink {
            info_hash: Some(ih),
            info_hash_v2: None,
            display_name: name,
            trackers: Vec::new(),
            peers: Vec::new(),
        };
        if let Some(host) = host {
            link.trackers = vec![format!("http://{host}/announce")];
            link.peers = vec![host];
        }
        link.to_uri()
    }
}
