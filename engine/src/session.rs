//! The peer session of a seed: the BEP 3 message rules, pure and clock-free (`now` is passed in).
//!
//! Call order: [`PeerSession::new`] when the BitTorrent handshake completes (it queues the
//! greeting: bitfield or `have_all`/`have_none`, the extension handshake, `port`, a super-seed's
//! first offer); then, for each decoded [`Message`], [`PeerSession::handle_message`] and act on
//! the returned [`Step`]; after every input drain [`PeerSession::poll_send`] to `None`. Block
//! requests wait in a bounded queue until the reactor takes them with
//! [`PeerSession::next_request`] for a disk read. Every decision about what the peer is told
//! (bitfield form, extension handshake, super-seeding offers, PEX honoured or not) and every
//! per-peer limit (requests while choked, `have` and chatter budgets, PEX floods) lives here.

use std::collections::{HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use bytes::Bytes;
use seednode_wire::limits::MAX_BLOCK_LEN;
use seednode_wire::peer::extension::{
    self, ExtensionError, ExtensionHandshake, MetadataMessage, OUR_UT_METADATA_ID,
};
use seednode_wire::peer::hashes::{HashMessage, HashMessageError, HashRequest};
use seednode_wire::peer::pex::{OUR_UT_PEX_ID, PexMessage};
use seednode_wire::peer::{BlockRequest, Message};

use crate::limits::{
    CHATTER_BURST, CHATTER_PER_SEC, HAVE_SLACK, MAX_EARLY_PEX, MAX_EXTENSION_HANDSHAKES,
    MAX_PEX_DIALS_PER_MESSAGE, MAX_REQUEST_QUEUE, MAX_REQUESTS_WHILE_CHOKED, PEX_FLOOD_INTERVAL,
    PEX_MIN_INTERVAL,
};
use crate::rate::CountBucket;

/// What a torrent looks like to a session: enough to validate a peer's messages.
pub trait PieceMap {
    /// Number of pieces.
    fn piece_count(&self) -> u32;
    /// Length of piece `index` in bytes, `None` when out of range.
    fn piece_len(&self, index: u32) -> Option<u32>;
    /// Whether we have (and so may serve) piece `index`.
    fn have(&self, index: u32) -> bool;
    /// Whether piece `index`, which we have, is withheld because it failed its hash check
    /// since it was announced: requests for it are declined, not a protocol error.
    fn withheld(&self, index: u32) -> bool {
        let _ = index;
        false
    }
    /// The raw info dictionary, served over `ut_metadata` (BEP 9).
    fn info_bytes(&self) -> &Bytes;
    /// BEP 27 private torrent: no PEX (nor DHT).
    fn is_private(&self) -> bool;
    /// The `bitfield` payload of the pieces we have (BEP 3): `ceil(count / 8)` bytes.
    fn bitfield(&self) -> Bytes;
    /// Whether we have every piece (then a BEP 6 peer is told `have_all`).
    fn is_complete(&self) -> bool {
        (0..self.piece_count()).all(|i| self.have(i))
    }
    /// Super-seeding (BEP 16): per piece, how often it was seen at peers or offered; `None`
    /// when the torrent is seeded normally. Super-seed offers take the lowest count.
    fn super_seed_availability(&mut self) -> Option<&mut [u32]> {
        None
    }
}

/// What the peer's handshake said it supports (BEP 3 reserved bits).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerCaps {
    /// The Fast Extension (BEP 6), set by both sides.
    pub fast: bool,
    /// The extension protocol (BEP 10).
    pub extensions: bool,
    /// The DHT (BEP 5): the peer wants our `port`.
    pub dht: bool,
}

/// What we tell a peer about ourselves in the greeting.
#[derive(Debug, Clone, Copy)]
pub struct LocalInfo {
    /// Our client name and version for the extension handshake's `v` (BEP 10).
    pub client: &'static str,
    /// Our DHT's UDP port, when we run a DHT node (BEP 5 `port`).
    pub dht_port: Option<u16>,
    /// The peer's address as we see it, for `yourip` (BEP 10).
    pub yourip: Option<IpAddr>,
}

/// Why a peer is disconnected. Each variant is something the peer did (BEP 3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// `have` or `request` named a piece the torrent does not have (SECURITY.md W5/W6).
    #[error("piece {piece} out of range (torrent has {count})")]
    PieceOutOfRange { piece: u32, count: u32 },
    /// A request whose block is empty, longer than 16 KiB, or past the end of its piece (W6).
    #[error("bad request piece {piece} begin {begin} length {length}")]
    BadRequest { piece: u32, begin: u32, length: u32 },
    /// A request for a piece we have not announced (a partial seed's missing piece).
    #[error("request for piece {piece}, which we do not have")]
    RequestedMissingPiece { piece: u32 },
    /// Too many requests while choked (W8).
    #[error("{count} requests while choked")]
    RequestsWhileChoked { count: u32 },
    /// A bitfield of the wrong length or with spare bits set (W4).
    #[error("bad bitfield: {0}")]
    BadBitfield(&'static str),
    /// A `piece` we never requested: we are a seed (W9).
    #[error("unrequested piece message")]
    UnrequestedPiece,
    /// A malformed or oversized extension message (W11, W12).
    #[error("bad extension message: {0}")]
    BadExtension(#[from] ExtensionError),
    /// A malformed BEP 52 hash message.
    #[error("bad hash message: {0}")]
    BadHashMessage(#[from] HashMessageError),
    /// More extension handshakes than [`MAX_EXTENSION_HANDSHAKES`] (W11).
    #[error("{0} extension handshakes")]
    TooManyExtensionHandshakes(u32),
    /// More `have` messages than the torrent has pieces plus [`HAVE_SLACK`]: a peer announces
    /// each piece once, so more is a flood.
    #[error("{got} have messages for a torrent of {pieces} pieces")]
    HaveFlood { got: u32, pieces: u32 },
    /// Non-data messages faster than [`CHATTER_PER_SEC`] (burst [`CHATTER_BURST`]).
    #[error("more than {limit} non-data messages per second")]
    MessageFlood { limit: u32 },
    /// More than [`MAX_EARLY_PEX`] PEX messages within [`PEX_FLOOD_INTERVAL`] of the one
    /// before (BEP 11: at most one a minute).
    #[error("{count} PEX messages sent too early")]
    PexFlood { count: u32 },
}

impl PeerError {
    /// A short stable label for `/metrics` (`reason="..."`).
    pub const fn label(&self) -> &'static str {
        match self {
            Self::PieceOutOfRange { .. } => "piece_out_of_range",
            Self::BadRequest { .. } => "bad_request",
            Self::RequestedMissingPiece { .. } => "requested_missing_piece",
            Self::RequestsWhileChoked { .. } => "requests_while_choked",
            Self::BadBitfield(_) => "bad_bitfield",
            Self::UnrequestedPiece => "unrequested_piece",
            Self::BadExtension(_) => "bad_extension",
            Self::BadHashMessage(_) => "bad_hash_message",
            Self::TooManyExtensionHandshakes(_) => "extension_handshake_flood",
            Self::HaveFlood { .. } => "have_flood",
            Self::MessageFlood { .. } => "message_flood",
            Self::PexFlood { .. } => "pex_flood",
        }
    }
}

/// What the reactor must do after a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing beyond what the session did to itself.
    Continue,
    /// The peer became interested: ask the choker for a slot.
    Interested,
    /// The peer lost interest: free its slot.
    NotInterested,
    /// The peer told us its DHT port (BEP 5 `port`).
    DhtPort(u16),
    /// The peer asked for merkle hashes (BEP 52 `hash request`).
    HashRequest(HashRequest),
    /// The peer told us of other peers of the swarm (BEP 11); at most
    /// [`MAX_PEX_DIALS_PER_MESSAGE`] of them, at most once per [`PEX_MIN_INTERVAL`]. The caller
    /// still checks each address before dialling it.
    Peers(Vec<SocketAddr>),
}

/// Super-seeding (BEP 16): the pieces one peer was offered (told with `have`), those it was
/// served blocks of, and those whose `have` earned it the next offer. Each holds at most one
/// entry per offer, and a peer earns an offer only by downloading an offered piece.
#[derive(Debug, Default)]
struct Offers {
    offered: HashSet<u32>,
    requested: HashSet<u32>,
    passed_on: HashSet<u32>,
}

/// One peer's state as seen by a seed.
#[derive(Debug)]
pub struct PeerSession {
    /// True while we choke the peer (BEP 3 `am_choking`); every connection starts choked.
    pub choked: bool,
    /// True while the peer is interested in us.
    pub interested: bool,
    /// Incremented at every choke, so reads issued before a choke can be discarded.
    pub choke_epoch: u32,
    /// Requests accepted and not yet read from disk.
    queue: VecDeque<BlockRequest>,
    /// Disk reads issued and not yet answered.
    pub reads_in_flight: usize,
    requests_while_choked: u32,
    /// Requests dropped because the queue was full.
    pub dropped_requests: u64,
    /// When the peer last sent anything.
    pub last_recv: Instant,
    /// When we last queued anything for the peer.
    pub last_send: Instant,
    /// Payload bytes of `piece` messages sent.
    pub uploaded: u64,
    /// The peer's extended id for `ut_metadata` (BEP 9), from its extension handshake.
    peer_ut_metadata: Option<u8>,
    /// The peer's extended id for `ut_pex` (BEP 11).
    pub peer_ut_pex: Option<u8>,
    /// The port the peer accepts connections on, from its extension handshake (`p`).
    pub listen_port: Option<u16>,
    /// The peers we last told this peer about over PEX.
    pub pex_sent: HashSet<SocketAddr>,
    /// Super-seeding (BEP 16): what this peer was offered; `None` when the torrent is seeded
    /// normally.
    super_offered: Option<Offers>,
    extension_handshakes: u32,
    /// The peer's client name from its extension handshake (`v`), at most 64 bytes.
    pub client: Option<String>,
    /// `have` messages the peer may still send on this connection.
    have_budget: u32,
    /// `have` messages received.
    haves: u32,
    /// Non-data messages the peer may still send now.
    chatter: CountBucket,
    /// When a PEX message from this peer was last acted on.
    pex_honoured: Option<Instant>,
    /// When the peer last sent PEX at all.
    pex_received: Option<Instant>,
    /// PEX messages received within [`PEX_FLOOD_INTERVAL`] of the previous one.
    pex_early: u32,
    /// Both sides set the Fast Extension bit (BEP 6): requests are never silently dropped.
    fast: bool,
    /// Messages for the peer, taken by the reactor with [`PeerSession::poll_send`].
    outbox: VecDeque<Message>,
}

impl PeerSession {
    /// A session whose BitTorrent handshake completed at `now`, with its greeting queued: the
    /// bitfield (`have_all` to a BEP 6 peer when complete; nothing but `have_none` and one offer
    /// when super-seeding, BEP 16), then the extension handshake (BEP 10), then `port` (BEP 5).
    pub fn new(
        now: Instant,
        caps: PeerCaps,
        local: &LocalInfo,
        torrent: &mut impl PieceMap,
    ) -> Self {
        let mut s = Self::bare(now, caps.fast, torrent.piece_count());
        let super_seed = torrent.super_seed_availability().is_some();
        if super_seed {
            s.super_offered = Some(Offers::default());
            if caps.fast {
                s.outbox.push_back(Message::HaveNone);
            }
        } else if caps.fast && torrent.is_complete() {
            s.outbox.push_back(Message::HaveAll);
        } else {
            s.outbox.push_back(Message::Bitfield(torrent.bitfield()));
        }
        if caps.extensions {
            let yourip = local.yourip.map(|ip| match ip {
                IpAddr::V4(v4) => v4.octets().to_vec(),
                IpAddr::V6(v6) => v6.octets().to_vec(),
            });
            let payload = extension::encode_handshake(
                local.client,
                MAX_REQUEST_QUEUE as u32,
                Some(torrent.info_bytes().len() as u64),
                !torrent.is_private(),
                yourip.as_deref(),
            );
            s.outbox.push_back(Message::Extended {
                id: extension::HANDSHAKE_ID,
                payload: payload.into(),
            });
        }
        if caps.dht
            && let Some(port) = local.dht_port
        {
            s.outbox.push_back(Message::Port(port));
        }
        if super_seed {
            s.offer_next(torrent);
        }
        s
    }

    /// A session with nothing queued, for a torrent of `pieces` pieces.
    fn bare(now: Instant, fast: bool, pieces: u32) -> Self {
        Self {
            choked: true,
            interested: false,
            choke_epoch: 0,
            queue: VecDeque::new(),
            reads_in_flight: 0,
            requests_while_choked: 0,
            dropped_requests: 0,
            last_recv: now,
            last_send: now,
            uploaded: 0,
            peer_ut_metadata: None,
            peer_ut_pex: None,
            listen_port: None,
            pex_sent: HashSet::new(),
            super_offered: None,
            extension_handshakes: 0,
            client: None,
            have_budget: pieces.saturating_add(HAVE_SLACK),
            haves: 0,
            chatter: CountBucket::new(now, CHATTER_PER_SEC, CHATTER_BURST),
            pex_honoured: None,
            pex_received: None,
            pex_early: 0,
            fast,
            outbox: VecDeque::new(),
        }
    }

    /// Super-seeding (BEP 16): offers the piece we have that is least available and not yet
    /// offered to this peer (queues `have`), counting the offer in the availability.
    fn offer_next(&mut self, torrent: &mut impl PieceMap) {
        let count = torrent.piece_count();
        let have: Vec<bool> = (0..count).map(|p| torrent.have(p)).collect();
        let Some(avail) = torrent.super_seed_availability() else {
            return;
        };
        let pick = (0..count)
            .filter(|&p| have[p as usize] && !self.was_offered(p))
            .min_by_key(|&p| avail.get(p as usize).copied().unwrap_or(0));
        if let Some(piece) = pick {
            if let Some(n) = avail.get_mut(piece as usize) {
                *n = n.saturating_add(1);
            }
            self.offer(piece);
        }
    }

    /// Takes one token of the non-data message budget, refilled at [`CHATTER_PER_SEC`].
    fn charge_chatter(&mut self, now: Instant) -> Result<(), PeerError> {
        if self.chatter.try_take(now) {
            Ok(())
        } else {
            Err(PeerError::MessageFlood {
                limit: CHATTER_PER_SEC,
            })
        }
    }

    /// Whether a PEX message arriving at `now` is acted on (BEP 11: at most one a minute);
    /// counts early ones and fails on a flood.
    fn pex_due(&mut self, now: Instant) -> Result<bool, PeerError> {
        if let Some(prev) = self.pex_received
            && now.saturating_duration_since(prev) < PEX_FLOOD_INTERVAL
        {
            self.pex_early += 1;
            if self.pex_early > MAX_EARLY_PEX {
                return Err(PeerError::PexFlood {
                    count: self.pex_early,
                });
            }
        }
        self.pex_received = Some(now);
        let due = self
            .pex_honoured
            .is_none_or(|t| now.saturating_duration_since(t) >= PEX_MIN_INTERVAL);
        if due {
            self.pex_honoured = Some(now);
        }
        Ok(due)
    }

    /// Super-seeding: tells the peer we have `piece` (queues `have`), and serves it from now on.
    fn offer(&mut self, piece: u32) {
        if let Some(offers) = &mut self.super_offered {
            offers.offered.insert(piece);
            self.outbox.push_back(Message::Have { piece });
        }
    }

    /// Whether `piece` was offered to this peer while super-seeding.
    fn was_offered(&self, piece: u32) -> bool {
        self.super_offered
            .as_ref()
            .is_some_and(|o| o.offered.contains(&piece))
    }

    /// Super-seeding: whether the peer's `have` of `piece` earns the next offer. Only the first
    /// `have` of an offered piece the peer asked blocks of counts: repeating a `have`, or
    /// announcing an offered piece it never downloaded, earns nothing (each offer scans every
    /// piece, so a peer must not be able to buy one with a 9-byte message).
    fn passed_on(&mut self, piece: u32) -> bool {
        self.super_offered
            .as_mut()
            .is_some_and(|o| o.requested.contains(&piece) && o.passed_on.insert(piece))
    }

    /// Tells the peer we now have `piece` (BEP 3 `have`): a piece withheld when the session
    /// began (left out of its bitfield) passed its check. Nothing while super-seeding, whose
    /// offers say which pieces a peer learns of.
    pub fn announce_piece(&mut self, piece: u32) {
        if self.super_offered.is_none() {
            self.outbox.push_back(Message::Have { piece });
        }
    }

    /// Takes the next message to send to the peer. Call after every input until `None`.
    pub fn poll_send(&mut self) -> Option<Message> {
        self.outbox.pop_front()
    }

    /// Declines `req`: with the Fast Extension an explicit `reject_request` (BEP 6), otherwise
    /// silence (BEP 3: the peer re-requests after a choke/unchoke or a timeout).
    fn reject(&mut self, req: BlockRequest) {
        if self.fast {
            self.outbox.push_back(Message::RejectRequest(req));
        }
    }

    /// `req` asks for a piece that failed its hash check after it was announced: it is
    /// declined (BEP 6 `reject_request`; silence for older peers).
    pub fn withhold(&mut self, req: BlockRequest) {
        self.reject(req);
    }

    /// A disk read for `req` finished after the peer was choked: it is not sent, so it is
    /// declined instead.
    pub fn stale_read(&mut self, req: BlockRequest) {
        self.reject(req);
    }

    /// Applies one message from the peer.
    ///
    /// # Errors
    /// [`PeerError`] when the peer broke the protocol; the caller closes the connection.
    pub fn handle_message(
        &mut self,
        now: Instant,
        msg: &Message,
        torrent: &mut impl PieceMap,
    ) -> Result<Step, PeerError> {
        self.last_recv = now;
        let count = torrent.piece_count();
        match msg {
            Message::Request(_) | Message::Cancel(_) | Message::Piece { .. } => {}
            Message::Have { .. } => {
                self.haves = self.haves.saturating_add(1);
                if self.haves > self.have_budget {
                    return Err(PeerError::HaveFlood {
                        got: self.haves,
                        pieces: count,
                    });
                }
            }
            _ => self.charge_chatter(now)?,
        }
        match msg {
            Message::Interested if !self.interested => {
                self.interested = true;
                return Ok(Step::Interested);
            }
            Message::NotInterested if self.interested => {
                self.interested = false;
                if !self.choked {
                    self.choke();
                }
                return Ok(Step::NotInterested);
            }
            Message::Have { piece }
            | Message::SuggestPiece(piece)
            | Message::AllowedFast(piece)
                if *piece >= count =>
            {
                return Err(PeerError::PieceOutOfRange {
                    piece: *piece,
                    count,
                });
            }
            // BEP 3 says a bitfield comes first only; aria2c sends one later when it has pieces,
            // and libtorrent accepts that, so only its size and spare bits are checked.
            Message::Bitfield(bits) => {
                check_bitfield(bits, count)?;
                if let Some(avail) = torrent.super_seed_availability() {
                    for (i, n) in avail.iter_mut().enumerate() {
                        if bits.get(i / 8).is_some_and(|b| b & (0x80 >> (i % 8)) != 0) {
                            *n = n.saturating_add(1);
                        }
                    }
                }
            }
            Message::Have { piece } => {
                if let Some(avail) = torrent.super_seed_availability() {
                    if let Some(n) = avail.get_mut(*piece as usize) {
                        *n = n.saturating_add(1);
                    }
                    // BEP 16: the peer passed on what it was offered; offer the next piece.
                    if self.passed_on(*piece) {
                        self.offer_next(torrent);
                    }
                }
            }
            Message::Request(req) => self.on_request(*req, torrent)?,
            Message::Cancel(req) => {
                // BEP 6: a cancelled request is still answered, by the block or by a reject.
                if let Some(i) = self.queue.iter().position(|r| r == req) {
                    self.queue.remove(i);
                    self.reject(*req);
                }
            }
            Message::Piece { .. } => return Err(PeerError::UnrequestedPiece),
            Message::Port(port) => return Ok(Step::DhtPort(*port)),
            Message::Unknown { id, payload } => {
                // BEP 52 hash messages; anything else unknown is ignored (BEP 3).
                if let Some(HashMessage::Request(req)) = HashMessage::parse(*id, payload)? {
                    return Ok(Step::HashRequest(req));
                }
            }
            Message::Extended {
                id: extension::HANDSHAKE_ID,
                payload,
            } => {
                self.extension_handshakes += 1;
                if self.extension_handshakes > MAX_EXTENSION_HANDSHAKES {
                    return Err(PeerError::TooManyExtensionHandshakes(
                        self.extension_handshakes,
                    ));
                }
                let hs = ExtensionHandshake::parse(payload)?;
                self.client = hs.client.or(self.client.take());
                self.peer_ut_metadata = hs.ut_metadata;
                self.peer_ut_pex = hs.ut_pex.filter(|_| !torrent.is_private());
                self.listen_port = hs.listen_port.or(self.listen_port);
            }
            Message::Extended {
                id: OUR_UT_PEX_ID,
                payload,
            } if !torrent.is_private() => {
                let pex = PexMessage::parse(payload)?;
                if !self.pex_due(now)? {
                    return Ok(Step::Continue);
                }
                let peers: Vec<SocketAddr> = pex
                    .added
                    .into_iter()
                    .map(|(a, _)| a)
                    .take(MAX_PEX_DIALS_PER_MESSAGE)
                    .collect();
                if !peers.is_empty() {
                    return Ok(Step::Peers(peers));
                }
            }
            Message::Extended {
                id: OUR_UT_METADATA_ID,
                payload,
            } => {
                if let MetadataMessage::Request { piece } = MetadataMessage::parse(payload)?
                    && let Some(id) = self.peer_ut_metadata
                {
                    let reply = extension::encode_metadata_reply(piece, torrent.info_bytes());
                    self.outbox.push_back(Message::Extended {
                        id,
                        payload: reply.into(),
                    });
                }
            }
            // Choke/unchoke of us, have, port, extensions and unknown ids mean nothing to a seed
            // (BEP 3: unknown messages are ignored).
            _ => {}
        }
        Ok(Step::Continue)
    }

    fn on_request(&mut self, req: BlockRequest, torrent: &impl PieceMap) -> Result<(), PeerError> {
        let count = torrent.piece_count();
        let Some(piece_len) = torrent.piece_len(req.piece) else {
            return Err(PeerError::PieceOutOfRange {
                piece: req.piece,
                count,
            });
        };
        let end = req.begin.checked_add(req.length);
        if req.length == 0 || req.length > MAX_BLOCK_LEN || end.is_none_or(|e| e > piece_len) {
            return Err(PeerError::BadRequest {
                piece: req.piece,
                begin: req.begin,
                length: req.length,
            });
        }
        if torrent.withheld(req.piece) {
            self.reject(req);
            return Ok(());
        }
        let offered = self
            .super_offered
            .as_ref()
            .is_none_or(|o| o.offered.contains(&req.piece));
        if !torrent.have(req.piece) || !offered {
            return Err(PeerError::RequestedMissingPiece { piece: req.piece });
        }
        if self.choked {
            self.requests_while_choked += 1;
            if self.requests_while_choked > MAX_REQUESTS_WHILE_CHOKED {
                return Err(PeerError::RequestsWhileChoked {
                    count: self.requests_while_choked,
                });
            }
            self.reject(req);
            return Ok(());
        }
        if self.queue.len() >= MAX_REQUEST_QUEUE {
            self.dropped_requests += 1;
            self.reject(req);
        } else {
            self.queue.push_back(req);
            if let Some(offers) = &mut self.super_offered {
                offers.requested.insert(req.piece);
            }
        }
        Ok(())
    }

    /// Chokes the peer (queues `choke`): pending requests are discarded (BEP 3) or rejected
    /// (BEP 6), and reads in flight become stale.
    pub fn choke(&mut self) {
        self.choked = true;
        self.choke_epoch = self.choke_epoch.wrapping_add(1);
        self.outbox.push_back(Message::Choke);
        while let Some(req) = self.queue.pop_front() {
            self.reject(req);
        }
    }

    /// Unchokes the peer (queues `unchoke`) and forgives requests it sent while choked.
    pub fn unchoke(&mut self) {
        self.choked = false;
        self.requests_while_choked = 0;
        self.outbox.push_back(Message::Unchoke);
    }

    /// The next queued request, without taking it.
    pub fn peek_request(&self) -> Option<&BlockRequest> {
        self.queue.front()
    }

    /// Takes the next queued request to read from disk, if any.
    pub fn next_request(&mut self) -> Option<BlockRequest> {
        self.queue.pop_front()
    }

    /// Number of requests waiting for a disk read (at most [`MAX_REQUEST_QUEUE`]).
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The requests waiting for a disk read, oldest first (for invariant checks and metrics).
    pub fn queued_requests(&self) -> impl ExactSizeIterator<Item = &BlockRequest> + '_ {
        self.queue.iter()
    }

    /// Number of messages queued for the peer and not yet taken with [`PeerSession::poll_send`].
    pub fn pending_sends(&self) -> usize {
        self.outbox.len()
    }
}

/// Checks a peer's bitfield: exactly `ceil(count / 8)` bytes, spare bits zero (BEP 3).
fn check_bitfield(bits: &[u8], count: u32) -> Result<(), PeerError> {
    let want = usize::try_from(count.div_ceil(8)).unwrap_or(usize::MAX);
    if bits.len() != want {
        return Err(PeerError::BadBitfield("wrong length"));
    }
    let spare = (want * 8) as u64 - u64::from(count);
    if spare > 0 && bits.last().is_some_and(|b| b & ((1u8 << spare) - 1) != 0) {
        return Err(PeerError::BadBitfield("spare bits set"));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// 10 pieces of 32 KiB, the last one 1 000 bytes; piece 9 missing.
    struct Map;
    impl PieceMap for Map {
        fn piece_count(&self) -> u32 {
            10
        }
        fn piece_len(&self, i: u32) -> Option<u32> {
            match i {
                0..9 => Some(32 * 1024),
                9 => Some(1000),
                _ => None,
            }
        }
        fn have(&self, i: u32) -> bool {
            i < 9
        }
        fn info_bytes(&self) -> &Bytes {
            static INFO: Bytes = Bytes::from_static(b"d4:name1:xe");
            &INFO
        }
        fn is_private(&self) -> bool {
            false
        }
        fn bitfield(&self) -> Bytes {
            Bytes::from_static(&[0xff, 0x80])
        }
    }

    fn ext(id: u8, payload: &'static [u8]) -> Message {
        Message::Extended {
            id,
            payload: Bytes::from_static(payload),
        }
    }

    #[test]
    fn serves_metadata_to_peers_that_asked_for_it() {
        let now = Instant::now();
        let mut s = PeerSession::bare(now, false, 10);
        let request = ext(OUR_UT_METADATA_ID, b"d8:msg_typei0e5:piecei0ee");
        s.handle_message(now, &request, &mut Map).unwrap();
        assert_eq!(
            s.poll_send(),
            None,
            "no reply before the peer's extension handshake"
        );
        s.handle_message(now, &ext(0, b"d1:md11:ut_metadatai7eee"), &mut Map)
            .unwrap();
        s.handle_message(now, &request, &mut Map).unwrap();
        let Some(Message::Extended { id: 7, payload }) = s.poll_send() else {
            panic!("a data reply is expected")
        };
        assert_eq!(
            &payload[..],
            b"d8:msg_typei1e5:piecei0e10:total_sizei11eed4:name1:xe"
        );
        let past = ext(OUR_UT_METADATA_ID, b"d8:msg_typei0e5:piecei1ee");
        s.handle_message(now, &past, &mut Map).unwrap();
        let Some(Message::Extended { payload, .. }) = s.poll_send() else {
            panic!("a reject is expected")
        };
        assert_eq!(&payload[..], b"d8:msg_typei2e5:piecei1ee");
    }

    #[test]
    fn a_piece_verified_later_is_announced_with_have() {
        let now = Instant::now();
        let mut s = PeerSession::bare(now, true, 10);
        while s.poll_send().is_some() {}
        s.announce_piece(7);
        assert_eq!(s.poll_send(), Some(Message::Have { piece: 7 }));
        assert_eq!(s.poll_send(), None);
    }

    #[test]
    fn fast_peers_get_rejects_instead_of_silence() {
        let now = Instant::now();
        let block = |begin| BlockRequest {
            piece: 1,
            begin,
            length: 16384,
        };
        let mut s = PeerSession::bare(now, true, 10);
        s.handle_message(now, &Message::Request(block(0)), &mut Map)
            .unwrap();
        assert_eq!(
            s.poll_send(),
            Some(Message::RejectRequest(block(0))),
            "choked"
        );
        s.handle_message(now, &Message::Interested, &mut Map)
            .unwrap();
        s.unchoke();
        assert_eq!(s.poll_send(), Some(Message::Unchoke));
        for begin in [0, 16384] {
            s.handle_message(now, &Message::Request(block(begin)), &mut Map)
                .unwrap();
        }
        s.handle_message(now, &Message::Cancel(block(0)), &mut Map)
            .unwrap();
        assert_eq!(
            s.poll_send(),
            Some(Message::RejectRequest(block(0))),
            "cancelled"
        );
        s.choke();
        assert_eq!(s.poll_send(), Some(Message::Choke));
        assert_eq!(
            s.poll_send(),
            Some(Message::RejectRequest(block(16384))),
            "pending at choke"
        );
        s.stale_read(block(0));
        assert_eq!(
            s.poll_send(),
            Some(Message::RejectRequest(block(0))),
            "read in flight"
        );
        assert_eq!(s.poll_send(), None);
    }

    #[test]
    fn plain_peers_get_silence() {
        let now = Instant::now();
        let block = BlockRequest {
            piece: 1,
            begin: 0,
            length: 16384,
        };
        let mut s = unchoked(now);
        while s.poll_send().is_some() {}
        s.handle_message(now, &Message::Request(block), &mut Map)
            .unwrap();
        s.handle_message(now, &Message::Cancel(block), &mut Map)
            .unwrap();
        s.handle_message(now, &Message::Request(block), &mut Map)
            .unwrap();
        s.choke();
        assert_eq!(s.poll_send(), Some(Message::Choke));
        assert_eq!(s.poll_send(), None);
    }

    #[test]
    fn pex_peers_are_reported_for_dialling() {
        let now = Instant::now();
        let mut s = PeerSession::bare(now, false, 10);
        s.handle_message(now, &ext(0, b"d1:md6:ut_pexi9ee1:pi7000ee"), &mut Map)
            .unwrap();
        assert_eq!((s.peer_ut_pex, s.listen_port), (Some(9), Some(7000)));
        let pex = ext(OUR_UT_PEX_ID, b"d5:added6:\x01\x02\x03\x04\x1a\xe1e");
        assert_eq!(
            s.handle_message(now, &pex, &mut Map),
            Ok(Step::Peers(vec!["1.2.3.4:6881".parse().unwrap()]))
        );
        assert!(
            s.handle_message(now, &ext(OUR_UT_PEX_ID, b"i1e"), &mut Map)
                .is_err()
        );
    }

    /// `Map` seeded in super-seed mode, with availability counts.
    struct SuperMap(Vec<u32>);
    impl PieceMap for SuperMap {
        fn piece_count(&self) -> u32 {
            Map.piece_count()
        }
        fn piece_len(&self, i: u32) -> Option<u32> {
            Map.piece_len(i)
        }
        fn have(&self, i: u32) -> bool {
            Map.have(i)
        }
        fn info_bytes(&self) -> &Bytes {
            static INFO: Bytes = Bytes::from_static(b"d4:name1:xe");
            &INFO
        }
        fn is_private(&self) -> bool {
            false
        }
        fn bitfield(&self) -> Bytes {
            Map.bitfield()
        }
        fn super_seed_availability(&mut self) -> Option<&mut [u32]> {
            Some(&mut self.0)
        }
    }

    const LOCAL: LocalInfo = LocalInfo {
        client: "seednode/test",
        dht_port: Some(6881),
        yourip: None,
    };

    #[test]
    fn greeting_is_bitfield_then_extension_handshake_then_port() {
        let now = Instant::now();
        let all = PeerCaps {
            fast: true,
            extensions: true,
            dht: true,
        };
        let mut s = PeerSession::new(now, all, &LOCAL, &mut Map);
        // Map misses piece 9: a BEP 3 bitfield even to a BEP 6 peer.
        assert_eq!(
            s.poll_send(),
            Some(Message::Bitfield(Bytes::from_static(&[0xff, 0x80])))
        );
        assert!(matches!(
            s.poll_send(),
            Some(Message::Extended { id: 0, .. })
        ));
        assert_eq!(s.poll_send(), Some(Message::Port(6881)));
        assert_eq!(s.poll_send(), None);
        let plain = PeerCaps::default();
        let mut s = PeerSession::new(now, plain, &LOCAL, &mut Map);
        assert!(matches!(s.poll_send(), Some(Message::Bitfield(_))));
        assert_eq!(s.poll_send(), None, "no extension handshake, no port");
    }

    #[test]
    fn super_seed_offers_least_available_piece_and_serves_only_offers() {
        let now = Instant::now();
        let caps = PeerCaps {
            fast: true,
            ..PeerCaps::default()
        };
        let mut map = SuperMap(vec![5, 5, 0, 5, 5, 5, 5, 5, 5, 0]);
        let mut s = PeerSession::new(now, caps, &LOCAL, &mut map);
        assert_eq!(s.poll_send(), Some(Message::HaveNone));
        // Piece 9 is the rarest but we do not have it; piece 2 is next.
        assert_eq!(s.poll_send(), Some(Message::Have { piece: 2 }));
        assert_eq!(map.0[2], 1, "the offer counts");
        s.handle_message(now, &Message::Interested, &mut map)
            .unwrap();
        s.unchoke();
        while s.poll_send().is_some() {}
        assert_eq!(
            s.handle_message(now, &req(1, 0, 16384), &mut map),
            Err(PeerError::RequestedMissingPiece { piece: 1 })
        );
        s.handle_message(now, &req(2, 0, 16384), &mut map).unwrap();
        // A `have` of a piece it was not offered counts towards availability only; passing on
        // the offered piece earns the next offer.
        s.handle_message(now, &Message::Have { piece: 3 }, &mut map)
            .unwrap();
        assert_eq!(s.poll_send(), None, "piece 3 was not offered");
        assert_eq!(map.0[3], 6);
        s.handle_message(now, &Message::Have { piece: 2 }, &mut map)
            .unwrap();
        assert_eq!(map.0[2], 2);
        // The next offer: the least available of the rest, the first of the ties.
        assert_eq!(s.poll_send(), Some(Message::Have { piece: 0 }));
    }

    #[test]
    fn super_seed_offers_are_earned_by_downloading_not_by_repeating_have() {
        let now = Instant::now();
        let mut map = SuperMap(vec![0; 10]);
        let mut s = PeerSession::new(now, PeerCaps::default(), &LOCAL, &mut map);
        assert_eq!(s.poll_send(), Some(Message::Have { piece: 0 }));
        // Announcing the offered piece without downloading it earns nothing, however often.
        for _ in 0..20 {
            s.handle_message(now, &Message::Have { piece: 0 }, &mut map)
                .unwrap();
        }
        assert_eq!(s.poll_send(), None);
        s.handle_message(now, &Message::Interested, &mut map)
            .unwrap();
        s.unchoke();
        s.handle_message(now, &req(0, 0, 16384), &mut map).unwrap();
        while s.poll_send().is_some() {}
        // Downloaded and announced: one new offer, and only one.
        for _ in 0..20 {
            s.handle_message(now, &Message::Have { piece: 0 }, &mut map)
                .unwrap();
        }
        assert_eq!(s.poll_send(), Some(Message::Have { piece: 1 }));
        assert_eq!(s.poll_send(), None);
    }

    #[test]
    fn have_flood_disconnects() {
        let now = Instant::now();
        let mut s = PeerSession::bare(now, false, 10);
        for i in 0..10 + HAVE_SLACK {
            s.handle_message(now, &Message::Have { piece: i % 10 }, &mut Map)
                .unwrap();
        }
        assert!(matches!(
            s.handle_message(now, &Message::Have { piece: 0 }, &mut Map),
            Err(PeerError::HaveFlood { .. })
        ));
    }

    #[test]
    fn chatter_flood_disconnects_but_a_steady_trickle_does_not() {
        let start = Instant::now();
        let unknown = Message::Unknown {
            id: 99,
            payload: Bytes::from_static(b"x"),
        };
        let mut s = PeerSession::bare(start, false, 10);
        for _ in 0..CHATTER_BURST {
            s.handle_message(start, &unknown, &mut Map).unwrap();
        }
        assert!(matches!(
            s.handle_message(start, &unknown, &mut Map),
            Err(PeerError::MessageFlood { .. })
        ));
        // At the average rate, a peer goes on for ever.
        let mut s = PeerSession::bare(start, false, 10);
        let step = Duration::from_millis(1000 / u64::from(CHATTER_PER_SEC));
        for i in 0..10_000u32 {
            s.handle_message(start + step * i, &Message::KeepAlive, &mut Map)
                .unwrap();
        }
    }

    #[test]
    fn pex_is_honoured_once_a_minute_and_a_flood_disconnects() {
        let start = Instant::now();
        let mut s = PeerSession::bare(start, false, 10);
        let pex = ext(OUR_UT_PEX_ID, b"d5:added6:\x01\x02\x03\x04\x1a\xe1e");
        let peers = Step::Peers(vec!["1.2.3.4:6881".parse().unwrap()]);
        assert_eq!(s.handle_message(start, &pex, &mut Map), Ok(peers.clone()));
        let t = start + Duration::from_secs(30);
        assert_eq!(s.handle_message(t, &pex, &mut Map), Ok(Step::Continue));
        let t = start + PEX_MIN_INTERVAL;
        assert_eq!(s.handle_message(t, &pex, &mut Map), Ok(peers));
        for i in 1..=MAX_EARLY_PEX {
            let t = t + Duration::from_secs(u64::from(i));
            assert_eq!(s.handle_message(t, &pex, &mut Map), Ok(Step::Continue));
        }
        let t = t + Duration::from_secs(u64::from(MAX_EARLY_PEX) + 1);
        assert!(matches!(
            s.handle_message(t, &pex, &mut Map),
            Err(PeerError::PexFlood { .. })
        ));
    }

    #[test]
    fn bounds_extension_handshakes() {
        let now = Instant::now();
        let mut s = PeerSession::bare(now, false, 10);
        for _ in 0..MAX_EXTENSION_HANDSHAKES {
            s.handle_message(now, &ext(0, b"de"), &mut Map).unwrap();
        }
        assert!(s.handle_message(now, &ext(0, b"de"), &mut Map).is_err());
        assert!(
            PeerSession::bare(now, false, 10)
                .handle_message(now, &ext(0, b"l"), &mut Map)
                .is_err()
        );
    }

    fn req(piece: u32, begin: u32, length: u32) -> Message {
        Message::Request(BlockRequest {
            piece,
            begin,
            length,
        })
    }

    fn unchoked(now: Instant) -> PeerSession {
        let mut s = PeerSession::bare(now, false, 10);
        assert_eq!(
            s.handle_message(now, &Message::Interested, &mut Map),
            Ok(Step::Interested)
        );
        s.unchoke();
        s
    }

    #[test]
    fn queues_valid_requests_and_honours_cancel() {
        let now = Instant::now();
        let mut s = unchoked(now);
        s.handle_message(now, &req(0, 0, 16384), &mut Map).unwrap();
        s.handle_message(now, &req(0, 16384, 16384), &mut Map)
            .unwrap();
        let Message::Request(second) = req(0, 16384, 16384) else {
            unreachable!()
        };
        s.handle_message(now, &Message::Cancel(second), &mut Map)
            .unwrap();
        assert_eq!(
            s.next_request(),
            Some(BlockRequest {
                piece: 0,
                begin: 0,
                length: 16384
            })
        );
        assert_eq!(s.next_request(), None);
    }

    #[test]
    fn rejects_requests_out_of_range() {
        let now = Instant::now();
        for (p, b, l) in [
            (10, 0, 16384),
            (u32::MAX, 0, 1),
            (0, 32 * 1024, 1),
            (0, 0, 0),
            (0, 0, 16385),
            (0, 0xFFFF_C000, 0x4000),
            (8, 16385, 16384),
            (9, 0, 1001),
        ] {
            let mut s = unchoked(now);
            assert!(
                s.handle_message(now, &req(p, b, l), &mut Map).is_err(),
                "{p} {b} {l}"
            );
        }
        let mut s = unchoked(now);
        assert_eq!(
            s.handle_message(now, &req(9, 0, 1000), &mut Map),
            Err(PeerError::RequestedMissingPiece { piece: 9 })
        );
    }

    #[test]
    fn drops_peer_after_too_many_requests_while_choked() {
        let now = Instant::now();
        let mut s = PeerSession::bare(now, false, 10);
        for _ in 0..MAX_REQUESTS_WHILE_CHOKED {
            s.handle_message(now, &req(0, 0, 16384), &mut Map).unwrap();
        }
        assert_eq!(s.queued(), 0, "nothing is served while choked");
        assert!(matches!(
            s.handle_message(now, &req(0, 0, 16384), &mut Map),
            Err(PeerError::RequestsWhileChoked { .. })
        ));
    }

    #[test]
    fn request_queue_is_bounded() {
        let now = Instant::now();
        let mut s = unchoked(now);
        for _ in 0..MAX_REQUEST_QUEUE + 10 {
            s.handle_message(now, &req(1, 0, 16384), &mut Map).unwrap();
        }
        assert_eq!(s.queued(), MAX_REQUEST_QUEUE);
        assert_eq!(s.dropped_requests, 10);
    }

    #[test]
    fn choke_discards_queue_and_bumps_epoch() {
        let now = Instant::now();
        let mut s = unchoked(now);
        s.handle_message(now, &req(1, 0, 16384), &mut Map).unwrap();
        s.choke();
        assert_eq!((s.queued(), s.choke_epoch), (0, 1));
    }

    #[test]
    fn checks_bitfield_and_have() {
        let now = Instant::now();
        let ok = Message::Bitfield(Bytes::from_static(&[0xff, 0xc0]));
        assert!(
            PeerSession::bare(now, false, 10)
                .handle_message(now, &ok, &mut Map)
                .is_ok()
        );
        for bad in [&[0xff][..], &[0xff, 0xc0, 0], &[0xff, 0xe0]] {
            let m = Message::Bitfield(Bytes::copy_from_slice(bad));
            assert!(
                PeerSession::bare(now, false, 10)
                    .handle_message(now, &m, &mut Map)
                    .is_err()
            );
        }
        let mut s = PeerSession::bare(now, false, 10);
        s.handle_message(now, &Message::KeepAlive, &mut Map)
            .unwrap();
        assert!(
            s.handle_message(now, &ok, &mut Map).is_ok(),
            "a late bitfield is tolerated (aria2c)"
        );
        assert!(
            s.handle_message(now, &Message::Have { piece: 10 }, &mut Map)
                .is_err()
        );
        assert!(
            s.handle_message(now, &Message::Have { piece: 9 }, &mut Map)
                .is_ok()
        );
    }

    #[test]
    fn unrequested_piece_is_fatal() {
        let now = Instant::now();
        let m = Message::Piece {
            piece: 0,
            begin: 0,
            block: Bytes::from_static(&[0; 8]),
        };
        assert_eq!(
            PeerSession::bare(now, false, 10).handle_message(now, &m, &mut Map),
            Err(PeerError::UnrequestedPiece)
        );
    }
}
