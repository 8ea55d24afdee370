//! The HTTP front end: `GET /announce` (BEP 3, compact peers BEP 23, `peers6` BEP 7) and
//! `GET /scrape` (BEP 48), answered with bencoded bodies. The engine owns the HTTP framing; it
//! passes the raw query string (after `?`) and sends the returned body with status 200 (a
//! `failure reason` is a 200 too, as every tracker does).
//!
//! # Response forms
//!
//! - Compact (default, and for any `compact` other than `0`): `peers` holds the announcer's own
//!   family's peers when it announces over IPv4, `peers6` (18 bytes each) when over IPv6; this
//!   node's entry for hosted torrents goes under the key of its own family. `peers` is always
//!   present (maybe empty); `peers6` only when not empty.
//! - Dictionary model (`compact=0`): `peers` is a list of `{ip, port}` dictionaries, always
//!   without `peer id`, as if `no_peer_id=1` had been sent (BEP 23 lets a tracker leave it out;
//!   opentracker stores no peer ID either). Storing the 20-byte ID would more than double the
//!   memory of a peer (10 bytes for IPv4, see `swarm.rs`) for a form modern clients do not ask
//!   for, and clients learn the peer ID from the BEP 3 handshake anyway.
//! - Every success carries `complete`, `downloaded`, `incomplete`, `interval`, `min interval`
//!   (keys sorted, as bencode requires). Every refusal is `d14:failure reason<text>e`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use seednode_wire::bencode::{put_bytes, put_uint};

use crate::announce::{AnnounceError, AnnounceRequest};
use crate::scrape::ScrapeRequest;
use crate::server::{PeerAnnounce, Selected, Tracker, canonical_addr};
use crate::swarm::COMPACT_V4_LEN;

impl Tracker {
    /// Handles `GET /announce?<query>` from `remote` and returns the bencoded response body (a
    /// `failure reason` dictionary on error, BEP 3).
    ///
    /// `self_addr` is the address this node's peer port is reachable at, as seen by this client
    /// (the engine passes the local address the request arrived on); it is listed first as a
    /// seeder for hosted torrents, even to clients that announce `left=0` (see
    /// [`Tracker::announce`]).
    pub fn http_announce(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        self_addr: Option<SocketAddr>,
        query: &[u8],
    ) -> Vec<u8> {
        match AnnounceRequest::parse_query(query)
            .and_then(|req| self.announce(now, remote.ip(), self_addr, &req))
        {
            Ok(body) => {
                self.stats.http_announces += 1;
                body
            }
            Err(e) => {
                self.stats.http_failures += 1;
                failure(&e.to_string())
            }
        }
    }

    /// Applies a parsed announce from `ip` (the socket address's IP; the request's `ip` parameter
    /// replaces it only with [`crate::TrackerConfig::trust_ip_param`]) and returns the bencoded
    /// response.
    ///
    /// # Errors
    /// [`AnnounceError::UnknownTorrent`] when the access policy refuses the info-hash;
    /// [`AnnounceError::Full`] when a new swarm would exceed [`crate::limits::MAX_TORRENTS`].
    pub fn announce(
        &mut self,
        now: Instant,
        ip: IpAddr,
        self_addr: Option<SocketAddr>,
        req: &AnnounceRequest,
    ) -> Result<Vec<u8>, AnnounceError> {
        let ip = match req.ip {
            Some(claimed) if self.config.trust_ip_param => claimed,
            _ => ip,
        };
        let a = PeerAnnounce {
            info_hash: req.info_hash,
            addr: canonical_addr(SocketAddr::new(ip, req.port)),
            left: req.left,
            event: req.event,
            numwant: req.numwant,
        };
        let mut peers4 = Vec::new();
        let mut peers6 = Vec::new();
        let mut dict = Vec::new();
        let compact = req.compact;
        let counts = self.announce_core(now, &a, self_addr, false, |p| {
            if compact {
                if p.compact.len() == COMPACT_V4_LEN {
                    peers4.extend_from_slice(p.compact);
                } else {
                    peers6.extend_from_slice(p.compact);
                }
            } else {
                put_dict_peer(&mut dict, p);
            }
        })?;
        let mut out = Vec::with_capacity(112 + peers4.len() + peers6.len() + dict.len());
        out.push(b'd');
        put_key_int(&mut out, b"complete", u64::from(counts.complete));
        put_key_int(&mut out, b"downloaded", u64::from(counts.downloaded));
        put_key_int(&mut out, b"incomplete", u64::from(counts.incomplete));
        put_key_int(
            &mut out,
            b"interval",
            self.config.announce_interval.as_secs(),
        );
        put_key_int(
            &mut out,
            b"min interval",
            self.config.min_announce_interval.as_secs(),
        );
        if compact {
            put_key_bytes(&mut out, b"peers", &peers4);
            if !peers6.is_empty() {
                put_key_bytes(&mut out, b"peers6", &peers6);
            }
        } else {
            put_bytes(&mut out, b"peers");
            out.push(b'l');
            out.extend_from_slice(&dict);
            out.push(b'e');
        }
        out.push(b'e');
        Ok(out)
    }

    /// Handles `GET /scrape?<query>` (BEP 48) and returns the bencoded body: `files` maps each
    /// requested info-hash (sorted, duplicates merged) to `complete`, `downloaded` and
    /// `incomplete`; torrents not tracked (or refused by the access policy) report zeros. A full
    /// scrape (no `info_hash`), more than [`crate::limits::MAX_SCRAPE_INFO_HASHES`] values, or a
    /// malformed info-hash gets a `failure reason`. `now` is unused today (kept for per-IP rate
    /// limiting).
    pub fn http_scrape(&mut self, now: Instant, query: &[u8]) -> Vec<u8> {
        let _ = now;
        match ScrapeRequest::parse_query(query) {
            Ok(req) => {
                self.stats.http_scrapes += 1;
                self.scrape(&req)
            }
            Err(e) => {
                self.stats.http_failures += 1;
                failure(&e.to_string())
            }
        }
    }

    /// The bencoded BEP 48 response to a parsed scrape.
    #[must_use]
    pub fn scrape(&self, req: &ScrapeRequest) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + req.info_hashes.len() * 80);
        out.extend_from_slice(b"d5:filesd");
        for ih in &req.info_hashes {
            let c = self.scrape_counts(ih);
            put_bytes(&mut out, &ih.0);
            out.push(b'd');
            put_key_int(&mut out, b"complete", u64::from(c.complete));
            put_key_int(&mut out, b"downloaded", u64::from(c.downloaded));
            put_key_int(&mut out, b"incomplete", u64::from(c.incomplete));
            out.push(b'e');
        }
        out.extend_from_slice(b"ee");
        out
    }
}

/// A bencoded `failure reason` response (BEP 3).
#[must_use]
pub fn failure(reason: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + reason.len());
    out.push(b'd');
    put_key_bytes(&mut out, b"failure reason", reason.as_bytes());
    out.push(b'e');
    out
}

/// One dictionary-model peer: `d2:ip<text>4:porti<port>ee` (keys sorted; no `peer id`, see the
/// module docs).
fn put_dict_peer(out: &mut Vec<u8>, p: Selected<'_>) {
    let (ip, port) = match p.compact.len() {
        COMPACT_V4_LEN => {
            let mut o = [0u8; 4];
            o.copy_from_slice(&p.compact[..4]);
            (IpAddr::V4(Ipv4Addr::from(o)), [p.compact[4], p.compact[5]])
        }
        _ => {
            let mut o = [0u8; 16];
            o.copy_from_slice(&p.compact[..16]);
            (
                IpAddr::V6(Ipv6Addr::from(o)),
                [p.compact[16], p.compact[17]],
            )
        }
    };
    out.push(b'd');
    put_key_bytes(out, b"ip", ip.to_string().as_bytes());
    put_key_int(out, b"port", u64::from(u16::from_be_bytes(port)));
    out.push(b'e');
}

fn put_key_bytes(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    put_bytes(out, key);
    put_bytes(out, value);
}

fn put_key_int(out: &mut Vec<u8>, key: &[u8], value: u64) {
    put_bytes(out, key);
    put_uint(out, value);
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // each test reads the clock once, for its epoch
mod tests {
    use std::time::Duration;

    use seednode_wire::InfoHash;
    use seednode_wire::bencode::{self, Value};

    use super::*;
    use crate::access::{AccessList, AccessMode};
    use crate::limits::{
        DEFAULT_ANNOUNCE_INTERVAL, DEFAULT_PEER_TTL, MAX_NUMWANT, MAX_PEERS_PER_TORRENT,
        MAX_SCRAPE_INFO_HASHES,
    };
    use crate::server::TrackerConfig;

    const IH: InfoHash = InfoHash([0x11; 20]);

    fn query_for(ih: &InfoHash, port: u16, left: u64, event: &str) -> Vec<u8> {
        let mut q = String::from("info_hash=");
        crate::query::percent_encode(&ih.0, &mut q);
        q.push_str(&format!(
            "&peer_id=-TE0001-{port:012}&port={port}&left={left}&event={event}"
        ));
        q.into_bytes()
    }

    fn query(port: u16, left: u64, event: &str) -> Vec<u8> {
        query_for(&IH, port, left, event)
    }

    fn dict(body: &[u8]) -> bencode::Dict<'_> {
        match bencode::decode(body).expect("valid bencode") {
            Value::Dict(d) => d,
            other => panic!("not a dict: {other:?}"),
        }
    }

    fn int(body: &[u8], key: &str) -> i64 {
        dict(body)
            .get(key.as_bytes())
            .and_then(Value::as_int)
            .unwrap()
    }

    fn compact(body: &[u8], key: &str) -> Vec<SocketAddr> {
        let d = dict(body);
        let Some(raw) = d.get(key.as_bytes()).and_then(Value::as_bytes) else {
            return Vec::new();
        };
        let stride = if key == "peers" { 6 } else { 18 };
        assert_eq!(raw.len() % stride, 0);
        raw.chunks_exact(stride)
            .map(crate::udp::packet::compact_peer)
            .collect()
    }

    fn peers_of(body: &[u8]) -> Vec<SocketAddr> {
        compact(body, "peers")
    }

    fn addr(last: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([10, 255, 0, last], port))
    }

    fn open() -> Tracker {
        Tracker::new(TrackerConfig {
            open: true,
            ..TrackerConfig::default()
        })
    }

    #[test]
    fn unknown_torrent_gets_failure_reason() {
        let mut t = Tracker::new(TrackerConfig::default());
        let body = t.http_announce(Instant::now(), addr(2, 1), None, &query(7000, 5, "started"));
        assert_eq!(
            body,
            b"d14:failure reason40:torrent not registered with this trackere"
        );
        assert_eq!(t.torrent_count(), 0);
        assert_eq!(t.stats().http_failures, 1);
    }

    #[test]
    fn leecher_learns_hosted_seed_and_other_leechers() {
        let now = Instant::now();
        let mut t = Tracker::new(TrackerConfig::default());
        t.host(IH);
        let me = addr(1, 6881);
        let first = t.http_announce(now, addr(2, 40000), Some(me), &query(7002, 5, "started"));
        assert_eq!(peers_of(&first), vec![me]);
        let second = t.http_announce(now, addr(3, 40000), Some(me), &query(7003, 5, "started"));
        assert_eq!(peers_of(&second), vec![me, addr(2, 7002)]);
        assert!(
            second.starts_with(b"d8:completei1e10:downloadedi0e10:incompletei2e8:intervali1800e12:min intervali900e5:peers12:")
        );
    }

    #[test]
    fn seeders_not_sent_to_seeders() {
        let now = Instant::now();
        let mut t = Tracker::new(TrackerConfig::default());
        t.host(IH);
        let me = addr(1, 6881);
        t.http_announce(now, addr(2, 1), Some(me), &query(7002, 0, "started"));
        t.http_announce(now, addr(4, 1), Some(me), &query(7004, 9, "started"));
        let body = t.http_announce(now, addr(3, 1), Some(me), &query(7003, 0, "completed"));
        assert_eq!(
            peers_of(&body),
            vec![me, addr(4, 7004)],
            "only leechers, after this node"
        );
        assert!(body.starts_with(b"d8:completei3e10:downloadedi1e"));
    }

    #[test]
    fn magnet_client_announcing_left_zero_still_gets_this_node() {
        // aria2c with a magnet link announces left=0 before it knows the size.
        let now = Instant::now();
        let mut t = Tracker::new(TrackerConfig::default());
        t.host(IH);
        let me = addr(1, 6881);
        let body = t.http_announce(now, addr(9, 1), Some(me), &query(7009, 0, "started"));
        assert_eq!(peers_of(&body), vec![me]);
        let body = t.http_announce(now, addr(9, 1), Some(me), &query(7009, 0, "stopped"));
        assert!(peers_of(&body).is_empty(), "stopped gets no peers");
    }

    #[test]
    fn stopped_removes_and_silent_peers_expire() {
        let now = Instant::now();
        let mut t = Tracker::new(TrackerConfig::default());
        t.host(IH);
        t.http_announce(now, addr(2, 1), None, &query(7002, 5, "started"));
        t.http_announce(now, addr(3, 1), None, &query(7003, 5, "started"));
        t.http_announce(now, addr(2, 1), None, &query(7002, 5, "stopped"));
        let body = t.http_announce(now, addr(4, 1), None, &query(7004, 5, ""));
        assert_eq!(peers_of(&body), vec![addr(3, 7003)]);
        assert_eq!(t.peer_count(), 2);
        t.expire(now + DEFAULT_ANNOUNCE_INTERVAL * 2);
        assert_eq!(t.peer_count(), 0);
        let body = t.http_announce(now, addr(5, 1), None, &query(7005, 5, ""));
        assert!(peers_of(&body).is_empty());
        assert_eq!(t.torrent_count(), 1, "hosted swarm is kept");
    }

    #[test]
    fn peers_expire_exactly_at_ttl_and_unhosted_swarms_vanish() {
        let t0 = Instant::now();
        let mut t = open();
        t.http_announce(t0, addr(2, 1), None, &query(7002, 5, ""));
        t.expire(t0 + DEFAULT_PEER_TTL - Duration::from_secs(1));
        assert_eq!(t.peer_count(), 1, "alive one second before its TTL");
        // A re-announce refreshes last_seen.
        t.http_announce(
            t0 + Duration::from_secs(1000),
            addr(2, 1),
            None,
            &query(7002, 5, ""),
        );
        t.expire(t0 + DEFAULT_PEER_TTL);
        assert_eq!(t.peer_count(), 1);
        t.expire(t0 + DEFAULT_PEER_TTL + Duration::from_secs(1000));
        assert_eq!(t.peer_count(), 0);
        assert_eq!(
            t.torrent_count(),
            0,
            "an empty swarm not hosted here is dropped"
        );
    }

    #[test]
    fn ipv6_only_swarm_is_stopped_expired_and_dropped_like_any_other() {
        let t0 = Instant::now();
        let mut t = open();
        let v6 = |n: u16| -> SocketAddr {
            SocketAddr::new(format!("2001:db8::{n:x}").parse().unwrap(), 1)
        };
        t.http_announce(t0, v6(2), None, &query(7102, 5, "started"));
        t.http_announce(t0, v6(3), None, &query(7103, 5, "started"));
        assert_eq!((t.torrent_count(), t.peer_count()), (1, 2));
        assert_eq!(t.swarms_v6.len(), 1);
        t.http_announce(t0, v6(2), None, &query(7102, 5, "stopped"));
        assert_eq!(t.peer_count(), 1);
        t.expire(t0 + DEFAULT_PEER_TTL - Duration::from_secs(1));
        assert_eq!(
            (t.torrent_count(), t.peer_count()),
            (1, 1),
            "a swarm with only IPv6 peers is kept while they live"
        );
        t.http_announce(t0, v6(3), None, &query(7103, 5, "stopped"));
        assert!(
            t.swarms_v6.is_empty(),
            "the empty IPv6 list is dropped at once"
        );
        t.http_announce(t0, v6(4), None, &query(7104, 5, "started"));
        t.expire(t0 + DEFAULT_PEER_TTL);
        assert_eq!((t.torrent_count(), t.peer_count()), (0, 0));
        assert!(t.swarms_v6.is_empty());
        // A refused policy drops the IPv6 peers with their swarm.
        t.http_announce(t0, v6(5), None, &query(7105, 5, "started"));
        t.set_access_list(Some(AccessList::parse(AccessMode::Allow, "").unwrap()));
        assert_eq!((t.torrent_count(), t.peer_count()), (0, 0));
        assert!(t.swarms_v6.is_empty());
        t.check_invariants();
    }

    #[test]
    fn ipv6_newcomer_at_the_tracker_wide_cap_is_answered_not_stored() {
        let t0 = Instant::now();
        let mut t = open();
        t.total_peers = crate::limits::MAX_PEERS;
        let v6: SocketAddr = "[2001:db8::2]:1".parse().unwrap();
        let body = t.http_announce(t0, v6, None, &query(7102, 5, "started"));
        assert!(dict(&body).get(b"failure reason").is_none(), "answered");
        assert!(
            t.swarms_v6.is_empty(),
            "no IPv6 list made for a peer not stored"
        );
        assert_eq!(t.stats().peers_not_stored, 1);
    }

    #[test]
    fn local_announcers_go_only_to_requesters_on_the_same_kind_of_network() {
        let now = Instant::now();
        let lo: SocketAddr = "127.0.0.5:1".parse().unwrap();
        let lan: SocketAddr = "192.168.1.5:1".parse().unwrap();
        let public: SocketAddr = "11.0.0.5:1".parse().unwrap();
        // A fresh swarm of the three for each requester (a requester is stored too).
        let seen = |from: &str| {
            let mut t = open();
            for peer in [lo, lan, public] {
                t.http_announce(now, peer, None, &query(7000, 5, "started"));
            }
            let mut p =
                peers_of(&t.http_announce(now, from.parse().unwrap(), None, &query(6000, 5, "")));
            p.sort();
            p
        };
        let at = |a: SocketAddr| SocketAddr::new(a.ip(), 7000);
        assert_eq!(seen("11.9.9.9:1"), vec![at(public)], "the internet");
        assert_eq!(seen("192.168.7.7:1"), vec![at(public), at(lan)]);
        assert_eq!(seen("127.0.0.9:1"), vec![at(public), at(lo)]);
        // The node itself, when it is known only by a loopback address, is not offered either.
        let mut t = open();
        let me: SocketAddr = "127.0.0.1:6881".parse().unwrap();
        t.host(IH);
        let body = t.http_announce(
            now,
            "11.9.9.9:1".parse().unwrap(),
            Some(me),
            &query(6000, 5, ""),
        );
        assert!(peers_of(&body).is_empty());
        let body = t.http_announce(
            now,
            "127.0.0.9:1".parse().unwrap(),
            Some(me),
            &query(6000, 5, ""),
        );
        assert!(peers_of(&body).contains(&me));
    }

    #[test]
    fn ipv4_mapped_source_is_unwrapped() {
        let now = Instant::now();
        let mut t = open();
        let mapped: SocketAddr = "[::ffff:10.255.0.9]:5".parse().unwrap();
        t.http_announce(now, mapped, None, &query(7009, 5, "started"));
        let body = t.http_announce(now, addr(2, 1), None, &query(7002, 5, "started"));
        assert_eq!(peers_of(&body), vec![addr(9, 7009)]);
    }

    #[test]
    fn bep7_ipv6_peers_go_to_ipv6_announcers_in_peers6() {
        let now = Instant::now();
        let mut t = Tracker::new(TrackerConfig::default());
        t.host(IH);
        let v6 = |n: u16, port: u16| -> SocketAddr {
            SocketAddr::new(format!("2001:db8::{n:x}").parse().unwrap(), port)
        };
        let me6 = v6(1, 6881);
        t.http_announce(now, addr(2, 1), Some(addr(1, 6881)), &query(7002, 5, ""));
        t.http_announce(now, v6(2, 1), Some(me6), &query(7102, 5, ""));
        let body = t.http_announce(now, v6(3, 1), Some(me6), &query(7103, 5, ""));
        assert_eq!(compact(&body, "peers6"), vec![me6, v6(2, 7102)]);
        assert!(
            peers_of(&body).is_empty(),
            "IPv4 peers are not sent to an IPv6 announcer"
        );
        assert_eq!(int(&body, "incomplete"), 3, "counts cover both families");
        let body = t.http_announce(now, addr(3, 1), Some(addr(1, 6881)), &query(7003, 5, ""));
        assert_eq!(peers_of(&body), vec![addr(1, 6881), addr(2, 7002)]);
        assert!(compact(&body, "peers6").is_empty());
        assert!(
            !body.windows(6).any(|w| w == b"peers6"),
            "no empty peers6 key"
        );
        // This node's IPv6 address is listed to an IPv4 announcer, under peers6.
        let body = t.http_announce(now, addr(4, 1), Some(me6), &query(7004, 5, ""));
        assert_eq!(compact(&body, "peers6"), vec![me6]);
    }

    #[test]
    fn bep3_dictionary_model_never_carries_peer_ids() {
        let now = Instant::now();
        let mut t = open();
        t.http_announce(now, addr(2, 1), None, &query(7002, 5, ""));
        let mut q = query(7003, 5, "");
        q.extend_from_slice(b"&compact=0");
        let body = t.http_announce(now, addr(3, 1), None, &q);
        let expected = b"d8:completei0e10:downloadedi0e10:incompletei2e8:intervali1800e\
12:min intervali900e5:peersld2:ip10:10.255.0.24:porti7002eeee";
        assert_eq!(
            body,
            &expected[..],
            "no `peer id` even without no_peer_id: none is stored (BEP 23 allows it)"
        );
        q.extend_from_slice(b"&no_peer_id=1");
        let body = t.http_announce(now, addr(3, 1), None, &q);
        assert!(body.ends_with(b"5:peersld2:ip10:10.255.0.24:porti7002eeee"));
        // IPv6 peers in the dictionary model are text addresses in the same list.
        let v6: SocketAddr = "[2001:db8::5]:1".parse().unwrap();
        t.http_announce(now, v6, None, &query(7005, 5, ""));
        let mut q = query(7006, 5, "");
        q.extend_from_slice(b"&compact=0&no_peer_id=1");
        let body = t.http_announce(now, "[2001:db8::6]:1".parse().unwrap(), None, &q);
        assert!(body.ends_with(b"5:peersld2:ip11:2001:db8::54:porti7005eeee"));
    }

    #[test]
    fn ip_parameter_ignored_unless_trusted() {
        let now = Instant::now();
        let mut t = open();
        let mut q = query(7002, 5, "");
        q.extend_from_slice(b"&ip=10.9.9.9");
        t.http_announce(now, addr(2, 1), None, &q);
        let body = t.http_announce(now, addr(3, 1), None, &query(7003, 5, ""));
        assert_eq!(
            peers_of(&body),
            vec![addr(2, 7002)],
            "socket address stored (TH3)"
        );

        let mut trusting = Tracker::new(TrackerConfig {
            open: true,
            trust_ip_param: true,
            ..TrackerConfig::default()
        });
        trusting.http_announce(now, addr(2, 1), None, &q);
        let body = trusting.http_announce(now, addr(3, 1), None, &query(7003, 5, ""));
        assert_eq!(peers_of(&body), vec!["10.9.9.9:7002".parse().unwrap()]);
    }

    #[test]
    fn numwant_is_capped_and_zero_means_none() {
        let now = Instant::now();
        let mut t = open();
        for n in 0..=250u16 {
            let ip = SocketAddr::from(([10, 0, (n >> 8) as u8, n as u8], 1));
            t.http_announce(now, ip, None, &query(7000, 5, ""));
        }
        let mut q = query(6000, 5, "");
        q.extend_from_slice(b"&numwant=1000000");
        let body = t.http_announce(now, addr(3, 1), None, &q);
        assert_eq!(peers_of(&body).len(), MAX_NUMWANT);
        assert!(
            body.len() < 1400,
            "a 200-peer compact reply is about 1.3 KB"
        );
        let mut q = query(6000, 5, "");
        q.extend_from_slice(b"&numwant=0");
        assert!(peers_of(&t.http_announce(now, addr(3, 1), None, &q)).is_empty());
        let body = t.http_announce(now, addr(3, 1), None, &query(6000, 5, ""));
        assert_eq!(peers_of(&body).len(), 50, "default numwant");
    }

    #[test]
    fn selection_is_fair_not_always_the_first_n() {
        let now = Instant::now();
        let mut t = Tracker::with_secret(
            TrackerConfig {
                open: true,
                ..TrackerConfig::default()
            },
            now,
            [5; 32],
        );
        for n in 0..200u8 {
            t.http_announce(
                now,
                SocketAddr::from(([10, 0, 0, n], 1)),
                None,
                &query(7000, 5, ""),
            );
        }
        let mut seen = std::collections::HashSet::new();
        for _ in 0..20 {
            let body = t.http_announce(now, addr(3, 1), None, &query(6000, 5, ""));
            seen.extend(peers_of(&body));
        }
        assert!(
            seen.len() > 150,
            "20 × 50 picks reach most of 200 peers, got {}",
            seen.len()
        );
    }

    #[test]
    fn completed_counts_once_per_peer() {
        let now = Instant::now();
        let mut t = open();
        t.http_announce(now, addr(2, 1), None, &query(7002, 5, "started"));
        t.http_announce(now, addr(2, 1), None, &query(7002, 0, "completed"));
        let body = t.http_announce(now, addr(2, 1), None, &query(7002, 0, "completed"));
        assert_eq!(int(&body, "downloaded"), 1);
        assert_eq!((int(&body, "complete"), int(&body, "incomplete")), (1, 0));
    }

    #[test]
    fn peers_per_torrent_capped_new_peers_answered_not_stored() {
        let now = Instant::now();
        let mut t = open();
        for n in 0..MAX_PEERS_PER_TORRENT {
            let ip = SocketAddr::from(([10, 1, (n >> 8) as u8, n as u8], 1));
            t.http_announce(now, ip, None, &query(7000, 5, ""));
        }
        assert_eq!(t.peer_count(), MAX_PEERS_PER_TORRENT);
        let body = t.http_announce(now, addr(3, 1), None, &query(6000, 5, ""));
        assert_eq!(peers_of(&body).len(), 50, "answered");
        assert_eq!(t.peer_count(), MAX_PEERS_PER_TORRENT, "not stored");
        assert_eq!(t.stats().peers_not_stored, 1);
        // A stored peer still refreshes.
        let body = t.http_announce(
            now,
            SocketAddr::from(([10, 1, 0, 0], 1)),
            None,
            &query(7000, 0, ""),
        );
        assert_eq!(int(&body, "complete"), 1);
    }

    #[test]
    fn torrents_capped_and_hosted_always_admitted() {
        use crate::limits::MAX_TORRENTS;
        let now = Instant::now();
        let mut t = open();
        for n in 0..MAX_TORRENTS as u32 {
            let mut ih = [0u8; 20];
            ih[..4].copy_from_slice(&n.to_be_bytes());
            let body = t.http_announce(
                now,
                addr(2, 1),
                None,
                &query_for(&InfoHash(ih), 7002, 5, ""),
            );
            assert!(!body.starts_with(b"d14:failure"));
        }
        let body = t.http_announce(
            now,
            addr(2, 1),
            None,
            &query_for(&InfoHash([0xee; 20]), 7002, 5, ""),
        );
        assert_eq!(body, b"d14:failure reason15:tracker is fulle");
        assert_eq!(t.stats().torrents_refused_full, 1);
        t.host(IH);
        let body = t.http_announce(now, addr(2, 1), None, &query(7002, 5, ""));
        assert!(
            body.starts_with(b"d8:complete"),
            "hosted torrents bypass the cap"
        );
    }

    #[test]
    fn access_list_allow_deny_reload_and_hosted_always_allowed() {
        let now = Instant::now();
        let listed = InfoHash([0x22; 20]);
        let other = InfoHash([0x33; 20]);
        let mut t = Tracker::new(TrackerConfig::default());
        t.host(IH);
        t.set_access_list(Some(
            AccessList::parse(
                AccessMode::Allow,
                &format!("# allowed\n{}\n", listed.to_hex()),
            )
            .unwrap(),
        ));
        let ok = |body: &[u8]| !body.starts_with(b"d14:failure");
        assert!(ok(&t.http_announce(
            now,
            addr(2, 1),
            None,
            &query_for(&listed, 7002, 5, "")
        )));
        assert!(!ok(&t.http_announce(
            now,
            addr(2, 1),
            None,
            &query_for(&other, 7002, 5, "")
        )));
        assert!(
            ok(&t.http_announce(now, addr(2, 1), None, &query(7002, 5, ""))),
            "hosted"
        );
        assert_eq!(t.peer_count(), 2);

        // Reload as a deny-list naming `listed`: its swarm goes, others come in.
        t.set_access_list(Some(
            AccessList::parse(AccessMode::Deny, &listed.to_hex()).unwrap(),
        ));
        assert_eq!(t.torrent_count(), 1);
        assert_eq!(t.peer_count(), 1);
        assert!(!ok(&t.http_announce(
            now,
            addr(2, 1),
            None,
            &query_for(&listed, 7002, 5, "")
        )));
        assert!(ok(&t.http_announce(
            now,
            addr(2, 1),
            None,
            &query_for(&other, 7002, 5, "")
        )));
        let deny_hosted = AccessList::parse(AccessMode::Deny, &IH.to_hex()).unwrap();
        t.set_access_list(Some(deny_hosted));
        assert!(
            ok(&t.http_announce(now, addr(2, 1), None, &query(7002, 5, ""))),
            "hosted beats deny"
        );

        // No list and not open: hosted only.
        t.set_access_list(None);
        assert_eq!(t.torrent_count(), 1);
        t.unhost(&IH);
        assert_eq!(t.torrent_count(), 0);
        assert_eq!(t.peer_count(), 0);
    }

    #[test]
    fn bep48_scrape_of_several_info_hashes() {
        let now = Instant::now();
        let mut t = open();
        let a = InfoHash([b'x'; 20]);
        let b = InfoHash([b'y'; 20]);
        t.http_announce(now, addr(2, 1), None, &query_for(&a, 7002, 0, ""));
        t.http_announce(now, addr(3, 1), None, &query_for(&a, 7003, 5, ""));
        t.http_announce(now, addr(3, 1), None, &query_for(&a, 7003, 0, "completed"));
        t.http_announce(now, addr(4, 1), None, &query_for(&a, 7004, 5, ""));
        let q = format!(
            "info_hash={}&info_hash={}&info_hash={}",
            "z".repeat(20),
            "y".repeat(20),
            "%78".repeat(20)
        );
        let body = t.http_scrape(now, q.as_bytes());
        let expected = format!(
            "d5:filesd20:{}d8:completei2e10:downloadedi1e10:incompletei1ee\
20:{}d8:completei0e10:downloadedi0e10:incompletei0ee\
20:{}d8:completei0e10:downloadedi0e10:incompletei0eeee",
            "x".repeat(20),
            "y".repeat(20),
            "z".repeat(20)
        );
        assert_eq!(String::from_utf8(body.clone()).unwrap(), expected);
        assert!(dict(&body).get(b"files").is_some());
        let _ = b;
    }

    #[test]
    fn scrape_refusals_are_failure_reasons() {
        let now = Instant::now();
        let mut t = open();
        assert_eq!(
            t.http_scrape(now, b""),
            failure("full scrape is not supported")
        );
        let one = format!("info_hash={}&", "a".repeat(20));
        let body = t.http_scrape(now, one.repeat(MAX_SCRAPE_INFO_HASHES + 1).as_bytes());
        assert_eq!(body, failure("too many info_hash values, limit 64"));
        let body = t.http_scrape(now, one.repeat(10_000).as_bytes());
        assert_eq!(body, failure("request too large"));
        assert_eq!(
            t.http_scrape(now, b"info_hash=%zz"),
            failure("invalid parameter `info_hash`")
        );
        assert_eq!(t.stats().http_failures, 4);
    }

    #[test]
    fn hostile_queries_get_short_failures() {
        let now = Instant::now();
        let mut t = open();
        let huge = vec![b'&'; 1 << 20];
        assert_eq!(
            t.http_announce(now, addr(2, 1), None, &huge),
            failure("request too large")
        );
        let junk: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        let body = t.http_announce(now, addr(2, 1), None, &junk);
        assert!(body.starts_with(b"d14:failure reason") && body.len() < 64);
        for q in [
            &b"info_hash=%12%34&peer_id=-SN0001-abcdefghijkl&port=1"[..],
            b"port=0",
            b"\xff\xfe\x00=\x00",
            b"numwant=abc",
        ] {
            let body = t.http_announce(now, addr(2, 1), None, q);
            assert!(body.starts_with(b"d14:failure reason"), "{q:?}");
            bencode::decode(&body).unwrap();
        }
        assert_eq!(t.torrent_count(), 0);
    }
}
