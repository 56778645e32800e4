//! Timers: a priority queue of (timestamp, key, namespace) per time domain, stored as a
//! state table so millions of timers spill to chunks and table files like any state.
//!
//! Key layout (DESIGN.md §9): domain byte (0 event time, 1 processing time), timestamp
//! (u64 BE, so key order is timestamp order), key group, then the key and namespace with
//! u16 BE lengths. The value is empty. One key per (domain, timestamp, key, namespace)
//! makes registration idempotent (deduplicated).

use parking_lot::Mutex;

use crate::catalog::Table;
use crate::db::Db;
use crate::keyed::KeyedBackend;
use crate::options::{KeyGroupField, TableOptions};
use crate::{Error, Result, WriteBatch};

/// A timer's time domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeDomain {
    /// Fires when the watermark passes its timestamp.
    EventTime = 0,
    /// Fires when the wall clock passes its timestamp.
    ProcessingTime = 1,
}

/// A registered timer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timer {
    /// Timestamp (ms).
    pub timestamp: u64,
    /// Key group of the key.
    pub key_group: u16,
    /// Key.
    pub key: Vec<u8>,
    /// Namespace.
    pub namespace: Vec<u8>,
}

/// Timers of one keyed backend.
pub struct TimerService {
    db: Db,
    table: Table,
    /// Per domain: no timer below this timestamp is registered (registrations lower it,
    /// polls raise it, both under this lock), so polls start their scan here instead of at
    /// 0 and do not walk the tombstones of timers already fired.
    low: [Mutex<u64>; 2],
}

/// Timers polled per write batch.
const POLL_BATCH: usize = 1024;

impl TimerService {
    /// The timer queue `name` of `backend` (table `timers/<name>`).
    pub fn new(backend: &KeyedBackend, name: &str) -> Result<Self> {
        let db = backend.db().clone();
        // Routed by the domain byte: a domain's timers share one hot-tier shard, so the
        // timestamp-range scans of poll and next_timestamp read one shard, not all.
        // The key group is a 2-byte field after the domain and timestamp: a restore for a
        // subset of key groups keeps only their timers.
        let options = TableOptions {
            prefix_len: 1,
            key_group: Some(KeyGroupField {
                offset: 9,
                width: 2,
            }),
            ..TableOptions::default()
        };
        let table = db.create_table(&format!("timers/{name}"), options)?;
        Ok(TimerService {
            db,
            table,
            low: [Mutex::new(0), Mutex::new(0)],
        })
    }

    fn encode(domain: TimeDomain, t: &Timer) -> Result<Vec<u8>> {
        if t.key.len() > u16::MAX as usize || t.namespace.len() > u16::MAX as usize {
            return Err(Error::invalid(
                "keys and namespaces are at most 65535 bytes",
            ));
        }
        let mut k = Vec::with_capacity(1 + 8 + 2 + 4 + t.key.len() + t.namespace.len());
        k.push(domain as u8);
        k.extend_from_slice(&t.timestamp.to_be_bytes());
        k.extend_from_slice(&t.key_group.to_be_bytes());
        k.extend_from_slice(&(t.key.len() as u16).to_be_bytes());
        k.extend_from_slice(&t.key);
        k.extend_from_slice(&(t.namespace.len() as u16).to_be_bytes());
        k.extend_from_slice(&t.namespace);
        Ok(k)
    }

    fn decode(k: &[u8]) -> Option<Timer> {
        let timestamp = u64::from_be_bytes(k.get(1..9)?.try_into().ok()?);
        let key_group = u16::from_be_bytes(k.get(9..11)?.try_into().ok()?);
        let kl = u16::from_be_bytes(k.get(11..13)?.try_into().ok()?) as usize;
        let key = k.get(13..13 + kl)?.to_vec();
        let p = 13 + kl;
        let nl = u16::from_be_bytes(k.get(p..p + 2)?.try_into().ok()?) as usize;
        let namespace = k.get(p + 2..p + 2 + nl)?.to_vec();
        Some(Timer {
            timestamp,
            key_group,
            key,
            namespace,
        })
    }

    fn bound(domain: TimeDomain, ts: u64) -> Vec<u8> {
        let mut k = vec![domain as u8];
        k.extend_from_slice(&ts.to_be_bytes());
        k
    }

    /// Registers a timer; registering the same (timestamp, key, namespace) again is a no-op.
    pub fn register(&self, domain: TimeDomain, t: &Timer) -> Result<()> {
        let k = Self::encode(domain, t)?;
        let mut low = self.low[domain as usize].lock();
        self.db.put(&self.table, &k, b"")?;
        *low = (*low).min(t.timestamp);
        Ok(())
    }

    /// Deletes a timer (a no-op if it is not registered).
    pub fn delete(&self, domain: TimeDomain, t: &Timer) -> Result<()> {
        self.db.delete(&self.table, &Self::encode(domain, t)?)
    }

    /// The earliest registered timer's timestamp.
    pub fn next_timestamp(&self, domain: TimeDomain) -> Result<Option<u64>> {
        let start = Self::bound(domain, *self.low[domain as usize].lock());
        let end = [domain as u8 + 1];
        match self.db.range(&self.table, &start, Some(&end))?.next() {
            Some(kv) => Ok(Self::decode(&kv?.0).map(|t| t.timestamp)),
            None => Ok(None),
        }
    }

    /// Removes every timer with timestamp <= `t` and hands each to `f`, in timestamp order
    /// (ties by key group, key, namespace); timers `f` registers at or before `t` fire too.
    /// Streams in batches: memory use does not grow with the number of timers due.
    /// Returns how many fired.
    pub fn poll(
        &self,
        domain: TimeDomain,
        t: u64,
        f: &mut dyn FnMut(Timer) -> Result<()>,
    ) -> Result<usize> {
        let mut fired = 0;
        loop {
            let due = {
                let mut low = self.low[domain as usize].lock();
                let start = Self::bound(domain, *low);
                let end = Self::bound(domain, t.saturating_add(1));
                let mut batch = WriteBatch::new();
                let mut due = Vec::new();
                for kv in self.db.range(&self.table, &start, Some(&end))? {
                    let (k, _) = kv?;
                    let timer = Self::decode(&k)
                        .ok_or_else(|| Error::corruption("timers", "bad timer key"))?;
                    batch.delete(&self.table, &k);
                    due.push(timer);
                    if due.len() == POLL_BATCH {
                        break;
                    }
                }
                if due.is_empty() {
                    *low = (*low).max(t.saturating_add(1));
                    return Ok(fired);
                }
                self.db.write(batch)?;
                due
            };
            for timer in due {
                fired += 1;
                f(timer)?;
            }
        }
    }
}
