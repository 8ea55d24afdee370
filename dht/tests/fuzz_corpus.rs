//! Replays the cargo-fuzz seed corpus (`fuzz/corpus/dht_krpc/`) through the same code the fuzz
//! target runs, so stable `cargo test` keeps its regression value without nightly.

use std::fs;
use std::path::Path;

use seednode_dht::{fuzzing, krpc};

#[path = "../../fuzz/corpus.rs"]
mod corpus_files;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    corpus_files::corpus(env!("CARGO_MANIFEST_DIR"), target)
}

#[test]
fn dht_krpc_corpus_replays() {
    let files = corpus("dht_krpc");
    for (name, data) in &files {
        fuzzing::krpc(data);
        // Seeds named `bep*` are spec examples and must decode; `bad_*` must not.
        let decoded = krpc::decode(data);
        if name.starts_with("bep") {
            assert!(decoded.is_ok(), "{name} should decode: {decoded:?}");
        } else if name.starts_with("bad_") {
            assert!(decoded.is_err(), "{name} should be refused");
        }
    }
    assert!(files.iter().filter(|(n, _)| n.starts_with("bep5_")).count() >= 10);
}

#[test]
fn tid_placeholder_reaches_the_response_path() {
    let (mut dht, now, tid) = fuzzing::prepared_node();
    let before = dht.stats();
    let pinged = fuzzing::PINGED.parse().unwrap();
    let mut data = fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/corpus/dht_krpc/tid_response_with_nodes"),
    )
    .unwrap();
    let pos = data
        .windows(4)
        .position(|w| w == fuzzing::TID_PLACEHOLDER)
        .unwrap();
    data[pos..pos + 4].copy_from_slice(&tid);
    dht.handle_datagram(now, pinged, &data);
    let after = dht.stats();
    assert_eq!(after.responses_in, before.responses_in + 1);
    assert_eq!(after.routing_nodes_v4, before.routing_nodes_v4 + 1);
    assert_eq!(after.outstanding_queries, before.outstanding_queries - 1);
}

#[test]
fn benchmark_workload_gets_one_reply_per_query() {
    let (dht, now, queries) = fuzzing::queries_per_second_workload(2000);
    let mut dht = dht.clone();
    let mut replies = 0;
    for (src, q) in &queries {
        dht.handle_datagram(now, *src, q);
        while let Some(t) = dht.poll_transmit() {
            let m = krpc::decode(&t.payload).unwrap();
            replies += usize::from(t.dst == *src && !matches!(m.body, krpc::Body::Query(_)));
        }
    }
    assert_eq!(replies, queries.len());
    assert_eq!(dht.stats().dropped_reply_budget, 0);
}
