//! The keyed-state backend: one database, one key-group range of one maximum parallelism,
//! and the states registered on it. State registration, key construction, iteration over
//! key groups (savepoints, rescaling), batched and raw access live here; the operations of
//! each state kind are in `kinds.rs`.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::key_group::{java_bytes_hash, key_group_for_hash, KeyGroupRange};
use super::layout::{frame_element, KeyLayout};
use super::state::{State, StateDescriptor, StateEntry, StateKind};
use super::ttl::{self, TtlFilter, TtlUpdate};
use crate::clock::Clock;
use crate::db::{prefix_successor, Db};
use crate::options::{KeyGroupField, MergeKind, TableOptions};
use crate::{Error, Result, WriteBatch};

/// Keyed state over one database, for one key-group range.
pub struct KeyedBackend {
    pub(super) db: Db,
    pub(super) layout: KeyLayout,
    pub(super) range: KeyGroupRange,
    pub(super) clock: Arc<dyn Clock>,
    states: Mutex<HashMap<String, State>>,
}

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
            layout: KeyLayout { max_parallelism },
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
        self.layout.group_len()
    }

    /// The key group of `key` (hashed as Java hashes a `byte[]`).
    pub fn key_group_of(&self, key: &[u8]) -> u16 {
        key_group_for_hash(java_bytes_hash(key), self.layout.max_parallelism)
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
                key_group: Some(KeyGroupField {
                    offset: 0,
                    width: self.key_group_prefix_len() as u8,
                }),
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

    // ---- keys and values, through the layout and TTL codecs ----

    pub(super) fn prefix(&self, key: &[u8], ns: &[u8]) -> Result<Vec<u8>> {
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

    fn prefix_in_group(&self, kg: u16, key: &[u8], ns: &[u8]) -> Result<Vec<u8>> {
        self.check_group(kg)?;
        self.layout.encode(kg, key, ns)
    }

    pub(super) fn map_key(&self, key: &[u8], ns: &[u8], uk: &[u8]) -> Result<Vec<u8>> {
        let mut k = self.prefix(key, ns)?;
        k.extend_from_slice(uk);
        Ok(k)
    }

    fn check_raw(&self, composite: &[u8]) -> Result<()> {
        let kg = self
            .layout
            .group_of(composite)
            .ok_or_else(|| Error::invalid("composite key shorter than its key-group prefix"))?;
        self.check_group(kg)
    }

    pub(super) fn now(&self) -> u64 {
        self.clock.now_millis()
    }

    pub(super) fn wrap(&self, st: &State, v: &[u8]) -> Vec<u8> {
        ttl::wrap(st.ttl(), self.now(), v)
    }

    /// Unwraps a stored value: `None` if it is expired and must not be returned.
    pub(super) fn unwrap<'v>(
        &self,
        st: &State,
        stored: &'v [u8],
    ) -> Result<Option<(&'v [u8], bool)>> {
        ttl::unwrap(st.ttl(), self.now(), &st.desc.name, stored)
    }

    pub(super) fn refresh_on_read(&self, st: &State) -> bool {
        st.ttl()
            .is_some_and(|t| t.update == TtlUpdate::OnReadAndWrite)
    }

    pub(super) fn frame_element(&self, st: &State, e: &[u8], out: &mut Vec<u8>) -> Result<()> {
        frame_element(st.ttl().map(|_| self.now()), e, out)
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
            self.layout.push_group(kg, &mut v);
            v
        };
        let start = enc(groups.start);
        let end = prefix_successor(&enc(groups.end));
        for kv in self.db.range(&st.table, &start, end.as_deref())? {
            let (k, v) = kv?;
            let (key_group, key, namespace, user_key) = self
                .layout
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
