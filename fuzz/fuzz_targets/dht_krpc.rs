//! KRPC decode + one datagram handled by a DHT node in a prepared state (routing table, stored
//! peer, outstanding ping): no panic, decode/encode round trip, every reply within
//! `MAX_REPLY_LEN`, a bounded number of datagrams per input, tables within their limits. The
//! body lives in `seednode_dht::fuzzing` so `cargo test -p seednode-dht` replays the corpus on
//! stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    seednode_dht::fuzzing::krpc(data);
});
