//! Atomic write batches.

use strata_dfs::coding::{put_bytes, put_u32, put_u64, put_varint, Reader};
use strata_dfs::ValueKind;

use crate::catalog::Table;

/// One operation of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Op {
    pub kind: ValueKind,
    pub table: u32,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// A group of writes applied atomically: readers see all of them or none, and after a
/// crash with the WAL on, all of them or none are recovered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    pub(crate) ops: Vec<Op>,
    /// The database whose table handles the operations used.
    pub(crate) owner: Owner,
}

/// Which database a batch's table handles belong to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Owner {
    /// No handle used yet (an empty batch, or one decoded from the WAL).
    #[default]
    None,
    /// Every handle belongs to the database with this identity.
    Db(u64),
    /// Handles of several databases: the batch is rejected.
    Mixed,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets `key` to `value`.
    pub fn put(&mut self, table: &Table, key: &[u8], value: &[u8]) -> &mut Self {
        self.push(ValueKind::Put, table, key, value)
    }
    /// Deletes `key`.
    pub fn delete(&mut self, table: &Table, key: &[u8]) -> &mut Self {
        self.push(ValueKind::Delete, table, key, &[])
    }
    /// Merges `operand` into `key` with the table's merge operator.
    pub fn merge(&mut self, table: &Table, key: &[u8], operand: &[u8]) -> &mut Self {
        self.push(ValueKind::Merge, table, key, operand)
    }
    fn push(&mut self, kind: ValueKind, table: &Table, key: &[u8], value: &[u8]) -> &mut Self {
        self.owner = match self.owner {
            Owner::None => Owner::Db(table.db),
            Owner::Db(d) if d == table.db => Owner::Db(d),
            _ => Owner::Mixed,
        };
        self.ops.push(Op {
            kind,
            table: table.id(),
            key: key.to_vec(),
            value: value.to_vec(),
        });
        self
    }
    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }
    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
    /// Removes every operation.
    pub fn clear(&mut self) {
        self.ops.clear();
        self.owner = Owner::None;
    }

    /// WAL payload: first_seq u64 | count u32 | per op: kind u8 | table varint | key bytes |
    /// value bytes.
    pub(crate) fn encode(&self, first_seq: u64) -> Vec<u8> {
        let mut b = Vec::with_capacity(
            16 + self
                .ops
                .iter()
                .map(|o| o.key.len() + o.value.len() + 8)
                .sum::<usize>(),
        );
        put_u64(&mut b, first_seq);
        put_u32(&mut b, self.ops.len() as u32);
        for o in &self.ops {
            b.push(o.kind as u8);
            put_varint(&mut b, u64::from(o.table));
            put_bytes(&mut b, &o.key);
            put_bytes(&mut b, &o.value);
        }
        b
    }

    pub(crate) fn decode(b: &[u8]) -> Option<(u64, WriteBatch)> {
        let mut r = Reader::new(b);
        let first = r.u64()?;
        let n = r.u32()?;
        let mut ops = Vec::with_capacity(n.min(1 << 16) as usize);
        for _ in 0..n {
            ops.push(Op {
                kind: ValueKind::from_u8(r.u8()?)?,
                table: u32::try_from(r.varint()?).ok()?,
                key: r.bytes()?.to_vec(),
                value: r.bytes()?.to_vec(),
            });
        }
        (r.remaining() == 0).then_some((
            first,
            WriteBatch {
                ops,
                owner: Owner::None,
            },
        ))
    }
}
