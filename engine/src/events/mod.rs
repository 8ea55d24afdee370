//! The node's event bus: who emits an event (the front door's authentication, the catalog's
//! replies, uploads) never knows who listens (the audit log, the lockout, later webhooks and
//! Nostr). Issue 12, "Auth events"; STYLE.md §1.
//!
//! [`Bus::emit`] hands the event to every [`Subscriber`] at once, on the event loop's thread:
//! subscribers only update memory (a table, a buffer) and never block. A subscriber may answer
//! with follow-up events (the lockout emits `auth.lockout`), dispatched the same way, one level
//! deep.

pub(crate) mod approvals;
pub(crate) mod audit;
pub(crate) mod lockout;
pub(crate) mod webhook;

use std::net::IpAddr;
use std::time::Instant;

/// Event kinds (the `kind` of audit rows and, later, webhook payloads).
pub(crate) mod kind {
    /// A bearer token (RFC 6750) was accepted for a write (reads are not recorded: a dashboard
    /// polling the API would fill the log).
    pub(crate) const AUTH_SUCCESS: &str = "auth.oauth.success";
    /// A bearer token was refused (unknown, expired, revoked, malformed, lacking the scope),
    /// or was missing where one is needed.
    pub(crate) const AUTH_FAILED: &str = "auth.oauth.failed";
    /// A valid bearer token was used for something its scopes do not allow (not counted by
    /// the lockout: the holder authenticated).
    pub(crate) const AUTH_DENIED: &str = "auth.oauth.denied";
    /// A Nostr-signed request (NIP-98, Blossom BUD-11) was refused: undecodable, bad
    /// signature, stale, not matching the request, or a pubkey without the scope. Counted by
    /// the lockout like `auth.oauth.failed`.
    pub(crate) const NOSTR_AUTH_FAILED: &str = "auth.nostr.failed";
    /// A Nostr-signed request was accepted for a write (NIP-98 or a Blossom upload/delete).
    pub(crate) const NOSTR_AUTH_SUCCESS: &str = "auth.nostr.success";
    /// An address was locked out after too many failed authentications.
    pub(crate) const AUTH_LOCKOUT: &str = "auth.lockout";
    /// An upload request was accepted for processing (token and request checked).
    pub(crate) const UPLOAD_STARTED: &str = "upload.started";
    /// An upload was stored (committed) and answered `OK`.
    pub(crate) const UPLOAD_COMPLETED: &str = "upload.completed";
    /// An upload was refused with `ERR <code>`.
    pub(crate) const UPLOAD_REJECTED: &str = "upload.rejected";
    /// A torrent was added to the catalog.
    pub(crate) const TORRENT_ADDED: &str = "torrent.added";
    /// Every piece of a torrent the node had to read (added without a verified record, or
    /// changed on disk) passed its hash check, and its files' SHA-256 are in the catalog.
    pub(crate) const TORRENT_VERIFIED: &str = "torrent.verified";
    /// A torrent was removed from the catalog.
    pub(crate) const TORRENT_REMOVED: &str = "torrent.removed";
    /// A torrent was paused.
    pub(crate) const TORRENT_PAUSED: &str = "torrent.paused";
    /// A paused torrent was resumed.
    pub(crate) const TORRENT_RESUMED: &str = "torrent.resumed";
    /// A Nostr relay accepted (or already had) one of the node's events (docs/nostr.md).
    pub(crate) const NOSTR_PUBLISHED: &str = "nostr.published";
    /// The node gave up on sending an event to a Nostr relay.
    pub(crate) const NOSTR_FAILED: &str = "nostr.failed";
    /// A critical write waits for a device's signature (docs/approvals.md).
    pub(crate) const APPROVAL_REQUESTED: &str = "approval.requested";
    /// A device signed an approval; its action ran.
    pub(crate) const APPROVAL_GRANTED: &str = "approval.granted";
    /// A grant was refused (bad signature, unknown or revoked device, replay, other action).
    pub(crate) const APPROVAL_REFUSED: &str = "approval.refused";
    /// A grant came after the approval's expiry.
    pub(crate) const APPROVAL_EXPIRED: &str = "approval.expired";
    /// A device key was registered over the API.
    pub(crate) const DEVICE_ADDED: &str = "device.added";
    /// A device key was revoked over the API.
    pub(crate) const DEVICE_REVOKED: &str = "device.revoked";
    /// An API token was created over the API.
    pub(crate) const TOKEN_CREATED: &str = "token.created";
}

/// One thing that happened.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Event {
    /// What ([`kind`]).
    pub(crate) kind: &'static str,
    /// When, seconds since the Unix epoch.
    pub(crate) at: i64,
    /// Who: a token or client id, never a secret.
    pub(crate) actor: Option<String>,
    /// From where, for events that came from the network.
    pub(crate) source: Option<IpAddr>,
    /// A JSON object with the rest (reason, info-hash, ...), small.
    pub(crate) details: serde_json::Value,
    /// Set when the event's webhook rows were committed with the action it reports (the
    /// `webhook-id` they carry): the webhook subscriber does not queue it again.
    pub(crate) webhook_id: Option<String>,
}

impl Event {
    /// An event of `kind` at `at` with no actor, source or details.
    pub(crate) fn new(kind: &'static str, at: i64) -> Self {
        Self {
            kind,
            at,
            actor: None,
            source: None,
            details: serde_json::Value::Object(serde_json::Map::new()),
            webhook_id: None,
        }
    }
}

/// Something that listens to every event.
pub(crate) trait Subscriber {
    /// Takes note of `event` (at loop time `now`); may return one follow-up event. Must not
    /// block.
    fn notify(&mut self, now: Instant, event: &Event) -> Option<Event>;
}

/// The subscribers, in the order they were added.
#[derive(Default)]
pub(crate) struct Bus {
    subscribers: Vec<Box<dyn Subscriber>>,
    emitted: u64,
}

impl Bus {
    /// Adds a subscriber.
    pub(crate) fn subscribe(&mut self, subscriber: Box<dyn Subscriber>) {
        self.subscribers.push(subscriber);
    }

    /// Hands `event` to every subscriber, then their follow-ups (not theirs in turn).
    pub(crate) fn emit(&mut self, now: Instant, event: &Event) {
        let mut follow_ups = Vec::new();
        for s in &mut self.subscribers {
            follow_ups.extend(s.notify(now, event));
        }
        self.emitted += 1;
        for e in &follow_ups {
            for s in &mut self.subscribers {
                let _ = s.notify(now, e);
            }
            self.emitted += 1;
        }
    }

    /// Events emitted since start (for `/metrics`).
    pub(crate) const fn emitted(&self) -> u64 {
        self.emitted
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;

    struct Recorder(Rc<RefCell<Vec<&'static str>>>, Option<&'static str>);

    impl Subscriber for Recorder {
        fn notify(&mut self, _now: Instant, event: &Event) -> Option<Event> {
            self.0.borrow_mut().push(event.kind);
            match self.1 {
                Some(k) if event.kind != k => Some(Event::new(k, event.at)),
                _ => None,
            }
        }
    }

    #[test]
    fn every_subscriber_sees_every_event_and_follow_ups_once() {
        let seen_a = Rc::new(RefCell::new(Vec::new()));
        let seen_b = Rc::new(RefCell::new(Vec::new()));
        let mut bus = Bus::default();
        bus.subscribe(Box::new(Recorder(seen_a.clone(), Some("follow.up"))));
        bus.subscribe(Box::new(Recorder(seen_b.clone(), None)));
        bus.emit(Instant::now(), &Event::new("first", 1));
        assert_eq!(*seen_a.borrow(), ["first", "follow.up"]);
        assert_eq!(*seen_b.borrow(), ["first", "follow.up"]);
        assert_eq!(bus.emitted(), 2);
    }
}
