//! The node's parser of Nostr relay messages (`OK`, `AUTH`, `NOTICE`, `CLOSED`; NIP-01, NIP-42)
//! on one WebSocket text message. Asserts the kept texts and ids stay within their limits.
//! The body lives in `seednode::nostr_msg::fuzz_relay_message` so `cargo test` replays the
//! corpus on stable (`engine/tests/nostr_fuzz_corpus.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    seednode::nostr_msg::fuzz_relay_message(data);
});
