//! Out-of-band approvals (issue 13, docs/approvals.md): the policy (which actions wait for a
//! device's signature), the canonical challenge bytes a device signs, and Ed25519 (RFC 8032)
//! signing and verification with `ring`.
//!
//! Pure: no I/O, no clock. The caller passes the time, the random id and nonce, and the
//! catalog's rows; the reactor (`reactor/approve.rs`) stores, gates and runs.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};

/// Every action name the policy knows. The first five are issue 13's; the rest are the other
/// API writes, critical only with `all_writes` (or when listed).
pub(crate) const ACTIONS: &[&str] = &[
    TORRENT_REMOVE,
    DATA_DELETE,
    TOKEN_CREATE,
    CLIENT_CREATE,
    WEBHOOK_ADD,
    TORRENT_ADD,
    TORRENT_PAUSE,
    TORRENT_RESUME,
    DEVICE_ADD,
    DEVICE_REVOKE,
];

/// Removing a torrent (`DELETE /api/v1/torrents/<ih>`).
pub(crate) const TORRENT_REMOVE: &str = "torrent.remove";
/// Removing a torrent with its data (`?delete_data=true`); also gated by `torrent.remove`.
pub(crate) const DATA_DELETE: &str = "data.delete";
/// Creating an API token (`POST /api/v1/tokens`).
pub(crate) const TOKEN_CREATE: &str = "token.create";
/// Creating an OAuth2 client (no API route yet: `seednode client create` on the data
/// directory is the operator's own, never gated).
pub(crate) const CLIENT_CREATE: &str = "client.create";
/// Registering a webhook endpoint (no API route yet, as [`CLIENT_CREATE`]).
pub(crate) const WEBHOOK_ADD: &str = "webhook.add";
/// Adding a torrent (`POST /api/v1/torrents`).
pub(crate) const TORRENT_ADD: &str = "torrent.add";
/// Pausing a torrent.
pub(crate) const TORRENT_PAUSE: &str = "torrent.pause";
/// Resuming a torrent.
pub(crate) const TORRENT_RESUME: &str = "torrent.resume";
/// Registering a device key over the API: always critical once approvals are on (an admin
/// token alone must not be able to enrol the key that approves).
pub(crate) const DEVICE_ADD: &str = "device.add";
/// Revoking a device key over the API.
pub(crate) const DEVICE_REVOKE: &str = "device.revoke";

/// The default time a device has to sign, seconds (issue 13).
pub(crate) const DEFAULT_EXPIRY_SECS: u64 = 120;

/// Shortest and longest accepted `expiry_secs`: under 10 s nobody can read a phone; over an
/// hour a forgotten approval stays grantable far too long. Values outside are clamped.
pub(crate) const EXPIRY_SECS_RANGE: std::ops::RangeInclusive<u64> = 10..=3600;

/// Length of an approval id's random part, bytes (128 bits: unguessable).
pub(crate) const APPROVAL_ID_RANDOM_LEN: usize = 16;

/// Length of the challenge's nonce, bytes (128 bits).
pub(crate) const NONCE_LEN: usize = 16;

/// Length of an Ed25519 signature, bytes (RFC 8032 §5.1.6).
pub(crate) const SIGNATURE_LEN: usize = 64;

/// Length of an Ed25519 private key (its seed), bytes (RFC 8032 §5.1.5).
pub(crate) const SEED_LEN: usize = 32;

/// The first line of every version-1 challenge (docs/approvals.md).
pub(crate) const CHALLENGE_MAGIC: &str = "seednode-approval-v1";

/// Largest body of `POST /api/v1/approvals/<id>`, bytes: a device name, a 64-byte signature
/// in base64 and optionally the challenge are well under this.
pub(crate) const MAX_GRANT_BODY_LEN: usize = 4096;

/// Which actions wait for a device's signature (`[approvals]` in the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Policy {
    /// The critical action names (a subset of [`ACTIONS`]).
    pub(crate) critical: BTreeSet<&'static str>,
    /// Every API write is critical.
    pub(crate) all_writes: bool,
    /// Seconds a device has to sign.
    pub(crate) expiry_secs: u64,
}

impl Policy {
    /// A policy from the config's names.
    ///
    /// # Errors
    /// An unknown action name, with the known ones.
    pub(crate) fn new(
        names: &[String],
        all_writes: bool,
        expiry_secs: u64,
    ) -> Result<Self, String> {
        let mut critical = BTreeSet::new();
        for n in names {
            let Some(known) = ACTIONS.iter().find(|a| **a == n.as_str()) else {
                return Err(format!(
                    "[approvals] critical: unknown action {n:?} (known: {})",
                    ACTIONS.join(", ")
                ));
            };
            critical.insert(*known);
        }
        Ok(Self {
            critical,
            all_writes,
            expiry_secs: expiry_secs.clamp(*EXPIRY_SECS_RANGE.start(), *EXPIRY_SECS_RANGE.end()),
        })
    }

    /// Whether approvals are on at all (then device enrolment over the API is gated too).
    pub(crate) fn enabled(&self) -> bool {
        self.all_writes || !self.critical.is_empty()
    }

    /// Whether `action` must wait for a signature. `data.delete` also waits when
    /// `torrent.remove` is critical (it is a removal), and `device.add` whenever approvals are
    /// on.
    pub(crate) fn is_critical(&self, action: &str) -> bool {
        if !self.enabled() {
            return false;
        }
        self.all_writes
            || self.critical.contains(action)
            || action == DEVICE_ADD
            || (action == DATA_DELETE && self.critical.contains(TORRENT_REMOVE))
    }
}

/// What a challenge binds (docs/approvals.md, "Challenge bytes").
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge<'a> {
    /// The approval id (`apr_` and 32 hex digits).
    pub(crate) id: &'a str,
    /// The action.
    pub(crate) action: &'a str,
    /// Its target (info-hash, token id, device name, …).
    pub(crate) target: &'a str,
    /// The requesting token or client id; `-` for none.
    pub(crate) actor: &'a str,
    /// Expiry, seconds since the Unix epoch.
    pub(crate) expires_at: i64,
    /// 32 hex digits of randomness.
    pub(crate) nonce: &'a str,
}

impl Challenge<'_> {
    /// The canonical bytes: seven `key: value` lines, each ending in LF, UTF-8, no other
    /// whitespace. Values never hold a line break ([`field_ok`] is checked by the caller).
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut s = String::with_capacity(256);
        let _ = write!(
            s,
            "{CHALLENGE_MAGIC}\nid: {}\naction: {}\ntarget: {}\nactor: {}\nexpires: {}\nnonce: {}\n",
            self.id, self.action, self.target, self.actor, self.expires_at, self.nonce
        );
        s.into_bytes()
    }
}

/// Reads the fields of a version-1 challenge back; `None` for anything else.
pub(crate) fn parse_challenge(bytes: &[u8]) -> Option<Challenge<'_>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.strip_suffix('\n')?.split('\n');
    if lines.next()? != CHALLENGE_MAGIC {
        return None;
    }
    let mut field = |key: &str| {
        lines
            .next()
            .and_then(|l| l.strip_prefix(key))
            .and_then(|l| l.strip_prefix(": "))
    };
    let c = Challenge {
        id: field("id")?,
        action: field("action")?,
        target: field("target")?,
        actor: field("actor")?,
        expires_at: field("expires")?.parse().ok()?,
        nonce: field("nonce")?,
    };
    lines.next().is_none().then_some(c)
}

/// Whether `value` may be a challenge field: printable ASCII without a line break, at most
/// 256 bytes.
pub(crate) fn field_ok(value: &str) -> bool {
    value.len() <= 256 && value.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// Verifies an Ed25519 signature (RFC 8032 §5.1.7, pure Ed25519, no pre-hash) by
/// `public_key` over `message`.
pub(crate) fn verify(public_key: &[u8; 32], message: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(message, signature)
        .is_ok()
}

/// Signs `message` with the Ed25519 private key `seed` (RFC 8032 §5.1.6); returns the
/// signature and the public key.
pub(crate) fn sign(seed: &[u8; SEED_LEN], message: &[u8]) -> Result<([u8; 64], [u8; 32]), String> {
    let pair = Ed25519KeyPair::from_seed_unchecked(seed)
        .map_err(|_| "not an Ed25519 private key".to_owned())?;
    let mut sig = [0u8; 64];
    sig.copy_from_slice(pair.sign(message).as_ref());
    let mut public = [0u8; 32];
    public.copy_from_slice(pair.public_key().as_ref());
    Ok((sig, public))
}

/// Decodes `n` bytes given as `2n` hex digits or as standard base64 (padded or not);
/// surrounding whitespace is ignored.
pub(crate) fn decode_fixed<const N: usize>(text: &str) -> Option<[u8; N]> {
    let text = text.trim();
    if text.len() == 2 * N && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut out = [0u8; N];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        return Some(out);
    }
    if text.len() > 2 * N {
        return None;
    }
    let bytes = STANDARD
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
        .ok()?;
    <[u8; N]>::try_from(bytes.as_slice()).ok()
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 * bytes.len());
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Standard base64 of `bytes`.
pub(crate) fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Standard base64 decoding of `text`, at most `limit` bytes of text.
pub(crate) fn b64_decode(text: &str, limit: usize) -> Option<Vec<u8>> {
    if text.len() > limit {
        return None;
    }
    STANDARD.decode(text.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8032 §7.1, TEST 2: a one-byte message.
    #[test]
    fn rfc8032_test_2_vector() {
        let seed: [u8; 32] =
            decode_fixed("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
                .unwrap();
        let public: [u8; 32] =
            decode_fixed("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
                .unwrap();
        let (sig, derived) = sign(&seed, &[0x72]).unwrap();
        assert_eq!(derived, public);
        assert_eq!(
            hex(&sig),
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da\
             085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
        );
        assert!(verify(&public, &[0x72], &sig));
        assert!(!verify(&public, &[0x73], &sig));
    }

    #[test]
    fn challenge_round_trips_and_binds_every_field() {
        let c = Challenge {
            id: "apr_00112233445566778899aabbccddeeff",
            action: TORRENT_REMOVE,
            target: "ab",
            actor: "-",
            expires_at: 1_765_036_920,
            nonce: "0f",
        };
        let bytes = c.to_bytes();
        assert_eq!(
            bytes,
            b"seednode-approval-v1\nid: apr_00112233445566778899aabbccddeeff\n\
              action: torrent.remove\ntarget: ab\nactor: -\nexpires: 1765036920\nnonce: 0f\n"
        );
        assert_eq!(parse_challenge(&bytes), Some(c));
        assert_eq!(parse_challenge(b"seednode-approval-v2\n"), None);
        for n in 0..bytes.len() {
            let _ = parse_challenge(&bytes[..n]); // never panics
        }
        assert!(!field_ok("a\nb"));
    }

    #[test]
    fn policy_rules() {
        let p = Policy::new(&["torrent.remove".into()], false, 5).unwrap();
        assert_eq!(p.expiry_secs, 10);
        assert!(p.is_critical(DATA_DELETE));
        assert!(p.is_critical(DEVICE_ADD));
        assert!(!p.is_critical(TORRENT_PAUSE));
        assert!(Policy::new(&["torrent.explode".into()], false, 120).is_err());
        let off = Policy::new(&[], false, 120).unwrap();
        assert!(!off.is_critical(DEVICE_ADD));
        assert!(decode_fixed::<4>("AAECAw==").is_some());
        assert!(decode_fixed::<4>("00010203").is_some());
        assert!(decode_fixed::<4>("0001020").is_none());
    }
}
