//! The command line as a new user meets it (issue 10): existing .torrent files are reused or
//! left alone, symbolic links are followed inside the input and reported otherwise, peers are
//! visible at the default log level, checks come before hashing, familiar flag forms work, and
//! `seednode info` agrees with libtorrent.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{
    Deadline, PYTHON, SEEDER_IP, Seeder, TEST_TIMEOUT, aria2c_download, assert_same_tree,
    free_port, mktorrent, require_aria2c, require_libtorrent, require_mktorrent, seednode_bin,
    write_random_file,
};

/// How long a `seed` started by [`Running::start`] may take to print `listening:`.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `seednode ARGS` to its end (commands that do not seed).
fn run(args: &[&OsStr]) -> Output {
    Command::new(seednode_bin())
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .expect("run seednode")
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of the `key: value` line of `text`.
fn line<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(": ")))
}

/// A `seednode seed` with arbitrary arguments, killed on drop; stdout lines up to `listening:`
/// and stderr in a file.
struct Running {
    child: Child,
    stdout: String,
    stderr_log: PathBuf,
}

impl Running {
    fn start(args: &[&OsStr], dir: &Path) -> Self {
        let stderr_log = dir.join(format!("seed-{}.stderr", free_port(SEEDER_IP)));
        let mut child = Command::new(seednode_bin())
            .arg("seed")
            .args(args)
            .env("RUST_LOG", "info")
            // Never ask the sandbox's own gateway for port mappings (tests/nat.rs runs its own).
            .env("SEEDNODE_NO_NAT", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&stderr_log).expect("stderr log"))
            .spawn()
            .expect("start seednode seed");
        let out = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let mut stdout = String::new();
        while let Ok(l) = rx.recv_timeout(START_TIMEOUT) {
            stdout.push_str(&l);
            stdout.push('\n');
            if l.starts_with("listening: ") {
                break;
            }
        }
        let running = Self {
            child,
            stdout,
            stderr_log,
        };
        assert!(
            line(&running.stdout, "listening").is_some(),
            "seed {args:?} did not start:\n{}\n{}",
            running.stdout,
            running.log()
        );
        running
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn listen_arg() -> String {
    format!("127.0.0.1:{}", free_port(SEEDER_IP))
}

/// Seed arguments that keep a test on loopback and off the public DHT.
fn quiet<'a>(listen: &'a str, extra: &[&'a str]) -> Vec<&'a OsStr> {
    let mut args: Vec<&OsStr> = vec![os("--listen"), os(listen), os("--no-dht")];
    args.extend(extra.iter().map(|a| os(a)));
    args
}

#[test]
fn a_foreign_torrent_that_matches_is_reused_byte_for_byte() {
    require_mktorrent();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.bin");
    write_random_file(&data, 700_000, 1);
    let torrent = dir.path().join("data.bin.torrent");
    mktorrent(&data, &torrent, "http://tracker.example/announce", 16);
    let before = fs::read(&torrent).unwrap();

    let listen = listen_arg();
    let mut args = vec![data.as_os_str()];
    args.extend(quiet(&listen, &[]));
    let seed = Running::start(&args, dir.path());
    assert_eq!(fs::read(&torrent).unwrap(), before, "the .torrent changed");
    assert_eq!(
        Path::new(line(&seed.stdout, "torrent").unwrap()),
        torrent,
        "{}",
        seed.stdout
    );
    let log = seed.log();
    assert!(log.contains("reusing it as it is"), "{log}");
    assert!(
        log.contains("does not name this node's tracker"),
        "a reused torrent without this node's tracker is reported: {log}"
    );
    drop(seed);
    assert_eq!(fs::read(&torrent).unwrap(), before);
}

#[test]
fn a_torrent_that_does_not_match_is_left_alone_with_a_hint() {
    require_mktorrent();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.bin");
    write_random_file(&data, 300_000, 2);
    let torrent = dir.path().join("data.bin.torrent");
    mktorrent(&data, &torrent, "http://tracker.example/announce", 15);
    let before = fs::read(&torrent).unwrap();
    // Same length, other bytes: only hashing tells.
    write_random_file(&data, 300_000, 3);
    let listen = listen_arg();
    let mut args = vec![os("seed"), data.as_os_str()];
    args.extend(quiet(&listen, &[]));
    let out = run(&args);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("-o FILE") && err.contains("--force"), "{err}");
    assert_eq!(fs::read(&torrent).unwrap(), before);
    // Another length: refused before hashing (and before the port is bound).
    write_random_file(&data, 300_001, 3);
    let out = run(&args);
    assert!(
        stderr(&out).contains("does not match the data"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs::read(&torrent).unwrap(), before);
    // A file that is no torrent at all.
    fs::write(&torrent, b"not bencode").unwrap();
    let out = run(&args);
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(fs::read(&torrent).unwrap(), b"not bencode");
    // --force replaces it.
    let mut forced = vec![os("create"), data.as_os_str(), os("--force")];
    forced.push(os("-t"));
    forced.push(os("http://t.example/a"));
    let out = run(&forced);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_ne!(fs::read(&torrent).unwrap(), b"not bencode");
}

/// `t/` with files, links inside it (followed) and links out of it (skipped and named).
fn linked_tree(dir: &Path) -> PathBuf {
    let root = dir.join("t");
    fs::create_dir_all(root.join("real/sub")).unwrap();
    fs::create_dir_all(dir.join("outside")).unwrap();
    write_random_file(&root.join("real/a.bin"), 100_000, 4);
    write_random_file(&root.join("real/sub/b.bin"), 50_000, 5);
    write_random_file(&dir.join("outside/secret"), 10_000, 6);
    symlink("real/a.bin", root.join("a-link")).unwrap();
    symlink("real/sub", root.join("sub-link")).unwrap();
    symlink("../outside/secret", root.join("out-link")).unwrap();
    symlink(dir.join("outside"), root.join("abs-link")).unwrap();
    root
}

fn info_json(torrent: &Path) -> String {
    let out = run(&[os("info"), os("--json"), torrent.as_os_str()]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

#[test]
fn links_inside_are_followed_and_others_skipped_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let root = linked_tree(dir.path());
    let torrent = dir.path().join("t.torrent");
    let out = run(&[os("create"), root.as_os_str()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json = info_json(&torrent);
    let files = json.split("\"files\":").nth(1).unwrap();
    let files = &files[..files.find(']').unwrap()];
    assert_eq!(
        files,
        "[{\"path\":\"t/a-link\",\"length\":100000},{\"path\":\"t/real/a.bin\",\"length\":100000},\
         {\"path\":\"t/real/sub/b.bin\",\"length\":50000},{\"path\":\"t/sub-link/b.bin\",\"length\":50000}"
    );
    let err = stderr(&out);
    let warning = err
        .lines()
        .find(|l| l.contains("symbolic link"))
        .unwrap_or_else(|| panic!("no warning: {err}"));
    assert!(
        warning.contains("2 symbolic links not in the torrent"),
        "{warning}"
    );
    assert!(
        warning.contains("out-link") && warning.contains("abs-link"),
        "{warning}"
    );
    assert!(
        err.contains("hashing: 100%"),
        "directory progress without a terminal: {err}"
    );

    // --symlinks skip: no link, every one counted.
    let skipped = dir.path().join("skip.torrent");
    let out = run(&[
        os("create"),
        root.as_os_str(),
        os("--symlinks"),
        os("skip"),
        os("-o"),
        skipped.as_os_str(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("4 symbolic links not in the torrent"),
        "{}",
        stderr(&out)
    );
    assert!(!info_json(&skipped).contains("a-link"));
}

#[test]
fn aria2c_download_shows_peer_lines_at_the_default_level() {
    require_aria2c();
    let deadline = Deadline::after(TEST_TIMEOUT);
    let dir = tempfile::tempdir().unwrap();
    let root = linked_tree(dir.path());
    let seeder = Seeder::start(
        &root,
        &[os("--summary-interval"), os("1")],
        dir.path(),
        deadline,
    );
    let downloads = dir.path().join("dl");
    aria2c_download(
        seeder.torrent.as_os_str(),
        &downloads,
        Ipv4Addr::new(127, 0, 0, 21),
        &seeder,
        deadline,
    );
    // The links' files arrive as files of their own.
    assert_same_tree(&root.join("real"), &downloads.join("t/real"));
    assert_same_tree(&root.join("real/sub"), &downloads.join("t/sub-link"));
    let mut log = String::new();
    for _ in 0..50 {
        log = seeder.log();
        if log.contains("peer left") && log.contains("summary") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(log.contains("peer connected"), "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("peer client") && l.contains("aria2")),
        "{log}"
    );
    assert!(
        log.lines().any(|l| l.contains("peer left")
            && l.contains("uploaded_bytes=")
            && l.contains("secs=")),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("summary") && l.contains("peers=") && l.contains("upload=")),
        "{log}"
    );
    seeder.stop();
}

#[test]
fn paths_and_outputs_are_checked_before_ports_and_hashing() {
    let dir = tempfile::tempdir().unwrap();
    let busy = TcpListener::bind((SEEDER_IP, 0)).unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    let missing = dir.path().join("missing");
    let out = run(&[
        os("seed"),
        missing.as_os_str(),
        os("--listen"),
        os(&busy_addr),
        os("--no-dht"),
    ]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("missing") && !err.contains("cannot listen"),
        "{err}"
    );

    let data = dir.path().join("data.bin");
    write_random_file(&data, 100_000, 7);
    let out = run(&[
        os("seed"),
        data.as_os_str(),
        os("--listen"),
        os(&busy_addr),
        os("--no-dht"),
    ]);
    let err = stderr(&out);
    assert!(
        err.contains("cannot listen") && err.contains("--listen"),
        "{err}"
    );
    assert!(!err.contains("hashing"), "hashed before binding: {err}");
    assert!(!dir.path().join("data.bin.torrent").exists());

    let nowhere = dir.path().join("no-such-dir/x.torrent");
    let listen = listen_arg();
    let out = run(&[
        os("seed"),
        data.as_os_str(),
        os("-o"),
        nowhere.as_os_str(),
        os("--listen"),
        os(&listen),
        os("--no-dht"),
    ]);
    let err = stderr(&out);
    assert!(
        err.contains("cannot write") && err.contains("-o FILE"),
        "{err}"
    );
    assert!(
        !err.contains("hashing"),
        "hashed before checking the output: {err}"
    );
}

#[test]
fn short_and_unit_flag_forms_give_the_same_torrent_as_the_long_forms() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.bin");
    write_random_file(&data, 3_000_000, 8);
    let make = |name: &str, args: &[&str]| -> Vec<u8> {
        let out_path = dir.path().join(name);
        let mut all = vec![
            os("create"),
            data.as_os_str(),
            os("-o"),
            out_path.as_os_str(),
        ];
        all.extend(args.iter().map(|a| os(a)));
        let out = run(&all);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        fs::read(&out_path).unwrap()
    };
    let long = make(
        "long.torrent",
        &[
            "--tracker",
            "http://a.example/announce",
            "--piece-length",
            "1048576",
            "--comment",
            "hello",
            "--source",
            "SRC",
            "--name",
            "renamed.bin",
            "--webseed",
            "http://w.example/data.bin",
        ],
    );
    let short = make(
        "short.torrent",
        &[
            "-a",
            "http://a.example/announce",
            "--piece-length",
            "1M",
            "-c",
            "hello",
            "-s",
            "SRC",
            "-n",
            "renamed.bin",
            "-w",
            "http://w.example/data.bin",
        ],
    );
    assert_eq!(long, short);
    let info = info_json(&dir.path().join("short.torrent"));
    for want in [
        "\"name\":\"renamed.bin\"",
        "\"piece_length\":1048576",
        "\"source\":\"SRC\"",
        "\"comment\":\"hello\"",
        "\"trackers\":[[\"http://a.example/announce\"]]",
        "\"webseeds\":[\"http://w.example/data.bin\"]",
    ] {
        assert!(info.contains(want), "{want} in {info}");
    }
    assert_eq!(
        make("k.torrent", &["--piece-length", "256K"]),
        make("bytes.torrent", &["--piece-length", "262144"])
    );

    // seed: -p, --listen :PORT and --listen IP, and the torrent options `create` has.
    let port = free_port(Ipv4Addr::UNSPECIFIED);
    let p = port.to_string();
    let seed = Running::start(
        &[
            data.as_os_str(),
            os("--listen"),
            os("127.0.0.1"),
            os("-p"),
            os(&p),
            os("--no-dht"),
            os("-o"),
            dir.path().join("seed.torrent").as_os_str(),
            os("--private"),
            os("--tracker"),
            os("http://b.example/announce"),
            os("--webseed"),
            os("http://w.example/x"),
            os("--source"),
            os("S2"),
            os("--comment"),
            os("c2"),
        ],
        dir.path(),
    );
    assert_eq!(
        line(&seed.stdout, "listening"),
        Some(&*format!("127.0.0.1:{p}"))
    );
    drop(seed);
    let info = info_json(&dir.path().join("seed.torrent"));
    for want in [
        "\"private\":true",
        "\"source\":\"S2\"",
        "\"comment\":\"c2\"",
        "http://b.example/announce",
        "\"webseeds\":[\"http://w.example/x\"]",
    ] {
        assert!(info.contains(want), "{want} in {info}");
    }
    let colon = format!(":{}", free_port(Ipv4Addr::UNSPECIFIED));
    let seed = Running::start(
        &[
            data.as_os_str(),
            os("--listen"),
            os(&colon),
            os("--no-dht"),
            os("--announce-host"),
            os("127.0.0.1"),
            os("-o"),
            dir.path().join("colon.torrent").as_os_str(),
        ],
        dir.path(),
    );
    // `:PORT` is every interface: dual-stack `[::]`, or `0.0.0.0` where IPv6 is off.
    let listening = line(&seed.stdout, "listening").unwrap_or_default();
    assert!(
        listening == format!("[::]{colon}") || listening == format!("0.0.0.0{colon}"),
        "{listening}"
    );
}

#[test]
fn seed_torrent_accepts_the_download_directory_that_holds_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let downloads = dir.path().join("downloads");
    let root = downloads.join("album");
    write_random_file(&root.join("one.bin"), 40_000, 9);
    write_random_file(&root.join("two/three.bin"), 30_000, 10);
    let torrent = dir.path().join("album.torrent");
    let out = run(&[
        os("create"),
        root.as_os_str(),
        os("-o"),
        torrent.as_os_str(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    for (path, said) in [
        (&root, "PATH is the torrent's own data"),
        (
            &downloads,
            "PATH is the directory that holds the torrent's data",
        ),
    ] {
        let listen = listen_arg();
        let mut args = vec![path.as_os_str(), os("--torrent"), torrent.as_os_str()];
        args.extend(quiet(&listen, &[]));
        let seed = Running::start(&args, dir.path());
        assert!(seed.log().contains(said), "{}", seed.log());
    }
    // A trackerless torrent names no announce URL it does not hold.
    let listen = listen_arg();
    let mut args = vec![downloads.as_os_str(), os("--torrent"), torrent.as_os_str()];
    args.extend(quiet(&listen, &[]));
    let seed = Running::start(&args, dir.path());
    let log = seed.log();
    let seeding = log.lines().find(|l| l.contains(" seeding")).unwrap();
    assert!(
        seeding.contains("trackers=none") && !seeding.contains("http://"),
        "{seeding}"
    );
}

#[test]
fn every_interface_is_announced_by_one_reachable_address_and_dht_failures_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.bin");
    write_random_file(&data, 50_000, 11);
    let listen = format!("0.0.0.0:{}", free_port(Ipv4Addr::UNSPECIFIED));
    let seed = Running::start(
        &[
            data.as_os_str(),
            os("--listen"),
            os(&listen),
            os("--dht-bootstrap"),
            os("a.invalid:6881"),
            os("--dht-bootstrap"),
            os("b.invalid:6881"),
            os("--dht-state"),
            dir.path().join("dht").as_os_str(),
        ],
        dir.path(),
    );
    let mut log = seed.log();
    for _ in 0..100 {
        if log.contains("DHT node started") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        log = seed.log();
    }
    let every: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("listening on every interface"))
        .collect();
    assert_eq!(every.len(), 1, "{log}");
    assert!(
        every[0].contains("announcing") && every[0].contains("--announce-host"),
        "{log}"
    );
    let dht: Vec<&str> = log.lines().filter(|l| l.contains("bootstrap")).collect();
    assert_eq!(dht.len(), 1, "{log}");
    assert!(dht[0].contains("2 of 2"), "{log}");
}

#[test]
fn version_completions_and_man_page() {
    let out = run(&[os("--version")]);
    let version = stdout(&out);
    let commit = version
        .trim()
        .strip_prefix(concat!("seednode ", env!("CARGO_PKG_VERSION"), " ("))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{version}"));
    assert!(
        commit == "unknown" || (commit.len() >= 7 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "{version}"
    );
    for shell in ["bash", "zsh", "fish"] {
        let out = run(&[os("completions"), os(shell)]);
        assert!(
            out.status.success() && stdout(&out).contains("seednode"),
            "{shell}"
        );
    }
    let out = run(&[os("man")]);
    assert!(
        stdout(&out).starts_with(".ie") || stdout(&out).contains(".TH"),
        "{}",
        stdout(&out)
    );
    let dir = tempfile::tempdir().unwrap();
    let out = run(&[os("man"), os("--dir"), dir.path().as_os_str()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.path().join("seednode-seed.1").exists());
}

/// libtorrent's reading of a .torrent, as `seednode info --json` writes the same fields.
const LT_INFO: &str = r#"
import sys, json, libtorrent as lt
ti = lt.torrent_info(sys.argv[1])
fs = ti.files()
ih = ti.info_hashes()
files = [{"path": fs.file_path(i), "length": fs.file_size(i)}
         for i in range(fs.num_files()) if not fs.file_flags(i) & lt.file_storage.flag_pad_file]
tiers = {}
for t in ti.trackers():
    tiers.setdefault(t.tier, []).append(t.url)
print(json.dumps({
    "name": ti.name(),
    "v1": str(ih.v1) if ih.has_v1() else None,
    "v2": str(ih.v2) if ih.has_v2() else None,
    "piece_length": ti.piece_length(),
    "pieces": ti.num_pieces(),
    "total_length": ti.total_size(),
    "private": ti.priv(),
    "files": files,
    "trackers": [tiers[k] for k in sorted(tiers)],
    "webseeds": [w["url"] for w in ti.web_seeds()],
}))
"#;

#[test]
fn info_matches_libtorrents_reading() {
    require_libtorrent();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("set");
    write_random_file(&root.join("a.bin"), 100_000, 12);
    write_random_file(&root.join("d/b.bin"), 70_000, 13);
    write_random_file(&dir.path().join("single.bin"), 90_000, 14);
    let cases: [(&Path, &[&str]); 4] = [
        (
            &root,
            &[
                "-a",
                "http://a.example/ann",
                "-a",
                "udp://b.example:6969/announce",
            ],
        ),
        (
            &root,
            &["--hybrid", "-w", "http://w.example/set/", "--private"],
        ),
        (&root, &["--v2", "-a", "http://a.example/ann"]),
        (
            &dir.path().join("single.bin"),
            &["--source", "X", "-c", "c"],
        ),
    ];
    for (i, (path, extra)) in cases.iter().enumerate() {
        let torrent = dir.path().join(format!("{i}.torrent"));
        let mut args = vec![
            os("create"),
            path.as_os_str(),
            os("-o"),
            torrent.as_os_str(),
        ];
        args.extend(extra.iter().map(|a| os(a)));
        let out = run(&args);
        assert!(out.status.success(), "{extra:?}: {}", stderr(&out));
        let lt = Command::new(PYTHON)
            .args(["-c", LT_INFO])
            .arg(&torrent)
            .output()
            .expect("run python3-libtorrent");
        assert!(lt.status.success(), "{}", stderr(&lt));
        let lt = stdout(&lt);
        let ours = info_json(&torrent);
        // Compare field by field: each of libtorrent's values, in our JSON's spelling.
        let field = |json: &str, key: &str| -> String {
            let start = json
                .find(&format!("\"{key}\": "))
                .map(|s| s + key.len() + 4);
            let start = start.unwrap_or_else(|| panic!("{key} in {json}"));
            let rest = &json[start..];
            let mut depth = 0i32;
            let mut in_str = false;
            let mut end = rest.len();
            for (j, c) in rest.char_indices() {
                match c {
                    '"' if !rest[..j].ends_with('\\') => in_str = !in_str,
                    '[' | '{' if !in_str => depth += 1,
                    ']' | '}' if !in_str => {
                        if depth == 0 {
                            end = j;
                            break;
                        }
                        depth -= 1;
                    }
                    ',' if !in_str && depth == 0 => {
                        end = j;
                        break;
                    }
                    _ => {}
                }
            }
            rest[..end].replace(", ", ",").replace(": ", ":")
        };
        let ours_spaced = ours.replace("\":", "\": ");
        for (lt_key, our_key) in [
            ("name", "name"),
            ("v1", "info_hash_v1"),
            ("v2", "info_hash_v2"),
            ("piece_length", "piece_length"),
            ("total_length", "total_length"),
            ("private", "private"),
            ("files", "files"),
            ("trackers", "trackers"),
            ("webseeds", "webseeds"),
        ] {
            assert_eq!(
                field(&ours_spaced, our_key),
                field(&lt, lt_key),
                "{our_key} of case {i} ({extra:?})\nours: {ours}\nlibtorrent: {lt}"
            );
        }
    }
}
