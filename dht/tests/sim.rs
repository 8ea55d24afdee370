//! Deterministic simulation of a DHT: ≥ 1 000 in-process nodes on a virtual network (a map
//! address → node, a priority queue of datagrams in flight with 10–100 ms latency and 5 % loss,
//! a virtual clock, a seeded PRNG). Every node bootstraps from three of five seed nodes; then
//! 100 nodes announce random info-hashes and other nodes look them up.
//!
//! Checks: at least 99 % of the lookups find the announcer, each within a bounded number of
//! rounds and queries; every node's tables stay within their limits; the whole run is
//! reproducible from its seed.
//!
//! Node count: `SEEDNODE_DHT_SIM_NODES` (default 1 000); seed: `SEEDNODE_DHT_SIM_SEED`;
//! `SIM_DEBUG=1` prints every missed lookup and the query mix. Addresses are 10.x.y.z, which BEP 42
//! exempts as local, so enforcement stays on while IDs are still derived per BEP 42 from them; the
//! nodes run with [`Config::local_scope`] private, as nodes on such a network would.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use seednode_dht::limits::{BUCKET_SIZE, MAX_BUCKETS, MAX_LOOKUP_QUERIES, MAX_ROUTING_NODES};
use seednode_dht::{AddrScope, Config, Dht, Event, IdSource, LookupId, LookupOutcome};
use seednode_wire::InfoHash;
use seednode_wire::rng::splitmix64;

const SEEDS: usize = 5;
const LOSS_PERCENT: u64 = 5;
const JOIN_INTERVAL: Duration = Duration::from_millis(20);
const ANNOUNCES: usize = 100;
const PEER_PORT: u16 = 7000;

/// splitmix64: the simulation's own PRNG (the nodes have theirs).
struct SimRng(u64);

impl SimRng {
    fn next(&mut self) -> u64 {
        splitmix64(&mut self.0)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn addr_of(i: usize) -> SocketAddr {
    let n = i as u32 + 1;
    SocketAddr::from((
        Ipv4Addr::new(10, (n >> 16) as u8, (n >> 8) as u8, n as u8),
        6881,
    ))
}

fn index_of(addr: &SocketAddr) -> Option<usize> {
    match addr {
        SocketAddr::V4(v4) => {
            let [a, b, c, d] = v4.ip().octets();
            (a == 10 && v4.port() == 6881)
                .then(|| {
                    ((u32::from(b) << 16 | u32::from(c) << 8 | u32::from(d)) as usize)
                        .checked_sub(1)
                })
                .flatten()
        }
        SocketAddr::V6(_) => None,
    }
}

/// A datagram in flight: (deliver at µs, sequence, from, to, payload).
type InFlight = (u64, u64, SocketAddr, SocketAddr, Vec<u8>);

struct Sim {
    t0: Instant,
    now_us: u64,
    rng: SimRng,
    nodes: Vec<Dht>,
    in_flight: BinaryHeap<Reverse<InFlight>>,
    timers: BinaryHeap<Reverse<(u64, usize)>>,
    seq: u64,
    events: BTreeMap<LookupId, Vec<Event>>,
    sent: u64,
    lost: u64,
    delivered: u64,
}

impl Sim {
    fn new(n: usize, seed: u64) -> Self {
        #[allow(clippy::disallowed_methods)] // the simulation's epoch: its only clock read
        let t0 = Instant::now();
        let mut rng = SimRng(seed);
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let bootstrap_nodes = (0..3)
                .map(|_| addr_of(rng.below(SEEDS)))
                .filter(|a| *a != addr_of(i))
                .collect();
            let config = Config {
                bootstrap_nodes,
                local_scope: AddrScope::Private,
                ..Config::default()
            };
            let ip = addr_of(i).ip();
            let mut secret = [0u8; 32];
            secret[..8].copy_from_slice(&rng.next().to_le_bytes());
            nodes.push(Dht::new(
                config,
                IdSource::ExternalIp(ip),
                secret,
                rng.next(),
                t0,
            ));
        }
        Self {
            t0,
            now_us: 0,
            rng,
            nodes,
            in_flight: BinaryHeap::new(),
            timers: BinaryHeap::new(),
            seq: 0,
            events: BTreeMap::new(),
            sent: 0,
            lost: 0,
            delivered: 0,
        }
    }

    fn now(&self) -> Instant {
        self.t0 + Duration::from_micros(self.now_us)
    }

    /// Drains node `i`'s outputs into the network and re-arms its timer.
    fn flush(&mut self, i: usize) {
        let from = addr_of(i);
        while let Some(t) = self.nodes[i].poll_transmit() {
            self.sent += 1;
            if self.rng.below(100) < LOSS_PERCENT as usize {
                self.lost += 1;
                continue;
            }
            let latency = 10_000 + self.rng.below(90_000) as u64;
            self.seq += 1;
            self.in_flight.push(Reverse((
                self.now_us + latency,
                self.seq,
                from,
                t.dst,
                t.payload,
            )));
        }
        while let Some(e) = self.nodes[i].poll_event() {
            let id = match &e {
                Event::Peers { lookup, .. }
                | Event::Announced { lookup, .. }
                | Event::LookupDone { lookup, .. } => *lookup,
                Event::ExternalAddress { ip, .. } => {
                    assert_eq!(*ip, from.ip(), "nodes agree on each other's address");
                    continue;
                }
                Event::PeerAnnounced { .. } => continue,
            };
            // Lookup ids are per node; key them by node too.
            self.events
                .entry(LookupId((i as u64) << 32 | id.0))
                .or_default()
                .push(e);
        }
        if let Some(t) = self.nodes[i].poll_timeout() {
            let at = t.saturating_duration_since(self.t0).as_micros() as u64;
            self.timers.push(Reverse((at.max(self.now_us), i)));
        }
    }

    /// Runs the network until virtual time `until_us`.
    fn run_until(&mut self, until_us: u64) {
        loop {
            let next_packet = self.in_flight.peek().map(|Reverse(p)| p.0);
            let next_timer = self.timers.peek().map(|Reverse(t)| t.0);
            let next = match (next_packet, next_timer) {
                (None, None) => break,
                (Some(p), None) => p,
                (None, Some(t)) => t,
                (Some(p), Some(t)) => p.min(t),
            };
            if next > until_us {
                break;
            }
            self.now_us = next;
            let now = self.now();
            if next_packet == Some(next) {
                let Some(Reverse((_, _, from, to, payload))) = self.in_flight.pop() else {
                    unreachable!()
                };
                if let Some(i) = index_of(&to).filter(|&i| i < self.nodes.len()) {
                    self.delivered += 1;
                    self.nodes[i].handle_datagram(now, from, &payload);
                    self.flush(i);
                }
            } else {
                let Some(Reverse((_, i))) = self.timers.pop() else {
                    unreachable!()
                };
                // Stale timer entries (the node re-armed since) are skipped.
                if self.nodes[i].poll_timeout().is_some_and(|t| t <= now) {
                    self.nodes[i].handle_timeout(now);
                    self.flush(i);
                }
            }
        }
        self.now_us = self.now_us.max(until_us);
    }

    fn key(node: usize, lookup: LookupId) -> LookupId {
        LookupId((node as u64) << 32 | lookup.0)
    }

    fn done(&self, node: usize, lookup: LookupId) -> Option<&Event> {
        self.events
            .get(&Self::key(node, lookup))?
            .iter()
            .find(|e| matches!(e, Event::LookupDone { .. }))
    }

    /// Runs until every listed lookup is done (or a generous virtual deadline).
    fn run_until_done(&mut self, lookups: &[(usize, LookupId)]) {
        let deadline = self.now_us + 120_000_000;
        while self.now_us < deadline {
            let step = self.now_us + 1_000_000;
            self.run_until(step);
            if lookups.iter().all(|&(n, l)| self.done(n, l).is_some()) {
                return;
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    found: usize,
    lookups: usize,
    max_rounds: u32,
    max_queried: u32,
    total_queried: u64,
    announce_acks: u64,
    sent: u64,
    lost: u64,
    table_sizes: Vec<usize>,
}

fn simulate(n: usize, seed: u64) -> Outcome {
    assert!(n > SEEDS * 2);
    let mut sim = Sim::new(n, seed);
    // Join: one node every 20 ms, seeds first.
    for i in 0..n {
        sim.run_until(i as u64 * JOIN_INTERVAL.as_micros() as u64);
        let now = sim.now();
        let _ = sim.nodes[i].bootstrap(now);
        sim.flush(i);
    }
    // Let the network settle for a minute of virtual time.
    let settle = sim.now_us + 60_000_000;
    sim.run_until(settle);
    for node in &sim.nodes {
        node.check_invariants();
    }

    // 100 announces, in batches of 10 running concurrently.
    let mut announced = Vec::new();
    let mut announce_acks = 0u64;
    for batch in 0..ANNOUNCES / 10 {
        let mut lookups = Vec::new();
        for k in 0..10 {
            let a = sim.rng.below(n);
            let mut ih = [0u8; 20];
            for chunk in ih.chunks_mut(8) {
                let v = sim.rng.next().to_le_bytes();
                chunk.copy_from_slice(&v[..chunk.len()]);
            }
            ih[0] = (batch * 10 + k) as u8; // distinct info-hashes
            let now = sim.now();
            let l = sim.nodes[a].announce(now, InfoHash(ih), Some(PEER_PORT));
            sim.flush(a);
            lookups.push((a, l));
            announced.push((a, InfoHash(ih), l));
        }
        sim.run_until_done(&lookups);
        for (a, l) in lookups {
            let events = &sim.events[&Sim::key(a, l)];
            let acked = events.iter().find_map(|e| match e {
                Event::Announced { acked, .. } => Some(*acked),
                _ => None,
            });
            announce_acks += u64::from(acked.expect("announce finished"));
        }
    }

    // One lookup per announce, from another random node.
    let mut found = 0;
    let mut max_rounds = 0;
    let mut max_queried = 0;
    let mut total_queried = 0u64;
    for batch in announced.chunks(10) {
        let mut lookups = Vec::new();
        for &(a, ih, al) in batch {
            let mut b = sim.rng.below(n);
            while b == a {
                b = sim.rng.below(n);
            }
            let now = sim.now();
            let l = sim.nodes[b].get_peers(now, ih);
            sim.flush(b);
            lookups.push((a, b, l, ih, al));
        }
        let ids: Vec<_> = lookups.iter().map(|&(_, b, l, _, _)| (b, l)).collect();
        sim.run_until_done(&ids);
        for (a, b, l, ih, al) in lookups {
            let want = SocketAddr::new(addr_of(a).ip(), PEER_PORT);
            let events = &sim.events[&Sim::key(b, l)];
            let hit = events
                .iter()
                .any(|e| matches!(e, Event::Peers { peers, .. } if peers.contains(&want)));
            found += usize::from(hit);
            if !hit && std::env::var("SIM_DEBUG").is_ok() {
                let ih_id = seednode_dht::NodeId::from(ih);
                let mut order: Vec<usize> = (0..n).collect();
                order.sort_by_key(|&i| sim.nodes[i].node_id().distance(&ih_id));
                let storing: Vec<usize> = order
                    .iter()
                    .enumerate()
                    .filter(|(_, i)| sim.nodes[**i].stores(&ih))
                    .map(|(r, _)| r)
                    .collect();
                eprintln!(
                    "MISS a={a} b={b} storing ranks {storing:?} done {:?} events {}",
                    sim.done(b, l),
                    events.len()
                );
                eprintln!("   announce events {:?}", sim.events.get(&Sim::key(a, al)));
                for &i in order.iter().take(10) {
                    eprintln!(
                        "   node {i} id {} dist {}",
                        sim.nodes[i].node_id(),
                        sim.nodes[i].node_id().distance(&ih_id)
                    );
                }
                let mut firsts = [0usize; 16];
                for node in &sim.nodes {
                    firsts[usize::from(node.node_id().0[0] >> 4)] += 1;
                }
                eprintln!("   first nibble histogram {firsts:?}");
            }
            match sim.done(b, l) {
                Some(Event::LookupDone {
                    outcome,
                    queried,
                    rounds,
                    ..
                }) => {
                    assert_eq!(*outcome, LookupOutcome::Converged);
                    max_rounds = max_rounds.max(*rounds);
                    max_queried = max_queried.max(*queried);
                    total_queried += u64::from(*queried);
                }
                other => panic!("lookup not done: {other:?}"),
            }
        }
    }

    if std::env::var("SIM_DEBUG").is_ok() {
        let mut out = seednode_dht::QueryCounts::default();
        for node in &sim.nodes {
            let q = node.stats().queries_out;
            out.ping += q.ping;
            out.find_node += q.find_node;
            out.get_peers += q.get_peers;
            out.announce_peer += q.announce_peer;
        }
        eprintln!("queries sent: {out:?}");
    }
    let mut table_sizes = Vec::with_capacity(n);
    for node in &sim.nodes {
        node.check_invariants();
        let s = node.stats();
        assert!(s.routing_nodes_v4 <= MAX_BUCKETS * BUCKET_SIZE);
        assert!(s.routing_nodes_v4 + s.replacement_nodes <= MAX_ROUTING_NODES);
        assert!(node.bucket_counts()[0] <= MAX_BUCKETS);
        table_sizes.push(s.routing_nodes_v4);
    }
    Outcome {
        found,
        lookups: announced.len(),
        max_rounds,
        max_queried,
        total_queried,
        announce_acks,
        sent: sim.sent,
        lost: sim.lost,
        table_sizes,
    }
}

fn node_count() -> usize {
    std::env::var("SEEDNODE_DHT_SIM_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

#[test]
fn thousand_nodes_find_announcers() {
    let n = node_count();
    #[allow(clippy::disallowed_methods)] // wall time of the test, for the report only
    let wall = Instant::now();
    let seed = std::env::var("SEEDNODE_DHT_SIM_SEED")
        .ok()
        .and_then(|v| v.parse().ok());
    let o = simulate(n, seed.unwrap_or(0x5eed));
    let tables = &o.table_sizes;
    let mean_table = tables.iter().sum::<usize>() as f64 / tables.len() as f64;
    eprintln!(
        "sim: {n} nodes, {}/{} lookups found the announcer, max rounds {}, max queries {}, \
         mean queries {:.1}, announce acks {} ({:.1}/announce), {} datagrams ({} lost), \
         routing table mean {mean_table:.1} min {} max {}, wall {:?}",
        o.found,
        o.lookups,
        o.max_rounds,
        o.max_queried,
        o.total_queried as f64 / o.lookups as f64,
        o.announce_acks,
        o.announce_acks as f64 / o.lookups as f64,
        o.sent,
        o.lost,
        tables.iter().min().unwrap_or(&0),
        tables.iter().max().unwrap_or(&0),
        wall.elapsed(),
    );
    assert!(
        o.found * 100 >= o.lookups * 99,
        "only {}/{} found",
        o.found,
        o.lookups
    );
    assert!(o.max_rounds <= 12, "a lookup took {} rounds", o.max_rounds);
    assert!(o.max_queried <= MAX_LOOKUP_QUERIES);
    assert!(
        *tables.iter().min().unwrap_or(&0) >= BUCKET_SIZE,
        "a node has a tiny table"
    );
}

#[test]
fn simulation_is_reproducible_from_its_seed() {
    let n = 200;
    let a = simulate(n, 42);
    let b = simulate(n, 42);
    assert_eq!(a, b);
    assert!(
        a.found * 100 >= a.lookups * 99,
        "only {}/{} found",
        a.found,
        a.lookups
    );
    let c = simulate(n, 43);
    assert_ne!(a, c, "a different seed should give a different run");
}
