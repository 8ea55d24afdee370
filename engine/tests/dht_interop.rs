//! The Mainline DHT (BEP 5) against libtorrent on loopback: a libtorrent session that knows only
//! seednode's DHT node finds a torrent seeded by seednode from a bare magnet link (no tracker, no
//! peer address) and downloads it; and seednode finds a peer that libtorrent announced.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{ChildGuard, Deadline, PYTHON, Seeder, TEST_TIMEOUT, free_port, support_file};
use tempfile::TempDir;

/// `seednode seed` arguments that keep the DHT on loopback: no public bootstrap routers, and a
/// routing-table file inside the test's directory.
fn dht_args(dir: &Path) -> Vec<std::ffi::OsString> {
    let state = dir.join("dht_nodes");
    vec![
        "--no-udp".into(),
        "--dht-bootstrap".into(),
        "none".into(),
        "--dht-state".into(),
        state.into(),
    ]
}

/// Runs `lt_dht.py MODE SOURCE` against the seeder's DHT node until it exits or the deadline,
/// returning its output.
fn lt_dht(
    mode: &str,
    source: &OsStr,
    save_dir: &Path,
    seeder: &Seeder,
    listen: &str,
    timeout_secs: u64,
) -> (bool, String) {
    let log = save_dir.with_extension(format!("{mode}.log"));
    let out = fs::File::create(&log).unwrap();
    let mut cmd = Command::new(PYTHON);
    cmd.arg(support_file("lt_dht.py"))
        .arg(mode)
        .arg(source)
        .arg("--save-dir")
        .arg(save_dir)
        .arg("--bootstrap")
        .arg(seeder.listen.to_string())
        .arg("--listen")
        .arg(listen)
        .arg("--timeout")
        .arg(timeout_secs.to_string())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    let mut child = ChildGuard::spawn("lt_dht.py", cmd.stdin(Stdio::null()));
    let status = child.wait_timeout(std::time::Duration::from_secs(timeout_secs + 10));
    (
        status.is_some_and(|s| s.success()),
        fs::read_to_string(&log).unwrap_or_default(),
    )
}

/// `IP:PORT` with a free port on `ip`, for `lt_dht.py --listen`.
fn v4_listen(ip: &str) -> String {
    format!("{ip}:{}", free_port(ip.parse().unwrap()))
}

#[test]
fn libtorrent_finds_seednode_torrent_through_the_dht_alone() {
    common::require_libtorrent();
    let deadline = Deadline::after(TEST_TIMEOUT);
    let tmp = TempDir::new().unwrap();
    let file = tmp.path().join("dht-payload.bin");
    common::write_random_file(&file, 3 * 1024 * 1024 + 777, 11);
    let args = dht_args(tmp.path());
    let args: Vec<&OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let seeder = Seeder::start(&file, &args, tmp.path(), deadline);
    // A bare magnet: the info-hash only, so the DHT is the one way to the seed.
    let magnet = format!("magnet:?xt=urn:btih:{}", seeder.info_hash);
    let dl = tmp.path().join("dl");
    fs::create_dir_all(&dl).unwrap();
    let (ok, log) = lt_dht(
        "download",
        OsStr::new(&magnet),
        &dl,
        &seeder,
        &v4_listen("127.0.0.41"),
        60,
    );
    assert!(
        ok,
        "libtorrent did not download through the DHT\n{log}\n{}",
        seeder.log()
    );
    common::assert_same_file(&file, &dl.join("dht-payload.bin"));
    seeder.stop();
}

#[test]
fn seednode_finds_a_peer_that_libtorrent_announced() {
    common::require_libtorrent();
    let deadline = Deadline::after(TEST_TIMEOUT);
    let tmp = TempDir::new().unwrap();
    let file = tmp.path().join("dht-shared.bin");
    common::write_random_file(&file, 1024 * 1024 + 5, 12);
    let args = dht_args(tmp.path());
    let args: Vec<&OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let seeder = Seeder::start(&file, &args, tmp.path(), deadline);
    // libtorrent seeds the same torrent and announces it to the DHT, whose only node is
    // seednode's; seednode learns the peer from that announce and connects to it.
    let (_, log) = lt_dht(
        "seed",
        seeder.torrent.as_os_str(),
        tmp.path(),
        &seeder,
        &v4_listen("127.0.0.42"),
        15,
    );
    assert!(
        log.contains("announced"),
        "libtorrent never announced\n{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("127.0.0.1:") && l.contains("incoming connection")),
        "seednode never connected to the peer libtorrent announced\n{log}\n{}",
        seeder.log()
    );
    seeder.stop();
}

/// BEP 32 on `::1`: a libtorrent session whose only DHT node is seednode's, reached over IPv6,
/// finds the torrent from a bare magnet link and downloads it over IPv6 (issue 15, "a DHT node
/// on ::1 is found").
#[test]
fn libtorrent_finds_seednode_torrent_through_the_dht_over_ipv6() {
    common::require_libtorrent();
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("SKIPPED: this machine has no IPv6 loopback (::1)");
        return;
    }
    let deadline = Deadline::after(TEST_TIMEOUT);
    let tmp = TempDir::new().unwrap();
    let file = tmp.path().join("dht6-payload.bin");
    common::write_random_file(&file, 2 * 1024 * 1024 + 3, 13);
    let args = dht_args(tmp.path());
    let args: Vec<&OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let free_v6 = || {
        std::net::TcpListener::bind("[::1]:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port()
    };
    let listen = std::net::SocketAddr::new(std::net::Ipv6Addr::LOCALHOST.into(), free_v6());
    let seeder = Seeder::start_at(listen, &file, &args, tmp.path(), deadline);
    let magnet = format!("magnet:?xt=urn:btih:{}", seeder.info_hash);
    let dl = tmp.path().join("dl6");
    fs::create_dir_all(&dl).unwrap();
    let (ok, log) = lt_dht(
        "download",
        OsStr::new(&magnet),
        &dl,
        &seeder,
        &format!("[::1]:{}", free_v6()),
        60,
    );
    assert!(
        ok,
        "libtorrent did not download through the IPv6 DHT\n{log}\n{}",
        seeder.log()
    );
    assert!(
        log.contains(&format!("incoming dht announce: ::1:{}", listen.port())),
        "seednode announced itself over IPv6\n{log}"
    );
    common::assert_same_file(&file, &dl.join("dht6-payload.bin"));
    seeder.stop();
}
