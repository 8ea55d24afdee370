//! The swarm store and the announce handler (BEP 3, compact peers BEP 23, `peers6` BEP 7).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use seednode_wire::{InfoHash, PeerId};

use crate::announce::{AnnounceError, AnnounceEvent, AnnounceRequest};
use crate::limits::{
    DEFAULT_ANNOUNCE_INTERVAL, DEFAULT_MIN_ANNOUNCE_INTERVAL, MAX_PEERS_PER_TORRENT, MAX_TORRENTS,
};

/// Tracker settings.
#[derive(Debug, Clone)]
pub struct TrackerConfig {
    /// `interval` told to clients.
    pub announce_interval: Duration,
    /// `min interval` told to clients.
    pub min_announce_interval: Duration,
    /// A peer silent for this long is dropped (default 2 × `announce_interval`).
    pub peer_ttl: Duration,
    /// When false (the default), only torrents registered with [`Tracker::host`] are tracked and
    /// any other info-hash gets a `failure reason` (SECURITY.md TH6).
    pub open: bool,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            announce_interval: DEFAULT_ANNOUNCE_INTERVAL,
            min_announce_interval: DEFAULT_MIN_ANNOUNCE_INTERVAL,
            peer_ttl: DEFAULT_ANNOUNCE_INTERVAL * 2,
            open: false,
        }
    }
}

#[derive(Debug, Clone)]
struct Peer {
    #[allow(dead_code)] // kept for the dictionary model (`compact=0`)
    peer_id: PeerId,
    seeder: bool,
    last_seen: Instant,
}

#[derive(Debug, Default)]
struct Swarm {
    /// Keyed by the socket IP and the announced port, as opentracker does.
    peers: HashMap<SocketAddr, Peer>,
    /// Number of `completed` events seen (the scrape `downloaded` count).
    downloaded: u64,
    /// True when this node itself seeds the torrent.
    hosted: bool,
}

impl Swarm {
    fn counts(&self) -> (usize, usize) {
        let seeders = self.peers.values().filter(|p| p.seeder).count();
        (seeders, self.peers.len() - seeders)
    }
}

/// An in-memory tracker. Sans-IO: the caller passes `now` and the request's socket address.
#[derive(Debug)]
pub struct Tracker {
    config: TrackerConfig,
    swarms: HashMap<InfoHash, Swarm>,
}

impl Tracker {
    /// Creates an empty tracker.
    #[must_use]
    pub fn new(config: TrackerConfig) -> Self {
        Self {
            config,
            swarms: HashMap::new(),
        }
    }

    /// Registers a torrent this node seeds: it is tracked even when the tracker is not open, and
    /// this node is listed as a seeder in its responses.
    pub fn host(&mut self, info_hash: InfoHash) {
        self.swarms.entry(info_hash).or_default().hosted = true;
    }

    /// Number of torrents tracked.
    #[must_use]
    pub fn torrent_count(&self) -> usize {
        self.swarms.len()
    }

    /// Handles `GET /announce?<query>` from `remote` and returns the bencoded response body (a
    /// `failure reason` dictionary on error, BEP 3).
    ///
    /// `self_addr` is the address this node's peer port is reachable at, as seen by this client
    /// (the engine passes the local address the request arrived on); it is listed first as a
    /// seeder for hosted torrents, even to clients that announce `left=0` (see
    /// [`Tracker::announce`]).
    pub fn http_announce(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        self_addr: Option<SocketAddr>,
        query: &[u8],
    ) -> Vec<u8> {
        match AnnounceRequest::parse_query(query)
            .and_then(|req| self.announce(now, remote.ip(), self_addr, &req))
        {
            Ok(body) => body,
            Err(e) => failure(&e.to_string()),
        }
    }

    /// Applies a parsed announce from `ip` and returns the bencoded response.
    ///
    /// # Errors
    /// [`AnnounceError::UnknownTorrent`] when the info-hash is not hosted and the tracker is not
    /// open; [`AnnounceError::Full`] when [`MAX_TORRENTS`] are tracked.
    pub fn announce(
        &mut self,
        now: Instant,
        ip: IpAddr,
        self_addr: Option<SocketAddr>,
        req: &AnnounceRequest,
    ) -> Result<Vec<u8>, AnnounceError> {
        let ip = canonical_ip(ip);
        let addr = SocketAddr::new(ip, req.port);
        let swarms_len = self.swarms.len();
        let swarm = match self.swarms.get_mut(&req.info_hash) {
            Some(s) => s,
            None if !self.config.open => return Err(AnnounceError::UnknownTorrent),
            None if swarms_len >= MAX_TORRENTS => return Err(AnnounceError::Full),
            None => self.swarms.entry(req.info_hash).or_default(),
        };
        let seeder = req.left == 0;
        match req.event {
            AnnounceEvent::Stopped => {
                swarm.peers.remove(&addr);
            }
            _ => {
                if req.event == AnnounceEvent::Completed {
                    swarm.downloaded = swarm.downloaded.saturating_add(1);
                }
                let peer = Peer {
                    peer_id: req.peer_id,
                    seeder,
                    last_seen: now,
                };
                if swarm.peers.contains_key(&addr) || swarm.peers.len() < MAX_PEERS_PER_TORRENT {
                    swarm.peers.insert(addr, peer);
                }
            }
        }
        let (mut complete, incomplete) = swarm.counts();
        let mut peers4 = Vec::new();
        let mut peers6 = Vec::new();
        let mut listed = 0;
        let mut push = |a: SocketAddr| match a {
            SocketAddr::V4(v4) => {
                peers4.extend_from_slice(&v4.ip().octets());
                peers4.extend_from_slice(&v4.port().to_be_bytes());
            }
            SocketAddr::V6(v6) => {
                peers6.extend_from_slice(&v6.ip().octets());
                peers6.extend_from_slice(&v6.port().to_be_bytes());
            }
        };
        if swarm.hosted {
            complete += 1;
            // This node is listed even to a client that says `left=0`: a client that starts
            // from a magnet link does not know the size yet and announces as a seeder (aria2c
            // does), and it can only get the metadata from us.
            if let Some(me) =
                self_addr.filter(|_| req.numwant > 0 && req.event != AnnounceEvent::Stopped)
            {
                push(SocketAddr::new(canonical_ip(me.ip()), me.port()));
                listed += 1;
            }
        }
        if req.event != AnnounceEvent::Stopped {
            for (a, p) in &swarm.peers {
                if listed >= req.numwant {
                    break;
                }
                // Seeders are never sent to a seeder (BEP 3 convention; they have nothing to trade).
                if *a == addr || (seeder && p.seeder) {
                    continue;
                }
                push(*a);
                listed += 1;
            }
        }
        let mut out = Vec::with_capacity(96 + peers4.len() + peers6.len());
        out.push(b'd');
        put_key_int(&mut out, b"complete", complete as u64);
        put_key_int(&mut out, b"downloaded", swarm.downloaded);
        put_key_int(&mut out, b"incomplete", incomplete as u64);
        put_key_int(
            &mut out,
            b"interval",
            self.config.announce_interval.as_secs(),
        );
        put_key_int(
            &mut out,
            b"min interval",
            self.config.min_announce_interval.as_secs(),
        );
        put_key_bytes(&mut out, b"peers", &peers4);
        if !peers6.is_empty() {
            put_key_bytes(&mut out, b"peers6", &peers6);
        }
        out.push(b'e');
        Ok(out)
    }

    /// Drops peers not seen for `peer_ttl` and empty swarms of torrents not hosted here.
    pub fn expire(&mut self, now: Instant) {
        let ttl = self.config.peer_ttl;
        self.swarms.retain(|_, s| {
            s.peers
                .retain(|_, p| now.saturating_duration_since(p.last_seen) < ttl);
            s.hosted || !s.peers.is_empty()
        });
    }
}

/// Unwraps IPv4-mapped IPv6 addresses so one host has one identity.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// A bencoded `failure reason` response (BEP 3).
#[must_use]
pub fn failure(reason: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + reason.len());
    out.push(b'd');
    put_key_bytes(&mut out, b"failure reason", reason.as_bytes());
    out.push(b'e');
    out
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(b.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(b);
}

fn put_key_bytes(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    put_bytes(out, key);
    put_bytes(out, value);
}

fn put_key_int(out: &mut Vec<u8>, key: &[u8], value: u64) {
    put_bytes(out, key);
    out.push(b'i');
    out.extend_from_slice(value.to_string().as_bytes());
    out.push(b'e');
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // each test reads the clock once, for its epoch
mod tests {
    use super::*;

    const IH: InfoHash = InfoHash([0x11; 20]);

    fn query(port: u16, left: u64, event: &str) -> Vec<u8> {
        format!(
            "info_hash={}&peer_id=-TE0001-{:012}&port={port}&left={left}&event={event}",
            "%11".repeat(20),
            port
        )
        .into_bytes()
    }

    fn peers_of(body: &[u8]) -> Vec<SocketAddr> {
        let at = body
            .windows(7)
            .position(|w| w == b"5:peers")
            .expect("peers key")
            + 7;
        let colon = at + body[at..].iter().position(|&b| b == b':').unwrap();
        let len: usize = std::str::from_utf8(&body[at..colon])
            .unwrap()
            .parse()
            .unwrap();
        body[colon + 1..colon + 1 + len]
            .chunks_exact(6)
            .map(|c| SocketAddr::from(([c[0], c[1], c[2], c[3]], u16::from_be_bytes([c[4], c[5]]))))
            .collect()
    }

    fn addr(last: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, last], port))
    }

    #[test]
    fn unknown_torrent_gets_failure_reason() {
        let mut t = Tracker::new(TrackerConfig::default());
        let body = t.http_announce(Instant::now(), addr(2, 1), None, &query(7000, 5, "started"));
        assert_eq!(
            body,
            b"d14:failure reason40:torrent not registered with this trackere"
        );
    }

    #[test]
    fn leecher_learns_hosted_seed_and_other_leechers() {
        let now = Instant::now();
        let mut t = Tracker::new(TrackerConfig::default());
        t.host(IH);
        let me = addr(1, 6881);
        let first = t.http_announce(now, addr(2, 40000), Some(me), &query(7002, 5, "started"));
        assert_eq!(peers_of(&first), vec![me]);
        let second = t.http_announce(now, addr(3, 40000), Some(me), &query(7003, 5, "started"));
        assert_eq!(peers_of(&second), vec![me, addr(2, 7002)]);
        assert!(
            second.starts_with(b"d8:completei1e10:downloadedi0e10:incompletei2e8:intervali1800e")
        );
    }

    #[test]
    fn seeders_not_sent_to_seeders() {
        let now = Instant::now();
        let mut t = Tracker::new(TrackerConfig::default());
        t.host(IH);
        let me = addr(1, 6881);
        t.http_announce(now, addr(2, 1), Some(me), &query(7002, 0, "started"));
        t.http_announce(now, addr(4, 1), Some(me), &query(7004, 9, "started"));
        let body = t.http_announce(now, addr(3, 1), Some(me), &query(7003, 0, "completed"));
        assert_eq!(
            peers_of(&body),
            vec![me, addr(4, 7004)],
            "only leechers, after this node"
        );
        assert!(body.starts_with(b"d8:completei3e10:downloadedi1e"));
    }

    #[test]
    fn stopped_removes_and_silent_peers_expire() {
        let now = Instant::now();
        let mut t = Tracker::new(TrackerConfig::default());
        t.host(IH);
        t.http_announce(now, addr(2, 1), None, &query(7002, 5, "started"));
        t.http_announce(now, addr(3, 1), None, &query(7003, 5, "started"));
        t.http_announce(now, addr(2, 1), None, &query(7002, 5, "stopped"));
        let body = t.http_announce(now, addr(4, 1), None, &query(7004, 5, ""));
        assert_eq!(peers_of(&body), vec![addr(3, 7003)]);
        t.expire(now + DEFAULT_ANNOUNCE_INTERVAL * 2);
        let body = t.http_announce(now, addr(5, 1), None, &query(7005, 5, ""));
        assert!(peers_of(&body).is_empty());
        assert_eq!(t.torrent_count(), 1, "hosted swarm is kept");
    }

    #[test]
    fn ipv4_mapped_source_is_unwrapped() {
        let now = Instant::now();
        let mut t = Tracker::new(TrackerConfig {
            open: true,
            ..TrackerConfig::default()
        });
        let mapped: SocketAddr = "[::ffff:127.0.0.9]:5".parse().unwrap();
        t.http_announce(now, mapped, None, &query(7009, 5, "started"));
        let body = t.http_announce(now, addr(2, 1), None, &query(7002, 5, "started"));
        assert_eq!(peers_of(&body), vec![addr(9, 7009)]);
    }
}
