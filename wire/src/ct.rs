//! Constant-time comparison of secrets (SECURITY rule 10): DHT write tokens (BEP 5), UDP tracker
//! connection ids (BEP 15).

/// Whether `a` equals `b`, without an early exit: the time taken depends on the lengths only,
/// never on how many leading bytes match, so a remote cannot guess a MAC byte by byte. Slices
/// of different lengths are unequal (the length of a MAC is public).
#[must_use]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_only_for_same_bytes_and_length() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"token123", b"token123"));
        assert!(!constant_time_eq(b"token123", b"token124"));
        assert!(!constant_time_eq(b"Xoken123", b"token123"));
        assert!(!constant_time_eq(b"token12", b"token123"));
        assert!(!constant_time_eq(b"token123", b""));
        for i in 0..8 {
            let mut other = *b"token123";
            other[i] ^= 0x80;
            assert!(!constant_time_eq(b"token123", &other), "byte {i}");
        }
    }
}
