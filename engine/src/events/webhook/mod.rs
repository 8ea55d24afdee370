//! Webhooks (issue 13): every event an endpoint subscribed to becomes a JSON POST signed per the
//! Standard Webhooks specification, delivered from a durable outbox in the catalog.
//!
//! The pieces, from the event loop outwards:
//! 1. [`WebhookSubscriber`] (on the bus, on the loop's thread, never blocks) turns matching
//!    events into [`WebhookEvent`]s (a fresh `webhook-id`, the JSON body) in a bounded
//!    [`WebhookBuffer`]; the loop hands the buffer to the catalog worker once a turn, which
//!    commits them with `Catalog::enqueue_webhooks` (one transaction) and then calls
//!    [`sender::WebhookSender::wake`].
//! 2. [`sender::WebhookSender`], a thread with its own catalog connection, delivers due rows in
//!    order per endpoint, retries with backoff, and reports rows it gave up on as
//!    [`sender::WebhookNotice`]s, which the loop emits on the bus as `webhook.failed`
//!    ([`sender::WebhookNotice::to_event`]).
//! 3. [`sign`] (Standard Webhooks HMAC), [`ssrf`] (which addresses may be reached, pinning),
//!    [`seal`] (libsodium sealed boxes for endpoints with a recipient key).
//!
//! Registration (`seednode webhook add`, `[[webhook]]`) goes through [`check_endpoint`] before
//! `Catalog::add_webhook_endpoint`. `docs/webhooks.md` is the receiver's side.

pub(crate) mod seal;
pub(crate) mod sender;
pub(crate) mod sign;
pub(crate) mod ssrf;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Instant;

use ring::rand::{SecureRandom, SystemRandom};
use seednode_storage::catalog::{NewWebhookEndpoint, WebhookEvent};

use super::{Event, Subscriber};

/// The kind of the event reporting a webhook row given up on (the lead moves it to
/// `events::kind`).
pub(crate) const WEBHOOK_FAILED: &str = "webhook.failed";

/// Events waiting for the catalog worker, at most: past it the oldest are dropped and counted,
/// as the audit buffer does.
pub(crate) const MAX_BUFFERED_WEBHOOK_EVENTS: usize = 10_000;

/// Random bytes in a `webhook-id` (`msg_` and their hex): 128 bits, so ids never repeat across
/// restarts or a recreated catalog (a receiver dropping a "duplicate" would lose an event).
pub(crate) const EVENT_ID_RANDOM_LEN: usize = 16;

/// Why an endpoint was refused at registration.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EndpointError {
    /// The URL breaks the SSRF rules ([`ssrf`]).
    #[error(transparent)]
    Url(#[from] ssrf::SsrfError),
    /// A secret is malformed.
    #[error(transparent)]
    Secret(#[from] sign::SecretError),
    /// The recipient key is malformed.
    #[error(transparent)]
    Key(#[from] seal::SealError),
    /// No secret.
    #[error("a webhook needs at least one secret")]
    NoSecret,
}

/// The registration checks of an endpoint: every secret parses, the URL passes [`ssrf`]'s
/// rules (resolving its host: blocks on DNS, so the CLI or a worker calls it, not the loop).
///
/// # Errors
/// [`EndpointError`].
pub(crate) fn check_endpoint(e: &NewWebhookEndpoint) -> Result<(), EndpointError> {
    if e.secrets.is_empty() {
        return Err(EndpointError::NoSecret);
    }
    for s in &e.secrets {
        sign::WebhookSecret::parse(s)?;
    }
    ssrf::check_registration(&e.url, e.allow_private)?;
    Ok(())
}

/// A new `webhook-id`: `msg_` and [`EVENT_ID_RANDOM_LEN`] random bytes in hex.
///
/// # Errors
/// The RNG failed.
pub(crate) fn new_event_id(rng: &dyn SecureRandom) -> Result<String, ring::error::Unspecified> {
    let mut raw = [0u8; EVENT_ID_RANDOM_LEN];
    rng.fill(&mut raw)?;
    let mut id = String::with_capacity(4 + 2 * EVENT_ID_RANDOM_LEN);
    id.push_str("msg_");
    for b in raw {
        id.push_str(&format!("{b:02x}"));
    }
    Ok(id)
}

/// The JSON body of `event` (Standard Webhooks, "Payload structure"):
/// `{"type": kind, "timestamp": RFC 3339 UTC, "data": {...details, "actor", "source"}}`;
/// `actor` and `source` are set only when the event has them and override same-named details.
pub(crate) fn event_body(event: &Event) -> String {
    let mut data = match &event.details {
        serde_json::Value::Object(m) => m.clone(),
        other => {
            let mut m = serde_json::Map::new();
            m.insert("details".into(), other.clone());
            m
        }
    };
    if let Some(actor) = &event.actor {
        data.insert("actor".into(), actor.clone().into());
    }
    if let Some(source) = event.source {
        data.insert("source".into(), source.to_string().into());
    }
    serde_json::json!({
        "type": event.kind,
        "timestamp": rfc3339(event.at),
        "data": data,
    })
    .to_string()
}

/// `unix_secs` as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, UTC; Howard Hinnant's
/// `civil_from_days`).
pub(crate) fn rfc3339(unix_secs: i64) -> String {
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Webhook events waiting for the catalog worker, shared by the subscriber and the loop.
#[derive(Debug, Default)]
pub(crate) struct WebhookBuffer {
    pending: VecDeque<WebhookEvent>,
    dropped: u64,
}

impl WebhookBuffer {
    /// Takes every waiting event (for `Command::Webhooks`).
    pub(crate) fn take(&mut self) -> Vec<WebhookEvent> {
        self.pending.drain(..).collect()
    }

    /// Puts back events the worker could not take, ahead of newer ones.
    pub(crate) fn restore(&mut self, events: Vec<WebhookEvent>) {
        for e in events.into_iter().rev() {
            self.pending.push_front(e);
        }
        self.trim();
    }

    /// Events dropped since start because the buffer was full.
    pub(crate) const fn dropped(&self) -> u64 {
        self.dropped
    }

    fn trim(&mut self) {
        while self.pending.len() > MAX_BUFFERED_WEBHOOK_EVENTS {
            self.pending.pop_front();
            self.dropped += 1;
        }
    }
}

/// The bus side of a [`WebhookBuffer`]: buffers the events some endpoint wants.
pub(crate) struct WebhookSubscriber {
    buffer: Rc<RefCell<WebhookBuffer>>,
    /// The union of the endpoints' filters (`*`, kinds, prefixes ending in `.`); empty when no
    /// endpoint is registered, so nothing is buffered.
    kinds: Vec<String>,
    rng: SystemRandom,
}

impl WebhookSubscriber {
    /// A subscriber feeding `buffer`, wanting the kinds of `kinds` (see [`Self::set_kinds`]).
    pub(crate) fn new(buffer: Rc<RefCell<WebhookBuffer>>, kinds: Vec<String>) -> Self {
        Self {
            buffer,
            kinds,
            rng: SystemRandom::new(),
        }
    }

    /// Replaces the filter (after an endpoint was added or removed): the union of every
    /// endpoint's kinds. The catalog filters per endpoint again when it enqueues.
    #[cfg(test)]
    pub(crate) fn set_kinds(&mut self, kinds: Vec<String>) {
        self.kinds = kinds;
    }

    fn wants(&self, kind: &str) -> bool {
        self.kinds
            .iter()
            .any(|k| k == "*" || k == kind || (k.ends_with('.') && kind.starts_with(k.as_str())))
    }
}

impl Subscriber for WebhookSubscriber {
    fn notify(&mut self, _now: Instant, event: &Event) -> Option<Event> {
        // Already in the outbox, committed with the action it reports.
        if event.webhook_id.is_some() || !self.wants(event.kind) {
            return None;
        }
        let Ok(id) = new_event_id(&self.rng) else {
            self.buffer.borrow_mut().dropped += 1;
            return None;
        };
        let exclude_endpoint = if event.kind == WEBHOOK_FAILED {
            event
                .details
                .get("endpoint_id")
                .and_then(serde_json::Value::as_i64)
        } else {
            None
        };
        let mut buffer = self.buffer.borrow_mut();
        buffer.pending.push_back(WebhookEvent {
            id,
            kind: event.kind.to_owned(),
            body: event_body(event),
            created_at: event.at,
            exclude_endpoint,
        });
        buffer.trim();
        None
    }
}

#[cfg(test)]
pub(crate) mod testutil;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_614_265_330), "2021-02-25T15:02:10Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn bodies_follow_the_standard_webhooks_payload_shape() {
        let mut e = Event::new("torrent.added", 1_614_265_330);
        e.actor = Some("tok_1".into());
        e.source = Some("192.0.2.7".parse().expect("ip"));
        e.details = serde_json::json!({"info_hash": "ab", "actor": "spoofed"});
        let v: serde_json::Value = serde_json::from_str(&event_body(&e)).expect("json");
        assert_eq!(v["type"], "torrent.added");
        assert_eq!(v["timestamp"], "2021-02-25T15:02:10Z");
        assert_eq!(v["data"]["info_hash"], "ab");
        assert_eq!(v["data"]["actor"], "tok_1");
        assert_eq!(v["data"]["source"], "192.0.2.7");
    }

    #[test]
    fn the_subscriber_buffers_wanted_events_with_fresh_ids() {
        let buffer = Rc::new(RefCell::new(WebhookBuffer::default()));
        let mut sub = WebhookSubscriber::new(buffer.clone(), vec!["torrent.".into()]);
        let now = Instant::now();
        sub.notify(now, &Event::new("torrent.added", 1));
        sub.notify(now, &Event::new("auth.oauth.failed", 1));
        sub.notify(now, &Event::new("torrent.removed", 1));
        let mut failed = Event::new(WEBHOOK_FAILED, 2);
        failed.details = serde_json::json!({"endpoint_id": 7});
        sub.set_kinds(vec!["*".into()]);
        sub.notify(now, &failed);
        let got = buffer.borrow_mut().take();
        assert_eq!(
            got.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
            ["torrent.added", "torrent.removed", WEBHOOK_FAILED]
        );
        assert_ne!(got[0].id, got[1].id);
        assert!(got[0].id.starts_with("msg_") && got[0].id.len() == 4 + 32);
        assert_eq!(got[2].exclude_endpoint, Some(7));
        buffer.borrow_mut().restore(got);
        assert_eq!(buffer.borrow().pending.len(), 3);
        buffer.borrow_mut().take();
        sub.set_kinds(vec![]);
        for _ in 0..(MAX_BUFFERED_WEBHOOK_EVENTS + 3) {
            sub.notify(now, &Event::new("torrent.added", 1));
        }
        assert!(
            buffer.borrow().pending.is_empty(),
            "no endpoint, nothing buffered"
        );
        sub.set_kinds(vec!["*".into()]);
        for _ in 0..(MAX_BUFFERED_WEBHOOK_EVENTS + 3) {
            sub.notify(now, &Event::new("torrent.added", 1));
        }
        assert_eq!(buffer.borrow().dropped(), 3);
    }

    #[test]
    fn registration_checks_secrets_and_url() {
        let mut e = NewWebhookEndpoint {
            url: "http://127.0.0.1:9/hook".into(),
            kinds: vec!["*".into()],
            secrets: vec!["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()],
            recipient_key: None,
            allow_private: false,
            created_at: 0,
            label: String::new(),
        };
        assert!(matches!(check_endpoint(&e), Err(EndpointError::Url(_))));
        e.url = "https://localhost/hook".into(); // a name: resolved, then refused
        assert!(matches!(check_endpoint(&e), Err(EndpointError::Url(_))));
        e.url = "http://127.0.0.1:9/hook".into();
        e.allow_private = true;
        assert!(check_endpoint(&e).is_ok());
        e.secrets.push("whsec_c2hvcnQ=".into());
        assert!(matches!(check_endpoint(&e), Err(EndpointError::Secret(_))));
        e.secrets.clear();
        assert!(matches!(check_endpoint(&e), Err(EndpointError::NoSecret)));
    }
}
