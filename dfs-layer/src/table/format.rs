//! Footer and properties codecs (byte layout: DESIGN.md §6.3).

use crate::coding::{get_u32, get_u64, put_bytes, put_u32, put_u64, Reader};
use crate::error::{Error, Result};

/// Footer length in bytes.
pub const FOOTER_LEN: usize = 64;
/// "STRATATB" as little-endian bytes.
pub const TABLE_MAGIC: u64 = u64::from_le_bytes(*b"STRATATB");
/// Current table format version.
pub const TABLE_FORMAT_VERSION: u32 = 1;

/// Decoded footer: (offset, stored length) of the index, filter and properties blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    /// Index block handle.
    pub index: (u64, u64),
    /// Filter block handle.
    pub filter: (u64, u64),
    /// Properties block handle.
    pub props: (u64, u64),
}

impl Footer {
    /// Encodes the footer.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(FOOTER_LEN);
        for (o, l) in [self.index, self.filter, self.props] {
            put_u64(&mut b, o);
            put_u64(&mut b, l);
        }
        put_u32(&mut b, TABLE_FORMAT_VERSION);
        put_u64(&mut b, TABLE_MAGIC);
        let crc = crc32fast::hash(&b);
        put_u32(&mut b, crc);
        b
    }

    /// Decodes and validates a footer of a file of `file_size` bytes: checksum, magic,
    /// version, and every handle inside the file before the footer.
    pub fn decode(b: &[u8], file_size: u64) -> Result<Footer> {
        let bad = |d: String| Error::corruption("", format!("table footer: {d}"));
        if b.len() != FOOTER_LEN {
            return Err(bad(format!("length {}", b.len())));
        }
        let u = |o| get_u64(b, o).unwrap_or(0);
        if get_u32(b, 60) != Some(crc32fast::hash(&b[..60])) {
            return Err(bad("checksum mismatch".into()));
        }
        if u(52) != TABLE_MAGIC {
            return Err(bad("bad magic number".into()));
        }
        let version = get_u32(b, 48).unwrap_or(0);
        if version != TABLE_FORMAT_VERSION {
            return Err(bad(format!("unsupported format version {version}")));
        }
        let f = Footer {
            index: (u(0), u(8)),
            filter: (u(16), u(24)),
            props: (u(32), u(40)),
        };
        let end = file_size.saturating_sub(FOOTER_LEN as u64);
        for (name, (o, l)) in [("index", f.index), ("filter", f.filter), ("props", f.props)] {
            match o.checked_add(l) {
                Some(e) if e <= end && l >= 5 => {}
                _ => return Err(bad(format!("{name} handle ({o}, {l}) outside the file"))),
            }
        }
        Ok(f)
    }
}

/// Facts about a table, stored in its properties block and copied into the manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableProperties {
    /// The state table (column family) this file belongs to.
    pub table_id: u32,
    /// Number of entries (all kinds).
    pub entries: u64,
    /// Number of tombstones.
    pub deletes: u64,
    /// Number of merge operands.
    pub merges: u64,
    /// Sum of internal key lengths.
    pub raw_key_bytes: u64,
    /// Sum of value lengths.
    pub raw_value_bytes: u64,
    /// Smallest sequence number.
    pub min_seq: u64,
    /// Largest sequence number.
    pub max_seq: u64,
    /// Number of data blocks.
    pub data_blocks: u64,
    /// Smallest internal key.
    pub smallest: Vec<u8>,
    /// Largest internal key.
    pub largest: Vec<u8>,
    /// Scan-prefix length whose prefixes the bloom filter holds (0: none).
    pub prefix_len: u16,
}

impl TableProperties {
    /// Encodes: table_id u32, then eight u64 (entries, deletes, merges, raw_key_bytes,
    /// raw_value_bytes, min_seq, max_seq, data_blocks), then smallest and largest as
    /// varint-length-prefixed bytes, then prefix_len u16 (absent in older files: 0).
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        put_u32(&mut b, self.table_id);
        for v in [
            self.entries,
            self.deletes,
            self.merges,
            self.raw_key_bytes,
            self.raw_value_bytes,
            self.min_seq,
            self.max_seq,
            self.data_blocks,
        ] {
            put_u64(&mut b, v);
        }
        put_bytes(&mut b, &self.smallest);
        put_bytes(&mut b, &self.largest);
        b.extend_from_slice(&self.prefix_len.to_le_bytes());
        b
    }

    /// Decodes properties, bounds-checked.
    pub fn decode(b: &[u8]) -> Result<Self> {
        let mut r = Reader::new(b);
        let p = (|| {
            Some(TableProperties {
                table_id: r.u32()?,
                entries: r.u64()?,
                deletes: r.u64()?,
                merges: r.u64()?,
                raw_key_bytes: r.u64()?,
                raw_value_bytes: r.u64()?,
                min_seq: r.u64()?,
                max_seq: r.u64()?,
                data_blocks: r.u64()?,
                smallest: r.bytes()?.to_vec(),
                largest: r.bytes()?.to_vec(),
                prefix_len: match r.remaining() {
                    0 => 0,
                    _ => u16::from_le_bytes(r.take(2)?.try_into().ok()?),
                },
            })
        })();
        p.ok_or_else(|| Error::corruption("", "table properties truncated"))
    }
}
