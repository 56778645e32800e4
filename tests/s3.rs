//! The engine end to end on a real S3-compatible server (`tests/run.sh` starts SeaweedFS on
//! loopback), with the block cache's local-disk tier. With `STRATA_REQUIRE_S3=1` a missing
//! server is a failure, not a skip.

use std::sync::Arc;

use strata::{Db, ObjectStorage, S3Settings, Settings, Storage};

#[test]
fn engine_on_s3_with_disk_cache_tier() {
    let required = std::env::var("STRATA_REQUIRE_S3").is_ok_and(|v| v == "1");
    let prefix = format!(
        "engine-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let Some(s3) = S3Settings::from_env(&prefix) else {
        assert!(
            !required,
            "STRATA_REQUIRE_S3=1 but STRATA_S3_ENDPOINT is not set"
        );
        eprintln!("engine_on_s3_with_disk_cache_tier: no S3 server configured; skipped");
        return;
    };
    let cache_dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::small_for_tests(1 << 20);
    settings.disk_cache_dir = Some(cache_dir.path().join("blocks"));
    settings.disk_cache_bytes = 64 << 20;
    let storage: Arc<dyn Storage> = Arc::new(ObjectStorage::s3(&s3).unwrap());
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
    db.close().unwrap();
    drop(db);
    assert!(
        !storage.list("sst/").unwrap().is_empty(),
        "table files are in the bucket"
    );

    let db = open();
    let t = db.default_table();
    for round in 0..2 {
        for i in (0..5000u32).step_by(7) {
            let v = db.get(&t, format!("key-{i:05}").as_bytes()).unwrap();
            assert_eq!(v, Some(i.to_le_bytes().to_vec()), "round {round} key {i}");
        }
    }
    let n = db.range(&t, b"", None).unwrap().count();
    assert_eq!(n, 5000);
    let st = db.stats();
    assert!(
        st.block_cache.disk_bytes > 0,
        "blocks fetched from S3 are kept on local disk"
    );
    assert!(st.block_cache.disk_misses > 0);
    db.close().unwrap();
    for o in storage.list("").unwrap() {
        storage.delete(&o.path).unwrap();
    }
}
