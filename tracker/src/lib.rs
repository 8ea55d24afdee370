//! Sans-IO BitTorrent tracker: an in-memory swarm store and the HTTP announce handler (BEP 3) with
//! compact peers (BEP 23, BEP 7 `peers6`).
//!
//! The crate opens no socket and reads no clock. The engine hands it a request's query string, the
//! socket address the request came from and `now`; it returns the bencoded response body.
//!
//! Call order: [`Tracker::new`], then for every `GET /announce` [`Tracker::http_announce`]; call
//! [`Tracker::expire`] from a timer (every [`limits::EXPIRE_INTERVAL`]) to drop silent peers.

pub mod announce;
pub mod limits;
pub mod swarm;

pub use announce::{AnnounceError, AnnounceEvent, AnnounceRequest};
pub use swarm::{Tracker, TrackerConfig};
