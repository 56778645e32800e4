//! Profiling probe for the write path and the checkpoint flush: loads `N` (default 5M)
//! value-state entries with the comparison's `value-large` keys and values into a 256 MiB
//! budget, then times one `flush` (as a checkpoint does) and prints both rates with the
//! engine's statistics.
//!
//! ```sh
//! cargo build --release -p strata-bench --example flush_probe
//! perf record -F 1999 --call-graph dwarf target/release/examples/flush_probe
//! ```

use std::time::Instant;
use strata_bench::{flink_key, mix};

fn large_key(i: u64) -> Vec<u8> {
    let id = mix(i);
    let ns = (1_700_000_000_000u64 + (id % 1440) * 60_000).to_be_bytes();
    flink_key((mix(id ^ 0x5bd1) % 32768) as u16, id, &ns, 32768)
}

fn large_value(i: u64) -> Vec<u8> {
    let len = 8 + (mix(i) % 93) as usize;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        v.extend_from_slice(&i.to_le_bytes());
    }
    v.truncate(len);
    v
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = strata::Settings {
        memory_budget_bytes: 256 << 20,
        flush_on_close: false,
        ..Default::default()
    };
    let db = strata::Db::open(dir.path(), settings).expect("open");
    let t = db
        .create_table(
            "value",
            strata::TableOptions::with_merge(strata::MergeKind::None),
        )
        .expect("table");
    let n: u64 = std::env::var("N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5_000_000);
    let t0 = Instant::now();
    for i in 0..n {
        db.put(&t, &large_key(i), &large_value(i)).expect("put");
    }
    let load = t0.elapsed();
    // SAFETY: getrusage fills the struct it is given.
    let cpu = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut ru);
        ru.ru_utime.tv_sec as f64
            + ru.ru_utime.tv_usec as f64 / 1e6
            + ru.ru_stime.tv_sec as f64
            + ru.ru_stime.tv_usec as f64 / 1e6
    };
    eprintln!(
        "loading thread: {cpu:.2} s on CPU of {:.2} s",
        load.as_secs_f64()
    );
    let t1 = Instant::now();
    db.flush().expect("flush");
    let flush = t1.elapsed();
    let stats = db.stats();
    eprintln!("{stats}write stalls: {}", stats.middle.write_stalls);
    println!(
        "load {n} in {load:?}: {:.0}/s; flush {flush:?}",
        n as f64 / load.as_secs_f64()
    );
}
