//! Collapsing the versions of one user key when data is rewritten (flushes and
//! compaction, through the table writer).
//!
//! Live snapshots split a key's history into *stripes*: versions visible to the same set of
//! snapshots. Within a stripe only the newest version can be observed, so the stripe folds
//! into one version ([`VersionFold`]): merge operands fold onto the versions below them in
//! the same stripe. At the bottom of the tree (nothing older can exist) a trailing tombstone
//! is dropped and a trailing merge becomes a plain value.

use bytes::Bytes;

use crate::filter::{filter_version, CompactionFilter};
use crate::fold::{resolve_operand, Folded, VersionFold};
use crate::key::{SeqNo, ValueKind};
use crate::merge::MergeOperator;

/// One version of a key: (sequence number, kind, value).
pub type KeyVersion = (SeqNo, ValueKind, Bytes);

/// What [`collapse`] needs to know.
#[derive(Clone, Copy)]
pub struct CollapseContext<'a> {
    /// Live snapshot sequence numbers, ascending.
    pub snapshots: &'a [SeqNo],
    /// The table's merge operator, if any.
    pub merge: Option<&'a dyn MergeOperator>,
    /// True if no older version of any key can exist below the output.
    pub bottommost: bool,
    /// The table's compaction filter, if any (applied by [`collapse_filtered`]).
    pub filter: Option<&'a dyn CompactionFilter>,
}

/// [`collapse`], then the compaction filter: removed versions become tombstones (dropped
/// when trailing at the bottom), changed ones take their new value.
pub fn collapse_filtered(
    user_key: &[u8],
    versions: &[KeyVersion],
    cx: CollapseContext<'_>,
) -> Vec<KeyVersion> {
    let mut out = collapse(versions, cx);
    let Some(f) = cx.filter else {
        return out;
    };
    for v in out.iter_mut() {
        let (kind, value) = filter_version(f, user_key, v.1, std::mem::take(&mut v.2));
        v.1 = kind;
        v.2 = value;
    }
    if cx.bottommost {
        while out.last().is_some_and(|v| v.1 == ValueKind::Delete) {
            out.pop();
        }
    }
    out
}

fn stripe(snapshots: &[SeqNo], seq: SeqNo) -> usize {
    snapshots.partition_point(|&s| s < seq)
}

/// Collapses `versions` (newest first, as read from a merged stream; duplicates of the same
/// sequence number allowed) into the versions that must be kept, newest first.
pub fn collapse(versions: &[KeyVersion], cx: CollapseContext<'_>) -> Vec<KeyVersion> {
    let mut out: Vec<KeyVersion> = Vec::new();
    let mut i = 0;
    while i < versions.len() {
        let s = stripe(cx.snapshots, versions[i].0);
        let mut j = i + 1;
        while j < versions.len() && stripe(cx.snapshots, versions[j].0) == s {
            j += 1;
        }
        match cx.merge {
            Some(_) => out.push(collapse_stripe(&versions[i..j], cx.merge)),
            // Without the table's operator nothing can fold onto a merge operand, and
            // keeping only the operand would drop its base: the stripe stays as it is
            // (each sequence number once), as RocksDB keeps operands it cannot merge.
            None if versions[i].1 == ValueKind::Merge => {
                let mut last = None;
                for v in &versions[i..j] {
                    if last != Some(v.0) {
                        last = Some(v.0);
                        out.push(v.clone());
                    }
                }
            }
            None => out.push(collapse_stripe(&versions[i..j], None)),
        }
        i = j;
    }
    if cx.bottommost {
        match out.last() {
            Some((_, ValueKind::Delete, _)) => {
                out.pop();
            }
            Some((_, ValueKind::Merge, _)) if cx.merge.is_some() => {
                let (seq, _, v) = out.pop().expect("just seen");
                let merged = resolve_operand(cx.merge, v.to_vec());
                out.push((seq, ValueKind::Put, Bytes::from(merged)));
            }
            _ => {}
        }
    }
    out
}

/// The one version a stripe (non-empty, newest first) keeps.
fn collapse_stripe(stripe: &[KeyVersion], merge: Option<&dyn MergeOperator>) -> KeyVersion {
    let (seq, kind, value) = &stripe[0];
    // A put or tombstone on top hides the rest of its stripe: keep it without a copy.
    let Some(merge) = merge.filter(|_| *kind == ValueKind::Merge) else {
        return (*seq, *kind, value.clone());
    };
    let mut fold = VersionFold::latest(Some(merge));
    for (seq, kind, value) in stripe {
        if !fold.push(*seq, *kind, value) {
            break;
        }
    }
    match fold.finish() {
        Folded::Value { seq, value } => (seq, ValueKind::Put, Bytes::from(value)),
        Folded::Operands {
            newest_seq,
            operand,
            ..
        } => (newest_seq, ValueKind::Merge, Bytes::from(operand)),
        Folded::Deleted { .. } | Folded::Absent => unreachable!("a stripe led by an operand"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge::AppendOperator;

    fn v(seq: SeqNo, kind: ValueKind, s: &str) -> KeyVersion {
        (seq, kind, Bytes::from(s.to_string()))
    }

    const APPEND: AppendOperator = AppendOperator {
        delimiter: Some(b','),
    };

    fn cx(snapshots: &[SeqNo], bottommost: bool) -> CollapseContext<'_> {
        CollapseContext {
            snapshots,
            merge: Some(&APPEND),
            bottommost,
            filter: None,
        }
    }

    #[test]
    fn keeps_only_newest_without_snapshots() {
        let vs = [
            v(9, ValueKind::Put, "c"),
            v(5, ValueKind::Put, "b"),
            v(2, ValueKind::Delete, ""),
        ];
        assert_eq!(
            collapse(&vs, cx(&[], false)),
            vec![v(9, ValueKind::Put, "c")]
        );
    }

    #[test]
    fn snapshots_keep_their_visible_version() {
        let vs = [
            v(9, ValueKind::Put, "c"),
            v(5, ValueKind::Put, "b"),
            v(2, ValueKind::Put, "a"),
        ];
        assert_eq!(
            collapse(&vs, cx(&[6], false)),
            vec![v(9, ValueKind::Put, "c"), v(5, ValueKind::Put, "b")]
        );
    }

    #[test]
    fn merges_fold_within_a_stripe_and_resolve_at_bottom() {
        let vs = [
            v(9, ValueKind::Merge, "d"),
            v(8, ValueKind::Merge, "c"),
            v(5, ValueKind::Put, "b"),
        ];
        assert_eq!(
            collapse(&vs, cx(&[], false)),
            vec![v(9, ValueKind::Put, "b,c,d")]
        );
        assert_eq!(
            collapse(&vs, cx(&[8], false)),
            vec![v(9, ValueKind::Merge, "d"), v(8, ValueKind::Put, "b,c")]
        );
        let ops = [v(9, ValueKind::Merge, "d"), v(8, ValueKind::Merge, "c")];
        assert_eq!(
            collapse(&ops, cx(&[], false)),
            vec![v(9, ValueKind::Merge, "c,d")]
        );
        assert_eq!(
            collapse(&ops, cx(&[], true)),
            vec![v(9, ValueKind::Put, "c,d")]
        );
        let del = [v(9, ValueKind::Merge, "d"), v(8, ValueKind::Delete, "")];
        assert_eq!(
            collapse(&del, cx(&[], false)),
            vec![v(9, ValueKind::Put, "d")]
        );
    }

    #[test]
    fn bottommost_drops_trailing_tombstone_only() {
        let vs = [v(9, ValueKind::Delete, ""), v(5, ValueKind::Put, "b")];
        assert_eq!(collapse(&vs, cx(&[], true)), vec![]);
        assert_eq!(
            collapse(&vs, cx(&[6], true)),
            vec![v(9, ValueKind::Delete, ""), v(5, ValueKind::Put, "b")]
        );
        assert_eq!(
            collapse(&vs, cx(&[], false)),
            vec![v(9, ValueKind::Delete, "")]
        );
    }

    #[test]
    fn duplicate_sequence_numbers_are_kept_once() {
        let vs = [
            v(5, ValueKind::Merge, "x"),
            v(5, ValueKind::Merge, "x"),
            v(3, ValueKind::Put, "a"),
        ];
        assert_eq!(
            collapse(&vs, cx(&[], false)),
            vec![v(5, ValueKind::Put, "a,x")]
        );
    }

    #[test]
    fn without_an_operator_operands_keep_their_base() {
        let vs = [
            v(9, ValueKind::Merge, "d"),
            v(8, ValueKind::Merge, "c"),
            v(8, ValueKind::Merge, "c"),
            v(5, ValueKind::Delete, ""),
            v(3, ValueKind::Put, "a"),
        ];
        let no_op = |bottommost| CollapseContext {
            merge: None,
            ..cx(&[], bottommost)
        };
        let kept = vec![
            v(9, ValueKind::Merge, "d"),
            v(8, ValueKind::Merge, "c"),
            v(5, ValueKind::Delete, ""),
            v(3, ValueKind::Put, "a"),
        ];
        assert_eq!(collapse(&vs, no_op(false)), kept);
        assert_eq!(collapse(&vs, no_op(true)), kept);
        // A put on top still hides what is below it.
        let put = [v(9, ValueKind::Put, "z"), v(8, ValueKind::Merge, "c")];
        assert_eq!(
            collapse(&put, no_op(false)),
            vec![v(9, ValueKind::Put, "z")]
        );
    }
}
