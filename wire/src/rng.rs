//! A small seeded PRNG (xoshiro256**, Blackman and Vigna) for transaction ids, random lookup
//! targets, fair peer selection and shuffling: unpredictable enough and reproducible, **not**
//! cryptographic. Nothing secret is ever drawn from it (token and connection-id keys come from
//! the caller's secret). The seed is passed in (STYLE.md §2): the engine draws it from a CSPRNG,
//! simulations and tests use fixed seeds, and the whole output is determined by it.

/// One SplitMix64 step: advances `state` by the golden-ratio increment and returns the mixed
/// value. A bijection of the state, so a counter through it gives well-spread, distinct values;
/// also a tiny PRNG of its own (`state` is the whole state).
pub const fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256** state, seeded through SplitMix64 so that any seed, all zeros included, gives a
/// good state.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator whose whole output is determined by `seed`: four SplitMix64 steps from it.
    #[must_use]
    pub const fn from_u64(seed: u64) -> Self {
        let mut x = seed;
        Self {
            s: [
                splitmix64(&mut x),
                splitmix64(&mut x),
                splitmix64(&mut x),
                splitmix64(&mut x),
            ],
        }
    }

    /// A generator seeded from 32 bytes (four little-endian words, each folded into the
    /// SplitMix64 state before its step), so that every seed bit counts.
    #[must_use]
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let mut s = [0u64; 4];
        let mut x = 0u64;
        for (word, bytes) in s.iter_mut().zip(seed.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(bytes);
            x ^= u64::from_le_bytes(b);
            *word = splitmix64(&mut x);
        }
        Self { s }
    }

    /// The next 64 bits.
    pub const fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// The next 32 bits (the high half of [`Rng::next_u64`], the better half of xoshiro).
    pub const fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// A number in `0..n` (0 when `n` is 0), by Lemire's multiply-shift; the bias is below
    /// `n / 2^64`, irrelevant for these uses.
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Fills `out` with random bytes (little-endian words).
    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    /// Shuffles `items` uniformly (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference output of SplitMix64 from 1234567 (Vigna's splitmix64.c).
    #[test]
    fn splitmix64_reference_vector() {
        let mut x = 1_234_567u64;
        let got: Vec<u64> = (0..3).map(|_| splitmix64(&mut x)).collect();
        assert_eq!(
            got,
            [
                6_457_827_717_110_365_317,
                3_203_168_211_198_807_973,
                9_817_491_932_198_370_423
            ]
        );
    }

    #[test]
    fn same_seed_same_sequence() {
        let mut a = Rng::from_u64(1);
        let mut b = Rng::from_u64(1);
        let mut c = Rng::from_u64(2);
        let xa: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let xb: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let xc: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(xa, xb);
        assert_ne!(xa, xc);
        let mut a = Rng::from_seed([3; 32]);
        let mut b = Rng::from_seed([3; 32]);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let mut zero = Rng::from_seed([0; 32]);
        assert_ne!(zero.next_u64(), zero.next_u64());
        let mut zero = Rng::from_u64(0);
        assert_ne!(zero.next_u64(), zero.next_u64());
    }

    #[test]
    fn below_stays_in_range() {
        let mut rng = Rng::from_u64(5);
        for n in [1usize, 2, 7, 1000, usize::MAX] {
            for _ in 0..100 {
                assert!(rng.below(n) < n);
            }
        }
        assert_eq!(rng.below(0), 0);
    }

    #[test]
    fn fill_covers_odd_lengths() {
        let mut rng = Rng::from_u64(7);
        let mut out = [0u8; 21];
        rng.fill(&mut out);
        assert!(out[16..].iter().any(|&b| b != 0));
        let mut again = Rng::from_u64(7);
        let mut first = [0u8; 8];
        again.fill(&mut first);
        assert_eq!(first, out[..8]);
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut rng = Rng::from_seed([9; 32]);
        let mut v: Vec<u32> = (0..50).collect();
        rng.shuffle(&mut v);
        assert_ne!(v, (0..50).collect::<Vec<_>>());
        v.sort_unstable();
        assert_eq!(v, (0..50).collect::<Vec<_>>());
    }
}
