//! Seeds one file to aria2c on loopback from `seednode seed` and from a libtorrent seeder
//! (python3-libtorrent, `engine/tests/support/lt_seed.py`) in the same run, and prints Markdown.
//!
//! ```text
//! cargo run --release -p seednode-benches --bin seed_vs_libtorrent -- [--size BYTES] [--runs N]
//!     [--file PATH] [--seednode PATH] [--lt-seed PATH] [--python PATH] [--timeout SECS]
//!     [--lt-shared-port] [--log-dir DIR]
//! ```
//!
//! The data file (random bytes, `--size`, default 1 GiB, or an existing `--file`) is hashed once
//! by `seednode create`; both seeders serve that same .torrent, so the info-hash and the pieces are
//! identical. Runs alternate seednode, libtorrent, seednode, ... For each run:
//!
//! - the file is read once so that it sits in the page cache;
//! - the seeder starts on a fresh port of 127.0.0.1 and checks the data against the torrent;
//! - once it has printed `listening:`, the CPU time (utime + stime, `/proc/<pid>/stat`) of its
//!   whole process tree is sampled, and aria2c starts from a fresh 127.0.0.x address into a fresh
//!   directory;
//! - while aria2c runs, the harness watches its file's allocated size (see [`WriteWatch`]): the
//!   first write ends aria2c's start-up, the 10 %-90 % stretch gives the steady transfer rate;
//! - when aria2c exits, the seeder's CPU time is sampled again, with its peak RSS (`VmHWM`, which
//!   includes its start-up check), aria2c's own CPU time (the harness's reaped-children time) and
//!   the busy CPU time of the rest of the machine (`/proc/stat`: the run's noise);
//! - the download is checked byte for byte against the source, then deleted, and the seeder is
//!   stopped with SIGTERM.
//!
//! aria2c finds each seeder through an HTTP tracker (`--bt-exclude-tracker='*' --bt-tracker=URL`):
//! seednode's own, on its peer port; for libtorrent, a tiny tracker thread in this harness naming
//! the libtorrent peer. With `--lt-shared-port`, lt_seed.py's own front door is used instead, but
//! it relays every peer byte through a Python thread, which the libtorrent figures then include.
//!
//! Everything stays on 127.0.0.x. Every child process is stopped when the harness ends or fails
//! (see [`Guard`]); each download is bounded by `--timeout`. The machine is shared and noisy: the
//! ratios between seeders measured in one run are the figures worth quoting.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::Read as _;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use seednode_benches::{
    ARIA2C_FLAGS, Diagnostics, Guard, MiniTracker, RemoveOnDrop, SizeError, Stdout, cli_main,
    clock_ticks_per_sec, cpu_model, free_tcp_port, kernel_release, machine_busy_ticks, median,
    memory_bytes, ratio, reaped_children_ticks, torrent_piece_length, tree_cpu_ticks, utc_date,
    warm_page_cache, workspace_root, write_random_file,
};

/// Default size of the generated data file, bytes (1 GiB).
const DEFAULT_SIZE: u64 = 1 << 30;
/// Default number of downloads, alternating seeders.
const DEFAULT_RUNS: usize = 3;
/// Most runs: each run's aria2c binds its own 127.0.0.x, x from [`FIRST_CLIENT_HOST`] up.
const MAX_RUNS: usize = 200;
/// Last octet of the first aria2c address; run `i` (0-based) uses `127.0.0.(10 + i)`.
const FIRST_CLIENT_HOST: u8 = 10;
/// Default bound on one download, seconds; aria2c is killed and the harness fails past it.
const DEFAULT_DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(300);
/// Bound on a seeder's start-up (checking the data against the torrent) until `listening:`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(180);
/// Time a seeder gets to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Interval between checks for a child's exit; bounds the error of the wall time.
const POLL_INTERVAL: Duration = Duration::from_millis(2);
/// Read and write buffer for the data file and the comparison, bytes.
const CHUNK_LEN: usize = 1 << 20;
/// Smallest file for which the 10 %-90 % transfer rate is reported, bytes: below it, aria2c's
/// 16 MiB disk cache makes the steps of the file's allocated size too coarse to time.
const MIN_STEADY_SIZE: u64 = 128 << 20;
/// How a failing child is shown: the last 40 lines of its log, counted; a seeder that closes its
/// stdout before `listening:` is waited for and its exit status named.
const DIAGNOSTICS: Diagnostics = Diagnostics {
    tail_lines: 40,
    count_tail_lines: true,
    exit_status_on_close: true,
};
/// lt_seed.py `--timeout`, seconds: a safety net that ends it should the harness be killed.
const LT_SEED_SAFETY_TIMEOUT_SECS: u64 = 3600;
/// Address every seeder listens on.
const SEEDER_IP: Ipv4Addr = Ipv4Addr::LOCALHOST;
/// Bytes per MB and per GB in the output (decimal, as throughput is usually quoted).
const MB: f64 = 1e6;
const GB: f64 = 1e9;

const USAGE: &str = "\
usage: seed_vs_libtorrent [OPTIONS]

Measures aria2c downloading one file on loopback from `seednode seed` and from a libtorrent
seeder (python3-libtorrent) in the same run, and prints Markdown tables on stdout.

options:
  --size BYTES       size of the generated random file (suffixes KiB, MiB, GiB) [default: 1GiB]
  --runs N           downloads, alternating seednode, libtorrent, seednode, ... [default: 3]
  --file PATH        use this existing file instead of generating one
  --seednode PATH    the seednode binary [default: target/release/seednode of the workspace,
                     or next to this executable]
  --lt-seed PATH     lt_seed.py [default: engine/tests/support/lt_seed.py of the workspace]
  --python PATH      Python with the libtorrent module [default: /usr/bin/python3]
  --timeout SECS     bound on one download [default: 300]
  --lt-shared-port   let lt_seed.py serve the tracker on its peer port (it then relays every
                     peer byte through Python, and that CPU counts as libtorrent's)
  --log-dir DIR      keep the seeders' and aria2c's logs in DIR [default: a temp dir, removed]
  -h, --help         this text";

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    cli_main("seed_vs_libtorrent", USAGE, Options::parse(&args), |opts| {
        print!("{}", bench(&opts, &args)?);
        Ok(())
    })
}

/// Command-line options, parsed by hand to keep the harness free of dependencies.
struct Options {
    size: u64,
    size_given: bool,
    runs: usize,
    file: Option<PathBuf>,
    seednode: PathBuf,
    lt_seed: PathBuf,
    python: PathBuf,
    timeout: Duration,
    lt_shared_port: bool,
    log_dir: Option<PathBuf>,
}

impl Options {
    /// Parses `args` (without the program name); `Ok(None)` means help was asked for.
    fn parse(args: &[OsString]) -> Result<Option<Self>, String> {
        let root = workspace_root();
        let mut opts = Self {
            size: DEFAULT_SIZE,
            size_given: false,
            runs: DEFAULT_RUNS,
            file: None,
            seednode: PathBuf::new(),
            lt_seed: root.join("engine/tests/support/lt_seed.py"),
            python: PathBuf::from("/usr/bin/python3"),
            timeout: DEFAULT_DOWNLOAD_TIMEOUT,
            lt_shared_port: false,
            log_dir: None,
        };
        let mut seednode = None;
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let arg = arg
                .to_str()
                .ok_or_else(|| format!("argument {arg:?} is not UTF-8"))?;
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f, Some(OsString::from(v))),
                _ => (arg, None),
            };
            let mut value = |name: &str| -> Result<OsString, String> {
                inline
                    .clone()
                    .or_else(|| it.next().cloned())
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match flag {
                "-h" | "--help" => return Ok(None),
                "--size" => {
                    opts.size = parse_size(&utf8(value(flag)?)?)?;
                    opts.size_given = true;
                }
                "--runs" => {
                    let runs = utf8(value(flag)?)?;
                    opts.runs = runs
                        .parse()
                        .map_err(|_| format!("--runs: not a number: {runs}"))?;
                    if opts.runs == 0 || opts.runs > MAX_RUNS {
                        return Err(format!("--runs must be 1 to {MAX_RUNS}"));
                    }
                }
                "--file" => opts.file = Some(value(flag)?.into()),
                "--seednode" => seednode = Some(PathBuf::from(value(flag)?)),
                "--lt-seed" => opts.lt_seed = value(flag)?.into(),
                "--python" => opts.python = value(flag)?.into(),
                "--timeout" => {
                    let secs = utf8(value(flag)?)?;
                    let secs: u64 = secs
                        .parse()
                        .map_err(|_| format!("--timeout: not a number of seconds: {secs}"))?;
                    opts.timeout = Duration::from_secs(secs.max(1));
                }
                "--lt-shared-port" => opts.lt_shared_port = true,
                "--log-dir" => opts.log_dir = Some(value(flag)?.into()),
                other => return Err(format!("unknown argument {other}")),
            }
        }
        if opts.file.is_some() && opts.size_given {
            return Err("--size and --file exclude each other (the file's length is used)".into());
        }
        opts.seednode = match seednode {
            Some(p) => p,
            None => default_seednode(&root)?,
        };
        Ok(Some(opts))
    }
}

fn utf8(s: OsString) -> Result<String, String> {
    s.into_string()
        .map_err(|s| format!("argument {s:?} is not UTF-8"))
}

/// Parses a byte count: a plain number or one ending in KiB, MiB, GiB (or Ki, Mi, Gi, K, M, G,
/// all binary).
fn parse_size(text: &str) -> Result<u64, String> {
    seednode_benches::parse_size(text).map_err(|e| match e {
        SizeError::NotANumber { .. } => format!("--size: not a byte count: {text}"),
        SizeError::UnknownUnit => format!("--size: unknown unit in {text}"),
        SizeError::TooLarge => format!("--size: too large: {text}"),
        SizeError::Zero => "--size must be at least 1 byte".into(),
    })
}

/// `target/release/seednode` of the workspace, else `seednode` next to this executable.
fn default_seednode(root: &Path) -> Result<PathBuf, String> {
    let in_workspace = root.join("target/release/seednode");
    if in_workspace.is_file() {
        return Ok(in_workspace);
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("seednode")));
    match beside {
        Some(p) if p.is_file() => Ok(p),
        _ => Err(format!(
            "no seednode binary at {} or next to this executable; build it with \
             `cargo build --release -p seednode` or pass --seednode",
            in_workspace.display()
        )),
    }
}

/// Which program seeds in a run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SeederKind {
    Seednode,
    Libtorrent,
}

impl SeederKind {
    fn name(self) -> &'static str {
        match self {
            Self::Seednode => "seednode",
            Self::Libtorrent => "libtorrent",
        }
    }
}

/// What one download measured.
struct RunResult {
    run: usize,
    kind: SeederKind,
    client: Ipv4Addr,
    wall_secs: f64,
    /// When aria2c first wrote data, seconds after it started: start-up, announce, handshake.
    first_write_secs: Option<f64>,
    /// Time for the allocated size of aria2c's file to go from 10 % to 90 % of the file.
    steady_secs: Option<f64>,
    seeder_cpu_secs: f64,
    seeder_peak_rss_bytes: u64,
    leecher_cpu_secs: f64,
    /// CPU time of everything else on the machine during the download (other users' builds):
    /// the noise indicator of the run.
    other_cpu_secs: f64,
    /// How the seeder ended after SIGTERM, when that was not a clean exit.
    stop_note: Option<String>,
}

/// Runs the whole benchmark and returns the Markdown report.
fn bench(opts: &Options, args: &[OsString]) -> Result<String, String> {
    let ticks_per_sec = clock_ticks_per_sec();
    let tmp = tempfile::Builder::new()
        .prefix("seed_vs_libtorrent.")
        .tempdir()
        .map_err(|e| format!("creating a temp dir: {e}"))?;
    let log_dir = match &opts.log_dir {
        Some(d) => {
            fs::create_dir_all(d).map_err(|e| format!("creating {}: {e}", d.display()))?;
            d.clone()
        }
        None => tmp.path().to_path_buf(),
    };

    let data = match &opts.file {
        Some(f) => f.clone(),
        None => {
            let path = tmp.path().join(format!("payload-{}.bin", opts.size));
            progress(format_args!(
                "writing {} random bytes to {}",
                opts.size,
                path.display()
            ));
            write_random_file(&path, opts.size)?;
            path
        }
    };
    let size = fs::metadata(&data)
        .map_err(|e| format!("{}: {e}", data.display()))?
        .len();
    if size == 0 || !data.is_file() {
        return Err(format!("{} is not a non-empty file", data.display()));
    }
    let name = data
        .file_name()
        .ok_or_else(|| format!("{} has no file name", data.display()))?
        .to_owned();

    let torrent = tmp.path().join("payload.torrent");
    progress(format_args!("hashing with seednode create"));
    let started = Instant::now();
    let out = Command::new(&opts.seednode)
        .arg("create")
        .arg(&data)
        .arg("-o")
        .arg(&torrent)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {}: {e}", opts.seednode.display()))?;
    if !out.status.success() {
        return Err(format!(
            "seednode create failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let create_secs = started.elapsed().as_secs_f64();
    let piece_length = torrent_piece_length(&torrent);

    let load_before = load_average();
    let mut results = Vec::with_capacity(opts.runs);
    for run in 0..opts.runs {
        let kind = if run % 2 == 0 {
            SeederKind::Seednode
        } else {
            SeederKind::Libtorrent
        };
        let host = u8::try_from(run)
            .ok()
            .and_then(|r| r.checked_add(FIRST_CLIENT_HOST))
            .ok_or("too many runs for one 127.0.0.x each")?;
        let client = Ipv4Addr::new(127, 0, 0, host);
        warm_page_cache(&data)?;
        let ctx = RunContext {
            opts,
            data: &data,
            name: name.as_os_str(),
            size,
            torrent: &torrent,
            log_dir: &log_dir,
            ticks_per_sec,
        };
        let r = run_once(&ctx, run + 1, kind, client)?;
        progress(format_args!(
            "run {}/{} {}: {:.2} s, {:.0} MB/s, seeder {:.2} CPU-s, peak RSS {:.0} MiB, aria2c {:.2} CPU-s",
            run + 1,
            opts.runs,
            kind.name(),
            r.wall_secs,
            size as f64 / MB / r.wall_secs,
            r.seeder_cpu_secs,
            r.seeder_peak_rss_bytes as f64 / f64::from(1 << 20),
            r.leecher_cpu_secs,
        ));
        results.push(r);
    }

    let env = Environment::probe(opts, load_before);
    Ok(report(
        opts,
        args,
        &env,
        size,
        piece_length,
        create_secs,
        &results,
    ))
}

/// Everything one run needs besides its number, seeder and client address.
struct RunContext<'a> {
    opts: &'a Options,
    data: &'a Path,
    name: &'a OsStr,
    size: u64,
    torrent: &'a Path,
    log_dir: &'a Path,
    ticks_per_sec: f64,
}

/// One download: start the seeder, let aria2c fetch the file, measure, check, clean up.
fn run_once(
    ctx: &RunContext<'_>,
    run: usize,
    kind: SeederKind,
    client: Ipv4Addr,
) -> Result<RunResult, String> {
    let opts = ctx.opts;
    let port = free_tcp_port(SEEDER_IP)?;
    let listen = SocketAddrV4::new(SEEDER_IP, port);
    let seeder_log = ctx.log_dir.join(format!("run{run}-{}.log", kind.name()));
    progress(format_args!(
        "run {run}/{} {}: starting on {listen}",
        opts.runs,
        kind.name()
    ));

    let mut cmd = match kind {
        SeederKind::Seednode => {
            let mut c = Command::new(&opts.seednode);
            c.arg("seed")
                .arg(ctx.data)
                .arg("--torrent")
                .arg(ctx.torrent)
                .arg("--listen")
                .arg(listen.to_string());
            c
        }
        SeederKind::Libtorrent => {
            let mut c = Command::new(&opts.python);
            c.arg(&opts.lt_seed)
                .arg(ctx.data)
                .arg("--torrent")
                .arg(ctx.torrent)
                .arg("--listen")
                .arg(listen.to_string())
                .arg("--timeout")
                .arg(LT_SEED_SAFETY_TIMEOUT_SECS.to_string());
            if opts.lt_shared_port {
                c.arg("--shared-port");
            }
            c
        }
    };
    let mut seeder = Guard::spawn(
        kind.name(),
        &mut cmd,
        &seeder_log,
        Stdout::Lines,
        DIAGNOSTICS,
    )?;
    seeder.wait_for_line("listening:", STARTUP_TIMEOUT)?;
    seeder.close_lines();

    // seednode and lt_seed.py --shared-port answer announces on the peer port; a bare libtorrent
    // gets a tracker thread of ours that names it.
    let tracker = match kind {
        SeederKind::Libtorrent if !opts.lt_shared_port => Some(
            MiniTracker::start(SEEDER_IP, listen)
                .map_err(|e| format!("starting the tracker thread: {e}"))?,
        ),
        _ => None,
    };
    let announce = match &tracker {
        Some(t) => format!("http://{}/announce", t.addr()),
        None => format!("http://{listen}/announce"),
    };

    let dl_dir = ctx.log_dir.join(format!("run{run}-download"));
    if dl_dir.exists() {
        fs::remove_dir_all(&dl_dir).map_err(|e| format!("{}: {e}", dl_dir.display()))?;
    }
    fs::create_dir_all(&dl_dir).map_err(|e| format!("{}: {e}", dl_dir.display()))?;
    let dl_dir = RemoveOnDrop::new(dl_dir, "seed_vs_libtorrent");
    let aria_log = ctx.log_dir.join(format!("run{run}-aria2c.log"));
    let mut aria = Command::new("aria2c");
    aria.args(ARIA2C_FLAGS)
        .arg(format!("--bt-tracker={announce}"))
        .arg(format!("--interface={client}"))
        .arg(format!("--listen-port={}", free_tcp_port(client)?))
        .arg("--dir")
        .arg(dl_dir.path())
        .arg(ctx.torrent);

    let seeder_pid = seeder.pid();
    let seeder_ticks_before = tree_cpu_ticks(seeder_pid)?;
    let children_ticks_before = reaped_children_ticks()?;
    let machine_ticks_before = machine_busy_ticks()?;
    let started = Instant::now();
    let mut leecher = Guard::spawn("aria2c", &mut aria, &aria_log, Stdout::Log, DIAGNOSTICS)?;
    let mut writes = WriteWatch::new(dl_dir.path().join(ctx.name), ctx.size);
    let status = loop {
        writes.poll(started);
        if let Some(status) = leecher.try_wait()? {
            break status;
        }
        if started.elapsed() > opts.timeout {
            return Err(format!(
                "run {run}: aria2c did not finish within {} s\n{}\n{}",
                opts.timeout.as_secs(),
                leecher.log_tail(),
                seeder.log_tail()
            ));
        }
        if let Some(status) = seeder.try_wait()? {
            return Err(format!(
                "run {run}: the {} seeder exited ({status}) during the download\n{}\n{}",
                kind.name(),
                seeder.log_tail(),
                leecher.log_tail()
            ));
        }
        thread::sleep(POLL_INTERVAL);
    };
    let wall = started.elapsed();
    writes.poll(started);
    let seeder_ticks_after = tree_cpu_ticks(seeder_pid)?;
    let children_ticks_after = reaped_children_ticks()?;
    let machine_ticks_after = machine_busy_ticks()?;
    let peak_rss = memory_bytes(seeder_pid, "VmHWM")?;
    if !status.success() {
        return Err(format!(
            "run {run}: aria2c failed ({status})\n{}\n{}",
            leecher.log_tail(),
            seeder.log_tail()
        ));
    }
    drop(tracker);
    let stop_note = match seeder.stop(STOP_TIMEOUT)? {
        s if s.success() => None,
        s => Some(format!(
            "{} seeder ended with {s} after SIGTERM",
            kind.name()
        )),
    };

    same_contents(ctx.data, &dl_dir.path().join(ctx.name), ctx.size)
        .map_err(|e| format!("run {run}: {e}"))?;
    drop(dl_dir);

    let ticks = |a: u64, b: u64| b.saturating_sub(a) as f64 / ctx.ticks_per_sec;
    let seeder_cpu_secs = ticks(seeder_ticks_before, seeder_ticks_after);
    let leecher_cpu_secs = ticks(children_ticks_before, children_ticks_after);
    let machine_cpu_secs = ticks(machine_ticks_before, machine_ticks_after);
    Ok(RunResult {
        run,
        kind,
        first_write_secs: writes.first.map(|t| t.as_secs_f64()),
        steady_secs: writes.steady_secs(),
        client,
        wall_secs: wall.as_secs_f64(),
        seeder_cpu_secs,
        seeder_peak_rss_bytes: peak_rss,
        leecher_cpu_secs,
        other_cpu_secs: (machine_cpu_secs - seeder_cpu_secs - leecher_cpu_secs).max(0.0),
        stop_note,
    })
}

/// Watches the file aria2c downloads into: when it first gets data on disk, and when its
/// allocated size passes 10 % and 90 % of the file.
///
/// aria2c creates the file empty (`--file-allocation=none`) and writes pieces as its disk cache
/// (16 MiB by default) overflows, so its allocated size trails the bytes received by about the
/// cache size. The first write marks the end of aria2c's start-up (tracker announce, handshakes,
/// first pieces); the 10 %-90 % stretch is the steady transfer rate, free of aria2c's start-up and
/// of its shut-down (it acts on whole-second ticks and flushes its cache at the end). Polled every
/// [`POLL_INTERVAL`], one `stat` each time.
struct WriteWatch {
    path: PathBuf,
    size: u64,
    first: Option<Duration>,
    at_10_percent: Option<Duration>,
    at_90_percent: Option<Duration>,
}

impl WriteWatch {
    fn new(path: PathBuf, size: u64) -> Self {
        Self {
            path,
            size,
            first: None,
            at_10_percent: None,
            at_90_percent: None,
        }
    }

    fn poll(&mut self, since: Instant) {
        if self.at_90_percent.is_some() {
            return;
        }
        let Ok(meta) = fs::metadata(&self.path) else {
            return;
        };
        let allocated = meta.blocks().saturating_mul(512);
        let at = since.elapsed();
        if allocated > 0 {
            self.first.get_or_insert(at);
        }
        if allocated.saturating_mul(10) >= self.size {
            self.at_10_percent.get_or_insert(at);
        }
        if allocated.saturating_mul(10) >= self.size.saturating_mul(9) {
            self.at_90_percent = Some(at);
        }
    }

    /// Seconds from 10 % to 90 % of the file on disk, if both were seen and differ, and the
    /// file is at least [`MIN_STEADY_SIZE`].
    fn steady_secs(&self) -> Option<f64> {
        if self.size < MIN_STEADY_SIZE {
            return None;
        }
        let (a, b) = (self.at_10_percent?, self.at_90_percent?);
        (b > a).then(|| (b - a).as_secs_f64())
    }
}

/// Checks that `got` is `size` bytes long and equal to `want`, byte for byte.
fn same_contents(want: &Path, got: &Path, size: u64) -> Result<(), String> {
    let len = fs::metadata(got)
        .map_err(|e| format!("downloaded file {}: {e}", got.display()))?
        .len();
    if len != size {
        return Err(format!(
            "downloaded file {} is {len} bytes, expected {size}",
            got.display()
        ));
    }
    let open = |p: &Path| File::open(p).map_err(|e| format!("{}: {e}", p.display()));
    let (mut a, mut b) = (open(want)?, open(got)?);
    let (mut ba, mut bb) = (vec![0u8; CHUNK_LEN], vec![0u8; CHUNK_LEN]);
    let mut offset = 0u64;
    while offset < size {
        let n = usize::try_from(size - offset).map_or(CHUNK_LEN, |l| l.min(CHUNK_LEN));
        a.read_exact(&mut ba[..n])
            .map_err(|e| format!("reading {}: {e}", want.display()))?;
        b.read_exact(&mut bb[..n])
            .map_err(|e| format!("reading {}: {e}", got.display()))?;
        if ba[..n] != bb[..n] {
            let at = ba[..n].iter().zip(&bb[..n]).position(|(x, y)| x != y);
            return Err(format!(
                "downloaded file differs from the source at byte {}",
                offset + at.unwrap_or(0) as u64
            ));
        }
        offset += n as u64;
    }
    Ok(())
}

/// First line of a command's stdout, if it ran and succeeded.
fn command_line(program: impl AsRef<OsStr>, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().next().map(|l| l.trim().to_string())
}

fn progress(msg: std::fmt::Arguments<'_>) {
    eprintln!("seed_vs_libtorrent: {msg}");
}

/// The machine and program versions, for the report.
struct Environment {
    date: String,
    cores: usize,
    kernel: String,
    cpu: String,
    seednode: String,
    /// The seednode binary's path and modification time, and the workspace commit: seednode is
    /// rebuilt often, and its version string does not say which build ran.
    seednode_build: String,
    libtorrent: String,
    aria2c: String,
    /// 1-minute load average before the first run and after the last.
    load_before: String,
    load_after: String,
}

impl Environment {
    fn probe(opts: &Options, load_before: String) -> Self {
        let unknown = || "unknown".to_string();
        let cpu = cpu_model().unwrap_or_else(unknown);
        Self {
            date: utc_date(SystemTime::now()),
            cores: thread::available_parallelism().map_or(0, |n| n.get()),
            kernel: kernel_release().unwrap_or_else(unknown),
            cpu,
            seednode: command_line(&opts.seednode, &["--version"]).unwrap_or_else(unknown),
            seednode_build: seednode_build(&opts.seednode),
            libtorrent: command_line(
                &opts.python,
                &["-c", "import libtorrent; print(libtorrent.__version__)"],
            )
            .unwrap_or_else(unknown),
            aria2c: command_line("aria2c", &["--version"]).unwrap_or_else(unknown),
            load_before,
            load_after: load_average(),
        }
    }
}

/// `PATH (built HH:MM:SS UTC), workspace at COMMIT[ + uncommitted changes]`.
fn seednode_build(binary: &Path) -> String {
    let built = fs::metadata(binary).and_then(|m| m.modified()).map_or_else(
        |_| "unknown".to_string(),
        |t| {
            let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            format!(
                "{} {:02}:{:02}:{:02} UTC",
                utc_date(t),
                secs / 3600 % 24,
                secs / 60 % 60,
                secs % 60
            )
        },
    );
    let root = workspace_root();
    let root = root.to_string_lossy();
    let commit = command_line("git", &["-C", &root, "rev-parse", "--short", "HEAD"])
        .unwrap_or_else(|| "unknown".to_string());
    let dirty = Command::new("git")
        .args(["-C", &root, "status", "--porcelain", "--untracked-files=no"])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| !o.stdout.is_empty());
    format!(
        "`{}` built {built}, workspace at {commit}{}",
        binary.display(),
        if dirty { " + uncommitted changes" } else { "" }
    )
}

/// The 1-minute load average, or `unknown`.
fn load_average() -> String {
    seednode_benches::load_average().unwrap_or_else(|| "unknown".to_string())
}

/// Quotes `s` for a POSIX shell when it holds anything but plain characters.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Medians over the runs of one seeder.
struct Summary {
    runs: usize,
    wall_secs: f64,
    first_write_secs: Option<f64>,
    steady_secs: Option<f64>,
    seeder_cpu_secs: f64,
    peak_rss_bytes: f64,
    leecher_cpu_secs: f64,
    other_cpu_secs: f64,
}

fn summarize(results: &[RunResult], kind: SeederKind) -> Option<Summary> {
    let mine = || results.iter().filter(|r| r.kind == kind);
    let of = |f: fn(&RunResult) -> f64| median(mine().map(f).collect());
    let of_some = |f: fn(&RunResult) -> Option<f64>| median(mine().filter_map(f).collect());
    Some(Summary {
        runs: mine().count(),
        wall_secs: of(|r| r.wall_secs)?,
        first_write_secs: of_some(|r| r.first_write_secs),
        steady_secs: of_some(|r| r.steady_secs),
        seeder_cpu_secs: of(|r| r.seeder_cpu_secs)?,
        peak_rss_bytes: of(|r| r.seeder_peak_rss_bytes as f64)?,
        leecher_cpu_secs: of(|r| r.leecher_cpu_secs)?,
        other_cpu_secs: of(|r| r.other_cpu_secs)?,
    })
}

/// Formats seconds with two decimals, or `n/a`.
fn secs(t: Option<f64>) -> String {
    t.map_or_else(|| "n/a".to_string(), |t| format!("{t:.2}"))
}

/// Formats `bytes` over `t` seconds as MB/s, or `n/a`.
fn rate(bytes: u64, t: Option<f64>) -> String {
    match t {
        Some(t) if t > 0.0 => {
            let r = bytes as f64 / MB / t;
            if r >= 10.0 {
                format!("{r:.0}")
            } else {
                format!("{r:.2}")
            }
        }
        _ => "n/a".to_string(),
    }
}

/// The Markdown report: how it was made, one row per run, medians per seeder, ratios.
fn report(
    opts: &Options,
    args: &[OsString],
    env: &Environment,
    size: u64,
    piece_length: Option<u64>,
    create_secs: f64,
    results: &[RunResult],
) -> String {
    let quoted: Vec<String> = args
        .iter()
        .map(|a| shell_quote(&a.to_string_lossy()))
        .collect();
    let mut cmd =
        String::from("cargo run --release -p seednode-benches --bin seed_vs_libtorrent --");
    for q in &quoted {
        cmd.push(' ');
        cmd.push_str(q);
    }
    let mib = f64::from(1 << 20);
    let gb = size as f64 / GB;
    let mut out = String::new();
    let _ = writeln!(out, "Command: `{cmd}`\n");
    let _ = writeln!(
        out,
        "- Date: {} (UTC); machine: {} cores (`nproc`), kernel {}, {}",
        env.date, env.cores, env.kernel, env.cpu
    );
    let _ = writeln!(
        out,
        "- Seeders: {} ({}) and libtorrent {} ({}, {}); leecher: {}",
        env.seednode,
        env.seednode_build,
        env.libtorrent,
        opts.lt_seed
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        if opts.lt_shared_port {
            "`--shared-port`: peer bytes relayed through Python"
        } else {
            "its own listener, found through the harness's tracker thread"
        },
        env.aria2c
    );
    let _ = writeln!(
        out,
        "- File: {size} bytes ({:.2} GiB), piece length {}; `seednode create` hashed it in {create_secs:.2} s",
        size as f64 / (mib * 1024.0),
        piece_length.map_or_else(|| "unknown".to_string(), |p| format!("{} KiB", p / 1024)),
    );
    let _ = writeln!(
        out,
        "- MB = 10^6 bytes, GB = 10^9 bytes; CPU-s = utime + stime of the seeder's process tree \
         during the download; peak RSS = the seeder's `VmHWM` (includes its start-up check); \
         other CPU-s = busy CPU time of the rest of the machine during the download (noise); \
         first write = when aria2c's file first got data on disk (seconds after aria2c started); \
         10-90 % MB/s = 80 % of the file over the time its allocated size took to go from 10 % \
         to 90 % (the steady transfer rate, without aria2c's start-up and shut-down)"
    );
    let _ = writeln!(
        out,
        "- Load average (1 min) before the first run: {}, after the last: {}\n",
        env.load_before, env.load_after
    );

    let _ = writeln!(
        out,
        "| run | seeder | aria2c from | wall s | MB/s | first write s | 10-90 % MB/s \
         | seeder CPU-s | CPU-s per GB | peak RSS MiB | aria2c CPU-s | other CPU-s |"
    );
    let _ = writeln!(
        out,
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in results {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.2} | {} | {} | {} | {:.2} | {:.2} | {:.0} | {:.2} | {:.2} |",
            r.run,
            r.kind.name(),
            r.client,
            r.wall_secs,
            rate(size, Some(r.wall_secs)),
            secs(r.first_write_secs),
            rate(size * 8 / 10, r.steady_secs),
            r.seeder_cpu_secs,
            r.seeder_cpu_secs / gb,
            r.seeder_peak_rss_bytes as f64 / mib,
            r.leecher_cpu_secs,
            r.other_cpu_secs,
        );
    }
    for note in results.iter().filter_map(|r| r.stop_note.as_ref()) {
        let _ = writeln!(out, "\nNote: {note}.");
    }

    let sn = summarize(results, SeederKind::Seednode);
    let lt = summarize(results, SeederKind::Libtorrent);
    let _ = writeln!(
        out,
        "\nMedians per seeder:\n\n\
         | seeder | runs | wall s | MB/s | first write s | 10-90 % MB/s \
         | seeder CPU-s | CPU-s per GB | peak RSS MiB | aria2c CPU-s | other CPU-s |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (kind, s) in [(SeederKind::Seednode, &sn), (SeederKind::Libtorrent, &lt)] {
        if let Some(s) = s {
            let _ = writeln!(
                out,
                "| {} | {} | {:.2} | {} | {} | {} | {:.2} | {:.2} | {:.0} | {:.2} | {:.2} |",
                kind.name(),
                s.runs,
                s.wall_secs,
                rate(size, Some(s.wall_secs)),
                secs(s.first_write_secs),
                rate(size * 8 / 10, s.steady_secs),
                s.seeder_cpu_secs,
                s.seeder_cpu_secs / gb,
                s.peak_rss_bytes / mib,
                s.leecher_cpu_secs,
                s.other_cpu_secs,
            );
        }
    }
    match (&sn, &lt) {
        (Some(sn), Some(lt)) => {
            let _ = writeln!(
                out,
                "\nRatios seednode / libtorrent (medians): wall time {}, 10-90 % time {}, \
                 seeder CPU-s {}, peak RSS {}.",
                ratio(Some(sn.wall_secs), Some(lt.wall_secs)),
                ratio(sn.steady_secs, lt.steady_secs),
                ratio(Some(sn.seeder_cpu_secs), Some(lt.seeder_cpu_secs)),
                ratio(Some(sn.peak_rss_bytes), Some(lt.peak_rss_bytes)),
            );
        }
        _ => {
            let _ = writeln!(
                out,
                "\nNo ratios: both seeders need at least one run (use --runs 2 or more)."
            );
        }
    }
    out
}
