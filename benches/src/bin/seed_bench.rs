//! Seeding at full strength (issue 5): seednode (`--data-path sendfile`, the default, and
//! `--data-path copy`), libtorrent (python3-libtorrent, `engine/tests/support/lt_seed.py`) and
//! transmission-daemon seed the same 1 GiB file in one run; prints Markdown.
//!
//! ```text
//! cargo build --release -p seednode -p seednode-benches
//! target/release/seed_bench [--data-dir DIR] [--size BYTES] [--rounds N] [--duration SECS]
//!     [--warmup SECS] [--seeders LIST] [--tests LIST] [--many N] [--idle SECS] [--log-dir DIR]
//! ```
//!
//! What it measures, for each seeder, one after the other within each round (the order rotates
//! from round to round):
//!
//! - `sink1`, `sink8`: throughput to 1 and to 8 concurrent [`sink_leecher`] connections, each from
//!   its own 127.x.y.z address, each requesting 16 KiB blocks with a deep pipeline and discarding
//!   them (the first pieces of each connection are SHA-1 checked). The connections run
//!   `--warmup` seconds uncounted (transmission unchokes new peers only at its next 10-second
//!   rechoke), then `--duration` seconds counted.
//! - `aria2c`, `libtorrent`: one real leecher downloading the whole file from a fresh address into
//!   tmpfs (`/dev/shm`): aria2c 1.36 finds the seeder through a tracker thread of this harness,
//!   `engine/tests/support/lt_download.py` (libtorrent 2.0.8) dials it directly.
//! - For each of those: the seeder's CPU seconds (utime + stime of its process tree, from
//!   `/proc/PID/stat`, before and after) per GB it delivered (for the sinks: all blocks received,
//!   warm-up included, over CPU of the whole run), the leecher's CPU, and the CPU the rest of the
//!   machine burned meanwhile (the noise).
//! - Memory while seeding 1 GiB: `VmHWM` after start-up, the highest `VmRSS` sampled during the
//!   transfers, and `VmHWM` at the end.
//! - Memory with `--many` (1,000) small torrents loaded and idle: 64 KiB-1 MiB files (created
//!   once), seeded by one `seednode seed f1 ... fN` and added to a fresh transmission-daemon with
//!   `transmission-remote -a`; `VmRSS` after everything is loaded and `--idle` seconds passed.
//!
//! All four 1 GiB seeders run at once on their own ports of 127.0.0.1 (the idle ones cost next to
//! nothing), so every test meets them back to back. transmission-daemon gets a fresh config dir
//! with DHT, LPD, PEX, uTP and port mapping off and listens on 127.0.0.1 only (it refuses to dial
//! 127/8 peers but accepts them). Before each measurement the harness waits (polling every 30 s, up to
//! 20 min) while another benchmark named by `--busy-pattern` runs. Every child is stopped when the
//! harness ends or fails ([`Guard`]); every wait is bounded.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::io::Read as _;
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use seednode_benches::{
    ARIA2C_FLAGS, Args, Diagnostics, Guard, MiniTracker, RemoveOnDrop, STAT_PPID, SizeError,
    Stdout, XorShift64Star, cli_main, clock_ticks_per_sec, cpu_model, free_tcp_port,
    kernel_release, machine_busy_ticks, median, memory_bytes, parse_number, parse_positive, ratio,
    reaped_children_ticks, stat_fields, torrent_piece_length, tree_cpu_ticks, utc_date_time,
    warm_page_cache, workspace_root, write_random_file,
};

/// Default size of the payload, bytes (1 GiB).
const DEFAULT_SIZE: u64 = 1 << 30;
/// Default counted window of a sink run.
const DEFAULT_DURATION_SECS: f64 = 10.0;
/// Default uncounted start of a sink run: transmission rechokes every 10 s.
const DEFAULT_WARMUP_SECS: f64 = 12.0;
/// Default number of small torrents for the memory test.
const DEFAULT_MANY: usize = 1000;
/// Default idle time before the many-torrents memory is read.
const DEFAULT_IDLE: Duration = Duration::from_secs(10);
/// Default bound on one real-leecher download.
const DEFAULT_REAL_TIMEOUT: Duration = Duration::from_secs(600);
/// Bound on a seeder's start-up (checking or hashing its data) until it serves.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(900);
/// Time a child gets to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on one `transmission-remote` call.
const REMOTE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often transfers are polled (exit, RSS); bounds the error of the wall time.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Pause between measurements, so the previous connections are closed.
const SETTLE: Duration = Duration::from_secs(1);
/// Interval and bound of the wait for other benchmarks to finish.
const BUSY_POLL: Duration = Duration::from_secs(30);
const BUSY_MAX_WAIT: Duration = Duration::from_secs(20 * 60);
/// Default `pgrep -f` pattern of the other benchmarks on this machine.
const DEFAULT_BUSY_PATTERN: &str = "udp_tracker|seed_vs_libtorrent|opentracker|aquatic";
/// Connections of the `sink8` test.
const SINK_MANY_CONNECTIONS: usize = 8;
/// Addresses reserved for each measurement's leechers (at least [`SINK_MANY_CONNECTIONS`]).
const ADDRS_PER_MEASUREMENT: u32 = 16;
/// First leecher address: 127.1.0.1 (the whole 127/8 is loopback on Linux).
const FIRST_LEECHER_ADDR: Ipv4Addr = Ipv4Addr::new(127, 1, 0, 1);
/// Address every seeder listens on.
const SEEDER_IP: Ipv4Addr = Ipv4Addr::LOCALHOST;
/// Smallest and largest file of the many-torrents test, bytes.
const MANY_MIN_LEN: u64 = 64 << 10;
const MANY_MAX_LEN: u64 = 1 << 20;
/// Torrents per `transmission-remote -a` call.
const ADD_BATCH: usize = 100;
/// lt_seed.py `--timeout`, seconds: a safety net that ends it should the harness be killed.
const LT_SEED_SAFETY_TIMEOUT_SECS: u64 = 7200;
/// How a failing child is shown: the last 30 lines of its log.
const DIAGNOSTICS: Diagnostics = Diagnostics {
    tail_lines: 30,
    count_tail_lines: false,
    exit_status_on_close: false,
};
const MB: f64 = 1e6;
const GB: f64 = 1e9;
const MIB: f64 = 1_048_576.0;

const USAGE: &str = "\
usage: seed_bench [OPTIONS]

Seeds one file from seednode (sendfile and copy data paths), libtorrent and transmission-daemon in
the same run; measures throughput to sink and real leechers, CPU per GB and memory; prints Markdown.

options:
  --data-dir DIR       where the payload and the small files are kept between runs
                       [default: /tmp/seed_bench]
  --size BYTES         payload size (suffixes KiB, MiB, GiB) [default: 1GiB]
  --rounds N           repetitions of every throughput test [default: 1]
  --duration SECS      counted window of a sink run [default: 10]
  --warmup SECS        uncounted start of a sink run [default: 12]
  --seeders LIST       comma list of sendfile,copy,libtorrent,transmission [default: all]
  --tests LIST         comma list of sink1,sink8,aria2c,libtorrent,many [default: all]
  --many N             torrents of the memory test [default: 1000]
  --idle SECS          idle time before the many-torrents memory is read [default: 10]
  --real-timeout SECS  bound on one real-leecher download [default: 600]
  --busy-pattern RE    pgrep -f pattern of benchmarks to wait for [default: udp_tracker|...]
  --seednode PATH      [default: target/release/seednode]
  --sink PATH          [default: sink_leecher next to this executable]
  --python PATH        Python with libtorrent [default: /usr/bin/python3]
  --log-dir DIR        keep the children's logs here [default: a temp dir, removed]
  -h, --help           this text";

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    cli_main("seed_bench", USAGE, Options::parse(&args), |opts| {
        print!("{}", bench(&opts, &args)?);
        Ok(())
    })
}

/// Which program seeds, and how.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum SeederKind {
    Sendfile,
    Copy,
    Libtorrent,
    Transmission,
}

impl SeederKind {
    const ALL: [Self; 4] = [
        Self::Sendfile,
        Self::Copy,
        Self::Libtorrent,
        Self::Transmission,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Sendfile => "seednode (sendfile)",
            Self::Copy => "seednode (copy)",
            Self::Libtorrent => "libtorrent",
            Self::Transmission => "transmission",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Self::Sendfile => "sendfile",
            Self::Copy => "copy",
            Self::Libtorrent => "libtorrent",
            Self::Transmission => "transmission",
        }
    }
}

/// One throughput test.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Test {
    Sink1,
    Sink8,
    Aria2c,
    LtLeecher,
}

impl Test {
    const ALL: [Self; 4] = [Self::Sink1, Self::Sink8, Self::Aria2c, Self::LtLeecher];

    fn name(self) -> &'static str {
        match self {
            Self::Sink1 => "1 sink leecher",
            Self::Sink8 => "8 sink leechers",
            Self::Aria2c => "1 aria2c",
            Self::LtLeecher => "1 libtorrent",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Self::Sink1 => "sink1",
            Self::Sink8 => "sink8",
            Self::Aria2c => "aria2c",
            Self::LtLeecher => "libtorrent",
        }
    }
}

/// Command-line options, parsed by hand to keep the harness free of dependencies.
struct Options {
    data_dir: PathBuf,
    size: u64,
    rounds: usize,
    duration_secs: f64,
    warmup_secs: f64,
    seeders: Vec<SeederKind>,
    tests: Vec<Test>,
    many_test: bool,
    many: usize,
    idle: Duration,
    real_timeout: Duration,
    busy_pattern: String,
    seednode: PathBuf,
    sink: PathBuf,
    python: PathBuf,
    lt_seed: PathBuf,
    lt_download: PathBuf,
    log_dir: Option<PathBuf>,
}

impl Options {
    /// Parses `args` (without the program name); `Ok(None)` means help was asked for.
    fn parse(args: &[OsString]) -> Result<Option<Self>, String> {
        let root = workspace_root();
        let exe_dir = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf))
            .unwrap_or_default();
        let mut o = Self {
            data_dir: PathBuf::from("/tmp/seed_bench"),
            size: DEFAULT_SIZE,
            rounds: 1,
            duration_secs: DEFAULT_DURATION_SECS,
            warmup_secs: DEFAULT_WARMUP_SECS,
            seeders: SeederKind::ALL.to_vec(),
            tests: Test::ALL.to_vec(),
            many_test: true,
            many: DEFAULT_MANY,
            idle: DEFAULT_IDLE,
            real_timeout: DEFAULT_REAL_TIMEOUT,
            busy_pattern: DEFAULT_BUSY_PATTERN.to_string(),
            seednode: root.join("target/release/seednode"),
            sink: exe_dir.join("sink_leecher"),
            python: PathBuf::from("/usr/bin/python3"),
            lt_seed: root.join("engine/tests/support/lt_seed.py"),
            lt_download: root.join("engine/tests/support/lt_download.py"),
            log_dir: None,
        };
        let mut args = Args::new(args);
        while let Some(arg) = args.next_flag()? {
            match arg {
                "-h" | "--help" => return Ok(None),
                "--data-dir" => o.data_dir = args.value(arg)?.into(),
                "--size" => o.size = parse_size(&args.value(arg)?)?,
                "--rounds" => {
                    o.rounds = parse_number(arg, &args.value(arg)?)?;
                    if !(1..=20).contains(&o.rounds) {
                        return Err("--rounds must be 1 to 20".into());
                    }
                }
                "--duration" => o.duration_secs = positive(arg, &args.value(arg)?)?,
                "--warmup" => o.warmup_secs = positive(arg, &args.value(arg)?)?,
                "--seeders" => {
                    let list = args.value(arg)?;
                    o.seeders = pick(list.split(','), &SeederKind::ALL, SeederKind::key)
                        .map_err(|k| format!("--seeders: unknown seeder {k}"))?;
                }
                "--tests" => {
                    let list = args.value(arg)?;
                    o.many_test = list.split(',').any(|t| t == "many");
                    let keys = list.split(',').filter(|t| *t != "many");
                    o.tests = pick(keys, &Test::ALL, Test::key)
                        .map_err(|k| format!("--tests: unknown test {k}"))?;
                }
                "--many" => {
                    o.many = parse_number(arg, &args.value(arg)?)?;
                    if !(1..=10_000).contains(&o.many) {
                        return Err("--many must be 1 to 10000".into());
                    }
                }
                "--idle" => o.idle = Duration::from_secs_f64(positive(arg, &args.value(arg)?)?),
                "--real-timeout" => {
                    o.real_timeout = Duration::from_secs_f64(positive(arg, &args.value(arg)?)?);
                }
                "--busy-pattern" => o.busy_pattern = args.value(arg)?,
                "--seednode" => o.seednode = args.value(arg)?.into(),
                "--sink" => o.sink = args.value(arg)?.into(),
                "--python" => o.python = args.value(arg)?.into(),
                "--log-dir" => o.log_dir = Some(args.value(arg)?.into()),
                other => return Err(format!("unknown argument {other}")),
            }
        }
        for (what, p) in [("seednode", &o.seednode), ("sink_leecher", &o.sink)] {
            if !p.is_file() {
                return Err(format!(
                    "no {what} at {}: `cargo build --release -p seednode -p seednode-benches`",
                    p.display()
                ));
            }
        }
        Ok(Some(o))
    }
}

/// The items of `all` whose `key`s are `keys`, in that order; `Err` names the first unknown key.
fn pick<'k, T: Copy>(
    keys: impl Iterator<Item = &'k str>,
    all: &[T],
    key: fn(T) -> &'static str,
) -> Result<Vec<T>, &'k str> {
    keys.map(|k| all.iter().copied().find(|x| key(*x) == k).ok_or(k))
        .collect()
}

/// The value of `flag`: a positive number below 100 000.
fn positive(flag: &str, v: &str) -> Result<f64, String> {
    parse_positive(flag, v, "number", 1e5)
}

/// Parses a byte count: a plain number or one ending in KiB, MiB, GiB (binary).
fn parse_size(text: &str) -> Result<u64, String> {
    seednode_benches::parse_size(text).map_err(|e| match e {
        SizeError::NotANumber { digits } => format!("--size: not a number: {digits}"),
        SizeError::UnknownUnit => format!("--size: unknown unit in {text}"),
        SizeError::TooLarge | SizeError::Zero => format!("--size: out of range: {text}"),
    })
}

fn progress(msg: std::fmt::Arguments<'_>) {
    eprintln!("seed_bench: {msg}");
}

// ---------------------------------------------------------------------------------------------
// Child processes

/// Runs a command to completion within `timeout`; returns its stdout.
fn run_bounded(cmd: &mut Command, timeout: Duration) -> Result<String, String> {
    let what = format!("{:?}", cmd.get_program());
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {what}: {e}"))?;
    let mut out = child.stdout.take().ok_or("no stdout")?;
    let mut err = child.stderr.take().ok_or("no stderr")?;
    let reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| format!("{what}: {e}"))? {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{what} did not finish within {} s",
                timeout.as_secs()
            ));
        }
        thread::sleep(POLL_INTERVAL);
    };
    let stdout = reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    if !status.success() {
        return Err(format!("{what} failed ({status}): {stdout}{stderr}"));
    }
    Ok(stdout)
}

/// First line of a command's stdout (or stderr), if it ran.
fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    String::from_utf8_lossy(&text)
        .lines()
        .next()
        .map(|l| l.trim().to_string())
}

/// This process and its ancestors: their command lines may hold the pattern itself.
fn own_lineage() -> Vec<u32> {
    let mut pids = vec![std::process::id()];
    while let Some(&pid) = pids.last() {
        let ppid = stat_fields(pid)
            .ok()
            .and_then(|f| f.get(STAT_PPID).copied())
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or(0);
        if ppid <= 1 || pids.contains(&ppid) || pids.len() > 64 {
            break;
        }
        pids.push(ppid);
    }
    pids
}

/// Waits while another benchmark matching `pattern` runs (every [`BUSY_POLL`], up to
/// [`BUSY_MAX_WAIT`]); returns what still ran when the wait gave up.
fn wait_for_quiet(pattern: &str) -> Option<String> {
    let started = Instant::now();
    let lineage = own_lineage();
    loop {
        let out = Command::new("pgrep")
            .args(["-fa", pattern])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output();
        let busy = out
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .filter(|l| {
                        let pid = l.split_whitespace().next().and_then(|p| p.parse().ok());
                        pid.is_some_and(|p| !lineage.contains(&p))
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default();
        if busy.is_empty() {
            return None;
        }
        if started.elapsed() >= BUSY_MAX_WAIT {
            progress(format_args!(
                "still busy after 20 min, measuring anyway: {busy}"
            ));
            return Some(busy.lines().next().unwrap_or_default().to_string());
        }
        progress(format_args!(
            "another benchmark is running, waiting 30 s: {}",
            busy.lines().next().unwrap_or_default()
        ));
        thread::sleep(BUSY_POLL);
    }
}

// ---------------------------------------------------------------------------------------------
// /proc

/// The 1-minute load average, or `?`.
fn load_average() -> String {
    seednode_benches::load_average().unwrap_or_else(|| "?".into())
}

/// CPU counters sampled before and after a measurement.
struct CpuSample {
    seeder: u64,
    children: u64,
    machine: u64,
}

impl CpuSample {
    fn take(seeder_pid: u32) -> Result<Self, String> {
        Ok(Self {
            seeder: tree_cpu_ticks(seeder_pid)?,
            children: reaped_children_ticks().unwrap_or(0),
            machine: machine_busy_ticks().unwrap_or(0),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Files

/// Writes `size` random bytes to `path` through a temporary name, so that a file there is whole.
fn write_payload(path: &Path, size: u64) -> Result<(), String> {
    let tmp = path.with_extension("partial");
    write_random_file(&tmp, size)?;
    fs::rename(&tmp, path).map_err(|e| format!("renaming to {}: {e}", path.display()))
}

/// `n` files of 64 KiB-1 MiB in `dir`, created once (a `complete` marker names the count).
fn many_files(dir: &Path, n: usize) -> Result<Vec<PathBuf>, String> {
    let names: Vec<PathBuf> = (0..n).map(|i| dir.join(format!("f{i:05}.bin"))).collect();
    let marker = dir.join("complete");
    if fs::read_to_string(&marker).is_ok_and(|s| s.trim() == n.to_string()) {
        return Ok(names);
    }
    progress(format_args!(
        "creating {n} small files in {}",
        dir.display()
    ));
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // A deterministic generator for the small files' sizes and bytes.
    let mut rng = XorShift64Star::from_state(0x5eed_0000_0000_0001);
    for path in &names {
        let len = MANY_MIN_LEN + rng.next_u64() % (MANY_MAX_LEN - MANY_MIN_LEN + 1);
        let mut data = Vec::with_capacity(len as usize + 8);
        while (data.len() as u64) < len {
            data.extend_from_slice(&rng.next_u64().to_le_bytes());
        }
        data.truncate(len as usize);
        fs::write(path, &data).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    fs::write(&marker, n.to_string()).map_err(|e| format!("{}: {e}", marker.display()))?;
    Ok(names)
}

// ---------------------------------------------------------------------------------------------
// Seeders

/// A running seeder of the 1 GiB file.
struct Seeder {
    kind: SeederKind,
    addr: SocketAddrV4,
    guard: Guard,
    /// VmHWM right after start-up (checking the data included).
    hwm_after_start: u64,
    /// Highest VmRSS sampled during transfers.
    rss_max_transfer: u64,
}

/// Settings for a transmission-daemon of ours: loopback only, no DHT/LPD/PEX/uTP/port mapping,
/// no limits, RPC without auth on 127.0.0.1.
fn transmission_settings(peer_port: u16, rpc_port: u16, download_dir: &Path) -> String {
    format!(
        r#"{{
  "bind-address-ipv4": "127.0.0.1",
  "bind-address-ipv6": "::1",
  "blocklist-enabled": false,
  "dht-enabled": false,
  "download-dir": "{}",
  "idle-seeding-limit-enabled": false,
  "incomplete-dir-enabled": false,
  "lpd-enabled": false,
  "message-level": 1,
  "peer-port": {peer_port},
  "peer-port-random-on-start": false,
  "pex-enabled": false,
  "port-forwarding-enabled": false,
  "ratio-limit-enabled": false,
  "rpc-authentication-required": false,
  "rpc-bind-address": "127.0.0.1",
  "rpc-host-whitelist-enabled": false,
  "rpc-port": {rpc_port},
  "rpc-whitelist": "127.0.0.1",
  "rpc-whitelist-enabled": true,
  "speed-limit-up-enabled": false,
  "start-added-torrents": true,
  "utp-enabled": false,
  "watch-dir-enabled": false
}}
"#,
        download_dir.display()
    )
}

/// A transmission-daemon of ours and its RPC port.
struct Transmission {
    guard: Guard,
    rpc: SocketAddrV4,
}

impl Transmission {
    fn start(config_dir: &Path, download_dir: &Path, log: &Path) -> Result<(Self, u16), String> {
        fs::create_dir_all(config_dir).map_err(|e| format!("{}: {e}", config_dir.display()))?;
        let peer_port = free_tcp_port(SEEDER_IP)?;
        let rpc_port = free_tcp_port(SEEDER_IP)?;
        let settings = config_dir.join("settings.json");
        fs::write(
            &settings,
            transmission_settings(peer_port, rpc_port, download_dir),
        )
        .map_err(|e| format!("{}: {e}", settings.display()))?;
        let mut cmd = Command::new("transmission-daemon");
        cmd.arg("--foreground").arg("--config-dir").arg(config_dir);
        let guard = Guard::spawn(
            "transmission-daemon",
            &mut cmd,
            log,
            Stdout::Log,
            DIAGNOSTICS,
        )?;
        let rpc = SocketAddrV4::new(SEEDER_IP, rpc_port);
        let mut t = Self { guard, rpc };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&rpc.into(), Duration::from_secs(1)).is_err() {
            if Instant::now() > deadline || t.guard.try_wait()?.is_some() {
                return Err(format!(
                    "transmission-daemon RPC not up\n{}",
                    t.guard.log_tail()
                ));
            }
            thread::sleep(Duration::from_millis(100));
        }
        Ok((t, peer_port))
    }

    fn remote(&self, args: &[&OsString]) -> Result<String, String> {
        let mut cmd = Command::new("transmission-remote");
        cmd.arg(self.rpc.to_string()).args(args);
        run_bounded(&mut cmd, REMOTE_TIMEOUT)
    }

    /// Adds torrents whose data lies in the daemon's `download-dir` (its settings name it).
    /// transmission-remote 3.00 adds only the last of several files after one `-a`, so every
    /// file gets its own.
    fn add(&self, torrents: &[PathBuf]) -> Result<(), String> {
        for batch in torrents.chunks(ADD_BATCH) {
            let mut args: Vec<OsString> = Vec::with_capacity(2 * batch.len());
            for p in batch {
                args.push("-a".into());
                args.push(p.as_os_str().to_owned());
            }
            let refs: Vec<&OsString> = args.iter().collect();
            self.remote(&refs)?;
        }
        Ok(())
    }

    /// Waits until `want` torrents are complete and idle or seeding (checked, not verifying).
    fn wait_seeding(&mut self, want: usize, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let list: OsString = "-l".into();
        loop {
            let out = self.remote(&[&list])?;
            let ready = out
                .lines()
                .filter(|l| {
                    let mut f = l.split_whitespace();
                    f.next()
                        .is_some_and(|id| id.trim_end_matches('*').parse::<u32>().is_ok())
                        && f.next() == Some("100%")
                        && (l.contains(" Idle ") || l.contains(" Seeding "))
                })
                .count();
            if ready >= want {
                return Ok(());
            }
            if Instant::now() > deadline || self.guard.try_wait()?.is_some() {
                return Err(format!(
                    "transmission has {ready} of {want} torrents seeding after {} s\n{}",
                    timeout.as_secs(),
                    out.lines().take(5).collect::<Vec<_>>().join("\n")
                ));
            }
            thread::sleep(Duration::from_millis(500));
        }
    }
}

/// Starts one seeder of `data` and waits until it serves.
fn start_seeder(
    kind: SeederKind,
    data: &Path,
    torrent: &Path,
    work: &Path,
    log_dir: &Path,
    opts: &Options,
) -> Result<Seeder, String> {
    let log = log_dir.join(format!("seeder-{}.log", kind.key()));
    progress(format_args!("starting {}", kind.name()));
    let (guard, addr) = match kind {
        SeederKind::Sendfile | SeederKind::Copy => {
            let addr = SocketAddrV4::new(SEEDER_IP, free_tcp_port(SEEDER_IP)?);
            let mut cmd = Command::new(&opts.seednode);
            cmd.arg("seed")
                .arg(data)
                .arg("--torrent")
                .arg(torrent)
                .arg("--listen")
                .arg(addr.to_string())
                .arg("--dht-bootstrap")
                .arg("none")
                .arg("--dht-state")
                .arg(work.join(format!("dht-{}", kind.key())))
                .arg("--data-path")
                .arg(if kind == SeederKind::Copy {
                    "copy"
                } else {
                    "sendfile"
                });
            let mut g = Guard::spawn(kind.name(), &mut cmd, &log, Stdout::Lines, DIAGNOSTICS)?;
            g.wait_for_line("listening:", STARTUP_TIMEOUT)?;
            (g, addr)
        }
        SeederKind::Libtorrent => {
            let addr = SocketAddrV4::new(SEEDER_IP, free_tcp_port(SEEDER_IP)?);
            let mut cmd = Command::new(&opts.python);
            cmd.arg(&opts.lt_seed)
                .arg(data)
                .arg("--torrent")
                .arg(torrent)
                .arg("--listen")
                .arg(addr.to_string())
                .arg("--timeout")
                .arg(LT_SEED_SAFETY_TIMEOUT_SECS.to_string());
            let mut g = Guard::spawn(kind.name(), &mut cmd, &log, Stdout::Lines, DIAGNOSTICS)?;
            g.wait_for_line("listening:", STARTUP_TIMEOUT)?;
            (g, addr)
        }
        SeederKind::Transmission => {
            let dir = data.parent().ok_or("payload has no directory")?;
            let (mut t, port) = Transmission::start(&work.join("transmission-1gib"), dir, &log)?;
            t.add(&[torrent.to_path_buf()])?;
            t.wait_seeding(1, STARTUP_TIMEOUT)?;
            (t.guard, SocketAddrV4::new(SEEDER_IP, port))
        }
    };
    let hwm_after_start = memory_bytes(guard.pid(), "VmHWM").unwrap_or(0);
    Ok(Seeder {
        kind,
        addr,
        guard,
        hwm_after_start,
        rss_max_transfer: 0,
    })
}

// ---------------------------------------------------------------------------------------------
// Measurements

/// What one throughput measurement found.
struct Measurement {
    round: usize,
    test: Test,
    kind: SeederKind,
    /// Bytes that count for the throughput, over `secs`.
    bytes: u64,
    secs: f64,
    /// Bytes the seeder delivered over the whole run (sinks: warm-up included), for CPU per GB.
    delivered: u64,
    seeder_cpu: f64,
    leecher_cpu: f64,
    other_cpu: f64,
    /// Sink connections that got data, of those opened.
    served: Option<(usize, usize)>,
    load: String,
    busy: Option<String>,
}

impl Measurement {
    fn rate(&self) -> f64 {
        if self.secs > 0.0 {
            self.bytes as f64 / MB / self.secs
        } else {
            0.0
        }
    }

    fn cpu_per_gb(&self) -> Option<f64> {
        (self.delivered > 0).then(|| self.seeder_cpu / (self.delivered as f64 / GB))
    }
}

/// Everything a measurement needs besides the seeder and the test.
struct Ctx<'a> {
    opts: &'a Options,
    torrent: &'a Path,
    size: u64,
    log_dir: &'a Path,
    shm: &'a Path,
    ticks: f64,
    next_addr: u32,
}

impl Ctx<'_> {
    /// The first of [`ADDRS_PER_MEASUREMENT`] fresh leecher addresses.
    fn fresh_addrs(&mut self) -> Ipv4Addr {
        let a = Ipv4Addr::from(self.next_addr);
        self.next_addr += ADDRS_PER_MEASUREMENT;
        a
    }
}

fn measure(
    ctx: &mut Ctx<'_>,
    seeder: &mut Seeder,
    test: Test,
    round: usize,
) -> Result<Measurement, String> {
    let busy = wait_for_quiet(&ctx.opts.busy_pattern);
    thread::sleep(SETTLE);
    let src = ctx.fresh_addrs();
    let tag = format!("r{round}-{}-{}", test.key(), seeder.kind.key());
    let log = ctx.log_dir.join(format!("{tag}.log"));
    let pid = seeder.guard.pid();
    progress(format_args!(
        "round {round}: {} from {} (leechers from {src})",
        test.name(),
        seeder.kind.name()
    ));
    let before = CpuSample::take(pid)?;
    let started = Instant::now();
    let (bytes, secs, delivered, served, leecher) = match test {
        Test::Sink1 | Test::Sink8 => {
            let n = if test == Test::Sink1 {
                1
            } else {
                SINK_MANY_CONNECTIONS
            };
            let mut cmd = Command::new(&ctx.opts.sink);
            cmd.arg("--torrent")
                .arg(ctx.torrent)
                .arg("--peer")
                .arg(seeder.addr.to_string())
                .arg("--connections")
                .arg(n.to_string())
                .arg("--source")
                .arg(src.to_string())
                .arg("--warmup")
                .arg(ctx.opts.warmup_secs.to_string())
                .arg("--duration")
                .arg(ctx.opts.duration_secs.to_string())
                .arg("--python")
                .arg(&ctx.opts.python);
            let g = Guard::spawn("sink_leecher", &mut cmd, &log, Stdout::Lines, DIAGNOSTICS)?;
            let bound = Duration::from_secs_f64(ctx.opts.warmup_secs + ctx.opts.duration_secs)
                + Duration::from_secs(60);
            let (g, status) = watch(g, seeder, bound)?;
            if !status.success() {
                return Err(format!("sink_leecher failed ({status})\n{}", g.log_tail()));
            }
            let lines = g.drain_lines();
            let total = lines
                .iter()
                .find(|l| l.starts_with("sink-total "))
                .ok_or_else(|| format!("no sink-total line\n{}", g.log_tail()))?;
            let field =
                |k: &str| -> f64 { kv(total, k).and_then(|v| v.parse().ok()).unwrap_or(0.0) };
            let warm: u64 = lines
                .iter()
                .filter(|l| l.starts_with("sink-result "))
                .filter_map(|l| kv(l, "warmup_bytes").and_then(|v| v.parse::<u64>().ok()))
                .sum();
            let bytes = field("bytes") as u64;
            let served = field("served") as usize;
            fs::write(&log, lines.join("\n") + "\n").map_err(|e| format!("{e}"))?;
            (
                bytes,
                field("secs"),
                bytes + warm,
                Some((served, n)),
                "sink",
            )
        }
        Test::Aria2c | Test::LtLeecher => {
            let dir = ctx.shm.join(&tag);
            fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let dir = RemoveOnDrop::new(dir, "seed_bench");
            let port = free_tcp_port(src)?;
            let tracker;
            let mut cmd;
            if test == Test::Aria2c {
                let t = MiniTracker::start(SEEDER_IP, seeder.addr)
                    .map_err(|e| format!("tracker thread: {e}"))?;
                let url = format!("http://{}/announce", t.addr());
                tracker = Some(t);
                cmd = Command::new("aria2c");
                cmd.args(ARIA2C_FLAGS)
                    .arg(format!("--bt-tracker={url}"))
                    .arg(format!("--interface={src}"))
                    .arg(format!("--listen-port={port}"))
                    .arg("--dir")
                    .arg(dir.path())
                    .arg(ctx.torrent);
            } else {
                tracker = None;
                cmd = Command::new(&ctx.opts.python);
                cmd.arg(&ctx.opts.lt_download)
                    .arg(ctx.torrent)
                    .arg("--save-dir")
                    .arg(dir.path())
                    .arg("--peer")
                    .arg(seeder.addr.to_string())
                    .arg("--listen")
                    .arg(format!("{src}:{port}"))
                    .arg("--timeout")
                    .arg(ctx.opts.real_timeout.as_secs().to_string());
            }
            let g = Guard::spawn(test.key(), &mut cmd, &log, Stdout::Log, DIAGNOSTICS)?;
            let (g, status) = watch(g, seeder, ctx.opts.real_timeout + Duration::from_secs(30))?;
            drop(tracker);
            if !status.success() {
                return Err(format!(
                    "{} failed ({status})\n{}",
                    test.key(),
                    g.log_tail()
                ));
            }
            let secs = started.elapsed().as_secs_f64();
            (ctx.size, secs, ctx.size, None, test.key())
        }
    };
    let after = CpuSample::take(pid)?;
    let t = |a: u64, b: u64| b.saturating_sub(a) as f64 / ctx.ticks;
    let seeder_cpu = t(before.seeder, after.seeder);
    let leecher_cpu = t(before.children, after.children);
    let machine = t(before.machine, after.machine);
    let m = Measurement {
        round,
        test,
        kind: seeder.kind,
        bytes,
        secs,
        delivered,
        seeder_cpu,
        leecher_cpu,
        other_cpu: (machine - seeder_cpu - leecher_cpu).max(0.0),
        served,
        load: load_average(),
        busy,
    };
    progress(format_args!(
        "  {:.0} MB/s, seeder {:.2} CPU-s = {} CPU-s/GB, {leecher} {:.2} CPU-s, other {:.2} CPU-s",
        m.rate(),
        m.seeder_cpu,
        m.cpu_per_gb()
            .map_or_else(|| "n/a".into(), |c| format!("{c:.2}")),
        m.leecher_cpu,
        m.other_cpu
    ));
    Ok(m)
}

/// Waits for a leecher to exit within `bound`, sampling the seeder's RSS; fails if the seeder
/// exits.
fn watch(
    mut leecher: Guard,
    seeder: &mut Seeder,
    bound: Duration,
) -> Result<(Guard, ExitStatus), String> {
    let deadline = Instant::now() + bound;
    loop {
        if let Ok(rss) = memory_bytes(seeder.guard.pid(), "VmRSS") {
            seeder.rss_max_transfer = seeder.rss_max_transfer.max(rss);
        }
        if let Some(status) = leecher.try_wait()? {
            return Ok((leecher, status));
        }
        if let Some(status) = seeder.guard.try_wait()? {
            return Err(format!(
                "{} exited ({status}) during the transfer\n{}",
                seeder.kind.name(),
                seeder.guard.log_tail()
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} did not finish within {} s\n{}",
                leecher.name(),
                bound.as_secs(),
                leecher.log_tail()
            ));
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// The value of `key=` in a `key=value` line.
fn kv<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|f| f.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// What the many-torrents test found for one seeder.
struct ManyResult {
    name: &'static str,
    torrents: usize,
    load_secs: f64,
    rss: u64,
    /// Private memory (`RssAnon`) and mapped files (`RssFile`: the program and its libraries).
    anon: u64,
    file: u64,
    hwm: u64,
    idle_cpu: f64,
}

fn many_test(
    opts: &Options,
    work: &Path,
    log_dir: &Path,
    ticks: f64,
) -> Result<Vec<ManyResult>, String> {
    let dir = opts.data_dir.join(format!("many-{}", opts.many));
    let files = many_files(&dir, opts.many)?;
    let total: u64 = files
        .iter()
        .filter_map(|f| fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    progress(format_args!(
        "{} files, {:.0} MB; warming the page cache",
        files.len(),
        total as f64 / MB
    ));
    for f in &files {
        warm_page_cache(f)?;
    }
    let mut out = Vec::new();

    // seednode: one process, every file a torrent.
    let _ = wait_for_quiet(&opts.busy_pattern);
    let addr = SocketAddrV4::new(SEEDER_IP, free_tcp_port(SEEDER_IP)?);
    let mut cmd = Command::new(&opts.seednode);
    cmd.arg("seed")
        .args(&files)
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--dht-bootstrap")
        .arg("none")
        .arg("--dht-state")
        .arg(work.join("dht-many"));
    progress(format_args!("seednode seed with {} paths", files.len()));
    let started = Instant::now();
    let mut g = Guard::spawn(
        "seednode (many)",
        &mut cmd,
        &log_dir.join("many-seednode.log"),
        Stdout::Lines,
        DIAGNOSTICS,
    )?;
    let lines = g.wait_for_line("listening:", STARTUP_TIMEOUT)?;
    let load_secs = started.elapsed().as_secs_f64();
    let torrents = lines.iter().filter(|l| l.starts_with("info-hash:")).count();
    if torrents != files.len() {
        return Err(format!(
            "seednode announced {torrents} info-hashes for {} paths",
            files.len()
        ));
    }
    out.push(idle_memory(
        &mut g, "seednode", torrents, load_secs, opts.idle, ticks,
    )?);
    let _ = g.stop(STOP_TIMEOUT);

    // transmission-daemon: a fresh one, every .torrent seednode wrote added.
    let _ = wait_for_quiet(&opts.busy_pattern);
    let config = work.join("transmission-many");
    let _ = fs::remove_dir_all(&config);
    let started = Instant::now();
    let (mut t, _) = Transmission::start(&config, &dir, &log_dir.join("many-transmission.log"))?;
    let torrents: Vec<PathBuf> = files
        .iter()
        .map(|f| {
            let mut p = f.clone().into_os_string();
            p.push(".torrent");
            PathBuf::from(p)
        })
        .collect();
    progress(format_args!(
        "transmission-remote -a with {} torrents",
        torrents.len()
    ));
    t.add(&torrents)?;
    t.wait_seeding(torrents.len(), STARTUP_TIMEOUT)?;
    let load_secs = started.elapsed().as_secs_f64();
    out.push(idle_memory(
        &mut t.guard,
        "transmission",
        torrents.len(),
        load_secs,
        opts.idle,
        ticks,
    )?);
    let _ = t.guard.stop(STOP_TIMEOUT);
    Ok(out)
}

/// Lets a loaded seeder sit for `idle`, then reads its memory and the CPU it spent meanwhile.
fn idle_memory(
    g: &mut Guard,
    name: &'static str,
    torrents: usize,
    load_secs: f64,
    idle: Duration,
    ticks: f64,
) -> Result<ManyResult, String> {
    progress(format_args!(
        "{name}: loaded in {load_secs:.1} s; idle {} s",
        idle.as_secs()
    ));
    let pid = g.pid();
    let before = tree_cpu_ticks(pid)?;
    thread::sleep(idle);
    if let Some(status) = g.try_wait()? {
        return Err(format!("{name} exited ({status})\n{}", g.log_tail()));
    }
    let after = tree_cpu_ticks(pid)?;
    let r = ManyResult {
        name,
        torrents,
        load_secs,
        rss: memory_bytes(pid, "VmRSS").unwrap_or(0),
        anon: memory_bytes(pid, "RssAnon").unwrap_or(0),
        file: memory_bytes(pid, "RssFile").unwrap_or(0),
        hwm: memory_bytes(pid, "VmHWM").unwrap_or(0),
        idle_cpu: after.saturating_sub(before) as f64 / ticks,
    };
    progress(format_args!(
        "{name}: VmRSS {:.1} MiB, VmHWM {:.1} MiB, idle CPU {:.2} s",
        r.rss as f64 / MIB,
        r.hwm as f64 / MIB,
        r.idle_cpu
    ));
    Ok(r)
}

// ---------------------------------------------------------------------------------------------
// The run

/// Memory figures of one 1 GiB seeder.
struct MemResult {
    kind: SeederKind,
    hwm_after_start: u64,
    rss_max_transfer: u64,
    hwm_end: u64,
    anon_end: u64,
    file_end: u64,
}

fn bench(opts: &Options, args: &[OsString]) -> Result<String, String> {
    let ticks = clock_ticks_per_sec();
    let tmp = tempfile::Builder::new()
        .prefix("seed_bench.")
        .tempdir()
        .map_err(|e| format!("creating a temp dir: {e}"))?;
    let shm_base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        tmp.path().to_path_buf()
    };
    let shm = tempfile::Builder::new()
        .prefix("seed_bench.")
        .tempdir_in(&shm_base)
        .map_err(|e| format!("creating a temp dir in {}: {e}", shm_base.display()))?;
    let log_dir = match &opts.log_dir {
        Some(d) => {
            fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
            d.clone()
        }
        None => tmp.path().to_path_buf(),
    };
    fs::create_dir_all(&opts.data_dir).map_err(|e| format!("{}: {e}", opts.data_dir.display()))?;
    let load_start = load_average();
    let started = Instant::now();

    let mut measurements = Vec::new();
    let mut memory = Vec::new();
    let mut data_note = String::new();
    if !opts.tests.is_empty() && !opts.seeders.is_empty() {
        let data = opts.data_dir.join(format!("payload-{}.bin", opts.size));
        if fs::metadata(&data).map(|m| m.len()).ok() != Some(opts.size) {
            progress(format_args!(
                "writing {} random bytes to {}",
                opts.size,
                data.display()
            ));
            write_payload(&data, opts.size)?;
        }
        let torrent = opts.data_dir.join(format!("payload-{}.torrent", opts.size));
        if !torrent.is_file() {
            let mut cmd = Command::new(&opts.seednode);
            cmd.arg("create").arg(&data).arg("-o").arg(&torrent);
            run_bounded(&mut cmd, STARTUP_TIMEOUT)?;
        }
        let piece_length = torrent_piece_length(&torrent);
        let _ = write!(
            data_note,
            "{} ({} bytes, piece length {} KiB, made once by `seednode create`)",
            data.display(),
            opts.size,
            piece_length.map_or(0, |p| p / 1024)
        );
        warm_page_cache(&data)?;

        let mut seeders = Vec::new();
        for &kind in &opts.seeders {
            seeders.push(start_seeder(
                kind,
                &data,
                &torrent,
                tmp.path(),
                &log_dir,
                opts,
            )?);
        }
        let mut ctx = Ctx {
            opts,
            torrent: &torrent,
            size: opts.size,
            log_dir: &log_dir,
            shm: shm.path(),
            ticks,
            next_addr: u32::from(FIRST_LEECHER_ADDR),
        };
        for round in 1..=opts.rounds {
            for &test in &opts.tests {
                for k in 0..seeders.len() {
                    let i = (k + round - 1) % seeders.len();
                    warm_page_cache(&data)?;
                    measurements.push(measure(&mut ctx, &mut seeders[i], test, round)?);
                }
            }
        }
        for s in &mut seeders {
            memory.push(MemResult {
                kind: s.kind,
                hwm_after_start: s.hwm_after_start,
                rss_max_transfer: s.rss_max_transfer,
                hwm_end: memory_bytes(s.guard.pid(), "VmHWM").unwrap_or(0),
                anon_end: memory_bytes(s.guard.pid(), "RssAnon").unwrap_or(0),
                file_end: memory_bytes(s.guard.pid(), "RssFile").unwrap_or(0),
            });
            let _ = s.guard.stop(STOP_TIMEOUT);
        }
    }
    let many = if opts.many_test {
        many_test(opts, tmp.path(), &log_dir, ticks)?
    } else {
        Vec::new()
    };
    let env = Env {
        load_start,
        load_end: load_average(),
        wall_secs: started.elapsed().as_secs_f64(),
        data_note,
    };
    Ok(report(opts, args, &env, &measurements, &memory, &many))
}

// ---------------------------------------------------------------------------------------------
// The report

struct Env {
    load_start: String,
    load_end: String,
    wall_secs: f64,
    data_note: String,
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / MIB)
}

fn report(
    opts: &Options,
    args: &[OsString],
    env: &Env,
    ms: &[Measurement],
    memory: &[MemResult],
    many: &[ManyResult],
) -> String {
    let mut out = String::new();
    let quoted: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let _ = writeln!(
        out,
        "Command: `target/release/seed_bench{}{}`\n",
        if quoted.is_empty() { "" } else { " " },
        quoted.join(" ")
    );
    let cpu = cpu_model().unwrap_or_default();
    let _ = writeln!(
        out,
        "- Date: {} UTC; machine: {} cores (`nproc`), {cpu}, kernel {}; load average (1 min) {} \
         at the start, {} at the end; the run took {:.0} s",
        utc_date_time(SystemTime::now()),
        thread::available_parallelism().map_or(0, |n| n.get()),
        kernel_release().unwrap_or_else(|| "?".into()),
        env.load_start,
        env.load_end,
        env.wall_secs
    );
    let _ = writeln!(
        out,
        "- seednode: {} (`{}`); libtorrent {} (lt_seed.py / lt_download.py); {}; {}",
        command_line(&opts.seednode.to_string_lossy(), &["--version"]).unwrap_or_default(),
        opts.seednode.display(),
        command_line(
            &opts.python.to_string_lossy(),
            &["-c", "import libtorrent; print(libtorrent.__version__)"]
        )
        .unwrap_or_default(),
        command_line("transmission-daemon", &["-V"]).unwrap_or_default(),
        command_line("aria2c", &["--version"]).unwrap_or_default(),
    );
    if !env.data_note.is_empty() {
        let _ = writeln!(out, "- Payload: {}", env.data_note);
    }
    let _ = writeln!(
        out,
        "- Sinks: {} s warm-up (not counted) + {} s counted; MB = 10^6 bytes, GB = 10^9 bytes; \
         CPU-s = utime + stime of the seeder's process tree over the whole transfer; CPU-s per \
         GB divides by every byte delivered (sinks: warm-up included); other CPU-s = busy CPU of \
         the rest of the machine meanwhile (noise); load = 1-min load average after the \
         measurement",
        opts.warmup_secs, opts.duration_secs
    );

    if !ms.is_empty() {
        let _ = writeln!(
            out,
            "\n| round | test | seeder | MB/s | vs libtorrent | vs transmission | seeder CPU-s \
             | GB | CPU-s per GB | vs libtorrent | leecher CPU-s | other CPU-s | load | notes |"
        );
        let _ = writeln!(
            out,
            "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        );
        for m in ms {
            let peer = |k: SeederKind| {
                ms.iter()
                    .find(|p| p.round == m.round && p.test == m.test && p.kind == k)
            };
            let lt = peer(SeederKind::Libtorrent);
            let tr = peer(SeederKind::Transmission);
            let mut notes = Vec::new();
            if let Some((served, n)) = m.served
                && served < n
            {
                notes.push(format!("{served} of {n} connections served"));
            }
            if let Some(b) = &m.busy {
                notes.push(format!("other benchmark running: {b}"));
            }
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.0} | {} | {} | {:.2} | {:.2} | {} | {} | {:.2} | {:.2} | {} | {} |",
                m.round,
                m.test.name(),
                m.kind.name(),
                m.rate(),
                ratio(Some(m.rate()), lt.map(Measurement::rate)),
                ratio(Some(m.rate()), tr.map(Measurement::rate)),
                m.seeder_cpu,
                m.delivered as f64 / GB,
                m.cpu_per_gb()
                    .map_or_else(|| "n/a".into(), |c| format!("{c:.2}")),
                ratio(m.cpu_per_gb(), lt.and_then(Measurement::cpu_per_gb)),
                m.leecher_cpu,
                m.other_cpu,
                m.load,
                notes.join("; "),
            );
        }
        if opts.rounds > 1 {
            let _ = writeln!(
                out,
                "\nMedians over {} rounds:\n\n| test | seeder | MB/s | vs libtorrent | CPU-s per GB | vs libtorrent |",
                opts.rounds
            );
            let _ = writeln!(out, "|---|---|---:|---:|---:|---:|");
            for &test in &opts.tests {
                let med =
                    |k: SeederKind, f: fn(&Measurement) -> Option<f64>| median_of(ms, test, k, f);
                let rate = |m: &Measurement| Some(m.rate());
                for &k in &opts.seeders {
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} | {} | {} | {} |",
                        test.name(),
                        k.name(),
                        med(k, rate).map_or_else(|| "n/a".into(), |r| format!("{r:.0}")),
                        ratio(med(k, rate), med(SeederKind::Libtorrent, rate)),
                        med(k, Measurement::cpu_per_gb)
                            .map_or_else(|| "n/a".into(), |c| format!("{c:.2}")),
                        ratio(
                            med(k, Measurement::cpu_per_gb),
                            med(SeederKind::Libtorrent, Measurement::cpu_per_gb)
                        ),
                    );
                }
            }
        }
    }

    if !memory.is_empty() {
        let _ = writeln!(
            out,
            "\nMemory while seeding the payload (the same processes as above):\n\n\
             | seeder | VmHWM after start-up MiB | max VmRSS during transfers MiB | VmHWM at the \
             end MiB | vs libtorrent | vs transmission | RssAnon / RssFile at the end MiB |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
        let end_of = |k: SeederKind| {
            memory
                .iter()
                .find(|m| m.kind == k)
                .map(|m| m.hwm_end as f64)
        };
        for m in memory {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} / {} |",
                m.kind.name(),
                mib(m.hwm_after_start),
                mib(m.rss_max_transfer),
                mib(m.hwm_end),
                ratio(Some(m.hwm_end as f64), end_of(SeederKind::Libtorrent)),
                ratio(Some(m.hwm_end as f64), end_of(SeederKind::Transmission)),
                mib(m.anon_end),
                mib(m.file_end),
            );
        }
    }

    if !many.is_empty() {
        let _ = writeln!(
            out,
            "\n{} torrents of 64 KiB-1 MiB each, loaded and idle for {} s:\n\n\
             | seeder | torrents | loaded in s | VmRSS MiB | vs transmission | RssAnon MiB \
             | vs transmission | RssFile MiB | VmHWM MiB | CPU-s while idle |",
            opts.many,
            opts.idle.as_secs()
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        let tr = many.iter().find(|m| m.name == "transmission");
        for m in many {
            let _ = writeln!(
                out,
                "| {} | {} | {:.1} | {} | {} | {} | {} | {} | {} | {:.2} |",
                m.name,
                m.torrents,
                m.load_secs,
                mib(m.rss),
                ratio(Some(m.rss as f64), tr.map(|t| t.rss as f64)),
                mib(m.anon),
                ratio(Some(m.anon as f64), tr.map(|t| t.anon as f64)),
                mib(m.file),
                mib(m.hwm),
                m.idle_cpu,
            );
        }
    }
    goals(&mut out, ms, memory, many);
    out
}

/// The median of `f` over the measurements of `test` with seeder `k`.
fn median_of(
    ms: &[Measurement],
    test: Test,
    k: SeederKind,
    f: fn(&Measurement) -> Option<f64>,
) -> Option<f64> {
    median(
        ms.iter()
            .filter(|m| m.test == test && m.kind == k)
            .filter_map(f)
            .collect(),
    )
}

/// The issue's goals, checked against the medians of this run.
fn goals(out: &mut String, ms: &[Measurement], memory: &[MemResult], many: &[ManyResult]) {
    let med =
        |test: Test, k: SeederKind, f: fn(&Measurement) -> Option<f64>| median_of(ms, test, k, f);
    let rate = |m: &Measurement| Some(m.rate());
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let mut lines = Vec::new();
    if let Some(r) = med(Test::Sink1, SeederKind::Sendfile, rate) {
        lines.push(format!(
            "at least 2 GB/s to the sink leecher: {r:.0} MB/s (1 connection) — {}",
            verdict(r >= 2000.0)
        ));
    }
    for test in Test::ALL {
        let sn = med(test, SeederKind::Sendfile, Measurement::cpu_per_gb);
        let lt = med(test, SeederKind::Libtorrent, Measurement::cpu_per_gb);
        if let (Some(sn), Some(lt)) = (sn, lt) {
            lines.push(format!(
                "at most 1/4 of libtorrent's CPU per GB, {}: {sn:.2} vs {lt:.2} CPU-s/GB = {:.2} — {}",
                test.name(),
                sn / lt,
                verdict(sn <= lt / 4.0)
            ));
        }
    }
    for test in [Test::Aria2c, Test::LtLeecher] {
        let sn = med(test, SeederKind::Sendfile, rate);
        let lt = med(test, SeederKind::Libtorrent, rate);
        if let (Some(sn), Some(lt)) = (sn, lt) {
            lines.push(format!(
                "never slower than libtorrent, {}: {sn:.0} vs {lt:.0} MB/s — {}",
                test.name(),
                verdict(sn >= lt)
            ));
        }
    }
    if let Some(m) = memory.iter().find(|m| m.kind == SeederKind::Sendfile) {
        lines.push(format!(
            "peak RSS seeding the payload with default settings at most 16 MiB: {} MiB — {}",
            mib(m.hwm_end),
            verdict(m.hwm_end <= 16 << 20)
        ));
    }
    let sn = many.iter().find(|m| m.name == "seednode");
    let tr = many.iter().find(|m| m.name == "transmission");
    if let (Some(sn), Some(tr)) = (sn, tr) {
        lines.push(format!(
            "{} torrents: at most 1/4 of transmission's RSS and under 64 MiB: {} vs {} MiB = \
             {:.2} — {}",
            sn.torrents,
            mib(sn.rss),
            mib(tr.rss),
            sn.rss as f64 / tr.rss as f64,
            verdict(sn.rss * 4 <= tr.rss && sn.rss < 64 << 20)
        ));
    }
    if !lines.is_empty() {
        let _ = writeln!(
            out,
            "\nGoals (seednode with its defaults, `--data-path sendfile`):\n"
        );
        for l in lines {
            let _ = writeln!(out, "- {l}");
        }
    }
}
