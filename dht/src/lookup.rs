//! Iterative lookups (BEP 5 §Overview, Kademlia): per address family, query the [`LOOKUP_ALPHA`]
//! closest unqueried candidates at a time, add the nodes they return, and stop once the
//! [`BUCKET_SIZE`] closest candidates still standing have all answered.
//!
//! A [`Traversal`] is pure bookkeeping: it never sends anything itself. [`crate::Dht`] asks it
//! which nodes to query next, feeds it responses and failures, and reads whether it is done.

use std::net::SocketAddr;

use crate::id::NodeId;
use crate::limits::{BUCKET_SIZE, LOOKUP_ALPHA, MAX_LOOKUP_CANDIDATES, MAX_LOOKUP_QUERIES};

/// Where a candidate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CandidateState {
    /// Not queried yet.
    Fresh,
    /// Query outstanding.
    InFlight,
    /// Query outstanding past its short timeout: still awaited, but no longer holding a slot.
    Slow,
    /// Answered.
    Responded,
    /// Timed out or answered with an error.
    Failed,
}

/// A node a lookup may query.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    /// Its ID, or zero while unknown (a bootstrap address).
    pub(crate) id: NodeId,
    pub(crate) id_known: bool,
    /// XOR distance to the target; zero while the ID is unknown, so bootstrap addresses are
    /// queried first.
    dist: (u128, u32),
    pub(crate) addr: SocketAddr,
    pub(crate) state: CandidateState,
    /// Hops from the lookup's starting set (0 = from our table or bootstrap list).
    pub(crate) depth: u8,
    /// May count towards convergence and be announced to: BEP 42-compliant, or enforcement off.
    pub(crate) counts: bool,
    /// The write token it gave us (`get_peers`).
    pub(crate) token: Option<Vec<u8>>,
}

/// One address family's iterative search.
#[derive(Debug, Clone)]
pub(crate) struct Traversal {
    pub(crate) target: NodeId,
    /// Sorted by distance to the target, closest first; at most [`MAX_LOOKUP_CANDIDATES`].
    pub(crate) candidates: Vec<Candidate>,
    /// Queries outstanding and not yet past the short timeout.
    pub(crate) in_flight: u32,
    pub(crate) queried: u32,
    pub(crate) responded: u32,
    /// Deepest hop that answered.
    pub(crate) rounds: u8,
    pub(crate) done: bool,
}

impl Traversal {
    pub(crate) fn new(target: NodeId) -> Self {
        Self {
            target,
            candidates: Vec::new(),
            in_flight: 0,
            queried: 0,
            responded: 0,
            rounds: 0,
            done: false,
        }
    }

    /// Adds a candidate unless its ID or IP is already present (one candidate per IP, like
    /// libtorrent's `dht_restrict_search_ips`); the farthest are forgotten beyond the limit.
    pub(crate) fn add(&mut self, id: Option<NodeId>, addr: SocketAddr, depth: u8, counts: bool) {
        let duplicate = self
            .candidates
            .iter()
            .any(|c| c.addr.ip() == addr.ip() || (c.id_known && id.is_some_and(|id| id == c.id)));
        if duplicate {
            return;
        }
        let dist = id.map_or((0, 0), |id| id.distance_key(&self.target));
        if self.candidates.len() >= MAX_LOOKUP_CANDIDATES
            && self.candidates.last().is_some_and(|c| c.dist <= dist)
        {
            return;
        }
        let pos = self.candidates.partition_point(|c| c.dist <= dist);
        self.candidates.insert(
            pos,
            Candidate {
                id: id.unwrap_or_default(),
                id_known: id.is_some(),
                dist,
                addr,
                state: CandidateState::Fresh,
                depth,
                counts,
                token: None,
            },
        );
        self.candidates.truncate(MAX_LOOKUP_CANDIDATES);
    }

    /// Picks the candidates to query now (at most `capacity`, keeping [`LOOKUP_ALPHA`] in
    /// flight), marks them in flight, and updates `done`.
    pub(crate) fn step(&mut self, capacity: usize, out: &mut Vec<(Option<NodeId>, SocketAddr)>) {
        if self.done {
            return;
        }
        // Walk the candidates closest first until K of them answered; query fresh ones on the
        // way, but never more than could still be among the K closest.
        let mut good = 0;
        let mut in_flight_seen = 0;
        let mut waiting = false;
        let mut sent = 0;
        for c in &mut self.candidates {
            if good >= BUCKET_SIZE {
                break;
            }
            match c.state {
                CandidateState::Failed => {}
                CandidateState::Responded => good += usize::from(c.counts),
                CandidateState::InFlight => {
                    waiting = true;
                    in_flight_seen += 1;
                }
                CandidateState::Slow => waiting = true,
                CandidateState::Fresh => {
                    if self.queried >= MAX_LOOKUP_QUERIES {
                        continue;
                    }
                    waiting = true;
                    let enough = good + in_flight_seen >= BUCKET_SIZE;
                    if enough || self.in_flight as usize >= LOOKUP_ALPHA || sent >= capacity {
                        break;
                    }
                    c.state = CandidateState::InFlight;
                    self.in_flight += 1;
                    self.queried += 1;
                    in_flight_seen += 1;
                    sent += 1;
                    out.push((c.id_known.then_some(c.id), c.addr));
                }
            }
        }
        self.done = !waiting;
    }

    fn position(&self, addr: SocketAddr) -> Option<usize> {
        self.candidates.iter().position(|c| c.addr == addr)
    }

    /// The query to `addr` got a response from `id`. Returns the responder's depth, or `None`
    /// when the candidate is gone (forgotten, or it answered with another ID than expected).
    pub(crate) fn responded(
        &mut self,
        addr: SocketAddr,
        id: NodeId,
        counts: bool,
        token: Option<&[u8]>,
        was_fast: bool,
    ) -> Option<u8> {
        if was_fast {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        let pos = self.position(addr)?;
        let mut c = self.candidates.remove(pos);
        if c.id_known && c.id != id {
            c.state = CandidateState::Failed;
            self.candidates.insert(pos, c);
            return None;
        }
        if !c.id_known && self.candidates.iter().any(|o| o.id_known && o.id == id) {
            // A bootstrap address turned out to be a node we already have.
            return None;
        }
        self.responded += 1;
        self.rounds = self.rounds.max(c.depth.saturating_add(1));
        c.id = id;
        c.id_known = true;
        c.dist = id.distance_key(&self.target);
        c.state = CandidateState::Responded;
        c.counts = counts;
        c.token = token.map(<[u8]>::to_vec);
        let depth = c.depth;
        let at = self.candidates.partition_point(|o| o.dist <= c.dist);
        self.candidates.insert(at, c);
        Some(depth)
    }

    /// The query to `addr` failed (timeout or error reply).
    pub(crate) fn failed(&mut self, addr: SocketAddr, was_fast: bool) {
        if was_fast {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        if let Some(pos) = self.position(addr) {
            self.candidates[pos].state = CandidateState::Failed;
        }
    }

    /// The query to `addr` passed its short timeout: it no longer holds an alpha slot.
    pub(crate) fn slow(&mut self, addr: SocketAddr) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if let Some(pos) = self.position(addr)
            && self.candidates[pos].state == CandidateState::InFlight
        {
            self.candidates[pos].state = CandidateState::Slow;
        }
    }

    /// Candidates with a known ID that were never queried.
    pub(crate) fn never_queried(&self) -> impl Iterator<Item = &Candidate> {
        self.candidates
            .iter()
            .filter(|c| c.state == CandidateState::Fresh && c.id_known)
    }

    /// The closest [`BUCKET_SIZE`] answered candidates that count, with their tokens: where to
    /// announce (BEP 5, BEP 42 §Enforcement).
    pub(crate) fn announce_targets(&self) -> impl Iterator<Item = &Candidate> {
        self.candidates
            .iter()
            .filter(|c| c.state == CandidateState::Responded && c.counts && c.token.is_some())
            .take(BUCKET_SIZE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u32) -> SocketAddr {
        SocketAddr::from((i.to_be_bytes(), 6881))
    }

    #[test]
    fn converges_when_k_closest_answered() {
        let target = NodeId([0; 20]);
        let mut t = Traversal::new(target);
        for i in 1..=20u8 {
            let mut id = [0u8; 20];
            id[0] = i;
            t.add(Some(NodeId(id)), addr(u32::from(i)), 0, true);
        }
        // Duplicates by IP or ID are ignored.
        t.add(Some(NodeId([9; 20])), addr(1), 0, true);
        assert_eq!(t.candidates.len(), 20);
        let mut out = Vec::new();
        let mut rounds = 0;
        while !t.done {
            out.clear();
            t.step(usize::MAX, &mut out);
            assert!(out.len() <= LOOKUP_ALPHA);
            for (id, a) in out.clone() {
                t.responded(a, id.unwrap(), true, Some(b"tok"), true);
            }
            rounds += 1;
            assert!(rounds < 20);
        }
        assert_eq!(t.queried as usize, BUCKET_SIZE);
        assert_eq!(t.announce_targets().count(), BUCKET_SIZE);
        assert!(t.announce_targets().all(|c| c.id.0[0] <= BUCKET_SIZE as u8));
    }

    #[test]
    fn failures_and_query_cap_end_the_lookup() {
        let mut t = Traversal::new(NodeId([0; 20]));
        for i in 0..MAX_LOOKUP_CANDIDATES as u32 * 2 {
            let mut id = [0xffu8; 20];
            id[..4].copy_from_slice(&i.to_be_bytes());
            t.add(Some(NodeId(id)), addr(i + 1), 0, true);
        }
        assert_eq!(t.candidates.len(), MAX_LOOKUP_CANDIDATES);
        let mut out = Vec::new();
        for _ in 0..1000 {
            out.clear();
            t.step(usize::MAX, &mut out);
            if t.done {
                break;
            }
            for (_, a) in out.clone() {
                t.failed(a, true);
            }
        }
        assert!(t.done);
        assert!(t.queried <= MAX_LOOKUP_QUERIES);
    }

    #[test]
    fn unknown_ids_are_queried_first_then_sorted() {
        let mut t = Traversal::new(NodeId([0; 20]));
        t.add(Some(NodeId([1; 20])), addr(1), 0, true);
        t.add(None, addr(2), 0, true);
        assert_eq!(t.candidates[0].addr, addr(2));
        let mut out = Vec::new();
        t.step(1, &mut out);
        assert_eq!(out, vec![(None, addr(2))]);
        t.responded(addr(2), NodeId([2; 20]), true, None, true);
        assert_eq!(t.candidates[1].addr, addr(2));
        assert_eq!(t.rounds, 1);
    }
}
