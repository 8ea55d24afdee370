//! The simulated swarms of the tracker load generators: which info-hashes exist, which torrent
//! each simulated peer is in, and which info-hashes a scrape asks for.
//!
//! Swarm sizes follow a Zipf law (exponent 1), as real trackers see: a few torrents hold most
//! peers, most torrents hold a few. Torrent rank `r` (0-based) of `n` is drawn by inverting the
//! continuous approximation of its distribution, `r = floor((n + 1)^u) - 1` for `u` uniform in
//! [0, 1): the most popular torrent gets `ln 2 / ln(n + 1)` of the peers and announces (10 % of
//! 1000 torrents), like the heavy-tailed (Pareto / gamma) torrent choice of aquatic's load
//! testers.

use seednode_wire::InfoHash;
use seednode_wire::rng::splitmix64;

/// The info-hashes of a run, most popular first.
#[derive(Debug, Clone)]
pub struct Swarms {
    info_hashes: Vec<InfoHash>,
}

impl Swarms {
    /// `n` info-hashes derived from `seed` (reproducible, distinct with overwhelming
    /// probability).
    #[must_use]
    pub fn generated(n: usize, seed: u64) -> Self {
        let info_hashes = (0..n as u64)
            .map(|t| {
                let mut state = seed ^ t.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let mut h = [0u8; 20];
                h[..8].copy_from_slice(&splitmix64(&mut state).to_be_bytes());
                h[8..16].copy_from_slice(&splitmix64(&mut state).to_be_bytes());
                h[16..].copy_from_slice(&(t as u32).to_be_bytes());
                InfoHash(h)
            })
            .collect();
        Self { info_hashes }
    }

    /// The given info-hashes, in the given order (the first is the most popular).
    ///
    /// # Panics
    /// When `info_hashes` is empty (a programmer error: the CLI refuses an empty list).
    #[must_use]
    pub fn given(info_hashes: Vec<InfoHash>) -> Self {
        assert!(
            !info_hashes.is_empty(),
            "a run needs at least one info-hash"
        );
        Self { info_hashes }
    }

    /// Every info-hash, most popular first.
    #[must_use]
    pub fn info_hashes(&self) -> &[InfoHash] {
        &self.info_hashes
    }

    /// Number of torrents.
    #[must_use]
    pub fn len(&self) -> usize {
        self.info_hashes.len()
    }

    /// Never true (see [`Self::given`]).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.info_hashes.is_empty()
    }

    /// The torrent rank for the uniform 64-bit value `x` (Zipf, exponent 1).
    #[must_use]
    pub fn rank(&self, x: u64) -> usize {
        let n = self.info_hashes.len();
        let u = (x >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
        let r = ((n as f64 + 1.0).powf(u)).floor() as usize;
        r.saturating_sub(1).min(n - 1)
    }

    /// The info-hash for the uniform 64-bit value `x`.
    #[must_use]
    pub fn pick(&self, x: u64) -> InfoHash {
        self.info_hashes[self.rank(x)]
    }

    /// The torrent of simulated peer `peer`: fixed for the run.
    #[must_use]
    pub fn torrent_of(&self, peer: u64) -> InfoHash {
        let mut state = peer ^ 0xA5A5_A5A5_A5A5;
        self.pick(splitmix64(&mut state))
    }
}

/// Whether simulated peer `peer` is a seeder (`left = 0`), with probability `percent` %.
#[must_use]
pub fn is_seeder(peer: u64, percent: u64) -> bool {
    let mut state = peer ^ 0x5EED_5EED;
    splitmix64(&mut state) % 100 < percent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_ranks_are_heavy_tailed_and_in_range() {
        let s = Swarms::generated(1000, 1);
        let mut counts = vec![0u32; 1000];
        let mut state = 7u64;
        for _ in 0..100_000 {
            counts[s.rank(splitmix64(&mut state))] += 1;
        }
        // Rank 0 gets ln 2 / ln 1001 = 10 % of the draws; the last ranks almost none.
        assert!(counts[0] > 9_000 && counts[0] < 11_000, "{}", counts[0]);
        assert!(counts[999] < 100);
        assert_eq!(s.rank(u64::MAX), 999);
        assert_eq!(s.rank(0), 0);
        assert_eq!(Swarms::generated(1, 1).rank(u64::MAX), 0);
    }

    #[test]
    fn generated_info_hashes_are_distinct_and_reproducible() {
        let a = Swarms::generated(1000, 3);
        let b = Swarms::generated(1000, 3);
        assert_eq!(a.info_hashes(), b.info_hashes());
        let mut sorted = a.info_hashes().to_vec();
        sorted.sort_by_key(|h| h.0);
        sorted.dedup();
        assert_eq!(sorted.len(), 1000);
    }
}
