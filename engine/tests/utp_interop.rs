//! The real `seednode` binary seeding over uTP (BEP 29) to python3-libtorrent set to uTP only
//! (`enable_outgoing_tcp`/`enable_incoming_tcp` off): the download must be byte-exact, and
//! `/metrics` must show the peer on uTP while it downloads.
//!
//! - libtorrent dials the node over uTP (plain BitTorrent handshake, and MSE with RC4);
//! - the node dials libtorrent over uTP (`--prefer-utp`): libtorrent accepts uTP only and
//!   connects out to nobody, and the node learns its address from an external tracker
//!   (`seednode tracker`) that libtorrent announced to first.
//!
//! Each test runs one `seednode seed` on 127.0.0.1:<free port> (the UDP port is the same number)
//! and one `lt_download.py` on its own 127.0.0.x, within [`TEST_TIMEOUT`]. Needs python3-libtorrent
//! and mktorrent (scripts/test installs them); a missing one fails the test.

mod common;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{
    ChildGuard, Deadline, LtSource, PYTHON, SEEDER_IP, Seeder, TEST_TIMEOUT, assert_same_file,
    free_port, lt_download_with, mktorrent, require_libtorrent, require_mktorrent, run_client,
    seednode_bin, support_file, write_random_file,
};

/// 64 MiB plus an odd tail (issue 15): 257 pieces of 256 KiB (the last one short).
const FILE_LEN: u64 = 64 * 1024 * 1024 + 4_321;

const FILE_NAME: &str = "utp-64MiB.bin";

/// One client address per test, so no test sees another's peer.
const LT_PLAIN_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 41);
const LT_RC4_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 42);
const LT_DIALLED_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 43);
const LT_TCP_ONLY_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 44);

/// How long libtorrent may take to announce to the tracker after it started.
const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the metrics sampler asks the seeder.
const SAMPLE_INTERVAL: Duration = Duration::from_millis(200);

/// Reads one unlabelled value from the seeder's `/metrics`; `None` when absent or unreachable.
fn metric(addr: SocketAddr, name: &str) -> Option<u64> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Samples `seednode_utp_peers` until stopped; keeps the highest value seen.
struct PeakSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PeakSampler {
    fn start(addr: SocketAddr, name: &'static str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let (s, p) = (Arc::clone(&stop), Arc::clone(&peak));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Some(v) = metric(addr, name) {
                    p.fetch_max(v, Ordering::Relaxed);
                }
                std::thread::sleep(SAMPLE_INTERVAL);
            }
        });
        Self {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

/// Seeds a fresh file, lets libtorrent (uTP only, `encryption` as `lt_download.py` takes it)
/// download it, and checks the bytes and the uTP metrics.
fn download_over_utp(client_ip: Ipv4Addr, encryption: &str) {
    require_libtorrent();
    let deadline = Deadline::after(TEST_TIMEOUT);
    let tmp = tempfile::tempdir().expect("create temp dir");
    let file = tmp.path().join("seed").join(FILE_NAME);
    write_random_file(&file, FILE_LEN, 29);
    let seeder = Seeder::start(
        &file,
        &[
            OsStr::new("--no-dht"),
            OsStr::new("--piece-length"),
            OsStr::new("256K"),
        ],
        tmp.path(),
        deadline,
    );
    let sampler = PeakSampler::start(seeder.listen, "seednode_utp_peers");
    let dl = tmp.path().join("libtorrent");
    let started = Instant::now();
    lt_download_with(
        LtSource::Torrent(&seeder.torrent),
        &dl,
        client_ip,
        &seeder,
        deadline,
        &["--transport", "utp", "--encryption", encryption],
    );
    let secs = started.elapsed().as_secs_f64();
    let peak_peers = sampler.finish();
    assert_same_file(&file, &dl.join(FILE_NAME));
    eprintln!(
        "uTP download ({encryption}): {FILE_LEN} bytes in {secs:.2} s, {:.1} MB/s (process start included)",
        FILE_LEN as f64 / secs / 1e6
    );
    let accepted = metric(seeder.listen, "seednode_utp_accepted_total");
    assert!(
        accepted.is_some_and(|n| n >= 1),
        "no uTP connection accepted per /metrics ({accepted:?})\n{}",
        seeder.log()
    );
    assert!(
        peak_peers >= 1,
        "/metrics never showed a uTP peer while libtorrent downloaded\n{}",
        seeder.log()
    );
    let uploaded = metric(seeder.listen, "seednode_uploaded_bytes_total").unwrap_or(0);
    assert!(
        uploaded >= FILE_LEN,
        "uploaded {uploaded} bytes per /metrics, expected at least {FILE_LEN}"
    );
    seeder.stop();
}

#[test]
fn libtorrent_utp_only_downloads_byte_exact() {
    download_over_utp(LT_PLAIN_IP, "default");
}

#[test]
fn libtorrent_utp_only_with_rc4_downloads_byte_exact() {
    download_over_utp(LT_RC4_IP, "rc4");
}

/// The node dials libtorrent over uTP: libtorrent (uTP incoming only, no outgoing connections)
/// announces to an external tracker, the node (`--prefer-utp`) learns it from its own announce
/// there and connects out; the download can only happen over that connection.
#[test]
fn node_dials_libtorrent_over_utp() {
    node_dials_libtorrent(LT_DIALLED_IP, "utp-incoming");
}

/// `--prefer-utp` against a peer without uTP: the uTP dial fails and the node dials TCP.
#[test]
fn node_prefers_utp_and_falls_back_to_tcp() {
    node_dials_libtorrent(LT_TCP_ONLY_IP, "tcp-incoming");
}

/// Seeds with `--prefer-utp` to a libtorrent that accepts only `transport` (`lt_download.py`'s
/// `utp-incoming` or `tcp-incoming`) and dials nobody; checks the bytes and which transport the
/// node's dial ended on.
fn node_dials_libtorrent(client_ip: Ipv4Addr, transport: &str) {
    require_libtorrent();
    require_mktorrent();
    let deadline = Deadline::after(TEST_TIMEOUT);
    let tmp = tempfile::tempdir().expect("create temp dir");
    let file = tmp.path().join("seed").join(FILE_NAME);
    write_random_file(&file, FILE_LEN, 43);

    let tracker_addr = SocketAddr::from((SEEDER_IP, free_port(SEEDER_IP)));
    let tracker_log = std::fs::File::create(tmp.path().join("tracker.log")).expect("tracker log");
    let _tracker = ChildGuard::spawn(
        "seednode tracker",
        std::process::Command::new(seednode_bin())
            .arg("tracker")
            .arg("--listen")
            .arg(tracker_addr.to_string())
            .arg("--udp")
            .arg(format!("{SEEDER_IP}:0"))
            .stdout(std::process::Stdio::null())
            .stderr(tracker_log),
    );
    let torrent = tmp.path().join("dialled.torrent");
    mktorrent(
        &file,
        &torrent,
        &format!("http://{tracker_addr}/announce"),
        18,
    );

    // libtorrent first, so its announce is in the tracker when the node announces.
    let dl = tmp.path().join("libtorrent");
    std::fs::create_dir_all(&dl).expect("create download dir");
    let lt_log = tmp.path().join("lt_download.log");
    let timeout = deadline
        .remaining("lt_download.py")
        .saturating_sub(Duration::from_secs(3));
    let mut cmd = std::process::Command::new(PYTHON);
    cmd.arg(support_file("lt_download.py"))
        .arg(&torrent)
        .arg("--save-dir")
        .arg(&dl)
        .arg("--listen")
        .arg(format!("{client_ip}:{}", free_port(client_ip)))
        .arg("--timeout")
        .arg(timeout.as_secs().max(1).to_string())
        .arg("--transport")
        .arg(transport);
    let log = lt_log.clone();
    let client = std::thread::spawn(move || {
        run_client("lt_download.py", &mut cmd, &log, None, deadline);
    });
    let announced_by = Instant::now() + ANNOUNCE_TIMEOUT.min(deadline.remaining("announce"));
    while metric(tracker_addr, "seednode_tracker_peers").unwrap_or(0) == 0 {
        assert!(
            Instant::now() < announced_by,
            "libtorrent did not announce to the tracker\n{}",
            common::log_tail(&lt_log)
        );
        std::thread::sleep(SAMPLE_INTERVAL);
    }

    let seeder = Seeder::start(
        &file,
        &[
            OsStr::new("--no-dht"),
            OsStr::new("--prefer-utp"),
            OsStr::new("--torrent"),
            torrent.as_os_str(),
        ],
        tmp.path(),
        deadline,
    );
    let started = Instant::now();
    if client.join().is_err() {
        panic!("lt_download.py failed (see above)\n{}", seeder.log());
    }
    let secs = started.elapsed().as_secs_f64();
    assert_same_file(&file, &dl.join(FILE_NAME));
    eprintln!(
        "{transport} download, node dialling: {FILE_LEN} bytes in {secs:.2} s from the seeder's start, {:.1} MB/s",
        FILE_LEN as f64 / secs / 1e6
    );
    // uTP is tried first either way.
    let dialed = metric(seeder.listen, "seednode_utp_dialed_total");
    assert!(
        dialed.is_some_and(|n| n >= 1),
        "no uTP dial per /metrics ({dialed:?})\n{}",
        seeder.log()
    );
    let dials = metric(seeder.listen, "seednode_dials_total").unwrap_or(0);
    if transport == "tcp-incoming" {
        assert!(
            dials >= 2,
            "no TCP dial after the uTP one ({dials} dials)\n{}",
            seeder.log()
        );
    }
    assert_eq!(
        metric(seeder.listen, "seednode_utp_accepted_total"),
        Some(0),
        "libtorrent was not to connect out"
    );
    seeder.stop();
}
