//! Compaction filters: how a state table drops or rewrites versions whenever its data is
//! rewritten (hot entries packed into chunks, chunks flushed to level 0, compaction).
//!
//! Invariant: a removed version becomes a tombstone, never a gap, so it still shadows the
//! older versions below it; only a bottommost rewrite drops the tombstone itself.

use bytes::Bytes;

use crate::key::ValueKind;

/// What a [`CompactionFilter`] decides for one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterDecision {
    /// Keep the version as it is.
    Keep,
    /// Drop it: it becomes a tombstone, which the bottommost compaction then drops.
    Remove,
    /// Replace the value (or merge operand) by this one.
    Change(Vec<u8>),
}

/// Drops or rewrites versions whenever data is rewritten: when hot entries are packed into
/// chunks, when chunks are flushed to level 0, and by compaction (RocksDB's compaction
/// filter; TTL state uses it to reclaim expired entries). It sees values and merge operands,
/// never tombstones. Removing a version may expose older versions of the same key below it
/// only if they are older still, so a filter must be monotone: if it removes a version, it
/// would remove every older version of that key too (true of TTL expiry).
pub trait CompactionFilter: Send + Sync {
    /// Decides for one version of `user_key` (the key within its state table).
    fn filter(&self, user_key: &[u8], kind: ValueKind, value: &[u8]) -> FilterDecision;
}

/// Applies `filter` to one version: a removed value becomes a tombstone (it must still
/// shadow older versions below), a changed one takes its new value; tombstones pass as
/// they are.
pub fn filter_version(
    filter: &dyn CompactionFilter,
    user_key: &[u8],
    kind: ValueKind,
    value: Bytes,
) -> (ValueKind, Bytes) {
    if kind == ValueKind::Delete {
        return (kind, value);
    }
    match filter.filter(user_key, kind, &value) {
        FilterDecision::Keep => (kind, value),
        FilterDecision::Remove => (ValueKind::Delete, Bytes::new()),
        FilterDecision::Change(nv) => (kind, Bytes::from(nv)),
    }
}
