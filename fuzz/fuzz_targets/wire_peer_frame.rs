//! The peer wire frame decoder fed as a stream in chunks: byte 0 picks the read size, bytes 1..5
//! the `max_len`. Asserts consumed <= fed and exact re-encoding. The body lives in
//! `seednode_wire::fuzzing` so `cargo test` replays the corpus on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    seednode_wire::fuzzing::peer_frame(data);
});
