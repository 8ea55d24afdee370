//! Torrent creation throughput: `create_info` of a page-cached 256 MiB file with 1 and 2 hashing
//! threads, next to the raw SHA-1 rate of the `sha1` crate, all in bytes per second.
//!
//! `create_info` is `create_torrent` minus wrapping the `info` in a `Metainfo` (a few KiB of
//! bencoding), so it measures the same reading and hashing.

use std::fs::File;
use std::hint::black_box;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use seednode_storage::{CreateOptions, create_info};
use sha1::{Digest, Sha1};

/// Size of the file hashed per iteration, in bytes.
const FILE_LEN: usize = 256 * 1024 * 1024;
/// Piece length, in bytes: what `auto_piece_length` picks for 256 MiB.
const PIECE_LEN: u32 = 256 * 1024;
/// Buffer size of the raw SHA-1 measurement, in bytes: one typical piece.
const SHA1_BUF_LEN: usize = 256 * 1024;

/// Writes `len` bytes of non-repeating data to `path` and reads it back, so it is page-cached.
fn write_cached_file(path: &Path, len: usize) {
    let mut block = vec![0u8; 1 << 20];
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut file = File::create(path).expect("create bench file");
    let mut written = 0;
    while written < len {
        for chunk in block.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes());
        }
        let n = block.len().min(len - written);
        file.write_all(&block[..n]).expect("write bench file");
        written += n;
    }
    drop(file);
    let mut sink = vec![0u8; 1 << 20];
    let mut file = File::open(path).expect("open bench file");
    while file.read(&mut sink).expect("read bench file") > 0 {}
}

fn create(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bench.bin");
    write_cached_file(&path, FILE_LEN);

    let mut group = c.benchmark_group("create_256MiB");
    group.throughput(Throughput::Bytes(FILE_LEN as u64));
    group.sample_size(10);
    // About 0.1–0.2 s per iteration: 10 samples need more than criterion's default 5 s.
    group.measurement_time(Duration::from_secs(10));
    for threads in [1, 2] {
        let opts = CreateOptions {
            piece_length: Some(PIECE_LEN),
            threads,
            ..CreateOptions::default()
        };
        group.bench_function(format!("threads_{threads}"), |b| {
            b.iter(|| create_info(black_box(&path), &opts, &|_| {}).expect("create"));
        });
    }
    group.finish();

    let mut group = c.benchmark_group("sha1");
    group.throughput(Throughput::Bytes(SHA1_BUF_LEN as u64));
    let buf = vec![0x5Au8; SHA1_BUF_LEN];
    group.bench_function("256KiB", |b| b.iter(|| Sha1::digest(black_box(&buf))));
    group.finish();
}

criterion_group!(benches, create);
criterion_main!(benches);
