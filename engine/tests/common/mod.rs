//! Harness shared by the integration tests that drive the real `seednode` binary against real
//! BitTorrent clients (aria2c, python3-libtorrent, mktorrent) on loopback.
//!
//! Every process a test starts is owned by a [`ChildGuard`], which kills it on drop, so a failing
//! (panicking) test leaves nothing running. Every wait is bounded by the test's [`Deadline`].
//! Missing client programs are a test failure with an install hint, never a silent skip: CI
//! (`scripts/test`) installs them.
//!
//! `SEEDNODE_INTEROP_SEEDER`, if set, replaces the seednode binary with another program taking the
//! same arguments (`engine/tests/support/lt_seednode` wraps libtorrent); it exists to check this
//! harness against a known-good seeder.

// Each test binary that declares `mod common;` uses only part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Wall-clock budget of one interop test, from start to the seeder's exit.
pub(crate) const TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// How long `seednode seed` may take to hash its data and print its four stdout lines.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The stdout lines `seednode seed` prints before seeding, as `<key>: <value>`.
const STDOUT_KEYS: [&str; 4] = ["info-hash", "magnet", "torrent", "listening"];

/// How long the seeder may take between SIGTERM and its exit.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(15);

/// How often a waiting loop polls a child's exit status.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Lines of a log shown in a failure message.
const LOG_TAIL_LINES: usize = 60;

/// Debian's own Python, the only one that can import python3-libtorrent (INTEROP.md).
pub(crate) const PYTHON: &str = "/usr/bin/python3";

/// The address every seeder under test listens on; clients use other 127.0.0.x addresses.
pub(crate) const SEEDER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

/// The instant a test must be finished by.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadline(Instant);

impl Deadline {
    pub(crate) fn after(budget: Duration) -> Self {
        Self(Instant::now() + budget)
    }

    /// Time left; panics naming `what` if none is left.
    pub(crate) fn remaining(self, what: &str) -> Duration {
        let left = self.0.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "test deadline passed before {what} ({TEST_TIMEOUT:?} budget per test)"
        );
        left
    }
}

/// A child process that is killed and reaped when dropped, even during a panic.
pub(crate) struct ChildGuard {
    name: String,
    child: Child,
}

impl ChildGuard {
    pub(crate) fn spawn(name: &str, cmd: &mut Command) -> Self {
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Self {
            name: name.to_owned(),
            child,
        }
    }

    /// Waits up to `timeout` for the child to exit; `None` if it is still running.
    pub(crate) fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() >= end => return None,
                Ok(None) => thread::sleep(POLL_INTERVAL),
                Err(e) => panic!("waiting for {}: {e}", self.name),
            }
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A port on `ip` that was free a moment ago (bind to port 0, read it, release it).
pub(crate) fn free_port(ip: Ipv4Addr) -> u16 {
    let listener = TcpListener::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}:0: {e}"));
    listener
        .local_addr()
        .expect("local_addr of a bound listener")
        .port()
}

/// The last [`LOG_TAIL_LINES`] lines of a log file, for failure messages.
pub(crate) fn log_tail(path: &Path) -> String {
    let Ok(text) = fs::read(path) else {
        return format!("(no log at {})", path.display());
    };
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(LOG_TAIL_LINES);
    format!(
        "--- {} (last {} lines) ---\n{}",
        path.display(),
        lines.len() - start,
        lines[start..].join("\n")
    )
}

fn require_program(program: &str, args: &[&str], package: &str) {
    match Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
    {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "`{program}` is not installed; this test needs it. Install the Debian package \
             `{package}` (apt-get install -y {package}), or run scripts/test, which installs \
             everything the tests need."
        ),
        Err(e) => panic!("cannot run `{program}`: {e}"),
    }
}

pub(crate) fn require_aria2c() {
    require_program("aria2c", &["--version"], "aria2");
}

pub(crate) fn require_chromium() {
    require_program("chromium", &["--version"], "chromium");
}

pub(crate) fn require_mktorrent() {
    require_program("mktorrent", &["-h"], "mktorrent");
}

pub(crate) fn require_libtorrent() {
    let out = Command::new(PYTHON)
        .args(["-c", "import libtorrent"])
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "{PYTHON} cannot import libtorrent ({}); install the Debian package \
             `python3-libtorrent`, or run scripts/test, which installs everything the tests need.",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!(
            "cannot run {PYTHON} ({e}); install python3 and python3-libtorrent, or run scripts/test"
        ),
    }
}

/// The program under test: the `seednode` binary Cargo built for this test, unless overridden.
pub(crate) fn seednode_bin() -> PathBuf {
    match std::env::var_os("SEEDNODE_INTEROP_SEEDER") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_BIN_EXE_seednode")),
    }
}

/// `engine/tests/support/<name>`.
pub(crate) fn support_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support")
        .join(name)
}

/// A running `seednode seed`, with what it printed on stdout.
pub(crate) struct Seeder {
    child: ChildGuard,
    stderr_log: PathBuf,
    /// `info-hash:` line: 40 lowercase or uppercase hex digits.
    pub(crate) info_hash: String,
    /// `magnet:` line.
    pub(crate) magnet: String,
    /// `torrent:` line.
    pub(crate) torrent: PathBuf,
    /// `listening:` line.
    pub(crate) listen: SocketAddr,
}

impl Seeder {
    /// Runs `seednode seed PATH --listen 127.0.0.1:<free port> EXTRA...`; see [`Self::start_on`].
    pub(crate) fn start(path: &Path, extra: &[&OsStr], log_dir: &Path, deadline: Deadline) -> Self {
        Self::start_on(free_port(SEEDER_IP), path, extra, log_dir, deadline)
    }

    /// Runs `seednode seed PATH --listen 127.0.0.1:PORT EXTRA...` and waits until it has printed
    /// its `info-hash:`, `magnet:`, `torrent:` and `listening:` lines. Stderr goes to
    /// `<log_dir>/seednode.stderr`.
    pub(crate) fn start_on(
        port: u16,
        path: &Path,
        extra: &[&OsStr],
        log_dir: &Path,
        deadline: Deadline,
    ) -> Self {
        Self::start_at(
            SocketAddr::from((SEEDER_IP, port)),
            path,
            extra,
            log_dir,
            deadline,
        )
    }

    /// Runs `seednode seed PATH --listen LISTEN EXTRA...`; see [`Self::start_on`].
    pub(crate) fn start_at(
        listen: SocketAddr,
        path: &Path,
        extra: &[&OsStr],
        log_dir: &Path,
        deadline: Deadline,
    ) -> Self {
        let listen_arg = listen.to_string();
        let stderr_log = log_dir.join("seednode.stderr");
        let stderr = File::create(&stderr_log).expect("create seednode stderr log");
        let bin = seednode_bin();
        let mut cmd = Command::new(&bin);
        cmd.arg("seed")
            .arg(path)
            .arg("--listen")
            .arg(&listen_arg)
            .args(extra);
        // Keep the DHT on loopback: no public bootstrap routers, state inside the test's dir.
        if !extra
            .iter()
            .any(|a| *a == "--dht-bootstrap" || *a == "--no-dht")
        {
            cmd.arg("--dht-bootstrap").arg("none");
        }
        if !extra.iter().any(|a| *a == "--dht-state") {
            cmd.arg("--dht-state").arg(log_dir.join("dht_nodes"));
        }
        cmd.stdout(Stdio::piped()).stderr(stderr);
        // Never ask the sandbox's own gateway for port mappings (tests/nat.rs runs its own).
        cmd.env("SEEDNODE_NO_NAT", "1");
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        let mut child = ChildGuard::spawn("seednode seed", &mut cmd);
        let stdout = child.child.stdout.take().expect("piped stdout");

        // A reader thread forwards stdout lines, and keeps draining stdout after startup so the
        // seeder never blocks on a full pipe.
        let (tx, rx) = mpsc::channel::<String>();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });

        let mut fields: BTreeMap<&'static str, String> = BTreeMap::new();
        let mut seen = Vec::new();
        let startup_end =
            Instant::now() + deadline.remaining("seednode startup").min(STARTUP_TIMEOUT);
        while fields.len() < STDOUT_KEYS.len() {
            let left = startup_end.saturating_duration_since(Instant::now());
            let fail = |why: String, seen: &[String]| -> ! {
                panic!(
                    "{why}\ncommand: {cmd:?}\nstdout so far:\n{}\n{}",
                    seen.join("\n"),
                    log_tail(&stderr_log)
                )
            };
            match rx.recv_timeout(left) {
                Ok(line) => {
                    for key in STDOUT_KEYS {
                        if let Some(value) =
                            line.strip_prefix(key).and_then(|r| r.strip_prefix(": "))
                        {
                            fields.insert(key, value.trim().to_owned());
                        }
                    }
                    seen.push(line);
                }
                Err(RecvTimeoutError::Timeout) => fail(
                    format!(
                        "seednode did not print all of {STDOUT_KEYS:?} within {STARTUP_TIMEOUT:?}"
                    ),
                    &seen,
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    let status = child.wait_timeout(Duration::from_secs(5));
                    fail(
                        format!(
                            "seednode closed stdout before printing all of {STDOUT_KEYS:?} (exit: {status:?})"
                        ),
                        &seen,
                    );
                }
            }
        }

        let info_hash = fields.remove("info-hash").expect("checked above");
        assert!(
            info_hash.len() == 40 && info_hash.bytes().all(|b| b.is_ascii_hexdigit()),
            "`info-hash:` is not 40 hex digits: {info_hash:?}"
        );
        let magnet = fields.remove("magnet").expect("checked above");
        // A v1 or hybrid magnet starts with the v1 info-hash; a v2-only one names the SHA-256
        // info-hash, whose first 20 bytes are the `info-hash:` line (BEP 52).
        let lower = magnet.to_ascii_lowercase();
        let ih = info_hash.to_ascii_lowercase();
        assert!(
            lower.starts_with(&format!("magnet:?xt=urn:btih:{ih}"))
                || lower.starts_with(&format!("magnet:?xt=urn:btmh:1220{ih}")),
            "`magnet:` does not start with the info-hash (btih, or btmh for v2): {magnet:?}"
        );
        let torrent = PathBuf::from(fields.remove("torrent").expect("checked above"));
        let torrent = if torrent.is_relative() {
            log_dir.join(torrent)
        } else {
            torrent
        };
        let listening = fields.remove("listening").expect("checked above");
        let listen: SocketAddr = listening
            .parse()
            .unwrap_or_else(|e| panic!("`listening:` is not an IP:PORT ({e}): {listening:?}"));
        assert_eq!(
            listen.to_string(),
            listen_arg,
            "`listening:` differs from --listen"
        );
        Self {
            child,
            stderr_log,
            info_hash,
            magnet,
            torrent,
            listen,
        }
    }

    /// The seeder's process id.
    #[allow(dead_code, reason = "not every test binary reads it")]
    pub(crate) fn pid(&self) -> u32 {
        self.child.child.id()
    }

    /// The seeder's stderr so far, for failure messages.
    pub(crate) fn log(&self) -> String {
        log_tail(&self.stderr_log)
    }

    /// Sends SIGTERM and asserts the seeder exits with status 0 within [`SHUTDOWN_TIMEOUT`].
    pub(crate) fn stop(mut self) {
        if let Ok(Some(status)) = self.child.child.try_wait() {
            panic!(
                "seednode exited on its own before SIGTERM: {status}\n{}",
                self.log()
            );
        }
        let pid = self.child.child.id().to_string();
        let killed = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill -TERM");
        assert!(killed.success(), "kill -TERM {pid} failed");
        match self.child.wait_timeout(SHUTDOWN_TIMEOUT) {
            Some(status) => assert!(
                status.success(),
                "seednode exited with {status} after SIGTERM, expected 0\n{}",
                self.log()
            ),
            None => panic!(
                "seednode still running {SHUTDOWN_TIMEOUT:?} after SIGTERM\n{}",
                self.log()
            ),
        }
    }
}

/// Runs a program to completion within the deadline; panics with its log (and the seeder's, if
/// any) if it fails or overruns. Stdout and stderr go to `log`.
pub(crate) fn run_client(
    name: &str,
    cmd: &mut Command,
    log: &Path,
    seeder: Option<&Seeder>,
    deadline: Deadline,
) {
    let out = File::create(log).expect("create client log");
    let err = out.try_clone().expect("dup client log");
    cmd.stdout(out).stderr(err);
    let started = Instant::now();
    let mut child = ChildGuard::spawn(name, cmd);
    let budget = deadline.remaining(name);
    let seeder_log = || seeder.map(Seeder::log).unwrap_or_default();
    match child.wait_timeout(budget) {
        Some(status) if status.success() => {
            eprintln!(
                "{name}: finished in {:.2} s",
                started.elapsed().as_secs_f64()
            );
        }
        Some(status) => panic!(
            "{name} failed with {status} after {:.1} s\ncommand: {cmd:?}\n{}\n{}",
            started.elapsed().as_secs_f64(),
            log_tail(log),
            seeder_log()
        ),
        None => panic!(
            "{name} did not finish within the test deadline ({budget:?} left)\ncommand: {cmd:?}\n{}\n{}",
            log_tail(log),
            seeder_log()
        ),
    }
}

/// Downloads `source` (a .torrent path or a magnet URI) with aria2c into `dir`, from `client_ip`,
/// finding the seeder through the tracker named in the torrent.
pub(crate) fn aria2c_download(
    source: &OsStr,
    dir: &Path,
    client_ip: Ipv4Addr,
    seeder: &Seeder,
    deadline: Deadline,
) {
    let log = dir.with_extension("aria2c.log");
    fs::create_dir_all(dir).expect("create aria2c download dir");
    let mut cmd = Command::new("aria2c");
    cmd.args([
        "--enable-dht=false",
        "--enable-dht6=false",
        "--bt-enable-lpd=false",
        "--enable-peer-exchange=false",
        "--seed-time=0",
        "--bt-stop-timeout=60",
        "--summary-interval=0",
        "--disable-ipv6=true",
        "--file-allocation=none",
        "--bt-tracker-connect-timeout=10",
        "--bt-tracker-timeout=10",
        "--console-log-level=warn",
        "--show-console-readout=false",
        // Announces, peer connections and piece results, for failure messages.
        "--log=-",
        "--log-level=info",
    ])
    .arg(format!("--interface={client_ip}"))
    .arg(format!("--listen-port={}", free_port(client_ip)))
    .arg(format!("--dir={}", dir.display()))
    .arg(source);
    run_client("aria2c", &mut cmd, &log, Some(seeder), deadline);
}

/// Which form of the torrent `lt_download.py` is given.
pub(crate) enum LtSource<'a> {
    Torrent(&'a Path),
    Magnet(&'a str),
}

/// Downloads with python3-libtorrent (`support/lt_download.py`) into `dir`, from `client_ip`,
/// dialling the seeder directly and also using the torrent's tracker.
pub(crate) fn lt_download(
    source: LtSource<'_>,
    dir: &Path,
    client_ip: Ipv4Addr,
    seeder: &Seeder,
    deadline: Deadline,
) {
    lt_download_with(source, dir, client_ip, seeder, deadline, &[]);
}

/// [`lt_download`] with extra `lt_download.py` arguments (e.g. `--encryption rc4`).
pub(crate) fn lt_download_with(
    source: LtSource<'_>,
    dir: &Path,
    client_ip: Ipv4Addr,
    seeder: &Seeder,
    deadline: Deadline,
    extra: &[&str],
) {
    let log = dir.with_extension("lt_download.log");
    fs::create_dir_all(dir).expect("create libtorrent download dir");
    // Leave lt_download.py time to report its own timeout before run_client kills it.
    let timeout = deadline
        .remaining("lt_download.py")
        .saturating_sub(Duration::from_secs(3));
    let mut cmd = Command::new(PYTHON);
    cmd.arg(support_file("lt_download.py"));
    match source {
        LtSource::Torrent(path) => cmd.arg(path),
        LtSource::Magnet(uri) => cmd.arg("--magnet").arg(uri),
    };
    cmd.arg("--save-dir")
        .arg(dir)
        .arg("--peer")
        .arg(seeder.listen.to_string())
        .arg("--listen")
        .arg(format!("{client_ip}:{}", free_port(client_ip)))
        .arg("--timeout")
        .arg(format!("{}", timeout.as_secs().max(1)))
        .args(extra);
    run_client("lt_download.py", &mut cmd, &log, Some(seeder), deadline);
}

/// Makes a single-file or multi-file torrent with mktorrent.
pub(crate) fn mktorrent(path: &Path, out: &Path, announce: &str, piece_length_log2: u8) {
    let output = Command::new("mktorrent")
        .arg("-a")
        .arg(announce)
        .arg("-l")
        .arg(piece_length_log2.to_string())
        .arg("-o")
        .arg(out)
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("run mktorrent");
    assert!(
        output.status.success(),
        "mktorrent failed: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The v1 info-hash of a .torrent file, as libtorrent computes it (40 lowercase hex digits).
pub(crate) fn libtorrent_info_hash(torrent: &Path) -> String {
    let output = Command::new(PYTHON)
        .args([
            "-c",
            "import sys, libtorrent as lt; print(lt.torrent_info(sys.argv[1]).info_hashes().v1)",
        ])
        .arg(torrent)
        .stdin(Stdio::null())
        .output()
        .expect("run python3-libtorrent");
    assert!(
        output.status.success(),
        "libtorrent cannot load {}: {}",
        torrent.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf-8 info-hash")
        .trim()
        .to_owned()
}

/// Writes `len` bytes of reproducible pseudo-random data (xorshift64*, seeded by `seed`).
pub(crate) fn write_random_file(path: &Path, len: u64, seed: u64) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("create parent dir");
    }
    let mut out = File::create(path).expect("create data file");
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for word in buf.chunks_exact_mut(8) {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            word.copy_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        let take = usize::try_from(left.min(buf.len() as u64)).expect("at most buf.len()");
        out.write_all(&buf[..take]).expect("write data file");
        left -= take as u64;
    }
}

/// SHA-256 of a file's contents, in lowercase hex.
pub(crate) fn sha256_file(path: &Path) -> String {
    let mut file = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hasher
        .finalize()
        .iter()
        .fold(String::with_capacity(64), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

/// Every regular file under `root`, by path relative to `root`, with its SHA-256.
pub(crate) fn tree_hashes(root: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        let entries =
            fs::read_dir(dir).unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("dir entry").path();
            let kind = fs::symlink_metadata(&path).expect("metadata").file_type();
            if kind.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).expect("under root").to_path_buf();
                out.insert(rel, sha256_file(&path));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Asserts two files have the same length and SHA-256.
pub(crate) fn assert_same_file(original: &Path, downloaded: &Path) {
    let want = fs::metadata(original).expect("original metadata").len();
    let got = fs::metadata(downloaded)
        .unwrap_or_else(|e| panic!("downloaded file {} missing: {e}", downloaded.display()))
        .len();
    assert_eq!(
        got,
        want,
        "{} has {got} bytes, the original {want}",
        downloaded.display()
    );
    assert_eq!(
        sha256_file(downloaded),
        sha256_file(original),
        "{} differs from {}",
        downloaded.display(),
        original.display()
    );
}

/// Asserts two directory trees hold the same files with the same contents.
pub(crate) fn assert_same_tree(original: &Path, downloaded: &Path) {
    let want = tree_hashes(original);
    let got = tree_hashes(downloaded);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "downloaded tree {} has different files from {}",
        downloaded.display(),
        original.display()
    );
    for (path, hash) in &want {
        assert_eq!(
            &got[path],
            hash,
            "{} differs after download",
            path.display()
        );
    }
}

/// Asserts `path` is the file the seeder reported, comparing canonical paths.
pub(crate) fn assert_same_path(reported: &Path, expected: &Path) {
    let canon = |p: &Path| fs::canonicalize(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert_eq!(
        canon(reported),
        canon(expected),
        "`torrent:` names an unexpected file"
    );
}
