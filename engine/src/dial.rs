//! Which learnt peer addresses the node connects out to, and how fast: pure (time is an
//! argument), so the rules are tested without sockets.
//!
//! A peer address learnt from someone else (a PEX message, a tracker reply, the DHT) is a
//! request to make a connection on that someone's say-so. [`DialPolicy::check`] refuses what
//! must never be dialled (see [`seednode_wire::addr::may_dial`]: internal addresses named by a
//! source outside that network, port 0, multicast, this node), then spends a token of a
//! node-wide budget and of the source's own budget, so that no source can turn the node into a
//! connection cannon (one PEX peer once caused 4,096 connection attempts in 0.04 s).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use seednode_wire::addr::{DialRefusal, canonical_addr, canonical_ip, may_dial};

use crate::limits::{
    DIAL_BURST, DIAL_SOURCE_BURST, DIALS_PER_SEC, DIALS_PER_SOURCE_PER_MIN, MAX_DIAL_SOURCES,
};
use crate::rate::CountBucket;

/// Where a peer address was learnt: the dial rules depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerSource {
    /// A `ut_pex` message (BEP 11) from the peer at this address.
    Pex(IpAddr),
    /// A tracker's reply, from the tracker at this address (`None`: not known, held to the
    /// strictest rule).
    Tracker(Option<IpAddr>),
    /// The DHT (BEP 5): a `get_peers` value or an `announce_peer`; the DHT node runs on `local`.
    Dht {
        /// The address the node's DHT socket is bound to or reached at.
        local: IpAddr,
    },
}

impl PeerSource {
    /// The address whose network the learnt peer must share to be dialled when it is not a
    /// global address.
    const fn network(self) -> Option<IpAddr> {
        match self {
            Self::Pex(ip) | Self::Dht { local: ip } => Some(ip),
            Self::Tracker(ip) => ip,
        }
    }
}

/// Why a learnt address is not dialled (a fixed set: counted in `/metrics` by label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DialDenied {
    /// The address is one that must not be dialled on this source's say-so.
    #[error("address refused: {0}")]
    Address(#[from] DialRefusal),
    /// One of this node's own addresses.
    #[error("this node's own address")]
    OwnAddress,
    /// The node-wide budget of new connections per second is spent.
    #[error("node-wide dial budget spent")]
    GlobalBudget,
    /// This source's budget of new connections is spent.
    #[error("dial budget of this source spent")]
    SourceBudget,
}

impl DialDenied {
    /// A short stable label for `/metrics`.
    pub const fn label(&self) -> &'static str {
        match self {
            Self::Address(_) => "address",
            Self::OwnAddress => "own_address",
            Self::GlobalBudget => "global_budget",
            Self::SourceBudget => "source_budget",
        }
    }
}

/// The dial rules and budgets of one node.
#[derive(Debug)]
pub struct DialPolicy {
    global: CountBucket,
    /// Per source IP (canonical); at most [`MAX_DIAL_SOURCES`], the least recently used is
    /// forgotten first.
    per_source: HashMap<IpAddr, CountBucket>,
}

impl DialPolicy {
    /// Full budgets at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            global: CountBucket::new(now, DIALS_PER_SEC, DIAL_BURST),
            per_source: HashMap::new(),
        }
    }

    /// Whether `candidate`, learnt from `source`, may be dialled now; a yes spends one token of
    /// the node-wide budget and one of the source's (PEX and trackers; the DHT has the
    /// node-wide budget only). `own` lists the addresses this node accepts connections on.
    ///
    /// # Errors
    /// [`DialDenied`] says why not; nothing is spent then.
    pub fn check(
        &mut self,
        now: Instant,
        candidate: SocketAddr,
        source: PeerSource,
        own: &[SocketAddr],
    ) -> Result<SocketAddr, DialDenied> {
        let candidate = canonical_addr(candidate);
        // A source of unknown address is treated as a public one.
        let from = source
            .network()
            .map_or(IpAddr::from([8, 8, 8, 8]), canonical_ip);
        may_dial(candidate, from)?;
        if own.iter().any(|o| {
            let o = canonical_addr(*o);
            o.port() == candidate.port() && (o.ip() == candidate.ip() || o.ip().is_unspecified())
        }) {
            return Err(DialDenied::OwnAddress);
        }
        let source_ip = match source {
            PeerSource::Pex(ip) | PeerSource::Tracker(Some(ip)) => Some(canonical_ip(ip)),
            PeerSource::Tracker(None) | PeerSource::Dht { .. } => None,
        };
        if let Some(ip) = source_ip {
            if !self.per_source.contains_key(&ip) && self.per_source.len() >= MAX_DIAL_SOURCES {
                let oldest = self
                    .per_source
                    .iter()
                    .min_by_key(|(_, b)| b.last_used())
                    .map(|(ip, _)| *ip);
                if let Some(oldest) = oldest {
                    self.per_source.remove(&oldest);
                }
            }
            let bucket = self.per_source.entry(ip).or_insert_with(|| {
                CountBucket::per_period(
                    now,
                    DIALS_PER_SOURCE_PER_MIN,
                    Duration::from_secs(60),
                    DIAL_SOURCE_BURST,
                )
            });
            if !bucket.peek(now) {
                return Err(DialDenied::SourceBudget);
            }
        }
        if !self.global.try_take(now) {
            return Err(DialDenied::GlobalBudget);
        }
        if let Some(ip) = source_ip
            && let Some(bucket) = self.per_source.get_mut(&ip)
        {
            let _ = bucket.try_take(now);
        }
        Ok(candidate)
    }

    /// Sources remembered (for tests and `/metrics`).
    #[cfg(test)]
    pub fn sources(&self) -> usize {
        self.per_source.len()
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_public_pex_peer_cannot_name_internal_addresses() {
        let now = Instant::now();
        let mut p = DialPolicy::new(now);
        let public = PeerSource::Pex("203.0.114.7".parse().unwrap());
        for bad in [
            "127.0.0.1:22",
            "10.1.2.3:6881",
            "192.168.1.1:80",
            "172.16.0.1:6881",
            "169.254.169.254:80",
            "100.64.0.1:6881",
            "255.255.255.255:6881",
            "224.0.0.1:6881",
            "0.0.0.0:6881",
            "[::1]:6881",
            "[::ffff:127.0.0.1]:22",
            "[fe80::1]:6881",
            "[fc00::1]:6881",
            "1.2.3.4:0",
        ] {
            assert!(
                matches!(
                    p.check(now, a(bad), public, &[]),
                    Err(DialDenied::Address(_))
                ),
                "{bad}"
            );
        }
        assert_eq!(
            p.check(now, a("1.2.3.4:6881"), public, &[]),
            Ok(a("1.2.3.4:6881"))
        );
    }

    #[test]
    fn a_lan_or_loopback_source_may_name_its_own_network() {
        let now = Instant::now();
        let mut p = DialPolicy::new(now);
        let lan = PeerSource::Pex("192.168.1.20".parse().unwrap());
        assert!(p.check(now, a("192.168.1.21:6881"), lan, &[]).is_ok());
        let lo = PeerSource::Tracker(Some("127.0.0.1".parse().unwrap()));
        assert!(p.check(now, a("127.0.0.5:6881"), lo, &[]).is_ok());
        let dht = PeerSource::Dht {
            local: "127.0.0.1".parse().unwrap(),
        };
        assert!(p.check(now, a("127.0.0.9:6881"), dht, &[]).is_ok());
        // A tracker of unknown address is public.
        assert!(
            p.check(now, a("127.0.0.5:6882"), PeerSource::Tracker(None), &[])
                .is_err()
        );
    }

    #[test]
    fn never_dials_itself() {
        let now = Instant::now();
        let mut p = DialPolicy::new(now);
        let lo = PeerSource::Pex("127.0.0.1".parse().unwrap());
        let own = [a("0.0.0.0:6881")];
        assert_eq!(
            p.check(now, a("127.0.0.1:6881"), lo, &own),
            Err(DialDenied::OwnAddress)
        );
        assert!(p.check(now, a("127.0.0.1:6882"), lo, &own).is_ok());
    }

    #[test]
    fn budgets_bound_dials_per_source_and_per_node() {
        let now = Instant::now();
        let mut p = DialPolicy::new(now);
        let src = PeerSource::Pex("203.0.114.7".parse().unwrap());
        let ok = (0..1000u16)
            .filter(|i| {
                let c = SocketAddr::new([1, 2, (i >> 8) as u8, *i as u8].into(), 6881);
                p.check(now, c, src, &[]).is_ok()
            })
            .count();
        assert_eq!(ok, DIAL_SOURCE_BURST as usize, "one source, at once");
        // Many sources at once: the node-wide burst.
        let mut p = DialPolicy::new(now);
        let ok = (0..1000u16)
            .filter(|i| {
                let src = PeerSource::Pex(IpAddr::from([9, 9, (i >> 8) as u8, *i as u8]));
                p.check(now, a("1.2.3.4:6881"), src, &[]).is_ok()
            })
            .count();
        assert_eq!(ok, DIAL_BURST as usize);
        assert!(p.sources() <= MAX_DIAL_SOURCES);
        // A second later, the node-wide rate again.
        let later = now + Duration::from_secs(1);
        let ok = (0..1000u16)
            .filter(|i| {
                let src = PeerSource::Pex(IpAddr::from([8, 8, (i >> 8) as u8, *i as u8]));
                p.check(later, a("1.2.3.4:6881"), src, &[]).is_ok()
            })
            .count();
        assert_eq!(ok, DIALS_PER_SEC as usize);
    }
}
