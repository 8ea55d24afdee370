//! The webhook sender: one thread, off the event loop, with a catalog connection of its own
//! (WAL: it never blocks the catalog worker's writes for longer than its own short commits).
//!
//! Its loop: take the due outbox rows (`Catalog::due_webhooks`: the oldest pending row of each
//! endpoint whose time has come), deliver each, record the outcome, repeat; with nothing due,
//! sleep until the next row is due, [`SENDER_IDLE_POLL_INTERVAL`] at most, or until
//! [`WebhookSender::wake`] / [`WebhookSender::stop`].
//!
//! One delivery: the URL is checked and its host resolved and checked again ([`super::ssrf`];
//! a refusal fails the row at once), the address is pinned, the body sealed when the endpoint
//! has a recipient key ([`super::seal`]) and signed with every secret ([`super::sign`]), then
//! `POST`ed with [`DEFAULT_WEBHOOK_CONNECT_TIMEOUT`] and [`DEFAULT_WEBHOOK_REQUEST_TIMEOUT`],
//! redirects not followed, the response head capped at [`MAX_WEBHOOK_RESPONSE_HEAD_LEN`] and at
//! most [`MAX_WEBHOOK_RESPONSE_LEN`] bytes of body read (and discarded). A 2xx answer delivers
//! the row; anything else (another status, a 3xx, a timeout, a refused connection, a DNS
//! failure) is retried after `backoff_base × 2^(attempts−1)`, capped at `backoff_max`, with
//! "equal jitter" (half fixed, half random), until `retry_period` after the event was queued;
//! the last attempt is made at that deadline. A row is always tried at least once, even when
//! it waited behind an earlier row for longer than its period. A row given up on is marked
//! failed and reported as a [`WebhookNotice`].

use crate::daemon::unix_ms;
use std::io::Read as _;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use mio::Waker;
use ring::rand::{SecureRandom, SystemRandom};
use seednode_storage::catalog::{Catalog, CatalogError, OutboxRow};
use ureq::Agent;
use ureq::config::Config;
use ureq::unversioned::transport::DefaultConnector;

use super::seal::{self, SealError};
use super::sign::{self, SecretError, WebhookSecret};
use super::ssrf::{self, Pin, PinnedResolver, ResolveFn, SsrfError};
use super::{Event, WEBHOOK_FAILED};

/// TCP connect timeout of one delivery (SECURITY §2.7 "Webhooks": 5 s connect).
pub(crate) const DEFAULT_WEBHOOK_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Whole-request timeout of one delivery: connect, TLS, request, response head and the body
/// read (SECURITY §2.7: 10 s total). Past it the attempt fails and is retried.
pub(crate) const DEFAULT_WEBHOOK_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest response head accepted, bytes; a larger one fails the attempt.
pub(crate) const MAX_WEBHOOK_RESPONSE_HEAD_LEN: usize = 16 * 1024;

/// Response body bytes read at most (then the connection is dropped): the status is all that
/// matters (SECURITY §2.7: response read ≤ 64 KiB).
pub(crate) const MAX_WEBHOOK_RESPONSE_LEN: u64 = 64 * 1024;

/// First retry delay (then doubled per attempt).
pub(crate) const DEFAULT_WEBHOOK_BACKOFF_BASE: Duration = Duration::from_secs(5);

/// Longest delay between two attempts.
pub(crate) const DEFAULT_WEBHOOK_BACKOFF_MAX: Duration = Duration::from_secs(3600);

/// How long after an event was queued its delivery is retried, by default (a day: a receiver
/// down overnight still gets everything). Tunable up to [`MAX_WEBHOOK_RETRY_PERIOD`].
pub(crate) const DEFAULT_WEBHOOK_RETRY_PERIOD: Duration = Duration::from_secs(24 * 3600);

/// Longest retry period accepted (a week); a larger configured value is clamped to it.
pub(crate) const MAX_WEBHOOK_RETRY_PERIOD: Duration = Duration::from_secs(7 * 24 * 3600);

/// Rows taken per turn of the sender's loop (at most one per endpoint is due at a time).
pub(crate) const WEBHOOK_DUE_BATCH: usize = 16;

/// Longest sleep with nothing due: also how soon rows enqueued by another process (a
/// `seednode webhook test` while the node runs) are noticed without a wake.
pub(crate) const SENDER_IDLE_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Notices waiting for the loop at most ([`notice_channel`]); past it they are dropped and
/// counted (the rows stay failed in the catalog; only the bus event is lost).
pub(crate) const MAX_QUEUED_WEBHOOK_NOTICES: usize = 256;

/// The sender's settings.
#[derive(Debug, Clone)]
pub(crate) struct SenderConfig {
    /// The catalog file (opened again by the thread: a connection of its own).
    pub(crate) catalog: PathBuf,
    /// [`DEFAULT_WEBHOOK_CONNECT_TIMEOUT`].
    pub(crate) connect_timeout: Duration,
    /// [`DEFAULT_WEBHOOK_REQUEST_TIMEOUT`].
    pub(crate) request_timeout: Duration,
    /// [`DEFAULT_WEBHOOK_BACKOFF_BASE`].
    pub(crate) backoff_base: Duration,
    /// [`DEFAULT_WEBHOOK_BACKOFF_MAX`].
    pub(crate) backoff_max: Duration,
    /// [`DEFAULT_WEBHOOK_RETRY_PERIOD`], at most [`MAX_WEBHOOK_RETRY_PERIOD`].
    pub(crate) retry_period: Duration,
    /// [`SENDER_IDLE_POLL_INTERVAL`].
    pub(crate) idle_poll: Duration,
    /// The host resolver ([`ssrf::system_resolve`]; a table in tests).
    pub(crate) resolve: ResolveFn,
    /// Extra CA certificates trusted for `https://` endpoints, next to Mozilla's roots
    /// (`webhook_ca` in the config: a private receiver's CA).
    pub(crate) extra_roots: Vec<ureq::tls::Certificate<'static>>,
}

impl SenderConfig {
    /// The defaults above for the catalog at `catalog`.
    pub(crate) fn new(catalog: PathBuf) -> Self {
        Self {
            catalog,
            connect_timeout: DEFAULT_WEBHOOK_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_WEBHOOK_REQUEST_TIMEOUT,
            backoff_base: DEFAULT_WEBHOOK_BACKOFF_BASE,
            backoff_max: DEFAULT_WEBHOOK_BACKOFF_MAX,
            retry_period: DEFAULT_WEBHOOK_RETRY_PERIOD,
            idle_poll: SENDER_IDLE_POLL_INTERVAL,
            resolve: ssrf::system_resolve,
            extra_roots: Vec::new(),
        }
    }
}

/// What the sender tells the loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WebhookNotice {
    /// A row was given up on (retry period over, or refused by the SSRF rules).
    Failed {
        /// The endpoint.
        endpoint_id: i64,
        /// The `webhook-id`.
        event_id: String,
        /// The undelivered event's kind.
        event_kind: String,
        /// Attempts made.
        attempts: u32,
        /// The last attempt's error.
        error: String,
    },
    /// The sender's catalog failed (it retries after [`SenderConfig::idle_poll`]).
    CatalogFailed {
        /// The error.
        error: String,
    },
}

impl WebhookNotice {
    /// The bus event for this notice at `at` (seconds since the epoch): `webhook.failed` with
    /// `endpoint_id`, `event_id`, `event_kind`, `attempts`, `error` in its details; `None` for
    /// a catalog failure (logged by the loop instead).
    pub(crate) fn to_event(&self, at: i64) -> Option<Event> {
        match self {
            Self::Failed {
                endpoint_id,
                event_id,
                event_kind,
                attempts,
                error,
            } => {
                let mut e = Event::new(WEBHOOK_FAILED, at);
                e.details = serde_json::json!({
                    "endpoint_id": endpoint_id,
                    "event_id": event_id,
                    "event_kind": event_kind,
                    "attempts": attempts,
                    "error": error,
                });
                Some(e)
            }
            Self::CatalogFailed { .. } => None,
        }
    }
}

/// The channel the sender reports on: bounded ([`MAX_QUEUED_WEBHOOK_NOTICES`]).
pub(crate) fn notice_channel() -> (SyncSender<WebhookNotice>, Receiver<WebhookNotice>) {
    mpsc::sync_channel(MAX_QUEUED_WEBHOOK_NOTICES)
}

/// Why one delivery attempt failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DeliveryError {
    /// The URL or its address is refused ([`ssrf`]); permanent unless a DNS failure.
    #[error(transparent)]
    Ssrf(#[from] SsrfError),
    /// A stored secret does not parse (the catalog was edited by hand); permanent.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The body could not be sealed; permanent.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// The receiver answered with a redirect, which is not followed.
    #[error("HTTP {status}: redirect not followed")]
    Redirect {
        /// The status.
        status: u16,
    },
    /// The receiver answered with a status outside 2xx.
    #[error("HTTP {status}")]
    Status {
        /// The status.
        status: u16,
    },
    /// Connect, TLS, timeout, malformed HTTP.
    #[error("{0}")]
    Http(String),
}

impl DeliveryError {
    /// Whether retrying may help.
    pub(crate) const fn is_transient(&self) -> bool {
        match self {
            Self::Ssrf(e) => e.is_transient(),
            Self::Secret(_) | Self::Seal(_) => false,
            Self::Redirect { .. } | Self::Status { .. } | Self::Http(_) => true,
        }
    }
}

/// Stop and wake flags shared with the thread.
#[derive(Debug, Default)]
struct Control {
    flags: Mutex<Flags>,
    cv: Condvar,
}

#[derive(Debug, Default)]
struct Flags {
    stop: bool,
    kick: bool,
}

impl Control {
    fn lock(&self) -> std::sync::MutexGuard<'_, Flags> {
        self.flags.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stopped(&self) -> bool {
        self.lock().stop
    }

    /// Sleeps up to `d`, or until kicked or stopped; returns whether to stop.
    fn sleep(&self, d: Duration) -> bool {
        let mut g = self.lock();
        if !g.kick && !g.stop {
            g = self
                .cv
                .wait_timeout_while(g, d, |f| !f.kick && !f.stop)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        g.kick = false;
        g.stop
    }
}

/// The running sender thread.
#[derive(Debug)]
pub(crate) struct WebhookSender {
    control: Arc<Control>,
    done: Receiver<()>,
    handle: Option<JoinHandle<()>>,
}

impl WebhookSender {
    /// Opens a catalog connection and starts the thread; each notice goes to `notices`, then
    /// `waker` (the loop's) is woken.
    ///
    /// # Errors
    /// The catalog cannot be opened; the thread cannot be spawned.
    pub(crate) fn start(
        mut config: SenderConfig,
        notices: SyncSender<WebhookNotice>,
        waker: Option<Arc<Waker>>,
    ) -> Result<Self, StartError> {
        config.retry_period = config.retry_period.min(MAX_WEBHOOK_RETRY_PERIOD);
        let catalog = Catalog::open(&config.catalog)?;
        let control = Arc::new(Control::default());
        let (done_tx, done) = mpsc::sync_channel(1);
        let thread_control = Arc::clone(&control);
        let handle = std::thread::Builder::new()
            .name("webhook-sender".into())
            .spawn(move || {
                let mut sender = Sender::new(config, catalog, notices, waker);
                sender.run(&thread_control);
                let _ = done_tx.send(());
            })
            .map_err(StartError::Spawn)?;
        Ok(Self {
            control,
            done,
            handle: Some(handle),
        })
    }

    /// Something was enqueued: look for due rows now instead of at the next poll.
    pub(crate) fn wake(&self) {
        self.control.lock().kick = true;
        self.control.cv.notify_all();
    }

    /// Whether the thread is still running: `false` after [`Self::stop`] or a panic (which the
    /// engine should treat as fatal, like any dead worker: SECURITY R7).
    pub(crate) fn is_running(&self) -> bool {
        self.handle.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// Asks the thread to stop and waits for it at most `timeout`; returns whether it ended.
    /// A delivery in flight is not interrupted: when it outlasts `timeout` (at most the
    /// request timeout) the thread is left to end on its own; its row stays pending and is
    /// sent again after the next start.
    pub(crate) fn stop(mut self, timeout: Duration) -> bool {
        self.signal_stop();
        let ended = self.done.recv_timeout(timeout).is_ok();
        if ended && let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        ended
    }

    fn signal_stop(&self) {
        self.control.lock().stop = true;
        self.control.cv.notify_all();
    }
}

impl Drop for WebhookSender {
    fn drop(&mut self) {
        self.signal_stop();
    }
}

/// Why the sender did not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    /// Its catalog connection could not be opened.
    #[error("webhook sender: {0}")]
    Catalog(#[from] CatalogError),
    /// The thread could not be spawned.
    #[error("webhook sender thread: {0}")]
    Spawn(std::io::Error),
}

/// The thread's state.
struct Sender {
    config: SenderConfig,
    catalog: Catalog,
    notices: SyncSender<WebhookNotice>,
    waker: Option<Arc<Waker>>,
    agent: Agent,
    pin: Arc<Pin>,
    rng: SystemRandom,
    dropped_notices: u64,
}

impl Sender {
    fn new(
        config: SenderConfig,
        catalog: Catalog,
        notices: SyncSender<WebhookNotice>,
        waker: Option<Arc<Waker>>,
    ) -> Self {
        let pin = Arc::new(Pin::default());
        let agent = Agent::with_parts(
            agent_config(&config),
            DefaultConnector::default(),
            PinnedResolver(Arc::clone(&pin)),
        );
        Self {
            config,
            catalog,
            notices,
            waker,
            agent,
            pin,
            rng: SystemRandom::new(),
            dropped_notices: 0,
        }
    }

    fn run(&mut self, control: &Control) {
        while !control.stopped() {
            let now_ms = unix_ms();
            let due = match self.catalog.due_webhooks(now_ms, WEBHOOK_DUE_BATCH) {
                Ok(due) => due,
                Err(e) => {
                    self.notify(WebhookNotice::CatalogFailed {
                        error: e.to_string(),
                    });
                    if control.sleep(self.config.idle_poll) {
                        return;
                    }
                    continue;
                }
            };
            if due.is_empty() {
                let next = self.catalog.next_webhook_due_ms().ok().flatten();
                let wait = next.map_or(self.config.idle_poll, |at| {
                    Duration::from_millis(u64::try_from(at.saturating_sub(unix_ms())).unwrap_or(0))
                        .min(self.config.idle_poll)
                });
                if control.sleep(wait) {
                    return;
                }
                continue;
            }
            for row in due {
                if control.stopped() {
                    return;
                }
                let outcome = self.deliver(&row);
                if let Err(e) = self.record(&row, outcome) {
                    self.notify(WebhookNotice::CatalogFailed {
                        error: e.to_string(),
                    });
                }
            }
        }
    }

    /// One attempt at `row`.
    fn deliver(&self, row: &OutboxRow) -> Result<(), DeliveryError> {
        let secrets = row
            .secrets
            .iter()
            .map(|s| WebhookSecret::parse(s))
            .collect::<Result<Vec<_>, _>>()?;
        let target = ssrf::parse_url(&row.url)?;
        let addr = ssrf::resolve_checked(&target, row.allow_private, self.config.resolve)?;
        let body = match &row.recipient_key {
            Some(key) => seal::seal_body(key, row.body.as_bytes())?,
            None => row.body.clone(),
        };
        let timestamp = unix_ms().div_euclid(1000);
        let signature = sign::signature_header(&secrets, &row.event_id, timestamp, body.as_bytes());
        self.pin.set(&target.host, target.port, addr);
        let result = self
            .agent
            .post(&row.url)
            .header("content-type", "application/json")
            .header("webhook-id", &row.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .send(body.as_bytes());
        self.pin.clear();
        let mut response = result.map_err(|e| DeliveryError::Http(http_error(&e)))?;
        // Read (and discard) a bounded part of the body, so a receiver cannot hold the thread
        // with an endless answer (the request timeout bounds a slow one).
        let mut sink = [0u8; 4096];
        let mut reader = response
            .body_mut()
            .as_reader()
            .take(MAX_WEBHOOK_RESPONSE_LEN);
        while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
        let status = response.status().as_u16();
        match status {
            200..=299 => Ok(()),
            300..=399 => Err(DeliveryError::Redirect { status }),
            _ => Err(DeliveryError::Status { status }),
        }
    }

    /// Records the outcome of an attempt at `row`.
    fn record(
        &mut self,
        row: &OutboxRow,
        outcome: Result<(), DeliveryError>,
    ) -> Result<(), CatalogError> {
        let now_ms = unix_ms();
        let now = now_ms.div_euclid(1000);
        let error = match outcome {
            Ok(()) => {
                tracing::debug!(endpoint = row.endpoint_id, event_id = %row.event_id, "webhook delivered");
                self.catalog.mark_webhook_delivered(row.id, now)?;
                return Ok(());
            }
            Err(e) => e,
        };
        let attempts = row.attempts.saturating_add(1);
        let period_ms = i64::try_from(self.config.retry_period.as_millis()).unwrap_or(i64::MAX);
        let deadline_ms = row
            .created_at
            .saturating_mul(1000)
            .saturating_add(period_ms);
        if error.is_transient() && now_ms < deadline_ms {
            let delay = backoff(
                attempts,
                self.config.backoff_base,
                self.config.backoff_max,
                &self.rng,
            );
            let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
            let next = now_ms.saturating_add(delay_ms).min(deadline_ms);
            // The first failure of a row is worth a line (a refused certificate, a receiver
            // down); its retries are not.
            if attempts == 1 {
                tracing::warn!(endpoint = row.endpoint_id, url = %row.url, event_id = %row.event_id, %error, "webhook attempt failed; retrying");
            } else {
                tracing::debug!(endpoint = row.endpoint_id, event_id = %row.event_id, attempts, %error, "webhook attempt failed; retrying");
            }
            self.catalog
                .mark_webhook_retry(row.id, next, &error.to_string())?;
            return Ok(());
        }
        let error = error.to_string();
        tracing::warn!(endpoint = row.endpoint_id, event_id = %row.event_id, attempts, %error, "webhook given up");
        self.catalog.mark_webhook_failed(row.id, now, &error)?;
        self.notify(WebhookNotice::Failed {
            endpoint_id: row.endpoint_id,
            event_id: row.event_id.clone(),
            event_kind: row.kind.clone(),
            attempts,
            error,
        });
        Ok(())
    }

    fn notify(&mut self, notice: WebhookNotice) {
        match self.notices.try_send(notice) {
            Ok(()) => {
                if let Some(w) = &self.waker {
                    let _ = w.wake();
                }
            }
            Err(TrySendError::Full(_)) => self.dropped_notices += 1,
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// The error text of a failed request, without the URL (it may carry a token).
fn http_error(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(t) => format!("timeout ({t})"),
        // rustls reports a refused certificate as an I/O error carrying its own (`invalid peer
        // certificate: UnknownIssuer`): say so, it is the operator's clue (`webhook_ca`).
        ureq::Error::Io(io) => match io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            Some(tls) => format!("TLS: {tls}"),
            None => format!("io: {}", io.kind()),
        },
        ureq::Error::ConnectionFailed => "connection failed".into(),
        ureq::Error::Rustls(tls) => format!("TLS: {tls}"),
        ureq::Error::BadUri(_) => "bad URL".into(),
        other => {
            let s = other.to_string();
            s.chars().take(200).collect()
        }
    }
}

/// The delay before attempt `attempts + 1`: `base × 2^(attempts−1)` capped at `max`, then
/// "equal jitter" (half of it fixed, the other half uniformly random), so receivers coming
/// back up are not hit by every node at once. Shared by the Nostr publisher.
pub(crate) fn backoff(
    attempts: u32,
    base: Duration,
    max: Duration,
    rng: &dyn SecureRandom,
) -> Duration {
    let exp = attempts.saturating_sub(1).min(30);
    let full = base.saturating_mul(1u32 << exp).min(max);
    let half = full / 2;
    let mut r = [0u8; 4];
    let frac = if rng.fill(&mut r).is_ok() {
        f64::from(u32::from_le_bytes(r)) / f64::from(u32::MAX)
    } else {
        1.0
    };
    half + half.mul_f64(frac)
}

/// The client settings of every delivery (see the limits above).
fn agent_config(config: &SenderConfig) -> Config {
    Agent::config_builder()
        // The scheme rule is ssrf's (http:// to a LAN receiver with allow_private).
        .https_only(false)
        .http_status_as_error(false)
        // No proxy from the environment: the pinned address must be the receiver's.
        .proxy(None)
        .max_redirects(0)
        .max_response_header_size(MAX_WEBHOOK_RESPONSE_HEAD_LEN)
        // A pooled connection would bypass the pinning resolver.
        .max_idle_connections(0)
        .max_idle_connections_per_host(0)
        .timeout_connect(Some(config.connect_timeout))
        .timeout_global(Some(config.request_timeout))
        .user_agent(concat!("seednode/", env!("CARGO_PKG_VERSION")))
        // Certificates are checked (rustls, webpki): Mozilla's roots and `webhook_ca`.
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(crate::reactor::https::root_certs(&config.extra_roots))
                .build(),
        )
        .build()
}

#[cfg(test)]
mod tests;
