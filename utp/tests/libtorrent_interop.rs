//! Real interop over loopback UDP with python3-libtorrent 2.0 set to uTP only (TCP off both
//! ways): our endpoint dials a libtorrent seeder and downloads blocks over the BitTorrent peer
//! wire (BEP 3), and a libtorrent leecher dials our endpoint. Skipped, with a message, when
//! `/usr/bin/python3 -c 'import libtorrent'` fails. Every test is bounded in time and the python
//! process is killed on every path (a guard with `Drop`). `LT_VERBOSE=1` shows libtorrent's
//! alerts, `LT_TRACE=1` every uTP header in and out.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)] // real sockets and clocks here

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use seednode_utp::{CloseReason, Config, ConnId, Endpoint, Event};

const PYTHON: &str = "/usr/bin/python3";
const TEST_TIMEOUT: Duration = Duration::from_secs(30);
const PEER_ID: &[u8; 20] = b"-SN0001-utpinterop01";

fn libtorrent_available() -> bool {
    let ok = Command::new(PYTHON)
        .args(["-c", "import libtorrent"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "SKIPPED: {PYTHON} cannot import libtorrent (apt-get install python3-libtorrent)"
        );
    }
    ok
}

/// The python process; killed and reaped on drop, whatever path the test takes.
struct Python {
    child: Child,
    _stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Python {
    fn spawn(args: &[&str]) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/lt_utp.py");
        let mut child = Command::new(PYTHON)
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(if std::env::var_os("LT_VERBOSE").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("spawn python");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            _stdin: stdin,
            lines,
        }
    }

    fn expect_line(&self, prefix: &str) -> String {
        let deadline = Instant::now() + TEST_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("python said nothing starting with {prefix:?}: {e}"));
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.trim().to_owned();
            }
        }
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("utp-interop-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Our endpoint on a real UDP socket, driven the way the engine will drive it.
struct Driver {
    ep: Endpoint,
    sock: UdpSocket,
    tx: Vec<u8>,
    rx: Vec<u8>,
    datagrams_in: u64,
    datagrams_out: u64,
}

impl Driver {
    fn new() -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        Self {
            ep: Endpoint::new(Instant::now(), Config::default(), 0x5eed),
            sock,
            tx: Vec::new(),
            rx: vec![0; 65536],
            datagrams_in: 0,
            datagrams_out: 0,
        }
    }

    fn port(&self) -> u16 {
        self.sock.local_addr().unwrap().port()
    }

    fn flush(&mut self) {
        while let Some(t) = self.ep.poll_transmit(&mut self.tx) {
            if std::env::var_os("LT_TRACE").is_some() {
                let p = seednode_utp::Packet::new_checked(&self.tx[..t.len]).unwrap();
                eprintln!(
                    "out {:?} seq {} ack {} len {} sack {:?}",
                    p.packet_type(),
                    p.seq_nr(),
                    p.ack_nr(),
                    p.payload().len(),
                    p.sack()
                );
            }
            self.sock.send_to(&self.tx[..t.len], t.dst).unwrap();
            self.datagrams_out += 1;
        }
    }

    /// One turn: receive what is there (or wait up to 5 ms), fire timers, send; returns events.
    fn turn(&mut self) -> Vec<Event> {
        self.flush();
        match self.sock.recv_from(&mut self.rx) {
            Ok((n, src)) => {
                self.datagrams_in += 1;
                if std::env::var_os("LT_TRACE").is_some() {
                    match seednode_utp::Packet::new_checked(&self.rx[..n]) {
                        Ok(p) => eprintln!(
                            "in {:?} seq {} ack {} len {} sack {:?}",
                            p.packet_type(),
                            p.seq_nr(),
                            p.ack_nr(),
                            p.payload().len(),
                            p.sack()
                        ),
                        Err(e) => eprintln!("in BAD {n} bytes {e} {:02x?}", &self.rx[..24.min(n)]),
                    }
                }
                assert!(seednode_utp::looks_like_utp(&self.rx[..n]));
                self.ep.handle_datagram(Instant::now(), src, &self.rx[..n]);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("recv: {e}"),
        }
        let now = Instant::now();
        if self.ep.poll_timeout().is_some_and(|t| t <= now) {
            self.ep.handle_timeout(now);
        }
        self.flush();
        std::iter::from_fn(|| self.ep.poll_event()).collect()
    }
}

fn handshake(info_hash: &[u8; 20]) -> Vec<u8> {
    let mut h = vec![19];
    h.extend_from_slice(b"BitTorrent protocol");
    h.extend_from_slice(&[0; 8]);
    h.extend_from_slice(info_hash);
    h.extend_from_slice(PEER_ID);
    h
}

fn hex20(s: &str) -> [u8; 20] {
    let mut out = [0; 20];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

fn msg(id: u8, body: &[u8]) -> Vec<u8> {
    let mut m = ((body.len() + 1) as u32).to_be_bytes().to_vec();
    m.push(id);
    m.extend_from_slice(body);
    m
}

/// Splits whole peer-wire messages off `buf` (after the handshake): `(id, body)`; keep-alives
/// are skipped.
fn split_messages(buf: &mut Vec<u8>) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(prefix) = buf.first_chunk::<4>() {
        let len = u32::from_be_bytes(*prefix) as usize;
        assert!(len <= 1 << 20, "absurd message length {len}");
        if buf.len() < 4 + len {
            break;
        }
        let frame: Vec<u8> = buf.drain(..4 + len).collect();
        if len > 0 {
            out.push((frame[4], frame[5..].to_vec()));
        }
    }
    out
}

const BLOCK: usize = 16 * 1024;
/// Every block of the 256 KiB file.
const BLOCKS_REQUESTED: usize = 16;

#[test]
fn downloads_blocks_from_libtorrent_over_utp() {
    if !libtorrent_available() {
        return;
    }
    let dir = TempDir::new("seed");
    let lt_port = {
        // A free port for libtorrent (it listens on TCP and UDP with the same number).
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let py = Python::spawn(&["seed", dir.0.to_str().unwrap(), &lt_port.to_string()]);
    let info_hash = hex20(&py.expect_line("info-hash:"));
    py.expect_line("ready");
    let file = std::fs::read(dir.0.join("data")).unwrap();

    let mut d = Driver::new();
    let remote: SocketAddr = format!("127.0.0.1:{lt_port}").parse().unwrap();
    let conn = d.ep.connect(Instant::now(), remote).unwrap();
    let deadline = Instant::now() + TEST_TIMEOUT;
    let mut inbuf = Vec::new();
    let mut got_handshake = false;
    let mut got_bitfield = false;
    let mut unchoked = false;
    let mut blocks = 0;
    let mut connected = false;
    let mut buf = [0u8; 64 * 1024];
    while blocks < BLOCKS_REQUESTED {
        assert!(
            Instant::now() < deadline,
            "timed out: handshake {got_handshake}, bitfield {got_bitfield}, unchoked {unchoked}, blocks {blocks}, stats {:?}",
            d.ep.conn_stats(conn)
        );
        for e in d.turn() {
            match e {
                Event::Connected(c) => {
                    assert_eq!(c, conn);
                    connected = true;
                    assert_eq!(d.ep.write(conn, &handshake(&info_hash)), 68);
                }
                Event::Closed { reason, .. } => {
                    panic!("libtorrent closed the uTP connection: {reason:?}")
                }
                _ => {}
            }
        }
        loop {
            let n = d.ep.read(conn, &mut buf);
            if n == 0 {
                break;
            }
            inbuf.extend_from_slice(&buf[..n]);
        }
        if !got_handshake && inbuf.len() >= 68 {
            assert_eq!(&inbuf[..20], b"\x13BitTorrent protocol");
            assert_eq!(
                &inbuf[28..48],
                &info_hash,
                "libtorrent answered for another torrent"
            );
            inbuf.drain(..68);
            got_handshake = true;
        }
        if !got_handshake {
            continue;
        }
        for (id, body) in split_messages(&mut inbuf) {
            match id {
                5 => {
                    // bitfield: 8 pieces of 32 KiB, all present
                    assert_eq!(body, vec![0xff], "seeder's bitfield");
                    got_bitfield = true;
                    assert!(d.ep.write(conn, &msg(2, &[])) == 5); // interested
                }
                1 => {
                    unchoked = true;
                    for i in 0..BLOCKS_REQUESTED {
                        let offset = i * BLOCK;
                        let (piece, begin) = (offset / (32 * 1024), offset % (32 * 1024));
                        let mut r = Vec::new();
                        r.extend_from_slice(&(piece as u32).to_be_bytes());
                        r.extend_from_slice(&(begin as u32).to_be_bytes());
                        r.extend_from_slice(&(BLOCK as u32).to_be_bytes());
                        assert_eq!(d.ep.write(conn, &msg(6, &r)), 17);
                    }
                }
                7 => {
                    let piece = u32::from_be_bytes(body[0..4].try_into().unwrap()) as usize;
                    let begin = u32::from_be_bytes(body[4..8].try_into().unwrap()) as usize;
                    let data = &body[8..];
                    let at = piece * 32 * 1024 + begin;
                    assert_eq!(data.len(), BLOCK);
                    assert!(
                        data == &file[at..at + BLOCK],
                        "block {piece}/{begin} differs"
                    );
                    blocks += 1;
                }
                _ => {} // have, extended, port, allowed-fast...
            }
        }
    }
    assert!(connected && got_bitfield && unchoked);
    let st = d.ep.conn_stats(conn).unwrap();
    eprintln!(
        "libtorrent -> us: {blocks} blocks verified; {} datagrams in, {} out; rtt {:?}, cwnd {} B",
        d.datagrams_in, d.datagrams_out, st.rtt, st.cwnd
    );
    // Close: FIN both ways is libtorrent's business once it notices; ours must go out acked.
    d.ep.close(conn);
    let end = Instant::now() + Duration::from_secs(5);
    let mut closed = None;
    while Instant::now() < end && closed.is_none() {
        for e in d.turn() {
            if let Event::Closed { reason, .. } = e {
                closed = Some(reason);
            }
        }
        while d.ep.read(conn, &mut buf) > 0 {}
    }
    assert_eq!(
        closed,
        Some(CloseReason::Graceful),
        "FIN both ways, both acknowledged: {:?}",
        d.ep.conn_stats(conn)
    );
    drop(py);
}

#[test]
fn libtorrent_dials_us_over_utp_and_sends_its_handshake() {
    if !libtorrent_available() {
        return;
    }
    let dir = TempDir::new("leech");
    let mut d = Driver::new();
    let info_hash = [0xab_u8; 20];
    let hex: String = info_hash.iter().map(|b| format!("{b:02x}")).collect();
    let py = Python::spawn(&[
        "leech",
        &hex,
        &d.port().to_string(),
        dir.0.to_str().unwrap(),
    ]);
    py.expect_line("connecting");
    let deadline = Instant::now() + TEST_TIMEOUT;
    let mut conn: Option<ConnId> = None;
    let mut inbuf = Vec::new();
    let mut buf = [0u8; 4096];
    while inbuf.len() < 68 {
        assert!(
            Instant::now() < deadline,
            "no handshake from libtorrent ({} bytes, conn {conn:?})",
            inbuf.len()
        );
        for e in d.turn() {
            match e {
                Event::Incoming(c) => {
                    assert!(conn.is_none(), "one connection expected");
                    conn = Some(c);
                }
                Event::Closed { reason, .. } => panic!("closed before the handshake: {reason:?}"),
                _ => {}
            }
        }
        if let Some(c) = conn {
            loop {
                let n = d.ep.read(c, &mut buf);
                if n == 0 {
                    break;
                }
                inbuf.extend_from_slice(&buf[..n]);
            }
        }
    }
    let c = conn.unwrap();
    assert_eq!(&inbuf[..20], b"\x13BitTorrent protocol");
    assert_eq!(&inbuf[28..48], &info_hash);
    let remote = d.ep.remote(c).unwrap();
    assert_eq!(remote.ip().to_string(), "127.0.0.1");
    // Answer with our handshake; libtorrent keeps the connection (same info-hash).
    assert_eq!(d.ep.write(c, &handshake(&info_hash)), 68);
    let until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < until {
        for e in d.turn() {
            assert!(
                !matches!(e, Event::Closed { .. }),
                "libtorrent dropped us: {e:?}"
            );
        }
    }
    let st = d.ep.conn_stats(c).unwrap();
    assert_eq!(st.bytes_in_flight, 0, "our handshake was acknowledged");
    eprintln!(
        "us <- libtorrent: handshake from peer id {:?}; {} datagrams in, {} out",
        String::from_utf8_lossy(&inbuf[48..56]),
        d.datagrams_in,
        d.datagrams_out
    );
    drop(py);
}
