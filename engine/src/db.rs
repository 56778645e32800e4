//! The database's front door: [`Db`] and [`DbBuilder`]. Every operation is one call into
//! the part of the engine that owns it, so this file reads as the API:
//!
//! | file | concept |
//! | --- | --- |
//! | `open.rs` | opening: store, cache, tree, middle tier, tables, WAL replay |
//! | `catalog.rs`, `tables.rs` | state tables, the hooks the tiers below call, snapshot list |
//! | `write.rs`, `commit.rs` | the write path and group commit |
//! | `read.rs`, `iter.rs`, `snapshot.rs` | point reads, iterators, snapshots |
//! | `flush.rs`, `recovery.rs`, `wal.rs` | durability: flush, WAL replay, the WAL file |
//! | `inner.rs` | the shared state they all work on, and the lock order |

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use strata_dfs::key::MAX_SEQ;
use strata_dfs::{CompactionFilter, MergeOperator, Result, Storage, ValueKind};

use crate::batch::WriteBatch;
use crate::catalog::{Table, DEFAULT_TABLE};
use crate::clock::{Clock, SystemClock};
use crate::inner::Inner;
use crate::iter::DbIterator;
use crate::options::TableOptions;
use crate::recovery::RecoveryInfo;
use crate::settings::Settings;
use crate::snapshot::Snapshot;
use crate::stats::{LiveFile, Stats};

pub use strata_dfs::key::prefix_successor;

/// Builds a [`Db`] from settings plus live components.
pub struct DbBuilder {
    pub(crate) settings: Settings,
    pub(crate) dir: Option<PathBuf>,
    pub(crate) storage: Option<Arc<dyn Storage>>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) merge_ops: Vec<Arc<dyn MergeOperator>>,
    pub(crate) read_only: bool,
    pub(crate) external_stores: strata_dfs::StoreSet,
    pub(crate) key_groups: Option<crate::checkpoint::KeyGroups>,
    /// Set by a restore that has just checked every foreign file.
    pub(crate) foreign_checked: bool,
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
            read_only: false,
            external_stores: Default::default(),
            key_groups: None,
            foreign_checked: false,
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
    /// Opens an existing database without becoming its writer, for tools that inspect a
    /// database another process may be writing: no directory lock, no writer epoch, no
    /// compaction; WAL contents are replayed into memory only; every write, flush and
    /// compaction fails with `Poisoned`. Reads see the state as of the open.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }
    /// Registers a store that files of this database may live in: the store of a checkpoint
    /// it was restored from. `file://` stores need no registration; others (S3, memory) do,
    /// every time the database is opened.
    pub fn external_store(mut self, storage: Arc<dyn Storage>) -> Self {
        self.external_stores.add(storage);
        self
    }
    /// Declares the key groups this database owns (one instance of a keyed operator):
    /// recorded in the manifest when the database is created, so its checkpoints carry the
    /// range and can be merged with other instances' on rescaling. Opening an existing
    /// database that records another range is `InvalidArgument`.
    pub fn key_groups(mut self, groups: crate::checkpoint::KeyGroups) -> Self {
        self.key_groups = Some(groups);
        self
    }
    /// Opens (or creates) the database.
    pub fn open(self) -> Result<Db> {
        Db::open_with(self)
    }
}

/// An open database. Thread-safe: share it with `Arc` or clone the handle (clones share
/// one database). Closing happens on [`Db::close`] or when the last handle drops.
#[derive(Clone)]
pub struct Db {
    pub(crate) inner: Arc<Inner>,
    pub(crate) recovery: Arc<RecoveryInfo>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("storage", &self.inner.storage)
            .finish()
    }
}

impl Db {
    /// Opens (or creates) a database in local directory `dir`.
    pub fn open(dir: impl AsRef<Path>, settings: Settings) -> Result<Db> {
        DbBuilder::new(settings).path(dir).open()
    }

    /// A builder, for storage, clock and merge-operator components.
    pub fn builder(settings: Settings) -> DbBuilder {
        DbBuilder::new(settings)
    }

    /// What opening recovered.
    pub fn recovery_info(&self) -> RecoveryInfo {
        (*self.recovery).clone()
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
        self.inner.set_compaction_filter(table, filter)
    }

    /// Looks a table up by name.
    pub fn table(&self, name: &str) -> Option<Table> {
        self.inner.table(name)
    }

    /// The options `table` was created with.
    pub fn table_options(&self, table: &Table) -> Result<TableOptions> {
        Ok(self.inner.hooks.entry(table)?.options.clone())
    }

    /// Every table, by id.
    pub fn tables(&self) -> Vec<Table> {
        self.inner.tables()
    }

    /// Creates a table, or returns the existing one if its options are the same.
    /// Errors: InvalidArgument if it exists with other options or the options are bad.
    pub fn create_table(&self, name: &str, options: TableOptions) -> Result<Table> {
        self.inner.create_table(name, options)
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
        self.inner.multi_get(table, keys)
    }

    /// Takes a snapshot of everything written so far.
    pub fn snapshot(&self) -> Snapshot {
        self.inner.snapshot()
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
        self.inner.middle.wait_for_compactions()?;
        self.inner.middle.compact_table_fully(table.id)
    }

    /// Flushes and waits until no compaction is runnable (tests, bulk loads).
    pub fn compact(&self) -> Result<()> {
        self.inner.flush()?;
        self.inner.middle.wait_for_compactions()
    }

    /// Waits until no compaction is runnable or running.
    pub fn wait_for_compactions(&self) -> Result<()> {
        self.inner.middle.wait_for_compactions()
    }

    /// Runs one maintenance pass (packing, chunk flushing) on this thread.
    pub fn maintain(&self) -> Result<()> {
        self.inner.middle.maintain_now()
    }

    /// The live WAL file and how many of its bytes are synced, if the WAL is on. For
    /// power-loss tests, which truncate the file there to simulate losing the page cache.
    #[doc(hidden)]
    pub fn wal_durable_len(&self) -> Option<(PathBuf, u64)> {
        self.inner.apply.lock().wal.as_ref().map(|w| w.durable())
    }

    /// Copies the files this database reads from a remote checkpoint store to its local
    /// mirror (`Settings::disk_cache_dir`) now, instead of waiting for the background copy.
    /// Returns how many are still read remotely (those over the size bound).
    pub fn mirror_now(&self) -> usize {
        self.inner.middle.tree().mirror_now()
    }

    /// Statistics for every tier.
    pub fn stats(&self) -> Stats {
        let i = &self.inner;
        Stats::collect(
            &i.settings,
            i.middle.stats(),
            i.cache.snapshot(),
            i.middle.tree_stats(),
            i.last_seq.load(Ordering::SeqCst),
            i.wal_bytes.load(Ordering::Relaxed),
        )
    }

    /// The table files the current version references, by state table and level (as
    /// RocksDB's `GetLiveFilesMetaData`). Files of older versions that readers or
    /// checkpoints still hold are not listed.
    pub fn live_files(&self) -> Vec<LiveFile> {
        let m = self.inner.middle.manifest();
        let mut files: Vec<LiveFile> = m
            .version
            .all_files()
            .map(|(table_id, level, f)| LiveFile {
                path: f.path(),
                table_id,
                level,
                size: f.size,
                entries: f.entries,
            })
            .collect();
        files.sort_by(|a, b| (a.table_id, a.level, &a.path).cmp(&(b.table_id, b.level, &b.path)));
        files
    }

    /// Closes the database: flushes if `flush_on_close`, stops background threads. Later
    /// calls on any handle fail with [`Error::Closed`].
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }
}
