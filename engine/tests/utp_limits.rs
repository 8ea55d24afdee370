//! uTP connections go through the same admission rules as TCP ones, and a SYN alone takes no
//! slot: the real `seednode seed` against a test client built on `seednode_utp::Endpoint` over a
//! real UDP socket on loopback (no other software needed). Bounded by [`TEST_TIMEOUT`].

mod common;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::{Deadline, Seeder, TEST_TIMEOUT, write_random_file};
use seednode_utp::{ConnId, Endpoint, Event};

/// The test client's address (no other test file uses it).
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 46);
/// Connections the client opens.
const CONNECTIONS: usize = 6;
/// The seeder's per-address cap under test.
const PER_IP: usize = 2;
/// How long a condition may take to show in `/metrics`.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads one unlabelled value from the seeder's `/metrics`.
fn metric(addr: SocketAddr, name: &str) -> Option<u64> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// A uTP endpoint on a real socket, driven by hand.
struct Client {
    ep: Endpoint,
    sock: UdpSocket,
    tx: Vec<u8>,
    events: Vec<Event>,
}

impl Client {
    fn new() -> Self {
        let sock = UdpSocket::bind((CLIENT_IP, 0)).expect("bind the client");
        sock.set_read_timeout(Some(Duration::from_millis(10)))
            .expect("read timeout");
        Self {
            ep: Endpoint::new(Instant::now(), seednode_utp::Config::default(), 46),
            sock,
            tx: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Sends, receives and fires timers for `dur`.
    fn run_for(&mut self, dur: Duration) {
        let end = Instant::now() + dur;
        let mut rx = [0u8; 2048];
        while Instant::now() < end {
            while let Some(t) = self.ep.poll_transmit(&mut self.tx) {
                let _ = self.sock.send_to(&self.tx[..t.len], t.dst);
            }
            while let Some(e) = self.ep.poll_event() {
                self.events.push(e);
            }
            if let Ok((n, src)) = self.sock.recv_from(&mut rx) {
                self.ep.handle_datagram(Instant::now(), src, &rx[..n]);
            }
            if self.ep.poll_timeout().is_some_and(|t| t <= Instant::now()) {
                self.ep.handle_timeout(Instant::now());
            }
        }
    }
}

/// A BEP 3 handshake for `info_hash_hex` (40 hex digits).
fn handshake(info_hash_hex: &str, n: u8) -> Vec<u8> {
    let mut hs = vec![19];
    hs.extend_from_slice(b"BitTorrent protocol");
    hs.extend_from_slice(&[0; 8]);
    for i in 0..20 {
        hs.push(u8::from_str_radix(&info_hash_hex[2 * i..2 * i + 2], 16).expect("hex"));
    }
    hs.extend_from_slice(b"-XX0001-utplimits00");
    hs.push(b'0' + n);
    hs
}

fn wait_for(what: &str, client: &mut Client, seeder: &Seeder, mut ok: impl FnMut(&Client) -> bool) {
    let end = Instant::now() + SETTLE_TIMEOUT;
    while !ok(client) {
        assert!(Instant::now() < end, "{what}\n{}", seeder.log());
        client.run_for(Duration::from_millis(100));
    }
}

#[test]
fn syns_take_no_slot_and_the_per_address_cap_holds_for_utp() {
    let deadline = Deadline::after(TEST_TIMEOUT);
    let tmp = tempfile::tempdir().expect("create temp dir");
    let file = tmp.path().join("small.bin");
    write_random_file(&file, 1 << 20, 46);
    let per_ip = PER_IP.to_string();
    let seeder = Seeder::start(
        &file,
        &[
            OsStr::new("--no-dht"),
            OsStr::new("--max-connections-per-ip"),
            OsStr::new(&per_ip),
        ],
        tmp.path(),
        deadline,
    );
    let mut client = Client::new();
    let conns: Vec<ConnId> = (0..CONNECTIONS)
        .map(|_| {
            client
                .ep
                .connect(Instant::now(), seeder.listen)
                .expect("connect")
        })
        .collect();
    // Every SYN is answered, but none enters the connection table before its first bytes.
    wait_for(
        "the seeder did not answer every SYN",
        &mut client,
        &seeder,
        |client| {
            conns
                .iter()
                .all(|c| client.events.contains(&Event::Connected(*c)))
        },
    );
    assert_eq!(metric(seeder.listen, "seednode_utp_connections"), Some(0));
    assert!(
        metric(seeder.listen, "seednode_utp_endpoint_connections").unwrap_or(0)
            >= CONNECTIONS as u64
    );

    // Handshakes on all of them: PER_IP become peers, the others are refused.
    for (i, c) in conns.iter().enumerate() {
        let hs = handshake(&seeder.info_hash, i as u8);
        assert_eq!(client.ep.write(*c, &hs), hs.len());
    }
    wait_for(
        "the per-address cap did not hold for uTP",
        &mut client,
        &seeder,
        |_| {
            metric(seeder.listen, "seednode_utp_peers") == Some(PER_IP as u64)
                && metric(seeder.listen, "seednode_utp_refused_total")
                    == Some((CONNECTIONS - PER_IP) as u64)
        },
    );
    // The refused ones were closed by the seeder (FIN: the end of their streams).
    wait_for(
        "refused connections were not closed",
        &mut client,
        &seeder,
        |client| conns.iter().filter(|c| client.ep.is_eof(**c)).count() == CONNECTIONS - PER_IP,
    );
    seeder.stop();
}
