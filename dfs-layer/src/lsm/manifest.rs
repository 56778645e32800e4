//! The manifest: the durable record of which files make up each level, the state-table
//! definitions, and the counters recovery needs.
//!
//! Each commit writes one whole, immutable object `manifest/MANIFEST-<generation:020>`
//! (object stores have no append), then deletes generations older than the previous one.
//! The byte-level format (magic "STRATAMF", format version, payload, crc32) is specified in
//! DESIGN.md §6.4, and only there.
//!
//! Generations are written whole with a conditional create (never replacing an existing
//! object), so a generation is never torn: recovery reads the highest one, and if it fails
//! validation the open fails with `Corruption` naming it — it never falls back to an older
//! generation, which would silently drop the commits after it.
//!
//! Writer fencing: each open claims the store by committing the next generation with the
//! writer epoch incremented. A writer commits generation `g` only if no object named `g`
//! exists yet, so once a newer writer has claimed the store, the older one's next commit
//! finds its generation taken and fails with [`Error::Busy`]. File numbers are partitioned
//! by epoch (`epoch << 40` and up), so two writers never write the same file name.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;

use super::version::{FileMeta, FileOrigin, KeyGroupFilter, Version, VersionEdit, NUM_LEVELS};
use crate::coding::{put_bytes, put_u32, put_u64, put_varint, Reader};
use crate::error::{Error, Result};
use crate::storage::Storage;

/// "STRATAMF" as little-endian bytes.
pub const MANIFEST_MAGIC: u64 = u64::from_le_bytes(*b"STRATAMF");
/// Current manifest format version (2 added the writer epoch; version 1 still reads, as
/// epoch 0).
/// 3 added each file's origin and key-group filter.
pub const MANIFEST_FORMAT_VERSION: u32 = 3;
/// File numbers of writer epoch `e` start at `e << EPOCH_SHIFT`.
pub const EPOCH_SHIFT: u32 = 40;
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
    /// The WAL that holds the writes after `last_seq`, if the writer used one (0: none);
    /// WAL files numbered below it are obsolete.
    pub log_number: u64,
    /// The epoch of the writer that committed this generation; every open increments it.
    pub writer_epoch: u64,
    /// The database's identity, chosen at random when it is created (0 only in version 1
    /// generations, until their first claim).
    pub db_id: u64,
    /// The key groups the database owns (first, last), if it was restored for a subset.
    pub key_groups: Option<(u16, u16)>,
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
        put_varint(&mut p, self.writer_epoch);
        put_u64(&mut p, self.db_id);
        put_key_groups(&mut p, self.key_groups);
        put_tables(&mut p, &self.tables);
        let files: Vec<_> = self.version.all_files().collect();
        put_varint(&mut p, files.len() as u64);
        for (t, level, f) in files {
            put_varint(&mut p, u64::from(t));
            p.push(level as u8);
            put_file_meta(&mut p, f);
            put_file_extras(&mut p, f);
        }
        frame(MANIFEST_MAGIC, MANIFEST_FORMAT_VERSION, generation, &p)
    }

    /// Decodes a manifest object, returning its generation and state.
    pub fn decode(b: &[u8], file: &str) -> Result<(u64, ManifestState)> {
        let bad = |d: &str| Error::corruption(file, format!("manifest: {d}"));
        let (version, generation, mut r) =
            unframe(b, MANIFEST_MAGIC, 1..=MANIFEST_FORMAT_VERSION).map_err(|d| bad(&d))?;
        let state = (|| {
            let mut s = ManifestState {
                next_file_number: r.varint()?,
                last_seq: r.varint()?,
                log_number: r.varint()?,
                ..Default::default()
            };
            if version >= 2 {
                s.writer_epoch = r.varint()?;
                s.db_id = r.u64()?;
            }
            if version >= 3 {
                s.key_groups = read_key_groups(&mut r)?;
            }
            s.tables = read_tables(&mut r)?;
            let mut edit = VersionEdit::default();
            for _ in 0..r.varint()? {
                let table_id = u32::try_from(r.varint()?).ok()?;
                let level = r.u8()? as usize;
                if level >= NUM_LEVELS {
                    return None;
                }
                let f = read_file_meta(&mut r, table_id)?;
                let f = if version >= 3 {
                    read_file_extras(&mut r, f)?
                } else {
                    f
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

/// Wraps `payload` as a persisted metadata object: `magic: u64 | version: u32 | id: u64 |
/// payload_len: u32 | payload | crc32: u32` (the crc covers everything before it).
pub(crate) fn frame(magic: u64, version: u32, id: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + HEADER_LEN + 4);
    put_u64(&mut out, magic);
    put_u32(&mut out, version);
    put_u64(&mut out, id);
    put_u32(&mut out, payload.len() as u32);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    put_u32(&mut out, crc);
    out
}

/// Checks what [`frame`] wrote (crc, magic, a version in `versions`, the payload length)
/// and returns the version, the id and a reader over the payload; `Err` says what is wrong.
pub(crate) fn unframe(
    b: &[u8],
    magic: u64,
    versions: std::ops::RangeInclusive<u32>,
) -> std::result::Result<(u32, u64, Reader<'_>), String> {
    if b.len() < HEADER_LEN + 4 {
        return Err("truncated".into());
    }
    let (body, crc) = b.split_at(b.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err("checksum mismatch".into());
    }
    let mut r = Reader::new(body);
    if r.u64() != Some(magic) {
        return Err("bad magic number".into());
    }
    let version = r.u32().unwrap_or(0);
    if !versions.contains(&version) {
        return Err(format!("unsupported format version {version}"));
    }
    let id = r.u64().ok_or("truncated")?;
    let len = r.u32().ok_or("truncated")? as usize;
    if len != r.remaining() {
        return Err("payload length mismatch".into());
    }
    Ok((version, id, r))
}

/// Appends the part of a file's record both manifests share: number, size, entries,
/// deletes, min_seq, max_seq (varints), then smallest and largest (bytes).
pub(crate) fn put_file_meta(p: &mut Vec<u8>, f: &FileMeta) {
    for v in [f.number, f.size, f.entries, f.deletes, f.min_seq, f.max_seq] {
        put_varint(p, v);
    }
    put_bytes(p, &f.smallest);
    put_bytes(p, &f.largest);
}

/// Reads what [`put_file_meta`] wrote, for a file of `table_id`; `None` if malformed.
pub(crate) fn read_file_meta(r: &mut Reader<'_>, table_id: u32) -> Option<FileMeta> {
    let mut n = [0u64; 6];
    for v in &mut n {
        *v = r.varint()?;
    }
    Some(FileMeta {
        number: n[0],
        table_id,
        size: n[1],
        entries: n[2],
        deletes: n[3],
        min_seq: n[4],
        max_seq: n[5],
        smallest: r.bytes()?.to_vec(),
        largest: r.bytes()?.to_vec(),
        checksum: 0,
        origin: None,
        filter: None,
    })
}

/// Appends table definitions: a count (varint), then per table its id (varint), name and
/// options (bytes).
pub(crate) fn put_tables(p: &mut Vec<u8>, tables: &BTreeMap<u32, TableDef>) {
    put_varint(p, tables.len() as u64);
    for (id, def) in tables {
        put_varint(p, u64::from(*id));
        put_bytes(p, def.name.as_bytes());
        put_bytes(p, &def.options);
    }
}

/// Reads what [`put_tables`] wrote; `None` if malformed.
pub(crate) fn read_tables(r: &mut Reader<'_>) -> Option<BTreeMap<u32, TableDef>> {
    let mut out = BTreeMap::new();
    for _ in 0..r.varint()? {
        let id = u32::try_from(r.varint()?).ok()?;
        let name = String::from_utf8(r.bytes()?.to_vec()).ok()?;
        let options = r.bytes()?.to_vec();
        out.insert(id, TableDef { name, options });
    }
    Some(out)
}

/// Appends an optional key-group range: 0, or 1 then the first and last group (varints).
pub(crate) fn put_key_groups(p: &mut Vec<u8>, kg: Option<(u16, u16)>) {
    match kg {
        None => p.push(0),
        Some((lo, hi)) => {
            p.push(1);
            put_varint(p, u64::from(lo));
            put_varint(p, u64::from(hi));
        }
    }
}

/// Reads what [`put_key_groups`] wrote; `None` if malformed.
pub(crate) fn read_key_groups(r: &mut Reader<'_>) -> Option<Option<(u16, u16)>> {
    match r.u8()? {
        0 => Some(None),
        1 => {
            let lo = u16::try_from(r.varint()?).ok()?;
            let hi = u16::try_from(r.varint()?).ok()?;
            (lo <= hi).then_some(Some((lo, hi)))
        }
        _ => None,
    }
}

/// Appends a file's checksum, origin and filter (format version 3): the checksum (u32 LE),
/// a flags byte (bit 0: origin, bit 1: filter), then the origin's store and path as length-prefixed bytes, then the
/// filter's offset (varint), width (u8), first and last group (varints).
pub(crate) fn put_file_extras(p: &mut Vec<u8>, f: &FileMeta) {
    put_u32(p, f.checksum);
    p.push(u8::from(f.origin.is_some()) | (u8::from(f.filter.is_some()) << 1));
    if let Some(o) = &f.origin {
        put_bytes(p, o.store.as_bytes());
        put_bytes(p, o.path.as_bytes());
    }
    if let Some(k) = &f.filter {
        put_varint(p, u64::from(k.offset));
        p.push(k.width);
        put_varint(p, u64::from(k.lo));
        put_varint(p, u64::from(k.hi));
    }
}

/// Reads what [`put_file_extras`] wrote; `None` if malformed.
pub(crate) fn read_file_extras(r: &mut Reader<'_>, mut f: FileMeta) -> Option<FileMeta> {
    f.checksum = r.u32()?;
    let flags = r.u8()?;
    if flags & !3 != 0 {
        return None;
    }
    if flags & 1 != 0 {
        let store = String::from_utf8(r.bytes()?.to_vec()).ok()?;
        let path = String::from_utf8(r.bytes()?.to_vec()).ok()?;
        f.origin = Some(Arc::new(FileOrigin { store, path }));
    }
    if flags & 2 != 0 {
        let offset = u16::try_from(r.varint()?).ok()?;
        let width = r.u8()?;
        let lo = u16::try_from(r.varint()?).ok()?;
        let hi = u16::try_from(r.varint()?).ok()?;
        if !(1..=2).contains(&width) || lo > hi {
            return None;
        }
        f.filter = Some(KeyGroupFilter {
            offset,
            width,
            lo,
            hi,
        });
    }
    Some(f)
}

/// What recovery found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestRecovery {
    /// Generation loaded.
    pub generation: u64,
}

/// Reads and writes manifest generations.
#[derive(Debug)]
pub struct ManifestStore {
    storage: Arc<dyn Storage>,
    next_generation: u64,
    /// Sync each generation before it counts as committed.
    sync: bool,
}

/// A random non-zero 64-bit identity (std's per-process random hash keys, mixed with the
/// time and process id).
fn random_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish().max(1)
}

fn manifest_path(generation: u64) -> String {
    format!("manifest/MANIFEST-{generation:020}")
}

impl ManifestStore {
    /// Loads the newest manifest generation, or `None` for a new store. A newest
    /// generation that fails validation is [`Error::Corruption`] naming it.
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
        let store = ManifestStore {
            storage: storage.clone(),
            next_generation,
            sync: false,
        };
        let Some((newest, path)) = gens.pop() else {
            return Ok((store, None));
        };
        let bytes = storage.read_all(&path).map_err(|e| match e {
            Error::NotFound(_) => Error::corruption(&path, "listed but missing"),
            e => e,
        })?;
        let (g, state) = ManifestState::decode(&bytes, &path)?;
        if g != newest {
            return Err(Error::corruption(
                &path,
                "generation does not match its name",
            ));
        }
        Ok((store, Some((state, ManifestRecovery { generation: g }))))
    }

    /// Every table file number any manifest generation in `storage` references, or `None`
    /// if some generation cannot be read (then nothing can be proven unreferenced).
    pub fn referenced_by_any(storage: &dyn Storage) -> Result<Option<HashSet<u64>>> {
        let mut out = HashSet::new();
        for o in storage.list("manifest/")? {
            if !o.path.starts_with("manifest/MANIFEST-") {
                continue;
            }
            let state = storage
                .read_all(&o.path)
                .ok()
                .and_then(|b| ManifestState::decode(&b, &o.path).ok());
            let Some((_, state)) = state else {
                return Ok(None);
            };
            out.extend(state.version.all_files().map(|(_, _, f)| f.number));
        }
        Ok(Some(out))
    }

    /// Makes every later commit durable ([`Storage::sync`]) before it returns.
    pub fn set_sync(&mut self, sync: bool) {
        self.sync = sync;
    }

    /// Claims the store for a new writer: commits `state` with the writer epoch incremented
    /// and file numbers moved into the new epoch's range. [`Error::Busy`] if another writer
    /// committed first.
    pub fn claim(&mut self, state: &mut ManifestState) -> Result<()> {
        if state.db_id == 0 {
            state.db_id = random_id();
        }
        state.writer_epoch += 1;
        state.next_file_number = state
            .next_file_number
            .max(state.writer_epoch << EPOCH_SHIFT);
        self.commit(state)
    }

    /// Writes `state` as the next generation, only if no writer has written that
    /// generation yet; on success deletes generations older than the previous one. A
    /// generation already taken means a newer writer claimed the store: [`Error::Busy`].
    /// Any failure leaves the previous generation current.
    pub fn commit(&mut self, state: &ManifestState) -> Result<()> {
        let g = self.next_generation;
        let path = manifest_path(g);
        if !self
            .storage
            .put_if_absent(&path, Bytes::from(state.encode(g)))?
        {
            let holder = self
                .storage
                .read_all(&path)
                .ok()
                .and_then(|b| ManifestState::decode(&b, &path).ok())
                .map_or("unknown".to_string(), |(_, s)| s.writer_epoch.to_string());
            return Err(Error::Busy(format!(
                "fenced: {path} was committed by another writer (writer epoch {holder}; \
                 this writer's epoch is {})",
                state.writer_epoch
            )));
        }
        if self.sync {
            self.storage.sync(&path)?;
        }
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsm::version::sample_file;
    use crate::storage::ObjectStorage;

    fn state() -> ManifestState {
        let f = sample_file();
        let foreign = FileMeta {
            number: 8,
            origin: Some(Arc::new(FileOrigin {
                store: "memory://3".into(),
                path: "shared/x.sst".into(),
            })),
            filter: Some(KeyGroupFilter {
                offset: 9,
                width: 2,
                lo: 3,
                hi: 300,
            }),
            ..f.clone()
        };
        let mut s = ManifestState {
            next_file_number: 8,
            last_seq: 9,
            log_number: 4,
            key_groups: Some((3, 300)),
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
            added: vec![(3, f), (4, foreign)],
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
    fn damaged_newest_generation_is_corruption_never_a_fallback() {
        let storage: Arc<dyn Storage> = Arc::new(ObjectStorage::memory().unwrap());
        let (mut m, none) = ManifestStore::open(storage.clone()).unwrap();
        assert!(none.is_none());
        let mut s = state();
        m.commit(&s).unwrap();
        s.last_seq = 99;
        m.commit(&s).unwrap();
        let g2 = storage.read_all(&manifest_path(2)).unwrap();
        storage
            .put(&manifest_path(2), g2.slice(..g2.len() / 2))
            .unwrap();
        let e = ManifestStore::open(storage.clone()).unwrap_err();
        assert!(
            e.is_corruption() && e.to_string().contains("MANIFEST-"),
            "{e}"
        );
        storage.put(&manifest_path(2), g2).unwrap();
        let (_, got) = ManifestStore::open(storage).unwrap();
        assert_eq!(got.unwrap().0.last_seq, 99);
    }

    #[test]
    fn a_newer_writer_fences_the_older_one() {
        let storage: Arc<dyn Storage> = Arc::new(ObjectStorage::memory().unwrap());
        let (mut old, _) = ManifestStore::open(storage.clone()).unwrap();
        let mut s = state();
        old.claim(&mut s).unwrap();
        assert_eq!(s.writer_epoch, 1);
        assert_ne!(s.db_id, 0, "a claim gives the database an identity");
        assert!(s.next_file_number >= 1 << EPOCH_SHIFT);
        let (mut new, got) = ManifestStore::open(storage.clone()).unwrap();
        let mut s2 = got.unwrap().0;
        new.claim(&mut s2).unwrap();
        assert_eq!(s2.writer_epoch, 2);
        assert_eq!(s2.db_id, s.db_id, "the identity stays");
        assert!(s2.next_file_number >= 2 << EPOCH_SHIFT);
        let e = old.commit(&s).unwrap_err();
        assert!(matches!(&e, Error::Busy(m) if m.contains("epoch 2")), "{e}");
        new.commit(&s2).unwrap();
    }

    #[test]
    fn version_1_generations_still_read() {
        let mut s = state();
        s.version = Version::default();
        s.tables.clear();
        s.key_groups = None;
        let mut p = Vec::new();
        for v in [s.next_file_number, s.last_seq, s.log_number, 0, 0] {
            put_varint(&mut p, v); // no writer epoch; no tables; no files
        }
        let mut v1 = Vec::new();
        put_u64(&mut v1, MANIFEST_MAGIC);
        put_u32(&mut v1, 1);
        put_u64(&mut v1, 5);
        put_u32(&mut v1, p.len() as u32);
        v1.extend_from_slice(&p);
        let crc = crc32fast::hash(&v1);
        put_u32(&mut v1, crc);
        assert_eq!(ManifestState::decode(&v1, "m").unwrap(), (5, s));
    }
}
