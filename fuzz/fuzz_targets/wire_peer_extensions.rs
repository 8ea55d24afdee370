//! The decoders of extension messages (BEP 10 handshake, BEP 9 `ut_metadata`, BEP 11 `ut_pex`)
//! and the MSE responder; byte 0 picks one. The body lives in `seednode_wire::fuzzing` so
//! `cargo test` replays the corpus on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    seednode_wire::fuzzing::peer_extensions(data);
});
