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

/// (arrival, tie-break, towards B, datagram)
type InFlight = (Instant, u64, bool, Vec<u8>);

struct Sim {
    now: Instant,
    rng: Rng,
    link: LinkConfig,
    /// (arrival, seq) -> (to_b, bytes)
    in_flight: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    /// Per direction: when the bottleneck is free again.
    busy_until: [Instant; 2],
    ep: [Endpoint; 2],
    addr: [SocketAddr; 2],
    datagrams: u64,
    steps: u64,
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
            steps: 0,
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
            let copies = if self.rng.chance(self.link.duplicate) {
                2
            } else {
                1
            };
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
        self.steps += 1;
        if self.steps.is_multiple_of(97) {
            self.ep[0].check_invariants();
            self.ep[1].check_invariants();
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
        for (app, ep) in apps.iter_mut().zip(&mut sim.ep) {
            app.drive(ep);
        }
        if !sim.step() {
            break;
        }
        if std::env::var("SIM_TRACE").is_ok() && steps.is_multiple_of(50) {
            for (i, app) in apps.iter().enumerate() {
                let st = app.conn.and_then(|c| sim.ep[i].conn_stats(c));
                eprintln!(
                    "t={:?} side {i} sent {} recv {} {:?}",
                    sim.now - t0,
                    app.sent,
                    app.received.len(),
                    st
                );
            }
        }
    }
    for (app, ep) in apps.iter_mut().zip(&mut sim.ep) {
        app.drive(ep); // read what arrived with the last packets
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

/// A runs an endless upload to B (B only reads) for `duration` of virtual time.
/// Returns the bytes B read.
fn stream(sim: &mut Sim, conns: &mut [Option<ConnId>; 2], duration: Duration) -> usize {
    let [conn, b_conn] = conns;
    let end = sim.now + duration;
    let chunk = [0x5a_u8; 64 * 1024];
    let mut buf = [0u8; 64 * 1024];
    let mut steps = 0u64;
    let mut read = 0;
    while sim.now < end {
        steps += 1;
        assert!(steps < 5_000_000, "step bound hit");
        while let Some(e) = sim.ep[0].poll_event() {
            if let Event::Connected(c) = e {
                *conn = Some(c);
            }
            assert!(!matches!(e, Event::Closed { .. }), "A closed: {e:?}");
        }
        while let Some(e) = sim.ep[1].poll_event() {
            if let Event::Incoming(c) = e {
                *b_conn = Some(c);
            }
        }
        if let Some(c) = *conn {
            while sim.ep[0].write(c, &chunk) > 0 {}
        }
        if let Some(c) = *b_conn {
            loop {
                let n = sim.ep[1].read(c, &mut buf);
                if n == 0 {
                    break;
                }
                read += n;
            }
        }
        assert!(sim.step());
    }
    read
}

/// A bottleneck of 1 MB/s: LEDBAT fills it but keeps the queue near the 100 ms target instead
/// of filling the 512 KiB send buffer into it (which would be a 500 ms queue).
#[test]
fn ledbat_keeps_bottleneck_queue_near_target() {
    let link = LinkConfig {
        rate_bytes_per_sec: Some(1_000_000),
        ..LinkConfig::clean()
    };
    let mut sim = Sim::new(7, link);
    let b = sim.addr[1];
    let mut conn = [Some(sim.ep[0].connect(sim.now, b).unwrap()), None];
    stream(&mut sim, &mut conn, Duration::from_secs(20));
    let c = conn[0].unwrap();
    sim.max_queue_delay_after = (sim.now, Duration::ZERO);
    let t = sim.now;
    let read = stream(&mut sim, &mut conn, Duration::from_secs(20));
    let st = sim.ep[0].conn_stats(c).unwrap();
    let rate = read as f64 / (sim.now - t).as_secs_f64();
    let q = sim.max_queue_delay_after.1;
    eprintln!(
        "bottleneck 1 MB/s: {:.0} kB/s, max queue {q:?}, cwnd {} B, queuing delay {:?}",
        rate / 1e3,
        st.cwnd,
        st.queuing_delay
    );
    assert!(rate > 800_000.0, "LEDBAT should fill the link: {rate}");
    assert!(
        q < Duration::from_millis(180),
        "queue {q:?} far above the 100 ms target"
    );
    assert!(
        st.cwnd < 200_000,
        "cwnd {} grew past the pipe + target",
        st.cwnd
    );
}

/// The one-way delay jumps by 200 ms (twice the target; the RTT stays under the 500 ms minimum
/// RTO, so no timeout interferes): LEDBAT alone shrinks the window by more than half.
#[test]
fn ledbat_backs_off_when_queuing_delay_exceeds_target() {
    let mut sim = Sim::new(8, LinkConfig::clean());
    let b = sim.addr[1];
    let mut conn = [Some(sim.ep[0].connect(sim.now, b).unwrap()), None];
    stream(&mut sim, &mut conn, Duration::from_secs(3));
    let c = conn[0].unwrap();
    let grown = sim.ep[0].conn_stats(c).unwrap();
    sim.link.delay += Duration::from_millis(200);
    stream(&mut sim, &mut conn, Duration::from_secs(60));
    let after = sim.ep[0].conn_stats(c).unwrap();
    assert_eq!(
        after.timeouts, grown.timeouts,
        "a timeout, not LEDBAT, shrank the window"
    );
    assert_eq!(after.fast_retransmits, grown.fast_retransmits);
    eprintln!(
        "delay step: cwnd {} -> {} B, queuing delay {:?}",
        grown.cwnd, after.cwnd, after.queuing_delay
    );
    assert!(
        grown.cwnd > 100_000,
        "cwnd should have grown: {}",
        grown.cwnd
    );
    assert!(after.queuing_delay >= Duration::from_millis(150));
    assert!(
        after.cwnd < grown.cwnd / 2,
        "{} !< {}/2",
        after.cwnd,
        grown.cwnd
    );
}

fn state_packet(cid: u16, seq: u16, ack: u16, wnd: u32) -> Vec<u8> {
    let mut out = Vec::new();
    packet::encode(
        &mut out,
        &Header {
            ty: PacketType::State,
            connection_id: cid,
            timestamp_us: 1,
            timestamp_difference_us: 0,
            wnd_size: wnd,
            seq_nr: seq,
            ack_nr: ack,
        },
        None,
        &[],
    );
    out
}

/// Connects A to a hand-driven peer; returns A's endpoint, conn, the SYN's connection id and
/// seq_nr, and the time.
fn connect_to_fake_peer() -> (Endpoint, ConnId, u16, u16, Instant, SocketAddr) {
    let t0 = Instant::now();
    let peer: SocketAddr = B.parse().unwrap();
    let mut a = Endpoint::new(t0, Config::default(), 5);
    let c = a.connect(t0, peer).unwrap();
    let mut buf = Vec::new();
    let t = a.poll_transmit(&mut buf).unwrap();
    let syn = Packet::new_checked(&buf[..t.len]).unwrap();
    assert_eq!(syn.packet_type(), PacketType::Syn);
    let (cid, seq) = (syn.connection_id(), syn.seq_nr());
    a.handle_datagram(t0, peer, &state_packet(cid, 1000, seq, 65536));
    assert_eq!(a.poll_event(), Some(Event::Connected(c)));
    (a, c, cid, seq, t0, peer)
}

fn expect_reset_and_close(a: &mut Endpoint, c: ConnId) -> ConnectionError {
    let mut buf = Vec::new();
    let mut saw_reset = false;
    while let Some(t) = a.poll_transmit(&mut buf) {
        saw_reset |= Packet::new_checked(&buf[..t.len]).unwrap().packet_type() == PacketType::Reset;
    }
    assert!(saw_reset, "the liar gets an ST_RESET");
    match a.poll_event() {
        Some(Event::Closed {
            conn,
            reason: CloseReason::Error(e),
        }) if conn == c => {
            assert_eq!(a.connections(), 0, "forgotten");
            e
        }
        other => panic!("expected Closed with an error, got {other:?}"),
    }
}

#[test]
fn peer_acking_unsent_data_is_disconnected() {
    let (mut a, c, cid, syn_seq, t0, peer) = connect_to_fake_peer();
    assert_eq!(a.write(c, b"hello"), 5);
    let mut buf = Vec::new();
    while a.poll_transmit(&mut buf).is_some() {}
    // We sent SYN (syn_seq) and one data packet (syn_seq + 1); ack syn_seq + 5.
    a.handle_datagram(
        t0,
        peer,
        &state_packet(cid, 1000, syn_seq.wrapping_add(5), 65536),
    );
    let e = expect_reset_and_close(&mut a, c);
    assert_eq!(
        e,
        ConnectionError::AckedUnsent {
            ack_nr: syn_seq.wrapping_add(5),
            last_sent: syn_seq.wrapping_add(1)
        }
    );
}

#[test]
fn peer_advertising_absurd_window_is_disconnected() {
    let (mut a, c, cid, syn_seq, t0, peer) = connect_to_fake_peer();
    a.handle_datagram(t0, peer, &state_packet(cid, 1000, syn_seq, u32::MAX));
    let e = expect_reset_and_close(&mut a, c);
    assert!(matches!(
        e,
        ConnectionError::WindowAbsurd { got: u32::MAX, .. }
    ));
}

#[test]
fn syns_beyond_the_connection_limit_get_a_reset_no_larger_than_the_syn() {
    let t0 = Instant::now();
    let mut b = Endpoint::new(t0, Config { max_connections: 2 }, 9);
    let mut buf = Vec::new();
    for i in 0..3u16 {
        let src: SocketAddr = format!("10.0.1.{}:1000", i + 1).parse().unwrap();
        let mut syn = Vec::new();
        packet::encode(
            &mut syn,
            &Header {
                ty: PacketType::Syn,
                connection_id: 100 + i,
                timestamp_us: 0,
                timestamp_difference_us: 0,
                wnd_size: 65536,
                seq_nr: 1,
                ack_nr: 0,
            },
            None,
            &[],
        );
        b.handle_datagram(t0, src, &syn);
        let t = b.poll_transmit(&mut buf).unwrap();
        assert_eq!(t.dst, src);
        assert!(t.len <= syn.len());
        let reply = Packet::new_checked(&buf[..t.len]).unwrap();
        if i < 2 {
            assert_eq!(reply.packet_type(), PacketType::State);
            assert_eq!(
                reply.connection_id(),
                100 + i,
                "BEP 29: acceptor sends with the SYN's id"
            );
            assert_eq!(reply.ack_nr(), 1);
            assert!(matches!(b.poll_event(), Some(Event::Incoming(_))));
        } else {
            assert_eq!(reply.packet_type(), PacketType::Reset);
            assert_eq!(b.poll_event(), None);
        }
    }
    assert_eq!(b.connections(), 2);
    assert_eq!(b.stats().syns_refused, 1);
}

#[test]
fn connect_gives_up_after_bounded_syns() {
    let t0 = Instant::now();
    let mut a = Endpoint::new(t0, Config::default(), 11);
    let c = a.connect(t0, B.parse().unwrap()).unwrap();
    let mut buf = Vec::new();
    let mut syns = 0;
    let mut now = t0;
    for _ in 0..100 {
        while a.poll_transmit(&mut buf).is_some() {
            syns += 1;
        }
        if let Some(Event::Closed { conn, reason }) = a.poll_event() {
            assert_eq!(conn, c);
            assert!(matches!(
                reason,
                CloseReason::Error(ConnectionError::ConnectTimedOut { .. })
            ));
            assert_eq!(syns, seednode_utp::limits::MAX_SYN_TRANSMISSIONS);
            assert!(now - t0 < Duration::from_secs(20));
            assert_eq!(a.connections(), 0);
            return;
        }
        now = a.poll_timeout().expect("SYN timer armed");
        a.handle_timeout(now);
    }
    panic!("never gave up");
}

#[test]
fn half_open_connection_from_a_spoofed_syn_is_freed_silently() {
    let t0 = Instant::now();
    let mut b = Endpoint::new(t0, Config::default(), 12);
    let mut syn = Vec::new();
    packet::encode(
        &mut syn,
        &Header {
            ty: PacketType::Syn,
            connection_id: 4242,
            timestamp_us: 0,
            timestamp_difference_us: 0,
            wnd_size: 65536,
            seq_nr: 1,
            ack_nr: 0,
        },
        None,
        &[],
    );
    let spoofed: SocketAddr = "198.51.100.7:6881".parse().unwrap();
    b.handle_datagram(t0, spoofed, &syn);
    let mut buf = Vec::new();
    assert!(
        b.poll_transmit(&mut buf).is_some(),
        "the SYN is answered once"
    );
    assert!(matches!(b.poll_event(), Some(Event::Incoming(_))));
    let deadline = b.poll_timeout().unwrap();
    assert_eq!(deadline - t0, seednode_utp::limits::SYN_RECV_TIMEOUT);
    b.handle_timeout(deadline);
    assert!(
        b.poll_transmit(&mut buf).is_none(),
        "no reset to a spoofed address"
    );
    assert!(matches!(
        b.poll_event(),
        Some(Event::Closed {
            reason: CloseReason::Error(ConnectionError::HandshakeTimedOut { .. }),
            ..
        })
    ));
    assert_eq!(b.connections(), 0);
}
