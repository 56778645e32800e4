//! Builds a table file in memory; the caller writes the finished bytes with one `put`.

use bytes::Bytes;

use super::format::{Footer, TableProperties};
use crate::block::BlockBuilder;
use crate::bloom::BloomBuilder;
use crate::compress::{encode_block, Compression};
use crate::key::{self, ValueKind};

/// Options for building one table file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableBuildOptions {
    /// Target uncompressed data block size.
    pub block_bytes: usize,
    /// Full key every this many entries.
    pub restart_interval: usize,
    /// Data block compression.
    pub compression: Compression,
    /// Bloom filter bits per key (0 disables the filter).
    pub bloom_bits_per_key: u32,
    /// Scan-prefix length (0: none): the bloom filter also holds each key's first
    /// `prefix_len` bytes, so a prefix scan can skip the file.
    pub prefix_len: usize,
}

impl Default for TableBuildOptions {
    fn default() -> Self {
        TableBuildOptions {
            block_bytes: 4096,
            restart_interval: 16,
            compression: Compression::Lz4,
            bloom_bits_per_key: 10,
            prefix_len: 0,
        }
    }
}

/// Accumulates sorted entries into a table file.
#[derive(Debug)]
pub struct TableBuilder {
    opts: TableBuildOptions,
    out: Vec<u8>,
    data: BlockBuilder,
    index: BlockBuilder,
    bloom: BloomBuilder,
    props: TableProperties,
    last_user_key: Vec<u8>,
    last_prefix: Vec<u8>,
    /// The last key of the last data block written (the index key; at the end, the
    /// file's largest key).
    last_block_key: Vec<u8>,
}

impl TableBuilder {
    /// A builder for a file of state table `table_id`.
    pub fn new(opts: TableBuildOptions, table_id: u32) -> Self {
        TableBuilder {
            opts,
            out: Vec::new(),
            data: BlockBuilder::new(opts.restart_interval),
            index: BlockBuilder::new(1),
            bloom: BloomBuilder::default(),
            props: TableProperties {
                table_id,
                min_seq: u64::MAX,
                prefix_len: opts.prefix_len as u16,
                ..Default::default()
            },
            last_user_key: Vec::new(),
            last_prefix: Vec::new(),
            last_block_key: Vec::new(),
        }
    }

    /// Reserves room for a file of about `bytes`, so the file buffer does not grow by
    /// copying (writers pass their split size, which the write-buffer share accounts).
    pub fn reserve(&mut self, bytes: usize) {
        self.out.reserve(bytes);
    }

    /// Adds an entry. REQUIRES: `ikey` sorts after every key added before.
    pub fn add(&mut self, ikey: &[u8], value: &[u8]) {
        let p = key::parse(ikey).expect("builder is given valid internal keys");
        if self.props.entries == 0 {
            self.props.smallest = ikey.to_vec();
        }
        if self.props.entries == 0 || p.user_key != self.last_user_key.as_slice() {
            self.bloom.add(p.user_key);
            self.last_user_key.clear();
            self.last_user_key.extend_from_slice(p.user_key);
            let r = self.opts.prefix_len;
            if r > 0 && p.user_key.len() >= r && p.user_key[..r] != self.last_prefix[..] {
                self.bloom.add(&p.user_key[..r]);
                self.last_prefix.clear();
                self.last_prefix.extend_from_slice(&p.user_key[..r]);
            }
        }
        self.props.entries += 1;
        match p.kind {
            ValueKind::Delete => self.props.deletes += 1,
            ValueKind::Merge => self.props.merges += 1,
            ValueKind::Put => {}
        }
        self.props.raw_key_bytes += ikey.len() as u64;
        self.props.raw_value_bytes += value.len() as u64;
        self.props.min_seq = self.props.min_seq.min(p.seq);
        self.props.max_seq = self.props.max_seq.max(p.seq);
        self.data.add(ikey, value);
        if self.data.estimated_size() >= self.opts.block_bytes {
            self.flush_block();
        }
    }

    fn flush_block(&mut self) {
        if self.data.is_empty() {
            return;
        }
        self.last_block_key.clear();
        self.last_block_key.extend_from_slice(self.data.last_key());
        let off = self.out.len() as u64;
        let (out, compression) = (&mut self.out, self.opts.compression);
        self.data
            .finish_with(|raw| encode_block(out, raw, compression));
        let len = self.out.len() as u64 - off;
        let mut handle = [0u8; 12];
        handle[..8].copy_from_slice(&off.to_le_bytes());
        handle[8..].copy_from_slice(&(len as u32).to_le_bytes());
        self.index.add(&self.last_block_key, &handle);
        self.props.data_blocks += 1;
    }

    /// Number of entries added.
    pub fn entries(&self) -> u64 {
        self.props.entries
    }

    /// Approximate size of the file so far.
    pub fn estimated_size(&self) -> u64 {
        (self.out.len() + self.data.estimated_size()) as u64
    }

    /// Finishes the file. REQUIRES: at least one entry was added.
    pub fn finish(mut self) -> (Bytes, TableProperties) {
        self.flush_block();
        self.props.largest = std::mem::take(&mut self.last_block_key);
        if self.props.entries == 0 {
            self.props.min_seq = 0;
        }
        let put = |out: &mut Vec<u8>, raw: &[u8]| {
            let off = out.len() as u64;
            encode_block(out, raw, Compression::None);
            (off, out.len() as u64 - off)
        };
        let filter = put(
            &mut self.out,
            &self.bloom.finish(self.opts.bloom_bits_per_key),
        );
        let props = put(&mut self.out, &self.props.encode());
        let index_raw = self.index.finish();
        let index = put(&mut self.out, &index_raw);
        let footer = Footer {
            index,
            filter,
            props,
        };
        self.out.extend_from_slice(&footer.encode());
        (Bytes::from(self.out), self.props)
    }
}
