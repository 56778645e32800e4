//! `strata`: check, inspect and maintain a Strata database — what RocksDB users get from
//! `ldb` and `sst_dump`.
//!
//! ```text
//! strata verify DIR                       every checksum of every file; exit 1 on damage
//! strata info DIR                         tables, levels, files, sequence numbers, WAL state
//! strata dump DIR --table T [--prefix P] [--hex]
//! strata sst FILE [--entries N] [--hex]   one table file: properties, index, entries
//! strata compact DIR                      full compaction of every table
//! ```
//! `DIR` is a database directory (`DIR/data` holds table files and the manifest, `DIR/wal`
//! the WAL). With `--s3-prefix P` the store is the S3-compatible bucket the `STRATA_S3_*`
//! environment variables name (as the engine's `S3Settings::from_env`), and `DIR` is where
//! the WAL lives, if anywhere. `--settings FILE` takes the engine's settings as JSON.
//! `verify`, `info`, `dump` and `sst` never write: they open the database read-only, so they
//! also work next to a running writer.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use strata::internals::wal::{list_wals, read_wal, wal_path};
use strata::{Db, DbBuilder, ObjectStorage, S3Settings, Settings, Storage, WalRecovery};
use strata_dfs::{table_path, InternalIterator, ManifestState, TableReader};

#[derive(Parser)]
#[command(version, about = "Check, inspect and maintain a Strata database")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone)]
struct Location {
    /// The database directory (with --s3-prefix: the directory of the WAL, if any).
    dir: PathBuf,
    /// Use the S3-compatible store named by the STRATA_S3_* environment variables, under
    /// this prefix, instead of DIR/data.
    #[arg(long)]
    s3_prefix: Option<String>,
    /// The engine's settings as JSON (as `strata::Settings` serializes).
    #[arg(long)]
    settings: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Checks every checksum of every file the manifest references, every manifest
    /// generation and the live WAL files. Exits 1 on any damage, naming file and offset.
    Verify(Location),
    /// Prints tables, levels, file counts and sizes, sequence numbers and the WAL state.
    Info(Location),
    /// Prints the keys and values of one table (as of the open: table files plus WAL).
    Dump {
        #[command(flatten)]
        loc: Location,
        /// The table's name.
        #[arg(long)]
        table: String,
        /// Only keys starting with this prefix (hex with --hex).
        #[arg(long)]
        prefix: Option<String>,
        /// Keys and values in hex instead of escaped text.
        #[arg(long)]
        hex: bool,
    },
    /// Prints one table file: properties, index and entries.
    Sst {
        /// The table file (a local path, or with --s3-prefix an object path such as
        /// sst/00000000000000000007.sst).
        file: String,
        /// Entries to print (0: none, default all).
        #[arg(long)]
        entries: Option<usize>,
        /// Keys and values in hex instead of escaped text.
        #[arg(long)]
        hex: bool,
        /// Read the file from the S3-compatible store under this prefix.
        #[arg(long)]
        s3_prefix: Option<String>,
    },
    /// Compacts every table fully (opens the database as its writer).
    Compact(Location),
}

type Res<T> = Result<T, String>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Verify(loc) => verify(&loc),
        Cmd::Info(loc) => info(&loc).map(|()| true),
        Cmd::Dump {
            loc,
            table,
            prefix,
            hex,
        } => dump(&loc, &table, prefix.as_deref(), hex).map(|()| true),
        Cmd::Sst {
            file,
            entries,
            hex,
            s3_prefix,
        } => sst(&file, entries, hex, s3_prefix.as_deref()).map(|()| true),
        Cmd::Compact(loc) => compact(&loc).map(|()| true),
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("strata: {e}");
            ExitCode::from(2)
        }
    }
}

fn s3_store(prefix: &str) -> Res<Arc<dyn Storage>> {
    let s3 = S3Settings::from_env(prefix)
        .ok_or("--s3-prefix needs STRATA_S3_ENDPOINT and the other STRATA_S3_* variables")?;
    Ok(Arc::new(ObjectStorage::s3(&s3).map_err(|e| e.to_string())?))
}

impl Location {
    fn settings(&self) -> Res<Settings> {
        let mut s = match &self.settings {
            None => Settings::default(),
            Some(f) => {
                let text =
                    std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", f.display()))?
            }
        };
        if s.wal_dir.is_none() {
            s.wal_dir = Some(self.dir.join("wal"));
        }
        Ok(s)
    }

    fn storage(&self) -> Res<Arc<dyn Storage>> {
        match &self.s3_prefix {
            Some(p) => s3_store(p),
            None => {
                let data = self.dir.join("data");
                if !data.is_dir() {
                    return Err(format!("no database in {}", self.dir.display()));
                }
                Ok(Arc::new(
                    ObjectStorage::local(data).map_err(|e| e.to_string())?,
                ))
            }
        }
    }

    fn builder(&self) -> Res<DbBuilder> {
        let b = Db::builder(self.settings()?);
        Ok(match &self.s3_prefix {
            Some(_) => b.storage(self.storage()?),
            None => b.path(&self.dir),
        })
    }

    fn open_read_only(&self) -> Res<Db> {
        self.builder()?
            .read_only()
            .open()
            .map_err(|e| e.to_string())
    }
}

/// The newest manifest generation, and every generation's path with its decode result.
fn manifests(storage: &dyn Storage) -> Res<Vec<(String, Result<ManifestState, String>)>> {
    let mut paths: Vec<String> = storage
        .list("manifest/")
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|o| o.path)
        .collect();
    paths.sort();
    Ok(paths
        .into_iter()
        .map(|p| {
            let r = storage
                .read_all(&p)
                .map_err(|e| e.to_string())
                .and_then(|b| {
                    ManifestState::decode(&b, &p)
                        .map(|(_, s)| s)
                        .map_err(|e| e.to_string())
                });
            (p, r)
        })
        .collect())
}

fn verify(loc: &Location) -> Res<bool> {
    let storage = loc.storage()?;
    let mut damaged = 0usize;
    let mut bad = |what: String| {
        println!("DAMAGED {what}");
        damaged += 1;
    };
    let gens = manifests(&*storage)?;
    if gens.is_empty() {
        return Err(format!("no manifest in {storage:?}"));
    }
    let mut newest = None;
    for (i, (path, r)) in gens.iter().enumerate() {
        match r {
            Ok(s) => {
                println!("ok      {path} (writer epoch {})", s.writer_epoch);
                if i + 1 == gens.len() {
                    newest = Some(s.clone());
                }
            }
            Err(e) => bad(format!("{path}: {e}")),
        }
    }
    let Some(state) = newest else {
        println!("the newest manifest generation is damaged; its table files were not checked");
        return Ok(false);
    };
    let mut referenced = std::collections::HashSet::new();
    for (table, level, f) in state.version.all_files() {
        let path = table_path(f.number);
        referenced.insert(path.clone());
        let checked =
            TableReader::open(storage.clone(), None, &path, f.number, f.size).and_then(|r| {
                let mut it = r.iter(true);
                it.seek_to_first();
                let mut n = 0u64;
                while it.valid() {
                    n += 1;
                    it.next();
                }
                it.status().map(|()| n)
            });
        match checked {
            Ok(n) if n == f.entries => println!(
                "ok      {path}: table {table}, level {level}, {n} entries, {} bytes",
                f.size
            ),
            Ok(n) => bad(format!(
                "{path}: {n} entries, the manifest says {}",
                f.entries
            )),
            Err(e) => bad(e.to_string()),
        }
    }
    for o in storage.list("sst/").map_err(|e| e.to_string())? {
        if !referenced.contains(&o.path) {
            println!(
                "orphan  {} ({} bytes, unreferenced; the next open deletes it)",
                o.path, o.size
            );
        }
    }
    if let Some(dir) = loc.settings()?.wal_dir.filter(|d| d.is_dir()) {
        let wals = list_wals(&dir).map_err(|e| e.to_string())?;
        if state.log_number > 0 && !wals.contains(&state.log_number) {
            bad(format!(
                "{}: missing (the manifest names it)",
                wal_path(&dir, state.log_number).display()
            ));
        }
        for n in wals.into_iter().filter(|&n| n >= state.log_number) {
            let path = wal_path(&dir, n);
            match read_wal(&dir, n, WalRecovery::TolerateCorruptedTail) {
                Ok(c) => println!(
                    "ok      {}: {} batches{}",
                    path.display(),
                    c.batches.len(),
                    if c.torn_bytes > 0 {
                        format!(", torn tail of {} bytes (a crash mid-write)", c.torn_bytes)
                    } else {
                        String::new()
                    }
                ),
                Err(e) => bad(e.to_string()),
            }
        }
    }
    println!(
        "{} damaged file{}",
        damaged,
        if damaged == 1 { "" } else { "s" }
    );
    Ok(damaged == 0)
}

fn info(loc: &Location) -> Res<()> {
    let storage = loc.storage()?;
    let gens = manifests(&*storage)?;
    let (path, state) = match gens.last() {
        Some((p, Ok(s))) => (p.clone(), s.clone()),
        Some((p, Err(e))) => return Err(format!("{p}: {e}")),
        None => return Err(format!("no manifest in {storage:?}")),
    };
    println!("store           {storage:?}");
    println!("manifest        {path} ({} generations kept)", gens.len());
    println!("database id     {:016x}", state.db_id);
    println!("writer epoch    {}", state.writer_epoch);
    println!("next file       {}", state.next_file_number);
    println!("last durable seq {}", state.last_seq);
    println!(
        "WAL             {}",
        match state.log_number {
            0 => "none named (the writer ran without a WAL)".to_string(),
            n => format!("live from file {n}"),
        }
    );
    let db = loc.open_read_only()?;
    let rec = db.recovery_info();
    println!(
        "replayed        {} WAL batches, {} torn bytes",
        rec.wal_batches_replayed, rec.wal_torn_bytes
    );
    for t in db.tables() {
        let o = db.table_options(&t).map_err(|e| e.to_string())?;
        println!(
            "table {:>3} {:?}: merge {:?}, compression {:?}, prefix_len {}",
            t.id(),
            t.name(),
            o.merge,
            o.compression_per_level,
            o.prefix_len
        );
        if let Some(lv) = state.version.levels(t.id()) {
            for (level, files) in lv.files.iter().enumerate() {
                if files.is_empty() {
                    continue;
                }
                let bytes: u64 = files.iter().map(|f| f.size).sum();
                let entries: u64 = files.iter().map(|f| f.entries).sum();
                let (lo, hi) = files.iter().fold((u64::MAX, 0), |(lo, hi), f| {
                    (lo.min(f.min_seq), hi.max(f.max_seq))
                });
                println!(
                    "    level {level}: {} files, {bytes} bytes, {entries} entries, seq {lo}..={hi}",
                    files.len()
                );
            }
        }
    }
    if let Some(dir) = loc.settings()?.wal_dir.filter(|d| d.is_dir()) {
        for n in list_wals(&dir).map_err(|e| e.to_string())? {
            let p = wal_path(&dir, n);
            let size = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            let live = n >= state.log_number && state.log_number > 0;
            println!(
                "wal {}: {size} bytes{}",
                p.display(),
                if live { " (live)" } else { " (obsolete)" }
            );
        }
    }
    db.close().map_err(|e| e.to_string())
}

fn render(b: &[u8], hex: bool) -> String {
    if hex {
        b.iter().map(|x| format!("{x:02x}")).collect()
    } else {
        b.escape_ascii().to_string()
    }
}

fn parse_hex(s: &str) -> Res<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return Err(format!("{s:?} is not hex (odd length)"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| format!("{s:?} is not hex")))
        .collect()
}

fn dump(loc: &Location, table: &str, prefix: Option<&str>, hex: bool) -> Res<()> {
    let db = loc.open_read_only()?;
    let t = db
        .table(table)
        .ok_or_else(|| format!("no table {table:?} (tables: {:?})", names(&db)))?;
    let prefix = match prefix {
        Some(p) if hex => parse_hex(p)?,
        Some(p) => p.as_bytes().to_vec(),
        None => Vec::new(),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut n = 0u64;
    for kv in db.prefix(&t, &prefix).map_err(|e| e.to_string())? {
        let (k, v) = kv.map_err(|e| e.to_string())?;
        use std::io::Write;
        if writeln!(out, "{} => {}", render(&k, hex), render(&v, hex)).is_err() {
            return Ok(()); // stdout closed (piped into head)
        }
        n += 1;
    }
    drop(out);
    eprintln!("{n} keys");
    db.close().map_err(|e| e.to_string())
}

fn names(db: &Db) -> Vec<String> {
    db.tables().iter().map(|t| t.name().to_string()).collect()
}

fn sst(file: &str, entries: Option<usize>, hex: bool, s3_prefix: Option<&str>) -> Res<()> {
    let (storage, path): (Arc<dyn Storage>, String) = match s3_prefix {
        Some(p) => (s3_store(p)?, file.to_string()),
        None => {
            let p = Path::new(file);
            let dir = p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| format!("{file}: not a file name"))?;
            (
                Arc::new(ObjectStorage::local(dir).map_err(|e| e.to_string())?),
                name.to_string(),
            )
        }
    };
    let size = storage.size(&path).map_err(|e| e.to_string())?;
    let number = Path::new(&path)
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let r = TableReader::open(storage, None, &path, number, size).map_err(|e| e.to_string())?;
    let p = r.properties();
    println!("file            {path} ({size} bytes)");
    println!("table id        {}", p.table_id);
    println!(
        "entries         {} ({} tombstones, {} merge operands)",
        p.entries, p.deletes, p.merges
    );
    println!(
        "raw bytes       {} key, {} value",
        p.raw_key_bytes, p.raw_value_bytes
    );
    println!("sequence        {}..={}", p.min_seq, p.max_seq);
    println!("data blocks     {}", p.data_blocks);
    println!("prefix_len      {}", p.prefix_len);
    println!("index:");
    for (k, off, len) in r.index_entries().map_err(|e| e.to_string())? {
        println!("  {} @ {off} +{len}", internal(&k, hex));
    }
    let limit = entries.unwrap_or(usize::MAX);
    if limit > 0 {
        println!("entries:");
    }
    let mut it = r.iter(true);
    it.seek_to_first();
    let mut n = 0;
    while it.valid() && n < limit {
        println!(
            "  {} => {}",
            internal(it.key(), hex),
            render(it.value(), hex)
        );
        it.next();
        n += 1;
    }
    it.status().map_err(|e| e.to_string())
}

fn internal(ikey: &[u8], hex: bool) -> String {
    match strata_dfs::key::parse(ikey) {
        Some(p) => format!("{} @{} {:?}", render(p.user_key, hex), p.seq, p.kind),
        None => format!("{} (malformed internal key)", render(ikey, hex)),
    }
}

fn compact(loc: &Location) -> Res<()> {
    let db = loc.builder()?.open().map_err(|e| e.to_string())?;
    for t in db.tables() {
        db.compact_table(&t).map_err(|e| e.to_string())?;
        println!("compacted {:?}", t.name());
    }
    db.close().map_err(|e| e.to_string())
}
