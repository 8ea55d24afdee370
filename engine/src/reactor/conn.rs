//! TCP connections: accepting, reading with a per-wake budget, telling protocols apart, writing
//! with back-pressure, and closing.

use std::cmp::Reverse;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use mio::net::TcpStream;
use mio::{Interest, Token};
use seednode_wire::mse::{self, MseResponder, MseStep, Rc4};
use seednode_wire::peer::{HANDSHAKE_LEN, Handshake};
use tracing::{debug, info, warn};

use seednode_wire::addr::canonical_ip;

use super::metrics::CloseReason;
use super::utp::Transport;
use super::{ACCEPT_BACKOFF, ListenerKind, Reactor, announcer};
use crate::http;
use crate::limits::{
    HANDSHAKE_TIMEOUT, MAX_ACCEPTS_PER_WAKE, MAX_MESSAGES_PER_WAKE, MAX_READ_PER_WAKE,
    MAX_SNIFF_LEN, SEND_BUFFER_HIGH_WATER,
};
use crate::outq::OutQueue;
use crate::session::PeerSession;
use crate::sniff::{Protocol, Sniff, sniff};

pub(super) enum ConnState {
    /// Waiting for enough bytes to tell the protocol.
    Sniffing,
    /// An MSE/PE handshake (the encrypted opening aria2c and libtorrent try first).
    Mse(Box<MseResponder>),
    /// Peer wire, before the handshake completes. `dialed` names the torrent when we connected
    /// out (our handshake is already queued).
    Handshake { dialed: Option<usize> },
    /// An HTTP announce to an external tracker, waiting for the whole response.
    TrackerFetch {
        id: seednode_tracker::client::RequestId,
    },
    /// Peer wire, handshake done.
    Peer {
        torrent: usize,
        session: Box<PeerSession>,
    },
    /// HTTP, waiting for a request head: `served` requests answered so far on this connection,
    /// `since` when this wait began (accept, or the previous response queued or sent).
    Http { served: usize, since: Instant },
    /// HTTP, a head received, waiting for its `Content-Length` body.
    HttpBody {
        request: Box<http::Request>,
        served: usize,
        since: Instant,
    },
    /// HTTP, a request handed to the catalog worker: its response is queued when the reply
    /// comes ([`Reactor::finish_deferred`]); later pipelined requests wait.
    HttpWaiting {
        /// The catalog request id.
        request: u64,
        served: usize,
        since: Instant,
        /// The client asked to close after this response.
        close: bool,
    },
    /// An upload request being received (`reactor::upload`); `since` is when it began;
    /// `owner` is the token's id once an `UPLOAD_TORRENT`'s token passed (checked as soon as it
    /// is complete, before the torrent is buffered).
    Upload {
        decoder: Box<seednode_wire::upload::Decoder>,
        since: Instant,
        owner: Option<Box<str>>,
    },
    /// An upload handed to the catalog worker: the reply line is written when its commit is
    /// answered ([`Reactor::finish_upload`]).
    UploadWaiting { request: u64, since: Instant },
    /// Response queued; close once it is written.
    Closing,
}

/// The RC4 ciphers of an MSE connection that selected encryption.
pub(super) struct StreamCipher {
    pub(super) recv: Rc4,
    pub(super) send: Rc4,
}

pub(super) struct Conn {
    /// We connected out to this peer (so `remote` is where it accepts connections).
    pub(super) dialed: bool,
    /// A dial over the second transport after the first failed ([`Reactor::dial_fallback`]):
    /// no third try.
    pub(super) second_try: bool,
    /// RC4 for the whole stream, when an MSE handshake chose it (then `sendfile` is not used).
    pub(super) cipher: Option<Box<StreamCipher>>,
    /// TCP, or a connection of the uTP endpoint (`reactor::utp`).
    pub(super) transport: Transport,
    pub(super) remote: SocketAddr,
    pub(super) local: SocketAddr,
    pub(super) generation: u64,
    pub(super) accepted: Instant,
    /// When queued bytes last went out (for the HTTP send-stall deadline).
    pub(super) last_progress: Instant,
    pub(super) rbuf: BytesMut,
    pub(super) out: OutQueue,
    pub(super) state: ConnState,
}

impl Reactor {
    pub(super) fn accept(&mut self, now: Instant, index: usize) {
        if self.accept_paused_until.is_some() {
            return;
        }
        for _ in 0..MAX_ACCEPTS_PER_WAKE {
            let (listener, kind) = &self.listeners[index];
            let kind = *kind;
            match listener.accept() {
                // A dual-stack listener reports IPv4 peers as [::ffff:a.b.c.d]:p.
                Ok((stream, remote)) => {
                    let remote = seednode_wire::addr::canonical_addr(remote);
                    self.admit(now, stream, remote, kind);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // EMFILE/ENFILE and friends: back off instead of spinning on the listener.
                    warn!(error = %e, "accept failed; pausing accepts");
                    self.accept_paused_until = Some(now + ACCEPT_BACKOFF);
                    return;
                }
            }
        }
        // Budget used up: come back to this listener on the next turn.
        self.accept_paused_until = Some(now);
    }

    pub(super) fn admit(
        &mut self,
        now: Instant,
        stream: TcpStream,
        remote: SocketAddr,
        kind: ListenerKind,
    ) {
        if !self.admission(now, remote) {
            return;
        }
        let state = match kind {
            ListenerKind::Shared => ConnState::Sniffing,
            ListenerKind::UploadOnly => ConnState::Upload {
                decoder: Box::default(),
                since: now,
                owner: None,
            },
            ListenerKind::HttpOnly => ConnState::Http {
                served: 0,
                since: now,
            },
        };
        if let Some(key) = self.insert_conn(now, stream, remote, state) {
            debug!(peer = %remote, key, "accepted");
        }
    }

    /// Whether a connection from `remote` (TCP or uTP) may be admitted: not banned, under the
    /// per-address cap, and under the connection limit (making room by evicting an unproven
    /// connection if need be).
    pub(super) fn admission(&mut self, now: Instant, remote: SocketAddr) -> bool {
        let ip = seednode_wire::addr::limit_key(remote.ip());
        if self.bans.is_banned(now, ip) {
            *self.stats.closed.entry("banned").or_insert(0) += 1;
            return false;
        }
        let from_ip = self.per_ip.get(&ip).copied().unwrap_or(0);
        if from_ip >= self.config.max_connections_per_ip {
            debug!(peer = %remote, "per-address connection limit reached; closing");
            return false;
        }
        if self.conns.len() >= self.config.max_connections && !self.evict_unproven() {
            debug!(peer = %remote, "connection limit reached; closing");
            return false;
        }
        true
    }

    /// At the connection limit, makes room for a newcomer by closing the oldest connection
    /// that has not proven itself: one still sniffing, in its MSE or BEP 3 handshake (accepted,
    /// not dialled), or an HTTP connection idle between requests. Peers past their handshake
    /// and HTTP exchanges in progress are never evicted, so a flood of idle connections (2,000
    /// in the tests) cannot keep peers out: each flood connection lives only until
    /// `max_connections` newer ones push it out, while a real peer needs one round trip to
    /// become a peer. (Oldest first is what protects newcomers: refusing them instead, or
    /// sparing young connections, would hand the table to whoever filled it first.) Returns
    /// whether one was closed. A linear scan of the table (at most `max_connections`), done
    /// only at the limit.
    fn evict_unproven(&mut self) -> bool {
        let victim = self
            .conns
            .iter()
            .filter(|(_, c)| match &c.state {
                ConnState::Sniffing | ConnState::Mse(_) => true,
                ConnState::Upload { owner, .. } => owner.is_none(),
                ConnState::Handshake { dialed } => dialed.is_none(),
                ConnState::Http { .. } => c.out.is_empty(),
                _ => false,
            })
            .min_by_key(|(_, c)| c.accepted)
            .map(|(k, _)| k);
        match victim {
            Some(key) => {
                self.close(key, CloseReason::Evicted);
                true
            }
            None => false,
        }
    }

    /// Registers a connection (accepted, or being dialled) and starts its deadline; `None` when
    /// it could not be registered.
    pub(super) fn insert_conn(
        &mut self,
        now: Instant,
        mut stream: TcpStream,
        remote: SocketAddr,
        state: ConnState,
    ) -> Option<usize> {
        let local = seednode_wire::addr::canonical_addr(stream.local_addr().ok()?);
        let _ = stream.set_nodelay(true);
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            warn!(error = %e, "register failed");
            return None;
        }
        Some(self.insert_entry(now, Transport::Tcp(stream), remote, local, state))
    }

    /// Registers a uTP connection of the endpoint (accepted, or being dialled) like
    /// [`Self::insert_conn`]; `None` when uTP is off.
    pub(super) fn insert_utp_conn(
        &mut self,
        now: Instant,
        id: seednode_utp::ConnId,
        remote: SocketAddr,
        state: ConnState,
    ) -> Option<usize> {
        let local = self.udp.as_ref()?.local_addr().ok()?;
        let key = self.insert_entry(now, Transport::Utp(id), remote, local, state);
        let generation = self.conns[key].generation;
        self.utp_bind(id, key, generation);
        Some(key)
    }

    /// Puts a registered connection into the table and starts its handshake deadline.
    fn insert_entry(
        &mut self,
        now: Instant,
        transport: Transport,
        remote: SocketAddr,
        local: SocketAddr,
        state: ConnState,
    ) -> usize {
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        self.next_generation += 1;
        let generation = self.next_generation;
        let ip = seednode_wire::addr::limit_key(remote.ip());
        let dialed = matches!(state, ConnState::Handshake { dialed: Some(_) });
        entry.insert(Conn {
            dialed,
            second_try: false,
            cipher: None,
            transport,
            remote,
            local,
            generation,
            accepted: now,
            last_progress: now,
            rbuf: BytesMut::new(),
            out: OutQueue::default(),
            state,
        });
        *self.per_ip.entry(ip).or_insert(0) += 1;
        self.timers
            .push(Reverse((now + HANDSHAKE_TIMEOUT, key, generation)));
        key
    }

    /// Closes connection `key` (a no-op for a key already gone), counting `why` in `/metrics`.
    pub(super) fn close(&mut self, key: usize, why: CloseReason) {
        if !self.conns.contains(key) {
            return;
        }
        let now = self.now;
        *self.stats.closed.entry(why.label()).or_insert(0) += 1;
        let mut conn = self.conns.remove(key);
        if why.is_misbehaviour() {
            self.stats.peers_dropped += 1;
            if self.bans.strike(now, conn.remote.ip()) {
                info!(peer = %conn.remote, reason = %why, "address banned for repeated misbehaviour");
            }
        }
        // Whether our end never got through: no byte of a TCP dial left the socket (connect
        // refused or pending), or a uTP SYN was never answered. Only then is the other
        // transport worth a try ([`Reactor::dial_fallback`]).
        let never_connected = match &conn.transport {
            Transport::Tcp(_) => conn.last_progress == conn.accepted,
            Transport::Utp(id) => self.utp_connecting(*id),
        };
        match &mut conn.transport {
            Transport::Tcp(stream) => {
                let _ = self.poll.registry().deregister(stream);
            }
            Transport::Utp(id) => self.utp_release(*id),
        }
        let ip = seednode_wire::addr::limit_key(conn.remote.ip());
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
        match &conn.state {
            ConnState::TrackerFetch { id } => {
                // The response never came whole: the announce failed.
                if let announcer::ResponseState::Done(status, body) =
                    announcer::parse_response(&conn.rbuf, true)
                {
                    self.http_response(now, conn.remote.ip(), *id, status, &body);
                    return;
                }
                let mut reason = why.to_string();
                reason.truncate(200);
                self.request_failed(now, *id, &reason);
                self.flush_announcer(now);
            }
            ConnState::Peer { session, torrent } => {
                let client = session.client.as_deref().unwrap_or("?");
                info!(
                    peer = %conn.remote,
                    client = %seednode_wire::display::escape_name(client),
                    uploaded_bytes = session.uploaded,
                    secs = now.saturating_duration_since(conn.accepted).as_secs(),
                    reason = %why,
                    "peer left"
                );
                self.torrents[*torrent].peers -= 1;
                let decisions = self.choker.leave(now, key);
                self.apply_choking(&decisions);
            }
            ConnState::Handshake {
                dialed: Some(torrent),
            } if never_connected && !conn.second_try => {
                debug!(peer = %conn.remote, reason = %why, "dial failed");
                let (torrent, remote) = (*torrent, conn.remote);
                self.dial_fallback(now, torrent, remote, conn.transport.is_utp(), &why);
            }
            _ => debug!(peer = %conn.remote, reason = %why, "connection closed"),
        }
    }

    /// Reads what the socket has (within the per-wake budget) and processes it.
    pub(super) fn on_readable(&mut self, key: usize, now: Instant) {
        let mut budget = MAX_READ_PER_WAKE;
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            let generation = conn.generation;
            if conn.out.len() > SEND_BUFFER_HIGH_WATER || matches!(conn.state, ConnState::Closing) {
                // Back-pressure: leave the bytes in the kernel until the peer drains our replies.
                break;
            }
            if budget == 0 {
                self.backlog.push((key, conn.generation));
                break;
            }
            // Read into the loop's scratch buffer and append only what arrived: a peer's buffer
            // then holds at most one partial message, however large the chunk read.
            let n = self.scratch.len().min(budget);
            let read = match &mut conn.transport {
                Transport::Tcp(stream) => stream.read(&mut self.scratch[..n]),
                Transport::Utp(id) => match &mut self.utp {
                    Some(link) => link.read(*id, &mut self.scratch[..n]),
                    None => Ok(0),
                },
            };
            match read {
                Ok(0) => {
                    let processed = self.process(key, now);
                    if processed.is_ok()
                        && self
                            .conns
                            .get(key)
                            .is_some_and(|c| matches!(c.state, ConnState::Closing))
                    {
                        // A client that half-closes after its request still gets the response.
                        self.flush(key);
                    } else {
                        self.close(key, processed.err().unwrap_or(CloseReason::RemoteClosed));
                    }
                    return;
                }
                Ok(got) => {
                    if let Some(cipher) = &mut conn.cipher {
                        cipher.recv.apply(&mut self.scratch[..got]);
                    }
                    conn.rbuf.extend_from_slice(&self.scratch[..got]);
                    budget -= got;
                    match self.process(key, now) {
                        Ok(false) => {}
                        Ok(true) => {
                            // Message budget used: read no more until the buffer is worked
                            // off on a later turn, so it never grows past one read.
                            self.backlog.push((key, generation));
                            break;
                        }
                        Err(why) => {
                            self.close(key, why);
                            return;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close(key, CloseReason::ReadError(e));
                    return;
                }
            }
        }
        self.pump(key);
    }

    /// Consumes whole units (sniff, handshake, messages, HTTP head) from the read buffer, at
    /// most [`MAX_MESSAGES_PER_WAKE`] peer messages; returns true when it stopped at that budget
    /// with bytes left (the caller revisits the connection on the next turn).
    ///
    /// # Errors
    /// The reason to close the connection.
    pub(super) fn process(&mut self, key: usize, now: Instant) -> Result<bool, CloseReason> {
        let mut messages = 0;
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return Ok(false);
            };
            match &mut conn.state {
                ConnState::Sniffing => match sniff(&conn.rbuf) {
                    Sniff::Is(Protocol::PeerWire) => {
                        conn.state = ConnState::Handshake { dialed: None };
                    }
                    // uTP carries peer wire only: anything else is tried as MSE, which fails
                    // (or times out) like garbage does.
                    Sniff::Is(Protocol::Http | Protocol::Upload) if conn.transport.is_utp() => {
                        conn.state = ConnState::Mse(Box::new(new_mse_responder()));
                    }
                    Sniff::Is(Protocol::Http) => {
                        conn.state = ConnState::Http {
                            served: 0,
                            since: now,
                        };
                    }
                    Sniff::Is(Protocol::Upload) => {
                        let ip = canonical_ip(conn.remote.ip());
                        conn.state = ConnState::Upload {
                            decoder: Box::default(),
                            since: now,
                            owner: None,
                        };
                        // A locked-out address is refused before any of its payload is read.
                        if self.lockout.borrow().is_locked(ip, now) {
                            self.upload_reply(
                                key,
                                &seednode_wire::upload::Reply::Err {
                                    code: seednode_wire::upload::ErrorCode::Auth,
                                    reason: "too many failed authentications from this address"
                                        .into(),
                                },
                            );
                            return Ok(false);
                        }
                    }
                    // Anything else may be an MSE handshake (its first bytes are a random public
                    // key); the responder gives up on garbage within a few hundred bytes.
                    Sniff::Unknown => conn.state = ConnState::Mse(Box::new(new_mse_responder())),
                    Sniff::NeedMore if conn.rbuf.len() >= MAX_SNIFF_LEN => {
                        conn.state = ConnState::Mse(Box::new(new_mse_responder()));
                    }
                    Sniff::NeedMore => return Ok(false),
                },
                ConnState::Mse(responder) => {
                    let keys = &self.mse_keys;
                    let step = responder.receive(&mut conn.rbuf, |h| keys.get(h).copied())?;
                    match step {
                        MseStep::NeedMore => return Ok(false),
                        MseStep::Send(bytes) => {
                            self.queue(key, bytes.into());
                            return Ok(false);
                        }
                        MseStep::Done(bytes, est) => {
                            // The reply goes out before the cipher (if any) is switched on.
                            self.queue(key, bytes.into());
                            let Some(conn) = self.conns.get_mut(key) else {
                                return Ok(false);
                            };
                            let mut rest = conn.rbuf.split();
                            if let Some((recv, send)) = est.rc4 {
                                let mut cipher = Box::new(StreamCipher { recv, send });
                                cipher.recv.apply(&mut rest);
                                conn.cipher = Some(cipher);
                            }
                            conn.rbuf.extend_from_slice(&est.initial_payload);
                            conn.rbuf.extend_from_slice(&rest);
                            conn.state = ConnState::Handshake { dialed: None };
                            debug!(peer = %conn.remote, rc4 = conn.cipher.is_some(), "MSE handshake");
                        }
                    }
                }
                ConnState::Upload { decoder, owner, .. } => {
                    match decoder.decode(&mut conn.rbuf) {
                        Ok(None) => {
                            // The token of an UPLOAD_TORRENT is checked as soon as it is whole:
                            // an anonymous client never gets a torrent buffered (SECURITY U1).
                            if owner.is_none()
                                && let Some(token) =
                                    decoder.pending_token().map(|t| t.as_str().to_owned())
                            {
                                self.upload_early_auth(key, now, &token);
                            }
                            return Ok(false);
                        }
                        Ok(Some(request)) => {
                            self.upload_request(key, now, request);
                        }
                        Err(e) => {
                            let remote = conn.remote;
                            debug!(peer = %remote, error = %e, "upload refused");
                            self.upload_reply(
                                key,
                                &seednode_wire::upload::Reply::Err {
                                    code: e.code(),
                                    reason: e.to_string(),
                                },
                            );
                        }
                    }
                    return Ok(false);
                }
                ConnState::UploadWaiting { .. } => {
                    // Nothing more is read from an upload waiting for its commit.
                    conn.rbuf.clear();
                    return Ok(false);
                }
                ConnState::Handshake { dialed } => {
                    let dialed = *dialed;
                    let Some(bytes) = conn.rbuf.first_chunk::<HANDSHAKE_LEN>() else {
                        return Ok(false);
                    };
                    let hs = Handshake::parse(bytes)?;
                    let _ = conn.rbuf.split_to(HANDSHAKE_LEN);
                    self.start_peer(key, now, &hs, dialed)?;
                }
                ConnState::Peer { .. } => {
                    if conn.out.len() > SEND_BUFFER_HIGH_WATER {
                        // Back-pressure per message, not only per read: 400 metadata requests
                        // of 31 bytes would otherwise queue 6.5 MiB of replies (SECURITY.md
                        // W7). `flush` revisits the connection once the queue drains.
                        return Ok(false);
                    }
                    if messages == MAX_MESSAGES_PER_WAKE {
                        // Fairness: the rest waits for the next turn (SECURITY.md, STYLE §5).
                        return Ok(true);
                    }
                    messages += 1;
                    if !self.peer_message(key, now)? {
                        return Ok(false);
                    }
                }
                ConnState::Http { served, since } => {
                    let (served, since) = (*served, *since);
                    if conn.out.len() > SEND_BUFFER_HIGH_WATER {
                        // Pipelined requests wait until the responses before them drain.
                        return Ok(false);
                    }
                    match http::parse(&conn.rbuf) {
                        http::Parsed::Partial => return Ok(false),
                        http::Parsed::Reject(status) => {
                            conn.state = ConnState::Closing;
                            conn.rbuf.clear();
                            self.stats.http_rejected += 1;
                            self.queue(key, http::error(status));
                            return Ok(false);
                        }
                        http::Parsed::Request(request) => {
                            let _ = conn.rbuf.split_to(request.head_len);
                            if request.method == "PUT" && request.path == "/upload" {
                                // Blossom: the body is streamed to disk off the loop (or,
                                // refused, read or dropped); the loop goes on with the
                                // connection's new state, if it is still here.
                                self.blossom_put(key, now, request, served);
                                continue;
                            }
                            if request.content_length > 0 {
                                if let Err(refused) = self.check_body(key, &request) {
                                    self.refuse(key, now, refused, served);
                                    return Ok(false);
                                }
                                let Some(conn) = self.conns.get_mut(key) else {
                                    return Ok(false);
                                };
                                conn.state = ConnState::HttpBody {
                                    request,
                                    served,
                                    since,
                                };
                            } else {
                                self.respond(key, now, &request, &[], served);
                            }
                        }
                    }
                }
                ConnState::HttpBody {
                    request, served, ..
                } => {
                    if conn.rbuf.len() < request.content_length {
                        return Ok(false);
                    }
                    let body = conn.rbuf.split_to(request.content_length);
                    let (request, served) = (std::mem::take(request), *served);
                    self.respond(key, now, &request, &body, served);
                }
                ConnState::Closing => {
                    conn.rbuf.clear();
                    return Ok(false);
                }
                ConnState::HttpWaiting { .. } => return Ok(false),
                ConnState::TrackerFetch { id } => {
                    let id = *id;
                    let remote = conn.remote;
                    return match announcer::parse_response(&conn.rbuf, false) {
                        announcer::ResponseState::Partial => Ok(false),
                        announcer::ResponseState::Done(status, body) => {
                            conn.state = ConnState::Closing;
                            self.http_response(now, remote.ip(), id, status, &body);
                            Err(CloseReason::Done)
                        }
                        announcer::ResponseState::Bad(why) => {
                            Err(CloseReason::BadTrackerResponse(why))
                        }
                    };
                }
            }
        }
    }

    /// Writes queued bytes until the socket would block; closes `Closing` connections once empty.
    pub(super) fn flush(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let was_over = conn.out.len() > SEND_BUFFER_HIGH_WATER;
        let queued = conn.out.len();
        let written = match &mut conn.transport {
            Transport::Tcp(stream) => conn.out.write_to(stream),
            Transport::Utp(id) => match &mut self.utp {
                // The endpoint takes what fits its send buffer; `Writable` brings the rest.
                Some(link) => conn.out.write_with(|b| link.endpoint.write(*id, b)),
                None => Ok(crate::outq::Written::WouldBlock),
            },
        };
        if let Err(e) = written {
            self.close(key, CloseReason::WriteError(e));
            return;
        }
        if conn.out.len() < queued {
            conn.last_progress = self.now;
            if conn.out.is_empty()
                && let ConnState::Http { since, .. } = &mut conn.state
            {
                // The response is out: the keep-alive idle time starts now.
                *since = self.now;
            }
        }
        if conn.out.is_empty() && matches!(conn.state, ConnState::Closing) {
            if let Transport::Tcp(stream) = &conn.transport {
                let _ = stream.shutdown(std::net::Shutdown::Write);
            }
            self.close(key, CloseReason::Done);
            return;
        }
        let generation = conn.generation;
        if was_over && conn.out.len() <= SEND_BUFFER_HIGH_WATER {
            // Reading was paused by back-pressure; edge-triggered readiness will not repeat, so
            // revisit the socket explicitly.
            self.backlog.push((key, generation));
        }
        self.issue_reads(key);
    }

    pub(super) fn queue(&mut self, key: usize, bytes: Bytes) {
        if let Some(conn) = self.conns.get_mut(key) {
            match &mut conn.cipher {
                Some(cipher) => {
                    // RC4 streams are encrypted in send order, so at queueing time; the bytes may
                    // be shared (a cached piece), hence the copy.
                    let mut b = BytesMut::from(&bytes[..]);
                    cipher.send.apply(&mut b);
                    conn.out.push_bytes(b.freeze());
                }
                None => conn.out.push_bytes(bytes),
            }
            if let ConnState::Peer { session, .. } = &mut conn.state {
                session.last_send = self.now;
            }
        }
    }

    pub(super) fn run_backlog(&mut self, now: Instant) {
        for (key, generation) in std::mem::take(&mut self.backlog) {
            if self
                .conns
                .get(key)
                .is_some_and(|c| c.generation == generation)
            {
                match self.process(key, now) {
                    Ok(true) => self.backlog.push((key, generation)),
                    Ok(false) => self.on_readable(key, now),
                    Err(why) => self.close(key, why),
                }
            }
        }
    }
}

/// A fresh MSE responder: a random private key and 0-511 bytes of random padding.
pub(super) fn new_mse_responder() -> MseResponder {
    use ring::rand::SecureRandom;
    let rng = ring::rand::SystemRandom::new();
    let mut key = [0u8; mse::PRIVATE_KEY_LEN];
    let mut pad = [0u8; mse::MAX_PAD_LEN];
    // A failing OS RNG leaves zeros: the handshake then fails at the peer, nothing worse.
    let _ = rng.fill(&mut key);
    let _ = rng.fill(&mut pad);
    let pad_len = usize::from(u16::from_be_bytes([pad[0], pad[1]])) % mse::MAX_PAD_LEN;
    MseResponder::new(key, &pad[..pad_len], true)
}
