//! Strata: an embedded LSM-style state-backend storage engine for stream processors.
//!
//! Data lives in three tiers: a hash-indexed **hot KV** store where updates, list appends
//! and read-modify-writes happen in place; compressed in-memory **chunks** for warm
//! entries; and immutable **table files** in a local directory or an object store, with a
//! block cache and leveled compaction. See `DESIGN.md` for formats and reasoning.
//!
//! ```
//! use strata::{Db, MergeKind, Settings, TableOptions};
//!
//! let dir = tempfile::tempdir()?;
//! let db = Db::open(dir.path(), Settings::default())?;
//! let counts = db.default_table();
//! db.put(&counts, b"page-1", b"7")?;
//! assert_eq!(db.get(&counts, b"page-1")?.as_deref(), Some(&b"7"[..]));
//!
//! let lists = db.create_table("events", TableOptions::with_merge(MergeKind::Append))?;
//! db.merge(&lists, b"user-9", b"a")?;
//! db.merge(&lists, b"user-9", b"b")?;
//! assert_eq!(db.get(&lists, b"user-9")?.as_deref(), Some(&b"ab"[..]));
//!
//! let keys: Vec<Vec<u8>> = db.prefix(&counts, b"page-")?.map(|kv| kv.map(|(k, _)| k)).collect::<Result<_, _>>()?;
//! assert_eq!(keys, vec![b"page-1".to_vec()]);
//! db.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

/// The README's example, compiled and run as a doc-test.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

mod batch;
mod catalog;
mod checkpoint;
mod clock;
mod commit;
mod db;
mod flush;
mod inner;
mod iter;
pub mod keyed;
mod open;
mod options;
mod read;
mod recovery;
mod settings;
mod snapshot;
mod stats;
mod tables;
pub mod timers;
mod wal;
mod write;

pub use batch::WriteBatch;
pub use catalog::{Table, DEFAULT_TABLE};
pub use checkpoint::{
    rehome_checkpoint, CheckpointContents, CheckpointFileLocation, CheckpointInfo, KeyGroups,
    PendingCheckpoint, RestoreSource,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use db::{prefix_successor, Db, DbBuilder};
pub use iter::DbIterator;
pub use keyed::{
    KeyGroupRange, KeyedBackend, State, StateDescriptor, StateKind, TtlConfig, TtlUpdate,
    TtlVisibility,
};
pub use options::{KeyGroupField, MergeKind, TableOptions};
pub use read::MULTI_GET_PARALLELISM;
pub use recovery::RecoveryInfo;
pub use settings::{MemorySplit, Settings, WalRecovery, MAX_KEY_BYTES, MAX_VALUE_BYTES};
pub use snapshot::Snapshot;
pub use stats::{LiveFile, Stats};
pub use strata_chunkcache::memory::set_allocator_release;
pub use strata_chunkcache::MiddleStats;
pub use strata_dfs::{
    AppendOperator, CacheSnapshot, CheckpointRef, CheckpointStore, CompactionFilter,
    CompactionOptions, Compression, Error, FilterDecision, MergeOperator, ObjectStorage, Result,
    S3Settings, Storage, TreeStats, U64AddOperator, ValueKind,
};
pub use timers::{TimeDomain, Timer, TimerService};
pub use wal::{WAL_FORMAT_VERSION, WAL_MAGIC};

/// Lower-layer pieces for tests, fuzz targets and benches. Not a stable API.
#[doc(hidden)]
pub mod internals {
    pub use strata_chunkcache as chunkcache;
    pub use strata_dfs as dfs;
    /// The WAL reader, for tools that check WAL files (`strata verify`).
    pub mod wal {
        pub use crate::wal::{list_wals, read_wal, wal_path, WalContents};
    }
}
