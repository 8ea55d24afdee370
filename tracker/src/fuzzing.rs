//! Bodies of the cargo-fuzz targets, shared with `tests/fuzz_corpus.rs` so that stable
//! `cargo test` replays the seed corpora. Not a stable API: each function panics when an
//! invariant breaks, which is what a fuzzer looks for.
#![allow(clippy::disallowed_methods)] // a harness needs one epoch; the machines see offsets from it

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use seednode_wire::bencode::{self, Value};
use seednode_wire::{InfoHash, PeerId};

use crate::announce::AnnounceRequest;
use crate::client::{
    ClientConfig, HttpAnnounceResponse, TrackerClient, Transmit, UdpResponse, parse_http_announce,
    parse_udp_response,
};
use crate::limits::{
    CONNECTION_ID_TTL, MAX_CLIENT_PEERS_PER_RESPONSE, MAX_NUMWANT, MAX_SCRAPE_INFO_HASHES,
    MAX_UDP_REPLY_LEN,
};
use crate::scrape::ScrapeRequest;
use crate::server::{Tracker, TrackerConfig};
use crate::udp::packet::{PROTOCOL_ID, action, write_connect_request};

/// The info-hash the harness tracker hosts: `%11` × 20 in a query.
pub const HOSTED: InfoHash = InfoHash([0x11; 20]);

/// What the HTTP harness saw, for corpus replay assertions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpOutcome {
    /// `data` parsed as an announce query.
    pub announce_ok: bool,
    /// `data` parsed as a scrape query.
    pub scrape_ok: bool,
}

fn is_failure(body: &[u8]) -> bool {
    body.starts_with(b"d14:failure reason")
}

/// Target `tracker_http_announce`: `data` is a query string, parsed as an announce and as a
/// scrape, then run through an open tracker's HTTP front end from an IPv4, an IPv6 and an
/// IPv4-mapped address.
///
/// Invariants: nothing panics; every body is one valid bencoded dictionary with either a
/// `failure reason` or `interval` and `peers`; announce bodies stay under 32 KiB and scrape
/// bodies under what [`MAX_SCRAPE_INFO_HASHES`] entries take; parsed values respect their
/// limits; expiry empties the store.
///
/// # Panics
/// When an invariant is broken.
pub fn http_announce(data: &[u8]) -> HttpOutcome {
    let announce = AnnounceRequest::parse_query(data);
    if let Ok(req) = &announce {
        assert!(req.port != 0);
        assert!(req.numwant <= MAX_NUMWANT);
    }
    let scrape = ScrapeRequest::parse_query(data);
    if let Ok(s) = &scrape {
        assert!(!s.info_hashes.is_empty() && s.info_hashes.len() <= MAX_SCRAPE_INFO_HASHES);
        assert!(
            s.info_hashes.windows(2).all(|w| w[0] < w[1]),
            "sorted, unique"
        );
    }

    let t0 = Instant::now();
    let config = TrackerConfig {
        open: data.first().is_some_and(|b| b & 1 == 1),
        ..TrackerConfig::default()
    };
    let ttl = config.peer_ttl;
    let mut t = Tracker::with_secret(config, t0, [0; 32]);
    t.host(HOSTED);
    let me: SocketAddr = "192.0.2.1:6881".parse().unwrap_or_else(|_| unreachable!());
    let sources = [
        "198.51.100.1:1000",
        "[2001:db8::1]:1000",
        "[::ffff:198.51.100.2]:1000",
    ];
    for (i, src) in sources.iter().enumerate() {
        let src: SocketAddr = src.parse().unwrap_or_else(|_| unreachable!());
        let now = t0 + Duration::from_secs(i as u64);
        let body = t.http_announce(now, src, Some(me), data);
        assert!(
            body.len() < 32 * 1024,
            "announce body of {} bytes",
            body.len()
        );
        let value = bencode::decode(&body).expect("announce body is bencode");
        let dict = value.as_dict().expect("announce body is a dictionary");
        assert!(dict.is_canonical(), "keys sorted and unique");
        if !is_failure(&body) {
            assert!(announce.is_ok());
            assert!(dict.get(b"interval").and_then(Value::as_int).is_some());
            assert!(dict.get(b"peers").is_some());
        }
    }
    let body = t.http_scrape(t0, data);
    assert!(body.len() <= 16 + MAX_SCRAPE_INFO_HASHES * 90);
    let value = bencode::decode(&body).expect("scrape body is bencode");
    let dict = value.as_dict().expect("scrape body is a dictionary");
    if !is_failure(&body) {
        let files = dict.get(b"files").and_then(Value::as_dict).expect("files");
        assert!(files.is_canonical());
        assert_eq!(
            Some(files.len()),
            scrape.as_ref().ok().map(|s| s.info_hashes.len())
        );
    }
    t.check_invariants();
    t.expire(t0 + ttl * 2);
    t.check_invariants();
    assert_eq!(t.peer_count(), 0);
    HttpOutcome {
        announce_ok: announce.is_ok(),
        scrape_ok: scrape.is_ok(),
    }
}

/// Target `tracker_udp`: byte 0 is a control byte, the rest a datagram.
///
/// Control bits: `0x01` overwrite the datagram's first 8 bytes with a connection ID the tracker
/// issued to the sender; `0x02` send from IPv6; `0x04` the tracker is open; `0x08` splice the
/// client's outstanding transaction ID into bytes 4..8 when fed to the client; bits 5–7 advance
/// the clock by that many × 30 s after the connect (crossing [`CONNECTION_ID_TTL`]).
///
/// The datagram goes (1) to the tracker server, (2) to the client's response parsers, (3) to a
/// client machine with an outstanding UDP announce, and (4) as an HTTP body to a client with an
/// outstanding HTTP announce.
///
/// Invariants: nothing panics; no reply means an empty buffer; a reply fits
/// [`MAX_UDP_REPLY_LEN`], echoes the transaction ID and has a known action; a connect reply is
/// exactly 16 bytes and answers only the magic protocol ID; a reply larger than the request goes
/// only to a sender holding a valid connection ID; parsers keep at most
/// [`MAX_CLIENT_PEERS_PER_RESPONSE`] peers. Returns whether the server replied.
///
/// # Panics
/// When an invariant is broken.
pub fn udp(data: &[u8]) -> bool {
    let Some((&ctl, datagram)) = data.split_first() else {
        return false;
    };
    let t0 = Instant::now();
    let config = TrackerConfig {
        open: ctl & 0x04 != 0,
        ..TrackerConfig::default()
    };
    let mut t = Tracker::with_secret(config, t0, [1; 32]);
    t.host(HOSTED);
    let src: SocketAddr = if ctl & 0x02 != 0 {
        "[2001:db8::7]:4000"
    } else {
        "198.51.100.7:4000"
    }
    .parse()
    .unwrap_or_else(|_| unreachable!());
    let me: SocketAddr = "192.0.2.1:6881".parse().unwrap_or_else(|_| unreachable!());

    let mut out = Vec::with_capacity(MAX_UDP_REPLY_LEN);
    let mut packet = datagram.to_vec();
    let spliced = ctl & 0x01 != 0 && packet.len() >= 8;
    if spliced {
        let mut connect = Vec::new();
        write_connect_request(&mut connect, 0);
        assert!(t.handle_datagram(t0, src, None, &connect, &mut out));
        packet[..8].copy_from_slice(&out[8..16]);
    }
    let now = t0 + Duration::from_secs(u64::from(ctl >> 5) * 30);
    let id_valid = spliced && now.duration_since(t0) <= CONNECTION_ID_TTL;
    let cap = out.capacity();
    let replied = t.handle_datagram(now, src, Some(me), &packet, &mut out);
    t.check_invariants();
    if replied {
        assert!(
            out.len() >= 8 && out.len() <= MAX_UDP_REPLY_LEN,
            "{} bytes",
            out.len()
        );
        assert_eq!(out.capacity(), cap, "reply fits the preallocated buffer");
        assert_eq!(&out[4..8], &packet[12..16], "transaction ID echoed");
        let reply_action = u32::from_be_bytes([out[0], out[1], out[2], out[3]]);
        assert!(reply_action <= action::ERROR);
        let request_action = u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]);
        if reply_action == action::CONNECT {
            assert_eq!(out.len(), 16);
            assert_eq!(&packet[..8], &PROTOCOL_ID.to_be_bytes());
        } else {
            assert!(
                id_valid,
                "only a proven address gets announce/scrape/error replies"
            );
            assert!(request_action == action::ANNOUNCE || request_action == action::SCRAPE);
        }
        if out.len() > packet.len() {
            assert!(id_valid, "amplification only after the address is proven");
        }
    } else {
        assert!(out.is_empty());
    }

    // Client-side parsers.
    for ipv6 in [false, true] {
        if let Some(UdpResponse::Announce { reply, .. }) = parse_udp_response(datagram, ipv6) {
            assert!(reply.peers.len() <= MAX_CLIENT_PEERS_PER_RESPONSE);
        }
    }
    if let Ok(HttpAnnounceResponse::Success(reply)) = parse_http_announce(datagram) {
        assert!(reply.peers.len() <= MAX_CLIENT_PEERS_PER_RESPONSE);
    }

    // A client machine with an outstanding UDP request, then one with an HTTP request.
    let mut client = TrackerClient::new(ClientConfig::new(PeerId([2; 20]), 6881), [ctl; 32]);
    let tiers = [vec!["udp://tracker.test:6969".to_owned()]];
    if client.add_torrent(t0, HOSTED, &tiers, 0).is_ok() {
        let txid = match client.poll_transmit() {
            Some(Transmit::Udp { payload, .. }) => {
                [payload[12], payload[13], payload[14], payload[15]]
            }
            other => panic!("expected a UDP connect, got {other:?}"),
        };
        let mut response = datagram.to_vec();
        if ctl & 0x08 != 0 && response.len() >= 8 {
            response[4..8].copy_from_slice(&txid);
        }
        let tracker: SocketAddr = if ctl & 0x02 != 0 {
            "[2001:db8::9]:6969"
        } else {
            "198.51.100.9:6969"
        }
        .parse()
        .unwrap_or_else(|_| unreachable!());
        client.handle_udp_datagram(now, tracker, &response);
        drain_client(&mut client);
        client.handle_timeout(now + Duration::from_secs(4000));
        drain_client(&mut client);
    }
    let mut client = TrackerClient::new(ClientConfig::new(PeerId([2; 20]), 6881), [ctl; 32]);
    let tiers = [vec!["http://tracker.test/announce".to_owned()]];
    if client.add_torrent(t0, HOSTED, &tiers, 0).is_ok()
        && let Some(Transmit::Http { id, .. }) = client.poll_transmit()
    {
        client.handle_http_response(now, id, 200, datagram);
        drain_client(&mut client);
    }
    replied
}

fn drain_client(client: &mut TrackerClient) {
    let mut n = 0;
    while client.poll_transmit().is_some() || client.poll_event().is_some() {
        n += 1;
        assert!(n < 1000, "client output is bounded");
    }
}
