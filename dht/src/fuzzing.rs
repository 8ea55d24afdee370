//! Bodies of the cargo-fuzz targets, shared with `tests/fuzz_corpus.rs` so that stable
//! `cargo test` replays the seed corpus, and a workload for a throughput benchmark. Not a stable
//! API: [`krpc`] panics when an invariant breaks, which is what a fuzzer looks for.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use seednode_wire::InfoHash;
use seednode_wire::addr::AddrScope;

use crate::krpc::{self, Body, Message, Method, Query, Response};
use crate::limits::MAX_REPLY_LEN;
use crate::{Config, Dht, IdSource, NodeId};

/// Placeholder replaced in fuzz inputs by the transaction id of the query the fuzzed node has
/// outstanding to [`PINGED`], so seeds can hold responses that match it.
pub const TID_PLACEHOLDER: &[u8; 4] = b"$TID";

/// The node the fuzzed node has pinged; inputs holding [`TID_PLACEHOLDER`] come from it.
pub const PINGED: &str = "10.0.0.99:6881";

/// The fixed ID of the fuzzed node.
pub const FUZZ_NODE_ID: NodeId = NodeId([0x42; 20]);

/// The info-hash stored in the fuzzed node's peer store.
pub const STORED_INFO_HASH: InfoHash = InfoHash(*b"mnopqrstuvwxyz123456");

const QUERIER_V4: &str = "10.1.2.3:6881";
const QUERIER_V6: &str = "[fd00::3]:6881";

/// A node in a reproducible state, on a private network (its nodes and queriers are at 10.x
/// and `fd00::`, [`Config::local_scope`] is [`AddrScope::Private`]): 16 IPv4 and 4 IPv6 nodes in its tables, one peer stored for
/// [`STORED_INFO_HASH`], a ping outstanding to [`PINGED`]. Returns the node, its clock and that
/// ping's transaction id.
///
/// # Panics
/// If the node does not behave as documented (a bug).
#[must_use]
pub fn prepared_node() -> (Dht, Instant, [u8; 4]) {
    prepared_node_with(Config {
        enforce_node_id: false,
        local_scope: AddrScope::Private,
        ..Config::default()
    })
}

fn prepared_node_with(config: Config) -> (Dht, Instant, [u8; 4]) {
    #[allow(clippy::disallowed_methods)] // the harness's only clock read: its epoch
    let now = Instant::now();
    let mut dht = Dht::new(config, IdSource::Fixed(FUZZ_NODE_ID), [9; 32], 1, now);
    let addrs = (0..16u8)
        .map(|i| SocketAddr::from(([10, 0, 1, i + 1], 6881)))
        .chain((0..4u16).map(|i| SocketAddr::from(([0xfd00, 0, 0, 0, 0, 0, 1, i + 1], 6881))));
    for (i, addr) in addrs.enumerate() {
        dht.ping(now, addr);
        let t = dht.poll_transmit().expect("ping sent");
        let tid = transaction_id(&t.payload);
        let mut id = [0u8; 20];
        id[0] = (i as u8).wrapping_mul(37);
        id[19] = i as u8;
        let reply = Message {
            transaction_id: &tid,
            version: None,
            read_only: false,
            ip: None,
            body: Body::Response(Response::id_only(NodeId(id))),
        };
        dht.handle_datagram(now, addr, &reply.to_bytes());
        while dht.poll_transmit().is_some() {}
    }
    // Store one peer through the protocol itself.
    let querier: SocketAddr = "10.2.0.1:7000".parse().expect("literal");
    let get_peers = query(
        b"gp",
        Method::GetPeers {
            info_hash: STORED_INFO_HASH,
            want: None,
        },
    );
    dht.handle_datagram(now, querier, &get_peers);
    let reply = dht.poll_transmit().expect("get_peers answered");
    let token = {
        let msg = krpc::decode(&reply.payload).expect("own reply decodes");
        let Body::Response(r) = msg.body else {
            panic!("not a response")
        };
        r.token.expect("token").to_vec()
    };
    let announce = query(
        b"an",
        Method::AnnouncePeer {
            info_hash: STORED_INFO_HASH,
            port: 6881,
            implied_port: false,
            token: &token,
        },
    );
    dht.handle_datagram(now, querier, &announce);
    while dht.poll_transmit().is_some() {}
    assert_eq!(dht.stats().stored_peers, 1);

    let pinged: SocketAddr = PINGED.parse().expect("literal");
    dht.ping(now, pinged);
    let t = dht.poll_transmit().expect("ping sent");
    let tid = transaction_id(&t.payload);
    while dht.poll_event().is_some() {}
    (dht, now, tid)
}

fn query(t: &[u8], method: Method<'_>) -> Vec<u8> {
    Message {
        transaction_id: t,
        version: None,
        read_only: false,
        ip: None,
        body: Body::Query(Query {
            id: NodeId([0x11; 20]),
            method,
        }),
    }
    .to_bytes()
}

fn transaction_id(payload: &[u8]) -> [u8; 4] {
    let msg = krpc::decode(payload).expect("own query decodes");
    msg.transaction_id
        .try_into()
        .expect("4-byte transaction id")
}

/// Target `dht_krpc`: decodes `data` as KRPC and feeds it to a [`prepared_node`].
///
/// The source is [`PINGED`] when `data` holds [`TID_PLACEHOLDER`] (replaced by the real
/// transaction id), otherwise a querier whose address family is the parity of the byte sum.
/// Invariants: nothing panics; a message that decodes re-encodes to a message that decodes to
/// the same value; every datagram the node sends decodes, and a reply to the sender is at most
/// [`MAX_REPLY_LEN`] bytes; one datagram causes at most a reply and a verification ping to its
/// sender and a few maintenance queries elsewhere; the node's tables stay within their limits.
///
/// # Panics
/// When an invariant is broken.
pub fn krpc(data: &[u8]) {
    if let Ok(msg) = krpc::decode(data) {
        let bytes = msg.to_bytes();
        let again = krpc::decode(&bytes).expect("re-encoded message decodes");
        assert_eq!(again, msg, "round trip changed the message");
    }

    // Built once, cloned per input: the fuzzer spends its time on the input, not the setup.
    static PROTOTYPE: OnceLock<(Dht, Instant, [u8; 4])> = OnceLock::new();
    let (prototype, now, tid) = PROTOTYPE.get_or_init(prepared_node);
    let (mut dht, now, tid) = (prototype.clone(), *now, *tid);
    let mut input = data.to_vec();
    let from: SocketAddr = if let Some(pos) = find(&input, TID_PLACEHOLDER) {
        // Replace every occurrence, so seeds may use it more than once.
        let mut p = Some(pos);
        while let Some(i) = p {
            input[i..i + 4].copy_from_slice(&tid);
            p = find(&input, TID_PLACEHOLDER);
        }
        PINGED.parse().expect("literal")
    } else if data.iter().fold(0u8, |a, b| a.wrapping_add(*b)) & 1 == 1 {
        QUERIER_V6.parse().expect("literal")
    } else {
        QUERIER_V4.parse().expect("literal")
    };
    dht.handle_datagram(now, from, &input);
    let mut to_sender = 0;
    let mut total = 0;
    while let Some(t) = dht.poll_transmit() {
        total += 1;
        let msg = krpc::decode(&t.payload).expect("every datagram we send decodes");
        if t.dst == from {
            to_sender += 1;
            if !matches!(msg.body, Body::Query(_)) {
                assert!(
                    t.payload.len() <= MAX_REPLY_LEN,
                    "reply of {} bytes",
                    t.payload.len()
                );
            }
        }
    }
    assert!(to_sender <= 2, "{to_sender} datagrams to the sender");
    assert!(total <= 4, "{total} datagrams for one input");
    while dht.poll_event().is_some() {}
    dht.handle_timeout(now + Duration::from_secs(11));
    while dht.poll_transmit().is_some() {}
    while dht.poll_event().is_some() {}
    dht.check_invariants();
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A benchmark workload for "queries handled per second": a [`prepared_node`] with the highest
/// reply budget ([`crate::limits::MAX_REPLY_BYTES_PER_SEC`], one second's burst available), and
/// `n` well-formed queries (ping, find_node, get_peers, announce_peer with a bad
/// token, sample_infohashes in turn) from `n` distinct sources so the rate limiter does not
/// interfere (distinct up to `n` = 65 536; keep `n` ≤ 2 000 per clone of the node so the reply
/// budget does not run out). Feed them with [`Dht::handle_datagram`] and drain
/// [`Dht::poll_transmit`]: every query gets exactly one reply.
///
/// # Panics
/// If the node does not behave as documented (a bug).
#[must_use]
pub fn queries_per_second_workload(n: usize) -> (Dht, Instant, Vec<(SocketAddr, Vec<u8>)>) {
    let config = Config {
        enforce_node_id: false,
        reply_bytes_per_sec: u32::MAX,
        local_scope: AddrScope::Private,
        ..Config::default()
    };
    let (dht, now, _) = prepared_node_with(config);
    let target = NodeId([0x77; 20]);
    let queries = (0..n)
        .map(|i| {
            let src = SocketAddr::from(([10, 3, (i >> 8) as u8, i as u8], 6881));
            let method = match i % 5 {
                0 => Method::Ping,
                1 => Method::FindNode { target, want: None },
                2 => Method::GetPeers {
                    info_hash: STORED_INFO_HASH,
                    want: None,
                },
                3 => Method::AnnouncePeer {
                    info_hash: STORED_INFO_HASH,
                    port: 1,
                    implied_port: false,
                    token: b"badtoken",
                },
                _ => Method::SampleInfohashes { target, want: None },
            };
            (src, query(b"qq", method))
        })
        .collect();
    (dht, now, queries)
}
