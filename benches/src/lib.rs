//! Strata benchmarks. The criterion suite and the side-by-side comparison with RocksDB are
//! a later issue; this crate holds the workload key builders they share.
#![deny(missing_docs)]

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

#[cfg(test)]
mod tests {
    #[test]
    fn key_group_prefix_width_follows_max_parallelism() {
        assert_eq!(super::flink_key(3, 1, &[0], 128).len(), 10);
        assert_eq!(super::flink_key(3, 1, &[0], 4096).len(), 11);
        assert_eq!(
            &super::flink_key(300, 1, &[], 4096)[..2],
            &300u16.to_be_bytes()
        );
    }
}
