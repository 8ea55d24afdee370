//! Webhook endpoints and their durable outbox (issue 13; schema V5).
//!
//! An event worth telling an operator about becomes one outbox row per matching endpoint
//! ([`Catalog::enqueue_webhooks`], one transaction for the batch). The engine's sender thread,
//! on a connection of its own, asks for the rows that are due ([`Catalog::due_webhooks`]),
//! delivers each, and records the outcome ([`Catalog::mark_webhook_delivered`],
//! [`Catalog::mark_webhook_retry`], [`Catalog::mark_webhook_failed`]). Everything is committed
//! before a method returns, so a restart resumes exactly where the last commit left off: a row
//! being delivered when the node died is still `pending` and is sent again (at least once, with
//! the same `webhook-id`, which receivers use to drop duplicates — Standard Webhooks,
//! "Idempotency").
//!
//! **Order per endpoint.** Only the oldest pending row of an endpoint is ever due: a later row
//! waits while an earlier one is retried, and becomes due once that one is delivered or has
//! failed. Endpoints do not wait for one another.
//!
//! **Secrets are stored in clear.** HMAC-SHA256 signing needs the `whsec_` secret itself, unlike
//! API tokens (stored as SHA-256). The catalog file's directory is created 0700; anyone who can
//! read the catalog can forge webhooks for its endpoints, and should be treated as the node's
//! operator.
//!
//! **Bounds.** At most [`MAX_WEBHOOK_ENDPOINTS`] endpoints (more are refused). At most
//! [`MAX_PENDING_WEBHOOKS_PER_ENDPOINT`] pending rows per endpoint: past it, a *new* event is not
//! queued for that endpoint and is counted in [`EnqueueOutcome::dropped`] (the backlog already
//! queued keeps its order; the caller logs and counts the drop). Delivered and failed rows are
//! kept for inspection, the newest [`MAX_FINISHED_WEBHOOKS_PER_ENDPOINT`] per endpoint; older
//! ones are deleted when a row finishes.

use rusqlite::{OptionalExtension, params};

use super::{Catalog, CatalogError, check_text, from_sql_u64};

/// Webhook endpoints at most; a further [`Catalog::add_webhook_endpoint`] is refused with
/// [`CatalogError::TooLong`]. Each endpoint costs one outbox row per matching event: 32
/// endpoints keep an upload's commit within a few inserts.
pub const MAX_WEBHOOK_ENDPOINTS: usize = 32;

/// Pending (not yet delivered nor failed) outbox rows per endpoint, at most. At the limit a new
/// event is not queued for that endpoint ([`EnqueueOutcome::dropped`]). 10,000 rows of a few
/// hundred bytes is a few MiB: a day of a busy node's events for a receiver that is down.
pub const MAX_PENDING_WEBHOOKS_PER_ENDPOINT: u64 = 10_000;

/// Delivered or failed rows kept per endpoint (for `seednode webhook list` and debugging); the
/// oldest past it are deleted whenever a row of that endpoint finishes.
pub const MAX_FINISHED_WEBHOOKS_PER_ENDPOINT: u64 = 1_000;

/// Longest URL accepted, bytes (the common browser limit; a webhook URL is far shorter).
pub const MAX_WEBHOOK_URL_LEN: usize = 2048;

/// Most event kinds (or prefixes) in an endpoint's filter.
pub const MAX_WEBHOOK_KINDS: usize = 32;

/// Most signing secrets per endpoint: the current one plus those still valid during a
/// rotation (Standard Webhooks, "Signature scheme": several space-separated signatures).
pub const MAX_WEBHOOK_SECRETS: usize = 4;

/// Longest stored secret, bytes (`whsec_` and the base64 of at most 96 bytes).
const MAX_WEBHOOK_SECRET_LEN: usize = 6 + 128;

/// Longest event body queued, bytes: event details are small (an audit row's are at most
/// 4 KiB); a larger body is refused with [`CatalogError::TooLong`].
pub const MAX_WEBHOOK_BODY_LEN: usize = 16 * 1024;

/// Longest `last_error` stored, bytes (cut at a character boundary).
pub const MAX_WEBHOOK_ERROR_LEN: usize = 512;

/// Longest label, bytes.
const MAX_WEBHOOK_LABEL_LEN: usize = 128;

/// Longest event id (`webhook-id`), bytes.
const MAX_EVENT_ID_LEN: usize = 64;

/// Longest event kind, bytes (as in the audit log).
const MAX_EVENT_KIND_LEN: usize = 64;

/// A webhook endpoint to register. The caller has already checked the URL against the SSRF
/// rules and parsed the secrets and key; the catalog only checks lengths and forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWebhookEndpoint {
    /// Where events are POSTed (`https://…`, or `http://` for a LAN receiver).
    pub url: String,
    /// Which events: `*`, exact kinds (`upload.completed`) or prefixes ending in `.`
    /// (`torrent.`); at most [`MAX_WEBHOOK_KINDS`], none empty or containing a space.
    pub kinds: Vec<String>,
    /// Signing secrets in the `whsec_<base64>` form, newest first; 1 to
    /// [`MAX_WEBHOOK_SECRETS`].
    pub secrets: Vec<String>,
    /// The recipient's X25519 public key: when set, bodies are sent as libsodium sealed boxes.
    pub recipient_key: Option<[u8; 32]>,
    /// Whether loopback and private-network targets are allowed (a LAN receiver, tests).
    pub allow_private: bool,
    /// When it was added, seconds since the Unix epoch.
    pub created_at: i64,
    /// A free-form label (at most 128 bytes).
    pub label: String,
}

/// A registered webhook endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// Its id (SQLite rowid).
    pub id: i64,
    /// The rest, as registered.
    pub endpoint: NewWebhookEndpoint,
    /// Outbox rows still pending.
    pub pending: u64,
    /// Outbox rows that failed (among those kept).
    pub failed: u64,
}

impl WebhookEndpoint {
    /// Whether this endpoint wants events of `kind`.
    #[must_use]
    pub fn wants(&self, kind: &str) -> bool {
        kinds_match(&self.endpoint.kinds, kind)
    }
}

/// Whether a filter (`*`, kinds, prefixes ending in `.`) matches `kind`.
fn kinds_match(kinds: &[String], kind: &str) -> bool {
    kinds
        .iter()
        .any(|k| k == "*" || k == kind || (k.ends_with('.') && kind.starts_with(k.as_str())))
}

/// One event to queue for every endpoint that wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    /// The `webhook-id`: unique per event, the same for every endpoint and every retry
    /// (e.g. `msg_` and 16 random bytes in hex; at most 64 bytes).
    pub id: String,
    /// The event's kind (at most 64 bytes).
    pub kind: String,
    /// The JSON body, as it will be signed (at most [`MAX_WEBHOOK_BODY_LEN`] bytes).
    pub body: String,
    /// When it happened, seconds since the Unix epoch.
    pub created_at: i64,
    /// An endpoint not to queue it for: the one a `webhook.failed` event is about, so that a
    /// dead receiver is not sent news of its own death forever.
    pub exclude_endpoint: Option<i64>,
}

/// What [`Catalog::enqueue_webhooks`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EnqueueOutcome {
    /// Rows queued.
    pub queued: u64,
    /// (event, endpoint) pairs not queued because the endpoint had
    /// [`MAX_PENDING_WEBHOOKS_PER_ENDPOINT`] pending rows.
    pub dropped: u64,
}

/// Where an outbox row stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxState {
    /// Not delivered yet; retried until it is or its period ends.
    Pending,
    /// A 2xx answer was received.
    Delivered,
    /// Given up (retry period over, or refused by the SSRF rules).
    Failed,
}

impl OutboxState {
    /// The stored name: `pending`, `delivered`, `failed`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "delivered" => Self::Delivered,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// One outbox row with what the sender needs to deliver it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// The row's id (never reused: `AUTOINCREMENT`).
    pub id: i64,
    /// The endpoint.
    pub endpoint_id: i64,
    /// The endpoint's URL.
    pub url: String,
    /// The endpoint's secrets, newest first.
    pub secrets: Vec<String>,
    /// The endpoint's recipient key, if its bodies are sealed.
    pub recipient_key: Option<[u8; 32]>,
    /// Whether the endpoint may be on a private network.
    pub allow_private: bool,
    /// The `webhook-id`.
    pub event_id: String,
    /// The event's kind.
    pub kind: String,
    /// The JSON body (plain; sealed at delivery when the endpoint has a key).
    pub body: String,
    /// When the event was queued, seconds since the Unix epoch.
    pub created_at: i64,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Not to be tried before this, milliseconds since the Unix epoch.
    pub next_attempt_ms: i64,
    /// Its state.
    pub state: OutboxState,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

impl Catalog {
    /// Registers a webhook endpoint; returns its id.
    ///
    /// # Errors
    /// [`CatalogError::TooLong`] past [`MAX_WEBHOOK_ENDPOINTS`], or
    /// [`CatalogError::Invalid`] for a URL, kind, secret or label out of bounds or malformed
    /// (a secret must start with `whsec_` and hold no space); [`CatalogError::DiskFull`];
    /// [`CatalogError::Sqlite`].
    pub fn add_webhook_endpoint(&mut self, e: &NewWebhookEndpoint) -> Result<i64, CatalogError> {
        check_text("webhook url", &e.url, MAX_WEBHOOK_URL_LEN)?;
        if e.url.is_empty() {
            return Err(CatalogError::Invalid {
                field: "webhook url",
                reason: "empty",
            });
        }
        check_list(
            "webhook kinds",
            &e.kinds,
            MAX_WEBHOOK_KINDS,
            MAX_EVENT_KIND_LEN,
        )?;
        check_list(
            "webhook secrets",
            &e.secrets,
            MAX_WEBHOOK_SECRETS,
            MAX_WEBHOOK_SECRET_LEN,
        )?;
        if e.secrets.iter().any(|s| !s.starts_with("whsec_")) {
            return Err(CatalogError::Invalid {
                field: "webhook secrets",
                reason: "not in the whsec_ form",
            });
        }
        check_text("webhook label", &e.label, MAX_WEBHOOK_LABEL_LEN)?;
        let tx = self.write()?;
        let count: i64 =
            tx.query_row("SELECT count(*) FROM webhook_endpoints", [], |r| r.get(0))?;
        if from_sql_u64(count) >= MAX_WEBHOOK_ENDPOINTS as u64 {
            return Err(CatalogError::TooLong {
                field: "webhook endpoints",
                len: MAX_WEBHOOK_ENDPOINTS + 1,
                limit: MAX_WEBHOOK_ENDPOINTS,
            });
        }
        tx.prepare_cached(
            "INSERT INTO webhook_endpoints
                 (url, kinds, secrets, recipient_key, allow_private, created_at, label)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            e.url,
            e.kinds.join(" "),
            e.secrets.join(" "),
            e.recipient_key.as_ref().map(<[u8; 32]>::as_slice),
            e.allow_private,
            e.created_at,
            e.label,
        ])?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(id)
    }

    /// Every webhook endpoint, by id, with its pending and failed row counts.
    ///
    /// # Errors
    /// [`CatalogError::Corrupt`] for a stored key of the wrong length; [`CatalogError::Sqlite`].
    pub fn webhook_endpoints(&self) -> Result<Vec<WebhookEndpoint>, CatalogError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT e.id, e.url, e.kinds, e.secrets, e.recipient_key, e.allow_private,
                    e.created_at, e.label,
                    (SELECT count(*) FROM webhook_outbox o
                      WHERE o.endpoint_id = e.id AND o.state = 'pending'),
                    (SELECT count(*) FROM webhook_outbox o
                      WHERE o.endpoint_id = e.id AND o.state = 'failed')
             FROM webhook_endpoints e ORDER BY e.id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<Vec<u8>>>(4)?,
                r.get::<_, bool>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, i64>(8)?,
                r.get::<_, i64>(9)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, url, kinds, secrets, key, allow_private, created_at, label, pending, failed) =
                row?;
            out.push(WebhookEndpoint {
                id,
                endpoint: NewWebhookEndpoint {
                    url,
                    kinds: split(&kinds),
                    secrets: split(&secrets),
                    recipient_key: key_from_sql(key)?,
                    allow_private,
                    created_at,
                    label,
                },
                pending: from_sql_u64(pending),
                failed: from_sql_u64(failed),
            });
        }
        Ok(out)
    }

    /// Removes endpoint `id` and every outbox row of it; returns whether it existed.
    ///
    /// # Errors
    /// [`CatalogError::DiskFull`]; [`CatalogError::Sqlite`].
    pub fn remove_webhook_endpoint(&mut self, id: i64) -> Result<bool, CatalogError> {
        let tx = self.write()?;
        let n = tx
            .prepare_cached("DELETE FROM webhook_endpoints WHERE id = ?1")?
            .execute([id])?;
        tx.commit()?;
        Ok(n > 0)
    }

    /// Queues each of `events` for every endpoint whose filter matches its kind, in one
    /// transaction (all or nothing), due at once (`next_attempt_ms` = `now_ms`). An event
    /// already queued for an endpoint (same id) is not queued twice.
    ///
    /// # Errors
    /// [`CatalogError::TooLong`] / [`CatalogError::Invalid`] for an id, kind or body out of
    /// bounds (nothing is queued); [`CatalogError::DiskFull`]; [`CatalogError::Sqlite`].
    pub fn enqueue_webhooks(
        &mut self,
        events: &[WebhookEvent],
        now_ms: i64,
    ) -> Result<EnqueueOutcome, CatalogError> {
        if events.is_empty() {
            return Ok(EnqueueOutcome::default());
        }
        let tx = self.write()?;
        let outcome = enqueue_in(&tx, events, now_ms)?;
        tx.commit()?;
        Ok(outcome)
    }

    /// Queues `event` for endpoint `endpoint` alone, whatever its filter (`seednode webhook
    /// test`), due at once. Returns whether it was queued (false: no such endpoint, or its
    /// backlog is full).
    ///
    /// # Errors
    /// As [`Catalog::enqueue_webhooks`].
    pub fn enqueue_webhook_to(
        &mut self,
        endpoint: i64,
        event: &WebhookEvent,
        now_ms: i64,
    ) -> Result<bool, CatalogError> {
        check_text("webhook event id", &event.id, MAX_EVENT_ID_LEN)?;
        check_text("webhook event kind", &event.kind, MAX_EVENT_KIND_LEN)?;
        check_text("webhook body", &event.body, MAX_WEBHOOK_BODY_LEN)?;
        let tx = self.write()?;
        let pending: i64 = tx.query_row(
            "SELECT count(*) FROM webhook_outbox WHERE endpoint_id = ?1 AND state = 'pending'",
            [endpoint],
            |r| r.get(0),
        )?;
        if from_sql_u64(pending) >= MAX_PENDING_WEBHOOKS_PER_ENDPOINT {
            return Ok(false);
        }
        let n = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO webhook_outbox
                     (endpoint_id, event_id, kind, body, created_at, next_attempt_ms)
                 SELECT id, ?2, ?3, ?4, ?5, ?6 FROM webhook_endpoints WHERE id = ?1",
            )?
            .execute(params![
                endpoint,
                event.id,
                event.kind,
                event.body,
                event.created_at,
                now_ms
            ])?;
        tx.commit()?;
        Ok(n == 1)
    }

    /// The rows due at `now_ms` (milliseconds since the Unix epoch): for each endpoint, its
    /// oldest pending row if that one's `next_attempt_ms` has come; at most `limit` rows,
    /// earliest first. A later row of an endpoint is never returned while an earlier one is
    /// pending.
    ///
    /// # Errors
    /// [`CatalogError::Corrupt`] for a row the schema cannot express; [`CatalogError::Sqlite`].
    pub fn due_webhooks(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxRow>, CatalogError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare_cached(&format!(
            "{SELECT_ROW} WHERE o.id IN (SELECT min(id) FROM webhook_outbox
                                          WHERE state = 'pending' GROUP BY endpoint_id)
               AND o.next_attempt_ms <= ?1
             ORDER BY o.next_attempt_ms, o.id LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![now_ms, limit], raw_row)?;
        rows.map(|r| r.map_err(CatalogError::from).and_then(row_from_raw))
            .collect()
    }

    /// When the next row becomes due (milliseconds since the Unix epoch), among the oldest
    /// pending row of each endpoint; `None` when nothing is pending.
    ///
    /// # Errors
    /// [`CatalogError::Sqlite`].
    pub fn next_webhook_due_ms(&self) -> Result<Option<i64>, CatalogError> {
        Ok(self.conn.query_row(
            "SELECT min(next_attempt_ms) FROM webhook_outbox
             WHERE id IN (SELECT min(id) FROM webhook_outbox
                          WHERE state = 'pending' GROUP BY endpoint_id)",
            [],
            |r| r.get(0),
        )?)
    }

    /// One outbox row by id (for tests and `seednode webhook list`), `None` when gone.
    ///
    /// # Errors
    /// [`CatalogError::Corrupt`]; [`CatalogError::Sqlite`].
    pub fn webhook_row(&self, id: i64) -> Result<Option<OutboxRow>, CatalogError> {
        let raw = self
            .conn
            .prepare_cached(&format!("{SELECT_ROW} WHERE o.id = ?1"))?
            .query_row([id], raw_row)
            .optional()?;
        raw.map(row_from_raw).transpose()
    }

    /// Records that row `id` was delivered (one more attempt, state `delivered`, at `now`
    /// seconds since the epoch); returns whether the row was pending.
    ///
    /// # Errors
    /// [`CatalogError::DiskFull`]; [`CatalogError::Sqlite`].
    pub fn mark_webhook_delivered(&mut self, id: i64, now: i64) -> Result<bool, CatalogError> {
        self.finish(id, OutboxState::Delivered, now, None)
    }

    /// Records that row `id` failed for good (one more attempt, state `failed`, `error` kept,
    /// cut to [`MAX_WEBHOOK_ERROR_LEN`] bytes); returns whether the row was pending.
    ///
    /// # Errors
    /// [`CatalogError::DiskFull`]; [`CatalogError::Sqlite`].
    pub fn mark_webhook_failed(
        &mut self,
        id: i64,
        now: i64,
        error: &str,
    ) -> Result<bool, CatalogError> {
        self.finish(id, OutboxState::Failed, now, Some(error))
    }

    /// Records a failed attempt of row `id` to be retried at `next_attempt_ms` (milliseconds
    /// since the epoch); returns whether the row was pending.
    ///
    /// # Errors
    /// [`CatalogError::DiskFull`]; [`CatalogError::Sqlite`].
    pub fn mark_webhook_retry(
        &mut self,
        id: i64,
        next_attempt_ms: i64,
        error: &str,
    ) -> Result<bool, CatalogError> {
        let tx = self.write()?;
        let n = tx
            .prepare_cached(
                "UPDATE webhook_outbox
                 SET attempts = attempts + 1, next_attempt_ms = ?2, last_error = ?3
                 WHERE id = ?1 AND state = 'pending'",
            )?
            .execute(params![
                id,
                next_attempt_ms,
                cut(error, MAX_WEBHOOK_ERROR_LEN)
            ])?;
        tx.commit()?;
        Ok(n > 0)
    }

    /// Ends a pending row in `state`, then prunes its endpoint's finished rows past
    /// [`MAX_FINISHED_WEBHOOKS_PER_ENDPOINT`].
    fn finish(
        &mut self,
        id: i64,
        state: OutboxState,
        now: i64,
        error: Option<&str>,
    ) -> Result<bool, CatalogError> {
        let tx = self.write()?;
        let n = tx
            .prepare_cached(
                "UPDATE webhook_outbox
                 SET attempts = attempts + 1, state = ?2, finished_at = ?3,
                     last_error = coalesce(?4, last_error)
                 WHERE id = ?1 AND state = 'pending'",
            )?
            .execute(params![
                id,
                state.as_str(),
                now,
                error.map(|e| cut(e, MAX_WEBHOOK_ERROR_LEN))
            ])?;
        if n > 0 {
            tx.prepare_cached(
                "DELETE FROM webhook_outbox
                 WHERE endpoint_id = (SELECT endpoint_id FROM webhook_outbox WHERE id = ?1)
                   AND state <> 'pending'
                   AND id NOT IN (SELECT id FROM webhook_outbox
                                  WHERE endpoint_id = (SELECT endpoint_id FROM webhook_outbox
                                                       WHERE id = ?1)
                                    AND state <> 'pending'
                                  ORDER BY id DESC LIMIT ?2)",
            )?
            .execute(params![
                id,
                i64::try_from(MAX_FINISHED_WEBHOOKS_PER_ENDPOINT).unwrap_or(i64::MAX)
            ])?;
        }
        tx.commit()?;
        Ok(n > 0)
    }
}

/// [`Catalog::enqueue_webhooks`] inside a transaction the caller owns, so that a catalog
/// method can queue the events reporting its change in the change's own transaction.
pub(crate) fn enqueue_in(
    tx: &rusqlite::Connection,
    events: &[WebhookEvent],
    now_ms: i64,
) -> Result<EnqueueOutcome, CatalogError> {
    for e in events {
        check_text("webhook event id", &e.id, MAX_EVENT_ID_LEN)?;
        check_text("webhook event kind", &e.kind, MAX_EVENT_KIND_LEN)?;
        check_text("webhook body", &e.body, MAX_WEBHOOK_BODY_LEN)?;
        if e.id.is_empty() || e.kind.is_empty() {
            return Err(CatalogError::Invalid {
                field: "webhook event",
                reason: "empty id or kind",
            });
        }
    }
    let endpoints: Vec<(i64, Vec<String>, i64)> = tx
        .prepare_cached(
            "SELECT e.id, e.kinds, (SELECT count(*) FROM webhook_outbox o
                                     WHERE o.endpoint_id = e.id AND o.state = 'pending')
             FROM webhook_endpoints e ORDER BY e.id",
        )?
        .query_map([], |r| {
            Ok((r.get(0)?, split(&r.get::<_, String>(1)?), r.get(2)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut outcome = EnqueueOutcome::default();
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO webhook_outbox
             (endpoint_id, event_id, kind, body, created_at, next_attempt_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let mut pending: Vec<u64> = endpoints.iter().map(|e| from_sql_u64(e.2)).collect();
    for e in events {
        for (i, (endpoint, kinds, _)) in endpoints.iter().enumerate() {
            if e.exclude_endpoint == Some(*endpoint) || !kinds_match(kinds, &e.kind) {
                continue;
            }
            if pending[i] >= MAX_PENDING_WEBHOOKS_PER_ENDPOINT {
                outcome.dropped += 1;
                continue;
            }
            let n = insert.execute(params![
                endpoint,
                e.id,
                e.kind,
                e.body,
                e.created_at,
                now_ms
            ])?;
            pending[i] += n as u64;
            outcome.queued += n as u64;
        }
    }
    Ok(outcome)
}

/// The columns of an [`OutboxRow`], joined with its endpoint.
const SELECT_ROW: &str = "SELECT o.id, o.endpoint_id, e.url, e.secrets, e.recipient_key,
        e.allow_private, o.event_id, o.kind, o.body, o.created_at, o.attempts,
        o.next_attempt_ms, o.state, o.last_error
    FROM webhook_outbox o JOIN webhook_endpoints e ON e.id = o.endpoint_id";

type RawRow = (
    OutboxRow,
    Option<Vec<u8>>,
    String, // state
);

fn raw_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((
        OutboxRow {
            id: r.get(0)?,
            endpoint_id: r.get(1)?,
            url: r.get(2)?,
            secrets: split(&r.get::<_, String>(3)?),
            recipient_key: None,
            allow_private: r.get(5)?,
            event_id: r.get(6)?,
            kind: r.get(7)?,
            body: r.get(8)?,
            created_at: r.get(9)?,
            attempts: u32::try_from(r.get::<_, i64>(10)?).unwrap_or(u32::MAX),
            next_attempt_ms: r.get(11)?,
            state: OutboxState::Pending,
            last_error: r.get(13)?,
        },
        r.get(4)?,
        r.get(12)?,
    ))
}

fn row_from_raw((mut row, key, state): RawRow) -> Result<OutboxRow, CatalogError> {
    row.recipient_key = key_from_sql(key)?;
    row.state = OutboxState::from_name(&state).ok_or(CatalogError::Corrupt {
        what: "unknown webhook outbox state",
    })?;
    Ok(row)
}

fn key_from_sql(key: Option<Vec<u8>>) -> Result<Option<[u8; 32]>, CatalogError> {
    key.map(|k| {
        <[u8; 32]>::try_from(k.as_slice()).map_err(|_| CatalogError::Corrupt {
            what: "webhook recipient key is not 32 bytes",
        })
    })
    .transpose()
}

/// Checks a list stored space-separated: 1 to `max_items` items, each non-empty, at most
/// `max_len` bytes, without spaces or NUL.
fn check_list(
    field: &'static str,
    items: &[String],
    max_items: usize,
    max_len: usize,
) -> Result<(), CatalogError> {
    if items.is_empty() {
        return Err(CatalogError::Invalid {
            field,
            reason: "empty",
        });
    }
    if items.len() > max_items {
        return Err(CatalogError::TooLong {
            field,
            len: items.len(),
            limit: max_items,
        });
    }
    for item in items {
        check_text(field, item, max_len)?;
        if item.is_empty() || item.contains(char::is_whitespace) {
            return Err(CatalogError::Invalid {
                field,
                reason: "empty item or whitespace in an item",
            });
        }
    }
    Ok(())
}

fn split(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
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

    fn endpoint(url: &str, kinds: &[&str]) -> NewWebhookEndpoint {
        NewWebhookEndpoint {
            url: url.into(),
            kinds: kinds.iter().map(|&k| k.to_owned()).collect(),
            secrets: vec!["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()],
            recipient_key: None,
            allow_private: false,
            created_at: 100,
            label: "ops".into(),
        }
    }

    fn event(n: u32, kind: &str) -> WebhookEvent {
        WebhookEvent {
            id: format!("msg_{n}"),
            kind: kind.into(),
            body: format!("{{\"n\":{n}}}"),
            created_at: 1_000 + i64::from(n),
            exclude_endpoint: None,
        }
    }

    fn open(dir: &tempfile::TempDir) -> Catalog {
        Catalog::open(&dir.path().join("c.sqlite")).unwrap()
    }

    #[test]
    fn endpoints_round_trip_and_filters_match() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open(&dir);
        let mut e = endpoint("https://hooks.example/a", &["torrent.", "upload.completed"]);
        e.recipient_key = Some([7; 32]);
        e.secrets.push("whsec_b2xk".into());
        let id = c.add_webhook_endpoint(&e).unwrap();
        let all = c.webhook_endpoints().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].id, id);
        assert_eq!(all[0].endpoint, e);
        assert!(all[0].wants("torrent.added"));
        assert!(all[0].wants("upload.completed"));
        assert!(!all[0].wants("upload.started"));
        assert!(!all[0].wants("torrentx"));
        assert!(c.remove_webhook_endpoint(id).unwrap());
        assert!(!c.remove_webhook_endpoint(id).unwrap());
        assert!(c.webhook_endpoints().unwrap().is_empty());
    }

    #[test]
    fn malformed_endpoints_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open(&dir);
        let mut e = endpoint("https://h.example/", &["*"]);
        e.secrets = vec!["not-a-secret".into()];
        assert!(matches!(
            c.add_webhook_endpoint(&e),
            Err(CatalogError::Invalid { .. })
        ));
        let mut e = endpoint("https://h.example/", &["a b"]);
        assert!(c.add_webhook_endpoint(&e).is_err());
        e.kinds = vec![];
        assert!(c.add_webhook_endpoint(&e).is_err());
        let e = endpoint(&"x".repeat(MAX_WEBHOOK_URL_LEN + 1), &["*"]);
        assert!(matches!(
            c.add_webhook_endpoint(&e),
            Err(CatalogError::TooLong { .. })
        ));
        for i in 0..MAX_WEBHOOK_ENDPOINTS {
            c.add_webhook_endpoint(&endpoint(&format!("https://h{i}.example/"), &["*"]))
                .unwrap();
        }
        assert!(matches!(
            c.add_webhook_endpoint(&endpoint("https://one-more.example/", &["*"])),
            Err(CatalogError::TooLong { .. })
        ));
    }

    #[test]
    fn events_go_to_matching_endpoints_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open(&dir);
        let all = c
            .add_webhook_endpoint(&endpoint("https://a/", &["*"]))
            .unwrap();
        let torrents = c
            .add_webhook_endpoint(&endpoint("https://b/", &["torrent."]))
            .unwrap();
        let out = c
            .enqueue_webhooks(&[event(1, "torrent.added"), event(2, "upload.started")], 5)
            .unwrap();
        assert_eq!(
            out,
            EnqueueOutcome {
                queued: 3,
                dropped: 0
            }
        );
        // Queued again (a replay of the batch): nothing new.
        let out = c.enqueue_webhooks(&[event(1, "torrent.added")], 5).unwrap();
        assert_eq!(out.queued, 0);
        // A webhook.failed about endpoint `all` is not sent to it.
        let mut failed = event(3, "webhook.failed");
        failed.exclude_endpoint = Some(all);
        assert_eq!(c.enqueue_webhooks(&[failed], 5).unwrap().queued, 0);
        let due = c.due_webhooks(5, 10).unwrap();
        assert_eq!(due.len(), 2, "one head row per endpoint");
        assert_eq!(
            due.iter()
                .map(|r| (r.endpoint_id, r.event_id.as_str()))
                .collect::<Vec<_>>(),
            [(all, "msg_1"), (torrents, "msg_1")]
        );
        assert_eq!(due[0].secrets, ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]);
        assert_eq!(due[0].state, OutboxState::Pending);
    }

    #[test]
    fn rows_of_an_endpoint_are_due_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open(&dir);
        let ep = c
            .add_webhook_endpoint(&endpoint("https://a/", &["*"]))
            .unwrap();
        let events: Vec<_> = (1..=3).map(|n| event(n, "torrent.added")).collect();
        c.enqueue_webhooks(&events, 0).unwrap();
        let first = c.due_webhooks(0, 10).unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].event_id, "msg_1");
        // Retried later: nothing of this endpoint is due meanwhile, not even the later rows.
        assert!(
            c.mark_webhook_retry(first[0].id, 1_000, "HTTP 500")
                .unwrap()
        );
        assert!(c.due_webhooks(999, 10).unwrap().is_empty());
        assert_eq!(c.next_webhook_due_ms().unwrap(), Some(1_000));
        let again = c.due_webhooks(1_000, 10).unwrap();
        assert_eq!(again[0].id, first[0].id);
        assert_eq!(again[0].attempts, 1);
        assert_eq!(again[0].last_error.as_deref(), Some("HTTP 500"));
        assert!(c.mark_webhook_delivered(first[0].id, 2).unwrap());
        assert!(
            !c.mark_webhook_delivered(first[0].id, 2).unwrap(),
            "not pending any more"
        );
        let second = c.due_webhooks(1_000, 10).unwrap();
        assert_eq!(second[0].event_id, "msg_2");
        assert!(c.mark_webhook_failed(second[0].id, 3, "gave up").unwrap());
        let third = c.due_webhooks(1_000, 10).unwrap();
        assert_eq!(third[0].event_id, "msg_3");
        let failed = c.webhook_row(second[0].id).unwrap().unwrap();
        assert_eq!(failed.state, OutboxState::Failed);
        assert_eq!(c.webhook_endpoints().unwrap()[0].pending, 1);
        assert_eq!(c.webhook_endpoints().unwrap()[0].failed, 1);
        let _ = ep;
    }

    #[test]
    fn a_reopened_catalog_resumes_where_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut c = open(&dir);
            c.add_webhook_endpoint(&endpoint("https://a/", &["*"]))
                .unwrap();
            let events: Vec<_> = (1..=3).map(|n| event(n, "torrent.added")).collect();
            c.enqueue_webhooks(&events, 0).unwrap();
            let head = c.due_webhooks(0, 10).unwrap();
            c.mark_webhook_delivered(head[0].id, 1).unwrap();
            let head = c.due_webhooks(0, 10).unwrap();
            c.mark_webhook_retry(head[0].id, 50, "timeout").unwrap();
            // Dropped without any shutdown step, as by kill -9 after the commit.
        }
        let c = open(&dir);
        let due = c.due_webhooks(50, 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].event_id, "msg_2");
        assert_eq!(due[0].attempts, 1);
    }

    #[test]
    fn a_full_endpoint_drops_new_events_and_old_finished_rows_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open(&dir);
        let ep = c
            .add_webhook_endpoint(&endpoint("https://a/", &["*"]))
            .unwrap();
        let n = u32::try_from(MAX_PENDING_WEBHOOKS_PER_ENDPOINT).unwrap();
        let events: Vec<_> = (0..n).map(|i| event(i, "k")).collect();
        assert_eq!(c.enqueue_webhooks(&events, 0).unwrap().queued, u64::from(n));
        let out = c.enqueue_webhooks(&[event(n, "k")], 0).unwrap();
        assert_eq!(
            out,
            EnqueueOutcome {
                queued: 0,
                dropped: 1
            }
        );
        // Finish more rows than are kept: the oldest finished ones go.
        let kept = MAX_FINISHED_WEBHOOKS_PER_ENDPOINT;
        for _ in 0..kept + 2 {
            let head = c.due_webhooks(0, 1).unwrap();
            c.mark_webhook_delivered(head[0].id, 1).unwrap();
        }
        let finished: i64 = c
            .conn
            .query_row(
                "SELECT count(*) FROM webhook_outbox WHERE endpoint_id = ?1 AND state <> 'pending'",
                [ep],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(finished, i64::try_from(kept).unwrap());
        // Room again: a new event is queued behind the backlog.
        assert_eq!(
            c.enqueue_webhooks(&[event(n + 1, "k")], 0).unwrap().queued,
            1
        );
    }

    #[test]
    fn bad_events_queue_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open(&dir);
        c.add_webhook_endpoint(&endpoint("https://a/", &["*"]))
            .unwrap();
        let mut big = event(2, "k");
        big.body = "x".repeat(MAX_WEBHOOK_BODY_LEN + 1);
        assert!(c.enqueue_webhooks(&[event(1, "k"), big], 0).is_err());
        assert!(c.due_webhooks(0, 10).unwrap().is_empty());
    }
}
