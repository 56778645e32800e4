//! Versions: which table files make up each level of each state table, and the edits that
//! move from one version to the next.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::key;

/// Number of levels per state table.
pub const NUM_LEVELS: usize = 7;

/// Metadata of one table file, as recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// Unique file number (names the object and keys the block cache).
    pub number: u64,
    /// State table the file belongs to.
    pub table_id: u32,
    /// Size in bytes.
    pub size: u64,
    /// Entries in the file.
    pub entries: u64,
    /// Tombstones in the file.
    pub deletes: u64,
    /// Smallest sequence number in the file.
    pub min_seq: u64,
    /// Largest sequence number in the file.
    pub max_seq: u64,
    /// Smallest internal key.
    pub smallest: Vec<u8>,
    /// Largest internal key.
    pub largest: Vec<u8>,
}

impl FileMeta {
    /// Smallest user key.
    pub fn smallest_user(&self) -> &[u8] {
        key::user_key(&self.smallest)
    }
    /// Largest user key.
    pub fn largest_user(&self) -> &[u8] {
        key::user_key(&self.largest)
    }
    /// True if the file's user-key range intersects `[lo, hi]`.
    pub fn overlaps(&self, lo: &[u8], hi: &[u8]) -> bool {
        self.smallest_user() <= hi && self.largest_user() >= lo
    }
}

/// Storage path of table file `number`.
pub fn table_path(number: u64) -> String {
    format!("sst/{number:020}.sst")
}

/// The levels of one state table. Level 0 is ordered newest first by file number, which is
/// flush order (files may overlap);
/// levels 1.. are ordered by smallest key and never overlap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Levels {
    /// Files per level.
    pub files: [Vec<Arc<FileMeta>>; NUM_LEVELS],
}

impl Levels {
    /// Total bytes in `level`.
    pub fn level_bytes(&self, level: usize) -> u64 {
        self.files[level].iter().map(|f| f.size).sum()
    }

    /// Files of `level` overlapping the user-key range `[lo, hi]`.
    pub fn overlapping(&self, level: usize, lo: &[u8], hi: &[u8]) -> Vec<Arc<FileMeta>> {
        self.files[level]
            .iter()
            .filter(|f| f.overlaps(lo, hi))
            .cloned()
            .collect()
    }
}

/// An immutable set of files. Readers hold an `Arc<Version>` so the files they read are not
/// deleted under them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Version {
    /// Levels per state table id.
    pub tables: BTreeMap<u32, Levels>,
}

impl Version {
    /// The levels of `table_id` (empty if it has no files).
    pub fn levels(&self, table_id: u32) -> Option<&Levels> {
        self.tables.get(&table_id)
    }

    /// Every file in the version.
    pub fn all_files(&self) -> impl Iterator<Item = (u32, usize, &Arc<FileMeta>)> {
        self.tables.iter().flat_map(|(&t, lv)| {
            lv.files
                .iter()
                .enumerate()
                .flat_map(move |(l, fs)| fs.iter().map(move |f| (t, l, f)))
        })
    }

    /// Applies an edit, producing the next version.
    pub fn apply(&self, edit: &VersionEdit) -> Version {
        let mut v = self.clone();
        for (t, level, number) in &edit.deleted {
            if let Some(lv) = v.tables.get_mut(t) {
                lv.files[*level].retain(|f| f.number != *number);
            }
        }
        for (level, f) in &edit.added {
            let lv = v.tables.entry(f.table_id).or_default();
            lv.files[*level].push(Arc::new(f.clone()));
        }
        for lv in v.tables.values_mut() {
            lv.files[0].sort_by_key(|f| std::cmp::Reverse(f.number));
            for files in lv.files.iter_mut().skip(1) {
                files.sort_by(|a, b| key::compare(&a.smallest, &b.smallest));
            }
        }
        v.tables
            .retain(|_, lv| lv.files.iter().any(|f| !f.is_empty()));
        v
    }
}

/// A change to the file set: files added (with their level) and removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionEdit {
    /// Files added, with the level they go to.
    pub added: Vec<(usize, FileMeta)>,
    /// Files removed: (table id, level, file number).
    pub deleted: Vec<(u32, usize, u64)>,
}
