//! `seednode bench` end to end, on 127.0.0.1 only: the sink leecher against `seednode seed`,
//! against libtorrent and against hostile peers; the tracker generator against opentracker and
//! against seednode's own tracker (UDP and HTTP); `bench hash`; `bench self`.
//!
//! Every process started is owned by a guard that kills it; every wait is bounded.

mod common;

use std::fs::{self, File};
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    ChildGuard, Deadline, PYTHON, Seeder, TEST_TIMEOUT, free_port, log_tail, seednode_bin,
};
use serde_json::Value;

/// What a `seednode bench` run left behind.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    secs: f64,
}

/// Runs `seednode bench ARGS` to completion within `timeout` (panics past it).
fn bench(dir: &Path, args: &[&str], timeout: Duration) -> Run {
    let out_path = dir.join("bench.stdout");
    let err_path = dir.join("bench.stderr");
    let mut cmd = Command::new(seednode_bin());
    cmd.arg("bench")
        .args(args)
        .stdout(File::create(&out_path).expect("stdout file"))
        .stderr(File::create(&err_path).expect("stderr file"));
    let started = Instant::now();
    let mut child = ChildGuard::spawn("seednode bench", &mut cmd);
    let Some(status) = child.wait_timeout(timeout) else {
        panic!(
            "seednode bench {args:?} still running after {timeout:?}\n{}",
            log_tail(&err_path)
        );
    };
    let run = Run {
        status,
        stdout: fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: fs::read_to_string(&err_path).unwrap_or_default(),
        secs: started.elapsed().as_secs_f64(),
    };
    assert!(
        !run.stderr.contains("panicked") && !run.stderr.contains("panic:"),
        "seednode bench panicked:\n{}",
        run.stderr
    );
    run
}

/// The `result` of a successful `--json` run.
fn json_result(run: &Run, what: &str) -> Value {
    assert!(
        run.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        run.status,
        run.stdout,
        run.stderr
    );
    let doc: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{what}: stdout is not JSON ({e}):\n{}", run.stdout));
    let machine = &doc["machine"];
    assert!(machine["cores"].as_u64().unwrap_or(0) >= 1, "{doc}");
    assert!(machine["seednode_version"].as_str().is_some(), "{doc}");
    doc["result"].clone()
}

fn num(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("no number {key:?} in {v}"))
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// Checks a leech result: data arrived, pieces were checked, nothing failed.
fn assert_leech_ok(r: &Value) {
    assert!(num(r, "mb_per_s") > 0.0, "{r}");
    assert!(num(r, "bytes") > 0.0, "{r}");
    assert!(num(r, "verified_pieces") > 0.0, "{r}");
    assert_eq!(num(r, "errors"), 0.0, "{r}");
    assert!(num(r, "latency_p50_ms") > 0.0, "{r}");
    for c in r["per_connection"].as_array().expect("per_connection") {
        assert!(c["error"].is_null(), "{c}");
        // With --verify, every complete piece is checked; none may be skipped for the budget.
        assert_eq!(num(c, "unverified_bytes"), 0.0, "{c}");
    }
}

#[test]
fn leech_verifies_what_seednode_seeds() {
    let deadline = Deadline::after(TEST_TIMEOUT);
    let dir = tempdir();
    let data = dir.path().join("payload.bin");
    common::write_random_file(&data, 8 << 20, 1);
    let seeder = Seeder::start(&data, &[], dir.path(), deadline);
    let torrent = seeder.torrent.to_string_lossy().into_owned();
    let peer = seeder.listen.to_string();
    let run = bench(
        dir.path(),
        &[
            "leech",
            "--torrent",
            &torrent,
            "--peer",
            &peer,
            "--verify",
            "--connections",
            "2",
            "--duration",
            "2",
            "--json",
        ],
        Duration::from_secs(30),
    );
    let r = json_result(&run, "bench leech against seednode");
    assert_leech_ok(&r);
    assert_eq!(num(&r, "connections"), 2.0);
    // What arrived is what the seeder says it sent, but for the requests still in flight when
    // the run ended (at most --pipeline 16 KiB blocks per connection).
    let received: f64 = r["per_connection"]
        .as_array()
        .expect("per_connection")
        .iter()
        .map(|c| num(c, "bytes") + num(c, "warmup_bytes"))
        .sum();
    thread::sleep(Duration::from_millis(300));
    let sent = uploaded_bytes(seeder.listen) as f64;
    let in_flight = 2.0 * 128.0 * 16384.0;
    assert!(
        received <= sent && sent <= received + in_flight,
        "received {received} bytes, the seeder reports {sent} sent"
    );
    // The human table has the same figures.
    let run = bench(
        dir.path(),
        &[
            "leech",
            "--torrent",
            &torrent,
            "--peer",
            &peer,
            "--duration",
            "1",
        ],
        Duration::from_secs(30),
    );
    assert!(run.status.success(), "{}", run.stderr);
    for label in [
        "throughput",
        "per connection median",
        "latency p99",
        "errors",
    ] {
        assert!(
            run.stdout.contains(label),
            "no {label:?} row:\n{}",
            run.stdout
        );
    }
    seeder.stop();
}

/// `seednode_uploaded_bytes_total` from the node's `/metrics`.
fn uploaded_bytes(addr: SocketAddr) -> u64 {
    let mut s = TcpStream::connect(addr).expect("connect to /metrics");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("request /metrics");
    let mut body = String::new();
    s.read_to_string(&mut body).expect("read /metrics");
    body.lines()
        .find_map(|l| {
            l.strip_prefix("seednode_uploaded_bytes_total ")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no seednode_uploaded_bytes_total in /metrics:\n{body}"))
}

#[test]
fn leech_verifies_what_libtorrent_seeds() {
    let ok = Command::new(PYTHON)
        .args(["-c", "import libtorrent"])
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!(
            "SKIPPED: {PYTHON} cannot import libtorrent (apt-get install python3-libtorrent)"
        );
        return;
    }
    let deadline = Deadline::after(TEST_TIMEOUT);
    let dir = tempdir();
    let data = dir.path().join("payload.bin");
    common::write_random_file(&data, 8 << 20, 2);
    let torrent = dir.path().join("payload.torrent");
    let created = Command::new(seednode_bin())
        .arg("create")
        .arg(&data)
        .arg("-o")
        .arg(&torrent)
        .output()
        .expect("seednode create");
    assert!(created.status.success(), "{created:?}");
    let port = free_port(Ipv4Addr::LOCALHOST);
    let log = dir.path().join("lt_seed.log");
    let mut cmd = Command::new(PYTHON);
    cmd.arg(common::support_file("lt_seed.py"))
        .arg(&data)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--torrent")
        .arg(&torrent)
        .args(["--timeout", "120"])
        .stdout(File::create(dir.path().join("lt_seed.out")).expect("log"))
        .stderr(File::create(&log).expect("log"));
    let _lt = ChildGuard::spawn("lt_seed.py", &mut cmd);
    wait_tcp(SocketAddr::from(([127, 0, 0, 1], port)), deadline, &log);
    // libtorrent checks the data before it serves: give it a warm-up.
    let run = bench(
        dir.path(),
        &[
            "leech",
            "--torrent",
            &torrent.to_string_lossy(),
            "--peer",
            &format!("127.0.0.1:{port}"),
            "--verify",
            "--warmup",
            "1",
            "--duration",
            "3",
            "--json",
        ],
        Duration::from_secs(30),
    );
    let r = json_result(&run, "bench leech against libtorrent");
    assert_leech_ok(&r);
    // lt_seed.py's user agent, sent in its BEP 10 handshake: the data came from libtorrent.
    let client = r["per_connection"][0]["client"]
        .as_str()
        .unwrap_or_default();
    assert!(client.starts_with("lt_seed/"), "{r}");
}

/// Waits until something accepts TCP connections on `addr`.
fn wait_tcp(addr: SocketAddr, deadline: Deadline, log: &Path) {
    let end = Instant::now()
        + deadline
            .remaining("waiting for a listener")
            .min(Duration::from_secs(60));
    while Instant::now() < end {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing listens on {addr}\n{}", log_tail(log));
}

/// Waits until a UDP tracker answers a BEP 15 connect on `addr`.
fn wait_udp_tracker(addr: SocketAddr, deadline: Deadline, log: &Path) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut connect = Vec::new();
    connect.extend_from_slice(&0x0417_2710_1980u64.to_be_bytes());
    connect.extend_from_slice(&0u32.to_be_bytes());
    connect.extend_from_slice(&7u32.to_be_bytes());
    let end = Instant::now()
        + deadline
            .remaining("waiting for a tracker")
            .min(Duration::from_secs(60));
    let mut buf = [0u8; 64];
    while Instant::now() < end {
        let _ = socket.send_to(&connect, addr);
        if let Ok((n, _)) = socket.recv_from(&mut buf)
            && n >= 16
        {
            return;
        }
    }
    panic!("no UDP tracker answers on {addr}\n{}", log_tail(log));
}

/// Checks a tracker result: responses of each kind, no error of any kind.
fn assert_tracker_ok(r: &Value, udp: bool) {
    assert!(num(r, "responses_per_s") > 0.0, "{r}");
    assert!(num(r, "announces") > 0.0, "{r}");
    assert!(num(r, "scrapes") > 0.0, "{r}");
    if udp {
        assert!(num(r, "connects") > 0.0, "{r}");
    }
    assert_eq!(num(r, "error_responses"), 0.0, "{r}");
    assert_eq!(num(r, "malformed"), 0.0, "{r}");
    assert_eq!(num(r, "io_errors"), 0.0, "{r}");
    // A request lost on loopback means a stall of a second on this shared machine: tolerated
    // below 1 % of the responses, reported in the JSON.
    let responses = num(r, "connects") + num(r, "announces") + num(r, "scrapes");
    assert!(num(r, "timeouts") <= responses / 100.0, "{r}");
}

#[test]
fn tracker_load_against_opentracker() {
    let deadline = Deadline::after(TEST_TIMEOUT);
    if Command::new("opentracker")
        .arg("-h")
        .stdin(Stdio::null())
        .output()
        .is_err()
    {
        panic!("opentracker is not installed: apt-get install -y opentracker (scripts/test does)");
    }
    let dir = tempdir();
    let whitelist = dir.path().join("whitelist");
    let run = bench(
        dir.path(),
        &[
            "tracker",
            "--info-hashes",
            "200",
            "--write-info-hashes",
            &whitelist.to_string_lossy(),
        ],
        Duration::from_secs(30),
    );
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(
        fs::read_to_string(&whitelist)
            .expect("whitelist")
            .lines()
            .count(),
        200
    );
    let port = free_port(Ipv4Addr::LOCALHOST);
    let config = dir.path().join("opentracker.conf");
    fs::write(
        &config,
        format!(
            "listen.tcp 127.0.0.1:{port}\nlisten.udp 127.0.0.1:{port}\naccess.whitelist {}\n",
            whitelist.display()
        ),
    )
    .expect("config");
    let log = dir.path().join("opentracker.log");
    let mut cmd = Command::new("opentracker");
    cmd.arg("-f")
        .arg(&config)
        .stdout(File::create(&log).expect("log"))
        .stderr(File::create(dir.path().join("opentracker.err")).expect("log"));
    let _ot = ChildGuard::spawn("opentracker", &mut cmd);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_udp_tracker(addr, deadline, &log);
    let run = bench(
        dir.path(),
        &[
            "tracker",
            "--udp",
            &addr.to_string(),
            "--info-hash-file",
            &whitelist.to_string_lossy(),
            "--peers",
            "5000",
            "--duration",
            "2",
            "--json",
        ],
        Duration::from_secs(30),
    );
    let r = json_result(&run, "bench tracker against opentracker");
    assert_tracker_ok(&r, true);
    // Whitelisted swarms are real: announces return the peers announced before them.
    assert!(num(&r, "peers_per_announce") > 0.0, "{r}");
}

#[test]
fn tracker_load_against_seednode_tracker_udp_and_http() {
    let deadline = Deadline::after(TEST_TIMEOUT);
    let dir = tempdir();
    let port = free_port(Ipv4Addr::LOCALHOST);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let log = dir.path().join("tracker.log");
    let mut cmd = Command::new(seednode_bin());
    cmd.arg("tracker")
        .arg("--listen")
        .arg(addr.to_string())
        .stdout(Stdio::null())
        .stderr(File::create(&log).expect("log"));
    let _tracker = ChildGuard::spawn("seednode tracker", &mut cmd);
    wait_udp_tracker(addr, deadline, &log);
    let run = bench(
        dir.path(),
        &[
            "tracker",
            "--udp",
            &addr.to_string(),
            "--info-hashes",
            "1000",
            "--peers",
            "5000",
            "--duration",
            "2",
            "--json",
        ],
        Duration::from_secs(30),
    );
    let r = json_result(&run, "bench tracker --udp against seednode");
    assert_tracker_ok(&r, true);
    let url = format!("http://{addr}/announce");
    let run = bench(
        dir.path(),
        &[
            "tracker",
            "--http",
            &url,
            "--info-hashes",
            "1000",
            "--peers",
            "5000",
            "--duration",
            "2",
            "--json",
        ],
        Duration::from_secs(30),
    );
    let r = json_result(&run, "bench tracker --http against seednode");
    assert_tracker_ok(&r, false);
    assert!(num(&r, "peers_per_announce") > 0.0, "{r}");
}

#[test]
fn hash_ratio_is_sane() {
    let dir = tempdir();
    let data = dir.path().join("payload.bin");
    common::write_random_file(&data, 16 << 20, 3);
    let run = bench(
        dir.path(),
        &["hash", &data.to_string_lossy(), "--json"],
        Duration::from_secs(60),
    );
    let r = json_result(&run, "bench hash");
    let ratio = num(&r, "ratio");
    assert!(ratio > 0.0 && ratio <= 1.5, "ratio {ratio}: {r}");
    assert!(
        num(&r, "create_gb_per_s") > 0.0 && num(&r, "sha1_gb_per_s") > 0.0,
        "{r}"
    );
    assert_eq!(num(&r, "bytes"), f64::from(16u32 << 20));
}

#[test]
fn self_check_prints_every_row() {
    let dir = tempdir();
    // The node under test started through --node-command (how an emulator runs it; here the
    // program is the same binary, given by path).
    let node_command = seednode_bin().display().to_string();
    let run = bench(
        dir.path(),
        &[
            "self",
            "--duration",
            "2",
            "--size",
            "16M",
            "--dir",
            &dir.path().to_string_lossy(),
            "--node-command",
            &node_command,
        ],
        Duration::from_secs(90),
    );
    assert!(run.status.success(), "{}\n{}", run.stdout, run.stderr);
    for label in [
        "hashing (create)",
        "raw SHA-1",
        "seeding",
        "seeding CPU",
        "UDP tracker",
        "HTTP tracker",
    ] {
        let line = run
            .stdout
            .lines()
            .find(|l| l.starts_with(label) && l[label.len()..].starts_with("  "))
            .unwrap_or_else(|| panic!("no {label:?} row:\n{}", run.stdout));
        let value: f64 = line[label.len()..]
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no number in {line:?}"));
        assert!(value > 0.0, "{label} is {value}:\n{}", run.stdout);
    }
    assert!(run.stdout.contains("errors"), "{}", run.stdout);
    // The temporary file and the node are gone.
    let left: Vec<_> = fs::read_dir(dir.path())
        .expect("dir")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("seednode-bench-")
        })
        .collect();
    assert!(left.is_empty(), "bench self left {left:?}");
}

/// What a hostile peer answers after reading our handshake.
#[derive(Clone, Copy)]
enum Hostile {
    Garbage,
    WrongInfoHash,
    HugeLengthPrefix,
    /// One byte of a valid handshake every 300 ms: each read succeeds, the whole never comes.
    Trickle,
}

/// A one-connection peer on 127.0.0.1 that misbehaves as `how`; returns its address.
fn hostile_peer(how: Hostile, info_hash: [u8; 20]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let mut hs = [0u8; 68];
        let _ = s.read_exact(&mut hs);
        let mut reply = Vec::new();
        match how {
            Hostile::Trickle => {
                for _ in 0..40 {
                    if s.write_all(&[19]).is_err() {
                        return;
                    }
                    thread::sleep(Duration::from_millis(300));
                }
                return;
            }
            Hostile::Garbage => reply.extend_from_slice(&[0xAB; 68]),
            Hostile::WrongInfoHash | Hostile::HugeLengthPrefix => {
                reply.push(19);
                reply.extend_from_slice(b"BitTorrent protocol");
                reply.extend_from_slice(&[0; 8]);
                let ih = if matches!(how, Hostile::WrongInfoHash) {
                    [0x55; 20]
                } else {
                    info_hash
                };
                reply.extend_from_slice(&ih);
                reply.extend_from_slice(b"-XX0000-hostilepeer!");
                if matches!(how, Hostile::HugeLengthPrefix) {
                    reply.extend_from_slice(&0xFFFF_FFF0u32.to_be_bytes());
                    reply.extend_from_slice(&[7; 1024]);
                }
            }
        }
        let _ = s.write_all(&reply);
        // Stay open (silent) so that only the bytes sent can end the leecher's run.
        thread::sleep(Duration::from_secs(10));
    });
    addr
}

#[test]
fn leech_ends_cleanly_against_hostile_peers() {
    let dir = tempdir();
    let data = dir.path().join("payload.bin");
    common::write_random_file(&data, 1 << 20, 4);
    let torrent = dir.path().join("payload.torrent");
    let out = Command::new(seednode_bin())
        .arg("create")
        .arg(&data)
        .arg("-o")
        .arg(&torrent)
        .output()
        .expect("seednode create");
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let hex = stdout
        .lines()
        .find_map(|l| l.strip_prefix("info-hash: "))
        .expect("info-hash line")
        .trim()
        .to_owned();
    let mut info_hash = [0u8; 20];
    for (i, b) in info_hash.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex");
    }
    let duration = 3.0;
    for (how, want) in [
        (Hostile::Garbage, "not BitTorrent"),
        (Hostile::WrongInfoHash, "answered for info-hash 5555"),
        (Hostile::HugeLengthPrefix, "over the limit"),
        (Hostile::Trickle, "no handshake"),
    ] {
        let peer = hostile_peer(how, info_hash);
        let run = bench(
            dir.path(),
            &[
                "leech",
                "--torrent",
                &torrent.to_string_lossy(),
                "--peer",
                &peer.to_string(),
                "--duration",
                "3",
            ],
            Duration::from_secs(20),
        );
        assert!(!run.status.success(), "{want}: succeeded?\n{}", run.stdout);
        assert!(
            run.stderr.contains(want),
            "expected {want:?} in:\n{}",
            run.stderr
        );
        assert!(run.secs < duration + 3.0, "{want}: took {:.1} s", run.secs);
    }
    // A peer that accepts and says nothing: the run ends with its duration.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent = listener.local_addr().expect("addr");
    let run = bench(
        dir.path(),
        &[
            "leech",
            "--torrent",
            &torrent.to_string_lossy(),
            "--peer",
            &silent.to_string(),
            "--duration",
            "1",
        ],
        Duration::from_secs(20),
    );
    assert!(!run.status.success());
    assert!(run.stderr.contains("no handshake"), "{}", run.stderr);
    assert!(run.secs < 5.0, "took {:.1} s", run.secs);
    drop(listener);
}

#[test]
fn arguments_are_checked_with_clear_errors() {
    let dir = tempdir();
    for (args, want) in [
        (
            &[
                "leech",
                "--torrent",
                "/nonexistent.torrent",
                "--peer",
                "127.0.0.1:1",
            ][..],
            "nonexistent",
        ),
        (
            &[
                "leech",
                "--torrent",
                "x",
                "--peer",
                "127.0.0.1:1",
                "--connections",
                "0",
            ][..],
            "--connections",
        ),
        (
            &[
                "leech",
                "--torrent",
                "x",
                "--peer",
                "127.0.0.1:1",
                "--duration",
                "0",
            ][..],
            "seconds",
        ),
        (&["tracker", "--info-hashes", "10"][..], "--udp"),
        (
            &["tracker", "--udp", "127.0.0.1:1", "--http", "http://x/"][..],
            "cannot be used",
        ),
        (
            &["tracker", "--http", "https://x/announce", "--duration", "1"][..],
            "http://",
        ),
        (
            &["tracker", "--udp", "127.0.0.1:1", "--mix", "0:0:0"][..],
            "weight",
        ),
        (&["hash", "/nonexistent"][..], "nonexistent"),
        (&["self", "--size", "1K"][..], "1M to 64G"),
    ] {
        let run = bench(dir.path(), args, Duration::from_secs(20));
        assert!(!run.status.success(), "{args:?} succeeded");
        assert!(
            run.stderr.contains(want),
            "{args:?}: expected {want:?} in:\n{}",
            run.stderr
        );
    }
}
