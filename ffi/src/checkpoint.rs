//! Checkpoints, savepoints, their release, and restore / rescale from them.

use std::ffi::c_char;

use strata::{CheckpointInfo, CheckpointStore, KeyGroups, PendingCheckpoint, RestoreSource};

use crate::db::strata_db;
use crate::need;
use crate::options::{strata_options, strata_store};
use crate::{
    call, destroy_call, give_handle, give_string, handle, handle_mut, invalid, opt_string, out_ptr,
    strata_status, FfiResult, Status,
};

/// Where checkpoints go: a store and a directory-like prefix in it. Thread-safe; the
/// instances of one job may share one.
pub struct strata_checkpoint_store {
    store: CheckpointStore,
}

/// A checkpoint store in `store` under `dir` (e.g. `"job-7/"`; must not be a database's
/// own `sst/` or `manifest/`).
#[no_mangle]
pub unsafe extern "C" fn strata_checkpoint_store_create(
    store: *const strata_store,
    dir: *const c_char,
    out: *mut *mut strata_checkpoint_store,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        let s = handle(store, "store")?.storage.clone();
        let store = CheckpointStore::new(s, opt_string(dir, "dir")?.unwrap_or(""))?;
        give_handle(strata_checkpoint_store { store }, out)?;
        Ok(Status::STRATA_OK)
    })
}

/// Destroys a checkpoint store handle.
#[no_mangle]
pub unsafe extern "C" fn strata_checkpoint_store_destroy(
    cs: *mut strata_checkpoint_store,
) -> strata_status {
    destroy_call(cs, "checkpoint store")
}

/// The confirmed checkpoints in the store as a JSON array of objects (`checkpoint_id`,
/// `db_id`, `path`), in `*out`.
#[no_mangle]
pub unsafe extern "C" fn strata_checkpoint_store_list_json(
    cs: *const strata_checkpoint_store,
    out: *mut *mut c_char,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        let list: Vec<serde_json::Value> = handle(cs, "checkpoint store")?
            .store
            .list()?
            .into_iter()
            .map(|r| {
                serde_json::json!({
                    "checkpoint_id": r.checkpoint_id, "db_id": r.db_id, "path": r.path,
                })
            })
            .collect();
        give_string(&serde_json::Value::Array(list).to_string(), out)?;
        Ok(Status::STRATA_OK)
    })
}

/// What a completed checkpoint (or savepoint) wrote.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct strata_checkpoint_info {
    /// Checkpoint id.
    pub checkpoint_id: u64,
    /// Identity of the database that wrote it.
    pub db_id: u64,
    /// Table files it references.
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
    /// Files copied into the checkpoint store by this checkpoint.
    pub files_uploaded: u64,
    /// Bytes copied into the checkpoint store by this checkpoint.
    pub bytes_uploaded: u64,
    /// Files the store copied itself (server-side).
    pub files_copied_in_store: u64,
    /// Microseconds of the synchronous part (the flush).
    pub sync_micros: u64,
    /// Microseconds from the call until the manifest was written.
    pub total_micros: u64,
}

fn info_out(i: &CheckpointInfo, out: *mut strata_checkpoint_info) -> FfiResult<()> {
    if out.is_null() {
        return Ok(()); // the info is optional
    }
    *out_ptr(out, "info")? = strata_checkpoint_info {
        checkpoint_id: i.reference.checkpoint_id,
        db_id: i.reference.db_id,
        files: i.files as u64,
        bytes: i.bytes,
        files_uploaded: i.files_uploaded as u64,
        bytes_uploaded: i.bytes_uploaded,
        files_copied_in_store: i.files_copied_in_store as u64,
        sync_micros: i.sync_duration.as_micros() as u64,
        total_micros: i.total_duration.as_micros() as u64,
    };
    Ok(())
}

fn target<'a>(cs: *const strata_checkpoint_store) -> FfiResult<Option<&'a CheckpointStore>> {
    if cs.is_null() {
        Ok(None)
    } else {
        Ok(Some(&handle(cs, "checkpoint store")?.store))
    }
}

/// Takes checkpoint `id` and waits until it is confirmed: into `cs`, or with `cs` NULL in
/// the database's own store (files referenced in place). `*info` (may be NULL) gets what it
/// wrote. `STRATA_BUSY` if this database already wrote checkpoint `id` there.
#[no_mangle]
pub unsafe extern "C" fn strata_checkpoint(
    db: *const strata_db,
    id: u64,
    cs: *const strata_checkpoint_store,
    info: *mut strata_checkpoint_info,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let d = &handle(db, "db")?.db;
        let i = d.checkpoint(id, target(cs)?)?.wait()?;
        info_out(&i, info)?;
        Ok(Status::STRATA_OK)
    })
}

/// A checkpoint whose flush is done and whose upload may still run (writes may go on).
/// Not thread-safe.
pub struct strata_pending_checkpoint {
    pending: Option<PendingCheckpoint>,
}

/// Starts checkpoint `id` (as `strata_checkpoint`) and returns once its synchronous part,
/// the flush, is done; `strata_pending_checkpoint_wait` waits for the rest.
#[no_mangle]
pub unsafe extern "C" fn strata_checkpoint_start(
    db: *const strata_db,
    id: u64,
    cs: *const strata_checkpoint_store,
    out: *mut *mut strata_pending_checkpoint,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        let d = &handle(db, "db")?.db;
        let pending = Some(d.checkpoint(id, target(cs)?)?);
        give_handle(strata_pending_checkpoint { pending }, out)?;
        Ok(Status::STRATA_OK)
    })
}

/// Waits until the checkpoint is confirmed (or failed: then no manifest exists and every
/// earlier checkpoint is intact). A second wait is `STRATA_INVALID_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn strata_pending_checkpoint_wait(
    p: *mut strata_pending_checkpoint,
    info: *mut strata_checkpoint_info,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let pc = handle_mut(p, "pending checkpoint")?;
        let Some(pending) = pc.pending.take() else {
            return Err(invalid("the checkpoint was already waited for"));
        };
        let i = pending.wait()?;
        info_out(&i, info)?;
        Ok(Status::STRATA_OK)
    })
}

/// Destroys the handle, waiting for the checkpoint first if nobody did.
#[no_mangle]
pub unsafe extern "C" fn strata_pending_checkpoint_destroy(
    p: *mut strata_pending_checkpoint,
) -> strata_status {
    destroy_call(p, "pending checkpoint")
}

impl Drop for strata_pending_checkpoint {
    fn drop(&mut self) {
        if let Some(p) = self.pending.take() {
            let _ = p.wait();
        }
    }
}

/// Drops checkpoint `id` this database wrote into `cs` (NULL: its own store); deletes the
/// files nothing else references.
#[no_mangle]
pub unsafe extern "C" fn strata_release_checkpoint(
    db: *const strata_db,
    id: u64,
    cs: *const strata_checkpoint_store,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        handle(db, "db")?.db.release_checkpoint(id, target(cs)?)?;
        Ok(Status::STRATA_OK)
    })
}

/// Releases every checkpoint this database wrote into `cs` (NULL: its own store) with an
/// id below `id`.
#[no_mangle]
pub unsafe extern "C" fn strata_subsume_checkpoints(
    db: *const strata_db,
    id: u64,
    cs: *const strata_checkpoint_store,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        handle(db, "db")?.db.subsume_checkpoints(id, target(cs)?)?;
        Ok(Status::STRATA_OK)
    })
}

/// An inclusive key-group range.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct strata_key_groups {
    /// First key group.
    pub first: u16,
    /// Last key group (inclusive).
    pub last: u16,
}

fn key_groups(kg: *const strata_key_groups) -> FfiResult<Option<KeyGroups>> {
    if kg.is_null() {
        return Ok(None);
    }
    // SAFETY: non-null, points to a strata_key_groups per the header.
    let k = unsafe { *kg };
    if k.first > k.last {
        return Err(invalid("key-group range is empty (first > last)"));
    }
    Ok(Some(KeyGroups {
        first: k.first,
        last: k.last,
    }))
}

/// Writes savepoint `id` into `cs`: the visible state of key groups `*kg` (NULL: all) in a
/// self-contained form any later version imports with `strata_restore`. Slow: it reads
/// and writes all the state.
#[no_mangle]
pub unsafe extern "C" fn strata_savepoint(
    db: *const strata_db,
    id: u64,
    cs: *const strata_checkpoint_store,
    kg: *const strata_key_groups,
    info: *mut strata_checkpoint_info,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let d = &handle(db, "db")?.db;
        let store = &handle(cs, "checkpoint store")?.store;
        let i = d.savepoint(id, store, key_groups(kg)?)?;
        info_out(&i, info)?;
        Ok(Status::STRATA_OK)
    })
}

/// Creates a database in `path` (or the options' store), which must hold none yet, from
/// checkpoints, and opens it: for each i < `n`, every database's checkpoint `ids[i]` in
/// `stores[i]` (several: scale-in; they must cover disjoint key groups). `kg` (may be
/// NULL) restricts it to those key groups (scale-out). Time is proportional to metadata:
/// the files are read in place, never deleted by the new database. A missing or damaged
/// file is `STRATA_CORRUPTION` naming it, and nothing is created.
#[no_mangle]
pub unsafe extern "C" fn strata_restore(
    opts: *const strata_options,
    path: *const c_char,
    stores: *const *const strata_checkpoint_store,
    ids: *const u64,
    n: usize,
    kg: *const strata_key_groups,
    out: *mut *mut strata_db,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        let o = handle(opts, "options")?;
        if n == 0 || stores.is_null() || ids.is_null() {
            return Err(invalid("restore needs at least one (store, checkpoint id)"));
        }
        if n > 1 << 16 {
            return Err(invalid(format!("{n} restore sources")));
        }
        // SAFETY: non-null arrays of `n` (bounded) entries each, per the header.
        let (ss, is) = unsafe {
            (
                std::slice::from_raw_parts(stores, n),
                std::slice::from_raw_parts(ids, n),
            )
        };
        let mut sources = Vec::new();
        for (s, id) in ss.iter().zip(is) {
            let store = &handle(*s, "checkpoint store")?.store;
            sources.extend(RestoreSource::all(store, *id)?);
        }
        let path = opt_string(path, "path")?;
        let db = o.builder(path)?.restore(&sources, key_groups(kg)?)?;
        give_handle(strata_db { db }, out)?;
        Ok(Status::STRATA_OK)
    })
}
