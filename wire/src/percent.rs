//! Percent-encoding (RFC 3986 §2.1) for URL query values: tracker announces and scrapes (BEP 3,
//! 48), magnet links (BEP 9). Bytes, not text: `info_hash` and `peer_id` are raw binary.
//!
//! Decoding reads `%XX` (either case) as a byte and `+` as a space (the form encoding browsers
//! and libtorrent use); any other byte stands for itself. Encoding escapes every byte but the
//! RFC 3986 unreserved characters, with upper-case hex, as BitTorrent clients do.

/// A `%` not followed by two hex digits (`%G1`, `%4` at the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("`%` not followed by two hex digits")]
pub struct BadEscape;

/// The decoded bytes of `input`, one at a time, without allocating; a bad escape yields
/// `Err(BadEscape)` (and the caller stops there).
pub fn decoded(input: &[u8]) -> impl Iterator<Item = Result<u8, BadEscape>> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let c = *input.get(i)?;
        Some(match c {
            b'%' => {
                let hi = input.get(i + 1).and_then(|c| hex_val(*c));
                let lo = input.get(i + 2).and_then(|c| hex_val(*c));
                i += 3;
                match (hi, lo) {
                    (Some(hi), Some(lo)) => Ok((hi << 4) | lo),
                    _ => {
                        i = input.len(); // nothing after a bad escape
                        Err(BadEscape)
                    }
                }
            }
            b'+' => {
                i += 1;
                Ok(b' ')
            }
            c => {
                i += 1;
                Ok(c)
            }
        })
    })
}

/// Decodes `input` into `out`, which is cleared first.
///
/// # Errors
/// [`BadEscape`] for a truncated or non-hex escape; `out` then holds what came before it.
pub fn decode(input: &[u8], out: &mut Vec<u8>) -> Result<(), BadEscape> {
    out.clear();
    for b in decoded(input) {
        out.push(b?);
    }
    Ok(())
}

/// Appends `bytes` percent-encoded to `out`: RFC 3986 unreserved characters (`A-Z a-z 0-9 - . _
/// ~`) stay, every other byte becomes `%XX` with upper-case hex.
pub fn encode(bytes: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

/// The value of one hex digit, either case.
#[must_use]
pub const fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_plus_and_plain_bytes() {
        let mut out = Vec::new();
        decode(b"a%20b+c%ff%Fe~", &mut out).unwrap();
        assert_eq!(out, b"a b c\xff\xfe~");
        decode(b"", &mut out).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn rejects_bad_escapes() {
        let mut out = Vec::new();
        for bad in [&b"%G1"[..], b"%4", b"%", b"ab%4", b"%%41", b"%\xc3\xa9"] {
            assert_eq!(decode(bad, &mut out), Err(BadEscape), "{bad:?}");
        }
        assert_eq!(decode(b"ab%zz", &mut out), Err(BadEscape));
        assert_eq!(out, b"ab");
        // The iterator ends after the error.
        assert_eq!(decoded(b"%G1abc").count(), 1);
    }

    #[test]
    fn encodes_all_but_unreserved_in_upper_case() {
        let mut s = String::new();
        encode(b"aZ09-._~ /%+\x00\xff", &mut s);
        assert_eq!(s, "aZ09-._~%20%2F%25%2B%00%FF");
    }

    proptest::proptest! {
        #[test]
        fn encode_then_decode_round_trips(raw: Vec<u8>) {
            let mut s = String::new();
            encode(&raw, &mut s);
            let mut out = Vec::new();
            decode(s.as_bytes(), &mut out).unwrap();
            proptest::prop_assert_eq!(out, raw);
        }

        #[test]
        fn decoding_anything_never_panics_and_never_grows(raw: Vec<u8>) {
            let mut out = Vec::new();
            let _ = decode(&raw, &mut out);
            proptest::prop_assert!(out.len() <= raw.len());
        }
    }
}
