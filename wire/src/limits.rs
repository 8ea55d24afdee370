//! Every bound on untrusted input this crate enforces, with its reason.

/// Largest block a peer may request or send, in bytes: 16 KiB, the size every client uses
/// (BEP 3; libtorrent rejects larger requests). Over it: the request is rejected.
pub const MAX_BLOCK_LEN: u32 = 16 * 1024;

/// Hard ceiling on any peer wire frame body, in bytes (libtorrent's 1 MiB). Over it: close.
pub const MAX_FRAME_LEN: u32 = 1024 * 1024;
