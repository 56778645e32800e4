//! The tree's open table readers: one [`TableReader`] per live file, opened on first use
//! and shared by every reader, iterator and compaction.
//!
//! Invariant: a file is opened at most once at a time — concurrent readers of a file that is
//! not open yet (a batched read's threads) wait on one gate and fetch its footer, index and
//! filter once, not once each.

use std::sync::Arc;

use super::level_iter::OpenFn;
use super::shared::Inner;
use super::version::FileMeta;
use crate::error::{Error, Result};
use crate::table::TableReader;

impl Inner {
    /// The reader of `f` if it is open already.
    pub(super) fn open_reader(&self, f: &FileMeta) -> Option<Arc<TableReader>> {
        self.readers.lock().get(&f.number).cloned()
    }

    pub(super) fn reader(&self, f: &FileMeta) -> Result<Arc<TableReader>> {
        if let Some(r) = self.open_reader(f) {
            return Ok(r);
        }
        let gate = self.opening.lock().entry(f.number).or_default().clone();
        let _opening = gate.lock();
        // Whoever held the gate before may have opened it.
        if let Some(r) = self.open_reader(f) {
            return Ok(r);
        }
        let opened = self.storage_of(f).and_then(|storage| {
            TableReader::open(storage, self.cache.clone(), &f.path(), f.number, f.size)
        });
        if let Ok(r) = &opened {
            self.readers.lock().insert(f.number, r.clone());
        }
        self.opening.lock().remove(&f.number);
        opened
    }

    pub(super) fn open_fn(self: &Arc<Self>) -> OpenFn {
        let me = Arc::downgrade(self);
        Arc::new(move |f: &FileMeta| match me.upgrade() {
            Some(inner) => inner.reader(f),
            None => Err(Error::Closed),
        })
    }
}
