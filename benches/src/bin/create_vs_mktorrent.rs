//! Times seednode's torrent creation against mktorrent 1.1 on the same page-cached file, in one
//! run, and prints a table.
//!
//! Usage: `create_vs_mktorrent [SIZE_BYTES]` (default 1 GiB). The piece length is the one
//! `auto_piece_length` picks for the size (1 MiB for 1 GiB); mktorrent gets the same via `-l`.
//! Each configuration runs [`ROUNDS`] times, interleaved; the best time counts. The ceiling, the
//! `sha1` crate hashing the same number of bytes from memory on 1 and 2 threads, is measured in
//! the same rounds. seednode's piece hashes are checked against mktorrent's.

use std::fs::{self, File};
use std::hint::black_box;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use seednode_storage::{CreateOptions, auto_piece_length, create_info};
use sha1::{Digest, Sha1};

/// mktorrent 1.1 (Debian's package).
const MKTORRENT: &str = "/usr/bin/mktorrent";
/// Runs per configuration; the fastest is reported.
const ROUNDS: usize = 3;
/// Default file size, in bytes.
const DEFAULT_LEN: u64 = 1 << 30;

fn main() -> ExitCode {
    let len = match std::env::args().nth(1).map(|arg| arg.parse::<u64>()) {
        None => DEFAULT_LEN,
        Some(Ok(len)) if len > 0 => len,
        Some(_) => {
            eprintln!("usage: create_vs_mktorrent [SIZE_BYTES > 0]");
            return ExitCode::FAILURE;
        }
    };
    match run(len) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(len: u64) -> Result<(), Box<dyn std::error::Error>> {
    if !Path::new(MKTORRENT).exists() {
        return Err(format!("{MKTORRENT} missing: apt-get install -y mktorrent").into());
    }
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("data.bin");
    write_file(&path, len)?;
    warm(&path)?;
    let piece_length = auto_piece_length(len);
    let log2 = piece_length.trailing_zeros();
    let gb = len as f64 / 1e9;
    println!(
        "file {len} bytes ({gb:.3} GB), page-cached; piece length {piece_length} (2^{log2}); \
         best of {ROUNDS}"
    );

    // Raw SHA-1 runs in every round too: on a shared machine the rate moves with the load, so
    // each tool is compared with the ceiling measured next to it.
    let configs: [(Tool, usize); 6] = [
        (Tool::RawSha1, 1),
        (Tool::Seednode, 1),
        (Tool::Mktorrent, 1),
        (Tool::RawSha1, 2),
        (Tool::Seednode, 2),
        (Tool::Mktorrent, 2),
    ];
    let mut best = [Duration::MAX; 6];
    let mut pieces = Vec::new();
    let out = dir.path().join("out.torrent");
    for _ in 0..ROUNDS {
        for (i, &(tool, threads)) in configs.iter().enumerate() {
            let start = Instant::now();
            match tool {
                Tool::RawSha1 => raw_sha1(len, threads),
                Tool::Seednode => {
                    let opts = CreateOptions {
                        piece_length: Some(piece_length),
                        threads,
                        ..CreateOptions::default()
                    };
                    pieces = create_info(&path, &opts, &|_| {})?.pieces;
                }
                Tool::Mktorrent => {
                    let _ = fs::remove_file(&out);
                    let status = Command::new(MKTORRENT)
                        .args(["-l", &log2.to_string(), "-t", &threads.to_string(), "-o"])
                        .arg(&out)
                        .arg(&path)
                        .stdout(Stdio::null())
                        .status()?;
                    if !status.success() {
                        return Err(format!("mktorrent exited with {status}").into());
                    }
                }
            }
            best[i] = best[i].min(start.elapsed());
        }
    }
    check_same_pieces(&fs::read(&out)?, &pieces)?;

    println!(
        "{:<10} {:>7} {:>8} {:>8} {:>10} {:>12} {:>13}",
        "tool", "threads", "seconds", "GB/s", "GB/s/core", "% raw SHA-1", "vs mktorrent"
    );
    // The per-core SHA-1 rate: one thread hashing from memory.
    let raw_per_core = gb / best[0].as_secs_f64();
    for (i, &(tool, threads)) in configs.iter().enumerate() {
        let secs = best[i].as_secs_f64();
        let rate = gb / secs;
        let per_core = rate / threads as f64;
        // Rows come in groups of (raw, seednode, mktorrent) per thread count.
        let mk = best[i - i % 3 + 2].as_secs_f64();
        let versus = match tool {
            Tool::RawSha1 => String::new(),
            _ => format!("{:.2}x", mk / secs),
        };
        println!(
            "{:<10} {threads:>7} {secs:>8.3} {rate:>8.3} {per_core:>10.3} {:>11.1}% {versus:>13}",
            tool.name(),
            100.0 * per_core / raw_per_core,
        );
    }
    println!("\n(% raw SHA-1: GB/s per core over the 1-thread raw SHA-1 rate)");
    println!("\n(vs mktorrent: mktorrent's time / this time with the same threads; > 1 is faster)");
    Ok(())
}

/// Writes `len` bytes of non-repeating pseudo-random data.
fn write_file(path: &Path, len: u64) -> std::io::Result<()> {
    let mut block = vec![0u8; 1 << 20];
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut file = File::create(path)?;
    let mut left = len;
    while left > 0 {
        for chunk in block.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes());
        }
        let n = usize::try_from(left).map_or(block.len(), |left| left.min(block.len()));
        file.write_all(&block[..n])?;
        left -= n as u64;
    }
    file.sync_all()
}

/// Reads the file once so every run finds it in the page cache.
fn warm(path: &Path) -> std::io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    let mut file = File::open(path)?;
    while file.read(&mut buf)? > 0 {}
    Ok(())
}

/// What one row of the table measures.
#[derive(Clone, Copy)]
enum Tool {
    /// The `sha1` crate hashing an in-memory 256 KiB buffer: the ceiling.
    RawSha1,
    /// `seednode_storage::create_info`.
    Seednode,
    /// mktorrent 1.1.
    Mktorrent,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Self::RawSha1 => "raw SHA-1",
            Self::Seednode => "seednode",
            Self::Mktorrent => "mktorrent",
        }
    }
}

/// Hashes `len` bytes of an in-memory 256 KiB buffer on `threads` threads that share the work
/// buffer by buffer (a static split would wait for whichever core is busier).
fn raw_sha1(len: u64, threads: usize) {
    let buf = vec![0x5Au8; 256 * 1024];
    let buffers = len.div_ceil(buf.len() as u64);
    let next = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while next.fetch_add(1, Ordering::Relaxed) < buffers {
                    black_box(Sha1::digest(black_box(&buf)));
                }
            });
        }
    });
}

/// Checks that mktorrent's `pieces` string equals ours.
fn check_same_pieces(torrent: &[u8], ours: &[[u8; 20]]) -> Result<(), String> {
    let key = b"6:pieces";
    let at = torrent
        .windows(key.len())
        .position(|w| w == key)
        .ok_or("no `pieces` key in mktorrent's output")?
        + key.len();
    let colon = torrent[at..]
        .iter()
        .position(|&b| b == b':')
        .ok_or("bad `pieces` length")?;
    let len: usize = std::str::from_utf8(&torrent[at..at + colon])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or("bad `pieces` length")?;
    let theirs = torrent
        .get(at + colon + 1..at + colon + 1 + len)
        .ok_or("truncated `pieces`")?;
    if theirs != ours.concat() {
        return Err("piece hashes differ from mktorrent's".into());
    }
    println!(
        "piece hashes identical to mktorrent's ({} pieces)\n",
        ours.len()
    );
    Ok(())
}
