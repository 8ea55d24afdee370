//! Compact contact encodings (BEP 5 §Contact Encoding, BEP 32 §nodes6): fixed-layout views that
//! check their length once and cannot panic afterwards.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::id::NodeId;

/// Length of a compact IPv4 peer, bytes: 4-byte address + 2-byte port, big-endian (BEP 5).
pub const PEER_V4_LEN: usize = 6;
/// Length of a compact IPv6 peer, bytes: 16-byte address + 2-byte port (BEP 32).
pub const PEER_V6_LEN: usize = 18;
/// Length of one compact IPv4 node in `nodes`, bytes: 20-byte ID + compact peer (BEP 5).
pub const NODE_V4_LEN: usize = NodeId::LEN + PEER_V4_LEN;
/// Length of one compact IPv6 node in `nodes6`, bytes (BEP 32).
pub const NODE_V6_LEN: usize = NodeId::LEN + PEER_V6_LEN;

/// Decodes a compact peer: 6 bytes for IPv4, 18 for IPv6; any other length is `None`.
#[must_use]
pub fn peer(bytes: &[u8]) -> Option<SocketAddr> {
    match bytes.len() {
        PEER_V4_LEN => {
            let ip = Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]);
            let port = u16::from_be_bytes([bytes[4], bytes[5]]);
            Some(SocketAddr::V4(SocketAddrV4::new(ip, port)))
        }
        PEER_V6_LEN => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&bytes[..16]);
            let port = u16::from_be_bytes([bytes[16], bytes[17]]);
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(octets),
                port,
                0,
                0,
            )))
        }
        _ => None,
    }
}

/// Appends the compact form of `addr` (6 or 18 bytes) to `out`.
pub fn put_peer(out: &mut Vec<u8>, addr: SocketAddr) {
    match addr.ip() {
        IpAddr::V4(v4) => out.extend_from_slice(&v4.octets()),
        IpAddr::V6(v6) => out.extend_from_slice(&v6.octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// Appends a compact node (ID + compact peer) to `out`.
pub fn put_node(out: &mut Vec<u8>, id: &NodeId, addr: SocketAddr) {
    out.extend_from_slice(&id.0);
    put_peer(out, addr);
}

/// Iterates the 26-byte IPv4 nodes of a `nodes` string; a trailing partial entry is ignored.
pub fn nodes_v4(bytes: &[u8]) -> impl Iterator<Item = (NodeId, SocketAddr)> + '_ {
    nodes(bytes, NODE_V4_LEN)
}

/// Iterates the 38-byte IPv6 nodes of a `nodes6` string; a trailing partial entry is ignored.
pub fn nodes_v6(bytes: &[u8]) -> impl Iterator<Item = (NodeId, SocketAddr)> + '_ {
    nodes(bytes, NODE_V6_LEN)
}

fn nodes(bytes: &[u8], len: usize) -> impl Iterator<Item = (NodeId, SocketAddr)> + '_ {
    bytes.chunks_exact(len).filter_map(|c| {
        let (id, addr) = c.split_first_chunk::<20>()?;
        Some((NodeId(*id), peer(addr)?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_round_trips() {
        for a in ["1.2.3.4:6881", "[2001:db8::1]:51413"] {
            let addr: SocketAddr = a.parse().unwrap();
            let mut out = Vec::new();
            put_peer(&mut out, addr);
            assert_eq!(peer(&out), Some(addr));
        }
        assert_eq!(peer(b"12345"), None);
        // BEP 5 example value "axje.u".
        assert_eq!(
            peer(b"axje.u"),
            Some("97.120.106.101:11893".parse().unwrap())
        );
    }

    #[test]
    fn nodes_ignore_partial_tail() {
        let mut out = Vec::new();
        put_node(&mut out, &NodeId([7; 20]), "9.9.9.9:1".parse().unwrap());
        out.extend_from_slice(b"partial");
        let v: Vec<_> = nodes_v4(&out).collect();
        assert_eq!(v, vec![(NodeId([7; 20]), "9.9.9.9:1".parse().unwrap())]);
        assert_eq!(nodes_v6(&out).count(), 0);
    }
}
