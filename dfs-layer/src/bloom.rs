//! Bloom filter over user keys, one per table file and per chunk.
//!
//! Layout: `bits: [u8; m] | k: u8`. Probe positions use double hashing of a 64-bit hash
//! ([`hash64`]): `h1 + i * h2` for `i` in `0..k`, modulo the bit count.

/// A 64-bit hash of `data` (multiply-rotate over 8-byte words, murmur3's finalizer).
/// Stable across platforms and versions: it is part of the table format.
pub fn hash64(data: &[u8]) -> u64 {
    const M: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h: u64 = 0x51_7C_C1_B7_27_22_0A_95 ^ (data.len() as u64).wrapping_mul(M);
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().expect("8-byte chunk"));
        h = (h ^ w.wrapping_mul(M)).rotate_left(29).wrapping_mul(M);
    }
    let mut tail = [0u8; 8];
    let rest = chunks.remainder();
    tail[..rest.len()].copy_from_slice(rest);
    h ^= u64::from_le_bytes(tail).wrapping_mul(M);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Builds a filter from key hashes.
#[derive(Debug, Default)]
pub struct BloomBuilder {
    hashes: Vec<u64>,
}

impl BloomBuilder {
    /// Adds a key (duplicates are harmless).
    pub fn add(&mut self, key: &[u8]) {
        self.hashes.push(hash64(key));
    }

    /// Number of keys added.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// True if no key was added.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Encodes the filter with `bits_per_key` bits per key (0 gives an always-true filter).
    pub fn finish(&self, bits_per_key: u32) -> Vec<u8> {
        if bits_per_key == 0 {
            return vec![0];
        }
        let k = ((bits_per_key as f64 * 0.69) as u32).clamp(1, 30) as u8;
        let bits = (self.hashes.len() * bits_per_key as usize).max(64);
        let bytes = bits.div_ceil(8);
        let bits = bytes * 8;
        let mut out = vec![0u8; bytes + 1];
        for &h in &self.hashes {
            let (mut a, b) = (h, h.rotate_left(32) | 1);
            for _ in 0..k {
                let pos = (a % bits as u64) as usize;
                out[pos / 8] |= 1 << (pos % 8);
                a = a.wrapping_add(b);
            }
        }
        out[bytes] = k;
        out
    }
}

/// True if `key` may be in the set encoded by `filter`; false means definitely absent.
/// A malformed filter answers true (it can only cost a read, never a wrong answer).
pub fn may_contain(filter: &[u8], key: &[u8]) -> bool {
    may_contain_hash(filter, hash64(key))
}

/// [`may_contain`] with a precomputed [`hash64`].
pub fn may_contain_hash(filter: &[u8], h: u64) -> bool {
    let Some((&k, bitsarr)) = filter.split_last() else {
        return true;
    };
    if k == 0 || k > 30 || bitsarr.is_empty() {
        return true;
    }
    let bits = (bitsarr.len() * 8) as u64;
    let (mut a, b) = (h, h.rotate_left(32) | 1);
    for _ in 0..k {
        let pos = (a % bits) as usize;
        if bitsarr[pos / 8] & (1 << (pos % 8)) == 0 {
            return false;
        }
        a = a.wrapping_add(b);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives_and_low_false_positive_rate() {
        let mut b = BloomBuilder::default();
        for i in 0..10_000u32 {
            b.add(&i.to_be_bytes());
        }
        let f = b.finish(10);
        for i in 0..10_000u32 {
            assert!(may_contain(&f, &i.to_be_bytes()));
        }
        let fp = (10_000..110_000u32)
            .filter(|i| may_contain(&f, &i.to_be_bytes()))
            .count();
        assert!(fp < 2_000, "false positive rate too high: {fp} / 100000");
        assert!(may_contain(&[], b"x"), "malformed filter must answer maybe");
    }
}
