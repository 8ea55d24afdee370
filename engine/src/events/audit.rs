//! The audit log's subscriber: every event worth keeping becomes an
//! [`AuditRecord`] in a bounded buffer, which the event loop hands to the catalog worker once a
//! turn (`Command::Audit`, one transaction per batch). Nothing here touches SQLite.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Instant;

use seednode_storage::catalog::AuditRecord;

use super::{Event, Subscriber};

/// Records waiting for the catalog worker, at most: past it the oldest are dropped and counted
/// (a worker stuck for minutes under a flood of failed logins must not grow the heap).
pub(crate) const MAX_BUFFERED_AUDIT_RECORDS: usize = 10_000;

/// Records waiting to be written, shared by the subscriber and the loop's flush.
#[derive(Debug, Default)]
pub(crate) struct AuditBuffer {
    pending: VecDeque<AuditRecord>,
    dropped: u64,
}

impl AuditBuffer {
    /// Takes every waiting record.
    pub(crate) fn take(&mut self) -> Vec<AuditRecord> {
        self.pending.drain(..).collect()
    }

    /// Puts back records the worker could not take (its queue was full), ahead of newer ones.
    pub(crate) fn restore(&mut self, records: Vec<AuditRecord>) {
        for r in records.into_iter().rev() {
            self.pending.push_front(r);
        }
        self.trim();
    }

    /// Records dropped since start because the buffer was full.
    pub(crate) const fn dropped(&self) -> u64 {
        self.dropped
    }

    fn trim(&mut self) {
        while self.pending.len() > MAX_BUFFERED_AUDIT_RECORDS {
            self.pending.pop_front();
            self.dropped += 1;
        }
    }
}

/// The bus side of a shared [`AuditBuffer`].
pub(crate) struct AuditSubscriber(pub(crate) Rc<RefCell<AuditBuffer>>);

impl Subscriber for AuditSubscriber {
    fn notify(&mut self, _now: Instant, event: &Event) -> Option<Event> {
        let mut buffer = self.0.borrow_mut();
        buffer.pending.push_back(AuditRecord {
            id: 0,
            at: event.at,
            kind: event.kind.to_owned(),
            actor: event.actor.clone(),
            source: event.source.map(|ip| ip.to_string()),
            details: event.details.to_string(),
        });
        buffer.trim();
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::kind;

    #[test]
    fn events_become_records_and_the_buffer_is_bounded() {
        let buffer = Rc::new(RefCell::new(AuditBuffer::default()));
        let mut sub = AuditSubscriber(buffer.clone());
        let mut e = Event::new(kind::AUTH_FAILED, 42);
        e.source = Some("192.0.2.7".parse().unwrap());
        e.actor = Some("abc".into());
        for _ in 0..(MAX_BUFFERED_AUDIT_RECORDS + 5) {
            sub.notify(Instant::now(), &e);
        }
        assert_eq!(buffer.borrow().dropped(), 5);
        let records = buffer.borrow_mut().take();
        assert_eq!(records.len(), MAX_BUFFERED_AUDIT_RECORDS);
        assert_eq!(records[0].kind, "auth.oauth.failed");
        assert_eq!(records[0].source.as_deref(), Some("192.0.2.7"));
        assert_eq!(records[0].details, "{}");
    }
}
