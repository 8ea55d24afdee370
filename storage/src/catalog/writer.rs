//! Batched writes: statistics coalesced in memory and flushed in one transaction, and bursts of
//! adds that share one commit (one `fsync`).
//!
//! The engine's catalog thread loops: take every command waiting in its queue (bounded by the
//! engine), run the adds of that round through [`Catalog::add_torrents`], answer each, and every
//! few seconds flush its [`StatsBatch`] with [`Catalog::add_stats`]. Statistics are the only
//! writes that are not acknowledged one by one: a crash loses at most one flush interval of them.

use std::collections::HashMap;

use rusqlite::params;

use super::torrents::insert_torrent;
use super::{Catalog, CatalogError, NewTorrent, TorrentId, WebhookEvent, to_sql_u64};
use crate::limits::MAX_ADDS_PER_TRANSACTION;

/// Statistics to add to one torrent's totals ([`Catalog::add_stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsDelta {
    /// The torrent.
    pub id: TorrentId,
    /// Bytes of piece data sent since the last flush.
    pub uploaded_bytes: u64,
    /// Peers served (sent at least one block) since the last flush.
    pub peers_served: u64,
    /// Last time a peer was served, in seconds since the Unix epoch; the stored value only moves
    /// forward.
    pub last_activity: i64,
}

/// Statistics coalesced per torrent between two flushes: one entry per torrent that was active,
/// so it is bounded by the number of torrents the engine seeds.
#[derive(Debug, Default, Clone)]
pub struct StatsBatch {
    pending: HashMap<TorrentId, StatsDelta>,
}

impl StatsBatch {
    /// An empty batch.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds activity of torrent `id`: `uploaded_bytes` more bytes sent, `peers_served` more
    /// peers, at `now` (seconds since the Unix epoch). Counters saturate.
    pub fn record(&mut self, id: TorrentId, uploaded_bytes: u64, peers_served: u64, now: i64) {
        let entry = self.pending.entry(id).or_insert(StatsDelta {
            id,
            uploaded_bytes: 0,
            peers_served: 0,
            last_activity: now,
        });
        entry.uploaded_bytes = entry.uploaded_bytes.saturating_add(uploaded_bytes);
        entry.peers_served = entry.peers_served.saturating_add(peers_served);
        entry.last_activity = entry.last_activity.max(now);
    }

    /// Whether nothing is pending.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Number of torrents with pending statistics.
    #[must_use]
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Takes the pending deltas (ordered by torrent id), leaving the batch empty. Hand them to
    /// [`Catalog::add_stats`]; on an error, [`StatsBatch::restore`] puts them back.
    pub fn take(&mut self) -> Vec<StatsDelta> {
        let mut deltas: Vec<StatsDelta> = self.pending.drain().map(|(_, d)| d).collect();
        deltas.sort_by_key(|d| d.id);
        deltas
    }

    /// Puts deltas back after a failed flush, merged with what was recorded since.
    pub fn restore(&mut self, deltas: Vec<StatsDelta>) {
        for d in deltas {
            self.record(d.id, d.uploaded_bytes, d.peers_served, d.last_activity);
        }
    }
}

impl Catalog {
    /// Adds every delta to its torrent's totals, all in one transaction. Deltas of torrents
    /// removed meanwhile are skipped. Counters saturate at `i64::MAX`; `last_activity` only
    /// moves forward.
    ///
    /// # Errors
    /// [`CatalogError::DiskFull`] (nothing is applied: restore the batch and retry later);
    /// [`CatalogError::Sqlite`].
    pub fn add_stats(&mut self, deltas: &[StatsDelta]) -> Result<(), CatalogError> {
        if deltas.is_empty() {
            return Ok(());
        }
        let tx = self.write()?;
        {
            // Integer overflow in SQLite turns a sum into a REAL: saturate explicitly.
            let mut stmt = tx.prepare_cached(
                "UPDATE stats SET
                     uploaded_bytes = CASE WHEN uploaded_bytes > 9223372036854775807 - ?2
                                           THEN 9223372036854775807
                                           ELSE uploaded_bytes + ?2 END,
                     peers_served = CASE WHEN peers_served > 9223372036854775807 - ?3
                                         THEN 9223372036854775807
                                         ELSE peers_served + ?3 END,
                     last_activity = max(coalesce(last_activity, ?4), ?4)
                 WHERE torrent_id = ?1",
            )?;
            for d in deltas {
                stmt.execute(params![
                    d.id.0,
                    to_sql_u64(d.uploaded_bytes),
                    to_sql_u64(d.peers_served),
                    d.last_activity
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Adds several torrents, sharing commits: one transaction per
    /// [`MAX_ADDS_PER_TRANSACTION`] torrents, each torrent in a savepoint of its own so a
    /// refused one (a duplicate, a bad field) does not undo the others. Returns one result per
    /// torrent, in order; every `Ok` is durable when this returns (acknowledge them then).
    ///
    /// # Errors
    /// The outer error ([`CatalogError::DiskFull`], [`CatalogError::Sqlite`]) means a commit
    /// failed: the torrents of earlier transactions are in, none of the failed transaction's
    /// are, and the caller cannot tell which without looking them up, so it answers every add
    /// of the call with the error. Per-torrent errors are as [`Catalog::add_torrent`]'s.
    pub fn add_torrents(
        &mut self,
        torrents: &[NewTorrent],
    ) -> Result<Vec<Result<TorrentId, CatalogError>>, CatalogError> {
        self.add_torrents_reported(torrents, &[], 0)
    }

    /// [`Catalog::add_torrents`], queueing `events[i]` (the webhook events reporting the
    /// `i`-th add: `torrent.added`, `upload.completed`) in the outbox in that add's own
    /// savepoint: an acknowledged add always has its events queued, a refused one never
    /// (issue 13, "an event is committed to the outbox in the same transaction as the action
    /// it reports"). `events` may be shorter than `torrents`; `now_ms` is when they are due.
    ///
    /// # Errors
    /// As [`Catalog::add_torrents`]; an event out of bounds refuses its add
    /// ([`CatalogError::TooLong`]).
    pub fn add_torrents_reported(
        &mut self,
        torrents: &[NewTorrent],
        events: &[Vec<WebhookEvent>],
        now_ms: i64,
    ) -> Result<Vec<Result<TorrentId, CatalogError>>, CatalogError> {
        let mut results = Vec::with_capacity(torrents.len());
        let mut index = 0;
        for chunk in torrents.chunks(MAX_ADDS_PER_TRANSACTION) {
            let mut tx = self.write()?;
            for torrent in chunk {
                let reports = events.get(index).map_or(&[][..], Vec::as_slice);
                index += 1;
                if let Err(e) = torrent.validate() {
                    results.push(Err(e));
                    continue;
                }
                let sp = tx.savepoint()?;
                let inserted = insert_torrent(&sp, torrent)
                    .and_then(|id| super::outbox::enqueue_in(&sp, reports, now_ms).map(|_| id));
                match inserted {
                    Ok(id) => {
                        sp.commit()?;
                        results.push(Ok(id));
                    }
                    Err(e @ (CatalogError::Sqlite(_) | CatalogError::DiskFull)) => {
                        // Not the torrent's fault, and SQLite may have rolled the whole
                        // transaction back already: give up on it.
                        return Err(e);
                    }
                    Err(e) => {
                        drop(sp); // rolls back this torrent only
                        results.push(Err(e));
                    }
                }
            }
            tx.commit()?;
        }
        Ok(results)
    }
}
