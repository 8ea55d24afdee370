//! URL query strings: splitting into pairs, percent-decoding (server side) and percent-encoding
//! (client side). Bytes, not text: BitTorrent query values are raw binary (`info_hash`).

/// Splits a query string into `(key, raw value)` pairs on `&`, and each pair on its first `=`
/// (no `=` gives an empty value). Empty pairs (`a=1&&b=2`) are skipped.
pub(crate) fn pairs(query: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    query
        .split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &b""[..]),
        })
}

/// Decodes `%XX` escapes and `+` into `out`, which is cleared first.
///
/// # Errors
/// `Err(())` for a truncated or non-hex escape (`%G1`, `%4`).
pub(crate) fn percent_decode(input: &[u8], out: &mut Vec<u8>) -> Result<(), ()> {
    out.clear();
    let mut i = 0;
    while let Some(&c) = input.get(i) {
        match c {
            b'%' => {
                let hi = input.get(i + 1).and_then(|c| hex_val(*c)).ok_or(())?;
                let lo = input.get(i + 2).and_then(|c| hex_val(*c)).ok_or(())?;
                out.push((hi << 4) | lo);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(())
}

/// Percent-decodes a value that must be exactly 20 bytes (`info_hash`, `peer_id`), without
/// allocating.
///
/// # Errors
/// `Err(())` for a bad escape or a decoded length other than 20.
pub(crate) fn decode_20(input: &[u8]) -> Result<[u8; 20], ()> {
    let mut out = [0u8; 20];
    let mut n = 0;
    let mut i = 0;
    while let Some(&c) = input.get(i) {
        let (byte, used) = match c {
            b'%' => {
                let hi = input.get(i + 1).and_then(|c| hex_val(*c)).ok_or(())?;
                let lo = input.get(i + 2).and_then(|c| hex_val(*c)).ok_or(())?;
                ((hi << 4) | lo, 3)
            }
            b'+' => (b' ', 1),
            c => (c, 1),
        };
        *out.get_mut(n).ok_or(())? = byte;
        n += 1;
        i += used;
    }
    if n == 20 { Ok(out) } else { Err(()) }
}

pub(crate) fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Appends `bytes` percent-encoded (RFC 3986: everything but unreserved characters escaped, upper
/// case hex), as BitTorrent clients encode `info_hash` and `peer_id`.
pub(crate) fn percent_encode(bytes: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
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

/// Parses a decimal u64 from raw bytes (ASCII digits only, no sign).
pub(crate) fn parse_u64(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 20 {
        return None;
    }
    let mut n: u64 = 0;
    for &c in value {
        let d = c.checked_sub(b'0').filter(|d| *d < 10)?;
        n = n.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_and_rejects_bad_ones() {
        let mut out = Vec::new();
        percent_decode(b"a%20b+c%ff", &mut out).unwrap();
        assert_eq!(out, b"a b c\xff");
        assert!(percent_decode(b"%G1", &mut out).is_err());
        assert!(percent_decode(b"%4", &mut out).is_err());
        assert_eq!(decode_20(&[b'x'; 20]).unwrap(), [b'x'; 20]);
        assert!(decode_20(&[b'x'; 21]).is_err());
        assert!(decode_20(&[b'x'; 19]).is_err());
        assert_eq!(decode_20("%AB".repeat(20).as_bytes()).unwrap(), [0xab; 20]);
    }

    #[test]
    fn encode_then_decode_round_trips() {
        let raw: Vec<u8> = (0..=255).collect();
        let mut s = String::new();
        percent_encode(&raw, &mut s);
        let mut out = Vec::new();
        percent_decode(s.as_bytes(), &mut out).unwrap();
        assert_eq!(out, raw);
        assert!(s.starts_with("%00%01"));
    }

    #[test]
    fn pairs_split_on_first_equals() {
        let v: Vec<_> = pairs(b"a=1&&b&c=x=y").collect();
        assert_eq!(
            v,
            vec![
                (&b"a"[..], &b"1"[..]),
                (&b"b"[..], &b""[..]),
                (&b"c"[..], &b"x=y"[..])
            ]
        );
    }

    #[test]
    fn parse_u64_is_strict() {
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        for bad in [&b""[..], b"-1", b"+1", b"1 ", b"abc"] {
            assert_eq!(parse_u64(bad), None);
        }
    }
}
