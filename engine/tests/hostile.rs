//! Hostile peers against the real binary (SECURITY.md W1–W8): each misbehaving raw TCP client is
//! disconnected, and a real client (aria2c) downloading at the same time still completes.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use common::{Deadline, Seeder, TEST_TIMEOUT};
use seednode_wire::metainfo::Metainfo;
use seednode_wire::peer::{BlockRequest, Handshake, Message};
use seednode_wire::{InfoHash, PeerId};
use tempfile::TempDir;

/// How long a hostile client waits for the seeder to hang up on it: a bound, not a speed
/// check. Some cases end only by the node's 10 s handshake timeout
/// (`seednode::limits::HANDSHAKE_TIMEOUT`), so the bound leaves a margin for a loaded machine
/// (waiting exactly 10 s failed under load).
const HANGUP_TIMEOUT: Duration = Duration::from_secs(30);

fn handshake(info_hash: InfoHash) -> [u8; 68] {
    Handshake {
        reserved: [0; 8],
        info_hash,
        peer_id: PeerId(*b"-HO0001-hostilepeer!"),
    }
    .encode()
}

fn encode(msgs: &[Message]) -> Vec<u8> {
    let mut out = bytes::BytesMut::new();
    for m in msgs {
        m.encode(&mut out);
    }
    out.to_vec()
}

/// Reads and discards until the seeder closes the connection; panics if it does not within
/// [`HANGUP_TIMEOUT`]. Returns the bytes received.
fn expect_hangup(mut s: TcpStream, what: &str) -> Vec<u8> {
    let end = Instant::now() + HANGUP_TIMEOUT;
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n.min(4096)]),
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                return got;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("{what}: read error {e}"),
        }
        assert!(
            Instant::now() < end,
            "{what}: seeder did not disconnect within {HANGUP_TIMEOUT:?}"
        );
    }
}

/// Writes, tolerating the seeder closing on us halfway (which is what we want).
fn send(s: &mut TcpStream, bytes: &[u8]) {
    match s.write_all(bytes) {
        Ok(()) => {}
        Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {}
        Err(e) => panic!("write: {e}"),
    }
}

fn connect(addr: SocketAddr, ip: [u8; 4]) -> TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&SocketAddr::from((ip, 0)).into()).unwrap();
    sock.connect_timeout(&addr.into(), Duration::from_secs(5))
        .unwrap();
    sock.into()
}

fn wrong_info_hash(addr: SocketAddr) {
    let mut s = connect(addr, [127, 0, 0, 21]);
    send(&mut s, &handshake(InfoHash([0xee; 20])));
    let got = expect_hangup(s, "wrong info-hash");
    assert!(
        got.is_empty(),
        "no handshake is sent back for an unknown info-hash"
    );
}

fn huge_length_prefix(addr: SocketAddr, ih: InfoHash) {
    let mut s = connect(addr, [127, 0, 0, 22]);
    send(&mut s, &handshake(ih));
    send(&mut s, &0x8000_0000u32.to_be_bytes());
    // A peer that then streams data must not be buffered.
    let junk = vec![0u8; 256 * 1024];
    let _ = s.write_all(&junk);
    expect_hangup(s, "length prefix 2^31");
}

fn request_past_end(addr: SocketAddr, ih: InfoHash, pieces: u32) {
    let mut s = connect(addr, [127, 0, 0, 23]);
    send(&mut s, &handshake(ih));
    send(&mut s, &encode(&[Message::Interested]));
    // Wait for the unchoke (the upload slot) before the bad request, so it is judged on range
    // rather than on choking.
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(5).any(|w| w == [0, 0, 0, 1, 1]) {
        let n = s
            .read(&mut buf)
            .expect("seeder sends handshake, bitfield, unchoke");
        assert!(n > 0, "seeder closed before unchoking");
        seen.extend_from_slice(&buf[..n]);
    }
    let bad = BlockRequest {
        piece: pieces,
        begin: 0,
        length: 16 * 1024,
    };
    send(&mut s, &encode(&[Message::Request(bad)]));
    expect_hangup(s, "request past the end");
}

fn requests_while_choked(addr: SocketAddr, ih: InfoHash) {
    let mut s = connect(addr, [127, 0, 0, 24]);
    send(&mut s, &handshake(ih));
    // Never interested, so never unchoked.
    let req = encode(&[Message::Request(BlockRequest {
        piece: 0,
        begin: 0,
        length: 16 * 1024,
    })]);
    let burst: Vec<u8> = req
        .iter()
        .copied()
        .cycle()
        .take(req.len() * 10_000)
        .collect();
    // The connection stays open on our side: only the seeder's limit can end it.
    send(&mut s, &burst);
    let got = expect_hangup(s, "10,000 requests while choked");
    // Handshake (68) + bitfield + nothing else: no piece was served.
    assert!(
        got.len() < 68 + 4 + 1 + 1024,
        "a choked peer got data: {} bytes",
        got.len()
    );
}

fn slowloris_is_closed(addr: SocketAddr) {
    let mut s = connect(addr, [127, 0, 0, 25]);
    send(&mut s, b"\x13Bit");
    let start = Instant::now();
    expect_hangup(s, "partial handshake then silence");
    assert!(
        start.elapsed() >= Duration::from_secs(5),
        "closed by the handshake deadline"
    );
}

#[test]
fn hostile_peers_are_dropped_while_aria2c_completes() {
    common::require_aria2c();
    let deadline = Deadline::after(TEST_TIMEOUT);
    let tmp = TempDir::new().unwrap();
    let file = tmp.path().join("payload.bin");
    common::write_random_file(&file, 8 * 1024 * 1024 + 12_345, 7);
    let seeder = Seeder::start(&file, &[], tmp.path(), deadline);
    let meta = Metainfo::from_bytes(&std::fs::read(&seeder.torrent).unwrap()).unwrap();
    let (ih, pieces, addr) = (meta.info_hash, meta.info.piece_count(), seeder.listen);

    let hostile = thread::spawn(move || {
        let handles = vec![
            thread::spawn(move || wrong_info_hash(addr)),
            thread::spawn(move || huge_length_prefix(addr, ih)),
            thread::spawn(move || request_past_end(addr, ih, pieces)),
            thread::spawn(move || requests_while_choked(addr, ih)),
            thread::spawn(move || slowloris_is_closed(addr)),
        ];
        handles
            .into_iter()
            .map(thread::JoinHandle::join)
            .collect::<Vec<_>>()
    });

    let dl = tmp.path().join("dl");
    common::aria2c_download(
        seeder.torrent.as_os_str(),
        &dl,
        [127, 0, 0, 30].into(),
        &seeder,
        deadline,
    );
    common::assert_same_file(&file, &dl.join(Path::new("payload.bin")));
    for result in hostile.join().unwrap() {
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    }
    seeder.stop();
}
