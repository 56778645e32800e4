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
        let mut out = std::mem::take(&mut self.buf);
        for &r in &self.restarts {
            put_u32(&mut out, r);
        }
        put_u32(&mut out, self.restarts.len() as u32);
        self.restarts = vec![0];
        self.counter = 0;
        self.last_key.clear();
        self.entries = 0;
        out
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
    fn parse_next(&mut self) -> bool {
        self.current = self.next;
        if self.current >= self.block.restarts_off {
            self.current = self.block.restarts_off;
            return false;
        }
        let data = &self.block.data[..self.block.restarts_off];
        let mut p = self.current;
        let mut field = || -> Option<usize> {
            let (v, n) = get_varint(&data[p..])?;
            p += n;
            usize::try_from(v).ok()
        };
        let (Some(shared), Some(unshared), Some(vlen)) = (field(), field(), field()) else {
            return self.corrupt("bad entry header");
        };
        let key_end = p.checked_add(unshared);
        let val_end = key_end.and_then(|k| k.checked_add(vlen));
        match val_end {
            Some(end) if shared <= self.key.len() && end <= data.len() => {
                let key_end = p + unshared;
                self.key.truncate(shared);
                self.key.extend_from_slice(&data[p..key_end]);
                self.value = key_end..end;
                self.next = end;
                true
            }
            _ => self.corrupt("entry out of bounds"),
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
        // Binary search for the last restart point whose key is < target.
        let (mut lo, mut hi) = (0usize, self.block.num_restarts - 1);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            self.key.clear();
            self.next = self.block.restart(mid);
            if !self.parse_next() {
                return;
            }
            if key::compare(&self.key, target) == Ordering::Less {
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
