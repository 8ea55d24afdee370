//! The event loop: one thread runs `mio::Poll` over the listeners, every connection, the disk
//! pool's waker and the signal pipe.
//!
//! Connections live in a slab; a connection's token is its slab key and a generation number
//! guards against stale events and late disk results for a key already reused. Timeouts come from
//! a heap of `(deadline, key, generation)` checked against the connection's own deadlines, so a
//! connection has at most one timer entry and nothing sleeps. Nothing here blocks: disk reads go
//! to [`DiskPool`], everything else is non-blocking socket I/O.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token, Waker};
use seednode_storage::Storage;
use seednode_tracker::Tracker;
use seednode_tracker::access::{AccessList, AccessMode};
use seednode_wire::limits::MAX_BLOCK_LEN;
use seednode_wire::mse::{self, MseResponder, MseStep, Rc4};
use seednode_wire::peer::{self, HANDSHAKE_LEN, Handshake, Message, extension, hashes, pex};
use seednode_wire::{InfoHash, PeerId};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;
use tracing::{debug, info, warn};

use crate::choker::Choker;

mod announcer;
pub(crate) mod dht;
use crate::disk::{DiskDone, DiskJob, DiskPool};
use crate::http;
use crate::limits::{
    HANDSHAKE_TIMEOUT, HTTP_TIMEOUT, KEEPALIVE_INTERVAL, MAX_ACCEPTS_PER_WAKE, MAX_READ_PER_WAKE,
    MAX_READS_IN_FLIGHT_PER_PEER, MAX_REQUEST_QUEUE, MAX_SNIFF_LEN, PEER_IDLE_TIMEOUT,
    READ_CHUNK_LEN, SEND_BUFFER_HIGH_WATER,
};
use crate::outq::OutQueue;
use crate::rate::TokenBucket;
use crate::session::{PeerSession, PieceMap, Step};
use crate::sniff::{Protocol, Sniff, sniff};

const WAKER: Token = Token(usize::MAX);
const SIGNALS: Token = Token(usize::MAX - 1);
const UDP_TRACKER: Token = Token(usize::MAX - 2);
const ANNOUNCE_UDP: Token = Token(usize::MAX - 3);
/// Listener `i` has token `LISTENER_BASE - i`.
const LISTENER_BASE: usize = usize::MAX - 4;
/// How long shutdown waits for `stopped` announces to external trackers.
const SHUTDOWN_ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(3);
/// Most datagrams handled per readiness event of the UDP socket before serving other sockets.
const MAX_DATAGRAMS_PER_WAKE: usize = 256;
/// While peers wait for upload tokens, the loop wakes this often to hand them out: short enough
/// that a limit is used fully, long enough to cost nothing measurable.
const THROTTLE_RECHECK_INTERVAL: Duration = Duration::from_millis(5);
/// How long to stop accepting after the process ran out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A torrent the node seeds.
pub(crate) struct SeededTorrent {
    /// Its info-hash.
    pub(crate) info_hash: InfoHash,
    /// Where its data lives.
    pub(crate) storage: Arc<Storage>,
    /// Piece length in bytes.
    pub(crate) piece_length: u32,
    /// Total payload bytes.
    pub(crate) total_length: u64,
    /// Which pieces verified (all of them for a torrent we created).
    pub(crate) have: Have,
    /// The raw info dictionary, for `ut_metadata` (BEP 9).
    pub(crate) info_bytes: Bytes,
    /// Checks a piece read for sending against its hash (SHA-1 for v1, the merkle piece layer
    /// for v2-only torrents).
    pub(crate) piece_check: PieceCheck,
    /// The BEP 52 side of a v2 or hybrid torrent: answers `hash request`s.
    pub(crate) v2: Option<Arc<V2Torrent>>,
    /// Other info-hashes peers may use for this torrent (a hybrid's truncated v2 hash).
    pub(crate) aliases: Vec<InfoHash>,
    /// BEP 27 private torrent: peers come only from its trackers (no PEX, no DHT).
    pub(crate) private: bool,
    /// Super-seeding (BEP 16): each peer is offered one piece at a time, the least common first.
    pub(crate) super_seed: bool,
}

/// Which pieces of a torrent verified: all of them (a seed, the common case, stored in no
/// bytes at all) or a bitfield in the BEP 3 bit order (high bit of the first byte is piece 0).
/// Build it with [`Have::from_flags`], which keeps the bitfield's length and spare bits right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Have {
    /// Every one of `count` pieces.
    All { count: u32 },
    /// A bitfield of `count` pieces, `count.div_ceil(8)` bytes, spare bits zero.
    Some { count: u32, bits: Box<[u8]> },
}

impl Have {
    /// From one flag per piece; at most `u32::MAX` pieces are counted.
    pub(crate) fn from_flags(flags: &[bool]) -> Self {
        let count = u32::try_from(flags.len()).unwrap_or(u32::MAX);
        if flags.iter().all(|h| *h) {
            return Self::All { count };
        }
        let mut bits = vec![0u8; flags.len().div_ceil(8)];
        for (i, _) in flags.iter().enumerate().filter(|(_, h)| **h) {
            bits[i / 8] |= 0x80 >> (i % 8);
        }
        Self::Some {
            count,
            bits: bits.into_boxed_slice(),
        }
    }

    /// Number of pieces of the torrent (had or not).
    pub(crate) const fn piece_count(&self) -> u32 {
        match self {
            Self::All { count } | Self::Some { count, .. } => *count,
        }
    }

    /// Whether piece `index` verified.
    pub(crate) fn get(&self, index: u32) -> bool {
        match self {
            Self::All { count } => index < *count,
            Self::Some { bits, .. } => usize::try_from(index / 8)
                .ok()
                .and_then(|i| bits.get(i))
                .is_some_and(|b| b & (0x80 >> (index % 8)) != 0),
        }
    }

    /// The `bitfield` payload (BEP 3): `piece_count().div_ceil(8)` bytes, spare bits zero.
    pub(crate) fn bitfield(&self) -> Bytes {
        match self {
            Self::All { count } => {
                let mut bits = vec![0xffu8; count.div_ceil(8) as usize];
                if let Some(last) = bits.last_mut() {
                    if count % 8 != 0 {
                        *last = 0xff << (8 - count % 8);
                    }
                }
                Bytes::from(bits)
            }
            Self::Some { bits, .. } => Bytes::copy_from_slice(bits),
        }
    }
}

impl PieceMap for SeededTorrent {
    fn piece_count(&self) -> u32 {
        self.have.piece_count()
    }

    fn piece_len(&self, index: u32) -> Option<u32> {
        if index >= self.piece_count() {
            return None;
        }
        let pl = u64::from(self.piece_length);
        let len = self
            .total_length
            .saturating_sub(u64::from(index) * pl)
            .min(pl);
        u32::try_from(len).ok()
    }

    fn have(&self, index: u32) -> bool {
        self.have.get(index)
    }

    fn info_bytes(&self) -> &Bytes {
        &self.info_bytes
    }

    fn is_private(&self) -> bool {
        self.private
    }
}

impl SeededTorrent {
    /// Whether every piece verified.
    pub(crate) const fn is_complete(&self) -> bool {
        matches!(self.have, Have::All { .. })
    }
}

/// How block payloads reach the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum DataPath {
    /// `sendfile(2)` from the page cache to the socket: no copy in user space.
    Sendfile,
    /// `pread` on a disk thread into a buffer, then `writev`: one copy each way.
    Copy,
}

/// Queues the `piece` message for `req`: its header in memory, its payload as file ranges (or
/// zeros for BEP 47 padding files).
fn queue_block_from_files(
    out: &mut OutQueue,
    storage: &Storage,
    req: peer::BlockRequest,
) -> Result<(), seednode_storage::StorageError> {
    // Collect first, so that a failure queues nothing.
    let mut ranges = Vec::with_capacity(2);
    for seg in storage.block_segments(req.piece, req.begin, req.length)? {
        let len = usize::try_from(seg.len).unwrap_or(usize::MAX);
        if seg.padding {
            ranges.push((None, seg.file_offset, len));
        } else {
            ranges.push((Some(storage.file(seg.file_index)?), seg.file_offset, len));
        }
    }
    out.push_bytes(Bytes::copy_from_slice(&peer::piece_header(
        req.piece, req.begin, req.length,
    )));
    for (file, offset, len) in ranges {
        match file {
            Some(f) => out.push_file(f, offset, len),
            None => out.push_bytes(Bytes::from(vec![0; len])),
        }
    }
    Ok(())
}

/// Checks that the bytes of piece `index` are the torrent's: true when they match.
pub(crate) type PieceCheck = Arc<dyn Fn(u32, &[u8]) -> bool + Send + Sync>;

/// A v2 or hybrid torrent's BEP 52 metadata, with its piece map built once.
pub(crate) struct V2Torrent {
    /// The v2 metainfo.
    pub(crate) meta: seednode_wire::metainfo_v2::MetainfoV2,
    /// Where each piece lies.
    pub(crate) map: seednode_wire::metainfo_v2::PieceMap,
}

/// Merkle trees kept per torrent for answering hash requests, at most; past it the oldest file's
/// tree is dropped and rebuilt when asked again.
const MAX_CACHED_MERKLE_TREES: usize = 64;

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListenerKind {
    /// The shared port: every protocol, told apart by [`sniff`].
    Shared,
    /// A port for HTTP only (`--http`).
    HttpOnly,
}

/// Reactor settings.
#[derive(Debug, Clone)]
pub(crate) struct ReactorConfig {
    /// Our peer ID (BEP 3).
    pub(crate) peer_id: PeerId,
    /// Port of the peer listener, listed by the built-in tracker.
    pub(crate) peer_port: u16,
    /// Address the built-in tracker lists for this node; `None` means "the local address the
    /// announce arrived on".
    pub(crate) announce_ip: Option<IpAddr>,
    /// Upload slots per torrent.
    pub(crate) upload_slots: usize,
    /// Upload slots over all torrents.
    pub(crate) global_upload_slots: usize,
    /// Node-wide upload limit, bytes per second (0 = unlimited).
    pub(crate) upload_rate_bytes_per_sec: u64,
    /// Per-torrent upload limit, bytes per second (0 = unlimited).
    pub(crate) torrent_upload_rate_bytes_per_sec: u64,
    /// Global connection cap.
    pub(crate) max_connections: usize,
    /// Per-IP connection cap.
    pub(crate) max_connections_per_ip: usize,
    /// Peers of one torrent at most; more are closed after their handshake.
    pub(crate) max_peers_per_torrent: usize,
    /// Disk reader threads.
    pub(crate) disk_threads: usize,
    /// How block payloads reach the socket.
    pub(crate) data_path: DataPath,
    /// Bytes of whole pieces the copy path keeps in memory.
    pub(crate) cache_bytes: usize,
    /// The tracker's access list file and how to read it; reloaded on SIGHUP.
    pub(crate) access_list: Option<(AccessMode, PathBuf)>,
    /// Seed for the PRNGs of the protocol machines (from the OS RNG).
    pub(crate) secret: [u8; 32],
}

struct TorrentSlot {
    torrent: SeededTorrent,
    /// Connections of this torrent past the handshake.
    peers: usize,
    /// Merkle trees of the files hash requests asked about (BEP 52), by file index.
    merkle_trees: Vec<(usize, seednode_wire::merkle::MerkleTree)>,
    /// Super-seeding only (empty otherwise): per piece, peers seen to have it plus times it
    /// was offered (super-seeding picks the lowest). Peers that leave are not subtracted: it
    /// only has to rank pieces.
    availability: Vec<u32>,
    upload_limit: TokenBucket,
    uploaded: u64,
}

enum ConnState {
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
struct StreamCipher {
    recv: Rc4,
    send: Rc4,
}

struct Conn {
    /// We connected out to this peer (so `remote` is where it accepts connections).
    dialed: bool,
    /// RC4 for the whole stream, when an MSE handshake chose it (then `sendfile` is not used).
    cipher: Option<Box<StreamCipher>>,
    stream: TcpStream,
    remote: SocketAddr,
    local: SocketAddr,
    generation: u64,
    accepted: Instant,
    rbuf: BytesMut,
    out: OutQueue,
    state: ConnState,
}

/// Counters the engine keeps for `/metrics` (bad input is counted, never logged per packet).
#[derive(Debug, Default)]
struct EngineStats {
    /// Peers disconnected for breaking the protocol.
    peers_dropped: u64,
}

/// Why a connection is being closed; logged at debug.
type CloseReason = String;

/// The event loop and everything it owns.
pub(crate) struct Reactor {
    poll: Poll,
    listeners: Vec<(TcpListener, ListenerKind)>,
    conns: Slab<Conn>,
    torrents: Vec<TorrentSlot>,
    by_hash: HashMap<InfoHash, usize>,
    /// `HASH('req2', info-hash)` of every torrent, how MSE initiators name them.
    mse_keys: HashMap<[u8; 20], InfoHash>,
    choker: Choker,
    /// The node's upload limit.
    upload_limit: TokenBucket,
    /// Peers with requests waiting for upload tokens, in arrival order.
    throttled: VecDeque<(usize, u64)>,
    tracker: Tracker,
    disk: DiskPool,
    signals: Signals,
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    per_ip: HashMap<IpAddr, usize>,
    /// Connections with bytes possibly left in the socket or the buffer (read budget used up, or
    /// reading was paused and resumed).
    backlog: Vec<(usize, u64)>,
    accept_paused_until: Option<Instant>,
    next_generation: u64,
    config: ReactorConfig,
    done: Vec<DiskDone>,
    /// The UDP tracker socket (BEP 15).
    udp: Option<UdpSocket>,
    /// Announcing to external trackers, when enabled.
    announcer: Option<announcer::Announcer>,
    /// The Mainline DHT node (BEP 5), when enabled; it shares the UDP socket.
    dht: Option<dht::DhtNode>,
    /// Whether the UDP socket also answers BEP 15 tracker requests.
    udp_tracker: bool,
    /// Peers dialled lately, so a tracker reply does not redial them.
    dialed: HashMap<SocketAddr, Instant>,
    /// When PEX messages (BEP 11) are next sent.
    next_pex: Instant,
    /// The UDP socket may hold more datagrams: drain it on the next turn.
    udp_pending: bool,
    /// Receive buffer for one datagram.
    udp_rx: Box<[u8]>,
    /// The reply being built.
    udp_tx: Vec<u8>,
    /// Replies waiting for one `sendmmsg`.
    udp_out: crate::udp_batch::UdpBatch,
    /// The address this node's peer port is reachable at, as the UDP tracker lists it.
    udp_self_addr: Option<SocketAddr>,
    /// Every socket read lands here first ([`READ_CHUNK_LEN`] bytes).
    scratch: Box<[u8]>,
    /// Counters for `/metrics`.
    stats: EngineStats,
}

impl Reactor {
    /// Builds the loop over already-bound listeners.
    ///
    /// # Errors
    /// Errors from creating the poll, the waker, the signal pipe or the disk threads.
    pub(crate) fn new(
        listeners: Vec<(std::net::TcpListener, ListenerKind)>,
        udp: Option<std::net::UdpSocket>,
        udp_tracker: bool,
        dht_node: Option<(seednode_dht::Dht, Option<PathBuf>)>,
        announce_socket: Option<std::net::UdpSocket>,
        tracker: Tracker,
        config: ReactorConfig,
    ) -> io::Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let disk = DiskPool::new(config.disk_threads, config.cache_bytes, Arc::clone(&waker))?;
        let mut signals = Signals::new([
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGHUP,
        ])?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        let udp_self_addr = config
            .announce_ip
            .or_else(|| {
                udp.as_ref()
                    .and_then(|u| u.local_addr().ok())
                    .map(|a| a.ip())
                    .filter(|ip| !ip.is_unspecified())
            })
            .map(|ip| SocketAddr::new(ip, config.peer_port));
        let udp = match udp {
            Some(u) => {
                u.set_nonblocking(true)?;
                let mut u = UdpSocket::from_std(u);
                poll.registry()
                    .register(&mut u, UDP_TRACKER, Interest::READABLE)?;
                Some(u)
            }
            None => None,
        };
        let announcer = match announce_socket {
            Some(socket) => {
                socket.set_nonblocking(true)?;
                let mut socket = UdpSocket::from_std(socket);
                poll.registry()
                    .register(&mut socket, ANNOUNCE_UDP, Interest::READABLE)?;
                let client = seednode_tracker::client::TrackerClient::new(
                    seednode_tracker::client::ClientConfig::new(config.peer_id, config.peer_port),
                    config.secret,
                );
                Some(announcer::Announcer::new(
                    client,
                    socket,
                    announcer::Resolver::new(Arc::clone(&waker))?,
                ))
            }
            None => None,
        };
        let mut mio_listeners = Vec::new();
        for (i, (l, kind)) in listeners.into_iter().enumerate() {
            l.set_nonblocking(true)?;
            let mut l = TcpListener::from_std(l);
            poll.registry()
                .register(&mut l, Token(LISTENER_BASE - i), Interest::READABLE)?;
            mio_listeners.push((l, kind));
        }
        Ok(Self {
            poll,
            listeners: mio_listeners,
            conns: Slab::new(),
            torrents: Vec::new(),
            by_hash: HashMap::new(),
            mse_keys: HashMap::new(),
            upload_limit: TokenBucket::new(Instant::now(), config.upload_rate_bytes_per_sec),
            throttled: VecDeque::new(),
            choker: Choker::new(
                Instant::now(),
                config.upload_slots,
                config.global_upload_slots,
            ),
            tracker,
            disk,
            signals,
            timers: BinaryHeap::new(),
            per_ip: HashMap::new(),
            backlog: Vec::new(),
            accept_paused_until: None,
            next_generation: 0,
            config,
            done: Vec::new(),
            udp_pending: udp.is_some(),
            announcer,
            dht: dht_node.map(|(dht, state_file)| dht::DhtNode {
                dht,
                state_file,
                next_announce: Instant::now(),
                announced_with_nodes: false,
            }),
            udp_tracker,
            dialed: HashMap::new(),
            next_pex: Instant::now() + Duration::from_secs(pex::PEX_INTERVAL_SECS),
            udp,
            udp_rx: vec![0; seednode_tracker::limits::MAX_UDP_REQUEST_LEN].into_boxed_slice(),
            udp_tx: Vec::with_capacity(seednode_tracker::limits::MAX_UDP_REPLY_LEN),
            udp_out: crate::udp_batch::UdpBatch::default(),
            udp_self_addr,
            scratch: vec![0; READ_CHUNK_LEN].into_boxed_slice(),
            stats: EngineStats::default(),
        })
    }

    /// Adds a torrent to seed and registers it with the built-in tracker.
    pub(crate) fn add_torrent(&mut self, torrent: SeededTorrent) {
        self.tracker.host(torrent.info_hash);
        self.by_hash.insert(torrent.info_hash, self.torrents.len());
        self.mse_keys
            .insert(mse::req2_hash(&torrent.info_hash), torrent.info_hash);
        for alias in &torrent.aliases {
            self.by_hash.insert(*alias, self.torrents.len());
            self.mse_keys.insert(mse::req2_hash(alias), *alias);
            self.tracker.host(*alias);
        }
        self.torrents.push(TorrentSlot {
            merkle_trees: Vec::new(),
            peers: 0,
            availability: if torrent.super_seed {
                vec![0; torrent.piece_count() as usize]
            } else {
                Vec::new()
            },
            torrent,
            upload_limit: TokenBucket::new(
                Instant::now(),
                self.config.torrent_upload_rate_bytes_per_sec,
            ),
            uploaded: 0,
        });
    }

    /// Runs until SIGINT or SIGTERM, then closes every connection and returns.
    ///
    /// # Errors
    /// A failure of `poll` itself.
    pub(crate) fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut last_expire = Instant::now();
        loop {
            let now = Instant::now();
            let timeout = if self.backlog.is_empty() && !self.udp_pending {
                let next_timer = self.timers.peek().map(|Reverse((t, _, _))| *t);
                let mut next = next_timer.map_or(self.choker.poll_timeout(), |t| {
                    t.min(self.choker.poll_timeout())
                });
                if let Some(t) = self
                    .announcer
                    .as_ref()
                    .and_then(|a| a.client.poll_timeout())
                {
                    next = next.min(t);
                }
                if let Some(node) = &self.dht {
                    next = node
                        .dht
                        .poll_timeout()
                        .map_or(next, |t| next.min(t))
                        .min(node.next_announce);
                }
                next.saturating_duration_since(now)
                    .min(Duration::from_secs(1))
            } else {
                Duration::ZERO
            };
            let timeout = match self.accept_paused_until {
                Some(t) => timeout.min(t.saturating_duration_since(now)),
                None => timeout,
            };
            let timeout = if self.throttled.is_empty() {
                timeout
            } else {
                timeout.min(THROTTLE_RECHECK_INTERVAL)
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let now = Instant::now();
            for event in &events {
                match event.token() {
                    WAKER => {
                        self.on_disk_done();
                        self.on_resolved(now);
                    }
                    ANNOUNCE_UDP => self.drain_announcer_udp(now),
                    SIGNALS => {
                        let pending: Vec<i32> = self.signals.pending().collect();
                        if pending.contains(&signal_hook::consts::SIGHUP) {
                            self.reload_access_list();
                        }
                        if pending.iter().any(|s| *s != signal_hook::consts::SIGHUP) {
                            info!("signal received, shutting down");
                            self.shutdown();
                            return Ok(());
                        }
                    }
                    UDP_TRACKER => self.udp_pending = true,
                    Token(t) if t > LISTENER_BASE - self.listeners.len() && t <= LISTENER_BASE => {
                        self.accept(now, LISTENER_BASE - t);
                    }
                    Token(key) => {
                        let Some(generation) = self.conns.get(key).map(|c| c.generation) else {
                            continue; // stale event for a closed connection
                        };
                        if event.is_writable() {
                            self.flush(key);
                        }
                        if (event.is_readable() || event.is_read_closed() || event.is_error())
                            && self
                                .conns
                                .get(key)
                                .is_some_and(|c| c.generation == generation)
                        {
                            self.on_readable(key, now);
                        }
                    }
                }
            }
            self.run_backlog(now);
            if self.udp_pending {
                self.udp_pending = self.drain_udp(now);
            }
            if let Some(t) = self.accept_paused_until
                && now >= t
            {
                self.accept_paused_until = None;
                for i in 0..self.listeners.len() {
                    self.accept(now, i);
                }
            }
            self.run_timers(now);
            self.drive_announcer(now);
            self.drive_dht(now);
            if now >= self.next_pex {
                self.send_pex();
                self.next_pex = now + Duration::from_secs(pex::PEX_INTERVAL_SECS);
            }
            for (key, generation) in std::mem::take(&mut self.throttled) {
                if self
                    .conns
                    .get(key)
                    .is_some_and(|c| c.generation == generation)
                {
                    self.pump(key);
                }
            }
            let decisions = self.choker.tick(now);
            self.apply_choking(&decisions);
            if now.duration_since(last_expire) >= seednode_tracker::limits::EXPIRE_INTERVAL {
                self.tracker.expire(now);
                last_expire = now;
            }
        }
    }

    /// Counters in the Prometheus text format (`GET /metrics`).
    fn metrics(&self) -> String {
        use std::fmt::Write as _;
        let peers = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c.state, ConnState::Peer { .. }))
            .count();
        let uploaded: u64 = self.torrents.iter().map(|t| t.uploaded).sum();
        let t = self.tracker.stats();
        let mut out = String::new();
        let mut put = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP seednode_{name} {help}\n# TYPE seednode_{name} {kind}\nseednode_{name} {value}"
            );
        };
        put(
            "uploaded_bytes_total",
            "counter",
            "Block payload bytes sent to peers.",
            uploaded,
        );
        put(
            "torrents",
            "gauge",
            "Torrents seeded.",
            self.torrents.len() as u64,
        );
        put(
            "connections",
            "gauge",
            "Open connections of every kind.",
            self.conns.len() as u64,
        );
        put("peers", "gauge", "Peers past the handshake.", peers as u64);
        put(
            "peers_dropped_total",
            "counter",
            "Peers disconnected for breaking the protocol.",
            self.stats.peers_dropped,
        );
        put(
            "tracker_http_announces_total",
            "counter",
            "HTTP announces answered.",
            t.http_announces,
        );
        put(
            "tracker_udp_announces_total",
            "counter",
            "UDP announces answered.",
            t.udp_announces,
        );
        put(
            "tracker_udp_dropped_total",
            "counter",
            "UDP tracker datagrams dropped (malformed or bad connection id).",
            t.udp_dropped_malformed + t.udp_dropped_connection_id,
        );
        put(
            "tracker_torrents",
            "gauge",
            "Swarms the tracker holds (hosted ones included).",
            self.tracker.torrent_count() as u64,
        );
        put(
            "tracker_peers",
            "gauge",
            "Peers the tracker stores over all swarms.",
            self.tracker.peer_count() as u64,
        );
        if let Some(node) = &self.dht {
            put(
                "dht_nodes",
                "gauge",
                "Good nodes in the DHT routing table.",
                node.dht.good_nodes() as u64,
            );
        }
        out
    }

    /// Loads the access list file (at start and on SIGHUP). A file that fails to load leaves the
    /// list in force unchanged.
    pub(crate) fn reload_access_list(&mut self) {
        let Some((mode, path)) = &self.config.access_list else {
            return;
        };
        let loaded = std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|text| AccessList::parse(*mode, &text).map_err(|e| e.to_string()));
        match loaded {
            Ok(list) => {
                info!(path = %path.display(), "access list loaded");
                self.tracker.set_access_list(Some(list));
            }
            Err(e) => {
                warn!(path = %path.display(), error = %e, "access list not loaded; keeping the old one")
            }
        }
    }

    /// Answers UDP tracker datagrams (BEP 15) until the socket is empty or the per-wake budget is
    /// used; returns true when datagrams may remain.
    fn drain_udp(&mut self, now: Instant) -> bool {
        let me = self.udp_self_addr;
        let mut more = true;
        for _ in 0..MAX_DATAGRAMS_PER_WAKE {
            let Some(socket) = &self.udp else {
                return false;
            };
            match socket.recv_from(&mut self.udp_rx) {
                // KRPC messages are bencoded dictionaries (BEP 5); no BEP 15 packet starts so.
                Ok((n, src)) if n > 0 && self.udp_rx[0] == b'd' => {
                    let rx = std::mem::take(&mut self.udp_rx);
                    self.dht_datagram(now, src, &rx[..n]);
                    self.udp_rx = rx;
                    self.flush_dht(now);
                }
                Ok((_, _)) if !self.udp_tracker => {}
                Ok((n, src)) => {
                    if self.tracker.handle_datagram(
                        now,
                        src,
                        me,
                        &self.udp_rx[..n],
                        &mut self.udp_tx,
                    ) {
                        self.udp_out.push(src, &self.udp_tx);
                        if self.udp_out.is_full() {
                            let _ = self.udp_out.flush(socket);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    more = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // ICMP errors from earlier sends surface here; they concern other datagrams.
                Err(_) => {}
            }
        }
        if let Some(socket) = &self.udp {
            // Replies that do not fit the socket buffer are dropped: clients retransmit (BEP 15).
            let _ = self.udp_out.flush(socket);
        }
        more
    }

    /// Answers a BEP 52 `hash request` with `hashes` (and their proof), or `hash reject` when the
    /// torrent has no such file or tree, the request is malformed, or the data needed is
    /// unreadable.
    fn answer_hash_request(&mut self, key: usize, torrent: usize, req: &hashes::HashRequest) {
        let reply = self
            .hash_answer(torrent, req)
            .unwrap_or(hashes::HashMessage::Reject(*req));
        debug!(
            ?req,
            answered = matches!(reply, hashes::HashMessage::Hashes { .. }),
            "hash request"
        );
        let mut b = BytesMut::new();
        reply.encode(&mut b);
        self.queue(key, b.freeze());
    }

    fn hash_answer(
        &mut self,
        torrent: usize,
        req: &hashes::HashRequest,
    ) -> Option<hashes::HashMessage> {
        let slot = &mut self.torrents[torrent];
        let v2 = Arc::clone(slot.torrent.v2.as_ref()?);
        let file = v2.meta.file_by_root(&req.pieces_root)?;
        if !slot.merkle_trees.iter().any(|(f, _)| *f == file) {
            if slot.merkle_trees.len() >= MAX_CACHED_MERKLE_TREES {
                slot.merkle_trees.remove(0);
            }
            slot.merkle_trees
                .push((file, v2.meta.merkle_tree(file).ok()?));
        }
        let (_, tree) = slot.merkle_trees.iter().find(|(f, _)| *f == file)?;
        // Block hashes come from disk only for requests below the piece layer (at most one
        // piece of data, checked against the layer before use).
        let leaves = match tree.leaves_needed(req).ok()? {
            None => None,
            Some(span) => Some(
                seednode_storage::block_hashes_v2(
                    &slot.torrent.storage,
                    &v2.meta.info,
                    &v2.map,
                    file,
                    span,
                )
                .ok()?,
            ),
        };
        let list = tree.hashes(req, leaves.as_deref()).ok()?;
        Some(hashes::HashMessage::hashes(*req, &list))
    }

    /// Super-seeding (BEP 16): offers peer `key` the piece we have that is least available and
    /// not yet offered to it.
    fn super_offer(&mut self, key: usize, torrent: usize) {
        let slot = &mut self.torrents[torrent];
        let Some(ConnState::Peer { session, .. }) = self.conns.get_mut(key).map(|c| &mut c.state)
        else {
            return;
        };
        let pick = (0..slot.torrent.piece_count())
            .filter(|&p| slot.torrent.have(p) && !session.was_offered(p))
            .min_by_key(|&p| slot.availability.get(p as usize).copied().unwrap_or(0));
        if let Some(piece) = pick {
            if let Some(n) = slot.availability.get_mut(piece as usize) {
                *n = n.saturating_add(1);
            }
            session.offer(piece);
            self.drain_outbox(key);
        }
    }

    /// Tells every peer that speaks `ut_pex` (BEP 11) which peers of its swarm joined and left
    /// since the last message: at most 50 of each, once a minute, never for private torrents.
    fn send_pex(&mut self) {
        // Each torrent's connected peers, by the address they accept connections on.
        let mut swarms: HashMap<usize, Vec<SocketAddr>> = HashMap::new();
        for (_, conn) in &self.conns {
            if let ConnState::Peer { torrent, session } = &conn.state
                && let Some(addr) = listen_addr(conn, session)
            {
                swarms.entry(*torrent).or_default().push(addr);
            }
        }
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            let own = match &conn.state {
                ConnState::Peer { session, .. } => listen_addr(conn, session),
                _ => continue,
            };
            let ConnState::Peer { torrent, session } = &mut conn.state else {
                continue;
            };
            let Some(id) = session.peer_ut_pex else {
                continue;
            };
            let swarm = swarms.get(torrent).map(Vec::as_slice).unwrap_or_default();
            let current: std::collections::HashSet<SocketAddr> =
                swarm.iter().copied().filter(|a| Some(*a) != own).collect();
            let added: Vec<(SocketAddr, u8)> = current
                .difference(&session.pex_sent)
                .take(pex::MAX_PEX_PEERS_PER_MESSAGE)
                .map(|a| (*a, 0))
                .collect();
            let dropped: Vec<SocketAddr> = session
                .pex_sent
                .difference(&current)
                .take(pex::MAX_PEX_PEERS_PER_MESSAGE)
                .copied()
                .collect();
            if added.is_empty() && dropped.is_empty() {
                continue;
            }
            for (a, _) in &added {
                session.pex_sent.insert(*a);
            }
            for a in &dropped {
                session.pex_sent.remove(a);
            }
            let payload = pex::PexMessage { added, dropped }.encode();
            self.queue(
                key,
                encode(&Message::Extended {
                    id,
                    payload: payload.into(),
                }),
            );
            self.flush(key);
        }
    }

    /// Sends `stopped` to the external trackers and waits (at most
    /// [`SHUTDOWN_ANNOUNCE_TIMEOUT`]) for their answers.
    fn stop_announcing(&mut self) {
        let start = Instant::now();
        let Some(a) = &mut self.announcer else { return };
        a.client.shutdown(start);
        self.flush_announcer(start);
        let mut events = Events::with_capacity(64);
        while self.announcer.as_ref().is_some_and(|a| !a.client.is_idle())
            && start.elapsed() < SHUTDOWN_ANNOUNCE_TIMEOUT
        {
            if self
                .poll
                .poll(&mut events, Some(Duration::from_millis(50)))
                .is_err()
            {
                break;
            }
            let now = Instant::now();
            for event in &events {
                match event.token() {
                    WAKER => self.on_resolved(now),
                    ANNOUNCE_UDP => self.drain_announcer_udp(now),
                    Token(key) if self.conns.contains(key) => {
                        if event.is_writable() {
                            self.flush(key);
                        }
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.on_readable(key, now);
                        }
                    }
                    _ => {}
                }
            }
            self.drive_announcer(now);
        }
    }

    fn shutdown(&mut self) {
        self.save_dht();
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.close(key, "shutdown".into());
        }
        self.stop_announcing();
        let total: u64 = self.torrents.iter().map(|t| t.uploaded).sum();
        info!(uploaded_bytes = total, "closed all connections");
    }

    fn accept(&mut self, now: Instant, index: usize) {
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

    fn admit(&mut self, now: Instant, stream: TcpStream, remote: SocketAddr, kind: ListenerKind) {
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
    fn insert_conn(
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

    /// Connects out to a peer of `torrent` (learnt from a tracker or the DHT), unless it was
    /// tried lately, is connected already, is this node, or a limit says no.
    pub(crate) fn dial_peer(&mut self, now: Instant, torrent: usize, addr: SocketAddr) {
        let addr = SocketAddr::new(canonical_ip(addr.ip()), addr.port());
        if addr.port() == 0 || addr.ip().is_unspecified() || addr.ip().is_multicast() {
            return;
        }
        let is_self = addr.port() == self.config.peer_port
            && (self.config.announce_ip == Some(addr.ip())
                || self.listeners.iter().any(|(l, _)| {
                    l.local_addr()
                        .is_ok_and(|a| a.ip() == addr.ip() || a.ip().is_unspecified())
                }));
        if is_self
            || self
                .dialed
                .get(&addr)
                .is_some_and(|t| now.duration_since(*t) < announcer::REDIAL_INTERVAL)
            || self.conns.iter().any(|(_, c)| c.remote == addr)
            || self.conns.len() >= self.config.max_connections
            || self.per_ip.get(&addr.ip()).copied().unwrap_or(0)
                >= self.config.max_connections_per_ip
        {
            return;
        }
        if self.dialed.len() >= announcer::MAX_DIAL_MEMORY {
            self.dialed
                .retain(|_, t| now.duration_since(*t) < announcer::REDIAL_INTERVAL);
            if self.dialed.len() >= announcer::MAX_DIAL_MEMORY {
                return;
            }
        }
        self.dialed.insert(addr, now);
        let Ok(stream) = TcpStream::connect(addr) else {
            return;
        };
        let info_hash = self.torrents[torrent].torrent.info_hash;
        let state = ConnState::Handshake {
            dialed: Some(torrent),
        };
        if let Some(key) = self.insert_conn(now, stream, addr, state) {
            debug!(peer = %addr, %info_hash, "dialling");
            let hs = handshake_bytes(
                info_hash,
                self.config.peer_id,
                self.dht.is_some(),
                self.torrents[torrent].torrent.v2.is_some(),
            );
            self.queue(key, hs);
        }
    }

    /// Announces `torrent` to the trackers of its metainfo (BEP 12 tiers).
    pub(crate) fn announce_to(&mut self, info_hash: InfoHash, tiers: &[Vec<String>]) {
        let now = Instant::now();
        let Some(a) = &mut self.announcer else { return };
        if let Err(e) = a.client.add_torrent(now, info_hash, tiers, 0) {
            debug!(%info_hash, error = %e, "not announced to external trackers");
        }
        self.flush_announcer(now);
    }

    fn close(&mut self, key: usize, why: CloseReason) {
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
    fn on_readable(&mut self, key: usize, now: Instant) {
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
    fn process(&mut self, key: usize, now: Instant) -> Result<(), CloseReason> {
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

    fn serve_http(&mut self, key: usize, now: Instant, req: &http::Request) -> Bytes {
        let head = req.method == "HEAD";
        if req.method != "GET" && !head {
            return http::error(405);
        }
        let Some(conn) = self.conns.get(key) else {
            return http::error(503);
        };
        match req.path.as_str() {
            "/scrape" => {
                let body = self.tracker.http_scrape(now, &req.query);
                http::response(200, "text/plain", &body, !head)
            }
            "/metrics" => {
                let body = self.metrics();
                http::response(200, "text/plain; version=0.0.4", body.as_bytes(), !head)
            }
            "/announce" => {
                let ip = self.config.announce_ip.unwrap_or_else(|| conn.local.ip());
                let me = SocketAddr::new(ip, self.config.peer_port);
                let body = self
                    .tracker
                    .http_announce(now, conn.remote, Some(me), &req.query);
                http::response(200, "text/plain", &body, !head)
            }
            _ => http::error(404),
        }
    }

    /// Applies the choker's decisions: each peer is choked or unchoked and told so.
    fn apply_choking(&mut self, decisions: &[crate::choker::Decision]) {
        for &(key, unchoke) in decisions {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            let ConnState::Peer { session, .. } = &mut conn.state else {
                continue;
            };
            if unchoke {
                session.unchoke();
            } else {
                session.choke();
            }
            self.drain_outbox(key);
            self.pump(key);
        }
    }

    /// Queues every message the peer session wants sent.
    fn drain_outbox(&mut self, key: usize) {
        while let Some(msg) = self.conns.get_mut(key).and_then(|c| match &mut c.state {
            ConnState::Peer { session, .. } => session.poll_send(),
            _ => None,
        }) {
            self.queue(key, encode(&msg));
        }
    }

    fn queue(&mut self, key: usize, bytes: Bytes) {
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

    /// Issues disk reads for queued requests while the send buffer has room, then writes.
    fn pump(&mut self, key: usize) {
        self.issue_reads(key);
        self.flush(key);
    }

    fn on_disk_done(&mut self) {
        let mut done = std::mem::take(&mut self.done);
        self.disk.drain(&mut done);
        for d in done.drain(..) {
            let Some(conn) = self.conns.get_mut(d.key) else {
                continue;
            };
            if conn.generation != d.generation {
                continue;
            }
            let ConnState::Peer { torrent, session } = &mut conn.state else {
                continue;
            };
            session.reads_in_flight = session.reads_in_flight.saturating_sub(1);
            match d.result {
                Ok((header, block)) if d.epoch == session.choke_epoch => {
                    session.uploaded += u64::from(d.req.length);
                    self.choker.record_upload(d.key, u64::from(d.req.length));
                    self.torrents[*torrent].uploaded += u64::from(d.req.length);
                    self.queue(d.key, header);
                    self.queue(d.key, block);
                    self.pump(d.key);
                }
                Ok(_) => {
                    // Choked since: the block is not sent (BEP 6 peers get a reject).
                    session.stale_read(d.req);
                    self.drain_outbox(d.key);
                    self.pump(d.key);
                }
                Err(e) => {
                    // A missing or short file is never served as zeros (SECURITY.md S5).
                    warn!(info_hash = %self.torrents[*torrent].torrent.info_hash, error = %e,
                          "disk read failed");
                    self.close(d.key, format!("disk read failed: {e}"));
                }
            }
        }
        self.done = done;
    }

    /// Writes queued bytes until the socket would block; closes `Closing` connections once empty.
    fn flush(&mut self, key: usize) {
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

    /// Hands queued block requests to the disk pool while the peer's send buffer, counting reads
    /// in flight, stays under [`SEND_BUFFER_HIGH_WATER`].
    fn issue_reads(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let mut failed = None;
        if let ConnState::Peer { torrent, session } = &mut conn.state {
            let now = Instant::now();
            let slot = &mut self.torrents[*torrent];
            let storage = &slot.torrent.storage;
            while session.reads_in_flight < MAX_READS_IN_FLIGHT_PER_PEER
                && conn.out.len() + session.reads_in_flight * (MAX_BLOCK_LEN as usize)
                    < SEND_BUFFER_HIGH_WATER
            {
                let Some(&req) = session.peek_request() else {
                    break;
                };
                // Upload limits are charged when the read is issued: what is read is sent.
                let len = u64::from(req.length);
                if !self.upload_limit.can_take(now, len) || !slot.upload_limit.can_take(now, len) {
                    if !self.throttled.contains(&(key, conn.generation)) {
                        self.throttled.push_back((key, conn.generation));
                    }
                    break;
                }
                self.upload_limit.take(now, len);
                slot.upload_limit.take(now, len);
                session.next_request();
                if self.config.data_path == DataPath::Sendfile && conn.cipher.is_none() {
                    // The block goes from the page cache to the socket (`sendfile`); only the
                    // 13-byte header is built in memory.
                    if let Err(e) = queue_block_from_files(&mut conn.out, storage, req) {
                        failed = Some(format!("block {req:?}: {e}"));
                        break;
                    }
                    session.uploaded += len;
                    session.last_send = now;
                    slot.uploaded += len;
                    self.choker.record_upload(key, len);
                    continue;
                }
                session.reads_in_flight += 1;
                self.disk.submit(DiskJob {
                    key,
                    generation: conn.generation,
                    epoch: session.choke_epoch,
                    torrent: *torrent,
                    storage: Arc::clone(storage),
                    piece_check: Arc::clone(&slot.torrent.piece_check),
                    req,
                });
            }
        }
        if let Some(why) = failed {
            // A missing or short file is never served as zeros (SECURITY.md S5).
            warn!(error = %why, "cannot serve block");
            self.close(key, why);
        }
    }

    fn run_backlog(&mut self, now: Instant) {
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

    fn run_timers(&mut self, now: Instant) {
        while let Some(Reverse((at, key, generation))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(conn) = self.conns.get(key) else {
                continue;
            };
            if conn.generation != generation {
                continue;
            }
            let next = match &conn.state {
                ConnState::Sniffing | ConnState::Mse(_) | ConnState::Handshake { .. } => {
                    self.close(key, "handshake timeout".into());
                    continue;
                }
                ConnState::Http | ConnState::Closing | ConnState::TrackerFetch { .. } => {
                    if now.duration_since(conn.accepted) >= HTTP_TIMEOUT {
                        self.close(key, "http timeout".into());
                        continue;
                    }
                    conn.accepted + HTTP_TIMEOUT
                }
                ConnState::Peer { session, .. } => {
                    let idle_at = session.last_recv + PEER_IDLE_TIMEOUT;
                    if now >= idle_at {
                        self.close(key, "idle timeout".into());
                        continue;
                    }
                    let keepalive_at = session.last_send + KEEPALIVE_INTERVAL;
                    if now >= keepalive_at {
                        self.queue(key, Bytes::from_static(&[0, 0, 0, 0]));
                        self.flush(key);
                        now + KEEPALIVE_INTERVAL
                    } else {
                        idle_at.min(keepalive_at)
                    }
                }
            };
            self.timers.push(Reverse((next, key, generation)));
        }
    }
}

/// Our BEP 3 handshake for `info_hash`, advertising BEP 10 and BEP 6.
fn handshake_bytes(info_hash: InfoHash, peer_id: PeerId, dht: bool, v2: bool) -> Bytes {
    let mut reserved = Handshake::reserved_bits(true, true, dht);
    if v2 {
        reserved[hashes::RESERVED_V2_BYTE] |= hashes::RESERVED_V2_MASK;
    }
    let hs = Handshake {
        reserved,
        info_hash,
        peer_id,
    };
    Bytes::copy_from_slice(&hs.encode())
}

/// The address a connected peer accepts connections on: the one we dialled, or its IP with the
/// port from its extension handshake; `None` when it never said.
fn listen_addr(conn: &Conn, session: &PeerSession) -> Option<SocketAddr> {
    if conn.dialed {
        return Some(conn.remote);
    }
    session
        .listen_port
        .map(|p| SocketAddr::new(canonical_ip(conn.remote.ip()), p))
}

/// A fresh MSE responder: a random private key and 0-511 bytes of random padding.
fn new_mse_responder() -> MseResponder {
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

/// One message, length prefix included.
fn encode(msg: &Message) -> Bytes {
    let mut b = BytesMut::new();
    msg.encode(&mut b);
    b.freeze()
}

/// Unwraps IPv4-mapped IPv6 so one host has one identity for per-IP limits.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn have_all_stores_no_bits_and_encodes_a_bep3_bitfield() {
        let have = Have::from_flags(&[true; 11]);
        assert_eq!(have, Have::All { count: 11 });
        assert!(have.get(0) && have.get(10) && !have.get(11));
        // Spare bits of the last byte are zero (BEP 3).
        assert_eq!(&have.bitfield()[..], &[0xff, 0xe0]);
        assert_eq!(&Have::from_flags(&[true; 16]).bitfield()[..], &[0xff, 0xff]);
        assert!(Have::from_flags(&[]).bitfield().is_empty());
    }

    #[test]
    fn have_some_keeps_a_bitfield() {
        let flags = [true, false, true, false, false, false, false, false, true];
        let have = Have::from_flags(&flags);
        assert_eq!(have.piece_count(), 9);
        for (i, f) in flags.iter().enumerate() {
            assert_eq!(have.get(i as u32), *f, "piece {i}");
        }
        assert!(!have.get(9) && !have.get(u32::MAX));
        assert_eq!(&have.bitfield()[..], &[0xa0, 0x80]);
    }
}
