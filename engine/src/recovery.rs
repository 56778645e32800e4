//! Recovery at open: what the manifest and the WAL gave back ([`RecoveryInfo`]), and WAL
//! replay.
//!
//! Invariant: replay applies exactly the acknowledged writes that no table file holds yet —
//! for one key, table files always hold a prefix of its history, so an operation is already
//! there exactly when the key's newest version in table files is at least as new.

use std::sync::atomic::Ordering;

use strata_dfs::key::SeqNo;
use strata_dfs::{Error, Result};

use crate::inner::Inner;
use crate::settings::WalRecovery;
use crate::wal::{list_wals, read_wal, wal_path};

/// What opening the database recovered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryInfo {
    /// Manifest generation loaded (0 for a new database).
    pub manifest_generation: u64,
    /// Unreferenced table files deleted.
    pub orphans_deleted: usize,
    /// Write batches replayed from the WAL.
    pub wal_batches_replayed: u64,
    /// Bytes of torn WAL tail ignored.
    pub wal_torn_bytes: u64,
    /// Damaged WAL bytes skipped ([`crate::WalRecovery::SkipAnyCorruptedRecords`]).
    pub wal_skipped_bytes: u64,
    /// Where point-in-time recovery stopped at damage followed by valid records (file and
    /// offset; [`crate::WalRecovery::PointInTime`]).
    pub wal_stopped_at: Option<String>,
}

impl Inner {
    /// Replays the WAL files from `log_number` on (writes after `durable_seq`), then (unless
    /// `read_only`) makes them durable with a flush and starts a fresh WAL.
    pub(crate) fn recover_wal(
        &self,
        log_number: u64,
        durable_seq: SeqNo,
        read_only: bool,
        info: &mut RecoveryInfo,
    ) -> Result<()> {
        let Some(dir) = &self.wal_dir else {
            return Ok(());
        };
        let all = list_wals(dir)?;
        // A crash between creating a WAL and committing the manifest that names it leaves
        // a WAL numbered at or above the recovered next file number: never reuse it.
        if let Some(&max) = all.iter().max() {
            self.middle.reserve_file_numbers_through(max);
        }
        let mode = self.settings.wal_recovery;
        if log_number > 0 && !all.contains(&log_number) {
            let path = wal_path(dir, log_number);
            match mode {
                WalRecovery::TolerateCorruptedTail | WalRecovery::AbsoluteConsistency => {
                    return Err(Error::corruption(
                        path.display(),
                        "missing: the manifest names this WAL as holding acknowledged writes",
                    ));
                }
                WalRecovery::PointInTime => {
                    info.wal_stopped_at = Some(format!("{} (missing)", path.display()));
                }
                WalRecovery::SkipAnyCorruptedRecords => {}
            }
        }
        let numbers: Vec<u64> = all.into_iter().filter(|&n| n >= log_number).collect();
        for &n in &numbers {
            if info.wal_stopped_at.is_some() {
                break;
            }
            let c = read_wal(dir, n, mode)?;
            info.wal_torn_bytes += c.torn_bytes;
            info.wal_skipped_bytes += c.skipped_bytes;
            if let Some(at) = c.stopped_at {
                info.wal_stopped_at =
                    Some(format!("{} at offset {at}", wal_path(dir, n).display()));
            }
            for (first, batch) in c.batches {
                let last = first + batch.len() as u64 - 1;
                if last <= durable_seq {
                    continue;
                }
                self.validate_ops(&batch)?;
                // A chunk flush may have written some of these writes to table files
                // already: for one key, table files always hold a prefix of its history, so
                // an operation is there exactly when the key's newest version below is at
                // least as new. Re-applying it would apply a merge operand twice.
                let mut todo = Vec::with_capacity(batch.ops.len());
                for (op, seq) in batch.ops.iter().zip(first..) {
                    let below = self.middle.newest_seq_in_tables(op.table, &op.key)?;
                    if below.is_none_or(|b| b < seq) {
                        todo.push((op, seq));
                    }
                }
                self.apply_ops(todo.into_iter());
                self.last_seq.fetch_max(last, Ordering::SeqCst);
                info.wal_batches_replayed += 1;
            }
        }
        if read_only || (!self.settings.wal_enabled && numbers.is_empty()) {
            return Ok(()); // read-only: the replayed writes stay in memory
        }
        // Make the replayed writes durable in table files and start a fresh WAL.
        if self.settings.wal_enabled || info.wal_batches_replayed > 0 {
            self.flush()?;
        }
        if !self.settings.wal_enabled {
            for n in list_wals(dir)? {
                let _ = std::fs::remove_file(wal_path(dir, n));
            }
        }
        Ok(())
    }
}
