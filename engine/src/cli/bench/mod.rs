//! `seednode bench`: the load generators of [`seednode::bench`] as a command, with an aligned
//! table for people and `--json` for scripts (each JSON result carries the machine's
//! description, so results from different boards compare). Every argument is checked before
//! anything runs; every run is bounded by `--duration`.

mod self_check;

use std::io::IsTerminal as _;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, ToSocketAddrs as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use clap::builder::RangedU64ValueParser;
use clap::{ArgGroup, Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use seednode::bench::leech::{self, LeechConfig, LeechReport, Mode, Torrent};
use seednode::bench::limits::{
    DEFAULT_HTTP_CONNECTIONS, DEFAULT_IN_FLIGHT, DEFAULT_INFO_HASHES, DEFAULT_PEERS,
    DEFAULT_PIPELINE, DEFAULT_SCRAPE_HASHES, DEFAULT_UDP_SOCKETS, MAX_DURATION,
    MAX_HTTP_CONNECTIONS, MAX_IN_FLIGHT, MAX_INFO_HASHES, MAX_LEECH_CONNECTIONS, MAX_PIPELINE,
    MAX_SCRAPE_HASHES, MAX_UDP_SOCKETS, NUMWANT, SEEDER_PERCENT, UDP_REQUEST_TIMEOUT,
};
use seednode::bench::swarm::Swarms;
use seednode::bench::tracker_http::{self, HttpConfig};
use seednode::bench::tracker_udp::{self, TrackerReport, UdpConfig};
use seednode::bench::{Machine, hash, table};
use seednode_wire::InfoHash;
use serde::Serialize;

use super::CliError;
use super::parse::parse_piece_length;

/// First source address of the generators' sockets against a loopback target: 127.0.1.1 and up
/// (the whole of 127/8 is loopback on Linux), away from the 127.0.0.1 a node usually listens on.
pub(crate) const FIRST_LOOPBACK_SOURCE: Ipv4Addr = Ipv4Addr::new(127, 0, 1, 1);

#[derive(Args)]
pub(crate) struct BenchArgs {
    /// Print one JSON object (the result and the machine's description) instead of a table.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: BenchCommand,
}

#[derive(Subcommand)]
pub(crate) enum BenchCommand {
    /// Download from any seeder as fast as it sends (BEP 3, pipelined 16 KiB requests), discard
    /// or SHA-1 check the blocks; report MB/s, the spread over connections and request latency.
    Leech(LeechArgs),
    /// Load any tracker with announces and scrapes of simulated peers (BEP 15 over UDP, or BEP
    /// 3/23/48 over HTTP); report responses per second and errors by kind.
    Tracker(TrackerBenchArgs),
    /// Torrent-creation throughput of PATH (what `seednode create` does) against this
    /// machine's raw SHA-1 throughput.
    Hash(HashArgs),
    /// A first health check: seed a generated file with this node on loopback and run the
    /// other benches against it; one table (hashing, seeding, tracker). About 30 s.
    #[command(name = "self")]
    SelfCheck(SelfArgs),
}

#[derive(Args)]
pub(crate) struct LeechArgs {
    /// The .torrent the seeder serves (v1 or hybrid).
    #[arg(long, value_name = "FILE")]
    pub(crate) torrent: PathBuf,
    /// The seeder, HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) peer: String,
    /// Concurrent connections, each on its own slice of the pieces.
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=MAX_LEECH_CONNECTIONS as u64))]
    pub(crate) connections: u64,
    /// Seconds measured (decimals allowed).
    #[arg(long, default_value = "10", value_name = "S", value_parser = parse_duration)]
    pub(crate) duration: Duration,
    /// Seconds before the measurement, not counted (a seeder's unchoke and ramp-up).
    #[arg(long, default_value = "0", value_name = "S", value_parser = parse_warmup)]
    pub(crate) warmup: Duration,
    /// Check every piece received against the torrent's SHA-1 (without it, the first 2 pieces
    /// of each connection are).
    #[arg(long)]
    pub(crate) verify: bool,
    /// Requests outstanding per connection (capped by the seeder's reqq).
    #[arg(long, default_value_t = DEFAULT_PIPELINE, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_PIPELINE)))]
    pub(crate) pipeline: u32,
    /// Connection i comes from IP+i (e.g. 127.0.0.50 on loopback: seeders limit connections
    /// per IP) [default: the kernel's choice].
    #[arg(long, value_name = "IP")]
    pub(crate) source: Option<Ipv4Addr>,
}

#[derive(Args)]
#[command(group(ArgGroup::new("target").args(["udp", "http"])))]
pub(crate) struct TrackerBenchArgs {
    /// A UDP tracker (BEP 15), HOST:PORT (IPv4).
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) udp: Option<String>,
    /// An HTTP tracker's announce URL, http://HOST:PORT/announce.
    #[arg(long, value_name = "URL")]
    pub(crate) http: Option<String>,
    /// Distinct info-hashes (generated; swarm sizes follow a Zipf law).
    #[arg(long, default_value_t = DEFAULT_INFO_HASHES, value_name = "N",
          conflicts_with = "info_hash_file",
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_INFO_HASHES as u64))]
    pub(crate) info_hashes: usize,
    /// Use the info-hashes listed in FILE (40 hex digits a line, the first most popular), e.g.
    /// those a whitelisting tracker serves.
    #[arg(long, value_name = "FILE")]
    pub(crate) info_hash_file: Option<PathBuf>,
    /// Write the generated info-hashes to FILE (40 hex a line: an opentracker whitelist) and
    /// exit (no --udp or --http needed).
    #[arg(long, value_name = "FILE", conflicts_with = "info_hash_file")]
    pub(crate) write_info_hashes: Option<PathBuf>,
    /// Simulated peers.
    #[arg(long, default_value_t = DEFAULT_PEERS, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) peers: u64,
    /// Seconds measured (decimals allowed).
    #[arg(long, default_value = "10", value_name = "S", value_parser = parse_duration)]
    pub(crate) duration: Duration,
    /// UDP: requests in flight.
    #[arg(long, default_value_t = DEFAULT_IN_FLIGHT, value_name = "K",
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_IN_FLIGHT as u64))]
    pub(crate) in_flight: usize,
    /// UDP: client sockets (each on its own 127.0.1.x address against a loopback tracker).
    #[arg(long, default_value_t = DEFAULT_UDP_SOCKETS, value_name = "S",
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_UDP_SOCKETS as u64))]
    pub(crate) sockets: usize,
    /// HTTP: concurrent connections.
    #[arg(long, default_value_t = DEFAULT_HTTP_CONNECTIONS, value_name = "C",
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_HTTP_CONNECTIONS as u64))]
    pub(crate) connections: usize,
    /// Weights of connect:announce:scrape requests (HTTP ignores connect).
    #[arg(long, default_value = "10:80:10", value_name = "C:A:S", value_parser = parse_mix)]
    pub(crate) mix: [u32; 3],
    /// Info-hashes per scrape.
    #[arg(long, default_value_t = DEFAULT_SCRAPE_HASHES, value_name = "H",
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_SCRAPE_HASHES as u64))]
    pub(crate) scrape_hashes: usize,
    /// Seed of the generated info-hashes and of the request stream.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub(crate) seed: u64,
}

#[derive(Args)]
pub(crate) struct HashArgs {
    /// A file or directory.
    pub(crate) path: PathBuf,
    /// Hashing threads, for both figures [default: all cores].
    #[arg(long, value_name = "N",
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=1024))]
    pub(crate) threads: Option<usize>,
    /// Piece length (262144, 256K, 1M) [default: as `seednode create` chooses].
    #[arg(long, value_name = "SIZE", value_parser = parse_piece_length)]
    pub(crate) piece_length: Option<u32>,
}

#[derive(Args)]
pub(crate) struct SelfArgs {
    /// Seconds each load generator runs (seeding, UDP tracker, HTTP tracker).
    #[arg(long, default_value = "5", value_name = "S", value_parser = parse_duration)]
    pub(crate) duration: Duration,
    /// Size of the generated file (64M, 1G).
    #[arg(long, default_value = "64M", value_name = "SIZE", value_parser = parse_self_size)]
    pub(crate) size: u64,
    /// Directory for the temporary file [default: the system's temporary directory].
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
    /// Run the node under test with this command instead of this executable (a program and
    /// its first arguments, split at spaces), e.g. under an emulator:
    /// "qemu-aarch64 -L /usr/aarch64-linux-gnu target/aarch64-unknown-linux-gnu/cross/seednode".
    #[arg(long, value_name = "CMD")]
    pub(crate) node_command: Option<String>,
}

/// Parses seconds (decimals allowed), 0 < S <= [`MAX_DURATION`].
fn parse_duration(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= MAX_DURATION.as_secs_f64()) {
        return Err(format!(
            "{text:?}: seconds must be above 0 and at most {}",
            MAX_DURATION.as_secs()
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses seconds for a warm-up: as [`parse_duration`], or 0.
fn parse_warmup(text: &str) -> Result<Duration, String> {
    if text.trim().parse::<f64>() == Ok(0.0) {
        return Ok(Duration::ZERO);
    }
    parse_duration(text)
}

/// Parses `C:A:S` weights, not all 0.
fn parse_mix(text: &str) -> Result<[u32; 3], String> {
    let parts: Vec<&str> = text.split(':').collect();
    let bad = || format!("{text:?} is not C:A:S (three whole weights, e.g. 10:80:10)");
    let [c, a, s] = parts.as_slice() else {
        return Err(bad());
    };
    let w = |p: &str| p.trim().parse::<u32>().map_err(|_| bad());
    let mix = [w(c)?, w(a)?, w(s)?];
    if mix.iter().all(|x| *x == 0) {
        return Err(format!("{text:?}: at least one weight must be above 0"));
    }
    if mix.iter().map(|x| u64::from(*x)).sum::<u64>() > u64::from(u32::MAX) {
        return Err(format!("{text:?}: weights too large"));
    }
    Ok(mix)
}

/// Smallest `bench self` file: a few pieces.
const MIN_SELF_SIZE: u64 = 1 << 20;
/// Largest `bench self` file, bytes.
const MAX_SELF_SIZE: u64 = 64 << 30;

fn parse_self_size(text: &str) -> Result<u64, String> {
    let n = super::parse::parse_size(text)?;
    if !(MIN_SELF_SIZE..=MAX_SELF_SIZE).contains(&n) {
        return Err(format!("{text:?}: the size must be 1M to 64G"));
    }
    Ok(n)
}

/// Runs `seednode bench ...`.
///
/// # Errors
/// A bad argument, a target that cannot be reached, or a run that measured nothing.
pub(crate) fn bench(args: &BenchArgs) -> Result<(), CliError> {
    match &args.command {
        BenchCommand::Leech(a) => bench_leech(a, args.json),
        BenchCommand::Tracker(a) => bench_tracker(a, args.json),
        BenchCommand::Hash(a) => bench_hash(a, args.json),
        BenchCommand::SelfCheck(a) => self_check::run(a, args.json),
    }
}

/// The JSON document of every bench: which, on what machine, and the result.
#[derive(Serialize)]
struct JsonOut<'a, T: Serialize> {
    bench: &'static str,
    machine: Machine,
    result: &'a T,
}

fn print_json<T: Serialize>(bench: &'static str, result: &T) -> Result<(), CliError> {
    let doc = JsonOut {
        bench,
        machine: Machine::probe(),
        result,
    };
    let text = serde_json::to_string_pretty(&doc).map_err(|e| format!("writing JSON: {e}"))?;
    println!("{text}");
    Ok(())
}

/// A progress bar over a known duration on a terminal (stderr), showing a live count; nothing
/// when stderr is not a terminal.
pub(crate) struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How often the bar is redrawn.
const TICK_INTERVAL: Duration = Duration::from_millis(200);

impl Ticker {
    /// Starts a bar labelled `label` over `duration`; `count` is shown as `unit` per second.
    pub(crate) fn start(
        label: &str,
        duration: Duration,
        count: Arc<AtomicU64>,
        scale: f64,
        unit: &'static str,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        if !std::io::stderr().is_terminal() {
            return Self { stop, thread: None };
        }
        let bar = ProgressBar::new(duration.as_millis().try_into().unwrap_or(u64::MAX));
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {elapsed} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(label.to_owned());
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let start = std::time::Instant::now();
            while !flag.load(Ordering::Relaxed) {
                let secs = start.elapsed().as_secs_f64();
                bar.set_position(start.elapsed().as_millis().try_into().unwrap_or(u64::MAX));
                let n = count.load(Ordering::Relaxed) as f64 / scale;
                bar.set_message(format!("{:.1} {unit}", n / secs.max(1e-3)));
                std::thread::sleep(TICK_INTERVAL);
            }
            bar.finish_and_clear();
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Resolves `HOST:PORT` for `flag`.
fn resolve(flag: &str, text: &str) -> Result<SocketAddr, CliError> {
    text.to_socket_addrs()
        .map_err(|e| format!("{flag} {text}: not a reachable HOST:PORT ({e})"))?
        .next()
        .ok_or_else(|| format!("{flag} {text}: the name has no address"))
}

/// Runs the sink leecher and returns its report (errors of connections are in it).
pub(crate) fn run_leech(torrent: &Torrent, config: &LeechConfig, label: &str) -> LeechReport {
    let progress = Arc::new(AtomicU64::new(0));
    let _ticker = Ticker::start(
        label,
        config.mode.bound(),
        Arc::clone(&progress),
        1e6,
        "MB/s",
    );
    leech::run(torrent, config, &progress)
}

fn bench_leech(a: &LeechArgs, json: bool) -> Result<(), CliError> {
    let torrent = Torrent::load(&a.torrent).map_err(|e| e.to_string())?;
    let peer = resolve("--peer", &a.peer)?;
    let connections = usize::try_from(a.connections).unwrap_or(MAX_LEECH_CONNECTIONS);
    if connections > torrent.piece_count() as usize {
        return Err(format!(
            "--connections {connections} exceeds the torrent's {} pieces (each connection \
             takes its own slice)",
            torrent.piece_count()
        ));
    }
    if let Some(ip) = a.source {
        let last = u32::from(ip).checked_add(u32::try_from(connections - 1).unwrap_or(u32::MAX));
        if last.is_none() {
            return Err(format!(
                "--source {ip}: no room for {connections} addresses after it"
            ));
        }
    }
    let config = LeechConfig {
        peer,
        connections,
        source: a.source,
        mode: Mode::Timed {
            warmup: a.warmup,
            window: a.duration,
        },
        pipeline: a.pipeline,
        verify_pieces: if a.verify { u32::MAX } else { 2 },
    };
    let report = run_leech(&torrent, &config, "leech");
    let failures: Vec<&str> = report
        .per_connection
        .iter()
        .filter_map(|c| c.error.as_deref())
        .collect();
    if report.bytes
        + report
            .per_connection
            .iter()
            .map(|c| c.warmup_bytes)
            .sum::<u64>()
        == 0
        && !failures.is_empty()
    {
        return Err(failures.join("; "));
    }
    if json {
        print_json("leech", &report)?;
    } else {
        print!("{}", leech_table(&report));
    }
    if failures.is_empty() {
        if report.bytes == 0 {
            return Err(format!(
                "no block arrived from {peer} in {:.1} s (never unchoked?)",
                report.secs
            ));
        }
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

/// The human table of a leech run.
pub(crate) fn leech_table(r: &LeechReport) -> String {
    let client = r
        .per_connection
        .iter()
        .map(|c| c.client.as_str())
        .find(|c| !c.is_empty())
        .unwrap_or("unknown");
    let rows = vec![
        row("seeder", r.peer.clone(), ""),
        row("client", escape(client), ""),
        row("connections", r.connections.to_string(), ""),
        row("throughput", format!("{:.1}", r.mb_per_s), "MB/s"),
        row(
            "per connection min",
            format!("{:.1}", r.conn_min_mb_per_s),
            "MB/s",
        ),
        row(
            "per connection median",
            format!("{:.1}", r.conn_median_mb_per_s),
            "MB/s",
        ),
        row(
            "per connection max",
            format!("{:.1}", r.conn_max_mb_per_s),
            "MB/s",
        ),
        row("latency p50", format!("{:.2}", r.latency_p50_ms), "ms"),
        row("latency p90", format!("{:.2}", r.latency_p90_ms), "ms"),
        row("latency p99", format!("{:.2}", r.latency_p99_ms), "ms"),
        row("bytes", r.bytes.to_string(), "B"),
        row("seconds", format!("{:.2}", r.secs), "s"),
        row("verified pieces", r.verified_pieces.to_string(), ""),
        row("errors", r.errors.to_string(), ""),
    ];
    table(&["leech", "value", "unit"], &rows)
}

fn row(what: &str, value: String, unit: &str) -> Vec<String> {
    vec![what.to_owned(), value, unit.to_owned()]
}

/// Remote text for the terminal: control characters replaced.
fn escape(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Reads an info-hash list: 40 hex digits a line, blank lines and `#` comments skipped.
fn read_info_hashes(path: &Path) -> Result<Vec<InfoHash>, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if out.len() >= MAX_INFO_HASHES {
            return Err(format!(
                "{}: more than {MAX_INFO_HASHES} info-hashes",
                path.display()
            ));
        }
        let ih = (line.len() == 40)
            .then(|| InfoHash::from_text(line).ok())
            .flatten()
            .ok_or_else(|| {
                format!(
                    "{}:{}: not an info-hash (40 hex digits)",
                    path.display(),
                    n + 1
                )
            })?;
        out.push(ih);
    }
    if out.is_empty() {
        return Err(format!("{}: no info-hash in the file", path.display()));
    }
    Ok(out)
}

/// Writes info-hashes, 40 hex a line (opentracker's whitelist format).
pub(crate) fn write_info_hashes(path: &Path, swarms: &Swarms) -> Result<(), CliError> {
    let mut text = String::with_capacity(swarms.len() * 41);
    for ih in swarms.info_hashes() {
        text.push_str(&ih.to_hex());
        text.push('\n');
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// A UDP tracker address: IPv4 only.
pub(crate) fn udp_target(text: &str) -> Result<SocketAddrV4, CliError> {
    match resolve("--udp", text)? {
        SocketAddr::V4(a) => Ok(a),
        SocketAddr::V6(_) => Err(format!(
            "--udp {text}: IPv6 trackers cannot be benchmarked yet; give an IPv4 address"
        )),
    }
}

/// Runs a UDP tracker load and returns its report.
pub(crate) fn run_udp(config: &UdpConfig, swarms: &Swarms) -> Result<TrackerReport, CliError> {
    let count = Arc::new(AtomicU64::new(0));
    let _ticker = Ticker::start(
        "tracker",
        config.duration,
        Arc::clone(&count),
        1.0,
        "responses/s",
    );
    tracker_udp::run(config, swarms, &mut |n| count.store(n, Ordering::Relaxed))
}

/// Runs an HTTP tracker load and returns its report.
pub(crate) fn run_http(config: &HttpConfig, swarms: &Swarms) -> TrackerReport {
    let count = Arc::new(AtomicU64::new(0));
    let _ticker = Ticker::start(
        "tracker",
        config.duration,
        Arc::clone(&count),
        1.0,
        "responses/s",
    );
    tracker_http::run(config, swarms, &mut |n| count.store(n, Ordering::Relaxed))
}

/// The HTTP configuration of `url`.
pub(crate) fn http_config(
    url: &str,
    duration: Duration,
    peers: u64,
    connections: usize,
    mix: [u32; 2],
    scrape_hashes: usize,
    seed: u64,
) -> Result<HttpConfig, CliError> {
    let (host, path) = tracker_http::split_url(url).map_err(|e| format!("--http: {e}"))?;
    let server = resolve("--http", &host)?;
    Ok(HttpConfig {
        url: url.to_owned(),
        server,
        host,
        scrape_path: tracker_http::scrape_path(&path),
        announce_path: path,
        duration,
        peers,
        connections,
        first_source: FIRST_LOOPBACK_SOURCE,
        mix,
        scrape_hashes,
        seed,
    })
}

fn bench_tracker(a: &TrackerBenchArgs, json: bool) -> Result<(), CliError> {
    let swarms = match &a.info_hash_file {
        Some(path) => Swarms::given(read_info_hashes(path)?),
        None => Swarms::generated(a.info_hashes, a.seed),
    };
    if let Some(path) = &a.write_info_hashes {
        write_info_hashes(path, &swarms)?;
        eprintln!("{} info-hashes written to {}", swarms.len(), path.display());
        return Ok(());
    }
    if a.udp.is_none() && a.http.is_none() {
        return Err("give the tracker to load: --udp HOST:PORT or --http URL".into());
    }
    let report = if let Some(udp) = &a.udp {
        let server = udp_target(udp)?;
        let sockets = a
            .sockets
            .min(usize::try_from(a.peers).unwrap_or(usize::MAX));
        let config = UdpConfig {
            server,
            duration: a.duration,
            peers: a.peers,
            in_flight: a.in_flight,
            sockets,
            first_source: FIRST_LOOPBACK_SOURCE,
            mix: a.mix,
            scrape_hashes: a.scrape_hashes,
            seed: a.seed,
            fill: false,
            numwant: NUMWANT,
            seeder_percent: SEEDER_PERCENT,
            timeout: UDP_REQUEST_TIMEOUT,
        };
        if a.peers > config.max_peers() {
            return Err(format!(
                "--peers {}: at most {} with {} sockets{}",
                a.peers,
                config.max_peers(),
                sockets,
                if config.distinct_sources() {
                    ""
                } else {
                    " (a tracker off loopback sees one source address)"
                }
            ));
        }
        run_udp(&config, &swarms)?
    } else {
        let url = a.http.as_deref().unwrap_or_default();
        let config = http_config(
            url,
            a.duration,
            a.peers,
            a.connections,
            [a.mix[1], a.mix[2]],
            a.scrape_hashes,
            a.seed,
        )?;
        if config.mix == [0, 0] {
            return Err("--mix: HTTP needs an announce or scrape weight above 0".into());
        }
        run_http(&config, &swarms)
    };
    if json {
        print_json("tracker", &report)?;
    } else {
        print!("{}", tracker_table(&report, swarms.len()));
    }
    if report.responses() == 0 {
        return Err(format!(
            "no successful response from {} in {:.1} s ({} requests sent, {} errors: {})",
            report.tracker,
            report.secs,
            report.sent,
            report.errors(),
            error_summary(&report)
        ));
    }
    Ok(())
}

/// `kind: count` pairs of a report's errors, or "none".
pub(crate) fn error_summary(r: &TrackerReport) -> String {
    if r.errors_by_kind.is_empty() {
        return "none".to_owned();
    }
    r.errors_by_kind
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The human table of a tracker run.
pub(crate) fn tracker_table(r: &TrackerReport, info_hashes: usize) -> String {
    let mut rows = vec![
        row("tracker", r.tracker.clone(), ""),
        row("info-hashes", info_hashes.to_string(), ""),
        row("responses", format!("{:.0}", r.responses_per_s), "/s"),
        row("connect responses", r.connects.to_string(), ""),
        row("announce responses", r.announces.to_string(), ""),
        row("scrape responses", r.scrapes.to_string(), ""),
        row(
            "peers per announce",
            format!("{:.1}", r.peers_per_announce),
            "",
        ),
        row("latency p50", format!("{:.3}", r.latency_p50_ms), "ms"),
        row("latency p90", format!("{:.3}", r.latency_p90_ms), "ms"),
        row("latency p99", format!("{:.3}", r.latency_p99_ms), "ms"),
        row("requests sent", r.sent.to_string(), ""),
        row("error responses", r.error_responses.to_string(), ""),
        row("malformed responses", r.malformed.to_string(), ""),
        row("timeouts", r.timeouts.to_string(), ""),
        row("I/O errors", r.io_errors.to_string(), ""),
        row("seconds", format!("{:.2}", r.secs), "s"),
    ];
    if let Some(cpu) = r.generator_cpu_secs {
        rows.push(row("generator CPU", format!("{cpu:.2}"), "s"));
    }
    for (kind, n) in &r.errors_by_kind {
        rows.push(row(&format!("error: {}", escape(kind)), n.to_string(), ""));
    }
    table(&["tracker", "value", "unit"], &rows)
}

fn bench_hash(a: &HashArgs, json: bool) -> Result<(), CliError> {
    if !a.path.exists() {
        return Err(format!("{}: no such file or directory", a.path.display()));
    }
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let total = std::fs::metadata(&a.path)
        .ok()
        .filter(std::fs::Metadata::is_file)
        .map(|m| m.len());
    let bar = crate::progress::Progress::new("hashing", total);
    let r = hash::run(&a.path, threads, a.piece_length, &|done| bar.set(done))?;
    bar.finish();
    if json {
        print_json("hash", &r)?;
    } else {
        print!("{}", hash_table(&r));
    }
    Ok(())
}

/// The human table of a hash run.
pub(crate) fn hash_table(r: &hash::HashReport) -> String {
    let rows = vec![
        row("path", r.path.clone(), ""),
        row("bytes", r.bytes.to_string(), "B"),
        row("piece length", r.piece_length.to_string(), "B"),
        row("threads", r.threads.to_string(), ""),
        row("passes", r.passes.to_string(), ""),
        row("create", format!("{:.3}", r.create_gb_per_s), "GB/s"),
        row("raw SHA-1", format!("{:.3}", r.sha1_gb_per_s), "GB/s"),
        row("ratio", format!("{:.2}", r.ratio), ""),
    ];
    table(&["hash", "value", "unit"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_bounded() {
        assert_eq!(parse_duration("2.5").unwrap(), Duration::from_millis(2500));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("NaN").is_err());
        assert!(parse_duration("inf").is_err());
        assert!(parse_duration("3601").is_err());
        assert_eq!(parse_warmup("0").unwrap(), Duration::ZERO);
    }

    #[test]
    fn clap_definitions_are_consistent() {
        use clap::CommandFactory as _;
        crate::cli::Cli::command().debug_assert();
    }

    #[test]
    fn mix_needs_three_weights() {
        assert_eq!(parse_mix("10:80:10").unwrap(), [10, 80, 10]);
        assert!(parse_mix("0:0:0").is_err());
        assert!(parse_mix("1:2").is_err());
        assert!(parse_mix("a:b:c").is_err());
    }
}
