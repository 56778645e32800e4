//! The version fold: how a newest-first run of versions of one key combines into what a
//! reader sees. Every reader and rewriter uses it: the hot tier's lookup, the middle tier's
//! read through chunks and table files, the database iterator, and collapsing during
//! flushes and compaction.
//!
//! Rules, applied to versions in the order they are pushed (newest first):
//! - a version newer than the read's sequence number is invisible (snapshots);
//! - a version whose sequence number is not below the last one taken is a duplicate (a tier
//!   below may hold a copy of a version a tier above still has, e.g. after a WAL replay or
//!   while a move between tiers is published) and is skipped;
//! - a put or a tombstone ends the fold; merge operands fold onto each other (newer operand
//!   on the right) until a put or tombstone below gives them a base;
//! - without a merge operator an operand stands for itself: it is read as a value.
//!
//! What is left when the versions run out without a put or tombstone is the folded operand
//! ([`Folded::Operands`]): a caller at the bottom of the tree resolves it onto nothing
//! ([`VersionFold::into_value`]); a caller that rewrites data keeps it as an operand.

use crate::key::{SeqNo, ValueKind, MAX_SEQ};
use crate::merge::MergeOperator;

/// The outcome of a [`VersionFold`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Folded {
    /// No visible version.
    Absent,
    /// A value: a put, or operands folded onto a put or a tombstone. `seq` is the newest
    /// version's sequence number.
    Value {
        /// Sequence number of the newest version folded in.
        seq: SeqNo,
        /// The value.
        value: Vec<u8>,
    },
    /// A tombstone (the newest visible version).
    Deleted {
        /// Its sequence number.
        seq: SeqNo,
    },
    /// Merge operands without a base yet, folded into one.
    Operands {
        /// Sequence number of the newest operand.
        newest_seq: SeqNo,
        /// Sequence number of the oldest operand (versions at or above it below are
        /// duplicates).
        oldest_seq: SeqNo,
        /// The folded operand.
        operand: Vec<u8>,
    },
}

enum State {
    Empty,
    Operands(Vec<u8>),
    Value(Vec<u8>),
    Deleted,
}

/// Folds the versions of one key, newest first. See the module docs for the rules.
pub struct VersionFold<'m> {
    merge: Option<&'m dyn MergeOperator>,
    read_seq: SeqNo,
    /// Sequence number of the oldest version taken (`SeqNo::MAX` before the first).
    floor: SeqNo,
    /// Sequence number of the newest version taken.
    newest: SeqNo,
    state: State,
}

impl<'m> VersionFold<'m> {
    /// A fold reading as of `read_seq` (use [`MAX_SEQ`] for the newest state) with the
    /// table's merge operator.
    pub fn new(merge: Option<&'m dyn MergeOperator>, read_seq: SeqNo) -> Self {
        VersionFold {
            merge,
            read_seq,
            floor: SeqNo::MAX,
            newest: 0,
            state: State::Empty,
        }
    }

    /// A fold of everything (no snapshot limit).
    pub fn latest(merge: Option<&'m dyn MergeOperator>) -> Self {
        Self::new(merge, MAX_SEQ)
    }

    /// Takes the next older version. Returns true while more versions may change the
    /// outcome, false once a put or tombstone has ended the fold.
    #[inline]
    pub fn push(&mut self, seq: SeqNo, kind: ValueKind, value: &[u8]) -> bool {
        if self.is_done() {
            return false;
        }
        if seq > self.read_seq || seq >= self.floor {
            return true;
        }
        if self.floor == SeqNo::MAX {
            self.newest = seq;
        }
        self.floor = seq;
        self.state = match (std::mem::replace(&mut self.state, State::Empty), kind) {
            (State::Empty, ValueKind::Put) => State::Value(value.to_vec()),
            (State::Empty, ValueKind::Delete) => State::Deleted,
            (State::Empty, ValueKind::Merge) => match self.merge {
                Some(_) => State::Operands(value.to_vec()),
                None => State::Value(value.to_vec()),
            },
            (State::Operands(acc), kind) => {
                let op = self.merge.expect("operands are kept only with an operator");
                match kind {
                    ValueKind::Put => State::Value(op.merge(Some(value), &acc)),
                    ValueKind::Delete => State::Value(op.merge(None, &acc)),
                    ValueKind::Merge => State::Operands(op.merge(Some(value), &acc)),
                }
            }
            (done @ (State::Value(_) | State::Deleted), _) => done,
        };
        !self.is_done()
    }

    /// True once a put or tombstone has ended the fold.
    #[inline]
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Value(_) | State::Deleted)
    }

    /// True if no version has been taken yet.
    pub fn is_empty(&self) -> bool {
        matches!(self.state, State::Empty)
    }

    /// The outcome so far.
    pub fn finish(self) -> Folded {
        match self.state {
            State::Empty => Folded::Absent,
            State::Value(value) => Folded::Value {
                seq: self.newest,
                value,
            },
            State::Deleted => Folded::Deleted { seq: self.newest },
            State::Operands(operand) => Folded::Operands {
                newest_seq: self.newest,
                oldest_seq: self.floor,
                operand,
            },
        }
    }

    /// The value a reader sees when nothing older exists: operands without a base are
    /// resolved onto nothing.
    pub fn into_value(self) -> Option<Vec<u8>> {
        let merge = self.merge;
        match self.finish() {
            Folded::Value { value, .. } => Some(value),
            Folded::Operands { operand, .. } => Some(resolve_operand(merge, operand)),
            Folded::Absent | Folded::Deleted { .. } => None,
        }
    }
}

/// Resolves a folded operand onto nothing (the bottom of the tree).
pub fn resolve_operand(merge: Option<&dyn MergeOperator>, operand: Vec<u8>) -> Vec<u8> {
    match merge {
        Some(op) => op.merge(None, &operand),
        None => operand,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge::AppendOperator;
    use ValueKind::{Delete, Merge, Put};

    const APPEND: AppendOperator = AppendOperator {
        delimiter: Some(b','),
    };

    fn fold(read_seq: SeqNo, versions: &[(SeqNo, ValueKind, &str)]) -> Folded {
        let mut f = VersionFold::new(Some(&APPEND), read_seq);
        for (seq, kind, v) in versions {
            f.push(*seq, *kind, v.as_bytes());
        }
        f.finish()
    }

    fn value(seq: SeqNo, v: &str) -> Folded {
        Folded::Value {
            seq,
            value: v.as_bytes().to_vec(),
        }
    }

    #[test]
    fn put_and_tombstone_end_the_fold() {
        assert_eq!(
            fold(MAX_SEQ, &[(9, Put, "b"), (5, Put, "a")]),
            value(9, "b")
        );
        assert_eq!(
            fold(MAX_SEQ, &[(9, Delete, ""), (5, Put, "a")]),
            Folded::Deleted { seq: 9 }
        );
        assert_eq!(fold(MAX_SEQ, &[]), Folded::Absent);
    }

    #[test]
    fn operands_fold_onto_their_base() {
        let vs = [(9, Merge, "c"), (8, Merge, "b"), (5, Put, "a")];
        assert_eq!(fold(MAX_SEQ, &vs), value(9, "a,b,c"));
        assert_eq!(
            fold(MAX_SEQ, &[(9, Merge, "c"), (4, Delete, "")]),
            value(9, "c")
        );
        assert_eq!(
            fold(MAX_SEQ, &vs[..2]),
            Folded::Operands {
                newest_seq: 9,
                oldest_seq: 8,
                operand: b"b,c".to_vec()
            }
        );
    }

    #[test]
    fn snapshots_hide_newer_versions_and_duplicates_count_once() {
        let vs = [
            (9, Put, "new"),
            (7, Merge, "x"),
            (7, Merge, "x"),
            (3, Put, "a"),
        ];
        assert_eq!(fold(8, &vs), value(7, "a,x"));
        assert_eq!(fold(2, &vs), Folded::Absent);
        // A lower tier's copy of a version already taken is skipped, as is anything newer.
        assert_eq!(
            fold(
                MAX_SEQ,
                &[(6, Merge, "b"), (7, Merge, "dup"), (4, Put, "a")]
            ),
            value(6, "a,b")
        );
    }

    #[test]
    fn without_an_operator_an_operand_reads_as_a_value() {
        let mut f = VersionFold::latest(None);
        assert!(!f.push(4, Merge, b"x"));
        assert_eq!(f.into_value(), Some(b"x".to_vec()));
        let mut f = VersionFold::latest(Some(&APPEND));
        assert!(f.push(4, Merge, b"x"));
        assert_eq!(f.into_value(), Some(b"x".to_vec()));
    }
}
