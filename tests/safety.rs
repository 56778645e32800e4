//! Data-safety regressions: each test reproduces a way acknowledged data used to be lost
//! silently (damaged WAL or manifest, a doubly opened directory, merges past the block
//! limit, a handle of another database) and checks that the damage is now reported or
//! harmless.

use std::sync::Arc;

use strata::{Db, Error, MergeKind, ObjectStorage, Settings, Storage, TableOptions, WriteBatch};
use strata_tests::{copy_tree, StoreKind, TestHome, STORE_KINDS};

fn wal_settings() -> Settings {
    Settings {
        wal_enabled: true,
        flush_on_close: false,
        ..Settings::small_for_tests(4 << 20)
    }
}

fn wal_files(home: &TestHome) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(home.dir.path().join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

/// Writes 200 acknowledged batches into the WAL and "crashes" (drops without flushing).
fn write_wal(home: &TestHome) {
    let db = home.open(wal_settings()).unwrap();
    let t = db.default_table();
    for i in 0..200u32 {
        db.put(&t, &i.to_be_bytes(), &[i as u8; 40]).unwrap();
    }
    drop(db);
}

fn expect_corruption(r: strata::Result<Db>, what: &str) -> Error {
    match r {
        Err(e @ Error::Corruption { .. }) => e,
        Err(e) => panic!("{what}: expected Corruption, got {e}"),
        Ok(_) => panic!("{what}: the open succeeded"),
    }
}

#[test]
fn damage_inside_a_wal_fails_the_open_naming_file_and_offset() {
    for kind in STORE_KINDS {
        let home = TestHome::new(kind);
        write_wal(&home);
        let wals = wal_files(&home);
        let newest = wals.last().unwrap().clone();
        let good = std::fs::read(&newest).unwrap();
        // A flipped byte in the middle: valid records follow it.
        let mut bad = good.clone();
        bad[good.len() / 2] ^= 0x40;
        std::fs::write(&newest, &bad).unwrap();
        let e = expect_corruption(home.open(wal_settings()), "flipped byte");
        let msg = e.to_string();
        assert!(msg.contains(".log") && msg.contains("offset"), "{msg}");
        // Point-in-time recovery opens, with a consistent prefix of the writes.
        let pit = Settings {
            wal_recovery: strata::WalRecovery::PointInTime,
            ..wal_settings()
        };
        std::fs::write(&newest, &bad).unwrap();
        {
            let db = home.open(pit).unwrap();
            let t = db.default_table();
            let present: Vec<bool> = (0..200u32)
                .map(|i| db.get(&t, &i.to_be_bytes()).unwrap().is_some())
                .collect();
            let n = present.iter().take_while(|p| **p).count();
            assert!(n < 200 && present[n..].iter().all(|p| !p), "a prefix: {n}");
            db.close().unwrap();
        }
        // Truncated to half: the lost half is reported, not silently dropped.
        let home = TestHome::new(kind);
        write_wal(&home);
        let newest = wal_files(&home).last().unwrap().clone();
        let good = std::fs::read(&newest).unwrap();
        std::fs::write(&newest, &good[..good.len() / 2]).unwrap();
        // A cut inside a record is a torn tail: tolerated by default, refused under
        // absolute consistency.
        let strict = Settings {
            wal_recovery: strata::WalRecovery::AbsoluteConsistency,
            ..wal_settings()
        };
        expect_corruption(home.open(strict), "torn tail, absolute consistency");
        let db = home.open(wal_settings()).unwrap();
        assert!(db.recovery_info().wal_torn_bytes > 0);
        drop(db);
    }
}

#[test]
fn a_missing_wal_the_manifest_names_fails_the_open() {
    let home = TestHome::new(StoreKind::Local);
    write_wal(&home);
    for w in wal_files(&home) {
        std::fs::remove_file(w).unwrap();
    }
    let e = expect_corruption(home.open(wal_settings()), "deleted WAL");
    assert!(e.to_string().contains("missing"), "{e}");
}

#[test]
fn a_damaged_newest_manifest_fails_the_open_and_deletes_nothing() {
    for kind in STORE_KINDS {
        let home = TestHome::new(kind);
        let settings = Settings::small_for_tests(4 << 20);
        {
            let db = home.open(settings.clone()).unwrap();
            let t = db.default_table();
            for round in 0..3u32 {
                for i in 0..500u32 {
                    db.put(&t, &(round * 1000 + i).to_be_bytes(), &[7; 30])
                        .unwrap();
                }
                db.flush().unwrap();
            }
            db.close().unwrap();
        }
        let store = home.storage();
        let mut gens: Vec<String> = store
            .list("manifest/")
            .unwrap()
            .into_iter()
            .map(|o| o.path)
            .collect();
        gens.sort();
        let newest = gens.last().unwrap().clone();
        let good = store.read_all(&newest).unwrap();
        let tables_before = store.list("sst/").unwrap().len();
        let mut bad = good.to_vec();
        let mid = bad.len() / 2;
        bad[mid] ^= 1;
        store.put(&newest, bad.into()).unwrap();
        let e = expect_corruption(home.open(settings.clone()), "damaged manifest");
        assert!(e.to_string().contains("MANIFEST"), "{e}");
        assert_eq!(
            store.list("sst/").unwrap().len(),
            tables_before,
            "nothing deleted"
        );
        // Putting the good generation back recovers everything.
        store.put(&newest, good).unwrap();
        let db = home.open(settings.clone()).unwrap();
        let t = db.default_table();
        for round in 0..3u32 {
            for i in (0..500u32).step_by(37) {
                assert!(db
                    .get(&t, &(round * 1000 + i).to_be_bytes())
                    .unwrap()
                    .is_some());
            }
        }
        db.close().unwrap();
    }
}

#[test]
fn a_directory_opened_twice_is_refused() {
    let home = TestHome::new(StoreKind::Local);
    let db = home.open(Settings::small_for_tests(4 << 20)).unwrap();
    match home.open(Settings::small_for_tests(4 << 20)) {
        Err(Error::Busy(m)) => assert!(m.contains("LOCK"), "{m}"),
        Err(e) => panic!("expected Busy, got {e}"),
        Ok(_) => panic!("a second open of a locked directory succeeded"),
    }
    // Another process is refused too, and told who holds the lock.
    let probe = |dir: &std::path::Path| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_open_probe"))
            .arg(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let said = probe(home.dir.path());
    assert!(
        said.starts_with("busy:") && said.contains(&format!("pid {}", std::process::id())),
        "{said}"
    );
    db.close().unwrap();
    drop(db);
    // Released on close.
    assert_eq!(probe(home.dir.path()).trim(), "opened");
    home.open(Settings::small_for_tests(4 << 20)).unwrap();
}

#[test]
fn a_fenced_writer_cannot_commit_on_a_shared_store() {
    let store: Arc<dyn Storage> = Arc::new(ObjectStorage::memory().unwrap());
    let settings = Settings {
        flush_on_close: false,
        ..Settings::small_for_tests(4 << 20)
    };
    let old = Db::builder(settings.clone())
        .storage(store.clone())
        .open()
        .unwrap();
    let t = old.default_table();
    old.put(&t, b"before", b"1").unwrap();
    old.flush().unwrap();
    // A second writer takes over the store (as after a lost lease).
    let new = Db::builder(settings.clone())
        .storage(store.clone())
        .open()
        .unwrap();
    old.put(&t, b"stale", b"2").unwrap();
    match old.flush() {
        Err(Error::Busy(m)) => assert!(m.contains("epoch"), "{m}"),
        other => panic!("the fenced writer's flush returned {other:?}"),
    }
    assert!(
        old.put(&t, b"more", b"3").is_err(),
        "fenced writers refuse writes"
    );
    let t2 = new.default_table();
    assert_eq!(new.get(&t2, b"before").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(new.get(&t2, b"stale").unwrap(), None);
    new.put(&t2, b"after", b"4").unwrap();
    new.flush().unwrap();
    new.close().unwrap();
}

#[test]
fn merges_past_the_block_limit_are_kept_end_to_end() {
    for kind in STORE_KINDS {
        let home = TestHome::new(kind);
        let settings = Settings {
            memory_budget_bytes: 64 << 20,
            ..Settings::default()
        };
        let operand = vec![0xabu8; 1 << 20];
        {
            let db = home.open(settings.clone()).unwrap();
            let lists = db
                .create_table("lists", TableOptions::with_merge(MergeKind::Append))
                .unwrap();
            let other = db.default_table();
            for _ in 0..70 {
                db.merge(&lists, b"big", &operand).unwrap();
            }
            db.put(&other, b"unrelated", b"kept").unwrap();
            db.maintain().unwrap(); // pack into chunks
            db.flush().unwrap();
            // Full compaction folds every operand into one 70 MiB value in one block.
            db.compact_table(&lists).unwrap();
            let v = db.get(&lists, b"big").unwrap().unwrap();
            assert_eq!(v.len(), 70 << 20);
            db.merge(&lists, b"big", b"tail").unwrap();
            db.close().unwrap();
        }
        let db = home.open(settings).unwrap();
        let lists = db.table("lists").unwrap();
        let v = db.get(&lists, b"big").unwrap().unwrap();
        assert_eq!(v.len(), 70 * (1 << 20) + 4);
        assert!(v.ends_with(b"tail"));
        let other = db.default_table();
        assert_eq!(
            db.get(&other, b"unrelated").unwrap().as_deref(),
            Some(&b"kept"[..])
        );
        db.close().unwrap();
    }
}

#[test]
fn a_failed_flush_poisons_the_database() {
    let inner: Arc<dyn Storage> = Arc::new(ObjectStorage::memory().unwrap());
    let faulty = Arc::new(strata_dfs::testing::FaultyStorage::new(inner));
    let db = Db::builder(Settings::small_for_tests(4 << 20))
        .storage(faulty.clone())
        .open()
        .unwrap();
    let t = db.default_table();
    db.put(&t, b"k", b"v").unwrap();
    faulty.fail_puts_under("sst/");
    assert!(db.flush().is_err());
    assert!(matches!(db.put(&t, b"k2", b"v"), Err(Error::Poisoned(_))));
    faulty.heal();
}

#[test]
fn a_handle_of_another_database_is_rejected_everywhere() {
    let a = TestHome::new(StoreKind::Memory);
    let b = TestHome::new(StoreKind::Memory);
    let da = a.open(Settings::small_for_tests(4 << 20)).unwrap();
    let db = b.open(Settings::small_for_tests(4 << 20)).unwrap();
    let ta = da.create_table("t", TableOptions::default()).unwrap();
    let tb = db.create_table("t", TableOptions::default()).unwrap();
    assert_eq!(ta.id(), tb.id(), "same numeric id in both");
    let invalid = |r: strata::Result<()>, what: &str| {
        assert!(matches!(r, Err(Error::InvalidArgument(_))), "{what}: {r:?}");
    };
    invalid(da.put(&tb, b"k", b"v"), "put");
    invalid(da.delete(&tb, b"k"), "delete");
    let mut batch = WriteBatch::new();
    batch.put(&tb, b"k", b"v");
    invalid(da.write(batch), "batch");
    invalid(da.get(&tb, b"k").map(drop), "get");
    invalid(da.update(&tb, b"k", |_| None), "update");
    invalid(da.prefix(&tb, b"").map(drop), "iterate");
    invalid(da.multi_get(&tb, &[b"k"]).map(drop), "multi_get");
    assert_eq!(da.get(&ta, b"k").unwrap(), None, "nothing was written");
}

fn files_under(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_under(&p, out);
        } else if p.file_name().is_some_and(|n| n != "LOCK") {
            out.push(p);
        }
    }
}

/// Opens the damaged database and reads everything: each read is the model's value or a
/// `Corruption` error, never a wrong value or a silently missing key.
fn check_reported_or_harmless(
    home: &TestHome,
    settings: &Settings,
    model: &[(Vec<u8>, Vec<u8>)],
    what: &str,
) {
    let db = match home.open(settings.clone()) {
        Err(e) => {
            assert!(e.is_corruption(), "{what}: open failed with {e}");
            return;
        }
        Ok(db) => db,
    };
    let t = db.table("lists").unwrap();
    for (k, v) in model {
        match db.get(&t, k) {
            Ok(Some(got)) => assert_eq!(&got, v, "{what}: wrong value for {k:?}"),
            Ok(None) => panic!("{what}: {k:?} is missing without an error"),
            Err(e) => assert!(e.is_corruption(), "{what}: {e}"),
        }
    }
    let mut seen = 0;
    for kv in db.range(&t, b"", None).unwrap() {
        match kv {
            Ok((k, v)) => {
                let want = model.iter().find(|(mk, _)| *mk == k);
                assert_eq!(want.map(|(_, mv)| mv), Some(&v), "{what}: scan saw {k:?}");
                seen += 1;
            }
            Err(e) => {
                assert!(e.is_corruption(), "{what}: {e}");
                seen = model.len();
            }
        }
    }
    assert_eq!(
        seen,
        model.len(),
        "{what}: the scan lost keys without an error"
    );
    drop(db);
}

#[test]
fn flipped_bytes_in_any_file_are_reported_or_harmless() {
    for wal in [false, true] {
        let home = TestHome::new(StoreKind::Local);
        let settings = Settings {
            wal_enabled: wal,
            flush_on_close: false,
            ..Settings::small_for_tests(1 << 20)
        };
        let mut model = std::collections::BTreeMap::new();
        {
            let db = home.open(settings.clone()).unwrap();
            let t = db
                .create_table("lists", TableOptions::with_merge(MergeKind::Append))
                .unwrap();
            for round in 0..3u32 {
                for i in 0..1500u32 {
                    let k = format!("key{:05}", (i * 7 + round * 311) % 2000).into_bytes();
                    let op = [i % 5, round].iter().sum::<u32>() % 3;
                    let v = format!("r{round}i{i};").into_bytes();
                    match op {
                        0 => {
                            db.put(&t, &k, &v).unwrap();
                            model.insert(k, v);
                        }
                        1 => {
                            db.merge(&t, &k, &v).unwrap();
                            model
                                .entry(k)
                                .or_insert_with(Vec::new)
                                .extend_from_slice(&v);
                        }
                        _ => {
                            db.delete(&t, &k).unwrap();
                            model.remove(&k);
                        }
                    }
                }
                // Without the WAL everything must be flushed to be durable; with it the
                // last round lives only in the WAL.
                if round < 2 || !wal {
                    db.flush().unwrap();
                }
            }
            db.close().unwrap();
        }
        let model: Vec<(Vec<u8>, Vec<u8>)> = model.into_iter().collect();
        let pristine = tempfile::tempdir().unwrap();
        copy_tree(home.dir.path(), pristine.path());
        let mut files = Vec::new();
        files_under(home.dir.path(), &mut files);
        assert!(files
            .iter()
            .any(|f| f.to_string_lossy().contains("MANIFEST")));
        assert!(files
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "sst")));
        assert_eq!(
            files
                .iter()
                .any(|f| f.extension().is_some_and(|e| e == "log")),
            wal
        );
        let mut trials = 0;
        for f in &files {
            let good = std::fs::read(f).unwrap();
            let n = good.len();
            // The first and last bytes (headers, footers, checksums) and 14 spread between.
            let mut offsets: Vec<usize> = (0..16).map(|i| i * (n - 1) / 15).collect();
            offsets.extend([1, n.saturating_sub(5)]);
            offsets.sort_unstable();
            offsets.dedup();
            for off in offsets {
                copy_tree(pristine.path(), home.dir.path());
                let mut bad = good.clone();
                bad[off] ^= 0x5a;
                std::fs::write(f, &bad).unwrap();
                let what = format!("wal={wal} {} byte {off} of {n}", f.display());
                check_reported_or_harmless(&home, &settings, &model, &what);
                trials += 1;
            }
        }
        println!(
            "wal={wal}: {trials} damaged copies checked over {} files",
            files.len()
        );
        assert!(trials >= 20, "{trials} trials");
    }
}

#[test]
fn skip_mode_salvages_every_record_but_the_damaged_one() {
    let home = TestHome::new(StoreKind::Local);
    write_wal(&home);
    let newest = wal_files(&home).last().unwrap().clone();
    let mut bad = std::fs::read(&newest).unwrap();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x40;
    std::fs::write(&newest, &bad).unwrap();
    let skip = Settings {
        wal_recovery: strata::WalRecovery::SkipAnyCorruptedRecords,
        ..wal_settings()
    };
    let db = home.open(skip).unwrap();
    let info = db.recovery_info();
    assert!(info.wal_skipped_bytes > 0, "{info:?}");
    let t = db.default_table();
    let missing: Vec<u32> = (0..200u32)
        .filter(|i| db.get(&t, &i.to_be_bytes()).unwrap().is_none())
        .collect();
    assert_eq!(
        missing.len(),
        1,
        "only the damaged record's write: {missing:?}"
    );
    db.close().unwrap();
}
