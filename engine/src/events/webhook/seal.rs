//! Sealed-box payloads: an endpoint registered with a recipient X25519 public key gets each
//! event body encrypted to that key as a libsodium sealed box (`crypto_box_seal`: an ephemeral
//! X25519 key, XSalsa20-Poly1305, nonce = BLAKE2b(ephemeral_pk ‖ recipient_pk); libsodium
//! documentation, "Sealed boxes"), through RustCrypto's `crypto_box` crate.
//!
//! Wire format (`Content-Type: application/json`, so Standard Webhooks libraries that parse the
//! body after verifying still work):
//!
//! ```json
//! {"sealed":"<standard base64 of ephemeral_pk ‖ ciphertext ‖ tag>"}
//! ```
//!
//! The Standard Webhooks signature covers these bytes (the ciphertext), so a relay can check
//! origin without reading the event. The receiver verifies the signature, then opens the box
//! with its private key (PyNaCl: `SealedBox(PrivateKey(sk)).decrypt(base64.b64decode(sealed))`)
//! and gets the plain event JSON. A box is sealed afresh at every attempt (a new ephemeral
//! key), so retries carry different bytes with the same `webhook-id`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use crypto_box::PublicKey;
use crypto_box::aead::OsRng;

/// Length of an X25519 public key, bytes.
pub(crate) const RECIPIENT_KEY_LEN: usize = 32;

/// What a sealed box adds to the plaintext, bytes: the ephemeral public key (32) and the
/// Poly1305 tag (16).
#[cfg(test)]
pub(crate) const SEAL_OVERHEAD_LEN: usize = 32 + 16;

/// Why a recipient key was refused at registration, or a body could not be sealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SealError {
    /// The key is neither 32 bytes of standard base64 (44 characters) nor of hex (64).
    #[error("a recipient key is 32 bytes of X25519 public key, in base64 or hex")]
    BadKey,
    /// The all-zero key (no one holds its private key; libsodium refuses it).
    #[error("the all-zero recipient key is refused")]
    ZeroKey,
    /// Encryption failed (the body is beyond what XSalsa20 can encrypt: never for bodies of
    /// [`seednode_storage::catalog::MAX_WEBHOOK_BODY_LEN`]).
    #[error("sealing the webhook body failed")]
    Encrypt,
}

/// Parses a recipient public key given as 44 characters of standard base64 or 64 hex digits.
///
/// # Errors
/// [`SealError::BadKey`], [`SealError::ZeroKey`].
pub(crate) fn parse_recipient_key(text: &str) -> Result<[u8; RECIPIENT_KEY_LEN], SealError> {
    let text = text.trim();
    let bytes = if text.len() == 2 * RECIPIENT_KEY_LEN {
        hex_decode(text).ok_or(SealError::BadKey)?
    } else {
        STANDARD.decode(text).map_err(|_| SealError::BadKey)?
    };
    let key =
        <[u8; RECIPIENT_KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| SealError::BadKey)?;
    if key == [0; RECIPIENT_KEY_LEN] {
        return Err(SealError::ZeroKey);
    }
    Ok(key)
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Seals `plain` to `recipient` and wraps it as `{"sealed":"<base64>"}` (the module's wire
/// format). Draws the ephemeral key from the operating system's RNG.
///
/// # Errors
/// [`SealError::Encrypt`].
pub(crate) fn seal_body(
    recipient: &[u8; RECIPIENT_KEY_LEN],
    plain: &[u8],
) -> Result<String, SealError> {
    let sealed = PublicKey::from(*recipient)
        .seal(&mut OsRng, plain)
        .map_err(|_| SealError::Encrypt)?;
    Ok(format!("{{\"sealed\":\"{}\"}}", STANDARD.encode(sealed)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crypto_box::SecretKey;

    #[test]
    fn sealed_bodies_open_with_the_recipient_key() {
        let sk = SecretKey::generate(&mut OsRng);
        let pk = sk.public_key().to_bytes();
        let plain = br#"{"type":"torrent.added","data":{}}"#;
        let body = seal_body(&pk, plain).expect("seal");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        let sealed = STANDARD
            .decode(v["sealed"].as_str().expect("string"))
            .expect("b64");
        assert_eq!(sealed.len(), plain.len() + SEAL_OVERHEAD_LEN);
        assert_eq!(sk.unseal(&sealed).expect("opens"), plain);
        // A fresh box at every call.
        assert_ne!(seal_body(&pk, plain).expect("seal"), body);
        // Another key does not open it.
        assert!(SecretKey::generate(&mut OsRng).unseal(&sealed).is_err());
    }

    #[test]
    fn recipient_keys_in_base64_or_hex() {
        let k = [0x42u8; 32];
        assert_eq!(parse_recipient_key(&STANDARD.encode(k)), Ok(k));
        assert_eq!(parse_recipient_key(&"42".repeat(32)), Ok(k));
        assert_eq!(
            parse_recipient_key(&"4g".repeat(32)),
            Err(SealError::BadKey)
        );
        assert_eq!(
            parse_recipient_key(&STANDARD.encode([1u8; 31])),
            Err(SealError::BadKey)
        );
        assert_eq!(
            parse_recipient_key(&STANDARD.encode([0u8; 32])),
            Err(SealError::ZeroKey)
        );
        assert_eq!(
            parse_recipient_key("é".repeat(32).as_str()),
            Err(SealError::BadKey)
        );
    }
}
