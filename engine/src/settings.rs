//! Per-database settings ([`Settings`]): plain data with defaults, [`Settings::validate`],
//! and the memory-budget split. Per-table choices are [`crate::TableOptions`] (options.rs).
//!
//! Live components (storage, clock, custom merge operators) are not settings; they go on
//! [`crate::DbBuilder`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use strata_dfs::{CompactionOptions, Error, Result};

/// Largest key accepted.
pub const MAX_KEY_BYTES: usize = 64 << 10;
/// Largest value (or merge operand, or merged value) accepted.
pub const MAX_VALUE_BYTES: usize = 16 << 20;

/// Database settings. All fields have defaults (`Settings::default()`); deserialising a
/// partial document fills the rest with defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// One memory budget for the whole engine, split by the fractions below.
    pub memory_budget_bytes: u64,
    /// Share of the budget for the hot KV tier.
    pub hot_fraction: f64,
    /// Share of the budget for compressed chunks.
    pub chunk_fraction: f64,
    /// Share of the budget for the block cache.
    pub block_cache_fraction: f64,
    /// Share of the budget for write buffers: table files being built by flushes and
    /// compactions. The effective `compaction.target_file_bytes` is capped at this share
    /// divided by (compaction threads + 1), and at least 64 KiB.
    pub write_buffer_fraction: f64,
    /// Uncompressed size of a chunk block.
    pub chunk_block_bytes: usize,
    /// Uncompressed size of a table data block.
    pub table_block_bytes: usize,
    /// Bloom filter bits per key in table files (0 disables filters).
    pub bloom_bits_per_key: u32,
    /// Compaction shape.
    pub compaction: CompactionOptions,
    /// Background compaction threads.
    pub compaction_threads: usize,
    /// Keep a write-ahead log so acknowledged writes survive a crash.
    pub wal_enabled: bool,
    /// fsync the WAL before acknowledging, and every table file and manifest generation
    /// (with its directory) before it is used: acknowledged writes survive a power loss,
    /// not just a process crash.
    pub wal_sync: bool,
    /// Flush in the background once the WAL grows past this many bytes.
    pub wal_max_bytes: u64,
    /// Directory for WAL files. Defaults to `<db dir>/wal` for local stores; required for
    /// other stores when the WAL is on.
    pub wal_dir: Option<PathBuf>,
    /// What reopening does with a damaged WAL (RocksDB's `WALRecoveryMode`); the default,
    /// [`WalRecovery::TolerateCorruptedTail`], accepts only a torn tail.
    pub wal_recovery: WalRecovery,
    /// Local directory for the block cache's disk tier (used for remote stores only), and
    /// (in `mirror/`) for local copies of the files a restored database reads from a remote
    /// checkpoint store.
    pub disk_cache_dir: Option<PathBuf>,
    /// Size bound of the disk tier, and separately of the mirrored files.
    pub disk_cache_bytes: u64,
    /// Largest key accepted (at most [`MAX_KEY_BYTES`]).
    pub max_key_bytes: usize,
    /// Largest value accepted (at most [`MAX_VALUE_BYTES`]).
    pub max_value_bytes: usize,
    /// Flush memory tiers to table files on [`crate::Db::close`].
    pub flush_on_close: bool,
    /// Write-behind: once half the write-buffer share of the budget has been written since
    /// the last flush, write every chunk and dirty hot entry to level 0 in the background
    /// (hot entries stay resident, now clean), so a `flush` (a checkpoint) has at most that
    /// much left to write, as RocksDB's write buffers bound its memtable flush. Off, data
    /// leaves memory only when a tier is over budget or on `flush`.
    pub write_behind: bool,
    /// Keep the allocator's retained memory within the budget's reach: the
    /// maintenance thread returns free allocator pages to the OS (glibc's `malloc_trim`, or
    /// the function installed with [`crate::set_allocator_release`] under another global
    /// allocator; at most once a second) when the resident set exceeds the accounted
    /// memory by more than the write-buffer share plus 32 MiB.
    pub tune_allocator: bool,
    /// Checkpoints into another store (`Db::checkpoint` with a target): while the data
    /// flushed since the last *full* checkpoint there stays within this fraction of that
    /// checkpoint's size, a checkpoint uploads only what was flushed since the previous one
    /// (merged into one run per table) and names it on top of the previous checkpoint's
    /// files, as Flink's changelog state backend ships state changes between
    /// materializations. Past it (or at 0) a checkpoint is *full*: it uploads every live
    /// file not already there, as Flink's incremental RocksDB checkpoints do. Higher
    /// values upload less per checkpoint and leave a restored database more level-0 files
    /// to compact. In `0..=16`.
    pub checkpoint_delta_ratio: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            memory_budget_bytes: 256 << 20,
            hot_fraction: 0.40,
            chunk_fraction: 0.20,
            block_cache_fraction: 0.30,
            write_buffer_fraction: 0.10,
            chunk_block_bytes: 4096,
            table_block_bytes: 4096,
            bloom_bits_per_key: 10,
            compaction: CompactionOptions::default(),
            compaction_threads: 1,
            wal_enabled: false,
            wal_sync: false,
            wal_max_bytes: 64 << 20,
            wal_dir: None,
            wal_recovery: WalRecovery::default(),
            disk_cache_dir: None,
            disk_cache_bytes: 1 << 30,
            max_key_bytes: MAX_KEY_BYTES,
            max_value_bytes: MAX_VALUE_BYTES,
            flush_on_close: true,
            write_behind: true,
            tune_allocator: true,
            checkpoint_delta_ratio: 1.0,
        }
    }
}

/// How WAL replay treats damage (RocksDB's `WALRecoveryMode`). A *torn tail* is what a crash
/// during a write leaves: an incomplete or unreadable last record with nothing valid after
/// it (none of its writers was acknowledged). Damage *followed by valid records*, or a WAL
/// the manifest names that is missing, means acknowledged writes were lost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WalRecovery {
    /// Tolerate a torn tail; any other damage fails the open with `Corruption` naming the
    /// file and offset. The default.
    #[default]
    TolerateCorruptedTail,
    /// Fail the open on any damage, a torn tail included.
    AbsoluteConsistency,
    /// Replay up to the first damage and stop there (later WAL files included): the
    /// database opens with a consistent prefix of the acknowledged writes.
    PointInTime,
    /// Skip damaged records and replay every valid one (may break batch atomicity across
    /// the damage; for salvage).
    SkipAnyCorruptedRecords,
}

/// The budget split into bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemorySplit {
    /// Hot tier bytes.
    pub hot: usize,
    /// Chunk tier bytes.
    pub chunks: usize,
    /// Block cache bytes.
    pub block_cache: usize,
    /// Write buffer bytes.
    pub write_buffers: usize,
}

impl Settings {
    /// Settings sized for tests: a small budget that pushes data through every tier fast.
    pub fn small_for_tests(budget: u64) -> Self {
        let mut s = Settings {
            memory_budget_bytes: budget,
            ..Default::default()
        };
        s.compaction.level_base_bytes = budget;
        // Half the write-buffer share per builder (one compaction thread + one flusher).
        s.compaction.target_file_bytes = (s.split().write_buffers as u64 / 4).max(4096);
        s.compaction.l0_trigger = 3;
        s.compaction.l0_stop = 12;
        s
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(format!("settings: {m}")));
        if self.memory_budget_bytes < (256 << 10) {
            return bad(format!(
                "memory_budget_bytes must be at least 256 KiB, got {}",
                self.memory_budget_bytes
            ));
        }
        let fr = [
            ("hot_fraction", self.hot_fraction),
            ("chunk_fraction", self.chunk_fraction),
            ("block_cache_fraction", self.block_cache_fraction),
            ("write_buffer_fraction", self.write_buffer_fraction),
        ];
        for (n, f) in fr {
            if !(f > 0.0 && f <= 1.0) {
                return bad(format!("{n} must be in (0, 1], got {f}"));
            }
        }
        let sum: f64 = fr.iter().map(|(_, f)| f).sum();
        if sum > 1.0 + 1e-9 {
            return bad(format!("the four fractions add up to {sum}, more than 1"));
        }
        for (n, v) in [
            ("chunk_block_bytes", self.chunk_block_bytes),
            ("table_block_bytes", self.table_block_bytes),
        ] {
            if !(256..=(1 << 20)).contains(&v) {
                return bad(format!("{n} must be in 256..=1048576, got {v}"));
            }
        }
        if self.bloom_bits_per_key > 30 {
            return bad(format!(
                "bloom_bits_per_key must be <= 30, got {}",
                self.bloom_bits_per_key
            ));
        }
        if !(0.0..=16.0).contains(&self.checkpoint_delta_ratio) {
            return bad(format!(
                "checkpoint_delta_ratio must be in 0..=16, got {}",
                self.checkpoint_delta_ratio
            ));
        }
        let c = &self.compaction;
        if c.l0_trigger < 1 || c.l0_stop <= c.l0_trigger {
            return bad(format!(
                "compaction needs l0_trigger >= 1 and l0_stop > l0_trigger, got {} and {}",
                c.l0_trigger, c.l0_stop
            ));
        }
        if c.size_ratio < 2 {
            return bad(format!(
                "compaction.size_ratio must be >= 2, got {}",
                c.size_ratio
            ));
        }
        if c.target_file_bytes < 4096 || c.level_base_bytes < c.target_file_bytes {
            return bad("compaction needs 4096 <= target_file_bytes <= level_base_bytes".into());
        }
        if !(1..=16).contains(&self.compaction_threads) {
            return bad(format!(
                "compaction_threads must be in 1..=16, got {}",
                self.compaction_threads
            ));
        }
        if self.max_key_bytes == 0 || self.max_key_bytes > MAX_KEY_BYTES {
            return bad(format!("max_key_bytes must be in 1..={MAX_KEY_BYTES}"));
        }
        if self.max_value_bytes == 0 || self.max_value_bytes > MAX_VALUE_BYTES {
            return bad(format!("max_value_bytes must be in 1..={MAX_VALUE_BYTES}"));
        }
        if self.wal_enabled && self.wal_max_bytes < 4096 {
            return bad("wal_max_bytes must be at least 4096".into());
        }
        Ok(())
    }

    /// Compaction settings with the output file size capped by the write-buffer share.
    pub fn effective_compaction(&self) -> CompactionOptions {
        let mut c = self.compaction;
        let per_builder = self.split().write_buffers as u64 / (self.compaction_threads as u64 + 1);
        c.target_file_bytes = c.target_file_bytes.min(per_builder.max(64 << 10));
        c
    }

    /// The memory budget in bytes per component.
    pub fn split(&self) -> MemorySplit {
        let b = self.memory_budget_bytes as f64;
        MemorySplit {
            hot: (b * self.hot_fraction) as usize,
            chunks: (b * self.chunk_fraction) as usize,
            block_cache: (b * self.block_cache_fraction) as usize,
            write_buffers: (b * self.write_buffer_fraction) as usize,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_are_named() {
        Settings::default().validate().unwrap();
        Settings::small_for_tests(4 << 20).validate().unwrap();
        let small = Settings {
            memory_budget_bytes: 8 << 20,
            ..Default::default()
        };
        small.validate().unwrap();
        assert_eq!(
            small.effective_compaction().target_file_bytes,
            8 * 1048576 / 10 / 2
        );
        let cases: Vec<(Settings, &str)> = vec![
            (
                Settings {
                    memory_budget_bytes: 10,
                    ..Default::default()
                },
                "memory_budget_bytes",
            ),
            (
                Settings {
                    hot_fraction: 0.9,
                    ..Default::default()
                },
                "add up",
            ),
            (
                Settings {
                    chunk_fraction: -0.1,
                    ..Default::default()
                },
                "chunk_fraction",
            ),
            (
                Settings {
                    table_block_bytes: 10,
                    ..Default::default()
                },
                "table_block_bytes",
            ),
            (
                Settings {
                    max_key_bytes: 0,
                    ..Default::default()
                },
                "max_key_bytes",
            ),
            (
                Settings {
                    compaction_threads: 0,
                    ..Default::default()
                },
                "compaction_threads",
            ),
        ];
        for (s, needle) in cases {
            let e = s.validate().unwrap_err();
            assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
            assert!(
                e.to_string().contains(needle),
                "{e} should mention {needle}"
            );
        }
    }

    #[test]
    fn split_follows_fractions() {
        let s = Settings::default();
        let m = s.split();
        assert_eq!(m.hot, (256u64 << 20) as usize * 2 / 5);
        assert!(m.hot + m.chunks + m.block_cache + m.write_buffers <= 256 << 20);
    }
}
