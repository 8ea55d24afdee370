//! Spec vectors: every bencoded KRPC example of BEP 5, byte-exact both ways; the BEP 42 node-ID
//! table; the message shapes of BEP 32, 43 and 51; round trips (proptest) and a short-input
//! sweep.

use std::net::{IpAddr, SocketAddr};

use proptest::prelude::*;
use seednode_dht::NodeId;
use seednode_dht::id::crc32c;
use seednode_dht::krpc::{
    self, Body, ErrorBody, KrpcError, Message, Method, Query, Response, Want, compact,
};
use seednode_wire::InfoHash;

const ABC: NodeId = NodeId(*b"abcdefghij0123456789");
const MNO: [u8; 20] = *b"mnopqrstuvwxyz123456";

fn query(t: &[u8], id: NodeId, method: Method<'static>) -> Message<'static> {
    // Safety of 'static: every vector below uses literals.
    let t: &'static [u8] = Box::leak(t.to_vec().into_boxed_slice());
    Message {
        transaction_id: t,
        version: None,
        read_only: false,
        ip: None,
        body: Body::Query(Query { id, method }),
    }
}

fn response(r: Response<'static>) -> Message<'static> {
    Message {
        transaction_id: b"aa",
        version: None,
        read_only: false,
        ip: None,
        body: Body::Response(r),
    }
}

/// Decodes `bytes` to `expected` and encodes `expected` back to exactly `bytes`.
fn both_ways(bytes: &[u8], expected: &Message<'_>) {
    let decoded = krpc::decode(bytes).unwrap_or_else(|e| panic!("decode: {e:?}"));
    assert_eq!(&decoded, expected);
    assert_eq!(
        String::from_utf8_lossy(&expected.to_bytes()),
        String::from_utf8_lossy(bytes),
        "encoding differs"
    );
}

#[test]
fn bep5_error_vector() {
    let bytes = b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee";
    let expected = Message {
        transaction_id: b"aa",
        version: None,
        read_only: false,
        ip: None,
        body: Body::Error(ErrorBody {
            code: 201,
            message: b"A Generic Error Ocurred",
        }),
    };
    both_ways(bytes, &expected);
}

#[test]
fn bep5_ping_query_vector() {
    let bytes = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
    both_ways(bytes, &query(b"aa", ABC, Method::Ping));
}

#[test]
fn bep5_ping_response_vector() {
    let bytes = b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re";
    both_ways(bytes, &response(Response::id_only(NodeId(MNO))));
}

#[test]
fn bep5_find_node_query_vector() {
    let bytes =
        b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe";
    both_ways(
        bytes,
        &query(
            b"aa",
            ABC,
            Method::FindNode {
                target: NodeId(MNO),
                want: None,
            },
        ),
    );
}

#[test]
fn bep5_find_node_response_vector() {
    let bytes = b"d1:rd2:id20:0123456789abcdefghij5:nodes9:def456...e1:t2:aa1:y1:re";
    let mut r = Response::id_only(NodeId(*b"0123456789abcdefghij"));
    r.nodes = Some(b"def456...");
    both_ways(bytes, &response(r));
    // The example's 9-byte `nodes` holds no whole 26-byte node.
    assert_eq!(compact::nodes_v4(b"def456...").count(), 0);
}

#[test]
fn bep5_get_peers_query_vector() {
    let bytes = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe";
    let method = Method::GetPeers {
        info_hash: InfoHash(MNO),
        want: None,
    };
    both_ways(bytes, &query(b"aa", ABC, method));
}

#[test]
fn bep5_get_peers_response_with_peers_vector() {
    let bytes =
        b"d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re";
    let mut r = Response::id_only(ABC);
    r.token = Some(b"aoeusnth");
    r.values = Some(vec![b"axje.u", b"idhtnm"]);
    both_ways(bytes, &response(r));
    let peers: Vec<SocketAddr> = [&b"axje.u"[..], b"idhtnm"]
        .iter()
        .filter_map(|v| compact::peer(v))
        .collect();
    assert_eq!(peers.len(), 2);
}

#[test]
fn bep5_get_peers_response_with_nodes_vector() {
    let bytes =
        b"d1:rd2:id20:abcdefghij01234567895:nodes9:def456...5:token8:aoeusnthe1:t2:aa1:y1:re";
    let mut r = Response::id_only(ABC);
    r.nodes = Some(b"def456...");
    r.token = Some(b"aoeusnth");
    both_ways(bytes, &response(r));
}

#[test]
fn bep5_announce_peer_query_vector() {
    // The bencoded example of BEP 5 (its JSON form also shows `implied_port`, its bencoding
    // does not).
    let bytes = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe";
    let method = Method::AnnouncePeer {
        info_hash: InfoHash(MNO),
        port: 6881,
        implied_port: false,
        token: b"aoeusnth",
    };
    both_ways(bytes, &query(b"aa", ABC, method));
}

#[test]
fn bep5_announce_peer_implied_port() {
    let bytes = b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe";
    let method = Method::AnnouncePeer {
        info_hash: InfoHash(MNO),
        port: 6881,
        implied_port: true,
        token: b"aoeusnth",
    };
    both_ways(bytes, &query(b"aa", ABC, method));
    // With implied_port the port may be missing or out of range.
    let no_port = b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234565:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe";
    let msg = krpc::decode(no_port).unwrap();
    assert!(matches!(
        msg.body,
        Body::Query(Query {
            method: Method::AnnouncePeer {
                port: 0,
                implied_port: true,
                ..
            },
            ..
        })
    ));
}

#[test]
fn bep5_announce_peer_response_vector() {
    let bytes = b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re";
    both_ways(bytes, &response(Response::id_only(NodeId(MNO))));
}

#[test]
fn bep5_announce_peer_port_out_of_range_is_203() {
    for port in ["i0e", "i65536e", "i-1e"] {
        let bytes = format!(
            "d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:port{port}5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe"
        );
        let bad = krpc::decode(bytes.as_bytes()).unwrap_err();
        assert!(
            matches!(bad.error, KrpcError::PortOutOfRange { .. }),
            "{port}"
        );
        assert_eq!(bad.reply(), Some((203, &b"aa"[..])));
    }
}

#[test]
fn bep32_want_and_nodes6() {
    let bytes = b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz1234564:wantl2:n42:n6ee1:q9:find_node1:t2:aa1:y1:qe";
    let want = Some(Want { n4: true, n6: true });
    both_ways(
        bytes,
        &query(
            b"aa",
            ABC,
            Method::FindNode {
                target: NodeId(MNO),
                want,
            },
        ),
    );
    // Unknown `want` strings are ignored; a non-list `want` is ignored like libtorrent does.
    let odd = b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz1234564:wantl2:n52:n6ee1:q9:find_node1:t2:aa1:y1:qe";
    let msg = krpc::decode(odd).unwrap();
    assert!(matches!(
        msg.body,
        Body::Query(Query {
            method: Method::FindNode {
                want: Some(Want {
                    n4: false,
                    n6: true
                }),
                ..
            },
            ..
        })
    ));
    let not_list = b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz1234564:wanti1ee1:q9:find_node1:t2:aa1:y1:qe";
    let msg = krpc::decode(not_list).unwrap();
    assert!(matches!(
        msg.body,
        Body::Query(Query {
            method: Method::FindNode { want: None, .. },
            ..
        })
    ));

    let mut nodes6 = Vec::new();
    let v6: SocketAddr = "[2001:db8::1]:6881".parse().unwrap();
    compact::put_node(&mut nodes6, &ABC, v6);
    assert_eq!(nodes6.len(), compact::NODE_V6_LEN);
    assert_eq!(
        compact::nodes_v6(&nodes6).collect::<Vec<_>>(),
        vec![(ABC, v6)]
    );
}

#[test]
fn bep42_ip_key_round_trips() {
    let ip: SocketAddr = "124.31.75.21:6881".parse().unwrap();
    let mut m = response(Response::id_only(ABC));
    m.ip = Some(ip);
    let bytes = m.to_bytes();
    assert!(bytes.starts_with(b"d2:ip6:"));
    assert_eq!(krpc::decode(&bytes).unwrap(), m);
}

#[test]
fn bep43_read_only_flag() {
    let bytes = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping2:roi1e1:t2:aa1:y1:qe";
    let mut m = query(b"aa", ABC, Method::Ping);
    m.read_only = true;
    both_ways(bytes, &m);
}

#[test]
fn bep51_sample_infohashes_shapes() {
    let q = b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q17:sample_infohashes1:t2:aa1:y1:qe";
    both_ways(
        q,
        &query(
            b"aa",
            ABC,
            Method::SampleInfohashes {
                target: NodeId(MNO),
                want: None,
            },
        ),
    );
    let r = b"d1:rd2:id20:abcdefghij01234567898:intervali21600e5:nodes0:3:numi2e7:samples40:mnopqrstuvwxyz123456abcdefghij0123456789e1:t2:aa1:y1:re";
    let mut resp = Response::id_only(ABC);
    resp.interval = Some(21_600);
    resp.nodes = Some(b"");
    resp.num = Some(2);
    resp.samples = Some(b"mnopqrstuvwxyz123456abcdefghij0123456789");
    both_ways(r, &response(resp));
}

#[test]
fn version_key_and_lenient_dictionaries() {
    // `v` is kept; unsorted keys and unknown keys are accepted like libtorrent does.
    let unsorted =
        b"d1:t2:aa1:y1:q1:q4:ping1:v4:LT\x01\x021:ad2:id20:abcdefghij01234567893:zzzi1eee";
    let msg = krpc::decode(unsorted).unwrap();
    assert_eq!(msg.version, Some(&b"LT\x01\x02"[..]));
    assert!(matches!(
        msg.body,
        Body::Query(Query {
            method: Method::Ping,
            ..
        })
    ));
    // Duplicate keys: the first wins.
    let dup = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:q9:find_node1:t2:aa1:y1:qe";
    assert!(matches!(
        krpc::decode(dup).unwrap().body,
        Body::Query(Query {
            method: Method::Ping,
            ..
        })
    ));
}

#[test]
fn malformed_queries_map_to_error_codes() {
    let cases: &[(&[u8], Option<i64>)] = &[
        // 19-byte id: 203.
        (
            b"d1:ad2:id19:abcdefghij012345678e1:q4:ping1:t2:aa1:y1:qe",
            Some(203),
        ),
        // id of the wrong type: 203.
        (b"d1:ad2:idi5ee1:q4:ping1:t2:aa1:y1:qe", Some(203)),
        // Missing `a`: 203.
        (b"d1:q4:ping1:t2:aa1:y1:qe", Some(203)),
        // Unknown method: 204 (whatever the arguments).
        (b"d1:ade1:q4:pong1:t2:aa1:y1:qe", Some(204)),
        // Unknown `y`: silence.
        (
            b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:xe",
            None,
        ),
        // Missing `t`: silence.
        (b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:y1:qe", None),
        // Empty `t`: silence.
        (
            b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t0:1:y1:qe",
            None,
        ),
        // A malformed response is never answered.
        (b"d1:rd2:id3:abce1:t2:aa1:y1:re", None),
        // Not a dictionary.
        (b"li1ei2ee", None),
    ];
    for (bytes, code) in cases {
        let bad = krpc::decode(bytes).unwrap_err();
        assert_eq!(
            bad.reply().map(|(c, _)| c),
            *code,
            "{}",
            String::from_utf8_lossy(bytes)
        );
    }
    // A 17-byte `t` is never echoed.
    let long_t = b"d1:ad2:id19:abcdefghij012345678e1:q4:ping1:t17:aaaaaaaaaaaaaaaaa1:y1:qe";
    let bad = krpc::decode(long_t).unwrap_err();
    assert_eq!(bad.reply(), None);
    assert!(matches!(
        bad.error,
        KrpcError::BadTransactionIdLength { len: 17, .. }
    ));
}

/// The BEP 42 test vectors: IP, rand, and the node ID whose bold parts (the first 21 bits and the
/// last byte) are fixed by them.
const BEP42_VECTORS: &[(&str, u8, &str)] = &[
    (
        "124.31.75.21",
        1,
        "5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401",
    ),
    (
        "21.75.31.124",
        86,
        "5a3ce9c14e7a08645677bbd1cfe7d8f956d53256",
    ),
    (
        "65.23.51.170",
        22,
        "a5d43220bc8f112a3d426c84764f8c2a1150e616",
    ),
    (
        "84.124.73.14",
        65,
        "1b0321dd1bb1fe518101ceef99462b947a01ff41",
    ),
    (
        "43.213.53.83",
        90,
        "e56f6cbf5b7c4be0237986d5243b87aa6d5130 5a",
    ),
];

fn hex20(s: &str) -> [u8; 20] {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let mut out = [0u8; 20];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

#[test]
fn bep42_test_vectors() {
    for &(ip, rand, id_hex) in BEP42_VECTORS {
        let ip: IpAddr = ip.parse().unwrap();
        let example = NodeId(hex20(id_hex));
        // The example IDs are valid for their IPs, and not for another.
        assert!(example.is_valid_for(ip), "{ip}");
        assert!(!example.is_valid_for("1.2.3.4".parse().unwrap()), "{ip}");
        // Our derivation fixes the same bits, whatever the random filler.
        for filler in [[0u8; 20], [0xff; 20], example.0] {
            let ours = NodeId::bep42(ip, rand, filler);
            assert_eq!(ours.0[..2], example.0[..2], "{ip}");
            assert_eq!(ours.0[2] & 0xf8, example.0[2] & 0xf8, "{ip}");
            assert_eq!(ours.0[19], rand, "{ip}");
            assert!(ours.is_valid_for(ip), "{ip}");
        }
    }
    // Only one of the 21 bits flipped: invalid.
    let ip: IpAddr = "124.31.75.21".parse().unwrap();
    let mut id = hex20(BEP42_VECTORS[0].2);
    id[2] ^= 0x08;
    assert!(!NodeId(id).is_valid_for(ip));
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
}

#[test]
fn bep42_ipv6_derivation_is_self_consistent() {
    let ip: IpAddr = "2001:db8:1234:5678::1".parse().unwrap();
    for rand in 0..=255u8 {
        let id = NodeId::bep42(ip, rand, [rand; 20]);
        assert!(id.is_valid_for(ip));
    }
}

const VECTORS: &[&[u8]] = &[
    b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee",
    b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe",
    b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re",
    b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe",
    b"d1:rd2:id20:0123456789abcdefghij5:nodes9:def456...e1:t2:aa1:y1:re",
    b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe",
    b"d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re",
    b"d1:rd2:id20:abcdefghij01234567895:nodes9:def456...5:token8:aoeusnthe1:t2:aa1:y1:re",
    b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe",
];

#[test]
fn short_input_sweep_never_panics() {
    for v in VECTORS {
        assert!(krpc::decode(v).is_ok());
        for n in 0..v.len() {
            assert!(krpc::decode(&v[..n]).is_err());
            seednode_dht::fuzzing::krpc(&v[..n]);
        }
        seednode_dht::fuzzing::krpc(v);
    }
}

// ---------------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Owned {
    t: Vec<u8>,
    v: Option<Vec<u8>>,
    ro: bool,
    ip: Option<SocketAddr>,
    kind: u8,
    id: [u8; 20],
    target: [u8; 20],
    want: Option<(bool, bool)>,
    port: u16,
    implied: bool,
    token: Vec<u8>,
    blobs: [Option<Vec<u8>>; 4],
    values: Option<Vec<Vec<u8>>>,
    ints: [Option<i64>; 3],
    message: Vec<u8>,
}

fn owned() -> impl Strategy<Value = Owned> {
    let bytes = |n| prop::collection::vec(any::<u8>(), 0..n);
    let addr = prop_oneof![
        any::<([u8; 4], u16)>().prop_map(|(ip, p)| SocketAddr::from((ip, p))),
        any::<([u8; 16], u16)>().prop_map(|(ip, p)| SocketAddr::from((ip, p))),
    ];
    (
        (
            prop::collection::vec(any::<u8>(), 1..=16),
            prop::option::of(bytes(8)),
            any::<bool>(),
            prop::option::of(addr),
        ),
        (
            0u8..8,
            any::<[u8; 20]>(),
            any::<[u8; 20]>(),
            prop::option::of(any::<(bool, bool)>()),
        ),
        (1u16.., any::<bool>(), bytes(40)),
        (
            [
                prop::option::of(bytes(60)),
                prop::option::of(bytes(60)),
                prop::option::of(bytes(20)),
                prop::option::of(bytes(60)),
            ],
            prop::option::of(prop::collection::vec(
                prop_oneof![
                    any::<[u8; 6]>().prop_map(|b| b.to_vec()),
                    any::<[u8; 18]>().prop_map(|b| b.to_vec()),
                ],
                0..10,
            )),
            [
                any::<Option<i64>>(),
                any::<Option<i64>>(),
                any::<Option<i64>>(),
            ],
            bytes(30),
        ),
    )
        .prop_map(
            |(
                (t, v, ro, ip),
                (kind, id, target, want),
                (port, implied, token),
                (blobs, values, ints, message),
            )| Owned {
                t,
                v,
                ro,
                ip,
                kind,
                id,
                target,
                want,
                port,
                implied,
                token,
                blobs,
                values,
                ints,
                message,
            },
        )
}

fn build(o: &Owned) -> Message<'_> {
    let want = o.want.map(|(n4, n6)| Want { n4, n6 });
    let body = match o.kind {
        0 => Body::Query(Query {
            id: NodeId(o.id),
            method: Method::Ping,
        }),
        1 => Body::Query(Query {
            id: NodeId(o.id),
            method: Method::FindNode {
                target: NodeId(o.target),
                want,
            },
        }),
        2 => Body::Query(Query {
            id: NodeId(o.id),
            method: Method::GetPeers {
                info_hash: InfoHash(o.target),
                want,
            },
        }),
        3 => Body::Query(Query {
            id: NodeId(o.id),
            method: Method::AnnouncePeer {
                info_hash: InfoHash(o.target),
                port: o.port,
                implied_port: o.implied,
                token: &o.token,
            },
        }),
        4 => Body::Query(Query {
            id: NodeId(o.id),
            method: Method::SampleInfohashes {
                target: NodeId(o.target),
                want,
            },
        }),
        5 | 6 => Body::Response(Response {
            id: NodeId(o.id),
            nodes: o.blobs[0].as_deref(),
            nodes6: o.blobs[1].as_deref(),
            token: o.blobs[2].as_deref(),
            values: o
                .values
                .as_ref()
                .map(|v| v.iter().map(Vec::as_slice).collect()),
            samples: o.blobs[3].as_deref(),
            interval: o.ints[0],
            num: o.ints[1],
        }),
        _ => Body::Error(ErrorBody {
            code: o.ints[2].unwrap_or(203),
            message: &o.message,
        }),
    };
    Message {
        transaction_id: &o.t,
        version: o.v.as_deref(),
        read_only: o.ro,
        ip: o.ip,
        body,
    }
}

proptest! {
    #[test]
    fn decode_encode_round_trip(o in owned()) {
        let msg = build(&o);
        let bytes = msg.to_bytes();
        let back = krpc::decode(&bytes).expect("our encoding decodes");
        prop_assert_eq!(&back, &msg);
        // Canonical: re-encoding the decoded message gives the same bytes.
        prop_assert_eq!(back.to_bytes(), bytes);
    }

    #[test]
    fn decode_never_panics(data in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = krpc::decode(&data);
    }
}
