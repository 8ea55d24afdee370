//! The swarm store: per torrent, its peers in compact form, seeder/leecher counts and the
//! `downloaded` count.
//!
//! # Representation
//!
//! Sized for memory first: a tracker holds millions of peers and most swarms are small, so
//! opentracker's ~8 bytes a peer is the yardstick (issue 4: no more memory than opentracker).
//!
//! - A peer is its compact wire address (BEP 23: 4-byte IPv4 + port, BEP 7: 16-byte IPv6 +
//!   port, so a compact response is a copy) and four bytes holding its last-seen second (whole
//!   seconds since the tracker's clock origin, 31 bits: 68 years) and its seeder flag (the top
//!   bit). An IPv4 entry is 10 bytes, an IPv6 one 22, both byte-aligned. No peer ID is stored:
//!   the dictionary model (`compact=0`) is answered without `peer id` keys, as for
//!   `no_peer_id=1` (BEP 23); see `http.rs`.
//! - [`Swarm`] is 40 bytes (64 with its info-hash in the swarm table): the IPv4 list inline, the
//!   rarer parts (IPv6 peers, hash indexes of large lists) behind one optional box.
//! - Lists grow by a quarter (at least [`MIN_GROWTH`] entries) instead of doubling, and expiry
//!   gives back slack over a quarter, so a list's slack stays under ~25 %.
//! - Lists of up to [`LINEAR_SCAN_MAX_PEERS`] peers are searched linearly (32 IPv4 entries are
//!   320 bytes, five cache lines); larger ones keep a hash index (address → position), so finding
//!   the announcer is O(1). Removal is `swap_remove`, fixing the index of the moved entry.
//!   Seeder counts are maintained incrementally, never recounted except after expiry.
//!
//! # Fair selection
//!
//! [`select`] walks the list from a random start offset drawn from the tracker's seeded PRNG,
//! wrapping around, so every peer has the same chance to be in a response, and the walk is
//! bounded by the list length.

use std::collections::HashMap;

use crate::limits::{LINEAR_SCAN_MAX_PEERS, MAX_PEERS_PER_TORRENT};
use crate::rng::Rng;

/// Compact IPv4 peer: address then port, network order (BEP 23).
pub(crate) const COMPACT_V4_LEN: usize = 6;
/// Compact IPv6 peer: address then port, network order (BEP 7).
pub(crate) const COMPACT_V6_LEN: usize = 18;

/// Fewest entries a list grows by when full (then a quarter of its length).
const MIN_GROWTH: usize = 2;

/// Seeder flag in the packed last-seen word.
const SEEDER_BIT: u32 = 1 << 31;
/// Largest storable last-seen second (the flag takes the top bit): 68 years.
const MAX_LAST_SEEN: u32 = SEEDER_BIT - 1;

// Per-family seeder counts are u16.
const _: () = assert!(MAX_PEERS_PER_TORRENT <= u16::MAX as usize);

/// One stored peer; `N` is its compact address length. Byte-aligned: 10 bytes for IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PeerEntry<const N: usize> {
    /// Compact address (IP then port, network order).
    pub(crate) addr: [u8; N],
    /// Little-endian u32: last-seen second in the low 31 bits, seeder flag on top.
    seen: [u8; 4],
}

impl<const N: usize> PeerEntry<N> {
    /// A peer at `addr` last seen at second `last_seen` (saturating at 68 years), a seeder when
    /// `left == 0` at that announce.
    pub(crate) fn new(addr: [u8; N], last_seen: u32, seeder: bool) -> Self {
        let word = last_seen.min(MAX_LAST_SEEN) | if seeder { SEEDER_BIT } else { 0 };
        Self {
            addr,
            seen: word.to_le_bytes(),
        }
    }

    pub(crate) fn last_seen(&self) -> u32 {
        u32::from_le_bytes(self.seen) & MAX_LAST_SEEN
    }

    pub(crate) fn seeder(&self) -> bool {
        u32::from_le_bytes(self.seen) & SEEDER_BIT != 0
    }
}

/// Outcome of an upsert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Upsert {
    /// The peer was known; `was_seeder` is its state before this announce.
    Updated { was_seeder: bool },
    /// A new peer was stored.
    Inserted,
    /// A new peer was not stored: the list (or the tracker) is full.
    Full,
}

/// Address → position, kept only for lists over [`LINEAR_SCAN_MAX_PEERS`].
type Index<const N: usize> = HashMap<[u8; N], u32>;

/// The rarely needed parts of a swarm, boxed so a small IPv4-only swarm pays 8 bytes for them.
#[derive(Debug, Default)]
struct Extra {
    v6: Vec<PeerEntry<COMPACT_V6_LEN>>,
    v6_seeders: u16,
    v4_index: Option<Index<COMPACT_V4_LEN>>,
    v6_index: Option<Index<COMPACT_V6_LEN>>,
}

impl Extra {
    fn is_unused(&self) -> bool {
        self.v6.is_empty() && self.v4_index.is_none() && self.v6_index.is_none()
    }
}

/// One torrent's swarm: 40 bytes.
#[derive(Debug, Default)]
pub(crate) struct Swarm {
    v4: Vec<PeerEntry<COMPACT_V4_LEN>>,
    extra: Option<Box<Extra>>,
    v4_seeders: u16,
    /// This node seeds the torrent: it is always allowed, never dropped when empty, and this
    /// node is listed as a seeder.
    pub(crate) hosted: bool,
    /// `completed` events seen from peers that were not already seeders (the scrape
    /// `downloaded` count), saturating (BEP 15 sends it as a u32 too).
    pub(crate) downloaded: u32,
}

impl Swarm {
    pub(crate) fn peer_count(&self) -> usize {
        self.v4.len() + self.extra.as_ref().map_or(0, |e| e.v6.len())
    }

    /// `(complete, incomplete)`: seeders (this node included when hosted) and leechers.
    pub(crate) fn counts(&self) -> (u32, u32) {
        let (v6_len, v6_seeders) = self
            .extra
            .as_ref()
            .map_or((0, 0), |e| (e.v6.len(), e.v6_seeders));
        let seeders = u32::from(self.v4_seeders) + u32::from(v6_seeders);
        // Both lengths are at most MAX_PEERS_PER_TORRENT, which fits u16.
        let peers = (self.v4.len() + v6_len) as u32;
        (seeders + u32::from(self.hosted), peers - seeders)
    }

    /// Stores or refreshes an IPv4 peer (keyed by its address). A new peer is stored only when
    /// `may_insert` (the tracker-wide cap) and the list is under [`MAX_PEERS_PER_TORRENT`].
    pub(crate) fn upsert_v4(
        &mut self,
        entry: PeerEntry<COMPACT_V4_LEN>,
        may_insert: bool,
    ) -> Upsert {
        let index = self.extra.as_mut().and_then(|e| e.v4_index.as_mut());
        let outcome = upsert(&mut self.v4, &mut self.v4_seeders, index, entry, may_insert);
        if outcome == Upsert::Inserted
            && self.v4.len() > LINEAR_SCAN_MAX_PEERS
            && self.extra.as_ref().is_none_or(|e| e.v4_index.is_none())
        {
            self.extra.get_or_insert_default().v4_index = build_index(&self.v4);
        }
        outcome
    }

    /// [`Swarm::upsert_v4`] for an IPv6 peer.
    pub(crate) fn upsert_v6(
        &mut self,
        entry: PeerEntry<COMPACT_V6_LEN>,
        may_insert: bool,
    ) -> Upsert {
        if !may_insert && self.extra.is_none() {
            return Upsert::Full;
        }
        let e = self.extra.get_or_insert_default();
        let outcome = upsert(
            &mut e.v6,
            &mut e.v6_seeders,
            e.v6_index.as_mut(),
            entry,
            may_insert,
        );
        if outcome == Upsert::Inserted && e.v6.len() > LINEAR_SCAN_MAX_PEERS && e.v6_index.is_none()
        {
            e.v6_index = build_index(&e.v6);
        }
        outcome
    }

    /// Removes the IPv4 peer at `addr`; true if it was stored.
    pub(crate) fn remove_v4(&mut self, addr: &[u8; COMPACT_V4_LEN]) -> bool {
        let index = self.extra.as_mut().and_then(|e| e.v4_index.as_mut());
        remove(&mut self.v4, &mut self.v4_seeders, index, addr)
    }

    /// Removes the IPv6 peer at `addr`; true if it was stored.
    pub(crate) fn remove_v6(&mut self, addr: &[u8; COMPACT_V6_LEN]) -> bool {
        self.extra
            .as_mut()
            .is_some_and(|e| remove(&mut e.v6, &mut e.v6_seeders, e.v6_index.as_mut(), addr))
    }

    /// Drops peers last seen before `cutoff` (seconds); returns how many were dropped. Gives
    /// back list slack, rebuilds (or drops) the indexes, and frees the boxed part once unused.
    pub(crate) fn retain_seen_since(&mut self, cutoff: u32) -> usize {
        let mut dropped = retain(&mut self.v4, &mut self.v4_seeders, cutoff);
        if let Some(e) = &mut self.extra {
            let dropped6 = retain(&mut e.v6, &mut e.v6_seeders, cutoff);
            if dropped > 0 {
                e.v4_index = build_index(&self.v4);
            }
            if dropped6 > 0 {
                e.v6_index = build_index(&e.v6);
            }
            dropped += dropped6;
            if e.is_unused() {
                self.extra = None;
            }
        }
        dropped
    }

    /// [`select`] over the IPv4 peers.
    pub(crate) fn select_v4(
        &self,
        rng: &mut Rng,
        want: usize,
        skip: &[u8; COMPACT_V4_LEN],
        leechers_only: bool,
        emit: impl FnMut(&[u8]),
    ) -> usize {
        select(&self.v4, rng, want, skip, leechers_only, emit)
    }

    /// [`select`] over the IPv6 peers.
    pub(crate) fn select_v6(
        &self,
        rng: &mut Rng,
        want: usize,
        skip: &[u8; COMPACT_V6_LEN],
        leechers_only: bool,
        emit: impl FnMut(&[u8]),
    ) -> usize {
        self.extra
            .as_ref()
            .map_or(0, |e| select(&e.v6, rng, want, skip, leechers_only, emit))
    }

    /// Heap bytes this swarm holds (list capacities and indexes, allocator overhead not
    /// included), for the memory tests.
    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        fn index_bytes<const N: usize>(i: Option<&Index<N>>) -> usize {
            i.map_or(0, |i| i.capacity() * (size_of::<([u8; N], u32)>() + 1))
        }
        let mut bytes = self.v4.capacity() * size_of::<PeerEntry<COMPACT_V4_LEN>>();
        if let Some(e) = &self.extra {
            bytes += size_of::<Extra>()
                + e.v6.capacity() * size_of::<PeerEntry<COMPACT_V6_LEN>>()
                + index_bytes(e.v4_index.as_ref())
                + index_bytes(e.v6_index.as_ref());
        }
        bytes
    }

    #[cfg(test)]
    pub(crate) fn has_v4_index(&self) -> bool {
        self.extra.as_ref().is_some_and(|e| e.v4_index.is_some())
    }
}

fn position<const N: usize>(
    peers: &[PeerEntry<N>],
    index: Option<&Index<N>>,
    addr: &[u8; N],
) -> Option<usize> {
    match index {
        Some(index) => index.get(addr).map(|&i| i as usize),
        None => peers.iter().position(|p| p.addr == *addr),
    }
}

fn upsert<const N: usize>(
    peers: &mut Vec<PeerEntry<N>>,
    seeders: &mut u16,
    index: Option<&mut Index<N>>,
    entry: PeerEntry<N>,
    may_insert: bool,
) -> Upsert {
    if let Some(i) = position(peers, index.as_deref(), &entry.addr) {
        let old = &mut peers[i];
        let was_seeder = old.seeder();
        match (was_seeder, entry.seeder()) {
            (false, true) => *seeders += 1,
            (true, false) => *seeders -= 1,
            _ => {}
        }
        *old = entry;
        return Upsert::Updated { was_seeder };
    }
    if !may_insert || peers.len() >= MAX_PEERS_PER_TORRENT {
        return Upsert::Full;
    }
    if peers.len() == peers.capacity() {
        // Grow by a quarter, not the doubling `push` would do: less slack per swarm.
        peers.reserve_exact((peers.len() / 4).max(MIN_GROWTH));
    }
    let at = peers.len();
    peers.push(entry);
    if entry.seeder() {
        *seeders += 1;
    }
    if let Some(index) = index {
        index.insert(entry.addr, at as u32);
    }
    Upsert::Inserted
}

fn remove<const N: usize>(
    peers: &mut Vec<PeerEntry<N>>,
    seeders: &mut u16,
    index: Option<&mut Index<N>>,
    addr: &[u8; N],
) -> bool {
    let Some(i) = position(peers, index.as_deref(), addr) else {
        return false;
    };
    let removed = peers.swap_remove(i);
    if removed.seeder() {
        *seeders -= 1;
    }
    if let Some(index) = index {
        index.remove(addr);
        if let Some(moved) = peers.get(i) {
            index.insert(moved.addr, i as u32);
        }
    }
    true
}

/// Keeps peers seen at or after `cutoff`; returns how many were dropped. The caller rebuilds
/// the index when any were.
fn retain<const N: usize>(peers: &mut Vec<PeerEntry<N>>, seeders: &mut u16, cutoff: u32) -> usize {
    let before = peers.len();
    peers.retain(|p| p.last_seen() >= cutoff);
    let dropped = before - peers.len();
    if dropped > 0 {
        // At most MAX_PEERS_PER_TORRENT, which fits u16.
        *seeders = peers.iter().filter(|p| p.seeder()).count() as u16;
        if peers.is_empty() {
            *peers = Vec::new();
        } else if peers.capacity() - peers.len() > (peers.len() / 4).max(MIN_GROWTH) {
            peers.shrink_to(peers.len() + peers.len() / 8);
        }
    }
    dropped
}

/// An index for `peers`, or `None` when a linear scan is cheaper.
fn build_index<const N: usize>(peers: &[PeerEntry<N>]) -> Option<Index<N>> {
    if peers.len() <= LINEAR_SCAN_MAX_PEERS {
        return None;
    }
    let mut index = HashMap::with_capacity(peers.len());
    for (i, p) in peers.iter().enumerate() {
        index.insert(p.addr, i as u32);
    }
    Some(index)
}

/// Calls `emit` with the compact address of up to `want` peers, starting at a random offset and
/// wrapping around, skipping `skip` (the announcer itself) and, when `leechers_only`, every
/// seeder. Returns how many were emitted. Visits each peer at most once.
fn select<const N: usize>(
    peers: &[PeerEntry<N>],
    rng: &mut Rng,
    want: usize,
    skip: &[u8; N],
    leechers_only: bool,
    mut emit: impl FnMut(&[u8]),
) -> usize {
    let len = peers.len();
    if want == 0 || len == 0 {
        return 0;
    }
    let start = rng.below(len);
    let (tail, head) = peers.split_at(start);
    let mut emitted = 0;
    for p in head.iter().chain(tail) {
        if p.addr == *skip || (leechers_only && p.seeder()) {
            continue;
        }
        emit(&p.addr);
        emitted += 1;
        if emitted == want {
            break;
        }
    }
    emitted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u16, seeder: bool) -> PeerEntry<6> {
        let mut addr = [10, 0, 0, 0, 0, 0];
        addr[2..4].copy_from_slice(&n.to_be_bytes());
        addr[4..].copy_from_slice(&6881u16.to_be_bytes());
        PeerEntry::new(addr, u32::from(n), seeder)
    }

    fn entry6(n: u16, seeder: bool) -> PeerEntry<18> {
        let mut addr = [0x20; 18];
        addr[14..16].copy_from_slice(&n.to_be_bytes());
        PeerEntry::new(addr, u32::from(n), seeder)
    }

    #[test]
    fn entries_and_swarms_are_compact() {
        assert_eq!(size_of::<PeerEntry<COMPACT_V4_LEN>>(), 10);
        assert_eq!(size_of::<PeerEntry<COMPACT_V6_LEN>>(), 22);
        assert_eq!(size_of::<Swarm>(), 40);
        assert!(size_of::<(seednode_wire::InfoHash, Swarm)>() <= 64);
    }

    #[test]
    fn packed_last_seen_and_seeder_flag_round_trip() {
        let e = PeerEntry::new([1; 6], 12_345, true);
        assert_eq!((e.last_seen(), e.seeder()), (12_345, true));
        let e = PeerEntry::new([1; 6], u32::MAX, false);
        assert_eq!((e.last_seen(), e.seeder()), (MAX_LAST_SEEN, false));
    }

    #[test]
    fn index_kept_consistent_through_inserts_removes_and_expiry() {
        let mut s = Swarm::default();
        for n in 0..100 {
            assert_eq!(s.upsert_v4(entry(n, n % 3 == 0), true), Upsert::Inserted);
        }
        assert!(s.has_v4_index());
        assert_eq!(s.counts(), (34, 66));
        assert_eq!(
            s.upsert_v4(entry(3, false), true),
            Upsert::Updated { was_seeder: true }
        );
        assert_eq!(s.counts(), (33, 67));
        for n in (0..100).step_by(2) {
            assert!(s.remove_v4(&entry(n, false).addr));
        }
        assert!(!s.remove_v4(&entry(0, false).addr));
        let index = s.extra.as_ref().unwrap().v4_index.as_ref();
        for n in (1..100).step_by(2) {
            let addr = entry(n, false).addr;
            assert_eq!(
                position(&s.v4, index, &addr).map(|i| s.v4[i].addr),
                Some(addr)
            );
        }
        assert_eq!(s.peer_count(), 50);
        assert_eq!(s.retain_seen_since(90), 45);
        assert!(!s.has_v4_index(), "small lists go back to linear scans");
        assert!(s.extra.is_none(), "the boxed part is freed once unused");
        assert_eq!(s.peer_count(), 5);
        assert_eq!(s.counts(), (2, 3), "93 and 99 are seeders");
    }

    #[test]
    fn ipv6_peers_live_in_their_own_list() {
        let mut s = Swarm::default();
        for n in 0..40 {
            assert_eq!(s.upsert_v6(entry6(n, n < 10), true), Upsert::Inserted);
        }
        s.upsert_v4(entry(1, false), true);
        assert_eq!(s.counts(), (10, 31));
        assert!(s.remove_v6(&entry6(5, false).addr));
        assert!(!s.remove_v6(&entry6(5, false).addr));
        assert_eq!(s.counts(), (9, 31));
        assert_eq!(s.retain_seen_since(1000), 40);
        assert!(s.extra.is_none());
        assert!(!s.remove_v6(&entry6(6, false).addr));
    }

    #[test]
    fn lists_grow_by_a_quarter_and_shrink_on_expiry() {
        let mut s = Swarm::default();
        for n in 0..1000 {
            s.upsert_v4(entry(n, false), true);
        }
        assert!(s.v4.capacity() <= 1000 + 1000 / 4 + MIN_GROWTH);
        assert_eq!(s.retain_seen_since(900), 900);
        assert!(s.v4.capacity() <= 100 + 100 / 4 + MIN_GROWTH);
    }

    #[test]
    fn full_list_answers_but_does_not_store() {
        let mut s = Swarm::default();
        assert_eq!(s.upsert_v4(entry(1, false), false), Upsert::Full);
        assert_eq!(s.upsert_v6(entry6(1, false), false), Upsert::Full);
        assert_eq!(s.peer_count(), 0);
        assert!(s.extra.is_none());
    }

    #[test]
    fn selection_is_bounded_skips_self_and_seeders_and_varies() {
        let mut s = Swarm::default();
        for n in 0..40 {
            s.upsert_v4(entry(n, n < 20), true);
        }
        let mut rng = Rng::from_seed([1; 32]);
        let me = entry(25, false).addr;
        let mut got = Vec::new();
        let n = s.select_v4(&mut rng, 100, &me, true, |p| got.push(p.to_vec()));
        assert_eq!(n, 19, "20 leechers minus the announcer");
        assert!(!got.contains(&me.to_vec()));
        let mut firsts = std::collections::HashSet::new();
        for _ in 0..50 {
            let mut first = None;
            s.select_v4(&mut rng, 1, &me, false, |p| first = Some(p.to_vec()));
            firsts.insert(first.unwrap());
        }
        assert!(firsts.len() > 10, "not always the same first peer");
    }
}
