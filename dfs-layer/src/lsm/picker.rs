//! Deterministic leveled compaction picking.
//!
//! Scores, per state table:
//! - level 0: `files / l0_trigger`;
//! - level n in 1..=5: `bytes / (level_base_bytes * size_ratio^(n-1))`;
//! - level 6 (the last) is never a source.
//!
//! The (table, level) with the highest score >= 1 is compacted; ties go to the lower table
//! id, then the lower level. Tables already being compacted are skipped. Level 0 compacts all
//! its files into level 1 together with every level-1 file overlapping their key range. A
//! level n >= 1 compacts one file, chosen round-robin: the first file whose smallest user key
//! is greater than the level's pointer (the largest key of the previous pick), wrapping to
//! the first file, plus the overlapping files of level n+1.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use super::version::{FileMeta, Version, NUM_LEVELS};

/// Compaction shape settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CompactionOptions {
    /// Level-0 file count that triggers a compaction.
    pub l0_trigger: usize,
    /// Level-0 file count at which flushes (and so writers) stall until compaction catches up.
    pub l0_stop: usize,
    /// Target size of level 1.
    pub level_base_bytes: u64,
    /// Size ratio between adjacent levels.
    pub size_ratio: u64,
    /// Target size of each compaction output file.
    pub target_file_bytes: u64,
}

impl Default for CompactionOptions {
    fn default() -> Self {
        CompactionOptions {
            l0_trigger: 4,
            l0_stop: 20,
            level_base_bytes: 64 << 20,
            size_ratio: 10,
            target_file_bytes: 8 << 20,
        }
    }
}

/// A chosen compaction.
#[derive(Debug, Clone, PartialEq)]
pub struct CompactionPick {
    /// State table.
    pub table_id: u32,
    /// Source level.
    pub level: usize,
    /// Output level (`level + 1`).
    pub output_level: usize,
    /// Files taken from `level`.
    pub inputs: Vec<Arc<FileMeta>>,
    /// Files of `output_level` overlapping the inputs.
    pub overlapping: Vec<Arc<FileMeta>>,
    /// No deeper level holds data in the compacted range.
    pub bottommost: bool,
    /// The score that won.
    pub score: f64,
}

/// Target size of `level` (>= 1).
pub fn level_target(opts: &CompactionOptions, level: usize) -> u64 {
    let mut t = opts.level_base_bytes;
    for _ in 1..level {
        t = t.saturating_mul(opts.size_ratio);
    }
    t
}

/// Picks the next compaction, or `None` if every score is below 1.
pub fn pick(
    version: &Version,
    opts: &CompactionOptions,
    pointers: &BTreeMap<(u32, usize), Vec<u8>>,
    busy_tables: &HashSet<u32>,
) -> Option<CompactionPick> {
    let mut best: Option<(f64, u32, usize)> = None;
    for (&t, lv) in &version.tables {
        if busy_tables.contains(&t) {
            continue;
        }
        for level in 0..NUM_LEVELS - 1 {
            let score = if level == 0 {
                lv.files[0].len() as f64 / opts.l0_trigger.max(1) as f64
            } else {
                lv.level_bytes(level) as f64 / level_target(opts, level) as f64
            };
            if score >= 1.0 && best.is_none_or(|(b, _, _)| score > b) {
                best = Some((score, t, level));
            }
        }
    }
    let (score, table_id, level) = best?;
    let lv = version.levels(table_id)?;
    let inputs: Vec<Arc<FileMeta>> = if level == 0 {
        lv.files[0].clone()
    } else {
        let files = &lv.files[level];
        let chosen = pointers
            .get(&(table_id, level))
            .and_then(|p| files.iter().find(|f| f.smallest_user() > p.as_slice()))
            .unwrap_or(&files[0]);
        vec![chosen.clone()]
    };
    let lo = inputs.iter().map(|f| f.smallest_user()).min()?.to_vec();
    let hi = inputs.iter().map(|f| f.largest_user()).max()?.to_vec();
    let overlapping = lv.overlapping(level + 1, &lo, &hi);
    let lo2 = overlapping
        .iter()
        .map(|f| f.smallest_user())
        .chain([lo.as_slice()])
        .min()?;
    let hi2 = overlapping
        .iter()
        .map(|f| f.largest_user())
        .chain([hi.as_slice()])
        .max()?;
    let bottommost = (level + 2..NUM_LEVELS).all(|l| lv.overlapping(l, lo2, hi2).is_empty());
    Some(CompactionPick {
        table_id,
        level,
        output_level: level + 1,
        inputs,
        overlapping,
        bottommost,
        score,
    })
}
