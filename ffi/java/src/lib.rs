//! The JNI library behind Strata's Java binding (`io.strata.*`, in `src/main/java`).
//!
//! Every native method is a static method of the package-private class
//! `io.strata.NativeLib`; the public Java classes own the handles and call it. Rules:
//!
//! - **Handles** are `jlong`s holding a `Box` pointer made by [`give`]. The Java class that
//!   owns one is the only code that can pass it back (private field, set once, zeroed under
//!   its lock on `close()`), so its type is known; a zero handle is a closed object and
//!   gets `StrataException(CLOSED)`. Objects Java may call from several threads at once
//!   (write batches, iterators) sit behind a mutex, so no Java race reaches undefined
//!   behaviour. [`live_objects`] counts what is alive, for the leak tests.
//! - **Errors** become a checked `io.strata.StrataException` carrying the engine's error
//!   kind; a panic is caught at the boundary ([`guard`]) and becomes kind `INTERNAL`; a
//!   Java exception already pending (an `OutOfMemoryError` while copying) is left as it is.
//! - **Bytes** cross by copy (`byte[]` in and out); keys and values are read into a
//!   per-thread buffer, so a put does not allocate on the Rust side.

#![allow(clippy::too_many_arguments)]

mod flink;

use std::any::Any;
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use jni::objects::{JByteArray, JClass, JLongArray, JObject, JObjectArray, JString, JValue};
use jni::sys::{jboolean, jbyteArray, jint, jlong, jobject, jobjectArray, jstring, JNI_TRUE};
use jni::JNIEnv;
use parking_lot::Mutex;
use strata::{
    CheckpointStore, Compression, Db, DbIterator, Error, KeyGroupField, KeyGroups, MergeKind,
    ObjectStorage, RestoreSource, Settings, Snapshot, Table, TableOptions, WriteBatch,
};

/// Why a native call failed, before it becomes a Java exception.
enum Fail {
    /// An engine error, with its kind.
    Engine(Error),
    /// A bad argument found at the boundary.
    Invalid(String),
    /// A handle of a closed object.
    Closed(&'static str),
    /// A JNI call failed; a Java exception may already be pending.
    Jni(jni::errors::Error),
    /// A panic, caught.
    Panic(String),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Engine(e)
    }
}

impl From<jni::errors::Error> for Fail {
    fn from(e: jni::errors::Error) -> Self {
        Fail::Jni(e)
    }
}

type JResult<T> = Result<T, Fail>;

fn invalid(msg: impl Into<String>) -> Fail {
    Fail::Invalid(msg.into())
}

/// The ordinal of `io.strata.StrataException.Kind` for an error.
fn kind_code(f: &Fail) -> jint {
    match f {
        Fail::Engine(Error::InvalidArgument(_)) | Fail::Invalid(_) => 0,
        Fail::Engine(Error::Corruption { .. }) => 1,
        Fail::Engine(Error::Io { .. }) => 2,
        Fail::Engine(Error::NotFound(_)) => 3,
        Fail::Engine(Error::Poisoned(_)) => 4,
        Fail::Engine(Error::Closed) | Fail::Closed(_) => 5,
        Fail::Engine(Error::Incomplete(_)) => 6,
        Fail::Engine(Error::Busy(_)) => 7,
        Fail::Jni(_) | Fail::Panic(_) => 8,
        // A kind added to the engine later: reported as I/O until the binding names it.
        Fail::Engine(_) => 2,
    }
}

fn message(f: &Fail) -> String {
    match f {
        Fail::Engine(e) => e.to_string(),
        Fail::Invalid(m) => format!("invalid argument: {m}"),
        Fail::Closed(what) => format!("the {what} is closed"),
        Fail::Jni(e) => format!("JNI call failed: {e}"),
        Fail::Panic(m) => format!("internal error (a panic in the native library): {m}"),
    }
}

fn panic_message(p: Box<dyn Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Throws `f` as a `StrataException` unless a Java exception is already pending.
fn throw(env: &mut JNIEnv, f: Fail) {
    if env.exception_check().unwrap_or(true) {
        return;
    }
    let code = kind_code(&f);
    let msg = message(&f);
    let thrown = (|| -> jni::errors::Result<()> {
        let jmsg = env.new_string(&msg)?;
        let ex = env.new_object(
            "io/strata/StrataException",
            "(ILjava/lang/String;)V",
            &[JValue::Int(code), JValue::Object(&jmsg)],
        )?;
        env.throw(jni::objects::JThrowable::from(ex))
    })();
    if thrown.is_err() && !env.exception_check().unwrap_or(true) {
        let _ = env.throw_new("java/lang/IllegalStateException", msg);
    }
}

/// Runs one native call: its error becomes a Java exception and `default` is returned;
/// a panic is caught here and never unwinds into the JVM.
fn guard<'l, R>(
    env: &mut JNIEnv<'l>,
    default: R,
    f: impl FnOnce(&mut JNIEnv<'l>) -> JResult<R>,
) -> R {
    match catch_unwind(AssertUnwindSafe(|| f(env))) {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            throw(env, e);
            default
        }
        Err(p) => {
            throw(env, Fail::Panic(panic_message(p)));
            default
        }
    }
}

static LIVE: AtomicI64 = AtomicI64::new(0);

/// Boxes `v` and hands the pointer to Java as a handle.
fn give<T>(v: T) -> jlong {
    LIVE.fetch_add(1, Ordering::Relaxed);
    Box::into_raw(Box::new(v)) as jlong
}

/// The object behind handle `h`.
///
/// # Safety
/// `h` is zero or a handle [`give`] made from a `T` and not yet passed to [`take`]; the
/// Java class owning it guarantees both (see the module comment).
unsafe fn obj<'a, T>(h: jlong, what: &'static str) -> JResult<&'a T> {
    if h == 0 {
        return Err(Fail::Closed(what));
    }
    // SAFETY: per this function's contract `h` is a live `Box<T>` pointer; the Java owner
    // keeps the object reachable (a reachability fence) for the duration of the call.
    Ok(unsafe { &*(h as *const T) })
}

/// Frees the object behind handle `h` (zero is a no-op).
///
/// # Safety
/// As for [`obj`]; afterwards `h` is never used again (the Java owner zeroed it).
unsafe fn take<T>(h: jlong) {
    if h != 0 {
        LIVE.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: per the contract, `h` came from `Box::into_raw` in `give::<T>` and is
        // freed exactly once.
        drop(unsafe { Box::from_raw(h as *mut T) });
    }
}

/// Handle kinds, as `io.strata.NativeLib` passes them to `dispose`.
const KIND_DB: jint = 1;
const KIND_TABLE: jint = 2;
const KIND_BATCH: jint = 3;
const KIND_SNAPSHOT: jint = 4;
const KIND_ITERATOR: jint = 5;
const KIND_STORE: jint = 6;

thread_local! {
    static KEY_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static VALUE_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Copies a Java `byte[]` into `buf` (cleared first). A null array is `InvalidArgument`.
fn read_into(env: &JNIEnv, a: &JByteArray, what: &str, buf: &mut Vec<u8>) -> JResult<()> {
    if a.is_null() {
        return Err(invalid(format!("{what} is null")));
    }
    let n = env.get_array_length(a)? as usize;
    buf.clear();
    buf.resize(n, 0);
    // SAFETY: `u8` and `i8` (`jbyte`) have the same size and alignment, and every bit
    // pattern is valid for both, so the buffer may be viewed as `[i8]` for the copy.
    let view = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<i8>(), n) };
    env.get_byte_array_region(a, 0, view)?;
    Ok(())
}

/// Runs `f` with the key (and optionally the value) copied into per-thread buffers.
fn with_key<R>(env: &JNIEnv, key: &JByteArray, f: impl FnOnce(&[u8]) -> JResult<R>) -> JResult<R> {
    KEY_BUF.with(|k| {
        let mut k = k.try_borrow_mut().map_err(|_| invalid("re-entrant call"))?;
        read_into(env, key, "key", &mut k)?;
        f(&k)
    })
}

fn with_key_value<R>(
    env: &JNIEnv,
    key: &JByteArray,
    value: &JByteArray,
    f: impl FnOnce(&[u8], &[u8]) -> JResult<R>,
) -> JResult<R> {
    with_key(env, key, |k| {
        VALUE_BUF.with(|v| {
            let mut v = v.try_borrow_mut().map_err(|_| invalid("re-entrant call"))?;
            read_into(env, value, "value", &mut v)?;
            f(k, &v)
        })
    })
}

fn bytes_arg(env: &JNIEnv, a: &JByteArray, what: &str) -> JResult<Vec<u8>> {
    let mut v = Vec::new();
    read_into(env, a, what, &mut v)?;
    Ok(v)
}

fn string_arg(env: &mut JNIEnv, s: &JString, what: &str) -> JResult<String> {
    if s.is_null() {
        return Err(invalid(format!("{what} is null")));
    }
    Ok(env.get_string(s)?.into())
}

fn opt_string_arg(env: &mut JNIEnv, s: &JString) -> JResult<Option<String>> {
    if s.is_null() {
        return Ok(None);
    }
    Ok(Some(env.get_string(s)?.into()))
}

fn out_bytes(env: &mut JNIEnv, v: Option<&[u8]>) -> JResult<jbyteArray> {
    match v {
        None => Ok(std::ptr::null_mut()),
        Some(v) => Ok(env.byte_array_from_slice(v)?.into_raw()),
    }
}

fn out_string(env: &mut JNIEnv, s: &str) -> JResult<jstring> {
    Ok(env.new_string(s)?.into_raw())
}

/// A `key_groups` argument: `first < 0` means none.
fn key_groups(first: jint, last: jint) -> JResult<Option<KeyGroups>> {
    if first < 0 {
        return Ok(None);
    }
    let ok = |v: jint| u16::try_from(v).map_err(|_| invalid(format!("key group {v}")));
    let (first, last) = (ok(first)?, ok(last)?);
    if first > last {
        return Err(invalid("key-group range is empty (first > last)"));
    }
    Ok(Some(KeyGroups { first, last }))
}

fn settings(json: Option<String>) -> JResult<Settings> {
    match json {
        None => Ok(Settings::default()),
        Some(j) => serde_json::from_str(&j).map_err(|e| invalid(format!("settings: {e}"))),
    }
}

/// What a Java `StrataDb` handle points to.
struct DbHandle {
    db: Db,
}

fn builder(
    env: &mut JNIEnv,
    path: &JString,
    settings_json: &JString,
) -> JResult<strata::DbBuilder> {
    let s = settings(opt_string_arg(env, settings_json)?)?;
    let b = Db::builder(s);
    Ok(match opt_string_arg(env, path)? {
        Some(p) => b.path(p),
        None => b.storage(Arc::new(ObjectStorage::memory()?)),
    })
}

// ---- library ----------------------------------------------------------------------------

/// Native objects alive (every kind), for leak tests.
#[no_mangle]
pub extern "system" fn Java_io_strata_NativeLib_liveObjects(_env: JNIEnv, _c: JClass) -> jlong {
    LIVE.load(Ordering::Relaxed)
}

/// Panics inside the boundary, so tests can check that it becomes an exception.
#[no_mangle]
pub extern "system" fn Java_io_strata_NativeLib_debugPanic(mut env: JNIEnv, _c: JClass) {
    guard(&mut env, (), |_| -> JResult<()> {
        panic!("debugPanic was called")
    })
}

/// Frees a handle of kind `kind` (the `KIND_*` constants).
#[no_mangle]
pub extern "system" fn Java_io_strata_NativeLib_dispose(
    mut env: JNIEnv,
    _c: JClass,
    kind: jint,
    h: jlong,
) {
    guard(&mut env, (), |_| {
        // SAFETY: the Java owner passes its own kind constant and its handle exactly once
        // (its Cleaner action runs at most once).
        unsafe {
            match kind {
                KIND_DB => take::<DbHandle>(h),
                KIND_TABLE => take::<Table>(h),
                KIND_BATCH => take::<Mutex<WriteBatch>>(h),
                KIND_SNAPSHOT => take::<Snapshot>(h),
                KIND_ITERATOR => take::<Mutex<DbIterator>>(h),
                KIND_STORE => take::<CheckpointStore>(h),
                _ => return Err(invalid(format!("handle kind {kind}"))),
            }
        }
        Ok(())
    })
}

// ---- database ---------------------------------------------------------------------------

/// Opens (or creates) a database; `path` null: in memory.
#[no_mangle]
pub extern "system" fn Java_io_strata_NativeLib_dbOpen(
    mut env: JNIEnv,
    _c: JClass,
    path: JString,
    settings_json: JString,
    kg_first: jint,
    kg_last: jint,
    read_only: jboolean,
) -> jlong {
    guard(&mut env, 0, |env| {
        let mut b = builder(env, &path, &settings_json)?;
        if let Some(k) = key_groups(kg_first, kg_last)? {
            b = b.key_groups(k);
        }
        if read_only == JNI_TRUE {
            b = b.read_only();
        }
        Ok(give(DbHandle { db: b.open()? }))
    })
}

/// Restores a new database at `path` from checkpoints `ids[i]` in `stores[i]`.
#[no_mangle]
pub extern "system" fn Java_io_strata_NativeLib_dbRestore(
    mut env: JNIEnv,
    _c: JClass,
    path: JString,
    settings_json: JString,
    stores: JLongArray,
    ids: JLongArray,
    kg_first: jint,
    kg_last: jint,
) -> jlong {
    guard(&mut env, 0, |env| {
        let b = builder(env, &path, &settings_json)?;
        let stores = long_array(env, &stores, "stores")?;
        let ids = long_array(env, &ids, "ids")?;
        if stores.is_empty() || stores.len() != ids.len() {
            return Err(invalid("restore needs as many stores as ids, at least one"));
        }
        let mut sources = Vec::new();
        for (s, id) in stores.iter().zip(&ids) {
            // SAFETY: the Java CheckpointStore objects passed their live handles.
            let store = unsafe { obj::<CheckpointStore>(*s, "checkpoint store")? };
            let id = u64::try_from(*id).map_err(|_| invalid(format!("checkpoint id {id}")))?;
            sources.extend(RestoreSource::all(store, id)?);
        }
        let db = b.restore(&sources, key_groups(kg_first, kg_last)?)?;
        Ok(give(DbHandle { db }))
    })
}

fn long_array(env: &JNIEnv, a: &JLongArray, what: &str) -> JResult<Vec<i64>> {
    if a.is_null() {
        return Err(invalid(format!("{what} is null")));
    }
    let n = env.get_array_length(a)? as usize;
    let mut v = vec![0i64; n];
    env.get_long_array_region(a, 0, &mut v)?;
    Ok(v)
}

/// Closes a database (flushing what a WAL-less database would otherwise lose is the
/// caller's checkpoint; this only stops background work and reports its errors).
#[no_mangle]
pub extern "system" fn Java_io_strata_NativeLib_dbClose(mut env: JNIEnv, _c: JClass, db: jlong) {
    guard(&mut env, (), |_| {
        // SAFETY: a live StrataDb handle.
        let d = unsafe { obj::<DbHandle>(db, "database")? };
        Ok(d.db.close()?)
    })
}

fn db<'a>(h: jlong) -> JResult<&'a Db> {
    // SAFETY: every caller passes the handle of a Java StrataDb (module comment).
    Ok(&unsafe { obj::<DbHandle>(h, "database")? }.db)
}

fn table<'a>(h: jlong) -> JResult<&'a Table> {
    // SAFETY: every caller passes the handle of a Java Table.
    unsafe { obj::<Table>(h, "table") }
}

/// Creates a table (or returns the existing one if its options match).
#[no_mangle]
pub extern "system" fn Java_io_strata_NativeLib_createTable(
    mut env: JNIEnv,
    _c: JClass,
    dbh: jlong,
    name: JString,
    merge: jint,
    delimiter: jint,
    prefix_len: jint,
    kg_offset: jint,
    kg_width: jint,
    compression: jint,
) -> jlong {
    guard(&mut env, 0, |env| {
        let name = string_arg(env, &name, "name")?;
        let merge = match merge {
            0 => MergeKind::None,
            1 => MergeKind::Append,
            2 => MergeKind::AppendDelimited(
                u8::try_from(delimiter).map_err(|_| invalid("delimiter is one byte"))?,
            ),
            3 => MergeKind::U64Add,
            m => return Err(invalid(format!("merge kind {m}"))),
        };
        let compression = match compression {
            0 => Compression::None,
            1 => Compression::Lz4,
            2 => Compression::Zstd,
            c => return Err(invalid(format!("compression {c}"))),
        };
        let key_group = if kg_width == 0 {
            None
        } else {
            Some(KeyGroupField {
                offset: u16::try_from(kg_offset).map_err(|_| invalid("key-group offset"))?,
                width: u8::try_from(kg_width).map_err(|_| invalid("key-group width"))?,
            })
        };
        let options = TableOptions {
            merge,
            compression_per_level: vec![compression],
            prefix_len: u16::try_from(prefix_len).map_err(|_| invalid("prefix length"))?,
            key_group,
        };
        let d = db(dbh)?;
        let t = match d.table(&name) {
            Some(t) if d.table_options(&t)? == options => t,
            Some(_) => return Err(invalid(format!("table {name:?} exists with other options"))),
            None => d.create_table(&name, options)?,
        };
        Ok(give(t))
    })
}

/// The table named `name`, or 0.
#[no_mangle]
pub extern "system" fn Java_io_strata_NativeLib_table(
    mut env: JNIEnv,
    _c: JClass,
    dbh: jlong,
    name: JString,
) -> jlong {
    guard(&mut env, 0, |env| {
        let name = string_arg(env, &name, "name")?;
        Ok(db(dbh)?.table(&name).map_or(0, give))
    })
}

/// Names of every table.
#[no_mangle]
pub extern "system" fn Java_io_strata_NativeLib_tableNames(
    mut env: JNIEnv,
    _c: JClass,
    dbh: jlong,
) -> jobjectArray {
    guard(&mut env, std::ptr::null_mut(), |env| {
        let names: Vec<String> = db(dbh)?
            .tables()
            .iter()
            .map(|t| t.name().to_string())
            .collect();
        string_array(env, &names)
    })
}

fn string_array(env: &mut JNIEnv, v: &[String]) -> JResult<jobjectArray> {
    let a = env.new_object_array(v.len() as i32, "java/lang/String", JObject::null())?;
    for (i, s) in v.iter().enumerate() {
        let js = env.new_string(s)?;
        env.set_object_array_element(&a, i as i32, js)?;
    }
    Ok(a.into_raw())
}

#[no_mangle]
pub extern "system" fn Java_io_strata_NativeLib_put(
    mut env: JNIEnv,
    _c: JClass,
    dbh: jlong,
    th: jlong,
    key: JByteArray,
    value: JByteArray,
) {
    guard(&mut env, (), |env| {
        let (d, t) = (db(dbh)?, table(th)?);
        with_key_value(env, &key, &value, |k, v| Ok(d.put(t, k, v)?))
    })
}

#[no_mangle]
pub extern "system" fn Java_io_strata_NativeLib_merge(
    mut env: JNIEnv,
    _c: JClass,
    dbh: jlong,
    th: jlong,
    key: JByteArray,
    operand: JByteArray,
) {
    guard(&mut env, (), |env| {
        let (d, t) = (db(dbh)?, table(th)?);
        with_key_value(env, &key, &operand, |k, v| Ok(d.merge(t, k, v)?))
    })
}

#[no_mangle]
pub extern "system" fn Java_io_strata_NativeLib_delete(
    mut env: JNIEnv,
    _c: JClass,
    dbh: jlong,
    th: jlong,
    key: JByteArray,
) {
    guard(&mut env, (), |env| {
        let (d, t) = (db(dbh)?, table(th)?);
        with_key(env, &key, |k| Ok(d.delete(t, k)?))
    })
}

/// The value of `key`, or null. `snap` 0: the latest state.
#[no_mangle]
pub extern "system" fn Java_io_strata_NativeLib_get(
    mut env: JNIEnv,
    _c: JClass,
    dbh: jlong,
    snap: jlong,
    th: jlong,
    key: JByteArray,
) -> jbyteArray {
    guard(&mut env, std::ptr::null_mut(), |env| {
        let t = table(th)?;
        let v = if snap == 0 {
            let d = db(dbh)?;
            with_key(env, &key, |k| Ok(d.get(t, k)?))?
        } else {
            let s = snapshot(snap)?;
            with_key(env, &key, |k| Ok(s.get(t, k)?))?
        };
        out_bytes(env, v.as_deref())
    })
}

/// Writes a batch atomically; the batch stays usable (and keeps its entries).
#[no_mangle]
pub extern "system" fn Java_io_strata_NativeLib_write(
    mut env: JNIEnv,
    _c: JClass,
    dbh: jlong,
    bh: jlong,
) {
    guard(&mut env, (), |_| {
        let d = db(dbh)?;
        let b = batch(bh)?.lock().clone();
        Ok(d.write(b)?)
    })
}

#[no_mangle]
pub extern "system" fn Java_io_strata_NativeLib_flush(mut env: JNIEnv, _c: JClass, dbh: jlong) {
    guard(&mut env, (), |_| Ok(db(dbh)?.flush()?))
}

#[no_mangle]
pub extern "system" fn Java_io_strata_NativeLib_compact(mut env: JNIEnv, _c: JClass, dbh: jlong) {
    guard(&mut env, (), |_| {
        let d = db(dbh)?;
        d.compact()?;
        Ok(d.wait_for_compactions()?)
    })
}

/// The database's statistics as text.
#[no_mangle]
pub extern "system" fn Java_io_strata_NativeLib_stats(
    mut env: JNIEnv,
    _c: JClass,
    dbh: jlong,
) -> jstring {
    guard(&mut env, std::ptr::null_mut(), |env| {
        let s = format!("{:#?}", db(dbh)?.stats());
        out_string(env, &s)
    })
}

/// The database's settings as JSON.
#[no_mangle]
pub extern "system" fn Java_io_strata_NativeLib_settingsJson(
    mut env: JNIEnv,
    _c: JClass,
    dbh: jlong,
) -> jstring {
    guard(&mut env, std::ptr::null_mut(), |env| {
        let s = serde_json::to_string(db(dbh)?.settings()).map_err(|e| invalid(e.to_string()))?;
        out_string(env, &s)
    })
}

// ---- write batches ----------------------------------------------------------------------

fn batch<'a>(h: jlong) -> JResult<&'a Mutex<WriteBatch>> {
    // SAFETY: every caller passes the handle of a Java WriteBatch.
    unsafe { obj::<Mutex<WriteBatch>>(h, "write batch") }
}

#[no_mangle]
pub extern "system" fn Java_io_strata_NativeLib_batchNew(mut env: JNIEnv, _c: JClass) -> jlong {
    guard(&mut env, 0, |_| Ok(give(Mutex::new(WriteBatch::new()))))
}

/// Adds an operation: `op` 0 put, 1 merge, 2 delete (`value` ignored).
#[no_mangle]
pub extern "system" fn Java_io_strata_NativeLib_batchAdd(
    mut env: JNIEnv,
    _c: JClass,
    bh: jlong,
    op: jint,
    th: jlong,
    key: JByteArray,
    value: JByteArray,
) {
    guard(&mut env, (), |env| {
        let (b, t) = (batch(bh)?, table(th)?);
        match op {
            0 => with_key_value(env, &key, &value, |k, v| {
                b.lock().put(t, k, v);
                Ok(())
            }),
            1 => with_key_value(env, &key, &value, |k, v| {
                b.lock().merge(t, k, v);
                Ok(())
            }),
            2 => with_key(env, &key, |k| {
                b.lock().delete(t, k);
                Ok(())
            }),
            _ => Err(invalid(format!("batch operation {op}"))),
        }
    })
}

#[no_mangle]
pub extern "system" fn Java_io_strata_NativeLib_batchCount(
    mut env: JNIEnv,
    _c: JClass,
    bh: jlong,
) -> jint {
    guard(&mut env, 0, |_| Ok(batch(bh)?.lock().len() as jint))
}

#[no_mangle]
pub extern "system" fn Java_io_strata_NativeLib_batchClear(mut env: JNIEnv, _c: JClass, bh: jlong) {
    guard(&mut env, (), |_| {
        batch(bh)?.lock().clear();
        Ok(())
    })
}

// ---- snapshots and iterators ------------------------------------------------------------

fn snapshot<'a>(h: jlong) -> JResult<&'a Snapshot> {
    // SAFETY: every caller passes the handle of a Java Snapshot.
    unsafe { obj::<Snapshot>(h, "snapshot") }
}

#[no_mangle]
pub extern "system" fn Java_io_strata_NativeLib_snapshotNew(
    mut env: JNIEnv,
    _c: JClass,
    dbh: jlong,
) -> jlong {
    guard(&mut env, 0, |_| Ok(give(db(dbh)?.snapshot())))
}

#[no_mangle]
pub extern "system" fn Java_io_strata_NativeLib_snapshotSequence(
    mut env: JNIEnv,
    _c: JClass,
    sh: jlong,
) -> jlong {
    guard(&mut env, 0, |_| Ok(snapshot(sh)?.sequence() as jlong))
}

/// An iterator over `[start, end)` (`end` null: to the end), or over the keys starting
/// with `start` if `prefix`; at snapshot `snap` (0: a new one).
#[no_mangle]
pub extern "system" fn Java_io_strata_NativeLib_iterNew(
    mut env: JNIEnv,
    _c: JClass,
    dbh: jlong,
    snap: jlong,
    th: jlong,
    start: JByteArray,
    end: JByteArray,
    prefix: jboolean,
) -> jlong {
    guard(&mut env, 0, |env| {
        let t = table(th)?;
        let start = bytes_arg(env, &start, "start")?;
        let end = if end.is_null() {
            None
        } else {
            Some(bytes_arg(env, &end, "end")?)
        };
        let owned;
        let s = if snap == 0 {
            owned = db(dbh)?.snapshot();
            &owned
        } else {
            snapshot(snap)?
        };
        let it = if prefix == JNI_TRUE {
            s.prefix(t, &start)?
        } else {
            s.range(t, &start, end.as_deref())?
        };
        Ok(give(Mutex::new(it)))
    })
}

/// The next entry as `{key, value}`, or null at the end.
#[no_mangle]
pub extern "system" fn Java_io_strata_NativeLib_iterNext(
    mut env: JNIEnv,
    _c: JClass,
    ih: jlong,
) -> jobjectArray {
    guard(&mut env, std::ptr::null_mut(), |env| {
        // SAFETY: the handle of a Java StrataIterator.
        let it = unsafe { obj::<Mutex<DbIterator>>(ih, "iterator")? };
        // Copies straight from the iterator into Java arrays (no Rust-side copy).
        let mut it = it.lock();
        if !it.advance()? {
            return Ok(std::ptr::null_mut());
        }
        let a = env.new_object_array(2, "[B", JObject::null())?;
        let jk = env.byte_array_from_slice(it.key())?;
        let jv = env.byte_array_from_slice(it.value())?;
        env.set_object_array_element(&a, 0, jk)?;
        env.set_object_array_element(&a, 1, jv)?;
        Ok(a.into_raw())
    })
}

// ---- checkpoints ------------------------------------------------------------------------

/// A checkpoint store in a local directory (`prefix` inside it).
#[no_mangle]
pub extern "system" fn Java_io_strata_NativeLib_storeLocal(
    mut env: JNIEnv,
    _c: JClass,
    dir: JString,
    prefix: JString,
) -> jlong {
    guard(&mut env, 0, |env| {
        let dir = string_arg(env, &dir, "dir")?;
        let prefix = string_arg(env, &prefix, "prefix")?;
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(format!("creating {dir}"), e))?;
        let storage = Arc::new(ObjectStorage::local(&dir)?);
        Ok(give(CheckpointStore::new(storage, &prefix)?))
    })
}

fn store_opt<'a>(h: jlong) -> JResult<Option<&'a CheckpointStore>> {
    if h == 0 {
        return Ok(None);
    }
    // SAFETY: a non-zero handle of a Java CheckpointStore.
    Ok(Some(unsafe {
        obj::<CheckpointStore>(h, "checkpoint store")?
    }))
}

/// Takes checkpoint `id` into `store` (0: in place) and waits for it; returns an
/// `io.strata.CheckpointInfo`.
#[no_mangle]
pub extern "system" fn Java_io_strata_NativeLib_checkpoint(
    mut env: JNIEnv,
    _c: JClass,
    dbh: jlong,
    id: jlong,
    sh: jlong,
) -> jobject {
    guard(&mut env, std::ptr::null_mut(), |env| {
        let d = db(dbh)?;
        let id = u64::try_from(id).map_err(|_| invalid(format!("checkpoint id {id}")))?;
        let store = store_opt(sh)?;
        let info = d.checkpoint(id, store)?.wait()?;
        let contents = d.checkpoint_contents(id, store)?;
        let manifest = env.byte_array_from_slice(&contents.manifest)?;
        let locations: Vec<String> = contents.files.iter().map(|f| f.location.clone()).collect();
        let paths: Vec<String> = contents.files.iter().map(|f| f.path.clone()).collect();
        let sizes: Vec<i64> = contents.files.iter().map(|f| f.size as i64).collect();
        // SAFETY: string_array returns a fresh local reference to a String[].
        let locations = unsafe { JObject::from_raw(string_array(env, &locations)?) };
        // SAFETY: as above.
        let paths = unsafe { JObject::from_raw(string_array(env, &paths)?) };
        let jsizes = env.new_long_array(sizes.len() as i32)?;
        env.set_long_array_region(&jsizes, 0, &sizes)?;
        let o = env.new_object(
            "io/strata/CheckpointInfo",
            "(J[B[Ljava/lang/String;[Ljava/lang/String;[JJJJ)V",
            &[
                JValue::Long(id as i64),
                JValue::Object(&manifest),
                JValue::Object(&locations),
                JValue::Object(&paths),
                JValue::Object(&jsizes),
                JValue::Long(info.bytes_uploaded as i64),
                JValue::Long(info.sync_duration.as_nanos() as i64),
                JValue::Long(info.total_duration.as_nanos() as i64),
            ],
        )?;
        Ok(o.into_raw())
    })
}

/// Releases checkpoint `id` in `store` (0: in place); `subsume`: every one older than `id`.
#[no_mangle]
pub extern "system" fn Java_io_strata_NativeLib_releaseCheckpoint(
    mut env: JNIEnv,
    _c: JClass,
    dbh: jlong,
    id: jlong,
    sh: jlong,
    subsume: jboolean,
) {
    guard(&mut env, (), |_| {
        let d = db(dbh)?;
        let id = u64::try_from(id).map_err(|_| invalid(format!("checkpoint id {id}")))?;
        let store = store_opt(sh)?;
        if subsume == JNI_TRUE {
            Ok(d.subsume_checkpoints(id, store)?)
        } else {
            Ok(d.release_checkpoint(id, store)?)
        }
    })
}

/// Writes a checkpoint's manifest (as a CheckpointInfo carried it) into `store` for files
/// the host copied there, file `i` at `paths[i]`; returns the checkpoint id.
#[no_mangle]
pub extern "system" fn Java_io_strata_NativeLib_rehomeCheckpoint(
    mut env: JNIEnv,
    _c: JClass,
    sh: jlong,
    manifest: JByteArray,
    paths: JObjectArray,
) -> jlong {
    guard(&mut env, 0, |env| {
        // SAFETY: the handle of a Java CheckpointStore.
        let store = unsafe { obj::<CheckpointStore>(sh, "checkpoint store")? };
        let manifest = bytes_arg(env, &manifest, "manifest")?;
        if paths.is_null() {
            return Err(invalid("paths is null"));
        }
        let n = env.get_array_length(&paths)?;
        let mut v = Vec::with_capacity(n as usize);
        for i in 0..n {
            let s = JString::from(env.get_object_array_element(&paths, i)?);
            v.push(string_arg(env, &s, "path")?);
        }
        let r = strata::rehome_checkpoint(&manifest, &v, store)?;
        Ok(r.checkpoint_id as jlong)
    })
}
