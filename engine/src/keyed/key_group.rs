//! Key groups, computed exactly as Flink computes them: `murmurHash(key.hashCode()) %
//! maxParallelism`, and the contiguous key-group range each operator instance owns.

/// Flink's `MathUtils.murmurHash`: the murmur3 finalizer over one 32-bit hash code.
pub fn murmur_hash(code: i32) -> i32 {
    let mut c = code.wrapping_mul(0xcc9e_2d51_u32 as i32);
    c = c.rotate_left(15);
    c = c.wrapping_mul(0x1b87_3593);
    c = c.rotate_left(13);
    c = c.wrapping_mul(5).wrapping_add(0xe654_6b64_u32 as i32);
    c ^= 4;
    // bitMix
    let mut h = c as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    let c = h as i32;
    if c >= 0 {
        c
    } else if c != i32::MIN {
        -c
    } else {
        0
    }
}

/// Flink's key-group assignment: `murmurHash(keyHash) % maxParallelism`.
pub fn key_group_for_hash(key_hash: i32, max_parallelism: u16) -> u16 {
    (murmur_hash(key_hash) % i32::from(max_parallelism)) as u16
}

/// Java's `Arrays.hashCode(byte[])`, the hash Flink sees for a `byte[]` key.
pub fn java_bytes_hash(bytes: &[u8]) -> i32 {
    bytes.iter().fold(1i32, |h, &b| {
        h.wrapping_mul(31).wrapping_add(i32::from(b as i8))
    })
}

/// An inclusive range of key groups, as Flink's `KeyGroupRange`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyGroupRange {
    /// First key group.
    pub start: u16,
    /// Last key group (inclusive).
    pub end: u16,
}

impl KeyGroupRange {
    /// `start..=end`.
    pub fn new(start: u16, end: u16) -> Self {
        KeyGroupRange { start, end }
    }
    /// True if `kg` is in the range.
    pub fn contains(&self, kg: u16) -> bool {
        (self.start..=self.end).contains(&kg)
    }
    /// Flink's `computeKeyGroupRangeForOperatorIndex`: the groups operator `index` of
    /// `parallelism` owns.
    pub fn for_operator(max_parallelism: u16, parallelism: u16, index: u16) -> Self {
        let (m, p, i) = (
            u32::from(max_parallelism),
            u32::from(parallelism),
            u32::from(index),
        );
        let start = (i * m).div_ceil(p);
        let end = ((i + 1) * m).div_ceil(p) - 1;
        KeyGroupRange::new(start as u16, end as u16)
    }
}
