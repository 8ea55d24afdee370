//! Parsing tracker responses on the client side: HTTP bodies (BEP 3, BEP 23 compact and the
//! dictionary model, BEP 7 `peers6`) and BEP 15 UDP datagrams.
//!
//! Leniency, on purpose and as libtorrent: a compact `peers` string whose length is not a multiple
//! of 6 (18 for `peers6`) has its trailing partial entry ignored; dictionary-model entries with a
//! host name, a bad IP or a bad port are skipped, not fatal; a missing `peers` means no peers;
//! a missing `interval` means [`crate::limits::CLIENT_DEFAULT_ANNOUNCE_INTERVAL`]. Peers with port
//! 0 or an unspecified address are dropped. At most
//! [`MAX_CLIENT_PEERS_PER_RESPONSE`] peers are kept.

use std::net::{IpAddr, SocketAddr};

use seednode_wire::bencode::{self, DecodeError, Value};

use crate::limits::{
    MAX_CLIENT_PEERS_PER_RESPONSE, MAX_FAILURE_REASON_LEN, MAX_TRACKER_RESPONSE_LEN,
};
use crate::udp::packet::{
    AnnounceResponse, ConnectResponse, PEER_V4_LEN, PEER_V6_LEN, ResponseHeader, action,
    compact_peer,
};

/// A successful announce, from either protocol.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnnounceReply {
    /// `interval`, seconds.
    pub interval: Option<u32>,
    /// `min interval`, seconds (HTTP only).
    pub min_interval: Option<u32>,
    /// `tracker id` to send back as `trackerid` (HTTP only; at most 64 bytes kept).
    pub tracker_id: Option<Vec<u8>>,
    /// `complete` / UDP `seeders`.
    pub seeders: Option<u32>,
    /// `incomplete` / UDP `leechers`.
    pub leechers: Option<u32>,
    /// `warning message`, truncated to [`MAX_FAILURE_REASON_LEN`] bytes.
    pub warning: Option<String>,
    /// Peers, IPv4 then IPv6, at most [`MAX_CLIENT_PEERS_PER_RESPONSE`].
    pub peers: Vec<SocketAddr>,
}

/// A parsed HTTP announce response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpAnnounceResponse {
    /// `failure reason` (BEP 3), truncated to [`MAX_FAILURE_REASON_LEN`] bytes.
    Failure(String),
    /// Any other dictionary.
    Success(AnnounceReply),
}

/// Why a tracker response was unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// The body is longer than [`MAX_TRACKER_RESPONSE_LEN`].
    #[error("tracker response of {got} bytes is over the {limit}-byte limit")]
    TooLarge {
        /// Bytes received.
        got: usize,
        /// [`MAX_TRACKER_RESPONSE_LEN`].
        limit: usize,
    },
    /// The body is not bencode.
    #[error("tracker response is not bencode: {0}")]
    Bencode(#[from] DecodeError),
    /// The body is bencode but not a dictionary.
    #[error("tracker response is not a dictionary")]
    NotADictionary,
}

/// Parses an HTTP announce response body.
///
/// # Errors
/// [`ResponseError`] when the body is too long, not bencode, or not a dictionary.
pub fn parse_http_announce(body: &[u8]) -> Result<HttpAnnounceResponse, ResponseError> {
    if body.len() > MAX_TRACKER_RESPONSE_LEN {
        return Err(ResponseError::TooLarge {
            got: body.len(),
            limit: MAX_TRACKER_RESPONSE_LEN,
        });
    }
    let value = bencode::decode(body)?;
    let dict = value.as_dict().ok_or(ResponseError::NotADictionary)?;
    if let Some(reason) = dict.get(b"failure reason").and_then(Value::as_bytes) {
        return Ok(HttpAnnounceResponse::Failure(bounded_text(reason)));
    }
    let int = |key: &[u8]| {
        dict.get(key)
            .and_then(Value::as_int)
            .and_then(|n| u32::try_from(n).ok())
    };
    let mut reply = AnnounceReply {
        interval: int(b"interval"),
        min_interval: int(b"min interval"),
        tracker_id: dict
            .get(b"tracker id")
            .and_then(Value::as_bytes)
            .filter(|id| id.len() <= 64)
            .map(<[u8]>::to_vec),
        seeders: int(b"complete"),
        leechers: int(b"incomplete"),
        warning: dict
            .get(b"warning message")
            .and_then(Value::as_bytes)
            .map(bounded_text),
        peers: Vec::new(),
    };
    match dict.get(b"peers") {
        Some(Value::Bytes(raw)) => push_compact(&mut reply.peers, raw, PEER_V4_LEN),
        Some(Value::List(list)) => {
            for entry in list {
                if reply.peers.len() >= MAX_CLIENT_PEERS_PER_RESPONSE {
                    break;
                }
                if let Some(addr) = dict_peer(entry) {
                    reply.peers.push(addr);
                }
            }
        }
        _ => {}
    }
    if let Some(raw) = dict.get(b"peers6").and_then(Value::as_bytes) {
        push_compact(&mut reply.peers, raw, PEER_V6_LEN);
    }
    Ok(HttpAnnounceResponse::Success(reply))
}

fn dict_peer(entry: &Value<'_>) -> Option<SocketAddr> {
    let d = entry.as_dict()?;
    let ip: IpAddr = d.get(b"ip")?.as_str()?.parse().ok()?;
    let port = u16::try_from(d.get(b"port")?.as_int()?).ok()?;
    usable(SocketAddr::new(ip, port))
}

fn usable(addr: SocketAddr) -> Option<SocketAddr> {
    (addr.port() != 0 && !addr.ip().is_unspecified()).then_some(addr)
}

fn push_compact(peers: &mut Vec<SocketAddr>, raw: &[u8], stride: usize) {
    for c in raw.chunks_exact(stride) {
        if peers.len() >= MAX_CLIENT_PEERS_PER_RESPONSE {
            return;
        }
        if let Some(addr) = usable(compact_peer(c)) {
            peers.push(addr);
        }
    }
}

/// Lossy UTF-8, truncated to [`MAX_FAILURE_REASON_LEN`] bytes at a character boundary.
pub(crate) fn bounded_text(raw: &[u8]) -> String {
    let raw = &raw[..raw.len().min(MAX_FAILURE_REASON_LEN)];
    let mut s = String::from_utf8_lossy(raw).into_owned();
    while s.len() > MAX_FAILURE_REASON_LEN {
        s.pop();
    }
    s
}

/// A parsed BEP 15 response datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpResponse {
    /// A connect response.
    Connect {
        /// `transaction_id`.
        transaction_id: u32,
        /// `connection_id`.
        connection_id: u64,
    },
    /// An announce response.
    Announce {
        /// `transaction_id`.
        transaction_id: u32,
        /// The reply (interval, counts, peers).
        reply: AnnounceReply,
    },
    /// An error response, message truncated to [`MAX_FAILURE_REASON_LEN`] bytes.
    Error {
        /// `transaction_id`.
        transaction_id: u32,
        /// The message.
        message: String,
    },
}

/// Parses a BEP 15 response datagram. `ipv6` selects the 18-byte peer layout: true when the
/// datagram came from an IPv6 (not IPv4-mapped) address (BEP 15 §IPv6). `None` for datagrams
/// too short for their action, and for actions a client does not expect (scrape responses are
/// not parsed: the client does not scrape).
#[must_use]
pub fn parse_udp_response(datagram: &[u8], ipv6: bool) -> Option<UdpResponse> {
    let header = ResponseHeader::new_checked(datagram)?;
    let transaction_id = header.transaction_id();
    match header.action() {
        action::CONNECT => Some(UdpResponse::Connect {
            transaction_id,
            connection_id: ConnectResponse::new_checked(datagram)?.connection_id(),
        }),
        action::ANNOUNCE => {
            let r = AnnounceResponse::new_checked(datagram)?;
            let mut peers = Vec::new();
            let stride = if ipv6 { PEER_V6_LEN } else { PEER_V4_LEN };
            for addr in r.peers(stride) {
                if peers.len() >= MAX_CLIENT_PEERS_PER_RESPONSE {
                    break;
                }
                if let Some(addr) = usable(addr) {
                    peers.push(addr);
                }
            }
            Some(UdpResponse::Announce {
                transaction_id,
                reply: AnnounceReply {
                    interval: Some(r.interval()),
                    seeders: Some(r.seeders()),
                    leechers: Some(r.leechers()),
                    peers,
                    ..AnnounceReply::default()
                },
            })
        }
        action::ERROR => Some(UdpResponse::Error {
            transaction_id,
            message: bounded_text(header.payload()),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn success(body: &[u8]) -> AnnounceReply {
        match parse_http_announce(body).unwrap() {
            HttpAnnounceResponse::Success(r) => r,
            HttpAnnounceResponse::Failure(f) => panic!("failure {f}"),
        }
    }

    #[test]
    fn bep23_compact_and_bep7_peers6() {
        let body = b"d8:completei3e10:incompletei4e8:intervali1800e12:min intervali900e\
5:peers12:\x7f\x00\x00\x01\x1a\xe1\x0a\x00\x00\x02\x00\x50\
6:peers618:\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1a\xe1e";
        let r = success(body);
        assert_eq!((r.interval, r.min_interval), (Some(1800), Some(900)));
        assert_eq!((r.seeders, r.leechers), (Some(3), Some(4)));
        assert_eq!(
            r.peers,
            vec![
                "127.0.0.1:6881".parse().unwrap(),
                "10.0.0.2:80".parse().unwrap(),
                "[2001:db8::1]:6881".parse().unwrap()
            ]
        );
    }

    #[test]
    fn bep3_dictionary_model_skips_bad_entries() {
        let body = b"d8:intervali60e5:peersl\
d2:ip9:127.0.0.17:peer id20:aaaaaaaaaaaaaaaaaaaa4:porti6881ee\
d2:ip11:example.com4:porti1ee\
d2:ip8:10.0.0.14:porti0ee\
d2:ip8:10.0.0.14:porti70000ee\
d2:ip3:::14:porti2ee\
i5e\
ee";
        let r = success(body);
        assert_eq!(
            r.peers,
            vec![
                "127.0.0.1:6881".parse().unwrap(),
                "[::1]:2".parse().unwrap()
            ]
        );
    }

    #[test]
    fn failure_reason_and_errors() {
        assert_eq!(
            parse_http_announce(b"d14:failure reason11:not allowede").unwrap(),
            HttpAnnounceResponse::Failure("not allowed".into())
        );
        let long = format!("d14:failure reason1000:{}e", "é".repeat(500));
        let HttpAnnounceResponse::Failure(f) = parse_http_announce(long.as_bytes()).unwrap() else {
            panic!()
        };
        assert!(f.len() <= MAX_FAILURE_REASON_LEN);
        assert!(matches!(
            parse_http_announce(b"<html>"),
            Err(ResponseError::Bencode(_))
        ));
        assert_eq!(
            parse_http_announce(b"le"),
            Err(ResponseError::NotADictionary)
        );
        let big = vec![b'x'; MAX_TRACKER_RESPONSE_LEN + 1];
        assert!(matches!(
            parse_http_announce(&big),
            Err(ResponseError::TooLarge { .. })
        ));
    }

    #[test]
    fn peers_capped_and_ragged_compact_tolerated() {
        let mut raw = Vec::new();
        for n in 0..1000u32 {
            raw.extend_from_slice(&(0x0a00_0000 + n + 1).to_be_bytes());
            raw.extend_from_slice(&1u16.to_be_bytes());
        }
        raw.push(0xff);
        let mut body = format!("d8:intervali-5e5:peers{}:", raw.len()).into_bytes();
        body.extend_from_slice(&raw);
        body.push(b'e');
        let r = success(&body);
        assert_eq!(r.peers.len(), MAX_CLIENT_PEERS_PER_RESPONSE);
        assert_eq!(r.interval, None, "negative interval ignored");
    }

    #[test]
    fn bep15_responses() {
        let connect = [0, 0, 0, 0, 0, 0, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(
            parse_udp_response(&connect, false),
            Some(UdpResponse::Connect {
                transaction_id: 9,
                connection_id: 0x0102_0304_0506_0708
            })
        );
        assert_eq!(parse_udp_response(&connect[..15], false), None);
        let mut announce = vec![0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 60, 0, 0, 0, 2, 0, 0, 0, 3];
        announce.extend_from_slice(&[127, 0, 0, 1, 0x1a, 0xe1, 0, 0, 0, 0, 0, 0]);
        let Some(UdpResponse::Announce { reply, .. }) = parse_udp_response(&announce, false) else {
            panic!()
        };
        assert_eq!(reply.interval, Some(60));
        assert_eq!((reply.leechers, reply.seeders), (Some(2), Some(3)));
        assert_eq!(reply.peers, vec!["127.0.0.1:6881".parse().unwrap()]);
        let Some(UdpResponse::Announce { reply, .. }) = parse_udp_response(&announce, true) else {
            panic!()
        };
        assert!(reply.peers.is_empty(), "12 bytes are no whole IPv6 peer");
        assert_eq!(
            parse_udp_response(b"\0\0\0\x03\0\0\0\x09bad torrent", false),
            Some(UdpResponse::Error {
                transaction_id: 9,
                message: "bad torrent".into()
            })
        );
        assert_eq!(parse_udp_response(&[0, 0, 0, 2, 0, 0, 0, 9], false), None);
        assert_eq!(parse_udp_response(&[0, 0, 0, 7, 0, 0, 0, 9], false), None);
        for len in 0..announce.len() {
            let _ = parse_udp_response(&announce[..len], false);
            let _ = parse_udp_response(&announce[..len], true);
        }
    }
}
