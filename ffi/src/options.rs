//! Options objects: database settings (`strata_options`), table options
//! (`strata_table_options`), storage handles (`strata_store`), a manual clock
//! (`strata_clock`), and custom merge operators as C callbacks.

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use strata::{
    Clock, Compression, KeyGroupField, KeyGroups, ManualClock, MergeKind, MergeOperator,
    ObjectStorage, S3Settings, Settings, Storage, TableOptions,
};

use crate::need;
use crate::{
    call, destroy_call, give_handle, give_string, handle, handle_mut, invalid, opt_string,
    strata_status, string, FfiResult, Status,
};

// ---------------------------------------------------------------------------------------
// Database options

/// Settings and live components for opening a database. Not thread-safe: configure it
/// from one thread; once configured, several threads may open databases with it.
pub struct strata_options {
    pub(crate) settings: Settings,
    pub(crate) store: Option<Arc<dyn Storage>>,
    pub(crate) external: Vec<Arc<dyn Storage>>,
    pub(crate) merge_operators: Vec<Arc<dyn MergeOperator>>,
    pub(crate) clock: Option<Arc<dyn Clock>>,
    pub(crate) read_only: bool,
    pub(crate) key_groups: Option<KeyGroups>,
}

impl strata_options {
    /// A builder for a database in `path` (ignored when a store is set).
    pub(crate) fn builder(&self, path: Option<&str>) -> FfiResult<strata::DbBuilder> {
        let mut b = strata::Db::builder(self.settings.clone());
        match (&self.store, path) {
            (Some(s), _) => b = b.storage(s.clone()),
            (None, Some(p)) => b = b.path(p),
            (None, None) => return Err(invalid("path is null and the options name no store")),
        }
        for s in &self.external {
            b = b.external_store(s.clone());
        }
        for m in &self.merge_operators {
            b = b.merge_operator(m.clone());
        }
        if let Some(c) = &self.clock {
            b = b.clock(c.clone());
        }
        if self.read_only {
            b = b.read_only();
        }
        if let Some(k) = self.key_groups {
            b = b.key_groups(k);
        }
        Ok(b)
    }
}

/// Creates options with every setting at its default (256 MiB budget, no WAL, local
/// directory storage).
#[no_mangle]
pub unsafe extern "C" fn strata_options_create(
    out: *mut *mut strata_options,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        give_handle(
            strata_options {
                settings: Settings::default(),
                store: None,
                external: Vec::new(),
                merge_operators: Vec::new(),
                clock: None,
                read_only: false,
                key_groups: None,
            },
            out,
        )?;
        Ok(Status::STRATA_OK)
    })
}

/// Destroys options (databases opened with them keep what they need).
#[no_mangle]
pub unsafe extern "C" fn strata_options_destroy(opts: *mut strata_options) -> strata_status {
    destroy_call(opts, "options")
}

/// Sets settings from a JSON object whose keys are `Settings` fields (README, "C ABI"):
/// keys present replace the current values (nested objects such as `compaction` are
/// merged key by key), others stay. Unknown keys and bad values are
/// `STRATA_INVALID_ARGUMENT`, and then nothing changes.
#[no_mangle]
pub unsafe extern "C" fn strata_options_set_json(
    opts: *mut strata_options,
    json: *const c_char,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let o = handle_mut(opts, "options")?;
        let doc: serde_json::Value = serde_json::from_str(string(json, "json")?)
            .map_err(|e| invalid(format!("settings JSON: {e}")))?;
        o.settings = merged_settings(&o.settings, doc)?;
        Ok(Status::STRATA_OK)
    })
}

/// Sets one setting: `name` is a `Settings` field (`"memory_budget_bytes"`, or a nested
/// one as `"compaction.l0_stop"`), `json_value` its value as JSON (`"268435456"`,
/// `"true"`, `"\"/tmp/wal\""`, `"null"`).
#[no_mangle]
pub unsafe extern "C" fn strata_options_set(
    opts: *mut strata_options,
    name: *const c_char,
    json_value: *const c_char,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let o = handle_mut(opts, "options")?;
        let name = string(name, "name")?;
        let value: serde_json::Value = serde_json::from_str(string(json_value, "json_value")?)
            .map_err(|e| invalid(format!("value of {name}: {e}")))?;
        let mut doc = value;
        for part in name.split('.').rev() {
            if part.is_empty() {
                return Err(invalid(format!("bad setting name {name:?}")));
            }
            let mut m = serde_json::Map::new();
            m.insert(part.to_string(), doc);
            doc = serde_json::Value::Object(m);
        }
        o.settings = merged_settings(&o.settings, doc)?;
        Ok(Status::STRATA_OK)
    })
}

/// The current settings as a JSON object, in `*out` (free it with `strata_free`).
#[no_mangle]
pub unsafe extern "C" fn strata_options_get_json(
    opts: *const strata_options,
    out: *mut *mut c_char,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        let o = handle(opts, "options")?;
        let s = serde_json::to_string(&o.settings).map_err(|e| invalid(e.to_string()))?;
        give_string(&s, out)?;
        Ok(Status::STRATA_OK)
    })
}

fn merged_settings(current: &Settings, doc: serde_json::Value) -> FfiResult<Settings> {
    if !doc.is_object() {
        return Err(invalid("settings must be a JSON object"));
    }
    let mut base = serde_json::to_value(current).map_err(|e| invalid(e.to_string()))?;
    merge_json(&mut base, doc);
    let s: Settings =
        serde_json::from_value(base).map_err(|e| invalid(format!("settings: {e}")))?;
    s.validate()?;
    Ok(s)
}

fn merge_json(base: &mut serde_json::Value, doc: serde_json::Value) {
    match (base, doc) {
        (serde_json::Value::Object(b), serde_json::Value::Object(d)) => {
            for (k, v) in d {
                match b.get_mut(&k) {
                    Some(slot) if slot.is_object() && v.is_object() => merge_json(slot, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, d) => *b = d,
    }
}

/// Sets the one memory budget (hot tier, chunks, block cache and write buffers share it).
#[no_mangle]
pub unsafe extern "C" fn strata_options_set_memory_budget(
    opts: *mut strata_options,
    bytes: u64,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let o = handle_mut(opts, "options")?;
        let mut s = o.settings.clone();
        s.memory_budget_bytes = bytes;
        s.validate()?;
        o.settings = s;
        Ok(Status::STRATA_OK)
    })
}

/// Turns the write-ahead log on or off; `sync` also fsyncs it before each write returns.
#[no_mangle]
pub unsafe extern "C" fn strata_options_set_wal(
    opts: *mut strata_options,
    enabled: bool,
    sync: bool,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let o = handle_mut(opts, "options")?;
        o.settings.wal_enabled = enabled;
        o.settings.wal_sync = sync;
        Ok(Status::STRATA_OK)
    })
}

/// Keeps the database in `store` (for example S3) instead of the path given to open. The
/// store handle may be destroyed afterwards.
#[no_mangle]
pub unsafe extern "C" fn strata_options_set_store(
    opts: *mut strata_options,
    store: *const strata_store,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let o = handle_mut(opts, "options")?;
        o.store = Some(handle(store, "store")?.storage.clone());
        Ok(Status::STRATA_OK)
    })
}

/// Registers a store a restored database reads files from (needed to reopen a database
/// restored from checkpoints in another store).
#[no_mangle]
pub unsafe extern "C" fn strata_options_add_external_store(
    opts: *mut strata_options,
    store: *const strata_store,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let o = handle_mut(opts, "options")?;
        o.external.push(handle(store, "store")?.storage.clone());
        Ok(Status::STRATA_OK)
    })
}

/// Uses `clock` (for TTL) instead of the system clock.
#[no_mangle]
pub unsafe extern "C" fn strata_options_set_clock(
    opts: *mut strata_options,
    clock: *const strata_clock,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let o = handle_mut(opts, "options")?;
        o.clock = Some(handle(clock, "clock")?.clock.clone());
        Ok(Status::STRATA_OK)
    })
}

/// Opens databases read-only (no writes, no compaction, no flush on close).
#[no_mangle]
pub unsafe extern "C" fn strata_options_set_read_only(
    opts: *mut strata_options,
    read_only: bool,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        handle_mut(opts, "options")?.read_only = read_only;
        Ok(Status::STRATA_OK)
    })
}

/// Records the key groups `first..=last` a new database owns (so instances that never
/// restored can later be merged by a rescale).
#[no_mangle]
pub unsafe extern "C" fn strata_options_set_key_groups(
    opts: *mut strata_options,
    first: u16,
    last: u16,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let o = handle_mut(opts, "options")?;
        if first > last {
            return Err(invalid("key-group range is empty (first > last)"));
        }
        o.key_groups = Some(KeyGroups { first, last });
        Ok(Status::STRATA_OK)
    })
}

// ---------------------------------------------------------------------------------------
// Custom merge operators

/// A merge callback: folds `operand` onto the existing value (`has_existing` false: the
/// key has no older value). Returns a buffer allocated with `malloc` (the library frees
/// it) and its length in `*out_len`; NULL means an empty value. Called from any thread,
/// concurrently: it must be thread-safe, and must not call back into the library.
pub type strata_merge_fn = Option<
    unsafe extern "C" fn(
        state: *mut c_void,
        existing: *const u8,
        existing_len: usize,
        has_existing: bool,
        operand: *const u8,
        operand_len: usize,
        out_len: *mut usize,
    ) -> *mut u8,
>;

/// Releases a callback's state pointer; called once, when nothing uses it any more.
pub type strata_destructor_fn = Option<unsafe extern "C" fn(state: *mut c_void)>;

/// C callbacks with a state pointer; the destructor runs when the last user drops them.
pub(crate) struct Callback<F> {
    pub(crate) state: *mut c_void,
    pub(crate) f: F,
    pub(crate) destroy: strata_destructor_fn,
}

// SAFETY: the header requires callbacks and their state to be usable from any thread
// concurrently; the library only passes the pointer back to them.
unsafe impl<F: Send> Send for Callback<F> {}
// SAFETY: as above.
unsafe impl<F: Sync> Sync for Callback<F> {}

impl<F> Drop for Callback<F> {
    fn drop(&mut self) {
        if let Some(d) = self.destroy {
            // SAFETY: the destructor the caller registered with this state, called once.
            unsafe { d(self.state) }
        }
    }
}

/// Takes a malloc'ed callback result: copies it into a Vec and frees it.
pub(crate) fn take_malloced(p: *mut u8, len: usize) -> Vec<u8> {
    if p.is_null() {
        return Vec::new();
    }
    // SAFETY: the callback contract: `p` is a malloc'ed buffer of `len` bytes, now ours.
    unsafe {
        let v = std::slice::from_raw_parts(p, len).to_vec();
        libc::free(p.cast());
        v
    }
}

struct CMergeOperator {
    name: String,
    cb: Callback<
        unsafe extern "C" fn(
            *mut c_void,
            *const u8,
            usize,
            bool,
            *const u8,
            usize,
            *mut usize,
        ) -> *mut u8,
    >,
}

impl std::fmt::Debug for CMergeOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "C merge operator {:?}", self.name)
    }
}

impl MergeOperator for CMergeOperator {
    fn name(&self) -> &str {
        &self.name
    }
    fn merge(&self, existing: Option<&[u8]>, operand: &[u8]) -> Vec<u8> {
        let (ep, el) = existing.map_or((std::ptr::null(), 0), |e| (e.as_ptr(), e.len()));
        let mut len = 0usize;
        // SAFETY: the registered callback, with pointers valid for the call.
        let p = unsafe {
            (self.cb.f)(
                self.cb.state,
                ep,
                el,
                existing.is_some(),
                operand.as_ptr(),
                operand.len(),
                &mut len,
            )
        };
        take_malloced(p, len)
    }
}

/// Registers a merge operator under `name` for tables whose options name it
/// (`strata_table_options_set_merge(.., STRATA_MERGE_NAMED, 0, name)`). `destructor` (may be
/// NULL) releases `state` when no database and no options use the operator any more; it
/// also runs if this call fails.
#[no_mangle]
pub unsafe extern "C" fn strata_options_add_merge_operator(
    opts: *mut strata_options,
    name: *const c_char,
    state: *mut c_void,
    merge: strata_merge_fn,
    destructor: strata_destructor_fn,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let Some(f) = merge else {
            if let Some(d) = destructor {
                // SAFETY: the caller's destructor for its own state.
                unsafe { d(state) }
            }
            return Err(invalid("merge callback is null"));
        };
        let cb = Callback {
            state,
            f,
            destroy: destructor,
        };
        let o = handle_mut(opts, "options")?;
        let name = string(name, "name")?.to_string();
        if name.is_empty() {
            return Err(invalid("merge operator name is empty"));
        }
        o.merge_operators
            .push(Arc::new(CMergeOperator { name, cb }));
        Ok(Status::STRATA_OK)
    })
}

// ---------------------------------------------------------------------------------------
// Table options

/// `merge` rejected on the table.
pub const STRATA_MERGE_NONE: u32 = 0;
/// Operands appended to the value (list state).
pub const STRATA_MERGE_APPEND: u32 = 1;
/// Operands appended with a delimiter byte.
pub const STRATA_MERGE_APPEND_DELIMITED: u32 = 2;
/// Little-endian u64 counters added.
pub const STRATA_MERGE_U64_ADD: u32 = 3;
/// A custom operator registered with `strata_options_add_merge_operator`.
pub const STRATA_MERGE_NAMED: u32 = 4;

/// No compression.
pub const STRATA_COMPRESSION_NONE: u32 = 0;
/// lz4.
pub const STRATA_COMPRESSION_LZ4: u32 = 1;
/// zstd (level 3).
pub const STRATA_COMPRESSION_ZSTD: u32 = 2;

/// Options of one state table. Not thread-safe.
pub struct strata_table_options {
    pub(crate) options: TableOptions,
}

/// Creates table options: no merge, lz4, no prefix, no key-group field.
#[no_mangle]
pub unsafe extern "C" fn strata_table_options_create(
    out: *mut *mut strata_table_options,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        give_handle(
            strata_table_options {
                options: TableOptions::default(),
            },
            out,
        )?;
        Ok(Status::STRATA_OK)
    })
}

/// Destroys table options.
#[no_mangle]
pub unsafe extern "C" fn strata_table_options_destroy(
    opts: *mut strata_table_options,
) -> strata_status {
    destroy_call(opts, "table options")
}

/// Sets the merge semantics: a `STRATA_MERGE_*` kind; `delimiter` is used by
/// `STRATA_MERGE_APPEND_DELIMITED`, `name` (else may be NULL) by `STRATA_MERGE_NAMED`.
#[no_mangle]
pub unsafe extern "C" fn strata_table_options_set_merge(
    opts: *mut strata_table_options,
    kind: u32,
    delimiter: u8,
    name: *const c_char,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let o = handle_mut(opts, "table options")?;
        o.options.merge = match kind {
            STRATA_MERGE_NONE => MergeKind::None,
            STRATA_MERGE_APPEND => MergeKind::Append,
            STRATA_MERGE_APPEND_DELIMITED => MergeKind::AppendDelimited(delimiter),
            STRATA_MERGE_U64_ADD => MergeKind::U64Add,
            STRATA_MERGE_NAMED => match opt_string(name, "name")? {
                Some(n) if !n.is_empty() => MergeKind::Named(n.to_string()),
                _ => return Err(invalid("STRATA_MERGE_NAMED needs a name")),
            },
            k => return Err(invalid(format!("unknown merge kind {k}"))),
        };
        Ok(Status::STRATA_OK)
    })
}

/// Sets the scan-prefix length (0: none).
#[no_mangle]
pub unsafe extern "C" fn strata_table_options_set_prefix_len(
    opts: *mut strata_table_options,
    prefix_len: u16,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        handle_mut(opts, "table options")?.options.prefix_len = prefix_len;
        Ok(Status::STRATA_OK)
    })
}

/// Sets the compression per level (`STRATA_COMPRESSION_*`, `n` >= 1 entries; the last
/// applies to deeper levels).
#[no_mangle]
pub unsafe extern "C" fn strata_table_options_set_compression(
    opts: *mut strata_table_options,
    per_level: *const u32,
    n: usize,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let o = handle_mut(opts, "table options")?;
        if n == 0 || per_level.is_null() {
            return Err(invalid("compression needs at least one level"));
        }
        if n > 64 {
            return Err(invalid(format!("{n} compression levels")));
        }
        // SAFETY: non-null, `n` (bounded) readable u32s per the header.
        let levels = unsafe { std::slice::from_raw_parts(per_level, n) };
        o.options.compression_per_level = levels
            .iter()
            .map(|c| match *c {
                STRATA_COMPRESSION_NONE => Ok(Compression::None),
                STRATA_COMPRESSION_LZ4 => Ok(Compression::Lz4),
                STRATA_COMPRESSION_ZSTD => Ok(Compression::Zstd),
                c => Err(invalid(format!("unknown compression {c}"))),
            })
            .collect::<FfiResult<_>>()?;
        Ok(Status::STRATA_OK)
    })
}

/// Names the big-endian key-group field of the table's keys (`width` 1 or 2 bytes at
/// `offset`), so restores of a key-group subset keep only those keys.
#[no_mangle]
pub unsafe extern "C" fn strata_table_options_set_key_group(
    opts: *mut strata_table_options,
    offset: u16,
    width: u8,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let o = handle_mut(opts, "table options")?;
        if !(1..=2).contains(&width) {
            return Err(invalid(format!(
                "key-group width must be 1 or 2, got {width}"
            )));
        }
        o.options.key_group = Some(KeyGroupField { offset, width });
        Ok(Status::STRATA_OK)
    })
}

// ---------------------------------------------------------------------------------------
// Stores

/// A storage backend: a local directory, an S3-compatible bucket, or memory. Thread-safe.
/// Used for databases (`strata_options_set_store`) and checkpoint stores.
pub struct strata_store {
    pub(crate) storage: Arc<dyn Storage>,
}

/// Opens a local directory (created if missing) as a store.
#[no_mangle]
pub unsafe extern "C" fn strata_store_open_local(
    dir: *const c_char,
    out: *mut *mut strata_store,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        let s = ObjectStorage::local(string(dir, "dir")?)?;
        give_handle(
            strata_store {
                storage: Arc::new(s),
            },
            out,
        )?;
        Ok(Status::STRATA_OK)
    })
}

/// A fresh in-memory store (its contents vanish with its last user).
#[no_mangle]
pub unsafe extern "C" fn strata_store_open_memory(
    out: *mut *mut strata_store,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        let s = ObjectStorage::memory()?;
        give_handle(
            strata_store {
                storage: Arc::new(s),
            },
            out,
        )?;
        Ok(Status::STRATA_OK)
    })
}

/// Opens an S3-compatible bucket as a store: `endpoint` NULL for AWS itself, else e.g.
/// `http://127.0.0.1:18333` (path-style requests); everything lives under `prefix` (may be
/// empty). `allow_http` permits plain-HTTP endpoints.
#[no_mangle]
pub unsafe extern "C" fn strata_store_open_s3(
    endpoint: *const c_char,
    bucket: *const c_char,
    region: *const c_char,
    access_key_id: *const c_char,
    secret_access_key: *const c_char,
    prefix: *const c_char,
    allow_http: bool,
    out: *mut *mut strata_store,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        let settings = S3Settings {
            endpoint: opt_string(endpoint, "endpoint")?.map(str::to_string),
            bucket: string(bucket, "bucket")?.to_string(),
            region: string(region, "region")?.to_string(),
            access_key_id: string(access_key_id, "access_key_id")?.to_string(),
            secret_access_key: string(secret_access_key, "secret_access_key")?.to_string(),
            allow_http,
            prefix: opt_string(prefix, "prefix")?.unwrap_or("").to_string(),
        };
        let s = ObjectStorage::s3(&settings)?;
        give_handle(
            strata_store {
                storage: Arc::new(s),
            },
            out,
        )?;
        Ok(Status::STRATA_OK)
    })
}

/// Opens the S3 store the environment names (`STRATA_S3_ENDPOINT`, `STRATA_S3_BUCKET`,
/// `STRATA_S3_REGION`, `STRATA_S3_ACCESS_KEY_ID`, `STRATA_S3_SECRET_ACCESS_KEY`) under
/// `prefix`; `STRATA_NOT_FOUND` if the endpoint or bucket is unset.
#[no_mangle]
pub unsafe extern "C" fn strata_store_open_s3_from_env(
    prefix: *const c_char,
    out: *mut *mut strata_store,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        let prefix = opt_string(prefix, "prefix")?.unwrap_or("");
        let Some(settings) = S3Settings::from_env(prefix) else {
            return Ok(Status::STRATA_NOT_FOUND);
        };
        let s = ObjectStorage::s3(&settings)?;
        give_handle(
            strata_store {
                storage: Arc::new(s),
            },
            out,
        )?;
        Ok(Status::STRATA_OK)
    })
}

/// Destroys a store handle (databases and checkpoint stores using it keep it alive).
#[no_mangle]
pub unsafe extern "C" fn strata_store_destroy(store: *mut strata_store) -> strata_status {
    destroy_call(store, "store")
}

/// The store's location (`file:///...`, `s3://bucket/prefix`, `memory://...`) in `*out`.
#[no_mangle]
pub unsafe extern "C" fn strata_store_location(
    store: *const strata_store,
    out: *mut *mut c_char,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        give_string(&handle(store, "store")?.storage.location(), out)?;
        Ok(Status::STRATA_OK)
    })
}

// ---------------------------------------------------------------------------------------
// Clock

/// A manual clock for TTL (tests and replays): time moves only when told. Thread-safe.
pub struct strata_clock {
    pub(crate) clock: Arc<dyn Clock>,
    manual: Arc<ManualClock>,
}

/// Creates a manual clock reading `millis`.
#[no_mangle]
pub unsafe extern "C" fn strata_clock_create_manual(
    millis: u64,
    out: *mut *mut strata_clock,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        let manual = Arc::new(ManualClock::new(millis));
        give_handle(
            strata_clock {
                clock: manual.clone(),
                manual,
            },
            out,
        )?;
        Ok(Status::STRATA_OK)
    })
}

/// Moves the clock forward by `millis`.
#[no_mangle]
pub unsafe extern "C" fn strata_clock_advance(
    clock: *const strata_clock,
    millis: u64,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        handle(clock, "clock")?.manual.advance(millis);
        Ok(Status::STRATA_OK)
    })
}

/// The clock's time in `*millis`.
#[no_mangle]
pub unsafe extern "C" fn strata_clock_now(
    clock: *const strata_clock,
    millis: *mut u64,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(millis, "millis")?;
        let now = handle(clock, "clock")?.clock.now_millis();
        *crate::out_ptr(millis, "millis")? = now;
        Ok(Status::STRATA_OK)
    })
}

/// Destroys a clock handle (databases using it keep it alive).
#[no_mangle]
pub unsafe extern "C" fn strata_clock_destroy(clock: *mut strata_clock) -> strata_status {
    destroy_call(clock, "clock")
}
