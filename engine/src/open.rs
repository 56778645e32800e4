//! Opening a database: the store, the block cache, the LSM tree and the middle tier over
//! it, the state tables the manifest defines, then WAL replay.
//!
//! Invariant: nothing is written to the database before it is locked against other writers
//! (the directory's `LOCK` file; the manifest's writer epoch on any store), the manifest is
//! loaded and every recovered table is registered, so replayed writes find their tables and
//! merge operators; no background work (maintenance, compaction) starts before that either,
//! since it rewrites versions with those merge operators.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

use parking_lot::Mutex;
use strata_chunkcache::{MiddleSettings, MiddleTier};
use strata_dfs::{BlockCache, Error, LsmTree, Mirror, ObjectStorage, Result, Storage, TreeOptions};

use crate::catalog::{Hooks, DEFAULT_TABLE};
use crate::commit::{ApplyState, CommitQueue};
use crate::db::{Db, DbBuilder};
use crate::inner::Inner;
use crate::options::TableOptions;
use crate::recovery::RecoveryInfo;

impl DbBuilder {
    /// The store the database lives in: the builder's storage, or `<path>/data`.
    pub(crate) fn target_storage(&self) -> Result<Arc<dyn Storage>> {
        Ok(match (&self.storage, &self.dir) {
            (Some(s), _) => s.clone(),
            (None, Some(d)) => Arc::new(ObjectStorage::local(d.join("data"))?),
            (None, None) => {
                return Err(Error::invalid("DbBuilder needs a path or a storage"));
            }
        })
    }
}

impl Db {
    pub(crate) fn open_with(b: DbBuilder) -> Result<Db> {
        b.settings.validate()?;
        let dir_lock = match &b.dir {
            Some(d) if !b.read_only => Some(lock_dir(d)?),
            _ => None,
        };
        let storage = b.target_storage()?;
        let settings = b.settings;
        let split = settings.split();
        let cache = Arc::new(BlockCache::new(split.block_cache));
        // With a disk cache, table files on a remote store are read from local copies: the
        // database's own (written through when created, copied in the background after an
        // open) in `<disk_cache_dir>/own`, files restored from a remote checkpoint in
        // `<disk_cache_dir>/mirror`. (Mirrored stores report themselves local, so the block
        // cache keeps no second, block-level disk copy.)
        let mut externals = b.external_stores.clone();
        let storage = match &settings.disk_cache_dir {
            Some(dir) => {
                externals.set_mirror(dir.join("mirror"), settings.disk_cache_bytes);
                if storage.is_remote() {
                    let m = Arc::new(
                        Mirror::new(storage, dir.join("own"), settings.disk_cache_bytes)?
                            .with_write_through(),
                    );
                    externals.add_mirror(m.clone());
                    m as Arc<dyn Storage>
                } else {
                    storage
                }
            }
            None => storage,
        };
        let hooks = Arc::new(Hooks::new());
        let tree_opts = TreeOptions {
            compaction: settings.effective_compaction(),
            block_bytes: settings.table_block_bytes,
            restart_interval: 16,
            bloom_bits_per_key: settings.bloom_bits_per_key,
            compaction_threads: settings.compaction_threads,
            read_only: b.read_only,
            sync_writes: settings.wal_sync,
            verify_foreign: !b.foreign_checked,
        };
        let (tree, recovered) = LsmTree::open(
            storage.clone(),
            Some(cache.clone()),
            tree_opts,
            hooks.clone(),
            externals,
        )?;
        hooks.set_db_id(recovered.state.db_id);
        let middle = MiddleTier::new(
            tree,
            hooks.clone(),
            MiddleSettings {
                hot_budget: split.hot,
                chunk_budget: split.chunks,
                chunk_block_bytes: settings.chunk_block_bytes,
                hot_stall_bytes: split.hot + split.hot / 4,
                write_behind_bytes: if settings.write_behind {
                    split.write_buffers / 2
                } else {
                    0
                },
                retained_slack: if settings.tune_allocator {
                    split.write_buffers + (32 << 20)
                } else {
                    0
                },
            },
        )?;
        let last_seq = recovered.state.last_seq.max(middle.max_file_seq());
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
            orphans_deleted: recovered.orphans_deleted,
            ..Default::default()
        };
        let inner = Arc::new(Inner {
            settings,
            storage,
            middle,
            hooks,
            cache,
            merge_ops: b.merge_ops,
            clock: b.clock,
            commits: CommitQueue::default(),
            apply: Mutex::new(ApplyState { wal: None }),
            last_seq: AtomicU64::new(last_seq),
            wal_dir,
            wal_bytes: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            table_lock: Mutex::new(()),
            bg_flush: Mutex::new(None),
            flushing: AtomicBool::new(false),
            ckpt_lock: Mutex::new(()),
            ckpt: Mutex::new(Default::default()),
            dir_lock: Mutex::new(dir_lock),
        });
        for (id, def) in &recovered.state.tables {
            inner.register_table(*id, def)?;
        }
        if let Some(k) = b.key_groups {
            let want = (k.first, k.last);
            match recovered.state.key_groups {
                Some(have) if have != want => {
                    return Err(Error::invalid(format!(
                        "the database owns key groups {have:?}, not {want:?}"
                    )));
                }
                Some(_) => {}
                None if b.read_only => {}
                None if k.first > k.last => {
                    return Err(Error::invalid("key-group range is empty (first > last)"));
                }
                None => inner
                    .middle
                    .tree()
                    .commit(Default::default(), |m| m.key_groups = Some(want))?,
            }
        }
        // Only now may anything rewrite table data: every table's merge operator is known.
        inner.middle.start()?;
        inner.recover_wal(
            recovered.state.log_number,
            recovered.state.last_seq,
            b.read_only,
            &mut recovery,
        )?;
        if inner.table(DEFAULT_TABLE).is_none() && !b.read_only {
            inner.create_table(DEFAULT_TABLE, TableOptions::default())?;
        }
        Ok(Db {
            inner,
            recovery: Arc::new(recovery),
        })
    }
}

/// Directories whose `LOCK` an open database of this process holds.
static HELD: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// An acquired directory lock: the locked `LOCK` file (closing it releases the OS lock)
/// and this process's record of holding it.
pub(crate) struct DirLock {
    file: Option<File>,
    path: PathBuf,
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Release the OS lock first, so that an open which finds the registry clear also
        // finds the file unlocked.
        drop(self.file.take());
        HELD.lock().retain(|p| *p != self.path);
    }
}

/// Takes the exclusive lock on `<dir>/LOCK` (an OS file lock, released when the file is
/// closed or the process dies) and records this process's id in it. [`Error::Busy`] naming
/// the holder if another open database has it: at once for one in this process, else when
/// the OS lock is taken.
fn lock_dir(dir: &Path) -> Result<DirLock> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let path = dir.join("LOCK");
    let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut held = HELD.lock();
    if held.contains(&canonical) {
        return Err(busy(&path));
    }
    let io = |e: std::io::Error| Error::io(format!("locking {}", path.display()), e);
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    // No open database of this process holds the lock, yet the OS lock can still be held
    // for a moment after one released it: a child process forked by another thread shares
    // the open file until it execs. When the file names this process as the last holder,
    // wait up to a second for that instead of failing.
    let own = format!("pid {}", std::process::id());
    let mut waited = std::time::Duration::ZERO;
    loop {
        match f.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock)
                if waited < std::time::Duration::from_secs(1)
                    && std::fs::read_to_string(&path).is_ok_and(|h| h.trim() == own) =>
            {
                let step = std::time::Duration::from_millis(2);
                std::thread::sleep(step);
                waited += step;
            }
            Err(TryLockError::WouldBlock) => return Err(busy(&path)),
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
    }
    f.set_len(0).map_err(io)?;
    f.seek(SeekFrom::Start(0)).map_err(io)?;
    write!(f, "{own}").map_err(io)?;
    held.push(canonical.clone());
    Ok(DirLock {
        file: Some(f),
        path: canonical,
    })
}

/// [`Error::Busy`] naming the holder recorded in the `LOCK` file.
fn busy(path: &Path) -> Error {
    let holder = std::fs::read_to_string(path).unwrap_or_default();
    let holder = holder.trim();
    Error::Busy(format!(
        "{} is held by another open database{}",
        path.display(),
        if holder.is_empty() {
            String::new()
        } else {
            format!(" ({holder})")
        }
    ))
}
