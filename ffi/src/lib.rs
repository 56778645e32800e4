//! The C ABI over Strata (`include/strata.h`, generated from this crate by cbindgen).
//!
//! Conventions (the model is RocksDB's `c.h`, with rustls-ffi's status codes):
//! - Opaque handles (`strata_db`, `strata_iterator`, ...) with a `*_create`/`*_open` and a
//!   `*_destroy` each. Every handle is registered while alive: a null pointer, a handle of
//!   the wrong type or one already destroyed is reported as `STRATA_INVALID_ARGUMENT`, never
//!   dereferenced (an address reused by a new handle of the same type cannot be told apart).
//! - Every fallible call returns a [`strata_status`] and takes a last `char **err`: on an
//!   error (not on `STRATA_NOT_FOUND`), when `err` is not null, `*err` gets a message the
//!   caller frees with [`strata_free`] (a message already there is freed first, as in
//!   RocksDB, so `*err` must start as `NULL`).
//! - Keys and values are pointer + length; a null pointer is allowed only with length 0.
//!   Strings (paths, table names) are NUL-terminated UTF-8.
//! - Owned results are `malloc`ed buffers freed with [`strata_free`]; pinned results and
//!   iterator entries are borrowed until the handle is destroyed or moved.
//! - No panic crosses the boundary: every exported function catches unwinding and returns
//!   `STRATA_PANIC` with the panic's message.
#![deny(missing_docs)]
#![allow(non_camel_case_types)]
#![deny(unsafe_op_in_unsafe_fn)]
// Exported functions check their pointers before use (see `handle` and `bytes`); the
// remaining obligations (a length that matches its buffer, a handle not destroyed while
// another thread uses it) are stated in the header and cannot be checked.
#![allow(clippy::missing_safety_doc)]
// C functions take every argument flat (pointer + length pairs, out-parameters, `err`),
// as RocksDB's c.h does; bundling them into structs would only move the count.
#![allow(clippy::too_many_arguments)]

mod checkpoint;
mod db;
mod keyed;
mod options;

use std::any::TypeId;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::ffi::{c_char, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::LazyLock;

use parking_lot::RwLock;
use strata::Error;

pub use checkpoint::*;
pub use db::*;
pub use keyed::*;
pub use options::*;

/// Major version of the C ABI. Within one major version the ABI only grows: functions and
/// enum values are added, never changed or removed.
pub const STRATA_ABI_VERSION: u32 = 1;

/// Returns [`STRATA_ABI_VERSION`] of the library actually loaded; compare it with the
/// header's `STRATA_ABI_VERSION`. Never fails.
#[no_mangle]
pub extern "C" fn strata_abi_version() -> u32 {
    STRATA_ABI_VERSION
}

/// The outcome of a call.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum strata_status {
    /// Success.
    STRATA_OK = 0,
    /// The key (or checkpoint, or object) does not exist, or an iterator is exhausted. Not
    /// an error: no message is set.
    STRATA_NOT_FOUND = 1,
    /// A bad argument: null pointer, destroyed handle, bad length, invalid UTF-8, unknown
    /// table, invalid settings. Nothing was changed.
    STRATA_INVALID_ARGUMENT = 2,
    /// Persisted data failed a checksum or validation; the message names the file.
    STRATA_CORRUPTION = 3,
    /// The storage backend failed.
    STRATA_IO_ERROR = 4,
    /// Another writer holds the database (or the checkpoint id is taken).
    STRATA_BUSY = 5,
    /// The database is closed.
    STRATA_CLOSED = 6,
    /// An earlier storage write failed; the database refuses writes until reopened.
    STRATA_POISONED = 7,
    /// A memory-only read needed storage I/O.
    STRATA_INCOMPLETE = 8,
    /// The call panicked inside the library; the message says where. The handle's state is
    /// as if the call had failed.
    STRATA_PANIC = 9,
}

pub(crate) use crate::strata_status as Status;

/// An error on its way to the caller: a status and its message.
pub(crate) struct Fail(Status, String);

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::InvalidArgument(_) => Status::STRATA_INVALID_ARGUMENT,
            Error::Corruption { .. } => Status::STRATA_CORRUPTION,
            Error::Io { .. } => Status::STRATA_IO_ERROR,
            Error::NotFound(_) => Status::STRATA_NOT_FOUND,
            Error::Poisoned(_) => Status::STRATA_POISONED,
            Error::Closed => Status::STRATA_CLOSED,
            Error::Incomplete(_) => Status::STRATA_INCOMPLETE,
            Error::Busy(_) => Status::STRATA_BUSY,
            // A kind added later: reported as a storage failure until it has its own code.
            _ => Status::STRATA_IO_ERROR,
        };
        Fail(status, e.to_string())
    }
}

pub(crate) fn invalid(msg: impl Into<String>) -> Fail {
    Fail(Status::STRATA_INVALID_ARGUMENT, msg.into())
}

pub(crate) type FfiResult<T = Status> = std::result::Result<T, Fail>;

thread_local! {
    static PANIC_NEXT: Cell<bool> = const { Cell::new(false) };
}

/// Test hook: the next exported call on this thread panics inside the library, before it
/// checks its arguments or does anything else, so a host can check that the panic comes
/// back as `STRATA_PANIC` and that it keeps running.
#[no_mangle]
pub extern "C" fn strata_debug_panic_next_call() {
    PANIC_NEXT.with(|p| p.set(true));
}

/// Runs one exported call: catches panics, turns errors into a status and a message.
pub(crate) fn call(err: *mut *mut c_char, f: impl FnOnce() -> FfiResult) -> strata_status {
    let r = catch_unwind(AssertUnwindSafe(|| {
        if PANIC_NEXT.with(|p| p.replace(false)) {
            panic!("forced by strata_debug_panic_next_call");
        }
        f()
    }));
    let fail = match r {
        Ok(Ok(s)) => return s,
        Ok(Err(Fail(Status::STRATA_NOT_FOUND, _))) => return Status::STRATA_NOT_FOUND,
        Ok(Err(f)) => f,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic payload".to_string());
            Fail(Status::STRATA_PANIC, format!("panic inside strata: {msg}"))
        }
    };
    set_error(err, &fail.1);
    fail.0
}

/// Stores `msg` in `*err` (freeing what was there), if `err` is not null.
fn set_error(err: *mut *mut c_char, msg: &str) {
    if err.is_null() {
        return;
    }
    let text = msg.replace('\0', " ");
    // SAFETY: `err` is non-null and, per the header, points to a `char *` that is null or a
    // message this library allocated with malloc; a fresh buffer of len + 1 bytes is
    // filled and NUL-terminated below.
    unsafe {
        if !(*err).is_null() {
            libc::free((*err).cast());
        }
        let p = libc::malloc(text.len() + 1).cast::<c_char>();
        if !p.is_null() {
            std::ptr::copy_nonoverlapping(text.as_ptr().cast::<c_char>(), p, text.len());
            *p.add(text.len()) = 0;
        }
        *err = p;
    }
}

/// Frees a buffer or message this library returned (values, keys, strings, error
/// messages). Null is ignored.
#[no_mangle]
pub unsafe extern "C" fn strata_free(ptr: *mut c_void) {
    if !ptr.is_null() {
        // SAFETY: per the header, `ptr` was returned by this library, which allocates every
        // owned result with malloc.
        unsafe { libc::free(ptr) }
    }
}

/// A malloc'ed copy of `data` (never null: at least one byte is allocated).
pub(crate) fn malloc_copy(data: &[u8]) -> FfiResult<*mut u8> {
    // SAFETY: malloc of at least one byte; the copy writes `data.len()` bytes into it.
    unsafe {
        let p = libc::malloc(data.len().max(1)).cast::<u8>();
        if p.is_null() {
            return Err(Fail(Status::STRATA_IO_ERROR, "out of memory".into()));
        }
        std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len());
        Ok(p)
    }
}

/// A malloc'ed NUL-terminated copy of `s`.
pub(crate) fn malloc_string(s: &str) -> FfiResult<*mut c_char> {
    let mut v = s.replace('\0', " ").into_bytes();
    v.push(0);
    Ok(malloc_copy(&v)?.cast())
}

/// Hands `data` to the caller as a malloc'ed buffer in `*out`, `*out_len`.
pub(crate) fn give_bytes(data: &[u8], out: *mut *mut u8, out_len: *mut usize) -> FfiResult<()> {
    let (out, out_len) = (out_ptr(out, "value")?, out_ptr(out_len, "value_len")?);
    let p = malloc_copy(data)?;
    *out = p;
    *out_len = data.len();
    Ok(())
}

/// Hands `s` to the caller as a malloc'ed NUL-terminated string in `*out`.
pub(crate) fn give_string(s: &str, out: *mut *mut c_char) -> FfiResult<()> {
    let out = out_ptr(out, "out")?;
    *out = malloc_string(s)?;
    Ok(())
}

/// `STRATA_OK` after handing `v` to the caller with `give`, or `STRATA_NOT_FOUND` when
/// there is nothing to hand over.
pub(crate) fn found<T>(v: Option<T>, give: impl FnOnce(T) -> FfiResult<()>) -> FfiResult {
    match v {
        Some(v) => {
            give(v)?;
            Ok(Status::STRATA_OK)
        }
        None => Ok(Status::STRATA_NOT_FOUND),
    }
}

/// A borrowed-bytes accessor (`strata_pinned_data`, `strata_iter_key`): the bytes `pick`
/// selects from the live handle `h`, their length in `*len` (if `len` is not null), or NULL
/// when `h` is not a live handle or `pick` has nothing. Never unwinds.
pub(crate) fn borrowed<T: 'static>(
    h: *const T,
    len: *mut usize,
    pick: impl Fn(&T) -> Option<&[u8]>,
) -> *const u8 {
    let r = catch_unwind(AssertUnwindSafe(|| {
        let b = pick(handle(h, "handle").ok()?)?;
        if let Ok(l) = out_ptr(len, "len") {
            *l = b.len();
        }
        Some(b.as_ptr())
    }));
    r.ok().flatten().unwrap_or(std::ptr::null())
}

/// The bytes at `ptr`, `len` (null only with length 0).
pub(crate) fn bytes<'a>(ptr: *const u8, len: usize, what: &str) -> FfiResult<&'a [u8]> {
    if ptr.is_null() {
        return if len == 0 {
            Ok(&[])
        } else {
            Err(invalid(format!("{what} is null with length {len}")))
        };
    }
    if len > isize::MAX as usize {
        return Err(invalid(format!(
            "{what} length {len} is not a valid length"
        )));
    }
    // SAFETY: non-null, length within isize; per the header the caller passes `len`
    // readable bytes that stay unchanged during the call.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// A NUL-terminated UTF-8 string argument.
pub(crate) fn string<'a>(ptr: *const c_char, what: &str) -> FfiResult<&'a str> {
    if ptr.is_null() {
        return Err(invalid(format!("{what} is null")));
    }
    // SAFETY: non-null; per the header a NUL-terminated string.
    let c = unsafe { CStr::from_ptr(ptr) };
    c.to_str()
        .map_err(|_| invalid(format!("{what} is not valid UTF-8")))
}

/// An optional NUL-terminated UTF-8 string argument (null: none).
pub(crate) fn opt_string<'a>(ptr: *const c_char, what: &str) -> FfiResult<Option<&'a str>> {
    if ptr.is_null() {
        Ok(None)
    } else {
        string(ptr, what).map(Some)
    }
}

/// Checks an out-parameter before a call does any work, so a call with a null one changes
/// nothing and reports the bad argument whatever the outcome would have been.
pub(crate) fn need<T>(p: *mut T, what: &str) -> FfiResult<()> {
    if p.is_null() {
        Err(invalid(format!("out-parameter {what} is null")))
    } else {
        Ok(())
    }
}

/// An out-parameter, checked non-null.
pub(crate) fn out_ptr<'a, T>(p: *mut T, what: &str) -> FfiResult<&'a mut T> {
    if p.is_null() {
        return Err(invalid(format!("out-parameter {what} is null")));
    }
    // SAFETY: non-null; per the header it points to writable storage for one T.
    Ok(unsafe { &mut *p })
}

/// Live handles: address -> type. Every handle is looked up here before use. A B-tree, not
/// a hash table: it frees its nodes when the last handle goes, so a host that destroys
/// everything sees no memory held by the library (valgrind finds nothing).
static LIVE: LazyLock<RwLock<BTreeMap<usize, TypeId>>> = LazyLock::new(Default::default);

/// Boxes `v` as a new handle.
pub(crate) fn new_handle<T: 'static>(v: T) -> *mut T {
    let p = Box::into_raw(Box::new(v));
    LIVE.write().insert(p as usize, TypeId::of::<T>());
    p
}

/// Hands `v` to the caller as a new handle in `*out`.
pub(crate) fn give_handle<T: 'static>(v: T, out: *mut *mut T) -> FfiResult<()> {
    let out = out_ptr(out, "out")?;
    *out = new_handle(v);
    Ok(())
}

/// The live handle `p` of type `T`.
pub(crate) fn handle<'a, T: 'static>(p: *const T, what: &str) -> FfiResult<&'a T> {
    check_live::<T>(p, what)?;
    // SAFETY: `p` is a live handle of type T created by `new_handle` (checked above); per
    // the header it is not destroyed while this call runs.
    Ok(unsafe { &*p })
}

/// The live handle `p` of type `T`, mutably (handles documented as single-threaded).
pub(crate) fn handle_mut<'a, T: 'static>(p: *mut T, what: &str) -> FfiResult<&'a mut T> {
    check_live::<T>(p, what)?;
    // SAFETY: as in `handle`; the header says such handles are used by one thread at a
    // time, so no other reference exists during the call.
    Ok(unsafe { &mut *p })
}

fn check_live<T: 'static>(p: *const T, what: &str) -> FfiResult<()> {
    if p.is_null() {
        return Err(invalid(format!("{what} is null")));
    }
    match LIVE.read().get(&(p as usize)) {
        Some(t) if *t == TypeId::of::<T>() => Ok(()),
        Some(_) => Err(invalid(format!("{what} is a handle of another type"))),
        None => Err(invalid(format!(
            "{what} is not a live handle (destroyed, or never created)"
        ))),
    }
}

/// Destroys handle `p` of type `T`; null is a no-op. Returns false (and does nothing) if
/// `p` is not a live handle of that type.
pub(crate) fn destroy_handle<T: 'static>(p: *mut T) -> bool {
    if p.is_null() {
        return true;
    }
    let removed = {
        let mut live = LIVE.write();
        match live.get(&(p as usize)) {
            Some(t) if *t == TypeId::of::<T>() => live.remove(&(p as usize)).is_some(),
            _ => false,
        }
    };
    if removed {
        // SAFETY: `p` was created by `Box::into_raw` in `new_handle` and was live; it is
        // now unregistered, so this is the only drop.
        drop(unsafe { Box::from_raw(p) });
    }
    removed
}

/// Runs a `*_destroy` call: a live handle is dropped; anything else is reported.
pub(crate) fn destroy_call<T: 'static>(p: *mut T, what: &str) -> strata_status {
    call(std::ptr::null_mut(), || {
        if destroy_handle(p) {
            Ok(Status::STRATA_OK)
        } else {
            Err(invalid(format!("{what} is not a live handle")))
        }
    })
}

/// Checks `status` against an error message, for the tests.
#[cfg(test)]
pub(crate) fn take_error(err: &mut *mut c_char) -> Option<String> {
    if err.is_null() {
        return None;
    }
    // SAFETY: set by `set_error`: a NUL-terminated malloc'ed string.
    let s = unsafe { CStr::from_ptr(*err) }
        .to_string_lossy()
        .into_owned();
    unsafe { strata_free((*err).cast()) };
    *err = std::ptr::null_mut();
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_version_is_exported() {
        assert_eq!(strata_abi_version(), STRATA_ABI_VERSION);
    }

    #[test]
    fn forced_panic_is_a_status_and_the_next_call_works() {
        let mut err = std::ptr::null_mut();
        strata_debug_panic_next_call();
        let s = call(&mut err, || Ok(Status::STRATA_OK));
        assert_eq!(s, Status::STRATA_PANIC);
        let msg = take_error(&mut err).expect("message");
        assert!(msg.contains("strata_debug_panic_next_call"), "{msg}");
        assert_eq!(call(&mut err, || Ok(Status::STRATA_OK)), Status::STRATA_OK);
        assert!(err.is_null());
    }

    #[test]
    fn handles_are_checked() {
        let p = new_handle(5u32);
        assert_eq!(*handle::<u32>(p, "h").ok().unwrap(), 5);
        assert!(handle::<u64>(p.cast(), "h").is_err());
        assert!(destroy_handle(p));
        assert!(handle::<u32>(p, "h").is_err());
        assert!(!destroy_handle(p));
        assert!(handle::<u32>(std::ptr::null(), "h").is_err());
    }

    #[test]
    fn bytes_reject_null_with_length() {
        assert!(bytes(std::ptr::null(), 0, "k").is_ok());
        assert!(bytes(std::ptr::null(), 3, "k").is_err());
    }
}
