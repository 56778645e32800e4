//! Strata's middle tier (this crate, `strata-chunkcache`, in the folder `chunkcache/`): a
//! hash-indexed hot KV cache with in-place updates and in-memory merges, compressed
//! immutable chunks for warm entries, and the maintenance that moves data hot → chunks →
//! level-0 table files of the LSM tree below.
//!
//! Where things live: [`tier`](MiddleTier) is the coordinator and read path, `maintenance`
//! moves data down, `shared` the state they share, `hot/` is the hot KV cache, `chunk` the chunks, `dbkey` the one key
//! codec, `doorkeeper` the promotion filter, `stats` the counters, `memory` the process's real memory.
#![deny(missing_docs)]

mod chunk;
pub mod dbkey;
mod doorkeeper;
mod hot;
mod maintenance;
pub mod memory;
mod shared;
mod stats;
mod tier;

pub use chunk::{Chunk, ChunkBlocks, ChunkIter};
pub use hot::{
    chain_charge, entry_charge, DirtyStream, HotKv, HotVersion, HotWrite, ROUTED_TABLES,
};
pub use shared::MiddleSettings;
pub use stats::MiddleStats;
pub use tier::MiddleTier;
