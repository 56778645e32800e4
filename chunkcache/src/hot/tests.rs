//! Unit tests of the hot tier.

use super::*;
use strata_dfs::{AppendOperator, Folded, InternalIterator};

/// What a hot lookup found, without the sequence numbers of complete answers.
#[derive(Debug, PartialEq, Eq)]
enum HotLookup {
    Value(Vec<u8>),
    Deleted,
    Partial {
        operand: Vec<u8>,
        newest_seq: SeqNo,
        oldest_seq: SeqNo,
    },
    Absent,
}

fn lookup(h: &HotKv, key: &[u8], seq: SeqNo, merge: Option<&dyn MergeOperator>) -> HotLookup {
    match h.get(key, seq, merge) {
        Folded::Value { value, .. } => HotLookup::Value(value),
        Folded::Deleted { .. } => HotLookup::Deleted,
        Folded::Operands {
            operand,
            newest_seq,
            oldest_seq,
        } => HotLookup::Partial {
            operand,
            newest_seq,
            oldest_seq,
        },
        Folded::Absent => HotLookup::Absent,
    }
}

const APPEND: AppendOperator = AppendOperator { delimiter: None };

fn w(seq: SeqNo, kind: ValueKind, value: &[u8], snap: Option<SeqNo>) -> HotWrite<'_> {
    HotWrite {
        seq,
        kind,
        value,
        merge: Some(&APPEND),
        latest_snapshot: snap,
    }
}

#[test]
fn in_place_update_and_append_without_snapshots() {
    let h = HotKv::new();
    h.apply(b"k", w(1, ValueKind::Put, b"a", None));
    let b1 = h.bytes();
    h.apply(b"k", w(2, ValueKind::Merge, b"b", None));
    h.apply(b"k", w(3, ValueKind::Merge, b"c", None));
    assert_eq!(
        lookup(&h, b"k", 10, Some(&APPEND)),
        HotLookup::Value(b"abc".to_vec())
    );
    assert_eq!(h.stats.in_place.load(Ordering::Relaxed), 2);
    assert!(h.bytes() >= b1);
    h.apply(b"k", w(4, ValueKind::Delete, b"", None));
    assert_eq!(lookup(&h, b"k", 10, None), HotLookup::Deleted);
    assert_eq!(h.len(), 1);
}

#[test]
fn snapshot_keeps_old_version_and_prune_drops_it_once_persisted() {
    let h = HotKv::new();
    h.apply(b"k", w(1, ValueKind::Put, b"old", None));
    h.apply(b"k", w(5, ValueKind::Put, b"new", Some(3)));
    assert_eq!(lookup(&h, b"k", 3, None), HotLookup::Value(b"old".to_vec()));
    assert_eq!(lookup(&h, b"k", 9, None), HotLookup::Value(b"new".to_vec()));
    assert_eq!(
        h.prune_versions(),
        0,
        "nothing is below yet: nothing may go"
    );
    h.mark_persisted(b"k", 5);
    let before = h.bytes();
    let freed = h.prune_versions();
    assert!(freed > 0 && h.bytes() == before - freed);
    assert_eq!(
        lookup(&h, b"k", 3, None),
        HotLookup::Absent,
        "now read from below"
    );
    assert_eq!(lookup(&h, b"k", 9, None), HotLookup::Value(b"new".to_vec()));
}

#[test]
fn merge_onto_a_persisted_operand_does_not_fold_it_in_again() {
    let h = HotKv::new();
    h.apply(b"k", w(1, ValueKind::Merge, b"a", None));
    h.mark_persisted(b"k", 1);
    h.apply(b"k", w(2, ValueKind::Merge, b"b", None));
    assert_eq!(
        lookup(&h, b"k", 9, Some(&APPEND)),
        HotLookup::Partial {
            operand: b"b".to_vec(),
            newest_seq: 2,
            oldest_seq: 2
        },
        "the persisted operand lives below and must not be folded into the hot one"
    );
    // A persisted operand alone is left to the lower tiers.
    h.apply(b"p", w(6, ValueKind::Merge, b"z", None));
    h.mark_persisted(b"p", 6);
    assert_eq!(lookup(&h, b"p", 9, Some(&APPEND)), HotLookup::Absent);
    assert!(h.range(b"p", Some(b"q")).is_empty());
    // Folding onto an unpersisted operand is fine.
    h.apply(b"k", w(3, ValueKind::Merge, b"c", None));
    assert_eq!(h.dirty_entries()[0].1.len(), 1);
    assert_eq!(&h.dirty_entries()[0].1[0].value[..], b"bc");
    // Onto a persisted full value, a merge yields a full value.
    h.apply(b"v", w(4, ValueKind::Put, b"x", None));
    h.mark_persisted(b"v", 4);
    h.apply(b"v", w(5, ValueKind::Merge, b"y", None));
    assert_eq!(
        lookup(&h, b"v", 9, Some(&APPEND)),
        HotLookup::Value(b"xy".to_vec())
    );
}

#[test]
fn partial_merge_reports_operand_and_resolves() {
    let h = HotKv::new();
    h.apply(b"k", w(7, ValueKind::Merge, b"x", None));
    h.apply(b"k", w(8, ValueKind::Merge, b"y", None));
    assert_eq!(
        lookup(&h, b"k", 9, Some(&APPEND)),
        HotLookup::Partial {
            operand: b"xy".to_vec(),
            newest_seq: 8,
            oldest_seq: 8
        }
    );
    h.resolve_partial(b"k", 8, b"basexy");
    assert_eq!(
        lookup(&h, b"k", 9, Some(&APPEND)),
        HotLookup::Value(b"basexy".to_vec())
    );
}

#[test]
fn persisted_partial_entries_resolve_and_unpersisted_older_versions_block_it() {
    let h = HotKv::new();
    // A partial entry whose operand is persisted: a reader skips it in memory.
    h.apply(b"k", w(7, ValueKind::Merge, b"x", None));
    h.mark_persisted(b"k", 7);
    let mut fold = VersionFold::new(Some(&APPEND), 9);
    assert!(h.fold_into(b"k", &mut fold).present);
    assert!(
        fold.is_empty(),
        "a persisted operand is read below, not here"
    );
    h.resolve_partial(b"k", 7, b"basex");
    assert_eq!(
        lookup(&h, b"k", 9, Some(&APPEND)),
        HotLookup::Value(b"basex".to_vec())
    );
    let e = h.shards[h.shard_of(b"k")].read();
    assert!(!e.map.get(&b"k"[..]).unwrap().is_dirty(), "stays clean");
    drop(e);

    // An unpersisted newest operand over a persisted one resolves to one version.
    h.apply(b"j", w(1, ValueKind::Merge, b"a", None));
    let _ = h.take_versions(b"j");
    h.apply(b"j", w(2, ValueKind::Merge, b"b", None));
    h.mark_persisted(b"j", 1);
    h.resolve_partial(b"j", 2, b"ab");
    assert_eq!(
        lookup(&h, b"j", 9, Some(&APPEND)),
        HotLookup::Value(b"ab".to_vec())
    );

    // An older version that exists only here (kept for a snapshot) must not be dropped.
    h.apply(b"s", w(1, ValueKind::Merge, b"a", None));
    h.apply(b"s", w(2, ValueKind::Merge, b"b", Some(1)));
    h.resolve_partial(b"s", 2, b"ab");
    assert_eq!(
        lookup(&h, b"s", 1, Some(&APPEND)),
        HotLookup::Partial {
            operand: b"a".to_vec(),
            newest_seq: 1,
            oldest_seq: 1
        }
    );
    // A write since the read (another sequence number) is not overwritten either.
    h.resolve_partial(b"s", 1, b"stale");
    assert!(matches!(
        lookup(&h, b"s", 9, Some(&APPEND)),
        HotLookup::Partial { .. }
    ));
}

#[test]
fn frozen_versions_are_not_folded_into() {
    let h = HotKv::new();
    h.apply(b"k", w(1, ValueKind::Merge, b"a", None));
    let cold = h.coldest(usize::MAX);
    assert_eq!(cold[0].1.len(), 1);
    h.apply(b"k", w(2, ValueKind::Merge, b"b", None));
    assert_eq!(
        lookup(&h, b"k", 9, Some(&APPEND)),
        HotLookup::Partial {
            operand: b"ab".to_vec(),
            newest_seq: 2,
            oldest_seq: 1
        },
        "the frozen version stays readable but the new operand is a separate version"
    );
    assert!(!h.remove_if_unchanged(b"k", 1));
    h.mark_persisted(b"k", 1);
    assert_eq!(
        lookup(&h, b"k", 9, Some(&APPEND)),
        HotLookup::Partial {
            operand: b"b".to_vec(),
            newest_seq: 2,
            oldest_seq: 2
        }
    );
}

#[test]
fn accounting_returns_to_zero_and_promotion_respects_generation() {
    let h = HotKv::new();
    for i in 0..1000u32 {
        h.apply(
            &i.to_be_bytes(),
            w(u64::from(i) + 1, ValueKind::Put, &[1; 20], None),
        );
    }
    assert!(h.bytes() > 1000 * 24);
    let cold = h.coldest(usize::MAX);
    assert_eq!(cold.len(), 1000);
    let g = h.generation(&5u32.to_be_bytes());
    for (k, _, newest) in cold {
        assert!(h.remove_if_unchanged(&k, newest));
    }
    assert_eq!((h.bytes(), h.len()), (0, 0));
    h.promote(&5u32.to_be_bytes(), g, 6, ValueKind::Put, b"stale");
    assert_eq!(
        h.len(),
        0,
        "promotion after a removal in the shard must be refused"
    );
    let g = h.generation(&5u32.to_be_bytes());
    h.promote(&5u32.to_be_bytes(), g, 6, ValueKind::Put, b"v");
    assert_eq!(
        lookup(&h, &5u32.to_be_bytes(), 9, None),
        HotLookup::Value(b"v".to_vec())
    );
}

#[test]
fn prefix_routing_keeps_a_prefix_in_one_shard_and_ranges_stay_exact() {
    let h = HotKv::new();
    h.set_route_prefix(1, 3);
    let key = |g: u8, uk: u8| vec![0, 0, 0, 1, g, g, g, uk];
    for g in 0..50u8 {
        for uk in 0..10u8 {
            h.apply(
                &key(g, uk),
                w(
                    u64::from(g) * 10 + u64::from(uk) + 1,
                    ValueKind::Put,
                    b"v",
                    None,
                ),
            );
        }
    }
    let shard = h.shard_of(&key(7, 0));
    assert!((0..10).all(|uk| h.shard_of(&key(7, uk)) == shard));
    // A prefix scan (one shard) and a cross-prefix range (all shards) are both exact.
    let p = [0, 0, 0, 1, 7, 7, 7];
    let r = h.range(&p, key::prefix_successor(&p).as_deref());
    assert_eq!(r.len(), 10);
    assert!(r.iter().all(|(k, _)| key::user_key(k).starts_with(&p)));
    let r = h.range(&key(3, 5), Some(&key(9, 2)));
    // group 3 from user key 5 (5 keys), groups 4-8 (50), group 9 up to user key 2 (2)
    assert_eq!(r.len(), 5 + 50 + 2);
}

#[test]
fn range_is_sorted_and_bounded() {
    let h = HotKv::new();
    for i in (0..100u32).rev() {
        h.apply(
            &i.to_be_bytes(),
            w(u64::from(i) + 1, ValueKind::Put, b"v", None),
        );
    }
    let r = h.range(&10u32.to_be_bytes(), Some(&20u32.to_be_bytes()));
    let keys: Vec<u32> = r
        .iter()
        .map(|(k, _)| u32::from_be_bytes(key::user_key(k).try_into().unwrap()))
        .collect();
    assert_eq!(keys, (10..20).collect::<Vec<_>>());
}

/// The full flush's stream yields exactly the unpersisted versions of the dirty entries, in
/// internal-key order, across shards and refill batches; a write during the stream does not
/// fold into a streamed version; marking frozen versions persisted then leaves only what
/// was written after the stream as dirty, and a failed flush's freeze can be undone.
#[test]
fn dirty_stream_is_sorted_complete_and_freezes_what_it_copied() {
    let h = HotKv::new();
    let mut want: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for i in 0..3000u32 {
        let k = format!("key{:06}", (i * 7919) % 3000).into_bytes();
        h.apply(
            &k,
            w(u64::from(i) * 2 + 1, ValueKind::Put, &i.to_be_bytes(), None),
        );
        if i % 3 == 0 {
            // Clean: already below.
            h.mark_persisted(&k, u64::from(i) * 2 + 1);
        } else if i % 5 == 0 {
            // Two versions (a snapshot sees the first).
            let seq = u64::from(i) * 2 + 2;
            h.apply(&k, w(seq, ValueKind::Merge, b"+", Some(seq - 1)));
            want.push((key::internal_key(&k, seq, ValueKind::Merge), b"+".to_vec()));
            want.push((
                key::internal_key(&k, seq - 1, ValueKind::Put),
                i.to_be_bytes().to_vec(),
            ));
        } else {
            want.push((
                key::internal_key(&k, u64::from(i) * 2 + 1, ValueKind::Put),
                i.to_be_bytes().to_vec(),
            ));
        }
    }
    want.sort_by(|a, b| key::compare(&a.0, &b.0));
    let mut s = h.dirty_stream();
    s.seek_to_first();
    let mut got = Vec::new();
    let mut wrote_during = false;
    while s.valid() {
        got.push((s.key().to_vec(), s.value().to_vec()));
        if !wrote_during {
            // The first key is frozen now: an append must not change the streamed bytes.
            let uk = key::user_key(s.key()).to_vec();
            h.apply(&uk, w(100_000, ValueKind::Merge, b"late", None));
            wrote_during = true;
        }
        s.next();
    }
    s.status().unwrap();
    assert_eq!(got.len(), want.len());
    assert!(
        got == want,
        "the stream differs from the sorted dirty versions"
    );
    h.mark_frozen_persisted();
    let dirty = h.dirty_entries();
    assert_eq!(dirty.len(), 1, "only the entry written during the stream");
    assert_eq!(&dirty[0].1[0].value[..], b"late");
    // A failed flush: freeze everything, then thaw; writes fold in place again.
    let mut s = h.dirty_stream();
    s.seek_to_first();
    while s.valid() {
        s.next();
    }
    h.thaw();
    let before = h.stats.in_place.load(Ordering::Relaxed);
    let k = key::user_key(&want[0].0).to_vec();
    h.apply(&k, w(100_001, ValueKind::Merge, b"!", None));
    assert_eq!(h.stats.in_place.load(Ordering::Relaxed), before + 1);
    assert_flag_counts(&h);
}

/// Only flagged keys are visited, and the flags are a superset of the dirty entries: after a
/// stream, a write to a clean entry, an insert and a promotion, the next stream yields
/// exactly the two dirty ones; a restarted stream yields everything again.
#[test]
fn dirty_flags_track_every_entry_that_becomes_dirty() {
    let h = HotKv::new();
    for i in 0..500u32 {
        h.apply(
            &i.to_be_bytes(),
            w(u64::from(i) + 1, ValueKind::Put, b"v", None),
        );
    }
    let drain = |h: &HotKv| stream_keys(&mut h.dirty_stream());
    assert_eq!(drain(&h).len(), 500);
    h.mark_frozen_persisted();
    assert!(drain(&h).is_empty());
    h.apply(&7u32.to_be_bytes(), w(1000, ValueKind::Merge, b"+", None));
    h.apply(b"new", w(1001, ValueKind::Put, b"n", None));
    let g = h.generation(b"promoted");
    h.promote(b"promoted", g, 5, ValueKind::Put, b"p");
    let mut s = h.dirty_stream();
    let first = stream_keys(&mut s);
    assert_eq!(first, vec![7u32.to_be_bytes().to_vec(), b"new".to_vec()]);
    // Restarting the same stream sees both again.
    assert_eq!(stream_keys(&mut s), first);
    // A write to an entry the stream has copied (frozen, flag cleared) before the flush
    // marks it persisted: the next stream must still find the new version.
    h.apply(
        &7u32.to_be_bytes(),
        w(1002, ValueKind::Merge, b"late", None),
    );
    assert_flag_counts(&h);
    h.mark_frozen_persisted();
    assert_eq!(drain(&h), vec![7u32.to_be_bytes().to_vec()]);
    assert_flag_counts(&h);
}

/// The user keys a dirty stream yields from its start (a restart if it ran before).
fn stream_keys(s: &mut DirtyStream<'_>) -> Vec<Vec<u8>> {
    s.seek_to_first();
    let mut keys = Vec::new();
    while s.valid() {
        keys.push(key::user_key(s.key()).to_vec());
        s.next();
    }
    keys
}

/// A range whose entries are all clean yields nothing (the lower tiers hold all of it), but
/// only once the flush that cleaned them has committed: while a stream is in flight its
/// cleared flags prove nothing, and one dirty entry brings the whole range back.
#[test]
fn range_of_clean_entries_is_left_to_lower_tiers_only_after_the_flush_commits() {
    let h = HotKv::new();
    for i in 0..20u32 {
        h.apply(
            &i.to_be_bytes(),
            w(u64::from(i) + 1, ValueKind::Put, b"v", None),
        );
    }
    let lo = 5u32.to_be_bytes();
    let hi = 15u32.to_be_bytes();
    assert_eq!(h.range(&lo, Some(&hi)).len(), 10);
    let mut s = h.dirty_stream();
    assert_eq!(stream_keys(&mut s).len(), 20);
    drop(s);
    assert_eq!(
        h.range(&lo, Some(&hi)).len(),
        10,
        "streamed but not committed: the hot tier still answers"
    );
    h.mark_frozen_persisted();
    assert!(h.range(&lo, Some(&hi)).is_empty());
    // A stream that found nothing to copy and ends in a thaw leaves them clean.
    let mut s = h.dirty_stream();
    assert!(stream_keys(&mut s).is_empty(), "nothing dirty");
    drop(s);
    h.thaw();
    assert!(h.range(&lo, Some(&hi)).is_empty());
    h.apply(&9u32.to_be_bytes(), w(30, ValueKind::Put, b"w", None));
    let r = h.range(&lo, Some(&hi));
    assert_eq!(
        r.len(),
        10,
        "one dirty entry: every entry of the range is copied"
    );
    assert!(h.range(&15u32.to_be_bytes(), None).is_empty());
    // A stream that copied an entry and then failed leaves it dirty and visible.
    let mut s = h.dirty_stream();
    assert_eq!(stream_keys(&mut s).len(), 1);
    drop(s);
    h.thaw();
    assert_eq!(h.range(&lo, Some(&hi)).len(), 10);
    assert_flag_counts(&h);
    h.mark_frozen_persisted();
    assert!(h.remove_if_unchanged(&9u32.to_be_bytes(), 30));
    assert_flag_counts(&h);
}

/// Every shard's count of flagged keys matches its flags.
fn assert_flag_counts(h: &HotKv) {
    for s in h.shards.iter() {
        let s = s.read();
        assert_eq!(s.flagged, s.order.values().filter(|f| **f).count());
    }
}

#[test]
fn pick_coldest_drops_old_clean_entries_and_returns_old_dirty_ones() {
    let h = HotKv::new();
    let key = |i: u32| i.to_be_bytes();
    // Epoch 1: keys 0..400 written; the even ones are then made clean (persisted).
    for i in 0..400u32 {
        h.apply(&key(i), w(u64::from(i) + 1, ValueKind::Put, &[7; 40], None));
    }
    for i in (0..400u32).step_by(2) {
        h.mark_persisted(&key(i), u64::from(i) + 1);
    }
    let per = h.bytes() / 400;
    // Later epochs: keys 400..500 written, and key 1 read again, so they are young.
    for _ in 0..3 {
        h.advance_epoch();
    }
    for i in 400..500u32 {
        h.apply(&key(i), w(u64::from(i) + 1, ValueKind::Put, &[7; 40], None));
    }
    assert!(matches!(
        lookup(&h, &key(1), 1000, None),
        HotLookup::Value(_)
    ));
    let g = h.generation(&key(0));
    let before = h.bytes();

    // The 399 old entries: the threshold lands on their age, and nothing younger is taken.
    let (dirty, dropped) = h.pick_coldest(399 * per);

    assert_eq!(dropped, 200, "every old clean entry is dropped");
    let mut dirty: Vec<u32> = dirty
        .iter()
        .map(|k| u32::from_be_bytes(k[..].try_into().unwrap()))
        .collect();
    dirty.sort_unstable();
    let want: Vec<u32> = (3..400).step_by(2).collect();
    assert_eq!(
        dirty, want,
        "old dirty entries are returned, young ones kept"
    );
    assert_eq!(h.len(), 300);
    for i in 0..500u32 {
        let gone = i < 400 && i % 2 == 0;
        assert_eq!(
            lookup(&h, &key(i), 1000, None) == HotLookup::Absent,
            gone,
            "key {i}"
        );
    }
    // Accounting: the tier's bytes are the sum of its entries', and the shard counters
    // agree with the indexes.
    let sum: usize = h
        .shards
        .iter()
        .map(|s| {
            let s = s.read();
            assert_eq!(s.map.iter().count(), s.order.len());
            let b: usize = s.map.iter().map(|(k, e)| entry_charge(k, e)).sum();
            assert_eq!(b, s.bytes);
            b
        })
        .sum();
    assert_eq!(sum, h.bytes());
    assert!(h.bytes() < before);
    assert_flag_counts(&h);
    h.promote(&key(0), g, 1, ValueKind::Put, b"stale");
    assert_eq!(
        lookup(&h, &key(0), 1000, None),
        HotLookup::Absent,
        "a promotion read before the drop must be refused"
    );
}

#[test]
fn pick_coldest_stops_near_its_target() {
    let h = HotKv::new();
    for i in 0..1000u32 {
        h.apply(
            &i.to_be_bytes(),
            w(u64::from(i) + 1, ValueKind::Put, &[1; 20], None),
        );
        h.mark_persisted(&i.to_be_bytes(), u64::from(i) + 1);
    }
    let per = h.bytes() / 1000;
    let (dirty, dropped) = h.pick_coldest(100 * per);
    assert!(dirty.is_empty());
    assert!((100..=101).contains(&dropped), "dropped {dropped}");
    assert_eq!(h.len(), 1000 - dropped);
}

/// Key `i` of table 7 under one routing prefix: with the table routed by its first 4
/// user-key bytes, every such key lands in one shard.
fn routed_key(i: u32) -> Vec<u8> {
    let mut k = 7u32.to_be_bytes().to_vec();
    k.extend_from_slice(&[9, 9, 9, 9]);
    k.extend_from_slice(&i.to_be_bytes());
    k
}

/// `n` keys that all land in one shard, and that shard.
fn one_shard_keys(h: &HotKv, n: u32) -> (usize, Vec<Vec<u8>>) {
    let keys: Vec<Vec<u8>> = (0..n).map(routed_key).collect();
    h.set_route_prefix(7, 4);
    let si = h.shard_of(&keys[0]);
    assert!(keys.iter().all(|k| h.shard_of(k) == si));
    (si, keys)
}

/// A scan lets go of the shard's lock between runs of buckets. If entries move meanwhile
/// (the table grows), an `Every` scan starts over, so each entry present throughout is
/// seen after the move; a `Sweep` goes on where it was.
#[test]
fn bucket_scans_resume_after_each_run_and_start_over_when_entries_move() {
    for mode in [ScanMode::Every, ScanMode::Sweep] {
        let h = HotKv::new();
        let (si, keys) = one_shard_keys(&h, 3000);
        for (i, k) in keys.iter().enumerate() {
            h.apply(k, w(i as u64 + 1, ValueKind::Put, b"v", None));
        }
        let buckets = h.shards[si].read().map.buckets();
        assert!(buckets > 2 * SCAN_RUN, "{buckets} buckets: several runs");
        let mut visited = Vec::new();
        let mut grown = false;
        let mut seq = 10_000;
        let moved = h.scan_shard(si, mode, |s, i| {
            if let Some((k, _)) = s.map.bucket(i) {
                visited.push(k.to_vec());
            }
            if i == SCAN_RUN && !grown {
                // As a writer would between runs: enough new keys to make the table grow.
                grown = true;
                let before = s.map.moves();
                let mut n = 0u32;
                while s.map.moves() == before {
                    let k = routed_key(1_000_000 + n);
                    h.apply_locked(s, &k, &w(seq, ValueKind::Put, b"v", None));
                    seq += 1;
                    n += 1;
                }
            }
            true
        });
        assert!(moved);
        let count = |k: &Vec<u8>| visited.iter().filter(|v| *v == k).count();
        match mode {
            ScanMode::Every => {
                // Started over: the keys of the first run were seen twice, and every
                // original key at least once after the restart.
                assert!(visited.len() > keys.len(), "{} visits", visited.len());
                assert!(keys.iter().all(|k| count(k) >= 1));
                let twice = keys.iter().filter(|k| count(k) == 2).count();
                assert!(twice > 0, "the first run was visited again");
            }
            ScanMode::Sweep => {
                assert!(keys.iter().all(|k| count(k) <= 2));
                assert!(visited.len() < keys.len() * 2);
            }
        }
    }
}

/// Marking a flush persisted is exact even while writers make the table grow between
/// the scan's runs, and packing's pick never returns a key twice.
#[test]
fn mark_persisted_and_pick_hold_under_concurrent_growth() {
    let h = std::sync::Arc::new(HotKv::new());
    let (_, keys) = one_shard_keys(&h, 4000);
    for (i, k) in keys.iter().enumerate() {
        h.apply(k, w(i as u64 + 1, ValueKind::Put, b"v", None));
    }
    let mut stream = h.dirty_stream();
    stream.seek_to_first();
    let mut streamed = 0;
    while stream.valid() {
        streamed += 1;
        stream.next();
    }
    drop(stream);
    assert_eq!(streamed, keys.len());
    let writer = {
        let h = h.clone();
        std::thread::spawn(move || {
            for n in 0..20_000u32 {
                let k = routed_key(1_000_000 + n);
                h.apply(&k, w(100_000 + n as u64, ValueKind::Put, b"v", None));
            }
        })
    };
    h.mark_frozen_persisted();
    h.advance_epoch();
    h.advance_epoch();
    let (dirty, _) = h.pick_coldest(usize::MAX);
    writer.join().unwrap();
    for k in &keys {
        let s = h.shards[h.shard_of(k)].read();
        if let Some(e) = s.map.get(k) {
            assert!(!e.is_dirty(), "streamed and committed, so persisted");
        }
    }
    let mut sorted = dirty.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), dirty.len(), "no key picked twice");
}

/// Pruning scans only while some entry may hold several versions.
#[test]
fn pruning_runs_only_while_chains_exist() {
    let h = HotKv::new();
    h.apply(b"k", w(1, ValueKind::Put, b"a", None));
    assert!(!h.chains.load(Ordering::Relaxed), "one version");
    h.apply(b"k", w(2, ValueKind::Put, b"b", Some(1)));
    assert!(
        h.chains.load(Ordering::Relaxed),
        "a snapshot kept the old version"
    );
    // Nothing is persisted yet: the chain stays, and so does the flag.
    assert_eq!(h.prune_versions(), 0);
    assert!(h.chains.load(Ordering::Relaxed));
    h.mark_persisted(b"k", 2);
    assert!(h.prune_versions() > 0);
    assert!(!h.chains.load(Ordering::Relaxed), "no chain left");
    assert_eq!(h.prune_versions(), 0);
}
