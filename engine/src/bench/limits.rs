//! Every bound of the load generators: what a remote peer or tracker can make them hold, and how
//! long any run may last. Tunables are a `DEFAULT_*` checked against a `MAX_*` when parsed.

use std::time::Duration;

/// Longest `--duration` of any bench, seconds. Above it the argument is refused.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// Default measured time of `bench leech` and `bench tracker`: short, so a first run is quick.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// Time a run may take past its duration to close its connections and join its threads (a read
/// wake-up, a write to a peer that stopped reading). A run never lasts longer.
pub const GRACE: Duration = Duration::from_secs(2);

/// Block length requested by the sink leecher, bytes (BEP 3: every client asks for 16 KiB).
pub const BLOCK_LEN: u32 = 16 * 1024;
/// Default requests kept outstanding per connection (2 MiB in flight), clamped by the seeder's
/// BEP 10 `reqq`.
pub const DEFAULT_PIPELINE: u32 = 128;
/// Most requests outstanding per connection: the top of the `reqq` range seednode-wire accepts.
pub const MAX_PIPELINE: u32 = seednode_wire::peer::extension::REQQ_RANGE.1;
/// Most leecher connections in one run (each is a thread with a [`RECV_BUF_LEN`] buffer).
pub const MAX_LEECH_CONNECTIONS: usize = 64;
/// Bound on connecting and on the seeder's handshake (shortened to the run's duration).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on one write of requests: past it the seeder stopped reading and the connection fails.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a blocked read wakes to look at the clock.
pub const READ_WAKE_INTERVAL: Duration = Duration::from_millis(100);
/// A keep-alive goes out when nothing else was sent for this long (seeders close idle peers
/// after about two minutes).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);
/// Receive buffer per leecher connection, bytes: many blocks per `read`, and room for two of the
/// largest frames accepted ([`seednode_wire::peer::max_frame_len`], at most 1 MiB + a few bytes
/// for the bitfield of the largest torrent); a longer length prefix ends the connection.
pub const RECV_BUF_LEN: usize = 2 << 20 | 64 << 10;
const _: () = assert!(
    RECV_BUF_LEN >= 2 * (4 + seednode_wire::limits::MAX_FRAME_LEN as usize),
    "the receive buffer holds two of the largest frames"
);
/// Bytes of pieces being assembled for their SHA-1 check, per connection. Pieces started past it
/// are not checked (counted as unverified), so a seeder that scatters blocks cannot grow memory.
pub const MAX_VERIFY_BYTES_PER_CONNECTION: u64 = 64 << 20;

/// Most distinct info-hashes in a tracker run (20 bytes each, 200 MB at the limit).
pub const MAX_INFO_HASHES: usize = 10_000_000;
/// Default distinct info-hashes of `bench tracker`.
pub const DEFAULT_INFO_HASHES: usize = 10_000;
/// Default simulated peers of `bench tracker`.
pub const DEFAULT_PEERS: u64 = 100_000;
/// Most UDP client sockets, each on its own loopback address.
pub const MAX_UDP_SOCKETS: usize = 200;
/// Default UDP client sockets.
pub const DEFAULT_UDP_SOCKETS: usize = 16;
/// Most UDP requests in flight.
pub const MAX_IN_FLIGHT: usize = 65_536;
/// Default UDP requests in flight (aquatic_udp_load_test keeps a similar number).
pub const DEFAULT_IN_FLIGHT: usize = 128;
/// Lowest port a simulated peer announces.
pub const FIRST_PEER_PORT: u16 = 1024;
/// Distinct announced ports per source address, hence the most peers one socket simulates.
pub const PORTS_PER_SOURCE: u64 = 65_536 - FIRST_PEER_PORT as u64;
/// Info-hashes per scrape (BEP 15 fits about 74 in a datagram; trackers cap near 64-70).
pub const DEFAULT_SCRAPE_HASHES: usize = 10;
/// Most info-hashes per scrape: the tracker crate's own limit.
pub const MAX_SCRAPE_HASHES: usize = seednode_tracker::limits::MAX_SCRAPE_INFO_HASHES;
/// `numwant` of every announce.
pub const NUMWANT: u32 = 30;
/// Share of simulated peers that are seeders (`left = 0`), percent.
pub const SEEDER_PERCENT: u64 = 75;
/// A UDP request unanswered this long is lost and its slot sends anew.
pub const UDP_REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// Largest datagram read, bytes (an announce reply with 200 IPv4 peers is 1220).
pub const MAX_DATAGRAM_LEN: usize = 8192;
/// Datagrams read from one socket before the loop moves on (fairness between sockets).
pub const MAX_RECV_PER_SOCKET_TURN: usize = 64;
/// How often UDP slots are scanned for timed-out requests.
pub const TIMEOUT_SCAN_INTERVAL: Duration = Duration::from_millis(20);
/// Distinct error messages kept per run; later ones are counted under "other".
pub const MAX_ERROR_KINDS: usize = 8;
/// Longest error message kept, bytes (longer ones are truncated).
pub const MAX_ERROR_MESSAGE_LEN: usize = 120;

/// Most HTTP tracker connections (one thread each).
pub const MAX_HTTP_CONNECTIONS: usize = 256;
/// Default HTTP tracker connections.
pub const DEFAULT_HTTP_CONNECTIONS: usize = 8;
/// Longest HTTP response head (status line and headers), bytes.
pub const MAX_HTTP_HEAD_LEN: usize = 8 * 1024;
/// Most HTTP response headers parsed.
pub const MAX_HTTP_HEADERS: usize = 32;
/// Longest HTTP response body: the tracker client's own limit.
pub const MAX_HTTP_BODY_LEN: usize = seednode_tracker::limits::MAX_TRACKER_RESPONSE_LEN;
/// Bound on one HTTP request and its response.
pub const HTTP_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Smallest time a hashing measurement runs, so small files give a stable figure.
pub const MIN_HASH_MEASURE: Duration = Duration::from_millis(500);
/// Most passes over a small file in `bench hash`.
pub const MAX_HASH_PASSES: u32 = 1000;
/// In-memory buffer each thread hashes for the raw SHA-1 figure, bytes.
pub const RAW_HASH_BUF_LEN: usize = 4 << 20;
