//! The database: the write path (group commit, WAL, hot tier), reads through every tier,
//! snapshots, iterators, flush, and recovery.
//!
//! Locks, in the order they may nest: the write queue (`queue`), then the apply lock
//! (`apply`, which owns the WAL writer and orders sequence numbers, WAL records and hot-tier
//! application), then the middle tier's maintenance lock, then the tree's state lock, then
//! hot-tier shard locks. Readers take only shard read locks and short `RwLock` reads of the
//! chunk list and the current version.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};
use strata_chunkcache::{db_key, HotWrite, MiddleSettings, MiddleTier};
use strata_dfs::key::{self, SeqNo, MAX_SEQ};
use strata_dfs::{
    BlockCache, CompactionFilter, Compression, Error, InternalIterator, LsmTree, MergeOperator,
    MergingIterator, ObjectStorage, ReadTier, Result, Storage, TableDef, TreeHooks, TreeOptions,
    ValueKind, Version, VersionEdit,
};

use crate::batch::{Op, WriteBatch};
use crate::options::TableOptions;
use crate::settings::Settings;
use crate::stats::Stats;
use crate::wal::{list_wals, read_wal, wal_path, WalWriter};

/// Most storage reads one [`Db::multi_get`] issues at once.
pub const MULTI_GET_PARALLELISM: usize = 16;

/// Name of the table every database has.
pub const DEFAULT_TABLE: &str = "default";

/// A handle to a state table. Cheap to clone; valid for the database that returned it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Table {
    id: u32,
    name: Arc<str>,
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

/// A source of wall-clock time in milliseconds, injectable for tests (TTL, timers).
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock reading `millis`.
    pub fn new(millis: u64) -> Self {
        ManualClock(AtomicU64::new(millis))
    }
    /// Moves the clock forward.
    pub fn advance(&self, millis: u64) {
        self.0.fetch_add(millis, Ordering::SeqCst);
    }
    /// Moves the clock forward to `millis` (never back: an earlier reading is ignored),
    /// for jobs whose clock follows event time.
    pub fn advance_to(&self, millis: u64) {
        self.0.fetch_max(millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

struct TableEntry {
    name: Arc<str>,
    options: TableOptions,
    merge: Option<Arc<dyn MergeOperator>>,
    /// Set at run time (not persisted): applied when data is packed, flushed or compacted.
    filter: parking_lot::RwLock<Option<Arc<dyn CompactionFilter>>>,
}

/// Most state tables a database can have (ids 1..MAX_TABLES); the hot tier routes by
/// prefix for exactly these ids.
pub const MAX_TABLES: u32 = strata_chunkcache::ROUTED_TABLES as u32;

/// State tables by id. Tables are never dropped, so each slot is written once (under the
/// table-creation lock) and read on every operation without taking a lock.
struct Registry {
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
    fn get(&self, id: u32) -> Option<&TableEntry> {
        self.slots.get(id as usize)?.get()
    }

    fn insert(&self, id: u32, entry: TableEntry) -> Result<()> {
        let slot = self
            .slots
            .get(id as usize)
            .filter(|_| id > 0)
            .ok_or_else(|| Error::invalid(format!("at most {} tables", MAX_TABLES - 1)))?;
        slot.set(entry)
            .map_err(|_| Error::invalid(format!("table id {id} registered twice")))
    }

    fn iter(&self) -> impl Iterator<Item = (u32, &TableEntry)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(id, s)| s.get().map(|e| (id as u32, e)))
    }
}

struct Hooks {
    tables: Registry,
    snapshots: Mutex<BTreeMap<SeqNo, usize>>,
    /// The largest live snapshot sequence number, `NO_SNAPSHOT` if none; kept in step with
    /// `snapshots` (updated under its lock) so the write path reads it without locking.
    latest: AtomicU64,
}

const NO_SNAPSHOT: u64 = u64::MAX;

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            tables: Registry::default(),
            snapshots: Mutex::default(),
            latest: AtomicU64::new(NO_SNAPSHOT),
        }
    }
}

impl Hooks {
    fn latest_snapshot(&self) -> Option<SeqNo> {
        let l = self.latest.load(Ordering::SeqCst);
        (l != NO_SNAPSHOT).then_some(l)
    }

    fn add_snapshot(&self, seq: SeqNo) {
        let mut s = self.snapshots.lock();
        *s.entry(seq).or_insert(0) += 1;
        self.latest
            .store(*s.keys().next_back().expect("just added"), Ordering::SeqCst);
    }

    fn release_snapshot(&self, seq: SeqNo) {
        let mut s = self.snapshots.lock();
        if let Some(n) = s.get_mut(&seq) {
            *n -= 1;
            if *n == 0 {
                s.remove(&seq);
            }
        }
        let latest = s.keys().next_back().copied().unwrap_or(NO_SNAPSHOT);
        self.latest.store(latest, Ordering::SeqCst);
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
        self.snapshots.lock().keys().copied().collect()
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

/// What opening the database recovered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryInfo {
    /// Manifest generation loaded (0 for a new database).
    pub manifest_generation: u64,
    /// A torn newest manifest generation that was skipped.
    pub skipped_torn_manifest: Option<String>,
    /// Unreferenced table files deleted.
    pub orphans_deleted: usize,
    /// Write batches replayed from the WAL.
    pub wal_batches_replayed: u64,
    /// Bytes of torn WAL tail ignored.
    pub wal_torn_bytes: u64,
}

/// Builds a [`Db`] from settings plus live components.
pub struct DbBuilder {
    settings: Settings,
    dir: Option<PathBuf>,
    storage: Option<Arc<dyn Storage>>,
    clock: Arc<dyn Clock>,
    merge_ops: Vec<Arc<dyn MergeOperator>>,
}

impl DbBuilder {
    /// A builder with `settings`.
    pub fn new(settings: Settings) -> Self {
        DbBuilder {
            settings,
            dir: None,
            storage: None,
            clock: Arc::new(SystemClock),
            merge_ops: Vec::new(),
        }
    }
    /// Keep the database in this local directory (the default store). Also the default
    /// home of the WAL (`<dir>/wal`).
    pub fn path(mut self, dir: impl AsRef<Path>) -> Self {
        self.dir = Some(dir.as_ref().to_path_buf());
        self
    }
    /// Keep table files and the manifest in `storage` instead of a local directory.
    pub fn storage(mut self, storage: Arc<dyn Storage>) -> Self {
        self.storage = Some(storage);
        self
    }
    /// Use `clock` for time (TTL, timers).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
    /// Registers a custom merge operator, for tables whose options name it.
    pub fn merge_operator(mut self, op: Arc<dyn MergeOperator>) -> Self {
        self.merge_ops.push(op);
        self
    }
    /// Opens (or creates) the database.
    pub fn open(self) -> Result<Db> {
        Db::open_with(self)
    }
}

/// The function of a read-modify-write: current value in, new value (or delete) out.
type UpdateFn<'a> = dyn FnMut(Option<&[u8]>) -> Option<Vec<u8>> + 'a;

struct Slot {
    batch: WriteBatch,
    result: Mutex<Option<Result<()>>>,
}

struct ApplyState {
    wal: Option<WalWriter>,
}

pub(crate) struct Inner {
    settings: Settings,
    storage: Arc<dyn Storage>,
    tree: Arc<LsmTree>,
    middle: MiddleTier,
    hooks: Arc<Hooks>,
    cache: Arc<BlockCache>,
    merge_ops: Vec<Arc<dyn MergeOperator>>,
    clock: Arc<dyn Clock>,
    queue: Mutex<VecDeque<Arc<Slot>>>,
    queue_cv: Condvar,
    apply: Mutex<ApplyState>,
    last_seq: AtomicU64,
    wal_dir: Option<PathBuf>,
    wal_bytes: AtomicU64,
    closed: AtomicBool,
    table_lock: Mutex<()>,
    bg_flush: Mutex<Option<JoinHandle<()>>>,
    flushing: AtomicBool,
    recovery: Mutex<RecoveryInfo>,
}

/// An open database. Thread-safe: share it with `Arc` or clone the handle (clones share
/// one database). Closing happens on [`Db::close`] or when the last handle drops.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("storage", &self.inner.storage)
            .finish()
    }
}

/// A consistent read view: reads through it see exactly the writes that completed before
/// it was taken, however the data moves between tiers afterwards. Cheap to hold, but it
/// keeps old versions alive; drop it when done.
pub struct Snapshot {
    seq: SeqNo,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot").field("seq", &self.seq).finish()
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        self.inner.hooks.release_snapshot(self.seq);
    }
}

impl Snapshot {
    /// The sequence number the snapshot reads at.
    pub fn sequence(&self) -> SeqNo {
        self.seq
    }
    /// Reads `key` as of the snapshot.
    pub fn get(&self, table: &Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.inner.get(table, key, self.seq, false)
    }
    /// Iterates keys in `[start, end)` as of the snapshot.
    pub fn range(&self, table: &Table, start: &[u8], end: Option<&[u8]>) -> Result<DbIterator> {
        self.inner
            .iter(table, start, end, self.inner.register_snapshot_at(self.seq))
    }
    /// Iterates keys starting with `prefix` as of the snapshot.
    pub fn prefix(&self, table: &Table, prefix: &[u8]) -> Result<DbIterator> {
        let end = prefix_successor(prefix);
        self.range(table, prefix, end.as_deref())
    }
}

pub use strata_dfs::key::prefix_successor;

impl Db {
    /// Opens (or creates) a database in local directory `dir`.
    pub fn open(dir: impl AsRef<Path>, settings: Settings) -> Result<Db> {
        DbBuilder::new(settings).path(dir).open()
    }

    /// A builder, for storage, clock and merge-operator components.
    pub fn builder(settings: Settings) -> DbBuilder {
        DbBuilder::new(settings)
    }

    fn open_with(b: DbBuilder) -> Result<Db> {
        b.settings.validate()?;
        let settings = b.settings;
        let storage: Arc<dyn Storage> = match (&b.storage, &b.dir) {
            (Some(s), _) => s.clone(),
            (None, Some(d)) => Arc::new(ObjectStorage::local(d.join("data"))?),
            (None, None) => {
                return Err(Error::invalid("DbBuilder needs a path or a storage"));
            }
        };
        let split = settings.split();
        let mut cache = BlockCache::new(split.block_cache);
        if storage.is_remote() {
            if let Some(dir) = &settings.disk_cache_dir {
                cache = cache.with_disk_tier(dir.clone(), settings.disk_cache_bytes)?;
            }
        }
        let cache = Arc::new(cache);
        let hooks = Arc::new(Hooks::default());
        let tree_opts = TreeOptions {
            compaction: settings.effective_compaction(),
            block_bytes: settings.table_block_bytes,
            restart_interval: 16,
            bloom_bits_per_key: settings.bloom_bits_per_key,
            compaction_threads: settings.compaction_threads,
        };
        let (tree, recovered) = LsmTree::open(
            storage.clone(),
            Some(cache.clone()),
            tree_opts,
            hooks.clone(),
        )?;
        let tree = Arc::new(tree);
        let mut routes = Vec::new();
        for (id, def) in &recovered.state.tables {
            let options = TableOptions::decode(&def.options, &def.name)?;
            let merge = options.operator(&b.merge_ops)?;
            routes.push((*id, options.prefix_len));
            hooks.tables.insert(
                *id,
                TableEntry {
                    name: def.name.as_str().into(),
                    options,
                    merge,
                    filter: Default::default(),
                },
            )?;
        }
        let max_file_seq = tree
            .current()
            .all_files()
            .map(|(_, _, f)| f.max_seq)
            .max()
            .unwrap_or(0);
        let last_seq = recovered.state.last_seq.max(max_file_seq);
        let middle = MiddleTier::new(
            tree.clone(),
            hooks.clone(),
            MiddleSettings {
                hot_budget: split.hot,
                chunk_budget: split.chunks,
                chunk_block_bytes: settings.chunk_block_bytes,
                hot_stall_bytes: split.hot + split.hot / 2,
            },
        )?;
        for (id, len) in routes {
            middle.hot().set_route_prefix(id, len);
        }
        let wal_dir = settings
            .wal_dir
            .clone()
            .or_else(|| b.dir.as_ref().map(|d| d.join("wal")));
        if settings.wal_enabled && wal_dir.is_none() {
            return Err(Error::invalid(
                "wal_enabled needs settings.wal_dir when the store is not a local directory",
            ));
        }
        let mut recovery = RecoveryInfo {
            manifest_generation: recovered.recovery.as_ref().map_or(0, |r| r.generation),
            skipped_torn_manifest: recovered
                .recovery
                .as_ref()
                .and_then(|r| r.skipped_torn.clone()),
            orphans_deleted: recovered.orphans_deleted,
            ..Default::default()
        };
        let inner = Arc::new(Inner {
            settings,
            storage,
            tree,
            middle,
            hooks,
            cache,
            merge_ops: b.merge_ops,
            clock: b.clock,
            queue: Mutex::new(VecDeque::new()),
            queue_cv: Condvar::new(),
            apply: Mutex::new(ApplyState { wal: None }),
            last_seq: AtomicU64::new(last_seq),
            wal_dir,
            wal_bytes: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            table_lock: Mutex::new(()),
            bg_flush: Mutex::new(None),
            flushing: AtomicBool::new(false),
            recovery: Mutex::new(RecoveryInfo::default()),
        });
        inner.recover_wal(
            recovered.state.log_number,
            recovered.state.last_seq,
            &mut recovery,
        )?;
        *inner.recovery.lock() = recovery;
        let db = Db { inner };
        if db.table(DEFAULT_TABLE).is_none() {
            db.create_table(DEFAULT_TABLE, TableOptions::default())?;
        }
        Ok(db)
    }

    /// What opening recovered.
    pub fn recovery_info(&self) -> RecoveryInfo {
        self.inner.recovery.lock().clone()
    }

    /// The clock given to the builder.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The settings the database runs with.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The table every database has.
    pub fn default_table(&self) -> Table {
        self.table(DEFAULT_TABLE).expect("created at open")
    }

    /// Installs (or with `None` removes) the compaction filter of `table`: from now on it
    /// sees every value and merge operand that is packed into chunks, flushed to level 0 or
    /// compacted. Filters are not persisted; install them again after opening.
    pub fn set_compaction_filter(
        &self,
        table: &Table,
        filter: Option<Arc<dyn CompactionFilter>>,
    ) -> Result<()> {
        let e = self
            .inner
            .hooks
            .tables
            .get(table.id)
            .filter(|e| *e.name == *table.name)
            .ok_or_else(|| Error::invalid(format!("unknown table {:?}", table.name)))?;
        *e.filter.write() = filter;
        Ok(())
    }

    /// Looks a table up by name.
    pub fn table(&self, name: &str) -> Option<Table> {
        self.inner
            .hooks
            .tables
            .iter()
            .find(|(_, t)| &*t.name == name)
            .map(|(id, t)| Table {
                id,
                name: t.name.clone(),
            })
    }

    /// Every table, by id.
    pub fn tables(&self) -> Vec<Table> {
        let mut v: Vec<Table> = self
            .inner
            .hooks
            .tables
            .iter()
            .map(|(id, t)| Table {
                id,
                name: t.name.clone(),
            })
            .collect();
        v.sort_by_key(|t| t.id);
        v
    }

    /// Creates a table, or returns the existing one if its options are the same.
    /// Errors: InvalidArgument if it exists with other options or the options are bad.
    pub fn create_table(&self, name: &str, options: TableOptions) -> Result<Table> {
        self.inner.check_writable()?;
        options.validate()?;
        if name.is_empty() || name.len() > 255 {
            return Err(Error::invalid("table names are 1..=255 bytes"));
        }
        let _g = self.inner.table_lock.lock();
        if let Some(t) = self.table(name) {
            let same = self
                .inner
                .hooks
                .tables
                .get(t.id)
                .map(|e| e.options == options);
            return match same {
                Some(true) => Ok(t),
                _ => Err(Error::invalid(format!(
                    "table {name:?} exists with other options"
                ))),
            };
        }
        let merge = options.operator(&self.inner.merge_ops)?;
        let id = self
            .inner
            .hooks
            .tables
            .iter()
            .map(|(id, _)| id)
            .max()
            .map_or(1, |m| m + 1);
        if id >= MAX_TABLES {
            return Err(Error::invalid(format!("at most {} tables", MAX_TABLES - 1)));
        }
        let def = TableDef {
            name: name.to_string(),
            options: options.encode(),
        };
        self.inner.tree.commit(VersionEdit::default(), |m| {
            m.tables.insert(id, def);
        })?;
        let name: Arc<str> = name.into();
        self.inner
            .middle
            .hot()
            .set_route_prefix(id, options.prefix_len);
        self.inner.hooks.tables.insert(
            id,
            TableEntry {
                name: name.clone(),
                options,
                merge,
                filter: Default::default(),
            },
        )?;
        Ok(Table { id, name })
    }

    /// Sets `key` to `value`.
    pub fn put(&self, table: &Table, key: &[u8], value: &[u8]) -> Result<()> {
        self.inner.write_one(ValueKind::Put, table, key, value)
    }

    /// Deletes `key`.
    pub fn delete(&self, table: &Table, key: &[u8]) -> Result<()> {
        self.inner.write_one(ValueKind::Delete, table, key, &[])
    }

    /// Folds `operand` into `key` with the table's merge operator (for list state: appends
    /// without reading the list). InvalidArgument if the table has no merge operator.
    pub fn merge(&self, table: &Table, key: &[u8], operand: &[u8]) -> Result<()> {
        self.inner.write_one(ValueKind::Merge, table, key, operand)
    }

    /// Applies `batch` atomically. Concurrent writers are grouped: one of them writes the
    /// WAL records of the whole group with one write (and one sync) and applies them.
    pub fn write(&self, batch: WriteBatch) -> Result<()> {
        self.inner.write(batch)
    }

    /// Atomic read-modify-write: `f` gets the current value (`None` if absent) and returns
    /// the new one (`None` deletes). No other write to the database interleaves. When the
    /// key is hot this is a hash lookup and an in-place update in memory.
    pub fn update(
        &self,
        table: &Table,
        key: &[u8],
        mut f: impl FnMut(Option<&[u8]>) -> Option<Vec<u8>>,
    ) -> Result<()> {
        self.inner.update(table, key, &mut f)
    }

    /// Reads the newest value of `key`.
    pub fn get(&self, table: &Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.inner.get(table, key, MAX_SEQ, true)
    }

    /// Reads several keys of one table; results are in the order of `keys`. Keys that
    /// memory answers (hot tier, chunks, cached blocks of open files) are read in place;
    /// the others go to storage on up to [`MULTI_GET_PARALLELISM`] threads at once, so on a
    /// remote store a batch costs about one round trip per wave of reads instead of one per
    /// key.
    pub fn multi_get(&self, table: &Table, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        self.inner.check_open()?;
        if let Some(k) = keys
            .iter()
            .find(|k| k.len() > self.inner.settings.max_key_bytes)
        {
            return Err(Error::invalid(format!(
                "key of {} bytes exceeds max_key_bytes",
                k.len()
            )));
        }
        let merge = self.inner.table_merge(table)?.map(|m| &**m);
        let mut out: Vec<Option<Vec<u8>>> = vec![None; keys.len()];
        let mut misses: Vec<usize> = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let mem = self
                .inner
                .middle
                .get(table.id, k, MAX_SEQ, merge, true, ReadTier::Memory);
            match mem {
                Ok(v) => out[i] = v,
                Err(e) if e.is_incomplete() => misses.push(i),
                Err(e) => return Err(e),
            }
        }
        if misses.len() <= 1 {
            for i in misses {
                out[i] = self.get(table, keys[i])?;
            }
            return Ok(out);
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        let workers = misses.len().min(MULTI_GET_PARALLELISM);
        type Found = Result<Vec<(usize, Option<Vec<u8>>)>>;
        let found: Vec<Found> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    s.spawn(|| {
                        let mut got = Vec::new();
                        loop {
                            let n = next.fetch_add(1, Ordering::Relaxed);
                            let Some(&i) = misses.get(n) else {
                                return Ok(got);
                            };
                            got.push((i, self.get(table, keys[i])?));
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(Error::invalid("a multi_get reader panicked")))
                })
                .collect()
        });
        for part in found {
            for (i, v) in part? {
                out[i] = v;
            }
        }
        Ok(out)
    }

    /// Takes a snapshot of everything written so far.
    pub fn snapshot(&self) -> Snapshot {
        let _a = self.inner.apply.lock();
        self.inner
            .register_snapshot_at(self.inner.last_seq.load(Ordering::SeqCst))
    }

    /// Iterates keys in `[start, end)` (`end` `None`: to the table's end) in key order,
    /// reading a consistent snapshot taken now.
    pub fn range(&self, table: &Table, start: &[u8], end: Option<&[u8]>) -> Result<DbIterator> {
        let snap = self.snapshot();
        self.inner.iter(table, start, end, snap)
    }

    /// Iterates keys starting with `prefix`, in key order.
    pub fn prefix(&self, table: &Table, prefix: &[u8]) -> Result<DbIterator> {
        let end = prefix_successor(prefix);
        self.range(table, prefix, end.as_deref())
    }

    /// Makes every write so far durable in table files, then drops WAL files it covers.
    /// Writers wait while it runs. Without the WAL, reopening after a crash yields at least
    /// the state as of the last completed flush.
    pub fn flush(&self) -> Result<()> {
        self.inner.flush()
    }

    /// Flushes, then compacts every level of `table` into the one below it down to the
    /// bottom (RocksDB's `CompactRange`): compaction filters see all of the table's data,
    /// and tombstones are dropped.
    pub fn compact_table(&self, table: &Table) -> Result<()> {
        self.inner.table_merge(table)?;
        self.inner.flush()?;
        self.inner.tree.wait_for_compactions()?;
        self.inner.tree.compact_table_fully(table.id)
    }

    /// Flushes and waits until no compaction is runnable (tests, bulk loads).
    pub fn compact(&self) -> Result<()> {
        self.inner.flush()?;
        self.inner.tree.wait_for_compactions()
    }

    /// Waits until no compaction is runnable or running.
    pub fn wait_for_compactions(&self) -> Result<()> {
        self.inner.tree.wait_for_compactions()
    }

    /// Runs one maintenance pass (packing, chunk flushing) on this thread.
    pub fn maintain(&self) -> Result<()> {
        self.inner.middle.maintain_now()
    }

    /// Statistics for every tier.
    pub fn stats(&self) -> Stats {
        let i = &self.inner;
        Stats::collect(
            &i.settings,
            i.middle.stats(),
            i.cache.snapshot(),
            i.tree.stats(),
            i.last_seq.load(Ordering::SeqCst),
            i.wal_bytes.load(Ordering::Relaxed),
        )
    }

    /// Closes the database: flushes if `flush_on_close`, stops background threads. Later
    /// calls on any handle fail with [`Error::Closed`].
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

impl Inner {
    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    fn check_writable(&self) -> Result<()> {
        self.check_open()?;
        self.tree.check_poison()
    }

    fn register_snapshot_at(self: &Arc<Self>, seq: SeqNo) -> Snapshot {
        self.hooks.add_snapshot(seq);
        Snapshot {
            seq,
            inner: self.clone(),
        }
    }

    fn table_merge(&self, table: &Table) -> Result<Option<&Arc<dyn MergeOperator>>> {
        match self.hooks.tables.get(table.id) {
            Some(e) if *e.name == *table.name => Ok(e.merge.as_ref()),
            _ => Err(Error::invalid(format!("unknown table {:?}", table.name))),
        }
    }

    fn validate_batch(&self, batch: &WriteBatch) -> Result<()> {
        batch.ops.iter().try_for_each(|op| {
            self.check_op(op.kind, op.table, &op.key, &op.value)
                .map(drop)
        })
    }

    /// One put, delete or merge. Without the WAL there is nothing to group, so it skips the
    /// group-commit queue and copies nothing but the key into the hot tier.
    fn write_one(
        self: &Arc<Self>,
        kind: ValueKind,
        table: &Table,
        key: &[u8],
        value: &[u8],
    ) -> Result<()> {
        if self.settings.wal_enabled {
            let mut b = WriteBatch::new();
            match kind {
                ValueKind::Put => b.put(table, key, value),
                ValueKind::Delete => b.delete(table, key),
                ValueKind::Merge => b.merge(table, key, value),
            };
            return self.write(b);
        }
        self.check_writable()?;
        let merge = self.check_op(kind, table.id, key, value)?;
        let mut buf = [0u8; 128];
        let heap;
        let dk: &[u8] = if key.len() + 4 <= buf.len() {
            buf[..4].copy_from_slice(&table.id.to_be_bytes());
            buf[4..4 + key.len()].copy_from_slice(key);
            &buf[..4 + key.len()]
        } else {
            heap = db_key(table.id, key);
            &heap
        };
        {
            let _st = self.apply.lock();
            self.tree.check_poison()?;
            let seq = self.last_seq.load(Ordering::SeqCst) + 1;
            self.middle.hot().apply(
                dk,
                HotWrite {
                    seq,
                    kind,
                    value,
                    merge,
                    latest_snapshot: self.hooks.latest_snapshot(),
                },
            );
            self.last_seq.store(seq, Ordering::SeqCst);
        }
        self.middle.after_write()
    }

    /// Checks one operation against the table and the size limits; returns the table's
    /// merge operator.
    fn check_op(
        &self,
        kind: ValueKind,
        table: u32,
        key: &[u8],
        value: &[u8],
    ) -> Result<Option<&dyn MergeOperator>> {
        let t = self
            .hooks
            .tables
            .get(table)
            .ok_or_else(|| Error::invalid(format!("unknown table id {table}")))?;
        if key.len() > self.settings.max_key_bytes {
            return Err(Error::invalid(format!(
                "key of {} bytes exceeds max_key_bytes {}",
                key.len(),
                self.settings.max_key_bytes
            )));
        }
        if value.len() > self.settings.max_value_bytes {
            return Err(Error::invalid(format!(
                "value of {} bytes exceeds max_value_bytes {}",
                value.len(),
                self.settings.max_value_bytes
            )));
        }
        if kind == ValueKind::Merge && t.merge.is_none() {
            return Err(Error::invalid(format!(
                "table {:?} has no merge operator",
                t.name
            )));
        }
        Ok(t.merge.as_deref())
    }

    fn write(self: &Arc<Self>, batch: WriteBatch) -> Result<()> {
        self.check_writable()?;
        if batch.is_empty() {
            return Ok(());
        }
        self.validate_batch(&batch)?;
        let me = Arc::new(Slot {
            batch,
            result: Mutex::new(None),
        });
        let mut q = self.queue.lock();
        q.push_back(me.clone());
        loop {
            if let Some(r) = me.result.lock().take() {
                return r;
            }
            if Arc::ptr_eq(&q[0], &me) {
                break;
            }
            self.queue_cv.wait(&mut q);
        }
        // Leader: commit every queued batch (up to a bound) as one group.
        let mut group = Vec::new();
        let mut bytes = 0;
        for s in q.iter() {
            bytes += s
                .batch
                .ops
                .iter()
                .map(|o| o.key.len() + o.value.len())
                .sum::<usize>();
            group.push(s.clone());
            if bytes > (1 << 20) {
                break;
            }
        }
        drop(q);
        let r = self.commit_group(&group);
        let mut q = self.queue.lock();
        for s in &group {
            q.pop_front();
            if !Arc::ptr_eq(s, &me) {
                *s.result.lock() = Some(r.clone());
            }
        }
        self.queue_cv.notify_all();
        drop(q);
        r?;
        self.maybe_flush_wal();
        self.middle.after_write()
    }

    fn commit_group(&self, group: &[Arc<Slot>]) -> Result<()> {
        let mut st = self.apply.lock();
        let batches: Vec<&WriteBatch> = group.iter().map(|s| &s.batch).collect();
        self.commit_locked(&mut st, &batches)
    }

    /// Assigns sequence numbers, appends the WAL records with one write, applies the
    /// batches to the hot tier and publishes the last sequence number. REQUIRES: the apply
    /// lock (`st`).
    fn commit_locked(&self, st: &mut ApplyState, batches: &[&WriteBatch]) -> Result<()> {
        self.tree.check_poison()?;
        let base = self.last_seq.load(Ordering::SeqCst);
        let mut seq = base;
        let mut firsts = Vec::with_capacity(batches.len());
        for b in batches {
            firsts.push(seq + 1);
            seq += b.len() as u64;
        }
        if let Some(w) = &mut st.wal {
            let payloads: Vec<Vec<u8>> = batches
                .iter()
                .zip(&firsts)
                .map(|(b, &f)| b.encode(f))
                .collect();
            if let Err(e) = w.append(&payloads) {
                self.tree.poison(&format!("WAL write failed: {e}"));
                return Err(e);
            }
            self.wal_bytes.store(w.bytes(), Ordering::Relaxed);
        }
        for (b, &first) in batches.iter().zip(&firsts) {
            self.apply_batch(b, first);
        }
        self.last_seq.store(seq, Ordering::SeqCst);
        Ok(())
    }

    fn update(self: &Arc<Self>, table: &Table, key: &[u8], f: &mut UpdateFn<'_>) -> Result<()> {
        self.check_writable()?;
        let merge = self.table_merge(table)?.map(|m| &**m);
        if key.len() > self.settings.max_key_bytes {
            return Err(Error::invalid("key exceeds max_key_bytes"));
        }
        {
            // Every write applies under the apply lock, so nothing can change the key
            // between this read and the write.
            let mut st = self.apply.lock();
            let current = self
                .middle
                .get(table.id, key, MAX_SEQ, merge, true, ReadTier::All)?;
            let mut batch = WriteBatch::new();
            match f(current.as_deref()) {
                Some(v) => batch.put(table, key, &v),
                None => batch.delete(table, key),
            };
            self.validate_batch(&batch)?;
            self.commit_locked(&mut st, &[&batch])?;
        }
        self.maybe_flush_wal();
        self.middle.after_write()
    }

    /// Applies a batch to the hot tier with sequence numbers from `first`.
    fn apply_batch(&self, batch: &WriteBatch, first: SeqNo) {
        self.apply_ops(batch.ops.iter().zip(first..));
    }

    /// Applies operations with their sequence numbers, all at once for point readers.
    fn apply_ops<'a>(&self, ops: impl Iterator<Item = (&'a Op, SeqNo)>) {
        let tables = &self.hooks.tables;
        let latest_snapshot = self.hooks.latest_snapshot();
        let ops: Vec<(&Op, SeqNo, Vec<u8>)> =
            ops.map(|(o, s)| (o, s, db_key(o.table, &o.key))).collect();
        let writes: Vec<(&[u8], HotWrite<'_>)> = ops
            .iter()
            .map(|(o, seq, k)| {
                (
                    k.as_slice(),
                    HotWrite {
                        seq: *seq,
                        kind: o.kind,
                        value: &o.value,
                        merge: tables.get(o.table).and_then(|t| t.merge.as_deref()),
                        latest_snapshot,
                    },
                )
            })
            .collect();
        match writes.as_slice() {
            [] => {}
            [(k, w)] => self.middle.hot().apply(k, *w),
            _ => self.middle.hot().apply_all(&writes),
        }
    }

    /// Newest sequence number of `key` in table files, if any.
    fn newest_in_tables(&self, version: &Version, table: u32, key: &[u8]) -> Result<Option<SeqNo>> {
        let mut newest = None;
        self.tree.get(
            version,
            table,
            key,
            MAX_SEQ,
            ReadTier::All,
            &mut |_, seq, _| {
                newest = Some(seq);
                false
            },
        )?;
        Ok(newest)
    }

    fn maybe_flush_wal(self: &Arc<Self>) {
        if !self.settings.wal_enabled
            || self.wal_bytes.load(Ordering::Relaxed) <= self.settings.wal_max_bytes
            || self.flushing.swap(true, Ordering::SeqCst)
        {
            return;
        }
        let me = Arc::downgrade(self);
        let h = std::thread::Builder::new()
            .name("strata-wal-flush".into())
            .spawn(move || {
                if let Some(inner) = me.upgrade() {
                    // A failure poisons the tree; writers see it on their next write.
                    let _ = inner.flush();
                    inner.flushing.store(false, Ordering::SeqCst);
                }
            });
        match h {
            Ok(h) => {
                if let Some(old) = self.bg_flush.lock().replace(h) {
                    let _ = old.join();
                }
            }
            Err(_) => self.flushing.store(false, Ordering::SeqCst),
        }
    }

    fn get(&self, table: &Table, key: &[u8], seq: SeqNo, promote: bool) -> Result<Option<Vec<u8>>> {
        self.check_open()?;
        if key.len() > self.settings.max_key_bytes {
            return Err(Error::invalid("key exceeds max_key_bytes"));
        }
        let merge = self.table_merge(table)?.map(|m| &**m);
        self.middle
            .get(table.id, key, seq, merge, promote, ReadTier::All)
    }

    fn iter(
        &self,
        table: &Table,
        start: &[u8],
        end: Option<&[u8]>,
        snap: Snapshot,
    ) -> Result<DbIterator> {
        self.check_open()?;
        let merge = self.table_merge(table)?.cloned();
        let (sources, version) = self.middle.iter_sources(table.id, start, end);
        Ok(DbIterator {
            inner: MergingIterator::new(sources),
            _version: version,
            seq: snap.seq,
            _snap: snap,
            start: start.to_vec(),
            end: end.map(<[u8]>::to_vec),
            merge,
            started: false,
            done: false,
        })
    }

    fn flush(&self) -> Result<()> {
        self.check_writable()?;
        let mut st = self.apply.lock();
        let seq = self.last_seq.load(Ordering::SeqCst);
        let new_wal = match (&self.wal_dir, self.settings.wal_enabled) {
            (Some(dir), true) => Some(WalWriter::create(
                dir,
                self.tree.new_file_number(),
                self.settings.wal_sync,
            )?),
            _ => None,
        };
        let log_number = new_wal.as_ref().map(WalWriter::number);
        let r = self.middle.flush_all(|m| {
            m.last_seq = m.last_seq.max(seq);
            if let Some(n) = log_number {
                m.log_number = n;
            }
        });
        if let Err(e) = r {
            if let (Some(dir), Some(n)) = (&self.wal_dir, log_number) {
                let _ = std::fs::remove_file(wal_path(dir, n));
            }
            return Err(e);
        }
        if let Some(w) = new_wal {
            st.wal = Some(w);
            self.wal_bytes.store(0, Ordering::Relaxed);
        }
        drop(st);
        if let (Some(dir), Some(n)) = (&self.wal_dir, log_number) {
            for old in list_wals(dir)?.into_iter().filter(|&o| o < n) {
                let _ = std::fs::remove_file(wal_path(dir, old));
            }
        }
        self.tree.purge_obsolete();
        Ok(())
    }

    fn recover_wal(
        &self,
        log_number: u64,
        durable_seq: SeqNo,
        info: &mut RecoveryInfo,
    ) -> Result<()> {
        let Some(dir) = &self.wal_dir else {
            return Ok(());
        };
        let all = list_wals(dir)?;
        // A crash between creating a WAL and committing the manifest that names it leaves
        // a WAL numbered at or above the recovered next file number: never reuse it.
        if let Some(&max) = all.iter().max() {
            self.tree.reserve_file_numbers_through(max);
        }
        let numbers: Vec<u64> = all.into_iter().filter(|&n| n >= log_number).collect();
        for &n in &numbers {
            let c = read_wal(dir, n)?;
            info.wal_torn_bytes += c.torn_bytes;
            let version = self.tree.current();
            for (first, batch) in c.batches {
                let last = first + batch.len() as u64 - 1;
                if last <= durable_seq {
                    continue;
                }
                self.validate_batch(&batch)?;
                // A chunk flush may have written some of these writes to table files
                // already: for one key, table files always hold a prefix of its history, so
                // an operation is there exactly when the key's newest version below is at
                // least as new. Re-applying it would apply a merge operand twice.
                let mut todo = Vec::with_capacity(batch.ops.len());
                for (op, seq) in batch.ops.iter().zip(first..) {
                    let below = self.newest_in_tables(&version, op.table, &op.key)?;
                    if below.is_none_or(|b| b < seq) {
                        todo.push((op, seq));
                    }
                }
                self.apply_ops(todo.into_iter());
                self.last_seq.fetch_max(last, Ordering::SeqCst);
                info.wal_batches_replayed += 1;
            }
        }
        if !self.settings.wal_enabled && numbers.is_empty() {
            return Ok(());
        }
        // Make the replayed writes durable in table files and start a fresh WAL.
        if self.settings.wal_enabled || info.wal_batches_replayed > 0 {
            self.flush()?;
        }
        if !self.settings.wal_enabled {
            for n in list_wals(dir)? {
                let _ = std::fs::remove_file(wal_path(dir, n));
            }
        }
        Ok(())
    }

    fn close(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Ok(());
        }
        let r = if self.settings.flush_on_close && self.tree.check_poison().is_ok() {
            self.flush()
        } else {
            Ok(())
        };
        self.closed.store(true, Ordering::SeqCst);
        if let Some(h) = self.bg_flush.lock().take() {
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
        self.middle.shutdown();
        self.tree.shutdown();
        r
    }
}

/// Iterator over `(key, value)` pairs of one table in key order, from a consistent
/// snapshot. Yields `Err` once (then ends) if a read fails or finds corruption.
pub struct DbIterator {
    inner: MergingIterator,
    _version: Arc<Version>,
    _snap: Snapshot,
    seq: SeqNo,
    start: Vec<u8>,
    end: Option<Vec<u8>>,
    merge: Option<Arc<dyn MergeOperator>>,
    started: bool,
    done: bool,
}

impl DbIterator {
    fn fold_operand(&self, existing: Option<&[u8]>, operand: Vec<u8>) -> Vec<u8> {
        match &self.merge {
            Some(op) => op.merge(existing, &operand),
            None => operand,
        }
    }
}

impl Iterator for DbIterator {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if !self.started {
            self.started = true;
            self.inner.seek(&key::seek_key(&self.start, MAX_SEQ));
        }
        loop {
            if !self.inner.valid() {
                self.done = true;
                return self.inner.status().err().map(Err);
            }
            let uk = key::user_key(self.inner.key()).to_vec();
            if self.end.as_deref().is_some_and(|e| uk.as_slice() >= e) {
                self.done = true;
                return None;
            }
            let mut acc: Option<Vec<u8>> = None;
            let mut result: Option<Option<Vec<u8>>> = None;
            let mut floor = SeqNo::MAX;
            while self.inner.valid() && key::user_key(self.inner.key()) == uk.as_slice() {
                let Some(p) = key::parse(self.inner.key()) else {
                    self.done = true;
                    return Some(Err(Error::corruption(
                        "iterator source",
                        "malformed internal key",
                    )));
                };
                if result.is_none() && p.seq <= self.seq && p.seq < floor {
                    floor = p.seq;
                    let v = self.inner.value().to_vec();
                    match p.kind {
                        ValueKind::Put => {
                            result = Some(Some(match acc.take() {
                                Some(a) => self.fold_operand(Some(&v), a),
                                None => v,
                            }));
                        }
                        ValueKind::Delete => {
                            result = Some(acc.take().map(|a| self.fold_operand(None, a)))
                        }
                        ValueKind::Merge => {
                            acc = Some(match acc.take() {
                                Some(a) => self.fold_operand(Some(&v), a),
                                None => v,
                            });
                        }
                    }
                }
                self.inner.next();
            }
            if let Err(e) = self.inner.status() {
                self.done = true;
                return Some(Err(e));
            }
            let value = match result {
                Some(r) => r,
                None => acc.map(|a| self.fold_operand(None, a)),
            };
            if let Some(v) = value {
                return Some(Ok((uk, v)));
            }
        }
    }
}
