//! Upload rate limits: token buckets in bytes per second, pure (time is an argument).

use std::time::{Duration, Instant};

/// How much a bucket may save up, in seconds of its rate: small, so a limit holds over short
/// windows too (a 2 MiB/s limit never bursts past 2 MiB/s × this).
pub const BURST_SECONDS: f64 = 0.1;

/// The smallest burst, bytes: one block must always fit, or a slow limit would stall for good.
pub const MIN_BURST_BYTES: u64 = 16 * 1024;

/// A token bucket: `rate_bytes_per_sec` tokens accrue every second up to the burst size;
/// sending `n` bytes takes `n` tokens. A rate of 0 means unlimited.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate_bytes_per_sec: u64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket for `rate_bytes_per_sec` (0 = unlimited), starting at `now`.
    pub fn new(now: Instant, rate_bytes_per_sec: u64) -> Self {
        let burst = ((rate_bytes_per_sec as f64) * BURST_SECONDS).max(MIN_BURST_BYTES as f64);
        Self {
            rate_bytes_per_sec,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Whether this bucket limits anything.
    pub fn is_limited(&self) -> bool {
        self.rate_bytes_per_sec != 0
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate_bytes_per_sec as f64).min(self.burst);
    }

    /// Whether `bytes` may be sent now (tokens are not taken).
    pub fn can_take(&mut self, now: Instant, bytes: u64) -> bool {
        if !self.is_limited() {
            return true;
        }
        self.refill(now);
        self.tokens >= bytes as f64
    }

    /// Takes `bytes` tokens (call after [`TokenBucket::can_take`] said yes).
    pub fn take(&mut self, now: Instant, bytes: u64) {
        if self.is_limited() {
            self.refill(now);
            self.tokens -= bytes as f64;
        }
    }

    /// How long until `bytes` tokens are there.
    #[cfg(test)]
    pub fn wait_for(&mut self, now: Instant, bytes: u64) -> Duration {
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

/// A token bucket counted in events (messages, connection attempts): `count` tokens accrue every
/// `period` up to `burst`; each event takes one. Pure: time is an argument.
#[derive(Debug, Clone)]
pub struct CountBucket {
    count: u32,
    period_millis: u64,
    burst: u32,
    tokens: u32,
    /// Accrual not yet turned into a whole token, in token-milliseconds (`< period_millis`).
    carry: u64,
    last: Instant,
}

impl CountBucket {
    /// A full bucket that accrues `per_sec` tokens a second.
    pub const fn new(now: Instant, per_sec: u32, burst: u32) -> Self {
        Self::per_period(now, per_sec, Duration::from_secs(1), burst)
    }

    /// A full bucket that accrues `count` tokens every `period` (at least 1 ms).
    pub const fn per_period(now: Instant, count: u32, period: Duration, burst: u32) -> Self {
        let millis = period.as_millis();
        let period_millis = if millis == 0 {
            1
        } else if millis > u64::MAX as u128 {
            u64::MAX
        } else {
            millis as u64
        };
        Self {
            count,
            period_millis,
            burst,
            tokens: burst,
            carry: 0,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last);
        let millis = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        if millis == 0 {
            // Less than a millisecond since the last refill: keep accruing from there.
            return;
        }
        self.last = self
            .last
            .checked_add(Duration::from_millis(millis))
            .unwrap_or(now);
        let earned = self
            .carry
            .saturating_add(millis.saturating_mul(u64::from(self.count)));
        self.carry = earned % self.period_millis;
        let whole = u32::try_from(earned / self.period_millis).unwrap_or(u32::MAX);
        self.tokens = self.tokens.saturating_add(whole).min(self.burst);
        if self.tokens == self.burst {
            self.carry = 0;
        }
    }

    /// Whether a token is there now (nothing taken).
    pub fn peek(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens > 0
    }

    /// Takes one token; false (nothing taken) when the bucket is empty.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        match self.tokens.checked_sub(1) {
            Some(left) => {
                self.tokens = left;
                true
            }
            None => false,
        }
    }

    /// When this bucket was last refilled (for evicting idle ones from a table).
    pub const fn last_used(&self) -> Instant {
        self.last
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    #[test]
    fn count_bucket_loses_no_time_to_calls_under_a_millisecond_apart() {
        let t0 = Instant::now();
        let mut b = CountBucket::new(t0, 1000, 1);
        assert!(b.try_take(t0));
        // Every 0.5 ms for 1 s: 1,000 tokens earned, about 1,000 taken.
        let taken = (1..=2000u64)
            .filter(|i| b.try_take(t0 + Duration::from_micros(500 * i)))
            .count();
        assert!((990..=1000).contains(&taken), "{taken}");
    }

    #[test]
    fn count_bucket_allows_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut b = CountBucket::new(t0, 10, 50);
        assert_eq!((0..100).filter(|_| b.try_take(t0)).count(), 50);
        // 10 a second, in 1 ms steps for 10 s: 100 more, not a token lost to rounding.
        let mut taken = 0;
        for ms in 1..=10_000u64 {
            if b.try_take(t0 + Duration::from_millis(ms)) {
                taken += 1;
            }
        }
        assert_eq!(taken, 100);
    }

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
