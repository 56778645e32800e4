//! The optional write-ahead log, for standalone use (stream jobs rely on checkpoints).
//!
//! WAL files need appends, which object stores lack, so they live in a local directory:
//! `<wal_dir>/<number:020>.log`: a header (magic "STRATAWL", format version, file number,
//! crc32), then one checksummed record per write batch. The byte-level format is specified
//! in DESIGN.md §6.5, and only there.
//!
//! A group commit appends several records with one `write` (and one `fdatasync` when
//! `wal_sync` is on) before any of its writers is acknowledged, so a crash can only tear
//! the tail: an incomplete or unreadable last record with nothing valid after it, none of
//! whose writers was acknowledged. Replay tolerates that and reports anything else — damage
//! followed by valid records — as [`WalRecovery`] says.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use strata_dfs::coding::{get_u32, get_u64};
use strata_dfs::{Error, Result};

use crate::batch::WriteBatch;
use crate::settings::WalRecovery;

/// "STRATAWL" as little-endian bytes.
pub const WAL_MAGIC: u64 = u64::from_le_bytes(*b"STRATAWL");
/// Current WAL format version.
pub const WAL_FORMAT_VERSION: u32 = 1;
const HEADER_LEN: usize = 24;

/// Path of WAL file `number` in `dir`.
pub fn wal_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}.log"))
}

/// WAL files in `dir`, by number.
pub fn list_wals(dir: &Path) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io(format!("listing {}", dir.display()), e)),
    };
    for ent in rd {
        let ent = ent.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        let name = ent.file_name();
        if let Some(n) = name
            .to_str()
            .and_then(|s| s.strip_suffix(".log"))
            .and_then(|s| s.parse::<u64>().ok())
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Appends records to one WAL file.
#[derive(Debug)]
pub struct WalWriter {
    file: File,
    path: PathBuf,
    number: u64,
    bytes: u64,
    /// Bytes known to be on stable storage (synced); the rest could vanish in a power loss.
    durable: u64,
    sync: bool,
}

impl WalWriter {
    /// Creates WAL file `number` in `dir`.
    pub fn create(dir: &Path, number: u64, sync: bool) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let path = wal_path(dir, number);
        let io = |e: std::io::Error| Error::io(format!("creating {}", path.display()), e);
        let mut file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)
            .map_err(io)?;
        let mut h = Vec::with_capacity(HEADER_LEN);
        h.extend_from_slice(&WAL_MAGIC.to_le_bytes());
        h.extend_from_slice(&WAL_FORMAT_VERSION.to_le_bytes());
        h.extend_from_slice(&number.to_le_bytes());
        let crc = crc32fast::hash(&h);
        h.extend_from_slice(&crc.to_le_bytes());
        file.write_all(&h).map_err(io)?;
        if sync {
            file.sync_all().map_err(io)?;
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(WalWriter {
            file,
            path,
            number,
            bytes: HEADER_LEN as u64,
            durable: if sync { HEADER_LEN as u64 } else { 0 },
            sync,
        })
    }

    /// File number.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The file and how many of its bytes are synced (power-loss tests).
    pub fn durable(&self) -> (PathBuf, u64) {
        (self.path.clone(), self.durable)
    }

    /// Appends the payloads as records in one write, then syncs if configured.
    pub fn append(&mut self, payloads: &[Vec<u8>]) -> Result<()> {
        let total: usize = payloads.iter().map(|p| p.len() + 8).sum();
        let mut buf = Vec::with_capacity(total);
        for p in payloads {
            buf.extend_from_slice(&(p.len() as u32).to_le_bytes());
            buf.extend_from_slice(&crc32fast::hash(p).to_le_bytes());
            buf.extend_from_slice(p);
        }
        let io = |e: std::io::Error| Error::io(format!("appending to {}", self.path.display()), e);
        self.file.write_all(&buf).map_err(io)?;
        self.bytes += buf.len() as u64;
        if self.sync {
            self.file.sync_data().map_err(io)?;
            self.durable = self.bytes;
        }
        Ok(())
    }
}

/// What replaying one WAL file found.
#[derive(Debug, Default)]
pub struct WalContents {
    /// Batches with their first sequence number, in log order.
    pub batches: Vec<(u64, WriteBatch)>,
    /// Bytes of a torn tail: an incomplete or damaged last record with nothing valid after
    /// it (a crash during a write; none of its writers was acknowledged).
    pub torn_bytes: u64,
    /// Damaged bytes skipped between valid records ([`WalRecovery::SkipAnyCorruptedRecords`]).
    pub skipped_bytes: u64,
    /// Offset of damage followed by valid records where replay stopped
    /// ([`WalRecovery::PointInTime`]).
    pub stopped_at: Option<usize>,
}

/// The record at `pos`: its total length and batch, if it is whole, checksummed and
/// decodable.
fn record_at(b: &[u8], pos: usize) -> Option<(usize, (u64, WriteBatch))> {
    let len = get_u32(b, pos)? as usize;
    let crc = get_u32(b, pos + 4)?;
    let payload = b.get(pos + 8..(pos + 8).checked_add(len)?)?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    Some((8 + len, WriteBatch::decode(payload)?))
}

/// The first offset at or after `from` where a valid record starts whose batch is newer
/// than `after_seq` (a record a crash could not have left behind damage).
fn next_valid_record(b: &[u8], from: usize, after_seq: u64) -> Option<usize> {
    (from..b.len().saturating_sub(8)).find(|&q| {
        record_at(b, q).is_some_and(|(_, (first, batch))| first > after_seq && !batch.is_empty())
    })
}

/// True if the unreadable record at `pos` is what a crash leaves: fewer than a header's
/// bytes, a record whose length runs past the end of the file (a write cut short), or
/// zeros (space the file system allocated but never wrote). A record that is whole but
/// fails its checksum, or whose bytes to the end of the file are exactly its checksummed
/// payload (a damaged length), is damage.
fn torn_at(b: &[u8], pos: usize) -> bool {
    let rest = &b[pos..];
    if rest.len() < 8 || rest.iter().all(|&x| x == 0) {
        return true;
    }
    let len = get_u32(b, pos).unwrap_or(0) as usize;
    let crc = get_u32(b, pos + 4).unwrap_or(0);
    let whole = rest.len() - 8 >= len;
    !whole && crc32fast::hash(&rest[8..]) != crc
}

/// Reads WAL file `number` from `dir`, treating damage as `mode` says.
pub fn read_wal(dir: &Path, number: u64, mode: WalRecovery) -> Result<WalContents> {
    let path = wal_path(dir, number);
    let name = path.display().to_string();
    let b = std::fs::read(&path).map_err(|e| Error::io(format!("reading {name}"), e))?;
    let mut out = WalContents::default();
    if b.len() < HEADER_LEN {
        // A crash while creating the file: nothing was acknowledged from it.
        out.torn_bytes = b.len() as u64;
        return Ok(out);
    }
    if get_u32(&b, 20) != Some(crc32fast::hash(&b[..20])) || get_u64(&b, 0) != Some(WAL_MAGIC) {
        return Err(Error::corruption(&name, "bad WAL header"));
    }
    let version = get_u32(&b, 8).unwrap_or(0);
    if version != WAL_FORMAT_VERSION {
        return Err(Error::corruption(
            &name,
            format!("unsupported WAL version {version}"),
        ));
    }
    let mut pos = HEADER_LEN;
    let mut last_seq = 0;
    while pos < b.len() {
        if let Some((len, (first, batch))) = record_at(&b, pos) {
            last_seq = first + batch.len().saturating_sub(1) as u64;
            out.batches.push((first, batch));
            pos += len;
            continue;
        }
        let next = next_valid_record(&b, pos + 1, last_seq);
        if next.is_none() && torn_at(&b, pos) {
            if mode == WalRecovery::AbsoluteConsistency {
                return Err(Error::corruption(
                    &name,
                    format!("torn record at offset {pos} ({} bytes)", b.len() - pos),
                ));
            }
            out.torn_bytes = (b.len() - pos) as u64;
            break;
        }
        match (mode, next) {
            (WalRecovery::PointInTime, _) => {
                out.stopped_at = Some(pos);
                break;
            }
            (WalRecovery::SkipAnyCorruptedRecords, Some(next)) => {
                out.skipped_bytes += (next - pos) as u64;
                pos = next;
            }
            (WalRecovery::SkipAnyCorruptedRecords, None) => {
                out.skipped_bytes += (b.len() - pos) as u64;
                break;
            }
            _ => {
                return Err(Error::corruption(
                    &name,
                    format!(
                        "damaged record at offset {pos}{}: acknowledged writes would be lost",
                        next.map_or(String::new(), |n| format!(
                            ", followed by valid records (at offset {n})"
                        ))
                    ),
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Op;
    use strata_dfs::ValueKind;

    fn batch(i: u8) -> WriteBatch {
        WriteBatch {
            ops: vec![Op {
                kind: ValueKind::Put,
                table: 1,
                key: vec![i],
                value: vec![i; 10],
            }],
            ..Default::default()
        }
    }

    #[test]
    fn roundtrip_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = WalWriter::create(dir.path(), 7, false).unwrap();
        w.append(&[batch(1).encode(10), batch(2).encode(11)])
            .unwrap();
        w.append(&[batch(3).encode(12)]).unwrap();
        let full = std::fs::read(wal_path(dir.path(), 7)).unwrap();
        let c = read_wal(dir.path(), 7, WalRecovery::TolerateCorruptedTail).unwrap();
        assert_eq!(c.batches.len(), 3);
        assert_eq!(c.batches[2], (12, batch(3)));
        assert_eq!(c.torn_bytes, 0);
        // Tear the last record at every length: only the first two batches survive.
        let last_len = batch(3).encode(12).len() + 8;
        for cut in 1..last_len {
            std::fs::write(wal_path(dir.path(), 7), &full[..full.len() - cut]).unwrap();
            let c = read_wal(dir.path(), 7, WalRecovery::TolerateCorruptedTail).unwrap();
            assert_eq!(c.batches.len(), 2, "cut {cut}");
            assert_eq!(c.torn_bytes as usize, last_len - cut);
        }
        // A whole last record that fails its checksum is damage, not a torn tail, and so is
        // one whose length field was damaged.
        let last_at = full.len() - last_len;
        for at in [last_at + 2, last_at + 5, full.len() - 1] {
            let mut bad = full.clone();
            bad[at] ^= 0x10;
            std::fs::write(wal_path(dir.path(), 7), &bad).unwrap();
            let e = read_wal(dir.path(), 7, WalRecovery::TolerateCorruptedTail).unwrap_err();
            assert!(
                e.to_string().contains(&format!("offset {last_at}")),
                "{at}: {e}"
            );
        }
        // Zeros after the last record (allocated, never written) are a torn tail.
        let mut zeros = full.clone();
        zeros.extend_from_slice(&[0; 100]);
        std::fs::write(wal_path(dir.path(), 7), &zeros).unwrap();
        let c = read_wal(dir.path(), 7, WalRecovery::TolerateCorruptedTail).unwrap();
        assert_eq!((c.batches.len(), c.torn_bytes), (3, 100));
        let mut bad = full.clone();
        bad[0] ^= 1;
        std::fs::write(wal_path(dir.path(), 7), &bad).unwrap();
        assert!(read_wal(dir.path(), 7, WalRecovery::TolerateCorruptedTail)
            .unwrap_err()
            .is_corruption());
        assert_eq!(list_wals(dir.path()).unwrap(), vec![7]);
    }
}
