//! Snapshots stay consistent while writers, chunk packing, flushes and compactions run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use strata::{Settings, WriteBatch};
use strata_tests::{TestHome, STORE_KINDS};

const ACCOUNTS: u64 = 400;
const TOTAL: u64 = ACCOUNTS * 1000;

fn key(i: u64) -> Vec<u8> {
    format!("acct-{i:05}").into_bytes()
}

#[test]
fn snapshots_see_atomic_batches_while_data_moves_between_tiers() {
    for kind in STORE_KINDS {
        let home = TestHome::new(kind);
        let mut s = Settings::small_for_tests(256 << 10);
        s.flush_on_close = false;
        let db = home.open(s).unwrap();
        let t = db.default_table();
        let mut b = WriteBatch::new();
        for i in 0..ACCOUNTS {
            b.put(&t, &key(i), &1000u64.to_le_bytes());
        }
        db.write(b).unwrap();
        let done = Arc::new(AtomicBool::new(false));
        std::thread::scope(|scope| {
            // Writers: move money between accounts in atomic batches, and pad with filler
            // writes so data keeps moving hot -> chunks -> tables.
            for w in 0..2u64 {
                let db = db.clone();
                let t = t.clone();
                let done = done.clone();
                scope.spawn(move || {
                    let mut x = w * 7919 + 1;
                    for step in 0..3000u64 {
                        x = x
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        let (a, c) = ((x >> 20) % ACCOUNTS, (x >> 40) % ACCOUNTS);
                        if a != c {
                            // Read-modify-write under a snapshot is racy between writers, so
                            // each writer owns half of the accounts.
                            let (a, c) = (a - a % 2 + w, c - c % 2 + w);
                            if a != c && a < ACCOUNTS && c < ACCOUNTS {
                                let va = u64::from_le_bytes(
                                    db.get(&t, &key(a)).unwrap().unwrap().try_into().unwrap(),
                                );
                                let vc = u64::from_le_bytes(
                                    db.get(&t, &key(c)).unwrap().unwrap().try_into().unwrap(),
                                );
                                let amt = va.min(7);
                                let mut b = WriteBatch::new();
                                b.put(&t, &key(a), &(va - amt).to_le_bytes());
                                b.put(&t, &key(c), &(vc + amt).to_le_bytes());
                                db.write(b).unwrap();
                            }
                        }
                        db.put(
                            &t,
                            format!("filler-{w}-{step:06}").as_bytes(),
                            &[step as u8; 48],
                        )
                        .unwrap();
                        if step % 1000 == 999 {
                            db.flush().unwrap();
                        }
                    }
                    done.store(true, Ordering::SeqCst);
                });
            }
            // Readers: every snapshot must see the total preserved, by point reads and by a
            // scan, even as the snapshot outlives further writes and tier moves.
            for _ in 0..2 {
                let db = db.clone();
                let t = t.clone();
                let done = done.clone();
                scope.spawn(move || {
                    let mut checks = 0;
                    while !done.load(Ordering::SeqCst) || checks < 5 {
                        let snap = db.snapshot();
                        let by_get: u64 = (0..ACCOUNTS)
                            .map(|i| {
                                u64::from_le_bytes(
                                    snap.get(&t, &key(i)).unwrap().unwrap().try_into().unwrap(),
                                )
                            })
                            .sum();
                        assert_eq!(
                            by_get, TOTAL,
                            "{kind:?}: snapshot point reads see a torn batch"
                        );
                        let by_scan: u64 = snap
                            .prefix(&t, b"acct-")
                            .unwrap()
                            .map(|r| u64::from_le_bytes(r.unwrap().1.try_into().unwrap()))
                            .sum();
                        assert_eq!(by_scan, TOTAL, "{kind:?}: snapshot scan sees a torn batch");
                        checks += 1;
                    }
                });
            }
        });
        let st = db.stats();
        assert!(
            st.middle.packs > 0 && st.tree.flushes > 0,
            "data did not move between tiers: {st}"
        );
        db.close().unwrap();
    }
}
