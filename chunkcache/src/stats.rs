//! The middle tier's counters and the snapshot of them that `Db::stats` reports.

use std::sync::atomic::{AtomicU64, Ordering};

use std::sync::Arc;

use crate::chunk::Chunk;
use crate::hot::HotKv;

/// Counters of the middle tier.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) packs: AtomicU64,
    pub(crate) packed_entries: AtomicU64,
    pub(crate) packed_raw_bytes: AtomicU64,
    pub(crate) packed_chunk_bytes: AtomicU64,
    pub(crate) dropped_clean: AtomicU64,
    pub(crate) chunk_hits: AtomicU64,
    pub(crate) chunk_misses: AtomicU64,
    pub(crate) chunk_flushes: AtomicU64,
    pub(crate) chunk_flush_bytes: AtomicU64,
    pub(crate) write_stalls: AtomicU64,
    pub(crate) full_flushes: AtomicU64,
    pub(crate) write_behinds: AtomicU64,
    pub(crate) allocator_trims: AtomicU64,
}

/// A copy of the middle tier's counters and sizes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MiddleStats {
    /// Hot entries.
    pub hot_entries: u64,
    /// Hot bytes.
    pub hot_bytes: u64,
    /// Hot lookups answered in memory.
    pub hot_hits: u64,
    /// Hot lookups that went below.
    pub hot_misses: u64,
    /// Entries promoted into the hot tier.
    pub promotions: u64,
    /// Writes applied in place.
    pub in_place_updates: u64,
    /// Chunks held.
    pub chunks: u64,
    /// Entries in chunks.
    pub chunk_entries: u64,
    /// Bytes in chunks.
    pub chunk_bytes: u64,
    /// Hot-tier bytes of the entries now in chunks.
    pub chunk_raw_bytes: u64,
    /// Lookups answered by a chunk.
    pub chunk_hits: u64,
    /// Lookups that went past the chunks.
    pub chunk_misses: u64,
    /// Packing rounds.
    pub packs: u64,
    /// Entries packed into chunks, ever.
    pub packed_entries: u64,
    /// Hot-tier bytes of all packed entries, ever.
    pub packed_raw_bytes: u64,
    /// Chunk bytes produced, ever.
    pub packed_chunk_bytes: u64,
    /// Clean entries dropped instead of packed.
    pub dropped_clean: u64,
    /// Chunk flushes to level 0.
    pub chunk_flushes: u64,
    /// Bytes of table files written by chunk flushes.
    pub chunk_flush_bytes: u64,
    /// Times a writer waited for the hot tier to shrink.
    pub write_stalls: u64,
    /// Full flushes.
    pub full_flushes: u64,
    /// Background writes of all chunks and dirty hot entries (write-behind).
    pub write_behinds: u64,
    /// Times maintenance returned the allocator's free pages to the OS because the
    /// resident set exceeded the accounted memory by more than the slack.
    pub allocator_trims: u64,
}

impl Counters {
    /// The counters with the sizes of the hot tier and the chunk list.
    pub(crate) fn snapshot(
        &self,
        hot: &HotKv,
        chunks: &[Arc<Chunk>],
        chunk_bytes: usize,
    ) -> MiddleStats {
        let c = self;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (hot_hits, hot_misses) = hot.hits_misses();
        MiddleStats {
            hot_entries: hot.len() as u64,
            hot_bytes: hot.bytes() as u64,
            hot_hits,
            hot_misses,
            promotions: l(&hot.stats.promotions),
            in_place_updates: l(&hot.stats.in_place),
            chunks: chunks.len() as u64,
            chunk_entries: chunks.iter().map(|c| c.entries() as u64).sum(),
            chunk_bytes: chunk_bytes as u64,
            chunk_raw_bytes: chunks.iter().map(|c| c.raw_bytes() as u64).sum(),
            chunk_hits: l(&c.chunk_hits),
            chunk_misses: l(&c.chunk_misses),
            packs: l(&c.packs),
            packed_entries: l(&c.packed_entries),
            packed_raw_bytes: l(&c.packed_raw_bytes),
            packed_chunk_bytes: l(&c.packed_chunk_bytes),
            dropped_clean: l(&c.dropped_clean),
            chunk_flushes: l(&c.chunk_flushes),
            chunk_flush_bytes: l(&c.chunk_flush_bytes),
            write_stalls: l(&c.write_stalls),
            full_flushes: l(&c.full_flushes),
            write_behinds: l(&c.write_behinds),
            allocator_trims: l(&c.allocator_trims),
        }
    }
}
