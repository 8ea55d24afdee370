//! Transmission 3.00 (`transmission-cli`, the Raspberry Pi OS default) downloads from the node
//! over uTP, given only the node's `.torrent` (issue 15): it learns the node's address from the
//! built-in tracker and dials it over uTP (TCP as well as uTP are on in Transmission; it tries uTP).
//!
//! Transmission refuses to dial 127.0.0.0/8 (INTEROP.md), so the test runs in a network namespace
//! of its own (`unshare -n`, root only) whose loopback carries public-looking addresses
//! (11.0.0.0/8, unrouted: nothing leaves the namespace). Where a namespace cannot be made, the
//! test says so and skips. Bounded by [`TEST_TIMEOUT`]; every process is killed on every path.

mod common;

use std::ffi::OsStr;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    ChildGuard, Deadline, Seeder, TEST_TIMEOUT, assert_same_file, free_port, log_tail,
    write_random_file,
};

/// Set in the re-executed test process that runs inside the namespace.
const INNER_ENV: &str = "SEEDNODE_TEST_IN_NETNS";

/// The node's address and Transmission's, both "public" inside the namespace.
const NODE_IP: Ipv4Addr = Ipv4Addr::new(11, 0, 0, 1);
const TRANSMISSION_IP: Ipv4Addr = Ipv4Addr::new(11, 0, 0, 2);

/// 16 MiB plus an odd tail: Transmission seeds and leeches at 8-15 MB/s on loopback.
const FILE_LEN: u64 = 16 * 1024 * 1024 + 777;
const FILE_NAME: &str = "transmission-utp.bin";

/// How often the test looks at the download.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Runs `test` of this file inside a new network namespace; returns true in the inner process
/// (run the scenario), false in the outer one (the verdict is the inner run's exit status, or a
/// skip when namespaces are not allowed here).
fn in_netns(test: &str) -> bool {
    if std::env::var_os(INNER_ENV).is_some() {
        return true;
    }
    let probe = Command::new("unshare").args(["-n", "true"]).status();
    if !probe.is_ok_and(|s| s.success()) {
        eprintln!("SKIP {test}: cannot create a network namespace here (needs root and unshare)");
        return false;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let status = Command::new("unshare")
        .arg("-n")
        .arg("--")
        .arg(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(INNER_ENV, "1")
        .status()
        .expect("run the test inside unshare -n");
    assert!(status.success(), "{test} failed inside its namespace");
    false
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("run ip");
    assert!(status.success(), "ip {args:?} failed");
}

#[test]
fn transmission_downloads_over_utp_from_the_nodes_torrent() {
    if !in_netns("transmission_downloads_over_utp_from_the_nodes_torrent") {
        return;
    }
    assert!(
        Command::new("transmission-cli")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok(),
        "transmission-cli is missing: apt-get install transmission-cli"
    );
    let deadline = Deadline::after(TEST_TIMEOUT);
    ip(&["link", "set", "lo", "up"]);
    for a in [NODE_IP, TRANSMISSION_IP] {
        ip(&["addr", "add", &format!("{a}/32"), "dev", "lo"]);
    }
    let tmp = tempfile::tempdir().expect("create temp dir");
    let file = tmp.path().join("seed").join(FILE_NAME);
    write_random_file(&file, FILE_LEN, 15);
    let seeder = Seeder::start_at(
        SocketAddr::from((NODE_IP, free_port(NODE_IP))),
        &file,
        &[OsStr::new("--no-dht")],
        tmp.path(),
        deadline,
    );

    // Transmission on its own address, DHT, LPD, PEX and port mapping off; uTP on (its default).
    let config = tmp.path().join("transmission");
    std::fs::create_dir_all(&config).expect("transmission config dir");
    std::fs::write(
        config.join("settings.json"),
        format!(
            r#"{{"bind-address-ipv4": "{TRANSMISSION_IP}", "dht-enabled": false,
                "lpd-enabled": false, "pex-enabled": false, "port-forwarding-enabled": false,
                "utp-enabled": true, "peer-port": {}}}"#,
            free_port(TRANSMISSION_IP)
        ),
    )
    .expect("write settings.json");
    let dl = tmp.path().join("dl");
    std::fs::create_dir_all(&dl).expect("download dir");
    let log = tmp.path().join("transmission.log");
    let out = std::fs::File::create(&log).expect("transmission log");
    let err = out.try_clone().expect("dup log");
    let started = Instant::now();
    let _transmission = ChildGuard::spawn(
        "transmission-cli",
        Command::new("transmission-cli")
            .arg("-g")
            .arg(&config)
            .arg("-w")
            .arg(&dl)
            .arg(&seeder.torrent)
            .stdout(out)
            .stderr(err),
    );

    // transmission-cli seeds forever once done: wait for the whole file, then compare it.
    let got = dl.join(FILE_NAME);
    // Leave the seeder time to stop within the test's budget.
    let end = Instant::now()
        + deadline
            .remaining("transmission")
            .saturating_sub(Duration::from_secs(20));
    // Transmission writes blocks as they come (and seeds forever once done): wait until the
    // file equals the original. (`/metrics` wants a token off loopback, so the transport is
    // read from the seeder's log.)
    let want = std::fs::read(&file).expect("read the original");
    while std::fs::read(&got).ok().as_ref() != Some(&want) {
        assert!(
            Instant::now() < end,
            "transmission did not finish: {} has {:?} bytes\n{}\n{}",
            got.display(),
            std::fs::metadata(&got).map(|m| m.len()).ok(),
            log_tail(&log),
            seeder.log()
        );
        std::thread::sleep(POLL_INTERVAL);
    }
    let secs = started.elapsed().as_secs_f64();
    assert_same_file(&file, &got);
    eprintln!(
        "transmission over uTP: {FILE_LEN} bytes in {secs:.1} s from its start (tracker, its 10 s interest tick included)"
    );
    let log_text = seeder.log();
    assert!(
        log_text
            .lines()
            .any(|l| l.contains("peer connected") && l.contains("utp=true")),
        "Transmission's peer connection was not over uTP\n{log_text}"
    );
    seeder.stop();
}
