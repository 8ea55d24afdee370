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
//! The protocol code is `seednode::bench::leech`, the same sink leecher `seednode bench leech`
//! runs; this binary keeps the harnesses' command line and `key=value` output. Every connection
//! is a thread of this process; with `--source 127.0.0.X`, connection `i` binds `127.0.0.X+i`
//! before connecting (socket2), otherwise the kernel picks the address (127.0.0.1). `--python` and
//! `--dial-helper` are accepted and ignored (connections used to be dialled by a Python helper).
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

use std::ffi::OsString;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use seednode::bench::leech::{self, ConnReport, LeechConfig, Mode, Torrent};
use seednode::bench::limits::{DEFAULT_PIPELINE, MAX_LEECH_CONNECTIONS, MAX_PIPELINE};
use seednode_benches::{Args, cli_main, parse_number, parse_positive};

/// Default length of a timed run.
const DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// Default bound on a `--full` download.
const DEFAULT_FULL_TIMEOUT: Duration = Duration::from_secs(300);
/// Default pieces verified per connection.
const DEFAULT_VERIFY_PIECES: u32 = 2;

const USAGE: &str = "\
usage: sink_leecher --torrent FILE --peer IP:PORT [OPTIONS]

Downloads from one seeder as fast as it sends, discards the blocks and reports bytes/s.
(The same code as `seednode bench leech`.)

options:
  --torrent FILE       the .torrent the seeder serves (v1 piece space)
  --peer IP:PORT       the seeder
  --connections N      concurrent connections, each on its own slice of the pieces [default: 1]
  --source IP          connection i comes from IP+i (a 127.0.0.x address); without it, all
                       come from the kernel's choice (127.0.0.1)
  --duration SECS      stop after SECS, cycling through the slice [default: 10]
  --warmup SECS        run this long first without counting (before --duration) [default: 0]
  --full               download each slice once instead, then stop
  --pipeline BLOCKS    requests outstanding per connection, capped by the seeder's reqq
                       [default: 128]
  --verify-pieces N    pieces per connection assembled and SHA-1 checked [default: 2]
  --timeout SECS       bound on a --full download [default: 300]
  --python PATH        ignored (kept for older scripts)
  --dial-helper PATH   ignored (kept for older scripts)
  --quiet              no summary on stderr
  -h, --help           this text";

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    cli_main("sink_leecher", USAGE, Options::parse(&args), |opts| {
        run(&opts)
    })
}

/// Command-line options, parsed by hand like the other harnesses.
struct Options {
    torrent: PathBuf,
    config: LeechConfig,
    quiet: bool,
}

impl Options {
    /// Parses `args` (without the program name); `Ok(None)` means help was asked for.
    fn parse(args: &[OsString]) -> Result<Option<Self>, String> {
        let mut torrent = None;
        let mut peer: Option<SocketAddr> = None;
        let mut connections = 1usize;
        let mut source: Option<Ipv4Addr> = None;
        let mut duration = DEFAULT_DURATION;
        let mut warmup = Duration::ZERO;
        let mut full = false;
        let mut timeout = DEFAULT_FULL_TIMEOUT;
        let mut pipeline = DEFAULT_PIPELINE;
        let mut verify_pieces = DEFAULT_VERIFY_PIECES;
        let mut quiet = false;
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
                    if connections == 0 || connections > MAX_LEECH_CONNECTIONS {
                        return Err(format!(
                            "--connections must be 1 to {MAX_LEECH_CONNECTIONS}"
                        ));
                    }
                }
                "--source" => {
                    let v = args.value(arg)?;
                    source = Some(v.parse().map_err(|_| format!("--source: not IPv4: {v}"))?);
                }
                "--duration" => duration = seconds(arg, &args.value(arg)?)?,
                "--warmup" => warmup = seconds(arg, &args.value(arg)?)?,
                "--full" => full = true,
                "--timeout" => timeout = seconds(arg, &args.value(arg)?)?,
                "--pipeline" => {
                    pipeline = parse_number(arg, &args.value(arg)?)?;
                    if pipeline == 0 || pipeline > MAX_PIPELINE {
                        return Err(format!("--pipeline must be 1 to {MAX_PIPELINE}"));
                    }
                }
                "--verify-pieces" => verify_pieces = parse_number(arg, &args.value(arg)?)?,
                "--python" | "--dial-helper" => {
                    let _ = args.value(arg)?;
                }
                "--quiet" => quiet = true,
                other => return Err(format!("unknown argument {other}")),
            }
        }
        let config = LeechConfig {
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
        };
        Ok(Some(Self {
            torrent: torrent.ok_or("--torrent is required")?,
            config,
            quiet,
        }))
    }
}

/// The value of `flag`: a positive number of seconds below 1 000 000.
fn seconds(flag: &str, v: &str) -> Result<Duration, String> {
    parse_positive(flag, v, "number of seconds", 1e6).map(Duration::from_secs_f64)
}

/// One connection's `sink-result` line.
fn line(r: &ConnReport) -> String {
    let mut s = format!(
        "sink-result index={} source={} bytes={} warmup_bytes={} secs={:.3} first_block={} \
         verified={} rejects={} chokes={} unrequested={} complete={} closed={} reqq={}",
        r.index,
        if r.source.is_empty() {
            "none"
        } else {
            &r.source
        },
        r.bytes,
        r.warmup_bytes,
        r.secs,
        r.first_block_secs
            .map_or_else(|| "none".to_string(), |t| format!("{t:.3}")),
        r.verified_pieces,
        r.rejects,
        r.chokes,
        r.unrequested,
        r.complete,
        r.closed,
        r.reqq.map_or_else(|| "none".to_string(), |q| q.to_string()),
    );
    let client: String = r
        .client
        .chars()
        .map(|c| {
            if c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let _ = write!(s, " client={client}");
    s
}

fn run(opts: &Options) -> Result<(), String> {
    let torrent = Torrent::load(&opts.torrent).map_err(|e| e.to_string())?;
    if opts.config.connections > torrent.piece_count() as usize {
        return Err(format!(
            "--connections {} exceeds the torrent's {} pieces",
            opts.config.connections,
            torrent.piece_count()
        ));
    }
    let started = Instant::now();
    let report = leech::run(&torrent, &opts.config, &AtomicU64::new(0));
    let failed: Vec<&str> = report
        .per_connection
        .iter()
        .filter_map(|c| c.error.as_deref())
        .collect();
    if !failed.is_empty() {
        return Err(failed.join("; "));
    }
    let results = &report.per_connection;
    let served = results.iter().filter(|r| r.bytes > 0).count();
    let closed = results.iter().filter(|r| r.closed).count();
    let complete = matches!(opts.config.mode, Mode::Full(_)) && results.iter().all(|r| r.complete);
    for r in results {
        println!("{}", line(r));
    }
    println!(
        "sink-total connections={} served={served} bytes={} secs={:.3} mb_per_s={:.1} \
         verified={} closed={closed} complete={complete}",
        results.len(),
        report.bytes,
        report.secs,
        report.mb_per_s,
        report.verified_pieces,
    );
    if !opts.quiet {
        eprintln!(
            "sink_leecher: {} connection(s) to {}, {served} served, {:.1} MB in {:.2} s = \
             {:.0} MB/s; {} piece(s) verified; latency p50 {:.2} ms p99 {:.2} ms; wall {:.2} s",
            results.len(),
            opts.config.peer,
            report.bytes as f64 / 1e6,
            report.secs,
            report.mb_per_s,
            report.verified_pieces,
            report.latency_p50_ms,
            report.latency_p99_ms,
            started.elapsed().as_secs_f64(),
        );
    }
    Ok(())
}
