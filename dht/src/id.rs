//! Node IDs, the XOR metric (BEP 5 §Overview) and the BEP 42 ID restriction.

use std::fmt;
use std::net::IpAddr;

use seednode_wire::InfoHash;

use seednode_wire::rng::Rng;

/// A 160-bit node ID (BEP 5); also the target of a lookup. Ordering is the big-endian integer
/// order, so comparing two XOR distances compares closeness.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct NodeId(pub [u8; 20]);

impl NodeId {
    /// Length of a node ID in bytes.
    pub const LEN: usize = 20;

    /// The 20 raw bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// The XOR distance to `other` (BEP 5: `distance(A,B) = |A xor B|`), itself an ID-sized
    /// integer: a smaller value is closer.
    #[must_use]
    pub fn distance(&self, other: &Self) -> Self {
        let (hi, lo) = self.distance_key(other);
        let mut out = [0u8; 20];
        out[..16].copy_from_slice(&hi.to_be_bytes());
        out[16..].copy_from_slice(&lo.to_be_bytes());
        Self(out)
    }

    /// The XOR distance as a pair of integers whose tuple order is the distance order; cheaper
    /// to compute and compare than [`NodeId::distance`].
    #[must_use]
    pub(crate) fn distance_key(&self, other: &Self) -> (u128, u32) {
        let (a_hi, a_lo) = self.halves();
        let (b_hi, b_lo) = other.halves();
        (a_hi ^ b_hi, a_lo ^ b_lo)
    }

    pub(crate) fn halves(&self) -> (u128, u32) {
        let mut hi = [0u8; 16];
        hi.copy_from_slice(&self.0[..16]);
        let mut lo = [0u8; 4];
        lo.copy_from_slice(&self.0[16..]);
        (u128::from_be_bytes(hi), u32::from_be_bytes(lo))
    }

    /// Number of leading bits `self` and `other` share, 0..=160.
    #[must_use]
    pub fn common_prefix_len(&self, other: &Self) -> usize {
        let (hi, lo) = self.distance_key(other);
        if hi != 0 {
            hi.leading_zeros() as usize
        } else {
            128 + lo.leading_zeros() as usize
        }
    }

    /// The bit at `index` (0 = most significant).
    #[must_use]
    pub(crate) fn bit(&self, index: usize) -> bool {
        index < 160 && self.0[index / 8] & (0x80 >> (index % 8)) != 0
    }

    /// A random ID sharing the first `prefix_len` bits with `self` (and flipping bit
    /// `prefix_len` when `flip` is set): the refresh target for a bucket (BEP 5).
    pub(crate) fn random_with_prefix(&self, prefix_len: usize, flip: bool, rng: &mut Rng) -> Self {
        let mut out = [0u8; 20];
        rng.fill(&mut out);
        for i in 0..prefix_len.min(160) {
            set_bit(&mut out, i, self.bit(i));
        }
        if flip && prefix_len < 160 {
            set_bit(&mut out, prefix_len, !self.bit(prefix_len));
        }
        Self(out)
    }

    /// A BEP 42 node ID for the external address `ip`: the first 21 bits come from
    /// `crc32c` of the masked IP and `r = rand & 7`, the last byte is `rand`, the rest is
    /// `random` (BEP 42 §Node ID restriction).
    #[must_use]
    pub fn bep42(ip: IpAddr, rand: u8, random: [u8; 20]) -> Self {
        let crc = bep42_crc(ip, rand & 7);
        let [c0, c1, c2, _] = crc.to_be_bytes();
        let mut id = random;
        id[0] = c0;
        id[1] = c1;
        id[2] = (c2 & 0xf8) | (random[2] & 0x07);
        id[19] = rand;
        Self(id)
    }

    /// Whether this ID is allowed for a node at `ip` under BEP 42 §Node ID restriction: the
    /// first 21 bits match the hash of the IP and `r` (the low 3 bits of the last byte). Nodes on
    /// local networks are exempt (BEP 42 §Enforcement), see [`is_local`].
    #[must_use]
    pub fn is_valid_for(&self, ip: IpAddr) -> bool {
        if is_local(ip) {
            return true;
        }
        let [c0, c1, c2, _] = bep42_crc(ip, self.0[19] & 7).to_be_bytes();
        self.0[0] == c0 && self.0[1] == c1 && (self.0[2] & 0xf8) == (c2 & 0xf8)
    }
}

fn set_bit(bytes: &mut [u8; 20], index: usize, value: bool) {
    let mask = 0x80u8 >> (index % 8);
    if value {
        bytes[index / 8] |= mask;
    } else {
        bytes[index / 8] &= !mask;
    }
}

impl From<InfoHash> for NodeId {
    fn from(h: InfoHash) -> Self {
        Self(h.0)
    }
}

impl From<NodeId> for InfoHash {
    fn from(id: NodeId) -> Self {
        Self(id.0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

/// The BEP 42 hash: CRC32C of the masked IP (4 bytes for IPv4, the high 8 bytes for IPv6) with
/// `r` in its top 3 bits.
fn bep42_crc(ip: IpAddr, r: u8) -> u32 {
    const V4_MASK: [u8; 4] = [0x03, 0x0f, 0x3f, 0xff];
    const V6_MASK: [u8; 8] = [0x01, 0x03, 0x07, 0x0f, 0x1f, 0x3f, 0x7f, 0xff];
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let mut b = v4.octets();
            for (x, m) in b.iter_mut().zip(V4_MASK) {
                *x &= m;
            }
            b[0] |= (r & 7) << 5;
            crc32c(&b)
        }
        IpAddr::V6(v6) => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&v6.octets()[..8]);
            for (x, m) in b.iter_mut().zip(V6_MASK) {
                *x &= m;
            }
            b[0] |= (r & 7) << 5;
            crc32c(&b)
        }
    }
}

/// Whether `ip` is on a local network and so exempt from BEP 42 checks: 10/8, 172.16/12,
/// 192.168/16, 169.254/16, 127/8 (BEP 42 §Enforcement), and their IPv6 counterparts (loopback,
/// link-local fe80::/10, unique-local fc00::/7).
#[must_use]
pub fn is_local(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.is_private() || v4.is_link_local() || v4.is_loopback(),
        IpAddr::V6(v6) => {
            let s = v6.segments()[0];
            v6.is_loopback() || (s & 0xffc0) == 0xfe80 || (s & 0xfe00) == 0xfc00
        }
    }
}

/// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), as BEP 42 requires.
#[must_use]
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc = CRC32C_TABLE[usize::from((crc as u8) ^ b)] ^ (crc >> 8);
    }
    !crc
}

const CRC32C_TABLE: [u32; 256] = crc32c_table();

const fn crc32c_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0x82F6_3B78 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value() {
        // The standard check value of CRC-32C.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn distance_and_prefix() {
        let a = NodeId([0u8; 20]);
        let mut b = [0u8; 20];
        b[1] = 0x10;
        let b = NodeId(b);
        assert_eq!(a.common_prefix_len(&b), 11);
        assert_eq!(a.common_prefix_len(&a), 160);
        assert_eq!(a.distance(&b), b);
        assert!(!a.bit(0) && b.bit(11));
    }

    #[test]
    fn random_with_prefix_keeps_prefix() {
        let mut rng = Rng::from_u64(9);
        let own = NodeId([0xa5; 20]);
        for len in [0usize, 1, 7, 8, 9, 63, 159] {
            let t = own.random_with_prefix(len, true, &mut rng);
            assert_eq!(t.common_prefix_len(&own), len);
            let t = own.random_with_prefix(len, false, &mut rng);
            assert!(t.common_prefix_len(&own) >= len);
        }
    }

    #[test]
    fn local_networks_are_exempt() {
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.3.3",
            "127.0.0.1",
            "::1",
        ] {
            assert!(is_local(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "172.32.0.1", "2001:db8::1"] {
            assert!(!is_local(ip.parse().unwrap()), "{ip}");
        }
        assert!(NodeId([0; 20]).is_valid_for("10.0.0.1".parse().unwrap()));
        assert!(!NodeId([0; 20]).is_valid_for("124.31.75.21".parse().unwrap()));
    }
}
