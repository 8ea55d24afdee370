//! The long-lived node against the real binary and real SQLite files in temporary directories
//! (issue 11): `token` commands, `catalog add`, and `seednode run` restarted with SIGTERM —
//! fast resume hashes nothing, statistics survive, a changed file's pieces are re-verified
//! (and withheld when they fail) while the rest is served, a missing file is not served, and
//! an unknown configuration key is a clear error.
//!
//! Every process is owned by a `ChildGuard` (killed on drop) and every wait is bounded.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    ChildGuard, Deadline, SEEDER_IP, TEST_TIMEOUT, free_port, log_tail, require_aria2c, run_client,
    seednode_bin, write_random_file,
};

/// The address aria2c downloads from (not the node's own).
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// How long `seednode run` may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// SIGTERM to exit, at most (the bound).
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `seednode ARGS` to completion (bounded); returns success, stdout and stderr.
fn seednode(args: &[&OsStr]) -> (bool, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut cmd = Command::new(seednode_bin());
    cmd.args(args)
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

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// A child process killed and reaped on drop (even during a panic), with its pid at hand for
/// SIGTERM.
struct Guarded(Child);

impl Guarded {
    fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        loop {
            match self.0.try_wait().expect("try_wait") {
                Some(status) => return Some(status),
                None if Instant::now() >= end => return None,
                None => thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// A running `seednode run`.
struct Node {
    child: Guarded,
    port: u16,
    log: PathBuf,
}

impl Node {
    fn start(data_dir: &Path, port: u16, log: &Path) -> Self {
        Self::start_with(data_dir, port, log, &[])
    }

    /// [`Node::start`] with more `seednode run` arguments.
    fn start_with(data_dir: &Path, port: u16, log: &Path, extra: &[&str]) -> Self {
        let out = log.with_extension("stdout");
        let mut cmd = Command::new(seednode_bin());
        cmd.arg("run")
            .args(extra)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(format!("{SEEDER_IP}:{port}"))
            .arg("--no-dht")
            .env("RUST_LOG", "info")
            .stdout(fs::File::create(&out).expect("stdout file"))
            .stderr(fs::File::create(log).expect("log file"));
        let mut child = Guarded(
            cmd.stdin(Stdio::null())
                .spawn()
                .expect("spawn seednode run"),
        );
        let end = Instant::now() + START_TIMEOUT;
        loop {
            if fs::read_to_string(&out).is_ok_and(|s| s.contains("listening: ")) {
                break;
            }
            if let Some(status) = child.wait_timeout(Duration::ZERO) {
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
            child,
            port,
            log: log.to_path_buf(),
        }
    }

    /// `GET /metrics` over loopback (open without a token).
    fn metrics(&self) -> String {
        let mut s = TcpStream::connect((SEEDER_IP, self.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).expect("read metrics");
        body
    }

    /// The value of metric `name`.
    fn metric(&self, name: &str) -> u64 {
        let text = self.metrics();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
    }

    /// Waits (bounded) until metric `name` satisfies `ok`.
    fn wait_metric(&self, name: &str, ok: impl Fn(u64) -> bool) -> u64 {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let v = self.metric(name);
            if ok(v) || Instant::now() >= end {
                return v;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, then a clean exit within [`STOP_TIMEOUT`].
    fn stop(mut self) {
        let pid = self.child_id();
        let killed = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(killed.success());
        let started = Instant::now();
        let status = self
            .child
            .wait_timeout(STOP_TIMEOUT)
            .unwrap_or_else(|| panic!("no exit within {STOP_TIMEOUT:?}\n{}", log_tail(&self.log)));
        assert!(status.success(), "{status}\n{}", log_tail(&self.log));
        eprintln!("node stopped in {:?}", started.elapsed());
    }

    fn child_id(&self) -> u32 {
        self.child.0.id()
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// `seednode create PATH -t http://127.0.0.1:PORT/announce -o OUT --piece-length 16K`.
fn create_torrent(path: &Path, out: &Path, port: u16) {
    let (ok, _, err) = seednode(&[
        os("create"),
        path.as_os_str(),
        os("-t"),
        os(&format!("http://{SEEDER_IP}:{port}/announce")),
        os("-o"),
        out.as_os_str(),
        os("--piece-length"),
        os("16K"),
    ]);
    assert!(ok, "create failed: {err}");
}

fn catalog_add(data_dir: &Path, torrent: &Path, data: &Path) {
    let (ok, out, err) = seednode(&[
        os("catalog"),
        os("--data-dir"),
        data_dir.as_os_str(),
        os("add"),
        torrent.as_os_str(),
        data.as_os_str(),
    ]);
    assert!(ok, "catalog add failed: {err}");
    assert!(out.contains("\tseeding\t"), "{out}");
}

/// `catalog list` rows: (state, uploaded bytes, name).
fn catalog_list(data_dir: &Path) -> Vec<(String, u64, String)> {
    let (ok, out, err) = seednode(&[
        os("catalog"),
        os("--data-dir"),
        data_dir.as_os_str(),
        os("list"),
    ]);
    assert!(ok, "catalog list failed: {err}");
    out.lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[1].to_owned(), f[3].parse().unwrap(), f[4].to_owned())
        })
        .collect()
}

/// Downloads `torrent` with aria2c into `dir` (only file `select`, 1-based, when given).
fn aria2c(torrent: &Path, dir: &Path, select: Option<usize>, deadline: Deadline) {
    fs::create_dir_all(dir).unwrap();
    let log = dir.with_extension("aria2c.log");
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
        "--console-log-level=warn",
        "--log=-",
        "--log-level=info",
    ])
    .arg(format!("--interface={CLIENT_IP}"))
    .arg(format!("--listen-port={}", free_port(CLIENT_IP)))
    .arg(format!("--dir={}", dir.display()))
    .stdin(Stdio::null());
    if let Some(i) = select {
        cmd.arg(format!("--select-file={i}"));
    }
    cmd.arg(torrent);
    run_client("aria2c", &mut cmd, &log, None, deadline);
}

#[test]
fn tokens_are_created_listed_and_revoked_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let dd = data.as_os_str();
    let (ok, out, err) = seednode(&[
        os("token"),
        os("create"),
        os("--data-dir"),
        dd,
        os("--scope"),
        os("read,metrics"),
        os("--label"),
        os("grafana"),
        os("--expires-in"),
        os("3600"),
    ]);
    assert!(ok, "{err}");
    // The token alone on stdout, printed once; the id is its public part.
    let token = out.trim();
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        token.starts_with("sn_") && token.len() == 3 + 12 + 1 + 64,
        "{token}"
    );
    let id = &token[3..15];
    assert!(err.contains(id) && !err.contains(&token[16..]), "{err}");

    let list = |json: bool| {
        let mut args = vec![os("token"), os("list"), os("--data-dir"), dd];
        if json {
            args.push(os("--json"));
        }
        let (ok, out, err) = seednode(&args);
        assert!(ok, "{err}");
        out
    };
    let json: serde_json::Value = serde_json::from_str(&list(true)).unwrap();
    assert_eq!(json[0]["id"], id);
    assert_eq!(json[0]["status"], "active");
    assert_eq!(json[0]["label"], "grafana");
    assert_eq!(json[0]["scopes"], serde_json::json!(["read", "metrics"]));
    assert!(json[0]["expires_at"].as_i64().unwrap() > json[0]["created_at"].as_i64().unwrap());
    let table = list(false);
    assert!(
        table.contains(id) && !table.contains(&token[16..]),
        "{table}"
    );
    // The secret is nowhere in the data directory (only its SHA-256 is).
    for entry in fs::read_dir(&data).unwrap() {
        let bytes = fs::read(entry.unwrap().path()).unwrap();
        assert!(!bytes.windows(64).any(|w| w == &token.as_bytes()[16..]));
    }

    let (ok, _, err) = seednode(&[os("token"), os("revoke"), os(id), os("--data-dir"), dd]);
    assert!(ok, "{err}");
    let json: serde_json::Value = serde_json::from_str(&list(true)).unwrap();
    assert_eq!(json[0]["status"], "revoked");

    let (ok, _, err) = seednode(&[
        os("token"),
        os("revoke"),
        os("000000000000"),
        os("--data-dir"),
        dd,
    ]);
    assert!(!ok && err.contains("no token"), "{err}");
    let (ok, _, err) = seednode(&[
        os("token"),
        os("create"),
        os("--scope"),
        os("root"),
        os("--data-dir"),
        dd,
    ]);
    assert!(!ok && err.contains("--scope"), "{err}");
}

#[test]
fn unknown_config_key_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("seednode.toml");
    fs::write(&config, "listen = \"127.0.0.1:0\"\nmax_conections = 10\n").unwrap();
    let (ok, _, err) = seednode(&[
        os("run"),
        os("--data-dir"),
        dir.path().join("data").as_os_str(),
        os("--config"),
        config.as_os_str(),
    ]);
    assert!(!ok);
    assert!(err.contains("max_conections"), "{err}");
    assert!(err.contains('2'), "the line: {err}");
    // Nothing was started: no catalog either.
    assert!(!dir.path().join("data").exists());
}

#[test]
fn run_resumes_without_hashing_and_keeps_statistics() {
    require_aria2c();
    let deadline = Deadline::after(TEST_TIMEOUT);
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("node");
    let port = free_port(SEEDER_IP);
    let file = dir.path().join("payload.bin");
    write_random_file(&file, 3 * 1024 * 1024 + 12_345, 1);
    let torrent = dir.path().join("payload.torrent");
    create_torrent(&file, &torrent, port);
    catalog_add(&data_dir, &torrent, &file);

    let node = Node::start(&data_dir, port, &dir.path().join("run1.log"));
    assert_eq!(node.metric("seednode_torrents"), 1);
    assert_eq!(node.metric("seednode_rehashed_bytes_total"), 0);
    aria2c(&torrent, &dir.path().join("dl1"), None, deadline);
    common::assert_same_file(&file, &dir.path().join("dl1/payload.bin"));
    let uploaded = node.metric("seednode_uploaded_bytes_total");
    assert!(uploaded >= 3 * 1024 * 1024, "{uploaded}");
    node.stop();
    assert_eq!(
        catalog_list(&data_dir)[0].1,
        uploaded,
        "statistics saved at stop"
    );

    // Restarted: nothing hashed, the total carries on.
    let node = Node::start(&data_dir, port, &dir.path().join("run2.log"));
    assert_eq!(node.metric("seednode_rehashed_bytes_total"), 0);
    assert!(node.log().contains("no hashing"), "{}", node.log());
    aria2c(&torrent, &dir.path().join("dl2"), None, deadline);
    common::assert_same_file(&file, &dir.path().join("dl2/payload.bin"));
    let second = node.metric("seednode_uploaded_bytes_total");
    node.stop();
    let rows = catalog_list(&data_dir);
    assert_eq!(rows[0].0, "seeding");
    assert_eq!(
        rows[0].1,
        uploaded + second,
        "statistics survived the restart"
    );
}

#[test]
fn changed_file_is_reverified_and_a_missing_file_is_not_served() {
    require_aria2c();
    let deadline = Deadline::after(TEST_TIMEOUT);
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("node");
    let port = free_port(SEEDER_IP);
    // A multi-file torrent whose files are whole pieces (16 KiB), so no piece spans two files.
    let tree = dir.path().join("tree");
    write_random_file(&tree.join("a.bin"), 4 * 16 * 1024, 2);
    write_random_file(&tree.join("b.bin"), 12 * 16 * 1024, 3);
    let tree_torrent = dir.path().join("tree.torrent");
    create_torrent(&tree, &tree_torrent, port);
    catalog_add(&data_dir, &tree_torrent, &tree);
    // A second torrent whose file will go missing.
    let lone = dir.path().join("lone.bin");
    write_random_file(&lone, 100_000, 4);
    let lone_torrent = dir.path().join("lone.torrent");
    create_torrent(&lone, &lone_torrent, port);
    catalog_add(&data_dir, &lone_torrent, &lone);

    // While stopped: a.bin's contents change (same length), lone.bin disappears.
    thread::sleep(Duration::from_millis(20)); // a new mtime even on coarse clocks
    write_random_file(&tree.join("a.bin"), 4 * 16 * 1024, 99);
    fs::remove_file(&lone).unwrap();

    let node = Node::start(&data_dir, port, &dir.path().join("run1.log"));
    assert_eq!(
        node.metric("seednode_torrents"),
        1,
        "the missing one is not served"
    );
    // a.bin's 4 pieces are re-verified and fail; nothing else is hashed.
    let rehashed = node.wait_metric("seednode_rehashed_bytes_total", |v| v >= 4 * 16 * 1024);
    assert_eq!(rehashed, 4 * 16 * 1024);
    assert_eq!(
        node.wait_metric("seednode_pieces_failed_total", |v| v >= 4),
        4
    );
    // The rest is served: b.bin downloads.
    aria2c(&tree_torrent, &dir.path().join("dl"), Some(2), deadline);
    common::assert_same_file(&tree.join("b.bin"), &dir.path().join("dl/tree/b.bin"));
    node.stop();
    let rows = catalog_list(&data_dir);
    let lone_row = rows.iter().find(|r| r.2 == "lone.bin").unwrap();
    assert_eq!(lone_row.0, "missing_data");

    // a.bin restored (new mtime, right contents): re-verified once, then resumed for free.
    write_random_file(&tree.join("a.bin"), 4 * 16 * 1024, 2);
    let node = Node::start(&data_dir, port, &dir.path().join("run2.log"));
    let rehashed = node.wait_metric("seednode_rehashed_bytes_total", |v| v >= 4 * 16 * 1024);
    assert_eq!(rehashed, 4 * 16 * 1024);
    thread::sleep(Duration::from_millis(300)); // the file checks reach the catalog
    assert_eq!(node.metric("seednode_pieces_failed_total"), 0);
    aria2c(&tree_torrent, &dir.path().join("dl-all"), None, deadline);
    common::assert_same_tree(&tree, &dir.path().join("dl-all/tree"));
    node.stop();
    let node = Node::start(&data_dir, port, &dir.path().join("run3.log"));
    assert_eq!(node.metric("seednode_rehashed_bytes_total"), 0);
    node.stop();
}

/// `GET path` on the node with optional `Authorization`; the status line's code.
fn api_status(port: u16, path: &str, auth: Option<&str>) -> u16 {
    let mut s = TcpStream::connect((SEEDER_IP, port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = auth.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.get(9..12)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"))
}

#[test]
fn the_api_wants_a_token_with_the_scope_under_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let dd = data.as_os_str();
    let token = |scope: &str| {
        let (ok, out, err) = seednode(&[
            os("token"),
            os("create"),
            os("--data-dir"),
            dd,
            os("--scope"),
            os(scope),
        ]);
        assert!(ok, "{err}");
        out.trim().to_owned()
    };
    let reader = token("read");
    let scraper = token("metrics");
    let admin = token("admin");
    let port = free_port(SEEDER_IP);
    let node = Node::start(&data, port, &dir.path().join("run.log"));
    let list = "/api/v1/torrents";
    // Under `run` the API wants a token even from loopback; /metrics does not.
    assert_eq!(api_status(port, list, None), 401);
    assert_eq!(api_status(port, "/metrics", None), 200);
    assert_eq!(api_status(port, list, Some(&reader)), 200);
    assert_eq!(api_status(port, list, Some(&admin)), 200);
    assert_eq!(api_status(port, list, Some(&scraper)), 403, "no read scope");
    assert_eq!(api_status(port, list, Some("sn_000000000000_00")), 401);
    // A revoked token stops working once the node reloads its table (SIGHUP, or within 2 s).
    let id = &reader[3..15];
    let (ok, _, err) = seednode(&[os("token"), os("revoke"), os(id), os("--data-dir"), dd]);
    assert!(ok, "{err}");
    let killed = Command::new("kill")
        .args(["-HUP", &node.child_id().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(killed.success());
    let end = Instant::now() + Duration::from_secs(10);
    while api_status(port, list, Some(&reader)) != 401 {
        assert!(
            Instant::now() < end,
            "revoked token still accepted\n{}",
            node.log()
        );
        thread::sleep(Duration::from_millis(100));
    }
    node.stop();
}

/// `POST /api/v1/torrents?path=REL` with `body`; the status code and the body.
fn post_torrent(port: u16, rel: &str, token: Option<&str>, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect((SEEDER_IP, port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let mut req = format!(
        "POST /api/v1/torrents?path={rel} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\
         Content-Type: application/x-bittorrent\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    s.write_all(&req).unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

#[test]
fn a_torrent_posted_to_the_api_is_committed_then_seeded() {
    require_aria2c();
    let deadline = Deadline::after(Duration::from_secs(120));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let dd = data.as_os_str();
    let (ok, admin, err) = seednode(&[
        os("token"),
        os("create"),
        os("--data-dir"),
        dd,
        os("--scope"),
        os("admin"),
    ]);
    assert!(ok, "{err}");
    let admin = admin.trim().to_owned();
    let (ok, reader, err) = seednode(&[
        os("token"),
        os("create"),
        os("--data-dir"),
        dd,
        os("--scope"),
        os("read"),
    ]);
    assert!(ok, "{err}");
    let reader = reader.trim().to_owned();
    let port = free_port(SEEDER_IP);
    // The content lives under <data-dir>/data; the API names it relative to that.
    let content = data.join("data").join("albums");
    fs::create_dir_all(&content).unwrap();
    let file = content.join("song.bin");
    write_random_file(&file, 700_000, 77);
    let torrent = dir.path().join("song.torrent");
    create_torrent(&file, &torrent, port);
    let bytes = fs::read(&torrent).unwrap();
    let node = Node::start(&data, port, &dir.path().join("run.log"));

    assert_eq!(post_torrent(port, "albums/song.bin", None, &bytes).0, 401);
    assert_eq!(
        post_torrent(port, "albums/song.bin", Some(&reader), &bytes).0,
        403
    );
    for bad in ["../song.bin", "%2e%2e/x", "/etc/passwd", ""] {
        let (status, body) = post_torrent(port, bad, Some(&admin), &bytes);
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, body) = post_torrent(port, "albums/song.bin", Some(&admin), b"not bencode");
    assert_eq!(status, 400, "{body}");
    let (status, body) = post_torrent(port, "albums/song.bin", Some(&admin), &bytes);
    assert_eq!(status, 201, "{body}\n{}", node.log());
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["seeding"], true);
    let ih = v["info_hash"].as_str().unwrap().to_owned();
    let (status, _) = post_torrent(port, "albums/song.bin", Some(&admin), &bytes);
    assert_eq!(status, 409, "a second add of the same torrent");
    assert_eq!(catalog_list_while_running(port, &reader), vec![ih]);
    // Seeded at once: aria2c downloads it.
    let dl = dir.path().join("dl");
    aria2c(&torrent, &dl, None, deadline);
    assert_eq!(
        fs::read(dl.join("song.bin")).unwrap(),
        fs::read(&file).unwrap()
    );
    node.stop();
    // Durable: the catalog has it after the stop.
    assert_eq!(catalog_list(&data).len(), 1);
}

/// The info-hashes `GET /api/v1/torrents` lists.
fn catalog_list_while_running(port: u16, token: &str) -> Vec<String> {
    let mut s = TcpStream::connect((SEEDER_IP, port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /api/v1/torrents HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let v: serde_json::Value = serde_json::from_str(body).expect("json");
    v["torrents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["info_hash"].as_str().unwrap().to_owned())
        .collect()
}

/// `seednode ARGS` against the node on `port` with `token` (through `SEEDNODE_TOKEN`, as a
/// script would); success, stdout, stderr.
fn companion(port: u16, token: &str, args: &[&OsStr]) -> (bool, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut cmd = Command::new(seednode_bin());
    cmd.args(args)
        .arg("--node")
        .arg(format!("{SEEDER_IP}:{port}"))
        .env("SEEDNODE_TOKEN", token)
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

/// `seednode list --json`: (info-hash, state) of every torrent.
fn companion_list(port: u16, token: &str) -> Vec<(String, String)> {
    let (ok, out, err) = companion(port, token, &[os("list"), os("--json")]);
    assert!(ok, "list failed: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("list --json");
    let mut rows: Vec<(String, String)> = v["torrents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["info_hash"].as_str().unwrap().to_owned(),
                t["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    rows.sort();
    rows
}

/// Whether the node answers a BEP 3 handshake for `ih` (hex) with its own.
fn answers_handshake(port: u16, ih: &str) -> bool {
    let mut s = TcpStream::connect((SEEDER_IP, port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut hs = vec![19u8];
    hs.extend_from_slice(b"BitTorrent protocol");
    hs.extend_from_slice(&[0; 8]);
    for i in 0..20 {
        hs.push(u8::from_str_radix(&ih[2 * i..2 * i + 2], 16).unwrap());
    }
    hs.extend_from_slice(b"-TT0001-abcdefghijkl");
    s.write_all(&hs).unwrap();
    let mut reply = [0u8; 68];
    s.read_exact(&mut reply).is_ok() && reply[28..48] == hs[28..48]
}

#[test]
fn companion_commands_add_list_pause_resume_and_remove() {
    require_aria2c();
    let deadline = Deadline::after(Duration::from_secs(150));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let dd = data.as_os_str();
    let token = |scope: &str| {
        let (ok, t, err) = seednode(&[
            os("token"),
            os("create"),
            os("--data-dir"),
            dd,
            os("--scope"),
            os(scope),
        ]);
        assert!(ok, "{err}");
        t.trim().to_owned()
    };
    let (admin, reader) = (token("admin"), token("read"));
    let port = free_port(SEEDER_IP);
    let content = data.join("data");
    let album = content.join("album");
    fs::create_dir_all(album.join("cd1")).unwrap();
    write_random_file(&album.join("cd1/a.bin"), 300_000, 1);
    write_random_file(&album.join("b.bin"), 200_000, 2);
    let solo = content.join("solo.bin");
    write_random_file(&solo, 500_000, 3);
    let solo_torrent = dir.path().join("solo.torrent");
    create_torrent(&solo, &solo_torrent, port);
    let mut node = Node::start(&data, port, &dir.path().join("run.log"));

    // add: a .torrent (its data at <content>/<name>), and a directory hashed by the command.
    let (ok, out, err) = companion(port, &admin, &[os("add"), solo_torrent.as_os_str()]);
    assert!(ok, "{err}\n{}", node.log());
    assert!(out.contains(": seeding"), "{out}");
    let solo_ih = out
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_end_matches(':')
        .to_owned();
    let (ok, out, err) = companion(
        port,
        &admin,
        &[
            os("add"),
            album.as_os_str(),
            os("--data-dir"),
            dd,
            os("--json"),
        ],
    );
    assert!(ok, "{err}\n{}", node.log());
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let album_ih = v["info_hash"].as_str().unwrap().to_owned();
    // Refusals: a magnet, data outside the content directory, no write scope, a second add.
    let (ok, _, err) = companion(port, &admin, &[os("add"), os("magnet:?xt=urn:btih:00")]);
    assert!(!ok && err.contains("only seeds"), "{err}");
    let (ok, _, err) = companion(
        port,
        &admin,
        &[
            os("add"),
            dir.path()
                .join("solo.torrent")
                .parent()
                .unwrap()
                .as_os_str(),
            os("--data-dir"),
            dd,
        ],
    );
    assert!(
        !ok && err.contains("not inside the node's content directory"),
        "{err}"
    );
    let (ok, _, err) = companion(port, &reader, &[os("add"), solo_torrent.as_os_str()]);
    assert!(!ok && err.contains("403"), "{err}");
    let (ok, _, err) = companion(port, &admin, &[os("add"), solo_torrent.as_os_str()]);
    assert!(!ok && err.contains("409"), "{err}");

    let mut both = vec![
        (album_ih.clone(), "seeding".to_owned()),
        (solo_ih.clone(), "seeding".to_owned()),
    ];
    both.sort();
    assert_eq!(companion_list(port, &reader), both);
    let (ok, table, _) = companion(port, &reader, &[os("list")]);
    assert!(
        ok && table.contains("solo.bin") && table.contains("album"),
        "{table}"
    );

    // pause: the peer wire refuses it at once, the list says so, and a restart keeps it.
    assert!(answers_handshake(port, &solo_ih));
    let (ok, out, err) = companion(port, &admin, &[os("pause"), os(&solo_ih)]);
    assert!(ok && out.contains("paused"), "{out}{err}");
    assert!(
        !answers_handshake(port, &solo_ih),
        "a paused torrent is not served"
    );
    assert_eq!(
        api_status(port, &format!("/t/{solo_ih}.torrent"), None),
        404
    );
    assert!(
        node.metrics()
            .contains("seednode_catalog_torrents{state=\"paused\"} 1")
    );
    node.stop();
    node = Node::start(&data, port, &dir.path().join("run2.log"));
    let listed = companion_list(port, &reader);
    assert!(
        listed.contains(&(solo_ih.clone(), "paused".to_owned())),
        "{listed:?}"
    );
    assert!(!answers_handshake(port, &solo_ih));

    // resume: served again; aria2c downloads it.
    let (ok, out, err) = companion(port, &admin, &[os("resume"), os(&solo_ih)]);
    assert!(ok && out.contains("seeding"), "{out}{err}\n{}", node.log());
    let dl = dir.path().join("dl");
    aria2c(&solo_torrent, &dl, None, deadline);
    assert_eq!(
        fs::read(dl.join("solo.bin")).unwrap(),
        fs::read(&solo).unwrap()
    );

    // remove: a reader may not; an unknown hash is 404; --delete-data deletes only its files.
    let (ok, _, err) = companion(port, &reader, &[os("remove"), os(&album_ih)]);
    assert!(!ok && err.contains("403"), "{err}");
    let (ok, _, err) = companion(port, &admin, &[os("remove"), os(&"ab".repeat(20))]);
    assert!(!ok && err.contains("404"), "{err}");
    fs::write(content.join("keep.txt"), b"not the torrent's").unwrap();
    let (ok, out, err) = companion(
        port,
        &admin,
        &[os("remove"), os(&album_ih), os("--delete-data")],
    );
    assert!(ok, "{out}{err}\n{}", node.log());
    assert!(out.contains("data deleted: 2 files"), "{out}");
    assert!(
        !album.exists(),
        "the album's files and directories are gone"
    );
    assert!(content.join("keep.txt").exists() && solo.exists());
    assert!(!answers_handshake(port, &album_ih));
    assert_eq!(
        companion_list(port, &reader),
        vec![(solo_ih.clone(), "seeding".to_owned())]
    );
    // Durable: a restart brings back neither the removed torrent nor the pause.
    node.stop();
    let node = Node::start(&data, port, &dir.path().join("run3.log"));
    assert_eq!(
        companion_list(port, &reader),
        vec![(solo_ih.clone(), "seeding".to_owned())]
    );
    assert!(answers_handshake(port, &solo_ih));
    node.stop();
}

#[test]
fn the_systemd_unit_verifies_and_the_node_notifies_systemd() {
    // The unit, pointed at the binary under test (verify checks that ExecStart exists).
    let unit = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/seednode.service"),
    )
    .expect("contrib/seednode.service");
    let dir = tempfile::tempdir().unwrap();
    let unit_path = dir.path().join("seednode.service");
    fs::write(
        &unit_path,
        unit.replace(
            "/usr/local/bin/seednode",
            &seednode_bin().display().to_string(),
        ),
    )
    .unwrap();
    for needed in [
        "Type=notify",
        "DynamicUser=yes",
        "StateDirectory=seednode",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=",
        "LimitNOFILE=",
    ] {
        assert!(unit.contains(needed), "the unit lacks {needed}");
    }
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok()
    {
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&unit_path)
            .output()
            .expect("systemd-analyze verify");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "systemd-analyze verify: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The exposure score of `systemd-analyze security` (0 safe … 10 exposed).
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=yes"])
            .arg(&unit_path)
            .output()
            .expect("systemd-analyze security");
        let text = String::from_utf8_lossy(&out.stdout);
        let exposure: f64 = text
            .lines()
            .find_map(|l| l.split("seednode.service: ").nth(1))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
        assert!(exposure <= 2.0, "exposure {exposure} above 2.0:\n{text}");
    } else {
        eprintln!("skipping systemd-analyze: not installed here (the notify half still runs)");
    }

    // Type=notify: READY=1 once listening, STOPPING=1 on SIGTERM, over NOTIFY_SOCKET.
    let socket_path = dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).expect("bind notify");
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let data = dir.path().join("data");
    let port = free_port(SEEDER_IP);
    let log = dir.path().join("run.log");
    let mut cmd = Command::new(seednode_bin());
    cmd.arg("run")
        .arg("--data-dir")
        .arg(&data)
        .arg("--listen")
        .arg(format!("{SEEDER_IP}:{port}"))
        .arg("--no-dht")
        .env("NOTIFY_SOCKET", &socket_path)
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .stdin(Stdio::null());
    let mut child = Guarded(cmd.spawn().expect("spawn seednode run"));
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).expect("READY=1 within 20 s");
    let ready = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(ready.contains("READY=1"), "{ready}");
    // Ready means serving: the API answers at once.
    assert_eq!(api_status(port, "/healthz", None), 200);
    let pid = child.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let n = socket.recv(&mut buf).expect("STOPPING=1");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1"));
    let status = child.wait_timeout(STOP_TIMEOUT).expect("exit within 5 s");
    assert!(status.success(), "{status}\n{}", log_tail(&log));
}

/// A single-file torrent (BEP 3) named `name` whose data is `data` (one piece of 16 KiB).
fn tiny_torrent(name: &str, data: &[u8]) -> Vec<u8> {
    use sha1::Digest as _;
    let pieces = sha1::Sha1::digest(data);
    let mut t = format!(
        "d4:infod6:lengthi{}e4:name{}:{name}12:piece lengthi16384e6:pieces20:",
        data.len(),
        name.len()
    )
    .into_bytes();
    t.extend_from_slice(&pieces);
    t.extend_from_slice(b"ee");
    t
}

/// Issue 11, "Crash": `kill -9` at random moments during a burst of 200 adds, 20 times; each
/// time the catalog opens, passes `PRAGMA integrity_check`, and holds every add that was
/// acknowledged (201 or 202: answered only after the commit); the node then starts again on it.
#[test]
fn kill_9_during_a_burst_of_adds_loses_no_acknowledged_add() {
    const ROUNDS: u64 = 20;
    const ADDS_PER_ROUND: usize = 200;
    const CLIENTS: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (ok, admin, err) = seednode(&[
        os("token"),
        os("create"),
        os("--data-dir"),
        data.as_os_str(),
        os("--scope"),
        os("admin"),
    ]);
    assert!(ok, "{err}");
    let admin = admin.trim().to_owned();
    let content = data.join("data");
    fs::create_dir_all(&content).unwrap();
    let blob: Vec<u8> = (0..16_384u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(content.join("blob.bin"), &blob).unwrap();
    let port = free_port(SEEDER_IP);
    let mut acknowledged: Vec<String> = Vec::new();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..ROUNDS {
        let node = Node::start(&data, port, &dir.path().join(format!("run{round}.log")));
        let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (acked, admin, blob) = (acked.clone(), admin.clone(), blob.clone());
                thread::spawn(move || {
                    for i in (c..ADDS_PER_ROUND).step_by(CLIENTS) {
                        let body = tiny_torrent(&format!("r{round}-{i}"), &blob);
                        let (status, text) = post_torrent(port, "blob.bin", Some(&admin), &body);
                        if status == 201 || status == 202 {
                            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                            acked
                                .lock()
                                .unwrap()
                                .push(v["info_hash"].as_str().unwrap().to_owned());
                        } else if status == 0 {
                            return; // the node is gone
                        }
                    }
                })
            })
            .collect();
        // Somewhere in the burst (xorshift: reproducible).
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        thread::sleep(Duration::from_millis(5 + rng % 250));
        let mut node = node;
        node.child.0.kill().expect("kill -9");
        node.child.wait_timeout(STOP_TIMEOUT).expect("reaped");
        for c in clients {
            let _ = c.join();
        }
        acknowledged.extend(acked.lock().unwrap().drain(..));
        let catalog = seednode_storage::Catalog::open(&data.join("catalog.sqlite"))
            .unwrap_or_else(|e| panic!("round {round}: the catalog does not open: {e}"));
        catalog
            .integrity_check()
            .unwrap_or_else(|e| panic!("round {round}: integrity_check: {e}"));
        let held: std::collections::HashSet<String> = catalog
            .list_torrents()
            .unwrap()
            .iter()
            .map(|t| t.swarm_hash().to_hex())
            .collect();
        let lost: Vec<&String> = acknowledged.iter().filter(|h| !held.contains(*h)).collect();
        assert!(
            lost.is_empty(),
            "round {round}: {} acknowledged adds lost, e.g. {:?}",
            lost.len(),
            lost.first()
        );
    }
    eprintln!(
        "{ROUNDS} kill -9 rounds: {} acknowledged adds, all in the catalog",
        acknowledged.len()
    );
    assert!(
        acknowledged.len() >= ROUNDS as usize,
        "the bursts acknowledged too few adds"
    );
    // And the node seeds from it once more: the adds cut short by a kill are verified once
    // (their first check was never recorded), then a clean restart hashes nothing at all.
    let node = Node::start(&data, port, &dir.path().join("final.log"));
    assert!(node.metric("seednode_torrents") >= acknowledged.len() as u64);
    let mut last = u64::MAX;
    for _ in 0..100 {
        let now = node.metric("seednode_rehashed_bytes_total");
        if now == last {
            break;
        }
        last = now;
        thread::sleep(Duration::from_millis(300));
    }
    node.stop();
    let node = Node::start(&data, port, &dir.path().join("again.log"));
    let torrents = node.metric("seednode_torrents");
    assert!(torrents >= acknowledged.len() as u64);
    assert_eq!(
        node.metric("seednode_rehashed_bytes_total"),
        0,
        "{}",
        node.log()
    );
    eprintln!("clean restart with {torrents} torrents: 0 bytes re-hashed");
    node.stop();
}

/// `GET path` from source address `from` with bearer `token`; the status and the body.
fn get_from(from: Ipv4Addr, port: u16, path: &str, token: &str) -> (u16, String) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&std::net::SocketAddr::from((from, 0)).into())
        .expect("bind the client address");
    socket
        .connect(&std::net::SocketAddr::from((SEEDER_IP, port)).into())
        .expect("connect");
    let mut s: TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

/// Issue 12, "Auth events": failed bearer tokens become `auth.oauth.failed` audit rows; the
/// sixth within a minute from one address locks it out (429 even with a good token, an
/// `auth.lockout` row) while another address goes on; torrent changes are audited with their
/// actor; `seednode audit` and `GET /api/v1/audit` read the log.
#[test]
fn failed_authentications_are_audited_and_lock_the_address_out() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let dd = data.as_os_str();
    let (ok, admin, err) = seednode(&[
        os("token"),
        os("create"),
        os("--data-dir"),
        dd,
        os("--scope"),
        os("admin"),
    ]);
    assert!(ok, "{err}");
    let admin = admin.trim().to_owned();
    let admin_id = admin.get(3..15).unwrap().to_owned();
    let port = free_port(SEEDER_IP);
    let content = data.join("data");
    fs::create_dir_all(&content).unwrap();
    let file = content.join("f.bin");
    write_random_file(&file, 100_000, 9);
    let torrent = dir.path().join("f.torrent");
    create_torrent(&file, &torrent, port);
    let node = Node::start(&data, port, &dir.path().join("run.log"));

    let attacker = Ipv4Addr::new(127, 0, 0, 7);
    let bystander = Ipv4Addr::new(127, 0, 0, 8);
    let bad = format!("sn_{}_{}", "0".repeat(12), "A".repeat(43));
    for i in 0..6 {
        let (status, _) = get_from(attacker, port, "/api/v1/torrents", &bad);
        assert_eq!(status, 401, "attempt {i}");
    }
    // Locked: even the right token is refused from that address, not from another.
    let (status, _) = get_from(attacker, port, "/api/v1/torrents", &admin);
    assert_eq!(status, 429, "{}", node.log());
    assert_eq!(get_from(bystander, port, "/api/v1/torrents", &admin).0, 200);
    // An audited write, with its actor.
    let (status, _) = post_torrent(port, "f.bin", Some(&admin), &fs::read(&torrent).unwrap());
    assert_eq!(status, 201);

    let wanted = |rows: &serde_json::Value| {
        let rows = rows.as_array().unwrap();
        let count = |kind: &str| rows.iter().filter(|r| r["kind"] == kind).count();
        count("auth.oauth.failed") >= 6
            && count("auth.lockout") == 1
            && count("torrent.added") == 1
            && count("auth.oauth.success") >= 1
    };
    // The API (admin), once the loop has flushed the records to the worker.
    let mut api_rows = serde_json::Value::Null;
    for _ in 0..50 {
        let (status, body) = get_from(bystander, port, "/api/v1/audit?limit=100", &admin);
        assert_eq!(status, 200, "{body}");
        api_rows = serde_json::from_str::<serde_json::Value>(&body).unwrap()["events"].clone();
        if wanted(&api_rows) {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    assert!(wanted(&api_rows), "{api_rows:#}");
    let rows = api_rows.as_array().unwrap();
    let failed = rows
        .iter()
        .find(|r| r["kind"] == "auth.oauth.failed")
        .unwrap();
    assert_eq!(failed["source"], "127.0.0.7");
    assert!(failed["actor"].is_null(), "an unknown token names no actor");
    let lockout = rows.iter().find(|r| r["kind"] == "auth.lockout").unwrap();
    assert_eq!(lockout["source"], "127.0.0.7");
    let added = rows.iter().find(|r| r["kind"] == "torrent.added").unwrap();
    assert_eq!(added["actor"], admin_id.as_str());
    assert_eq!(added["details"]["seeding"], true);
    assert!(
        !serde_json::to_string(&api_rows).unwrap().contains(&admin),
        "no secret in the log"
    );
    // The same from the command line, filtered by kind prefix.
    let (ok, out, err) = seednode(&[
        os("audit"),
        os("--data-dir"),
        dd,
        os("--kind"),
        os("auth."),
        os("--json"),
    ]);
    assert!(ok, "{err}");
    let cli_rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        cli_rows
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["kind"].as_str().unwrap().starts_with("auth."))
    );
    assert!(cli_rows.as_array().unwrap().len() >= 8);
    assert_eq!(node.metric("seednode_lockouts_total"), 1);
    node.stop();
}

/// `curl ARGS` (bounded); the HTTP status and the body.
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "20", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (status.trim().parse().unwrap_or(0), body.to_owned())
}

/// Issue 12, OAuth2: a client made with `seednode client create` gets a token from
/// `POST /oauth/token` (RFC 6749 §4.4, HTTP Basic), uses it within its scopes, is introspected
/// (RFC 7662), and loses it the moment it is revoked; errors are RFC 6749 §5.2's.
#[test]
fn oauth2_client_credentials_are_issued_used_introspected_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let dd = data.as_os_str();
    let (ok, out, err) = seednode(&[
        os("client"),
        os("create"),
        os("--data-dir"),
        dd,
        os("--scope"),
        os("upload,read"),
        os("--label"),
        os("ci"),
    ]);
    assert!(ok, "{err}");
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap()
            .to_owned()
    };
    let (id, secret) = (field("client_id"), field("client_secret"));
    let port = free_port(SEEDER_IP);
    let content = data.join("data");
    fs::create_dir_all(&content).unwrap();
    let file = content.join("f.bin");
    write_random_file(&file, 50_000, 4);
    let torrent = dir.path().join("f.torrent");
    create_torrent(&file, &torrent, port);
    let node = Node::start(&data, port, &dir.path().join("run.log"));
    let base = format!("http://{SEEDER_IP}:{port}");
    let basic = format!("{id}:{secret}");

    let (status, body) = curl(&[
        "-u",
        &basic,
        "-d",
        "grant_type=client_credentials",
        &format!("{base}/oauth/token"),
    ]);
    assert_eq!(status, 200, "{body}\n{}", node.log());
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3600);
    assert_eq!(v["scope"], "upload read");
    let access = v["access_token"].as_str().unwrap().to_owned();
    // A narrower scope on request, credentials in the form this time.
    let (status, body) = curl(&[
        "-d",
        &format!("grant_type=client_credentials&scope=read&client_id={id}&client_secret={secret}"),
        &format!("{base}/oauth/token"),
    ]);
    assert_eq!(status, 200, "{body}");
    let read_only: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(read_only["scope"], "read");
    // RFC 6749 §5.2 errors.
    let err_of = |args: &[&str]| {
        let (status, body) = curl(args);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        (status, v["error"].as_str().unwrap_or("").to_owned())
    };
    let token_url = format!("{base}/oauth/token");
    assert_eq!(
        err_of(&[
            "-u",
            &format!("{id}:{}", "0".repeat(64)),
            "-d",
            "grant_type=client_credentials",
            &token_url
        ]),
        (401, "invalid_client".into())
    );
    assert_eq!(
        err_of(&["-u", &basic, "-d", "grant_type=password", &token_url]),
        (400, "unsupported_grant_type".into())
    );
    assert_eq!(
        err_of(&[
            "-u",
            &basic,
            "-d",
            "grant_type=client_credentials&scope=admin",
            &token_url
        ]),
        (400, "invalid_scope".into())
    );

    // The token in use: reads, adds (upload scope), but may not remove (admin).
    let bearer = format!("Authorization: Bearer {access}");
    assert_eq!(
        curl(&["-H", &bearer, &format!("{base}/api/v1/torrents")]).0,
        200
    );
    let (status, body) = post_torrent(port, "f.bin", Some(&access), &fs::read(&torrent).unwrap());
    assert_eq!(status, 201, "{body}");
    let ih = serde_json::from_str::<serde_json::Value>(&body).unwrap()["info_hash"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = curl(&[
        "-X",
        "DELETE",
        "-H",
        &bearer,
        &format!("{base}/api/v1/torrents/{ih}"),
    ]);
    assert_eq!(status, 403);
    let read_bearer = format!(
        "Authorization: Bearer {}",
        read_only["access_token"].as_str().unwrap()
    );
    assert_eq!(
        post_torrent(port, "f.bin", read_only["access_token"].as_str(), b"d1:ae").0,
        403,
        "a read token cannot add"
    );
    assert_eq!(
        curl(&["-H", &read_bearer, &format!("{base}/api/v1/torrents")]).0,
        200
    );

    // Introspection (RFC 7662) by the client itself.
    let introspect = format!("{base}/oauth/introspect");
    let (status, body) = curl(&["-u", &basic, "-d", &format!("token={access}"), &introspect]);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["active"], true);
    assert_eq!(v["client_id"], id.as_str());
    assert_eq!(v["scope"], "upload read");
    let (_, body) = curl(&["-u", &basic, "-d", "token=sno_garbage", &introspect]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["active"],
        false
    );
    assert_eq!(
        curl(&["-d", &format!("token={access}"), &introspect]).0,
        401
    );

    // Revoked while the node runs: the token dies within the reload interval.
    let (ok, _, err) = seednode(&[os("client"), os("revoke"), os("--data-dir"), dd, os(&id)]);
    assert!(ok, "{err}");
    let mut status = 0;
    for _ in 0..50 {
        status = curl(&["-H", &bearer, &format!("{base}/api/v1/torrents")]).0;
        if status == 401 {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(status, 401, "a revoked client's token still works");
    assert_eq!(
        err_of(&[
            "-u",
            &basic,
            "-d",
            "grant_type=client_credentials",
            &token_url
        ])
        .1,
        "invalid_client"
    );
    let (ok, out, _) = seednode(&[os("client"), os("list"), os("--data-dir"), dd, os("--json")]);
    assert!(ok && out.contains("\"revoked\""), "{out}");
    node.stop();
}

/// Sends `request` on a fresh TCP connection from `from` and reads the node's reply line (the
/// node closes after it; at most 1,024 bytes, as the existing clients read).
fn raw_upload(from: Ipv4Addr, port: u16, request: &[u8]) -> String {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&std::net::SocketAddr::from((from, 0)).into())
        .expect("bind the client address");
    socket
        .connect(&std::net::SocketAddr::from((SEEDER_IP, port)).into())
        .expect("connect");
    let mut s: TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request).unwrap();
    let mut reply = vec![0u8; 1024];
    let mut n = 0;
    while n < reply.len() {
        match s.read(&mut reply[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
        if reply[..n].contains(&b'\n') {
            break;
        }
    }
    String::from_utf8_lossy(&reply[..n]).into_owned()
}

/// Issue 12, the seed's exact client flow with only a TCP socket: a torrent made by mktorrent is
/// pushed as `UPLOAD_TORRENT:<token>:<bytes>`; the reply is `OK <info-hash> <magnet>`, and
/// aria2c and libtorrent download it from the node. A bad token is `ERR auth` and an audit row;
/// the sixth bad one within a minute locks that address out while another goes on; hostile
/// framings get their `ERR` codes; nothing is stored for any refusal.
#[test]
fn raw_tcp_upload_torrent_is_stored_and_seeded() {
    common::require_mktorrent();
    require_aria2c();
    let deadline = Deadline::after(Duration::from_secs(150));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let dd = data.as_os_str();
    let token = |scope: &str| {
        let (ok, t, err) = seednode(&[
            os("token"),
            os("create"),
            os("--data-dir"),
            dd,
            os("--scope"),
            os(scope),
        ]);
        assert!(ok, "{err}");
        t.trim().to_owned()
    };
    let (uploader, reader) = (token("upload"), token("read"));
    let port = free_port(SEEDER_IP);
    let content = data.join("data");
    fs::create_dir_all(&content).unwrap();
    let file = content.join("video.bin");
    write_random_file(&file, 1_500_000, 21);
    let torrent = dir.path().join("video.torrent");
    common::mktorrent(
        &file,
        &torrent,
        &format!("http://{SEEDER_IP}:{port}/announce"),
        16,
    );
    let bytes = fs::read(&torrent).unwrap();
    let node = Node::start(&data, port, &dir.path().join("run.log"));
    let client = Ipv4Addr::new(127, 0, 0, 21);
    let frame = |tok: &str, body: &[u8]| {
        let mut f = format!("UPLOAD_TORRENT:{tok}:").into_bytes();
        f.extend_from_slice(body);
        f
    };

    // Refusals first: nothing may be stored by any of them.
    assert!(raw_upload(client, port, &frame(&reader, &bytes)).starts_with("ERR scope "));
    let mut trailing = frame(&uploader, &bytes);
    trailing.extend_from_slice(b"extra");
    assert!(raw_upload(client, port, &trailing).starts_with("ERR malformed "));
    assert!(
        raw_upload(client, port, &frame(&uploader, b"d4:infod4:name1:xee"))
            .starts_with("ERR malformed ")
    );
    // 64 KiB of token (16x the limit): it fits the loopback socket buffers, so the node's early
    // `ERR` never races a reset of bytes still being written (the 1 MB case is the codec's
    // unit test).
    let huge_token = format!("UPLOAD_TORRENT:{}", "a".repeat(64 * 1024));
    assert!(raw_upload(client, port, huge_token.as_bytes()).starts_with("ERR too_large "));
    assert!(
        companion_list(port, &reader).is_empty(),
        "a refusal stored something"
    );

    // The flow: OK, then downloads from the node by two real clients.
    let reply = raw_upload(client, port, &frame(&uploader, &bytes));
    assert!(
        reply.starts_with("OK ") && reply.ends_with('\n'),
        "{reply:?}\n{}",
        node.log()
    );
    let fields: Vec<&str> = reply.trim_end().split(' ').collect();
    assert_eq!(fields.len(), 3, "{reply}");
    let ih = fields[1].to_owned();
    assert_eq!(ih.len(), 40);
    assert!(
        fields[2].starts_with(&format!("magnet:?xt=urn:btih:{ih}")),
        "{reply}"
    );
    assert!(raw_upload(client, port, &frame(&uploader, &bytes)).starts_with("ERR exists "));
    assert_eq!(
        companion_list(port, &reader),
        vec![(ih.clone(), "seeding".to_owned())]
    );
    let dl = dir.path().join("aria2c");
    aria2c(&torrent, &dl, None, deadline);
    assert_eq!(
        fs::read(dl.join("video.bin")).unwrap(),
        fs::read(&file).unwrap()
    );
    if Command::new(common::PYTHON)
        .args(["-c", "import libtorrent"])
        .status()
        .is_ok_and(|s| s.success())
    {
        let lt = dir.path().join("lt");
        fs::create_dir_all(&lt).unwrap();
        let mut cmd = Command::new(common::PYTHON);
        cmd.arg(common::support_file("lt_download.py"))
            .arg(&torrent)
            .arg("--save-dir")
            .arg(&lt)
            .arg("--peer")
            .arg(format!("{SEEDER_IP}:{port}"))
            .arg("--listen")
            .arg(format!(
                "127.0.0.22:{}",
                free_port(Ipv4Addr::new(127, 0, 0, 22))
            ))
            .arg("--timeout")
            .arg("60");
        run_client(
            "lt_download.py",
            &mut cmd,
            &lt.with_extension("log"),
            None,
            deadline,
        );
        assert_eq!(
            fs::read(lt.join("video.bin")).unwrap(),
            fs::read(&file).unwrap()
        );
    }

    // Bad tokens: ERR auth five times, the sixth locks 127.0.0.23 out; 127.0.0.24 goes on.
    let attacker = Ipv4Addr::new(127, 0, 0, 23);
    let bad = format!("sn_{}_{}", "1".repeat(12), "2".repeat(64));
    for _ in 0..6 {
        assert!(raw_upload(attacker, port, &frame(&bad, &bytes)).starts_with("ERR auth "));
    }
    let locked = raw_upload(attacker, port, &frame(&uploader, b"d1:ai1ee"));
    assert!(
        locked.starts_with("ERR auth ") && locked.contains("too many"),
        "{locked}"
    );
    let other = raw_upload(
        Ipv4Addr::new(127, 0, 0, 24),
        port,
        &frame(&uploader, b"d1:ae"),
    );
    assert!(other.starts_with("ERR malformed "), "{other}");

    // Audited: the failures, the lockout, the stored upload with its actor.
    let (ok, out, err) = seednode(&[os("audit"), os("--data-dir"), dd, os("--json")]);
    assert!(ok, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    let kinds: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "auth.oauth.failed",
        "auth.lockout",
        "upload.completed",
        "upload.rejected",
        "torrent.added",
    ] {
        assert!(kinds.contains(&kind), "no {kind} in {kinds:?}");
    }
    node.stop();
}

/// SECURITY.md / issue 12: 1,000 concurrent half-open uploads (a token and no end of torrent,
/// from 125 addresses) hold no catalog row and do not keep a real upload out: past 8 in
/// progress the flood's token gets `ERR busy`, another token's upload is stored, and the node's
/// memory stays bounded.
#[test]
fn a_thousand_half_open_uploads_do_not_block_a_real_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (ok, uploader, err) = seednode(&[
        os("token"),
        os("create"),
        os("--data-dir"),
        data.as_os_str(),
        os("--scope"),
        os("upload"),
    ]);
    assert!(ok, "{err}");
    let uploader = uploader.trim().to_owned();
    // The real upload comes with another token: the flood's token gets ERR busy past its
    // per-token limit of uploads in progress.
    let (ok, other, err) = seednode(&[
        os("token"),
        os("create"),
        os("--data-dir"),
        data.as_os_str(),
        os("--scope"),
        os("upload"),
    ]);
    assert!(ok, "{err}");
    let other = other.trim().to_owned();
    let port = free_port(SEEDER_IP);
    let node = Node::start(&data, port, &dir.path().join("run.log"));
    let pid = node.child_id();
    let rss = || -> u64 {
        fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    };
    let before = rss();
    let mut half_open = Vec::new();
    for i in 0..1_000u32 {
        let ip = Ipv4Addr::new(127, 4, (i / 8 / 250) as u8, (i / 8 % 250 + 1) as u8);
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(&std::net::SocketAddr::from((ip, 0)).into())
            .unwrap();
        if socket
            .connect(&std::net::SocketAddr::from((SEEDER_IP, port)).into())
            .is_err()
        {
            continue;
        }
        let mut s: TcpStream = socket.into();
        // A torrent that never ends: a dictionary opened, a long string promised.
        let _ = s.write_all(format!("UPLOAD_TORRENT:{uploader}:d4:infod6:pieces99999:").as_bytes());
        half_open.push(s);
    }
    assert!(half_open.len() > 900);
    let content = data.join("data");
    fs::create_dir_all(&content).unwrap();
    let file = content.join("late.bin");
    write_random_file(&file, 40_000, 5);
    let torrent = dir.path().join("late.torrent");
    create_torrent(&file, &torrent, port);
    let mut frame = format!("UPLOAD_TORRENT:{uploader}:").into_bytes();
    frame.extend_from_slice(&fs::read(&torrent).unwrap());
    let busy = raw_upload(Ipv4Addr::new(127, 0, 0, 31), port, &frame);
    assert!(busy.starts_with("ERR busy "), "{busy}");
    let mut frame = format!("UPLOAD_TORRENT:{other}:").into_bytes();
    frame.extend_from_slice(&fs::read(&torrent).unwrap());
    let reply = raw_upload(Ipv4Addr::new(127, 0, 0, 31), port, &frame);
    assert!(reply.starts_with("OK "), "{reply}\n{}", node.log());
    let after = rss();
    eprintln!("1,000 half-open uploads: RSS {before} KiB -> {after} KiB");
    assert!(
        after < before + 64 * 1024,
        "memory grew by {} KiB",
        after - before
    );
    drop(half_open);
    // Only the real upload is in the catalog.
    node.stop();
    let (ok, out, err) = seednode(&[
        os("catalog"),
        os("--data-dir"),
        data.as_os_str(),
        os("list"),
    ]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
}

/// Issue 12, quotas: a token allowed one torrent stores one (`OK`) and is refused the next with
/// `ERR quota`; over the API the same cap is 403.
#[test]
fn a_token_past_its_quota_gets_err_quota() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (ok, tok, err) = seednode(&[
        os("token"),
        os("create"),
        os("--data-dir"),
        data.as_os_str(),
        os("--scope"),
        os("upload"),
        os("--quota-torrents"),
        os("1"),
    ]);
    assert!(ok, "{err}");
    let tok = tok.trim().to_owned();
    let port = free_port(SEEDER_IP);
    let content = data.join("data");
    fs::create_dir_all(&content).unwrap();
    let mut torrents = Vec::new();
    for i in 0..3u64 {
        let file = content.join(format!("q{i}.bin"));
        write_random_file(&file, 30_000, 40 + i);
        let torrent = dir.path().join(format!("q{i}.torrent"));
        create_torrent(&file, &torrent, port);
        torrents.push(fs::read(&torrent).unwrap());
    }
    // Uploads also on a port of their own (--upload), which speaks nothing else.
    let upload_port = free_port(SEEDER_IP);
    let node = Node::start_with(
        &data,
        port,
        &dir.path().join("run.log"),
        &["--upload", &format!("{SEEDER_IP}:{upload_port}")],
    );
    let frame = |body: &[u8]| {
        let mut f = format!("UPLOAD_TORRENT:{tok}:").into_bytes();
        f.extend_from_slice(body);
        f
    };
    let client = Ipv4Addr::new(127, 0, 0, 41);
    let not_upload = raw_upload(client, upload_port, b"GET / HTTP/1.1\r\n\r\n");
    assert!(not_upload.starts_with("ERR malformed "), "{not_upload}");
    assert!(raw_upload(client, upload_port, &frame(&torrents[0])).starts_with("OK "));
    let refused = raw_upload(client, port, &frame(&torrents[1]));
    assert!(refused.starts_with("ERR quota "), "{refused}");
    let (status, body) = post_torrent(port, "q2.bin", Some(&tok), &torrents[2]);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("quota"), "{body}");
    node.stop();
}

/// Issue 12, `UPLOAD_FILE`: a file streamed over a plain socket is stored, hashed as it arrived
/// into the very torrent `seednode create` makes of it (same info-hash), seeded at once with
/// nothing re-hashed, and downloaded by aria2c through the node's `.torrent`; a wrong `sha256`
/// and a taken name leave nothing behind.
#[test]
fn upload_file_streams_a_file_into_a_seeded_torrent() {
    require_aria2c();
    let deadline = Deadline::after(Duration::from_secs(120));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (ok, tok, err) = seednode(&[
        os("token"),
        os("create"),
        os("--data-dir"),
        data.as_os_str(),
        os("--scope"),
        os("upload"),
    ]);
    assert!(ok, "{err}");
    let tok = tok.trim().to_owned();
    let port = free_port(SEEDER_IP);
    let original = dir.path().join("movie.bin");
    write_random_file(&original, 3_000_000, 77);
    let payload = fs::read(&original).unwrap();
    let sha256 = common::sha256_file(&original);
    let node = Node::start(&data, port, &dir.path().join("run.log"));
    let client = Ipv4Addr::new(127, 0, 0, 51);
    let send = |header: String, body: &[u8]| -> (String, String) {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(&std::net::SocketAddr::from((client, 0)).into())
            .unwrap();
        socket
            .connect(&std::net::SocketAddr::from((SEEDER_IP, port)).into())
            .unwrap();
        let mut s: TcpStream = socket.into();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(header.as_bytes()).unwrap();
        let mut reader = std::io::BufReader::new(s.try_clone().unwrap());
        let mut first = String::new();
        std::io::BufRead::read_line(&mut reader, &mut first).unwrap();
        if !first.starts_with("UPLOAD ") {
            return (first, String::new());
        }
        s.write_all(body).unwrap();
        let mut second = String::new();
        let _ = std::io::BufRead::read_line(&mut reader, &mut second);
        (first, second)
    };
    let (first, done) = send(
        format!(
            "UPLOAD_FILE {tok} {} movie.bin sha256={sha256}\n",
            payload.len()
        ),
        &payload,
    );
    assert!(
        first.starts_with("UPLOAD ") && first.trim_end().ends_with(" 0"),
        "{first}"
    );
    assert!(done.starts_with("OK "), "{done}\n{}", node.log());
    let ih = done.split(' ').nth(1).unwrap().to_owned();
    // The same info-hash as `seednode create` of the same bytes.
    let created = dir.path().join("created.torrent");
    let (ok, out, err) = seednode(&[
        os("create"),
        original.as_os_str(),
        os("-o"),
        created.as_os_str(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("info-hash: {ih}")), "{out} vs {ih}");
    assert_eq!(fs::read(data.join("data/movie.bin")).unwrap(), payload);
    assert_eq!(
        node.metric("seednode_rehashed_bytes_total"),
        0,
        "nothing read back"
    );
    // aria2c downloads it through the node's own .torrent.
    let (status, torrent) = {
        let mut s = TcpStream::connect((SEEDER_IP, port)).unwrap();
        write!(
            s,
            "GET /t/{ih}.torrent HTTP/1.1\r\nHost: {SEEDER_IP}:{port}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        (
            String::from_utf8_lossy(&raw[9..12]).into_owned(),
            raw[split + 4..].to_vec(),
        )
    };
    assert_eq!(status, "200");
    let torrent_path = dir.path().join("from-node.torrent");
    fs::write(&torrent_path, torrent).unwrap();
    let dl = dir.path().join("dl");
    aria2c(&torrent_path, &dl, None, deadline);
    assert_eq!(fs::read(dl.join("movie.bin")).unwrap(), payload);
    // A wrong sha256: refused at the end, nothing left; a taken name: refused at once.
    let (_, wrong) = send(
        format!(
            "UPLOAD_FILE {tok} {} other.bin sha256={}\n",
            payload.len(),
            "0".repeat(64)
        ),
        &payload,
    );
    assert!(wrong.starts_with("ERR malformed "), "{wrong}");
    assert!(!data.join("data/other.bin").exists());
    let (taken, _) = send(format!("UPLOAD_FILE {tok} 10 movie.bin\n"), b"0123456789");
    assert!(taken.starts_with("ERR exists "), "{taken}");
    let (ok, out, _) = seednode(&[
        os("audit"),
        os("--data-dir"),
        data.as_os_str(),
        os("--kind"),
        os("upload."),
    ]);
    assert!(
        ok && out.contains("upload.completed") && out.contains("upload.rejected"),
        "{out}"
    );
    node.stop();
}

/// One request a receiver got: header names (lower-cased) and values, and the body.
type Received = (Vec<(String, String)>, Vec<u8>);

/// A one-thread HTTP receiver on 127.0.0.1 that answers 200 to everything and records each
/// request's head (lower-cased header names) and body.
fn webhook_receiver() -> (u16, std::sync::mpsc::Receiver<Received>) {
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

/// Issue 13: an endpoint registered with `seednode webhook add` receives the node's events as
/// Standard Webhooks POSTs (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<HMAC>`
/// over `id.timestamp.body`, checked here with ring), from the durable outbox; `webhook test`
/// queues a test event for it.
#[test]
fn webhooks_deliver_signed_events_from_the_outbox() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let dd = data.as_os_str();
    let (hook_port, received) = webhook_receiver();
    let key = [7u8; 32];
    let secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    );
    let (ok, out, err) = seednode(&[
        os("webhook"),
        os("add"),
        os(&format!("http://{SEEDER_IP}:{hook_port}/hook")),
        os("--kinds"),
        os("torrent.,webhook.test"),
        os("--secret"),
        os(&secret),
        os("--allow-private"),
        os("--data-dir"),
        dd,
    ]);
    assert!(ok, "{err}");
    let hook_id = out.trim().strip_prefix("webhook_id=").unwrap().to_owned();
    // Without --allow-private a loopback receiver is refused at registration (SSRF).
    let (ok, _, err) = seednode(&[
        os("webhook"),
        os("add"),
        os(&format!("http://{SEEDER_IP}:{hook_port}/hook")),
        os("--data-dir"),
        dd,
    ]);
    assert!(!ok, "a loopback URL was accepted without --allow-private");
    assert!(!err.is_empty());
    let (ok, admin, err) = seednode(&[
        os("token"),
        os("create"),
        os("--data-dir"),
        dd,
        os("--scope"),
        os("admin"),
    ]);
    assert!(ok, "{err}");
    let admin = admin.trim().to_owned();
    let port = free_port(SEEDER_IP);
    let content = data.join("data");
    fs::create_dir_all(&content).unwrap();
    let file = content.join("w.bin");
    write_random_file(&file, 20_000, 3);
    let torrent = dir.path().join("w.torrent");
    create_torrent(&file, &torrent, port);
    // A second endpoint from the configuration file ([[webhook]]), registered at start.
    let (config_port, config_received) = webhook_receiver();
    let config = dir.path().join("hooks.toml");
    fs::write(
        &config,
        format!(
            "[[webhook]]\nurl = \"http://{SEEDER_IP}:{config_port}/c\"\nkinds = [\"torrent.added\"]\n\
             secrets = [\"{secret}\"]\nallow_private = true\n"
        ),
    )
    .unwrap();
    let node = Node::start_with(
        &data,
        port,
        &dir.path().join("run.log"),
        &["--config", config.to_str().unwrap()],
    );
    let (status, body) = post_torrent(port, "w.bin", Some(&admin), &fs::read(&torrent).unwrap());
    assert_eq!(status, 201, "{body}");
    let ih = serde_json::from_str::<serde_json::Value>(&body).unwrap()["info_hash"]
        .as_str()
        .unwrap()
        .to_owned();

    let check = |(headers, body): Received| -> serde_json::Value {
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
        };
        let (id, ts, sig) = (
            get("webhook-id"),
            get("webhook-timestamp"),
            get("webhook-signature"),
        );
        let hmac_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
        let mut signed = format!("{id}.{ts}.").into_bytes();
        signed.extend_from_slice(&body);
        let expected = base64::engine::general_purpose::STANDARD
            .encode(ring::hmac::sign(&hmac_key, &signed).as_ref());
        assert!(
            sig.split(' ').any(|s| s == format!("v1,{expected}")),
            "bad signature {sig} (expected v1,{expected})"
        );
        assert!(id.starts_with("msg_"));
        serde_json::from_slice(&body).unwrap()
    };
    let event = check(
        received
            .recv_timeout(Duration::from_secs(20))
            .expect("torrent.added delivered"),
    );
    assert_eq!(event["type"], "torrent.added", "{event}");
    assert_eq!(event["data"]["info_hash"], ih.as_str());
    let from_config = check(
        config_received
            .recv_timeout(Duration::from_secs(20))
            .expect("the [[webhook]] endpoint got torrent.added"),
    );
    assert_eq!(from_config["type"], "torrent.added");
    let (ok, out, err) = seednode(&[
        os("webhook"),
        os("test"),
        os(&hook_id),
        os("--data-dir"),
        dd,
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("queued msg_"), "{out}");
    // The add's `torrent.verified` (the node read the new data) may come first, in order.
    let mut event = check(
        received
            .recv_timeout(Duration::from_secs(20))
            .expect("webhook.test delivered"),
    );
    if event["type"] == "torrent.verified" {
        assert_eq!(event["data"]["info_hash"], ih.as_str());
        event = check(
            received
                .recv_timeout(Duration::from_secs(20))
                .expect("webhook.test delivered"),
        );
    }
    assert_eq!(event["type"], "webhook.test");
    let (ok, out, _) = seednode(&[
        os("webhook"),
        os("list"),
        os("--json"),
        os("--data-dir"),
        dd,
    ]);
    assert!(ok && out.contains("\"pending\":0"), "{out}");
    node.stop();
}

/// Issue 12: `seednode push FILE` gives the info-hash `seednode create` gives, the node re-reads
/// nothing; and an upload cut at a random offset and continued with `UPLOAD_RESUME` (from the
/// offset the node names) yields that same info-hash.
#[test]
fn push_and_a_resumed_upload_give_the_create_info_hash() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (ok, tok, err) = seednode(&[
        os("token"),
        os("create"),
        os("--data-dir"),
        data.as_os_str(),
        os("--scope"),
        os("upload"),
    ]);
    assert!(ok, "{err}");
    let tok = tok.trim().to_owned();
    let port = free_port(SEEDER_IP);
    let node = Node::start(&data, port, &dir.path().join("run.log"));
    let create_ih = |path: &Path| {
        let (ok, out, err) = seednode(&[
            os("create"),
            path.as_os_str(),
            os("-o"),
            dir.path().join("x.torrent").as_os_str(),
            os("--force"),
        ]);
        assert!(ok, "{err}");
        out.lines()
            .find_map(|l| l.strip_prefix("info-hash: "))
            .unwrap()
            .to_owned()
    };

    // seednode push.
    let pushed = dir.path().join("pushed.bin");
    write_random_file(&pushed, 9_000_000, 91);
    let (ok, out, err) = seednode(&[
        os("push"),
        pushed.as_os_str(),
        os("--sha256"),
        os("--node"),
        os(&format!("{SEEDER_IP}:{port}")),
        os("--token"),
        os(&tok),
    ]);
    assert!(ok, "{err}\n{}", node.log());
    assert!(
        out.contains(&format!("info-hash: {}", create_ih(&pushed))),
        "{out}"
    );

    // Cut, then resumed.
    let cut_file = dir.path().join("resumed.bin");
    write_random_file(&cut_file, 5_000_000, 92);
    let bytes = fs::read(&cut_file).unwrap();
    let cut = 1_234_567;
    let upload_id = {
        let mut s = TcpStream::connect((SEEDER_IP, port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        writeln!(s, "UPLOAD_FILE {tok} {} resumed.bin", bytes.len()).unwrap();
        let mut reader = std::io::BufReader::new(s.try_clone().unwrap());
        let mut first = String::new();
        std::io::BufRead::read_line(&mut reader, &mut first).unwrap();
        assert!(first.starts_with("UPLOAD "), "{first}");
        s.write_all(&bytes[..cut]).unwrap();
        first.split(' ').nth(1).unwrap().to_owned()
        // The connection drops here.
    };
    // The node saves its checkpoint when it sees the drop; retry until it has.
    let mut done = String::new();
    for _ in 0..50 {
        let mut s = TcpStream::connect((SEEDER_IP, port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        writeln!(s, "UPLOAD_RESUME {tok} {upload_id} {cut}").unwrap();
        let mut reader = std::io::BufReader::new(s.try_clone().unwrap());
        let mut first = String::new();
        std::io::BufRead::read_line(&mut reader, &mut first).unwrap();
        if first.starts_with("ERR busy") || first.starts_with("ERR auth") {
            thread::sleep(Duration::from_millis(100));
            continue;
        }
        assert!(
            first.starts_with(&format!("UPLOAD {upload_id} ")),
            "{first}"
        );
        let offset: usize = first
            .trim_end()
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(offset <= cut, "the node claims {offset} of {cut} bytes");
        s.write_all(&bytes[offset..]).unwrap();
        std::io::BufRead::read_line(&mut reader, &mut done).unwrap();
        break;
    }
    assert!(done.starts_with("OK "), "{done}\n{}", node.log());
    assert_eq!(done.split(' ').nth(1).unwrap(), create_ih(&cut_file));
    assert_eq!(fs::read(data.join("data/resumed.bin")).unwrap(), bytes);
    assert_eq!(node.metric("seednode_rehashed_bytes_total"), 0);
    let partial = data.join("data/.seednode-partial");
    let leftovers = |id: &str| {
        fs::read_dir(&partial)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().starts_with(id))
                    .count()
            })
            .unwrap_or(0)
    };
    assert_eq!(
        leftovers(&upload_id),
        0,
        "a finished upload leaves no partial file"
    );
    // An upload dropped and never resumed is removed at a start past its expiry.
    let abandoned = {
        let mut s = TcpStream::connect((SEEDER_IP, port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        writeln!(s, "UPLOAD_FILE {tok} 1000000 abandoned.bin").unwrap();
        let mut reader = std::io::BufReader::new(s.try_clone().unwrap());
        let mut first = String::new();
        std::io::BufRead::read_line(&mut reader, &mut first).unwrap();
        s.write_all(&[7u8; 1000]).unwrap();
        first.split(' ').nth(1).unwrap().to_owned()
    };
    let end = Instant::now() + Duration::from_secs(10);
    while leftovers(&abandoned) < 2 && Instant::now() < end {
        thread::sleep(Duration::from_millis(50)); // .part and .ckpt
    }
    assert!(leftovers(&abandoned) >= 1);
    node.stop();
    thread::sleep(Duration::from_millis(1100));
    let config = dir.path().join("expiry.toml");
    fs::write(&config, "upload_expiry_secs = 1\n").unwrap();
    let node = Node::start_with(
        &data,
        port,
        &dir.path().join("run2.log"),
        &["--config", config.to_str().unwrap()],
    );
    assert_eq!(leftovers(&abandoned), 0, "{}", node.log());
    node.stop();
}

/// Issue 14, "One content identity": a hybrid torrent added over the API has each file's
/// SHA-256 recorded by the node's own verification read (no second pass), and
/// `GET /api/v1/lookup/<hash>` finds it by the v1 and v2 info-hashes, the file's SHA-256 and
/// its BEP 52 pieces root; the webseed URL it gives serves the same bytes; the answer survives
/// a restart; bad, unknown and unauthenticated lookups are refused.
#[test]
fn lookup_finds_content_by_info_hash_sha256_and_pieces_root() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let dd = data.as_os_str();
    let (ok, token, err) = seednode(&[
        os("token"),
        os("create"),
        os("--data-dir"),
        dd,
        os("--scope"),
        os("read"),
    ]);
    assert!(ok, "{err}");
    let token = token.trim().to_owned();
    let (ok, admin, err) = seednode(&[
        os("token"),
        os("create"),
        os("--data-dir"),
        dd,
        os("--scope"),
        os("admin"),
    ]);
    assert!(ok, "{err}");
    let admin = admin.trim().to_owned();
    let port = free_port(SEEDER_IP);
    let album = data.join("data").join("album");
    fs::create_dir_all(&album).unwrap();
    write_random_file(&album.join("a.bin"), 300_000, 11);
    write_random_file(&album.join("b.bin"), 70_000, 12);
    let torrent = dir.path().join("album.torrent");
    let (ok, _, err) = seednode(&[
        os("create"),
        album.as_os_str(),
        os("--hybrid"),
        os("-o"),
        torrent.as_os_str(),
    ]);
    assert!(ok, "{err}");
    let node = Node::start(&data, port, &dir.path().join("run.log"));
    let (ok, out, err) = companion(
        port,
        &admin,
        &[os("add"), torrent.as_os_str(), os("--json")],
    );
    assert!(ok, "{err}\n{}", node.log());
    let added: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ih = added["info_hash"].as_str().unwrap().to_owned();

    let sha_a = common::sha256_file(&album.join("a.bin"));
    let lookup = |hash: &str| get_from(SEEDER_IP, port, &format!("/api/v1/lookup/{hash}"), &token);
    // The SHA-256 is recorded once the node's verification read of the new torrent is done.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (status, body) = loop {
        let (status, body) = lookup(&sha_a);
        if status == 200 || Instant::now() >= deadline {
            break (status, body);
        }
        thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status, 200, "{body}\n{}", node.log());
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let m = &v["matches"][0];
    assert_eq!(m["matched_by"], "sha256", "{body}");
    assert_eq!(m["info_hash"], ih.as_str());
    assert_eq!(m["name"], "album");
    assert_eq!(m["file"]["path"], "a.bin");
    assert_eq!(m["file"]["length"], 300_000);
    assert_eq!(m["file"]["sha256"], sha_a.as_str());
    let root = m["file"]["pieces_root"].as_str().unwrap().to_owned();
    let v2 = m["info_hash_v2"].as_str().unwrap().to_owned();
    assert_ne!(
        root, sha_a,
        "a 300 kB file's root is a merkle root, not its SHA-256"
    );

    // The webseed URL the answer gives serves the file's bytes.
    let mut s = TcpStream::connect((SEEDER_IP, port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let url = m["file"]["webseed"].as_str().unwrap();
    write!(
        s,
        "GET {url} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    s.read_to_end(&mut response).unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    assert!(response.starts_with(b"HTTP/1.1 200"), "{url}");
    assert!(
        response[split + 4..] == fs::read(album.join("a.bin")).unwrap()[..],
        "{url}"
    );

    for (hash, by) in [
        (ih.as_str(), "info_hash_v1"),
        (v2.as_str(), "info_hash_v2"),
        (&v2[..40], "swarm_hash_v2"),
        (root.as_str(), "pieces_root"),
    ] {
        let (status, body) = lookup(hash);
        assert_eq!(status, 200, "{hash}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["matches"][0]["matched_by"], by, "{body}");
        assert_eq!(v["matches"][0]["name"], "album", "{body}");
    }
    let (status, _) = lookup(&"ab".repeat(32));
    assert_eq!(status, 404);
    for bad in ["xyz", "abc", &"g".repeat(64), &"ab".repeat(21)] {
        assert_eq!(lookup(bad).0, 400, "{bad}");
    }
    assert_eq!(
        get_from(SEEDER_IP, port, &format!("/api/v1/lookup/{sha_a}"), "nope").0,
        401
    );

    // Durable: after a restart (no re-hash: the files are unchanged), still found.
    node.stop();
    let node = Node::start(&data, port, &dir.path().join("run2.log"));
    let (status, body) = lookup(&sha_a);
    assert_eq!(status, 200, "{body}");
    assert_eq!(node.metric("seednode_rehashed_bytes_total"), 0);
    node.stop();
}
