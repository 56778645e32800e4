//! The C ABI's cost per call: get, put and merge through `strata-ffi`'s exported functions
//! (what a C host calls) next to the same operations through the Rust API, on one database
//! with 100K resident keys (16-byte keys, 32-byte values, 256 MiB budget). Prints the
//! process's peak RSS at the end.
//!
//!   cargo bench -p strata-bench --bench ffi_boundary

use std::ffi::c_char;
use std::hint::black_box;
use std::ptr::{null, null_mut};

use criterion::{criterion_group, criterion_main, Criterion};
use strata::Db;
use strata_ffi::*;

const KEYS: u64 = 100_000;

fn key(i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(b"key-0000");
    k[8..].copy_from_slice(&(i % KEYS).to_be_bytes());
    k
}

fn boundary(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = std::ffi::CString::new(dir.path().to_str().expect("utf-8")).expect("path");
    let value = [7u8; 32];
    let one = 1u64.to_le_bytes();
    // SAFETY: every pointer passed is a live handle or a buffer of the length passed.
    unsafe {
        let mut err: *mut c_char = null_mut();
        let mut opts = null_mut();
        assert_eq!(
            strata_options_create(&mut opts, &mut err),
            strata_status::STRATA_OK
        );
        let mut db = null_mut();
        assert_eq!(
            strata_db_open(path.as_ptr(), opts, &mut db, &mut err),
            strata_status::STRATA_OK
        );
        let mut table = null_mut();
        assert_eq!(
            strata_db_default_table(db, &mut table, &mut err),
            strata_status::STRATA_OK
        );
        let mut to = null_mut();
        strata_table_options_create(&mut to, &mut err);
        strata_table_options_set_merge(to, STRATA_MERGE_U64_ADD, 0, null(), &mut err);
        let name = std::ffi::CString::new("counts").expect("name");
        let mut counts = null_mut();
        assert_eq!(
            strata_db_create_table(db, name.as_ptr(), to, &mut counts, &mut err),
            strata_status::STRATA_OK
        );
        // The Rust API on the very same database (a Db is a cheap handle).
        let rust: Db = (*db).rust().clone();
        let rt = rust.default_table();
        let rc = rust.table("counts").expect("table");
        for i in 0..KEYS {
            rust.put(&rt, &key(i), &value).expect("put");
        }
        let mut g = c.benchmark_group("boundary");
        let mut i = 0u64;
        g.bench_function("rust put", |b| {
            b.iter(|| {
                i += 1;
                rust.put(&rt, &key(i), &value).expect("put")
            })
        });
        g.bench_function("C ABI put", |b| {
            b.iter(|| {
                i += 1;
                let k = key(i);
                strata_put(db, table, k.as_ptr(), 16, value.as_ptr(), 32, &mut err)
            })
        });
        g.bench_function("rust get", |b| {
            b.iter(|| {
                i += 1;
                black_box(rust.get(&rt, &key(i)).expect("get"))
            })
        });
        g.bench_function("C ABI get (owned copy)", |b| {
            b.iter(|| {
                i += 1;
                let k = key(i);
                let (mut v, mut n) = (null_mut(), 0usize);
                let s = strata_get(db, table, k.as_ptr(), 16, &mut v, &mut n, &mut err);
                strata_free(v.cast());
                s
            })
        });
        g.bench_function("C ABI get (pinned)", |b| {
            b.iter(|| {
                i += 1;
                let k = key(i);
                let mut p = null_mut();
                let s = strata_get_pinned(db, table, k.as_ptr(), 16, &mut p, &mut err);
                let mut n = 0;
                black_box(strata_pinned_data(p, &mut n));
                strata_pinned_destroy(p);
                s
            })
        });
        g.bench_function("rust merge", |b| {
            b.iter(|| {
                i += 1;
                rust.merge(&rc, &key(i), &one).expect("merge")
            })
        });
        g.bench_function("C ABI merge", |b| {
            b.iter(|| {
                i += 1;
                let k = key(i);
                strata_merge(db, counts, k.as_ptr(), 16, one.as_ptr(), 8, &mut err)
            })
        });
        g.finish();
        drop(rust);
        strata_table_destroy(table);
        strata_table_destroy(counts);
        strata_table_options_destroy(to);
        strata_db_destroy(db);
        strata_options_destroy(opts);
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let Some(l) = status.lines().find(|l| l.starts_with("VmHWM")) {
        println!("peak RSS: {}", l.trim_start_matches("VmHWM:").trim());
    }
}

criterion_group!(benches, boundary);
criterion_main!(benches);
