//! One uTP connection's state machine (BEP 29 §Connection setup, §Congestion control,
//! §Timeouts): sequence and acknowledgement numbers (u16, wrapping), in-order delivery through
//! a bounded reorder buffer, selective ACKs both ways, fast retransmit, RTT/RTO, LEDBAT, FIN and
//! RESET. Driven by [`crate::Endpoint`]; never touches a socket or a clock.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::ledbat::Ledbat;
use crate::limits::{
    CLOSE_LINGER, IDLE_TIMEOUT, INITIAL_RTO, KEEPALIVE_INTERVAL, MAX_IN_FLIGHT_PACKETS,
    MAX_PAYLOAD_LEN, MAX_PEER_WINDOW_BYTES, MAX_REORDER_PACKETS, MAX_RTO, MAX_SACK_LEN,
    MAX_SYN_TRANSMISSIONS, MAX_TRANSMISSIONS, MIN_RTO, RECV_BUFFER_BYTES, SEND_BUFFER_BYTES,
    SYN_RECV_TIMEOUT,
};
use crate::packet::{self, Header, Packet, PacketType, seq_less};
use crate::{ConnId, Event};

/// Why a connection was closed because of what the peer did (or did not do).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConnectionError {
    /// The peer acknowledged a sequence number we never sent: a lie (or a blind injection).
    #[error("peer acked seq_nr {ack_nr}, but the last one sent is {last_sent}")]
    AckedUnsent {
        /// The `ack_nr` received.
        ack_nr: u16,
        /// Our last sent sequence number.
        last_sent: u16,
    },
    /// The peer advertised a receive window larger than any real client has.
    #[error("peer advertised a window of {got} bytes (limit {limit})")]
    WindowAbsurd {
        /// `wnd_size` received, bytes.
        got: u32,
        /// [`MAX_PEER_WINDOW_BYTES`].
        limit: u32,
    },
    /// A packet was sent [`MAX_TRANSMISSIONS`] times without being acknowledged.
    #[error("no acknowledgement after {transmissions} transmissions")]
    TooManyRetransmissions {
        /// Transmissions of the oldest unacknowledged packet.
        transmissions: u32,
    },
    /// The SYN was sent [`MAX_SYN_TRANSMISSIONS`] times without an answer.
    #[error("no answer to {transmissions} SYNs")]
    ConnectTimedOut {
        /// SYNs sent.
        transmissions: u32,
    },
    /// We answered a SYN and nothing followed for [`SYN_RECV_TIMEOUT`] (a spoofed or vanished
    /// initiator).
    #[error("no packet after the SYN for {waited:?}")]
    HandshakeTimedOut {
        /// How long we waited.
        waited: Duration,
    },
    /// Nothing arrived for [`IDLE_TIMEOUT`].
    #[error("nothing received for {idle:?}")]
    IdleTimeout {
        /// The silence.
        idle: Duration,
    },
}

/// How a connection ended, in [`Event::Closed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// Both sides sent FIN and both FINs were acknowledged.
    Graceful,
    /// The peer sent `ST_RESET`.
    Reset,
    /// The peer misbehaved or went away.
    Error(ConnectionError),
}

/// Per-connection counters and congestion state, for tests and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnStats {
    /// Congestion window, bytes.
    pub cwnd: usize,
    /// The peer's last advertised window, bytes.
    pub peer_window: usize,
    /// Bytes sent and not yet acknowledged (selectively acked excluded).
    pub bytes_in_flight: usize,
    /// Smoothed RTT.
    pub rtt: Duration,
    /// Current retransmission timeout.
    pub rto: Duration,
    /// Latest LEDBAT queuing delay.
    pub queuing_delay: Duration,
    /// Datagrams sent (all types).
    pub packets_sent: u64,
    /// Data or FIN packets sent again.
    pub retransmissions: u64,
    /// Packets lost by fast retransmit (3 duplicate ACKs or SACK evidence).
    pub fast_retransmits: u64,
    /// Retransmission timeouts.
    pub timeouts: u64,
    /// Datagrams received for this connection.
    pub packets_received: u64,
    /// Out-of-order packets held now.
    pub reordered_held: usize,
    /// Our FIN was sent.
    pub fin_sent: bool,
    /// Our FIN was acknowledged.
    pub fin_acked: bool,
    /// The peer's FIN arrived and everything before it too.
    pub peer_finished: bool,
}

/// The state of a connection (BEP 29 §Connection setup).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// We sent a SYN and wait for the `ST_STATE` answering it.
    SynSent,
    /// We answered a SYN; we send no data until the initiator's first packet after its SYN
    /// arrives, so our answer's `seq_nr` stays the one a retransmitted SYN is answered with
    /// (if the answer and our first data were lost, the initiator would otherwise skip data).
    SynRecv,
    /// Established, including the half-closed phases (`fin_seq` / `peer_fin`).
    Connected,
    /// Finished; kept until the caller has read what was received.
    Closed,
}

#[derive(Debug, Clone)]
struct Sent {
    seq: u16,
    ty: PacketType,
    payload: Vec<u8>,
    sent_at: Option<Instant>,
    transmissions: u32,
    need_resend: bool,
    sacked: bool,
    fast_resent: bool,
}

/// The caller's clock at this input: `now`, and our µs timestamp derived from it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    pub(crate) now: Instant,
    pub(crate) us: u32,
}

/// The sequence numbers a selective-ACK bitmask acknowledges: bit `j` of byte `i` is
/// `ack_nr + 2 + 8 * i + j` (BEP 29 §Extension).
pub(crate) fn sack_seqs(ack_nr: u16, mask: &[u8]) -> impl Iterator<Item = u16> + '_ {
    mask.iter().enumerate().flat_map(move |(i, byte)| {
        (0..8u16)
            .filter(move |j| byte >> j & 1 == 1)
            .map(move |j| ack_nr.wrapping_add(2 + 8 * i as u16 + j))
    })
}

/// Copies the front of `from` into `to` (as much as fits) with two `memcpy`s; returns the count.
fn copy_front(from: &VecDeque<u8>, to: &mut [u8]) -> usize {
    let (a, b) = from.as_slices();
    let n = to.len().min(from.len());
    let na = n.min(a.len());
    to[..na].copy_from_slice(&a[..na]);
    to[na..n].copy_from_slice(&b[..n - na]);
    n
}

#[derive(Debug, Clone)]
pub(crate) struct Connection {
    pub(crate) id: ConnId,
    pub(crate) remote: SocketAddr,
    pub(crate) recv_id: u16,
    pub(crate) send_id: u16,
    pub(crate) state: State,
    pub(crate) incoming: bool,
    seq_nr: u16,
    ack_nr: u16,
    // Sending.
    send_buf: VecDeque<u8>,
    in_flight: VecDeque<Sent>,
    bytes_in_flight: usize,
    /// Packets in `in_flight` with `need_resend` (kept so no send path scans the queue).
    resends: usize,
    /// Packets in `in_flight` with `sacked`.
    sacked: usize,
    unacked_bytes: usize,
    close_requested: bool,
    fin_seq: Option<u16>,
    fin_acked: bool,
    write_blocked: bool,
    // Receiving.
    recv_buf: VecDeque<u8>,
    /// Index `i` holds `ack_nr + 1 + i`; index 0 is always empty.
    reorder: VecDeque<Option<Vec<u8>>>,
    reorder_bytes: usize,
    peer_fin: Option<u16>,
    eof: bool,
    read_notified: bool,
    // Acknowledgements and timers.
    ack_pending: bool,
    reset_pending: bool,
    last_ack_seen: Option<u16>,
    dup_acks: u32,
    loss_epoch_end: Option<u16>,
    rtt_us: Option<(i64, i64)>,
    rto: Duration,
    /// The RTO from the RTT estimate, before timeout doubling (restored on progress).
    rto_base: Duration,
    rto_deadline: Option<Instant>,
    last_recv: Instant,
    last_send: Instant,
    reply_micro: u32,
    peer_wnd: usize,
    ledbat: Ledbat,
    stats: ConnStats,
    /// Set on a graceful close: until then retransmitted FINs are acknowledged again.
    linger_until: Option<Instant>,
    created: Instant,
}

impl Connection {
    fn blank(id: ConnId, remote: SocketAddr, now: Instant, recv_id: u16, send_id: u16) -> Self {
        Self {
            id,
            remote,
            recv_id,
            send_id,
            state: State::SynSent,
            incoming: false,
            seq_nr: 0,
            ack_nr: 0,
            send_buf: VecDeque::new(),
            in_flight: VecDeque::new(),
            bytes_in_flight: 0,
            resends: 0,
            sacked: 0,
            unacked_bytes: 0,
            close_requested: false,
            fin_seq: None,
            fin_acked: false,
            write_blocked: false,
            recv_buf: VecDeque::new(),
            reorder: VecDeque::new(),
            reorder_bytes: 0,
            peer_fin: None,
            eof: false,
            read_notified: false,
            ack_pending: false,
            reset_pending: false,
            last_ack_seen: None,
            dup_acks: 0,
            loss_epoch_end: None,
            rtt_us: None,
            rto: INITIAL_RTO,
            rto_base: INITIAL_RTO,
            rto_deadline: None,
            last_recv: now,
            last_send: now,
            reply_micro: 0,
            peer_wnd: MAX_PAYLOAD_LEN,
            ledbat: Ledbat::new(),
            stats: ConnStats::default(),
            linger_until: None,
            created: now,
        }
    }

    /// An outgoing connection: BEP 29 picks `recv_id` at random, `send_id = recv_id + 1`, and
    /// queues the SYN (whose `connection_id` is `recv_id`).
    pub(crate) fn outgoing(
        id: ConnId,
        remote: SocketAddr,
        now: Instant,
        recv_id: u16,
        initial_seq: u16,
    ) -> Self {
        let mut c = Self::blank(id, remote, now, recv_id, recv_id.wrapping_add(1));
        c.seq_nr = initial_seq.wrapping_add(1);
        c.in_flight.push_back(Sent {
            seq: initial_seq,
            ty: PacketType::Syn,
            payload: Vec::new(),
            sent_at: None,
            transmissions: 0,
            need_resend: true,
            sacked: false,
            fast_resent: false,
        });
        c.resends = 1;
        c
    }

    /// An incoming connection from a SYN: `send_id` = the SYN's `connection_id`, `recv_id` one
    /// more, `ack_nr` the SYN's `seq_nr`; the `ST_STATE` answer is queued.
    pub(crate) fn incoming(
        id: ConnId,
        remote: SocketAddr,
        clk: Clock,
        syn: &Packet<'_>,
        initial_seq: u16,
    ) -> Self {
        let cid = syn.connection_id();
        let mut c = Self::blank(id, remote, clk.now, cid.wrapping_add(1), cid);
        c.incoming = true;
        c.state = State::SynRecv;
        c.seq_nr = initial_seq;
        c.ack_nr = syn.seq_nr();
        c.reply_micro = clk.us.wrapping_sub(syn.timestamp_us());
        c.peer_wnd = (syn.wnd_size().min(MAX_PEER_WINDOW_BYTES)) as usize;
        c.ack_pending = true;
        c
    }

    /// Panics if a cached counter disagrees with the queues (fuzz and simulation harnesses).
    pub(crate) fn check_invariants(&self) {
        let resends = self.in_flight.iter().filter(|s| s.need_resend).count();
        let sacked = self.in_flight.iter().filter(|s| s.sacked).count();
        let flying: usize = self
            .in_flight
            .iter()
            .filter(|s| !s.sacked && !s.need_resend)
            .map(|s| s.payload.len())
            .sum();
        let unacked: usize = self.in_flight.iter().map(|s| s.payload.len()).sum();
        let reorder: usize = self.reorder.iter().flatten().map(Vec::len).sum();
        assert_eq!(self.resends, resends, "resend count");
        assert_eq!(self.sacked, sacked, "sacked count");
        assert_eq!(self.bytes_in_flight, flying, "bytes in flight");
        assert_eq!(self.unacked_bytes, unacked, "unacked bytes");
        assert_eq!(self.reorder_bytes, reorder, "reorder bytes");
        assert!(self.in_flight.len() <= MAX_IN_FLIGHT_PACKETS + 2);
        assert!(self.reorder.len() <= MAX_REORDER_PACKETS);
        assert!(self.send_buf.len() + self.unacked_bytes <= SEND_BUFFER_BYTES);
        assert!(self.recv_buf.len() + self.reorder_bytes <= RECV_BUFFER_BYTES);
        for w in self.in_flight.iter().zip(self.in_flight.iter().skip(1)) {
            assert_eq!(
                w.0.seq.wrapping_add(1),
                w.1.seq,
                "in-flight seq_nrs contiguous"
            );
        }
    }

    /// (next `seq_nr` to send, last `ack_nr` received in order), for the fuzz harness.
    pub(crate) fn seq_numbers(&self) -> (u16, u16) {
        (self.seq_nr, self.ack_nr)
    }

    pub(crate) fn stats(&self) -> ConnStats {
        ConnStats {
            cwnd: self.ledbat.cwnd(),
            peer_window: self.peer_wnd,
            bytes_in_flight: self.bytes_in_flight,
            rtt: Duration::from_micros(self.rtt_us.map_or(0, |(r, _)| r.max(0) as u64)),
            rto: self.rto,
            queuing_delay: self.ledbat.queuing_delay(),
            reordered_held: self.reorder.iter().flatten().count(),
            fin_sent: self.fin_seq.is_some(),
            fin_acked: self.fin_acked,
            peer_finished: self.eof,
            ..self.stats.clone()
        }
    }

    fn fail(&mut self, err: ConnectionError, events: &mut VecDeque<Event>) {
        self.reset_pending = true;
        self.finish(CloseReason::Error(err), events);
    }

    fn finish(&mut self, reason: CloseReason, events: &mut VecDeque<Event>) {
        if self.state == State::Closed {
            return;
        }
        self.state = State::Closed;
        self.rto_deadline = None;
        if reason != CloseReason::Graceful {
            self.ack_pending = false;
        }
        events.push_back(Event::Closed {
            conn: self.id,
            reason,
        });
    }

    /// True once the endpoint may forget this connection: closed, nothing left to send, and
    /// everything received read (or the close was not graceful).
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Closed
            && !self.reset_pending
            && !self.ack_pending
            && self.linger_until.is_none()
            && self.recv_buf.is_empty()
    }

    fn window(&self) -> usize {
        self.ledbat.cwnd().min(self.peer_wnd)
    }

    fn advertised_window(&self) -> u32 {
        let used = self.recv_buf.len() + self.reorder_bytes;
        RECV_BUFFER_BYTES.saturating_sub(used) as u32
    }

    // ----------------------------------------------------------------------------------------
    // Stream API
    // ----------------------------------------------------------------------------------------

    pub(crate) fn write(&mut self, data: &[u8]) -> usize {
        if self.state == State::Closed || self.close_requested {
            return 0;
        }
        let space = SEND_BUFFER_BYTES.saturating_sub(self.send_buf.len() + self.unacked_bytes);
        let n = space.min(data.len());
        self.send_buf.extend(&data[..n]);
        if n < data.len() {
            self.write_blocked = true;
        }
        n
    }

    pub(crate) fn read(&mut self, buf: &mut [u8]) -> usize {
        let n = copy_front(&self.recv_buf, buf);
        self.recv_buf.drain(..n);
        if self.recv_buf.is_empty() {
            self.read_notified = false;
        }
        if n > 0 && self.state != State::Closed {
            // The window reopened: tell the peer if it had (nearly) closed.
            if self.advertised_window() as usize >= MAX_PAYLOAD_LEN
                && (self.advertised_window() as usize) < 2 * MAX_PAYLOAD_LEN + n
            {
                self.ack_pending = true;
            }
        }
        n
    }

    pub(crate) fn is_eof(&self) -> bool {
        self.eof && self.recv_buf.is_empty()
    }

    pub(crate) fn close(&mut self) {
        if self.state != State::Closed {
            self.close_requested = true;
        }
    }

    // ----------------------------------------------------------------------------------------
    // Input
    // ----------------------------------------------------------------------------------------

    pub(crate) fn handle_packet(
        &mut self,
        clk: Clock,
        p: &Packet<'_>,
        events: &mut VecDeque<Event>,
    ) {
        if self.state == State::Closed {
            // Lingering after a graceful close: our last ACK may have been lost.
            if self.linger_until.is_some()
                && matches!(p.packet_type(), PacketType::Fin | PacketType::Data)
            {
                self.ack_pending = true;
            }
            return;
        }
        self.stats.packets_received += 1;
        self.last_recv = clk.now;
        self.reply_micro = clk.us.wrapping_sub(p.timestamp_us());
        match p.packet_type() {
            PacketType::Reset => {
                self.finish(CloseReason::Reset, events);
                return;
            }
            PacketType::Syn => {
                // Our ST_STATE was lost: answer the retransmitted SYN again.
                if self.incoming {
                    self.ack_pending = true;
                }
                return;
            }
            _ => {}
        }
        if p.wnd_size() > MAX_PEER_WINDOW_BYTES {
            self.fail(
                ConnectionError::WindowAbsurd {
                    got: p.wnd_size(),
                    limit: MAX_PEER_WINDOW_BYTES,
                },
                events,
            );
            return;
        }
        self.peer_wnd = p.wnd_size() as usize;
        if self.state == State::SynSent {
            let syn_seq = self.seq_nr.wrapping_sub(1);
            if p.ack_nr() != syn_seq {
                return;
            }
            self.state = State::Connected;
            // The answer's seq_nr is the acceptor's first data seq_nr (BEP 29).
            self.ack_nr = p.seq_nr().wrapping_sub(1);
            events.push_back(Event::Connected(self.id));
            // The acceptor sends nothing until our first packet after the SYN (SynRecv).
            self.ack_pending = true;
        } else if self.state == State::SynRecv {
            self.state = State::Connected;
        }
        if p.timestamp_difference_us() != 0 {
            self.ledbat
                .on_delay_sample(clk.now, p.timestamp_difference_us());
        }
        if !self.handle_ack(clk, p, events) {
            return;
        }
        match p.packet_type() {
            PacketType::Data => self.on_data(p.seq_nr(), p.payload(), false, events),
            PacketType::Fin => self.on_data(p.seq_nr(), p.payload(), true, events),
            _ => {}
        }
        self.check_graceful(clk.now, events);
    }

    /// Processes `ack_nr` and the selective ACK. Returns false if the connection failed.
    fn handle_ack(&mut self, clk: Clock, p: &Packet<'_>, events: &mut VecDeque<Event>) -> bool {
        let ack = p.ack_nr();
        let last_sent = self.seq_nr.wrapping_sub(1);
        if seq_less(last_sent, ack) {
            self.fail(
                ConnectionError::AckedUnsent {
                    ack_nr: ack,
                    last_sent,
                },
                events,
            );
            return false;
        }
        let mut acked_bytes = 0;
        let mut progressed = false;
        while let Some(front) = self.in_flight.front() {
            if seq_less(ack, front.seq) {
                break;
            }
            let Some(s) = self.in_flight.pop_front() else {
                break;
            };
            progressed = true;
            if s.need_resend {
                self.resends -= 1;
            }
            if s.sacked {
                self.sacked -= 1;
            } else {
                acked_bytes += s.payload.len();
                if !s.need_resend {
                    self.bytes_in_flight -= s.payload.len();
                }
                // Only the packet this ACK names: older ones may have waited for a lost ACK.
                if s.seq == ack {
                    self.rtt_sample(clk.now, &s);
                }
            }
            self.unacked_bytes -= s.payload.len();
            if Some(s.seq) == self.fin_seq {
                self.fin_acked = true;
            }
        }
        if let Some(mask) = p.sack() {
            for seq in sack_seqs(ack, mask) {
                let Some(front) = self.in_flight.front() else {
                    break;
                };
                let idx = usize::from(seq.wrapping_sub(front.seq));
                let Some(s) = self.in_flight.get_mut(idx) else {
                    continue; // beyond what is in flight: ignored
                };
                if s.sacked {
                    continue;
                }
                s.sacked = true;
                self.sacked += 1;
                acked_bytes += s.payload.len();
                if s.need_resend {
                    s.need_resend = false;
                    self.resends -= 1;
                } else {
                    self.bytes_in_flight -= s.payload.len();
                }
                let s = s.clone();
                self.rtt_sample(clk.now, &s);
            }
        }
        // Duplicate ACKs: a pure ST_STATE acking the same number while data is outstanding.
        let pure_state = p.packet_type() == PacketType::State && p.payload().is_empty();
        if progressed {
            self.dup_acks = 0;
        } else if pure_state && self.last_ack_seen == Some(ack) && !self.in_flight.is_empty() {
            self.dup_acks += 1;
        }
        self.last_ack_seen = Some(ack);
        self.detect_losses(ack);
        if acked_bytes > 0 {
            self.ledbat.on_ack(acked_bytes);
        }
        if progressed {
            // Progress ends the timeout back-off (the estimate may be stale under Karn's rule).
            self.rto = self.rto_base;
            self.rto_deadline = (!self.in_flight.is_empty()).then(|| clk.now + self.rto);
        }
        if self.write_blocked
            && self.send_buf.len() + self.unacked_bytes < SEND_BUFFER_BYTES
            && self.state == State::Connected
        {
            self.write_blocked = false;
            events.push_back(Event::Writable(self.id));
        }
        true
    }

    /// Marks packets lost: the oldest after three duplicate ACKs, and any packet with at least
    /// three selectively acknowledged packets after it (BEP 29 §Selective ACK, like TCP's
    /// RFC 6675). Each packet is fast-retransmitted at most once; the window halves at most once
    /// per window of data.
    fn detect_losses(&mut self, ack: u16) {
        let mut lost = Vec::new();
        if self.dup_acks >= 3
            && let Some(front) = self.in_flight.front()
            && !front.sacked
            && !front.fast_resent
            && !front.need_resend
        {
            lost.push(0);
        }
        let mut sacked_after = 0;
        let sack_evidence = self.sacked >= 3;
        for (i, s) in self.in_flight.iter().enumerate().rev() {
            if !sack_evidence {
                break;
            }
            if s.sacked {
                sacked_after += 1;
            } else if sacked_after >= 3 && !s.fast_resent && !s.need_resend && !lost.contains(&i) {
                lost.push(i);
            }
        }
        if lost.is_empty() {
            return;
        }
        for i in lost {
            let s = &mut self.in_flight[i];
            s.need_resend = true;
            self.resends += 1;
            s.fast_resent = true;
            self.bytes_in_flight -= s.payload.len();
            self.stats.fast_retransmits += 1;
        }
        let new_epoch = self.loss_epoch_end.is_none_or(|end| seq_less(end, ack));
        if new_epoch {
            self.ledbat.on_loss();
            self.loss_epoch_end = Some(self.seq_nr.wrapping_sub(1));
        }
    }

    /// Updates RTT and RTO from an acknowledged packet sent once (Karn's rule), BEP 29
    /// §Timeouts: `rtt_var += (|rtt - sample| - rtt_var) / 4; rtt += (sample - rtt) / 8;
    /// timeout = max(rtt + rtt_var * 4, 500 ms)`.
    fn rtt_sample(&mut self, now: Instant, s: &Sent) {
        if s.transmissions != 1 {
            return;
        }
        let Some(sent_at) = s.sent_at else { return };
        let sample = now.saturating_duration_since(sent_at).as_micros() as i64;
        let (rtt, var) = match self.rtt_us {
            None => (sample, sample / 2),
            Some((rtt, var)) => {
                let delta = rtt - sample;
                (rtt + (sample - rtt) / 8, var + (delta.abs() - var) / 4)
            }
        };
        self.rtt_us = Some((rtt, var));
        let rto = Duration::from_micros((rtt + 4 * var).max(0) as u64);
        self.rto_base = rto.clamp(MIN_RTO, MAX_RTO);
        self.rto = self.rto_base;
    }

    fn on_data(&mut self, seq: u16, payload: &[u8], fin: bool, events: &mut VecDeque<Event>) {
        self.ack_pending = true;
        if let Some(f) = self.peer_fin
            && (seq_less(f, seq) || (fin && f != seq))
        {
            return; // beyond the FIN, or a second FIN at another seq_nr: ignored
        }
        let next = self.ack_nr.wrapping_add(1);
        if seq_less(seq, next) {
            return; // duplicate: re-acked
        }
        let offset = usize::from(seq.wrapping_sub(next));
        if offset >= MAX_REORDER_PACKETS {
            return;
        }
        if payload.len() > self.advertised_window() as usize {
            return; // no room: dropped, the peer retransmits
        }
        if self.reorder.len() <= offset {
            self.reorder.resize(offset + 1, None);
        }
        if offset > 0 {
            if self.reorder[offset].is_none() {
                self.reorder_bytes += payload.len();
                self.reorder[offset] = Some(payload.to_vec());
            }
            if fin {
                self.peer_fin = Some(seq);
            }
            return;
        }
        if fin {
            self.peer_fin = Some(seq);
        }
        let mut delivered = !payload.is_empty();
        self.recv_buf.extend(payload);
        self.advance_ack();
        while let Some(Some(_)) = self.reorder.front() {
            if let Some(Some(data)) = self.reorder.pop_front() {
                self.reorder_bytes -= data.len();
                delivered |= !data.is_empty();
                self.recv_buf.extend(&data);
            }
            // `pop_front` above removed this seq's slot; put the invariant back (index 0 =
            // ack_nr + 1) by advancing without popping again.
            self.ack_nr = self.ack_nr.wrapping_add(1);
            if Some(self.ack_nr) == self.peer_fin {
                self.eof = true;
            }
        }
        if self.eof {
            delivered = true;
        }
        if delivered && !self.read_notified {
            self.read_notified = true;
            events.push_back(Event::Readable(self.id));
        }
    }

    /// `ack_nr + 1` arrived: advance and drop its (empty) reorder slot.
    fn advance_ack(&mut self) {
        self.ack_nr = self.ack_nr.wrapping_add(1);
        self.reorder.pop_front();
        if Some(self.ack_nr) == self.peer_fin {
            self.eof = true;
        }
    }

    fn check_graceful(&mut self, now: Instant, events: &mut VecDeque<Event>) {
        if self.state == State::Connected && self.fin_acked && self.eof {
            self.finish(CloseReason::Graceful, events);
            self.linger_until = Some(now + CLOSE_LINGER);
        }
    }

    pub(crate) fn handle_timeout(&mut self, clk: Clock, events: &mut VecDeque<Event>) {
        if self.state == State::Closed {
            if self.linger_until.is_some_and(|t| t <= clk.now) {
                self.linger_until = None;
            }
            return;
        }
        let now = clk.now;
        if self.state == State::SynRecv && now >= self.created + SYN_RECV_TIMEOUT {
            let waited = now.saturating_duration_since(self.created);
            self.fail(ConnectionError::HandshakeTimedOut { waited }, events);
            self.reset_pending = false; // no reply to a possibly spoofed address
            return;
        }
        if self.rto_deadline.is_some_and(|d| d <= now) {
            let Some(front) = self.in_flight.front() else {
                self.rto_deadline = None;
                return;
            };
            if front.ty == PacketType::Syn && front.transmissions >= MAX_SYN_TRANSMISSIONS {
                let transmissions = front.transmissions;
                self.fail(ConnectionError::ConnectTimedOut { transmissions }, events);
                self.reset_pending = false;
                return;
            }
            if front.transmissions >= MAX_TRANSMISSIONS {
                let transmissions = front.transmissions;
                self.fail(
                    ConnectionError::TooManyRetransmissions { transmissions },
                    events,
                );
                return;
            }
            self.stats.timeouts += 1;
            self.rto = (self.rto * 2).min(MAX_RTO);
            self.ledbat.on_timeout();
            for s in &mut self.in_flight {
                if !s.sacked && !s.need_resend {
                    s.need_resend = true;
                    self.resends += 1;
                    self.bytes_in_flight -= s.payload.len();
                }
            }
            self.dup_acks = 0;
            self.rto_deadline = Some(now + self.rto);
        }
        if self.state != State::SynSent
            && now.saturating_duration_since(self.last_recv) >= IDLE_TIMEOUT
        {
            let idle = now.saturating_duration_since(self.last_recv);
            self.fail(ConnectionError::IdleTimeout { idle }, events);
            return;
        }
        if self.state == State::Connected
            && now.saturating_duration_since(self.last_send) >= KEEPALIVE_INTERVAL
        {
            self.ack_pending = true;
        }
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return self.linger_until;
        }
        let mut t = self.rto_deadline;
        if self.state != State::SynSent {
            let idle = self.last_recv + IDLE_TIMEOUT;
            t = Some(t.map_or(idle, |t| t.min(idle)));
        }
        if self.state == State::Connected {
            t = t.map(|t| t.min(self.last_send + KEEPALIVE_INTERVAL));
        }
        if self.state == State::SynRecv {
            t = t.map(|t| t.min(self.created + SYN_RECV_TIMEOUT));
        }
        t
    }

    // ----------------------------------------------------------------------------------------
    // Output
    // ----------------------------------------------------------------------------------------

    fn header(&self, clk: Clock, ty: PacketType, seq_nr: u16) -> Header {
        Header {
            ty,
            connection_id: if ty == PacketType::Syn {
                self.recv_id
            } else {
                self.send_id
            },
            timestamp_us: clk.us,
            timestamp_difference_us: self.reply_micro,
            wnd_size: self.advertised_window(),
            seq_nr,
            ack_nr: if ty == PacketType::Syn {
                0
            } else {
                self.ack_nr
            },
        }
    }

    /// The `seq_nr` of an `ST_STATE`: the next one we would send, but never past our FIN.
    /// libtorrent's FIN does not consume a number and it ignores every packet whose `seq_nr`
    /// lies beyond the FIN it received, acknowledgements included (seen in
    /// `tests/libtorrent_interop.rs`: our ACKs after our FIN were dropped and the transfer
    /// stalled).
    fn state_seq_nr(&self) -> u16 {
        self.fin_seq.unwrap_or(self.seq_nr)
    }

    fn sack_mask(&self) -> Option<([u8; MAX_SACK_LEN], usize)> {
        // Bit k is ack_nr + 2 + k, i.e. reorder index k + 1.
        let last = self.reorder.iter().rposition(Option::is_some)?;
        let bits = last.min(MAX_SACK_LEN * 8);
        let mut mask = [0u8; MAX_SACK_LEN];
        for k in 0..bits {
            if self.reorder.get(k + 1).is_some_and(Option::is_some) {
                mask[k / 8] |= 1 << (k % 8);
            }
        }
        let len = bits.div_ceil(32).max(1) * 4;
        Some((mask, len))
    }

    fn emit(&mut self, clk: Clock, out: &mut Vec<u8>, h: &Header, payload: &[u8]) {
        let sack = if h.ty == PacketType::Syn {
            None
        } else {
            self.sack_mask()
        };
        packet::encode(out, h, sack.as_ref().map(|(m, len)| &m[..*len]), payload);
        self.ack_pending = false;
        self.last_send = clk.now;
        self.stats.packets_sent += 1;
    }

    /// Writes the next datagram for this connection into `out` (cleared by the caller).
    pub(crate) fn poll_transmit(&mut self, clk: Clock, out: &mut Vec<u8>) -> bool {
        if self.reset_pending {
            self.reset_pending = false;
            let h = self.header(clk, PacketType::Reset, self.seq_nr);
            packet::encode(out, &h, None, &[]);
            self.stats.packets_sent += 1;
            return true;
        }
        if self.state == State::Closed {
            if self.ack_pending && self.linger_until.is_some() {
                let h = self.header(clk, PacketType::State, self.state_seq_nr());
                self.emit(clk, out, &h, &[]);
                return true;
            }
            self.ack_pending = false;
            return false;
        }
        let window = self.window();
        // 1. Retransmissions, oldest first, within the window (one packet always may go).
        if let Some(i) = (self.resends > 0)
            .then(|| self.in_flight.iter().position(|s| s.need_resend))
            .flatten()
        {
            let len = self.in_flight[i].payload.len();
            let fits = self.bytes_in_flight == 0 || self.bytes_in_flight + len <= window;
            if fits {
                let s = &mut self.in_flight[i];
                s.need_resend = false;
                self.resends -= 1;
                if s.transmissions > 0 {
                    self.stats.retransmissions += 1;
                }
                s.transmissions += 1;
                s.sent_at = Some(clk.now);
                let (seq, ty) = (s.seq, s.ty);
                let payload = std::mem::take(&mut s.payload);
                self.bytes_in_flight += payload.len();
                let h = self.header(clk, ty, seq);
                self.emit(clk, out, &h, &payload);
                self.in_flight[i].payload = payload;
                self.rto_deadline.get_or_insert(clk.now + self.rto);
                return true;
            }
        }
        // 2. New data.
        let established = self.state == State::Connected;
        if established
            && !self.send_buf.is_empty()
            && self.in_flight.len() < MAX_IN_FLIGHT_PACKETS
            && self.resends == 0
        {
            let len = self.send_buf.len().min(MAX_PAYLOAD_LEN);
            let room = window.saturating_sub(self.bytes_in_flight);
            let len = if self.bytes_in_flight == 0 {
                len
            } else {
                len.min(room)
            };
            // Send a short packet only when it is all there is, or the window is nearly full.
            if len > 0 && (len == self.send_buf.len() || len == MAX_PAYLOAD_LEN || len == room) {
                let mut payload = vec![0; len];
                copy_front(&self.send_buf, &mut payload);
                self.send_buf.drain(..len);
                return self.send_new(clk, out, PacketType::Data, payload);
            }
        }
        // 3. FIN once everything written has been packetized.
        if established && self.close_requested && self.send_buf.is_empty() && self.fin_seq.is_none()
        {
            self.fin_seq = Some(self.seq_nr);
            return self.send_new(clk, out, PacketType::Fin, Vec::new());
        }
        // 4. A bare acknowledgement (also the keep-alive).
        if self.ack_pending {
            let h = self.header(clk, PacketType::State, self.state_seq_nr());
            self.emit(clk, out, &h, &[]);
            return true;
        }
        false
    }

    fn send_new(
        &mut self,
        clk: Clock,
        out: &mut Vec<u8>,
        ty: PacketType,
        payload: Vec<u8>,
    ) -> bool {
        let seq = self.seq_nr;
        self.seq_nr = self.seq_nr.wrapping_add(1);
        let h = self.header(clk, ty, seq);
        self.emit(clk, out, &h, &payload);
        self.bytes_in_flight += payload.len();
        self.unacked_bytes += payload.len();
        self.in_flight.push_back(Sent {
            seq,
            ty,
            payload,
            sent_at: Some(clk.now),
            transmissions: 1,
            need_resend: false,
            sacked: false,
            fast_resent: false,
        });
        self.rto_deadline.get_or_insert(clk.now + self.rto);
        true
    }

    /// Has something to send right now (used to keep the endpoint's ready queue honest).
    pub(crate) fn wants_transmit(&self) -> bool {
        self.reset_pending
            || (self.ack_pending && self.linger_until.is_some())
            || (self.state != State::Closed
                && (self.ack_pending
                    || self.resends > 0
                    || !self.send_buf.is_empty()
                    || (self.close_requested && self.fin_seq.is_none())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sack_seqs_wrap_around_u16() {
        let v: Vec<u16> = sack_seqs(65534, &[0b1000_0001, 0, 0, 0x80]).collect();
        assert_eq!(v, vec![0, 7, 65534u16.wrapping_add(2 + 31)]);
    }
}
