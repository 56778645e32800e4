//! What a tree is configured with: per-tree options ([`TreeOptions`], one per database,
//! derived from the engine's settings) and the per-table answers it asks of the layer above
//! ([`TreeHooks`]: merge operator, compression, prefix length, snapshots, compaction filter).

use std::sync::Arc;

use super::picker::CompactionOptions;
use crate::compress::Compression;
use crate::filter::CompactionFilter;
use crate::key::SeqNo;
use crate::merge::MergeOperator;

/// Settings of one tree (one per database, derived from the engine's per-database
/// `Settings`; per-table choices come through [`TreeHooks`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeOptions {
    /// Compaction shape.
    pub compaction: CompactionOptions,
    /// Target uncompressed data block size.
    pub block_bytes: usize,
    /// Restart interval in data blocks.
    pub restart_interval: usize,
    /// Bloom filter bits per key.
    pub bloom_bits_per_key: u32,
    /// Background compaction threads.
    pub compaction_threads: usize,
    /// Open without becoming the writer: no claim of the store, no orphan sweep, no
    /// compaction threads, and every write refused (tools that inspect a live database).
    pub read_only: bool,
    /// Make every table file and manifest generation durable ([`crate::Storage::sync`])
    /// before anything refers to it (the engine sets it with `wal_sync`).
    pub sync_writes: bool,
    /// Check at open that every foreign file is in its store with its size (one `size`
    /// call each); off only right after a restore that checked them.
    pub verify_foreign: bool,
}

impl Default for TreeOptions {
    fn default() -> Self {
        TreeOptions {
            compaction: CompactionOptions::default(),
            block_bytes: 4096,
            restart_interval: 16,
            bloom_bits_per_key: 10,
            compaction_threads: 1,
            read_only: false,
            sync_writes: false,
            verify_foreign: true,
        }
    }
}

/// What the tree asks of the layer above it.
pub trait TreeHooks: Send + Sync {
    /// The merge operator of a state table.
    fn merge_operator(&self, table_id: u32) -> Option<Arc<dyn MergeOperator>>;
    /// Data block compression for a state table at a level.
    fn compression(&self, table_id: u32, level: usize) -> Compression;
    /// Scan-prefix length of a state table (0: none): its files' bloom filters hold prefixes.
    fn prefix_len(&self, _table_id: u32) -> usize {
        0
    }
    /// Live snapshot sequence numbers, ascending.
    fn snapshots(&self) -> Vec<SeqNo>;
    /// The compaction filter of a state table, if any.
    fn compaction_filter(&self, _table_id: u32) -> Option<Arc<dyn CompactionFilter>> {
        None
    }
}
