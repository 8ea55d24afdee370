//! Upload rate limits: token buckets in bytes per second, pure (time is an argument).

#[cfg(test)]
use std::time::Duration;
use std::time::Instant;

/// How much a bucket may save up, in seconds of its rate: small, so a limit holds over short
/// windows too (a 2 MiB/s limit never bursts past 2 MiB/s × this).
pub(crate) const BURST_SECONDS: f64 = 0.1;

/// The smallest burst, bytes: one block must always fit, or a slow limit would stall for good.
pub(crate) const MIN_BURST_BYTES: u64 = 16 * 1024;

/// A token bucket: `rate_bytes_per_sec` tokens accrue every second up to the burst size;
/// sending `n` bytes takes `n` tokens. A rate of 0 means unlimited.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    rate_bytes_per_sec: u64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket for `rate_bytes_per_sec` (0 = unlimited), starting at `now`.
    pub(crate) fn new(now: Instant, rate_bytes_per_sec: u64) -> Self {
        let burst = ((rate_bytes_per_sec as f64) * BURST_SECONDS).max(MIN_BURST_BYTES as f64);
        Self {
            rate_bytes_per_sec,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Whether this bucket limits anything.
    pub(crate) fn is_limited(&self) -> bool {
        self.rate_bytes_per_sec != 0
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate_bytes_per_sec as f64).min(self.burst);
    }

    /// Whether `bytes` may be sent now (tokens are not taken).
    pub(crate) fn can_take(&mut self, now: Instant, bytes: u64) -> bool {
        if !self.is_limited() {
            return true;
        }
        self.refill(now);
        self.tokens >= bytes as f64
    }

    /// Takes `bytes` tokens (call after [`TokenBucket::can_take`] said yes).
    pub(crate) fn take(&mut self, now: Instant, bytes: u64) {
        if self.is_limited() {
            self.refill(now);
            self.tokens -= bytes as f64;
        }
    }

    /// How long until `bytes` tokens are there.
    #[cfg(test)]
    pub(crate) fn wait_for(&mut self, now: Instant, bytes: u64) -> Duration {
        if !self.is_limited() {
            return Duration::ZERO;
        }
        self.refill(now);
        let missing = bytes as f64 - self.tokens;
        if missing <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(missing / self.rate_bytes_per_sec as f64)
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    /// Sends 16 KiB blocks as fast as the bucket allows for `secs` simulated seconds.
    fn sent_over(rate: u64, secs: u64) -> u64 {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(t0, rate);
        let mut t = t0;
        let mut sent = 0;
        while t < t0 + Duration::from_secs(secs) {
            if b.can_take(t, 16384) {
                b.take(t, 16384);
                sent += 16384;
            } else {
                t += b.wait_for(t, 16384).max(Duration::from_micros(100));
            }
        }
        sent
    }

    #[test]
    fn holds_the_rate_within_a_percent() {
        let rate = 2 * 1024 * 1024;
        let sent = sent_over(rate, 20);
        let expected = rate * 20;
        assert!(
            sent.abs_diff(expected) * 100 <= expected,
            "sent {sent}, expected {expected}"
        );
    }

    #[test]
    fn slow_rates_still_pass_whole_blocks() {
        let sent = sent_over(4096, 40);
        assert!((150_000..=180_000).contains(&sent), "sent {sent}");
    }

    #[test]
    fn zero_is_unlimited() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(t0, 0);
        for _ in 0..1000 {
            assert!(b.can_take(t0, 1 << 20));
            b.take(t0, 1 << 20);
        }
        assert_eq!(b.wait_for(t0, 1 << 30), Duration::ZERO);
    }
}
