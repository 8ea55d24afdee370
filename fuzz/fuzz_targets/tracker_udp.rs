//! The BEP 15 server on one datagram (byte 0 is a control byte: splice a valid connection ID,
//! IPv6 source, clock skew), then the client's response parsers and client machines on the same
//! bytes. Asserts no reply without a proven address, bounded replies and bounded client output.
//! The body lives in `seednode_tracker::fuzzing` so `cargo test` replays the corpus on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = seednode_tracker::fuzzing::udp(data);
});
