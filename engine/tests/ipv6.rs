//! Dual-stack IPv6 (issue 15, "Dual-stack IPv6"): one node listening on `[::]` serves
//! IPv6 clients (aria2c through the node's tracker at `[::1]`, libtorrent dialling `[::1]`) and
//! an IPv4 client (libtorrent dialling 127.0.0.1) on the same port; its tracker answers an IPv6 announcer with `peers6` (BEP 7,
//! HTTP) and 18-byte peers (BEP 15 over IPv6), and still answers UDP announces that arrive
//! over IPv4 on the dual-stack socket.
//!
//! All traffic stays on loopback. Where the machine has no IPv6 loopback the test prints
//! SKIPPED.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;

use common::{
    Deadline, PYTHON, SEEDER_IP, Seeder, assert_same_file, free_port, require_aria2c,
    require_libtorrent, run_client, support_file, write_random_file,
};

const V6_LOOPBACK: Ipv6Addr = Ipv6Addr::LOCALHOST;

/// Whether this machine has `::1` (containers may run with IPv6 off).
fn ipv6_loopback() -> bool {
    std::net::TcpListener::bind((V6_LOOPBACK, 0)).is_ok()
}

/// A free TCP and UDP port on both `::1` and 127.0.0.1.
fn free_dual_port() -> u16 {
    loop {
        let port = free_port(SEEDER_IP);
        if std::net::TcpListener::bind((V6_LOOPBACK, port)).is_ok()
            && UdpSocket::bind((V6_LOOPBACK, port)).is_ok()
        {
            return port;
        }
    }
}

/// aria2c with IPv6 on, downloading `torrent` into `dir` with `tracker` as its only tracker.
fn aria2c(torrent: &OsStr, dir: &std::path::Path, tracker: &str, seeder: &Seeder, d: Deadline) {
    fs::create_dir_all(dir).unwrap();
    let log = dir.with_extension("aria2c.log");
    let mut cmd = Command::new("aria2c");
    cmd.args([
        "--enable-dht=false",
        "--enable-dht6=false",
        "--bt-enable-lpd=false",
        "--enable-peer-exchange=false",
        "--seed-time=0",
        "--bt-stop-timeout=60",
        "--summary-interval=0",
        "--disable-ipv6=false",
        "--file-allocation=none",
        "--bt-exclude-tracker=*",
        "--console-log-level=warn",
        "--log=-",
        "--log-level=info",
    ])
    .arg(format!("--bt-tracker={tracker}"))
    .arg(format!("--dir={}", dir.display()))
    .arg(torrent);
    run_client("aria2c", &mut cmd, &log, Some(seeder), d);
}

/// One HTTP GET to `addr`; the response's body.
fn http_get(addr: SocketAddr, path: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    out.split_off(split + 4)
}

/// The bytes after `key` (a bencoded string key) in `body`: its `len:value` string value.
fn bencoded_bytes<'a>(body: &'a [u8], key: &str) -> Option<&'a [u8]> {
    let needle = format!("{}:{key}", key.len());
    let at = body
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())?;
    let rest = &body[at + needle.len()..];
    let colon = rest.iter().position(|&b| b == b':')?;
    let len: usize = std::str::from_utf8(&rest[..colon]).ok()?.parse().ok()?;
    rest.get(colon + 1..colon + 1 + len)
}

fn percent(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

fn hex_to_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// BEP 15 connect then announce of `ih` from `socket` to `to`; the announce response.
fn udp_announce(socket: &UdpSocket, to: SocketAddr, ih: &[u8], port: u16) -> Vec<u8> {
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut connect = Vec::new();
    connect.extend_from_slice(&0x0417_2710_1980u64.to_be_bytes());
    connect.extend_from_slice(&0u32.to_be_bytes());
    connect.extend_from_slice(&7u32.to_be_bytes());
    socket.send_to(&connect, to).unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = socket.recv_from(&mut buf).expect("connect response");
    assert_eq!(n, 16);
    assert_eq!(
        &buf[..8],
        &[0, 0, 0, 0, 0, 0, 0, 7][..],
        "action 0, transaction 7"
    );
    let conn_id = &buf[8..16];
    let mut announce = Vec::new();
    announce.extend_from_slice(conn_id);
    announce.extend_from_slice(&1u32.to_be_bytes()); // announce
    announce.extend_from_slice(&9u32.to_be_bytes()); // transaction
    announce.extend_from_slice(ih);
    announce.extend_from_slice(b"-XX0001-udp-announce");
    announce.extend_from_slice(&0u64.to_be_bytes()); // downloaded
    announce.extend_from_slice(&100u64.to_be_bytes()); // left
    announce.extend_from_slice(&0u64.to_be_bytes()); // uploaded
    announce.extend_from_slice(&2u32.to_be_bytes()); // started
    announce.extend_from_slice(&0u32.to_be_bytes()); // ip
    announce.extend_from_slice(&1u32.to_be_bytes()); // key
    announce.extend_from_slice(&50i32.to_be_bytes()); // num_want
    announce.extend_from_slice(&port.to_be_bytes());
    socket.send_to(&announce, to).unwrap();
    let (n, _) = socket.recv_from(&mut buf).expect("announce response");
    buf[..n].to_vec()
}

#[test]
fn a_dual_stack_node_serves_ipv6_and_ipv4_clients_and_lists_peers6() {
    if !ipv6_loopback() {
        eprintln!("SKIPPED: this machine has no IPv6 loopback (::1)");
        return;
    }
    require_aria2c();
    require_libtorrent();
    let deadline = Deadline::after(Duration::from_secs(150));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dual.bin");
    write_random_file(&file, 3_000_000, 61);
    let port = free_dual_port();
    let listen = SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port);
    let seeder = Seeder::start_at(
        listen,
        &file,
        &[
            OsStr::new("--no-dht"),
            OsStr::new("--announce-host"),
            OsStr::new("::1"),
        ],
        dir.path(),
        deadline,
    );
    assert_eq!(seeder.listen, listen, "the node listens on [::]");
    assert!(
        seeder.magnet.contains("x.pe=%5B%3A%3A1%5D"),
        "x.pe names [::1]: {}",
        seeder.magnet
    );
    let v6 = SocketAddr::new(V6_LOOPBACK.into(), port);
    let v4 = SocketAddr::new(SEEDER_IP.into(), port);

    // IPv6: aria2c through the node's tracker at [::1], libtorrent dialling [::1].
    let dl6 = dir.path().join("aria2c-v6");
    aria2c(
        seeder.torrent.as_os_str(),
        &dl6,
        &format!("http://[::1]:{port}/announce"),
        &seeder,
        deadline,
    );
    assert_same_file(&file, &dl6.join("dual.bin"));
    // libtorrent dialling [::1], then 127.0.0.1: the same dual-stack port, and the IPv4 peer
    // seen as 127.0.0.1 (not ::ffff:127.0.0.1).
    for (name, peer, own) in [
        ("lt-v6", v6, format!("[::1]:{}", free_dual_port())),
        (
            "lt-v4",
            v4,
            format!(
                "127.0.0.2:{}",
                free_port(std::net::Ipv4Addr::new(127, 0, 0, 2))
            ),
        ),
    ] {
        let save = dir.path().join(name);
        let mut cmd = Command::new(PYTHON);
        cmd.arg(support_file("lt_download.py"))
            .arg(&seeder.torrent)
            .arg("--save-dir")
            .arg(&save)
            .arg("--peer")
            .arg(peer.to_string())
            .arg("--listen")
            .arg(own)
            .arg("--timeout")
            .arg("60");
        let log = dir.path().join(format!("{name}.log"));
        run_client("lt_download.py", &mut cmd, &log, Some(&seeder), deadline);
        assert_same_file(&file, &save.join("dual.bin"));
    }
    let log = fs::read_to_string(dir.path().join("seednode.stderr")).unwrap();
    assert!(log.contains("peer connected peer=[::1]:"), "{log}");
    assert!(log.contains("peer connected peer=127.0.0.2:"), "{log}");
    assert!(
        !log.contains("::ffff:"),
        "IPv4-mapped addresses are unwrapped\n{log}"
    );

    // BEP 7: an IPv6 announcer gets the other IPv6 peer in `peers6` (18 bytes each).
    let ih = hex_to_bytes(&seeder.info_hash);
    let announce = |peer_port: u16| {
        format!(
            "/announce?info_hash={}&peer_id=-XX0001-{peer_port:012}&port={peer_port}\
             &uploaded=0&downloaded=0&left=100&compact=1",
            percent(&ih)
        )
    };
    http_get(v6, &announce(41_001));
    let body = http_get(v6, &announce(41_002));
    let peers6 = bencoded_bytes(&body, "peers6").expect("peers6 in the answer");
    assert_eq!(peers6.len() % 18, 0, "{body:?}");
    let listed: Vec<SocketAddr> = peers6
        .chunks(18)
        .map(|c| {
            let ip: [u8; 16] = c[..16].try_into().unwrap();
            SocketAddr::new(
                Ipv6Addr::from(ip).into(),
                u16::from_be_bytes([c[16], c[17]]),
            )
        })
        .collect();
    assert!(
        listed.contains(&SocketAddr::new(V6_LOOPBACK.into(), 41_001)),
        "{listed:?}"
    );

    // BEP 15 over IPv6: 18-byte peers; over IPv4 on the same dual-stack UDP socket: answered.
    let s6 = UdpSocket::bind((V6_LOOPBACK, 0)).unwrap();
    let reply = udp_announce(&s6, v6, &ih, 41_003);
    assert_eq!(&reply[..4], &1u32.to_be_bytes(), "an announce response");
    let peers = &reply[20..];
    assert_eq!(
        peers.len() % 18,
        0,
        "IPv6 peers are 18 bytes each: {reply:?}"
    );
    assert!(!peers.is_empty(), "the IPv6 peers are listed");
    let s4 = UdpSocket::bind((SEEDER_IP, 0)).unwrap();
    let reply = udp_announce(&s4, v4, &ih, 41_004);
    assert_eq!(
        &reply[..4],
        &1u32.to_be_bytes(),
        "an announce response over IPv4"
    );
    assert_eq!(
        reply[20..].len() % 6,
        0,
        "IPv4 peers are 6 bytes each: {reply:?}"
    );
    seeder.stop();
}
