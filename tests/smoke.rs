//! Basic behaviour of the public API on both stores.

use strata::{Db, Error, MergeKind, Settings, TableOptions, WriteBatch};
use strata_tests::{TestHome, STORE_KINDS};

#[test]
fn put_get_delete_merge_iterate_reopen() {
    for kind in STORE_KINDS {
        let home = TestHome::new(kind);
        let db = home.open(Settings::small_for_tests(1 << 20)).unwrap();
        let t = db.default_table();
        let l = db
            .create_table("lists", TableOptions::with_merge(MergeKind::Append))
            .unwrap();
        db.put(&t, b"a", b"1").unwrap();
        db.put(&t, b"b", b"2").unwrap();
        db.delete(&t, b"a").unwrap();
        db.merge(&l, b"x", b"p").unwrap();
        db.merge(&l, b"x", b"q").unwrap();
        assert_eq!(db.get(&t, b"a").unwrap(), None);
        assert_eq!(db.get(&t, b"b").unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(db.get(&l, b"x").unwrap().as_deref(), Some(&b"pq"[..]));
        let mut batch = WriteBatch::new();
        batch.put(&t, b"c", b"3").merge(&l, b"x", b"r");
        db.write(batch).unwrap();
        let all: Vec<_> = db
            .range(&t, b"", None)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            all,
            vec![
                (b"b".to_vec(), b"2".to_vec()),
                (b"c".to_vec(), b"3".to_vec())
            ]
        );
        assert!(matches!(
            db.merge(&t, b"a", b"z"),
            Err(Error::InvalidArgument(_))
        ));
        db.flush().unwrap();
        db.close().unwrap();
        assert!(matches!(db.get(&t, b"b"), Err(Error::Closed)));
        let db = home.open(Settings::small_for_tests(1 << 20)).unwrap();
        let l = db.table("lists").unwrap();
        assert_eq!(
            db.get(&l, b"x").unwrap().as_deref(),
            Some(&b"pqr"[..]),
            "{kind:?}"
        );
        assert_eq!(db.get(&t, b"c").unwrap().as_deref(), Some(&b"3"[..]));
        db.merge(&l, b"x", b"s").unwrap();
        assert_eq!(db.get(&l, b"x").unwrap().as_deref(), Some(&b"pqrs"[..]));
    }
}

#[test]
fn update_is_an_atomic_read_modify_write() {
    for kind in STORE_KINDS {
        let home = TestHome::new(kind);
        let db = home.open(Settings::small_for_tests(1 << 20)).unwrap();
        let t = db.default_table();
        let incr = |old: Option<&[u8]>| {
            let n = old.map_or(0, |v| u64::from_le_bytes(v.try_into().unwrap()));
            Some((n + 1).to_le_bytes().to_vec())
        };
        std::thread::scope(|s| {
            for _ in 0..4 {
                let db = db.clone();
                let t = t.clone();
                s.spawn(move || {
                    for i in 0..500u64 {
                        db.update(&t, format!("c{}", i % 50).as_bytes(), incr)
                            .unwrap();
                    }
                });
            }
        });
        for i in 0..50 {
            let v = db.get(&t, format!("c{i}").as_bytes()).unwrap().unwrap();
            assert_eq!(
                u64::from_le_bytes(v.try_into().unwrap()),
                40,
                "{kind:?}: lost update"
            );
        }
        let st = db.stats();
        assert!(
            st.middle.in_place_updates > 0,
            "updates of hot keys happen in place"
        );
        db.update(&t, b"c0", |_| None).unwrap();
        assert_eq!(db.get(&t, b"c0").unwrap(), None);
        // After the keys move to table files, update reads them back.
        db.flush().unwrap();
        db.update(&t, b"c1", incr).unwrap();
        let v = db.get(&t, b"c1").unwrap().unwrap();
        assert_eq!(u64::from_le_bytes(v.try_into().unwrap()), 41);
    }
}

#[test]
fn stats_report_accounted_and_resident_memory() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Settings::small_for_tests(64 << 20)).unwrap();
    let t = db.default_table();
    let before = db.stats();
    for i in 0..100_000u32 {
        db.put(&t, &i.to_be_bytes(), &[7u8; 100]).unwrap();
    }
    let after = db.stats();
    assert!(after.memory_in_use_bytes > before.memory_in_use_bytes + (5 << 20));
    assert!(after.resident_bytes > 0, "{after}");
    assert!(after.peak_resident_bytes >= after.resident_bytes, "{after}");
    // The entries the engine accounts for are really resident: the process grew with them.
    assert!(
        after.peak_resident_bytes
            >= before.resident_bytes + (after.memory_in_use_bytes - before.memory_in_use_bytes) / 2,
        "{after}"
    );
    assert!(after.to_string().contains("resident"), "{after}");
    db.close().unwrap();
}

/// `live_files` lists exactly the files of the current version: each exists with its size,
/// their entries add up, and after a full compaction of the table none is left in level 0.
#[test]
fn live_files_are_the_current_version() {
    for kind in strata_tests::STORE_KINDS {
        let home = strata_tests::TestHome::new(kind);
        let db = home.open(Settings::small_for_tests(1 << 20)).unwrap();
        let t = db.default_table();
        assert!(db.live_files().is_empty());
        for i in 0..20_000u32 {
            db.put(&t, format!("k{i:06}").as_bytes(), &[7u8; 40])
                .unwrap();
        }
        db.flush().unwrap();
        let storage = home.storage();
        let files = db.live_files();
        assert!(!files.is_empty());
        let entries: u64 = files.iter().map(|f| f.entries).sum();
        assert!(entries >= 20_000, "{entries} entries in {files:?}");
        for f in &files {
            assert_eq!(f.table_id, t.id());
            assert_eq!(storage.size(&f.path).unwrap(), f.size, "{}", f.path);
        }
        db.compact_table(&t).unwrap();
        let after = db.live_files();
        assert!(after.iter().all(|f| f.level > 0), "{after:?}");
        assert_eq!(after.iter().map(|f| f.entries).sum::<u64>(), 20_000);
        db.close().unwrap();
    }
}
