//! LEDBAT congestion control (RFC 6817) with BEP 29's parameters: a 100 ms target queuing
//! delay, a congestion-window gain of at most [`MAX_CWND_INCREASE_BYTES_PER_RTT`] per round trip,
//! halving on loss and one packet after a timeout.
//!
//! Delay samples are the peer's `timestamp_difference_microseconds`: its receive time of our
//! packet minus our send time, i.e. the one-way delay plus an unknown, constant clock offset.
//! The base delay is the minimum over [`BASE_DELAY_SLOTS`] per-minute minima (RFC 6817 §3.4.2);
//! the queuing delay is the latest sample minus the base. Samples wrap at 2³² µs, so all
//! comparisons are wrapping.

use std::time::{Duration, Instant};

use crate::limits::{
    BASE_DELAY_INTERVAL, BASE_DELAY_SLOTS, INITIAL_CWND_BYTES, MAX_CWND_BYTES,
    MAX_CWND_INCREASE_BYTES_PER_RTT, MIN_CWND_BYTES, TARGET_DELAY,
};

/// Wrapping "a is earlier/smaller than b" for 32-bit µs delay samples.
fn delay_less(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < 0x8000_0000
}

/// One connection's LEDBAT state.
#[derive(Debug, Clone)]
pub struct Ledbat {
    cwnd: usize,
    /// Per-minute minima, newest last; at most [`BASE_DELAY_SLOTS`].
    history: [Option<u32>; BASE_DELAY_SLOTS],
    slot_started: Option<Instant>,
    last_queuing_delay: Duration,
}

impl Default for Ledbat {
    fn default() -> Self {
        Self::new()
    }
}

impl Ledbat {
    /// A new controller with [`INITIAL_CWND_BYTES`].
    #[must_use]
    pub fn new() -> Self {
        Self {
            cwnd: INITIAL_CWND_BYTES,
            history: [None; BASE_DELAY_SLOTS],
            slot_started: None,
            last_queuing_delay: Duration::ZERO,
        }
    }

    /// The congestion window, bytes.
    #[must_use]
    pub fn cwnd(&self) -> usize {
        self.cwnd
    }

    /// The queuing delay of the latest sample (sample minus base delay).
    #[must_use]
    pub fn queuing_delay(&self) -> Duration {
        self.last_queuing_delay
    }

    fn base_delay(&self) -> Option<u32> {
        self.history
            .iter()
            .flatten()
            .copied()
            .reduce(|a, b| if delay_less(b, a) { b } else { a })
    }

    /// Records a one-way delay sample (µs, wrapping, with clock offset) taken at `now`.
    pub fn on_delay_sample(&mut self, now: Instant, sample_us: u32) {
        let rotate = match self.slot_started {
            None => true,
            Some(t) => now.saturating_duration_since(t) >= BASE_DELAY_INTERVAL,
        };
        if rotate {
            self.history.rotate_left(1);
            self.history[BASE_DELAY_SLOTS - 1] = Some(sample_us);
            self.slot_started = Some(now);
        } else if let Some(m) = &mut self.history[BASE_DELAY_SLOTS - 1]
            && delay_less(sample_us, *m)
        {
            *m = sample_us;
        }
        let base = self.base_delay().unwrap_or(sample_us);
        self.last_queuing_delay = Duration::from_micros(u64::from(sample_us.wrapping_sub(base)));
    }

    /// Grows or shrinks the window for `bytes_acked` newly acknowledged bytes (RFC 6817 §2.4.2):
    /// `cwnd += GAIN * off_target / TARGET * bytes_acked / cwnd`, where `GAIN` is
    /// [`MAX_CWND_INCREASE_BYTES_PER_RTT`], so a full window of acks moves it by at most that.
    pub fn on_ack(&mut self, bytes_acked: usize) {
        if bytes_acked == 0 {
            return;
        }
        let target = TARGET_DELAY.as_micros() as i64;
        let queuing = i64::try_from(self.last_queuing_delay.as_micros()).unwrap_or(i64::MAX);
        // Clamp so one sample can at most cancel one full gain step downwards.
        let off_target = (target - queuing).max(-target);
        let gain = MAX_CWND_INCREASE_BYTES_PER_RTT as i64;
        let acked = bytes_acked.min(self.cwnd) as i64;
        let delta = gain * off_target * acked / (target * self.cwnd as i64);
        let cwnd = (self.cwnd as i64 + delta).clamp(MIN_CWND_BYTES as i64, MAX_CWND_BYTES as i64);
        self.cwnd = cwnd as usize;
    }

    /// A packet was lost (three duplicate ACKs or selective-ACK evidence): halve, at least one
    /// packet (RFC 6817 §2.4.2, BEP 29).
    pub fn on_loss(&mut self) {
        self.cwnd = (self.cwnd / 2).max(MIN_CWND_BYTES);
    }

    /// The retransmission timer fired: one packet (BEP 29 §Timeouts).
    pub fn on_timeout(&mut self) {
        self.cwnd = MIN_CWND_BYTES;
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // test epochs only
mod tests {
    use super::*;

    #[test]
    fn grows_under_target_and_bounded_per_rtt() {
        let t0 = Instant::now();
        let mut l = Ledbat::new();
        l.on_delay_sample(t0, 1_000_000);
        let before = l.cwnd();
        l.on_ack(before); // a full window acked with zero queuing delay
        assert_eq!(l.cwnd() - before, MAX_CWND_INCREASE_BYTES_PER_RTT);
    }

    #[test]
    fn shrinks_above_target() {
        let t0 = Instant::now();
        let mut l = Ledbat::new();
        l.cwnd = 100_000;
        l.on_delay_sample(t0, 5_000);
        l.on_delay_sample(t0, 5_000 + 250_000); // 250 ms of queue
        assert_eq!(l.queuing_delay(), Duration::from_millis(250));
        l.on_ack(100_000);
        assert_eq!(l.cwnd(), 100_000 - MAX_CWND_INCREASE_BYTES_PER_RTT);
    }

    #[test]
    fn base_delay_forgets_after_two_minutes_and_wraps() {
        let t0 = Instant::now();
        let mut l = Ledbat::new();
        l.on_delay_sample(t0, u32::MAX - 10); // near the wrap
        l.on_delay_sample(t0 + Duration::from_secs(1), 20); // 31 µs later, wrapped
        assert_eq!(l.queuing_delay(), Duration::from_micros(31));
        // Route change: delays now 1 s larger; after two minutes the old minimum is gone.
        l.on_delay_sample(t0 + Duration::from_secs(61), 1_000_020);
        l.on_delay_sample(t0 + Duration::from_secs(122), 1_000_020);
        assert_eq!(l.queuing_delay(), Duration::ZERO);
    }

    #[test]
    fn loss_halves_timeout_resets_never_below_one_packet() {
        let mut l = Ledbat::new();
        l.cwnd = 10 * MIN_CWND_BYTES;
        l.on_loss();
        assert_eq!(l.cwnd(), 5 * MIN_CWND_BYTES);
        l.on_timeout();
        assert_eq!(l.cwnd(), MIN_CWND_BYTES);
        l.on_loss();
        assert_eq!(l.cwnd(), MIN_CWND_BYTES);
    }
}
