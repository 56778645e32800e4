//! The state one tree shares between its handle, its compaction threads and its iterators
//! ([`Inner`]), and the version commit every change goes through.
//!
//! Invariant: one `state` mutex serialises version changes (flush commits, compaction
//! commits, table definitions); a commit writes the manifest first and installs the new
//! version only if that succeeded, and a file leaves storage only once no version,
//! iterator or snapshot holds its `Arc<FileMeta>`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, RwLock};

use super::manifest::{ManifestState, ManifestStore};
use super::options::{TreeHooks, TreeOptions};
use super::picker::{level_targets, CompactionOptions};
use super::version::{table_path, FileMeta, Version, VersionEdit, NUM_LEVELS};
use super::writer::RunTarget;
use crate::cache::BlockCache;
use crate::error::{Error, Result};
use crate::mirror::Mirror;
use crate::storage::{Storage, StoreSet};
use crate::table::{TableBuildOptions, TableReader};

#[derive(Default)]
pub(super) struct Counters {
    pub compactions: AtomicU64,
    pub compaction_read: AtomicU64,
    pub compaction_written: AtomicU64,
    pub flushes: AtomicU64,
    pub flush_bytes: AtomicU64,
    pub stalls: AtomicU64,
}

/// What the `state` mutex guards.
pub(super) struct State {
    pub manifest: ManifestState,
    pub store: ManifestStore,
    /// Round-robin compaction cursors: (table, level) -> largest key last compacted.
    pub pointers: BTreeMap<(u32, usize), Vec<u8>>,
    /// Tables with a compaction running.
    pub busy: HashSet<u32>,
    /// Files dropped from the current version, deleted once nothing holds them.
    pub obsolete: Vec<Arc<FileMeta>>,
}

/// The files flushes committed since the last checkpoint capture
/// ([`super::tree::LsmTree::capture`]), held (an `Arc<FileMeta>` keeps a file in storage)
/// so a checkpoint can ship exactly the data written since the previous one. Tracking stops
/// (and the files are let go) once they exceed `limit` bytes: the next capture then reports
/// the log as incomplete.
#[derive(Default)]
pub(super) struct FlushLog {
    /// `None`: not tracking, or over the limit since the last capture.
    pub files: Option<Vec<Arc<FileMeta>>>,
    pub bytes: u64,
    pub limit: u64,
}

pub(super) struct Inner {
    pub storage: Arc<dyn Storage>,
    pub cache: Option<Arc<BlockCache>>,
    pub opts: TreeOptions,
    pub hooks: Arc<dyn TreeHooks>,
    pub state: Mutex<State>,
    pub cv: Condvar,
    pub current: RwLock<Arc<Version>>,
    pub readers: Mutex<HashMap<u64, Arc<TableReader>>>,
    /// One gate per file being opened (see `readers.rs`).
    pub opening: Mutex<HashMap<u64, Arc<Mutex<()>>>>,
    pub next_file: AtomicU64,
    /// Stores of the foreign files (restored from checkpoints), by location.
    pub externals: Mutex<StoreSet>,
    /// Own files that checkpoints reference (with a count per checkpoint): kept in storage
    /// after they leave the version, until every such checkpoint is released.
    pub pinned: Mutex<HashMap<u64, usize>>,
    /// Files flush commits added since the last checkpoint capture (see `FlushLog`).
    pub flushed: Mutex<FlushLog>,
    pub shutdown: AtomicBool,
    pub poisoned: AtomicBool,
    pub poison: Mutex<Option<String>>,
    pub counters: Counters,
}

/// Moves each flushed (level-0) file of `edit` as deep as it can go without changing what
/// any read sees, as RocksDB places an ingested file: to the deepest level `l` such that no
/// file on levels `0..=l` overlaps it (so nothing newer sits above it, and it fits into
/// level `l`'s sorted run), if `l` is at or below the table's base level (a file above it
/// would only have to drain down again). A file that overlaps another file of the same
/// edit, or of a table with a compaction running (whose outputs are not in the version
/// yet), stays on level 0. A load into an empty or disjoint key range then costs no
/// compaction rewrite.
fn place_flushed(st: &State, opts: &CompactionOptions, edit: &mut VersionEdit) {
    let version = &st.manifest.version;
    let added: Vec<(usize, u32, Vec<u8>, Vec<u8>)> = edit
        .added
        .iter()
        .map(|(l, f)| {
            (
                *l,
                f.table_id,
                f.smallest_user().to_vec(),
                f.largest_user().to_vec(),
            )
        })
        .collect();
    for (i, (level, f)) in edit.added.iter_mut().enumerate() {
        if *level != 0 || st.busy.contains(&f.table_id) {
            continue;
        }
        let (lo, hi) = (f.smallest_user(), f.largest_user());
        let clash = added.iter().enumerate().any(|(j, (_, t, a, b))| {
            j != i && *t == f.table_id && a.as_slice() <= hi && b.as_slice() >= lo
        });
        if clash {
            continue;
        }
        let Some(levels) = version.levels(f.table_id) else {
            *level = NUM_LEVELS - 1;
            continue;
        };
        let free = levels
            .files
            .iter()
            .take_while(|files| !files.iter().any(|g| g.overlaps(lo, hi)))
            .count();
        let (base, _) = level_targets(opts, levels);
        if free > base {
            *level = free - 1;
        }
    }
}

impl Inner {
    pub(super) fn check_poison(&self) -> Result<()> {
        if !self.poisoned.load(Ordering::Acquire) {
            return Ok(());
        }
        match &*self.poison.lock() {
            Some(r) => Err(Error::Poisoned(r.clone())),
            None => Ok(()),
        }
    }

    pub(super) fn set_poison(&self, reason: &str) {
        let mut p = self.poison.lock();
        if p.is_none() {
            *p = Some(reason.to_string());
        }
        self.poisoned.store(true, Ordering::Release);
    }

    pub(super) fn build_options(&self, table_id: u32, level: usize) -> TableBuildOptions {
        TableBuildOptions {
            block_bytes: self.opts.block_bytes,
            restart_interval: self.opts.restart_interval,
            compression: self.hooks.compression(table_id, level),
            bloom_bits_per_key: self.opts.bloom_bits_per_key,
            prefix_len: self.hooks.prefix_len(table_id),
        }
    }

    /// Where the table writer writes, and how it numbers files.
    pub(super) fn run_target(&self) -> RunTarget<'_> {
        RunTarget {
            storage: &self.storage,
            hooks: &*self.hooks,
            next_file: &self.next_file,
            shutdown: &self.shutdown,
            sync: self.opts.sync_writes,
        }
    }

    pub(super) fn commit(
        &self,
        edit: VersionEdit,
        update: impl FnOnce(&mut ManifestState),
    ) -> Result<()> {
        let mut st = self.state.lock();
        let added: Vec<(u32, u64)> = edit
            .added
            .iter()
            .map(|(_, f)| (f.table_id, f.number))
            .collect();
        self.commit_locked(&mut st, edit, update)?;
        // Logged under the state lock, so a capture sees a file in its version exactly
        // when it sees it in the log.
        let mut guard = self.flushed.lock();
        let log = &mut *guard;
        if let Some(files) = log.files.as_mut() {
            let v = &st.manifest.version;
            for (table_id, number) in added {
                let Some(lv) = v.levels(table_id) else {
                    continue;
                };
                if let Some(f) = lv.files.iter().flatten().find(|f| f.number == number) {
                    files.push(f.clone());
                    log.bytes += f.size;
                }
            }
            if log.bytes > log.limit {
                log.files = None;
            }
        }
        Ok(())
    }

    pub(super) fn commit_locked(
        &self,
        st: &mut State,
        mut edit: VersionEdit,
        update: impl FnOnce(&mut ManifestState),
    ) -> Result<()> {
        place_flushed(st, &self.opts.compaction, &mut edit);
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

    /// Deletes the obsolete files nothing holds any more. A foreign file is only forgotten
    /// (this database does not own it); an own file a checkpoint pins stays in storage.
    pub(super) fn purge(&self) {
        let doomed: Vec<Arc<FileMeta>> = {
            let mut st = self.state.lock();
            let pinned = self.pinned.lock();
            let (free, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut st.obsolete)
                .into_iter()
                .partition(|f| Arc::strong_count(f) == 1 && !pinned.contains_key(&f.number));
            st.obsolete = keep;
            free
        };
        for f in doomed {
            self.readers.lock().remove(&f.number);
            match &f.origin {
                // A failed delete leaves an orphan that the next open removes.
                None => drop(self.storage.delete(&table_path(f.number))),
                // Not ours to delete; its local copy goes.
                Some(o) => {
                    if let Some(m) = self.mirror_of(&f) {
                        m.evict(&o.path);
                    }
                }
            }
        }
    }

    /// Pins own files for a checkpoint that references them.
    pub(super) fn pin(&self, numbers: &[u64]) {
        let mut pinned = self.pinned.lock();
        for n in numbers {
            *pinned.entry(*n).or_default() += 1;
        }
    }

    /// Drops one checkpoint's pins; a file left unpinned that is neither in the version nor
    /// held by a reader is deleted.
    pub(super) fn unpin(&self, numbers: &[u64]) {
        let free: Vec<u64> = {
            let st = self.state.lock();
            let mut pinned = self.pinned.lock();
            let mut free = Vec::new();
            for n in numbers {
                if let Some(c) = pinned.get_mut(n) {
                    *c -= 1;
                    if *c == 0 {
                        pinned.remove(n);
                        free.push(*n);
                    }
                }
            }
            let live: HashSet<u64> = st
                .manifest
                .version
                .all_files()
                .map(|(_, _, f)| f.number)
                .chain(st.obsolete.iter().map(|f| f.number))
                .collect();
            free.retain(|n| !live.contains(n));
            free
        };
        for n in free {
            self.readers.lock().remove(&n);
            let _ = self.storage.delete(&table_path(n));
        }
        self.purge();
    }

    /// Copies the files of the current version that live in mirrored stores (foreign ones,
    /// and the database's own when it lives on a remote store) to their local mirrors,
    /// shallow levels first (every read visits them), until done or shut down. Failures
    /// leave a file remote (it is still read from its store).
    pub(super) fn mirror_files(&self) {
        let version = self.current.read().clone();
        let mut files: Vec<(usize, Arc<FileMeta>)> = version
            .all_files()
            .map(|(_, l, f)| (l, f.clone()))
            .collect();
        files.sort_by_key(|(l, f)| (*l, f.number));
        let stop = || self.shutdown.load(std::sync::atomic::Ordering::SeqCst);
        for (_, f) in files {
            let Some(m) = self.mirror_of(&f) else {
                continue;
            };
            if stop() {
                return;
            }
            let _ = m.fetch(&f.path(), f.size, &stop);
        }
    }

    /// The local mirror of the store `f` is read from, if that store has one.
    pub(super) fn mirror_of(&self, f: &FileMeta) -> Option<Arc<Mirror>> {
        let ext = self.externals.lock();
        match &f.origin {
            Some(o) => ext.mirror_of(&o.store),
            None => ext.mirror_of(&self.storage.location()),
        }
    }

    /// The store a file is read from.
    pub(super) fn storage_of(&self, f: &FileMeta) -> Result<Arc<dyn Storage>> {
        match &f.origin {
            None => Ok(self.storage.clone()),
            Some(o) => self.externals.lock().resolve(&o.store),
        }
    }
}
