//! Compaction: the background threads that run picked compactions, the caller-driven full
//! compaction of one table (`Db::compact_table`), and installing a compaction's result.
//!
//! Invariant: at most one compaction per state table runs at a time (`State::busy`), in
//! the background or on a caller's thread; its inputs stay referenced by the current
//! version until its outputs are committed in their place, and outputs of a compaction
//! that fails or is not committed are deleted.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::level_iter::level_iter;
use super::picker::{pick, CompactionPick};
use super::shared::{Inner, State};
use super::version::{table_path, FileMeta, Levels, VersionEdit, NUM_LEVELS};
use super::writer::{write_run, RunSpec};
use crate::error::{Error, Result};
use crate::iter::{InternalIterator, MergingIterator};

/// What a finished compaction run produced: the edit, bytes read, bytes written.
type RunResult = Result<(VersionEdit, u64, u64)>;

impl Inner {
    /// Blocks until no compaction is runnable or running (tests, bulk loads).
    pub(super) fn wait_for_compactions(&self) -> Result<()> {
        let inner = self;
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
    /// bottommost, so tombstones and filtered data are dropped there. With a compaction
    /// filter, the last level is then rewritten in place too, so the filter sees data that
    /// was already there (RocksDB's `kIfHaveCompactionFilter`). Runs on the caller's
    /// thread, holding the table's compaction slot, so background threads skip the table
    /// meanwhile.
    pub(super) fn compact_table_fully(self: &Arc<Self>, table_id: u32) -> Result<()> {
        let inner = self;
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
        let filtered = inner.hooks.compaction_filter(table_id).is_some();
        for level in 0..=deepest.min(NUM_LEVELS - 2) {
            inner.run_claimed(table_id, |lv| {
                (!lv.files[level].is_empty()).then(|| CompactionPick {
                    table_id,
                    level,
                    output_level: level + 1,
                    inputs: lv.files[level].clone(),
                    overlapping: lv.files[level + 1].clone(),
                    bottommost: (level + 2..NUM_LEVELS).all(|l| lv.files[l].is_empty()),
                    score: 0.0,
                })
            })?;
        }
        if filtered {
            // The deepest non-empty level, rewritten into itself (bottommost), if it is the
            // only one (data that arrived above meanwhile makes it not the bottom run).
            inner.run_claimed(table_id, |lv| {
                let level = (1..NUM_LEVELS).rev().find(|&l| !lv.files[l].is_empty())?;
                (0..level)
                    .all(|l| lv.files[l].is_empty())
                    .then(|| CompactionPick {
                        table_id,
                        level,
                        output_level: level,
                        inputs: lv.files[level].clone(),
                        overlapping: Vec::new(),
                        bottommost: true,
                        score: 0.0,
                    })
            })?;
        }
        Ok(())
    }

    /// Waits for `table_id`'s compaction slot, lets `choose` pick a compaction from the
    /// table's current levels (`None`: nothing to do), and runs and installs it on the
    /// caller's thread.
    fn run_claimed(
        self: &Arc<Self>,
        table_id: u32,
        choose: impl FnOnce(&Levels) -> Option<CompactionPick>,
    ) -> Result<()> {
        let p = {
            let mut st = self.state.lock();
            while st.busy.contains(&table_id) {
                self.check_poison()?;
                self.cv.wait(&mut st);
            }
            let v = st.manifest.version.clone();
            let Some(p) = v.levels(table_id).and_then(choose) else {
                return Ok(());
            };
            st.busy.insert(table_id);
            p
        };
        let r = self.run_compaction(&p);
        let mut st = self.state.lock();
        let installed = self.install_compaction(&mut st, &p, r);
        self.cv.notify_all();
        installed
    }

    /// Merges the inputs of `p` and writes them through the one table writer.
    pub(super) fn run_compaction(self: &Arc<Self>, p: &CompactionPick) -> RunResult {
        let mut runs: Vec<Vec<Arc<FileMeta>>> = if p.level == 0 {
            p.inputs.iter().map(|f| vec![f.clone()]).collect()
        } else {
            vec![p.inputs.clone()]
        };
        if !p.overlapping.is_empty() {
            runs.push(p.overlapping.clone());
        }
        let bytes_read: u64 = p.inputs.iter().chain(&p.overlapping).map(|f| f.size).sum();
        let spec = RunSpec {
            table_id: p.table_id,
            bottommost: p.bottommost,
            split_bytes: Some(self.opts.compaction.target_file_bytes),
            build: self.build_options(p.table_id, p.output_level),
        };
        let outputs = self.merge_runs(runs, spec)?;
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

    /// Merges sorted runs of files (each run's files in key order, without overlaps) and
    /// writes the result through the one table writer as new files, not yet in a version.
    pub(super) fn merge_runs(
        self: &Arc<Self>,
        runs: Vec<Vec<Arc<FileMeta>>>,
        spec: RunSpec,
    ) -> Result<Vec<FileMeta>> {
        let open = self.open_fn();
        let children: Vec<Box<dyn InternalIterator>> = runs
            .into_iter()
            .map(|files| {
                Box::new(level_iter(files, open.clone(), true)) as Box<dyn InternalIterator>
            })
            .collect();
        let mut it = MergingIterator::new(children);
        it.seek_to_first();
        write_run(&self.run_target(), spec, &mut it)
    }

    /// Releases the table's compaction slot and commits the result of `p`. A failed commit
    /// deletes the outputs and poisons the tree (the manifest store is in doubt).
    fn install_compaction(&self, st: &mut State, p: &CompactionPick, r: RunResult) -> Result<()> {
        st.busy.remove(&p.table_id);
        let (edit, read, written) = r?;
        let outputs: Vec<u64> = edit.added.iter().map(|(_, f)| f.number).collect();
        if let Err(e) = self.commit_locked(st, edit, |_| {}) {
            for n in outputs {
                let _ = self.storage.delete(&table_path(n));
            }
            self.set_poison(&format!("compaction commit failed: {e}"));
            return Err(e);
        }
        if p.level > 0 {
            if let Some(last) = p.inputs.last() {
                st.pointers
                    .insert((p.table_id, p.level), last.largest_user().to_vec());
            }
        }
        let c = &self.counters;
        c.compactions.fetch_add(1, Ordering::Relaxed);
        c.compaction_read.fetch_add(read, Ordering::Relaxed);
        c.compaction_written.fetch_add(written, Ordering::Relaxed);
        Ok(())
    }
}

/// A compaction thread: waits for a pick, runs it, installs it, purges obsolete files.
pub(super) fn compaction_loop(inner: &Arc<Inner>) {
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
            match inner.install_compaction(&mut st, &p, r) {
                Ok(()) | Err(Error::Closed) => {}
                Err(e) => inner.set_poison(&format!("compaction failed: {e}")),
            }
            inner.cv.notify_all();
        }
        inner.purge();
    }
}
