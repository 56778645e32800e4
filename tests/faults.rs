//! Damage and failure: flipped bytes and truncation in table files, a torn manifest, failed
//! storage writes, and bad arguments. Every case runs on both stores.

use std::sync::Arc;

use bytes::Bytes;
use strata::{Db, Error, Settings, Storage, MAX_KEY_BYTES};
use strata_dfs::testing::FaultyStorage;
use strata_dfs::ObjectStorage;
use strata_tests::{TestHome, STORE_KINDS};

fn settings() -> Settings {
    let mut s = Settings::small_for_tests(1 << 20);
    s.flush_on_close = false;
    s
}

fn key(i: u32) -> Vec<u8> {
    format!("key-{i:06}").into_bytes()
}

fn val(i: u32) -> Vec<u8> {
    format!("value-{i}-{}", "x".repeat((i % 30) as usize)).into_bytes()
}

/// Writes `n` keys, flushes them into table files and closes the database.
fn populate(home: &TestHome, n: u32) {
    let db = home.open(settings()).unwrap();
    let t = db.default_table();
    for i in 0..n {
        db.put(&t, &key(i), &val(i)).unwrap();
    }
    db.compact().unwrap();
    db.close().unwrap();
}

/// The table files the database's current version references (a file only an older
/// manifest generation still names is never read, so damage to it goes unnoticed by design).
fn live_sst_files(home: &TestHome) -> Vec<String> {
    let db = home.open(settings()).unwrap();
    let files: Vec<String> = db.live_files().into_iter().map(|f| f.path).collect();
    db.close().unwrap();
    files
}

/// Reads every key and scans the table: each result must be the right value or a
/// Corruption error naming `file`. Returns how many corruption errors were seen.
fn read_all_checked(db: &Db, n: u32, file: &str) -> usize {
    let t = db.default_table();
    let mut corrupt = 0;
    let mut check = |e: Error| {
        assert!(e.is_corruption(), "expected corruption, got {e:?}");
        assert!(
            e.to_string().contains(file),
            "error {e} does not name {file}"
        );
        corrupt += 1;
    };
    for i in 0..n {
        match db.get(&t, &key(i)) {
            Ok(v) => assert_eq!(v, Some(val(i)), "wrong value for key {i}"),
            Err(e) => check(e),
        }
    }
    for item in db.range(&t, b"", None).unwrap() {
        match item {
            Ok((k, v)) => {
                let i: u32 = std::str::from_utf8(&k[4..]).unwrap().parse().unwrap();
                assert_eq!(v, val(i), "scan returned a wrong value");
            }
            Err(e) => {
                check(e);
                break;
            }
        }
    }
    corrupt
}

#[test]
fn flipped_byte_in_a_table_file_is_reported_as_corruption_naming_the_file() {
    for kind in STORE_KINDS {
        let home = TestHome::new(kind);
        populate(&home, 3000);
        let storage = home.storage();
        let files = live_sst_files(&home);
        assert!(!files.is_empty());
        let file = files[0].clone();
        let good = storage.read_all(&file).unwrap();
        // Flip bytes across the whole file: data blocks, filter, properties, index, footer.
        let positions: Vec<usize> = (0..24).map(|i| i * (good.len() - 1) / 23).collect();
        for pos in positions {
            let mut bad = good.to_vec();
            bad[pos] ^= 0x20;
            storage.put(&file, Bytes::from(bad)).unwrap();
            let db = home.open(settings()).unwrap();
            let seen = read_all_checked(&db, 3000, &file);
            assert!(
                seen > 0,
                "{kind:?}: flip at {pos} of {} went unnoticed",
                good.len()
            );
            db.close().unwrap();
        }
        storage.put(&file, good).unwrap();
        let db = home.open(settings()).unwrap();
        assert_eq!(
            read_all_checked(&db, 3000, &file),
            0,
            "restored file reads cleanly"
        );
    }
}

#[test]
fn truncated_table_file_is_reported_as_corruption() {
    for kind in STORE_KINDS {
        let home = TestHome::new(kind);
        populate(&home, 2000);
        let storage = home.storage();
        let file = live_sst_files(&home)[0].clone();
        let good = storage.read_all(&file).unwrap();
        for cut in [1, 100, good.len() / 2, good.len() - 1] {
            storage.put(&file, good.slice(..good.len() - cut)).unwrap();
            let db = home.open(settings()).unwrap();
            assert!(
                read_all_checked(&db, 2000, &file) > 0,
                "{kind:?}: truncation by {cut} unnoticed"
            );
            db.close().unwrap();
        }
        // A missing file is corruption too, reported when the database opens.
        storage.delete(&file).unwrap();
        let e = home.open(settings()).unwrap_err();
        assert!(e.is_corruption() && e.to_string().contains(&file), "{e}");
    }
}

// A damaged newest manifest generation fails the open: tests/safety.rs.

#[test]
fn failed_storage_write_poisons_and_reopen_recovers() {
    let inner: Arc<dyn Storage> = Arc::new(ObjectStorage::memory().unwrap());
    let faulty = Arc::new(FaultyStorage::new(inner.clone()));
    let db = Db::builder(settings())
        .storage(faulty.clone())
        .open()
        .unwrap();
    let t = db.default_table();
    db.put(&t, b"durable", b"1").unwrap();
    db.flush().unwrap();
    db.put(&t, b"lost", b"2").unwrap();
    faulty.fail_puts_under("sst/");
    let e = db.flush().unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    // The database now refuses writes instead of carrying on.
    assert!(matches!(db.put(&t, b"x", b"y"), Err(Error::Poisoned(_))));
    assert!(matches!(db.flush(), Err(Error::Poisoned(_))));
    // Reads still work.
    assert_eq!(db.get(&t, b"durable").unwrap().as_deref(), Some(&b"1"[..]));
    db.close().unwrap();
    drop(db);
    faulty.heal();
    let db = Db::builder(settings()).storage(faulty).open().unwrap();
    let t = db.default_table();
    assert_eq!(db.get(&t, b"durable").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(db.get(&t, b"lost").unwrap(), None, "never made durable");
    assert!(!inner.list("sst/").unwrap().is_empty());
}

#[test]
fn failed_manifest_write_leaves_the_previous_version_current() {
    let inner: Arc<dyn Storage> = Arc::new(ObjectStorage::memory().unwrap());
    let faulty = Arc::new(FaultyStorage::new(inner));
    let db = Db::builder(settings())
        .storage(faulty.clone())
        .open()
        .unwrap();
    let t = db.default_table();
    db.put(&t, b"a", b"1").unwrap();
    db.flush().unwrap();
    db.put(&t, b"b", b"2").unwrap();
    faulty.fail_puts_under("manifest/");
    assert!(db.flush().is_err());
    assert!(matches!(db.put(&t, b"c", b"3"), Err(Error::Poisoned(_))));
    db.close().unwrap();
    drop(db);
    faulty.heal();
    let db = Db::builder(settings()).storage(faulty).open().unwrap();
    let t = db.default_table();
    assert_eq!(db.get(&t, b"a").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(db.get(&t, b"b").unwrap(), None);
    assert!(
        db.recovery_info().orphans_deleted >= 1,
        "the uncommitted table file is removed"
    );
}

#[test]
fn bad_arguments_are_rejected_and_change_nothing() {
    for kind in STORE_KINDS {
        let home = TestHome::new(kind);
        let db = home.open(settings()).unwrap();
        let t = db.default_table();
        let big_key = vec![1u8; MAX_KEY_BYTES + 1];
        assert!(matches!(
            db.put(&t, &big_key, b"v"),
            Err(Error::InvalidArgument(_))
        ));
        let mut s = settings();
        s.max_value_bytes = 100;
        drop(db);
        let db = home.open(s).unwrap();
        let t = db.default_table();
        assert!(matches!(
            db.put(&t, b"k", &[0u8; 101]),
            Err(Error::InvalidArgument(_))
        ));
        // A batch with one bad operation applies none of them.
        let mut b = strata::WriteBatch::new();
        b.put(&t, b"ok", b"1").put(&t, b"bad", &[0u8; 101]);
        assert!(matches!(db.write(b), Err(Error::InvalidArgument(_))));
        assert_eq!(db.get(&t, b"ok").unwrap(), None);
        assert!(matches!(
            db.merge(&t, b"k", b"x"),
            Err(Error::InvalidArgument(_))
        ));
        let bad = Settings {
            hot_fraction: 2.0,
            ..Settings::default()
        };
        assert!(matches!(home.open(bad), Err(Error::InvalidArgument(_))));
        let other = Db::open(home.dir.path().join("other"), settings()).unwrap();
        let foreign = other
            .create_table("foreign", strata::TableOptions::default())
            .unwrap();
        assert!(matches!(
            db.get(&foreign, b"k"),
            Err(Error::InvalidArgument(_))
        ));
    }
}
