//! Group commit: concurrent writers queue their batches; the writer at the head of the
//! queue becomes the leader, commits every queued batch (up to about 1 MiB) as one group
//! (one WAL write, one sync) and hands each follower the group's result.
//!
//! Invariant: a writer returns only after its batch has been committed or has failed with
//! its whole group; groups commit in queue order.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};
use strata_dfs::Result;

use crate::batch::WriteBatch;
use crate::wal::WalWriter;

/// What the apply lock guards: the WAL writer. Holding the lock orders sequence numbers,
/// WAL records and hot-tier application.
pub(crate) struct ApplyState {
    pub(crate) wal: Option<WalWriter>,
}

struct Slot {
    batch: WriteBatch,
    result: Mutex<Option<Result<()>>>,
}

/// The queue of writers waiting to commit.
#[derive(Default)]
pub(crate) struct CommitQueue {
    queue: Mutex<VecDeque<Arc<Slot>>>,
    cv: Condvar,
}

/// A group stops growing once it holds this many key and value bytes.
const GROUP_BYTES: usize = 1 << 20;

impl CommitQueue {
    /// Queues `batch` and waits until it is committed. If this writer leads a group,
    /// `commit` runs on its thread with every batch of the group, in order. Returns the
    /// group's result and whether this writer led it.
    pub(crate) fn submit(
        &self,
        batch: WriteBatch,
        commit: impl FnOnce(&[&WriteBatch]) -> Result<()>,
    ) -> (Result<()>, bool) {
        let me = Arc::new(Slot {
            batch,
            result: Mutex::new(None),
        });
        let mut q = self.queue.lock();
        q.push_back(me.clone());
        loop {
            if let Some(r) = me.result.lock().take() {
                return (r, false);
            }
            if Arc::ptr_eq(&q[0], &me) {
                break;
            }
            self.cv.wait(&mut q);
        }
        // Leader: commit every queued batch (up to a bound) as one group.
        let mut group = Vec::new();
        let mut bytes = 0;
        for s in q.iter() {
            bytes += s
                .batch
                .ops
                .iter()
                .map(|o| o.key.len() + o.value.len())
                .sum::<usize>();
            group.push(s.clone());
            if bytes > GROUP_BYTES {
                break;
            }
        }
        drop(q);
        let batches: Vec<&WriteBatch> = group.iter().map(|s| &s.batch).collect();
        let r = commit(&batches);
        let mut q = self.queue.lock();
        for s in &group {
            q.pop_front();
            if !Arc::ptr_eq(s, &me) {
                *s.result.lock() = Some(r.clone());
            }
        }
        self.cv.notify_all();
        (r, true)
    }
}
