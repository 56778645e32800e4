//! Deterministic leveled compaction picking, with level targets derived from the last
//! level's size (RocksDB's `level_compaction_dynamic_level_bytes`).
//!
//! Per state table, the last level (6) holds most of the data. Its size sets the targets
//! of the levels above it, each `size_ratio` times smaller, up to the *base level*: the
//! first level (from the bottom) whose target is at most `level_base_bytes`. While a table
//! is small its base level is the last level, so level 0 compacts straight into it and
//! every such compaction is bottommost: deleted and overwritten data is dropped at once
//! instead of sinking through levels above a few small deep files.
//!
//! Scores:
//! - level 0: `files / l0_trigger`;
//! - a non-empty level above the base level: `1 + bytes / level_base_bytes` (it should be
//!   empty; it drains into the next level);
//! - level n from the base level to 5: `bytes / target(n)`;
//! - level 6 is never a source.
//!
//! The (table, level) with the highest score >= 1 is compacted; ties go to the lower table
//! id, then the lower level. Tables already being compacted are skipped. Level 0 compacts
//! all its files into the first level below it that holds overlapping files, or else the
//! base level (levels in between hold nothing in that range, so the order of versions is
//! kept), together with that level's overlapping files. A level n >= 1 compacts one file,
//! chosen round-robin: the first file whose smallest user key is greater than the level's
//! pointer (the largest key of the previous pick), wrapping to the first file, plus the
//! overlapping files of level n+1.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use super::version::{FileMeta, Levels, Version, NUM_LEVELS};

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
    /// Output level: `level + 1`; for level 0, the first level holding overlapping files,
    /// or else the base level.
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

/// The base level of a table and the target sizes of the levels from it to the last
/// (entries above the base level are 0): the last level's target is its size, each level
/// above it `size_ratio` times smaller, up to the first whose target is at most
/// `level_base_bytes`.
pub fn level_targets(opts: &CompactionOptions, lv: &Levels) -> (usize, [u64; NUM_LEVELS]) {
    let mut targets = [0u64; NUM_LEVELS];
    let mut base = NUM_LEVELS - 1;
    let mut t = lv.level_bytes(base);
    targets[base] = t;
    while base > 1 && t > opts.level_base_bytes {
        t /= opts.size_ratio.max(2);
        base -= 1;
        targets[base] = t.max(1);
    }
    (base, targets)
}

/// Picks the next compaction, or `None` if every score is below 1.
pub fn pick(
    version: &Version,
    opts: &CompactionOptions,
    pointers: &BTreeMap<(u32, usize), Vec<u8>>,
    busy_tables: &HashSet<u32>,
) -> Option<CompactionPick> {
    // (score, table, level, the table's base level)
    let mut best: Option<(f64, u32, usize, usize)> = None;
    for (&t, lv) in &version.tables {
        if busy_tables.contains(&t) {
            continue;
        }
        let (base, targets) = level_targets(opts, lv);
        for (level, &target) in targets.iter().enumerate().take(NUM_LEVELS - 1) {
            let bytes = lv.level_bytes(level) as f64;
            let score = if level == 0 {
                lv.files[0].len() as f64 / opts.l0_trigger.max(1) as f64
            } else if level < base {
                if lv.files[level].is_empty() {
                    0.0
                } else {
                    1.0 + bytes / opts.level_base_bytes.max(1) as f64
                }
            } else {
                bytes / target as f64
            };
            if score >= 1.0 && best.is_none_or(|(b, ..)| score > b) {
                best = Some((score, t, level, base));
            }
        }
    }
    let (score, table_id, level, base) = best?;
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
    let output_level = if level == 0 {
        (1..base)
            .find(|&l| !lv.overlapping(l, &lo, &hi).is_empty())
            .unwrap_or(base)
    } else {
        level + 1
    };
    let overlapping = lv.overlapping(output_level, &lo, &hi);
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
    let bottommost = (output_level + 1..NUM_LEVELS).all(|l| lv.overlapping(l, lo2, hi2).is_empty());
    Some(CompactionPick {
        table_id,
        level,
        output_level,
        inputs,
        overlapping,
        bottommost,
        score,
    })
}
