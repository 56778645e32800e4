//! The write path: validating operations, group commit with the WAL, applying writes to the
//! hot tier with sequence numbers, read-modify-write, and the write-stall hand-off to the
//! middle tier.
//!
//! Invariant: sequence numbers are assigned, WAL records appended and writes applied under
//! the apply lock, and `last_seq` is published only after every write up to it is applied,
//! so a reader (or snapshot) at `last_seq` sees whole batches.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use strata_chunkcache::HotWrite;
use strata_dfs::key::{SeqNo, MAX_SEQ};
use strata_dfs::{Error, MergeOperator, ReadTier, Result, ValueKind};

use crate::batch::{Op, Owner, WriteBatch};
use crate::catalog::{Table, TableEntry};
use crate::commit::ApplyState;
use crate::inner::Inner;

/// The function of a read-modify-write: current value in, new value (or delete) out.
pub(crate) type UpdateFn<'a> = dyn FnMut(Option<&[u8]>) -> Option<Vec<u8>> + 'a;

impl Inner {
    /// Checks a caller's batch: its handles are this database's, and every operation is
    /// valid.
    pub(crate) fn validate_batch(&self, batch: &WriteBatch) -> Result<()> {
        match batch.owner {
            Owner::Db(d) if d == self.hooks.db_id() => {}
            Owner::None if batch.is_empty() => {}
            _ => {
                return Err(Error::invalid(
                    "the batch uses table handles of another database",
                ))
            }
        }
        self.validate_ops(batch)
    }

    /// Checks every operation of a batch against its table and the size limits (also for
    /// batches replayed from the WAL, which carry table ids, not handles).
    pub(crate) fn validate_ops(&self, batch: &WriteBatch) -> Result<()> {
        batch.ops.iter().try_for_each(|op| {
            let t = self
                .hooks
                .tables
                .get(op.table)
                .ok_or_else(|| Error::invalid(format!("unknown table id {}", op.table)))?;
            self.check_op(op.kind, t, &op.key, &op.value).map(drop)
        })
    }

    /// Checks one operation against the table and the size limits; returns the table's
    /// merge operator.
    fn check_op<'t>(
        &self,
        kind: ValueKind,
        t: &'t TableEntry,
        key: &[u8],
        value: &[u8],
    ) -> Result<Option<&'t dyn MergeOperator>> {
        if key.len() > self.settings.max_key_bytes {
            return Err(Error::invalid(format!(
                "key of {} bytes exceeds max_key_bytes {}",
                key.len(),
                self.settings.max_key_bytes
            )));
        }
        if value.len() > self.settings.max_value_bytes {
            return Err(Error::invalid(format!(
                "value of {} bytes exceeds max_value_bytes {}",
                value.len(),
                self.settings.max_value_bytes
            )));
        }
        if kind == ValueKind::Merge && t.merge.is_none() {
            return Err(Error::invalid(format!(
                "table {:?} has no merge operator",
                t.name
            )));
        }
        Ok(t.merge.as_deref())
    }

    /// One put, delete or merge. Without the WAL there is nothing to group, so it skips the
    /// group-commit queue and copies nothing but the key into the hot tier.
    pub(crate) fn write_one(
        self: &Arc<Self>,
        kind: ValueKind,
        table: &Table,
        key: &[u8],
        value: &[u8],
    ) -> Result<()> {
        if self.settings.wal_enabled {
            let mut b = WriteBatch::new();
            match kind {
                ValueKind::Put => b.put(table, key, value),
                ValueKind::Delete => b.delete(table, key),
                ValueKind::Merge => b.merge(table, key, value),
            };
            return self.write(b);
        }
        self.check_writable()?;
        let merge = self.check_op(kind, self.hooks.entry(table)?, key, value)?;
        {
            let _st = self.apply.lock();
            self.middle.check_poison()?;
            let seq = self.last_seq.load(Ordering::SeqCst) + 1;
            self.middle.apply(
                table.id,
                key,
                HotWrite {
                    seq,
                    kind,
                    value,
                    merge,
                    latest_snapshot: self.hooks.snapshots.latest(),
                },
            );
            self.last_seq.store(seq, Ordering::SeqCst);
        }
        self.middle.after_write()
    }

    /// Applies `batch` atomically through the group-commit queue.
    pub(crate) fn write(self: &Arc<Self>, batch: WriteBatch) -> Result<()> {
        self.check_writable()?;
        if batch.is_empty() {
            return Ok(());
        }
        self.validate_batch(&batch)?;
        let (r, led) = self.commits.submit(batch, |group| {
            let mut st = self.apply.lock();
            self.commit_locked(&mut st, group)
        });
        r?;
        if led {
            self.maybe_flush_wal();
            self.middle.after_write()?;
        }
        Ok(())
    }

    /// Assigns sequence numbers, appends the WAL records with one write, applies the
    /// batches to the hot tier and publishes the last sequence number. REQUIRES: the apply
    /// lock (`st`).
    fn commit_locked(&self, st: &mut ApplyState, batches: &[&WriteBatch]) -> Result<()> {
        self.middle.check_poison()?;
        let base = self.last_seq.load(Ordering::SeqCst);
        let mut seq = base;
        let mut firsts = Vec::with_capacity(batches.len());
        for b in batches {
            firsts.push(seq + 1);
            seq += b.len() as u64;
        }
        if let Some(w) = &mut st.wal {
            let payloads: Vec<Vec<u8>> = batches
                .iter()
                .zip(&firsts)
                .map(|(b, &f)| b.encode(f))
                .collect();
            if let Err(e) = w.append(&payloads) {
                self.middle.poison(&format!("WAL write failed: {e}"));
                return Err(e);
            }
            self.wal_bytes.store(w.bytes(), Ordering::Relaxed);
        }
        for (b, &first) in batches.iter().zip(&firsts) {
            self.apply_ops(b.ops.iter().zip(first..));
        }
        self.last_seq.store(seq, Ordering::SeqCst);
        Ok(())
    }

    /// Atomic read-modify-write of `key`.
    pub(crate) fn update(
        self: &Arc<Self>,
        table: &Table,
        key: &[u8],
        f: &mut UpdateFn<'_>,
    ) -> Result<()> {
        self.check_writable()?;
        let merge = self.table_merge(table)?.map(|m| &**m);
        if key.len() > self.settings.max_key_bytes {
            return Err(Error::invalid("key exceeds max_key_bytes"));
        }
        {
            // Every write applies under the apply lock, so nothing can change the key
            // between this read and the write.
            let mut st = self.apply.lock();
            let current = self
                .middle
                .get(table.id, key, MAX_SEQ, merge, true, ReadTier::All)?;
            let mut batch = WriteBatch::new();
            match f(current.as_deref()) {
                Some(v) => batch.put(table, key, &v),
                None => batch.delete(table, key),
            };
            self.validate_batch(&batch)?;
            self.commit_locked(&mut st, &[&batch])?;
        }
        self.maybe_flush_wal();
        self.middle.after_write()
    }

    /// Applies operations with their sequence numbers, all at once for point readers.
    pub(crate) fn apply_ops<'a>(&self, ops: impl Iterator<Item = (&'a Op, SeqNo)>) {
        let tables = &self.hooks.tables;
        let latest_snapshot = self.hooks.snapshots.latest();
        let writes: Vec<(u32, &[u8], HotWrite<'_>)> = ops
            .map(|(o, seq)| {
                (
                    o.table,
                    o.key.as_slice(),
                    HotWrite {
                        seq,
                        kind: o.kind,
                        value: &o.value,
                        merge: tables.get(o.table).and_then(|t| t.merge.as_deref()),
                        latest_snapshot,
                    },
                )
            })
            .collect();
        match writes.as_slice() {
            [] => {}
            [(t, k, w)] => self.middle.apply(*t, k, *w),
            _ => self.middle.apply_all(&writes),
        }
    }
}
