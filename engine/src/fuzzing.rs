//! Bodies of the engine's cargo-fuzz targets (`fuzz/fuzz_targets/`), kept in the library so
//! that stable `cargo test` replays their seed corpora (`engine/tests/fuzz_corpus.rs`).

use crate::{blossom, nostr_auth};

/// `nostr_blossom`: the first byte picks what the rest is, then every parser and check the
/// node runs on a Nostr-signed or Blossom request gets it. 0: an `Authorization` value
/// (decoded, verified, checked as NIP-98 and as BUD-11); 1: event JSON; 2: a Blossom path
/// after a method (`GET`, `HEAD`, `PUT`, `DELETE`, `OPTIONS` by the second byte). None may
/// panic, and a refusal of an oversized or deep input must come before any parsing.
pub fn nostr_blossom(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            let text = String::from_utf8_lossy(rest);
            if let Ok(ev) = nostr_auth::decode_header(&text) {
                checks(&ev);
            }
        }
        1 => {
            if let Ok(ev) = nostr_auth::decode_event_json(rest) {
                checks(&ev);
            }
        }
        _ => {
            let Some((&m, path)) = rest.split_first() else {
                return;
            };
            let method = ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"][usize::from(m) % 5];
            let path = String::from_utf8_lossy(path);
            if let Some(blossom::Route::Blob { sha256, ext }) = blossom::route(method, &path) {
                let name = blossom::file_name(&sha256, ext.unwrap_or("bin"));
                assert!(blossom::from_file_name(&name).is_some_and(|(h, _)| h == sha256));
            }
            let _ = blossom::ext_for_type(Some(&path));
        }
    }
}

fn checks(ev: &nostr_auth::AuthEvent) {
    let _ = nostr_auth::verify_event(ev);
    let facts = nostr_auth::HttpRequestFacts {
        url: "http://127.0.0.1:9/api/v1/torrents",
        method: "GET",
        body_sha256: None,
    };
    let _ = nostr_auth::check_nip98(ev, &facts, 1_700_000_000);
    let blossom = nostr_auth::BlossomFacts {
        verb: "upload",
        x: Some(&[0; 32]),
        server: "127.0.0.1",
    };
    let _ = nostr_auth::check_blossom(ev, &blossom, 1_700_000_000);
    let _ = nostr_auth::x_hashes(ev);
}
