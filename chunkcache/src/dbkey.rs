//! The db-key codec: how one hot store and one chunk list hold the keys of every state
//! table. A db key is the state table id followed by the user key:
//!
//! ```text
//! +---------------------+----------------+
//! | table id: u32 BE    | user key bytes |
//! +---------------------+----------------+
//! ```
//!
//! Big-endian ids keep each table's keys contiguous and ordered by user key, so a table's
//! range is one contiguous db-key range. Table files hold plain user keys; the db key lives
//! only in memory (hot tier, chunks). This module is the only place that builds or parses
//! it.

use std::ops::Deref;

use strata_dfs::key::{self, MAX_SEQ};
use strata_dfs::{InternalIterator, Result};

/// Length of the table-id prefix of a db key.
pub const TABLE_PREFIX_LEN: usize = 4;

/// Db keys up to this many bytes are built on the stack.
const INLINE: usize = 64;

/// A db key built on the stack when it fits in 64 bytes (user keys up to 60 bytes: the
/// read and write fast paths), on the heap otherwise.
pub enum StackDbKey {
    /// Built on the stack: the first `len` bytes of `buf`.
    Inline {
        /// The bytes.
        buf: [u8; INLINE],
        /// How many are used.
        len: u8,
    },
    /// Too long for the stack.
    Heap(Vec<u8>),
}

impl Deref for StackDbKey {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        match self {
            StackDbKey::Inline { buf, len } => &buf[..usize::from(*len)],
            StackDbKey::Heap(v) => v,
        }
    }
}

/// The table-id prefix shared by every db key of `table_id`.
#[inline]
pub fn table_prefix(table_id: u32) -> [u8; TABLE_PREFIX_LEN] {
    table_id.to_be_bytes()
}

/// The db key of `user_key` in `table_id`.
pub fn encode(table_id: u32, user_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(TABLE_PREFIX_LEN + user_key.len());
    k.extend_from_slice(&table_prefix(table_id));
    k.extend_from_slice(user_key);
    k
}

/// [`encode`] without a heap allocation for short keys.
#[inline]
pub fn encode_on_stack(table_id: u32, user_key: &[u8]) -> StackDbKey {
    let len = TABLE_PREFIX_LEN + user_key.len();
    if len > INLINE {
        return StackDbKey::Heap(encode(table_id, user_key));
    }
    let mut buf = [0u8; INLINE];
    buf[..TABLE_PREFIX_LEN].copy_from_slice(&table_prefix(table_id));
    buf[TABLE_PREFIX_LEN..len].copy_from_slice(user_key);
    StackDbKey::Inline {
        buf,
        len: len as u8,
    }
}

/// Splits a db key into (table id, user key); `None` if it is shorter than the prefix.
#[inline]
pub fn decode(db_key: &[u8]) -> Option<(u32, &[u8])> {
    let (p, uk) = db_key.split_first_chunk::<TABLE_PREFIX_LEN>()?;
    Some((u32::from_be_bytes(*p), uk))
}

/// The table id of a db key.
#[inline]
pub fn table_of(db_key: &[u8]) -> Option<u32> {
    decode(db_key).map(|(t, _)| t)
}

/// The user key of a db key (empty if the db key is malformed).
#[inline]
pub fn user_key(db_key: &[u8]) -> &[u8] {
    decode(db_key).map_or(&[][..], |(_, uk)| uk)
}

/// The exclusive upper bound of `table_id`'s db keys, for `end` (a user key) or, without
/// one, the table's end.
pub fn range_end(table_id: u32, end: Option<&[u8]>) -> Vec<u8> {
    match (end, table_id.checked_add(1)) {
        (Some(e), _) => encode(table_id, e),
        (None, Some(next)) => table_prefix(next).to_vec(),
        (None, None) => vec![0xff; TABLE_PREFIX_LEN + 1],
    }
}

/// Adapts a db-key iterator to one state table's user keys: seeks add the table prefix,
/// keys lose it, and the iterator ends where the table's keys end. Works over an owned
/// iterator or a borrowed one (`&mut dyn InternalIterator`), so a stream of several tables
/// can be cut into one run per table.
pub struct StripPrefix<I> {
    inner: I,
    prefix: [u8; TABLE_PREFIX_LEN],
    buf: Vec<u8>,
}

impl<I: InternalIterator> StripPrefix<I> {
    /// Wraps `inner`, keeping only keys of `table_id`.
    pub fn new(inner: I, table_id: u32) -> Self {
        StripPrefix {
            inner,
            prefix: table_prefix(table_id),
            buf: Vec::new(),
        }
    }

    fn seek_prefixed(&mut self, target: &[u8]) {
        self.buf.clear();
        self.buf.extend_from_slice(&self.prefix);
        self.buf.extend_from_slice(target);
        self.inner.seek(&self.buf);
    }
}

impl<I: InternalIterator> InternalIterator for StripPrefix<I> {
    fn valid(&self) -> bool {
        self.inner.valid() && self.inner.key().starts_with(&self.prefix)
    }
    fn seek_to_first(&mut self) {
        self.seek_prefixed(&key::seek_key(&[], MAX_SEQ));
    }
    fn seek(&mut self, target: &[u8]) {
        self.seek_prefixed(target);
    }
    fn next(&mut self) {
        self.inner.next();
    }
    fn key(&self) -> &[u8] {
        &self.inner.key()[TABLE_PREFIX_LEN..]
    }
    fn value(&self) -> &[u8] {
        self.inner.value()
    }
    fn status(&self) -> Result<()> {
        self.inner.status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_orders_tables_apart() {
        let k = encode(7, b"abc");
        assert_eq!(decode(&k), Some((7, &b"abc"[..])));
        assert_eq!(&*encode_on_stack(7, b"abc"), k.as_slice());
        let long = [9u8; 100];
        assert_eq!(&*encode_on_stack(7, &long), encode(7, &long).as_slice());
        assert_eq!(
            &*encode_on_stack(7, &long[..60]),
            encode(7, &long[..60]).as_slice()
        );
        assert_eq!(user_key(&k), b"abc");
        assert_eq!(decode(b"abc"), None);
        assert!(encode(7, &[0xff; 8]) < encode(8, b""));
        assert!(encode(7, b"z").as_slice() < range_end(7, None).as_slice());
        assert_eq!(range_end(7, Some(b"m")), encode(7, b"m"));
        assert!(range_end(u32::MAX, None).as_slice() > encode(u32::MAX, b"").as_slice());
    }
}
