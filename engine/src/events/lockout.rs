//! Lockout: more than [`MAX_FAILURES`] failed authentications from one address within
//! [`FAILURE_WINDOW`] block that address from every authenticated surface (API, raw uploads,
//! OAuth endpoints) for the configured time. A [`Subscriber`] of `auth.oauth.failed`; the front
//! door asks [`Lockout::is_locked`] before it looks at a token. Issue 12; SECURITY.md rate
//! limits.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use seednode_wire::addr::limit_key;
use serde_json::json;

use super::{Event, Subscriber, kind};

/// Failed authentications from one address tolerated within [`FAILURE_WINDOW`]; the next one
/// locks it out (the "more than 5 within a minute").
pub(crate) const MAX_FAILURES: u32 = 5;

/// The window failures are counted in.
pub(crate) const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// How long a lockout lasts unless configured (`lockout_secs`).
pub(crate) const DEFAULT_LOCKOUT: Duration = Duration::from_secs(15 * 60);

/// Addresses tracked at once, at most: past it the entry seen longest ago is forgotten (an
/// attacker with more addresses than this gains a fresh count on each, not a way to grow the
/// table).
pub(crate) const MAX_TRACKED_ADDRESSES: usize = 4_096;

#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start: Instant,
    failures: u32,
    locked_until: Option<Instant>,
    last_seen: Instant,
}

/// The table of failing addresses. Shared (`Rc<RefCell<..>>`) between the bus, which feeds it,
/// and the front door, which reads it: both live on the event loop's thread.
#[derive(Debug)]
pub(crate) struct Lockout {
    entries: HashMap<IpAddr, Entry>,
    duration: Duration,
    locked_total: u64,
}

impl Lockout {
    /// A table whose lockouts last `duration`.
    pub(crate) fn new(duration: Duration) -> Self {
        Self {
            entries: HashMap::new(),
            duration,
            locked_total: 0,
        }
    }

    /// Whether `ip` is locked out at `now`.
    pub(crate) fn is_locked(&self, ip: IpAddr, now: Instant) -> bool {
        self.entries
            .get(&limit_key(ip))
            .and_then(|e| e.locked_until)
            .is_some_and(|until| now < until)
    }

    /// Lockouts since start (for `/metrics`).
    pub(crate) const fn locked_total(&self) -> u64 {
        self.locked_total
    }

    /// Counts a failure from `ip` at `now`; true when this one locks it out.
    fn failed(&mut self, ip: IpAddr, now: Instant) -> bool {
        let ip = limit_key(ip);
        if !self.entries.contains_key(&ip) && self.entries.len() >= MAX_TRACKED_ADDRESSES {
            // Forget the quietest address; a locked one only once its lockout is over.
            if let Some(oldest) = self
                .entries
                .iter()
                .filter(|(_, e)| e.locked_until.is_none_or(|u| u <= now))
                .min_by_key(|(_, e)| e.last_seen)
                .map(|(ip, _)| *ip)
            {
                self.entries.remove(&oldest);
            } else {
                return false; // every entry is a live lockout: nothing to forget
            }
        }
        let entry = self.entries.entry(ip).or_insert(Entry {
            window_start: now,
            failures: 0,
            locked_until: None,
            last_seen: now,
        });
        entry.last_seen = now;
        if entry.locked_until.is_some_and(|u| now < u) {
            return false; // already locked
        }
        if now.saturating_duration_since(entry.window_start) >= FAILURE_WINDOW {
            entry.window_start = now;
            entry.failures = 0;
            entry.locked_until = None;
        }
        entry.failures += 1;
        if entry.failures > MAX_FAILURES {
            entry.locked_until = Some(now + self.duration);
            self.locked_total += 1;
            return true;
        }
        false
    }
}

/// The bus side of a shared [`Lockout`].
pub(crate) struct LockoutSubscriber(pub(crate) Rc<RefCell<Lockout>>);

impl Subscriber for LockoutSubscriber {
    fn notify(&mut self, now: Instant, event: &Event) -> Option<Event> {
        if event.kind != kind::AUTH_FAILED && event.kind != kind::NOSTR_AUTH_FAILED {
            return None;
        }
        let ip = event.source?;
        let mut table = self.0.borrow_mut();
        if !table.failed(ip, now) {
            return None;
        }
        let mut locked = Event::new(kind::AUTH_LOCKOUT, event.at);
        locked.source = Some(ip);
        locked.details = json!({
            "failures": MAX_FAILURES + 1,
            "window_secs": FAILURE_WINDOW.as_secs(),
            "lockout_secs": table.duration.as_secs(),
        });
        Some(locked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed_from(ip: &str, at: i64) -> Event {
        let mut e = Event::new(kind::AUTH_FAILED, at);
        e.source = Some(ip.parse().unwrap());
        e
    }

    #[test]
    fn the_sixth_failure_in_a_minute_locks_that_address_only() {
        let table = Rc::new(RefCell::new(Lockout::new(Duration::from_secs(600))));
        let mut sub = LockoutSubscriber(table.clone());
        let t0 = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for i in 0..5 {
            assert!(sub.notify(t0, &failed_from("192.0.2.1", i)).is_none());
            assert!(!table.borrow().is_locked(ip, t0));
        }
        let follow = sub
            .notify(t0, &failed_from("192.0.2.1", 5))
            .expect("lockout event");
        assert_eq!(follow.kind, kind::AUTH_LOCKOUT);
        assert!(table.borrow().is_locked(ip, t0));
        // The IPv4-mapped form is the same address.
        assert!(
            table
                .borrow()
                .is_locked("::ffff:192.0.2.1".parse().unwrap(), t0)
        );
        assert!(!table.borrow().is_locked("192.0.2.2".parse().unwrap(), t0));
        assert!(!table.borrow().is_locked(ip, t0 + Duration::from_secs(601)));
        // IPv6: the /64 is one address for the lockout.
        for i in 0..6 {
            let _ = sub.notify(t0, &failed_from(&format!("2001:db8:1:2::{i:x}"), 0));
        }
        assert!(
            table
                .borrow()
                .is_locked("2001:db8:1:2:ffff::9".parse().unwrap(), t0)
        );
        assert!(
            !table
                .borrow()
                .is_locked("2001:db8:1:3::1".parse().unwrap(), t0)
        );
        assert_eq!(
            table.borrow().locked_total(),
            2,
            "192.0.2.1 and 2001:db8:1:2::/64"
        );
    }

    #[test]
    fn failures_spread_over_more_than_a_minute_do_not_lock() {
        let table = Rc::new(RefCell::new(Lockout::new(DEFAULT_LOCKOUT)));
        let mut sub = LockoutSubscriber(table.clone());
        let t0 = Instant::now();
        for i in 0..20u64 {
            let now = t0 + Duration::from_secs(i * 13);
            assert!(
                sub.notify(now, &failed_from("192.0.2.9", 0)).is_none(),
                "{i}"
            );
        }
    }

    #[test]
    fn the_table_is_bounded() {
        let table = Rc::new(RefCell::new(Lockout::new(DEFAULT_LOCKOUT)));
        let mut sub = LockoutSubscriber(table.clone());
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED_ADDRESSES as u32 + 100) {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string();
            let _ = sub.notify(
                t0 + Duration::from_micros(u64::from(i)),
                &failed_from(&ip, 0),
            );
        }
        assert!(table.borrow().entries.len() <= MAX_TRACKED_ADDRESSES);
    }
}
