//! The one writer of table files: a sorted stream of versions of one state table is grouped
//! by user key, collapsed ([`collapse_filtered`]: snapshots, merges, the compaction filter)
//! and written as table files. Level-0 flushes (of chunks and of hot entries) and
//! compaction both write through [`write_run`].
//!
//! Invariant: a run either returns every file it wrote or deletes them all; the caller
//! commits the returned files to a version, so nothing half-written is ever referenced.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use super::collapse::{collapse_filtered, CollapseContext, KeyVersion};
use super::options::TreeHooks;
use super::version::{table_path, FileMeta};
use crate::error::{Error, Result};
use crate::iter::InternalIterator;
use crate::key::{self, SeqNo, ValueKind};
use crate::storage::Storage;
use crate::table::{TableBuildOptions, TableBuilder, TableProperties};

/// What one run writes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunSpec {
    /// The state table the versions belong to.
    pub table_id: u32,
    /// True if no older version of any key can exist below the output.
    pub bottommost: bool,
    /// Start a new file once the current one reaches this size (`None`: one file).
    pub split_bytes: Option<u64>,
    /// Table file settings for the output level.
    pub build: TableBuildOptions,
}

/// Where a run writes and how it names its files.
pub(crate) struct RunTarget<'a> {
    pub storage: &'a Arc<dyn Storage>,
    pub hooks: &'a dyn TreeHooks,
    /// The tree's next file number.
    pub next_file: &'a AtomicU64,
    /// Set when the tree shuts down: the run stops with [`Error::Closed`].
    pub shutdown: &'a AtomicBool,
    /// Sync each file before returning it ([`TreeOptions::sync_writes`](super::options::TreeOptions)).
    pub sync: bool,
}

/// Writes the versions of `input` from its current position to its end. Returns the files
/// written, in key order (none if every version collapsed away). On any error the files
/// written so far are deleted.
pub(crate) fn write_run(
    target: &RunTarget<'_>,
    spec: RunSpec,
    input: &mut dyn InternalIterator,
) -> Result<Vec<FileMeta>> {
    let mut outputs = Vec::new();
    let r = write_run_into(target, spec, input, &mut outputs);
    if let Err(e) = r {
        for o in &outputs {
            let _ = target.storage.delete(&table_path(o.number));
        }
        return Err(e);
    }
    Ok(outputs)
}

fn write_run_into(
    target: &RunTarget<'_>,
    spec: RunSpec,
    it: &mut dyn InternalIterator,
    outputs: &mut Vec<FileMeta>,
) -> Result<()> {
    let snapshots = target.hooks.snapshots();
    let merge = target.hooks.merge_operator(spec.table_id);
    let filter = target.hooks.compaction_filter(spec.table_id);
    let cx = CollapseContext {
        snapshots: &snapshots,
        merge: merge.as_deref(),
        bottommost: spec.bottommost,
        filter: filter.as_deref(),
    };
    let mut builder: Option<TableBuilder> = None;
    let mut cur_key: Vec<u8> = Vec::new();
    // A key's first version stays in reused buffers; only a key with a second version
    // (or one the fast path below cannot take) goes through `versions` and the collapse.
    let mut first: Option<(SeqNo, ValueKind)> = None;
    let mut first_value: Vec<u8> = Vec::new();
    let mut versions: Vec<KeyVersion> = Vec::new();
    let mut ikey: Vec<u8> = Vec::new();
    loop {
        let at_end = !it.valid();
        if !at_end && target.shutdown.load(Ordering::Relaxed) {
            return Err(Error::Closed);
        }
        let pk = if at_end {
            None
        } else {
            Some(key::parse(it.key()).ok_or_else(|| {
                Error::corruption(
                    format!("input of a table {} write", spec.table_id),
                    "malformed key",
                )
            })?)
        };
        let new_key = pk.is_some_and(|p| p.user_key != cur_key.as_slice());
        let ended = if at_end || new_key {
            first.take()
        } else {
            None
        };
        if let Some((seq, kind)) = ended {
            let b = builder.get_or_insert_with(|| {
                let mut b = TableBuilder::new(spec.build, spec.table_id);
                // A file ends a little past the split size (its last block, the index,
                // filter and footer); a run without a split size sizes as it goes.
                if let Some(s) = spec.split_bytes {
                    b.reserve(s as usize + s as usize / 8);
                }
                b
            });
            // The common case: one version that is a put, or a tombstone above the
            // bottom, with no compaction filter — the collapse would keep it as it is.
            if versions.is_empty()
                && cx.filter.is_none()
                && (kind == ValueKind::Put || (kind == ValueKind::Delete && !spec.bottommost))
            {
                check_entry_size(spec.table_id, &cur_key, &first_value)?;
                ikey.clear();
                key::append_internal_key(&mut ikey, &cur_key, seq, kind);
                b.add(&ikey, &first_value);
            } else {
                if versions.is_empty() {
                    versions.push((seq, kind, Bytes::copy_from_slice(&first_value)));
                }
                for (seq, kind, v) in collapse_filtered(&cur_key, &versions, cx) {
                    check_entry_size(spec.table_id, &cur_key, &v)?;
                    b.add(&key::internal_key(&cur_key, seq, kind), &v);
                }
                versions.clear();
            }
            let full = |b: &TableBuilder| spec.split_bytes.is_some_and(|s| b.estimated_size() >= s);
            if builder.as_ref().is_some_and(full) {
                let b = builder.take().expect("checked");
                outputs.push(finish_table(target, b)?);
            }
        }
        let Some(pk) = pk else {
            break;
        };
        match first {
            None => {
                cur_key.clear();
                cur_key.extend_from_slice(pk.user_key);
                first = Some((pk.seq, pk.kind));
                first_value.clear();
                first_value.extend_from_slice(it.value());
            }
            Some((seq, kind)) => {
                if versions.is_empty() {
                    versions.push((seq, kind, Bytes::copy_from_slice(&first_value)));
                }
                versions.push((pk.seq, pk.kind, Bytes::copy_from_slice(it.value())));
            }
        }
        it.next();
    }
    it.status()?;
    if let Some(b) = builder.take().filter(|b| b.entries() > 0) {
        outputs.push(finish_table(target, b)?);
    }
    Ok(())
}

/// Refuses an entry too large for a block (a merged value near 4 GiB): the write fails,
/// and the caller poisons the tree, instead of writing offsets that wrap.
pub(crate) fn check_entry_size(table_id: u32, key: &[u8], value: &[u8]) -> Result<()> {
    if key.len() + value.len() > crate::block::MAX_ENTRY_BYTES {
        return Err(Error::invalid(format!(
            "a value of {} bytes in table {table_id} exceeds the largest block entry",
            value.len()
        )));
    }
    Ok(())
}

/// Numbers, encodes and stores one table file. A failed store leaves no file behind.
pub(crate) fn finish_table(target: &RunTarget<'_>, b: TableBuilder) -> Result<FileMeta> {
    let number = target.next_file.fetch_add(1, Ordering::SeqCst);
    let (bytes, props) = b.finish();
    let size = bytes.len() as u64;
    let checksum = crc32fast::hash(&bytes);
    let path = table_path(number);
    let stored = target.storage.put(&path, bytes).and_then(|()| {
        if target.sync {
            target.storage.sync(&path)
        } else {
            Ok(())
        }
    });
    if let Err(e) = stored {
        let _ = target.storage.delete(&path);
        return Err(e);
    }
    Ok(file_meta(number, size, checksum, props))
}

fn file_meta(number: u64, size: u64, checksum: u32, p: TableProperties) -> FileMeta {
    FileMeta {
        number,
        table_id: p.table_id,
        size,
        entries: p.entries,
        deletes: p.deletes,
        min_seq: p.min_seq,
        max_seq: p.max_seq,
        smallest: p.smallest,
        largest: p.largest,
        checksum,
        origin: None,
        filter: None,
    }
}
