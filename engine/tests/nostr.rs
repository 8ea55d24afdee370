//! Issue 14, Nostr announcements, against a real relay (PyPI `nostr-relay`, started by
//! `tests/support/nostr/relay-up.sh` on 127.0.0.1) and checked with `nostr-tools`
//! (`tests/support/nostr/relay-events.mjs`: REQ by author and kind, `verifyEvent` on each):
//! - after `seednode push FILE` the relay holds a kind 1063 and a kind 2003 whose `x`, `i`,
//!   `magnet` and sizes match the torrent; removing the torrent publishes a kind-5 deletion
//!   naming both; `nostr.published` reaches the audit log;
//! - with NIP-42 auth enforced by the relay (only the node's key may write) the node publishes;
//! - with the relay down at first, the announcement arrives once it is up, across a node
//!   restart in between;
//! - hostile relays (garbage, silence, a flood of NOTICEs) beside the real one: the API keeps
//!   answering, the real relay gets this and a later announcement, and the hostile relays'
//!   rows stay queued with their error.
//!
//! Tools: `SEEDNODE_TEST_NODE_MODULES` (npm packages of tests/support/nostr) and
//! `SEEDNODE_TEST_RELAY_VENV` (the relay's venv), as `scripts/test` exports them; else the
//! defaults under the workspace, else the test prints `SKIPPED: <why>` and returns.

mod common;

use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{SEEDER_IP, free_port, log_tail, seednode_bin, sha256_file, write_random_file};
use seednode_storage::catalog::Catalog;
use serde_json::Value;

/// Longest wait for an announcement to show up on a relay (several retry rounds).
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(90);
/// Longest wait for one command (seednode, node, relay-up.sh).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause between two polls of a relay or the catalog.
const POLL: Duration = Duration::from_millis(500);

struct Tools {
    modules: PathBuf,
    venv: PathBuf,
}

fn tools() -> Option<Tools> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let modules = std::env::var_os("SEEDNODE_TEST_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("tests/support/nostr/node_modules"));
    let venv = std::env::var_os("SEEDNODE_TEST_RELAY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../target/test-relay"));
    if !modules.join("nostr-tools").is_dir() {
        println!(
            "SKIPPED: no nostr-tools in {} (run scripts/test, or npm ci in tests/support/nostr)",
            modules.display()
        );
        return None;
    }
    if !venv.join("bin/nostr-relay").exists() {
        println!(
            "SKIPPED: no nostr-relay venv at {} (SEEDNODE_TEST_RELAY_VENV)",
            venv.display()
        );
        return None;
    }
    Some(Tools { modules, venv })
}

/// A child killed (and reaped) on drop.
struct Proc(Child);

impl Proc {
    fn wait(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(s) = self.0.try_wait().expect("try_wait") {
                return Some(s);
            }
            if Instant::now() >= end {
                return None;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Runs a command to its end (bounded); (success, stdout, stderr).
fn run(cmd: &mut Command) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut p = Proc(
        cmd.stdin(Stdio::null())
            .stdout(fs::File::create(&out).unwrap())
            .stderr(fs::File::create(&err).unwrap())
            .spawn()
            .expect("spawn"),
    );
    let status = p
        .wait(COMMAND_TIMEOUT)
        .unwrap_or_else(|| panic!("{cmd:?} did not finish"));
    (
        status.success(),
        fs::read_to_string(out).unwrap(),
        fs::read_to_string(err).unwrap(),
    )
}

fn seednode(args: &[&str]) -> (bool, String, String) {
    run(Command::new(seednode_bin()).args(args))
}

/// The real relay, stopped (by the PID it wrote) on drop.
struct Relay {
    dir: tempfile::TempDir,
    port: u16,
}

impl Relay {
    fn start(tools: &Tools, port: u16, writers: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("bash");
        cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/nostr/relay-up.sh"))
            .arg(port.to_string())
            .env("VENV", &tools.venv)
            .env("RELAY_DIR", dir.path());
        if let Some(w) = writers {
            cmd.env("RELAY_AUTH", "1").env("RELAY_WRITERS", w);
        }
        let relay = Self { dir, port };
        let (ok, out, err) = run(&mut cmd);
        assert!(
            ok,
            "relay-up.sh failed: {out}{err}\n{}",
            log_tail(&relay.dir.path().join("relay.log"))
        );
        relay
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Ok(pid) = fs::read_to_string(self.dir.path().join("relay.pid")) {
            let pid = pid.trim().to_owned();
            let _ = Command::new("kill").arg(&pid).status();
            for _ in 0..50 {
                let alive = Command::new("kill")
                    .args(["-0", &pid])
                    .stderr(Stdio::null())
                    .status();
                if !alive.is_ok_and(|s| s.success()) {
                    return;
                }
                thread::sleep(Duration::from_millis(100));
            }
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
    }
}

/// The relay's events by `author` of `kinds`, each checked with nostr-tools' `verifyEvent`.
fn relay_events(tools: &Tools, url: &str, author: &str, kinds: &str) -> Vec<Value> {
    // ES modules resolve packages next to the script: run a copy beside a link to them.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("relay-events.mjs");
    fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/nostr/relay-events.mjs"),
        &script,
    )
    .unwrap();
    std::os::unix::fs::symlink(&tools.modules, dir.path().join("node_modules")).unwrap();
    let (ok, out, err) = run(Command::new("node").arg(&script).args([url, author, kinds]));
    assert!(ok, "relay-events.mjs: {err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Polls the relay until `done` holds for its events (bounded).
fn wait_events(
    tools: &Tools,
    url: &str,
    author: &str,
    kinds: &str,
    node: &Node,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let end = Instant::now() + ARRIVAL_TIMEOUT;
    loop {
        let events = relay_events(tools, url, author, kinds);
        if done(&events) {
            return events;
        }
        assert!(
            Instant::now() < end,
            "the relay never got the events: {events:?}\n{}",
            log_tail(&node.log)
        );
        thread::sleep(POLL);
    }
}

/// The values of tag `name` of `event`.
fn tag<'a>(event: &'a Value, name: &str) -> Vec<&'a Value> {
    event["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t[0] == name)
        .collect()
}

fn tag1<'a>(event: &'a Value, name: &str) -> &'a str {
    let t = tag(event, name);
    assert_eq!(t.len(), 1, "one {name} tag in {event}");
    t[0][1].as_str().unwrap()
}

/// A running `seednode run`.
struct Node {
    proc: Proc,
    port: u16,
    log: PathBuf,
}

impl Node {
    fn start(data: &Path, port: u16, log: &Path, extra: &[&str]) -> Self {
        let out = log.with_extension("stdout");
        let mut cmd = Command::new(seednode_bin());
        cmd.arg("run")
            .args(["--data-dir", data.to_str().unwrap()])
            .args(["--listen", &format!("{SEEDER_IP}:{port}")])
            .arg("--no-dht")
            .args(["--nostr-public-url", &format!("http://127.0.0.1:{port}")])
            .args(extra)
            .env("RUST_LOG", "info,seednode::nostr=debug")
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).unwrap())
            .stderr(
                fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)
                    .unwrap(),
            );
        let mut proc = Proc(cmd.spawn().expect("spawn seednode run"));
        let end = Instant::now() + COMMAND_TIMEOUT;
        while !fs::read_to_string(&out).is_ok_and(|s| s.contains("listening: ")) {
            if let Some(status) = proc.wait(Duration::ZERO) {
                panic!("seednode run exited with {status}\n{}", log_tail(log));
            }
            assert!(
                Instant::now() < end,
                "seednode run did not start\n{}",
                log_tail(log)
            );
            thread::sleep(Duration::from_millis(50));
        }
        Self {
            proc,
            port,
            log: log.to_path_buf(),
        }
    }

    /// SIGTERM and a clean exit.
    fn stop(mut self) {
        let pid = self.proc.0.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = self
            .proc
            .wait(COMMAND_TIMEOUT)
            .unwrap_or_else(|| panic!("no exit\n{}", log_tail(&self.log)));
        assert!(status.success(), "{status}\n{}", log_tail(&self.log));
    }

    /// `GET <path>` (an open route): the whole response.
    fn get(&self, path: &str) -> String {
        let mut s = TcpStream::connect((SEEDER_IP, self.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        body
    }

    /// `GET /healthz`: the status line.
    fn healthz(&self) -> String {
        self.get("/healthz").lines().next().unwrap_or("").to_owned()
    }

    /// The value of `/metrics` counter `name`.
    fn metric(&self, name: &str) -> u64 {
        let text = self.get("/metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
    }
}

/// A data directory with a node key and an admin token: (dir, token, node pubkey hex).
fn node_dir(root: &Path) -> (PathBuf, String, String) {
    let data = root.join("data");
    let (ok, out, err) = seednode(&[
        "nostr",
        "key",
        "generate",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let pk = out
        .lines()
        .find_map(|l| l.strip_prefix("hex: "))
        .expect("hex line")
        .to_owned();
    assert!(
        out.contains("npub1") && !out.contains(&read_secret(&data)),
        "show never prints the secret"
    );
    let (ok, tok, err) = seednode(&[
        "token",
        "create",
        "--data-dir",
        data.to_str().unwrap(),
        "--scope",
        "admin,upload,read",
    ]);
    assert!(ok, "{err}");
    (data, tok.trim().to_owned(), pk)
}

fn read_secret(data: &Path) -> String {
    fs::read_to_string(data.join("nostr.key"))
        .unwrap()
        .trim()
        .to_owned()
}

/// `seednode push FILE --sha256`: the info-hash.
fn push(port: u16, token: &str, file: &Path, node: &Node) -> String {
    let (ok, out, err) = seednode(&[
        "push",
        file.to_str().unwrap(),
        "--sha256",
        "--node",
        &format!("{SEEDER_IP}:{port}"),
        "--token",
        token,
    ]);
    assert!(ok, "{err}\n{}", log_tail(&node.log));
    out.lines()
        .find_map(|l| l.strip_prefix("info-hash: "))
        .expect("info-hash line")
        .to_owned()
}

/// Checks the 1063 and 2003 of a pushed single file against the torrent.
fn check_announcement(events: &[Value], ih: &str, file: &Path, port: u16) -> (String, String) {
    let sha = sha256_file(file);
    let size = fs::metadata(file).unwrap().len().to_string();
    let name = file.file_name().unwrap().to_str().unwrap();
    let f = events
        .iter()
        .find(|e| e["kind"] == 1063 && tag1(e, "i") == ih)
        .expect("a kind 1063 for the torrent");
    assert_eq!(tag1(f, "x"), sha, "x is the file's SHA-256");
    assert_eq!(tag1(f, "size"), size);
    assert_eq!(tag1(f, "name"), name);
    assert!(tag1(f, "magnet").starts_with(&format!("magnet:?xt=urn:btih:{ih}")));
    assert_eq!(
        tag1(f, "url"),
        format!("http://127.0.0.1:{port}/webseed/{ih}/{name}")
    );
    assert!(!tag1(f, "m").is_empty());
    let t = events
        .iter()
        .find(|e| e["kind"] == 2003 && tag1(e, "x") == ih)
        .expect("a kind 2003 for the torrent");
    assert_eq!(tag1(t, "title"), name);
    let files = tag(t, "file");
    assert_eq!(files.len(), 1);
    assert_eq!(files[0][1], name);
    assert_eq!(files[0][2], size.as_str());
    (
        f["id"].as_str().unwrap().to_owned(),
        t["id"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn push_is_announced_and_remove_publishes_the_deletion() {
    let Some(tools) = tools() else { return };
    let root = tempfile::tempdir().unwrap();
    let (data, tok, pk) = node_dir(root.path());
    let relay = Relay::start(&tools, free_port(SEEDER_IP), None);
    let port = free_port(SEEDER_IP);
    let node = Node::start(
        &data,
        port,
        &root.path().join("run.log"),
        &["--nostr-relay", &relay.url()],
    );
    let file = root.path().join("announced.bin");
    write_random_file(&file, 300_000, 14);
    let ih = push(port, &tok, &file, &node);
    let events = wait_events(&tools, &relay.url(), &pk, "1063,2003", &node, |e| {
        e.len() >= 2
    });
    let (file_id, torrent_id) = check_announcement(&events, &ih, &file, port);

    let (ok, out, err) = run(Command::new(seednode_bin())
        .args(["remove", &ih, "--node", &format!("{SEEDER_IP}:{port}")])
        .env("SEEDNODE_TOKEN", &tok));
    assert!(ok, "{out}{err}");
    let deletions = wait_events(&tools, &relay.url(), &pk, "5", &node, |e| !e.is_empty());
    let e_tags: Vec<&str> = tag(&deletions[0], "e")
        .iter()
        .map(|t| t[1].as_str().unwrap())
        .collect();
    assert!(
        e_tags.contains(&file_id.as_str()) && e_tags.contains(&torrent_id.as_str()),
        "{e_tags:?}"
    );
    // NIP-09: a relay drops the deleted events.
    let left = wait_events(
        &tools,
        &relay.url(),
        &pk,
        "1063,2003",
        &node,
        <[Value]>::is_empty,
    );
    assert!(left.is_empty());
    node.stop();
    let (ok, audit, err) = seednode(&[
        "audit",
        "--data-dir",
        data.to_str().unwrap(),
        "--kind",
        "nostr.",
        "--json",
    ]);
    assert!(ok, "{err}");
    let audit: Value = serde_json::from_str(&audit).unwrap();
    let published = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "nostr.published")
        .count();
    assert_eq!(
        published, 3,
        "1063, 2003 and the deletion reached the audit log: {audit}"
    );
}

#[test]
fn publishes_to_a_relay_that_demands_nip42_auth() {
    let Some(tools) = tools() else { return };
    let root = tempfile::tempdir().unwrap();
    let (data, tok, pk) = node_dir(root.path());
    let relay = Relay::start(&tools, free_port(SEEDER_IP), Some(&pk));
    // Auth is enforced: nostr-tools publishing with a fresh key is refused.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("relay-roundtrip.mjs");
    fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/nostr/relay-roundtrip.mjs"),
        &script,
    )
    .unwrap();
    std::os::unix::fs::symlink(&tools.modules, dir.path().join("node_modules")).unwrap();
    let (ok, out, _) = run(Command::new("node").arg(&script).arg(relay.url()));
    assert!(!ok, "a stranger may not write: {out}");

    let port = free_port(SEEDER_IP);
    let node = Node::start(
        &data,
        port,
        &root.path().join("run.log"),
        &["--nostr-relay", &relay.url()],
    );
    let file = root.path().join("authed.txt");
    write_random_file(&file, 50_000, 42);
    let ih = push(port, &tok, &file, &node);
    let events = wait_events(&tools, &relay.url(), &pk, "1063,2003", &node, |e| {
        e.len() >= 2
    });
    check_announcement(&events, &ih, &file, port);
    node.stop();
}

#[test]
fn announcement_waits_for_a_relay_that_is_down_across_a_restart() {
    let Some(tools) = tools() else { return };
    let root = tempfile::tempdir().unwrap();
    let (data, tok, pk) = node_dir(root.path());
    let relay_port = free_port(SEEDER_IP);
    let url = format!("ws://127.0.0.1:{relay_port}");
    let port = free_port(SEEDER_IP);
    let log = root.path().join("run.log");
    let node = Node::start(&data, port, &log, &["--nostr-relay", &url]);
    let file = root.path().join("later.bin");
    write_random_file(&file, 100_000, 7);
    let ih = push(port, &tok, &file, &node);
    // Queued, tried, failed: the rows wait in the catalog.
    let catalog = Catalog::open(&data.join("catalog.sqlite")).unwrap();
    let end = Instant::now() + ARRIVAL_TIMEOUT;
    loop {
        let rows = catalog.nostr_rows_of(&ih).unwrap();
        if rows.len() == 2 && rows.iter().all(|r| r.attempts >= 1 && r.state == "pending") {
            assert!(rows.iter().all(|r| r.last_error.is_some()));
            break;
        }
        assert!(Instant::now() < end, "{rows:?}\n{}", log_tail(&log));
        thread::sleep(POLL);
    }
    node.stop();
    let relay = Relay::start(&tools, relay_port, None);
    let node = Node::start(&data, port, &log, &["--nostr-relay", &url]);
    let events = wait_events(&tools, &relay.url(), &pk, "1063,2003", &node, |e| {
        e.len() >= 2
    });
    check_announcement(&events, &ih, &file, port);
    let rows = catalog.nostr_rows_of(&ih).unwrap();
    assert!(rows.iter().all(|r| r.state == "published"), "{rows:?}");
    node.stop();
}

/// Tiny hostile relays on 127.0.0.1, stopped on drop.
struct Hostile {
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
    urls: Vec<String>,
}

impl Hostile {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let mut urls = Vec::new();
        for behaviour in ["garbage", "silent", "flood"] {
            let listener = TcpListener::bind((SEEDER_IP, 0)).unwrap();
            listener.set_nonblocking(true).unwrap();
            urls.push(format!(
                "ws://127.0.0.1:{}",
                listener.local_addr().unwrap().port()
            ));
            let stop = Arc::clone(&stop);
            threads.push(thread::spawn(move || {
                let mut held = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let Ok((s, _)) = listener.accept() else {
                        thread::sleep(Duration::from_millis(20));
                        continue;
                    };
                    s.set_nonblocking(false).unwrap();
                    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
                    match behaviour {
                        "garbage" => {
                            let mut s = s;
                            let _ =
                                s.write_all(b"\x00\xffHTTP/9.9 nonsense\r\n\r\n\x16\x03garbage");
                            held.push(s);
                        }
                        "silent" => held.push(s), // never answers
                        _ => {
                            let stop = Arc::clone(&stop);
                            thread::spawn(move || flood(s, &stop));
                        }
                    }
                }
            }));
        }
        Self {
            stop,
            threads,
            urls,
        }
    }
}

/// Completes the WebSocket handshake, then sends NOTICEs until the peer goes away.
fn flood(s: TcpStream, stop: &AtomicBool) {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let Ok(mut ws) = tungstenite::accept(s) else {
        return;
    };
    for i in 0..1_000_000u32 {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let msg = if i % 3 == 0 {
            "not json".to_owned()
        } else {
            format!("[\"NOTICE\",\"flood {i}\"]")
        };
        if ws.send(tungstenite::Message::text(msg)).is_err() {
            return;
        }
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[test]
fn hostile_relays_cost_bounded_time_and_later_events_still_go_out() {
    let Some(tools) = tools() else { return };
    let root = tempfile::tempdir().unwrap();
    let (data, tok, pk) = node_dir(root.path());
    let hostile = Hostile::start();
    let relay = Relay::start(&tools, free_port(SEEDER_IP), None);
    let mut relays = hostile.urls.clone();
    relays.push(relay.url()); // last: every hostile session comes first
    let config = root.path().join("seednode.toml");
    fs::write(
        &config,
        format!(
            "[nostr]\nrelays = {}\ntimeout_secs = 2\n",
            serde_json::to_string(&relays).unwrap()
        ),
    )
    .unwrap();
    let port = free_port(SEEDER_IP);
    let node = Node::start(
        &data,
        port,
        &root.path().join("run.log"),
        &["--config", config.to_str().unwrap()],
    );
    let first = root.path().join("first.bin");
    write_random_file(&first, 64_000, 1);
    let ih1 = push(port, &tok, &first, &node);
    // While the publisher is busy with the hostile relays, the node answers.
    assert!(node.healthz().contains("200"), "{}", log_tail(&node.log));
    let events = wait_events(&tools, &relay.url(), &pk, "1063,2003", &node, |e| {
        e.len() >= 2
    });
    check_announcement(&events, &ih1, &first, port);
    let second = root.path().join("second.bin");
    write_random_file(&second, 64_000, 2);
    let ih2 = push(port, &tok, &second, &node);
    assert!(node.healthz().contains("200"));
    let events = wait_events(&tools, &relay.url(), &pk, "1063,2003", &node, |e| {
        e.len() >= 4
    });
    check_announcement(&events, &ih2, &second, port);
    // The hostile relays' rows wait for a retry, each with its error.
    let catalog = Catalog::open(&data.join("catalog.sqlite")).unwrap();
    let rows = catalog.nostr_rows_of(&ih1).unwrap();
    for url in &hostile.urls {
        let mine: Vec<_> = rows.iter().filter(|r| &r.relay == url).collect();
        assert_eq!(mine.len(), 2, "{url}: {rows:?}");
        assert!(
            mine.iter()
                .all(|r| r.state == "pending" && r.attempts >= 1 && r.last_error.is_some()),
            "{url}: {mine:?}"
        );
    }
    // Counted on /metrics: four events on the real relay, failures and garbage from the others.
    assert!(node.metric("seednode_nostr_published_total") >= 4);
    assert!(node.metric("seednode_nostr_attempts_failed_total") >= 3);
    assert!(node.metric("seednode_nostr_bad_relay_messages_total") >= 1);
    assert_eq!(node.metric("seednode_nostr_publisher_up"), 1);
    node.stop();
    drop(hostile);
}

/// A torrent added while the node ran without `[nostr]` (after announcing was first enabled)
/// is announced at the next start with relays: the publisher reconciles the catalog.
#[test]
fn torrents_added_while_the_publisher_was_away_are_announced_at_start() {
    let Some(tools) = tools() else { return };
    let root = tempfile::tempdir().unwrap();
    let (data, tok, pk) = node_dir(root.path());
    let relay = Relay::start(&tools, free_port(SEEDER_IP), None);
    let port = free_port(SEEDER_IP);
    let log = root.path().join("run.log");
    Node::start(&data, port, &log, &["--nostr-relay", &relay.url()]).stop();
    let node = Node::start(&data, port, &log, &[]);
    let file = root.path().join("offline.bin");
    write_random_file(&file, 20_000, 3);
    let ih = push(port, &tok, &file, &node);
    node.stop();
    assert!(relay_events(&tools, &relay.url(), &pk, "1063,2003").is_empty());
    let node = Node::start(&data, port, &log, &["--nostr-relay", &relay.url()]);
    let events = wait_events(&tools, &relay.url(), &pk, "1063,2003", &node, |e| {
        e.len() >= 2
    });
    check_announcement(&events, &ih, &file, port);
    node.stop();
}

/// `seednode nostr key import|show` with NIP-19's example key; `seednode run` with relays
/// refuses a key file others may read, and a missing one, naming the fix.
#[test]
fn key_commands_and_an_exposed_key_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let d = data.to_str().unwrap();
    let nsec = "nsec1vl029mgpspedva04g90vltkh6fvh240zqtv9k0t9af8935ke9laqsnlfe5";
    let pk = "7e7e9c42a91bfef19fa929e5fda1b72e0ebc1a4c1141673e2794234d86addf4e";
    let port = free_port(SEEDER_IP).to_string();
    let relay = format!("ws://127.0.0.1:{}", free_port(SEEDER_IP));
    let run_args = [
        "run",
        "--data-dir",
        d,
        "--listen",
        &port,
        "--no-dht",
        "--nostr-relay",
        &relay,
    ];
    let (ok, _, err) = seednode(&run_args);
    assert!(!ok && err.contains("seednode nostr key generate"), "{err}");

    let (ok, out, err) = seednode(&["nostr", "key", "import", nsec, "--data-dir", d]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("hex: {pk}")), "{out}");
    let (ok, out, _) = seednode(&["nostr", "key", "show", "--data-dir", d]);
    assert!(ok);
    assert!(out.contains("npub10elfcs4fr0l0r8af98jlmgdh9c8tcxjvz9qkw038js35mp4dma8qzvjptg"));
    assert!(!out.contains(nsec) && !out.contains(&read_secret(&data)));
    let key = data.join("nostr.key");
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let (ok, _, err) = seednode(&["nostr", "key", "generate", "--data-dir", d]);
    assert!(
        !ok && err.contains("--force"),
        "an existing key is kept: {err}"
    );
    let (ok, _, err) = seednode(&[
        "nostr",
        "key",
        "import",
        "npub1xyz",
        "--data-dir",
        d,
        "--force",
    ]);
    assert!(!ok && err.contains("nsec1"), "{err}");

    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, _, err) = seednode(&run_args);
    assert!(!ok && err.contains("chmod 600"), "{err}");
}

/// `seednode add PATH` of a file already in the content directory: the node reads it to
/// verify it, records its SHA-256 from that read, then (`torrent.verified`) announces it with
/// a kind 1063 whose `x` is that SHA-256.
#[test]
fn a_file_added_in_place_is_announced_once_verified_with_its_sha256() {
    let Some(tools) = tools() else { return };
    let root = tempfile::tempdir().unwrap();
    let (data, tok, pk) = node_dir(root.path());
    let relay = Relay::start(&tools, free_port(SEEDER_IP), None);
    let port = free_port(SEEDER_IP);
    let content = data.join("data");
    fs::create_dir_all(&content).unwrap();
    let file = content.join("in-place.bin");
    write_random_file(&file, 150_000, 4);
    let node = Node::start(
        &data,
        port,
        &root.path().join("run.log"),
        &["--nostr-relay", &relay.url()],
    );
    let (ok, out, err) = seednode(&[
        "add",
        file.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--node",
        &format!("{SEEDER_IP}:{port}"),
        "--token",
        &tok,
        "--json",
    ]);
    assert!(ok, "{err}\n{}", log_tail(&node.log));
    let added: Value = serde_json::from_str(&out).unwrap();
    let ih = added["info_hash"].as_str().unwrap().to_owned();
    let events = wait_events(&tools, &relay.url(), &pk, "1063,2003", &node, |e| {
        e.len() >= 2
    });
    check_announcement(&events, &ih, &file, port);
    node.stop();
}
