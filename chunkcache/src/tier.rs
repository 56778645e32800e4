//! The middle tier at run time (crate `strata-chunkcache`, folder `chunkcache/`): the hot KV
//! cache and the chunk list in front of the LSM tree, their read path, and the operations
//! the engine needs of everything below it. Maintenance (packing, chunk flushes, full
//! flushes) lives in `maintenance.rs`, the shared state in `shared.rs`.
//!
//! Keys here are *db keys* ([`crate::dbkey`]): the state table id followed by the user key,
//! so one hot store and one chunk list serve every table; table files hold plain user keys.
//!
//! Ordering invariant: for any key, the hot tier holds its newest versions, then chunks from
//! newest to oldest, then level-0 files from newest to oldest, then levels 1-6. Every move
//! publishes the data at its destination before removing it from its source, and readers
//! look in that same order, so a concurrent reader never misses a version.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex, RwLock};
use strata_dfs::key::{self, SeqNo, MAX_SEQ};
use strata_dfs::{
    Error, Folded, InternalIterator, LsmTree, ManifestState, MergeOperator, ReadTier, Result,
    TableDef, TreeHooks, TreeStats, VecIter, Version, VersionEdit, VersionFold,
};

use crate::chunk::Chunk;
use crate::dbkey::{self, StripPrefix};
use crate::doorkeeper::Doorkeeper;
use crate::hot::{HotKv, HotWrite};
use crate::maintenance::maintenance_loop;
use crate::shared::{MiddleSettings, Shared};
use crate::stats::{Counters, MiddleStats};

/// Reads from table files between two maintenance passes a read-only workload triggers.
const READS_PER_MAINTENANCE: u64 = 8192;

/// The middle tier, owning the LSM tree below it. Dropping it stops the maintenance and
/// compaction threads.
pub struct MiddleTier {
    s: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl MiddleTier {
    /// Creates the tier over `tree`. Nothing runs in the background until
    /// [`MiddleTier::start`].
    pub fn new(tree: LsmTree, hooks: Arc<dyn TreeHooks>, settings: MiddleSettings) -> Result<Self> {
        let s = Arc::new(Shared {
            door: Doorkeeper::new(),
            hot: HotKv::new(),
            chunks: RwLock::new(Vec::new()),
            chunk_bytes: AtomicUsize::new(0),
            tree,
            hooks,
            settings,
            maint: Mutex::new(()),
            next_chunk: AtomicU64::new(1),
            written: AtomicUsize::new(0),
            counters: Counters::default(),
            wake: Mutex::new(false),
            wake_cv: Condvar::new(),
            room: Mutex::new(()),
            room_cv: Condvar::new(),
            shutdown: AtomicBool::new(false),
            last_trim: Mutex::new(None),
        });
        Ok(MiddleTier {
            s,
            thread: Mutex::new(None),
        })
    }

    /// Starts the background work: the maintenance thread (packing, chunk flushes) and the
    /// tree's compaction threads. Call it once the hooks know every recovered state table,
    /// since both collapse versions with the merge operator the hooks return (see
    /// [`LsmTree::start_compaction`]). A second call does nothing.
    pub fn start(&self) -> Result<()> {
        self.s.tree.start_compaction()?;
        let mut thread = self.thread.lock();
        if thread.is_none() {
            let s2 = self.s.clone();
            let t = std::thread::Builder::new()
                .name("strata-maint".into())
                .spawn(move || maintenance_loop(&s2))
                .map_err(|e| Error::io("spawning the maintenance thread", e))?;
            *thread = Some(t);
        }
        Ok(())
    }

    // ---- writes ----

    /// Routes keys of state table `table_id` by their first `prefix_len` user-key bytes in
    /// the hot tier (0: by the whole key). Must be set before the table's first write.
    pub fn set_route_prefix(&self, table_id: u32, prefix_len: u16) {
        self.s.hot.set_route_prefix(table_id, prefix_len);
    }

    /// Applies one write to `user_key` of `table_id` in the hot tier.
    #[inline]
    pub fn apply(&self, table_id: u32, user_key: &[u8], w: HotWrite<'_>) {
        self.s
            .hot
            .apply(&dbkey::encode_on_stack(table_id, user_key), w);
        self.s.note_written(1, user_key.len() + w.value.len());
    }

    /// Applies writes (table id, user key, write) all at once: a point reader sees none or
    /// all of them.
    pub fn apply_all(&self, writes: &[(u32, &[u8], HotWrite<'_>)]) {
        let keys: Vec<Vec<u8>> = writes
            .iter()
            .map(|(t, k, _)| dbkey::encode(*t, k))
            .collect();
        let hot: Vec<(&[u8], HotWrite<'_>)> = keys
            .iter()
            .zip(writes)
            .map(|(k, (_, _, w))| (k.as_slice(), *w))
            .collect();
        self.s.hot.apply_all(&hot);
        let bytes = writes.iter().map(|(_, k, w)| k.len() + w.value.len()).sum();
        self.s.note_written(writes.len(), bytes);
    }

    /// Called after writes: wakes maintenance when a tier is over budget and stalls the
    /// caller while the hot tier is over its hard limit (the write-stall rule).
    pub fn after_write(&self) -> Result<()> {
        self.s.after_write()
    }

    // ---- reads ----

    /// Reads `user_key` of `table_id` as of `seq` through every tier. When `promote` is set
    /// (latest reads), a value found below the hot tier is installed in it. Under
    /// [`ReadTier::Memory`] a read that needs storage I/O is [`Error::Incomplete`].
    pub fn get(
        &self,
        table_id: u32,
        user_key: &[u8],
        seq: SeqNo,
        merge: Option<&dyn MergeOperator>,
        promote: bool,
        tier: ReadTier,
    ) -> Result<Option<Vec<u8>>> {
        let s = &self.s;
        let dk = dbkey::encode_on_stack(table_id, user_key);
        // One fold over every tier, newest first (see `strata_dfs::VersionFold`).
        let mut fold = VersionFold::new(merge, seq);
        let probe = s.hot.fold_into(&dk, &mut fold);
        if fold.is_done() {
            return Ok(fold.into_value());
        }
        let mut visit = |kind, vseq, v: &[u8]| fold.push(vseq, kind, v);
        let chunks: Vec<Arc<Chunk>> = s.chunks.read().clone();
        let hash = strata_dfs::internals::hash64(&dk);
        let mut done = false;
        for c in &chunks {
            if c.get_versions_hashed(&dk, hash, seq, &mut visit)? {
                done = true;
                break;
            }
        }
        if done {
            s.counters.chunk_hits.fetch_add(1, Ordering::Relaxed);
        } else {
            let version = s.tree.current();
            s.tree
                .get(&version, table_id, user_key, seq, tier, &mut visit)?;
            // Counted once the read is complete (a memory-only attempt is repeated).
            let misses = s.counters.chunk_misses.fetch_add(1, Ordering::Relaxed);
            // Reads that fill the block cache allocate on the reader's thread, while the
            // free memory the writes left sits in other threads' allocator arenas; only a
            // maintenance pass returns it (`release_retained`), and a read-only phase
            // triggers none otherwise.
            if misses % READS_PER_MAINTENANCE == READS_PER_MAINTENANCE - 1 {
                s.signal();
            }
        }
        let (kind, vseq, value) = match fold.finish() {
            Folded::Value { seq, value } => (key::ValueKind::Put, seq, value),
            Folded::Deleted { seq } => (key::ValueKind::Delete, seq, Vec::new()),
            Folded::Operands {
                newest_seq,
                operand,
                ..
            } => (
                key::ValueKind::Put,
                newest_seq,
                strata_dfs::resolve_operand(merge, operand),
            ),
            Folded::Absent => return Ok(None),
        };
        if promote {
            if probe.present {
                // A partial entry, or one whose operands are all persisted (readers skip
                // those in memory): install the full value so the next read stops here.
                if kind == key::ValueKind::Put {
                    s.hot.resolve_partial(&dk, vseq, &value);
                }
            } else if s.door.seen_before(hash) {
                s.hot.promote(&dk, probe.generation, vseq, kind, &value);
                if s.hot.bytes() > s.settings.hot_budget {
                    s.signal();
                }
            }
        }
        Ok((kind == key::ValueKind::Put).then_some(value))
    }

    /// The sequence number of the newest version of `user_key` in table files, if any
    /// (WAL replay uses it to skip writes that already reached a table file).
    pub fn newest_seq_in_tables(&self, table_id: u32, user_key: &[u8]) -> Result<Option<SeqNo>> {
        let mut newest = None;
        let version = self.s.tree.current();
        self.s.tree.get(
            &version,
            table_id,
            user_key,
            MAX_SEQ,
            ReadTier::All,
            &mut |_, seq, _| {
                newest = Some(seq);
                false
            },
        )?;
        Ok(newest)
    }

    /// Iterators over `table_id` as user-key internal iterators, newest source first, and
    /// the version they read (keep it alive as long as the iterators). The hot tier's part
    /// is copied now, for keys in `[start, end)`.
    pub fn iter_sources(
        &self,
        table_id: u32,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> (Vec<Box<dyn InternalIterator>>, Arc<Version>) {
        let s = &self.s;
        let lo = dbkey::encode(table_id, start);
        let hi = dbkey::range_end(table_id, end);
        let hot = s.hot.range(&lo, Some(&hi));
        // A scan within one scan prefix skips chunks and files whose bloom filters rule the
        // prefix out.
        let prefix: Option<Vec<u8>> = s.hot.route_len(&lo).and_then(|r| {
            let p = lo.get(..r)?;
            let within = match key::prefix_successor(p) {
                Some(succ) => hi.as_slice() <= succ.as_slice(),
                None => false,
            };
            within.then(|| p.to_vec())
        });
        let chunks: Vec<Arc<Chunk>> = s.chunks.read().clone();
        let version = s.tree.current();
        let mut out: Vec<Box<dyn InternalIterator>> = Vec::new();
        out.push(Box::new(StripPrefix::new(VecIter::new(hot), table_id)));
        for c in &chunks {
            if prefix.as_deref().is_none_or(|p| c.may_contain_prefix(p)) {
                out.push(Box::new(StripPrefix::new(c.iter(), table_id)));
            }
        }
        let user_prefix = prefix.as_deref().map(dbkey::user_key);
        out.extend(
            s.tree
                .iterators(&version, table_id, start, end, user_prefix),
        );
        (out, version)
    }

    // ---- maintenance and stats ----

    /// Persists every dirty hot entry and every chunk as level-0 files and commits them with
    /// `update` applied to the manifest in the same commit. Hot entries stay resident, now
    /// clean; flushed chunks are dropped. REQUIRES: every write up to the sequence number the
    /// caller records in `update` has been applied.
    pub fn flush_all(&self, update: impl FnOnce(&mut ManifestState)) -> Result<()> {
        self.s.flush_all(update)
    }

    /// Runs one maintenance pass now on the caller's thread (tests, and `Db::maintain`).
    pub fn maintain_now(&self) -> Result<()> {
        self.s.maintain()
    }

    /// Counters and sizes.
    pub fn stats(&self) -> MiddleStats {
        let s = &self.s;
        let chunks = s.chunks.read();
        s.counters
            .snapshot(&s.hot, &chunks, s.chunk_bytes.load(Ordering::Relaxed))
    }

    // ---- the tree below ----

    /// Fails with [`Error::Poisoned`] if a background or foreground write failed.
    pub fn check_poison(&self) -> Result<()> {
        self.s.tree.check_poison()
    }

    /// Marks the database as refusing writes (a write below the middle tier failed).
    pub fn poison(&self, reason: &str) {
        self.s.tree.poison(reason);
    }

    /// Allocates a new file number (for WAL files, which share the numbering).
    pub fn new_file_number(&self) -> u64 {
        self.s.tree.new_file_number()
    }

    /// Makes every later file number larger than `n` (a number found in use outside the
    /// manifest).
    pub fn reserve_file_numbers_through(&self, n: u64) {
        self.s.tree.reserve_file_numbers_through(n);
    }

    /// Records a state table's definition in the manifest.
    pub fn define_table(&self, table_id: u32, def: TableDef) -> Result<()> {
        self.s.tree.commit(VersionEdit::default(), |m| {
            m.tables.insert(table_id, def);
        })
    }

    /// The largest sequence number in any table file (0 if none).
    pub fn max_file_seq(&self) -> SeqNo {
        let version = self.s.tree.current();
        version
            .all_files()
            .map(|(_, _, f)| f.max_seq)
            .max()
            .unwrap_or(0)
    }

    /// Waits until no compaction is runnable or running.
    pub fn wait_for_compactions(&self) -> Result<()> {
        self.s.tree.wait_for_compactions()
    }

    /// Compacts every level of `table_id` down to the bottom, on the caller's thread.
    pub fn compact_table_fully(&self, table_id: u32) -> Result<()> {
        self.s.tree.compact_table_fully(table_id)
    }

    /// Deletes table files that no version references any more.
    pub fn purge_obsolete(&self) {
        self.s.tree.purge_obsolete();
    }

    /// Counters and shape of the tree.
    pub fn tree_stats(&self) -> TreeStats {
        self.s.tree.stats()
    }

    /// The LSM tree below.
    pub fn tree(&self) -> &LsmTree {
        &self.s.tree
    }

    /// A copy of the manifest state as last committed.
    pub fn manifest(&self) -> ManifestState {
        self.s.tree.manifest()
    }

    /// Stops the maintenance thread, then the tree's compaction threads (pending data
    /// stays in memory; flush first to keep it).
    pub fn shutdown(&self) {
        self.s.shutdown.store(true, Ordering::SeqCst);
        self.s.signal();
        {
            let _g = self.s.room.lock();
            self.s.room_cv.notify_all();
        }
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
        self.s.tree.shutdown();
    }
}

impl Drop for MiddleTier {
    fn drop(&mut self) {
        self.shutdown();
    }
}
