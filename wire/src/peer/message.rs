//! Encoding of peer wire messages (BEP 3, BEP 5, BEP 6, BEP 10).

use bytes::{BufMut as _, BytesMut};

use super::{BlockRequest, Message, PIECE_HEADER_LEN, id};

impl Message {
    /// The message id, `None` for [`Message::KeepAlive`] (which has none).
    #[must_use]
    pub const fn id(&self) -> Option<u8> {
        Some(match self {
            Self::KeepAlive => return None,
            Self::Choke => id::CHOKE,
            Self::Unchoke => id::UNCHOKE,
            Self::Interested => id::INTERESTED,
            Self::NotInterested => id::NOT_INTERESTED,
            Self::Have { .. } => id::HAVE,
            Self::Bitfield(_) => id::BITFIELD,
            Self::Request(_) => id::REQUEST,
            Self::Piece { .. } => id::PIECE,
            Self::Cancel(_) => id::CANCEL,
            Self::Port(_) => id::PORT,
            Self::SuggestPiece(_) => id::SUGGEST_PIECE,
            Self::HaveAll => id::HAVE_ALL,
            Self::HaveNone => id::HAVE_NONE,
            Self::RejectRequest(_) => id::REJECT_REQUEST,
            Self::AllowedFast(_) => id::ALLOWED_FAST,
            Self::Extended { .. } => id::EXTENDED,
            Self::Unknown { id, .. } => *id,
        })
    }

    /// Appends this message, length prefix included, to `out`.
    ///
    /// # Panics
    /// When a payload makes the body longer than `u32::MAX` bytes (a programmer error: every
    /// payload this crate decodes or a seeder sends is at most [`crate::limits::MAX_FRAME_LEN`]).
    pub fn encode(&self, out: &mut BytesMut) {
        let Some(message_id) = self.id() else {
            out.put_u32(0);
            return;
        };
        match self {
            Self::KeepAlive => {}
            Self::Choke
            | Self::Unchoke
            | Self::Interested
            | Self::NotInterested
            | Self::HaveAll
            | Self::HaveNone => put_header(out, message_id, 0),
            Self::Have { piece: index } | Self::SuggestPiece(index) | Self::AllowedFast(index) => {
                put_header(out, message_id, 4);
                out.put_u32(*index);
            }
            Self::Request(r) | Self::Cancel(r) | Self::RejectRequest(r) => {
                put_header(out, message_id, 12);
                put_block_request(out, r);
            }
            Self::Port(port) => {
                put_header(out, message_id, 2);
                out.put_u16(*port);
            }
            Self::Piece {
                piece,
                begin,
                block,
            } => {
                out.reserve(PIECE_HEADER_LEN + block.len());
                out.put_slice(&piece_header(*piece, *begin, body_len(block.len(), 0)));
                out.put_slice(block);
            }
            Self::Bitfield(payload) | Self::Unknown { payload, .. } => {
                put_header(out, message_id, payload.len());
                out.put_slice(payload);
            }
            Self::Extended {
                id: extended_id,
                payload,
            } => {
                put_header(out, message_id, 1 + payload.len());
                out.put_u8(*extended_id);
                out.put_slice(payload);
            }
        }
    }
}

/// Writes the 13-byte header of a `piece` message carrying `block_len` bytes, so the block itself
/// can be sent from its own buffer (vectored write or `sendfile`) without a copy (BEP 3).
///
/// # Panics
/// When `block_len > u32::MAX - 9` (a programmer error: blocks are at most
/// [`crate::limits::MAX_BLOCK_LEN`]).
#[must_use]
pub fn piece_header(piece: u32, begin: u32, block_len: u32) -> [u8; PIECE_HEADER_LEN] {
    let len = block_len.checked_add(9).expect("block length fits a frame");
    let mut out = [0u8; PIECE_HEADER_LEN];
    out[0..4].copy_from_slice(&len.to_be_bytes());
    out[4] = id::PIECE;
    out[5..9].copy_from_slice(&piece.to_be_bytes());
    out[9..13].copy_from_slice(&begin.to_be_bytes());
    out
}

/// The body length (after the id byte) as the wire's `u32`.
fn body_len(payload_len: usize, extra: usize) -> u32 {
    payload_len
        .checked_add(extra)
        .and_then(|n| u32::try_from(n).ok())
        .expect("message body fits u32")
}

/// Writes the length prefix (`1 + payload_len`) and the id, reserving room for the payload.
fn put_header(out: &mut BytesMut, message_id: u8, payload_len: usize) {
    let len = body_len(payload_len, 1);
    out.reserve(4 + 1 + payload_len);
    out.put_u32(len);
    out.put_u8(message_id);
}

fn put_block_request(out: &mut BytesMut, r: &BlockRequest) {
    out.put_u32(r.piece);
    out.put_u32(r.begin);
    out.put_u32(r.length);
}
