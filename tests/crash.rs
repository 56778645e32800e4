//! WAL on: a writer process is killed with SIGKILL mid-stream; on reopen every write it
//! acknowledged must be there. The writer is this test binary re-run in child mode.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use strata::{Db, MergeKind, Settings, TableOptions, WriteBatch};
use strata_tests::child_test;

const CHILD_ENV: &str = "STRATA_CRASH_CHILD_DIR";

fn settings() -> Settings {
    let mut s = Settings::small_for_tests(512 << 10);
    s.wal_enabled = true;
    s.wal_max_bytes = 256 << 10; // background flushes happen during the run too
    s.flush_on_close = false;
    s
}

fn key(i: u64) -> Vec<u8> {
    format!("k{:05}", i % 5000).into_bytes()
}

/// The writer: puts, list appends and batches, printing `ack <i>` after each write returns.
/// Runs until killed. Does nothing unless started by the parent test.
#[test]
#[ignore = "child process of wal_survives_sigkill"]
fn crash_child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let db = Db::open(&dir, settings()).unwrap();
    let t = db.default_table();
    let l = db
        .create_table("lists", TableOptions::with_merge(MergeKind::Append))
        .unwrap();
    for i in 0u64.. {
        match i % 3 {
            0 => db.put(&t, &key(i), &i.to_le_bytes()).unwrap(),
            1 => db.merge(&l, &key(i % 97), &i.to_le_bytes()).unwrap(),
            _ => {
                let mut b = WriteBatch::new();
                b.put(&t, &key(i), &i.to_le_bytes());
                b.merge(&l, &key(i % 97), &i.to_le_bytes());
                db.write(b).unwrap();
            }
        }
        println!("ack {i}");
    }
}

#[test]
fn wal_survives_sigkill() {
    for (round, kill_after) in [(0, 3_000u64), (1, 12_000), (2, 25_000)] {
        let dir = tempfile::tempdir().unwrap();
        let mut child = child_test("crash_child_writer", CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut acked: Option<u64> = None;
        let mut line = String::new();
        while out.read_line(&mut line).unwrap() > 0 {
            if let Some(n) = line.trim().strip_prefix("ack ") {
                acked = Some(n.parse().unwrap());
                if acked.unwrap() + 1 >= kill_after {
                    child.kill().unwrap(); // SIGKILL
                    break;
                }
            }
            line.clear();
        }
        // Lines already in the pipe were acknowledged before the kill too.
        for l in out.lines() {
            if let Some(n) = l.unwrap().trim().strip_prefix("ack ") {
                acked = Some(n.parse().unwrap());
            }
        }
        child.wait().unwrap();
        let acked = acked.expect("the child acknowledged writes");
        assert!(acked + 1 >= kill_after, "child died early at {acked}");

        let db = Db::open(dir.path(), settings()).unwrap();
        let info = db.recovery_info();
        assert!(
            info.wal_batches_replayed > 0,
            "round {round}: nothing replayed"
        );
        let t = db.default_table();
        let l = db.table("lists").unwrap();
        // Every acknowledged put: the newest acknowledged write to each key (or a later one
        // that was in flight, which must then be the next write to that key).
        for i in acked.saturating_sub(4999)..=acked {
            if i % 3 == 1 {
                continue;
            }
            let got = db
                .get(&t, &key(i))
                .unwrap()
                .expect("acknowledged put is missing");
            let got = u64::from_le_bytes(got.try_into().unwrap());
            assert!(got >= i, "round {round}: key {i} went back to {got}");
        }
        // Every acknowledged list append, in order, with nothing duplicated.
        for k in 0..97u64 {
            let got = db.get(&l, &key(k)).unwrap().unwrap_or_default();
            let got: Vec<u64> = got
                .chunks(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
                .collect();
            let want: Vec<u64> = (0..=acked).filter(|i| i % 3 != 0 && i % 97 == k).collect();
            assert!(
                got.len() >= want.len(),
                "round {round}: list {k} lost appends"
            );
            assert_eq!(
                &got[..want.len()],
                &want[..],
                "round {round}: list {k} differs"
            );
            assert!(
                got.len() <= want.len() + 1,
                "round {round}: list {k} has duplicates"
            );
        }
        db.close().unwrap();
    }
}

/// Regression (CI, 2026-11): a crash between creating a new WAL and committing the manifest
/// that names it leaves a WAL numbered at or above the recovered next file number. Reopening
/// must not hand that number to its own new WAL ("File exists"), and must lose nothing.
#[test]
fn stray_wals_from_a_crash_before_the_manifest_commit_are_not_reused() {
    let home = strata_tests::TestHome::new(strata_tests::StoreKind::Local);
    let mut s = Settings::small_for_tests(1 << 20);
    s.wal_enabled = true;
    let db = home.open(s.clone()).unwrap();
    let t = db.default_table();
    db.put(&t, b"before", b"1").unwrap();
    db.flush().unwrap();
    db.put(&t, b"logged", b"2").unwrap();
    db.close().unwrap();
    let wal_dir = home.dir.path().join("wal");
    let newest = std::fs::read_dir(&wal_dir)
        .unwrap()
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".log")?
                .parse::<u64>()
                .ok()
        })
        .max()
        .expect("a WAL file");
    // What the crash left: WAL files created (empty: nothing written or acknowledged) with
    // every number the reopened database could pick next.
    for n in newest + 1..=newest + 64 {
        std::fs::write(wal_dir.join(format!("{n:020}.log")), b"").unwrap();
    }
    let db = home.open(s.clone()).unwrap();
    db.put(&t, b"after", b"3").unwrap();
    db.flush().unwrap();
    db.put(&t, b"after-flush", b"4").unwrap();
    db.close().unwrap();
    let db = home.open(s).unwrap();
    for (k, v) in [
        (&b"before"[..], &b"1"[..]),
        (b"logged", b"2"),
        (b"after", b"3"),
        (b"after-flush", b"4"),
    ] {
        assert_eq!(db.get(&t, k).unwrap().as_deref(), Some(v), "{k:?}");
    }
    db.close().unwrap();
}

/// A reopen whose level 0 is over the compaction trigger compacts at once; that compaction
/// must see the table's merge operator (no background work starts before the recovered
/// tables are registered), or it folds operands without their base and the lost base is
/// silently gone. Found by the `ops` fuzz target.
#[test]
fn compaction_at_open_keeps_merge_bases() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Settings::small_for_tests(1 << 20);
    s.compaction.l0_trigger = 40;
    s.compaction.l0_stop = 50;
    let mut want = std::collections::BTreeMap::new();
    {
        let db = Db::open(dir.path(), s.clone()).unwrap();
        let t = db
            .create_table("lists", TableOptions::with_merge(MergeKind::Append))
            .unwrap();
        // One level-0 file per round: a base, then operands on top of it in later files,
        // and a tombstone under an operand.
        for round in 0..12u8 {
            for k in 0..8u8 {
                let key = [b'k', k];
                let v = [round, k];
                match (round, k % 3) {
                    (0, _) => db.put(&t, &key, &v).unwrap(),
                    (5, 0) => db.delete(&t, &key).unwrap(),
                    _ => db.merge(&t, &key, &v).unwrap(),
                }
                let e: &mut Vec<u8> = want.entry(key.to_vec()).or_default();
                if (round, k % 3) == (5, 0) {
                    e.clear();
                } else if round == 0 {
                    *e = v.to_vec();
                } else {
                    e.extend_from_slice(&v);
                }
            }
            db.flush().unwrap();
        }
        db.close().unwrap();
    }
    s.compaction.l0_trigger = 2;
    s.compaction.l0_stop = 60;
    for _ in 0..5 {
        let db = Db::open(dir.path(), s.clone()).unwrap();
        db.wait_for_compactions().unwrap();
        let t = db.table("lists").unwrap();
        for (k, v) in &want {
            let got = db.get(&t, k).unwrap();
            let want = (!v.is_empty()).then(|| v.clone());
            assert_eq!(got, want, "key {k:?} after a compaction at open");
        }
        db.close().unwrap();
    }
}
