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
    /// crc32 of the whole file as written (0: unknown, a file of format version 1 or 2
    /// manifests). Checked when the file is copied into a checkpoint.
    pub checksum: u32,
    /// Where the file lives if this database does not own it (a file of a checkpoint it was
    /// restored from); `None` for the database's own `sst/<number>.sst`. A foreign file is
    /// read in place and never deleted by this database.
    pub origin: Option<Arc<FileOrigin>>,
    /// Only the keys this filter admits are part of the database (a restore of a key-group
    /// subset); the others are skipped by every read and dropped by compaction.
    pub filter: Option<KeyGroupFilter>,
}

/// The location of a table file another database (or a checkpoint) owns.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileOrigin {
    /// The store's location ([`crate::Storage::location`]).
    pub store: String,
    /// The object's path in that store.
    pub path: String,
}

/// Admits the user keys whose key group, a big-endian field of `width` (1 or 2) bytes at
/// byte `offset` of the key, lies in `lo..=hi`. Keys too short to hold the field are not
/// admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyGroupFilter {
    /// Byte offset of the key-group field.
    pub offset: u16,
    /// Width of the field: 1 or 2 bytes.
    pub width: u8,
    /// First admitted key group.
    pub lo: u16,
    /// Last admitted key group.
    pub hi: u16,
}

impl KeyGroupFilter {
    /// The key group of `user_key`, if it is long enough to hold one.
    pub fn group_of(&self, user_key: &[u8]) -> Option<u16> {
        let o = usize::from(self.offset);
        match self.width {
            1 => user_key.get(o).map(|&b| u16::from(b)),
            _ => user_key
                .get(o..o + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]])),
        }
    }

    /// True if `user_key` belongs to the admitted key groups.
    pub fn admits(&self, user_key: &[u8]) -> bool {
        self.group_of(user_key)
            .is_some_and(|g| (self.lo..=self.hi).contains(&g))
    }

    /// The filter admitting what both admit; `None` if that is nothing. Filters over
    /// different fields cannot be combined: `Err`.
    pub fn intersect(&self, other: &KeyGroupFilter) -> Result<Option<KeyGroupFilter>, String> {
        if (self.offset, self.width) != (other.offset, other.width) {
            return Err(format!(
                "key-group fields differ: {} bytes at {} and {} bytes at {}",
                self.width, self.offset, other.width, other.offset
            ));
        }
        let (lo, hi) = (self.lo.max(other.lo), self.hi.min(other.hi));
        Ok((lo <= hi).then_some(KeyGroupFilter { lo, hi, ..*self }))
    }

    /// The field's encoding of group `g`.
    fn encode(&self, g: u16) -> Vec<u8> {
        if self.width == 1 {
            vec![g as u8]
        } else {
            g.to_be_bytes().to_vec()
        }
    }

    /// For a field at offset 0, the admitted keys are the user-key range
    /// `[start, end)` (`end` `None`: unbounded); `None` for a field elsewhere.
    pub fn key_range(&self) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
        if self.offset != 0 {
            return None;
        }
        let max = if self.width == 1 { 0xFF } else { 0xFFFF };
        let end = (self.hi < max).then(|| self.encode(self.hi + 1));
        Some((self.encode(self.lo), end))
    }
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
    /// Where the file is read from: its origin's path, or `sst/<number>.sst`.
    pub fn path(&self) -> String {
        match &self.origin {
            Some(o) => o.path.clone(),
            None => table_path(self.number),
        }
    }

    /// The file restricted to the key groups `filter` admits (intersected with any filter
    /// it has): its key bounds narrowed when the field leads the key, `None` if it can hold
    /// no admitted key. `Err` if `filter` is over another field than the file's filter.
    pub fn restricted(mut self, filter: KeyGroupFilter) -> Result<Option<FileMeta>, String> {
        let filter = match &self.filter {
            Some(old) => match old.intersect(&filter)? {
                Some(f) => f,
                None => return Ok(None),
            },
            None => filter,
        };
        if let Some((start, end)) = filter.key_range() {
            let past_end = end.as_deref().is_some_and(|e| self.smallest_user() >= e);
            if self.largest_user() < start.as_slice() || past_end {
                return Ok(None);
            }
            if self.smallest_user() < start.as_slice() {
                // The highest trailer sorts first among a user key's versions.
                self.smallest = key::internal_key(&start, key::MAX_SEQ, key::ValueKind::Merge);
            }
            if let Some(e) = end.filter(|e| self.largest_user() >= e.as_slice()) {
                // An exclusive bound: no admitted key is `e` or above it.
                self.largest = key::internal_key(&e, 0, key::ValueKind::Delete);
            }
        }
        self.filter = Some(filter);
        Ok(Some(self))
    }

    /// True if the database owns the file (it may delete it once unreferenced).
    pub fn is_owned(&self) -> bool {
        self.origin.is_none()
    }

    /// True if the file's user-key range intersects `[lo, hi]`.
    pub fn overlaps(&self, lo: &[u8], hi: &[u8]) -> bool {
        self.smallest_user() <= hi && self.largest_user() >= lo
    }
}

/// A file's metadata for unit tests of the formats that record it.
#[cfg(test)]
pub(crate) fn sample_file() -> FileMeta {
    use crate::key::{internal_key, ValueKind};
    FileMeta {
        number: 7,
        table_id: 2,
        size: 1234,
        entries: 10,
        deletes: 1,
        min_seq: 3,
        max_seq: 9,
        smallest: internal_key(b"a", 9, ValueKind::Put),
        largest: internal_key(b"z", 3, ValueKind::Delete),
        checksum: 0xDEAD_BEEF,
        origin: None,
        filter: None,
    }
}

/// Storage path of table file `number`.
pub fn table_path(number: u64) -> String {
    format!("sst/{number:020}.sst")
}

/// The file number of an own table file's path (the inverse of [`table_path`]).
pub fn table_number(path: &str) -> Option<u64> {
    path.strip_prefix("sst/")?
        .strip_suffix(".sst")?
        .parse()
        .ok()
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
