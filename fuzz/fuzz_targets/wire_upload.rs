//! The upload framing (`UPLOAD_TORRENT`, `UPLOAD_FILE`, `UPLOAD_RESUME`) fed whole and in
//! chunks, and the reply parser. The body lives in `seednode_wire::fuzzing` so `cargo test`
//! replays the corpus on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    seednode_wire::fuzzing::upload(data);
});
