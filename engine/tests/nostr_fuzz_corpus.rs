//! Replays the cargo-fuzz seed corpus of `nostr_relay_message` (`fuzz/corpus/nostr_relay_message/`)
//! through the fuzz target's body, so stable `cargo test` keeps its regression value.

#[path = "../../fuzz/corpus.rs"]
mod corpus_files;

#[test]
fn nostr_relay_message_corpus_replays() {
    let corpus = corpus_files::corpus(env!("CARGO_MANIFEST_DIR"), "nostr_relay_message");
    assert!(corpus.len() >= 10, "the seeds are in the corpus");
    for (_, data) in &corpus {
        seednode::nostr_msg::fuzz_relay_message(data);
    }
    // The seeds parse as what their names say.
    let parsed = |name: &str| {
        let (_, data) = corpus.iter().find(|(n, _)| n == name).expect("seed");
        seednode::nostr_msg::parse_relay_message(std::str::from_utf8(data).unwrap())
    };
    assert!(parsed("ok_accepted").unwrap().is_stored());
    assert!(parsed("ok_duplicate").unwrap().is_stored());
    assert!(parsed("ok_empty_id").unwrap().wants_auth());
    assert!(parsed("nested").is_err());
}
