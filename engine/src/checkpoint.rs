//! Checkpoints, their release, and restoring a database from them (DESIGN.md §8).
//!
//! - [`Db::checkpoint`]: a full flush (the only synchronous part), then a checkpoint
//!   manifest naming every table file of the flushed version. In the database's own store
//!   (`target` `None`) files are referenced in place and pinned against deletion; in another
//!   store every file not yet in a confirmed checkpoint there is uploaded on a background
//!   thread first (incremental), and the manifest, written last, confirms the checkpoint.
//! - [`Db::release_checkpoint`]: drops one checkpoint; deletes only files this database
//!   owns that nothing else references (no retained manifest, no live version, no upload in
//!   flight).
//! - [`DbBuilder::restore`]: a new database whose version is one or more checkpoints' files,
//!   read in place from the checkpoint's store (nothing is downloaded up front), optionally
//!   restricted to a key-group range (scale-out) or merged from several ranges (scale-in).
//!
//! Invariants: nothing is deleted while a checkpoint is taken, so a crash at any point
//! leaves every earlier checkpoint intact; a checkpoint's files are durable before its
//! manifest exists; an upload that was never confirmed by a manifest is never reused.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use strata_dfs::{
    table_number, CheckpointFile, CheckpointManifest, CheckpointRef, CheckpointStore, Error,
    FileMeta, FileOrigin, KeyGroupFilter, ManifestState, ManifestStore, Result, TableDef, Version,
    VersionEdit, IN_PLACE_DIR, NUM_LEVELS,
};

use crate::db::{Db, DbBuilder};
use crate::inner::Inner;
use crate::options::TableOptions;

/// What the database remembers about the checkpoints it writes.
#[derive(Default)]
pub(crate) struct CheckpointState {
    /// Per checkpoint store (location + dir): own file numbers whose shared copies are in a
    /// confirmed checkpoint there. Loaded from the store's manifests on first use.
    confirmed: HashMap<String, HashSet<u64>>,
    /// Per checkpoint store: paths a checkpoint in flight references.
    in_flight: HashMap<String, HashMap<String, usize>>,
    /// Captures taken for checkpoints into other stores ([`strata_dfs::LsmTree::capture`]):
    /// a delta checkpoint needs the flush log of exactly the interval since its chain's tip.
    captures: u64,
    /// The newest confirmed checkpoint a delta checkpoint may build on.
    chain: Option<Chain>,
}

/// A confirmed checkpoint in another store that the next one may extend with a delta
/// (DESIGN.md §8): valid while it is retained and no other capture came after its own.
#[derive(Clone)]
struct Chain {
    /// The store ([`store_key`]).
    key: String,
    /// Its checkpoint id.
    id: u64,
    /// The capture it was taken from.
    capture: u64,
    /// Its files, as its manifest names them.
    files: Arc<Vec<CheckpointFile>>,
    sizes: ChainSizes,
}

/// How far a chain has grown from its full checkpoint.
#[derive(Clone, Default)]
struct ChainSizes {
    /// Size of the full checkpoint the chain starts from.
    base_bytes: u64,
    /// Size of the deltas added on top of it since.
    delta_bytes: u64,
    /// Per table, the level-0 files the deltas added.
    delta_files: Arc<HashMap<u32, usize>>,
}

/// A delta checkpoint's plan: the chain tip it extends and, per table still defined, the
/// files flushed since.
type Delta = (Chain, BTreeMap<u32, Vec<Arc<FileMeta>>>);

/// Largest file of a delta run: few, large level-0 files keep a restored database's
/// level 0 short (its write stall counts files).
const DELTA_FILE_BYTES: u64 = 256 << 20;

/// Most delta runs (level-0 files from deltas) of one table a chain may name: a database
/// restored from it starts with them on top of the full checkpoint's level 0, and stalls
/// its flushes while level 0 holds `l0_stop` (20 by default) files or more, until its
/// first compaction has drained them.
const CHAIN_DELTA_FILES: usize = 12;

/// What a completed checkpoint wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// The manifest that confirms it.
    pub reference: CheckpointRef,
    /// Table files it references.
    pub files: usize,
    /// Their total size.
    pub bytes: u64,
    /// Files copied into the checkpoint store by this checkpoint.
    pub files_uploaded: usize,
    /// Bytes copied into the checkpoint store by this checkpoint, through this process.
    pub bytes_uploaded: u64,
    /// Files the store copied itself (server-side, from the same bucket); not counted above.
    pub files_copied_in_store: usize,
    /// A delta checkpoint: it uploaded what was flushed since the previous checkpoint and
    /// names that checkpoint's files for the rest (`Settings::checkpoint_delta_ratio`).
    pub delta: bool,
    /// Time the synchronous part (the flush) took.
    pub sync_duration: std::time::Duration,
    /// Time from the call until the manifest was written.
    pub total_duration: std::time::Duration,
}

/// A checkpoint whose flush is done and whose upload may still run. Writes to the database
/// may continue meanwhile; [`PendingCheckpoint::wait`] returns once it is confirmed.
pub struct PendingCheckpoint {
    state: PendingState,
}

enum PendingState {
    Done(Result<CheckpointInfo>),
    Running(JoinHandle<Result<CheckpointInfo>>),
}

impl PendingCheckpoint {
    /// Blocks until the checkpoint is confirmed (or failed: then no manifest exists and
    /// every earlier checkpoint is untouched).
    pub fn wait(self) -> Result<CheckpointInfo> {
        match self.state {
            PendingState::Done(r) => r,
            PendingState::Running(h) => h.join().unwrap_or_else(|_| {
                Err(Error::io("checkpoint upload", "the upload thread panicked"))
            }),
        }
    }
}

/// Where one file of a checkpoint lives: the store (by [`strata_dfs::Storage::location`],
/// e.g. `file:///dir`) and the object's path in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointFileLocation {
    /// Location of the store holding the file.
    pub location: String,
    /// Path of the file in that store.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
}

/// A confirmed checkpoint as a host that moves its files itself sees it (Flink's
/// incremental snapshots upload each table file as a shared-state handle): the manifest's
/// bytes and, in manifest order, where each file is now.
#[derive(Debug, Clone)]
pub struct CheckpointContents {
    /// The encoded checkpoint manifest (DESIGN.md §8).
    pub manifest: Vec<u8>,
    /// The files it names, in manifest order.
    pub files: Vec<CheckpointFileLocation>,
}

/// Writes the manifest `manifest` (as [`CheckpointContents::manifest`] gave it) into
/// `store` for files that were copied there by the host: file `i` of the manifest now sits
/// at `paths[i]` of `store`. Returns the reference to restore from. `InvalidArgument` if
/// the counts differ; `Corruption` if the manifest does not decode.
pub fn rehome_checkpoint(
    manifest: &[u8],
    paths: &[String],
    store: &CheckpointStore,
) -> Result<CheckpointRef> {
    let mut m = CheckpointManifest::decode(manifest, "checkpoint manifest (host copy)")?;
    if m.files.len() != paths.len() {
        return Err(Error::invalid(format!(
            "the manifest names {} files, {} paths were given",
            m.files.len(),
            paths.len()
        )));
    }
    for (f, p) in m.files.iter_mut().zip(paths) {
        f.path = p.clone();
        f.meta.origin = None;
    }
    store.write(&m, true)
}

/// Where a checkpoint lives, for restoring: its store (with the directory its checkpoints
/// are under) and which of its manifests.
#[derive(Debug, Clone)]
pub struct RestoreSource {
    /// The checkpoint store.
    pub store: CheckpointStore,
    /// The manifest.
    pub checkpoint: CheckpointRef,
}

impl RestoreSource {
    /// The checkpoints with id `id` in `store` (one per database that wrote one).
    pub fn all(store: &CheckpointStore, id: u64) -> Result<Vec<RestoreSource>> {
        let found = store.find(id)?;
        if found.is_empty() {
            return Err(Error::NotFound(format!(
                "checkpoint {id} in {}{}",
                store.storage.location(),
                store.dir
            )));
        }
        Ok(found
            .into_iter()
            .map(|checkpoint| RestoreSource {
                store: store.clone(),
                checkpoint,
            })
            .collect())
    }

    /// The one checkpoint with id `id` in `store`; `InvalidArgument` if several databases
    /// wrote one.
    pub fn one(store: &CheckpointStore, id: u64) -> Result<RestoreSource> {
        let mut all = Self::all(store, id)?;
        if all.len() > 1 {
            return Err(Error::invalid(format!(
                "{} databases wrote checkpoint {id}: pick one, or restore them all",
                all.len()
            )));
        }
        Ok(all.remove(0))
    }
}

fn store_key(store: &CheckpointStore) -> String {
    format!("{}|{}", store.storage.location(), store.dir)
}

fn in_place(inner: &Inner) -> Result<CheckpointStore> {
    CheckpointStore::new(inner.storage.clone(), IN_PLACE_DIR)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Db {
    /// Takes checkpoint `id`: flushes every write so far (synchronously; writers wait only
    /// for this), then records the flushed state in a checkpoint manifest. `target` `None`
    /// checkpoints into the database's own store, referencing its files in place; a
    /// [`CheckpointStore`] elsewhere gets the files not yet in one of its confirmed
    /// checkpoints copied in first, on a background thread. [`Error::Busy`] if this database
    /// already wrote checkpoint `id` there.
    pub fn checkpoint(
        &self,
        id: u64,
        target: Option<&CheckpointStore>,
    ) -> Result<PendingCheckpoint> {
        let started = Instant::now();
        let inner = self.inner.clone();
        inner.check_writable()?;
        let target = match target {
            None => in_place(&inner)?,
            Some(t) => t.clone(),
        };
        let same_store = target.storage.location() == inner.storage.location();
        if target.dir == IN_PLACE_DIR && !same_store {
            // Another database's in-place directory: its releases would not see these
            // references (rule 4, DESIGN.md §8).
            return Err(Error::invalid(format!(
                "{IN_PLACE_DIR:?} holds the in-place checkpoints of the database in {}; \
                 checkpoint into another directory",
                target.storage.location()
            )));
        }
        if same_store && target.dir != IN_PLACE_DIR {
            return Err(Error::invalid(format!(
                "checkpoints in the database's own store go in {IN_PLACE_DIR:?} \
                 (pass no target), not {:?}",
                target.dir
            )));
        }
        // The flush, and a copy of the state it produced: the copy's version holds every
        // file it names, so none is deleted until the checkpoint is done with it. The
        // checkpoint lock also covers deciding which uploads to reuse and marking them in
        // flight, so a concurrent release cannot delete one in between.
        let one = inner.ckpt_lock.lock();
        inner.flush()?;
        if same_store {
            let state = inner.middle.manifest();
            let sync_duration = started.elapsed();
            let r = inner.checkpoint_in_place(id, &state, &target, started, sync_duration);
            return Ok(PendingCheckpoint {
                state: PendingState::Done(r),
            });
        }
        let ratio = inner.settings.checkpoint_delta_ratio;
        let (state, flushed) = inner.middle.tree().capture((ratio > 0.0).then_some(ratio));
        let sync_duration = started.elapsed();
        let key = store_key(&target);
        let (capture, delta) = inner.plan_delta(&key, &state, flushed, ratio);
        let (files, delta) = match delta {
            Some((chain, flushed)) => (inner.chain_files(&chain, &state), Some((chain, flushed))),
            None => (inner.plan_upload(&state, &target)?, None),
        };
        inner.track_in_flight(&key, &files, true);
        drop(one);
        let worker = inner.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("strata-checkpoint-{id}"))
            .spawn(move || {
                let job = Job {
                    id,
                    capture,
                    state: &state,
                    target: &target,
                    started,
                    sync_duration,
                };
                let r = match delta {
                    None => worker.upload_and_confirm(&job, &files, None),
                    Some((chain, flushed)) => worker.upload_delta(&job, &files, chain, flushed),
                };
                worker.track_in_flight(&key, &files, false);
                r
            });
        match spawned {
            Ok(h) => Ok(PendingCheckpoint {
                state: PendingState::Running(h),
            }),
            // Its in-flight marks stay: they only keep files from being deleted.
            Err(e) => Err(Error::io("spawning the checkpoint upload", e)),
        }
    }

    /// The manifest of checkpoint `id` this database wrote to `target` (`None`: its own
    /// store) and where each of its files lives, for a host that copies the files itself.
    /// Files of the checkpoints this database was restored from are named in their stores.
    pub fn checkpoint_contents(
        &self,
        id: u64,
        target: Option<&CheckpointStore>,
    ) -> Result<CheckpointContents> {
        let inner = &self.inner;
        let db_id = inner.middle.manifest().db_id;
        let store = match target {
            None => in_place(inner)?,
            Some(t) => t.clone(),
        };
        let path = store.manifest_path(id, db_id);
        let manifest = store.storage.read_all(&path)?.to_vec();
        let m = CheckpointManifest::decode(&manifest, &path)?;
        let home = store.storage.location();
        let files = m
            .files
            .iter()
            .map(|f| match &f.meta.origin {
                Some(o) => CheckpointFileLocation {
                    location: o.store.clone(),
                    path: o.path.clone(),
                    size: f.meta.size,
                },
                None => CheckpointFileLocation {
                    location: home.clone(),
                    path: f.path.clone(),
                    size: f.meta.size,
                },
            })
            .collect();
        Ok(CheckpointContents { manifest, files })
    }

    /// Drops checkpoint `id` this database wrote to `target` (`None`: its own store):
    /// deletes its manifest, then the files only it kept (files another retained
    /// checkpoint, the live version or an upload in flight references stay; files this
    /// database did not write are never deleted). Also deletes this database's leftover
    /// uploads of failed checkpoints in that store.
    pub fn release_checkpoint(&self, id: u64, target: Option<&CheckpointStore>) -> Result<()> {
        let inner = &self.inner;
        let db_id = inner.middle.manifest().db_id;
        let _one = inner.ckpt_lock.lock();
        let target = match target {
            None => in_place(inner)?,
            Some(t) => t.clone(),
        };
        let r = CheckpointRef {
            checkpoint_id: id,
            db_id,
            path: target.manifest_path(id, db_id),
        };
        let m = target.read(&r)?;
        {
            // The chain's tip goes with its manifest: the files only it named may go now.
            let mut st = inner.ckpt.lock();
            let key = store_key(&target);
            if st
                .chain
                .as_ref()
                .is_some_and(|c| c.key == key && c.id == id)
            {
                st.chain = None;
            }
        }
        target.storage.delete(&r.path)?;
        if target.storage.location() == inner.storage.location() {
            let own: Vec<u64> = m
                .files
                .iter()
                .filter(|f| f.meta.origin.is_none())
                .filter_map(|f| table_number(&f.path))
                .collect();
            inner.middle.tree().unpin(&own);
            return Ok(());
        }
        inner.collect_shared(&target, db_id)
    }

    /// Releases every checkpoint this database wrote to `target` with an id below `id`
    /// (Flink's subsumption: a completed checkpoint makes the older ones unnecessary).
    pub fn subsume_checkpoints(&self, id: u64, target: Option<&CheckpointStore>) -> Result<()> {
        let db_id = self.inner.middle.manifest().db_id;
        let store = match target {
            None => in_place(&self.inner)?,
            Some(t) => t.clone(),
        };
        for r in store.list()? {
            if r.db_id == db_id && r.checkpoint_id < id {
                self.release_checkpoint(r.checkpoint_id, target)?;
            }
        }
        Ok(())
    }
}

impl Inner {
    /// The manifest of checkpoint `id` as of `state`, with `files`.
    fn checkpoint_manifest(
        &self,
        id: u64,
        state: &ManifestState,
        files: Vec<CheckpointFile>,
    ) -> CheckpointManifest {
        CheckpointManifest {
            db_id: state.db_id,
            checkpoint_id: id,
            created_ms: now_ms(),
            last_seq: state.last_seq,
            key_groups: state.key_groups,
            tables: state.tables.clone(),
            files,
        }
    }

    fn checkpoint_in_place(
        &self,
        id: u64,
        state: &ManifestState,
        target: &CheckpointStore,
        started: Instant,
        sync_duration: std::time::Duration,
    ) -> Result<CheckpointInfo> {
        let files: Vec<CheckpointFile> = state
            .version
            .all_files()
            .map(|(_, level, f)| CheckpointFile {
                level,
                path: f.path(),
                meta: (**f).clone(),
            })
            .collect();
        let own: Vec<u64> = files
            .iter()
            .filter(|f| f.meta.origin.is_none())
            .map(|f| f.meta.number)
            .collect();
        // Pinned before the manifest exists (the captured version still holds the files),
        // so no purge can delete one in between; unpinned again if the write fails.
        let tree = self.middle.tree();
        tree.pin(&own);
        let bytes = files.iter().map(|f| f.meta.size).sum();
        let n = files.len();
        let m = self.checkpoint_manifest(id, state, files);
        match target.write(&m, self.settings.wal_sync) {
            Ok(reference) => Ok(CheckpointInfo {
                reference,
                files: n,
                bytes,
                files_uploaded: 0,
                bytes_uploaded: 0,
                files_copied_in_store: 0,
                delta: false,
                sync_duration,
                total_duration: started.elapsed(),
            }),
            Err(e) => {
                tree.unpin(&own);
                Err(e)
            }
        }
    }

    /// Own file numbers with a shared copy in a confirmed checkpoint of `target`.
    fn confirmed_uploads(&self, target: &CheckpointStore, db_id: u64) -> Result<HashSet<u64>> {
        let key = store_key(target);
        if let Some(s) = self.ckpt.lock().confirmed.get(&key) {
            return Ok(s.clone());
        }
        let mut out = HashSet::new();
        for r in target.list()?.into_iter().filter(|r| r.db_id == db_id) {
            let m = target.read(&r)?;
            for f in m.files.iter().filter(|f| f.meta.origin.is_none()) {
                if target.shared_owner(&f.path) == Some(db_id) {
                    out.insert(f.meta.number);
                }
            }
        }
        self.ckpt.lock().confirmed.insert(key, out.clone());
        Ok(out)
    }

    /// Decides, per file, where the checkpoint references it and whether it must be copied.
    fn plan_upload(&self, state: &ManifestState, target: &CheckpointStore) -> Result<Vec<Planned>> {
        let confirmed = self.confirmed_uploads(target, state.db_id)?;
        let target_loc = target.storage.location();
        let mut out = Vec::new();
        for (_, level, f) in state.version.all_files() {
            let mut meta = (**f).clone();
            let planned = match &f.origin {
                // A foreign file already in the target store: referenced where it is.
                Some(o) if o.store == target_loc => {
                    meta.origin = None;
                    Planned {
                        level,
                        path: o.path.clone(),
                        meta,
                        copy_from: None,
                    }
                }
                _ => {
                    let path = target.shared_path(state.db_id, f.number);
                    let copy = !(f.is_owned() && confirmed.contains(&f.number));
                    meta.origin = None;
                    Planned {
                        level,
                        path,
                        meta,
                        copy_from: copy.then(|| f.clone()),
                    }
                }
            };
            out.push(planned);
        }
        Ok(out)
    }

    fn track_in_flight(&self, key: &str, files: &[Planned], add: bool) {
        let mut st = self.ckpt.lock();
        let m = st.in_flight.entry(key.to_string()).or_default();
        for f in files {
            if add {
                *m.entry(f.path.clone()).or_default() += 1;
            } else if let Some(c) = m.get_mut(&f.path) {
                *c -= 1;
                if *c == 0 {
                    m.remove(&f.path);
                }
            }
        }
    }

    /// Decides whether the checkpoint being captured (capture number returned) can be a
    /// delta on the chain's tip: the tip is in the same store, its capture was the one
    /// before this (so `flushed` is the log of exactly the interval since), the deltas stay
    /// within `ratio` of the full checkpoint, and no table gets more than
    /// [`CHAIN_DELTA_FILES`] delta files. Called with the checkpoint lock held.
    fn plan_delta(
        &self,
        key: &str,
        state: &ManifestState,
        flushed: Option<Vec<Arc<FileMeta>>>,
        ratio: f64,
    ) -> (u64, Option<Delta>) {
        let mut st = self.ckpt.lock();
        st.captures += 1;
        let capture = st.captures;
        let (Some(chain), Some(flushed)) = (st.chain.clone(), flushed) else {
            return (capture, None);
        };
        if ratio <= 0.0 || chain.key != key || chain.capture + 1 != capture {
            return (capture, None);
        }
        let mut by_table: BTreeMap<u32, Vec<Arc<FileMeta>>> = BTreeMap::new();
        for f in flushed {
            if state.tables.contains_key(&f.table_id) {
                by_table.entry(f.table_id).or_default().push(f);
            }
        }
        let bytes_of = |files: &[Arc<FileMeta>]| files.iter().map(|f| f.size).sum::<u64>();
        let new: u64 = by_table.values().map(|f| bytes_of(f)).sum();
        let sizes = &chain.sizes;
        if (sizes.delta_bytes + new) as f64 > ratio * sizes.base_bytes as f64 {
            return (capture, None);
        }
        let l0_fits = by_table.iter().all(|(t, files)| {
            let had = sizes.delta_files.get(t).copied().unwrap_or(0);
            had + bytes_of(files).div_ceil(DELTA_FILE_BYTES) as usize <= CHAIN_DELTA_FILES
        });
        (capture, l0_fits.then_some((chain, by_table)))
    }

    /// The chain tip's files, as a delta checkpoint names them again (they are in the store
    /// already); files of tables no longer defined are left out.
    fn chain_files(&self, chain: &Chain, state: &ManifestState) -> Vec<Planned> {
        chain
            .files
            .iter()
            .filter(|f| state.tables.contains_key(&f.meta.table_id))
            .map(|f| Planned {
                level: f.level,
                path: f.path.clone(),
                meta: f.meta.clone(),
                copy_from: None,
            })
            .collect()
    }

    /// A delta checkpoint: the files flushed since the chain's tip, merged into one run per
    /// table (new own files, never in the version, deleted afterwards), uploaded and named
    /// at level 0 above the tip's files (`base`). Their numbers are newer than every file
    /// of the tip (allocated after its capture), so level 0's order keeps versions in order.
    fn upload_delta(
        &self,
        job: &Job<'_>,
        base: &[Planned],
        chain: Chain,
        by_table: BTreeMap<u32, Vec<Arc<FileMeta>>>,
    ) -> Result<CheckpointInfo> {
        let tree = self.middle.tree();
        let mut added: Vec<Planned> = Vec::new();
        let mut merged = Ok(());
        for (table_id, files) in &by_table {
            match tree.write_merged_run(*table_id, files, DELTA_FILE_BYTES) {
                Ok(out) => added.extend(out.into_iter().map(|f| Planned {
                    level: 0,
                    path: job.target.shared_path(job.state.db_id, f.number),
                    meta: f.clone(),
                    copy_from: Some(Arc::new(f)),
                })),
                Err(e) => {
                    merged = Err(e);
                    break;
                }
            }
        }
        drop(by_table); // the flushed files may go once compaction is done with them
        let temporary: Vec<u64> = added.iter().map(|p| p.meta.number).collect();
        let key = store_key(job.target);
        self.track_in_flight(&key, &added, true);
        let delta_bytes: u64 = added.iter().map(|p| p.meta.size).sum();
        let r = merged.and_then(|()| {
            let mut files = base.to_vec();
            files.extend(added.iter().cloned());
            let mut delta_files = (*chain.sizes.delta_files).clone();
            for p in &added {
                *delta_files.entry(p.meta.table_id).or_default() += 1;
            }
            let next = ChainSizes {
                base_bytes: chain.sizes.base_bytes,
                delta_bytes: chain.sizes.delta_bytes + delta_bytes,
                delta_files: Arc::new(delta_files),
            };
            self.upload_and_confirm(job, &files, Some(next))
        });
        self.track_in_flight(&key, &added, false);
        tree.delete_unversioned(&temporary);
        tree.purge_obsolete();
        r
    }

    /// Copies the files of `files` that are not in the store yet, then writes the manifest
    /// (confirming the checkpoint) and makes it the chain's tip if no capture came after
    /// it. `chain` is what a delta checkpoint makes of the chain; `None` for a full one.
    fn upload_and_confirm(
        &self,
        job: &Job<'_>,
        files: &[Planned],
        chain: Option<ChainSizes>,
    ) -> Result<CheckpointInfo> {
        let Job {
            id,
            capture,
            state,
            target,
            started,
            sync_duration,
        } = *job;
        let delta = chain.is_some();
        let (mut files_uploaded, mut bytes_uploaded, mut files_copied_in_store) = (0, 0, 0);
        for p in files {
            let Some(src) = &p.copy_from else {
                continue;
            };
            let storage = self.middle.tree().storage_of(src)?;
            let path = src.path();
            // Over one bucket the store copies it (S3's CopyObject); no bytes pass here.
            if target.storage.copy_from(&*storage, &path, &p.path)? {
                if self.settings.wal_sync {
                    target.storage.sync(&p.path)?;
                }
                files_copied_in_store += 1;
                continue;
            }
            let data: Bytes = storage.read_all(&path)?;
            if data.len() as u64 != src.size
                || (src.checksum != 0 && crc32fast::hash(&data) != src.checksum)
            {
                return Err(Error::corruption(
                    format!("{path} in {}", storage.location()),
                    "table file does not match its recorded size and checksum",
                ));
            }
            target.storage.put(&p.path, data)?;
            if self.settings.wal_sync {
                target.storage.sync(&p.path)?;
            }
            files_uploaded += 1;
            bytes_uploaded += src.size;
        }
        let cfiles: Vec<CheckpointFile> = files
            .iter()
            .map(|p| CheckpointFile {
                level: p.level,
                path: p.path.clone(),
                meta: p.meta.clone(),
            })
            .collect();
        let bytes = cfiles.iter().map(|f| f.meta.size).sum();
        let n = cfiles.len();
        let m = self.checkpoint_manifest(id, state, cfiles);
        let reference =
            {
                let _one = self.ckpt_lock.lock();
                let r = target.write(&m, self.settings.wal_sync)?;
                let mut st = self.ckpt.lock();
                let key = store_key(target);
                let confirmed = st.confirmed.entry(key.clone()).or_default();
                confirmed.extend(files.iter().filter(|p| p.meta.origin.is_none()).filter_map(
                    |p| {
                        (target.shared_owner(&p.path) == Some(state.db_id)).then_some(p.meta.number)
                    },
                ));
                if st.captures == capture {
                    st.chain = Some(Chain {
                        key,
                        id,
                        capture,
                        files: Arc::new(m.files.clone()),
                        sizes: chain.unwrap_or(ChainSizes {
                            base_bytes: bytes,
                            ..ChainSizes::default()
                        }),
                    });
                }
                r
            };
        Ok(CheckpointInfo {
            reference,
            files: n,
            bytes,
            files_uploaded,
            bytes_uploaded,
            files_copied_in_store,
            delta,
            sync_duration,
            total_duration: started.elapsed(),
        })
    }

    /// Deletes this database's shared files in `target` that no retained manifest and no
    /// upload in flight references. Called with the checkpoint lock held.
    fn collect_shared(&self, target: &CheckpointStore, db_id: u64) -> Result<()> {
        let Some(referenced) = target.referenced()? else {
            return Ok(()); // a manifest could not be read: nothing is provably unreferenced
        };
        let key = store_key(target);
        let prefix = format!("{}shared/{db_id:016x}-", target.dir);
        let listed = target.storage.list(&prefix)?;
        let mut st = self.ckpt.lock();
        let in_flight = st.in_flight.get(&key).cloned().unwrap_or_default();
        let mut deleted = HashSet::new();
        for o in listed {
            if referenced.contains(&o.path) || in_flight.contains_key(&o.path) {
                continue;
            }
            target.storage.delete(&o.path)?;
            deleted.insert(o.path);
        }
        if let Some(c) = st.confirmed.get_mut(&key) {
            c.retain(|n| !deleted.contains(&target.shared_path(db_id, *n)));
        }
        Ok(())
    }
}

/// What one checkpoint into another store is about.
#[derive(Clone, Copy)]
struct Job<'a> {
    id: u64,
    /// The capture its state came from.
    capture: u64,
    state: &'a ManifestState,
    target: &'a CheckpointStore,
    started: Instant,
    sync_duration: std::time::Duration,
}

/// One file of a checkpoint being uploaded.
#[derive(Clone)]
struct Planned {
    level: usize,
    /// Path in the checkpoint store.
    path: String,
    /// Metadata as the manifest records it.
    meta: FileMeta,
    /// The file to copy there first, if it is not there yet.
    copy_from: Option<Arc<FileMeta>>,
}

/// The key groups a restore keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyGroups {
    /// First key group.
    pub first: u16,
    /// Last key group (inclusive).
    pub last: u16,
}

impl From<crate::keyed::KeyGroupRange> for KeyGroups {
    fn from(r: crate::keyed::KeyGroupRange) -> Self {
        KeyGroups {
            first: r.start,
            last: r.end,
        }
    }
}

impl DbBuilder {
    /// Creates the database (in this builder's path or storage, which must hold none yet)
    /// from checkpoints, then opens it. Time is proportional to metadata: the checkpoints'
    /// files are read in place, block by block through the block cache, and never deleted
    /// by the new database; compaction writes its own files into its own store. Keep the
    /// checkpoints until the new database has taken its own checkpoint into a store of its
    /// own (Flink's no-claim mode).
    ///
    /// `key_groups` restricts the database to those key groups (scale-out): tables whose
    /// options name a key-group field keep only those keys, without rewriting files. Several
    /// sources (scale-in) must each cover disjoint key groups (their recorded range, or
    /// `key_groups`); table ids are matched by name. A missing or damaged file is
    /// `Corruption` naming it, and nothing is created.
    pub fn restore(self, sources: &[RestoreSource], key_groups: Option<KeyGroups>) -> Result<Db> {
        if sources.is_empty() {
            return Err(Error::invalid("restore needs at least one checkpoint"));
        }
        if key_groups.is_some_and(|k| k.first > k.last) {
            return Err(Error::invalid("key-group range is empty (first > last)"));
        }
        let storage = self.target_storage()?;
        if !storage.list("manifest/")?.is_empty() {
            return Err(Error::invalid(format!(
                "restore target {} already holds a database",
                storage.location()
            )));
        }
        let mut externals = self.external_stores.clone();
        let mut manifests = Vec::new();
        for s in sources {
            externals.add(s.store.storage.clone());
            manifests.push((s, s.store.read(&s.checkpoint)?));
        }
        let state = plan_restore(&manifests, key_groups, &mut externals)?;
        let (mut store, existing) = ManifestStore::open(storage.clone())?;
        if existing.is_some() {
            return Err(Error::invalid("restore target already holds a database"));
        }
        store.commit(&state)?;
        let mut b = self;
        for s in sources {
            b = b.external_store(s.store.storage.clone());
        }
        b.storage = Some(storage);
        // The files were just checked; the open need not ask the store again.
        b.foreign_checked = true;
        b.open()
    }
}

/// Builds the new database's manifest state from the sources' manifests.
fn plan_restore(
    manifests: &[(&RestoreSource, CheckpointManifest)],
    key_groups: Option<KeyGroups>,
    externals: &mut strata_dfs::StoreSet,
) -> Result<ManifestState> {
    let mut state = ManifestState {
        key_groups: key_groups.map(|k| (k.first, k.last)),
        ..Default::default()
    };
    // Each source's effective range (`None`: the whole source), checked disjoint when there
    // are several; a source with nothing in the requested range contributes nothing.
    let mut ranges: Vec<Option<(u16, u16)>> = Vec::new();
    let mut skip = vec![false; manifests.len()];
    for (i, (_, m)) in manifests.iter().enumerate() {
        let r = match (m.key_groups, key_groups) {
            (Some((a, b)), Some(k)) => {
                let (lo, hi) = (a.max(k.first), b.min(k.last));
                skip[i] = lo > hi;
                Some((lo, hi.max(lo)))
            }
            (Some(r), None) => Some(r),
            (None, Some(k)) => Some((k.first, k.last)),
            (None, None) => None,
        };
        ranges.push(r);
    }
    if manifests.len() > 1 {
        let used: Vec<&Option<(u16, u16)>> = ranges
            .iter()
            .zip(&skip)
            .filter(|(_, s)| !**s)
            .map(|(r, _)| r)
            .collect();
        for (i, a) in used.iter().enumerate() {
            let Some(a) = a else {
                return Err(Error::invalid(
                    "merging checkpoints needs each to cover a key-group range",
                ));
            };
            for b in used.iter().skip(i + 1).copied().flatten() {
                if a.0 <= b.1 && b.0 <= a.1 {
                    return Err(Error::invalid(format!(
                        "checkpoints to merge overlap in key groups: {a:?} and {b:?}"
                    )));
                }
            }
        }
    }
    // Without an explicit range, a merge of ranges that tile one range owns that range.
    if key_groups.is_none() {
        let mut used: Vec<(u16, u16)> = ranges
            .iter()
            .zip(&skip)
            .filter(|(_, s)| !**s)
            .filter_map(|(r, _)| *r)
            .collect();
        used.sort_unstable();
        let tiles = used.len() == ranges.len()
            && used
                .windows(2)
                .all(|w| u32::from(w[0].1) + 1 == u32::from(w[1].0));
        if tiles {
            state.key_groups = used.first().zip(used.last()).map(|(a, b)| (a.0, b.1));
        }
    }
    // Tables by name; ids of the first source that has a name win, others are renumbered.
    // One name must have one definition in every source.
    let mut by_name: BTreeMap<String, (u32, TableDef)> = BTreeMap::new();
    let mut next_id = 1 + manifests
        .iter()
        .flat_map(|(_, m)| m.tables.keys().copied())
        .max()
        .unwrap_or(0);
    let mut used: HashSet<u32> = HashSet::new();
    for (_, m) in manifests {
        for (id, def) in &m.tables {
            if let Some((_, d)) = by_name.get(&def.name) {
                if d.options != def.options {
                    return Err(Error::invalid(format!(
                        "table {:?} has different options in the checkpoints",
                        def.name
                    )));
                }
                continue;
            }
            let new_id = if used.insert(*id) {
                *id
            } else {
                let n = next_id;
                next_id += 1;
                used.insert(n);
                n
            };
            by_name.insert(def.name.clone(), (new_id, def.clone()));
        }
    }
    for (id, def) in by_name.values() {
        state.tables.insert(*id, def.clone());
    }
    let mut next_number = 1u64;
    let mut version = Version::default();
    let mut whole_tables_with_files: HashMap<u32, usize> = HashMap::new();
    for (i, (src, m)) in manifests.iter().enumerate() {
        state.last_seq = state.last_seq.max(m.last_seq);
        let src_loc = src.store.storage.location();
        // Per new table id: this source's files by level, restricted.
        let mut per_table: BTreeMap<u32, [Vec<FileMeta>; NUM_LEVELS]> = BTreeMap::new();
        for cf in m.files.iter().filter(|_| !skip[i]) {
            let Some(def) = m.tables.get(&cf.meta.table_id) else {
                return Err(Error::corruption(
                    &src.checkpoint.path,
                    format!("file of undefined table {}", cf.meta.table_id),
                ));
            };
            let (new_id, _) = by_name[&def.name];
            let options = TableOptions::decode(&def.options, &def.name)?;
            let mut meta = cf.meta.clone();
            meta.table_id = new_id;
            if meta.origin.is_none() {
                meta.origin = Some(Arc::new(FileOrigin {
                    store: src_loc.clone(),
                    path: cf.path.clone(),
                }));
            }
            let meta = match (options.key_group, ranges[i]) {
                (Some(field), Some((lo, hi))) => {
                    let filter = KeyGroupFilter {
                        offset: field.offset,
                        width: field.width,
                        lo,
                        hi,
                    };
                    match meta.restricted(filter).map_err(Error::invalid)? {
                        Some(m) => m,
                        None => continue,
                    }
                }
                (Some(_), None) => meta, // one source, no range: the whole table
                (None, _) => {
                    *whole_tables_with_files.entry(new_id).or_default() |= 1 << i.min(63);
                    meta
                }
            };
            per_table.entry(new_id).or_default()[cf.level].push(meta);
        }
        for (table_id, levels) in per_table {
            // Keep the source's levels when its files do not overlap what other sources put
            // there; otherwise every file of the source goes to level 0, deepest first, so
            // the numbering (level 0's recency order) keeps its versions in order.
            let existing = version.levels(table_id).cloned().unwrap_or_default();
            let clash = levels.iter().enumerate().skip(1).any(|(l, files)| {
                files.iter().any(|f| {
                    existing.files[l]
                        .iter()
                        .any(|e| e.overlaps(f.smallest_user(), f.largest_user()))
                })
            });
            let mut edit = VersionEdit::default();
            if clash {
                for (l, mut files) in levels.into_iter().enumerate().rev() {
                    if l == 0 {
                        files.sort_by_key(|f| f.number);
                    }
                    for mut f in files {
                        f.number = next_number;
                        next_number += 1;
                        edit.added.push((0, f));
                    }
                }
            } else {
                for (l, mut files) in levels.into_iter().enumerate().rev() {
                    files.sort_by_key(|f| f.number);
                    for mut f in files {
                        f.number = next_number;
                        next_number += 1;
                        edit.added.push((l, f));
                    }
                }
            }
            version = version.apply(&edit);
        }
    }
    if let Some((t, _)) = whole_tables_with_files
        .iter()
        .find(|(_, mask)| mask.count_ones() > 1)
    {
        return Err(Error::invalid(format!(
            "table {t} has no key-group field, and several checkpoints hold data for it: \
             they cannot be merged"
        )));
    }
    check_files(externals, &version)?;
    state.version = version;
    state.next_file_number = next_number;
    Ok(state)
}

/// Every restored file must be where its checkpoint says, with its size: one `size` call
/// (a HEAD on S3) per file, eight at a time.
fn check_files(externals: &mut strata_dfs::StoreSet, version: &Version) -> Result<()> {
    let mut files = Vec::new();
    for (_, _, f) in version.all_files() {
        let o = f.origin.as_ref().expect("restored files are foreign");
        files.push((externals.resolve(&o.store)?, f.clone()));
    }
    let chunk = files.len().div_ceil(8).max(1);
    std::thread::scope(|scope| {
        let checks: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .try_for_each(|(store, f)| strata_dfs::check_foreign(store, f))
                })
            })
            .collect();
        checks.into_iter().try_for_each(|c| {
            c.join()
                .unwrap_or_else(|_| Err(Error::io("restore", "a file check panicked")))
        })
    })
}

/// Largest table file a savepoint writes.
const SAVEPOINT_FILE_BYTES: u64 = 64 << 20;

impl Db {
    /// Writes savepoint `id` into `store`: the state as of now (one snapshot across every
    /// table) of the key groups `key_groups` (all if `None`), in a self-contained, canonical
    /// form that does not depend on this database's files: per table, sorted runs of the
    /// visible values only (merge operands folded, no tombstones, no older versions, every
    /// entry at sequence 0), in table files under `<dir>sp-<id:020>/`, listed by a
    /// checkpoint manifest (§6.7) at level 6. A database of any later version imports it with
    /// [`DbBuilder::restore`]; nothing it names belongs to this database. Unlike a
    /// checkpoint it is slow (it reads and writes all the state) and it does not flush.
    pub fn savepoint(
        &self,
        id: u64,
        store: &CheckpointStore,
        key_groups: Option<KeyGroups>,
    ) -> Result<CheckpointInfo> {
        let started = Instant::now();
        let inner = &self.inner;
        inner.check_open()?;
        if key_groups.is_some_and(|k| k.first > k.last) {
            return Err(Error::invalid("key-group range is empty (first > last)"));
        }
        let snap = inner.snapshot();
        let state = inner.middle.manifest();
        let seq = snap.seq;
        let mut files = Vec::new();
        let mut n = 0u64;
        let mut bytes_uploaded = 0;
        for table in inner.tables() {
            let entry = inner.hooks.entry(&table)?;
            let field = entry.options.key_group;
            let filter = match (field, key_groups) {
                (Some(f), Some(k)) => Some(KeyGroupFilter {
                    offset: f.offset,
                    width: f.width,
                    lo: k.first,
                    hi: k.last,
                }),
                _ => None,
            };
            let build = strata_dfs::TableBuildOptions {
                block_bytes: inner.settings.table_block_bytes,
                restart_interval: 16,
                compression: entry.options.compression(NUM_LEVELS - 1),
                bloom_bits_per_key: inner.settings.bloom_bits_per_key,
                prefix_len: usize::from(entry.options.prefix_len),
            };
            let mut builder: Option<strata_dfs::TableBuilder> = None;
            let mut finish = |b: strata_dfs::TableBuilder| -> Result<()> {
                n += 1;
                let path = format!("{}sp-{id:020}/{:016x}-{n:06}.sst", store.dir, state.db_id);
                let (data, props) = b.finish();
                let meta = FileMeta {
                    number: n,
                    table_id: table.id,
                    size: data.len() as u64,
                    entries: props.entries,
                    deletes: 0,
                    min_seq: 0,
                    max_seq: 0,
                    smallest: props.smallest,
                    largest: props.largest,
                    checksum: crc32fast::hash(&data),
                    origin: None,
                    filter: None,
                };
                bytes_uploaded += meta.size;
                store.storage.put(&path, data)?;
                files.push(CheckpointFile {
                    level: NUM_LEVELS - 1,
                    path,
                    meta,
                });
                Ok(())
            };
            let snap_t = inner.register_snapshot_at(seq);
            let mut ikey = Vec::new();
            for kv in inner.iter(&table, b"", None, snap_t)? {
                let (k, v) = kv?;
                if filter.is_some_and(|f| !f.admits(&k)) {
                    continue;
                }
                ikey.clear();
                strata_dfs::key::append_internal_key(&mut ikey, &k, 0, strata_dfs::ValueKind::Put);
                let b =
                    builder.get_or_insert_with(|| strata_dfs::TableBuilder::new(build, table.id));
                b.add(&ikey, &v);
                if b.estimated_size() >= SAVEPOINT_FILE_BYTES {
                    finish(builder.take().expect("just used"))?;
                }
            }
            if let Some(b) = builder.take() {
                finish(b)?;
            }
        }
        drop(snap);
        let n_files = files.len();
        let bytes = files.iter().map(|f| f.meta.size).sum();
        let m = CheckpointManifest {
            db_id: state.db_id,
            checkpoint_id: id,
            created_ms: now_ms(),
            last_seq: 0,
            key_groups: key_groups.map(|k| (k.first, k.last)).or(state.key_groups),
            tables: state.tables.clone(),
            files,
        };
        let reference = store.write(&m, inner.settings.wal_sync)?;
        Ok(CheckpointInfo {
            reference,
            files: n_files,
            bytes,
            files_uploaded: n_files,
            bytes_uploaded,
            files_copied_in_store: 0,
            delta: false,
            sync_duration: std::time::Duration::ZERO,
            total_duration: started.elapsed(),
        })
    }
}
