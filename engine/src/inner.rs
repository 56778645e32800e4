//! The state one open database shares between its handles, snapshots and iterators. Each
//! part of the engine adds its methods to [`Inner`] from its own file: the write path
//! (`write.rs`), reads (`read.rs`), iterators (`iter.rs`), snapshots (`snapshot.rs`), flush
//! (`flush.rs`) and WAL recovery (`recovery.rs`); `db.rs` is the public front door.
//!
//! Locks, in the order they may nest: the commit queue, then the apply lock (`apply`,
//! which owns the WAL writer and orders sequence numbers, WAL records and hot-tier
//! application), then the middle tier's maintenance lock, then the tree's state lock, then
//! hot-tier shard locks. Readers take only shard read locks and short `RwLock` reads of the
//! chunk list and the current version.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;
use strata_chunkcache::MiddleTier;
use strata_dfs::{BlockCache, Error, MergeOperator, Result, Storage};

use crate::catalog::{Hooks, Table};
use crate::clock::Clock;
use crate::commit::{ApplyState, CommitQueue};
use crate::settings::Settings;

pub(crate) struct Inner {
    pub(crate) settings: Settings,
    pub(crate) storage: Arc<dyn Storage>,
    /// Every tier below the engine: hot KV cache, chunks, and the LSM tree it owns.
    pub(crate) middle: MiddleTier,
    pub(crate) hooks: Arc<Hooks>,
    pub(crate) cache: Arc<BlockCache>,
    pub(crate) merge_ops: Vec<Arc<dyn MergeOperator>>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) commits: CommitQueue,
    pub(crate) apply: Mutex<ApplyState>,
    /// The newest sequence number applied (and visible to readers).
    pub(crate) last_seq: AtomicU64,
    pub(crate) wal_dir: Option<PathBuf>,
    pub(crate) wal_bytes: AtomicU64,
    pub(crate) closed: AtomicBool,
    /// Serialises table creation.
    pub(crate) table_lock: Mutex<()>,
    pub(crate) bg_flush: Mutex<Option<JoinHandle<()>>>,
    pub(crate) flushing: AtomicBool,
    /// Serialises checkpoints' flush-and-plan steps, manifest writes and releases.
    pub(crate) ckpt_lock: Mutex<()>,
    /// What this database knows of the checkpoints it writes.
    pub(crate) ckpt: Mutex<crate::checkpoint::CheckpointState>,
    /// The local directory's `LOCK` file, held until close.
    pub(crate) dir_lock: Mutex<Option<crate::open::DirLock>>,
}

impl Inner {
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    pub(crate) fn check_writable(&self) -> Result<()> {
        self.check_open()?;
        self.middle.check_poison()
    }

    /// The merge operator of `table`; InvalidArgument if the handle is not this database's.
    pub(crate) fn table_merge(&self, table: &Table) -> Result<Option<&Arc<dyn MergeOperator>>> {
        Ok(self.hooks.entry(table)?.merge.as_ref())
    }

    pub(crate) fn close(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Ok(());
        }
        let r = if self.settings.flush_on_close && self.middle.check_poison().is_ok() {
            self.flush()
        } else {
            Ok(())
        };
        self.closed.store(true, Ordering::SeqCst);
        if let Some(h) = self.bg_flush.lock().take() {
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
        self.middle.shutdown();
        self.dir_lock.lock().take();
        r
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
