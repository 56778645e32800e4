//! Chunks must hold small Flink-shaped entries (10-20 byte keys, 8-100 byte values) in at
//! most a third of the memory the hot tier needs for them. Sizes are deterministic, so this
//! is a measurement with a bound, not a timing.

use bytes::Bytes;
use strata_chunkcache::{Chunk, HotKv, HotWrite};
use strata_dfs::key::{internal_key, ValueKind};

/// A Flink-shaped serialized key: key-group (2 bytes), a long key (8 bytes), a namespace of
/// 0-8 bytes (void namespace or a window end timestamp), plus a table prefix (4 bytes).
fn flink_key(i: u64) -> Vec<u8> {
    let mut k = 7u32.to_be_bytes().to_vec();
    let id = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20; // scattered ids
    k.extend_from_slice(&((id % 128) as u16).to_be_bytes());
    k.extend_from_slice(&id.to_be_bytes());
    let ns_len = (i % 3) * 4; // 0, 4 or 8 bytes
    k.extend_from_slice(
        &(1_700_000_000_000u64 + (i % 1440) * 60_000).to_be_bytes()[..ns_len as usize],
    );
    k
}

/// A Flink-shaped serialized value of 8-100 bytes: counters, timestamps and short strings,
/// the mix value/aggregating state holds.
fn flink_value(i: u64) -> Vec<u8> {
    let len = 8 + (i.wrapping_mul(2654435761) % 93) as usize;
    let mut v = Vec::with_capacity(len);
    let mut x = i;
    while v.len() < len {
        match x % 3 {
            0 => v.extend_from_slice(&(x % 100_000).to_le_bytes()),
            1 => v.extend_from_slice(&(1_700_000_000_000 + x % 86_400_000).to_be_bytes()),
            _ => v.extend_from_slice(format!("dev-{:06}", x % 50_000).as_bytes()),
        }
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
    }
    v.truncate(len);
    v
}

fn measure(n: u64, value: impl Fn(u64) -> Vec<u8>) -> (usize, usize) {
    let hot = HotKv::new();
    for i in 0..n {
        let v = value(i);
        hot.apply(
            &flink_key(i),
            HotWrite {
                seq: i + 1,
                kind: ValueKind::Put,
                value: &v,
                merge: None,
                latest_snapshot: None,
            },
        );
    }
    let hot_bytes = hot.bytes();
    let mut entries: Vec<(Vec<u8>, Bytes)> = hot
        .coldest(usize::MAX)
        .into_iter()
        .flat_map(|(k, versions, _)| {
            versions.into_iter().map(move |v| {
                (
                    internal_key(&k, v.seq, v.kind),
                    Bytes::copy_from_slice(&v.value),
                )
            })
        })
        .collect();
    entries.sort_by(|a, b| strata_dfs::key::compare(&a.0, &b.0));
    // Chunks are packed a few thousand entries at a time, as the maintenance thread does.
    let chunk_bytes: usize = entries
        .chunks(4096)
        .enumerate()
        .map(|(i, part)| Chunk::build(i as u64, part, 4096, 0, &|_| None).size())
        .sum();
    (hot_bytes, chunk_bytes)
}

#[test]
fn chunks_hold_flink_shaped_entries_in_a_third_of_hot_memory() {
    let (hot, chunks) = measure(100_000, flink_value);
    let ratio = hot as f64 / chunks as f64;
    println!(
        "flink-shaped: hot {hot} B, chunks {chunks} B, ratio {ratio:.2}x ({:.1} vs {:.1} B/entry)",
        hot as f64 / 1e5,
        chunks as f64 / 1e5
    );
    assert!(
        ratio >= 3.0,
        "chunks use {chunks} B for {hot} B of hot entries: only {ratio:.2}x"
    );
}

#[test]
fn incompressible_values_still_shrink() {
    // Random values are the worst case: lz4 saves nothing on them, so only the hot tier's
    // per-entry overhead (about 140 bytes with inline keys) and the shared key prefixes are
    // saved. Values average 54 bytes here, so about 2x is what is left to gain.
    let (hot, chunks) = measure(50_000, |i| {
        let len = 8 + (i % 93) as usize;
        let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect()
    });
    let ratio = hot as f64 / chunks as f64;
    println!("random values: hot {hot} B, chunks {chunks} B, ratio {ratio:.2}x");
    assert!(ratio >= 2.0, "ratio {ratio:.2}x");
}
