//! Immutable sorted table files: data blocks, a bloom filter block, a properties block, an
//! index block and a checksummed footer with a magic number and format version.
//!
//! The byte-level format is specified in DESIGN.md §6.3 (blocks: §6.1, trailers: §6.2), and
//! only there; `format.rs` implements the footer and properties, `builder.rs` writes files,
//! `reader.rs` reads and checks them.

mod builder;
mod format;
mod reader;

pub use builder::{TableBuildOptions, TableBuilder};
pub use format::{Footer, TableProperties, FOOTER_LEN, TABLE_FORMAT_VERSION, TABLE_MAGIC};
pub use reader::{ReadTier, TableIter, TableReader};
