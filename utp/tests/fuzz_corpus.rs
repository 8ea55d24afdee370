//! Replays the cargo-fuzz seed corpus (`fuzz/corpus/utp_packet/`) through the same code the fuzz
//! target runs, so stable `cargo test` keeps its regression value without nightly; plus an
//! exhaustive short-input sweep and a seeded random sweep of the same harness.

use seednode_utp::{Packet, fuzzing};

#[path = "../../fuzz/corpus.rs"]
mod corpus_files;

/// The datagrams of one corpus file (`[len, flags, bytes…]` chunks).
fn datagrams(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let [len, _flags, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        out.push(&tail[..len]);
        rest = &tail[len..];
    }
    out
}

#[test]
fn utp_packet_corpus_replays() {
    let files = corpus_files::corpus(env!("CARGO_MANIFEST_DIR"), "utp_packet");
    for (name, data) in &files {
        fuzzing::packet(data);
        // Seeds named `bad_*` hold one malformed datagram; the others only well-formed ones.
        for d in datagrams(data).into_iter().filter(|d| !d.is_empty()) {
            let parsed = Packet::new_checked(d);
            if name.starts_with("bad_") {
                assert!(parsed.is_err(), "{name} should be refused");
            } else {
                assert!(parsed.is_ok(), "{name} should parse: {parsed:?}");
            }
        }
    }
    assert!(files.len() >= 10);
}

#[test]
fn every_short_datagram_never_panics_the_endpoint() {
    for len in 0..=40usize {
        for fill in [0x00u8, 0x01, 0x11, 0x21, 0x31, 0x41, 0xff] {
            let mut chunk = vec![len as u8, 1];
            chunk.extend(std::iter::repeat_n(fill, len));
            if len > 0 {
                chunk[2] = fill & 0xf1 | 0x01;
            }
            fuzzing::packet(&chunk);
        }
    }
}

#[test]
fn seeded_random_datagrams_never_panic_the_endpoint() {
    // UTP_FUZZ_ITERS raises the count for a longer local run.
    let iters = std::env::var("UTP_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..iters {
        let mut input = Vec::new();
        for _ in 0..8 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 60) as usize;
            input.push(len as u8);
            input.push((x >> 8) as u8);
            for i in 0..len {
                let b = (x >> (i % 56)) as u8;
                // Mostly valid first bytes and small seq/ack numbers, to reach deep paths.
                input.push(if i == 0 {
                    ((b % 5) << 4) | 1
                } else if i >= 16 {
                    b % 4
                } else {
                    b
                });
            }
        }
        fuzzing::packet(&input);
    }
}
