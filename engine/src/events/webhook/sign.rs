//! Standard Webhooks signatures (the Standard Webhooks specification, "Signature scheme"):
//! `webhook-signature: v1,<base64 HMAC-SHA256(secret, "{webhook-id}.{webhook-timestamp}.{body}")>`
//! (HMAC: RFC 2104; SHA-256: FIPS 180-4), with the secret given as `whsec_<base64>`. During a
//! secret rotation an endpoint has several secrets and the header carries one signature per
//! secret, space-separated; a receiver accepts the message when any one verifies.
//!
//! The signature covers the body bytes exactly as sent: for a sealed endpoint, the JSON wrapper
//! around the ciphertext ([`super::seal`]).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_PAD_INDIFFERENT};
use ring::hmac;
use ring::rand::SecureRandom;

/// The prefix of a secret in its textual form (Standard Webhooks, "Symmetric signatures").
pub(crate) const SECRET_PREFIX: &str = "whsec_";

/// Shortest secret accepted, bytes after base64 decoding: the specification's lower bound
/// (24 bytes; its own test vector's secret is 24 bytes). A shorter one is refused.
pub(crate) const MIN_SECRET_LEN: usize = 24;

/// Longest secret accepted, bytes after decoding: the specification's upper bound (64 bytes,
/// SHA-256's block size: a longer HMAC key would be hashed first, RFC 2104 §3).
pub(crate) const MAX_SECRET_LEN: usize = 64;

/// Length of the secrets the node generates, bytes (256 bits).
pub(crate) const GENERATED_SECRET_LEN: usize = 32;

/// The signature version tag of HMAC-SHA256 (Standard Webhooks, "Signature scheme").
const VERSION_V1: &str = "v1";

/// Why a `whsec_` secret was refused (registration: `seednode webhook add`, the config file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SecretError {
    /// The secret does not start with `whsec_`.
    #[error("a webhook secret starts with whsec_")]
    MissingPrefix,
    /// What follows `whsec_` is not standard base64.
    #[error("a webhook secret is whsec_ followed by base64")]
    NotBase64,
    /// The decoded secret is too short or too long.
    #[error("a webhook secret decodes to {len} bytes; {min} to {max} are accepted")]
    BadLength {
        /// Decoded length, bytes.
        len: usize,
        /// [`MIN_SECRET_LEN`].
        min: usize,
        /// [`MAX_SECRET_LEN`].
        max: usize,
    },
}

/// A parsed signing secret: an HMAC-SHA256 key. Its `Debug` never shows the key.
pub(crate) struct WebhookSecret(hmac::Key);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(…)")
    }
}

impl WebhookSecret {
    /// Parses `whsec_<base64>` (padding optional, as the reference libraries accept).
    ///
    /// # Errors
    /// [`SecretError`]: no prefix, not base64, or a decoded length outside
    /// [`MIN_SECRET_LEN`]..=[`MAX_SECRET_LEN`].
    pub(crate) fn parse(text: &str) -> Result<Self, SecretError> {
        let b64 = text
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretError::MissingPrefix)?;
        let raw = STANDARD_PAD_INDIFFERENT
            .decode(b64)
            .map_err(|_| SecretError::NotBase64)?;
        if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&raw.len()) {
            return Err(SecretError::BadLength {
                len: raw.len(),
                min: MIN_SECRET_LEN,
                max: MAX_SECRET_LEN,
            });
        }
        Ok(Self(hmac::Key::new(hmac::HMAC_SHA256, &raw)))
    }

    /// A new random secret of [`GENERATED_SECRET_LEN`] bytes in the `whsec_` form.
    ///
    /// # Errors
    /// The system RNG failed.
    pub(crate) fn generate(rng: &dyn SecureRandom) -> Result<String, ring::error::Unspecified> {
        let mut raw = [0u8; GENERATED_SECRET_LEN];
        rng.fill(&mut raw)?;
        Ok(format!("{SECRET_PREFIX}{}", STANDARD.encode(raw)))
    }

    /// `v1,<base64 HMAC-SHA256("{id}.{timestamp}.{body}")>`.
    pub(crate) fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(id.as_bytes());
        ctx.update(b".");
        ctx.update(timestamp.to_string().as_bytes());
        ctx.update(b".");
        ctx.update(body);
        format!("{VERSION_V1},{}", STANDARD.encode(ctx.sign().as_ref()))
    }

    /// Whether `header` (a `webhook-signature` value: space-separated `version,signature`
    /// pairs) holds a valid `v1` signature of this message by this secret. Compared in
    /// constant time (`ring::hmac::verify`). Timestamp tolerance and replay checks are the
    /// receiver's (used here by tests).
    #[cfg(test)]
    pub(crate) fn verify(&self, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
        let mut message = Vec::with_capacity(id.len() + 24 + body.len());
        message.extend_from_slice(id.as_bytes());
        message.push(b'.');
        message.extend_from_slice(timestamp.to_string().as_bytes());
        message.push(b'.');
        message.extend_from_slice(body);
        header.split(' ').any(|sig| {
            sig.split_once(',').is_some_and(|(version, b64)| {
                version == VERSION_V1
                    && STANDARD
                        .decode(b64)
                        .is_ok_and(|tag| hmac::verify(&self.0, &message, &tag).is_ok())
            })
        })
    }
}

/// The `webhook-signature` value for a message: one `v1` signature per secret, in the order
/// given (newest first), space-separated.
pub(crate) fn signature_header(
    secrets: &[WebhookSecret],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    let mut out = String::new();
    for s in secrets {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&s.sign(id, timestamp, body));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector of the Standard Webhooks reference libraries
    /// (`libraries/python/tests/test_webhooks.py`, `test_sign_function`).
    #[test]
    fn standard_webhooks_sign_vector() {
        let s = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = s.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn verification_matrix() {
        let s = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let other = WebhookSecret::parse(&format!("whsec_{}", STANDARD.encode([9u8; 32]))).unwrap();
        let (id, ts, body) = ("msg_1", 1_700_000_000, br#"{"a":1}"#.as_slice());
        let good = s.sign(id, ts, body);
        assert!(s.verify(id, ts, body, &good));
        assert!(!s.verify(id, ts, br#"{"a":2}"#, &good), "tampered body");
        assert!(!s.verify("msg_2", ts, body, &good), "other id");
        assert!(!s.verify(id, ts + 1, body, &good), "other timestamp");
        assert!(!other.verify(id, ts, body, &good), "wrong secret");
        assert!(
            !s.verify(id, ts, body, &good.replace("v1,", "v2,")),
            "unknown version"
        );
        assert!(!s.verify(id, ts, body, "v1,!!!"), "not base64");
        // A rotation: both secrets sign, either one verifies.
        let both = signature_header(&[other, s], id, ts, body);
        assert_eq!(both.split(' ').count(), 2);
        assert!(both.ends_with(&good));
        let s = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert!(s.verify(id, ts, body, &both));
    }

    #[test]
    fn secrets_are_checked() {
        assert_eq!(
            WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap_err(),
            SecretError::MissingPrefix
        );
        assert_eq!(
            WebhookSecret::parse("whsec_%%%").unwrap_err(),
            SecretError::NotBase64
        );
        assert!(matches!(
            WebhookSecret::parse("whsec_c2hvcnQ=").unwrap_err(),
            SecretError::BadLength { len: 5, .. }
        ));
        let long = format!("whsec_{}", STANDARD.encode([1u8; MAX_SECRET_LEN + 1]));
        assert!(matches!(
            WebhookSecret::parse(&long).unwrap_err(),
            SecretError::BadLength { .. }
        ));
        // Unpadded base64 is accepted, as by the reference libraries.
        let unpadded = format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode([3u8; 32])
        );
        assert!(WebhookSecret::parse(&unpadded).is_ok());
        let generated = WebhookSecret::generate(&ring::rand::SystemRandom::new()).unwrap();
        assert!(WebhookSecret::parse(&generated).is_ok());
        assert_eq!(
            format!("{:?}", WebhookSecret::parse(&generated).unwrap()),
            "WebhookSecret(…)"
        );
    }
}
