//! The seed's peer session driven by a hostile peer: a torrent shape, control steps (time,
//! choke/unchoke, disk reads, draining) and the peer's wire bytes. Asserts the session's
//! invariants after every step. The body lives in `../peer_session.rs`, shared with
//! `engine/tests/fuzz_corpus.rs` so that `cargo test` replays the corpus on stable.
#![no_main]

#[allow(dead_code)] // the seed builders are used by the corpus test only
#[path = "../peer_session.rs"]
mod peer_session;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = peer_session::run(data);
});
