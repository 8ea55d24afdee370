//! Sans-IO tracker client: announces the torrents this node seeds to the HTTP and UDP trackers
//! their metainfo lists.
//!
//! # Call order
//!
//! [`TrackerClient::new`] with a PRNG seed; [`TrackerClient::add_torrent`] per torrent (with its
//! `announce-list` tiers, or `[[announce]]`). After **every** call that takes `now` (adding,
//! [`TrackerClient::completed`], [`TrackerClient::remove_torrent`], [`TrackerClient::shutdown`],
//! the `handle_*` inputs), drain [`TrackerClient::poll_transmit`] and
//! [`TrackerClient::poll_event`] to `None`, then sleep until [`TrackerClient::poll_timeout`] and
//! call [`TrackerClient::handle_timeout`] when it passes.
//!
//! For each [`Transmit`] the engine does the I/O:
//! - [`Transmit::Http`]: resolve, connect (TLS for `https`), `GET` the URL, read at most
//!   [`MAX_TRACKER_RESPONSE_LEN`](crate::limits::MAX_TRACKER_RESPONSE_LEN) bytes of body, and
//!   report [`TrackerClient::handle_http_response`] (any status) or
//!   [`TrackerClient::handle_request_failed`] (DNS, connect, I/O error).
//! - [`Transmit::Udp`]: resolve `host`, send `payload` from the client's UDP socket (not the
//!   tracker server's), and feed every datagram that socket receives to
//!   [`TrackerClient::handle_udp_datagram`]; report a resolve or send error with
//!   [`TrackerClient::handle_request_failed`]. The client retransmits by itself (BEP 15 timeouts),
//!   possibly reusing a [`RequestId`].
//!
//! # Behaviour
//!
//! - **Tiers (BEP 12)**: each tier is shuffled once with the seeded PRNG. Every tier announces
//!   independently (libtorrent's `announce_to_all_tiers`, right for a seed that wants to be
//!   found everywhere); inside a tier the trackers are tried in order until one answers, and the
//!   one that answered moves to the front of its tier.
//! - **Events (BEP 3)**: the first announce to each tracker is `started` (a seed sends `left=0`
//!   from the start, and never `completed` for data it had when it started);
//!   [`TrackerClient::completed`] sends `completed` to trackers already told `started`;
//!   [`TrackerClient::remove_torrent`] / [`TrackerClient::shutdown`] send `stopped` (one attempt)
//!   to each tier's tracker that was told `started`, then emit [`ClientEvent::Stopped`].
//! - **Schedule**: re-announce after the tracker's `interval` (at least its `min interval`),
//!   clamped to [[`CLIENT_MIN_ANNOUNCE_INTERVAL`], [`CLIENT_MAX_ANNOUNCE_INTERVAL`]]. A failure
//!   (timeout, error, `failure reason`, non-200 status, bad body) moves on to the next tracker
//!   of the tier at once; when all failed, the tier backs off exponentially from
//!   [`CLIENT_RETRY_BASE_INTERVAL`] up to [`CLIENT_MAX_RETRY_INTERVAL`].
//! - **UDP (BEP 15)**: connect, then announce with the connection ID (cached per `host:port` for
//!   [`CLIENT_CONNECTION_ID_TTL`] and shared across torrents). Retransmit after `15 × 2^n`
//!   seconds, `n` up to [`ClientConfig::udp_retransmits`] (default
//!   [`DEFAULT_UDP_RETRANSMITS`], at most [`MAX_UDP_RETRANSMITS`]); an announce retransmitted
//!   with a connection ID over a minute old goes back to connect. Responses are matched by
//!   random transaction ID and the tracker's port; the peer layout (6 or 18 bytes) follows the
//!   family of the datagram's source address.
//! - **Identity**: the peer ID comes from the engine; the `key` (BEP 7, 32 random bits) is drawn
//!   per torrent from the PRNG and stays the same for the torrent's session.

pub mod response;
#[cfg(test)]
mod tests;
pub mod url;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use seednode_wire::{InfoHash, PeerId};

pub use self::response::{
    AnnounceReply, HttpAnnounceResponse, ResponseError, UdpResponse, parse_http_announce,
    parse_udp_response,
};
pub use self::url::TrackerUrl;
use crate::announce::AnnounceEvent;
use crate::limits::{
    CLIENT_CONNECTION_ID_TTL, CLIENT_DEFAULT_ANNOUNCE_INTERVAL, CLIENT_HTTP_TIMEOUT,
    CLIENT_MAX_ANNOUNCE_INTERVAL, CLIENT_MAX_RETRY_INTERVAL, CLIENT_MIN_ANNOUNCE_INTERVAL,
    CLIENT_NUMWANT, CLIENT_RETRY_BASE_INTERVAL, DEFAULT_UDP_RETRANSMITS, MAX_CLIENT_CONNECTION_IDS,
    MAX_CLIENT_EVENTS, MAX_CLIENT_TRACKERS, MAX_UDP_RETRANSMITS, UDP_RETRANSMIT_BASE_TIMEOUT,
};
use crate::query::percent_encode;
use crate::server::canonical_addr;
use crate::udp::packet::{AnnounceFields, write_announce_request, write_connect_request};
use response::bounded_text;
use seednode_wire::rng::Rng;

/// Client settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// This node's peer ID (BEP 3), the one its peer handshakes carry.
    pub peer_id: PeerId,
    /// TCP port this node accepts peers on.
    pub port: u16,
    /// `numwant` sent; [`CLIENT_NUMWANT`] by default. `stopped` always sends 0.
    pub numwant: u32,
    /// BEP 15 retransmits before a UDP tracker counts as failed; clamped to
    /// [`MAX_UDP_RETRANSMITS`].
    pub udp_retransmits: u32,
    /// How long to wait for an HTTP announce's outcome.
    pub http_timeout: Duration,
    /// This node's global IPv6 address, sent as `ipv6=` in HTTP announces (BEP 7) so a
    /// tracker reached over IPv4 can list the node to IPv6 peers too; `None` sends nothing.
    pub ipv6: Option<std::net::Ipv6Addr>,
}

impl ClientConfig {
    /// Defaults for everything but identity.
    #[must_use]
    pub const fn new(peer_id: PeerId, port: u16) -> Self {
        Self {
            peer_id,
            port,
            numwant: CLIENT_NUMWANT,
            udp_retransmits: DEFAULT_UDP_RETRANSMITS,
            http_timeout: CLIENT_HTTP_TIMEOUT,
            ipv6: None,
        }
    }
}

/// Names one outstanding request so the engine can report its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(u64);

/// I/O the engine must perform for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// `GET url` (an `http` or `https` URL).
    Http {
        /// Report the outcome with this.
        id: RequestId,
        /// The full announce URL.
        url: String,
    },
    /// Send `payload` to `host:port` over UDP.
    Udp {
        /// Report a resolve or send failure with this.
        id: RequestId,
        /// Host name or IP literal.
        host: String,
        /// UDP port.
        port: u16,
        /// The BEP 15 datagram.
        payload: Vec<u8>,
    },
}

/// What the client tells the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// A tracker accepted an announce.
    Announced {
        /// The torrent.
        info_hash: InfoHash,
        /// The tracker URL.
        tracker: String,
        /// The event that was sent.
        event: AnnounceEvent,
        /// When the next regular announce to this tier is due, from now.
        interval: Duration,
        /// Seeders the tracker reported.
        seeders: Option<u32>,
        /// Leechers the tracker reported.
        leechers: Option<u32>,
        /// `warning message`, if any.
        warning: Option<String>,
    },
    /// Peers from a tracker (never empty). A seed may connect out to leechers it learns of
    /// (transmission only finds seeders that way, INTEROP.md).
    Peers {
        /// The torrent.
        info_hash: InfoHash,
        /// At most [`crate::limits::MAX_CLIENT_PEERS_PER_RESPONSE`] addresses.
        peers: Vec<SocketAddr>,
    },
    /// An announce failed.
    Failed {
        /// The torrent.
        info_hash: InfoHash,
        /// The tracker URL.
        tracker: String,
        /// Why (bounded text: a `failure reason`, an error packet, "timed out", ...).
        reason: String,
    },
    /// Every `stopped` announce for a removed torrent is done (answered or failed); the torrent
    /// is forgotten.
    Stopped {
        /// The torrent.
        info_hash: InfoHash,
    },
}

/// Why a torrent could not be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The torrent is already being announced.
    #[error("torrent already added")]
    AlreadyAdded,
    /// None of its tracker URLs is usable (HTTP, HTTPS or UDP with a port).
    #[error("no usable tracker URL")]
    NoUsableTracker,
}

#[derive(Debug)]
struct Entry {
    url: TrackerUrl,
    /// The tracker was told `started` (and answered).
    started: bool,
    tracker_id: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Http {
        id: RequestId,
        event: AnnounceEvent,
        deadline: Instant,
    },
    UdpConnect {
        id: RequestId,
        txid: u32,
        attempt: u32,
        event: AnnounceEvent,
        deadline: Instant,
    },
    UdpAnnounce {
        id: RequestId,
        txid: u32,
        attempt: u32,
        event: AnnounceEvent,
        deadline: Instant,
        connection_id: u64,
        connected_at: Instant,
    },
}

impl State {
    const fn request(self) -> Option<(RequestId, Option<u32>)> {
        match self {
            Self::Idle => None,
            Self::Http { id, .. } => Some((id, None)),
            Self::UdpConnect { id, txid, .. } | Self::UdpAnnounce { id, txid, .. } => {
                Some((id, Some(txid)))
            }
        }
    }

    const fn deadline(self) -> Option<Instant> {
        match self {
            Self::Idle => None,
            Self::Http { deadline, .. }
            | Self::UdpConnect { deadline, .. }
            | Self::UdpAnnounce { deadline, .. } => Some(deadline),
        }
    }
}

#[derive(Debug)]
struct Tier {
    trackers: Vec<Entry>,
    cursor: usize,
    state: State,
    next_announce: Instant,
    failed_rounds: u32,
    completed_pending: bool,
    /// Nothing more to send (stopped, or nothing to stop).
    done: bool,
}

#[derive(Debug)]
struct Torrent {
    key: u32,
    uploaded: u64,
    downloaded: u64,
    left: u64,
    stopping: bool,
    tiers: Vec<Tier>,
}

/// The tracker client machine. See the [module docs](self) for the call order.
#[derive(Debug)]
pub struct TrackerClient {
    config: ClientConfig,
    rng: Rng,
    torrents: BTreeMap<InfoHash, Torrent>,
    requests: HashMap<RequestId, (InfoHash, usize)>,
    txids: HashMap<u32, RequestId>,
    connection_ids: HashMap<(String, u16), (u64, Instant)>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<ClientEvent>,
    next_id: u64,
    dropped_events: u64,
}

fn udp_timeout(attempt: u32) -> Duration {
    UDP_RETRANSMIT_BASE_TIMEOUT * (1u32 << attempt.min(MAX_UDP_RETRANSMITS))
}

fn backoff(failed_rounds: u32) -> Duration {
    let exp = failed_rounds.saturating_sub(1).min(16);
    (CLIENT_RETRY_BASE_INTERVAL * (1u32 << exp)).min(CLIENT_MAX_RETRY_INTERVAL)
}

impl TrackerClient {
    /// A client with no torrents. `seed` (32 random bytes from the engine; fixed in tests)
    /// drives tier shuffling, `key`s and transaction IDs.
    #[must_use]
    pub fn new(config: ClientConfig, seed: [u8; 32]) -> Self {
        Self {
            config,
            rng: Rng::from_seed(seed),
            torrents: BTreeMap::new(),
            requests: HashMap::new(),
            txids: HashMap::new(),
            connection_ids: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_id: 0,
            dropped_events: 0,
        }
    }

    /// Starts announcing `info_hash` to `tiers` (the metainfo's `announce-list`, or
    /// `[[announce]]`); `left` is 0 for a seed. Unusable URLs and duplicates are skipped, empty
    /// tiers dropped, and at most [`MAX_CLIENT_TRACKERS`] kept. The first announces go out at
    /// once. Returns the number of trackers kept.
    ///
    /// # Errors
    /// [`ClientError::AlreadyAdded`], or [`ClientError::NoUsableTracker`] when no URL is usable.
    pub fn add_torrent(
        &mut self,
        now: Instant,
        info_hash: InfoHash,
        tiers: &[Vec<String>],
        left: u64,
    ) -> Result<usize, ClientError> {
        if self.torrents.contains_key(&info_hash) {
            return Err(ClientError::AlreadyAdded);
        }
        let mut seen = std::collections::HashSet::new();
        let mut kept = 0;
        let mut out = Vec::new();
        for urls in tiers {
            let mut trackers = Vec::new();
            for text in urls {
                if kept >= MAX_CLIENT_TRACKERS {
                    break;
                }
                let Some(url) = TrackerUrl::parse(text) else {
                    continue;
                };
                if !seen.insert(url.as_str().to_owned()) {
                    continue;
                }
                kept += 1;
                trackers.push(Entry {
                    url,
                    started: false,
                    tracker_id: None,
                });
            }
            if trackers.is_empty() {
                continue;
            }
            self.rng.shuffle(&mut trackers);
            out.push(Tier {
                trackers,
                cursor: 0,
                state: State::Idle,
                next_announce: now,
                failed_rounds: 0,
                completed_pending: false,
                done: false,
            });
        }
        if out.is_empty() {
            return Err(ClientError::NoUsableTracker);
        }
        let key = self.rng.next_u32();
        self.torrents.insert(
            info_hash,
            Torrent {
                key,
                uploaded: 0,
                downloaded: 0,
                left,
                stopping: false,
                tiers: out,
            },
        );
        self.drive(now);
        Ok(kept)
    }

    /// Updates the byte counts sent with the next announces (BEP 3 `uploaded`, `downloaded`,
    /// `left`).
    pub fn set_progress(
        &mut self,
        info_hash: &InfoHash,
        uploaded: u64,
        downloaded: u64,
        left: u64,
    ) {
        if let Some(t) = self.torrents.get_mut(info_hash) {
            t.uploaded = uploaded;
            t.downloaded = downloaded;
            t.left = left;
        }
    }

    /// The torrent finished downloading: `left` becomes 0 and trackers already told `started`
    /// get `completed` now (others will get `started` with `left=0`).
    pub fn completed(&mut self, now: Instant, info_hash: &InfoHash) {
        let Some(t) = self.torrents.get_mut(info_hash) else {
            return;
        };
        if t.stopping {
            return;
        }
        t.left = 0;
        for tier in &mut t.tiers {
            if tier.trackers.iter().any(|e| e.started) {
                tier.completed_pending = true;
                if tier.state == State::Idle {
                    tier.next_announce = now;
                }
            }
        }
        self.drive(now);
    }

    /// Stops announcing `info_hash`: in-flight announces are abandoned and each tier's tracker
    /// that was told `started` gets one `stopped`. [`ClientEvent::Stopped`] follows when all are
    /// done (at once if there is nothing to send).
    pub fn remove_torrent(&mut self, now: Instant, info_hash: &InfoHash) {
        let Some(t) = self.torrents.get_mut(info_hash) else {
            return;
        };
        if t.stopping {
            return;
        }
        t.stopping = true;
        for tier in &mut t.tiers {
            forget(&mut self.requests, &mut self.txids, tier.state);
            tier.state = State::Idle;
            match tier.trackers.iter().position(|e| e.started) {
                Some(i) => {
                    tier.cursor = i;
                    tier.next_announce = now;
                    tier.done = false;
                }
                None => tier.done = true,
            }
        }
        self.finish_if_stopped(info_hash);
        self.drive(now);
    }

    /// [`TrackerClient::remove_torrent`] for every torrent; the client is idle
    /// ([`TrackerClient::is_idle`]) once every `stopped` is answered or timed out. The engine may
    /// give up waiting earlier.
    pub fn shutdown(&mut self, now: Instant) {
        let all: Vec<InfoHash> = self.torrents.keys().copied().collect();
        for ih in all {
            self.remove_torrent(now, &ih);
        }
    }

    /// True when no torrent is being announced or stopped.
    #[must_use]
    pub fn is_idle(&self) -> bool {
        self.torrents.is_empty()
    }

    /// Number of torrents being announced (or stopped).
    #[must_use]
    pub fn torrent_count(&self) -> usize {
        self.torrents.len()
    }

    /// Events dropped because the engine did not drain [`TrackerClient::poll_event`]
    /// ([`MAX_CLIENT_EVENTS`]).
    #[must_use]
    pub const fn dropped_events(&self) -> u64 {
        self.dropped_events
    }

    /// Next I/O to perform.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event for the engine.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// When [`TrackerClient::handle_timeout`] should next be called; `None` when idle.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.torrents
            .values()
            .flat_map(|t| &t.tiers)
            .filter_map(|tier| match tier.state {
                State::Idle if tier.done => None,
                State::Idle => Some(tier.next_announce),
                s => s.deadline(),
            })
            .min()
    }

    /// Fires due announces and retransmits, and fails timed-out attempts.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.drive(now);
    }

    /// The outcome of a [`Transmit::Http`]: the HTTP status and body (at most
    /// [`MAX_TRACKER_RESPONSE_LEN`](crate::limits::MAX_TRACKER_RESPONSE_LEN) bytes; a longer body
    /// is a failure). Unknown or stale `id`s are ignored.
    pub fn handle_http_response(&mut self, now: Instant, id: RequestId, status: u16, body: &[u8]) {
        let Some((ih, t)) = self.current(id) else {
            return;
        };
        let State::Http { event, .. } = self.tier(&ih, t).map_or(State::Idle, |x| x.state) else {
            return;
        };
        match parse_http_announce(body) {
            Ok(HttpAnnounceResponse::Failure(reason)) => self.fail(now, &ih, t, reason),
            Ok(HttpAnnounceResponse::Success(reply)) if status == 200 => {
                self.succeed(now, &ih, t, event, reply);
            }
            _ if status != 200 => self.fail(now, &ih, t, format!("HTTP status {status}")),
            Ok(HttpAnnounceResponse::Success(_)) => {}
            Err(e) => self.fail(now, &ih, t, e.to_string()),
        }
        self.drive(now);
    }

    /// A [`Transmit`] could not be performed (DNS failure, connection refused, I/O error).
    /// Unknown or stale `id`s are ignored.
    pub fn handle_request_failed(&mut self, now: Instant, id: RequestId, reason: &str) {
        if let Some((ih, t)) = self.current(id) {
            self.fail(now, &ih, t, bounded_text(reason.as_bytes()));
            self.drive(now);
        }
    }

    /// A datagram received on the client's UDP socket from `src`. Returns true when it answered
    /// one of our requests (matched by transaction ID and the tracker's port); anything else is
    /// ignored and returns false.
    pub fn handle_udp_datagram(&mut self, now: Instant, src: SocketAddr, datagram: &[u8]) -> bool {
        let src = canonical_addr(src);
        let Some(response) = parse_udp_response(datagram, src.is_ipv6()) else {
            return false;
        };
        let txid = match &response {
            UdpResponse::Connect { transaction_id, .. }
            | UdpResponse::Announce { transaction_id, .. }
            | UdpResponse::Error { transaction_id, .. } => *transaction_id,
        };
        let Some(&id) = self.txids.get(&txid) else {
            return false;
        };
        let Some((ih, t)) = self.current(id) else {
            return false;
        };
        let Some(tier) = self.tier(&ih, t) else {
            return false;
        };
        let TrackerUrl::Udp { host, port, .. } = &tier.trackers[tier.cursor].url else {
            return false;
        };
        if *port != src.port() {
            return false;
        }
        let host_port = (host.clone(), *port);
        match (tier.state, response) {
            (State::UdpConnect { event, .. }, UdpResponse::Connect { connection_id, .. }) => {
                if self.connection_ids.len() >= MAX_CLIENT_CONNECTION_IDS {
                    self.connection_ids.clear();
                }
                self.connection_ids.insert(host_port, (connection_id, now));
                self.send_udp_announce(now, &ih, t, event, 0, connection_id, now);
            }
            (State::UdpAnnounce { event, .. }, UdpResponse::Announce { reply, .. }) => {
                self.succeed(now, &ih, t, event, reply);
            }
            (
                State::UdpConnect { .. } | State::UdpAnnounce { .. },
                UdpResponse::Error { message, .. },
            ) => {
                self.fail(now, &ih, t, message);
            }
            _ => return false,
        }
        self.drive(now);
        true
    }

    // ------------------------------------------------------------------------------------------

    /// `(info_hash, tier)` of the request `id` if it is the tier's current one.
    fn current(&self, id: RequestId) -> Option<(InfoHash, usize)> {
        let &(ih, t) = self.requests.get(&id)?;
        let tier = self.tier(&ih, t)?;
        (tier.state.request().map(|(rid, _)| rid) == Some(id)).then_some((ih, t))
    }

    fn tier(&self, ih: &InfoHash, t: usize) -> Option<&Tier> {
        self.torrents.get(ih)?.tiers.get(t)
    }

    fn push_event(&mut self, event: ClientEvent) {
        if self.events.len() >= MAX_CLIENT_EVENTS {
            self.dropped_events += 1;
        } else {
            self.events.push_back(event);
        }
    }

    fn new_id(&mut self) -> RequestId {
        self.next_id += 1;
        RequestId(self.next_id)
    }

    fn new_txid(&mut self) -> u32 {
        loop {
            let txid = self.rng.next_u32();
            if !self.txids.contains_key(&txid) {
                return txid;
            }
        }
    }

    fn max_attempt(&self, ih: &InfoHash) -> u32 {
        if self.torrents.get(ih).is_some_and(|t| t.stopping) {
            0
        } else {
            self.config.udp_retransmits.min(MAX_UDP_RETRANSMITS)
        }
    }

    /// Fires everything due at `now`.
    fn drive(&mut self, now: Instant) {
        let mut due = Vec::new();
        for (ih, torrent) in &self.torrents {
            for (t, tier) in torrent.tiers.iter().enumerate() {
                match tier.state {
                    State::Idle if !tier.done && tier.next_announce <= now => {
                        due.push((*ih, t, false));
                    }
                    s if s.deadline().is_some_and(|d| d <= now) => due.push((*ih, t, true)),
                    _ => {}
                }
            }
        }
        for (ih, t, timed_out) in due {
            if timed_out {
                self.on_timeout(now, &ih, t);
            } else {
                self.start(now, &ih, t);
            }
        }
    }

    /// Starts an announce to the tier's current tracker.
    fn start(&mut self, now: Instant, ih: &InfoHash, t: usize) {
        let Some(torrent) = self.torrents.get(ih) else {
            return;
        };
        let tier = &torrent.tiers[t];
        let entry = &tier.trackers[tier.cursor];
        let event = if torrent.stopping {
            AnnounceEvent::Stopped
        } else if !entry.started {
            AnnounceEvent::Started
        } else if tier.completed_pending {
            AnnounceEvent::Completed
        } else {
            AnnounceEvent::None
        };
        match &entry.url {
            TrackerUrl::Http { url } => {
                let url = self.http_url(url, ih, torrent, entry, event);
                let id = self.new_id();
                self.transmits.push_back(Transmit::Http { id, url });
                self.requests.insert(id, (*ih, t));
                let deadline = now + self.config.http_timeout;
                self.set_state(
                    ih,
                    t,
                    State::Http {
                        id,
                        event,
                        deadline,
                    },
                );
            }
            TrackerUrl::Udp { host, port, .. } => {
                let cached = self
                    .connection_ids
                    .get(&(host.clone(), *port))
                    .filter(|(_, at)| now.saturating_duration_since(*at) < CLIENT_CONNECTION_ID_TTL)
                    .copied();
                match cached {
                    Some((cid, at)) => self.send_udp_announce(now, ih, t, event, 0, cid, at),
                    None => self.send_udp_connect(now, ih, t, event, 0, None),
                }
            }
        }
    }

    fn set_state(&mut self, ih: &InfoHash, t: usize, state: State) {
        if let Some(tier) = self.torrents.get_mut(ih).and_then(|x| x.tiers.get_mut(t)) {
            tier.state = state;
        }
    }

    fn udp_target(&self, ih: &InfoHash, t: usize) -> Option<(String, u16)> {
        let tier = self.tier(ih, t)?;
        match &tier.trackers[tier.cursor].url {
            TrackerUrl::Udp { host, port, .. } => Some((host.clone(), *port)),
            TrackerUrl::Http { .. } => None,
        }
    }

    /// Sends (or re-sends, keeping `reuse`'s request and transaction IDs) a connect request.
    fn send_udp_connect(
        &mut self,
        now: Instant,
        ih: &InfoHash,
        t: usize,
        event: AnnounceEvent,
        attempt: u32,
        reuse: Option<(RequestId, u32)>,
    ) {
        let Some((host, port)) = self.udp_target(ih, t) else {
            return;
        };
        let (id, txid) = reuse.unwrap_or_else(|| {
            let prev = self.tier(ih, t).map(|x| x.state);
            if let Some(prev) = prev {
                forget(&mut self.requests, &mut self.txids, prev);
            }
            (self.new_id(), self.new_txid())
        });
        let mut payload = Vec::with_capacity(16);
        write_connect_request(&mut payload, txid);
        self.transmits.push_back(Transmit::Udp {
            id,
            host,
            port,
            payload,
        });
        self.requests.insert(id, (*ih, t));
        self.txids.insert(txid, id);
        let deadline = now + udp_timeout(attempt);
        self.set_state(
            ih,
            t,
            State::UdpConnect {
                id,
                txid,
                attempt,
                event,
                deadline,
            },
        );
    }

    /// Sends an announce with `connection_id`; a retransmit (`attempt > 0` in the same announce
    /// phase) keeps the request and transaction IDs.
    #[allow(clippy::too_many_arguments)]
    fn send_udp_announce(
        &mut self,
        now: Instant,
        ih: &InfoHash,
        t: usize,
        event: AnnounceEvent,
        attempt: u32,
        connection_id: u64,
        connected_at: Instant,
    ) {
        let Some((host, port)) = self.udp_target(ih, t) else {
            return;
        };
        let prev = self.tier(ih, t).map_or(State::Idle, |x| x.state);
        let (id, txid) = match prev {
            State::UdpAnnounce { id, txid, .. } if attempt > 0 => (id, txid),
            _ => {
                forget(&mut self.requests, &mut self.txids, prev);
                (self.new_id(), self.new_txid())
            }
        };
        let Some(torrent) = self.torrents.get(ih) else {
            return;
        };
        let fields = AnnounceFields {
            connection_id,
            transaction_id: txid,
            info_hash: *ih,
            peer_id: self.config.peer_id,
            downloaded: torrent.downloaded,
            left: torrent.left,
            uploaded: torrent.uploaded,
            event: event.to_udp(),
            key: torrent.key,
            num_want: if event == AnnounceEvent::Stopped {
                0
            } else {
                i32::try_from(self.config.numwant).unwrap_or(i32::MAX)
            },
            port: self.config.port,
        };
        let mut payload = Vec::with_capacity(crate::udp::packet::ANNOUNCE_REQUEST_LEN);
        write_announce_request(&mut payload, &fields);
        self.transmits.push_back(Transmit::Udp {
            id,
            host,
            port,
            payload,
        });
        self.requests.insert(id, (*ih, t));
        self.txids.insert(txid, id);
        let deadline = now + udp_timeout(attempt);
        self.set_state(
            ih,
            t,
            State::UdpAnnounce {
                id,
                txid,
                attempt,
                event,
                deadline,
                connection_id,
                connected_at,
            },
        );
    }

    fn on_timeout(&mut self, now: Instant, ih: &InfoHash, t: usize) {
        let Some(state) = self.tier(ih, t).map(|x| x.state) else {
            return;
        };
        let max = self.max_attempt(ih);
        match state {
            State::Idle => {}
            State::Http { .. } => self.fail(now, ih, t, "timed out".to_owned()),
            State::UdpConnect { attempt, .. } | State::UdpAnnounce { attempt, .. }
                if attempt >= max =>
            {
                self.fail(now, ih, t, "timed out".to_owned());
            }
            State::UdpConnect {
                id,
                txid,
                attempt,
                event,
                ..
            } => self.send_udp_connect(now, ih, t, event, attempt + 1, Some((id, txid))),
            State::UdpAnnounce {
                attempt,
                event,
                connection_id,
                connected_at,
                ..
            } => {
                if now.saturating_duration_since(connected_at) >= CLIENT_CONNECTION_ID_TTL {
                    // BEP 15: "it is necessary to rerequest a connection ID when it has expired".
                    if let Some(key) = self.udp_target(ih, t) {
                        self.connection_ids.remove(&key);
                    }
                    self.send_udp_connect(now, ih, t, event, attempt + 1, None);
                } else {
                    self.send_udp_announce(
                        now,
                        ih,
                        t,
                        event,
                        attempt + 1,
                        connection_id,
                        connected_at,
                    );
                }
            }
        }
    }

    fn fail(&mut self, now: Instant, ih: &InfoHash, t: usize, reason: String) {
        let udp_key = self.udp_target(ih, t);
        let Some(torrent) = self.torrents.get_mut(ih) else {
            return;
        };
        let stopping = torrent.stopping;
        let tier = &mut torrent.tiers[t];
        forget(&mut self.requests, &mut self.txids, tier.state);
        tier.state = State::Idle;
        let tracker = tier.trackers[tier.cursor].url.as_str().to_owned();
        if let Some(key) = udp_key {
            // The tracker may have restarted with a new secret.
            self.connection_ids.remove(&key);
        }
        let mut retry_now = false;
        if stopping {
            tier.done = true;
        } else if tier.cursor + 1 < tier.trackers.len() {
            tier.cursor += 1;
            retry_now = true;
        } else {
            tier.cursor = 0;
            tier.failed_rounds = tier.failed_rounds.saturating_add(1);
            tier.next_announce = now + backoff(tier.failed_rounds);
        }
        self.push_event(ClientEvent::Failed {
            info_hash: *ih,
            tracker,
            reason,
        });
        if stopping {
            self.finish_if_stopped(ih);
        } else if retry_now {
            self.start(now, ih, t);
        }
    }

    fn succeed(
        &mut self,
        now: Instant,
        ih: &InfoHash,
        t: usize,
        event: AnnounceEvent,
        reply: AnnounceReply,
    ) {
        let Some(torrent) = self.torrents.get_mut(ih) else {
            return;
        };
        let stopping = torrent.stopping;
        let seed = torrent.left == 0;
        let tier = &mut torrent.tiers[t];
        forget(&mut self.requests, &mut self.txids, tier.state);
        tier.state = State::Idle;
        if event == AnnounceEvent::Started && seed {
            // A tracker told `started` with `left=0` never needs `completed` (BEP 3).
            tier.completed_pending = false;
        }
        let entry = &mut tier.trackers[tier.cursor];
        if event != AnnounceEvent::Stopped {
            entry.started = true;
        }
        if reply.tracker_id.is_some() {
            entry.tracker_id.clone_from(&reply.tracker_id);
        }
        let tracker = entry.url.as_str().to_owned();
        // BEP 12: the tracker that answered moves to the front of its tier.
        tier.trackers[..=tier.cursor].rotate_right(1);
        tier.cursor = 0;
        tier.failed_rounds = 0;
        if event == AnnounceEvent::Completed {
            tier.completed_pending = false;
        }
        let asked = reply
            .interval
            .max(reply.min_interval)
            .map_or(CLIENT_DEFAULT_ANNOUNCE_INTERVAL, |s| {
                Duration::from_secs(u64::from(s))
            });
        let interval = asked.clamp(CLIENT_MIN_ANNOUNCE_INTERVAL, CLIENT_MAX_ANNOUNCE_INTERVAL);
        if event == AnnounceEvent::Stopped {
            tier.done = true;
        } else {
            tier.next_announce = if tier.completed_pending {
                now
            } else {
                now + interval
            };
        }
        self.push_event(ClientEvent::Announced {
            info_hash: *ih,
            tracker,
            event,
            interval,
            seeders: reply.seeders,
            leechers: reply.leechers,
            warning: reply.warning,
        });
        if !reply.peers.is_empty() && !stopping {
            self.push_event(ClientEvent::Peers {
                info_hash: *ih,
                peers: reply.peers,
            });
        }
        if stopping {
            self.finish_if_stopped(ih);
        }
    }

    fn finish_if_stopped(&mut self, ih: &InfoHash) {
        let finished = self
            .torrents
            .get(ih)
            .is_some_and(|t| t.stopping && t.tiers.iter().all(|x| x.done));
        if finished {
            if let Some(t) = self.torrents.remove(ih) {
                for tier in &t.tiers {
                    forget(&mut self.requests, &mut self.txids, tier.state);
                }
            }
            self.push_event(ClientEvent::Stopped { info_hash: *ih });
        }
    }

    /// The BEP 3 announce URL (compact, with `key`, `numwant`, `trackerid` when the tracker gave
    /// one, and `event` unless it is a regular announce).
    fn http_url(
        &self,
        base: &str,
        ih: &InfoHash,
        torrent: &Torrent,
        entry: &Entry,
        event: AnnounceEvent,
    ) -> String {
        let mut url = String::with_capacity(base.len() + 256);
        url.push_str(base);
        url.push(if base.contains('?') { '&' } else { '?' });
        url.push_str("info_hash=");
        percent_encode(&ih.0, &mut url);
        url.push_str("&peer_id=");
        percent_encode(&self.config.peer_id.0, &mut url);
        let numwant = if event == AnnounceEvent::Stopped {
            0
        } else {
            self.config.numwant
        };
        url.push_str(&format!(
            "&port={}&uploaded={}&downloaded={}&left={}&compact=1&no_peer_id=1&numwant={}&key={:08x}",
            self.config.port, torrent.uploaded, torrent.downloaded, torrent.left, numwant, torrent.key
        ));
        if let Some(name) = event.as_http() {
            url.push_str("&event=");
            url.push_str(name);
        }
        if let Some(id) = &entry.tracker_id {
            url.push_str("&trackerid=");
            percent_encode(id, &mut url);
        }
        if let Some(ip) = self.config.ipv6 {
            url.push_str("&ipv6=");
            percent_encode(ip.to_string().as_bytes(), &mut url);
        }
        url
    }
}

/// Drops the request and transaction IDs of `state` from the lookup tables.
fn forget(
    requests: &mut HashMap<RequestId, (InfoHash, usize)>,
    txids: &mut HashMap<u32, RequestId>,
    state: State,
) {
    if let Some((id, txid)) = state.request() {
        requests.remove(&id);
        if let Some(txid) = txid {
            txids.remove(&txid);
        }
    }
}
