//! Stateless BEP 15 connection IDs: a keyed MAC of the client's IP and a time bucket, so the
//! tracker keeps no per-client state (TU4) and a spoofed source cannot present a valid ID
//! (SECURITY.md rule 4 and 5).
//!
//! # Layout (8 bytes, big-endian as sent)
//!
//! ```text
//! byte 0     0x80 | the low 7 bits of the time bucket the ID was issued in (the top bit set
//!            means no ID starts with `d`, so one UDP port can carry BEP 15 and KRPC, BEP 5)
//! bytes 1..8 the first 7 bytes of HMAC-SHA256(epoch_key, bucket as u64 BE || client IP octets)
//! ```
//!
//! - **Bucket**: whole [`CONNECTION_ID_BUCKET`]s (15 s) since the machine's clock origin (the
//!   `now` it was built with). An ID is accepted while its bucket is at most
//!   `CONNECTION_ID_TTL / CONNECTION_ID_BUCKET` (8) buckets old: 120 to 135 s after it was issued
//!   (BEP 15 asks for two minutes). The bucket byte picks one of those 9 buckets; any other
//!   value, including one that would be "in the future", names a bucket too old and is refused
//!   before any MAC is computed (TU3: no long-lived brute-forced ID).
//! - **Key**: the master secret passed in at construction is never used directly. Every
//!   [`CONNECTION_ID_KEY_ROTATION_INTERVAL`] a new epoch key is derived as
//!   HMAC-SHA256(master, label || epoch); the current and previous epoch keys are cached, and
//!   rotation happens inside [`ConnectionIds::issue`] / [`ConnectionIds::check`] when `now` enters
//!   a new epoch.
//! - **Address**: the canonical client IP only (IPv4-mapped IPv6 unwrapped), not the port. NATs
//!   may change the source port between datagrams, and libtorrent shares one connection ID across
//!   all sessions of a process (INTEROP.md); an attacker who can receive at the IP can spoof any
//!   port of it anyway.
//! - **Cache**: a MAC is a pure function of (bucket, IP) under the secret, so the last
//!   [`CONNECTION_ID_MAC_CACHE_SLOTS`](crate::limits::CONNECTION_ID_MAC_CACHE_SLOTS) computed are kept in a direct-mapped cache (slot chosen by a keyed mix of
//!   bucket and IP). A client that connects and then announces and scrapes several times per
//!   bucket costs one HMAC per bucket instead of one per packet. Only MACs this machine computed
//!   enter the cache, never a presented ID; a miss (or a slot taken by another address) just
//!   recomputes, so a flood of forged IDs from many addresses costs no more than without the
//!   cache. IDs stay bound to the IP and the bucket, and the comparison stays constant-time.
//! - **Strength**: 56 MAC bits. Guessing an ID for a victim's IP takes about 2^55 datagrams, in a
//!   window of two minutes. The MAC comparison is constant-time.

use std::net::IpAddr;
use std::time::Instant;

use ring::hmac;
use seednode_wire::ct::constant_time_eq;

use crate::limits::{
    CONNECTION_ID_BUCKET, CONNECTION_ID_KEY_ROTATION_INTERVAL,
    CONNECTION_ID_MAC_CACHE_SLOTS as MAC_CACHE_SLOTS, CONNECTION_ID_TTL,
};

const _: () = assert!(MAC_CACHE_SLOTS.is_power_of_two());

/// Buckets an ID may be old and still accepted.
const MAX_AGE_BUCKETS: u64 = CONNECTION_ID_TTL.as_secs() / CONNECTION_ID_BUCKET.as_secs();
/// Buckets per key epoch.
const BUCKETS_PER_EPOCH: u64 =
    CONNECTION_ID_KEY_ROTATION_INTERVAL.as_secs() / CONNECTION_ID_BUCKET.as_secs();
/// Label mixed into every epoch key derivation (domain separation from any other use of the
/// secret).
const KEY_LABEL: &[u8] = b"seednode-tracker BEP 15 connection id v1";

// The bucket byte must name the accepted buckets unambiguously.
const _: () = assert!(MAX_AGE_BUCKETS < 128 && BUCKETS_PER_EPOCH > MAX_AGE_BUCKETS);

/// One cached MAC: the (bucket, IP) it was computed for and its 7 bytes.
#[derive(Clone, Copy)]
struct CachedMac {
    bucket: u64,
    ip: IpAddr,
    mac: [u8; 7],
}

/// Issues and checks connection IDs. Sans-IO: `now` is passed in.
pub struct ConnectionIds {
    master: hmac::Key,
    origin: Instant,
    current: (u64, hmac::Key),
    previous: Option<(u64, hmac::Key)>,
    /// Direct-mapped cache of computed MACs (see the module docs); `None` slots are empty.
    /// Allocated on first use, so a node that never sees a BEP 15 packet does not pay for it.
    cache: Box<[Option<CachedMac>]>,
    /// Key of the slot mix, derived from the secret so slot collisions are not predictable.
    slot_key: [u64; 2],
}

impl std::fmt::Debug for ConnectionIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("ConnectionIds")
            .field("origin", &self.origin)
            .field("epoch", &self.current.0)
            .finish_non_exhaustive()
    }
}

impl ConnectionIds {
    /// A machine whose clock origin is `now`, keyed by `secret` (32 random bytes the engine draws
    /// from `ring::rand::SystemRandom`).
    #[must_use]
    pub fn new(now: Instant, secret: &[u8; 32]) -> Self {
        let master = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let current = (0, derive(&master, 0));
        let slot_tag = hmac::sign(&master, b"seednode-tracker BEP 15 mac cache slots v1");
        let mut k = [0u8; 16];
        k.copy_from_slice(&slot_tag.as_ref()[..16]);
        let (k0, k1) = k.split_at(8);
        let slot_key = [
            u64::from_le_bytes(k0.try_into().unwrap_or_default()),
            u64::from_le_bytes(k1.try_into().unwrap_or_default()) | 1,
        ];
        Self {
            master,
            origin: now,
            current,
            previous: None,
            cache: Box::default(),
            slot_key,
        }
    }

    /// Cache slot of (bucket, ip): a keyed multiply-fold mix, good enough to spread addresses
    /// (a collision only costs a recomputation).
    fn slot(&self, bucket: u64, ip: IpAddr) -> usize {
        let (hi, lo) = match ip {
            IpAddr::V4(v4) => (0, u64::from(v4.to_bits())),
            IpAddr::V6(v6) => {
                let b = v6.to_bits();
                ((b >> 64) as u64 | 1 << 63, b as u64)
            }
        };
        let x = (lo ^ self.slot_key[0]).wrapping_add(hi.rotate_left(29) ^ bucket);
        let m = u128::from(x) * u128::from(self.slot_key[1]);
        let folded = (m as u64) ^ ((m >> 64) as u64);
        (folded as usize) & (MAC_CACHE_SLOTS - 1)
    }

    fn bucket(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_secs() / CONNECTION_ID_BUCKET.as_secs()
    }

    /// A connection ID for a client at `ip`, valid for [`CONNECTION_ID_TTL`] (BEP 15 §connect).
    pub fn issue(&mut self, now: Instant, ip: IpAddr) -> u64 {
        let bucket = self.bucket(now);
        let mac = self.mac(bucket, ip);
        let mut id = [0u8; 8];
        id[0] = 0x80 | (bucket as u8 & 0x7f);
        id[1..].copy_from_slice(&mac);
        u64::from_be_bytes(id)
    }

    /// Whether `id` was issued to `ip` within the last [`CONNECTION_ID_TTL`] (plus at most one
    /// bucket).
    pub fn check(&mut self, now: Instant, ip: IpAddr, id: u64) -> bool {
        let id = id.to_be_bytes();
        let current = self.bucket(now);
        if id[0] & 0x80 == 0 {
            return false;
        }
        let age = u64::from((current as u8).wrapping_sub(id[0]) & 0x7f);
        if age > MAX_AGE_BUCKETS || age > current {
            return false;
        }
        let mac = self.mac(current - age, ip);
        constant_time_eq(&mac, &id[1..])
    }

    /// The MAC of (bucket, ip), from the cache or computed (and then cached).
    fn mac(&mut self, bucket: u64, ip: IpAddr) -> [u8; 7] {
        let slot = self.slot(bucket, ip);
        if self.cache.is_empty() {
            self.cache = vec![None; MAC_CACHE_SLOTS].into_boxed_slice();
        }
        if let Some(c) = self.cache[slot].filter(|c| c.bucket == bucket && c.ip == ip) {
            return c.mac;
        }
        let mac = self.compute_mac(bucket, ip);
        self.cache[slot] = Some(CachedMac { bucket, ip, mac });
        mac
    }

    fn compute_mac(&mut self, bucket: u64, ip: IpAddr) -> [u8; 7] {
        let mut msg = [0u8; 8 + 16];
        msg[..8].copy_from_slice(&bucket.to_be_bytes());
        let len = match ip {
            IpAddr::V4(v4) => {
                msg[8..12].copy_from_slice(&v4.octets());
                12
            }
            IpAddr::V6(v6) => {
                msg[8..24].copy_from_slice(&v6.octets());
                24
            }
        };
        let epoch = bucket / BUCKETS_PER_EPOCH;
        self.rotate_to(epoch);
        let tag = if self.current.0 == epoch {
            hmac::sign(&self.current.1, &msg[..len])
        } else if let Some((_, key)) = self.previous.as_ref().filter(|(e, _)| *e == epoch) {
            hmac::sign(key, &msg[..len])
        } else {
            // Only reachable if `now` went backwards past an epoch; correct, just slower.
            hmac::sign(&derive(&self.master, epoch), &msg[..len])
        };
        let mut out = [0u8; 7];
        out.copy_from_slice(&tag.as_ref()[..7]);
        out
    }

    /// Moves the cached keys forward when `epoch` is newer than the current one.
    fn rotate_to(&mut self, epoch: u64) {
        if epoch <= self.current.0 {
            return;
        }
        let old = std::mem::replace(&mut self.current, (epoch, derive(&self.master, epoch)));
        self.previous = Some(if old.0 + 1 == epoch {
            old
        } else {
            (epoch - 1, derive(&self.master, epoch - 1))
        });
    }
}

fn derive(master: &hmac::Key, epoch: u64) -> hmac::Key {
    let mut ctx = hmac::Context::with_key(master);
    ctx.update(KEY_LABEL);
    ctx.update(&epoch.to_be_bytes());
    hmac::Key::new(hmac::HMAC_SHA256, ctx.sign().as_ref())
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // each test reads the clock once, for its epoch
mod tests {
    use std::time::Duration;

    use super::*;

    const SECRET: [u8; 32] = [7; 32];

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn connection_id_valid_for_two_minutes_then_expires() {
        let t0 = Instant::now();
        let mut ids = ConnectionIds::new(t0, &SECRET);
        for issued_at in [0u64, 7, 14, 15, 29, 1000] {
            let t = t0 + Duration::from_secs(issued_at);
            let id = ids.issue(t, ip("192.0.2.1"));
            assert!(ids.check(t, ip("192.0.2.1"), id));
            assert!(
                ids.check(t + CONNECTION_ID_TTL, ip("192.0.2.1"), id),
                "valid 120 s"
            );
            assert!(
                !ids.check(
                    t + CONNECTION_ID_TTL + CONNECTION_ID_BUCKET,
                    ip("192.0.2.1"),
                    id
                ),
                "expired by 135 s"
            );
            assert!(!ids.check(t + Duration::from_secs(256 * 15), ip("192.0.2.1"), id));
        }
    }

    #[test]
    fn connection_id_bound_to_ip_not_port() {
        let t0 = Instant::now();
        let mut ids = ConnectionIds::new(t0, &SECRET);
        let id = ids.issue(t0, ip("192.0.2.1"));
        assert!(!ids.check(t0, ip("192.0.2.2"), id));
        assert!(!ids.check(t0, ip("::ffff:192.0.2.2"), id));
        let id6 = ids.issue(t0, ip("2001:db8::1"));
        assert!(ids.check(t0, ip("2001:db8::1"), id6));
        assert!(!ids.check(t0, ip("2001:db8::2"), id6));
    }

    #[test]
    fn forged_and_future_ids_rejected() {
        let t0 = Instant::now();
        let mut ids = ConnectionIds::new(t0, &SECRET);
        let now = t0 + Duration::from_secs(600);
        let id = ids.issue(now, ip("192.0.2.1"));
        for forged in [0, u64::MAX, id ^ 1, id ^ (1 << 40)] {
            assert!(!ids.check(now, ip("192.0.2.1"), forged));
        }
        // The bucket byte of "one bucket in the future" reads as 127 buckets old.
        let future = id.wrapping_add(1 << 56);
        assert!(!ids.check(now, ip("192.0.2.1"), future));
        // A different secret issues different IDs.
        let mut other = ConnectionIds::new(t0, &[8; 32]);
        assert!(!other.check(now, ip("192.0.2.1"), id));
    }

    #[test]
    fn connection_ids_never_start_like_krpc() {
        let t0 = Instant::now();
        let mut ids = ConnectionIds::new(t0, &[7; 32]);
        for minute in 0..300u64 {
            let now = t0 + Duration::from_secs(minute * 15);
            let id = ids.issue(now, ip("192.0.2.1"));
            assert_ne!(
                id.to_be_bytes()[0],
                b'd',
                "a KRPC message starts with 'd' (BEP 5)"
            );
            assert!(ids.check(now, ip("192.0.2.1"), id));
        }
    }

    #[test]
    fn connection_id_survives_key_rotation() {
        let t0 = Instant::now();
        let mut ids = ConnectionIds::new(t0, &SECRET);
        let just_before = t0 + CONNECTION_ID_KEY_ROTATION_INTERVAL - Duration::from_secs(1);
        let id = ids.issue(just_before, ip("192.0.2.1"));
        let after = just_before + Duration::from_secs(60);
        let fresh = ids.issue(after, ip("192.0.2.1"));
        assert!(
            ids.check(after, ip("192.0.2.1"), id),
            "previous epoch key still checks"
        );
        assert!(ids.check(after, ip("192.0.2.1"), fresh));
        // A jump of several epochs still verifies fresh IDs.
        let later = t0 + CONNECTION_ID_KEY_ROTATION_INTERVAL * 5;
        let id = ids.issue(later, ip("192.0.2.1"));
        assert!(ids.check(later + Duration::from_secs(100), ip("192.0.2.1"), id));
        // The same bucket under a new epoch key gives a different ID.
        assert_ne!(
            ConnectionIds::new(t0, &SECRET).issue(t0, ip("192.0.2.1")),
            ConnectionIds::new(t0, &SECRET).issue(
                t0 + CONNECTION_ID_KEY_ROTATION_INTERVAL * 256,
                ip("192.0.2.1")
            )
        );
    }

    #[test]
    fn cached_macs_equal_computed_ones_and_stay_bound_to_ip_and_bucket() {
        let t0 = Instant::now();
        let mut ids = ConnectionIds::new(t0, &SECRET);
        let mut fresh = ConnectionIds::new(t0, &SECRET);
        // More addresses than slots, twice: hits, misses and evictions all give the HMAC.
        for round in 0..2u32 {
            for n in 0..(MAC_CACHE_SLOTS as u32 + 100) {
                let a = IpAddr::from((n * 7 + round).to_be_bytes());
                let id = ids.issue(t0, a);
                assert_eq!(id.to_be_bytes()[1..], fresh.compute_mac(0, a));
                assert!(ids.check(t0 + Duration::from_secs(20), a, id));
                let b = IpAddr::from((n * 7 + round + 1).to_be_bytes());
                assert!(!ids.check(t0, b, id), "a cached MAC is never another IP's");
            }
        }
        // A cached (bucket 0, ip) entry does not validate the same MAC under another bucket.
        let a = ip("192.0.2.9");
        let id = ids.issue(t0, a);
        let next = (id & !(0x7f << 56)) | (1 << 56);
        assert!(!ids.check(t0 + CONNECTION_ID_BUCKET, a, next));
        assert!(ids.check(t0 + CONNECTION_ID_BUCKET, a, id));
    }

    #[test]
    fn time_before_origin_saturates() {
        let t0 = Instant::now() + Duration::from_secs(100);
        let mut ids = ConnectionIds::new(t0, &SECRET);
        let early = t0 - Duration::from_secs(50);
        let id = ids.issue(early, ip("192.0.2.1"));
        assert!(ids.check(t0, ip("192.0.2.1"), id));
    }
}
