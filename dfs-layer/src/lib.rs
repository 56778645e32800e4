//! Strata's bottom tier, and its LSM tree: the storage trait and its `object_store`
//! backends, immutable table files, the block cache, the manifest and versions, the one
//! table writer, leveled compaction, and the version fold every tier reads through. The
//! package is named `strata-dfs` after the storage it sits on; what it holds is the whole
//! leveled LSM tree (`LsmTree`).
#![deny(missing_docs)]

mod block;
mod bloom;
mod cache;
#[doc(hidden)]
pub mod coding;
mod compress;
mod error;
mod filter;
mod fold;
mod iter;
pub mod key;
mod lsm;
mod merge;
mod mirror;
mod storage;
mod table;
#[doc(hidden)]
pub mod testing;

pub use cache::{BlockCache, CacheSnapshot};
pub use compress::Compression;
pub use error::{Error, Result};
pub use filter::{filter_version, CompactionFilter, FilterDecision};
pub use fold::{resolve_operand, Folded, VersionFold};
pub use iter::{ConcatIter, InternalIterator, MergingIterator, Segments, VecIter};
pub use key::{SeqNo, ValueKind, MAX_SEQ};
pub use lsm::checkpoint::{
    CheckpointFile, CheckpointManifest, CheckpointRef, CheckpointStore, CHECKPOINT_FORMAT_VERSION,
    CHECKPOINT_MAGIC, IN_PLACE_DIR,
};
pub use lsm::collapse::{collapse, collapse_filtered, CollapseContext, KeyVersion};
pub use lsm::manifest::{
    ManifestRecovery, ManifestState, ManifestStore, TableDef, MANIFEST_FORMAT_VERSION,
    MANIFEST_MAGIC,
};
pub use lsm::options::{TreeHooks, TreeOptions};
pub use lsm::picker::{level_targets, pick, CompactionOptions, CompactionPick};
pub use lsm::tree::{check_foreign, LsmTree, Recovered, TreeStats};
pub use lsm::version::{
    table_number, table_path, FileMeta, FileOrigin, KeyGroupFilter, Levels, Version, VersionEdit,
    NUM_LEVELS,
};
pub use merge::{AppendOperator, MergeOperator, U64AddOperator};
pub use mirror::Mirror;
pub use storage::{
    read_with_hint, ObjectInfo, ObjectStorage, ReadHint, S3Settings, Storage, StoreSet,
};
pub use table::{
    ReadTier, TableBuildOptions, TableBuilder, TableIter, TableProperties, TableReader, FOOTER_LEN,
    TABLE_FORMAT_VERSION, TABLE_MAGIC,
};

/// Building blocks shared with the upper layers, fuzz targets and benches. Not a stable API.
#[doc(hidden)]
pub mod internals {
    pub use crate::block::{Block, BlockBuilder, BlockIter, MAX_ENTRY_BYTES};
    pub use crate::bloom::{hash64, may_contain, may_contain_hash, BloomBuilder};
    pub use crate::compress::{decode_block, encode_block, BLOCK_TRAILER_LEN};
    pub use crate::table::Footer;
}
