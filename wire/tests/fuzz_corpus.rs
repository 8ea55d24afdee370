//! Replays the cargo-fuzz seed corpora (`fuzz/corpus/<target>/`) through the same code the fuzz
//! targets run, so stable `cargo test` keeps their regression value without nightly.

use seednode_wire::fuzzing;
use seednode_wire::metainfo::Metainfo;

#[path = "../../fuzz/corpus.rs"]
mod corpus_files;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    corpus_files::corpus(env!("CARGO_MANIFEST_DIR"), target)
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

#[test]
fn wire_upload_corpus_replays() {
    use seednode_wire::upload::Decoder;
    for (name, data) in corpus("wire_upload") {
        fuzzing::upload(&data);
        // Seeds named `bad_*` must be refused; `ok_*` must decode to a request. The first byte
        // is the fuzz target's chunk size.
        let mut buf = bytes::BytesMut::from(&data[1..]);
        let got = Decoder::new().decode(&mut buf);
        if name.starts_with("bad_") {
            assert!(got.is_err(), "{name} should be refused: {got:?}");
        } else if name.starts_with("ok_") {
            assert!(matches!(got, Ok(Some(_))), "{name}: {got:?}");
        }
    }
}
