//! The routing table (BEP 5 §Routing Table): buckets of [`BUCKET_SIZE`] nodes that split only
//! along our own ID, good / questionable / bad node states, a replacement cache per bucket, and
//! at most one entry per IP address.
//!
//! Only nodes that answered one of our queries enter a bucket (SECURITY D8: a query, or a node
//! named in someone's `nodes`, proves nothing about its address). The caller also applies the
//! BEP 42 check before inserting when enforcement is on.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::id::NodeId;
use crate::limits::{
    BAD_NODE_FAILURES, BUCKET_EXPLORE_INTERVAL, BUCKET_REFRESH_INTERVAL, BUCKET_SIZE,
    GOOD_NODE_TTL, MAX_BUCKETS, REPLACEMENTS_PER_BUCKET,
};
use seednode_wire::rng::Rng;

/// One node in a bucket or replacement cache.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) id: NodeId,
    /// `id` as integers, for fast distance computations.
    key: (u128, u32),
    pub(crate) addr: SocketAddr,
    /// Last response to one of our queries.
    pub(crate) last_response: Instant,
    /// Last response or query from it.
    pub(crate) last_seen: Instant,
    /// Unanswered queries in a row.
    pub(crate) failures: u8,
    /// A maintenance ping to it is outstanding.
    pub(crate) pinging: bool,
}

impl Entry {
    fn new(now: Instant, id: NodeId, addr: SocketAddr) -> Self {
        Self {
            id,
            key: id.halves(),
            addr,
            last_response: now,
            last_seen: now,
            failures: 0,
            pinging: false,
        }
    }

    /// Bad: failed [`BAD_NODE_FAILURES`] queries in a row (BEP 5).
    pub(crate) const fn is_bad(&self) -> bool {
        self.failures >= BAD_NODE_FAILURES
    }

    /// Good: answered, no failure since, and active within [`GOOD_NODE_TTL`] (BEP 5).
    pub(crate) fn is_good(&self, now: Instant) -> bool {
        self.failures == 0 && now.saturating_duration_since(self.last_seen) < GOOD_NODE_TTL
    }
}

#[derive(Debug, Clone)]
struct Bucket {
    nodes: Vec<Entry>,
    replacements: Vec<Entry>,
    last_changed: Instant,
    /// Not explored again before this.
    next_explore: Option<Instant>,
}

impl Bucket {
    fn new(now: Instant) -> Self {
        Self {
            nodes: Vec::with_capacity(BUCKET_SIZE),
            replacements: Vec::new(),
            last_changed: now,
            next_explore: None,
        }
    }
}

/// What [`RoutingTable::heard_response`] did with a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Insert {
    /// It is in a bucket now (new, refreshed, or replacing a bad node).
    Stored,
    /// Its bucket is full: it waits in the replacement cache; ping this questionable node to find
    /// out whether it can be replaced.
    Waiting(Option<(NodeId, SocketAddr)>),
    /// Refused: our own ID, its ID is held by another IP, or its IP by another ID.
    Refused,
}

/// One address family's routing table.
#[derive(Debug, Clone)]
pub(crate) struct RoutingTable {
    own: NodeId,
    buckets: Vec<Bucket>,
    /// Index of bucket entries by IP: one entry per IP (SECURITY D8).
    ips: BTreeMap<IpAddr, NodeId>,
    /// Next bucket [`RoutingTable::explore_target`] looks at.
    explore_cursor: usize,
    /// No node can be questionable before this (a scan found none); reset by failures.
    quiet_until: Option<Instant>,
}

impl RoutingTable {
    pub(crate) fn new(own: NodeId, now: Instant) -> Self {
        Self {
            own,
            buckets: vec![Bucket::new(now)],
            ips: BTreeMap::new(),
            explore_cursor: 0,
            quiet_until: None,
        }
    }

    fn bucket_index(&self, id: &NodeId) -> usize {
        self.own.common_prefix_len(id).min(self.buckets.len() - 1)
    }

    /// Nodes in buckets (replacement candidates not included).
    pub(crate) fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.nodes.len()).sum()
    }

    /// Replacement candidates waiting.
    pub(crate) fn replacements(&self) -> usize {
        self.buckets.iter().map(|b| b.replacements.len()).sum()
    }

    /// Buckets in use.
    pub(crate) fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ips.is_empty()
    }

    fn find_mut(&mut self, id: &NodeId) -> Option<&mut Entry> {
        let b = self.bucket_index(id);
        self.buckets[b].nodes.iter_mut().find(|e| e.id == *id)
    }

    /// `id` at `addr` answered one of our queries: refresh it, or try to insert it.
    pub(crate) fn heard_response(&mut self, now: Instant, id: NodeId, addr: SocketAddr) -> Insert {
        if id == self.own {
            return Insert::Refused;
        }
        let ip = addr.ip();
        let b = self.bucket_index(&id);
        if let Some(pos) = self.buckets[b].nodes.iter().position(|e| e.id == id) {
            let old = self.buckets[b].nodes[pos].addr;
            let same_ip = old.ip() == ip;
            if !same_ip {
                // The ID moved to another IP: only a bad entry may be taken over, and only if the
                // new IP is not in use already.
                if !self.buckets[b].nodes[pos].is_bad() || self.ips.contains_key(&ip) {
                    return Insert::Refused;
                }
                self.ips.remove(&old.ip());
                self.ips.insert(ip, id);
            }
            let bucket = &mut self.buckets[b];
            let e = &mut bucket.nodes[pos];
            e.addr = addr;
            e.last_response = now;
            e.last_seen = now;
            e.failures = 0;
            e.pinging = false;
            bucket.last_changed = now;
            return Insert::Stored;
        }
        if let Some(other) = self.ips.get(&ip).copied() {
            let bad = self.find_mut(&other).is_none_or(|e| e.is_bad());
            if !bad {
                return Insert::Refused;
            }
            self.remove(&other);
        }
        loop {
            let b = self.bucket_index(&id);
            let can_split = b == self.buckets.len() - 1 && self.buckets.len() < MAX_BUCKETS;
            let bucket = &mut self.buckets[b];
            bucket
                .replacements
                .retain(|e| e.id != id && e.addr.ip() != ip);
            if bucket.nodes.len() < BUCKET_SIZE {
                bucket.nodes.push(Entry::new(now, id, addr));
                bucket.last_changed = now;
                self.ips.insert(ip, id);
                return Insert::Stored;
            }
            if can_split {
                self.split_last();
                continue;
            }
            if let Some(pos) = bucket.nodes.iter().position(Entry::is_bad) {
                let old = std::mem::replace(&mut bucket.nodes[pos], Entry::new(now, id, addr));
                bucket.last_changed = now;
                self.ips.remove(&old.addr.ip());
                self.ips.insert(ip, id);
                return Insert::Stored;
            }
            // Full of good and questionable nodes: wait as a replacement and ping the least
            // recently seen questionable node (BEP 5).
            if bucket.replacements.len() >= REPLACEMENTS_PER_BUCKET
                && let Some(pos) = oldest(&bucket.replacements)
            {
                bucket.replacements.swap_remove(pos);
            }
            bucket.replacements.push(Entry::new(now, id, addr));
            let ping = bucket
                .nodes
                .iter_mut()
                .filter(|e| !e.pinging && !e.is_good(now))
                .min_by_key(|e| e.last_seen)
                .map(|e| {
                    e.pinging = true;
                    (e.id, e.addr)
                });
            return Insert::Waiting(ping);
        }
    }

    /// `id` at `addr` sent us a query. Returns true when it is unknown and could enter the table,
    /// so it is worth a verification ping.
    pub(crate) fn heard_query(&mut self, now: Instant, id: NodeId, addr: SocketAddr) -> bool {
        if let Some(e) = self.find_mut(&id) {
            if e.addr == addr {
                e.last_seen = now;
            }
            return false;
        }
        self.could_take(now, id, addr, false)
    }

    /// Whether `id` at `addr`, not in the table, could enter it if it answered a ping: its IP is
    /// not in use and its bucket has room or can split (or, unless `room_only`, holds a node
    /// that is not good).
    pub(crate) fn could_take(
        &self,
        now: Instant,
        id: NodeId,
        addr: SocketAddr,
        room_only: bool,
    ) -> bool {
        if id == self.own || self.ips.contains_key(&addr.ip()) {
            return false;
        }
        let b = self.bucket_index(&id);
        let last = b == self.buckets.len() - 1;
        let bucket = &self.buckets[b];
        if bucket
            .nodes
            .iter()
            .chain(&bucket.replacements)
            .any(|e| e.id == id)
        {
            return false;
        }
        bucket.nodes.len() < BUCKET_SIZE
            || (last && self.buckets.len() < MAX_BUCKETS)
            || (!room_only && bucket.nodes.iter().any(|e| !e.is_good(now)))
    }

    /// A query to `id` at `addr` went unanswered: count the failure; a node that turns bad is
    /// replaced by its bucket's most recently seen replacement candidate.
    pub(crate) fn failed(&mut self, id: &NodeId, addr: SocketAddr) {
        let b = self.bucket_index(id);
        let bucket = &mut self.buckets[b];
        bucket
            .replacements
            .retain(|e| !(e.id == *id && e.addr == addr));
        let Some(pos) = bucket
            .nodes
            .iter()
            .position(|e| e.id == *id && e.addr == addr)
        else {
            return;
        };
        self.quiet_until = None;
        let e = &mut bucket.nodes[pos];
        e.failures = e.failures.saturating_add(1);
        e.pinging = false;
        if !e.is_bad() {
            return;
        }
        // Promote the freshest replacement whose IP is not in the table already.
        while let Some(r) = newest(&bucket.replacements) {
            let candidate = bucket.replacements.swap_remove(r);
            if self.ips.contains_key(&candidate.addr.ip()) {
                continue;
            }
            let old = std::mem::replace(&mut bucket.nodes[pos], candidate);
            self.ips.remove(&old.addr.ip());
            let new = &bucket.nodes[pos];
            self.ips.insert(new.addr.ip(), new.id);
            break;
        }
    }

    fn remove(&mut self, id: &NodeId) {
        let b = self.bucket_index(id);
        if let Some(pos) = self.buckets[b].nodes.iter().position(|e| e.id == *id) {
            let old = self.buckets[b].nodes.swap_remove(pos);
            self.ips.remove(&old.addr.ip());
        }
    }

    fn split_last(&mut self) {
        let depth = self.buckets.len();
        let own = self.own;
        let Some(old) = self.buckets.last_mut() else {
            return;
        };
        let mut new = Bucket::new(old.last_changed);
        new.next_explore = old.next_explore;
        let (stay, go): (Vec<_>, Vec<_>) = old
            .nodes
            .drain(..)
            .partition(|e| own.common_prefix_len(&e.id) < depth);
        old.nodes = stay;
        new.nodes = go;
        let (stay, go): (Vec<_>, Vec<_>) = old
            .replacements
            .drain(..)
            .partition(|e| own.common_prefix_len(&e.id) < depth);
        old.replacements = stay;
        new.replacements = go;
        self.buckets.push(new);
    }

    /// Appends up to `count` nodes closest to `target` to `out`, closest first; bad nodes only
    /// with `include_bad` (to seed a lookup after an outage made every node bad).
    pub(crate) fn closest(
        &self,
        target: &NodeId,
        count: usize,
        include_bad: bool,
        out: &mut Vec<(NodeId, SocketAddr)>,
    ) {
        if count == 0 {
            return;
        }
        let (t_hi, t_lo) = target.halves();
        let mut best: Vec<((u128, u32), &Entry)> = Vec::with_capacity(count + 1);
        for e in self.buckets.iter().flat_map(|b| b.nodes.iter()) {
            let d = (e.key.0 ^ t_hi, e.key.1 ^ t_lo);
            if best.len() == count && best.last().is_some_and(|(worst, _)| d >= *worst) {
                continue;
            }
            if e.is_bad() && !include_bad {
                continue;
            }
            let pos = best.partition_point(|(x, _)| *x < d);
            best.insert(pos, (d, e));
            best.truncate(count);
        }
        out.extend(best.into_iter().map(|(_, e)| (e.id, e.addr)));
    }

    /// A random target in the range of one bucket unchanged for [`BUCKET_REFRESH_INTERVAL`], whose
    /// clock is then reset (BEP 5 refresh); `None` when every bucket is fresh.
    pub(crate) fn refresh_target(&mut self, now: Instant, rng: &mut Rng) -> Option<NodeId> {
        let last = self.buckets.len() - 1;
        let (i, bucket) = self.buckets.iter_mut().enumerate().find(|(_, b)| {
            now.saturating_duration_since(b.last_changed) >= BUCKET_REFRESH_INTERVAL
        })?;
        bucket.last_changed = now;
        Some(self.own.random_with_prefix(i, i != last, rng))
    }

    /// A bucket with free slots, in turn, as a random target in its range and the table node
    /// closest to that target to ask for it with `find_node`; `None` when every bucket is full or
    /// the table is empty. This fills the far buckets in the background, one query per tick, in
    /// the style of jech's `dht.c` bucket maintenance.
    pub(crate) fn explore_target(
        &mut self,
        now: Instant,
        rng: &mut Rng,
    ) -> Option<(NodeId, NodeId, SocketAddr)> {
        let n = self.buckets.len();
        let last = n - 1;
        let i = (0..n).map(|k| (self.explore_cursor + k) % n).find(|&i| {
            let b = &self.buckets[i];
            b.nodes.len() < BUCKET_SIZE && b.next_explore.is_none_or(|t| t <= now)
        })?;
        self.explore_cursor = (i + 1) % n;
        self.buckets[i].next_explore = Some(now + BUCKET_EXPLORE_INTERVAL);
        let target = self.own.random_with_prefix(i, i != last, rng);
        let mut ask = Vec::with_capacity(1);
        self.closest(&target, 1, false, &mut ask);
        let (id, addr) = ask.pop()?;
        Some((target, id, addr))
    }

    /// The least recently seen questionable node not being pinged, now marked as pinged.
    pub(crate) fn questionable_to_ping(&mut self, now: Instant) -> Option<(NodeId, SocketAddr)> {
        if self.quiet_until.is_some_and(|t| now < t) {
            return None;
        }
        let mut earliest: Option<Instant> = None;
        let mut pick: Option<&mut Entry> = None;
        for e in self.buckets.iter_mut().flat_map(|b| b.nodes.iter_mut()) {
            if e.pinging || e.is_bad() {
                continue;
            }
            if e.is_good(now) {
                let due = e.last_seen + GOOD_NODE_TTL;
                earliest = Some(earliest.map_or(due, |t| t.min(due)));
            } else if pick.as_ref().is_none_or(|p| e.last_seen < p.last_seen) {
                pick = Some(e);
            }
        }
        let Some(e) = pick else {
            // Nothing questionable: nothing can turn questionable before the earliest good node
            // ages out, unless a query fails (which resets this).
            self.quiet_until = earliest;
            return None;
        };
        e.pinging = true;
        Some((e.id, e.addr))
    }

    /// Every non-bad bucket node, for saving (BEP 5: "the routing table should be saved").
    pub(crate) fn export(&self, out: &mut Vec<(NodeId, SocketAddr)>) {
        out.extend(
            self.buckets
                .iter()
                .flat_map(|b| b.nodes.iter())
                .filter(|e| !e.is_bad())
                .map(|e| (e.id, e.addr)),
        );
    }

    /// Nodes that are not bad.
    pub(crate) fn live(&self) -> usize {
        self.buckets
            .iter()
            .flat_map(|b| b.nodes.iter())
            .filter(|e| !e.is_bad())
            .count()
    }

    /// Nodes in a good state now.
    pub(crate) fn good(&self, now: Instant) -> usize {
        self.buckets
            .iter()
            .flat_map(|b| b.nodes.iter())
            .filter(|e| e.is_good(now))
            .count()
    }

    /// Checks the structural invariants (tests and fuzzing): bucket sizes, one entry per IP,
    /// every node in the bucket its ID belongs to.
    #[doc(hidden)]
    pub(crate) fn check_invariants(&self) {
        assert!(self.buckets.len() <= MAX_BUCKETS);
        let mut ips = BTreeMap::new();
        for (i, b) in self.buckets.iter().enumerate() {
            assert!(b.nodes.len() <= BUCKET_SIZE);
            assert!(b.replacements.len() <= REPLACEMENTS_PER_BUCKET);
            for e in &b.nodes {
                assert_eq!(self.bucket_index(&e.id), i, "node in the wrong bucket");
                assert!(
                    ips.insert(e.addr.ip(), e.id).is_none(),
                    "two entries for one IP"
                );
            }
        }
        assert_eq!(ips, self.ips);
    }
}

fn oldest(entries: &[Entry]) -> Option<usize> {
    entries
        .iter()
        .enumerate()
        .min_by_key(|(_, e)| e.last_seen)
        .map(|(i, _)| i)
}

fn newest(entries: &[Entry]) -> Option<usize> {
    entries
        .iter()
        .enumerate()
        .max_by_key(|(_, e)| e.last_seen)
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn addr(i: u32) -> SocketAddr {
        SocketAddr::from((i.to_be_bytes(), 6881))
    }

    fn id_with_prefix(first: u8, rest: u8) -> NodeId {
        let mut id = [rest; 20];
        id[0] = first;
        NodeId(id)
    }

    #[allow(clippy::disallowed_methods)]
    fn epoch() -> Instant {
        Instant::now()
    }

    #[test]
    fn splits_only_along_own_id() {
        let t0 = epoch();
        let own = NodeId([0; 20]);
        let mut table = RoutingTable::new(own, t0);
        // 100 nodes far from us (first bit set): they share one bucket, which cannot split once
        // our ID is no longer in its range.
        for i in 0..100u8 {
            table.heard_response(
                t0,
                id_with_prefix(0x80 | (i & 0x7f), i),
                addr(u32::from(i) + 1),
            );
            table.check_invariants();
        }
        assert_eq!(table.bucket_count(), 2);
        assert_eq!(table.len(), BUCKET_SIZE);
        assert_eq!(table.replacements(), REPLACEMENTS_PER_BUCKET);
        // Nodes ever closer to us split the near bucket again and again.
        for i in 1..=40u8 {
            let mut id = [0u8; 20];
            id[19] = i;
            id[usize::from(i % 19)] |= 0x01;
            table.heard_response(t0, NodeId(id), addr(1000 + u32::from(i)));
            table.check_invariants();
        }
        assert!(table.bucket_count() > 2);
    }

    #[test]
    fn d8_one_entry_per_ip() {
        let t0 = epoch();
        let mut table = RoutingTable::new(NodeId([0; 20]), t0);
        assert_eq!(
            table.heard_response(t0, NodeId([1; 20]), addr(7)),
            Insert::Stored
        );
        for i in 2..200u8 {
            assert_eq!(
                table.heard_response(t0, NodeId([i; 20]), addr(7)),
                Insert::Refused
            );
            assert!(!table.heard_query(t0, NodeId([i; 20]), addr(7)));
        }
        // Same ID claimed from another IP: refused while the owner is healthy.
        assert_eq!(
            table.heard_response(t0, NodeId([1; 20]), addr(8)),
            Insert::Refused
        );
        assert_eq!(table.len(), 1);
        // Port change on the same IP (NAT rebinding) is an update.
        let moved = SocketAddr::from(([0, 0, 0, 7], 9999));
        assert_eq!(
            table.heard_response(t0, NodeId([1; 20]), moved),
            Insert::Stored
        );
        table.check_invariants();
    }

    #[test]
    fn bad_nodes_are_replaced_from_the_cache() {
        let t0 = epoch();
        let own = NodeId([0; 20]);
        let mut table = RoutingTable::new(own, t0);
        // Fill the far bucket (first bit set).
        for i in 0..(BUCKET_SIZE as u8 * 2) {
            table.heard_response(t0, id_with_prefix(0x80 | i, i), addr(u32::from(i) + 1));
        }
        let far: Vec<_> = {
            let mut v = Vec::new();
            table.export(&mut v);
            v.into_iter().filter(|(id, _)| id.bit(0)).collect()
        };
        assert_eq!(far.len(), BUCKET_SIZE);
        // Good nodes: a newcomer waits without any ping.
        let t1 = t0 + Duration::from_secs(60);
        let newcomer = id_with_prefix(0xff, 0xee);
        assert_eq!(
            table.heard_response(t1, newcomer, addr(500)),
            Insert::Waiting(None)
        );
        // Once the nodes are questionable, a newcomer triggers a ping of the oldest one.
        let t2 = t0 + GOOD_NODE_TTL + Duration::from_secs(1);
        let Insert::Waiting(Some((pinged, pinged_addr))) =
            table.heard_response(t2, id_with_prefix(0xfe, 0xee), addr(501))
        else {
            panic!("expected a ping");
        };
        // Two failures make it bad: the freshest replacement takes its place.
        table.failed(&pinged, pinged_addr);
        table.failed(&pinged, pinged_addr);
        let mut now = Vec::new();
        table.export(&mut now);
        assert!(!now.iter().any(|(id, _)| *id == pinged));
        assert!(now.iter().any(|(id, _)| *id == id_with_prefix(0xfe, 0xee)));
        table.check_invariants();
    }

    #[test]
    fn closest_is_sorted_and_bounded() {
        let t0 = epoch();
        let mut table = RoutingTable::new(NodeId([0x55; 20]), t0);
        let mut rng = Rng::from_u64(3);
        for i in 0..500u32 {
            let mut id = [0u8; 20];
            rng.fill(&mut id);
            table.heard_response(t0, NodeId(id), addr(i + 1));
        }
        table.check_invariants();
        let target = NodeId([0x12; 20]);
        let mut out = Vec::new();
        table.closest(&target, 8, false, &mut out);
        assert_eq!(out.len(), 8);
        assert!(
            out.windows(2)
                .all(|w| w[0].0.distance(&target) < w[1].0.distance(&target))
        );
        let mut all = Vec::new();
        table.export(&mut all);
        let best = all
            .iter()
            .map(|(id, _)| id.distance(&target))
            .min()
            .unwrap();
        assert_eq!(out[0].0.distance(&target), best);
    }

    #[test]
    fn stale_buckets_get_refresh_targets() {
        let t0 = epoch();
        let own = NodeId([0; 20]);
        let mut table = RoutingTable::new(own, t0);
        let mut rng = Rng::from_u64(1);
        assert_eq!(table.refresh_target(t0, &mut rng), None);
        let later = t0 + BUCKET_REFRESH_INTERVAL;
        assert!(table.refresh_target(later, &mut rng).is_some());
        assert_eq!(table.refresh_target(later, &mut rng), None);
    }
}
