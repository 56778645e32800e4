//! The leveled LSM tree of table files: versions, manifest, the table writer, compaction.

pub mod checkpoint;
pub mod collapse;
mod compaction;
mod level_iter;
pub mod manifest;
pub mod options;
pub mod picker;
mod readers;
mod shared;
pub mod tree;
pub mod version;
mod writer;
