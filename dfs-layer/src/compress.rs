//! Per-block compression and the on-disk block trailer.
//!
//! A stored block is `contents | type: u8 | crc32: u32 LE`, where the crc32 (IEEE, as
//! computed by `crc32fast`) covers `contents` and `type`. For `type` 0 the contents are the
//! raw block; for lz4 (1) and zstd (2) they are `raw_len: varint | compressed bytes`.

use bytes::Bytes;

use crate::coding::{get_u32, get_varint, put_varint};
use crate::error::{Error, Result};

/// Size of the trailer after every stored block.
pub const BLOCK_TRAILER_LEN: usize = 5;

/// Largest uncompressed block: a block addresses its entries with u32 offsets, so values
/// (long merged lists) up to nearly 4 GiB fit in one. Bigger claims are corruption.
pub const MAX_RAW_BLOCK: u64 = u32::MAX as u64;

/// lz4 output is at most this many times its input (a match length grows by at most 255
/// per input byte), so a claim beyond it is corruption and allocation stays proportional
/// to the bytes actually stored.
const LZ4_MAX_RATIO: u64 = 255;

/// Block compression codec.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub enum Compression {
    /// Stored as is.
    None,
    /// lz4 block format (`lz4_flex`): fast, modest ratio.
    #[default]
    Lz4,
    /// zstd at level 3: slower, better ratio (good for the bottom levels).
    Zstd,
}

impl Compression {
    fn tag(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Lz4 => 1,
            Compression::Zstd => 2,
        }
    }
}

/// Compresses `raw` with `c` and appends the stored form (contents and trailer) to `dst`.
/// Falls back to no compression when compressing does not save at least 1/8.
pub fn encode_block(dst: &mut Vec<u8>, raw: &[u8], c: Compression) {
    let start = dst.len();
    let mut tag = c.tag();
    match c {
        Compression::None => dst.extend_from_slice(raw),
        Compression::Lz4 | Compression::Zstd => {
            put_varint(dst, raw.len() as u64);
            let at = dst.len();
            let n = match c {
                Compression::Lz4 => {
                    // Straight into `dst`: no buffer per block.
                    dst.resize(at + lz4_flex::block::get_maximum_output_size(raw.len()), 0);
                    let n = lz4_flex::block::compress_into(raw, &mut dst[at..])
                        .expect("the output is sized for the worst case");
                    dst.truncate(at + n);
                    n
                }
                _ => {
                    let compressed = zstd::bulk::compress(raw, 3).unwrap_or_else(|_| raw.to_vec());
                    dst.extend_from_slice(&compressed);
                    compressed.len()
                }
            };
            if n + n / 8 >= raw.len() {
                dst.truncate(start);
                dst.extend_from_slice(raw);
                tag = 0;
            }
        }
    }
    dst.push(tag);
    let crc = crc32fast::hash(&dst[start..]);
    dst.extend_from_slice(&crc.to_le_bytes());
}

/// Verifies the trailer of a stored block and returns its uncompressed contents.
/// Errors are [`Error::Corruption`] with an empty file name; callers add it with
/// [`Error::in_file`].
pub fn decode_block(stored: &Bytes) -> Result<Bytes> {
    let n = stored
        .len()
        .checked_sub(BLOCK_TRAILER_LEN)
        .ok_or_else(|| Error::corruption("", "block shorter than its trailer"))?;
    let want = get_u32(stored, n + 1).unwrap_or(0);
    if crc32fast::hash(&stored[..n + 1]) != want {
        return Err(Error::corruption("", "block checksum mismatch"));
    }
    let contents = stored.slice(..n);
    match stored[n] {
        0 => Ok(contents),
        t @ (1 | 2) => {
            let (raw_len, used) = get_varint(&contents)
                .ok_or_else(|| Error::corruption("", "bad compressed block length"))?;
            let body = &contents[used..];
            let limit = match t {
                1 => MAX_RAW_BLOCK.min(body.len() as u64 * LZ4_MAX_RATIO + 64),
                _ => MAX_RAW_BLOCK,
            };
            if raw_len > limit {
                return Err(Error::corruption(
                    "",
                    format!(
                        "compressed block of {} bytes claims {raw_len} bytes",
                        body.len()
                    ),
                ));
            }
            let raw = if t == 1 {
                lz4_flex::block::decompress(body, raw_len as usize)
                    .map_err(|e| Error::corruption("", format!("lz4: {e}")))?
            } else {
                zstd_decompress(body, raw_len)?
            };
            if raw.len() as u64 != raw_len {
                return Err(Error::corruption(
                    "",
                    "decompressed block has the wrong size",
                ));
            }
            Ok(Bytes::from(raw))
        }
        t => Err(Error::corruption(
            "",
            format!("unknown compression type {t}"),
        )),
    }
}

/// Decompresses a zstd frame of at most `raw_len` bytes. The output grows as data is
/// actually produced, so a false size claim cannot make it allocate more than the frame
/// really expands to.
fn zstd_decompress(body: &[u8], raw_len: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let bad = |e: std::io::Error| Error::corruption("", format!("zstd: {e}"));
    let dec = zstd::stream::read::Decoder::with_buffer(body).map_err(bad)?;
    let mut out = Vec::with_capacity(raw_len.min(body.len() as u64 * 8 + 4096) as usize);
    dec.take(raw_len + 1).read_to_end(&mut out).map_err(bad)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_each_codec_and_detect_flips() {
        let raw: Vec<u8> = (0..4000u32).flat_map(|i| (i % 97).to_le_bytes()).collect();
        for c in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let mut stored = Vec::new();
            encode_block(&mut stored, &raw, c);
            let stored = Bytes::from(stored);
            assert_eq!(decode_block(&stored).unwrap(), Bytes::from(raw.clone()));
            for i in [0, stored.len() / 2, stored.len() - 1] {
                let mut bad = stored.to_vec();
                bad[i] ^= 0x40;
                assert!(decode_block(&Bytes::from(bad)).unwrap_err().is_corruption());
            }
        }
        assert!(decode_block(&Bytes::from_static(b"abc")).is_err());
    }

    /// Blocks are encoded one after another into one file buffer: each lands after what
    /// is already there (compressed in place), and one that does not compress by an
    /// eighth is stored raw, with the buffer cut back past the attempt.
    #[test]
    fn blocks_append_to_a_shared_buffer_and_incompressible_ones_are_stored_raw() {
        let compressible: Vec<u8> = (0..4000u32).flat_map(|i| (i % 13).to_le_bytes()).collect();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let random: Vec<u8> = (0..4000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        for c in [Compression::Lz4, Compression::Zstd] {
            let mut file = b"header".to_vec();
            let mut spans = Vec::new();
            for raw in [&compressible, &random, &compressible] {
                let start = file.len();
                encode_block(&mut file, raw, c);
                spans.push((start, file.len()));
            }
            assert_eq!(&file[..6], b"header");
            let (s, e) = spans[0];
            assert!(
                e - s < compressible.len() / 2,
                "{c:?} compressed the first block"
            );
            let (s, e) = spans[1];
            assert_eq!(e - s, random.len() + 5, "{c:?}: raw, tag and crc");
            assert_eq!(file[e - 5], 0, "{c:?}: stored with the raw tag");
            for ((s, e), raw) in spans
                .into_iter()
                .zip([&compressible, &random, &compressible])
            {
                let stored = Bytes::copy_from_slice(&file[s..e]);
                assert_eq!(decode_block(&stored).unwrap(), Bytes::from(raw.clone()));
            }
        }
    }

    /// lz4_flex is built with its pointer-based (non-`safe-decode`) decoder: lz4 payloads
    /// that pass the crc but are malformed (random bytes, a real block cut short or
    /// extended, a wrong `raw_len`) are reported as corruption, never read or written out
    /// of bounds (run under Miri or a sanitizer to see the latter).
    #[test]
    fn malformed_lz4_payloads_with_valid_crcs_are_corruption() {
        let seal = |raw_len: u64, payload: &[u8]| {
            let mut b = Vec::new();
            put_varint(&mut b, raw_len);
            b.extend_from_slice(payload);
            b.push(1);
            let crc = crc32fast::hash(&b);
            b.extend_from_slice(&crc.to_le_bytes());
            Bytes::from(b)
        };
        let raw: Vec<u8> = (0..4096u32)
            .map(|i| (i * 7 % 251) as u8 ^ (i / 64) as u8)
            .collect();
        let good = lz4_flex::block::compress(&raw);
        assert_eq!(decode_block(&seal(raw.len() as u64, &good)).unwrap(), raw);
        let mut outcomes = 0;
        for cut in 0..good.len() {
            if let Ok(d) = decode_block(&seal(raw.len() as u64, &good[..cut])) {
                assert_ne!(d, raw, "a cut block decoded to the original");
            }
            outcomes += 1;
        }
        for claimed in [0, 1, raw.len() as u64 - 1, raw.len() as u64 + 1, 65536] {
            let r = decode_block(&seal(claimed, &good));
            assert!(
                r.is_err_and(|e| e.is_corruption()),
                "raw_len {claimed} accepted"
            );
        }
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..3000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 300) as usize;
            let payload: Vec<u8> = (0..len).map(|i| (x >> (i % 57)) as u8).collect();
            let _ = decode_block(&seal(x % 8192, &payload));
            outcomes += 1;
        }
        assert!(outcomes > 3000);
    }

    #[test]
    fn blocks_past_64_mib_round_trip_and_false_size_claims_are_rejected() {
        let raw = vec![0xabu8; 70 << 20];
        for c in [Compression::Lz4, Compression::Zstd] {
            let mut stored = Vec::new();
            encode_block(&mut stored, &raw, c);
            assert!(stored.len() < raw.len() / 100, "{c:?} compresses a run");
            assert_eq!(decode_block(&Bytes::from(stored)).unwrap().len(), raw.len());
        }
        // A tiny block claiming 4 GiB is corruption, not a 4 GiB allocation.
        for tag in [1u8, 2] {
            let mut b = Vec::new();
            put_varint(&mut b, u32::MAX as u64);
            b.extend_from_slice(&[0x11; 16]);
            b.push(tag);
            let crc = crc32fast::hash(&b);
            b.extend_from_slice(&crc.to_le_bytes());
            assert!(decode_block(&Bytes::from(b)).unwrap_err().is_corruption());
        }
    }
}
