//! Merge operators: how `merge` operands fold onto a value.
//!
//! Operators must be associative: `merge(merge(v, a), b) == merge(v, merge(Some(a), b))`
//! with operands and values of the same type. That lets every tier combine adjacent
//! operands early (appends to a hot list happen in place) and lets compaction fold operands
//! without seeing the base value.

use std::fmt;

/// An associative merge operator. Implementations must be deterministic and thread-safe.
pub trait MergeOperator: Send + Sync + fmt::Debug {
    /// A stable name, persisted with the table's definition.
    fn name(&self) -> &str;
    /// Folds `operand` onto `existing` (`None` when the key has no older value).
    fn merge(&self, existing: Option<&[u8]>, operand: &[u8]) -> Vec<u8>;
    /// Folds `operand` onto `existing` in place; the hot tier uses it for appends to a
    /// resident value. Must equal `merge(Some(existing), operand)`.
    fn merge_in_place(&self, existing: &mut Vec<u8>, operand: &[u8]) {
        *existing = self.merge(Some(existing), operand);
    }
}

/// Appends operands to the value, optionally separated by a delimiter byte (Flink's list
/// state uses `,` with RocksDB's string-append operator; Strata's own list state uses none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOperator {
    /// Byte inserted between the existing value and the operand.
    pub delimiter: Option<u8>,
}

impl MergeOperator for AppendOperator {
    fn name(&self) -> &str {
        match self.delimiter {
            None => "append",
            Some(_) => "append-delimited",
        }
    }
    fn merge(&self, existing: Option<&[u8]>, operand: &[u8]) -> Vec<u8> {
        match existing {
            None => operand.to_vec(),
            Some(e) => {
                let mut v = Vec::with_capacity(e.len() + operand.len() + 1);
                v.extend_from_slice(e);
                if let Some(d) = self.delimiter {
                    v.push(d);
                }
                v.extend_from_slice(operand);
                v
            }
        }
    }
    fn merge_in_place(&self, existing: &mut Vec<u8>, operand: &[u8]) {
        if let Some(d) = self.delimiter {
            existing.push(d);
        }
        existing.extend_from_slice(operand);
    }
}

/// Adds little-endian u64 counters (wrapping). Operands of another length count as 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct U64AddOperator;

impl MergeOperator for U64AddOperator {
    fn name(&self) -> &str {
        "u64-add"
    }
    fn merge(&self, existing: Option<&[u8]>, operand: &[u8]) -> Vec<u8> {
        let get = |b: &[u8]| b.try_into().map(u64::from_le_bytes).unwrap_or(0);
        let base = existing.map(get).unwrap_or(0);
        base.wrapping_add(get(operand)).to_le_bytes().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_are_associative() {
        let ops: [&dyn MergeOperator; 3] = [
            &AppendOperator { delimiter: None },
            &AppendOperator {
                delimiter: Some(b','),
            },
            &U64AddOperator,
        ];
        let (v, a, b) = (5u64.to_le_bytes(), 7u64.to_le_bytes(), 11u64.to_le_bytes());
        for op in ops {
            let left = op.merge(Some(&op.merge(Some(&v), &a)), &b);
            let right = op.merge(Some(&v), &op.merge(Some(&a), &b));
            assert_eq!(left, right, "{}", op.name());
            let mut in_place = v.to_vec();
            op.merge_in_place(&mut in_place, &a);
            assert_eq!(in_place, op.merge(Some(&v), &a), "{} in place", op.name());
        }
        assert_eq!(
            AppendOperator {
                delimiter: Some(b',')
            }
            .merge(Some(b"a"), b"b"),
            b"a,b"
        );
    }
}
