//! TCP connections: accepting, reading with a per-wake budget, telling protocols apart, writing
//! with back-pressure, and closing.

use std::cmp::Reverse;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use mio::net::TcpStream;
use mio::{Interest, Token};
use seednode_wire::mse::{self, MseResponder, MseStep, Rc4};
use seednode_wire::peer::{self, HANDSHAKE_LEN, Handshake, Message, extension};
use tracing::{debug, warn};

use super::metrics::CloseReason;
use super::peer::{encode, handshake_bytes};
use super::{ACCEPT_BACKOFF, ListenerKind, Reactor, announcer};
use crate::http;
use crate::limits::{
    HANDSHAKE_TIMEOUT, MAX_ACCEPTS_PER_WAKE, MAX_READ_PER_WAKE, MAX_REQUEST_QUEUE, MAX_SNIFF_LEN,
    SEND_BUFFER_HIGH_WATER,
};
use crate::outq::OutQueue;
use crate::session::{PeerSession, PieceMap, Step};
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
    /// HTTP, waiting for the request head.
    Http,
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
    /// RC4 for the whole stream, when an MSE handshake chose it (then `sendfile` is not used).
    pub(super) cipher: Option<Box<StreamCipher>>,
    pub(super) stream: TcpStream,
    pub(super) remote: SocketAddr,
    pub(super) local: SocketAddr,
    pub(super) generation: u64,
    pub(super) accepted: Instant,
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
                Ok((stream, remote)) => self.admit(now, stream, remote, kind),
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
        let ip = canonical_ip(remote.ip());
        let from_ip = self.per_ip.get(&ip).copied().unwrap_or(0);
        if self.conns.len() >= self.config.max_connections
            || from_ip >= self.config.max_connections_per_ip
        {
            debug!(peer = %remote, "connection limit reached; closing");
            return;
        }
        let state = match kind {
            ListenerKind::Shared => ConnState::Sniffing,
            ListenerKind::HttpOnly => ConnState::Http,
        };
        if let Some(key) = self.insert_conn(now, stream, remote, state) {
            debug!(peer = %remote, key, "accepted");
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
        let local = stream.local_addr().ok()?;
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
        self.next_generation += 1;
        let generation = self.next_generation;
        let ip = canonical_ip(remote.ip());
        let dialed = matches!(state, ConnState::Handshake { dialed: Some(_) });
        entry.insert(Conn {
            dialed,
            cipher: None,
            stream,
            remote,
            local,
            generation,
            accepted: now,
            rbuf: BytesMut::new(),
            out: OutQueue::default(),
            state,
        });
        *self.per_ip.entry(ip).or_insert(0) += 1;
        self.timers
            .push(Reverse((now + HANDSHAKE_TIMEOUT, key, generation)));
        Some(key)
    }

    pub(super) fn close(&mut self, key: usize, why: CloseReason) {
        if !self.conns.contains(key) {
            return;
        }
        let mut conn = self.conns.remove(key);
        let _ = self.poll.registry().deregister(&mut conn.stream);
        let ip = canonical_ip(conn.remote.ip());
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
        if let ConnState::TrackerFetch { id } = &conn.state {
            // The response never came whole: the announce failed.
            let mut reason = why.clone();
            if let announcer::ResponseState::Done(status, body) =
                announcer::parse_response(&conn.rbuf, true)
            {
                self.http_response(Instant::now(), *id, status, &body);
                return;
            }
            reason.truncate(200);
            self.request_failed(Instant::now(), *id, &reason);
            self.flush_announcer(Instant::now());
        } else if let ConnState::Peer { session, torrent } = &conn.state {
            debug!(peer = %conn.remote, uploaded = session.uploaded, reason = %why, "peer closed");
            self.torrents[*torrent].peers -= 1;
            let decisions = self.choker.leave(Instant::now(), key);
            self.apply_choking(&decisions);
        } else {
            debug!(peer = %conn.remote, reason = %why, "connection closed");
        }
    }

    /// Reads what the socket has (within the per-wake budget) and processes it.
    pub(super) fn on_readable(&mut self, key: usize, now: Instant) {
        let mut budget = MAX_READ_PER_WAKE;
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
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
            match conn.stream.read(&mut self.scratch[..n]) {
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
                        self.close(key, processed.err().unwrap_or_else(|| "peer closed".into()));
                    }
                    return;
                }
                Ok(got) => {
                    if let Some(cipher) = &mut conn.cipher {
                        cipher.recv.apply(&mut self.scratch[..got]);
                    }
                    conn.rbuf.extend_from_slice(&self.scratch[..got]);
                    budget -= got;
                    if let Err(why) = self.process(key, now) {
                        self.close(key, why);
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close(key, format!("read error: {e}"));
                    return;
                }
            }
        }
        self.pump(key);
    }

    /// Consumes whole units (sniff, handshake, messages, HTTP head) from the read buffer.
    pub(super) fn process(&mut self, key: usize, now: Instant) -> Result<(), CloseReason> {
        loop {
            let conn = self.conns.get_mut(key).ok_or("gone")?;
            match &mut conn.state {
                ConnState::Sniffing => match sniff(&conn.rbuf) {
                    Sniff::Is(Protocol::PeerWire) => {
                        conn.state = ConnState::Handshake { dialed: None };
                    }
                    Sniff::Is(Protocol::Http) => conn.state = ConnState::Http,
                    // Anything else may be an MSE handshake (its first bytes are a random public
                    // key); the responder gives up on garbage within a few hundred bytes.
                    Sniff::Unknown => conn.state = ConnState::Mse(Box::new(new_mse_responder())),
                    Sniff::NeedMore if conn.rbuf.len() >= MAX_SNIFF_LEN => {
                        conn.state = ConnState::Mse(Box::new(new_mse_responder()));
                    }
                    Sniff::NeedMore => return Ok(()),
                },
                ConnState::Mse(responder) => {
                    let keys = &self.mse_keys;
                    let step = responder
                        .receive(&mut conn.rbuf, |h| keys.get(h).copied())
                        .map_err(|e| e.to_string())?;
                    match step {
                        MseStep::NeedMore => return Ok(()),
                        MseStep::Send(bytes) => {
                            self.queue(key, bytes.into());
                            return Ok(());
                        }
                        MseStep::Done(bytes, est) => {
                            // The reply goes out before the cipher (if any) is switched on.
                            self.queue(key, bytes.into());
                            let conn = self.conns.get_mut(key).ok_or("gone")?;
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
                ConnState::Handshake { dialed } => {
                    let dialed = *dialed;
                    let Some(bytes) = conn.rbuf.first_chunk::<HANDSHAKE_LEN>() else {
                        return Ok(());
                    };
                    let hs = Handshake::parse(bytes).map_err(|e| e.to_string())?;
                    let _ = conn.rbuf.split_to(HANDSHAKE_LEN);
                    let torrent = *self
                        .by_hash
                        .get(&hs.info_hash)
                        .ok_or_else(|| format!("unknown info-hash {}", hs.info_hash))?;
                    if dialed.is_some_and(|t| t != torrent) {
                        return Err("dialled peer answered for another torrent".into());
                    }
                    if hs.peer_id == self.config.peer_id {
                        return Err("connected to ourselves".into());
                    }
                    let ours = dialed.is_none().then(|| {
                        handshake_bytes(
                            hs.info_hash,
                            self.config.peer_id,
                            self.dht.is_some(),
                            self.torrents[torrent].torrent.v2.is_some(),
                        )
                    });
                    if self.torrents[torrent].peers >= self.config.max_peers_per_torrent {
                        return Err("torrent's peer limit reached".into());
                    }
                    self.torrents[torrent].peers += 1;
                    conn.state = ConnState::Peer {
                        torrent,
                        session: Box::new(PeerSession::new(now, hs.supports_fast_extension())),
                    };
                    debug!(peer = %conn.remote, info_hash = %hs.info_hash, "handshake");
                    let slot = &self.torrents[torrent];
                    // BEP 6: a complete seed says `have_all` to a peer that speaks the Fast
                    // Extension.
                    let bitfield = if slot.torrent.super_seed {
                        // BEP 16: a super-seed starts out looking empty.
                        hs.supports_fast_extension()
                            .then(|| encode(&Message::HaveNone))
                    } else if hs.supports_fast_extension() && slot.torrent.is_complete() {
                        Some(encode(&Message::HaveAll))
                    } else {
                        Some(encode(&Message::Bitfield(slot.torrent.have.bitfield())))
                    };
                    let extension = hs.supports_extension_protocol().then(|| {
                        let yourip = match canonical_ip(conn.remote.ip()) {
                            IpAddr::V4(v4) => v4.octets().to_vec(),
                            IpAddr::V6(v6) => v6.octets().to_vec(),
                        };
                        let payload = extension::encode_handshake(
                            concat!("seednode/", env!("CARGO_PKG_VERSION")),
                            MAX_REQUEST_QUEUE as u32,
                            Some(slot.torrent.info_bytes.len() as u64),
                            !slot.torrent.private,
                            Some(&yourip),
                        );
                        encode(&Message::Extended {
                            id: extension::HANDSHAKE_ID,
                            payload: payload.into(),
                        })
                    });
                    if let Some(ours) = ours {
                        self.queue(key, ours);
                    }
                    // BEP 5: tell DHT-capable peers our DHT port.
                    if hs.supports_dht()
                        && self.dht.is_some()
                        && let Some(port) = self
                            .udp
                            .as_ref()
                            .and_then(|u| u.local_addr().ok())
                            .map(|a| a.port())
                    {
                        self.queue(key, encode(&Message::Port(port)));
                    }
                    // BEP 10: the extension handshake follows the BitTorrent handshake.
                    if let Some(extension) = extension {
                        self.queue(key, extension);
                    }
                    if let Some(bitfield) = bitfield {
                        self.queue(key, bitfield);
                    }
                    if self.torrents[torrent].torrent.super_seed {
                        if let Some(ConnState::Peer { session, .. }) =
                            self.conns.get_mut(key).map(|c| &mut c.state)
                        {
                            session.super_seed();
                        }
                        self.super_offer(key, torrent);
                    }
                }
                ConnState::Peer { torrent, session } => {
                    let slot = &self.torrents[*torrent];
                    let max = peer::max_frame_len(slot.torrent.piece_count());
                    let msg = match peer::decode_frame(&mut conn.rbuf, max) {
                        Ok(Some(msg)) => msg,
                        Ok(None) => return Ok(()),
                        Err(e) => {
                            self.stats.peers_dropped += 1;
                            return Err(e.to_string());
                        }
                    };
                    let step = match session.handle_message(now, &msg, &slot.torrent) {
                        Ok(step) => step,
                        Err(e) => {
                            self.stats.peers_dropped += 1;
                            return Err(e.to_string());
                        }
                    };
                    let torrent = *torrent;
                    let decisions = match step {
                        Step::Continue => {
                            if matches!(msg, Message::Request(_)) {
                                self.choker.record_request(now, key);
                            }
                            Vec::new()
                        }
                        Step::Interested => self.choker.interested(now, key, torrent),
                        Step::NotInterested => self.choker.leave(now, key),
                        Step::Have { piece, was_offered } => {
                            if let Some(n) =
                                self.torrents[torrent].availability.get_mut(piece as usize)
                            {
                                *n = n.saturating_add(1);
                            }
                            if was_offered {
                                self.super_offer(key, torrent);
                            }
                            Vec::new()
                        }
                        Step::Bitfield(bits) => {
                            let avail = &mut self.torrents[torrent].availability;
                            for (i, n) in avail.iter_mut().enumerate() {
                                if bits.get(i / 8).is_some_and(|b| b & (0x80 >> (i % 8)) != 0) {
                                    *n = n.saturating_add(1);
                                }
                            }
                            Vec::new()
                        }
                        Step::HashRequest(req) => {
                            self.answer_hash_request(key, torrent, &req);
                            Vec::new()
                        }
                        Step::DhtPort(port) => {
                            let remote = self.conns.get(key).map(|c| c.remote);
                            if let Some(remote) = remote {
                                self.dht_port_message(now, remote, port);
                            }
                            Vec::new()
                        }
                        Step::Peers(peers) => {
                            for addr in peers {
                                self.dial_peer(now, torrent, addr);
                            }
                            Vec::new()
                        }
                    };
                    self.drain_outbox(key);
                    self.apply_choking(&decisions);
                }
                ConnState::Http => match http::parse(&conn.rbuf) {
                    http::Parsed::Partial => return Ok(()),
                    http::Parsed::Reject(status) => {
                        conn.state = ConnState::Closing;
                        self.queue(key, http::error(status));
                        return Ok(());
                    }
                    http::Parsed::Request(req) => {
                        let reply = self.serve_http(key, now, &req);
                        if let Some(conn) = self.conns.get_mut(key) {
                            conn.state = ConnState::Closing;
                            conn.rbuf.clear();
                        }
                        self.queue(key, reply);
                        return Ok(());
                    }
                },
                ConnState::Closing => {
                    conn.rbuf.clear();
                    return Ok(());
                }
                ConnState::TrackerFetch { id } => {
                    let id = *id;
                    return match announcer::parse_response(&conn.rbuf, false) {
                        announcer::ResponseState::Partial => Ok(()),
                        announcer::ResponseState::Done(status, body) => {
                            conn.state = ConnState::Closing;
                            self.http_response(now, id, status, &body);
                            Err("tracker response received".into())
                        }
                        announcer::ResponseState::Bad(why) => Err(why.into()),
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
        if let Err(e) = conn.out.write_to(&mut conn.stream) {
            self.close(key, e.to_string());
            return;
        }
        if conn.out.is_empty() && matches!(conn.state, ConnState::Closing) {
            let _ = conn.stream.shutdown(std::net::Shutdown::Write);
            self.close(key, "response sent".into());
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
                session.last_send = Instant::now();
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
                if let Err(why) = self.process(key, now) {
                    self.close(key, why);
                    continue;
                }
                self.on_readable(key, now);
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

/// Unwraps IPv4-mapped IPv6 so one host has one identity for per-IP limits.
pub(super) fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    }
}
