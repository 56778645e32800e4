//! Criterion micro-benchmarks per layer: hot-KV get/put/merge, chunk pack and point read,
//! table block decode and seek, bloom probe, block-cache hit, iterator step.

use std::sync::Arc;

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use strata_chunkcache::{Chunk, HotKv, HotWrite};
use strata_dfs::internals::{may_contain, Block, BlockBuilder, BloomBuilder};
use strata_dfs::key::{internal_key, seek_key, ValueKind};
use strata_dfs::{
    AppendOperator, BlockCache, InternalIterator, ObjectStorage, Storage, TableBuildOptions,
    TableBuilder, TableReader,
};

const N: u64 = 100_000;

fn key(i: u64) -> Vec<u8> {
    let mut k = vec![(i % 128) as u8];
    k.extend_from_slice(&strata_bench::mix(i).to_be_bytes());
    k.push(0);
    k
}

fn write<'a>(
    seq: u64,
    kind: ValueKind,
    value: &'a [u8],
    merge: Option<&'a AppendOperator>,
) -> HotWrite<'a> {
    HotWrite {
        seq,
        kind,
        value,
        merge: merge.map(|m| m as &dyn strata_dfs::MergeOperator),
        latest_snapshot: None,
    }
}

fn hot_kv(c: &mut Criterion) {
    let hot = HotKv::new();
    for i in 0..N {
        hot.apply(
            &key(i),
            write(i + 1, ValueKind::Put, &i.to_le_bytes(), None),
        );
    }
    let keys: Vec<Vec<u8>> = (0..N).map(key).collect();
    let mut g = c.benchmark_group("hot_kv");
    let mut i = 0usize;
    g.bench_function("get", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            black_box(hot.get(&keys[i], u64::MAX >> 8, None))
        })
    });
    let mut seq = N + 1;
    g.bench_function("put_in_place", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            seq += 1;
            hot.apply(
                &keys[i],
                write(seq, ValueKind::Put, &seq.to_le_bytes(), None),
            );
        })
    });
    let op = AppendOperator {
        delimiter: Some(b','),
    };
    let lists = HotKv::new();
    g.bench_function("merge_append", |b| {
        b.iter(|| {
            i = (i + 7919) % 1000;
            seq += 1;
            lists.apply(
                &keys[i],
                write(seq, ValueKind::Merge, &seq.to_le_bytes(), Some(&op)),
            );
        })
    });
    g.finish();
}

fn sorted_entries(n: u64) -> Vec<(Vec<u8>, Bytes)> {
    let mut v: Vec<(Vec<u8>, Bytes)> = (0..n)
        .map(|i| {
            (
                internal_key(&key(i), i + 1, ValueKind::Put),
                Bytes::from(i.to_le_bytes().to_vec()),
            )
        })
        .collect();
    v.sort_by(|a, b| strata_dfs::key::compare(&a.0, &b.0));
    v
}

fn chunks(c: &mut Criterion) {
    let entries = sorted_entries(4096);
    let mut g = c.benchmark_group("chunk");
    g.bench_function("pack_4096_entries", |b| {
        b.iter(|| black_box(Chunk::build(1, &entries, 4096, 0, &|_| None)))
    });
    let chunk = Arc::new(Chunk::build(1, &entries, 4096, 0, &|_| None));
    let mut i = 0usize;
    g.bench_function("point_read", |b| {
        b.iter(|| {
            i = (i + 97) % entries.len();
            let uk = strata_dfs::key::user_key(&entries[i].0);
            let mut found = false;
            chunk
                .get_versions(uk, u64::MAX >> 8, &mut |_, _, _| {
                    found = true;
                    false
                })
                .unwrap();
            black_box(found)
        })
    });
    g.finish();
}

fn blocks_and_tables(c: &mut Criterion) {
    let entries = sorted_entries(200);
    let mut bb = BlockBuilder::new(16);
    for (k, v) in &entries {
        bb.add(k, v);
    }
    let raw = Bytes::from(bb.finish());
    let mut g = c.benchmark_group("table");
    g.bench_function("block_decode", |b| {
        b.iter(|| black_box(Block::new(raw.clone()).unwrap()))
    });
    let block = Block::new(raw.clone()).unwrap();
    let mut i = 0usize;
    g.bench_function("block_seek", |b| {
        b.iter(|| {
            i = (i + 13) % entries.len();
            let mut it = block.iter();
            it.seek(&entries[i].0);
            black_box(it.valid())
        })
    });
    let mut bloom = BloomBuilder::default();
    for i in 0..N {
        bloom.add(&key(i));
    }
    let filter = bloom.finish(10);
    g.bench_function("bloom_probe", |b| {
        b.iter(|| {
            i = (i + 7919) % (2 * N as usize);
            black_box(may_contain(&filter, &key(i as u64)))
        })
    });
    // A table file in memory, read through a warm block cache.
    let all = sorted_entries(N);
    let mut tb = TableBuilder::new(TableBuildOptions::default(), 1);
    for (k, v) in &all {
        tb.add(k, v);
    }
    let (bytes, _) = tb.finish();
    let storage: Arc<dyn Storage> = Arc::new(ObjectStorage::memory().unwrap());
    let size = bytes.len() as u64;
    storage.put("t.sst", bytes).unwrap();
    let cache = Arc::new(BlockCache::new(64 << 20));
    let table = TableReader::open(storage, Some(cache.clone()), "t.sst", 1, size).unwrap();
    for (k, _) in all.iter().step_by(50) {
        table
            .get_versions(
                strata_dfs::key::user_key(k),
                u64::MAX >> 8,
                &mut |_, _, _| false,
            )
            .unwrap();
    }
    g.bench_function("table_get_cache_hit", |b| {
        b.iter(|| {
            i = (i + 7919) % all.len();
            let uk = strata_dfs::key::user_key(&all[i].0);
            table
                .get_versions(uk, u64::MAX >> 8, &mut |_, _, _| false)
                .unwrap();
        })
    });
    g.bench_function("block_cache_hit", |b| {
        b.iter(|| black_box(cache.get(&(1, 0))))
    });
    g.bench_function("iterator_step", |b| {
        b.iter_batched(
            || {
                let mut it = table.iter(false);
                it.seek(&seek_key(
                    strata_dfs::key::user_key(&all[0].0),
                    u64::MAX >> 8,
                ));
                it
            },
            |mut it| {
                for _ in 0..1000 {
                    it.next();
                }
                black_box(it.valid())
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_millis(300)).measurement_time(std::time::Duration::from_secs(1));
    targets = hot_kv, chunks, blocks_and_tables
}
criterion_main!(benches);
