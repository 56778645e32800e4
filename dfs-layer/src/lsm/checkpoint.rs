//! Checkpoint manifests and the stores that hold them.
//!
//! A checkpoint is one immutable object, `<dir>chk-<id:020>/<db_id:016x>.cp`, naming every
//! table file of one database's state at that checkpoint; the byte-level format (magic
//! "STRATACP", format version, payload, crc32) is in DESIGN.md §6.7, and only there. Its
//! existence is what makes the checkpoint *confirmed*: it is written (conditionally, never
//! replacing one) only after every file it names is durable.
//!
//! File paths in a checkpoint manifest are relative to the root of the store the manifest is
//! in, unless the file's origin names another store: a checkpoint in the database's own
//! store references `sst/<n>.sst` in place; one in another store references the copies
//! under `<dir>shared/<db_id:016x>-<n:020>.sst` that incremental checkpoints share.
//!
//! Reference rule: a file under `shared/` is deleted only by the database that uploaded it
//! (its name carries that database's id), only when no manifest left in the store names it
//! and that database neither reads it nor is uploading a checkpoint that names it.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;

use super::manifest::{
    frame, put_file_extras, put_file_meta, put_key_groups, put_tables, read_file_extras,
    read_file_meta, read_key_groups, read_tables, unframe, TableDef,
};
use super::version::{FileMeta, NUM_LEVELS};
use crate::coding::{put_bytes, put_u64, put_varint};
use crate::error::{Error, Result};
use crate::storage::Storage;

/// "STRATACP" as little-endian bytes.
pub const CHECKPOINT_MAGIC: u64 = u64::from_le_bytes(*b"STRATACP");
/// Current checkpoint manifest format version.
pub const CHECKPOINT_FORMAT_VERSION: u32 = 1;

/// One table file of a checkpoint: its level and metadata. `meta.origin` is `None` for a
/// file in the manifest's own store at `path`; `meta.number` is the number the writing
/// database gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointFile {
    /// Level in the writing database.
    pub level: usize,
    /// Path in the manifest's store (ignored when `meta.origin` names another store).
    pub path: String,
    /// The file's metadata.
    pub meta: FileMeta,
}

/// Everything a checkpoint records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointManifest {
    /// Identity of the database that wrote it.
    pub db_id: u64,
    /// Checkpoint id (the stream processor's checkpoint number).
    pub checkpoint_id: u64,
    /// Wall-clock time of the checkpoint call, in milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// Every write up to this sequence number is in the files.
    pub last_seq: u64,
    /// The key groups the database owned (first, last), if it was restored for a subset.
    pub key_groups: Option<(u16, u16)>,
    /// State-table definitions by id.
    pub tables: BTreeMap<u32, TableDef>,
    /// The files, by level and table.
    pub files: Vec<CheckpointFile>,
}

impl CheckpointManifest {
    /// Encodes the manifest.
    pub fn encode(&self) -> Vec<u8> {
        let mut p = Vec::new();
        put_u64(&mut p, self.db_id);
        put_varint(&mut p, self.created_ms);
        put_varint(&mut p, self.last_seq);
        put_key_groups(&mut p, self.key_groups);
        put_tables(&mut p, &self.tables);
        put_varint(&mut p, self.files.len() as u64);
        for cf in &self.files {
            let f = &cf.meta;
            put_varint(&mut p, u64::from(f.table_id));
            p.push(cf.level as u8);
            put_bytes(&mut p, cf.path.as_bytes());
            put_file_meta(&mut p, f);
            put_file_extras(&mut p, f);
        }
        frame(
            CHECKPOINT_MAGIC,
            CHECKPOINT_FORMAT_VERSION,
            self.checkpoint_id,
            &p,
        )
    }

    /// Decodes a checkpoint manifest; damage is [`Error::Corruption`] naming `file`.
    pub fn decode(b: &[u8], file: &str) -> Result<CheckpointManifest> {
        let bad = |d: &str| Error::corruption(file, format!("checkpoint manifest: {d}"));
        let (_, checkpoint_id, mut r) = unframe(
            b,
            CHECKPOINT_MAGIC,
            CHECKPOINT_FORMAT_VERSION..=CHECKPOINT_FORMAT_VERSION,
        )
        .map_err(|d| bad(&d))?;
        let m = (|| {
            let mut m = CheckpointManifest {
                db_id: r.u64()?,
                checkpoint_id,
                created_ms: r.varint()?,
                last_seq: r.varint()?,
                key_groups: None,
                tables: BTreeMap::new(),
                files: Vec::new(),
            };
            m.key_groups = read_key_groups(&mut r)?;
            m.tables = read_tables(&mut r)?;
            for _ in 0..r.varint()? {
                let table_id = u32::try_from(r.varint()?).ok()?;
                let level = r.u8()? as usize;
                if level >= NUM_LEVELS {
                    return None;
                }
                let path = String::from_utf8(r.bytes()?.to_vec()).ok()?;
                let meta = read_file_meta(&mut r, table_id)?;
                let meta = read_file_extras(&mut r, meta)?;
                m.files.push(CheckpointFile { level, path, meta });
            }
            (r.remaining() == 0).then_some(m)
        })();
        m.ok_or_else(|| bad("malformed payload"))
    }
}

/// A checkpoint's manifest object: which checkpoint, which database, where.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CheckpointRef {
    /// Checkpoint id.
    pub checkpoint_id: u64,
    /// Identity of the database that wrote it.
    pub db_id: u64,
    /// Path of the manifest object in its store.
    pub path: String,
}

/// A place checkpoints are written to: a store and a directory-like prefix in it (empty,
/// or ending in `/`). Several databases (the instances of one job) may share one.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    /// The store.
    pub storage: Arc<dyn Storage>,
    /// The prefix every object of the checkpoints lives under.
    pub dir: String,
}

/// Directory of in-place checkpoints inside a database's own store.
pub const IN_PLACE_DIR: &str = "checkpoints/";

impl CheckpointStore {
    /// Checkpoints under `dir` of `storage`.
    pub fn new(storage: Arc<dyn Storage>, dir: &str) -> Result<Self> {
        let dir = dir.trim_matches('/');
        let first = dir.split('/').next().unwrap_or("");
        if first == "sst" || first == "manifest" {
            return Err(Error::invalid(format!(
                "checkpoint directory {dir:?} would overlap a database's own objects"
            )));
        }
        Ok(CheckpointStore {
            storage,
            dir: if dir.is_empty() {
                String::new()
            } else {
                format!("{dir}/")
            },
        })
    }

    /// Path of the manifest of checkpoint `id` by database `db_id`.
    pub fn manifest_path(&self, id: u64, db_id: u64) -> String {
        format!("{}chk-{id:020}/{db_id:016x}.cp", self.dir)
    }

    /// Path of the shared copy of file `number` of database `db_id`.
    pub fn shared_path(&self, db_id: u64, number: u64) -> String {
        format!("{}shared/{db_id:016x}-{number:020}.sst", self.dir)
    }

    /// The database id in the name of a shared file, if `path` is one of this store's.
    pub fn shared_owner(&self, path: &str) -> Option<u64> {
        let name = path
            .strip_prefix(&self.dir)?
            .strip_prefix("shared/")?
            .strip_suffix(".sst")?;
        u64::from_str_radix(name.split_once('-')?.0, 16).ok()
    }

    /// Every confirmed checkpoint in the store, by id then database. Objects being written
    /// (anything that is not a complete manifest name) are skipped.
    pub fn list(&self) -> Result<Vec<CheckpointRef>> {
        let mut out: Vec<CheckpointRef> = self
            .storage
            .list(&format!("{}chk-", self.dir))?
            .into_iter()
            .filter_map(|o| {
                let rest = o.path.strip_prefix(&self.dir)?.strip_prefix("chk-")?;
                let (id, name) = rest.split_once('/')?;
                let db = name.strip_suffix(".cp")?;
                if id.len() != 20 || db.len() != 16 {
                    return None;
                }
                Some(CheckpointRef {
                    checkpoint_id: id.parse().ok()?,
                    db_id: u64::from_str_radix(db, 16).ok()?,
                    path: o.path.clone(),
                })
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// The checkpoints with id `id` (one per database that wrote one).
    pub fn find(&self, id: u64) -> Result<Vec<CheckpointRef>> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|r| r.checkpoint_id == id)
            .collect())
    }

    /// Reads a checkpoint manifest. A missing one is [`Error::NotFound`]; a damaged one
    /// [`Error::Corruption`] naming it.
    pub fn read(&self, r: &CheckpointRef) -> Result<CheckpointManifest> {
        let b = self.storage.read_all(&r.path)?;
        let m = CheckpointManifest::decode(&b, &r.path)?;
        if m.checkpoint_id != r.checkpoint_id || m.db_id != r.db_id {
            return Err(Error::corruption(
                &r.path,
                "checkpoint manifest does not match its name",
            ));
        }
        Ok(m)
    }

    /// Writes a manifest, confirming its checkpoint. [`Error::Busy`] if that checkpoint
    /// of that database exists already.
    pub fn write(&self, m: &CheckpointManifest, sync: bool) -> Result<CheckpointRef> {
        let path = self.manifest_path(m.checkpoint_id, m.db_id);
        if !self.storage.put_if_absent(&path, Bytes::from(m.encode()))? {
            return Err(Error::Busy(format!(
                "checkpoint {} of database {:016x} exists already ({path})",
                m.checkpoint_id, m.db_id
            )));
        }
        if sync {
            self.storage.sync(&path)?;
        }
        Ok(CheckpointRef {
            checkpoint_id: m.checkpoint_id,
            db_id: m.db_id,
            path,
        })
    }

    /// Paths (in this store) that the manifests in it reference, or `None` if one cannot be
    /// read (then nothing may be deleted).
    pub fn referenced(&self) -> Result<Option<HashSet<String>>> {
        let mut out = HashSet::new();
        for r in self.list()? {
            let Ok(m) = self.read(&r) else {
                return Ok(None);
            };
            out.extend(
                m.files
                    .into_iter()
                    .filter(|f| f.meta.origin.is_none())
                    .map(|f| f.path),
            );
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsm::version::sample_file;
    use crate::lsm::version::FileOrigin;
    use crate::storage::ObjectStorage;

    fn manifest() -> CheckpointManifest {
        let f = sample_file();
        let mut tables = BTreeMap::new();
        tables.insert(
            2,
            TableDef {
                name: "t".into(),
                options: vec![1, 2],
            },
        );
        CheckpointManifest {
            db_id: 0xABCD,
            checkpoint_id: 42,
            created_ms: 1_700_000_000_000,
            last_seq: 9,
            key_groups: Some((0, 63)),
            tables,
            files: vec![
                CheckpointFile {
                    level: 0,
                    path: "sst/00000000000000000007.sst".into(),
                    meta: f.clone(),
                },
                CheckpointFile {
                    level: 6,
                    path: String::new(),
                    meta: FileMeta {
                        number: 8,
                        origin: Some(Arc::new(FileOrigin {
                            store: "file:///x".into(),
                            path: "sst/1.sst".into(),
                        })),
                        ..f
                    },
                },
            ],
        }
    }

    #[test]
    fn roundtrip_and_reject_damage() {
        let m = manifest();
        let b = m.encode();
        assert_eq!(CheckpointManifest::decode(&b, "c").unwrap(), m);
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 0x10;
            assert!(CheckpointManifest::decode(&bad, "c")
                .unwrap_err()
                .is_corruption());
        }
        assert!(CheckpointManifest::decode(&b[..10], "c").is_err());
    }

    #[test]
    fn store_lists_only_complete_manifests_and_refuses_overwrites() {
        let s: Arc<dyn Storage> = Arc::new(ObjectStorage::memory().unwrap());
        let cs = CheckpointStore::new(s.clone(), "job/cp").unwrap();
        let m = manifest();
        let r = cs.write(&m, false).unwrap();
        assert_eq!(
            r.path,
            "job/cp/chk-00000000000000000042/000000000000abcd.cp"
        );
        assert!(matches!(cs.write(&m, false), Err(Error::Busy(_))));
        s.put(
            "job/cp/chk-00000000000000000043/tmp-upload",
            Bytes::from_static(b"x"),
        )
        .unwrap();
        assert_eq!(cs.list().unwrap(), vec![r.clone()]);
        assert_eq!(cs.read(&r).unwrap(), m);
        assert_eq!(cs.find(42).unwrap().len(), 1);
        assert!(cs.find(41).unwrap().is_empty());
        let refs = cs.referenced().unwrap().unwrap();
        assert!(refs.contains("sst/00000000000000000007.sst") && refs.len() == 1);
        assert_eq!(cs.shared_owner(&cs.shared_path(0xABCD, 5)), Some(0xABCD));
        assert!(CheckpointStore::new(s, "sst").is_err());
    }
}
