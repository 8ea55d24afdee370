//! Nostr `Authorization` headers, event JSON and Blossom paths, as the node parses them
//! (NIP-98, BUD-01/02/11). The body lives in `seednode::fuzzing` so `cargo test` replays the
//! corpus on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    seednode::fuzzing::nostr_blossom(data);
});
