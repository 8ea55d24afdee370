//! Per-source-IP rate limiting in a fixed table (SECURITY D4), in the style of libtorrent's
//! `dos_blocker`, and the global reply-byte budget.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::limits::{
    MAX_DATAGRAMS_PER_WINDOW, RATE_LIMIT_BAN_TTL, RATE_LIMIT_SLOTS, RATE_LIMIT_WINDOW,
};

#[derive(Debug, Clone, Copy)]
struct Slot {
    /// The IP as 128 bits (IPv4 mapped), cheap to compare.
    ip: u128,
    window_start: Instant,
    count: u32,
    banned_until: Option<Instant>,
}

/// At most [`MAX_DATAGRAMS_PER_WINDOW`] datagrams per [`RATE_LIMIT_WINDOW`] per IP; the next one
/// bans the IP for [`RATE_LIMIT_BAN_TTL`] of silence. The table has [`RATE_LIMIT_SLOTS`] entries
/// and never grows.
#[derive(Debug, Clone)]
pub(crate) struct DosBlocker {
    slots: Vec<Slot>,
}

impl DosBlocker {
    pub(crate) fn new() -> Self {
        Self {
            slots: Vec::with_capacity(RATE_LIMIT_SLOTS),
        }
    }

    /// Counts one datagram from `ip`; false when it must be dropped.
    pub(crate) fn allow(&mut self, now: Instant, ip: IpAddr) -> bool {
        let ip = match ip.to_canonical() {
            IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
            IpAddr::V6(v6) => u128::from(v6),
        };
        // One pass: find the IP, or the slot least worth keeping (unbanned before banned, then
        // the one whose window started, or whose ban ends, first).
        let mut found = None;
        let mut victim = 0;
        let mut victim_key = (2u8, now);
        for (i, s) in self.slots.iter().enumerate() {
            if s.ip == ip {
                found = Some(i);
                break;
            }
            let key = match s.banned_until {
                Some(until) if until > now => (1, until),
                _ => (0, s.window_start),
            };
            if key < victim_key {
                victim_key = key;
                victim = i;
            }
        }
        let index = match found {
            Some(i) => i,
            None => {
                let fresh = Slot {
                    ip,
                    window_start: now,
                    count: 0,
                    banned_until: None,
                };
                if self.slots.len() < RATE_LIMIT_SLOTS {
                    self.slots.push(fresh);
                    self.slots.len() - 1
                } else {
                    self.slots[victim] = fresh;
                    victim
                }
            }
        };
        let slot = &mut self.slots[index];
        if let Some(until) = slot.banned_until {
            if now < until {
                // Ignore it until it has been silent for the whole ban.
                slot.banned_until = Some(now + RATE_LIMIT_BAN_TTL);
                return false;
            }
            slot.banned_until = None;
            slot.window_start = now;
            slot.count = 0;
        }
        if now.saturating_duration_since(slot.window_start) >= RATE_LIMIT_WINDOW {
            slot.window_start = now;
            slot.count = 0;
        }
        slot.count += 1;
        if slot.count > MAX_DATAGRAMS_PER_WINDOW {
            slot.banned_until = Some(now + RATE_LIMIT_BAN_TTL);
            return false;
        }
        true
    }

    /// IPs currently banned.
    pub(crate) fn banned(&self, now: Instant) -> usize {
        self.slots
            .iter()
            .filter(|s| s.banned_until.is_some_and(|u| u > now))
            .count()
    }
}

/// A token bucket of reply bytes: refills at `rate` bytes per second, holds one second's worth.
#[derive(Debug, Clone)]
pub(crate) struct ReplyBudget {
    rate: u64,
    available: u64,
    last: Instant,
}

impl ReplyBudget {
    pub(crate) fn new(rate_bytes_per_sec: u32, now: Instant) -> Self {
        let rate = u64::from(rate_bytes_per_sec);
        Self {
            rate,
            available: rate,
            last: now,
        }
    }

    /// Takes `len` bytes from the budget; false (nothing taken) when they are not available.
    pub(crate) fn take(&mut self, now: Instant, len: usize) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        if elapsed > Duration::ZERO {
            let refill = u128::from(self.rate) * elapsed.as_nanos() / 1_000_000_000;
            let refill = u64::try_from(refill).unwrap_or(u64::MAX);
            self.available = self.available.saturating_add(refill).min(self.rate);
            self.last = now;
        }
        let len = len as u64;
        if len <= self.available {
            self.available -= len;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bans_after_burst_and_forgives_after_silence() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut b = DosBlocker::new();
        let ip: IpAddr = "1.1.1.1".parse().unwrap();
        let allowed = (0..1000).filter(|_| b.allow(t0, ip)).count();
        assert_eq!(allowed, MAX_DATAGRAMS_PER_WINDOW as usize);
        assert_eq!(b.banned(t0), 1);
        // Still flooding one second later: still banned.
        assert!(!b.allow(t0 + Duration::from_secs(200), ip));
        // Silent for the full ban: allowed again.
        let later = t0 + Duration::from_secs(200) + RATE_LIMIT_BAN_TTL;
        assert!(b.allow(later, ip));
    }

    #[test]
    fn steady_five_per_second_is_never_banned() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut b = DosBlocker::new();
        let ip: IpAddr = "2.2.2.2".parse().unwrap();
        for i in 0..1000u64 {
            assert!(
                b.allow(t0 + Duration::from_millis(200 * i), ip),
                "datagram {i}"
            );
        }
    }

    #[test]
    fn table_is_fixed_size() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut b = DosBlocker::new();
        for i in 0..10_000u32 {
            b.allow(t0, IpAddr::from(i.to_be_bytes()));
        }
        assert_eq!(b.slots.len(), RATE_LIMIT_SLOTS);
    }

    #[test]
    fn reply_budget_refills() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut r = ReplyBudget::new(1000, t0);
        assert!(r.take(t0, 600));
        assert!(!r.take(t0, 600));
        assert!(r.take(t0 + Duration::from_millis(500), 600));
        assert!(!r.take(t0 + Duration::from_secs(10), 1001));
    }
}
