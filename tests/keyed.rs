//! Keyed state semantics: every state kind, namespaces, key groups, TTL, timers, batched
//! reads; each checked again after flush, compaction and reopen.

use std::collections::BTreeSet;
use std::sync::Arc;

use strata::keyed::{java_bytes_hash, key_group_for_hash, murmur_hash};
use strata::{
    Db, KeyGroupRange, KeyedBackend, ManualClock, ObjectStorage, Settings, State, StateDescriptor,
    StateKind, Storage, TimeDomain, Timer, TimerService, TtlConfig, TtlUpdate, TtlVisibility,
};
use strata_dfs::testing::FaultyStorage;
use strata_tests::{TestHome, STORE_KINDS};

const MAX_PAR: u16 = 128;

fn backend(db: &Db) -> KeyedBackend {
    KeyedBackend::new(db.clone(), MAX_PAR, KeyGroupRange::new(0, MAX_PAR - 1)).unwrap()
}

fn sum() -> StateKind {
    StateKind::Reducing(Arc::new(|a: &[u8], b: &[u8]| {
        let x =
            u64::from_le_bytes(a.try_into().unwrap()) + u64::from_le_bytes(b.try_into().unwrap());
        x.to_le_bytes().to_vec()
    }))
}

#[test]
fn flink_key_group_assignment() {
    assert!((0..10_000).all(|h| murmur_hash(h) >= 0));
    let groups: BTreeSet<u16> = (0..10_000).map(|h| key_group_for_hash(h, 128)).collect();
    assert_eq!(groups.len(), 128, "keys spread over every group");
    // Operator ranges partition the key groups exactly.
    let ranges: Vec<KeyGroupRange> = (0..3)
        .map(|i| KeyGroupRange::for_operator(128, 3, i))
        .collect();
    assert_eq!(ranges[0].start, 0);
    assert_eq!(ranges[2].end, 127);
    assert!(ranges.windows(2).all(|w| w[0].end + 1 == w[1].start));
}

/// Vectors printed by `tests/golden/KeyGroupVectors.java` (Java 17), which computes them
/// the way Flink does: `Arrays.hashCode(byte[])`, `MathUtils.murmurHash`, and
/// `KeyGroupRangeAssignment`'s operator ranges.
#[test]
fn key_groups_match_java_flink_vectors() {
    #[rustfmt::skip]
    let keys: &[(&[i8], i32, i32, u16, u16)] = &[
        (&[], 1, 68075478, 86, 16342),
        (&[0], 31, 1168509563, 123, 2683),
        (&[1], 32, 606617892, 36, 16676),
        (&[-1], 30, 173947034, 26, 14490),
        (&[112,97,103,101,45,55], -108250182, 535599443, 83, 6483),
        (&[100,101,118,105,99,101,45,49,50,51,52,53,54], -555192487, 480923171, 35, 20003),
        (&[0,0,0,42], 923563, 2012219000, 120, 1656),
        (&[-128,0,0,0,0,0,0,1], -1548877950, 1270196553, 73, 10569),
        (&[104,101,108,108,111,32,119,111,114,108,100], 1923188771, 1490529740, 76, 11724),
    ];
    for &(key, java_hash, murmur, kg128, kg32768) in keys {
        let bytes: Vec<u8> = key.iter().map(|&b| b as u8).collect();
        assert_eq!(java_bytes_hash(&bytes), java_hash, "{bytes:?}");
        assert_eq!(murmur_hash(java_hash), murmur, "{bytes:?}");
        assert_eq!(key_group_for_hash(java_hash, 128), kg128, "{bytes:?}");
        assert_eq!(key_group_for_hash(java_hash, 32768), kg32768, "{bytes:?}");
    }
    let ranges = [
        ((128, 3, 0), (0, 42)),
        ((128, 3, 1), (43, 85)),
        ((128, 3, 2), (86, 127)),
        ((32768, 7, 6), (28087, 32767)),
        ((10, 4, 3), (8, 9)),
    ];
    for ((max_par, par, index), (start, end)) in ranges {
        assert_eq!(
            KeyGroupRange::for_operator(max_par, par, index),
            KeyGroupRange::new(start, end),
            "operator {index} of {par}, max parallelism {max_par}"
        );
    }
}

#[test]
fn every_state_kind_survives_flush_compaction_and_reopen() {
    for kind in STORE_KINDS {
        let home = TestHome::new(kind);
        let settings = Settings::small_for_tests(1 << 20);
        let register = |b: &KeyedBackend| {
            let reg = |name: &str, kind| b.register(StateDescriptor::new(name, kind)).unwrap();
            (
                reg("v", StateKind::Value),
                reg("l", StateKind::List),
                reg("m", StateKind::Map),
                reg("r", sum()),
            )
        };
        let check = |b: &KeyedBackend,
                     v: &strata::State,
                     l: &strata::State,
                     m: &strata::State,
                     r: &strata::State| {
            for i in 0..300u64 {
                let k = i.to_be_bytes();
                assert_eq!(
                    b.value_get(v, &k, b"w1").unwrap(),
                    Some(i.to_le_bytes().to_vec())
                );
                assert_eq!(
                    b.value_get(v, &k, b"w2").unwrap(),
                    None,
                    "namespaces are separate"
                );
                assert_eq!(
                    b.list_get(l, &k, b"w1").unwrap(),
                    vec![b"a".to_vec(), i.to_string().into_bytes(), b"c".to_vec()]
                );
                let keys = b.map_keys(m, &k, b"w1").unwrap();
                assert_eq!(keys, vec![b"u1".to_vec(), b"u2".to_vec(), b"u3".to_vec()]);
                assert_eq!(
                    b.map_get(m, &k, b"w1", b"u2").unwrap(),
                    Some(b"v2".to_vec())
                );
                assert!(!b.map_contains(m, &k, b"w1", b"u9").unwrap());
                assert_eq!(
                    b.get(r, &k, b"w1").unwrap(),
                    Some((3 * i).to_le_bytes().to_vec())
                );
            }
        };
        {
            let db = home.open(settings.clone()).unwrap();
            let b = backend(&db);
            let (v, l, m, r) = register(&b);
            for i in 0..300u64 {
                let k = i.to_be_bytes();
                b.value_update(&v, &k, b"w1", &i.to_le_bytes()).unwrap();
                b.list_add(&l, &k, b"w1", b"a").unwrap();
                b.list_add_all(&l, &k, b"w1", &[i.to_string().as_bytes(), b"c"])
                    .unwrap();
                b.map_put_all(&m, &k, b"w1", &[(b"u3", b"v3"), (b"u1", b"v1")])
                    .unwrap();
                b.map_put(&m, &k, b"w1", b"u2", b"v2").unwrap();
                b.map_put(&m, &k, b"w1", b"u4", b"v4").unwrap();
                b.map_remove(&m, &k, b"w1", b"u4").unwrap();
                for _ in 0..3 {
                    b.add(&r, &k, b"w1", &i.to_le_bytes()).unwrap();
                }
            }
            check(&b, &v, &l, &m, &r);
            db.flush().unwrap();
            check(&b, &v, &l, &m, &r);
            db.compact().unwrap();
            check(&b, &v, &l, &m, &r);
            db.close().unwrap();
        }
        let db = home.open(settings).unwrap();
        let b = backend(&db);
        let (v, l, m, r) = register(&b);
        check(&b, &v, &l, &m, &r);
        // Clearing a namespace removes only that namespace.
        let k = 7u64.to_be_bytes();
        b.map_put(&m, &k, b"w2", b"x", b"y").unwrap();
        b.clear(&m, &k, b"w1").unwrap();
        assert!(b.map_is_empty(&m, &k, b"w1").unwrap());
        assert_eq!(b.map_values(&m, &k, b"w2").unwrap(), vec![b"y".to_vec()]);
        b.list_update(&l, &k, b"w1", &[b"only"]).unwrap();
        assert_eq!(b.list_get(&l, &k, b"w1").unwrap(), vec![b"only".to_vec()]);
        b.clear(&v, &k, b"w1").unwrap();
        assert_eq!(b.value_get(&v, &k, b"w1").unwrap(), None);
        // keys(state, namespace): exactly the keys with data there.
        let mut keys = b.keys(&m, b"w2").unwrap();
        keys.sort();
        assert_eq!(keys, vec![k.to_vec()]);
        assert_eq!(b.keys(&v, b"w1").unwrap().len(), 299);
        // A kind mismatch is rejected.
        assert!(b
            .register(StateDescriptor::new("v", StateKind::List))
            .is_err());
        assert!(b
            .register(StateDescriptor::new("v", StateKind::Value).with_fixed_lengths(8, 2))
            .is_err());
        assert!(b.add(&v, &k, b"w1", b"x").is_err());
    }
}

#[test]
fn merge_namespaces_for_session_windows() {
    let home = TestHome::new(strata_tests::StoreKind::Memory);
    let db = home.open(Settings::small_for_tests(1 << 20)).unwrap();
    let b = backend(&db);
    let l = b
        .register(StateDescriptor::new("l", StateKind::List))
        .unwrap();
    let r = b.register(StateDescriptor::new("r", sum())).unwrap();
    let v = b
        .register(StateDescriptor::new("v", StateKind::Value))
        .unwrap();
    b.list_add(&l, b"k", b"s1", b"a").unwrap();
    b.list_add(&l, b"k", b"s2", b"b").unwrap();
    b.list_add(&l, b"k", b"s3", b"c").unwrap();
    b.add(&r, b"k", b"s1", &1u64.to_le_bytes()).unwrap();
    b.add(&r, b"k", b"s2", &2u64.to_le_bytes()).unwrap();
    b.merge_namespaces(&l, b"k", b"s1", &[b"s2", b"s3"])
        .unwrap();
    b.merge_namespaces(&r, b"k", b"s9", &[b"s1", b"s2"])
        .unwrap();
    assert_eq!(
        b.list_get(&l, b"k", b"s1").unwrap(),
        vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
    );
    assert!(b.list_get(&l, b"k", b"s2").unwrap().is_empty());
    assert_eq!(
        b.get(&r, b"k", b"s9").unwrap(),
        Some(3u64.to_le_bytes().to_vec())
    );
    assert_eq!(b.get(&r, b"k", b"s1").unwrap(), None);
    assert!(b.merge_namespaces(&v, b"k", b"a", &[b"b"]).is_err());
}

#[test]
fn key_groups_reject_outside_access_and_iterate_exactly() {
    let home = TestHome::new(strata_tests::StoreKind::Memory);
    let db = home.open(Settings::small_for_tests(1 << 20)).unwrap();
    let all = backend(&db);
    let v = all
        .register(StateDescriptor::new("v", StateKind::Value))
        .unwrap();
    let mut by_group: std::collections::BTreeMap<u16, BTreeSet<Vec<u8>>> = Default::default();
    for i in 0..2000u64 {
        let k = i.to_be_bytes();
        all.value_update(&v, &k, b"", b"x").unwrap();
        by_group
            .entry(all.key_group_of(&k))
            .or_default()
            .insert(k.to_vec());
    }
    db.flush().unwrap();
    let part = KeyedBackend::new(db.clone(), MAX_PAR, KeyGroupRange::new(10, 20)).unwrap();
    let pv = part
        .register(StateDescriptor::new("v", StateKind::Value))
        .unwrap();
    let outside = (0..2000u64)
        .map(|i| i.to_be_bytes())
        .find(|k| !(10..=20).contains(&part.key_group_of(k)))
        .unwrap();
    assert!(part.value_get(&pv, &outside, b"").is_err());
    assert!(part.value_update(&pv, &outside, b"", b"y").is_err());
    assert!(part.raw_get(&pv, &[200]).is_err());
    let mut seen: BTreeSet<Vec<u8>> = BTreeSet::new();
    part.for_each_entry(&pv, KeyGroupRange::new(12, 15), &mut |e| {
        assert!((12..=15).contains(&e.key_group));
        assert!(seen.insert(e.key.clone()));
        Ok(())
    })
    .unwrap();
    let expected: BTreeSet<Vec<u8>> = (12..=15)
        .flat_map(|g| by_group.get(&g).cloned().unwrap_or_default())
        .collect();
    assert_eq!(seen, expected);
    assert!(part
        .for_each_entry(&pv, KeyGroupRange::new(5, 15), &mut |_| Ok(()))
        .is_err());
    assert!(KeyedBackend::new(db.clone(), 128, KeyGroupRange::new(0, 128)).is_err());
}

/// Value state "v" and list state "l" of `b`, both with a `ttl_ms` TTL (defaults otherwise).
fn ttl_value_and_list(b: &KeyedBackend, ttl_ms: u64) -> (State, State) {
    let reg = |name: &str, kind| {
        b.register(StateDescriptor::new(name, kind).with_ttl(TtlConfig::new(ttl_ms)))
            .unwrap()
    };
    (reg("v", StateKind::Value), reg("l", StateKind::List))
}

fn ttl_db(home: &TestHome, clock: Arc<ManualClock>) -> Db {
    let mut s = Settings::small_for_tests(1 << 20);
    s.wal_dir = Some(home.dir.path().join("wal"));
    Db::builder(s)
        .storage(home.storage())
        .clock(clock)
        .open()
        .unwrap()
}

#[test]
fn ttl_expiry_never_returns_expired_values_and_list_elements() {
    let home = TestHome::new(strata_tests::StoreKind::Memory);
    let clock = Arc::new(ManualClock::new(1_000));
    let db = ttl_db(&home, clock.clone());
    let b = backend(&db);
    let (v, l) = ttl_value_and_list(&b, 100);
    let lax = b
        .register(
            StateDescriptor::new("lax", StateKind::Value).with_ttl(TtlConfig {
                ttl_ms: 100,
                update: TtlUpdate::OnReadAndWrite,
                visibility: TtlVisibility::ReturnExpiredIfNotCleanedUp,
            }),
        )
        .unwrap();
    b.value_update(&v, b"k", b"", b"x").unwrap();
    b.value_update(&lax, b"k", b"", b"y").unwrap();
    b.list_add(&l, b"k", b"", b"old").unwrap();
    clock.advance(60);
    b.list_add(&l, b"k", b"", b"new").unwrap();
    assert_eq!(
        b.value_get(&lax, b"k", b"").unwrap(),
        Some(b"y".to_vec()),
        "read refreshes"
    );
    clock.advance(50); // v and "old" are 110 ms old; "new" 50 ms; lax was refreshed 50 ms ago
    assert_eq!(b.value_get(&v, b"k", b"").unwrap(), None);
    assert_eq!(
        b.list_get(&l, b"k", b"").unwrap(),
        vec![b"new".to_vec()],
        "per-element expiry"
    );
    assert_eq!(b.value_get(&lax, b"k", b"").unwrap(), Some(b"y".to_vec()));
    clock.advance(200);
    assert_eq!(
        b.value_get(&lax, b"k", b"").unwrap(),
        Some(b"y".to_vec()),
        "expired but not cleaned up"
    );
    assert!(b.list_get(&l, b"k", b"").unwrap().is_empty());
}

#[test]
fn ttl_space_is_reclaimed_by_flush_and_compaction() {
    let home = TestHome::new(strata_tests::StoreKind::Memory);
    let clock = Arc::new(ManualClock::new(1_000));
    let db = ttl_db(&home, clock.clone());
    let b = backend(&db);
    let (v, l) = ttl_value_and_list(&b, 1_000);
    let value = vec![7u8; 100];
    for i in 0..5_000u64 {
        b.value_update(&v, &i.to_be_bytes(), b"", &value).unwrap();
        b.list_add(&l, &i.to_be_bytes(), b"", &value).unwrap();
    }
    db.compact().unwrap();
    let table_bytes = |db: &Db| db.stats().tree.bytes_per_level.iter().sum::<u64>();
    let before = table_bytes(&db);
    // Half the lists get a fresh element, then everything older expires.
    clock.advance(900);
    for i in 0..2_500u64 {
        b.list_add(&l, &i.to_be_bytes(), b"", b"fresh").unwrap();
    }
    clock.advance(200);
    // A full compaction to the bottom applies the filter everywhere and drops the
    // tombstones it leaves.
    db.compact_table(v.table()).unwrap();
    db.compact_table(l.table()).unwrap();
    let after = table_bytes(&db);
    println!("table bytes before expiry {before}, after compaction {after}");
    assert!(
        after * 4 < before,
        "expired data reclaimed: {before} -> {after} bytes"
    );
    for i in (0..5_000u64).step_by(97) {
        assert_eq!(b.value_get(&v, &i.to_be_bytes(), b"").unwrap(), None);
        let want: Vec<Vec<u8>> = if i < 2_500 {
            vec![b"fresh".to_vec()]
        } else {
            vec![]
        };
        assert_eq!(b.list_get(&l, &i.to_be_bytes(), b"").unwrap(), want);
    }
}

#[test]
fn timers_fire_in_order_deduplicated_and_deleted_beyond_memory() {
    let home = TestHome::new(strata_tests::StoreKind::Local);
    // Far more timers than the 1 MiB budget holds in memory.
    let db = home.open(Settings::small_for_tests(1 << 20)).unwrap();
    let b = backend(&db);
    let ts = TimerService::new(&b, "win").unwrap();
    let n = 200_000u64;
    let timer = |i: u64| Timer {
        timestamp: (i * 7919) % 100_000,
        key_group: (i % 128) as u16,
        key: i.to_be_bytes().to_vec(),
        namespace: b"ns".to_vec(),
    };
    for i in 0..n {
        ts.register(TimeDomain::EventTime, &timer(i)).unwrap();
    }
    for i in 0..1_000 {
        ts.register(TimeDomain::EventTime, &timer(i)).unwrap(); // duplicates
    }
    for i in (0..n).step_by(10) {
        ts.delete(TimeDomain::EventTime, &timer(i)).unwrap();
    }
    ts.register(TimeDomain::ProcessingTime, &timer(3)).unwrap();
    assert!(
        db.stats().tree.bytes_per_level.iter().sum::<u64>() > 0,
        "timers spilled to table files"
    );
    let mut fired = Vec::new();
    for wm in [10_000u64, 50_000, 99_999] {
        ts.poll(TimeDomain::EventTime, wm, &mut |t| {
            assert!(t.timestamp <= wm);
            fired.push(t);
            Ok(())
        })
        .unwrap();
    }
    let mut expected: Vec<Timer> = (0..n).filter(|i| i % 10 != 0).map(timer).collect();
    expected.sort();
    assert_eq!(
        fired.len(),
        expected.len(),
        "each registered timer fires once"
    );
    assert_eq!(
        fired, expected,
        "timestamp order, deduplicated, deleted ones never fire"
    );
    assert_eq!(ts.next_timestamp(TimeDomain::EventTime).unwrap(), None);
    assert_eq!(
        ts.next_timestamp(TimeDomain::ProcessingTime).unwrap(),
        Some(timer(3).timestamp)
    );
    // A timer registered behind the last poll still fires.
    ts.register(TimeDomain::EventTime, &timer(5)).unwrap();
    let mut again = 0;
    ts.poll(TimeDomain::EventTime, 99_999, &mut |_| {
        again += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(again, 1);
}

/// An in-memory store that counts (and can delay) reads.
fn counting_store() -> Arc<FaultyStorage> {
    let mem: Arc<dyn Storage> = Arc::new(ObjectStorage::memory().unwrap());
    Arc::new(FaultyStorage::new(mem))
}

/// The full-range backend over `db` and its value state "v" (no TTL).
fn value_state(db: &Db) -> (KeyedBackend, State) {
    let b = backend(db);
    let v = b
        .register(StateDescriptor::new("v", StateKind::Value))
        .unwrap();
    (b, v)
}

/// A value state with `n` keys (values `[fill; 64]`) compacted into table files of an
/// in-memory store that counts (and can delay) reads, under a `budget`-byte memory budget.
fn stored_values(budget: u64, n: u64, fill: u8) -> (Arc<FaultyStorage>, Db, KeyedBackend, State) {
    let slow = counting_store();
    let db = Db::builder(Settings::small_for_tests(budget))
        .storage(slow.clone())
        .open()
        .unwrap();
    let (b, v) = value_state(&db);
    for i in 0..n {
        b.value_update(&v, &i.to_be_bytes(), b"", &[fill; 64])
            .unwrap();
    }
    db.compact().unwrap();
    (slow, db, b, v)
}

#[test]
fn batched_gets_read_below_memory_in_parallel() {
    let n = 20_000u64;
    let (slow, _db, b, v) = stored_values(1 << 20, n, 9);
    slow.set_read_latency(std::time::Duration::from_millis(2));
    let keys: Vec<[u8; 8]> = (0..64u64).map(|i| (i * 311 % n).to_be_bytes()).collect();
    let batch: Vec<(&[u8], &[u8])> = keys.iter().map(|k| (&k[..], &b""[..])).collect();
    let reads0 = slow.reads();
    let t = std::time::Instant::now();
    let got = b.value_multi_get(&v, &batch).unwrap();
    let batched = t.elapsed();
    let batched_reads = slow.reads() - reads0;
    assert!(got.iter().all(|g| g.as_deref() == Some(&[9u8; 64][..])));
    assert!(slow.max_in_flight() > 1, "reads below memory overlap");
    // The same number of different keys, one at a time.
    let keys2: Vec<[u8; 8]> = (0..64u64)
        .map(|i| (i * 313 % n + 1).min(n - 1).to_be_bytes())
        .collect();
    let reads1 = slow.reads();
    let t = std::time::Instant::now();
    for k in &keys2 {
        assert!(b.value_get(&v, k, b"").unwrap().is_some());
    }
    let sequential = t.elapsed();
    println!(
        "64 gets with 2 ms store latency: batched {batched:?} ({batched_reads} reads, max {} in flight), one by one {sequential:?} ({} reads)",
        slow.max_in_flight(),
        slow.reads() - reads1
    );
}

/// A batch whose blocks are cached is answered from memory, with no storage read.
#[test]
fn batched_gets_that_memory_answers_read_no_storage() {
    let n = 100_000u64;
    let (slow, _db, b, v) = stored_values(4 << 20, n, 7);
    let keys: Vec<[u8; 8]> = (0..64u64).map(|i| (i * 1543 % n).to_be_bytes()).collect();
    let batch: Vec<(&[u8], &[u8])> = keys.iter().map(|k| (&k[..], &b""[..])).collect();
    let reads0 = slow.reads();
    let cold = b.value_multi_get(&v, &batch).unwrap();
    assert!(cold.iter().all(|g| g.as_deref() == Some(&[7u8; 64][..])));
    assert!(slow.reads() > reads0, "the first batch reads table files");
    let reads1 = slow.reads();
    assert_eq!(b.value_multi_get(&v, &batch).unwrap(), cold);
    assert_eq!(
        slow.reads() - reads1,
        0,
        "the repeated batch is answered from memory"
    );
}

/// A batch whose reader threads all need the same table file, not yet open, opens it once:
/// the file's footer, index and filter are fetched once, not once per thread.
#[test]
fn batched_gets_open_a_cold_file_once() {
    let slow = counting_store();
    let open = || {
        let db = Db::builder(Settings::small_for_tests(4 << 20))
            .storage(slow.clone())
            .open()
            .unwrap();
        let (b, v) = value_state(&db);
        (db, b, v)
    };
    let (db, b, v) = open();
    // 4 KiB values: each key has a data block of its own, all in one file.
    let keys: Vec<[u8; 8]> = (0..16u64).map(u64::to_be_bytes).collect();
    for k in &keys {
        b.value_update(&v, k, b"", &[5u8; 4096]).unwrap();
    }
    db.close().unwrap();
    slow.set_read_latency(std::time::Duration::from_millis(2));
    // What opening the file plus reading one block costs.
    let (db, b, v) = open();
    let reads0 = slow.reads();
    assert!(b.value_get(&v, &keys[0], b"").unwrap().is_some());
    let open_reads = slow.reads() - reads0 - 1;
    db.close().unwrap();
    // All 16 at once, on a freshly opened database.
    let (db, b, v) = open();
    let batch: Vec<(&[u8], &[u8])> = keys.iter().map(|k| (&k[..], &b""[..])).collect();
    let reads1 = slow.reads();
    let got = b.value_multi_get(&v, &batch).unwrap();
    assert!(got.iter().all(|g| g.as_deref() == Some(&[5u8; 4096][..])));
    assert_eq!(
        slow.reads() - reads1,
        open_reads + keys.len() as u64,
        "one open ({open_reads} reads) and one read per block"
    );
    db.close().unwrap();
}
