//! Bodies of the cargo-fuzz targets, shared with `tests/fuzz_corpus.rs` so that stable
//! `cargo test` replays the seed corpora. Not a stable API: each function panics when an
//! invariant breaks, which is what a fuzzer looks for.

use bytes::BytesMut;

use crate::bencode;
use crate::metainfo::Metainfo;
use crate::peer::{Message, decode_frame};

/// Target `wire_metainfo`: decodes `data` as bencode and as a .torrent.
///
/// Invariants: nothing panics; a torrent that parses re-parses from [`Metainfo::to_bytes`] to the
/// same info-hash and `info`; its `info` re-encoded canonically by [`Metainfo::new`] parses back
/// to the same `info`.
///
/// # Panics
/// When an invariant is broken.
pub fn metainfo(data: &[u8]) {
    if let Ok((_, used)) = bencode::decode_prefix(data) {
        assert!(used <= data.len());
        assert!(used > 0);
    }
    let _ = bencode::decode(data);
    let Ok(m) = Metainfo::from_bytes(data) else {
        return;
    };
    let again = Metainfo::from_bytes(&m.to_bytes()).expect("to_bytes re-parses");
    assert_eq!(again.info_hash, m.info_hash);
    assert_eq!(again.info, m.info);
    assert_eq!(again.info_bytes, m.info_bytes);

    let fresh = Metainfo::new(m.info, m.announce_list, m.url_list);
    let reparsed = Metainfo::from_bytes(&fresh.to_bytes()).expect("canonical info re-parses");
    assert_eq!(reparsed, fresh);
}

/// Target `wire_peer_frame`: feeds `data` as a TCP stream to [`decode_frame`].
///
/// The first byte picks the read size (1..=256 bytes), the next four (little-endian) the
/// `max_len`; the rest is the stream. Invariants: nothing panics; bytes consumed never exceed
/// bytes fed; every decoded message re-encodes to exactly the bytes it was decoded from.
///
/// # Panics
/// When an invariant is broken.
pub fn peer_frame(data: &[u8]) {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let Some((max_len, stream)) = rest.split_first_chunk::<4>() else {
        return;
    };
    let chunk = usize::from(chunk) + 1;
    let max_len = u32::from_le_bytes(*max_len);

    let mut buf = BytesMut::new();
    let mut fed = 0usize;
    let mut consumed = 0usize;
    let mut encoded = BytesMut::new();
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        fed += piece.len();
        loop {
            let before = buf.len();
            match decode_frame(&mut buf, max_len) {
                Ok(Some(message)) => {
                    let used = before - buf.len();
                    let frame = &stream[consumed..consumed + used];
                    consumed += used;
                    assert!(consumed <= fed);
                    encoded.clear();
                    message.encode(&mut encoded);
                    assert_eq!(
                        &encoded[..],
                        frame,
                        "re-encoding differs for {:?}",
                        message.id()
                    );
                    if let Message::Piece { block, .. } = &message {
                        assert!(block.len() <= crate::limits::MAX_FRAME_LEN as usize);
                    }
                }
                Ok(None) => {
                    assert_eq!(buf.len(), before, "Ok(None) consumes nothing");
                    break;
                }
                Err(_) => return,
            }
        }
        assert_eq!(consumed + buf.len(), fed);
    }
}
