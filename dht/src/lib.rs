//! Sans-IO Mainline DHT node: KRPC (BEP 5), IPv6 (BEP 32), node-ID security (BEP 42),
//! read-only nodes (BEP 43) and info-hash sampling (BEP 51).
//!
//! # Contract
//!
//! This crate opens no socket, reads no clock, spawns no thread and draws no randomness of its
//! own (`clippy.toml` bans `Instant::now`, `SystemTime::now`, `thread::spawn` and std sockets).
//! The engine owns the UDP socket(s) and the clock; it passes `now` (monotonic, never going
//! backwards) and received datagrams in, and takes datagrams to send and events out. The token
//! secret and the PRNG seed are given at construction, so a simulation with fixed seeds is
//! reproducible bit for bit. Host names are never resolved here: [`DEFAULT_BOOTSTRAP_NODES`]
//! lists the usual ones for the engine to resolve into [`Config::bootstrap_nodes`].
//!
//! # Call order
//!
//! 1. [`Dht::new`]; optionally [`Dht::import_nodes`] with the nodes saved by
//!    [`Dht::export_nodes`] at the last shutdown (save [`Dht::node_id`] too); then
//!    [`Dht::bootstrap`].
//! 2. Inputs: [`Dht::handle_datagram`] for every datagram received on the DHT socket(s) (one
//!    node serves both address families: IPv4 and IPv6 sources use separate routing tables,
//!    BEP 32), and [`Dht::handle_timeout`] when [`Dht::poll_timeout`] is reached.
//! 3. Commands: [`Dht::get_peers`], [`Dht::announce`], [`Dht::find_node`], [`Dht::ping`] (for a
//!    BEP 5 `PORT` message).
//! 4. After **every** input or command: drain [`Dht::poll_transmit`] to `None` (send each
//!    datagram to its `dst`), drain [`Dht::poll_event`] to `None`, then read
//!    [`Dht::poll_timeout`] and wake up no later than it.
//!
//! A lookup reports [`Event::Peers`] as they arrive, [`Event::Announced`] for announces, and
//! always ends with exactly one [`Event::LookupDone`]. [`Event::ExternalAddress`] reports our
//! address as a majority of answering nodes see it (BEP 42 `ip`); restarting with
//! [`IdSource::ExternalIp`] and the exported nodes is the engine's decision.
//!
//! # Routing table hygiene
//!
//! Only nodes that answered one of our queries enter a bucket, at most one per IP, and with
//! [`Config::enforce_node_id`] only BEP 42-valid IDs. Nodes that query us, and nodes named in
//! responses while their bucket has room, are pinged first. Each maintenance tick explores one
//! bucket with free slots (a `find_node` for a random ID in it), pings one questionable node,
//! and refreshes a bucket idle for 15 minutes (BEP 5).
//!
//! # Address rules
//!
//! A stranger cannot make the node query, store or hand out internal addresses (the rules of
//! [`seednode_wire::addr`], relative to [`Config::local_scope`], the scope of the node's own
//! socket): nodes in `nodes`/`nodes6` and peers in `values` are dropped when their address is
//! never a peer's (port 0, multicast, reserved, ...) or is a local-network one (loopback,
//! private, link-local, CGNAT) while the node is not on that kind of network or the responder
//! is not inside it; queriers at such addresses are answered but never enter the routing table
//! and their announces are not stored; a reply hands out local-network nodes and peers only to
//! a querier of the same scope; and no query leaves for a refused address, whatever path it
//! took, except to a configured bootstrap node. Each refusal counts in
//! [`Stats::refused_addresses`].
//!
//! # Bounds
//!
//! Every table has a limit in [`limits`]: routing tables, transaction table, lookups, peer store,
//! rate limiter, queues. Every datagram goes through a per-IP rate limiter before it is decoded
//! (5 datagrams/s averaged over 10 s, then a 300 s ban, in a fixed 64-entry table, like
//! libtorrent's `dos_blocker`), and replies through a global byte budget. Replies are at most
//! [`limits::MAX_REPLY_LEN`] (1 024) bytes. Relative to its query, measured in
//! `tests/hostile.rs`: a `ping` reply is 1.2×, `find_node` 3×, `get_peers` without peers 3–6×,
//! and the worst case, `get_peers` with 50 peers and both `nodes` and `nodes6` (or
//! `sample_infohashes` with 20 samples), 9.3× — below `MAX_REPLY_LEN` / 91 bytes (the smallest
//! such query) ≈ 11×. A malformed query gets at most a ~60-byte error; a long or missing `t`,
//! and anything that is not a query, gets nothing (see [`krpc`]).
//!
//! # Benchmark hook
//!
//! [`fuzzing::queries_per_second_workload`] builds a node and a batch of queries for the
//! "queries handled per second" benchmark (`benches/benches/dht.rs`).

pub mod id;
pub mod krpc;
pub mod limits;
mod lookup;
mod node;
mod ratelimit;
mod routing;
mod store;
mod tokens;

#[doc(hidden)]
pub mod fuzzing;

pub use id::NodeId;
pub use node::{
    Config, DEFAULT_BOOTSTRAP_NODES, Dht, Event, IdSource, LookupId, LookupKind, LookupOutcome,
    QueryCounts, Stats, Transmit,
};
pub use seednode_wire::addr::AddrScope;
