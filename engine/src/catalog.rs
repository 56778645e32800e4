//! The catalog of state tables and the hooks the tiers below call: table handles, the
//! registry of table definitions (options, merge operator, compaction filter), and the live
//! snapshot list that flushes and compaction must respect.
//!
//! Invariant: tables are never dropped, so a registry slot is written once (under the
//! table-creation lock) and read on every operation without a lock; a handle is valid only
//! while its name matches the registered one.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use strata_dfs::key::SeqNo;
use strata_dfs::{CompactionFilter, Compression, Error, MergeOperator, Result, TreeHooks};

use crate::options::TableOptions;

/// Name of the table every database has.
pub const DEFAULT_TABLE: &str = "default";

/// A handle to a state table. Cheap to clone; valid only for the database that returned
/// it: another database rejects it with `InvalidArgument`, even one with a table of the
/// same id and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Table {
    pub(crate) id: u32,
    pub(crate) name: Arc<str>,
    /// Identity of the open database that issued the handle.
    pub(crate) db: u64,
}

impl Table {
    /// The table's id (stable across reopen).
    pub fn id(&self) -> u32 {
        self.id
    }
    /// The table's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

pub(crate) struct TableEntry {
    pub(crate) name: Arc<str>,
    pub(crate) options: TableOptions,
    pub(crate) merge: Option<Arc<dyn MergeOperator>>,
    /// Set at run time (not persisted): applied when data is packed, flushed or compacted.
    pub(crate) filter: parking_lot::RwLock<Option<Arc<dyn CompactionFilter>>>,
}

/// Most state tables a database can have (ids 1..MAX_TABLES); the hot tier routes by
/// prefix for exactly these ids.
pub const MAX_TABLES: u32 = strata_chunkcache::ROUTED_TABLES as u32;

/// State tables by id. Tables are never dropped, so each slot is written once (under the
/// table-creation lock) and read on every operation without taking a lock.
pub(crate) struct Registry {
    slots: Box<[OnceLock<TableEntry>]>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            slots: (0..MAX_TABLES).map(|_| OnceLock::new()).collect(),
        }
    }
}

impl Registry {
    pub(crate) fn get(&self, id: u32) -> Option<&TableEntry> {
        self.slots.get(id as usize)?.get()
    }

    pub(crate) fn insert(&self, id: u32, entry: TableEntry) -> Result<()> {
        let slot = self
            .slots
            .get(id as usize)
            .filter(|_| id > 0)
            .ok_or_else(|| Error::invalid(format!("at most {} tables", MAX_TABLES - 1)))?;
        slot.set(entry)
            .map_err(|_| Error::invalid(format!("table id {id} registered twice")))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &TableEntry)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(id, s)| s.get().map(|e| (id as u32, e)))
    }
}

/// Live snapshots: sequence number -> number of handles.
pub(crate) struct SnapshotList {
    by_seq: Mutex<BTreeMap<SeqNo, usize>>,
    /// The largest live snapshot sequence number, `NO_SNAPSHOT` if none; kept in step with
    /// `by_seq` (updated under its lock) so the write path reads it without locking.
    latest: AtomicU64,
}

const NO_SNAPSHOT: u64 = u64::MAX;

impl Default for SnapshotList {
    fn default() -> Self {
        SnapshotList {
            by_seq: Mutex::default(),
            latest: AtomicU64::new(NO_SNAPSHOT),
        }
    }
}

impl SnapshotList {
    /// The newest live snapshot, if any.
    pub(crate) fn latest(&self) -> Option<SeqNo> {
        let l = self.latest.load(Ordering::SeqCst);
        (l != NO_SNAPSHOT).then_some(l)
    }

    pub(crate) fn add(&self, seq: SeqNo) {
        let mut s = self.by_seq.lock();
        *s.entry(seq).or_insert(0) += 1;
        self.latest
            .store(*s.keys().next_back().expect("just added"), Ordering::SeqCst);
    }

    pub(crate) fn release(&self, seq: SeqNo) {
        let mut s = self.by_seq.lock();
        if let Some(n) = s.get_mut(&seq) {
            *n -= 1;
            if *n == 0 {
                s.remove(&seq);
            }
        }
        let latest = s.keys().next_back().copied().unwrap_or(NO_SNAPSHOT);
        self.latest.store(latest, Ordering::SeqCst);
    }

    /// Every live snapshot, ascending.
    pub(crate) fn all(&self) -> Vec<SeqNo> {
        self.by_seq.lock().keys().copied().collect()
    }
}

/// What the tiers below ask of the engine: table definitions and live snapshots.
pub(crate) struct Hooks {
    /// The database's identity (from its manifest, so it survives reopening); its table
    /// handles carry it. Set once at open, before any handle exists.
    db_id: AtomicU64,
    pub(crate) tables: Registry,
    pub(crate) snapshots: SnapshotList,
}

impl Hooks {
    /// Hooks for an opened database; its identity is set once the manifest is loaded.
    pub(crate) fn new() -> Self {
        Hooks {
            db_id: AtomicU64::new(0),
            tables: Registry::default(),
            snapshots: SnapshotList::default(),
        }
    }

    /// Records the database's identity (at open).
    pub(crate) fn set_db_id(&self, id: u64) {
        self.db_id.store(id, Ordering::Relaxed);
    }

    /// The database's identity.
    pub(crate) fn db_id(&self) -> u64 {
        self.db_id.load(Ordering::Relaxed)
    }

    /// A handle for table `id` named `name`.
    pub(crate) fn handle(&self, id: u32, name: Arc<str>) -> Table {
        Table {
            id,
            name,
            db: self.db_id(),
        }
    }

    /// The registered entry of `table`; InvalidArgument if the handle is not this
    /// database's.
    pub(crate) fn entry(&self, table: &Table) -> Result<&TableEntry> {
        match self.tables.get(table.id) {
            Some(e) if table.db == self.db_id() && *e.name == *table.name => Ok(e),
            _ if table.db != self.db_id() => Err(Error::invalid(format!(
                "table {:?} is a handle of another database",
                table.name
            ))),
            _ => Err(Error::invalid(format!("unknown table {:?}", table.name))),
        }
    }
}

impl TreeHooks for Hooks {
    fn merge_operator(&self, table_id: u32) -> Option<Arc<dyn MergeOperator>> {
        self.tables.get(table_id).and_then(|t| t.merge.clone())
    }
    fn compression(&self, table_id: u32, level: usize) -> Compression {
        self.tables
            .get(table_id)
            .map_or(Compression::Lz4, |t| t.options.compression(level))
    }
    fn snapshots(&self) -> Vec<SeqNo> {
        self.snapshots.all()
    }
    fn compaction_filter(&self, table_id: u32) -> Option<Arc<dyn CompactionFilter>> {
        self.tables
            .get(table_id)
            .and_then(|t| t.filter.read().clone())
    }
    fn prefix_len(&self, table_id: u32) -> usize {
        self.tables
            .get(table_id)
            .map_or(0, |t| t.options.prefix_len as usize)
    }
}
