//! Benchmark harness helpers, shared by the binaries in `src/bin/`: the command line, child
//! processes that never outlive the harness, CPU and memory figures from `/proc`, scratch files,
//! a one-peer tracker for aria2c, and report formatting.
//!
//! Linux only (`/proc`, `kill`, `getconf`). Every wait is bounded by a timeout the caller passes.
//! Errors are `String`s for the harness's stderr, naming the file or program involved.

use std::ffi::OsString;
use std::fmt::Display;
use std::fs::{self, File};
use std::io::{self, BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------------------------
// The command line

/// Runs a harness's `main`: prints `usage` on stdout and succeeds when `parsed` is `Ok(None)`
/// (help was asked for); prints `program: error` and `usage` on stderr and exits with 2 when it
/// is `Err`; otherwise calls `run`, and exits with 1 after printing `program: error` if that fails.
pub fn cli_main<O>(
    program: &str,
    usage: &str,
    parsed: Result<Option<O>, String>,
    run: impl FnOnce(O) -> Result<(), String>,
) -> ExitCode {
    let opts = match parsed {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{usage}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{program}: {e}\n\n{usage}");
            return ExitCode::from(2);
        }
    };
    match run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{program}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Walks the command-line arguments (without the program name): flags one by one, each flag's
/// value on request.
pub struct Args<'a> {
    rest: std::slice::Iter<'a, OsString>,
}

impl<'a> Args<'a> {
    /// Starts at the first argument.
    pub fn new(args: &'a [OsString]) -> Self {
        Self { rest: args.iter() }
    }

    /// The next argument, taken as a flag; `None` after the last one.
    ///
    /// # Errors
    /// When the argument is not UTF-8.
    pub fn next_flag(&mut self) -> Result<Option<&'a str>, String> {
        let Some(arg) = self.rest.next() else {
            return Ok(None);
        };
        arg.to_str()
            .map(Some)
            .ok_or_else(|| format!("argument {arg:?} is not UTF-8"))
    }

    /// The argument after `flag`: its value.
    ///
    /// # Errors
    /// When there is none, or it is not UTF-8.
    pub fn value(&mut self, flag: &str) -> Result<String, String> {
        self.rest
            .next()
            .and_then(|v| v.to_str())
            .map(str::to_string)
            .ok_or_else(|| format!("{flag} needs a UTF-8 value"))
    }
}

/// Parses the value `v` of `flag` as a number of any type.
///
/// # Errors
/// `FLAG: not a number: V`.
pub fn parse_number<T: FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.parse().map_err(|_| format!("{flag}: not a number: {v}"))
}

/// Parses the value `v` of `flag` as a whole number (`u64`).
///
/// # Errors
/// `FLAG: not a whole number: "V"`.
pub fn parse_whole(flag: &str, v: &str) -> Result<u64, String> {
    v.parse::<u64>()
        .map_err(|_| format!("{flag}: not a whole number: {v:?}"))
}

/// Parses the value `v` of `flag` as a number greater than 0 and less than `below`; `what` names
/// it in the error (`number`, `number of seconds`).
///
/// # Errors
/// `FLAG: not a number: V`, or `FLAG: must be a positive WHAT: V` when out of range.
pub fn parse_positive(flag: &str, v: &str, what: &str, below: f64) -> Result<f64, String> {
    let x: f64 = parse_number(flag, v)?;
    if !(x > 0.0 && x < below) {
        return Err(format!("{flag}: must be a positive {what}: {v}"));
    }
    Ok(x)
}

/// Why [`parse_size`] refused a byte count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SizeError {
    /// The leading digits (maybe none) are not a `u64`.
    NotANumber {
        /// The digits found.
        digits: String,
    },
    /// The suffix is none of B, K, Ki, KiB, M, Mi, MiB, G, Gi, GiB (any case).
    UnknownUnit,
    /// The count overflows a `u64` of bytes.
    TooLarge,
    /// The count is 0 bytes.
    Zero,
}

/// Parses a byte count: digits, then optionally a binary unit (KiB, MiB, GiB, or Ki, Mi, Gi, K,
/// M, G, B, in any case). The digits are checked before the unit.
///
/// # Errors
/// A [`SizeError`] naming what is wrong; the harness words it.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let t = text.trim();
    let at = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(at);
    let num: u64 = digits.parse().map_err(|_| SizeError::NotANumber {
        digits: digits.to_string(),
    })?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "ki" | "kib" => 10,
        "m" | "mi" | "mib" => 20,
        "g" | "gi" | "gib" => 30,
        _ => return Err(SizeError::UnknownUnit),
    };
    match num.checked_mul(1 << shift) {
        None => Err(SizeError::TooLarge),
        Some(0) => Err(SizeError::Zero),
        Some(size) => Ok(size),
    }
}

/// The workspace root: the parent of this package's manifest directory (at build time).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

// ---------------------------------------------------------------------------------------------
// Child processes

/// How often [`Guard::terminate`] looks for the child's exit.
const STOP_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Where a [`Guard`]ed child's stdout goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stdout {
    /// Into its log file, with its stderr.
    Log,
    /// Into a pipe read line by line, for [`Guard::wait_for_line`] and [`Guard::drain_lines`].
    Lines,
}

/// How a [`Guard`] words a failing child: each harness keeps its own wording.
#[derive(Clone, Copy, Debug)]
pub struct Diagnostics {
    /// Most lines of the log [`Guard::log_tail`] shows.
    pub tail_lines: usize,
    /// Whether the log tail's header counts its lines (`, last N lines`).
    pub count_tail_lines: bool,
    /// Whether [`Guard::wait_for_line`], when the child closes its stdout first, waits for the
    /// child to exit and names its exit status.
    pub exit_status_on_close: bool,
}

/// What a [`Guard`] made by [`Guard::new`] uses: it has no log.
const NO_LOG: Diagnostics = Diagnostics {
    tail_lines: 0,
    count_tail_lines: false,
    exit_status_on_close: false,
};

/// A child process that is killed and reaped when dropped, unless it has exited already.
pub struct Guard {
    name: String,
    child: Child,
    log: Option<PathBuf>,
    diagnostics: Diagnostics,
    /// Lines of the child's stdout, read by a thread that drains the pipe until it closes.
    lines: Option<mpsc::Receiver<String>>,
}

impl Guard {
    /// Starts `cmd` with stdin closed and stderr written to a new file `log`; stdout goes to the
    /// log too with [`Stdout::Log`], or to a pipe with [`Stdout::Lines`].
    ///
    /// # Errors
    /// When `log` cannot be created or the program cannot be started.
    pub fn spawn(
        name: &str,
        cmd: &mut Command,
        log: &Path,
        stdout: Stdout,
        diagnostics: Diagnostics,
    ) -> Result<Self, String> {
        let log_err = |e: io::Error| format!("{}: {e}", log.display());
        let stderr = File::create(log).map_err(log_err)?;
        match stdout {
            Stdout::Log => cmd.stdout(Stdio::from(stderr.try_clone().map_err(log_err)?)),
            Stdout::Lines => cmd.stdout(Stdio::piped()),
        };
        let mut child = cmd
            .stdin(Stdio::null())
            .stderr(Stdio::from(stderr))
            .spawn()
            .map_err(|e| format!("starting {name} ({:?}): {e}", cmd.get_program()))?;
        let lines = child.stdout.take().map(|out| {
            let (tx, rx) = mpsc::channel();
            thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    // Keep draining after the receiver is gone, so the child never blocks.
                    let _ = tx.send(line);
                }
            });
            rx
        });
        Ok(Self {
            name: name.to_string(),
            child,
            log: Some(log.to_path_buf()),
            diagnostics,
            lines,
        })
    }

    /// Guards a child started elsewhere; it has no log and no stdout lines.
    pub fn new(name: &str, child: Child) -> Self {
        Self {
            name: name.to_string(),
            child,
            log: None,
            diagnostics: NO_LOG,
            lines: None,
        }
    }

    /// The name given at the start, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The child's process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's exit status if it has exited, without blocking.
    ///
    /// # Errors
    /// When the status cannot be read.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, String> {
        self.child
            .try_wait()
            .map_err(|e| format!("waiting for {}: {e}", self.name))
    }

    /// Waits, unbounded, for the child to exit.
    ///
    /// # Errors
    /// When the status cannot be read.
    pub fn wait(&mut self) -> Result<ExitStatus, String> {
        self.child
            .wait()
            .map_err(|e| format!("waiting for {}: {e}", self.name))
    }

    /// Waits up to `timeout` for a stdout line starting with `prefix`; returns every line read
    /// meanwhile, that one last.
    ///
    /// # Errors
    /// When stdout is not a pipe, no such line comes within `timeout`, or stdout closes first;
    /// the message ends with [`Self::log_tail`].
    pub fn wait_for_line(
        &mut self,
        prefix: &str,
        timeout: Duration,
    ) -> Result<Vec<String>, String> {
        let lines = self
            .lines
            .as_ref()
            .ok_or_else(|| format!("{} started without a stdout pipe", self.name))?;
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    let done = line.starts_with(prefix);
                    seen.push(line);
                    if done {
                        return Ok(seen);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "{} printed no `{prefix}` line within {} s\n{}",
                        self.name,
                        timeout.as_secs(),
                        self.log_tail()
                    ));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = if self.diagnostics.exit_status_on_close {
                        let status = self
                            .child
                            .wait()
                            .map_or_else(|e| e.to_string(), |s| s.to_string());
                        format!(" ({status})")
                    } else {
                        String::new()
                    };
                    return Err(format!(
                        "{} closed its stdout before `{prefix}`{status}\n{}",
                        self.name,
                        self.log_tail()
                    ));
                }
            }
        }
    }

    /// Discards the stdout lines from now on (the reader thread keeps draining the pipe).
    pub fn close_lines(&mut self) {
        self.lines = None;
    }

    /// Every stdout line received and not yet taken.
    pub fn drain_lines(&self) -> Vec<String> {
        self.lines
            .as_ref()
            .map(|rx| rx.try_iter().collect())
            .unwrap_or_default()
    }

    /// Sends SIGTERM (unless the child has exited) and waits up to `timeout` for the exit;
    /// `None` means the child still runs.
    ///
    /// # Errors
    /// When the status cannot be read.
    pub fn terminate(&mut self, timeout: Duration) -> Result<Option<ExitStatus>, String> {
        if let Some(status) = self.try_wait()? {
            return Ok(Some(status));
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            thread::sleep(STOP_POLL_INTERVAL);
        }
        Ok(None)
    }

    /// Sends SIGKILL and reaps the child.
    ///
    /// # Errors
    /// When the status cannot be read.
    pub fn kill(&mut self) -> Result<ExitStatus, String> {
        let _ = self.child.kill();
        self.wait()
    }

    /// [`Self::terminate`], then [`Self::kill`] if the child outlives `timeout`; returns how
    /// it ended.
    ///
    /// # Errors
    /// When the status cannot be read.
    pub fn stop(&mut self, timeout: Duration) -> Result<ExitStatus, String> {
        match self.terminate(timeout)? {
            Some(status) => Ok(status),
            None => self.kill(),
        }
    }

    /// The last lines of the child's log (as many as its [`Diagnostics`] say), headed by its
    /// name and path; empty for a child without a log.
    pub fn log_tail(&self) -> String {
        let Some(log) = &self.log else {
            return String::new();
        };
        let text = fs::read(log).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(self.diagnostics.tail_lines)..];
        let count = if self.diagnostics.count_tail_lines {
            format!(", last {} lines", tail.len())
        } else {
            String::new()
        };
        format!(
            "--- {} log ({}){count} ---\n{}",
            self.name,
            log.display(),
            tail.join("\n")
        )
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// /proc

/// Indexes in [`stat_fields`] of ppid (field 4 of `/proc/PID/stat`), utime (14), stime (15),
/// cutime (16) and cstime (17).
pub const STAT_PPID: usize = 1;
/// See [`STAT_PPID`].
pub const STAT_UTIME: usize = 11;
/// See [`STAT_PPID`].
pub const STAT_STIME: usize = 12;
/// See [`STAT_PPID`].
pub const STAT_CUTIME: usize = 13;
/// See [`STAT_PPID`].
pub const STAT_CSTIME: usize = 14;

/// The fields of `/proc/PID/stat` after the command name, so that field 3 (state) is index 0;
/// `pid` is a process ID or `self`. Fields that are not numbers (the state letter) read as 0.
///
/// # Errors
/// When the file cannot be read, or has no `)`.
pub fn stat_fields(pid: impl Display) -> io::Result<Vec<u64>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no ')' in stat"))?;
    Ok(rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect())
}

/// utime + stime of one process (every thread of it, not its children), clock ticks; `pid` is
/// a process ID or `self`.
///
/// # Errors
/// When `/proc/PID/stat` cannot be read or lacks the fields.
pub fn cpu_ticks(pid: impl Display) -> Result<u64, String> {
    let f = stat_fields(&pid).map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    let field = |i: usize| {
        f.get(i)
            .copied()
            .ok_or_else(|| format!("/proc/{pid}/stat: field {i} missing"))
    };
    Ok(field(STAT_UTIME)? + field(STAT_STIME)?)
}

/// utime + stime, in clock ticks, of `root` and every live process descended from it (threads
/// are included in their process's figure).
///
/// # Errors
/// When `/proc/ROOT/stat` or `/proc` cannot be read.
pub fn tree_cpu_ticks(root: u32) -> Result<u64, String> {
    let root_fields = stat_fields(root).map_err(|e| format!("/proc/{root}/stat: {e}"))?;
    let mut procs = Vec::new();
    for entry in fs::read_dir("/proc").map_err(|e| format!("/proc: {e}"))? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        // A process may exit while /proc is listed; it then no longer counts.
        if let Ok(f) = stat_fields(pid)
            && f.len() > STAT_STIME
        {
            procs.push((pid, f[STAT_PPID], f[STAT_UTIME] + f[STAT_STIME]));
        }
    }
    let mut total = root_fields[STAT_UTIME] + root_fields[STAT_STIME];
    let mut frontier = vec![u64::from(root)];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid, ticks) in &procs {
            if ppid == parent && pid != root {
                total += ticks;
                frontier.push(u64::from(pid));
            }
        }
    }
    Ok(total)
}

/// cutime + cstime of this process: clock ticks of every descendant it has reaped.
///
/// # Errors
/// When `/proc/self/stat` cannot be read.
pub fn reaped_children_ticks() -> Result<u64, String> {
    let f = stat_fields("self").map_err(|e| format!("/proc/self/stat: {e}"))?;
    Ok(f[STAT_CUTIME] + f[STAT_CSTIME])
}

/// Clock ticks the whole machine spent busy since boot, over all cores (user, nice, system, irq,
/// softirq of `/proc/stat`; not idle, iowait or steal).
///
/// # Errors
/// When `/proc/stat` cannot be read or has no `cpu` line.
pub fn machine_busy_ticks() -> Result<u64, String> {
    let stat = fs::read_to_string("/proc/stat").map_err(|e| format!("/proc/stat: {e}"))?;
    let cpu: Vec<u64> = stat
        .lines()
        .find_map(|l| l.strip_prefix("cpu "))
        .ok_or("no cpu line in /proc/stat")?
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq ...
    Ok([0, 1, 2, 5, 6].iter().filter_map(|&i| cpu.get(i)).sum())
}

/// Clock ticks per second of the `/proc` CPU times (`getconf CLK_TCK`, run on every call; else
/// Linux's 100).
pub fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .and_then(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()
                .and_then(|l| l.trim().parse::<f64>().ok())
        })
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// The text of `/proc/PID/status`; `pid` is a process ID or `self`.
///
/// # Errors
/// When it cannot be read.
pub fn proc_status(pid: impl Display) -> Result<String, String> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))
}

/// A `kB` field (`VmRSS`, `VmHWM`, `RssAnon`, `RssFile`; name without the colon) of a
/// `/proc/PID/status` text, in bytes.
pub fn status_bytes(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// A `kB` field of `/proc/PID/status` (see [`status_bytes`]), in bytes; `pid` is a process ID
/// or `self`.
///
/// # Errors
/// When the file cannot be read or lacks the field.
pub fn memory_bytes(pid: impl Display, field: &str) -> Result<u64, String> {
    status_bytes(&proc_status(&pid)?, field)
        .ok_or_else(|| format!("no {field} in /proc/{pid}/status"))
}

/// The 1-minute load average from `/proc/loadavg`.
pub fn load_average() -> Option<String> {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
}

/// The CPU's `model name` from `/proc/cpuinfo`.
pub fn cpu_model() -> Option<String> {
    fs::read_to_string("/proc/cpuinfo").ok().and_then(|c| {
        c.lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    })
}

/// The kernel release from `/proc/sys/kernel/osrelease`.
pub fn kernel_release() -> Option<String> {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|k| k.trim().to_string())
}

// ---------------------------------------------------------------------------------------------
// Files and sockets

/// Read and write buffer for data files, bytes.
const FILE_CHUNK_LEN: usize = 1 << 20;

/// A TCP port on `ip` that was free a moment ago.
///
/// # Errors
/// When no socket can be bound on `ip`.
pub fn free_tcp_port(ip: Ipv4Addr) -> Result<u16, String> {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port on {ip}: {e}"))
}

/// Writes `size` bytes from `/dev/urandom` to a new file `path`, then syncs it.
///
/// # Errors
/// When `/dev/urandom` cannot be read or `path` written.
pub fn write_random_file(path: &Path, size: u64) -> Result<(), String> {
    let err = |e: io::Error| format!("writing {}: {e}", path.display());
    let mut rng = File::open("/dev/urandom").map_err(|e| format!("/dev/urandom: {e}"))?;
    let mut out = File::create(path).map_err(err)?;
    let mut buf = vec![0u8; FILE_CHUNK_LEN];
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left).map_or(FILE_CHUNK_LEN, |l| l.min(FILE_CHUNK_LEN));
        rng.read_exact(&mut buf[..n])
            .map_err(|e| format!("/dev/urandom: {e}"))?;
        out.write_all(&buf[..n]).map_err(err)?;
        left -= n as u64;
    }
    out.sync_all().map_err(err)
}

/// Reads the whole file once, so that it sits in the page cache.
///
/// # Errors
/// When it cannot be opened or read.
pub fn warm_page_cache(path: &Path) -> Result<(), String> {
    let mut f = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut buf = vec![0u8; FILE_CHUNK_LEN];
    loop {
        match f.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        }
    }
}

/// A directory removed when dropped (also on error, so a failed run leaves no payload behind).
/// A failure to remove it is printed as `PROGRAM: removing PATH: ERROR`.
pub struct RemoveOnDrop {
    path: PathBuf,
    program: &'static str,
}

impl RemoveOnDrop {
    /// Takes charge of `path`; `program` prefixes the message if removing it fails.
    pub fn new(path: PathBuf, program: &'static str) -> Self {
        Self { path, program }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.path)
            && e.kind() != io::ErrorKind::NotFound
        {
            eprintln!("{}: removing {}: {e}", self.program, self.path.display());
        }
    }
}

/// The `piece length` of a .torrent file, bytes, found by its bencoded key (no full parse).
pub fn torrent_piece_length(torrent: &Path) -> Option<u64> {
    let bytes = fs::read(torrent).ok()?;
    let key = b"12:piece lengthi";
    let at = bytes.windows(key.len()).position(|w| w == key)? + key.len();
    let end = bytes[at..].iter().position(|&b| b == b'e')? + at;
    std::str::from_utf8(&bytes[at..end]).ok()?.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// aria2c and its tracker

/// aria2c flags for a loopback leecher (/work/shared/INTEROP.md), plus tracker timeouts; the
/// caller adds `--bt-tracker=URL`.
pub const ARIA2C_FLAGS: &[&str] = &[
    "--enable-dht=false",
    "--enable-dht6=false",
    "--bt-enable-lpd=false",
    "--enable-peer-exchange=false",
    "--seed-time=0",
    "--bt-stop-timeout=60",
    "--summary-interval=0",
    "--file-allocation=none",
    "--disable-ipv6=true",
    "--bt-tracker-connect-timeout=10",
    "--bt-tracker-timeout=10",
    "--console-log-level=notice",
    "--bt-exclude-tracker=*",
];

/// Longest announce request [`MiniTracker`] reads, bytes.
const MAX_ANNOUNCE_LEN: usize = 16 * 1024;

/// An HTTP tracker thread that answers every request with one peer (for aria2c, which finds
/// peers only through trackers here). The thread ends when this is dropped.
pub struct MiniTracker {
    addr: SocketAddrV4,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MiniTracker {
    /// Listens on a free port of `ip` and names `peer` in every answer.
    ///
    /// # Errors
    /// When no socket can be bound on `ip`.
    pub fn start(ip: Ipv4Addr, peer: SocketAddrV4) -> io::Result<Self> {
        let listener = TcpListener::bind((ip, 0))?;
        let addr = SocketAddrV4::new(ip, listener.local_addr()?.port());
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(conn) = conn {
                    let _ = answer_announce(conn, peer);
                }
            }
        });
        Ok(Self {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddrV4 {
        self.addr
    }
}

impl Drop for MiniTracker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the blocked accept; if that fails, leave the thread to the end of the process.
        if TcpStream::connect_timeout(&self.addr.into(), Duration::from_secs(1)).is_ok()
            && let Some(t) = self.thread.take()
        {
            let _ = t.join();
        }
    }
}

/// Reads one request head (at most [`MAX_ANNOUNCE_LEN`] bytes) and answers it with `peer` as
/// the only (compact, BEP 23) peer.
fn answer_announce(mut conn: TcpStream, peer: SocketAddrV4) -> io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_ANNOUNCE_LEN {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let mut body = b"d8:completei1e10:incompletei0e8:intervali1800e5:peers6:".to_vec();
    body.extend_from_slice(&peer.ip().octets());
    body.extend_from_slice(&peer.port().to_be_bytes());
    body.push(b'e');
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes())?;
    conn.write_all(&body)
}

// ---------------------------------------------------------------------------------------------
// Reports

/// Seconds since the Unix epoch of `t` (0 before it).
fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `YYYY-MM-DD` of `t` in UTC (civil-from-days, proleptic Gregorian).
pub fn utc_date(t: SystemTime) -> String {
    let z = i64::try_from(unix_secs(t) / 86_400).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// `YYYY-MM-DD HH:MM` of `t` in UTC.
pub fn utc_date_time(t: SystemTime) -> String {
    let secs = unix_secs(t);
    format!(
        "{} {:02}:{:02}",
        utc_date(t),
        secs / 3600 % 24,
        secs / 60 % 60
    )
}

/// The median of `xs` (the mean of the middle two for an even count); `None` when empty.
pub fn median(mut xs: Vec<f64>) -> Option<f64> {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(xs[n / 2]),
        _ => Some(f64::midpoint(xs[n / 2 - 1], xs[n / 2])),
    }
}

/// `a / b` with two decimals for a table cell, or `n/a` when either is missing or `b` is not
/// positive.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "n/a".to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Pseudo-random numbers

/// SplitMix64's finalizer: a bijective mix of a counter into well-spread bits (one step of
/// [`seednode_wire::rng::splitmix64`] from `x`).
pub fn splitmix64(x: u64) -> u64 {
    let mut state = x;
    seednode_wire::rng::splitmix64(&mut state)
}

/// A small, fast, deterministic PRNG (xorshift64*); not for secrets.
pub struct XorShift64Star(u64);

impl XorShift64Star {
    /// Starts from `state`, which must not be 0 (the generator would stay at 0).
    pub const fn from_state(state: u64) -> Self {
        Self(state)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..n` (`n > 0`); the bias is negligible for ranges far below 2^64.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}
