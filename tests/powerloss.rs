//! Power-loss safety of `wal_sync`: the store loses every table file and manifest write not
//! yet synced, and each WAL loses the bytes not yet synced (the page cache is gone), as in
//! LevelDB's fault-injection test. With `wal_sync` every acknowledged write survives; without
//! it, the test measures how much is lost in the worst case (nothing reached the disk).

use std::collections::BTreeMap;
use std::sync::Arc;

use strata::{Db, MergeKind, ObjectStorage, Settings, Storage, TableOptions, WriteBatch};
use strata_dfs::testing::PowerLossStorage;

/// Runs a workload (puts, merges, deletes, batches, flushes, with background packing, chunk
/// flushes and compactions), cuts the power, reopens, and returns (acknowledged keys, keys
/// whose value was lost or wrong after the power loss).
fn run(wal_sync: bool, seed: u64) -> (usize, usize) {
    let inner: Arc<dyn Storage> = Arc::new(ObjectStorage::memory().unwrap());
    let store = Arc::new(PowerLossStorage::new(inner.clone()));
    let wal_dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        wal_enabled: true,
        wal_sync,
        wal_dir: Some(wal_dir.path().to_path_buf()),
        flush_on_close: false,
        ..Settings::small_for_tests(1 << 20)
    };
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let db = Db::builder(settings.clone())
        .storage(store.clone())
        .open()
        .unwrap();
    let t = db
        .create_table("lists", TableOptions::with_merge(MergeKind::Append))
        .unwrap();
    let mut x = seed;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..6000u64 {
        let k = format!("key{:04}", rnd() % 1500).into_bytes();
        match rnd() % 10 {
            0..=4 => {
                let v = format!("v{i}-{}", "x".repeat((rnd() % 60) as usize)).into_bytes();
                db.put(&t, &k, &v).unwrap();
                model.insert(k, v);
            }
            5..=7 => {
                db.merge(&t, &k, b"+m").unwrap();
                model.entry(k).or_default().extend_from_slice(b"+m");
            }
            8 => {
                db.delete(&t, &k).unwrap();
                model.remove(&k);
            }
            _ => {
                let k2 = format!("key{:04}", rnd() % 1500).into_bytes();
                let mut b = WriteBatch::new();
                b.put(&t, &k, b"batched").delete(&t, &k2);
                db.write(b).unwrap();
                model.insert(k, b"batched".to_vec());
                model.remove(&k2);
            }
        }
        if i % 1700 == 1699 {
            db.flush().unwrap();
        }
    }
    // Cut the power: unsynced objects are lost, and each WAL keeps only its synced bytes.
    let (wal, durable) = db.wal_durable_len().expect("the WAL is on");
    let lost_objects = store.power_loss();
    drop(db);
    println!("wal_sync = {wal_sync}: the power loss undid {lost_objects} unsynced objects");
    let f = std::fs::OpenOptions::new().write(true).open(&wal).unwrap();
    f.set_len(durable).unwrap();
    drop(f);
    let db = Db::builder(settings).storage(inner).open().unwrap();
    let lost = match db.table("lists") {
        None => model.len(), // the database itself never reached the disk
        Some(t) => {
            let got: BTreeMap<Vec<u8>, Vec<u8>> = db
                .range(&t, b"", None)
                .unwrap()
                .collect::<strata::Result<_>>()
                .unwrap();
            model
                .iter()
                .filter(|(k, v)| got.get(*k) != Some(*v))
                .count()
        }
    };
    db.close().unwrap();
    (model.len(), lost)
}

#[test]
fn with_wal_sync_a_power_loss_loses_no_acknowledged_write() {
    for seed in [1, 7, 42] {
        let (keys, lost) = run(true, seed);
        assert!(keys > 500, "{keys}");
        assert_eq!(
            lost, 0,
            "seed {seed}: {lost} of {keys} acknowledged keys lost"
        );
    }
}

#[test]
fn without_wal_sync_a_power_loss_may_lose_writes_but_the_database_opens() {
    let (keys, lost) = run(false, 7);
    println!("wal_sync = false, worst case (nothing synced): {lost} of {keys} keys lost");
    assert!(keys > 500);
}
