//! A BitTorrent leecher that takes blocks from a seeder as fast as it sends them and throws them
//! away: the load generator that finds a seeder's own ceiling, which real clients (aria2c,
//! libtorrent) hide because they spend about a core each on hashing and writing what they get.
//!
//! ```text
//! sink_leecher --torrent FILE --peer IP:PORT [--connections N] [--source 127.0.0.X]
//!     [--duration SECS [--warmup SECS] | --full [--timeout SECS]] [--pipeline BLOCKS]
//!     [--verify-pieces N] [--python PATH] [--dial-helper PATH] [--quiet]
//! ```
//!
//! Each connection handshakes (BEP 3, announcing BEP 6 and BEP 10), sends its extension
//! handshake when the seeder speaks BEP 10, `have_none` when it speaks BEP 6, then `interested`,
//! waits for `unchoke` and keeps `--pipeline` requests for 16 KiB blocks outstanding (capped by
//! the seeder's `reqq`). Connection `i` of `N` walks the pieces `[i*P/N, (i+1)*P/N)` in order:
//! once with `--full`, round and round until `--warmup` + `--duration` end otherwise (blocks that
//! arrive during the warm-up, while a seeder that rechokes every 10 s gets round to the new
//! peers, are not counted). `piece` payloads are discarded, except that the first
//! `--verify-pieces` pieces of each connection are assembled and checked against their SHA-1, to
//! prove the seeder sends the right bytes. `bitfield`,
//! `have_all`, `have`, `choke`/`unchoke`, BEP 6 `reject_request` (the block is requested again)
//! and keep-alives are handled; requests are only sent once the seeder has every piece.
//!
//! With `--source 127.0.0.X`, connection `i` comes from `127.0.0.X+i`: the standard library
//! cannot bind the local address of an outgoing connection, so each connection is a child process
//! started through `benches/scripts/dial_from.py`, which binds, connects and execs this program
//! with the socket as its stdin (`--stdin-socket`; nothing is relayed). Without `--source`, the
//! connections are threads of this process, all from the address the kernel picks (127.0.0.1).
//!
//! Output on stdout, one line per connection and a total, `key=value` separated by spaces:
//!
//! ```text
//! sink-result index=0 source=127.0.0.50:41234 bytes=21474836480 secs=10.000 first_block=0.004 ...
//! sink-total connections=1 bytes=21474836480 secs=10.000 mb_per_s=2147.5 verified=2 ...
//! ```
//!
//! `bytes` counts block payload only; `secs` runs from the TCP connection plus the warm-up to the
//! end of the duration (or the last block with `--full`). A connection the seeder never unchokes
//! reports 0 bytes; one the seeder closes reports what it got before and `closed=true`. Every wait
//! is bounded: the handshake by [`HANDSHAKE_TIMEOUT`], the whole run by `--warmup` + `--duration`
//! or `--timeout`.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use seednode_benches::{Args, Guard, cli_main, parse_number, parse_positive, workspace_root};
use seednode_wire::metainfo::Metainfo;
use seednode_wire::peer::extension::{self, ExtensionHandshake};
use seednode_wire::peer::{HANDSHAKE_LEN, Handshake, id, max_frame_len};
use seednode_wire::{InfoHash, PeerId};
use sha1::{Digest as _, Sha1};

/// Block length requested, bytes (BEP 3: every client uses 16 KiB).
const BLOCK_LEN: u32 = 16 * 1024;
/// Default requests kept outstanding per connection (2 MiB in flight).
const DEFAULT_PIPELINE: u32 = 128;
/// Most requests outstanding per connection: BEP 10 `reqq` values above it are clamped by
/// seednode-wire too.
const MAX_PIPELINE: u32 = extension::REQQ_RANGE.1;
/// Default length of a timed run.
const DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// Default bound on a `--full` download.
const DEFAULT_FULL_TIMEOUT: Duration = Duration::from_secs(300);
/// Bound on connecting and on the seeder's handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on one write of requests: the seeder stopped reading if it passes.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a blocked read wakes to look at the clock.
const READ_WAKE_INTERVAL: Duration = Duration::from_millis(100);
/// A keep-alive goes out when nothing else was sent for this long (seeders close idle peers after
/// about two minutes).
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);
/// Extra time the parent gives its connection processes beyond the run's own bound.
const CHILD_GRACE: Duration = Duration::from_secs(30);
/// Most connections in one run.
const MAX_CONNECTIONS: usize = 64;
/// Default pieces verified per connection.
const DEFAULT_VERIFY_PIECES: u32 = 2;
/// Receive buffer per connection, bytes: many blocks per `read`, and always room for the largest
/// frame accepted (checked at start-up).
const RECV_BUF_LEN: usize = 2 << 20;
/// Length prefix of a frame, bytes.
const LEN_PREFIX_LEN: usize = 4;
/// Length of a `request` frame, bytes: prefix, id, index, begin, length.
const REQUEST_FRAME_LEN: usize = LEN_PREFIX_LEN + 1 + 12;
/// Client name sent in the extension handshake.
const CLIENT_NAME: &str = "seednode sink_leecher";

const USAGE: &str = "\
usage: sink_leecher --torrent FILE --peer IP:PORT [OPTIONS]

Downloads from one seeder as fast as it sends, discards the blocks and reports bytes/s.

options:
  --torrent FILE       the .torrent the seeder serves (v1 piece space)
  --peer IP:PORT       the seeder
  --connections N      concurrent connections, each on its own slice of the pieces [default: 1]
  --source IP          connection i comes from IP+i (a 127.0.0.x address), through
                       dial_from.py; without it, all come from 127.0.0.1
  --duration SECS      stop after SECS, cycling through the slice [default: 10]
  --warmup SECS        run this long first without counting (before --duration) [default: 0]
  --full               download each slice once instead, then stop
  --pipeline BLOCKS    requests outstanding per connection, capped by the seeder's reqq
                       [default: 128]
  --verify-pieces N    pieces per connection assembled and SHA-1 checked [default: 2]
  --timeout SECS       bound on a --full download [default: 300]
  --python PATH        Python that runs dial_from.py [default: /usr/bin/python3]
  --dial-helper PATH   dial_from.py [default: benches/scripts/dial_from.py of the workspace]
  --quiet              no progress on stderr
  -h, --help           this text";

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    cli_main("sink_leecher", USAGE, Options::parse(&args), |opts| {
        run(&opts)
    })
}

/// How long a connection runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// For `window` after `warmup` has passed since the connection, cycling through the slice;
    /// only blocks that arrive in the window count.
    Timed {
        /// Time before the window: the seeder's unchoke and ramp-up, not counted.
        warmup: Duration,
        /// The measured window.
        window: Duration,
    },
    /// Until every block of the slice arrived, bounded by the timeout.
    Full(Duration),
}

/// Command-line options, parsed by hand to keep the tool free of dependencies.
struct Options {
    torrent: PathBuf,
    peer: SocketAddr,
    connections: usize,
    source: Option<Ipv4Addr>,
    mode: Mode,
    pipeline: u32,
    verify_pieces: u32,
    python: PathBuf,
    dial_helper: PathBuf,
    quiet: bool,
    /// Internal: this process is connection `index`, its socket is stdin.
    stdin_socket: Option<usize>,
}

impl Options {
    /// Parses `args` (without the program name); `Ok(None)` means help was asked for.
    fn parse(args: &[OsString]) -> Result<Option<Self>, String> {
        let mut torrent = None;
        let mut peer = None;
        let mut connections = 1usize;
        let mut source = None;
        let mut duration = DEFAULT_DURATION;
        let mut warmup = Duration::ZERO;
        let mut full = false;
        let mut timeout = DEFAULT_FULL_TIMEOUT;
        let mut pipeline = DEFAULT_PIPELINE;
        let mut verify_pieces = DEFAULT_VERIFY_PIECES;
        let mut python = PathBuf::from("/usr/bin/python3");
        let mut dial_helper = workspace_root().join("benches/scripts/dial_from.py");
        let mut quiet = false;
        let mut stdin_socket = None;
        let mut args = Args::new(args);
        while let Some(arg) = args.next_flag()? {
            match arg {
                "-h" | "--help" => return Ok(None),
                "--torrent" => torrent = Some(PathBuf::from(args.value(arg)?)),
                "--peer" => {
                    let v = args.value(arg)?;
                    peer = Some(v.parse().map_err(|_| format!("--peer: not IP:PORT: {v}"))?);
                }
                "--connections" => {
                    connections = parse_number(arg, &args.value(arg)?)?;
                    if connections == 0 || connections > MAX_CONNECTIONS {
                        return Err(format!("--connections must be 1 to {MAX_CONNECTIONS}"));
                    }
                }
                "--source" => {
                    let v = args.value(arg)?;
                    source = Some(v.parse().map_err(|_| format!("--source: not IPv4: {v}"))?);
                }
                "--duration" => {
                    duration = Duration::from_secs_f64(seconds(arg, &args.value(arg)?)?)
                }
                "--warmup" => warmup = Duration::from_secs_f64(seconds(arg, &args.value(arg)?)?),
                "--full" => full = true,
                "--timeout" => timeout = Duration::from_secs_f64(seconds(arg, &args.value(arg)?)?),
                "--pipeline" => {
                    pipeline = parse_number(arg, &args.value(arg)?)?;
                    if pipeline == 0 || pipeline > MAX_PIPELINE {
                        return Err(format!("--pipeline must be 1 to {MAX_PIPELINE}"));
                    }
                }
                "--verify-pieces" => verify_pieces = parse_number(arg, &args.value(arg)?)?,
                "--python" => python = PathBuf::from(args.value(arg)?),
                "--dial-helper" => dial_helper = PathBuf::from(args.value(arg)?),
                "--quiet" => quiet = true,
                "--stdin-socket" => stdin_socket = Some(parse_number(arg, &args.value(arg)?)?),
                other => return Err(format!("unknown argument {other}")),
            }
        }
        Ok(Some(Self {
            torrent: torrent.ok_or("--torrent is required")?,
            peer: peer.ok_or("--peer is required")?,
            connections,
            source,
            mode: if full {
                Mode::Full(timeout)
            } else {
                Mode::Timed {
                    warmup,
                    window: duration,
                }
            },
            pipeline,
            verify_pieces,
            python,
            dial_helper,
            quiet,
            stdin_socket,
        }))
    }

    /// The arguments a connection process gets: everything but `--source` and `--connections`
    /// semantics, plus its index.
    fn child_args(&self, index: usize) -> Vec<String> {
        let mut a = vec![
            "--stdin-socket".to_string(),
            index.to_string(),
            "--connections".to_string(),
            self.connections.to_string(),
            "--torrent".to_string(),
            self.torrent.to_string_lossy().into_owned(),
            "--peer".to_string(),
            self.peer.to_string(),
            "--pipeline".to_string(),
            self.pipeline.to_string(),
            "--verify-pieces".to_string(),
            self.verify_pieces.to_string(),
            "--quiet".to_string(),
        ];
        match self.mode {
            Mode::Timed { warmup, window } => {
                a.extend(["--duration".into(), format!("{}", window.as_secs_f64())]);
                if !warmup.is_zero() {
                    a.extend(["--warmup".into(), format!("{}", warmup.as_secs_f64())]);
                }
            }
            Mode::Full(t) => a.extend([
                "--full".into(),
                "--timeout".into(),
                format!("{}", t.as_secs_f64()),
            ]),
        }
        a
    }

    /// The run's own bound: warm-up plus duration, or the timeout.
    fn bound(&self) -> Duration {
        match self.mode {
            Mode::Timed { warmup, window } => warmup + window,
            Mode::Full(d) => d,
        }
    }

    /// When the counted window starts, after the connection.
    fn warmup(&self) -> Duration {
        match self.mode {
            Mode::Timed { warmup, .. } => warmup,
            Mode::Full(_) => Duration::ZERO,
        }
    }
}

/// The value of `flag`: a positive number of seconds below 1 000 000.
fn seconds(flag: &str, v: &str) -> Result<f64, String> {
    parse_positive(flag, v, "number of seconds", 1e6)
}

/// What a connection needs to know of the torrent.
struct Torrent {
    info_hash: InfoHash,
    piece_length: u32,
    total_length: u64,
    piece_hashes: Vec<[u8; 20]>,
}

impl Torrent {
    fn load(path: &Path) -> Result<Self, String> {
        let bytes = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let meta = Metainfo::from_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        if meta.v2.is_some() && meta.info.pieces.iter().all(|h| *h == [0; 20]) {
            return Err(format!(
                "{}: a v2-only torrent has no SHA-1 piece hashes to verify; use a v1 or hybrid one",
                path.display()
            ));
        }
        let t = Self {
            info_hash: meta.info_hash,
            piece_length: meta.info.piece_length,
            total_length: meta.info.total_length(),
            piece_hashes: meta.info.pieces,
        };
        if t.piece_count() == 0 || t.piece_length == 0 {
            return Err(format!("{}: the torrent has no pieces", path.display()));
        }
        Ok(t)
    }

    fn piece_count(&self) -> u32 {
        u32::try_from(self.piece_hashes.len()).unwrap_or(u32::MAX)
    }

    /// Length of piece `p`, bytes (the last one may be short); 0 when out of range.
    fn piece_len(&self, p: u32) -> u32 {
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
    fn slice(&self, index: usize, count: usize) -> (u32, u32) {
        let p = u64::from(self.piece_count());
        let (i, n) = (index as u64, count.max(1) as u64);
        let at = |k: u64| u32::try_from(k * p / n).unwrap_or(u32::MAX);
        (at(i), at(i + 1))
    }
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

/// What one connection measured.
#[derive(Debug, Default, Clone)]
struct ConnResult {
    index: usize,
    source: String,
    bytes: u64,
    /// Block payload that arrived during the warm-up, not counted in `bytes`.
    warmup_bytes: u64,
    secs: f64,
    first_block_secs: Option<f64>,
    verified: u32,
    rejects: u64,
    chokes: u64,
    unrequested: u64,
    complete: bool,
    closed: bool,
    reqq: Option<u32>,
    client: String,
}

impl ConnResult {
    fn line(&self) -> String {
        let mut s = format!(
            "sink-result index={} source={} bytes={} warmup_bytes={} secs={:.3} first_block={} verified={} \
             rejects={} chokes={} unrequested={} complete={} closed={} reqq={}",
            self.index,
            self.source,
            self.bytes,
            self.warmup_bytes,
            self.secs,
            self.first_block_secs
                .map_or_else(|| "none".to_string(), |t| format!("{t:.3}")),
            self.verified,
            self.rejects,
            self.chokes,
            self.unrequested,
            self.complete,
            self.closed,
            self.reqq
                .map_or_else(|| "none".to_string(), |r| r.to_string()),
        );
        let client: String = self
            .client
            .chars()
            .map(|c| if c.is_whitespace() { '_' } else { c })
            .collect();
        let _ = write!(s, " client={client}");
        s
    }

    fn from_line(line: &str) -> Option<Self> {
        let rest = line.strip_prefix("sink-result ")?;
        let mut r = Self::default();
        for kv in rest.split_whitespace() {
            let (k, v) = kv.split_once('=')?;
            match k {
                "index" => r.index = v.parse().ok()?,
                "source" => r.source = v.to_string(),
                "bytes" => r.bytes = v.parse().ok()?,
                "warmup_bytes" => r.warmup_bytes = v.parse().ok()?,
                "secs" => r.secs = v.parse().ok()?,
                "first_block" => r.first_block_secs = v.parse().ok(),
                "verified" => r.verified = v.parse().ok()?,
                "rejects" => r.rejects = v.parse().ok()?,
                "chokes" => r.chokes = v.parse().ok()?,
                "unrequested" => r.unrequested = v.parse().ok()?,
                "complete" => r.complete = v == "true",
                "closed" => r.closed = v == "true",
                "reqq" => r.reqq = v.parse().ok(),
                "client" => r.client = v.to_string(),
                _ => {}
            }
        }
        Some(r)
    }
}

fn run(opts: &Options) -> Result<(), String> {
    let torrent = Torrent::load(&opts.torrent)?;
    if opts.connections > torrent.piece_count() as usize {
        return Err(format!(
            "--connections {} exceeds the torrent's {} pieces",
            opts.connections,
            torrent.piece_count()
        ));
    }
    if let Some(index) = opts.stdin_socket {
        // A connection process: the socket is stdin (dial_from.py connected it).
        let fd = io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| format!("stdin: {e}"))?;
        let stream = TcpStream::from(fd);
        let r = run_connection(&stream, &torrent, opts, index)?;
        println!("{}", r.line());
        return Ok(());
    }
    let started = Instant::now();
    let results = match opts.source {
        Some(first) => run_processes(opts, first)?,
        None => run_threads(opts, &torrent)?,
    };
    report(opts, &results, started.elapsed());
    Ok(())
}

/// Every connection as a thread of this process, from the kernel's choice of source address.
fn run_threads(opts: &Options, torrent: &Torrent) -> Result<Vec<ConnResult>, String> {
    thread::scope(|s| {
        let handles: Vec<_> = (0..opts.connections)
            .map(|i| {
                s.spawn(move || {
                    let stream = TcpStream::connect_timeout(&opts.peer, HANDSHAKE_TIMEOUT)
                        .map_err(|e| format!("connection {i}: connecting to {}: {e}", opts.peer))?;
                    run_connection(&stream, torrent, opts, i)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a connection thread panicked".into()))
            })
            .collect()
    })
}

/// Every connection as a process started through dial_from.py from its own source address.
fn run_processes(opts: &Options, first: Ipv4Addr) -> Result<Vec<ConnResult>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("finding this executable: {e}"))?;
    let (tx, rx) = mpsc::channel::<(usize, String)>();
    // Killed when dropped, should the run fail.
    let mut children: Vec<Guard> = Vec::with_capacity(opts.connections);
    for i in 0..opts.connections {
        let offset = u32::try_from(i).map_err(|_| "too many connections")?;
        let src = u32::from(first)
            .checked_add(offset)
            .map(Ipv4Addr::from)
            .filter(Ipv4Addr::is_loopback)
            .ok_or_else(|| format!("--source {first} + {i} leaves 127.0.0.0/8"))?;
        let mut cmd = Command::new(&opts.python);
        cmd.arg(&opts.dial_helper)
            .arg(src.to_string())
            .arg(opts.peer.to_string())
            .arg("--timeout")
            .arg(HANDSHAKE_TIMEOUT.as_secs().to_string())
            .arg("--")
            .arg(&exe)
            .args(opts.child_args(i))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("starting {}: {e}", opts.python.display()))?;
        let out = child.stdout.take().ok_or("no stdout pipe")?;
        let tx = tx.clone();
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send((i, line));
            }
        });
        children.push(Guard::new(&format!("connection {i}"), child));
    }
    drop(tx);
    let deadline = Instant::now() + opts.bound() + HANDSHAKE_TIMEOUT + CHILD_GRACE;
    let mut results: Vec<Option<ConnResult>> = vec![None; opts.connections];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((i, line)) => {
                if let Some(r) = ConnResult::from_line(&line) {
                    results[i] = Some(r);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(format!(
                    "connection processes still running {} s after the run should have ended",
                    (opts.bound() + HANDSHAKE_TIMEOUT + CHILD_GRACE).as_secs()
                ));
            }
        }
    }
    let mut failed = Vec::new();
    for (i, c) in children.iter_mut().enumerate() {
        let status = c.wait()?;
        if !status.success() || results[i].is_none() {
            failed.push(format!("connection {i} ({status})"));
        }
    }
    if !failed.is_empty() {
        return Err(format!("failed: {}", failed.join(", ")));
    }
    Ok(results.into_iter().flatten().collect())
}

/// Prints every connection's line and the total on stdout, and a summary on stderr.
fn report(opts: &Options, results: &[ConnResult], wall: Duration) {
    let bytes: u64 = results.iter().map(|r| r.bytes).sum();
    let secs = results.iter().map(|r| r.secs).fold(0.0, f64::max);
    let verified: u32 = results.iter().map(|r| r.verified).sum();
    let served = results.iter().filter(|r| r.bytes > 0).count();
    let closed = results.iter().filter(|r| r.closed).count();
    let complete = results.iter().all(|r| r.complete);
    for r in results {
        println!("{}", r.line());
    }
    let rate = if secs > 0.0 {
        bytes as f64 / 1e6 / secs
    } else {
        0.0
    };
    println!(
        "sink-total connections={} served={served} bytes={bytes} secs={secs:.3} \
         mb_per_s={rate:.1} verified={verified} closed={closed} complete={}",
        results.len(),
        matches!(opts.mode, Mode::Full(_)) && complete,
    );
    if !opts.quiet {
        eprintln!(
            "sink_leecher: {} connection(s) to {}, {served} served, {:.1} MB in {secs:.2} s = \
             {rate:.0} MB/s; {verified} piece(s) verified; wall {:.2} s",
            results.len(),
            opts.peer,
            bytes as f64 / 1e6,
            wall.as_secs_f64(),
        );
    }
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
    /// Requests sent and not yet answered, oldest first (answers normally come in order).
    outstanding: VecDeque<Block>,
    /// Requests to send again: rejected, or dropped by a choke.
    retry: VecDeque<Block>,
    verify: HashMap<u32, PieceBuf>,
    /// False during the warm-up: blocks go to `warmup_bytes`.
    counting: bool,
    result: ConnResult,
}

impl Conn<'_> {
    fn peer_is_seed(&self) -> bool {
        self.peer_has_count == self.torrent.piece_count()
    }

    fn set_have(&mut self, piece: u32) -> Result<(), String> {
        let slot = self
            .peer_has
            .get_mut(piece as usize)
            .ok_or_else(|| format!("peer announced piece {piece} out of range"))?;
        if !*slot {
            *slot = true;
            self.peer_has_count += 1;
        }
        Ok(())
    }

    /// Handles one frame body (id byte first).
    fn handle(&mut self, body: &[u8], t0: Instant) -> Result<(), String> {
        let word = |at: usize| -> Result<u32, String> {
            body.get(at..at + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_be_bytes)
                .ok_or_else(|| format!("message {} too short", body[0]))
        };
        match body[0] {
            id::CHOKE => {
                self.choked = true;
                self.result.chokes += 1;
                // BEP 3: a choke drops every pending request. With BEP 6 the seeder rejects them
                // instead; asking again is harmless either way (duplicates are discarded).
                while let Some(b) = self.outstanding.pop_back() {
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
                for p in 0..self.torrent.piece_count() {
                    self.set_have(p)?;
                }
            }
            id::HAVE_NONE => return Err("the seeder says it has no pieces (have_none)".into()),
            id::PIECE => {
                let piece = word(1)?;
                let begin = word(5)?;
                let data = &body[9..];
                let length = u32::try_from(data.len()).unwrap_or(u32::MAX);
                let block = Block {
                    piece,
                    begin,
                    length,
                };
                if u64::from(begin) + u64::from(length) > u64::from(self.torrent.piece_len(piece)) {
                    return Err(format!("block {block:?} lies outside its piece"));
                }
                if !remove(&mut self.outstanding, block) && !remove(&mut self.retry, block) {
                    self.result.unrequested += 1;
                    return Ok(());
                }
                if self.counting {
                    self.result.bytes += u64::from(length);
                } else {
                    self.result.warmup_bytes += u64::from(length);
                }
                if self.result.first_block_secs.is_none() {
                    self.result.first_block_secs = Some(t0.elapsed().as_secs_f64());
                }
                self.check_block(block, data)?;
            }
            id::REJECT_REQUEST => {
                let block = Block {
                    piece: word(1)?,
                    begin: word(5)?,
                    length: word(9)?,
                };
                self.result.rejects += 1;
                if remove(&mut self.outstanding, block) && !self.retry.contains(&block) {
                    self.retry.push_back(block);
                }
            }
            id::EXTENDED if body.get(1) == Some(&0) => {
                if let Ok(hs) = ExtensionHandshake::parse(&body[2..]) {
                    if let Some(reqq) = hs.reqq {
                        self.pipeline = self.pipeline.min(reqq);
                        self.result.reqq = Some(reqq);
                    }
                    if let Some(v) = hs.client {
                        self.result.client = v;
                    }
                }
            }
            // interested, not interested, request, cancel, port, suggest, allowed_fast,
            // other extended messages, BEP 52 hash messages: nothing a sink acts on.
            _ => {}
        }
        Ok(())
    }

    /// Copies a block of a piece under verification; checks the piece once it is whole.
    fn check_block(&mut self, block: Block, data: &[u8]) -> Result<(), String> {
        let Some(buf) = self.verify.get_mut(&block.piece) else {
            return Ok(());
        };
        let slot = (block.begin / BLOCK_LEN) as usize;
        if !block.begin.is_multiple_of(BLOCK_LEN) || slot >= buf.have.len() || buf.have[slot] {
            return Ok(());
        }
        let at = block.begin as usize;
        buf.data[at..at + data.len()].copy_from_slice(data);
        buf.have[slot] = true;
        buf.missing -= 1;
        if buf.missing == 0 {
            let digest: [u8; 20] = Sha1::digest(&buf.data).into();
            if digest != self.torrent.piece_hashes[block.piece as usize] {
                return Err(format!(
                    "piece {} failed its SHA-1 check: the seeder sent wrong bytes",
                    block.piece
                ));
            }
            self.verify.remove(&block.piece);
            self.result.verified += 1;
        }
        Ok(())
    }

    /// Appends requests to `out` until `pipeline` are outstanding.
    fn refill(&mut self, out: &mut Vec<u8>) {
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
            self.outstanding.push_back(b);
        }
    }

    fn done(&self) -> bool {
        matches!(self.mode, Mode::Full(_))
            && self.outstanding.is_empty()
            && self.retry.is_empty()
            && self.cursor.piece >= self.cursor.end
    }
}

/// Removes `b` from `q` (looking at the front first); false when it is not there.
fn remove(q: &mut VecDeque<Block>, b: Block) -> bool {
    if q.front() == Some(&b) {
        q.pop_front();
        return true;
    }
    match q.iter().position(|x| *x == b) {
        Some(i) => {
            q.remove(i);
            true
        }
        None => false,
    }
}

/// A peer ID of ours: `-SK0001-` and 12 digits from the clock, the process and the index.
fn peer_id(index: usize) -> PeerId {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut id = *b"-SK0001-000000000000";
    let digits = format!(
        "{:012}",
        (u64::from(nanos) ^ (u64::from(std::process::id()) << 20) ^ index as u64)
            % 1_000_000_000_000
    );
    id[8..].copy_from_slice(digits.as_bytes());
    PeerId(id)
}

/// Runs one connection on a connected `stream` until its mode says stop.
fn run_connection(
    stream: &TcpStream,
    torrent: &Torrent,
    opts: &Options,
    index: usize,
) -> Result<ConnResult, String> {
    let t0 = Instant::now();
    let local = stream
        .local_addr()
        .map_err(|e| format!("connection {index}: not a connected TCP socket: {e}"))?;
    let ctx = |e: io::Error| format!("connection {index} from {local}: {e}");
    stream.set_nodelay(true).map_err(ctx)?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT)).map_err(ctx)?;
    stream
        .set_read_timeout(Some(HANDSHAKE_TIMEOUT))
        .map_err(ctx)?;
    let mut w = stream;
    let mut r = stream;

    let ours = Handshake {
        reserved: Handshake::reserved_bits(true, true, false),
        info_hash: torrent.info_hash,
        peer_id: peer_id(index),
    };
    w.write_all(&ours.encode()).map_err(ctx)?;
    let mut hs = [0u8; HANDSHAKE_LEN];
    r.read_exact(&mut hs)
        .map_err(|e| format!("connection {index}: reading the seeder's handshake: {e}"))?;
    let theirs =
        Handshake::parse(&hs).map_err(|e| format!("connection {index}: handshake: {e}"))?;
    if theirs.info_hash != torrent.info_hash {
        return Err(format!(
            "connection {index}: the seeder answered for info-hash {}",
            theirs.info_hash
        ));
    }
    let mut out = Vec::with_capacity(REQUEST_FRAME_LEN * MAX_PIPELINE as usize);
    if theirs.supports_extension_protocol() {
        let payload = extension::encode_handshake(CLIENT_NAME, opts.pipeline, None, false, None);
        let len = u32::try_from(payload.len() + 2).map_err(|_| "extension handshake too long")?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&[id::EXTENDED, 0]);
        out.extend_from_slice(&payload);
    }
    if theirs.supports_fast_extension() {
        out.extend_from_slice(&[0, 0, 0, 1, id::HAVE_NONE]);
    }
    out.extend_from_slice(&[0, 0, 0, 1, id::INTERESTED]);
    w.write_all(&out).map_err(ctx)?;
    let mut last_write = Instant::now();
    stream
        .set_read_timeout(Some(READ_WAKE_INTERVAL))
        .map_err(ctx)?;

    let (start, end) = torrent.slice(index, opts.connections);
    let mut conn = Conn {
        torrent,
        mode: opts.mode,
        pipeline: opts.pipeline,
        choked: true,
        peer_has: vec![false; torrent.piece_count() as usize],
        peer_has_count: 0,
        cursor: Cursor::new(start, end, matches!(opts.mode, Mode::Timed { .. })),
        outstanding: VecDeque::with_capacity(MAX_PIPELINE as usize),
        retry: VecDeque::new(),
        verify: (start..end.min(start.saturating_add(opts.verify_pieces)))
            .map(|p| {
                let len = torrent.piece_len(p);
                let blocks = len.div_ceil(BLOCK_LEN) as usize;
                let buf = PieceBuf {
                    data: vec![0; len as usize],
                    have: vec![false; blocks],
                    missing: blocks,
                };
                (p, buf)
            })
            .collect(),
        counting: opts.warmup().is_zero(),
        result: ConnResult {
            index,
            source: local.to_string(),
            ..ConnResult::default()
        },
    };
    let deadline = t0 + opts.bound();
    let window_start = t0 + opts.warmup();
    let max_len = max_frame_len(torrent.piece_count()) as usize;
    if RECV_BUF_LEN < 2 * (LEN_PREFIX_LEN + max_len) {
        return Err("receive buffer smaller than two frames".into());
    }
    let mut buf = vec![0u8; RECV_BUF_LEN];
    let (mut head, mut tail) = (0usize, 0usize);
    loop {
        if conn.done() {
            conn.result.complete = true;
            break;
        }
        let now = Instant::now();
        conn.counting |= now >= window_start;
        if now >= deadline {
            if let Mode::Full(t) = opts.mode {
                return Err(format!(
                    "connection {index}: not complete after {} s ({} bytes, choked {})",
                    t.as_secs(),
                    conn.result.bytes,
                    conn.choked
                ));
            }
            break;
        }
        out.clear();
        conn.refill(&mut out);
        if out.is_empty() && now.duration_since(last_write) >= KEEPALIVE_INTERVAL {
            out.extend_from_slice(&[0, 0, 0, 0]);
        }
        if !out.is_empty() {
            w.write_all(&out).map_err(ctx)?;
            last_write = now;
        }
        if buf.len() - tail < LEN_PREFIX_LEN + max_len {
            buf.copy_within(head..tail, 0);
            tail -= head;
            head = 0;
        }
        match r.read(&mut buf[tail..]) {
            Ok(0) => {
                conn.result.closed = true;
                break;
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
                conn.result.closed = true;
                break;
            }
            Err(e) => return Err(ctx(e)),
        }
        while let Some(prefix) = buf[head..tail].first_chunk::<LEN_PREFIX_LEN>() {
            let len = u32::from_be_bytes(*prefix) as usize;
            if len > max_len {
                return Err(format!(
                    "connection {index}: frame of {len} bytes over the limit of {max_len}"
                ));
            }
            if tail - head < LEN_PREFIX_LEN + len {
                break;
            }
            let body = &buf[head + LEN_PREFIX_LEN..head + LEN_PREFIX_LEN + len];
            head += LEN_PREFIX_LEN + len;
            if !body.is_empty() {
                conn.handle(body, t0)
                    .map_err(|e| format!("connection {index}: {e}"))?;
            }
        }
        if head == tail {
            head = 0;
            tail = 0;
        }
    }
    conn.result.secs = window_start.elapsed().as_secs_f64();
    if matches!(opts.mode, Mode::Full(_)) && !conn.result.complete {
        return Err(format!(
            "connection {index}: the seeder closed the connection after {} bytes",
            conn.result.bytes
        ));
    }
    let got = conn.result.bytes + conn.result.warmup_bytes;
    if conn.result.verified == 0 && !conn.verify.is_empty() {
        let first = conn.verify.keys().min().copied().unwrap_or(start);
        if got >= u64::from(torrent.piece_length) * 4 {
            return Err(format!(
                "connection {index}: {got} bytes received but piece {first} never completed"
            ));
        }
    }
    Ok(conn.result)
}
