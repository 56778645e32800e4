//! The middle tier at run time: the hot KV store, the chunk list, and the maintenance
//! thread that packs cold hot entries into chunks and writes old chunks out as level-0
//! table files.
//!
//! Keys here are *db keys*: the state table id (u32 big-endian) followed by the user key, so
//! one hot store and one chunk list serve every table; table files hold plain user keys.
//!
//! Ordering invariant: for any key, the hot tier holds its newest versions, then chunks from
//! newest to oldest, then level-0 files from newest to oldest, then levels 1-6. Every move
//! publishes the data at its destination before removing it from its source, and readers
//! look in that same order, so a concurrent reader never misses a version.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex, RwLock};
use strata_dfs::key::{self, SeqNo, ValueKind};
use strata_dfs::{
    collapse_filtered, filter_version, CollapseContext, CompactionFilter, Error, InternalIterator,
    KeyVersion, LsmTree, ManifestState, MergeOperator, MergingIterator, ReadTier, Result,
    TreeHooks, VecIter, Version, VersionEdit,
};

use crate::chunk::Chunk;
use crate::hot::{chain_charge, HotKv, HotLookup};

/// Length of the table-id prefix of a db key.
pub const TABLE_PREFIX_LEN: usize = 4;

/// Builds the db key of `user_key` in `table_id`.
pub fn db_key(table_id: u32, user_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(TABLE_PREFIX_LEN + user_key.len());
    k.extend_from_slice(&table_id.to_be_bytes());
    k.extend_from_slice(user_key);
    k
}

/// [`db_key`] on the stack for keys up to 60 bytes (the read paths).
fn stack_db_key(table_id: u32, user_key: &[u8]) -> smallvec::SmallVec<[u8; 64]> {
    let mut k = smallvec::SmallVec::new();
    k.extend_from_slice(&table_id.to_be_bytes());
    k.extend_from_slice(user_key);
    k
}

/// Middle-tier sizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MiddleSettings {
    /// Bytes the hot tier may hold before packing starts; packing brings it to 3/4 of this.
    pub hot_budget: usize,
    /// Bytes the chunk tier may hold before chunks are flushed; flushing brings it to 3/4.
    pub chunk_budget: usize,
    /// Uncompressed size of one chunk block.
    pub chunk_block_bytes: usize,
    /// Writers stall while the hot tier holds more than this many bytes.
    pub hot_stall_bytes: usize,
}

/// Counters of the middle tier.
#[derive(Debug, Default)]
struct Counters {
    packs: AtomicU64,
    packed_entries: AtomicU64,
    packed_raw_bytes: AtomicU64,
    packed_chunk_bytes: AtomicU64,
    dropped_clean: AtomicU64,
    chunk_hits: AtomicU64,
    chunk_misses: AtomicU64,
    chunk_flushes: AtomicU64,
    chunk_flush_bytes: AtomicU64,
    write_stalls: AtomicU64,
    full_flushes: AtomicU64,
}

/// A copy of the middle tier's counters and sizes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MiddleStats {
    /// Hot entries.
    pub hot_entries: u64,
    /// Hot bytes.
    pub hot_bytes: u64,
    /// Hot lookups answered in memory.
    pub hot_hits: u64,
    /// Hot lookups that went below.
    pub hot_misses: u64,
    /// Entries promoted into the hot tier.
    pub promotions: u64,
    /// Writes applied in place.
    pub in_place_updates: u64,
    /// Chunks held.
    pub chunks: u64,
    /// Entries in chunks.
    pub chunk_entries: u64,
    /// Bytes in chunks.
    pub chunk_bytes: u64,
    /// Hot-tier bytes of the entries now in chunks.
    pub chunk_raw_bytes: u64,
    /// Lookups answered by a chunk.
    pub chunk_hits: u64,
    /// Lookups that went past the chunks.
    pub chunk_misses: u64,
    /// Packing rounds.
    pub packs: u64,
    /// Entries packed into chunks, ever.
    pub packed_entries: u64,
    /// Hot-tier bytes of all packed entries, ever.
    pub packed_raw_bytes: u64,
    /// Chunk bytes produced, ever.
    pub packed_chunk_bytes: u64,
    /// Clean entries dropped instead of packed.
    pub dropped_clean: u64,
    /// Chunk flushes to level 0.
    pub chunk_flushes: u64,
    /// Bytes of table files written by chunk flushes.
    pub chunk_flush_bytes: u64,
    /// Times a writer waited for the hot tier to shrink.
    pub write_stalls: u64,
    /// Full flushes.
    pub full_flushes: u64,
}

/// Admission filter for promotions (a TinyLFU-style doorkeeper): a key read from below is
/// installed in the hot tier only if it was also read from below recently. A uniform scan
/// over far more keys than fit in memory then costs no churn, while keys read twice (the
/// head of a skewed distribution) become hot. Two bits per key hash in a 2^20-bit table,
/// cleared after 2^18 admissions checks.
struct Doorkeeper {
    bits: Box<[AtomicU64]>,
    checks: AtomicU64,
}

const DOOR_BITS: u64 = 1 << 20;

impl Doorkeeper {
    fn new() -> Self {
        Doorkeeper {
            bits: (0..DOOR_BITS / 64).map(|_| AtomicU64::new(0)).collect(),
            checks: AtomicU64::new(0),
        }
    }

    /// Records a miss for `h`; true if `h` had missed before (since the last reset).
    fn seen_before(&self, h: u64) -> bool {
        if self.checks.fetch_add(1, Ordering::Relaxed) % (DOOR_BITS / 4) == DOOR_BITS / 4 - 1 {
            for w in self.bits.iter() {
                w.store(0, Ordering::Relaxed);
            }
        }
        let mut all = true;
        for p in [h % DOOR_BITS, h.rotate_left(32) % DOOR_BITS] {
            let (w, b) = ((p / 64) as usize, 1u64 << (p % 64));
            all &= self.bits[w].fetch_or(b, Ordering::Relaxed) & b != 0;
        }
        all
    }
}

struct Shared {
    door: Doorkeeper,
    hot: HotKv,
    chunks: RwLock<Vec<Arc<Chunk>>>,
    chunk_bytes: AtomicUsize,
    tree: Arc<LsmTree>,
    hooks: Arc<dyn TreeHooks>,
    settings: MiddleSettings,
    maint: Mutex<()>,
    next_chunk: AtomicU64,
    counters: Counters,
    wake: Mutex<bool>,
    wake_cv: Condvar,
    room: Mutex<()>,
    room_cv: Condvar,
    shutdown: AtomicBool,
}

/// The middle tier. Dropping it stops the maintenance thread.
pub struct MiddleTier {
    s: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl MiddleTier {
    /// Creates the tier over `tree` and starts its maintenance thread.
    pub fn new(
        tree: Arc<LsmTree>,
        hooks: Arc<dyn TreeHooks>,
        settings: MiddleSettings,
    ) -> Result<Self> {
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
            counters: Counters::default(),
            wake: Mutex::new(false),
            wake_cv: Condvar::new(),
            room: Mutex::new(()),
            room_cv: Condvar::new(),
            shutdown: AtomicBool::new(false),
        });
        let s2 = s.clone();
        let thread = std::thread::Builder::new()
            .name("strata-maint".into())
            .spawn(move || maintenance_loop(&s2))
            .map_err(|e| Error::io("spawning the maintenance thread", e))?;
        Ok(MiddleTier {
            s,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The hot tier.
    pub fn hot(&self) -> &HotKv {
        &self.s.hot
    }

    /// The tree below.
    pub fn tree(&self) -> &Arc<LsmTree> {
        &self.s.tree
    }

    /// Called after writes: wakes maintenance when a tier is over budget and stalls the
    /// caller while the hot tier is over its hard limit (the write-stall rule).
    pub fn after_write(&self) -> Result<()> {
        let s = &self.s;
        if s.hot.bytes() > s.settings.hot_budget {
            s.signal();
        }
        if s.hot.bytes() > s.settings.hot_stall_bytes {
            s.counters.write_stalls.fetch_add(1, Ordering::Relaxed);
            let mut g = s.room.lock();
            while s.hot.bytes() > s.settings.hot_stall_bytes {
                s.tree.check_poison()?;
                if s.shutdown.load(Ordering::SeqCst) {
                    return Err(Error::Closed);
                }
                s.signal();
                s.room_cv.wait(&mut g);
            }
        }
        Ok(())
    }

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
        let dk = stack_db_key(table_id, user_key);
        let mut floor = SeqNo::MAX;
        let (found, generation) = s.hot.get_with_generation(&dk, seq, merge);
        let mut pending: Option<(Vec<u8>, SeqNo)> = match found {
            HotLookup::Value(v) => return Ok(Some(v)),
            HotLookup::Deleted => return Ok(None),
            HotLookup::Partial {
                operand,
                newest_seq,
                oldest_seq,
            } => {
                floor = oldest_seq;
                Some((operand, newest_seq))
            }
            HotLookup::Absent => None,
        };
        let from_hot = pending.is_some();
        // Collect versions below the hot tier until a value or tombstone ends the search.
        // Tiers hold strictly older versions below newer ones, so a version whose sequence
        // number is not below the last one taken is a duplicate (e.g. replayed from the WAL
        // after it had already reached a table file) and is skipped.
        let mut result: Option<(ValueKind, SeqNo, Vec<u8>)> = None;
        let mut visit = |kind: ValueKind, vseq: SeqNo, v: &[u8]| -> bool {
            if vseq >= floor {
                return true;
            }
            floor = vseq;
            let (acc, newest) = match pending.take() {
                None => {
                    if kind == ValueKind::Merge {
                        pending = Some((v.to_vec(), vseq));
                        return true;
                    }
                    result = Some((kind, vseq, v.to_vec()));
                    return false;
                }
                Some(p) => p,
            };
            let Some(op) = merge else {
                result = Some((ValueKind::Put, newest, acc));
                return false;
            };
            match kind {
                ValueKind::Merge => {
                    pending = Some((op.merge(Some(v), &acc), newest));
                    true
                }
                ValueKind::Put => {
                    result = Some((ValueKind::Put, newest, op.merge(Some(v), &acc)));
                    false
                }
                ValueKind::Delete => {
                    result = Some((ValueKind::Put, newest, op.merge(None, &acc)));
                    false
                }
            }
        };
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
            s.counters.chunk_misses.fetch_add(1, Ordering::Relaxed);
        }
        let (kind, vseq, value) = match (result, pending) {
            (Some(r), _) => r,
            (None, Some((acc, newest))) => {
                let v = merge.map_or(acc.clone(), |op| op.merge(None, &acc));
                (ValueKind::Put, newest, v)
            }
            (None, None) => return Ok(None),
        };
        if promote {
            if from_hot {
                if kind == ValueKind::Put {
                    s.hot.resolve_partial(&dk, vseq, &value);
                }
            } else if s.door.seen_before(hash) {
                s.hot.promote(&dk, generation, vseq, kind, &value);
                if s.hot.bytes() > s.settings.hot_budget {
                    s.signal();
                }
            }
        }
        Ok((kind == ValueKind::Put).then_some(value))
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
        let lo = db_key(table_id, start);
        let hi = match end {
            Some(e) => db_key(table_id, e),
            None => match table_id.checked_add(1) {
                Some(n) => n.to_be_bytes().to_vec(),
                None => vec![0xff; 5],
            },
        };
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
        let tprefix = table_id.to_be_bytes();
        let mut out: Vec<Box<dyn InternalIterator>> = Vec::new();
        out.push(Box::new(StripPrefix::new(
            Box::new(VecIter::new(hot)),
            tprefix,
        )));
        for c in &chunks {
            if prefix.as_deref().is_none_or(|p| c.may_contain_prefix(p)) {
                out.push(Box::new(StripPrefix::new(Box::new(c.iter()), tprefix)));
            }
        }
        let user_prefix = prefix.as_deref().map(|p| &p[TABLE_PREFIX_LEN..]);
        out.extend(
            s.tree
                .iterators(&version, table_id, start, end, user_prefix),
        );
        (out, version)
    }

    /// Persists every dirty hot entry and every chunk as level-0 files and commits them with
    /// `update` applied to the manifest in the same commit. Hot entries stay resident, now
    /// clean; flushed chunks are dropped. REQUIRES: every write up to the sequence number the
    /// caller records in `update` has been applied.
    pub fn flush_all(&self, update: impl FnOnce(&mut ManifestState)) -> Result<()> {
        let s = &self.s;
        let _m = s.maint.lock();
        s.tree.check_poison()?;
        let dirty = s.hot.dirty_entries();
        let chunks: Vec<Arc<Chunk>> = s.chunks.read().clone();
        let mut hot_entries: Vec<(Vec<u8>, Bytes)> = Vec::new();
        for (k, versions) in &dirty {
            for v in versions {
                hot_entries.push((
                    key::internal_key(k, v.seq, v.kind),
                    Bytes::copy_from_slice(&v.value),
                ));
            }
        }
        hot_entries.sort_by(|a, b| key::compare(&a.0, &b.0));
        // Chunks and hot entries go to separate level-0 files (chunks first, so the hot file
        // is newer): a file never folds a hot version together with a chunk version, so
        // either source may leave memory first without hiding the other (see DESIGN.md).
        let chunk_iters: Vec<Box<dyn InternalIterator>> = chunks
            .iter()
            .map(|c| Box::new(c.iter()) as Box<dyn InternalIterator>)
            .collect();
        let mut edit = s.write_l0(MergingIterator::new(chunk_iters))?;
        let hot_iter: Box<dyn InternalIterator> = Box::new(VecIter::new(hot_entries));
        edit.added
            .extend(s.write_l0(MergingIterator::new(vec![hot_iter]))?.added);
        s.tree.commit(edit, update)?;
        s.remove_chunks(&chunks);
        for (k, versions) in &dirty {
            s.hot.mark_persisted(k, versions[0].seq);
        }
        s.counters.full_flushes.fetch_add(1, Ordering::Relaxed);
        s.tree.kick();
        Ok(())
    }

    /// Runs one maintenance pass now on the caller's thread (tests, and `Db::compact`).
    pub fn maintain_now(&self) -> Result<()> {
        self.s.maintain()
    }

    /// Counters and sizes.
    pub fn stats(&self) -> MiddleStats {
        let s = &self.s;
        let c = &s.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let chunks = s.chunks.read();
        let (hot_hits, hot_misses) = s.hot.hits_misses();
        MiddleStats {
            hot_entries: s.hot.len() as u64,
            hot_bytes: s.hot.bytes() as u64,
            hot_hits,
            hot_misses,
            promotions: l(&s.hot.stats.promotions),
            in_place_updates: l(&s.hot.stats.in_place),
            chunks: chunks.len() as u64,
            chunk_entries: chunks.iter().map(|c| c.entries() as u64).sum(),
            chunk_bytes: s.chunk_bytes.load(Ordering::Relaxed) as u64,
            chunk_raw_bytes: chunks.iter().map(|c| c.raw_bytes() as u64).sum(),
            chunk_hits: l(&c.chunk_hits),
            chunk_misses: l(&c.chunk_misses),
            packs: l(&c.packs),
            packed_entries: l(&c.packed_entries),
            packed_raw_bytes: l(&c.packed_raw_bytes),
            packed_chunk_bytes: l(&c.packed_chunk_bytes),
            dropped_clean: l(&c.dropped_clean),
            chunk_flushes: l(&c.chunk_flushes),
            chunk_flush_bytes: l(&c.chunk_flush_bytes),
            write_stalls: l(&c.write_stalls),
            full_flushes: l(&c.full_flushes),
        }
    }

    /// Stops the maintenance thread (pending data stays in memory; flush first to keep it).
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
    }
}

impl Drop for MiddleTier {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Shared {
    fn signal(&self) {
        let mut w = self.wake.lock();
        *w = true;
        self.wake_cv.notify_one();
    }

    fn notify_room(&self) {
        let _g = self.room.lock();
        self.room_cv.notify_all();
    }

    fn maintain(&self) -> Result<()> {
        let _m = self.maint.lock();
        self.tree.check_poison()?;
        if self.hot.bytes() > self.settings.hot_budget {
            self.hot.prune_versions();
            if self.hot.bytes() > self.settings.hot_budget {
                self.pack()?;
            }
            self.notify_room();
        }
        while self.chunk_bytes.load(Ordering::Relaxed) > self.settings.chunk_budget {
            self.flush_oldest_chunks()?;
        }
        Ok(())
    }

    /// Moves the coldest hot entries into new chunks (dirty ones) or drops them (clean).
    /// Every unpersisted version is packed: a snapshot taken after a list of snapshots was
    /// read could need any of them.
    fn pack(&self) -> Result<()> {
        let target = self
            .hot
            .bytes()
            .saturating_sub(self.settings.hot_budget * 3 / 4);
        self.hot.advance_epoch();
        let cands = self.hot.coldest(target);
        let mut entries: Vec<(Vec<u8>, Bytes)> = Vec::new();
        let mut raw = 0usize;
        let mut filters: HashMap<u32, Option<Arc<dyn CompactionFilter>>> = HashMap::new();
        for (k, versions, _) in &cands {
            if versions.is_empty() {
                continue;
            }
            let tid = k
                .get(..TABLE_PREFIX_LEN)
                .map_or(0, |p| u32::from_be_bytes(p.try_into().expect("4 bytes")));
            let filter = filters
                .entry(tid)
                .or_insert_with(|| self.hooks.compaction_filter(tid))
                .clone();
            for v in versions {
                let value = Bytes::copy_from_slice(&v.value);
                let (kind, value) = match &filter {
                    Some(f) => filter_version(&**f, &k[TABLE_PREFIX_LEN..], v.kind, value),
                    None => (v.kind, value),
                };
                entries.push((key::internal_key(k, v.seq, kind), value));
            }
            raw += chain_charge(k, versions);
        }
        entries.sort_by(|a, b| key::compare(&a.0, &b.0));
        if !entries.is_empty() {
            let id = self.next_chunk.fetch_add(1, Ordering::Relaxed);
            let chunk = Arc::new(Chunk::build(
                id,
                &entries,
                self.settings.chunk_block_bytes,
                raw,
                &|k| self.hot.route_len(k),
            ));
            let c = &self.counters;
            c.packed_entries
                .fetch_add(entries.len() as u64, Ordering::Relaxed);
            c.packed_raw_bytes.fetch_add(raw as u64, Ordering::Relaxed);
            c.packed_chunk_bytes
                .fetch_add(chunk.size() as u64, Ordering::Relaxed);
            self.chunk_bytes.fetch_add(chunk.size(), Ordering::Relaxed);
            // Publish before removing from the hot tier.
            self.chunks.write().insert(0, chunk);
        }
        for (k, versions, newest) in &cands {
            if self.hot.remove_if_unchanged(k, *newest) {
                if versions.is_empty() {
                    self.counters.dropped_clean.fetch_add(1, Ordering::Relaxed);
                }
            } else {
                // Written meanwhile: the copied versions now live in the chunk too.
                self.hot.mark_persisted(k, *newest);
            }
        }
        self.counters.packs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Writes the oldest chunks (about a quarter of the chunk budget) to level 0.
    fn flush_oldest_chunks(&self) -> Result<()> {
        let goal = self
            .chunk_bytes
            .load(Ordering::Relaxed)
            .saturating_sub(self.settings.chunk_budget * 3 / 4);
        let victims: Vec<Arc<Chunk>> = {
            let chunks = self.chunks.read();
            let mut taken = 0;
            let mut v = Vec::new();
            for c in chunks.iter().rev() {
                if taken >= goal && !v.is_empty() {
                    break;
                }
                taken += c.size();
                v.push(c.clone());
            }
            v.reverse(); // newest first, as the merging iterator expects
            v
        };
        if victims.is_empty() {
            return Ok(());
        }
        let children: Vec<Box<dyn InternalIterator>> = victims
            .iter()
            .map(|c| Box::new(c.iter()) as Box<dyn InternalIterator>)
            .collect();
        let edit = self.write_l0(MergingIterator::new(children))?;
        let bytes: u64 = edit.added.iter().map(|(_, f)| f.size).sum();
        self.tree.commit(edit, |_| {})?;
        self.remove_chunks(&victims);
        self.counters.chunk_flushes.fetch_add(1, Ordering::Relaxed);
        self.counters
            .chunk_flush_bytes
            .fetch_add(bytes, Ordering::Relaxed);
        self.tree.kick();
        Ok(())
    }

    fn remove_chunks(&self, gone: &[Arc<Chunk>]) {
        let mut chunks = self.chunks.write();
        let before: usize = chunks.iter().map(|c| c.size()).sum();
        chunks.retain(|c| !gone.iter().any(|g| g.id() == c.id()));
        let after: usize = chunks.iter().map(|c| c.size()).sum();
        self.chunk_bytes
            .fetch_sub(before - after, Ordering::Relaxed);
    }

    /// Collapses a merged db-key stream and writes one level-0 file per state table.
    fn write_l0(&self, mut it: MergingIterator) -> Result<VersionEdit> {
        it.seek_to_first();
        let snapshots = self.hooks.snapshots();
        let mut edit = VersionEdit::default();
        let mut table: Option<u32> = None;
        let mut out: Vec<(Vec<u8>, Bytes)> = Vec::new();
        let mut cur: Vec<u8> = Vec::new();
        let mut versions: Vec<KeyVersion> = Vec::new();
        let mut merge: Option<Arc<dyn MergeOperator>> = None;
        let mut filter: Option<Arc<dyn CompactionFilter>> = None;
        loop {
            let valid = it.valid();
            let (uk, tid) = if valid {
                let p =
                    key::parse(it.key()).ok_or_else(|| Error::corruption("chunk", "bad key"))?;
                let dk = p.user_key;
                if dk.len() < TABLE_PREFIX_LEN {
                    return Err(Error::corruption("chunk", "key without a table prefix"));
                }
                let tid = u32::from_be_bytes(dk[..TABLE_PREFIX_LEN].try_into().expect("4 bytes"));
                (dk.to_vec(), Some(tid))
            } else {
                (Vec::new(), None)
            };
            if (!valid || uk != cur) && !versions.is_empty() {
                let cx = CollapseContext {
                    snapshots: &snapshots,
                    merge: merge.as_deref(),
                    bottommost: false,
                    filter: filter.as_deref(),
                };
                let uk = &cur[TABLE_PREFIX_LEN..];
                for (seq, kind, v) in collapse_filtered(uk, &versions, cx) {
                    out.push((key::internal_key(&cur[TABLE_PREFIX_LEN..], seq, kind), v));
                }
                versions.clear();
            }
            if tid != table {
                if let Some(t) = table {
                    self.write_table(t, std::mem::take(&mut out), &mut edit)?;
                }
                table = tid;
                merge = tid.and_then(|t| self.hooks.merge_operator(t));
                filter = tid.and_then(|t| self.hooks.compaction_filter(t));
            }
            if !valid {
                break;
            }
            if uk != cur {
                cur = uk;
            }
            let p = key::parse(it.key()).expect("parsed above");
            versions.push((p.seq, p.kind, Bytes::copy_from_slice(it.value())));
            it.next();
        }
        it.status()?;
        Ok(edit)
    }

    fn write_table(
        &self,
        table_id: u32,
        entries: Vec<(Vec<u8>, Bytes)>,
        edit: &mut VersionEdit,
    ) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.tree.wait_for_l0_room(table_id)?;
        let mut it = VecIter::new(entries);
        it.seek_to_first();
        if let Some(f) = self.tree.write_table(table_id, 0, &mut it)? {
            edit.added.push((0, f));
        }
        Ok(())
    }
}

fn maintenance_loop(s: &Arc<Shared>) {
    loop {
        {
            let mut w = s.wake.lock();
            while !*w && !s.shutdown.load(Ordering::SeqCst) {
                s.wake_cv.wait(&mut w);
            }
            *w = false;
        }
        if s.shutdown.load(Ordering::SeqCst) {
            return;
        }
        if let Err(e) = s.maintain() {
            if !matches!(e, Error::Closed | Error::Poisoned(_)) {
                s.tree.poison(&format!("maintenance failed: {e}"));
            }
        }
        s.notify_room();
    }
}

/// Adapts a db-key iterator to one state table's user keys: seeks add the table prefix,
/// keys lose it, and the iterator ends where the table's keys end.
pub struct StripPrefix {
    inner: Box<dyn InternalIterator>,
    prefix: [u8; TABLE_PREFIX_LEN],
    buf: Vec<u8>,
}

impl StripPrefix {
    /// Wraps `inner`, keeping only keys of the table `prefix`.
    pub fn new(inner: Box<dyn InternalIterator>, prefix: [u8; TABLE_PREFIX_LEN]) -> Self {
        StripPrefix {
            inner,
            prefix,
            buf: Vec::new(),
        }
    }
}

impl InternalIterator for StripPrefix {
    fn valid(&self) -> bool {
        self.inner.valid() && self.inner.key().starts_with(&self.prefix)
    }
    fn seek_to_first(&mut self) {
        self.buf.clear();
        self.buf.extend_from_slice(&self.prefix);
        self.buf
            .extend_from_slice(&key::seek_key(&[], key::MAX_SEQ)[..]);
        let target = self.buf.clone();
        self.inner.seek(&target);
    }
    fn seek(&mut self, target: &[u8]) {
        self.buf.clear();
        self.buf.extend_from_slice(&self.prefix);
        self.buf.extend_from_slice(target);
        let t = self.buf.clone();
        self.inner.seek(&t);
    }
    fn next(&mut self) {
        self.inner.next();
    }
    fn key(&self) -> &[u8] {
        &self.inner.key()[TABLE_PREFIX_LEN..]
    }
    fn value(&self) -> &[u8] {
        self.inner.value()
    }
    fn status(&self) -> Result<()> {
        self.inner.status()
    }
}
