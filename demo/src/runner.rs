//! Running the job fault-tolerantly, the way a stream processor does: parallel instances
//! (each owning a key-group range), periodic checkpoints into a checkpoint store, a
//! transactional sink, and restarts (after a crash, or with another parallelism) from the
//! last completed checkpoint with the source replayed from its offset.
//!
//! Layout of a job directory:
//! - `checkpoints/`: the checkpoint store every instance checkpoints into (DESIGN.md §8);
//! - `checkpoints/job-<id:020>.meta`: a *completed* checkpoint: written only after every
//!   instance confirmed checkpoint `id` and the sink committed its rows; names the
//!   instances' manifests, the source offset, the job's progress and the sink's length;
//! - `attempt-<n>/instance-<i>/`: the instances' databases of the n-th run;
//! - `output.csv`: the committed result rows (the sink).
//!
//! Exactly-once: rows produced after the last completed checkpoint are held back; a
//! restart truncates `output.csv` to the length that checkpoint recorded and replays the
//! source from its offset, so every row is committed exactly once.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata::{
    CheckpointRef, CheckpointStore, Db, Error, KeyGroupRange, ObjectStorage, RestoreSource, Result,
    Settings, Storage,
};

use crate::job::{Job, JobConfig, JobProgress, Row};
use crate::stream::StreamConfig;

/// How a run goes.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The job directory.
    pub dir: PathBuf,
    /// Instances in this run.
    pub parallelism: u16,
    /// Event time between checkpoints (ms).
    pub checkpoint_every_ms: u64,
    /// Each instance's database settings (its own memory budget).
    pub settings: Settings,
    /// The job (`key_groups` and `checkpoint_every_ms` are set per instance by the runner).
    pub job: JobConfig,
    /// Crash when this event (0-based index in the stream) arrives.
    pub fail_at_event: Option<u64>,
    /// Crash with `abort()` (a real process crash) instead of returning
    /// [`RunEnd::Crashed`] after dropping everything unflushed.
    pub abort_on_failure: bool,
    /// Stop (cleanly, like a stop-with-savepoint) once this many checkpoints completed in
    /// this run.
    pub stop_after_checkpoints: Option<u64>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    /// The stream ended; every row is committed.
    Finished {
        /// Late events dropped over the whole job.
        late: u64,
        /// Checkpoints completed over the whole job.
        checkpoints: u64,
    },
    /// Stopped after a checkpoint, as asked.
    Stopped {
        /// The last completed checkpoint.
        checkpoint: u64,
    },
    /// Crashed at an event, as asked; nothing after the last completed checkpoint counts.
    Crashed {
        /// The event index.
        at_event: u64,
    },
}

/// A completed checkpoint's record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct JobMeta {
    id: u64,
    /// Events consumed.
    offset: u64,
    /// Bytes of `output.csv` committed.
    out_len: u64,
    late: u64,
    progress: JobProgress,
    sources: Vec<CheckpointRef>,
}

impl JobMeta {
    fn encode(&self) -> String {
        let p = &self.progress;
        let mut s = format!(
            "strata-demo job checkpoint v1\nid {}\noffset {}\nout_len {}\nlate {}\nmax_ts {}\n\
             watermark {}\nfired_through {}\n",
            self.id, self.offset, self.out_len, self.late, p.max_ts, p.watermark, p.fired_through
        );
        for r in &self.sources {
            s.push_str(&format!(
                "source {} {:016x} {}\n",
                r.checkpoint_id, r.db_id, r.path
            ));
        }
        s
    }

    fn decode(text: &str, file: &Path) -> Result<JobMeta> {
        let bad = || Error::corruption(file.display().to_string(), "job checkpoint record");
        let mut lines = text.lines();
        if lines.next() != Some("strata-demo job checkpoint v1") {
            return Err(bad());
        }
        let mut m = JobMeta::default();
        for l in lines {
            let (k, v) = l.split_once(' ').ok_or_else(bad)?;
            let n = || v.parse::<u64>().map_err(|_| bad());
            match k {
                "id" => m.id = n()?,
                "offset" => m.offset = n()?,
                "out_len" => m.out_len = n()?,
                "late" => m.late = n()?,
                "max_ts" => m.progress.max_ts = n()?,
                "watermark" => m.progress.watermark = n()?,
                "fired_through" => m.progress.fired_through = n()?,
                "source" => {
                    let mut it = v.splitn(3, ' ');
                    let (id, db, path) = (it.next(), it.next(), it.next());
                    let (Some(id), Some(db), Some(path)) = (id, db, path) else {
                        return Err(bad());
                    };
                    m.sources.push(CheckpointRef {
                        checkpoint_id: id.parse().map_err(|_| bad())?,
                        db_id: u64::from_str_radix(db, 16).map_err(|_| bad())?,
                        path: path.to_string(),
                    });
                }
                _ => return Err(bad()),
            }
        }
        if m.sources.is_empty() {
            return Err(bad());
        }
        Ok(m)
    }
}

fn io(what: impl std::fmt::Display, e: std::io::Error) -> Error {
    Error::io(what, e)
}

/// Writes `data` to `path` atomically and durably (temporary file, fsync, rename, fsync of
/// the directory).
fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(|e| io(format!("create {}", tmp.display()), e))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(|e| io(format!("write {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(format!("rename {}", path.display()), e))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(format!("fsync {}", dir.display()), e))
}

/// The latest completed checkpoint of the job in `dir`, if any.
fn latest_meta(dir: &Path) -> Result<Option<JobMeta>> {
    let cp = dir.join("checkpoints");
    let Ok(entries) = std::fs::read_dir(&cp) else {
        return Ok(None);
    };
    let mut best: Option<(u64, PathBuf)> = None;
    for e in entries {
        let e = e.map_err(|e| io(format!("list {}", cp.display()), e))?;
        let name = e.file_name().to_string_lossy().to_string();
        let Some(id) = name
            .strip_prefix("job-")
            .and_then(|s| s.strip_suffix(".meta"))
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        if best.as_ref().is_none_or(|(b, _)| id > *b) {
            best = Some((id, e.path()));
        }
    }
    let Some((_, path)) = best else {
        return Ok(None);
    };
    let text =
        std::fs::read_to_string(&path).map_err(|e| io(format!("read {}", path.display()), e))?;
    JobMeta::decode(&text, &path).map(Some)
}

/// One CSV line of a result row (the sink's format).
pub fn csv_line(row: &Row) -> String {
    match row {
        Row::Pv(r) => format!(
            "pv_uv,{},{},{},{},{},,,",
            r.page, r.window_start, r.window_end, r.pv, r.uv
        ),
        Row::Dau(r) => format!(
            "dau,{},{},{},,,{},{},{}",
            r.channel, r.window_start, r.window_end, r.dau, r.new, r.returning
        ),
    }
}

/// The sink's commit: appends `rows` to `out` as CSV lines and makes them durable.
/// Returns the bytes appended.
fn commit_rows(out: &mut File, rows: &[Row]) -> Result<u64> {
    let mut text = String::new();
    for r in rows {
        text.push_str(&csv_line(r));
        text.push('\n');
    }
    out.write_all(text.as_bytes())
        .and_then(|()| out.sync_data())
        .map_err(|e| io("commit output.csv", e))?;
    Ok(text.len() as u64)
}

/// The committed rows of the job in `dir`, as CSV lines.
pub fn committed_rows(dir: &Path) -> Result<Vec<String>> {
    let path = dir.join("output.csv");
    let f = File::open(&path).map_err(|e| io(format!("open {}", path.display()), e))?;
    BufReader::new(f)
        .lines()
        .collect::<std::io::Result<Vec<String>>>()
        .map_err(|e| io(format!("read {}", path.display()), e))
}

/// Runs (or resumes) the job in `cfg.dir` over `stream`: from the last completed
/// checkpoint if there is one (any parallelism: each instance restores its key groups from
/// every instance's checkpoint), else from the start. `on_checkpoint` hears of each
/// completed checkpoint (id, rows committed).
pub fn run(
    cfg: &RunConfig,
    stream: &StreamConfig,
    on_checkpoint: &mut dyn FnMut(u64, usize),
) -> Result<RunEnd> {
    if cfg.parallelism == 0 || cfg.parallelism > cfg.job.max_parallelism {
        return Err(Error::invalid("parallelism must be in 1..=max parallelism"));
    }
    if cfg.checkpoint_every_ms == 0 {
        return Err(Error::invalid("the checkpoint interval must be positive"));
    }
    std::fs::create_dir_all(&cfg.dir)
        .map_err(|e| io(format!("create {}", cfg.dir.display()), e))?;
    let cp_storage: Arc<dyn Storage> = Arc::new(ObjectStorage::local(cfg.dir.join("checkpoints"))?);
    let store = CheckpointStore::new(cp_storage, "")?;
    let meta = latest_meta(&cfg.dir)?;
    // A new attempt directory; earlier attempts' databases are not needed any more (a
    // restore reads the checkpoint store only).
    let mut attempt = 0u64;
    if let Ok(entries) = std::fs::read_dir(&cfg.dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if let Some(n) = name
                .strip_prefix("attempt-")
                .and_then(|n| n.parse::<u64>().ok())
            {
                attempt = attempt.max(n);
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let attempt_dir = cfg.dir.join(format!("attempt-{}", attempt + 1));
    // The sink: committed rows only.
    let out_path = cfg.dir.join("output.csv");
    let mut out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&out_path)
        .map_err(|e| io(format!("open {}", out_path.display()), e))?;
    let committed = meta.as_ref().map_or(0, |m| m.out_len);
    out.set_len(committed)
        .map_err(|e| io(format!("truncate {}", out_path.display()), e))?;
    let settings = Settings {
        flush_on_close: false,
        ..cfg.settings.clone()
    };
    let mut jobs = Vec::new();
    for i in 0..cfg.parallelism {
        let range = KeyGroupRange::for_operator(cfg.job.max_parallelism, cfg.parallelism, i);
        let job_cfg = JobConfig {
            key_groups: Some(range),
            checkpoint_every_ms: None,
            ..cfg.job.clone()
        };
        let builder = Db::builder(settings.clone()).path(attempt_dir.join(format!("instance-{i}")));
        jobs.push(match &meta {
            None => Job::open(builder, job_cfg)?,
            Some(m) => {
                let sources: Vec<RestoreSource> = m
                    .sources
                    .iter()
                    .map(|r| RestoreSource {
                        store: store.clone(),
                        checkpoint: r.clone(),
                    })
                    .collect();
                Job::restore(builder, job_cfg, &sources, m.progress)?
            }
        });
    }
    let offset = meta.as_ref().map_or(0, |m| m.offset);
    let late_base = meta.as_ref().map_or(0, |m| m.late);
    let mut last_id = meta.as_ref().map_or(0, |m| m.id);
    let first_id = last_id;
    let start = jobs[0].progress().watermark.max(stream.start_ms);
    let mut next_cp = (start / cfg.checkpoint_every_ms + 1) * cfg.checkpoint_every_ms;
    let mut pending: Vec<Row> = Vec::new();
    let mut out_len = committed;
    let mut checkpoint = |jobs: &mut Vec<Job>,
                          pending: &mut Vec<Row>,
                          offset: u64,
                          last_id: &mut u64,
                          out_len: &mut u64|
     -> Result<()> {
        let id = *last_id + 1;
        // Every instance's flush and checkpoint; the uploads (none here: the store is
        // local, but still another store) run while the others flush.
        let started: Vec<_> = jobs
            .iter()
            .map(|j| j.db().checkpoint(id, Some(&store)))
            .collect::<Result<_>>()?;
        let mut sources = Vec::new();
        for p in started {
            sources.push(p.wait()?.reference);
        }
        // The sink commits, then the checkpoint is complete.
        *out_len += commit_rows(&mut out, pending)?;
        let meta = JobMeta {
            id,
            offset,
            out_len: *out_len,
            late: late_base + jobs[0].stats().late_dropped,
            progress: jobs[0].progress(),
            sources,
        };
        write_atomic(
            &cfg.dir
                .join("checkpoints")
                .join(format!("job-{id:020}.meta")),
            meta.encode().as_bytes(),
        )?;
        on_checkpoint(id, pending.len());
        pending.clear();
        *last_id = id;
        // Older checkpoints of these instances are subsumed.
        for j in jobs.iter() {
            j.db().subsume_checkpoints(id, Some(&store))?;
        }
        Ok(())
    };
    for (i, ev) in stream
        .generate()
        .map_err(Error::invalid)?
        .enumerate()
        .skip(offset as usize)
    {
        let i = i as u64;
        if cfg.fail_at_event == Some(i) {
            if cfg.abort_on_failure {
                std::process::abort();
            }
            return Ok(RunEnd::Crashed { at_event: i });
        }
        for j in jobs.iter_mut() {
            j.process(&ev, &mut |r| pending.push(r))?;
        }
        if jobs[0].watermark() >= next_cp {
            checkpoint(&mut jobs, &mut pending, i + 1, &mut last_id, &mut out_len)?;
            next_cp = (jobs[0].watermark() / cfg.checkpoint_every_ms + 1) * cfg.checkpoint_every_ms;
            if cfg
                .stop_after_checkpoints
                .is_some_and(|n| last_id - first_id >= n)
            {
                for j in &jobs {
                    j.db().close()?;
                }
                return Ok(RunEnd::Stopped {
                    checkpoint: last_id,
                });
            }
        }
    }
    let mut late = 0;
    for (n, j) in jobs.iter_mut().enumerate() {
        let stats = j.finish(&mut |r| pending.push(r))?;
        if n == 0 {
            late = late_base + stats.late_dropped;
        }
    }
    commit_rows(&mut out, &pending)?;
    for j in &jobs {
        j.db().close()?;
    }
    Ok(RunEnd::Finished {
        late,
        checkpoints: last_id,
    })
}
