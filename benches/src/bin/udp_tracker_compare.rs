//! Runs the same UDP tracker (BEP 15) load against `seednode tracker`, opentracker and
//! aquatic_udp in one run, each server pinned to one core and the load generator to another, and
//! prints Markdown tables with ratios against opentracker.
//!
//! ```text
//! cargo build --release -p seednode -p seednode-benches
//! target/release/udp_tracker_compare --opentracker PATH [--seednode PATH] [--aquatic-udp PATH]
//!     [--aquatic-load-test PATH] [--load PATH] [--rounds N] [--duration SECS] [--warmup SECS]
//!     [--torrents M] [--peers N] [--in-flight K] [--server-cpu C] [--load-cpu C] [--log-dir DIR]
//! ```
//!
//! Two load generators, each run separately: this workspace's `udp_tracker_load` (announce-heavy
//! mix, a fixed number of requests in flight, latency percentiles) and `aquatic_udp_load_test`
//! (`cargo install aquatic_udp_load_test --locked`; its own mix of connect 50 : announce 50 :
//! scrape 1, as fast as it can). For every round, generator and server (the server order rotates
//! each round):
//!
//! 1. the server starts on a fresh port of 127.0.0.1 under `taskset -c SERVER_CPU`, and must
//!    answer a connect and give a real announce reply (a whitelist-only opentracker, as Debian
//!    ships it, answers every announce with an empty stub; the harness refuses it);
//! 2. `udp_tracker_load --fill` announces every simulated peer once, so that every server holds
//!    the same population (`--peers` peers in `--torrents` swarms) before it is measured and its
//!    memory compares like for like (`--no-fill` skips this); then the generator runs `--warmup`
//!    seconds under `taskset -c LOAD_CPU`, unmeasured;
//! 3. the server's CPU time (utime + stime of all its threads, `/proc/PID/stat`) is sampled, the
//!    generator runs `--duration` seconds, the CPU time is sampled again, with the server's peak
//!    and current RSS (`VmHWM`, `VmRSS`) and the busy time of the whole machine (`/proc/stat`):
//!    "other CPU-s" is what the rest of the machine burned meanwhile (the noise; udp_tracker_load
//!    runs only, as aquatic_udp_load_test does not report its own CPU time);
//! 4. the server is stopped (SIGTERM, then SIGKILL after 5 s).
//!
//! The peers and torrents simulated are sized to stay inside seednode's tracker limits
//! (`MAX_TORRENTS` 100 000, `MAX_PEERS` 1 000 000), so no server answers "tracker is full".
//! Everything stays on loopback; every child is killed if the harness fails (see [`Guard`]).

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::Read as _;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use seednode_benches::{
    Guard, cli_main, clock_ticks_per_sec, cpu_model, cpu_ticks, kernel_release, machine_busy_ticks,
    parse_whole, proc_status, status_bytes, utc_date_time,
};

/// Bound on a server's start-up until it answers a connect.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);
/// Time a server gets to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on `udp_tracker_load --fill` (it stops by itself once every peer has announced).
const FILL_TIMEOUT: Duration = Duration::from_secs(120);
/// Slack on top of a generator's own duration before the harness kills it.
const GENERATOR_SLACK: Duration = Duration::from_secs(30);
/// aquatic_udp_load_test reports in 5-second intervals; its duration is rounded up to them.
const AQUATIC_INTERVAL_SECS: u64 = 5;
/// BEP 15 connect `protocol_id`.
const PROTOCOL_ID: u64 = 0x0417_2710_1980;
/// Most rounds (each one runs every server with every generator).
const MAX_ROUNDS: usize = 20;
const MIB: f64 = 1024.0 * 1024.0;

const USAGE: &str = "\
usage: udp_tracker_compare --opentracker PATH [OPTIONS]

Measures seednode's standalone UDP tracker against opentracker and aquatic_udp with two load
generators (udp_tracker_load and aquatic_udp_load_test), one server thread on one core, the
generator on another; prints Markdown on stdout, progress on stderr.

options:
  --opentracker PATH        opentracker built WITHOUT the access list (Debian's is whitelist-only
                            and is refused); see docs/BENCHMARKS.md
  --seednode PATH           [default: seednode next to this executable]
  --aquatic-udp PATH        aquatic_udp server [default: ~/.cargo/bin/aquatic_udp if present]
  --aquatic-load-test PATH  [default: ~/.cargo/bin/aquatic_udp_load_test if present]
  --load PATH               udp_tracker_load [default: next to this executable]
  --no-aquatic-udp          leave aquatic_udp out
  --no-fill                 do not announce every peer once before the warm-up
  --rounds N                [default: 3]
  --duration SECS           measured seconds per run (aquatic: rounded up to 5) [default: 15]
  --warmup SECS             unmeasured load before each run [default: 5]
  --torrents M              info-hashes simulated [default: 50000]
  --peers N                 peers simulated [default: 500000]
  --in-flight K             udp_tracker_load requests in flight [default: 128]
  --server-cpu C            core for the server [default: 0]
  --load-cpu C              core for the generator [default: 1]
  --log-dir DIR             keep logs and configs in DIR [default: a temp dir, removed]
  -h, --help                this text";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    cli_main(
        "udp_tracker_compare",
        USAGE,
        Options::parse(&args),
        |opts| {
            print!("{}", bench(&opts, &args)?);
            Ok(())
        },
    )
}

#[derive(Debug, Clone)]
struct Options {
    seednode: PathBuf,
    opentracker: PathBuf,
    aquatic_udp: Option<PathBuf>,
    aquatic_load_test: Option<PathBuf>,
    load: PathBuf,
    rounds: usize,
    duration: u64,
    warmup: u64,
    torrents: u64,
    peers: u64,
    in_flight: u64,
    server_cpu: u32,
    load_cpu: u32,
    log_dir: Option<PathBuf>,
    fill: bool,
}

impl Options {
    fn parse(args: &[String]) -> Result<Option<Self>, String> {
        let exe_dir = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_default();
        let cargo_bin = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
            .map(|c| c.join("bin"))
            .unwrap_or_default();
        let installed = |name: &str| Some(cargo_bin.join(name)).filter(|p| p.is_file());
        let mut o = Self {
            seednode: exe_dir.join("seednode"),
            opentracker: PathBuf::new(),
            aquatic_udp: installed("aquatic_udp"),
            aquatic_load_test: installed("aquatic_udp_load_test"),
            load: exe_dir.join("udp_tracker_load"),
            rounds: 3,
            duration: 15,
            warmup: 5,
            torrents: 50_000,
            peers: 500_000,
            in_flight: 128,
            server_cpu: 0,
            load_cpu: 1,
            log_dir: None,
            fill: true,
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            match flag.as_str() {
                "-h" | "--help" => return Ok(None),
                "--no-aquatic-udp" => {
                    o.aquatic_udp = None;
                    continue;
                }
                "--no-fill" => {
                    o.fill = false;
                    continue;
                }
                _ => {}
            }
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let num = |v: &str| parse_whole(flag, v);
            match flag.as_str() {
                "--seednode" => o.seednode = value.into(),
                "--opentracker" => o.opentracker = value.into(),
                "--aquatic-udp" => o.aquatic_udp = Some(value.into()),
                "--aquatic-load-test" => o.aquatic_load_test = Some(value.into()),
                "--load" => o.load = value.into(),
                "--rounds" => o.rounds = usize::try_from(num(value)?).unwrap_or(usize::MAX),
                "--duration" => o.duration = num(value)?,
                "--warmup" => o.warmup = num(value)?,
                "--torrents" => o.torrents = num(value)?,
                "--peers" => o.peers = num(value)?,
                "--in-flight" => o.in_flight = num(value)?,
                "--server-cpu" => {
                    o.server_cpu = u32::try_from(num(value)?).map_err(|_| "--server-cpu")?;
                }
                "--load-cpu" => {
                    o.load_cpu = u32::try_from(num(value)?).map_err(|_| "--load-cpu")?
                }
                "--log-dir" => o.log_dir = Some(value.into()),
                _ => return Err(format!("unknown option {flag}")),
            }
        }
        if o.opentracker.as_os_str().is_empty() {
            return Err(
                "--opentracker PATH is required (one built without the access list)".into(),
            );
        }
        if o.rounds == 0 || o.rounds > MAX_ROUNDS {
            return Err(format!("--rounds must be 1..={MAX_ROUNDS}"));
        }
        if o.duration == 0 || o.duration > 600 || o.warmup > 600 {
            return Err("--duration must be 1..=600 and --warmup 0..=600".into());
        }
        for (what, path) in [
            ("--seednode", &o.seednode),
            ("--opentracker", &o.opentracker),
            ("--load", &o.load),
        ] {
            if !path.is_file() {
                return Err(format!("{what}: {} is not a file", path.display()));
            }
        }
        Ok(Some(o))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Seednode,
    Opentracker,
    AquaticUdp,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Self::Seednode => "seednode",
            Self::Opentracker => "opentracker",
            Self::AquaticUdp => "aquatic_udp",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Generator {
    Own,
    Aquatic,
}

impl Generator {
    fn name(self) -> &'static str {
        match self {
            Self::Own => "udp_tracker_load",
            Self::Aquatic => "aquatic_udp_load_test",
        }
    }
}

/// One measured run.
#[derive(Debug, Clone)]
struct Measurement {
    round: usize,
    generator: Generator,
    server: Server,
    /// Successful responses per second (connect, announce, scrape; not errors).
    rps: f64,
    /// Error responses per second.
    eps: f64,
    /// Successful responses per second of server CPU time.
    per_cpu_s: f64,
    /// Server CPU seconds over the measured run, and the run's wall seconds.
    cpu_s: f64,
    wall_s: f64,
    /// CPU seconds the whole machine was busy during the run (every core, every process): the
    /// server's and the generator's share of it shows how much other work competed with them.
    machine_busy_s: f64,
    /// udp_tracker_load's own CPU seconds (aquatic_udp_load_test does not report it).
    generator_cpu_s: Option<f64>,
    /// Latency percentiles (udp_tracker_load only), µs.
    p50_us: Option<f64>,
    p99_us: Option<f64>,
    /// Requests lost (udp_tracker_load only).
    lost: Option<u64>,
    peak_rss: u64,
    end_rss: u64,
}

/// SIGTERM, then SIGKILL after [`STOP_TIMEOUT`], saying so.
fn stop(guard: &mut Guard) {
    if !matches!(guard.terminate(STOP_TIMEOUT), Ok(Some(_))) {
        eprintln!("{} did not exit on SIGTERM; killing it", guard.name());
        let _ = guard.kill();
    }
}

fn bench(o: &Options, args: &[String]) -> Result<String, String> {
    let tmp = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let log_dir = o
        .log_dir
        .clone()
        .unwrap_or_else(|| tmp.path().to_path_buf());
    fs::create_dir_all(&log_dir).map_err(|e| format!("{}: {e}", log_dir.display()))?;
    let mut servers = vec![Server::Seednode, Server::Opentracker];
    if o.aquatic_udp.is_some() {
        servers.push(Server::AquaticUdp);
    }
    let mut generators = vec![Generator::Own];
    if o.aquatic_load_test.is_some() {
        generators.push(Generator::Aquatic);
    } else {
        eprintln!("aquatic_udp_load_test not found; only udp_tracker_load runs");
    }
    let load_before = load_average();
    let started = SystemTime::now();
    let mut results = Vec::new();
    for round in 0..o.rounds {
        for &generator in &generators {
            let mut order = servers.clone();
            order.rotate_left(round % servers.len());
            for &server in &order {
                eprintln!(
                    "round {}/{}: {} against {}",
                    round + 1,
                    o.rounds,
                    generator.name(),
                    server.name()
                );
                let m = measure(o, &log_dir, round, generator, server)?;
                eprintln!(
                    "  {:.0} responses/s, {:.0} per server CPU-s ({:.2} CPU-s in {:.1} s, \
                     machine busy {:.1} CPU-s), p99 {} us, peak RSS {:.1} MiB, errors {:.0}/s",
                    m.rps,
                    m.per_cpu_s,
                    m.cpu_s,
                    m.wall_s,
                    m.machine_busy_s,
                    m.p99_us.map_or("-".into(), |p| format!("{p:.0}")),
                    m.peak_rss as f64 / MIB,
                    m.eps
                );
                results.push(m);
            }
        }
    }
    Ok(report(
        o,
        args,
        &results,
        &servers,
        &generators,
        started,
        &load_before,
    ))
}

/// A port free for both TCP and UDP on 127.0.0.1 a moment ago.
fn free_port() -> Result<u16, String> {
    for _ in 0..50 {
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("bind: {e}"))?;
        let port = tcp.local_addr().map_err(|e| e.to_string())?.port();
        if UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok(port);
        }
    }
    Err("no port free for both TCP and UDP".into())
}

fn measure(
    o: &Options,
    log_dir: &Path,
    round: usize,
    generator: Generator,
    server: Server,
) -> Result<Measurement, String> {
    let port = free_port()?;
    let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    let tag = format!("r{round}-{}-{}", generator.name(), server.name());
    let mut guard = start_server(o, log_dir, &tag, server, addr)?;
    let log = log_dir.join(format!("{tag}.server.log"));
    wait_ready(addr, &mut guard, &log)?;
    if o.fill {
        fill(o, log_dir, &tag, addr)?;
    }
    if o.warmup > 0 {
        run_generator(
            o,
            log_dir,
            &format!("{tag}.warmup"),
            generator,
            addr,
            o.warmup,
        )?;
    }
    let pid = guard.pid();
    let cpu0 = cpu_secs(pid)?;
    let busy0 = machine_busy_secs()?;
    let t0 = Instant::now();
    let out = run_generator(o, log_dir, &tag, generator, addr, o.duration)?;
    let wall_s = t0.elapsed().as_secs_f64();
    let cpu_s = cpu_secs(pid)? - cpu0;
    let machine_busy_s = machine_busy_secs()? - busy0;
    let (peak_rss, end_rss) = rss_bytes(pid)?;
    stop(&mut guard);
    let generator_cpu_s = match &out {
        GeneratorResult::Own(r) => Some(r.get("client_cpu_s")).filter(|c| c.is_finite()),
        GeneratorResult::Aquatic { .. } => None,
    };
    let (rps, eps, responses, p50_us, p99_us, lost) = match out {
        GeneratorResult::Own(r) => (
            r.get("rps"),
            r.get("errors") / r.get("secs"),
            r.get("responses"),
            Some(r.get("p50_us")),
            Some(r.get("p99_us")),
            Some(r.get("lost") as u64),
        ),
        GeneratorResult::Aquatic {
            avg_rps,
            avg_error_rps,
            secs,
        } => {
            let ok = avg_rps - avg_error_rps;
            (ok, avg_error_rps, ok * secs, None, None, None)
        }
    };
    Ok(Measurement {
        round,
        generator,
        server,
        rps,
        eps,
        per_cpu_s: responses / cpu_s.max(1e-9),
        cpu_s,
        wall_s,
        machine_busy_s,
        generator_cpu_s,
        p50_us,
        p99_us,
        lost,
        peak_rss,
        end_rss,
    })
}

fn start_server(
    o: &Options,
    log_dir: &Path,
    tag: &str,
    server: Server,
    addr: SocketAddrV4,
) -> Result<Guard, String> {
    let log_path = log_dir.join(format!("{tag}.server.log"));
    let log = File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let log2 = log.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = Command::new("taskset");
    cmd.arg("-c").arg(o.server_cpu.to_string());
    match server {
        Server::Seednode => {
            cmd.arg(&o.seednode)
                .args(["tracker", "--http"])
                .arg(addr.to_string())
                .arg("--udp")
                .arg(addr.to_string())
                .env("RUST_LOG", "warn");
        }
        Server::Opentracker => {
            let conf = log_dir.join(format!("{tag}.opentracker.conf"));
            fs::write(&conf, format!("listen.tcp_udp {addr}\n"))
                .map_err(|e| format!("{}: {e}", conf.display()))?;
            cmd.arg(&o.opentracker).arg("-f").arg(&conf);
        }
        Server::AquaticUdp => {
            let bin = o
                .aquatic_udp
                .as_ref()
                .expect("aquatic_udp is in the server list");
            let conf = log_dir.join(format!("{tag}.aquatic_udp.toml"));
            fs::write(&conf, aquatic_udp_config(bin, addr)?)
                .map_err(|e| format!("{}: {e}", conf.display()))?;
            cmd.arg(bin).arg("-c").arg(&conf);
        }
    }
    cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
    let child = cmd
        .spawn()
        .map_err(|e| format!("starting {} ({cmd:?}): {e}", server.name()))?;
    Ok(Guard::new(server.name(), child))
}

/// aquatic_udp's default config (`aquatic_udp -p`) with one socket worker, one swarm worker (if
/// the version has them) and the address set.
fn aquatic_udp_config(bin: &Path, addr: SocketAddrV4) -> Result<String, String> {
    let out = Command::new(bin)
        .arg("-p")
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("{} -p: {e}", bin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut conf = String::new();
    for line in text.lines() {
        let key = line.split('=').next().unwrap_or("").trim();
        let line = match key {
            "socket_workers" | "swarm_workers" => format!("{key} = 1"),
            "address_ipv4" => format!("{key} = \"{addr}\""),
            "use_ipv6" => format!("{key} = false"),
            "address" if line.contains(':') => format!("{key} = \"{addr}\""),
            _ => line.to_string(),
        };
        conf.push_str(&line);
        conf.push('\n');
    }
    Ok(conf)
}

/// Waits until the server answers a connect, then checks that it gives a real announce reply.
fn wait_ready(addr: SocketAddrV4, guard: &mut Guard, log: &Path) -> Result<(), String> {
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(|e| e.to_string())?;
    let end = Instant::now() + STARTUP_TIMEOUT;
    let mut buf = [0u8; 2048];
    let conn_id = loop {
        if Instant::now() >= end {
            return Err(format!(
                "{} did not answer a connect on {addr} within {STARTUP_TIMEOUT:?}\n{}",
                guard.name(),
                tail(log)
            ));
        }
        if let Ok(Some(status)) = guard.try_wait() {
            return Err(format!("{} exited: {status}\n{}", guard.name(), tail(log)));
        }
        let mut req = Vec::with_capacity(16);
        req.extend_from_slice(&PROTOCOL_ID.to_be_bytes());
        req.extend_from_slice(&0u32.to_be_bytes());
        req.extend_from_slice(&7u32.to_be_bytes());
        let _ = sock.send_to(&req, addr);
        if let Ok((n, _)) = sock.recv_from(&mut buf)
            && n >= 16
            && buf[..8] == [0, 0, 0, 0, 0, 0, 0, 7]
        {
            break u64::from_be_bytes(buf[8..16].try_into().expect("8 bytes"));
        }
    };
    // An announce for an info-hash nobody registered must get a real reply (action 1, 20+ bytes).
    let mut req = Vec::with_capacity(98);
    req.extend_from_slice(&conn_id.to_be_bytes());
    req.extend_from_slice(&1u32.to_be_bytes());
    req.extend_from_slice(&8u32.to_be_bytes());
    req.extend_from_slice(&[0x5a; 20]); // info-hash
    req.extend_from_slice(b"-PROBE0-123456789012"); // peer ID
    req.extend_from_slice(&[0; 24]); // downloaded, left, uploaded
    req.extend_from_slice(&[0; 12]); // event, IP, key
    req.extend_from_slice(&50u32.to_be_bytes());
    req.extend_from_slice(&6881u16.to_be_bytes());
    for _ in 0..20 {
        let _ = sock.send_to(&req, addr);
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            if n >= 20 && buf[..8] == [0, 0, 0, 1, 0, 0, 0, 8] {
                return Ok(());
            }
            return Err(format!(
                "{} answered a probe announce with {n} bytes {:02x?}, not an announce reply: \
                 is it an opentracker built whitelist-only (Debian's)? Build one without the \
                 access list (docs/BENCHMARKS.md).",
                guard.name(),
                &buf[..n.min(32)]
            ));
        }
    }
    Err(format!("{} never answered a probe announce", guard.name()))
}

enum GeneratorResult {
    /// The `key=value` fields of udp_tracker_load's RESULT line.
    Own(Fields),
    /// aquatic_udp_load_test's summary: average responses (all kinds, errors included) and
    /// error responses per second, over `secs`.
    Aquatic {
        avg_rps: f64,
        avg_error_rps: f64,
        secs: f64,
    },
}

struct Fields(Vec<(String, f64)>);

impl Fields {
    fn get(&self, key: &str) -> f64 {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map_or(f64::NAN, |(_, v)| *v)
    }
}

fn run_generator(
    o: &Options,
    log_dir: &Path,
    tag: &str,
    generator: Generator,
    addr: SocketAddrV4,
    secs: u64,
) -> Result<GeneratorResult, String> {
    let out_path = log_dir.join(format!("{tag}.load.out"));
    let err_path = log_dir.join(format!("{tag}.load.err"));
    let mut cmd = Command::new("taskset");
    cmd.arg("-c").arg(o.load_cpu.to_string());
    let limit = match generator {
        Generator::Own => {
            cmd.arg(&o.load)
                .arg("--server")
                .arg(addr.to_string())
                .arg("--duration")
                .arg(secs.to_string())
                .arg("--torrents")
                .arg(o.torrents.to_string())
                .arg("--peers")
                .arg(o.peers.to_string())
                .arg("--in-flight")
                .arg(o.in_flight.to_string());
            Duration::from_secs(secs)
        }
        Generator::Aquatic => {
            let secs = secs.div_ceil(AQUATIC_INTERVAL_SECS) * AQUATIC_INTERVAL_SECS;
            let conf = log_dir.join(format!("{tag}.aquatic_load.toml"));
            fs::write(
                &conf,
                format!(
                    "server_address = \"{addr}\"\nlog_level = \"error\"\nworkers = 1\n\
                     duration = {secs}\nsummarize_last = 0\nextra_statistics = false\n\
                     [network]\nmultiple_client_ipv4s = true\nsockets_per_worker = 4\n\
                     recv_buffer = 8000000\n[requests]\nnumber_of_torrents = {}\n\
                     number_of_peers = {}\nscrape_max_torrents = 10\n\
                     announce_peers_wanted = 30\nweight_connect = 50\nweight_announce = 50\n\
                     weight_scrape = 1\npeer_seeder_probability = 0.75\n",
                    o.torrents, o.peers
                ),
            )
            .map_err(|e| format!("{}: {e}", conf.display()))?;
            cmd.arg(o.aquatic_load_test.as_ref().expect("checked"))
                .arg("-c")
                .arg(&conf);
            Duration::from_secs(secs)
        }
    };
    let stdout = File::create(&out_path).map_err(|e| e.to_string())?;
    let stderr = File::create(&err_path).map_err(|e| e.to_string())?;
    cmd.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
    let child = cmd
        .spawn()
        .map_err(|e| format!("starting {} ({cmd:?}): {e}", generator.name()))?;
    let mut guard = Guard::new(generator.name(), child);
    let end = Instant::now() + limit + GENERATOR_SLACK;
    let status = loop {
        if let Ok(Some(status)) = guard.try_wait() {
            break status;
        }
        if Instant::now() >= end {
            return Err(format!(
                "{} ran past {:?}\n{}",
                generator.name(),
                limit + GENERATOR_SLACK,
                tail(&err_path)
            ));
        }
        thread::sleep(Duration::from_millis(20));
    };
    let mut text = String::new();
    File::open(&out_path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .map_err(|e| format!("{}: {e}", out_path.display()))?;
    if !status.success() {
        return Err(format!(
            "{} failed: {status}\n{}\n{}",
            generator.name(),
            tail(&out_path),
            tail(&err_path)
        ));
    }
    match generator {
        Generator::Own => {
            let line = text
                .lines()
                .find_map(|l| l.strip_prefix("RESULT "))
                .ok_or_else(|| format!("no RESULT line from udp_tracker_load:\n{text}"))?;
            let fields = line
                .split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.parse().unwrap_or(f64::NAN)))
                .collect();
            Ok(GeneratorResult::Own(Fields(fields)))
        }
        Generator::Aquatic => {
            let summary = text
                .split("# aquatic load test report")
                .nth(1)
                .ok_or_else(|| format!("no report from aquatic_udp_load_test:\n{text}"))?;
            let number_after = |label: &str| -> Result<f64, String> {
                summary
                    .lines()
                    .find_map(|l| l.trim().strip_prefix(label))
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| format!("no {label:?} in aquatic_udp_load_test's report"))
            };
            Ok(GeneratorResult::Aquatic {
                avg_rps: number_after("Average responses per second:")?,
                avg_error_rps: number_after("- Error responses:")?,
                secs: number_after("Test ran for")?,
            })
        }
    }
}

/// CPU seconds the machine has spent busy since boot, over all cores (user, nice, system, irq,
/// softirq of `/proc/stat`; not idle, iowait or steal).
fn machine_busy_secs() -> Result<f64, String> {
    Ok(machine_busy_ticks()? as f64 / clock_ticks_per_sec())
}

/// Runs `udp_tracker_load --fill`: every simulated peer announces once.
fn fill(o: &Options, log_dir: &Path, tag: &str, addr: SocketAddrV4) -> Result<(), String> {
    let err_path = log_dir.join(format!("{tag}.fill.err"));
    let stderr = File::create(&err_path).map_err(|e| e.to_string())?;
    let mut cmd = Command::new("taskset");
    cmd.arg("-c")
        .arg(o.load_cpu.to_string())
        .arg(&o.load)
        .arg("--fill")
        .arg("--server")
        .arg(addr.to_string())
        .arg("--duration")
        .arg(FILL_TIMEOUT.as_secs().to_string())
        .arg("--torrents")
        .arg(o.torrents.to_string())
        .arg("--peers")
        .arg(o.peers.to_string())
        .arg("--in-flight")
        .arg(o.in_flight.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    let status = cmd
        .status()
        .map_err(|e| format!("starting udp_tracker_load --fill: {e}"))?;
    if !status.success() {
        return Err(format!(
            "udp_tracker_load --fill failed: {status}\n{}",
            tail(&err_path)
        ));
    }
    Ok(())
}

/// utime + stime of all threads of `pid`, seconds.
fn cpu_secs(pid: u32) -> Result<f64, String> {
    Ok(cpu_ticks(pid)? as f64 / clock_ticks_per_sec())
}

/// (`VmHWM`, `VmRSS`) of `pid`, bytes, from one reading of `/proc/PID/status`.
fn rss_bytes(pid: u32) -> Result<(u64, u64), String> {
    let status = proc_status(pid)?;
    let kb = |key: &str| -> Result<u64, String> {
        status_bytes(&status, key).ok_or_else(|| format!("no {key}: in /proc/{pid}/status"))
    };
    Ok((kb("VmHWM")?, kb("VmRSS")?))
}

fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(30);
    format!("--- {} ---\n{}", path.display(), lines[start..].join("\n"))
}

/// The 1-minute load average, or `unknown`.
fn load_average() -> String {
    seednode_benches::load_average().unwrap_or_else(|| "unknown".to_string())
}

/// The median of the finite values of `xs`; NaN when there are none.
fn median(mut xs: Vec<f64>) -> f64 {
    xs.retain(|x| x.is_finite());
    seednode_benches::median(xs).unwrap_or(f64::NAN)
}

/// Medians over rounds of one (generator, server).
struct Summary {
    rps: f64,
    eps: f64,
    per_cpu_s: f64,
    cpu_share: f64,
    p50_us: f64,
    p99_us: f64,
    peak_rss: f64,
    end_rss: f64,
    runs: usize,
}

fn summarize(results: &[Measurement], g: Generator, s: Server) -> Option<Summary> {
    let rs: Vec<&Measurement> = results
        .iter()
        .filter(|m| m.generator == g && m.server == s)
        .collect();
    if rs.is_empty() {
        return None;
    }
    let med = |f: &dyn Fn(&Measurement) -> f64| median(rs.iter().map(|m| f(m)).collect());
    Some(Summary {
        rps: med(&|m| m.rps),
        eps: med(&|m| m.eps),
        per_cpu_s: med(&|m| m.per_cpu_s),
        cpu_share: med(&|m| m.cpu_s / m.wall_s),
        p50_us: med(&|m| m.p50_us.unwrap_or(f64::NAN)),
        p99_us: med(&|m| m.p99_us.unwrap_or(f64::NAN)),
        peak_rss: med(&|m| m.peak_rss as f64),
        end_rss: med(&|m| m.end_rss as f64),
        runs: rs.len(),
    })
}

fn fmt_opt(x: f64, digits: usize) -> String {
    if x.is_finite() {
        format!("{x:.digits$}")
    } else {
        "-".to_string()
    }
}

fn thousands(x: f64) -> String {
    if x.is_finite() {
        format!("{:.1}k", x / 1000.0)
    } else {
        "-".to_string()
    }
}

fn report(
    o: &Options,
    args: &[String],
    results: &[Measurement],
    servers: &[Server],
    generators: &[Generator],
    started: SystemTime,
    load_before: &str,
) -> String {
    let mut md = String::new();
    let cpu = cpu_model().unwrap_or_else(|| "unknown".into());
    let kernel = kernel_release().unwrap_or_else(|| "unknown".into());
    let _ = writeln!(
        md,
        "- Date: {} UTC; {} cores ({cpu}), kernel {kernel}; load average {load_before} before, \
         {} after",
        utc_date_time(started),
        thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    let _ = writeln!(md, "- Command: `udp_tracker_compare {}`", args.join(" "));
    let _ = writeln!(
        md,
        "- Servers on core {}, generators on core {}; {} rounds of {} s measured after {} s of \
         warm-up{}; {} peers over {} info-hashes; udp_tracker_load: {} in flight, 16 source IPs, \
         mix connect 10 : announce 80 : scrape 10 (10 hashes), numwant 30; \
         aquatic_udp_load_test: 1 worker, 4 sockets, connect 50 : announce 50 : scrape 1",
        o.server_cpu,
        o.load_cpu,
        o.rounds,
        o.duration,
        o.warmup,
        if o.fill {
            ", each server first filled with every peer (one announce each)"
        } else {
            ""
        },
        o.peers,
        o.torrents,
        o.in_flight
    );
    md.push('\n');
    md.push_str(
        "| generator | server | runs | responses/s | responses per server CPU-s | server CPU \
         share | p50 us | p99 us | errors/s | peak RSS MiB | end RSS MiB |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for &g in generators {
        for &s in servers {
            let Some(x) = summarize(results, g, s) else {
                continue;
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {:.0} % | {} | {} | {} | {:.1} | {:.1} |",
                g.name(),
                s.name(),
                x.runs,
                thousands(x.rps),
                thousands(x.per_cpu_s),
                x.cpu_share * 100.0,
                fmt_opt(x.p50_us, 0),
                fmt_opt(x.p99_us, 0),
                fmt_opt(x.eps, 0),
                x.peak_rss / MIB,
                x.end_rss / MIB
            );
        }
    }
    md.push('\n');
    md.push_str(
        "| generator | ratio (medians) | responses/s | responses per CPU-s | p99 | peak RSS |\n\
         |---|---|---:|---:|---:|---:|\n",
    );
    for &g in generators {
        let Some(ot) = summarize(results, g, Server::Opentracker) else {
            continue;
        };
        for &s in servers.iter().filter(|s| **s != Server::Opentracker) {
            let Some(x) = summarize(results, g, s) else {
                continue;
            };
            let _ = writeln!(
                md,
                "| {} | {} / opentracker | {:.2} | {:.2} | {} | {:.2} |",
                g.name(),
                s.name(),
                x.rps / ot.rps,
                x.per_cpu_s / ot.per_cpu_s,
                fmt_opt(x.p99_us / ot.p99_us, 2),
                x.peak_rss / ot.peak_rss
            );
        }
    }
    md.push_str(
        "\nEvery run (\"other CPU-s\": the machine's busy CPU time minus the server's and the \
         generator's, i.e. other processes competing for the two cores):\n\n",
    );
    md.push_str(
        "| round | generator | server | responses/s | per CPU-s | CPU-s | wall s | p50 us | \
         p99 us | lost | errors/s | peak RSS MiB | generator CPU-s | other CPU-s |\n\
         |---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for m in results {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {:.2} | {:.1} | {} | {} | {} | {:.0} | {:.1} | {} | {} |",
            m.round + 1,
            m.generator.name(),
            m.server.name(),
            thousands(m.rps),
            thousands(m.per_cpu_s),
            m.cpu_s,
            m.wall_s,
            m.p50_us.map_or("-".into(), |v| format!("{v:.0}")),
            m.p99_us.map_or("-".into(), |v| format!("{v:.0}")),
            m.lost.map_or("-".into(), |v| v.to_string()),
            m.eps,
            m.peak_rss as f64 / MIB,
            m.generator_cpu_s.map_or("-".into(), |c| format!("{c:.2}")),
            m.generator_cpu_s.map_or("-".into(), |c| format!(
                "{:.2}",
                m.machine_busy_s - m.cpu_s - c
            )),
        );
    }
    md
}
