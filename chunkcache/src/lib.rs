//! Strata's middle tier: a hash-indexed hot KV cache with in-place updates and in-memory
//! merges, compressed immutable chunks for warm entries, and the maintenance that moves
//! data hot → chunks → level-0 table files.
#![deny(missing_docs)]

mod chunk;
mod hot;
mod tier;

pub use chunk::{Chunk, ChunkBlocks, ChunkIter};
pub use hot::{chain_charge, entry_charge, HotKv, HotLookup, HotVersion, HotWrite, ROUTED_TABLES};
pub use tier::{db_key, MiddleSettings, MiddleStats, MiddleTier, StripPrefix, TABLE_PREFIX_LEN};
