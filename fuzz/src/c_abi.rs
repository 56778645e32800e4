//! Drives the C ABI (`strata-ffi`) with arbitrary call sequences, bad arguments included
//! (null pointers, wrong lengths, destroyed and wrong-type handles, invalid UTF-8 names,
//! arbitrary settings), and checks reads against a `BTreeMap` model: a call either does
//! what the model says or returns an error status, and never crashes.
//!
//! The one misuse left out is the forced panic: libFuzzer's panic hook aborts the process
//! before `catch_unwind` sees it (the C suite and the crate's unit tests cover it).

use std::collections::BTreeMap;
use std::ffi::{c_char, CString};
use std::ptr::{null, null_mut};

use strata_ffi::*;

use crate::Input;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

struct Handles {
    db: *mut strata_db,
    table: *mut strata_table,
    lists: *mut strata_table,
    batch: *mut strata_write_batch,
    batch_ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    snap: Option<(*mut strata_snapshot, Model)>,
}

fn ok(s: strata_status, what: &str) {
    assert_eq!(s, strata_status::STRATA_OK, "{what}");
}

fn invalid(s: strata_status, what: &str) {
    assert_eq!(s, strata_status::STRATA_INVALID_ARGUMENT, "{what}");
}

/// Reads `key` through `read` (a `strata_get`-shaped call); `None` when absent.
fn read_value(
    read: impl FnOnce(*mut *mut u8, *mut usize, *mut *mut c_char) -> strata_status,
) -> Option<Vec<u8>> {
    let mut v: *mut u8 = null_mut();
    let mut n = 0usize;
    let mut err: *mut c_char = null_mut();
    match read(&mut v, &mut n, &mut err) {
        strata_status::STRATA_OK => {
            // SAFETY: the library returned a malloc'ed buffer of n bytes.
            let out = unsafe { std::slice::from_raw_parts(v, n).to_vec() };
            unsafe { strata_free(v.cast()) };
            Some(out)
        }
        strata_status::STRATA_NOT_FOUND => None,
        s => panic!("read failed with {s:?}"),
    }
}

fn get(h: &Handles, key: &[u8]) -> Option<Vec<u8>> {
    // SAFETY: live handles; key valid for the call.
    read_value(|v, n, e| unsafe { strata_get(h.db, h.table, key.as_ptr(), key.len(), v, n, e) })
}

/// Runs one input.
pub fn fuzz_c_abi(data: &[u8]) {
    // SAFETY (whole function): every pointer passed is a live handle, null, a destroyed
    // handle or a handle of another type (which the library must detect), or points to a
    // buffer of the length passed with it.
    unsafe {
        let mut err: *mut c_char = null_mut();
        let mut store: *mut strata_store = null_mut();
        ok(strata_store_open_memory(&mut store, &mut err), "store");
        let mut opts: *mut strata_options = null_mut();
        ok(strata_options_create(&mut opts, &mut err), "options");
        ok(
            strata_options_set_memory_budget(opts, 4 << 20, &mut err),
            "budget",
        );
        ok(strata_options_set_store(opts, store, &mut err), "set store");
        let mut db: *mut strata_db = null_mut();
        ok(strata_db_open(null(), opts, &mut db, &mut err), "open");
        let mut table = null_mut();
        ok(strata_db_default_table(db, &mut table, &mut err), "table");
        let mut to: *mut strata_table_options = null_mut();
        ok(
            strata_table_options_create(&mut to, &mut err),
            "table options",
        );
        ok(
            strata_table_options_set_merge(to, STRATA_MERGE_APPEND, 0, null(), &mut err),
            "merge kind",
        );
        let lists_name = CString::new("lists").expect("name");
        let mut lists = null_mut();
        ok(
            strata_db_create_table(db, lists_name.as_ptr(), to, &mut lists, &mut err),
            "lists",
        );
        let mut batch = null_mut();
        ok(strata_write_batch_create(&mut batch, &mut err), "batch");
        let mut h = Handles {
            db,
            table,
            lists,
            batch,
            batch_ops: Vec::new(),
            snap: None,
        };
        let mut model = Model::new();
        let mut list_model = Model::new();
        let mut input = Input(data);
        let mut steps = 0;
        while let Some(op) = input.byte() {
            steps += 1;
            if steps > 200 {
                break;
            }
            step(
                &mut h,
                &mut input,
                op,
                &mut model,
                &mut list_model,
                to,
                &mut err,
            );
        }
        // Everything the model holds reads back, after a flush as well.
        for (k, v) in &model {
            assert_eq!(get(&h, k).as_ref(), Some(v), "key {k:?}");
        }
        ok(strata_flush(h.db, &mut err), "flush");
        for (k, v) in &model {
            assert_eq!(get(&h, k).as_ref(), Some(v), "key {k:?} after flush");
        }
        if let Some((s, _)) = h.snap.take() {
            ok(strata_snapshot_destroy(s), "snapshot destroy");
        }
        ok(strata_write_batch_destroy(h.batch), "batch destroy");
        ok(strata_table_destroy(h.table), "table destroy");
        ok(strata_table_destroy(h.lists), "lists destroy");
        ok(strata_table_options_destroy(to), "table options destroy");
        ok(strata_db_close(h.db, &mut err), "close");
        ok(strata_db_destroy(h.db), "db destroy");
        ok(strata_options_destroy(opts), "options destroy");
        ok(strata_store_destroy(store), "store destroy");
        strata_free(err.cast());
    }
}

fn key(input: &mut Input) -> Vec<u8> {
    let n = input.byte().unwrap_or(0) % 3;
    (0..n).map(|_| input.byte().unwrap_or(0) % 8).collect()
}

fn value(input: &mut Input) -> Vec<u8> {
    let n = input.byte().unwrap_or(0) % 9;
    (0..n).map(|_| input.byte().unwrap_or(0)).collect()
}

/// One call (or a short sequence) chosen by `op`.
unsafe fn step(
    h: &mut Handles,
    input: &mut Input,
    op: u8,
    model: &mut Model,
    list_model: &mut Model,
    to: *mut strata_table_options,
    err: &mut *mut c_char,
) {
    // SAFETY: see `fuzz_c_abi`.
    unsafe {
        match op % 18 {
            0 | 1 => {
                let (k, v) = (key(input), value(input));
                ok(
                    strata_put(h.db, h.table, k.as_ptr(), k.len(), v.as_ptr(), v.len(), err),
                    "put",
                );
                model.insert(k, v);
            }
            2 => {
                let k = key(input);
                ok(
                    strata_delete(h.db, h.table, k.as_ptr(), k.len(), err),
                    "delete",
                );
                model.remove(&k);
            }
            3 => {
                let k = key(input);
                assert_eq!(get(h, &k).as_ref(), model.get(&k), "get {k:?}");
            }
            4 => {
                // Bad arguments: a null key with a length, a null table, a null db.
                let v = value(input);
                let n = 1 + usize::from(input.byte().unwrap_or(0));
                invalid(
                    strata_put(h.db, h.table, null(), n, v.as_ptr(), v.len(), err),
                    "null key",
                );
                invalid(
                    strata_put(h.db, null(), v.as_ptr(), v.len(), v.as_ptr(), v.len(), err),
                    "null table",
                );
                invalid(
                    strata_get(
                        null(),
                        h.table,
                        v.as_ptr(),
                        v.len(),
                        null_mut(),
                        null_mut(),
                        err,
                    ),
                    "null db",
                );
                invalid(
                    strata_get(
                        h.db,
                        h.table,
                        v.as_ptr(),
                        v.len(),
                        null_mut(),
                        null_mut(),
                        err,
                    ),
                    "null out",
                );
            }
            5 => {
                // Merge on a table without an operator: rejected, nothing changes.
                let (k, v) = (key(input), value(input));
                let s = strata_merge(h.db, h.table, k.as_ptr(), k.len(), v.as_ptr(), v.len(), err);
                invalid(s, "merge without operator");
            }
            6 => {
                let k = key(input);
                if input.byte().unwrap_or(0).is_multiple_of(2) {
                    let v = value(input);
                    ok(
                        strata_write_batch_put(
                            h.batch,
                            h.table,
                            k.as_ptr(),
                            k.len(),
                            v.as_ptr(),
                            v.len(),
                            err,
                        ),
                        "batch put",
                    );
                    h.batch_ops.push((k, Some(v)));
                } else {
                    ok(
                        strata_write_batch_delete(h.batch, h.table, k.as_ptr(), k.len(), err),
                        "batch delete",
                    );
                    h.batch_ops.push((k, None));
                }
            }
            7 => {
                ok(strata_write(h.db, h.batch, err), "write batch");
                for (k, v) in h.batch_ops.drain(..) {
                    match v {
                        Some(v) => model.insert(k, v),
                        None => model.remove(&k),
                    };
                }
                ok(strata_write_batch_clear(h.batch, err), "clear");
            }
            8 => match h.snap.take() {
                Some((s, _)) if input.byte().unwrap_or(0).is_multiple_of(2) => {
                    ok(strata_snapshot_destroy(s), "snapshot destroy");
                    invalid(strata_snapshot_destroy(s), "snapshot destroyed twice");
                }
                Some(s) => h.snap = Some(s),
                None => {
                    let mut s = null_mut();
                    ok(strata_snapshot_create(h.db, &mut s, err), "snapshot");
                    h.snap = Some((s, model.clone()));
                }
            },
            9 => {
                if let Some((s, m)) = &h.snap {
                    let k = key(input);
                    let got = read_value(|v, n, e| {
                        strata_snapshot_get(*s, h.table, k.as_ptr(), k.len(), v, n, e)
                    });
                    assert_eq!(got.as_ref(), m.get(&k), "snapshot get {k:?}");
                }
            }
            10 => {
                // Iterate a prefix (live or at the snapshot) and compare with the model.
                let p = key(input);
                let (m, mut it) = (h.snap.as_ref().map(|s| &s.1).unwrap_or(model), null_mut());
                let s = match &h.snap {
                    Some((s, _)) => {
                        strata_snapshot_iter_prefix(*s, h.table, p.as_ptr(), p.len(), &mut it, err)
                    }
                    None => strata_iter_prefix(h.db, h.table, p.as_ptr(), p.len(), &mut it, err),
                };
                ok(s, "iterator");
                let want: Vec<(&Vec<u8>, &Vec<u8>)> =
                    m.iter().filter(|(k, _)| k.starts_with(&p)).collect();
                let mut got = Vec::new();
                while strata_iter_next(it, err) == strata_status::STRATA_OK {
                    let (mut kl, mut vl) = (0, 0);
                    let kp = strata_iter_key(it, &mut kl);
                    let vp = strata_iter_value(it, &mut vl);
                    got.push((
                        std::slice::from_raw_parts(kp, kl).to_vec(),
                        std::slice::from_raw_parts(vp, vl).to_vec(),
                    ));
                }
                let got_refs: Vec<(&Vec<u8>, &Vec<u8>)> = got.iter().map(|(k, v)| (k, v)).collect();
                assert_eq!(got_refs, want, "prefix {p:?}");
                ok(strata_iter_destroy(it), "iterator destroy");
                invalid(strata_iter_destroy(it), "iterator destroyed twice");
                invalid(strata_iter_next(it, err), "destroyed iterator");
                assert!(strata_iter_key(it, &mut 0).is_null());
            }
            11 => {
                // A destroyed table handle is refused; a fresh one works.
                let t = h.table;
                ok(strata_table_destroy(t), "table destroy");
                let k = key(input);
                let mut fresh = null_mut();
                ok(
                    strata_db_default_table(h.db, &mut fresh, err),
                    "table again",
                );
                if fresh != t {
                    invalid(
                        strata_put(h.db, t, k.as_ptr(), k.len(), null(), 0, err),
                        "destroyed table",
                    );
                }
                h.table = fresh;
            }
            12 => {
                // Handles of the wrong type.
                let k = key(input);
                invalid(
                    strata_put(h.db, h.batch.cast(), k.as_ptr(), k.len(), null(), 0, err),
                    "batch as table",
                );
                invalid(
                    strata_put(h.table.cast(), h.table, k.as_ptr(), k.len(), null(), 0, err),
                    "table as db",
                );
            }
            13 => {
                // Arbitrary (often invalid UTF-8) names: an error or a lookup, never a crash.
                let mut name = value(input);
                name.retain(|b| *b != 0);
                let c = CString::new(name).expect("no NUL");
                let mut t = null_mut();
                match strata_db_table(h.db, c.as_ptr(), &mut t, err) {
                    strata_status::STRATA_OK => ok(strata_table_destroy(t), "destroy"),
                    strata_status::STRATA_NOT_FOUND | strata_status::STRATA_INVALID_ARGUMENT => {}
                    s => panic!("table lookup: {s:?}"),
                }
                let v = CString::new(format!("{}", input.byte().unwrap_or(0))).expect("no NUL");
                let _ = strata_table_options_set_prefix_len(to, u16::from(op), err);
                let mut o = null_mut();
                ok(strata_options_create(&mut o, err), "options");
                let _ = strata_options_set(o, c.as_ptr(), v.as_ptr(), err);
                ok(strata_options_destroy(o), "options destroy");
            }
            14 => match input.byte().unwrap_or(0) % 3 {
                0 => ok(strata_flush(h.db, err), "flush"),
                1 => ok(strata_compact(h.db, err), "compact"),
                _ => ok(strata_maintain(h.db, err), "maintain"),
            },
            15 => {
                let keys: Vec<Vec<u8>> = (0..input.byte().unwrap_or(0) % 5)
                    .map(|_| key(input))
                    .collect();
                let ptrs: Vec<*const u8> = keys.iter().map(|k| k.as_ptr()).collect();
                let lens: Vec<usize> = keys.iter().map(Vec::len).collect();
                let mut vals = null_mut();
                ok(
                    strata_multi_get(
                        h.db,
                        h.table,
                        ptrs.as_ptr(),
                        lens.as_ptr(),
                        keys.len(),
                        &mut vals,
                        err,
                    ),
                    "multi-get",
                );
                for (i, k) in keys.iter().enumerate() {
                    let (mut d, mut n) = (null(), 0);
                    let got = match strata_values_get(vals, i, &mut d, &mut n, err) {
                        strata_status::STRATA_OK => Some(std::slice::from_raw_parts(d, n).to_vec()),
                        strata_status::STRATA_NOT_FOUND => None,
                        s => panic!("values get: {s:?}"),
                    };
                    assert_eq!(got.as_ref(), model.get(k), "multi-get {k:?}");
                }
                invalid(
                    strata_values_get(vals, keys.len(), &mut null(), &mut 0, err),
                    "index out of range",
                );
                ok(strata_values_destroy(vals), "values destroy");
            }
            16 => {
                let (k, v) = (key(input), value(input));
                ok(
                    strata_merge(h.db, h.lists, k.as_ptr(), k.len(), v.as_ptr(), v.len(), err),
                    "list merge",
                );
                list_model
                    .entry(k.clone())
                    .or_default()
                    .extend_from_slice(&v);
                let got =
                    read_value(|vp, n, e| strata_get(h.db, h.lists, k.as_ptr(), k.len(), vp, n, e));
                assert_eq!(got.as_ref(), list_model.get(&k), "list {k:?}");
            }
            _ => {
                let mut s = strata_stats::default();
                ok(strata_stats_get(h.db, &mut s, err), "stats");
                invalid(strata_stats_get(h.db, null_mut(), err), "stats to null");
            }
        }
    }
}
