//! A BEP 15 (UDP tracker) load generator: many simulated peers over many info-hashes send
//! connect, announce and scrape requests to one tracker, with a fixed number of requests in
//! flight, for a fixed time; it prints responses per second and latency percentiles.
//!
//! ```text
//! cargo run --release -p seednode-benches --bin udp_tracker_load -- --server 127.0.0.1:PORT
//!     [--duration SECS] [--torrents M] [--peers N] [--in-flight K] [--sockets S]
//!     [--mix CONNECT:ANNOUNCE:SCRAPE] [--scrape-hashes H] [--numwant W]
//!     [--seeder-percent P] [--timeout-ms T] [--first-ip 127.0.0.X] [--seed SEED] [--fill]
//! ```
//!
//! # The model
//!
//! - `S` sockets, each bound to its own loopback address (`--first-ip` and the next `S - 1`), each
//!   `connect`ed to the server. A tracker stores a peer under its source IP and announced port, so
//!   peer `i` belongs to socket `i % S` and announces port `1024 + i / S`: `N` peers are `N`
//!   distinct addresses (hence `N <= S * 64512`).
//! - Peer `i` is in one torrent, `mix(i) % M`, and is a seeder (`left = 0`) with probability
//!   `P` %. Its peer ID is derived from `i`. Info-hashes are derived from the torrent index.
//! - `K` request slots; slot `j` sends on socket `j % S`. A free slot sends the next request at
//!   once, of a kind drawn by the `--mix` weights: a connect (its reply refreshes the socket's
//!   connection ID), an announce of a random peer of that socket (event none, `numwant = W`), or a
//!   scrape of `H` random info-hashes. Until a socket has a connection ID its slots send connects.
//! - With `--fill`, every peer instead announces exactly once, in order (after its socket's
//!   connect), and the run ends when all have been answered (or `--duration` passes): it fills a
//!   tracker with all `N` peers, so that memory is compared at the same population.
//! - A reply is matched by its transaction ID (slot index and a per-slot sequence number); its
//!   latency is the time since the request was sent. A request unanswered after `T` ms counts as
//!   lost and its slot sends anew. Error replies (action 3) count as errors, not as answers.
//!
//! The generator is one thread that never blocks: it drains every socket (non-blocking), refills
//! the free slots, and checks timeouts, in a loop, so it uses a whole core. Pin it to a core of
//! its own (`taskset -c 1`). It stops after `--duration` seconds; every buffer and table is sized
//! from the options, which are bounded (see the `MAX_*` constants).
//!
//! # Output
//!
//! A human summary on stderr, and one line on stdout:
//!
//! ```text
//! RESULT secs=.. sent=.. responses=.. rps=.. connects=.. announces=.. scrapes=.. errors=..
//!     lost=.. p50_us=.. p90_us=.. p99_us=.. p999_us=.. max_us=.. peers_per_announce=..
//!     client_cpu_s=..
//! ```
//!
//! `responses` counts connect, announce and scrape replies (not errors), received within the run.

use std::fmt::Write as _;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use seednode_benches::{XorShift64Star, cli_main, cpu_ticks, parse_whole, splitmix64};

/// BEP 15 §connect: the magic `protocol_id` of a connect request.
const PROTOCOL_ID: u64 = 0x0417_2710_1980;
/// BEP 15 actions.
const ACTION_CONNECT: u32 = 0;
const ACTION_ANNOUNCE: u32 = 1;
const ACTION_SCRAPE: u32 = 2;
const ACTION_ERROR: u32 = 3;
/// Byte lengths of BEP 15 packets.
const CONNECT_REQUEST_LEN: usize = 16;
const CONNECT_RESPONSE_LEN: usize = 16;
const ANNOUNCE_REQUEST_LEN: usize = 98;
const ANNOUNCE_RESPONSE_HEADER_LEN: usize = 20;
const SCRAPE_REQUEST_HEADER_LEN: usize = 16;
const SCRAPE_ENTRY_LEN: usize = 12;
const COMPACT_PEER_V4_LEN: usize = 6;
/// Largest datagram read, bytes (an announce reply with 200 IPv4 peers is 1220).
const MAX_DATAGRAM_LEN: usize = 8192;

/// Lowest announced port; peer `i` announces `FIRST_PEER_PORT + i / sockets`.
const FIRST_PEER_PORT: u32 = 1024;
/// Distinct ports per socket, hence the most peers one socket simulates.
const PORTS_PER_SOCKET: u64 = 65_536 - FIRST_PEER_PORT as u64;

/// Bounds on the options (each table is sized from them).
const MAX_SOCKETS: usize = 200;
const MAX_IN_FLIGHT: usize = 65_536;
const MAX_TORRENTS: u64 = 100_000_000;
const MAX_DURATION: Duration = Duration::from_secs(3600);
/// BEP 15 packs at most about 74 scrape entries in one 1 KiB-ish reply; trackers cap near 70.
const MAX_SCRAPE_HASHES: usize = 70;
/// Most latency samples kept (4 bytes each); later samples are counted but not kept.
const MAX_LATENCY_SAMPLES: usize = 64 * 1024 * 1024;
/// Datagrams read from one socket before the loop moves on (fairness between sockets).
const MAX_RECV_PER_SOCKET_TURN: usize = 64;
/// How often slots are scanned for timed-out requests.
const TIMEOUT_SCAN_INTERVAL: Duration = Duration::from_millis(20);

const USAGE: &str = "\
usage: udp_tracker_load --server IP:PORT [OPTIONS]

Sends BEP 15 connect/announce/scrape requests from many simulated peers to one UDP tracker with
a fixed number in flight, for a fixed time; prints a summary on stderr and a RESULT line on
stdout.

options:
  --server IP:PORT        the tracker (IPv4)
  --duration SECS         how long to send [default: 10]
  --torrents M            distinct info-hashes [default: 50000]
  --peers N               distinct peers (N <= sockets * 64512) [default: 500000]
  --in-flight K           requests outstanding at any time [default: 128]
  --sockets S             client sockets, each on its own IP from --first-ip [default: 16]
  --first-ip 127.0.0.X    address of the first socket [default: 127.0.1.1]
  --mix C:A:S             weights of connect, announce, scrape requests [default: 10:80:10]
  --scrape-hashes H       info-hashes per scrape (1..=70) [default: 10]
  --numwant W             peers wanted per announce [default: 30]
  --seeder-percent P      share of peers that are seeders [default: 75]
  --timeout-ms T          a request unanswered this long is lost [default: 1000]
  --seed SEED             seed of the request stream [default: 1]
  --fill                  announce every peer once, in order, then stop (fills the tracker)
  -h, --help              this text";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    cli_main("udp_tracker_load", USAGE, Options::parse(&args), |opts| {
        let report = run(&opts)?;
        eprint!("{}", report.human(&opts));
        println!("{}", report.result_line());
        Ok(())
    })
}

/// Command-line options, validated against the `MAX_*` bounds.
#[derive(Debug, Clone)]
struct Options {
    server: SocketAddrV4,
    duration: Duration,
    torrents: u64,
    peers: u64,
    in_flight: usize,
    sockets: usize,
    first_ip: Ipv4Addr,
    /// Weights of connect, announce, scrape.
    mix: [u32; 3],
    scrape_hashes: usize,
    numwant: u32,
    seeder_percent: u64,
    timeout: Duration,
    seed: u64,
    fill: bool,
}

impl Options {
    fn parse(args: &[String]) -> Result<Option<Self>, String> {
        let mut o = Self {
            server: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0),
            duration: Duration::from_secs(10),
            torrents: 50_000,
            peers: 500_000,
            in_flight: 128,
            sockets: 16,
            first_ip: Ipv4Addr::new(127, 0, 1, 1),
            mix: [10, 80, 10],
            scrape_hashes: 10,
            numwant: 30,
            seeder_percent: 75,
            timeout: Duration::from_millis(1000),
            seed: 1,
            fill: false,
        };
        let mut server = None;
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            if flag == "-h" || flag == "--help" {
                return Ok(None);
            }
            if flag == "--fill" {
                o.fill = true;
                continue;
            }
            let value = it
                .next()
                .ok_or_else(|| format!("{flag} needs a value"))?
                .as_str();
            let num = |v: &str| parse_whole(flag, v);
            match flag.as_str() {
                "--server" => {
                    server = Some(
                        value
                            .parse::<SocketAddrV4>()
                            .map_err(|_| format!("--server: not an IPv4 IP:PORT: {value:?}"))?,
                    );
                }
                "--duration" => o.duration = Duration::from_secs(num(value)?),
                "--torrents" => o.torrents = num(value)?,
                "--peers" => o.peers = num(value)?,
                "--in-flight" => o.in_flight = usize::try_from(num(value)?).unwrap_or(usize::MAX),
                "--sockets" => o.sockets = usize::try_from(num(value)?).unwrap_or(usize::MAX),
                "--first-ip" => {
                    o.first_ip = value
                        .parse()
                        .map_err(|_| format!("--first-ip: not an IPv4 address: {value:?}"))?;
                }
                "--mix" => {
                    let parts: Vec<&str> = value.split(':').collect();
                    if parts.len() != 3 {
                        return Err(format!("--mix: expected C:A:S, got {value:?}"));
                    }
                    for (w, p) in o.mix.iter_mut().zip(parts) {
                        *w = u32::try_from(num(p)?).map_err(|_| "--mix: weight too large")?;
                    }
                }
                "--scrape-hashes" => {
                    o.scrape_hashes = usize::try_from(num(value)?).unwrap_or(usize::MAX);
                }
                "--numwant" => {
                    o.numwant = u32::try_from(num(value)?).map_err(|_| "--numwant: too large")?;
                }
                "--seeder-percent" => o.seeder_percent = num(value)?,
                "--timeout-ms" => o.timeout = Duration::from_millis(num(value)?),
                "--seed" => o.seed = num(value)?,
                _ => return Err(format!("unknown option {flag}")),
            }
        }
        o.server = server.ok_or("--server IP:PORT is required")?;
        if o.duration.is_zero() || o.duration > MAX_DURATION {
            return Err(format!("--duration must be 1..={}", MAX_DURATION.as_secs()));
        }
        if o.torrents == 0 || o.torrents > MAX_TORRENTS {
            return Err(format!("--torrents must be 1..={MAX_TORRENTS}"));
        }
        if o.sockets == 0 || o.sockets > MAX_SOCKETS {
            return Err(format!("--sockets must be 1..={MAX_SOCKETS}"));
        }
        let max_peers = o.sockets as u64 * PORTS_PER_SOCKET;
        if o.peers < o.sockets as u64 || o.peers > max_peers {
            return Err(format!(
                "--peers must be {}..={max_peers} with {} sockets",
                o.sockets, o.sockets
            ));
        }
        if o.in_flight == 0 || o.in_flight > MAX_IN_FLIGHT {
            return Err(format!("--in-flight must be 1..={MAX_IN_FLIGHT}"));
        }
        if o.mix.iter().all(|w| *w == 0) {
            return Err("--mix: at least one weight must be positive".into());
        }
        if o.scrape_hashes == 0 || o.scrape_hashes > MAX_SCRAPE_HASHES {
            return Err(format!("--scrape-hashes must be 1..={MAX_SCRAPE_HASHES}"));
        }
        if o.seeder_percent > 100 {
            return Err("--seeder-percent must be 0..=100".into());
        }
        if o.timeout.is_zero() {
            return Err("--timeout-ms must be positive".into());
        }
        let last = u32::from(o.first_ip).checked_add(o.sockets as u32 - 1);
        if last.is_none_or(|l| Ipv4Addr::from(l).octets()[0] != o.first_ip.octets()[0]) {
            return Err("--first-ip leaves no room for --sockets addresses".into());
        }
        Ok(Some(o))
    }

    /// The address of socket `s`.
    fn socket_ip(&self, s: usize) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.first_ip) + s as u32)
    }
}

/// The request stream's PRNG, fixed by `--seed`.
fn rng(seed: u64) -> XorShift64Star {
    XorShift64Star::from_state(splitmix64(seed) | 1)
}

/// The info-hash of torrent `t`.
fn info_hash(t: u64) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[..8].copy_from_slice(&splitmix64(t).to_be_bytes());
    h[8..16].copy_from_slice(&splitmix64(t ^ 0x5555_5555).to_be_bytes());
    h[16..].copy_from_slice(&(t as u32).to_be_bytes());
    h
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

/// Counts and latencies of one run.
#[derive(Debug, Default)]
struct Report {
    secs: f64,
    sent: u64,
    connects: u64,
    announces: u64,
    scrapes: u64,
    errors: u64,
    lost: u64,
    /// Replies that matched no outstanding request (late after a timeout, or malformed).
    stray: u64,
    peers_returned: u64,
    latencies_us: Vec<u32>,
    client_cpu_s: Option<f64>,
}

impl Report {
    fn responses(&self) -> u64 {
        self.connects + self.announces + self.scrapes
    }

    fn rps(&self) -> f64 {
        self.responses() as f64 / self.secs.max(1e-9)
    }

    /// The `q`-quantile (0..=1) of the sorted latencies, µs.
    fn quantile_us(&self, q: f64) -> u32 {
        if self.latencies_us.is_empty() {
            return 0;
        }
        let i = ((self.latencies_us.len() - 1) as f64 * q).round() as usize;
        self.latencies_us[i]
    }

    fn peers_per_announce(&self) -> f64 {
        self.peers_returned as f64 / (self.announces.max(1)) as f64
    }

    fn result_line(&self) -> String {
        let mut s = String::from("RESULT");
        let _ = write!(
            s,
            " secs={:.3} sent={} responses={} rps={:.1} connects={} announces={} scrapes={} \
             errors={} lost={} stray={} p50_us={} p90_us={} p99_us={} p999_us={} max_us={} \
             peers_per_announce={:.2}",
            self.secs,
            self.sent,
            self.responses(),
            self.rps(),
            self.connects,
            self.announces,
            self.scrapes,
            self.errors,
            self.lost,
            self.stray,
            self.quantile_us(0.50),
            self.quantile_us(0.90),
            self.quantile_us(0.99),
            self.quantile_us(0.999),
            self.latencies_us.last().copied().unwrap_or(0),
            self.peers_per_announce(),
        );
        if let Some(cpu) = self.client_cpu_s {
            let _ = write!(s, " client_cpu_s={cpu:.3}");
        }
        s
    }

    fn human(&self, o: &Options) -> String {
        format!(
            "udp_tracker_load: {server}, {secs:.1} s, {k} in flight on {s} sockets, \
             {n} peers over {m} torrents, mix c:a:s {c}:{a}:{sc}\n\
             \x20 responses {resp} ({rps:.0}/s): connect {conn}, announce {ann} \
             ({ppa:.1} peers each), scrape {scr}; errors {err}, lost {lost}, stray {stray}\n\
             \x20 latency us: p50 {p50} p90 {p90} p99 {p99} p99.9 {p999} max {max}\n\
             \x20 generator CPU-s {cpu}\n",
            server = o.server,
            secs = self.secs,
            k = o.in_flight,
            s = o.sockets,
            n = o.peers,
            m = o.torrents,
            c = o.mix[0],
            a = o.mix[1],
            sc = o.mix[2],
            resp = self.responses(),
            rps = self.rps(),
            conn = self.connects,
            ann = self.announces,
            ppa = self.peers_per_announce(),
            scr = self.scrapes,
            err = self.errors,
            lost = self.lost,
            stray = self.stray,
            p50 = self.quantile_us(0.50),
            p90 = self.quantile_us(0.90),
            p99 = self.quantile_us(0.99),
            p999 = self.quantile_us(0.999),
            max = self.latencies_us.last().copied().unwrap_or(0),
            cpu = self
                .client_cpu_s
                .map_or_else(|| "unknown".to_string(), |c| format!("{c:.2}")),
        )
    }
}

/// The generator's state: sockets, their connection IDs, slots, and the request stream.
struct Load<'a> {
    o: &'a Options,
    sockets: Vec<UdpSocket>,
    conn_ids: Vec<Option<u64>>,
    slots: Vec<Slot>,
    /// Slots with nothing outstanding.
    free: Vec<usize>,
    rng: XorShift64Star,
    tx: Vec<u8>,
    report: Report,
    mix_total: u64,
    /// `--fill`: the next `k` of each socket (its peer `k * sockets + socket` announces next).
    fill_next: Vec<u64>,
}

impl<'a> Load<'a> {
    fn new(o: &'a Options) -> Result<Self, String> {
        let mut sockets = Vec::with_capacity(o.sockets);
        for s in 0..o.sockets {
            let ip = o.socket_ip(s);
            let socket = UdpSocket::bind((ip, 0)).map_err(|e| format!("bind {ip}:0: {e}"))?;
            socket
                .connect(o.server)
                .map_err(|e| format!("connect to {}: {e}", o.server))?;
            socket
                .set_nonblocking(true)
                .map_err(|e| format!("set_nonblocking: {e}"))?;
            sockets.push(socket);
        }
        let slots = vec![
            Slot {
                seq: 0,
                pending: None,
            };
            o.in_flight
        ];
        Ok(Self {
            o,
            sockets,
            conn_ids: vec![None; o.sockets],
            slots,
            free: (0..o.in_flight).rev().collect(),
            rng: rng(o.seed),
            tx: Vec::with_capacity(SCRAPE_REQUEST_HEADER_LEN + 20 * MAX_SCRAPE_HASHES),
            report: Report {
                latencies_us: Vec::with_capacity(1 << 20),
                ..Report::default()
            },
            mix_total: o.mix.iter().map(|w| u64::from(*w)).sum(),
            fill_next: vec![0; o.sockets],
        })
    }

    /// The kind of the next request on `socket`; `None` once a `--fill` socket has announced
    /// all its peers.
    fn pick_kind(&mut self, socket: usize) -> Option<Kind> {
        if self.conn_ids[socket].is_none() {
            return Some(Kind::Connect);
        }
        if self.o.fill {
            return (!self.fill_done(socket)).then_some(Kind::Announce);
        }
        let r = self.rng.below(self.mix_total);
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
        (self.o.peers - socket as u64).div_ceil(self.o.sockets as u64)
    }

    fn fill_done(&self, socket: usize) -> bool {
        self.fill_next[socket] >= self.peers_of(socket)
    }

    /// `--fill`: every peer announced and nothing outstanding.
    fn filled(&self) -> bool {
        (0..self.o.sockets).all(|s| self.fill_done(s))
            && self.slots.iter().all(|s| s.pending.is_none())
    }

    /// Writes the request for `slot` into `self.tx`.
    fn build(&mut self, kind: Kind, socket: usize, txid: u32) {
        let o = self.o;
        self.tx.clear();
        let conn_id = self.conn_ids[socket].unwrap_or(PROTOCOL_ID);
        match kind {
            Kind::Connect => {
                self.tx.extend_from_slice(&PROTOCOL_ID.to_be_bytes());
                self.tx.extend_from_slice(&ACTION_CONNECT.to_be_bytes());
                self.tx.extend_from_slice(&txid.to_be_bytes());
                debug_assert_eq!(self.tx.len(), CONNECT_REQUEST_LEN);
            }
            Kind::Announce => {
                // A peer of this socket, i = k * sockets + socket: the next one with --fill,
                // else a random one.
                let k = if o.fill {
                    let k = self.fill_next[socket];
                    self.fill_next[socket] += 1;
                    k
                } else {
                    self.rng.below(self.peers_of(socket))
                };
                let peer = k * o.sockets as u64 + socket as u64;
                let h = splitmix64(peer ^ 0xA5A5_A5A5_A5A5);
                let torrent = h % o.torrents;
                let seeder = (h >> 32) % 100 < o.seeder_percent;
                let port = (FIRST_PEER_PORT as u64 + k) as u16;
                self.tx.extend_from_slice(&conn_id.to_be_bytes());
                self.tx.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
                self.tx.extend_from_slice(&txid.to_be_bytes());
                self.tx.extend_from_slice(&info_hash(torrent));
                let mut peer_id = [0u8; 20];
                peer_id[..8].copy_from_slice(b"-UL0001-");
                peer_id[8..16].copy_from_slice(&peer.to_be_bytes());
                self.tx.extend_from_slice(&peer_id);
                self.tx.extend_from_slice(&0u64.to_be_bytes()); // downloaded
                let left: u64 = if seeder { 0 } else { 1 << 20 };
                self.tx.extend_from_slice(&left.to_be_bytes());
                self.tx.extend_from_slice(&0u64.to_be_bytes()); // uploaded
                self.tx.extend_from_slice(&0u32.to_be_bytes()); // event: none
                self.tx.extend_from_slice(&0u32.to_be_bytes()); // IP: the sender's
                self.tx.extend_from_slice(&(peer as u32).to_be_bytes()); // key
                self.tx.extend_from_slice(&o.numwant.to_be_bytes());
                self.tx.extend_from_slice(&port.to_be_bytes());
                debug_assert_eq!(self.tx.len(), ANNOUNCE_REQUEST_LEN);
            }
            Kind::Scrape => {
                self.tx.extend_from_slice(&conn_id.to_be_bytes());
                self.tx.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
                self.tx.extend_from_slice(&txid.to_be_bytes());
                for _ in 0..o.scrape_hashes {
                    let t = self.rng.below(o.torrents);
                    self.tx.extend_from_slice(&info_hash(t));
                }
            }
        }
    }

    /// Sends a request from every free slot; stops early when a socket's buffer is full.
    fn refill(&mut self, now: Instant) {
        // Slots of `--fill` sockets that are done stay idle (off the free list).
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
                // A full socket buffer (EAGAIN, ENOBUFS), or ECONNREFUSED from an earlier ICMP
                // port unreachable (the server is not there): try again on the next turn.
                Err(_) => {
                    if self.o.fill && kind == Kind::Announce {
                        self.fill_next[socket] -= 1; // that peer has not announced yet
                    }
                    self.free.push(slot);
                    return;
                }
            }
        }
    }

    /// Reads every datagram waiting on socket `s` (at most [`MAX_RECV_PER_SOCKET_TURN`]).
    fn drain(&mut self, s: usize, rx: &mut [u8], now: Instant) -> usize {
        let mut n = 0;
        while n < MAX_RECV_PER_SOCKET_TURN {
            let len = match self.sockets[s].recv(rx) {
                Ok(len) => len,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // ICMP errors (server not listening) surface here; requests time out.
                Err(_) => break,
            };
            n += 1;
            self.on_reply(s, &rx[..len], now);
        }
        n
    }

    fn on_reply(&mut self, s: usize, d: &[u8], now: Instant) {
        let (Some(action), Some(txid)) = (be_u32(d, 0), be_u32(d, 4)) else {
            self.report.stray += 1;
            return;
        };
        let slot = (txid & 0xFFFF) as usize;
        let seq = (txid >> 16) as u16;
        let Some(Slot {
            seq: want_seq,
            pending: Some((kind, sent)),
        }) = self.slots.get(slot).copied()
        else {
            self.report.stray += 1;
            return;
        };
        if want_seq != seq || slot % self.o.sockets != s {
            self.report.stray += 1;
            return;
        }
        let ok = match (action, kind) {
            (ACTION_CONNECT, Kind::Connect) if d.len() >= CONNECT_RESPONSE_LEN => {
                self.conn_ids[s] = be_u64(d, 8);
                self.report.connects += 1;
                true
            }
            (ACTION_ANNOUNCE, Kind::Announce) if d.len() >= ANNOUNCE_RESPONSE_HEADER_LEN => {
                self.report.announces += 1;
                self.report.peers_returned +=
                    ((d.len() - ANNOUNCE_RESPONSE_HEADER_LEN) / COMPACT_PEER_V4_LEN) as u64;
                true
            }
            (ACTION_SCRAPE, Kind::Scrape) if d.len() >= 8 + SCRAPE_ENTRY_LEN => {
                self.report.scrapes += 1;
                true
            }
            (ACTION_ERROR, _) => {
                self.report.errors += 1;
                // A refused connection ID: fetch a new one.
                self.conn_ids[s] = None;
                false
            }
            _ => {
                self.report.stray += 1;
                return;
            }
        };
        if ok && self.report.latencies_us.len() < MAX_LATENCY_SAMPLES {
            let us = now.duration_since(sent).as_micros();
            self.report
                .latencies_us
                .push(u32::try_from(us).unwrap_or(u32::MAX));
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
                self.report.lost += 1;
            }
        }
    }
}

fn be_u32(d: &[u8], at: usize) -> Option<u32> {
    d.get(at..at + 4)
        .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
}

fn be_u64(d: &[u8], at: usize) -> Option<u64> {
    d.get(at..at + 8)
        .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
}

/// utime + stime of this process, seconds (`/proc/self/stat`, fields 14 and 15).
fn own_cpu_secs() -> Option<f64> {
    let ticks = cpu_ticks("self").ok()?;
    // CLK_TCK is 100 on every Linux this runs on (USER_HZ).
    Some(ticks as f64 / 100.0)
}

fn run(o: &Options) -> Result<Report, String> {
    let mut load = Load::new(o)?;
    let mut rx = vec![0u8; MAX_DATAGRAM_LEN];
    let cpu_start = own_cpu_secs();
    let start = Instant::now();
    let end = start + o.duration;
    let mut last_scan = start;
    let mut now = start;
    while now < end && !(o.fill && load.filled()) {
        load.refill(now);
        for s in 0..o.sockets {
            load.drain(s, &mut rx, now);
            now = Instant::now();
        }
        if now.duration_since(last_scan) >= TIMEOUT_SCAN_INTERVAL {
            load.expire(now);
            last_scan = now;
        }
    }
    let elapsed = start.elapsed();
    load.report.secs = elapsed.as_secs_f64();
    load.report.client_cpu_s = own_cpu_secs()
        .zip(cpu_start)
        .map(|(end, start)| end - start);
    // Requests still outstanding at the end are neither answered nor lost within the run.
    let mut report = load.report;
    report.latencies_us.sort_unstable();
    if report.responses() == 0 {
        return Err(format!(
            "no response from {} in {:.1} s ({} requests sent, {} errors)",
            o.server, report.secs, report.sent, report.errors
        ));
    }
    Ok(report)
}
