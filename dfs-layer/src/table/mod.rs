//! Immutable sorted table files.
//!
//! ```text
//! data block* | filter block | properties block | index block | footer (64 bytes)
//! ```
//! Every block is stored with the 5-byte trailer of [`crate::compress`] (type, crc32). Data
//! blocks may be compressed (per level); filter, properties and index blocks are stored
//! uncompressed. The index block maps the last internal key of each data block to its
//! handle (`offset: u64 LE | stored_len: u32 LE`, the length including the trailer).
//!
//! Footer, all little-endian:
//! ```text
//! 0  index_off u64 | 8  index_len u64 | 16 filter_off u64 | 24 filter_len u64
//! 32 props_off u64 | 40 props_len u64 | 48 format_version u32 | 52 magic u64
//! 60 crc32 u32 over bytes 0..60
//! ```
//! `magic` is `TABLE_MAGIC` ("STRATATB" read as little-endian bytes), `format_version` is 1.

mod builder;
mod format;
mod reader;

pub use builder::{TableBuildOptions, TableBuilder};
pub use format::{Footer, TableProperties, FOOTER_LEN, TABLE_FORMAT_VERSION, TABLE_MAGIC};
pub use reader::{ReadTier, TableIter, TableReader};
