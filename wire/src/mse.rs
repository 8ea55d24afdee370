//! Message Stream Encryption (MSE/PE), the receiving side: the obfuscated handshake that aria2c,
//! libtorrent and Transmission try before (or instead of) the plain BEP 3 handshake.
//!
//! The de facto specification is Vuze's "Message Stream Encryption" page; libtorrent's
//! `bt_peer_connection` is the reference implementation. Sans-IO: the caller feeds received bytes
//! and sends what [`MseResponder::receive`] returns; randomness (the private key, the padding) is
//! passed in.
//!
//! ```text
//! A -> B  Ya (96 bytes), PadA (0..=512)
//! B -> A  Yb (96 bytes), PadB (0..=512)
//! A -> B  HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S),
//!         RC4a(VC, crypto_provide, len(PadC), PadC, len(IA)), RC4a(IA)
//! B -> A  RC4b(VC, crypto_select, len(PadD), PadD), then the payload stream
//! ```
//!
//! `S` is the Diffie-Hellman secret over the 768-bit MODP prime with generator 2, `SKEY` the
//! info-hash, `HASH` SHA-1, RC4 keys `SHA1('keyA' | S | SKEY)` (A to B) and `SHA1('keyB' | S |
//! SKEY)` (B to A) with the first 1024 bytes of keystream discarded. `IA`, the initial payload
//! (usually the BEP 3 handshake), is always RC4-encrypted. When plaintext is selected, the stream
//! after `PadD` is plain in both directions, so block payloads can still be sent with
//! `sendfile`.

use bytes::{Buf, BytesMut};
use num_bigint::BigUint;
use sha1::{Digest, Sha1};

use crate::InfoHash;

/// Length of a Diffie-Hellman public key, bytes (768 bits).
pub const DH_KEY_LEN: usize = 96;

/// Length of a private key, bytes (the spec asks for at least 128 bits; libtorrent uses 160).
pub const PRIVATE_KEY_LEN: usize = 20;

/// Longest padding a side may send (the spec's PadA..PadD limit), bytes.
pub const MAX_PAD_LEN: usize = 512;

/// Longest initial payload (IA) accepted, bytes: one BEP 3 handshake, as libtorrent allows.
pub const MAX_IA_LEN: usize = 68;

/// `crypto_provide` / `crypto_select` bit: plaintext after the handshake.
pub const CRYPTO_PLAINTEXT: u32 = 0x01;

/// `crypto_provide` / `crypto_select` bit: RC4 for the whole stream.
pub const CRYPTO_RC4: u32 = 0x02;

/// The 768-bit MODP prime P (the "Oakley group 1" prime), big-endian.
const PRIME: [u8; DH_KEY_LEN] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xC9, 0x0F, 0xDA, 0xA2, 0x21, 0x68, 0xC2, 0x34,
    0xC4, 0xC6, 0x62, 0x8B, 0x80, 0xDC, 0x1C, 0xD1, 0x29, 0x02, 0x4E, 0x08, 0x8A, 0x67, 0xCC, 0x74,
    0x02, 0x0B, 0xBE, 0xA6, 0x3B, 0x13, 0x9B, 0x22, 0x51, 0x4A, 0x08, 0x79, 0x8E, 0x34, 0x04, 0xDD,
    0xEF, 0x95, 0x19, 0xB3, 0xCD, 0x3A, 0x43, 0x1B, 0x30, 0x2B, 0x0A, 0x6D, 0xF2, 0x5F, 0x14, 0x37,
    0x4F, 0xE1, 0x35, 0x6D, 0x6D, 0x51, 0xC2, 0x45, 0xE4, 0x85, 0xB5, 0x76, 0x62, 0x5E, 0x7E, 0xC6,
    0xF4, 0x4C, 0x42, 0xE9, 0xA6, 0x3A, 0x36, 0x21, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, 0x05, 0x63,
];

/// The RC4 stream cipher, as MSE uses it.
#[derive(Clone)]
pub struct Rc4 {
    s: [u8; 256],
    i: u8,
    j: u8,
}

impl Rc4 {
    /// A cipher keyed with `key`, the first 1024 keystream bytes already discarded (MSE).
    #[must_use]
    pub fn new(key: &[u8]) -> Self {
        let mut s = [0u8; 256];
        for (i, b) in s.iter_mut().enumerate() {
            *b = i as u8;
        }
        let mut j = 0u8;
        for i in 0..256 {
            j = j.wrapping_add(s[i]).wrapping_add(key[i % key.len()]);
            s.swap(i, usize::from(j));
        }
        let mut rc4 = Self { s, i: 0, j: 0 };
        rc4.apply(&mut [0u8; 1024]);
        rc4
    }

    /// Encrypts or decrypts `data` in place.
    pub fn apply(&mut self, data: &mut [u8]) {
        for b in data {
            self.i = self.i.wrapping_add(1);
            self.j = self.j.wrapping_add(self.s[usize::from(self.i)]);
            self.s.swap(usize::from(self.i), usize::from(self.j));
            let k = self.s[usize::from(
                self.s[usize::from(self.i)].wrapping_add(self.s[usize::from(self.j)]),
            )];
            *b ^= k;
        }
    }
}

impl std::fmt::Debug for Rc4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rc4(..)")
    }
}

/// `HASH('req2', SKEY)`: how an initiator names a torrent without revealing its info-hash. The
/// responder keeps these per torrent to recognise the request.
#[must_use]
pub fn req2_hash(info_hash: &InfoHash) -> [u8; 20] {
    sha1_of(&[b"req2", info_hash.as_bytes()])
}

fn sha1_of(parts: &[&[u8]]) -> [u8; 20] {
    let mut h = Sha1::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Why an MSE handshake failed; the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MseError {
    /// No `HASH('req1', S)` within the padding limit: not an MSE initiator (or garbage).
    #[error("no MSE synchronisation hash within {0} bytes")]
    NoSync(usize),
    /// The obfuscated info-hash names no torrent we seed.
    #[error("MSE request for an unknown torrent")]
    UnknownTorrent,
    /// The verification constant did not decrypt to zeros.
    #[error("bad MSE verification constant")]
    BadVerificationConstant,
    /// A padding or initial payload longer than allowed.
    #[error("MSE {field} of {len} bytes exceeds {limit}")]
    TooLong {
        /// `PadC` or `IA`.
        field: &'static str,
        /// Declared length.
        len: usize,
        /// Limit.
        limit: usize,
    },
    /// The initiator offers no method we accept.
    #[error("no acceptable MSE crypto method (offered {0:#x})")]
    NoCommonMethod(u32),
    /// The public key is 0, 1 or not below P.
    #[error("bad MSE public key")]
    BadPublicKey,
}

/// The outcome of an MSE handshake.
#[derive(Debug)]
pub struct Established {
    /// The torrent the initiator asked for.
    pub info_hash: InfoHash,
    /// The decrypted initial payload (the start of the peer's BEP 3 handshake, usually).
    pub initial_payload: Vec<u8>,
    /// `None` for plaintext; otherwise the ciphers for the rest of the stream (receive, send).
    pub rc4: Option<(Rc4, Rc4)>,
}

#[derive(Debug)]
enum State {
    /// Waiting for Ya.
    PublicKey,
    /// Yb sent; looking for HASH('req1', S).
    Sync { secret: [u8; DH_KEY_LEN] },
    /// Reading RC4a(VC, crypto_provide, len(PadC)).
    Header {
        info_hash: InfoHash,
        recv: Rc4,
        send: Rc4,
    },
    /// Reading RC4a(PadC, len(IA)).
    Pad {
        info_hash: InfoHash,
        recv: Rc4,
        send: Rc4,
        provide: u32,
        pad_len: usize,
    },
    /// Reading RC4a(IA).
    Payload {
        info_hash: InfoHash,
        recv: Rc4,
        send: Rc4,
        provide: u32,
        ia_len: usize,
    },
    /// Finished or failed.
    Done,
}

/// The responder's side of an MSE handshake.
#[derive(Debug)]
pub struct MseResponder {
    private: BigUint,
    pad: Vec<u8>,
    allow_plaintext: bool,
    state: State,
}

/// What [`MseResponder::receive`] asks the caller to do.
#[derive(Debug)]
pub enum MseStep {
    /// Wait for more bytes.
    NeedMore,
    /// Send these bytes, then wait for more.
    Send(Vec<u8>),
    /// Send these bytes; the handshake is complete and the remaining input is the payload
    /// stream.
    Done(Vec<u8>, Box<Established>),
}

impl MseResponder {
    /// A responder with a `private_key` and `pad` (at most [`MAX_PAD_LEN`] random bytes, sent
    /// after Yb) drawn by the caller. With `allow_plaintext` it selects plaintext whenever the
    /// initiator offers it, else RC4.
    #[must_use]
    pub fn new(private_key: [u8; PRIVATE_KEY_LEN], pad: &[u8], allow_plaintext: bool) -> Self {
        Self {
            private: BigUint::from_bytes_be(&private_key),
            pad: pad[..pad.len().min(MAX_PAD_LEN)].to_vec(),
            allow_plaintext,
            state: State::PublicKey,
        }
    }

    /// Consumes handshake bytes from `input` (leaving what follows the handshake there) and says
    /// what to do. `lookup` maps a `req2` hash (see [`req2_hash`]) to a torrent we seed.
    ///
    /// # Errors
    /// [`MseError`]; the caller closes the connection.
    pub fn receive(
        &mut self,
        input: &mut BytesMut,
        lookup: impl Fn(&[u8; 20]) -> Option<InfoHash>,
    ) -> Result<MseStep, MseError> {
        let mut out = Vec::new();
        loop {
            match std::mem::replace(&mut self.state, State::Done) {
                State::PublicKey => {
                    if input.len() < DH_KEY_LEN {
                        self.state = State::PublicKey;
                        return Ok(step(out));
                    }
                    let prime = BigUint::from_bytes_be(&PRIME);
                    let theirs = BigUint::from_bytes_be(&input[..DH_KEY_LEN]);
                    if theirs <= BigUint::from(1u8) || theirs >= prime {
                        return Err(MseError::BadPublicKey);
                    }
                    input.advance(DH_KEY_LEN);
                    let ours = BigUint::from(2u8).modpow(&self.private, &prime);
                    let secret = left_pad(&theirs.modpow(&self.private, &prime));
                    out.extend_from_slice(&left_pad(&ours));
                    out.extend_from_slice(&self.pad);
                    self.state = State::Sync { secret };
                }
                State::Sync { secret } => {
                    let sync = sha1_of(&[b"req1", &secret]);
                    let Some(at) = input.windows(20).position(|w| w == sync) else {
                        // PadA is at most 512 bytes, so the hash must start by then.
                        if input.len() >= MAX_PAD_LEN + 20 {
                            return Err(MseError::NoSync(MAX_PAD_LEN));
                        }
                        self.state = State::Sync { secret };
                        return Ok(step(out));
                    };
                    if input.len() < at + 40 {
                        self.state = State::Sync { secret };
                        return Ok(step(out));
                    }
                    input.advance(at + 20);
                    let mut req2 = sha1_of(&[b"req3", &secret]);
                    for (r, x) in req2.iter_mut().zip(&input[..20]) {
                        *r ^= x;
                    }
                    input.advance(20);
                    let info_hash = lookup(&req2).ok_or(MseError::UnknownTorrent)?;
                    let ih = info_hash.as_bytes();
                    let recv = Rc4::new(&sha1_of(&[b"keyA", &secret, ih]));
                    let send = Rc4::new(&sha1_of(&[b"keyB", &secret, ih]));
                    self.state = State::Header {
                        info_hash,
                        recv,
                        send,
                    };
                }
                State::Header {
                    info_hash,
                    mut recv,
                    send,
                } => {
                    if input.len() < 14 {
                        self.state = State::Header {
                            info_hash,
                            recv,
                            send,
                        };
                        return Ok(step(out));
                    }
                    let mut header = [0u8; 14];
                    header.copy_from_slice(&input[..14]);
                    input.advance(14);
                    recv.apply(&mut header);
                    if header[..8] != [0; 8] {
                        return Err(MseError::BadVerificationConstant);
                    }
                    let provide =
                        u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
                    let pad_len = usize::from(u16::from_be_bytes([header[12], header[13]]));
                    if pad_len > MAX_PAD_LEN {
                        return Err(MseError::TooLong {
                            field: "PadC",
                            len: pad_len,
                            limit: MAX_PAD_LEN,
                        });
                    }
                    self.state = State::Pad {
                        info_hash,
                        recv,
                        send,
                        provide,
                        pad_len,
                    };
                }
                State::Pad {
                    info_hash,
                    mut recv,
                    send,
                    provide,
                    pad_len,
                } => {
                    if input.len() < pad_len + 2 {
                        self.state = State::Pad {
                            info_hash,
                            recv,
                            send,
                            provide,
                            pad_len,
                        };
                        return Ok(step(out));
                    }
                    let mut pad = input.split_to(pad_len + 2);
                    recv.apply(&mut pad);
                    let ia_len = usize::from(u16::from_be_bytes([pad[pad_len], pad[pad_len + 1]]));
                    if ia_len > MAX_IA_LEN {
                        return Err(MseError::TooLong {
                            field: "IA",
                            len: ia_len,
                            limit: MAX_IA_LEN,
                        });
                    }
                    self.state = State::Payload {
                        info_hash,
                        recv,
                        send,
                        provide,
                        ia_len,
                    };
                }
                State::Payload {
                    info_hash,
                    mut recv,
                    mut send,
                    provide,
                    ia_len,
                } => {
                    if input.len() < ia_len {
                        self.state = State::Payload {
                            info_hash,
                            recv,
                            send,
                            provide,
                            ia_len,
                        };
                        return Ok(step(out));
                    }
                    let mut initial_payload = input.split_to(ia_len).to_vec();
                    recv.apply(&mut initial_payload);
                    let select = if self.allow_plaintext && provide & CRYPTO_PLAINTEXT != 0 {
                        CRYPTO_PLAINTEXT
                    } else if provide & CRYPTO_RC4 != 0 {
                        CRYPTO_RC4
                    } else {
                        return Err(MseError::NoCommonMethod(provide));
                    };
                    // VC, crypto_select, len(PadD) = 0.
                    let mut reply = [0u8; 14];
                    reply[8..12].copy_from_slice(&select.to_be_bytes());
                    send.apply(&mut reply);
                    out.extend_from_slice(&reply);
                    let rc4 = (select == CRYPTO_RC4).then_some((recv, send));
                    return Ok(MseStep::Done(
                        out,
                        Box::new(Established {
                            info_hash,
                            initial_payload,
                            rc4,
                        }),
                    ));
                }
                State::Done => return Ok(step(out)),
            }
        }
    }
}

fn step(out: Vec<u8>) -> MseStep {
    if out.is_empty() {
        MseStep::NeedMore
    } else {
        MseStep::Send(out)
    }
}

/// A number as exactly [`DH_KEY_LEN`] big-endian bytes.
fn left_pad(n: &BigUint) -> [u8; DH_KEY_LEN] {
    let bytes = n.to_bytes_be();
    let mut out = [0u8; DH_KEY_LEN];
    out[DH_KEY_LEN - bytes.len().min(DH_KEY_LEN)..]
        .copy_from_slice(&bytes[bytes.len().saturating_sub(DH_KEY_LEN)..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The initiator's side, as aria2c and libtorrent run it, to drive the responder.
    struct Initiator {
        private: BigUint,
        info_hash: InfoHash,
    }

    impl Initiator {
        fn hello(&self, pad: &[u8]) -> Vec<u8> {
            let p = BigUint::from_bytes_be(&PRIME);
            let mut out = left_pad(&BigUint::from(2u8).modpow(&self.private, &p)).to_vec();
            out.extend_from_slice(pad);
            out
        }

        fn request(&self, yb: &[u8], provide: u32, ia: &[u8]) -> (Vec<u8>, Rc4, Rc4) {
            let p = BigUint::from_bytes_be(&PRIME);
            let s = left_pad(&BigUint::from_bytes_be(yb).modpow(&self.private, &p));
            let ih = self.info_hash.as_bytes();
            let mut send = Rc4::new(&sha1_of(&[b"keyA", &s, ih]));
            let recv = Rc4::new(&sha1_of(&[b"keyB", &s, ih]));
            let mut out = sha1_of(&[b"req1", &s]).to_vec();
            let mut x = sha1_of(&[b"req2", ih]);
            for (a, b) in x.iter_mut().zip(sha1_of(&[b"req3", &s])) {
                *a ^= b;
            }
            out.extend_from_slice(&x);
            let mut enc = vec![0u8; 8];
            enc.extend_from_slice(&provide.to_be_bytes());
            enc.extend_from_slice(&3u16.to_be_bytes());
            enc.extend_from_slice(&[9, 9, 9]);
            enc.extend_from_slice(&(ia.len() as u16).to_be_bytes());
            enc.extend_from_slice(ia);
            send.apply(&mut enc);
            out.extend_from_slice(&enc);
            (out, send, recv)
        }
    }

    const IH: InfoHash = InfoHash([0x5a; 20]);

    fn lookup(h: &[u8; 20]) -> Option<InfoHash> {
        (*h == req2_hash(&IH)).then_some(IH)
    }

    fn handshake(
        provide: u32,
        allow_plaintext: bool,
        pad_a: &[u8],
    ) -> (Established, Rc4, Rc4, BytesMut, Vec<u8>) {
        let a = Initiator {
            private: BigUint::from_bytes_be(&[7; 20]),
            info_hash: IH,
        };
        let mut b = MseResponder::new([3; 20], &[1, 2, 3, 4], allow_plaintext);
        let mut input = BytesMut::from(&a.hello(pad_a)[..]);
        let MseStep::Send(yb) = b.receive(&mut input, lookup).unwrap() else {
            panic!("Yb expected")
        };
        assert_eq!(yb.len(), DH_KEY_LEN + 4);
        let ia = b"\x13BitTorrent protocol".to_vec();
        let (req, send, mut recv) = a.request(&yb[..DH_KEY_LEN], provide, &ia);
        // Deliver it byte by byte, then a trailing payload byte.
        let mut reply = Vec::new();
        for (i, byte) in req.iter().enumerate() {
            input.extend_from_slice(&[*byte]);
            match b.receive(&mut input, lookup).unwrap() {
                MseStep::NeedMore => assert!(i + 1 < req.len()),
                MseStep::Send(_) => panic!("nothing to send mid-request"),
                MseStep::Done(r, est) => {
                    assert_eq!(i + 1, req.len());
                    reply = r;
                    input.extend_from_slice(b"X");
                    let mut vc = [0u8; 14];
                    vc.copy_from_slice(&reply[..14]);
                    recv.apply(&mut vc);
                    assert_eq!(&vc[..8], &[0; 8]);
                    return (*est, send, recv, input, vc.to_vec());
                }
            }
        }
        panic!("no handshake: {reply:?}")
    }

    #[test]
    fn plaintext_is_selected_when_offered_and_allowed() {
        let (est, _, _, rest, vc) = handshake(CRYPTO_PLAINTEXT | CRYPTO_RC4, true, &[0xaa; 300]);
        assert_eq!(est.info_hash, IH);
        assert_eq!(est.initial_payload, b"\x13BitTorrent protocol");
        assert!(est.rc4.is_none());
        assert_eq!(
            u32::from_be_bytes([vc[8], vc[9], vc[10], vc[11]]),
            CRYPTO_PLAINTEXT
        );
        assert_eq!(&rest[..], b"X", "the payload stream is left in the buffer");
    }

    #[test]
    fn rc4_streams_line_up_both_ways() {
        let (est, mut a_send, mut a_recv, _, vc) = handshake(CRYPTO_RC4, true, &[]);
        assert_eq!(
            u32::from_be_bytes([vc[8], vc[9], vc[10], vc[11]]),
            CRYPTO_RC4
        );
        let (mut b_recv, mut b_send) = est.rc4.expect("rc4 selected");
        let mut msg = b"hello seed".to_vec();
        a_send.apply(&mut msg);
        b_recv.apply(&mut msg);
        assert_eq!(msg, b"hello seed");
        let mut msg = b"hello leech".to_vec();
        b_send.apply(&mut msg);
        a_recv.apply(&mut msg);
        assert_eq!(msg, b"hello leech");
    }

    #[test]
    fn rc4_known_answer() {
        // RFC 6229 key 0x0102030405, keystream at offset 1024 (after the MSE discard).
        let mut rc4 = Rc4::new(&[1, 2, 3, 4, 5]);
        let mut z = [0u8; 16];
        rc4.apply(&mut z);
        assert_eq!(
            z,
            [
                0x30, 0xab, 0xbc, 0xc7, 0xc2, 0x0b, 0x01, 0x60, 0x9f, 0x23, 0xee, 0x2d, 0x5f, 0x6b,
                0xb7, 0xdf
            ]
        );
    }

    #[test]
    fn refuses_garbage_unknown_torrents_and_bad_keys() {
        let mut b = MseResponder::new([3; 20], &[], true);
        let mut junk = BytesMut::from(&[0x42u8; DH_KEY_LEN][..]);
        assert!(matches!(b.receive(&mut junk, lookup), Ok(MseStep::Send(_))));
        junk.extend_from_slice(&[0x42; MAX_PAD_LEN + 19]);
        assert!(matches!(
            b.receive(&mut junk, lookup),
            Ok(MseStep::NeedMore)
        ));
        junk.extend_from_slice(&[0x42]);
        assert_eq!(
            b.receive(&mut junk, lookup).unwrap_err(),
            MseError::NoSync(MAX_PAD_LEN)
        );

        let mut b = MseResponder::new([3; 20], &[], true);
        let mut zero = BytesMut::from(&[0u8; DH_KEY_LEN][..]);
        assert_eq!(
            b.receive(&mut zero, lookup).unwrap_err(),
            MseError::BadPublicKey
        );

        let a = Initiator {
            private: BigUint::from_bytes_be(&[7; 20]),
            info_hash: InfoHash([1; 20]),
        };
        let mut b = MseResponder::new([3; 20], &[], true);
        let mut input = BytesMut::from(&a.hello(&[])[..]);
        let MseStep::Send(yb) = b.receive(&mut input, lookup).unwrap() else {
            panic!()
        };
        input.extend_from_slice(&a.request(&yb, CRYPTO_RC4, &[]).0);
        assert_eq!(
            b.receive(&mut input, lookup).unwrap_err(),
            MseError::UnknownTorrent
        );
    }

    #[test]
    fn rc4_only_peer_refused_when_plaintext_is_all_we_offer() {
        let a = Initiator {
            private: BigUint::from_bytes_be(&[7; 20]),
            info_hash: IH,
        };
        let mut b = MseResponder::new([3; 20], &[], true);
        let mut input = BytesMut::from(&a.hello(&[])[..]);
        let MseStep::Send(yb) = b.receive(&mut input, lookup).unwrap() else {
            panic!()
        };
        input.extend_from_slice(&a.request(&yb, 0x04, &[]).0);
        assert_eq!(
            b.receive(&mut input, lookup).unwrap_err(),
            MseError::NoCommonMethod(4)
        );
    }
}
