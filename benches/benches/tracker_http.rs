//! HTTP tracker replies per second: an open tracker with one swarm of [`PEERS`] peers answers a
//! compact announce (50 peers), a dictionary-model announce (`compact=0`, 50 peers), and a
//! scrape of [`SCRAPED`] info-hashes. Measures the bencode writing of the hot replies along
//! with the swarm work behind them.
#![allow(clippy::disallowed_methods)] // one epoch for the tracker, read once

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use seednode_tracker::{Tracker, TrackerConfig};

/// Peers in the swarm announced to.
const PEERS: u32 = 500;
/// Info-hashes in one scrape.
const SCRAPED: u8 = 50;

fn query(info_hash: u8, peer: u32, compact: bool) -> Vec<u8> {
    let mut q = String::from("info_hash=");
    for _ in 0..20 {
        q.push_str(&format!("%{info_hash:02x}"));
    }
    q.push_str(&format!(
        "&peer_id=-XX0001-{peer:012}&port=6881&uploaded=0&downloaded=0&left=1&numwant=50&compact={}",
        u8::from(compact)
    ));
    q.into_bytes()
}

fn addr(peer: u32) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + peer)), 6881)
}

fn replies(c: &mut Criterion) {
    let now = Instant::now();
    let config = TrackerConfig {
        open: true,
        ..TrackerConfig::default()
    };
    let mut tracker = Tracker::with_secret(config, now, [7; 32]);
    for ih in 1..=SCRAPED {
        for p in 0..PEERS {
            let body = tracker.http_announce(now, addr(p), None, &query(ih, p, true));
            assert!(!body.starts_with(b"d14:failure"));
        }
    }
    let compact = query(1, 0, true);
    let dict = query(1, 0, false);
    let mut scrape = String::new();
    for ih in 1..=SCRAPED {
        scrape.push_str("&info_hash=");
        for _ in 0..20 {
            scrape.push_str(&format!("%{ih:02x}"));
        }
    }
    let scrape = scrape.as_bytes()[1..].to_vec();

    let mut group = c.benchmark_group("tracker_http");
    group.throughput(Throughput::Elements(1));
    group.bench_function("announce_compact", |b| {
        b.iter(|| black_box(tracker.http_announce(now, addr(0), None, black_box(&compact))));
    });
    group.bench_function("announce_dict", |b| {
        b.iter(|| black_box(tracker.http_announce(now, addr(0), None, black_box(&dict))));
    });
    group.bench_function("scrape_50", |b| {
        b.iter(|| black_box(tracker.http_scrape(now, black_box(&scrape))));
    });
    group.finish();
}

criterion_group!(benches, replies);
criterion_main!(benches);
