//! DHT query handling throughput, in queries per second: one node (20 nodes in its routing
//! tables, one stored peer) answers 1 000 well-formed queries from 1 000 addresses (ping,
//! find_node, get_peers, announce_peer with a bad token, sample_infohashes in turn), its replies
//! drained after each. Each iteration starts from a clone of the same node, so the rate limiter
//! and reply budget never interfere.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use seednode_dht::fuzzing::queries_per_second_workload;

/// Queries per iteration.
const QUERIES: usize = 1000;

fn queries(c: &mut Criterion) {
    let (node, now, queries) = queries_per_second_workload(QUERIES);
    let mut group = c.benchmark_group("dht");
    group.throughput(Throughput::Elements(QUERIES as u64));
    group.bench_function("handle_queries", |b| {
        b.iter_batched(
            || node.clone(),
            |mut dht| {
                for (src, q) in &queries {
                    dht.handle_datagram(now, *src, q);
                    while let Some(t) = dht.poll_transmit() {
                        black_box(t);
                    }
                }
                dht
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, queries);
criterion_main!(benches);
