//! Blossom (BUD-01/02/06/11/12) and NIP-98 against a real `seednode run` (issue 14): the
//! independent client libraries (npm `blossom-client-sdk`, `nostr-tools`) upload, fetch, list
//! and delete blobs and sign NIP-98 requests; aria2c downloads an uploaded blob through its
//! magnet; hostile Authorization headers are refused at once with the node still serving.
//!
//! Needs Node 20 with the packages of `engine/tests/support/nostr` (`SEEDNODE_TEST_NODE_MODULES`,
//! else that folder's `node_modules`); without them the tests print `SKIPPED:` and return.
//! Every process is owned by a guard (killed on drop), every wait is bounded.

mod common;

use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{ChildGuard, Deadline, SEEDER_IP, free_port, log_tail, require_aria2c, run_client};

/// The address aria2c downloads from (not the node's own).
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// How long `seednode run` may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long one npm script may run.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(90);

/// A key granted `read` and `upload` (a fixed test key, never used elsewhere).
const GRANTED_SK: &str = "7f7ff03d123792d6ac594bfa67bf6d0c0ab55b6b1fdb6249303fe861f1ccba9a";

/// A key with no grant.
const STRANGER_SK: &str = "3c8a2c9e1e6f0b3d6f4a2b1c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e";

/// The npm packages, or `None` (the test is then skipped).
fn node_modules() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SEEDNODE_TEST_NODE_MODULES") {
        return Some(PathBuf::from(dir));
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/nostr/node_modules");
    local.join("blossom-client-sdk").is_dir().then_some(local)
}

/// The hex public key of secret key `sk` (BIP-340 x-only), with the `nostr` crate.
fn pubkey_of(sk: &str) -> String {
    nostr::key::Keys::parse(sk)
        .expect("test key")
        .public_key()
        .to_hex()
}

/// A running `seednode run` with a config granting [`GRANTED_SK`] `read` and `upload`.
struct Node {
    _child: ChildGuard,
    port: u16,
    log: PathBuf,
    data: PathBuf,
}

impl Node {
    fn start(dir: &Path) -> Self {
        let port = free_port(SEEDER_IP);
        let data = dir.join("node");
        let config = dir.join("seednode.toml");
        fs::write(
            &config,
            format!(
                "[[nostr.pubkey]]\nnpub = \"{}\"\nscopes = [\"read\", \"upload\"]\n\
                 quota_bytes = 1073741824\n",
                pubkey_of(GRANTED_SK)
            ),
        )
        .unwrap();
        let log = dir.join("node.log");
        let out = dir.join("node.stdout");
        let mut cmd = Command::new(common::seednode_bin());
        cmd.arg("run")
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&data)
            .arg("--listen")
            .arg(format!("{SEEDER_IP}:{port}"))
            .arg("--no-dht")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).unwrap())
            .stderr(fs::File::create(&log).unwrap());
        let child = ChildGuard::spawn("seednode run", &mut cmd);
        let end = Instant::now() + START_TIMEOUT;
        while !fs::read_to_string(&out).is_ok_and(|s| s.contains("listening: ")) {
            assert!(
                Instant::now() < end,
                "seednode run did not start\n{}",
                log_tail(&log)
            );
            thread::sleep(Duration::from_millis(50));
        }
        Self {
            _child: child,
            port,
            log,
            data,
        }
    }

    fn url(&self) -> String {
        format!("http://{SEEDER_IP}:{}", self.port)
    }

    /// One raw HTTP/1.1 request (closed after); the status and the body. `None` when the node
    /// closed without an answer.
    fn raw(&self, request: &[u8]) -> Option<(u16, Vec<u8>)> {
        let mut s = TcpStream::connect((SEEDER_IP, self.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        // The node may refuse before the whole request is written.
        let _ = s.write_all(request);
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        let status = std::str::from_utf8(raw.get(9..12)?).ok()?.parse().ok()?;
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
        Some((status, raw[split + 4..].to_vec()))
    }

    fn get(&self, path: &str, extra: &str) -> Option<(u16, Vec<u8>)> {
        self.raw(
            format!(
                "GET {path} HTTP/1.1\r\nHost: {SEEDER_IP}:{}\r\n{extra}Connection: close\r\n\r\n",
                self.port
            )
            .as_bytes(),
        )
    }
}

/// Runs npm script `name` (from `engine/tests/support/nostr`) against the node: copied into a
/// temporary folder beside a link to the packages, so ES module imports resolve whichever
/// `node_modules` the environment names. Returns success and the output.
fn run_script(
    modules: &Path,
    dir: &Path,
    name: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (bool, String) {
    let work = dir.join(format!("{name}.d"));
    fs::create_dir_all(&work).unwrap();
    let link = work.join("node_modules");
    if !link.exists() {
        std::os::unix::fs::symlink(modules, &link).unwrap();
    }
    let script = work.join(name);
    fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/support/nostr")
            .join(name),
        &script,
    )
    .unwrap();
    let log = dir.join(format!("{name}.log"));
    let mut cmd = Command::new("node");
    cmd.arg(&script)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(fs::File::create(&log).unwrap())
        .stderr(fs::File::create(&log).unwrap().try_clone().unwrap());
    let mut child = ChildGuard::spawn(name, &mut cmd);
    let status = child.wait_timeout(SCRIPT_TIMEOUT);
    let out = fs::read_to_string(&log).unwrap_or_default();
    (status.is_some_and(|s| s.success()), out)
}

/// `N passed, M failed` of a script's output.
fn failures(out: &str) -> Option<u32> {
    out.lines().rev().find_map(|l| {
        let (_, rest) = l.split_once(" passed, ")?;
        rest.strip_suffix(" failed")?.parse().ok()
    })
}

fn skip_without_node() -> Option<PathBuf> {
    let Some(modules) = node_modules() else {
        println!(
            "SKIPPED: no npm packages (run `npm ci` in engine/tests/support/nostr or set SEEDNODE_TEST_NODE_MODULES)"
        );
        return None;
    };
    if Command::new("node").arg("--version").output().is_err() {
        println!("SKIPPED: no `node` on PATH");
        return None;
    }
    Some(modules)
}

/// The stock `blossom-client-sdk` round trip (`REQUIRE_AUTH=1`) passes with no MUST failure,
/// and the blob's magnet downloads the same bytes with aria2c.
#[test]
fn blossom_sdk_roundtrip_and_the_blob_is_seeded_over_bittorrent() {
    let Some(modules) = skip_without_node() else {
        return;
    };
    require_aria2c();
    let deadline = Deadline::after(Duration::from_secs(150));
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let (ok, out) = run_script(
        &modules,
        dir.path(),
        "blossom-roundtrip.mjs",
        &[&node.url()],
        &[("REQUIRE_AUTH", "1"), ("BLOSSOM_SK", GRANTED_SK)],
    );
    assert!(
        ok && failures(&out) == Some(0),
        "{out}\n{}",
        log_tail(&node.log)
    );
    println!("{out}");
    // The descriptor the script printed: its magnet, downloaded by aria2c.
    let descriptor: serde_json::Value = out
        .lines()
        .find_map(|l| l.strip_prefix("descriptor "))
        .and_then(|j| serde_json::from_str(j).ok())
        .expect("the script prints the descriptor");
    let magnet = descriptor["magnet"]
        .as_str()
        .expect("magnet in the descriptor");
    let sha256 = descriptor["sha256"].as_str().unwrap().to_owned();
    let stored = fs::read_dir(node.data.join("data"))
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with(&sha256))
        .expect("the blob's file in the data directory")
        .path();
    let original = fs::read(&stored).unwrap();
    let dl = dir.path().join("aria2c");
    fs::create_dir_all(&dl).unwrap();
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
        "--bt-save-metadata=false",
        "--log=-",
        "--log-level=info",
    ])
    .arg(format!("--interface={CLIENT_IP}"))
    .arg(format!("--listen-port={}", free_port(CLIENT_IP)))
    .arg(format!("--dir={}", dl.display()))
    .arg(magnet)
    .stdin(Stdio::null());
    run_client(
        "aria2c",
        &mut cmd,
        &dir.path().join("aria2c.log"),
        None,
        deadline,
    );
    let got = fs::read(dl.join(stored.file_name().unwrap())).expect("aria2c's file");
    assert_eq!(got, original, "aria2c got other bytes");
    assert_eq!(
        common::sha256_file(&dl.join(stored.file_name().unwrap())),
        sha256
    );
    // The upload went through the common add path: its audit rows are there.
    let (ok, audit) = {
        let out = Command::new(common::seednode_bin())
            .args(["audit", "--data-dir"])
            .arg(&node.data)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert!(
        ok && audit.contains("upload.completed") && audit.contains("torrent.added"),
        "{audit}"
    );
}

/// List, delete, refused Blossom authorizations, NIP-98 accepted and refused, the lockout.
#[test]
fn nostr_signed_requests_are_checked() {
    let Some(modules) = skip_without_node() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let (ok, out) = run_script(
        &modules,
        dir.path(),
        "nostr-auth-cases.mjs",
        &[&node.url()],
        &[("BLOSSOM_SK", GRANTED_SK), ("STRANGER_SK", STRANGER_SK)],
    );
    assert!(
        ok && failures(&out) == Some(0),
        "{out}\n{}",
        log_tail(&node.log)
    );
    let audit = Command::new(common::seednode_bin())
        .args(["audit", "--data-dir"])
        .arg(&node.data)
        .args(["--kind", "auth."])
        .output()
        .unwrap();
    let audit = String::from_utf8_lossy(&audit.stdout);
    assert!(
        audit.contains("auth.nostr.failed") && audit.contains("auth.lockout"),
        "{audit}"
    );
}

/// A 1 MB `Authorization` header and deeply nested event JSON are refused at once (no parse
/// of either), and the node serves the next request.
#[test]
fn hostile_authorization_headers_are_refused_and_the_node_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let huge = format!("Authorization: Nostr {}\r\n", "A".repeat(1 << 20));
    let answer = node.get("/api/v1/torrents", &huge);
    // Refused by the head limit (431), or the connection closed at the limit.
    assert!(
        answer.as_ref().is_none_or(|(status, _)| *status == 431),
        "{answer:?}"
    );
    let blossom = node.raw(
        format!(
            "PUT /upload HTTP/1.1\r\nHost: {SEEDER_IP}\r\n{huge}Content-Length: 10\r\n\r\n0123456789"
        )
        .as_bytes(),
    );
    assert!(
        blossom.as_ref().is_none_or(|(s, _)| *s == 431),
        "{blossom:?}"
    );
    // Nested 3000 deep, well inside the 8 KiB token limit.
    let nested = format!("{}{}", "[".repeat(3000), "]".repeat(3000));
    let b64 = base64_std(nested.as_bytes());
    let (status, body) = node
        .get(
            "/api/v1/torrents",
            &format!("Authorization: Nostr {b64}\r\n"),
        )
        .expect("an answer");
    assert_eq!(status, 401, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("nested"));
    // Objects this time, 900 deep (the base64 stays under the 8 KiB header value limit).
    let object = format!("{}{}", "{\"a\":".repeat(900), "}".repeat(900));
    let (status, _) = node
        .raw(
            format!(
                "HEAD /upload HTTP/1.1\r\nHost: {SEEDER_IP}\r\nAuthorization: Nostr {}\r\n\
                 X-Content-Length: 10\r\nConnection: close\r\n\r\n",
                base64_std(object.as_bytes())
            )
            .as_bytes(),
        )
        .expect("an answer");
    assert_eq!(status, 401, "BUD-06 preflight with nested JSON");
    let (status, body) = node.get("/healthz", "").expect("still serving");
    assert_eq!((status, body.as_slice()), (200, b"ok\n".as_slice()));
}

/// Standard base64 with padding (the test's own, to not depend on a crate for it).
fn base64_std(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}
