//! The 68-byte BEP 3 handshake, read as a fixed-layout view.

use bytes::{Buf as _, BytesMut};

use super::{FrameError, HANDSHAKE_LEN, Handshake, PROTOCOL_PREFIX};
use crate::{InfoHash, PeerId};

/// Byte ranges of the handshake fields (BEP 3).
mod field {
    use std::ops::Range;

    /// Length byte and protocol string.
    pub(super) const PROTOCOL: Range<usize> = 0..20;
    /// Reserved extension bits.
    pub(super) const RESERVED: Range<usize> = 20..28;
    /// Info-hash.
    pub(super) const INFO_HASH: Range<usize> = 28..48;
    /// Peer ID.
    pub(super) const PEER_ID: Range<usize> = 48..68;
}

impl Handshake {
    /// Reserved byte and mask of the BEP 10 extension protocol bit (bit 20 from the right).
    pub const EXTENSION_PROTOCOL_BIT: (usize, u8) = (5, 0x10);
    /// Reserved byte and mask of the BEP 6 fast extension bit.
    pub const FAST_EXTENSION_BIT: (usize, u8) = (7, 0x04);
    /// Reserved byte and mask of the BEP 5 DHT bit.
    pub const DHT_BIT: (usize, u8) = (7, 0x01);

    /// Parses the 68-byte handshake.
    ///
    /// # Errors
    /// [`FrameError::BadProtocol`] when the first 20 bytes are not [`PROTOCOL_PREFIX`].
    pub fn parse(bytes: &[u8; HANDSHAKE_LEN]) -> Result<Self, FrameError> {
        if bytes[field::PROTOCOL] != PROTOCOL_PREFIX[..] {
            return Err(FrameError::BadProtocol);
        }
        let mut reserved = [0u8; 8];
        reserved.copy_from_slice(&bytes[field::RESERVED]);
        let mut info_hash = [0u8; 20];
        info_hash.copy_from_slice(&bytes[field::INFO_HASH]);
        let mut peer_id = [0u8; 20];
        peer_id.copy_from_slice(&bytes[field::PEER_ID]);
        Ok(Self {
            reserved,
            info_hash: InfoHash(info_hash),
            peer_id: PeerId(peer_id),
        })
    }

    /// Takes a handshake off the front of a receive buffer; `Ok(None)` means wait for more bytes.
    /// A wrong protocol string is refused as soon as its first wrong byte is in `buf`, without
    /// waiting for all 68 bytes (security row W1).
    ///
    /// # Errors
    /// [`FrameError::BadProtocol`]; the caller closes the connection.
    pub fn decode(buf: &mut BytesMut) -> Result<Option<Self>, FrameError> {
        let seen = buf.len().min(PROTOCOL_PREFIX.len());
        if buf[..seen] != PROTOCOL_PREFIX[..seen] {
            return Err(FrameError::BadProtocol);
        }
        let Some(bytes) = buf.first_chunk::<HANDSHAKE_LEN>() else {
            buf.reserve(HANDSHAKE_LEN - buf.len());
            return Ok(None);
        };
        let handshake = Self::parse(bytes)?;
        buf.advance(HANDSHAKE_LEN);
        Ok(Some(handshake))
    }

    /// Encodes the 68-byte handshake.
    #[must_use]
    pub fn encode(&self) -> [u8; HANDSHAKE_LEN] {
        let mut out = [0u8; HANDSHAKE_LEN];
        out[field::PROTOCOL].copy_from_slice(PROTOCOL_PREFIX);
        out[field::RESERVED].copy_from_slice(&self.reserved);
        out[field::INFO_HASH].copy_from_slice(self.info_hash.as_bytes());
        out[field::PEER_ID].copy_from_slice(self.peer_id.as_bytes());
        out
    }

    /// Reserved bytes announcing the given extensions (BEP 10, BEP 6, BEP 5), all other bits zero.
    #[must_use]
    pub const fn reserved_bits(extension_protocol: bool, fast: bool, dht: bool) -> [u8; 8] {
        let mut reserved = [0u8; 8];
        if extension_protocol {
            reserved[Self::EXTENSION_PROTOCOL_BIT.0] |= Self::EXTENSION_PROTOCOL_BIT.1;
        }
        if fast {
            reserved[Self::FAST_EXTENSION_BIT.0] |= Self::FAST_EXTENSION_BIT.1;
        }
        if dht {
            reserved[Self::DHT_BIT.0] |= Self::DHT_BIT.1;
        }
        reserved
    }

    /// True when the peer supports the BEP 10 extension protocol.
    #[must_use]
    pub const fn supports_extension_protocol(&self) -> bool {
        self.reserved[Self::EXTENSION_PROTOCOL_BIT.0] & Self::EXTENSION_PROTOCOL_BIT.1 != 0
    }

    /// True when the peer supports the BEP 6 fast extension.
    #[must_use]
    pub const fn supports_fast_extension(&self) -> bool {
        self.reserved[Self::FAST_EXTENSION_BIT.0] & Self::FAST_EXTENSION_BIT.1 != 0
    }

    /// True when the peer runs a BEP 5 DHT node.
    #[must_use]
    pub const fn supports_dht(&self) -> bool {
        self.reserved[Self::DHT_BIT.0] & Self::DHT_BIT.1 != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector() -> [u8; HANDSHAKE_LEN] {
        let mut v = [0u8; HANDSHAKE_LEN];
        v[..20].copy_from_slice(b"\x13BitTorrent protocol");
        v[20..28].copy_from_slice(&[0, 0, 0, 0, 0, 0x10, 0, 0x05]);
        v[28..48].copy_from_slice(&[0xaa; 20]);
        v[48..68].copy_from_slice(b"-SN0001-abcdefghijkl");
        v
    }

    #[test]
    fn bep3_handshake_vector() {
        let h = Handshake::parse(&vector()).unwrap();
        assert_eq!(h.reserved, [0, 0, 0, 0, 0, 0x10, 0, 0x05]);
        assert_eq!(h.info_hash, InfoHash([0xaa; 20]));
        assert_eq!(&h.peer_id.0, b"-SN0001-abcdefghijkl");
        assert!(h.supports_extension_protocol() && h.supports_fast_extension() && h.supports_dht());
        assert_eq!(h.encode(), vector());
        assert_eq!(Handshake::reserved_bits(true, true, true), h.reserved);
        assert_eq!(Handshake::reserved_bits(false, false, false), [0; 8]);
    }

    #[test]
    fn reserved_bits_kept_verbatim() {
        let mut v = vector();
        v[20..28].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04]);
        let h = Handshake::parse(&v).unwrap();
        assert_eq!(h.encode(), v);
    }

    #[test]
    fn w1_bad_protocol_rejected() {
        for pstrlen in [0u8, 18, 255] {
            let mut v = vector();
            v[0] = pstrlen;
            assert_eq!(Handshake::parse(&v), Err(FrameError::BadProtocol));
        }
        let mut v = vector();
        v[5] = b'x';
        assert_eq!(Handshake::parse(&v), Err(FrameError::BadProtocol));
    }

    #[test]
    fn decode_waits_then_takes_68_bytes() {
        let v = vector();
        let mut buf = BytesMut::new();
        for (i, &b) in v.iter().enumerate() {
            assert_eq!(Handshake::decode(&mut buf), Ok(None), "after {i} bytes");
            buf.extend_from_slice(&[b]);
        }
        buf.extend_from_slice(b"rest");
        assert_eq!(
            Handshake::decode(&mut buf).unwrap(),
            Some(Handshake::parse(&v).unwrap())
        );
        assert_eq!(&buf[..], b"rest");
    }

    #[test]
    fn decode_refuses_wrong_protocol_early() {
        let mut buf = BytesMut::from(&b"\x12"[..]);
        assert_eq!(Handshake::decode(&mut buf), Err(FrameError::BadProtocol));
        let mut buf = BytesMut::from(&b"\x13BitTorrent proto_"[..]);
        assert_eq!(Handshake::decode(&mut buf), Err(FrameError::BadProtocol));
    }
}
