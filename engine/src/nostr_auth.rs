//! Nostr-signed HTTP authorization, shared by NIP-98 (the API) and Blossom (BUD-11): the
//! `Authorization: Nostr <base64 event>` header decoded with bounds, the event's id and BIP-340
//! Schnorr signature verified (NIP-01, with the `nostr` crate), and the rules of each use.
//!
//! Pure: no I/O, no clock. Every check takes the wall-clock time as `now_unix` (seconds since
//! the Unix epoch), the request's method, URL and body hash as arguments.
//!
//! # Decoding, bounded
//! 1. The scheme `Nostr` (case-insensitive), then the token: at most
//!    [`MAX_AUTH_TOKEN_LEN`] characters, checked before decoding (a 1 MB header is refused
//!    by its length alone; the HTTP parser already caps a header value at 8 KiB).
//! 2. Base64, standard or URL-safe alphabet, padded or not (NIP-98 says base64; Blossom
//!    clients send base64url).
//! 3. The JSON's nesting is scanned in one pass before it is parsed: deeper than
//!    [`MAX_JSON_DEPTH`] (an event is an object holding the array of tag arrays) is refused
//!    without building anything.
//! 4. `serde_json` into fixed fields; at most [`MAX_TAGS`] tags of at most [`MAX_TAG_ITEMS`]
//!    strings each; ids, keys and signatures are lowercase hex of their exact lengths.
//!
//! # What is verified
//! [`verify_event`]: the id is the SHA-256 of the NIP-01 serialisation
//! `[0, pubkey, created_at, kind, tags, content]` and `sig` a valid BIP-340 signature of it by
//! `pubkey`. Then [`check_nip98`] or [`check_blossom`].

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

/// Longest token after `Nostr ` looked at, in base64 characters: 8 KiB, the HTTP parser's cap
/// on one header value. A kind-27235 or kind-24242 event of a real client is under 1 KiB;
/// 8 KiB leaves room for a few long `u` tags. Longer: [`AuthError::TooLong`], never decoded.
pub const MAX_AUTH_TOKEN_LEN: usize = 8 * 1024;

/// Deepest JSON nesting accepted: 3 (the event object, its `tags` array, one tag's array).
/// Deeper: [`AuthError::TooDeep`], found by a linear scan before any parsing.
pub const MAX_JSON_DEPTH: usize = 3;

/// Most tags in an event: 32 (NIP-98 needs 2 or 3, BUD-11 a handful of `x` and `server`).
/// More: [`AuthError::Malformed`].
pub const MAX_TAGS: usize = 32;

/// Most strings in one tag: 8 (`["x", "<hash>"]` is 2). More: [`AuthError::Malformed`].
pub const MAX_TAG_ITEMS: usize = 8;

/// NIP-98's window: `created_at` at most 60 s from the node's clock, either way ("within a
/// reasonable time window (suggestion 60 seconds)").
pub const NIP98_WINDOW_SECS: i64 = 60;

/// BUD-11 allows a `created_at` up to this many seconds in the node's future (clock skew): 60.
pub const BLOSSOM_FUTURE_SKEW_SECS: i64 = 60;

/// NIP-98 HTTP auth event kind.
pub const KIND_HTTP_AUTH: u16 = 27235;

/// Blossom authorization event kind (BUD-11).
pub const KIND_BLOSSOM_AUTH: u16 = 24242;

/// Why an `Authorization: Nostr` header was refused. Each maps to 401 except
/// [`AuthError::Forbidden`]-like verdicts the caller decides.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Not the `Nostr` scheme.
    #[error("not a Nostr authorization")]
    NotNostr,
    /// The token is longer than [`MAX_AUTH_TOKEN_LEN`].
    #[error("authorization of {got} bytes over the limit of {limit}")]
    TooLong {
        /// Its length in bytes.
        got: usize,
        /// [`MAX_AUTH_TOKEN_LEN`].
        limit: usize,
    },
    /// Not base64 in either alphabet.
    #[error("authorization is not base64")]
    NotBase64,
    /// JSON nested deeper than [`MAX_JSON_DEPTH`].
    #[error("event JSON nested deeper than {limit}")]
    TooDeep {
        /// [`MAX_JSON_DEPTH`].
        limit: usize,
    },
    /// Not a NIP-01 event (a field missing, of the wrong type or length, too many tags).
    #[error("malformed event: {0}")]
    Malformed(&'static str),
    /// The id is not the hash of the event, or the signature does not verify.
    #[error("bad event id or signature")]
    BadSignature,
    /// Another kind than the use needs.
    #[error("event kind {got}, expected {expected}")]
    WrongKind {
        /// The event's kind.
        got: u16,
        /// The kind wanted.
        expected: u16,
    },
    /// `created_at` outside the window, or an `expiration` in the past.
    #[error("event too old, from the future, or expired")]
    Stale,
    /// A tag the use needs is missing or holds another value (`u`, `method`, `payload`, `t`,
    /// `x`, `expiration`, `server`).
    #[error("tag `{0}` missing or not matching the request")]
    Tag(&'static str),
}

/// A decoded (not yet verified) Nostr event (NIP-01).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthEvent {
    /// The event id: SHA-256 of its serialisation.
    pub id: [u8; 32],
    /// The signer's x-only public key (BIP-340).
    pub pubkey: [u8; 32],
    /// Seconds since the Unix epoch, as the signer says.
    pub created_at: i64,
    /// The event kind.
    pub kind: u16,
    /// The tags, each a non-empty list of strings.
    pub tags: Vec<Vec<String>>,
    /// The content.
    pub content: String,
    /// The BIP-340 Schnorr signature.
    pub sig: [u8; 64],
}

impl AuthEvent {
    /// The first value of the first tag named `name`.
    #[must_use]
    pub fn tag(&self, name: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|t| t.first().is_some_and(|n| n == name))
            .and_then(|t| t.get(1))
            .map(String::as_str)
    }

    /// The first values of every tag named `name`.
    pub fn tag_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.tags
            .iter()
            .filter(move |t| t.first().is_some_and(|n| n == name))
            .filter_map(|t| t.get(1))
            .map(String::as_str)
    }

    /// The public key as 64 lowercase hex digits.
    #[must_use]
    pub fn pubkey_hex(&self) -> String {
        hex(&self.pubkey)
    }
}

/// The event as JSON (NIP-01 field names).
#[derive(Deserialize)]
struct RawEvent {
    id: String,
    pubkey: String,
    created_at: i64,
    kind: u16,
    tags: Vec<Vec<String>>,
    content: String,
    sig: String,
}

/// Base64 of either alphabet, padding optional.
const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(true);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);

/// Decodes the value of an `Authorization` header carrying a Nostr event (`Nostr <base64>`),
/// bounded as the module docs say. The event is not verified: see [`verify_event`].
///
/// # Errors
/// [`AuthError::NotNostr`], [`AuthError::TooLong`], [`AuthError::NotBase64`],
/// [`AuthError::TooDeep`], [`AuthError::Malformed`].
pub fn decode_header(value: &str) -> Result<AuthEvent, AuthError> {
    let value = value.trim();
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::NotNostr)?;
    if !scheme.eq_ignore_ascii_case("nostr") {
        return Err(AuthError::NotNostr);
    }
    let token = token.trim();
    if token.len() > MAX_AUTH_TOKEN_LEN {
        return Err(AuthError::TooLong {
            got: token.len(),
            limit: MAX_AUTH_TOKEN_LEN,
        });
    }
    let engine = if token.contains(['-', '_']) {
        URL_SAFE
    } else {
        STANDARD
    };
    let json = engine.decode(token).map_err(|_| AuthError::NotBase64)?;
    decode_event_json(&json)
}

/// Decodes one event's JSON (NIP-01), with the depth scan and field checks of the module
/// docs. `json` is at most a few KiB (the caller bounded it).
///
/// # Errors
/// [`AuthError::TooDeep`], [`AuthError::Malformed`].
pub fn decode_event_json(json: &[u8]) -> Result<AuthEvent, AuthError> {
    check_depth(json, MAX_JSON_DEPTH)?;
    let raw: RawEvent =
        serde_json::from_slice(json).map_err(|_| AuthError::Malformed("not an event object"))?;
    if raw.tags.len() > MAX_TAGS {
        return Err(AuthError::Malformed("too many tags"));
    }
    if raw
        .tags
        .iter()
        .any(|t| t.is_empty() || t.len() > MAX_TAG_ITEMS)
    {
        return Err(AuthError::Malformed("an empty or oversized tag"));
    }
    Ok(AuthEvent {
        id: unhex(&raw.id).ok_or(AuthError::Malformed("id"))?,
        pubkey: unhex(&raw.pubkey).ok_or(AuthError::Malformed("pubkey"))?,
        created_at: raw.created_at,
        kind: raw.kind,
        tags: raw.tags,
        content: raw.content,
        sig: unhex(&raw.sig).ok_or(AuthError::Malformed("sig"))?,
    })
}

/// Refuses JSON nested deeper than `limit` arrays/objects, in one pass over the bytes (strings
/// and their escapes skipped), before any parser sees it.
///
/// # Errors
/// [`AuthError::TooDeep`].
pub fn check_depth(json: &[u8], limit: usize) -> Result<(), AuthError> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in json {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Err(AuthError::TooDeep { limit });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Verifies the event's id (NIP-01 serialisation hashed with SHA-256) and its BIP-340 Schnorr
/// signature, with the `nostr` crate.
///
/// # Errors
/// [`AuthError::BadSignature`]; [`AuthError::Malformed`] for a public key that is not on the
/// curve or a tag the crate refuses.
pub fn verify_event(ev: &AuthEvent) -> Result<(), AuthError> {
    use nostr::event::{Event, EventId, Kind, Signature, Tag};
    let pubkey = nostr::key::PublicKey::from_slice(&ev.pubkey)
        .map_err(|_| AuthError::Malformed("pubkey"))?;
    let created_at =
        u64::try_from(ev.created_at).map_err(|_| AuthError::Malformed("created_at"))?;
    let mut tags = Vec::with_capacity(ev.tags.len());
    for t in &ev.tags {
        tags.push(
            Tag::parse(t.iter().map(String::as_str)).map_err(|_| AuthError::Malformed("tag"))?,
        );
    }
    let event = Event::new(
        EventId::from_byte_array(ev.id),
        pubkey,
        nostr::types::Timestamp::from_secs(created_at),
        Kind::from(ev.kind),
        tags,
        ev.content.clone(),
        Signature::from_byte_array(ev.sig),
    );
    event.verify().map_err(|_| AuthError::BadSignature)
}

/// What a NIP-98 event must match: the request as the node received it.
#[derive(Debug, Clone, Copy)]
pub struct HttpRequestFacts<'a> {
    /// The absolute URL, `http://<Host header><request target>` (see `docs/api.md`).
    pub url: &'a str,
    /// The method, e.g. `POST`.
    pub method: &'a str,
    /// SHA-256 of the body, when there is one.
    pub body_sha256: Option<[u8; 32]>,
}

/// Checks a decoded, verified event against NIP-98: kind 27235, `created_at` within
/// [`NIP98_WINDOW_SECS`] of `now_unix`, `u` equal to `req.url`, `method` equal to
/// `req.method` (case-insensitive), and, when the request has a body, a `payload` tag equal to
/// the body's SHA-256 (hex). A `payload` tag on a request without a body is refused too.
///
/// # Errors
/// [`AuthError::WrongKind`], [`AuthError::Stale`], [`AuthError::Tag`].
pub fn check_nip98(
    ev: &AuthEvent,
    req: &HttpRequestFacts<'_>,
    now_unix: i64,
) -> Result<(), AuthError> {
    if ev.kind != KIND_HTTP_AUTH {
        return Err(AuthError::WrongKind {
            got: ev.kind,
            expected: KIND_HTTP_AUTH,
        });
    }
    if ev.created_at.abs_diff(now_unix) > NIP98_WINDOW_SECS.unsigned_abs() {
        return Err(AuthError::Stale);
    }
    if ev.tag("u") != Some(req.url) {
        return Err(AuthError::Tag("u"));
    }
    if !ev
        .tag("method")
        .is_some_and(|m| m.eq_ignore_ascii_case(req.method))
    {
        return Err(AuthError::Tag("method"));
    }
    match (ev.tag("payload"), req.body_sha256) {
        (None, None) => {}
        (Some(p), Some(h)) if p.eq_ignore_ascii_case(&hex(&h)) => {}
        _ => return Err(AuthError::Tag("payload")),
    }
    Ok(())
}

/// What a Blossom authorization must match (BUD-11).
#[derive(Debug, Clone, Copy)]
pub struct BlossomFacts<'a> {
    /// The `t` verb: `upload`, `delete`, `list`, `get`, `media`.
    pub verb: &'a str,
    /// A blob hash the event must name in an `x` tag (upload with a known hash, delete).
    pub x: Option<&'a [u8; 32]>,
    /// The names this node answers to (the request's `Host` without its port, lowercase): a
    /// `server` tag, when present, must name one of them.
    pub server: &'a str,
}

/// Checks a decoded, verified event against BUD-11: kind 24242, `created_at` not more than
/// [`BLOSSOM_FUTURE_SKEW_SECS`] in the future, an `expiration` tag in the future, `t` equal to
/// `facts.verb`, an `x` tag equal to `facts.x` when given, and, when the event has `server`
/// tags, one naming `facts.server`.
///
/// # Errors
/// [`AuthError::WrongKind`], [`AuthError::Stale`], [`AuthError::Tag`].
pub fn check_blossom(
    ev: &AuthEvent,
    facts: &BlossomFacts<'_>,
    now_unix: i64,
) -> Result<(), AuthError> {
    if ev.kind != KIND_BLOSSOM_AUTH {
        return Err(AuthError::WrongKind {
            got: ev.kind,
            expected: KIND_BLOSSOM_AUTH,
        });
    }
    if ev.created_at > now_unix.saturating_add(BLOSSOM_FUTURE_SKEW_SECS) {
        return Err(AuthError::Stale);
    }
    let expiration = ev
        .tag("expiration")
        .and_then(|e| e.parse::<i64>().ok())
        .ok_or(AuthError::Tag("expiration"))?;
    if expiration <= now_unix {
        return Err(AuthError::Stale);
    }
    if !ev.tag_values("t").any(|t| t == facts.verb) {
        return Err(AuthError::Tag("t"));
    }
    if let Some(x) = facts.x {
        let want = hex(x);
        if !ev.tag_values("x").any(|v| v.eq_ignore_ascii_case(&want)) {
            return Err(AuthError::Tag("x"));
        }
    }
    let mut servers = ev.tag_values("server").peekable();
    if servers.peek().is_some() && !servers.any(|s| server_matches(s, facts.server)) {
        return Err(AuthError::Tag("server"));
    }
    Ok(())
}

/// Whether a BUD-11 `server` tag (a domain, possibly written as a URL or with a port) names
/// `host` (lowercase, no port).
fn server_matches(tag: &str, host: &str) -> bool {
    let t = tag.trim();
    let t = t
        .strip_prefix("https://")
        .or_else(|| t.strip_prefix("http://"))
        .unwrap_or(t);
    let t = t.split('/').next().unwrap_or("");
    let without_port = match t.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => t,
    };
    !host.is_empty() && without_port.eq_ignore_ascii_case(host)
}

/// The `x` hashes an event names (valid 64-hex-digit values only), at most [`MAX_TAGS`].
#[must_use]
pub fn x_hashes(ev: &AuthEvent) -> Vec<[u8; 32]> {
    ev.tag_values("x").filter_map(unhex::<32>).collect()
}

/// SHA-256 of `bytes`.
#[must_use]
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Lowercase hex of `bytes`.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// Exactly `2 * N` hex digits (either case) as bytes.
#[must_use]
pub fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes = text.as_bytes();
    if bytes.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        out[i] = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

/// Parses a public key as configured: `npub1…` (NIP-19) or 64 hex digits.
///
/// # Errors
/// A message naming what is wrong.
pub fn parse_pubkey(text: &str) -> Result<[u8; 32], String> {
    let key = nostr::key::PublicKey::parse(text.trim()).map_err(|e| e.to_string())?;
    Ok(key.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kind-27235 event signed by nostr-tools 2 (`finalizeEvent`) for
    /// `GET http://127.0.0.1:9/api/v1/torrents` at created_at 1700000000.
    const NIP98_EVENT: &str = include_str!("../tests/support/nostr/vectors/nip98-get.json");

    fn b64(s: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn known_good_event_verifies_and_checks() {
        let header = format!("Nostr {}", b64(NIP98_EVENT.trim().as_bytes()));
        let ev = decode_header(&header).unwrap();
        verify_event(&ev).unwrap();
        let facts = HttpRequestFacts {
            url: "http://127.0.0.1:9/api/v1/torrents",
            method: "GET",
            body_sha256: None,
        };
        check_nip98(&ev, &facts, ev.created_at + 30).unwrap();
        assert_eq!(
            check_nip98(&ev, &facts, ev.created_at + 61),
            Err(AuthError::Stale)
        );
        let other = HttpRequestFacts {
            url: "http://127.0.0.1:9/api/v1/torrent",
            ..facts
        };
        assert_eq!(
            check_nip98(&ev, &other, ev.created_at),
            Err(AuthError::Tag("u"))
        );
        let post = HttpRequestFacts {
            method: "POST",
            ..facts
        };
        assert_eq!(
            check_nip98(&ev, &post, ev.created_at),
            Err(AuthError::Tag("method"))
        );
        let body = HttpRequestFacts {
            body_sha256: Some(sha256(b"x")),
            ..facts
        };
        assert_eq!(
            check_nip98(&ev, &body, ev.created_at),
            Err(AuthError::Tag("payload"))
        );
        // URL-safe alphabet without padding decodes to the same event.
        let url_safe =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(NIP98_EVENT.trim().as_bytes());
        assert_eq!(decode_header(&format!("Nostr {url_safe}")).unwrap(), ev);
    }

    #[test]
    fn tampered_event_fails_verification() {
        let mut ev = decode_event_json(NIP98_EVENT.trim().as_bytes()).unwrap();
        ev.created_at += 1;
        assert_eq!(verify_event(&ev), Err(AuthError::BadSignature));
        let mut ev = decode_event_json(NIP98_EVENT.trim().as_bytes()).unwrap();
        ev.sig[10] ^= 1;
        assert_eq!(verify_event(&ev), Err(AuthError::BadSignature));
    }

    #[test]
    fn oversized_and_deep_input_refused_before_parsing() {
        let big = format!("Nostr {}", "A".repeat(MAX_AUTH_TOKEN_LEN + 1));
        assert!(matches!(
            decode_header(&big),
            Err(AuthError::TooLong { .. })
        ));
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(
            decode_event_json(deep.as_bytes()),
            Err(AuthError::TooDeep {
                limit: MAX_JSON_DEPTH
            })
        );
        // Brackets inside strings do not count.
        check_depth(br#"{"a":"[[[[[[[[\"[[["}"#, 1).unwrap();
        assert_eq!(decode_header("Bearer abc"), Err(AuthError::NotNostr));
        assert_eq!(decode_header("Nostr !!!"), Err(AuthError::NotBase64));
    }

    #[test]
    fn blossom_rules() {
        let ev = AuthEvent {
            id: [0; 32],
            pubkey: [0; 32],
            created_at: 1000,
            kind: KIND_BLOSSOM_AUTH,
            tags: vec![
                vec!["t".into(), "upload".into()],
                vec!["x".into(), hex(&[7; 32])],
                vec!["expiration".into(), "2000".into()],
                vec!["server".into(), "https://Blobs.Example:443/".into()],
            ],
            content: String::new(),
            sig: [0; 64],
        };
        let facts = BlossomFacts {
            verb: "upload",
            x: Some(&[7; 32]),
            server: "blobs.example",
        };
        check_blossom(&ev, &facts, 1500).unwrap();
        assert_eq!(check_blossom(&ev, &facts, 2000), Err(AuthError::Stale));
        let delete = BlossomFacts {
            verb: "delete",
            ..facts
        };
        assert_eq!(check_blossom(&ev, &delete, 1500), Err(AuthError::Tag("t")));
        let other_x = BlossomFacts {
            x: Some(&[8; 32]),
            ..facts
        };
        assert_eq!(check_blossom(&ev, &other_x, 1500), Err(AuthError::Tag("x")));
        let elsewhere = BlossomFacts {
            server: "127.0.0.1",
            ..facts
        };
        assert_eq!(
            check_blossom(&ev, &elsewhere, 1500),
            Err(AuthError::Tag("server"))
        );
        assert_eq!(x_hashes(&ev), vec![[7; 32]]);
    }

    #[test]
    fn pubkeys_parse_as_npub_or_hex() {
        let hex_key = "3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d";
        let npub = "npub180cvv07tjdrrgpa0j7j7tmnyl2yr6yr7l8j4s3evf6u64th6gkwsyjh6w6";
        assert_eq!(parse_pubkey(hex_key).unwrap(), parse_pubkey(npub).unwrap());
        assert!(parse_pubkey("npub1nope").is_err());
    }
}
