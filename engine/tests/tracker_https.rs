//! `https://` announces against a real TLS tracker on loopback: Python's `http.server` wrapped
//! with `ssl` (`engine/tests/support/https_tracker.py`), with a certificate for 127.0.0.1 signed
//! by a throw-away CA that `openssl` makes for each test.
//!
//! - Without `--tracker-ca`, the tracker's certificate is refused: the node logs `announce
//!   failed` with a certificate error and the tracker never sees an announce.
//! - With `--tracker-ca CA.pem`, the announce (`event=started`) reaches the tracker over TLS, the
//!   node dials the peer the tracker's reply names (a loopback tracker may name a loopback peer)
//!   with a BitTorrent handshake for the torrent, and at shutdown sends `event=stopped`.
//! - A `--tracker-ca` file without a certificate stops the node at start with a clear error.
//!
//! Each test stays within [`TEST_TIMEOUT`], every process it starts is killed when it ends or
//! fails ([`ChildGuard`]; the tracker also exits by itself after its own timeout). Needs
//! `openssl` and Debian's `/usr/bin/python3` (scripts/test installs both).

mod common;

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{ErrorKind, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    ChildGuard, Deadline, PYTHON, SEEDER_IP, Seeder, TEST_TIMEOUT, log_tail, seednode_bin,
    support_file, write_random_file,
};
use tempfile::TempDir;

/// The peer the HTTPS tracker names in its reply: a plain listener of the test, on an address
/// no other test file uses (127.0.0.9x).
const FAKE_PEER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 91);
/// How long the tracker script may take to listen.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the node may take to announce (or to fail to) after it started.
const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a waiting loop polls a log file or a listener.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// The seeded file: a few pieces.
const FILE_LEN: u64 = 300_000;
/// The BitTorrent handshake (BEP 3): `\x13BitTorrent protocol`, 8 reserved bytes, the info-hash
/// (bytes 28..48), the peer ID.
const HANDSHAKE_PREFIX: &[u8] = b"\x13BitTorrent protocol";

fn require_openssl() {
    match Command::new("openssl")
        .arg("version")
        .stdin(Stdio::null())
        .output()
    {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "`openssl` is not installed; this test needs it to make a test CA. Install the Debian \
             package `openssl`, or run scripts/test, which installs everything the tests need."
        ),
        Err(e) => panic!("cannot run `openssl`: {e}"),
    }
}

/// Runs `openssl ARGS` in `dir`; panics with its output if it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test PKI in `dir`: `ca.pem` (a CA, P-256) and `server.pem` / `server.key`, a server
/// certificate for `IP:127.0.0.1` signed by it, valid two days.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn make_pki(dir: &Path) -> Pki {
    require_openssl();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    let mut args = vec!["req", "-x509"];
    args.extend(ec);
    args.extend([
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=seednode test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &args);
    let mut args = vec!["req"];
    args.extend(ec);
    args.extend([
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(dir, &args);
    fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write server.ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
    Pki {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    }
}

/// A running `https_tracker.py` and the address it printed.
struct HttpsTracker {
    _child: ChildGuard,
    addr: SocketAddr,
    out: PathBuf,
}

impl HttpsTracker {
    /// Starts the tracker on 127.0.0.1 (a free port), naming `peers` in every reply and
    /// answering each `(path, url)` of `redirects` with a redirect.
    fn start(
        dir: &Path,
        pki: &Pki,
        peers: &[SocketAddr],
        redirects: &[(&str, &str)],
        deadline: Deadline,
    ) -> Self {
        let out = dir.join("https_tracker.out");
        let err = dir.join("https_tracker.err");
        let mut cmd = Command::new(PYTHON);
        cmd.arg(support_file("https_tracker.py"))
            .arg("--cert")
            .arg(&pki.cert)
            .arg("--key")
            .arg(&pki.key)
            .args(["--listen", "127.0.0.1:0"])
            .arg("--timeout")
            .arg(
                deadline
                    .remaining("tracker start")
                    .as_secs()
                    .max(1)
                    .to_string(),
            )
            .stdout(File::create(&out).expect("create tracker stdout"))
            .stderr(File::create(&err).expect("create tracker stderr"));
        for p in peers {
            cmd.arg("--peer").arg(p.to_string());
        }
        for (path, url) in redirects {
            cmd.arg("--redirect").arg(format!("{path}={url}"));
        }
        let mut child = ChildGuard::spawn("https_tracker.py", &mut cmd);
        let end = Instant::now() + deadline.remaining("tracker start").min(STARTUP_TIMEOUT);
        loop {
            let text = fs::read_to_string(&out).unwrap_or_default();
            if let Some(addr) = text
                .lines()
                .find_map(|l| l.strip_prefix("https: "))
                .and_then(|v| v.trim().parse().ok())
            {
                return Self {
                    _child: child,
                    addr,
                    out,
                };
            }
            if let Some(status) = child.wait_timeout(Duration::ZERO) {
                panic!(
                    "https_tracker.py exited ({status}) before listening\n{}",
                    log_tail(&err)
                );
            }
            assert!(
                Instant::now() < end,
                "https_tracker.py did not listen within {STARTUP_TIMEOUT:?}\n{}",
                log_tail(&err)
            );
            thread::sleep(POLL_INTERVAL);
        }
    }

    fn url(&self) -> String {
        self.url_of("/announce")
    }

    fn url_of(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    /// The announce lines received so far.
    fn announces(&self) -> Vec<String> {
        fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("announce "))
            .map(str::to_owned)
            .collect()
    }
}

/// Polls `check` until it returns `Some`, for at most [`ANNOUNCE_TIMEOUT`] (and the deadline).
fn wait_for<T>(what: &str, deadline: Deadline, mut check: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + deadline.remaining(what).min(ANNOUNCE_TIMEOUT);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < end,
            "timed out waiting for {what} ({ANNOUNCE_TIMEOUT:?})"
        );
        thread::sleep(POLL_INTERVAL);
    }
}

/// A temp dir with a file to seed in `seed/`.
fn fixture() -> (TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("create temp dir");
    let file = tmp.path().join("seed").join("https.bin");
    write_random_file(&file, FILE_LEN, 93);
    (tmp, file)
}

/// Without `--tracker-ca`, the test CA is unknown: the announce fails with a certificate error
/// in the log, and no announce reaches the tracker.
#[test]
fn https_announce_to_an_unknown_ca_fails_with_a_certificate_error() {
    let deadline = Deadline::after(TEST_TIMEOUT);
    let (tmp, file) = fixture();
    let pki = make_pki(tmp.path());
    let tracker = HttpsTracker::start(tmp.path(), &pki, &[], &[], deadline);
    let url = tracker.url();
    let seeder = Seeder::start(
        &file,
        &[
            OsStr::new("--no-dht"),
            OsStr::new("--tracker"),
            OsStr::new(&url),
        ],
        tmp.path(),
        deadline,
    );
    let log = tmp.path().join("seednode.stderr");
    let line = wait_for("the HTTPS announce to fail", deadline, || {
        fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .find(|l| l.contains("announce failed") && l.contains(&url))
            .map(str::to_owned)
    });
    assert!(
        line.contains("certificate") && line.contains("UnknownIssuer"),
        "the failure does not name the certificate: {line}\n{}",
        seeder.log()
    );
    assert!(
        tracker.announces().is_empty(),
        "an announce reached the tracker despite the unknown CA: {:?}",
        tracker.announces()
    );
    seeder.stop();
}

/// With `--tracker-ca`, the announce reaches the HTTPS tracker, the node dials the peer the
/// reply names, and shutdown sends `stopped` over HTTPS too.
#[test]
fn https_announce_with_tracker_ca_is_received_and_its_peer_dialled() {
    let deadline = Deadline::after(TEST_TIMEOUT);
    let (tmp, file) = fixture();
    let pki = make_pki(tmp.path());
    let peer = TcpListener::bind((FAKE_PEER_IP, 0)).expect("bind the fake peer");
    peer.set_nonblocking(true).expect("nonblocking listener");
    let peer_addr = peer.local_addr().expect("fake peer address");
    let tracker = HttpsTracker::start(tmp.path(), &pki, &[peer_addr], &[], deadline);
    let url = tracker.url();
    let seeder = Seeder::start(
        &file,
        &[
            OsStr::new("--no-dht"),
            OsStr::new("--tracker"),
            OsStr::new(&url),
            OsStr::new("--tracker-ca"),
            pki.ca.as_os_str(),
        ],
        tmp.path(),
        deadline,
    );
    let info_hash = seeder.info_hash.to_ascii_lowercase();
    let started = format!(
        "announce info_hash={info_hash} port={} event=started from=127.0.0.1",
        seeder.listen.port()
    );
    wait_for(
        "the started announce at the HTTPS tracker",
        deadline,
        || tracker.announces().contains(&started).then_some(()),
    );
    assert!(
        !seeder.log().contains("announce failed"),
        "{}",
        seeder.log()
    );

    // The reply named the fake peer: the node connects and sends its handshake.
    let (mut conn, from) = wait_for(
        "the node to dial the tracker's peer",
        deadline,
        || match peer.accept() {
            Ok(c) => Some(c),
            Err(e) if e.kind() == ErrorKind::WouldBlock => None,
            Err(e) => panic!("accept on the fake peer: {e}"),
        },
    );
    assert_eq!(from.ip(), SEEDER_IP, "dialled from an unexpected address");
    conn.set_nonblocking(false).expect("blocking stream");
    conn.set_read_timeout(Some(ANNOUNCE_TIMEOUT))
        .expect("read timeout");
    let mut handshake = [0u8; 48];
    conn.read_exact(&mut handshake)
        .expect("read the node's handshake");
    assert_eq!(
        &handshake[..20],
        HANDSHAKE_PREFIX,
        "not a BitTorrent handshake"
    );
    let hex: String = handshake[28..48]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(hex, info_hash, "the handshake names another torrent");
    drop(conn);

    let port = seeder.listen.port();
    seeder.stop();
    let stopped =
        format!("announce info_hash={info_hash} port={port} event=stopped from=127.0.0.1");
    wait_for(
        "the stopped announce at the HTTPS tracker",
        deadline,
        || tracker.announces().contains(&stopped).then_some(()),
    );
}

/// Redirects are followed to `https://` only: a tracker redirecting to `http://` fails the
/// announce, one redirecting to another `https://` URL is followed to the announce.
#[test]
fn https_redirects_are_followed_to_https_only() {
    let deadline = Deadline::after(TEST_TIMEOUT);
    let (tmp, file) = fixture();
    let pki = make_pki(tmp.path());
    let tracker = HttpsTracker::start(
        tmp.path(),
        &pki,
        &[],
        &[
            ("/to-http", "http://127.0.0.1:{port}/announce"),
            ("/to-https", "https://127.0.0.1:{port}/announce"),
        ],
        deadline,
    );
    let (to_http, to_https) = (tracker.url_of("/to-http"), tracker.url_of("/to-https"));
    // Each --tracker is a tier of its own: both are announced to.
    let seeder = Seeder::start(
        &file,
        &[
            OsStr::new("--no-dht"),
            OsStr::new("--tracker"),
            OsStr::new(&to_http),
            OsStr::new("--tracker"),
            OsStr::new(&to_https),
            OsStr::new("--tracker-ca"),
            pki.ca.as_os_str(),
        ],
        tmp.path(),
        deadline,
    );
    let info_hash = seeder.info_hash.to_ascii_lowercase();
    let log = tmp.path().join("seednode.stderr");
    let line = wait_for("the redirect to http:// to fail", deadline, || {
        fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .find(|l| l.contains("announce failed") && l.contains(&to_http))
            .map(str::to_owned)
    });
    assert!(
        line.contains("https only"),
        "the failure does not name the scheme rule: {line}"
    );
    wait_for("the redirected announce at the tracker", deadline, || {
        tracker
            .announces()
            .iter()
            .any(|l| l.starts_with(&format!("announce info_hash={info_hash} ")))
            .then_some(())
    });
    wait_for("the node to log the redirected announce", deadline, || {
        fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("announced") && l.contains(&to_https))
            .then_some(())
    });
    seeder.stop();
}

/// A `--tracker-ca` file that holds no certificate is an error at start, not a silent
/// "trust nothing extra".
#[test]
fn tracker_ca_without_a_certificate_is_refused_at_start() {
    let tmp = tempfile::tempdir().expect("create temp dir");
    let file = tmp.path().join("x.bin");
    write_random_file(&file, 1000, 7);
    let ca = tmp.path().join("not-a-ca.pem");
    fs::write(&ca, "hello\n").expect("write the bad CA file");
    let out = Command::new(seednode_bin())
        .arg("seed")
        .arg(&file)
        .args(["--listen", "127.0.0.1:0", "--no-dht", "--no-udp"])
        .arg("--tracker-ca")
        .arg(&ca)
        .stdin(Stdio::null())
        .output()
        .expect("run seednode");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "seednode started with a bad CA file");
    assert!(
        stderr.contains("holds no PEM certificate"),
        "unclear error: {stderr}"
    );
}
