//! uTP (BEP 29) on the node's UDP port: the reactor's side of the sans-IO
//! [`seednode_utp::Endpoint`].
//!
//! Datagrams whose first byte is a uTP header ([`seednode_utp::looks_like_utp`]) are handed to the
//! one endpoint (DHT `d…` and BEP 15 tracker packets keep their paths; tracker connection ids start
//! with a byte ≥ 0x80, so they never look like uTP). A uTP connection is a [`Conn`] like a TCP
//! one, whose [`Transport`] is [`Transport::Utp`]: the handshake, MSE, the peer session, the
//! choker, rate limits, timers, metrics and close paths run unchanged above it. Blocks go through
//! the copy path (disk threads read them; `sendfile` needs a TCP socket), and the send queue is
//! written into the endpoint's send buffer, whose room is the back-pressure.
//!
//! Call order (the endpoint's contract): datagrams go in as they are read; commands (`write`,
//! `read`, `close`) happen while connections are served during a loop turn; at the end of every
//! turn [`Reactor::drive_utp`] fires due timers, sends every datagram the endpoint has
//! (keeping the one the socket refused for the next turn, when the socket is writable again) and
//! handles every event, which may queue more datagrams: it repeats, at most
//! [`MAX_UTP_DRIVE_ROUNDS`] times per turn.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use mio::Interest;
use seednode_utp::{CloseReason as UtpCloseReason, ConnId, Endpoint, Event};
use tracing::{Level, debug, enabled, info, trace};

use super::conn::ConnState;
use super::metrics::CloseReason;
use super::{Reactor, UDP_TRACKER};

/// Rounds of "send every datagram, handle every event" per loop turn: events handled in one
/// round (a `Readable` answered with blocks) queue datagrams and events for the next. Beyond it
/// the loop polls again with a zero timeout, so other sockets are served in between (fairness).
pub(super) const MAX_UTP_DRIVE_ROUNDS: usize = 8;

/// Datagrams sent per loop turn at most; beyond it the loop comes back with a zero timeout. At
/// 1 400 bytes each, 2 048 datagrams are about 2.8 MB per turn.
pub(super) const MAX_UTP_DATAGRAMS_PER_TURN: usize = 2048;

/// How long a uTP connection we dial may wait for the answer to its SYN before the node gives
/// up on uTP and dials TCP instead: 3 s (libtorrent's `utp_connect_timeout`). The endpoint's
/// own SYN retransmissions (1 + 2 + 4 + 8 s) would outlast the 10 s handshake deadline.
pub(super) const UTP_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// What carries a connection's bytes.
pub(super) enum Transport {
    /// A TCP socket registered with the poll.
    Tcp(mio::net::TcpStream),
    /// A connection of the reactor's uTP endpoint.
    Utp(ConnId),
}

impl Transport {
    /// Whether this is a uTP connection.
    pub(super) fn is_utp(&self) -> bool {
        matches!(self, Self::Utp(_))
    }
}

/// The reactor's uTP endpoint and what it keeps about its connections.
pub(crate) struct UtpLink {
    pub(super) endpoint: Endpoint,
    /// Which connection (slab key, generation) each endpoint connection belongs to.
    pub(super) by_conn: HashMap<ConnId, (usize, u64)>,
    /// The datagram being sent.
    tx: Vec<u8>,
    /// A datagram the socket refused (full buffer): sent first when it is writable again.
    blocked: Option<SocketAddr>,
    /// The UDP socket is registered for writability too (after a refused send).
    watching_writable: bool,
    /// Dial peers over uTP first (TCP if that fails); otherwise TCP first, uTP second.
    pub(super) prefer_outgoing: bool,
    /// Incoming connections whose initiator has not sent its first bytes yet: they enter the
    /// connection table (and its per-address accounting) only then, so a SYN from a spoofed
    /// address never takes a slot there. Bounded by the endpoint's connection limit; the
    /// endpoint drops them after its `SYN_RECV_TIMEOUT` (10 s) with a `Closed` event.
    pending: std::collections::HashSet<ConnId>,
    /// Our SYNs not answered yet, with their [`UTP_CONNECT_TIMEOUT`] deadlines (at most one per
    /// dialled connection, so bounded by the connection limit).
    connecting: HashMap<ConnId, Instant>,
    /// Incoming connections accepted.
    pub(super) accepted: u64,
    /// Incoming connections refused by the admission rules (limits, bans).
    pub(super) refused: u64,
    /// Outgoing connections started.
    pub(super) dialed: u64,
    /// Connections ended by the transport (timeout, reset, a peer breaking BEP 29).
    pub(super) transport_errors: u64,
    /// Datagrams sent.
    pub(super) datagrams_sent: u64,
    /// Datagrams handed to the endpoint.
    pub(super) datagrams_received: u64,
}

impl UtpLink {
    fn new(epoch: Instant, seed: u64, prefer_outgoing: bool, max_connections: usize) -> Self {
        let config = seednode_utp::Config {
            max_connections: max_connections.max(seednode_utp::limits::DEFAULT_MAX_CONNECTIONS),
        };
        Self {
            endpoint: Endpoint::new(epoch, config, seed),
            pending: std::collections::HashSet::new(),
            by_conn: HashMap::new(),
            tx: Vec::with_capacity(seednode_utp::limits::MAX_DATAGRAM_LEN),
            blocked: None,
            watching_writable: false,
            prefer_outgoing,
            connecting: HashMap::new(),
            accepted: 0,
            refused: 0,
            dialed: 0,
            transport_errors: 0,
            datagrams_sent: 0,
            datagrams_received: 0,
        }
    }

    /// Reads what `conn` has received into `buf`: `Ok(0)` at the end of the stream, `WouldBlock`
    /// when nothing is buffered (a `Readable` event follows when bytes arrive).
    pub(super) fn read(&mut self, conn: ConnId, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.endpoint.read(conn, buf);
        if n > 0 {
            Ok(n)
        } else if self.endpoint.is_eof(conn) {
            Ok(0)
        } else {
            Err(io::ErrorKind::WouldBlock.into())
        }
    }
}

impl Reactor {
    /// Starts accepting uTP on the UDP socket (when there is one); `prefer` makes uTP the first
    /// transport tried when dialling peers. `seednode seed` and `seednode run` call it; the
    /// tracker and DHT servers do not carry peers.
    pub(crate) fn enable_utp(&mut self, prefer: bool) {
        if self.udp.is_none() || self.utp.is_some() {
            return;
        }
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&self.config.secret[24..32]);
        // A seed distinct from the other machines' (which take the secret's other bytes).
        let seed = u64::from_le_bytes(seed) ^ 0x7574_7020_7365_6564;
        self.utp = Some(Box::new(UtpLink::new(
            self.now,
            seed,
            prefer,
            self.config.max_connections,
        )));
    }

    /// When the endpoint's next timer is due, if uTP is on.
    pub(super) fn utp_poll_timeout(&self) -> Option<Instant> {
        let link = self.utp.as_ref()?;
        let connect = link.connecting.values().min().copied();
        match (link.endpoint.poll_timeout(), connect) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Hands one uTP datagram to the endpoint (the demux in `udp.rs` decided it is one).
    pub(super) fn utp_datagram(&mut self, now: Instant, src: SocketAddr, datagram: &[u8]) {
        if let Some(link) = &mut self.utp {
            link.datagrams_received += 1;
            trace_header("in", src, datagram);
            link.endpoint.handle_datagram(now, src, datagram);
        }
    }

    /// Whether `conn` is a dial of ours whose SYN has not been answered.
    pub(super) fn utp_connecting(&self, conn: ConnId) -> bool {
        self.utp
            .as_ref()
            .is_some_and(|l| l.connecting.contains_key(&conn))
    }

    /// Registers an endpoint connection as connection `key` (called by `insert_utp_conn`).
    pub(super) fn utp_bind(&mut self, conn: ConnId, key: usize, generation: u64) {
        if let Some(link) = &mut self.utp {
            link.by_conn.insert(conn, (key, generation));
        }
    }

    /// Closes the endpoint side of a connection that is leaving the table: queued bytes still go
    /// out, then FIN (or, when the endpoint already ended it, its unread bytes are dropped).
    pub(super) fn utp_release(&mut self, conn: ConnId) {
        if let Some(link) = &mut self.utp {
            link.by_conn.remove(&conn);
            link.connecting.remove(&conn);
            link.endpoint.close(conn);
        }
    }

    /// Connects out to a peer of `torrent` at `addr` (the dial rules already said yes) over
    /// uTP first when [`UtpLink::prefer_outgoing`], else TCP first, and queues our handshake.
    /// `None` when neither transport could start.
    pub(super) fn connect_peer(
        &mut self,
        now: Instant,
        torrent: usize,
        addr: SocketAddr,
    ) -> Option<usize> {
        let utp_first = self.utp.as_ref().is_some_and(|u| u.prefer_outgoing);
        self.connect_peer_over(now, torrent, addr, utp_first)
            .or_else(|| self.connect_peer_over(now, torrent, addr, !utp_first))
    }

    /// [`Self::connect_peer`] over one transport: `utp` or TCP.
    fn connect_peer_over(
        &mut self,
        now: Instant,
        torrent: usize,
        addr: SocketAddr,
        utp: bool,
    ) -> Option<usize> {
        let state = ConnState::Handshake {
            dialed: Some(torrent),
        };
        let key = if utp {
            let link = self.utp.as_mut()?;
            let id = link.endpoint.connect(now, addr).ok()?;
            link.dialed += 1;
            link.connecting.insert(id, now + UTP_CONNECT_TIMEOUT);
            let key = self.insert_utp_conn(now, id, addr, state);
            if key.is_none() {
                self.utp_release(id);
            }
            key?
        } else {
            let stream = mio::net::TcpStream::connect(addr).ok()?;
            self.insert_conn(now, stream, addr, state)?
        };
        self.stats.dials += 1;
        let slot = &self.torrents[torrent];
        let hs = super::peer::handshake_bytes(
            slot.torrent.info_hash,
            self.config.peer_id,
            self.dht.is_some(),
            slot.torrent.v2.is_some(),
        );
        self.queue(key, hs);
        Some(key)
    }

    /// A connection we dialled closed during its handshake before its transport got through
    /// (TCP refused or never connected; uTP SYN unanswered or reset), for a reason that says so
    /// (read or write error, reset, timeout): tries the other transport once, as libtorrent does
    /// (a peer may accept only TCP, or only uTP).
    pub(super) fn dial_fallback(
        &mut self,
        now: Instant,
        torrent: usize,
        addr: SocketAddr,
        was_utp: bool,
        why: &CloseReason,
    ) {
        let transport_failed = matches!(
            why,
            CloseReason::ReadError(_)
                | CloseReason::WriteError(_)
                | CloseReason::RemoteClosed
                | CloseReason::HandshakeTimeout
        );
        if !transport_failed
            || self.utp.is_none()
            || self.torrents.get(torrent).is_none_or(|t| t.removed)
            || self.conns.len() >= self.config.max_connections
        {
            return;
        }
        if let Some(key) = self.connect_peer_over(now, torrent, addr, !was_utp) {
            if let Some(conn) = self.conns.get_mut(key) {
                conn.second_try = true;
            }
            debug!(peer = %addr, utp = !was_utp, "dialling again over the other transport");
        }
    }

    /// Sends what uTP connection `key` has queued at once, so that what is queued next starts
    /// a new datagram (a no-op for TCP). Our BEP 3 handshake must end its datagram: Transmission
    /// 3.00 never processes bytes that arrive in the same uTP packet after the handshake (our
    /// extension handshake and `have all` are lost, it never gets interested; found with
    /// `utp=trace`). Best effort: when the congestion window is full, the bytes wait in the
    /// endpoint and may share a packet after all.
    pub(super) fn utp_push(&mut self, key: usize) {
        if !self.conns.get(key).is_some_and(|c| c.transport.is_utp()) {
            return;
        }
        self.flush(key);
        let mut sent = 0;
        let _ = self.utp_transmit(&mut sent);
    }

    /// The end of a loop turn: fires the endpoint's due timers, sends its datagrams and handles
    /// its events (see the module docs). Leaves `udp_pending` set when work is left, so the
    /// loop polls again at once.
    pub(super) fn drive_utp(&mut self, now: Instant) {
        let Some(link) = &mut self.utp else { return };
        if link.endpoint.poll_timeout().is_some_and(|t| t <= now) {
            link.endpoint.handle_timeout(now);
        }
        if link.connecting.values().any(|t| *t <= now) {
            let late: Vec<ConnId> = link
                .connecting
                .iter()
                .filter(|(_, t)| **t <= now)
                .map(|(id, _)| *id)
                .collect();
            for id in late {
                let key = self
                    .utp
                    .as_ref()
                    .and_then(|l| l.by_conn.get(&id).map(|(key, _)| *key));
                match key {
                    // Closing a dialled connection whose SYN went unanswered dials TCP
                    // (`dial_fallback`); the close forgets the deadline.
                    Some(key) => self.close(key, CloseReason::HandshakeTimeout),
                    None => {
                        if let Some(link) = &mut self.utp {
                            link.connecting.remove(&id);
                        }
                    }
                }
            }
        }
        let mut sent = 0;
        for _ in 0..MAX_UTP_DRIVE_ROUNDS {
            if !self.utp_transmit(&mut sent) {
                return; // the socket is full: writability brings the loop back
            }
            let Some(link) = &mut self.utp else { return };
            let mut events = Vec::new();
            while let Some(e) = link.endpoint.poll_event() {
                events.push(e);
            }
            if events.is_empty() {
                return;
            }
            for e in events {
                self.on_utp_event(now, e);
            }
        }
        // Rounds used up with events possibly left: come back on the next turn at once.
        self.udp_pending = true;
    }

    /// Sends the endpoint's datagrams until it has none, the socket is full or the per-turn
    /// budget is used; false when the socket refused one (kept for later).
    fn utp_transmit(&mut self, sent: &mut usize) -> bool {
        let (Some(link), Some(socket)) = (&mut self.utp, &self.udp) else {
            return true;
        };
        loop {
            if *sent >= MAX_UTP_DATAGRAMS_PER_TURN {
                self.udp_pending = true;
                return true;
            }
            let dst = match link.blocked.take() {
                Some(dst) => dst,
                None => match link.endpoint.poll_transmit(&mut link.tx) {
                    Some(t) => {
                        link.tx.truncate(t.len);
                        t.dst
                    }
                    None => return true,
                },
            };
            match socket.send_to(&link.tx, dst) {
                Ok(_) => {
                    trace_header("out", dst, &link.tx);
                    *sent += 1;
                    link.datagrams_sent += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    link.blocked = Some(dst);
                    if !link.watching_writable {
                        link.watching_writable = true;
                        if let Some(socket) = &mut self.udp {
                            let _ = self.poll.registry().reregister(
                                socket,
                                UDP_TRACKER,
                                Interest::READABLE | Interest::WRITABLE,
                            );
                        }
                    }
                    return false;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => link.blocked = Some(dst),
                // Unreachable destinations and the like: the datagram is lost, as on the wire;
                // the connection's retransmissions and timeouts deal with it.
                Err(_) => {}
            }
        }
    }

    /// One endpoint event.
    fn on_utp_event(&mut self, now: Instant, event: Event) {
        let Some(link) = &mut self.utp else { return };
        let id = event.conn();
        let bound = link
            .by_conn
            .get(&id)
            .copied()
            .filter(|(key, generation)| {
                self.conns
                    .get(*key)
                    .is_some_and(|c| c.generation == *generation)
            })
            .map(|(key, _)| key);
        if bound.is_none() && link.pending.contains(&id) {
            match event {
                // The initiator's first bytes (its handshake): now it is a connection.
                Event::Readable(_) => {
                    link.pending.remove(&id);
                    if let Some(key) = self.admit_utp(now, id) {
                        self.on_readable(key, now);
                    }
                }
                Event::Closed { .. } => {
                    link.pending.remove(&id);
                    link.endpoint.close(id);
                }
                _ => {}
            }
            return;
        }
        match (event, bound) {
            (Event::Incoming(_), _) => {
                link.pending.insert(id);
            }
            (Event::Connected(_), Some(key)) => {
                if let Some(link) = &mut self.utp {
                    link.connecting.remove(&id);
                }
                self.flush(key);
            }
            (Event::Writable(_), Some(key)) => self.flush(key),
            (Event::Readable(_), Some(key)) => self.on_readable(key, now),
            (Event::Closed { reason, .. }, Some(key)) => {
                if reason == UtpCloseReason::Graceful {
                    // FIN received and its bytes are readable: the read path sees the end of
                    // the stream after them and closes as for TCP.
                    let generation = self.conns.get(key).map(|c| c.generation);
                    self.on_readable(key, now);
                    if self.conns.get(key).map(|c| c.generation) == generation {
                        self.close(key, CloseReason::RemoteClosed);
                    }
                } else {
                    if let Some(link) = &mut self.utp {
                        link.transport_errors += 1;
                    }
                    let why = io::Error::other(format!("uTP: {reason:?}"));
                    self.close(key, CloseReason::ReadError(why));
                }
            }
            (Event::Closed { .. }, None) => {
                // Ours already closed it: forget any unread bytes.
                if let Some(link) = &mut self.utp {
                    link.by_conn.remove(&id);
                    link.endpoint.close(id);
                }
            }
            // A connection we no longer hold.
            (_, None) => {
                if let Some(link) = &mut self.utp {
                    link.endpoint.close(id);
                }
            }
        }
    }

    /// An incoming uTP connection that sent its first bytes: the same admission rules as a
    /// TCP accept (bans, the per-IP cap, the connection limit with eviction of unproven
    /// connections); refused ones are closed at once. Accepted ones start by telling plain
    /// BitTorrent from MSE, like the shared TCP port (HTTP and uploads are refused on uTP).
    fn admit_utp(&mut self, now: Instant, id: ConnId) -> Option<usize> {
        let remote = self.utp.as_ref()?.endpoint.remote(id)?;
        if !self.admission(now, remote) {
            if let Some(link) = &mut self.utp {
                link.refused += 1;
                link.endpoint.close(id);
            }
            return None;
        }
        let key = self.insert_utp_conn(now, id, remote, ConnState::Sniffing);
        match key {
            Some(key) => {
                if let Some(link) = &mut self.utp {
                    link.accepted += 1;
                }
                debug!(peer = %remote, key, "accepted over uTP");
            }
            None => self.utp_release(id),
        }
        key
    }

    /// Peers connected over uTP now.
    pub(super) fn utp_peers(&self) -> usize {
        self.conns
            .iter()
            .filter(|(_, c)| c.transport.is_utp() && matches!(c.state, ConnState::Peer { .. }))
            .count()
    }

    /// The uTP lines of `/metrics`.
    pub(super) fn utp_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        let Some(link) = &self.utp else { return };
        let s = link.endpoint.stats();
        let conns = self
            .conns
            .iter()
            .filter(|(_, c)| c.transport.is_utp())
            .count();
        let lines: [(&str, &str, &str, u64); 10] = [
            (
                "utp_connections",
                "gauge",
                "Open connections carried by uTP (BEP 29).",
                conns as u64,
            ),
            (
                "utp_peers",
                "gauge",
                "Peers past the handshake over uTP.",
                self.utp_peers() as u64,
            ),
            (
                "utp_endpoint_connections",
                "gauge",
                "Connections the uTP endpoint holds (lingering closes included).",
                link.endpoint.connections() as u64,
            ),
            (
                "utp_accepted_total",
                "counter",
                "Incoming uTP connections accepted.",
                link.accepted,
            ),
            (
                "utp_refused_total",
                "counter",
                "Incoming uTP connections refused by the connection limits or bans.",
                link.refused + s.syns_refused,
            ),
            (
                "utp_dialed_total",
                "counter",
                "Outgoing uTP connections started.",
                link.dialed,
            ),
            (
                "utp_transport_errors_total",
                "counter",
                "uTP connections ended by the transport (timeout, reset, protocol violation).",
                link.transport_errors,
            ),
            (
                "utp_datagrams_sent_total",
                "counter",
                "uTP datagrams sent.",
                link.datagrams_sent,
            ),
            (
                "utp_datagrams_received_total",
                "counter",
                "uTP datagrams received.",
                link.datagrams_received,
            ),
            (
                "utp_dropped_total",
                "counter",
                "uTP datagrams dropped (malformed, or for no connection).",
                s.malformed + s.unknown_connection,
            ),
        ];
        for (name, kind, help, value) in lines {
            let _ = writeln!(
                out,
                "# HELP seednode_{name} {help}\n# TYPE seednode_{name} {kind}\nseednode_{name} {value}"
            );
        }
    }

    /// At shutdown, after every connection was closed: sends the FINs (best effort, one turn).
    pub(super) fn utp_shutdown(&mut self) {
        if let Some(link) = &self.utp {
            info!(connections = link.endpoint.connections(), "closing uTP");
        }
        let mut sent = 0;
        let _ = self.utp_transmit(&mut sent);
    }
}

/// Logs a uTP header's fields (never the payload) at trace level: `RUST_LOG=seednode::reactor::utp=trace`
/// shows every packet in and out, for interop work.
fn trace_header(dir: &'static str, peer: SocketAddr, datagram: &[u8]) {
    if !enabled!(Level::TRACE) {
        return;
    }
    match seednode_utp::Packet::new_checked(datagram) {
        Ok(p) => trace!(
            dir,
            %peer,
            ty = ?p.packet_type(),
            conn_id = p.connection_id(),
            seq = p.seq_nr(),
            ack = p.ack_nr(),
            wnd = p.wnd_size(),
            len = p.payload().len(),
            sack_len = p.sack().map_or(0, <[u8]>::len),
            "utp packet"
        ),
        Err(e) => trace!(dir, %peer, error = %e, "utp packet malformed"),
    }
}
