//! Fuzz entry points for Strata's decoders. Each takes arbitrary bytes and must never
//! panic; cargo-fuzz targets (a later issue) call these.
#![deny(missing_docs)]

use bytes::Bytes;
use strata_dfs::internals::{decode_block, Block, Footer};
use strata_dfs::InternalIterator;

/// Decodes a stored block (trailer, decompression) and walks and seeks it.
pub fn fuzz_block(data: &[u8]) {
    let stored = Bytes::copy_from_slice(data);
    let raw = decode_block(&stored).unwrap_or(stored);
    if let Ok(b) = Block::new(raw) {
        let mut it = b.iter();
        it.seek_to_first();
        let mut n = 0;
        while it.valid() && n < 100_000 {
            it.next();
            n += 1;
        }
        it.seek(data.get(..data.len().min(16)).unwrap_or_default());
    }
}

/// Decodes a table footer claimed to end a file of `data.len()` bytes.
pub fn fuzz_footer(data: &[u8]) {
    let _ = Footer::decode(data, data.len() as u64);
}

/// Decodes a manifest generation.
pub fn fuzz_manifest(data: &[u8]) {
    let _ = strata_dfs::ManifestState::decode(data, "fuzz");
}

/// Opens bytes as a table file from an in-memory store and scans it.
pub fn fuzz_table(data: &[u8]) {
    let Ok(storage) = strata_dfs::ObjectStorage::memory() else {
        return;
    };
    let storage: std::sync::Arc<dyn strata_dfs::Storage> = std::sync::Arc::new(storage);
    if storage.put("t.sst", Bytes::copy_from_slice(data)).is_err() {
        return;
    }
    if let Ok(t) = strata_dfs::TableReader::open(storage, None, "t.sst", 1, data.len() as u64) {
        let mut it = t.iter(false);
        it.seek_to_first();
        let mut n = 0;
        while it.valid() && n < 100_000 {
            it.next();
            n += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoders_survive_garbage_and_mutations() {
        let mut x = 0x1234_5678u64;
        for len in [0usize, 1, 5, 63, 64, 65, 200, 4096] {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            fuzz_block(&data);
            fuzz_footer(&data);
            fuzz_manifest(&data);
            fuzz_table(&data);
        }
    }
}
