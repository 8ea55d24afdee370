//! HTTP announce and scrape query parsing, then an open/closed tracker's HTTP front end: bodies
//! are valid bencode dictionaries of bounded size. The body lives in
//! `seednode_tracker::fuzzing` so `cargo test` replays the corpus on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = seednode_tracker::fuzzing::http_announce(data);
});
