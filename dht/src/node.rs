//! The DHT node: a sans-IO state machine tying KRPC, the routing tables, tokens, the peer store,
//! the rate limiter and lookups together. See the crate docs for the call order.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use seednode_wire::InfoHash;
use seednode_wire::addr::{self, AddrScope, canonical_addr as canonical};

use crate::id::NodeId;
use crate::krpc::{
    self, Body, ERROR_PROTOCOL, ErrorBody, Message, Method, Query, QueryKind, Response, Want,
    compact,
};
use crate::limits::{
    BUCKET_SIZE, IP_VOTERS, IP_VOTES_NEEDED, LOOKUP_TIMEOUT, MAX_ACTIVE_LOOKUPS,
    MAX_BOOTSTRAP_NODES, MAX_DATAGRAM_LEN, MAX_FOREIGN_TOKEN_LEN, MAX_IMPORTED_NODES,
    MAX_LOOKUP_PEERS, MAX_OUTSTANDING_QUERIES, MAX_QUEUED_EVENTS, MAX_QUEUED_LOOKUPS,
    MAX_QUEUED_TRANSMITS, MAX_REPLY_BYTES_PER_SEC, MAX_REPLY_LEN, MAX_VALUES_PER_REPLY,
    MAX_VERIFY_PINGS, MIN_DATAGRAM_LEN, QUERY_SHORT_TIMEOUT, QUERY_TIMEOUT, REBOOTSTRAP_INTERVAL,
    SAMPLE_INTERVAL, STORE_EXPIRE_INTERVAL, TICK_INTERVAL,
};
use crate::lookup::Traversal;
use crate::ratelimit::{DosBlocker, ReplyBudget};
use crate::routing::{Insert, RoutingTable};
use crate::store::PeerStore;
use crate::tokens::Tokens;
use seednode_wire::rng::Rng;

/// Host names of the well-known public bootstrap nodes, `host:port`. This crate resolves
/// nothing: the engine resolves these (or its own list) and passes the addresses in
/// [`Config::bootstrap_nodes`]; an empty list disables bootstrapping from routers.
pub const DEFAULT_BOOTSTRAP_NODES: &[&str] = &[
    "router.bittorrent.com:6881",
    "router.utorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "dht.libtorrent.org:25401",
];

/// Node configuration. Every field has a safe default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Addresses queried when the routing table cannot seed a lookup (resolved
    /// [`DEFAULT_BOOTSTRAP_NODES`], or others). They never enter the routing table, as in
    /// libtorrent. At most [`MAX_BOOTSTRAP_NODES`] are kept.
    pub bootstrap_nodes: Vec<SocketAddr>,
    /// Enforce BEP 42 on other nodes: a node whose ID does not match its IP never enters the
    /// routing table, does not count towards lookup convergence and is not announced to (BEP 42
    /// §Enforcement). Local-network addresses are exempt. Default: on (SECURITY §2.7).
    pub enforce_node_id: bool,
    /// Run as a read-only node (BEP 43): send `ro` = 1 in queries and answer no query.
    /// Default: off.
    pub read_only: bool,
    /// Cap on reply bytes per second, over all queriers; replies beyond it are dropped. Clamped
    /// to [`MAX_REPLY_BYTES_PER_SEC`]. Default
    /// [`crate::limits::DEFAULT_REPLY_BYTES_PER_SEC`].
    pub reply_bytes_per_sec: u32,
    /// The `v` key put in every message (BEP 5 leaves it free; 2 client letters + 2 version
    /// bytes by custom). `None` omits it. Default `SN` 0.1.
    pub version: Option<[u8; 4]>,
    /// The kind of network this node's socket is on: pass `AddrScope::of(bound_ip)`. Nodes
    /// and peers with global addresses are always used; those with local-network addresses
    /// (loopback, private, link-local, CGNAT) only when they are of this scope and were named by
    /// a node of this scope (the rules of [`seednode_wire::addr`]). Any other value, such as
    /// [`AddrScope::Unspecified`] for a socket bound to `0.0.0.0` or `::`, admits global
    /// addresses only. Default [`AddrScope::Global`]: a stranger cannot make the node query,
    /// store or hand out internal addresses.
    pub local_scope: AddrScope,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bootstrap_nodes: Vec::new(),
            enforce_node_id: true,
            read_only: false,
            reply_bytes_per_sec: crate::limits::DEFAULT_REPLY_BYTES_PER_SEC,
            version: Some(*b"SN\x00\x01"),
            local_scope: AddrScope::Global,
        }
    }
}

/// Where our node ID comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdSource {
    /// Use this ID (e.g. the one saved at the last shutdown).
    Fixed(NodeId),
    /// Derive a BEP 42 ID from our external IP, with the random parts drawn from the seed
    /// (BEP 42 §Node ID restriction).
    ExternalIp(IpAddr),
}

/// Identifies one lookup started by [`Dht::bootstrap`], [`Dht::find_node`], [`Dht::get_peers`]
/// or [`Dht::announce`]; echoed in its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LookupId(pub u64);

/// What a lookup was started for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupKind {
    /// [`Dht::bootstrap`]: `find_node` for our own ID.
    Bootstrap,
    /// [`Dht::find_node`].
    FindNode,
    /// [`Dht::get_peers`].
    GetPeers,
    /// [`Dht::announce`]: `get_peers`, then `announce_peer` to the closest nodes.
    Announce,
}

/// How a lookup ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupOutcome {
    /// The closest nodes found all answered (or every candidate was tried).
    Converged,
    /// No node to start from: the routing table is empty and no bootstrap node is configured.
    NoNodes,
    /// Ran for [`LOOKUP_TIMEOUT`].
    TimedOut,
    /// Not started: [`MAX_QUEUED_LOOKUPS`] lookups already wait.
    Overloaded,
}

/// Something the engine should know, from [`Dht::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Peers found by a `get_peers` or announce lookup (each reported once per lookup).
    Peers {
        /// The lookup.
        lookup: LookupId,
        /// Its info-hash.
        info_hash: InfoHash,
        /// Peer addresses (IPv4 from the IPv4 DHT, IPv6 from the IPv6 DHT; BEP 32).
        peers: Vec<SocketAddr>,
    },
    /// The `announce_peer` phase of an announce ended, just before its `LookupDone`.
    Announced {
        /// The lookup.
        lookup: LookupId,
        /// Its info-hash.
        info_hash: InfoHash,
        /// Nodes that confirmed storing us.
        acked: u32,
        /// `announce_peer` queries sent (at most [`BUCKET_SIZE`] per address family).
        sent: u32,
    },
    /// A lookup ended; the last event about it.
    LookupDone {
        /// The lookup.
        lookup: LookupId,
        /// What it was for.
        kind: LookupKind,
        /// The ID or info-hash searched.
        target: NodeId,
        /// How it ended.
        outcome: LookupOutcome,
        /// Queries sent, all families.
        queried: u32,
        /// Responses received, all families.
        responded: u32,
        /// Hops from the starting nodes to the deepest node that answered.
        rounds: u32,
    },
    /// A majority of the last [`IP_VOTERS`] nodes that answered us report this as our external
    /// address (BEP 42 §Bootstrapping, the `ip` key); reported again only when it changes. If
    /// our ID was derived from another address, the engine may restart the node with
    /// [`IdSource::ExternalIp`] and the exported nodes (BEP 42: "SHOULD consider restarting").
    /// A peer announced itself for an info-hash to this node (a valid `announce_peer`, BEP 5);
    /// the engine may dial it when it seeds that torrent.
    PeerAnnounced {
        /// The torrent.
        info_hash: InfoHash,
        /// Where the peer accepts connections.
        peer: SocketAddr,
    },
    ExternalAddress {
        /// Our address as others see it.
        ip: IpAddr,
        /// Nodes agreeing, out of the last [`IP_VOTERS`].
        votes: usize,
    },
}

/// A datagram to send, from [`Dht::poll_transmit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub dst: SocketAddr,
    /// The KRPC message, at most [`MAX_REPLY_LEN`] bytes for replies.
    pub payload: Vec<u8>,
}

/// Per-method query counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryCounts {
    /// `ping`.
    pub ping: u64,
    /// `find_node`.
    pub find_node: u64,
    /// `get_peers`.
    pub get_peers: u64,
    /// `announce_peer`.
    pub announce_peer: u64,
    /// `sample_infohashes`.
    pub sample_infohashes: u64,
    /// Unknown methods (answered with 204).
    pub unknown: u64,
}

impl QueryCounts {
    fn count(&mut self, kind: QueryKind) {
        let c = match kind {
            QueryKind::Ping => &mut self.ping,
            QueryKind::FindNode => &mut self.find_node,
            QueryKind::GetPeers => &mut self.get_peers,
            QueryKind::AnnouncePeer => &mut self.announce_peer,
            QueryKind::SampleInfohashes => &mut self.sample_infohashes,
        };
        *c += 1;
    }
}

/// Counters and sizes, from [`Dht::stats`] (exported on `/metrics` by the engine).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Well-formed queries received, by method.
    pub queries_in: QueryCounts,
    /// Queries sent, by method.
    pub queries_out: QueryCounts,
    /// Responses matched to one of our queries.
    pub responses_in: u64,
    /// Error messages matched to one of our queries.
    pub errors_in: u64,
    /// Replies sent (responses to queries).
    pub replies_out: u64,
    /// Error replies sent (203/204).
    pub errors_out: u64,
    /// Datagrams dropped as malformed (size, bencode, structure), answered or not.
    pub dropped_malformed: u64,
    /// Datagrams dropped by the per-IP rate limiter.
    pub dropped_rate_limited: u64,
    /// Replies not sent because the reply byte budget was spent.
    pub dropped_reply_budget: u64,
    /// Responses and errors with an unknown transaction id or from the wrong address.
    pub dropped_unexpected: u64,
    /// Datagrams dropped because the transmit queue was full.
    pub dropped_transmits: u64,
    /// Events dropped because the event queue was full.
    pub dropped_events: u64,
    /// Our queries that timed out.
    pub query_timeouts: u64,
    /// `announce_peer` refused for a bad or stale token.
    pub bad_tokens: u64,
    /// Addresses refused by the address rules ([`Config::local_scope`]): nodes and peers named
    /// in replies, queriers kept out of the routing table, announces not stored.
    pub refused_addresses: u64,
    /// Peers stored from valid `announce_peer` queries.
    pub announces_stored: u64,
    /// Nodes in the IPv4 routing table's buckets.
    pub routing_nodes_v4: usize,
    /// Nodes in the IPv6 routing table's buckets.
    pub routing_nodes_v6: usize,
    /// Replacement candidates, both tables.
    pub replacement_nodes: usize,
    /// Info-hashes in the peer store.
    pub stored_info_hashes: usize,
    /// Peers in the peer store.
    pub stored_peers: usize,
    /// Lookups running.
    pub active_lookups: usize,
    /// Lookups queued.
    pub queued_lookups: usize,
    /// Our queries waiting for an answer.
    pub outstanding_queries: usize,
    /// IPs currently banned by the rate limiter.
    pub banned_ips: usize,
}

/// Why we sent a query: decides what its answer or timeout does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Lookup {
        lookup: LookupId,
        family: usize,
    },
    Announce {
        lookup: LookupId,
    },
    /// Ping of a questionable table node.
    Maintenance,
    /// Ping of an unknown node that queried us, before it may enter the table.
    Verify,
    /// [`Dht::ping`].
    User,
    /// `find_node` to a table node for a random ID in a bucket with free slots; the nodes it
    /// returns are verified with pings and may fill the bucket.
    Explore,
}

#[derive(Debug, Clone)]
struct Pending {
    dst: SocketAddr,
    expected_id: Option<NodeId>,
    purpose: Purpose,
    deadline: Instant,
    /// Still within the short timeout (lookup queries only).
    fast: bool,
}

#[derive(Debug, Clone)]
struct AnnounceState {
    port: Option<u16>,
    started: bool,
    outstanding: u32,
    acked: u32,
    sent: u32,
}

#[derive(Debug, Clone)]
struct Lookup {
    id: LookupId,
    kind: LookupKind,
    /// A bucket refresh: no events.
    internal: bool,
    target: NodeId,
    started: Instant,
    traversals: [Option<Traversal>; 2],
    announce: Option<AnnounceState>,
    peers_seen: BTreeSet<SocketAddr>,
}

#[derive(Debug, Clone, Copy)]
struct QueuedLookup {
    id: LookupId,
    kind: LookupKind,
    internal: bool,
    target: NodeId,
    port: Option<u16>,
}

/// Index of the routing table for `addr`'s family: 0 for IPv4, 1 for IPv6 (BEP 32).
fn family(addr: &SocketAddr) -> usize {
    usize::from(addr.is_ipv6())
}

/// Whether a node on a `local` network may query (or store, or report) `addr`, named by
/// `learnt_from` (`None`: from our own state or the engine): port 0 and addresses no node has
/// never; global addresses always; local-network ones only of scope `local`, and only when
/// named from inside that network ([`addr::may_dial_on`], [`addr::may_dial`]).
fn dialable(local: AddrScope, addr: SocketAddr, learnt_from: Option<IpAddr>) -> bool {
    addr::may_dial_on(addr, local).is_ok()
        && learnt_from.is_none_or(|ip| addr::may_dial(addr, ip).is_ok())
}

/// A sans-IO Mainline DHT node (BEP 5, 32, 42, 43, 51).
///
/// `Clone` copies the whole state, token key included (for snapshots in tests and fuzzing).
#[derive(Clone)]
pub struct Dht {
    config: Config,
    id: NodeId,
    rng: Rng,
    tables: [RoutingTable; 2],
    tokens: Tokens,
    store: PeerStore,
    blocker: DosBlocker,
    budget: ReplyBudget,
    pending: BTreeMap<u32, Pending>,
    /// Full-timeout deadlines in send order (deadlines are monotonic, so FIFO = sorted); stale
    /// entries are skipped.
    timeouts: VecDeque<(Instant, u32)>,
    short_timeouts: VecDeque<(Instant, u32)>,
    /// Addresses with an outstanding verification ping (at most [`MAX_VERIFY_PINGS`]).
    verifying: BTreeSet<SocketAddr>,
    next_rebootstrap: Instant,
    /// The last [`IP_VOTERS`] `(responder IP, our IP as it sees it)` pairs, oldest first.
    ip_votes: Vec<(IpAddr, IpAddr)>,
    /// The external address last reported per family.
    external_ip: [Option<IpAddr>; 2],
    lookups: Vec<Lookup>,
    queued: VecDeque<QueuedLookup>,
    next_lookup: u64,
    refresh_running: bool,
    imported: Vec<(NodeId, SocketAddr)>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    next_tick: Instant,
    next_store_expire: Instant,
    last_now: Instant,
    stats: Stats,
    scratch_nodes: Vec<(NodeId, SocketAddr)>,
}

impl Dht {
    /// Creates a node.
    ///
    /// `secret` keys the write tokens (draw it from a CSPRNG; SECURITY rule 5); `rng_seed` seeds
    /// the deterministic PRNG for transaction ids, random targets and the random parts of a BEP
    /// 42 ID. `now` is the node's epoch. Config values are clamped to their `MAX_*` limits.
    #[must_use]
    pub fn new(
        config: Config,
        id: IdSource,
        secret: [u8; 32],
        rng_seed: u64,
        now: Instant,
    ) -> Self {
        let mut rng = Rng::from_u64(rng_seed);
        let id = match id {
            IdSource::Fixed(id) => id,
            IdSource::ExternalIp(ip) => {
                let mut random = [0u8; 20];
                rng.fill(&mut random);
                NodeId::bep42(ip, random[19], random)
            }
        };
        let mut config = config;
        config.reply_bytes_per_sec = config.reply_bytes_per_sec.min(MAX_REPLY_BYTES_PER_SEC);
        config.bootstrap_nodes.truncate(MAX_BOOTSTRAP_NODES);
        for a in &mut config.bootstrap_nodes {
            *a = canonical(*a);
        }
        let budget = ReplyBudget::new(config.reply_bytes_per_sec, now);
        Self {
            config,
            id,
            rng,
            tables: [RoutingTable::new(id, now), RoutingTable::new(id, now)],
            tokens: Tokens::new(&secret, now),
            store: PeerStore::default(),
            blocker: DosBlocker::new(),
            budget,
            pending: BTreeMap::new(),
            timeouts: VecDeque::new(),
            short_timeouts: VecDeque::new(),
            verifying: BTreeSet::new(),
            next_rebootstrap: now + REBOOTSTRAP_INTERVAL,
            ip_votes: Vec::with_capacity(IP_VOTERS),
            external_ip: [None, None],
            lookups: Vec::new(),
            queued: VecDeque::new(),
            next_lookup: 1,
            refresh_running: false,
            imported: Vec::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_tick: now + TICK_INTERVAL,
            next_store_expire: now + STORE_EXPIRE_INTERVAL,
            last_now: now,
            stats: Stats::default(),
            scratch_nodes: Vec::new(),
        }
    }

    /// Our node ID (save it with [`Dht::export_nodes`] to keep it across restarts).
    #[must_use]
    pub const fn node_id(&self) -> NodeId {
        self.id
    }

    // -----------------------------------------------------------------------------------------
    // Outputs
    // -----------------------------------------------------------------------------------------

    /// The next datagram to send, if any. Drain to `None` after every input or command.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event, if any. Drain to `None` after every input or command.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Dht::handle_timeout`] must be called next (at the latest). Never `None` today: the
    /// maintenance tick always has a deadline.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.next_tick;
        if let Some(&(d, _)) = self.timeouts.front() {
            t = t.min(d);
        }
        if let Some(&(d, _)) = self.short_timeouts.front() {
            t = t.min(d);
        }
        Some(t)
    }

    /// Counters and table sizes.
    #[must_use]
    pub fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        s.routing_nodes_v4 = self.tables[0].len();
        s.routing_nodes_v6 = self.tables[1].len();
        s.replacement_nodes = self.tables[0].replacements() + self.tables[1].replacements();
        s.stored_info_hashes = self.store.info_hashes();
        s.stored_peers = self.store.peer_count();
        s.active_lookups = self.lookups.len();
        s.queued_lookups = self.queued.len();
        s.outstanding_queries = self.pending.len();
        s.banned_ips = self.blocker.banned(self.last_now);
        s
    }

    /// The routing tables' non-bad nodes, IPv4 then IPv6, to save at shutdown and give back to
    /// [`Dht::import_nodes`] at the next start (BEP 5: "the routing table should be saved").
    #[must_use]
    pub fn export_nodes(&self) -> Vec<(NodeId, SocketAddr)> {
        let mut out = Vec::new();
        self.tables[0].export(&mut out);
        self.tables[1].export(&mut out);
        out
    }

    /// Nodes in a good state now, both tables (BEP 5 §Routing Table).
    #[must_use]
    pub fn good_nodes(&self) -> usize {
        self.tables[0].good(self.last_now) + self.tables[1].good(self.last_now)
    }

    // -----------------------------------------------------------------------------------------
    // Commands
    // -----------------------------------------------------------------------------------------

    /// Offers saved nodes to the next lookups. They are not trusted: they enter the routing table
    /// only after answering a query. At most [`MAX_IMPORTED_NODES`] are kept; nodes at addresses
    /// [`Config::local_scope`] refuses are dropped.
    pub fn import_nodes(&mut self, nodes: &[(NodeId, SocketAddr)]) {
        for &(id, addr) in nodes {
            let addr = canonical(addr);
            if self.imported.len() >= MAX_IMPORTED_NODES {
                break;
            }
            if id != self.id
                && dialable(self.config.local_scope, addr, None)
                && !self.imported.iter().any(|(_, a)| *a == addr)
            {
                self.imported.push((id, addr));
            }
        }
    }

    /// Starts a `find_node` lookup for our own ID from the routing table, the imported nodes and
    /// the bootstrap nodes (BEP 5 §Routing Table: "upon ... starting up"). Its end is reported by
    /// [`Event::LookupDone`] with [`LookupKind::Bootstrap`].
    pub fn bootstrap(&mut self, now: Instant) -> LookupId {
        self.start_lookup(now, LookupKind::Bootstrap, self.id, None, false)
    }

    /// Starts an iterative `find_node` lookup for `target` (BEP 5 §find_node).
    #[must_use]
    pub fn find_node(&mut self, now: Instant, target: NodeId) -> LookupId {
        self.start_lookup(now, LookupKind::FindNode, target, None, false)
    }

    /// Starts an iterative `get_peers` lookup (BEP 5 §get_peers): peers come in
    /// [`Event::Peers`], the end in [`Event::LookupDone`].
    #[must_use]
    pub fn get_peers(&mut self, now: Instant, info_hash: InfoHash) -> LookupId {
        self.start_lookup(now, LookupKind::GetPeers, info_hash.into(), None, false)
    }

    /// Starts an announce: a `get_peers` lookup, then `announce_peer` with each node's token to
    /// the [`BUCKET_SIZE`] closest nodes that gave one (BEP 5 §announce_peer). `port` is our TCP
    /// port; `None` sends `implied_port` = 1 (and `port` = 0) so nodes use the DHT socket's
    /// source port. Peers found on the way come in [`Event::Peers`], the result in
    /// [`Event::Announced`], then [`Event::LookupDone`].
    #[must_use]
    pub fn announce(&mut self, now: Instant, info_hash: InfoHash, port: Option<u16>) -> LookupId {
        self.start_lookup(
            now,
            LookupKind::Announce,
            info_hash.into(),
            Some(port),
            false,
        )
    }

    /// Records that this node itself seeds `info_hash`, reachable at `addr`: `get_peers`
    /// queries for it are answered with `addr` like any stored peer. It expires like them (30
    /// minutes, BEP 5), so call it again with every announce.
    pub fn add_local_peer(&mut self, now: Instant, info_hash: InfoHash, addr: SocketAddr) {
        self.last_now = now;
        self.store.announce(now, info_hash, addr);
    }

    /// Pings `addr`; if it answers (and passes BEP 42 when enforced) it may enter the routing
    /// table. For the BEP 5 `PORT` message. Skipped when the transaction table is full, or when
    /// [`Config::local_scope`] refuses `addr` (counted in [`Stats::refused_addresses`]).
    pub fn ping(&mut self, now: Instant, addr: SocketAddr) {
        self.last_now = now;
        let addr = canonical(addr);
        if dialable(self.config.local_scope, addr, None) {
            self.send_query(now, addr, None, Method::Ping, Purpose::User, false);
        } else {
            self.stats.refused_addresses += 1;
        }
    }

    // -----------------------------------------------------------------------------------------
    // Inputs
    // -----------------------------------------------------------------------------------------

    /// Handles one received datagram from `from`.
    ///
    /// Order of checks, cheapest first: source port and size ([`MIN_DATAGRAM_LEN`],
    /// [`MAX_DATAGRAM_LEN`], `d…e` framing), the per-IP rate limiter, then decoding. Malformed
    /// input is counted and dropped, or answered with a bounded error (see [`krpc`]); nothing
    /// here panics or grows without bound.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        self.last_now = now;
        let from = canonical(from);
        let framed = datagram.first() == Some(&b'd') && datagram.last() == Some(&b'e');
        if from.port() == 0
            || datagram.len() < MIN_DATAGRAM_LEN
            || datagram.len() > MAX_DATAGRAM_LEN
            || !framed
        {
            self.stats.dropped_malformed += 1;
            return;
        }
        if !self.blocker.allow(now, from.ip()) {
            self.stats.dropped_rate_limited += 1;
            return;
        }
        let msg = match krpc::decode(datagram) {
            Ok(msg) => msg,
            Err(bad) => {
                self.stats.dropped_malformed += 1;
                if matches!(bad.error, krpc::KrpcError::UnknownMethod) {
                    self.stats.queries_in.unknown += 1;
                }
                if let Some((code, t)) = bad.reply()
                    && !self.config.read_only
                {
                    self.send_error(now, from, t, code, bad.error.reply_message());
                }
                return;
            }
        };
        match &msg.body {
            Body::Query(q) => self.handle_query(now, from, &msg, q),
            Body::Response(r) => {
                if self.handle_response(now, from, msg.transaction_id, Ok(r))
                    && let Some(ip) = msg.ip
                {
                    self.vote_external_ip(from, ip.ip());
                }
            }
            Body::Error(_) => {
                let _ = self.handle_response(now, from, msg.transaction_id, Err(()));
            }
        }
        self.step_lookups(now);
    }

    /// Handles timers: query timeouts, lookup deadlines and the maintenance tick. Call it when
    /// [`Dht::poll_timeout`] is reached (calling it early is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = now;
        while let Some(&(deadline, tid)) = self.short_timeouts.front() {
            if deadline > now {
                break;
            }
            self.short_timeouts.pop_front();
            if let Some(p) = self.pending.get_mut(&tid)
                && p.fast
                && p.deadline - QUERY_TIMEOUT + QUERY_SHORT_TIMEOUT == deadline
            {
                p.fast = false;
                let (purpose, dst) = (p.purpose, p.dst);
                if let Purpose::Lookup { lookup, family } = purpose
                    && let Some(t) = self.traversal(lookup, family)
                {
                    t.slow(dst);
                }
            }
        }
        while let Some(&(deadline, tid)) = self.timeouts.front() {
            if deadline > now {
                break;
            }
            self.timeouts.pop_front();
            if self
                .pending
                .get(&tid)
                .is_some_and(|p| p.deadline == deadline)
                && let Some(p) = self.pending.remove(&tid)
            {
                self.stats.query_timeouts += 1;
                self.query_failed(now, p, true);
            }
        }
        if now >= self.next_tick {
            self.tick(now);
            self.next_tick = now + TICK_INTERVAL;
        }
        self.step_lookups(now);
    }

    // -----------------------------------------------------------------------------------------
    // Queries from others
    // -----------------------------------------------------------------------------------------

    fn handle_query(&mut self, now: Instant, from: SocketAddr, msg: &Message<'_>, q: &Query<'_>) {
        self.stats.queries_in.count(q.method.kind());
        if self.config.read_only {
            return; // BEP 43: a read-only node answers no query.
        }
        let fam = family(&from);
        let id_ok = !self.config.enforce_node_id || q.id.is_valid_for(from.ip());
        // A querier at an address we must not dial (a local process querying a public node) is
        // answered but never enters the table, so it is never handed out.
        let admitted = dialable(self.config.local_scope, from, None);
        if !admitted {
            self.stats.refused_addresses += 1;
        }
        // BEP 43: read-only nodes stay out of the table; everyone else is verified by a ping
        // before entering it (SECURITY D8).
        let verify = !msg.read_only
            && id_ok
            && admitted
            && !self.is_router(&from)
            && self.tables[fam].heard_query(now, q.id, from);
        self.answer(now, from, msg.transaction_id, q);
        if verify {
            self.verify(now, q.id, from);
        }
    }

    /// Sends the reply to a well-formed query (or error 203 for a bad token).
    fn answer(&mut self, now: Instant, from: SocketAddr, t: &[u8], q: &Query<'_>) {
        let fam = family(&from);
        match &q.method {
            Method::Ping => self.reply(now, from, t, Response::id_only(self.id), None),
            Method::FindNode { target, want } => {
                let r = Response::id_only(self.id);
                self.reply(now, from, t, r, Some((*target, *want)));
            }
            Method::GetPeers { info_hash, want } => {
                let token = self.tokens.issue(now, from.ip());
                let mut peers = self.store.peers(
                    now,
                    info_hash,
                    fam == 1,
                    MAX_VALUES_PER_REPLY,
                    &mut self.rng,
                );
                // Local-network peers only to queriers on that network.
                peers.retain(|p| addr::may_dial(*p, from.ip()).is_ok());
                let mut compact_peers = Vec::with_capacity(peers.len() * compact::PEER_V6_LEN);
                for p in &peers {
                    compact::put_peer(&mut compact_peers, *p);
                }
                let entry = if fam == 1 {
                    compact::PEER_V6_LEN
                } else {
                    compact::PEER_V4_LEN
                };
                let values: Vec<&[u8]> = compact_peers.chunks(entry).collect();
                let mut r = Response::id_only(self.id);
                r.token = Some(&token[..]);
                r.values = (!values.is_empty()).then_some(values);
                self.reply(now, from, t, r, Some(((*info_hash).into(), *want)));
            }
            Method::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token,
            } => {
                if !self.tokens.verify(now, from.ip(), token) {
                    self.stats.bad_tokens += 1;
                    self.send_error(now, from, t, ERROR_PROTOCOL, "invalid token");
                    return;
                }
                let port = if *implied_port { from.port() } else { *port };
                let peer = SocketAddr::new(from.ip(), port);
                if !dialable(self.config.local_scope, peer, None) {
                    // Port 0, or a local process announcing to a public node: storing it would
                    // hand an internal address to the internet.
                    self.stats.refused_addresses += 1;
                    self.send_error(now, from, t, ERROR_PROTOCOL, "address not stored");
                    return;
                }
                self.store.announce(now, *info_hash, peer);
                self.stats.announces_stored += 1;
                // Rate-limited and token-checked above, so this event is bounded like the store.
                self.push_event(Event::PeerAnnounced {
                    info_hash: *info_hash,
                    peer,
                });
                self.reply(now, from, t, Response::id_only(self.id), None);
            }
            Method::SampleInfohashes { target, want } => {
                let samples: Vec<u8> = self
                    .store
                    .sample(now, &mut self.rng)
                    .iter()
                    .flat_map(|ih| ih.0)
                    .collect();
                let mut r = Response::id_only(self.id);
                r.interval = Some(SAMPLE_INTERVAL.as_secs() as i64);
                r.num = Some(i64::try_from(self.store.info_hashes()).unwrap_or(i64::MAX));
                r.samples = Some(&samples);
                self.reply(now, from, t, r, Some((*target, *want)));
            }
        }
    }

    /// Sends a response, adding `nodes`/`nodes6` close to `nodes_for` as BEP 32 `want` (or the
    /// querier's family) asks, and trimming it to [`MAX_REPLY_LEN`]: `values` first, then
    /// `samples`, then `nodes6`, then `nodes`.
    fn reply(
        &mut self,
        now: Instant,
        to: SocketAddr,
        t: &[u8],
        r: Response<'_>,
        nodes_for: Option<(NodeId, Option<Want>)>,
    ) {
        let mut nodes4 = Vec::new();
        let mut nodes6 = Vec::new();
        let mut r = r;
        if let Some((target, want)) = nodes_for {
            let fam = family(&to);
            let (n4, n6) = want.map_or((fam == 0, fam == 1), |w| (w.n4, w.n6));
            let mut found = std::mem::take(&mut self.scratch_nodes);
            // A table on a local network may hold local nodes, handed out only to queriers on
            // that network: look further so that others still get a full bucket.
            let look = if self.config.local_scope.is_local_network() {
                2 * BUCKET_SIZE
            } else {
                BUCKET_SIZE
            };
            for (wanted, table, buf) in [(n4, 0, &mut nodes4), (n6, 1, &mut nodes6)] {
                if wanted {
                    found.clear();
                    self.tables[table].closest(&target, look, false, &mut found);
                    found.retain(|(_, a)| addr::may_dial(*a, to.ip()).is_ok());
                    found.truncate(BUCKET_SIZE);
                    for (id, addr) in &found {
                        compact::put_node(buf, id, *addr);
                    }
                }
            }
            self.scratch_nodes = found;
            r.nodes = n4.then_some(&nodes4[..]);
            r.nodes6 = n6.then_some(&nodes6[..]);
        }
        let version = self.config.version;
        let mut msg = Message {
            transaction_id: t,
            version: version.as_ref().map(|v| &v[..]),
            read_only: false,
            ip: Some(to),
            body: Body::Response(r),
        };
        let mut out = msg.to_bytes();
        for _ in 0..4 {
            if out.len() <= MAX_REPLY_LEN {
                break;
            }
            shrink(&mut msg, out.len());
            out = msg.to_bytes();
        }
        self.stats.replies_out += 1;
        self.send_reply(now, to, out);
    }

    fn send_error(&mut self, now: Instant, to: SocketAddr, t: &[u8], code: i64, text: &str) {
        let version = self.config.version;
        let msg = Message {
            transaction_id: t,
            version: version.as_ref().map(|v| &v[..]),
            read_only: false,
            ip: None,
            body: Body::Error(ErrorBody {
                code,
                message: text.as_bytes(),
            }),
        };
        self.stats.errors_out += 1;
        self.send_reply(now, to, msg.to_bytes());
    }

    fn send_reply(&mut self, now: Instant, to: SocketAddr, payload: Vec<u8>) {
        debug_assert!(
            payload.len() <= MAX_REPLY_LEN,
            "reply of {} bytes",
            payload.len()
        );
        if payload.len() > MAX_REPLY_LEN || !self.budget.take(now, payload.len()) {
            self.stats.dropped_reply_budget += 1;
            return;
        }
        self.push_transmit(to, payload);
    }

    fn push_transmit(&mut self, dst: SocketAddr, payload: Vec<u8>) {
        if self.transmits.len() >= MAX_QUEUED_TRANSMITS {
            self.stats.dropped_transmits += 1;
            return;
        }
        self.transmits.push_back(Transmit { dst, payload });
    }

    fn push_event(&mut self, event: Event) {
        if self.events.len() >= MAX_QUEUED_EVENTS {
            self.stats.dropped_events += 1;
            return;
        }
        self.events.push_back(event);
    }

    /// Pings `id` at `addr` so that it may enter the routing table if it answers (SECURITY D8),
    /// unless a verification ping to it is outstanding or [`MAX_VERIFY_PINGS`] are.
    fn verify(&mut self, now: Instant, id: NodeId, addr: SocketAddr) {
        if self.verifying.len() >= MAX_VERIFY_PINGS || self.verifying.contains(&addr) {
            return;
        }
        if self.send_query(now, addr, Some(id), Method::Ping, Purpose::Verify, false) {
            self.verifying.insert(addr);
        }
    }

    fn is_router(&self, addr: &SocketAddr) -> bool {
        self.config.bootstrap_nodes.contains(addr)
    }

    // -----------------------------------------------------------------------------------------
    // Our queries
    // -----------------------------------------------------------------------------------------

    /// Sends a query; false (nothing sent) when the transaction table is full.
    fn send_query(
        &mut self,
        now: Instant,
        dst: SocketAddr,
        expected_id: Option<NodeId>,
        method: Method<'_>,
        purpose: Purpose,
        lookup: bool,
    ) -> bool {
        if self.pending.len() >= MAX_OUTSTANDING_QUERIES {
            return false;
        }
        // The last line of defence: whatever path an address took, a query goes only where the
        // address rules allow (or to a configured bootstrap node).
        if !dialable(self.config.local_scope, dst, None) && !self.is_router(&dst) {
            self.stats.refused_addresses += 1;
            return false;
        }
        let tid = loop {
            let t = self.rng.next_u32();
            if !self.pending.contains_key(&t) {
                break t;
            }
        };
        let t = tid.to_be_bytes();
        let kind = method.kind();
        let version = self.config.version;
        let msg = Message {
            transaction_id: &t,
            version: version.as_ref().map(|v| &v[..]),
            read_only: self.config.read_only,
            ip: None,
            body: Body::Query(Query {
                id: self.id,
                method,
            }),
        };
        let deadline = now + QUERY_TIMEOUT;
        self.pending.insert(
            tid,
            Pending {
                dst,
                expected_id,
                purpose,
                deadline,
                fast: lookup,
            },
        );
        self.timeouts.push_back((deadline, tid));
        if lookup {
            self.short_timeouts
                .push_back((now + QUERY_SHORT_TIMEOUT, tid));
        }
        self.compact_timeouts();
        self.stats.queries_out.count(kind);
        self.push_transmit(dst, msg.to_bytes());
        true
    }

    /// Drops stale deadline entries once the queues are much longer than the live table.
    fn compact_timeouts(&mut self) {
        let limit = 4 * MAX_OUTSTANDING_QUERIES;
        let pending = &self.pending;
        if self.timeouts.len() > limit {
            self.timeouts
                .retain(|(d, t)| pending.get(t).is_some_and(|p| p.deadline == *d));
        }
        if self.short_timeouts.len() > limit {
            self.short_timeouts.retain(|(d, t)| {
                pending.get(t).is_some_and(|p| {
                    p.fast && p.deadline - QUERY_TIMEOUT + QUERY_SHORT_TIMEOUT == *d
                })
            });
        }
    }

    /// A response (`Ok`) or error (`Err`) arrived with transaction id `t`. Returns true when it
    /// answered one of our queries with the expected node ID.
    fn handle_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        t: &[u8],
        r: Result<&Response<'_>, ()>,
    ) -> bool {
        let tid = match <[u8; 4]>::try_from(t) {
            Ok(b) => u32::from_be_bytes(b),
            Err(_) => {
                self.stats.dropped_unexpected += 1;
                return false;
            }
        };
        // SECURITY D10: the transaction must exist and the answer come from where we sent it.
        if self.pending.get(&tid).is_none_or(|p| p.dst != from) {
            self.stats.dropped_unexpected += 1;
            return false;
        }
        let Some(p) = self.pending.remove(&tid) else {
            return false;
        };
        let Ok(r) = r else {
            self.stats.errors_in += 1;
            self.query_failed(now, p, false);
            return false;
        };
        if p.expected_id.is_some_and(|id| id != r.id) {
            // Another node answers at that address now: as good as no answer.
            self.query_failed(now, p, false);
            return false;
        }
        self.stats.responses_in += 1;
        let fam = family(&from);
        let counts = !self.config.enforce_node_id || r.id.is_valid_for(from.ip());
        if counts
            && !self.is_router(&from)
            && dialable(self.config.local_scope, from, None)
            && let Insert::Waiting(Some((id, addr))) =
                self.tables[fam].heard_response(now, r.id, from)
            && !self.send_query(
                now,
                addr,
                Some(id),
                Method::Ping,
                Purpose::Maintenance,
                false,
            )
        {
            self.tables[fam].failed(&id, addr);
        }
        match p.purpose {
            Purpose::Lookup { lookup, family } => {
                self.lookup_response(lookup, family, from, r, counts, p.fast);
            }
            Purpose::Announce { lookup } => self.announce_answered(now, lookup, true),
            Purpose::Verify => {
                self.verifying.remove(&p.dst);
            }
            Purpose::Explore => self.explore_response(now, fam, from, r),
            Purpose::Maintenance | Purpose::User => {}
        }
        true
    }

    /// Counts `voter`'s report of our external address (BEP 42 `ip`) and reports a new majority
    /// with [`Event::ExternalAddress`].
    fn vote_external_ip(&mut self, voter: SocketAddr, ip: IpAddr) {
        let ip = ip.to_canonical();
        let fam = family(&SocketAddr::new(ip, 0));
        if ip.is_unspecified() || fam != family(&voter) {
            return;
        }
        let voter = voter.ip();
        self.ip_votes.retain(|(v, _)| *v != voter);
        if self.ip_votes.len() >= IP_VOTERS {
            self.ip_votes.remove(0);
        }
        self.ip_votes.push((voter, ip));
        let votes = self.ip_votes.iter().filter(|(_, x)| *x == ip).count();
        if votes >= IP_VOTES_NEEDED && self.external_ip[fam] != Some(ip) {
            self.external_ip[fam] = Some(ip);
            self.push_event(Event::ExternalAddress { ip, votes });
        }
    }

    /// Verifies the nodes an exploration `find_node` returned (by `from`) that have room in our
    /// table.
    fn explore_response(&mut self, now: Instant, fam: usize, from: SocketAddr, r: &Response<'_>) {
        let nodes: Vec<(NodeId, SocketAddr)> = match fam {
            0 => r.nodes.into_iter().flat_map(compact::nodes_v4).collect(),
            _ => r.nodes6.into_iter().flat_map(compact::nodes_v6).collect(),
        };
        for (id, addr) in nodes {
            let same_family = family(&canonical(addr)) == fam;
            let addr_ok = same_family && dialable(self.config.local_scope, addr, Some(from.ip()));
            if same_family && !addr_ok {
                self.stats.refused_addresses += 1;
            }
            let id_ok = !self.config.enforce_node_id || id.is_valid_for(addr.ip());
            if addr_ok && id_ok && self.tables[fam].could_take(now, id, addr, true) {
                self.verify(now, id, addr);
            }
        }
    }

    /// A query timed out (`timed_out`) or was answered with an error or the wrong ID.
    fn query_failed(&mut self, now: Instant, p: Pending, timed_out: bool) {
        let fam = family(&p.dst);
        let table_ping = matches!(p.purpose, Purpose::Maintenance | Purpose::Verify);
        if let Some(id) = p.expected_id
            && (timed_out || table_ping)
        {
            self.tables[fam].failed(&id, p.dst);
        }
        match p.purpose {
            Purpose::Lookup { lookup, family } => {
                if let Some(t) = self.traversal(lookup, family) {
                    t.failed(p.dst, p.fast);
                }
            }
            Purpose::Announce { lookup } => self.announce_answered(now, lookup, false),
            Purpose::Verify => {
                self.verifying.remove(&p.dst);
            }
            Purpose::Maintenance | Purpose::User | Purpose::Explore => {}
        }
    }

    // -----------------------------------------------------------------------------------------
    // Lookups
    // -----------------------------------------------------------------------------------------

    fn traversal(&mut self, lookup: LookupId, family: usize) -> Option<&mut Traversal> {
        self.lookups
            .iter_mut()
            .find(|l| l.id == lookup)?
            .traversals
            .get_mut(family)?
            .as_mut()
    }

    fn start_lookup(
        &mut self,
        now: Instant,
        kind: LookupKind,
        target: NodeId,
        port: Option<Option<u16>>,
        internal: bool,
    ) -> LookupId {
        self.last_now = now;
        let id = LookupId(self.next_lookup);
        self.next_lookup += 1;
        let q = QueuedLookup {
            id,
            kind,
            internal,
            target,
            port: port.flatten(),
        };
        let announce = port.is_some();
        // Peers announced to this very node count too: in a small network (or when we are the
        // closest node) nobody else stores them.
        if matches!(kind, LookupKind::GetPeers | LookupKind::Announce) && !internal {
            let info_hash = InfoHash(target.0);
            let mut peers = Vec::new();
            for v6 in [false, true] {
                peers.extend(self.store.peers(
                    now,
                    &info_hash,
                    v6,
                    MAX_VALUES_PER_REPLY,
                    &mut self.rng,
                ));
            }
            if !peers.is_empty() {
                self.push_event(Event::Peers {
                    lookup: id,
                    info_hash,
                    peers,
                });
            }
        }
        if self.lookups.len() < MAX_ACTIVE_LOOKUPS && self.queued.is_empty() {
            self.activate(now, q, announce);
        } else if self.queued.len() < MAX_QUEUED_LOOKUPS && !internal {
            self.queued.push_back(q);
        } else if !internal {
            self.push_event(Event::LookupDone {
                lookup: id,
                kind,
                target,
                outcome: LookupOutcome::Overloaded,
                queried: 0,
                responded: 0,
                rounds: 0,
            });
        }
        id
    }

    fn activate(&mut self, now: Instant, q: QueuedLookup, announce: bool) {
        let mut traversals = [None, None];
        for (fam, slot) in traversals.iter_mut().enumerate() {
            let mut t = Traversal::new(q.target);
            let mut seeds = std::mem::take(&mut self.scratch_nodes);
            seeds.clear();
            self.tables[fam].closest(&q.target, 2 * BUCKET_SIZE, false, &mut seeds);
            if seeds.len() < BUCKET_SIZE {
                // After an outage every node may be bad: try them anyway (libtorrent does too).
                seeds.clear();
                self.tables[fam].closest(&q.target, 2 * BUCKET_SIZE, true, &mut seeds);
            }
            for &(id, addr) in &seeds {
                t.add(Some(id), addr, 0, true);
            }
            let need_more = seeds.len() < BUCKET_SIZE || q.kind == LookupKind::Bootstrap;
            self.scratch_nodes = seeds;
            if need_more {
                for &(id, addr) in &self.imported {
                    if family(&addr) == fam {
                        let counts = !self.config.enforce_node_id || id.is_valid_for(addr.ip());
                        t.add(Some(id), addr, 0, counts);
                    }
                }
                for &addr in &self.config.bootstrap_nodes {
                    if family(&addr) == fam {
                        t.add(None, addr, 0, true);
                    }
                }
            }
            if !t.candidates.is_empty() {
                *slot = Some(t);
            }
        }
        if q.internal {
            self.refresh_running = true;
        }
        let no_nodes = traversals.iter().all(Option::is_none);
        self.lookups.push(Lookup {
            id: q.id,
            kind: q.kind,
            internal: q.internal,
            target: q.target,
            started: now,
            traversals,
            announce: announce.then_some(AnnounceState {
                port: q.port,
                started: false,
                outstanding: 0,
                acked: 0,
                sent: 0,
            }),
            peers_seen: BTreeSet::new(),
        });
        if no_nodes {
            self.finish(now, q.id, LookupOutcome::NoNodes);
        } else {
            self.step_lookup(now, q.id);
        }
    }

    fn start_queued(&mut self, now: Instant) {
        while self.lookups.len() < MAX_ACTIVE_LOOKUPS {
            let Some(q) = self.queued.pop_front() else {
                break;
            };
            let announce = q.kind == LookupKind::Announce;
            self.activate(now, q, announce);
        }
    }

    fn step_lookups(&mut self, now: Instant) {
        let ids: Vec<LookupId> = self.lookups.iter().map(|l| l.id).collect();
        for id in ids {
            self.step_lookup(now, id);
        }
        self.start_queued(now);
    }

    /// Sends the next queries of lookup `id`, moves it to its announce phase, or ends it.
    fn step_lookup(&mut self, now: Instant, id: LookupId) {
        let mut to_send = Vec::new();
        for fam in 0..2 {
            let capacity = MAX_OUTSTANDING_QUERIES.saturating_sub(self.pending.len());
            let Some(lookup) = self.lookups.iter_mut().find(|l| l.id == id) else {
                return;
            };
            let kind = lookup.kind;
            let target = lookup.target;
            let Some(t) = lookup.traversals[fam].as_mut() else {
                continue;
            };
            to_send.clear();
            t.step(capacity, &mut to_send);
            for &(node, addr) in &to_send {
                let method = match kind {
                    LookupKind::GetPeers | LookupKind::Announce => Method::GetPeers {
                        info_hash: target.into(),
                        want: None,
                    },
                    LookupKind::Bootstrap | LookupKind::FindNode => {
                        Method::FindNode { target, want: None }
                    }
                };
                let purpose = Purpose::Lookup {
                    lookup: id,
                    family: fam,
                };
                if !self.send_query(now, addr, node, method, purpose, true)
                    && let Some(t) = self.traversal(id, fam)
                {
                    t.failed(addr, true);
                }
            }
        }
        let Some(lookup) = self.lookups.iter_mut().find(|l| l.id == id) else {
            return;
        };
        let searching = lookup.traversals.iter().flatten().any(|t| !t.done);
        if searching {
            return;
        }
        match &lookup.announce {
            Some(a) if !a.started => self.start_announce_phase(now, id),
            Some(_) => {}
            None => self.finish(now, id, LookupOutcome::Converged),
        }
    }

    fn start_announce_phase(&mut self, now: Instant, id: LookupId) {
        let Some(lookup) = self.lookups.iter_mut().find(|l| l.id == id) else {
            return;
        };
        let info_hash: InfoHash = lookup.target.into();
        let port = lookup.announce.as_ref().and_then(|a| a.port);
        let mut targets: Vec<(NodeId, SocketAddr, Vec<u8>)> = Vec::new();
        for t in lookup.traversals.iter().flatten() {
            for c in t.announce_targets() {
                if let Some(token) = &c.token {
                    targets.push((c.id, c.addr, token.clone()));
                }
            }
        }
        if let Some(a) = lookup.announce.as_mut() {
            a.started = true;
        }
        let mut sent = 0;
        for (node, addr, token) in &targets {
            let method = Method::AnnouncePeer {
                info_hash,
                port: port.unwrap_or(0),
                implied_port: port.is_none(),
                token,
            };
            if self.send_query(
                now,
                *addr,
                Some(*node),
                method,
                Purpose::Announce { lookup: id },
                false,
            ) {
                sent += 1;
            }
        }
        let Some(lookup) = self.lookups.iter_mut().find(|l| l.id == id) else {
            return;
        };
        if let Some(a) = lookup.announce.as_mut() {
            a.sent = sent;
            a.outstanding = sent;
        }
        if sent == 0 {
            self.finish(now, id, LookupOutcome::Converged);
        }
    }

    fn announce_answered(&mut self, now: Instant, id: LookupId, ok: bool) {
        let Some(lookup) = self.lookups.iter_mut().find(|l| l.id == id) else {
            return;
        };
        let Some(a) = lookup.announce.as_mut() else {
            return;
        };
        a.outstanding = a.outstanding.saturating_sub(1);
        a.acked += u32::from(ok);
        if a.outstanding == 0 {
            self.finish(now, id, LookupOutcome::Converged);
        }
    }

    fn lookup_response(
        &mut self,
        id: LookupId,
        fam: usize,
        from: SocketAddr,
        r: &Response<'_>,
        counts: bool,
        fast: bool,
    ) {
        let own = self.id;
        let enforce = self.config.enforce_node_id;
        let local = self.config.local_scope;
        let learnt_from = Some(from.ip());
        let Some(lookup) = self.lookups.iter_mut().find(|l| l.id == id) else {
            return;
        };
        let Some(t) = lookup.traversals.get_mut(fam).and_then(Option::as_mut) else {
            return;
        };
        let token = r.token.filter(|t| t.len() <= MAX_FOREIGN_TOKEN_LEN);
        let Some(depth) = t.responded(from, r.id, counts, token, fast) else {
            return;
        };
        let nodes: Box<dyn Iterator<Item = (NodeId, SocketAddr)>> = match fam {
            0 => Box::new(r.nodes.into_iter().flat_map(compact::nodes_v4)),
            _ => Box::new(r.nodes6.into_iter().flat_map(compact::nodes_v6)),
        };
        for (node, addr) in nodes {
            let same_family = family(&canonical(addr)) == fam;
            if node == own || !same_family {
                continue;
            }
            if !dialable(local, addr, learnt_from) {
                self.stats.refused_addresses += 1;
                continue;
            }
            let node_counts = !enforce || node.is_valid_for(addr.ip());
            t.add(Some(node), addr, depth.saturating_add(1), node_counts);
        }
        // Peers (get_peers and announce lookups).
        let Some(values) = &r.values else { return };
        if !matches!(lookup.kind, LookupKind::GetPeers | LookupKind::Announce) {
            return;
        }
        let mut peers = Vec::new();
        for v in values {
            let Some(peer) = compact::peer(v) else {
                continue;
            };
            let peer = canonical(peer);
            if family(&peer) != fam {
                continue;
            }
            // The engine dials reported peers: the same rules as for nodes.
            if !dialable(local, peer, learnt_from) {
                self.stats.refused_addresses += 1;
                continue;
            }
            if lookup.peers_seen.len() < MAX_LOOKUP_PEERS && lookup.peers_seen.insert(peer) {
                peers.push(peer);
            }
        }
        if !peers.is_empty() && !lookup.internal {
            let info_hash = lookup.target.into();
            self.push_event(Event::Peers {
                lookup: id,
                info_hash,
                peers,
            });
        }
    }

    /// Ends lookup `id` and reports it.
    fn finish(&mut self, now: Instant, id: LookupId, outcome: LookupOutcome) {
        let Some(pos) = self.lookups.iter().position(|l| l.id == id) else {
            return;
        };
        let lookup = self.lookups.swap_remove(pos);
        // Nodes learned but never queried fill empty bucket slots once they answer a ping: this
        // is how the far buckets get populated without extra lookups.
        for (fam, t) in lookup.traversals.iter().enumerate() {
            let Some(t) = t else { continue };
            for c in t.never_queried() {
                if self.verifying.len() >= MAX_VERIFY_PINGS {
                    break;
                }
                if c.counts && self.tables[fam].could_take(now, c.id, c.addr, true) {
                    self.verify(now, c.id, c.addr);
                }
            }
        }
        if lookup.internal {
            self.refresh_running = false;
            return;
        }
        let mut queried = 0;
        let mut responded = 0;
        let mut rounds = 0;
        for t in lookup.traversals.iter().flatten() {
            queried += t.queried;
            responded += t.responded;
            rounds = rounds.max(u32::from(t.rounds));
        }
        if let Some(a) = &lookup.announce
            && a.started
        {
            self.push_event(Event::Announced {
                lookup: id,
                info_hash: lookup.target.into(),
                acked: a.acked,
                sent: a.sent,
            });
        }
        self.push_event(Event::LookupDone {
            lookup: id,
            kind: lookup.kind,
            target: lookup.target,
            outcome,
            queried,
            responded,
            rounds,
        });
    }

    // -----------------------------------------------------------------------------------------
    // Maintenance
    // -----------------------------------------------------------------------------------------

    fn tick(&mut self, now: Instant) {
        let expired: Vec<LookupId> = self
            .lookups
            .iter()
            .filter(|l| now.saturating_duration_since(l.started) >= LOOKUP_TIMEOUT)
            .map(|l| l.id)
            .collect();
        for id in expired {
            self.finish(now, id, LookupOutcome::TimedOut);
        }
        if now >= self.next_store_expire {
            self.store.expire(now);
            self.next_store_expire = now + STORE_EXPIRE_INTERVAL;
        }
        let mut can_start = !self.refresh_running && self.lookups.len() < MAX_ACTIVE_LOOKUPS;
        if can_start && now >= self.next_rebootstrap {
            self.next_rebootstrap = now + REBOOTSTRAP_INTERVAL;
            if self.tables[0].live() + self.tables[1].live() < BUCKET_SIZE {
                // Too few nodes to work with (a lost bootstrap, an outage): bootstrap again.
                self.start_lookup(now, LookupKind::Bootstrap, self.id, None, true);
                can_start = false;
            }
        }
        if can_start {
            for fam in 0..2 {
                if fam == 1 && self.tables[1].is_empty() {
                    continue; // no IPv6 node ever answered: nothing to refresh.
                }
                if let Some(target) = self.tables[fam].refresh_target(now, &mut self.rng) {
                    self.start_lookup(now, LookupKind::FindNode, target, None, true);
                    break;
                }
            }
        }
        for fam in 0..2 {
            if let Some((target, id, addr)) = self.tables[fam].explore_target(now, &mut self.rng) {
                let method = Method::FindNode { target, want: None };
                let _ = self.send_query(now, addr, Some(id), method, Purpose::Explore, false);
            }
            if let Some((id, addr)) = self.tables[fam].questionable_to_ping(now)
                && !self.send_query(
                    now,
                    addr,
                    Some(id),
                    Method::Ping,
                    Purpose::Maintenance,
                    false,
                )
            {
                self.tables[fam].failed(&id, addr);
            }
        }
    }

    /// Checks internal invariants; for tests, the simulation and fuzzing.
    ///
    /// # Panics
    /// When a table exceeds its limits or a bookkeeping invariant is broken.
    #[doc(hidden)]
    pub fn check_invariants(&self) {
        for t in &self.tables {
            t.check_invariants();
        }
        assert!(self.pending.len() <= MAX_OUTSTANDING_QUERIES);
        assert!(self.lookups.len() <= MAX_ACTIVE_LOOKUPS);
        assert!(self.queued.len() <= MAX_QUEUED_LOOKUPS);
        assert!(self.verifying.len() <= MAX_VERIFY_PINGS);
        assert!(self.transmits.len() <= MAX_QUEUED_TRANSMITS);
        assert!(self.events.len() <= MAX_QUEUED_EVENTS);
        assert!(self.store.info_hashes() <= crate::limits::MAX_INFO_HASHES);
        assert!(self.store.peer_count() <= crate::limits::MAX_STORED_PEERS);
        assert!(self.timeouts.len() <= 4 * MAX_OUTSTANDING_QUERIES + 1);
    }

    /// Whether the peer store holds a live peer for `info_hash`; for tests.
    #[doc(hidden)]
    #[must_use]
    pub fn stores(&self, info_hash: &InfoHash) -> bool {
        let mut rng = Rng::from_u64(0);
        !self
            .store
            .peers(self.last_now, info_hash, false, 1, &mut rng)
            .is_empty()
            || !self
                .store
                .peers(self.last_now, info_hash, true, 1, &mut rng)
                .is_empty()
    }

    /// The number of buckets in each routing table (IPv4, IPv6); for tests.
    #[doc(hidden)]
    #[must_use]
    pub fn bucket_counts(&self) -> [usize; 2] {
        [self.tables[0].bucket_count(), self.tables[1].bucket_count()]
    }
}

/// Trims a response that encodes to `len` > [`MAX_REPLY_LEN`] bytes: drops just enough
/// `values`, then `samples`, then `nodes6`, then `nodes`.
fn shrink(msg: &mut Message<'_>, len: usize) {
    let Body::Response(r) = &mut msg.body else {
        return;
    };
    let mut excess = len.saturating_sub(MAX_REPLY_LEN);
    if let Some(values) = &mut r.values {
        let cost = values
            .first()
            .map_or(1, |v| krpc::encoded_bytes_len(v.len()));
        let drop = excess.div_ceil(cost).min(values.len());
        values.truncate(values.len() - drop);
        excess = excess.saturating_sub(drop * cost);
        if values.is_empty() {
            r.values = None;
            excess = excess.saturating_sub(b"6:valuesle".len());
        }
    }
    if excess > 0
        && let Some(samples) = &mut r.samples
    {
        let drop = excess.div_ceil(20).min(samples.len() / 20) * 20;
        *samples = &samples[..samples.len() - drop];
        excess = excess.saturating_sub(drop);
    }
    if excess > 0 && r.nodes6.is_some() {
        excess = excess.saturating_sub(r.nodes6.map_or(0, <[u8]>::len));
        r.nodes6 = None;
    }
    if excess > 0 {
        r.nodes = None;
    }
}
