//! uTP: the packet parser and a whole endpoint (with one established connection that has data
//! in flight both ways) fed arbitrary datagrams, timer firings included: no panic, every
//! datagram we send parses and fits the MTU, the connection table stays bounded. The body
//! lives in `seednode_utp::fuzzing` so `cargo test -p seednode-utp` replays the corpus on
//! stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    seednode_utp::fuzzing::packet(data);
});
