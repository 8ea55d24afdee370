//! BEP 15 packet layouts as fixed-offset views (smoltcp style): each view's `new_checked`
//! checks the length once, after which its accessors cannot fail. Writers append to a
//! caller-provided buffer and never allocate beyond it.
//!
//! All integers are big-endian (BEP 15 "network byte order"). Longer packets than a layout
//! needs are accepted: "Do not expect packets to be exactly of a certain size. Future extensions
//! could increase the size of packets" (BEP 15; BEP 41 options follow the announce fields).

use std::net::SocketAddr;

use seednode_wire::{InfoHash, PeerId};

use crate::swarm::{COMPACT_V4_LEN, COMPACT_V6_LEN};

/// The connect request's magic `protocol_id` (BEP 15 §connect).
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;

/// Action numbers (BEP 15).
pub mod action {
    /// Connect.
    pub const CONNECT: u32 = 0;
    /// Announce.
    pub const ANNOUNCE: u32 = 1;
    /// Scrape.
    pub const SCRAPE: u32 = 2;
    /// Error (responses only).
    pub const ERROR: u32 = 3;
}

/// Byte offsets of request fields (client → tracker).
pub mod request {
    use std::ops::Range;

    /// `connection_id`; `protocol_id` in a connect request.
    pub const CONNECTION_ID: Range<usize> = 0..8;
    /// `action`.
    pub const ACTION: Range<usize> = 8..12;
    /// `transaction_id`.
    pub const TRANSACTION_ID: Range<usize> = 12..16;
    /// Announce `info_hash`.
    pub const INFO_HASH: Range<usize> = 16..36;
    /// Announce `peer_id`.
    pub const PEER_ID: Range<usize> = 36..56;
    /// Announce `downloaded`.
    pub const DOWNLOADED: Range<usize> = 56..64;
    /// Announce `left`.
    pub const LEFT: Range<usize> = 64..72;
    /// Announce `uploaded`.
    pub const UPLOADED: Range<usize> = 72..80;
    /// Announce `event`.
    pub const EVENT: Range<usize> = 80..84;
    /// Announce `IP address` (ignored by this tracker, TU8).
    pub const IP_ADDRESS: Range<usize> = 84..88;
    /// Announce `key`.
    pub const KEY: Range<usize> = 88..92;
    /// Announce `num_want` (signed; -1 is "default").
    pub const NUM_WANT: Range<usize> = 92..96;
    /// Announce `port`.
    pub const PORT: Range<usize> = 96..98;
}

/// Byte offsets of response fields (tracker → client).
pub mod response {
    use std::ops::Range;

    /// `action`.
    pub const ACTION: Range<usize> = 0..4;
    /// `transaction_id`.
    pub const TRANSACTION_ID: Range<usize> = 4..8;
    /// Connect `connection_id`.
    pub const CONNECTION_ID: Range<usize> = 8..16;
    /// Announce `interval`.
    pub const INTERVAL: Range<usize> = 8..12;
    /// Announce `leechers`.
    pub const LEECHERS: Range<usize> = 12..16;
    /// Announce `seeders`.
    pub const SEEDERS: Range<usize> = 16..20;
}

/// Length of the common request header (`connection_id`, `action`, `transaction_id`), bytes.
pub const REQUEST_HEADER_LEN: usize = 16;
/// Length of a connect request, bytes.
pub const CONNECT_REQUEST_LEN: usize = 16;
/// Length of an announce request without BEP 41 options, bytes.
pub const ANNOUNCE_REQUEST_LEN: usize = 98;
/// Length of one info-hash in a scrape request, bytes.
pub const SCRAPE_INFO_HASH_LEN: usize = 20;
/// Length of the common response header (`action`, `transaction_id`), bytes.
pub const RESPONSE_HEADER_LEN: usize = 8;
/// Length of a connect response, bytes.
pub const CONNECT_RESPONSE_LEN: usize = 16;
/// Length of an announce response before its peers, bytes.
pub const ANNOUNCE_RESPONSE_HEADER_LEN: usize = 20;
/// Length of one scrape response entry (`seeders`, `completed`, `leechers`), bytes.
pub const SCRAPE_ENTRY_LEN: usize = 12;
/// Length of an IPv4 peer in an announce response, bytes.
pub const PEER_V4_LEN: usize = COMPACT_V4_LEN;
/// Length of an IPv6 peer in an announce response (BEP 15 §IPv6), bytes.
pub const PEER_V6_LEN: usize = COMPACT_V6_LEN;

fn be_u32(b: &[u8], at: std::ops::Range<usize>) -> u32 {
    let mut out = [0u8; 4];
    out.copy_from_slice(&b[at]);
    u32::from_be_bytes(out)
}

fn be_u64(b: &[u8], at: std::ops::Range<usize>) -> u64 {
    let mut out = [0u8; 8];
    out.copy_from_slice(&b[at]);
    u64::from_be_bytes(out)
}

fn bytes_20(b: &[u8], at: std::ops::Range<usize>) -> [u8; 20] {
    let mut out = [0u8; 20];
    out.copy_from_slice(&b[at]);
    out
}

/// The header every request starts with.
#[derive(Debug, Clone, Copy)]
pub struct RequestHeader<'a>(&'a [u8]);

impl<'a> RequestHeader<'a> {
    /// `None` when `datagram` is shorter than [`REQUEST_HEADER_LEN`].
    #[must_use]
    pub fn new_checked(datagram: &'a [u8]) -> Option<Self> {
        (datagram.len() >= REQUEST_HEADER_LEN).then_some(Self(datagram))
    }

    /// `connection_id` (the magic `protocol_id` in a connect request).
    #[must_use]
    pub fn connection_id(&self) -> u64 {
        be_u64(self.0, request::CONNECTION_ID)
    }

    /// `action`.
    #[must_use]
    pub fn action(&self) -> u32 {
        be_u32(self.0, request::ACTION)
    }

    /// `transaction_id`.
    #[must_use]
    pub fn transaction_id(&self) -> u32 {
        be_u32(self.0, request::TRANSACTION_ID)
    }
}

/// An announce request (BEP 15 §announce).
#[derive(Debug, Clone, Copy)]
pub struct AnnounceRequest<'a>(&'a [u8]);

impl<'a> AnnounceRequest<'a> {
    /// `None` when `datagram` is shorter than [`ANNOUNCE_REQUEST_LEN`].
    #[must_use]
    pub fn new_checked(datagram: &'a [u8]) -> Option<Self> {
        (datagram.len() >= ANNOUNCE_REQUEST_LEN).then_some(Self(datagram))
    }

    /// The common header.
    #[must_use]
    pub const fn header(&self) -> RequestHeader<'a> {
        RequestHeader(self.0)
    }

    /// `info_hash`.
    #[must_use]
    pub fn info_hash(&self) -> InfoHash {
        InfoHash(bytes_20(self.0, request::INFO_HASH))
    }

    /// `peer_id`.
    #[must_use]
    pub fn peer_id(&self) -> PeerId {
        PeerId(bytes_20(self.0, request::PEER_ID))
    }

    /// `downloaded`, bytes.
    #[must_use]
    pub fn downloaded(&self) -> u64 {
        be_u64(self.0, request::DOWNLOADED)
    }

    /// `left`, bytes.
    #[must_use]
    pub fn left(&self) -> u64 {
        be_u64(self.0, request::LEFT)
    }

    /// `uploaded`, bytes.
    #[must_use]
    pub fn uploaded(&self) -> u64 {
        be_u64(self.0, request::UPLOADED)
    }

    /// `event` as sent (0 none, 1 completed, 2 started, 3 stopped).
    #[must_use]
    pub fn event(&self) -> u32 {
        be_u32(self.0, request::EVENT)
    }

    /// `IP address` as sent (this tracker ignores it, TU8).
    #[must_use]
    pub fn ip_address(&self) -> u32 {
        be_u32(self.0, request::IP_ADDRESS)
    }

    /// `key`.
    #[must_use]
    pub fn key(&self) -> u32 {
        be_u32(self.0, request::KEY)
    }

    /// `num_want` (signed: -1 asks for the default).
    #[must_use]
    pub fn num_want(&self) -> i32 {
        be_u32(self.0, request::NUM_WANT) as i32
    }

    /// `port`.
    #[must_use]
    pub fn port(&self) -> u16 {
        let mut b = [0u8; 2];
        b.copy_from_slice(&self.0[request::PORT]);
        u16::from_be_bytes(b)
    }
}

/// A scrape request (BEP 15 §scrape): the header then 20-byte info-hashes.
#[derive(Debug, Clone, Copy)]
pub struct ScrapeRequest<'a>(&'a [u8]);

impl<'a> ScrapeRequest<'a> {
    /// `None` when `datagram` is shorter than the header or its tail is not whole info-hashes.
    #[must_use]
    pub fn new_checked(datagram: &'a [u8]) -> Option<Self> {
        let tail = datagram.len().checked_sub(REQUEST_HEADER_LEN)?;
        (tail % SCRAPE_INFO_HASH_LEN == 0).then_some(Self(datagram))
    }

    /// The common header.
    #[must_use]
    pub const fn header(&self) -> RequestHeader<'a> {
        RequestHeader(self.0)
    }

    /// Number of info-hashes in the request.
    #[must_use]
    pub fn len(&self) -> usize {
        (self.0.len() - REQUEST_HEADER_LEN) / SCRAPE_INFO_HASH_LEN
    }

    /// True when the request names no info-hash (a "full scrape", which BEP 15 cannot do).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The info-hashes, in request order.
    pub fn info_hashes(&self) -> impl Iterator<Item = InfoHash> + 'a {
        self.0[REQUEST_HEADER_LEN..]
            .chunks_exact(SCRAPE_INFO_HASH_LEN)
            .map(|c| InfoHash(bytes_20(c, 0..20)))
    }
}

/// The header every response starts with.
#[derive(Debug, Clone, Copy)]
pub struct ResponseHeader<'a>(&'a [u8]);

impl<'a> ResponseHeader<'a> {
    /// `None` when `datagram` is shorter than [`RESPONSE_HEADER_LEN`].
    #[must_use]
    pub fn new_checked(datagram: &'a [u8]) -> Option<Self> {
        (datagram.len() >= RESPONSE_HEADER_LEN).then_some(Self(datagram))
    }

    /// `action`.
    #[must_use]
    pub fn action(&self) -> u32 {
        be_u32(self.0, response::ACTION)
    }

    /// `transaction_id`.
    #[must_use]
    pub fn transaction_id(&self) -> u32 {
        be_u32(self.0, response::TRANSACTION_ID)
    }

    /// Everything after the header (the error message of an error response).
    #[must_use]
    pub fn payload(&self) -> &'a [u8] {
        &self.0[RESPONSE_HEADER_LEN..]
    }
}

/// A connect response.
#[derive(Debug, Clone, Copy)]
pub struct ConnectResponse<'a>(&'a [u8]);

impl<'a> ConnectResponse<'a> {
    /// `None` when `datagram` is shorter than [`CONNECT_RESPONSE_LEN`].
    #[must_use]
    pub fn new_checked(datagram: &'a [u8]) -> Option<Self> {
        (datagram.len() >= CONNECT_RESPONSE_LEN).then_some(Self(datagram))
    }

    /// `connection_id`.
    #[must_use]
    pub fn connection_id(&self) -> u64 {
        be_u64(self.0, response::CONNECTION_ID)
    }
}

/// An announce response; `peer_len` is [`PEER_V4_LEN`] or [`PEER_V6_LEN`], chosen by the address
/// family of the socket it arrived on (BEP 15 §IPv6).
#[derive(Debug, Clone, Copy)]
pub struct AnnounceResponse<'a>(&'a [u8]);

impl<'a> AnnounceResponse<'a> {
    /// `None` when `datagram` is shorter than [`ANNOUNCE_RESPONSE_HEADER_LEN`].
    #[must_use]
    pub fn new_checked(datagram: &'a [u8]) -> Option<Self> {
        (datagram.len() >= ANNOUNCE_RESPONSE_HEADER_LEN).then_some(Self(datagram))
    }

    /// `interval`, seconds.
    #[must_use]
    pub fn interval(&self) -> u32 {
        be_u32(self.0, response::INTERVAL)
    }

    /// `leechers`.
    #[must_use]
    pub fn leechers(&self) -> u32 {
        be_u32(self.0, response::LEECHERS)
    }

    /// `seeders`.
    #[must_use]
    pub fn seeders(&self) -> u32 {
        be_u32(self.0, response::SEEDERS)
    }

    /// The peers, `peer_len` bytes each; a trailing partial entry is ignored.
    pub fn peers(&self, peer_len: usize) -> impl Iterator<Item = SocketAddr> + 'a {
        let v6 = peer_len == PEER_V6_LEN;
        self.0[ANNOUNCE_RESPONSE_HEADER_LEN..]
            .chunks_exact(if v6 { PEER_V6_LEN } else { PEER_V4_LEN })
            .map(compact_peer)
    }
}

/// Decodes one compact peer of 6 (IPv4) or 18 (IPv6) bytes; other lengths give the unspecified
/// address.
#[must_use]
pub fn compact_peer(c: &[u8]) -> SocketAddr {
    match c.len() {
        COMPACT_V4_LEN => {
            SocketAddr::from(([c[0], c[1], c[2], c[3]], u16::from_be_bytes([c[4], c[5]])))
        }
        COMPACT_V6_LEN => {
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&c[..16]);
            SocketAddr::from((ip, u16::from_be_bytes([c[16], c[17]])))
        }
        _ => SocketAddr::from(([0, 0, 0, 0], 0)),
    }
}

// ----------------------------------------------------------------------------------------------
// Writers. Each clears nothing: it appends to `out`.
// ----------------------------------------------------------------------------------------------

/// Appends a connect request.
pub fn write_connect_request(out: &mut Vec<u8>, transaction_id: u32) {
    out.extend_from_slice(&PROTOCOL_ID.to_be_bytes());
    out.extend_from_slice(&action::CONNECT.to_be_bytes());
    out.extend_from_slice(&transaction_id.to_be_bytes());
}

/// The fields of an announce request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnounceFields {
    /// `connection_id` from the connect response.
    pub connection_id: u64,
    /// `transaction_id`.
    pub transaction_id: u32,
    /// `info_hash`.
    pub info_hash: InfoHash,
    /// `peer_id`.
    pub peer_id: PeerId,
    /// `downloaded`, bytes.
    pub downloaded: u64,
    /// `left`, bytes.
    pub left: u64,
    /// `uploaded`, bytes.
    pub uploaded: u64,
    /// `event` (0 none, 1 completed, 2 started, 3 stopped).
    pub event: u32,
    /// `key`.
    pub key: u32,
    /// `num_want`; -1 for the tracker's default.
    pub num_want: i32,
    /// `port`.
    pub port: u16,
}

/// Appends an announce request (`IP address` 0: "the sender's address").
pub fn write_announce_request(out: &mut Vec<u8>, f: &AnnounceFields) {
    out.extend_from_slice(&f.connection_id.to_be_bytes());
    out.extend_from_slice(&action::ANNOUNCE.to_be_bytes());
    out.extend_from_slice(&f.transaction_id.to_be_bytes());
    out.extend_from_slice(&f.info_hash.0);
    out.extend_from_slice(&f.peer_id.0);
    out.extend_from_slice(&f.downloaded.to_be_bytes());
    out.extend_from_slice(&f.left.to_be_bytes());
    out.extend_from_slice(&f.uploaded.to_be_bytes());
    out.extend_from_slice(&f.event.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&f.key.to_be_bytes());
    out.extend_from_slice(&f.num_want.to_be_bytes());
    out.extend_from_slice(&f.port.to_be_bytes());
}

/// Appends a scrape request.
pub fn write_scrape_request(
    out: &mut Vec<u8>,
    connection_id: u64,
    transaction_id: u32,
    info_hashes: &[InfoHash],
) {
    out.extend_from_slice(&connection_id.to_be_bytes());
    out.extend_from_slice(&action::SCRAPE.to_be_bytes());
    out.extend_from_slice(&transaction_id.to_be_bytes());
    for ih in info_hashes {
        out.extend_from_slice(&ih.0);
    }
}

/// Appends a connect response.
pub fn write_connect_response(out: &mut Vec<u8>, transaction_id: u32, connection_id: u64) {
    out.extend_from_slice(&action::CONNECT.to_be_bytes());
    out.extend_from_slice(&transaction_id.to_be_bytes());
    out.extend_from_slice(&connection_id.to_be_bytes());
}

/// Appends an announce response header; the peers follow as compact entries.
pub fn write_announce_response_header(
    out: &mut Vec<u8>,
    transaction_id: u32,
    interval: u32,
    leechers: u32,
    seeders: u32,
) {
    out.extend_from_slice(&action::ANNOUNCE.to_be_bytes());
    out.extend_from_slice(&transaction_id.to_be_bytes());
    out.extend_from_slice(&interval.to_be_bytes());
    out.extend_from_slice(&leechers.to_be_bytes());
    out.extend_from_slice(&seeders.to_be_bytes());
}

/// Appends a scrape response header; entries follow.
pub fn write_scrape_response_header(out: &mut Vec<u8>, transaction_id: u32) {
    out.extend_from_slice(&action::SCRAPE.to_be_bytes());
    out.extend_from_slice(&transaction_id.to_be_bytes());
}

/// Appends one scrape response entry.
pub fn write_scrape_entry(out: &mut Vec<u8>, seeders: u32, completed: u32, leechers: u32) {
    out.extend_from_slice(&seeders.to_be_bytes());
    out.extend_from_slice(&completed.to_be_bytes());
    out.extend_from_slice(&leechers.to_be_bytes());
}

/// Appends an error response.
pub fn write_error(out: &mut Vec<u8>, transaction_id: u32, message: &[u8]) {
    out.extend_from_slice(&action::ERROR.to_be_bytes());
    out.extend_from_slice(&transaction_id.to_be_bytes());
    out.extend_from_slice(message);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn bep15_connect_request_vector() {
        let mut out = Vec::new();
        write_connect_request(&mut out, 0xdead_beef);
        assert_eq!(
            out,
            [
                0x00, 0x00, 0x04, 0x17, 0x27, 0x10, 0x19, 0x80, // protocol_id
                0, 0, 0, 0, // action connect
                0xde, 0xad, 0xbe, 0xef, // transaction_id
            ]
        );
        let h = RequestHeader::new_checked(&out).unwrap();
        assert_eq!(
            (h.connection_id(), h.action(), h.transaction_id()),
            (PROTOCOL_ID, 0, 0xdead_beef)
        );
        assert!(RequestHeader::new_checked(&out[..15]).is_none());
    }

    #[test]
    fn bep15_connect_response_vector() {
        let mut out = Vec::new();
        write_connect_response(&mut out, 7, 0x0102_0304_0506_0708);
        assert_eq!(out, [0, 0, 0, 0, 0, 0, 0, 7, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            ConnectResponse::new_checked(&out).unwrap().connection_id(),
            0x0102_0304_0506_0708
        );
        assert!(ConnectResponse::new_checked(&out[..15]).is_none());
    }

    #[test]
    fn bep15_announce_request_offsets() {
        let f = AnnounceFields {
            connection_id: 0x1111_1111_1111_1111,
            transaction_id: 0x2222_2222,
            info_hash: InfoHash([0x33; 20]),
            peer_id: PeerId([0x44; 20]),
            downloaded: 0x55,
            left: 0x66,
            uploaded: 0x77,
            event: 2,
            key: 0x8888_8888,
            num_want: -1,
            port: 0x1ae1,
        };
        let mut out = Vec::new();
        write_announce_request(&mut out, &f);
        assert_eq!(out.len(), ANNOUNCE_REQUEST_LEN);
        assert_eq!(&out[8..12], &[0, 0, 0, 1]);
        assert_eq!(&out[16..36], &[0x33; 20]);
        assert_eq!(&out[36..56], &[0x44; 20]);
        assert_eq!(out[63], 0x55);
        assert_eq!(out[71], 0x66);
        assert_eq!(out[79], 0x77);
        assert_eq!(&out[80..84], &[0, 0, 0, 2]);
        assert_eq!(&out[84..88], &[0, 0, 0, 0], "IP address 0");
        assert_eq!(&out[92..96], &[0xff; 4], "num_want -1");
        assert_eq!(&out[96..98], &[0x1a, 0xe1]);
        let v = AnnounceRequest::new_checked(&out).unwrap();
        assert_eq!(v.num_want(), -1);
        assert!(AnnounceRequest::new_checked(&out[..97]).is_none());
    }

    #[test]
    fn bep15_announce_response_v4_and_v6_strides() {
        let mut out = Vec::new();
        write_announce_response_header(&mut out, 9, 1800, 3, 4);
        out.extend_from_slice(&[127, 0, 0, 1, 0x1a, 0xe1]);
        assert_eq!(
            &out[..20],
            &[
                0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0x07, 0x08, 0, 0, 0, 3, 0, 0, 0, 4
            ]
        );
        let r = AnnounceResponse::new_checked(&out).unwrap();
        assert_eq!((r.interval(), r.leechers(), r.seeders()), (1800, 3, 4));
        let peers: Vec<_> = r.peers(PEER_V4_LEN).collect();
        assert_eq!(peers, vec!["127.0.0.1:6881".parse().unwrap()]);
        let mut v6 = Vec::new();
        write_announce_response_header(&mut v6, 9, 1800, 0, 1);
        v6.extend_from_slice(&[
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x1a, 0xe1,
        ]);
        v6.push(0xff); // trailing partial entry ignored
        let r = AnnounceResponse::new_checked(&v6).unwrap();
        let peers: Vec<_> = r.peers(PEER_V6_LEN).collect();
        assert_eq!(peers, vec!["[2001:db8::1]:6881".parse().unwrap()]);
    }

    #[test]
    fn bep15_scrape_and_error_vectors() {
        let mut out = Vec::new();
        write_scrape_request(&mut out, 5, 6, &[InfoHash([1; 20]), InfoHash([2; 20])]);
        assert_eq!(out.len(), 16 + 40);
        assert_eq!(&out[8..12], &[0, 0, 0, 2]);
        let s = ScrapeRequest::new_checked(&out).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            s.info_hashes().collect::<Vec<_>>(),
            vec![InfoHash([1; 20]), InfoHash([2; 20])]
        );
        assert!(ScrapeRequest::new_checked(&out[..55]).is_none());
        let mut resp = Vec::new();
        write_scrape_response_header(&mut resp, 6);
        write_scrape_entry(&mut resp, 1, 2, 3);
        assert_eq!(
            resp,
            [0, 0, 0, 2, 0, 0, 0, 6, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]
        );
        let mut err = Vec::new();
        write_error(&mut err, 6, b"nope");
        assert_eq!(err, [0, 0, 0, 3, 0, 0, 0, 6, b'n', b'o', b'p', b'e']);
        let h = ResponseHeader::new_checked(&err).unwrap();
        assert_eq!(
            (h.action(), h.transaction_id(), h.payload()),
            (3, 6, &b"nope"[..])
        );
    }

    #[test]
    fn every_short_length_is_refused_without_panic() {
        let buf = [0xffu8; ANNOUNCE_REQUEST_LEN];
        for len in 0..=ANNOUNCE_REQUEST_LEN {
            let b = &buf[..len];
            assert_eq!(RequestHeader::new_checked(b).is_some(), len >= 16);
            assert_eq!(AnnounceRequest::new_checked(b).is_some(), len >= 98);
            assert_eq!(
                ScrapeRequest::new_checked(b).is_some(),
                len >= 16 && (len - 16) % 20 == 0
            );
            assert_eq!(ResponseHeader::new_checked(b).is_some(), len >= 8);
            assert_eq!(ConnectResponse::new_checked(b).is_some(), len >= 16);
            if let Some(r) = AnnounceResponse::new_checked(b) {
                assert_eq!(r.peers(6).count(), (len - 20) / 6);
            }
        }
    }

    proptest! {
        #[test]
        fn announce_request_round_trips(
            connection_id: u64, transaction_id: u32, ih: [u8; 20], pid: [u8; 20],
            downloaded: u64, left: u64, uploaded: u64, event in 0u32..4, key: u32,
            num_want: i32, port: u16, extra in proptest::collection::vec(any::<u8>(), 0..32),
        ) {
            let f = AnnounceFields {
                connection_id, transaction_id, info_hash: InfoHash(ih), peer_id: PeerId(pid),
                downloaded, left, uploaded, event, key, num_want, port,
            };
            let mut out = Vec::new();
            write_announce_request(&mut out, &f);
            out.extend_from_slice(&extra); // BEP 41 options are ignored
            let v = AnnounceRequest::new_checked(&out).unwrap();
            let back = AnnounceFields {
                connection_id: v.header().connection_id(),
                transaction_id: v.header().transaction_id(),
                info_hash: v.info_hash(), peer_id: v.peer_id(), downloaded: v.downloaded(),
                left: v.left(), uploaded: v.uploaded(), event: v.event(), key: v.key(),
                num_want: v.num_want(), port: v.port(),
            };
            prop_assert_eq!(back, f);
            prop_assert_eq!(v.header().action(), action::ANNOUNCE);
            prop_assert_eq!(v.ip_address(), 0);
        }

        #[test]
        fn announce_response_round_trips(
            txid: u32, interval: u32, leechers: u32, seeders: u32,
            peers in proptest::collection::vec(any::<([u8; 4], u16)>(), 0..80),
        ) {
            let mut out = Vec::new();
            write_announce_response_header(&mut out, txid, interval, leechers, seeders);
            for (ip, port) in &peers {
                out.extend_from_slice(ip);
                out.extend_from_slice(&port.to_be_bytes());
            }
            let h = ResponseHeader::new_checked(&out).unwrap();
            prop_assert_eq!((h.action(), h.transaction_id()), (action::ANNOUNCE, txid));
            let r = AnnounceResponse::new_checked(&out).unwrap();
            prop_assert_eq!((r.interval(), r.leechers(), r.seeders()), (interval, leechers, seeders));
            let back: Vec<SocketAddr> = r.peers(PEER_V4_LEN).collect();
            let want: Vec<SocketAddr> = peers.iter().map(|(ip, port)| SocketAddr::from((*ip, *port))).collect();
            prop_assert_eq!(back, want);
        }
    }
}
