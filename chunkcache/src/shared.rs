//! The middle tier's shared state: everything the coordinator (`tier.rs`), the maintenance
//! thread (`maintenance.rs`) and the read path work on, and its sizing.
//!
//! Invariant: the hot tier, the chunk list (newest first) and the tree below hold every
//! version of every key, contiguously by tier (see `tier.rs`); `chunk_bytes` is the sum of
//! the chunks' sizes, changed only with the chunk list.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, RwLock};
use strata_dfs::{LsmTree, TreeHooks};

use crate::chunk::Chunk;
use crate::doorkeeper::Doorkeeper;
use crate::hot::HotKv;
use crate::stats::Counters;

/// Sizing of the middle tier: one per database, derived by the engine from its per-database
/// `Settings` (the memory budget split).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MiddleSettings {
    /// Bytes the hot tier may hold before packing starts; packing brings it to 3/4 of this.
    pub hot_budget: usize,
    /// Bytes the chunk tier may hold before chunks are flushed; flushing brings it to 3/4.
    pub chunk_budget: usize,
    /// Uncompressed size of one chunk block.
    pub chunk_block_bytes: usize,
    /// Writers stall while the hot tier holds more than this many bytes.
    pub hot_stall_bytes: usize,
    /// Write-behind: once this many bytes (keys and values) were written since the last
    /// flush, the maintenance thread writes every chunk and dirty hot entry to level 0 in
    /// the background, keeping the hot entries resident and clean (0: never). It bounds
    /// what a full flush (a checkpoint) has left to write, as RocksDB's write-buffer size
    /// bounds its memtable flush.
    pub write_behind_bytes: usize,
    /// When the process's resident set exceeds the accounted memory (hot tier, chunks,
    /// block cache) by more than this, maintenance returns the allocator's free pages to
    /// the OS (see [`crate::memory`]; 0: never).
    pub retained_slack: usize,
}

pub(crate) struct Shared {
    pub(crate) door: Doorkeeper,
    pub(crate) hot: HotKv,
    pub(crate) chunks: RwLock<Vec<Arc<Chunk>>>,
    pub(crate) chunk_bytes: AtomicUsize,
    pub(crate) tree: LsmTree,
    pub(crate) hooks: Arc<dyn TreeHooks>,
    pub(crate) settings: MiddleSettings,
    /// Serialises maintenance moves (packing, chunk flushes, full flushes).
    pub(crate) maint: Mutex<()>,
    pub(crate) next_chunk: AtomicU64,
    /// Bytes written (keys and values) since the last flush (full or write-behind).
    pub(crate) written: AtomicUsize,
    pub(crate) counters: Counters,
    pub(crate) wake: Mutex<bool>,
    pub(crate) wake_cv: Condvar,
    pub(crate) room: Mutex<()>,
    pub(crate) room_cv: Condvar,
    pub(crate) shutdown: AtomicBool,
    /// When maintenance last trimmed the allocator (at most once a second).
    pub(crate) last_trim: Mutex<Option<std::time::Instant>>,
}
