//! Identifiers shared by every protocol: info-hash and peer ID (BEP 3).

use std::fmt;

/// A v1 info-hash: the SHA-1 of the bencoded `info` dictionary, 20 bytes (BEP 3).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct InfoHash(pub [u8; 20]);

/// A peer ID: 20 opaque bytes a peer names itself with in the handshake and announces (BEP 3).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct PeerId(pub [u8; 20]);

/// Error from parsing a textual info-hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseHashError {
    /// The text is neither 40 hex digits nor 32 base32 characters.
    #[error("info-hash must be 40 hex digits or 32 base32 characters, got {got} characters")]
    BadLength {
        /// Characters received.
        got: usize,
    },
    /// A character outside the alphabet.
    #[error("info-hash has a character outside its alphabet")]
    BadCharacter,
}

impl InfoHash {
    /// Length of an info-hash in bytes.
    pub const LEN: usize = 20;

    /// The 20 raw bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// Lowercase hex, 40 characters.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex_encode(&self.0)
    }

    /// Parses 40 hex digits (either case) or 32 RFC 4648 base32 characters (BEP 9 `xt`).
    ///
    /// # Errors
    /// [`ParseHashError`] when the length or an alphabet character is wrong.
    pub fn from_text(s: &str) -> Result<Self, ParseHashError> {
        match s.len() {
            40 => hex_decode_20(s.as_bytes()).map(Self),
            32 => base32_decode_20(s.as_bytes()).map(Self),
            got => Err(ParseHashError::BadLength { got }),
        }
    }
}

impl PeerId {
    /// The 20 raw bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHash({self})")
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PeerId({})",
            String::from_utf8_lossy(&self.0).escape_debug()
        )
    }
}

/// Lowercase hex of `bytes`.
#[must_use]
pub(crate) fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

fn hex_val(c: u8) -> Result<u8, ParseHashError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(ParseHashError::BadCharacter),
    }
}

fn hex_decode_20(s: &[u8]) -> Result<[u8; 20], ParseHashError> {
    let mut out = [0u8; 20];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = (hex_val(pair[0])? << 4) | hex_val(pair[1])?;
    }
    Ok(out)
}

fn base32_decode_20(s: &[u8]) -> Result<[u8; 20], ParseHashError> {
    let mut out = [0u8; 20];
    let mut acc: u64 = 0;
    let mut bits = 0u32;
    let mut n = 0usize;
    for &c in s {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a',
            b'2'..=b'7' => c - b'2' + 26,
            _ => return Err(ParseHashError::BadCharacter),
        };
        acc = (acc << 5) | u64::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out[n] = (acc >> bits) as u8;
            n += 1;
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let ih = InfoHash([0xab; 20]);
        assert_eq!(InfoHash::from_text(&ih.to_hex()).unwrap(), ih);
        assert_eq!(
            InfoHash::from_text(&ih.to_hex().to_uppercase()).unwrap(),
            ih
        );
    }

    #[test]
    fn base32_vector() {
        // 32 base32 chars of all 'A' decode to 20 zero bytes; 'H' = 7 -> 00111.
        assert_eq!(
            InfoHash::from_text(&"A".repeat(32)).unwrap(),
            InfoHash([0; 20])
        );
        let ih = InfoHash::from_text("77777777777777777777777777777771").unwrap_err();
        assert_eq!(ih, ParseHashError::BadCharacter);
        let ones = InfoHash::from_text(&"7".repeat(32)).unwrap();
        assert_eq!(ones, InfoHash([0xff; 20]));
    }

    #[test]
    fn rejects_bad_text() {
        assert!(matches!(
            InfoHash::from_text("abc"),
            Err(ParseHashError::BadLength { got: 3 })
        ));
        assert_eq!(
            InfoHash::from_text(&"g".repeat(40)),
            Err(ParseHashError::BadCharacter)
        );
    }
}
