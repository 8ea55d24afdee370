//! The BEP 15 server: one datagram in, at most one datagram out, written into the caller's
//! buffer.
//!
//! # What gets a reply
//!
//! | Datagram | Reply |
//! |---|---|
//! | connect with the magic `protocol_id`, ≥ 16 bytes | 16-byte connect response (no state kept) |
//! | announce / scrape with a valid connection ID | announce / scrape response, or an error packet for a refusal (port 0, bad event, torrent not allowed, tracker full, scrape of zero hashes or a ragged hash list) |
//! | announce / scrape with a forged, expired or other-IP connection ID | nothing (TU2) |
//! | shorter than 16 bytes, longer than [`MAX_UDP_REQUEST_LEN`], wrong `protocol_id`, unknown action, short announce, source port 0 | nothing (TU1, TU9) |
//!
//! Only a sender that proved its address (a valid connection ID) ever gets more bytes than it
//! sent (SECURITY.md rule 4). Announce replies hold at most [`MAX_UDP_PEERS_V4`] /
//! [`MAX_UDP_PEERS_V6`] peers of the sender's own address family (18-byte entries for IPv6
//! senders, BEP 15 §IPv6); scrape replies answer the first [`MAX_UDP_SCRAPE_INFO_HASHES`].
//! The announce `IP address` field is ignored (TU8); `key` is not stored.

use std::net::SocketAddr;
use std::time::Instant;

use crate::announce::{AnnounceError, AnnounceEvent};
use crate::limits::{
    DEFAULT_NUMWANT, MAX_UDP_PEERS_V4, MAX_UDP_PEERS_V6, MAX_UDP_REQUEST_LEN,
    MAX_UDP_SCRAPE_INFO_HASHES,
};
use crate::server::{PeerAnnounce, Tracker, canonical_addr};
use crate::udp::packet::{
    AnnounceRequest, PROTOCOL_ID, RequestHeader, ScrapeRequest, action, response,
    write_announce_response_header, write_connect_response, write_error, write_scrape_entry,
    write_scrape_response_header,
};

/// Error packet texts (each at most [`crate::limits::MAX_UDP_ERROR_MESSAGE_LEN`] bytes).
const MSG_BAD_PORT: &[u8] = b"invalid port";
const MSG_BAD_EVENT: &[u8] = b"invalid event";
const MSG_NOT_ALLOWED: &[u8] = b"torrent not registered";
const MSG_FULL: &[u8] = b"tracker is full";
const MSG_FULL_SCRAPE: &[u8] = b"full scrape not supported";
const MSG_BAD_SCRAPE: &[u8] = b"malformed scrape";

impl Tracker {
    /// Handles one datagram from `src` (BEP 15). Writes the reply, if any, into `out` (cleared
    /// first) and returns true when `out` must be sent back to `src`; false means send nothing.
    ///
    /// `self_addr` plays the same role as in [`Tracker::http_announce`]: this node's peer
    /// address, listed first for hosted torrents (only to senders of the same address family).
    ///
    /// No allocation happens here once `out` has [`crate::limits::MAX_UDP_REPLY_LEN`] bytes of
    /// capacity, except when a new peer or swarm is stored. A tracker built with
    /// [`Tracker::new`] (no secret) answers nothing.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        src: SocketAddr,
        self_addr: Option<SocketAddr>,
        datagram: &[u8],
        out: &mut Vec<u8>,
    ) -> bool {
        out.clear();
        let src = canonical_addr(src);
        let Some(ids) = self.conn_ids.as_mut() else {
            self.stats.udp_dropped_disabled += 1;
            return false;
        };
        let header = RequestHeader::new_checked(datagram)
            .filter(|_| datagram.len() <= MAX_UDP_REQUEST_LEN && src.port() != 0);
        let Some(header) = header else {
            self.stats.udp_dropped_malformed += 1;
            return false;
        };
        let txid = header.transaction_id();
        match header.action() {
            action::CONNECT if header.connection_id() == PROTOCOL_ID => {
                let id = ids.issue(now, src.ip());
                write_connect_response(out, txid, id);
                self.stats.udp_connects += 1;
                true
            }
            action::ANNOUNCE | action::SCRAPE => {
                if !ids.check(now, src.ip(), header.connection_id()) {
                    self.stats.udp_dropped_connection_id += 1;
                    return false;
                }
                if header.action() == action::ANNOUNCE {
                    self.udp_announce(now, src, self_addr, datagram, txid, out)
                } else {
                    self.udp_scrape(datagram, txid, out)
                }
            }
            _ => {
                self.stats.udp_dropped_malformed += 1;
                false
            }
        }
    }

    fn udp_error(&mut self, txid: u32, message: &[u8], out: &mut Vec<u8>) -> bool {
        out.clear();
        write_error(out, txid, message);
        self.stats.udp_errors_sent += 1;
        true
    }

    fn udp_announce(
        &mut self,
        now: Instant,
        src: SocketAddr,
        self_addr: Option<SocketAddr>,
        datagram: &[u8],
        txid: u32,
        out: &mut Vec<u8>,
    ) -> bool {
        let Some(req) = AnnounceRequest::new_checked(datagram) else {
            self.stats.udp_dropped_malformed += 1;
            return false;
        };
        if req.port() == 0 {
            return self.udp_error(txid, MSG_BAD_PORT, out);
        }
        let Some(event) = AnnounceEvent::from_udp(req.event()) else {
            return self.udp_error(txid, MSG_BAD_EVENT, out);
        };
        let max = if src.is_ipv4() {
            MAX_UDP_PEERS_V4
        } else {
            MAX_UDP_PEERS_V6
        };
        // -1 (or any negative) asks for the default; everything is clamped to one datagram.
        let numwant = usize::try_from(req.num_want())
            .unwrap_or(DEFAULT_NUMWANT)
            .min(max);
        let a = PeerAnnounce {
            info_hash: req.info_hash(),
            // The socket address; the `IP address` field is never used (TU8).
            addr: SocketAddr::new(src.ip(), req.port()),
            left: req.left(),
            event,
            numwant,
        };
        let interval = u32::try_from(self.config.announce_interval.as_secs()).unwrap_or(u32::MAX);
        write_announce_response_header(out, txid, interval, 0, 0);
        match self.announce_core(now, &a, self_addr, true, |p| {
            out.extend_from_slice(p.compact);
        }) {
            Ok(counts) => {
                out[response::LEECHERS].copy_from_slice(&counts.incomplete.to_be_bytes());
                out[response::SEEDERS].copy_from_slice(&counts.complete.to_be_bytes());
                self.stats.udp_announces += 1;
                true
            }
            Err(AnnounceError::Full) => self.udp_error(txid, MSG_FULL, out),
            Err(_) => self.udp_error(txid, MSG_NOT_ALLOWED, out),
        }
    }

    fn udp_scrape(&mut self, datagram: &[u8], txid: u32, out: &mut Vec<u8>) -> bool {
        let Some(req) = ScrapeRequest::new_checked(datagram) else {
            return self.udp_error(txid, MSG_BAD_SCRAPE, out);
        };
        if req.is_empty() {
            return self.udp_error(txid, MSG_FULL_SCRAPE, out);
        }
        write_scrape_response_header(out, txid);
        for ih in req.info_hashes().take(MAX_UDP_SCRAPE_INFO_HASHES) {
            let c = self.scrape_counts(&ih);
            write_scrape_entry(out, c.complete, c.downloaded, c.incomplete);
        }
        self.stats.udp_scrapes += 1;
        true
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // each test reads the clock once, for its epoch
mod tests {
    use std::time::Duration;

    use seednode_wire::{InfoHash, PeerId};

    use super::*;
    use crate::limits::{CONNECTION_ID_BUCKET, CONNECTION_ID_TTL, MAX_UDP_REPLY_LEN};
    use crate::server::TrackerConfig;
    use crate::udp::packet::{
        AnnounceFields, AnnounceResponse, ConnectResponse, PEER_V4_LEN, PEER_V6_LEN,
        ResponseHeader, write_announce_request, write_connect_request, write_scrape_request,
    };

    const IH: InfoHash = InfoHash([0x11; 20]);
    const SECRET: [u8; 32] = [42; 32];

    fn v4(last: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, last], port))
    }

    fn v6(last: u16, port: u16) -> SocketAddr {
        SocketAddr::new(format!("2001:db8::{last:x}").parse().unwrap(), port)
    }

    fn tracker(t0: Instant) -> Tracker {
        let mut t = Tracker::with_secret(TrackerConfig::default(), t0, SECRET);
        t.host(IH);
        t
    }

    fn connect(t: &mut Tracker, now: Instant, src: SocketAddr) -> u64 {
        let mut req = Vec::new();
        write_connect_request(&mut req, 0x1234);
        let mut out = Vec::new();
        assert!(t.handle_datagram(now, src, None, &req, &mut out));
        assert_eq!(
            out.len(),
            16,
            "connect reply no larger than the request (TU4)"
        );
        let h = ResponseHeader::new_checked(&out).unwrap();
        assert_eq!((h.action(), h.transaction_id()), (action::CONNECT, 0x1234));
        ConnectResponse::new_checked(&out).unwrap().connection_id()
    }

    fn announce_fields(connection_id: u64, port: u16, left: u64) -> AnnounceFields {
        AnnounceFields {
            connection_id,
            transaction_id: 0xabcd,
            info_hash: IH,
            peer_id: PeerId([port as u8; 20]),
            downloaded: 0,
            left,
            uploaded: 0,
            event: 2,
            key: 7,
            num_want: -1,
            port,
        }
    }

    fn announce(
        t: &mut Tracker,
        now: Instant,
        src: SocketAddr,
        f: &AnnounceFields,
        me: Option<SocketAddr>,
    ) -> Option<Vec<u8>> {
        let mut req = Vec::new();
        write_announce_request(&mut req, f);
        let mut out = Vec::new();
        t.handle_datagram(now, src, me, &req, &mut out)
            .then_some(out)
    }

    #[test]
    fn bep15_connect_then_announce_ipv4() {
        let t0 = Instant::now();
        let mut t = tracker(t0);
        let me = v4(1, 6881);
        let a = v4(2, 40000);
        let id = connect(&mut t, t0, a);
        let reply = announce(&mut t, t0, a, &announce_fields(id, 7002, 5), Some(me)).unwrap();
        // action 1, txid, interval 1800, leechers 1, seeders 1 (this node), then this node.
        assert_eq!(
            reply,
            [
                0, 0, 0, 1, 0, 0, 0xab, 0xcd, 0, 0, 0x07, 0x08, 0, 0, 0, 1, 0, 0, 0, 1, //
                192, 0, 2, 1, 0x1a, 0xe1,
            ]
        );
        let b = v4(3, 40000);
        let id_b = connect(&mut t, t0, b);
        let reply = announce(&mut t, t0, b, &announce_fields(id_b, 7003, 5), Some(me)).unwrap();
        let r = AnnounceResponse::new_checked(&reply).unwrap();
        assert_eq!((r.leechers(), r.seeders()), (2, 1));
        assert_eq!(
            r.peers(PEER_V4_LEN).collect::<Vec<_>>(),
            vec![me, v4(2, 7002)]
        );
        assert_eq!(t.stats().udp_announces, 2);
    }

    #[test]
    fn bep15_ipv6_announce_uses_18_byte_peers_of_its_family() {
        let t0 = Instant::now();
        let mut t = tracker(t0);
        let id = connect(&mut t, t0, v4(2, 1));
        announce(&mut t, t0, v4(2, 1), &announce_fields(id, 7002, 5), None).unwrap();
        let id = connect(&mut t, t0, v6(2, 1));
        announce(&mut t, t0, v6(2, 1), &announce_fields(id, 7102, 5), None).unwrap();
        let id = connect(&mut t, t0, v6(3, 1));
        let reply = announce(
            &mut t,
            t0,
            v6(3, 1),
            &announce_fields(id, 7103, 5),
            Some(v4(1, 6881)),
        )
        .unwrap();
        assert_eq!(
            reply.len(),
            20 + 18,
            "one IPv6 peer; IPv4 peers and this node's v4 address left out"
        );
        let r = AnnounceResponse::new_checked(&reply).unwrap();
        assert_eq!(r.peers(PEER_V6_LEN).collect::<Vec<_>>(), vec![v6(2, 7102)]);
        assert_eq!(r.leechers(), 3);
    }

    #[test]
    fn connection_id_expires() {
        let t0 = Instant::now();
        let mut t = tracker(t0);
        let a = v4(2, 1);
        let id = connect(&mut t, t0, a);
        let f = announce_fields(id, 7002, 5);
        assert!(announce(&mut t, t0 + CONNECTION_ID_TTL, a, &f, None).is_some());
        assert!(announce(&mut t, t0 + 2 * CONNECTION_ID_TTL, a, &f, None).is_none());
        assert!(
            announce(
                &mut t,
                t0 + CONNECTION_ID_TTL + CONNECTION_ID_BUCKET,
                a,
                &f,
                None
            )
            .is_none()
        );
        assert_eq!(t.stats().udp_dropped_connection_id, 2);
    }

    #[test]
    fn forged_or_other_ip_connection_ids_get_no_reply() {
        let t0 = Instant::now();
        let mut t = tracker(t0);
        let id = connect(&mut t, t0, v4(2, 1));
        for (src, cid) in [
            (v4(3, 1), id),     // another IP's ID
            (v4(2, 1), id ^ 1), // forged
            (v4(2, 1), 0),
            (v4(2, 1), u64::MAX), // far-future bucket byte (TU3)
            (v4(2, 1), PROTOCOL_ID),
        ] {
            assert!(announce(&mut t, t0, src, &announce_fields(cid, 7002, 5), None).is_none());
            let mut req = Vec::new();
            write_scrape_request(&mut req, cid, 1, &[IH]);
            let mut out = vec![1, 2, 3];
            assert!(!t.handle_datagram(t0, src, None, &req, &mut out));
            assert!(out.is_empty(), "out is cleared");
        }
        // Another port of the same IP may use it (IDs bind the IP only).
        assert!(announce(&mut t, t0, v4(2, 9), &announce_fields(id, 7002, 5), None).is_some());
        assert_eq!(t.peer_count(), 1);
    }

    #[test]
    fn short_oversized_unknown_and_malformed_datagrams_get_no_reply() {
        let t0 = Instant::now();
        let mut t = tracker(t0);
        let a = v4(2, 1);
        let id = connect(&mut t, t0, a);
        let mut out = Vec::new();
        let mut valid = Vec::new();
        write_announce_request(&mut valid, &announce_fields(id, 7002, 5));
        // Every truncation of a valid announce: only the 16-byte-or-longer ones are even looked
        // at, and a short announce is dropped.
        for len in 0..valid.len() {
            assert!(
                !t.handle_datagram(t0, a, None, &valid[..len], &mut out),
                "len {len}"
            );
        }
        let mut connect_req = Vec::new();
        write_connect_request(&mut connect_req, 1);
        for len in 0..16 {
            assert!(!t.handle_datagram(t0, a, None, &connect_req[..len], &mut out));
        }
        // Wrong protocol id.
        let mut bad = connect_req.clone();
        bad[0] ^= 1;
        assert!(!t.handle_datagram(t0, a, None, &bad, &mut out));
        // Unknown actions, with a valid connection id (TU9).
        for act in [3u32, 4, 99, u32::MAX] {
            let mut p = valid.clone();
            p[8..12].copy_from_slice(&act.to_be_bytes());
            assert!(
                !t.handle_datagram(t0, a, None, &p, &mut out),
                "action {act}"
            );
        }
        // 64 KiB (TU1) and pseudo-random 8 KiB.
        let mut big = valid.clone();
        big.resize(64 * 1024, 0);
        assert!(!t.handle_datagram(t0, a, None, &big, &mut out));
        let mut x = 0x9e37_79b9_u32;
        let random: Vec<u8> = (0..8192)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        assert!(!t.handle_datagram(t0, a, None, &random, &mut out));
        // Source port 0.
        assert!(!t.handle_datagram(t0, v4(2, 0), None, &connect_req, &mut out));
        assert_eq!(t.stats().udp_announces, 0);
        assert_eq!(t.peer_count(), 0);
    }

    #[test]
    fn num_want_clamped_so_reply_fits_one_datagram() {
        let t0 = Instant::now();
        let mut t = tracker(t0);
        let mut now = t0;
        for n in 0..200u16 {
            // Keep IDs fresh while filling the swarm.
            now = t0 + Duration::from_millis(u64::from(n));
            let src = SocketAddr::from(([10, 0, (n >> 8) as u8, n as u8], 1));
            let id = connect(&mut t, now, src);
            announce(&mut t, now, src, &announce_fields(id, 7000, 5), None).unwrap();
            let src6 = v6(n + 100, 1);
            let id = connect(&mut t, now, src6);
            announce(&mut t, now, src6, &announce_fields(id, 7000, 5), None).unwrap();
        }
        for (num_want, v4_peers, v6_peers) in [
            (-1i32, 50usize, 45usize),
            (i32::MAX, MAX_UDP_PEERS_V4, MAX_UDP_PEERS_V6),
            (0, 0, 0),
            (3, 3, 3),
        ] {
            // On the swarm's private network (its 10/8 peers are only for such requesters).
            let src = SocketAddr::from(([10, 9, 9, 9], 1));
            let id = connect(&mut t, now, src);
            let mut f = announce_fields(id, 6000, 5);
            f.num_want = num_want;
            let reply = announce(&mut t, now, src, &f, None).unwrap();
            assert_eq!(reply.len(), 20 + 6 * v4_peers, "num_want {num_want}");
            assert!(reply.len() <= 508);
            let src = v6(9, 1);
            let id = connect(&mut t, now, src);
            let mut f = announce_fields(id, 6000, 5);
            f.num_want = num_want;
            let reply = announce(&mut t, now, src, &f, None).unwrap();
            assert_eq!(reply.len(), 20 + 18 * v6_peers, "num_want {num_want}");
            assert!(reply.len() <= 1232);
        }
    }

    #[test]
    fn ip_address_field_is_ignored() {
        let t0 = Instant::now();
        let mut t = tracker(t0);
        let a = v4(2, 1);
        let id = connect(&mut t, t0, a);
        let mut req = Vec::new();
        write_announce_request(&mut req, &announce_fields(id, 7002, 5));
        req[84..88].copy_from_slice(&[203, 0, 113, 66]); // "VICTIM"
        let mut out = Vec::new();
        assert!(t.handle_datagram(t0, a, None, &req, &mut out));
        let b = v4(3, 1);
        let id = connect(&mut t, t0, b);
        let reply = announce(&mut t, t0, b, &announce_fields(id, 7003, 5), None).unwrap();
        let r = AnnounceResponse::new_checked(&reply).unwrap();
        assert_eq!(r.peers(6).collect::<Vec<_>>(), vec![v4(2, 7002)]);
    }

    #[test]
    fn refusals_with_valid_id_get_short_error_packets() {
        let t0 = Instant::now();
        let mut t = tracker(t0);
        let a = v4(2, 1);
        let id = connect(&mut t, t0, a);
        let expect_error = |reply: Option<Vec<u8>>, msg: &[u8]| {
            let reply = reply.expect("an error reply");
            assert_eq!(&reply[..8], &[0, 0, 0, 3, 0, 0, 0xab, 0xcd]);
            assert_eq!(&reply[8..], msg);
            assert!(reply.len() < 98);
        };
        expect_error(
            announce(&mut t, t0, a, &announce_fields(id, 0, 5), None),
            MSG_BAD_PORT,
        );
        let mut f = announce_fields(id, 7002, 5);
        f.event = 4;
        expect_error(announce(&mut t, t0, a, &f, None), MSG_BAD_EVENT);
        let mut f = announce_fields(id, 7002, 5);
        f.info_hash = InfoHash([0x99; 20]);
        expect_error(announce(&mut t, t0, a, &f, None), MSG_NOT_ALLOWED);
        for msg in [
            MSG_BAD_PORT,
            MSG_BAD_EVENT,
            MSG_NOT_ALLOWED,
            MSG_FULL,
            MSG_FULL_SCRAPE,
            MSG_BAD_SCRAPE,
        ] {
            assert!(msg.len() <= crate::limits::MAX_UDP_ERROR_MESSAGE_LEN);
        }
        assert_eq!(t.peer_count(), 0);
    }

    #[test]
    fn bep15_scrape_capped_at_70_and_smaller_than_request() {
        let t0 = Instant::now();
        let mut t = tracker(t0);
        let a = v4(2, 1);
        let id = connect(&mut t, t0, a);
        announce(&mut t, t0, a, &announce_fields(id, 7002, 0), None).unwrap();
        let hashes: Vec<InfoHash> = std::iter::once(IH)
            .chain((1..200u8).map(|n| InfoHash([n.wrapping_add(0x40); 20])))
            .collect();
        let mut req = Vec::new();
        write_scrape_request(&mut req, id, 77, &hashes);
        let mut out = Vec::new();
        assert!(t.handle_datagram(t0, a, None, &req, &mut out));
        assert_eq!(out.len(), 8 + 12 * MAX_UDP_SCRAPE_INFO_HASHES, "TU7");
        assert!(out.len() < req.len());
        // IH: 2 seeders (the peer and this node), 0 completed, 0 leechers.
        assert_eq!(
            &out[..20],
            &[0, 0, 0, 2, 0, 0, 0, 77, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert!(
            out[20..].iter().all(|&b| b == 0),
            "unknown torrents scrape as zeros"
        );
        // Zero hashes and a ragged tail are refused with an error packet.
        let mut empty = Vec::new();
        write_scrape_request(&mut empty, id, 78, &[]);
        assert!(t.handle_datagram(t0, a, None, &empty, &mut out));
        assert_eq!(&out[8..], MSG_FULL_SCRAPE);
        let mut ragged = req[..16 + 25].to_vec();
        ragged[12..16].copy_from_slice(&79u32.to_be_bytes());
        assert!(t.handle_datagram(t0, a, None, &ragged, &mut out));
        assert_eq!(&out[..8], &[0, 0, 0, 3, 0, 0, 0, 79]);
    }

    #[test]
    fn connect_flood_keeps_no_state_and_reuses_the_buffer() {
        let t0 = Instant::now();
        let mut t = tracker(t0);
        let mut req = Vec::new();
        write_connect_request(&mut req, 5);
        let mut out = Vec::with_capacity(MAX_UDP_REPLY_LEN);
        let cap = out.capacity();
        for n in 0..20_000u32 {
            let src = SocketAddr::from((n.to_be_bytes(), 1 + (n % 60_000) as u16));
            assert!(t.handle_datagram(t0, src, None, &req, &mut out));
            assert_eq!(out.len(), 16);
        }
        assert_eq!(out.capacity(), cap, "no reallocation");
        assert_eq!((t.torrent_count(), t.peer_count()), (1, 0));
        // Full-size announce replies fit the same buffer.
        let id = connect(&mut t, t0, v6(1, 1));
        let mut f = announce_fields(id, 7000, 5);
        f.num_want = i32::MAX;
        let mut req = Vec::new();
        write_announce_request(&mut req, &f);
        assert!(t.handle_datagram(t0, v6(1, 1), None, &req, &mut out));
        assert_eq!(out.capacity(), cap);
    }

    #[test]
    fn tracker_without_secret_answers_nothing() {
        let t0 = Instant::now();
        let mut t = Tracker::new(TrackerConfig::default());
        let mut req = Vec::new();
        write_connect_request(&mut req, 5);
        let mut out = Vec::new();
        assert!(!t.handle_datagram(t0, v4(2, 1), None, &req, &mut out));
        assert_eq!(t.stats().udp_dropped_disabled, 1);
    }

    #[test]
    fn ipv4_mapped_source_shares_identity_with_ipv4() {
        let t0 = Instant::now();
        let mut t = tracker(t0);
        let mapped: SocketAddr = "[::ffff:192.0.2.2]:1".parse().unwrap();
        let id = connect(&mut t, t0, mapped);
        let reply = announce(&mut t, t0, v4(2, 1), &announce_fields(id, 7002, 5), None).unwrap();
        assert_eq!(reply.len(), 20, "IPv4 layout for a mapped sender");
    }
}
