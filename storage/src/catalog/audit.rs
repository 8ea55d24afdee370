//! The audit log: one row per event of the node's event bus that an operator may need to
//! account for later (authentications, uploads, torrents added and removed, bans). Written in
//! batches by the catalog worker, pruned oldest first past [`MAX_AUDIT_ROWS`], read by
//! `seednode audit` and `GET /api/v1/audit`.

use rusqlite::params;

use super::{Catalog, CatalogError};

/// Rows kept, at most: older ones are deleted when a batch is appended (about 300 bytes each,
/// so the log stays under ~300 MiB on the slowest SD card; an hour of a 5-per-second lockout
/// flood is 18,000 rows).
pub const MAX_AUDIT_ROWS: u64 = 1_000_000;

/// Longest `details` JSON stored, bytes (longer ones are replaced by a note saying so).
pub const MAX_AUDIT_DETAILS_LEN: usize = 4096;

/// Most rows one [`Catalog::audit`] query returns.
pub const MAX_AUDIT_QUERY_ROWS: usize = 10_000;

/// One audit row, as written and as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Its row id (0 before it is written).
    pub id: i64,
    /// When, in seconds since the Unix epoch.
    pub at: i64,
    /// The event's kind, e.g. `auth.token.failed`, `torrent.removed` (at most 64 bytes).
    pub kind: String,
    /// Who: a token or client id, never a secret (at most 128 bytes).
    pub actor: Option<String>,
    /// The source IP address, when the event came from the network.
    pub source: Option<String>,
    /// A JSON object with the event's details (at most [`MAX_AUDIT_DETAILS_LEN`] bytes).
    pub details: String,
}

impl Catalog {
    /// Appends `records` in one transaction, then prunes the oldest rows past
    /// [`MAX_AUDIT_ROWS`]. Over-long fields are cut to fit (never refused: an audit row is
    /// better cut than lost).
    ///
    /// # Errors
    /// [`CatalogError::DiskFull`]; [`CatalogError::Sqlite`].
    pub fn append_audit(&mut self, records: &[AuditRecord]) -> Result<(), CatalogError> {
        if records.is_empty() {
            return Ok(());
        }
        let tx = self.write()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO audit (at, kind, actor, source, details) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for r in records {
                let details = if r.details.len() > MAX_AUDIT_DETAILS_LEN {
                    "{\"truncated\":true}"
                } else {
                    r.details.as_str()
                };
                insert.execute(params![
                    r.at,
                    cut(&r.kind, 64),
                    r.actor.as_deref().map(|a| cut(a, 128)),
                    r.source.as_deref().map(|s| cut(s, 64)),
                    details
                ])?;
            }
            tx.prepare_cached("DELETE FROM audit WHERE id <= (SELECT max(id) FROM audit) - ?1")?
                .execute([i64::try_from(MAX_AUDIT_ROWS).unwrap_or(i64::MAX)])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Audit rows at or after `since` (seconds since the epoch), of `kind` when given (a kind,
    /// or a prefix ending in `.` such as `auth.`), oldest first, at most `limit` (itself at
    /// most [`MAX_AUDIT_QUERY_ROWS`]): the newest ones when more match.
    ///
    /// # Errors
    /// [`CatalogError::Sqlite`].
    pub fn audit(
        &self,
        since: i64,
        kind: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, CatalogError> {
        let limit = i64::try_from(limit.min(MAX_AUDIT_QUERY_ROWS)).unwrap_or(0);
        let (exact, prefix) = match kind {
            Some(k) if k.ends_with('.') => (None, Some(format!("{}%", k.replace('%', "")))),
            Some(k) => (Some(k.to_owned()), None),
            None => (None, None),
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, at, kind, actor, source, details FROM (
                 SELECT * FROM audit
                 WHERE at >= ?1 AND (?2 IS NULL OR kind = ?2) AND (?3 IS NULL OR kind LIKE ?3)
                 ORDER BY id DESC LIMIT ?4
             ) ORDER BY id",
        )?;
        let rows = stmt.query_map(params![since, exact, prefix, limit], |row| {
            Ok(AuditRecord {
                id: row.get(0)?,
                at: row.get(1)?,
                kind: row.get(2)?,
                actor: row.get(3)?,
                source: row.get(4)?,
                details: row.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(at: i64, kind: &str) -> AuditRecord {
        AuditRecord {
            id: 0,
            at,
            kind: kind.into(),
            actor: Some("tok_123".into()),
            source: Some("192.0.2.1".into()),
            details: "{\"reason\":\"unknown token\"}".into(),
        }
    }

    #[test]
    fn appended_rows_read_back_filtered_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(&dir.path().join("c.sqlite")).unwrap();
        c.append_audit(&[
            rec(10, "auth.token.failed"),
            rec(20, "auth.token.success"),
            rec(30, "torrent.removed"),
        ])
        .unwrap();
        let all = c.audit(0, None, 100).unwrap();
        assert_eq!(
            all.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>(),
            ["auth.token.failed", "auth.token.success", "torrent.removed"]
        );
        assert_eq!(all[0].actor.as_deref(), Some("tok_123"));
        assert_eq!(c.audit(15, None, 100).unwrap().len(), 2);
        assert_eq!(c.audit(0, Some("auth."), 100).unwrap().len(), 2);
        assert_eq!(c.audit(0, Some("torrent.removed"), 100).unwrap().len(), 1);
        // The newest `limit`, oldest first.
        let last = c.audit(0, None, 1).unwrap();
        assert_eq!(last[0].kind, "torrent.removed");
        // A `%` in a prefix is not a wildcard.
        assert!(c.audit(0, Some("%."), 100).unwrap().is_empty());
    }

    #[test]
    fn over_long_fields_are_cut_not_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(&dir.path().join("c.sqlite")).unwrap();
        let mut r = rec(1, "x");
        r.actor = Some("é".repeat(200));
        r.details = format!("{{\"a\":\"{}\"}}", "b".repeat(10_000));
        c.append_audit(&[r]).unwrap();
        let back = &c.audit(0, None, 10).unwrap()[0];
        assert!(back.actor.as_ref().unwrap().len() <= 128);
        assert_eq!(back.details, "{\"truncated\":true}");
    }
}
