//! The operations of each kind of keyed state: value, reducing and aggregating, list and
//! map state, clearing, and merging namespaces (session windows).

use super::backend::KeyedBackend;
use super::layout::list_elements;
use super::state::{State, StateKind};
use super::ttl::TtlVisibility;
use crate::{Error, Result, WriteBatch};

impl KeyedBackend {
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
}
