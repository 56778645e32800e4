//! The hot tier: a concurrent, hash-indexed store of the most recently used entries.
//!
//! - 64 shards, each a `parking_lot::RwLock` over a hash table of pointers to entry nodes
//!   (O(1) point access, one miss to memory) and a `BTreeSet` of the same keys (ordered
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

use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use parking_lot::RwLock;
use smallvec::SmallVec;
use strata_dfs::key::{self, SeqNo, ValueKind};
use strata_dfs::MergeOperator;

const SHARDS: usize = 64;

/// A key as the hot tier stores it: inline up to 24 bytes (a Flink-shaped state key with
/// its table id fits), so neither the hash probe nor the ordered index dereferences a
/// pointer to compare keys, and a new short key costs no allocation.
type HotKey = SmallVec<[u8; 24]>;

/// A value or merge operand: inline up to 16 bytes (no allocation, no extra cache miss for
/// Flink's 8-byte longs and counters); longer ones (lists) live on the heap.
pub type HotValue = SmallVec<[u8; 16]>;

/// An entry's versions, newest first: one inline (the common case without snapshots), more
/// spill to the heap.
type Chain = SmallVec<[HotVersion; 1]>;

/// One version of a hot entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HotVersion {
    /// Sequence number of the write.
    pub seq: SeqNo,
    /// Kind of the write.
    pub kind: ValueKind,
    /// Value (or merge operand); empty for deletes.
    pub value: HotValue,
}

/// A hot entry: versions newest first, its access stamp, and its persistence watermark.
///
/// Versions with a sequence number `<= persisted` are also in a lower tier (chunks or
/// table files); the others exist only here. The versions of a key across tiers are
/// always contiguous: the hot chain holds the newest ones, lower tiers the older ones.
#[derive(Debug)]
pub struct Entry {
    versions: Chain,
    access: AtomicU32,
    persisted: SeqNo,
    /// Versions up to this sequence number are being copied down (packing or flushing):
    /// writes must not fold into them until they are marked persisted.
    frozen: SeqNo,
}

impl Entry {
    /// Versions, newest first.
    pub fn versions(&self) -> &[HotVersion] {
        &self.versions
    }
    /// True if the newest version exists only in the hot tier.
    pub fn is_dirty(&self) -> bool {
        self.versions[0].seq > self.persisted
    }
}

/// Bytes charged for an entry: the key (twice: hash map and ordered set), the entry struct
/// (with its inline version and value), spilled version slots and values, and the map's
/// control byte.
pub fn entry_charge(key: &[u8], e: &Entry) -> usize {
    charge(
        key.len(),
        if e.versions.spilled() {
            e.versions.capacity()
        } else {
            0
        },
        e.versions
            .iter()
            .map(|v| {
                if v.value.spilled() {
                    v.value.capacity()
                } else {
                    0
                }
            })
            .sum(),
    )
}

/// What a chain of copied `versions` of `key` cost in the hot tier (as [`entry_charge`],
/// with lengths for capacities); used to report the chunk compression ratio.
pub fn chain_charge(key: &[u8], versions: &[HotVersion]) -> usize {
    charge(
        key.len(),
        versions.len().saturating_sub(1),
        versions
            .iter()
            .map(|v| if v.value.len() > 16 { v.value.len() } else { 0 })
            .sum(),
    )
}

fn charge(key_len: usize, spilled_slots: usize, value_bytes: usize) -> usize {
    let key_heap = if key_len > 24 { 2 * key_len } else { 0 };
    // The node (with malloc's 16-byte rounding), two hash-table slots (pointer and control
    // byte; the table is between half and seven-eighths full), and the ordered index's
    // key at about two-thirds B-tree node occupancy.
    std::mem::size_of::<Node>().next_multiple_of(16)
        + 2 * (std::mem::size_of::<usize>() + 1)
        + std::mem::size_of::<HotKey>() * 3 / 2
        + key_heap
        + spilled_slots * std::mem::size_of::<HotVersion>()
        + value_bytes
}

/// A hot entry with its key, in one allocation. The shard's hash table holds only pointers
/// to nodes (9 bytes a slot with its control byte), so the table stays small enough to sit
/// in the CPU cache while the nodes do not: a lookup costs one miss to memory, not two, and
/// the table's spare capacity costs 9 bytes a slot rather than a whole entry.
struct Node {
    key: HotKey,
    entry: Entry,
}

fn key_hash(key: &[u8]) -> u64 {
    strata_dfs::internals::hash64(key)
}

/// A shard's hash index: keys to nodes, with a `HashMap`-like interface.
#[derive(Default)]
struct KeyMap {
    table: hashbrown::HashTable<Box<Node>>,
}

impl KeyMap {
    fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.table
            .find(key_hash(key), |n| n.key[..] == *key)
            .map(|n| &n.entry)
    }

    fn get_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        self.table
            .find_mut(key_hash(key), |n| n.key[..] == *key)
            .map(|n| &mut n.entry)
    }

    fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// Inserts a key known to be absent.
    fn insert(&mut self, key: HotKey, entry: Entry) {
        self.table
            .insert_unique(key_hash(&key), Box::new(Node { key, entry }), |n| {
                key_hash(&n.key)
            });
    }

    fn remove_entry(&mut self, key: &[u8]) -> Option<(HotKey, Entry)> {
        let (node, _) = self
            .table
            .find_entry(key_hash(key), |n| n.key[..] == *key)
            .ok()?
            .remove();
        let Node { key, entry } = *node;
        Some((key, entry))
    }

    fn iter(&self) -> impl Iterator<Item = (&HotKey, &Entry)> {
        self.table.iter().map(|n| (&n.key, &n.entry))
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = (&HotKey, &mut Entry)> {
        self.table.iter_mut().map(|n| {
            let Node { key, entry } = &mut **n;
            (&*key, entry)
        })
    }
}

#[derive(Default)]
struct Shard {
    /// Lookups answered here / sent below; per shard (next to the lock word the reader has
    /// just written) so that readers on different cores do not contend on one counter.
    hits: AtomicU64,
    misses: AtomicU64,
    map: KeyMap,
    order: BTreeSet<HotKey>,
    bytes: usize,
    /// Bumped whenever entries leave the shard (packing, flush-drops); promotion checks it.
    generation: u64,
}

/// What a hot lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HotLookup {
    /// The key has a visible value.
    Value(Vec<u8>),
    /// The key is deleted.
    Deleted,
    /// Merge operands (already combined) whose base lies in a lower tier; `newest_seq` is
    /// the sequence number of the newest operand.
    Partial {
        /// Combined operand.
        operand: Vec<u8>,
        /// Sequence number of the newest operand.
        newest_seq: SeqNo,
        /// Sequence number of the oldest operand folded in; lower tiers contribute only
        /// versions older than this.
        oldest_seq: SeqNo,
    },
    /// Nothing visible here; look in lower tiers.
    Absent,
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
    /// Counters.
    pub stats: HotStats,
}

impl Default for HotKv {
    fn default() -> Self {
        Self::new()
    }
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
        let tid = u32::from_be_bytes(key.get(..4)?.try_into().ok()?) as usize;
        let len = self.routes.get(tid)?.load(Ordering::Relaxed) as usize;
        (len > 0).then_some(4 + len)
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
            let e = Entry {
                versions: smallvec::smallvec![HotVersion {
                    seq: w.seq,
                    kind: w.kind,
                    value: HotValue::from_slice(w.value),
                }],
                access: AtomicU32::new(epoch),
                persisted: 0,
                frozen: 0,
            };
            let k = HotKey::from_slice(key);
            let charge = entry_charge(&k, &e);
            shard.order.insert(k.clone());
            shard.map.insert(k, e);
            self.entries.fetch_add(1, Ordering::Relaxed);
            self.account(shard, 0, charge);
            return;
        };
        let before = entry_charge(key, e);
        e.access.store(epoch, Ordering::Relaxed);
        let newest = &mut e.versions[0];
        // The newest version may be replaced only if no live snapshot can see it.
        let replaceable = w.latest_snapshot.is_none_or(|s| s < newest.seq);
        let newest_persisted = newest.seq <= e.persisted;
        let newest_frozen = newest.seq <= e.frozen;
        if !replaceable || (newest_frozen && !newest_persisted) {
            e.versions.insert(0, new_version(w));
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
    }

    /// Looks `key` up as of `seq`. Stamps the entry as recently used.
    pub fn get(&self, key: &[u8], seq: SeqNo, merge: Option<&dyn MergeOperator>) -> HotLookup {
        self.get_with_generation(key, seq, merge).0
    }

    /// [`HotKv::get`], plus the shard generation read under the same lock (for
    /// [`HotKv::promote`]).
    pub fn get_with_generation(
        &self,
        key: &[u8],
        seq: SeqNo,
        merge: Option<&dyn MergeOperator>,
    ) -> (HotLookup, u64) {
        let shard = self.shards[self.shard_of(key)].read();
        let generation = shard.generation;
        (self.lookup(&shard, key, seq, merge), generation)
    }

    fn lookup(
        &self,
        shard: &Shard,
        key: &[u8],
        seq: SeqNo,
        merge: Option<&dyn MergeOperator>,
    ) -> HotLookup {
        let Some(e) = shard.map.get(key) else {
            shard.misses.fetch_add(1, Ordering::Relaxed);
            return HotLookup::Absent;
        };
        e.access
            .store(self.epoch.load(Ordering::Relaxed), Ordering::Relaxed);
        let r = resolve(readable(e).filter(|v| v.seq <= seq), merge);
        let c = match r {
            HotLookup::Value(_) | HotLookup::Deleted => &shard.hits,
            _ => &shard.misses,
        };
        c.fetch_add(1, Ordering::Relaxed);
        r
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
        let e = Entry {
            versions: smallvec::smallvec![HotVersion {
                seq,
                kind,
                value: HotValue::from_slice(value),
            }],
            access: AtomicU32::new(self.epoch.load(Ordering::Relaxed)),
            persisted: seq,
            frozen: 0,
        };
        let k = HotKey::from_slice(key);
        let charge = entry_charge(&k, &e);
        shard.order.insert(k.clone());
        shard.map.insert(k, e);
        self.entries.fetch_add(1, Ordering::Relaxed);
        self.account(&mut shard, 0, charge);
        self.stats.promotions.fetch_add(1, Ordering::Relaxed);
    }

    /// Replaces a partial entry's newest operand (sequence `newest_seq`) by the full value
    /// computed from lower tiers, so the next read is answered in memory.
    pub fn resolve_partial(&self, key: &[u8], newest_seq: SeqNo, full: &[u8]) {
        let mut shard = self.shards[self.shard_of(key)].write();
        let Some(e) = shard.map.get_mut(key) else {
            return;
        };
        if e.versions.len() != 1
            || e.versions[0].seq != newest_seq
            || e.versions[0].kind != ValueKind::Merge
        {
            return;
        }
        let before = entry_charge(key, e);
        e.versions[0].kind = ValueKind::Put;
        e.versions[0].value.clear();
        e.versions[0].value.extend_from_slice(full);
        let after = entry_charge(key, e);
        self.account(&mut shard, before, after);
    }

    /// Copies every entry whose key is in `[start, end)` as internal keys (all readable
    /// versions), sorted. Used to build iterators; stamps nothing. When every key in the
    /// range shares one routing prefix, only that prefix's shard is read.
    pub fn range(&self, start: &[u8], end: Option<&[u8]>) -> Vec<(Vec<u8>, Bytes)> {
        let mut out = Vec::new();
        let hi = match end {
            Some(e) => Bound::Excluded(e),
            None => Bound::Unbounded,
        };
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
        for si in shards {
            let s = self.shards[si].read();
            for k in s.order.range::<[u8], _>((Bound::Included(start), hi)) {
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
        out.sort_by(|a, b| key::compare(&a.0, &b.0));
        out
    }

    /// Picks the coldest entries holding about `target` bytes. Returns copies of (key,
    /// versions not yet persisted, newest sequence number); the list is empty for clean
    /// entries. Nothing is removed until [`HotKv::remove_if_unchanged`].
    ///
    /// Two passes and no sort: the first builds a histogram of bytes by age (epochs since
    /// the last access), the second takes entries at least as old as the age where the
    /// histogram, summed from the oldest, reaches `target`.
    pub fn coldest(&self, target: usize) -> Vec<(Bytes, Vec<HotVersion>, SeqNo)> {
        let now = self.epoch.load(Ordering::Relaxed);
        let age =
            |e: &Entry| (now.wrapping_sub(e.access.load(Ordering::Relaxed)) as usize).min(255);
        let mut hist = [0usize; 256];
        for s in self.shards.iter() {
            let s = s.read();
            for (k, e) in s.map.iter() {
                hist[age(e)] += entry_charge(k, e);
            }
        }
        let mut threshold = 0;
        let mut sum = 0;
        for a in (0..256).rev() {
            sum += hist[a];
            if sum >= target {
                threshold = a;
                break;
            }
        }
        let mut taken = 0;
        let mut out = Vec::new();
        for s in self.shards.iter() {
            if taken >= target {
                break;
            }
            let mut s = s.write();
            for (k, e) in s.map.iter_mut() {
                if taken >= target {
                    break;
                }
                if age(e) >= threshold {
                    e.frozen = e.versions[0].seq;
                    taken += entry_charge(k, e);
                    out.push((Bytes::copy_from_slice(k), unpersisted(e), e.versions[0].seq));
                }
            }
        }
        out
    }

    /// Copies the versions not yet persisted of every dirty entry (for a full flush) and
    /// freezes them until [`HotKv::mark_persisted`].
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
        shard.order.remove(&k);
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
        let mut freed = 0;
        for s in self.shards.iter() {
            let mut s = s.write();
            let mut delta = 0usize;
            for (k, e) in s.map.iter_mut() {
                let persisted = e.persisted;
                if e.versions.len() < 2 || e.versions.last().is_none_or(|v| v.seq > persisted) {
                    continue;
                }
                let before = entry_charge(k, e);
                let mut first = true;
                e.versions
                    .retain(|v| std::mem::take(&mut first) || v.seq > persisted);
                e.versions.shrink_to_fit();
                delta += before.saturating_sub(entry_charge(k, e));
            }
            s.bytes -= delta.min(s.bytes);
            self.bytes.fetch_sub(delta, Ordering::Relaxed);
            freed += delta;
        }
        freed
    }
}

fn new_version(w: &HotWrite<'_>) -> HotVersion {
    HotVersion {
        seq: w.seq,
        kind: w.kind,
        value: HotValue::from_slice(w.value),
    }
}

/// The versions of `e` a reader may combine with lower tiers, newest first: everything up
/// to the first persisted merge operand. A persisted operand is left to the lower tiers,
/// where compaction may already have folded it together with older operands under its
/// sequence number; persisted values and tombstones end a lookup and are safe to use.
fn readable(e: &Entry) -> impl Iterator<Item = &HotVersion> {
    let persisted = e.persisted;
    e.versions
        .iter()
        .take_while(move |v| !(v.seq <= persisted && v.kind == ValueKind::Merge))
}

/// The versions of `e` that are not yet in a lower tier.
fn unpersisted(e: &Entry) -> Vec<HotVersion> {
    e.versions
        .iter()
        .take_while(|v| v.seq > e.persisted)
        .cloned()
        .collect()
}

/// Folds `operand` into `existing` in place. A spilled value is handed to the operator as
/// the `Vec` it already is (no copy); an inline one is copied out and back.
fn merge_into(op: &dyn MergeOperator, existing: &mut HotValue, operand: &[u8]) {
    let mut v = std::mem::take(existing).into_vec();
    op.merge_in_place(&mut v, operand);
    *existing = HotValue::from_vec(v);
}

/// Resolves visible versions (newest first) into a lookup result.
pub fn resolve<'a>(
    versions: impl Iterator<Item = &'a HotVersion>,
    merge: Option<&dyn MergeOperator>,
) -> HotLookup {
    let mut acc: Option<(Vec<u8>, SeqNo)> = None;
    let mut oldest = SeqNo::MAX;
    for v in versions {
        oldest = v.seq;
        match (v.kind, acc.take()) {
            (ValueKind::Put, None) => return HotLookup::Value(v.value.to_vec()),
            (ValueKind::Delete, None) => return HotLookup::Deleted,
            (ValueKind::Merge, None) => acc = Some((v.value.to_vec(), v.seq)),
            (kind, Some((op_acc, newest))) => {
                let Some(op) = merge else {
                    return HotLookup::Value(op_acc);
                };
                match kind {
                    ValueKind::Put => return HotLookup::Value(op.merge(Some(&v.value), &op_acc)),
                    ValueKind::Delete => return HotLookup::Value(op.merge(None, &op_acc)),
                    ValueKind::Merge => acc = Some((op.merge(Some(&v.value), &op_acc), newest)),
                }
            }
        }
    }
    match acc {
        Some((operand, newest_seq)) => HotLookup::Partial {
            operand,
            newest_seq,
            oldest_seq: oldest,
        },
        None => HotLookup::Absent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_dfs::AppendOperator;

    const APPEND: AppendOperator = AppendOperator { delimiter: None };

    fn w(seq: SeqNo, kind: ValueKind, value: &[u8], snap: Option<SeqNo>) -> HotWrite<'_> {
        HotWrite {
            seq,
            kind,
            value,
            merge: Some(&APPEND),
            latest_snapshot: snap,
        }
    }

    #[test]
    fn in_place_update_and_append_without_snapshots() {
        let h = HotKv::new();
        h.apply(b"k", w(1, ValueKind::Put, b"a", None));
        let b1 = h.bytes();
        h.apply(b"k", w(2, ValueKind::Merge, b"b", None));
        h.apply(b"k", w(3, ValueKind::Merge, b"c", None));
        assert_eq!(
            h.get(b"k", 10, Some(&APPEND)),
            HotLookup::Value(b"abc".to_vec())
        );
        assert_eq!(h.stats.in_place.load(Ordering::Relaxed), 2);
        assert!(h.bytes() >= b1);
        h.apply(b"k", w(4, ValueKind::Delete, b"", None));
        assert_eq!(h.get(b"k", 10, None), HotLookup::Deleted);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn snapshot_keeps_old_version_and_prune_drops_it_once_persisted() {
        let h = HotKv::new();
        h.apply(b"k", w(1, ValueKind::Put, b"old", None));
        h.apply(b"k", w(5, ValueKind::Put, b"new", Some(3)));
        assert_eq!(h.get(b"k", 3, None), HotLookup::Value(b"old".to_vec()));
        assert_eq!(h.get(b"k", 9, None), HotLookup::Value(b"new".to_vec()));
        assert_eq!(
            h.prune_versions(),
            0,
            "nothing is below yet: nothing may go"
        );
        h.mark_persisted(b"k", 5);
        let before = h.bytes();
        let freed = h.prune_versions();
        assert!(freed > 0 && h.bytes() == before - freed);
        assert_eq!(
            h.get(b"k", 3, None),
            HotLookup::Absent,
            "now read from below"
        );
        assert_eq!(h.get(b"k", 9, None), HotLookup::Value(b"new".to_vec()));
    }

    #[test]
    fn merge_onto_a_persisted_operand_does_not_fold_it_in_again() {
        let h = HotKv::new();
        h.apply(b"k", w(1, ValueKind::Merge, b"a", None));
        h.mark_persisted(b"k", 1);
        h.apply(b"k", w(2, ValueKind::Merge, b"b", None));
        assert_eq!(
            h.get(b"k", 9, Some(&APPEND)),
            HotLookup::Partial {
                operand: b"b".to_vec(),
                newest_seq: 2,
                oldest_seq: 2
            },
            "the persisted operand lives below and must not be folded into the hot one"
        );
        // A persisted operand alone is left to the lower tiers.
        h.apply(b"p", w(6, ValueKind::Merge, b"z", None));
        h.mark_persisted(b"p", 6);
        assert_eq!(h.get(b"p", 9, Some(&APPEND)), HotLookup::Absent);
        assert!(h.range(b"p", Some(b"q")).is_empty());
        // Folding onto an unpersisted operand is fine.
        h.apply(b"k", w(3, ValueKind::Merge, b"c", None));
        assert_eq!(h.dirty_entries()[0].1.len(), 1);
        assert_eq!(&h.dirty_entries()[0].1[0].value[..], b"bc");
        // Onto a persisted full value, a merge yields a full value.
        h.apply(b"v", w(4, ValueKind::Put, b"x", None));
        h.mark_persisted(b"v", 4);
        h.apply(b"v", w(5, ValueKind::Merge, b"y", None));
        assert_eq!(
            h.get(b"v", 9, Some(&APPEND)),
            HotLookup::Value(b"xy".to_vec())
        );
    }

    #[test]
    fn partial_merge_reports_operand_and_resolves() {
        let h = HotKv::new();
        h.apply(b"k", w(7, ValueKind::Merge, b"x", None));
        h.apply(b"k", w(8, ValueKind::Merge, b"y", None));
        assert_eq!(
            h.get(b"k", 9, Some(&APPEND)),
            HotLookup::Partial {
                operand: b"xy".to_vec(),
                newest_seq: 8,
                oldest_seq: 8
            }
        );
        h.resolve_partial(b"k", 8, b"basexy");
        assert_eq!(
            h.get(b"k", 9, Some(&APPEND)),
            HotLookup::Value(b"basexy".to_vec())
        );
    }

    #[test]
    fn frozen_versions_are_not_folded_into() {
        let h = HotKv::new();
        h.apply(b"k", w(1, ValueKind::Merge, b"a", None));
        let cold = h.coldest(usize::MAX);
        assert_eq!(cold[0].1.len(), 1);
        h.apply(b"k", w(2, ValueKind::Merge, b"b", None));
        assert_eq!(
            h.get(b"k", 9, Some(&APPEND)),
            HotLookup::Partial {
                operand: b"ab".to_vec(),
                newest_seq: 2,
                oldest_seq: 1
            },
            "the frozen version stays readable but the new operand is a separate version"
        );
        assert!(!h.remove_if_unchanged(b"k", 1));
        h.mark_persisted(b"k", 1);
        assert_eq!(
            h.get(b"k", 9, Some(&APPEND)),
            HotLookup::Partial {
                operand: b"b".to_vec(),
                newest_seq: 2,
                oldest_seq: 2
            }
        );
    }

    #[test]
    fn accounting_returns_to_zero_and_promotion_respects_generation() {
        let h = HotKv::new();
        for i in 0..1000u32 {
            h.apply(
                &i.to_be_bytes(),
                w(u64::from(i) + 1, ValueKind::Put, &[1; 20], None),
            );
        }
        assert!(h.bytes() > 1000 * 24);
        let cold = h.coldest(usize::MAX);
        assert_eq!(cold.len(), 1000);
        let g = h.generation(&5u32.to_be_bytes());
        for (k, _, newest) in cold {
            assert!(h.remove_if_unchanged(&k, newest));
        }
        assert_eq!((h.bytes(), h.len()), (0, 0));
        h.promote(&5u32.to_be_bytes(), g, 6, ValueKind::Put, b"stale");
        assert_eq!(
            h.len(),
            0,
            "promotion after a removal in the shard must be refused"
        );
        let g = h.generation(&5u32.to_be_bytes());
        h.promote(&5u32.to_be_bytes(), g, 6, ValueKind::Put, b"v");
        assert_eq!(
            h.get(&5u32.to_be_bytes(), 9, None),
            HotLookup::Value(b"v".to_vec())
        );
    }

    #[test]
    fn prefix_routing_keeps_a_prefix_in_one_shard_and_ranges_stay_exact() {
        let h = HotKv::new();
        h.set_route_prefix(1, 3);
        let key = |g: u8, uk: u8| vec![0, 0, 0, 1, g, g, g, uk];
        for g in 0..50u8 {
            for uk in 0..10u8 {
                h.apply(
                    &key(g, uk),
                    w(
                        u64::from(g) * 10 + u64::from(uk) + 1,
                        ValueKind::Put,
                        b"v",
                        None,
                    ),
                );
            }
        }
        let shard = h.shard_of(&key(7, 0));
        assert!((0..10).all(|uk| h.shard_of(&key(7, uk)) == shard));
        // A prefix scan (one shard) and a cross-prefix range (all shards) are both exact.
        let p = [0, 0, 0, 1, 7, 7, 7];
        let r = h.range(&p, key::prefix_successor(&p).as_deref());
        assert_eq!(r.len(), 10);
        assert!(r.iter().all(|(k, _)| key::user_key(k).starts_with(&p)));
        let r = h.range(&key(3, 5), Some(&key(9, 2)));
        // group 3 from user key 5 (5 keys), groups 4-8 (50), group 9 up to user key 2 (2)
        assert_eq!(r.len(), 5 + 50 + 2);
    }

    #[test]
    fn range_is_sorted_and_bounded() {
        let h = HotKv::new();
        for i in (0..100u32).rev() {
            h.apply(
                &i.to_be_bytes(),
                w(u64::from(i) + 1, ValueKind::Put, b"v", None),
            );
        }
        let r = h.range(&10u32.to_be_bytes(), Some(&20u32.to_be_bytes()));
        let keys: Vec<u32> = r
            .iter()
            .map(|(k, _)| u32::from_be_bytes(key::user_key(k).try_into().unwrap()))
            .collect();
        assert_eq!(keys, (10..20).collect::<Vec<_>>());
    }
}
