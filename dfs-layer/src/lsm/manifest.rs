//! The manifest: the durable record of which files make up each level, the state-table
//! definitions, and the counters recovery needs.
//!
//! Each commit writes one whole, immutable object `manifest/MANIFEST-<generation:020>`
//! (object stores have no append), then deletes generations older than the previous one.
//! The byte-level format (magic "STRATAMF", format version, payload, crc32) is specified in
//! DESIGN.md §6.4, and only there.
//!
//! Recovery reads the highest generation. If it fails its checksum (a write torn by a crash:
//! its commit was never acknowledged), recovery falls back to the previous generation, which
//! every commit keeps until the next one succeeds, and reports the fallback. Anything else
//! that fails validation is corruption.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use super::version::{FileMeta, Version, VersionEdit, NUM_LEVELS};
use crate::coding::{put_bytes, put_u32, put_u64, put_varint, Reader};
use crate::error::{Error, Result};
use crate::storage::Storage;

/// "STRATAMF" as little-endian bytes.
pub const MANIFEST_MAGIC: u64 = u64::from_le_bytes(*b"STRATAMF");
/// Current manifest format version.
pub const MANIFEST_FORMAT_VERSION: u32 = 1;
const HEADER_LEN: usize = 24;

/// A state table's persisted definition. `options` is opaque to this layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDef {
    /// Unique name.
    pub name: String,
    /// Encoded options, owned by the engine.
    pub options: Vec<u8>,
}

/// Everything the manifest records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestState {
    /// Next file number to hand out.
    pub next_file_number: u64,
    /// Every write with a sequence number up to this one is in table files.
    pub last_seq: u64,
    /// WAL files numbered below this are obsolete.
    pub log_number: u64,
    /// State-table definitions by id.
    pub tables: BTreeMap<u32, TableDef>,
    /// The current files.
    pub version: Version,
}

impl ManifestState {
    /// Encodes the state as manifest generation `generation`.
    pub fn encode(&self, generation: u64) -> Vec<u8> {
        let mut p = Vec::new();
        put_varint(&mut p, self.next_file_number);
        put_varint(&mut p, self.last_seq);
        put_varint(&mut p, self.log_number);
        put_varint(&mut p, self.tables.len() as u64);
        for (id, def) in &self.tables {
            put_varint(&mut p, u64::from(*id));
            put_bytes(&mut p, def.name.as_bytes());
            put_bytes(&mut p, &def.options);
        }
        let files: Vec<_> = self.version.all_files().collect();
        put_varint(&mut p, files.len() as u64);
        for (t, level, f) in files {
            put_varint(&mut p, u64::from(t));
            p.push(level as u8);
            for v in [f.number, f.size, f.entries, f.deletes, f.min_seq, f.max_seq] {
                put_varint(&mut p, v);
            }
            put_bytes(&mut p, &f.smallest);
            put_bytes(&mut p, &f.largest);
        }
        let mut out = Vec::with_capacity(p.len() + HEADER_LEN + 4);
        put_u64(&mut out, MANIFEST_MAGIC);
        put_u32(&mut out, MANIFEST_FORMAT_VERSION);
        put_u64(&mut out, generation);
        put_u32(&mut out, p.len() as u32);
        out.extend_from_slice(&p);
        let crc = crc32fast::hash(&out);
        put_u32(&mut out, crc);
        out
    }

    /// Decodes a manifest object, returning its generation and state.
    pub fn decode(b: &[u8], file: &str) -> Result<(u64, ManifestState)> {
        let bad = |d: &str| Error::corruption(file, format!("manifest: {d}"));
        if b.len() < HEADER_LEN + 4 {
            return Err(bad("truncated"));
        }
        let (body, crc) = b.split_at(b.len() - 4);
        if crc32fast::hash(body).to_le_bytes() != crc {
            return Err(bad("checksum mismatch"));
        }
        let mut r = Reader::new(body);
        if r.u64() != Some(MANIFEST_MAGIC) {
            return Err(bad("bad magic number"));
        }
        let version = r.u32().unwrap_or(0);
        if version != MANIFEST_FORMAT_VERSION {
            return Err(bad(&format!("unsupported format version {version}")));
        }
        let generation = r.u64().ok_or_else(|| bad("truncated"))?;
        let len = r.u32().ok_or_else(|| bad("truncated"))? as usize;
        if len != r.remaining() {
            return Err(bad("payload length mismatch"));
        }
        let state = (|| {
            let mut s = ManifestState {
                next_file_number: r.varint()?,
                last_seq: r.varint()?,
                log_number: r.varint()?,
                ..Default::default()
            };
            for _ in 0..r.varint()? {
                let id = u32::try_from(r.varint()?).ok()?;
                let name = String::from_utf8(r.bytes()?.to_vec()).ok()?;
                let options = r.bytes()?.to_vec();
                s.tables.insert(id, TableDef { name, options });
            }
            let mut edit = VersionEdit::default();
            for _ in 0..r.varint()? {
                let table_id = u32::try_from(r.varint()?).ok()?;
                let level = r.u8()? as usize;
                if level >= NUM_LEVELS {
                    return None;
                }
                let mut n = [0u64; 6];
                for v in &mut n {
                    *v = r.varint()?;
                }
                let f = FileMeta {
                    number: n[0],
                    table_id,
                    size: n[1],
                    entries: n[2],
                    deletes: n[3],
                    min_seq: n[4],
                    max_seq: n[5],
                    smallest: r.bytes()?.to_vec(),
                    largest: r.bytes()?.to_vec(),
                };
                edit.added.push((level, f));
            }
            s.version = Version::default().apply(&edit);
            (r.remaining() == 0).then_some(s)
        })();
        state
            .map(|s| (generation, s))
            .ok_or_else(|| bad("malformed payload"))
    }
}

/// What recovery found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestRecovery {
    /// Generation loaded.
    pub generation: u64,
    /// A newer generation was torn and skipped.
    pub skipped_torn: Option<String>,
}

/// Reads and writes manifest generations.
#[derive(Debug)]
pub struct ManifestStore {
    storage: Arc<dyn Storage>,
    next_generation: u64,
}

fn manifest_path(generation: u64) -> String {
    format!("manifest/MANIFEST-{generation:020}")
}

impl ManifestStore {
    /// Loads the newest valid manifest, or `None` for a new store.
    pub fn open(
        storage: Arc<dyn Storage>,
    ) -> Result<(ManifestStore, Option<(ManifestState, ManifestRecovery)>)> {
        let mut gens: Vec<(u64, String)> = storage
            .list("manifest/")?
            .into_iter()
            .filter_map(|o| {
                let g = o.path.strip_prefix("manifest/MANIFEST-")?.parse().ok()?;
                Some((g, o.path))
            })
            .collect();
        gens.sort();
        let next_generation = gens.last().map_or(1, |(g, _)| g + 1);
        let mut store = ManifestStore {
            storage: storage.clone(),
            next_generation,
        };
        let Some((newest, newest_path)) = gens.pop() else {
            return Ok((store, None));
        };
        let load = |path: &str| -> Result<(u64, ManifestState)> {
            let b: Bytes = storage.read_all(path)?;
            ManifestState::decode(&b, path)
        };
        match load(&newest_path) {
            Ok((g, s)) if g == newest => Ok((
                store,
                Some((
                    s,
                    ManifestRecovery {
                        generation: g,
                        skipped_torn: None,
                    },
                )),
            )),
            Ok(_) => Err(Error::corruption(
                &newest_path,
                "generation does not match its name",
            )),
            Err(e) if e.is_corruption() => {
                // Only the newest generation may be torn; fall back to the one before it.
                let Some((prev, prev_path)) = gens.pop() else {
                    return Err(e);
                };
                let (g, s) = load(&prev_path).map_err(|_| e.clone())?;
                if g != prev {
                    return Err(e);
                }
                store.next_generation = newest + 1;
                Ok((
                    store,
                    Some((
                        s,
                        ManifestRecovery {
                            generation: g,
                            skipped_torn: Some(newest_path),
                        },
                    )),
                ))
            }
            Err(e) => Err(e),
        }
    }

    /// Writes `state` as the next generation; on success deletes generations older than
    /// the previous one. A failure leaves the previous generation current.
    pub fn commit(&mut self, state: &ManifestState) -> Result<()> {
        let g = self.next_generation;
        self.storage
            .put(&manifest_path(g), Bytes::from(state.encode(g)))?;
        self.next_generation = g + 1;
        for o in self.storage.list("manifest/")? {
            let old = o
                .path
                .strip_prefix("manifest/MANIFEST-")
                .and_then(|s| s.parse::<u64>().ok());
            if old.is_some_and(|old| old + 1 < g) {
                // Best effort: a leftover old generation is harmless.
                let _ = self.storage.delete(&o.path);
            }
        }
        Ok(())
    }

    /// Generation the next commit will write.
    #[cfg(test)]
    pub fn next_generation(&self) -> u64 {
        self.next_generation
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{internal_key, ValueKind};
    use crate::storage::ObjectStorage;

    fn state() -> ManifestState {
        let f = FileMeta {
            number: 7,
            table_id: 2,
            size: 1234,
            entries: 10,
            deletes: 1,
            min_seq: 3,
            max_seq: 9,
            smallest: internal_key(b"a", 9, ValueKind::Put),
            largest: internal_key(b"z", 3, ValueKind::Delete),
        };
        let mut s = ManifestState {
            next_file_number: 8,
            last_seq: 9,
            log_number: 4,
            ..Default::default()
        };
        s.tables.insert(
            2,
            TableDef {
                name: "counts".into(),
                options: vec![1, 2, 3],
            },
        );
        s.version = s.version.apply(&VersionEdit {
            added: vec![(3, f)],
            deleted: vec![],
        });
        s
    }

    #[test]
    fn roundtrip_and_reject_damage() {
        let s = state();
        let b = s.encode(5);
        assert_eq!(ManifestState::decode(&b, "m").unwrap(), (5, s));
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 1;
            assert!(ManifestState::decode(&bad, "m")
                .unwrap_err()
                .is_corruption());
        }
        assert!(ManifestState::decode(&b[..b.len() - 1], "m").is_err());
    }

    #[test]
    fn torn_newest_generation_falls_back_to_previous() {
        let storage: Arc<dyn Storage> = Arc::new(ObjectStorage::memory().unwrap());
        let (mut m, none) = ManifestStore::open(storage.clone()).unwrap();
        assert!(none.is_none());
        let mut s = state();
        m.commit(&s).unwrap();
        s.last_seq = 99;
        m.commit(&s).unwrap();
        // Tear generation 2: keep only its first half.
        let g2 = storage.read_all(&manifest_path(2)).unwrap();
        storage
            .put(&manifest_path(2), g2.slice(..g2.len() / 2))
            .unwrap();
        let (m2, got) = ManifestStore::open(storage.clone()).unwrap();
        let (got, rec) = got.unwrap();
        assert_eq!(got.last_seq, 9, "must fall back to generation 1");
        assert_eq!(rec.generation, 1);
        assert_eq!(rec.skipped_torn.as_deref(), Some(manifest_path(2).as_str()));
        assert_eq!(
            m2.next_generation(),
            3,
            "never reuse a torn generation's name"
        );
        // Both torn: corruption, not an empty database.
        let g1 = storage.read_all(&manifest_path(1)).unwrap();
        storage.put(&manifest_path(1), g1.slice(..3)).unwrap();
        assert!(ManifestStore::open(storage).unwrap_err().is_corruption());
    }
}
