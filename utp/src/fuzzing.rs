//! The body of the `utp_packet` cargo-fuzz target, here so `cargo test` replays its seed corpus
//! on stable (`tests/fuzz_corpus.rs`). Not part of the protocol API.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use crate::limits::{MAX_CONNECTIONS, MAX_DATAGRAM_LEN};
use crate::{Config, Endpoint, Event, Packet};

/// The address fuzzed datagrams come from; the prepared connection's peer.
pub const PEER: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 6881));
const US: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 6881));

/// An endpoint with one established connection to [`PEER`] that has data in flight both ways,
/// plus the `connection_id` the peer must use and the time.
#[must_use]
#[allow(clippy::disallowed_methods)] // an epoch for the fuzz harness only; timers use `now` args
pub fn prepared_endpoint() -> (Endpoint, u16, Instant) {
    let t0 = Instant::now();
    let mut a = Endpoint::new(t0, Config::default(), 1);
    let mut b = Endpoint::new(t0, Config::default(), 2);
    let conn = a.connect(t0, PEER).expect("room");
    let mut buf = Vec::new();
    let mut b_conn = None;
    for _ in 0..8 {
        while let Some(t) = a.poll_transmit(&mut buf) {
            b.handle_datagram(t0, US, &buf[..t.len]);
        }
        while let Some(t) = b.poll_transmit(&mut buf) {
            a.handle_datagram(t0, PEER, &buf[..t.len]);
        }
        while let Some(e) = b.poll_event() {
            if let Event::Incoming(c) = e {
                b_conn = Some(c);
                let _ = b.write(c, &[7; 5000]);
            }
        }
        while a.poll_event().is_some() {}
    }
    let _ = a.write(conn, &[9; 5000]);
    while a.poll_transmit(&mut buf).is_some() {}
    let _ = b_conn;
    let recv_id = a.conns.values().next().map_or(0, |c| c.recv_id);
    (a, recv_id, t0)
}

/// Feeds `data` to a prepared endpoint as a sequence of datagrams and checks invariants: no
/// panic, every datagram sent parses and fits [`MAX_DATAGRAM_LEN`], the connection table stays
/// within its limit. Each chunk is `[len, flags, bytes…]`; flag bit 0 patches in the live
/// `connection_id`, bit 1 makes `seq_nr`/`ack_nr` plausible for the live connection, bits 2..
/// advance the clock in 100 ms steps and fire timers.
pub fn packet(data: &[u8]) {
    let _ = Packet::new_checked(data);
    let _ = crate::looks_like_utp(data);
    let (mut ep, recv_id, mut now) = prepared_endpoint();
    let mut rest = data;
    let mut buf = Vec::new();
    let mut steps = 0;
    while let [len, flags, tail @ ..] = rest {
        steps += 1;
        if steps > 256 {
            break;
        }
        let len = usize::from(*len).min(tail.len());
        let mut dgram = tail[..len].to_vec();
        rest = &tail[len..];
        if flags & 1 == 1 && dgram.len() >= 4 {
            dgram[2..4].copy_from_slice(&recv_id.to_be_bytes());
        }
        if flags & 2 == 2
            && dgram.len() >= 20
            && let Some((next_seq, ack_nr)) = ep.conns.values().next().map(|c| c.seq_numbers())
        {
            // Make seq_nr/ack_nr plausible so the fuzzer reaches delivery, SACK and loss paths.
            let seq = ack_nr.wrapping_add(1 + u16::from(dgram[17] % 16));
            let ack = next_seq.wrapping_sub(1 + u16::from(dgram[19] % 8));
            dgram[16..18].copy_from_slice(&seq.to_be_bytes());
            dgram[18..20].copy_from_slice(&ack.to_be_bytes());
        }
        now += Duration::from_millis(100 * u64::from(flags >> 2));
        ep.handle_datagram(now, PEER, &dgram);
        ep.handle_timeout(now);
        let mut sent = 0;
        while let Some(t) = ep.poll_transmit(&mut buf) {
            assert!(t.len <= MAX_DATAGRAM_LEN && t.len == buf.len());
            assert!(
                Packet::new_checked(&buf).is_ok(),
                "we sent a malformed packet"
            );
            sent += 1;
            assert!(sent < 10_000, "unbounded output");
        }
        while ep.poll_event().is_some() {}
        ep.check_invariants();
        assert!(ep.connections() <= MAX_CONNECTIONS);
        if let Some(t) = ep.poll_timeout() {
            assert!(t >= now || ep.connections() > 0);
        }
    }
}
