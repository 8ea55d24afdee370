//! Issue 13, out-of-band approvals, against the real binary, real SQLite files and a real
//! webhook receiver on 127.0.0.1: a critical API write answers 202 with a challenge, which
//! reaches the webhook (sealed to the receiver's X25519 key, opened with PyNaCl's `SealedBox`
//! and verified with the reference `standardwebhooks`); signatures are made with PyNaCl
//! (Ed25519, RFC 8032), never with the node's own code. A valid device signature runs the
//! action; a wrong key, an unknown or revoked device, another approval's challenge, a replay
//! and an expired challenge are refused with a clear error and change nothing.
//! `seednode approve` signs from the command line.
//!
//! Python: `$SEEDNODE_TEST_PYTHON`, else the workspace's `target/test-python` (made by
//! `scripts/test`); without either the tests print `SKIPPED: …` and pass.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::thread;
use std::time::{Duration, Instant};

use common::{ChildGuard, SEEDER_IP, free_port, log_tail, seednode_bin, write_random_file};
use serde_json::{Value, json};

/// How long `seednode run` may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a webhook delivery may take to arrive.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(20);

/// The approvals' expiry in these tests, seconds (the node's shortest allowed).
const EXPIRY_SECS: u64 = 10;

/// The Python with `nacl` and `standardwebhooks`, or `None` (after printing why).
fn python() -> Option<PathBuf> {
    let candidate = std::env::var_os("SEEDNODE_TEST_PYTHON").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-python/bin/python"),
        PathBuf::from,
    );
    let ok = Command::new(&candidate)
        .args(["-c", "import nacl.signing, nacl.public, standardwebhooks"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Some(candidate)
    } else {
        eprintln!(
            "SKIPPED: no Python with pynacl and standardwebhooks at {} (set SEEDNODE_TEST_PYTHON \
             or run scripts/test, which makes target/test-python)",
            candidate.display()
        );
        None
    }
}

/// Runs a Python `script` with `args` (bounded); returns its stdout (panics with its stderr
/// when it fails).
fn py(python: &Path, script: &str, args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut cmd = Command::new(python);
    cmd.arg("-c")
        .arg(script)
        .args(args)
        .stdout(fs::File::create(&out).expect("out"))
        .stderr(fs::File::create(&err).expect("err"));
    let mut child = ChildGuard::spawn("python", &mut cmd);
    let status = child
        .wait_timeout(Duration::from_secs(30))
        .expect("python did not finish");
    let stderr = fs::read_to_string(err).unwrap_or_default();
    assert!(status.success(), "python failed: {stderr}");
    fs::read_to_string(out).expect("python's stdout")
}

/// A new Ed25519 key from PyNaCl: (private seed hex, public key base64).
fn nacl_keygen(python: &Path) -> (String, String) {
    let out = py(
        python,
        "import base64, nacl.signing\n\
         k = nacl.signing.SigningKey.generate()\n\
         print(bytes(k).hex(), base64.b64encode(bytes(k.verify_key)).decode())",
        &[],
    );
    let (seed, public) = out.trim().split_once(' ').expect("two words");
    (seed.to_owned(), public.to_owned())
}

/// PyNaCl's Ed25519 signature (base64) with seed `seed_hex` over the base64 `challenge`.
fn nacl_sign(python: &Path, seed_hex: &str, challenge_b64: &str) -> String {
    py(
        python,
        "import base64, sys, nacl.signing\n\
         k = nacl.signing.SigningKey(bytes.fromhex(sys.argv[1]))\n\
         print(base64.b64encode(k.sign(base64.b64decode(sys.argv[2])).signature).decode())",
        &[seed_hex, challenge_b64],
    )
    .trim()
    .to_owned()
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// Runs `seednode ARGS` to completion (bounded); returns success, stdout and stderr.
fn seednode(args: &[&OsStr]) -> (bool, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut cmd = Command::new(seednode_bin());
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).expect("out"))
        .stderr(fs::File::create(&err).expect("err"));
    let mut child = ChildGuard::spawn("seednode", &mut cmd);
    let status = child
        .wait_timeout(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("seednode {args:?} did not finish"));
    (
        status.success(),
        fs::read_to_string(out).expect("read out"),
        fs::read_to_string(err).expect("read err"),
    )
}

/// `seednode run` on 127.0.0.1:`port` with `config`, until dropped (killed then).
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
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).expect("stdout file"))
        .stderr(fs::File::create(log).expect("log file"));
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

/// One HTTP/1.1 request to the node (`Connection: close`); the status and the JSON answer.
fn http(port: u16, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> (u16, Value) {
    http_from(SEEDER_IP, port, method, path, token, body)
}

/// [`http`] from source address `from` (the lockout counts per address).
fn http_from(
    from: Ipv4Addr,
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, Value) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&std::net::SocketAddr::from((from, 0)).into())
        .expect("bind the client address");
    socket
        .connect(&std::net::SocketAddr::from((SEEDER_IP, port)).into())
        .expect("connect");
    let mut s: TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Length: {}\r\n\
         Connection: close\r\n\r\n",
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

/// The info-hashes the node lists.
fn listed(port: u16, token: &str) -> Vec<String> {
    let (status, v) = http(port, "GET", "/api/v1/torrents", Some(token), b"");
    assert_eq!(status, 200, "{v}");
    v["torrents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["info_hash"].as_str().unwrap().to_owned())
        .collect()
}

/// A webhook POST: header names (lower case) and values, and the body.
type Received = (Vec<(String, String)>, Vec<u8>);

/// A receiver on 127.0.0.1 that answers 200 and hands every request over.
fn webhook_receiver() -> (u16, Receiver<Received>) {
    let listener = std::net::TcpListener::bind((SEEDER_IP, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head, body) = loop {
                let Ok(n) = s.read(&mut chunk) else {
                    break (String::new(), Vec::new());
                };
                if n == 0 {
                    break (String::new(), Vec::new());
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    while buf.len() < end + 4 + len {
                        let Ok(n) = s.read(&mut chunk) else { break };
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    break (head, buf[end + 4..].to_vec());
                }
            };
            let headers = head
                .lines()
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .collect();
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            if tx.send((headers, body)).is_err() {
                return;
            }
        }
    });
    (port, rx)
}

/// Verifies a delivery with `standardwebhooks` and opens its sealed body with PyNaCl's
/// `SealedBox`; returns the plain event.
fn open_delivery(python: &Path, secret: &str, x25519_secret_hex: &str, got: &Received) -> Value {
    let headers: serde_json::Map<String, Value> = got
        .0
        .iter()
        .filter(|(k, _)| k.starts_with("webhook-"))
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let body_file = dir.path().join("body");
    fs::write(&body_file, &got.1).unwrap();
    let out = py(
        python,
        "import base64, json, sys\n\
         from standardwebhooks import Webhook\n\
         from nacl.public import PrivateKey, SealedBox\n\
         body = open(sys.argv[4], 'rb').read()\n\
         event = Webhook(sys.argv[1]).verify(body, json.loads(sys.argv[2]))\n\
         sk = PrivateKey(bytes.fromhex(sys.argv[3]))\n\
         print(SealedBox(sk).decrypt(base64.b64decode(event['sealed'])).decode())",
        &[
            secret,
            &Value::Object(headers).to_string(),
            x25519_secret_hex,
            body_file.to_str().unwrap(),
        ],
    );
    serde_json::from_str(out.trim()).expect("the sealed event is JSON")
}

/// Waits for the next delivered event of `kind` (others are skipped), opened.
fn next_event(python: &Path, rx: &Receiver<Received>, secret: &str, sk: &str, kind: &str) -> Value {
    let end = Instant::now() + DELIVERY_TIMEOUT;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let got = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no {kind} delivered"));
        let event = open_delivery(python, secret, sk, &got);
        if event["type"] == kind {
            return event;
        }
    }
}

/// Where refused grants come from in these tests: they count towards that address's lockout.
const ATTACKER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

/// POSTs a grant to approval `id` from [`SEEDER_IP`].
fn grant(
    port: u16,
    id: &str,
    device: &str,
    signature: &str,
    challenge: Option<&str>,
) -> (u16, Value) {
    grant_from(SEEDER_IP, port, id, device, signature, challenge)
}

/// POSTs a grant to approval `id` from `from`.
fn grant_from(
    from: Ipv4Addr,
    port: u16,
    id: &str,
    device: &str,
    signature: &str,
    challenge: Option<&str>,
) -> (u16, Value) {
    let mut body = json!({ "device": device, "signature": signature });
    if let Some(c) = challenge {
        body["challenge"] = json!(c);
    }
    http_from(
        from,
        port,
        "POST",
        &format!("/api/v1/approvals/{id}"),
        None,
        body.to_string().as_bytes(),
    )
}

#[test]
fn critical_writes_wait_for_a_valid_device_signature() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let dd = data.as_os_str();
    let port = free_port(SEEDER_IP);

    // The receiver's X25519 key (PyNaCl) and the endpoint's signing secret.
    let keys = py(
        &python,
        "import base64\nfrom nacl.public import PrivateKey\n\
         k = PrivateKey.generate()\n\
         print(bytes(k).hex(), base64.b64encode(bytes(k.public_key)).decode())",
        &[],
    );
    let (x_secret, x_public) = keys.trim().split_once(' ').unwrap();
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (hook_port, deliveries) = webhook_receiver();
    let (ok, _, err) = seednode(&[
        os("webhook"),
        os("add"),
        os(&format!("http://{SEEDER_IP}:{hook_port}/approvals")),
        os("--kinds"),
        os("approval."),
        os("--secret"),
        os(secret),
        os("--recipient-key"),
        os(x_public),
        os("--allow-private"),
        os("--data-dir"),
        dd,
    ]);
    assert!(ok, "{err}");

    // Devices: `phone` (PyNaCl key), `old` (revoked below).
    let (phone_seed, phone_public) = nacl_keygen(&python);
    let (old_seed, old_public) = nacl_keygen(&python);
    let (stranger_seed, _) = nacl_keygen(&python);
    for (name, key) in [("phone", &phone_public), ("old", &old_public)] {
        let (ok, _, err) = seednode(&[
            os("device"),
            os("add"),
            os(name),
            os(key),
            os("--data-dir"),
            dd,
        ]);
        assert!(ok, "{err}");
    }
    let (ok, _, _) = seednode(&[
        os("device"),
        os("add"),
        os("bad"),
        os("not-a-key"),
        os("--data-dir"),
        dd,
    ]);
    assert!(!ok, "a malformed public key was accepted");
    let (ok, admin, err) = seednode(&[
        os("token"),
        os("create"),
        os("--scope"),
        os("admin"),
        os("--data-dir"),
        dd,
    ]);
    assert!(ok, "{err}");
    let admin = admin.trim().to_owned();

    // Two torrents under the content directory.
    let content = data.join("data");
    fs::create_dir_all(&content).unwrap();
    let mut hashes = Vec::new();
    for name in ["a.bin", "b.bin"] {
        let file = content.join(name);
        write_random_file(&file, 50_000, name.len() as u64 + hashes.len() as u64);
        let torrent = dir.path().join(format!("{name}.torrent"));
        let (ok, _, err) = seednode(&[
            os("create"),
            file.as_os_str(),
            os("-o"),
            torrent.as_os_str(),
            os("--piece-length"),
            os("16K"),
        ]);
        assert!(ok, "{err}");
        hashes.push((name, fs::read(&torrent).unwrap()));
    }
    let config = dir.path().join("seednode.toml");
    fs::write(
        &config,
        format!(
            "[approvals]\ncritical = [\"torrent.remove\", \"data.delete\", \"token.create\"]\n\
             expiry_secs = {EXPIRY_SECS}\n"
        ),
    )
    .unwrap();
    let log = dir.path().join("run.log");
    let _node = start_node(&data, port, &config, &log);
    // Adding is not critical here: done at once.
    let mut ihs = Vec::new();
    for (name, bytes) in &hashes {
        let (status, v) = http(
            port,
            "POST",
            &format!("/api/v1/torrents?path={name}"),
            Some(&admin),
            bytes,
        );
        assert_eq!(status, 201, "{v}\n{}", log_tail(&log));
        ihs.push(v["info_hash"].as_str().unwrap().to_owned());
    }
    let (ih_a, ih_b) = (ihs[0].clone(), ihs[1].clone());

    // A removal with its data waits: 202, an approval id and the challenge.
    let (status, asked) = http(
        port,
        "DELETE",
        &format!("/api/v1/torrents/{ih_a}?delete_data=true"),
        Some(&admin),
        b"",
    );
    assert_eq!(status, 202, "{asked}");
    assert_eq!(asked["action"], "data.delete");
    assert_eq!(asked["target"], ih_a.as_str());
    assert_eq!(asked["state"], "pending");
    let id = asked["approval_id"].as_str().unwrap().to_owned();
    let challenge = asked["challenge"].as_str().unwrap().to_owned();
    assert_eq!(listed(port, &admin).len(), 2, "nothing removed yet");

    // The request reached the webhook, sealed; opened, it names the approval and challenge.
    let event = next_event(&python, &deliveries, secret, x_secret, "approval.requested");
    assert_eq!(event["data"]["approval_id"], id.as_str(), "{event}");
    assert_eq!(event["data"]["challenge"], challenge.as_str());
    assert_eq!(event["data"]["action"], "data.delete");

    // GET shows it.
    let (status, shown) = http(
        port,
        "GET",
        &format!("/api/v1/approvals/{id}"),
        Some(&admin),
        b"",
    );
    assert_eq!(status, 200);
    assert_eq!(shown["state"], "pending");
    assert_eq!(shown["challenge"], challenge.as_str());

    // A second approval: removing B (no data).
    let (status, other) = http(
        port,
        "DELETE",
        &format!("/api/v1/torrents/{ih_b}"),
        Some(&admin),
        b"",
    );
    assert_eq!(status, 202, "{other}");
    let other_id = other["approval_id"].as_str().unwrap().to_owned();
    let other_challenge = other["challenge"].as_str().unwrap().to_owned();

    // Refusals, each with its reason, and nothing changes.
    let refusals = [
        (
            "a key that is not phone's",
            grant_from(
                ATTACKER_IP,
                port,
                &id,
                "phone",
                &nacl_sign(&python, &stranger_seed, &challenge),
                None,
            ),
            403,
            "bad_signature",
        ),
        (
            "an unknown device",
            grant_from(
                ATTACKER_IP,
                port,
                &id,
                "tablet",
                &nacl_sign(&python, &phone_seed, &challenge),
                None,
            ),
            403,
            "unknown_device",
        ),
        (
            "another approval's challenge, presented",
            grant_from(
                ATTACKER_IP,
                port,
                &id,
                "phone",
                &nacl_sign(&python, &phone_seed, &other_challenge),
                Some(&other_challenge),
            ),
            403,
            "wrong_challenge",
        ),
        (
            "another target's signature",
            grant_from(
                ATTACKER_IP,
                port,
                &id,
                "phone",
                &nacl_sign(&python, &phone_seed, &other_challenge),
                None,
            ),
            403,
            "bad_signature",
        ),
    ];
    for (what, (status, v), want_status, want) in &refusals {
        assert_eq!(status, want_status, "{what}: {v}");
        assert_eq!(v["error"], *want, "{what}: {v}");
        assert!(
            !v["message"].as_str().unwrap_or("").is_empty(),
            "{what}: {v}"
        );
    }
    assert!(
        refusals[2].1.1["message"]
            .as_str()
            .unwrap()
            .contains("torrent.remove"),
        "the refusal names the other action: {}",
        refusals[2].1.1
    );
    let (ok, _, err) = seednode(&[os("device"), os("revoke"), os("old"), os("--data-dir"), dd]);
    assert!(ok, "{err}");
    let old_signature = nacl_sign(&python, &old_seed, &challenge);
    let (status, v) = grant_from(ATTACKER_IP, port, &id, "old", &old_signature, None);
    assert_eq!(
        (status, v["error"].as_str()),
        (403, Some("revoked_device")),
        "{v}"
    );
    // Refused grants count towards the lockout like bad tokens: the sixth within a minute
    // locks that address out, and the next grant from it gets 429 unread.
    let (status, v) = grant_from(ATTACKER_IP, port, &id, "old", &old_signature, None);
    assert_eq!(status, 403, "{v}");
    let (status, _) = grant_from(ATTACKER_IP, port, &id, "old", &old_signature, None);
    assert_eq!(status, 429, "refused grants do not lock their address out");
    assert_eq!(listed(port, &admin).len(), 2, "refusals changed nothing");
    assert!(content.join("a.bin").exists());
    let event = next_event(&python, &deliveries, secret, x_secret, "approval.refused");
    assert_eq!(event["data"]["approval_id"], id.as_str());

    // The valid signature: the torrent goes, with its data.
    let signature = nacl_sign(&python, &phone_seed, &challenge);
    let (status, done) = grant(port, &id, "phone", &signature, Some(&challenge));
    assert_eq!(status, 200, "{done}\n{}", log_tail(&log));
    assert_eq!(done["removed"], true);
    assert_eq!(done["data_deleted"]["files_removed"], 1, "{done}");
    assert_eq!(listed(port, &admin), vec![ih_b.clone()]);
    assert!(!content.join("a.bin").exists(), "the data was deleted");
    let event = next_event(&python, &deliveries, secret, x_secret, "approval.granted");
    assert_eq!(event["data"]["device"], "phone");

    // Replayed (from another address, so the lockout is not what answers): refused.
    let replayer = Ipv4Addr::new(127, 0, 0, 4);
    let (status, v) = grant_from(replayer, port, &id, "phone", &signature, Some(&challenge));
    assert_eq!(
        (status, v["error"].as_str()),
        (409, Some("already_decided")),
        "{v}"
    );
    let (_, shown) = http(
        port,
        "GET",
        &format!("/api/v1/approvals/{id}"),
        Some(&admin),
        b"",
    );
    assert_eq!(shown["state"], "granted");
    assert_eq!(shown["device"], "phone");

    // Expired: B's approval, signed correctly once its expiry passed.
    let expires_at = other["expires_at"].as_i64().unwrap();
    let end = Instant::now() + Duration::from_secs(EXPIRY_SECS + 10);
    while unix_now() <= expires_at {
        assert!(Instant::now() < end, "the clock did not pass the expiry");
        thread::sleep(Duration::from_millis(200));
    }
    let (status, v) = grant(
        port,
        &other_id,
        "phone",
        &nacl_sign(&python, &phone_seed, &other_challenge),
        None,
    );
    assert_eq!((status, v["error"].as_str()), (410, Some("expired")), "{v}");
    assert_eq!(listed(port, &admin), vec![ih_b.clone()], "B stays");
    let event = next_event(&python, &deliveries, secret, x_secret, "approval.expired");
    assert_eq!(event["data"]["approval_id"], other_id.as_str());

    // token.create: the token is handed out at once, works only once approved, and
    // `seednode approve` does the approving.
    let (status, asked) = http(
        port,
        "POST",
        "/api/v1/tokens",
        Some(&admin),
        br#"{"scope": "read", "label": "dashboard"}"#,
    );
    assert_eq!(status, 202, "{asked}");
    assert_eq!(asked["action"], "token.create");
    let new_token = asked["token"].as_str().unwrap().to_owned();
    assert_eq!(asked["target"], asked["token_id"]);
    let (status, _) = http(port, "GET", "/api/v1/torrents", Some(&new_token), b"");
    assert_eq!(status, 401, "the token works before its approval");
    let key_file = dir.path().join("phone.key");
    fs::write(&key_file, format!("{phone_seed}\n")).unwrap();
    let (ok, out, err) = seednode(&[
        os("approve"),
        os(asked["approval_id"].as_str().unwrap()),
        os("--key"),
        key_file.as_os_str(),
        os("--device"),
        os("phone"),
        os("--node"),
        os(&format!("{SEEDER_IP}:{port}")),
    ]);
    assert!(ok, "seednode approve: {err}\n{}", log_tail(&log));
    assert!(out.contains(asked["token_id"].as_str().unwrap()), "{out}");
    assert!(
        err.contains("token.create"),
        "approve shows what it signs: {err}"
    );
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = http(port, "GET", "/api/v1/torrents", Some(&new_token), b"");
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < end,
            "the approved token never worked ({status})"
        );
        thread::sleep(Duration::from_millis(100));
    }
    // The companion commands say a write waits instead of claiming it done.
    let (ok, _, err) = seednode(&[
        os("remove"),
        os(&ih_b),
        os("--node"),
        os(&format!("{SEEDER_IP}:{port}")),
        os("--token"),
        os(&admin),
    ]);
    assert!(!ok && err.contains("seednode approve apr_"), "{err}");

    // Every step is in the audit log.
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let (ok, out, _) = seednode(&[
            os("audit"),
            os("--kind"),
            os("approval."),
            os("--json"),
            os("--data-dir"),
            dd,
        ]);
        let all = ["requested", "granted", "refused", "expired"]
            .iter()
            .all(|k| out.contains(&format!("approval.{k}")));
        if ok && all {
            break;
        }
        assert!(
            Instant::now() < end,
            "audit log lacks approval events: {out}"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// A device added over the API waits for an approval by an enrolled device (an admin token
/// alone cannot enrol the key that approves).
#[test]
fn a_device_added_over_the_api_needs_an_existing_devices_approval() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let dd = data.as_os_str();
    let port = free_port(SEEDER_IP);
    let (phone_seed, phone_public) = nacl_keygen(&python);
    let (_, laptop_public) = nacl_keygen(&python);
    let (ok, _, err) = seednode(&[
        os("device"),
        os("add"),
        os("phone"),
        os(&phone_public),
        os("--data-dir"),
        dd,
    ]);
    assert!(ok, "{err}");
    let (ok, admin, err) = seednode(&[
        os("token"),
        os("create"),
        os("--scope"),
        os("admin"),
        os("--data-dir"),
        dd,
    ]);
    assert!(ok, "{err}");
    let admin = admin.trim().to_owned();
    let config = dir.path().join("seednode.toml");
    fs::write(&config, "[approvals]\ncritical = [\"torrent.remove\"]\n").unwrap();
    let log = dir.path().join("run.log");
    let _node = start_node(&data, port, &config, &log);
    let body = json!({ "name": "laptop", "public_key": laptop_public }).to_string();
    let (status, asked) = http(
        port,
        "POST",
        "/api/v1/devices",
        Some(&admin),
        body.as_bytes(),
    );
    assert_eq!(status, 202, "{asked}");
    assert_eq!(asked["action"], "device.add");
    assert_eq!(asked["target"], "laptop");
    let (status, list) = http(port, "GET", "/api/v1/devices", Some(&admin), b"");
    assert_eq!(status, 200);
    assert_eq!(list["devices"].as_array().unwrap().len(), 1, "{list}");
    let id = asked["approval_id"].as_str().unwrap();
    let signature = nacl_sign(&python, &phone_seed, asked["challenge"].as_str().unwrap());
    let (status, done) = grant(port, id, "phone", &signature, None);
    assert_eq!(status, 201, "{done}\n{}", log_tail(&log));
    let (_, list) = http(port, "GET", "/api/v1/devices", Some(&admin), b"");
    let names: Vec<&str> = list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["phone", "laptop"]);
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
