//! The HTTP front door over real sockets (issue 11): BEP 19 webseed with ranges compared byte
//! for byte, aria2c downloading from the webseed alone, `.torrent` and magnet links, the JSON
//! API, bearer-token errors (RFC 6750), the `Host` guard, keep-alive and pipelining, and hostile
//! requests (oversized heads and bodies, encoded `..`, bad ranges).

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Deadline, Seeder, TEST_TIMEOUT};
use tempfile::TempDir;

/// A response: status, headers (lowercased names), body.
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response off `s` (by `Content-Length`; `head_only` for HEAD).
fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>, head_only: bool) -> Resp {
    let mut chunk = [0u8; 64 * 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).expect("read response head");
        assert!(
            n > 0,
            "closed before a whole head: {:?}",
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next().unwrap()[9..12].parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let len = if head_only { 0 } else { len };
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).expect("read response body");
        assert!(n > 0, "closed before the whole body");
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[head_end..head_end + len].to_vec();
    buf.drain(..head_end + len);
    Resp {
        status,
        headers,
        body,
    }
}

/// One request on a new connection.
fn get(addr: SocketAddr, path: &str, extra: &str) -> Resp {
    request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n"),
    )
}

fn request(addr: SocketAddr, raw: &str) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    read_response(&mut s, &mut Vec::new(), raw.starts_with("HEAD "))
}

fn seednode(args: &[&str]) -> String {
    let out = Command::new(common::seednode_bin())
        .args(args)
        .output()
        .expect("run seednode");
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// A small multi-file tree and a seeder for it.
fn tree_and_seeder(tmp: &Path, deadline: Deadline) -> (std::path::PathBuf, Seeder) {
    let dir = tmp.join("web tree");
    fs::create_dir_all(dir.join("sub dir")).unwrap();
    common::write_random_file(&dir.join("a.bin"), 300_001, 1);
    common::write_random_file(&dir.join("sub dir/b+c.bin"), 1_234_567, 2);
    let seeder = Seeder::start(&dir, &["--no-dht".as_ref()], tmp, deadline);
    (dir, seeder)
}

#[test]
fn webseed_serves_ranges_byte_for_byte_and_refuses_bad_paths() {
    let deadline = Deadline::after(TEST_TIMEOUT);
    let tmp = TempDir::new().unwrap();
    let (dir, seeder) = tree_and_seeder(tmp.path(), deadline);
    let (addr, ih) = (seeder.listen, seeder.info_hash.to_ascii_lowercase());
    let file = fs::read(dir.join("sub dir/b+c.bin")).unwrap();
    let url = format!("/webseed/{ih}/web%20tree/sub%20dir/b+c.bin");

    let whole = get(addr, &url, "");
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body, file);
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    let etag = whole.header("etag").unwrap().to_owned();
    assert!(whole.header("last-modified").is_some());

    let part = get(addr, &url, "Range: bytes=1000-1999\r\n");
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &file[1000..2000]);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 1000-1999/{}", file.len()).as_str())
    );
    let tail = get(addr, &url, "Range: bytes=-10\r\n");
    assert_eq!(
        (tail.status, &tail.body[..]),
        (206, &file[file.len() - 10..])
    );
    let open = get(addr, &url, "Range: bytes=1234000-\r\n");
    assert_eq!(open.body, &file[1_234_000..]);
    let past = get(addr, &url, "Range: bytes=9999999-\r\n");
    assert_eq!(past.status, 416);
    assert_eq!(
        past.header("content-range"),
        Some(format!("bytes */{}", file.len()).as_str())
    );
    // Several ranges are not served as multipart: the whole file instead (RFC 9110 §14.2).
    let multi = get(addr, &url, "Range: bytes=0-1,5-6\r\n");
    assert_eq!((multi.status, multi.body.len()), (200, file.len()));
    // If-Range: the range only while the validator matches.
    let same = get(
        addr,
        &url,
        &format!("Range: bytes=0-9\r\nIf-Range: {etag}\r\n"),
    );
    assert_eq!((same.status, same.body.len()), (206, 10));
    let changed = get(addr, &url, "Range: bytes=0-9\r\nIf-Range: \"0-0\"\r\n");
    assert_eq!((changed.status, changed.body.len()), (200, file.len()));
    let head = request(addr, &format!("HEAD {url} HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(file.len().to_string().as_str())
    );

    // Paths are names in the torrent, never filesystem paths.
    for bad in [
        format!("/webseed/{ih}/web%20tree/..%2f..%2fetc%2fpasswd"),
        format!("/webseed/{ih}/web%20tree/%2e%2e/a.bin"),
        format!("/webseed/{ih}/web%20tree/sub%20dir/../a.bin"),
    ] {
        let r = get(addr, &bad, "");
        assert!(matches!(r.status, 400 | 404), "{bad}: {}", r.status);
    }
    assert_eq!(
        get(addr, &format!("/webseed/{ih}/other/a.bin"), "").status,
        404
    );
    assert_eq!(
        get(addr, &format!("/webseed/{}/x", "0".repeat(40)), "").status,
        404
    );
    seeder.stop();
}

#[test]
fn aria2c_downloads_from_the_webseed_alone() {
    common::require_aria2c();
    let deadline = Deadline::after(TEST_TIMEOUT);
    let tmp = TempDir::new().unwrap();
    let (dir, seeder) = tree_and_seeder(tmp.path(), deadline);
    let ih = seeder.info_hash.to_ascii_lowercase();
    // The same info dictionary, with a `url-list` and no tracker: peers cannot be found, only
    // the webseed (BEP 19: the client appends the torrent's name and file paths).
    let web = tmp.path().join("web.torrent");
    let url = format!("http://{}/webseed/{ih}/", seeder.listen);
    seednode(&[
        "create",
        dir.to_str().unwrap(),
        "-o",
        web.to_str().unwrap(),
        "--webseed",
        &url,
    ]);
    let out = tmp.path().join("dl");
    let status = Command::new("aria2c")
        .args([
            "--enable-dht=false",
            "--enable-dht6=false",
            "--bt-enable-lpd=false",
            "--enable-peer-exchange=false",
            "--seed-time=0",
            "--summary-interval=0",
            "--file-allocation=none",
            "--console-log-level=warn",
            "--timeout=20",
            "--show-console-readout=false",
        ])
        .arg(format!("--dir={}", out.display()))
        .arg(&web)
        .status()
        .expect("run aria2c");
    assert!(status.success(), "aria2c failed\n{}", seeder.log());
    common::assert_same_tree(&dir, &out.join("web tree"));
    let _ = deadline;
    seeder.stop();
}

#[test]
fn torrent_files_magnets_and_the_api() {
    let deadline = Deadline::after(TEST_TIMEOUT);
    let tmp = TempDir::new().unwrap();
    let (_dir, seeder) = tree_and_seeder(tmp.path(), deadline);
    let (addr, ih) = (seeder.listen, seeder.info_hash.to_ascii_lowercase());

    let t = get(addr, &format!("/t/{ih}.torrent"), "");
    assert_eq!(t.status, 200);
    assert_eq!(t.header("content-type"), Some("application/x-bittorrent"));
    let fetched = tmp.path().join("fetched.torrent");
    fs::write(&fetched, &t.body).unwrap();
    assert_eq!(common::libtorrent_info_hash(&fetched), ih, "same info-hash");
    let m = get(addr, &format!("/t/{}/magnet", ih.to_ascii_uppercase()), "");
    let magnet = String::from_utf8(m.body).unwrap();
    assert!(
        magnet.starts_with(&format!("magnet:?xt=urn:btih:{ih}")),
        "{magnet}"
    );

    let list = get(addr, "/api/v1/torrents", "");
    assert_eq!(list.status, 200);
    assert_eq!(list.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&list.body).unwrap();
    assert_eq!(v["torrents"][0]["info_hash"], ih.as_str());
    assert_eq!(v["torrents"][0]["name"], "web tree");
    assert_eq!(v["torrents"][0]["size_bytes"], 300_001 + 1_234_567);
    let one = get(addr, &format!("/api/v1/torrents/{ih}"), "");
    let v: serde_json::Value = serde_json::from_slice(&one.body).unwrap();
    assert_eq!(v["files"].as_array().unwrap().len(), 2);
    let missing = get(addr, &format!("/api/v1/torrents/{}", "0".repeat(40)), "");
    assert_eq!(missing.status, 404);
    let v: serde_json::Value = serde_json::from_slice(&missing.body).unwrap();
    assert_eq!(v["error"], "no_such_torrent");

    // RFC 6750 §3: a bad token is `invalid_token`; a write without one is refused.
    let bad = get(
        addr,
        "/api/v1/torrents",
        "Authorization: Bearer sn_nope_00\r\n",
    );
    assert_eq!(bad.status, 401);
    assert!(
        bad.header("www-authenticate")
            .unwrap()
            .contains("invalid_token")
    );
    let basic = get(
        addr,
        "/api/v1/torrents",
        "Authorization: Basic dXNlcjpwdw==\r\n",
    );
    assert_eq!(basic.status, 400);
    let post = request(
        addr,
        "POST /api/v1/torrents HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n\r\nabc",
    );
    assert_eq!(post.status, 401);
    assert!(
        post.header("www-authenticate")
            .unwrap()
            .starts_with("Bearer")
    );
    // DNS rebinding: a name the operator did not configure.
    let rebound = request(
        addr,
        "GET /api/v1/torrents HTTP/1.1\r\nHost: evil.example\r\n\r\n",
    );
    assert_eq!(rebound.status, 421);

    let page = get(addr, "/", "");
    let html = String::from_utf8(page.body).unwrap();
    assert!(html.contains("web tree") && html.contains(&format!("/t/{ih}/magnet")));
    assert_eq!(get(addr, "/healthz", "").status, 200);
    seeder.stop();
}

#[test]
fn keep_alive_pipelining_and_hostile_requests() {
    let deadline = Deadline::after(TEST_TIMEOUT);
    let tmp = TempDir::new().unwrap();
    let (_dir, seeder) = tree_and_seeder(tmp.path(), deadline);
    let addr = seeder.listen;

    // Three pipelined requests on one connection, answered in order.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n\
          GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut buf = Vec::new();
    let statuses: Vec<u16> = (0..3)
        .map(|_| read_response(&mut s, &mut buf, false).status)
        .collect();
    assert_eq!(statuses, [200, 404, 200]);
    assert_eq!(
        s.read(&mut [0u8; 16]).unwrap(),
        0,
        "closed after `Connection: close`"
    );

    // Oversized head, oversized body (refused before it is sent), chunked, smuggling.
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    assert_eq!(request(addr, &big).status, 431);
    let huge = "POST /api/v1/torrents HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n";
    assert_eq!(request(addr, huge).status, 413);
    let chunked = "POST /api/v1/torrents HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(request(addr, chunked).status, 411);
    let two = "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n";
    assert_eq!(request(addr, two).status, 400);
    // A body the node would not take is refused from its head alone: nothing of the 5 MiB is
    // sent, and the answer (then the close) comes at once.
    for (head, status) in [
        (
            "POST /api/v1/torrents HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5242880\r\n\r\n",
            401,
        ),
        (
            "POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5242880\r\n\r\n",
            413,
        ),
        (
            "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5242880\r\n\r\n",
            413,
        ),
    ] {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(head.as_bytes()).unwrap();
        let r = read_response(&mut s, &mut Vec::new(), false);
        assert_eq!(r.status, status, "{head}");
        assert_eq!(r.header("connection"), Some("close"));
        assert_eq!(
            s.read(&mut [0u8; 16]).unwrap(),
            0,
            "closed after the refusal"
        );
    }
    // The node still serves after all that.
    assert_eq!(get(addr, "/healthz", "").status, 200);
    seeder.stop();
}

#[test]
fn a_request_trickled_a_byte_a_second_is_cut_off_at_the_head_deadline() {
    let deadline = Deadline::after(TEST_TIMEOUT);
    let tmp = TempDir::new().unwrap();
    let (_dir, seeder) = tree_and_seeder(tmp.path(), deadline);
    let addr = seeder.listen;
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let start = std::time::Instant::now();
    let mut closed_after = None;
    for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "
        .iter()
        .cycle()
        .take(40)
    {
        if s.write_all(&[*b]).is_err() {
            closed_after = Some(start.elapsed());
            break;
        }
        match s.read(&mut [0u8; 512]) {
            Ok(0) => {
                closed_after = Some(start.elapsed());
                break;
            }
            Ok(_) => panic!("a response to an unfinished head"),
            Err(_) => {}
        }
        // Meanwhile the node answers everyone else.
        assert_eq!(get(addr, "/healthz", "").status, 200);
        std::thread::sleep(Duration::from_millis(950));
    }
    let closed_after = closed_after.expect("the trickling connection was never closed");
    assert!(
        (Duration::from_secs(9)..Duration::from_secs(14)).contains(&closed_after),
        "closed after {closed_after:?}, the head deadline is 10 s"
    );
    seeder.stop();
}

/// Runs headless Chromium (Debian `chromium`) on `url` with `extra` flags; its stdout.
fn chromium(url: &str, extra: &[String], profile: &Path) -> String {
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1024,600",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(out.status.success(), "chromium failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_status_page_renders_in_chromium_with_names_escaped() {
    common::require_chromium();
    let deadline = Deadline::after(TEST_TIMEOUT);
    let tmp = TempDir::new().unwrap();
    // A hostile name: it must show as text, never run.
    let dir = tmp.path().join("<img src=x onerror=alert(1)>");
    fs::create_dir_all(&dir).unwrap();
    common::write_random_file(&dir.join("f.bin"), 100_000, 9);
    let seeder = Seeder::start(&dir, &["--no-dht".as_ref()], tmp.path(), deadline);
    let ih = seeder.info_hash.to_ascii_lowercase();
    let url = format!("http://{}/", seeder.listen);
    let dom = chromium(&url, &["--dump-dom".into()], &tmp.path().join("profile"));
    assert!(dom.contains("<h1>seednode</h1>"), "{dom}");
    assert!(
        dom.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "the name is shown as text: {dom}"
    );
    assert!(!dom.contains("<img"), "no element made from a name: {dom}");
    assert!(dom.contains(&format!("href=\"/t/{ih}/magnet\"")));
    assert!(dom.contains(&format!("href=\"/t/{ih}.torrent\"")));
    assert!(dom.contains("1 torrent, 0 peers"), "{dom}");
    // The screenshot is kept as an artefact of the test run.
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("status_page.png");
    let _ = fs::remove_file(&shot);
    chromium(
        &url,
        &[format!("--screenshot={}", shot.display())],
        &tmp.path().join("profile2"),
    );
    let png = fs::read(&shot).expect("chromium wrote the screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    eprintln!("status page screenshot: {}", shot.display());
    seeder.stop();
}

/// Raises this process's soft descriptor limit to its hard limit (the test holds 2,000
/// sockets; CI shells often start at 1,024).
fn raise_open_file_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum || limit.maximum.is_none() {
        limit.current = limit.maximum.or(Some(1 << 20));
        let _ = setrlimit(Resource::Nofile, limit);
    }
}

/// The resident memory of process `pid`, in KiB (`VmRSS` of /proc/PID/status).
fn rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// SECURITY.md's "2,000 idle connections": half silent, half with an unfinished HTTP head, from
/// 250 addresses (8 each, the per-address cap). The table holds at most its 1,000; the oldest
/// unproven ones are evicted for newcomers, so aria2c still downloads the file meanwhile, the
/// API still answers, and the node's memory stays bounded.
#[test]
fn two_thousand_idle_connections_do_not_keep_peers_out() {
    common::require_aria2c();
    raise_open_file_limit();
    let deadline = Deadline::after(TEST_TIMEOUT);
    let tmp = TempDir::new().unwrap();
    let file = tmp.path().join("payload.bin");
    common::write_random_file(&file, 3_000_000, 11);
    let seeder = Seeder::start(&file, &["--no-dht".as_ref()], tmp.path(), deadline);
    let addr = seeder.listen;
    let rss_before = rss_kib(seeder.pid());
    let mut idle = Vec::with_capacity(2_000);
    for i in 0..2_000u32 {
        let ip = std::net::Ipv4Addr::new(127, 3, (i / 8 / 250) as u8, (i / 8 % 250 + 1) as u8);
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        socket
            .bind(&SocketAddr::from((ip, 0)).into())
            .expect("bind 127.3.x.y");
        if socket.connect(&addr.into()).is_err() {
            continue; // the backlog overflowed: refused is fine too
        }
        let mut s: TcpStream = socket.into();
        if i % 2 == 1 {
            let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Never: ");
        }
        idle.push(s);
    }
    assert!(idle.len() > 1_000, "only {} connections opened", idle.len());
    // A real peer gets in and downloads the whole file while the flood stays connected.
    let dl = tmp.path().join("dl");
    common::aria2c_download(
        seeder.torrent.as_os_str(),
        &dl,
        std::net::Ipv4Addr::new(127, 0, 0, 2),
        &seeder,
        deadline,
    );
    common::assert_same_file(&file, &dl.join("payload.bin"));
    let mut answered = false;
    for _ in 0..50 {
        if std::panic::catch_unwind(|| get(addr, "/healthz", "").status == 200).unwrap_or(false) {
            answered = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        answered,
        "the node stopped answering HTTP\n{}",
        seeder.log()
    );
    let metrics = String::from_utf8(get(addr, "/metrics", "").body).unwrap();
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0)
    };
    assert!(value("seednode_connections ") <= 1_000, "{metrics}");
    let rss_after = rss_kib(seeder.pid());
    eprintln!(
        "2,000 idle connections: evicted {}, RSS {rss_before} KiB -> {rss_after} KiB",
        value("seednode_connections_closed_total{reason=\"evicted\"}")
    );
    assert!(
        rss_after < rss_before + 64 * 1024,
        "memory grew by {} KiB under 2,000 idle connections",
        rss_after - rss_before
    );
    drop(idle);
    seeder.stop();
}
