//! The peer store: peers announced to this node per info-hash (BEP 5 §announce_peer), bounded by
//! [`MAX_INFO_HASHES`] × [`MAX_PEERS_PER_INFO_HASH`] with least-recently-announced eviction, and
//! the BEP 51 info-hash sample.
//!
//! Maps keyed by attacker-chosen info-hashes are `BTreeMap`s: no hash flooding, and iteration
//! order is deterministic, which the simulation relies on.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Instant;

use seednode_wire::InfoHash;

use crate::limits::{
    MAX_INFO_HASHES, MAX_PEERS_PER_INFO_HASH, MAX_SAMPLES, PEER_TTL, SAMPLE_INTERVAL,
};
use seednode_wire::rng::Rng;

#[derive(Debug, Clone, Copy)]
struct StoredPeer {
    addr: SocketAddr,
    announced: Instant,
}

#[derive(Debug, Clone)]
struct Swarm {
    peers: Vec<StoredPeer>,
    /// The latest announce (time only moves forward, so the last one).
    last_announce: Instant,
}

/// Announced peers by info-hash.
#[derive(Debug, Default, Clone)]
pub(crate) struct PeerStore {
    swarms: BTreeMap<InfoHash, Swarm>,
    /// `(last_announce, info_hash)` of every swarm: the least recently announced comes first.
    lru: BTreeSet<(Instant, InfoHash)>,
    total: usize,
    sample: Vec<InfoHash>,
    sample_at: Option<Instant>,
}

impl PeerStore {
    /// Stores (or refreshes) `addr` for `info_hash`, evicting as documented in the limits.
    pub(crate) fn announce(&mut self, now: Instant, info_hash: InfoHash, addr: SocketAddr) {
        if !self.swarms.contains_key(&info_hash) && self.swarms.len() >= MAX_INFO_HASHES {
            // Evict the info-hash announced least recently (SECURITY D7).
            if let Some((_, victim)) = self.lru.pop_first()
                && let Some(s) = self.swarms.remove(&victim)
            {
                self.total -= s.peers.len();
            }
        }
        let swarm = self.swarms.entry(info_hash).or_insert_with(|| Swarm {
            peers: Vec::new(),
            last_announce: now,
        });
        self.lru.remove(&(swarm.last_announce, info_hash));
        swarm.last_announce = swarm.last_announce.max(now);
        self.lru.insert((swarm.last_announce, info_hash));
        if let Some(p) = swarm.peers.iter_mut().find(|p| p.addr == addr) {
            p.announced = now;
            return;
        }
        let peer = StoredPeer {
            addr,
            announced: now,
        };
        if swarm.peers.len() < MAX_PEERS_PER_INFO_HASH {
            if swarm.peers.capacity() == 0 {
                // Most info-hashes (a seed's own torrents above all) hold one peer: no room
                // for four, as the first `push` would make.
                swarm.peers.reserve_exact(1);
            }
            swarm.peers.push(peer);
            self.total += 1;
        } else if let Some(oldest) = swarm.peers.iter_mut().min_by_key(|p| p.announced) {
            *oldest = peer;
        }
    }

    /// Up to `max` live peers of `info_hash` whose address family matches `v6`, a random
    /// window of them when there are more.
    pub(crate) fn peers(
        &self,
        now: Instant,
        info_hash: &InfoHash,
        v6: bool,
        max: usize,
        rng: &mut Rng,
    ) -> Vec<SocketAddr> {
        let Some(swarm) = self.swarms.get(info_hash) else {
            return Vec::new();
        };
        let live = |p: &&StoredPeer| {
            p.addr.is_ipv6() == v6 && now.saturating_duration_since(p.announced) < PEER_TTL
        };
        let n = swarm.peers.len();
        let start = if n > max { rng.below(n) } else { 0 };
        swarm
            .peers
            .iter()
            .cycle()
            .skip(start)
            .take(n)
            .filter(live)
            .take(max)
            .map(|p| p.addr)
            .collect()
    }

    /// Drops peers older than [`PEER_TTL`] and empty swarms.
    pub(crate) fn expire(&mut self, now: Instant) {
        let mut removed = 0;
        let lru = &mut self.lru;
        self.swarms.retain(|ih, s| {
            let before = s.peers.len();
            s.peers
                .retain(|p| now.saturating_duration_since(p.announced) < PEER_TTL);
            removed += before - s.peers.len();
            if s.peers.is_empty() {
                lru.remove(&(s.last_announce, *ih));
            }
            !s.peers.is_empty()
        });
        self.total -= removed;
        debug_assert_eq!(self.lru.len(), self.swarms.len());
    }

    /// The BEP 51 sample: up to [`MAX_SAMPLES`] stored info-hashes, recomputed at most every
    /// [`SAMPLE_INTERVAL`] (and whenever it is empty but the store is not).
    pub(crate) fn sample(&mut self, now: Instant, rng: &mut Rng) -> &[InfoHash] {
        let stale = self
            .sample_at
            .is_none_or(|at| now.saturating_duration_since(at) >= SAMPLE_INTERVAL);
        if stale || (self.sample.is_empty() && !self.swarms.is_empty()) {
            let n = self.swarms.len();
            let start = if n > MAX_SAMPLES { rng.below(n) } else { 0 };
            self.sample.clear();
            self.sample.extend(
                self.swarms
                    .keys()
                    .cycle()
                    .skip(start)
                    .take(n.min(MAX_SAMPLES)),
            );
            self.sample_at = Some(now);
        }
        &self.sample
    }

    /// Info-hashes stored.
    pub(crate) fn info_hashes(&self) -> usize {
        self.swarms.len()
    }

    /// Peers stored, all info-hashes together (expired ones until the next sweep included).
    pub(crate) fn peer_count(&self) -> usize {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u32) -> SocketAddr {
        SocketAddr::from((i.to_be_bytes(), 6881))
    }

    #[test]
    fn d7_bounded_with_lru_eviction() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut store = PeerStore::default();
        let mut rng = Rng::from_u64(1);
        for i in 0..(MAX_INFO_HASHES as u32 + 10) {
            let mut ih = [0u8; 20];
            ih[..4].copy_from_slice(&i.to_be_bytes());
            store.announce(
                t0 + std::time::Duration::from_millis(u64::from(i)),
                InfoHash(ih),
                addr(i),
            );
        }
        assert_eq!(store.info_hashes(), MAX_INFO_HASHES);
        assert_eq!(store.peer_count(), MAX_INFO_HASHES);
        // The ten oldest info-hashes were evicted.
        let first = InfoHash([0; 20]);
        assert!(
            store
                .peers(t0 + PEER_TTL / 2, &first, false, 50, &mut rng)
                .is_empty()
        );

        let ih = InfoHash([0xff; 20]);
        for i in 0..(MAX_PEERS_PER_INFO_HASH as u32 + 100) {
            store.announce(t0, ih, addr(1_000_000 + i));
        }
        let peers = store.peers(t0, &ih, false, 50, &mut rng);
        assert_eq!(peers.len(), 50);
        assert!(store.peer_count() <= MAX_INFO_HASHES - 1 + MAX_PEERS_PER_INFO_HASH);
        assert!(store.peers(t0, &ih, true, 50, &mut rng).is_empty());

        store.expire(t0 + PEER_TTL + std::time::Duration::from_secs(10_000));
        assert_eq!(store.info_hashes(), 0);
        assert_eq!(store.peer_count(), 0);
    }
}
