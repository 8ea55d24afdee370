//! Tracker-client simulations: a virtual clock, fixed seeds, and this crate's own [`Tracker`] as
//! the fake tracker on the other side (HTTP and UDP), or hand-written responses.
#![allow(clippy::disallowed_methods)] // each test reads the clock once, for its epoch

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use seednode_wire::{InfoHash, PeerId};

use super::*;
use crate::TrackerConfig;
use crate::server::Tracker;

const IH: InfoHash = InfoHash([0xaa; 20]);
const IH2: InfoHash = InfoHash([0xbb; 20]);
const ME: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)),
    50000,
);
const TRACKER_UDP: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 9)),
    6969,
);

fn config() -> ClientConfig {
    ClientConfig::new(PeerId(*b"-SN0001-000000000001"), 6881)
}

fn client() -> TrackerClient {
    TrackerClient::new(config(), [1; 32])
}

fn tiers(urls: &[&[&str]]) -> Vec<Vec<String>> {
    urls.iter()
        .map(|tier| tier.iter().map(|u| (*u).to_owned()).collect())
        .collect()
}

fn drain_transmits(c: &mut TrackerClient) -> Vec<Transmit> {
    std::iter::from_fn(|| c.poll_transmit()).collect()
}

fn drain_events(c: &mut TrackerClient) -> Vec<ClientEvent> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

fn query_of(url: &str) -> &str {
    url.split_once('?').map_or("", |(_, q)| q)
}

fn param<'a>(url: &'a str, key: &str) -> Option<&'a str> {
    query_of(url)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// A fake network: one server [`Tracker`] reachable over HTTP (any `http://` URL) and UDP
/// (`udp://tracker.test:6969`), hosting [`IH`] and [`IH2`].
struct Net {
    server: Tracker,
}

impl Net {
    fn new(t0: Instant) -> Self {
        let mut server = Tracker::with_secret(TrackerConfig::default(), t0, [3; 32]);
        server.host(IH);
        server.host(IH2);
        Self { server }
    }

    /// Delivers every transmit and feeds the answers back; returns how many were delivered.
    fn pump(&mut self, c: &mut TrackerClient, now: Instant) -> usize {
        let mut n = 0;
        let mut out = Vec::new();
        while let Some(tx) = c.poll_transmit() {
            n += 1;
            match tx {
                Transmit::Http { id, url } => {
                    let body = self
                        .server
                        .http_announce(now, ME, None, query_of(&url).as_bytes());
                    c.handle_http_response(now, id, 200, &body);
                }
                Transmit::Udp {
                    host,
                    port,
                    payload,
                    ..
                } => {
                    assert_eq!((host.as_str(), port), ("tracker.test", 6969));
                    if self
                        .server
                        .handle_datagram(now, ME, None, &payload, &mut out)
                    {
                        assert!(c.handle_udp_datagram(now, TRACKER_UDP, &out));
                    }
                }
            }
        }
        n
    }
}

#[test]
fn http_seed_announces_started_left_zero_then_regularly() {
    let t0 = Instant::now();
    let mut net = Net::new(t0);
    let mut c = client();
    assert_eq!(
        c.add_torrent(t0, IH, &tiers(&[&["http://t.test/announce"]]), 0),
        Ok(1)
    );
    let tx = drain_transmits(&mut c);
    let [Transmit::Http { id, url }] = tx.as_slice() else {
        panic!("{tx:?}")
    };
    assert!(url.starts_with("http://t.test/announce?info_hash=%AA%AA"));
    assert_eq!(param(url, "event"), Some("started"));
    assert_eq!(param(url, "left"), Some("0"));
    assert_eq!(param(url, "peer_id"), Some("-SN0001-000000000001"));
    assert_eq!(param(url, "port"), Some("6881"));
    assert_eq!(param(url, "compact"), Some("1"));
    assert_eq!(param(url, "numwant"), Some("50"));
    assert_eq!(param(url, "key").map(str::len), Some(8));
    let body = net
        .server
        .http_announce(t0, ME, None, query_of(url).as_bytes());
    c.handle_http_response(t0, *id, 200, &body);
    let ev = drain_events(&mut c);
    assert!(
        matches!(
            &ev[..],
            [ClientEvent::Announced { event: AnnounceEvent::Started, interval, seeders: Some(2), .. }]
                if *interval == Duration::from_secs(1800)
        ),
        "{ev:?}"
    );
    assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(1800)));
    c.handle_timeout(t0 + Duration::from_secs(1799));
    assert!(c.poll_transmit().is_none());
    let t1 = t0 + Duration::from_secs(1800);
    c.handle_timeout(t1);
    let tx = drain_transmits(&mut c);
    let [Transmit::Http { url, .. }] = tx.as_slice() else {
        panic!("{tx:?}")
    };
    assert_eq!(param(url, "event"), None, "a regular announce has no event");
    let key = param(url, "key").map(str::to_owned);
    c.handle_timeout(t1);
    // Same key for the whole session.
    c.handle_request_failed(t1, RequestId(999), "stale id ignored");
    assert!(drain_events(&mut c).is_empty());
    assert!(key.is_some());
}

#[test]
fn udp_connect_then_announce_against_the_real_server() {
    let t0 = Instant::now();
    let mut net = Net::new(t0);
    // A leecher is in the swarm already, so the seed learns of it.
    let leecher: SocketAddr = "10.0.0.7:40000".parse().unwrap();
    let q = format!(
        "info_hash={}&peer_id=-LT0001-aaaaaaaaaaaa&port=7007&left=100",
        "%AA".repeat(20)
    );
    net.server.http_announce(t0, leecher, None, q.as_bytes());
    let mut c = client();
    c.add_torrent(t0, IH, &tiers(&[&["udp://tracker.test:6969/announce"]]), 0)
        .unwrap();
    assert_eq!(net.pump(&mut c, t0), 2, "connect, then announce");
    let ev = drain_events(&mut c);
    assert!(
        matches!(
            &ev[0],
            ClientEvent::Announced {
                event: AnnounceEvent::Started,
                leechers: Some(1),
                ..
            }
        ),
        "{ev:?}"
    );
    assert_eq!(
        ev[1],
        ClientEvent::Peers {
            info_hash: IH,
            peers: vec!["10.0.0.7:7007".parse().unwrap()]
        }
    );
    assert_eq!(
        net.server.peer_count(),
        2,
        "the seed is stored (from its socket address)"
    );
    // A second torrent on the same tracker within a minute reuses the connection ID.
    let t1 = t0 + Duration::from_secs(30);
    c.add_torrent(t1, IH2, &tiers(&[&["udp://tracker.test:6969"]]), 0)
        .unwrap();
    let tx = drain_transmits(&mut c);
    let [Transmit::Udp { payload, .. }] = tx.as_slice() else {
        panic!("{tx:?}")
    };
    assert_eq!(payload.len(), 98, "straight to announce");
}

#[test]
fn bep15_retransmit_schedule_and_connection_id_expiry() {
    let t0 = Instant::now();
    let mut c = client();
    c.add_torrent(
        t0,
        IH,
        &tiers(&[&["udp://tracker.test:6969", "http://backup.test/a"]]),
        0,
    )
    .unwrap();
    // The tier was shuffled; make sure we look at the UDP tracker first.
    let mut tx = drain_transmits(&mut c);
    if let [Transmit::Http { id, .. }] = tx.as_slice() {
        c.handle_request_failed(t0, *id, "connection refused");
        drain_events(&mut c);
        tx = drain_transmits(&mut c);
    }
    let [Transmit::Udp { id, payload, .. }] = tx.as_slice() else {
        panic!("{tx:?}")
    };
    assert_eq!(payload.len(), 16);
    let txid = u32::from_be_bytes(payload[12..16].try_into().unwrap());
    let sent_at = t0;
    // Connect times out: resent after 15, then 30 s later (BEP 15 "Connect times out").
    assert_eq!(c.poll_timeout(), Some(sent_at + Duration::from_secs(15)));
    c.handle_timeout(sent_at + Duration::from_secs(15));
    let tx = drain_transmits(&mut c);
    let [
        Transmit::Udp {
            id: id2,
            payload: p2,
            ..
        },
    ] = tx.as_slice()
    else {
        panic!("{tx:?}")
    };
    assert_eq!(
        (id2, &p2[12..16]),
        (id, &txid.to_be_bytes()[..]),
        "same request, same txid"
    );
    assert_eq!(c.poll_timeout(), Some(sent_at + Duration::from_secs(45)));
    // The connect response arrives (late, to the first transmission: same txid).
    let t1 = sent_at + Duration::from_secs(46);
    let mut resp = Vec::new();
    crate::udp::packet::write_connect_response(&mut resp, txid, 0x1122_3344_5566_7788);
    assert!(
        !c.handle_udp_datagram(t1, "10.0.0.9:1234".parse().unwrap(), &resp),
        "wrong port"
    );
    assert!(c.handle_udp_datagram(t1, TRACKER_UDP, &resp));
    assert!(
        !c.handle_udp_datagram(t1, TRACKER_UDP, &resp),
        "replay no longer matches"
    );
    let tx = drain_transmits(&mut c);
    let [Transmit::Udp { payload, .. }] = tx.as_slice() else {
        panic!("{tx:?}")
    };
    assert_eq!(payload.len(), 98);
    assert_eq!(&payload[..8], &0x1122_3344_5566_7788u64.to_be_bytes());
    assert_eq!(&payload[80..84], &2u32.to_be_bytes(), "started");
    assert_eq!(&payload[64..72], &0u64.to_be_bytes(), "left=0");
    // Announce times out at +15 and +30 (same connection ID), then the ID is over a minute old:
    // reconnect (BEP 15 "Announce times out").
    c.handle_timeout(t1 + Duration::from_secs(15));
    let tx = drain_transmits(&mut c);
    assert!(matches!(&tx[..], [Transmit::Udp { payload, .. }] if payload.len() == 98));
    c.handle_timeout(t1 + Duration::from_secs(45));
    let tx = drain_transmits(&mut c);
    assert!(matches!(&tx[..], [Transmit::Udp { payload, .. }] if payload.len() == 98));
    c.handle_timeout(t1 + Duration::from_secs(105));
    let tx = drain_transmits(&mut c);
    assert!(
        matches!(&tx[..], [Transmit::Udp { payload, .. }] if payload.len() == 16),
        "reconnect"
    );
    assert_eq!(c.poll_timeout(), Some(t1 + Duration::from_secs(105 + 120)));
    // After n = 3 the tracker has failed; the next one in the tier is tried at once.
    c.handle_timeout(t1 + Duration::from_secs(225));
    let ev = drain_events(&mut c);
    assert!(matches!(&ev[..], [ClientEvent::Failed { reason, .. }] if reason == "timed out"));
    let tx = drain_transmits(&mut c);
    assert!(matches!(&tx[..], [Transmit::Http { .. }]) || tx.is_empty());
}

#[test]
fn tier_failover_moves_working_tracker_to_front_and_backs_off() {
    let t0 = Instant::now();
    let mut c = client();
    c.add_torrent(
        t0,
        IH,
        &tiers(&[&[
            "http://a.test/announce",
            "http://b.test/announce",
            "http://c.test/announce",
        ]]),
        0,
    )
    .unwrap();
    let mut order = Vec::new();
    let mut now = t0;
    // Every tracker fails: each is tried once, in the shuffled order, then the tier backs off.
    for _ in 0..3 {
        let tx = drain_transmits(&mut c);
        let [Transmit::Http { id, url }] = tx.as_slice() else {
            panic!("{tx:?}")
        };
        order.push(url.split('?').next().unwrap().to_owned());
        c.handle_http_response(now, *id, 200, b"d14:failure reason6:deniede");
        // A second answer to the same request is stale and ignored.
        c.handle_http_response(now, *id, 200, b"d14:failure reason6:denied");
    }
    let ev = drain_events(&mut c);
    assert_eq!(ev.len(), 3);
    assert!(
        ev.iter()
            .all(|e| matches!(e, ClientEvent::Failed { reason, .. } if reason == "denied"))
    );
    let mut sorted = order.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 3, "each tracker once: {order:?}");
    assert!(drain_transmits(&mut c).is_empty());
    assert_eq!(c.poll_timeout(), Some(now + CLIENT_RETRY_BASE_INTERVAL));

    // Next round: the first fails, the second answers and moves to the front.
    now += CLIENT_RETRY_BASE_INTERVAL;
    c.handle_timeout(now);
    let tx = drain_transmits(&mut c);
    let [Transmit::Http { id, url }] = tx.as_slice() else {
        panic!("{tx:?}")
    };
    assert!(
        url.starts_with(&order[0]),
        "same order on the next round (BEP 12)"
    );
    c.handle_http_response(now, *id, 503, b"Service Unavailable");
    assert!(
        matches!(&drain_events(&mut c)[..], [ClientEvent::Failed { reason, .. }] if reason == "HTTP status 503")
    );
    let tx = drain_transmits(&mut c);
    let [Transmit::Http { id, url }] = tx.as_slice() else {
        panic!("{tx:?}")
    };
    assert!(url.starts_with(&order[1]));
    c.handle_http_response(now, *id, 200, b"d8:intervali0e5:peers0:e");
    let ev = drain_events(&mut c);
    assert!(
        matches!(&ev[..], [ClientEvent::Announced { interval, .. }] if *interval == CLIENT_MIN_ANNOUNCE_INTERVAL),
        "interval 0 is clamped: {ev:?}"
    );
    now += CLIENT_MIN_ANNOUNCE_INTERVAL;
    c.handle_timeout(now);
    let tx = drain_transmits(&mut c);
    let [Transmit::Http { url, .. }] = tx.as_slice() else {
        panic!("{tx:?}")
    };
    assert!(
        url.starts_with(&order[1]),
        "the working tracker is first now"
    );
}

#[test]
fn backoff_doubles_and_is_capped() {
    assert_eq!(backoff(1), CLIENT_RETRY_BASE_INTERVAL);
    assert_eq!(backoff(2), CLIENT_RETRY_BASE_INTERVAL * 2);
    assert_eq!(backoff(3), CLIENT_RETRY_BASE_INTERVAL * 4);
    assert_eq!(backoff(30), CLIENT_MAX_RETRY_INTERVAL);
    assert_eq!(backoff(u32::MAX), CLIENT_MAX_RETRY_INTERVAL);
    assert_eq!(udp_timeout(0), Duration::from_secs(15));
    assert_eq!(udp_timeout(8), Duration::from_secs(3840));
    assert_eq!(udp_timeout(50), Duration::from_secs(3840));
}

#[test]
fn all_tiers_announce_and_stopped_goes_to_started_trackers_only() {
    let t0 = Instant::now();
    let mut net = Net::new(t0);
    let mut c = client();
    c.add_torrent(
        t0,
        IH,
        &tiers(&[
            &["http://one.test/announce"],
            &["udp://tracker.test:6969"],
            &["http://dead.test/a"],
        ]),
        0,
    )
    .unwrap();
    let tx = drain_transmits(&mut c);
    assert_eq!(tx.len(), 3, "every tier announces");
    let mut dead = None;
    let mut out = Vec::new();
    for t in tx {
        match t {
            Transmit::Http { id, url } if url.contains("dead.test") => dead = Some(id),
            Transmit::Http { id, url } => {
                let body = net
                    .server
                    .http_announce(t0, ME, None, query_of(&url).as_bytes());
                c.handle_http_response(t0, id, 200, &body);
            }
            Transmit::Udp { payload, .. } => {
                assert!(net.server.handle_datagram(t0, ME, None, &payload, &mut out));
                assert!(c.handle_udp_datagram(t0, TRACKER_UDP, &out));
                net.pump(&mut c, t0);
            }
        }
    }
    let dead = dead.unwrap();
    drain_events(&mut c);
    assert_eq!(
        net.server.peer_count(),
        1,
        "one peer: HTTP and UDP announces from the same address"
    );
    c.shutdown(t0);
    let tx = drain_transmits(&mut c);
    assert_eq!(
        tx.len(),
        2,
        "stopped to the two trackers that were told started: {tx:?}"
    );
    c.handle_http_response(t0, dead, 200, b"d8:intervali60ee");
    assert!(
        drain_events(&mut c).is_empty(),
        "the abandoned request is stale"
    );
    for t in tx {
        match t {
            Transmit::Http { id, url } => {
                assert_eq!(param(&url, "event"), Some("stopped"));
                assert_eq!(param(&url, "numwant"), Some("0"));
                let body = net
                    .server
                    .http_announce(t0, ME, None, query_of(&url).as_bytes());
                c.handle_http_response(t0, id, 200, &body);
            }
            Transmit::Udp { payload, .. } => {
                assert_eq!(payload.len(), 98, "cached connection ID");
                assert_eq!(&payload[80..84], &3u32.to_be_bytes());
                assert!(net.server.handle_datagram(t0, ME, None, &payload, &mut out));
                assert!(c.handle_udp_datagram(t0, TRACKER_UDP, &out));
            }
        }
    }
    let ev = drain_events(&mut c);
    assert_eq!(ev.last(), Some(&ClientEvent::Stopped { info_hash: IH }));
    assert!(c.is_idle());
    assert_eq!(c.poll_timeout(), None);
    assert_eq!(net.server.peer_count(), 0, "the tracker forgot us");
}

#[test]
fn stop_gives_up_after_one_attempt() {
    let t0 = Instant::now();
    let mut net = Net::new(t0);
    let mut c = client();
    c.add_torrent(t0, IH, &tiers(&[&["udp://tracker.test:6969"]]), 0)
        .unwrap();
    net.pump(&mut c, t0);
    c.remove_torrent(t0 + Duration::from_secs(120), &IH);
    let tx = drain_transmits(&mut c);
    assert!(
        matches!(&tx[..], [Transmit::Udp { payload, .. }] if payload.len() == 16),
        "ID too old: connect"
    );
    // No answer: one timeout and it is over.
    c.handle_timeout(t0 + Duration::from_secs(135));
    assert!(drain_transmits(&mut c).is_empty());
    let ev = drain_events(&mut c);
    assert_eq!(ev.last(), Some(&ClientEvent::Stopped { info_hash: IH }));
    assert!(c.is_idle());
}

#[test]
fn removing_a_torrent_never_announced_stops_at_once() {
    let t0 = Instant::now();
    let mut c = client();
    c.add_torrent(t0, IH, &tiers(&[&["http://a.test/announce"]]), 0)
        .unwrap();
    let tx = drain_transmits(&mut c);
    c.remove_torrent(t0, &IH);
    assert_eq!(
        drain_events(&mut c),
        vec![ClientEvent::Stopped { info_hash: IH }]
    );
    assert!(drain_transmits(&mut c).is_empty());
    let [Transmit::Http { id, .. }] = tx.as_slice() else {
        panic!()
    };
    c.handle_http_response(t0, *id, 200, b"d8:intervali60ee");
    assert!(drain_events(&mut c).is_empty());
}

#[test]
fn completed_is_sent_to_started_trackers() {
    let t0 = Instant::now();
    let mut net = Net::new(t0);
    let mut c = client();
    c.add_torrent(t0, IH, &tiers(&[&["http://a.test/announce"]]), 1000)
        .unwrap();
    c.set_progress(&IH, 0, 0, 1000);
    let tx = drain_transmits(&mut c);
    let [Transmit::Http { id, url }] = tx.as_slice() else {
        panic!()
    };
    assert_eq!(param(url, "left"), Some("1000"));
    let body = net
        .server
        .http_announce(t0, ME, None, query_of(url).as_bytes());
    c.handle_http_response(t0, *id, 200, &body);
    drain_events(&mut c);
    let t1 = t0 + Duration::from_secs(10);
    c.set_progress(&IH, 5, 1000, 0);
    c.completed(t1, &IH);
    let tx = drain_transmits(&mut c);
    let [Transmit::Http { id, url }] = tx.as_slice() else {
        panic!("{tx:?}")
    };
    assert_eq!(param(url, "event"), Some("completed"));
    assert_eq!(
        (param(url, "left"), param(url, "downloaded")),
        (Some("0"), Some("1000"))
    );
    let body = net
        .server
        .http_announce(t1, ME, None, query_of(url).as_bytes());
    c.handle_http_response(t1, *id, 200, &body);
    assert!(matches!(
        &drain_events(&mut c)[..],
        [ClientEvent::Announced {
            event: AnnounceEvent::Completed,
            ..
        }]
    ));
    assert_eq!(c.poll_timeout(), Some(t1 + Duration::from_secs(1800)));
    let scrape = net
        .server
        .http_scrape(t1, format!("info_hash={}", "%AA".repeat(20)).as_bytes());
    assert!(scrape.windows(13).any(|w| w == b"downloadedi1e"));
}

#[test]
fn http_timeout_fails_and_late_response_is_ignored() {
    let t0 = Instant::now();
    let mut c = client();
    c.add_torrent(t0, IH, &tiers(&[&["http://a.test/announce"]]), 0)
        .unwrap();
    let tx = drain_transmits(&mut c);
    let [Transmit::Http { id, .. }] = tx.as_slice() else {
        panic!()
    };
    assert_eq!(c.poll_timeout(), Some(t0 + CLIENT_HTTP_TIMEOUT));
    c.handle_timeout(t0 + CLIENT_HTTP_TIMEOUT);
    assert!(
        matches!(&drain_events(&mut c)[..], [ClientEvent::Failed { reason, .. }] if reason == "timed out")
    );
    c.handle_http_response(t0 + CLIENT_HTTP_TIMEOUT, *id, 200, b"d8:intervali60ee");
    assert!(drain_events(&mut c).is_empty());
    assert_eq!(
        c.poll_timeout(),
        Some(t0 + CLIENT_HTTP_TIMEOUT + CLIENT_RETRY_BASE_INTERVAL)
    );
}

#[test]
fn hostile_tracker_responses_are_bounded() {
    let t0 = Instant::now();
    let mut c = client();
    c.add_torrent(t0, IH, &tiers(&[&["http://a.test/announce"]]), 0)
        .unwrap();
    let [Transmit::Http { id, .. }] = drain_transmits(&mut c)[..] else {
        panic!()
    };
    let mut peers = Vec::new();
    for n in 0..10_000u32 {
        peers.extend_from_slice(&(0x0a00_0000 + n + 1).to_be_bytes());
        peers.extend_from_slice(&[0, 1]);
    }
    let mut body = format!("d8:intervali99999999999e5:peers{}:", peers.len()).into_bytes();
    body.extend_from_slice(&peers);
    body.push(b'e');
    c.handle_http_response(t0, id, 200, &body);
    let ev = drain_events(&mut c);
    assert!(
        matches!(&ev[..], [ClientEvent::Announced { interval, .. }, ClientEvent::Peers { peers, .. }]
            if peers.len() == crate::limits::MAX_CLIENT_PEERS_PER_RESPONSE
                && *interval == CLIENT_DEFAULT_ANNOUNCE_INTERVAL),
        "10 000 peers capped, out-of-range interval ignored"
    );
    // A body over the limit is a failure.
    c.handle_timeout(t0 + CLIENT_DEFAULT_ANNOUNCE_INTERVAL);
    let Some(Transmit::Http { id, .. }) = c.poll_transmit() else {
        panic!()
    };
    let huge = vec![b'd'; crate::limits::MAX_TRACKER_RESPONSE_LEN + 1];
    c.handle_http_response(t0, id, 200, &huge);
    let ev = drain_events(&mut c);
    assert!(
        matches!(&ev[..], [ClientEvent::Failed { reason, .. }] if reason.contains("limit")),
        "{ev:?}"
    );
    // Garbage, wrong types, non-UTF-8 failure reasons.
    for body in [
        &b"\xff\xfe"[..],
        b"i5e",
        b"d5:peersi5ee",
        b"d14:failure reason2:\xff\xfee",
    ] {
        c.handle_timeout(t0 + Duration::from_secs(3600 * 24));
        let Some(Transmit::Http { id, .. }) = c.poll_transmit() else {
            panic!()
        };
        c.handle_http_response(t0, id, 200, body);
        drain_events(&mut c);
    }
    // Unmatched UDP junk is ignored.
    assert!(!c.handle_udp_datagram(t0, TRACKER_UDP, &[0; 3]));
    assert!(!c.handle_udp_datagram(
        t0,
        TRACKER_UDP,
        &[0, 0, 0, 1, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    ));
}

#[test]
fn unusable_trackers_are_refused_and_duplicates_merged() {
    let t0 = Instant::now();
    let mut c = client();
    assert_eq!(
        c.add_torrent(
            t0,
            IH,
            &tiers(&[&["wss://x.test/", "udp://noport.test"], &[]]),
            0
        ),
        Err(ClientError::NoUsableTracker)
    );
    assert!(c.is_idle());
    let many: Vec<String> = (0..200)
        .map(|n| format!("http://t{n}.test/announce"))
        .collect();
    let mut t = vec![many.clone(), many];
    t.push(vec!["http://t0.test/announce".into()]);
    assert_eq!(c.add_torrent(t0, IH, &t, 0), Ok(MAX_CLIENT_TRACKERS));
    assert_eq!(drain_transmits(&mut c).len(), 1, "one tier survives");
    assert_eq!(c.add_torrent(t0, IH, &t, 0), Err(ClientError::AlreadyAdded));
}

#[test]
fn udp_error_packet_fails_the_tracker() {
    let t0 = Instant::now();
    let mut c = client();
    c.add_torrent(t0, IH, &tiers(&[&["udp://tracker.test:6969"]]), 0)
        .unwrap();
    let [Transmit::Udp { ref payload, .. }] = drain_transmits(&mut c)[..] else {
        panic!()
    };
    let txid = u32::from_be_bytes(payload[12..16].try_into().unwrap());
    let mut resp = Vec::new();
    crate::udp::packet::write_error(&mut resp, txid, b"go away");
    assert!(c.handle_udp_datagram(t0, TRACKER_UDP, &resp));
    assert!(
        matches!(&drain_events(&mut c)[..], [ClientEvent::Failed { reason, .. }] if reason == "go away")
    );
    assert_eq!(c.poll_timeout(), Some(t0 + CLIENT_RETRY_BASE_INTERVAL));
}

#[test]
fn same_seed_same_schedule() {
    let run = || {
        let t0 = Instant::now();
        let mut c = TrackerClient::new(config(), [9; 32]);
        let urls: Vec<String> = (0..10).map(|n| format!("http://t{n}.test/a")).collect();
        c.add_torrent(t0, IH, &[urls], 0).unwrap();
        let Some(Transmit::Http { url, .. }) = c.poll_transmit() else {
            panic!()
        };
        url
    };
    assert_eq!(run(), run());
}

#[test]
fn no_completed_for_a_tracker_first_told_started_as_a_seed() {
    let t0 = Instant::now();
    let mut net = Net::new(t0);
    let mut c = client();
    c.add_torrent(
        t0,
        IH,
        &tiers(&[&["http://a.test/announce", "http://b.test/announce"]]),
        10,
    )
    .unwrap();
    net.pump(&mut c, t0);
    drain_events(&mut c);
    c.set_progress(&IH, 0, 10, 0);
    c.completed(t0, &IH);
    // The working tracker refuses the `completed`; the other one is told `started` with left=0
    // and must not get a `completed` afterwards.
    let [Transmit::Http { id, ref url }] = drain_transmits(&mut c)[..] else {
        panic!()
    };
    assert_eq!(param(url, "event"), Some("completed"));
    c.handle_http_response(t0, id, 200, b"d14:failure reason4:downe");
    let [Transmit::Http { id, ref url }] = drain_transmits(&mut c)[..] else {
        panic!()
    };
    assert_eq!(
        (param(url, "event"), param(url, "left")),
        (Some("started"), Some("0"))
    );
    c.handle_http_response(t0, id, 200, b"d8:intervali1800e5:peers0:e");
    assert!(drain_transmits(&mut c).is_empty());
    assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(1800)));
}

#[test]
fn bep7_ipv6_param_names_the_nodes_ipv6_address_only_when_set() {
    let t0 = Instant::now();
    let mut c = client();
    c.add_torrent(t0, IH, &tiers(&[&["http://t.test/announce"]]), 0)
        .unwrap();
    let tx = drain_transmits(&mut c);
    let [Transmit::Http { url, .. }] = tx.as_slice() else {
        panic!("{tx:?}")
    };
    assert_eq!(param(url, "ipv6"), None);
    let mut config = config();
    config.ipv6 = Some("2001:db8::7".parse().unwrap());
    let mut c = TrackerClient::new(config, [1; 32]);
    c.add_torrent(t0, IH, &tiers(&[&["http://t.test/announce"]]), 0)
        .unwrap();
    let tx = drain_transmits(&mut c);
    let [Transmit::Http { url, .. }] = tx.as_slice() else {
        panic!("{tx:?}")
    };
    // BEP 7: the address in its text form, percent-encoded like every other value.
    assert_eq!(param(url, "ipv6"), Some("2001%3Adb8%3A%3A7"));
}
