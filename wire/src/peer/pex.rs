//! Peer exchange, `ut_pex` (BEP 11): peers tell each other which peers of the swarm they are
//! connected to, as compact address lists inside an extended message (BEP 10).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::bencode::{self, put_bytes};
use crate::peer::extension::ExtensionError;

/// The extended id we assign to `ut_pex` in our handshake's `m` (BEP 10 lets each side pick).
pub const OUR_UT_PEX_ID: u8 = 1;

/// Most peers in one list of a message we send: BEP 11 says at most 50 added and 50 dropped.
pub const MAX_PEX_PEERS_PER_MESSAGE: usize = 50;

/// Most peers read from one list of a received message; more are ignored (a peer that sends
/// thousands gains nothing and costs nothing).
pub const MAX_PEX_PEERS_READ: usize = 200;

/// Largest `ut_pex` payload accepted, bytes: 200 IPv6 peers in each of three lists with flags,
/// and keys. Larger: the message is refused (SECURITY.md §2.7).
pub const MAX_PEX_LEN: usize = 16 * 1024;

/// The minimum time between two PEX messages to one peer, seconds (BEP 11: at most once a
/// minute).
pub const PEX_INTERVAL_SECS: u64 = 60;

/// `added.f` flag: the peer is a seed (BEP 11).
pub const FLAG_SEED: u8 = 0x02;

/// A `ut_pex` message (BEP 11).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PexMessage {
    /// Peers the sender connected to since its last message, with their `added.f` flags.
    pub added: Vec<(SocketAddr, u8)>,
    /// Peers the sender disconnected from.
    pub dropped: Vec<SocketAddr>,
}

fn compact(addrs: impl Iterator<Item = SocketAddr>, v6: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for a in addrs {
        match (a.ip(), v6) {
            (IpAddr::V4(ip), false) => out.extend_from_slice(&ip.octets()),
            (IpAddr::V6(ip), true) => out.extend_from_slice(&ip.octets()),
            _ => continue,
        }
        out.extend_from_slice(&a.port().to_be_bytes());
    }
    out
}

fn parse_compact(bytes: &[u8], v6: bool, out: &mut Vec<SocketAddr>) {
    let width = if v6 { 18 } else { 6 };
    for c in bytes.chunks_exact(width).take(MAX_PEX_PEERS_READ) {
        let port = u16::from_be_bytes([c[width - 2], c[width - 1]]);
        let ip: IpAddr = if v6 {
            let mut o = [0u8; 16];
            o.copy_from_slice(&c[..16]);
            Ipv6Addr::from(o).into()
        } else {
            Ipv4Addr::new(c[0], c[1], c[2], c[3]).into()
        };
        if port != 0 {
            out.push(SocketAddr::new(ip, port));
        }
    }
}

impl PexMessage {
    /// Parses a `ut_pex` payload. Each list is read up to [`MAX_PEX_PEERS_READ`] entries; a
    /// trailing partial entry and port-0 entries are ignored; missing keys are empty lists.
    ///
    /// # Errors
    /// [`ExtensionError`] when the payload is over [`MAX_PEX_LEN`] or not a bencoded dictionary.
    pub fn parse(payload: &[u8]) -> Result<Self, ExtensionError> {
        if payload.len() > MAX_PEX_LEN {
            return Err(ExtensionError::TooLong {
                len: payload.len(),
                limit: MAX_PEX_LEN,
            });
        }
        let value = bencode::decode(payload)?;
        let dict = value
            .as_dict()
            .ok_or(ExtensionError::BadKey("dictionary"))?;
        let bytes = |k: &[u8]| {
            dict.get(k)
                .and_then(bencode::Value::as_bytes)
                .unwrap_or_default()
        };
        let mut msg = Self::default();
        for (key, flags_key, v6) in [
            (&b"added"[..], &b"added.f"[..], false),
            (b"added6", b"added6.f", true),
        ] {
            let mut addrs = Vec::new();
            parse_compact(bytes(key), v6, &mut addrs);
            let flags = bytes(flags_key);
            msg.added.extend(
                addrs
                    .into_iter()
                    .enumerate()
                    .map(|(i, a)| (a, flags.get(i).copied().unwrap_or(0))),
            );
        }
        parse_compact(bytes(b"dropped"), false, &mut msg.dropped);
        parse_compact(bytes(b"dropped6"), true, &mut msg.dropped);
        Ok(msg)
    }

    /// Encodes the payload (keys in canonical order; IPv4 and IPv6 peers in their own lists).
    /// The caller keeps each list within [`MAX_PEX_PEERS_PER_MESSAGE`].
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let flags = |v6: bool| -> Vec<u8> {
            self.added
                .iter()
                .filter(|(a, _)| a.is_ipv6() == v6)
                .map(|(_, f)| *f)
                .collect()
        };
        let mut out = Vec::with_capacity(64 + self.added.len() * 19 + self.dropped.len() * 18);
        out.push(b'd');
        let lists: [(&[u8], Vec<u8>); 6] = [
            (b"added", compact(self.added.iter().map(|(a, _)| *a), false)),
            (b"added.f", flags(false)),
            (b"added6", compact(self.added.iter().map(|(a, _)| *a), true)),
            (b"added6.f", flags(true)),
            (b"dropped", compact(self.dropped.iter().copied(), false)),
            (b"dropped6", compact(self.dropped.iter().copied(), true)),
        ];
        for (key, value) in lists {
            put_bytes(&mut out, key);
            put_bytes(&mut out, &value);
        }
        out.push(b'e');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_v4_and_v6_with_flags() {
        let msg = PexMessage {
            added: vec![
                ("10.0.0.1:6881".parse().unwrap(), FLAG_SEED),
                ("[2001:db8::1]:51413".parse().unwrap(), 0),
                ("127.0.0.9:7000".parse().unwrap(), 0x10),
            ],
            dropped: vec!["192.168.1.2:1".parse().unwrap(), "[::1]:2".parse().unwrap()],
        };
        let bytes = msg.encode();
        assert!(bytes.starts_with(b"d5:added12:\x0a\0\0\x01\x1a\xe1\x7f\0\0\x09\x1b\x58"));
        let back = PexMessage::parse(&bytes).unwrap();
        assert_eq!(back.dropped, msg.dropped);
        let mut want = msg.added.clone();
        want.sort_by_key(|(a, _)| a.is_ipv6());
        assert_eq!(back.added, want);
    }

    #[test]
    fn bep11_vector() {
        // One added IPv4 peer 1.2.3.4:0x1ae1 (6881) flagged seed, nothing dropped.
        let payload = b"d5:added6:\x01\x02\x03\x04\x1a\xe17:added.f1:\x027:dropped0:e";
        let msg = PexMessage::parse(payload).unwrap();
        assert_eq!(
            msg.added,
            vec![("1.2.3.4:6881".parse().unwrap(), FLAG_SEED)]
        );
        assert!(msg.dropped.is_empty());
    }

    #[test]
    fn hostile_payloads_are_bounded() {
        assert!(PexMessage::parse(&vec![b'x'; MAX_PEX_LEN + 1]).is_err());
        assert!(PexMessage::parse(b"le").is_err());
        let mut many = b"d5:added".to_vec();
        let list = vec![1u8; 6 * 1000];
        many.extend_from_slice(format!("{}:", list.len()).as_bytes());
        many.extend_from_slice(&list);
        many.push(b'e');
        assert_eq!(
            PexMessage::parse(&many).unwrap().added.len(),
            MAX_PEX_PEERS_READ
        );
        // A trailing partial entry, a port of 0, a wrong type: ignored.
        let odd = b"d5:added8:\x01\x02\x03\x04\0\0\x05\x067:droppedi3ee";
        assert_eq!(PexMessage::parse(odd).unwrap(), PexMessage::default());
    }
}
