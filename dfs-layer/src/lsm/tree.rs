//! The LSM tree's public handle ([`LsmTree`]): opening, level-0 flush writes and commits,
//! point reads and iterators over table files. Its parts live beside it: the shared state
//! and version commits (`shared.rs`), the table writer (`writer.rs`), compaction
//! (`compaction.rs`) and the reader cache (`readers.rs`).
//!
//! Concurrency: one `state` mutex serialises version changes (flush commits, compaction
//! commits, table definitions) and is the condition-variable lock for the compaction threads
//! and for stalled flushers. Readers never take it: they clone the current `Arc<Version>`
//! under a short read lock, and a file is deleted only once no version, iterator or snapshot
//! holds its `Arc<FileMeta>`. Compactions run on `compaction_threads` background threads, at
//! most one per state table at a time; only [`LsmTree::compact_table_fully`] (behind
//! `Db::compact_table`) runs one on its caller's thread. The write-stall rule:
//! [`LsmTree::wait_for_l0_room`] blocks a flusher while a table has `l0_stop` or more
//! level-0 files, which in turn throttles writers in the upper tiers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex, RwLock};

use super::checkpoint::{CheckpointStore, IN_PLACE_DIR};
use super::compaction::compaction_loop;
use super::level_iter::level_iter;
use super::manifest::{ManifestRecovery, ManifestState, ManifestStore};
use super::options::{TreeHooks, TreeOptions};
use super::shared::{Counters, FlushLog, Inner, State};
use super::version::{table_number, table_path, FileMeta, Version, VersionEdit, NUM_LEVELS};
use super::writer::{write_run, RunSpec};
use crate::cache::BlockCache;
use crate::error::{Error, Result};
use crate::iter::InternalIterator;
use crate::key::{SeqNo, ValueKind};
use crate::storage::{Storage, StoreSet};
use crate::table::ReadTier;

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

/// The tree. Dropping it stops the compaction threads (see [`LsmTree::shutdown`]).
pub struct LsmTree {
    inner: Arc<Inner>,
    /// The compaction threads, once [`LsmTree::start_compaction`] started them.
    threads: Mutex<Option<Vec<JoinHandle<()>>>>,
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
    /// Opens (or creates) the tree in `storage` as its writer: loads the newest manifest
    /// generation (a damaged one is [`Error::Corruption`]), checks that every file it names
    /// exists, claims the store with a new writer epoch ([`Error::Busy`] if another writer
    /// claimed it first), deletes orphaned table files; compaction starts with [`LsmTree::start_compaction`].
    pub fn open(
        storage: Arc<dyn Storage>,
        cache: Option<Arc<BlockCache>>,
        opts: TreeOptions,
        hooks: Arc<dyn TreeHooks>,
        mut externals: StoreSet,
    ) -> Result<(LsmTree, Recovered)> {
        let (mut store, loaded) = ManifestStore::open(storage.clone())?;
        store.set_sync(opts.sync_writes);
        let (mut manifest, recovery) = match loaded {
            Some((s, r)) => (s, Some(r)),
            None if opts.read_only => {
                return Err(Error::invalid(format!("no database in {storage:?}")));
            }
            None => (
                ManifestState {
                    next_file_number: 1,
                    ..Default::default()
                },
                None,
            ),
        };
        // Every file the manifest names must be there before anything is written: own files
        // by listing, foreign ones (restored from a checkpoint) by asking their store.
        let referenced: HashSet<u64> = manifest
            .version
            .all_files()
            .filter(|(_, _, f)| f.is_owned())
            .map(|(_, _, f)| f.number)
            .collect();
        let files: Vec<(u64, String)> = storage
            .list("sst/")?
            .into_iter()
            .filter_map(|o| Some((table_number(&o.path)?, o.path)))
            .collect();
        let present: HashSet<u64> = files.iter().map(|(n, _)| *n).collect();
        if let Some(missing) = referenced.iter().find(|n| !present.contains(n)) {
            return Err(Error::corruption(
                table_path(*missing),
                "table file referenced by the manifest is missing",
            ));
        }
        for (_, _, f) in manifest.version.all_files() {
            if let Some(o) = &f.origin {
                // Resolving also sets up the store's mirror.
                let store = externals.resolve(&o.store)?;
                if opts.verify_foreign {
                    check_foreign(&store, f)?;
                }
            }
        }
        // Files the database's own (in-place) checkpoints reference stay, and stay pinned:
        // each checkpoint's own files, read once. If one cannot be read, nothing is swept.
        let in_place = CheckpointStore::new(storage.clone(), IN_PLACE_DIR)?;
        let mut checkpoint_pins: Vec<Vec<u64>> = Vec::new();
        let mut every_checkpoint_read = true;
        for r in in_place.list()? {
            match in_place.read(&r) {
                Ok(m) => checkpoint_pins.push(
                    (m.files.iter())
                        .filter(|f| f.meta.origin.is_none())
                        .filter_map(|f| table_number(&f.path))
                        .collect(),
                ),
                Err(_) => every_checkpoint_read = false,
            }
        }
        let mut orphans_deleted = 0;
        if !opts.read_only {
            let keep = ManifestStore::referenced_by_any(&*storage)?;
            store.claim(&mut manifest)?;
            if let (Some(mut keep), true) = (keep, every_checkpoint_read) {
                keep.extend(checkpoint_pins.iter().flatten());
                for (n, path) in &files {
                    if !keep.contains(n) {
                        storage.delete(path)?;
                        orphans_deleted += 1;
                    }
                }
            }
        }
        let max_present = present.iter().copied().max().unwrap_or(0);
        manifest.next_file_number = manifest.next_file_number.max(max_present + 1);
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
            externals: Mutex::new(externals),
            pinned: Mutex::new(HashMap::new()),
            flushed: Mutex::new(FlushLog::default()),
            shutdown: AtomicBool::new(false),
            poisoned: AtomicBool::new(false),
            poison: Mutex::new(None),
            counters: Counters::default(),
        });
        if opts.read_only {
            inner.set_poison("the database is open read-only");
        }
        // Pinned per in-place checkpoint, so releasing one drops one pin per file.
        for own in &checkpoint_pins {
            inner.pin(own);
        }
        Ok((
            LsmTree {
                inner,
                threads: Mutex::new(None),
            },
            Recovered {
                state: manifest,
                recovery,
                orphans_deleted,
            },
        ))
    }

    /// Starts the compaction threads (none for a read-only tree; a second call does
    /// nothing). Call it once the hooks know every recovered state table: a compaction
    /// collapses a table's versions with the merge operator and filter the hooks return,
    /// so one run before the table is registered would fold merge operands without their
    /// operator.
    pub fn start_compaction(&self) -> Result<()> {
        let mut threads = self.threads.lock();
        if threads.is_some()
            || self.inner.opts.read_only
            || self.inner.shutdown.load(Ordering::SeqCst)
        {
            return Ok(());
        }
        let workers = self.inner.opts.compaction_threads.max(1);
        let mut started = Vec::with_capacity(workers);
        for i in 0..workers {
            let inner = self.inner.clone();
            let t = std::thread::Builder::new()
                .name(format!("strata-compact-{i}"))
                .spawn(move || compaction_loop(&inner));
            match t {
                Ok(t) => started.push(t),
                Err(e) => {
                    *threads = Some(started);
                    return Err(Error::io("spawning a compaction thread", e));
                }
            }
        }
        let has_mirror = (self.inner.current.read().all_files())
            .any(|(_, _, f)| self.inner.mirror_of(f).is_some());
        if has_mirror {
            let inner = self.inner.clone();
            match std::thread::Builder::new()
                .name("strata-mirror".into())
                .spawn(move || inner.mirror_files())
            {
                Ok(t) => started.push(t),
                Err(e) => {
                    *threads = Some(started);
                    return Err(Error::io("spawning the mirror thread", e));
                }
            }
        }
        *threads = Some(started);
        Ok(())
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

    /// Writes the versions of `table_id` in `input` (from its current position to its end)
    /// as level-0 files (split at the target file size) through the table writer: versions of a key are collapsed and the
    /// table's compaction filter applied. Returns the files (none if nothing was left to
    /// write), to be committed with [`LsmTree::commit`]. A failed write poisons the tree:
    /// the caller's data is still in memory, but nothing may be written after a write that
    /// may have been lost.
    pub fn write_l0(
        &self,
        table_id: u32,
        input: &mut dyn InternalIterator,
    ) -> Result<Vec<FileMeta>> {
        self.check_poison()?;
        // Split like compaction output: a full flush of a large hot tier would otherwise
        // build one file as large as everything dirty in memory, all at once. The files of
        // one flush have disjoint key ranges, and level-0 compaction takes every level-0 file.
        let spec = RunSpec {
            table_id,
            bottommost: false,
            split_bytes: Some(self.inner.opts.compaction.target_file_bytes),
            build: self.inner.build_options(table_id, 0),
        };
        let files = write_run(&self.inner.run_target(), spec, input).inspect_err(|e| {
            if !matches!(e, Error::Closed) {
                self.inner
                    .set_poison(&format!("writing a level-0 table failed: {e}"));
            }
        })?;
        let c = &self.inner.counters;
        for f in &files {
            c.flushes.fetch_add(1, Ordering::Relaxed);
            c.flush_bytes.fetch_add(f.size, Ordering::Relaxed);
        }
        Ok(files)
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

    /// Blocks until no compaction is runnable or running (tests, bulk loads).
    pub fn wait_for_compactions(&self) -> Result<()> {
        self.inner.wait_for_compactions()
    }

    /// Compacts every level of `table_id` into the next, top to bottom, until all its data
    /// is in one level (RocksDB's `CompactRange` over the whole table): the last step is
    /// bottommost, so tombstones and filtered data are dropped there. Runs on the caller's
    /// thread, holding the table's compaction slot, so background threads skip the table
    /// meanwhile.
    pub fn compact_table_fully(&self, table_id: u32) -> Result<()> {
        self.inner.compact_table_fully(table_id)
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
        let admits = |f: &FileMeta| f.filter.is_none_or(|k| k.admits(user_key));
        for file in &lv.files[0] {
            if file.overlaps(user_key, user_key) && admits(file) && visit(file)? {
                return Ok(true);
            }
        }
        for files in lv.files.iter().skip(1) {
            let i = files.partition_point(|f| f.largest_user() < user_key);
            if let Some(file) = files.get(i).filter(|f| f.smallest_user() <= user_key) {
                if admits(file) && visit(file)? {
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
        for t in self.threads.lock().iter_mut().flat_map(|v| v.drain(..)) {
            let _ = t.join();
        }
    }

    /// The storage the tree lives in.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.inner.storage
    }

    /// The block cache the tree reads through, if it has one.
    pub fn block_cache(&self) -> Option<&Arc<BlockCache>> {
        self.inner.cache.as_ref()
    }

    /// Deletes files that no version references any more.
    pub fn purge_obsolete(&self) {
        self.inner.purge();
    }

    /// Keeps the own files `numbers` in storage for a checkpoint that references them,
    /// after they leave the version, until [`LsmTree::unpin`].
    pub fn pin(&self, numbers: &[u64]) {
        self.inner.pin(numbers);
    }

    /// Releases one checkpoint's pins ([`LsmTree::pin`]); files left unreferenced are deleted.
    pub fn unpin(&self, numbers: &[u64]) {
        self.inner.unpin(numbers);
    }

    /// Copies every foreign file of the current version in a mirrored store to its local
    /// mirror now, on the caller's thread (the background thread does the same after a
    /// restore). Returns how many such files are still read remotely (those over the
    /// mirror's size bound).
    pub fn mirror_now(&self) -> usize {
        self.inner.mirror_files();
        self.current()
            .all_files()
            .filter(|(_, _, f)| {
                self.inner
                    .mirror_of(f)
                    .is_some_and(|m| !m.is_local(&f.path()))
            })
            .count()
    }

    /// The manifest state as last committed, and the files flush commits added since the
    /// previous capture (`None` if the log was not kept, or outgrew its limit, since then),
    /// taken atomically: together with the previous capture's state they hold exactly this
    /// state's data. With `track_ratio`, the log starts anew, holding the files it logs
    /// until they exceed that fraction of this state's table files (at least 64 MiB; past
    /// it the log is dropped, so a database that stops checkpointing does not keep its
    /// flushed files on disk); without, logging stops.
    pub fn capture(&self, track_ratio: Option<f64>) -> (ManifestState, Option<Vec<Arc<FileMeta>>>) {
        let st = self.inner.state.lock();
        let mut log = self.inner.flushed.lock();
        let files = log.files.take();
        let size: u64 = st
            .manifest
            .version
            .all_files()
            .map(|(_, _, f)| f.size)
            .sum();
        *log = FlushLog {
            files: track_ratio.map(|_| Vec::new()),
            bytes: 0,
            limit: track_ratio.map_or(0, |r| ((size as f64 * r) as u64).max(64 << 20)),
        };
        (st.manifest.clone(), files)
    }

    /// Merges `files` of table `table_id` (own or foreign, in any level order: versions
    /// are ordered by sequence number) into one sorted run of new own files, each up to
    /// `split_bytes`, through the table writer (collapsed, filtered, never bottommost: tombstones
    /// and operands stay). The files are not added to the version: the caller uses them and
    /// deletes them with [`LsmTree::delete_unversioned`].
    pub fn write_merged_run(
        &self,
        table_id: u32,
        files: &[Arc<FileMeta>],
        split_bytes: u64,
    ) -> Result<Vec<FileMeta>> {
        let spec = RunSpec {
            table_id,
            bottommost: false,
            split_bytes: Some(split_bytes),
            build: self.inner.build_options(table_id, 0),
        };
        self.inner
            .merge_runs(files.iter().map(|f| vec![f.clone()]).collect(), spec)
    }

    /// Deletes own files that were written but never committed to a version
    /// ([`LsmTree::write_merged_run`]). A failed delete leaves an orphan the next open removes.
    pub fn delete_unversioned(&self, numbers: &[u64]) {
        let st = self.inner.state.lock();
        let live: HashSet<u64> = st
            .manifest
            .version
            .all_files()
            .map(|(_, _, f)| f.number)
            .collect();
        drop(st);
        for n in numbers.iter().filter(|n| !live.contains(n)) {
            self.inner.readers.lock().remove(n);
            let _ = self.inner.storage.delete(&table_path(*n));
        }
    }

    /// The store `f` is read from: this tree's own, or the one its origin names.
    pub fn storage_of(&self, f: &FileMeta) -> Result<Arc<dyn Storage>> {
        self.inner.storage_of(f)
    }
}

/// Checks that a foreign file is where its origin says, with the size its metadata says:
/// [`Error::Corruption`] naming the file otherwise.
pub fn check_foreign(storage: &Arc<dyn Storage>, f: &FileMeta) -> Result<()> {
    let path = f.path();
    let name = format!("{} in {}", path, storage.location());
    match storage.size(&path) {
        Ok(n) if n == f.size => Ok(()),
        Ok(n) => Err(Error::corruption(
            name,
            format!("table file is {n} bytes, the manifest says {}", f.size),
        )),
        Err(Error::NotFound(_)) => Err(Error::corruption(
            name,
            "table file referenced by the manifest is missing",
        )),
        Err(e) => Err(e),
    }
}

impl Drop for LsmTree {
    fn drop(&mut self) {
        self.shutdown();
    }
}
