//! Iterator over one sorted, non-overlapping level: opens one file at a time.

use std::cmp::Ordering;
use std::sync::Arc;

use super::version::FileMeta;
use crate::error::Result;
use crate::iter::{ConcatIter, Segments};
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
    type Iter = TableIter;
    fn count(&self) -> usize {
        self.files.len()
    }
    fn find(&self, target: &[u8]) -> usize {
        self.files
            .partition_point(|f| key::compare(&f.largest, target) == Ordering::Less)
    }
    fn open(&self, i: usize) -> Result<TableIter> {
        Ok((self.open)(&self.files[i])?.iter(self.sequential))
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
