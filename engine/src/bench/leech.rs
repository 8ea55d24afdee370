//! A sink leecher: downloads from any seeder as fast as it sends, and discards (or SHA-1 checks)
//! the blocks. It finds a seeder's own ceiling, which real clients hide because they spend about
//! a core each on hashing and writing what they get.
//!
//! Each connection handshakes (BEP 3, announcing BEP 6 and BEP 10), sends its extension
//! handshake when the seeder speaks BEP 10, `have_none` when it speaks BEP 6, then `interested`,
//! waits for `unchoke` and keeps [`LeechConfig::pipeline`] requests for 16 KiB blocks
//! outstanding (capped by the seeder's `reqq`). Connection `i` of `N` walks the pieces
//! `[i*P/N, (i+1)*P/N)` in order: once with [`Mode::Full`], round and round until the warm-up
//! plus the window end with [`Mode::Timed`]. Blocks are checked against the request they answer;
//! with [`LeechConfig::verify_pieces`] the first pieces (or all) are assembled and checked
//! against the torrent's SHA-1. `bitfield`, `have_all`, `have`, `choke`/`unchoke`, BEP 6
//! `reject_request` (the block is asked for again) and keep-alives are handled; requests are
//! only sent once the seeder has every piece.
//!
//! Every wait is bounded: connecting and the handshake by [`HANDSHAKE_TIMEOUT`] (or the run's
//! bound if shorter), writes by [`WRITE_TIMEOUT`], the whole run by its [`Mode`]. A length
//! prefix over [`max_frame_len`] ends the connection before any memory is reserved.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use seednode_wire::metainfo::Metainfo;
use seednode_wire::peer::extension::{self, ExtensionHandshake};
use seednode_wire::peer::{HANDSHAKE_LEN, Handshake, id, max_frame_len};
use seednode_wire::{InfoHash, PeerId};
use serde::Serialize;
use sha1::{Digest as _, Sha1};

use super::limits::{
    BLOCK_LEN, HANDSHAKE_TIMEOUT, KEEPALIVE_INTERVAL, MAX_PIPELINE,
    MAX_VERIFY_BYTES_PER_CONNECTION, READ_WAKE_INTERVAL, RECV_BUF_LEN, WRITE_TIMEOUT,
};
use super::{Histogram, mb_per_s, median};

/// Length prefix of a frame, bytes (BEP 3).
const LEN_PREFIX_LEN: usize = 4;
/// Length of a `request` frame, bytes: prefix, id, index, begin, length (BEP 3).
const REQUEST_FRAME_LEN: usize = LEN_PREFIX_LEN + 1 + 12;
/// Client name sent in the BEP 10 extension handshake (`v`).
const CLIENT_NAME: &str = "seednode bench";
/// Longest client name kept from the seeder's extension handshake, characters.
const MAX_CLIENT_NAME_LEN: usize = 64;

/// Why a connection of the sink leecher failed: what the seeder did, or the local I/O error.
#[derive(Debug, thiserror::Error)]
pub enum LeechError {
    /// Connecting failed or timed out.
    #[error("connecting to {peer}: {source}")]
    Connect {
        /// The seeder.
        peer: SocketAddr,
        /// The error.
        source: io::Error,
    },
    /// A socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// The operation.
        what: &'static str,
        /// The error.
        source: io::Error,
    },
    /// The seeder sent no complete handshake in time, or closed before it.
    #[error("no handshake from the seeder: {0}")]
    NoHandshake(io::Error),
    /// The first 68 bytes are not a BEP 3 handshake.
    #[error("the seeder's handshake is not BitTorrent (BEP 3): {0}")]
    BadHandshake(seednode_wire::peer::FrameError),
    /// The seeder answered for another torrent.
    #[error("the seeder answered for info-hash {got}, not {want}")]
    WrongInfoHash {
        /// The info-hash in its handshake.
        got: InfoHash,
        /// Ours.
        want: InfoHash,
    },
    /// A length prefix over the limit for this torrent.
    #[error(
        "the seeder sent a frame of {len} bytes, over the limit of {limit} (BEP 3 length prefix)"
    )]
    FrameTooLong {
        /// The length prefix, bytes.
        len: usize,
        /// [`max_frame_len`] of the torrent, bytes.
        limit: usize,
    },
    /// A message shorter than its fixed fields.
    #[error("the seeder sent message id {id} of {len} bytes, too short for its fields")]
    TooShort {
        /// The message id.
        id: u8,
        /// Its length, bytes.
        len: usize,
    },
    /// `have` of a piece the torrent does not have.
    #[error("the seeder announced piece {piece}, out of range (the torrent has {pieces})")]
    PieceOutOfRange {
        /// The index sent.
        piece: u32,
        /// Pieces of the torrent.
        pieces: u32,
    },
    /// A `piece` message whose block lies outside its piece.
    #[error(
        "the seeder sent a block outside its piece (piece {piece}, begin {begin}, {length} bytes)"
    )]
    BlockOutsidePiece {
        /// `index`.
        piece: u32,
        /// `begin`, bytes.
        begin: u32,
        /// Block length, bytes.
        length: u32,
    },
    /// BEP 6 `have_none`: the peer is not a seeder.
    #[error("the peer has no pieces (BEP 6 have_none): it is not a seeder")]
    HaveNone,
    /// An assembled piece does not match its SHA-1.
    #[error("piece {piece} failed its SHA-1 check: the seeder sent wrong bytes")]
    HashMismatch {
        /// The piece.
        piece: u32,
    },
    /// [`Mode::Full`]: the slice did not arrive in time, or the seeder closed first.
    #[error("incomplete: {bytes} bytes of the slice received ({why})")]
    Incomplete {
        /// Block bytes received.
        bytes: u64,
        /// "timeout" or "closed by the seeder".
        why: &'static str,
    },
}

/// Why a torrent cannot be leeched.
#[derive(Debug, thiserror::Error)]
pub enum TorrentError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The error.
        source: io::Error,
    },
    /// The file is not a torrent.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// The error.
        source: seednode_wire::metainfo::MetainfoError,
    },
    /// A v2-only torrent: no SHA-1 piece space to request from.
    #[error("{0}: a v2-only torrent has no v1 pieces; use a v1 or hybrid torrent")]
    V2Only(String),
    /// No pieces.
    #[error("{0}: the torrent has no pieces")]
    Empty(String),
}

/// What the leecher needs of a torrent: its v1 piece space.
#[derive(Debug, Clone)]
pub struct Torrent {
    /// The v1 info-hash (BEP 3).
    pub info_hash: InfoHash,
    /// `piece length`, bytes.
    pub piece_length: u32,
    /// Total length, bytes.
    pub total_length: u64,
    /// `pieces`: the SHA-1 of each piece.
    pub piece_hashes: Vec<[u8; 20]>,
}

impl Torrent {
    /// Reads and parses a .torrent file.
    ///
    /// # Errors
    /// [`TorrentError`]: unreadable, not a torrent, v2-only, or empty.
    pub fn load(path: &Path) -> Result<Self, TorrentError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| TorrentError::Read {
            path: name.clone(),
            source,
        })?;
        let meta = Metainfo::from_bytes(&bytes).map_err(|source| TorrentError::Parse {
            path: name.clone(),
            source,
        })?;
        Self::from_metainfo(&meta, &name)
    }

    /// The piece space of `meta`; `name` names it in errors.
    ///
    /// # Errors
    /// [`TorrentError::V2Only`], [`TorrentError::Empty`].
    pub fn from_metainfo(meta: &Metainfo, name: &str) -> Result<Self, TorrentError> {
        if !meta.has_v1() {
            return Err(TorrentError::V2Only(name.to_owned()));
        }
        let t = Self {
            info_hash: meta.info_hash,
            piece_length: meta.info.piece_length,
            total_length: meta.info.total_length(),
            piece_hashes: meta.info.pieces.clone(),
        };
        if t.piece_count() == 0 || t.piece_length == 0 {
            return Err(TorrentError::Empty(name.to_owned()));
        }
        Ok(t)
    }

    /// Pieces of the torrent.
    #[must_use]
    pub fn piece_count(&self) -> u32 {
        u32::try_from(self.piece_hashes.len()).unwrap_or(u32::MAX)
    }

    /// Length of piece `p`, bytes (the last one may be short); 0 when out of range.
    #[must_use]
    pub fn piece_len(&self, p: u32) -> u32 {
        if p >= self.piece_count() {
            return 0;
        }
        let start = u64::from(p) * u64::from(self.piece_length);
        let len = self
            .total_length
            .saturating_sub(start)
            .min(u64::from(self.piece_length));
        u32::try_from(len).unwrap_or(0)
    }

    /// Pieces `[start, end)` of connection `index` of `count`.
    #[must_use]
    pub fn slice(&self, index: usize, count: usize) -> (u32, u32) {
        let p = u64::from(self.piece_count());
        let (i, n) = (index as u64, count.max(1) as u64);
        let at = |k: u64| u32::try_from(k * p / n).unwrap_or(u32::MAX);
        (at(i), at(i + 1))
    }
}

/// How long a connection runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// For `window` after `warmup` has passed since the connection, cycling through the slice;
    /// only blocks that arrive in the window count.
    Timed {
        /// Time before the window (a seeder's unchoke and ramp-up), not counted.
        warmup: Duration,
        /// The measured window.
        window: Duration,
    },
    /// Until every block of the slice arrived, bounded by the timeout.
    Full(Duration),
}

impl Mode {
    /// The run's own bound: warm-up plus window, or the timeout.
    #[must_use]
    pub fn bound(self) -> Duration {
        match self {
            Self::Timed { warmup, window } => warmup + window,
            Self::Full(d) => d,
        }
    }

    fn warmup(self) -> Duration {
        match self {
            Self::Timed { warmup, .. } => warmup,
            Self::Full(_) => Duration::ZERO,
        }
    }
}

/// A sink-leecher run.
#[derive(Debug, Clone)]
pub struct LeechConfig {
    /// The seeder.
    pub peer: SocketAddr,
    /// Concurrent connections, 1 to [`super::limits::MAX_LEECH_CONNECTIONS`], at most the
    /// torrent's piece count.
    pub connections: usize,
    /// With `Some(ip)`, connection `i` comes from `ip + i` (e.g. distinct 127.0.0.x addresses,
    /// since seeders limit connections per IP); otherwise from the kernel's choice.
    pub source: Option<Ipv4Addr>,
    /// How long each connection runs.
    pub mode: Mode,
    /// Requests outstanding per connection, 1 to [`MAX_PIPELINE`], capped by the seeder's `reqq`.
    pub pipeline: u32,
    /// Pieces per connection assembled and checked against their SHA-1 (`u32::MAX`: every
    /// piece, on every lap), bounded by [`MAX_VERIFY_BYTES_PER_CONNECTION`] at a time.
    pub verify_pieces: u32,
}

/// What one connection measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConnReport {
    /// Connection index.
    pub index: usize,
    /// The local address it came from.
    pub source: String,
    /// Block payload counted (in the window), bytes.
    pub bytes: u64,
    /// Block payload that arrived during the warm-up, bytes.
    pub warmup_bytes: u64,
    /// Seconds from the window's start to the connection's end.
    pub secs: f64,
    /// `bytes` over `secs`, MB/s.
    pub mb_per_s: f64,
    /// Seconds from connecting to the first block.
    pub first_block_secs: Option<f64>,
    /// Pieces assembled and found correct.
    pub verified_pieces: u64,
    /// Bytes of blocks not assembled for a check (over the verify budget or count).
    pub unverified_bytes: u64,
    /// BEP 6 `reject_request`s.
    pub rejects: u64,
    /// `choke`s.
    pub chokes: u64,
    /// Blocks that matched no outstanding request (duplicates after a choke), discarded.
    pub unrequested: u64,
    /// [`Mode::Full`]: the whole slice arrived.
    pub complete: bool,
    /// The seeder closed the connection.
    pub closed: bool,
    /// The seeder's BEP 10 `reqq`.
    pub reqq: Option<u32>,
    /// The seeder's BEP 10 `v`, truncated to 64 characters.
    pub client: String,
    /// Why the connection failed, if it did.
    pub error: Option<String>,
    /// Request-to-block latency.
    #[serde(skip)]
    pub latency: Histogram,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct LeechReport {
    /// The seeder.
    pub peer: String,
    /// The torrent's info-hash.
    pub info_hash: String,
    /// Connections opened.
    pub connections: usize,
    /// Block payload counted over every connection, bytes.
    pub bytes: u64,
    /// Longest connection time in the window, seconds.
    pub secs: f64,
    /// `bytes` over `secs`, MB/s (10^6 bytes per second).
    pub mb_per_s: f64,
    /// Slowest connection, MB/s.
    pub conn_min_mb_per_s: f64,
    /// Median connection, MB/s.
    pub conn_median_mb_per_s: f64,
    /// Fastest connection, MB/s.
    pub conn_max_mb_per_s: f64,
    /// Request-to-block latency quantiles, milliseconds.
    pub latency_p50_ms: f64,
    /// 90th percentile, ms.
    pub latency_p90_ms: f64,
    /// 99th percentile, ms.
    pub latency_p99_ms: f64,
    /// Blocks timed.
    pub blocks: u64,
    /// Pieces SHA-1 checked and correct.
    pub verified_pieces: u64,
    /// Connections that failed.
    pub errors: usize,
    /// Every connection.
    pub per_connection: Vec<ConnReport>,
}

impl LeechReport {
    fn new(peer: SocketAddr, info_hash: InfoHash, conns: Vec<ConnReport>) -> Self {
        let bytes = conns.iter().map(|c| c.bytes).sum();
        let secs = conns.iter().map(|c| c.secs).fold(0.0, f64::max);
        let rates: Vec<f64> = conns.iter().map(|c| c.mb_per_s).collect();
        let mut latency = Histogram::new();
        for c in &conns {
            latency.merge(&c.latency);
        }
        let ms = |q| latency.quantile_us(q) as f64 / 1000.0;
        Self {
            peer: peer.to_string(),
            info_hash: info_hash.to_hex(),
            connections: conns.len(),
            bytes,
            secs,
            mb_per_s: mb_per_s(bytes, secs),
            conn_min_mb_per_s: rates.iter().copied().reduce(f64::min).unwrap_or(0.0),
            conn_median_mb_per_s: median(&rates),
            conn_max_mb_per_s: rates.iter().copied().fold(0.0, f64::max),
            latency_p50_ms: ms(0.50),
            latency_p90_ms: ms(0.90),
            latency_p99_ms: ms(0.99),
            blocks: latency.count(),
            verified_pieces: conns.iter().map(|c| c.verified_pieces).sum(),
            errors: conns.iter().filter(|c| c.error.is_some()).count(),
            per_connection: conns,
        }
    }
}

/// Runs every connection of `config` against `torrent`, each on a thread, and reports them.
/// `progress` counts block bytes as they arrive (warm-up included), for a progress display.
/// A connection that fails is reported with its `error`; the run itself does not fail.
#[must_use]
pub fn run(torrent: &Torrent, config: &LeechConfig, progress: &AtomicU64) -> LeechReport {
    let conns = thread::scope(|s| {
        let handles: Vec<_> = (0..config.connections)
            .map(|i| s.spawn(move || run_connection(torrent, config, i, progress)))
            .collect();
        handles
            .into_iter()
            .enumerate()
            .map(|(i, h)| {
                h.join().unwrap_or_else(|_| ConnReport {
                    index: i,
                    error: Some("the connection thread panicked".to_owned()),
                    ..ConnReport::default()
                })
            })
            .collect()
    });
    LeechReport::new(config.peer, torrent.info_hash, conns)
}

/// A block: piece index, offset in the piece, length (BEP 3 `request` fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Block {
    piece: u32,
    begin: u32,
    length: u32,
}

/// Walks the blocks of a slice of pieces in order, once or round and round.
struct Cursor {
    start: u32,
    end: u32,
    piece: u32,
    begin: u32,
    wrap: bool,
}

impl Cursor {
    const fn new(start: u32, end: u32, wrap: bool) -> Self {
        Self {
            start,
            end,
            piece: start,
            begin: 0,
            wrap,
        }
    }

    fn next(&mut self, t: &Torrent) -> Option<Block> {
        if self.piece >= self.end {
            if !self.wrap || self.start >= self.end {
                return None;
            }
            self.piece = self.start;
            self.begin = 0;
        }
        let piece_len = t.piece_len(self.piece);
        let block = Block {
            piece: self.piece,
            begin: self.begin,
            length: BLOCK_LEN.min(piece_len - self.begin),
        };
        self.begin += block.length;
        if self.begin >= piece_len {
            self.piece += 1;
            self.begin = 0;
        }
        Some(block)
    }
}

/// A piece being assembled for its SHA-1 check.
struct PieceBuf {
    data: Vec<u8>,
    have: Vec<bool>,
    missing: usize,
}

/// One connection's protocol state.
struct Conn<'a> {
    torrent: &'a Torrent,
    mode: Mode,
    pipeline: u32,
    choked: bool,
    peer_has: Vec<bool>,
    peer_has_count: u32,
    cursor: Cursor,
    /// Requests sent and not yet answered, oldest first, with when they were sent.
    outstanding: VecDeque<(Block, Instant)>,
    /// Requests to send again: rejected, or dropped by a choke.
    retry: VecDeque<Block>,
    verify: HashMap<u32, PieceBuf>,
    verify_bytes: u64,
    verify_started: u32,
    verify_limit: u32,
    /// False during the warm-up: blocks go to `warmup_bytes`.
    counting: bool,
    report: ConnReport,
}

impl Conn<'_> {
    fn peer_is_seed(&self) -> bool {
        self.peer_has_count == self.torrent.piece_count()
    }

    fn set_have(&mut self, piece: u32) -> Result<(), LeechError> {
        let pieces = self.torrent.piece_count();
        let slot = self
            .peer_has
            .get_mut(piece as usize)
            .ok_or(LeechError::PieceOutOfRange { piece, pieces })?;
        if !*slot {
            *slot = true;
            self.peer_has_count += 1;
        }
        Ok(())
    }

    /// Handles one frame body (id byte first, never empty).
    fn handle(&mut self, body: &[u8], t0: Instant, now: Instant) -> Result<(), LeechError> {
        let msg_id = body[0];
        let word = |at: usize| -> Result<u32, LeechError> {
            body.get(at..at + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_be_bytes)
                .ok_or(LeechError::TooShort {
                    id: msg_id,
                    len: body.len(),
                })
        };
        match msg_id {
            id::CHOKE => {
                self.choked = true;
                self.report.chokes += 1;
                // BEP 3: a choke drops every pending request. With BEP 6 the seeder rejects them
                // instead; asking again is harmless either way (duplicates are discarded).
                while let Some((b, _)) = self.outstanding.pop_back() {
                    self.retry.push_front(b);
                }
            }
            id::UNCHOKE => self.choked = false,
            id::HAVE => self.set_have(word(1)?)?,
            id::BITFIELD => {
                let bits = &body[1..];
                for p in 0..self.torrent.piece_count() {
                    let byte = bits.get((p / 8) as usize).copied().unwrap_or(0);
                    if byte & (0x80 >> (p % 8)) != 0 {
                        self.set_have(p)?;
                    }
                }
            }
            id::HAVE_ALL => {
                self.peer_has.fill(true);
                self.peer_has_count = self.torrent.piece_count();
            }
            id::HAVE_NONE => return Err(LeechError::HaveNone),
            id::PIECE => {
                let piece = word(1)?;
                let begin = word(5)?;
                let data = &body[9..];
                let length = u32::try_from(data.len()).unwrap_or(u32::MAX);
                if u64::from(begin) + u64::from(length) > u64::from(self.torrent.piece_len(piece)) {
                    return Err(LeechError::BlockOutsidePiece {
                        piece,
                        begin,
                        length,
                    });
                }
                let block = Block {
                    piece,
                    begin,
                    length,
                };
                let sent = take_outstanding(&mut self.outstanding, block);
                if sent.is_none() && !take(&mut self.retry, block) {
                    self.report.unrequested += 1;
                    return Ok(());
                }
                if let Some(sent) = sent {
                    self.report
                        .latency
                        .record(now.saturating_duration_since(sent));
                }
                if self.counting {
                    self.report.bytes += u64::from(length);
                } else {
                    self.report.warmup_bytes += u64::from(length);
                }
                if self.report.first_block_secs.is_none() {
                    self.report.first_block_secs = Some(now.duration_since(t0).as_secs_f64());
                }
                self.check_block(block, data)?;
            }
            id::REJECT_REQUEST => {
                let block = Block {
                    piece: word(1)?,
                    begin: word(5)?,
                    length: word(9)?,
                };
                self.report.rejects += 1;
                if take_outstanding(&mut self.outstanding, block).is_some()
                    && !self.retry.contains(&block)
                {
                    self.retry.push_back(block);
                }
            }
            id::EXTENDED if body.get(1) == Some(&0) => {
                if let Ok(hs) = ExtensionHandshake::parse(&body[2..]) {
                    if let Some(reqq) = hs.reqq {
                        self.pipeline = self.pipeline.min(reqq).max(1);
                        self.report.reqq = Some(reqq);
                    }
                    if let Some(v) = hs.client {
                        self.report.client = v.chars().take(MAX_CLIENT_NAME_LEN).collect();
                    }
                }
            }
            // interested, not interested, request, cancel, port, suggest, allowed_fast,
            // other extended messages, BEP 52 hash messages: nothing a sink acts on.
            _ => {}
        }
        Ok(())
    }

    /// Copies a block into the piece being assembled for its check (starting one when the
    /// budget allows); checks the piece once it is whole.
    fn check_block(&mut self, block: Block, data: &[u8]) -> Result<(), LeechError> {
        if !self.verify.contains_key(&block.piece) {
            let len = self.torrent.piece_len(block.piece);
            if self.verify_started >= self.verify_limit
                || self.verify_bytes + u64::from(len) > MAX_VERIFY_BYTES_PER_CONNECTION
            {
                self.report.unverified_bytes += u64::from(block.length);
                return Ok(());
            }
            let blocks = len.div_ceil(BLOCK_LEN) as usize;
            self.verify.insert(
                block.piece,
                PieceBuf {
                    data: vec![0; len as usize],
                    have: vec![false; blocks],
                    missing: blocks,
                },
            );
            self.verify_bytes += u64::from(len);
            self.verify_started += 1;
        }
        let Some(buf) = self.verify.get_mut(&block.piece) else {
            return Ok(());
        };
        let slot = (block.begin / BLOCK_LEN) as usize;
        if !block.begin.is_multiple_of(BLOCK_LEN) || slot >= buf.have.len() || buf.have[slot] {
            return Ok(());
        }
        // In range: the block was checked against its piece's length on arrival.
        let at = block.begin as usize;
        buf.data[at..at + data.len()].copy_from_slice(data);
        buf.have[slot] = true;
        buf.missing -= 1;
        if buf.missing == 0 {
            let digest: [u8; 20] = Sha1::digest(&buf.data).into();
            let len = buf.data.len() as u64;
            if Some(&digest) != self.torrent.piece_hashes.get(block.piece as usize) {
                return Err(LeechError::HashMismatch { piece: block.piece });
            }
            self.verify.remove(&block.piece);
            self.verify_bytes -= len;
            self.report.verified_pieces += 1;
        }
        Ok(())
    }

    /// Appends requests to `out` until `pipeline` are outstanding.
    fn refill(&mut self, out: &mut Vec<u8>, now: Instant) {
        if self.choked || !self.peer_is_seed() {
            return;
        }
        while self.outstanding.len() < self.pipeline as usize {
            let Some(b) = self
                .retry
                .pop_front()
                .or_else(|| self.cursor.next(self.torrent))
            else {
                break;
            };
            out.extend_from_slice(&13u32.to_be_bytes());
            out.push(id::REQUEST);
            out.extend_from_slice(&b.piece.to_be_bytes());
            out.extend_from_slice(&b.begin.to_be_bytes());
            out.extend_from_slice(&b.length.to_be_bytes());
            self.outstanding.push_back((b, now));
        }
    }

    fn done(&self) -> bool {
        matches!(self.mode, Mode::Full(_))
            && self.outstanding.is_empty()
            && self.retry.is_empty()
            && self.cursor.piece >= self.cursor.end
    }
}

/// Removes `b` from `q` (looking at the front first), returning when it was requested.
fn take_outstanding(q: &mut VecDeque<(Block, Instant)>, b: Block) -> Option<Instant> {
    if q.front().is_some_and(|(x, _)| *x == b) {
        return q.pop_front().map(|(_, t)| t);
    }
    let i = q.iter().position(|(x, _)| *x == b)?;
    q.remove(i).map(|(_, t)| t)
}

/// Removes `b` from `q`; false when it is not there.
fn take(q: &mut VecDeque<Block>, b: Block) -> bool {
    match q.iter().position(|x| *x == b) {
        Some(i) => {
            q.remove(i);
            true
        }
        None => false,
    }
}

/// A peer ID of ours: `-SB0001-` and 12 digits from the clock, the process and the index.
fn peer_id(index: usize) -> PeerId {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut id = *b"-SB0001-000000000000";
    let digits = format!(
        "{:012}",
        (u64::from(nanos) ^ (u64::from(std::process::id()) << 20) ^ index as u64)
            % 1_000_000_000_000
    );
    id[8..].copy_from_slice(digits.as_bytes());
    PeerId(id)
}

/// Connects to `peer`, from `source` when given, within `timeout`.
fn connect(peer: SocketAddr, source: Option<IpAddr>, timeout: Duration) -> io::Result<TcpStream> {
    let Some(ip) = source else {
        return TcpStream::connect_timeout(&peer, timeout);
    };
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(peer),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.bind(&SocketAddr::new(ip, 0).into())?;
    socket.connect_timeout(&peer.into(), timeout)?;
    Ok(socket.into())
}

/// Runs connection `index`: connects, then the protocol until its mode says stop. Never panics
/// on the seeder's input; an error ends the connection and is put in the report.
fn run_connection(
    torrent: &Torrent,
    config: &LeechConfig,
    index: usize,
    progress: &AtomicU64,
) -> ConnReport {
    let t0 = Instant::now();
    let mut report = ConnReport {
        index,
        ..ConnReport::default()
    };
    let source = match config.source {
        None => None,
        Some(first) => {
            match u32::from(first)
                .checked_add(u32::try_from(index).unwrap_or(u32::MAX))
                .map(Ipv4Addr::from)
            {
                Some(ip) => Some(IpAddr::V4(ip)),
                None => {
                    report.error = Some(format!("connection {index}: no source address left"));
                    return report;
                }
            }
        }
    };
    let timeout = HANDSHAKE_TIMEOUT
        .min(config.mode.bound())
        .max(READ_WAKE_INTERVAL);
    let stream = match connect(config.peer, source, timeout) {
        Ok(s) => s,
        Err(source) => {
            report.error = Some(format!(
                "connection {index}: {}",
                LeechError::Connect {
                    peer: config.peer,
                    source
                }
            ));
            return report;
        }
    };
    report.source = stream
        .local_addr()
        .map_or_else(|_| "unknown".to_owned(), |a| a.to_string());
    let mut conn = match handshake(&stream, torrent, config, index, timeout) {
        Ok(conn) => conn,
        Err(e) => {
            report.error = Some(format!("connection {index}: {e}"));
            return report;
        }
    };
    conn.report.source = report.source;
    let result = transfer(&stream, &mut conn, config, t0, progress);
    let mut report = conn.report;
    report.mb_per_s = mb_per_s(report.bytes, report.secs);
    if let Err(e) = result {
        report.error = Some(format!("connection {index}: {e}"));
    }
    report
}

/// `read_exact` that gives up at `deadline` however slowly the bytes trickle in (a per-read
/// timeout alone would let a peer sending one byte at a time hold the run).
fn read_exact_by(r: &mut &TcpStream, buf: &mut [u8], deadline: Instant) -> io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{got} of {} bytes in time", buf.len()),
            ));
        }
        r.set_read_timeout(Some(left))?;
        match r.read(&mut buf[got..]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Exchanges handshakes (BEP 3, BEP 10, BEP 6) and sends `interested`.
fn handshake<'t>(
    stream: &TcpStream,
    torrent: &'t Torrent,
    config: &LeechConfig,
    index: usize,
    timeout: Duration,
) -> Result<Conn<'t>, LeechError> {
    let io = |what| move |source| LeechError::Io { what, source };
    stream.set_nodelay(true).map_err(io("set_nodelay"))?;
    stream
        .set_write_timeout(Some(WRITE_TIMEOUT.min(timeout)))
        .map_err(io("set_write_timeout"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(io("set_read_timeout"))?;
    let (mut r, mut w) = (stream, stream);
    let ours = Handshake {
        reserved: Handshake::reserved_bits(true, true, false),
        info_hash: torrent.info_hash,
        peer_id: peer_id(index),
    };
    w.write_all(&ours.encode())
        .map_err(io("sending the handshake"))?;
    let mut hs = [0u8; HANDSHAKE_LEN];
    read_exact_by(&mut r, &mut hs, Instant::now() + timeout).map_err(LeechError::NoHandshake)?;
    let theirs = Handshake::parse(&hs).map_err(LeechError::BadHandshake)?;
    if theirs.info_hash != torrent.info_hash {
        return Err(LeechError::WrongInfoHash {
            got: theirs.info_hash,
            want: torrent.info_hash,
        });
    }
    let mut out = Vec::with_capacity(256);
    if theirs.supports_extension_protocol() {
        let payload = extension::encode_handshake(CLIENT_NAME, config.pipeline, None, false, None);
        let len = u32::try_from(payload.len() + 2).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&[id::EXTENDED, 0]);
        out.extend_from_slice(&payload);
    }
    if theirs.supports_fast_extension() {
        out.extend_from_slice(&[0, 0, 0, 1, id::HAVE_NONE]);
    }
    out.extend_from_slice(&[0, 0, 0, 1, id::INTERESTED]);
    w.write_all(&out).map_err(io("sending interested"))?;
    stream
        .set_read_timeout(Some(READ_WAKE_INTERVAL))
        .map_err(io("set_read_timeout"))?;
    let (start, end) = torrent.slice(index, config.connections);
    Ok(Conn {
        torrent,
        mode: config.mode,
        pipeline: config.pipeline.clamp(1, MAX_PIPELINE),
        choked: true,
        peer_has: vec![false; torrent.piece_count() as usize],
        peer_has_count: 0,
        cursor: Cursor::new(start, end, matches!(config.mode, Mode::Timed { .. })),
        outstanding: VecDeque::with_capacity(MAX_PIPELINE as usize),
        retry: VecDeque::new(),
        verify: HashMap::new(),
        verify_bytes: 0,
        verify_started: 0,
        verify_limit: config.verify_pieces,
        counting: config.mode.warmup().is_zero(),
        report: ConnReport {
            index,
            ..ConnReport::default()
        },
    })
}

/// Requests and receives blocks until the mode's end, the seeder's close, or an error.
fn transfer(
    stream: &TcpStream,
    conn: &mut Conn<'_>,
    config: &LeechConfig,
    t0: Instant,
    progress: &AtomicU64,
) -> Result<(), LeechError> {
    let io = |what| move |source| LeechError::Io { what, source };
    let (mut r, mut w) = (stream, stream);
    let deadline = t0 + config.mode.bound();
    let window_start = t0 + config.mode.warmup();
    let max_len = max_frame_len(conn.torrent.piece_count()) as usize;
    // RECV_BUF_LEN holds two of the largest frames (a const assertion in `limits`).
    let mut buf = vec![0u8; RECV_BUF_LEN];
    let (mut head, mut tail) = (0usize, 0usize);
    let mut out = Vec::with_capacity(REQUEST_FRAME_LEN * MAX_PIPELINE as usize);
    let mut last_write = Instant::now();
    let result = loop {
        if conn.done() {
            conn.report.complete = true;
            break Ok(());
        }
        let now = Instant::now();
        conn.counting |= now >= window_start;
        if now >= deadline {
            if matches!(config.mode, Mode::Full(_)) {
                break Err(LeechError::Incomplete {
                    bytes: conn.report.bytes,
                    why: "timeout",
                });
            }
            break Ok(());
        }
        out.clear();
        conn.refill(&mut out, now);
        if out.is_empty() && now.duration_since(last_write) >= KEEPALIVE_INTERVAL {
            out.extend_from_slice(&[0, 0, 0, 0]);
        }
        if !out.is_empty() {
            w.write_all(&out).map_err(io("sending requests"))?;
            last_write = now;
        }
        if buf.len() - tail < LEN_PREFIX_LEN + max_len {
            buf.copy_within(head..tail, 0);
            tail -= head;
            head = 0;
        }
        match r.read(&mut buf[tail..]) {
            Ok(0) => {
                conn.report.closed = true;
                break Ok(());
            }
            Ok(n) => tail += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                ) =>
            {
                conn.report.closed = true;
                break Ok(());
            }
            Err(e) => break Err(io("receiving")(e)),
        }
        let now = Instant::now();
        let before = conn.report.bytes + conn.report.warmup_bytes;
        while let Some(prefix) = buf[head..tail].first_chunk::<LEN_PREFIX_LEN>() {
            let len = u32::from_be_bytes(*prefix) as usize;
            if len > max_len {
                return Err(LeechError::FrameTooLong {
                    len,
                    limit: max_len,
                });
            }
            if tail - head < LEN_PREFIX_LEN + len {
                break;
            }
            let body = &buf[head + LEN_PREFIX_LEN..head + LEN_PREFIX_LEN + len];
            head += LEN_PREFIX_LEN + len;
            if !body.is_empty() {
                conn.handle(body, t0, now)?;
            }
        }
        progress.fetch_add(
            conn.report.bytes + conn.report.warmup_bytes - before,
            Ordering::Relaxed,
        );
        if head == tail {
            head = 0;
            tail = 0;
        }
    };
    conn.report.secs = window_start.elapsed().as_secs_f64();
    if result.is_ok() && matches!(config.mode, Mode::Full(_)) && !conn.report.complete {
        return Err(LeechError::Incomplete {
            bytes: conn.report.bytes,
            why: "closed by the seeder",
        });
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn torrent(total: u64, piece_length: u32) -> Torrent {
        let pieces = total.div_ceil(u64::from(piece_length)) as usize;
        Torrent {
            info_hash: InfoHash([1; 20]),
            piece_length,
            total_length: total,
            piece_hashes: vec![[0; 20]; pieces],
        }
    }

    #[test]
    fn slices_cover_every_piece_once() {
        let t = torrent(10 * 32768 + 5, 32768);
        let mut next = 0;
        for i in 0..3 {
            let (a, b) = t.slice(i, 3);
            assert_eq!(a, next);
            next = b;
        }
        assert_eq!(next, t.piece_count());
        assert_eq!(t.piece_len(10), 5);
        assert_eq!(t.piece_len(11), 0);
    }

    #[test]
    fn cursor_splits_pieces_into_blocks_and_wraps() {
        let t = torrent(2 * 32768 + 100, 32768);
        let mut c = Cursor::new(1, 3, true);
        let blocks: Vec<_> = std::iter::from_fn(|| c.next(&t)).take(4).collect();
        assert_eq!(
            blocks
                .iter()
                .map(|b| (b.piece, b.begin, b.length))
                .collect::<Vec<_>>(),
            [
                (1, 0, BLOCK_LEN),
                (1, BLOCK_LEN, BLOCK_LEN),
                (2, 0, 100),
                (1, 0, BLOCK_LEN)
            ]
        );
    }

    #[test]
    fn hostile_messages_are_errors_not_panics() {
        let t = torrent(4 * 32768, 32768);
        let mut conn = Conn {
            torrent: &t,
            mode: Mode::Full(Duration::from_secs(1)),
            pipeline: 4,
            choked: true,
            peer_has: vec![false; 4],
            peer_has_count: 0,
            cursor: Cursor::new(0, 4, false),
            outstanding: VecDeque::new(),
            retry: VecDeque::new(),
            verify: HashMap::new(),
            verify_bytes: 0,
            verify_started: 0,
            verify_limit: u32::MAX,
            counting: true,
            report: ConnReport::default(),
        };
        let now = Instant::now();
        // Every id with every short length: never a panic.
        for msg_id in 0..=255u8 {
            for len in 0..14 {
                let mut body = vec![0u8; len + 1];
                body[0] = msg_id;
                let _ = conn.handle(&body, now, now);
            }
        }
        let mut have = vec![id::HAVE];
        have.extend_from_slice(&9u32.to_be_bytes());
        assert!(matches!(
            conn.handle(&have, now, now),
            Err(LeechError::PieceOutOfRange { piece: 9, .. })
        ));
        let mut piece = vec![id::PIECE];
        piece.extend_from_slice(&0u32.to_be_bytes());
        piece.extend_from_slice(&32760u32.to_be_bytes());
        piece.extend_from_slice(&[0; 16]);
        assert!(matches!(
            conn.handle(&piece, now, now),
            Err(LeechError::BlockOutsidePiece { .. })
        ));
    }

    #[test]
    fn wrong_piece_bytes_fail_the_sha1_check() {
        let t = torrent(BLOCK_LEN as u64, BLOCK_LEN);
        let mut conn = Conn {
            torrent: &t,
            mode: Mode::Full(Duration::from_secs(1)),
            pipeline: 4,
            choked: false,
            peer_has: vec![true],
            peer_has_count: 1,
            cursor: Cursor::new(0, 1, false),
            outstanding: VecDeque::new(),
            retry: VecDeque::new(),
            verify: HashMap::new(),
            verify_bytes: 0,
            verify_started: 0,
            verify_limit: u32::MAX,
            counting: true,
            report: ConnReport::default(),
        };
        let now = Instant::now();
        let mut out = Vec::new();
        conn.refill(&mut out, now);
        assert_eq!(out.len(), REQUEST_FRAME_LEN);
        let mut piece = vec![id::PIECE];
        piece.extend_from_slice(&[0; 8]);
        piece.extend_from_slice(&vec![7; BLOCK_LEN as usize]);
        assert!(matches!(
            conn.handle(&piece, now, now),
            Err(LeechError::HashMismatch { piece: 0 })
        ));
    }
}
