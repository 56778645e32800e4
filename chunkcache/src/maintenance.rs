//! Maintenance: moving data down the middle tier. Packing turns the coldest hot entries into
//! chunks; a chunk flush writes the oldest chunks out as level-0 table files; a full flush
//! (`Db::flush`) writes every dirty hot entry and every chunk. Also the write-stall rule and
//! the maintenance thread that runs all of it in the background.
//!
//! Invariant: every move publishes the data at its destination before removing it from its
//! source (see the tier-ordering invariant in `tier.rs`), and all of it runs under the
//! maintenance lock, one move at a time.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use strata_dfs::internals::MAX_ENTRY_BYTES;
use strata_dfs::key;
use strata_dfs::{
    filter_version, CompactionFilter, Error, InternalIterator, ManifestState, MergingIterator,
    Result, VersionEdit,
};

use crate::chunk::Chunk;
use crate::dbkey::{self, StripPrefix};
use crate::hot::{chain_charge, HotKey};
use crate::shared::Shared;

impl Shared {
    /// Called after writes: wakes maintenance when a tier is over budget and stalls the
    /// caller while the hot tier is over its hard limit (the write-stall rule).
    pub(crate) fn after_write(&self) -> Result<()> {
        let s = self;
        if s.hot.bytes() > s.settings.hot_budget || s.write_behind_due() {
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

    /// Counts `writes` writes of `bytes` keys and values in all since the last flush
    /// (write-behind's trigger), each with 16 bytes for its sequence number and kind.
    pub(crate) fn note_written(&self, writes: usize, bytes: usize) {
        if self.settings.write_behind_bytes > 0 {
            self.written
                .fetch_add(bytes + 16 * writes, Ordering::Relaxed);
        }
    }

    fn write_behind_due(&self) -> bool {
        let limit = self.settings.write_behind_bytes;
        limit > 0 && self.written.load(Ordering::Relaxed) > limit
    }

    /// Persists every dirty hot entry and every chunk as level-0 files and commits them with
    /// `update` applied to the manifest in the same commit. Hot entries stay resident, now
    /// clean; flushed chunks are dropped. REQUIRES: every write up to the sequence number the
    /// caller records in `update` has been applied.
    pub(crate) fn flush_all(&self, update: impl FnOnce(&mut ManifestState)) -> Result<()> {
        let _m = self.maint.lock();
        self.persist_memory(update)?;
        self.counters.full_flushes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Write-behind (maintenance lock held): [`Shared::flush_all`]'s writes without a
    /// manifest change beyond the new files, while writers go on. A version written meanwhile
    /// stays dirty (entries are frozen only as the stream reaches them); a batch may be
    /// written in part, which WAL recovery handles per operation (recovery.rs) and which,
    /// without a WAL, is no different from a chunk flush.
    fn write_behind(&self) -> Result<()> {
        self.persist_memory(|_| {})?;
        self.counters.write_behinds.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Writes every chunk, then every dirty hot version (streamed), as level-0 files and
    /// commits them with `update`; drops the chunks and marks what was streamed persisted.
    /// REQUIRES: the maintenance lock.
    fn persist_memory(&self, update: impl FnOnce(&mut ManifestState)) -> Result<()> {
        let s = self;
        s.tree.check_poison()?;
        s.written.store(0, Ordering::Relaxed);
        let chunks: Vec<Arc<Chunk>> = s.chunks.read().clone();
        // Chunks and hot entries go to separate level-0 files (chunks first, so the hot file
        // is newer): a file never folds a hot version together with a chunk version, so
        // either source may leave memory first without hiding the other (see DESIGN.md).
        // The hot entries stream (a few per shard at a time), never copied all at once.
        let written = s.write_l0(&mut chunks_iter(&chunks)).and_then(|mut edit| {
            edit.added
                .extend(s.write_l0(&mut s.hot.dirty_stream())?.added);
            s.tree.commit(edit, update)
        });
        if let Err(e) = written {
            s.hot.thaw();
            return Err(e);
        }
        s.remove_chunks(&chunks);
        s.hot.mark_frozen_persisted();
        s.tree.kick();
        Ok(())
    }
}

/// One db-key stream over `chunks`, newest first (as the merging iterator expects).
fn chunks_iter(chunks: &[Arc<Chunk>]) -> MergingIterator {
    let children: Vec<Box<dyn InternalIterator>> = chunks
        .iter()
        .map(|c| Box::new(c.iter()) as Box<dyn InternalIterator>)
        .collect();
    MergingIterator::new(children)
}

impl Shared {
    pub(crate) fn signal(&self) {
        let mut w = self.wake.lock();
        *w = true;
        self.wake_cv.notify_one();
    }

    fn notify_room(&self) {
        let _g = self.room.lock();
        self.room_cv.notify_all();
    }

    pub(crate) fn maintain(&self) -> Result<()> {
        let _m = self.maint.lock();
        self.tree.check_poison()?;
        if self.hot.bytes() > self.settings.hot_budget {
            self.hot.prune_versions();
            self.hot.advance_epoch();
            // Down to three quarters of the budget: one pick of the coldest keys (the
            // clean ones are dropped right away), then bounded batches (one chunk each) of
            // the dirty ones. A batch is copied twice before it
            // becomes a chunk, so its size bounds that transient memory; chunk flushes run
            // between batches.
            let goal = self.settings.hot_budget * 3 / 4;
            let batch = (self.settings.hot_budget / 16).clamp(256 << 10, 8 << 20);
            let (keys, dropped) = self.hot.pick_coldest(self.hot.bytes().saturating_sub(goal));
            self.counters
                .dropped_clean
                .fetch_add(dropped as u64, Ordering::Relaxed);
            self.notify_room();
            let mut next = 0;
            while next < keys.len() && self.hot.bytes() > goal {
                next = self.pack(&keys, next, batch)?;
                self.notify_room();
                self.flush_chunks_over_budget()?;
            }
            self.notify_room();
        }
        self.flush_chunks_over_budget()?;
        if self.write_behind_due() {
            self.write_behind()?;
        }
        Ok(())
    }

    /// Returns the allocator's free pages to the OS when the resident set exceeds the
    /// accounted memory by more than the slack (see [`crate::memory`]), at most once a
    /// second: a trim walks the allocator's free lists, which costs milliseconds. The
    /// once-a-second check comes first, so most passes skip reading `/proc`.
    pub(crate) fn release_retained(&self) {
        let slack = self.settings.retained_slack;
        if slack == 0 {
            return;
        }
        let mut last = self.last_trim.lock();
        if last.is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(1)) {
            return;
        }
        let Some(resident) = crate::memory::resident_bytes() else {
            return;
        };
        let cache = self.tree.block_cache().map_or(0, |c| {
            let s = c.snapshot();
            (s.bytes + s.reserved_bytes) as usize
        });
        let accounted = self.hot.bytes() + self.chunk_bytes.load(Ordering::Relaxed) + cache;
        if resident <= accounted + slack {
            return;
        }
        *last = Some(std::time::Instant::now());
        crate::memory::trim();
        self.counters
            .allocator_trims
            .fetch_add(1, Ordering::Relaxed);
    }

    fn flush_chunks_over_budget(&self) -> Result<()> {
        while self.chunk_bytes.load(Ordering::Relaxed) > self.settings.chunk_budget {
            self.flush_oldest_chunks()?;
        }
        Ok(())
    }

    /// Packs `keys[from..]` until about `batch` bytes are taken: their unpersisted versions
    /// go into a new chunk (dirty entries), then each entry is removed from the hot tier
    /// (clean ones are simply dropped). Returns the index after the last key taken. Every
    /// unpersisted version is packed: a snapshot taken after a list of snapshots was read
    /// could need any of them.
    fn pack(&self, keys: &[HotKey], from: usize, batch: usize) -> Result<usize> {
        let mut cands = Vec::new();
        let mut taken = 0;
        let mut next = from;
        for k in &keys[from..] {
            next += 1;
            if let Some((versions, newest)) = self.hot.take_versions(k) {
                taken += chain_charge(k, &versions).max(1);
                cands.push((k, versions, newest));
            }
            if taken >= batch {
                break;
            }
        }
        let mut entries: Vec<(Vec<u8>, Bytes)> = Vec::new();
        let mut raw = 0usize;
        let mut filters: HashMap<u32, Option<Arc<dyn CompactionFilter>>> = HashMap::new();
        for (k, versions, _) in &cands {
            if versions.is_empty() {
                continue;
            }
            let (tid, user_key) = dbkey::decode(k).unwrap_or((0, &[]));
            let filter = filters
                .entry(tid)
                .or_insert_with(|| self.hooks.compaction_filter(tid))
                .clone();
            for v in versions {
                if k.len() + v.value.len() > MAX_ENTRY_BYTES {
                    return Err(Error::invalid(format!(
                        "a value of {} bytes exceeds the largest block entry",
                        v.value.len()
                    )));
                }
                let value = Bytes::copy_from_slice(&v.value);
                let (kind, value) = match &filter {
                    Some(f) => filter_version(&**f, user_key, v.kind, value),
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
        Ok(next)
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
        let edit = self.write_l0(&mut chunks_iter(&victims))?;
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

    /// Cuts a sorted db-key stream into one run per state table and writes each through
    /// the tree's table writer as level-0 files (waiting for level-0 room first). Returns
    /// the files to commit.
    fn write_l0(&self, it: &mut dyn InternalIterator) -> Result<VersionEdit> {
        it.seek_to_first();
        let mut edit = VersionEdit::default();
        while it.valid() {
            let table_id = dbkey::table_of(key::user_key(it.key()))
                .ok_or_else(|| Error::corruption("chunk", "key without a table prefix"))?;
            self.tree.wait_for_l0_room(table_id)?;
            let mut run = StripPrefix::new(&mut *it, table_id);
            for f in self.tree.write_l0(table_id, &mut run)? {
                edit.added.push((0, f));
            }
        }
        it.status()?;
        Ok(edit)
    }
}

/// The maintenance thread: waits to be signalled, then runs a pass. A failure other than
/// shutdown poisons the tree, so writers see it.
pub(crate) fn maintenance_loop(s: &Arc<Shared>) {
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
        s.release_retained();
    }
}
