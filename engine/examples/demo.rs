//! Demo: a keyed-state workload on the embedded default (a local directory).
//!
//! Simulates a stream job keeping per-device counters (value state, read-modify-write),
//! per-device event lists (list state, appends), and periodic checkpoints (`flush`), with a
//! memory budget small enough that data moves through every tier. Prints per-phase figures
//! and the engine's stats.
//!
//! ```text
//! cargo run --release -p strata --example demo -- [DIR] [EVENTS]
//! ```

use std::time::Instant;

use strata::{Db, MergeKind, Settings, TableOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().map(std::path::PathBuf::from);
    let events: u64 = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(2_000_000);
    let tmp;
    let dir = match dir {
        Some(d) => d,
        None => {
            tmp = std::env::temp_dir().join(format!("strata-demo-{}", std::process::id()));
            tmp.clone()
        }
    };
    let settings = Settings {
        memory_budget_bytes: 64 << 20,
        ..Settings::default()
    };
    println!("strata demo: {events} events into {}", dir.display());
    let db = Db::open(&dir, settings)?;
    let counts = db.create_table("device-counts", TableOptions::default())?;
    let lists = db.create_table("device-events", TableOptions::with_merge(MergeKind::Append))?;

    // Flink-shaped keys: key group (2 bytes) | device id (8 bytes).
    let key = |dev: u64| {
        let mut k = ((dev % 128) as u16).to_be_bytes().to_vec();
        k.extend_from_slice(&dev.to_be_bytes());
        k
    };
    let devices = 200_000u64;
    let start = Instant::now();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for i in 0..events {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Skewed: a quarter of the devices get most events.
        let dev = if x.is_multiple_of(4) {
            x % devices
        } else {
            x % (devices / 4)
        };
        let k = key(dev);
        let n = db
            .get(&counts, &k)?
            .map_or(0, |v| u64::from_le_bytes(v.try_into().unwrap_or([0; 8])));
        db.put(&counts, &k, &(n + 1).to_le_bytes())?;
        db.merge(&lists, &k, &(i as u32).to_le_bytes())?;
        if i > 0 && i.is_multiple_of((events / 4).max(1)) {
            let t = Instant::now();
            db.flush()?;
            println!(
                "  checkpoint after {i} events: flush took {:?}",
                t.elapsed()
            );
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "processed {events} events ({} state ops) in {secs:.2}s: {:.0} events/s",
        events * 3,
        events as f64 / secs
    );
    let t = Instant::now();
    let mut total = 0u64;
    let mut keys = 0u64;
    for kv in db.range(&counts, b"", None)? {
        let (_, v) = kv?;
        total += u64::from_le_bytes(v.try_into().unwrap_or([0; 8]));
        keys += 1;
    }
    println!(
        "scan: {keys} devices, {total} events counted, in {:?}",
        t.elapsed()
    );
    assert_eq!(total, events, "every event is counted exactly once");
    let sample = db.get(&lists, &key(1))?.map_or(0, |v| v.len() / 4);
    println!("device 1 has {sample} events in its list");
    db.compact()?;
    println!("\n{}", db.stats());
    db.close()?;
    if std::env::args().nth(1).is_none() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}
