//! No dialling on a peer's say-so: a peer on a public address that names internal addresses in
//! `ut_pex` (BEP 11) never makes the node connect to them, PEX is honoured once a minute, and a
//! PEX flood is disconnected.
//!
//! The node must see the hostile peer on a *public* address, so the test runs in a network
//! namespace of its own (`unshare -n`, root only), where the loopback interface carries a few
//! public-looking addresses (11.0.0.0/8, unrouted here: nothing leaves the namespace). Where a
//! namespace cannot be made, the test says so and skips.

mod common;

use std::ffi::OsStr;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::{Deadline, Seeder, TEST_TIMEOUT};
use seednode_wire::metainfo::Metainfo;
use seednode_wire::peer::{Handshake, Message};
use seednode_wire::{InfoHash, PeerId};
use tempfile::TempDir;

/// Set in the re-executed test process that runs inside the namespace.
const INNER_ENV: &str = "SEEDNODE_TEST_IN_NETNS";

/// The node's address, the hostile peer's and an honest listener's, all "public".
const NODE_IP: [u8; 4] = [11, 0, 0, 1];
const HOSTILE_IP: [u8; 4] = [11, 0, 0, 2];
const HONEST_IP: [u8; 4] = [11, 0, 0, 3];

/// Internal addresses the hostile peer names; each has a listener that must stay silent.
const BAIT_IPS: [[u8; 4]; 6] = [
    [127, 0, 0, 1],
    [10, 9, 9, 9],
    [192, 168, 77, 7],
    [172, 16, 5, 5],
    [169, 254, 9, 9],
    [100, 64, 9, 9],
];

/// Runs `test` of this file inside a new network namespace; returns true in the inner process
/// (run the scenario), false in the outer one (the verdict is the inner run's exit status, or a
/// skip when namespaces are not allowed here).
fn in_netns(test: &str) -> bool {
    if std::env::var_os(INNER_ENV).is_some() {
        return true;
    }
    let probe = Command::new("unshare").args(["-n", "true"]).status();
    if !probe.is_ok_and(|s| s.success()) {
        eprintln!("SKIP {test}: cannot create a network namespace here (needs root and unshare)");
        return false;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let status = Command::new("unshare")
        .arg("-n")
        .arg("--")
        .arg(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(INNER_ENV, "1")
        .status()
        .expect("run the test inside unshare -n");
    assert!(status.success(), "{test} failed inside its namespace");
    false
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("run ip");
    assert!(status.success(), "ip {args:?} failed");
}

/// Brings loopback up with the test's addresses on it.
fn set_up_namespace() {
    ip(&["link", "set", "lo", "up"]);
    for a in [NODE_IP, HOSTILE_IP, HONEST_IP]
        .iter()
        .chain(BAIT_IPS.iter().skip(1))
    {
        let cidr = format!("{}.{}.{}.{}/32", a[0], a[1], a[2], a[3]);
        ip(&["addr", "add", &cidr, "dev", "lo"]);
    }
}

fn encode(msgs: &[Message]) -> Vec<u8> {
    let mut out = bytes::BytesMut::new();
    for m in msgs {
        m.encode(&mut out);
    }
    out.to_vec()
}

/// A `ut_pex` message (our extended id for it is 1, BEP 11) adding `peers`.
fn pex(peers: &[SocketAddr]) -> Vec<u8> {
    let mut compact = Vec::new();
    for p in peers {
        let SocketAddr::V4(v4) = p else {
            unreachable!()
        };
        compact.extend_from_slice(&v4.ip().octets());
        compact.extend_from_slice(&v4.port().to_be_bytes());
    }
    let mut payload = format!("d5:added{}:", compact.len()).into_bytes();
    payload.extend_from_slice(&compact);
    payload.push(b'e');
    encode(&[Message::Extended {
        id: 1,
        payload: payload.into(),
    }])
}

/// Accepts on `listener` until `until`; true when anything connected.
fn was_dialled(listener: &TcpListener, until: Instant) -> bool {
    listener.set_nonblocking(true).unwrap();
    while Instant::now() < until {
        match listener.accept() {
            Ok(_) => return true,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
    false
}

fn connect_from(src: [u8; 4], dst: SocketAddr) -> TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&SocketAddr::from((src, 0)).into()).unwrap();
    sock.connect_timeout(&dst.into(), Duration::from_secs(5))
        .unwrap();
    sock.into()
}

fn metric(seeder_addr: SocketAddr, name: &str) -> u64 {
    // From loopback: `/metrics` is open without a token only there.
    let mut s = connect_from([127, 0, 0, 1], seeder_addr);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn pex_from_a_public_peer_never_dials_internal_addresses_and_a_flood_is_dropped() {
    if !in_netns("pex_from_a_public_peer_never_dials_internal_addresses_and_a_flood_is_dropped") {
        return;
    }
    set_up_namespace();
    let deadline = Deadline::after(TEST_TIMEOUT);
    let tmp = TempDir::new().unwrap();
    let file = tmp.path().join("payload.bin");
    common::write_random_file(&file, 1024 * 1024, 11);
    let listen = SocketAddr::from((NODE_IP, 6881));
    let no_dht: &[&OsStr] = &["--no-dht".as_ref()];
    let seeder = Seeder::start_at(listen, &file, no_dht, tmp.path(), deadline);
    let meta = Metainfo::from_bytes(&std::fs::read(&seeder.torrent).unwrap()).unwrap();

    let baits: Vec<TcpListener> = BAIT_IPS
        .iter()
        .map(|ip| TcpListener::bind(SocketAddr::from((*ip, 0))).unwrap())
        .collect();
    let honest = TcpListener::bind(SocketAddr::from((HONEST_IP, 0))).unwrap();
    let mut named: Vec<SocketAddr> = baits.iter().map(|l| l.local_addr().unwrap()).collect();
    // Port 0 and broadcast too, and the node itself.
    named.push(SocketAddr::from(([11, 0, 0, 3], 0)));
    named.push(SocketAddr::from(([255, 255, 255, 255], 6881)));
    named.push(listen);
    named.push(honest.local_addr().unwrap());

    let mut s = connect_from(HOSTILE_IP, listen);
    let mut reserved = [0u8; 8];
    reserved[5] |= 0x10; // BEP 10
    let hs = Handshake {
        reserved,
        info_hash: InfoHash(meta.info_hash.0),
        peer_id: PeerId(*b"-HO0001-pexattacker!"),
    };
    s.write_all(&hs.encode()).unwrap();
    s.write_all(&encode(&[Message::Extended {
        id: 0,
        payload: bytes::Bytes::from_static(b"d1:md6:ut_pexi1eee"),
    }]))
    .unwrap();
    s.write_all(&pex(&named)).unwrap();

    // The honest public address is dialled (the rules let real PEX work)...
    let until = Instant::now() + Duration::from_secs(10);
    assert!(
        was_dialled(&honest, until),
        "the public address named by PEX was not dialled\n{}",
        seeder.log()
    );
    // ...and none of the internal ones, nor the node itself.
    let until = Instant::now() + Duration::from_secs(2);
    for (bait, ip) in baits.iter().zip(BAIT_IPS) {
        assert!(!was_dialled(bait, until), "the node dialled {ip:?}");
    }

    // A flood of PEX messages (600 in a burst) gets the peer disconnected, and dials nothing
    // more.
    let flood: Vec<u8> = (0..600u16)
        .flat_map(|i| pex(&[SocketAddr::from(([11, 1, (i >> 8) as u8, i as u8], 6881))]))
        .collect();
    let _ = s.write_all(&flood);
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let hangup_by = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                break;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("read: {e}"),
        }
        assert!(
            Instant::now() < hangup_by,
            "a PEX flood was not disconnected\n{}",
            seeder.log()
        );
    }
    assert_eq!(
        metric(listen, "seednode_dials_total"),
        1,
        "one dial: the honest peer"
    );
    assert!(
        metric(
            listen,
            "seednode_connections_closed_total{reason=\"pex_flood\"}"
        ) >= 1
    );
    seeder.stop();
}
