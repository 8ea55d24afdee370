//! Replays the cargo-fuzz seed corpora (`fuzz/corpus/<target>/`) through the same code the fuzz
//! targets run, so stable `cargo test` keeps their regression value without nightly.

use std::fs;
use std::path::{Path, PathBuf};

use seednode_wire::fuzzing;
use seednode_wire::metainfo::Metainfo;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
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

#[test]
fn wire_metainfo_corpus_replays() {
    for (name, data) in corpus("wire_metainfo") {
        fuzzing::metainfo(&data);
        // Seeds named `bad_*` must be refused; hand-made `*.torrent` seeds must load.
        let parsed = Metainfo::from_bytes(&data);
        if name.starts_with("bad_") {
            assert!(parsed.is_err(), "{name} should be refused");
        } else if name.ends_with(".torrent") {
            assert!(parsed.is_ok(), "{name} should load: {parsed:?}");
        }
    }
}

#[test]
fn wire_peer_frame_corpus_replays() {
    for (_, data) in corpus("wire_peer_frame") {
        fuzzing::peer_frame(&data);
    }
}

#[test]
fn wire_peer_extensions_corpus_replays() {
    for (_, data) in corpus("wire_peer_extensions") {
        fuzzing::peer_extensions(&data);
    }
}
