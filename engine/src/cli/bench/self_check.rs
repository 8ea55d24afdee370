//! `seednode bench self`: this node and the load generators against each other on loopback.
//!
//! 1. A file of `--size` random bytes in a temporary directory; `bench hash` on it.
//! 2. `seednode seed FILE` as a child process (this executable) on 127.0.0.1, its built-in
//!    HTTP and UDP tracker on the same port, no DHT.
//! 3. The sink leecher against it for `--duration`: MB/s, and the child's CPU seconds per GB
//!    sent (`/proc/PID/stat` before and after, over every block received).
//! 4. The UDP and then the HTTP tracker generator against its tracker for `--duration` each, on
//!    the seeded info-hash (the only one a seeding node's tracker serves).
//!
//! The child is stopped (SIGTERM, then SIGKILL after [`STOP_TIMEOUT`]) and the directory removed
//! whatever happens.

use std::fs::File;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use seednode::bench::leech::{LeechConfig, Mode, Torrent};
use seednode::bench::limits::{
    DEFAULT_IN_FLIGHT, DEFAULT_UDP_SOCKETS, NUMWANT, SEEDER_PERCENT, UDP_REQUEST_TIMEOUT,
};
use seednode::bench::swarm::Swarms;
use seednode::bench::tracker_udp::{TrackerReport, UdpConfig};
use seednode::bench::{hash, process_cpu_secs, table};
use serde::Serialize;

use super::{
    CliError, FIRST_LOOPBACK_SOURCE, SelfArgs, error_summary, http_config, print_json, row,
    run_http, run_leech, run_udp,
};

/// Bound on the child's start-up: hashing the file and binding its ports.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);
/// Time the child gets to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Leecher connections against the node.
const LEECH_CONNECTIONS: usize = 2;
/// Simulated tracker peers.
const TRACKER_PEERS: u64 = 10_000;
/// HTTP tracker connections.
const HTTP_CONNECTIONS: usize = 4;
/// Write chunk of the generated file, bytes.
const WRITE_CHUNK_LEN: usize = 1 << 20;

/// The result of `bench self`.
#[derive(Debug, Serialize)]
struct SelfReport {
    /// Torrent creation, GB/s.
    hashing_gb_per_s: f64,
    /// Raw SHA-1 with as many threads, GB/s.
    sha1_gb_per_s: f64,
    /// Seeding to the sink leecher, MB/s.
    seeding_mb_per_s: f64,
    /// The node's CPU seconds per GB sent.
    seeding_cpu_s_per_gb: Option<f64>,
    /// Request-to-block latency, median, ms.
    seeding_latency_p50_ms: f64,
    /// UDP tracker, successful responses per second.
    udp_tracker_responses_per_s: f64,
    /// HTTP tracker, successful responses per second.
    http_tracker_responses_per_s: f64,
    /// Errors over every generator (connections failed, tracker errors).
    errors: u64,
    /// Seconds each generator ran.
    duration_secs: f64,
    /// Size of the generated file, bytes.
    file_bytes: u64,
    /// Details.
    hash: hash::HashReport,
    leech: seednode::bench::leech::LeechReport,
    udp_tracker: TrackerReport,
    http_tracker: TrackerReport,
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(parent: Option<&Path>) -> Result<Self, CliError> {
        let parent = parent.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = parent.join(format!("seednode-bench-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The seeding child, stopped on drop.
struct Node {
    child: Child,
}

impl Node {
    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let end = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < end {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Writes `size` pseudo-random bytes to `path`.
fn write_file(path: &Path, size: u64) -> Result<(), CliError> {
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut f = File::create(path).map_err(err)?;
    let mut rng = seednode_wire::rng::Rng::from_u64(size);
    let mut buf = vec![0u8; WRITE_CHUNK_LEN];
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left.min(WRITE_CHUNK_LEN as u64)).unwrap_or(WRITE_CHUNK_LEN);
        rng.fill(&mut buf[..n]);
        f.write_all(&buf[..n]).map_err(err)?;
        left -= n as u64;
    }
    f.sync_all().map_err(err)
}

/// Starts `seednode seed FILE` on 127.0.0.1 and waits for its `listening:` line; returns the
/// node, its address and its .torrent.
///
/// `node_command` runs the node instead of this executable: a program and its first arguments,
/// split at spaces (`qemu-aarch64 -L /usr/aarch64-linux-gnu target/…/seednode`: under
/// qemu-user without binfmt_misc a guest cannot start another guest binary itself).
fn start_node(
    dir: &Path,
    file: &Path,
    node_command: Option<&str>,
) -> Result<(Node, SocketAddr, PathBuf), CliError> {
    let exe = std::env::current_exe().map_err(|e| format!("finding this executable: {e}"))?;
    let torrent = dir.join("bench.torrent");
    let log_path = dir.join("seed.log");
    let log = File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let mut words: Vec<String> = match node_command {
        Some(c) => c.split_whitespace().map(str::to_owned).collect(),
        None => vec![exe.display().to_string()],
    };
    if words.is_empty() {
        return Err("--node-command is empty".into());
    }
    let program = words.remove(0);
    let mut child = Command::new(&program)
        .args(&words)
        .arg("seed")
        .arg(file)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--no-dht",
            "--summary-interval",
            "0",
        ])
        .arg("-o")
        .arg(&torrent)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("starting {program} seed: {e}"))?;
    let stdout = child.stdout.take();
    let node = Node { child };
    let Some(stdout) = stdout else {
        return Err("no stdout pipe from the node".into());
    };
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let end = Instant::now() + STARTUP_TIMEOUT;
    let fail = |why: String| {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(10).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!("the node under test {why}\n{}", tail.join("\n"))
    };
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(addr) = line.strip_prefix("listening: ") {
                    let addr: SocketAddr = addr
                        .trim()
                        .parse()
                        .map_err(|_| fail(format!("printed a bad address: {line:?}")))?;
                    return Ok((node, addr, torrent));
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(fail(format!(
                    "did not start within {} s",
                    STARTUP_TIMEOUT.as_secs()
                )));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(fail("exited before it was ready".into()));
            }
        }
    }
}

/// Runs `bench self`.
///
/// # Errors
/// The file cannot be written, the node does not start, or a generator measured nothing.
pub(super) fn run(a: &SelfArgs, json: bool) -> Result<(), CliError> {
    let dir = TempDir::new(a.dir.as_deref())?;
    let file = dir.0.join("bench.bin");
    eprintln!("bench self: writing {} bytes to {}", a.size, file.display());
    write_file(&file, a.size)?;
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    eprintln!("bench self: hashing");
    let hash = hash::run(&file, threads, None, &|_| {})?;

    eprintln!("bench self: starting the node");
    let (mut node, addr, torrent_path) = start_node(&dir.0, &file, a.node_command.as_deref())?;
    let torrent = Torrent::load(&torrent_path).map_err(|e| e.to_string())?;

    let config = LeechConfig {
        peer: addr,
        connections: LEECH_CONNECTIONS.min(torrent.piece_count() as usize),
        source: None,
        mode: Mode::Timed {
            warmup: Duration::ZERO,
            window: a.duration,
        },
        pipeline: seednode::bench::limits::DEFAULT_PIPELINE,
        verify_pieces: 2,
    };
    let cpu_before = process_cpu_secs(&node.pid()).ok();
    let leech = run_leech(&torrent, &config, "seeding");
    let cpu_after = process_cpu_secs(&node.pid()).ok();
    let received: u64 = leech
        .per_connection
        .iter()
        .map(|c| c.bytes + c.warmup_bytes)
        .sum();
    let seeding_cpu_s_per_gb = cpu_before
        .zip(cpu_after)
        .filter(|_| received > 0)
        .map(|(b, e)| (e - b) / (received as f64 / 1e9));

    let SocketAddr::V4(v4) = addr else {
        return Err("the node listens on IPv6; expected 127.0.0.1".into());
    };
    let swarms = Swarms::given(vec![torrent.info_hash]);
    let udp_config = UdpConfig {
        server: SocketAddrV4::new(*v4.ip(), v4.port()),
        duration: a.duration,
        peers: TRACKER_PEERS,
        in_flight: DEFAULT_IN_FLIGHT,
        sockets: DEFAULT_UDP_SOCKETS,
        first_source: FIRST_LOOPBACK_SOURCE,
        mix: [10, 80, 10],
        scrape_hashes: 1,
        seed: 1,
        fill: false,
        numwant: NUMWANT,
        seeder_percent: SEEDER_PERCENT,
        timeout: UDP_REQUEST_TIMEOUT,
    };
    let udp = run_udp(&udp_config, &swarms)?;
    let http_config = http_config(
        &format!("http://{addr}/announce"),
        a.duration,
        TRACKER_PEERS,
        HTTP_CONNECTIONS,
        [90, 10],
        1,
        1,
    )?;
    let http = run_http(&http_config, &swarms);
    node.stop();
    drop(node);

    let errors = leech.errors as u64 + udp.errors() + http.errors();
    let report = SelfReport {
        hashing_gb_per_s: hash.create_gb_per_s,
        sha1_gb_per_s: hash.sha1_gb_per_s,
        seeding_mb_per_s: leech.mb_per_s,
        seeding_cpu_s_per_gb,
        seeding_latency_p50_ms: leech.latency_p50_ms,
        udp_tracker_responses_per_s: udp.responses_per_s,
        http_tracker_responses_per_s: http.responses_per_s,
        errors,
        duration_secs: a.duration.as_secs_f64(),
        file_bytes: a.size,
        hash,
        leech,
        udp_tracker: udp,
        http_tracker: http,
    };
    if json {
        print_json("self", &report)?;
    } else {
        print!("{}", self_table(&report));
    }
    let mut problems = Vec::new();
    if let Some(e) = report
        .leech
        .per_connection
        .iter()
        .find_map(|c| c.error.as_deref())
    {
        problems.push(format!("seeding: {e}"));
    } else if report.leech.bytes == 0 {
        problems.push("seeding: no block arrived".to_owned());
    }
    for (what, r) in [
        ("UDP tracker", &report.udp_tracker),
        ("HTTP tracker", &report.http_tracker),
    ] {
        if r.responses() == 0 || r.errors() > 0 {
            problems.push(format!(
                "{what}: {} responses, errors: {}",
                r.responses(),
                error_summary(r)
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "bench self found problems: {}",
            problems.join("; ")
        ))
    }
}

/// The one table of `bench self`.
fn self_table(r: &SelfReport) -> String {
    let rows = vec![
        row(
            "hashing (create)",
            format!("{:.3}", r.hashing_gb_per_s),
            "GB/s",
        ),
        row("raw SHA-1", format!("{:.3}", r.sha1_gb_per_s), "GB/s"),
        row("seeding", format!("{:.1}", r.seeding_mb_per_s), "MB/s"),
        row(
            "seeding CPU",
            r.seeding_cpu_s_per_gb
                .map_or_else(|| "unknown".to_owned(), |c| format!("{c:.2}")),
            "CPU s/GB",
        ),
        row(
            "seeding latency p50",
            format!("{:.2}", r.seeding_latency_p50_ms),
            "ms",
        ),
        row(
            "UDP tracker",
            format!("{:.0}", r.udp_tracker_responses_per_s),
            "responses/s",
        ),
        row(
            "HTTP tracker",
            format!("{:.0}", r.http_tracker_responses_per_s),
            "responses/s",
        ),
        row("errors", r.errors.to_string(), ""),
    ];
    table(&["self", "value", "unit"], &rows)
}
