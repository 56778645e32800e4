//! Iteration: [`DbIterator`], an ordered scan of one table merged over every tier, at a
//! snapshot.
//!
//! Invariant: the iterator holds its snapshot and the version it reads, so neither the
//! versions it can see nor the files they live in go away while it runs; each key's
//! versions are combined by the one version fold ([`VersionFold`]).

use std::sync::Arc;

use strata_dfs::key::{self, prefix_successor, SeqNo, MAX_SEQ};
use strata_dfs::{
    Error, InternalIterator, MergeOperator, MergingIterator, Result, Version, VersionFold,
};

use crate::catalog::Table;
use crate::inner::Inner;
use crate::snapshot::Snapshot;

/// Iterator over `(key, value)` pairs of one table in key order, from a consistent
/// snapshot. Yields `Err` once (then ends) if a read fails or finds corruption.
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

impl Iterator for DbIterator {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if !self.started {
            self.started = true;
            self.inner.seek(&key::seek_key(&self.start, MAX_SEQ));
        }
        loop {
            if !self.inner.valid() {
                self.done = true;
                return self.inner.status().err().map(Err);
            }
            let uk = key::user_key(self.inner.key()).to_vec();
            if self.end.as_deref().is_some_and(|e| uk.as_slice() >= e) {
                self.done = true;
                return None;
            }
            let mut fold = VersionFold::new(self.merge.as_deref(), self.seq);
            while self.inner.valid() && key::user_key(self.inner.key()) == uk.as_slice() {
                let Some(p) = key::parse(self.inner.key()) else {
                    self.done = true;
                    return Some(Err(Error::corruption(
                        "iterator source",
                        "malformed internal key",
                    )));
                };
                fold.push(p.seq, p.kind, self.inner.value());
                self.inner.next();
            }
            if let Err(e) = self.inner.status() {
                self.done = true;
                return Some(Err(e));
            }
            if let Some(v) = fold.into_value() {
                return Some(Ok((uk, v)));
            }
        }
    }
}
