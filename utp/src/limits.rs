//! Every bound the uTP endpoint enforces, with its unit, its reason and what happens at the limit.
//!
//! Numbers follow BEP 29 and libtorrent's `utp_stream.cpp` / `settings_pack` defaults where BEP 29
//! is silent. Tunables are a `DEFAULT_*` clamped to a hard `MAX_*` by [`crate::Config`].

use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// Packets (BEP 29 §Header format, §Extension)
// ---------------------------------------------------------------------------------------------

/// Length of the fixed uTP header, in bytes: 20 (BEP 29 §Header format).
pub const HEADER_LEN: usize = 20;

/// Largest datagram accepted or produced, in bytes: 1 500 (an Ethernet MTU, libtorrent's UDP
/// receive buffer). Longer datagrams are dropped before parsing and counted in
/// [`crate::Stats::malformed`].
pub const MAX_DATAGRAM_LEN: usize = 1500;

/// Largest payload this endpoint puts in one `ST_DATA` packet, in bytes: 1 400 minus the
/// header and the largest selective ACK we attach (2 + [`MAX_SACK_LEN`]), so a datagram stays
/// at or under 1 400 bytes, which survives IPv6 (1 280 minimum MTU is not assumed, but PPPoE and
/// most tunnels are) without fragmentation. libtorrent starts its MTU discovery at 1 400 too.
pub const MAX_PAYLOAD_LEN: usize = 1400 - HEADER_LEN - 2 - MAX_SACK_LEN;

/// Most extension headers walked in one packet: 8. BEP 29 defines one (selective ACK); a
/// longer chain is refused as malformed ([`crate::packet::PacketError::TooManyExtensions`]).
pub const MAX_EXTENSIONS: usize = 8;

/// Longest selective-ACK bitmask we generate, in bytes: 16 (128 packets past `ack_nr + 1`).
/// Longer bitmasks received are accepted up to the extension length byte (255) but only the
/// bits for packets we have in flight are used.
pub const MAX_SACK_LEN: usize = 16;

// ---------------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------------

/// Default number of connections one endpoint holds (incoming and outgoing), clamped to
/// [`MAX_CONNECTIONS`]. At the limit an incoming SYN is answered with `ST_RESET` (20 bytes, no
/// larger than the SYN, so no amplification) and `connect` returns `None`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 500;

/// Hard ceiling on connections per endpoint: 4 096 (the node's global peer cap is 1 000;
/// SECURITY.md §2.7).
pub const MAX_CONNECTIONS: usize = 4096;

/// Bytes one connection's send buffer holds (unsent plus unacknowledged), 512 KiB: the
/// per-peer send-buffer watermark of SECURITY.md §2.7. `write` accepts only what fits.
pub const SEND_BUFFER_BYTES: usize = 512 * 1024;

/// Bytes one connection's receive buffer holds (in-order unread plus out-of-order), 1 MiB: the
/// window we advertise (`wnd_size`) is what is left of it; libutp's default `UTP_RCVBUF` is the
/// same. A data packet that does not fit is dropped (the peer retransmits it).
pub const RECV_BUFFER_BYTES: usize = 1024 * 1024;

/// Most out-of-order packets held per connection: 256, beyond `ack_nr + 1`. A packet further
/// ahead is dropped unacknowledged.
pub const MAX_REORDER_PACKETS: usize = 256;

/// Most packets in flight (sent, unacknowledged) per connection: 512. Together with
/// [`SEND_BUFFER_BYTES`] this keeps sequence numbers far from the u16 half-range, so wrapping
/// comparisons are unambiguous.
pub const MAX_IN_FLIGHT_PACKETS: usize = 512;

/// Most transmissions of one packet before the connection gives up, counting the first: 10
/// (with the RTO doubling from at least 500 ms up to [`MAX_RTO`], about 95 s, under
/// [`IDLE_TIMEOUT`]); enough that a path losing 20 % each way, where a round trip fails 36 %
/// of the time, still completes (`tests/sim.rs`). Then the connection closes with
/// [`crate::ConnectionError::TooManyRetransmissions`].
pub const MAX_TRANSMISSIONS: u32 = 10;

/// Most SYN transmissions before `connect` fails: 4 (1 s, 2 s, 4 s, 8 s with the initial RTO;
/// libtorrent gives up a uTP connect after about 3 attempts too).
pub const MAX_SYN_TRANSMISSIONS: u32 = 4;

/// Largest receive window a peer may advertise, in bytes: 1 GiB. Real clients advertise their
/// receive buffer (libutp 1 MiB, libtorrent a few MiB); a larger `wnd_size` is a lie and closes
/// the connection with [`crate::ConnectionError::WindowAbsurd`].
pub const MAX_PEER_WINDOW_BYTES: u32 = 1 << 30;

// ---------------------------------------------------------------------------------------------
// Timers (BEP 29 §Timeouts)
// ---------------------------------------------------------------------------------------------

/// Retransmission timeout before any RTT sample: 1 s (BEP 29: "initial timeout is set to
/// 1000 milliseconds").
pub const INITIAL_RTO: Duration = Duration::from_millis(1000);

/// Smallest retransmission timeout: 500 ms (BEP 29: `timeout = max(rtt + rtt_var * 4, 500)`).
pub const MIN_RTO: Duration = Duration::from_millis(500);

/// Largest retransmission timeout after doubling: 16 s. Doubling stops there.
pub const MAX_RTO: Duration = Duration::from_secs(16);

/// Silence after which we send an empty `ST_STATE` to keep NAT mappings alive: 29 s (libtorrent
/// uses the same figure, below common 30 s UDP NAT timeouts).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(29);

/// How long an accepted connection may wait for the initiator's first packet after its SYN:
/// 10 s, the handshake deadline of SECURITY.md rule 7 (libtorrent's `handshake_timeout`). A
/// SYN from a spoofed address therefore holds a slot for at most this long; the slot is then
/// freed without a reply ([`crate::ConnectionError::HandshakeTimedOut`]).
pub const SYN_RECV_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a gracefully closed connection is kept to acknowledge a retransmitted FIN (our last
/// ACK may be lost): 10 s, a few RTOs (TCP's TIME_WAIT, shortened). Counted against the
/// connection limit meanwhile.
pub const CLOSE_LINGER: Duration = Duration::from_secs(10);

/// A connection from which nothing arrives for this long is closed with
/// [`crate::ConnectionError::IdleTimeout`]: 120 s, the peer idle limit of SECURITY.md §2.7.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// Congestion control (BEP 29 §Congestion control, RFC 6817)
// ---------------------------------------------------------------------------------------------

/// LEDBAT target queuing delay: 100 ms (BEP 29 `CCONTROL_TARGET`; RFC 6817 allows ≤ 100 ms).
pub const TARGET_DELAY: Duration = Duration::from_millis(100);

/// Largest congestion-window growth per round trip, in bytes: 3 000 (BEP 29
/// `MAX_CWND_INCREASE_BYTES_PER_RTT`).
pub const MAX_CWND_INCREASE_BYTES_PER_RTT: usize = 3000;

/// Smallest congestion window, in bytes: one full packet (RFC 6817 §2.4.2 "MIN_CWND" of 2 is
/// relaxed to 1 as in BEP 29, which sets `max_window` to the packet size on timeout).
pub const MIN_CWND_BYTES: usize = MAX_PAYLOAD_LEN;

/// Congestion window of a new connection, in bytes: two packets (RFC 6817 `INIT_CWND` = 2).
pub const INITIAL_CWND_BYTES: usize = 2 * MAX_PAYLOAD_LEN;

/// Largest congestion window, in bytes: the send buffer (more could never be in flight).
pub const MAX_CWND_BYTES: usize = SEND_BUFFER_BYTES;

/// Length of one base-delay history slot: 60 s (RFC 6817 §3.4.2 `BASE_HISTORY` minutes).
pub const BASE_DELAY_INTERVAL: Duration = Duration::from_secs(60);

/// Per-minute minima kept for the base delay: 2 (the current and the previous minute; RFC 6817
/// recommends 10, libtorrent and BEP 29 use about 2 minutes so a route change is noticed fast).
pub const BASE_DELAY_SLOTS: usize = 2;

// ---------------------------------------------------------------------------------------------
// Endpoint queues
// ---------------------------------------------------------------------------------------------

/// Most `ST_RESET` replies queued for unknown or refused connections: 64. Beyond it a reset is
/// dropped (counted in [`crate::Stats::resets_dropped`]); resets are never larger than the
/// packet they answer.
pub const MAX_QUEUED_RESETS: usize = 64;

/// Most events queued for the caller: 4 × [`MAX_CONNECTIONS`]. The caller drains after every
/// input, so this is only a backstop; the oldest event is dropped at the limit.
pub const MAX_QUEUED_EVENTS: usize = 4 * MAX_CONNECTIONS;
