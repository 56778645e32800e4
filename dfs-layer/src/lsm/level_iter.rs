//! Iterator over one sorted, non-overlapping level: opens one file at a time.

use std::cmp::Ordering;
use std::sync::Arc;

use super::version::{FileMeta, KeyGroupFilter};
use crate::error::Result;
use crate::iter::{ConcatIter, InternalIterator, Segments};
use crate::key;
use crate::table::{TableIter, TableReader};

/// Opens a table file by its metadata (the tree's reader cache).
pub type OpenFn = Arc<dyn Fn(&FileMeta) -> Result<Arc<TableReader>> + Send + Sync>;

/// The files of a level (1+: sorted by key, non-overlapping) as segments. Holding the
/// `Arc<FileMeta>`s keeps the files from being deleted while iterated.
pub struct LevelFiles {
    files: Vec<Arc<FileMeta>>,
    open: OpenFn,
    sequential: bool,
}

impl Segments for LevelFiles {
    type Iter = FilteredIter;
    fn count(&self) -> usize {
        self.files.len()
    }
    fn find(&self, target: &[u8]) -> usize {
        self.files
            .partition_point(|f| key::compare(&f.largest, target) == Ordering::Less)
    }
    fn open(&self, i: usize) -> Result<FilteredIter> {
        let f = &self.files[i];
        Ok(FilteredIter::new(
            (self.open)(f)?.iter(self.sequential),
            f.filter,
        ))
    }
}

/// A table's iterator showing only the keys its file's [`KeyGroupFilter`] admits. When
/// the key-group field leads the key, the admitted keys are one range: a seek below it
/// jumps to its start and the iterator ends at its end; otherwise rejected keys are
/// stepped over.
pub struct FilteredIter {
    inner: TableIter,
    filter: Option<KeyGroupFilter>,
    /// The admitted range as internal-key bounds, when the field leads the key.
    range: Option<(Vec<u8>, Option<Vec<u8>>)>,
    /// Past the admitted range.
    done: bool,
}

impl FilteredIter {
    fn new(inner: TableIter, filter: Option<KeyGroupFilter>) -> Self {
        let range = filter.and_then(|f| f.key_range());
        FilteredIter {
            inner,
            filter,
            range,
            done: false,
        }
    }

    /// Moves forward to the first admitted key (or the end).
    fn settle(&mut self) {
        let Some(filter) = self.filter else {
            return;
        };
        while self.inner.valid() {
            let user = key::user_key(self.inner.key());
            if filter.admits(user) {
                return;
            }
            match &self.range {
                Some((start, _)) if user < start.as_slice() => {
                    let target = key::internal_key(start, key::MAX_SEQ, key::ValueKind::Merge);
                    self.inner.seek(&target);
                }
                Some(_) => {
                    self.done = true;
                    return;
                }
                None => self.inner.next(),
            }
        }
    }
}

impl InternalIterator for FilteredIter {
    fn valid(&self) -> bool {
        !self.done && self.inner.valid()
    }
    fn seek_to_first(&mut self) {
        self.done = false;
        self.inner.seek_to_first();
        self.settle();
    }
    fn seek(&mut self, target: &[u8]) {
        self.done = false;
        self.inner.seek(target);
        self.settle();
    }
    fn next(&mut self) {
        self.inner.next();
        self.settle();
    }
    fn key(&self) -> &[u8] {
        self.inner.key()
    }
    fn value(&self) -> &[u8] {
        self.inner.value()
    }
    fn status(&self) -> Result<()> {
        self.inner.status()
    }
}

/// Iterator over a level.
pub type LevelIter = ConcatIter<LevelFiles>;

/// An iterator over `files`, which must be sorted and non-overlapping. `sequential` turns on
/// read-ahead (compactions).
pub fn level_iter(files: Vec<Arc<FileMeta>>, open: OpenFn, sequential: bool) -> LevelIter {
    ConcatIter::new(LevelFiles {
        files,
        open,
        sequential,
    })
}
