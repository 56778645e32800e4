//! Result tables: JSON lines, a Markdown table with ratios, and an SVG chart.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use crate::workloads::PhaseResult;

/// A row of the comparison: one phase at one thread count, with each engine's result.
#[derive(Debug, Clone)]
pub struct Row {
    /// Workload.
    pub workload: String,
    /// Phase.
    pub phase: String,
    /// Threads.
    pub threads: usize,
    /// Strata's result.
    pub strata: Option<PhaseResult>,
    /// RocksDB's result: the fastest of its configurations on this row (each baseline at
    /// its best); its `engine` names the configuration.
    pub rocksdb: Option<PhaseResult>,
}

impl Row {
    /// Strata's throughput over RocksDB's.
    pub fn ratio(&self) -> Option<f64> {
        Some(self.strata.as_ref()?.ops_per_sec / self.rocksdb.as_ref()?.ops_per_sec)
    }
}

/// Groups results into rows, in the order they were produced.
pub fn rows(results: &[PhaseResult]) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    for r in results {
        let pos = rows
            .iter()
            .position(|x| x.workload == r.workload && x.phase == r.phase && x.threads == r.threads);
        let i = pos.unwrap_or_else(|| {
            rows.push(Row {
                workload: r.workload.clone(),
                phase: r.phase.clone(),
                threads: r.threads,
                strata: None,
                rocksdb: None,
            });
            rows.len() - 1
        });
        match r.engine.as_str() {
            "strata" => rows[i].strata = Some(r.clone()),
            _ => {
                let best = &mut rows[i].rocksdb;
                if best.as_ref().is_none_or(|b| r.ops_per_sec > b.ops_per_sec) {
                    *best = Some(r.clone());
                }
            }
        }
    }
    rows
}

fn cell(r: &Option<PhaseResult>) -> String {
    match r {
        Some(r) => format!(
            "{:.0} | {:.1}/{:.1}/{:.1} | {:.0} | {:.0}",
            r.ops_per_sec,
            r.p50_us,
            r.p99_us,
            r.p999_us,
            r.peak_rss_bytes as f64 / 1048576.0,
            r.disk_bytes as f64 / 1048576.0
        ),
        None => "- | - | - | -".into(),
    }
}

/// The Markdown table.
pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| workload | phase | thr | N | Strata ops/s | Strata p50/p99/p99.9 µs | Strata peak RSS MiB | Strata disk MiB | RocksDB best config | RocksDB ops/s | RocksDB p50/p99/p99.9 µs | RocksDB peak RSS MiB | RocksDB disk MiB | ratio |"
    );
    let _ = writeln!(
        s,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for r in rows {
        let n = r.strata.as_ref().or(r.rocksdb.as_ref()).map_or(0, |x| x.n);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.workload,
            r.phase,
            r.threads,
            n,
            cell(&r.strata),
            r.rocksdb.as_ref().map_or("-", |x| x.engine.as_str()),
            cell(&r.rocksdb),
            r.ratio().map_or("-".into(), |x| format!("{x:.2}x"))
        );
    }
    s
}

/// Writes `results.jsonl`, `results.md` and `ratios.svg` into `dir`.
pub fn write(dir: &Path, results: &[PhaseResult]) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let mut jsonl = String::new();
    for r in results {
        jsonl.push_str(&serde_json::to_string(r).map_err(|e| e.to_string())?);
        jsonl.push('\n');
    }
    std::fs::write(dir.join("results.jsonl"), jsonl).map_err(|e| e.to_string())?;
    let rows = rows(results);
    std::fs::write(dir.join("results.md"), markdown(&rows)).map_err(|e| e.to_string())?;
    chart(&dir.join("ratios.svg"), &rows)
}

fn chart(path: &Path, rows: &[Row]) -> Result<(), String> {
    let bars: Vec<(String, f64)> = rows
        .iter()
        .filter_map(|r| {
            Some((
                format!("{} {} t{}", r.workload, r.phase, r.threads),
                r.ratio()?,
            ))
        })
        .collect();
    if bars.is_empty() {
        return Ok(());
    }
    let height = 60 + 18 * bars.len() as u32;
    let root = SVGBackend::new(path, (900, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let max = bars.iter().map(|b| b.1).fold(1.0f64, f64::max) * 1.1;
    let mut c = ChartBuilder::on(&root)
        .caption(
            "Strata ops/s ÷ RocksDB ops/s (1.0 = parity)",
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(220)
        .build_cartesian_2d(0.0..max, (0..bars.len()).into_segmented())
        .map_err(|e| e.to_string())?;
    let labels: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
    c.configure_mesh()
        .y_labels(bars.len())
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .draw()
        .map_err(|e| e.to_string())?;
    c.draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
        let color = if *v >= 1.0 {
            GREEN.mix(0.7)
        } else {
            RED.mix(0.7)
        };
        Rectangle::new(
            [
                (0.0, SegmentValue::Exact(i)),
                (*v, SegmentValue::Exact(i + 1)),
            ],
            color.filled(),
        )
    }))
    .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}
