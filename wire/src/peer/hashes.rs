//! BEP 52 merkle hash messages: `hash request` (21), `hashes` (22) and `hash reject` (23).
//!
//! The frame decoder ([`crate::peer::decode_frame`]) hands these ids over as
//! [`Message::Unknown`](crate::peer::Message::Unknown), so code that matches on
//! [`Message`](crate::peer::Message) needs no new arms; a v2-aware caller turns such a message
//! into a [`HashMessage`] with [`HashMessage::parse`]:
//!
//! ```
//! # use bytes::{Bytes, BytesMut};
//! # use seednode_wire::peer::{Message, decode_frame, hashes::{HashMessage, HashRequest}};
//! let req = HashRequest {
//!     pieces_root: [7; 32],
//!     base_layer: 0,
//!     index: 0,
//!     length: 2,
//!     proof_layers: 1,
//! };
//! let mut buf = BytesMut::new();
//! HashMessage::Request(req).encode(&mut buf);
//! let Some(Message::Unknown { id, payload }) = decode_frame(&mut buf, 1 << 16).unwrap() else {
//!     panic!("hash messages decode as Unknown")
//! };
//! assert_eq!(HashMessage::parse(id, &payload).unwrap(), Some(HashMessage::Request(req)));
//! ```
//!
//! Layouts (payload after the id byte, integers big-endian `u32`): `pieces root` (32 bytes),
//! `base layer`, `index`, `length`, `proof layers` ([`HASH_REQUEST_LEN`] = 48 bytes); a `hashes`
//! message appends `length` base hashes and [`proof_hash_count`] proof hashes, 32 bytes each.
//!
//! A hybrid or v2 peer signals v2 support in the handshake with bit `0x10` of reserved byte 7
//! ([`RESERVED_V2_BYTE`], [`RESERVED_V2_MASK`]; BEP 52 §Upgrade Path).

use bytes::{BufMut as _, Bytes, BytesMut};

use crate::limits::MAX_HASH_REQUEST_LENGTH;
use crate::merkle::HASH_LEN;
use crate::peer::id;

/// Payload length of a `hash request` and a `hash reject`, and of the header of a `hashes`
/// message, in bytes: a 32-byte pieces root and four `u32`s (BEP 52 §peer messages).
pub const HASH_REQUEST_LEN: usize = HASH_LEN + 4 * 4;

/// Index of the reserved handshake byte holding the v2 bit (BEP 52 §Upgrade Path: "the 4th most
/// significant bit in the last byte of the reserved bitfield").
pub const RESERVED_V2_BYTE: usize = 7;

/// Mask of the v2 bit in [`RESERVED_V2_BYTE`].
pub const RESERVED_V2_MASK: u8 = 0x10;

/// The body shared by `hash request`, `hash reject` and the header of `hashes` (BEP 52).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashRequest {
    /// Root hash of the file (its `pieces root`).
    pub pieces_root: [u8; HASH_LEN],
    /// Height of the requested layer above the leaves (0 = leaf hashes).
    pub base_layer: u32,
    /// Offset of the first requested hash within the base layer (a multiple of `length`).
    pub index: u32,
    /// Number of base-layer hashes (a power of two).
    pub length: u32,
    /// Number of ancestor layers whose uncle hashes to include.
    pub proof_layers: u32,
}

/// A BEP 52 hash message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashMessage {
    /// id 21: please send these hashes.
    Request(HashRequest),
    /// id 22: the answer to a `hash request`.
    Hashes {
        /// The request being answered.
        request: HashRequest,
        /// `length` base-layer hashes then the proof hashes, 32 bytes each; a slice of the
        /// receive buffer (zero copy). Iterate with [`HashMessage::hash_list`].
        hashes: Bytes,
    },
    /// id 23: the peer will not answer this request.
    Reject(HashRequest),
}

/// Why a hash message was refused; each means "this peer is broken, close it".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashMessageError {
    /// A `hash request` or `hash reject` whose payload is not exactly 48 bytes, or a `hashes`
    /// message shorter than that or not a whole number of hashes after it.
    #[error("hash message id {id} with a payload of {len} bytes")]
    BadLength {
        /// Message id.
        id: u8,
        /// Payload length in bytes.
        len: usize,
    },
    /// A `hashes` message whose `length` is not a power of two in `1..=MAX_HASH_REQUEST_LENGTH`.
    #[error("hashes message with length {length}")]
    BadHashCount {
        /// Its `length` field.
        length: u32,
    },
    /// A `hashes` message carrying another number of hashes than its header implies.
    #[error("hashes message carries {got} hashes, its header implies {expected}")]
    HashCountMismatch {
        /// Hashes carried.
        got: usize,
        /// `length` + [`proof_hash_count`].
        expected: u64,
    },
}

/// Number of proof hashes in a `hashes` message answering `length` base hashes with
/// `proof_layers` proof layers: `max(0, proof_layers - log2(length) + 1)`, rounding `length` up
/// to a power of two. This is libtorrent 2.0.8's check on a received `hashes` message (its sender
/// sends one hash fewer when `length` is 1, which its own check then refuses; BEP 52 only says the
/// first `log2(length) - 1` proof layers are omitted). See
/// [`MerkleTree::hashes`](crate::merkle::MerkleTree::hashes).
#[must_use]
pub fn proof_hash_count(length: u32, proof_layers: u32) -> u64 {
    let lg = length
        .max(1)
        .checked_next_power_of_two()
        .map_or(32, u32::ilog2);
    (u64::from(proof_layers) + 1).saturating_sub(u64::from(lg))
}

impl HashMessage {
    /// Decodes the payload of message `id` when it is a BEP 52 hash message; `Ok(None)` for any
    /// other id (leave it to the caller). `payload` is what follows the id byte, as in
    /// [`Message::Unknown`](crate::peer::Message::Unknown); a `hashes` payload is sliced, not
    /// copied.
    ///
    /// # Errors
    /// [`HashMessageError`] for a payload of the wrong size for its header.
    pub fn parse(id: u8, payload: &Bytes) -> Result<Option<Self>, HashMessageError> {
        let bad_length = || HashMessageError::BadLength {
            id,
            len: payload.len(),
        };
        let message = match id {
            id::HASH_REQUEST | id::HASH_REJECT => {
                if payload.len() != HASH_REQUEST_LEN {
                    return Err(bad_length());
                }
                let request = read_request(payload).ok_or_else(bad_length)?;
                if id == id::HASH_REQUEST {
                    Self::Request(request)
                } else {
                    Self::Reject(request)
                }
            }
            id::HASHES => {
                let request = read_request(payload).ok_or_else(bad_length)?;
                let hashes = payload.slice(HASH_REQUEST_LEN..);
                if !hashes.len().is_multiple_of(HASH_LEN) {
                    return Err(bad_length());
                }
                let length = request.length;
                if length == 0 || !length.is_power_of_two() || length > MAX_HASH_REQUEST_LENGTH {
                    return Err(HashMessageError::BadHashCount { length });
                }
                let expected = u64::from(length) + proof_hash_count(length, request.proof_layers);
                let got = hashes.len() / HASH_LEN;
                if got as u64 != expected {
                    return Err(HashMessageError::HashCountMismatch { got, expected });
                }
                Self::Hashes { request, hashes }
            }
            _ => return Ok(None),
        };
        Ok(Some(message))
    }

    /// A `hashes` message answering `request` with `hashes` (as returned by
    /// [`MerkleTree::hashes`](crate::merkle::MerkleTree::hashes)), copied into one buffer.
    #[must_use]
    pub fn hashes(request: HashRequest, hashes: &[[u8; HASH_LEN]]) -> Self {
        let mut buf = BytesMut::with_capacity(hashes.len() * HASH_LEN);
        for h in hashes {
            buf.put_slice(h);
        }
        Self::Hashes {
            request,
            hashes: buf.freeze(),
        }
    }

    /// The message id (21, 22 or 23).
    #[must_use]
    pub const fn id(&self) -> u8 {
        match self {
            Self::Request(_) => id::HASH_REQUEST,
            Self::Hashes { .. } => id::HASHES,
            Self::Reject(_) => id::HASH_REJECT,
        }
    }

    /// The request this message carries or answers.
    #[must_use]
    pub const fn request(&self) -> &HashRequest {
        match self {
            Self::Request(r) | Self::Reject(r) | Self::Hashes { request: r, .. } => r,
        }
    }

    /// The 32-byte hashes of a `hashes` message, in order (base layer, then proof); empty for
    /// the other kinds.
    pub fn hash_list(&self) -> impl Iterator<Item = [u8; HASH_LEN]> + '_ {
        let bytes: &[u8] = match self {
            Self::Hashes { hashes, .. } => hashes,
            _ => &[],
        };
        bytes.chunks_exact(HASH_LEN).map(|c| {
            let mut h = [0u8; HASH_LEN];
            h.copy_from_slice(c);
            h
        })
    }

    /// Appends this message, 4-byte length prefix included, to `out`.
    ///
    /// # Panics
    /// When a `hashes` payload makes the frame longer than `u32::MAX` bytes (a programmer error:
    /// answers are at most [`crate::limits::MAX_HASHES_MESSAGE_LEN`]).
    pub fn encode(&self, out: &mut BytesMut) {
        let extra = match self {
            Self::Hashes { hashes, .. } => hashes.len(),
            _ => 0,
        };
        let body = 1 + HASH_REQUEST_LEN + extra;
        out.reserve(4 + body);
        out.put_u32(u32::try_from(body).expect("hashes message fits a frame"));
        out.put_u8(self.id());
        let r = self.request();
        out.put_slice(&r.pieces_root);
        out.put_u32(r.base_layer);
        out.put_u32(r.index);
        out.put_u32(r.length);
        out.put_u32(r.proof_layers);
        if let Self::Hashes { hashes, .. } = self {
            out.put_slice(hashes);
        }
    }
}

/// The 48-byte request header at the start of `payload`; `None` when shorter.
fn read_request(payload: &[u8]) -> Option<HashRequest> {
    let (root, rest) = payload.split_first_chunk::<HASH_LEN>()?;
    let (base_layer, rest) = rest.split_first_chunk::<4>()?;
    let (index, rest) = rest.split_first_chunk::<4>()?;
    let (length, rest) = rest.split_first_chunk::<4>()?;
    let (proof_layers, _) = rest.split_first_chunk::<4>()?;
    Some(HashRequest {
        pieces_root: *root,
        base_layer: u32::from_be_bytes(*base_layer),
        index: u32::from_be_bytes(*index),
        length: u32::from_be_bytes(*length),
        proof_layers: u32::from_be_bytes(*proof_layers),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::peer::{Message, decode_frame};

    fn req() -> HashRequest {
        HashRequest {
            pieces_root: [0xab; 32],
            base_layer: 2,
            index: 4,
            length: 4,
            proof_layers: 3,
        }
    }

    fn frame_of(message: &HashMessage) -> BytesMut {
        let mut out = BytesMut::new();
        message.encode(&mut out);
        out
    }

    #[test]
    fn bep52_hash_request_vector() {
        let bytes = frame_of(&HashMessage::Request(req()));
        let mut want = vec![0, 0, 0, 49, 21];
        want.extend([0xab; 32]);
        want.extend([0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 3]);
        assert_eq!(&bytes[..], &want[..]);
        let mut reject = want.clone();
        reject[4] = 23;
        assert_eq!(&frame_of(&HashMessage::Reject(req()))[..], &reject[..]);
    }

    #[test]
    fn proof_counts_follow_libtorrent() {
        assert_eq!(proof_hash_count(2, 0), 0);
        assert_eq!(proof_hash_count(2, 1), 1);
        assert_eq!(proof_hash_count(4, 3), 2);
        assert_eq!(proof_hash_count(512, 10), 2);
        assert_eq!(proof_hash_count(512, 3), 0);
        assert_eq!(proof_hash_count(1, 2), 3);
        assert_eq!(proof_hash_count(1, u32::MAX), 1 << 32);
        assert_eq!(proof_hash_count(u32::MAX, 0), 0);
    }

    #[test]
    fn round_trip_through_the_frame_decoder() {
        let hashes: Vec<[u8; 32]> = (0..6).map(|i| [i; 32]).collect();
        for message in [
            HashMessage::Request(req()),
            HashMessage::Reject(req()),
            HashMessage::hashes(req(), &hashes),
        ] {
            let mut buf = frame_of(&message);
            let Some(Message::Unknown { id, payload }) = decode_frame(&mut buf, 1 << 16).unwrap()
            else {
                panic!("not decoded as unknown")
            };
            let parsed = HashMessage::parse(id, &payload).unwrap().unwrap();
            assert_eq!(parsed, message);
            assert_eq!(parsed.hash_list().count(), parsed.hash_list().count());
        }
        let msg = HashMessage::hashes(req(), &hashes);
        assert_eq!(msg.hash_list().collect::<Vec<_>>(), hashes);
        assert_eq!(HashMessage::parse(20, &Bytes::new()), Ok(None));
    }

    #[test]
    fn rejects_bad_lengths() {
        let full = frame_of(&HashMessage::Request(req())).freeze().slice(5..);
        for n in 0..full.len() {
            assert_eq!(
                HashMessage::parse(21, &full.slice(..n)),
                Err(HashMessageError::BadLength { id: 21, len: n })
            );
            assert!(HashMessage::parse(22, &full.slice(..n)).is_err());
        }
        let mut long = BytesMut::from(&full[..]);
        long.put_u8(0);
        assert!(HashMessage::parse(23, &long.freeze()).is_err());
        // 4 base hashes + 2 proof hashes expected; 5 given.
        let five: Vec<[u8; 32]> = (0..5).map(|i| [i; 32]).collect();
        let msg = frame_of(&HashMessage::hashes(req(), &five)).freeze();
        assert_eq!(
            HashMessage::parse(22, &msg.slice(5..)),
            Err(HashMessageError::HashCountMismatch {
                got: 5,
                expected: 6
            })
        );
        let mut odd = BytesMut::from(&msg[5..]);
        odd.put_u8(1);
        assert!(matches!(
            HashMessage::parse(22, &odd.freeze()),
            Err(HashMessageError::BadLength { .. })
        ));
        for length in [0, 3, MAX_HASH_REQUEST_LENGTH * 2] {
            let bad = HashRequest { length, ..req() };
            let msg = frame_of(&HashMessage::hashes(bad, &[])).freeze();
            assert_eq!(
                HashMessage::parse(22, &msg.slice(5..)),
                Err(HashMessageError::BadHashCount { length })
            );
        }
    }

    proptest! {
        #[test]
        fn any_payload_never_panics(
            id in 19u8..25,
            payload in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let payload = Bytes::from(payload);
            if let Ok(Some(message)) = HashMessage::parse(id, &payload) {
                let out = frame_of(&message);
                prop_assert_eq!(&out[5..], &payload[..]);
            }
        }
    }
}
