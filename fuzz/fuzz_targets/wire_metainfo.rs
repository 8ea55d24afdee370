//! Bencode decode + `Metainfo::from_bytes`; a torrent that parses must re-parse from `to_bytes`
//! to the same info-hash. The body lives in `seednode_wire::fuzzing` so `cargo test` replays the
//! corpus on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    seednode_wire::fuzzing::metainfo(data);
});
