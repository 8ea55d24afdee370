//! Sans-IO uTP (BEP 29, the Micro Transport Protocol) with LEDBAT congestion control (RFC 6817,
//! 100 ms target): packets and the selective-ACK extension, a connection state machine with
//! retransmission on the caller's clock, and an endpoint that multiplexes every connection of
//! one UDP socket.
//!
//! # Contract
//!
//! This crate opens no socket, reads no clock, spawns no thread and draws no randomness of its
//! own (`clippy.toml` bans `Instant::now`, `SystemTime::now`, `thread::spawn` and std sockets).
//! The engine owns the UDP socket and passes `now` (monotonic, never going backwards) and the
//! datagrams that [`looks_like_utp`] accepts; it takes datagrams to send and events out. Our
//! `timestamp_microseconds` count from the `epoch` given to [`Endpoint::new`]; connection ids and
//! initial sequence numbers come from its `rng_seed`, so a simulation is reproducible.
//!
//! # Call order
//!
//! 1. [`Endpoint::new`].
//! 2. Inputs: [`Endpoint::handle_datagram`] for every uTP datagram received, and
//!    [`Endpoint::handle_timeout`] when [`Endpoint::poll_timeout`] is reached.
//! 3. Commands: [`Endpoint::connect`], [`Endpoint::write`], [`Endpoint::read`],
//!    [`Endpoint::close`].
//! 4. After **every** input or command: drain [`Endpoint::poll_transmit`] to `None` (send each
//!    datagram to its `dst`), drain [`Endpoint::poll_event`] to `None`, then read
//!    [`Endpoint::poll_timeout`] and wake up no later than it.
//!
//! An outgoing connection reports [`Event::Connected`] or a [`Event::Closed`]; an incoming one
//! starts with [`Event::Incoming`] and may be written to at once. [`Event::Readable`] means
//! [`Endpoint::read`] returns bytes or [`Endpoint::is_eof`] turned true; [`Event::Writable`]
//! follows a short [`Endpoint::write`] once the send buffer has room. Every connection ends
//! with exactly one [`Event::Closed`]; its unread bytes stay readable until read or until
//! [`Endpoint::close`] is called again.
//!
//! # Bounds and hostile peers
//!
//! Every buffer and table has a limit in [`limits`]: connections, send and receive buffers,
//! out-of-order packets held, packets in flight, transmissions before giving up. Malformed
//! datagrams are counted and dropped. A SYN beyond the connection limit, and a data or FIN
//! packet for no connection, get one 20-byte `ST_RESET` (never larger than what it answers).
//! A peer that acknowledges a sequence number we never sent, or advertises an absurd window,
//! is disconnected with an `ST_RESET` and [`Event::Closed`] carrying a [`ConnectionError`].

//! # Interoperability decisions (each has a test)
//!
//! - Selective ACKs of any non-empty length are accepted: libtorrent sends `ceil(span / 8)`
//!   bytes, not BEP 29's multiple of 4 (we send multiples of 4) — [`packet`].
//! - An `ST_STATE` never carries a `seq_nr` past our FIN: libtorrent drops every packet beyond
//!   the FIN it received, acknowledgements included (`tests/libtorrent_interop.rs`).
//! - The acceptor sends no data until the initiator's first packet after its SYN, so a lost
//!   SYN answer plus lost first data can never make the initiator skip bytes (`tests/sim.rs`).
//! - Unknown extensions (libtorrent's close reason, type 3) are skipped.
//!
//! # Not yet done
//!
//! No slow start (the window grows by at most 3 000 bytes per RTT from two packets, as the
//! LEDBAT gain bound prescribes; libtorrent adds a slow-start phase), no delayed ACKs (one
//! `ST_STATE` per data packet received when there is nothing to piggyback on), no MTU
//! discovery (payload fixed at [`limits::MAX_PAYLOAD_LEN`]), and timers are scanned linearly
//! over the connections.

pub mod connection;
pub mod endpoint;
pub mod fuzzing;
pub mod ledbat;
pub mod limits;
pub mod packet;

pub use connection::{CloseReason, ConnStats, ConnectionError};
pub use endpoint::{Config, ConnId, ConnectError, Endpoint, Stats, Transmit};
pub use packet::{Packet, PacketError, PacketType, looks_like_utp};

/// What happened on a connection, from [`Endpoint::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A peer opened a connection to us (its SYN was accepted).
    Incoming(ConnId),
    /// Our SYN was answered: the connection is established.
    Connected(ConnId),
    /// New bytes (or the end of the stream) can be read.
    Readable(ConnId),
    /// The send buffer has room again after a short write.
    Writable(ConnId),
    /// The connection ended; the last event about it.
    Closed {
        /// The connection.
        conn: ConnId,
        /// Why.
        reason: CloseReason,
    },
}
