//! Torrent-creation throughput against the machine's SHA-1 limit: `seednode create`'s own
//! hashing path ([`seednode_storage::create_torrent`], v1) over a file, and the same number of
//! threads hashing an in-memory buffer with the same SHA-1 implementation. Their ratio says how
//! much creation loses to reading and scheduling (close to 1 on a fast disk or the page cache).

use std::io::Read as _;
use std::path::Path;
use std::time::{Duration, Instant};

use seednode_storage::{CreateOptions, TorrentVersion};
use serde::Serialize;
use sha1::{Digest as _, Sha1};

use super::limits::{MAX_HASH_PASSES, MIN_HASH_MEASURE, RAW_HASH_BUF_LEN};

/// What `bench hash` measured.
#[derive(Debug, Clone, Serialize)]
pub struct HashReport {
    /// The file or directory hashed.
    pub path: String,
    /// Bytes of data per pass.
    pub bytes: u64,
    /// Passes over the data (a small input is hashed again until [`MIN_HASH_MEASURE`]).
    pub passes: u32,
    /// Piece length used, bytes.
    pub piece_length: u32,
    /// Hashing threads, for both figures.
    pub threads: usize,
    /// Torrent creation, GB/s (10^9 bytes per second), data read from the page cache when it
    /// fits (a first pass warms it).
    pub create_gb_per_s: f64,
    /// SHA-1 over an in-memory buffer with as many threads, GB/s.
    pub sha1_gb_per_s: f64,
    /// `create_gb_per_s / sha1_gb_per_s`.
    pub ratio: f64,
}

/// Measures creation of a v1 torrent of `path` with `threads` threads and `piece_length` (or the
/// automatic one), then raw SHA-1 with as many threads.
///
/// # Errors
/// The input cannot be read or hashed (the message of `seednode create`).
pub fn run(
    path: &Path,
    threads: usize,
    piece_length: Option<u32>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<HashReport, String> {
    let threads = threads.max(1);
    let opts = CreateOptions {
        version: TorrentVersion::V1,
        piece_length,
        threads,
        ..CreateOptions::default()
    };
    // The top path may be a link (as `create` allows): resolve it first.
    warm_page_cache(
        &std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned()),
        0,
    );
    let mut passes = 0;
    let mut bytes = 0;
    let mut piece_len = 0;
    let start = Instant::now();
    while passes < MAX_HASH_PASSES && (passes == 0 || start.elapsed() < MIN_HASH_MEASURE) {
        // The first pass reports its bytes (a progress bar on a terminal); the repeats do not.
        let quiet = |_: u64| {};
        let report: &(dyn Fn(u64) + Sync) = if passes == 0 { progress } else { &quiet };
        let meta = seednode_storage::create_torrent(path, &opts, report)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        bytes = meta.info.total_length();
        piece_len = meta.info.piece_length;
        passes += 1;
    }
    let create_secs = start.elapsed().as_secs_f64();
    let create_gb_per_s = (bytes * u64::from(passes)) as f64 / 1e9 / create_secs.max(1e-9);
    let sha1_gb_per_s = raw_sha1_gb_per_s(threads, piece_len, MIN_HASH_MEASURE);
    Ok(HashReport {
        path: path.display().to_string(),
        bytes,
        passes,
        piece_length: piece_len,
        threads,
        create_gb_per_s,
        sha1_gb_per_s,
        ratio: create_gb_per_s / sha1_gb_per_s.max(1e-12),
    })
}

/// SHA-1 throughput of `threads` threads, each hashing a [`RAW_HASH_BUF_LEN`] buffer in
/// `piece_length` chunks (one digest each, as pieces are) for at least `measure`, GB/s.
#[must_use]
pub fn raw_sha1_gb_per_s(threads: usize, piece_length: u32, measure: Duration) -> f64 {
    let chunk = (piece_length as usize).clamp(16 * 1024, RAW_HASH_BUF_LEN);
    let start = Instant::now();
    let total: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|t| {
                s.spawn(move || {
                    let mut buf = vec![0u8; RAW_HASH_BUF_LEN];
                    seednode_wire::rng::Rng::from_u64(t as u64).fill(&mut buf);
                    let mut hashed = 0u64;
                    let mut sink = 0u8;
                    let begin = Instant::now();
                    while begin.elapsed() < measure {
                        for piece in buf.chunks(chunk) {
                            sink ^= Sha1::digest(piece)[0];
                            hashed += piece.len() as u64;
                        }
                    }
                    std::hint::black_box(sink);
                    hashed
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    total as f64 / 1e9 / start.elapsed().as_secs_f64().max(1e-9)
}

/// Directory levels [`warm_page_cache`] descends.
const MAX_WARM_DEPTH: u32 = 32;

/// Reads a file (or every regular file below a directory, links not followed) once, so that
/// creation reads from the page cache when the data fits in it; errors are ignored (the
/// measurement reports them).
fn warm_page_cache(path: &Path, depth: u32) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_dir() && depth < MAX_WARM_DEPTH {
        if let Ok(entries) = std::fs::read_dir(path) {
            for e in entries.flatten() {
                warm_page_cache(&e.path(), depth + 1);
            }
        }
        return;
    }
    if !meta.is_file() {
        return;
    }
    if let Ok(mut f) = std::fs::File::open(path) {
        let mut buf = vec![0u8; 1 << 20];
        while let Ok(n) = f.read(&mut buf) {
            if n == 0 {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_sha1_measures_something() {
        assert!(raw_sha1_gb_per_s(1, 16384, Duration::from_millis(20)) > 0.0);
    }
}
