//! `Db::stats()`: entries, bytes and hit rates per tier, the chunk compression ratio,
//! compaction work, and memory: what the engine accounts to its budget next to what the
//! process really has resident.

use strata_chunkcache::MiddleStats;
use strata_dfs::{CacheSnapshot, TreeStats};

use crate::settings::Settings;

/// Statistics of one database.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// The configured memory budget.
    pub memory_budget_bytes: u64,
    /// Bytes the engine accounts to its budget: hot tier, chunks, block cache and the open
    /// tables' index and filter blocks (charged to the block cache's share).
    pub memory_in_use_bytes: u64,
    /// The process's resident memory now (`VmRSS`; 0 where `/proc` is unavailable). It
    /// includes everything else in the process and allocator overhead, so it is the figure
    /// to compare with the budget; the gap to `memory_in_use_bytes` is what the accounting
    /// misses.
    pub resident_bytes: u64,
    /// The process's peak resident memory so far (`VmHWM` in `/proc/self/status`).
    pub peak_resident_bytes: u64,
    /// Hot tier's share of the budget.
    pub hot_budget_bytes: u64,
    /// Chunk tier's share of the budget.
    pub chunk_budget_bytes: u64,
    /// Hot tier: entries, bytes, hits, promotions, ...
    pub middle: MiddleStats,
    /// Hits / lookups in the hot tier (0 when there were no lookups).
    pub hot_hit_rate: f64,
    /// Hits / lookups in the chunk tier.
    pub chunk_hit_rate: f64,
    /// Hot-tier bytes of all packed entries / chunk bytes they became (higher is better;
    /// 3.0 means chunks hold the data in a third of the memory).
    pub chunk_compression_ratio: f64,
    /// Block cache counters.
    pub block_cache: CacheSnapshot,
    /// Hits / lookups in the block cache.
    pub block_cache_hit_rate: f64,
    /// Table files: flushes, compactions, files and bytes per level.
    pub tree: TreeStats,
    /// Last sequence number assigned.
    pub last_sequence: u64,
    /// Bytes in the current WAL file.
    pub wal_bytes: u64,
}

/// One table file of the current version ([`crate::Db::live_files`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveFile {
    /// Path in the database's store (`sst/<number>.sst`).
    pub path: String,
    /// State table id ([`crate::Table::id`]).
    pub table_id: u32,
    /// LSM level.
    pub level: usize,
    /// Bytes.
    pub size: u64,
    /// Entries (versions).
    pub entries: u64,
}

fn rate(hits: u64, misses: u64) -> f64 {
    if hits + misses == 0 {
        0.0
    } else {
        hits as f64 / (hits + misses) as f64
    }
}

impl Stats {
    pub(crate) fn collect(
        settings: &Settings,
        middle: MiddleStats,
        block_cache: CacheSnapshot,
        tree: TreeStats,
        last_sequence: u64,
        wal_bytes: u64,
    ) -> Stats {
        let split = settings.split();
        let (resident_bytes, peak_resident_bytes) =
            strata_chunkcache::memory::process_memory().unwrap_or((0, 0));
        Stats {
            memory_budget_bytes: settings.memory_budget_bytes,
            memory_in_use_bytes: middle.hot_bytes
                + middle.chunk_bytes
                + block_cache.bytes
                + block_cache.reserved_bytes,
            resident_bytes,
            peak_resident_bytes,
            hot_budget_bytes: split.hot as u64,
            chunk_budget_bytes: split.chunks as u64,
            hot_hit_rate: rate(middle.hot_hits, middle.hot_misses),
            chunk_hit_rate: rate(middle.chunk_hits, middle.chunk_misses),
            chunk_compression_ratio: if middle.packed_chunk_bytes == 0 {
                0.0
            } else {
                middle.packed_raw_bytes as f64 / middle.packed_chunk_bytes as f64
            },
            block_cache_hit_rate: rate(block_cache.hits, block_cache.misses),
            middle,
            block_cache,
            tree,
            last_sequence,
            wal_bytes,
        }
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = &self.middle;
        let mib = |b: u64| b as f64 / 1048576.0;
        writeln!(
            f,
            "memory: {:.1} MiB accounted of {:.1} MiB budget; process resident {:.1} MiB (peak {:.1} MiB); {} allocator trims",
            mib(self.memory_in_use_bytes),
            mib(self.memory_budget_bytes),
            mib(self.resident_bytes),
            mib(self.peak_resident_bytes),
            m.allocator_trims
        )?;
        writeln!(
            f,
            "hot:    {} entries, {:.1} KiB, hit rate {:.3}, {} in-place updates, {} promotions",
            m.hot_entries,
            m.hot_bytes as f64 / 1024.0,
            self.hot_hit_rate,
            m.in_place_updates,
            m.promotions
        )?;
        writeln!(
            f,
            "chunks: {} chunks, {} entries, {:.1} KiB, hit rate {:.3}, compression {:.2}x, {} packs, {} flushes",
            m.chunks,
            m.chunk_entries,
            m.chunk_bytes as f64 / 1024.0,
            self.chunk_hit_rate,
            self.chunk_compression_ratio,
            m.packs,
            m.chunk_flushes
        )?;
        writeln!(
            f,
            "cache:  {:.1} KiB + {:.1} KiB index/filter of {:.1} KiB, hit rate {:.3}, {} evictions",
            self.block_cache.bytes as f64 / 1024.0,
            self.block_cache.reserved_bytes as f64 / 1024.0,
            self.block_cache.capacity as f64 / 1024.0,
            self.block_cache_hit_rate,
            self.block_cache.evictions
        )?;
        writeln!(
            f,
            "tables: files/level {:?}, {} flushes, {} compactions ({:.1} KiB read, {:.1} KiB written)",
            self.tree.files_per_level,
            self.tree.flushes,
            self.tree.compactions,
            self.tree.compaction_bytes_read as f64 / 1024.0,
            self.tree.compaction_bytes_written as f64 / 1024.0
        )
    }
}
