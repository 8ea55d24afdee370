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
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, UdpSocket};
use mio::{Events, Interest, Poll, Token, Waker};
use seednode_tracker::Tracker;
use seednode_tracker::access::{AccessList, AccessMode};
use seednode_wire::peer::pex;
use seednode_wire::{InfoHash, PeerId};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;
use tracing::{debug, info, warn};

use crate::choker::Choker;
use crate::disk::{DiskDone, DiskPool};
use crate::limits::READ_CHUNK_LEN;
use crate::rate::TokenBucket;

mod announcer;
mod approve;
pub(crate) mod blossom;
pub(crate) mod catalog;
mod conn;
pub(crate) mod dht;
mod front;
pub(crate) mod https;
mod manage;
mod metrics;
mod nat_link;
mod peer;
mod summary;
mod timers;

pub(crate) use approve::device_json;
pub(crate) use manage::{IdleTable, IdleTorrent};
pub(crate) use summary::DEFAULT_SUMMARY_INTERVAL;
mod torrent;
mod udp;
mod upload;
mod upload_file;
mod utp;

use conn::Conn;
use metrics::EngineStats;
use torrent::TorrentSlot;
pub(crate) use torrent::{DataPath, Have, PieceCheck, SeededTorrent, V2Torrent};

const WAKER: Token = Token(usize::MAX);
const SIGNALS: Token = Token(usize::MAX - 1);
/// The shared UDP socket: BEP 15 tracker, DHT (BEP 5) and uTP (BEP 29).
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
pub(super) const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListenerKind {
    /// The shared port: every protocol, told apart by [`sniff`].
    Shared,
    /// A port for HTTP only (`--http`).
    HttpOnly,
    /// A port for raw uploads only (`--upload`): anything but an `UPLOAD_` request is closed.
    UploadOnly,
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
    /// Host names (besides IP literals and `localhost`) the API and status page answer to;
    /// others get 421 (DNS rebinding).
    pub(crate) allowed_hosts: Vec<String>,
    /// Where torrents added over the API keep their data (`seednode run`: `<data-dir>/data`);
    /// `None` refuses adds. A path given to the API is taken relative to it, never outside.
    pub(crate) content_root: Option<PathBuf>,
    /// How long an address stays locked out after too many failed authentications.
    pub(crate) lockout: Duration,
    /// Nostr public keys granted scopes (`[[nostr.pubkey]]`): NIP-98 on the API, Blossom
    /// uploads (`upload`) and deletes (`admin`).
    pub(crate) nostr_pubkeys: Vec<blossom::NostrGrant>,
}

/// The loop's side of webhook delivery.
pub(crate) struct Webhooks {
    /// Events waiting for the catalog worker.
    buffer: std::rc::Rc<std::cell::RefCell<crate::events::webhook::WebhookBuffer>>,
    /// The delivery thread.
    sender: crate::events::webhook::sender::WebhookSender,
    /// What the sender reports (rows given up on).
    notices: std::sync::mpsc::Receiver<crate::events::webhook::sender::WebhookNotice>,
}

/// The event loop and everything it owns.
pub(crate) struct Reactor {
    poll: Poll,
    listeners: Vec<(TcpListener, ListenerKind)>,
    conns: Slab<Conn>,
    torrents: Vec<TorrentSlot>,
    by_hash: HashMap<InfoHash, usize>,
    /// Catalog torrents that do not seed (paused, missing data, error), by swarm info-hash
    /// (`seednode run` only).
    idle: IdleTable,
    /// `HASH('req2', info-hash)` of every torrent, how MSE initiators name them.
    mse_keys: HashMap<[u8; 20], InfoHash>,
    /// The event bus (audit log, lockout; issue 12).
    events: crate::events::Bus,
    /// Addresses locked out after failed authentications (fed by the bus).
    lockout: std::rc::Rc<std::cell::RefCell<crate::events::lockout::Lockout>>,
    /// Webhook delivery (`seednode run` with the catalog).
    webhooks: Option<Webhooks>,
    /// The Nostr publisher and its notices (docs/nostr.md), when `[nostr] relays` is set.
    nostr: Option<(
        crate::nostr::publisher::Publisher,
        std::sync::mpsc::Receiver<crate::nostr::publisher::NostrNotice>,
    )>,
    /// Which API writes wait for a device's signature (`seednode run`; docs/approvals.md).
    approvals: Option<crate::events::approvals::Policy>,
    /// Leechers that announced to the built-in tracker, to dial back when due (due time,
    /// address, info-hash).
    dial_backs: VecDeque<(Instant, SocketAddr, InfoHash)>,
    /// The threads of `UPLOAD_FILE` uploads (and Blossom `PUT /upload`s).
    uploads: upload_file::UploadThreads,
    /// Blossom blobs by SHA-256: seeded single-file torrents whose file's SHA-256 the catalog
    /// records (one entry per seeded torrent at most).
    blobs: blossom::BlobIndex,
    /// Audit records waiting for the catalog worker (`seednode run` only).
    audit: Option<std::rc::Rc<std::cell::RefCell<crate::events::audit::AuditBuffer>>>,
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
    /// The uTP endpoint on the UDP socket (`seed` and `run`; `None` when off).
    utp: Option<Box<utp::UtpLink>>,
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
    /// Which learnt peers are dialled, and how fast.
    dial_policy: crate::dial::DialPolicy,
    /// The time of this loop turn, for helpers that stamp state (read once per turn).
    now: Instant,
    /// The tracker whose response is being handled, for the peers it reports.
    peer_source: Option<IpAddr>,
    /// Addresses refused for repeated misbehaviour.
    bans: crate::ban::BanList,
    /// The periodic summary line.
    summary: summary::Summary,
    /// Wakes the loop from other threads (disk pool, resolver, catalog worker).
    waker: Arc<Waker>,
    /// The catalog worker and what the loop keeps for it (`run` only; `None` for `seed`).
    catalog: Option<catalog::CatalogLink>,
    /// Bearer tokens of the catalog, checked in memory (`run` only).
    tokens: Option<crate::daemon::tokens::TokenTable>,
    /// The NAT port-mapping worker (`crate::nat`), when mapping is on.
    nat: Option<nat_link::NatLink>,
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
        let start = Instant::now();
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
                let mut client_config =
                    seednode_tracker::client::ClientConfig::new(config.peer_id, config.peer_port);
                // BEP 7: listening on both families, tell trackers the global IPv6 address too.
                let dual_stack = listeners.iter().any(|(l, _)| {
                    l.local_addr()
                        .is_ok_and(|a| a.ip() == IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED))
                });
                client_config.ipv6 = match crate::cli::net::primary_ip(true) {
                    Some(IpAddr::V6(ip))
                        if dual_stack
                            && config.announce_ip.is_none()
                            && seednode_wire::addr::AddrScope::of(IpAddr::V6(ip)).is_global() =>
                    {
                        Some(ip)
                    }
                    _ => None,
                };
                let client =
                    seednode_tracker::client::TrackerClient::new(client_config, config.secret);
                Some(announcer::Announcer::new(
                    client,
                    socket,
                    announcer::Resolver::new(Arc::clone(&waker))?,
                ))
            }
            None => None,
        };
        let lockout = std::rc::Rc::new(std::cell::RefCell::new(
            crate::events::lockout::Lockout::new(config.lockout),
        ));
        let mut events = crate::events::Bus::default();
        events.subscribe(Box::new(crate::events::lockout::LockoutSubscriber(
            std::rc::Rc::clone(&lockout),
        )));
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
            idle: IdleTable::new(),
            mse_keys: HashMap::new(),
            events,
            lockout,
            audit: None,
            uploads: upload_file::UploadThreads::default(),
            blobs: blossom::BlobIndex::new(),
            webhooks: None,
            nostr: None,
            approvals: None,
            dial_backs: VecDeque::new(),
            upload_limit: TokenBucket::new(start, config.upload_rate_bytes_per_sec),
            throttled: VecDeque::new(),
            choker: Choker::new(start, config.upload_slots, config.global_upload_slots),
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
                next_announce: start,
                announced_with_nodes: false,
            }),
            utp: None,
            udp_tracker,
            dialed: HashMap::new(),
            next_pex: start + Duration::from_secs(pex::PEX_INTERVAL_SECS),
            udp,
            udp_rx: vec![0; seednode_tracker::limits::MAX_UDP_REQUEST_LEN].into_boxed_slice(),
            udp_tx: Vec::with_capacity(seednode_tracker::limits::MAX_UDP_REPLY_LEN),
            udp_out: crate::udp_batch::UdpBatch::default(),
            udp_self_addr,
            scratch: vec![0; READ_CHUNK_LEN].into_boxed_slice(),
            stats: EngineStats::default(),
            dial_policy: crate::dial::DialPolicy::new(start),
            now: start,
            peer_source: None,
            bans: crate::ban::BanList::new(),
            summary: summary::Summary::new(start),
            waker,
            catalog: None,
            tokens: None,
            nat: None,
        })
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
                if let Some(t) = self.utp_poll_timeout() {
                    next = next.min(t);
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
            self.now = now;
            for event in &events {
                match event.token() {
                    WAKER => {
                        self.on_disk_done();
                        self.on_resolved(now);
                        self.on_catalog_replies();
                        self.on_upload_events();
                        self.on_webhook_notices();
                        self.on_nostr_notices();
                        self.on_nat();
                    }
                    ANNOUNCE_UDP => self.drain_announcer_udp(now),
                    SIGNALS => {
                        let pending: Vec<i32> = self.signals.pending().collect();
                        if pending.contains(&signal_hook::consts::SIGHUP) {
                            self.reload_access_list();
                            self.reload_tokens();
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
            if self.summary.due(now) {
                self.log_summary(now);
            }
            self.drive_announcer(now);
            self.drive_dht(now);
            self.catalog_tick(now);
            self.run_dial_backs(now);
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
            self.drive_utp(now);
            if now.duration_since(last_expire) >= seednode_tracker::limits::EXPIRE_INTERVAL {
                self.tracker.expire(now);
                last_expire = now;
            }
            let micros = u64::try_from(now.elapsed().as_micros()).unwrap_or(u64::MAX);
            self.stats.turns.record(micros);
        }
    }

    /// The loop's waker, for threads that hand it results (the catalog worker).
    pub(crate) fn waker(&self) -> Arc<Waker> {
        Arc::clone(&self.waker)
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
            self.now = now;
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
        self.nat_begin_stop();
        self.save_dht();
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.close(key, metrics::CloseReason::Shutdown);
        }
        self.utp_shutdown();
        self.stop_announcing();
        self.nat_wait();
        let total: u64 = self.torrents.iter().map(|t| t.uploaded).sum();
        info!(uploaded_bytes = total, "closed all connections");
    }

    /// Announces `torrent` to the trackers of its metainfo (BEP 12 tiers).
    pub(crate) fn announce_to(&mut self, info_hash: InfoHash, tiers: &[Vec<String>]) {
        let now = self.now;
        let Some(a) = &mut self.announcer else { return };
        if let Err(e) = a.client.add_torrent(now, info_hash, tiers, 0) {
            debug!(%info_hash, error = %e, "not announced to external trackers");
        }
        self.flush_announcer(now);
    }
}
