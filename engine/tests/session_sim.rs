//! A deterministic simulation of a seed's peer sessions and its choker (STYLE.md §7, kind 5):
//! simulated leechers of two torrents, each with its own [`PeerSession`], one shared
//! [`Choker`], a simulated disk, a virtual clock, a fixed-seed PRNG and a step bound. No
//! sockets, no threads, no sleeping: simulated minutes take milliseconds.
//!
//! The loop does what `engine/src/reactor/peer.rs` does with the same machines: decode the
//! peer's frames, `handle_message`, route the `Step` to the choker (`interested`, `leave`,
//! `record_request`), drain `poll_send`, take queued requests for disk reads
//! (`peek_request`/`next_request`), finish them (sent, or `stale_read` after a choke),
//! `record_upload`, `tick` the choker, apply its decisions, and on an error close the
//! connection (`leave`).
//!
//! Checked: every well-behaved leecher (fast or slow, with or without BEP 6) gets every block
//! exactly once with the right bytes and is never disconnected; each hostile peer is closed with
//! its expected `PeerError` within [`HOSTILE_DEADLINE`]; the unchoked sessions never exceed the
//! slot counts and always match the choker's view; the run is fast in real time.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use seednode::choker::{Choker, Decision};
use seednode::limits::{MAX_MESSAGES_PER_WAKE, MAX_READS_IN_FLIGHT_PER_PEER, MAX_REQUEST_QUEUE};
use seednode::session::{LocalInfo, PeerCaps, PeerError, PeerSession, PieceMap, Step};
use seednode_wire::limits::MAX_BLOCK_LEN;
use seednode_wire::peer::extension::HANDSHAKE_ID;
use seednode_wire::peer::pex::OUR_UT_PEX_ID;
use seednode_wire::peer::{BlockRequest, Message, decode_frame, max_frame_len};

/// PRNG seeds the simulation runs with.
const SEEDS: [u64; 4] = [1, 7, 0x05ee_d0de, 0xdead_beef_cafe];
/// Pieces per torrent.
const PIECES: u32 = 128;
/// Piece length, bytes: four blocks.
const PIECE_LEN: u32 = 4 * MAX_BLOCK_LEN;
/// The last piece's length: an odd size, two and a bit blocks.
const LAST_PIECE_LEN: u32 = 2 * MAX_BLOCK_LEN + 1_234;
/// Torrents seeded; the leechers are spread over them.
const TORRENTS: usize = 2;
/// Upload slots per torrent and over all torrents.
const SLOTS_PER_TORRENT: usize = 3;
const GLOBAL_SLOTS: usize = 4;
/// Well-behaved leechers per torrent: (pipelining, slow). Torrent 0 has enough to fill its own
/// slots, torrent 1 does not, so both caps are reached (the run checks that they were).
const LEECHERS: [(usize, usize); TORRENTS] = [(5, 1), (2, 1)];
/// Requests a fast leecher keeps outstanding.
const PIPELINE: usize = 8;
/// A slow leecher asks for one block this often.
const SLOW_INTERVAL: Duration = Duration::from_secs(1);
/// One loop turn of simulated time; a disk read takes one turn.
const TICK: Duration = Duration::from_millis(100);
/// Blocks the seed uploads per turn over all peers (20 a second, 320 KiB/s): a leecher with a
/// slot needs longer than `ROTATION_INTERVAL` for a torrent, so the leechers compete for the
/// slots and the choker's rotation and optimistic unchoke come into play.
const UPLOAD_BLOCKS_PER_TICK: usize = 2;
/// The step bound: simulated time after which the run fails.
const MAX_SIM_TIME: Duration = Duration::from_secs(30 * 60);
/// A hostile peer must be closed within this much simulated time of connecting.
const HOSTILE_DEADLINE: Duration = Duration::from_secs(60);
/// Real time one seed's run may take (it takes a few milliseconds; the bound only catches a
/// busy loop or a real sleep).
const REAL_TIME_BUDGET: Duration = Duration::from_secs(1);

/// xorshift64*: small, fixed-seed, good enough for picking blocks.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// A torrent the seed has completely: its bytes, generated from the seed.
struct SimTorrent {
    data: Bytes,
    info: Bytes,
}

impl SimTorrent {
    fn new(rng: &mut Rng) -> Self {
        let len = (PIECES - 1) * PIECE_LEN + LAST_PIECE_LEN;
        // A random word every 64 bytes: cheap, and no two blocks alike.
        let mut data = vec![0u8; len as usize];
        for chunk in data.chunks_mut(64) {
            let word = rng.next_u64().to_le_bytes();
            let n = chunk.len().min(8);
            chunk[..n].copy_from_slice(&word[..n]);
        }
        Self {
            data: data.into(),
            info: Bytes::from_static(b"d4:name3:simi12:piece lengthi65536ee"),
        }
    }

    fn block(&self, req: &BlockRequest) -> Bytes {
        let start = (req.piece * PIECE_LEN + req.begin) as usize;
        self.data.slice(start..start + req.length as usize)
    }
}

impl PieceMap for SimTorrent {
    fn piece_count(&self) -> u32 {
        PIECES
    }
    fn piece_len(&self, index: u32) -> Option<u32> {
        match index {
            i if i + 1 == PIECES => Some(LAST_PIECE_LEN),
            i if i < PIECES => Some(PIECE_LEN),
            _ => None,
        }
    }
    fn have(&self, index: u32) -> bool {
        index < PIECES
    }
    fn info_bytes(&self) -> &Bytes {
        &self.info
    }
    fn is_private(&self) -> bool {
        false
    }
    fn bitfield(&self) -> Bytes {
        let mut bits = vec![0xff; PIECES.div_ceil(8) as usize];
        let spare = PIECES % 8;
        if spare != 0 {
            *bits.last_mut().unwrap() = 0xffu8.wrapping_shl(8 - spare);
        }
        bits.into()
    }
}

/// Blocks of a whole piece.
const BLOCKS_PER_PIECE: usize = (PIECE_LEN / MAX_BLOCK_LEN) as usize;

/// The index of `req` in [`all_blocks`].
fn block_index(req: &BlockRequest) -> usize {
    req.piece as usize * BLOCKS_PER_PIECE + (req.begin / MAX_BLOCK_LEN) as usize
}

/// Every block of a torrent as a request, in order.
fn all_blocks() -> Vec<BlockRequest> {
    let t = SimTorrent {
        data: Bytes::new(),
        info: Bytes::new(),
    };
    (0..PIECES)
        .flat_map(|piece| {
            let len = t.piece_len(piece).unwrap();
            (0..len.div_ceil(MAX_BLOCK_LEN)).map(move |b| BlockRequest {
                piece,
                begin: b * MAX_BLOCK_LEN,
                length: (len - b * MAX_BLOCK_LEN).min(MAX_BLOCK_LEN),
            })
        })
        .collect()
}

/// What a simulated peer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// Downloads every block it lacks, `pipeline` requests at a time, one request per
    /// `interval` at most; announces each finished piece; loses interest when done.
    Leecher { pipeline: usize, interval: Duration },
    /// Interested, then a `have` for every piece over and over.
    HaveFlood,
    /// Unknown extension messages, 200 a second.
    ExtensionFlood,
    /// A PEX message every second (BEP 11 says once a minute).
    PexFlood,
    /// Requests while choked, never interested.
    RequestsWhileChoked,
}

impl Behaviour {
    /// The error the peer must be closed with; `None` for a well-behaved one.
    fn expected_error(self) -> Option<&'static str> {
        match self {
            Self::Leecher { .. } => None,
            Self::HaveFlood => Some("have_flood"),
            Self::ExtensionFlood => Some("message_flood"),
            Self::PexFlood => Some("pex_flood"),
            Self::RequestsWhileChoked => Some("requests_while_choked"),
        }
    }
}

/// One simulated connection: the peer's side and the seed's.
struct Peer {
    behaviour: Behaviour,
    torrent: usize,
    caps: PeerCaps,
    connected_at: Instant,
    // The peer's side.
    /// Messages from the seed, not yet read by the peer.
    inbox: VecDeque<Message>,
    /// Bytes from the peer, not yet read by the seed.
    wire: BytesMut,
    /// Per block of [`all_blocks`]: received.
    got: Vec<bool>,
    /// Blocks not yet received.
    missing: usize,
    outstanding: Vec<BlockRequest>,
    choked: bool,
    interested: bool,
    next_act: Instant,
    counter: u32,
    done_at: Option<Instant>,
    // The seed's side.
    session: Option<PeerSession>,
    closed: Option<(PeerError, Instant)>,
}

/// A disk read in flight: the connection, the request, the choke epoch it was issued in and
/// when it finishes.
struct DiskRead {
    key: usize,
    req: BlockRequest,
    epoch: u32,
    due: Instant,
}

struct Sim {
    t0: Instant,
    now: Instant,
    rng: Rng,
    blocks: Vec<BlockRequest>,
    torrents: Vec<SimTorrent>,
    peers: Vec<Peer>,
    choker: Choker,
    disk: VecDeque<DiskRead>,
    uploaded: u64,
    /// Reads the seed may still issue this turn.
    upload_budget: usize,
    turn: usize,
    stats: Stats,
}

/// What happened, to show the run exercised the choker.
#[derive(Debug, Default)]
struct Stats {
    unchokes: u32,
    chokes: u32,
    stale_reads: u32,
    /// Most sessions of one torrent unchoked at once.
    most_unchoked_per_torrent: usize,
    /// Most sessions unchoked at once.
    most_unchoked: usize,
}

const LOCAL: LocalInfo = LocalInfo {
    client: "seednode/sim",
    dht_port: None,
    yourip: None,
};

impl Sim {
    fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let torrents: Vec<SimTorrent> = (0..TORRENTS).map(|_| SimTorrent::new(&mut rng)).collect();
        let t0 = Instant::now(); // the simulation's epoch, its only clock read
        let mut sim = Self {
            t0,
            now: t0,
            rng,
            blocks: all_blocks(),
            torrents,
            peers: Vec::new(),
            choker: Choker::new(t0, SLOTS_PER_TORRENT, GLOBAL_SLOTS),
            disk: VecDeque::new(),
            uploaded: 0,
            upload_budget: 0,
            turn: 0,
            stats: Stats::default(),
        };
        let mut behaviours = Vec::new();
        for (torrent, (fast, slow)) in LEECHERS.into_iter().enumerate() {
            for _ in 0..fast {
                let b = Behaviour::Leecher {
                    pipeline: PIPELINE,
                    interval: TICK,
                };
                behaviours.push((b, torrent));
            }
            for _ in 0..slow {
                let b = Behaviour::Leecher {
                    pipeline: 1,
                    interval: SLOW_INTERVAL,
                };
                behaviours.push((b, torrent));
            }
        }
        for (i, b) in [
            Behaviour::HaveFlood,
            Behaviour::ExtensionFlood,
            Behaviour::PexFlood,
            Behaviour::RequestsWhileChoked,
        ]
        .into_iter()
        .enumerate()
        {
            behaviours.push((b, i % TORRENTS));
        }
        // Peers arrive in a seeded order, one every few ticks.
        for i in (1..behaviours.len()).rev() {
            behaviours.swap(i, sim.rng.below(i + 1));
        }
        for (i, (behaviour, torrent)) in behaviours.into_iter().enumerate() {
            let caps = PeerCaps {
                fast: sim.rng.next_u64() & 1 == 1,
                extensions: true,
                dht: false,
            };
            let connected_at = t0 + TICK * (3 * i as u32);
            sim.peers.push(Peer {
                behaviour,
                torrent,
                caps,
                connected_at,
                inbox: VecDeque::new(),
                wire: BytesMut::new(),
                got: vec![false; sim.blocks.len()],
                missing: sim.blocks.len(),
                outstanding: Vec::new(),
                choked: true,
                interested: false,
                next_act: connected_at,
                counter: 0,
                done_at: None,
                session: None,
                closed: None,
            });
        }
        sim
    }

    /// Runs to the end; returns the simulated time it took.
    fn run(&mut self) -> Duration {
        loop {
            self.now += TICK;
            assert!(
                self.now - self.t0 <= MAX_SIM_TIME,
                "not done after {MAX_SIM_TIME:?}: {}",
                self.report()
            );
            self.connect();
            for key in 0..self.peers.len() {
                self.peer_acts(key);
            }
            for key in 0..self.peers.len() {
                self.seed_reads(key);
            }
            self.disk_done();
            // Round robin over the peers for the upload budget.
            self.upload_budget = UPLOAD_BLOCKS_PER_TICK;
            self.turn += 1;
            let n = self.peers.len();
            for i in 0..n {
                self.issue_reads((self.turn + i) % n);
            }
            if self.now >= self.choker.poll_timeout() {
                let decisions = self.choker.tick(self.now);
                self.apply(&decisions);
            }
            self.check_slots();
            if self.finished() {
                return self.now - self.t0;
            }
        }
    }

    fn finished(&self) -> bool {
        self.peers.iter().all(|p| match p.behaviour {
            Behaviour::Leecher { .. } => p.done_at.is_some(),
            _ => p.closed.is_some(),
        })
    }

    fn report(&self) -> String {
        self.peers
            .iter()
            .enumerate()
            .map(|(k, p)| {
                format!(
                    "\n  peer {k} {:?} torrent {} fast {}: {}/{} blocks, choked {}, closed {:?}",
                    p.behaviour,
                    p.torrent,
                    p.caps.fast,
                    p.got.iter().filter(|g| **g).count(),
                    p.got.len(),
                    p.choked,
                    p.closed
                )
            })
            .collect()
    }

    /// Peers whose handshake completes now get their session (the greeting is queued).
    fn connect(&mut self) {
        for key in 0..self.peers.len() {
            let p = &mut self.peers[key];
            if p.session.is_none() && p.closed.is_none() && p.connected_at <= self.now {
                let t = &mut self.torrents[p.torrent];
                p.session = Some(PeerSession::new(self.now, p.caps, &LOCAL, t));
                self.drain(key);
            }
        }
    }

    /// Moves the session's outbox to the peer's inbox, through the wire encoding.
    fn drain(&mut self, key: usize) {
        let p = &mut self.peers[key];
        let Some(s) = &mut p.session else { return };
        let mut buf = BytesMut::new();
        while let Some(msg) = s.poll_send() {
            msg.encode(&mut buf);
        }
        while let Some(msg) = decode_frame(&mut buf, max_frame_len(PIECES)).unwrap() {
            p.inbox.push_back(msg);
        }
        assert!(buf.is_empty());
    }

    /// The peer reads what the seed sent, then sends what its behaviour says.
    fn peer_acts(&mut self, key: usize) {
        let now = self.now;
        let blocks = &self.blocks;
        let p = &mut self.peers[key];
        if p.session.is_none() {
            return;
        }
        let mut out: Vec<Message> = Vec::new();
        while let Some(msg) = p.inbox.pop_front() {
            match msg {
                Message::Choke => {
                    p.choked = true;
                    if !p.caps.fast {
                        // BEP 3: a choke discards every pending request.
                        p.outstanding.clear();
                    }
                }
                Message::Unchoke => p.choked = false,
                Message::Piece {
                    piece,
                    begin,
                    block,
                } => {
                    let req = BlockRequest {
                        piece,
                        begin,
                        length: block.len() as u32,
                    };
                    let pos = p.outstanding.iter().position(|r| *r == req);
                    let pos = pos.unwrap_or_else(|| panic!("peer {key}: unrequested {req:?}"));
                    p.outstanding.swap_remove(pos);
                    let i = block_index(&req);
                    assert_eq!(blocks[i], req);
                    assert!(!p.got[i], "peer {key}: {req:?} sent twice");
                    assert_eq!(block, self.torrents[p.torrent].block(&req), "wrong bytes");
                    p.got[i] = true;
                    p.missing -= 1;
                    let first = block_index(&BlockRequest {
                        piece,
                        begin: 0,
                        length: 0,
                    });
                    let piece_blocks = first..(first + BLOCKS_PER_PIECE).min(blocks.len());
                    if p.got[piece_blocks].iter().all(|g| *g) {
                        out.push(Message::Have { piece });
                    }
                }
                Message::RejectRequest(req) => {
                    assert!(p.caps.fast, "peer {key}: reject without BEP 6");
                    if let Some(pos) = p.outstanding.iter().position(|r| *r == req) {
                        p.outstanding.swap_remove(pos);
                    } else {
                        assert!(
                            matches!(p.behaviour, Behaviour::RequestsWhileChoked),
                            "peer {key}: reject of {req:?}, never requested"
                        );
                    }
                }
                _ => {}
            }
        }
        if now < p.next_act {
            p.sender(out);
            return;
        }
        match p.behaviour {
            Behaviour::Leecher { pipeline, interval } => {
                let done = p.missing == 0;
                if !p.interested && !done {
                    p.interested = true;
                    out.push(Message::Interested);
                }
                if done && p.done_at.is_none() {
                    p.done_at = Some(now);
                    p.interested = false;
                    out.push(Message::NotInterested);
                }
                if !p.choked && p.interested && p.outstanding.len() < p.missing.min(pipeline) {
                    // Missing blocks, from a seeded starting point (peers differ in order).
                    let start = self.rng.below(blocks.len());
                    let wanted: Vec<BlockRequest> = (0..blocks.len())
                        .map(|i| (start + i) % blocks.len())
                        .filter(|&i| !p.got[i] && !p.outstanding.contains(&blocks[i]))
                        .map(|i| blocks[i])
                        .take(pipeline.saturating_sub(p.outstanding.len()))
                        .collect();
                    for req in wanted {
                        p.outstanding.push(req);
                        out.push(Message::Request(req));
                    }
                }
                p.next_act = now + interval;
            }
            Behaviour::HaveFlood => {
                if !p.interested {
                    p.interested = true;
                    out.push(Message::Interested);
                }
                for _ in 0..50 {
                    out.push(Message::Have {
                        piece: p.counter % PIECES,
                    });
                    p.counter += 1;
                }
            }
            Behaviour::ExtensionFlood => {
                for _ in 0..10 {
                    out.push(Message::Extended {
                        id: 77,
                        payload: Bytes::from_static(b"d1:xi1ee"),
                    });
                }
            }
            Behaviour::PexFlood => {
                if p.counter == 0 {
                    out.push(Message::Extended {
                        id: HANDSHAKE_ID,
                        payload: Bytes::from_static(b"d1:md6:ut_pexi5eee"),
                    });
                }
                out.push(Message::Extended {
                    id: OUR_UT_PEX_ID,
                    payload: Bytes::from_static(b"d5:added6:\x0a\x00\x00\x01\x1a\xe1e"),
                });
                p.counter += 1;
                p.next_act = now + Duration::from_secs(1);
            }
            Behaviour::RequestsWhileChoked => {
                for i in 0..20 {
                    out.push(Message::Request(blocks[i % blocks.len()]));
                }
            }
        }
        p.sender(out);
    }

    /// The seed reads the peer's frames (at most [`MAX_MESSAGES_PER_WAKE`] a turn).
    fn seed_reads(&mut self, key: usize) {
        for _ in 0..MAX_MESSAGES_PER_WAKE {
            let p = &mut self.peers[key];
            let Some(session) = &mut p.session else {
                return;
            };
            let Some(msg) = decode_frame(&mut p.wire, max_frame_len(PIECES)).unwrap() else {
                return;
            };
            let torrent = p.torrent;
            let step = session.handle_message(self.now, &msg, &mut self.torrents[torrent]);
            let decisions = match step {
                Err(e) => {
                    self.close(key, e);
                    return;
                }
                Ok(Step::Interested) => self.choker.interested(self.now, key, torrent),
                Ok(Step::NotInterested) => self.choker.leave(self.now, key),
                Ok(Step::Continue) => {
                    if matches!(msg, Message::Request(_)) {
                        self.choker.record_request(self.now, key);
                    }
                    Vec::new()
                }
                Ok(Step::DhtPort(_) | Step::HashRequest(_) | Step::Peers(_)) => Vec::new(),
            };
            self.drain(key);
            self.apply(&decisions);
            self.check_slots();
        }
    }

    /// Closes connection `key` because of `e`: its slot goes to a waiting peer, its reads are
    /// forgotten.
    fn close(&mut self, key: usize, e: PeerError) {
        let p = &mut self.peers[key];
        p.session = None;
        p.closed = Some((e, self.now));
        self.disk.retain(|r| r.key != key);
        let decisions = self.choker.leave(self.now, key);
        self.apply(&decisions);
    }

    /// Applies the choker's decisions, as `apply_choking` does.
    fn apply(&mut self, decisions: &[Decision]) {
        for &(key, unchoke) in decisions {
            let Some(s) = &mut self.peers[key].session else {
                continue;
            };
            if unchoke {
                self.stats.unchokes += 1;
                s.unchoke();
            } else {
                self.stats.chokes += 1;
                s.choke();
            }
            self.drain(key);
        }
    }

    /// Issues disk reads for queued requests, as `issue_reads` does.
    fn issue_reads(&mut self, key: usize) {
        let Some(s) = &mut self.peers[key].session else {
            return;
        };
        while s.reads_in_flight < MAX_READS_IN_FLIGHT_PER_PEER && self.upload_budget > 0 {
            let Some(&req) = s.peek_request() else { break };
            self.upload_budget -= 1;
            assert_eq!(s.next_request(), Some(req));
            s.reads_in_flight += 1;
            self.disk.push_back(DiskRead {
                key,
                req,
                epoch: s.choke_epoch,
                due: self.now + TICK,
            });
        }
    }

    /// Finishes the reads that are due, as `on_disk_done` does.
    fn disk_done(&mut self) {
        while self.disk.front().is_some_and(|r| r.due <= self.now) {
            let read = self.disk.pop_front().unwrap();
            let p = &mut self.peers[read.key];
            let Some(s) = &mut p.session else { continue };
            s.reads_in_flight -= 1;
            if read.epoch == s.choke_epoch {
                let len = u64::from(read.req.length);
                s.uploaded += len;
                self.uploaded += len;
                self.choker.record_upload(read.key, len);
                let block = self.torrents[p.torrent].block(&read.req);
                p.inbox.push_back(Message::Piece {
                    piece: read.req.piece,
                    begin: read.req.begin,
                    block,
                });
            } else {
                self.stats.stale_reads += 1;
                s.stale_read(read.req);
                self.drain(read.key);
            }
        }
    }

    /// Unchoked sessions never exceed the slots and always match the choker.
    fn check_slots(&mut self) {
        let mut per_torrent = [0usize; TORRENTS];
        for (key, p) in self.peers.iter().enumerate() {
            let Some(s) = &p.session else { continue };
            assert_eq!(!s.choked, self.choker.is_unchoked(key), "peer {key}");
            assert!(s.queued() <= MAX_REQUEST_QUEUE);
            assert!(
                !s.choked || s.queued() == 0,
                "peer {key}: queued while choked"
            );
            if !s.choked {
                per_torrent[p.torrent] += 1;
                assert!(s.interested, "peer {key} unchoked but not interested");
            }
        }
        for n in per_torrent {
            assert!(n <= SLOTS_PER_TORRENT, "{per_torrent:?}");
            self.stats.most_unchoked_per_torrent = self.stats.most_unchoked_per_torrent.max(n);
        }
        let total = per_torrent.iter().sum::<usize>();
        assert!(total <= GLOBAL_SLOTS, "{per_torrent:?}");
        self.stats.most_unchoked = self.stats.most_unchoked.max(total);
    }
}

impl Peer {
    /// Puts `msgs` on the wire to the seed.
    fn sender(&mut self, msgs: Vec<Message>) {
        for m in msgs {
            m.encode(&mut self.wire);
        }
    }
}

fn simulate(seed: u64) {
    let started = Instant::now();
    let mut sim = Sim::new(seed);
    let took = sim.run();
    let real = started.elapsed();
    let total = sim.blocks.len();
    let mut leechers = 0;
    for (key, p) in sim.peers.iter().enumerate() {
        match (p.behaviour.expected_error(), &p.closed) {
            (None, None) => {
                leechers += 1;
                assert!(p.got.iter().all(|g| *g), "peer {key} missed blocks");
                assert!(p.outstanding.is_empty(), "peer {key}: {:?}", p.outstanding);
            }
            (None, Some(e)) => panic!("seed {seed}: well-behaved peer {key} closed: {e:?}"),
            (Some(want), Some((e, at))) => {
                assert_eq!(e.label(), want, "seed {seed}: peer {key} {:?}", p.behaviour);
                let after = *at - p.connected_at;
                assert!(
                    after <= HOSTILE_DEADLINE,
                    "peer {key} closed after {after:?}"
                );
            }
            (Some(want), None) => panic!("seed {seed}: peer {key} not closed ({want})"),
        }
    }
    assert_eq!(leechers, LEECHERS.iter().map(|(f, s)| f + s).sum::<usize>());
    assert_eq!(
        (sim.stats.most_unchoked_per_torrent, sim.stats.most_unchoked),
        (SLOTS_PER_TORRENT, GLOBAL_SLOTS),
        "the slot caps were never reached"
    );
    let torrent_len = u64::from((PIECES - 1) * PIECE_LEN + LAST_PIECE_LEN);
    assert_eq!(
        sim.uploaded,
        leechers as u64 * torrent_len,
        "every block exactly once"
    );
    assert_eq!(total, (PIECES as usize - 1) * 4 + 3);
    eprintln!(
        "seed {seed:#x}: {took:?} simulated in {real:?}, {:?}",
        sim.stats
    );
    assert!(sim.stats.chokes > 0, "no rotation: {:?}", sim.stats);
    assert!(
        real < REAL_TIME_BUDGET,
        "seed {seed}: {real:?} of real time"
    );
}

#[test]
fn leechers_finish_and_hostile_peers_are_closed() {
    for seed in SEEDS {
        simulate(seed);
    }
}
