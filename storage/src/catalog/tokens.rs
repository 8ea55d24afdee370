//! API tokens: scopes, expiry, revocation; only the SHA-256 of a secret is stored (SECURITY
//! rule 10, A8).
//!
//! A token reads `sn_<id>_<secret>`: `id` is [`TOKEN_ID_LEN`] lowercase hex digits, public (it
//! names the token in `token list` and `token revoke`); `secret` is the caller's
//! [`TOKEN_SECRET_LEN`] random bytes in lowercase hex. The catalog stores the SHA-256 of the
//! secret bytes and compares hashes in constant time; the token string exists only in the value
//! [`Catalog::create_token`] returns, to be printed once.

use std::fmt;
use std::ops::BitOr;

use rusqlite::{OptionalExtension, params};
use seednode_wire::ct::constant_time_eq;
use sha2::{Digest as _, Sha256};

use super::{Catalog, CatalogError, check_text};
use crate::limits::{MAX_TOKEN_LABEL_LEN, MAX_TOKENS};

/// The public id and the stored SHA-256 of a token secret: what [`Catalog::create_token`]
/// derives, for [`Catalog::create_token_hashed`]. The token string is
/// `sn_<id>_<hex(secret)>`.
#[must_use]
pub fn token_digest(secret: &[u8; TOKEN_SECRET_LEN]) -> (String, [u8; 32]) {
    let mut id_hash = Sha256::new();
    id_hash.update(ID_DOMAIN);
    id_hash.update(secret);
    let id = hex(&id_hash.finalize()[..TOKEN_ID_LEN / 2]);
    (id, Sha256::digest(secret).into())
}

/// What every token string starts with.
pub const TOKEN_PREFIX: &str = "sn_";

/// Length of a token's public id, in hex digits (48 bits: unique among
/// [`MAX_TOKENS`] tokens with overwhelming probability).
pub const TOKEN_ID_LEN: usize = 12;

/// Length of a token's secret, in bytes: 256 bits (SECURITY §2.7, Auth row). The caller draws
/// them from a CSPRNG (`ring::rand::SystemRandom`).
pub const TOKEN_SECRET_LEN: usize = 32;

/// Length of a whole token string, in bytes: prefix, id, `_`, secret in hex.
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + TOKEN_ID_LEN + 1 + 2 * TOKEN_SECRET_LEN;

/// Domain separation of the id derivation: the id is the first bytes of SHA-256 of this
/// followed by the secret, so it says nothing usable about the secret or its stored hash.
const ID_DOMAIN: &[u8] = b"seednode token id\0";

/// What a token allows: a set of scopes (`admin`, `upload`, `read`, `metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Scopes(u8);

impl Scopes {
    /// Everything, including managing tokens.
    pub const ADMIN: Self = Self(1);
    /// Adding torrents.
    pub const UPLOAD: Self = Self(2);
    /// Reading the torrent list and statistics.
    pub const READ: Self = Self(4);
    /// Reading `/metrics`.
    pub const METRICS: Self = Self(8);
    /// Each scope with its name, in display order.
    const NAMES: [(Self, &'static str); 4] = [
        (Self::ADMIN, "admin"),
        (Self::UPLOAD, "upload"),
        (Self::READ, "read"),
        (Self::METRICS, "metrics"),
    ];

    /// No scope.
    #[must_use]
    pub const fn empty() -> Self {
        Self(0)
    }

    /// Whether every scope of `other` is in `self`.
    #[must_use]
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no scope is set.
    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Parses comma-separated scope names (`read,metrics`); `None` for an unknown name or an
    /// empty list.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        let mut scopes = Self::empty();
        for name in s.split(',') {
            let (scope, _) = Self::NAMES.iter().find(|(_, n)| *n == name.trim())?;
            scopes = scopes | *scope;
        }
        (!scopes.is_empty()).then_some(scopes)
    }
}

impl BitOr for Scopes {
    type Output = Self;

    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl fmt::Display for Scopes {
    /// Comma-separated names, as stored (`admin,read`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (scope, name) in Self::NAMES {
            if self.contains(scope) {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// A token just created: its public id, and the token string to show the operator once.
/// `Debug` never shows the token.
#[derive(Clone, PartialEq, Eq)]
pub struct NewToken {
    /// The public id ([`TOKEN_ID_LEN`] hex digits).
    pub id: String,
    /// The whole token, `sn_<id>_<secret>`: print it once, store it nowhere.
    pub token: String,
}

impl fmt::Debug for NewToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewToken")
            .field("id", &self.id)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// A token as listed or verified (never its secret or hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// The public id.
    pub id: String,
    /// What it allows.
    pub scopes: Scopes,
    /// When it was created, in seconds since the Unix epoch.
    pub created_at: i64,
    /// When it stops working, in seconds since the Unix epoch; `None` for never.
    pub expires_at: Option<i64>,
    /// When it was revoked, in seconds since the Unix epoch; `None` if it was not.
    pub revoked_at: Option<i64>,
    /// The operator's label.
    pub label: String,
}

/// Why a presented token was refused. The variants are for logs and tests: the HTTP API answers
/// all of `Malformed`, `Unknown`, `Revoked` and `Expired` with one uniform 401 (SECURITY A1).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Not of the form `sn_<id>_<secret>`.
    #[error("malformed token")]
    Malformed,
    /// No token with this id, or the secret does not match.
    #[error("unknown token")]
    Unknown,
    /// The token was revoked.
    #[error("revoked token")]
    Revoked,
    /// The token expired.
    #[error("expired token")]
    Expired,
    /// The catalog could not be read (not the presenter's fault: answer 503, not 401).
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

impl From<rusqlite::Error> for TokenError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Catalog(e.into())
    }
}

/// What verifying a token needs, and nothing more: no label, no secret. The engine keeps these
/// in memory ([`Catalog::token_verifiers`]) so that a request never waits for SQLite, and checks
/// a presented token with [`TokenVerifier::check`], exactly as [`Catalog::verify_token`] does.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenVerifier {
    /// The public id ([`TOKEN_ID_LEN`] hex digits).
    pub id: String,
    /// SHA-256 of the secret bytes.
    pub hash: [u8; 32],
    /// What it allows.
    pub scopes: Scopes,
    /// When it stops working, in seconds since the Unix epoch; `None` for never.
    pub expires_at: Option<i64>,
    /// When it was revoked, in seconds since the Unix epoch; `None` if it was not.
    pub revoked_at: Option<i64>,
    /// An OAuth2 client ([`Catalog::create_client`]): its secret is good only for the
    /// client-credentials grant, never as a bearer token.
    pub client: bool,
    /// Most torrents it may add (and keep); `None` for no cap ([`Catalog::set_quota`]).
    pub quota_torrents: Option<u64>,
    /// Most payload bytes over the torrents it added; `None` for no cap.
    pub quota_bytes: Option<u64>,
}

impl fmt::Debug for TokenVerifier {
    /// Never shows the hash (it is as good as a password against an offline guess).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("id", &self.id)
            .field("scopes", &self.scopes)
            .field("expires_at", &self.expires_at)
            .field("revoked_at", &self.revoked_at)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// Checks the SHA-256 `hash` of a presented secret ([`presented_token`]) against this token
    /// at wall-clock time `now` (seconds since the Unix epoch), in constant time; then
    /// revocation, then expiry (`now >= expires_at` refuses).
    ///
    /// # Errors
    /// [`TokenError::Unknown`] when the hash differs, [`TokenError::Revoked`],
    /// [`TokenError::Expired`].
    pub fn check(&self, hash: &[u8; 32], now: i64) -> Result<Scopes, TokenError> {
        judge(hash, &self.hash, self.revoked_at, self.expires_at, now)?;
        Ok(self.scopes)
    }
}

/// Parses a presented token `sn_<id>_<secret>`: its public id and the SHA-256 of its secret
/// bytes, what [`TokenVerifier::check`] compares. The same parsing as
/// [`Catalog::verify_token`]'s, so an in-memory table and the catalog agree on every string.
///
/// # Errors
/// [`TokenError::Malformed`] unless the length, prefix, separator and every (lowercase) hex
/// digit are right.
pub fn presented_token(presented: &str) -> Result<(&str, [u8; 32]), TokenError> {
    let (id, secret) = parse_token(presented).ok_or(TokenError::Malformed)?;
    Ok((id, Sha256::digest(secret).into()))
}

/// The same work as a comparison with a stored hash, for an id that has none, so that timing
/// does not tell which ids exist.
pub fn unknown_token_delay(hash: &[u8; 32]) {
    let _ = constant_time_eq(hash, &[0u8; 32]);
}

/// The checks shared by [`Catalog::verify_token`] and [`TokenVerifier::check`], in this order:
/// the hash (constant time), revocation, expiry.
fn judge(
    hash: &[u8; 32],
    stored: &[u8],
    revoked_at: Option<i64>,
    expires_at: Option<i64>,
    now: i64,
) -> Result<(), TokenError> {
    if !constant_time_eq(hash, stored) {
        return Err(TokenError::Unknown);
    }
    if revoked_at.is_some() {
        return Err(TokenError::Revoked);
    }
    if expires_at.is_some_and(|at| now >= at) {
        return Err(TokenError::Expired);
    }
    Ok(())
}

impl Catalog {
    /// Every token with what verifying it needs ([`TokenVerifier`]), revoked and expired ones
    /// included (they are refused with their own reason). At most
    /// [`MAX_TOKENS`] rows. Reads only.
    ///
    /// # Errors
    /// [`CatalogError::Corrupt`] for an unknown scope or a hash that is not 32 bytes;
    /// [`CatalogError::Sqlite`].
    pub fn token_verifiers(&self) -> Result<Vec<TokenVerifier>, CatalogError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, hash, scopes, expires_at, revoked_at, kind, quota_torrents, quota_bytes
             FROM tokens ORDER BY id",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, Vec<u8>>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, Option<i64>>(3)?,
                row.get::<_, Option<i64>>(4)?,
                row.get::<_, String>(5)? == "client",
                row.get::<_, Option<i64>>(6)?,
                row.get::<_, Option<i64>>(7)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, hash, scopes, expires_at, revoked_at, client, qt, qb) = row?;
            out.push(TokenVerifier {
                id,
                hash: <[u8; 32]>::try_from(hash.as_slice()).map_err(|_| CatalogError::Corrupt {
                    what: "token hash is not 32 bytes",
                })?,
                scopes: Scopes::parse(&scopes).ok_or(CatalogError::Corrupt {
                    what: "unknown token scope",
                })?,
                expires_at,
                revoked_at,
                client,
                quota_torrents: qt.and_then(|v| u64::try_from(v).ok()),
                quota_bytes: qb.and_then(|v| u64::try_from(v).ok()),
            });
        }
        Ok(out)
    }

    /// Sets the quota of token or client `id`: most torrents it may add, most payload bytes
    /// over them (`None`: no cap). Checked whenever it adds a torrent
    /// ([`CatalogError::QuotaExceeded`]); torrents it already has stay.
    ///
    /// # Errors
    /// [`CatalogError::NoSuchToken`]; [`CatalogError::DiskFull`]; [`CatalogError::Sqlite`].
    pub fn set_quota(
        &mut self,
        id: &str,
        max_torrents: Option<u64>,
        max_bytes: Option<u64>,
    ) -> Result<(), CatalogError> {
        let as_sql = |v: Option<u64>| v.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
        let tx = self.write()?;
        let n = tx
            .prepare_cached(
                "UPDATE tokens SET quota_torrents = ?2, quota_bytes = ?3 WHERE id = ?1",
            )?
            .execute(params![id, as_sql(max_torrents), as_sql(max_bytes)])?;
        if n == 0 {
            return Err(CatalogError::NoSuchToken { id: id.to_owned() });
        }
        tx.commit()?;
        Ok(())
    }

    /// Creates a token with `scopes`, an optional expiry (`expires_at`, seconds since the Unix
    /// epoch) and a label, from the caller's random `secret` (drawn from
    /// `ring::rand::SystemRandom`); `now` is the wall clock in seconds since the Unix epoch.
    /// Stores the SHA-256 of `secret` only; the returned [`NewToken::token`] is the one copy.
    ///
    /// # Errors
    /// [`CatalogError::Invalid`] for no scope or a NUL in the label; [`CatalogError::TooLong`]
    /// for a label over [`MAX_TOKEN_LABEL_LEN`]; [`CatalogError::TooManyTokens`];
    /// [`CatalogError::DiskFull`]; [`CatalogError::Sqlite`].
    pub fn create_token(
        &mut self,
        scopes: Scopes,
        expires_at: Option<i64>,
        label: &str,
        secret: &[u8; TOKEN_SECRET_LEN],
        now: i64,
    ) -> Result<NewToken, CatalogError> {
        self.insert_credential("token", scopes, expires_at, label, secret, now)
    }

    /// Creates an OAuth2 client (RFC 6749 §2.3.1) allowed `scopes`, like
    /// [`Catalog::create_token`]: the returned [`NewToken::id`] is its `client_id`, and its
    /// `client_secret` is the secret in lowercase hex ([`NewToken::token`] holds
    /// `sn_<id>_<secret>`; the part after the second `_`). Only the secret's SHA-256 is stored.
    ///
    /// # Errors
    /// As [`Catalog::create_token`].
    pub fn create_client(
        &mut self,
        scopes: Scopes,
        label: &str,
        secret: &[u8; TOKEN_SECRET_LEN],
        now: i64,
    ) -> Result<NewToken, CatalogError> {
        self.insert_credential("client", scopes, None, label, secret, now)
    }

    fn insert_credential(
        &mut self,
        kind: &str,
        scopes: Scopes,
        expires_at: Option<i64>,
        label: &str,
        secret: &[u8; TOKEN_SECRET_LEN],
        now: i64,
    ) -> Result<NewToken, CatalogError> {
        if scopes.is_empty() {
            return Err(CatalogError::Invalid {
                field: "scopes",
                reason: "empty",
            });
        }
        let (id, hash) = token_digest(secret);
        self.insert_hashed(kind, scopes, expires_at, label, &id, &hash, now)?;
        let token = format!("{TOKEN_PREFIX}{id}_{}", hex(secret));
        Ok(NewToken { id, token })
    }

    /// Creates an API token from its public id and the SHA-256 of its secret
    /// ([`token_digest`]), for a token whose secret was handed out before the token may exist
    /// (a `token.create` waiting for an approval: the secret is never stored, not even then).
    ///
    /// # Errors
    /// As [`Catalog::create_token`]; [`CatalogError::Invalid`] for an id that is not
    /// [`TOKEN_ID_LEN`] lowercase hex digits.
    pub fn create_token_hashed(
        &mut self,
        id: &str,
        hash: &[u8; 32],
        scopes: Scopes,
        expires_at: Option<i64>,
        label: &str,
        now: i64,
    ) -> Result<(), CatalogError> {
        if id.len() != TOKEN_ID_LEN || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(CatalogError::Invalid {
                field: "token id",
                reason: "not 12 lowercase hex digits",
            });
        }
        self.insert_hashed("token", scopes, expires_at, label, id, hash, now)
    }

    #[allow(clippy::too_many_arguments)] // the row's columns
    fn insert_hashed(
        &mut self,
        kind: &str,
        scopes: Scopes,
        expires_at: Option<i64>,
        label: &str,
        id: &str,
        hash: &[u8; 32],
        now: i64,
    ) -> Result<(), CatalogError> {
        if scopes.is_empty() {
            return Err(CatalogError::Invalid {
                field: "scopes",
                reason: "empty",
            });
        }
        check_text("token label", label, MAX_TOKEN_LABEL_LEN)?;
        let tx = self.write()?;
        let count: i64 = tx.query_row("SELECT count(*) FROM tokens", [], |row| row.get(0))?;
        if usize::try_from(count).unwrap_or(usize::MAX) >= MAX_TOKENS {
            return Err(CatalogError::TooManyTokens { limit: MAX_TOKENS });
        }
        tx.prepare_cached(
            "INSERT INTO tokens (id, hash, scopes, created_at, expires_at, label, kind)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            id,
            hash.as_slice(),
            scopes.to_string(),
            now,
            expires_at,
            label,
            kind
        ])?;
        tx.commit()?;
        Ok(())
    }

    /// Checks a presented token at wall-clock time `now` (seconds since the Unix epoch): the
    /// SHA-256 of its secret is compared in constant time with the stored one, and an unknown
    /// id costs the same hash and comparison. A token expires at `expires_at` (`now >=
    /// expires_at` refuses it).
    ///
    /// Reads only: call it from a reader connection (a second [`Catalog::open`]) or from a cache
    /// the engine refreshes, not through the writer's queue.
    ///
    /// # Errors
    /// [`TokenError::Malformed`], [`TokenError::Unknown`], [`TokenError::Revoked`],
    /// [`TokenError::Expired`] (answer them all alike); [`TokenError::Catalog`] when the catalog
    /// cannot be read.
    pub fn verify_token(&self, presented: &str, now: i64) -> Result<TokenInfo, TokenError> {
        let (id, hash) = presented_token(presented)?;
        let row = self
            .conn
            .prepare_cached(
                "SELECT hash, scopes, created_at, expires_at, revoked_at, label
                 FROM tokens WHERE id = ?1 AND kind = 'token'",
            )?
            .query_row([id], |row| {
                Ok((
                    row.get::<_, Vec<u8>>(0)?,
                    row.get::<_, String>(1)?,
                    TokenInfo {
                        id: id.to_owned(),
                        scopes: Scopes::empty(),
                        created_at: row.get(2)?,
                        expires_at: row.get(3)?,
                        revoked_at: row.get(4)?,
                        label: row.get(5)?,
                    },
                ))
            })
            .optional()?;
        let Some((stored, scopes, mut info)) = row else {
            unknown_token_delay(&hash);
            return Err(TokenError::Unknown);
        };
        judge(&hash, &stored, info.revoked_at, info.expires_at, now)?;
        info.scopes = Scopes::parse(&scopes).ok_or(CatalogError::Corrupt {
            what: "unknown token scope",
        })?;
        Ok(info)
    }

    /// Every token, revoked and expired ones included, by creation time.
    ///
    /// # Errors
    /// [`CatalogError::Corrupt`] for an unknown scope; [`CatalogError::Sqlite`].
    pub fn list_tokens(&self) -> Result<Vec<TokenInfo>, CatalogError> {
        self.list_credentials("token")
    }

    /// Every OAuth2 client, revoked ones included, by creation time.
    ///
    /// # Errors
    /// As [`Catalog::list_tokens`].
    pub fn list_clients(&self) -> Result<Vec<TokenInfo>, CatalogError> {
        self.list_credentials("client")
    }

    fn list_credentials(&self, kind: &str) -> Result<Vec<TokenInfo>, CatalogError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, scopes, created_at, expires_at, revoked_at, label
             FROM tokens WHERE kind = ?1 ORDER BY created_at, id",
        )?;
        let rows = stmt.query_map([kind], |row| {
            Ok((
                row.get::<_, String>(1)?,
                TokenInfo {
                    id: row.get(0)?,
                    scopes: Scopes::empty(),
                    created_at: row.get(2)?,
                    expires_at: row.get(3)?,
                    revoked_at: row.get(4)?,
                    label: row.get(5)?,
                },
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (scopes, mut info) = row?;
            info.scopes = Scopes::parse(&scopes).ok_or(CatalogError::Corrupt {
                what: "unknown token scope",
            })?;
            out.push(info);
        }
        Ok(out)
    }

    /// Revokes token `id` at `now` (seconds since the Unix epoch); revoking it again keeps the
    /// first time. The row stays (for `token list` and audits) until [`Catalog::delete_token`].
    ///
    /// # Errors
    /// [`CatalogError::NoSuchToken`]; [`CatalogError::DiskFull`]; [`CatalogError::Sqlite`].
    pub fn revoke_token(&mut self, id: &str, now: i64) -> Result<(), CatalogError> {
        let tx = self.write()?;
        let n = tx
            .prepare_cached(
                "UPDATE tokens SET revoked_at = coalesce(revoked_at, ?2) WHERE id = ?1",
            )?
            .execute(params![id, now])?;
        if n == 0 {
            return Err(CatalogError::NoSuchToken { id: id.to_owned() });
        }
        tx.commit()?;
        Ok(())
    }

    /// Deletes token `id` (revoked or not): it stops working and leaves `token list`.
    ///
    /// # Errors
    /// [`CatalogError::NoSuchToken`]; [`CatalogError::DiskFull`]; [`CatalogError::Sqlite`].
    pub fn delete_token(&mut self, id: &str) -> Result<(), CatalogError> {
        let tx = self.write()?;
        let n = tx
            .prepare_cached("DELETE FROM tokens WHERE id = ?1")?
            .execute([id])?;
        if n == 0 {
            return Err(CatalogError::NoSuchToken { id: id.to_owned() });
        }
        tx.commit()?;
        Ok(())
    }
}

/// Parses client credentials (RFC 6749 §2.3.1): `client_id` ([`TOKEN_ID_LEN`] lowercase hex
/// digits) and `client_secret` (the secret in lowercase hex): the id and the SHA-256 of the
/// secret bytes, what [`TokenVerifier::check`] compares.
///
/// # Errors
/// [`TokenError::Malformed`] unless both are well formed.
pub fn presented_client<'a>(
    client_id: &'a str,
    client_secret: &str,
) -> Result<(&'a str, [u8; 32]), TokenError> {
    if client_secret.len() != 2 * TOKEN_SECRET_LEN || client_id.len() != TOKEN_ID_LEN {
        return Err(TokenError::Malformed);
    }
    let joined = format!("{TOKEN_PREFIX}{client_id}_{client_secret}");
    let (_, secret) = parse_token(&joined).ok_or(TokenError::Malformed)?;
    Ok((client_id, Sha256::digest(secret).into()))
}

/// Splits `sn_<id>_<secret>` into the id and the secret's bytes; `None` unless the length, the
/// prefix, the separator and every hex digit (lowercase) are right.
fn parse_token(s: &str) -> Option<(&str, [u8; TOKEN_SECRET_LEN])> {
    if s.len() != TOKEN_LEN {
        return None;
    }
    let rest = s.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret_hex) = rest.split_at_checked(TOKEN_ID_LEN)?;
    let secret_hex = secret_hex.strip_prefix('_')?;
    if !id.bytes().all(is_lower_hex) {
        return None;
    }
    let mut secret = [0u8; TOKEN_SECRET_LEN];
    for (out, pair) in secret.iter_mut().zip(secret_hex.as_bytes().chunks_exact(2)) {
        *out = (hex_val(pair[0])? << 4) | hex_val(pair[1])?;
    }
    Some((id, secret))
}

const fn is_lower_hex(c: u8) -> bool {
    matches!(c, b'0'..=b'9' | b'a'..=b'f')
}

const fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_through_text() {
        let s = Scopes::READ | Scopes::METRICS;
        assert_eq!(s.to_string(), "read,metrics");
        assert_eq!(Scopes::parse("read,metrics"), Some(s));
        assert_eq!(Scopes::parse("metrics, read"), Some(s));
        assert_eq!(Scopes::parse(""), None);
        assert_eq!(Scopes::parse("root"), None);
        assert!(Scopes::ADMIN.contains(Scopes::ADMIN));
        assert!(!s.contains(Scopes::ADMIN));
    }

    #[test]
    fn parse_token_rejects_every_malformation() {
        let good = format!("sn_{}_{}", "0123456789ab", "cd".repeat(32));
        let (id, secret) = parse_token(&good).unwrap();
        assert_eq!(id, "0123456789ab");
        assert_eq!(secret, [0xcd; 32]);
        for bad in [
            String::new(),
            good[..good.len() - 1].to_owned(),
            format!("{good}0"),
            good.replacen("sn_", "sx_", 1),
            good.replacen("ab_", "ab-", 1),
            good.replacen("0123456789ab", "0123456789AB", 1),
            format!("sn_{}_{}", "0123456789ab", "CD".repeat(32)),
            format!("sn_{}_{}", "0123456789ab", "zz".repeat(32)),
            format!("sn_{}_{}é", "0123456789ab", "cd".repeat(31)),
        ] {
            assert!(parse_token(&bad).is_none(), "{bad:?}");
        }
        // Every truncation of a good token, and a multi-byte character at every position.
        for i in 0..good.len() {
            assert!(parse_token(&good[..i]).is_none());
            let mut s = good.clone();
            s.replace_range(i..=i, "é");
            let _ = parse_token(&s);
        }
    }
}
