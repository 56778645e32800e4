//! Opens table files and reads them through the block cache.
//!
//! Nothing read from a file is trusted before it is checked: the footer's checksum and
//! handles, each block's crc32, each block handle against the data region, and each entry
//! inside a block (see [`crate::block`]). Every error names the file.

use std::sync::Arc;

use bytes::Bytes;

use super::format::{Footer, TableProperties, FOOTER_LEN};
use crate::block::{Block, BlockIter};
use crate::bloom;
use crate::cache::BlockCache;
use crate::compress::decode_block;
use crate::error::{Error, Result};
use crate::iter::InternalIterator;
use crate::key::{self, SeqNo, ValueKind};
use crate::storage::{read_with_hint, ReadHint, Storage};

/// Read-ahead used by sequential (compaction, scan) iterators.
const READAHEAD: u64 = 512 * 1024;

/// An open table file. Cheap to share (`Arc`); safe to use from many threads.
pub struct TableReader {
    path: String,
    file_number: u64,
    size: u64,
    data_end: u64,
    index: Block,
    filter: Bytes,
    /// Bytes of `index` and `filter`, charged to the block cache while open.
    pinned: usize,
    props: TableProperties,
    storage: Arc<dyn Storage>,
    cache: Option<Arc<BlockCache>>,
}

impl std::fmt::Debug for TableReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableReader")
            .field("path", &self.path)
            .field("size", &self.size)
            .finish()
    }
}

impl Drop for TableReader {
    fn drop(&mut self) {
        if let Some(c) = &self.cache {
            c.release(self.pinned);
        }
    }
}

impl TableReader {
    /// Opens `path` (of `size` bytes, as recorded in the manifest). The file number keys the
    /// block cache and must be unique for the life of the store.
    pub fn open(
        storage: Arc<dyn Storage>,
        cache: Option<Arc<BlockCache>>,
        path: &str,
        file_number: u64,
        size: u64,
    ) -> Result<Arc<Self>> {
        let corrupt = |e: Error| e.in_file(path);
        if size < FOOTER_LEN as u64 {
            return Err(Error::corruption(
                path,
                format!("file too small ({size} bytes)"),
            ));
        }
        let real = storage.size(path).map_err(|e| match e {
            Error::NotFound(_) => Error::corruption(path, "table file is missing"),
            other => other,
        })?;
        if real != size {
            return Err(Error::corruption(
                path,
                format!("size {real} differs from the manifest's {size} (truncated?)"),
            ));
        }
        let footer_bytes = storage.read(path, size - FOOTER_LEN as u64..size)?;
        let footer = Footer::decode(&footer_bytes, size).map_err(corrupt)?;
        // filter, props and index are contiguous before the footer: fetch them in one read.
        let meta_start = footer.filter.0.min(footer.props.0).min(footer.index.0);
        let meta = storage.read(path, meta_start..size - FOOTER_LEN as u64)?;
        let part = |(o, l): (u64, u64)| -> Result<Bytes> {
            let s = (o - meta_start) as usize;
            decode_block(&meta.slice(s..s + l as usize)).map_err(corrupt)
        };
        let filter = part(footer.filter)?;
        let props = TableProperties::decode(&part(footer.props)?).map_err(corrupt)?;
        let index = Block::new(part(footer.index)?).map_err(corrupt)?;
        // The index and filter stay in memory while the table is open: charge them to the
        // block cache, so the budget counts them (released on drop).
        let pinned = index.size() + filter.len();
        if let Some(c) = &cache {
            c.reserve(pinned);
        }
        Ok(Arc::new(TableReader {
            path: path.to_string(),
            file_number,
            size,
            data_end: meta_start,
            index,
            filter,
            pinned,
            props,
            storage,
            cache,
        }))
    }

    /// The file's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The file's properties.
    pub fn properties(&self) -> &TableProperties {
        &self.props
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The index: for each data block, its last internal key and its handle (offset,
    /// stored length with trailer). For tools (`strata sst`).
    pub fn index_entries(&self) -> Result<Vec<(Vec<u8>, u64, u64)>> {
        let mut it = self.index.iter();
        it.seek_to_first();
        let mut out = Vec::new();
        while it.valid() {
            let (off, len) = self.decode_handle(it.value())?;
            out.push((it.key().to_vec(), off, len));
            it.next();
        }
        it.status().map_err(|e| e.in_file(&self.path))?;
        Ok(out)
    }

    /// Bloom check: false means `user_key` is certainly not in this file.
    pub fn may_contain(&self, user_key: &[u8]) -> bool {
        bloom::may_contain(&self.filter, user_key)
    }

    fn decode_handle(&self, v: &[u8]) -> Result<(u64, u64)> {
        let bad = || Error::corruption(&self.path, "bad block handle in index");
        if v.len() != 12 {
            return Err(bad());
        }
        let off = u64::from_le_bytes(v[..8].try_into().map_err(|_| bad())?);
        let len = u32::from_le_bytes(v[8..].try_into().map_err(|_| bad())?) as u64;
        match off.checked_add(len) {
            Some(end) if end <= self.data_end && len >= 5 => Ok((off, len)),
            _ => Err(bad()),
        }
    }

    fn decode_stored(&self, stored: &Bytes) -> Result<Block> {
        Block::new(decode_block(stored)?).map_err(|e| e.in_file(&self.path))
    }

    /// Reads and decodes one data block. `ra` holds the iterator's read-ahead window.
    /// Under [`ReadTier::Memory`], a block not in the memory cache is
    /// [`Error::Incomplete`].
    fn read_block(
        &self,
        handle: (u64, u64),
        fill_cache: bool,
        ra: Option<&mut Option<(u64, Bytes)>>,
        tier: ReadTier,
    ) -> Result<Block> {
        let ck = (self.file_number, handle.0);
        if let Some(c) = &self.cache {
            if let Some(b) = c.get(&ck) {
                return Ok(b);
            }
        }
        if tier == ReadTier::Memory {
            return Err(Error::Incomplete(format!("a block of {}", self.path)));
        }
        if let Some(c) = &self.cache {
            if let Some(stored) = c.disk_get(&ck) {
                match self.decode_stored(&stored) {
                    Ok(b) => {
                        if fill_cache {
                            c.insert(ck, b.clone());
                        }
                        return Ok(b);
                    }
                    Err(_) => c.disk_remove(&ck),
                }
            }
        }
        let (off, len) = handle;
        let stored = match ra {
            Some(window) => {
                let hit = match window {
                    Some((start, buf))
                        if off >= *start && off + len <= *start + buf.len() as u64 =>
                    {
                        let s = (off - *start) as usize;
                        Some(buf.slice(s..s + len as usize))
                    }
                    _ => None,
                };
                match hit {
                    Some(b) => b,
                    None => {
                        let hint = ReadHint::Sequential { ahead: READAHEAD };
                        let buf = read_with_hint(
                            self.storage.as_ref(),
                            &self.path,
                            off..off + len,
                            self.data_end,
                            hint,
                        )?;
                        let b = buf.slice(..len as usize);
                        *window = Some((off, buf));
                        b
                    }
                }
            }
            None => self.storage.read(&self.path, off..off + len)?,
        };
        let block = self
            .decode_stored(&stored)
            .map_err(|e| e.in_file(&self.path))?;
        if let Some(c) = &self.cache {
            if fill_cache {
                c.insert(ck, block.clone());
            }
            if c.has_disk_tier() && self.storage.is_remote() {
                c.disk_put(ck, &stored);
            }
        }
        Ok(block)
    }

    /// An iterator over the whole file. `sequential` turns on read-ahead and keeps the
    /// blocks it reads out of the memory cache (for compactions and long scans).
    pub fn iter(self: &Arc<Self>, sequential: bool) -> TableIter {
        TableIter {
            table: self.clone(),
            index: self.index.iter(),
            data: None,
            err: None,
            sequential,
            window: None,
            tier: ReadTier::All,
        }
    }

    /// Calls `f(kind, seq, value)` for each version of `user_key` visible at `seq`, newest
    /// first, until `f` returns false or the versions end.
    pub fn get_versions(
        self: &Arc<Self>,
        user_key: &[u8],
        seq: SeqNo,
        f: &mut dyn FnMut(ValueKind, SeqNo, &[u8]) -> bool,
    ) -> Result<()> {
        self.get_versions_in(user_key, seq, ReadTier::All, f)
    }

    /// [`TableReader::get_versions`] reading only from `tier`. Under
    /// [`ReadTier::Memory`] it may call `f` for some versions and then fail with
    /// [`Error::Incomplete`]; the caller discards what it gathered and reads again.
    pub fn get_versions_in(
        self: &Arc<Self>,
        user_key: &[u8],
        seq: SeqNo,
        tier: ReadTier,
        f: &mut dyn FnMut(ValueKind, SeqNo, &[u8]) -> bool,
    ) -> Result<()> {
        if !self.may_contain(user_key) {
            return Ok(());
        }
        let mut it = self.iter(false);
        it.tier = tier;
        it.seek(&key::seek_key(user_key, seq));
        while it.valid() {
            let p = key::parse(it.key())
                .ok_or_else(|| Error::corruption(&self.path, "malformed internal key"))?;
            if p.user_key != user_key || !f(p.kind, p.seq, it.value()) {
                break;
            }
            it.next();
        }
        it.status()
    }
}

/// Two-level iterator over a table: the index block, then one data block at a time.
pub struct TableIter {
    table: Arc<TableReader>,
    index: BlockIter,
    data: Option<BlockIter>,
    err: Option<Error>,
    sequential: bool,
    window: Option<(u64, Bytes)>,
    tier: ReadTier,
}

/// Where a point read may look (RocksDB's `ReadTier`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadTier {
    /// Memory, then the disk cache tier, then storage.
    All,
    /// Memory only: blocks in the memory block cache and files already open. A read that
    /// needs more fails with [`Error::Incomplete`].
    Memory,
}

impl TableIter {
    fn load_data(&mut self) -> bool {
        self.data = None;
        if !self.index.valid() {
            if let Err(e) = self.index.status() {
                self.err = Some(e.in_file(&self.table.path));
            }
            return false;
        }
        let r = self.table.decode_handle(self.index.value()).and_then(|h| {
            let ra = if self.sequential {
                Some(&mut self.window)
            } else {
                None
            };
            self.table.read_block(h, !self.sequential, ra, self.tier)
        });
        match r {
            Ok(b) => {
                self.data = Some(b.iter());
                true
            }
            Err(e) => {
                self.err = Some(e);
                false
            }
        }
    }

    fn skip_empty_blocks(&mut self) {
        loop {
            match &self.data {
                Some(d) if d.valid() => return,
                Some(d) => {
                    if let Err(e) = d.status() {
                        self.err = Some(e.in_file(&self.table.path));
                        self.data = None;
                        return;
                    }
                }
                None => return,
            }
            self.index.next();
            if !self.load_data() {
                return;
            }
            if let Some(d) = &mut self.data {
                d.seek_to_first();
            }
        }
    }
}

impl InternalIterator for TableIter {
    fn valid(&self) -> bool {
        self.err.is_none() && self.data.as_ref().is_some_and(|d| d.valid())
    }

    fn seek_to_first(&mut self) {
        self.index.seek_to_first();
        if self.load_data() {
            if let Some(d) = &mut self.data {
                d.seek_to_first();
            }
            self.skip_empty_blocks();
        }
    }

    fn seek(&mut self, target: &[u8]) {
        self.index.seek(target);
        if self.load_data() {
            if let Some(d) = &mut self.data {
                d.seek(target);
            }
            self.skip_empty_blocks();
        }
    }

    fn next(&mut self) {
        if let Some(d) = &mut self.data {
            d.next();
        }
        self.skip_empty_blocks();
    }

    fn key(&self) -> &[u8] {
        self.data.as_ref().expect("valid").key()
    }

    fn value(&self) -> &[u8] {
        self.data.as_ref().expect("valid").value()
    }

    fn status(&self) -> Result<()> {
        match &self.err {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::Compression;
    use crate::key::internal_key;
    use crate::storage::ObjectStorage;
    use crate::table::{TableBuildOptions, TableBuilder};

    fn build(n: u32, compression: Compression) -> Bytes {
        let opts = TableBuildOptions {
            block_bytes: 512,
            compression,
            ..Default::default()
        };
        let mut b = TableBuilder::new(opts, 3);
        for i in 0..n {
            let k = internal_key(
                format!("user{i:06}").as_bytes(),
                u64::from(i) + 1,
                ValueKind::Put,
            );
            b.add(&k, format!("value-{i}").repeat(3).as_bytes());
        }
        b.finish().0
    }

    fn open(bytes: Bytes) -> Result<Arc<TableReader>> {
        let s: Arc<dyn Storage> = Arc::new(ObjectStorage::memory().unwrap());
        let size = bytes.len() as u64;
        s.put("t/1.sst", bytes).unwrap();
        let cache = Arc::new(BlockCache::new(1 << 20));
        TableReader::open(s, Some(cache), "t/1.sst", 1, size)
    }

    #[test]
    fn memory_only_reads_need_a_cached_block() {
        let t = open(build(2000, Compression::Lz4)).unwrap();
        let get = |tier| {
            let mut got = None;
            t.get_versions_in(b"user000777", u64::MAX >> 8, tier, &mut |_, _, v| {
                got = Some(v.to_vec());
                false
            })
            .map(|()| got)
        };
        let err = get(ReadTier::Memory).unwrap_err();
        assert!(err.is_incomplete(), "{err}");
        let want = Some(b"value-777".repeat(3));
        assert_eq!(get(ReadTier::All).unwrap(), want);
        // The read above cached the block: memory alone answers now.
        assert_eq!(get(ReadTier::Memory).unwrap(), want);
        // A key the bloom filter rules out needs no block at all.
        let mut called = false;
        t.get_versions_in(
            b"absent",
            u64::MAX >> 8,
            ReadTier::Memory,
            &mut |_, _, _| {
                called = true;
                true
            },
        )
        .unwrap();
        assert!(!called);
    }

    #[test]
    fn write_then_read_every_key_with_each_codec() {
        for c in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let t = open(build(2000, c)).unwrap();
            assert_eq!(t.properties().entries, 2000);
            assert_eq!(t.properties().table_id, 3);
            for seq_iter in [false, true] {
                let mut it = t.iter(seq_iter);
                it.seek_to_first();
                let mut n = 0;
                while it.valid() {
                    n += 1;
                    it.next();
                }
                it.status().unwrap();
                assert_eq!(n, 2000);
            }
            let mut got = None;
            t.get_versions(b"user001234", u64::MAX >> 8, &mut |k, s, v| {
                got = Some((k, s, v.to_vec()));
                false
            })
            .unwrap();
            assert_eq!(got, Some((ValueKind::Put, 1235, b"value-1234".repeat(3))));
            let mut none = true;
            t.get_versions(b"user001234", 1000, &mut |_, _, _| {
                none = false;
                true
            })
            .unwrap();
            assert!(none, "version newer than the snapshot must be invisible");
        }
    }

    #[test]
    fn every_flipped_byte_is_detected_or_harmless() {
        let good = build(300, Compression::Lz4);
        let mut detected = 0;
        for i in (0..good.len()).step_by(7) {
            let mut bad = good.to_vec();
            bad[i] ^= 0x10;
            let res = open(Bytes::from(bad)).and_then(|t| {
                let mut it = t.iter(false);
                it.seek_to_first();
                let mut n = 0;
                while it.valid() {
                    n += 1;
                    it.next();
                }
                it.status().map(|()| n)
            });
            match res {
                Err(e) => {
                    assert!(e.is_corruption(), "{e:?}");
                    assert!(e.to_string().contains("t/1.sst"), "{e}");
                    detected += 1;
                }
                Ok(n) => panic!("flip at {i} went unnoticed ({n} entries)"),
            }
        }
        assert!(detected > 0);
    }

    #[test]
    fn truncated_file_is_corruption() {
        let good = build(100, Compression::Lz4);
        for cut in [1usize, 10, 64, good.len() / 2] {
            let s: Arc<dyn Storage> = Arc::new(ObjectStorage::memory().unwrap());
            let t = good.slice(..good.len() - cut);
            s.put("t/2.sst", t.clone()).unwrap();
            // The manifest knows the real size; a shorter object must be reported.
            let e =
                TableReader::open(s.clone(), None, "t/2.sst", 2, good.len() as u64).unwrap_err();
            assert!(
                e.is_corruption() && e.to_string().contains("t/2.sst"),
                "{e}"
            );
            // Even trusting the short size, the footer check catches it.
            let e = TableReader::open(s, None, "t/2.sst", 2, t.len() as u64).unwrap_err();
            assert!(e.is_corruption(), "{e}");
        }
    }
}
