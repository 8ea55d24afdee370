//! The periodic one-line summary at `info` level: peers, upload rate and total uploaded, logged
//! only while something is happening (a peer connected, or bytes sent since the last line).

use std::fmt;
use std::time::{Duration, Instant};

use tracing::info;

use super::Reactor;

/// Default time between summary lines (`seed --summary-interval`).
pub(crate) const DEFAULT_SUMMARY_INTERVAL: Duration = Duration::from_secs(30);

/// When the next line is due and what the last one counted.
pub(super) struct Summary {
    /// `None`: no summary lines.
    interval: Option<Duration>,
    /// When the last line was due (the rate is over the time since).
    last: Instant,
    /// Total bytes uploaded at `last`.
    last_uploaded: u64,
}

impl Summary {
    pub(super) fn new(now: Instant) -> Self {
        Self {
            interval: Some(DEFAULT_SUMMARY_INTERVAL),
            last: now,
            last_uploaded: 0,
        }
    }

    /// Whether a line may be due at `now` (then call [`Summary::line`]).
    pub(super) fn due(&self, now: Instant) -> bool {
        self.interval
            .is_some_and(|i| now.saturating_duration_since(self.last) >= i)
    }

    /// The line's numbers at `now`, or `None` when nothing happened since the last one; starts
    /// the next interval either way.
    fn line(&mut self, now: Instant, peers: usize, uploaded: u64) -> Option<(u64, u64)> {
        let secs = now.saturating_duration_since(self.last).as_secs_f64();
        let sent = uploaded.saturating_sub(self.last_uploaded);
        self.last = now;
        self.last_uploaded = uploaded;
        if peers == 0 && sent == 0 {
            return None;
        }
        // Whole bytes per second are plenty for a log line.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let rate = if secs > 0.0 {
            (sent as f64 / secs) as u64
        } else {
            0
        };
        Some((rate, sent))
    }
}

/// Bytes with a binary unit, one decimal: `1.5 MiB`.
pub(crate) struct HumanBytes(pub(crate) u64);

impl fmt::Display for HumanBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
        let mut unit = 0;
        let mut scaled = self.0;
        let mut tenths = 0;
        while scaled >= 1024 && unit + 1 < UNITS.len() {
            tenths = (scaled % 1024) * 10 / 1024;
            scaled /= 1024;
            unit += 1;
        }
        if unit == 0 {
            write!(f, "{scaled} B")
        } else {
            write!(f, "{scaled}.{tenths} {}", UNITS[unit])
        }
    }
}

impl Reactor {
    /// Sets the time between summary lines; `None` turns them off.
    pub(crate) fn set_summary_interval(&mut self, interval: Option<Duration>) {
        self.summary.interval = interval.filter(|i| !i.is_zero());
    }

    /// Logs the summary line when due and something happened.
    pub(super) fn log_summary(&mut self, now: Instant) {
        let peers: usize = self.torrents.iter().map(|t| t.peers).sum();
        let uploaded: u64 = self.torrents.iter().map(|t| t.uploaded).sum();
        if let Some((rate, _)) = self.summary.line(now, peers, uploaded) {
            info!(
                peers,
                upload = %format_args!("{}/s", HumanBytes(rate)),
                uploaded = %HumanBytes(uploaded),
                "summary"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_when_nothing_happens() {
        let t0 = Instant::now();
        let mut s = Summary::new(t0);
        assert!(!s.due(t0));
        let t1 = t0 + DEFAULT_SUMMARY_INTERVAL;
        assert!(s.due(t1));
        assert_eq!(s.line(t1, 0, 0), None);
        assert!(!s.due(t1));
        let t2 = t1 + Duration::from_secs(10);
        assert_eq!(s.line(t2, 1, 10_000), Some((1_000, 10_000)));
        let t3 = t2 + Duration::from_secs(10);
        assert_eq!(s.line(t3, 0, 10_000), None);
    }

    #[test]
    fn human_bytes() {
        assert_eq!(HumanBytes(0).to_string(), "0 B");
        assert_eq!(HumanBytes(1023).to_string(), "1023 B");
        assert_eq!(HumanBytes(1536).to_string(), "1.5 KiB");
        assert_eq!(HumanBytes(5 << 30).to_string(), "5.0 GiB");
    }
}
