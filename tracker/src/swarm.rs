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
//! - A list is a boxed slice (pointer and capacity, 16 bytes) with its length and seeder count
//!   kept as `u16`s in the swarm, so [`Swarm`] is 32 bytes (56 with its info-hash in the swarm
//!   table); the rarer IPv6 list lives behind one optional box.
//! - Lists are kept **sorted by address** and searched by binary search, as opentracker does:
//!   no per-swarm hash index (an index cost about twice the peers it indexed). Inserting or
//!   removing shifts the tail of the list, at most [`MAX_PEERS_PER_TORRENT`] entries (50 KB).
//! - Lists grow by a quarter (at least [`MIN_GROWTH`] entries) instead of doubling, and expiry
//!   gives back slack over a quarter, so a list's slack stays under ~25 %.
//!   Seeder counts are maintained incrementally, never recounted except after expiry.
//!
//! # Fair selection
//!
//! [`select`] walks the list from a random start offset drawn from the tracker's seeded PRNG,
//! wrapping around, so every peer has the same chance to be in a response, and the walk is
//! bounded by the list length.

use crate::limits::MAX_PEERS_PER_TORRENT;
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

/// `hosted` flag in the swarm's packed `downloaded` word.
const HOSTED_BIT: u32 = 1 << 31;
/// Largest storable `downloaded` count (the flag takes the top bit).
const MAX_DOWNLOADED: u32 = HOSTED_BIT - 1;

// List lengths and per-family seeder counts are u16.
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
    /// Filler for a list's unused capacity.
    const VACANT: Self = Self {
        addr: [0; N],
        seen: [0; 4],
    };

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

/// A sorted peer list borrowed from its swarm: the slots (capacity), how many are used, and
/// how many of those are seeders.
struct List<'a, const N: usize> {
    slots: &'a mut Box<[PeerEntry<N>]>,
    len: &'a mut u16,
    seeders: &'a mut u16,
}

/// The IPv6 list, boxed so an IPv4-only swarm pays 8 bytes for it.
#[derive(Debug, Default)]
struct V6 {
    slots: Box<[PeerEntry<COMPACT_V6_LEN>]>,
    len: u16,
    seeders: u16,
}

/// One torrent's swarm: 32 bytes.
#[derive(Debug, Default)]
pub(crate) struct Swarm {
    v4: Box<[PeerEntry<COMPACT_V4_LEN>]>,
    v6: Option<Box<V6>>,
    v4_len: u16,
    v4_seeders: u16,
    /// `completed` events seen from peers that were not already seeders (the scrape
    /// `downloaded` count, saturating at 2^31 - 1) in the low 31 bits; the top bit says this
    /// node seeds the torrent (see [`Swarm::hosted`]).
    downloaded_hosted: u32,
}

impl Swarm {
    fn v4_list(&mut self) -> List<'_, COMPACT_V4_LEN> {
        List {
            slots: &mut self.v4,
            len: &mut self.v4_len,
            seeders: &mut self.v4_seeders,
        }
    }

    fn v4_peers(&self) -> &[PeerEntry<COMPACT_V4_LEN>] {
        &self.v4[..usize::from(self.v4_len)]
    }

    fn v6_peers(&self) -> &[PeerEntry<COMPACT_V6_LEN>] {
        self.v6
            .as_ref()
            .map_or(&[], |v| &v.slots[..usize::from(v.len)])
    }

    /// This node seeds the torrent: it is always allowed, never dropped when empty, and this
    /// node is listed as a seeder.
    pub(crate) const fn hosted(&self) -> bool {
        self.downloaded_hosted & HOSTED_BIT != 0
    }

    pub(crate) fn set_hosted(&mut self, hosted: bool) {
        self.downloaded_hosted =
            (self.downloaded_hosted & MAX_DOWNLOADED) | if hosted { HOSTED_BIT } else { 0 };
    }

    /// The scrape `downloaded` count.
    pub(crate) const fn downloaded(&self) -> u32 {
        self.downloaded_hosted & MAX_DOWNLOADED
    }

    /// Counts one `completed` event (saturating).
    pub(crate) fn count_completed(&mut self) {
        if self.downloaded() < MAX_DOWNLOADED {
            self.downloaded_hosted += 1;
        }
    }

    pub(crate) fn peer_count(&self) -> usize {
        usize::from(self.v4_len) + self.v6.as_ref().map_or(0, |v| usize::from(v.len))
    }

    /// `(complete, incomplete)`: seeders (this node included when hosted) and leechers.
    pub(crate) fn counts(&self) -> (u32, u32) {
        let (v6_len, v6_seeders) = self.v6.as_ref().map_or((0, 0), |v| (v.len, v.seeders));
        let seeders = u32::from(self.v4_seeders) + u32::from(v6_seeders);
        let peers = u32::from(self.v4_len) + u32::from(v6_len);
        (seeders + u32::from(self.hosted()), peers - seeders)
    }

    /// Stores or refreshes an IPv4 peer (keyed by its address). A new peer is stored only when
    /// `may_insert` (the tracker-wide cap) and the list is under [`MAX_PEERS_PER_TORRENT`].
    pub(crate) fn upsert_v4(
        &mut self,
        entry: PeerEntry<COMPACT_V4_LEN>,
        may_insert: bool,
    ) -> Upsert {
        upsert(self.v4_list(), entry, may_insert)
    }

    /// [`Swarm::upsert_v4`] for an IPv6 peer.
    pub(crate) fn upsert_v6(
        &mut self,
        entry: PeerEntry<COMPACT_V6_LEN>,
        may_insert: bool,
    ) -> Upsert {
        if !may_insert && self.v6.is_none() {
            return Upsert::Full;
        }
        let v = self.v6.get_or_insert_default();
        let outcome = upsert(
            List {
                slots: &mut v.slots,
                len: &mut v.len,
                seeders: &mut v.seeders,
            },
            entry,
            may_insert,
        );
        if v.len == 0 {
            self.v6 = None;
        }
        outcome
    }

    /// Removes the IPv4 peer at `addr`; true if it was stored.
    pub(crate) fn remove_v4(&mut self, addr: &[u8; COMPACT_V4_LEN]) -> bool {
        remove(self.v4_list(), addr)
    }

    /// Removes the IPv6 peer at `addr`; true if it was stored.
    pub(crate) fn remove_v6(&mut self, addr: &[u8; COMPACT_V6_LEN]) -> bool {
        let Some(v) = &mut self.v6 else {
            return false;
        };
        let removed = remove(
            List {
                slots: &mut v.slots,
                len: &mut v.len,
                seeders: &mut v.seeders,
            },
            addr,
        );
        if v.len == 0 {
            self.v6 = None;
        }
        removed
    }

    /// Drops peers last seen before `cutoff` (seconds); returns how many were dropped. Gives
    /// back list slack and frees the IPv6 box once empty.
    pub(crate) fn retain_seen_since(&mut self, cutoff: u32) -> usize {
        let mut dropped = retain(self.v4_list(), cutoff);
        if let Some(v) = &mut self.v6 {
            dropped += retain(
                List {
                    slots: &mut v.slots,
                    len: &mut v.len,
                    seeders: &mut v.seeders,
                },
                cutoff,
            );
            if v.len == 0 {
                self.v6 = None;
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
        select(self.v4_peers(), rng, want, skip, leechers_only, emit)
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
        select(self.v6_peers(), rng, want, skip, leechers_only, emit)
    }

    /// Heap allocations this swarm holds, in bytes each (list capacities; allocator overhead
    /// not included), for the memory tests.
    #[cfg(test)]
    pub(crate) fn heap_allocations(&self) -> Vec<usize> {
        let mut out = Vec::new();
        if !self.v4.is_empty() {
            out.push(self.v4.len() * size_of::<PeerEntry<COMPACT_V4_LEN>>());
        }
        if let Some(v) = &self.v6 {
            out.push(size_of::<V6>());
            if !v.slots.is_empty() {
                out.push(v.slots.len() * size_of::<PeerEntry<COMPACT_V6_LEN>>());
            }
        }
        out
    }
}

/// Moves the used part of `slots` into a fresh boxed slice of `capacity` slots (exact size:
/// no allocator rounding to a power of two).
fn reallocate<const N: usize>(slots: &mut Box<[PeerEntry<N>]>, len: usize, capacity: usize) {
    let mut v = Vec::with_capacity(capacity);
    v.extend_from_slice(&slots[..len]);
    v.resize(capacity, PeerEntry::VACANT);
    *slots = v.into_boxed_slice();
}

fn upsert<const N: usize>(list: List<'_, N>, entry: PeerEntry<N>, may_insert: bool) -> Upsert {
    let len = usize::from(*list.len);
    let at = match list.slots[..len].binary_search_by(|p| p.addr.cmp(&entry.addr)) {
        Ok(i) => {
            let old = &mut list.slots[i];
            let was_seeder = old.seeder();
            match (was_seeder, entry.seeder()) {
                (false, true) => *list.seeders += 1,
                (true, false) => *list.seeders -= 1,
                _ => {}
            }
            *old = entry;
            return Upsert::Updated { was_seeder };
        }
        Err(at) => at,
    };
    if !may_insert || len >= MAX_PEERS_PER_TORRENT {
        return Upsert::Full;
    }
    if len == list.slots.len() {
        // Grow by a quarter, not the doubling `Vec::push` would do: less slack per swarm.
        let capacity = (len + (len / 4).max(MIN_GROWTH)).min(MAX_PEERS_PER_TORRENT);
        reallocate(list.slots, len, capacity);
    }
    list.slots.copy_within(at..len, at + 1);
    list.slots[at] = entry;
    *list.len += 1;
    if entry.seeder() {
        *list.seeders += 1;
    }
    Upsert::Inserted
}

fn remove<const N: usize>(list: List<'_, N>, addr: &[u8; N]) -> bool {
    let len = usize::from(*list.len);
    let Ok(i) = list.slots[..len].binary_search_by(|p| p.addr.cmp(addr)) else {
        return false;
    };
    if list.slots[i].seeder() {
        *list.seeders -= 1;
    }
    list.slots.copy_within(i + 1..len, i);
    *list.len -= 1;
    if *list.len == 0 {
        *list.slots = Box::default();
    }
    true
}

/// Keeps peers seen at or after `cutoff`, in order; returns how many were dropped.
fn retain<const N: usize>(list: List<'_, N>, cutoff: u32) -> usize {
    let before = usize::from(*list.len);
    let mut kept = 0;
    let mut seeders = 0u16;
    for i in 0..before {
        let p = list.slots[i];
        if p.last_seen() >= cutoff {
            list.slots[kept] = p;
            kept += 1;
            seeders += u16::from(p.seeder());
        }
    }
    let dropped = before - kept;
    if dropped > 0 {
        // kept <= before, which fits u16.
        *list.len = kept as u16;
        *list.seeders = seeders;
        if kept == 0 {
            *list.slots = Box::default();
        } else if list.slots.len() - kept > (kept / 4).max(MIN_GROWTH) {
            reallocate(list.slots, kept, kept + kept / 8);
        }
    }
    dropped
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
        assert_eq!(size_of::<Swarm>(), 32);
        assert!(size_of::<(seednode_wire::InfoHash, Swarm)>() <= 56);
    }

    #[test]
    fn packed_last_seen_and_seeder_flag_round_trip() {
        let e = PeerEntry::new([1; 6], 12_345, true);
        assert_eq!((e.last_seen(), e.seeder()), (12_345, true));
        let e = PeerEntry::new([1; 6], u32::MAX, false);
        assert_eq!((e.last_seen(), e.seeder()), (MAX_LAST_SEEN, false));
    }

    #[test]
    fn hosted_flag_and_downloaded_count_share_a_word() {
        let mut s = Swarm::default();
        s.set_hosted(true);
        s.count_completed();
        s.count_completed();
        assert!(s.hosted());
        assert_eq!(s.downloaded(), 2);
        s.set_hosted(false);
        assert_eq!((s.hosted(), s.downloaded()), (false, 2));
        s.downloaded_hosted = MAX_DOWNLOADED | HOSTED_BIT;
        s.count_completed();
        assert_eq!((s.hosted(), s.downloaded()), (true, MAX_DOWNLOADED));
    }

    fn assert_sorted(s: &Swarm) {
        assert!(s.v4_peers().windows(2).all(|w| w[0].addr < w[1].addr));
        assert!(s.v6_peers().windows(2).all(|w| w[0].addr < w[1].addr));
    }

    #[test]
    fn list_stays_sorted_through_inserts_removes_and_expiry() {
        let mut s = Swarm::default();
        // Inserted out of order: every third from the top, then the rest.
        let order: Vec<u16> = (0..100)
            .rev()
            .step_by(3)
            .chain((0..100).filter(|n| (99 - n) % 3 != 0))
            .collect();
        for &n in &order {
            assert_eq!(s.upsert_v4(entry(n, n % 3 == 0), true), Upsert::Inserted);
            assert_sorted(&s);
        }
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
        assert_sorted(&s);
        for n in (1..100).step_by(2) {
            assert_eq!(
                s.upsert_v4(entry(n, n % 3 == 0), false),
                Upsert::Updated {
                    was_seeder: n % 3 == 0 && n != 3
                },
                "{n} is still found"
            );
        }
        assert_eq!(s.peer_count(), 50);
        assert_eq!(s.retain_seen_since(90), 45);
        assert_sorted(&s);
        assert_eq!(s.peer_count(), 5);
        assert_eq!(s.counts(), (2, 3), "93 and 99 are seeders");
        assert_eq!(s.retain_seen_since(1000), 5);
        assert!(s.v4.is_empty(), "an empty list frees its slots");
    }

    #[test]
    fn ipv6_peers_live_in_their_own_list() {
        let mut s = Swarm::default();
        for n in (0..40).rev() {
            assert_eq!(s.upsert_v6(entry6(n, n < 10), true), Upsert::Inserted);
        }
        assert_sorted(&s);
        s.upsert_v4(entry(1, false), true);
        assert_eq!(s.counts(), (10, 31));
        assert!(s.remove_v6(&entry6(5, false).addr));
        assert!(!s.remove_v6(&entry6(5, false).addr));
        assert_eq!(s.counts(), (9, 31));
        assert_eq!(s.retain_seen_since(1000), 40);
        assert!(s.v6.is_none());
        assert!(!s.remove_v6(&entry6(6, false).addr));
        assert_eq!(s.upsert_v6(entry6(1, false), true), Upsert::Inserted);
        assert!(s.remove_v6(&entry6(1, false).addr));
        assert!(
            s.v6.is_none(),
            "the IPv6 box is freed when its last peer leaves"
        );
    }

    #[test]
    fn lists_grow_by_a_quarter_and_shrink_on_expiry() {
        let mut s = Swarm::default();
        for n in 0..1000 {
            s.upsert_v4(entry(n, false), true);
        }
        assert!(s.v4.len() <= 1000 + 1000 / 4 + MIN_GROWTH);
        assert_eq!(s.retain_seen_since(900), 900);
        assert!(s.v4.len() <= 100 + 100 / 4 + MIN_GROWTH);
    }

    #[test]
    fn list_is_capped_at_max_peers_per_torrent() {
        let mut s = Swarm::default();
        for n in 0..MAX_PEERS_PER_TORRENT as u16 {
            assert_eq!(s.upsert_v4(entry(n, false), true), Upsert::Inserted);
        }
        assert_eq!(s.v4.len(), MAX_PEERS_PER_TORRENT);
        assert_eq!(
            s.upsert_v4(entry(MAX_PEERS_PER_TORRENT as u16, false), true),
            Upsert::Full
        );
        assert_eq!(
            s.upsert_v4(entry(7, true), true),
            Upsert::Updated { was_seeder: false },
            "a known peer is still refreshed"
        );
    }

    #[test]
    fn full_list_answers_but_does_not_store() {
        let mut s = Swarm::default();
        assert_eq!(s.upsert_v4(entry(1, false), false), Upsert::Full);
        assert_eq!(s.upsert_v6(entry6(1, false), false), Upsert::Full);
        assert_eq!(s.peer_count(), 0);
        assert!(s.v6.is_none());
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
