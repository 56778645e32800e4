//! Profiling probe for map-state scans: loads 500K entries (50K maps of 10 user keys,
//! Flink's key layout, `prefix_len` 10) into a 256 MiB budget, flushes (as a checkpoint
//! does; `NOFLUSH=1` skips it), optionally runs 1M point gets (`GETS=1`), then scans
//! `SCANS` random maps by prefix (borrowed interface; `OWNED=1` for owned pairs) and prints scans/s. Used for the map-iterate profiles in
//! BENCHMARKS.md:
//!
//! ```sh
//! cargo build --release -p strata-bench --example iter_probe
//! SCANS=600000 perf record -F 1999 --call-graph dwarf target/release/examples/iter_probe
//! ```

use std::time::Instant;
use strata_bench::{flink_key, mix};
fn small_key(i: u64) -> Vec<u8> {
    let id = mix(i);
    flink_key((mix(id ^ 0x5bd1) % 128) as u16, id, &[0], 128)
}
fn main() {
    let dir = tempfile::tempdir().unwrap();
    let settings = strata::Settings {
        memory_budget_bytes: 256 << 20,
        flush_on_close: false,
        ..Default::default()
    };
    let db = strata::Db::open(dir.path(), settings).unwrap();
    let t = db
        .create_table(
            "map",
            strata::TableOptions {
                prefix_len: 10,
                ..strata::TableOptions::with_merge(strata::MergeKind::None)
            },
        )
        .unwrap();
    let n = 500_000u64;
    let groups = n / 10;
    for i in 0..n {
        let mut k = small_key(i / 10);
        k.extend_from_slice(&(i % 10).to_be_bytes());
        db.put(&t, &k, &i.to_le_bytes()).unwrap();
    }
    if std::env::var("NOFLUSH").is_err() {
        db.flush().unwrap();
    }
    if std::env::var("GETS").is_ok() {
        let mut r = 777u64;
        for _ in 0..1_000_000 {
            r = mix(r);
            let mut k = small_key(r % groups);
            k.extend_from_slice(&(r % 10).to_be_bytes());
            std::hint::black_box(db.get(&t, &k).unwrap());
        }
    }
    eprintln!("{:?}", db.stats());
    let scans: u64 = std::env::var("SCANS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    // `OWNED=1`: the owned-pair `Iterator` interface instead of `advance`/`key`/`value`.
    let owned = std::env::var_os("OWNED").is_some();
    let t0 = Instant::now();
    let mut sum = 0usize;
    let mut r = 12345u64;
    for _ in 0..scans {
        r = mix(r);
        let mut it = db.prefix(&t, &small_key(r % groups)).unwrap();
        if owned {
            for kv in it {
                let (k, v) = kv.unwrap();
                sum += k.len() + v.len();
            }
        } else {
            while it.advance().unwrap() {
                sum += it.key().len() + it.value().len();
            }
        }
    }
    let dt = t0.elapsed();
    println!(
        "{} scans in {:?}: {:.0}/s (sum {sum})",
        scans,
        dt,
        scans as f64 / dt.as_secs_f64()
    );
}
