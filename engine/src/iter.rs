//! Iteration: [`DbIterator`], an ordered scan of one table merged over every tier, at a
//! snapshot.
//!
//! Invariant: the iterator holds its snapshot and the version it reads, so neither the
//! versions it can see nor the files they live in go away while it runs; each key's
//! versions are combined by the one version fold ([`VersionFold`]).

use std::sync::Arc;

use strata_dfs::key::{self, prefix_successor, SeqNo, ValueKind, MAX_SEQ};
use strata_dfs::{
    Error, InternalIterator, MergeOperator, MergingIterator, Result, Version, VersionFold,
};

use crate::catalog::Table;
use crate::inner::Inner;
use crate::snapshot::Snapshot;

/// Iterator over `(key, value)` pairs of one table in key order, from a consistent
/// snapshot. Yields `Err` once (then ends) if a read fails or finds corruption.
///
/// Two ways to read it: as a standard [`Iterator`] of owned pairs, or, without an
/// allocation per entry, with [`DbIterator::advance`] and the borrowed
/// [`DbIterator::key`] / [`DbIterator::value`] (RocksDB's raw iterator). Mixing the two on
/// one iterator is allowed: both move the same position.
pub struct DbIterator {
    inner: MergingIterator,
    _version: Arc<Version>,
    _snap: Snapshot,
    seq: SeqNo,
    start: Vec<u8>,
    end: Option<Vec<u8>>,
    merge: Option<Arc<dyn MergeOperator>>,
    started: bool,
    done: bool,
    /// The current entry's user key (reused buffer).
    key: Vec<u8>,
    /// Where the current entry's value is.
    at: Current,
    /// The value folded from merge operands (`Current::Folded`).
    folded: Vec<u8>,
}

/// Where the current entry of a [`DbIterator`] is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Current {
    /// Not positioned on an entry.
    None,
    /// The entry is the merging iterator's current version (a put that ends the fold
    /// without a copy); the key's older versions are skipped on the next advance.
    InPlace,
    /// The value is in `folded`; the merging iterator is past the key.
    Folded,
}

impl Inner {
    /// Iterates `table` over `[start, end)` as of `snap`.
    pub(crate) fn iter(
        &self,
        table: &Table,
        start: &[u8],
        end: Option<&[u8]>,
        snap: Snapshot,
    ) -> Result<DbIterator> {
        self.check_open()?;
        let merge = self.table_merge(table)?.cloned();
        let (sources, version) = self.middle.iter_sources(table.id, start, end);
        Ok(DbIterator {
            inner: MergingIterator::new(sources),
            _version: version,
            seq: snap.seq,
            _snap: snap,
            start: start.to_vec(),
            end: end.map(<[u8]>::to_vec),
            merge,
            started: false,
            done: false,
            key: Vec::new(),
            at: Current::None,
            folded: Vec::new(),
        })
    }
}

impl Snapshot {
    /// Iterates keys in `[start, end)` as of the snapshot.
    pub fn range(&self, table: &Table, start: &[u8], end: Option<&[u8]>) -> Result<DbIterator> {
        self.inner
            .iter(table, start, end, self.inner.register_snapshot_at(self.seq))
    }
    /// Iterates keys starting with `prefix` as of the snapshot.
    pub fn prefix(&self, table: &Table, prefix: &[u8]) -> Result<DbIterator> {
        let end = prefix_successor(prefix);
        self.range(table, prefix, end.as_deref())
    }
}

impl DbIterator {
    /// Moves to the next visible entry (the first one on the first call). Returns false at
    /// the end; an error ends the iteration. Does not allocate per entry: the key and value
    /// are read in place with [`DbIterator::key`] and [`DbIterator::value`].
    pub fn advance(&mut self) -> Result<bool> {
        if self.done {
            return Ok(false);
        }
        let stepped = self.step();
        if !matches!(stepped, Ok(true)) {
            self.done = true;
            self.at = Current::None;
        }
        stepped
    }

    /// True if positioned on an entry (after an [`advance`](Self::advance) that returned
    /// true).
    pub fn valid(&self) -> bool {
        self.at != Current::None
    }

    /// The current key. REQUIRES: [`valid`](Self::valid).
    pub fn key(&self) -> &[u8] {
        assert!(self.valid(), "DbIterator::key on an unpositioned iterator");
        &self.key
    }

    /// The current value. REQUIRES: [`valid`](Self::valid).
    pub fn value(&self) -> &[u8] {
        match self.at {
            Current::InPlace => self.inner.value(),
            Current::Folded => &self.folded,
            Current::None => panic!("DbIterator::value on an unpositioned iterator"),
        }
    }

    /// Skips the rest of the current key's versions if the iterator still stands on them.
    fn skip_current_versions(&mut self) -> Result<()> {
        if self.at == Current::InPlace {
            self.inner.next();
            while self.inner.valid() && key::user_key(self.inner.key()) == self.key.as_slice() {
                self.inner.next();
            }
            self.inner.status()?;
        }
        self.at = Current::None;
        Ok(())
    }

    /// One step of [`advance`](Self::advance): true if positioned on a visible entry.
    fn step(&mut self) -> Result<bool> {
        if !self.started {
            self.started = true;
            self.inner.seek(&key::seek_key(&self.start, MAX_SEQ));
        } else {
            self.skip_current_versions()?;
        }
        loop {
            if !self.inner.valid() {
                self.inner.status()?;
                return Ok(false);
            }
            let uk = key::user_key(self.inner.key());
            if self.end.as_deref().is_some_and(|e| uk >= e) {
                return Ok(false);
            }
            self.key.clear();
            self.key.extend_from_slice(uk);
            // Fast path: the key's newest version is visible at the snapshot and is a put or
            // a tombstone, which ends the fold by itself (the common case). Otherwise (a merge
            // operand, or versions newer than the snapshot first) the fold below decides.
            let p = parse(self.inner.key())?;
            if p.seq <= self.seq {
                match p.kind {
                    ValueKind::Put => {
                        // A source that failed has left the merge: what stands here may
                        // be an older version from another source.
                        self.inner.status()?;
                        self.at = Current::InPlace;
                        return Ok(true);
                    }
                    ValueKind::Delete => {
                        self.at = Current::InPlace;
                        self.skip_current_versions()?;
                        continue;
                    }
                    ValueKind::Merge => {}
                }
            }
            let mut fold = VersionFold::new(self.merge.as_deref(), self.seq);
            while self.inner.valid() && key::user_key(self.inner.key()) == self.key.as_slice() {
                let p = parse(self.inner.key())?;
                fold.push(p.seq, p.kind, self.inner.value());
                self.inner.next();
            }
            self.inner.status()?;
            if let Some(v) = fold.into_value() {
                self.folded = v;
                self.at = Current::Folded;
                return Ok(true);
            }
        }
    }
}

/// Parses an internal key from an iterator source.
fn parse(ikey: &[u8]) -> Result<key::ParsedKey<'_>> {
    key::parse(ikey).ok_or_else(|| Error::corruption("iterator source", "malformed internal key"))
}

impl Iterator for DbIterator {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.advance() {
            Ok(true) => Some(Ok((self.key.clone(), self.value().to_vec()))),
            Ok(false) => None,
            Err(e) => Some(Err(e)),
        }
    }
}
