//! The bearer tokens the event loop checks, in memory: loaded from the catalog at start and
//! reloaded (by the catalog worker, off the loop) on SIGHUP and whenever the catalog changes.
//! A request never waits for SQLite.
//!
//! Parsing and the checks themselves are the catalog's
//! ([`presented_token`], [`TokenVerifier::check`]), so this table and
//! `Catalog::verify_token` agree on every string (SECURITY A8: constant-time comparison of
//! SHA-256 hashes; an unknown id costs the same comparison).

use std::collections::HashMap;

use seednode_storage::catalog::{
    Catalog, CatalogError, Scopes, TokenError, TokenVerifier, presented_client, presented_token,
    unknown_token_delay,
};

use super::oauth::{ACCESS_TOKEN_PREFIX, HMAC_KEY_SETTING, Signer};

/// A token that passed [`TokenTable::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verified<'a> {
    /// Its public id (safe to log): the token's, or for an OAuth2 access token its client's.
    pub(crate) id: &'a str,
    /// What it allows.
    pub(crate) scopes: Scopes,
}

/// Every token and OAuth2 client of the catalog as its verifier, by public id, and the key of
/// the access tokens the node issues. Bounded by the catalog's `MAX_TOKENS` (1 000 rows).
#[derive(Debug, Default, Clone)]
pub(crate) struct TokenTable {
    by_id: HashMap<String, TokenVerifier>,
    signer: Option<Signer>,
}

impl TokenTable {
    /// A table of `verifiers`, without an access-token key.
    pub(crate) fn new(verifiers: Vec<TokenVerifier>) -> Self {
        Self {
            by_id: verifiers.into_iter().map(|v| (v.id.clone(), v)).collect(),
            signer: None,
        }
    }

    /// Reads every token and client of `catalog`, and the access-token key
    /// ([`HMAC_KEY_SETTING`], when set). Blocking: call it off the event loop.
    ///
    /// # Errors
    /// The catalog's.
    pub(crate) fn load(catalog: &Catalog) -> Result<Self, CatalogError> {
        let mut table = catalog.token_verifiers().map(Self::new)?;
        table.signer = catalog
            .get_setting(HMAC_KEY_SETTING)?
            .as_deref()
            .and_then(Signer::from_hex);
        Ok(table)
    }

    /// The quota of token or client `id`: (most torrents, most bytes), `None` for no cap.
    pub(crate) fn quota(&self, id: &str) -> (Option<u64>, Option<u64>) {
        self.by_id
            .get(id)
            .map_or((None, None), |v| (v.quota_torrents, v.quota_bytes))
    }

    /// The access-token signer, when the catalog has a key.
    pub(crate) fn signer(&self) -> Option<&Signer> {
        self.signer.as_ref()
    }

    /// Checks OAuth2 client credentials (RFC 6749 §2.3.1) at `now_unix`: the client's id and
    /// scopes.
    ///
    /// # Errors
    /// [`TokenError::Malformed`], [`TokenError::Unknown`] (no such client, a bearer token's id,
    /// or a wrong secret), [`TokenError::Revoked`].
    pub(crate) fn verify_client(
        &self,
        client_id: &str,
        client_secret: &str,
        now_unix: i64,
    ) -> Result<Verified<'_>, TokenError> {
        let (id, hash) = presented_client(client_id, client_secret)?;
        let Some(v) = self.by_id.get(id).filter(|v| v.client) else {
            unknown_token_delay(&hash);
            return Err(TokenError::Unknown);
        };
        let scopes = v.check(&hash, now_unix)?;
        Ok(Verified { id: &v.id, scopes })
    }

    /// Number of tokens (revoked and expired ones included).
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Checks a presented bearer token at wall-clock time `now_unix` (seconds since the Unix
    /// epoch).
    ///
    /// # Errors
    /// [`TokenError::Malformed`], [`TokenError::Unknown`], [`TokenError::Revoked`],
    /// [`TokenError::Expired`]: the HTTP layer answers them all with one 401.
    pub(crate) fn verify(
        &self,
        presented: &str,
        now_unix: i64,
    ) -> Result<Verified<'_>, TokenError> {
        if presented.starts_with(ACCESS_TOKEN_PREFIX) {
            let signer = self.signer.as_ref().ok_or(TokenError::Unknown)?;
            let (client_id, scopes, _) = signer.verify(presented, now_unix)?;
            let client = self
                .by_id
                .get(client_id)
                .filter(|v| v.client)
                .ok_or(TokenError::Unknown)?;
            if client.revoked_at.is_some() {
                return Err(TokenError::Revoked);
            }
            // A client whose scopes were cut since keeps only what it still has.
            let kept = Scopes::parse(
                &scopes
                    .to_string()
                    .split(',')
                    .filter(|s| Scopes::parse(s).is_some_and(|one| client.scopes.contains(one)))
                    .collect::<Vec<_>>()
                    .join(","),
            )
            .ok_or(TokenError::Revoked)?;
            return Ok(Verified {
                id: &client.id,
                scopes: kept,
            });
        }
        let (id, hash) = presented_token(presented)?;
        let Some(v) = self.by_id.get(id).filter(|v| !v.client) else {
            unknown_token_delay(&hash);
            return Err(TokenError::Unknown);
        };
        let scopes = v.check(&hash, now_unix)?;
        Ok(Verified { id: &v.id, scopes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table_with(now: i64) -> (TokenTable, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = Catalog::open(&dir.path().join("c.sqlite")).unwrap();
        let mut tokens = Vec::new();
        for (i, (scopes, expires)) in [
            (Scopes::ADMIN, None),
            (Scopes::READ, Some(now + 5)),
            (Scopes::METRICS, None),
        ]
        .into_iter()
        .enumerate()
        {
            let secret = [u8::try_from(i).unwrap() + 1; 32];
            tokens.push(
                catalog
                    .create_token(scopes, expires, "", &secret, now)
                    .unwrap()
                    .token,
            );
        }
        let revoked = tokens[2].split('_').nth(1).unwrap().to_owned();
        catalog.revoke_token(&revoked, now).unwrap();
        (TokenTable::load(&catalog).unwrap(), tokens)
    }

    #[test]
    fn verifies_like_the_catalog() {
        let now = 1_700_000_000;
        let (table, tokens) = table_with(now);
        assert_eq!(table.len(), 3);
        assert_eq!(table.verify(&tokens[0], now).unwrap().scopes, Scopes::ADMIN);
        assert_eq!(
            table.verify(&tokens[1], now + 4).unwrap().scopes,
            Scopes::READ
        );
        assert!(matches!(
            table.verify(&tokens[1], now + 5),
            Err(TokenError::Expired)
        ));
        assert!(matches!(
            table.verify(&tokens[2], now),
            Err(TokenError::Revoked)
        ));
        let mut forged = tokens[0].clone();
        forged.pop();
        forged.push(if tokens[0].ends_with('0') { '1' } else { '0' });
        assert!(matches!(
            table.verify(&forged, now),
            Err(TokenError::Unknown)
        ));
        for bad in ["", "sn_", "Bearer x", &tokens[0][1..]] {
            assert!(matches!(table.verify(bad, now), Err(TokenError::Malformed)));
        }
    }

    #[test]
    fn clients_get_access_tokens_that_die_with_them() {
        let now = 1_700_000_000;
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = Catalog::open(&dir.path().join("c.sqlite")).unwrap();
        catalog
            .set_setting(
                HMAC_KEY_SETTING,
                &super::super::oauth::new_key_hex().unwrap(),
            )
            .unwrap();
        let client = catalog
            .create_client(Scopes::UPLOAD | Scopes::READ, "ci", &[9; 32], now)
            .unwrap();
        let secret = client.token.rsplit('_').next().unwrap().to_owned();
        let table = TokenTable::load(&catalog).unwrap();
        // The client secret is no bearer token, and a bearer token no client.
        assert!(matches!(
            table.verify(&client.token, now),
            Err(TokenError::Unknown)
        ));
        let v = table.verify_client(&client.id, &secret, now).unwrap();
        assert_eq!(v.scopes, Scopes::UPLOAD | Scopes::READ);
        assert!(
            table
                .verify_client(&client.id, &"0".repeat(64), now)
                .is_err()
        );
        let access = table
            .signer()
            .unwrap()
            .issue(&client.id, Scopes::UPLOAD, now + 60);
        let v = table.verify(&access, now).unwrap();
        assert_eq!((v.id, v.scopes), (client.id.as_str(), Scopes::UPLOAD));
        assert!(matches!(
            table.verify(&access, now + 60),
            Err(TokenError::Expired)
        ));
        catalog.revoke_token(&client.id, now).unwrap();
        let table = TokenTable::load(&catalog).unwrap();
        assert!(matches!(
            table.verify(&access, now),
            Err(TokenError::Revoked)
        ));
        assert!(matches!(
            table.verify_client(&client.id, &secret, now),
            Err(TokenError::Revoked)
        ));
    }
}
