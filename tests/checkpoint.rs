//! Checkpoints, restore and rescaling (issue 12), on the local directory, the memory store
//! and the real S3-compatible server `tests/run.sh` starts (required in CI): every restore
//! is checked against a model (`BTreeMap`) of the state at the checkpoint.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use strata::keyed::{java_bytes_hash, key_group_for_hash};
use strata::{
    CheckpointStore, Db, Error, KeyGroupRange, KeyGroups, KeyedBackend, MergeKind, ObjectStorage,
    RestoreSource, Settings, State, StateDescriptor, StateKind, Storage, Table, TableOptions,
    TimeDomain, Timer, TimerService, TtlConfig, TtlUpdate, TtlVisibility,
};
use strata_dfs::testing::FaultyStorage;
use strata_tests::{child_test, s3_settings, StoreKind, TestHome, STORE_KINDS};

fn settings() -> Settings {
    Settings {
        flush_on_close: false,
        ..Settings::small_for_tests(1 << 20)
    }
}

/// A checkpoint store of each kind: a local directory, a memory store, and S3 when a server
/// is configured (required with `STRATA_REQUIRE_S3=1`).
fn targets(test: &str) -> Vec<(String, CheckpointStore, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let local: Arc<dyn Storage> = Arc::new(ObjectStorage::local(dir.path()).unwrap());
    let memory: Arc<dyn Storage> = Arc::new(ObjectStorage::memory().unwrap());
    let mut out = vec![
        (
            "local".to_string(),
            CheckpointStore::new(local, "job/checkpoints").unwrap(),
            Some(dir),
        ),
        (
            "memory".to_string(),
            CheckpointStore::new(memory, "").unwrap(),
            None,
        ),
    ];
    if let Some(s3) = s3_settings(&format!("cp-{test}")) {
        let s: Arc<dyn Storage> = Arc::new(ObjectStorage::s3(&s3).unwrap());
        out.push((
            "s3".to_string(),
            CheckpointStore::new(s, "job-checkpoints").unwrap(),
            None,
        ));
    }
    out
}

/// A fresh memory store to restore into.
fn fresh() -> Arc<dyn Storage> {
    Arc::new(ObjectStorage::memory().unwrap())
}

type Model = BTreeMap<(String, Vec<u8>), Vec<u8>>;

/// Deterministic pseudo-random numbers (SplitMix64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Tables {
    kv: Table,
    list: Table,
}

fn tables(db: &Db) -> Tables {
    Tables {
        kv: db.create_table("kv", TableOptions::default()).unwrap(),
        list: db
            .create_table("list", TableOptions::with_merge(MergeKind::Append))
            .unwrap(),
    }
}

/// `n` random puts, deletes and merges (with an occasional flush), mirrored in `model`.
fn random_ops(db: &Db, t: &Tables, model: &mut Model, rng: &mut Rng, n: usize) {
    for _ in 0..n {
        let k = format!("key{:05}", rng.below(3000)).into_bytes();
        let v = format!("v{}", rng.next()).into_bytes();
        match rng.below(10) {
            0..=4 => {
                db.put(&t.kv, &k, &v).unwrap();
                model.insert(("kv".into(), k), v);
            }
            5 => {
                db.delete(&t.kv, &k).unwrap();
                model.remove(&("kv".to_string(), k));
            }
            6..=8 => {
                db.merge(&t.list, &k, &v).unwrap();
                model
                    .entry(("list".into(), k))
                    .or_default()
                    .extend_from_slice(&v);
            }
            _ => {
                db.delete(&t.list, &k).unwrap();
                model.remove(&("list".to_string(), k));
            }
        }
        if rng.below(1500) == 0 {
            db.flush().unwrap();
        }
    }
}

/// Everything `db` holds in the model's tables.
fn contents(db: &Db) -> Model {
    let mut out = Model::new();
    for name in ["kv", "list"] {
        let Some(t) = db.table(name) else { continue };
        for kv in db.range(&t, b"", None).unwrap() {
            let (k, v) = kv.unwrap();
            out.insert((name.to_string(), k), v);
        }
    }
    out
}

/// Point reads agree with iteration: every model key reads back, and a few absent ones
/// read as absent.
fn check_gets(db: &Db, model: &Model) {
    for ((table, k), v) in model.iter().step_by(7) {
        let t = db.table(table).unwrap();
        assert_eq!(
            db.get(&t, k).unwrap().as_deref(),
            Some(v.as_slice()),
            "{k:?}"
        );
    }
    let t = db.table("kv").unwrap();
    assert_eq!(db.get(&t, b"absent-key").unwrap(), None);
}

fn restore(store: &CheckpointStore, id: u64) -> Db {
    Db::builder(settings())
        .storage(fresh())
        .restore(&[RestoreSource::one(store, id).unwrap()], None)
        .unwrap()
}

#[test]
fn checkpoint_then_more_writes_then_restore_gives_the_checkpointed_state() {
    for kind in STORE_KINDS {
        for (name, target, _keep) in targets("model") {
            let home = TestHome::new(kind);
            let db = home.open(settings()).unwrap();
            let t = tables(&db);
            let mut rng = Rng(7);
            let mut model = Model::new();
            random_ops(&db, &t, &mut model, &mut rng, 6000);
            let c1 = db.checkpoint(1, Some(&target)).unwrap().wait().unwrap();
            let at1 = model.clone();
            random_ops(&db, &t, &mut model, &mut rng, 3000);
            let c2 = db.checkpoint(2, Some(&target)).unwrap().wait().unwrap();
            let at2 = model.clone();
            random_ops(&db, &t, &mut model, &mut rng, 2000);
            assert!(c1.files > 0 && c2.files > 0, "{name}: {c1:?} {c2:?}");
            // Restores while the original keeps running (and writing).
            let r1 = restore(&target, 1);
            assert_eq!(contents(&r1), at1, "{kind:?}/{name}: checkpoint 1");
            check_gets(&r1, &at1);
            random_ops(&db, &t, &mut model, &mut rng, 500);
            let r2 = restore(&target, 2);
            assert_eq!(contents(&r2), at2, "{kind:?}/{name}: checkpoint 2");
            // A restored database is writable, and its writes go to its own store.
            r2.put(&r2.table("kv").unwrap(), b"after-restore", b"x")
                .unwrap();
            r2.compact().unwrap();
            let mut at2x = at2.clone();
            at2x.insert(("kv".into(), b"after-restore".to_vec()), b"x".to_vec());
            assert_eq!(contents(&r2), at2x);
            // Releasing checkpoint 1 leaves checkpoint 2 (and r2, which reads it) whole.
            db.release_checkpoint(1, Some(&target)).unwrap();
            assert_eq!(contents(&r2), at2x);
            let again = restore(&target, 2);
            assert_eq!(contents(&again), at2, "{kind:?}/{name}: after release");
            assert!(matches!(
                RestoreSource::one(&target, 1),
                Err(Error::NotFound(_))
            ));
            let released = RestoreSource {
                store: target.clone(),
                checkpoint: c1.reference.clone(),
            };
            assert!(matches!(
                Db::builder(settings())
                    .storage(fresh())
                    .restore(&[released], None),
                Err(Error::NotFound(_))
            ));
            assert_eq!(contents(&db), model);
        }
    }
}

#[test]
fn in_place_checkpoints_survive_compaction_and_reopen_and_release_deletes_their_files() {
    for kind in STORE_KINDS {
        let home = TestHome::new(kind);
        let db = home.open(settings()).unwrap();
        let t = tables(&db);
        let mut rng = Rng(11);
        let mut model = Model::new();
        random_ops(&db, &t, &mut model, &mut rng, 5000);
        let c = db.checkpoint(5, None).unwrap().wait().unwrap();
        assert_eq!(c.bytes_uploaded, 0, "in place: nothing is copied");
        let at5 = model.clone();
        random_ops(&db, &t, &mut model, &mut rng, 5000);
        db.compact_table(&t.kv).unwrap();
        db.compact_table(&t.list).unwrap();
        db.close().unwrap();
        drop(db);
        // Reopen: the orphan sweep must keep the checkpoint's files.
        let db = home.open(settings()).unwrap();
        let store = CheckpointStore::new(home.storage(), "checkpoints").unwrap();
        let r = Db::builder(settings())
            .storage(fresh())
            .external_store(home.storage())
            .restore(&[RestoreSource::one(&store, 5).unwrap()], None)
            .unwrap();
        assert_eq!(contents(&r), at5, "{kind:?}");
        r.close().unwrap();
        drop(r);
        let ssts = |s: &Arc<dyn Storage>| -> BTreeSet<String> {
            s.list("sst/")
                .unwrap()
                .into_iter()
                .map(|o| o.path)
                .collect()
        };
        let before = ssts(&home.storage());
        let m = store.read(&store.find(5).unwrap()[0]).unwrap();
        let live: BTreeSet<String> = db.live_files().into_iter().map(|f| f.path).collect();
        let only_checkpointed: Vec<String> = m
            .files
            .iter()
            .map(|f| f.path.clone())
            .filter(|p| !live.contains(p))
            .collect();
        assert!(
            !only_checkpointed.is_empty(),
            "{kind:?}: compaction replaced files"
        );
        assert!(
            only_checkpointed.iter().all(|p| before.contains(p)),
            "{kind:?}: kept"
        );
        db.release_checkpoint(5, None).unwrap();
        let after = ssts(&home.storage());
        assert!(
            only_checkpointed.iter().all(|p| !after.contains(p)),
            "{kind:?}: release deletes the files only the checkpoint kept"
        );
        assert!(
            live.iter().all(|p| after.contains(p)),
            "{kind:?}: live files stay"
        );
        assert!(store.find(5).unwrap().is_empty());
        assert_eq!(contents(&db), model);
    }
}

#[test]
fn incremental_checkpoints_upload_only_new_files() {
    for (name, target, _keep) in targets("incremental") {
        let home = TestHome::new(StoreKind::Memory);
        let db = home.open(settings()).unwrap();
        let t = tables(&db);
        let value = vec![7u8; 100];
        for i in 0..30_000u32 {
            db.put(&t.kv, format!("k{i:08}").as_bytes(), &value)
                .unwrap();
        }
        // Settle the tree first: a compaction that the first checkpoint's flush started
        // and that finished before the second checkpoint would rewrite most files, and the
        // second would rightly upload them (a timing-dependent failure in CI otherwise).
        db.compact().unwrap();
        let c1 = db.checkpoint(1, Some(&target)).unwrap().wait().unwrap();
        assert_eq!(
            c1.files_uploaded, c1.files,
            "{name}: the first uploads everything"
        );
        // 1% new data.
        for i in 30_000..30_300u32 {
            db.put(&t.kv, format!("k{i:08}").as_bytes(), &value)
                .unwrap();
        }
        let c2 = db.checkpoint(2, Some(&target)).unwrap().wait().unwrap();
        let m1 = target.read(&c1.reference).unwrap();
        let m2 = target.read(&c2.reference).unwrap();
        let in1: BTreeSet<&str> = m1.files.iter().map(|f| f.path.as_str()).collect();
        let new: Vec<_> = m2
            .files
            .iter()
            .filter(|f| !in1.contains(f.path.as_str()))
            .collect();
        let new_bytes: u64 = new.iter().map(|f| f.meta.size).sum();
        assert_eq!(c2.files_uploaded, new.len(), "{name}");
        assert_eq!(c2.bytes_uploaded, new_bytes, "{name}");
        assert!(
            c2.bytes_uploaded * 4 < c1.bytes_uploaded,
            "{name}: incremental upload {} of {}",
            c2.bytes_uploaded,
            c1.bytes_uploaded
        );
        // Every file the manifests name is in the store.
        for f in m1.files.iter().chain(&m2.files) {
            assert_eq!(target.storage.size(&f.path).unwrap(), f.meta.size);
        }
        // Releasing 1 deletes exactly the shared files only it referenced.
        db.release_checkpoint(1, Some(&target)).unwrap();
        let in2: BTreeSet<String> = m2.files.iter().map(|f| f.path.clone()).collect();
        assert_eq!(
            shared_files(&target),
            in2,
            "{name}: exactly checkpoint 2's files remain"
        );
        let r = restore(&target, 2);
        assert_eq!(contents(&r).len(), 30_300);
    }
}

/// The shared (uploaded) table files in `target`.
fn shared_files(target: &CheckpointStore) -> BTreeSet<String> {
    target
        .storage
        .list(&format!("{}shared/", target.dir))
        .unwrap()
        .into_iter()
        .map(|o| o.path)
        .collect()
}

/// The shared files of `target` and the files its retained manifests name: equal when
/// releases deleted exactly what no retained checkpoint needs.
fn shared_and_named(target: &CheckpointStore) -> (BTreeSet<String>, BTreeSet<String>) {
    let shared = shared_files(target);
    let mut named = BTreeSet::new();
    for r in target.list().unwrap() {
        named.extend(target.read(&r).unwrap().files.into_iter().map(|f| f.path));
    }
    (shared, named)
}

/// Delta checkpoints (`Settings::checkpoint_delta_ratio`): after a full checkpoint, each
/// one uploads only what was flushed since the previous one and names the previous one's
/// files for the rest, while compactions rewrite the live files in between. Every retained
/// checkpoint restores to the model's state at it, through Flink-style subsumption of the
/// older ones; past the ratio (and after its tip is released) a chain starts again with a
/// full checkpoint.
#[test]
fn delta_checkpoints_upload_only_the_changes_and_restore_exactly() {
    for kind in STORE_KINDS {
        for (name, target, _keep) in targets("delta") {
            let home = TestHome::new(kind);
            let db = home
                .open(Settings {
                    checkpoint_delta_ratio: 0.25,
                    ..settings()
                })
                .unwrap();
            let t = tables(&db);
            let mut rng = Rng(11);
            let mut model = Model::new();
            random_ops(&db, &t, &mut model, &mut rng, 6000);
            let mut at: BTreeMap<u64, Model> = BTreeMap::new();
            let mut deltas = Vec::new();
            for id in 1..=9u64 {
                if id > 1 {
                    random_ops(&db, &t, &mut model, &mut rng, 300);
                    if id % 3 == 0 {
                        db.compact().unwrap(); // the live files are rewritten under the chain
                    }
                }
                let c = db.checkpoint(id, Some(&target)).unwrap().wait().unwrap();
                at.insert(id, model.clone());
                deltas.push(c.delta);
                if c.delta {
                    assert!(
                        c.bytes_uploaded * 3 < c.bytes,
                        "{kind:?}/{name}: checkpoint {id} uploaded {} of {}",
                        c.bytes_uploaded,
                        c.bytes
                    );
                }
                // Keep the newest two, as Flink retains one completed checkpoint and
                // subsumes the older ones once a new one completes.
                db.subsume_checkpoints(id.saturating_sub(1), Some(&target))
                    .unwrap();
            }
            assert!(!deltas[0] && deltas[1], "{kind:?}/{name}: {deltas:?}");
            assert!(
                deltas[2..].iter().filter(|d| !**d).count() >= 1,
                "{kind:?}/{name}: past the ratio a full checkpoint starts a new chain: {deltas:?}"
            );
            for id in [8, 9] {
                let r = restore(&target, id);
                assert_eq!(contents(&r), at[&id], "{kind:?}/{name}: checkpoint {id}");
                check_gets(&r, &at[&id]);
            }
            let (shared, named) = shared_and_named(&target);
            assert_eq!(
                shared, named,
                "{kind:?}/{name}: releases kept exactly what is named"
            );
            // Without its tip a chain cannot go on: the next checkpoint is full.
            db.release_checkpoint(9, Some(&target)).unwrap();
            random_ops(&db, &t, &mut model, &mut rng, 200);
            let c = db.checkpoint(10, Some(&target)).unwrap().wait().unwrap();
            assert!(!c.delta, "{kind:?}/{name}");
            assert_eq!(contents(&restore(&target, 10)), model, "{kind:?}/{name}");
            assert_eq!(contents(&restore(&target, 8)), at[&8], "{kind:?}/{name}");
        }
    }
}

#[test]
fn failed_uploads_fail_the_checkpoint_and_lose_nothing() {
    let home = TestHome::new(StoreKind::Memory);
    let db = home.open(settings()).unwrap();
    let t = tables(&db);
    let mut rng = Rng(3);
    let mut model = Model::new();
    let faulty = Arc::new(FaultyStorage::new(fresh()));
    let target = CheckpointStore::new(faulty.clone(), "cp").unwrap();
    random_ops(&db, &t, &mut model, &mut rng, 4000);
    db.checkpoint(1, Some(&target)).unwrap().wait().unwrap();
    let at1 = model.clone();
    random_ops(&db, &t, &mut model, &mut rng, 4000);
    // Uploads fail part-way: the checkpoint fails, with no manifest.
    faulty.fail_after_puts(1);
    let e = db.checkpoint(2, Some(&target)).unwrap().wait().unwrap_err();
    assert!(e.to_string().contains("injected"), "{e}");
    assert!(target.find(2).unwrap().is_empty());
    // The manifest write itself fails.
    faulty.heal();
    faulty.fail_puts_under("cp/chk-");
    assert!(db.checkpoint(2, Some(&target)).unwrap().wait().is_err());
    assert!(target.find(2).unwrap().is_empty());
    faulty.heal();
    // The database and checkpoint 1 are intact; the retry succeeds and reuses nothing it
    // did not confirm.
    assert_eq!(contents(&db), model);
    assert_eq!(contents(&restore(&target, 1)), at1);
    let at2 = model.clone();
    db.checkpoint(2, Some(&target)).unwrap().wait().unwrap();
    assert_eq!(contents(&restore(&target, 2)), at2);
    // Releasing 1 also sweeps the failed attempts' leftovers.
    db.release_checkpoint(1, Some(&target)).unwrap();
    let m2 = target.read(&target.find(2).unwrap()[0]).unwrap();
    let in2: BTreeSet<String> = m2.files.into_iter().map(|f| f.path).collect();
    assert_eq!(shared_files(&target), in2);
}

#[test]
fn restore_from_a_damaged_checkpoint_is_corruption_naming_the_file() {
    let home = TestHome::new(StoreKind::Memory);
    let db = home.open(settings()).unwrap();
    let t = tables(&db);
    let mut model = Model::new();
    random_ops(&db, &t, &mut model, &mut Rng(5), 4000);
    let store: Arc<dyn Storage> = fresh();
    let target = CheckpointStore::new(store.clone(), "").unwrap();
    let c = db.checkpoint(1, Some(&target)).unwrap().wait().unwrap();
    let m = target.read(&c.reference).unwrap();
    let victim = &m.files[0].path;
    let bytes = store.read_all(victim).unwrap();
    // Missing file: refused at restore, nothing created.
    store.delete(victim).unwrap();
    let into = fresh();
    let e = Db::builder(settings())
        .storage(into.clone())
        .restore(&[RestoreSource::one(&target, 1).unwrap()], None)
        .unwrap_err();
    assert!(e.is_corruption() && e.to_string().contains(victim), "{e}");
    assert!(
        into.list("").unwrap().is_empty(),
        "a failed restore creates nothing"
    );
    // A damaged data block: reads that need it fail with Corruption naming the file.
    let mut bad = bytes.to_vec();
    bad[10] ^= 0xFF;
    store.put(victim, bad.into()).unwrap();
    let r = restore(&target, 1);
    let mut errors = 0;
    for name in ["kv", "list"] {
        let t = r.table(name).unwrap();
        if let Err(e) = r
            .range(&t, b"", None)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
        {
            assert!(e.is_corruption() && e.to_string().contains(victim), "{e}");
            errors += 1;
        }
    }
    assert_eq!(errors, 1, "exactly the damaged file's table fails");
    // A damaged manifest: Corruption naming it.
    let raw = store.read_all(&c.reference.path).unwrap();
    let mut bad = raw.to_vec();
    bad[30] ^= 1;
    store.put(&c.reference.path, bad.into()).unwrap();
    let e = Db::builder(settings())
        .storage(fresh())
        .restore(&[RestoreSource::one(&target, 1).unwrap()], None)
        .unwrap_err();
    assert!(e.is_corruption() && e.to_string().contains(".cp"), "{e}");
}

const MAX_PAR: u16 = 128;

struct Keyed {
    value: State,
    /// A list state with TTL (an hour: nothing expires during the test).
    ttl_list: State,
    list: State,
    map: State,
    timers: TimerService,
    backend: KeyedBackend,
}

fn keyed(db: &Db, range: KeyGroupRange) -> Keyed {
    let backend = KeyedBackend::new(db.clone(), MAX_PAR, range).unwrap();
    Keyed {
        value: backend
            .register(StateDescriptor::new("value", StateKind::Value))
            .unwrap(),
        ttl_list: backend
            .register(
                StateDescriptor::new("ttl-list", StateKind::List).with_ttl(TtlConfig {
                    ttl_ms: 3_600_000,
                    update: TtlUpdate::OnCreateAndWrite,
                    visibility: TtlVisibility::NeverReturnExpired,
                }),
            )
            .unwrap(),
        list: backend
            .register(StateDescriptor::new("list", StateKind::List))
            .unwrap(),
        map: backend
            .register(StateDescriptor::new("map", StateKind::Map))
            .unwrap(),
        timers: TimerService::new(&backend, "window").unwrap(),
        backend,
    }
}

/// One key of the keyed model: key, key group, value, list, map entry.
type KeyedRow = (Vec<u8>, u16, Vec<u8>, Vec<Vec<u8>>, Vec<u8>);

/// Per key: its key group, value, list and map entry; timers at 1000 + i.
fn keyed_model(n: u32) -> Vec<KeyedRow> {
    (0..n)
        .map(|i| {
            let key = format!("user-{i}").into_bytes();
            let kg = key_group_for_hash(java_bytes_hash(&key), MAX_PAR);
            let list = (0..(i % 3 + 1))
                .map(|j| format!("e{i}-{j}").into_bytes())
                .collect();
            (
                key,
                kg,
                format!("v{i}").into_bytes(),
                list,
                format!("m{i}").into_bytes(),
            )
        })
        .collect()
}

/// Writes the model's keys in `range` (timer timestamps follow the model's numbering).
fn fill(k: &Keyed, model: &[KeyedRow], range: KeyGroupRange) {
    fill_rows(k, model, range, 0..model.len());
}

/// [`fill`] for the model's rows `rows` only.
fn fill_rows(k: &Keyed, model: &[KeyedRow], range: KeyGroupRange, rows: std::ops::Range<usize>) {
    for (i, (key, kg, v, list, m)) in model.iter().enumerate() {
        if !rows.contains(&i) || !(range.start..=range.end).contains(kg) {
            continue;
        }
        k.backend.value_update(&k.value, key, b"ns", v).unwrap();
        for e in list {
            k.backend.list_add(&k.list, key, b"ns", e).unwrap();
            k.backend.list_add(&k.ttl_list, key, b"ns", e).unwrap();
        }
        k.backend.map_put(&k.map, key, b"ns", b"uk", m).unwrap();
        let timer = Timer {
            timestamp: 1000 + i as u64,
            key_group: *kg,
            key: key.clone(),
            namespace: b"ns".to_vec(),
        };
        k.timers.register(TimeDomain::EventTime, &timer).unwrap();
    }
}

/// Checks that `k` holds exactly the model's keys in `range`, and fires exactly their timers.
fn check_keyed(k: &Keyed, model: &[KeyedRow], range: KeyGroupRange, what: &str) {
    let mut want_timers = BTreeSet::new();
    for (i, (key, kg, v, list, m)) in model.iter().enumerate() {
        let mine = (range.start..=range.end).contains(kg);
        let got = k.backend.value_get(&k.value, key, b"ns").unwrap();
        assert_eq!(got.as_ref(), mine.then_some(v), "{what}: value of {key:?}");
        let got = k.backend.list_get(&k.list, key, b"ns").unwrap();
        let want: Vec<Vec<u8>> = if mine { list.clone() } else { Vec::new() };
        assert_eq!(got, want, "{what}: list of {key:?}");
        let got = k.backend.list_get(&k.ttl_list, key, b"ns").unwrap();
        assert_eq!(got, want, "{what}: TTL list of {key:?}");
        let got = k.backend.map_get(&k.map, key, b"ns", b"uk").unwrap();
        assert_eq!(got.as_ref(), mine.then_some(m), "{what}: map of {key:?}");
        if mine {
            want_timers.insert(1000 + i as u64);
        }
    }
    // Every table's iteration sees only the owned key groups.
    for st in [&k.value, &k.list, &k.map, &k.ttl_list] {
        for kv in k.backend.db().range(st.table(), b"", None).unwrap() {
            let (key, _) = kv.unwrap();
            let kg = u16::from(key[0]);
            assert!(
                (range.start..=range.end).contains(&kg),
                "{what}: stray key group {kg}"
            );
        }
    }
    let mut fired = BTreeSet::new();
    k.timers
        .poll(TimeDomain::EventTime, u64::MAX - 1, &mut |t| {
            assert!(
                (range.start..=range.end).contains(&t.key_group),
                "{what}: stray timer"
            );
            fired.insert(t.timestamp);
            Ok(())
        })
        .unwrap();
    assert_eq!(fired, want_timers, "{what}: timers");
}

#[test]
fn rescale_out_and_in_by_key_group_range_with_keyed_state_and_timers() {
    let model = keyed_model(3000);
    let all = KeyGroupRange::new(0, MAX_PAR - 1);
    for (name, target, _keep) in targets("rescale") {
        let home = TestHome::new(StoreKind::Local);
        let db = home.open(settings()).unwrap();
        let k = keyed(&db, all);
        // Half the keys in a full checkpoint, the rest in a delta on top of it: rescaling
        // restores the chain.
        fill_rows(&k, &model, all, 0..2000);
        let c0 = db.checkpoint(0, Some(&target)).unwrap().wait().unwrap();
        fill_rows(&k, &model, all, 2000..model.len());
        let c1 = db.checkpoint(1, Some(&target)).unwrap().wait().unwrap();
        assert!(!c0.delta && c1.delta, "{name}: {c0:?} {c1:?}");
        // Scale out 1 -> 2: each instance restores its key groups; nothing is rewritten.
        let halves: Vec<Db> = (0..2)
            .map(|i| {
                let r = KeyGroupRange::for_operator(MAX_PAR, 2, i);
                Db::builder(settings())
                    .storage(fresh())
                    .restore(
                        &[RestoreSource::one(&target, 1).unwrap()],
                        Some(KeyGroups::from(r)),
                    )
                    .unwrap()
            })
            .collect();
        for (i, h) in halves.iter().enumerate() {
            let r = KeyGroupRange::for_operator(MAX_PAR, 2, i as u16);
            // Compaction drops the other instance's keys; reads never see them.
            if i == 1 {
                h.compact().unwrap();
                for t in h.tables() {
                    h.compact_table(&t).unwrap();
                }
            }
            // Checkpoint each half (timers fire in check_keyed, so checkpoint first).
            h.checkpoint(2, Some(&target)).unwrap().wait().unwrap();
            check_keyed(&keyed(h, all), &model, r, &format!("{name}: half {i}"));
        }
        // Scale in 2 -> 1: merge both halves' checkpoint 2.
        let sources = RestoreSource::all(&target, 2).unwrap();
        assert_eq!(sources.len(), 2);
        let merged = Db::builder(settings())
            .storage(fresh())
            .restore(&sources, None)
            .unwrap();
        check_keyed(
            &keyed(&merged, all),
            &model,
            all,
            &format!("{name}: merged"),
        );
        // Scale 2 -> 3 from the halves: each new instance takes from both.
        for i in 0..3 {
            let r = KeyGroupRange::for_operator(MAX_PAR, 3, i);
            let third = Db::builder(settings())
                .storage(fresh())
                .restore(&sources, Some(KeyGroups::from(r)))
                .unwrap();
            check_keyed(
                &keyed(&third, all),
                &model,
                r,
                &format!("{name}: third {i}"),
            );
        }
    }
}

#[test]
fn overlapping_or_unranged_merges_are_refused() {
    let home = TestHome::new(StoreKind::Memory);
    let db = home.open(settings()).unwrap();
    let t = tables(&db);
    db.put(&t.kv, b"a", b"1").unwrap();
    let target = CheckpointStore::new(fresh(), "").unwrap();
    db.checkpoint(1, Some(&target)).unwrap().wait().unwrap();
    let home2 = TestHome::new(StoreKind::Memory);
    let db2 = home2.open(settings()).unwrap();
    let t2 = tables(&db2);
    db2.put(&t2.kv, b"b", b"2").unwrap();
    db2.checkpoint(1, Some(&target)).unwrap().wait().unwrap();
    let sources = RestoreSource::all(&target, 1).unwrap();
    let e = Db::builder(settings())
        .storage(fresh())
        .restore(&sources, None)
        .unwrap_err();
    assert!(e.to_string().contains("key-group range"), "{e}");
    assert!(
        RestoreSource::one(&target, 1).is_err(),
        "two databases wrote it"
    );
    // The same checkpoint id twice from one database is refused.
    assert!(matches!(
        db.checkpoint(1, Some(&target)).unwrap().wait(),
        Err(Error::Busy(_))
    ));
    // A target that already holds a database is refused.
    let e = Db::builder(settings())
        .storage(home.storage())
        .restore(&sources[..1], None)
        .unwrap_err();
    assert!(e.to_string().contains("already holds"), "{e}");
}

const CHILD_ENV: &str = "STRATA_CHECKPOINT_CHILD_DIR";
const KEYS_PER_ROUND: u32 = 800;

/// The state as of checkpoint `k` of the child: keys `0..k * KEYS_PER_ROUND`, each valued
/// with its index, and `round` = k.
fn child_model(k: u64) -> Model {
    let mut m = Model::new();
    for i in 0..k as u32 * KEYS_PER_ROUND {
        m.insert(
            ("kv".into(), format!("key{i:07}").into_bytes()),
            i.to_le_bytes().to_vec(),
        );
    }
    m.insert(("kv".into(), b"round".to_vec()), k.to_le_bytes().to_vec());
    m
}

/// The child of `sigkill_during_checkpoints_leaves_the_confirmed_ones_restorable`: rounds of
/// writes, each followed by checkpoint `k` into `<dir>/cp` and in place, then releasing
/// checkpoint `k - 2` in both; runs until killed.
#[test]
#[ignore = "child process of sigkill_during_checkpoints_leaves_the_confirmed_ones_restorable"]
fn checkpoint_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let db = Db::open(dir.join("db"), settings()).unwrap();
    let t = tables(&db);
    let cp: Arc<dyn Storage> = Arc::new(ObjectStorage::local(dir.join("cp")).unwrap());
    let target = CheckpointStore::new(cp, "").unwrap();
    for k in 1u64.. {
        for i in (k as u32 - 1) * KEYS_PER_ROUND..k as u32 * KEYS_PER_ROUND {
            db.put(&t.kv, format!("key{i:07}").as_bytes(), &i.to_le_bytes())
                .unwrap();
        }
        db.put(&t.kv, b"round", &k.to_le_bytes()).unwrap();
        println!("started {k}");
        let pending = db.checkpoint(k, Some(&target)).unwrap();
        db.checkpoint(k, None).unwrap().wait().unwrap();
        pending.wait().unwrap();
        println!("done {k}");
        if k > 2 {
            db.release_checkpoint(k - 2, Some(&target)).unwrap();
            db.release_checkpoint(k - 2, None).unwrap();
        }
    }
}

#[test]
fn sigkill_during_checkpoints_leaves_the_confirmed_ones_restorable() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    for kill_at in [2u64, 5, 9] {
        let dir = tempfile::tempdir().unwrap();
        let mut child = child_test("checkpoint_child", CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let mut done = 0u64;
        while out.read_line(&mut line).unwrap() > 0 {
            let l = line.trim();
            if let Some(k) = l.strip_prefix("done ") {
                done = k.parse().unwrap();
            }
            // Killed as checkpoint `kill_at` starts its flush and uploads.
            if l == format!("started {kill_at}") {
                child.kill().unwrap(); // SIGKILL
                break;
            }
            line.clear();
        }
        child.wait().unwrap();
        assert_eq!(done, kill_at - 1, "the child reached checkpoint {kill_at}");
        // Every confirmed checkpoint in the other store restores to its state.
        let cp: Arc<dyn Storage> = Arc::new(ObjectStorage::local(dir.path().join("cp")).unwrap());
        let target = CheckpointStore::new(cp, "").unwrap();
        let ids: Vec<u64> = target
            .list()
            .unwrap()
            .iter()
            .map(|r| r.checkpoint_id)
            .collect();
        assert!(
            ids.contains(&done),
            "kill at {kill_at}: last confirmed {done} in {ids:?}"
        );
        for &k in &ids {
            assert!(k + 2 > done, "released checkpoints stay released: {ids:?}");
            assert_eq!(
                contents(&restore(&target, k)),
                child_model(k),
                "checkpoint {k}"
            );
        }
        // The killed database reopens; its in-place checkpoints restore too.
        let db = Db::open(dir.path().join("db"), settings()).unwrap();
        let own = CheckpointStore::new(
            Arc::new(ObjectStorage::local(dir.path().join("db").join("data")).unwrap()),
            "checkpoints",
        )
        .unwrap();
        let ids: Vec<u64> = own
            .list()
            .unwrap()
            .iter()
            .map(|r| r.checkpoint_id)
            .collect();
        assert!(ids.contains(&done), "in place: {ids:?}");
        for k in ids {
            assert_eq!(contents(&restore(&own, k)), child_model(k), "in place {k}");
        }
        db.close().unwrap();
    }
}

#[test]
fn read_failures_during_restore_are_errors_and_lose_nothing() {
    let home = TestHome::new(StoreKind::Memory);
    let db = home.open(settings()).unwrap();
    let t = tables(&db);
    let mut model = Model::new();
    random_ops(&db, &t, &mut model, &mut Rng(9), 5000);
    let faulty = Arc::new(FaultyStorage::new(fresh()));
    let target = CheckpointStore::new(faulty.clone(), "").unwrap();
    db.checkpoint(1, Some(&target)).unwrap().wait().unwrap();
    // The manifest cannot be read: the restore fails and creates nothing.
    faulty.fail_reads_under("chk-");
    let into = fresh();
    let e = Db::builder(settings())
        .storage(into.clone())
        .restore(&[RestoreSource::one(&target, 1).unwrap()], None)
        .unwrap_err();
    assert!(e.to_string().contains("injected"), "{e}");
    assert!(into.list("").unwrap().is_empty());
    faulty.heal();
    // The files cannot be read after the restore: reads fail with the store's error (never
    // a wrong answer), and succeed once the store is back.
    let r = restore(&target, 1);
    faulty.fail_reads_under("shared/");
    let kv = r.table("kv").unwrap();
    let e = r
        .range(&kv, b"", None)
        .unwrap()
        .collect::<Result<Vec<_>, _>>();
    assert!(e.unwrap_err().to_string().contains("injected"));
    faulty.heal();
    assert_eq!(contents(&r), model);
    // The source database never noticed.
    assert_eq!(contents(&db), model);
}

#[test]
fn savepoints_are_self_contained_and_import_by_key_group_range() {
    let model = keyed_model(2000);
    let all = KeyGroupRange::new(0, MAX_PAR - 1);
    for (name, target, _keep) in targets("savepoint") {
        let home = TestHome::new(StoreKind::Memory);
        let db = home.open(settings()).unwrap();
        let k = keyed(&db, all);
        fill(&k, &model, all);
        // History the savepoint must not carry: overwritten and deleted values.
        let gone = b"user-gone".to_vec();
        k.backend
            .value_update(&k.value, &gone, b"ns", b"x")
            .unwrap();
        db.flush().unwrap();
        k.backend.clear(&k.value, &gone, b"ns").unwrap();
        let half = KeyGroupRange::for_operator(MAX_PAR, 2, 1);
        let sp_all = db.savepoint(7, &target, None).unwrap();
        let sp_half = db
            .savepoint(8, &target, Some(KeyGroups::from(half)))
            .unwrap();
        assert!(sp_half.bytes < sp_all.bytes, "{name}: the half is smaller");
        for sp in [&sp_all, &sp_half] {
            let m = target.read(&sp.reference).unwrap();
            for f in &m.files {
                assert!(
                    f.path.starts_with(&format!("{}sp-", target.dir)),
                    "{}",
                    f.path
                );
                assert_eq!((f.meta.deletes, f.meta.max_seq), (0, 0), "only values");
                assert!(f.meta.origin.is_none(), "self-contained");
            }
        }
        // The source database and its store go away; the savepoints still import.
        db.close().unwrap();
        drop((k, db, home));
        let whole = Db::builder(settings())
            .storage(fresh())
            .restore(&[RestoreSource::one(&target, 7).unwrap()], None)
            .unwrap();
        check_keyed(
            &keyed(&whole, all),
            &model,
            all,
            &format!("{name}: savepoint"),
        );
        let v = keyed(&whole, all);
        assert_eq!(v.backend.value_get(&v.value, &gone, b"ns").unwrap(), None);
        // Importing a subset of the full savepoint equals the half savepoint.
        let quarter = KeyGroupRange::new(half.start, half.start + 20);
        for id in [7, 8] {
            let part = Db::builder(settings())
                .storage(fresh())
                .restore(
                    &[RestoreSource::one(&target, id).unwrap()],
                    Some(KeyGroups::from(quarter)),
                )
                .unwrap();
            check_keyed(
                &keyed(&part, all),
                &model,
                quarter,
                &format!("{name}: {id}"),
            );
        }
    }
}

#[test]
fn instances_that_declare_their_key_groups_merge_on_scale_in() {
    let model = keyed_model(1500);
    let all = KeyGroupRange::new(0, MAX_PAR - 1);
    let target = CheckpointStore::new(fresh(), "cp").unwrap();
    let homes: Vec<TestHome> = (0..2).map(|_| TestHome::new(StoreKind::Memory)).collect();
    for (i, home) in homes.iter().enumerate() {
        let r = KeyGroupRange::for_operator(MAX_PAR, 2, i as u16);
        let groups = KeyGroups::from(r);
        let db = home.builder(settings()).key_groups(groups).open().unwrap();
        let k = keyed(&db, r);
        fill(&k, &model, r);
        db.checkpoint(1, Some(&target)).unwrap().wait().unwrap();
        db.close().unwrap();
        drop((k, db));
        // Reopening with another range is refused; with the same one it is fine.
        let other = KeyGroups { first: 0, last: 5 };
        let e = home
            .builder(settings())
            .key_groups(other)
            .open()
            .unwrap_err();
        assert!(e.to_string().contains("owns key groups"), "{e}");
        home.builder(settings())
            .key_groups(groups)
            .open()
            .unwrap()
            .close()
            .unwrap();
    }
    let merged = Db::builder(settings())
        .storage(fresh())
        .restore(&RestoreSource::all(&target, 1).unwrap(), None)
        .unwrap();
    check_keyed(&keyed(&merged, all), &model, all, "merged fresh instances");
    // The merge owns the whole range, so its own checkpoint restores as a single source.
    merged.checkpoint(2, Some(&target)).unwrap().wait().unwrap();
    let m = target.read(&target.find(2).unwrap()[0]).unwrap();
    assert_eq!(m.key_groups, Some((0, MAX_PAR - 1)));
}

/// A database restored from S3 copies the checkpoint's files to its disk cache in the
/// background and reads them locally from then on (needs the S3 server; the memory and
/// local stores are not remote).
#[test]
fn restored_files_are_mirrored_locally_from_s3() {
    let Some(s3) = s3_settings("cp-mirror") else {
        return;
    };
    let s: Arc<dyn Storage> = Arc::new(ObjectStorage::s3(&s3).unwrap());
    let target = CheckpointStore::new(s.clone(), "cp").unwrap();
    let home = TestHome::new(StoreKind::Memory);
    let db = home.open(settings()).unwrap();
    let t = tables(&db);
    let mut model = Model::new();
    random_ops(&db, &t, &mut model, &mut Rng(17), 6000);
    db.checkpoint(1, Some(&target)).unwrap().wait().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let r = Db::builder(Settings {
        disk_cache_dir: Some(cache.path().to_path_buf()),
        ..settings()
    })
    .storage(fresh())
    .external_store(s.clone())
    .restore(&[RestoreSource::one(&target, 1).unwrap()], None)
    .unwrap();
    assert_eq!(r.mirror_now(), 0, "every file is local");
    // The checkpoint's objects go away: the restored database reads its local copies.
    for o in s.list("cp/shared/").unwrap() {
        s.delete(&o.path).unwrap();
    }
    assert_eq!(contents(&r), model);
    check_gets(&r, &model);
    // A new restore of that checkpoint is refused: its files are gone.
    let e = Db::builder(settings())
        .storage(fresh())
        .restore(&[RestoreSource::one(&target, 1).unwrap()], None)
        .unwrap_err();
    assert!(e.is_corruption(), "{e}");
}

#[test]
fn another_databases_in_place_directory_is_refused() {
    let home = TestHome::new(StoreKind::Memory);
    let db = home.open(settings()).unwrap();
    let other = TestHome::new(StoreKind::Memory);
    let theirs = CheckpointStore::new(other.storage(), "checkpoints").unwrap();
    let e = db.checkpoint(1, Some(&theirs)).err().expect("refused");
    assert!(e.to_string().contains("in-place checkpoints"), "{e}");
    // Its own in-place directory, named explicitly, is fine.
    let own = CheckpointStore::new(home.storage(), "checkpoints").unwrap();
    db.checkpoint(1, Some(&own)).unwrap().wait().unwrap();
}

/// A database on S3 checkpointing into another prefix of the same bucket: the store copies
/// the files itself (CopyObject), nothing passes through the process.
#[test]
fn checkpoints_within_one_bucket_copy_server_side() {
    let (Some(db_s3), Some(cp_s3)) = (s3_settings("cp-ssc-db"), s3_settings("cp-ssc-target"))
    else {
        return;
    };
    let db_store: Arc<dyn Storage> = Arc::new(ObjectStorage::s3(&db_s3).unwrap());
    let cp_store: Arc<dyn Storage> = Arc::new(ObjectStorage::s3(&cp_s3).unwrap());
    let target = CheckpointStore::new(cp_store, "cp").unwrap();
    let db = Db::builder(settings()).storage(db_store).open().unwrap();
    let t = tables(&db);
    let mut model = Model::new();
    random_ops(&db, &t, &mut model, &mut Rng(23), 4000);
    let info = db.checkpoint(1, Some(&target)).unwrap().wait().unwrap();
    assert!(info.files_copied_in_store > 0, "{info:?}");
    assert_eq!(
        (info.files_uploaded, info.bytes_uploaded),
        (0, 0),
        "{info:?}"
    );
    assert_eq!(contents(&restore(&target, 1)), model);
    // Another bucket (a local directory) gets the bytes through the process.
    let local = CheckpointStore::new(fresh(), "").unwrap();
    let info = db.checkpoint(2, Some(&local)).unwrap().wait().unwrap();
    assert!(
        info.files_uploaded > 0 && info.files_copied_in_store == 0,
        "{info:?}"
    );
}

#[test]
fn merges_match_tables_by_name_and_refuse_conflicting_definitions() {
    let target = CheckpointStore::new(fresh(), "").unwrap();
    let halves = [
        KeyGroups { first: 0, last: 63 },
        KeyGroups {
            first: 64,
            last: 127,
        },
    ];
    for (i, groups) in halves.iter().enumerate() {
        let home = TestHome::new(StoreKind::Memory);
        let db = home.builder(settings()).key_groups(*groups).open().unwrap();
        let opts = TableOptions {
            key_group: Some(strata::KeyGroupField {
                offset: 0,
                width: 1,
            }),
            ..TableOptions::default()
        };
        // Created in different orders, so the ids differ between the two.
        let names = if i == 0 { ["a", "b"] } else { ["b", "a"] };
        for n in names {
            let t = db.create_table(n, opts.clone()).unwrap();
            db.put(&t, &[groups.first as u8, b'k'], n.as_bytes())
                .unwrap();
        }
        db.checkpoint(1, Some(&target)).unwrap().wait().unwrap();
    }
    let merged = Db::builder(settings())
        .storage(fresh())
        .restore(&RestoreSource::all(&target, 1).unwrap(), None)
        .unwrap();
    for n in ["a", "b"] {
        let t = merged.table(n).unwrap();
        for g in [0u8, 64] {
            assert_eq!(
                merged.get(&t, &[g, b'k']).unwrap().as_deref(),
                Some(n.as_bytes())
            );
        }
    }
    // A third checkpoint (of other key groups) defining "a" differently cannot merge.
    let home = TestHome::new(StoreKind::Memory);
    let db = home
        .builder(settings())
        .key_groups(KeyGroups {
            first: 200,
            last: 200,
        })
        .open()
        .unwrap();
    let t = db
        .create_table("a", TableOptions::with_merge(MergeKind::Append))
        .unwrap();
    db.put(&t, b"x", b"y").unwrap();
    let other = CheckpointStore::new(fresh(), "").unwrap();
    db.checkpoint(1, Some(&other)).unwrap().wait().unwrap();
    let mut sources = RestoreSource::all(&target, 1).unwrap();
    sources.truncate(1);
    sources.push(RestoreSource::one(&other, 1).unwrap());
    let e = Db::builder(settings())
        .storage(fresh())
        .restore(&sources, None)
        .unwrap_err();
    assert!(e.to_string().contains("different options"), "{e}");
}
