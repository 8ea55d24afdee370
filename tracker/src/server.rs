//! The tracker machine: swarm store, access control, and the announce/scrape core shared by the
//! HTTP ([`crate::http`]) and UDP ([`Tracker::handle_datagram`]) front ends.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use seednode_wire::InfoHash;

use crate::access::AccessList;
use crate::announce::{AnnounceError, AnnounceEvent};
use crate::limits::{
    DEFAULT_ANNOUNCE_INTERVAL, DEFAULT_MIN_ANNOUNCE_INTERVAL, DEFAULT_PEER_TTL, MAX_PEERS,
    MAX_TORRENTS,
};
use crate::swarm::{COMPACT_V4_LEN, COMPACT_V6_LEN, PeerEntry, Swarm, SwarmV6, Upsert};
use crate::udp::conn_id::ConnectionIds;
use seednode_wire::rng::Rng;

/// Tracker settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerConfig {
    /// `interval` told to clients (HTTP and UDP).
    pub announce_interval: Duration,
    /// `min interval` told to HTTP clients.
    pub min_announce_interval: Duration,
    /// A peer silent for this long is dropped by [`Tracker::expire`] (default 2 ×
    /// `announce_interval`).
    pub peer_ttl: Duration,
    /// With no access list: when false (the default) only torrents registered with
    /// [`Tracker::host`] are tracked and any other info-hash gets a `failure reason`
    /// (SECURITY.md TH6); when true every info-hash is (bounded by [`MAX_TORRENTS`]). Ignored
    /// while an access list is set ([`Tracker::set_access_list`]).
    pub open: bool,
    /// Use the HTTP `ip` parameter (an IP literal) as the peer's address instead of the socket
    /// address. Only for a tracker behind a trusted proxy that sets it (SECURITY.md rule 6, TH3);
    /// default false. The UDP `IP address` field is always ignored (TU8).
    pub trust_ip_param: bool,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            announce_interval: DEFAULT_ANNOUNCE_INTERVAL,
            min_announce_interval: DEFAULT_MIN_ANNOUNCE_INTERVAL,
            peer_ttl: DEFAULT_PEER_TTL,
            open: false,
            trust_ip_param: false,
        }
    }
}

/// Counters for `/metrics`. Bad network input is counted here, never logged per packet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrackerStats {
    /// HTTP announces answered with peers.
    pub http_announces: u64,
    /// HTTP scrapes answered.
    pub http_scrapes: u64,
    /// HTTP announces and scrapes answered with a `failure reason`.
    pub http_failures: u64,
    /// UDP connect requests answered.
    pub udp_connects: u64,
    /// UDP announces answered with peers.
    pub udp_announces: u64,
    /// UDP scrapes answered.
    pub udp_scrapes: u64,
    /// UDP error packets sent (only to holders of a valid connection ID).
    pub udp_errors_sent: u64,
    /// Datagrams dropped because they do not parse (short, oversized, unknown action, bad
    /// protocol ID, source port 0).
    pub udp_dropped_malformed: u64,
    /// Announces and scrapes dropped for a forged, expired or other-IP connection ID.
    pub udp_dropped_connection_id: u64,
    /// Datagrams dropped because the tracker was built without a secret ([`Tracker::new`]).
    pub udp_dropped_disabled: u64,
    /// Announces from new peers answered but not stored (per-torrent or global cap).
    pub peers_not_stored: u64,
    /// Announces refused because a new swarm would exceed [`MAX_TORRENTS`].
    pub torrents_refused_full: u64,
    /// Announces refused by the access policy.
    pub announces_refused_access: u64,
}

/// An in-memory BitTorrent tracker. Sans-IO: the caller passes `now`, the request's socket
/// address and its bytes, and gets the response bytes back.
#[derive(Debug)]
pub struct Tracker {
    pub(crate) config: TrackerConfig,
    pub(crate) swarms: HashMap<InfoHash, Swarm>,
    /// The IPv6 peers of the swarms that have any (BEP 7); its keys are always keys of
    /// `swarms`. Apart, so that IPv4-only swarms (nearly all) carry no IPv6 fields.
    pub(crate) swarms_v6: HashMap<InfoHash, SwarmV6>,
    pub(crate) access: Option<AccessList>,
    pub(crate) total_peers: usize,
    /// The instant peer `last_seen` seconds count from; set by [`Tracker::with_secret`] or the
    /// first call that passes a `now`.
    pub(crate) origin: Option<Instant>,
    pub(crate) rng: Rng,
    pub(crate) conn_ids: Option<ConnectionIds>,
    pub(crate) stats: TrackerStats,
}

/// One announce, from either front end, after parsing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerAnnounce {
    pub(crate) info_hash: InfoHash,
    /// Canonical address (IPv4-mapped unwrapped) and the announced port.
    pub(crate) addr: SocketAddr,
    pub(crate) left: u64,
    pub(crate) event: AnnounceEvent,
    /// Already clamped by the front end.
    pub(crate) numwant: usize,
}

/// Swarm counts for a response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Seeders, this node included for hosted torrents.
    pub(crate) complete: u32,
    /// Leechers.
    pub(crate) incomplete: u32,
    /// `completed` events seen.
    pub(crate) downloaded: u32,
}

/// A peer picked for a response: its compact address (6 or 18 bytes). No peer ID: none is
/// stored (see `swarm.rs`), so the dictionary model is answered as for `no_peer_id`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Selected<'a> {
    pub(crate) compact: &'a [u8],
}

impl Tracker {
    /// Creates an empty tracker with no UDP front end ([`Tracker::handle_datagram`] drops every
    /// datagram) and a fixed PRNG seed. Use [`Tracker::with_secret`] in production.
    #[must_use]
    pub fn new(config: TrackerConfig) -> Self {
        Self {
            config,
            swarms: HashMap::new(),
            swarms_v6: HashMap::new(),
            access: None,
            total_peers: 0,
            origin: None,
            rng: Rng::from_seed([0; 32]),
            conn_ids: None,
            stats: TrackerStats::default(),
        }
    }

    /// Creates an empty tracker whose clock origin is `now`, with the UDP front end enabled.
    /// `secret` (32 bytes from `ring::rand::SystemRandom`) keys the connection IDs (see
    /// [`crate::udp::conn_id`]) and, through a separate derivation, seeds the PRNG used for fair
    /// peer selection.
    #[must_use]
    pub fn with_secret(config: TrackerConfig, now: Instant, secret: [u8; 32]) -> Self {
        let rng_seed = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret),
            b"seednode-tracker peer selection rng",
        );
        let mut seed = [0u8; 32];
        seed.copy_from_slice(rng_seed.as_ref());
        Self {
            origin: Some(now),
            rng: Rng::from_seed(seed),
            conn_ids: Some(ConnectionIds::new(now, &secret)),
            ..Self::new(config)
        }
    }

    /// The configuration.
    #[must_use]
    pub const fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// Counters since construction.
    #[must_use]
    pub const fn stats(&self) -> &TrackerStats {
        &self.stats
    }

    /// Registers a torrent this node seeds: it is tracked whatever the access policy, never
    /// dropped when empty, not counted against [`MAX_TORRENTS`], and this node is listed as a
    /// seeder in its responses.
    pub fn host(&mut self, info_hash: InfoHash) {
        self.swarms.entry(info_hash).or_default().set_hosted(true);
    }

    /// Undoes [`Tracker::host`]: the swarm then follows the access policy like any other, and is
    /// dropped at once if that policy refuses it.
    pub fn unhost(&mut self, info_hash: &InfoHash) {
        if let Some(s) = self.swarms.get_mut(info_hash) {
            s.set_hosted(false);
        }
        self.purge_disallowed();
    }

    /// Installs (or with `None` removes) the access list, as opentracker reloads its list on
    /// SIGHUP; parse the new text with [`AccessList::parse`] first and keep the old list if that
    /// fails. Swarms the new policy refuses are dropped now, except hosted ones.
    pub fn set_access_list(&mut self, list: Option<AccessList>) {
        self.access = list;
        self.purge_disallowed();
    }

    /// Whether announces for `info_hash` are accepted: hosted, or allowed by the access list, or
    /// (with no list) the tracker is open.
    #[must_use]
    pub fn allows(&self, info_hash: &InfoHash) -> bool {
        self.swarms.get(info_hash).is_some_and(Swarm::hosted) || self.policy_allows(info_hash)
    }

    fn policy_allows(&self, info_hash: &InfoHash) -> bool {
        match &self.access {
            Some(list) => list.allows(info_hash),
            None => self.config.open,
        }
    }

    fn purge_disallowed(&mut self) {
        let Self {
            swarms,
            swarms_v6,
            access,
            config,
            total_peers,
            ..
        } = self;
        swarms.retain(|ih, s| {
            let allowed = s.hosted()
                || match access {
                    Some(list) => list.allows(ih),
                    None => config.open,
                };
            if !allowed {
                *total_peers -= s.v4_len();
            }
            allowed
        });
        swarms_v6.retain(|ih, v| {
            let kept = swarms.contains_key(ih);
            if !kept {
                *total_peers -= v.len();
            }
            kept
        });
    }

    /// Number of torrents tracked (hosted ones included).
    #[must_use]
    pub fn torrent_count(&self) -> usize {
        self.swarms.len()
    }

    /// Panics unless the store's bookkeeping holds: `total_peers` is the sum of every list's
    /// length, every IPv6 list belongs to a swarm and none is empty. For tests and fuzzing.
    pub(crate) fn check_invariants(&self) {
        let v4: usize = self.swarms.values().map(Swarm::v4_len).sum();
        let v6: usize = self.swarms_v6.values().map(SwarmV6::len).sum();
        assert_eq!(self.total_peers, v4 + v6, "total_peers drifted");
        for (ih, v) in &self.swarms_v6 {
            assert!(self.swarms.contains_key(ih), "IPv6 list without a swarm");
            assert!(!v.is_empty(), "empty IPv6 list kept");
        }
    }

    /// Number of peers stored over all torrents.
    #[must_use]
    pub const fn peer_count(&self) -> usize {
        self.total_peers
    }

    /// Drops peers not seen for `peer_ttl` and empty swarms of torrents not hosted here. Call it
    /// every [`crate::limits::EXPIRE_INTERVAL`]; it walks every stored peer once.
    pub fn expire(&mut self, now: Instant) {
        let now_secs = self.secs(now);
        let ttl = u32::try_from(self.config.peer_ttl.as_secs()).unwrap_or(u32::MAX);
        // Kept when `now - last_seen < ttl`.
        let cutoff = now_secs.saturating_add(1).saturating_sub(ttl);
        let total = &mut self.total_peers;
        let swarms_v6 = &mut self.swarms_v6;
        swarms_v6.retain(|_, v| {
            *total -= v.retain_seen_since(cutoff);
            !v.is_empty()
        });
        self.swarms.retain(|ih, s| {
            *total -= s.retain_v4_seen_since(cutoff);
            s.hosted() || s.v4_len() > 0 || swarms_v6.contains_key(ih)
        });
        if self.swarms.capacity() > 2 * self.swarms.len() + 64 {
            self.swarms
                .shrink_to(self.swarms.len() + self.swarms.len() / 4);
        }
        if self.swarms_v6.capacity() > 2 * self.swarms_v6.len() + 64 {
            self.swarms_v6
                .shrink_to(self.swarms_v6.len() + self.swarms_v6.len() / 4);
        }
    }

    /// Whole seconds from the clock origin to `now` (the origin is set on first use).
    pub(crate) fn secs(&mut self, now: Instant) -> u32 {
        let origin = *self.origin.get_or_insert(now);
        u32::try_from(now.saturating_duration_since(origin).as_secs()).unwrap_or(u32::MAX)
    }

    /// Scrape counts of one torrent; zeros for one not tracked (BEP 48: unknown is not an error).
    pub(crate) fn scrape_counts(&self, info_hash: &InfoHash) -> Counts {
        self.swarms
            .get(info_hash)
            .map_or_else(Counts::default, |s| {
                let (complete, incomplete) = s.counts(self.swarms_v6.get(info_hash));
                Counts {
                    complete,
                    incomplete,
                    downloaded: s.downloaded(),
                }
            })
    }

    /// Applies one announce to the store and calls `emit` for the peers picked for the reply:
    /// this node first (hosted torrents, when `self_addr` is given; with `same_family_only`, only
    /// if its family matches the announcer's), then up to `numwant` peers of the announcer's
    /// address family, from a random offset. A seeder is never sent seeders (except this node);
    /// the announcer is never sent itself; `stopped` gets no peers.
    ///
    /// # Errors
    /// [`AnnounceError::UnknownTorrent`] when the access policy refuses the info-hash;
    /// [`AnnounceError::Full`] when a new swarm would exceed [`MAX_TORRENTS`].
    pub(crate) fn announce_core(
        &mut self,
        now: Instant,
        a: &PeerAnnounce,
        self_addr: Option<SocketAddr>,
        same_family_only: bool,
        mut emit: impl FnMut(Selected<'_>),
    ) -> Result<Counts, AnnounceError> {
        let now_secs = self.secs(now);
        let swarms_len = self.swarms.len();
        let Self {
            swarms,
            swarms_v6,
            rng,
            total_peers,
            stats,
            access,
            config,
            ..
        } = self;
        let (access, open) = (&*access, config.open);
        let policy_allows = |ih: &InfoHash| match access {
            Some(list) => list.allows(ih),
            None => open,
        };
        // One table lookup for the common case (a known swarm).
        let swarm = match swarms.get_mut(&a.info_hash) {
            Some(s) if s.hosted() || policy_allows(&a.info_hash) => s,
            Some(_) => {
                stats.announces_refused_access += 1;
                return Err(AnnounceError::UnknownTorrent);
            }
            None if !policy_allows(&a.info_hash) => {
                stats.announces_refused_access += 1;
                return Err(AnnounceError::UnknownTorrent);
            }
            // Nothing to remove, and no reason to create a swarm for it.
            None if a.event == AnnounceEvent::Stopped => return Ok(Counts::default()),
            None if swarms_len >= MAX_TORRENTS => {
                stats.torrents_refused_full += 1;
                return Err(AnnounceError::Full);
            }
            None => swarms.entry(a.info_hash).or_default(),
        };

        let seeder = a.left == 0;
        let may_insert = *total_peers < MAX_PEERS;
        let compact4;
        let compact6;
        let (removed, own) = match a.addr {
            SocketAddr::V4(v4) => {
                compact4 = compact_v4(v4.ip().octets(), v4.port());
                let removed = if a.event == AnnounceEvent::Stopped {
                    swarm.remove_v4(&compact4)
                } else {
                    let entry = PeerEntry::new(compact4, now_secs, seeder);
                    let outcome = swarm.upsert_v4(entry, may_insert);
                    record(outcome, a.event, swarm, total_peers, stats);
                    false
                };
                (removed, &compact4[..])
            }
            SocketAddr::V6(v6) => {
                compact6 = compact_v6(v6.ip().octets(), v6.port());
                let removed = if a.event == AnnounceEvent::Stopped {
                    let removed = swarms_v6
                        .get_mut(&a.info_hash)
                        .is_some_and(|v| v.remove(&compact6));
                    if swarms_v6.get(&a.info_hash).is_some_and(SwarmV6::is_empty) {
                        swarms_v6.remove(&a.info_hash);
                    }
                    removed
                } else {
                    let entry = PeerEntry::new(compact6, now_secs, seeder);
                    let outcome = if may_insert {
                        // Cannot come back empty: a new list has room for the peer.
                        swarms_v6
                            .entry(a.info_hash)
                            .or_default()
                            .upsert(entry, true)
                    } else {
                        swarms_v6
                            .get_mut(&a.info_hash)
                            .map_or(Upsert::Full, |v| v.upsert(entry, false))
                    };
                    record(outcome, a.event, swarm, total_peers, stats);
                    false
                };
                (removed, &compact6[..])
            }
        };
        if removed {
            *total_peers -= 1;
        }

        let v6 = swarms_v6.get(&a.info_hash);
        let (complete, incomplete) = swarm.counts(v6);
        let counts = Counts {
            complete,
            incomplete,
            downloaded: swarm.downloaded(),
        };
        if a.event == AnnounceEvent::Stopped || a.numwant == 0 {
            return Ok(counts);
        }

        let requester = seednode_wire::addr::AddrScope::of(a.addr.ip());
        let mut listed = 0;
        if swarm.hosted() {
            // This node is listed even to a client that says `left=0`: a client that starts
            // from a magnet link does not know the size yet and announces as a seeder (aria2c
            // does), and it can only get the metadata from us.
            if let Some(me) = self_addr.map(canonical_addr).filter(|me| *me != a.addr)
                && (!same_family_only || me.is_ipv4() == a.addr.is_ipv4())
                && crate::swarm::useful_to(seednode_wire::addr::AddrScope::of(me.ip()), requester)
            {
                let mut buf = [0u8; COMPACT_V6_LEN];
                let compact = match me {
                    SocketAddr::V4(v4) => {
                        buf[..COMPACT_V4_LEN]
                            .copy_from_slice(&compact_v4(v4.ip().octets(), v4.port()));
                        &buf[..COMPACT_V4_LEN]
                    }
                    SocketAddr::V6(v6) => {
                        buf = compact_v6(v6.ip().octets(), v6.port());
                        &buf[..]
                    }
                };
                emit(Selected { compact });
                listed += 1;
            }
        }
        let want = a.numwant.saturating_sub(listed);
        // Seeders are never sent to a seeder: they have nothing to trade.
        if let Ok(own4) = <&[u8; COMPACT_V4_LEN]>::try_from(own) {
            swarm.select_v4(rng, want, own4, seeder, requester, |compact| {
                emit(Selected { compact })
            });
        } else if let Ok(own6) = <&[u8; COMPACT_V6_LEN]>::try_from(own)
            && let Some(v6) = v6
        {
            v6.select(rng, want, own6, seeder, requester, |compact| {
                emit(Selected { compact })
            });
        }
        Ok(counts)
    }
}

/// Books the outcome of an upsert: the global peer count, the `downloaded` count for a
/// `completed` from a peer not already known as a seeder, and the not-stored counter.
fn record(
    outcome: Upsert,
    event: AnnounceEvent,
    swarm: &mut Swarm,
    total_peers: &mut usize,
    stats: &mut TrackerStats,
) {
    match outcome {
        Upsert::Inserted => *total_peers += 1,
        Upsert::Full => stats.peers_not_stored += 1,
        Upsert::Updated { .. } => {}
    }
    if event == AnnounceEvent::Completed && outcome != (Upsert::Updated { was_seeder: true }) {
        swarm.count_completed();
    }
}

pub(crate) fn compact_v4(ip: [u8; 4], port: u16) -> [u8; COMPACT_V4_LEN] {
    let mut out = [0u8; COMPACT_V4_LEN];
    out[..4].copy_from_slice(&ip);
    out[4..].copy_from_slice(&port.to_be_bytes());
    out
}

pub(crate) fn compact_v6(ip: [u8; 16], port: u16) -> [u8; COMPACT_V6_LEN] {
    let mut out = [0u8; COMPACT_V6_LEN];
    out[..16].copy_from_slice(&ip);
    out[16..].copy_from_slice(&port.to_be_bytes());
    out
}

/// Unwraps IPv4-mapped IPv6 addresses so one host has one identity (before any per-IP rule).
pub(crate) use seednode_wire::addr::canonical_addr;

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // each test reads the clock once, for its epoch
mod tests {
    use super::*;

    /// Heap bytes of the swarm store as glibc malloc would hand them out: the table, each
    /// allocation rounded up to its chunk (8 bytes of header, 16-byte granules, 32 minimum).
    fn store_bytes(t: &Tracker) -> usize {
        let chunk = |n: usize| {
            if n == 0 {
                0
            } else {
                (n + 8).div_ceil(16).max(2) * 16
            }
        };
        let table = chunk(t.swarms.capacity() * (size_of::<(InfoHash, Swarm)>() + 1));
        let table_v6 = chunk(t.swarms_v6.capacity() * (size_of::<(InfoHash, SwarmV6)>() + 1));
        table
            + table_v6
            + t.swarms
                .values()
                .map(|s| chunk(s.heap_bytes()))
                .sum::<usize>()
            + t.swarms_v6
                .values()
                .map(|v| chunk(v.heap_bytes()))
                .sum::<usize>()
    }

    /// The benchmark's population (`udp_tracker_load --fill`): 500 000 IPv4 peers, 75 %
    /// seeders, over 50 000 info-hashes. Prints bytes per peer; opentracker's RSS for the same
    /// load is 15.1 MiB in all, about 32 bytes a peer (docs/BENCHMARKS.md).
    #[test]
    fn memory_per_peer_at_benchmark_population() {
        let t0 = Instant::now();
        let mut t = Tracker::new(TrackerConfig {
            open: true,
            ..TrackerConfig::default()
        });
        const PEERS: u32 = 500_000;
        const TORRENTS: u32 = 50_000;
        for i in 0..PEERS {
            let mut ih = [0u8; 20];
            ih[..4].copy_from_slice(&(i % TORRENTS).to_be_bytes());
            let ip = (0x0a00_0000 + i).to_be_bytes();
            let a = PeerAnnounce {
                info_hash: InfoHash(ih),
                addr: SocketAddr::from((ip, 6881)),
                left: u64::from(i % 4 == 0),
                event: AnnounceEvent::Started,
                numwant: 0,
            };
            t.announce_core(t0, &a, None, true, |_| {}).unwrap();
        }
        assert_eq!((t.peer_count(), t.torrent_count()), (500_000, 50_000));
        let bytes = store_bytes(&t);
        let per_peer = bytes as f64 / f64::from(PEERS);
        println!(
            "swarm store: {:.1} MiB for {PEERS} peers over {TORRENTS} torrents, {per_peer:.1} \
             bytes a peer (entry {} bytes, table slot {} bytes)",
            bytes as f64 / 1_048_576.0,
            size_of::<PeerEntry<6>>(),
            size_of::<(InfoHash, Swarm)>() + 1,
        );
        assert!(per_peer < 18.0, "{per_peer} bytes a peer");
    }
}
