//! Replays the cargo-fuzz seed corpora (`fuzz/corpus/tracker_*/`) through the same code the fuzz
//! targets run, so stable `cargo test` keeps their regression value without nightly. File names
//! carry the expected outcome.

use seednode_tracker::fuzzing;

#[path = "../../fuzz/corpus.rs"]
mod corpus_files;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    corpus_files::corpus(env!("CARGO_MANIFEST_DIR"), target)
}

#[test]
fn tracker_http_announce_corpus_replays() {
    for (name, data) in corpus("tracker_http_announce") {
        let outcome = fuzzing::http_announce(&data);
        // `announce_ok_*` must parse as an announce, `scrape_ok_*` as a scrape, `bad_*` not as
        // an announce, `scrape_bad_*` not as a scrape.
        if name.starts_with("announce_ok_") {
            assert!(outcome.announce_ok, "{name} should parse as an announce");
        } else if name.starts_with("scrape_ok_") {
            assert!(outcome.scrape_ok, "{name} should parse as a scrape");
        } else if name.starts_with("scrape_bad_") {
            assert!(!outcome.scrape_ok, "{name} should be refused");
        } else if name.starts_with("bad_") {
            assert!(!outcome.announce_ok, "{name} should be refused");
        }
    }
}

#[test]
fn tracker_udp_corpus_replays() {
    for (name, data) in corpus("tracker_udp") {
        let replied = fuzzing::udp(&data);
        // `reply_*` must be answered by the server, `silent_*` must not.
        if name.starts_with("reply_") {
            assert!(replied, "{name} should get a reply");
        } else if name.starts_with("silent_") {
            assert!(!replied, "{name} should get no reply");
        }
    }
}
