//! The seed-corpus loader shared by the crates' `tests/fuzz_corpus.rs` replays (included there
//! with `#[path]`, so the library crates themselves keep no file I/O). Test code: it panics on
//! any problem.

use std::fs;
use std::path::{Path, PathBuf};

/// Every file of `fuzz/corpus/<target>/`, as `(file name, bytes)`, sorted by name. `manifest_dir`
/// is the calling crate's `CARGO_MANIFEST_DIR` (a sibling of `fuzz/`).
///
/// # Panics
/// When the directory is missing or empty, or a file cannot be read.
pub(crate) fn corpus(manifest_dir: &str, target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(manifest_dir).join("../fuzz/corpus").join(target);
    let mut paths: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "empty corpus {}", dir.display());
    paths
        .into_iter()
        .map(|p| {
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            (name, fs::read(&p).expect("read corpus file"))
        })
        .collect()
}
