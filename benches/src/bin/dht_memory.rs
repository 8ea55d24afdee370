//! Memory of the DHT node's tables, measured as process RSS: bytes per routing-table entry and
//! per stored peer, filled through the protocol itself (KRPC in, KRPC out), and printed as a
//! Markdown table.
//!
//! Usage: `dht_memory [NODES_ROUTING] [NODES_PEERS]` (defaults 128 and 16). Each experiment runs
//! in a fresh child process of this binary (`dht_memory --child EXPERIMENT NODES`), so memory
//! freed by one experiment is never reused by the next:
//!
//! - `routing`: `NODES` nodes with random IDs. Each pings 1 024 simulated nodes (8 per
//!   common-prefix length 0..128 with its own ID, each on its own 10.x.y.z address) and every
//!   query it sends to one of them is answered with that node's ID, so each entry enters its
//!   bucket the way a real one does (SECURITY D8: only nodes that answered). Then 8 more per
//!   prefix length, which land in the full buckets' replacement caches. RSS is read with all
//!   nodes empty, at 512 entries each, at 1 024, and after the replacements: "from empty" counts
//!   everything the entries brought (bucket vectors, the per-IP index), "marginal" only the
//!   second 512 (no per-node set-up cost in it).
//! - `peers-N`: `NODES` nodes, each sent `get_peers` (for a token) then 20 `announce_peer`s
//!   from each of many source IPs (one token per IP, 21 datagrams per IP: under the 50 per 10 s
//!   the rate limiter allows), `ro` = 1 so the queriers stay out of the routing table; the
//!   info-hashes get N peers each (N = 10: 2 000 info-hashes per node, the store's limit;
//!   N = 500: 20 info-hashes, full swarms). RSS is read with the nodes empty and at the end.
//!
//! The virtual clock advances between datagrams (100 ms per routing entry, so at most ~100
//! pings are ever in flight and the timeout queue stays small; 200 µs per peer datagram, so the
//! reply budget never runs dry), and every counter that would show a refused or dropped
//! datagram is checked to be zero. RSS is `VmRSS` from `/proc/self/status`; nothing is freed
//! between the readings that matter, so the growth is what the tables hold (plus glibc malloc's
//! 16-byte chunk headers and rounding, which the real process pays too).

#![forbid(unsafe_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use seednode_benches::{memory_bytes, splitmix64};
use seednode_dht::krpc::{self, Body, Message, Method, Query, Response};
use seednode_dht::limits::BUCKET_SIZE;
use seednode_dht::{AddrScope, Config, Dht, IdSource, NodeId};
use seednode_wire::InfoHash;

/// Nodes in the routing experiment by default.
const DEFAULT_ROUTING_NODES: usize = 128;
/// Nodes in each peer-store experiment by default.
const DEFAULT_PEER_NODES: usize = 16;
/// Common-prefix lengths filled in each node's IPv4 table: 128 buckets of [`BUCKET_SIZE`], so
/// 1 024 entries per node (a full table holds at most ~1 260; deeper buckets can hold only a
/// few distinct IDs).
const DEPTHS: usize = 128;
/// Announces sent with one token: one `get_peers` plus these stay under the rate limiter's
/// 50 datagrams per IP per 10 s.
const ANNOUNCES_PER_IP: usize = 20;
/// Virtual time between two routing entries.
const ENTRY_STEP: Duration = Duration::from_millis(100);
/// Virtual time between two peer-store datagrams.
const PEER_STEP: Duration = Duration::from_micros(200);
/// The experiments, in order: (name, peers per info-hash or 0 for the routing table).
const EXPERIMENTS: [(&str, usize); 3] = [("routing", 0), ("peers-10", 10), ("peers-500", 500)];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = if args.first().map(String::as_str) == Some("--child") {
        child(&args[1..])
    } else {
        parent(&args)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Runs every experiment in its own process and prints the table.
fn parent(args: &[String]) -> Res<()> {
    let parse = |i: usize, default: usize| -> Res<usize> {
        match args.get(i) {
            None => Ok(default),
            Some(s) => match s.parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err("usage: dht_memory [NODES_ROUTING > 0] [NODES_PEERS > 0]".into()),
            },
        }
    };
    let routing_nodes = parse(0, DEFAULT_ROUTING_NODES)?;
    let peer_nodes = parse(1, DEFAULT_PEER_NODES)?;
    let exe = std::env::current_exe()?;
    let mut rows = Vec::new();
    for (name, _) in EXPERIMENTS {
        let nodes = if name == "routing" {
            routing_nodes
        } else {
            peer_nodes
        };
        let out = Command::new(&exe)
            .args(["--child", name, &nodes.to_string()])
            .output()?;
        if !out.status.success() {
            return Err(format!(
                "child {name} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        rows.extend(
            String::from_utf8(out.stdout)?
                .lines()
                .filter(|l| l.starts_with('|'))
                .map(str::to_owned),
        );
    }
    println!(
        "| what | nodes | items | RSS before KiB | RSS after KiB | bytes per item | per 1,000 \
         KiB | per 10,000 KiB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!("{r}");
    }
    Ok(())
}

fn child(args: &[String]) -> Res<()> {
    let (Some(name), Some(nodes)) = (args.first(), args.get(1)) else {
        return Err("usage: dht_memory --child EXPERIMENT NODES".into());
    };
    let nodes: usize = nodes.parse()?;
    match EXPERIMENTS.iter().find(|(n, _)| n == name) {
        Some(("routing", _)) => routing(nodes),
        Some((_, per_info_hash)) => peers(nodes, *per_info_hash),
        None => Err(format!("unknown experiment {name}").into()),
    }
}

/// One table row: `items` added between RSS readings `before` and `after` (KiB).
fn row(what: &str, nodes: usize, items: usize, before: u64, after: u64) -> String {
    let per = after.saturating_sub(before) as f64 * 1024.0 / items as f64;
    format!(
        "| {what} | {nodes} | {items} | {before} | {after} | {per:.0} | {:.1} | {:.0} |",
        per * 1000.0 / 1024.0,
        per * 10_000.0 / 1024.0
    )
}

/// Resident set size of this process, in KiB (`VmRSS` in `/proc/self/status`).
fn rss_kib() -> Res<u64> {
    Ok(memory_bytes("self", "VmRSS")? / 1024)
}

/// 20 pseudo-random bytes from `seed`.
fn random_20(seed: u64) -> [u8; 20] {
    let mut out = [0u8; 20];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        // splitmix64: the harness's own PRNG (the nodes have theirs).
        let v = splitmix64(seed.wrapping_mul(31).wrapping_add(i as u64)).to_be_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    out
}

/// The `k`-th IPv4 address of the simulated network, 10.0.0.1 upwards.
fn addr(k: usize) -> SocketAddr {
    let n = u32::try_from(k + 1).expect("fewer than 2^24 addresses");
    SocketAddr::from((Ipv4Addr::from(0x0a00_0000 | n), 6881))
}

fn index_of(a: &SocketAddr) -> Option<usize> {
    match a {
        SocketAddr::V4(v4) if v4.port() == 6881 => {
            let n = u32::from(*v4.ip());
            (n >> 24 == 10).then(|| (n & 0x00ff_ffff) as usize - 1)
        }
        _ => None,
    }
}

/// The ID of simulated node `k` for a node whose own ID is `own`: it shares exactly
/// `(k / BUCKET_SIZE) mod DEPTHS` leading bits with `own` (so it belongs to that bucket; `k` of
/// 1 024 and up land on the same prefix lengths again, for the replacement caches).
fn sim_id(own: &NodeId, node_seed: u64, k: usize) -> NodeId {
    let depth = (k / BUCKET_SIZE) % DEPTHS;
    let mut id = random_20(node_seed ^ (k as u64 + 1).wrapping_mul(0x1_0000_0001));
    for bit in 0..=depth {
        let (byte, mask) = (bit / 8, 0x80u8 >> (bit % 8));
        let own_bit = own.0[byte] & mask;
        let want = if bit == depth {
            own_bit ^ mask
        } else {
            own_bit
        };
        id[byte] = (id[byte] & !mask) | want;
    }
    NodeId(id)
}

fn new_node(i: usize, reply_bytes_per_sec: u32, t0: Instant) -> Dht {
    let config = Config {
        bootstrap_nodes: Vec::new(),
        enforce_node_id: false,
        reply_bytes_per_sec,
        // The simulated network is 10.x: the node runs on a private network.
        local_scope: AddrScope::Private,
        ..Config::default()
    };
    let seed = 1000 + i as u64;
    let id = NodeId(random_20(seed));
    let mut secret = [0u8; 32];
    secret[..20].copy_from_slice(&random_20(seed ^ 0x5555));
    Dht::new(config, IdSource::Fixed(id), secret, seed, t0)
}

/// Drains `dht`'s datagrams and events; every query to a simulated node is answered with that
/// node's ID (an `id`-only response, valid for every method), until nothing more is sent.
fn answer_all(dht: &mut Dht, now: Instant, node_seed: u64) -> Res<()> {
    let own = dht.node_id();
    let mut replies = Vec::new();
    for _round in 0..16 {
        while let Some(t) = dht.poll_transmit() {
            let msg = krpc::decode(&t.payload).map_err(|_| "node sent undecodable KRPC")?;
            if let (Body::Query(_), Some(k)) = (&msg.body, index_of(&t.dst)) {
                let reply = Message {
                    transaction_id: msg.transaction_id,
                    version: None,
                    read_only: false,
                    ip: None,
                    body: Body::Response(Response::id_only(sim_id(&own, node_seed, k))),
                };
                replies.push((t.dst, reply.to_bytes()));
            }
        }
        while dht.poll_event().is_some() {}
        if replies.is_empty() {
            return Ok(());
        }
        for (from, bytes) in replies.drain(..) {
            dht.handle_datagram(now, from, &bytes);
        }
    }
    Err("the node kept sending queries".into())
}

/// Adds simulated nodes `range` to `dht`, one ping and answer each.
fn fill_routing(
    dht: &mut Dht,
    node_seed: u64,
    now: &mut Instant,
    range: std::ops::Range<usize>,
) -> Res<()> {
    for k in range {
        *now += ENTRY_STEP;
        dht.handle_timeout(*now);
        answer_all(dht, *now, node_seed)?;
        dht.ping(*now, addr(k));
        answer_all(dht, *now, node_seed)?;
    }
    // Let the last pings' timeout records expire, so the queue holds nothing stale.
    *now += Duration::from_secs(11);
    dht.handle_timeout(*now);
    answer_all(dht, *now, node_seed)
}

fn routing(nodes: usize) -> Res<()> {
    #[allow(clippy::disallowed_methods)] // the harness's epoch, its only clock read
    let t0 = Instant::now();
    let per_depth = BUCKET_SIZE;
    let half = DEPTHS * per_depth / 2;
    // Simulated node k: depth (k / 8) % 128; k < 1 024 fills buckets, 1 024.. the replacements.
    let base = rss_kib()?;
    let mut dhts: Vec<(Dht, Instant)> = (0..nodes)
        .map(|i| (new_node(i, 64 * 1024, t0), t0))
        .collect();
    let empty = rss_kib()?;
    let mut checkpoints = Vec::new();
    for range in [0..half, half..2 * half, 2 * half..4 * half] {
        for (i, (dht, now)) in dhts.iter_mut().enumerate() {
            fill_routing(dht, 1000 + i as u64, now, range.clone())?;
        }
        let s = dhts[0].0.stats();
        let entries: usize = dhts.iter().map(|(d, _)| d.stats().routing_nodes_v4).sum();
        let replacements: usize = dhts.iter().map(|(d, _)| d.stats().replacement_nodes).sum();
        eprintln!(
            "routing: after {range:?}: {entries} entries, {replacements} replacements \
             (node 0: {} in buckets, {} waiting, {} timeouts)",
            s.routing_nodes_v4, s.replacement_nodes, s.query_timeouts
        );
        checkpoints.push((rss_kib()?, entries, replacements));
    }
    let [(r1, e1, _), (r2, e2, x2), (r3, e3, x3)] = checkpoints[..] else {
        unreachable!("three ranges")
    };
    let timeouts: u64 = dhts.iter().map(|(d, _)| d.stats().query_timeouts).sum();
    if timeouts != 0 || e3 != e2 {
        return Err(format!("{timeouts} query timeouts, entries {e2} -> {e3}").into());
    }
    let per_node = (empty.saturating_sub(base) * 1024) as f64 / nodes as f64;
    println!(
        "| empty node (`Dht::new`) | {nodes} | {nodes} | {base} | {empty} | {per_node:.0} | - | - |"
    );
    println!(
        "{}",
        row("routing entries, from empty", nodes, e2, empty, r2)
    );
    println!(
        "{}",
        row(
            "routing entries, marginal (2nd half)",
            nodes,
            e2 - e1,
            r1,
            r2
        )
    );
    println!(
        "{}",
        row("replacement-cache entries", nodes, x3 - x2, r2, r3)
    );
    drop(dhts);
    Ok(())
}

fn query(t: &[u8], method: Method<'_>) -> Vec<u8> {
    Message {
        transaction_id: t,
        version: None,
        // BEP 43: the queriers stay out of the routing table, so only the store grows.
        read_only: true,
        ip: None,
        body: Body::Query(Query {
            id: NodeId([0x11; 20]),
            method,
        }),
    }
    .to_bytes()
}

/// Stores `nodes × 2 000 × 10` or `nodes × 20 × 500` peers through `get_peers` and
/// `announce_peer`.
fn peers(nodes: usize, per_info_hash: usize) -> Res<()> {
    #[allow(clippy::disallowed_methods)] // the harness's epoch, its only clock read
    let t0 = Instant::now();
    let info_hashes = if per_info_hash >= 500 { 20 } else { 2000 };
    let per_node = info_hashes * per_info_hash;
    let ips = per_node / ANNOUNCES_PER_IP;
    let mut dhts: Vec<Dht> = (0..nodes).map(|i| new_node(i, u32::MAX, t0)).collect();
    let before = rss_kib()?;
    for (n, dht) in dhts.iter_mut().enumerate() {
        let ih = |j: usize| InfoHash(random_20(((n as u64) << 32) | j as u64));
        let mut now = t0;
        for ip in 0..ips {
            let src = addr(ip);
            now += PEER_STEP;
            let gp = query(
                b"gp",
                Method::GetPeers {
                    info_hash: ih(ip % info_hashes),
                    want: None,
                },
            );
            dht.handle_datagram(now, src, &gp);
            let reply = dht.poll_transmit().ok_or("get_peers not answered")?;
            let token = match krpc::decode(&reply.payload) {
                Ok(Message {
                    body: Body::Response(Response { token: Some(t), .. }),
                    ..
                }) => t.to_vec(),
                _ => return Err("get_peers reply without token".into()),
            };
            while dht.poll_transmit().is_some() {}
            for k in 0..ANNOUNCES_PER_IP {
                now += PEER_STEP;
                let slot = ip * ANNOUNCES_PER_IP + k;
                let an = query(
                    b"an",
                    Method::AnnouncePeer {
                        info_hash: ih(slot % info_hashes),
                        port: 6881,
                        implied_port: false,
                        token: &token,
                    },
                );
                dht.handle_datagram(now, src, &an);
                while dht.poll_transmit().is_some() {}
                while dht.poll_event().is_some() {}
            }
        }
        let s = dht.stats();
        let refused = s.bad_tokens
            + s.dropped_rate_limited
            + s.dropped_reply_budget
            + s.dropped_malformed
            + s.dropped_events
            + s.dropped_transmits;
        if s.stored_peers != per_node || s.stored_info_hashes != info_hashes || refused != 0 {
            return Err(format!(
                "node {n}: {} peers in {} info-hashes, {refused} refused or dropped",
                s.stored_peers, s.stored_info_hashes
            )
            .into());
        }
    }
    let after = rss_kib()?;
    let total: usize = dhts.iter().map(|d| d.stats().stored_peers).sum();
    eprintln!(
        "peers: {nodes} nodes × {info_hashes} info-hashes × {per_info_hash} peers = {total}, \
         routing entries {}",
        dhts.iter()
            .map(|d| d.stats().routing_nodes_v4)
            .sum::<usize>()
    );
    println!(
        "{}",
        row(
            &format!("stored peers, {per_info_hash} per info-hash"),
            nodes,
            total,
            before,
            after
        )
    );
    drop(dhts);
    Ok(())
}
