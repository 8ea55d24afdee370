//! The zero-copy frame decoder: a 4-byte big-endian length, then the body (BEP 3).

use bytes::{Buf as _, Bytes, BytesMut};

use super::{BlockRequest, FrameError, Message, id};
use crate::limits::{MAX_BLOCK_LEN, MAX_EXTENDED_LEN, MAX_FRAME_LEN};

/// Length of the big-endian length prefix of every frame, in bytes (BEP 3).
pub const LEN_PREFIX_LEN: usize = 4;

/// Largest frame body (after the 4-byte length prefix) to accept from a peer of a torrent with
/// `piece_count` pieces: a `piece` with one 16 KiB block, a whole bitfield, or an extended message,
/// whichever is largest, capped by [`crate::limits::MAX_FRAME_LEN`].
///
/// That is `min(MAX_FRAME_LEN, max(1 + 8 + MAX_BLOCK_LEN, 1 + ceil(piece_count / 8),
/// 1 + MAX_EXTENDED_LEN))` bytes (security §2.7).
#[must_use]
pub fn max_frame_len(piece_count: u32) -> u32 {
    let piece = 1 + 8 + MAX_BLOCK_LEN;
    let bitfield = 1 + piece_count.div_ceil(8);
    let extended = 1 + MAX_EXTENDED_LEN;
    piece.max(bitfield).max(extended).min(MAX_FRAME_LEN)
}

/// Splits and decodes the next whole message off `buf`; `Ok(None)` means wait for more bytes.
/// `Piece`, `Bitfield`, `Extended` and `Unknown` payloads share `buf`'s allocation (zero copy).
/// The length prefix is checked against `max_len` before any memory is reserved.
///
/// `max_len` (bytes after the prefix, usually [`max_frame_len`]) is itself capped at
/// [`crate::limits::MAX_FRAME_LEN`]. While a frame is incomplete, `buf` gets room reserved for the
/// rest of it (at most that limit), so the caller can read straight into it. A `bitfield` of any
/// length is returned as is: the caller checks it against the torrent (BEP 3: wrong length or
/// spare bits set means close).
///
/// # Errors
/// [`FrameError::TooLong`] or [`FrameError::BadLength`]; the caller closes the connection.
pub fn decode_frame(buf: &mut BytesMut, max_len: u32) -> Result<Option<Message>, FrameError> {
    let limit = max_len.min(MAX_FRAME_LEN);
    let Some(prefix) = buf.first_chunk::<LEN_PREFIX_LEN>() else {
        buf.reserve(LEN_PREFIX_LEN - buf.len());
        return Ok(None);
    };
    let len = u32::from_be_bytes(*prefix);
    if len > limit {
        return Err(FrameError::TooLong { len, limit });
    }
    let body_len = usize::try_from(len).map_err(|_| FrameError::TooLong { len, limit })?;
    // body_len <= MAX_FRAME_LEN, so this cannot overflow.
    let frame_len = LEN_PREFIX_LEN + body_len;
    if buf.len() < frame_len {
        buf.reserve(frame_len - buf.len());
        return Ok(None);
    }
    buf.advance(LEN_PREFIX_LEN);
    if body_len == 0 {
        return Ok(Some(Message::KeepAlive));
    }
    parse_body(&buf.split_to(body_len).freeze()).map(Some)
}

/// Decodes a non-empty frame body (id byte first).
fn parse_body(body: &Bytes) -> Result<Message, FrameError> {
    let message_id = body[0];
    let payload_len = body.len() - 1;
    let bad_length = || FrameError::BadLength {
        id: message_id,
        len: u32::try_from(payload_len).unwrap_or(u32::MAX),
    };
    let exact = |want: usize| {
        if payload_len == want {
            Ok(())
        } else {
            Err(bad_length())
        }
    };
    let word = |at: usize| be_u32(body, at);
    let block_request = || BlockRequest {
        piece: word(1),
        begin: word(5),
        length: word(9),
    };
    Ok(match message_id {
        id::CHOKE => exact(0).map(|()| Message::Choke)?,
        id::UNCHOKE => exact(0).map(|()| Message::Unchoke)?,
        id::INTERESTED => exact(0).map(|()| Message::Interested)?,
        id::NOT_INTERESTED => exact(0).map(|()| Message::NotInterested)?,
        id::HAVE_ALL => exact(0).map(|()| Message::HaveAll)?,
        id::HAVE_NONE => exact(0).map(|()| Message::HaveNone)?,
        id::HAVE => exact(4).map(|()| Message::Have { piece: word(1) })?,
        id::SUGGEST_PIECE => exact(4).map(|()| Message::SuggestPiece(word(1)))?,
        id::ALLOWED_FAST => exact(4).map(|()| Message::AllowedFast(word(1)))?,
        id::REQUEST => exact(12).map(|()| Message::Request(block_request()))?,
        id::CANCEL => exact(12).map(|()| Message::Cancel(block_request()))?,
        id::REJECT_REQUEST => exact(12).map(|()| Message::RejectRequest(block_request()))?,
        id::PORT => {
            exact(2)?;
            Message::Port(u16::from_be_bytes([body[1], body[2]]))
        }
        id::BITFIELD => Message::Bitfield(body.slice(1..)),
        id::PIECE => {
            if payload_len < 8 {
                return Err(bad_length());
            }
            Message::Piece {
                piece: word(1),
                begin: word(5),
                block: body.slice(9..),
            }
        }
        id::EXTENDED => {
            let Some(&extended_id) = body.get(1) else {
                return Err(bad_length());
            };
            Message::Extended {
                id: extended_id,
                payload: body.slice(2..),
            }
        }
        other => Message::Unknown {
            id: other,
            payload: body.slice(1..),
        },
    })
}

/// The big-endian `u32` at `at`; callers have checked the length, so the zero fallback is
/// unreachable.
fn be_u32(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..)
        .and_then(<[u8]>::first_chunk::<4>)
        .map_or(0, |b| u32::from_be_bytes(*b))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::limits::MAX_PIECES;

    fn br(piece: u32, begin: u32, length: u32) -> BlockRequest {
        BlockRequest {
            piece,
            begin,
            length,
        }
    }

    /// Every message kind with its exact bytes (BEP 3, BEP 5, BEP 6, BEP 10).
    fn vectors() -> Vec<(Message, Vec<u8>)> {
        vec![
            (Message::KeepAlive, vec![0, 0, 0, 0]),
            (Message::Choke, vec![0, 0, 0, 1, 0]),
            (Message::Unchoke, vec![0, 0, 0, 1, 1]),
            (Message::Interested, vec![0, 0, 0, 1, 2]),
            (Message::NotInterested, vec![0, 0, 0, 1, 3]),
            (
                Message::Have { piece: 0x0102_0304 },
                vec![0, 0, 0, 5, 4, 1, 2, 3, 4],
            ),
            (
                Message::Bitfield(Bytes::from_static(&[0xff, 0x80])),
                vec![0, 0, 0, 3, 5, 0xff, 0x80],
            ),
            (
                Message::Request(br(1, 0x4000, 0x4000)),
                vec![0, 0, 0, 13, 6, 0, 0, 0, 1, 0, 0, 0x40, 0, 0, 0, 0x40, 0],
            ),
            (
                Message::Piece {
                    piece: 2,
                    begin: 16,
                    block: Bytes::from_static(b"abc"),
                },
                vec![0, 0, 0, 12, 7, 0, 0, 0, 2, 0, 0, 0, 16, b'a', b'b', b'c'],
            ),
            (
                Message::Cancel(br(7, 8, 9)),
                vec![0, 0, 0, 13, 8, 0, 0, 0, 7, 0, 0, 0, 8, 0, 0, 0, 9],
            ),
            (Message::Port(6881), vec![0, 0, 0, 3, 9, 0x1a, 0xe1]),
            (Message::SuggestPiece(5), vec![0, 0, 0, 5, 13, 0, 0, 0, 5]),
            (Message::HaveAll, vec![0, 0, 0, 1, 14]),
            (Message::HaveNone, vec![0, 0, 0, 1, 15]),
            (
                Message::RejectRequest(br(1, 2, 3)),
                vec![0, 0, 0, 13, 16, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3],
            ),
            (Message::AllowedFast(6), vec![0, 0, 0, 5, 17, 0, 0, 0, 6]),
            (
                Message::Extended {
                    id: 0,
                    payload: Bytes::from_static(b"de"),
                },
                vec![0, 0, 0, 4, 20, 0, b'd', b'e'],
            ),
            (
                Message::Unknown {
                    id: 99,
                    payload: Bytes::from_static(&[1; 10]),
                },
                [&[0, 0, 0, 11, 99][..], &[1; 10]].concat(),
            ),
        ]
    }

    fn encode(m: &Message) -> Vec<u8> {
        let mut out = BytesMut::new();
        m.encode(&mut out);
        out.to_vec()
    }

    #[test]
    fn bep3_message_vectors_encode_and_decode() {
        for (message, bytes) in vectors() {
            assert_eq!(encode(&message), bytes, "{message:?}");
            let mut buf = BytesMut::from(&bytes[..]);
            assert_eq!(
                decode_frame(&mut buf, MAX_FRAME_LEN),
                Ok(Some(message.clone()))
            );
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn piece_header_vector() {
        assert_eq!(
            piece_header_bytes(3, 0x4000, 0x4000),
            [0, 0, 0x40, 9, 7, 0, 0, 0, 3, 0, 0, 0x40, 0]
        );
    }

    fn piece_header_bytes(piece: u32, begin: u32, len: u32) -> [u8; 13] {
        super::super::piece_header(piece, begin, len)
    }

    #[test]
    fn payloads_are_zero_copy() {
        let mut buf = BytesMut::new();
        Message::Piece {
            piece: 0,
            begin: 0,
            block: Bytes::from(vec![7u8; 100]),
        }
        .encode(&mut buf);
        let start = buf.as_ptr() as usize;
        let Ok(Some(Message::Piece { block, .. })) = decode_frame(&mut buf, MAX_FRAME_LEN) else {
            panic!("piece expected");
        };
        assert_eq!(block.as_ptr() as usize, start + 13);
    }

    #[test]
    fn w3_rejects_frame_over_max_len() {
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        let cap = buf.capacity();
        assert_eq!(
            decode_frame(&mut buf, max_frame_len(100)),
            Err(FrameError::TooLong {
                len: u32::MAX,
                limit: max_frame_len(100)
            })
        );
        assert_eq!(buf.capacity(), cap, "nothing reserved for a refused frame");
        // max_len itself is capped at MAX_FRAME_LEN.
        let mut buf = BytesMut::from(&(MAX_FRAME_LEN + 1).to_be_bytes()[..]);
        assert_eq!(
            decode_frame(&mut buf, u32::MAX),
            Err(FrameError::TooLong {
                len: MAX_FRAME_LEN + 1,
                limit: MAX_FRAME_LEN
            })
        );
    }

    #[test]
    fn w10_unknown_id_ignored_then_oversized_refused() {
        let limit = max_frame_len(1000);
        let mut buf = BytesMut::from(&[0, 0, 0, 11, 99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..]);
        assert!(matches!(
            decode_frame(&mut buf, limit),
            Ok(Some(Message::Unknown { id: 99, .. }))
        ));
        let mut buf = BytesMut::from(&(2_000_000u32).to_be_bytes()[..]);
        buf.extend_from_slice(&[99]);
        assert!(matches!(
            decode_frame(&mut buf, limit),
            Err(FrameError::TooLong { .. })
        ));
    }

    #[test]
    fn incomplete_frame_reserves_only_what_is_missing() {
        let mut buf = BytesMut::from(&[0, 0, 0x40, 9, 7][..]);
        assert_eq!(decode_frame(&mut buf, MAX_FRAME_LEN), Ok(None));
        assert!(buf.capacity() >= 4 + 0x4009);
        assert_eq!(buf.len(), 5, "nothing consumed while incomplete");
    }

    #[test]
    fn bad_lengths_rejected() {
        let cases: &[(&[u8], u8, u32)] = &[
            (&[0, 0, 0, 2, 0, 0], id::CHOKE, 1),
            (&[0, 0, 0, 2, 1, 0], id::UNCHOKE, 1),
            (&[0, 0, 0, 2, 2, 0], id::INTERESTED, 1),
            (&[0, 0, 0, 2, 3, 0], id::NOT_INTERESTED, 1),
            (&[0, 0, 0, 2, 14, 0], id::HAVE_ALL, 1),
            (&[0, 0, 0, 2, 15, 0], id::HAVE_NONE, 1),
            (&[0, 0, 0, 4, 4, 0, 0, 0], id::HAVE, 3),
            (&[0, 0, 0, 6, 4, 0, 0, 0, 0, 0], id::HAVE, 5),
            (&[0, 0, 0, 1, 13], id::SUGGEST_PIECE, 0),
            (&[0, 0, 0, 3, 17, 0, 0], id::ALLOWED_FAST, 2),
            (
                &[0, 0, 0, 12, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                id::REQUEST,
                11,
            ),
            (&[0, 0, 0, 1, 8], id::CANCEL, 0),
            (
                &[0, 0, 0, 14, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                id::REJECT_REQUEST,
                13,
            ),
            (&[0, 0, 0, 2, 9, 0], id::PORT, 1),
            (&[0, 0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0], id::PIECE, 7),
            (&[0, 0, 0, 1, 20], id::EXTENDED, 0),
        ];
        for &(bytes, id, len) in cases {
            let mut buf = BytesMut::from(bytes);
            assert_eq!(
                decode_frame(&mut buf, MAX_FRAME_LEN),
                Err(FrameError::BadLength { id, len }),
                "{bytes:?}"
            );
        }
        // Empty bitfield and empty piece block are framing-valid.
        let mut buf = BytesMut::from(&[0, 0, 0, 1, 5, 0, 0, 0, 9, 7, 0, 0, 0, 0, 0, 0, 0, 0][..]);
        assert_eq!(
            decode_frame(&mut buf, MAX_FRAME_LEN),
            Ok(Some(Message::Bitfield(Bytes::new())))
        );
        assert!(matches!(
            decode_frame(&mut buf, MAX_FRAME_LEN),
            Ok(Some(Message::Piece { .. }))
        ));
    }

    #[test]
    fn split_across_reads_byte_by_byte() {
        let stream: Vec<u8> = vectors().iter().flat_map(|(_, b)| b.clone()).collect();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for &b in &stream {
            buf.extend_from_slice(&[b]);
            while let Some(m) = decode_frame(&mut buf, MAX_FRAME_LEN).unwrap() {
                got.push(m);
            }
        }
        let want: Vec<Message> = vectors().into_iter().map(|(m, _)| m).collect();
        assert_eq!(got, want);
        assert!(buf.is_empty());
    }

    #[test]
    fn short_input_sweep_never_panics() {
        for (message, bytes) in vectors() {
            for n in 0..bytes.len() {
                let mut buf = BytesMut::from(&bytes[..n]);
                assert_eq!(
                    decode_frame(&mut buf, MAX_FRAME_LEN),
                    Ok(None),
                    "{message:?} cut at {n}"
                );
                assert_eq!(buf.len(), n);
            }
        }
        // Every id with every short body length, behind a truthful length prefix.
        for message_id in 0..=u8::MAX {
            for body in 0..16usize {
                let mut bytes = (u32::try_from(body + 1).unwrap()).to_be_bytes().to_vec();
                bytes.push(message_id);
                bytes.extend(std::iter::repeat_n(0xa5, body));
                let mut buf = BytesMut::from(&bytes[..]);
                let _ = decode_frame(&mut buf, MAX_FRAME_LEN);
            }
        }
    }

    #[test]
    fn max_frame_len_formula() {
        // Small torrents: the extended message limit dominates.
        assert_eq!(max_frame_len(0), 1 + MAX_EXTENDED_LEN);
        assert_eq!(max_frame_len(8 * 65_536), 1 + MAX_EXTENDED_LEN);
        assert_eq!(max_frame_len(8 * 65_536 + 1), 1 + 65_537);
        // MAX_PIECES pieces: a 256 KiB bitfield.
        assert_eq!(max_frame_len(MAX_PIECES), 1 + MAX_PIECES / 8);
        assert_eq!(max_frame_len(u32::MAX), MAX_FRAME_LEN);
        assert!(max_frame_len(1) >= 1 + 8 + MAX_BLOCK_LEN);
    }

    fn arb_request() -> impl Strategy<Value = BlockRequest> {
        (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(p, b, l)| br(p, b, l))
    }

    fn arb_bytes() -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from)
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        prop_oneof![
            Just(Message::KeepAlive),
            Just(Message::Choke),
            Just(Message::Unchoke),
            Just(Message::Interested),
            Just(Message::NotInterested),
            Just(Message::HaveAll),
            Just(Message::HaveNone),
            any::<u32>().prop_map(|piece| Message::Have { piece }),
            arb_bytes().prop_map(Message::Bitfield),
            arb_request().prop_map(Message::Request),
            (any::<u32>(), any::<u32>(), arb_bytes()).prop_map(|(piece, begin, block)| {
                Message::Piece {
                    piece,
                    begin,
                    block,
                }
            }),
            arb_request().prop_map(Message::Cancel),
            any::<u16>().prop_map(Message::Port),
            any::<u32>().prop_map(Message::SuggestPiece),
            arb_request().prop_map(Message::RejectRequest),
            any::<u32>().prop_map(Message::AllowedFast),
            (any::<u8>(), arb_bytes()).prop_map(|(id, payload)| Message::Extended { id, payload }),
            (21u8.., arb_bytes()).prop_map(|(id, payload)| Message::Unknown { id, payload }),
        ]
    }

    proptest! {
        #[test]
        fn decode_encode_round_trip(messages in proptest::collection::vec(arb_message(), 1..8), chunk in 1usize..32) {
            let mut stream = BytesMut::new();
            for m in &messages {
                m.encode(&mut stream);
            }
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                buf.extend_from_slice(piece);
                while let Some(m) = decode_frame(&mut buf, MAX_FRAME_LEN).unwrap() {
                    got.push(m);
                }
            }
            prop_assert_eq!(got, messages);
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128), max_len in any::<u32>()) {
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = decode_frame(&mut buf, max_len) {}
            prop_assert!(buf.len() <= bytes.len());
        }
    }
}
