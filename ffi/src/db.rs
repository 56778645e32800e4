//! The database: open/close, tables, reads and writes, write batches, snapshots,
//! iterators, maintenance and statistics.

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use strata::{CompactionFilter, Db, DbIterator, FilterDecision, Snapshot, Table, WriteBatch};

use crate::options::{
    strata_destructor_fn, strata_options, strata_table_options, take_malloced, Callback,
};
use crate::{borrowed, found, need};
use crate::{
    bytes, call, destroy_call, give_bytes, give_handle, give_string, handle, handle_mut, invalid,
    out_ptr, strata_status, string, FfiResult, Status,
};

/// An open database. Thread-safe: every function taking a `strata_db` may be called from
/// several threads at once (but not `strata_db_destroy` while others still use it).
pub struct strata_db {
    pub(crate) db: Db,
}

impl strata_db {
    /// The Rust handle of the database, for Rust code that mixes both APIs (benchmarks).
    pub fn rust(&self) -> &Db {
        &self.db
    }
}

/// A state table of one database (like a RocksDB column family handle). Thread-safe;
/// destroying it does not drop the table.
pub struct strata_table {
    pub(crate) table: Table,
}

/// Opens (or creates) the database in directory `path` (NULL when the options name a
/// store) with `opts`; the handle goes to `*out`.
#[no_mangle]
pub unsafe extern "C" fn strata_db_open(
    path: *const c_char,
    opts: *const strata_options,
    out: *mut *mut strata_db,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        let o = crate::handle(opts, "options")?;
        let path = crate::opt_string(path, "path")?;
        let db = o.builder(path)?.open()?;
        give_handle(strata_db { db }, out)?;
        Ok(Status::STRATA_OK)
    })
}

/// Closes the database: flushes memory to table files (per `flush_on_close`) and stops
/// background work. The handle stays valid (calls then return `STRATA_CLOSED`) until
/// `strata_db_destroy`. Returns the close's error, if any.
#[no_mangle]
pub unsafe extern "C" fn strata_db_close(
    db: *const strata_db,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        handle(db, "db")?.db.close()?;
        Ok(Status::STRATA_OK)
    })
}

/// Closes the database if it is still open (errors are dropped: call `strata_db_close`
/// first to see them) and frees the handle.
#[no_mangle]
pub unsafe extern "C" fn strata_db_destroy(db: *mut strata_db) -> strata_status {
    if let Ok(d) = handle(db, "db") {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| d.db.close()));
    }
    destroy_call(db, "db")
}

fn table_arg<'a>(t: *const strata_table) -> FfiResult<&'a Table> {
    Ok(&handle(t, "table")?.table)
}

fn db_arg<'a>(d: *const strata_db) -> FfiResult<&'a Db> {
    Ok(&handle(d, "db")?.db)
}

// ---------------------------------------------------------------------------------------
// Tables

/// The default table (always present).
#[no_mangle]
pub unsafe extern "C" fn strata_db_default_table(
    db: *const strata_db,
    out: *mut *mut strata_table,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        let table = db_arg(db)?.default_table();
        give_handle(strata_table { table }, out)?;
        Ok(Status::STRATA_OK)
    })
}

/// Looks a table up by name: `STRATA_NOT_FOUND` if the database has none of that name.
#[no_mangle]
pub unsafe extern "C" fn strata_db_table(
    db: *const strata_db,
    name: *const c_char,
    out: *mut *mut strata_table,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        let d = db_arg(db)?;
        let name = string(name, "name")?;
        found(d.table(name), |table| {
            give_handle(strata_table { table }, out)
        })
    })
}

/// Creates table `name` with `opts` (NULL: defaults), or returns the existing one if its
/// options are the same (different options are `STRATA_INVALID_ARGUMENT`).
#[no_mangle]
pub unsafe extern "C" fn strata_db_create_table(
    db: *const strata_db,
    name: *const c_char,
    opts: *const strata_table_options,
    out: *mut *mut strata_table,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        let d = db_arg(db)?;
        let name = string(name, "name")?;
        let options = if opts.is_null() {
            strata::TableOptions::default()
        } else {
            handle(opts, "table options")?.options.clone()
        };
        let table = d.create_table(name, options)?;
        give_handle(strata_table { table }, out)?;
        Ok(Status::STRATA_OK)
    })
}

/// The names of every table, in `*out` (a `strata_values` list).
#[no_mangle]
pub unsafe extern "C" fn strata_db_tables(
    db: *const strata_db,
    out: *mut *mut strata_values,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        let names = db_arg(db)?
            .tables()
            .into_iter()
            .map(|t| Some(t.name().as_bytes().to_vec()))
            .collect();
        give_handle(strata_values { items: names }, out)?;
        Ok(Status::STRATA_OK)
    })
}

/// A table's options, as a new `strata_table_options` in `*out`.
#[no_mangle]
pub unsafe extern "C" fn strata_db_table_options(
    db: *const strata_db,
    table: *const strata_table,
    out: *mut *mut strata_table_options,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        let options = db_arg(db)?.table_options(table_arg(table)?)?;
        give_handle(strata_table_options { options }, out)?;
        Ok(Status::STRATA_OK)
    })
}

/// The table's name in `*out` (free with `strata_free`).
#[no_mangle]
pub unsafe extern "C" fn strata_table_name(
    table: *const strata_table,
    out: *mut *mut c_char,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        give_string(table_arg(table)?.name(), out)?;
        Ok(Status::STRATA_OK)
    })
}

/// The table's id in `*id`.
#[no_mangle]
pub unsafe extern "C" fn strata_table_id(
    table: *const strata_table,
    id: *mut u32,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(id, "id")?;
        *out_ptr(id, "id")? = table_arg(table)?.id();
        Ok(Status::STRATA_OK)
    })
}

/// Frees a table handle (the table itself stays).
#[no_mangle]
pub unsafe extern "C" fn strata_table_destroy(table: *mut strata_table) -> strata_status {
    destroy_call(table, "table")
}

// ---------------------------------------------------------------------------------------
// Writes

/// Sets `key` to `value`.
#[no_mangle]
pub unsafe extern "C" fn strata_put(
    db: *const strata_db,
    table: *const strata_table,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        db_arg(db)?.put(
            table_arg(table)?,
            bytes(key, key_len, "key")?,
            bytes(value, value_len, "value")?,
        )?;
        Ok(Status::STRATA_OK)
    })
}

/// Deletes `key` (a no-op if absent).
#[no_mangle]
pub unsafe extern "C" fn strata_delete(
    db: *const strata_db,
    table: *const strata_table,
    key: *const u8,
    key_len: usize,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        db_arg(db)?.delete(table_arg(table)?, bytes(key, key_len, "key")?)?;
        Ok(Status::STRATA_OK)
    })
}

/// Folds `operand` into `key` with the table's merge operator.
#[no_mangle]
pub unsafe extern "C" fn strata_merge(
    db: *const strata_db,
    table: *const strata_table,
    key: *const u8,
    key_len: usize,
    operand: *const u8,
    operand_len: usize,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        db_arg(db)?.merge(
            table_arg(table)?,
            bytes(key, key_len, "key")?,
            bytes(operand, operand_len, "operand")?,
        )?;
        Ok(Status::STRATA_OK)
    })
}

/// `strata_update` callback result: leave the value as it is.
pub const STRATA_UPDATE_KEEP: i32 = 0;
/// `strata_update` callback result: set the value to `*new_value` (malloc'ed by the callback).
pub const STRATA_UPDATE_SET: i32 = 1;
/// `strata_update` callback result: delete the key.
pub const STRATA_UPDATE_DELETE: i32 = 2;

/// A read-modify-write callback: gets the current value (`has_current` false: absent) and
/// returns a `STRATA_UPDATE_*` decision; for `STRATA_UPDATE_SET` it stores a `malloc`ed
/// buffer (the library frees it; NULL means empty) in `*new_value` and its length in
/// `*new_len`. It runs while the database holds its write lock: it must not call back
/// into the library.
pub type strata_update_fn = Option<
    unsafe extern "C" fn(
        ctx: *mut c_void,
        current: *const u8,
        current_len: usize,
        has_current: bool,
        new_value: *mut *mut u8,
        new_len: *mut usize,
    ) -> i32,
>;

/// Atomic read-modify-write of `key` through `f` (called once, with `ctx`). An unknown
/// decision from `f` is `STRATA_INVALID_ARGUMENT` and leaves the key unchanged.
#[no_mangle]
pub unsafe extern "C" fn strata_update(
    db: *const strata_db,
    table: *const strata_table,
    key: *const u8,
    key_len: usize,
    f: strata_update_fn,
    ctx: *mut c_void,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let d = db_arg(db)?;
        let t = table_arg(table)?;
        let key = bytes(key, key_len, "key")?;
        let Some(f) = f else {
            return Err(invalid("update callback is null"));
        };
        let mut bad = None;
        d.update(t, key, |cur| {
            let (cp, cl) = cur.map_or((std::ptr::null(), 0), |c| (c.as_ptr(), c.len()));
            let mut nv: *mut u8 = std::ptr::null_mut();
            let mut nl = 0usize;
            // SAFETY: the caller's callback with its context; pointers valid for the call.
            let decision = unsafe { f(ctx, cp, cl, cur.is_some(), &mut nv, &mut nl) };
            match decision {
                STRATA_UPDATE_KEEP => cur.map(<[u8]>::to_vec),
                STRATA_UPDATE_SET => Some(take_malloced(nv, nl)),
                STRATA_UPDATE_DELETE => None,
                other => {
                    bad = Some(other);
                    cur.map(<[u8]>::to_vec)
                }
            }
        })?;
        if let Some(b) = bad {
            return Err(invalid(format!(
                "update callback returned unknown decision {b}"
            )));
        }
        Ok(Status::STRATA_OK)
    })
}

/// A batch of writes applied atomically by `strata_write`. Not thread-safe.
pub struct strata_write_batch {
    batch: WriteBatch,
}

/// Creates an empty write batch.
#[no_mangle]
pub unsafe extern "C" fn strata_write_batch_create(
    out: *mut *mut strata_write_batch,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        give_handle(
            strata_write_batch {
                batch: WriteBatch::new(),
            },
            out,
        )?;
        Ok(Status::STRATA_OK)
    })
}

/// Destroys a write batch.
#[no_mangle]
pub unsafe extern "C" fn strata_write_batch_destroy(
    batch: *mut strata_write_batch,
) -> strata_status {
    destroy_call(batch, "write batch")
}

/// Adds a put to the batch.
#[no_mangle]
pub unsafe extern "C" fn strata_write_batch_put(
    batch: *mut strata_write_batch,
    table: *const strata_table,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let (t, k, v) = (
            table_arg(table)?,
            bytes(key, key_len, "key")?,
            bytes(value, value_len, "value")?,
        );
        handle_mut(batch, "write batch")?.batch.put(t, k, v);
        Ok(Status::STRATA_OK)
    })
}

/// Adds a delete to the batch.
#[no_mangle]
pub unsafe extern "C" fn strata_write_batch_delete(
    batch: *mut strata_write_batch,
    table: *const strata_table,
    key: *const u8,
    key_len: usize,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let (t, k) = (table_arg(table)?, bytes(key, key_len, "key")?);
        handle_mut(batch, "write batch")?.batch.delete(t, k);
        Ok(Status::STRATA_OK)
    })
}

/// Adds a merge to the batch.
#[no_mangle]
pub unsafe extern "C" fn strata_write_batch_merge(
    batch: *mut strata_write_batch,
    table: *const strata_table,
    key: *const u8,
    key_len: usize,
    operand: *const u8,
    operand_len: usize,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let (t, k, v) = (
            table_arg(table)?,
            bytes(key, key_len, "key")?,
            bytes(operand, operand_len, "operand")?,
        );
        handle_mut(batch, "write batch")?.batch.merge(t, k, v);
        Ok(Status::STRATA_OK)
    })
}

/// Empties the batch.
#[no_mangle]
pub unsafe extern "C" fn strata_write_batch_clear(
    batch: *mut strata_write_batch,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        handle_mut(batch, "write batch")?.batch.clear();
        Ok(Status::STRATA_OK)
    })
}

/// The number of operations in the batch, in `*count`.
#[no_mangle]
pub unsafe extern "C" fn strata_write_batch_count(
    batch: *const strata_write_batch,
    count: *mut usize,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(count, "count")?;
        *out_ptr(count, "count")? = handle(batch, "write batch")?.batch.len();
        Ok(Status::STRATA_OK)
    })
}

/// Applies the batch atomically (the batch is left as it is, for reuse or destroy).
#[no_mangle]
pub unsafe extern "C" fn strata_write(
    db: *const strata_db,
    batch: *const strata_write_batch,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let b = handle(batch, "write batch")?.batch.clone();
        db_arg(db)?.write(b)?;
        Ok(Status::STRATA_OK)
    })
}

// ---------------------------------------------------------------------------------------
// Reads

/// Reads `key`: `STRATA_OK` with a `malloc`ed copy in `*value` (free with `strata_free`)
/// and its length in `*value_len`, or `STRATA_NOT_FOUND`.
#[no_mangle]
pub unsafe extern "C" fn strata_get(
    db: *const strata_db,
    table: *const strata_table,
    key: *const u8,
    key_len: usize,
    value: *mut *mut u8,
    value_len: *mut usize,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(value, "value")?;
        need(value_len, "value_len")?;
        let v = db_arg(db)?.get(table_arg(table)?, bytes(key, key_len, "key")?)?;
        found(v, |v| give_bytes(&v, value, value_len))
    })
}

/// A value read without a copy into a C buffer: valid until `strata_pinned_destroy`.
/// Not thread-safe.
pub struct strata_pinned {
    value: Vec<u8>,
}

/// Reads `key` into a pinned value in `*out` (`STRATA_NOT_FOUND` if absent): the bytes are
/// borrowed from the handle (`strata_pinned_data`), not copied into a C buffer.
#[no_mangle]
pub unsafe extern "C" fn strata_get_pinned(
    db: *const strata_db,
    table: *const strata_table,
    key: *const u8,
    key_len: usize,
    out: *mut *mut strata_pinned,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        let v = db_arg(db)?.get(table_arg(table)?, bytes(key, key_len, "key")?)?;
        found(v, |value| give_handle(strata_pinned { value }, out))
    })
}

/// The pinned value's bytes (length in `*len`); NULL if `pinned` is not a live handle.
#[no_mangle]
pub unsafe extern "C" fn strata_pinned_data(
    pinned: *const strata_pinned,
    len: *mut usize,
) -> *const u8 {
    borrowed(pinned, len, |p| Some(&p.value))
}

/// Frees a pinned value.
#[no_mangle]
pub unsafe extern "C" fn strata_pinned_destroy(pinned: *mut strata_pinned) -> strata_status {
    destroy_call(pinned, "pinned value")
}

/// A list of optional byte strings (multi-get results, list elements, names). Not
/// thread-safe; entries are borrowed until `strata_values_destroy`.
pub struct strata_values {
    pub(crate) items: Vec<Option<Vec<u8>>>,
}

/// The number of entries in `*count`.
#[no_mangle]
pub unsafe extern "C" fn strata_values_count(
    values: *const strata_values,
    count: *mut usize,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(count, "count")?;
        *out_ptr(count, "count")? = handle(values, "values")?.items.len();
        Ok(Status::STRATA_OK)
    })
}

/// Entry `i`: `STRATA_OK` with a borrowed pointer in `*data` and length in `*len`, or
/// `STRATA_NOT_FOUND` for an absent entry (a key multi-get did not find);
/// `STRATA_INVALID_ARGUMENT` if `i` is out of range.
#[no_mangle]
pub unsafe extern "C" fn strata_values_get(
    values: *const strata_values,
    i: usize,
    data: *mut *const u8,
    len: *mut usize,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(data, "data")?;
        need(len, "len")?;
        let v = handle(values, "values")?;
        let Some(item) = v.items.get(i) else {
            return Err(invalid(format!(
                "index {i} out of range ({} entries)",
                v.items.len()
            )));
        };
        let (data, len) = (out_ptr(data, "data")?, out_ptr(len, "len")?);
        found(item.as_ref(), |b| {
            *data = b.as_ptr();
            *len = b.len();
            Ok(())
        })
    })
}

/// Frees a list.
#[no_mangle]
pub unsafe extern "C" fn strata_values_destroy(values: *mut strata_values) -> strata_status {
    destroy_call(values, "values")
}

/// Reads `n` keys of one table (`keys[i]`, `key_lens[i]`): results in `*out`, in key order
/// of the arguments, absent keys as absent entries.
#[no_mangle]
pub unsafe extern "C" fn strata_multi_get(
    db: *const strata_db,
    table: *const strata_table,
    keys: *const *const u8,
    key_lens: *const usize,
    n: usize,
    out: *mut *mut strata_values,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        let d = db_arg(db)?;
        let t = table_arg(table)?;
        let ks = key_array(keys, key_lens, n)?;
        let items = d.multi_get(t, &ks)?;
        give_handle(strata_values { items }, out)?;
        Ok(Status::STRATA_OK)
    })
}

/// `n` byte strings given as parallel pointer and length arrays.
pub(crate) fn key_array<'a>(
    keys: *const *const u8,
    lens: *const usize,
    n: usize,
) -> FfiResult<Vec<&'a [u8]>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    if keys.is_null() || lens.is_null() {
        return Err(invalid("key arrays are null"));
    }
    if n > isize::MAX as usize / 8 {
        return Err(invalid(format!("{n} keys")));
    }
    // SAFETY: non-null arrays of `n` entries each, per the header.
    let (ps, ls) = unsafe {
        (
            std::slice::from_raw_parts(keys, n),
            std::slice::from_raw_parts(lens, n),
        )
    };
    ps.iter()
        .zip(ls)
        .map(|(p, l)| bytes(*p, *l, "key"))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Snapshots

/// A consistent view of the database as of its creation. Thread-safe.
pub struct strata_snapshot {
    snap: Snapshot,
}

/// Takes a snapshot of everything written so far.
#[no_mangle]
pub unsafe extern "C" fn strata_snapshot_create(
    db: *const strata_db,
    out: *mut *mut strata_snapshot,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        let snap = db_arg(db)?.snapshot();
        give_handle(strata_snapshot { snap }, out)?;
        Ok(Status::STRATA_OK)
    })
}

/// Releases a snapshot (older versions it kept may then be compacted away).
#[no_mangle]
pub unsafe extern "C" fn strata_snapshot_destroy(snap: *mut strata_snapshot) -> strata_status {
    destroy_call(snap, "snapshot")
}

/// The snapshot's sequence number in `*seq`.
#[no_mangle]
pub unsafe extern "C" fn strata_snapshot_sequence(
    snap: *const strata_snapshot,
    seq: *mut u64,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(seq, "seq")?;
        *out_ptr(seq, "seq")? = handle(snap, "snapshot")?.snap.sequence();
        Ok(Status::STRATA_OK)
    })
}

/// Reads `key` as of the snapshot (like `strata_get`).
#[no_mangle]
pub unsafe extern "C" fn strata_snapshot_get(
    snap: *const strata_snapshot,
    table: *const strata_table,
    key: *const u8,
    key_len: usize,
    value: *mut *mut u8,
    value_len: *mut usize,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(value, "value")?;
        need(value_len, "value_len")?;
        let s = handle(snap, "snapshot")?;
        let v = s.snap.get(table_arg(table)?, bytes(key, key_len, "key")?)?;
        found(v, |v| give_bytes(&v, value, value_len))
    })
}

// ---------------------------------------------------------------------------------------
// Iterators

/// A forward iterator in key order over a consistent snapshot. Not thread-safe. The key
/// and value of the current entry are borrowed until the next `strata_iter_next` or
/// `strata_iter_destroy`.
pub struct strata_iterator {
    it: DbIterator,
}

fn range_args<'a>(
    start: *const u8,
    start_len: usize,
    end: *const u8,
    end_len: usize,
) -> FfiResult<(&'a [u8], Option<&'a [u8]>)> {
    let s = bytes(start, start_len, "start")?;
    let e = if end.is_null() {
        if end_len != 0 {
            return Err(invalid("end is null with a length"));
        }
        None
    } else {
        Some(bytes(end, end_len, "end")?)
    };
    Ok((s, e))
}

fn give_iter(it: DbIterator, out: *mut *mut strata_iterator) -> FfiResult {
    give_handle(strata_iterator { it }, out)?;
    Ok(Status::STRATA_OK)
}

/// Iterates keys in `[start, end)` (`end` NULL: to the table's end). The iterator starts
/// before the first entry: call `strata_iter_next` first.
#[no_mangle]
pub unsafe extern "C" fn strata_iter_range(
    db: *const strata_db,
    table: *const strata_table,
    start: *const u8,
    start_len: usize,
    end: *const u8,
    end_len: usize,
    out: *mut *mut strata_iterator,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        let (s, e) = range_args(start, start_len, end, end_len)?;
        give_iter(db_arg(db)?.range(table_arg(table)?, s, e)?, out)
    })
}

/// Iterates keys that start with `prefix`.
#[no_mangle]
pub unsafe extern "C" fn strata_iter_prefix(
    db: *const strata_db,
    table: *const strata_table,
    prefix: *const u8,
    prefix_len: usize,
    out: *mut *mut strata_iterator,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        let p = bytes(prefix, prefix_len, "prefix")?;
        give_iter(db_arg(db)?.prefix(table_arg(table)?, p)?, out)
    })
}

/// Like `strata_iter_range`, as of a snapshot.
#[no_mangle]
pub unsafe extern "C" fn strata_snapshot_iter_range(
    snap: *const strata_snapshot,
    table: *const strata_table,
    start: *const u8,
    start_len: usize,
    end: *const u8,
    end_len: usize,
    out: *mut *mut strata_iterator,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        let (s, e) = range_args(start, start_len, end, end_len)?;
        let sn = handle(snap, "snapshot")?;
        give_iter(sn.snap.range(table_arg(table)?, s, e)?, out)
    })
}

/// Like `strata_iter_prefix`, as of a snapshot.
#[no_mangle]
pub unsafe extern "C" fn strata_snapshot_iter_prefix(
    snap: *const strata_snapshot,
    table: *const strata_table,
    prefix: *const u8,
    prefix_len: usize,
    out: *mut *mut strata_iterator,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        let p = bytes(prefix, prefix_len, "prefix")?;
        let sn = handle(snap, "snapshot")?;
        give_iter(sn.snap.prefix(table_arg(table)?, p)?, out)
    })
}

/// Moves to the next entry: `STRATA_OK` when positioned on one, `STRATA_NOT_FOUND` at the
/// end (and after), or an error (the iterator is then at its end).
#[no_mangle]
pub unsafe extern "C" fn strata_iter_next(
    it: *mut strata_iterator,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let i = handle_mut(it, "iterator")?;
        if i.it.advance()? {
            Ok(Status::STRATA_OK)
        } else {
            Ok(Status::STRATA_NOT_FOUND)
        }
    })
}

/// The current key (length in `*len`), borrowed until the next move; NULL when the
/// iterator is not on an entry.
#[no_mangle]
pub unsafe extern "C" fn strata_iter_key(it: *const strata_iterator, len: *mut usize) -> *const u8 {
    borrowed(it, len, |i| i.it.valid().then(|| i.it.key()))
}

/// The current value (length in `*len`), borrowed until the next move; NULL when the
/// iterator is not on an entry.
#[no_mangle]
pub unsafe extern "C" fn strata_iter_value(
    it: *const strata_iterator,
    len: *mut usize,
) -> *const u8 {
    borrowed(it, len, |i| i.it.valid().then(|| i.it.value()))
}

/// Destroys an iterator.
#[no_mangle]
pub unsafe extern "C" fn strata_iter_destroy(it: *mut strata_iterator) -> strata_status {
    destroy_call(it, "iterator")
}

// ---------------------------------------------------------------------------------------
// Maintenance

/// Runs `action` on the database.
fn db_call(
    db: *const strata_db,
    err: *mut *mut c_char,
    action: impl FnOnce(&Db) -> strata::Result<()>,
) -> strata_status {
    call(err, || {
        action(db_arg(db)?)?;
        Ok(Status::STRATA_OK)
    })
}

/// Makes every write so far durable in table files.
#[no_mangle]
pub unsafe extern "C" fn strata_flush(
    db: *const strata_db,
    err: *mut *mut c_char,
) -> strata_status {
    db_call(db, err, Db::flush)
}

/// Compacts every table fully (waits for it).
#[no_mangle]
pub unsafe extern "C" fn strata_compact(
    db: *const strata_db,
    err: *mut *mut c_char,
) -> strata_status {
    db_call(db, err, Db::compact)
}

/// Waits until no background compaction is due or running.
#[no_mangle]
pub unsafe extern "C" fn strata_wait_for_compactions(
    db: *const strata_db,
    err: *mut *mut c_char,
) -> strata_status {
    db_call(db, err, Db::wait_for_compactions)
}

/// Runs one maintenance pass (packing, chunk flushes) now, in this thread.
#[no_mangle]
pub unsafe extern "C" fn strata_maintain(
    db: *const strata_db,
    err: *mut *mut c_char,
) -> strata_status {
    db_call(db, err, Db::maintain)
}

/// Compacts one table fully.
#[no_mangle]
pub unsafe extern "C" fn strata_compact_table(
    db: *const strata_db,
    table: *const strata_table,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        db_arg(db)?.compact_table(table_arg(table)?)?;
        Ok(Status::STRATA_OK)
    })
}

/// Copies restored files still read from a remote store to local disk now; the number of
/// files still remote afterwards in `*remaining`.
#[no_mangle]
pub unsafe extern "C" fn strata_mirror_now(
    db: *const strata_db,
    remaining: *mut usize,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(remaining, "remaining")?;
        *out_ptr(remaining, "remaining")? = db_arg(db)?.mirror_now();
        Ok(Status::STRATA_OK)
    })
}

/// `strata_compaction_filter_fn` result: keep the version.
pub const STRATA_FILTER_KEEP: i32 = 0;
/// `strata_compaction_filter_fn` result: remove it.
pub const STRATA_FILTER_REMOVE: i32 = 1;
/// `strata_compaction_filter_fn` result: replace the value by `*new_value` (malloc'ed).
pub const STRATA_FILTER_CHANGE: i32 = 2;

/// A compaction filter: decides for one version of `key` (kind 1 put, 2 merge operand)
/// with a `STRATA_FILTER_*` result; for `STRATA_FILTER_CHANGE` it stores a `malloc`ed
/// buffer in `*new_value` and its length in `*new_len`. Called from background threads,
/// concurrently; it must not call back into the library. Unknown results keep the version.
pub type strata_compaction_filter_fn = Option<
    unsafe extern "C" fn(
        state: *mut c_void,
        key: *const u8,
        key_len: usize,
        kind: i32,
        value: *const u8,
        value_len: usize,
        new_value: *mut *mut u8,
        new_len: *mut usize,
    ) -> i32,
>;

type FilterFn = unsafe extern "C" fn(
    *mut c_void,
    *const u8,
    usize,
    i32,
    *const u8,
    usize,
    *mut *mut u8,
    *mut usize,
) -> i32;

struct CFilter(Callback<FilterFn>);

impl CompactionFilter for CFilter {
    fn filter(&self, key: &[u8], kind: strata::ValueKind, value: &[u8]) -> FilterDecision {
        let mut nv: *mut u8 = std::ptr::null_mut();
        let mut nl = 0usize;
        // SAFETY: the registered callback with its state; pointers valid for the call.
        let r = unsafe {
            (self.0.f)(
                self.0.state,
                key.as_ptr(),
                key.len(),
                kind as i32,
                value.as_ptr(),
                value.len(),
                &mut nv,
                &mut nl,
            )
        };
        match r {
            STRATA_FILTER_REMOVE => FilterDecision::Remove,
            STRATA_FILTER_CHANGE => FilterDecision::Change(take_malloced(nv, nl)),
            _ => FilterDecision::Keep,
        }
    }
}

/// Sets (or with a NULL `filter`, clears) the table's compaction filter. `destructor` (may
/// be NULL) releases `state` once the filter is replaced and no compaction uses it; it
/// also runs if this call fails.
#[no_mangle]
pub unsafe extern "C" fn strata_set_compaction_filter(
    db: *const strata_db,
    table: *const strata_table,
    state: *mut c_void,
    filter: strata_compaction_filter_fn,
    destructor: strata_destructor_fn,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let f: Option<Arc<dyn CompactionFilter>> = match filter {
            Some(f) => Some(Arc::new(CFilter(Callback {
                state,
                f,
                destroy: destructor,
            }))),
            None => {
                if let Some(d) = destructor {
                    // SAFETY: the caller's destructor for its own state.
                    unsafe { d(state) }
                }
                None
            }
        };
        db_arg(db)?.set_compaction_filter(table_arg(table)?, f)?;
        Ok(Status::STRATA_OK)
    })
}

// ---------------------------------------------------------------------------------------
// Statistics

/// Statistics as numbers (`strata_stats`); the string form (`strata_stats_string`) has
/// every counter.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct strata_stats {
    /// Configured memory budget.
    pub memory_budget_bytes: u64,
    /// Bytes accounted to the budget.
    pub memory_in_use_bytes: u64,
    /// Process resident memory now (0 where unknown).
    pub resident_bytes: u64,
    /// Process peak resident memory.
    pub peak_resident_bytes: u64,
    /// Entries in the hot tier.
    pub hot_entries: u64,
    /// Bytes in the hot tier.
    pub hot_bytes: u64,
    /// Chunks in memory.
    pub chunks: u64,
    /// Compressed bytes of the chunks.
    pub chunk_bytes: u64,
    /// Hit rate of the hot tier.
    pub hot_hit_rate: f64,
    /// Hit rate of the chunks.
    pub chunk_hit_rate: f64,
    /// Hit rate of the block cache.
    pub block_cache_hit_rate: f64,
    /// Block cache bytes.
    pub block_cache_bytes: u64,
    /// Flushes to table files.
    pub flushes: u64,
    /// Compactions run.
    pub compactions: u64,
    /// Bytes compactions wrote.
    pub compaction_bytes_written: u64,
    /// Table files per level (7 levels).
    pub files_per_level: [u64; 7],
    /// Table bytes per level.
    pub bytes_per_level: [u64; 7],
    /// Last sequence number assigned.
    pub last_sequence: u64,
    /// Bytes in the current WAL file.
    pub wal_bytes: u64,
}

/// Fills `*out` with the database's statistics.
#[no_mangle]
pub unsafe extern "C" fn strata_stats_get(
    db: *const strata_db,
    out: *mut strata_stats,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        let s = db_arg(db)?.stats();
        let o = out_ptr(out, "out")?;
        let mut files = [0u64; 7];
        let mut bytes_l = [0u64; 7];
        for (i, (f, b)) in s
            .tree
            .files_per_level
            .iter()
            .zip(&s.tree.bytes_per_level)
            .enumerate()
            .take(7)
        {
            files[i] = *f;
            bytes_l[i] = *b;
        }
        *o = strata_stats {
            memory_budget_bytes: s.memory_budget_bytes,
            memory_in_use_bytes: s.memory_in_use_bytes,
            resident_bytes: s.resident_bytes,
            peak_resident_bytes: s.peak_resident_bytes,
            hot_entries: s.middle.hot_entries,
            hot_bytes: s.middle.hot_bytes,
            chunks: s.middle.chunks,
            chunk_bytes: s.middle.chunk_bytes,
            hot_hit_rate: s.hot_hit_rate,
            chunk_hit_rate: s.chunk_hit_rate,
            block_cache_hit_rate: s.block_cache_hit_rate,
            block_cache_bytes: s.block_cache.bytes,
            flushes: s.tree.flushes,
            compactions: s.tree.compactions,
            compaction_bytes_written: s.tree.compaction_bytes_written,
            files_per_level: files,
            bytes_per_level: bytes_l,
            last_sequence: s.last_sequence,
            wal_bytes: s.wal_bytes,
        };
        Ok(Status::STRATA_OK)
    })
}

/// Every statistic, human-readable, in `*out` (free with `strata_free`).
#[no_mangle]
pub unsafe extern "C" fn strata_stats_string(
    db: *const strata_db,
    out: *mut *mut c_char,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        give_string(&format!("{:#?}", db_arg(db)?.stats()), out)?;
        Ok(Status::STRATA_OK)
    })
}

/// The table files of the current version as a JSON array of objects (`path`,
/// `table_id`, `level`, `size`, `entries`), in `*out`.
#[no_mangle]
pub unsafe extern "C" fn strata_live_files_json(
    db: *const strata_db,
    out: *mut *mut c_char,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        let files: Vec<serde_json::Value> = db_arg(db)?
            .live_files()
            .into_iter()
            .map(|f| {
                serde_json::json!({
                    "path": f.path, "table_id": f.table_id, "level": f.level,
                    "size": f.size, "entries": f.entries,
                })
            })
            .collect();
        give_string(&serde_json::Value::Array(files).to_string(), out)?;
        Ok(Status::STRATA_OK)
    })
}

/// The database's settings (as opened) as JSON, in `*out`.
#[no_mangle]
pub unsafe extern "C" fn strata_db_settings_json(
    db: *const strata_db,
    out: *mut *mut c_char,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        let s =
            serde_json::to_string(db_arg(db)?.settings()).map_err(|e| invalid(e.to_string()))?;
        give_string(&s, out)?;
        Ok(Status::STRATA_OK)
    })
}

/// What opening the database found (`strata_db_recovery_info`).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct strata_recovery_info {
    /// Manifest generation opened.
    pub manifest_generation: u64,
    /// Orphan table files deleted.
    pub orphans_deleted: u64,
    /// WAL batches replayed.
    pub wal_batches_replayed: u64,
    /// Bytes of a torn WAL tail dropped.
    pub wal_torn_bytes: u64,
    /// WAL bytes skipped as damaged (only with a tolerant recovery mode).
    pub wal_skipped_bytes: u64,
}

/// Fills `*out` with what opening the database found.
#[no_mangle]
pub unsafe extern "C" fn strata_db_recovery_info(
    db: *const strata_db,
    out: *mut strata_recovery_info,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        let r = db_arg(db)?.recovery_info();
        *out_ptr(out, "out")? = strata_recovery_info {
            manifest_generation: r.manifest_generation,
            orphans_deleted: r.orphans_deleted as u64,
            wal_batches_replayed: r.wal_batches_replayed,
            wal_torn_bytes: r.wal_torn_bytes,
            wal_skipped_bytes: r.wal_skipped_bytes,
        };
        Ok(Status::STRATA_OK)
    })
}
