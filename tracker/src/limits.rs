//! Every bound the tracker enforces on untrusted input, with its reason.

use std::time::Duration;

/// Announce interval told to clients, seconds (opentracker and aquatic use 30 minutes).
pub const DEFAULT_ANNOUNCE_INTERVAL: Duration = Duration::from_secs(1800);

/// `min interval` told to clients, seconds: clients must not re-announce faster (SECURITY.md §2.7).
pub const DEFAULT_MIN_ANNOUNCE_INTERVAL: Duration = Duration::from_secs(900);

/// How often the engine should call [`crate::Tracker::expire`].
pub const EXPIRE_INTERVAL: Duration = Duration::from_secs(60);

/// Peers returned when a client sends no `numwant` (BEP 3 convention, opentracker's default).
pub const DEFAULT_NUMWANT: usize = 50;

/// Most peers returned in one response, whatever `numwant` says: keeps a reply at a few KB
/// (SECURITY.md TH2). Larger values are clamped.
pub const MAX_NUMWANT: usize = 200;

/// Most torrents tracked. At the limit an announce for a new info-hash gets a `failure reason`.
pub const MAX_TORRENTS: usize = 100_000;

/// Most peers kept per torrent (SECURITY.md §2.7). At the limit a new peer is answered but not
/// stored.
pub const MAX_PEERS_PER_TORRENT: usize = 5_000;

/// Longest query string accepted, bytes (aquatic accepts 2 KiB of request line and headers).
/// Longer ones get a `failure reason`.
pub const MAX_QUERY_LEN: usize = 4096;

/// Most `key=value` pairs read from one query string; more gets a `failure reason`.
pub const MAX_QUERY_PARAMS: usize = 64;
