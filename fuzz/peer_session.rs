//! Body of the `peer_session` fuzz target: one [`PeerSession`] of a seed driven by a hostile
//! peer's wire bytes, interleaved with what the reactor does (time passing, choke and unchoke,
//! disk reads taken, finished, found stale or withheld, the outbox drained), with the session's
//! invariants checked after every step.
//!
//! Shared by `fuzz_targets/peer_session.rs` and `engine/tests/fuzz_corpus.rs` (both include this
//! file with `#[path]`), so stable `cargo test` replays the seed corpus `corpus/peer_session/`.
//! Test code: it panics when an invariant breaks, which is what the fuzzer looks for.
//!
//! # Input layout
//! - bytes `0..5`: the torrent and the peer ([`Shape::from_header`]): piece count, piece length
//!   and the last piece's, which pieces we have and which are withheld, the caps, super-seeding,
//!   privacy, the size of the info dictionary;
//! - byte `5`: `ctrl_len`, then `ctrl_len` control bytes, one step each ([`Ctrl`]);
//! - the rest: the peer's bytes after the BitTorrent handshake, split with `decode_frame`.
//!
//! When the control bytes run out, the remaining frames are handled as the reactor does: one
//! message, then the outbox drained and every queued request served.
//!
//! # Invariants
//! - nothing panics, and the session is never used after it returned an error;
//! - the request queue holds at most `MAX_REQUEST_QUEUE` requests, none while the peer is
//!   choked, each inside the torrent (piece < count, 1 ≤ length ≤ 16 KiB, begin + length ≤ the
//!   piece's length), for a piece we have and do not withhold, and, when super-seeding, one
//!   offered to this peer;
//! - the outbox is bounded: one input adds at most one message to it, plus (a choke, or a
//!   `not interested` that chokes) one reject per request that was queued; the greeting is at
//!   most four messages;
//! - what we send is what a seed may send, and re-decodes with the peer's frame limit;
//! - each `Step` is consistent (interest changes, PEX honoured at most once a minute, never for
//!   a private torrent, at most `MAX_PEX_DIALS_PER_MESSAGE` peers) and each error names what
//!   the peer did.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use seednode::limits::{
    CHATTER_BURST, HAVE_SLACK, MAX_EXTENSION_HANDSHAKES, MAX_PEX_DIALS_PER_MESSAGE,
    MAX_READS_IN_FLIGHT_PER_PEER, MAX_REQUEST_QUEUE, MAX_REQUESTS_WHILE_CHOKED, PEX_MIN_INTERVAL,
};
use seednode::session::{LocalInfo, PeerCaps, PeerError, PeerSession, PieceMap, Step};
use seednode_wire::limits::MAX_BLOCK_LEN;
use seednode_wire::peer::{BlockRequest, Message, decode_frame, max_frame_len};

/// Bytes of the torrent-shape header.
pub(crate) const HEADER_LEN: usize = 5;

/// Messages the greeting may hold: bitfield (or `have_all`/`have_none`), extension handshake,
/// `port`, a super-seed's first offer.
const MAX_GREETING_LEN: usize = 4;

/// Piece lengths the header picks from: block multiples and the awkward ones (shorter than a
/// block, one byte over a block, one byte).
const PIECE_LENS: [u32; 8] = [16_384, 32_768, 65_536, 1_000, 16_385, 49_152, 1, 262_144];

/// Sizes of the info dictionary (served over `ut_metadata`): one metadata piece, exactly one,
/// one byte over, three.
const INFO_LENS: [usize; 4] = [11, 16_384, 16_385, 40_000];

/// Time steps a control byte picks from.
const TIME_STEPS: [Duration; 8] = [
    Duration::ZERO,
    Duration::from_millis(1),
    Duration::from_millis(49),
    Duration::from_secs(1),
    Duration::from_secs(19),
    Duration::from_secs(20),
    Duration::from_secs(60),
    Duration::from_secs(121),
];

/// The torrent as the session sees it.
#[derive(Debug)]
pub(crate) struct Shape {
    pieces: u32,
    piece_len: u32,
    last_len: u32,
    have: Vec<bool>,
    withheld: Vec<bool>,
    caps: PeerCaps,
    private: bool,
    yourip: bool,
    dht_port: bool,
    info: Bytes,
    /// Super-seeding availability counts, when super-seeding.
    avail: Option<Vec<u32>>,
}

/// Header flag bits (byte 3).
pub(crate) mod flag {
    pub(crate) const SUPER_SEED: u8 = 1;
    pub(crate) const FAST: u8 = 2;
    pub(crate) const EXTENSIONS: u8 = 4;
    pub(crate) const DHT: u8 = 8;
    pub(crate) const PRIVATE: u8 = 16;
    pub(crate) const YOURIP: u8 = 32;
    pub(crate) const DHT_PORT: u8 = 64;
}

/// Builds a header: `pieces` in 1..=256, `piece_len_sel` indexes [`PIECE_LENS`] (bits 0..3; the
/// bits above shorten the last piece by that many 32nds), `holes` (0: we have every piece; bit
/// 0: some missing, bit 1: some withheld; the rest a pattern seed), `flags` from [`flag`],
/// `info_sel` indexes [`INFO_LENS`].
pub(crate) fn header(
    pieces: u32,
    piece_len_sel: u8,
    holes: u8,
    flags: u8,
    info_sel: u8,
) -> [u8; 5] {
    assert!((1..=256).contains(&pieces));
    [(pieces - 1) as u8, piece_len_sel, holes, flags, info_sel]
}

/// A pseudo-random mix of a piece index and a seed byte (a hole pattern).
fn mix(i: u32, seed: u8) -> u32 {
    (i.wrapping_mul(0x9E37_79B9) ^ u32::from(seed).wrapping_mul(0x85EB_CA6B)) >> 13
}

impl Shape {
    /// Reads the torrent shape from the header bytes (see [`header`]).
    pub(crate) fn from_header(h: [u8; HEADER_LEN]) -> Self {
        let pieces = u32::from(h[0]) + 1;
        let piece_len = PIECE_LENS[usize::from(h[1] & 7)];
        let last_len = piece_len
            .saturating_sub(u32::from(h[1] >> 3) * (piece_len / 32))
            .max(1);
        let holes = h[2];
        let have: Vec<bool> = (0..pieces)
            .map(|i| holes & 1 == 0 || !mix(i, holes).is_multiple_of(4))
            .collect();
        let withheld = (0..pieces)
            .map(|i| have[i as usize] && holes & 2 != 0 && mix(i, holes) % 7 == 1)
            .collect();
        let flags = h[3];
        let info = Bytes::from(vec![b'x'; INFO_LENS[usize::from(h[4] & 3)]]);
        Self {
            pieces,
            piece_len,
            last_len,
            have,
            withheld,
            caps: PeerCaps {
                fast: flags & flag::FAST != 0,
                extensions: flags & flag::EXTENSIONS != 0,
                dht: flags & flag::DHT != 0,
            },
            private: flags & flag::PRIVATE != 0,
            yourip: flags & flag::YOURIP != 0,
            dht_port: flags & flag::DHT_PORT != 0,
            info,
            avail: (flags & flag::SUPER_SEED != 0).then(|| vec![0; pieces as usize]),
        }
    }

    fn super_seed(&self) -> bool {
        self.avail.is_some()
    }

    /// Whether `req` lies inside the torrent (the range checks of BEP 3, SECURITY.md W6).
    fn in_range(&self, req: &BlockRequest) -> bool {
        let Some(len) = self.piece_len(req.piece) else {
            return false;
        };
        req.length >= 1
            && req.length <= MAX_BLOCK_LEN
            && u64::from(req.begin) + u64::from(req.length) <= u64::from(len)
    }
}

impl PieceMap for Shape {
    fn piece_count(&self) -> u32 {
        self.pieces
    }
    fn piece_len(&self, index: u32) -> Option<u32> {
        match index {
            i if i >= self.pieces => None,
            i if i == self.pieces - 1 => Some(self.last_len),
            _ => Some(self.piece_len),
        }
    }
    fn have(&self, index: u32) -> bool {
        self.have.get(index as usize).copied().unwrap_or(false)
    }
    fn withheld(&self, index: u32) -> bool {
        self.withheld.get(index as usize).copied().unwrap_or(false)
    }
    fn info_bytes(&self) -> &Bytes {
        &self.info
    }
    fn is_private(&self) -> bool {
        self.private
    }
    fn bitfield(&self) -> Bytes {
        let mut bits = vec![0u8; self.pieces.div_ceil(8) as usize];
        for (i, _) in self.have.iter().enumerate().filter(|(_, h)| **h) {
            bits[i / 8] |= 0x80 >> (i % 8);
        }
        bits.into()
    }
    fn super_seed_availability(&mut self) -> Option<&mut [u32]> {
        self.avail.as_deref_mut()
    }
}

/// One control step, from one control byte: the low 3 bits pick the kind, the high 5 an
/// argument `n` (0..=31).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ctrl {
    /// Handle `n + 1` messages without draining in between (kinds 0 and 1).
    Messages(u8),
    /// Let `TIME_STEPS[n % 8] * (1 + n / 8)` pass (kind 2).
    Wait(u8),
    /// Choke (odd `n`) or unchoke (even `n`) the peer (kind 3).
    Choke(bool),
    /// Take up to `n + 1` queued requests for disk reads (kind 4).
    Read(u8),
    /// Finish up to `n + 1` disk reads; with bit 0 of `n` set the first one failed its hash
    /// check and is withheld (kind 5).
    Finish(u8),
    /// Drain the outbox (kind 6).
    Drain,
    /// Handle `n + 1` messages as the reactor does: drain and serve after each one (kind 7).
    Reactor(u8),
}

impl Ctrl {
    /// The step a control byte encodes.
    pub(crate) const fn from_byte(b: u8) -> Self {
        let n = b >> 3;
        match b & 7 {
            0 | 1 => Self::Messages(n),
            2 => Self::Wait(n),
            3 => Self::Choke(n & 1 == 1),
            4 => Self::Read(n),
            5 => Self::Finish(n),
            6 => Self::Drain,
            _ => Self::Reactor(n),
        }
    }

    /// The control byte of this step.
    pub(crate) const fn to_byte(self) -> u8 {
        match self {
            Self::Messages(n) => n << 3,
            Self::Wait(n) => (n << 3) | 2,
            Self::Choke(choke) => ((choke as u8) << 3) | 3,
            Self::Read(n) => (n << 3) | 4,
            Self::Finish(n) => (n << 3) | 5,
            Self::Drain => 6,
            Self::Reactor(n) => (n << 3) | 7,
        }
    }
}

/// How a run ended.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// Messages handled.
    pub(crate) messages: usize,
    /// Blocks "sent" (disk reads finished while the choke epoch held).
    pub(crate) served: usize,
    /// The error that closed the connection, if any.
    pub(crate) error: Option<PeerError>,
    /// The frame decoder refused the bytes (the reactor closes the connection).
    pub(crate) frame_error: bool,
}

/// A disk read taken from the queue and not finished: the request and the choke epoch it was
/// issued in.
type Read = (BlockRequest, u32);

/// The harness: the session, its torrent, and what the peer was told.
struct Harness {
    session: PeerSession,
    shape: Shape,
    now: Instant,
    rbuf: BytesMut,
    max_frame: u32,
    reads: Vec<Read>,
    /// Super-seeding: the pieces the peer was offered (`have` taken from the outbox).
    offered: HashSet<u32>,
    /// Super-seeding: pieces of requests taken before their offer was seen in the outbox.
    unchecked_offers: Vec<u32>,
    /// Messages taken from the outbox so far.
    sent: usize,
    haves: u32,
    extension_handshakes: u32,
    /// When the last `Step::Peers` was returned.
    pex_honoured: Option<Instant>,
    outcome: Outcome,
}

/// Runs one input; panics when an invariant breaks.
pub(crate) fn run(data: &[u8]) -> Outcome {
    let Some((head, rest)) = data.split_first_chunk::<HEADER_LEN>() else {
        return Outcome {
            messages: 0,
            served: 0,
            error: None,
            frame_error: false,
        };
    };
    let mut shape = Shape::from_header(*head);
    let (ctrl, wire) = match rest.split_first() {
        Some((&n, rest)) => rest.split_at(usize::from(n).min(rest.len())),
        None => (&[][..], &[][..]),
    };
    // The harness's epoch: only differences of instants matter to the session.
    let now = Instant::now();
    let local = LocalInfo {
        client: "seednode/fuzz",
        dht_port: shape.dht_port.then_some(6881),
        yourip: shape
            .yourip
            .then_some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
    };
    let session = PeerSession::new(now, shape.caps, &local, &mut shape);
    let greeting = session.pending_sends();
    assert!(greeting <= MAX_GREETING_LEN, "greeting of {greeting}");
    assert!(greeting >= 1 || shape.super_seed(), "no bitfield");
    let max_frame = max_frame_len(shape.pieces);
    let mut h = Harness {
        session,
        shape,
        now,
        rbuf: BytesMut::from(wire),
        max_frame,
        reads: Vec::new(),
        offered: HashSet::new(),
        unchecked_offers: Vec::new(),
        sent: 0,
        haves: 0,
        extension_handshakes: 0,
        pex_honoured: None,
        outcome: Outcome {
            messages: 0,
            served: 0,
            error: None,
            frame_error: false,
        },
    };
    h.check();
    if h.steps(ctrl).is_ok() {
        // Control bytes used up: the reactor's loop for the rest of the frames.
        while let Ok(true) = h.message(true) {}
    }
    h.outcome
}

/// Returned when the connection is closed: the session is not used again.
struct Closed;

impl Harness {
    fn steps(&mut self, ctrl: &[u8]) -> Result<(), Closed> {
        for &b in ctrl {
            match Ctrl::from_byte(b) {
                Ctrl::Messages(n) | Ctrl::Reactor(n) => {
                    let reactor = matches!(Ctrl::from_byte(b), Ctrl::Reactor(_));
                    for _ in 0..=n {
                        if !self.message(reactor)? {
                            break;
                        }
                    }
                }
                Ctrl::Wait(n) => {
                    self.now += TIME_STEPS[usize::from(n % 8)] * (1 + u32::from(n / 8));
                }
                Ctrl::Choke(true) => self.choke(),
                Ctrl::Choke(false) => {
                    let before = self.session.pending_sends();
                    self.session.unchoke();
                    assert!(!self.session.choked);
                    assert!(self.session.pending_sends() <= before + 1);
                }
                Ctrl::Read(n) => self.read(usize::from(n) + 1),
                Ctrl::Finish(n) => self.finish(usize::from(n) + 1, n & 1 == 1),
                Ctrl::Drain => self.drain(),
            }
            self.check();
        }
        Ok(())
    }

    /// Decodes and handles the next message; `Ok(false)` when the bytes hold no whole frame.
    fn message(&mut self, reactor: bool) -> Result<bool, Closed> {
        let msg = match decode_frame(&mut self.rbuf, self.max_frame) {
            Ok(Some(msg)) => msg,
            Ok(None) => return Ok(false),
            Err(_) => {
                self.outcome.frame_error = true;
                return Err(Closed);
            }
        };
        self.outcome.messages += 1;
        match &msg {
            Message::Have { .. } => self.haves += 1,
            Message::Extended { id: 0, .. } => self.extension_handshakes += 1,
            _ => {}
        }
        let s = &mut self.session;
        let (interested, choked, queued, pending) =
            (s.interested, s.choked, s.queued(), s.pending_sends());
        let result = s.handle_message(self.now, &msg, &mut self.shape);
        let grown = s.pending_sends().saturating_sub(pending);
        assert!(
            grown <= 1 + queued,
            "{msg:?} queued {grown} messages ({queued} requests were queued)"
        );
        match result {
            Ok(step) => self.check_step(&step, interested, choked),
            Err(e) => {
                self.check_error(&e, &msg, choked);
                self.outcome.error = Some(e);
                return Err(Closed);
            }
        }
        self.check();
        if reactor {
            self.drain();
            self.read(MAX_READS_IN_FLIGHT_PER_PEER);
            self.finish(MAX_READS_IN_FLIGHT_PER_PEER, false);
            self.drain();
            self.check();
        }
        Ok(true)
    }

    fn choke(&mut self) {
        let s = &mut self.session;
        let (epoch, queued, pending) = (s.choke_epoch, s.queued(), s.pending_sends());
        s.choke();
        assert!(s.choked);
        assert_eq!(s.choke_epoch, epoch.wrapping_add(1));
        assert_eq!(s.queued(), 0, "a choke empties the queue");
        assert!(s.pending_sends() <= pending + 1 + queued);
    }

    /// Takes up to `n` queued requests for disk reads, as `issue_reads` does.
    fn read(&mut self, n: usize) {
        for _ in 0..n {
            if self.reads.len() >= MAX_READS_IN_FLIGHT_PER_PEER {
                break;
            }
            let peeked = self.session.peek_request().copied();
            let Some(req) = self.session.next_request() else {
                assert_eq!(peeked, None);
                break;
            };
            assert_eq!(peeked, Some(req));
            self.check_request(&req);
            if self.shape.super_seed() && !self.offered.contains(&req.piece) {
                self.unchecked_offers.push(req.piece);
            }
            self.reads.push((req, self.session.choke_epoch));
        }
    }

    /// Finishes up to `n` disk reads, as `on_disk_done` does: sent when the choke epoch held,
    /// declined as stale otherwise; with `withhold` the first failed its hash check.
    fn finish(&mut self, n: usize, mut withhold: bool) {
        let n = n.min(self.reads.len());
        for (req, epoch) in self.reads.drain(..n).collect::<Vec<_>>() {
            let before = self.session.pending_sends();
            if withhold {
                withhold = false;
                self.session.withhold(req);
            } else if epoch != self.session.choke_epoch {
                self.session.stale_read(req);
            } else {
                self.outcome.served += 1;
                self.session.uploaded += u64::from(req.length);
                assert!(self.session.pending_sends() == before);
                continue;
            }
            let want = usize::from(self.shape.caps.fast);
            assert_eq!(
                self.session.pending_sends(),
                before + want,
                "a declined read is rejected exactly when the peer speaks BEP 6"
            );
        }
    }

    /// Takes every message from the outbox and checks that a seed may send it.
    fn drain(&mut self) {
        while let Some(msg) = self.session.poll_send() {
            self.check_sent(&msg);
            self.sent += 1;
        }
        assert_eq!(self.session.pending_sends(), 0);
        for piece in self.unchecked_offers.drain(..) {
            assert!(self.offered.contains(&piece), "piece {piece} never offered");
        }
        if self.shape.super_seed() {
            for req in self.session.queued_requests() {
                assert!(self.offered.contains(&req.piece), "{req:?} not offered");
            }
        }
    }

    /// The invariants that hold between any two steps.
    fn check(&self) {
        let s = &self.session;
        assert!(s.queued() <= MAX_REQUEST_QUEUE, "{} queued", s.queued());
        assert_eq!(s.queued(), s.queued_requests().len());
        if s.choked {
            assert_eq!(s.queued(), 0, "requests queued while choked");
        }
        for req in s.queued_requests() {
            self.check_request(req);
        }
        assert!(self.reads.len() <= MAX_READS_IN_FLIGHT_PER_PEER);
    }

    /// A request the session accepted for serving.
    fn check_request(&self, req: &BlockRequest) {
        assert!(self.shape.in_range(req), "out of range: {req:?}");
        assert!(self.shape.have(req.piece), "missing piece: {req:?}");
        assert!(!self.shape.withheld(req.piece), "withheld piece: {req:?}");
    }

    /// A message taken from the outbox.
    fn check_sent(&mut self, msg: &Message) {
        let first = self.sent == 0;
        let shape = &self.shape;
        match msg {
            Message::Bitfield(bits) => {
                assert!(first && !shape.super_seed());
                assert_eq!(bits.len(), shape.pieces.div_ceil(8) as usize);
            }
            Message::HaveAll => assert!(first && shape.caps.fast && !shape.super_seed()),
            Message::HaveNone => assert!(first && shape.caps.fast && shape.super_seed()),
            Message::Have { piece } => {
                assert!(shape.super_seed(), "have sent while seeding normally");
                assert!(shape.have(*piece), "offered missing piece {piece}");
                assert!(self.offered.insert(*piece), "piece {piece} offered twice");
            }
            Message::Extended { id: 0, .. } => {
                assert!(shape.caps.extensions && self.sent < MAX_GREETING_LEN);
            }
            Message::Extended { .. } => {}
            Message::Port(6881) => assert!(shape.caps.dht && self.sent < MAX_GREETING_LEN),
            Message::Choke | Message::Unchoke => {}
            Message::RejectRequest(req) => {
                assert!(shape.caps.fast, "reject_request to a peer without BEP 6");
                assert!(
                    shape.in_range(req),
                    "reject of an out-of-range request {req:?}"
                );
            }
            other => panic!("a seed never sends {other:?}"),
        }
        // The peer can decode it.
        let mut buf = BytesMut::new();
        msg.encode(&mut buf);
        let again = decode_frame(&mut buf, max_frame_len(shape.pieces));
        assert_eq!(again, Ok(Some(msg.clone())), "does not re-decode");
        assert!(buf.is_empty());
    }

    fn check_step(&mut self, step: &Step, was_interested: bool, was_choked: bool) {
        let s = &self.session;
        match step {
            Step::Interested => assert!(!was_interested && s.interested),
            Step::NotInterested => assert!(was_interested && !s.interested && s.choked),
            Step::Peers(peers) => {
                assert!(!self.shape.private, "PEX on a private torrent");
                assert!(!peers.is_empty() && peers.len() <= MAX_PEX_DIALS_PER_MESSAGE);
                if let Some(prev) = self.pex_honoured {
                    assert!(self.now - prev >= PEX_MIN_INTERVAL, "PEX honoured early");
                }
                self.pex_honoured = Some(self.now);
            }
            Step::Continue | Step::DhtPort(_) | Step::HashRequest(_) => {}
        }
        assert_eq!(
            s.interested,
            was_interested ^ matches!(step, Step::Interested | Step::NotInterested)
        );
        if !matches!(step, Step::NotInterested) {
            assert_eq!(s.choked, was_choked, "only the reactor chokes and unchokes");
        }
    }

    /// An error names what the peer did.
    fn check_error(&self, e: &PeerError, msg: &Message, was_choked: bool) {
        let shape = &self.shape;
        let req = match msg {
            Message::Request(r) => Some(r),
            _ => None,
        };
        match e {
            PeerError::PieceOutOfRange { piece, count } => {
                assert!(*piece >= *count && *count == shape.pieces);
            }
            PeerError::BadRequest { .. } => assert!(req.is_some_and(|r| !shape.in_range(r))),
            PeerError::RequestedMissingPiece { piece } => {
                assert!(req.is_some_and(|r| r.piece == *piece));
                assert!(!shape.have(*piece) || shape.super_seed());
            }
            PeerError::RequestsWhileChoked { count } => {
                assert!(req.is_some() && was_choked && *count > MAX_REQUESTS_WHILE_CHOKED);
            }
            PeerError::BadBitfield(_) => assert!(matches!(msg, Message::Bitfield(_))),
            PeerError::UnrequestedPiece => assert!(matches!(msg, Message::Piece { .. })),
            PeerError::BadExtension(_) => assert!(matches!(msg, Message::Extended { .. })),
            PeerError::BadHashMessage(_) => assert!(matches!(msg, Message::Unknown { .. })),
            PeerError::TooManyExtensionHandshakes(n) => {
                assert!(*n > MAX_EXTENSION_HANDSHAKES);
                assert_eq!(*n, self.extension_handshakes);
            }
            PeerError::HaveFlood { got, pieces } => {
                assert!(*got > pieces + HAVE_SLACK && *got == self.haves);
            }
            PeerError::MessageFlood { .. } => {
                let data = matches!(
                    msg,
                    Message::Request(_)
                        | Message::Cancel(_)
                        | Message::Piece { .. }
                        | Message::Have { .. }
                );
                assert!(!data, "data messages are not chatter");
                assert!(self.outcome.messages > CHATTER_BURST as usize);
            }
            PeerError::PexFlood { .. } => assert!(matches!(msg, Message::Extended { .. })),
        }
        assert!(!e.label().is_empty());
    }
}
