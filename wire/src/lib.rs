//! Sans-IO BitTorrent wire formats.
//!
//! This crate never opens a socket, reads a clock or spawns a thread: callers hand it bytes and take
//! values (or bytes) back. Everything that parses untrusted bytes is bounded by a named constant in
//! [`limits`] and returns an error instead of panicking.
//!
//! - [`addr`]: address rules: which addresses a remote may make us dial or hand on (scopes,
//!   IPv4-mapped IPv6 unwrapped by [`addr::canonical_ip`]).
//! - [`bencode`]: a lenient, bounded bencode decoder (policy documented there) and an encoder.
//! - [`metainfo`]: .torrent files (BEP 3, 12, 19, 27); the info-hash is the SHA-1 of the raw
//!   `info` bytes. v2 and hybrid torrents (BEP 52) load through the same
//!   [`metainfo::Metainfo::from_bytes`]; their v2 side is in [`metainfo_v2`].
//! - [`merkle`]: BEP 52 merkle trees: roots, piece layers, answers to `hash request`s.
//! - [`magnet`]: magnet URIs (BEP 9; BEP 52 `urn:btmh:`).
//! - [`display`]: names from torrents or disk escaped for terminals and logs.
//! - [`percent`], [`ct`], [`rng`]: the one percent codec, constant-time comparison and
//!   seeded PRNG the protocol crates share.
//! - [`peer`]: the peer wire protocol (BEP 3): handshake, messages, a zero-copy frame decoder,
//!   and the BEP 52 hash messages.
//! - [`upload`]: the upload port's framing (`UPLOAD_TORRENT`, `UPLOAD_FILE`, `UPLOAD_RESUME`)
//!   and its reply lines (`docs/upload.md`).

pub mod addr;
pub mod bencode;
pub mod ct;
pub mod display;
#[doc(hidden)]
pub mod fuzzing;
pub mod limits;
pub mod magnet;
pub mod merkle;
pub mod metainfo;
pub mod metainfo_v2;
pub mod mse;
pub mod peer;
pub mod percent;
pub mod rng;
mod types;
pub mod upload;

pub use metainfo_v2::InfoHashV2;
pub use types::{InfoHash, ParseHashError, PeerId};
