//! The hot tier: a concurrent, hash-indexed store of the most recently used entries.
//!
//! - 256 shards, each a `parking_lot::RwLock` over a hash table of pointers to entry nodes
//!   (O(1) point access, one miss to memory) and a `BTreeMap` of the same keys (ordered
//!   iteration). Keys up to 24 bytes and values up to 16 bytes are stored inline, so a
//!   Flink-shaped value entry is one allocation. No global lock on any path; readers take
//!   one shard's read lock.
//! - Each entry keeps a short chain of versions, newest first. A write replaces the newest
//!   version *in place* unless a live snapshot still sees it, so without snapshots an entry
//!   holds one version and an update or list append touches only its own bytes.
//! - Merge operands fold in memory: onto a resident value (list append in place), or onto
//!   an earlier operand when the base value lives in a lower tier (a *partial* entry).
//! - Memory is accounted per entry (see [`entry_charge`]: node, table slots, ordered-index
//!   share, heap spill) and summed per shard.
//! - Coldness: every access stamps the entry with the current *epoch*; packing takes the
//!   entries with the oldest stamps (a CLOCK approximation that costs one relaxed atomic
//!   store per access). Clean entries (already in a lower tier) are dropped, dirty ones go
//!   into chunks.

mod entry;
mod stream;
#[cfg(test)]
mod tests;

use std::ops::Bound;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use parking_lot::RwLock;
use strata_dfs::key::{self, SeqNo, ValueKind};
use strata_dfs::{Folded, MergeOperator, VersionFold};

use crate::dbkey;
pub use entry::{chain_charge, entry_charge, Entry, HotKey, HotValue, HotVersion};
use entry::{merge_into, new_version, raise_flag, readable, unpersisted, Shard};
pub use stream::DirtyStream;

const SHARDS: usize = 256;

/// Buckets of a shard's hash table a maintenance scan (packing's pick, pruning, marking a
/// flush persisted) visits per hold of the shard's lock. A writer that reaches a shard
/// being scanned waits for one run, tens of microseconds, not for the whole shard: with
/// each shard held for a whole pass, a 5M-key load spent 6 of its 16 seconds waiting for
/// shard locks.
const SCAN_RUN: usize = 512;

/// Whether [`HotKv::scan_shard`] must see every entry exactly as of one moment.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ScanMode {
    /// Every entry present throughout the scan is visited at least once: if entries moved
    /// between buckets while the lock was let go, the scan starts over (for idempotent
    /// visits).
    Every,
    /// A heuristic pass: after a move the scan goes on where it was, so it may miss or
    /// revisit a few entries.
    Sweep,
}

/// Counters of the hot tier (hits and misses are kept per shard: [`HotKv::hits_misses`]).
#[derive(Debug, Default)]
pub struct HotStats {
    /// Entries promoted from lower tiers.
    pub promotions: AtomicU64,
    /// Writes applied in place.
    pub in_place: AtomicU64,
}

/// State tables with ids below this can have a routing prefix.
pub const ROUTED_TABLES: usize = 1024;

/// The hot tier. All methods are thread-safe.
pub struct HotKv {
    shards: Box<[RwLock<Shard>]>,
    /// Per state table: length of the user-key prefix that picks the shard (0: the whole
    /// key). Keys sharing that prefix share a shard, so a scan within one prefix reads one
    /// shard's ordered index instead of all of them.
    routes: Box<[std::sync::atomic::AtomicU16]>,
    bytes: AtomicUsize,
    entries: AtomicUsize,
    epoch: AtomicU32,
    /// Set when an entry may hold more than one version (a write kept the version a
    /// snapshot sees, or one being copied down): [`HotKv::prune_versions`] scans only
    /// then, and sets it again if chains remain after its scan.
    chains: std::sync::atomic::AtomicBool,
    /// Odd while a flush stream may have copied entries whose files are not yet committed
    /// (see [`HotKv::range`]).
    stream_epoch: AtomicU64,
    /// Counters.
    pub stats: HotStats,
}

impl Default for HotKv {
    fn default() -> Self {
        Self::new()
    }
}

/// Epochs since `e` was last accessed, at most 255.
fn age(now: u32, e: &Entry) -> u8 {
    now.wrapping_sub(e.access.load(Ordering::Relaxed)).min(255) as u8
}

/// What [`HotKv::fold_into`] found besides the versions it folded.
#[derive(Debug, Clone, Copy)]
pub struct HotProbe {
    /// The shard's generation, for [`HotKv::promote`].
    pub generation: u64,
    /// True if the key has an entry (possibly partial, or with only persisted operands).
    pub present: bool,
}

/// A write to apply.
#[derive(Debug, Clone, Copy)]
pub struct HotWrite<'a> {
    /// Sequence number assigned to the write.
    pub seq: SeqNo,
    /// Kind of the write.
    pub kind: ValueKind,
    /// Value or operand.
    pub value: &'a [u8],
    /// The table's merge operator (required for `Merge`).
    pub merge: Option<&'a dyn MergeOperator>,
    /// Largest live snapshot sequence number, if any: versions it can see are kept.
    pub latest_snapshot: Option<SeqNo>,
}

impl HotKv {
    /// An empty hot tier.
    pub fn new() -> Self {
        HotKv {
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
            routes: (0..ROUTED_TABLES)
                .map(|_| std::sync::atomic::AtomicU16::new(0))
                .collect(),
            bytes: AtomicUsize::new(0),
            entries: AtomicUsize::new(0),
            epoch: AtomicU32::new(1),
            chains: std::sync::atomic::AtomicBool::new(false),
            stream_epoch: AtomicU64::new(0),
            stats: HotStats::default(),
        }
    }

    /// Routes keys of state table `table_id` by their first `prefix_len` user-key bytes
    /// (0: by the whole key). Must be set before the table's first write.
    pub fn set_route_prefix(&self, table_id: u32, prefix_len: u16) {
        if let Some(r) = self.routes.get(table_id as usize) {
            r.store(prefix_len, Ordering::Relaxed);
        }
    }

    /// Length of the db-key prefix that routes keys of `key`'s table, if it routes by prefix.
    pub fn route_len(&self, key: &[u8]) -> Option<usize> {
        let tid = dbkey::table_of(key)? as usize;
        let len = self.routes.get(tid)?.load(Ordering::Relaxed) as usize;
        (len > 0).then_some(dbkey::TABLE_PREFIX_LEN + len)
    }

    /// The bytes of a db key that pick its shard.
    fn route<'k>(&self, key: &'k [u8]) -> &'k [u8] {
        match self.route_len(key) {
            Some(r) => &key[..key.len().min(r)],
            None => key,
        }
    }

    fn shard_of(&self, key: &[u8]) -> usize {
        (strata_dfs::internals::hash64(self.route(key)) >> 40) as usize % SHARDS
    }

    /// Lookups answered by the hot tier (value or tombstone) and lookups sent below.
    pub fn hits_misses(&self) -> (u64, u64) {
        self.shards.iter().fold((0, 0), |(h, m), s| {
            let s = s.read();
            (
                h + s.hits.load(Ordering::Relaxed),
                m + s.misses.load(Ordering::Relaxed),
            )
        })
    }

    /// Bytes charged to the hot tier.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.load(Ordering::Relaxed)
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Starts a new coldness epoch (called once per packing round).
    pub fn advance_epoch(&self) {
        self.epoch.fetch_add(1, Ordering::Relaxed);
    }

    fn account(&self, shard: &mut Shard, before: usize, after: usize) {
        shard.bytes = shard.bytes + after - before;
        if after >= before {
            self.bytes.fetch_add(after - before, Ordering::Relaxed);
        } else {
            self.bytes.fetch_sub(before - after, Ordering::Relaxed);
        }
    }

    /// Applies writes under the write locks of every shard they touch, all at once, so a
    /// point reader sees either none or all of them.
    pub fn apply_all(&self, writes: &[(&[u8], HotWrite<'_>)]) {
        let mut idx: Vec<usize> = writes.iter().map(|(k, _)| self.shard_of(k)).collect();
        let order = {
            let mut o = idx.clone();
            o.sort_unstable();
            o.dedup();
            o
        };
        let mut guards: Vec<(usize, parking_lot::RwLockWriteGuard<'_, Shard>)> =
            order.iter().map(|&i| (i, self.shards[i].write())).collect();
        for ((k, w), si) in writes.iter().zip(idx.iter_mut()) {
            let pos = guards
                .binary_search_by_key(si, |(i, _)| *i)
                .expect("locked");
            let shard = &mut *guards[pos].1;
            self.apply_locked(shard, k, w);
        }
    }

    /// Applies one write.
    pub fn apply(&self, key: &[u8], w: HotWrite<'_>) {
        let mut shard = self.shards[self.shard_of(key)].write();
        self.apply_locked(&mut shard, key, &w);
    }

    fn apply_locked(&self, shard: &mut Shard, key: &[u8], w: &HotWrite<'_>) {
        let epoch = self.epoch.load(Ordering::Relaxed);
        let Some(e) = shard.map.get_mut(key) else {
            self.insert_new(shard, key, new_version(w), 0);
            return;
        };
        let before = entry_charge(key, e);
        // A clean entry becomes dirty now, or a copied (frozen) one gets a version the copy
        // does not have: either way the next flush stream must visit it.
        let flag_it = !e.is_dirty() || e.frozen > e.persisted;
        e.access.store(epoch, Ordering::Relaxed);
        let newest = &mut e.versions[0];
        // The newest version may be replaced only if no live snapshot can see it.
        let replaceable = w.latest_snapshot.is_none_or(|s| s < newest.seq);
        let newest_persisted = newest.seq <= e.persisted;
        let newest_frozen = newest.seq <= e.frozen;
        if !replaceable || (newest_frozen && !newest_persisted) {
            e.versions.insert(0, new_version(w));
            self.chains.store(true, Ordering::Relaxed);
        } else if newest_persisted {
            // Every version here is also below: start a fresh chain. A merge folds onto a
            // resident value or tombstone (the result shadows everything below); onto a
            // persisted operand it must not, or that operand would be applied twice.
            let v = match (w.kind, w.merge, newest.kind) {
                (ValueKind::Merge, Some(op), ValueKind::Put) => HotVersion {
                    seq: w.seq,
                    kind: ValueKind::Put,
                    value: HotValue::from_vec(op.merge(Some(&newest.value), w.value)),
                },
                (ValueKind::Merge, Some(op), ValueKind::Delete) => HotVersion {
                    seq: w.seq,
                    kind: ValueKind::Put,
                    value: HotValue::from_vec(op.merge(None, w.value)),
                },
                _ => new_version(w),
            };
            e.versions.clear();
            e.versions.push(v);
            self.stats.in_place.fetch_add(1, Ordering::Relaxed);
        } else {
            match (w.kind, w.merge) {
                (ValueKind::Merge, Some(op)) => match newest.kind {
                    ValueKind::Put | ValueKind::Merge => {
                        merge_into(op, &mut newest.value, w.value);
                    }
                    ValueKind::Delete => {
                        newest.value = HotValue::from_vec(op.merge(None, w.value));
                        newest.kind = ValueKind::Put;
                    }
                },
                _ => {
                    newest.kind = w.kind;
                    newest.value.clear();
                    newest.value.extend_from_slice(w.value);
                }
            }
            newest.seq = w.seq;
            self.stats.in_place.fetch_add(1, Ordering::Relaxed);
        }
        let after = entry_charge(key, e);
        self.account(shard, before, after);
        if flag_it {
            // See `Shard::order`.
            raise_flag(&mut shard.order, &mut shard.flagged, key);
        }
    }

    /// Looks `key` up as of `seq`. Stamps the entry as recently used.
    pub fn get(&self, key: &[u8], seq: SeqNo, merge: Option<&dyn MergeOperator>) -> Folded {
        let mut fold = VersionFold::new(merge, seq);
        self.fold_into(key, &mut fold);
        fold.finish()
    }

    /// Pushes the versions of `key` a reader may combine with lower tiers into `fold`
    /// (newest first, up to the first persisted merge operand) and stamps the entry as
    /// recently used. Returns what a reader needs to install the result afterwards: the
    /// shard generation read under the same lock (for [`HotKv::promote`]) and whether the
    /// key has an entry (then [`HotKv::resolve_partial`] applies instead).
    #[inline]
    pub fn fold_into(&self, key: &[u8], fold: &mut VersionFold<'_>) -> HotProbe {
        let shard = self.shards[self.shard_of(key)].read();
        let entry = shard.map.get(key);
        let answered = match entry {
            None => false,
            Some(e) => {
                e.access
                    .store(self.epoch.load(Ordering::Relaxed), Ordering::Relaxed);
                for v in readable(e) {
                    if !fold.push(v.seq, v.kind, &v.value) {
                        break;
                    }
                }
                fold.is_done()
            }
        };
        let c = if answered { &shard.hits } else { &shard.misses };
        c.fetch_add(1, Ordering::Relaxed);
        HotProbe {
            generation: shard.generation,
            present: entry.is_some(),
        }
    }

    /// Shard generation of `key`, to be passed to [`HotKv::promote`].
    pub fn generation(&self, key: &[u8]) -> u64 {
        self.shards[self.shard_of(key)].read().generation
    }

    /// Installs a value found in a lower tier as a clean entry, if the key is still absent
    /// and nothing left its shard since `generation` was read (so the value cannot be older
    /// than a version that was just moved down).
    pub fn promote(&self, key: &[u8], generation: u64, seq: SeqNo, kind: ValueKind, value: &[u8]) {
        let mut shard = self.shards[self.shard_of(key)].write();
        if shard.generation != generation || shard.map.contains_key(key) {
            return;
        }
        let v = HotVersion {
            seq,
            kind,
            value: HotValue::from_slice(value),
        };
        self.insert_new(&mut shard, key, v, seq);
        self.stats.promotions.fetch_add(1, Ordering::Relaxed);
    }

    /// Inserts an entry for a key known to be absent, with one version and the given
    /// persistence watermark, stamped as just used.
    fn insert_new(&self, shard: &mut Shard, key: &[u8], version: HotVersion, persisted: SeqNo) {
        let e = Entry {
            versions: smallvec::smallvec![version],
            access: AtomicU32::new(self.epoch.load(Ordering::Relaxed)),
            persisted,
            frozen: 0,
        };
        let k = HotKey::from_slice(key);
        let charge = entry_charge(&k, &e);
        shard.order.insert(k.clone(), e.is_dirty());
        shard.flagged += usize::from(e.is_dirty());
        shard.map.insert(k, e);
        self.entries.fetch_add(1, Ordering::Relaxed);
        self.account(shard, 0, charge);
    }

    /// Replaces a partial entry (newest version a merge operand at `newest_seq`) by the
    /// full value as of that sequence number, computed from every tier, so the next read is
    /// answered in memory. The entry's older versions must all be persisted: they are
    /// dropped (a reader at an older snapshot finds them below, as after
    /// [`HotKv::prune_versions`]). A persisted newest operand becomes a persisted `Put` of
    /// the same sequence number: below, the operand and what it folds onto give the same
    /// value, so the entry stays clean.
    pub fn resolve_partial(&self, key: &[u8], newest_seq: SeqNo, full: &[u8]) {
        let mut shard = self.shards[self.shard_of(key)].write();
        let Some(e) = shard.map.get_mut(key) else {
            return;
        };
        let persisted = e.persisted;
        if e.versions[0].seq != newest_seq
            || e.versions[0].kind != ValueKind::Merge
            || e.versions[1..].iter().any(|v| v.seq > persisted)
        {
            return;
        }
        let before = entry_charge(key, e);
        e.versions.truncate(1);
        e.versions[0].kind = ValueKind::Put;
        e.versions[0].value.clear();
        e.versions[0].value.extend_from_slice(full);
        let after = entry_charge(key, e);
        self.account(&mut shard, before, after);
    }

    /// The versions in `[start, end)` that an iterator must read from the hot tier, as
    /// internal keys, sorted: every readable version of every entry, or nothing at all when
    /// every entry in the range is clean (all its versions are in a lower tier too, so the
    /// lower tiers alone give the same result, read from contiguous blocks instead of one
    /// scattered node per key). Stamps nothing. When every key in the range shares one
    /// routing prefix, only that prefix's shard is read.
    pub fn range(&self, start: &[u8], end: Option<&[u8]>) -> Vec<(Vec<u8>, Bytes)> {
        let hi = match end {
            Some(e) => Bound::Excluded(e),
            None => Bound::Unbounded,
        };
        let bounds = (Bound::Included(start), hi);
        // Every key in [start, end) shares the routing prefix R = start[..r] when R is a
        // full routing prefix and end <= successor(R): then they all live in R's shard.
        let single = self.route_len(start).is_some_and(|r| {
            start.len() >= r
                && end.is_some_and(|e| {
                    key::prefix_successor(&start[..r]).is_some_and(|s| e <= s.as_slice())
                })
        });
        let shards: Vec<usize> = if single {
            vec![self.shard_of(start)]
        } else {
            (0..SHARDS).collect()
        };
        let mut out = Vec::new();
        if self.range_is_persisted(&shards, bounds) {
            return out;
        }
        for &si in &shards {
            let s = self.shards[si].read();
            for k in s.order.range::<[u8], _>(bounds).map(|(k, _)| k) {
                if let Some(e) = s.map.get(k) {
                    for v in readable(e) {
                        out.push((
                            key::internal_key(k, v.seq, v.kind),
                            Bytes::copy_from_slice(&v.value),
                        ));
                    }
                }
            }
        }
        if !single {
            // One shard's ordered index already yields internal-key order (keys ascending,
            // each key's versions newest first).
            out.sort_by(|a, b| key::compare(&a.0, &b.0));
        }
        out
    }

    /// True if every entry of `shards` within `bounds` is clean, judged by the ordered
    /// index's flags alone (no entry is dereferenced), and no flush stream ran meanwhile.
    ///
    /// A shard without flagged keys needs no search at all (the state after a checkpoint's
    /// flush). A clear flag means the entry is clean, except while a flush stream is in flight: the
    /// stream clears flags as it copies entries, before their file is committed. The
    /// stream epoch is odd during a stream ([`HotKv::dirty_stream`] to
    /// [`HotKv::mark_frozen_persisted`] or [`HotKv::thaw`]); a flag the stream cleared is
    /// seen here only after the epoch went odd (the stream clears it under the shard lock
    /// this reads under), so an unchanged even epoch proves no clear flag came from a stream
    /// whose files are not yet visible.
    fn range_is_persisted(&self, shards: &[usize], bounds: (Bound<&[u8]>, Bound<&[u8]>)) -> bool {
        let before = self.stream_epoch.load(Ordering::SeqCst);
        if before % 2 == 1 {
            return false;
        }
        for &si in shards {
            let s = self.shards[si].read();
            if s.flagged > 0 && s.order.range::<[u8], _>(bounds).any(|(_, dirty)| *dirty) {
                return false;
            }
        }
        self.stream_epoch.load(Ordering::SeqCst) == before
    }

    /// Visits the buckets of shard `si` in runs of [`SCAN_RUN`], holding the shard's write
    /// lock for one run at a time and handing it straight to a waiting writer between
    /// runs (a fair unlock: the scan would otherwise take it back before the writer
    /// woke). `visit` gets the shard and a bucket index (occupied or not) and returns
    /// false to end the scan early. See [`ScanMode`] for entries that move meanwhile.
    /// Returns true if entries moved during the scan (a [`ScanMode::Sweep`] may then have
    /// visited some twice).
    fn scan_shard(
        &self,
        si: usize,
        mode: ScanMode,
        mut visit: impl FnMut(&mut Shard, usize) -> bool,
    ) -> bool {
        let mut next = 0;
        let mut moves = None;
        let mut moved = false;
        loop {
            let mut shard = self.shards[si].write();
            let now = shard.map.moves();
            if moves.is_some_and(|m| m != now) {
                moved = true;
                if mode == ScanMode::Every {
                    next = 0;
                }
            }
            moves = Some(now);
            let end = (next + SCAN_RUN).min(shard.map.buckets());
            for i in next..end {
                if !visit(&mut shard, i) {
                    return moved;
                }
            }
            if end >= shard.map.buckets() {
                return moved;
            }
            next = end;
            parking_lot::RwLockWriteGuard::unlock_fair(shard);
        }
    }

    /// The age (epochs since the last access, at most 255) at which the entries at least
    /// that old hold about `target` bytes, from a histogram of bytes by age. A large tier
    /// is sampled (every `stride`-th bucket, about 64K entries): the pick needs the
    /// threshold, not exact sums, and a full pass costs one miss to memory per entry. The
    /// read lock is held for one run of buckets at a time.
    fn age_threshold(&self, target: usize, now: u32) -> u8 {
        let stride = (self.len() / 65_536).max(1);
        let mut hist = [0usize; 256];
        for s in self.shards.iter() {
            let mut next = 0;
            loop {
                let s = s.read();
                let end = (next + SCAN_RUN * stride).min(s.map.buckets());
                for i in (next..end).step_by(stride) {
                    if let Some((k, e)) = s.map.bucket(i) {
                        hist[age(now, e) as usize] += entry_charge(k, e) * stride;
                    }
                }
                if end >= s.map.buckets() {
                    break;
                }
                next = end;
            }
        }
        let mut sum = 0;
        for a in (0..256).rev() {
            sum += hist[a];
            if sum >= target {
                return a as u8;
            }
        }
        0
    }

    /// Picks the coldest entries holding about `target` bytes: their keys, shard by
    /// shard. Nothing is copied, frozen or removed (see [`HotKv::take_versions`] and
    /// [`HotKv::remove_if_unchanged`]), so one call can feed several packing batches.
    pub fn coldest_keys(&self, target: usize) -> Vec<HotKey> {
        let now = self.epoch.load(Ordering::Relaxed);
        let threshold = self.age_threshold(target, now);
        let mut taken = 0;
        let mut out = Vec::new();
        for s in self.shards.iter() {
            if taken >= target {
                break;
            }
            let s = s.read();
            for (k, e) in s.map.iter() {
                if taken >= target {
                    break;
                }
                if age(now, e) >= threshold {
                    taken += entry_charge(k, e);
                    out.push(k.clone());
                }
            }
        }
        out
    }

    /// [`HotKv::coldest_keys`] for packing, with the clean entries among the picked ones
    /// dropped on the spot (every version of a clean entry is in a lower tier, so removing
    /// it loses nothing, as [`HotKv::remove_if_unchanged`] after an empty
    /// [`HotKv::take_versions`] would). One write lock per shard instead of two lock round
    /// trips per entry: after write-behind most cold entries are clean. Returns the dirty
    /// picked keys, to pack, and how many entries were dropped.
    pub fn pick_coldest(&self, target: usize) -> (Vec<HotKey>, usize) {
        let now = self.epoch.load(Ordering::Relaxed);
        let threshold = self.age_threshold(target, now);
        let mut taken = 0;
        let mut dirty = Vec::new();
        let mut dropped = 0;
        for si in 0..SHARDS {
            if taken >= target {
                break;
            }
            let first = dirty.len();
            let moved = self.scan_shard(si, ScanMode::Sweep, |shard, i| {
                if taken >= target {
                    return false;
                }
                let Some((k, e)) = shard.map.bucket(i) else {
                    return true;
                };
                if age(now, e) < threshold {
                    return true;
                }
                let charge = entry_charge(k, e);
                taken += charge;
                if e.is_dirty() {
                    dirty.push(k.clone());
                    return true;
                }
                let (k, _) = shard.map.remove_bucket(i).expect("occupied");
                if shard.order.remove(&k[..]) == Some(true) {
                    shard.flagged -= 1;
                }
                shard.generation += 1;
                self.account(shard, charge, 0);
                self.entries.fetch_sub(1, Ordering::Relaxed);
                dropped += 1;
                true
            });
            if moved {
                // A dirty key picked twice would be packed twice (one chunk holding the same
                // version twice).
                let mut mine = dirty.split_off(first);
                mine.sort_unstable();
                mine.dedup();
                dirty.extend(mine);
            }
        }
        (dirty, dropped)
    }

    /// Copies the versions of `key` not yet persisted (empty for a clean entry) and freezes
    /// them until [`HotKv::mark_persisted`] or removal; returns them with the newest
    /// sequence number, or `None` if the key is gone.
    pub fn take_versions(&self, key: &[u8]) -> Option<(Vec<HotVersion>, SeqNo)> {
        let mut s = self.shards[self.shard_of(key)].write();
        let e = s.map.get_mut(key)?;
        e.frozen = e.versions[0].seq;
        Some((unpersisted(e), e.versions[0].seq))
    }

    /// [`HotKv::coldest_keys`] with each entry's versions taken ([`HotKv::take_versions`]):
    /// (key, versions not yet persisted, newest sequence number).
    pub fn coldest(&self, target: usize) -> Vec<(Bytes, Vec<HotVersion>, SeqNo)> {
        self.coldest_keys(target)
            .into_iter()
            .filter_map(|k| {
                let (versions, newest) = self.take_versions(&k)?;
                Some((Bytes::copy_from_slice(&k), versions, newest))
            })
            .collect()
    }

    /// Copies the versions not yet persisted of every dirty entry and freezes them until
    /// [`HotKv::mark_persisted`] (tests; a flush streams them: [`HotKv::dirty_stream`]).
    #[cfg(test)]
    pub fn dirty_entries(&self) -> Vec<(Bytes, Vec<HotVersion>)> {
        let mut out = Vec::new();
        for s in self.shards.iter() {
            let mut s = s.write();
            for (k, e) in s.map.iter_mut() {
                if e.is_dirty() {
                    e.frozen = e.versions[0].seq;
                    out.push((Bytes::copy_from_slice(k), unpersisted(e)));
                }
            }
        }
        out
    }

    /// Removes `key` if its newest version is still `newest_seq` (no write since it was
    /// copied). Returns true if removed.
    pub fn remove_if_unchanged(&self, key: &[u8], newest_seq: SeqNo) -> bool {
        let mut shard = self.shards[self.shard_of(key)].write();
        let same = shard
            .map
            .get(key)
            .is_some_and(|e| e.versions[0].seq == newest_seq);
        if !same {
            return false;
        }
        let (k, e) = shard.map.remove_entry(key).expect("present");
        if shard.order.remove(&k) == Some(true) {
            shard.flagged -= 1;
        }
        shard.generation += 1;
        let charge = entry_charge(&k, &e);
        self.account(&mut shard, charge, 0);
        self.entries.fetch_sub(1, Ordering::Relaxed);
        true
    }

    /// Records that every version of `key` up to `seq` is now in a lower tier.
    pub fn mark_persisted(&self, key: &[u8], seq: SeqNo) {
        let mut shard = self.shards[self.shard_of(key)].write();
        if let Some(e) = shard.map.get_mut(key) {
            e.persisted = e.persisted.max(seq);
        }
    }

    /// Drops versions that are also in a lower tier, except each entry's newest one (a
    /// persisted value still answers reads in memory). Readers needing a dropped version
    /// find it below, so this needs no snapshot list, which could be stale by the time a
    /// chain is pruned. Returns bytes freed.
    pub fn prune_versions(&self) -> usize {
        // Cleared before the scan: a chain made during the scan sets it again, and so
        // does one the scan leaves (its older versions not yet in a lower tier).
        if !self.chains.swap(false, Ordering::Relaxed) {
            return 0;
        }
        let mut freed = 0;
        for si in 0..SHARDS {
            self.scan_shard(si, ScanMode::Sweep, |s, i| {
                let Some((k, e)) = s.map.bucket_mut(i) else {
                    return true;
                };
                let persisted = e.persisted;
                if e.versions.len() < 2 {
                    return true;
                }
                if e.versions.last().is_none_or(|v| v.seq > persisted) {
                    self.chains.store(true, Ordering::Relaxed);
                    return true;
                }
                let before = entry_charge(k, e);
                let mut first = true;
                e.versions
                    .retain(|v| std::mem::take(&mut first) || v.seq > persisted);
                e.versions.shrink_to_fit();
                if e.versions.len() > 1 {
                    self.chains.store(true, Ordering::Relaxed);
                }
                let delta = before.saturating_sub(entry_charge(k, e));
                s.bytes -= delta.min(s.bytes);
                self.bytes.fetch_sub(delta, Ordering::Relaxed);
                freed += delta;
                true
            });
        }
        freed
    }
}
