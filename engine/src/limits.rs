//! Every bound the engine enforces, with its unit, its reason and what happens at the limit.
//! Settings an operator may change start as a `DEFAULT_*` here.

use std::time::Duration;

/// A connection must finish its handshake (or its HTTP request head) within this time
/// (libtorrent `handshake_timeout`, SECURITY.md W1/W14/TH8). Then it is closed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A peer that sends nothing for this long is closed (libtorrent `peer_timeout`, SECURITY.md §2.7).
pub const PEER_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// A keep-alive is sent to a peer we have sent nothing to for this long (BEP 3 suggests every two
/// minutes; we stay well inside the peer's own idle timeout).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);

/// An HTTP connection must deliver its request head and have its response drained within this time.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Most bytes read before the protocol is known: enough for a handshake or a request line. A
/// connection that has sent this much without matching a protocol is closed.
pub const MAX_SNIFF_LEN: usize = 68;

/// Largest HTTP request head, bytes (SECURITY.md §2.7 "headers ≤ 16 KiB"). Over it: 431, close.
pub const MAX_HTTP_HEAD_LEN: usize = 16 * 1024;

/// Most header fields parsed in one HTTP request (SECURITY.md §2.7). More: 431, close.
pub const MAX_HTTP_HEADERS: usize = 64;

/// Most block requests queued per peer, waiting for a disk read (libtorrent's default
/// `max_allowed_in_request_queue` is 2 000; SECURITY.md proposes 500). Requests past it are dropped
/// and counted; the peer re-requests after its own timeout.
pub const MAX_REQUEST_QUEUE: usize = 500;

/// Requests a peer may send while choked before it is closed (SECURITY.md W8). A peer may
/// legitimately have a full queue in flight when we choke it, so the bound is the queue size.
pub const MAX_REQUESTS_WHILE_CHOKED: u32 = MAX_REQUEST_QUEUE as u32;

/// Most disk reads outstanding per peer, in blocks (16 blocks = 256 KiB): enough to keep a fast
/// loopback leecher busy while bounding memory per connection.
pub const MAX_READS_IN_FLIGHT_PER_PEER: usize = 16;

/// Bytes queued for a peer's socket above which we stop reading its requests and stop issuing disk
/// reads for it (SECURITY.md W7, libtorrent `send_buffer_watermark`).
pub const SEND_BUFFER_HIGH_WATER: usize = 512 * 1024;

/// Most bytes read from one socket per readiness event before moving on to the others (fairness).
pub const MAX_READ_PER_WAKE: usize = 256 * 1024;

/// Most connections accepted per listener readiness event before serving other sockets (fairness).
pub const MAX_ACCEPTS_PER_WAKE: usize = 64;

/// Default cap on concurrent connections of all kinds (libtorrent's default is 200 peers; a seed
/// node serves more). Past it new connections are closed at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1_000;

/// Default cap on concurrent connections from one IP address (SECURITY.md W15).
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 8;

/// Default cap on peers of one torrent (libtorrent's `connections_limit` per torrent is similar);
/// past it a peer is closed after its handshake.
pub const DEFAULT_MAX_PEERS_PER_TORRENT: usize = 200;

/// Default number of upload slots per torrent: interested peers unchoked at once (BEP 3 choking;
/// libtorrent and Transmission use 4). Others wait for a rotation (see `choker`).
pub const DEFAULT_UPLOAD_SLOTS: usize = 4;

/// Default number of upload slots over all torrents (libtorrent's `unchoke_slots_limit` is 8 for
/// a client; a seed node serves more). Past it interested peers wait for a rotation.
pub const DEFAULT_GLOBAL_UPLOAD_SLOTS: usize = 16;

/// Threads reading blocks from disk. Two match this project's small targets (2-core boxes, a Pi).
pub const DEFAULT_DISK_THREADS: usize = 2;

/// Size of a read buffer for one socket read, bytes.
pub const READ_CHUNK_LEN: usize = 64 * 1024;

/// Extension handshakes (BEP 10) a peer may send on one connection; BEP 10 allows repeats to
/// update settings, a flood is an attack (SECURITY.md W11). One more: close.
pub const MAX_EXTENSION_HANDSHAKES: u32 = 4;

/// Default size of the piece cache of `--data-path copy`, MiB: small enough for a Raspberry Pi
/// Zero 2 (512 MiB RAM) to seed many torrents, large enough for 16 pieces of 256 KiB.
pub const DEFAULT_CACHE_MIB: usize = 4;

/// Peers dialled from one PEX message at most (BEP 11 messages carry up to 50).
pub const MAX_PEX_DIALS_PER_MESSAGE: usize = 10;

/// `have` messages a peer may send on one connection beyond the torrent's piece count: a peer
/// announces each piece once (plus a re-download after a failed hash check now and then), so
/// more is a flood that only burns our CPU. Past it: disconnect.
pub const HAVE_SLACK: u32 = 1_024;

/// Non-data messages (everything but `request`, `cancel`, `piece` and `have`) a peer may send
/// per second on average. A well-behaved peer sends a handful a minute (keep-alives,
/// interest changes, PEX, a few metadata requests for a magnet). Past it: disconnect.
pub const CHATTER_PER_SEC: u32 = 20;

/// How many non-data messages a peer may send in one burst (a magnet client asking for every
/// metadata piece of a 4 MiB info dictionary at once sends 256).
pub const CHATTER_BURST: u32 = 400;

/// A peer's PEX message is acted on at most once per this interval (BEP 11: "at most once per
/// minute"); earlier ones are ignored.
pub const PEX_MIN_INTERVAL: Duration = Duration::from_secs(60);

/// A PEX message this soon after the peer's previous one is early.
pub const PEX_FLOOD_INTERVAL: Duration = Duration::from_secs(20);

/// Early PEX messages a peer may send on one connection; one more: disconnect (a peer that
/// sends PEX every second is flooding, BEP 11).
pub const MAX_EARLY_PEX: u32 = 3;

/// Peer messages handled per connection per loop turn before other connections get their turn
/// (fairness: a peer flooding tiny messages cannot hold the loop).
pub const MAX_MESSAGES_PER_WAKE: usize = 512;

/// New outgoing peer connections per second over the whole node, on average. A seed dials only
/// to reach leechers that cannot reach it (transmission, INTEROP.md); this is plenty for that
/// and keeps the node from being used to scan or flood others. Past it: the address is skipped.
pub const DIALS_PER_SEC: u32 = 10;

/// New outgoing peer connections the node may start in one burst.
pub const DIAL_BURST: u32 = 40;

/// New outgoing connections per minute on the say-so of one source (a PEX peer or a tracker),
/// on average (BEP 11 PEX carries at most 50 peers a minute; we dial at most
/// `MAX_PEX_DIALS_PER_MESSAGE` of them).
pub const DIALS_PER_SOURCE_PER_MIN: u32 = 20;

/// New outgoing connections one source may cause in one burst (a tracker reply's dials).
pub const DIAL_SOURCE_BURST: u32 = 20;

/// Sources whose dial budgets are remembered at most; past it the least recently used is
/// forgotten (its next burst is allowed again, still within the node-wide budget).
pub const MAX_DIAL_SOURCES: usize = 256;

/// Connections closed for misbehaviour from one address within [`STRIKE_WINDOW`] before the
/// address is banned: one bad connection may be a bug, three in a minute is a pattern.
pub const STRIKES_BEFORE_BAN: u32 = 3;

/// The window over which misbehaviour strikes count.
pub const STRIKE_WINDOW: Duration = Duration::from_secs(60);

/// How long a banned address is refused at accept (and never dialled).
pub const BAN_DURATION: Duration = Duration::from_secs(300);

/// Addresses tracked for strikes, and banned, at most each; past it expired entries are
/// dropped, then the oldest.
pub const MAX_TRACKED_IPS: usize = 4_096;

/// Largest HTTP request body, bytes (SECURITY.md §2.7: a `.torrent` upload is at most 10 MiB).
/// A larger `Content-Length` is answered 413 before any of the body is read.
pub const MAX_HTTP_BODY_LEN: usize = 10 * 1024 * 1024;

/// Requests served on one HTTP connection at most; the last response says `Connection: close`.
/// Bounds what one connection can make the node do without a new handshake.
pub const MAX_HTTP_REQUESTS_PER_CONNECTION: usize = 100;

/// An HTTP connection with nothing to send and no request under way is closed after this long
/// (keep-alive idle time; nginx's default `keepalive_timeout` is 75 s).
pub const HTTP_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTP response that makes no progress (the client reads nothing) for this long is
/// abandoned and the connection closed.
pub const HTTP_SEND_STALL_TIMEOUT: Duration = Duration::from_secs(30);
