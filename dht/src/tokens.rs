//! Write tokens (BEP 5 §get_peers, §announce_peer): a keyed MAC of the querier's IP under a key
//! that rotates every [`TOKEN_ROTATE_INTERVAL`]; the previous key is still accepted.
//!
//! The key of epoch `n` is `HMAC-SHA-256(secret, "seednode-dht token" ‖ n)`, with `n` counted in
//! [`TOKEN_ROTATE_INTERVAL`]s of monotonic time since the node started, so no timer and no
//! randomness is needed after construction. A token is `HMAC-SHA-256(key_n, ip)` truncated to
//! [`TOKEN_LEN`] bytes and compared in constant time (SECURITY rule 5).

use std::net::IpAddr;
use std::time::Instant;

use ring::hmac;
use seednode_wire::ct::constant_time_eq;

use crate::limits::{TOKEN_LEN, TOKEN_ROTATE_INTERVAL};

/// Issues and checks write tokens.
#[derive(Clone)]
pub(crate) struct Tokens {
    master: hmac::Key,
    start: Instant,
    /// Keys of the two most recent epochs used, newest first.
    cache: [Option<(u64, hmac::Key)>; 2],
}

impl Tokens {
    pub(crate) fn new(secret: &[u8; 32], start: Instant) -> Self {
        Self {
            master: hmac::Key::new(hmac::HMAC_SHA256, secret),
            start,
            cache: [None, None],
        }
    }

    fn epoch(&self, now: Instant) -> u64 {
        let secs = now.saturating_duration_since(self.start).as_secs();
        secs / TOKEN_ROTATE_INTERVAL.as_secs()
    }

    fn key(&mut self, epoch: u64) -> &hmac::Key {
        let index = match &self.cache {
            [Some((e, _)), _] if *e == epoch => 0,
            [_, Some((e, _))] if *e == epoch => 1,
            _ => {
                let mut label = b"seednode-dht token ".to_vec();
                label.extend_from_slice(&epoch.to_be_bytes());
                let tag = hmac::sign(&self.master, &label);
                let key = hmac::Key::new(hmac::HMAC_SHA256, tag.as_ref());
                // Keep the newer of the cached epochs next to the new one.
                let keep = match &self.cache {
                    [Some((a, _)), Some((b, _))] if b > a => 1,
                    _ => 0,
                };
                let kept = self.cache[keep].take();
                self.cache = [Some((epoch, key)), kept];
                0
            }
        };
        match &self.cache[index] {
            Some((_, key)) => key,
            None => unreachable!("cache slot {index} was just filled"),
        }
    }

    fn mac(&mut self, epoch: u64, ip: IpAddr) -> [u8; TOKEN_LEN] {
        let mut msg = [0u8; 17];
        let len = match ip.to_canonical() {
            IpAddr::V4(v4) => {
                msg[0] = 4;
                msg[1..5].copy_from_slice(&v4.octets());
                5
            }
            IpAddr::V6(v6) => {
                msg[0] = 6;
                msg[1..17].copy_from_slice(&v6.octets());
                17
            }
        };
        let tag = hmac::sign(self.key(epoch), &msg[..len]);
        let mut out = [0u8; TOKEN_LEN];
        out.copy_from_slice(&tag.as_ref()[..TOKEN_LEN]);
        out
    }

    /// The token to hand to a querier at `ip` now.
    pub(crate) fn issue(&mut self, now: Instant, ip: IpAddr) -> [u8; TOKEN_LEN] {
        let epoch = self.epoch(now);
        self.mac(epoch, ip)
    }

    /// Whether `token` was issued to `ip` in this epoch or the previous one.
    pub(crate) fn verify(&mut self, now: Instant, ip: IpAddr, token: &[u8]) -> bool {
        if token.len() != TOKEN_LEN {
            return false;
        }
        let epoch = self.epoch(now);
        let current = self.mac(epoch, ip);
        let mut ok = constant_time_eq(&current, token);
        if let Some(prev) = epoch.checked_sub(1) {
            let previous = self.mac(prev, ip);
            ok |= constant_time_eq(&previous, token);
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bound_to_ip_and_rotates() {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let mut tokens = Tokens::new(&[7; 32], t0);
        let ip: IpAddr = "1.2.3.4".parse().unwrap();
        let other: IpAddr = "1.2.3.5".parse().unwrap();
        let tok = tokens.issue(t0, ip);
        assert!(tokens.verify(t0, ip, &tok));
        assert!(!tokens.verify(t0, other, &tok));
        assert!(!tokens.verify(t0, ip, &tok[..7]));
        // Still valid in the next epoch, not in the one after.
        assert!(tokens.verify(t0 + TOKEN_ROTATE_INTERVAL, ip, &tok));
        assert!(!tokens.verify(t0 + 2 * TOKEN_ROTATE_INTERVAL, ip, &tok));
        // A different secret gives different tokens.
        let mut other_node = Tokens::new(&[8; 32], t0);
        assert_ne!(other_node.issue(t0, ip), tok);
        // IPv4-mapped IPv6 is the same IP.
        assert!(tokens.verify(t0, "::ffff:1.2.3.4".parse().unwrap(), &tok));
    }
}
