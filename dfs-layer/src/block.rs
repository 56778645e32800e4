//! Sorted key/value blocks with prefix-compressed keys and restart points. Used for table
//! data and index blocks and for chunk blocks.
//!
//! Layout of an (uncompressed) block:
//! ```text
//! entry*  restart: u32 LE * num_restarts  num_restarts: u32 LE
//! entry = shared: varint | unshared: varint | value_len: varint | key[shared..] | value
//! ```
//! Every `restart_interval`-th entry stores its whole key (`shared` = 0); its offset is in the
//! restart array, which a seek binary-searches. Keys are internal keys ([`crate::key`]) and
//! are ordered by [`crate::key::compare`].

use std::cmp::Ordering;
use std::ops::Range;

use bytes::Bytes;

use crate::coding::{get_u32, get_varint, put_u32, put_varint};
use crate::error::{Error, Result};
use crate::key;

/// Largest key plus value one block entry may hold: blocks address entries with u32
/// offsets, so a block must stay below 4 GiB. Writers refuse larger entries with an error
/// instead of writing a block whose offsets would wrap.
pub const MAX_ENTRY_BYTES: usize = u32::MAX as usize - (1 << 20);

/// Builds one block. Keys must be added in increasing [`key::compare`] order.
#[derive(Debug)]
pub struct BlockBuilder {
    buf: Vec<u8>,
    restarts: Vec<u32>,
    counter: usize,
    interval: usize,
    last_key: Vec<u8>,
    entries: usize,
}

impl BlockBuilder {
    /// A builder that stores a full key every `restart_interval` entries.
    pub fn new(restart_interval: usize) -> Self {
        BlockBuilder {
            buf: Vec::new(),
            restarts: vec![0],
            counter: 0,
            interval: restart_interval.max(1),
            last_key: Vec::new(),
            entries: 0,
        }
    }

    /// Appends an entry.
    pub fn add(&mut self, key: &[u8], value: &[u8]) {
        debug_assert!(
            self.entries == 0 || key::compare(&self.last_key, key) == Ordering::Less,
            "block keys out of order"
        );
        let shared = if self.counter < self.interval {
            self.last_key
                .iter()
                .zip(key)
                .take_while(|(a, b)| a == b)
                .count()
        } else {
            self.restarts.push(self.buf.len() as u32);
            self.counter = 0;
            0
        };
        put_varint(&mut self.buf, shared as u64);
        put_varint(&mut self.buf, (key.len() - shared) as u64);
        put_varint(&mut self.buf, value.len() as u64);
        self.buf.extend_from_slice(&key[shared..]);
        self.buf.extend_from_slice(value);
        self.last_key.truncate(shared);
        self.last_key.extend_from_slice(&key[shared..]);
        self.counter += 1;
        self.entries += 1;
    }

    /// Size of the block if finished now.
    pub fn estimated_size(&self) -> usize {
        self.buf.len() + 4 * self.restarts.len() + 4
    }

    /// Number of entries added.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// True if nothing was added.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The last key added.
    pub fn last_key(&self) -> &[u8] {
        &self.last_key
    }

    /// Finishes the block and resets the builder for the next one.
    pub fn finish(&mut self) -> Vec<u8> {
        self.append_restarts();
        let out = std::mem::take(&mut self.buf);
        self.reset();
        out
    }

    /// Finishes the block, hands its bytes to `encode`, and resets the builder for the next
    /// one keeping its buffers: a table builder encodes each data block from here, without
    /// a buffer per block that grows from empty.
    pub fn finish_with<R>(&mut self, encode: impl FnOnce(&[u8]) -> R) -> R {
        self.append_restarts();
        let r = encode(&self.buf);
        self.buf.clear();
        self.reset();
        r
    }

    fn append_restarts(&mut self) {
        for &r in &self.restarts {
            put_u32(&mut self.buf, r);
        }
        put_u32(&mut self.buf, self.restarts.len() as u32);
    }

    fn reset(&mut self) {
        self.restarts.clear();
        self.restarts.push(0);
        self.counter = 0;
        self.last_key.clear();
        self.entries = 0;
    }
}

/// A decoded (uncompressed) block, validated enough that iterating it cannot read out of
/// bounds: every entry is bounds-checked as it is decoded.
#[derive(Debug, Clone)]
pub struct Block {
    data: Bytes,
    restarts_off: usize,
    num_restarts: usize,
}

impl Block {
    /// Parses the restart array. Errors are corruption with an empty file name.
    pub fn new(data: Bytes) -> Result<Self> {
        let bad = |d: &str| Error::corruption("", format!("block: {d}"));
        let n = data.len().checked_sub(4).ok_or_else(|| bad("too short"))?;
        let num_restarts = get_u32(&data, n).ok_or_else(|| bad("too short"))? as usize;
        let restarts_off = num_restarts
            .checked_mul(4)
            .and_then(|b| n.checked_sub(b))
            .ok_or_else(|| bad("restart array out of bounds"))?;
        if num_restarts == 0 {
            return Err(bad("no restart points"));
        }
        for i in 0..num_restarts {
            let r = get_u32(&data, restarts_off + 4 * i).unwrap_or(u32::MAX) as usize;
            if r > restarts_off {
                return Err(bad("restart point out of bounds"));
            }
        }
        Ok(Block {
            data,
            restarts_off,
            num_restarts,
        })
    }

    /// Bytes held by this block.
    pub fn size(&self) -> usize {
        self.data.len()
    }

    /// An iterator positioned before the first entry (call a seek first).
    pub fn iter(&self) -> BlockIter {
        BlockIter {
            block: self.clone(),
            current: self.restarts_off,
            next: self.restarts_off,
            key: Vec::new(),
            value: 0..0,
            err: None,
        }
    }

    fn restart(&self, i: usize) -> usize {
        get_u32(&self.data, self.restarts_off + 4 * i).unwrap_or(0) as usize
    }
}

/// Iterator over a [`Block`]. After a decode error it is invalid and [`BlockIter::status`]
/// reports the corruption.
#[derive(Debug)]
pub struct BlockIter {
    block: Block,
    current: usize,
    next: usize,
    key: Vec<u8>,
    value: Range<usize>,
    err: Option<Error>,
}

impl BlockIter {
    /// True if positioned on an entry.
    pub fn valid(&self) -> bool {
        self.err.is_none() && self.current < self.block.restarts_off
    }

    /// The current key. REQUIRES: `valid()`.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The current value. REQUIRES: `valid()`.
    pub fn value(&self) -> &[u8] {
        &self.block.data[self.value.clone()]
    }

    /// The current value without copying. REQUIRES: `valid()`.
    pub fn value_bytes(&self) -> Bytes {
        self.block.data.slice(self.value.clone())
    }

    /// The first decode error, if any.
    pub fn status(&self) -> Result<()> {
        match &self.err {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Decodes the entry at `self.next`; returns false at the end or on corruption.
    #[inline]
    fn parse_next(&mut self) -> bool {
        self.current = self.next;
        if self.current >= self.block.restarts_off {
            self.current = self.block.restarts_off;
            return false;
        }
        let data = &self.block.data[..self.block.restarts_off];
        match decode_entry(data, self.current) {
            Some(e) if e.shared <= self.key.len() => {
                let key_end = e.delta + e.unshared;
                let end = key_end + e.value_len;
                self.key.truncate(e.shared);
                self.key.extend_from_slice(&data[e.delta..key_end]);
                self.value = key_end..end;
                self.next = end;
                true
            }
            _ => self.corrupt("malformed entry"),
        }
    }

    fn corrupt(&mut self, what: &str) -> bool {
        self.err = Some(Error::corruption("", format!("block: {what}")));
        self.current = self.block.restarts_off;
        false
    }

    /// Positions at the first entry.
    pub fn seek_to_first(&mut self) {
        self.key.clear();
        self.next = self.block.restart(0);
        self.parse_next();
    }

    /// Moves to the next entry. REQUIRES: `valid()`.
    pub fn next(&mut self) {
        self.parse_next();
    }

    /// Positions at the first entry with key `>= target`.
    pub fn seek(&mut self, target: &[u8]) {
        // Binary search for the last restart point whose key is < target. Restart entries
        // hold their whole key, so it is compared where it lies in the block.
        let (mut lo, mut hi) = (0usize, self.block.num_restarts - 1);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            let Some(k) = self.block.restart_key(mid) else {
                self.corrupt("malformed restart entry");
                return;
            };
            if key::compare(k, target) == Ordering::Less {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        self.key.clear();
        self.next = self.block.restart(lo);
        while self.parse_next() {
            if key::compare(&self.key, target) != Ordering::Less {
                return;
            }
        }
    }
}

/// The header of one block entry, bounds-checked: the key delta and the value lie inside
/// the entries area.
struct EntryHeader {
    /// Bytes shared with the previous key.
    shared: usize,
    /// Length of the key delta.
    unshared: usize,
    /// Length of the value.
    value_len: usize,
    /// Offset of the key delta (the value follows it).
    delta: usize,
}

/// Decodes the header of the entry at `p` in `data` (a block's entries, without the
/// restart array); `None` if it is malformed or runs past `data`.
#[inline]
fn decode_entry(data: &[u8], p: usize) -> Option<EntryHeader> {
    // Fast path: the three fields are one byte each (LevelDB's DecodeEntry does the same).
    let (shared, unshared, value_len, delta) = match data.get(p..p + 3) {
        Some(&[a, b, c]) if (a | b | c) < 0x80 => (a as usize, b as usize, c as usize, p + 3),
        _ => {
            let mut q = p;
            let mut field = || -> Option<usize> {
                let (v, n) = get_varint(data.get(q..)?)?;
                q += n;
                usize::try_from(v).ok()
            };
            let (shared, unshared, value_len) = (field()?, field()?, field()?);
            (shared, unshared, value_len, q)
        }
    };
    let end = delta.checked_add(unshared)?.checked_add(value_len)?;
    (end <= data.len()).then_some(EntryHeader {
        shared,
        unshared,
        value_len,
        delta,
    })
}

impl Block {
    /// The whole key of the entry at restart point `i` (restart entries share nothing with
    /// the key before them); `None` if that entry is malformed.
    fn restart_key(&self, i: usize) -> Option<&[u8]> {
        let data = &self.data[..self.restarts_off];
        let e = decode_entry(data, self.restart(i))?;
        (e.shared == 0).then(|| &data[e.delta..e.delta + e.unshared])
    }
}

impl crate::iter::InternalIterator for BlockIter {
    fn valid(&self) -> bool {
        BlockIter::valid(self)
    }
    fn seek_to_first(&mut self) {
        BlockIter::seek_to_first(self)
    }
    fn seek(&mut self, target: &[u8]) {
        BlockIter::seek(self, target)
    }
    fn next(&mut self) {
        BlockIter::next(self)
    }
    fn key(&self) -> &[u8] {
        BlockIter::key(self)
    }
    fn value(&self) -> &[u8] {
        BlockIter::value(self)
    }
    fn status(&self) -> Result<()> {
        BlockIter::status(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{internal_key, ValueKind};

    fn build(n: u32, interval: usize) -> Block {
        let mut b = BlockBuilder::new(interval);
        for i in 0..n {
            let k = internal_key(format!("key{:05}", i * 2).as_bytes(), 7, ValueKind::Put);
            b.add(&k, format!("v{i}").as_bytes());
        }
        Block::new(Bytes::from(b.finish())).unwrap()
    }

    /// `finish_with` yields the bytes `finish` would, and the builder it leaves behind
    /// (buffers kept) starts the next block from nothing.
    #[test]
    fn finish_with_reuses_buffers_and_matches_finish() {
        let mut reused = BlockBuilder::new(4);
        for round in 0..3 {
            let mut fresh = BlockBuilder::new(4);
            for i in 0..(50 + round * 40) {
                let k = internal_key(format!("r{round}k{i:04}").as_bytes(), 3, ValueKind::Put);
                fresh.add(&k, format!("v{i}").as_bytes());
                reused.add(&k, format!("v{i}").as_bytes());
            }
            assert_eq!(reused.last_key(), fresh.last_key());
            let expected = fresh.finish();
            let got = reused.finish_with(|b| b.to_vec());
            assert_eq!(got, expected, "round {round}");
            assert!(reused.is_empty());
            let block = Block::new(Bytes::from(got)).unwrap();
            let mut it = block.iter();
            it.seek_to_first();
            let mut n = 0;
            while it.valid() {
                n += 1;
                it.next();
            }
            assert_eq!(n, 50 + round * 40);
        }
    }

    #[test]
    fn iterate_and_seek() {
        for interval in [1, 4, 16] {
            let block = build(500, interval);
            let mut it = block.iter();
            it.seek_to_first();
            let mut n = 0;
            while it.valid() {
                assert_eq!(it.value(), format!("v{n}").as_bytes());
                n += 1;
                it.next();
            }
            assert_eq!(n, 500);
            it.seek(&internal_key(b"key00101", 100, ValueKind::Put));
            assert!(it.valid());
            assert_eq!(key::user_key(it.key()), b"key00102");
            it.seek(&internal_key(b"key99999", 1, ValueKind::Put));
            assert!(!it.valid());
            it.status().unwrap();
        }
    }

    /// Keys and values long enough for multi-byte header varints (the slow decode path)
    /// next to one-byte ones, seeked to every key and between keys.
    #[test]
    fn seek_with_long_keys_and_values() {
        for interval in [1, 3, 16] {
            let mut b = BlockBuilder::new(interval);
            let key_of = |i: usize| {
                let pad = "x".repeat(if i.is_multiple_of(3) { 150 } else { 2 });
                internal_key(format!("k{i:04}{pad}").as_bytes(), 5, ValueKind::Put)
            };
            let value_of = |i: usize| vec![i as u8; if i.is_multiple_of(2) { 300 } else { 5 }];
            for i in 0..200 {
                b.add(&key_of(i), &value_of(i));
            }
            let block = Block::new(Bytes::from(b.finish())).unwrap();
            let mut it = block.iter();
            for i in 0..200 {
                it.seek(&key_of(i));
                assert!(it.valid(), "interval {interval} key {i}");
                assert_eq!(it.key(), key_of(i).as_slice());
                assert_eq!(it.value(), value_of(i).as_slice());
                // Between key i and key i + 1: lands on i + 1.
                let mut between = key::user_key(&key_of(i)).to_vec();
                between.push(0xff);
                it.seek(&internal_key(&between, 9, ValueKind::Put));
                if i + 1 < 200 {
                    assert_eq!(it.key(), key_of(i + 1).as_slice());
                } else {
                    assert!(!it.valid());
                }
                it.status().unwrap();
            }
        }
    }

    /// A restart entry that claims to share bytes with a previous key is corruption, found
    /// by the seek's binary search.
    #[test]
    fn restart_entry_sharing_a_prefix_is_corruption() {
        let block = build(64, 4);
        let mut raw = block.data.to_vec();
        let r = get_u32(&raw, block.restarts_off + 4 * (block.num_restarts / 2)).unwrap();
        assert_eq!(raw[r as usize], 0, "restart entries share nothing");
        raw[r as usize] = 3;
        let bad = Block::new(Bytes::from(raw)).unwrap();
        let mut it = bad.iter();
        it.seek(&internal_key(b"key00127", 7, ValueKind::Put));
        assert!(!it.valid());
        assert!(it
            .status()
            .unwrap_err()
            .to_string()
            .contains("restart entry"));
    }

    #[test]
    fn corrupt_blocks_never_panic() {
        let block = build(50, 4);
        let raw = block.data.to_vec();
        for i in 0..raw.len() {
            let mut bad = raw.clone();
            bad[i] = bad[i].wrapping_add(0x5b);
            if let Ok(b) = Block::new(Bytes::from(bad)) {
                let mut it = b.iter();
                it.seek_to_first();
                let mut steps = 0;
                while it.valid() && steps < 1000 {
                    it.next();
                    steps += 1;
                }
                it.seek(b"key00020xxxxxxxx");
            }
        }
        assert!(Block::new(Bytes::from_static(&[1, 2])).is_err());
    }
}
