//! The Nostr publisher: one thread, off the event loop, with a catalog connection of its own
//! (WAL), that turns [`Job`]s into signed events in the catalog's durable queue and sends the
//! queue to the relays.
//!
//! Its loop: take the jobs waiting (at most [`MAX_JOBS_PER_TURN`]): an announcement reads the
//! torrent from the catalog, builds and signs its events ([`super::announcement`]) and queues
//! one row per event and relay; a removal cancels the torrent's pending rows and queues a
//! deletion ([`super::deletion`]) of every event that announced it. Then take the rows due (at
//! most [`DUE_BATCH`]), grouped by relay, and give each relay one session: connect
//! (`connect_timeout`), WebSocket handshake, then per row `["EVENT", …]` and wait for its `OK`.
//! With nothing due, sleep until the next row is due, [`IDLE_POLL_INTERVAL`] at most, or until
//! a job arrives.
//!
//! One relay session is bounded in time ([`SESSION_TIMEOUT_FACTOR`] × the configured timeout,
//! checked on every read and write), in bytes read ([`MAX_SESSION_READ_LEN`]), in message size
//! ([`seednode::nostr_msg::MAX_RELAY_MESSAGE_LEN`]) and in messages read while waiting for one
//! `OK` ([`MAX_MESSAGES_PER_OK`]). A relay that sends garbage, never answers or floods costs at
//! most that bound per turn, and its rows are retried later; the other relays' rows and the
//! event loop are not held up beyond it.
//!
//! NIP-42: an `AUTH` challenge, whenever it comes, is answered with a signed kind 22242; an
//! `OK false "auth-required:"` (or `"restricted:"`) after an answered challenge sends the event
//! once more. `OK` with `duplicate:` counts as published (NIP-01). A failed attempt is retried
//! after `backoff_base × 2^(attempts−1)` (capped at [`BACKOFF_MAX`]) with equal jitter, until
//! the retry period after the row was queued; then the row fails and a `nostr.failed` event is
//! emitted. A published row emits `nostr.published`.

use crate::daemon::unix_ms;
use crate::events::webhook::sender::backoff;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mio::Waker;
use nostr::prelude::Keys;
use ring::rand::SystemRandom;
use seednode::nostr_msg::{
    MAX_RELAY_MESSAGE_LEN, RelayMessage, auth_message, event_message, parse_relay_message,
};
use seednode_storage::catalog::{Catalog, CatalogError, NewNostrEvent, NostrRow};
use tungstenite::client::IntoClientRequest as _;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

use super::{FileFacts, Job, NostrSettings, TorrentFacts};
use crate::events::Event;

/// Default connect / read / write timeout of one relay operation.
pub(crate) const DEFAULT_NOSTR_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest configurable timeout: a relay slower than this is down for our purposes.
pub(crate) const MAX_NOSTR_TIMEOUT: Duration = Duration::from_secs(60);

/// A relay's whole turn (connect, handshake, every row) lasts at most this many timeouts.
pub(crate) const SESSION_TIMEOUT_FACTOR: u32 = 3;

/// Default retry period: an event is retried for a day after it was queued (a relay down
/// overnight still gets it).
pub(crate) const DEFAULT_NOSTR_RETRY_PERIOD: Duration = Duration::from_secs(24 * 3600);

/// Longest retry period accepted (a week); larger configured values are clamped.
pub(crate) const MAX_NOSTR_RETRY_PERIOD: Duration = Duration::from_secs(7 * 24 * 3600);

/// First retry delay (then doubled per attempt, with jitter).
pub(crate) const BACKOFF_BASE: Duration = Duration::from_secs(2);

/// Longest delay between two attempts: a relay back up is tried within this.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(600);

/// Rows taken per turn (over all relays).
pub(crate) const DUE_BATCH: usize = 64;

/// Jobs handled per turn, so due rows are not starved by a burst of uploads.
pub(crate) const MAX_JOBS_PER_TURN: usize = 32;

/// Messages read at most while waiting for the `OK` of one event (NOTICEs, answers to other
/// things, garbage): a relay that floods is abandoned for this turn after it.
pub(crate) const MAX_MESSAGES_PER_OK: usize = 64;

/// Bytes read at most from a relay in one session (handshake included): past it the session
/// ends; bounds a relay that streams an endless handshake or messages.
pub(crate) const MAX_SESSION_READ_LEN: usize = 4 * 1024 * 1024;

/// Addresses of a relay's host tried at most.
pub(crate) const MAX_RELAY_ADDRS: usize = 4;

/// Longest sleep with nothing due.
pub(crate) const IDLE_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// Notices waiting for the loop at most; past it they are dropped (the rows keep their
/// state in the catalog, only the bus event is lost).
pub(crate) const MAX_QUEUED_NOSTR_NOTICES: usize = 256;

/// The catalog setting holding when announcing was first enabled (Unix seconds): torrents
/// added since then are announced, older ones never (turning Nostr on does not flood relays
/// with the whole catalog).
pub(crate) const SINCE_SETTING: &str = "nostr.announce_since";

/// The publisher's settings.
#[derive(Debug, Clone)]
pub(crate) struct PublisherConfig {
    /// The catalog file (opened again by the thread).
    pub(crate) catalog: PathBuf,
    /// `[nostr]`.
    pub(crate) settings: NostrSettings,
    /// [`BACKOFF_BASE`].
    pub(crate) backoff_base: Duration,
}

/// What the publisher tells the loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NostrNotice {
    /// A relay holds an event.
    Published {
        /// The relay.
        relay: String,
        /// The event id.
        event_id: String,
        /// Its kind.
        kind: u16,
        /// The torrent.
        info_hash: String,
        /// Attempts made.
        attempts: u32,
    },
    /// An event was given up on for a relay.
    Failed {
        /// The relay.
        relay: String,
        /// The event id.
        event_id: String,
        /// Its kind.
        kind: u16,
        /// The torrent.
        info_hash: String,
        /// Attempts made.
        attempts: u32,
        /// The last error.
        error: String,
    },
}

impl NostrNotice {
    /// The bus event: `nostr.published` or `nostr.failed` with `relay`, `event_id`,
    /// `event_kind`, `info_hash`, `attempts` (and `error`) in its details.
    pub(crate) fn to_event(&self, at: i64) -> Event {
        match self {
            Self::Published {
                relay,
                event_id,
                kind,
                info_hash,
                attempts,
            } => {
                let mut e = Event::new(crate::events::kind::NOSTR_PUBLISHED, at);
                e.details = serde_json::json!({ "relay": relay, "event_id": event_id,
                    "event_kind": kind, "info_hash": info_hash, "attempts": attempts });
                e
            }
            Self::Failed {
                relay,
                event_id,
                kind,
                info_hash,
                attempts,
                error,
            } => {
                let mut e = Event::new(crate::events::kind::NOSTR_FAILED, at);
                e.details = serde_json::json!({ "relay": relay, "event_id": event_id,
                    "event_kind": kind, "info_hash": info_hash, "attempts": attempts,
                    "error": error });
                e
            }
        }
    }
}

/// Counters of the publisher, exported on `/metrics` (`seednode_nostr_*`).
#[derive(Debug, Default)]
pub(crate) struct NostrStats {
    /// Rows a relay accepted (or had already).
    pub(crate) published: AtomicU64,
    /// Rows given up on.
    pub(crate) failed: AtomicU64,
    /// Failed attempts (each is retried or given up on).
    pub(crate) attempts_failed: AtomicU64,
    /// Relay messages that did not parse (garbage, wrong shapes).
    pub(crate) bad_messages: AtomicU64,
    /// Jobs dropped because the channel was full ([`super::MAX_QUEUED_NOSTR_JOBS`]).
    pub(crate) jobs_dropped: AtomicU64,
}

impl NostrStats {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text of these counters, `up` saying whether the thread runs.
    pub(crate) fn render(&self, up: bool) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "# HELP seednode_nostr_publisher_up Whether the Nostr publisher thread runs.\n\
             # TYPE seednode_nostr_publisher_up gauge\nseednode_nostr_publisher_up {}\n\
             # HELP seednode_nostr_published_total Events a relay accepted (per relay).\n\
             # TYPE seednode_nostr_published_total counter\nseednode_nostr_published_total {}\n\
             # HELP seednode_nostr_failed_total Events given up on (per relay).\n\
             # TYPE seednode_nostr_failed_total counter\nseednode_nostr_failed_total {}\n\
             # HELP seednode_nostr_attempts_failed_total Failed attempts to send an event to a relay.\n\
             # TYPE seednode_nostr_attempts_failed_total counter\nseednode_nostr_attempts_failed_total {}\n\
             # HELP seednode_nostr_bad_relay_messages_total Relay messages that did not parse.\n\
             # TYPE seednode_nostr_bad_relay_messages_total counter\nseednode_nostr_bad_relay_messages_total {}\n\
             # HELP seednode_nostr_jobs_dropped_total Added or removed torrents not handed to the publisher (its channel was full).\n\
             # TYPE seednode_nostr_jobs_dropped_total counter\nseednode_nostr_jobs_dropped_total {}",
            u8::from(up),
            get(&self.published),
            get(&self.failed),
            get(&self.attempts_failed),
            get(&self.bad_messages),
            get(&self.jobs_dropped),
        )
    }
}

/// Stop and wake flags shared with the thread.
#[derive(Debug, Default)]
pub(crate) struct Control {
    flags: Mutex<(bool, bool)>, // (stop, kick)
    cv: Condvar,
}

impl Control {
    fn lock(&self) -> std::sync::MutexGuard<'_, (bool, bool)> {
        self.flags.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes the thread (a job was queued).
    pub(crate) fn kick(&self) {
        self.lock().1 = true;
        self.cv.notify_all();
    }

    fn stopped(&self) -> bool {
        self.lock().0
    }

    /// Sleeps up to `d`, or until kicked or stopped; returns whether to stop.
    fn sleep(&self, d: Duration) -> bool {
        let mut g = self.lock();
        if !g.0 && !g.1 {
            g = self
                .cv
                .wait_timeout_while(g, d, |f| !f.0 && !f.1)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        g.1 = false;
        g.0
    }
}

/// The running publisher thread.
#[derive(Debug)]
pub(crate) struct Publisher {
    control: Arc<Control>,
    stats: Arc<NostrStats>,
    jobs: SyncSender<Job>,
    done: Receiver<()>,
    handle: Option<JoinHandle<()>>,
}

impl Publisher {
    /// Opens a catalog connection and starts the thread; notices go to `notices`, then
    /// `waker` (the loop's) is woken.
    ///
    /// # Errors
    /// The catalog cannot be opened; the thread cannot be spawned.
    pub(crate) fn start(
        mut config: PublisherConfig,
        keys: Keys,
        notices: SyncSender<NostrNotice>,
        waker: Option<Arc<Waker>>,
    ) -> Result<Self, String> {
        config.settings.retry_period = config.settings.retry_period.min(MAX_NOSTR_RETRY_PERIOD);
        config.settings.timeout = config
            .settings
            .timeout
            .clamp(Duration::from_millis(100), MAX_NOSTR_TIMEOUT);
        let catalog =
            Catalog::open(&config.catalog).map_err(|e| format!("nostr publisher: {e}"))?;
        let control = Arc::new(Control::default());
        let (jobs_tx, jobs_rx) = mpsc::sync_channel(super::MAX_QUEUED_NOSTR_JOBS);
        let (done_tx, done) = mpsc::sync_channel(1);
        let thread_control = Arc::clone(&control);
        let stats = Arc::new(NostrStats::default());
        let thread_stats = Arc::clone(&stats);
        let handle = thread::Builder::new()
            .name("nostr-publisher".into())
            .spawn(move || {
                let mut p = Thread {
                    tls: tls_config(),
                    config,
                    keys,
                    catalog,
                    jobs: jobs_rx,
                    notices,
                    waker,
                    rng: SystemRandom::new(),
                    stats: thread_stats,
                };
                p.run(&thread_control);
                let _ = done_tx.send(());
            })
            .map_err(|e| format!("nostr publisher thread: {e}"))?;
        Ok(Self {
            control,
            stats,
            jobs: jobs_tx,
            done,
            handle: Some(handle),
        })
    }

    /// The bus subscriber feeding this publisher.
    pub(crate) fn subscriber(&self) -> super::NostrSubscriber {
        super::NostrSubscriber::new(
            self.jobs.clone(),
            Arc::clone(&self.control),
            Arc::clone(&self.stats),
        )
    }

    /// The `/metrics` text of the publisher.
    pub(crate) fn metrics(&self) -> String {
        let up = self.handle.as_ref().is_some_and(|h| !h.is_finished());
        self.stats.render(up)
    }

    /// Asks the thread to stop and waits for it at most `timeout`; returns whether it ended
    /// (a relay session in flight is not interrupted; its rows stay pending).
    pub(crate) fn stop(mut self, timeout: Duration) -> bool {
        self.signal_stop();
        let ended = self.done.recv_timeout(timeout).is_ok();
        if ended && let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        ended
    }

    fn signal_stop(&self) {
        self.control.lock().0 = true;
        self.control.cv.notify_all();
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.signal_stop();
    }
}

/// The channel the publisher reports on: bounded ([`MAX_QUEUED_NOSTR_NOTICES`]).
pub(crate) fn notice_channel() -> (SyncSender<NostrNotice>, Receiver<NostrNotice>) {
    mpsc::sync_channel(MAX_QUEUED_NOSTR_NOTICES)
}

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AttemptError {
    /// Connecting, the handshake, a read or write failed, or the session ran out of time or
    /// bytes: the relay's remaining rows are retried too.
    #[error("{0}")]
    Session(String),
    /// The relay answered `OK false` with this message.
    #[error("refused: {0}")]
    Refused(String),
    /// [`MAX_MESSAGES_PER_OK`] messages came without the `OK`.
    #[error("no OK within {MAX_MESSAGES_PER_OK} messages")]
    Flooded,
}

impl AttemptError {
    /// Whether retrying may help: every failure but a refusal as `invalid:` or `blocked:`
    /// (NIP-01 prefixes for "this event will never be accepted").
    fn is_transient(&self) -> bool {
        match self {
            Self::Refused(m) => !(m.starts_with("invalid:") || m.starts_with("blocked:")),
            Self::Session(_) | Self::Flooded => true,
        }
    }

    fn ends_session(&self) -> bool {
        matches!(self, Self::Session(_) | Self::Flooded)
    }
}

fn session_error(e: impl std::fmt::Display) -> AttemptError {
    let s = e.to_string();
    AttemptError::Session(s.chars().take(200).collect())
}

/// The thread's state.
struct Thread {
    config: PublisherConfig,
    keys: Keys,
    catalog: Catalog,
    jobs: Receiver<Job>,
    notices: SyncSender<NostrNotice>,
    waker: Option<Arc<Waker>>,
    rng: SystemRandom,
    tls: Arc<rustls::ClientConfig>,
    stats: Arc<NostrStats>,
}

impl Thread {
    /// Queues the announcement of every seeding torrent added since announcing was first
    /// enabled on this catalog (the setting [`SINCE_SETTING`]) that has no queued events: a
    /// job lost in the channel when the node stopped (or past [`super::MAX_QUEUED_NOSTR_JOBS`])
    /// is made good at the next start. Torrents older than that are never announced.
    fn reconcile(&mut self) -> Result<usize, CatalogError> {
        let now = unix_ms().div_euclid(1000);
        let since = match self.catalog.get_setting(SINCE_SETTING)? {
            Some(v) => v.parse::<i64>().unwrap_or(now),
            None => {
                self.catalog.set_setting(SINCE_SETTING, &now.to_string())?;
                now
            }
        };
        let mut queued = 0;
        for t in self.catalog.list_torrents()? {
            if t.added_at < since || t.state != seednode_storage::catalog::State::Seeding {
                continue;
            }
            let ih = t.swarm_hash().to_hex();
            if self.catalog.nostr_announced(&ih)? {
                continue;
            }
            if let Err(e) = self.handle_job(&Job::Announce(ih.clone())) {
                tracing::warn!(info_hash = %ih, error = %e, "Nostr announcement not queued");
            } else {
                queued += 1;
            }
        }
        Ok(queued)
    }

    fn run(&mut self, control: &Control) {
        match self.reconcile() {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                torrents = n,
                "Nostr announcements queued for torrents added while the publisher was away"
            ),
            Err(e) => tracing::warn!(error = %e, "Nostr: the catalog could not be reconciled"),
        }
        while !control.stopped() {
            for job in self
                .jobs
                .try_iter()
                .take(MAX_JOBS_PER_TURN)
                .collect::<Vec<_>>()
            {
                if let Err(e) = self.handle_job(&job) {
                    tracing::warn!(?job, error = %e, "Nostr job failed");
                }
            }
            let now_ms = unix_ms();
            let due = match self.catalog.due_nostr(now_ms, DUE_BATCH) {
                Ok(due) => due,
                Err(e) => {
                    tracing::warn!(error = %e, "Nostr queue unreadable");
                    if control.sleep(IDLE_POLL_INTERVAL) {
                        return;
                    }
                    continue;
                }
            };
            if due.is_empty() {
                let next = self.catalog.next_nostr_due_ms().ok().flatten();
                let wait = next.map_or(IDLE_POLL_INTERVAL, |at| {
                    Duration::from_millis(u64::try_from(at.saturating_sub(unix_ms())).unwrap_or(0))
                        .min(IDLE_POLL_INTERVAL)
                });
                if control.sleep(wait) {
                    return;
                }
                continue;
            }
            let mut relays: Vec<(String, Vec<NostrRow>)> = Vec::new();
            for row in due {
                match relays.iter_mut().find(|(r, _)| *r == row.relay) {
                    Some((_, rows)) => rows.push(row),
                    None => relays.push((row.relay.clone(), vec![row])),
                }
            }
            for (relay, rows) in relays {
                if control.stopped() {
                    return;
                }
                self.relay_turn(&relay, &rows);
            }
        }
    }

    /// Turns a job into queued rows.
    fn handle_job(&mut self, job: &Job) -> Result<(), String> {
        let now = unix_ms().div_euclid(1000);
        let created_at = u64::try_from(now).unwrap_or(0);
        let (info_hash, events) = match job {
            Job::Announce(ih) => {
                if self
                    .catalog
                    .nostr_announced(ih)
                    .map_err(|e| e.to_string())?
                {
                    return Ok(());
                }
                let Some(facts) = self.facts(ih)? else {
                    return Ok(()); // removed meanwhile
                };
                let a = super::announcement(&facts, &self.config.settings, &self.keys, created_at)
                    .map_err(|e| e.to_string())?;
                for s in &a.skipped {
                    tracing::info!(info_hash = %ih, file = %s.escape_debug(), "no NIP-94 event for this file");
                }
                (ih, a.events)
            }
            Job::Remove(ih) => {
                let announced = self
                    .catalog
                    .nostr_events_of(ih)
                    .map_err(|e| e.to_string())?;
                self.catalog
                    .cancel_nostr_pending(ih, now)
                    .map_err(|e| e.to_string())?;
                if announced.is_empty() {
                    return Ok(());
                }
                let d = super::deletion(&announced, &self.keys, created_at)
                    .map_err(|e| e.to_string())?;
                (ih, vec![d])
            }
        };
        let mut rows = Vec::new();
        for event in &events {
            for relay in &self.config.settings.relays {
                rows.push(NewNostrEvent {
                    info_hash: info_hash.clone(),
                    relay: relay.clone(),
                    event_id: event.id.to_hex(),
                    kind: event.kind.as_u16(),
                    event: event.try_as_json().map_err(|e| e.to_string())?,
                });
            }
        }
        if !self
            .catalog
            .enqueue_nostr(&rows, unix_ms())
            .map_err(|e| e.to_string())?
        {
            tracing::warn!(info_hash = %info_hash, events = rows.len(), "Nostr queue full: events not queued");
        }
        Ok(())
    }

    /// What the catalog knows of the torrent with swarm hash `ih` (hex); `None` if gone.
    fn facts(&self, ih: &str) -> Result<Option<TorrentFacts>, String> {
        let mut raw = [0u8; 20];
        for (i, b) in raw.iter_mut().enumerate() {
            *b = u8::from_str_radix(ih.get(2 * i..2 * i + 2).unwrap_or("zz"), 16)
                .map_err(|_| "bad info-hash".to_owned())?;
        }
        let Some(t) = self.catalog.by_info_hash(&raw).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let files = self.catalog.files(t.id).map_err(|e| e.to_string())?;
        let metainfo = self.catalog.metainfo(t.id).map_err(|e| e.to_string())?;
        let m = seednode_wire::metainfo::Metainfo::from_bytes(&metainfo)
            .map_err(|e| format!("stored metainfo: {e}"))?;
        let mut trackers: Vec<String> = Vec::new();
        for url in m.announce.iter().chain(m.announce_list.iter().flatten()) {
            if !trackers.contains(url) {
                trackers.push(url.clone());
            }
        }
        let mut magnet = seednode_wire::magnet::MagnetLink::for_metainfo(&m);
        magnet.trackers.truncate(super::MAX_TRACKER_TAGS);
        Ok(Some(TorrentFacts {
            swarm_hex: t.swarm_hash().to_hex(),
            v1_hex: t.info_hash_v1.map(|h| h.to_hex()),
            name: t.name.clone(),
            files: files
                .into_iter()
                .filter(|f| !f.padding)
                .map(|f| FileFacts {
                    path: f.path,
                    length: f.length,
                    sha256: f.sha256,
                })
                .collect(),
            trackers,
            magnet: magnet.to_uri(),
        }))
    }

    /// One session with `relay` for `rows`; records every row's outcome.
    fn relay_turn(&mut self, relay: &str, rows: &[NostrRow]) {
        let timeout = self.config.settings.timeout;
        let deadline = Instant::now() + timeout * SESSION_TIMEOUT_FACTOR;
        let mut session = match connect(relay, timeout, deadline, &self.tls) {
            Ok(ws) => Some(ws),
            Err(e) => {
                tracing::debug!(relay = %relay.escape_debug(), error = %e, "relay unreachable");
                for row in rows {
                    self.record(row, Err(AttemptError::Session(e.to_string())));
                }
                None
            }
        };
        let mut authed = false;
        for row in rows {
            let outcome = match session.as_mut() {
                Some(ws) => self.publish(ws, relay, row, &mut authed),
                None => continue,
            };
            let end = outcome.as_ref().is_err_and(AttemptError::ends_session);
            if let Err(e) = &outcome {
                tracing::debug!(relay = %relay.escape_debug(), event_id = %row.event_id, error = %e, "Nostr attempt failed");
            }
            self.record(row, outcome);
            if end {
                if let Some(mut ws) = session.take() {
                    let _ = ws.close(None);
                }
                // The relay's other rows wait for the next turn, untouched.
                break;
            }
        }
        if let Some(mut ws) = session {
            let _ = ws.close(None);
            let _ = ws.flush();
        }
    }

    /// Sends `row`'s event and waits for its `OK`, answering `AUTH` challenges.
    fn publish(
        &self,
        ws: &mut WebSocket<Stream>,
        relay: &str,
        row: &NostrRow,
        authed: &mut bool,
    ) -> Result<(), AttemptError> {
        let event = event_message(&row.event);
        ws.send(Message::text(event.clone()))
            .map_err(session_error)?;
        let mut resent = false;
        for _ in 0..MAX_MESSAGES_PER_OK {
            let text = match ws.read().map_err(session_error)? {
                Message::Text(t) => t,
                Message::Close(_) => return Err(AttemptError::Session("relay closed".into())),
                _ => continue, // pings are answered by tungstenite on the next write
            };
            let Ok(msg) = parse_relay_message(&text) else {
                // Garbage: counted, and against MAX_MESSAGES_PER_OK.
                NostrStats::bump(&self.stats.bad_messages);
                continue;
            };
            match msg {
                RelayMessage::Auth { challenge } => {
                    let now = u64::try_from(unix_ms().div_euclid(1000)).unwrap_or(0);
                    let auth = super::auth_event(relay, &challenge, &self.keys, now)
                        .map_err(session_error)?;
                    let json = auth.try_as_json().map_err(session_error)?;
                    ws.send(Message::text(auth_message(&json)))
                        .map_err(session_error)?;
                    *authed = true;
                }
                RelayMessage::Ok { ref event_id, .. }
                    if event_id == &row.event_id || event_id.is_empty() =>
                {
                    if msg.is_stored() {
                        return Ok(());
                    }
                    if msg.wants_auth() && *authed && !resent {
                        resent = true;
                        ws.send(Message::text(event.clone()))
                            .map_err(session_error)?;
                        continue;
                    }
                    let RelayMessage::Ok { message, .. } = msg else {
                        unreachable!()
                    };
                    return Err(AttemptError::Refused(message));
                }
                _ => {}
            }
        }
        Err(AttemptError::Flooded)
    }

    /// Records the outcome of an attempt at `row` and tells the loop of a final one.
    fn record(&mut self, row: &NostrRow, outcome: Result<(), AttemptError>) {
        let now_ms = unix_ms();
        let now = now_ms.div_euclid(1000);
        let attempts = row.attempts.saturating_add(1);
        let result = match outcome {
            Ok(()) => {
                NostrStats::bump(&self.stats.published);
                tracing::info!(relay = %row.relay.escape_debug(), event_id = %row.event_id, kind = row.kind, "Nostr event published");
                let r = self.catalog.mark_nostr_published(row.id, now);
                self.notify(NostrNotice::Published {
                    relay: row.relay.clone(),
                    event_id: row.event_id.clone(),
                    kind: row.kind,
                    info_hash: row.info_hash.clone(),
                    attempts,
                });
                r
            }
            Err(error) => {
                NostrStats::bump(&self.stats.attempts_failed);
                let period_ms = i64::try_from(self.config.settings.retry_period.as_millis())
                    .unwrap_or(i64::MAX);
                let deadline_ms = row
                    .created_at
                    .saturating_mul(1000)
                    .saturating_add(period_ms);
                if error.is_transient() && now_ms < deadline_ms {
                    let delay = backoff(attempts, self.config.backoff_base, BACKOFF_MAX, &self.rng);
                    let next = now_ms
                        .saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX))
                        .min(deadline_ms);
                    self.catalog
                        .mark_nostr_retry(row.id, next, &error.to_string())
                } else {
                    let error = error.to_string();
                    NostrStats::bump(&self.stats.failed);
                    tracing::warn!(relay = %row.relay.escape_debug(), event_id = %row.event_id, attempts, %error, "Nostr event given up");
                    let r = self.catalog.mark_nostr_failed(row.id, now, &error);
                    self.notify(NostrNotice::Failed {
                        relay: row.relay.clone(),
                        event_id: row.event_id.clone(),
                        kind: row.kind,
                        info_hash: row.info_hash.clone(),
                        attempts,
                        error,
                    });
                    r
                }
            }
        };
        if let Err(e) = result {
            log_catalog_error(&e);
        }
    }

    fn notify(&self, notice: NostrNotice) {
        match self.notices.try_send(notice) {
            Ok(()) => {
                if let Some(w) = &self.waker {
                    let _ = w.wake();
                }
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {}
        }
    }
}

fn log_catalog_error(e: &CatalogError) {
    tracing::warn!(error = %e, "Nostr queue not updated");
}

/// The TLS settings of `wss://` relays: Mozilla's roots (webpki), ring.
// ring's provider is deprecated in rustls 0.23.48 for lacking post-quantum key exchange; it is
// the one provider built in this tree (ureq uses it too), and announcements are public data.
#[allow(deprecated)]
fn tls_config() -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        let _ = roots.add(cert.clone());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports rustls' default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// The byte stream under the WebSocket: plain TCP or rustls over TCP, with the session's
/// deadline and read budget enforced on every read and write.
pub(crate) struct Stream {
    inner: Inner,
    deadline: Instant,
    timeout: Duration,
    read_left: usize,
}

enum Inner {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match &self.inner {
            Inner::Plain(s) => s,
            Inner::Tls(s) => &s.sock,
        }
    }

    /// Sets the socket timeouts to what is left of the session (at most the timeout); an
    /// error when the deadline has passed.
    fn arm(&self) -> io::Result<()> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "relay session deadline",
            ));
        }
        let t = Some(left.min(self.timeout));
        self.tcp().set_read_timeout(t)?;
        self.tcp().set_write_timeout(t)
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.arm()?;
        if self.read_left == 0 {
            return Err(io::Error::other("relay sent over the session's byte limit"));
        }
        let max = buf.len().min(self.read_left);
        let n = match &mut self.inner {
            Inner::Plain(s) => s.read(&mut buf[..max])?,
            Inner::Tls(s) => s.read(&mut buf[..max])?,
        };
        self.read_left -= n;
        Ok(n)
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.arm()?;
        match &mut self.inner {
            Inner::Plain(s) => s.write(buf),
            Inner::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.arm()?;
        match &mut self.inner {
            Inner::Plain(s) => s.flush(),
            Inner::Tls(s) => s.flush(),
        }
    }
}

/// Connects to `relay` and completes the WebSocket handshake, all before `deadline`.
fn connect(
    relay: &str,
    timeout: Duration,
    deadline: Instant,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<WebSocket<Stream>, AttemptError> {
    let request = relay.into_client_request().map_err(session_error)?;
    let uri = request.uri().clone();
    let secure = match uri.scheme_str() {
        Some("ws") => false,
        Some("wss") => true,
        _ => return Err(AttemptError::Session("not a ws:// or wss:// URL".into())),
    };
    let host = uri
        .host()
        .ok_or_else(|| AttemptError::Session("no host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    // A name is resolved by the system (no timeout of its own; the thread is the
    // publisher's, never the event loop's).
    let addrs: Vec<SocketAddr> = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(session_error)?
        .take(MAX_RELAY_ADDRS)
        .collect();
    let mut last = AttemptError::Session("no address".into());
    let mut tcp = None;
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&addr, left.min(timeout)) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = session_error(format!("connect {addr}: {e}")),
        }
    }
    let tcp = tcp.ok_or(last)?;
    let _ = tcp.set_nodelay(true);
    let inner = if secure {
        let name = rustls::pki_types::ServerName::try_from(host).map_err(session_error)?;
        let conn = rustls::ClientConnection::new(Arc::clone(tls), name).map_err(session_error)?;
        Inner::Tls(Box::new(rustls::StreamOwned::new(conn, tcp)))
    } else {
        Inner::Plain(tcp)
    };
    let stream = Stream {
        inner,
        deadline,
        timeout,
        read_left: MAX_SESSION_READ_LEN,
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_RELAY_MESSAGE_LEN))
        .max_frame_size(Some(MAX_RELAY_MESSAGE_LEN));
    match tungstenite::client::client_with_config(request, stream, Some(config)) {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::HandshakeError::Failure(e)) => {
            Err(session_error(format!("handshake: {e}")))
        }
        Err(tungstenite::HandshakeError::Interrupted(_)) => {
            Err(AttemptError::Session("handshake: timed out".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use nostr::prelude::Event as NostrEvent;

    use super::*;

    /// A publisher thread's state on a temporary catalog (never started).
    fn thread_state(dir: &std::path::Path) -> Thread {
        let catalog_path = dir.join("catalog.sqlite");
        let (_jobs_tx, jobs) = mpsc::sync_channel(1);
        let (notices, _rx) = notice_channel();
        Thread {
            config: PublisherConfig {
                catalog: catalog_path.clone(),
                settings: NostrSettings {
                    relays: Vec::new(),
                    public_url: None,
                    topics: Vec::new(),
                    retry_period: Duration::from_secs(60),
                    timeout: Duration::from_secs(5),
                },
                backoff_base: BACKOFF_BASE,
            },
            keys: Keys::generate(),
            catalog: Catalog::open(&catalog_path).unwrap(),
            jobs,
            notices,
            waker: None,
            rng: SystemRandom::new(),
            tls: tls_config(),
            stats: Arc::default(),
        }
    }

    fn row(event: &NostrEvent) -> NostrRow {
        NostrRow {
            id: 1,
            info_hash: "ab".repeat(20),
            relay: String::new(),
            event_id: event.id.to_hex(),
            kind: event.kind.as_u16(),
            event: event.try_as_json().unwrap(),
            created_at: 0,
            attempts: 0,
            state: "pending".into(),
            last_error: None,
        }
    }

    /// A one-connection relay on 127.0.0.1 running `script` on the accepted WebSocket.
    fn fake_relay(
        script: impl FnOnce(&mut WebSocket<TcpStream>) + Send + 'static,
    ) -> (String, JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("ws://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let handle = thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut ws = tungstenite::accept(s).unwrap();
            script(&mut ws);
        });
        (url, handle)
    }

    fn read_text(ws: &mut WebSocket<TcpStream>) -> serde_json::Value {
        loop {
            if let Message::Text(t) = ws.read().unwrap() {
                return serde_json::from_str(&t).unwrap();
            }
        }
    }

    fn publish_to(url: &str, t: &Thread, r: &NostrRow) -> Result<(), AttemptError> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut ws = connect(url, Duration::from_secs(5), deadline, &t.tls)?;
        let mut authed = false;
        t.publish(&mut ws, url, r, &mut authed)
    }

    fn text_note(keys: &Keys) -> NostrEvent {
        super::super::sign(
            nostr::prelude::EventBuilder::new(nostr::prelude::Kind::from(1u16), "x"),
            keys,
            1,
        )
        .unwrap()
    }

    #[test]
    fn answers_the_nip42_challenge_and_sends_the_refused_event_again() {
        let dir = tempfile::tempdir().unwrap();
        let t = thread_state(dir.path());
        let event = text_note(&t.keys);
        let id = event.id.to_hex();
        let pubkey = t.keys.public_key().to_hex();
        let (url, relay) = fake_relay(move |ws| {
            ws.send(Message::text(r#"["AUTH","chal-1"]"#)).unwrap();
            let first = read_text(ws);
            assert_eq!(first[0], "EVENT");
            assert_eq!(first[1]["id"], id.as_str());
            // The PyPI relay's refusal: an empty id.
            ws.send(Message::text(r#"["OK","",false,"restricted: auth first"]"#))
                .unwrap();
            let auth = read_text(ws);
            assert_eq!(auth[0], "AUTH");
            let auth = NostrEvent::from_json(auth[1].to_string()).unwrap();
            auth.verify().unwrap();
            assert_eq!(auth.kind.as_u16(), super::super::KIND_CLIENT_AUTH);
            assert_eq!(auth.pubkey.to_hex(), pubkey);
            let tags: Vec<Vec<String>> = auth.tags.iter().map(|t| t.as_slice().to_vec()).collect();
            assert!(tags.contains(&vec!["challenge".to_owned(), "chal-1".to_owned()]));
            assert!(tags.iter().any(|t| t[0] == "relay"));
            let again = read_text(ws);
            assert_eq!(again[0], "EVENT");
            ws.send(Message::text(format!(r#"["OK","{id}",true,""]"#)))
                .unwrap();
        });
        publish_to(&url, &t, &row(&event)).unwrap();
        relay.join().unwrap();
    }

    #[test]
    fn a_duplicate_is_published_and_invalid_is_final() {
        let dir = tempfile::tempdir().unwrap();
        let t = thread_state(dir.path());
        let event = text_note(&t.keys);
        let id = event.id.to_hex();
        let (url, relay) = fake_relay(move |ws| {
            let _ = read_text(ws);
            ws.send(Message::text(format!(
                r#"["OK","{id}",false,"duplicate: have it"]"#
            )))
            .unwrap();
        });
        publish_to(&url, &t, &row(&event)).unwrap();
        relay.join().unwrap();
        let id = event.id.to_hex();
        let (url, relay) = fake_relay(move |ws| {
            let _ = read_text(ws);
            ws.send(Message::text(format!(
                r#"["OK","{id}",false,"invalid: bad"]"#
            )))
            .unwrap();
        });
        let err = publish_to(&url, &t, &row(&event)).unwrap_err();
        assert!(matches!(err, AttemptError::Refused(_)) && !err.is_transient());
        relay.join().unwrap();
    }

    #[test]
    fn a_flood_without_ok_ends_after_the_message_bound() {
        let dir = tempfile::tempdir().unwrap();
        let t = thread_state(dir.path());
        let event = text_note(&t.keys);
        let (url, relay) = fake_relay(move |ws| {
            let _ = read_text(ws);
            // Answers to other events, notices and garbage: never the OK awaited.
            for i in 0..MAX_MESSAGES_PER_OK * 4 {
                let m = match i % 3 {
                    0 => format!(r#"["OK","{}",true,""]"#, "0".repeat(64)),
                    1 => r#"["NOTICE","flood"]"#.to_owned(),
                    _ => "garbage".to_owned(),
                };
                if ws.send(Message::text(m)).is_err() {
                    return;
                }
            }
        });
        let err = publish_to(&url, &t, &row(&event)).unwrap_err();
        assert!(matches!(err, AttemptError::Flooded), "{err}");
        relay.join().unwrap();
    }

    #[test]
    fn an_oversized_message_ends_the_session() {
        let dir = tempfile::tempdir().unwrap();
        let t = thread_state(dir.path());
        let event = text_note(&t.keys);
        let (url, relay) = fake_relay(move |ws| {
            let _ = read_text(ws);
            let big = format!(r#"["NOTICE","{}"]"#, "a".repeat(MAX_RELAY_MESSAGE_LEN));
            let _ = ws.send(Message::text(big));
        });
        let err = publish_to(&url, &t, &row(&event)).unwrap_err();
        assert!(matches!(err, AttemptError::Session(_)), "{err}");
        relay.join().unwrap();
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let rng = SystemRandom::new();
        let base = Duration::from_secs(2);
        for attempts in 1..40 {
            let d = backoff(attempts, base, BACKOFF_MAX, &rng);
            let full = base
                .saturating_mul(1 << attempts.saturating_sub(1).min(30))
                .min(BACKOFF_MAX);
            assert!(d >= full / 2 && d <= full, "{attempts}: {d:?}");
        }
    }

    #[test]
    fn refusals_that_never_change_are_not_retried() {
        assert!(!AttemptError::Refused("invalid: bad sig".into()).is_transient());
        assert!(!AttemptError::Refused("blocked: no".into()).is_transient());
        assert!(AttemptError::Refused("rate-limited: slow".into()).is_transient());
        assert!(AttemptError::Flooded.is_transient());
    }
}
