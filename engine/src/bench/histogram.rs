//! A fixed-size log-linear histogram of durations in microseconds (HdrHistogram's idea with 32
//! sub-buckets per power of two): constant memory whatever the sample count, mergeable across
//! connections, quantiles within 1/32 (3.2 %) of the true value.

use std::time::Duration;

/// Sub-buckets per power of two, as a power of two: 2^5 = 32, a relative error below 3.2 %.
const SUB_BITS: u32 = 5;
/// Values below this are exact.
const LINEAR: u64 = 1 << SUB_BITS;
/// Buckets for every `u64`: one linear run, then 32 per remaining power of two.
const BUCKETS: usize = ((64 - SUB_BITS as usize) + 1) << SUB_BITS;

/// Counts of microsecond values, in [`BUCKETS`] log-linear buckets (15 KiB).
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("total", &self.total)
            .field("p50_us", &self.quantile_us(0.5))
            .field("max_us", &self.max)
            .finish()
    }
}

const fn index(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // >= SUB_BITS
    let shift = exp - SUB_BITS;
    let mantissa = (v >> shift) & (LINEAR - 1);
    (((shift + 1) as usize) << SUB_BITS) | mantissa as usize
}

/// The largest value of bucket `i`.
const fn upper(i: usize) -> u64 {
    if (i as u64) < LINEAR {
        return i as u64;
    }
    let shift = (i >> SUB_BITS) as u32 - 1;
    let mantissa = (i as u64) & (LINEAR - 1);
    let low = (LINEAR | mantissa) << shift;
    low + ((1u64 << shift) - 1)
}

impl Histogram {
    /// An empty histogram.
    #[must_use]
    pub fn new() -> Self {
        Self {
            counts: Box::new([0; BUCKETS]),
            total: 0,
            max: 0,
        }
    }

    /// Records one value, microseconds.
    pub fn record_us(&mut self, us: u64) {
        self.counts[index(us)] += 1;
        self.total += 1;
        self.max = self.max.max(us);
    }

    /// Records one duration (whole microseconds, saturating).
    pub fn record(&mut self, d: Duration) {
        self.record_us(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Self) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// Values recorded.
    #[must_use]
    pub const fn count(&self) -> u64 {
        self.total
    }

    /// The largest value recorded, microseconds; 0 when empty.
    #[must_use]
    pub const fn max_us(&self) -> u64 {
        self.max
    }

    /// The `q`-quantile (0 to 1), microseconds: the upper edge of the bucket holding it, never
    /// above the largest value recorded; 0 when empty.
    #[must_use]
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper(i).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_u64_without_gaps() {
        for i in 0..BUCKETS - 1 {
            assert_eq!(index(upper(i) + 1), i + 1, "gap after bucket {i}");
            assert_eq!(index(upper(i)), i);
        }
        assert_eq!(index(u64::MAX), BUCKETS - 1);
        assert_eq!(upper(BUCKETS - 1), u64::MAX);
    }

    #[test]
    fn quantiles_within_relative_error() {
        let mut h = Histogram::new();
        for v in 1..=10_000u64 {
            h.record_us(v);
        }
        for (q, want) in [(0.5, 5000.0), (0.9, 9000.0), (0.99, 9900.0)] {
            let got = h.quantile_us(q) as f64;
            assert!((got - want).abs() / want < 0.035, "q {q}: {got} vs {want}");
        }
        assert_eq!(h.quantile_us(1.0), 10_000);
        assert_eq!(Histogram::new().quantile_us(0.5), 0);
    }

    #[test]
    fn merge_adds_counts() {
        let (mut a, mut b) = (Histogram::new(), Histogram::new());
        a.record_us(10);
        b.record_us(1000);
        a.merge(&b);
        assert_eq!(a.count(), 2);
        assert_eq!(a.max_us(), 1000);
    }
}
