//! Temporary bans of addresses that keep breaking the peer wire: pure (time is an argument).
//!
//! One misbehaving connection is simply closed. An address whose connections are closed for
//! misbehaviour [`STRIKES_BEFORE_BAN`] times within [`STRIKE_WINDOW`] is refused at accept for
//! [`BAN_DURATION`], so that a peer cannot turn "disconnect the flooder" into a reconnect loop
//! that costs the node a handshake, a greeting and a budget's worth of messages each time
//! (libtorrent bans peers too, for bad data). Both tables are bounded by [`MAX_TRACKED_IPS`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

use seednode_wire::addr::canonical_ip;

use crate::limits::{BAN_DURATION, MAX_TRACKED_IPS, STRIKE_WINDOW, STRIKES_BEFORE_BAN};

/// Strikes and bans by canonical IP address.
#[derive(Debug, Default)]
pub struct BanList {
    /// Misbehaviour closes within the current window: (count, when the window started).
    strikes: HashMap<IpAddr, (u32, Instant)>,
    /// Banned addresses and when their ban ends.
    banned: HashMap<IpAddr, Instant>,
}

impl BanList {
    /// An empty list.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that a connection from `ip` was closed for misbehaviour at `now`; true when
    /// this strike bans the address.
    pub fn strike(&mut self, now: Instant, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        if !self.strikes.contains_key(&ip) && self.strikes.len() >= MAX_TRACKED_IPS {
            self.strikes
                .retain(|_, (_, start)| now.saturating_duration_since(*start) < STRIKE_WINDOW);
            if self.strikes.len() >= MAX_TRACKED_IPS {
                evict_oldest(&mut self.strikes, |(_, start)| *start);
            }
        }
        let entry = self.strikes.entry(ip).or_insert((0, now));
        if now.saturating_duration_since(entry.1) >= STRIKE_WINDOW {
            *entry = (0, now);
        }
        entry.0 += 1;
        if entry.0 < STRIKES_BEFORE_BAN {
            return false;
        }
        self.strikes.remove(&ip);
        if !self.banned.contains_key(&ip) && self.banned.len() >= MAX_TRACKED_IPS {
            self.banned.retain(|_, until| *until > now);
            if self.banned.len() >= MAX_TRACKED_IPS {
                evict_oldest(&mut self.banned, |until| *until);
            }
        }
        self.banned.insert(ip, now + BAN_DURATION);
        true
    }

    /// Whether `ip` is banned at `now` (an expired ban is forgotten).
    pub fn is_banned(&mut self, now: Instant, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        match self.banned.get(&ip) {
            Some(until) if *until > now => true,
            Some(_) => {
                self.banned.remove(&ip);
                false
            }
            None => false,
        }
    }

    /// Addresses banned now or recently (not yet forgotten).
    #[must_use]
    pub fn banned_count(&self) -> usize {
        self.banned.len()
    }
}

/// Removes the entry whose `key` is smallest (the oldest).
fn evict_oldest<V>(map: &mut HashMap<IpAddr, V>, key: impl Fn(&V) -> Instant) {
    if let Some(ip) = map.iter().min_by_key(|(_, v)| key(v)).map(|(ip, _)| *ip) {
        map.remove(&ip);
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn bans_after_repeated_misbehaviour_within_the_window_only() {
        let t = Instant::now();
        let mut b = BanList::new();
        let a = ip("203.0.113.9");
        for i in 1..STRIKES_BEFORE_BAN {
            assert!(!b.strike(t + Duration::from_secs(u64::from(i)), a));
            assert!(!b.is_banned(t, a));
        }
        assert!(b.strike(t + Duration::from_secs(10), a));
        assert!(b.is_banned(t + Duration::from_secs(11), a));
        // The IPv4-mapped form is the same host.
        assert!(b.is_banned(t + Duration::from_secs(11), ip("::ffff:203.0.113.9")));
        assert!(!b.is_banned(t + Duration::from_secs(11), ip("203.0.113.10")));
        assert!(!b.is_banned(t + Duration::from_secs(10) + BAN_DURATION, a));
        // Strikes spread wider than the window never ban.
        let c = ip("198.51.100.1");
        for i in 0..10u64 {
            assert!(!b.strike(t + STRIKE_WINDOW * u32::try_from(i).unwrap(), c));
        }
    }

    #[test]
    fn tables_are_bounded() {
        let t = Instant::now();
        let mut b = BanList::new();
        for i in 0..(MAX_TRACKED_IPS as u32 * 2) {
            let a = IpAddr::from(i.to_be_bytes());
            for _ in 0..STRIKES_BEFORE_BAN {
                b.strike(t, a);
            }
        }
        assert!(b.banned_count() <= MAX_TRACKED_IPS);
        assert!(b.strikes.len() <= MAX_TRACKED_IPS);
    }
}
