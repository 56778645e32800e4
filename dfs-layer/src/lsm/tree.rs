//! The LSM tree runtime: the current version, the manifest, table readers, flush commits and
//! background compaction threads.
//!
//! Concurrency: one `state` mutex serialises version changes (flush commits, compaction
//! commits, table definitions) and is the condition-variable lock for the compaction threads
//! and for stalled flushers. Readers never take it: they clone the current `Arc<Version>`
//! under a short read lock, and a file is deleted only once no version, iterator or snapshot
//! holds its `Arc<FileMeta>`. Compactions run on `compaction_threads` background threads, at
//! most one per state table at a time; they never run on a caller's thread. The write-stall
//! rule: [`LsmTree::wait_for_l0_room`] blocks a flusher while a table has `l0_stop` or more
//! level-0 files, which in turn throttles writers in the upper tiers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex, RwLock};

use super::collapse::{collapse_filtered, CollapseContext, KeyVersion};
use super::level_iter::{level_iter, OpenFn};
use super::manifest::{ManifestRecovery, ManifestState, ManifestStore};
use super::picker::{pick, CompactionOptions, CompactionPick};
use super::version::{table_path, FileMeta, Version, VersionEdit, NUM_LEVELS};
use crate::cache::BlockCache;
use crate::compress::Compression;
use crate::error::{Error, Result};
use crate::iter::{InternalIterator, MergingIterator};
use crate::key::{self, SeqNo, ValueKind};
use crate::merge::{CompactionFilter, MergeOperator};
use crate::storage::Storage;
use crate::table::{ReadTier, TableBuildOptions, TableBuilder, TableProperties, TableReader};

/// Tree settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeOptions {
    /// Compaction shape.
    pub compaction: CompactionOptions,
    /// Target uncompressed data block size.
    pub block_bytes: usize,
    /// Restart interval in data blocks.
    pub restart_interval: usize,
    /// Bloom filter bits per key.
    pub bloom_bits_per_key: u32,
    /// Background compaction threads.
    pub compaction_threads: usize,
}

impl Default for TreeOptions {
    fn default() -> Self {
        TreeOptions {
            compaction: CompactionOptions::default(),
            block_bytes: 4096,
            restart_interval: 16,
            bloom_bits_per_key: 10,
            compaction_threads: 1,
        }
    }
}

/// What the tree asks of the layer above it.
pub trait TreeHooks: Send + Sync {
    /// The merge operator of a state table.
    fn merge_operator(&self, table_id: u32) -> Option<Arc<dyn MergeOperator>>;
    /// Data block compression for a state table at a level.
    fn compression(&self, table_id: u32, level: usize) -> Compression;
    /// Scan-prefix length of a state table (0: none): its files' bloom filters hold prefixes.
    fn prefix_len(&self, _table_id: u32) -> usize {
        0
    }
    /// Live snapshot sequence numbers, ascending.
    fn snapshots(&self) -> Vec<SeqNo>;
    /// The compaction filter of a state table, if any.
    fn compaction_filter(&self, _table_id: u32) -> Option<Arc<dyn CompactionFilter>> {
        None
    }
}

/// Counters of the tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeStats {
    /// Compactions completed.
    pub compactions: u64,
    /// Bytes read by compactions.
    pub compaction_bytes_read: u64,
    /// Bytes written by compactions.
    pub compaction_bytes_written: u64,
    /// Level-0 files written by flushes.
    pub flushes: u64,
    /// Bytes written by flushes.
    pub flush_bytes: u64,
    /// Times a flusher waited for level-0 room.
    pub stalls: u64,
    /// Files per level, summed over state tables.
    pub files_per_level: [u64; NUM_LEVELS],
    /// Bytes per level, summed over state tables.
    pub bytes_per_level: [u64; NUM_LEVELS],
}

#[derive(Default)]
struct Counters {
    compactions: AtomicU64,
    compaction_read: AtomicU64,
    compaction_written: AtomicU64,
    flushes: AtomicU64,
    flush_bytes: AtomicU64,
    stalls: AtomicU64,
}

struct State {
    manifest: ManifestState,
    store: ManifestStore,
    pointers: BTreeMap<(u32, usize), Vec<u8>>,
    busy: HashSet<u32>,
    obsolete: Vec<Arc<FileMeta>>,
}

struct Inner {
    storage: Arc<dyn Storage>,
    cache: Option<Arc<BlockCache>>,
    opts: TreeOptions,
    hooks: Arc<dyn TreeHooks>,
    state: Mutex<State>,
    cv: Condvar,
    current: RwLock<Arc<Version>>,
    readers: Mutex<HashMap<u64, Arc<TableReader>>>,
    /// One gate per file being opened, so concurrent readers of a file that is not open yet
    /// (a batched read's threads) fetch its footer, index and filter once, not once each.
    opening: Mutex<HashMap<u64, Arc<Mutex<()>>>>,
    next_file: AtomicU64,
    shutdown: AtomicBool,
    poisoned: AtomicBool,
    poison: Mutex<Option<String>>,
    counters: Counters,
}

/// The tree. Dropping it stops the compaction threads (see [`LsmTree::shutdown`]).
pub struct LsmTree {
    inner: Arc<Inner>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// What [`LsmTree::open`] recovered.
#[derive(Debug, Clone)]
pub struct Recovered {
    /// The manifest state (table definitions, last durable sequence, WAL number).
    pub state: ManifestState,
    /// How the manifest was recovered; `None` for a new store.
    pub recovery: Option<ManifestRecovery>,
    /// Unreferenced table files deleted at open.
    pub orphans_deleted: usize,
}

impl LsmTree {
    /// Opens (or creates) the tree in `storage`, deletes table files no version references,
    /// and starts the compaction threads.
    pub fn open(
        storage: Arc<dyn Storage>,
        cache: Option<Arc<BlockCache>>,
        opts: TreeOptions,
        hooks: Arc<dyn TreeHooks>,
    ) -> Result<(LsmTree, Recovered)> {
        let (mut store, loaded) = ManifestStore::open(storage.clone())?;
        let (manifest, recovery) = match loaded {
            Some((s, r)) => (s, Some(r)),
            None => {
                let s = ManifestState {
                    next_file_number: 1,
                    ..Default::default()
                };
                store.commit(&s)?;
                (s, None)
            }
        };
        let referenced: HashSet<u64> = manifest
            .version
            .all_files()
            .map(|(_, _, f)| f.number)
            .collect();
        let mut present = HashSet::new();
        let mut orphans_deleted = 0;
        for o in storage.list("sst/")? {
            let num = o
                .path
                .strip_prefix("sst/")
                .and_then(|s| s.strip_suffix(".sst"))
                .and_then(|s| s.parse::<u64>().ok());
            match num {
                Some(n) if referenced.contains(&n) => {
                    present.insert(n);
                }
                _ => {
                    storage.delete(&o.path)?;
                    orphans_deleted += 1;
                }
            }
        }
        if let Some(missing) = referenced.iter().find(|n| !present.contains(n)) {
            return Err(Error::corruption(
                table_path(*missing),
                "table file referenced by the manifest is missing",
            ));
        }
        let next_file = manifest.next_file_number.max(1);
        let current = Arc::new(manifest.version.clone());
        let inner = Arc::new(Inner {
            storage,
            cache,
            opts,
            hooks,
            state: Mutex::new(State {
                manifest: manifest.clone(),
                store,
                pointers: BTreeMap::new(),
                busy: HashSet::new(),
                obsolete: Vec::new(),
            }),
            cv: Condvar::new(),
            current: RwLock::new(current),
            readers: Mutex::new(HashMap::new()),
            opening: Mutex::new(HashMap::new()),
            next_file: AtomicU64::new(next_file),
            shutdown: AtomicBool::new(false),
            poisoned: AtomicBool::new(false),
            poison: Mutex::new(None),
            counters: Counters::default(),
        });
        let threads = (0..opts.compaction_threads.max(1))
            .map(|i| {
                let inner = inner.clone();
                std::thread::Builder::new()
                    .name(format!("strata-compact-{i}"))
                    .spawn(move || compaction_loop(&inner))
                    .map_err(|e| Error::io("spawning a compaction thread", e))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((
            LsmTree {
                inner,
                threads: Mutex::new(threads),
            },
            Recovered {
                state: manifest,
                recovery,
                orphans_deleted,
            },
        ))
    }

    /// The current version. Holding it keeps its files alive.
    pub fn current(&self) -> Arc<Version> {
        self.inner.current.read().clone()
    }

    /// A copy of the manifest state as last committed.
    pub fn manifest(&self) -> ManifestState {
        self.inner.state.lock().manifest.clone()
    }

    /// Fails with [`Error::Poisoned`] if a background write failed.
    pub fn check_poison(&self) -> Result<()> {
        self.inner.check_poison()
    }

    /// Marks the tree as refusing writes.
    pub fn poison(&self, reason: &str) {
        self.inner.set_poison(reason);
    }

    /// Allocates a new file number.
    pub fn new_file_number(&self) -> u64 {
        self.inner.next_file.fetch_add(1, Ordering::SeqCst)
    }

    /// Makes every later [`LsmTree::new_file_number`] larger than `n` (a number found in
    /// use outside the manifest, such as a WAL written just before a crash).
    pub fn reserve_file_numbers_through(&self, n: u64) {
        self.inner
            .next_file
            .fetch_max(n.saturating_add(1), Ordering::SeqCst);
    }

    /// Writes the entries of `iter` (from its current position to its end) as one table file
    /// of `table_id` destined for `level`. Returns `None` if there were no entries. A failed
    /// write poisons the tree: the caller's data is still in memory, but nothing may be
    /// written after a write that may have been lost.
    pub fn write_table(
        &self,
        table_id: u32,
        level: usize,
        iter: &mut dyn InternalIterator,
    ) -> Result<Option<FileMeta>> {
        self.check_poison()?;
        let mut b = TableBuilder::new(self.inner.build_options(table_id, level), table_id);
        while iter.valid() {
            b.add(iter.key(), iter.value());
            iter.next();
        }
        iter.status()?;
        if b.entries() == 0 {
            return Ok(None);
        }
        let meta = self.inner.finish_table(b).inspect_err(|e| {
            self.inner
                .set_poison(&format!("writing a level-{level} table failed: {e}"));
        })?;
        self.inner.counters.flushes.fetch_add(1, Ordering::Relaxed);
        self.inner
            .counters
            .flush_bytes
            .fetch_add(meta.size, Ordering::Relaxed);
        Ok(Some(meta))
    }

    /// Commits `edit` and the manifest changes made by `update` in one manifest write.
    /// On failure the tree is poisoned and the previous version stays current.
    pub fn commit(&self, edit: VersionEdit, update: impl FnOnce(&mut ManifestState)) -> Result<()> {
        self.check_poison()?;
        let r = self.inner.commit(edit, update);
        if let Err(e) = &r {
            self.inner.set_poison(&e.to_string());
        }
        self.inner.cv.notify_all();
        r
    }

    /// Blocks while `table_id` has `l0_stop` or more level-0 files (the write-stall rule).
    pub fn wait_for_l0_room(&self, table_id: u32) -> Result<()> {
        let inner = &self.inner;
        let mut st = inner.state.lock();
        let mut stalled = false;
        loop {
            inner.check_poison()?;
            if inner.shutdown.load(Ordering::SeqCst) {
                return Err(Error::Closed);
            }
            let l0 = st
                .manifest
                .version
                .levels(table_id)
                .map_or(0, |l| l.files[0].len());
            if l0 < inner.opts.compaction.l0_stop {
                return Ok(());
            }
            if !stalled {
                stalled = true;
                inner.counters.stalls.fetch_add(1, Ordering::Relaxed);
            }
            inner.cv.notify_all();
            inner.cv.wait(&mut st);
        }
    }

    /// Blocks until no compaction is runnable or running (tests and `compact_all`).
    pub fn wait_for_compactions(&self) -> Result<()> {
        let inner = &self.inner;
        let mut st = inner.state.lock();
        loop {
            inner.check_poison()?;
            let v = st.manifest.version.clone();
            let idle = st.busy.is_empty()
                && pick(&v, &inner.opts.compaction, &st.pointers, &HashSet::new()).is_none();
            if idle || inner.shutdown.load(Ordering::SeqCst) {
                return Ok(());
            }
            inner.cv.notify_all();
            inner.cv.wait(&mut st);
        }
    }

    /// Compacts every level of `table_id` into the next, top to bottom, until all its data
    /// is in one level (RocksDB's `CompactRange` over the whole table): the last step is
    /// bottommost, so tombstones and filtered data are dropped there.
    pub fn compact_table_fully(&self, table_id: u32) -> Result<()> {
        let inner = &self.inner;
        let deepest = {
            let st = inner.state.lock();
            let v = st.manifest.version.clone();
            let Some(lv) = v.levels(table_id) else {
                return Ok(());
            };
            (0..NUM_LEVELS)
                .rev()
                .find(|&l| !lv.files[l].is_empty())
                .unwrap_or(0)
        };
        for level in 0..=deepest.min(NUM_LEVELS - 2) {
            let p = {
                let mut st = inner.state.lock();
                while st.busy.contains(&table_id) {
                    inner.check_poison()?;
                    inner.cv.wait(&mut st);
                }
                let v = st.manifest.version.clone();
                let Some(lv) = v.levels(table_id) else {
                    return Ok(());
                };
                if lv.files[level].is_empty() {
                    continue;
                }
                st.busy.insert(table_id);
                CompactionPick {
                    table_id,
                    level,
                    output_level: level + 1,
                    inputs: lv.files[level].clone(),
                    overlapping: lv.files[level + 1].clone(),
                    bottommost: (level + 2..NUM_LEVELS).all(|l| lv.files[l].is_empty()),
                    score: 0.0,
                }
            };
            let r = inner.run_compaction(&p);
            let mut st = inner.state.lock();
            st.busy.remove(&table_id);
            inner.cv.notify_all();
            let (edit, read, written) = r?;
            inner.commit_locked(&mut st, edit, |_| {})?;
            let c = &inner.counters;
            c.compactions.fetch_add(1, Ordering::Relaxed);
            c.compaction_read.fetch_add(read, Ordering::Relaxed);
            c.compaction_written.fetch_add(written, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Calls `f(kind, seq, value)` for the versions of `user_key` visible at `seq`, newest
    /// first, level by level, until `f` returns false. Returns true if `f` stopped it.
    /// Under [`ReadTier::Memory`] a file that is not open or a block that is not cached is
    /// [`Error::Incomplete`] (after `f` may have seen some versions).
    pub fn get(
        &self,
        version: &Version,
        table_id: u32,
        user_key: &[u8],
        seq: SeqNo,
        tier: ReadTier,
        f: &mut dyn FnMut(ValueKind, SeqNo, &[u8]) -> bool,
    ) -> Result<bool> {
        let Some(lv) = version.levels(table_id) else {
            return Ok(false);
        };
        // Returns true if `f` asked to stop inside this file.
        let mut visit = |file: &FileMeta| -> Result<bool> {
            let r = match tier {
                ReadTier::All => self.inner.reader(file)?,
                ReadTier::Memory => self.inner.open_reader(file).ok_or_else(|| {
                    Error::Incomplete(format!("table file {} is not open", file.number))
                })?,
            };
            let mut stopped = false;
            r.get_versions_in(user_key, seq, tier, &mut |k, s, v| {
                let go = f(k, s, v);
                stopped = !go;
                go
            })?;
            Ok(stopped)
        };
        for file in &lv.files[0] {
            if file.overlaps(user_key, user_key) && visit(file)? {
                return Ok(true);
            }
        }
        for files in lv.files.iter().skip(1) {
            let i = files.partition_point(|f| f.largest_user() < user_key);
            if let Some(file) = files.get(i).filter(|f| f.smallest_user() <= user_key) {
                if visit(file)? {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Iterators over `table_id` in `version` for user keys in `[start, end)`, newest
    /// source first: one per level-0 file, then one per level. Files outside the range are
    /// left out, and when the whole range lies within one scan `prefix`, so are files whose
    /// bloom filter holds prefixes and rules it out.
    pub fn iterators(
        &self,
        version: &Version,
        table_id: u32,
        start: &[u8],
        end: Option<&[u8]>,
        prefix: Option<&[u8]>,
    ) -> Vec<Box<dyn InternalIterator>> {
        let Some(lv) = version.levels(table_id) else {
            return Vec::new();
        };
        let in_range =
            |f: &FileMeta| f.largest_user() >= start && end.is_none_or(|e| f.smallest_user() < e);
        let may_hold = |f: &FileMeta| match prefix {
            None => true,
            Some(p) => match self.inner.reader(f) {
                Ok(r) => r.properties().prefix_len as usize != p.len() || r.may_contain(p),
                Err(_) => true, // let the iterator report the error
            },
        };
        let open = self.inner.open_fn();
        let mut out: Vec<Box<dyn InternalIterator>> = Vec::new();
        for f in lv.files[0].iter().filter(|f| in_range(f) && may_hold(f)) {
            out.push(Box::new(level_iter(vec![f.clone()], open.clone(), false)));
        }
        for files in lv.files.iter().skip(1) {
            let keep: Vec<Arc<FileMeta>> = files
                .iter()
                .filter(|f| in_range(f) && may_hold(f))
                .cloned()
                .collect();
            if !keep.is_empty() {
                out.push(Box::new(level_iter(keep, open.clone(), false)));
            }
        }
        out
    }

    /// Counters and the current shape.
    pub fn stats(&self) -> TreeStats {
        let c = &self.inner.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut s = TreeStats {
            compactions: l(&c.compactions),
            compaction_bytes_read: l(&c.compaction_read),
            compaction_bytes_written: l(&c.compaction_written),
            flushes: l(&c.flushes),
            flush_bytes: l(&c.flush_bytes),
            stalls: l(&c.stalls),
            ..Default::default()
        };
        for (_, level, f) in self.current().all_files() {
            s.files_per_level[level] += 1;
            s.bytes_per_level[level] += f.size;
        }
        s
    }

    /// Wakes the compaction threads (after a flush commit they are woken anyway).
    pub fn kick(&self) {
        self.inner.cv.notify_all();
    }

    /// Stops and joins the compaction threads. A running compaction finishes first.
    pub fn shutdown(&self) {
        self.inner.shutdown.store(true, Ordering::SeqCst);
        {
            let _st = self.inner.state.lock();
            self.inner.cv.notify_all();
        }
        for t in self.threads.lock().drain(..) {
            let _ = t.join();
        }
    }

    /// The storage the tree lives in.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.inner.storage
    }

    /// Deletes files that no version references any more.
    pub fn purge_obsolete(&self) {
        self.inner.purge();
    }
}

impl Drop for LsmTree {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Inner {
    fn check_poison(&self) -> Result<()> {
        if !self.poisoned.load(Ordering::Acquire) {
            return Ok(());
        }
        match &*self.poison.lock() {
            Some(r) => Err(Error::Poisoned(r.clone())),
            None => Ok(()),
        }
    }

    fn set_poison(&self, reason: &str) {
        let mut p = self.poison.lock();
        if p.is_none() {
            *p = Some(reason.to_string());
        }
        self.poisoned.store(true, Ordering::Release);
    }

    fn build_options(&self, table_id: u32, level: usize) -> TableBuildOptions {
        TableBuildOptions {
            block_bytes: self.opts.block_bytes,
            restart_interval: self.opts.restart_interval,
            compression: self.hooks.compression(table_id, level),
            bloom_bits_per_key: self.opts.bloom_bits_per_key,
            prefix_len: self.hooks.prefix_len(table_id),
        }
    }

    fn finish_table(&self, b: TableBuilder) -> Result<FileMeta> {
        let number = self.next_file.fetch_add(1, Ordering::SeqCst);
        let (bytes, props) = b.finish();
        let size = bytes.len() as u64;
        let path = table_path(number);
        if let Err(e) = self.storage.put(&path, bytes) {
            let _ = self.storage.delete(&path);
            return Err(e);
        }
        Ok(file_meta(number, size, props))
    }

    /// The reader of `f` if it is open already.
    fn open_reader(&self, f: &FileMeta) -> Option<Arc<TableReader>> {
        self.readers.lock().get(&f.number).cloned()
    }

    fn reader(&self, f: &FileMeta) -> Result<Arc<TableReader>> {
        if let Some(r) = self.open_reader(f) {
            return Ok(r);
        }
        let gate = self.opening.lock().entry(f.number).or_default().clone();
        let _opening = gate.lock();
        // Whoever held the gate before may have opened it.
        if let Some(r) = self.open_reader(f) {
            return Ok(r);
        }
        let opened = TableReader::open(
            self.storage.clone(),
            self.cache.clone(),
            &table_path(f.number),
            f.number,
            f.size,
        );
        if let Ok(r) = &opened {
            self.readers.lock().insert(f.number, r.clone());
        }
        self.opening.lock().remove(&f.number);
        opened
    }

    fn open_fn(self: &Arc<Self>) -> OpenFn {
        let me = Arc::downgrade(self);
        Arc::new(move |f: &FileMeta| match me.upgrade() {
            Some(inner) => inner.reader(f),
            None => Err(Error::Closed),
        })
    }

    fn commit(&self, edit: VersionEdit, update: impl FnOnce(&mut ManifestState)) -> Result<()> {
        let mut st = self.state.lock();
        self.commit_locked(&mut st, edit, update)
    }

    fn commit_locked(
        &self,
        st: &mut State,
        edit: VersionEdit,
        update: impl FnOnce(&mut ManifestState),
    ) -> Result<()> {
        let mut next = st.manifest.clone();
        next.version = st.manifest.version.apply(&edit);
        update(&mut next);
        next.next_file_number = self.next_file.load(Ordering::SeqCst);
        st.store.commit(&next)?;
        let old = std::mem::replace(&mut st.manifest, next);
        let removed: HashSet<u64> = edit.deleted.iter().map(|d| d.2).collect();
        st.obsolete.extend(
            old.version
                .all_files()
                .filter(|(_, _, f)| removed.contains(&f.number))
                .map(|(_, _, f)| f.clone()),
        );
        *self.current.write() = Arc::new(st.manifest.version.clone());
        Ok(())
    }

    fn purge(&self) {
        let doomed: Vec<Arc<FileMeta>> = {
            let mut st = self.state.lock();
            let (free, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut st.obsolete)
                .into_iter()
                .partition(|f| Arc::strong_count(f) == 1);
            st.obsolete = keep;
            free
        };
        for f in doomed {
            self.readers.lock().remove(&f.number);
            // A failed delete leaves an orphan that the next open removes.
            let _ = self.storage.delete(&table_path(f.number));
        }
    }

    fn run_compaction(self: &Arc<Self>, p: &CompactionPick) -> Result<(VersionEdit, u64, u64)> {
        let open = self.open_fn();
        let mut children: Vec<Box<dyn InternalIterator>> = Vec::new();
        if p.level == 0 {
            for f in &p.inputs {
                children.push(Box::new(level_iter(vec![f.clone()], open.clone(), true)));
            }
        } else {
            children.push(Box::new(level_iter(p.inputs.clone(), open.clone(), true)));
        }
        if !p.overlapping.is_empty() {
            children.push(Box::new(level_iter(p.overlapping.clone(), open, true)));
        }
        let bytes_read: u64 = p.inputs.iter().chain(&p.overlapping).map(|f| f.size).sum();
        let mut it = MergingIterator::new(children);
        it.seek_to_first();
        let snapshots = self.hooks.snapshots();
        let merge = self.hooks.merge_operator(p.table_id);
        let filter = self.hooks.compaction_filter(p.table_id);
        let cx = CollapseContext {
            snapshots: &snapshots,
            merge: merge.as_deref(),
            bottommost: p.bottommost,
            filter: filter.as_deref(),
        };
        let target = self.opts.compaction.target_file_bytes;
        let opts = self.build_options(p.table_id, p.output_level);
        let mut outputs: Vec<FileMeta> = Vec::new();
        let mut builder: Option<TableBuilder> = None;
        let mut cur_key: Vec<u8> = Vec::new();
        let mut versions: Vec<KeyVersion> = Vec::new();
        let result = (|| -> Result<()> {
            loop {
                let at_end = !it.valid();
                let new_key = !at_end && key::user_key(it.key()) != cur_key.as_slice();
                if (at_end || new_key) && !versions.is_empty() {
                    for (seq, kind, v) in collapse_filtered(&cur_key, &versions, cx) {
                        let b = builder.get_or_insert_with(|| TableBuilder::new(opts, p.table_id));
                        b.add(&key::internal_key(&cur_key, seq, kind), &v);
                    }
                    versions.clear();
                    if builder
                        .as_ref()
                        .is_some_and(|b| b.estimated_size() >= target)
                    {
                        outputs.push(self.finish_table(builder.take().expect("some"))?);
                    }
                }
                if at_end {
                    break;
                }
                if self.shutdown.load(Ordering::Relaxed) {
                    return Err(Error::Closed);
                }
                let pk = key::parse(it.key()).ok_or_else(|| {
                    Error::corruption(
                        format!("compaction input of table {}", p.table_id),
                        "malformed key",
                    )
                })?;
                if new_key || cur_key.is_empty() && versions.is_empty() {
                    cur_key.clear();
                    cur_key.extend_from_slice(pk.user_key);
                }
                versions.push((pk.seq, pk.kind, Bytes::copy_from_slice(it.value())));
                it.next();
            }
            it.status()?;
            if let Some(b) = builder.take() {
                if b.entries() > 0 {
                    outputs.push(self.finish_table(b)?);
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            for o in &outputs {
                let _ = self.storage.delete(&table_path(o.number));
            }
            return Err(e);
        }
        let written = outputs.iter().map(|o| o.size).sum();
        let mut edit = VersionEdit::default();
        for f in &p.inputs {
            edit.deleted.push((p.table_id, p.level, f.number));
        }
        for f in &p.overlapping {
            edit.deleted.push((p.table_id, p.output_level, f.number));
        }
        for o in outputs {
            edit.added.push((p.output_level, o));
        }
        Ok((edit, bytes_read, written))
    }
}

fn file_meta(number: u64, size: u64, p: TableProperties) -> FileMeta {
    FileMeta {
        number,
        table_id: p.table_id,
        size,
        entries: p.entries,
        deletes: p.deletes,
        min_seq: p.min_seq,
        max_seq: p.max_seq,
        smallest: p.smallest,
        largest: p.largest,
    }
}

fn compaction_loop(inner: &Arc<Inner>) {
    loop {
        let p = {
            let mut st = inner.state.lock();
            loop {
                if inner.shutdown.load(Ordering::SeqCst) {
                    return;
                }
                if inner.poison.lock().is_none() {
                    let v = st.manifest.version.clone();
                    if let Some(p) = pick(&v, &inner.opts.compaction, &st.pointers, &st.busy) {
                        st.busy.insert(p.table_id);
                        break p;
                    }
                }
                inner.cv.wait(&mut st);
            }
        };
        let r = inner.run_compaction(&p);
        {
            let mut st = inner.state.lock();
            st.busy.remove(&p.table_id);
            match r {
                Ok((edit, read, written)) => {
                    let outputs: Vec<u64> = edit.added.iter().map(|(_, f)| f.number).collect();
                    match inner.commit_locked(&mut st, edit, |_| {}) {
                        Ok(()) => {
                            if p.level > 0 {
                                if let Some(last) = p.inputs.last() {
                                    st.pointers.insert(
                                        (p.table_id, p.level),
                                        last.largest_user().to_vec(),
                                    );
                                }
                            }
                            let c = &inner.counters;
                            c.compactions.fetch_add(1, Ordering::Relaxed);
                            c.compaction_read.fetch_add(read, Ordering::Relaxed);
                            c.compaction_written.fetch_add(written, Ordering::Relaxed);
                        }
                        Err(e) => {
                            for n in outputs {
                                let _ = inner.storage.delete(&table_path(n));
                            }
                            inner.set_poison(&format!("compaction commit failed: {e}"));
                        }
                    }
                }
                Err(Error::Closed) => {}
                Err(e) => inner.set_poison(&format!("compaction failed: {e}")),
            }
            inner.cv.notify_all();
        }
        inner.purge();
    }
}
