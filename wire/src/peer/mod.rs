//! The peer wire protocol (BEP 3): handshake, messages and a zero-copy frame decoder.
//! CONTRACT SKELETON: bodies are filled in by the wire work.

use bytes::{Bytes, BytesMut};

use crate::{InfoHash, PeerId};

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

impl Handshake {
    /// Parses the 68-byte handshake.
    ///
    /// # Errors
    /// [`FrameError::BadProtocol`] when the first 20 bytes are not [`PROTOCOL_PREFIX`].
    pub fn parse(_bytes: &[u8; HANDSHAKE_LEN]) -> Result<Self, FrameError> {
        todo!("wire work")
    }

    /// Encodes the 68-byte handshake.
    #[must_use]
    pub fn encode(&self) -> [u8; HANDSHAKE_LEN] {
        todo!("wire work")
    }
}

impl Message {
    /// Appends this message, length prefix included, to `out`.
    pub fn encode(&self, _out: &mut BytesMut) {
        todo!("wire work")
    }
}

/// Writes the 13-byte header of a `piece` message carrying `block_len` bytes, so the block itself
/// can be sent from its own buffer (vectored write or `sendfile`) without a copy.
#[must_use]
pub fn piece_header(_piece: u32, _begin: u32, _block_len: u32) -> [u8; PIECE_HEADER_LEN] {
    todo!("wire work")
}

/// Largest frame body (after the 4-byte length prefix) to accept from a peer of a torrent with
/// `piece_count` pieces: a `piece` with one 16 KiB block, a whole bitfield, or an extended message,
/// whichever is largest, capped by [`crate::limits::MAX_FRAME_LEN`].
#[must_use]
pub fn max_frame_len(_piece_count: u32) -> u32 {
    todo!("wire work")
}

/// Splits and decodes the next whole message off `buf`; `Ok(None)` means wait for more bytes.
/// `Piece`, `Bitfield`, `Extended` and `Unknown` payloads share `buf`'s allocation (zero copy).
/// The length prefix is checked against `max_len` before any memory is reserved.
///
/// # Errors
/// [`FrameError::TooLong`] or [`FrameError::BadLength`]; the caller closes the connection.
pub fn decode_frame(_buf: &mut BytesMut, _max_len: u32) -> Result<Option<Message>, FrameError> {
    todo!("wire work")
}
