//! Snapshots: a consistent read view at one sequence number, registered in the live
//! snapshot list (`catalog::SnapshotList`) so that flushes and compaction keep every
//! version it can see. (Iterating a snapshot: `iter.rs`.)

use std::sync::atomic::Ordering;
use std::sync::Arc;

use strata_dfs::key::SeqNo;
use strata_dfs::Result;

use crate::catalog::Table;
use crate::inner::Inner;

/// A consistent read view: reads through it see exactly the writes that completed before
/// it was taken, however the data moves between tiers afterwards. Cheap to hold, but it
/// keeps old versions alive; drop it when done.
pub struct Snapshot {
    pub(crate) seq: SeqNo,
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot").field("seq", &self.seq).finish()
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        self.inner.hooks.snapshots.release(self.seq);
    }
}

impl Snapshot {
    /// The sequence number the snapshot reads at.
    pub fn sequence(&self) -> SeqNo {
        self.seq
    }
    /// Reads `key` as of the snapshot.
    pub fn get(&self, table: &Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.inner.get(table, key, self.seq, false)
    }
}

impl Inner {
    /// Takes a snapshot of everything written so far.
    pub(crate) fn snapshot(self: &Arc<Self>) -> Snapshot {
        let _a = self.apply.lock();
        self.register_snapshot_at(self.last_seq.load(Ordering::SeqCst))
    }

    pub(crate) fn register_snapshot_at(self: &Arc<Self>, seq: SeqNo) -> Snapshot {
        self.hooks.snapshots.add(seq);
        Snapshot {
            seq,
            inner: self.clone(),
        }
    }
}
