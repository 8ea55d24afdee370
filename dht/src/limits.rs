//! Every bound the DHT enforces, with its unit, its reason and what happens at the limit.
//!
//! Composite limits are derived from their parts. Tunables are a `DEFAULT_*` clamped to a hard
//! `MAX_*` by [`crate::Config`]. SECURITY.md §2.7 (DHT row) and §3.6 (D1–D12) are the source of
//! most numbers; the rest match libtorrent's `src/kademlia/`.

use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// Datagrams (BEP 5 §KRPC Protocol, BEP 32 §Maximum packet size)
// ---------------------------------------------------------------------------------------------

/// Largest datagram read, in bytes: 1 500, libtorrent's UDP receive buffer (an Ethernet MTU).
/// Over it: dropped silently before any decoding (SECURITY D2, "64 KiB message"). It also bounds
/// the bencode work per datagram: at most 750 tokens, nesting at most 100 levels (the wire
/// decoder's cap), no allocation larger than the datagram.
pub const MAX_DATAGRAM_LEN: usize = 1500;

/// Smallest datagram decoded, in bytes: 21. libtorrent drops anything of 20 bytes or less (the
/// smallest real KRPC message, a ping reply with a 1-byte `t`, is 43 bytes). Under it, or when
/// the first byte is not `d` or the last not `e`: dropped silently before decoding (SECURITY D1).
pub const MIN_DATAGRAM_LEN: usize = 21;

/// Largest datagram this node sends, in bytes: 1 024, the BEP 32 ceiling ("must not send UDP
/// datagrams with a payload larger than 1024 octets"). Replies are built to fit: `values` are
/// trimmed to the space left after `id`, `token`, `nodes` and `nodes6` (SECURITY D5).
pub const MAX_REPLY_LEN: usize = 1024;

/// Longest transaction id (`t`) of a query this node answers, in bytes: 16. Real clients use 2
/// (libtorrent) to 8 bytes. A query with a longer, empty or missing `t` gets no reply at all,
/// not even an error, so `t` can never be used to reflect data (SECURITY D3): an echoed `t` adds
/// at most 16 bytes to a reply.
pub const MAX_TRANSACTION_ID_LEN: usize = 16;

/// Length of the transaction ids this node puts in its own queries, in bytes: 4 (a random
/// `u32`; libtorrent uses 2). A response whose `t` has another length cannot be ours and is
/// ignored; 32 bits make blind spoofing of responses impractical.
pub const TRANSACTION_ID_LEN: usize = 4;

/// Longest token accepted in a foreign `get_peers` reply and kept for `announce_peer`, in bytes:
/// 64 (libtorrent sends 4, mainline 20, this node [`TOKEN_LEN`]). A longer token is treated as
/// absent, so that node is not announced to.
pub const MAX_FOREIGN_TOKEN_LEN: usize = 64;

// ---------------------------------------------------------------------------------------------
// Routing table (BEP 5 §Routing Table)
// ---------------------------------------------------------------------------------------------

/// Nodes per bucket, `K` in BEP 5 ("currently eight"); also the number of nodes returned in
/// `nodes`/`nodes6` and the number of closest nodes a lookup converges on and announces to. A
/// full bucket is split if it holds our own ID, else a newcomer replaces a bad node or waits in
/// the replacement cache while a questionable node is pinged.
pub const BUCKET_SIZE: usize = 8;

/// Most buckets in one routing table: 160, one per bit of the ID space (BEP 5). The bucket
/// holding our own ID is not split further at the limit.
pub const MAX_BUCKETS: usize = 160;

/// Replacement candidates kept per bucket: 8 nodes that answered us while the bucket was full
/// (libtorrent keeps a replacement cache of the same size). At the limit the least recently
/// seen candidate is dropped.
pub const REPLACEMENTS_PER_BUCKET: usize = 8;

/// Most nodes in one routing table (one per address family), bucket entries plus replacement
/// candidates: `MAX_BUCKETS × (BUCKET_SIZE + REPLACEMENTS_PER_BUCKET)` = 2 560. Reached only if
/// every bucket fills; the per-IP rule (one entry per IP) makes a Sybil attack from one host
/// unable to fill more than one slot (SECURITY D8).
pub const MAX_ROUTING_NODES: usize = MAX_BUCKETS * (BUCKET_SIZE + REPLACEMENTS_PER_BUCKET);

/// How long a node stays good without activity: 15 minutes (BEP 5: good if it responded within
/// 15 minutes, or ever responded and queried us within 15 minutes). After it: questionable, and
/// pinged by the maintenance tick.
pub const GOOD_NODE_TTL: Duration = Duration::from_secs(15 * 60);

/// Unanswered queries in a row after which a node is bad: 2 (BEP 5: "try once more before
/// discarding the node"). A bad node is replaced by the best replacement candidate, or by the
/// next node that answers us.
pub const BAD_NODE_FAILURES: u8 = 2;

/// While both routing tables together hold fewer than [`BUCKET_SIZE`] nodes, bootstrap is
/// retried this often: 30 s (a lost bootstrap must not leave a node isolated for good).
pub const REBOOTSTRAP_INTERVAL: Duration = Duration::from_secs(30);

/// A bucket with free slots is explored (one `find_node` to the table node closest to a random
/// ID in its range, the returned nodes verified by ping) at most this often: 60 s. One
/// exploration query per table per [`TICK_INTERVAL`] at most; full buckets are never explored.
pub const BUCKET_EXPLORE_INTERVAL: Duration = Duration::from_secs(60);

/// A bucket not changed for this long is refreshed with a `find_node` for a random ID in its
/// range: 15 minutes (BEP 5). One refresh runs at a time.
pub const BUCKET_REFRESH_INTERVAL: Duration = Duration::from_secs(15 * 60);

// ---------------------------------------------------------------------------------------------
// Our queries
// ---------------------------------------------------------------------------------------------

/// How long an outstanding query waits for its response: 10 s (libtorrent waits 15 s at most).
/// After it: the query failed; the node's failure count goes up and its transaction is freed.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// After this long a lookup query stops occupying one of the [`LOOKUP_ALPHA`] slots, so the
/// lookup goes on with another node while still accepting a late answer: 2 s (libtorrent's short
/// timeout).
pub const QUERY_SHORT_TIMEOUT: Duration = Duration::from_secs(2);

/// Most queries outstanding at once, over all lookups, pings and announces: 512. The
/// transaction table never grows past it (SECURITY D10); at the limit a new query is not sent
/// (lookups wait for a free slot, pings are skipped).
pub const MAX_OUTSTANDING_QUERIES: usize = 512;

/// Most outstanding verification pings (to nodes that queried us, or that a response named
/// while their bucket has room) before they may enter the routing table: 32. They prove the
/// node's address (SECURITY D8). At the limit no more are sent until one completes, so spoofed
/// queries cannot make this node ping without bound.
pub const MAX_VERIFY_PINGS: usize = 32;

// ---------------------------------------------------------------------------------------------
// Lookups (BEP 5 §Overview; Kademlia)
// ---------------------------------------------------------------------------------------------

/// Parallel queries per lookup and address family, Kademlia's alpha: 3 (libtorrent's
/// `search_branching`).
pub const LOOKUP_ALPHA: usize = 3;

/// Most candidate nodes a lookup remembers per address family: 100, the closest ones. When more
/// arrive the farthest are forgotten.
pub const MAX_LOOKUP_CANDIDATES: usize = 100;

/// Most queries one lookup sends per address family: 128. With alpha = 3 and K = 8 a lookup
/// converges in about 20–40 queries; the cap stops a lookup fed endless fresh nodes by hostile
/// responders. At the limit no more queries are sent and the lookup ends when the last one is
/// answered.
pub const MAX_LOOKUP_QUERIES: u32 = 128;

/// Longest a lookup may run, from start to `LookupDone`: 60 s. At the limit it ends with
/// [`crate::LookupOutcome::TimedOut`] (the announce phase included).
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Lookups running at once: 16. Further lookups wait in a queue of [`MAX_QUEUED_LOOKUPS`].
pub const MAX_ACTIVE_LOOKUPS: usize = 16;

/// Lookups waiting to start: 4 096 (two announces per hosted torrent for the 2 000 torrents a
/// node typically seeds). At the limit a new lookup ends at once with
/// [`crate::LookupOutcome::Overloaded`].
pub const MAX_QUEUED_LOOKUPS: usize = 4096;

/// Distinct peers one `get_peers` lookup reports in [`crate::Event::Peers`]: 1 000. Further
/// peers are not reported (the engine cannot dial more anyway).
pub const MAX_LOOKUP_PEERS: usize = 1000;

/// Nodes kept from [`crate::Dht::import_nodes`] and offered to the next bootstrap: 256 (a saved
/// routing table has about 100–200). At the limit further nodes are ignored.
pub const MAX_IMPORTED_NODES: usize = 256;

/// Bootstrap addresses kept from [`crate::Config::bootstrap_nodes`]: 32. Extra addresses are
/// ignored.
pub const MAX_BOOTSTRAP_NODES: usize = 32;

// ---------------------------------------------------------------------------------------------
// Tokens (BEP 5 §get_peers, §announce_peer)
// ---------------------------------------------------------------------------------------------

/// Length of the tokens this node issues, in bytes: 8, an HMAC-SHA-256 of the querier's IP
/// truncated to 64 bits (SECURITY rule 5: a keyed MAC, never a CRC).
pub const TOKEN_LEN: usize = 8;

/// How often the token key changes: every 5 minutes (BEP 5). The previous key is still accepted,
/// so a token is valid for 5 to 10 minutes; after that `announce_peer` gets error 203.
pub const TOKEN_ROTATE_INTERVAL: Duration = Duration::from_secs(5 * 60);

// ---------------------------------------------------------------------------------------------
// Peer store (BEP 5 §announce_peer)
// ---------------------------------------------------------------------------------------------

/// Info-hashes stored: 2 000 (SECURITY §2.7). At the limit a new info-hash evicts the one
/// announced least recently (SECURITY D7).
pub const MAX_INFO_HASHES: usize = 2000;

/// Peers stored per info-hash: 500 (SECURITY §2.7). At the limit a new peer replaces the peer
/// whose announce is oldest.
pub const MAX_PEERS_PER_INFO_HASH: usize = 500;

/// Peers stored in total: `MAX_INFO_HASHES × MAX_PEERS_PER_INFO_HASH` = 1 000 000 (about 48 MB
/// at worst), enforced through its two factors.
pub const MAX_STORED_PEERS: usize = MAX_INFO_HASHES * MAX_PEERS_PER_INFO_HASH;

/// How long an announced peer is kept: 30 minutes (libtorrent's `announce_interval` × 2 is
/// similar; clients re-announce every 15–30 minutes). After it the peer is not returned and is
/// purged at the next store sweep.
pub const PEER_TTL: Duration = Duration::from_secs(30 * 60);

/// How often expired peers are purged from the store: 60 s.
pub const STORE_EXPIRE_INTERVAL: Duration = Duration::from_secs(60);

/// Most peers in one `get_peers` reply's `values`: 50 (SECURITY D5); fewer when they would not
/// fit [`MAX_REPLY_LEN`] (IPv6 peers are 18 bytes each). A random window of the stored peers is
/// returned.
pub const MAX_VALUES_PER_REPLY: usize = 50;

// ---------------------------------------------------------------------------------------------
// BEP 51 (sample_infohashes)
// ---------------------------------------------------------------------------------------------

/// Most info-hashes in one `samples` string: 20 (SECURITY D12; 400 bytes).
pub const MAX_SAMPLES: usize = 20;

/// The `interval` told to indexers and the lifetime of the cached sample: 21 600 s, the BEP 51
/// maximum (SECURITY §2.7). Repeated queries within it get the same sample.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(21_600);

// ---------------------------------------------------------------------------------------------
// Abuse (SECURITY D4, §2.7)
// ---------------------------------------------------------------------------------------------

/// Source IPs tracked by the rate limiter: 64, a fixed table (libtorrent's `dos_blocker` has 20).
/// At the limit the entry with the least recent activity is reused; banned entries go last.
pub const RATE_LIMIT_SLOTS: usize = 64;

/// Window over which the per-IP datagram rate is averaged: 10 s (libtorrent).
pub const RATE_LIMIT_WINDOW: Duration = Duration::from_secs(10);

/// Datagrams accepted from one IP per [`RATE_LIMIT_WINDOW`]: 50, i.e. 5 per second on average
/// (libtorrent's `dht_block_ratelimit` default). The 51st bans the IP.
pub const MAX_DATAGRAMS_PER_WINDOW: u32 = 50;

/// How long a rate-limited IP is ignored: 300 s of silence (libtorrent's `dht_block_timeout`);
/// every datagram received during the ban restarts it.
pub const RATE_LIMIT_BAN_TTL: Duration = Duration::from_secs(300);

/// Default cap on reply bytes sent per second, over all queriers: 64 KiB/s (SECURITY §2.7; a
/// seed node answers more than a client's 8 KB/s). Replies over the budget are dropped, our own
/// queries are not counted.
pub const DEFAULT_REPLY_BYTES_PER_SEC: u32 = 64 * 1024;

/// Hard ceiling for [`crate::Config::reply_bytes_per_sec`]: 1 MiB/s; larger values are clamped.
pub const MAX_REPLY_BYTES_PER_SEC: u32 = 1024 * 1024;

/// Distinct responders whose BEP 42 `ip` reports are remembered: the last 16 (one vote per IP,
/// and only from responses to our own queries, so votes cannot be forged off-path).
pub const IP_VOTERS: usize = 16;

/// Votes needed among the last [`IP_VOTERS`] for [`crate::Event::ExternalAddress`]: 10, a clear
/// majority (BEP 42 suggests voting, since one node cannot be trusted).
pub const IP_VOTES_NEEDED: usize = 10;

// ---------------------------------------------------------------------------------------------
// Machine
// ---------------------------------------------------------------------------------------------

/// Period of the maintenance tick: 5 s. Each tick ends timed-out lookups, starts queued ones,
/// refreshes at most one stale bucket, pings at most one questionable node per table, and every
/// [`STORE_EXPIRE_INTERVAL`] purges expired peers.
pub const TICK_INTERVAL: Duration = Duration::from_secs(5);

/// Datagrams waiting in [`crate::Dht::poll_transmit`]: `2 × MAX_OUTSTANDING_QUERIES` = 1 024.
/// One call queues at most [`MAX_OUTSTANDING_QUERIES`] queries (the transaction table caps them)
/// and one reply, so a caller that drains after every call never reaches it; beyond it datagrams
/// are dropped and counted in [`crate::Stats::dropped_transmits`].
pub const MAX_QUEUED_TRANSMITS: usize = 2 * MAX_OUTSTANDING_QUERIES;

/// Events waiting in [`crate::Dht::poll_event`]: 8 256, enough for every running and queued
/// lookup to end in one call with an `Announced` and a `LookupDone` each
/// (`2 × (MAX_ACTIVE_LOOKUPS + MAX_QUEUED_LOOKUPS)`), plus a few `Peers` events; one datagram
/// adds at most one `Peers` event. So a caller that drains after every call never loses one;
/// beyond it events are dropped and counted in [`crate::Stats::dropped_events`].
pub const MAX_QUEUED_EVENTS: usize = 2 * (MAX_ACTIVE_LOOKUPS + MAX_QUEUED_LOOKUPS) + 32;
