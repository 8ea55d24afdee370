//! Sans-IO BitTorrent wire formats.
//!
//! This crate never opens a socket, reads a clock or spawns a thread: callers hand it bytes and take
//! values (or bytes) back. Everything that parses untrusted bytes is bounded by a named constant in
//! [`limits`] and returns an error instead of panicking.
//!
//! - [`bencode`]: a lenient, bounded bencode decoder (policy documented there) and an encoder.
//! - [`metainfo`]: v1 .torrent files (BEP 3, 12, 19, 27); the info-hash is the SHA-1 of the raw
//!   `info` bytes.
//! - [`magnet`]: magnet URIs (BEP 9).
//! - [`peer`]: the peer wire protocol (BEP 3): handshake, messages, and a zero-copy frame decoder.

pub mod bencode;
#[doc(hidden)]
pub mod fuzzing;
pub mod limits;
pub mod magnet;
pub mod metainfo;
pub mod mse;
pub mod peer;
mod types;

pub use types::{InfoHash, ParseHashError, PeerId};
