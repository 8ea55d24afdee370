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
    Catalog, CatalogError, Scopes, TokenError, TokenVerifier, presented_token, unknown_token_delay,
};

/// A token that passed [`TokenTable::verify`].
#[allow(
    dead_code,
    reason = "the id is for the front door's audit log (issue 11)"
)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verified<'a> {
    /// Its public id (safe to log).
    pub(crate) id: &'a str,
    /// What it allows.
    pub(crate) scopes: Scopes,
}

/// Every token of the catalog as its verifier, by public id. Bounded by the catalog's
/// `MAX_TOKENS` (1 000 rows).
#[derive(Debug, Default, Clone)]
pub(crate) struct TokenTable {
    by_id: HashMap<String, TokenVerifier>,
}

impl TokenTable {
    /// A table of `verifiers`.
    pub(crate) fn new(verifiers: Vec<TokenVerifier>) -> Self {
        Self {
            by_id: verifiers.into_iter().map(|v| (v.id.clone(), v)).collect(),
        }
    }

    /// Reads every token of `catalog`. Blocking: call it off the event loop.
    ///
    /// # Errors
    /// The catalog's.
    pub(crate) fn load(catalog: &Catalog) -> Result<Self, CatalogError> {
        catalog.token_verifiers().map(Self::new)
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
        let (id, hash) = presented_token(presented)?;
        let Some(v) = self.by_id.get(id) else {
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
}
