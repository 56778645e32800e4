//! Chunks: immutable, sorted, lz4-compressed blocks of warm entries, held in memory.
//!
//! A chunk is a list of blocks in the table block format ([`strata_dfs::internals`]: prefix-
//! compressed internal keys with restart points) each stored with the block trailer (type,
//! crc32) and lz4-compressed, plus an in-memory index (the last internal key of each block)
//! and a bloom filter over its keys. A point read binary-searches the index and
//! decompresses one block. Chunks are never persisted: they are written out as level-0
//! table files.

use std::cmp::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use strata_dfs::internals::{decode_block, encode_block, hash64, Block, BlockBuilder, BlockIter};
use strata_dfs::key::{self, SeqNo, ValueKind};
use strata_dfs::{Compression, ConcatIter, Error, Result, Segments};

/// A cache-line-blocked bloom filter: each key sets 6 bits within one 512-bit line picked
/// by its hash, so a probe costs one cache miss however large the filter (a chunk is probed
/// on every read that misses the hot tier). About 10 bits per key. Memory only.
#[derive(Debug, Default)]
struct LineBloom {
    lines: Vec<[u64; 8]>,
}

impl LineBloom {
    const PROBES: u32 = 6;

    fn new(hashes: &[u64]) -> Self {
        let n = (hashes.len() * 10).div_ceil(512).max(1);
        let mut lines = vec![[0u64; 8]; n];
        for &h in hashes {
            let line = &mut lines[(h % n as u64) as usize];
            for b in Self::bits(h) {
                line[(b / 64) as usize] |= 1 << (b % 64);
            }
        }
        LineBloom { lines }
    }

    fn bits(h: u64) -> impl Iterator<Item = u32> {
        let (mut a, step) = ((h >> 32) as u32, (h as u32 >> 9) | 1);
        (0..Self::PROBES).map(move |_| {
            a = a.wrapping_add(step);
            a % 512
        })
    }

    fn may_contain(&self, h: u64) -> bool {
        let line = &self.lines[(h % self.lines.len() as u64) as usize];
        Self::bits(h).all(|b| line[(b / 64) as usize] & (1 << (b % 64)) != 0)
    }

    fn bytes(&self) -> usize {
        self.lines.len() * 64
    }
}

/// An immutable chunk.
#[derive(Debug)]
pub struct Chunk {
    id: u64,
    blocks: Vec<Bytes>,
    index: Vec<Vec<u8>>,
    bloom: LineBloom,
    entries: usize,
    raw_bytes: usize,
    size: usize,
}

impl Chunk {
    /// Builds a chunk from entries sorted by internal key. `raw_bytes` is what the entries
    /// cost in the hot tier (for the compression ratio). `prefix_len(key)` gives the length
    /// of a key's scan prefix, if its table has one: the bloom filter then holds prefixes
    /// too, so prefix scans can skip the chunk.
    pub fn build(
        id: u64,
        entries: &[(Vec<u8>, Bytes)],
        block_bytes: usize,
        raw_bytes: usize,
        prefix_len: &dyn Fn(&[u8]) -> Option<usize>,
    ) -> Chunk {
        let mut builder = BlockBuilder::new(16);
        let mut hashes: Vec<u64> = Vec::with_capacity(entries.len());
        let mut blocks = Vec::new();
        let mut index = Vec::new();
        let mut last_user: Option<&[u8]> = None;
        let mut last_prefix: Option<&[u8]> = None;
        let finish = |b: &mut BlockBuilder, blocks: &mut Vec<Bytes>, index: &mut Vec<Vec<u8>>| {
            let last = b.last_key().to_vec();
            let raw = b.finish();
            let mut stored = Vec::with_capacity(raw.len() / 2);
            encode_block(&mut stored, &raw, Compression::Lz4);
            blocks.push(Bytes::from(stored));
            index.push(last);
        };
        for (k, v) in entries {
            let uk = key::user_key(k);
            if last_user != Some(uk) {
                hashes.push(hash64(uk));
                last_user = Some(uk);
                if let Some(p) = prefix_len(uk).and_then(|r| uk.get(..r)) {
                    if last_prefix != Some(p) {
                        hashes.push(hash64(p));
                        last_prefix = Some(p);
                    }
                }
            }
            builder.add(k, v);
            if builder.estimated_size() >= block_bytes {
                finish(&mut builder, &mut blocks, &mut index);
            }
        }
        if !builder.is_empty() {
            finish(&mut builder, &mut blocks, &mut index);
        }
        let bloom = LineBloom::new(&hashes);
        let size = std::mem::size_of::<Chunk>()
            + blocks.iter().map(|b| b.len() + 32).sum::<usize>()
            + index.iter().map(|k| k.len() + 24).sum::<usize>()
            + bloom.bytes();
        Chunk {
            id,
            blocks,
            index,
            bloom,
            entries: entries.len(),
            raw_bytes,
            size,
        }
    }

    /// False if no key starting with `prefix` (a full scan prefix of its table) is here.
    pub fn may_contain_prefix(&self, prefix: &[u8]) -> bool {
        self.bloom.may_contain(hash64(prefix))
    }

    /// Chunk id (creation order).
    pub fn id(&self) -> u64 {
        self.id
    }
    /// Bytes held in memory.
    pub fn size(&self) -> usize {
        self.size
    }
    /// Bytes the same entries cost in the hot tier.
    pub fn raw_bytes(&self) -> usize {
        self.raw_bytes
    }
    /// Number of entries (versions).
    pub fn entries(&self) -> usize {
        self.entries
    }

    fn block(&self, i: usize) -> Result<Block> {
        let name = || format!("in-memory chunk {}", self.id);
        decode_block(&self.blocks[i])
            .and_then(Block::new)
            .map_err(|e| e.in_file(&name()))
    }

    /// Calls `f(kind, seq, value)` for the versions of `user_key` visible at `seq`, newest
    /// first, until `f` returns false. Returns true if `f` stopped it.
    pub fn get_versions(
        &self,
        user_key: &[u8],
        seq: SeqNo,
        f: &mut dyn FnMut(ValueKind, SeqNo, &[u8]) -> bool,
    ) -> Result<bool> {
        self.get_versions_hashed(user_key, hash64(user_key), seq, f)
    }

    /// [`Chunk::get_versions`] with the key's [`hash64`] computed by the caller (once for
    /// every chunk it probes).
    pub fn get_versions_hashed(
        &self,
        user_key: &[u8],
        hash: u64,
        seq: SeqNo,
        f: &mut dyn FnMut(ValueKind, SeqNo, &[u8]) -> bool,
    ) -> Result<bool> {
        if !self.bloom.may_contain(hash) {
            return Ok(false);
        }
        let target = key::seek_key(user_key, seq);
        let mut bi = self
            .index
            .partition_point(|last| key::compare(last, &target) == Ordering::Less);
        let mut first = true;
        while bi < self.blocks.len() {
            let block = self.block(bi)?;
            let mut it = block.iter();
            if first {
                it.seek(&target);
                first = false;
            } else {
                it.seek_to_first();
            }
            while it.valid() {
                let Some(p) = key::parse(it.key()) else {
                    return Err(Error::corruption(
                        format!("in-memory chunk {}", self.id),
                        "bad key",
                    ));
                };
                if p.user_key != user_key {
                    return Ok(false);
                }
                if !f(p.kind, p.seq, it.value()) {
                    return Ok(true);
                }
                it.next();
            }
            it.status()?;
            bi += 1;
        }
        Ok(false)
    }

    /// An iterator over the whole chunk.
    pub fn iter(self: &Arc<Self>) -> ChunkIter {
        ConcatIter::new(ChunkBlocks(self.clone()))
    }
}

/// A chunk's blocks as segments.
pub struct ChunkBlocks(Arc<Chunk>);

impl Segments for ChunkBlocks {
    type Iter = BlockIter;
    fn count(&self) -> usize {
        self.0.blocks.len()
    }
    fn find(&self, target: &[u8]) -> usize {
        self.0
            .index
            .partition_point(|last| key::compare(last, target) == Ordering::Less)
    }
    fn open(&self, i: usize) -> Result<BlockIter> {
        Ok(self.0.block(i)?.iter())
    }
}

/// Iterator over a chunk's entries, decompressing one block at a time.
pub type ChunkIter = ConcatIter<ChunkBlocks>;

#[cfg(test)]
mod tests {
    use super::*;
    use strata_dfs::key::internal_key;
    use strata_dfs::InternalIterator;

    fn entries(n: u32) -> Vec<(Vec<u8>, Bytes)> {
        (0..n)
            .map(|i| {
                let mut k = vec![0, 0, 0, 1];
                k.extend_from_slice(&u64::from(i).to_be_bytes());
                (
                    internal_key(&k, u64::from(i) + 1, ValueKind::Put),
                    Bytes::from(u64::from(i * 3).to_le_bytes().to_vec()),
                )
            })
            .collect()
    }

    #[test]
    fn line_bloom_has_no_false_negatives_and_few_false_positives() {
        let hashes: Vec<u64> = (0..20_000u64).map(|i| hash64(&i.to_le_bytes())).collect();
        let b = LineBloom::new(&hashes);
        assert!(hashes.iter().all(|&h| b.may_contain(h)));
        let fp = (20_000..120_000u64)
            .filter(|i| b.may_contain(hash64(&i.to_le_bytes())))
            .count();
        assert!(fp < 3_000, "false positive rate too high: {fp} / 100000");
    }

    #[test]
    fn point_reads_and_iteration() {
        let e = entries(5000);
        let c = Arc::new(Chunk::build(1, &e, 4096, 0, &|_| None));
        for (k, v) in e.iter().step_by(97) {
            let mut got = None;
            c.get_versions(key::user_key(k), SeqNo::MAX >> 8, &mut |_, _, val| {
                got = Some(val.to_vec());
                false
            })
            .unwrap();
            assert_eq!(got.as_deref(), Some(&v[..]));
        }
        let mut it = c.iter();
        it.seek_to_first();
        let mut n = 0;
        while it.valid() {
            n += 1;
            it.next();
        }
        assert_eq!(n, 5000);
        let mut miss = true;
        c.get_versions(b"nope", 100, &mut |_, _, _| {
            miss = false;
            true
        })
        .unwrap();
        assert!(miss);
    }
}
