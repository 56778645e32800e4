//! Keyed state for stream jobs, with the semantics of Flink's keyed state backends.
//!
//! A [`KeyedBackend`] owns a range of *key groups* out of a maximum parallelism. Every
//! state is declared by a [`StateDescriptor`] and lives in its own table. Entries are keyed
//! by (key group, key, namespace[, map user key]); the byte layout is in `layout.rs` and
//! DESIGN.md §9. Hosts that already serialize Flink-style composite keys can pass them
//! through the `raw_*` methods, which only check the key-group prefix.
//!
//! TTL (as Flink's `StateTtlConfig`): values, map entries and list elements carry an 8-byte
//! big-endian timestamp of their last write (or read, with [`TtlUpdate::OnReadAndWrite`]).
//! Expired data is filtered on read and dropped by a compaction filter wherever data is
//! rewritten: hot entries packed into chunks, chunks flushed, and compaction.
//!
//! | file | concept |
//! | --- | --- |
//! | `key_group.rs` | Flink's key-group hashing and operator ranges |
//! | `layout.rs` | the byte layout of state keys and list values |
//! | `ttl.rs` | TTL configuration, timestamps, the TTL compaction filter |
//! | `state.rs` | state kinds, descriptors, registered states |
//! | `backend.rs` | the backend: registration, keys, key-group iteration, batched and raw access |
//! | `kinds.rs` | value, reducing/aggregating, list and map state, namespaces |

mod backend;
mod key_group;
mod kinds;
mod layout;
mod state;
mod ttl;

pub use backend::KeyedBackend;
pub use key_group::{java_bytes_hash, key_group_for_hash, murmur_hash, KeyGroupRange};
pub use state::{
    AggregateAddFn, AggregateResultFn, ReduceFn, State, StateDescriptor, StateEntry, StateKind,
};
pub use ttl::{TtlConfig, TtlUpdate, TtlVisibility};
