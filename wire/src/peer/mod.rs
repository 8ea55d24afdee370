//! The peer wire protocol (BEP 3): handshake, messages and a zero-copy frame decoder.
//!
//! Call order on a connection: read [`HANDSHAKE_LEN`] bytes and [`Handshake::parse`] them (or feed
//! the receive buffer to [`Handshake::decode`], which refuses a wrong protocol string as soon as
//! its first wrong byte arrives), then call [`decode_frame`] on the receive buffer until it returns
//! `Ok(None)`, with the limit from [`max_frame_len`]. Any `Err` means: close the connection.
//!
//! The decoder checks only the framing: fixed-size messages have their exact size, `piece` has
//! its 8-byte header, `extended` its id byte. Everything that depends on the torrent (piece index
//! in range, bitfield length equal to `ceil(pieces / 8)` with spare bits clear, block length at
//! most [`crate::limits::MAX_BLOCK_LEN`]) is checked by the caller, which knows the torrent.
//!
//! BEP 5 `port`, BEP 6 (fast extension) and BEP 10 (extension protocol) message ids are decoded
//! too; any other id becomes [`Message::Unknown`], which BEP 3 says to ignore. That includes the
//! BEP 52 hash messages (ids 21–23): [`hashes::HashMessage::parse`] decodes them from an
//! `Unknown` message.

use bytes::Bytes;

use crate::{InfoHash, PeerId};

pub mod extension;
mod frame;
mod handshake;
pub mod hashes;
mod message;
pub mod pex;

pub use frame::{LEN_PREFIX_LEN, decode_frame, max_frame_len};
pub use message::piece_header;

/// Message ids (BEP 3; BEP 5 `port`; BEP 6 fast extension; BEP 10 `extended`; BEP 52 hash
/// messages).
pub mod id {
    /// `choke` (BEP 3).
    pub const CHOKE: u8 = 0;
    /// `unchoke` (BEP 3).
    pub const UNCHOKE: u8 = 1;
    /// `interested` (BEP 3).
    pub const INTERESTED: u8 = 2;
    /// `not interested` (BEP 3).
    pub const NOT_INTERESTED: u8 = 3;
    /// `have` (BEP 3).
    pub const HAVE: u8 = 4;
    /// `bitfield` (BEP 3).
    pub const BITFIELD: u8 = 5;
    /// `request` (BEP 3).
    pub const REQUEST: u8 = 6;
    /// `piece` (BEP 3).
    pub const PIECE: u8 = 7;
    /// `cancel` (BEP 3).
    pub const CANCEL: u8 = 8;
    /// `port` (BEP 5).
    pub const PORT: u8 = 9;
    /// `suggest piece` (BEP 6).
    pub const SUGGEST_PIECE: u8 = 13;
    /// `have all` (BEP 6).
    pub const HAVE_ALL: u8 = 14;
    /// `have none` (BEP 6).
    pub const HAVE_NONE: u8 = 15;
    /// `reject request` (BEP 6).
    pub const REJECT_REQUEST: u8 = 16;
    /// `allowed fast` (BEP 6).
    pub const ALLOWED_FAST: u8 = 17;
    /// `extended` (BEP 10).
    pub const EXTENDED: u8 = 20;
    /// `hash request` (BEP 52).
    pub const HASH_REQUEST: u8 = 21;
    /// `hashes` (BEP 52).
    pub const HASHES: u8 = 22;
    /// `hash reject` (BEP 52).
    pub const HASH_REJECT: u8 = 23;
}

/// Length of the BEP 3 handshake in bytes: 1 + 19 + 8 + 20 + 20.
pub const HANDSHAKE_LEN: usize = 68;
/// The protocol string's length byte followed by the protocol string (BEP 3).
pub const PROTOCOL_PREFIX: &[u8; 20] = b"\x13BitTorrent protocol";

/// The BEP 3 handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    /// Reserved bits, kept as received (BEP 10 bit 20 = `reserved[5] & 0x10`, BEP 6 = `[7] & 0x04`,
    /// BEP 5 DHT = `[7] & 0x01`).
    pub reserved: [u8; 8],
    /// Torrent the peer wants.
    pub info_hash: InfoHash,
    /// The peer's ID.
    pub peer_id: PeerId,
}

/// A `request`, `cancel` (and BEP 6 `reject_request`) body: a block within a piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockRequest {
    /// Piece index.
    pub piece: u32,
    /// Byte offset within the piece.
    pub begin: u32,
    /// Block length in bytes.
    pub length: u32,
}

/// One peer wire message (BEP 3; BEP 5 `port`; BEP 6 and BEP 10 ids are recognised so later work
/// can use them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Zero-length frame.
    KeepAlive,
    /// id 0.
    Choke,
    /// id 1.
    Unchoke,
    /// id 2.
    Interested,
    /// id 3.
    NotInterested,
    /// id 4.
    Have {
        /// Piece index.
        piece: u32,
    },
    /// id 5: raw bitfield bytes, high bit of the first byte is piece 0.
    Bitfield(Bytes),
    /// id 6.
    Request(BlockRequest),
    /// id 7: `block` is a slice of the receive buffer (zero copy).
    Piece {
        /// Piece index.
        piece: u32,
        /// Offset within the piece.
        begin: u32,
        /// Block payload.
        block: Bytes,
    },
    /// id 8.
    Cancel(BlockRequest),
    /// id 9 (BEP 5): the peer's DHT port.
    Port(u16),
    /// id 13 (BEP 6).
    SuggestPiece(u32),
    /// id 14 (BEP 6).
    HaveAll,
    /// id 15 (BEP 6).
    HaveNone,
    /// id 16 (BEP 6).
    RejectRequest(BlockRequest),
    /// id 17 (BEP 6).
    AllowedFast(u32),
    /// id 20 (BEP 10): extended message id and its payload.
    Extended {
        /// Extended message id (0 = extension handshake).
        id: u8,
        /// Payload after the id byte.
        payload: Bytes,
    },
    /// Any other id; ignored by callers (BEP 3 says unknown messages are ignored).
    Unknown {
        /// Message id.
        id: u8,
        /// Payload after the id byte.
        payload: Bytes,
    },
}

/// Length of a `piece` message header before the block: 4-byte length, id, index, begin.
pub const PIECE_HEADER_LEN: usize = 4 + 1 + 4 + 4;

/// Why a peer's bytes were refused; every variant means "close this connection".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The handshake's protocol string is not `\x13BitTorrent protocol`.
    #[error("bad handshake protocol string")]
    BadProtocol,
    /// A length prefix above the limit for this connection.
    #[error("frame of {len} bytes exceeds the limit of {limit}")]
    TooLong {
        /// Declared length.
        len: u32,
        /// Limit in force.
        limit: u32,
    },
    /// A known message whose body has the wrong size for its id.
    #[error("message id {id} with a body of {len} bytes")]
    BadLength {
        /// Message id.
        id: u8,
        /// Body length after the id byte.
        len: u32,
    },
}
