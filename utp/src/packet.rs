//! uTP packets (BEP 29 §Header format): a zero-copy view of the 20-byte header and its
//! extension chain, and an encoder.
//!
//! ```text
//! 0       4       8               16              24              32
//! +-------+-------+---------------+---------------+---------------+
//! | type  | ver   | extension     | connection_id                 |
//! +-------+-------+---------------+---------------+---------------+
//! | timestamp_microseconds                                        |
//! +---------------+---------------+---------------+---------------+
//! | timestamp_difference_microseconds                             |
//! +---------------+---------------+---------------+---------------+
//! | wnd_size                                                      |
//! +---------------+---------------+---------------+---------------+
//! | seq_nr                        | ack_nr                        |
//! +---------------+---------------+---------------+---------------+
//! ```
//! All fields are big-endian. Each extension is `next extension type` (1 byte), `len` (1 byte)
//! and `len` bytes; type 0 ends the chain. Extension 1 is the selective ACK; other types (such as
//! libtorrent's close reason, type 3) are skipped.
//!
//! Strictness, on purpose: BEP 29 says a selective-ACK bitmask is at least 4 bytes and a
//! multiple of 4, and that is what we send; but libtorrent sends `ceil(span / 8)` bytes (1, 2,
//! 3, ... — `utp_stream.cpp`, `send_pkt`), so any non-empty length is accepted, as libtorrent
//! accepts it. Only an empty bitmask is refused.

use thiserror::Error;

use crate::limits::{HEADER_LEN, MAX_DATAGRAM_LEN, MAX_EXTENSIONS};

/// The only protocol version: 1 (BEP 29).
pub const VERSION: u8 = 1;

/// Extension type of the selective ACK (BEP 29 §Extension).
pub const EXTENSION_SACK: u8 = 1;

/// Byte offsets of the header fields (BEP 29 §Header format).
pub mod field {
    use std::ops::Range;
    /// High nibble: type; low nibble: version.
    pub const TYPE_VER: usize = 0;
    /// Type of the first extension, 0 for none.
    pub const EXTENSION: usize = 1;
    /// `connection_id`, u16.
    pub const CONNECTION_ID: Range<usize> = 2..4;
    /// `timestamp_microseconds`, u32.
    pub const TIMESTAMP: Range<usize> = 4..8;
    /// `timestamp_difference_microseconds`, u32.
    pub const TIMESTAMP_DIFF: Range<usize> = 8..12;
    /// `wnd_size`, u32, bytes.
    pub const WND_SIZE: Range<usize> = 12..16;
    /// `seq_nr`, u16.
    pub const SEQ_NR: Range<usize> = 16..18;
    /// `ack_nr`, u16.
    pub const ACK_NR: Range<usize> = 18..20;
}

/// Packet type, the high nibble of the first byte (BEP 29 §type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// `ST_DATA` (0): carries payload, consumes a sequence number.
    Data = 0,
    /// `ST_FIN` (1): the sender's last packet, consumes a sequence number.
    Fin = 1,
    /// `ST_STATE` (2): an acknowledgement without payload; `seq_nr` is not consumed.
    State = 2,
    /// `ST_RESET` (3): terminates the connection forcefully.
    Reset = 3,
    /// `ST_SYN` (4): opens a connection, consumes a sequence number.
    Syn = 4,
}

impl PacketType {
    fn from_nibble(n: u8) -> Option<Self> {
        Some(match n {
            0 => Self::Data,
            1 => Self::Fin,
            2 => Self::State,
            3 => Self::Reset,
            4 => Self::Syn,
            _ => return None,
        })
    }
}

/// Why a datagram is not a uTP packet. Every variant is answered with silence (a counter).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PacketError {
    /// The datagram is shorter than the header or ends inside an extension.
    #[error("uTP packet truncated: {got} bytes, needed {needed}")]
    Truncated {
        /// Bytes received.
        got: usize,
        /// Bytes the header or extension chain needs.
        needed: usize,
    },
    /// The datagram is longer than [`MAX_DATAGRAM_LEN`].
    #[error("uTP datagram of {got} bytes exceeds {limit}")]
    TooLong {
        /// Bytes received.
        got: usize,
        /// The limit.
        limit: usize,
    },
    /// The version nibble is not 1.
    #[error("uTP version {got} (only 1 exists)")]
    BadVersion {
        /// The version nibble.
        got: u8,
    },
    /// The type nibble is not 0–4.
    #[error("uTP packet type {got} unknown")]
    BadType {
        /// The type nibble.
        got: u8,
    },
    /// The extension chain has more than [`MAX_EXTENSIONS`] links.
    #[error("uTP extension chain longer than {limit}")]
    TooManyExtensions {
        /// The limit.
        limit: usize,
    },
    /// A selective-ACK extension with an empty bitmask.
    #[error("uTP selective ACK of {got} bytes")]
    BadSackLen {
        /// The extension's `len` byte.
        got: usize,
    },
    /// Two selective-ACK extensions in one packet.
    #[error("uTP packet carries two selective ACKs")]
    DuplicateSack,
}

/// Tells a uTP datagram apart from DHT (`d…`, 0x64) and UDP tracker (BEP 15) datagrams on one
/// port by its first byte and length: the type nibble 0–4 and version 1 allow only 0x01, 0x11,
/// 0x21, 0x31 and 0x41, and a uTP datagram is at least [`HEADER_LEN`] bytes.
///
/// For the engine's demultiplexer: a BEP 15 request starts with the 8-byte connection id (the
/// connect request's is the constant 0x41727101980, whose first byte is 0x00), so the UDP
/// tracker must never hand out a connection id whose first byte is one of these five values;
/// the DHT's `d` (0x64) is not one of them.
#[must_use]
pub fn looks_like_utp(datagram: &[u8]) -> bool {
    datagram.len() >= HEADER_LEN && matches!(datagram[0], 0x01 | 0x11 | 0x21 | 0x31 | 0x41)
}

/// A validated, zero-copy view of one uTP packet (BEP 29 §Header format).
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    buf: &'a [u8],
    ty: PacketType,
    sack: Option<&'a [u8]>,
    payload_offset: usize,
}

fn be16(b: &[u8], r: std::ops::Range<usize>) -> u16 {
    let mut a = [0; 2];
    a.copy_from_slice(&b[r]);
    u16::from_be_bytes(a)
}

fn be32(b: &[u8], r: std::ops::Range<usize>) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[r]);
    u32::from_be_bytes(a)
}

impl<'a> Packet<'a> {
    /// Checks the header, version, type and extension chain once; the accessors cannot panic.
    ///
    /// # Errors
    /// [`PacketError`] naming what is wrong with the datagram.
    pub fn new_checked(buf: &'a [u8]) -> Result<Self, PacketError> {
        if buf.len() < HEADER_LEN {
            return Err(PacketError::Truncated {
                got: buf.len(),
                needed: HEADER_LEN,
            });
        }
        if buf.len() > MAX_DATAGRAM_LEN {
            return Err(PacketError::TooLong {
                got: buf.len(),
                limit: MAX_DATAGRAM_LEN,
            });
        }
        let tv = buf[field::TYPE_VER];
        if tv & 0x0f != VERSION {
            return Err(PacketError::BadVersion { got: tv & 0x0f });
        }
        let ty = PacketType::from_nibble(tv >> 4).ok_or(PacketError::BadType { got: tv >> 4 })?;
        let mut next = buf[field::EXTENSION];
        let mut pos = HEADER_LEN;
        let mut sack = None;
        let mut links = 0;
        while next != 0 {
            links += 1;
            if links > MAX_EXTENSIONS {
                return Err(PacketError::TooManyExtensions {
                    limit: MAX_EXTENSIONS,
                });
            }
            let (Some(&following), Some(&len)) = (buf.get(pos), buf.get(pos + 1)) else {
                return Err(PacketError::Truncated {
                    got: buf.len(),
                    needed: pos + 2,
                });
            };
            let len = usize::from(len);
            let start = pos + 2;
            let Some(body) = buf.get(start..start + len) else {
                return Err(PacketError::Truncated {
                    got: buf.len(),
                    needed: start + len,
                });
            };
            if next == EXTENSION_SACK {
                if len == 0 {
                    return Err(PacketError::BadSackLen { got: len });
                }
                if sack.is_some() {
                    return Err(PacketError::DuplicateSack);
                }
                sack = Some(body);
            }
            next = following;
            pos = start + len;
        }
        Ok(Self {
            buf,
            ty,
            sack,
            payload_offset: pos,
        })
    }

    /// The packet type.
    #[must_use]
    pub fn packet_type(&self) -> PacketType {
        self.ty
    }

    /// `connection_id`.
    #[must_use]
    pub fn connection_id(&self) -> u16 {
        be16(self.buf, field::CONNECTION_ID)
    }

    /// `timestamp_microseconds`: the sender's clock when it sent the packet, µs (wrapping).
    #[must_use]
    pub fn timestamp_us(&self) -> u32 {
        be32(self.buf, field::TIMESTAMP)
    }

    /// `timestamp_difference_microseconds`: the sender's receive time of our last packet minus
    /// that packet's timestamp, µs (wrapping); the one-way delay plus a clock offset.
    #[must_use]
    pub fn timestamp_difference_us(&self) -> u32 {
        be32(self.buf, field::TIMESTAMP_DIFF)
    }

    /// `wnd_size`: bytes the sender can still receive.
    #[must_use]
    pub fn wnd_size(&self) -> u32 {
        be32(self.buf, field::WND_SIZE)
    }

    /// `seq_nr`.
    #[must_use]
    pub fn seq_nr(&self) -> u16 {
        be16(self.buf, field::SEQ_NR)
    }

    /// `ack_nr`: the last sequence number received in order.
    #[must_use]
    pub fn ack_nr(&self) -> u16 {
        be16(self.buf, field::ACK_NR)
    }

    /// The selective-ACK bitmask, if present. Bit `j` (least significant first) of byte `i`
    /// acknowledges `ack_nr + 2 + 8 * i + j` (BEP 29 §Extension).
    #[must_use]
    pub fn sack(&self) -> Option<&'a [u8]> {
        self.sack
    }

    /// The payload after the header and extensions.
    #[must_use]
    pub fn payload(&self) -> &'a [u8] {
        &self.buf[self.payload_offset..]
    }
}

/// The header fields of a packet to encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Packet type.
    pub ty: PacketType,
    /// `connection_id`.
    pub connection_id: u16,
    /// `timestamp_microseconds`, µs.
    pub timestamp_us: u32,
    /// `timestamp_difference_microseconds`, µs.
    pub timestamp_difference_us: u32,
    /// `wnd_size`, bytes.
    pub wnd_size: u32,
    /// `seq_nr`.
    pub seq_nr: u16,
    /// `ack_nr`.
    pub ack_nr: u16,
}

/// Appends one packet to `out`: the header, a selective ACK if `sack` is given, and `payload`.
///
/// # Panics
/// If `sack` is empty, not a multiple of 4 or longer than 252 bytes (a programmer error: the
/// connection builds bitmasks of at most [`crate::limits::MAX_SACK_LEN`] bytes).
pub fn encode(out: &mut Vec<u8>, h: &Header, sack: Option<&[u8]>, payload: &[u8]) {
    out.push(((h.ty as u8) << 4) | VERSION);
    out.push(if sack.is_some() { EXTENSION_SACK } else { 0 });
    out.extend_from_slice(&h.connection_id.to_be_bytes());
    out.extend_from_slice(&h.timestamp_us.to_be_bytes());
    out.extend_from_slice(&h.timestamp_difference_us.to_be_bytes());
    out.extend_from_slice(&h.wnd_size.to_be_bytes());
    out.extend_from_slice(&h.seq_nr.to_be_bytes());
    out.extend_from_slice(&h.ack_nr.to_be_bytes());
    if let Some(mask) = sack {
        assert!(!mask.is_empty() && mask.len() % 4 == 0 && mask.len() <= 252);
        out.push(0);
        out.push(mask.len() as u8);
        out.extend_from_slice(mask);
    }
    out.extend_from_slice(payload);
}

/// Wrapping "a comes before b" for 16-bit sequence numbers (RFC 1982 serial arithmetic).
#[must_use]
pub fn seq_less(a: u16, b: u16) -> bool {
    a != b && b.wrapping_sub(a) < 0x8000
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SYN as BEP 29 §Connection setup describes it: type 4, version 1, `connection_id` the
    /// initiator's receive id, `seq_nr` 1, `ack_nr` 0.
    #[test]
    fn bep29_header_layout_vector() {
        let bytes: [u8; 20] = [
            0x41, 0x00, 0x30, 0x39, // ST_SYN, v1, no extension, connection_id 12345
            0x00, 0x01, 0xe2, 0x40, // timestamp 123456 µs
            0x00, 0x00, 0x00, 0x00, // timestamp difference 0
            0x00, 0x10, 0x00, 0x00, // wnd_size 1 MiB
            0x00, 0x01, 0x00, 0x00, // seq_nr 1, ack_nr 0
        ];
        let p = Packet::new_checked(&bytes).unwrap();
        assert_eq!(p.packet_type(), PacketType::Syn);
        assert_eq!(p.connection_id(), 12345);
        assert_eq!(p.timestamp_us(), 123_456);
        assert_eq!(p.timestamp_difference_us(), 0);
        assert_eq!(p.wnd_size(), 1 << 20);
        assert_eq!(p.seq_nr(), 1);
        assert_eq!(p.ack_nr(), 0);
        assert!(p.sack().is_none());
        assert!(p.payload().is_empty());
        let mut out = Vec::new();
        encode(
            &mut out,
            &Header {
                ty: PacketType::Syn,
                connection_id: 12345,
                timestamp_us: 123_456,
                timestamp_difference_us: 0,
                wnd_size: 1 << 20,
                seq_nr: 1,
                ack_nr: 0,
            },
            None,
            &[],
        );
        assert_eq!(out, bytes);
    }

    #[test]
    fn first_bytes_of_every_type() {
        for (ty, byte) in [
            (PacketType::Data, 0x01),
            (PacketType::Fin, 0x11),
            (PacketType::State, 0x21),
            (PacketType::Reset, 0x31),
            (PacketType::Syn, 0x41),
        ] {
            let mut out = Vec::new();
            let h = Header {
                ty,
                connection_id: 0,
                timestamp_us: 0,
                timestamp_difference_us: 0,
                wnd_size: 0,
                seq_nr: 0,
                ack_nr: 0,
            };
            encode(&mut out, &h, None, b"x");
            assert_eq!(out[0], byte);
            assert!(looks_like_utp(&out));
            assert_eq!(Packet::new_checked(&out).unwrap().packet_type(), ty);
        }
    }

    #[test]
    fn demux_rejects_dht_and_tracker_first_bytes() {
        let mut d = vec![b'd'; 40];
        assert!(!looks_like_utp(&d));
        // BEP 15 connect request: protocol id 0x41727101980 starts with 0x00.
        d[..8].copy_from_slice(&0x0417_2710_1980u64.to_be_bytes());
        assert!(!looks_like_utp(&d));
        assert!(!looks_like_utp(&[0x41; 19]), "shorter than a header");
        for b in 0..=255u8 {
            let mut p = [0u8; 20];
            p[0] = b;
            assert_eq!(
                looks_like_utp(&p),
                Packet::new_checked(&p).is_ok(),
                "{b:#x}"
            );
        }
    }

    /// BEP 29 §Extension: "the first byte represents packets [ack_nr + 2, ack_nr + 2 + 7] in
    /// reverse order": the least significant bit is ack_nr + 2.
    #[test]
    fn bep29_sack_bitmask_vector() {
        let mut out = Vec::new();
        let h = Header {
            ty: PacketType::State,
            connection_id: 7,
            timestamp_us: 0,
            timestamp_difference_us: 0,
            wnd_size: 0,
            seq_nr: 0,
            ack_nr: 100,
        };
        // ack_nr + 2 (102) and ack_nr + 2 + 9 (111) received.
        encode(&mut out, &h, Some(&[0b0000_0001, 0b0000_0010, 0, 0]), &[]);
        assert_eq!(out[1], EXTENSION_SACK);
        assert_eq!(&out[20..22], &[0, 4]);
        let p = Packet::new_checked(&out).unwrap();
        let acked: Vec<u16> = crate::connection::sack_seqs(p.ack_nr(), p.sack().unwrap()).collect();
        assert_eq!(acked, vec![102, 111]);
    }

    #[test]
    fn accepts_libtorrent_unpadded_sack_rejects_empty_and_truncation() {
        let mut base = vec![0x21, 1];
        base.extend_from_slice(&[0; 18]);
        // libtorrent sends ceil(span / 8) bytes, not a multiple of 4.
        for len in [1u8, 2, 3, 5, 255] {
            let mut p = base.clone();
            p.extend_from_slice(&[0, len]);
            p.extend(std::iter::repeat_n(0xff, usize::from(len)));
            assert_eq!(
                Packet::new_checked(&p).unwrap().sack().unwrap().len(),
                usize::from(len)
            );
        }
        let mut p = base.clone();
        p.extend_from_slice(&[0, 0]);
        assert_eq!(
            Packet::new_checked(&p).unwrap_err(),
            PacketError::BadSackLen { got: 0 }
        );
        let mut p = base.clone();
        p.extend_from_slice(&[0, 8, 1, 2]);
        assert!(matches!(
            Packet::new_checked(&p),
            Err(PacketError::Truncated { .. })
        ));
        let mut p = base.clone();
        p.push(0);
        assert!(matches!(
            Packet::new_checked(&p),
            Err(PacketError::Truncated { .. })
        ));
    }

    #[test]
    fn unknown_extensions_are_skipped_and_chain_bounded() {
        let mut p = vec![0x01, 9];
        p.extend_from_slice(&[0; 18]);
        p.extend_from_slice(&[1, 2, 0xaa, 0xbb]); // ext 9, len 2, next = sack
        p.extend_from_slice(&[0, 4, 1, 0, 0, 0]); // sack, end
        p.extend_from_slice(b"payload");
        let pk = Packet::new_checked(&p).unwrap();
        assert_eq!(pk.sack(), Some(&[1, 0, 0, 0][..]));
        assert_eq!(pk.payload(), b"payload");

        let mut p = vec![0x01, 9];
        p.extend_from_slice(&[0; 18]);
        for _ in 0..=MAX_EXTENSIONS {
            p.extend_from_slice(&[9, 0]);
        }
        assert_eq!(
            Packet::new_checked(&p).unwrap_err(),
            PacketError::TooManyExtensions {
                limit: MAX_EXTENSIONS
            }
        );
    }

    #[test]
    fn every_short_input_is_refused_without_panic() {
        for len in 0..64 {
            for fill in [0x00u8, 0x01, 0x41, 0xff] {
                let mut v = vec![fill; len];
                if len > 1 {
                    v[0] = 0x01;
                }
                let _ = Packet::new_checked(&v);
            }
        }
    }

    #[test]
    fn u16_wraparound_ordering() {
        assert!(seq_less(65535, 0));
        assert!(seq_less(65000, 100));
        assert!(!seq_less(100, 65000));
        assert!(!seq_less(5, 5));
        assert!(seq_less(0x7ffe, 0xfffd));
    }

    proptest::proptest! {
        #[test]
        fn encode_decode_round_trip(ty in 0u8..5, cid: u16, ts: u32, td: u32, wnd: u32, seq: u16,
            ack: u16, sack_words in 0usize..5, payload in proptest::collection::vec(0u8.., 0..64)) {
            let h = Header { ty: PacketType::from_nibble(ty).unwrap(), connection_id: cid,
                timestamp_us: ts, timestamp_difference_us: td, wnd_size: wnd, seq_nr: seq, ack_nr: ack };
            let mask: Vec<u8> = (0..sack_words * 4).map(|i| i as u8).collect();
            let sack = (sack_words > 0).then_some(&mask[..]);
            let mut out = Vec::new();
            encode(&mut out, &h, sack, &payload);
            let p = Packet::new_checked(&out).unwrap();
            proptest::prop_assert_eq!(p.packet_type(), h.ty);
            proptest::prop_assert_eq!(p.connection_id(), cid);
            proptest::prop_assert_eq!(p.timestamp_us(), ts);
            proptest::prop_assert_eq!(p.timestamp_difference_us(), td);
            proptest::prop_assert_eq!(p.wnd_size(), wnd);
            proptest::prop_assert_eq!(p.seq_nr(), seq);
            proptest::prop_assert_eq!(p.ack_nr(), ack);
            proptest::prop_assert_eq!(p.sack(), sack);
            proptest::prop_assert_eq!(p.payload(), &payload[..]);
        }
    }
}
