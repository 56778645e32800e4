//! One hot entry and the structures that hold it: versions, the node that keeps an entry
//! with its key in one allocation, a shard's hash index and ordered index, and the memory
//! charge of each entry.
//!
//! Invariant: the versions of a key across tiers are contiguous — the hot chain holds the
//! newest ones, newest first, and versions at or below `persisted` are also in a lower tier.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64};

use smallvec::SmallVec;
use strata_dfs::key::{SeqNo, ValueKind};
use strata_dfs::MergeOperator;

use super::HotWrite;

/// A key as the hot tier stores it: inline up to 24 bytes (a Flink-shaped state key with
/// its table id fits), so neither the hash probe nor the ordered index dereferences a
/// pointer to compare keys, and a new short key costs no allocation.
pub type HotKey = SmallVec<[u8; 24]>;

/// A value or merge operand: inline up to 16 bytes (no allocation, no extra cache miss for
/// Flink's 8-byte longs and counters); longer ones (lists) live on the heap.
pub type HotValue = SmallVec<[u8; 16]>;

/// An entry's versions, newest first: one inline (the common case without snapshots), more
/// spill to the heap.
pub(super) type Chain = SmallVec<[HotVersion; 1]>;

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
    pub(super) versions: Chain,
    pub(super) access: AtomicU32,
    pub(super) persisted: SeqNo,
    /// Versions up to this sequence number are being copied down (packing or flushing):
    /// writes must not fold into them until they are marked persisted.
    pub(super) frozen: SeqNo,
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
/// control byte; every heap block at the size the allocator really hands out
/// ([`heap_block`]).
pub fn entry_charge(key: &[u8], e: &Entry) -> usize {
    let slots = if e.versions.spilled() {
        e.versions.capacity()
    } else {
        0
    };
    let values = e
        .versions
        .iter()
        .map(|v| {
            if v.value.spilled() {
                heap_block(v.value.capacity())
            } else {
                0
            }
        })
        .sum();
    charge(key.len(), slots, values)
}

/// What a chain of copied `versions` of `key` cost in the hot tier (as [`entry_charge`],
/// with lengths for capacities); used to report the chunk compression ratio.
pub fn chain_charge(key: &[u8], versions: &[HotVersion]) -> usize {
    let values = versions
        .iter()
        .map(|v| {
            if v.value.len() > 16 {
                heap_block(v.value.len())
            } else {
                0
            }
        })
        .sum();
    charge(key.len(), versions.len().saturating_sub(1), values)
}

/// The memory a heap allocation of `n` bytes really takes: glibc's malloc adds an 8-byte
/// header and rounds to 16 bytes with a 32-byte minimum (jemalloc's size classes round
/// small sizes to 16 bytes as well). Without this a Flink-shaped value entry, whose value
/// spills to a 40-60 byte block, is under-charged by about a tenth.
pub fn heap_block(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        (n + 8).next_multiple_of(16).max(32)
    }
}

fn charge(key_len: usize, spilled_slots: usize, value_blocks: usize) -> usize {
    let key_heap = if key_len > 24 {
        2 * heap_block(key_len)
    } else {
        0
    };
    // The node as allocated, two hash-table slots (pointer and control byte; the table is
    // between half and seven-eighths full), and the ordered index's key at about
    // two-thirds B-tree node occupancy.
    heap_block(std::mem::size_of::<Node>())
        + 2 * (std::mem::size_of::<usize>() + 1)
        + std::mem::size_of::<HotKey>() * 3 / 2
        + key_heap
        + heap_block(spilled_slots * std::mem::size_of::<HotVersion>())
        + value_blocks
}

/// A hot entry with its key, in one allocation. The shard's hash table holds only pointers
/// to nodes (9 bytes a slot with its control byte), so the table stays small enough to sit
/// in the CPU cache while the nodes do not: a lookup costs one miss to memory, not two, and
/// the table's spare capacity costs 9 bytes a slot rather than a whole entry.
pub(super) struct Node {
    pub(super) key: HotKey,
    pub(super) entry: Entry,
}

pub(super) fn key_hash(key: &[u8]) -> u64 {
    strata_dfs::internals::hash64(key)
}

/// A shard's hash index: keys to nodes, with a `HashMap`-like interface, plus access by
/// bucket index for the maintenance scans (see [`super::HotKv::scan_shard`]).
#[derive(Default)]
pub(super) struct KeyMap {
    table: hashbrown::HashTable<Box<Node>>,
    /// Times an insert found the table full, so that it grew or rehashed in place: entries
    /// moved between buckets. A scan by bucket index that let go of the shard's lock
    /// compares this to know whether the indices it has passed still mean the same.
    moves: u64,
}

impl KeyMap {
    pub(super) fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.table
            .find(key_hash(key), |n| n.key[..] == *key)
            .map(|n| &n.entry)
    }

    pub(super) fn get_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        self.table
            .find_mut(key_hash(key), |n| n.key[..] == *key)
            .map(|n| &mut n.entry)
    }

    pub(super) fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// Inserts a key known to be absent.
    pub(super) fn insert(&mut self, key: HotKey, entry: Entry) {
        if self.table.len() == self.table.capacity() {
            self.moves += 1;
        }
        self.table
            .insert_unique(key_hash(&key), Box::new(Node { key, entry }), |n| {
                key_hash(&n.key)
            });
    }

    pub(super) fn remove_entry(&mut self, key: &[u8]) -> Option<(HotKey, Entry)> {
        let (node, _) = self
            .table
            .find_entry(key_hash(key), |n| n.key[..] == *key)
            .ok()?
            .remove();
        let Node { key, entry } = *node;
        Some((key, entry))
    }

    /// Bucket indices are `0..buckets()`; an entry keeps its index until [`KeyMap::moves`]
    /// changes (removals leave the other entries where they are).
    pub(super) fn buckets(&self) -> usize {
        self.table.num_buckets()
    }

    /// See the field.
    pub(super) fn moves(&self) -> u64 {
        self.moves
    }

    /// The entry in bucket `i`, if the bucket holds one.
    pub(super) fn bucket(&self, i: usize) -> Option<(&HotKey, &Entry)> {
        self.table.get_bucket(i).map(|n| (&n.key, &n.entry))
    }

    /// The entry in bucket `i`, if the bucket holds one, to change.
    pub(super) fn bucket_mut(&mut self, i: usize) -> Option<(&HotKey, &mut Entry)> {
        self.table.get_bucket_mut(i).map(|n| {
            let Node { key, entry } = &mut **n;
            (&*key, entry)
        })
    }

    /// Removes the entry in bucket `i`, if the bucket holds one.
    pub(super) fn remove_bucket(&mut self, i: usize) -> Option<(HotKey, Entry)> {
        let (node, _) = self.table.get_bucket_entry(i).ok()?.remove();
        let Node { key, entry } = *node;
        Some((key, entry))
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&HotKey, &Entry)> {
        self.table.iter().map(|n| (&n.key, &n.entry))
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = (&HotKey, &mut Entry)> {
        self.table.iter_mut().map(|n| {
            let Node { key, entry } = &mut **n;
            (&*key, entry)
        })
    }
}

#[derive(Default)]
pub(super) struct Shard {
    /// Lookups answered here / sent below; per shard (next to the lock word the reader has
    /// just written) so that readers on different cores do not contend on one counter.
    pub(super) hits: AtomicU64,
    pub(super) misses: AtomicU64,
    pub(super) map: KeyMap,
    /// The same keys, ordered, each with a *may be dirty* flag: set when an entry is
    /// inserted dirty, when a write makes a clean entry dirty, and when a write lands on an
    /// entry that a stream or a pack has copied but not yet marked persisted; cleared only
    /// by the flush stream when it copies the entry (and set again by a thaw). So every dirty entry's
    /// flag is set, and a flush visits only flagged keys instead of probing every entry.
    pub(super) order: BTreeMap<HotKey, bool>,
    /// How many of `order`'s flags are set.
    pub(super) flagged: usize,
    pub(super) bytes: usize,
    /// Bumped whenever entries leave the shard (packing, flush-drops); promotion checks it.
    pub(super) generation: u64,
}

/// Sets `key`'s *may be dirty* flag in a shard's ordered index (`order`), keeping the
/// shard's count of set flags (`flagged`) exact. Two fields rather than `&mut Shard`, so a
/// caller iterating the shard's hash map can still call it.
pub(super) fn raise_flag(order: &mut BTreeMap<HotKey, bool>, flagged: &mut usize, key: &[u8]) {
    if let Some(flag) = order.get_mut(key) {
        if !std::mem::replace(flag, true) {
            *flagged += 1;
        }
    }
}

pub(super) fn new_version(w: &HotWrite<'_>) -> HotVersion {
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
pub(super) fn readable(e: &Entry) -> impl Iterator<Item = &HotVersion> {
    let persisted = e.persisted;
    e.versions
        .iter()
        .take_while(move |v| !(v.seq <= persisted && v.kind == ValueKind::Merge))
}

/// The versions of `e` that are not yet in a lower tier.
pub(super) fn unpersisted(e: &Entry) -> Vec<HotVersion> {
    e.versions
        .iter()
        .take_while(|v| v.seq > e.persisted)
        .cloned()
        .collect()
}

/// Folds `operand` into `existing` in place. A spilled value is handed to the operator as
/// the `Vec` it already is (no copy); an inline one is copied out and back.
pub(super) fn merge_into(op: &dyn MergeOperator, existing: &mut HotValue, operand: &[u8]) {
    let mut v = std::mem::take(existing).into_vec();
    op.merge_in_place(&mut v, operand);
    *existing = HotValue::from_vec(v);
}
