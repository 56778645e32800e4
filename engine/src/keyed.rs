//! Keyed state for stream jobs, with the semantics of Flink's keyed state backends.
//!
//! A [`KeyedBackend`] owns a range of *key groups* out of a maximum parallelism. Every
//! state is declared by a [`StateDescriptor`] and lives in its own table. Entries are keyed
//! by (key group, key, namespace[, map user key]) in this byte layout (see DESIGN.md §7):
//!
//! ```text
//! key group   1 byte if max parallelism <= 128, else 2 bytes, big-endian
//! key         u16 BE length, then the key's bytes
//! namespace   u16 BE length, then the namespace's bytes
//! user key    map state only: the map key's bytes, to the end
//! ```
//!
//! The length fields make every (key group, key, namespace) prefix unambiguous, so a map's
//! entries or a key's namespaces are one prefix scan. Hosts that already serialize
//! Flink-style composite keys can pass them through the `raw_*` methods, which only check
//! the key-group prefix.
//!
//! TTL (as Flink's `StateTtlConfig`): values, map entries and list elements carry an 8-byte
//! big-endian timestamp of their last write (or read, with [`TtlUpdate::OnReadAndWrite`]).
//! Expired data is filtered on read and dropped by a compaction filter wherever data is
//! rewritten: hot entries packed into chunks, chunks flushed, and compaction.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use strata_dfs::{CompactionFilter, FilterDecision, ValueKind};

use crate::catalog::Table;
use crate::clock::Clock;
use crate::db::{prefix_successor, Db};
use crate::options::{MergeKind, TableOptions};
use crate::{Error, Result, WriteBatch};

/// Flink's `MathUtils.murmurHash`: the murmur3 finalizer over one 32-bit hash code.
pub fn murmur_hash(code: i32) -> i32 {
    let mut c = code.wrapping_mul(0xcc9e_2d51_u32 as i32);
    c = c.rotate_left(15);
    c = c.wrapping_mul(0x1b87_3593);
    c = c.rotate_left(13);
    c = c.wrapping_mul(5).wrapping_add(0xe654_6b64_u32 as i32);
    c ^= 4;
    // bitMix
    let mut h = c as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    let c = h as i32;
    if c >= 0 {
        c
    } else if c != i32::MIN {
        -c
    } else {
        0
    }
}

/// Flink's key-group assignment: `murmurHash(keyHash) % maxParallelism`.
pub fn key_group_for_hash(key_hash: i32, max_parallelism: u16) -> u16 {
    (murmur_hash(key_hash) % i32::from(max_parallelism)) as u16
}

/// Java's `Arrays.hashCode(byte[])`, the hash Flink sees for a `byte[]` key.
pub fn java_bytes_hash(bytes: &[u8]) -> i32 {
    bytes.iter().fold(1i32, |h, &b| {
        h.wrapping_mul(31).wrapping_add(i32::from(b as i8))
    })
}

/// An inclusive range of key groups, as Flink's `KeyGroupRange`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyGroupRange {
    /// First key group.
    pub start: u16,
    /// Last key group (inclusive).
    pub end: u16,
}

impl KeyGroupRange {
    /// `start..=end`.
    pub fn new(start: u16, end: u16) -> Self {
        KeyGroupRange { start, end }
    }
    /// True if `kg` is in the range.
    pub fn contains(&self, kg: u16) -> bool {
        (self.start..=self.end).contains(&kg)
    }
    /// Flink's `computeKeyGroupRangeForOperatorIndex`: the groups operator `index` of
    /// `parallelism` owns.
    pub fn for_operator(max_parallelism: u16, parallelism: u16, index: u16) -> Self {
        let (m, p, i) = (
            u32::from(max_parallelism),
            u32::from(parallelism),
            u32::from(index),
        );
        let start = (i * m).div_ceil(p);
        let end = ((i + 1) * m).div_ceil(p) - 1;
        KeyGroupRange::new(start as u16, end as u16)
    }
}

/// When a TTL entry's timestamp is refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlUpdate {
    /// On creation and every write.
    OnCreateAndWrite,
    /// Also on every read.
    OnReadAndWrite,
}

/// Whether expired data that is still stored may be returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlVisibility {
    /// Expired data is never returned.
    NeverReturnExpired,
    /// Expired data is returned until it is cleaned up.
    ReturnExpiredIfNotCleanedUp,
}

/// Per-state time to live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlConfig {
    /// Time to live in milliseconds of the backend's clock.
    pub ttl_ms: u64,
    /// When timestamps are refreshed.
    pub update: TtlUpdate,
    /// Whether expired data may be returned.
    pub visibility: TtlVisibility,
}

impl TtlConfig {
    /// A TTL refreshed on writes whose expired data is never returned.
    pub fn new(ttl_ms: u64) -> Self {
        TtlConfig {
            ttl_ms,
            update: TtlUpdate::OnCreateAndWrite,
            visibility: TtlVisibility::NeverReturnExpired,
        }
    }
}

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
    table: Table,
    desc: Arc<StateDescriptor>,
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
    fn ttl(&self) -> Option<TtlConfig> {
        self.desc.ttl
    }
    fn is_list(&self) -> bool {
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

/// Keyed state over one database, for one key-group range.
pub struct KeyedBackend {
    db: Db,
    max_parallelism: u16,
    range: KeyGroupRange,
    clock: Arc<dyn Clock>,
    states: Mutex<HashMap<String, State>>,
}

const TS_LEN: usize = 8;

impl KeyedBackend {
    /// A backend for key groups `range` of `max_parallelism` (1..=32768) on `db`.
    pub fn new(db: Db, max_parallelism: u16, range: KeyGroupRange) -> Result<Self> {
        if max_parallelism == 0 || max_parallelism > 32768 {
            return Err(Error::invalid("max parallelism must be in 1..=32768"));
        }
        if range.start > range.end || range.end >= max_parallelism {
            return Err(Error::invalid(format!(
                "key-group range {}..={} is not within 0..{max_parallelism}",
                range.start, range.end
            )));
        }
        let clock = db.clock().clone();
        Ok(KeyedBackend {
            db,
            max_parallelism,
            range,
            clock,
            states: Mutex::new(HashMap::new()),
        })
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The key-group range this backend owns.
    pub fn key_group_range(&self) -> KeyGroupRange {
        self.range
    }

    /// Bytes of the key-group prefix: 1 if max parallelism <= 128, else 2.
    pub fn key_group_prefix_len(&self) -> usize {
        if self.max_parallelism <= 128 {
            1
        } else {
            2
        }
    }

    /// The key group of `key` (hashed as Java hashes a `byte[]`).
    pub fn key_group_of(&self, key: &[u8]) -> u16 {
        key_group_for_hash(java_bytes_hash(key), self.max_parallelism)
    }

    /// Registers (or returns the already registered) state. Registering the same name with
    /// a different kind is an error.
    pub fn register(&self, desc: StateDescriptor) -> Result<State> {
        let mut states = self.states.lock();
        if let Some(s) = states.get(&desc.name) {
            if std::mem::discriminant(&s.desc.kind) != std::mem::discriminant(&desc.kind)
                || s.desc.ttl != desc.ttl
                || s.desc.fixed_lengths != desc.fixed_lengths
            {
                return Err(Error::invalid(format!(
                    "state {:?} is registered with another kind, TTL or fixed lengths",
                    desc.name
                )));
            }
            return Ok(s.clone());
        }
        let merge = match desc.kind {
            StateKind::List => MergeKind::Append,
            _ => MergeKind::None,
        };
        let prefix_len = desc.fixed_lengths.map_or(Ok(0), |(k, ns)| {
            u16::try_from(self.key_group_prefix_len() + 4 + usize::from(k) + usize::from(ns))
                .map_err(|_| Error::invalid("fixed key and namespace lengths are too long"))
        })?;
        let table = self.db.create_table(
            &format!("state/{}", desc.name),
            TableOptions {
                prefix_len,
                ..TableOptions::with_merge(merge)
            },
        )?;
        if let Some(ttl) = desc.ttl {
            self.db.set_compaction_filter(
                &table,
                Some(Arc::new(TtlFilter {
                    ttl_ms: ttl.ttl_ms,
                    list: matches!(desc.kind, StateKind::List),
                    clock: self.clock.clone(),
                })),
            )?;
        }
        let state = State {
            table,
            desc: Arc::new(desc),
        };
        states.insert(state.desc.name.clone(), state.clone());
        Ok(state)
    }

    // ---- keys ----

    fn prefix(&self, key: &[u8], ns: &[u8]) -> Result<Vec<u8>> {
        self.prefix_in_group(self.key_group_of(key), key, ns)
    }

    fn check_group(&self, kg: u16) -> Result<()> {
        if !self.range.contains(kg) {
            return Err(Error::invalid(format!(
                "key group {kg} is outside this backend's range {}..={}",
                self.range.start, self.range.end
            )));
        }
        Ok(())
    }

    /// Appends the key-group prefix (1 or 2 bytes) of `kg`.
    fn push_group(&self, kg: u16, out: &mut Vec<u8>) {
        if self.key_group_prefix_len() == 1 {
            out.push(kg as u8);
        } else {
            out.extend_from_slice(&kg.to_be_bytes());
        }
    }

    fn prefix_in_group(&self, kg: u16, key: &[u8], ns: &[u8]) -> Result<Vec<u8>> {
        self.check_group(kg)?;
        if key.len() > u16::MAX as usize || ns.len() > u16::MAX as usize {
            return Err(Error::invalid(
                "keys and namespaces are at most 65535 bytes",
            ));
        }
        let mut out = Vec::with_capacity(2 + 4 + key.len() + ns.len());
        self.push_group(kg, &mut out);
        out.extend_from_slice(&(key.len() as u16).to_be_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(&(ns.len() as u16).to_be_bytes());
        out.extend_from_slice(ns);
        Ok(out)
    }

    /// Splits a stored key into (key group, key, namespace, user key).
    #[allow(clippy::type_complexity)]
    fn decode(&self, k: &[u8]) -> Option<(u16, Vec<u8>, Vec<u8>, Vec<u8>)> {
        let g = self.key_group_prefix_len();
        let kg = if g == 1 {
            u16::from(*k.first()?)
        } else {
            u16::from_be_bytes(k.get(..2)?.try_into().ok()?)
        };
        let mut p = g;
        let kl = u16::from_be_bytes(k.get(p..p + 2)?.try_into().ok()?) as usize;
        p += 2;
        let key = k.get(p..p + kl)?.to_vec();
        p += kl;
        let nl = u16::from_be_bytes(k.get(p..p + 2)?.try_into().ok()?) as usize;
        p += 2;
        let ns = k.get(p..p + nl)?.to_vec();
        p += nl;
        Some((kg, key, ns, k[p..].to_vec()))
    }

    fn check_raw(&self, composite: &[u8]) -> Result<()> {
        let g = self.key_group_prefix_len();
        let kg = match composite.get(..g) {
            Some([b]) => u16::from(*b),
            Some([a, b]) => u16::from_be_bytes([*a, *b]),
            _ => {
                return Err(Error::invalid(
                    "composite key shorter than its key-group prefix",
                ))
            }
        };
        self.check_group(kg)
    }

    // ---- TTL framing ----

    fn now(&self) -> u64 {
        self.clock.now_millis()
    }

    fn wrap(&self, st: &State, v: &[u8]) -> Vec<u8> {
        match st.ttl() {
            None => v.to_vec(),
            Some(_) => {
                let mut out = Vec::with_capacity(TS_LEN + v.len());
                out.extend_from_slice(&self.now().to_be_bytes());
                out.extend_from_slice(v);
                out
            }
        }
    }

    /// Unwraps a stored value: `None` if it is expired and must not be returned.
    fn unwrap<'v>(&self, st: &State, stored: &'v [u8]) -> Result<Option<(&'v [u8], bool)>> {
        let Some(ttl) = st.ttl() else {
            return Ok(Some((stored, false)));
        };
        if stored.len() < TS_LEN {
            return Err(Error::corruption(
                st.desc.name.as_str(),
                "TTL value without timestamp",
            ));
        }
        let ts = u64::from_be_bytes(stored[..TS_LEN].try_into().expect("8 bytes"));
        let expired = ts.saturating_add(ttl.ttl_ms) <= self.now();
        if expired && ttl.visibility == TtlVisibility::NeverReturnExpired {
            return Ok(None);
        }
        Ok(Some((&stored[TS_LEN..], expired)))
    }

    fn refresh_on_read(&self, st: &State) -> bool {
        st.ttl()
            .is_some_and(|t| t.update == TtlUpdate::OnReadAndWrite)
    }

    fn frame_element(&self, st: &State, e: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let len = u32::try_from(e.len()).map_err(|_| Error::invalid("list element too large"))?;
        out.extend_from_slice(&len.to_le_bytes());
        if st.ttl().is_some() {
            out.extend_from_slice(&self.now().to_be_bytes());
        }
        out.extend_from_slice(e);
        Ok(())
    }

    // ---- value state ----

    fn get_stored(&self, st: &State, k: &[u8]) -> Result<Option<Vec<u8>>> {
        let Some(stored) = self.db.get(&st.table, k)? else {
            return Ok(None);
        };
        match self.unwrap(st, &stored)? {
            None => {
                // Expired: clean it up now.
                self.db.delete(&st.table, k)?;
                Ok(None)
            }
            Some((v, expired)) => {
                let v = v.to_vec();
                if self.refresh_on_read(st) && !expired {
                    self.db.put(&st.table, k, &self.wrap(st, &v))?;
                }
                Ok(Some(v))
            }
        }
    }

    /// ValueState: the value of (key, namespace).
    pub fn value_get(&self, st: &State, key: &[u8], ns: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get_stored(st, &self.prefix(key, ns)?)
    }

    /// ValueState: sets the value of (key, namespace).
    pub fn value_update(&self, st: &State, key: &[u8], ns: &[u8], v: &[u8]) -> Result<()> {
        self.db
            .put(&st.table, &self.prefix(key, ns)?, &self.wrap(st, v))
    }

    /// Removes (key, namespace) from any state (for map state: every entry).
    pub fn clear(&self, st: &State, key: &[u8], ns: &[u8]) -> Result<()> {
        let p = self.prefix(key, ns)?;
        if matches!(st.desc.kind, StateKind::Map) {
            let mut b = WriteBatch::new();
            for kv in self.db.prefix(&st.table, &p)? {
                b.delete(&st.table, &kv?.0);
            }
            self.db.write(b)
        } else {
            self.db.delete(&st.table, &p)
        }
    }

    // ---- reducing / aggregating ----

    /// Reducing or aggregating state: folds `v` into (key, namespace) in memory.
    pub fn add(&self, st: &State, key: &[u8], ns: &[u8], v: &[u8]) -> Result<()> {
        let k = self.prefix(key, ns)?;
        let mut err = None;
        self.db.update(&st.table, &k, |cur| {
            let cur = match cur.map(|c| self.unwrap(st, c)) {
                Some(Ok(Some((c, _)))) => Some(c),
                Some(Ok(None)) | None => None,
                Some(Err(e)) => {
                    err = Some(e);
                    return cur.map(<[u8]>::to_vec);
                }
            };
            let next = match &st.desc.kind {
                StateKind::Reducing(f) => match cur {
                    Some(c) => f(c, v),
                    None => v.to_vec(),
                },
                StateKind::Aggregating { add, .. } => add(cur, v),
                _ => v.to_vec(),
            };
            Some(self.wrap(st, &next))
        })?;
        match (err, &st.desc.kind) {
            (Some(e), _) => Err(e),
            (None, StateKind::Reducing(_) | StateKind::Aggregating { .. }) => Ok(()),
            _ => Err(Error::invalid(format!(
                "add needs a reducing or aggregating state; {:?} is {:?}",
                st.desc.name, st.desc.kind
            ))),
        }
    }

    /// Reducing state: the folded value; aggregating state: the result function applied
    /// to the accumulator.
    pub fn get(&self, st: &State, key: &[u8], ns: &[u8]) -> Result<Option<Vec<u8>>> {
        let acc = self.value_get(st, key, ns)?;
        Ok(match (&st.desc.kind, acc) {
            (StateKind::Aggregating { result, .. }, Some(a)) => Some(result(&a)),
            (_, a) => a,
        })
    }

    // ---- list state ----

    /// ListState: appends one element without reading the list.
    pub fn list_add(&self, st: &State, key: &[u8], ns: &[u8], e: &[u8]) -> Result<()> {
        self.list_add_all(st, key, ns, &[e])
    }

    /// ListState: appends elements in order, as one merge.
    pub fn list_add_all(&self, st: &State, key: &[u8], ns: &[u8], es: &[&[u8]]) -> Result<()> {
        if !st.is_list() {
            return Err(Error::invalid(format!(
                "{:?} is not a list state",
                st.desc.name
            )));
        }
        let mut op = Vec::new();
        for e in es {
            self.frame_element(st, e, &mut op)?;
        }
        self.db.merge(&st.table, &self.prefix(key, ns)?, &op)
    }

    /// ListState: every element, in order (expired elements skipped under
    /// never-return-expired).
    pub fn list_get(&self, st: &State, key: &[u8], ns: &[u8]) -> Result<Vec<Vec<u8>>> {
        let k = self.prefix(key, ns)?;
        let Some(raw) = self.db.get(&st.table, &k)? else {
            return Ok(Vec::new());
        };
        let now = self.now();
        let mut out = Vec::new();
        let mut all_expired = true;
        for el in list_elements(&raw, st.ttl().is_some()) {
            let (ts, e) = el.ok_or_else(|| Error::corruption(st.desc.name.as_str(), "bad list"))?;
            let expired = st.ttl().is_some_and(|t| ts.saturating_add(t.ttl_ms) <= now);
            all_expired &= expired;
            let hide = expired
                && st
                    .ttl()
                    .is_some_and(|t| t.visibility == TtlVisibility::NeverReturnExpired);
            if !hide {
                out.push(e.to_vec());
            }
        }
        if st.ttl().is_some() && all_expired {
            self.db.delete(&st.table, &k)?;
        } else if self.refresh_on_read(st) && !out.is_empty() {
            let refs: Vec<&[u8]> = out.iter().map(Vec::as_slice).collect();
            self.list_update(st, key, ns, &refs)?;
        }
        Ok(out)
    }

    /// ListState: replaces the list.
    pub fn list_update(&self, st: &State, key: &[u8], ns: &[u8], es: &[&[u8]]) -> Result<()> {
        let mut v = Vec::new();
        for e in es {
            self.frame_element(st, e, &mut v)?;
        }
        let k = self.prefix(key, ns)?;
        if es.is_empty() {
            self.db.delete(&st.table, &k)
        } else {
            self.db.put(&st.table, &k, &v)
        }
    }

    // ---- map state ----

    fn map_key(&self, key: &[u8], ns: &[u8], uk: &[u8]) -> Result<Vec<u8>> {
        let mut k = self.prefix(key, ns)?;
        k.extend_from_slice(uk);
        Ok(k)
    }

    /// MapState: the value under user key `uk`.
    pub fn map_get(&self, st: &State, key: &[u8], ns: &[u8], uk: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get_stored(st, &self.map_key(key, ns, uk)?)
    }

    /// MapState: sets `uk` to `v`.
    pub fn map_put(&self, st: &State, key: &[u8], ns: &[u8], uk: &[u8], v: &[u8]) -> Result<()> {
        self.db
            .put(&st.table, &self.map_key(key, ns, uk)?, &self.wrap(st, v))
    }

    /// MapState: sets every (user key, value), atomically.
    pub fn map_put_all(
        &self,
        st: &State,
        key: &[u8],
        ns: &[u8],
        entries: &[(&[u8], &[u8])],
    ) -> Result<()> {
        let mut b = WriteBatch::new();
        for (uk, v) in entries {
            b.put(&st.table, &self.map_key(key, ns, uk)?, &self.wrap(st, v));
        }
        self.db.write(b)
    }

    /// MapState: removes `uk`.
    pub fn map_remove(&self, st: &State, key: &[u8], ns: &[u8], uk: &[u8]) -> Result<()> {
        self.db.delete(&st.table, &self.map_key(key, ns, uk)?)
    }

    /// MapState: true if `uk` has a (visible) value.
    pub fn map_contains(&self, st: &State, key: &[u8], ns: &[u8], uk: &[u8]) -> Result<bool> {
        Ok(self.map_get(st, key, ns, uk)?.is_some())
    }

    /// MapState: every (user key, value) of (key, namespace), in user-key order.
    pub fn map_entries(
        &self,
        st: &State,
        key: &[u8],
        ns: &[u8],
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let p = self.prefix(key, ns)?;
        let mut out = Vec::new();
        for kv in self.db.prefix(&st.table, &p)? {
            let (k, v) = kv?;
            if let Some((v, _)) = self.unwrap(st, &v)? {
                out.push((k[p.len()..].to_vec(), v.to_vec()));
            }
        }
        Ok(out)
    }

    /// MapState: the user keys, in order.
    pub fn map_keys(&self, st: &State, key: &[u8], ns: &[u8]) -> Result<Vec<Vec<u8>>> {
        Ok(self
            .map_entries(st, key, ns)?
            .into_iter()
            .map(|e| e.0)
            .collect())
    }

    /// MapState: the values, in user-key order.
    pub fn map_values(&self, st: &State, key: &[u8], ns: &[u8]) -> Result<Vec<Vec<u8>>> {
        Ok(self
            .map_entries(st, key, ns)?
            .into_iter()
            .map(|e| e.1)
            .collect())
    }

    /// MapState: true if (key, namespace) has no visible entry.
    pub fn map_is_empty(&self, st: &State, key: &[u8], ns: &[u8]) -> Result<bool> {
        Ok(self.map_entries(st, key, ns)?.is_empty())
    }

    // ---- namespaces ----

    /// Merges the state of `sources` namespaces into `target` and clears the sources (for
    /// session windows). Lists are concatenated (target first), reducing and aggregating
    /// states folded; other kinds are rejected, as in Flink.
    pub fn merge_namespaces(
        &self,
        st: &State,
        key: &[u8],
        target: &[u8],
        sources: &[&[u8]],
    ) -> Result<()> {
        match &st.desc.kind {
            StateKind::List => {
                for src in sources {
                    let k = self.prefix(key, src)?;
                    if let Some(raw) = self.db.get(&st.table, &k)? {
                        // Elements keep their framing and timestamps.
                        let mut b = WriteBatch::new();
                        b.merge(&st.table, &self.prefix(key, target)?, &raw);
                        b.delete(&st.table, &k);
                        self.db.write(b)?;
                    }
                }
                Ok(())
            }
            StateKind::Reducing(f) => {
                for src in sources {
                    if let Some(v) = self.value_get(st, key, src)? {
                        let t = self.value_get(st, key, target)?;
                        let merged = match t {
                            Some(t) => f(&t, &v),
                            None => v,
                        };
                        self.value_update(st, key, target, &merged)?;
                        self.clear(st, key, src)?;
                    }
                }
                Ok(())
            }
            StateKind::Aggregating { .. } => Err(Error::invalid(
                "merging aggregating namespaces needs an accumulator merge; store the inputs in a list state",
            )),
            k => Err(Error::invalid(format!("{k:?} state cannot merge namespaces"))),
        }
    }

    /// Every key of this backend's range that has data in `namespace`, in storage order,
    /// each once.
    pub fn keys(&self, st: &State, namespace: &[u8]) -> Result<Vec<Vec<u8>>> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        self.for_each_entry(st, self.range, &mut |e| {
            if e.namespace == namespace && out.last() != Some(&e.key) {
                out.push(e.key.clone());
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Visits every stored entry of `st` in key groups `groups` (within this backend's
    /// range), in key order: for savepoints and rescaling. Expired TTL entries are skipped.
    pub fn for_each_entry(
        &self,
        st: &State,
        groups: KeyGroupRange,
        f: &mut dyn FnMut(&StateEntry) -> Result<()>,
    ) -> Result<()> {
        if !self.range.contains(groups.start) || !self.range.contains(groups.end) {
            return Err(Error::invalid(
                "key-group range outside the backend's range",
            ));
        }
        let enc = |kg: u16| {
            let mut v = Vec::with_capacity(2);
            self.push_group(kg, &mut v);
            v
        };
        let start = enc(groups.start);
        let end = prefix_successor(&enc(groups.end));
        for kv in self.db.range(&st.table, &start, end.as_deref())? {
            let (k, v) = kv?;
            let (key_group, key, namespace, user_key) = self
                .decode(&k)
                .ok_or_else(|| Error::corruption(st.desc.name.as_str(), "bad state key"))?;
            let value = if st.is_list() {
                v
            } else {
                match self.unwrap(st, &v)? {
                    Some((v, _)) => v.to_vec(),
                    None => continue,
                }
            };
            f(&StateEntry {
                key_group,
                key,
                namespace,
                user_key,
                value,
            })?;
        }
        Ok(())
    }

    // ---- batched access ----

    /// ValueState for many keys at once: entries not in memory are read in parallel.
    pub fn value_multi_get(
        &self,
        st: &State,
        keys: &[(&[u8], &[u8])],
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let ks: Vec<Vec<u8>> = keys
            .iter()
            .map(|(k, ns)| self.prefix(k, ns))
            .collect::<Result<_>>()?;
        let refs: Vec<&[u8]> = ks.iter().map(Vec::as_slice).collect();
        let raw = self.db.multi_get(&st.table, &refs)?;
        raw.into_iter()
            .map(|r| match r {
                None => Ok(None),
                Some(stored) => Ok(self.unwrap(st, &stored)?.map(|(v, _)| v.to_vec())),
            })
            .collect()
    }

    /// ValueState: updates many (key, namespace, value) at once, atomically.
    pub fn value_multi_update(&self, st: &State, items: &[(&[u8], &[u8], &[u8])]) -> Result<()> {
        let mut b = WriteBatch::new();
        for (k, ns, v) in items {
            b.put(&st.table, &self.prefix(k, ns)?, &self.wrap(st, v));
        }
        self.db.write(b)
    }

    // ---- raw composite keys ----

    /// Reads a host-serialized composite key (its key-group prefix must be in range).
    pub fn raw_get(&self, st: &State, composite: &[u8]) -> Result<Option<Vec<u8>>> {
        self.check_raw(composite)?;
        self.db.get(&st.table, composite)
    }

    /// Writes a host-serialized composite key.
    pub fn raw_put(&self, st: &State, composite: &[u8], v: &[u8]) -> Result<()> {
        self.check_raw(composite)?;
        self.db.put(&st.table, composite, v)
    }

    /// Merges into a host-serialized composite key (list states).
    pub fn raw_merge(&self, st: &State, composite: &[u8], v: &[u8]) -> Result<()> {
        self.check_raw(composite)?;
        self.db.merge(&st.table, composite, v)
    }

    /// Deletes a host-serialized composite key.
    pub fn raw_delete(&self, st: &State, composite: &[u8]) -> Result<()> {
        self.check_raw(composite)?;
        self.db.delete(&st.table, composite)
    }

    /// The composite key this backend stores for (key, namespace[, user key]).
    pub fn composite_key(&self, key: &[u8], ns: &[u8], user_key: &[u8]) -> Result<Vec<u8>> {
        self.map_key(key, ns, user_key)
    }

    /// Same key group assignment as [`KeyedBackend::composite_key`], but with the group given.
    pub fn composite_key_in_group(&self, kg: u16, key: &[u8], ns: &[u8]) -> Result<Vec<u8>> {
        self.prefix_in_group(kg, key, ns)
    }
}

/// Parses framed list elements: (timestamp or 0, bytes), `None` on a malformed frame.
fn list_elements(raw: &[u8], ttl: bool) -> impl Iterator<Item = Option<(u64, &[u8])>> {
    let mut p = 0;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || p >= raw.len() {
            return None;
        }
        let parsed = (|| {
            let len = u32::from_le_bytes(raw.get(p..p + 4)?.try_into().ok()?) as usize;
            let mut q = p + 4;
            let ts = if ttl {
                let t = u64::from_be_bytes(raw.get(q..q + TS_LEN)?.try_into().ok()?);
                q += TS_LEN;
                t
            } else {
                0
            };
            let e = raw.get(q..q + len)?;
            Some((q + len, ts, e))
        })();
        match parsed {
            Some((next, ts, e)) => {
                p = next;
                Some(Some((ts, e)))
            }
            None => {
                failed = true;
                Some(None)
            }
        }
    })
}

/// Drops expired TTL data wherever it is rewritten.
struct TtlFilter {
    ttl_ms: u64,
    list: bool,
    clock: Arc<dyn Clock>,
}

impl CompactionFilter for TtlFilter {
    fn filter(&self, _key: &[u8], _kind: ValueKind, value: &[u8]) -> FilterDecision {
        let now = self.clock.now_millis();
        let live = |ts: u64| ts.saturating_add(self.ttl_ms) > now;
        if !self.list {
            return match value.get(..TS_LEN) {
                Some(t) if !live(u64::from_be_bytes(t.try_into().expect("8 bytes"))) => {
                    FilterDecision::Remove
                }
                _ => FilterDecision::Keep,
            };
        }
        let mut kept = Vec::new();
        let mut dropped = false;
        for el in list_elements(value, true) {
            let Some((ts, e)) = el else {
                return FilterDecision::Keep; // not ours to judge
            };
            if live(ts) {
                kept.extend_from_slice(&(e.len() as u32).to_le_bytes());
                kept.extend_from_slice(&ts.to_be_bytes());
                kept.extend_from_slice(e);
            } else {
                dropped = true;
            }
        }
        match (dropped, kept.is_empty()) {
            (false, _) => FilterDecision::Keep,
            (true, true) => FilterDecision::Remove,
            (true, false) => FilterDecision::Change(kept),
        }
    }
}
