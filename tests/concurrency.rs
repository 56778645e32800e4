//! Snapshots stay consistent while writers, chunk packing, flushes and compactions run.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
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

/// A scan of a range whose hot entries are all clean is answered by the lower tiers alone;
/// a flush in flight has cleared the flags of entries whose files are not yet committed.
/// One writer rewrites every key of a routed prefix with the round number in one batch,
/// waits until a reader has seen that round, and flushes; readers scan the prefix and must
/// see every key, all from one round, and never an older round than a scan before (a scan
/// that trusted a flag cleared by the in-flight flush would read the previous round from the
/// tables).
#[test]
fn scans_of_clean_ranges_never_go_back_while_a_flush_runs() {
    const KEYS: u32 = 2000;
    const ROUNDS: u32 = 60;
    for kind in STORE_KINDS {
        let home = TestHome::new(kind);
        let mut s = Settings::small_for_tests(8 << 20);
        s.flush_on_close = false;
        let db = home.open(s).unwrap();
        let t = db
            .create_table(
                "routed",
                strata::TableOptions {
                    prefix_len: 4,
                    ..Default::default()
                },
            )
            .unwrap();
        let key = |i: u32| [b"pfx-".as_slice(), &i.to_be_bytes()].concat();
        let done = AtomicBool::new(false);
        let seen = AtomicU32::new(0);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for round in 1..=ROUNDS {
                    let mut b = WriteBatch::new();
                    for i in 0..KEYS {
                        b.put(&t, &key(i), &round.to_le_bytes());
                    }
                    db.write(b).unwrap();
                    while seen.load(Ordering::SeqCst) < round {
                        std::thread::yield_now();
                    }
                    db.flush().unwrap();
                }
                done.store(true, Ordering::SeqCst);
            });
            for _ in 0..2 {
                scope.spawn(|| {
                    let mut last = 0u32;
                    while !done.load(Ordering::SeqCst) {
                        let rounds: Vec<u32> = db
                            .prefix(&t, b"pfx-")
                            .unwrap()
                            .map(|r| u32::from_le_bytes(r.unwrap().1.try_into().unwrap()))
                            .collect();
                        if rounds.is_empty() && last == 0 {
                            continue;
                        }
                        assert_eq!(rounds.len(), KEYS as usize, "{kind:?}: keys missing");
                        assert!(
                            rounds.iter().all(|r| *r == rounds[0]),
                            "{kind:?}: a torn batch"
                        );
                        assert!(
                            rounds[0] >= last,
                            "{kind:?}: a scan saw round {} after round {last}",
                            rounds[0]
                        );
                        last = rounds[0];
                        seen.fetch_max(last, Ordering::SeqCst);
                    }
                });
            }
        });
        db.close().unwrap();
    }
}
