//! The socket-level multiplexer: every uTP connection on one UDP socket, keyed by
//! (remote address, `connection_id`) as BEP 29 §Connection setup prescribes.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use thiserror::Error;

use crate::connection::{Clock, ConnStats, Connection, State};
use crate::limits::{
    DEFAULT_MAX_CONNECTIONS, MAX_CONNECTIONS, MAX_DATAGRAM_LEN, MAX_QUEUED_EVENTS,
    MAX_QUEUED_RESETS,
};
use crate::packet::{self, Header, Packet, PacketType};
use crate::{CloseReason, Event};

/// Endpoint settings; every number is clamped to its hard limit by [`Endpoint::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Most connections held at once, [`DEFAULT_MAX_CONNECTIONS`] clamped to
    /// [`MAX_CONNECTIONS`]. Incoming SYNs beyond it are answered with `ST_RESET`.
    pub max_connections: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// A connection handle, unique for the endpoint's lifetime (never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(u64);

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "utp#{}", self.0)
    }
}

/// One datagram to send: `len` bytes at the start of the caller's buffer, to `dst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Transmit {
    /// Where to send it.
    pub dst: SocketAddr,
    /// Bytes written into the buffer given to [`Endpoint::poll_transmit`].
    pub len: usize,
}

/// Why [`Endpoint::connect`] refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConnectError {
    /// The endpoint already holds `limit` connections.
    #[error("uTP endpoint full ({limit} connections)")]
    TooManyConnections {
        /// [`Config::max_connections`].
        limit: usize,
    },
}

/// Endpoint-wide counters of bad or refused input (for `/metrics`; never logged per packet).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams that failed [`Packet::new_checked`].
    pub malformed: u64,
    /// Packets for no known connection.
    pub unknown_connection: u64,
    /// SYNs refused because the endpoint was full.
    pub syns_refused: u64,
    /// Resets sent for unknown connections or refused SYNs.
    pub resets_sent: u64,
    /// Resets not sent because [`MAX_QUEUED_RESETS`] were already queued.
    pub resets_dropped: u64,
    /// Events dropped because [`MAX_QUEUED_EVENTS`] were queued (caller not draining).
    pub events_dropped: u64,
}

/// A sans-IO uTP endpoint (see the crate docs for the call order).
#[derive(Debug)]
pub struct Endpoint {
    epoch: Instant,
    now: Instant,
    config: Config,
    rng: u64,
    next_id: u64,
    pub(crate) conns: BTreeMap<ConnId, Connection>,
    by_key: HashMap<(SocketAddr, u16), ConnId>,
    ready: VecDeque<ConnId>,
    events: VecDeque<Event>,
    resets: VecDeque<(SocketAddr, Header)>,
    stats: Stats,
}

impl Endpoint {
    /// A new endpoint. `epoch` is the instant our µs timestamps count from (the engine passes
    /// its start time); `rng_seed` seeds connection ids and initial sequence numbers (the
    /// engine draws it from the system RNG, simulations fix it).
    #[must_use]
    pub fn new(epoch: Instant, mut config: Config, rng_seed: u64) -> Self {
        config.max_connections = config.max_connections.clamp(1, MAX_CONNECTIONS);
        Self {
            epoch,
            now: epoch,
            config,
            rng: rng_seed ^ 0x9e37_79b9_7f4a_7c15,
            next_id: 0,
            conns: BTreeMap::new(),
            by_key: HashMap::new(),
            ready: VecDeque::new(),
            events: VecDeque::new(),
            resets: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    fn next_rand(&mut self) -> u64 {
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn clock(&mut self, now: Instant) -> Clock {
        if now > self.now {
            self.now = now;
        }
        let us = self.now.saturating_duration_since(self.epoch).as_micros() as u32;
        Clock { now: self.now, us }
    }

    fn touch(&mut self, id: ConnId) {
        if !self.ready.contains(&id) {
            self.ready.push_back(id);
        }
    }

    fn new_id(&mut self) -> ConnId {
        self.next_id += 1;
        ConnId(self.next_id)
    }

    fn push_events(&mut self, mut new: VecDeque<Event>) {
        for e in new.drain(..) {
            if self.events.len() >= MAX_QUEUED_EVENTS {
                self.events.pop_front();
                self.stats.events_dropped += 1;
            }
            self.events.push_back(e);
        }
    }

    fn queue_reset(&mut self, dst: SocketAddr, h: Header) {
        if self.resets.len() >= MAX_QUEUED_RESETS {
            self.stats.resets_dropped += 1;
        } else {
            self.resets.push_back((dst, h));
        }
    }

    /// Opens a connection to `remote`: queues a SYN (BEP 29: random `recv_id`,
    /// `send_id = recv_id + 1`). [`Event::Connected`] or [`Event::Closed`] follows.
    ///
    /// # Errors
    /// [`ConnectError::TooManyConnections`] at [`Config::max_connections`].
    pub fn connect(&mut self, now: Instant, remote: SocketAddr) -> Result<ConnId, ConnectError> {
        let clk = self.clock(now);
        if self.conns.len() >= self.config.max_connections {
            return Err(ConnectError::TooManyConnections {
                limit: self.config.max_connections,
            });
        }
        let recv_id = loop {
            let r = self.next_rand() as u16;
            // Neither our receive id nor the id an incoming SYN from them would map to may be
            // taken.
            if !self.by_key.contains_key(&(remote, r))
                && !self.by_key.contains_key(&(remote, r.wrapping_add(1)))
            {
                break r;
            }
        };
        let seq = self.next_rand() as u16;
        let id = self.new_id();
        let conn = Connection::outgoing(id, remote, clk.now, recv_id, seq);
        self.by_key.insert((remote, recv_id), id);
        self.conns.insert(id, conn);
        self.touch(id);
        Ok(id)
    }

    /// Handles one datagram received from `src` at `now`. Datagrams that are not uTP (see
    /// [`packet::looks_like_utp`]) are counted in [`Stats::malformed`] and dropped.
    pub fn handle_datagram(&mut self, now: Instant, src: SocketAddr, datagram: &[u8]) {
        let clk = self.clock(now);
        if datagram.len() > MAX_DATAGRAM_LEN {
            self.stats.malformed += 1;
            return;
        }
        let Ok(p) = Packet::new_checked(datagram) else {
            self.stats.malformed += 1;
            return;
        };
        let mut events = VecDeque::new();
        let key_id = if p.packet_type() == PacketType::Syn {
            p.connection_id().wrapping_add(1)
        } else {
            p.connection_id()
        };
        if let Some(&id) = self.by_key.get(&(src, key_id)) {
            if let Some(conn) = self.conns.get_mut(&id) {
                conn.handle_packet(clk, &p, &mut events);
                self.touch(id);
            }
        } else if p.packet_type() == PacketType::Syn {
            self.accept(clk, src, &p, &mut events);
        } else {
            self.stats.unknown_connection += 1;
            if matches!(p.packet_type(), PacketType::Data | PacketType::Fin) {
                let h = Header {
                    ty: PacketType::Reset,
                    connection_id: p.connection_id(),
                    timestamp_us: clk.us,
                    timestamp_difference_us: 0,
                    wnd_size: 0,
                    seq_nr: self.next_rand() as u16,
                    ack_nr: p.seq_nr(),
                };
                self.queue_reset(src, h);
            }
        }
        self.push_events(events);
        self.gc();
    }

    fn accept(
        &mut self,
        clk: Clock,
        src: SocketAddr,
        syn: &Packet<'_>,
        events: &mut VecDeque<Event>,
    ) {
        if self.conns.len() >= self.config.max_connections {
            self.stats.syns_refused += 1;
            let h = Header {
                ty: PacketType::Reset,
                connection_id: syn.connection_id(),
                timestamp_us: clk.us,
                timestamp_difference_us: 0,
                wnd_size: 0,
                seq_nr: self.next_rand() as u16,
                ack_nr: syn.seq_nr(),
            };
            self.queue_reset(src, h);
            return;
        }
        // Our own outgoing connection with this remote might use syn.connection_id as its
        // receive id; refuse rather than mix the two (BEP 29 leaves collisions undefined).
        if self.by_key.contains_key(&(src, syn.connection_id())) {
            self.stats.syns_refused += 1;
            return;
        }
        let seq = self.next_rand() as u16;
        let id = self.new_id();
        let conn = Connection::incoming(id, src, clk, syn, seq);
        self.by_key.insert((src, conn.recv_id), id);
        self.conns.insert(id, conn);
        events.push_back(Event::Incoming(id));
        self.touch(id);
    }

    /// Queues up to `data.len()` bytes on `conn`; returns how many were accepted (0 when the
    /// send buffer is full, the connection is closing or unknown). [`Event::Writable`] follows
    /// once space frees after a short write.
    pub fn write(&mut self, conn: ConnId, data: &[u8]) -> usize {
        let Some(c) = self.conns.get_mut(&conn) else {
            return 0;
        };
        let n = c.write(data);
        if n > 0 {
            self.touch(conn);
        }
        n
    }

    /// Copies received in-order bytes of `conn` into `buf`; returns how many (0 when none are
    /// buffered; see [`Endpoint::is_eof`]).
    pub fn read(&mut self, conn: ConnId, buf: &mut [u8]) -> usize {
        let Some(c) = self.conns.get_mut(&conn) else {
            return 0;
        };
        let n = c.read(buf);
        if c.wants_transmit() {
            self.touch(conn);
        }
        self.gc();
        n
    }

    /// True when the peer sent FIN and every byte before it has been read (or the connection
    /// is gone).
    #[must_use]
    pub fn is_eof(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_none_or(Connection::is_eof)
    }

    /// Closes `conn`: queued bytes are still sent (after the handshake if it is not done), then
    /// FIN (BEP 29 §Closing). A connection already closed is forgotten with any unread bytes.
    pub fn close(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.state == State::Closed {
            self.remove(conn);
            return;
        }
        c.close();
        self.touch(conn);
    }

    /// Counters and congestion state of `conn`.
    #[must_use]
    pub fn conn_stats(&self, conn: ConnId) -> Option<ConnStats> {
        self.conns.get(&conn).map(Connection::stats)
    }

    /// The remote address of `conn`.
    #[must_use]
    pub fn remote(&self, conn: ConnId) -> Option<SocketAddr> {
        self.conns.get(&conn).map(|c| c.remote)
    }

    /// Connections held.
    #[must_use]
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Endpoint-wide counters.
    #[must_use]
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Fires every timer due at `now` (retransmission, keep-alive, idle).
    pub fn handle_timeout(&mut self, now: Instant) {
        let clk = self.clock(now);
        let mut events = VecDeque::new();
        let due: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.poll_timeout().is_some_and(|t| t <= clk.now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(c) = self.conns.get_mut(&id) {
                c.handle_timeout(clk, &mut events);
                self.touch(id);
            }
        }
        self.push_events(events);
        self.gc();
    }

    /// The next datagram to send, written into `buf` (cleared first); `None` when there is
    /// nothing to send now. Connections take turns, one datagram each.
    #[must_use]
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<Transmit> {
        buf.clear();
        if let Some((dst, h)) = self.resets.pop_front() {
            packet::encode(buf, &h, None, &[]);
            self.stats.resets_sent += 1;
            return Some(Transmit {
                dst,
                len: buf.len(),
            });
        }
        let clk = self.clock(self.now);
        while let Some(id) = self.ready.pop_front() {
            let Some(c) = self.conns.get_mut(&id) else {
                continue;
            };
            if c.poll_transmit(clk, buf) {
                let dst = c.remote;
                self.ready.push_back(id);
                let len = buf.len();
                if c.is_done() {
                    self.remove(id);
                }
                return Some(Transmit { dst, len });
            }
        }
        None
    }

    /// The next event, `None` when there is none.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The earliest instant [`Endpoint::handle_timeout`] must be called, `None` when no timer
    /// is armed.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.conns
            .values()
            .filter_map(Connection::poll_timeout)
            .min()
    }

    /// Checks every connection's cached counters against its queues; panics on a mismatch.
    /// For fuzzing and simulations (linear in the data held).
    pub fn check_invariants(&self) {
        for c in self.conns.values() {
            c.check_invariants();
        }
        assert_eq!(self.conns.len(), self.by_key.len());
        assert!(self.conns.len() <= self.config.max_connections);
    }

    fn remove(&mut self, id: ConnId) {
        if let Some(c) = self.conns.remove(&id) {
            self.by_key.remove(&(c.remote, c.recv_id));
        }
    }

    fn gc(&mut self) {
        let done: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.is_done())
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            self.remove(id);
        }
    }
}

impl Event {
    /// The connection this event is about.
    #[must_use]
    pub fn conn(&self) -> ConnId {
        match self {
            Self::Incoming(c)
            | Self::Connected(c)
            | Self::Readable(c)
            | Self::Writable(c)
            | Self::Closed { conn: c, .. } => *c,
        }
    }

    /// True for [`Event::Closed`] with [`CloseReason::Graceful`].
    #[must_use]
    pub fn is_graceful_close(&self) -> bool {
        matches!(
            self,
            Self::Closed {
                reason: CloseReason::Graceful,
                ..
            }
        )
    }
}
