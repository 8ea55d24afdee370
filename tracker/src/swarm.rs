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
//!   kept as `u16`s beside it, so [`Swarm`] is 24 bytes (48 with its info-hash in the swarm
//!   table); the rarer IPv6 lists ([`SwarmV6`]) live in a second table of the tracker.
//! - Lists are kept **sorted**, as opentracker's are, by a 64-bit mix of the address
//!   ([`order_key`]), so that a large list is searched from a predicted position ([`find`])
//!   rather than binary searched from the middle: no per-swarm hash index (an index cost about
//!   twice the peers it indexed). Inserting or removing shifts the tail of the list, at most
//!   [`MAX_PEERS_PER_TORRENT`] entries (50 KB).
//! - Lists grow by an eighth (at least [`MIN_GROWTH`] entries) instead of doubling, and expiry
//!   gives back slack over a quarter, so a list's slack stays small (about 6 % on average while
//!   growing). The extra copies cost little: a list that grows to 5,000 peers is copied about
//!   nine times its final size over its life, 450 KB of `memcpy`.
//!   Seeder counts are maintained incrementally, never recounted except after expiry.
//!
//! # Fair selection
//!
//! [`select`] walks the list from a random start offset drawn from the tracker's seeded PRNG,
//! wrapping around, so every peer has the same chance to be in a response, and the walk is
//! bounded by the list length.

use crate::limits::MAX_PEERS_PER_TORRENT;
use seednode_wire::addr::AddrScope;
use seednode_wire::rng::Rng;

/// Compact IPv4 peer: address then port, network order (BEP 23).
pub(crate) const COMPACT_V4_LEN: usize = 6;
/// Compact IPv6 peer: address then port, network order (BEP 7).
pub(crate) const COMPACT_V6_LEN: usize = 18;

/// Fewest entries a list grows by when full (then an eighth of its length).
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

/// One torrent's IPv6 peers (BEP 7), kept by the tracker in a table of its own beside the
/// [`Swarm`]s, so that the common IPv4-only swarm pays nothing for them: 24 bytes.
#[derive(Debug, Default)]
pub(crate) struct SwarmV6 {
    slots: Box<[PeerEntry<COMPACT_V6_LEN>]>,
    len: u16,
    seeders: u16,
}

impl SwarmV6 {
    fn list(&mut self) -> List<'_, COMPACT_V6_LEN> {
        List {
            slots: &mut self.slots,
            len: &mut self.len,
            seeders: &mut self.seeders,
        }
    }

    fn peers(&self) -> &[PeerEntry<COMPACT_V6_LEN>] {
        &self.slots[..usize::from(self.len)]
    }

    /// Peers stored.
    pub(crate) fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether no peer is stored (the tracker then drops the entry).
    pub(crate) const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// [`Swarm::upsert_v4`] for an IPv6 peer.
    pub(crate) fn upsert(&mut self, entry: PeerEntry<COMPACT_V6_LEN>, may_insert: bool) -> Upsert {
        upsert(self.list(), entry, may_insert)
    }

    /// [`Swarm::remove_v4`] for an IPv6 peer.
    pub(crate) fn remove(&mut self, addr: &[u8; COMPACT_V6_LEN]) -> bool {
        remove(self.list(), addr)
    }

    /// [`Swarm::retain_v4_seen_since`] for the IPv6 peers.
    pub(crate) fn retain_seen_since(&mut self, cutoff: u32) -> usize {
        retain(self.list(), cutoff)
    }

    /// [`select`] over the IPv6 peers.
    pub(crate) fn select(
        &self,
        rng: &mut Rng,
        want: usize,
        skip: &[u8; COMPACT_V6_LEN],
        leechers_only: bool,
        requester: AddrScope,
        emit: impl FnMut(&[u8]),
    ) -> usize {
        select(
            self.peers(),
            rng,
            want,
            skip,
            leechers_only,
            requester,
            emit,
        )
    }

    /// Heap bytes of the list (its capacity), for the memory tests.
    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.len() * size_of::<PeerEntry<COMPACT_V6_LEN>>()
    }
}

/// One torrent's swarm: its IPv4 peers and counts, 24 bytes (48 with its info-hash in the
/// swarm table). Its IPv6 peers, if any, are a [`SwarmV6`] in the tracker's second table.
#[derive(Debug, Default)]
pub(crate) struct Swarm {
    v4: Box<[PeerEntry<COMPACT_V4_LEN>]>,
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

    /// IPv4 peers stored.
    pub(crate) fn v4_len(&self) -> usize {
        usize::from(self.v4_len)
    }

    /// `(complete, incomplete)` over both families, `v6` being this swarm's IPv6 peers: seeders
    /// (this node included when hosted) and leechers.
    pub(crate) fn counts(&self, v6: Option<&SwarmV6>) -> (u32, u32) {
        let (v6_len, v6_seeders) = v6.map_or((0, 0), |v| (v.len, v.seeders));
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

    /// Removes the IPv4 peer at `addr`; true if it was stored.
    pub(crate) fn remove_v4(&mut self, addr: &[u8; COMPACT_V4_LEN]) -> bool {
        remove(self.v4_list(), addr)
    }

    /// Drops IPv4 peers last seen before `cutoff` (seconds); returns how many were dropped.
    /// Gives back list slack.
    pub(crate) fn retain_v4_seen_since(&mut self, cutoff: u32) -> usize {
        retain(self.v4_list(), cutoff)
    }

    /// [`select`] over the IPv4 peers.
    pub(crate) fn select_v4(
        &self,
        rng: &mut Rng,
        want: usize,
        skip: &[u8; COMPACT_V4_LEN],
        leechers_only: bool,
        requester: AddrScope,
        emit: impl FnMut(&[u8]),
    ) -> usize {
        select(
            self.v4_peers(),
            rng,
            want,
            skip,
            leechers_only,
            requester,
            emit,
        )
    }

    /// Heap bytes of the IPv4 list (its capacity), for the memory tests.
    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.v4.len() * size_of::<PeerEntry<COMPACT_V4_LEN>>()
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

/// Where a list's order puts `addr`: a 64-bit mix of the address (for IPv4 a bijection of its
/// 6 bytes, so no two peers share a key), then the address itself to break ties. The mix spreads
/// any set of addresses evenly over the key space, which is what lets [`find`] guess a position.
fn order_key<const N: usize>(addr: &[u8; N]) -> u64 {
    let mut x = 0u64;
    for chunk in addr.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        x = x.rotate_left(29) ^ u64::from_le_bytes(word);
    }
    // splitmix64's finalizer: a bijection of u64.
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Lists up to this long are scanned for a known peer, and binary searched for a new one's place.
const GUESS_MIN_LEN: usize = 64;

/// Finds `addr` in a list kept in [`order_key`] order: `Ok(index)`, or `Err(index)` where it
/// would be inserted. Large lists are not binary searched from the middle (13 probes over 50 KB,
/// each a likely cache miss): the key's share of the key space predicts the position to within a
/// few dozen entries, and a search galloping out from there brackets it in a handful of nearby
/// probes. Keys an attacker could pick (it chooses ports) only make the gallop longer, never
/// worse than O(log n).
fn find<const N: usize>(peers: &[PeerEntry<N>], addr: &[u8; N]) -> Result<usize, usize> {
    let key = order_key(addr);
    let cmp = |p: &PeerEntry<N>| (order_key(&p.addr), &p.addr).cmp(&(key, addr));
    let within = |lo: usize, hi: usize| {
        peers[lo..hi]
            .binary_search_by(cmp)
            .map(|i| i + lo)
            .map_err(|i| i + lo)
    };
    let len = peers.len();
    if len <= GUESS_MIN_LEN {
        // A known peer re-announcing is the common case: a plain scan of at most 64 entries
        // (640 bytes of IPv4, 1,408 of IPv6) finds it without computing a key per entry. Only a newcomer pays for the search
        // that finds its place.
        if let Some(i) = peers.iter().position(|p| p.addr == *addr) {
            return Ok(i);
        }
        return within(0, len);
    }
    // key / 2^64 * len, which is < len.
    let guess = ((u128::from(key) * len as u128) >> 64) as usize;
    match cmp(&peers[guess]) {
        std::cmp::Ordering::Equal => Ok(guess),
        std::cmp::Ordering::Less => {
            // The answer is in (guess, len]: gallop right.
            let mut lo = guess + 1;
            let mut step = 1;
            while lo + step < len {
                match cmp(&peers[lo + step]) {
                    std::cmp::Ordering::Equal => return Ok(lo + step),
                    std::cmp::Ordering::Greater => return within(lo, lo + step),
                    std::cmp::Ordering::Less => {
                        lo += step + 1;
                        step *= 2;
                    }
                }
            }
            within(lo.min(len), len)
        }
        std::cmp::Ordering::Greater => {
            // The answer is in [0, guess]: gallop left.
            let mut hi = guess;
            let mut step = 1;
            while hi > step {
                match cmp(&peers[hi - step - 1]) {
                    std::cmp::Ordering::Equal => return Ok(hi - step - 1),
                    std::cmp::Ordering::Less => return within(hi - step, hi),
                    std::cmp::Ordering::Greater => {
                        hi -= step + 1;
                        step *= 2;
                    }
                }
            }
            within(0, hi)
        }
    }
}

fn upsert<const N: usize>(list: List<'_, N>, entry: PeerEntry<N>, may_insert: bool) -> Upsert {
    let len = usize::from(*list.len);
    let at = match find(&list.slots[..len], &entry.addr) {
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
        // Grow by an eighth, not the doubling `Vec::push` would do: less slack per swarm.
        let capacity = (len + (len / 8).max(MIN_GROWTH)).min(MAX_PEERS_PER_TORRENT);
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
    let Ok(i) = find(&list.slots[..len], addr) else {
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

/// The scope of a compact address (BEP 23 / BEP 7: 4 or 16 address bytes, then the port).
pub(crate) fn compact_scope<const N: usize>(addr: &[u8; N]) -> AddrScope {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    if let Ok(v4) = <[u8; 4]>::try_from(&addr[..4.min(N)])
        && N == COMPACT_V4_LEN
    {
        return AddrScope::of(IpAddr::V4(Ipv4Addr::from(v4)));
    }
    match <[u8; 16]>::try_from(&addr[..16.min(N)]) {
        Ok(v6) => AddrScope::of(IpAddr::V6(Ipv6Addr::from(v6))),
        Err(_) => AddrScope::Reserved,
    }
}

/// Whether a peer of scope `peer` is any use to a requester of scope `requester`: a local one
/// (loopback, private, link-local, CGNAT) only to a requester on the same kind of network, any
/// other always (announcers of reserved scopes are the admission rules' business). A tracker open to the internet must not hand its loopback or LAN
/// announcers to the world (they would dial their own machine or network: the same rule
/// `wire::addr::may_dial` applies to addresses learnt from others).
pub(crate) fn useful_to(peer: AddrScope, requester: AddrScope) -> bool {
    let local = matches!(
        peer,
        AddrScope::Loopback | AddrScope::Private | AddrScope::LinkLocal | AddrScope::SharedCgnat
    );
    !local || peer == requester
}

/// Calls `emit` with the compact address of up to `want` peers, starting at a random offset and
/// wrapping around, skipping `skip` (the announcer itself), peers of no use to a `requester`
/// of that scope ([`useful_to`]) and, when `leechers_only`, every seeder. Returns how many were
/// emitted. Visits each peer at most once.
fn select<const N: usize>(
    peers: &[PeerEntry<N>],
    rng: &mut Rng,
    want: usize,
    skip: &[u8; N],
    leechers_only: bool,
    requester: AddrScope,
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
        if p.addr == *skip
            || (leechers_only && p.seeder())
            || !useful_to(compact_scope(&p.addr), requester)
        {
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
        assert_eq!(size_of::<Swarm>(), 24);
        assert_eq!(size_of::<SwarmV6>(), 24);
        assert!(size_of::<(seednode_wire::InfoHash, Swarm)>() <= 48);
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

    fn sorted<const N: usize>(peers: &[PeerEntry<N>]) -> bool {
        peers
            .windows(2)
            .all(|w| (order_key(&w[0].addr), w[0].addr) < (order_key(&w[1].addr), w[1].addr))
    }

    fn assert_sorted(s: &Swarm) {
        assert!(sorted(s.v4_peers()));
    }

    #[test]
    fn find_agrees_with_a_plain_binary_search_at_every_size() {
        let mut rng = Rng::from_seed([7; 32]);
        for len in [0usize, 1, 2, 63, 64, 65, 100, 1000, 5000] {
            let mut peers: Vec<PeerEntry<6>> = (0..len)
                .map(|_| {
                    let mut addr = [0u8; 6];
                    for b in &mut addr {
                        *b = rng.below(256) as u8;
                    }
                    PeerEntry::new(addr, 0, false)
                })
                .collect();
            peers.sort_by_key(|p| (order_key(&p.addr), p.addr));
            peers.dedup_by_key(|p| p.addr);
            let plain = |addr: &[u8; 6]| {
                peers.binary_search_by(|p| {
                    (order_key(&p.addr), &p.addr).cmp(&(order_key(addr), addr))
                })
            };
            for p in &peers {
                assert_eq!(find(&peers, &p.addr), plain(&p.addr), "present, len {len}");
            }
            for _ in 0..2000 {
                let mut addr = [0u8; 6];
                for b in &mut addr {
                    *b = rng.below(256) as u8;
                }
                assert_eq!(find(&peers, &addr), plain(&addr), "absent, len {len}");
            }
        }
    }

    #[test]
    fn find_stays_correct_when_every_key_sits_at_one_end() {
        // Adversarial order: the guess is always far from the answer.
        let mut peers: Vec<PeerEntry<6>> = (0..3000u16).map(|n| entry(n, false)).collect();
        peers.sort_by_key(|p| (order_key(&p.addr), p.addr));
        let low: Vec<_> = peers[..1500].to_vec();
        let high: Vec<_> = peers[1500..].to_vec();
        for list in [&low, &high] {
            for (i, p) in list.iter().enumerate() {
                assert_eq!(find(list, &p.addr), Ok(i));
            }
            for p in if std::ptr::eq(list, &low) {
                &high
            } else {
                &low
            } {
                let expected = list.binary_search_by(|q| {
                    (order_key(&q.addr), &q.addr).cmp(&(order_key(&p.addr), &p.addr))
                });
                assert_eq!(find(list, &p.addr), expected);
            }
        }
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
        assert_eq!(s.counts(None), (34, 66));
        assert_eq!(
            s.upsert_v4(entry(3, false), true),
            Upsert::Updated { was_seeder: true }
        );
        assert_eq!(s.counts(None), (33, 67));
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
        assert_eq!(s.v4_len(), 50);
        assert_eq!(s.retain_v4_seen_since(90), 45);
        assert_sorted(&s);
        assert_eq!(s.v4_len(), 5);
        assert_eq!(s.counts(None), (2, 3), "93 and 99 are seeders");
        assert_eq!(s.retain_v4_seen_since(1000), 5);
        assert!(s.v4.is_empty(), "an empty list frees its slots");
    }

    #[test]
    fn ipv6_peers_live_in_their_own_list() {
        let mut s = Swarm::default();
        let mut v6 = SwarmV6::default();
        for n in (0..40).rev() {
            assert_eq!(v6.upsert(entry6(n, n < 10), true), Upsert::Inserted);
        }
        assert!(sorted(v6.peers()));
        s.upsert_v4(entry(1, false), true);
        assert_eq!(s.counts(Some(&v6)), (10, 31));
        assert!(v6.remove(&entry6(5, false).addr));
        assert!(!v6.remove(&entry6(5, false).addr));
        assert_eq!(s.counts(Some(&v6)), (9, 31));
        assert_eq!(v6.retain_seen_since(1000), 39);
        assert!(v6.is_empty() && v6.slots.is_empty());
        assert!(!v6.remove(&entry6(6, false).addr));
        assert_eq!(v6.upsert(entry6(1, false), false), Upsert::Full);
        assert!(v6.is_empty());
    }

    #[test]
    fn lists_grow_by_an_eighth_and_shrink_on_expiry() {
        let mut s = Swarm::default();
        for n in 0..1000 {
            s.upsert_v4(entry(n, false), true);
        }
        assert!(s.v4.len() <= 1000 + 1000 / 8 + MIN_GROWTH);
        assert_eq!(s.retain_v4_seen_since(900), 900);
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
        assert_eq!(s.v4_len(), 0);
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
        let n = s.select_v4(&mut rng, 100, &me, true, AddrScope::Private, |p| {
            got.push(p.to_vec())
        });
        assert_eq!(n, 19, "20 leechers minus the announcer");
        assert!(!got.contains(&me.to_vec()));
        let mut firsts = std::collections::HashSet::new();
        for _ in 0..50 {
            let mut first = None;
            s.select_v4(&mut rng, 1, &me, false, AddrScope::Private, |p| {
                first = Some(p.to_vec())
            });
            firsts.insert(first.unwrap());
        }
        assert!(firsts.len() > 10, "not always the same first peer");
    }
}
