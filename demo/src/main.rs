//! The demo job on the embedded default store (a local directory).
//!
//! ```text
//! cargo run --release -p strata-demo -- --help
//! ```

use std::cell::RefCell;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use strata::{Db, Settings};
use strata_demo::{
    committed_rows, csv_line, run, Job, JobConfig, Row, RunConfig, RunEnd, StreamConfig, DAY_MS,
    MINUTE_MS,
};

/// PV/UV (day-long cumulate window, emitted every minute) and DAU with new and returning
/// devices, over a synthetic page-view stream, on Strata keyed state.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Database directory, new or empty (default: a temporary directory, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Events to generate.
    #[arg(long, default_value_t = 500_000)]
    events: u64,
    /// Days of event time (day 0 is history, so later days have returning devices).
    #[arg(long, default_value_t = 2)]
    days: u32,
    /// Distinct pages.
    #[arg(long, default_value_t = 100)]
    pages: u32,
    /// Distinct devices.
    #[arg(long, default_value_t = 100_000)]
    devices: u64,
    /// Distinct channels (the DAU dimension).
    #[arg(long, default_value_t = 8)]
    channels: u32,
    /// Zipf exponent of pages, devices and channels (0 = uniform).
    #[arg(long, default_value_t = 1.0)]
    skew: f64,
    /// Out-of-order bound in seconds (also the watermark delay).
    #[arg(long, default_value_t = 120)]
    delay_secs: u64,
    /// Share of events delayed beyond the bound (dropped as late).
    #[arg(long, default_value_t = 0.001)]
    late_fraction: f64,
    /// Days a device's first/last-seen record lives without activity.
    #[arg(long, default_value_t = 30)]
    ttl_days: u64,
    /// Memory budget in MiB.
    #[arg(long, default_value_t = 64)]
    memory_mib: u64,
    /// Print a summary line every this many minutes of event time (1 = every minute).
    #[arg(long, default_value_t = 60)]
    print_every: u64,
    /// Also write every result row to this CSV file.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Run fault-tolerantly: checkpoint every this many minutes of event time into
    /// `<dir>/checkpoints`, commit rows to `<dir>/output.csv` at each checkpoint, and
    /// continue a job already in `--dir` from its last completed checkpoint.
    #[arg(long)]
    checkpoint_every: Option<u64>,
    /// Parallel instances (each owns a key-group range); a resumed job may use another
    /// number (rescaling). Needs --checkpoint-every.
    #[arg(long, default_value_t = 1)]
    parallelism: u16,
    /// Crash (abort the process) at a random event, then restart from the last completed
    /// checkpoint and finish. Needs --checkpoint-every.
    #[arg(long)]
    fail_at_random: bool,
    /// Crash at this event (the child process of --fail-at-random).
    #[arg(long, hide = true)]
    fail_at_event: Option<u64>,
    /// Stop after this many checkpoints (resume later, with any --parallelism).
    #[arg(long)]
    stop_after_checkpoints: Option<u64>,
}

/// Totals of one minute's rows, for the summary line.
#[derive(Default)]
struct Minute {
    end: u64,
    pv: u64,
    pages: u64,
    top: Option<(u64, u32, u64)>,
    dau: u64,
    new: u64,
    returning: u64,
}

impl Minute {
    fn print(&self, start_ms: u64) -> std::io::Result<()> {
        let since = self.end - start_ms;
        let (day, min) = (
            since.div_ceil(DAY_MS) - 1,
            (since - 1) % DAY_MS / MINUTE_MS + 1,
        );
        let top = self.top.map_or(String::from("-"), |(pv, page, uv)| {
            format!("page {page:>3}: pv {pv:>7} uv {uv:>6}")
        });
        writeln!(
            std::io::stdout().lock(),
            "day {day} {:02}:{:02} | {:>3} pages, pv {:>8} | top {top} | dau {:>7} = new {:>7} + returning {:>7}",
            min / 60,
            min % 60,
            self.pages,
            self.pv,
            self.dau,
            self.new,
            self.returning
        )
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = Args::parse();
    let stream_cfg = StreamConfig {
        events: a.events,
        days: a.days,
        pages: a.pages,
        devices: a.devices,
        channels: a.channels,
        skew: a.skew,
        out_of_order_ms: a.delay_secs * 1000,
        late_fraction: a.late_fraction,
        seed: a.seed,
        ..StreamConfig::default()
    };
    if a.print_every == 0 {
        return Err("--print-every must be at least 1".into());
    }
    let job_cfg = JobConfig {
        watermark_delay_ms: stream_cfg.out_of_order_ms,
        seen_ttl_ms: a
            .ttl_days
            .checked_mul(DAY_MS)
            .ok_or("--ttl-days is too large")?,
        ..JobConfig::default()
    };
    if let Some(minutes) = a.checkpoint_every {
        return run_fault_tolerant(&a, minutes, &stream_cfg, job_cfg);
    }
    if a.fail_at_random || a.stop_after_checkpoints.is_some() || a.parallelism != 1 {
        return Err(
            "--parallelism, --fail-at-random and --stop-after-checkpoints need \
                    --checkpoint-every"
                .into(),
        );
    }
    let stream = stream_cfg.generate()?;
    let (dir, temporary) = match &a.dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("strata-demo-{}", std::process::id())),
            true,
        ),
    };
    // The job keeps its watermark in memory and starts from empty state.
    if std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(format!(
            "{} is not empty; the demo starts from empty state",
            dir.display()
        )
        .into());
    }
    let settings = Settings {
        memory_budget_bytes: a.memory_mib << 20,
        ..Settings::default()
    };
    println!(
        "strata demo: {} events over {} days ({} pages, {} devices, {} channels, skew {}, \
         out of order up to {}s, {:.2}% late) in {}",
        a.events,
        a.days,
        a.pages,
        a.devices,
        a.channels,
        a.skew,
        a.delay_secs,
        a.late_fraction * 100.0,
        dir.display()
    );
    let mut job = Job::open(Db::builder(settings).path(&dir), job_cfg)?;
    let mut csv = match &a.csv {
        Some(p) => {
            let mut f = std::io::BufWriter::new(std::fs::File::create(p)?);
            writeln!(
                f,
                "query,dimension,window_start,window_end,pv,uv,dau,new,returning"
            )?;
            Some(f)
        }
        None => None,
    };
    let mut minute = Minute::default();
    // The first output error (a closed pipe ends the run early and quietly).
    let io_err: RefCell<Option<std::io::Error>> = RefCell::new(None);
    let fail = |e: std::io::Error| {
        io_err.borrow_mut().get_or_insert(e);
    };
    let start_ms = stream_cfg.start_ms;
    let print_every = a.print_every;
    let mut out = |row: Row| {
        let end = match row {
            Row::Pv(r) => r.window_end,
            Row::Dau(r) => r.window_end,
        };
        if end != minute.end {
            if minute.end != 0 && ((minute.end - start_ms) / MINUTE_MS).is_multiple_of(print_every)
            {
                minute.print(start_ms).unwrap_or_else(fail);
            }
            minute = Minute {
                end,
                ..Minute::default()
            };
        }
        match row {
            Row::Pv(r) => {
                minute.pv += r.pv;
                minute.pages += 1;
                if minute.top.is_none_or(|(pv, _, _)| r.pv > pv) {
                    minute.top = Some((r.pv, r.page, r.uv));
                }
            }
            Row::Dau(r) => {
                minute.dau += r.dau;
                minute.new += r.new;
                minute.returning += r.returning;
            }
        }
        let line = csv_line(&row);
        if let Some(f) = csv.as_mut() {
            writeln!(f, "{line}").unwrap_or_else(fail);
        }
    };
    let t0 = Instant::now();
    for ev in stream {
        job.process(&ev, &mut out)?;
        if io_err.borrow().is_some() {
            break;
        }
    }
    let stats = job.finish(&mut out)?;
    let secs = t0.elapsed().as_secs_f64();
    if minute.end != 0 {
        minute.print(start_ms).unwrap_or_else(fail);
    }
    if let Some(f) = csv.as_mut() {
        f.flush().unwrap_or_else(fail);
    }
    let engine_stats = job.db().stats();
    let db = job.db().clone();
    drop(job);
    db.close()?;
    if temporary {
        std::fs::remove_dir_all(&dir)?;
    }
    match io_err.into_inner() {
        Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
        Some(e) => return Err(e.into()),
        None => {}
    }
    println!(
        "\n{} events ({} late, dropped) in {secs:.2}s: {:.0} events/s; {} PV/UV rows, {} DAU rows, \
         {} timers fired, {} checkpoints",
        stats.events,
        stats.late_dropped,
        stats.events as f64 / secs,
        stats.pv_rows,
        stats.dau_rows,
        stats.timers_fired,
        stats.checkpoints
    );
    if let Some(p) = &a.csv {
        println!("every row: {}", p.display());
    }
    println!("\n{engine_stats}");
    Ok(())
}

/// `--checkpoint-every`: the job through `strata_demo::run`, with a crash and restart for
/// `--fail-at-random`.
fn run_fault_tolerant(
    a: &Args,
    minutes: u64,
    stream_cfg: &StreamConfig,
    job_cfg: JobConfig,
) -> Result<(), Box<dyn std::error::Error>> {
    let dir = a
        .dir
        .clone()
        .ok_or("--checkpoint-every needs --dir (the job directory)")?;
    if minutes == 0 {
        return Err("--checkpoint-every must be at least 1 (minute)".into());
    }
    if a.fail_at_random {
        // The crash happens in a child process (this program again), at an event chosen
        // from the seed in the middle half of the stream; this process then restarts the
        // job from its last completed checkpoint.
        let at = a.events / 4
            + (a.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 33) % (a.events / 2).max(1);
        let mut args: Vec<String> = std::env::args()
            .skip(1)
            .filter(|x| x != "--fail-at-random")
            .collect();
        args.extend(["--fail-at-event".to_string(), at.to_string()]);
        let status = std::process::Command::new(std::env::current_exe()?)
            .args(&args)
            .status()?;
        println!("\nattempt 1 crashed at event {at} ({status}); restarting from the last completed checkpoint\n");
    }
    let cfg = RunConfig {
        dir: dir.clone(),
        parallelism: a.parallelism,
        checkpoint_every_ms: minutes * MINUTE_MS,
        settings: Settings {
            memory_budget_bytes: a.memory_mib << 20,
            ..Settings::default()
        },
        job: job_cfg,
        fail_at_event: a.fail_at_event,
        abort_on_failure: true,
        stop_after_checkpoints: a.stop_after_checkpoints,
    };
    println!(
        "strata demo (fault-tolerant): {} events, {} instance(s), a checkpoint every {minutes} \
         min of event time, in {}",
        a.events,
        a.parallelism,
        dir.display()
    );
    let t0 = Instant::now();
    let mut on_checkpoint = |id: u64, rows: usize| {
        println!("checkpoint {id:>4} completed: {rows:>6} rows committed");
    };
    let end = run(&cfg, stream_cfg, &mut on_checkpoint)?;
    let secs = t0.elapsed().as_secs_f64();
    let rows = committed_rows(&dir)?.len();
    match end {
        RunEnd::Finished { late, checkpoints } => println!(
            "\nfinished in {secs:.2}s: {rows} rows in {} ({late} late events dropped, \
             {checkpoints} checkpoints)",
            dir.join("output.csv").display()
        ),
        RunEnd::Stopped { checkpoint } => println!(
            "\nstopped at checkpoint {checkpoint} after {secs:.2}s; {rows} rows committed; \
             resume with the same --dir (any --parallelism)"
        ),
        RunEnd::Crashed { at_event } => println!("\ncrashed at event {at_event}"),
    }
    Ok(())
}
