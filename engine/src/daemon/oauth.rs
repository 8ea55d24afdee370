//! The node as an OAuth2 authorization server for machine clients (RFC 6749 §4.4, the
//! client-credentials grant): access tokens it issues and checks itself.
//!
//! An access token reads `sno_<client id>_<expiry>_<scopes>_<mac>`: the client's public id
//! (12 hex digits), the expiry in Unix seconds, the scopes joined by `.` (`upload.read`), and
//! HMAC-SHA256 over everything before it under the node's key (64 hex digits). Nothing is
//! stored per token: a token is good while its MAC checks, it has not expired, and its client
//! exists unrevoked (so revoking a client ends its tokens at once), with the scopes the client
//! still has. Every character is RFC 6750's `b64token` set. The key is 32 random bytes kept in
//! the catalog's settings ([`HMAC_KEY_SETTING`]), made at the first `seednode run`.

use std::time::Duration;

use ring::hmac;
use seednode_storage::catalog::{Scopes, TOKEN_ID_LEN, TokenError};

/// What every access token starts with.
pub(crate) const ACCESS_TOKEN_PREFIX: &str = "sno_";

/// The catalog setting holding the HMAC key, 64 hex digits.
pub(crate) const HMAC_KEY_SETTING: &str = "oauth.hmac_key";

/// Lifetime of an issued access token (RFC 6749 §4.4.3 `expires_in`): short, since nothing
/// stored can revoke a single token (revoking its client does).
pub(crate) const ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// Longest access token accepted, bytes (prefix, id, expiry, every scope, MAC): anything
/// longer is malformed before any work.
pub(crate) const MAX_ACCESS_TOKEN_LEN: usize = 160;

/// Issues and checks access tokens under one key.
pub(crate) struct Signer {
    key: hmac::Key,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(<key>)")
    }
}

impl Clone for Signer {
    fn clone(&self) -> Self {
        // ring's keys are not Clone; the bytes are not kept, so clone by sharing.
        Self {
            key: self.key.clone(),
        }
    }
}

impl Signer {
    /// A signer with the 32-byte `key`.
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        }
    }

    /// A signer from the key's 64 hex digits (the catalog setting); `None` if malformed.
    pub(crate) fn from_hex(text: &str) -> Option<Self> {
        let bytes = decode_hex(text)?;
        let key: [u8; 32] = bytes.try_into().ok()?;
        Some(Self::new(&key))
    }

    /// An access token for client `client_id` with `scopes`, expiring at `expires_at` (Unix
    /// seconds).
    pub(crate) fn issue(&self, client_id: &str, scopes: Scopes, expires_at: i64) -> String {
        let body = format!(
            "{ACCESS_TOKEN_PREFIX}{client_id}_{expires_at}_{}",
            scopes.to_string().replace(',', ".")
        );
        let tag = hmac::sign(&self.key, body.as_bytes());
        format!("{body}_{}", encode_hex(tag.as_ref()))
    }

    /// Checks an access token's form, MAC and expiry at `now` (Unix seconds): its client id,
    /// scopes and expiry. The caller then checks that the client still exists unrevoked.
    ///
    /// # Errors
    /// [`TokenError::Malformed`], [`TokenError::Unknown`] (a MAC that does not verify),
    /// [`TokenError::Expired`].
    pub(crate) fn verify<'a>(
        &self,
        token: &'a str,
        now: i64,
    ) -> Result<(&'a str, Scopes, i64), TokenError> {
        if token.len() > MAX_ACCESS_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let rest = token
            .strip_prefix(ACCESS_TOKEN_PREFIX)
            .ok_or(TokenError::Malformed)?;
        let (body_rest, mac_hex) = rest.rsplit_once('_').ok_or(TokenError::Malformed)?;
        let mut parts = body_rest.splitn(3, '_');
        let (Some(id), Some(exp), Some(scopes)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(TokenError::Malformed);
        };
        if id.len() != TOKEN_ID_LEN || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(TokenError::Malformed);
        }
        let exp: i64 = exp.parse().map_err(|_| TokenError::Malformed)?;
        let scopes = Scopes::parse(&scopes.replace('.', ",")).ok_or(TokenError::Malformed)?;
        let mac = decode_hex(mac_hex).ok_or(TokenError::Malformed)?;
        let signed = &token[..token.len() - mac_hex.len() - 1];
        hmac::verify(&self.key, signed.as_bytes(), &mac).map_err(|_| TokenError::Unknown)?;
        if now >= exp {
            return Err(TokenError::Expired);
        }
        Ok((id, scopes, exp))
    }
}

fn encode_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || text.len() > 128 {
        return None;
    }
    text.as_bytes()
        .chunks_exact(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(s, 16).ok()
        })
        .collect()
}

/// 32 fresh key bytes as hex, for [`HMAC_KEY_SETTING`].
///
/// # Errors
/// The operating system's random generator failed.
pub(crate) fn new_key_hex() -> Result<String, String> {
    use ring::rand::SecureRandom as _;
    let mut key = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| "the operating system's random generator failed".to_owned())?;
    Ok(encode_hex(&key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_until_they_expire_and_resist_tampering() {
        let signer = Signer::new(&[7; 32]);
        let scopes = Scopes::UPLOAD | Scopes::READ;
        let token = signer.issue("0123456789ab", scopes, 1_000);
        assert!(token.starts_with("sno_0123456789ab_1000_upload.read_"));
        assert!(token.len() <= MAX_ACCESS_TOKEN_LEN);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)),
            "RFC 6750 b64token"
        );
        assert_eq!(
            signer.verify(&token, 999).unwrap(),
            ("0123456789ab", scopes, 1_000)
        );
        assert!(matches!(
            signer.verify(&token, 1_000),
            Err(TokenError::Expired)
        ));
        // A longer life, more scopes, or another key: the MAC fails.
        let forged = token.replace("_1000_", "_9999_");
        assert!(matches!(
            signer.verify(&forged, 0),
            Err(TokenError::Unknown)
        ));
        let forged = token.replace("upload.read", "admin");
        assert!(matches!(
            signer.verify(&forged, 0),
            Err(TokenError::Unknown)
        ));
        assert!(matches!(
            Signer::new(&[8; 32]).verify(&token, 0),
            Err(TokenError::Unknown)
        ));
        for bad in [
            "",
            "sno_",
            "sno_x_1_read_00",
            &"sno_".repeat(100),
            "sn_0123456789ab_1_read_00",
        ] {
            assert!(
                matches!(signer.verify(bad, 0), Err(TokenError::Malformed)),
                "{bad}"
            );
        }
        let key = new_key_hex().unwrap();
        assert!(Signer::from_hex(&key).is_some());
        assert!(Signer::from_hex("zz").is_none());
    }
}
