//! The durable queue of signed Nostr events (issue 14; schema V7).
//!
//! The engine's Nostr publisher builds and signs the events of a torrent (NIP-94 kind 1063 per
//! file, NIP-35 kind 2003, NIP-09 kind 5 on removal) and queues one row per event and relay
//! ([`Catalog::enqueue_nostr`], one transaction for the batch). On its own connection it asks
//! for the rows that are due ([`Catalog::due_nostr`]), sends each, and records the outcome
//! ([`Catalog::mark_nostr_published`], [`Catalog::mark_nostr_retry`],
//! [`Catalog::mark_nostr_failed`]). Everything is committed before a method returns, so a
//! restart resumes where the last commit left off: a row being sent when the node died is
//! still `pending` and is sent again (a relay answers `duplicate:` and the row is published).
//!
//! Rows of kinds 1063 and 2003 are kept after they finish: they record which events announced
//! a torrent ([`Catalog::nostr_events_of`]), which its deletion names.
//!
//! **Bounds.** At most [`MAX_PENDING_NOSTR_EVENTS`] pending rows: a batch that would pass it
//! is refused whole ([`Catalog::enqueue_nostr`] returns `false`; the caller logs and counts).
//! An event's JSON is at most [`MAX_NOSTR_EVENT_LEN`] bytes, an error text
//! [`MAX_NOSTR_ERROR_LEN`].

use rusqlite::{OptionalExtension as _, params};

use super::{Catalog, CatalogError};

/// Most pending rows (events × relays) at once: a day of uploads at one a minute, announced
/// on 5 relays with a few files each. Past it new batches are refused, not the old ones
/// evicted (an announcement already queued keeps its place).
pub const MAX_PENDING_NOSTR_EVENTS: usize = 10_000;

/// Longest event JSON stored, bytes (the schema's CHECK): a kind 2003 of a torrent with
/// `MAX_NOSTR_FILE_TAGS` files stays far below it; many relays refuse events past 64-256 KiB.
pub const MAX_NOSTR_EVENT_LEN: usize = 256 * 1024;

/// Longest error text kept per row, bytes (longer ones are cut at a character boundary).
pub const MAX_NOSTR_ERROR_LEN: usize = 512;

/// One signed event to send to one relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNostrEvent {
    /// Hex of the torrent's swarm info-hash (40 characters).
    pub info_hash: String,
    /// The relay's URL (`ws://` or `wss://`).
    pub relay: String,
    /// The event id (64 hex characters, NIP-01).
    pub event_id: String,
    /// The event kind (NIP-01).
    pub kind: u16,
    /// The signed event as JSON.
    pub event: String,
}

/// A queued row, as [`Catalog::due_nostr`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NostrRow {
    /// The row id.
    pub id: i64,
    /// Hex of the torrent's swarm info-hash.
    pub info_hash: String,
    /// The relay's URL.
    pub relay: String,
    /// The event id.
    pub event_id: String,
    /// The event kind.
    pub kind: u16,
    /// The signed event JSON.
    pub event: String,
    /// When it was queued, seconds since the Unix epoch.
    pub created_at: i64,
    /// Attempts made so far.
    pub attempts: u32,
    /// `pending`, `published`, `failed` or `cancelled`.
    pub state: String,
    /// The last attempt's error.
    pub last_error: Option<String>,
}

const SELECT_NOSTR_ROW: &str = "SELECT id, info_hash, relay, event_id, kind, event, created_at, \
     attempts, state, last_error FROM nostr_outbox";

fn nostr_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<NostrRow> {
    let kind: i64 = r.get(4)?;
    let attempts: i64 = r.get(7)?;
    Ok(NostrRow {
        id: r.get(0)?,
        info_hash: r.get(1)?,
        relay: r.get(2)?,
        event_id: r.get(3)?,
        kind: u16::try_from(kind).unwrap_or(u16::MAX),
        event: r.get(5)?,
        created_at: r.get(6)?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        state: r.get(8)?,
        last_error: r.get(9)?,
    })
}

impl Catalog {
    /// Queues `events` (all or none, one transaction), due at once (`now_ms`, milliseconds
    /// since the Unix epoch). An event already queued for the same relay is kept as it is.
    /// Returns `false`, queuing nothing, when the batch would pass
    /// [`MAX_PENDING_NOSTR_EVENTS`].
    ///
    /// # Errors
    /// [`CatalogError::TooLong`] for an event past [`MAX_NOSTR_EVENT_LEN`];
    /// [`CatalogError::DiskFull`]; [`CatalogError::Sqlite`].
    pub fn enqueue_nostr(
        &mut self,
        events: &[NewNostrEvent],
        now_ms: i64,
    ) -> Result<bool, CatalogError> {
        for e in events {
            if e.event.len() > MAX_NOSTR_EVENT_LEN {
                return Err(CatalogError::TooLong {
                    field: "nostr event",
                    len: e.event.len(),
                    limit: MAX_NOSTR_EVENT_LEN,
                });
            }
        }
        let tx = self.write()?;
        let pending: i64 = tx.query_row(
            "SELECT count(*) FROM nostr_outbox WHERE state = 'pending'",
            [],
            |r| r.get(0),
        )?;
        let pending = usize::try_from(pending).unwrap_or(usize::MAX);
        if pending.saturating_add(events.len()) > MAX_PENDING_NOSTR_EVENTS {
            return Ok(false);
        }
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR IGNORE INTO nostr_outbox
                     (info_hash, relay, event_id, kind, event, created_at, next_attempt_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for e in events {
                stmt.execute(params![
                    e.info_hash,
                    e.relay,
                    e.event_id,
                    e.kind,
                    e.event,
                    now_ms.div_euclid(1000),
                    now_ms
                ])?;
            }
        }
        tx.commit()?;
        Ok(true)
    }

    /// The pending rows due at `now_ms`, at most `limit`, earliest first (then in queue
    /// order).
    ///
    /// # Errors
    /// [`CatalogError::Sqlite`].
    pub fn due_nostr(&self, now_ms: i64, limit: usize) -> Result<Vec<NostrRow>, CatalogError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare_cached(&format!(
            "{SELECT_NOSTR_ROW} WHERE state = 'pending' AND next_attempt_ms <= ?1
             ORDER BY next_attempt_ms, id LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![now_ms, limit], nostr_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// When the next pending row is due (milliseconds since the Unix epoch); `None` when
    /// nothing is pending.
    ///
    /// # Errors
    /// [`CatalogError::Sqlite`].
    pub fn next_nostr_due_ms(&self) -> Result<Option<i64>, CatalogError> {
        Ok(self.conn.query_row(
            "SELECT min(next_attempt_ms) FROM nostr_outbox WHERE state = 'pending'",
            [],
            |r| r.get(0),
        )?)
    }

    /// Every row of the torrent `info_hash` (hex), in queue order (for tests and tools).
    ///
    /// # Errors
    /// [`CatalogError::Sqlite`].
    pub fn nostr_rows_of(&self, info_hash: &str) -> Result<Vec<NostrRow>, CatalogError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{SELECT_NOSTR_ROW} WHERE info_hash = ?1 ORDER BY id"
        ))?;
        let rows = stmt.query_map([info_hash], nostr_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The distinct ids and kinds of the events that announced torrent `info_hash` (hex):
    /// every kind but 5 (deletions), whatever their state, in queue order.
    ///
    /// # Errors
    /// [`CatalogError::Sqlite`].
    pub fn nostr_events_of(&self, info_hash: &str) -> Result<Vec<(String, u16)>, CatalogError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT event_id, kind FROM nostr_outbox WHERE info_hash = ?1 AND kind <> 5
             GROUP BY event_id ORDER BY min(id)",
        )?;
        let rows = stmt.query_map([info_hash], |r| {
            let kind: i64 = r.get(1)?;
            Ok((r.get(0)?, u16::try_from(kind).unwrap_or(u16::MAX)))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Whether any event was ever queued for torrent `info_hash` (hex).
    ///
    /// # Errors
    /// [`CatalogError::Sqlite`].
    pub fn nostr_announced(&self, info_hash: &str) -> Result<bool, CatalogError> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM nostr_outbox WHERE info_hash = ?1 LIMIT 1")?
            .query_row([info_hash], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Cancels the pending announcements of torrent `info_hash` (its deletion is queued next);
    /// returns how many were cancelled.
    ///
    /// # Errors
    /// [`CatalogError::DiskFull`]; [`CatalogError::Sqlite`].
    pub fn cancel_nostr_pending(
        &mut self,
        info_hash: &str,
        now: i64,
    ) -> Result<usize, CatalogError> {
        let tx = self.write()?;
        let n = tx
            .prepare_cached(
                "UPDATE nostr_outbox SET state = 'cancelled', finished_at = ?2
                 WHERE info_hash = ?1 AND state = 'pending' AND kind <> 5",
            )?
            .execute(params![info_hash, now])?;
        tx.commit()?;
        Ok(n)
    }

    /// Records that row `id` was accepted by its relay (one more attempt, state `published`,
    /// at `now` seconds since the epoch); returns whether the row was pending.
    ///
    /// # Errors
    /// [`CatalogError::DiskFull`]; [`CatalogError::Sqlite`].
    pub fn mark_nostr_published(&mut self, id: i64, now: i64) -> Result<bool, CatalogError> {
        self.finish_nostr(id, "published", now, None)
    }

    /// Records that row `id` was given up on (state `failed`, `error` kept, cut to
    /// [`MAX_NOSTR_ERROR_LEN`] bytes); returns whether the row was pending.
    ///
    /// # Errors
    /// [`CatalogError::DiskFull`]; [`CatalogError::Sqlite`].
    pub fn mark_nostr_failed(
        &mut self,
        id: i64,
        now: i64,
        error: &str,
    ) -> Result<bool, CatalogError> {
        self.finish_nostr(id, "failed", now, Some(error))
    }

    /// Records a failed attempt of row `id`, to be retried at `next_attempt_ms`; returns
    /// whether the row was pending.
    ///
    /// # Errors
    /// [`CatalogError::DiskFull`]; [`CatalogError::Sqlite`].
    pub fn mark_nostr_retry(
        &mut self,
        id: i64,
        next_attempt_ms: i64,
        error: &str,
    ) -> Result<bool, CatalogError> {
        let tx = self.write()?;
        let n = tx
            .prepare_cached(
                "UPDATE nostr_outbox
                 SET attempts = attempts + 1, next_attempt_ms = ?2, last_error = ?3
                 WHERE id = ?1 AND state = 'pending'",
            )?
            .execute(params![
                id,
                next_attempt_ms,
                cut(error, MAX_NOSTR_ERROR_LEN)
            ])?;
        tx.commit()?;
        Ok(n > 0)
    }

    fn finish_nostr(
        &mut self,
        id: i64,
        state: &str,
        now: i64,
        error: Option<&str>,
    ) -> Result<bool, CatalogError> {
        let tx = self.write()?;
        let n = tx
            .prepare_cached(
                "UPDATE nostr_outbox
                 SET attempts = attempts + 1, state = ?2, finished_at = ?3,
                     last_error = coalesce(?4, last_error)
                 WHERE id = ?1 AND state = 'pending'",
            )?
            .execute(params![
                id,
                state,
                now,
                error.map(|e| cut(e, MAX_NOSTR_ERROR_LEN))
            ])?;
        tx.commit()?;
        Ok(n > 0)
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

    fn ev(ih: char, relay: &str, id: char, kind: u16) -> NewNostrEvent {
        NewNostrEvent {
            info_hash: ih.to_string().repeat(40),
            relay: relay.into(),
            event_id: id.to_string().repeat(64),
            kind,
            event: "{}".into(),
        }
    }

    #[test]
    fn queue_survives_reopen_and_records_announcements() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.db");
        let mut c = Catalog::open(&path).unwrap();
        let batch = [
            ev('a', "ws://r1", '1', 1063),
            ev('a', "ws://r1", '2', 2003),
            ev('a', "ws://r2", '2', 2003),
        ];
        assert!(c.enqueue_nostr(&batch, 5_000).unwrap());
        assert!(
            c.enqueue_nostr(&batch, 5_000).unwrap(),
            "re-queue is a no-op"
        );
        drop(c);
        let mut c = Catalog::open(&path).unwrap();
        assert!(c.due_nostr(4_999, 10).unwrap().is_empty());
        let due = c.due_nostr(5_000, 10).unwrap();
        assert_eq!(due.len(), 3);
        assert!(c.mark_nostr_retry(due[0].id, 9_000, "refused").unwrap());
        assert_eq!(c.next_nostr_due_ms().unwrap(), Some(5_000));
        assert!(c.mark_nostr_published(due[1].id, 6).unwrap());
        assert!(!c.mark_nostr_published(due[1].id, 6).unwrap());
        assert!(
            c.mark_nostr_failed(due[2].id, 6, &"x".repeat(2000))
                .unwrap()
        );
        let rows = c.nostr_rows_of(&"a".repeat(40)).unwrap();
        assert_eq!(rows[0].attempts, 1);
        assert_eq!(
            rows[2].last_error.as_ref().unwrap().len(),
            MAX_NOSTR_ERROR_LEN
        );
        let ids = c.nostr_events_of(&"a".repeat(40)).unwrap();
        assert_eq!(ids, [("1".repeat(64), 1063), ("2".repeat(64), 2003)]);
        assert_eq!(c.cancel_nostr_pending(&"a".repeat(40), 7).unwrap(), 1);
        assert_eq!(c.next_nostr_due_ms().unwrap(), None);
        assert!(c.nostr_announced(&"a".repeat(40)).unwrap());
        assert!(!c.nostr_announced(&"b".repeat(40)).unwrap());
    }

    #[test]
    fn refuses_a_batch_past_the_pending_bound() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(&dir.path().join("catalog.db")).unwrap();
        let batch: Vec<_> = (0..=MAX_PENDING_NOSTR_EVENTS)
            .map(|i| NewNostrEvent {
                info_hash: "c".repeat(40),
                relay: "ws://r".into(),
                event_id: format!("{i:064x}"),
                kind: 1063,
                event: "{}".into(),
            })
            .collect();
        assert!(!c.enqueue_nostr(&batch, 0).unwrap());
        assert!(c.due_nostr(0, 1).unwrap().is_empty());
        assert!(c.enqueue_nostr(&batch[1..], 0).unwrap());
        let mut big = ev('d', "ws://r", 'e', 1);
        big.event = "x".repeat(MAX_NOSTR_EVENT_LEN + 1);
        assert!(c.enqueue_nostr(&[big], 0).is_err());
    }
}
