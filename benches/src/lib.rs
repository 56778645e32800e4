//! Strata's benchmark harness: Flink-shaped state workloads run side by side on Strata and
//! (with the `rocksdb` feature) on RocksDB configured like Flink's RocksDB state backend.
#![deny(missing_docs)]

pub mod alloc;
pub mod checkpoints;
pub mod engines;
pub mod report;
pub mod workloads;

/// A Flink-shaped value-state key: key group (1 byte when max parallelism <= 128, else 2
/// bytes, big-endian), the 8-byte key, then the namespace.
pub fn flink_key(key_group: u16, key: u64, namespace: &[u8], max_parallelism: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + 8 + namespace.len());
    if max_parallelism <= 128 {
        k.push(key_group as u8);
    } else {
        k.extend_from_slice(&key_group.to_be_bytes());
    }
    k.extend_from_slice(&key.to_be_bytes());
    k.extend_from_slice(namespace);
    k
}

/// A bijective 64-bit mix (splitmix64's finalizer): distinct inputs give distinct keys in a
/// random-looking order, without holding a permutation in memory.
pub fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A small, fast, seedable generator (xorshift64*).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Self {
        Rng(mix(seed) | 1)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

/// YCSB's scrambled zipfian generator (Gray et al.) over `0..n` with constant 0.99.
#[derive(Debug, Clone)]
pub struct Zipfian {
    n: u64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
}

impl Zipfian {
    /// A generator over `0..n`. Computing zeta(n) is O(n), once.
    pub fn new(n: u64) -> Self {
        let theta = 0.99;
        let zeta = |k: u64| (1..=k).map(|i| 1.0 / (i as f64).powf(theta)).sum::<f64>();
        let zetan = zeta(n);
        let zeta2 = zeta(2);
        Zipfian {
            n,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zetan,
            eta: (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan),
        }
    }
    /// The next item: popular items are scattered over the key space (scrambled).
    pub fn next(&self, rng: &mut Rng) -> u64 {
        let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let uz = u * self.zetan;
        let rank = if uz < 1.0 {
            0
        } else if uz < 1.0 + 0.5f64.powf(self.theta) {
            1
        } else {
            ((self.n as f64) * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64
        };
        mix(rank.min(self.n - 1)) % self.n
    }
}

/// Peak resident set size of this process in bytes (`VmHWM`), if readable.
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Bytes of all files below `dir`.
pub fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_group_prefix_width_follows_max_parallelism() {
        assert_eq!(flink_key(3, 1, &[0], 128).len(), 10);
        assert_eq!(flink_key(3, 1, &[0], 4096).len(), 11);
        assert_eq!(&flink_key(300, 1, &[], 4096)[..2], &300u16.to_be_bytes());
    }

    #[test]
    fn mix_is_injective_on_a_sample_and_zipfian_is_skewed() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..100_000u64 {
            assert!(seen.insert(mix(i)));
        }
        let z = Zipfian::new(10_000);
        let mut rng = Rng::new(1);
        let mut counts = std::collections::HashMap::new();
        for _ in 0..100_000 {
            let v = z.next(&mut rng);
            assert!(v < 10_000);
            *counts.entry(v).or_insert(0u32) += 1;
        }
        let max = *counts.values().max().unwrap();
        assert!(
            max > 1_000,
            "the most popular item should take >1% of draws, got {max}"
        );
    }
}
