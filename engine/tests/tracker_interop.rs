//! seednode's tracker and tracker client against real BitTorrent software on loopback.
//!
//! - Two python3-libtorrent peers, each in its own process (libtorrent shares UDP connection IDs
//!   per process, INTEROP.md) and on its own 127.0.0.x, announce one info-hash to
//!   `seednode tracker` over HTTP, and again over UDP (BEP 15); each must be told the other's
//!   address, and `/scrape` must then count one seeder and one leecher.
//! - aria2c downloads a file whose torrent names only seednode's UDP tracker, from a
//!   `seednode seed --torrent` that found the same tracker in the torrent and announced to it.
//! - `seednode seed --torrent` announces to an opentracker named in the torrent; a libtorrent
//!   client that knows only opentracker (no peer is dialled directly) finds it and downloads.
//!
//! Each test stays within [`TEST_TIMEOUT`], and every process it starts is killed when it ends
//! or fails ([`ChildGuard`]). Needs aria2c, mktorrent, opentracker and python3-libtorrent
//! (scripts/test installs them); a missing one fails the test.

mod common;

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    ChildGuard, Deadline, PYTHON, SEEDER_IP, Seeder, TEST_TIMEOUT, assert_same_file, free_port,
    libtorrent_info_hash, log_tail, mktorrent, require_aria2c, require_libtorrent,
    require_mktorrent, run_client, seednode_bin, support_file, write_random_file,
};
use tempfile::TempDir;

/// 3 MiB plus an odd tail: several pieces, a short last one.
const FILE_LEN: u64 = 3 * 1024 * 1024 + 4_321;
const FILE_NAME: &str = "tracked.bin";
/// mktorrent's `-l`: 64 KiB pieces.
const PIECE_LENGTH_LOG2: u8 = 16;

/// Client addresses, one set per test, distinct from every other test file's (127.0.0.7x).
const HTTP_SEEDER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 71);
const HTTP_LEECHER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 72);
const UDP_SEEDER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 73);
const UDP_LEECHER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 74);
const ARIA2C_UDP_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 75);
const LT_OPENTRACKER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 76);

/// How long `seednode tracker` and opentracker may take to start listening.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);
/// How often a waiting loop polls a log file or a tracker.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Bound on one HTTP exchange with a tracker.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// A temp dir holding `seed/<FILE_NAME>`, and a torrent of it (`<name>.torrent`) announcing to
/// `announce` only, made by mktorrent.
fn fixture(announce: &str) -> (TempDir, PathBuf, PathBuf) {
    require_mktorrent();
    let tmp = tempfile::tempdir().expect("create temp dir");
    let file = tmp.path().join("seed").join(FILE_NAME);
    write_random_file(&file, FILE_LEN, 41);
    let torrent = tmp.path().join(format!("{FILE_NAME}.torrent"));
    mktorrent(&file, &torrent, announce, PIECE_LENGTH_LOG2);
    (tmp, file, torrent)
}

/// A running `seednode tracker` and the addresses it printed.
struct StandaloneTracker {
    _child: ChildGuard,
    http: SocketAddr,
    udp: SocketAddr,
    log: PathBuf,
}

impl StandaloneTracker {
    /// Runs `seednode tracker --http 127.0.0.1:0 --udp 127.0.0.1:0` and waits for its `http:`
    /// and `udp:` lines.
    fn start(dir: &Path, deadline: Deadline) -> Self {
        let out = dir.join("tracker.stdout");
        let log = dir.join("tracker.stderr");
        let mut cmd = Command::new(seednode_bin());
        cmd.args(["tracker", "--http", "127.0.0.1:0", "--udp", "127.0.0.1:0"])
            .stdout(File::create(&out).expect("create tracker stdout"))
            .stderr(File::create(&log).expect("create tracker stderr"));
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        let mut child = ChildGuard::spawn("seednode tracker", &mut cmd);
        let end = Instant::now() + deadline.remaining("tracker start").min(STARTUP_TIMEOUT);
        loop {
            let text = fs::read_to_string(&out).unwrap_or_default();
            let field = |key: &str| -> Option<SocketAddr> {
                text.lines()
                    .find_map(|l| l.strip_prefix(key))
                    .and_then(|v| v.trim().parse().ok())
            };
            if let (Some(http), Some(udp)) = (field("http:"), field("udp:")) {
                return Self {
                    _child: child,
                    http,
                    udp,
                    log,
                };
            }
            if let Some(status) = child.wait_timeout(Duration::ZERO) {
                panic!(
                    "seednode tracker exited ({status}) before printing http:/udp:\n{text}\n{}",
                    log_tail(&log)
                );
            }
            assert!(
                Instant::now() < end,
                "seednode tracker printed no http:/udp: lines within {STARTUP_TIMEOUT:?}\n{text}\n{}",
                log_tail(&log)
            );
            thread::sleep(POLL_INTERVAL);
        }
    }
}

/// `%XX` for every byte of a 40-hex-digit info-hash: its raw 20 bytes, URL-encoded (BEP 3).
fn url_encoded_info_hash(hex: &str) -> String {
    assert_eq!(hex.len(), 40, "info-hash {hex:?} is not 40 hex digits");
    hex.as_bytes()
        .chunks(2)
        .map(|pair| format!("%{}", std::str::from_utf8(pair).expect("ascii hex")))
        .collect()
}

fn raw_info_hash(hex: &str) -> [u8; 20] {
    let mut raw = [0u8; 20];
    for (i, b) in raw.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex digit");
    }
    raw
}

/// `GET path` over HTTP/1.0; returns the status code and the body.
fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let mut conn = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)?;
    conn.set_read_timeout(Some(HTTP_TIMEOUT))?;
    conn.set_write_timeout(Some(HTTP_TIMEOUT))?;
    write!(
        conn,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut reply = Vec::new();
    conn.take(1 << 20).read_to_end(&mut reply)?;
    let split = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::new(ErrorKind::InvalidData, "no end of HTTP head"))?;
    let head = String::from_utf8_lossy(&reply[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::new(ErrorKind::InvalidData, "no HTTP status"))?;
    Ok((status, reply[split + 4..].to_vec()))
}

/// Counts of one torrent in a bencoded `/scrape` reply (BEP 48).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ScrapeCounts {
    complete: i64,
    downloaded: i64,
    incomplete: i64,
}

/// The value of the bencoded integer after `key` (a bencoded string such as `8:complete`) in
/// `dict`, a flat dictionary.
fn bencoded_int(dict: &[u8], key: &[u8]) -> Option<i64> {
    let at = dict.windows(key.len()).position(|w| w == key)? + key.len();
    let rest = dict.get(at..)?.strip_prefix(b"i")?;
    let end = rest.iter().position(|&b| b == b'e')?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

/// Scrapes one info-hash from the tracker whose announce URL is `http://ADDR/announce`.
fn scrape(addr: SocketAddr, info_hash_hex: &str) -> Result<ScrapeCounts, String> {
    let path = format!("/scrape?info_hash={}", url_encoded_info_hash(info_hash_hex));
    let (status, body) = http_get(addr, &path).map_err(|e| format!("GET {path}: {e}"))?;
    let shown = String::from_utf8_lossy(&body).into_owned();
    if status != 200 {
        return Err(format!("GET {path}: status {status}: {shown}"));
    }
    // d5:filesd20:<raw info-hash>d8:completei..e10:downloadedi..e10:incompletei..eeee
    let mut key = b"20:".to_vec();
    key.extend_from_slice(&raw_info_hash(info_hash_hex));
    let at = body
        .windows(key.len())
        .position(|w| w == key.as_slice())
        .ok_or_else(|| format!("GET {path}: the info-hash is not in the reply: {shown:?}"))?;
    let entry = &body[at + key.len()..];
    let field = |name: &[u8]| {
        bencoded_int(entry, name).ok_or_else(|| {
            format!(
                "GET {path}: no {} in {shown:?}",
                String::from_utf8_lossy(name)
            )
        })
    };
    Ok(ScrapeCounts {
        complete: field(b"8:complete")?,
        downloaded: field(b"10:downloaded")?,
        incomplete: field(b"10:incomplete")?,
    })
}

/// Polls `/scrape` until `done(counts)` holds; panics with `what` and `log` at the deadline.
fn wait_for_scrape(
    addr: SocketAddr,
    info_hash_hex: &str,
    done: impl Fn(ScrapeCounts) -> bool,
    what: &str,
    logs: &[&Path],
    deadline: Deadline,
) -> ScrapeCounts {
    let end = Instant::now() + deadline.remaining(what);
    let mut last = Err("no scrape yet".to_string());
    loop {
        if let Ok(c) = &last
            && done(*c)
        {
            return *c;
        }
        if Instant::now() >= end {
            let logs: Vec<String> = logs.iter().map(|p| log_tail(p)).collect();
            panic!(
                "{what}: tracker at {addr} never showed it; last scrape: {last:?}\n{}",
                logs.join("\n")
            );
        }
        thread::sleep(POLL_INTERVAL);
        last = scrape(addr, info_hash_hex);
    }
}

/// A `lt_announce.py` peer left running (its log in `log`).
struct LtPeer {
    child: ChildGuard,
    log: PathBuf,
}

/// Starts `lt_announce.py TORRENT` from `ip`, with `save_dir` (holding the data for a seeder)
/// and `extra` arguments; its stdout and stderr go to `<save_dir>.lt_announce.log`.
fn start_lt_peer(
    torrent: &Path,
    save_dir: &Path,
    ip: Ipv4Addr,
    extra: &[&str],
    deadline: Deadline,
) -> LtPeer {
    fs::create_dir_all(save_dir).expect("create save dir");
    let log = save_dir.with_extension("lt_announce.log");
    let out = File::create(&log).expect("create lt_announce log");
    let err = out.try_clone().expect("dup log");
    // Leave the script time to report its own timeout before the test gives up.
    let timeout = deadline
        .remaining("lt_announce.py")
        .saturating_sub(Duration::from_secs(3));
    let mut cmd = Command::new(PYTHON);
    cmd.arg(support_file("lt_announce.py"))
        .arg(torrent)
        .arg("--save-dir")
        .arg(save_dir)
        .arg("--listen")
        .arg(format!("{ip}:{}", free_port(ip)))
        .arg("--timeout")
        .arg(timeout.as_secs().max(1).to_string())
        .args(extra)
        .stdout(out)
        .stderr(err);
    LtPeer {
        child: ChildGuard::spawn("lt_announce.py", &mut cmd),
        log,
    }
}

/// Waits until every peer's log has an `ok:` line; panics with every log at the deadline or
/// if a peer exits first.
fn wait_all_ok(peers: &mut [&mut LtPeer], extra_log: &Path, deadline: Deadline) {
    let end = Instant::now() + deadline.remaining("lt_announce.py ok");
    let logs = |peers: &[&mut LtPeer]| -> String {
        let mut all: Vec<String> = peers.iter().map(|p| log_tail(&p.log)).collect();
        all.push(log_tail(extra_log));
        all.join("\n")
    };
    loop {
        let mut all_ok = true;
        for p in peers.iter_mut() {
            let text = fs::read_to_string(&p.log).unwrap_or_default();
            if !text.lines().any(|l| l.starts_with("ok:")) {
                all_ok = false;
                if let Some(status) = p.child.wait_timeout(Duration::ZERO) {
                    panic!(
                        "lt_announce.py exited ({status}) before `ok:`\n{}",
                        logs(peers)
                    );
                }
            }
        }
        if all_ok {
            return;
        }
        assert!(
            Instant::now() < end,
            "libtorrent peers did not all learn each other from the tracker in time\n{}",
            logs(peers)
        );
        thread::sleep(POLL_INTERVAL);
    }
}

/// Two libtorrent processes, a seeder and a leecher that never downloads (upload mode), announce
/// to `announce_url` of a running `seednode tracker`; each must be told the other's address, and
/// the tracker's `/scrape` must then count one seeder and one leecher.
fn two_libtorrent_peers_find_each_other(scheme: &str, seeder_ip: Ipv4Addr, leecher_ip: Ipv4Addr) {
    require_libtorrent();
    let deadline = Deadline::after(TEST_TIMEOUT);
    let dir = tempfile::tempdir().expect("create temp dir");
    let tracker = StandaloneTracker::start(dir.path(), deadline);
    let url = match scheme {
        "http" => format!("http://{}/announce", tracker.http),
        "udp" => format!("udp://{}/announce", tracker.udp),
        other => unreachable!("scheme {other}"),
    };
    let (tmp, file, torrent) = fixture(&url);
    let info_hash = libtorrent_info_hash(&torrent);
    let seed_dir = file.parent().expect("file in seed/");
    let mut seeder = start_lt_peer(
        &torrent,
        seed_dir,
        seeder_ip,
        &["--expect-peer", &leecher_ip.to_string()],
        deadline,
    );
    let mut leecher = start_lt_peer(
        &torrent,
        &tmp.path().join("leech"),
        leecher_ip,
        &["--upload-mode", "--expect-peer", &seeder_ip.to_string()],
        deadline,
    );
    wait_all_ok(&mut [&mut seeder, &mut leecher], &tracker.log, deadline);
    for (peer, other) in [(&seeder, leecher_ip), (&leecher, seeder_ip)] {
        let text = fs::read_to_string(&peer.log).expect("read lt_announce log");
        assert!(
            text.lines().any(|l| l == format!("tracker-peer {other}")),
            "{} was not told {other} by the tracker\n{text}",
            peer.log.display()
        );
        assert!(
            text.contains(&format!("tracker-reply {url} ")),
            "{} got no reply from {url}\n{text}",
            peer.log.display()
        );
    }
    // Both are still announced: one seeder (left = 0), one leecher, nobody completed.
    let want = ScrapeCounts {
        complete: 1,
        downloaded: 0,
        incomplete: 1,
    };
    let got = scrape(tracker.http, &info_hash).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        got,
        want,
        "scrape after both announced over {scheme}\n{}",
        log_tail(&tracker.log)
    );
}

#[test]
fn libtorrent_peers_learn_each_other_over_http_tracker() {
    two_libtorrent_peers_find_each_other("http", HTTP_SEEDER_IP, HTTP_LEECHER_IP);
}

#[test]
fn libtorrent_peers_learn_each_other_over_udp_tracker() {
    two_libtorrent_peers_find_each_other("udp", UDP_SEEDER_IP, UDP_LEECHER_IP);
}

/// aria2c downloads a torrent naming only `udp://127.0.0.1:PORT/announce` (seednode's
/// standalone tracker) from `seednode seed --torrent`, which announced itself there over UDP.
/// aria2c speaks to UDP trackers only with DHT on (INTEROP.md); its routing table stays empty, so
/// the tracker is the only way it can find the seed, and its log must show the UDP announce.
#[test]
fn aria2c_downloads_through_udp_tracker_only() {
    require_aria2c();
    let deadline = Deadline::after(TEST_TIMEOUT);
    let dir = tempfile::tempdir().expect("create temp dir");
    let tracker = StandaloneTracker::start(dir.path(), deadline);
    let url = format!("udp://{}/announce", tracker.udp);
    let (tmp, file, torrent) = fixture(&url);
    let info_hash = libtorrent_info_hash(&torrent);
    let seeder = Seeder::start(
        &file,
        &[OsStr::new("--torrent"), torrent.as_os_str()],
        tmp.path(),
        deadline,
    );
    assert_eq!(seeder.info_hash.to_ascii_lowercase(), info_hash);
    // seednode announces on its own loop: wait until the tracker lists it, so that aria2c's
    // first (and, with a 30-minute interval, only) announce finds it.
    let seeder_log = tmp.path().join("seednode.stderr");
    wait_for_scrape(
        tracker.http,
        &info_hash,
        |c| c.complete >= 1,
        "seednode's UDP announce to the standalone tracker",
        &[&seeder_log, &tracker.log],
        deadline,
    );

    let out_dir = tmp.path().join("aria2c");
    fs::create_dir_all(&out_dir).expect("create aria2c dir");
    let log = tmp.path().join("aria2c.log");
    let mut cmd = Command::new("aria2c");
    cmd.args([
        // DHT on: aria2c's only path to udp:// trackers. No bootstrap node is configured.
        "--enable-dht=true",
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
        "--log=-",
        "--log-level=info",
    ])
    .arg(format!(
        "--dht-listen-port={}",
        free_udp_port(ARIA2C_UDP_IP)
    ))
    .arg(format!(
        "--dht-file-path={}",
        tmp.path().join("aria2c-dht.dat").display()
    ))
    .arg(format!("--interface={ARIA2C_UDP_IP}"))
    .arg(format!("--listen-port={}", free_port(ARIA2C_UDP_IP)))
    .arg(format!("--dir={}", out_dir.display()))
    .arg(&torrent);
    run_client("aria2c", &mut cmd, &log, Some(&seeder), deadline);
    assert_same_file(&file, &out_dir.join(FILE_NAME));
    let text = fs::read_to_string(&log).expect("read aria2c log");
    let udp_reply = format!("UDPT received ANNOUNCE reply from {}", tracker.udp);
    assert!(
        text.contains(&udp_reply),
        "aria2c's log has no {udp_reply:?}: did it find the seed some other way?\n{}",
        log_tail(&log)
    );
    seeder.stop();
}

/// A UDP port on `ip` that was free a moment ago.
fn free_udp_port(ip: Ipv4Addr) -> u16 {
    UdpSocket::bind((ip, 0))
        .and_then(|s| s.local_addr())
        .unwrap_or_else(|e| panic!("bind udp {ip}:0: {e}"))
        .port()
}

/// A port on 127.0.0.1 free for both TCP and UDP a moment ago (opentracker's `listen.tcp_udp`).
fn free_tcp_udp_port() -> u16 {
    for _ in 0..50 {
        let tcp = TcpListener::bind((SEEDER_IP, 0)).expect("bind tcp 127.0.0.1:0");
        let port = tcp.local_addr().expect("local_addr").port();
        if UdpSocket::bind((SEEDER_IP, port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both TCP and UDP on {SEEDER_IP}");
}

fn require_opentracker() {
    match Command::new("opentracker")
        .arg("-h")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "`opentracker` is not installed; this test needs it. Install the Debian package \
             `opentracker` (apt-get install -y opentracker), or run scripts/test, which installs \
             everything the tests need."
        ),
        Err(e) => panic!("cannot run `opentracker`: {e}"),
    }
}

/// `seednode seed --torrent` announces to the opentracker its torrent names; a libtorrent client
/// that knows only that tracker (it dials no peer by hand) learns seednode's address from it and
/// downloads the file.
#[test]
fn seednode_announces_to_opentracker_and_libtorrent_downloads() {
    require_opentracker();
    require_libtorrent();
    let deadline = Deadline::after(TEST_TIMEOUT);
    let port = free_tcp_udp_port();
    let ot_addr = SocketAddr::from((SEEDER_IP, port));
    let url = format!("http://{ot_addr}/announce");
    let (tmp, file, torrent) = fixture(&url);
    let info_hash = libtorrent_info_hash(&torrent);

    // Debian's opentracker serves only whitelisted info-hashes (INTEROP.md).
    let whitelist = tmp.path().join("opentracker.whitelist");
    fs::write(&whitelist, format!("{info_hash}\n")).expect("write whitelist");
    let conf = tmp.path().join("opentracker.conf");
    fs::write(
        &conf,
        format!(
            "listen.tcp_udp {ot_addr}\naccess.whitelist {}\n",
            whitelist.display()
        ),
    )
    .expect("write opentracker.conf");
    let ot_log = tmp.path().join("opentracker.log");
    let ot_out = File::create(&ot_log).expect("create opentracker log");
    let mut cmd = Command::new("opentracker");
    cmd.arg("-f")
        .arg(&conf)
        .current_dir(tmp.path())
        .stdout(ot_out.try_clone().expect("dup log"))
        .stderr(ot_out);
    let mut opentracker = ChildGuard::spawn("opentracker", &mut cmd);
    let end = Instant::now() + deadline.remaining("opentracker start").min(STARTUP_TIMEOUT);
    while TcpStream::connect_timeout(&ot_addr, HTTP_TIMEOUT).is_err() {
        if let Some(status) = opentracker.wait_timeout(Duration::ZERO) {
            panic!("opentracker exited ({status})\n{}", log_tail(&ot_log));
        }
        assert!(
            Instant::now() < end,
            "opentracker is not listening on {ot_addr} after {STARTUP_TIMEOUT:?}\n{}",
            log_tail(&ot_log)
        );
        thread::sleep(POLL_INTERVAL);
    }

    let seeder = Seeder::start(
        &file,
        &[OsStr::new("--torrent"), torrent.as_os_str()],
        tmp.path(),
        deadline,
    );
    let seeder_log = tmp.path().join("seednode.stderr");
    wait_for_scrape(
        ot_addr,
        &info_hash,
        |c| c.complete >= 1,
        "seednode's announce to opentracker",
        &[&seeder_log, &ot_log],
        deadline,
    );

    let save_dir = tmp.path().join("lt");
    let log = save_dir.with_extension("lt_announce.log");
    fs::create_dir_all(&save_dir).expect("create save dir");
    let timeout = deadline
        .remaining("lt_announce.py")
        .saturating_sub(Duration::from_secs(3));
    let mut cmd = Command::new(PYTHON);
    cmd.arg(support_file("lt_announce.py"))
        .arg(&torrent)
        .arg("--save-dir")
        .arg(&save_dir)
        .arg("--listen")
        .arg(format!(
            "{LT_OPENTRACKER_IP}:{}",
            free_port(LT_OPENTRACKER_IP)
        ))
        .arg("--timeout")
        .arg(timeout.as_secs().max(1).to_string())
        .args(["--expect-peer", &SEEDER_IP.to_string()])
        .args(["--download", "--exit-when-done"]);
    run_client("lt_announce.py", &mut cmd, &log, Some(&seeder), deadline);
    assert_same_file(&file, &save_dir.join(FILE_NAME));
    seeder.stop();
}
