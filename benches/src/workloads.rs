//! Flink-shaped workloads, keyed like Flink's RocksDB backend: key group, key, namespace,
//! then the map user key.

use std::time::Instant;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::engines::{Engine, StateTable};
use crate::{flink_key, mix, peak_rss_bytes, Rng, Zipfian};

/// Every workload, in the order the comparison runs them.
pub const WORKLOADS: &[&str] = &[
    "value",
    "value-large",
    "list",
    "map",
    "ycsb-uniform",
    "ycsb-zipfian",
];

/// Sizes and concurrency of one run.
#[derive(Debug, Clone, Copy)]
pub struct RunConfig {
    /// Records loaded.
    pub n: u64,
    /// Operations per measured phase after the load.
    pub ops: u64,
    /// Threads issuing operations.
    pub threads: usize,
    /// Show a progress bar for long phases.
    pub progress: bool,
}

/// One measured phase.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PhaseResult {
    /// Workload name.
    pub workload: String,
    /// Phase name.
    pub phase: String,
    /// Engine name.
    pub engine: String,
    /// Threads.
    pub threads: usize,
    /// Records loaded.
    pub n: u64,
    /// Operations in the phase.
    pub ops: u64,
    /// Wall time in seconds.
    pub secs: f64,
    /// Operations per second.
    pub ops_per_sec: f64,
    /// Median latency in microseconds.
    pub p50_us: f64,
    /// 99th percentile latency in microseconds.
    pub p99_us: f64,
    /// 99.9th percentile latency in microseconds.
    pub p999_us: f64,
    /// Peak RSS of the process so far, bytes.
    pub peak_rss_bytes: u64,
    /// Bytes in the engine's directory after the phase.
    pub disk_bytes: u64,
}

struct Ctx<'a> {
    engine: &'a dyn Engine,
    cfg: RunConfig,
    workload: &'a str,
    out: &'a mut dyn FnMut(PhaseResult),
}

impl Ctx<'_> {
    /// The flush between loading and reading that every checkpoint does, timed as a phase
    /// of one operation (its ops/s is 1 / seconds).
    fn flush(&mut self) {
        self.phase("flush", 1, &|e, _, _| e.flush());
    }

    /// Runs `count` operations of `op(engine, i, rng)` split over the threads, timing each.
    fn phase(&mut self, name: &str, count: u64, op: &(dyn Fn(&dyn Engine, u64, &mut Rng) + Sync)) {
        let threads = self.cfg.threads.max(1) as u64;
        let bar = (self.cfg.progress && count >= 1_000_000).then(|| {
            let b = indicatif::ProgressBar::new(count);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix:>28} [{bar:40}] {pos}/{len} {per_sec} eta {eta}",
                )
                .expect("template")
                .progress_chars("=> "),
            );
            b.set_prefix(format!("{} {} {name}", self.engine.name(), self.workload));
            b
        });
        let start = Instant::now();
        let engine = self.engine;
        let hists: Vec<Histogram<u64>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let bar = bar.clone();
                    s.spawn(move || {
                        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
                            .expect("histogram");
                        let mut rng = Rng::new(t * 7919 + count);
                        let (lo, hi) = (count * t / threads, count * (t + 1) / threads);
                        for i in lo..hi {
                            let t0 = Instant::now();
                            op(engine, i, &mut rng);
                            h.saturating_record(t0.elapsed().as_nanos() as u64);
                            if (i - lo) % 65_536 == 65_535 {
                                if let Some(b) = &bar {
                                    b.inc(65_536);
                                }
                            }
                        }
                        h
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("worker"))
                .collect()
        });
        let secs = start.elapsed().as_secs_f64();
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
        for x in &hists {
            h.add(x).expect("same bounds");
        }
        let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        (self.out)(PhaseResult {
            workload: self.workload.to_string(),
            phase: name.to_string(),
            engine: self.engine.name().to_string(),
            threads: self.cfg.threads,
            n: self.cfg.n,
            ops: count,
            secs,
            ops_per_sec: count as f64 / secs,
            p50_us: us(0.5),
            p99_us: us(0.99),
            p999_us: us(0.999),
            peak_rss_bytes: peak_rss_bytes().unwrap_or(0),
            disk_bytes: crate::dir_bytes(self.engine.dir()),
        });
    }
}

fn small_key(i: u64) -> Vec<u8> {
    let id = mix(i);
    flink_key((mix(id ^ 0x5bd1) % 128) as u16, id, &[0], 128)
}

fn large_key(i: u64) -> Vec<u8> {
    let id = mix(i);
    let ns = (1_700_000_000_000u64 + (id % 1440) * 60_000).to_be_bytes();
    flink_key((mix(id ^ 0x5bd1) % 32768) as u16, id, &ns, 32768)
}

fn large_value(i: u64, round: u64) -> Vec<u8> {
    let len = 8 + (mix(i) % 93) as usize;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        v.extend_from_slice(&(i ^ round).to_le_bytes());
    }
    v.truncate(len);
    v
}

fn value_state(cx: &mut Ctx<'_>, large: bool) {
    let n = cx.cfg.n;
    let key = move |i| if large { large_key(i) } else { small_key(i) };
    let val = move |i: u64, r: u64| {
        if large {
            large_value(i, r)
        } else {
            (i ^ r).to_le_bytes().to_vec()
        }
    };
    let t = StateTable::Value;
    cx.phase("load", n, &|e, i, _| e.put(t, &key(i), &val(i, 0)));
    cx.flush();
    cx.phase("get", cx.cfg.ops, &|e, _, r| {
        std::hint::black_box(e.get(t, &key(r.below(n))));
    });
    cx.phase("update", cx.cfg.ops, &|e, _, r| {
        let k = key(r.below(n));
        let old = e.get(t, &k).unwrap_or_default();
        let v = val(old.first().copied().unwrap_or(0) as u64, 1);
        e.put(t, &k, &v);
    });
    cx.phase("add", cx.cfg.ops, &|e, i, _| {
        e.put(t, &key(n + i), &val(n + i, 0))
    });
    cx.phase("delete", cx.cfg.ops, &|e, _, r| {
        e.delete(t, &key(r.below(n)))
    });
}

fn list_state(cx: &mut Ctx<'_>) {
    let lists = (cx.cfg.n / 10).max(1);
    let t = StateTable::List;
    cx.phase("append", cx.cfg.n, &|e, i, _| {
        e.merge(t, &small_key(mix(i) % lists), &i.to_le_bytes())
    });
    cx.flush();
    cx.phase("get", cx.cfg.ops, &|e, _, r| {
        std::hint::black_box(e.get(t, &small_key(r.below(lists))));
    });
    cx.phase("get-iterate", cx.cfg.ops, &|e, _, r| {
        let v = e.get(t, &small_key(r.below(lists))).unwrap_or_default();
        std::hint::black_box(v.split(|b| *b == b',').map(|el| el.len()).sum::<usize>());
    });
}

fn map_entry(group: u64, uk: u64) -> Vec<u8> {
    let mut k = small_key(group);
    k.extend_from_slice(&uk.to_be_bytes());
    k
}

fn map_state(cx: &mut Ctx<'_>) {
    let groups = (cx.cfg.n / 10).max(1);
    let t = StateTable::Map;
    cx.phase("put", cx.cfg.n, &|e, i, _| {
        e.put(t, &map_entry(i / 10, i % 10), &i.to_le_bytes())
    });
    cx.flush();
    cx.phase("get", cx.cfg.ops, &|e, _, r| {
        std::hint::black_box(e.get(t, &map_entry(r.below(groups), r.below(10))));
    });
    cx.phase("contains", cx.cfg.ops, &|e, _, r| {
        std::hint::black_box(e.get(t, &map_entry(r.below(groups), r.below(10))).is_some());
    });
    cx.phase("iterate", cx.cfg.ops / 4, &|e, _, r| {
        let mut sum = 0usize;
        e.scan_prefix(t, &small_key(r.below(groups)), &mut |k, v| {
            sum += k.len() + v.len()
        });
        std::hint::black_box(sum);
    });
    cx.phase("remove", cx.cfg.ops, &|e, _, r| {
        e.delete(t, &map_entry(r.below(groups), r.below(10)))
    });
}

fn ycsb(cx: &mut Ctx<'_>, zipfian: bool) {
    let n = cx.cfg.n;
    let t = StateTable::Value;
    let zipf = zipfian.then(|| Zipfian::new(n));
    let pick = |r: &mut Rng| match &zipf {
        Some(z) => z.next(r),
        None => r.below(n),
    };
    cx.phase("load", n, &|e, i, _| e.put(t, &large_key(i), &[7u8; 100]));
    cx.flush();
    // (name, read %, update %, read-modify-write %)
    for (name, read, update) in [("A", 50, 50), ("B", 95, 5), ("C", 100, 0), ("F", 50, 0)] {
        cx.phase(name, cx.cfg.ops, &|e, _, r| {
            let k = large_key(pick(r));
            let dice = r.below(100);
            if dice < read {
                std::hint::black_box(e.get(t, &k));
            } else if dice < read + update {
                e.put(t, &k, &[8u8; 100]);
            } else {
                let mut v = e.get(t, &k).unwrap_or_default();
                v.resize(100, 0);
                v[0] = v[0].wrapping_add(1);
                e.put(t, &k, &v);
            }
        });
    }
}

/// Runs `workload` against `engine`, reporting each phase to `out`.
pub fn run(
    workload: &str,
    engine: &dyn Engine,
    cfg: RunConfig,
    out: &mut dyn FnMut(PhaseResult),
) -> Result<(), String> {
    let mut cx = Ctx {
        engine,
        cfg,
        workload,
        out,
    };
    match workload {
        "value" => value_state(&mut cx, false),
        "value-large" => value_state(&mut cx, true),
        "list" => list_state(&mut cx),
        "map" => map_state(&mut cx),
        "ycsb-uniform" => ycsb(&mut cx, false),
        "ycsb-zipfian" => ycsb(&mut cx, true),
        other => {
            return Err(format!(
                "unknown workload {other:?}; known: {}",
                WORKLOADS.join(", ")
            ))
        }
    }
    Ok(())
}
