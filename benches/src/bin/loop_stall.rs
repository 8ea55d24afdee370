//! How long the event loop's turns take while leechers pull data that is not in the page cache,
//! against the same load with the data cached; and the node's CPU under a `have` flood from one
//! peer while aria2c downloads, against the same download without the flood (issue 9).
//!
//! ```text
//! target/release/loop_stall [--size-mib N] [--connections N] [--duration SECS]
//!     [--seednode PATH] [--sink PATH] [--dir DIR] [--no-flood]
//! ```
//!
//! 1. Writes a file of random bytes (`--size-mib`, default 512) and seeds it with
//!    `seednode seed --no-dht` on 127.0.0.1.
//! 2. One `sink_leecher --full` pass makes the node verify every piece (its first serve).
//! 3. `warm`: the file is read into the page cache, then `--connections` sink connections pull
//!    for `--duration` seconds. `cold`: the file's pages are dropped
//!    (`posix_fadvise(DONTNEED)`, no root needed), then the same load. For each phase the
//!    node's `seednode_loop_turn_seconds` histogram (from `/metrics`) before and after gives
//!    the turn-time quantiles of that phase (bucket upper bounds, so "at most").
//! 4. `flood`: aria2c downloads the file alone, then again while one peer floods `have`
//!    messages (reconnecting whenever the node drops it); the node's CPU seconds over each
//!    download (from `/proc`) are compared.
//!
//! Output, one `key=value` line per phase:
//!
//! ```text
//! turns phase=warm turns=... p50_us<=... p99_us<=... max_us<=... mb_per_s=... cold_blocks=...
//! flood phase=with_flood secs=... node_cpu_s=... flood_connections=... dropped=...
//! ```

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use seednode_benches::{
    Args, Diagnostics, Guard, Stdout, cli_main, clock_ticks_per_sec, cpu_ticks, free_tcp_port,
    parse_number, warm_page_cache, workspace_root, write_random_file,
};
use seednode_wire::metainfo::Metainfo;
use seednode_wire::peer::{Handshake, Message};
use seednode_wire::{InfoHash, PeerId};

const USAGE: &str = "\
loop_stall: event-loop turn times with cold vs warm data; node CPU under a have flood

usage: loop_stall [--size-mib N] [--connections N] [--duration SECS] [--seednode PATH]
                  [--sink PATH] [--dir DIR] [--no-flood]

  --size-mib N       payload size, MiB            [default: 512]
  --connections N    sink connections per phase    [default: 8]
  --duration SECS    seconds per phase             [default: 10]
  --seednode PATH    [default: target/release/seednode]
  --sink PATH        [default: sink_leecher next to this executable]
  --dir DIR          where the payload goes        [default: a new directory under /var/tmp]
  --no-flood         skip the have-flood phases";

const DIAGNOSTICS: Diagnostics = Diagnostics {
    tail_lines: 20,
    count_tail_lines: true,
    exit_status_on_close: true,
};

/// How long the node may take to print its `listening:` line (it hashes the payload first).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(300);

/// Bound on one aria2c download.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(300);

struct Opts {
    size_mib: u64,
    connections: u32,
    duration: u64,
    seednode: PathBuf,
    sink: PathBuf,
    dir: Option<PathBuf>,
    flood: bool,
}

fn parse(args: &[OsString]) -> Result<Option<Opts>, String> {
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    let mut o = Opts {
        size_mib: 512,
        connections: 8,
        duration: 10,
        seednode: workspace_root().join("target/release/seednode"),
        sink: exe_dir.join("sink_leecher"),
        dir: None,
        flood: true,
    };
    let mut a = Args::new(args);
    while let Some(flag) = a.next_flag()? {
        match flag {
            "--size-mib" => o.size_mib = parse_number(flag, &a.value(flag)?)?,
            "--connections" => o.connections = parse_number(flag, &a.value(flag)?)?,
            "--duration" => o.duration = parse_number(flag, &a.value(flag)?)?,
            "--seednode" => o.seednode = a.value(flag)?.into(),
            "--sink" => o.sink = a.value(flag)?.into(),
            "--dir" => o.dir = Some(a.value(flag)?.into()),
            "--no-flood" => o.flood = false,
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Some(o))
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    cli_main("loop_stall", USAGE, parse(&args), run)
}

/// The node's `/metrics` text.
fn metrics(addr: SocketAddr) -> Result<String, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("metrics: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("metrics: {e}"))?;
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    Ok(body)
}

/// `(upper bound in µs, cumulative count)` of the loop-turn histogram; `+Inf` as `u64::MAX`.
fn turn_buckets(text: &str) -> Vec<(u64, u64)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("seednode_loop_turn_seconds_bucket{le=\""))
        .filter_map(|rest| {
            let (le, count) = rest.split_once("\"} ")?;
            let bound = if le == "+Inf" {
                u64::MAX
            } else {
                (le.parse::<f64>().ok()? * 1e6).round() as u64
            };
            Some((bound, count.trim().parse().ok()?))
        })
        .collect()
}

fn counter(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

/// Quantile `q` of the turns between two snapshots: the upper bound of the bucket it falls in.
fn quantile(before: &[(u64, u64)], after: &[(u64, u64)], q: f64) -> String {
    let deltas: Vec<(u64, u64)> = after
        .iter()
        .zip(before)
        .map(|((b, a), (_, c))| (*b, a.saturating_sub(*c)))
        .collect();
    let total = deltas.last().map_or(0, |d| d.1);
    if total == 0 {
        return "none".into();
    }
    let want = ((total as f64) * q).ceil().max(1.0) as u64;
    let bound = deltas
        .iter()
        .find(|(_, n)| *n >= want)
        .map_or(u64::MAX, |d| d.0);
    if bound == u64::MAX {
        "inf".into()
    } else {
        bound.to_string()
    }
}

/// Drops `path`'s pages from the page cache.
fn evict(path: &Path) -> Result<(), String> {
    let f = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed)
        .map_err(|e| format!("fadvise: {e}"))
}

fn run(o: Opts) -> Result<(), String> {
    let dir = match &o.dir {
        Some(d) => d.clone(),
        None => PathBuf::from(format!("/var/tmp/loop_stall.{}", std::process::id())),
    };
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let _cleanup = seednode_benches::RemoveOnDrop::new(dir.clone(), "loop_stall");
    let file = dir.join("payload.bin");
    eprintln!("loop_stall: writing {} MiB", o.size_mib);
    write_random_file(&file, o.size_mib * 1024 * 1024)?;
    let ip = Ipv4Addr::LOCALHOST;
    let port = free_tcp_port(ip)?;
    let listen = SocketAddr::from((ip, port));
    let mut cmd = Command::new(&o.seednode);
    cmd.arg("seed")
        .arg(&file)
        .arg("--listen")
        .arg(listen.to_string())
        .arg("--no-dht")
        .env("RUST_LOG", "warn");
    let mut node = Guard::spawn(
        "seednode",
        &mut cmd,
        &dir.join("seednode.log"),
        Stdout::Lines,
        DIAGNOSTICS,
    )?;
    node.wait_for_line("listening:", STARTUP_TIMEOUT)?;
    let torrent = dir.join("payload.bin.torrent");

    // Every piece verified once, so that both phases measure serving only.
    sink(&o, &torrent, listen, &dir, &["--full".into()], 1)?;

    for phase in ["warm", "cold"] {
        if phase == "warm" {
            warm_page_cache(&file)?;
        } else {
            evict(&file)?;
        }
        let before = metrics(listen)?;
        let started = Instant::now();
        let bytes = sink(
            &o,
            &torrent,
            listen,
            &dir,
            &["--duration".into(), o.duration.to_string()],
            o.connections,
        )?;
        let secs = started.elapsed().as_secs_f64();
        let after = metrics(listen)?;
        let (b, a) = (turn_buckets(&before), turn_buckets(&after));
        let turns = a.last().map_or(0, |x| x.1) - b.last().map_or(0, |x| x.1);
        println!(
            "turns phase={phase} turns={turns} p50_us<={} p99_us<={} p999_us<={} max_us<={} mb_per_s={:.1} cold_blocks={}",
            quantile(&b, &a, 0.50),
            quantile(&b, &a, 0.99),
            quantile(&b, &a, 0.999),
            quantile(&b, &a, 1.0),
            bytes as f64 / secs / 1e6,
            counter(&after, "seednode_cold_blocks_total")
                - counter(&before, "seednode_cold_blocks_total"),
        );
    }

    if o.flood {
        let meta = Metainfo::from_bytes(&fs::read(&torrent).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        for (phase, flood) in [
            ("baseline", false),
            ("with_flood", true),
            ("baseline2", false),
        ] {
            warm_page_cache(&file)?;
            let stop = Arc::new(AtomicBool::new(false));
            let floods = Arc::new(AtomicU64::new(0));
            let flooder = flood.then(|| {
                let (stop, floods) = (Arc::clone(&stop), Arc::clone(&floods));
                let ih = meta.info_hash;
                let pieces = meta.info.piece_count();
                thread::spawn(move || have_flood(listen, ih, pieces, &stop, &floods))
            });
            thread::sleep(Duration::from_millis(200));
            let cpu0 = cpu_ticks(node.pid())?;
            let started = Instant::now();
            aria2c(&torrent, &dir.join(format!("dl-{phase}")))?;
            let secs = started.elapsed().as_secs_f64();
            let cpu = (cpu_ticks(node.pid())? - cpu0) as f64 / clock_ticks_per_sec();
            stop.store(true, Ordering::Relaxed);
            if let Some(f) = flooder {
                let _ = f.join();
            }
            let m = metrics(listen)?;
            println!(
                "flood phase={phase} secs={secs:.2} node_cpu_s={cpu:.2} node_cpu_per_s={:.3} flood_connections={} dropped_have_flood={}",
                cpu / secs,
                floods.load(Ordering::Relaxed),
                counter(
                    &m,
                    "seednode_connections_closed_total{reason=\"have_flood\"}"
                ),
            );
            let closed: Vec<&str> = m
                .lines()
                .filter(|l| l.starts_with("seednode_connections_closed_total{"))
                .collect();
            eprintln!("loop_stall: after {phase}: {}", closed.join(", "));
            let _ = fs::remove_dir_all(dir.join(format!("dl-{phase}")));
        }
    }
    drop(node);
    Ok(())
}

/// Runs `sink_leecher` with `extra` flags; returns the payload bytes it received.
fn sink(
    o: &Opts,
    torrent: &Path,
    peer: SocketAddr,
    dir: &Path,
    extra: &[String],
    connections: u32,
) -> Result<u64, String> {
    let mut cmd = Command::new(&o.sink);
    cmd.arg("--torrent")
        .arg(torrent)
        .arg("--peer")
        .arg(peer.to_string())
        .arg("--connections")
        .arg(connections.to_string())
        .arg("--quiet")
        .args(extra);
    let mut g = Guard::spawn(
        "sink_leecher",
        &mut cmd,
        &dir.join("sink.log"),
        Stdout::Lines,
        DIAGNOSTICS,
    )?;
    let bound = Duration::from_secs(o.duration) + STARTUP_TIMEOUT;
    let lines = g.wait_for_line("sink-total ", bound)?;
    let status = g.wait()?;
    if !status.success() {
        return Err(format!("sink_leecher failed ({status})\n{}", g.log_tail()));
    }
    let total = lines.last().ok_or("no sink-total line")?;
    Ok(total
        .split(' ')
        .find_map(|kv| kv.strip_prefix("bytes="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// aria2c downloads `torrent` into `dir` from the node (its own tracker is in the torrent).
fn aria2c(torrent: &Path, dir: &Path) -> Result<(), String> {
    let mut cmd = Command::new("aria2c");
    cmd.args([
        "--enable-dht=false",
        "--enable-dht6=false",
        "--bt-enable-lpd=false",
        "--enable-peer-exchange=false",
        "--seed-time=0",
        "--bt-stop-timeout=60",
        "--summary-interval=0",
        "--file-allocation=none",
        "--console-log-level=warn",
    ])
    .arg(format!("--dir={}", dir.display()))
    .arg(torrent);
    let mut g = Guard::spawn(
        "aria2c",
        &mut cmd,
        &dir.with_extension("aria2c.log"),
        Stdout::Log,
        DIAGNOSTICS,
    )?;
    let end = Instant::now() + DOWNLOAD_TIMEOUT;
    loop {
        if let Some(status) = g.try_wait()? {
            return if status.success() {
                Ok(())
            } else {
                Err(format!("aria2c failed ({status})\n{}", g.log_tail()))
            };
        }
        if Instant::now() > end {
            return Err(format!("aria2c did not finish in {DOWNLOAD_TIMEOUT:?}"));
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Where the have flood comes from.
const FLOODER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 9);

fn connect_from(src: Ipv4Addr, dst: SocketAddr) -> std::io::Result<TcpStream> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    sock.bind(&SocketAddr::from((src, 0)).into())?;
    sock.connect_timeout(&dst.into(), Duration::from_secs(5))?;
    Ok(sock.into())
}

/// One hostile peer: handshakes, then sends `have` messages as fast as the socket takes them;
/// reconnects whenever the node drops it, until `stop`.
fn have_flood(
    node: SocketAddr,
    info_hash: InfoHash,
    pieces: u32,
    stop: &AtomicBool,
    connections: &AtomicU64,
) {
    let hs = Handshake {
        reserved: [0; 8],
        info_hash,
        peer_id: PeerId(*b"-FL0001-haveflooder!"),
    }
    .encode();
    let mut burst = bytes::BytesMut::new();
    for i in 0..4096u32 {
        Message::Have {
            piece: i % pieces.max(1),
        }
        .encode(&mut burst);
    }
    while !stop.load(Ordering::Relaxed) {
        // From an address of its own, which the node bans: not the one aria2c and the
        // metrics scrapes come from.
        let Ok(mut s) = connect_from(FLOODER_IP, node) else {
            thread::sleep(Duration::from_millis(10));
            continue;
        };
        connections.fetch_add(1, Ordering::Relaxed);
        let _ = s.set_write_timeout(Some(Duration::from_millis(500)));
        if s.write_all(&hs).is_err() {
            continue;
        }
        while !stop.load(Ordering::Relaxed) {
            if s.write_all(&burst).is_err() {
                break;
            }
        }
    }
}
