//! The swarm store: per torrent, its peers in compact form, seeder/leecher counts and the
//! `downloaded` count.
//!
//! # Representation
//!
//! Peers of one address family live in a dense `Vec` of fixed-size entries whose address is
//! already the compact wire form (BEP 23: 4-byte IPv4 + port, BEP 7: 16-byte IPv6 + port), so a
//! compact response is a copy. An IPv4 entry is 32 bytes (compact address 6, peer ID 20, seeder
//! flag 1, last-seen second 4), an IPv6 entry 44. Time is stored as whole seconds since the
//! tracker's clock origin (`u32`, 136 years), not as a 16-byte `Instant`.
//!
//! Small lists ([`LINEAR_SCAN_MAX_PEERS`] or fewer) are searched linearly; larger ones keep a
//! boxed hash index (address → position). Removal is `swap_remove`, fixing the index of the
//! moved entry. Counts of seeders are maintained incrementally, never recounted.
//!
//! # Fair selection
//!
//! [`PeerList::select`] walks the list from a random start offset drawn from the tracker's
//! seeded PRNG, wrapping around, so every peer has the same chance to be in a response, and the
//! walk is bounded by the list length.

use std::collections::HashMap;

use crate::limits::{LINEAR_SCAN_MAX_PEERS, MAX_PEERS_PER_TORRENT};
use crate::rng::Rng;

/// Compact IPv4 peer: address then port, network order (BEP 23).
pub(crate) const COMPACT_V4_LEN: usize = 6;
/// Compact IPv6 peer: address then port, network order (BEP 7).
pub(crate) const COMPACT_V6_LEN: usize = 18;

/// One stored peer; `N` is its compact address length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PeerEntry<const N: usize> {
    /// Seconds since the tracker's clock origin when it last announced.
    pub(crate) last_seen: u32,
    /// Compact address (IP then port, network order).
    pub(crate) addr: [u8; N],
    /// `left == 0` at its last announce.
    pub(crate) seeder: bool,
    /// Its peer ID, for the dictionary model.
    pub(crate) peer_id: [u8; 20],
}

/// Outcome of [`PeerList::upsert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Upsert {
    /// The peer was known; `was_seeder` is its state before this announce.
    Updated { was_seeder: bool },
    /// A new peer was stored.
    Inserted,
    /// A new peer was not stored: the list (or the tracker) is full.
    Full,
}

/// The peers of one address family in one swarm.
#[derive(Debug, Default)]
pub(crate) struct PeerList<const N: usize> {
    peers: Vec<PeerEntry<N>>,
    /// Address → position in `peers`; present only above [`LINEAR_SCAN_MAX_PEERS`]. Boxed on
    /// purpose: most swarms have no index, and `None` costs 8 bytes instead of a 48-byte map.
    #[allow(clippy::box_collection)]
    index: Option<Box<HashMap<[u8; N], u32>>>,
    seeders: u32,
}

impl<const N: usize> PeerList<N> {
    pub(crate) fn len(&self) -> usize {
        self.peers.len()
    }

    pub(crate) fn seeders(&self) -> u32 {
        self.seeders
    }

    pub(crate) fn leechers(&self) -> u32 {
        // `peers.len()` is at most MAX_PEERS_PER_TORRENT, which fits u32.
        u32::try_from(self.peers.len()).unwrap_or(u32::MAX) - self.seeders
    }

    fn position(&self, addr: &[u8; N]) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(addr).map(|&i| i as usize),
            None => self.peers.iter().position(|p| p.addr == *addr),
        }
    }

    /// Stores or refreshes `entry` (keyed by its address). A new peer is stored only when
    /// `may_insert` (the tracker-wide cap) and the list is under [`MAX_PEERS_PER_TORRENT`].
    pub(crate) fn upsert(&mut self, entry: PeerEntry<N>, may_insert: bool) -> Upsert {
        if let Some(i) = self.position(&entry.addr) {
            let old = &mut self.peers[i];
            let was_seeder = old.seeder;
            match (was_seeder, entry.seeder) {
                (false, true) => self.seeders += 1,
                (true, false) => self.seeders -= 1,
                _ => {}
            }
            *old = entry;
            return Upsert::Updated { was_seeder };
        }
        if !may_insert || self.peers.len() >= MAX_PEERS_PER_TORRENT {
            return Upsert::Full;
        }
        let at = self.peers.len();
        self.peers.push(entry);
        if entry.seeder {
            self.seeders += 1;
        }
        match &mut self.index {
            Some(index) => {
                index.insert(entry.addr, at as u32);
            }
            None if self.peers.len() > LINEAR_SCAN_MAX_PEERS => self.rebuild_index(),
            None => {}
        }
        Upsert::Inserted
    }

    /// Removes the peer at `addr`, returning it.
    pub(crate) fn remove(&mut self, addr: &[u8; N]) -> Option<PeerEntry<N>> {
        let i = self.position(addr)?;
        let removed = self.peers.swap_remove(i);
        if removed.seeder {
            self.seeders -= 1;
        }
        if let Some(index) = &mut self.index {
            index.remove(addr);
            if let Some(moved) = self.peers.get(i) {
                index.insert(moved.addr, i as u32);
            }
        }
        Some(removed)
    }

    /// Drops peers last seen before `cutoff` (seconds); returns how many were dropped. Shrinks
    /// the list and rebuilds (or drops) the index afterwards.
    pub(crate) fn retain_seen_since(&mut self, cutoff: u32) -> usize {
        let before = self.peers.len();
        self.peers.retain(|p| p.last_seen >= cutoff);
        let dropped = before - self.peers.len();
        if dropped > 0 {
            self.seeders = self.peers.iter().filter(|p| p.seeder).count() as u32;
            if self.peers.capacity() > 2 * self.peers.len() + 4 {
                self.peers
                    .shrink_to(self.peers.len() + self.peers.len() / 4);
            }
            self.rebuild_index();
        }
        dropped
    }

    fn rebuild_index(&mut self) {
        if self.peers.len() <= LINEAR_SCAN_MAX_PEERS {
            self.index = None;
            return;
        }
        let mut index = HashMap::with_capacity(self.peers.len());
        for (i, p) in self.peers.iter().enumerate() {
            index.insert(p.addr, i as u32);
        }
        self.index = Some(Box::new(index));
    }

    /// Calls `emit` for up to `want` peers, starting at a random offset and wrapping around,
    /// skipping `skip` (the announcer itself) and, when `leechers_only`, every seeder. Returns
    /// how many were emitted. Visits each peer at most once.
    pub(crate) fn select(
        &self,
        rng: &mut Rng,
        want: usize,
        skip: &[u8; N],
        leechers_only: bool,
        mut emit: impl FnMut(&PeerEntry<N>),
    ) -> usize {
        let len = self.peers.len();
        if want == 0 || len == 0 {
            return 0;
        }
        let start = rng.below(len);
        let (tail, head) = self.peers.split_at(start);
        let mut emitted = 0;
        for p in head.iter().chain(tail) {
            if p.addr == *skip || (leechers_only && p.seeder) {
                continue;
            }
            emit(p);
            emitted += 1;
            if emitted == want {
                break;
            }
        }
        emitted
    }

    #[cfg(test)]
    pub(crate) fn has_index(&self) -> bool {
        self.index.is_some()
    }
}

/// One torrent's swarm.
#[derive(Debug, Default)]
pub(crate) struct Swarm {
    pub(crate) v4: PeerList<COMPACT_V4_LEN>,
    pub(crate) v6: PeerList<COMPACT_V6_LEN>,
    /// `completed` events seen from peers that were not already seeders (the scrape
    /// `downloaded` count).
    pub(crate) downloaded: u64,
    /// This node seeds the torrent: it is always allowed, never dropped when empty, and this
    /// node is listed as a seeder.
    pub(crate) hosted: bool,
}

impl Swarm {
    pub(crate) fn peer_count(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// `(complete, incomplete)`: seeders (this node included when hosted) and leechers.
    pub(crate) fn counts(&self) -> (u32, u32) {
        (
            self.v4.seeders() + self.v6.seeders() + u32::from(self.hosted),
            self.v4.leechers() + self.v6.leechers(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u16, seeder: bool) -> PeerEntry<6> {
        let mut addr = [10, 0, 0, 0, 0, 0];
        addr[2..4].copy_from_slice(&n.to_be_bytes());
        addr[4..].copy_from_slice(&6881u16.to_be_bytes());
        PeerEntry {
            last_seen: u32::from(n),
            addr,
            seeder,
            peer_id: [n as u8; 20],
        }
    }

    #[test]
    fn entries_are_compact() {
        assert_eq!(size_of::<PeerEntry<COMPACT_V4_LEN>>(), 32);
        assert_eq!(size_of::<PeerEntry<COMPACT_V6_LEN>>(), 44);
        assert!(size_of::<PeerList<6>>() <= 40);
    }

    #[test]
    fn index_kept_consistent_through_inserts_removes_and_expiry() {
        let mut list = PeerList::<6>::default();
        for n in 0..100 {
            assert_eq!(list.upsert(entry(n, n % 3 == 0), true), Upsert::Inserted);
        }
        assert!(list.has_index());
        assert_eq!(list.seeders(), 34);
        assert_eq!(
            list.upsert(entry(3, false), true),
            Upsert::Updated { was_seeder: true }
        );
        assert_eq!(list.seeders(), 33);
        for n in (0..100).step_by(2) {
            assert!(list.remove(&entry(n, false).addr).is_some());
        }
        assert!(list.remove(&entry(0, false).addr).is_none());
        for n in (1..100).step_by(2) {
            let addr = entry(n, false).addr;
            assert_eq!(list.position(&addr).map(|i| list.peers[i].addr), Some(addr));
        }
        assert_eq!(list.len(), 50);
        assert_eq!(list.retain_seen_since(90), 45);
        assert!(!list.has_index(), "small lists go back to linear scans");
        assert_eq!(list.len(), 5);
        assert_eq!(list.seeders(), 2, "93 and 99 are seeders");
    }

    #[test]
    fn full_list_answers_but_does_not_store() {
        let mut list = PeerList::<6>::default();
        assert_eq!(list.upsert(entry(1, false), false), Upsert::Full);
        assert_eq!(list.len(), 0);
    }

    #[test]
    fn selection_is_bounded_skips_self_and_seeders_and_varies() {
        let mut list = PeerList::<6>::default();
        for n in 0..40 {
            list.upsert(entry(n, n < 20), true);
        }
        let mut rng = Rng::from_seed([1; 32]);
        let me = entry(25, false).addr;
        let mut got = Vec::new();
        let n = list.select(&mut rng, 100, &me, true, |p| got.push(p.addr));
        assert_eq!(n, 19, "20 leechers minus the announcer");
        assert!(!got.contains(&me));
        let mut firsts = std::collections::HashSet::new();
        for _ in 0..50 {
            let mut first = None;
            list.select(&mut rng, 1, &me, false, |p| first = Some(p.addr));
            firsts.insert(first.unwrap());
        }
        assert!(firsts.len() > 10, "not always the same first peer");
    }
}
