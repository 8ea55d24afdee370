//! Replays the cargo-fuzz seed corpus of `peer_session` (`fuzz/corpus/peer_session/`) through
//! the same code the fuzz target runs, so stable `cargo test` keeps its regression value
//! without nightly. The hand-made seeds are built here ([`seeds`]) and must match their files;
//! `SEEDNODE_WRITE_SEEDS=1 cargo test -p seednode --test fuzz_corpus` rewrites them.

use std::fs;
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use seednode::limits::{
    CHATTER_BURST, HAVE_SLACK, MAX_EARLY_PEX, MAX_EXTENSION_HANDSHAKES, MAX_REQUEST_QUEUE,
    MAX_REQUESTS_WHILE_CHOKED,
};
use seednode_wire::peer::extension::OUR_UT_METADATA_ID;
use seednode_wire::peer::pex::OUR_UT_PEX_ID;
use seednode_wire::peer::{BlockRequest, Message};

#[path = "../../fuzz/corpus.rs"]
mod corpus_files;

#[path = "../../fuzz/peer_session.rs"]
mod peer_session;

use peer_session::{Ctrl, flag, header};

const TARGET: &str = "peer_session";

/// A hand-made seed: its file name, its bytes and the `PeerError::label` it must end with
/// (`None`: the peer is never disconnected).
struct Seed {
    name: &'static str,
    data: Vec<u8>,
    error: Option<&'static str>,
}

/// Assembles an input: header, control steps, the peer's messages.
fn input(head: [u8; 5], ctrl: &[Ctrl], msgs: &[Message]) -> Vec<u8> {
    let mut out = head.to_vec();
    out.push(u8::try_from(ctrl.len()).expect("at most 255 control steps"));
    out.extend(ctrl.iter().map(|c| c.to_byte()));
    let mut wire = BytesMut::new();
    for m in msgs {
        m.encode(&mut wire);
    }
    out.extend_from_slice(&wire);
    out
}

fn ext(id: u8, payload: &'static [u8]) -> Message {
    Message::Extended {
        id,
        payload: Bytes::from_static(payload),
    }
}

fn req(piece: u32, begin: u32, length: u32) -> Message {
    Message::Request(BlockRequest {
        piece,
        begin,
        length,
    })
}

const EVERYTHING: u8 = flag::FAST | flag::EXTENSIONS | flag::DHT | flag::DHT_PORT | flag::YOURIP;
const HANDSHAKE: &[u8] = b"d1:md11:ut_metadatai3e6:ut_pexi4ee1:pi6881e4:reqqi250e1:v8:test 1.0e";
const PEX: &[u8] = b"d5:added12:\x01\x02\x03\x04\x1a\xe1\x05\x06\x07\x08\x1a\xe1e";

/// The hand-made seeds, one per behaviour worth starting the fuzzer from.
fn seeds() -> Vec<Seed> {
    let mut seeds = Vec::new();

    // A well-behaved leecher: extension handshake, interested, unchoked, asks for every block
    // of 10 pieces of 32 KiB (announcing each piece it completes), the metadata, then leaves.
    let mut msgs = vec![ext(0, HANDSHAKE), Message::Interested];
    for piece in 0..10 {
        msgs.push(req(piece, 0, 16_384));
        msgs.push(req(piece, 16_384, 16_384));
        msgs.push(Message::Have { piece });
    }
    msgs.push(ext(OUR_UT_METADATA_ID, b"d8:msg_typei0e5:piecei0ee"));
    msgs.push(Message::NotInterested);
    seeds.push(Seed {
        name: "ok_download",
        data: input(
            header(10, 1, 0, EVERYTHING, 0),
            &[Ctrl::Reactor(1), Ctrl::Choke(false), Ctrl::Drain],
            &msgs,
        ),
        error: None,
    });

    // The same without BEP 6, requests sent in a burst and taken later; a choke in between
    // makes some reads stale, a keep-alive, a cancel, time passes.
    let mut msgs = vec![Message::KeepAlive, Message::Interested];
    for piece in 0..4 {
        for begin in [0, 16_384, 32_768, 49_152] {
            msgs.push(req(piece, begin, 16_384));
        }
    }
    msgs.push(Message::Cancel(BlockRequest {
        piece: 3,
        begin: 49_152,
        length: 16_384,
    }));
    seeds.push(Seed {
        name: "ok_burst_choke_stale",
        data: input(
            header(4, 2, 0, 0, 0),
            &[
                Ctrl::Messages(1),
                Ctrl::Choke(false),
                Ctrl::Messages(16),
                Ctrl::Read(7),
                Ctrl::Finish(2),
                Ctrl::Wait(3),
                Ctrl::Read(3),
                Ctrl::Choke(true),
                Ctrl::Finish(7),
                Ctrl::Drain,
            ],
            &msgs,
        ),
        error: None,
    });

    // A partial seed with withheld pieces, odd piece lengths, and a BEP 6 peer.
    let mut msgs = vec![Message::Interested];
    for piece in 0..40 {
        msgs.push(req(piece, 0, 1000));
    }
    seeds.push(Seed {
        name: "partial_seed_odd_pieces",
        data: input(
            header(40, 3 | (5 << 3), 3, flag::FAST, 0),
            &[Ctrl::Reactor(0), Ctrl::Choke(false)],
            &msgs,
        ),
        error: Some("requested_missing_piece"),
    });

    // Super-seeding (BEP 16): the peer requests the piece it was offered, passes it on, and
    // gets the next offer.
    let mut msgs = vec![ext(0, HANDSHAKE), Message::Interested];
    for piece in 0..6 {
        msgs.push(req(piece, 0, 16_384));
        msgs.push(Message::Have { piece });
    }
    seeds.push(Seed {
        name: "ok_super_seed",
        data: input(
            header(6, 0, 0, EVERYTHING | flag::SUPER_SEED, 0),
            &[Ctrl::Reactor(1), Ctrl::Choke(false)],
            &msgs,
        ),
        error: None,
    });

    // Metadata requests (BEP 9) for a three-piece info dictionary, and past its end.
    let mut msgs = vec![ext(0, HANDSHAKE)];
    for piece in [
        &b"d8:msg_typei0e5:piecei0ee"[..],
        b"d8:msg_typei0e5:piecei1ee",
        b"d8:msg_typei0e5:piecei2ee",
        b"d8:msg_typei0e5:piecei3ee",
        b"d8:msg_typei0e5:piecei4294967295ee",
    ] {
        msgs.push(Message::Extended {
            id: OUR_UT_METADATA_ID,
            payload: Bytes::copy_from_slice(piece),
        });
    }
    seeds.push(Seed {
        name: "ok_metadata",
        data: input(header(3, 0, 0, EVERYTHING, 3), &[], &msgs),
        error: None,
    });

    // SECURITY.md W7: more requests than the queue holds, never read; BEP 6 rejects the rest.
    let msgs: Vec<Message> = std::iter::once(Message::Interested)
        .chain((0..MAX_REQUEST_QUEUE + 20).map(|i| req(0, (i as u32 % 4) * 16_384, 16_384)))
        .collect();
    let mut ctrl = vec![Ctrl::Messages(0), Ctrl::Choke(false)];
    ctrl.extend(std::iter::repeat_n(Ctrl::Messages(31), 17));
    ctrl.extend([
        Ctrl::Drain,
        Ctrl::Read(3),
        Ctrl::Finish(2),
        Ctrl::Choke(true),
        Ctrl::Drain,
    ]);
    seeds.push(Seed {
        name: "ok_queue_full",
        data: input(header(1, 2, 0, flag::FAST, 0), &ctrl, &msgs),
        error: None,
    });

    // SECURITY.md W8: requests while choked.
    let msgs: Vec<Message> = (0..=MAX_REQUESTS_WHILE_CHOKED)
        .map(|_| req(0, 0, 16_384))
        .collect();
    seeds.push(Seed {
        name: "requests_while_choked",
        data: input(header(2, 0, 0, flag::FAST, 0), &[], &msgs),
        error: Some("requests_while_choked"),
    });

    // SECURITY.md W6: a request whose end wraps around u32.
    seeds.push(Seed {
        name: "request_wraps",
        data: input(
            header(2, 0, 0, 0, 0),
            &[Ctrl::Choke(false)],
            &[Message::Interested, req(0, 0xFFFF_C000, 0x4000)],
        ),
        error: Some("bad_request"),
    });

    // SECURITY.md W5: piece index u32::MAX in a `have` and in a request (the first fuzzer find
    // was the harness's own `piece_len` overflowing on it).
    seeds.push(Seed {
        name: "have_piece_u32_max",
        data: input(
            header(10, 0, 0, flag::FAST, 0),
            &[],
            &[Message::Have { piece: u32::MAX }],
        ),
        error: Some("piece_out_of_range"),
    });
    seeds.push(Seed {
        name: "request_piece_u32_max",
        data: input(
            header(10, 0, 0, flag::FAST, 0),
            &[Ctrl::Choke(false)],
            &[Message::Interested, req(u32::MAX, 0, 16_384)],
        ),
        error: Some("piece_out_of_range"),
    });

    // A `have` flood: every piece, then over and over.
    let pieces = 8;
    let msgs: Vec<Message> = (0..=pieces + HAVE_SLACK)
        .map(|i| Message::Have { piece: i % pieces })
        .collect();
    seeds.push(Seed {
        name: "have_flood",
        data: input(header(pieces, 0, 0, flag::FAST, 0), &[], &msgs),
        error: Some("have_flood"),
    });

    // PEX (BEP 11): honoured once, then sent every second: a flood.
    let mut msgs = vec![ext(0, HANDSHAKE)];
    let mut ctrl = vec![Ctrl::Reactor(0)];
    for _ in 0..=MAX_EARLY_PEX + 1 {
        msgs.push(ext(OUR_UT_PEX_ID, PEX));
        ctrl.extend([Ctrl::Reactor(0), Ctrl::Wait(3)]);
    }
    seeds.push(Seed {
        name: "pex_flood",
        data: input(header(4, 0, 0, EVERYTHING, 0), &ctrl, &msgs),
        error: Some("pex_flood"),
    });

    // PEX once a minute is fine.
    let mut msgs = vec![ext(0, HANDSHAKE)];
    let mut ctrl = vec![Ctrl::Reactor(0)];
    for _ in 0..6 {
        msgs.push(ext(OUR_UT_PEX_ID, PEX));
        ctrl.extend([Ctrl::Reactor(0), Ctrl::Wait(6)]);
    }
    seeds.push(Seed {
        name: "ok_pex_every_minute",
        data: input(header(4, 0, 0, EVERYTHING, 0), &ctrl, &msgs),
        error: None,
    });

    // SECURITY.md W11: extension handshakes over and over.
    let msgs: Vec<Message> = (0..=MAX_EXTENSION_HANDSHAKES)
        .map(|_| ext(0, HANDSHAKE))
        .collect();
    seeds.push(Seed {
        name: "extension_handshake_flood",
        data: input(header(4, 0, 0, EVERYTHING, 0), &[], &msgs),
        error: Some("extension_handshake_flood"),
    });

    // Unknown extension messages faster than the chatter budget.
    let msgs: Vec<Message> = (0..=CHATTER_BURST).map(|_| ext(77, b"x")).collect();
    seeds.push(Seed {
        name: "unknown_extension_flood",
        data: input(header(4, 0, 0, EVERYTHING, 0), &[], &msgs),
        error: Some("message_flood"),
    });

    // SECURITY.md W4/W9: a bitfield with spare bits set; an unrequested piece.
    seeds.push(Seed {
        name: "bitfield_spare_bits",
        data: input(
            header(10, 0, 0, 0, 0),
            &[],
            &[Message::Bitfield(Bytes::from_static(&[0xff, 0xe0]))],
        ),
        error: Some("bad_bitfield"),
    });
    seeds.push(Seed {
        name: "unrequested_piece",
        data: input(
            header(10, 0, 0, 0, 0),
            &[],
            &[Message::Piece {
                piece: 0,
                begin: 0,
                block: Bytes::from_static(&[0; 64]),
            }],
        ),
        error: Some("unrequested_piece"),
    });
    seeds
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(TARGET)
}

#[test]
fn peer_session_seeds_match_their_files() {
    let write = std::env::var_os("SEEDNODE_WRITE_SEEDS").is_some();
    for seed in seeds() {
        let path = corpus_dir().join(seed.name);
        if write {
            fs::create_dir_all(corpus_dir()).unwrap();
            fs::write(&path, &seed.data).unwrap();
        }
        let file = fs::read(&path).unwrap_or_default();
        assert!(
            file == seed.data,
            "{} differs from its seed",
            path.display()
        );
    }
}

#[test]
fn peer_session_corpus_replays() {
    let seeds = seeds();
    let files = corpus_files::corpus(env!("CARGO_MANIFEST_DIR"), TARGET);
    for (name, data) in &files {
        let outcome = peer_session::run(data);
        let Some(seed) = seeds.iter().find(|s| s.name == name) else {
            continue; // a fuzzer find: it must not panic, whatever it ends with
        };
        assert!(!outcome.frame_error, "{name}: {outcome:?}");
        assert_eq!(
            outcome.error.as_ref().map(|e| e.label()),
            seed.error,
            "{name}: {outcome:?}"
        );
        if name.starts_with("ok_") {
            assert!(outcome.messages > 0, "{name}: {outcome:?}");
        }
    }
    assert!(files.len() >= seeds.len());
}

#[test]
fn well_behaved_seeds_are_served() {
    for seed in seeds().iter().filter(|s| s.name.starts_with("ok_")) {
        let outcome = peer_session::run(&seed.data);
        let expected = match seed.name {
            "ok_download" => 20,
            "ok_super_seed" => 6,
            // Three reads finished before the choke, the rest went stale.
            "ok_burst_choke_stale" | "ok_queue_full" => 3,
            _ => 0,
        };
        assert_eq!(outcome.served, expected, "{}: {outcome:?}", seed.name);
    }
}

/// The `nostr_blossom` target's seed corpus (`fuzz/corpus/nostr_blossom/`): every seed runs
/// through [`seednode::fuzzing::nostr_blossom`] without a panic, and the known-good NIP-98
/// event among them still decodes and verifies.
#[test]
fn nostr_blossom_corpus_replays() {
    let seeds = corpus_files::corpus(env!("CARGO_MANIFEST_DIR"), "nostr_blossom");
    for (_, data) in &seeds {
        seednode::fuzzing::nostr_blossom(data);
    }
    let (_, good) = seeds
        .iter()
        .find(|(name, _)| name == "header-nip98-std")
        .expect("the NIP-98 seed");
    let header = std::str::from_utf8(&good[1..]).unwrap();
    let ev = seednode::nostr_auth::decode_header(header).unwrap();
    seednode::nostr_auth::verify_event(&ev).unwrap();
}
