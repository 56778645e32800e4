//! `strata-bench`: runs Flink-shaped workloads on Strata and RocksDB side by side and prints
//! a table with the ratio per row.
//!
//! ```text
//! cargo run --release -p strata-bench -- compare --n 500000            # Strata only
//! bash benches/rocksdb-setup.sh                                        # once: build with RocksDB
//! target/release/strata-bench compare --n 500000 --engines strata,rocksdb
//! ```
//! Each (workload, threads, engine) runs in a fresh child process of this binary so that its
//! peak RSS is its own; the parent collects the results and writes the report.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use clap::{Args, Parser, Subcommand};
use strata_bench::engines;
use strata_bench::report;
use strata_bench::workloads::{self, PhaseResult, RunConfig, WORKLOADS};

/// jemalloc for the whole process (see `strata_bench::alloc`).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(version, about = "Strata vs RocksDB on Flink-shaped state workloads")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs the comparison and prints the table with ratios.
    Compare(CompareArgs),
    /// Checkpoint, restore and rescaling costs of one engine on a remote store (one engine
    /// per run, so the peak RSS is its own).
    Checkpoint(CheckpointArgs),
    /// Runs one workload on one engine and prints its results as JSON lines (internal).
    #[command(hide = true)]
    Child(ChildArgs),
}

#[derive(Args, Clone)]
struct Common {
    /// Records loaded per workload.
    #[arg(long, default_value_t = 500_000)]
    n: u64,
    /// Operations per measured phase (default: min(N, 1,000,000)).
    #[arg(long)]
    ops: Option<u64>,
    /// Memory budget for each engine, MiB.
    #[arg(long, default_value_t = 256)]
    budget_mb: u64,
    /// Where databases are created (a fresh directory per run, removed afterwards).
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    data_dir: PathBuf,
}

#[derive(Args)]
struct CompareArgs {
    #[command(flatten)]
    common: Common,
    /// Engines to run, comma separated.
    /// (`rocksdb`: Flink's default RocksDB setup; `rocksdb-partitioned`: with Flink's
    /// partitioned index and filters. Each row compares with the faster of the two.)
    #[arg(
        long,
        default_value = "strata,rocksdb,rocksdb-partitioned",
        value_delimiter = ','
    )]
    engines: Vec<String>,
    /// Workloads to run, comma separated, or `all`.
    #[arg(long, default_value = "all", value_delimiter = ',')]
    workloads: Vec<String>,
    /// Thread counts, comma separated.
    #[arg(long, default_value = "1,2", value_delimiter = ',')]
    threads: Vec<usize>,
    /// Folder for results.jsonl, results.md and ratios.svg.
    #[arg(long, default_value = "benches/results")]
    out: PathBuf,
}

#[derive(Args)]
struct CheckpointArgs {
    /// `strata` or `rocksdb` (Flink's way: hard-link checkpoint, upload, download).
    #[arg(long, default_value = "strata")]
    engine: String,
    /// State size to load, MiB (keys and values).
    #[arg(long, default_value_t = 100)]
    size_mb: u64,
    /// Memory budget, MiB.
    #[arg(long, default_value_t = 256)]
    budget_mb: u64,
    /// The checkpoint store: `s3` (SeaweedFS or any S3 from `STRATA_S3_*`) or `local`.
    #[arg(long, default_value = "local")]
    remote: String,
    /// Where local databases are created.
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    data_dir: PathBuf,
}

#[derive(Args)]
struct ChildArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long)]
    engine: String,
    #[arg(long)]
    workload: String,
    #[arg(long)]
    threads: usize,
}

fn main() {
    strata_bench::alloc::install();
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Compare(a) => compare(a),
        Cmd::Checkpoint(a) => checkpoint(a),
        Cmd::Child(a) => child(a),
    };
    if let Err(e) = r {
        eprintln!("strata-bench: {e}");
        std::process::exit(1);
    }
}

fn checkpoint(a: CheckpointArgs) -> Result<(), String> {
    let cfg = strata_bench::checkpoints::CkConfig {
        engine: a.engine.clone(),
        size_bytes: a.size_mb << 20,
        budget: a.budget_mb << 20,
        data_dir: a.data_dir,
        remote: a.remote.clone(),
    };
    let metrics = strata_bench::checkpoints::run(&cfg)?;
    println!(
        "| {} on {}, {} MiB, budget {} MiB | |\n| --- | --- |",
        a.engine, a.remote, a.size_mb, a.budget_mb
    );
    for m in metrics {
        println!("| {} | {} |", m.name, m.value);
    }
    Ok(())
}

fn child(a: ChildArgs) -> Result<(), String> {
    let c = &a.common;
    let dir = tempfile::Builder::new()
        .prefix(&format!("strata-bench-{}-", a.engine))
        .tempdir_in(&c.data_dir)
        .map_err(|e| e.to_string())?;
    let engine = engines::open(&a.engine, dir.path(), c.budget_mb << 20)?;
    let cfg = RunConfig {
        n: c.n,
        ops: c.ops.unwrap_or(c.n.min(1_000_000)),
        threads: a.threads,
        progress: true,
    };
    let show_stats = std::env::var_os("STRATA_BENCH_STATS").is_some();
    workloads::run(&a.workload, engine.as_ref(), cfg, &mut |r| {
        println!("RESULT {}", serde_json::to_string(&r).expect("json"));
        if let Some(s) = engine.describe().filter(|_| show_stats) {
            eprintln!("after {} {}:\n{s}", r.workload, r.phase);
        }
    })?;
    drop(engine);
    Ok(())
}

fn compare(a: CompareArgs) -> Result<(), String> {
    let workloads: Vec<String> = if a.workloads.iter().any(|w| w == "all") {
        WORKLOADS.iter().map(|s| s.to_string()).collect()
    } else {
        a.workloads.clone()
    };
    for e in &a.engines {
        if !["strata", "rocksdb", "rocksdb-partitioned"].contains(&e.as_str()) {
            return Err(format!("unknown engine {e:?}"));
        }
        if e.starts_with("rocksdb") && !cfg!(feature = "rocksdb") {
            return Err(
                "this binary was built without RocksDB: run benches/rocksdb-setup.sh, \
                        then target/release/strata-bench"
                    .into(),
            );
        }
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let c = &a.common;
    let mut results: Vec<PhaseResult> = Vec::new();
    for w in &workloads {
        for &t in &a.threads {
            for e in &a.engines {
                eprintln!("== {w}, {t} thread(s), {e}, N = {}", c.n);
                let mut cmd = Command::new(&exe);
                cmd.args(["child", "--engine", e, "--workload", w])
                    .args(["--threads", &t.to_string(), "--n", &c.n.to_string()])
                    .args(["--budget-mb", &c.budget_mb.to_string()])
                    .arg("--data-dir")
                    .arg(&c.data_dir)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit());
                if let Some(ops) = c.ops {
                    cmd.args(["--ops", &ops.to_string()]);
                }
                let mut child = cmd.spawn().map_err(|e| e.to_string())?;
                let out = BufReader::new(child.stdout.take().expect("piped"));
                for line in out.lines() {
                    let line = line.map_err(|e| e.to_string())?;
                    if let Some(json) = line.strip_prefix("RESULT ") {
                        let r: PhaseResult =
                            serde_json::from_str(json).map_err(|e| e.to_string())?;
                        eprintln!(
                            "   {:<12} {:>12.0} ops/s  p99 {:>8.1} µs",
                            r.phase, r.ops_per_sec, r.p99_us
                        );
                        results.push(r);
                    }
                }
                let status = child.wait().map_err(|e| e.to_string())?;
                if !status.success() {
                    return Err(format!("{e} on {w} failed: {status}"));
                }
            }
        }
    }
    println!("{}", report::markdown(&report::rows(&results)));
    let out = a.out.join(format!("n{}", c.n));
    report::write(&out, &results)?;
    eprintln!(
        "wrote {}/results.jsonl, results.md, ratios.svg",
        out.display()
    );
    Ok(())
}
