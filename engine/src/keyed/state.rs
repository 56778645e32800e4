//! State declarations: the kinds of keyed state, their descriptors, and a registered
//! state's handle.

use std::sync::Arc;

use super::ttl::TtlConfig;
use crate::catalog::Table;

/// A reduce function: folds a new value into the accumulated one.
pub type ReduceFn = Arc<dyn Fn(&[u8], &[u8]) -> Vec<u8> + Send + Sync>;
/// An aggregate function's `add`: folds an input into the accumulator (`None`: empty).
pub type AggregateAddFn = Arc<dyn Fn(Option<&[u8]>, &[u8]) -> Vec<u8> + Send + Sync>;
/// An aggregate function's `getResult`.
pub type AggregateResultFn = Arc<dyn Fn(&[u8]) -> Vec<u8> + Send + Sync>;

/// The kind of a state.
#[derive(Clone)]
pub enum StateKind {
    /// One value per (key, namespace).
    Value,
    /// A list per (key, namespace); appends do not read the list.
    List,
    /// A sorted map per (key, namespace).
    Map,
    /// A value folded with a reduce function on every add.
    Reducing(ReduceFn),
    /// An accumulator folded on every add, read through a result function.
    Aggregating {
        /// Folds an input into the accumulator.
        add: AggregateAddFn,
        /// Turns the accumulator into the result.
        result: AggregateResultFn,
    },
}

impl std::fmt::Debug for StateKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StateKind::Value => "Value",
            StateKind::List => "List",
            StateKind::Map => "Map",
            StateKind::Reducing(_) => "Reducing",
            StateKind::Aggregating { .. } => "Aggregating",
        })
    }
}

/// Declares a state: its name (unique per backend), kind and TTL.
#[derive(Debug, Clone)]
pub struct StateDescriptor {
    /// Name; the state's table is `state/<name>`.
    pub name: String,
    /// Kind.
    pub kind: StateKind,
    /// Time to live, if any.
    pub ttl: Option<TtlConfig>,
    /// Serialized (key, namespace) lengths when every key and every namespace has the same
    /// length (like Flink's fixed-length prefix extractor for RocksDB map state). Map
    /// entries of one (key, namespace) are then kept together in the hot tier, so map
    /// iteration and clear read one shard instead of all. Other lengths still work, only
    /// slower to scan.
    pub fixed_lengths: Option<(u16, u16)>,
}

impl StateDescriptor {
    /// A state without TTL.
    pub fn new(name: &str, kind: StateKind) -> Self {
        StateDescriptor {
            name: name.to_string(),
            kind,
            ttl: None,
            fixed_lengths: None,
        }
    }
    /// With fixed serialized key and namespace lengths (see [`StateDescriptor::fixed_lengths`]).
    pub fn with_fixed_lengths(mut self, key_len: u16, namespace_len: u16) -> Self {
        self.fixed_lengths = Some((key_len, namespace_len));
        self
    }
    /// With a TTL.
    pub fn with_ttl(mut self, ttl: TtlConfig) -> Self {
        self.ttl = Some(ttl);
        self
    }
}

/// A registered state.
#[derive(Debug, Clone)]
pub struct State {
    pub(super) table: Table,
    pub(super) desc: Arc<StateDescriptor>,
}

impl State {
    /// The state's descriptor.
    pub fn descriptor(&self) -> &StateDescriptor {
        &self.desc
    }
    /// The table holding the state.
    pub fn table(&self) -> &Table {
        &self.table
    }
    pub(super) fn ttl(&self) -> Option<TtlConfig> {
        self.desc.ttl
    }
    pub(super) fn is_list(&self) -> bool {
        matches!(self.desc.kind, StateKind::List)
    }
}

/// One decoded entry of a state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateEntry {
    /// Key group.
    pub key_group: u16,
    /// Key.
    pub key: Vec<u8>,
    /// Namespace.
    pub namespace: Vec<u8>,
    /// Map user key (empty for other kinds).
    pub user_key: Vec<u8>,
    /// Stored value (for TTL states, without the timestamp; lists still framed).
    pub value: Vec<u8>,
}
