//! Hostile input (SECURITY.md §3.6, D1–D12) and protocol behaviour of a single node driven by
//! hand-made datagrams: bounded replies, silence where due, rate limiting, tokens, bounded
//! tables, no panic.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use seednode_dht::krpc::{self, Body, ErrorBody, Message, Method, Query, Response, Want, compact};
use seednode_dht::limits::{
    MAX_DATAGRAMS_PER_WINDOW, MAX_INFO_HASHES, MAX_OUTSTANDING_QUERIES, MAX_REPLY_LEN, MAX_SAMPLES,
    MAX_VALUES_PER_REPLY, QUERY_TIMEOUT, RATE_LIMIT_BAN_TTL, RATE_LIMIT_SLOTS,
    TOKEN_ROTATE_INTERVAL,
};
use seednode_dht::{Config, Dht, Event, IdSource, LookupOutcome, NodeId, Transmit};
use seednode_wire::InfoHash;
use seednode_wire::addr::AddrScope;

const OWN: NodeId = NodeId([0x42; 20]);
const IH: InfoHash = InfoHash([0x33; 20]);

#[allow(clippy::disallowed_methods)] // a test's epoch: its only clock read
fn epoch() -> Instant {
    Instant::now()
}

/// A node on a private network, like the 10.x addresses of most tests here: local-network
/// nodes and peers of that scope are used ([`Config::local_scope`]).
fn node(t0: Instant) -> Dht {
    node_with(t0, lan())
}

fn lan() -> Config {
    Config {
        local_scope: AddrScope::Private,
        ..Config::default()
    }
}

fn node_with(t0: Instant, config: Config) -> Dht {
    Dht::new(config, IdSource::Fixed(OWN), [5; 32], 7, t0)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn v4(i: u32) -> SocketAddr {
    SocketAddr::from(((0x0a00_0000 + i).to_be_bytes(), 6881))
}

fn drain(dht: &mut Dht) -> Vec<Transmit> {
    let mut out = Vec::new();
    while let Some(t) = dht.poll_transmit() {
        out.push(t);
    }
    out
}

fn events(dht: &mut Dht) -> Vec<Event> {
    let mut out = Vec::new();
    while let Some(e) = dht.poll_event() {
        out.push(e);
    }
    out
}

fn encode_query(t: &[u8], id: NodeId, method: Method<'_>) -> Vec<u8> {
    Message {
        transaction_id: t,
        version: None,
        read_only: false,
        ip: None,
        body: Body::Query(Query { id, method }),
    }
    .to_bytes()
}

fn encode_response(t: &[u8], r: Response<'_>) -> Vec<u8> {
    Message {
        transaction_id: t,
        version: None,
        read_only: false,
        ip: None,
        body: Body::Response(r),
    }
    .to_bytes()
}

/// Replies (not queries) among `out` sent to `to`.
fn replies_to(out: &[Transmit], to: SocketAddr) -> Vec<Message<'_>> {
    out.iter()
        .filter(|t| t.dst == to)
        .map(|t| krpc::decode(&t.payload).expect("we send valid KRPC"))
        .filter(|m| !matches!(m.body, Body::Query(_)))
        .collect()
}

fn ask(dht: &mut Dht, now: Instant, from: SocketAddr, datagram: &[u8]) -> Vec<Transmit> {
    dht.handle_datagram(now, from, datagram);
    drain(dht)
}

/// Gets a token for `from` with a get_peers query.
fn token(dht: &mut Dht, now: Instant, from: SocketAddr) -> Vec<u8> {
    let q = encode_query(
        b"tk",
        NodeId([1; 20]),
        Method::GetPeers {
            info_hash: IH,
            want: None,
        },
    );
    let out = ask(dht, now, from, &q);
    let replies = replies_to(&out, from);
    let Body::Response(r) = &replies[0].body else {
        panic!("no response")
    };
    r.token.expect("get_peers replies carry a token").to_vec()
}

fn announce(
    dht: &mut Dht,
    now: Instant,
    from: SocketAddr,
    tok: &[u8],
    ih: InfoHash,
) -> Vec<Transmit> {
    let q = encode_query(
        b"an",
        NodeId([1; 20]),
        Method::AnnouncePeer {
            info_hash: ih,
            port: 7000,
            implied_port: false,
            token: tok,
        },
    );
    ask(dht, now, from, &q)
}

fn error_code(m: &Message<'_>) -> Option<i64> {
    match &m.body {
        Body::Error(ErrorBody { code, .. }) => Some(*code),
        _ => None,
    }
}

/// Makes `dht` learn `n` IPv4 nodes (10.9.x.y) by pinging them and feeding their answers.
fn populate(dht: &mut Dht, now: Instant, n: u32) -> Vec<(NodeId, SocketAddr)> {
    let mut nodes = Vec::new();
    for i in 0..n {
        let a = SocketAddr::from(([10, 9, (i >> 8) as u8, i as u8], 6881));
        dht.ping(now, a);
        let out = drain(dht);
        let msg = krpc::decode(&out[0].payload).unwrap();
        let mut id = [0u8; 20];
        id[..4].copy_from_slice(&(i.wrapping_mul(2_654_435_761)).to_be_bytes());
        id[19] = i as u8;
        let id = NodeId(id);
        dht.handle_datagram(
            now,
            a,
            &encode_response(msg.transaction_id, Response::id_only(id)),
        );
        drain(dht);
        nodes.push((id, a));
    }
    nodes
}

// ---------------------------------------------------------------------------------------------
// D1: cheap silent drops
// ---------------------------------------------------------------------------------------------

#[test]
fn d1_non_dict_short_and_port_zero_are_dropped_silently() {
    let t0 = epoch();
    let mut dht = node(t0);
    let ping = encode_query(b"aa", NodeId([1; 20]), Method::Ping);
    let from = v4(1);
    let cases: Vec<(SocketAddr, Vec<u8>)> = vec![
        (from, b"li1ei2ei3ei4ei5ei6ei7ei8ee".to_vec()),
        (from, b"d1:t2:aae".to_vec()),
        (from, Vec::new()),
        (from, vec![b'd'; 1]),
        (from, ping[..ping.len() - 1].to_vec()),
        (addr("10.0.0.1:0"), ping.clone()),
        (
            from,
            b"x1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe".to_vec(),
        ),
    ];
    for (src, bytes) in &cases {
        assert!(
            ask(&mut dht, t0, *src, bytes).is_empty(),
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    assert_eq!(dht.stats().dropped_malformed, cases.len() as u64);
    // The same ping from a real port is answered.
    assert_eq!(replies_to(&ask(&mut dht, t0, from, &ping), from).len(), 1);
}

// ---------------------------------------------------------------------------------------------
// D2: nesting, size, key count
// ---------------------------------------------------------------------------------------------

#[test]
fn d2_deep_nesting_huge_messages_and_many_keys_are_dropped() {
    let t0 = epoch();
    let mut dht = node(t0);
    let from = v4(2);
    let mut nested = b"d1:al".to_vec();
    nested.extend(vec![b'l'; 5000]);
    nested.extend(vec![b'e'; 5001]);
    nested.extend(b"1:t2:aa1:y1:qe");
    // Within the size limit but deeper than the decoder allows.
    let mut deep = b"d1:a".to_vec();
    deep.extend(vec![b'l'; 700]);
    deep.extend(vec![b'e'; 700]);
    deep.extend(b"1:q4:ping1:t2:aa1:y1:qe");
    let mut huge = b"d1:ad2:id20:abcdefghij01234567895:x".to_vec();
    huge.extend(b"65000:");
    huge.extend(vec![b'x'; 65_000]);
    huge.extend(b"e1:q4:ping1:t2:aa1:y1:qe");
    let mut keys = b"d1:ad".to_vec();
    for i in 0..10_000 {
        keys.extend(format!("{}:k{i}i1e", 1 + i.to_string().len()).as_bytes());
    }
    keys.extend(b"e1:q4:ping1:t2:aa1:y1:qe");
    for bytes in [&nested, &deep, &huge, &keys] {
        assert!(ask(&mut dht, t0, from, bytes).is_empty());
    }
    assert_eq!(dht.stats().dropped_malformed, 4);
    dht.check_invariants();
}

// ---------------------------------------------------------------------------------------------
// D3: transaction ids, unknown types and methods, wrong argument types
// ---------------------------------------------------------------------------------------------

#[test]
fn d3_long_or_missing_t_is_never_echoed_and_errors_are_small() {
    let t0 = epoch();
    let mut dht = node(t0);
    let from = v4(3);
    let long_t = vec![b'T'; 1024];
    for q in [
        encode_query(&long_t, NodeId([1; 20]), Method::Ping),
        b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:y1:qe".to_vec(),
        b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:ze".to_vec(),
        b"d1:ad2:id19:abcdefghij012345678e1:q4:ping1:t1024:"
            .iter()
            .copied()
            .chain(long_t.iter().copied())
            .chain(*b"1:y1:qe")
            .collect(),
    ] {
        assert!(ask(&mut dht, t0, from, &q).is_empty());
    }
    // A 19-byte id with a short `t`: a small 203.
    let bad_id = b"d1:ad2:id19:abcdefghij012345678e1:q4:ping1:t2:aa1:y1:qe";
    let out = ask(&mut dht, t0, from, bad_id);
    let replies = replies_to(&out, from);
    assert_eq!(replies.len(), 1);
    assert_eq!(error_code(&replies[0]), Some(203));
    assert_eq!(replies[0].transaction_id, b"aa");
    assert!(
        out[0].payload.len() <= 64,
        "error of {} bytes",
        out[0].payload.len()
    );
    // Unknown method: 204.
    let out = ask(
        &mut dht,
        t0,
        from,
        b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q4:vote1:t2:ab1:y1:qe",
    );
    assert_eq!(error_code(&replies_to(&out, from)[0]), Some(204));
    assert_eq!(dht.stats().queries_in.unknown, 1);
    // Errors and responses are never answered, even malformed ones (no ping-pong).
    for m in [
        &b"d1:eli201e3:boome1:t2:aa1:y1:ee"[..],
        b"d1:rd2:idi1ee1:t2:aa1:y1:re",
        b"d1:eli201e3:boome1:t2:aa1:y1:ee",
    ] {
        assert!(ask(&mut dht, t0, from, m).is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// D4 / D12: rate limiting
// ---------------------------------------------------------------------------------------------

#[test]
fn d4_flood_from_one_address_is_rate_limited_then_banned() {
    let t0 = epoch();
    let mut dht = node_with(
        t0,
        Config {
            reply_bytes_per_sec: u32::MAX,
            ..lan()
        },
    );
    let from = v4(4);
    let q = encode_query(
        b"gp",
        NodeId([1; 20]),
        Method::GetPeers {
            info_hash: IH,
            want: None,
        },
    );
    // 10 000 queries in one second.
    let mut replies = 0;
    for i in 0..10_000u64 {
        let now = t0 + Duration::from_micros(100 * i);
        replies += replies_to(&ask(&mut dht, now, from, &q), from).len();
    }
    assert_eq!(replies, MAX_DATAGRAMS_PER_WINDOW as usize);
    assert_eq!(
        dht.stats().dropped_rate_limited,
        10_000 - u64::from(MAX_DATAGRAMS_PER_WINDOW)
    );
    assert_eq!(dht.stats().banned_ips, 1);
    // Still flooding at 1 000 pps for 5 minutes: nothing answered.
    let mut now = t0 + Duration::from_secs(1);
    for _ in 0..300_000 / 1000 {
        now += Duration::from_secs(1);
        assert!(replies_to(&ask(&mut dht, now, from, &q), from).is_empty());
    }
    // Others are unaffected.
    assert_eq!(replies_to(&ask(&mut dht, now, v4(5), &q), v4(5)).len(), 1);
    // After 300 s of silence the address is served again.
    now += RATE_LIMIT_BAN_TTL;
    assert_eq!(replies_to(&ask(&mut dht, now, from, &q), from).len(), 1);
}

#[test]
fn d4_spoofed_flood_keeps_the_ban_table_fixed_and_reply_bytes_capped() {
    let t0 = epoch();
    let mut dht = node(t0);
    let q = encode_query(
        b"gp",
        NodeId([1; 20]),
        Method::GetPeers {
            info_hash: IH,
            want: None,
        },
    );
    let mut bytes = 0;
    for i in 0..20_000u32 {
        let now = t0 + Duration::from_micros(50 * u64::from(i));
        bytes += ask(&mut dht, now, v4(1000 + i), &q)
            .iter()
            .map(|t| t.payload.len())
            .sum::<usize>();
    }
    // One second of flood from 20 000 addresses: replies stay within the global budget (64 KiB/s,
    // one second's burst) plus the verification pings it triggers.
    assert!(dht.stats().dropped_reply_budget > 0);
    assert!(bytes <= 2 * 64 * 1024 + 32 * 100, "{bytes} bytes sent");
    assert!(dht.stats().banned_ips <= RATE_LIMIT_SLOTS);
    dht.check_invariants();
}

#[test]
fn d12_sample_infohashes_is_bounded_and_rate_limited() {
    let t0 = epoch();
    let mut dht = node_with(
        t0,
        Config {
            reply_bytes_per_sec: u32::MAX,
            ..lan()
        },
    );
    // Store 100 info-hashes, announced from 100 addresses.
    for i in 0..100u8 {
        let from = v4(200 + u32::from(i));
        let tok = token(&mut dht, t0, from);
        announce(&mut dht, t0, from, &tok, InfoHash([i; 20]));
    }
    let from = v4(12);
    let later = t0 + Duration::from_secs(20);
    let q = encode_query(
        b"si",
        NodeId([1; 20]),
        Method::SampleInfohashes {
            target: NodeId([9; 20]),
            want: Some(Want { n4: true, n6: true }),
        },
    );
    let mut answered = 0;
    for i in 0..100u64 {
        let out = ask(&mut dht, later + Duration::from_millis(10 * i), from, &q);
        for t in out.iter().filter(|t| t.dst == from) {
            assert!(t.payload.len() <= MAX_REPLY_LEN);
            let m = krpc::decode(&t.payload).unwrap();
            if let Body::Response(r) = m.body {
                answered += 1;
                let samples = r.samples.unwrap();
                assert_eq!(samples.len(), MAX_SAMPLES * 20);
                assert_eq!(r.interval, Some(21_600));
                assert_eq!(r.num, Some(100));
            }
        }
    }
    assert!(answered > 0 && answered <= MAX_DATAGRAMS_PER_WINDOW as usize);
}

// ---------------------------------------------------------------------------------------------
// D5 / D7: the peer store
// ---------------------------------------------------------------------------------------------

#[test]
fn d5_get_peers_reply_bounded_with_5000_peers() {
    let t0 = epoch();
    let mut dht = node_with(
        t0,
        Config {
            reply_bytes_per_sec: u32::MAX,
            ..lan()
        },
    );
    populate(&mut dht, t0, 40);
    for i in 0..5000u32 {
        // Four replies every 2 ms stay within the 1 MiB/s reply budget.
        let now = t0 + Duration::from_millis(2 * u64::from(i));
        let v4_peer = SocketAddr::from(([11, (i >> 16) as u8, (i >> 8) as u8, i as u8], 6881));
        let tok = token(&mut dht, now, v4_peer);
        announce(&mut dht, now, v4_peer, &tok, IH);
        let v6_peer = SocketAddr::from((
            // Global: documentation addresses (2001:db8::/32) are never peers (wire::addr).
            [0x2400, 0xcb00, 0, 0, 0, 0, (i >> 16) as u16, i as u16],
            6881,
        ));
        let tok = token(&mut dht, now, v6_peer);
        announce(&mut dht, now, v6_peer, &tok, IH);
    }
    assert_eq!(dht.stats().stored_peers, 500);
    let now = t0 + Duration::from_secs(11);
    for (from, want) in [
        (v4(50), None),
        (v4(51), Some(Want { n4: true, n6: true })),
        (
            addr("[2400:cb00::99]:6881"),
            Some(Want { n4: true, n6: true }),
        ),
    ] {
        let q = encode_query(
            b"gp",
            NodeId([1; 20]),
            Method::GetPeers {
                info_hash: IH,
                want,
            },
        );
        let out = ask(&mut dht, now, from, &q);
        let t = out.iter().find(|t| t.dst == from).unwrap();
        assert!(
            t.payload.len() <= MAX_REPLY_LEN,
            "{} bytes",
            t.payload.len()
        );
        let m = krpc::decode(&t.payload).unwrap();
        let Body::Response(r) = m.body else { panic!() };
        let values = r.values.unwrap();
        assert!(!values.is_empty() && values.len() <= MAX_VALUES_PER_REPLY);
        let entry = if from.is_ipv6() { 18 } else { 6 };
        assert!(
            values.iter().all(|v| v.len() == entry),
            "BEP 32: one family per reply"
        );
        assert_eq!(m.ip, Some(from), "BEP 42 `ip` key");
        assert_eq!(r.token.map(<[u8]>::len), Some(8));
    }
}

#[test]
fn d7_announces_for_many_info_hashes_stay_bounded() {
    let t0 = epoch();
    let mut dht = node_with(
        t0,
        Config {
            reply_bytes_per_sec: u32::MAX,
            ..lan()
        },
    );
    // 6 000 distinct info-hashes (three times the limit; the store unit test has the eviction
    // order) from 400 addresses, each under the rate limit.
    for i in 0..6_000u32 {
        let now = t0 + Duration::from_millis(u64::from(i));
        let from = v4(10_000 + i % 400);
        let tok = token(&mut dht, now, from);
        let mut ih = [0u8; 20];
        ih[..4].copy_from_slice(&i.to_be_bytes());
        announce(&mut dht, now, from, &tok, InfoHash(ih));
    }
    let s = dht.stats();
    assert_eq!(s.stored_info_hashes, MAX_INFO_HASHES);
    assert!(s.stored_peers <= MAX_INFO_HASHES);
    dht.check_invariants();
}

#[test]
fn stale_and_foreign_tokens_are_refused_with_203() {
    let t0 = epoch();
    let mut dht = node(t0);
    let from = v4(20);
    let tok = token(&mut dht, t0, from);
    // Another IP cannot use it.
    let other = v4(21);
    let out = announce(&mut dht, t0, other, &tok, IH);
    assert_eq!(error_code(&replies_to(&out, other)[0]), Some(203));
    // Valid in the next rotation period, refused after two.
    let out = announce(
        &mut dht,
        t0 + TOKEN_ROTATE_INTERVAL + Duration::from_secs(1),
        from,
        &tok,
        IH,
    );
    assert!(matches!(replies_to(&out, from)[0].body, Body::Response(_)));
    let out = announce(
        &mut dht,
        t0 + 2 * TOKEN_ROTATE_INTERVAL + Duration::from_secs(1),
        from,
        &tok,
        IH,
    );
    assert_eq!(error_code(&replies_to(&out, from)[0]), Some(203));
    // Garbage tokens of every length are refused.
    for len in [0usize, 1, 7, 8, 9, 64] {
        let out = announce(&mut dht, t0, from, &vec![0xaa; len], IH);
        assert_eq!(error_code(&replies_to(&out, from)[0]), Some(203));
    }
    assert_eq!(dht.stats().bad_tokens, 8);
    assert_eq!(dht.stats().announces_stored, 1);
}

#[test]
fn implied_port_stores_the_source_port() {
    let t0 = epoch();
    let mut dht = node(t0);
    let from = addr("10.0.7.7:51413");
    let tok = token(&mut dht, t0, from);
    let q = encode_query(
        b"an",
        NodeId([1; 20]),
        Method::AnnouncePeer {
            info_hash: IH,
            port: 0,
            implied_port: true,
            token: &tok,
        },
    );
    ask(&mut dht, t0, from, &q);
    let q = encode_query(
        b"gp",
        NodeId([1; 20]),
        Method::GetPeers {
            info_hash: IH,
            want: None,
        },
    );
    let out = ask(&mut dht, t0, v4(99), &q);
    let m = &replies_to(&out, v4(99))[0];
    let Body::Response(r) = &m.body else { panic!() };
    let values = r.values.as_ref().unwrap();
    assert_eq!(compact::peer(values[0]), Some(from));
}

// ---------------------------------------------------------------------------------------------
// D8: one entry per IP, BEP 42 enforcement, read-only nodes
// ---------------------------------------------------------------------------------------------

/// Plays both sides of the verification handshake: `from` queries us with `id`, we ping it, it
/// answers with `id`.
fn query_and_answer_ping(
    dht: &mut Dht,
    now: Instant,
    from: SocketAddr,
    id: NodeId,
    read_only: bool,
) {
    let mut m = Message {
        transaction_id: b"pq",
        version: None,
        read_only,
        ip: None,
        body: Body::Query(Query {
            id,
            method: Method::Ping,
        }),
    };
    m.read_only = read_only;
    let out = ask(dht, now, from, &m.to_bytes());
    for t in out.iter().filter(|t| t.dst == from) {
        let msg = krpc::decode(&t.payload).unwrap();
        if let Body::Query(_) = msg.body {
            dht.handle_datagram(
                now,
                from,
                &encode_response(msg.transaction_id, Response::id_only(id)),
            );
        }
    }
    drain(dht);
}

#[test]
fn d8_one_table_entry_per_ip_whatever_the_ids() {
    let t0 = epoch();
    let mut dht = node(t0);
    let from = v4(30);
    for i in 0..1000u32 {
        let mut id = [0u8; 20];
        id[..4].copy_from_slice(&i.to_be_bytes());
        // Ids clustered around our own.
        id[4..].copy_from_slice(&OWN.0[4..]);
        query_and_answer_ping(
            &mut dht,
            t0 + Duration::from_millis(u64::from(i) * 300),
            from,
            NodeId(id),
            false,
        );
    }
    assert_eq!(dht.stats().routing_nodes_v4, 1);
    dht.check_invariants();
}

#[test]
fn d8_bep42_invalid_ids_stay_out_when_enforced() {
    let t0 = epoch();
    let public = addr("124.31.75.21:6881");
    let valid = NodeId::bep42(public.ip(), 1, [0x11; 20]);
    let invalid = NodeId([0x11; 20]);

    let mut enforcing = node(t0);
    query_and_answer_ping(&mut enforcing, t0, public, invalid, false);
    assert_eq!(enforcing.stats().routing_nodes_v4, 0);
    query_and_answer_ping(&mut enforcing, t0, public, valid, false);
    assert_eq!(enforcing.stats().routing_nodes_v4, 1);

    let mut lax = node_with(
        t0,
        Config {
            enforce_node_id: false,
            ..lan()
        },
    );
    query_and_answer_ping(&mut lax, t0, public, invalid, false);
    assert_eq!(lax.stats().routing_nodes_v4, 1);
}

#[test]
fn bep43_read_only_queriers_stay_out_and_read_only_nodes_stay_quiet() {
    let t0 = epoch();
    let mut dht = node(t0);
    let from = v4(31);
    query_and_answer_ping(&mut dht, t0, from, NodeId([7; 20]), true);
    assert_eq!(dht.stats().routing_nodes_v4, 0);
    assert_eq!(
        dht.stats().queries_out.ping,
        0,
        "a read-only querier is not even pinged"
    );

    let mut ro = node_with(
        t0,
        Config {
            read_only: true,
            ..lan()
        },
    );
    let ping = encode_query(b"aa", NodeId([1; 20]), Method::Ping);
    assert!(ask(&mut ro, t0, from, &ping).is_empty());
    ro.ping(t0, v4(32));
    let out = drain(&mut ro);
    assert!(krpc::decode(&out[0].payload).unwrap().read_only);
}

// ---------------------------------------------------------------------------------------------
// D10: responses that are not ours
// ---------------------------------------------------------------------------------------------

#[test]
fn d10_unknown_transactions_and_wrong_sources_are_ignored() {
    let t0 = epoch();
    let mut dht = node(t0);
    let target = v4(40);
    dht.ping(t0, target);
    let out = drain(&mut dht);
    let t = krpc::decode(&out[0].payload)
        .unwrap()
        .transaction_id
        .to_vec();
    let r = encode_response(&t, Response::id_only(NodeId([8; 20])));
    // From another IP, from another port, with an unknown tid, with a long tid.
    assert!(ask(&mut dht, t0, v4(41), &r).is_empty());
    assert!(ask(&mut dht, t0, addr("10.0.0.40:6882"), &r).is_empty());
    assert!(
        ask(
            &mut dht,
            t0,
            target,
            &encode_response(b"zzzz", Response::id_only(NodeId([8; 20])))
        )
        .is_empty()
    );
    assert!(
        ask(
            &mut dht,
            t0,
            target,
            &encode_response(b"zzzzzz", Response::id_only(NodeId([8; 20])))
        )
        .is_empty()
    );
    assert_eq!(dht.stats().dropped_unexpected, 4);
    assert_eq!(dht.stats().routing_nodes_v4, 0);
    assert_eq!(dht.stats().outstanding_queries, 1);
    // The real answer is accepted once, then its replay is unexpected.
    ask(&mut dht, t0, target, &r);
    assert_eq!(dht.stats().routing_nodes_v4, 1);
    ask(&mut dht, t0, target, &r);
    assert_eq!(dht.stats().dropped_unexpected, 5);
    assert_eq!(dht.stats().outstanding_queries, 0);
}

#[test]
fn d10_transaction_table_is_bounded_and_expires() {
    let t0 = epoch();
    let mut dht = node(t0);
    for i in 0..(MAX_OUTSTANDING_QUERIES as u32 * 2) {
        dht.ping(t0, v4(100 + i));
    }
    assert_eq!(drain(&mut dht).len(), MAX_OUTSTANDING_QUERIES);
    assert_eq!(dht.stats().outstanding_queries, MAX_OUTSTANDING_QUERIES);
    dht.check_invariants();
    dht.handle_timeout(t0 + QUERY_TIMEOUT);
    assert_eq!(dht.stats().outstanding_queries, 0);
    assert_eq!(dht.stats().query_timeouts, MAX_OUTSTANDING_QUERIES as u64);
}

// ---------------------------------------------------------------------------------------------
// BEP 32: node lists by family
// ---------------------------------------------------------------------------------------------

#[test]
fn bep32_want_selects_node_families() {
    let t0 = epoch();
    let mut dht = node(t0);
    populate(&mut dht, t0, 20);
    // Three IPv6 nodes.
    for i in 1..=3u16 {
        let a = SocketAddr::from(([0xfd00, 0, 0, 0, 0, 0, 0, i], 6881));
        dht.ping(t0, a);
        let out = drain(&mut dht);
        let t = krpc::decode(&out[0].payload)
            .unwrap()
            .transaction_id
            .to_vec();
        ask(
            &mut dht,
            t0,
            a,
            &encode_response(&t, Response::id_only(NodeId([i as u8; 20]))),
        );
    }
    assert_eq!(dht.stats().routing_nodes_v6, 3);
    let target = NodeId([0; 20]);
    let cases = [
        (v4(60), None, true, false),
        (addr("[fd00::60]:6881"), None, false, true),
        (v4(61), Some(Want { n4: true, n6: true }), true, true),
        (
            v4(62),
            Some(Want {
                n4: false,
                n6: true,
            }),
            false,
            true,
        ),
    ];
    for (from, want, n4, n6) in cases {
        let out = ask(
            &mut dht,
            t0,
            from,
            &encode_query(b"fn", NodeId([1; 20]), Method::FindNode { target, want }),
        );
        let m = &replies_to(&out, from)[0];
        let Body::Response(r) = &m.body else { panic!() };
        assert_eq!(
            r.nodes.map(|n| n.len()),
            n4.then_some(8 * compact::NODE_V4_LEN),
            "{from}"
        );
        assert_eq!(
            r.nodes6.map(|n| n.len()),
            n6.then_some(3 * compact::NODE_V6_LEN),
            "{from}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Lookups and commands
// ---------------------------------------------------------------------------------------------

#[test]
fn lookup_without_nodes_ends_at_once() {
    let t0 = epoch();
    let mut dht = node(t0);
    let l = dht.get_peers(t0, IH);
    let evs = events(&mut dht);
    assert!(
        matches!(evs.as_slice(), [Event::LookupDone { lookup, outcome: LookupOutcome::NoNodes, .. }] if *lookup == l)
    );
    assert!(drain(&mut dht).is_empty());
}

#[test]
fn too_many_lookups_are_refused_not_queued_forever() {
    let t0 = epoch();
    let mut dht = node(t0);
    populate(&mut dht, t0, 16);
    let mut overloaded = 0;
    for i in 0..(16 + seednode_dht::limits::MAX_QUEUED_LOOKUPS + 10) {
        let mut ih = [0u8; 20];
        ih[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let _ = dht.get_peers(t0, InfoHash(ih));
    }
    for e in events(&mut dht) {
        if let Event::LookupDone {
            outcome: LookupOutcome::Overloaded,
            ..
        } = e
        {
            overloaded += 1;
        }
    }
    assert_eq!(overloaded, 10);
    drain(&mut dht);
    dht.check_invariants();
    // Everything ends eventually, queued lookups included, with no answers at all.
    let mut now = t0;
    let mut done = 0;
    for _ in 0..10_000 {
        now += Duration::from_secs(5);
        dht.handle_timeout(now);
        drain(&mut dht);
        done += events(&mut dht)
            .iter()
            .filter(|e| matches!(e, Event::LookupDone { .. }))
            .count();
        if dht.stats().active_lookups == 0 && dht.stats().queued_lookups == 0 {
            break;
        }
    }
    assert_eq!(dht.stats().dropped_events, 0);
    assert_eq!(done, 16 + seednode_dht::limits::MAX_QUEUED_LOOKUPS);
}

#[test]
fn announce_reaches_nodes_that_answer_with_tokens() {
    let t0 = epoch();
    let mut dht = node(t0);
    let nodes = populate(&mut dht, t0, 12);
    let l = dht.announce(t0, IH, Some(6881));
    let mut now = t0;
    let mut announced_to = Vec::new();
    // Play every node: answer get_peers with a token and one peer, ack announce_peer.
    for _ in 0..50 {
        let out = drain(&mut dht);
        if out.is_empty() {
            break;
        }
        now += Duration::from_millis(50);
        for t in out {
            let m = krpc::decode(&t.payload).unwrap();
            let Body::Query(q) = &m.body else { continue };
            let Some((id, _)) = nodes.iter().find(|(_, a)| *a == t.dst) else {
                continue;
            };
            let mut r = Response::id_only(*id);
            let peer = [1u8, 2, 3, 4, 0x1a, 0xe1];
            match q.method {
                Method::GetPeers { .. } => {
                    r.token = Some(b"tok1");
                    r.values = Some(vec![&peer[..]]);
                }
                Method::AnnouncePeer {
                    token,
                    port,
                    implied_port,
                    ..
                } => {
                    assert_eq!((token, port, implied_port), (&b"tok1"[..], 6881, false));
                    announced_to.push(t.dst);
                }
                _ => {}
            }
            dht.handle_datagram(now, t.dst, &encode_response(m.transaction_id, r));
        }
    }
    let evs = events(&mut dht);
    assert!(
        evs.iter()
            .any(|e| matches!(e, Event::Peers { peers, .. } if peers == &[addr("1.2.3.4:6881")]))
    );
    assert!(
        evs.iter().any(
            |e| matches!(e, Event::Announced { lookup, acked: 8, sent: 8, .. } if *lookup == l)
        )
    );
    assert!(
        matches!(evs.last(), Some(Event::LookupDone { lookup, outcome: LookupOutcome::Converged, .. }) if *lookup == l)
    );
    assert_eq!(announced_to.len(), 8);
    // Peers are reported once per lookup.
    assert_eq!(
        evs.iter()
            .filter(|e| matches!(e, Event::Peers { .. }))
            .count(),
        1
    );
}

#[test]
fn export_import_and_bootstrap_round_trip() {
    let t0 = epoch();
    let mut a = node(t0);
    let nodes = populate(&mut a, t0, 30);
    let saved = a.export_nodes();
    assert_eq!(saved.len(), a.stats().routing_nodes_v4);
    assert!(saved.len() >= 16);
    assert!(saved.iter().all(|n| nodes.contains(n)));

    let mut b = node(t0);
    b.import_nodes(&saved);
    let router = addr("10.200.0.1:6881");
    let mut c = node_with(
        t0,
        Config {
            bootstrap_nodes: vec![router],
            ..lan()
        },
    );
    c.import_nodes(&saved);
    let _ = b.bootstrap(t0);
    let _ = c.bootstrap(t0);
    let to_b: Vec<_> = drain(&mut b).into_iter().map(|t| t.dst).collect();
    let to_c: Vec<_> = drain(&mut c).into_iter().map(|t| t.dst).collect();
    assert!(!to_b.is_empty() && to_b.iter().all(|d| saved.iter().any(|(_, a)| a == d)));
    // The router (unknown ID) is asked first.
    assert_eq!(to_c[0], router);
    // Imported nodes are not trusted: the table stays empty until they answer.
    assert_eq!(b.stats().routing_nodes_v4, 0);
}

#[test]
fn timers_are_always_armed_and_early_calls_are_harmless() {
    let t0 = epoch();
    let mut dht = node(t0);
    assert!(dht.poll_timeout().is_some());
    for i in 0..100 {
        dht.handle_timeout(t0 + Duration::from_millis(i));
        assert!(drain(&mut dht).is_empty());
    }
    // A day of ticks with an empty table and no bootstrap nodes sends nothing.
    let mut now = t0;
    for _ in 0..(24 * 3600 / 5) {
        now = dht.poll_timeout().unwrap().max(now);
        dht.handle_timeout(now);
        assert!(drain(&mut dht).is_empty());
    }
}

#[test]
fn ipv4_mapped_sources_are_one_ip() {
    let t0 = epoch();
    let mut dht = node(t0);
    let plain = v4(70);
    let mapped = SocketAddr::new(
        match plain.ip() {
            std::net::IpAddr::V4(ip) => std::net::IpAddr::V6(ip.to_ipv6_mapped()),
            std::net::IpAddr::V6(ip) => std::net::IpAddr::V6(ip),
        },
        plain.port(),
    );
    let q = encode_query(
        b"tk",
        NodeId([1; 20]),
        Method::GetPeers {
            info_hash: IH,
            want: None,
        },
    );
    let out = ask(&mut dht, t0, mapped, &q);
    // The reply goes to the canonical (plain IPv4) address.
    let replies = replies_to(&out, plain);
    let Body::Response(r) = &replies[0].body else {
        panic!("no response")
    };
    let tok = r.token.unwrap().to_vec();
    // The token issued to the mapped form is valid for the plain form: one IP.
    let out = announce(&mut dht, t0, plain, &tok, IH);
    assert!(matches!(replies_to(&out, plain)[0].body, Body::Response(_)));
}

#[test]
fn recovers_after_an_outage_made_every_node_bad() {
    let t0 = epoch();
    let mut dht = node(t0);
    let nodes = populate(&mut dht, t0, 16);
    // Nobody answers for a while: every node fails its queries and turns bad.
    let mut now = t0;
    for i in 0..40u64 {
        let mut ih = [0u8; 20];
        ih[0] = i as u8;
        let _ = dht.get_peers(now, InfoHash(ih));
        for _ in 0..20 {
            now += Duration::from_secs(5);
            dht.handle_timeout(now);
            drain(&mut dht);
        }
    }
    events(&mut dht);
    assert_eq!(dht.good_nodes(), 0);
    // The network is back: a lookup still tries the (bad) nodes, and their answers heal the table.
    let _ = dht.find_node(now, NodeId([0x99; 20]));
    let out = drain(&mut dht);
    assert!(
        !out.is_empty(),
        "a lookup must try bad nodes rather than give up"
    );
    for t in out {
        let m = krpc::decode(&t.payload).unwrap();
        if let Some((id, _)) = nodes.iter().find(|(_, a)| *a == t.dst) {
            dht.handle_datagram(
                now,
                t.dst,
                &encode_response(m.transaction_id, Response::id_only(*id)),
            );
        }
    }
    assert!(dht.good_nodes() > 0);
}

#[test]
fn external_address_is_reported_by_majority_vote() {
    let t0 = epoch();
    let mut dht = node(t0);
    let mine = addr("203.0.113.7:6881");
    let liar = addr("198.51.100.1:6881");
    // 14 answers, every fourth one lying: the 10th honest vote makes a majority of 16.
    for i in 0..14u32 {
        let a = v4(300 + i);
        dht.ping(t0, a);
        let out = drain(&mut dht);
        let m = krpc::decode(&out[0].payload).unwrap();
        let reply = Message {
            transaction_id: m.transaction_id,
            version: None,
            read_only: false,
            ip: Some(if i % 4 == 3 { liar } else { mine }),
            body: Body::Response(Response::id_only(NodeId([i as u8 + 1; 20]))),
        };
        dht.handle_datagram(t0, a, &reply.to_bytes());
    }
    let evs = events(&mut dht);
    let reported: Vec<_> = evs
        .iter()
        .filter_map(|e| match e {
            Event::ExternalAddress { ip, votes } => Some((*ip, *votes)),
            _ => None,
        })
        .collect();
    assert_eq!(reported, vec![(mine.ip(), 10)]);
    // Unsolicited `ip` claims (no matching transaction) count for nothing.
    for i in 0..20u32 {
        let reply = Message {
            transaction_id: b"nope",
            version: None,
            read_only: false,
            ip: Some(liar),
            body: Body::Response(Response::id_only(NodeId([0x50; 20]))),
        };
        dht.handle_datagram(t0, v4(400 + i), &reply.to_bytes());
    }
    assert!(events(&mut dht).is_empty());
}

#[test]
fn reply_size_is_a_bounded_multiple_of_query_size() {
    let t0 = epoch();
    let mut dht = node_with(
        t0,
        Config {
            reply_bytes_per_sec: u32::MAX,
            ..lan()
        },
    );
    populate(&mut dht, t0, 64);
    for i in 1..=8u16 {
        let a = SocketAddr::from(([0xfd00, 0, 0, 0, 0, 0, 1, i], 6881));
        dht.ping(t0, a);
        let out = drain(&mut dht);
        let t = krpc::decode(&out[0].payload)
            .unwrap()
            .transaction_id
            .to_vec();
        ask(
            &mut dht,
            t0,
            a,
            &encode_response(&t, Response::id_only(NodeId([i as u8; 20]))),
        );
    }
    // 60 peers and 30 info-hashes stored.
    for i in 0..60u32 {
        let from = v4(500 + i);
        let tok = token(&mut dht, t0, from);
        announce(&mut dht, t0, from, &tok, IH);
        let mut ih = [1u8; 20];
        ih[0] = (i % 30) as u8;
        announce(&mut dht, t0, from, &tok, InfoHash(ih));
    }
    let both = Some(Want { n4: true, n6: true });
    let target = NodeId([0; 20]);
    let token = [0u8; 8];
    let methods = [
        Method::Ping,
        Method::FindNode { target, want: None },
        Method::FindNode { target, want: both },
        Method::GetPeers {
            info_hash: IH,
            want: None,
        },
        Method::GetPeers {
            info_hash: IH,
            want: both,
        },
        Method::SampleInfohashes { target, want: both },
        Method::AnnouncePeer {
            info_hash: IH,
            port: 1,
            implied_port: false,
            token: &token,
        },
    ];
    let now = t0 + Duration::from_secs(11);
    for (i, method) in methods.into_iter().enumerate() {
        let from = v4(900 + i as u32);
        let q = encode_query(b"x", NodeId([1; 20]), method);
        let out = ask(&mut dht, now, from, &q);
        let reply = out.iter().find(|t| t.dst == from).unwrap();
        let factor = reply.payload.len() as f64 / q.len() as f64;
        eprintln!(
            "method {i}: query {} B, reply {} B, {factor:.1}x",
            q.len(),
            reply.payload.len()
        );
        assert!(reply.payload.len() <= MAX_REPLY_LEN);
        assert!(
            factor <= 12.0,
            "{i}: {} bytes for {} ({factor:.1}x)",
            reply.payload.len(),
            q.len()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Address rules (seednode_wire::addr): a stranger cannot make a public node query, store or hand
// out internal addresses
// ---------------------------------------------------------------------------------------------

/// Internal IPv4 addresses a stranger names in `nodes` and `values`: loopback, the three RFC 1918
/// ranges, link-local (a cloud metadata service), CGNAT shared space, benchmarking.
const INTERNAL_V4: [&str; 7] = [
    "127.0.0.1:6881",
    "10.0.0.1:6881",
    "192.168.1.1:6881",
    "172.16.0.1:6881",
    "169.254.169.254:80",
    "100.64.0.1:6881",
    "198.18.0.1:6881",
];

/// Internal IPv6 addresses: loopback, unique-local, link-local, NAT64 and 6to4 forms of 10.0.0.1.
const INTERNAL_V6: [&str; 5] = [
    "[::1]:6881",
    "[fd00::1]:6881",
    "[fe80::1]:6881",
    "[64:ff9b::a00:1]:6881",
    "[2002:a00:1::1]:6881",
];

/// A node on the public internet: the default configuration.
fn public_node(t0: Instant) -> Dht {
    node_with(t0, Config::default())
}

fn is_global(a: SocketAddr) -> bool {
    AddrScope::of(a.ip()).is_global()
}

/// A BEP 42-valid ID for `a`, distinct per `r`.
fn id_for(a: SocketAddr, r: u8) -> NodeId {
    NodeId::bep42(a.ip(), r, [r; 20])
}

/// Makes `dht` ping `a` and feeds it `id`'s answer, so that `a` enters the routing table.
fn learn(dht: &mut Dht, now: Instant, a: SocketAddr, id: NodeId) {
    dht.ping(now, a);
    for t in drain(dht) {
        let m = krpc::decode(&t.payload).unwrap();
        if t.dst == a && matches!(m.body, Body::Query(_)) {
            dht.handle_datagram(
                now,
                a,
                &encode_response(m.transaction_id, Response::id_only(id)),
            );
        }
    }
    drain(dht);
}

/// The addresses in the `nodes` and `nodes6` of the reply to a find_node from `from` that wants
/// both families, and the `values` of the reply to its get_peers for [`IH`].
fn handed_out(dht: &mut Dht, now: Instant, from: SocketAddr) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
    let both = Some(Want { n4: true, n6: true });
    let mut nodes = Vec::new();
    let mut peers = Vec::new();
    for method in [
        Method::FindNode {
            target: NodeId([0x33; 20]),
            want: both,
        },
        Method::GetPeers {
            info_hash: IH,
            want: both,
        },
    ] {
        let out = ask(
            dht,
            now,
            from,
            &encode_query(b"ho", NodeId([1; 20]), method),
        );
        let replies = replies_to(&out, from);
        let Body::Response(r) = &replies[0].body else {
            panic!("no response")
        };
        nodes.extend(r.nodes.into_iter().flat_map(compact::nodes_v4).map(|n| n.1));
        nodes.extend(
            r.nodes6
                .into_iter()
                .flat_map(compact::nodes_v6)
                .map(|n| n.1),
        );
        peers.extend(r.values.iter().flatten().filter_map(|v| compact::peer(v)));
    }
    nodes.sort_unstable();
    nodes.dedup();
    (nodes, peers)
}

/// Runs `dht` for `secs` virtual seconds from `t0`, answering each query it sends to `dst`
/// with `answer(dst, method)` (`None`: no answer, it times out); returns every destination, and
/// the peers reported in [`Event::Peers`].
fn play<'a>(
    dht: &mut Dht,
    t0: Instant,
    secs: u64,
    mut answer: impl FnMut(SocketAddr, &Method<'_>) -> Option<Response<'a>>,
) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
    let mut now = t0;
    let mut sent_to = Vec::new();
    let mut peers = Vec::new();
    for _ in 0..secs {
        for t in drain(dht) {
            sent_to.push(t.dst);
            let m = krpc::decode(&t.payload).unwrap();
            let Body::Query(q) = &m.body else { continue };
            if let Some(r) = answer(t.dst, &q.method) {
                dht.handle_datagram(now, t.dst, &encode_response(m.transaction_id, r));
            }
        }
        for e in events(dht) {
            if let Event::Peers { peers: p, .. } = e {
                peers.extend(p);
            }
        }
        now += Duration::from_secs(1);
        dht.handle_timeout(now);
    }
    (sent_to, peers)
}

#[test]
fn nodes_and_peers_naming_internal_addresses_are_never_queried_or_reported() {
    let t0 = epoch();
    let mut dht = public_node(t0);
    let g4 = addr("124.31.75.21:6881");
    let g6 = addr("[2400:cb00::1]:6881");
    learn(&mut dht, t0, g4, id_for(g4, 1));
    learn(&mut dht, t0, g6, id_for(g6, 2));
    assert_eq!(
        (dht.stats().routing_nodes_v4, dht.stats().routing_nodes_v6),
        (1, 1)
    );
    // The strangers at g4 and g6 name internal addresses with IDs right next to the target, and
    // one global node each, and give internal peers (and one global one) as `values`.
    let honest4 = addr("124.31.75.22:6881");
    let honest6 = addr("[2400:cb00::2]:6881");
    let mut nodes = Vec::new();
    let mut nodes6 = Vec::new();
    for (i, a) in INTERNAL_V4.iter().enumerate() {
        let mut id = IH.0;
        id[19] ^= 1 + i as u8;
        compact::put_node(&mut nodes, &NodeId(id), addr(a));
    }
    for (i, a) in INTERNAL_V6.iter().enumerate() {
        let mut id = IH.0;
        id[19] ^= 0x40 + i as u8;
        compact::put_node(&mut nodes6, &NodeId(id), addr(a));
    }
    compact::put_node(&mut nodes, &id_for(honest4, 3), honest4);
    compact::put_node(&mut nodes6, &id_for(honest6, 4), honest6);
    let mut values = Vec::new();
    for a in INTERNAL_V4.iter().chain(&["1.2.3.4:6881"]) {
        compact::put_peer(&mut values, addr(a));
    }
    let mut values6 = Vec::new();
    for a in INTERNAL_V6.iter().chain(&["[2400::1234]:6881"]) {
        compact::put_peer(&mut values6, addr(a));
    }

    let _ = dht.get_peers(t0, IH);
    // Ten minutes: the lookup, its end (verification pings of nodes never queried), and the
    // maintenance ticks (exploration, pings).
    let (sent_to, peers) = play(&mut dht, t0, 600, |a, method| {
        let r = [(g4, 1), (g6, 2), (honest4, 3), (honest6, 4)]
            .into_iter()
            .find(|(x, _)| *x == a)?
            .1;
        let mut resp = Response::id_only(id_for(a, r));
        if a == g4 || a == g6 {
            resp.nodes = Some(&nodes);
            resp.nodes6 = Some(&nodes6);
            if matches!(method, Method::GetPeers { .. }) {
                resp.token = Some(b"tok");
                resp.values = Some(if a == g4 {
                    values.chunks(6).collect()
                } else {
                    values6.chunks(18).collect()
                });
            }
        }
        Some(resp)
    });
    assert!(sent_to.contains(&honest4) && sent_to.contains(&honest6));
    let mut internal: Vec<_> = sent_to.iter().filter(|a| !is_global(**a)).collect();
    internal.sort_unstable();
    internal.dedup();
    assert!(
        internal.is_empty(),
        "queried internal addresses: {internal:?}"
    );
    assert_eq!(
        peers,
        [addr("1.2.3.4:6881"), addr("[2400::1234]:6881")],
        "internal peers reported"
    );
    assert!(dht.export_nodes().iter().all(|(_, a)| is_global(*a)));
    dht.check_invariants();
}

#[test]
fn internal_queriers_stay_out_of_the_table_and_are_not_handed_out() {
    let t0 = epoch();
    let mut dht = public_node(t0);
    let g4 = addr("124.31.75.21:6881");
    learn(&mut dht, t0, g4, id_for(g4, 1));
    // Local processes (or spoofed sources) query a public node: answered, never verified.
    for (i, a) in INTERNAL_V4.iter().chain(&INTERNAL_V6).enumerate() {
        let from = addr(a);
        query_and_answer_ping(&mut dht, t0, from, NodeId([0x60 + i as u8; 20]), false);
        // ... and announce themselves (with a token they got).
        let tok = token(&mut dht, t0, from);
        let out = announce(&mut dht, t0, from, &tok, IH);
        assert_eq!(replies_to(&out, from).len(), 1, "{from} gets an answer");
    }
    assert_eq!(dht.stats().queries_out.ping, 1, "only g4 was pinged");
    assert_eq!(dht.stats().routing_nodes_v4, 1);
    assert_eq!(dht.stats().routing_nodes_v6, 0);
    assert!(!dht.stores(&IH), "no internal peer stored");
    assert!(
        !events(&mut dht)
            .iter()
            .any(|e| matches!(e, Event::PeerAnnounced { .. }))
    );
    // A public querier gets only the public node, and no peers.
    for querier in [addr("1.2.3.4:6881"), addr("[2400::99]:6881")] {
        let (nodes, peers) = handed_out(&mut dht, t0, querier);
        assert_eq!(nodes, [g4], "{querier}");
        assert!(peers.is_empty(), "{querier}: {peers:?}");
    }
}

#[test]
fn a_node_on_loopback_still_uses_loopback_nodes_and_peers() {
    let t0 = epoch();
    let mut dht = node_with(
        t0,
        Config {
            local_scope: AddrScope::Loopback,
            ..Config::default()
        },
    );
    let l1 = addr("127.0.0.2:6881");
    learn(&mut dht, t0, l1, NodeId([0x50; 20]));
    // A loopback querier is verified, enters the table, and its announce is stored.
    let l2 = addr("127.0.0.3:6881");
    query_and_answer_ping(&mut dht, t0, l2, NodeId([0x51; 20]), false);
    assert_eq!(dht.stats().routing_nodes_v4, 2);
    let tok = token(&mut dht, t0, l2);
    announce(&mut dht, t0, l2, &tok, IH);
    assert!(dht.stores(&IH));
    // Handed out to loopback queriers only.
    let (nodes, peers) = handed_out(&mut dht, t0, addr("127.0.0.9:6881"));
    assert_eq!((nodes, peers), (vec![l1, l2], vec![addr("127.0.0.3:7000")]));
    let (nodes, peers) = handed_out(&mut dht, t0, addr("1.2.3.4:6881"));
    assert!(nodes.is_empty() && peers.is_empty(), "{nodes:?} {peers:?}");
    // A lookup: the loopback nodes name another loopback node (queried), a private one (not
    // our kind of network) and a global one (queried).
    let l3 = addr("127.0.0.4:6881");
    let private = addr("10.0.0.1:6881");
    let global = addr("124.31.75.22:6881");
    let mut named = Vec::new();
    compact::put_node(&mut named, &NodeId([0x52; 20]), l3);
    compact::put_node(&mut named, &NodeId([0x53; 20]), private);
    compact::put_node(&mut named, &id_for(global, 5), global);
    let _ = dht.find_node(t0, NodeId([0x52; 20]));
    let (sent_to, _) = play(&mut dht, t0, 30, |a, _| {
        let mut r = Response::id_only(match a {
            a if a == l1 => NodeId([0x50; 20]),
            a if a == l2 => NodeId([0x51; 20]),
            _ => return None,
        });
        r.nodes = Some(&named);
        Some(r)
    });
    assert!(sent_to.contains(&l3) && sent_to.contains(&global));
    assert!(!sent_to.contains(&private));
}

#[test]
fn a_node_on_a_private_network_takes_private_nodes_only_from_inside_it() {
    let t0 = epoch();
    let mut dht = node(t0);
    let inside = addr("10.0.0.2:6881");
    let outside = addr("124.31.75.21:6881");
    learn(&mut dht, t0, inside, NodeId([0x50; 20]));
    learn(&mut dht, t0, outside, id_for(outside, 1));
    // Each names a private node: the public node's 10.66.0.1 is not on our network.
    let named_inside = addr("192.168.5.5:6881");
    let named_outside = addr("10.66.0.1:6881");
    let mut from_inside = Vec::new();
    compact::put_node(&mut from_inside, &NodeId([0x54; 20]), named_inside);
    let mut from_outside = Vec::new();
    compact::put_node(&mut from_outside, &NodeId([0x55; 20]), named_outside);
    let _ = dht.find_node(t0, NodeId([0x54; 20]));
    let (sent_to, _) = play(&mut dht, t0, 30, |a, _| {
        let (id, named) = match a {
            a if a == inside => (NodeId([0x50; 20]), &from_inside),
            a if a == outside => (id_for(outside, 1), &from_outside),
            _ => return None,
        };
        let mut r = Response::id_only(id);
        r.nodes = Some(named);
        Some(r)
    });
    assert!(sent_to.contains(&named_inside));
    assert!(!sent_to.contains(&named_outside));
    // A public querier gets the public node only; one on the private network both.
    assert_eq!(handed_out(&mut dht, t0, addr("1.2.3.4:6881")).0, [outside]);
    assert_eq!(
        handed_out(&mut dht, t0, addr("10.9.9.9:6881")).0,
        [inside, outside]
    );
}
