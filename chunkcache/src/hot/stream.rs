//! The full flush's view of the hot tier: every unpersisted version of every dirty entry,
//! as a sorted stream of internal keys, produced a few entries at a time.
//!
//! A full flush used to copy every dirty entry into one `Vec` and sort it, which doubled
//! the hot tier's memory at the moment a checkpoint asked for a flush. The stream instead
//! keeps one small batch per shard (each shard's ordered index is already sorted) and merges
//! the 256 shards' batches with a tournament tree, so it holds O(shards × batch) entries at
//! a time.
//!
//! Invariant: an entry is frozen (`frozen` = its newest sequence number) under its shard's
//! write lock at the moment its versions are copied into a batch, so a later write never
//! folds into what the stream copied; [`HotKv::mark_frozen_persisted`] then records, after
//! the flush commits, exactly the versions the stream copied as persisted.

use std::ops::Bound;
use std::sync::atomic::Ordering;

use strata_dfs::key::{self, SeqNo, ValueKind};
use strata_dfs::{InternalIterator, Result};

use super::entry::{raise_flag, Entry, HotKey};
use super::{HotKv, ScanMode, SHARDS};

/// Dirty entries copied per shard per refill (and keys scanned per lock hold, times 64).
const BATCH: usize = 32;

/// One shard's batch: entries copied under one lock hold, their versions and values in
/// flat buffers that are reused from refill to refill, so streaming an entry allocates
/// nothing.
#[derive(Default)]
struct Batch {
    /// (key, index of its first version in `versions`, number of versions).
    entries: Vec<(HotKey, usize, usize)>,
    /// (sequence number, kind, value's range in `values`), newest first per entry.
    versions: Vec<(SeqNo, ValueKind, usize, usize)>,
    values: Vec<u8>,
    /// The current entry.
    pos: usize,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.pos >= self.entries.len()
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.versions.clear();
        self.values.clear();
        self.pos = 0;
    }

    /// Copies `key`'s versions not yet persisted, newest first.
    fn push(&mut self, key: &HotKey, e: &Entry) {
        let first = self.versions.len();
        for v in e.versions.iter().take_while(|v| v.seq > e.persisted) {
            let start = self.values.len();
            self.values.extend_from_slice(&v.value);
            self.versions
                .push((v.seq, v.kind, start, self.values.len()));
        }
        self.entries
            .push((key.clone(), first, self.versions.len() - first));
    }

    fn front(&self) -> Option<&HotKey> {
        self.entries.get(self.pos).map(|(k, _, _)| k)
    }

    /// Number of versions of the current entry.
    fn front_versions(&self) -> usize {
        self.entries.get(self.pos).map_or(0, |e| e.2)
    }

    /// Version `vi` of the current entry: its sequence number, kind and value.
    fn version(&self, vi: usize) -> (SeqNo, ValueKind, &[u8]) {
        let (_, first, _) = &self.entries[self.pos];
        let (seq, kind, start, end) = self.versions[first + vi];
        (seq, kind, &self.values[start..end])
    }
}

/// One shard's position in the stream.
#[derive(Default)]
struct Cursor {
    batch: Batch,
    /// The last key scanned; the next refill resumes after it.
    after: Option<HotKey>,
    done: bool,
}

/// A tournament ("loser") tree over the shards' cursors: each internal node keeps the loser
/// of the match below it and the overall winner sits apart, so moving the winning shard to
/// its next entry replays one leaf-to-root path: log2(shards) key comparisons and no key
/// copies (a binary heap of (key, shard) pairs cloned each key and compared about twice as
/// often).
struct LoserTree {
    /// `losers[p]` for internal node `p` in `1..shards`; leaf `i` sits at `shards + i`.
    losers: Vec<usize>,
    winner: usize,
}

impl LoserTree {
    /// Plays every match bottom-up. `less(a, b)`: shard `a`'s front sorts before `b`'s.
    fn build(shards: usize, less: impl Fn(usize, usize) -> bool) -> Self {
        assert!(shards >= 2 && shards.is_power_of_two());
        let mut winners = vec![0; 2 * shards];
        let mut losers = vec![0; shards];
        for (i, w) in winners[shards..].iter_mut().enumerate() {
            *w = i;
        }
        for p in (1..shards).rev() {
            let (a, b) = (winners[2 * p], winners[2 * p + 1]);
            let (w, l) = if less(b, a) { (b, a) } else { (a, b) };
            winners[p] = w;
            losers[p] = l;
        }
        LoserTree {
            losers,
            winner: winners[1],
        }
    }

    /// Replays the path of the winner's leaf after its front changed.
    fn replay(&mut self, less: impl Fn(usize, usize) -> bool) {
        let shards = self.losers.len();
        let mut cand = self.winner;
        let mut p = (shards + cand) / 2;
        while p >= 1 {
            if less(self.losers[p], cand) {
                std::mem::swap(&mut self.losers[p], &mut cand);
            }
            p /= 2;
        }
        self.winner = cand;
    }
}

/// Shard `a`'s front key sorts before shard `b`'s (an exhausted shard sorts last; keys are
/// unique across shards).
fn front_less(cursors: &[Cursor], a: usize, b: usize) -> bool {
    match (cursors[a].batch.front(), cursors[b].batch.front()) {
        (Some(x), Some(y)) => x[..] < y[..],
        (Some(_), None) => true,
        _ => false,
    }
}

/// See the module documentation. Created by [`HotKv::dirty_stream`].
pub struct DirtyStream<'a> {
    hot: &'a HotKv,
    cursors: Vec<Cursor>,
    /// The merge of the shards' fronts (built by `seek_to_first`).
    tree: Option<LoserTree>,
    /// The shard whose front entry is current, and which of its versions.
    current: Option<(usize, usize)>,
    ikey: Vec<u8>,
    started: bool,
}

impl HotKv {
    /// A sorted stream of the versions not yet persisted of every dirty entry (see
    /// [`DirtyStream`]). Entries are frozen as the stream reaches them; after the flush
    /// commits, [`HotKv::mark_frozen_persisted`] marks what it copied as persisted.
    pub fn dirty_stream(&self) -> DirtyStream<'_> {
        self.set_streaming(true);
        DirtyStream {
            hot: self,
            cursors: Vec::new(),
            tree: None,
            current: None,
            ikey: Vec::new(),
            started: false,
        }
    }

    /// Records every frozen version as persisted (after a full flush that streamed them has
    /// committed). Outside a maintenance operation no entry is frozen above its
    /// persistence mark, so this touches exactly what the flush copied.
    pub fn mark_frozen_persisted(&self) {
        for si in 0..SHARDS {
            // Idempotent, so a scan that starts over after entries moved is still exact.
            self.scan_shard(si, ScanMode::Every, |s, i| {
                if let Some((_, e)) = s.map.bucket_mut(i) {
                    e.persisted = e.persisted.max(e.frozen);
                }
                true
            });
        }
        self.set_streaming(false);
    }

    /// Unfreezes what a failed flush froze: nothing it copied is persisted, so writes may
    /// fold into those versions again (the next flush copies them anew).
    pub fn thaw(&self) {
        self.thaw_frozen();
        self.set_streaming(false);
    }

    /// Marks the start (`true`) or end of a flush stream: the stream epoch goes odd, or
    /// back to even (see [`HotKv::range`]). One stream runs at a time (the maintenance
    /// lock); a repeated start or end changes nothing.
    fn set_streaming(&self, on: bool) {
        let _ = self
            .stream_epoch
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |e| {
                (e % 2 == u64::from(!on)).then_some(e + 1)
            });
    }

    /// [`HotKv::thaw`] without ending the stream (a stream that restarts).
    fn thaw_frozen(&self) {
        for s in self.shards.iter() {
            let mut s = s.write();
            let s = &mut *s;
            for (k, e) in s.map.iter_mut() {
                if e.frozen > e.persisted {
                    raise_flag(&mut s.order, &mut s.flagged, k);
                }
                e.frozen = e.frozen.min(e.persisted);
            }
        }
    }

    /// Copies up to [`BATCH`] dirty entries after `c.after` from shard `si`, freezing them
    /// and clearing their flags. Keys whose flag is clear are skipped without a probe.
    fn refill(&self, si: usize, c: &mut Cursor) {
        c.batch.clear();
        let mut s = self.shards[si].write();
        let s = &mut *s;
        let lo = match &c.after {
            Some(k) => Bound::Excluded(&k[..]),
            None => Bound::Unbounded,
        };
        let mut scanned = 0;
        let mut last = None;
        for (k, flag) in s.order.range_mut::<[u8], _>((lo, Bound::Unbounded)) {
            scanned += 1;
            last = Some(k);
            if !std::mem::take(flag) {
                continue;
            }
            s.flagged -= 1;
            if let Some(e) = s.map.get_mut(k) {
                if e.is_dirty() {
                    e.frozen = e.versions[0].seq;
                    c.batch.push(k, e);
                }
            }
            if c.batch.entries.len() >= BATCH || scanned >= BATCH * 64 {
                break;
            }
        }
        match last {
            Some(k) => c.after = Some(k.clone()),
            None => c.done = true,
        }
    }

    /// Refills shard `si` until it has an entry or is exhausted.
    fn fill(&self, si: usize, c: &mut Cursor) {
        while c.batch.is_empty() && !c.done {
            self.refill(si, c);
        }
    }
}

impl DirtyStream<'_> {
    /// Makes the winning shard's front entry current (its newest version), or ends the
    /// stream when every shard is exhausted.
    fn settle(&mut self) {
        self.current = self.tree.as_ref().and_then(|t| {
            let si = t.winner;
            self.cursors[si].batch.front().map(|_| (si, 0))
        });
        self.build_key();
    }

    fn build_key(&mut self) {
        if let Some((si, vi)) = self.current {
            let batch = &self.cursors[si].batch;
            let (seq, kind, _) = batch.version(vi);
            self.ikey.clear();
            let k = batch.front().expect("current entry");
            key::append_internal_key(&mut self.ikey, k, seq, kind);
        }
    }
}

impl InternalIterator for DirtyStream<'_> {
    fn valid(&self) -> bool {
        self.current.is_some()
    }

    fn seek_to_first(&mut self) {
        // A restart first undoes what the stream did so far (its entries are frozen and
        // their flags cleared), so it sees every dirty entry again; a flush commits nothing
        // until it has streamed everything.
        if std::mem::replace(&mut self.started, true) {
            self.hot.thaw_frozen();
        }
        self.cursors = (0..SHARDS).map(|_| Cursor::default()).collect();
        for (si, c) in self.cursors.iter_mut().enumerate() {
            self.hot.fill(si, c);
        }
        let cursors = &self.cursors;
        self.tree = Some(LoserTree::build(SHARDS, |a, b| front_less(cursors, a, b)));
        self.settle();
    }

    fn seek(&mut self, target: &[u8]) {
        self.seek_to_first();
        while self.valid() && key::compare(&self.ikey, target).is_lt() {
            self.next();
        }
    }

    fn next(&mut self) {
        let Some((si, vi)) = self.current else {
            return;
        };
        if vi + 1 < self.cursors[si].batch.front_versions() {
            self.current = Some((si, vi + 1));
            self.build_key();
            return;
        }
        let c = &mut self.cursors[si];
        c.batch.pos += 1;
        self.hot.fill(si, c);
        let cursors = &self.cursors;
        if let Some(t) = self.tree.as_mut() {
            t.replay(|a, b| front_less(cursors, a, b));
        }
        self.settle();
    }

    fn key(&self) -> &[u8] {
        &self.ikey
    }

    fn value(&self) -> &[u8] {
        let (si, vi) = self.current.expect("valid");
        self.cursors[si].batch.version(vi).2
    }

    fn status(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::LoserTree;

    /// The tree yields the union of sorted runs in order, whatever the runs' lengths
    /// (empty ones included), replaying one path per step.
    #[test]
    fn loser_tree_merges_sorted_runs() {
        for shards in [2usize, 4, 16, 256] {
            let runs: Vec<Vec<u64>> = (0..shards as u64)
                .map(|r| {
                    let len = (r * 7919) % 13;
                    (0..len)
                        .map(|i| (i * 1000 + r * 31) % 100_003)
                        .collect::<Vec<_>>()
                })
                .map(|mut v| {
                    v.sort_unstable();
                    v.dedup();
                    v
                })
                .collect();
            let mut pos = vec![0usize; shards];
            let front = |pos: &[usize], i: usize| runs[i].get(pos[i]).copied();
            let less = |pos: &[usize], a: usize, b: usize| match (front(pos, a), front(pos, b)) {
                (Some(x), Some(y)) => (x, a) < (y, b),
                (Some(_), None) => true,
                _ => false,
            };
            let mut tree = LoserTree::build(shards, |a, b| less(&pos, a, b));
            let mut out = Vec::new();
            while let Some(v) = front(&pos, tree.winner) {
                out.push(v);
                pos[tree.winner] += 1;
                tree.replay(|a, b| less(&pos, a, b));
            }
            let mut all: Vec<u64> = runs.concat();
            all.sort_unstable();
            assert_eq!(out, all, "{shards} shards");
        }
    }
}
