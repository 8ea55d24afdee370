//! uTP (BEP 29) over a bad link (issue 15, "Under loss"): python3-libtorrent set to uTP only
//! downloads from the node through a link that drops 2 % of the datagrams in each direction,
//! delays each by 50 ms (± 10 ms of jitter, which reorders them), and duplicates 1 %; the
//! download must complete byte-exact (every dropped data packet was sent again).
//!
//! The link is a relay in this test process (UDP on 127.0.0.x), not `tc netem`: the kernels
//! this runs on in CI (and this development machine) have no `sch_netem`, and the relay
//! impairs exactly the datagrams of this one connection, with a fixed seed. libtorrent, given a bare
//! magnet link, dials the relay as if it were the seed; the relay forwards to the node's UDP port and back.

mod common;

use std::collections::BinaryHeap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    Deadline, PYTHON, SEEDER_IP, Seeder, assert_same_file, free_port, require_libtorrent,
    run_client, support_file, write_random_file,
};

/// Payload: hundreds of congestion windows, small enough for a lossy 100 ms round trip (about
/// 120 KB/s, as Reno-style halving at 2 % loss allows: 1.22 MSS / (RTT √p)).
const FILE_LEN: u64 = 3 * 1024 * 1024 + 333;

/// The relay's address (what libtorrent dials) and libtorrent's own.
const RELAY_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 61);
const LT_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 62);

/// One-way delay, jitter, loss and duplication of the link.
const DELAY: Duration = Duration::from_millis(50);
const JITTER_MS: u64 = 10;
const LOSS_PER_MILLE: u64 = 20;
const DUP_PER_MILLE: u64 = 10;

/// A datagram waiting for its delivery time.
struct Due {
    at: Instant,
    seq: u64,
    to_node: bool,
    bytes: Vec<u8>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    /// Earliest first in a max-heap.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// xorshift64*: a fixed-seed generator, so a failure replays.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// What the relay did, for the failure message and the checks.
#[derive(Default)]
struct LinkStats {
    forwarded: AtomicU64,
    dropped: AtomicU64,
    duplicated: AtomicU64,
}

/// Runs the impaired link until `stop`: datagrams to `front` go to `node` (from `back`), and
/// datagrams from `node` to `back` go to the last client that wrote to `front`.
fn relay(
    front: UdpSocket,
    back: UdpSocket,
    node: SocketAddr,
    stop: &AtomicBool,
    stats: &LinkStats,
) {
    front.set_nonblocking(true).unwrap();
    back.set_nonblocking(true).unwrap();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut queue = BinaryHeap::new();
    let mut client: Option<SocketAddr> = None;
    let mut buf = vec![0u8; 65_536];
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut idle = true;
        for (socket, to_node) in [(&front, true), (&back, false)] {
            while let Ok((n, from)) = socket.recv_from(&mut buf) {
                idle = false;
                if to_node {
                    client = Some(from);
                } else if from != node {
                    continue;
                }
                if rng.next() % 1000 < LOSS_PER_MILLE {
                    stats.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let copies = if rng.next() % 1000 < DUP_PER_MILLE {
                    stats.duplicated.fetch_add(1, Ordering::Relaxed);
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    let jitter = Duration::from_millis(rng.next() % (2 * JITTER_MS + 1));
                    let at = Instant::now() + DELAY - Duration::from_millis(JITTER_MS) + jitter;
                    seq += 1;
                    queue.push(Due {
                        at,
                        seq,
                        to_node,
                        bytes: buf[..n].to_vec(),
                    });
                }
            }
        }
        let now = Instant::now();
        while queue.peek().is_some_and(|d: &Due| d.at <= now) {
            let d = queue.pop().unwrap();
            let sent = if d.to_node {
                back.send_to(&d.bytes, node)
            } else if let Some(c) = client {
                front.send_to(&d.bytes, c)
            } else {
                continue;
            };
            if sent.is_ok() {
                stats.forwarded.fetch_add(1, Ordering::Relaxed);
            }
        }
        if idle {
            thread::sleep(Duration::from_micros(200));
        }
    }
}

#[test]
fn libtorrent_downloads_over_utp_through_a_lossy_reordering_link() {
    require_libtorrent();
    let deadline = Deadline::after(Duration::from_secs(170));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lossy.bin");
    write_random_file(&file, FILE_LEN, 71);
    let seeder = Seeder::start(
        &file,
        &[std::ffi::OsStr::new("--no-dht")],
        dir.path(),
        deadline,
    );
    let node = SocketAddr::new(SEEDER_IP.into(), seeder.listen.port());
    let front = UdpSocket::bind((RELAY_IP, free_port(RELAY_IP))).unwrap();
    let back = UdpSocket::bind((RELAY_IP, 0)).unwrap();
    let relay_addr = front.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(LinkStats::default());
    let link = {
        let (stop, stats) = (Arc::clone(&stop), Arc::clone(&stats));
        thread::spawn(move || relay(front, back, node, &stop, &stats))
    };
    let save = dir.path().join("dl");
    let mut cmd = Command::new(PYTHON);
    // A bare magnet: no tracker to learn the node's real address from, so every byte (the
    // metadata too, BEP 9) crosses the link.
    cmd.arg(support_file("lt_download.py"))
        .arg("--magnet")
        .arg(format!("magnet:?xt=urn:btih:{}", seeder.info_hash))
        .arg("--save-dir")
        .arg(&save)
        .arg("--peer")
        .arg(relay_addr.to_string())
        .arg("--listen")
        .arg(format!("{LT_IP}:{}", free_port(LT_IP)))
        .arg("--transport")
        .arg("utp")
        .arg("--timeout")
        .arg("140");
    let started = Instant::now();
    run_client(
        "lt_download.py",
        &mut cmd,
        &dir.path().join("lt.log"),
        Some(&seeder),
        deadline,
    );
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    link.join().unwrap();
    assert_same_file(&file, &save.join("lossy.bin"));
    let (forwarded, dropped, duplicated) = (
        stats.forwarded.load(Ordering::Relaxed),
        stats.dropped.load(Ordering::Relaxed),
        stats.duplicated.load(Ordering::Relaxed),
    );
    eprintln!(
        "{FILE_LEN} bytes in {took:.1?} through the link: {forwarded} datagrams forwarded, \
         {dropped} dropped, {duplicated} duplicated"
    );
    assert!(dropped > 0, "the link dropped nothing: not a lossy link");
    seeder.stop();
}
