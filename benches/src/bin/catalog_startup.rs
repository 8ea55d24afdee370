//! Issue 11's start-up and idle-memory benchmarks: `seednode run` with N torrents in its catalog
//! against transmission-daemon with the same N torrents (its own resume files), in one run.
//!
//! Usage: `catalog_startup [--torrents N] [--seednode BIN] [--no-transmission]` (default
//! 10,000 torrents; BIN defaults to `target/release/seednode`).
//!
//! Both get the same N single-file torrents of 4 KiB each (distinct data, one piece), stored
//! under one content directory. Each program is started once to settle (seednode verifies the
//! new torrents once and records their files; transmission checks them and writes its resume
//! files), stopped with SIGTERM, then started again and measured:
//! - **start-up**: from `exec` until every torrent is served: seednode's `/metrics` says
//!   `seednode_torrents N` (and it accepts connections), transmission's RPC lists N torrents all
//!   in status 6 (seeding);
//! - **resident memory** (`VmRSS`) once started, minus the same program's RSS with an empty
//!   catalog/config, divided by N: the cost of one more idle torrent.
//!
//! Everything on 127.0.0.1; DHT, LPD, PEX, uTP and port mapping off for both.

#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use seednode_benches::{
    Args, Diagnostics, Guard, Stdout, cli_main, free_tcp_port, memory_bytes, parse_number,
    workspace_root,
};
use seednode_storage::catalog::NewTorrent;
use seednode_storage::{Catalog, CreateOptions};
use seednode_wire::metainfo::Metainfo;

const USAGE: &str = "usage: catalog_startup [--torrents N] [--seednode BIN] [--no-transmission]";

/// How long either program may take to start with every torrent served.
const START_TIMEOUT: Duration = Duration::from_secs(2_400);

/// Bytes of each torrent's file.
const FILE_LEN: usize = 4096;

const DIAGNOSTICS: Diagnostics = Diagnostics {
    tail_lines: 30,
    count_tail_lines: true,
    exit_status_on_close: true,
};

struct Opts {
    torrents: usize,
    seednode: PathBuf,
    transmission: bool,
}

fn parse(args: &[OsString]) -> Result<Option<Opts>, String> {
    let mut opts = Opts {
        torrents: 10_000,
        seednode: workspace_root().join("target/release/seednode"),
        transmission: true,
    };
    let mut a = Args::new(args);
    while let Some(flag) = a.next_flag()? {
        match flag {
            "--torrents" => opts.torrents = parse_number(flag, &a.value(flag)?)?,
            "--seednode" => opts.seednode = a.value(flag)?.into(),
            "--no-transmission" => opts.transmission = false,
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(Some(opts))
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    cli_main("catalog_startup", USAGE, parse(&args), run)
}

/// One measured start.
struct Start {
    ready: Duration,
    rss: u64,
}

fn run(opts: Opts) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let root = tmp.path();
    let data_dir = root.join("seednode");
    let content = data_dir.join("data");
    let torrents_dir = root.join("torrents");
    fs::create_dir_all(&content).map_err(|e| e.to_string())?;
    fs::create_dir_all(&torrents_dir).map_err(|e| e.to_string())?;
    let made = Instant::now();
    let metas = generate(&content, &torrents_dir, opts.torrents)?;
    let mut catalog = Catalog::open(&data_dir.join("catalog.sqlite")).map_err(|e| e.to_string())?;
    let now = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
    .unwrap_or(0);
    for chunk in metas.chunks(1_000) {
        let batch: Vec<NewTorrent> = chunk
            .iter()
            .map(|(bytes, meta, path)| {
                NewTorrent::from_metainfo(bytes.clone(), meta, path.clone(), now)
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<_, _>>()?;
        for r in catalog.add_torrents(&batch).map_err(|e| e.to_string())? {
            r.map_err(|e| e.to_string())?;
        }
    }
    drop(catalog);
    eprintln!(
        "{} torrents generated and cataloged in {:.1} s",
        opts.torrents,
        made.elapsed().as_secs_f64()
    );

    let empty_dir = root.join("seednode-empty");
    let sn_empty = seednode_start(&opts.seednode, &empty_dir, 0, root)?;
    let _settle = seednode_start(&opts.seednode, &data_dir, opts.torrents, root)?;
    let sn = seednode_start(&opts.seednode, &data_dir, opts.torrents, root)?;
    let sn_per = per_torrent(sn.rss, sn_empty.rss, opts.torrents);
    println!("| program | torrents | start-up (s) | RSS (MiB) | RSS per extra torrent (bytes) |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| seednode run | {} | {:.2} | {:.1} | {sn_per:.0} |",
        opts.torrents,
        sn.ready.as_secs_f64(),
        mib(sn.rss)
    );
    println!(
        "| seednode run | 0 | {:.2} | {:.1} | |",
        sn_empty.ready.as_secs_f64(),
        mib(sn_empty.rss)
    );
    if opts.transmission {
        let tr_empty = transmission_start(&root.join("tr-empty"), None, &content, 0, root)?;
        let config = root.join("tr");
        let _settle =
            transmission_start(&config, Some(&torrents_dir), &content, opts.torrents, root)?;
        let tr = transmission_start(&config, None, &content, opts.torrents, root)?;
        let tr_per = per_torrent(tr.rss, tr_empty.rss, opts.torrents);
        println!(
            "| transmission-daemon | {} | {:.2} | {:.1} | {tr_per:.0} |",
            opts.torrents,
            tr.ready.as_secs_f64(),
            mib(tr.rss)
        );
        println!(
            "| transmission-daemon | 0 | {:.2} | {:.1} | |",
            tr_empty.ready.as_secs_f64(),
            mib(tr_empty.rss)
        );
        println!(
            "\nratios seednode/transmission: start-up {:.2}x, RSS {:.2}x, per torrent {:.2}x",
            sn.ready.as_secs_f64() / tr.ready.as_secs_f64(),
            sn.rss as f64 / tr.rss as f64,
            sn_per / tr_per
        );
    }
    Ok(())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn per_torrent(rss: u64, empty: u64, n: usize) -> f64 {
    if n == 0 {
        return 0.0;
    }
    (rss as f64 - empty as f64) / n as f64
}

/// N files of [`FILE_LEN`] distinct bytes and their torrents (bytes, parsed, data path); the
/// `.torrent` files also go to `torrents_dir` (for transmission).
fn generate(
    content: &Path,
    torrents_dir: &Path,
    n: usize,
) -> Result<Vec<(Vec<u8>, Metainfo, PathBuf)>, String> {
    let opts = CreateOptions {
        piece_length: Some(16_384),
        threads: 1,
        ..CreateOptions::default()
    };
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let path = content.join(format!("f{i:05}.bin"));
        let mut x = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let data: Vec<u8> = (0..FILE_LEN)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        fs::write(&path, &data).map_err(|e| format!("{}: {e}", path.display()))?;
        let meta =
            seednode_storage::create_torrent(&path, &opts, &|_| {}).map_err(|e| e.to_string())?;
        let bytes = meta.to_bytes();
        fs::write(torrents_dir.join(format!("f{i:05}.torrent")), &bytes)
            .map_err(|e| e.to_string())?;
        out.push((bytes, meta, path));
    }
    Ok(out)
}

/// Starts `seednode run` on `data_dir`, waits until `torrents` are served, reads its RSS
/// (after a second, once start-up work is done), stops it.
fn seednode_start(
    bin: &Path,
    data_dir: &Path,
    torrents: usize,
    logs: &Path,
) -> Result<Start, String> {
    let port = free_tcp_port(Ipv4Addr::LOCALHOST)?;
    let mut cmd = Command::new(bin);
    cmd.args(["run", "--no-dht", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "warn");
    let started = Instant::now();
    let mut child = Guard::spawn(
        "seednode",
        &mut cmd,
        &logs.join("seednode.log"),
        Stdout::Log,
        DIAGNOSTICS,
    )?;
    loop {
        if let Some(text) = http_get(port, "/metrics")
            && let Some(n) = metric(&text, "seednode_torrents")
            && n as usize >= torrents
        {
            break;
        }
        if started.elapsed() > START_TIMEOUT {
            return Err(format!("seednode did not start\n{}", child.log_tail()));
        }
        thread::sleep(Duration::from_millis(5));
    }
    let ready = started.elapsed();
    thread::sleep(Duration::from_secs(2));
    let rss = memory_bytes(child.pid(), "VmRSS")?;
    child.stop(Duration::from_secs(10))?;
    Ok(Start { ready, rss })
}

/// Starts transmission-daemon with config dir `config` (a fresh `settings.json`; `.torrent`s
/// copied from `add` into its `torrents/` on the settle run), waits until `torrents` torrents
/// are seeding, reads its RSS, stops it.
fn transmission_start(
    config: &Path,
    add: Option<&Path>,
    content: &Path,
    torrents: usize,
    logs: &Path,
) -> Result<Start, String> {
    let rpc = free_tcp_port(Ipv4Addr::LOCALHOST)?;
    let peer = free_tcp_port(Ipv4Addr::LOCALHOST)?;
    fs::create_dir_all(config.join("torrents")).map_err(|e| e.to_string())?;
    if let Some(dir) = add {
        for entry in fs::read_dir(dir).map_err(|e| e.to_string())? {
            let entry = entry.map_err(|e| e.to_string())?;
            fs::copy(
                entry.path(),
                config.join("torrents").join(entry.file_name()),
            )
            .map_err(|e| e.to_string())?;
        }
    }
    let settings = format!(
        r#"{{"dht-enabled": false, "lpd-enabled": false, "pex-enabled": false,
"utp-enabled": false, "port-forwarding-enabled": false, "rpc-enabled": true,
"rpc-bind-address": "127.0.0.1", "rpc-port": {rpc}, "rpc-authentication-required": false,
"rpc-whitelist-enabled": false, "rpc-host-whitelist-enabled": false,
"bind-address-ipv4": "127.0.0.1", "bind-address-ipv6": "::1", "peer-port": {peer},
"peer-port-random-on-start": false, "download-dir": "{}", "incomplete-dir-enabled": false,
"watch-dir-enabled": false, "start-added-torrents": true, "message-level": 1,
"cache-size-mb": 4, "speed-limit-up-enabled": false, "download-queue-enabled": false,
"seed-queue-enabled": false, "queue-stalled-enabled": false}}"#,
        content.display()
    );
    fs::write(config.join("settings.json"), settings).map_err(|e| e.to_string())?;
    let mut cmd = Command::new("transmission-daemon");
    cmd.arg("-f").arg("-g").arg(config);
    let started = Instant::now();
    let mut child = Guard::spawn(
        "transmission-daemon",
        &mut cmd,
        &logs.join("transmission.log"),
        Stdout::Log,
        DIAGNOSTICS,
    )?;
    let mut session = String::new();
    loop {
        if let Some((count, seeding)) = transmission_seeding(rpc, &mut session)
            && count >= torrents
            && seeding >= torrents
        {
            break;
        }
        if started.elapsed() > START_TIMEOUT {
            return Err(format!("transmission did not start\n{}", child.log_tail()));
        }
        thread::sleep(Duration::from_millis(5));
    }
    let ready = started.elapsed();
    thread::sleep(Duration::from_secs(2));
    let rss = memory_bytes(child.pid(), "VmRSS")?;
    child.stop(Duration::from_secs(30))?;
    Ok(Start { ready, rss })
}

/// Transmission's torrent count and how many are seeding (status 6), over its RPC; `session`
/// keeps the `X-Transmission-Session-Id` it asks for (HTTP 409 first).
fn transmission_seeding(port: u16, session: &mut String) -> Option<(usize, usize)> {
    let body = r#"{"method":"torrent-get","arguments":{"fields":["status"]}}"#;
    for _ in 0..2 {
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
        write!(
            s,
            "POST /transmission/rpc HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Transmission-Session-Id: \
             {session}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )
        .ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        if text.starts_with("HTTP/1.1 409") || text.starts_with("HTTP/1.0 409") {
            *session = text
                .lines()
                .find_map(|l| l.strip_prefix("X-Transmission-Session-Id: "))?
                .trim()
                .to_owned();
            continue;
        }
        let json = text.split_once("\r\n\r\n")?.1;
        let count = json.matches("\"status\"").count();
        let seeding = json.matches("\"status\":6").count();
        return Some((count, seeding));
    }
    None
}

/// `GET path` from 127.0.0.1:`port`, the body.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    Some(text.split_once("\r\n\r\n")?.1.to_owned())
}

fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}
