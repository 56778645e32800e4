//! Per-state-table options ([`TableOptions`]): merge semantics, compression per level and
//! the scan-prefix length, and their encoding in the manifest. Per-database settings are
//! [`crate::Settings`] (settings.rs); the tiers below get theirs derived from both
//! (`TreeOptions` and `MiddleSettings` per database, `TreeHooks` per table).

use std::sync::Arc;

use strata_dfs::coding::{put_bytes, Reader};
use strata_dfs::{
    AppendOperator, Compression, Error, MergeOperator, Result, U64AddOperator, NUM_LEVELS,
};

/// How `merge` operands combine in a table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum MergeKind {
    /// `merge` is rejected on this table.
    #[default]
    None,
    /// Operands are appended to the value (list state).
    Append,
    /// Operands are appended with a delimiter byte (RocksDB's string-append operator).
    AppendDelimited(u8),
    /// Little-endian u64 counters are added.
    U64Add,
    /// A custom operator registered on the builder under this name.
    Named(String),
}

/// Options of one state table (like a column family).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableOptions {
    /// Merge semantics.
    pub merge: MergeKind,
    /// Data block compression per level of table files; the last entry applies to deeper
    /// levels. Chunks in memory always use lz4.
    pub compression_per_level: Vec<Compression>,
    /// Length of the key prefix that groups keys for prefix scans (like RocksDB's fixed
    /// prefix extractor): for Flink map state, the serialized key group, key and namespace.
    /// Keys sharing it are kept together in the hot tier, so a prefix scan at least this
    /// long reads one shard. 0 disables it.
    pub prefix_len: u16,
    /// Where the Flink key group sits in the table's keys, if they carry one: a restore
    /// for a subset of key groups keeps only those keys of the table (the others are
    /// skipped by reads and dropped by compaction). `None`: the table is not split by key
    /// group; a restore keeps it whole.
    pub key_group: Option<KeyGroupField>,
}

/// A big-endian key-group field of `width` (1 or 2) bytes at byte `offset` of every key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyGroupField {
    /// Byte offset in the key.
    pub offset: u16,
    /// 1 or 2 bytes.
    pub width: u8,
}

impl Default for TableOptions {
    fn default() -> Self {
        TableOptions {
            merge: MergeKind::None,
            compression_per_level: vec![Compression::Lz4],
            prefix_len: 0,
            key_group: None,
        }
    }
}

impl TableOptions {
    /// Options with the given merge semantics and default compression.
    pub fn with_merge(merge: MergeKind) -> Self {
        TableOptions {
            merge,
            ..Default::default()
        }
    }

    /// Compression used at `level`.
    pub fn compression(&self, level: usize) -> Compression {
        self.compression_per_level
            .get(level)
            .or(self.compression_per_level.last())
            .copied()
            .unwrap_or_default()
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.compression_per_level.is_empty() || self.compression_per_level.len() > NUM_LEVELS {
            return Err(Error::invalid(format!(
                "compression_per_level must have 1..={NUM_LEVELS} entries"
            )));
        }
        if let MergeKind::Named(n) = &self.merge {
            if n.is_empty() || n.len() > 255 {
                return Err(Error::invalid("merge operator names are 1..=255 bytes"));
            }
        }
        if self.key_group.is_some_and(|k| !(1..=2).contains(&k.width)) {
            return Err(Error::invalid("a key-group field is 1 or 2 bytes wide"));
        }
        Ok(())
    }

    /// Encodes as: merge tag u8 (0 none, 1 append, 2 delimited, 3 u64-add, 4 named), then
    /// the delimiter byte (tag 2) or name bytes (tag 4), then a count u8 and one compression
    /// byte per level (0 none, 1 lz4, 2 zstd), then `prefix_len: u16` (absent = 0), then
    /// the key-group field's offset (u16 LE) and width (u8) (absent = none).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        match &self.merge {
            MergeKind::None => b.push(0),
            MergeKind::Append => b.push(1),
            MergeKind::AppendDelimited(d) => b.extend_from_slice(&[2, *d]),
            MergeKind::U64Add => b.push(3),
            MergeKind::Named(n) => {
                b.push(4);
                put_bytes(&mut b, n.as_bytes());
            }
        }
        b.push(self.compression_per_level.len() as u8);
        for c in &self.compression_per_level {
            b.push(match c {
                Compression::None => 0,
                Compression::Lz4 => 1,
                Compression::Zstd => 2,
            });
        }
        b.extend_from_slice(&self.prefix_len.to_le_bytes());
        if let Some(k) = self.key_group {
            b.extend_from_slice(&k.offset.to_le_bytes());
            b.push(k.width);
        }
        b
    }

    pub(crate) fn decode(b: &[u8], table: &str) -> Result<Self> {
        let bad = || Error::corruption("manifest", format!("options of table {table}"));
        let mut r = Reader::new(b);
        let merge = match r.u8().ok_or_else(bad)? {
            0 => MergeKind::None,
            1 => MergeKind::Append,
            2 => MergeKind::AppendDelimited(r.u8().ok_or_else(bad)?),
            3 => MergeKind::U64Add,
            4 => MergeKind::Named(
                String::from_utf8(r.bytes().ok_or_else(bad)?.to_vec()).map_err(|_| bad())?,
            ),
            _ => return Err(bad()),
        };
        let n = r.u8().ok_or_else(bad)?;
        let mut compression_per_level = Vec::new();
        for _ in 0..n {
            compression_per_level.push(match r.u8().ok_or_else(bad)? {
                0 => Compression::None,
                1 => Compression::Lz4,
                2 => Compression::Zstd,
                _ => return Err(bad()),
            });
        }
        let u16_le = |r: &mut Reader<'_>| -> Result<u16> {
            Ok(u16::from_le_bytes(
                r.take(2).ok_or_else(bad)?.try_into().map_err(|_| bad())?,
            ))
        };
        let (prefix_len, key_group) = match r.remaining() {
            0 => (0, None),
            2 => (u16_le(&mut r)?, None),
            5 => {
                let p = u16_le(&mut r)?;
                let offset = u16_le(&mut r)?;
                let width = r.u8().ok_or_else(bad)?;
                if !(1..=2).contains(&width) {
                    return Err(bad());
                }
                (p, Some(KeyGroupField { offset, width }))
            }
            _ => return Err(bad()),
        };
        Ok(TableOptions {
            merge,
            compression_per_level,
            prefix_len,
            key_group,
        })
    }

    /// Resolves the merge operator, looking named ones up in `registry`.
    pub(crate) fn operator(
        &self,
        registry: &[Arc<dyn MergeOperator>],
    ) -> Result<Option<Arc<dyn MergeOperator>>> {
        Ok(match &self.merge {
            MergeKind::None => None,
            MergeKind::Append => Some(Arc::new(AppendOperator { delimiter: None })),
            MergeKind::AppendDelimited(d) => Some(Arc::new(AppendOperator {
                delimiter: Some(*d),
            })),
            MergeKind::U64Add => Some(Arc::new(U64AddOperator)),
            MergeKind::Named(n) => Some(
                registry
                    .iter()
                    .find(|op| op.name() == n)
                    .cloned()
                    .ok_or_else(|| {
                        Error::invalid(format!(
                            "merge operator {n:?} is not registered; add it with DbBuilder::merge_operator"
                        ))
                    })?,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_roundtrip() {
        for merge in [
            MergeKind::None,
            MergeKind::Append,
            MergeKind::AppendDelimited(b','),
            MergeKind::U64Add,
            MergeKind::Named("max".into()),
        ] {
            let o = TableOptions {
                merge,
                compression_per_level: vec![Compression::None, Compression::Lz4, Compression::Zstd],
                prefix_len: 11,
                key_group: None,
            };
            assert_eq!(TableOptions::decode(&o.encode(), "t").unwrap(), o);
            let o = TableOptions {
                key_group: Some(KeyGroupField {
                    offset: 9,
                    width: 2,
                }),
                ..o
            };
            assert_eq!(TableOptions::decode(&o.encode(), "t").unwrap(), o);
        }
        assert!(TableOptions::decode(&[9], "t").unwrap_err().is_corruption());
        let o = TableOptions::default();
        assert_eq!(o.compression(5), Compression::Lz4);
    }
}
