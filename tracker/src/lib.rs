//! Sans-IO BitTorrent tracker (server) and tracker client.
//!
//! The crate opens no socket, reads no clock, spawns no thread and draws no randomness of its own
//! (a `clippy.toml` bans `Instant::now`, `SystemTime::now`, `thread::spawn` and std sockets).
//! Time is a `now: Instant` argument, never going backwards; secrets and PRNG seeds are passed
//! in at construction.
//!
//! # Server: [`Tracker`]
//!
//! One swarm store (compact per-family peer lists, see `swarm.rs`) behind two front ends:
//! - HTTP ([`http`]): [`Tracker::http_announce`] for `GET /announce` (BEP 3, BEP 23 compact and
//!   the dictionary model, BEP 7 `peers6`), [`Tracker::http_scrape`] for `GET /scrape` (BEP 48).
//!   Each takes the raw query string and returns the bencoded body.
//! - UDP ([`udp`]): [`Tracker::handle_datagram`] (BEP 15), one datagram in, at most one out,
//!   written into a caller-provided buffer; stateless MAC connection IDs ([`udp::conn_id`]).
//!
//! Call order: [`Tracker::with_secret`] (or [`Tracker::new`] for HTTP only), [`Tracker::host`]
//! for every torrent this node seeds, optionally [`Tracker::set_access_list`] (again on every
//! reload); then per request `http_announce` / `http_scrape` / `handle_datagram`; and
//! [`Tracker::expire`] from a timer every [`limits::EXPIRE_INTERVAL`].
//!
//! Access policy: hosted torrents always; otherwise the access list ([`access`]) if one is set,
//! else every info-hash when [`TrackerConfig::open`], else none.
//!
//! # Client: [`client::TrackerClient`]
//!
//! Announces the torrents this node seeds to the HTTP and UDP trackers of their metainfo
//! (BEP 12 tiers). It produces [`client::Transmit`]s ("GET this URL", "send this datagram to
//! host:port") and consumes their outcomes; the engine does DNS, TCP/TLS and sockets. See the
//! [`client`] module for its call order.
//!
//! Every bound is in [`limits`].

pub mod access;
pub mod announce;
pub mod client;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod limits;
mod query;
pub mod scrape;
pub mod server;
mod swarm;
pub mod udp;

pub use access::{AccessList, AccessListError, AccessMode};
pub use announce::{AnnounceError, AnnounceEvent, AnnounceRequest};
pub use http::failure;
pub use scrape::ScrapeRequest;
pub use server::{Tracker, TrackerConfig, TrackerStats};
