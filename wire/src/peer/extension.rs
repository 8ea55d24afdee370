//! The extension protocol (BEP 10) handshake and the metadata exchange `ut_metadata` (BEP 9).
//!
//! Both ride in `extended` messages (id 20, [`super::Message::Extended`]): extended id 0 is the
//! handshake; other ids are the ones each side assigned in its handshake's `m` dictionary.

use crate::bencode::{self, DecodeError, put_bytes, put_int};

/// Extended message id of the extension handshake (BEP 10).
pub const HANDSHAKE_ID: u8 = 0;

/// The extended id we assign to `ut_metadata` in our handshake's `m` (BEP 10 lets each side pick).
pub const OUR_UT_METADATA_ID: u8 = 2;

/// Bytes per metadata piece (BEP 9: 16 KiB; the last piece may be shorter).
pub const METADATA_PIECE_LEN: usize = 16 * 1024;

/// Largest extension handshake accepted, bytes (SECURITY.md §2.7, W11). Larger: close.
pub const MAX_HANDSHAKE_LEN: usize = 16 * 1024;

/// Largest `ut_metadata` message accepted from a peer, bytes: one 16 KiB piece plus its dictionary
/// (SECURITY.md §2.7 "msg ≤ 17 KiB"). A seed only receives requests, which are far smaller.
pub const MAX_UT_METADATA_LEN: usize = METADATA_PIECE_LEN + 1024;

/// Bounds for a peer's `reqq` (its request queue length): values outside are clamped
/// (SECURITY.md W11).
pub const REQQ_RANGE: (u32, u32) = (1, 2_000);

/// A peer's extension handshake: the fields a seed uses (BEP 10).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExtensionHandshake {
    /// The peer's extended id for `ut_metadata`, if it supports it (0 in `m` means disabled).
    pub ut_metadata: Option<u8>,
    /// The peer's extended id for `ut_pex` (BEP 11), if it supports it.
    pub ut_pex: Option<u8>,
    /// Client name and version (`v`), lossily decoded, at most 64 bytes kept.
    pub client: Option<String>,
    /// The peer's request queue length (`reqq`), clamped to [`REQQ_RANGE`].
    pub reqq: Option<u32>,
    /// The peer's listen port (`p`), if it gave a valid one.
    pub listen_port: Option<u16>,
    /// The size of the info dictionary the peer has (`metadata_size`), bytes, if sane.
    pub metadata_size: Option<u64>,
}

/// Why an extension message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtensionError {
    /// Larger than its limit.
    #[error("extension message of {len} bytes exceeds {limit}")]
    TooLong {
        /// Bytes received.
        len: usize,
        /// Limit in force.
        limit: usize,
    },
    /// Not valid bencode.
    #[error("bad bencode in extension message: {0}")]
    Bencode(#[from] DecodeError),
    /// The bencode is not a dictionary, or a required key is missing or mistyped.
    #[error("extension message lacks `{0}`")]
    BadKey(&'static str),
}

impl ExtensionHandshake {
    /// Parses the payload of an extended message with id [`HANDSHAKE_ID`] (BEP 10). Unknown keys
    /// are ignored; out-of-range values are dropped or clamped, never trusted.
    ///
    /// # Errors
    /// [`ExtensionError`] when the payload is over [`MAX_HANDSHAKE_LEN`] or not a bencoded
    /// dictionary.
    pub fn parse(payload: &[u8]) -> Result<Self, ExtensionError> {
        if payload.len() > MAX_HANDSHAKE_LEN {
            return Err(ExtensionError::TooLong {
                len: payload.len(),
                limit: MAX_HANDSHAKE_LEN,
            });
        }
        let value = bencode::decode(payload)?;
        let dict = value
            .as_dict()
            .ok_or(ExtensionError::BadKey("dictionary"))?;
        let ext_id = |name: &[u8]| {
            dict.get(b"m")
                .and_then(|m| m.as_dict())
                .and_then(|m| m.get(name))
                .and_then(bencode::Value::as_int)
                .and_then(|id| u8::try_from(id).ok())
                .filter(|&id| id != 0)
        };
        let ut_metadata = ext_id(b"ut_metadata");
        let ut_pex = ext_id(b"ut_pex");
        let client = dict
            .get(b"v")
            .and_then(bencode::Value::as_bytes)
            .map(|v| String::from_utf8_lossy(&v[..v.len().min(64)]).into_owned());
        let reqq = dict.get(b"reqq").and_then(bencode::Value::as_int).map(|n| {
            u32::try_from(n.clamp(i64::from(REQQ_RANGE.0), i64::from(REQQ_RANGE.1)))
                .unwrap_or(REQQ_RANGE.0)
        });
        let listen_port = dict
            .get(b"p")
            .and_then(bencode::Value::as_int)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|&p| p != 0);
        let metadata_size = dict
            .get(b"metadata_size")
            .and_then(bencode::Value::as_int)
            .and_then(|n| u64::try_from(n).ok())
            .filter(|&n| n > 0 && n <= crate::limits::MAX_TORRENT_LEN as u64);
        Ok(Self {
            ut_metadata,
            ut_pex,
            client,
            reqq,
            listen_port,
            metadata_size,
        })
    }
}

/// Encodes our extension handshake (BEP 10): `m` maps `ut_metadata` to
/// [`OUR_UT_METADATA_ID`] when `metadata_size` is given and `ut_pex` to
/// [`super::pex::OUR_UT_PEX_ID`] when `pex` (never for private torrents, BEP 27), plus
/// `metadata_size`, `reqq`, `v` and, when known, `yourip` (the peer's address as we see it: 4 or
/// 16 bytes).
#[must_use]
pub fn encode_handshake(
    client: &str,
    reqq: u32,
    metadata_size: Option<u64>,
    pex: bool,
    yourip: Option<&[u8]>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    out.push(b'd');
    put_bytes(&mut out, b"m");
    out.push(b'd');
    if metadata_size.is_some() {
        put_bytes(&mut out, b"ut_metadata");
        put_int(&mut out, i64::from(OUR_UT_METADATA_ID));
    }
    if pex {
        put_bytes(&mut out, b"ut_pex");
        put_int(&mut out, i64::from(super::pex::OUR_UT_PEX_ID));
    }
    out.push(b'e');
    if let Some(size) = metadata_size {
        put_bytes(&mut out, b"metadata_size");
        put_int(&mut out, i64::try_from(size).unwrap_or(i64::MAX));
    }
    put_bytes(&mut out, b"reqq");
    put_int(&mut out, i64::from(reqq));
    put_bytes(&mut out, b"v");
    put_bytes(&mut out, client.as_bytes());
    if let Some(ip) = yourip {
        put_bytes(&mut out, b"yourip");
        put_bytes(&mut out, ip);
    }
    out.push(b'e');
    out
}

/// A `ut_metadata` message (BEP 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataMessage {
    /// `msg_type` 0: the peer wants metadata piece `piece`.
    Request {
        /// Metadata piece index.
        piece: u32,
    },
    /// `msg_type` 1: metadata piece `piece` follows the dictionary, `total_size` bytes in all.
    Data {
        /// Metadata piece index.
        piece: u32,
        /// Size of the whole info dictionary, bytes.
        total_size: u64,
        /// Offset in the payload where the piece's bytes start.
        data_offset: usize,
    },
    /// `msg_type` 2: the peer will not send piece `piece`.
    Reject {
        /// Metadata piece index.
        piece: u32,
    },
}

impl MetadataMessage {
    /// Parses the payload of an extended message carrying `ut_metadata` (BEP 9). Unknown
    /// `msg_type` values are an error, as is a negative or oversized piece index.
    ///
    /// # Errors
    /// [`ExtensionError`] for an oversized payload, bad bencode, or missing `msg_type`/`piece`.
    pub fn parse(payload: &[u8]) -> Result<Self, ExtensionError> {
        if payload.len() > MAX_UT_METADATA_LEN {
            return Err(ExtensionError::TooLong {
                len: payload.len(),
                limit: MAX_UT_METADATA_LEN,
            });
        }
        let (value, used) = bencode::decode_prefix(payload)?;
        let dict = value
            .as_dict()
            .ok_or(ExtensionError::BadKey("dictionary"))?;
        let int = |key: &'static str| {
            dict.get(key.as_bytes())
                .and_then(bencode::Value::as_int)
                .ok_or(ExtensionError::BadKey(key))
        };
        let piece = u32::try_from(int("piece")?).map_err(|_| ExtensionError::BadKey("piece"))?;
        match int("msg_type")? {
            0 => Ok(Self::Request { piece }),
            1 => Ok(Self::Data {
                piece,
                total_size: u64::try_from(int("total_size")?)
                    .map_err(|_| ExtensionError::BadKey("total_size"))?,
                data_offset: used,
            }),
            2 => Ok(Self::Reject { piece }),
            _ => Err(ExtensionError::BadKey("msg_type")),
        }
    }
}

/// Number of [`METADATA_PIECE_LEN`] pieces of an info dictionary of `metadata_len` bytes.
#[must_use]
pub const fn metadata_piece_count(metadata_len: usize) -> usize {
    metadata_len.div_ceil(METADATA_PIECE_LEN)
}

/// Encodes the `ut_metadata` answer to a request for `piece` of `metadata` (the raw info
/// dictionary): a `data` message with the piece's bytes, or a `reject` when the piece is out of
/// range (BEP 9).
#[must_use]
pub fn encode_metadata_reply(piece: u32, metadata: &[u8]) -> Vec<u8> {
    let start = usize::try_from(piece)
        .ok()
        .and_then(|p| p.checked_mul(METADATA_PIECE_LEN));
    let mut out = Vec::with_capacity(64);
    out.push(b'd');
    put_bytes(&mut out, b"msg_type");
    match start.filter(|&s| s < metadata.len()) {
        Some(start) => {
            let end = metadata.len().min(start + METADATA_PIECE_LEN);
            put_int(&mut out, 1);
            put_bytes(&mut out, b"piece");
            put_int(&mut out, i64::from(piece));
            put_bytes(&mut out, b"total_size");
            put_int(&mut out, i64::try_from(metadata.len()).unwrap_or(i64::MAX));
            out.push(b'e');
            out.extend_from_slice(&metadata[start..end]);
        }
        None => {
            put_int(&mut out, 2);
            put_bytes(&mut out, b"piece");
            put_int(&mut out, i64::from(piece));
            out.push(b'e');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bep10_handshake_vector() {
        // The example from BEP 10, with `p`, `v` and `reqq`, plus `metadata_size` from BEP 9.
        let payload = b"d1:md11:LT_metadatai1e7:\xc2\xb5T_PEXi2e11:ut_metadatai3ee13:metadata_sizei31235e1:pi6881e4:reqqi500e1:v13:\xc2\xb5Torrent 1.2e";
        let hs = ExtensionHandshake::parse(payload).unwrap();
        assert_eq!(hs.ut_metadata, Some(3));
        assert_eq!(hs.listen_port, Some(6881));
        assert_eq!(hs.reqq, Some(500));
        assert_eq!(hs.metadata_size, Some(31235));
        assert_eq!(hs.client.as_deref(), Some("µTorrent 1.2"));
    }

    #[test]
    fn handshake_values_are_clamped_or_dropped() {
        let hs = ExtensionHandshake::parse(
            b"d1:md11:ut_metadatai0ee13:metadata_sizei-1e1:pi70000e4:reqqi2147483648ee",
        )
        .unwrap();
        assert_eq!(hs.ut_metadata, None, "id 0 disables the extension");
        assert_eq!(hs.metadata_size, None);
        assert_eq!(hs.listen_port, None);
        assert_eq!(hs.reqq, Some(REQQ_RANGE.1));
        let hs = ExtensionHandshake::parse(b"d13:metadata_sizei1099511627776ee").unwrap();
        assert_eq!(hs.metadata_size, None, "2^40 is no metadata size");
    }

    #[test]
    fn handshake_rejects_oversize_and_non_dicts() {
        let big = vec![b'l'; MAX_HANDSHAKE_LEN + 1];
        assert!(matches!(
            ExtensionHandshake::parse(&big),
            Err(ExtensionError::TooLong { .. })
        ));
        assert!(ExtensionHandshake::parse(b"le").is_err());
        let deep = [vec![b'l'; 10_000], vec![b'e'; 10_000]].concat();
        assert!(ExtensionHandshake::parse(&deep).is_err());
    }

    #[test]
    fn our_handshake_round_trips() {
        let bytes = encode_handshake(
            "seednode/0.1.0",
            500,
            Some(40_000),
            true,
            Some(&[127, 0, 0, 1]),
        );
        assert_eq!(
            bytes,
            b"d1:md11:ut_metadatai2e6:ut_pexi1ee13:metadata_sizei40000e4:reqqi500e1:v14:seednode/0.1.06:yourip4:\x7f\0\0\x01e"
        );
        assert_eq!(ExtensionHandshake::parse(&bytes).unwrap().ut_pex, Some(1));
        let hs = ExtensionHandshake::parse(&bytes).unwrap();
        assert_eq!(
            (hs.ut_metadata, hs.metadata_size, hs.reqq),
            (Some(2), Some(40_000), Some(500))
        );
    }

    #[test]
    fn bep9_message_vectors() {
        assert_eq!(
            MetadataMessage::parse(b"d8:msg_typei0e5:piecei0ee").unwrap(),
            MetadataMessage::Request { piece: 0 }
        );
        let data = b"d8:msg_typei1e5:piecei0e10:total_sizei34256eexxxxxxxx";
        assert_eq!(
            MetadataMessage::parse(data).unwrap(),
            MetadataMessage::Data {
                piece: 0,
                total_size: 34256,
                data_offset: 45
            }
        );
        assert_eq!(
            MetadataMessage::parse(b"d8:msg_typei2e5:piecei0ee").unwrap(),
            MetadataMessage::Reject { piece: 0 }
        );
        for bad in [
            &b"d8:msg_typei0e5:piecei-1ee"[..],
            b"d8:msg_typei9e5:piecei0ee",
            b"d5:piecei0ee",
            b"i1e",
        ] {
            assert!(
                MetadataMessage::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn replies_with_pieces_and_rejects_past_the_end() {
        let metadata: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
        assert_eq!(metadata_piece_count(metadata.len()), 3);
        let last = encode_metadata_reply(2, &metadata);
        let MetadataMessage::Data {
            piece: 2,
            total_size: 40_000,
            data_offset,
        } = MetadataMessage::parse(&last).unwrap()
        else {
            panic!("data expected")
        };
        assert_eq!(&last[data_offset..], &metadata[2 * METADATA_PIECE_LEN..]);
        for past in [3, u32::MAX] {
            assert_eq!(
                MetadataMessage::parse(&encode_metadata_reply(past, &metadata)).unwrap(),
                MetadataMessage::Reject { piece: past }
            );
        }
    }
}
