//! Issue 13, "an event is committed to the outbox in the same transaction as the action it
//! reports": `kill -9` of the real node right after it acknowledged an add (201) and a removal
//! (200), with the webhook receiver down; the catalog (read here with `seednode_storage`) holds
//! `torrent.added` and `torrent.removed` rows; after a restart with the receiver up both are
//! delivered, in order, with the same `webhook-id`.
//!
//! Every process is killed on drop and every wait is bounded.

mod common;

use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::thread;
use std::time::{Duration, Instant};

use common::{SEEDER_IP, free_port, log_tail, seednode_bin, write_random_file};
use seednode_storage::Catalog;
use serde_json::Value;

/// How long `seednode run` may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a delivery may take after the restart (a failed first attempt backs off 5 s).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(40);

/// A child killed and reaped on drop.
struct Guarded(Child);

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

impl Guarded {
    /// SIGKILL, and reaped.
    fn kill_9(mut self) {
        let _ = self.0.kill(); // SIGKILL on Unix
        let _ = self.0.wait();
    }
}

/// Runs `seednode ARGS` (bounded); success and stdout.
fn seednode(args: &[&str]) -> (bool, String) {
    let mut child = Guarded(
        Command::new(seednode_bin())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("seednode"),
    );
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.0.try_wait().expect("try_wait") {
            let mut out = String::new();
            if let Some(mut o) = child.0.stdout.take() {
                let _ = o.read_to_string(&mut out);
            }
            return (status.success(), out);
        }
        assert!(Instant::now() < end, "seednode {args:?} did not finish");
        thread::sleep(Duration::from_millis(20));
    }
}

fn start_node(data: &Path, port: u16, log: &Path) -> Guarded {
    let out = log.with_extension("stdout");
    let mut child = Guarded(
        Command::new(seednode_bin())
            .arg("run")
            .arg("--data-dir")
            .arg(data)
            .arg("--listen")
            .arg(format!("{SEEDER_IP}:{port}"))
            .arg("--no-dht")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).expect("stdout"))
            .stderr(fs::File::create(log).expect("log"))
            .spawn()
            .expect("seednode run"),
    );
    let end = Instant::now() + START_TIMEOUT;
    while !fs::read_to_string(&out).is_ok_and(|s| s.contains("listening: ")) {
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("seednode run exited with {status}\n{}", log_tail(log));
        }
        assert!(Instant::now() < end, "no start\n{}", log_tail(log));
        thread::sleep(Duration::from_millis(50));
    }
    child
}

fn http(port: u16, method: &str, path: &str, token: &str, body: &[u8]) -> (u16, Value) {
    let mut s = TcpStream::connect((SEEDER_IP, port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
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

/// Every outbox row of the catalog in `data`: (kind, webhook-id, body).
fn outbox_rows(data: &Path) -> Vec<(String, String, String)> {
    let catalog = Catalog::open(&data.join("catalog.sqlite")).expect("open the catalog");
    (1..=100)
        .filter_map(|id| catalog.webhook_row(id).expect("read a row"))
        .map(|r| (r.kind, r.event_id, r.body))
        .collect()
}

/// A receiver on `listener` that answers 200 and hands over (webhook-id, body) per request.
fn receiver(listener: TcpListener) -> Receiver<(String, Value)> {
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let header = |name: &str| {
                head.lines()
                    .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
                    .unwrap_or_default()
            };
            let len: usize = header("content-length:").parse().unwrap_or(0);
            while buf.len() < end + 4 + len {
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let body = serde_json::from_slice(&buf[end + 4..]).unwrap_or(Value::Null);
            if tx.send((header("webhook-id:"), body)).is_err() {
                return;
            }
        }
    });
    rx
}

#[test]
fn events_committed_with_their_action_survive_kill_9_with_their_webhook_id() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let dd = data.to_str().unwrap();
    let hook_port = free_port(SEEDER_IP);
    let (ok, _) = seednode(&[
        "webhook",
        "add",
        &format!("http://{SEEDER_IP}:{hook_port}/hook"),
        "--kinds",
        "torrent.",
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
    let file = content.join("k.bin");
    write_random_file(&file, 40_000, 9);
    let torrent = dir.path().join("k.torrent");
    let (ok, _) = seednode(&[
        "create",
        file.to_str().unwrap(),
        "-o",
        torrent.to_str().unwrap(),
        "--piece-length",
        "16K",
    ]);
    assert!(ok);
    let port = free_port(SEEDER_IP);
    let log = dir.path().join("run.log");

    // Run 1, receiver down: add, acknowledged, then kill -9 at once.
    let node = start_node(&data, port, &log);
    let (status, v) = http(
        port,
        "POST",
        "/api/v1/torrents?path=k.bin",
        &admin,
        &fs::read(&torrent).unwrap(),
    );
    node.kill_9();
    assert_eq!(status, 201, "{v}\n{}", log_tail(&log));
    let ih = v["info_hash"].as_str().unwrap().to_owned();
    let rows = outbox_rows(&data);
    let added = rows
        .iter()
        .find(|(k, _, b)| k == "torrent.added" && b.contains(&ih))
        .unwrap_or_else(|| panic!("no torrent.added row after kill -9: {rows:?}"))
        .1
        .clone();

    // Run 2, receiver still down: removal, acknowledged, kill -9.
    let node = start_node(&data, port, &log);
    let (status, v) = http(
        port,
        "DELETE",
        &format!("/api/v1/torrents/{ih}"),
        &admin,
        b"",
    );
    node.kill_9();
    assert_eq!(status, 200, "{v}\n{}", log_tail(&log));
    let rows = outbox_rows(&data);
    let removed = rows
        .iter()
        .find(|(k, _, b)| k == "torrent.removed" && b.contains(&ih))
        .unwrap_or_else(|| panic!("no torrent.removed row after kill -9: {rows:?}"))
        .1
        .clone();

    // Run 3, receiver up: both arrive, in order, with the ids committed with the actions.
    let deliveries = receiver(TcpListener::bind((SEEDER_IP, hook_port)).expect("bind hook"));
    let _node = start_node(&data, port, &log);
    let mut got = Vec::new();
    let end = Instant::now() + DELIVERY_TIMEOUT;
    while !got.iter().any(|(id, _): &(String, Value)| *id == removed) {
        let left = end.saturating_duration_since(Instant::now());
        let d = deliveries
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("not delivered after the restart: {got:?}"));
        got.push(d);
    }
    let first_added = got.iter().position(|(id, _)| *id == added);
    let first_removed = got.iter().position(|(id, _)| *id == removed);
    assert!(
        first_added.is_some() && first_added < first_removed,
        "torrent.added {added} then torrent.removed {removed}: {got:?}"
    );
    let (_, body) = &got[first_removed.unwrap()];
    assert_eq!(body["type"], "torrent.removed");
    assert_eq!(body["data"]["info_hash"], ih.as_str());
}
