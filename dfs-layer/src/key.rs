//! Internal keys: a user key followed by an 8-byte trailer.
//!
//! ```text
//! +----------------+----------------------------------------+
//! | user key bytes | trailer: u64 LE = (seqno << 8) | kind   |
//! +----------------+----------------------------------------+
//! ```
//! Internal keys order by user key ascending, then trailer descending, so the newest version
//! of a key comes first. `kind` is one of [`ValueKind`].

use std::cmp::Ordering;

/// Sequence number of a write. Only the low 56 bits are usable.
pub type SeqNo = u64;

/// Largest sequence number that fits in a trailer.
pub const MAX_SEQ: SeqNo = (1 << 56) - 1;

/// What an internal entry records about its user key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum ValueKind {
    /// The key was deleted (a tombstone).
    Delete = 0,
    /// The key was set to the value.
    Put = 1,
    /// The value is a merge operand to be folded onto older versions.
    Merge = 2,
}

impl ValueKind {
    /// Decodes a kind byte.
    pub fn from_u8(b: u8) -> Option<Self> {
        match b {
            0 => Some(ValueKind::Delete),
            1 => Some(ValueKind::Put),
            2 => Some(ValueKind::Merge),
            _ => None,
        }
    }
}

/// Packs a sequence number and kind into a trailer.
pub fn trailer(seq: SeqNo, kind: ValueKind) -> u64 {
    debug_assert!(seq <= MAX_SEQ);
    (seq << 8) | kind as u64
}

/// Appends an internal key for `user_key` to `dst`.
pub fn append_internal_key(dst: &mut Vec<u8>, user_key: &[u8], seq: SeqNo, kind: ValueKind) {
    dst.extend_from_slice(user_key);
    dst.extend_from_slice(&trailer(seq, kind).to_le_bytes());
}

/// Builds an internal key.
pub fn internal_key(user_key: &[u8], seq: SeqNo, kind: ValueKind) -> Vec<u8> {
    let mut v = Vec::with_capacity(user_key.len() + 8);
    append_internal_key(&mut v, user_key, seq, kind);
    v
}

/// The smallest internal key for `user_key` visible at `seq` (a seek target): it sorts
/// before every version of `user_key` with a sequence number `<= seq`.
pub fn seek_key(user_key: &[u8], seq: SeqNo) -> Vec<u8> {
    let mut v = Vec::with_capacity(user_key.len() + 8);
    v.extend_from_slice(user_key);
    v.extend_from_slice(&((seq << 8) | 0xff).to_le_bytes());
    v
}

/// A decoded view of an internal key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedKey<'a> {
    /// The user key.
    pub user_key: &'a [u8],
    /// Sequence number of the write.
    pub seq: SeqNo,
    /// Kind of the write.
    pub kind: ValueKind,
}

/// Parses an internal key; `None` if it is shorter than a trailer or has an unknown kind.
pub fn parse(ikey: &[u8]) -> Option<ParsedKey<'_>> {
    let n = ikey.len().checked_sub(8)?;
    let t = u64::from_le_bytes(ikey[n..].try_into().ok()?);
    Some(ParsedKey {
        user_key: &ikey[..n],
        seq: t >> 8,
        kind: ValueKind::from_u8(t as u8)?,
    })
}

/// The user-key part of an internal key (the whole slice if it is too short).
pub fn user_key(ikey: &[u8]) -> &[u8] {
    &ikey[..ikey.len().saturating_sub(8)]
}

fn trailer_of(ikey: &[u8]) -> u64 {
    let n = ikey.len().saturating_sub(8);
    let mut t = [0u8; 8];
    let tail = &ikey[n..];
    t[..tail.len()].copy_from_slice(tail);
    u64::from_le_bytes(t)
}

/// The smallest byte string greater than every string that starts with `prefix` (`None` if
/// there is none: `prefix` is empty or all 0xff). A prefix scan is `[prefix, successor)`.
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut p = prefix.to_vec();
    while let Some(last) = p.pop() {
        if last != 0xff {
            p.push(last + 1);
            return Some(p);
        }
    }
    None
}

/// Compares two internal keys: user key ascending, then trailer descending.
pub fn compare(a: &[u8], b: &[u8]) -> Ordering {
    user_key(a)
        .cmp(user_key(b))
        .then_with(|| trailer_of(b).cmp(&trailer_of(a)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_version_sorts_first_and_prefixes_sort_before() {
        let a5 = internal_key(b"a", 5, ValueKind::Put);
        let a9 = internal_key(b"a", 9, ValueKind::Delete);
        let ab1 = internal_key(b"ab", 1, ValueKind::Put);
        assert_eq!(compare(&a9, &a5), Ordering::Less);
        assert_eq!(compare(&a5, &ab1), Ordering::Less);
        assert_eq!(compare(&seek_key(b"a", 7), &a5), Ordering::Less);
        assert_eq!(compare(&seek_key(b"a", 7), &a9), Ordering::Greater);
        let p = parse(&a9).unwrap();
        assert_eq!(
            (p.user_key, p.seq, p.kind),
            (&b"a"[..], 9, ValueKind::Delete)
        );
        assert!(parse(b"short").is_none());
    }

    #[test]
    fn prefix_successor_bounds_every_extension() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_successor(&[0xff, 0xff]), None);
        assert_eq!(prefix_successor(b""), None);
    }
}
