//! The storage trait's conformance suite against every backend: in-memory, a local
//! directory and, when `STRATA_S3_ENDPOINT` is set (`.ci/run` starts SeaweedFS on loopback
//! and sets it), a real S3-compatible server. With `STRATA_REQUIRE_S3=1` a missing server
//! is a failure, not a skip.

use strata_dfs::testing::storage_conformance;
use strata_dfs::{ObjectStorage, S3Settings, Storage};

fn unique_root() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("conformance-{}-{t}", std::process::id())
}

#[test]
fn memory_store_conforms() {
    storage_conformance(&ObjectStorage::memory().unwrap(), &unique_root());
}

#[test]
fn local_directory_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let s = ObjectStorage::local(dir.path()).unwrap();
    assert!(!s.is_remote());
    storage_conformance(&s, &unique_root());
}

#[test]
fn s3_store_conforms() {
    let required = std::env::var("STRATA_REQUIRE_S3").is_ok_and(|v| v == "1");
    let Some(settings) = S3Settings::from_env("strata-conformance") else {
        assert!(
            !required,
            "STRATA_REQUIRE_S3=1 but STRATA_S3_ENDPOINT is not set: the S3 server did not start"
        );
        eprintln!("s3_store_conforms: STRATA_S3_ENDPOINT not set; run .ci/run to start SeaweedFS");
        return;
    };
    let s = ObjectStorage::s3(&settings).expect("S3 store");
    assert!(s.is_remote());
    storage_conformance(&s, &unique_root());
}
