//! Every bound the tracker (server and client) enforces, with its unit, its reason and what happens
//! at the limit. Composite limits are derived from their parts; tunables are a `DEFAULT_*` clamped
//! to a hard `MAX_*`.

use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// Server: timing
// ---------------------------------------------------------------------------------------------

/// `interval` told to clients (HTTP and UDP announce), 30 minutes as opentracker and aquatic.
pub const DEFAULT_ANNOUNCE_INTERVAL: Duration = Duration::from_secs(1800);

/// `min interval` told to HTTP clients: they must not re-announce faster (SECURITY.md §2.7).
pub const DEFAULT_MIN_ANNOUNCE_INTERVAL: Duration = Duration::from_secs(900);

/// A peer silent for this long is dropped: twice the announce interval (SECURITY.md §2.7), so one
/// lost announce does not remove a live peer.
pub const DEFAULT_PEER_TTL: Duration = Duration::from_secs(2 * DEFAULT_ANNOUNCE_INTERVAL.as_secs());

/// How often the engine should call [`crate::Tracker::expire`]. Expiry walks every peer once, so
/// a peer outlives its TTL by at most this much.
pub const EXPIRE_INTERVAL: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Server: swarm store
// ---------------------------------------------------------------------------------------------

/// Peers returned when a client sends no `numwant` (HTTP) or `num_want = -1` (UDP): the BEP 3
/// convention and opentracker's default.
pub const DEFAULT_NUMWANT: usize = 50;

/// Most peers in one HTTP announce response, whatever `numwant` says: 200 compact peers are
/// 1.2 KB, 200 dictionary-model peers about 14 KB (SECURITY.md TH2). Larger values are clamped.
pub const MAX_NUMWANT: usize = 200;

/// Most torrents tracked. At the limit an announce that would create a new swarm gets the
/// `failure reason` "tracker is full" (UDP: an error packet); hosted torrents
/// ([`crate::Tracker::host`]) are always admitted.
pub const MAX_TORRENTS: usize = 100_000;

/// Most peers kept per torrent (SECURITY.md §2.7). At the limit a new peer is answered (it gets
/// peers) but not stored; peers already stored keep being refreshed. Existing peers are never
/// evicted for a newcomer, so a flood of fake peers cannot push real ones out.
pub const MAX_PEERS_PER_TORRENT: usize = 5_000;

/// Most peers kept over all torrents, about 12 MB of swarm memory (a stored IPv4 peer costs 10
/// bytes in its sorted list plus about an eighth of slack; each swarm a 48-byte slot and a
/// control byte in the swarm table, which is 44-88 % full).
/// Same policy as [`MAX_PEERS_PER_TORRENT`] at the limit.
pub const MAX_PEERS: usize = 1_000_000;

// ---------------------------------------------------------------------------------------------
// Server: HTTP requests
// ---------------------------------------------------------------------------------------------

/// Longest announce query string accepted, bytes (aquatic accepts 2 KiB of request line and
/// headers; a real announce is about 250 bytes). Longer ones get a `failure reason` without
/// being scanned.
pub const MAX_QUERY_LEN: usize = 4096;

/// Most `key=value` pairs read from one query string (a real announce has about 12); more gets
/// a `failure reason`.
pub const MAX_QUERY_PARAMS: usize = 64;

/// Most `info_hash` values in one HTTP scrape (SECURITY.md TH5). More gets a `failure reason`
/// naming the limit (the scrape is not truncated: BEP 48 answers by key, and a silently missing
/// key reads as "unknown torrent").
pub const MAX_SCRAPE_INFO_HASHES: usize = 64;

/// Longest scrape query string, bytes: [`MAX_SCRAPE_INFO_HASHES`] fully percent-escaped
/// `info_hash=` pairs (10 + 60 + 1 bytes each) plus 512 bytes for other parameters (passkeys).
/// Longer ones get a `failure reason` without being scanned.
pub const MAX_SCRAPE_QUERY_LEN: usize = MAX_SCRAPE_INFO_HASHES * (10 + 3 * 20 + 1) + 512;

/// Most `key=value` pairs read from one scrape query: the info-hashes plus a few others.
pub const MAX_SCRAPE_QUERY_PARAMS: usize = MAX_SCRAPE_INFO_HASHES + 8;

// ---------------------------------------------------------------------------------------------
// Server: UDP (BEP 15)
// ---------------------------------------------------------------------------------------------

/// Largest datagram handled, bytes (SECURITY.md §2.7 datagram buffer). The largest request we
/// answer is a scrape of [`MAX_UDP_SCRAPE_INFO_HASHES`] plus slack for BEP 41 options; larger
/// datagrams are dropped without a reply (TU1).
pub const MAX_UDP_REQUEST_LEN: usize = 8 * 1024;

/// Most IPv4 peers in one UDP announce reply: 20 + 74 × 6 = 464 bytes, under the 508-byte payload
/// every IPv4 path must carry unfragmented (576 − 60 − 8). `num_want` is clamped to this (TU6).
pub const MAX_UDP_PEERS_V4: usize = 74;

/// Most IPv6 peers in one UDP announce reply: 20 + 45 × 18 = 830 bytes, well under the 1 232-byte
/// payload of the IPv6 minimum MTU (1 280 − 40 − 8), leaving room for tunnels. `num_want` is
/// clamped to this (TU6).
pub const MAX_UDP_PEERS_V6: usize = 45;

/// Most info-hashes answered in one UDP scrape (aquatic's value; BEP 15 says "about 74"). Extra
/// info-hashes are ignored: the reply answers the first 70 in order, so a client can tell which
/// (TU7). The reply (8 + 12 n bytes) is always smaller than the request (16 + 20 n).
pub const MAX_UDP_SCRAPE_INFO_HASHES: usize = 70;

/// Largest UDP reply the server writes, bytes: the largest of an IPv6 announce with
/// [`MAX_UDP_PEERS_V6`] peers, an IPv4 one with [`MAX_UDP_PEERS_V4`], a full scrape and an error
/// packet. A caller's buffer of this capacity never reallocates.
pub const MAX_UDP_REPLY_LEN: usize = {
    let v6 = 20 + 18 * MAX_UDP_PEERS_V6;
    let v4 = 20 + 6 * MAX_UDP_PEERS_V4;
    let scrape = 8 + 12 * MAX_UDP_SCRAPE_INFO_HASHES;
    let mut max = v6;
    if v4 > max {
        max = v4;
    }
    if scrape > max {
        max = scrape;
    }
    if MAX_UDP_ERROR_MESSAGE_LEN + 8 > max {
        max = MAX_UDP_ERROR_MESSAGE_LEN + 8;
    }
    max
};

/// Longest error message the server puts in a BEP 15 error packet, bytes. All messages are
/// static strings shorter than this; the reply stays smaller than the announce (98 bytes) or
/// scrape (36 bytes) it answers.
pub const MAX_UDP_ERROR_MESSAGE_LEN: usize = 28;

/// How long a connection ID is accepted after it was issued: at least this, at most this plus
/// one [`CONNECTION_ID_BUCKET`] (BEP 15: "accept the connection ID until two minutes after it has
/// been sent"; SECURITY.md TU2). Older IDs get no reply.
pub const CONNECTION_ID_TTL: Duration = Duration::from_secs(120);

/// Granularity of the time bucket MACed into a connection ID. The ID carries the low 8 bits of
/// its bucket number; `CONNECTION_ID_TTL / CONNECTION_ID_BUCKET + 1` (9) buckets are accepted,
/// far fewer than 256, so a bucket byte names one bucket unambiguously and a "future" byte is an
/// old bucket, rejected (TU3).
pub const CONNECTION_ID_BUCKET: Duration = Duration::from_secs(15);

/// How often the HMAC key for connection IDs is re-derived from the master secret (rotation driven
/// by `now`). IDs issued under the previous key stay valid until their TTL.
pub const CONNECTION_ID_KEY_ROTATION_INTERVAL: Duration = Duration::from_secs(3600);

/// Slots of the connection-ID MAC cache (`udp::conn_id`), a power of two, 32 bytes each
/// (128 KiB). A client's connect and its following announces and scrapes within one 15 s bucket
/// share one HMAC while its slot holds; at the limit an older entry is overwritten (a miss only
/// costs one HMAC). Not a bound on input; a memory/CPU trade-off.
pub const CONNECTION_ID_MAC_CACHE_SLOTS: usize = 4096;

// ---------------------------------------------------------------------------------------------
// Server: access list
// ---------------------------------------------------------------------------------------------

/// Most info-hashes in an access list (opentracker's lists hold millions; one entry costs about
/// 24 bytes). A longer list is refused with an error, and the previous list stays in force.
pub const MAX_ACCESS_LIST_ENTRIES: usize = 1_000_000;

// ---------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------

/// Trackers kept per torrent over all tiers (BEP 12). Public torrents list 20–100; the rest are
/// dropped (in file order) with the torrent still added.
pub const MAX_CLIENT_TRACKERS: usize = 64;

/// Longest tracker URL accepted, bytes; longer ones are dropped from the tier.
pub const MAX_TRACKER_URL_LEN: usize = 2048;

/// `numwant` the client asks for: a seed needs few peers; 50 is BEP 3's convention.
pub const CLIENT_NUMWANT: u32 = 50;

/// Most peers taken from one tracker response; the rest are ignored. Twice the widest reply we
/// ask for, so honest trackers are never truncated but a hostile one cannot flood the engine.
pub const MAX_CLIENT_PEERS_PER_RESPONSE: usize = 200;

/// Largest HTTP tracker response body accepted, bytes. The engine should stop reading at this;
/// a longer body is a failure. 200 dictionary-model peers are about 14 KB.
pub const MAX_TRACKER_RESPONSE_LEN: usize = 128 * 1024;

/// Longest `failure reason` / BEP 15 error message kept, bytes; longer ones are truncated (at a
/// character boundary) before they reach an event.
pub const MAX_FAILURE_REASON_LEN: usize = 256;

/// Shortest re-announce interval the client honours: a tracker asking for less gets this, so a
/// hostile `interval=0` cannot make us hammer it.
pub const CLIENT_MIN_ANNOUNCE_INTERVAL: Duration = Duration::from_secs(60);

/// Longest re-announce interval the client honours (6 hours); longer values are clamped so a
/// tracker cannot make us fall out of its own swarm.
pub const CLIENT_MAX_ANNOUNCE_INTERVAL: Duration = Duration::from_secs(6 * 3600);

/// Interval used when a successful response has no `interval`.
pub const CLIENT_DEFAULT_ANNOUNCE_INTERVAL: Duration = Duration::from_secs(1800);

/// First back-off after every tracker of a tier failed; doubled after each failed round.
pub const CLIENT_RETRY_BASE_INTERVAL: Duration = Duration::from_secs(60);

/// Longest back-off between failed rounds of a tier (1 hour).
pub const CLIENT_MAX_RETRY_INTERVAL: Duration = Duration::from_secs(3600);

/// How long the client waits for the engine to report an HTTP announce's outcome; after it the
/// attempt counts as failed and a late response is ignored.
pub const CLIENT_HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// BEP 15 retransmit timeout for attempt `n` is `15 × 2^n` seconds.
pub const UDP_RETRANSMIT_BASE_TIMEOUT: Duration = Duration::from_secs(15);

/// Largest `n` in BEP 15's `15 × 2^n` (3 840 s).
pub const MAX_UDP_RETRANSMITS: u32 = 8;

/// Retransmits before a UDP tracker counts as failed and the next tracker of its tier is tried:
/// timeouts 15, 30, 60 and 120 s, 225 s in all. BEP 15 allows n up to 8 (two hours in all), too
/// long to keep a working tracker in the tier waiting. Tunable up to [`MAX_UDP_RETRANSMITS`].
pub const DEFAULT_UDP_RETRANSMITS: u32 = 3;

/// How long the client reuses a UDP connection ID after receiving it (BEP 15: "until one minute
/// after it has received it").
pub const CLIENT_CONNECTION_ID_TTL: Duration = Duration::from_secs(60);

/// Most events queued for the engine between two drains; further peer events are dropped (the
/// engine drains after every input, so this only bounds a misbehaving caller).
pub const MAX_CLIENT_EVENTS: usize = 4096;

/// Most UDP connection IDs cached by the client (one per tracker `host:port`); at the limit the
/// cache is cleared, costing one extra connect per tracker.
pub const MAX_CLIENT_CONNECTION_IDS: usize = 1024;
