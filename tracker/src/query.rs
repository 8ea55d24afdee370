//! URL query strings: splitting into pairs, percent-decoding (server side) and percent-encoding
//! (client side) with [`seednode_wire::percent`]. Bytes, not text: BitTorrent query values are
//! raw binary (`info_hash`).

pub(crate) use seednode_wire::percent::{decode as percent_decode, encode as percent_encode};

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

/// Percent-decodes a value that must be exactly 20 bytes (`info_hash`, `peer_id`), without
/// allocating.
///
/// # Errors
/// `Err(())` for a bad escape or a decoded length other than 20.
pub(crate) fn decode_20(input: &[u8]) -> Result<[u8; 20], ()> {
    let mut out = [0u8; 20];
    let mut n = 0;
    for byte in seednode_wire::percent::decoded(input) {
        *out.get_mut(n).ok_or(())? = byte.map_err(|_| ())?;
        n += 1;
    }
    if n == 20 { Ok(out) } else { Err(()) }
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
    fn decode_20_takes_exactly_20_bytes() {
        assert_eq!(decode_20(&[b'x'; 20]).unwrap(), [b'x'; 20]);
        assert!(decode_20(&[b'x'; 21]).is_err());
        assert!(decode_20(&[b'x'; 19]).is_err());
        assert_eq!(decode_20("%AB".repeat(20).as_bytes()).unwrap(), [0xab; 20]);
        assert_eq!(decode_20("+".repeat(20).as_bytes()).unwrap(), [b' '; 20]);
        assert!(decode_20(b"%G1xxxxxxxxxxxxxxxxxxx").is_err());
        assert!(decode_20(&[b'x'; 100]).is_err());
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
