//! The seed-mode choker (BEP 3 §choking, as libtorrent's seed choking): which interested peers
//! are unchoked, over every torrent of the node. Pure: time is an argument.
//!
//! - At most `slots_per_torrent` peers of one torrent and `global_slots` peers in all hold an
//!   upload slot; one slot per torrent is kept for the optimistic unchoke.
//! - Every [`RECHOKE_INTERVAL`] the regular slots go to the interested peers we upload to fastest,
//!   except that a peer that has held its slot for [`ROTATION_INTERVAL`] is rotated out in favour
//!   of peers that waited (round robin, so no peer is starved), and a peer that has stopped asking
//!   for blocks for [`SNUB_TIMEOUT`] gives its slot up (snubbed).
//! - Every [`OPTIMISTIC_INTERVAL`] the peer that has waited longest gets the optimistic slot.
//! - Between rechokes a free slot is handed out at once to the peer that waited longest.
//!
//! Decisions come back as `(key, unchoke)` pairs for the reactor to apply.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How often slots are reassigned (BEP 3 suggests every 10 seconds).
pub const RECHOKE_INTERVAL: Duration = Duration::from_secs(10);

/// How often the optimistic unchoke moves (BEP 3: every 30 seconds).
pub const OPTIMISTIC_INTERVAL: Duration = Duration::from_secs(30);

/// A peer unchoked this long yields its slot to a waiting peer at the next rechoke (libtorrent's
/// round-robin seed choking rotates after about a minute).
pub const ROTATION_INTERVAL: Duration = Duration::from_secs(60);

/// An unchoked peer that has requested nothing for this long is snubbed: it loses its slot.
pub const SNUB_TIMEOUT: Duration = Duration::from_secs(60);

/// A peer's slot, as the reactor names it: the connection key and its torrent index.
#[derive(Debug, Clone, Copy)]
struct Peer {
    torrent: usize,
    unchoked_at: Option<Instant>,
    /// When it last became interested or last lost its slot: the longest waiter goes first.
    waiting_since: Instant,
    last_request: Instant,
    /// Bytes uploaded since the last rechoke: the rate ranking.
    uploaded_in_round: u64,
    optimistic: bool,
}

/// The choker of the whole node.
#[derive(Debug)]
pub struct Choker {
    slots_per_torrent: usize,
    global_slots: usize,
    /// Interested peers only.
    peers: HashMap<usize, Peer>,
    next_rechoke: Instant,
    next_optimistic: Instant,
}

/// One decision: `(connection key, true = unchoke / false = choke)`.
pub type Decision = (usize, bool);

impl Choker {
    /// A choker with the given slot counts (each at least 1), starting its clocks at `now`.
    pub fn new(now: Instant, slots_per_torrent: usize, global_slots: usize) -> Self {
        Self {
            slots_per_torrent: slots_per_torrent.max(1),
            global_slots: global_slots.max(1),
            peers: HashMap::new(),
            next_rechoke: now + RECHOKE_INTERVAL,
            next_optimistic: now + OPTIMISTIC_INTERVAL,
        }
    }

    /// When [`Choker::tick`] next has work.
    pub fn poll_timeout(&self) -> Instant {
        self.next_rechoke.min(self.next_optimistic)
    }

    fn unchoked_count(&self, torrent: Option<usize>) -> usize {
        self.peers
            .values()
            .filter(|p| p.unchoked_at.is_some() && torrent.is_none_or(|t| p.torrent == t))
            .count()
    }

    fn has_room(&self, torrent: usize) -> bool {
        self.unchoked_count(Some(torrent)) < self.slots_per_torrent
            && self.unchoked_count(None) < self.global_slots
    }

    /// Peer `key` of `torrent` became interested; it is unchoked at once if a slot is free.
    pub fn interested(&mut self, now: Instant, key: usize, torrent: usize) -> Vec<Decision> {
        if self.peers.contains_key(&key) {
            return Vec::new();
        }
        self.peers.insert(
            key,
            Peer {
                torrent,
                unchoked_at: None,
                waiting_since: now,
                last_request: now,
                uploaded_in_round: 0,
                optimistic: false,
            },
        );
        self.fill(now)
    }

    /// Peer `key` lost interest or disconnected; its slot goes to the longest waiter. The peer
    /// itself is not reported: the caller has already choked or dropped it.
    pub fn leave(&mut self, now: Instant, key: usize) -> Vec<Decision> {
        match self.peers.remove(&key) {
            Some(p) if p.unchoked_at.is_some() => self.fill(now),
            _ => Vec::new(),
        }
    }

    /// Records a block request from `key` (it is using its slot).
    pub fn record_request(&mut self, now: Instant, key: usize) {
        if let Some(p) = self.peers.get_mut(&key) {
            p.last_request = now;
        }
    }

    /// Records `bytes` of block payload sent to `key`.
    pub fn record_upload(&mut self, key: usize, bytes: u64) {
        if let Some(p) = self.peers.get_mut(&key) {
            p.uploaded_in_round = p.uploaded_in_round.saturating_add(bytes);
        }
    }

    /// Hands free slots to the peers that waited longest.
    fn fill(&mut self, now: Instant) -> Vec<Decision> {
        let mut waiting: Vec<(Instant, usize, usize)> = self
            .peers
            .iter()
            .filter(|(_, p)| p.unchoked_at.is_none())
            .map(|(k, p)| (p.waiting_since, *k, p.torrent))
            .collect();
        waiting.sort_unstable();
        let mut out = Vec::new();
        for (_, key, torrent) in waiting {
            if self.has_room(torrent) {
                self.set(now, key, true, &mut out);
            }
        }
        out
    }

    fn set(&mut self, now: Instant, key: usize, unchoke: bool, out: &mut Vec<Decision>) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if p.unchoked_at.is_some() == unchoke {
            return;
        }
        if unchoke {
            p.unchoked_at = Some(now);
            p.last_request = now;
        } else {
            p.unchoked_at = None;
            p.waiting_since = now;
            p.optimistic = false;
        }
        out.push((key, unchoke));
    }

    /// Runs the periodic rechoke and optimistic unchoke when due.
    pub fn tick(&mut self, now: Instant) -> Vec<Decision> {
        let mut out = Vec::new();
        let optimistic_due = now >= self.next_optimistic;
        if now < self.next_rechoke && !optimistic_due {
            return out;
        }
        self.next_rechoke = now + RECHOKE_INTERVAL;
        if optimistic_due {
            self.next_optimistic = now + OPTIMISTIC_INTERVAL;
            for p in self.peers.values_mut() {
                p.optimistic = false;
            }
        }
        // Rank: peers not due for rotation or snubbed first, by upload rate, then the longest
        // waiters; everything below the cut is choked.
        let mut ranked: Vec<(bool, std::cmp::Reverse<u64>, Instant, usize)> = self
            .peers
            .iter()
            .filter(|(_, p)| !p.optimistic)
            .map(|(k, p)| {
                let yield_slot = p.unchoked_at.is_some_and(|at| {
                    now.duration_since(at) >= ROTATION_INTERVAL
                        || now.duration_since(p.last_request) >= SNUB_TIMEOUT
                });
                let since = p.unchoked_at.map_or(p.waiting_since, |_| now);
                (
                    yield_slot,
                    std::cmp::Reverse(p.uploaded_in_round),
                    since,
                    *k,
                )
            })
            .collect();
        ranked.sort_unstable();
        let mut per_torrent: HashMap<usize, usize> = HashMap::new();
        let mut total = 0;
        for p in self.peers.values().filter(|p| p.optimistic) {
            *per_torrent.entry(p.torrent).or_default() += 1;
            total += 1;
        }
        // One slot per torrent is held back for its optimistic unchoke: the regular slots go
        // strictly by rank. What is left after that also goes by rank, so peers are not choked
        // and unchoked again for nothing when there are slots enough for everyone.
        let regular = self.slots_per_torrent.saturating_sub(1).max(1);
        let mut keep = Vec::new();
        for limit in [regular, self.slots_per_torrent] {
            for &(_, _, _, key) in &ranked {
                let torrent = self.peers[&key].torrent;
                let used = per_torrent.entry(torrent).or_default();
                if !keep.contains(&key) && *used < limit && total < self.global_slots {
                    *used += 1;
                    total += 1;
                    keep.push(key);
                }
            }
        }
        if optimistic_due && keep.len() < ranked.len() {
            // Someone waits: the optimistic slot is taken back from the lowest-ranked holder.
            if let Some(pos) = keep.iter().rposition(|k| {
                let t = self.peers[k].torrent;
                per_torrent.get(&t).is_some_and(|u| *u > regular)
            }) {
                let t = self.peers[&keep[pos]].torrent;
                keep.remove(pos);
                if let Some(u) = per_torrent.get_mut(&t) {
                    *u -= 1;
                }
            }
        }
        for &(_, _, _, key) in &ranked {
            let unchoke = keep.contains(&key);
            self.set(now, key, unchoke, &mut out);
        }
        if optimistic_due {
            let mut waiting: Vec<(Instant, usize)> = self
                .peers
                .iter()
                .filter(|(_, p)| p.unchoked_at.is_none())
                .map(|(k, p)| (p.waiting_since, *k))
                .collect();
            waiting.sort_unstable();
            if let Some(&(_, key)) = waiting
                .iter()
                .find(|(_, k)| self.has_room(self.peers[k].torrent))
            {
                self.set(now, key, true, &mut out);
                if let Some(p) = self.peers.get_mut(&key) {
                    p.optimistic = true;
                }
            }
        }
        for p in self.peers.values_mut() {
            p.uploaded_in_round = 0;
        }
        out.extend(self.fill(now));
        out
    }

    /// Whether `key` holds a slot.
    pub fn is_unchoked(&self, key: usize) -> bool {
        self.peers
            .get(&key)
            .is_some_and(|p| p.unchoked_at.is_some())
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    fn unchoked(c: &Choker, keys: impl IntoIterator<Item = usize>) -> Vec<usize> {
        keys.into_iter().filter(|k| c.is_unchoked(*k)).collect()
    }

    #[test]
    fn free_slots_go_out_at_once_and_are_bounded() {
        let t0 = Instant::now();
        let mut c = Choker::new(t0, 2, 10);
        assert_eq!(c.interested(t0, 1, 0), vec![(1, true)]);
        assert_eq!(c.interested(t0, 2, 0), vec![(2, true)]);
        assert_eq!(c.interested(t0, 3, 0), vec![]);
        assert_eq!(
            c.interested(t0, 4, 1),
            vec![(4, true)],
            "another torrent has its own slots"
        );
        assert_eq!(c.leave(t0, 3), vec![], "a waiting peer frees no slot");
        assert!(c.interested(t0, 5, 0).is_empty());
        assert_eq!(c.leave(t0, 1), vec![(5, true)]);
    }

    #[test]
    fn global_cap_spans_torrents() {
        let t0 = Instant::now();
        let mut c = Choker::new(t0, 4, 3);
        for (key, torrent) in [(1, 0), (2, 1), (3, 2), (4, 3)] {
            c.interested(t0, key, torrent);
        }
        assert_eq!(unchoked(&c, 1..=4), vec![1, 2, 3]);
    }

    #[test]
    fn rechoke_prefers_fastest_and_rotates_so_nobody_starves() {
        let t0 = Instant::now();
        let mut c = Choker::new(t0, 3, 10); // two regular slots + one optimistic
        for key in 1..=5 {
            c.interested(t0, key, 0);
        }
        assert_eq!(unchoked(&c, 1..=5), vec![1, 2, 3]);
        // Peer 3 is slowest: at the first rechoke it loses its slot to the longest waiter only
        // if there is no room; with 2 regular slots the fastest two stay.
        let mut t = t0;
        let mut ever_unchoked = std::collections::BTreeSet::new();
        for round in 0..30 {
            t += RECHOKE_INTERVAL;
            for key in 1..=5 {
                if c.is_unchoked(key) {
                    c.record_request(t, key);
                    c.record_upload(key, 1000 * key as u64);
                }
            }
            c.tick(t);
            let now_unchoked = unchoked(&c, 1..=5);
            assert!(now_unchoked.len() <= 3, "round {round}: {now_unchoked:?}");
            ever_unchoked.extend(now_unchoked);
        }
        assert_eq!(
            ever_unchoked.len(),
            5,
            "every peer got a turn (round robin)"
        );
    }

    #[test]
    fn optimistic_unchoke_picks_the_longest_waiter_every_30s() {
        let t0 = Instant::now();
        let mut c = Choker::new(t0, 2, 10); // one regular + one optimistic
        c.interested(t0, 1, 0);
        c.interested(t0, 2, 0);
        c.interested(t0 + Duration::from_secs(1), 3, 0);
        c.interested(t0 + Duration::from_secs(2), 4, 0);
        let t = t0 + OPTIMISTIC_INTERVAL;
        c.record_request(t, 1);
        c.record_upload(1, 10_000);
        c.record_request(t, 2);
        c.tick(t);
        // Peer 1 is fastest and keeps the regular slot; the optimistic slot goes to peer 3, which
        // waited longest.
        assert_eq!(unchoked(&c, 1..=4), vec![1, 3]);
    }

    #[test]
    fn snubbed_peer_never_holds_a_slot_long() {
        let t0 = Instant::now();
        let mut c = Choker::new(t0, 2, 10);
        for key in 1..=3 {
            c.interested(t0, key, 0);
        }
        // Peers 2 and 3 download whenever unchoked; peer 1 never asks for anything.
        let mut t = t0;
        let mut held_since = None;
        let mut longest = Duration::ZERO;
        while t < t0 + Duration::from_secs(600) {
            t += RECHOKE_INTERVAL;
            for key in [2, 3] {
                if c.is_unchoked(key) {
                    c.record_request(t, key);
                    c.record_upload(key, 16_384);
                }
            }
            c.tick(t);
            match (c.is_unchoked(1), held_since) {
                (true, None) => held_since = Some(t),
                (false, Some(since)) => {
                    longest = longest.max(t - since);
                    held_since = None;
                }
                _ => {}
            }
        }
        assert!(
            longest <= SNUB_TIMEOUT + RECHOKE_INTERVAL,
            "held a slot for {longest:?}"
        );
    }

    #[test]
    fn no_flapping_when_slots_suffice() {
        let t0 = Instant::now();
        let mut c = Choker::new(t0, 4, 10);
        for key in 1..=3 {
            c.interested(t0, key, 0);
        }
        for round in 1..=20 {
            let t = t0 + RECHOKE_INTERVAL * round;
            for key in 1..=3 {
                c.record_request(t, key);
            }
            assert!(c.tick(t).is_empty(), "round {round}: nothing to change");
        }
    }

    #[test]
    fn tick_does_nothing_before_it_is_due() {
        let t0 = Instant::now();
        let mut c = Choker::new(t0, 1, 1);
        c.interested(t0, 1, 0);
        c.interested(t0, 2, 0);
        assert!(c.tick(t0 + Duration::from_secs(9)).is_empty());
        assert_eq!(c.poll_timeout(), t0 + RECHOKE_INTERVAL);
    }
}
