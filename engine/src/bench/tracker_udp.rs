//! A BEP 15 (UDP tracker) load generator: many simulated peers over many info-hashes send
//! connect, announce and scrape requests to one tracker, with a fixed number in flight, for a
//! fixed time.
//!
//! # The model
//!
//! - `S` sockets, each `connect`ed to the tracker. Against a loopback tracker each binds its own
//!   address (`source` and the next `S - 1`); a tracker stores a peer under its source IP and
//!   announced port, so peer `i` belongs to socket `i % S` and announces port `1024 + i / S`.
//!   Against any other tracker all sockets share the kernel's address and peer `i` announces
//!   port `1024 + i`, so `N` peers are `N` distinct addresses either way.
//! - Peer `i` is in one torrent ([`Swarms::torrent_of`], Zipf-distributed swarm sizes) and is
//!   a seeder (`left = 0`) with probability `seeder_percent` % (75 by default).
//! - `K` request slots; slot `j` sends on socket `j % S`. A free slot sends the next request at
//!   once, of a kind drawn by the mix weights: a connect (its reply refreshes the socket's
//!   connection ID, BEP 15 §connect), an announce of a random peer of that socket (event none,
//!   `numwant` 30 by default, BEP 15 §announce), or a scrape of `H` info-hashes drawn from the
//!   same distribution (BEP 15 §scrape). Until a socket has a connection ID its slots send
//!   connects; an error reply drops it.
//! - With `fill`, every peer instead announces exactly once, in order, and the run ends when all
//!   have been answered (or the duration passes).
//! - A reply is matched by its transaction ID (slot index and a per-slot sequence number); its
//!   latency is the time since the request was sent. A request unanswered after
//!   `timeout` (1 s by default) is lost and its slot sends anew.
//!
//! The generator is one thread that never blocks: it drains every socket (non-blocking), refills
//! the free slots, and checks timeouts, in a loop, so it uses a whole core. Every table is sized
//! from the validated configuration; replies are parsed with the tracker crate's views, and a
//! datagram that is too short or matches nothing is counted, never trusted.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use seednode_tracker::udp::packet::{
    self, AnnounceFields, AnnounceResponse, ConnectResponse, PEER_V4_LEN, ResponseHeader, action,
};
use seednode_wire::PeerId;
use seednode_wire::rng::Rng;
use serde::Serialize;

use super::Histogram;
use super::limits::{
    FIRST_PEER_PORT, MAX_DATAGRAM_LEN, MAX_ERROR_KINDS, MAX_ERROR_MESSAGE_LEN,
    MAX_RECV_PER_SOCKET_TURN, MAX_SCRAPE_HASHES, PORTS_PER_SOURCE, TIMEOUT_SCAN_INTERVAL,
};
use super::swarm::{Swarms, is_seeder};

/// A UDP tracker run.
#[derive(Debug, Clone)]
pub struct UdpConfig {
    /// The tracker.
    pub server: SocketAddrV4,
    /// How long to send.
    pub duration: Duration,
    /// Simulated peers (see the module docs for the bound).
    pub peers: u64,
    /// Requests outstanding at any time.
    pub in_flight: usize,
    /// Client sockets.
    pub sockets: usize,
    /// Address of the first socket when the tracker is on loopback (the others follow).
    pub first_source: Ipv4Addr,
    /// Weights of connect, announce, scrape requests.
    pub mix: [u32; 3],
    /// Info-hashes per scrape, 1 to [`MAX_SCRAPE_HASHES`].
    pub scrape_hashes: usize,
    /// Seed of the request stream.
    pub seed: u64,
    /// Announce every peer once, in order, then stop.
    pub fill: bool,
    /// `num_want` of every announce (`limits::NUMWANT` by default).
    pub numwant: u32,
    /// Share of simulated peers that are seeders, percent (`limits::SEEDER_PERCENT` by
    /// default).
    pub seeder_percent: u64,
    /// A request unanswered this long is lost (`limits::UDP_REQUEST_TIMEOUT` by default).
    pub timeout: Duration,
}

impl UdpConfig {
    /// Whether each socket gets its own source address (a loopback tracker).
    #[must_use]
    pub fn distinct_sources(&self) -> bool {
        self.server.ip().is_loopback()
    }

    /// The most peers this configuration can simulate as distinct addresses.
    #[must_use]
    pub fn max_peers(&self) -> u64 {
        if self.distinct_sources() {
            self.sockets as u64 * PORTS_PER_SOURCE
        } else {
            PORTS_PER_SOURCE
        }
    }
}

/// Responses and failures of a tracker run, by kind (shared by UDP and HTTP).
#[derive(Debug, Clone, Default, Serialize)]
pub struct TrackerReport {
    /// `udp://HOST:PORT` or the HTTP URL.
    pub tracker: String,
    /// Measured time, seconds.
    pub secs: f64,
    /// Requests sent.
    pub sent: u64,
    /// Connect responses (UDP only).
    pub connects: u64,
    /// Announce responses (not failures).
    pub announces: u64,
    /// Scrape responses.
    pub scrapes: u64,
    /// Successful responses of every kind per second.
    pub responses_per_s: f64,
    /// Peers per announce response, on average.
    pub peers_per_announce: f64,
    /// Error responses: BEP 15 error packets, HTTP `failure reason`s and non-200 statuses.
    pub error_responses: u64,
    /// Responses that are malformed, or match no request in flight.
    pub malformed: u64,
    /// Requests unanswered in time (UDP: lost datagrams; HTTP: timeouts).
    pub timeouts: u64,
    /// Sends, connects and reads that failed.
    pub io_errors: u64,
    /// Every error counted above, by message (at most [`MAX_ERROR_KINDS`], the rest under
    /// "other").
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Latency of successful responses, ms: median.
    pub latency_p50_ms: f64,
    /// 90th percentile, ms.
    pub latency_p90_ms: f64,
    /// 99th percentile, ms.
    pub latency_p99_ms: f64,
    /// 99.9th percentile, µs (the developer harness's figure).
    #[serde(skip)]
    pub latency_p999_us: u64,
    /// Largest latency, µs.
    #[serde(skip)]
    pub latency_max_us: u64,
    /// CPU seconds of this generator over the run.
    pub generator_cpu_secs: Option<f64>,
    /// Peers returned by every announce response.
    pub peers_returned: u64,
}

impl TrackerReport {
    /// Successful responses of every kind.
    #[must_use]
    pub const fn responses(&self) -> u64 {
        self.connects + self.announces + self.scrapes
    }

    /// Every failure: error responses, malformed ones, timeouts, I/O errors.
    #[must_use]
    pub const fn errors(&self) -> u64 {
        self.error_responses + self.malformed + self.timeouts + self.io_errors
    }

    /// Counts an error under `kind`, keeping at most [`MAX_ERROR_KINDS`] distinct kinds.
    pub fn count_error(&mut self, kind: &str) {
        self.count_errors(kind, 1);
    }

    /// Counts `n` errors under `kind` (truncated to [`MAX_ERROR_MESSAGE_LEN`] characters),
    /// keeping at most [`MAX_ERROR_KINDS`] distinct kinds: the rest go under "other".
    pub fn count_errors(&mut self, kind: &str, n: u64) {
        // Remote text: control characters never reach the terminal.
        let mut kind: String = kind
            .chars()
            .take(MAX_ERROR_MESSAGE_LEN)
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        if !self.errors_by_kind.contains_key(&kind) && self.errors_by_kind.len() >= MAX_ERROR_KINDS
        {
            "other".clone_into(&mut kind);
        }
        *self.errors_by_kind.entry(kind).or_default() += n;
    }

    /// Adds `other`'s counts (one HTTP connection's) to this report.
    pub fn merge(&mut self, other: &Self) {
        self.sent += other.sent;
        self.connects += other.connects;
        self.announces += other.announces;
        self.scrapes += other.scrapes;
        self.error_responses += other.error_responses;
        self.malformed += other.malformed;
        self.timeouts += other.timeouts;
        self.io_errors += other.io_errors;
        self.peers_returned += other.peers_returned;
        for (k, n) in &other.errors_by_kind {
            self.count_errors(k, *n);
        }
    }

    /// Records `peers` returned by one announce.
    pub fn add_peers(&mut self, peers: u64) {
        self.peers_returned += peers;
    }

    /// Fills the rates and latency figures at the end of a run.
    pub fn finish(&mut self, secs: f64, latency: &Histogram) {
        self.secs = secs;
        self.responses_per_s = self.responses() as f64 / secs.max(1e-9);
        self.peers_per_announce = self.peers_returned as f64 / self.announces.max(1) as f64;
        let ms = |q| latency.quantile_us(q) as f64 / 1000.0;
        self.latency_p50_ms = ms(0.50);
        self.latency_p90_ms = ms(0.90);
        self.latency_p99_ms = ms(0.99);
        self.latency_p999_us = latency.quantile_us(0.999);
        self.latency_max_us = latency.max_us();
    }
}

/// What a slot's outstanding request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Connect,
    Announce,
    Scrape,
}

/// One request slot: at most one request outstanding.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Sequence number of the slot's current request (high half of its transaction ID).
    seq: u16,
    /// The outstanding request, if any, and when it was sent.
    pending: Option<(Kind, Instant)>,
}

/// The generator's state: sockets, their connection IDs, slots, and the request stream.
struct Load<'a> {
    o: &'a UdpConfig,
    swarms: &'a Swarms,
    sockets: Vec<UdpSocket>,
    conn_ids: Vec<Option<u64>>,
    slots: Vec<Slot>,
    /// Slots with nothing outstanding.
    free: Vec<usize>,
    rng: Rng,
    tx: Vec<u8>,
    scrape: Vec<seednode_wire::InfoHash>,
    report: TrackerReport,
    latency: Histogram,
    mix_total: u64,
    /// `fill`: the next `k` of each socket (its peer `k * sockets + socket` announces next).
    fill_next: Vec<u64>,
}

impl<'a> Load<'a> {
    fn new(o: &'a UdpConfig, swarms: &'a Swarms) -> Result<Self, String> {
        let mut sockets = Vec::with_capacity(o.sockets);
        for s in 0..o.sockets {
            let ip = if o.distinct_sources() {
                u32::from(o.first_source)
                    .checked_add(s as u32)
                    .map(Ipv4Addr::from)
                    .ok_or("no source address left for the sockets")?
            } else {
                Ipv4Addr::UNSPECIFIED
            };
            let socket = UdpSocket::bind((ip, 0)).map_err(|e| format!("bind {ip}:0: {e}"))?;
            socket
                .connect(o.server)
                .map_err(|e| format!("connect to {}: {e}", o.server))?;
            socket
                .set_nonblocking(true)
                .map_err(|e| format!("set_nonblocking: {e}"))?;
            sockets.push(socket);
        }
        Ok(Self {
            o,
            swarms,
            sockets,
            conn_ids: vec![None; o.sockets],
            slots: vec![
                Slot {
                    seq: 0,
                    pending: None,
                };
                o.in_flight
            ],
            free: (0..o.in_flight).rev().collect(),
            rng: Rng::from_u64(o.seed),
            tx: Vec::with_capacity(packet::REQUEST_HEADER_LEN + 20 * MAX_SCRAPE_HASHES),
            scrape: Vec::with_capacity(MAX_SCRAPE_HASHES),
            report: TrackerReport {
                tracker: format!("udp://{}", o.server),
                ..TrackerReport::default()
            },
            latency: Histogram::new(),
            mix_total: o.mix.iter().map(|w| u64::from(*w)).sum(),
            fill_next: vec![0; o.sockets],
        })
    }

    /// The kind of the next request on `socket`; `None` once a `fill` socket has announced
    /// all its peers.
    fn pick_kind(&mut self, socket: usize) -> Option<Kind> {
        if self.conn_ids[socket].is_none() {
            return Some(Kind::Connect);
        }
        if self.o.fill {
            return (!self.fill_done(socket)).then_some(Kind::Announce);
        }
        let r = self.rng.next_u64() % self.mix_total.max(1);
        let [c, a, _] = self.o.mix.map(u64::from);
        Some(if r < c {
            Kind::Connect
        } else if r < c + a {
            Kind::Announce
        } else {
            Kind::Scrape
        })
    }

    /// Peers of `socket`: `k * sockets + socket < peers`.
    fn peers_of(&self, socket: usize) -> u64 {
        (self.o.peers.saturating_sub(socket as u64)).div_ceil(self.o.sockets as u64)
    }

    fn fill_done(&self, socket: usize) -> bool {
        self.fill_next[socket] >= self.peers_of(socket)
    }

    /// `fill`: every peer announced and nothing outstanding.
    fn filled(&self) -> bool {
        (0..self.o.sockets).all(|s| self.fill_done(s))
            && self.slots.iter().all(|s| s.pending.is_none())
    }

    /// Writes the request into `self.tx`.
    fn build(&mut self, kind: Kind, socket: usize, transaction_id: u32) {
        let o = self.o;
        self.tx.clear();
        let connection_id = self.conn_ids[socket].unwrap_or(packet::PROTOCOL_ID);
        match kind {
            Kind::Connect => packet::write_connect_request(&mut self.tx, transaction_id),
            Kind::Announce => {
                // A peer of this socket, i = k * sockets + socket: the next one with fill, else a
                // random one.
                let k = if o.fill {
                    let k = self.fill_next[socket];
                    self.fill_next[socket] += 1;
                    k
                } else {
                    self.rng.next_u64() % self.peers_of(socket).max(1)
                };
                let peer = k * o.sockets as u64 + socket as u64;
                let port_index = if o.distinct_sources() { k } else { peer };
                let mut peer_id = [0u8; 20];
                peer_id[..8].copy_from_slice(b"-SB0001-");
                peer_id[8..16].copy_from_slice(&peer.to_be_bytes());
                let fields = AnnounceFields {
                    connection_id,
                    transaction_id,
                    info_hash: self.swarms.torrent_of(peer),
                    peer_id: PeerId(peer_id),
                    downloaded: 0,
                    left: if is_seeder(peer, o.seeder_percent) {
                        0
                    } else {
                        1 << 20
                    },
                    uploaded: 0,
                    event: 0,
                    key: peer as u32,
                    num_want: i32::try_from(o.numwant).unwrap_or(i32::MAX),
                    port: (u64::from(FIRST_PEER_PORT) + port_index % PORTS_PER_SOURCE) as u16,
                };
                packet::write_announce_request(&mut self.tx, &fields);
            }
            Kind::Scrape => {
                self.scrape.clear();
                for _ in 0..o.scrape_hashes {
                    let x = self.rng.next_u64();
                    self.scrape.push(self.swarms.pick(x));
                }
                packet::write_scrape_request(
                    &mut self.tx,
                    connection_id,
                    transaction_id,
                    &self.scrape,
                );
            }
        }
    }

    /// Sends a request from every free slot; stops early when a socket's buffer is full.
    fn refill(&mut self, now: Instant) {
        // Slots of `fill` sockets that are done stay idle (off the free list).
        while let Some(slot) = self.free.pop() {
            let socket = slot % self.o.sockets;
            let Some(kind) = self.pick_kind(socket) else {
                continue;
            };
            let seq = self.slots[slot].seq.wrapping_add(1);
            let txid = (u32::from(seq) << 16) | slot as u32;
            self.build(kind, socket, txid);
            match self.sockets[socket].send(&self.tx) {
                Ok(_) => {
                    self.slots[slot] = Slot {
                        seq,
                        pending: Some((kind, now)),
                    };
                    self.report.sent += 1;
                }
                // A full socket buffer (EAGAIN, ENOBUFS): try again on the next turn.
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.unsend(kind, socket, slot);
                    return;
                }
                // ECONNREFUSED from an earlier ICMP port unreachable: the tracker is not there.
                Err(e) => {
                    self.report.io_errors += 1;
                    self.report.count_error(&format!("send: {}", e.kind()));
                    self.unsend(kind, socket, slot);
                    return;
                }
            }
        }
    }

    fn unsend(&mut self, kind: Kind, socket: usize, slot: usize) {
        if self.o.fill && kind == Kind::Announce {
            self.fill_next[socket] -= 1; // that peer has not announced yet
        }
        self.free.push(slot);
    }

    /// Reads the datagrams waiting on socket `s` (at most [`MAX_RECV_PER_SOCKET_TURN`]).
    fn drain(&mut self, s: usize, rx: &mut [u8], now: Instant) {
        for _ in 0..MAX_RECV_PER_SOCKET_TURN {
            let len = match self.sockets[s].recv(rx) {
                Ok(len) => len,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // ICMP errors (tracker not listening) surface here; requests time out.
                Err(e) => {
                    self.report.io_errors += 1;
                    self.report.count_error(&format!("receive: {}", e.kind()));
                    break;
                }
            };
            self.on_reply(s, &rx[..len], now);
        }
    }

    fn malformed(&mut self, why: &str) {
        self.report.malformed += 1;
        self.report.count_error(why);
    }

    fn on_reply(&mut self, s: usize, d: &[u8], now: Instant) {
        let Some(header) = ResponseHeader::new_checked(d) else {
            return self.malformed("datagram shorter than a BEP 15 header");
        };
        let txid = header.transaction_id();
        let slot = (txid & 0xFFFF) as usize;
        let seq = (txid >> 16) as u16;
        let Some(Slot {
            seq: want_seq,
            pending: Some((kind, sent)),
        }) = self.slots.get(slot).copied()
        else {
            return self.malformed("reply to no request in flight");
        };
        if want_seq != seq || slot % self.o.sockets != s {
            return self.malformed("reply to no request in flight");
        }
        let ok = match (header.action(), kind) {
            (action::CONNECT, Kind::Connect) => {
                let Some(r) = ConnectResponse::new_checked(d) else {
                    return self.malformed("short connect response");
                };
                self.conn_ids[s] = Some(r.connection_id());
                self.report.connects += 1;
                true
            }
            (action::ANNOUNCE, Kind::Announce) => {
                let Some(r) = AnnounceResponse::new_checked(d) else {
                    return self.malformed("short announce response");
                };
                self.report.announces += 1;
                self.report.add_peers(r.peers(PEER_V4_LEN).count() as u64);
                true
            }
            (action::SCRAPE, Kind::Scrape) if d.len() >= packet::RESPONSE_HEADER_LEN + 12 => {
                self.report.scrapes += 1;
                true
            }
            (action::ERROR, _) => {
                self.report.error_responses += 1;
                let payload = header.payload();
                let message =
                    String::from_utf8_lossy(&payload[..payload.len().min(MAX_ERROR_MESSAGE_LEN)]);
                self.report.count_error(&format!("error: {message}"));
                // A refused connection ID: fetch a new one.
                self.conn_ids[s] = None;
                false
            }
            _ => return self.malformed("reply of the wrong action or too short"),
        };
        if ok {
            self.latency.record(now.saturating_duration_since(sent));
        }
        self.slots[slot].pending = None;
        self.free.push(slot);
    }

    /// Frees slots whose request has waited longer than the timeout.
    fn expire(&mut self, now: Instant) {
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if let Some((_, sent)) = slot.pending
                && now.duration_since(sent) >= self.o.timeout
            {
                slot.pending = None;
                self.free.push(i);
                self.report.timeouts += 1;
            }
        }
    }
}

/// Runs the load of `config` over `swarms` against a UDP tracker; `progress` is called about
/// ten times a second with the responses so far.
///
/// # Errors
/// When the sockets cannot be bound or connected.
pub fn run(
    config: &UdpConfig,
    swarms: &Swarms,
    progress: &mut dyn FnMut(u64),
) -> Result<TrackerReport, String> {
    let mut load = Load::new(config, swarms)?;
    let mut rx = vec![0u8; MAX_DATAGRAM_LEN];
    let cpu_start = super::process_cpu_secs("self").ok();
    let start = Instant::now();
    let end = start + config.duration;
    let mut last_scan = start;
    let mut last_progress = start;
    let mut now = start;
    while now < end && !(config.fill && load.filled()) {
        load.refill(now);
        for s in 0..config.sockets {
            load.drain(s, &mut rx, now);
            now = Instant::now();
        }
        if now.duration_since(last_scan) >= TIMEOUT_SCAN_INTERVAL {
            load.expire(now);
            last_scan = now;
        }
        if now.duration_since(last_progress) >= Duration::from_millis(100) {
            progress(load.report.responses());
            last_progress = now;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let mut report = load.report;
    report.generator_cpu_secs = super::process_cpu_secs("self")
        .ok()
        .zip(cpu_start)
        .map(|(end, start)| end - start);
    report.finish(secs, &load.latency);
    if report.timeouts > 0 {
        let n = report.timeouts;
        report.count_errors(
            &format!("timeout (no reply in {} ms)", config.timeout.as_millis()),
            n,
        );
    }
    Ok(report)
}
