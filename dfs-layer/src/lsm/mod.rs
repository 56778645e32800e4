//! The leveled LSM tree of table files: versions, manifest, compaction.

pub mod collapse;
mod level_iter;
pub mod manifest;
pub mod picker;
pub mod tree;
pub mod version;
