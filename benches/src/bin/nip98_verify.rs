//! NIP-98 verifications per second on one core (issue 14): what the node does for every
//! `Authorization: Nostr` request, timed in a loop on this thread: the header decoded with its
//! bounds (base64, depth scan, JSON), the event id recomputed and the BIP-340 signature
//! verified (`nostr` crate, secp256k1), and the NIP-98 rules checked. The event is a real one,
//! signed by nostr-tools (`engine/tests/support/nostr/vectors/nip98-get.json`).
//!
//! Usage: `nip98_verify [SECONDS]` (default 5). Prints verifications per second and the share
//! of the time spent in the signature check alone.

#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::{Duration, Instant};

use base64::Engine as _;
use seednode::nostr_auth::{self, HttpRequestFacts};

const EVENT: &str = include_str!("../../../engine/tests/support/nostr/vectors/nip98-get.json");

/// Runs `f` for `budget`, returns calls per second.
fn rate(budget: Duration, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..256 {
            f();
        }
        n += 256;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() -> ExitCode {
    let secs = std::env::args()
        .nth(1)
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(5);
    let budget = Duration::from_secs(secs);
    let header = format!(
        "Nostr {}",
        base64::engine::general_purpose::STANDARD.encode(EVENT.trim())
    );
    let ev = nostr_auth::decode_header(&header).expect("vector decodes");
    let facts = HttpRequestFacts {
        url: "http://127.0.0.1:9/api/v1/torrents",
        method: "GET",
        body_sha256: None,
    };
    let at = ev.created_at;
    let full = rate(budget, || {
        let ev = nostr_auth::decode_header(std::hint::black_box(&header)).expect("decode");
        nostr_auth::verify_event(&ev).expect("verify");
        nostr_auth::check_nip98(&ev, &facts, at).expect("nip98");
    });
    let verify_only = rate(budget, || {
        nostr_auth::verify_event(std::hint::black_box(&ev)).expect("verify");
    });
    println!("nip98 full check (decode + id + signature + rules): {full:.0} /s on one core");
    println!(
        "id + signature only: {verify_only:.0} /s ({:.0}% of the full check's time)",
        100.0 * full / verify_only
    );
    ExitCode::SUCCESS
}
