//! Bodies of the cargo-fuzz targets, shared with `tests/fuzz_corpus.rs` so that stable
//! `cargo test` replays the seed corpora. Not a stable API: each function panics when an
//! invariant breaks, which is what a fuzzer looks for.

use bytes::BytesMut;

use crate::bencode;
use crate::metainfo::Metainfo;
use crate::metainfo_v2::{InfoHashV2, MetainfoV2, PieceMap};
use crate::peer::hashes::{HashMessage, HashRequest};
use crate::peer::{Message, decode_frame};

/// Target `wire_metainfo`: decodes `data` as bencode and as a .torrent (v1, v2 or hybrid).
///
/// Invariants: nothing panics; a torrent that parses re-parses from [`Metainfo::to_bytes`] to the
/// same info-hash, `info` and v2 side; a v1 torrent's `info` re-encoded canonically by
/// [`Metainfo::new`] parses back to the same `info`. For a v2 or hybrid torrent: the v2
/// info-hash is the SHA-256 of the raw `info`, the piece map covers [`Metainfo::info`]'s pieces,
/// every merkle tree the piece layers give has the file's root and answers a piece-layer
/// `hash request`, and the v2 side re-encoded canonically by [`Metainfo::new_v2`] parses back to
/// the same files and layers.
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
    assert_eq!(again.v2, m.v2);

    if let Some(v2) = &m.v2 {
        check_v2(&m, v2);
        return;
    }
    let fresh = Metainfo::new(m.info, m.announce_list, m.url_list);
    let reparsed = Metainfo::from_bytes(&fresh.to_bytes()).expect("canonical info re-parses");
    assert_eq!(reparsed, fresh);
}

/// The v2 invariants of [`metainfo`].
fn check_v2(m: &Metainfo, v2: &MetainfoV2) {
    assert_eq!(v2.info_hash, InfoHashV2::of(&m.info_bytes));
    assert_eq!(m.has_v1(), v2.hybrid);
    if !v2.hybrid {
        assert_eq!(m.info_hash, v2.info_hash.truncated());
    }
    let map = PieceMap::new(&v2.info);
    assert_eq!(map.piece_count(), m.info.piece_count());
    assert_eq!(map.piece_count(), v2.info.piece_count());
    for piece in [
        0,
        map.piece_count() / 2,
        map.piece_count().saturating_sub(1),
    ] {
        let loc = map.locate(piece).expect("every piece has a file");
        assert!(loc.data_len > 0 && loc.data_len <= v2.info.piece_length);
    }
    for (file, f) in v2.info.files.iter().enumerate() {
        let Ok(tree) = v2.merkle_tree(file) else {
            continue;
        };
        assert_eq!(Some(tree.root()), f.pieces_root);
        let Some(root) = f.pieces_root else { continue };
        let base_layer = tree.base_height();
        if base_layer < tree.height() {
            let req = HashRequest {
                pieces_root: root,
                base_layer,
                index: 0,
                length: 2,
                proof_layers: tree.height() - base_layer - 1,
            };
            let hashes = tree
                .hashes(&req, None)
                .expect("a piece-layer request is served");
            let message = HashMessage::hashes(req, &hashes);
            let mut out = BytesMut::new();
            message.encode(&mut out);
            let payload = out.freeze().slice(5..);
            assert_eq!(
                HashMessage::parse(message.id(), &payload).expect("own answer parses"),
                Some(message)
            );
        }
    }
    let fresh = Metainfo::new_v2(
        v2.info.clone(),
        v2.piece_layers.clone(),
        v2.hybrid.then(|| m.info.pieces.clone()),
        m.info.private,
        m.announce_list.clone(),
        m.url_list.clone(),
    )
    .expect("canonical v2 info re-parses");
    let fresh_v2 = fresh.v2.as_ref().expect("still v2");
    assert_eq!(fresh_v2.info, v2.info);
    assert_eq!(fresh_v2.piece_layers, v2.piece_layers);
    assert_eq!(fresh_v2.hybrid, v2.hybrid);
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
                    if let Message::Unknown { id, payload } = &message {
                        // BEP 52 hash messages arrive as `Unknown`; a parsed one re-encodes to
                        // the same frame.
                        if let Ok(Some(hash_message)) = HashMessage::parse(*id, payload) {
                            encoded.clear();
                            hash_message.encode(&mut encoded);
                            assert_eq!(&encoded[..], frame, "hash message re-encoding differs");
                        }
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

/// Target `wire_peer_extensions`: the decoders of what peers put inside `extended` messages and
/// the MSE handshake. Byte 0 picks the decoder, the rest is its input: 0 the BEP 10 extension
/// handshake, 1 a BEP 9 `ut_metadata` message, 2 a BEP 11 `ut_pex` message, 3 an MSE initiator's
/// bytes fed to a responder (in chunks of byte 1's size).
///
/// Invariants: nothing panics; a `ut_pex` message that parses re-encodes to one that parses to
/// the same peers (within the caps); a `ut_metadata` data message's offset lies within the input;
/// the MSE responder never consumes more than it is given and never answers more than once with
/// more than a public key, padding and its 14-byte reply.
///
/// # Panics
/// When an invariant is broken.
pub fn peer_extensions(data: &[u8]) {
    use crate::mse::{DH_KEY_LEN, MAX_PAD_LEN, MseResponder, MseStep};
    use crate::peer::extension::{ExtensionHandshake, MetadataMessage};
    use crate::peer::pex::{MAX_PEX_PEERS_READ, PexMessage};

    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    match selector % 4 {
        0 => {
            if let Ok(hs) = ExtensionHandshake::parse(input)
                && let Some(reqq) = hs.reqq
            {
                assert!((1..=2000).contains(&reqq), "reqq clamped");
            }
        }
        1 => {
            if let Ok(MetadataMessage::Data { data_offset, .. }) = MetadataMessage::parse(input) {
                assert!(data_offset <= input.len());
            }
        }
        2 => {
            if let Ok(msg) = PexMessage::parse(input) {
                assert!(msg.added.len() <= 2 * MAX_PEX_PEERS_READ);
                assert!(msg.dropped.len() <= 2 * MAX_PEX_PEERS_READ);
                let again = PexMessage::parse(&msg.encode()).expect("encode re-parses");
                let mut a: Vec<_> = again.added.iter().map(|(p, _)| *p).collect();
                let mut b: Vec<_> = msg.added.iter().map(|(p, _)| *p).collect();
                a.sort();
                b.sort();
                assert_eq!(a, b);
            }
        }
        _ => {
            let Some((&chunk, stream)) = input.split_first() else {
                return;
            };
            let chunk = usize::from(chunk).max(1);
            let mut responder = MseResponder::new([9; 20], &[1, 2, 3], true);
            let mut buf = BytesMut::new();
            let mut sent = 0usize;
            for piece in stream.chunks(chunk) {
                buf.extend_from_slice(piece);
                let before = buf.len();
                let step = responder.receive(&mut buf, |_| Some(crate::InfoHash([7; 20])));
                assert!(buf.len() <= before, "consumed <= fed");
                match step {
                    Ok(MseStep::NeedMore) => {}
                    Ok(MseStep::Send(out)) => sent += out.len(),
                    Ok(MseStep::Done(out, _)) => {
                        sent += out.len();
                        break;
                    }
                    Err(_) => break,
                }
            }
            assert!(sent <= DH_KEY_LEN + MAX_PAD_LEN + 14);
        }
    }
}

/// Target `wire_upload`: the upload framing fed as one buffer and again in chunks of sizes taken
/// from the data's first byte, and the reply parser.
///
/// Invariants: nothing panics; both feedings give the same answer (the decoder's state carries
/// across calls exactly); a decoded request re-encodes to the bytes it was decoded from (a file
/// or resume header line modulo a `\r`), and those decode again to the same request; the
/// remaining buffer never grows; a reply that parses re-encodes within the reply limit.
///
/// # Panics
/// When an invariant is broken.
pub fn upload(data: &[u8]) {
    use crate::upload::{Decoder, Reply, Request};

    let Some((&step, input)) = data.split_first() else {
        return;
    };
    let mut whole = BytesMut::from(input);
    let one = Decoder::new().decode(&mut whole);
    assert!(whole.len() <= input.len());

    let mut decoder = Decoder::new();
    let mut buf = BytesMut::new();
    let mut chunked = Ok(None);
    for chunk in input.chunks(usize::from(step % 64) + 1) {
        buf.extend_from_slice(chunk);
        chunked = decoder.decode(&mut buf);
        if !matches!(chunked, Ok(None)) {
            break;
        }
    }
    match (&one, &chunked) {
        (Ok(Some(a)), Ok(Some(b))) => assert_eq!(a, b),
        (Ok(None), Ok(None)) | (Err(_), Err(_)) => {}
        // A torrent followed by bytes: whole sees the trailing bytes at once, chunks may
        // return the torrent first (the next call refuses them).
        (Err(crate::upload::UploadError::TrailingBytes), Ok(Some(Request::Torrent { .. }))) => {}
        // Limits: whole input may be cut at a limit the chunks had not reached yet when an
        // earlier error stopped them, or the other way round; both are refusals.
        (a, b) => panic!("whole {a:?} vs chunked {b:?}"),
    }
    if let Ok(Some(req)) = one {
        let mut again = Vec::new();
        req.encode(&mut again);
        let mut buf = BytesMut::from(&again[..]);
        assert_eq!(Decoder::new().decode(&mut buf), Ok(Some(req)));
        assert!(buf.is_empty());
    }
    if let Ok(Some((reply, used))) = Reply::parse(input) {
        assert!(used <= input.len());
        let mut out = Vec::new();
        reply.encode(&mut out);
        assert!(out.len() <= crate::limits::MAX_UPLOAD_REPLY_LEN);
    }
}
