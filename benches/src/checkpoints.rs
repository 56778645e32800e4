//! `strata-bench checkpoint`: checkpoint, restore and rescaling costs of Strata and of
//! RocksDB run the way Flink runs it, on one remote store (SeaweedFS, or a local directory
//! standing in for one).
//!
//! One engine per run (so its peak RSS is its own). Per engine:
//! 1. load `size` of value state (18-byte Flink keys over 128 key groups, 100-byte random
//!    values), then checkpoint 1 (full);
//! 2. overwrite 1% of the keys, checkpoint 2; overwrite 10%, checkpoint 3: duration (and its
//!    synchronous part) and bytes uploaded;
//! 3. restore checkpoint 3: time to open, to the first read, and the read throughput over
//!    the first seconds;
//! 4. rescale 1 -> 2 (two instances, each restoring half the key groups) and 2 -> 1 (one
//!    instance from both halves);
//! 5. Strata only: random-read throughput of the restored database on the remote store with
//!    a warm disk cache, against the original on the local directory.
//!
//! RocksDB as Flink does it: checkpoint = flush + hard-link checkpoint + upload of the SST
//! files not uploaded before (plus MANIFEST, CURRENT, OPTIONS); restore = download every
//! file, open; rescale out = download everything, open, delete the foreign key-group ranges;
//! rescale in = download both, open one, copy the other's keys in with write batches
//! (`RocksDBIncrementalRestoreOperation`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata::{
    CheckpointStore, Db, KeyGroupField, KeyGroups, ObjectStorage, RestoreSource, S3Settings,
    Settings, Storage, TableOptions,
};

use crate::{mix, peak_rss_bytes, Rng};

/// Key groups of the benchmark (Flink's default max parallelism is 128).
pub const KEY_GROUPS: u16 = 128;
const VALUE_BYTES: usize = 100;

/// What to run.
#[derive(Debug, Clone)]
pub struct CkConfig {
    /// `strata` or `rocksdb`.
    pub engine: String,
    /// Bytes of user data to load (keys + values).
    pub size_bytes: u64,
    /// Memory budget.
    pub budget: u64,
    /// Where local databases go.
    pub data_dir: PathBuf,
    /// The remote store: `s3` (from `STRATA_S3_*`) or `local`.
    pub remote: String,
}

/// One result line.
#[derive(Debug, Clone)]
pub struct Metric {
    /// What was measured.
    pub name: String,
    /// The figure, formatted with its unit.
    pub value: String,
}

fn m(out: &mut Vec<Metric>, name: &str, value: String) {
    eprintln!("   {name:<44} {value}");
    out.push(Metric {
        name: name.to_string(),
        value,
    });
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
}

/// Key `i`: key group (2 bytes), key (8), namespace (8).
pub fn key(i: u64) -> Vec<u8> {
    let kg = (mix(i) % u64::from(KEY_GROUPS)) as u16;
    let mut k = Vec::with_capacity(18);
    k.extend_from_slice(&kg.to_be_bytes());
    k.extend_from_slice(&i.to_be_bytes());
    k.extend_from_slice(&[0u8; 8]);
    k
}

fn value(rng: &mut Rng) -> Vec<u8> {
    let mut v = Vec::with_capacity(VALUE_BYTES);
    while v.len() < VALUE_BYTES {
        v.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    v.truncate(VALUE_BYTES);
    v
}

/// The remote store, under a fresh prefix.
fn remote(cfg: &CkConfig, scratch: &Path) -> Result<Arc<dyn Storage>, String> {
    match cfg.remote.as_str() {
        "local" => Ok(Arc::new(
            ObjectStorage::local(scratch.join("remote")).map_err(|e| e.to_string())?,
        )),
        "s3" => {
            let prefix = format!("bench-{}-{}", cfg.engine, std::process::id());
            let s3 = S3Settings::from_env(&prefix)
                .ok_or("STRATA_S3_ENDPOINT and STRATA_S3_BUCKET must be set for --remote s3")?;
            Ok(Arc::new(ObjectStorage::s3(&s3).map_err(|e| e.to_string())?))
        }
        r => Err(format!("unknown remote {r:?} (local or s3)")),
    }
}

/// Random reads for `total`, in windows of `window`: ops/s per window.
fn read_windows(
    get: &dyn Fn(&[u8]) -> bool,
    n: u64,
    total: Duration,
    window: Duration,
) -> Vec<f64> {
    let mut rng = Rng::new(99);
    let mut out = Vec::new();
    let start = Instant::now();
    while start.elapsed() < total {
        let w = Instant::now();
        let mut ops = 0u64;
        while w.elapsed() < window {
            for _ in 0..64 {
                let found = get(&key(rng.below(n)));
                assert!(found, "a loaded key is missing");
                ops += 1;
            }
        }
        out.push(ops as f64 / w.elapsed().as_secs_f64());
    }
    out
}

/// What one checkpoint cost.
pub struct CkStat {
    /// From the call to the confirmed checkpoint.
    pub total: Duration,
    /// The synchronous part (writers wait for it).
    pub sync: Duration,
    /// Bytes uploaded.
    pub uploaded: u64,
    /// Bytes of the state the checkpoint names.
    pub size: u64,
}

const ROUNDS: usize = 5;

/// The checkpoint sequence both engines run: checkpoint 1 (full), then `ROUNDS` rounds of
/// 1% overwrites each followed by a checkpoint, then `ROUNDS` rounds of 10%. Reports the
/// full one, the first round of each kind and the mean of the later rounds (the steady
/// state, once the load's own compactions are behind). Returns the last checkpoint id.
fn checkpoint_rounds(
    out: &mut Vec<Metric>,
    n: u64,
    rng: &mut Rng,
    put: &mut dyn FnMut(&[u8], &[u8]),
    checkpoint: &mut dyn FnMut(u64) -> Result<CkStat, String>,
) -> Result<u64, String> {
    let full = checkpoint(1)?;
    m(out, "checkpoint full: duration", secs(full.total));
    m(out, "checkpoint full: synchronous part", secs(full.sync));
    m(out, "checkpoint full: uploaded", mib(full.uploaded));
    let mut id = 1;
    let mut last_size = full.size;
    for pct in [1u64, 10] {
        let changed = n * pct / 100;
        let new_bytes = changed * (18 + VALUE_BYTES as u64);
        let mut stats = Vec::new();
        for _ in 0..ROUNDS {
            for _ in 0..changed {
                put(&key(rng.below(n)), &value(rng));
            }
            id += 1;
            let st = checkpoint(id)?;
            last_size = st.size;
            stats.push(st);
        }
        let later = &stats[1..];
        let mean =
            |f: &dyn Fn(&CkStat) -> f64| later.iter().map(f).sum::<f64>() / later.len() as f64;
        let what = format!("{pct}% change ({} new)", mib(new_bytes));
        m(
            out,
            &format!("{what}: first checkpoint, duration"),
            secs(stats[0].total),
        );
        m(
            out,
            &format!("{what}: first checkpoint, uploaded"),
            format!(
                "{} ({:.2}x new)",
                mib(stats[0].uploaded),
                stats[0].uploaded as f64 / new_bytes as f64
            ),
        );
        m(
            out,
            &format!("{what}: next {} checkpoints, mean duration", ROUNDS - 1),
            format!("{:.3} s", mean(&|s| s.total.as_secs_f64())),
        );
        m(
            out,
            &format!(
                "{what}: next {} checkpoints, mean synchronous part",
                ROUNDS - 1
            ),
            format!("{:.3} s", mean(&|s| s.sync.as_secs_f64())),
        );
        let up = mean(&|s| s.uploaded as f64);
        m(
            out,
            &format!("{what}: next {} checkpoints, mean uploaded", ROUNDS - 1),
            format!("{} ({:.2}x new)", mib(up as u64), up / new_bytes as f64),
        );
    }
    m(out, "state size at the last checkpoint", mib(last_size));
    Ok(id)
}

#[cfg(feature = "rocksdb")]
fn report_reads(out: &mut Vec<Metric>, what: &str, opened: Duration, w: &[f64]) {
    let last = w.last().copied().unwrap_or(0.0);
    let first = w.first().copied().unwrap_or(0.0);
    m(
        out,
        &format!("{what}: reads/s, first 0.5 s"),
        format!("{first:.0}"),
    );
    m(
        out,
        &format!("{what}: reads/s, after 5 s"),
        format!("{last:.0}"),
    );
    let to80 = w.iter().position(|&x| x >= 0.8 * last).unwrap_or(w.len());
    m(
        out,
        &format!("{what}: from the restore call to 80% of that"),
        format!("{:.1} s", opened.as_secs_f64() + to80 as f64 * 0.5),
    );
}

/// Runs the benchmark for `cfg.engine`.
pub fn run(cfg: &CkConfig) -> Result<Vec<Metric>, String> {
    let scratch = tempfile::Builder::new()
        .prefix("strata-bench-ck-")
        .tempdir_in(&cfg.data_dir)
        .map_err(|e| e.to_string())?;
    let store = remote(cfg, scratch.path())?;
    let n = cfg.size_bytes / (18 + VALUE_BYTES as u64);
    eprintln!(
        "== checkpoint benchmark: {}, {} keys ({}), remote {}",
        cfg.engine,
        n,
        mib(cfg.size_bytes),
        store.location()
    );
    let mut out = match cfg.engine.as_str() {
        "strata" => strata_run(cfg, scratch.path(), store, n, false)?,
        "strata-remote" => strata_run(cfg, scratch.path(), store, n, true)?,
        #[cfg(feature = "rocksdb")]
        "rocksdb" => rocks::run(cfg, scratch.path(), store, n)?,
        e => return Err(format!("unknown or unavailable engine {e:?}")),
    };
    if let Some(p) = peak_rss_bytes() {
        m(&mut out, "peak RSS", mib(p));
    }
    // The remote objects go (the local ones with `scratch`).
    let remote = remote(cfg, scratch.path())?;
    for o in remote.list("").map_err(|e| e.to_string())? {
        let _ = remote.delete(&o.path);
    }
    Ok(out)
}

/// The engine's settings: the memory budget, and a disk cache that holds the whole state
/// (as RocksDB's restore needs the whole state on local disk).
fn settings(cfg: &CkConfig) -> Settings {
    Settings {
        memory_budget_bytes: cfg.budget,
        disk_cache_bytes: 4 * cfg.size_bytes + (1 << 30),
        ..Settings::default()
    }
}

fn half(i: u16) -> KeyGroups {
    let mid = KEY_GROUPS / 2;
    if i == 0 {
        KeyGroups {
            first: 0,
            last: mid - 1,
        }
    } else {
        KeyGroups {
            first: mid,
            last: KEY_GROUPS - 1,
        }
    }
}

/// Strata. `in_place`: the database itself lives on the remote store (with its disk cache),
/// and checkpoints reference its files in place; what a checkpoint writes to the store is
/// its flush. Otherwise the database is local and checkpoints upload into the remote store.
fn strata_run(
    cfg: &CkConfig,
    scratch: &Path,
    remote: Arc<dyn Storage>,
    n: u64,
    in_place: bool,
) -> Result<Vec<Metric>, String> {
    let e = |e: strata::Error| e.to_string();
    let mut out = Vec::new();
    let db = if in_place {
        Db::builder(Settings {
            disk_cache_dir: Some(scratch.join("db-disk-cache")),
            ..settings(cfg)
        })
        .path(scratch.join("db"))
        .storage(remote.clone())
        .open()
    } else {
        Db::open(scratch.join("db"), settings(cfg))
    }
    .map_err(e)?;
    let opts = TableOptions {
        key_group: Some(KeyGroupField {
            offset: 0,
            width: 2,
        }),
        ..TableOptions::default()
    };
    let t = db.create_table("value", opts).map_err(e)?;
    let mut rng = Rng::new(1);
    let started = Instant::now();
    for i in 0..n {
        db.put(&t, &key(i), &value(&mut rng)).map_err(e)?;
    }
    m(&mut out, "load", secs(started.elapsed()));
    let target = if in_place {
        CheckpointStore::new(remote.clone(), "checkpoints").map_err(e)?
    } else {
        CheckpointStore::new(remote.clone(), "strata").map_err(e)?
    };
    // Bytes uploaded by the rounds after the full checkpoint, and how many were deltas.
    let (mut round_uploads, mut deltas) = (0u64, 0usize);
    let last = checkpoint_rounds(
        &mut out,
        n,
        &mut rng,
        &mut |k, v| db.put(&t, k, v).expect("put"),
        &mut |id| {
            let flushed = db.stats().tree.flush_bytes;
            let info = db
                .checkpoint(id, if in_place { None } else { Some(&target) })
                .map_err(e)?
                .wait()
                .map_err(e)?;
            if id > 1 {
                round_uploads += info.bytes_uploaded;
                deltas += usize::from(info.delta);
            }
            Ok(CkStat {
                total: info.total_duration,
                sync: info.sync_duration,
                // In place, the flush is the upload.
                uploaded: if in_place {
                    db.stats().tree.flush_bytes - flushed
                } else {
                    info.bytes_uploaded
                },
                size: info.bytes,
            })
        },
    )?;
    if in_place {
        let s = db.stats().tree;
        m(
            &mut out,
            "written to the store in the background (write-behind, compaction)",
            mib(s.flush_bytes + s.compaction_bytes_written),
        );
    }
    // Restore.
    let disk_cache = scratch.join("disk-cache");
    let restore_settings = Settings {
        disk_cache_dir: Some(disk_cache.clone()),
        ..settings(cfg)
    };
    let started = Instant::now();
    let r = Db::builder(restore_settings.clone())
        .path(scratch.join("restored"))
        .restore(&[RestoreSource::one(&target, last).map_err(e)?], None)
        .map_err(e)?;
    m(&mut out, "restore: open", secs(started.elapsed()));
    let rt = r.table("value").ok_or("restored table missing")?;
    r.get(&rt, &key(n / 2))
        .map_err(e)?
        .ok_or("first read: missing")?;
    let opened = started.elapsed();
    m(&mut out, "restore: to first read", secs(opened));
    // Full throughput once every file is local: the background copy, finished here.
    let remote_left = r.mirror_now();
    m(
        &mut out,
        "restore: from the call to every file local (full throughput)",
        format!(
            "{} ({remote_left} files left remote)",
            secs(started.elapsed())
        ),
    );
    let get = |k: &[u8]| r.get(&rt, k).expect("get").is_some();
    // The warm remote copy against the local original.
    let get_local = |k: &[u8]| db.get(&t, k).expect("get").is_some();
    let local = read_windows(
        &get_local,
        n,
        Duration::from_secs(3),
        Duration::from_millis(500),
    );
    let remote_warm = read_windows(&get, n, Duration::from_secs(3), Duration::from_millis(500));
    let (l, rw) = (
        local.last().copied().unwrap_or(0.0),
        remote_warm.last().copied().unwrap_or(0.0),
    );
    m(&mut out, "reads/s, local original", format!("{l:.0}"));
    m(
        &mut out,
        "reads/s, restored on the remote store, warm",
        format!("{rw:.0} ({:.0}% of local)", 100.0 * rw / l.max(1.0)),
    );
    drop(r);
    for dir in ["restored", "disk-cache"] {
        let _ = std::fs::remove_dir_all(scratch.join(dir)); // disk space for the 4 GiB runs
    }
    // Rescale 1 -> 2.
    let started = Instant::now();
    let mut halves = Vec::new();
    for i in 0..2u16 {
        let h = Db::builder(Settings {
            disk_cache_dir: Some(scratch.join(format!("disk-cache-{i}"))),
            ..settings(cfg)
        })
        .path(scratch.join(format!("half-{i}")))
        .restore(
            &[RestoreSource::one(&target, last).map_err(e)?],
            Some(half(i)),
        )
        .map_err(e)?;
        let ht = h.table("value").ok_or("table")?;
        let probe = (0..).map(key).find(|k| {
            let kg = u16::from_be_bytes([k[0], k[1]]);
            (half(i).first..=half(i).last).contains(&kg)
        });
        h.get(&ht, &probe.expect("a key in range")).map_err(e)?;
        halves.push(h);
    }
    m(
        &mut out,
        "rescale 1 -> 2: to first read on both",
        secs(started.elapsed()),
    );
    // Rescale 2 -> 1: the halves checkpoint (nothing new to upload), one instance merges.
    // Into their own directory: `checkpoints/` of the original's store is its own.
    let rescale = CheckpointStore::new(remote.clone(), "rescale").map_err(e)?;
    for h in &halves {
        h.checkpoint(last + 1, Some(&rescale))
            .map_err(e)?
            .wait()
            .map_err(e)?;
    }
    drop(halves);
    for dir in ["half-0", "half-1", "disk-cache-0", "disk-cache-1"] {
        let _ = std::fs::remove_dir_all(scratch.join(dir));
    }
    let started = Instant::now();
    let merged = Db::builder(Settings {
        disk_cache_dir: Some(scratch.join("disk-cache-merged")),
        ..settings(cfg)
    })
    .path(scratch.join("merged"))
    .restore(&RestoreSource::all(&rescale, last + 1).map_err(e)?, None)
    .map_err(e)?;
    let mt = merged.table("value").ok_or("table")?;
    merged
        .get(&mt, &key(n / 3))
        .map_err(e)?
        .ok_or("merged: missing")?;
    m(
        &mut out,
        "rescale 2 -> 1: to first read",
        secs(started.elapsed()),
    );
    drop(merged);
    if !in_place {
        // What ends a chain of delta checkpoints: a full one, uploading every live file
        // the store lacks. Forced here by releasing the tip; amortised over the rounds.
        db.release_checkpoint(last, Some(&target)).map_err(e)?;
        let full = db
            .checkpoint(last + 2, Some(&target))
            .map_err(e)?
            .wait()
            .map_err(e)?;
        let new_bytes = ROUNDS as u64 * (n / 100 + n / 10) * (18 + VALUE_BYTES as u64);
        m(
            &mut out,
            "delta checkpoints among the 1% and 10% rounds",
            format!("{deltas} of {}", 2 * ROUNDS),
        );
        m(
            &mut out,
            "full checkpoint ending the chain: duration",
            secs(full.total_duration),
        );
        m(
            &mut out,
            "full checkpoint ending the chain: uploaded",
            mib(full.bytes_uploaded),
        );
        m(
            &mut out,
            "all rounds plus that full checkpoint: uploaded per new byte",
            format!(
                "{:.2}x ({} for {} new)",
                (round_uploads + full.bytes_uploaded) as f64 / new_bytes as f64,
                mib(round_uploads + full.bytes_uploaded),
                mib(new_bytes)
            ),
        );
    }
    Ok(out)
}

#[cfg(feature = "rocksdb")]
mod rocks {
    use std::collections::HashSet;

    use bytes::Bytes;
    use rocksdb::checkpoint::Checkpoint;

    use super::*;
    use crate::engines::{Engine, RocksEngine, StateTable};

    /// Flink's incremental checkpoint of RocksDB: flush, a hard-link checkpoint, then the
    /// upload of every SST not uploaded by an earlier checkpoint and of the other files.
    /// Each instance uploads its SSTs under its own `tag` (Flink names them uniquely).
    fn checkpoint(
        db: &RocksEngine,
        scratch: &Path,
        tag: &str,
        id: u64,
        remote: &dyn Storage,
        uploaded: &mut HashSet<String>,
    ) -> Result<(Duration, Duration, u64, u64), String> {
        let started = Instant::now();
        db.flush();
        let local = scratch.join(format!("chk-{tag}-{id}"));
        Checkpoint::new(db.raw())
            .and_then(|c| c.create_checkpoint(&local))
            .map_err(|e| e.to_string())?;
        let sync = started.elapsed();
        let (mut bytes_up, mut total) = (0u64, 0u64);
        let mut listing = String::new();
        for entry in std::fs::read_dir(&local).map_err(|e| e.to_string())? {
            let entry = entry.map_err(|e| e.to_string())?;
            let name = entry.file_name().to_string_lossy().to_string();
            let len = entry.metadata().map_err(|e| e.to_string())?.len();
            total += len;
            let path = if name.ends_with(".sst") {
                format!("rocks/{tag}/shared/{name}")
            } else {
                format!("rocks/{tag}/chk-{id}/{name}")
            };
            listing.push_str(&format!("{name} {path}\n"));
            if name.ends_with(".sst") && uploaded.contains(&name) {
                continue;
            }
            let data = std::fs::read(entry.path()).map_err(|e| e.to_string())?;
            remote
                .put(&path, Bytes::from(data))
                .map_err(|e| e.to_string())?;
            bytes_up += len;
            if name.ends_with(".sst") {
                uploaded.insert(name);
            }
        }
        remote
            .put(&format!("rocks/chk-{id}/_files"), Bytes::from(listing))
            .map_err(|e| e.to_string())?;
        std::fs::remove_dir_all(&local).map_err(|e| e.to_string())?;
        Ok((started.elapsed(), sync, bytes_up, total))
    }

    /// Flink's restore: download every file of the checkpoint, then open. (A rescale
    /// downloads whole state handles too: Flink's incremental handle is one instance's
    /// complete file set, which RocksDB's MANIFEST needs whole.)
    fn download(remote: &dyn Storage, id: u64, to: &Path) -> Result<(), String> {
        std::fs::create_dir_all(to).map_err(|e| e.to_string())?;
        let listing = remote
            .read_all(&format!("rocks/chk-{id}/_files"))
            .map_err(|e| e.to_string())?;
        for line in String::from_utf8_lossy(&listing).lines() {
            let (name, path) = line.split_once(' ').ok_or("bad listing")?;
            let data = remote.read_all(path).map_err(|e| e.to_string())?;
            std::fs::write(to.join(name), &data).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn kg_bound(g: u16) -> Vec<u8> {
        g.to_be_bytes().to_vec()
    }

    pub(super) fn run(
        cfg: &CkConfig,
        scratch: &Path,
        remote: Arc<dyn Storage>,
        n: u64,
    ) -> Result<Vec<Metric>, String> {
        let mut out = Vec::new();
        let db = RocksEngine::open(&scratch.join("db"), cfg.budget, false)?;
        let mut rng = Rng::new(1);
        let started = Instant::now();
        for i in 0..n {
            db.put(StateTable::Value, &key(i), &value(&mut rng));
        }
        m(&mut out, "load", secs(started.elapsed()));
        let mut uploaded = HashSet::new();
        let last = checkpoint_rounds(
            &mut out,
            n,
            &mut rng,
            &mut |k, v| db.put(StateTable::Value, k, v),
            &mut |id| {
                let (total, sync, up, size) =
                    checkpoint(&db, scratch, "main", id, &*remote, &mut uploaded)?;
                Ok(CkStat {
                    total,
                    sync,
                    uploaded: up,
                    size,
                })
            },
        )?;
        // Restore.
        let started = Instant::now();
        let rdir = scratch.join("restored");
        download(&*remote, last, &rdir)?;
        let r = RocksEngine::open(&rdir, cfg.budget, false)?;
        m(&mut out, "restore: open", secs(started.elapsed()));
        r.get(StateTable::Value, &key(n / 2))
            .ok_or("first read: missing")?;
        let opened = started.elapsed();
        m(&mut out, "restore: to first read", secs(opened));
        let get = |k: &[u8]| r.get(StateTable::Value, k).is_some();
        let w = read_windows(&get, n, Duration::from_secs(5), Duration::from_millis(500));
        report_reads(&mut out, "restored", opened, &w);
        drop(r);
        let _ = std::fs::remove_dir_all(&rdir); // disk space for the 4 GiB runs
                                                // Rescale 1 -> 2: each instance downloads everything, opens, clips its range.
        let started = Instant::now();
        let mut halves = Vec::new();
        for i in 0..2u16 {
            let d = scratch.join(format!("half-{i}"));
            download(&*remote, last, &d)?;
            let h = RocksEngine::open(&d, cfg.budget, false)?;
            let g = half(i);
            let cf = h.raw().cf_handle("value").ok_or("cf")?;
            if g.first > 0 {
                h.raw()
                    .delete_range_cf(cf, kg_bound(0), kg_bound(g.first))
                    .map_err(|e| e.to_string())?;
            }
            if g.last + 1 < KEY_GROUPS {
                h.raw()
                    .delete_range_cf(cf, kg_bound(g.last + 1), vec![0xFF; 19])
                    .map_err(|e| e.to_string())?;
            }
            let probe = (0..)
                .map(key)
                .find(|k| (g.first..=g.last).contains(&u16::from_be_bytes([k[0], k[1]])))
                .expect("a key in range");
            h.get(StateTable::Value, &probe).ok_or("half: missing")?;
            halves.push((d, h));
        }
        m(
            &mut out,
            "rescale 1 -> 2: to first read on both",
            secs(started.elapsed()),
        );
        // Rescale 2 -> 1: checkpoint both halves, then one instance downloads both, opens
        // the first and copies the second's keys in.
        for (i, (_, h)) in halves.iter().enumerate() {
            let mut up = HashSet::new();
            checkpoint(
                h,
                scratch,
                &format!("half-{i}"),
                1000 + i as u64,
                &*remote,
                &mut up,
            )?;
        }
        drop(halves);
        for i in 0..2 {
            let _ = std::fs::remove_dir_all(scratch.join(format!("half-{i}")));
        }
        let started = Instant::now();
        let base_dir = scratch.join("merged");
        download(&*remote, 1000, &base_dir)?;
        let other_dir = scratch.join("merged-other");
        download(&*remote, 1001, &other_dir)?;
        let base = RocksEngine::open(&base_dir, cfg.budget, false)?;
        let other = RocksEngine::open(&other_dir, cfg.budget, false)?;
        let mut batch = rocksdb::WriteBatch::default();
        let cf = base.raw().cf_handle("value").ok_or("cf")?;
        let ocf = other.raw().cf_handle("value").ok_or("cf")?;
        let mut it = other.raw().raw_iterator_cf(ocf);
        it.seek_to_first();
        while it.valid() {
            batch.put_cf(cf, it.key().expect("key"), it.value().expect("value"));
            if batch.len() >= 1000 {
                base.raw()
                    .write(std::mem::take(&mut batch))
                    .map_err(|e| e.to_string())?;
            }
            it.next();
        }
        base.raw().write(batch).map_err(|e| e.to_string())?;
        base.get(StateTable::Value, &key(n / 3))
            .ok_or("merged: missing")?;
        m(
            &mut out,
            "rescale 2 -> 1: to first read",
            secs(started.elapsed()),
        );
        Ok(out)
    }
}
