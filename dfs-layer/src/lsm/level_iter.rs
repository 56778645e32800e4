//! Iterator over one sorted, non-overlapping level: opens one file at a time.

use std::cmp::Ordering;
use std::sync::Arc;

use super::version::FileMeta;
use crate::error::{Error, Result};
use crate::iter::InternalIterator;
use crate::key;
use crate::table::{TableIter, TableReader};

/// Opens a table file by its metadata (the tree's reader cache).
pub type OpenFn = Arc<dyn Fn(&FileMeta) -> Result<Arc<TableReader>> + Send + Sync>;

/// Concatenates the files of a level 1+ (sorted by key, non-overlapping).
pub struct LevelIter {
    files: Vec<Arc<FileMeta>>,
    open: OpenFn,
    sequential: bool,
    idx: usize,
    cur: Option<TableIter>,
    err: Option<Error>,
}

impl LevelIter {
    /// An iterator over `files`, which must be sorted and non-overlapping.
    pub fn new(files: Vec<Arc<FileMeta>>, open: OpenFn, sequential: bool) -> Self {
        let idx = files.len();
        LevelIter {
            files,
            open,
            sequential,
            idx,
            cur: None,
            err: None,
        }
    }

    fn open_at(&mut self, idx: usize) -> bool {
        self.idx = idx;
        self.cur = None;
        if idx >= self.files.len() {
            return false;
        }
        match (self.open)(&self.files[idx]) {
            Ok(t) => {
                self.cur = Some(t.iter(self.sequential));
                true
            }
            Err(e) => {
                self.err = Some(e);
                false
            }
        }
    }

    fn skip_exhausted(&mut self) {
        loop {
            match &self.cur {
                Some(c) if c.valid() => return,
                Some(c) => {
                    if let Err(e) = c.status() {
                        self.err = Some(e);
                        self.cur = None;
                        return;
                    }
                }
                None => return,
            }
            if !self.open_at(self.idx + 1) {
                return;
            }
            if let Some(c) = &mut self.cur {
                c.seek_to_first();
            }
        }
    }
}

impl InternalIterator for LevelIter {
    fn valid(&self) -> bool {
        self.err.is_none() && self.cur.as_ref().is_some_and(|c| c.valid())
    }
    fn seek_to_first(&mut self) {
        if self.open_at(0) {
            if let Some(c) = &mut self.cur {
                c.seek_to_first();
            }
            self.skip_exhausted();
        }
    }
    fn seek(&mut self, target: &[u8]) {
        let idx = self
            .files
            .partition_point(|f| key::compare(&f.largest, target) == Ordering::Less);
        if self.open_at(idx) {
            if let Some(c) = &mut self.cur {
                c.seek(target);
            }
            self.skip_exhausted();
        }
    }
    fn next(&mut self) {
        if let Some(c) = &mut self.cur {
            c.next();
        }
        self.skip_exhausted();
    }
    fn key(&self) -> &[u8] {
        self.cur.as_ref().expect("valid").key()
    }
    fn value(&self) -> &[u8] {
        self.cur.as_ref().expect("valid").value()
    }
    fn status(&self) -> Result<()> {
        match &self.err {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}
