//! In-process, seeded simulation of two uTP endpoints over a lossy link (no sockets): delay,
//! loss, reordering (jitter), duplication and an optional bottleneck queue. Virtual time only;
//! every run is bounded in steps.
#![allow(clippy::disallowed_methods)] // the test's epoch is its only clock read

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use seednode_utp::{
    CloseReason, Config, ConnId, ConnectionError, Endpoint, Event, Packet, PacketType,
    packet::{self, Header},
};

const A: &str = "10.0.0.1:6881";
const B: &str = "10.0.0.2:6881";

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() % 1_000_000) as f64 / 1_000_000.0 < p
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[derive(Clone, Copy)]
struct LinkConfig {
    delay: Duration,
    /// Extra random delay in [0, jitter): reorders packets.
    jitter: Duration,
    loss: f64,
    duplicate: f64,
    /// Bottleneck rate (both directions, separately), None = infinite.
    rate_bytes_per_sec: Option<u64>,
}

impl LinkConfig {
    fn clean() -> Self {
        Self {
            delay: Duration::from_millis(10),
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            rate_bytes_per_sec: None,
        }
    }
}

struct Sim {
    now: Instant,
    rng: Rng,
    link: LinkConfig,
    /// (arrival, seq) -> (to_b, bytes)
    in_flight: BinaryHeap<Reverse<(Instant, u64, bool, Vec<u8>)>>,
    seq: u64,
    /// Per direction: when the bottleneck is free again.
    busy_until: [Instant; 2],
    ep: [Endpoint; 2],
    addr: [SocketAddr; 2],
    datagrams: u64,
    max_queue_delay_after: (Instant, Duration),
}

impl Sim {
    fn new(seed: u64, link: LinkConfig) -> Self {
        let t0 = Instant::now();
        Self {
            now: t0,
            rng: Rng(seed | 1),
            link,
            in_flight: BinaryHeap::new(),
            seq: 0,
            busy_until: [t0; 2],
            ep: [
                Endpoint::new(t0, Config::default(), seed),
                Endpoint::new(t0, Config::default(), seed.wrapping_mul(31)),
            ],
            addr: [A.parse().unwrap(), B.parse().unwrap()],
            datagrams: 0,
            max_queue_delay_after: (t0 + Duration::from_secs(100_000), Duration::ZERO),
        }
    }

    /// Sends everything endpoint `i` has queued into the link.
    fn flush(&mut self, i: usize) {
        let mut buf = Vec::new();
        while let Some(t) = self.ep[i].poll_transmit(&mut buf) {
            assert_eq!(t.dst, self.addr[1 - i]);
            assert!(Packet::new_checked(&buf[..t.len]).is_ok());
            self.datagrams += 1;
            if self.rng.chance(self.link.loss) {
                continue;
            }
            let copies = if self.rng.chance(self.link.duplicate) { 2 } else { 1 };
            let mut depart = self.now;
            if let Some(rate) = self.link.rate_bytes_per_sec {
                let start = self.busy_until[i].max(self.now);
                let tx = Duration::from_nanos(t.len as u64 * 1_000_000_000 / rate);
                self.busy_until[i] = start + tx;
                depart = start + tx;
                if self.now >= self.max_queue_delay_after.0 {
                    let q = depart - self.now;
                    self.max_queue_delay_after.1 = self.max_queue_delay_after.1.max(q);
                }
            }
            for _ in 0..copies {
                let jitter = if self.link.jitter.is_zero() {
                    Duration::ZERO
                } else {
                    Duration::from_micros(self.rng.next() % self.link.jitter.as_micros() as u64)
                };
                self.seq += 1;
                self.in_flight.push(Reverse((
                    depart + self.link.delay + jitter,
                    self.seq,
                    i == 0,
                    buf[..t.len].to_vec(),
                )));
            }
        }
    }

    /// Advances to the next packet arrival or timer; returns false when nothing is pending.
    fn step(&mut self) -> bool {
        self.flush(0);
        self.flush(1);
        let next_pkt = self.in_flight.peek().map(|Reverse((t, ..))| *t);
        let next_timer = [self.ep[0].poll_timeout(), self.ep[1].poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let Some(next) = [next_pkt, next_timer].into_iter().flatten().min() else {
            return false;
        };
        self.now = self.now.max(next);
        while let Some(Reverse((t, ..))) = self.in_flight.peek() {
            if *t > self.now {
                break;
            }
            let Reverse((_, _, to_b, bytes)) = self.in_flight.pop().unwrap();
            let (dst, src) = if to_b { (1, 0) } else { (0, 1) };
            self.ep[dst].handle_datagram(self.now, self.addr[src], &bytes);
        }
        for i in 0..2 {
            if self.ep[i].poll_timeout().is_some_and(|t| t <= self.now) {
                self.ep[i].handle_timeout(self.now);
            }
        }
        true
    }
}

/// One side's application: writes `send`, reads into `received`, closes when done writing.
struct App {
    conn: Option<ConnId>,
    send: Vec<u8>,
    sent: usize,
    received: Vec<u8>,
    closed: Option<CloseReason>,
    close_called: bool,
}

impl App {
    fn new(send: Vec<u8>) -> Self {
        Self {
            conn: None,
            send,
            sent: 0,
            received: Vec::new(),
            closed: None,
            close_called: false,
        }
    }

    fn drive(&mut self, ep: &mut Endpoint) {
        while let Some(e) = ep.poll_event() {
            match e {
                Event::Incoming(c) | Event::Connected(c) => self.conn = Some(c),
                Event::Closed { reason, .. } => self.closed = Some(reason),
                Event::Readable(_) | Event::Writable(_) => {}
            }
        }
        let Some(c) = self.conn else { return };
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = ep.read(c, &mut buf);
            if n == 0 {
                break;
            }
            self.received.extend_from_slice(&buf[..n]);
        }
        while self.sent < self.send.len() {
            let n = ep.write(c, &self.send[self.sent..]);
            if n == 0 {
                break;
            }
            self.sent += n;
        }
        if self.sent == self.send.len() && !self.close_called && self.closed.is_none() {
            self.close_called = true;
            ep.close(c);
        }
        // Events produced by read/write/close are handled on the next call.
    }
}

struct Outcome {
    virtual_time: Duration,
    wall: Duration,
    datagrams: u64,
}

/// Transfers `bytes` each way over `link` and checks byte-exact delivery and a clean close on
/// both sides.
fn transfer(seed: u64, link: LinkConfig, bytes: usize) -> Outcome {
    let wall = Instant::now();
    let mut sim = Sim::new(seed, link);
    let mut rng = Rng(seed.wrapping_add(99));
    let mut apps = [App::new(rng.bytes(bytes)), App::new(rng.bytes(bytes))];
    let b_addr = sim.addr[1];
    let conn = sim.ep[0].connect(sim.now, b_addr).unwrap();
    apps[0].conn = Some(conn);
    let t0 = sim.now;
    let mut steps = 0u64;
    while apps.iter().any(|a| a.closed.is_none()) {
        steps += 1;
        assert!(steps < 3_000_000, "step bound hit");
        for i in 0..2 {
            apps[i].drive(&mut sim.ep[i]);
        }
        if !sim.step() {
            break;
        }
        if std::env::var("SIM_TRACE").is_ok() && steps % 50 == 0 {
            for (i, app) in apps.iter().enumerate() {
                let st = app.conn.and_then(|c| sim.ep[i].conn_stats(c));
                eprintln!("t={:?} side {i} sent {} recv {} {:?}", sim.now - t0, app.sent, app.received.len(), st);
            }
        }
    }
    for i in 0..2 {
        apps[i].drive(&mut sim.ep[i]); // read what arrived with the last packets
    }
    for (i, app) in apps.iter().enumerate() {
        assert_eq!(
            app.closed,
            Some(CloseReason::Graceful),
            "side {i} closed badly"
        );
        let other = &apps[1 - i];
        assert_eq!(app.received.len(), other.send.len(), "side {i} length");
        assert!(app.received == other.send, "side {i} bytes differ");
    }
    // Lingering connections go away once their timer fires.
    let mut guard = 0;
    while sim.step() {
        guard += 1;
        assert!(guard < 100_000);
    }
    assert_eq!(sim.ep[0].connections() + sim.ep[1].connections(), 0);
    Outcome {
        virtual_time: sim.now - t0,
        wall: wall.elapsed(),
        datagrams: sim.datagrams,
    }
}

const FOUR_MIB: usize = 4 << 20;

fn report(name: &str, o: &Outcome) {
    let mb = 2.0 * FOUR_MIB as f64 / 1e6;
    eprintln!(
        "{name}: 2 x 4 MiB in {:.2} s virtual ({:.2} MB/s), {} datagrams, {:.2} s wall",
        o.virtual_time.as_secs_f64(),
        mb / o.virtual_time.as_secs_f64(),
        o.datagrams,
        o.wall.as_secs_f64()
    );
}

#[test]
fn transfers_4mib_each_way_without_loss() {
    let o = transfer(1, LinkConfig::clean(), FOUR_MIB);
    report("0% loss", &o);
}

#[test]
fn transfers_4mib_each_way_at_5_percent_loss() {
    let link = LinkConfig {
        loss: 0.05,
        ..LinkConfig::clean()
    };
    let o = transfer(2, link, FOUR_MIB);
    report("5% loss", &o);
}

#[test]
fn transfers_4mib_each_way_at_20_percent_loss() {
    let link = LinkConfig {
        loss: 0.20,
        ..LinkConfig::clean()
    };
    let o = transfer(3, link, FOUR_MIB);
    report("20% loss", &o);
}

#[test]
fn transfers_with_reordering_duplication_and_loss() {
    let link = LinkConfig {
        delay: Duration::from_millis(20),
        jitter: Duration::from_millis(15),
        loss: 0.05,
        duplicate: 0.05,
        rate_bytes_per_sec: None,
    };
    let o = transfer(4, link, FOUR_MIB);
    report("reorder+dup+5% loss", &o);
}

#[test]
fn many_seeds_small_transfers_under_heavy_impairment() {
    for seed in 10..30 {
        let link = LinkConfig {
            delay: Duration::from_millis(5),
            jitter: Duration::from_millis(10),
            loss: 0.2,
            duplicate: 0.1,
            rate_bytes_per_sec: None,
        };
        transfer(seed, link, 64 * 1024 + seed as usize);
    }
}
