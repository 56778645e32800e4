//! The memory budget holds: several million keys of value, list and map state through a
//! 16 MiB budget (with a flush, as every checkpoint does, and reads after it), and the
//! process's peak resident memory stays within 1.15 × budget + 32 MiB (issue 10's bound;
//! the 32 MiB is the fixed part: code, thread stacks, the I/O runtime, allocator slack).
//!
//! One test in its own binary: peak RSS is a per-process figure, so nothing else may run
//! in this process.

use strata::{Db, MergeKind, Settings, TableOptions};

#[test]
fn peak_resident_memory_stays_within_the_budget() {
    const BUDGET: u64 = 16 << 20;
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        memory_budget_bytes: BUDGET,
        flush_on_close: false,
        ..Settings::default()
    };
    let db = Db::open(dir.path(), settings).unwrap();
    let value = db.create_table("value", TableOptions::default()).unwrap();
    let list = db
        .create_table(
            "list",
            TableOptions::with_merge(MergeKind::AppendDelimited(b',')),
        )
        .unwrap();
    let map = db
        .create_table(
            "map",
            TableOptions {
                prefix_len: 18,
                ..TableOptions::default()
            },
        )
        .unwrap();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    // Flink's layout: 2-byte key group, 8-byte key, 8-byte namespace (+ 8-byte map key).
    let key = |r: u64, ns: u64| {
        let mut k = Vec::with_capacity(26);
        k.extend_from_slice(&((r % 128) as u16).to_be_bytes());
        k.extend_from_slice(&r.to_be_bytes());
        k.extend_from_slice(&ns.to_be_bytes());
        k
    };
    let n = 1_500_000u64;
    for i in 0..n {
        let r = next();
        db.put(&value, &key(r, 0), &vec![i as u8; 8 + (r % 93) as usize])
            .unwrap();
    }
    for i in 0..1_000_000u64 {
        let r = i % 100_000;
        db.merge(&list, &key(r, 1), &i.to_be_bytes()).unwrap();
    }
    for i in 0..1_000_000u64 {
        let mut k = key(i / 10, 2);
        k.extend_from_slice(&(i % 10).to_be_bytes());
        db.put(&map, &k, &[i as u8; 16]).unwrap();
    }
    db.flush().unwrap();
    // Reads after the flush, through every table.
    let mut found = 0;
    for i in 0..100_000u64 {
        found += usize::from(db.get(&list, &key(i, 1)).unwrap().is_some());
        let mut k = key(i, 2);
        k.extend_from_slice(&0u64.to_be_bytes());
        found += usize::from(db.get(&map, &k).unwrap().is_some());
    }
    assert_eq!(found, 200_000);
    let s = db.stats();
    let peak = s.peak_resident_bytes;
    let bound = BUDGET + BUDGET * 15 / 100 + (32 << 20);
    eprintln!(
        "peak resident {:.1} MiB, bound {:.1} MiB, accounted now {:.1} MiB, resident now {:.1} MiB",
        peak as f64 / 1048576.0,
        bound as f64 / 1048576.0,
        s.memory_in_use_bytes as f64 / 1048576.0,
        s.resident_bytes as f64 / 1048576.0
    );
    if cfg!(target_os = "linux") {
        assert!(peak > 0, "VmHWM is readable on Linux");
        assert!(
            peak <= bound,
            "peak resident memory {peak} exceeds 1.15 x budget + 32 MiB = {bound}"
        );
    }
    db.close().unwrap();
}
