//! Issue 13, HTTPS webhook delivery with certificate checking, against the real node and a
//! real TLS receiver on 127.0.0.1 (Python's `http.server` wrapped with `ssl`, stdlib only)
//! whose certificate comes from a throw-away CA made by `openssl` for the test:
//!
//! - without `webhook_ca` the certificate is refused: the node logs the attempt's failure with
//!   the TLS reason (an unknown issuer) and the receiver gets nothing;
//! - with `webhook_ca = "ca.pem"` the same pending event is delivered over TLS, with its
//!   `webhook-id`.
//!
//! Needs `openssl` and `/usr/bin/python3` (scripts/test installs both). Every process is killed
//! on drop; every wait is bounded.

mod common;

use std::fs;
use std::io::{ErrorKind, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{ChildGuard, PYTHON, SEEDER_IP, free_port, log_tail, seednode_bin, write_random_file};
use serde_json::Value;

/// How long `seednode run` may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a delivery (or its refusal) may take: a first attempt at once, a retry within
/// the 5 s backoff base (with jitter) after a restart.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(40);

/// The receiver: one line per request on stdout, `<webhook-id> <body>`; exits by itself after
/// 120 s.
const RECEIVER: &str = r#"
import http.server, ssl, sys, threading, os
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(n)
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
        sys.stdout.write(self.headers.get("webhook-id", "") + " " + body.decode() + "\n")
        sys.stdout.flush()
    def log_message(self, *a): pass
srv = http.server.HTTPServer(("127.0.0.1", int(sys.argv[3])), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
threading.Timer(120, lambda: os._exit(0)).start()
sys.stdout.write("listening\n"); sys.stdout.flush()
srv.serve_forever()
"#;

fn require_openssl() -> bool {
    match Command::new("openssl")
        .arg("version")
        .stdin(Stdio::null())
        .output()
    {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "`openssl` is not installed; this test needs it to make a test CA (Debian package \
             `openssl`, or run scripts/test)"
        ),
        Err(e) => panic!("cannot run `openssl`: {e}"),
    }
}

/// Runs `openssl ARGS` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ca.pem`, and `server.pem`/`server.key` for `IP:127.0.0.1` signed by it (P-256, 2 days).
fn make_pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
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
        "/CN=seednode webhook test CA",
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
    .unwrap();
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
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

/// Runs `seednode ARGS` (bounded); success and stdout.
fn seednode(args: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut cmd = Command::new(seednode_bin());
    cmd.args(args)
        .stdout(fs::File::create(&out).unwrap())
        .stderr(Stdio::null());
    let mut child = ChildGuard::spawn("seednode", &mut cmd);
    let status = child
        .wait_timeout(Duration::from_secs(60))
        .expect("seednode did not finish");
    (status.success(), fs::read_to_string(out).unwrap())
}

fn start_node(data: &Path, port: u16, config: &Path, log: &Path) -> ChildGuard {
    let out = log.with_extension("stdout");
    let mut cmd = Command::new(seednode_bin());
    cmd.arg("run")
        .arg("--data-dir")
        .arg(data)
        .arg("--config")
        .arg(config)
        .arg("--listen")
        .arg(format!("{SEEDER_IP}:{port}"))
        .arg("--no-dht")
        .env("RUST_LOG", "info")
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(log).unwrap());
    let mut child = ChildGuard::spawn("seednode run", &mut cmd);
    let end = Instant::now() + START_TIMEOUT;
    while !fs::read_to_string(&out).is_ok_and(|s| s.contains("listening: ")) {
        if let Some(status) = child.wait_timeout(Duration::ZERO) {
            panic!("seednode run exited with {status}\n{}", log_tail(log));
        }
        assert!(Instant::now() < end, "no start\n{}", log_tail(log));
        thread::sleep(Duration::from_millis(50));
    }
    child
}

fn post(port: u16, path: &str, token: &str, body: &[u8]) -> (u16, Value) {
    let mut s = TcpStream::connect((SEEDER_IP, port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    s.write_all(&req).unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Polls `cond` until it holds or `limit` passed.
fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        thread::sleep(Duration::from_millis(100));
    }
    cond()
}

#[test]
fn https_webhooks_check_certificates_and_trust_webhook_ca() {
    require_openssl();
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_pki(dir.path());
    let hook_port = free_port(SEEDER_IP);
    let got = dir.path().join("receiver.out");
    let mut receiver_cmd = Command::new(PYTHON);
    receiver_cmd
        .arg("-c")
        .arg(RECEIVER)
        .arg(&cert)
        .arg(&key)
        .arg(hook_port.to_string())
        .stdout(fs::File::create(&got).unwrap())
        .stderr(fs::File::create(dir.path().join("receiver.err")).unwrap());
    let _receiver = ChildGuard::spawn("https receiver", &mut receiver_cmd);
    assert!(
        wait_for(Duration::from_secs(15), || fs::read_to_string(&got)
            .is_ok_and(|s| s.contains("listening"))),
        "the HTTPS receiver did not start: {}",
        fs::read_to_string(dir.path().join("receiver.err")).unwrap_or_default()
    );
    let received = || -> Vec<(String, Value)> {
        fs::read_to_string(&got)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(id, body)| {
                (
                    id.to_owned(),
                    serde_json::from_str(body).unwrap_or(Value::Null),
                )
            })
            .collect()
    };

    let data = dir.path().join("data");
    let dd = data.to_str().unwrap();
    let url = format!("https://{SEEDER_IP}:{hook_port}/hook");
    let (ok, _) = seednode(&[
        "webhook",
        "add",
        &url,
        "--kinds",
        "torrent.added",
        "--secret",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "--allow-private",
        "--data-dir",
        dd,
    ]);
    assert!(ok);
    let (ok, admin) = seednode(&["token", "create", "--scope", "admin", "--data-dir", dd]);
    assert!(ok);
    let admin = admin.trim().to_owned();
    let content = data.join("data");
    fs::create_dir_all(&content).unwrap();
    write_random_file(&content.join("t.bin"), 30_000, 5);
    let torrent = dir.path().join("t.torrent");
    let (ok, _) = seednode(&[
        "create",
        content.join("t.bin").to_str().unwrap(),
        "-o",
        torrent.to_str().unwrap(),
        "--piece-length",
        "16K",
    ]);
    assert!(ok);
    let port = free_port(SEEDER_IP);

    // Not trusted: refused, with the reason logged.
    let plain = dir.path().join("plain.toml");
    fs::write(&plain, "").unwrap();
    let log = dir.path().join("run1.log");
    let node = start_node(&data, port, &plain, &log);
    let (status, v) = post(
        port,
        "/api/v1/torrents?path=t.bin",
        &admin,
        &fs::read(&torrent).unwrap(),
    );
    assert_eq!(status, 201, "{v}");
    let ih = v["info_hash"].as_str().unwrap().to_owned();
    assert!(
        wait_for(DELIVERY_TIMEOUT, || {
            let text = fs::read_to_string(&log).unwrap_or_default();
            text.contains("webhook attempt failed") && text.contains("UnknownIssuer")
        }),
        "no logged certificate refusal\n{}",
        log_tail(&log)
    );
    assert!(
        received().is_empty(),
        "delivered to an untrusted certificate"
    );
    drop(node);

    // Trusted through webhook_ca: the same event arrives.
    let trusting = dir.path().join("trusting.toml");
    fs::write(
        &trusting,
        format!("webhook_ca = \"{}\"\n", ca.to_str().unwrap()),
    )
    .unwrap();
    let log = dir.path().join("run2.log");
    let _node = start_node(&data, port, &trusting, &log);
    assert!(
        wait_for(DELIVERY_TIMEOUT, || !received().is_empty()),
        "not delivered with webhook_ca\n{}",
        log_tail(&log)
    );
    let (id, event) = received().remove(0);
    assert!(id.starts_with("msg_"), "{id}");
    assert_eq!(event["type"], "torrent.added");
    assert_eq!(event["data"]["info_hash"], ih.as_str());
}
