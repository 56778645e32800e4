//! The engine end to end on a real S3-compatible server (`tests/run.sh` starts SeaweedFS on
//! loopback), with the block cache's local-disk tier. With `STRATA_REQUIRE_S3=1` a missing
//! server is a failure, not a skip.

use std::sync::Arc;

use strata::{Db, Error, ObjectStorage, Settings, Storage};
use strata_dfs::testing::FaultyStorage;
use strata_tests::s3_settings;

#[test]
fn a_fenced_writer_cannot_commit_on_s3() {
    let Some(s3) = s3_settings("fencing") else {
        return;
    };
    let settings = Settings {
        flush_on_close: false,
        ..Settings::small_for_tests(1 << 20)
    };
    let open = || {
        let storage: Arc<dyn Storage> = Arc::new(ObjectStorage::s3(&s3).unwrap());
        Db::builder(settings.clone()).storage(storage).open()
    };
    let old = open().unwrap();
    let t = old.default_table();
    old.put(&t, b"before", b"1").unwrap();
    old.flush().unwrap();
    let new = open().unwrap();
    old.put(&t, b"stale", b"2").unwrap();
    match old.flush() {
        Err(Error::Busy(m)) => assert!(m.contains("epoch"), "{m}"),
        other => panic!("the fenced writer's flush returned {other:?}"),
    }
    let t = new.default_table();
    assert_eq!(new.get(&t, b"before").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(new.get(&t, b"stale").unwrap(), None);
    new.put(&t, b"after", b"3").unwrap();
    new.flush().unwrap();
    new.close().unwrap();
    drop((old, new));
    let db = open().unwrap();
    let t = db.default_table();
    assert_eq!(db.get(&t, b"after").unwrap().as_deref(), Some(&b"3"[..]));
    assert_eq!(db.get(&t, b"stale").unwrap(), None);
    db.close().unwrap();
    let storage = ObjectStorage::s3(&s3).unwrap();
    for o in storage.list("").unwrap() {
        storage.delete(&o.path).unwrap();
    }
}

#[test]
fn engine_on_s3_reads_table_files_from_local_copies() {
    let Some(s3) = s3_settings("engine") else {
        return;
    };
    let cache_dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::small_for_tests(1 << 20);
    settings.disk_cache_dir = Some(cache_dir.path().join("cache"));
    settings.disk_cache_bytes = 64 << 20;
    let remote: Arc<dyn Storage> = Arc::new(ObjectStorage::s3(&s3).unwrap());
    let counted = Arc::new(FaultyStorage::new(remote.clone()));
    let storage: Arc<dyn Storage> = counted.clone();
    let open = || {
        Db::builder(settings.clone())
            .storage(storage.clone())
            .open()
            .unwrap()
    };

    let db = open();
    let t = db.default_table();
    for i in 0..5000u32 {
        db.put(&t, format!("key-{i:05}").as_bytes(), &i.to_le_bytes())
            .unwrap();
    }
    db.compact().unwrap();
    // Files written by this database are local from the start (written through).
    let reads = counted.reads();
    for i in (0..5000u32).step_by(7) {
        let v = db.get(&t, format!("key-{i:05}").as_bytes()).unwrap();
        assert_eq!(v, Some(i.to_le_bytes().to_vec()), "key {i}");
    }
    assert_eq!(counted.reads(), reads, "no table read went to S3");
    db.close().unwrap();
    drop(db);
    assert!(
        !remote.list("sst/").unwrap().is_empty(),
        "table files are in the bucket"
    );

    // Reopened with an empty cache: the files are copied back, then read locally.
    let db = open();
    let t = db.default_table();
    assert_eq!(db.mirror_now(), 0, "every table file is local");
    let reads = counted.reads();
    for round in 0..2 {
        for i in (0..5000u32).step_by(7) {
            let v = db.get(&t, format!("key-{i:05}").as_bytes()).unwrap();
            assert_eq!(v, Some(i.to_le_bytes().to_vec()), "round {round} key {i}");
        }
    }
    let n = db.range(&t, b"", None).unwrap().count();
    assert_eq!(n, 5000);
    assert_eq!(counted.reads(), reads, "no table read went to S3");
    db.close().unwrap();
    for o in remote.list("").unwrap() {
        remote.delete(&o.path).unwrap();
    }
}
