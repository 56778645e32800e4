//! Keyed state for stream jobs (key groups, namespaces; value, list, map, reducing and
//! aggregating state; TTL) and the timer service.
//!
//! Keys are Flink-shaped: every operation takes the serialized key and namespace; the key
//! group comes from the key (`strata_keyed_key_group_of`). The stored layout is
//! key group (1 or 2 bytes, big-endian) + key + namespace (+ map user key), with lengths
//! framed as DESIGN.md §9 describes; `strata_keyed_composite_key` builds it, and
//! `strata_state_table` gives the state's table for raw access with the plain functions.

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use strata::{
    KeyGroupRange, KeyedBackend, State, StateDescriptor, StateKind, TimeDomain, Timer,
    TimerService, TtlConfig, TtlUpdate, TtlVisibility,
};

use crate::db::{key_array, strata_db, strata_table, strata_values};
use crate::options::{strata_destructor_fn, take_malloced, Callback};
use crate::{
    bytes, call, destroy_call, give_bytes, give_handle, handle, handle_mut, invalid, out_ptr,
    strata_status, string, FfiResult, Status,
};
use crate::{found, need};

/// Keyed state over one database for one key-group range. Thread-safe.
pub struct strata_keyed_backend {
    backend: KeyedBackend,
}

/// A keyed backend on `db` for key groups `first..=last` of `max_parallelism`
/// (1..=32768), Flink's operator state layout.
#[no_mangle]
pub unsafe extern "C" fn strata_keyed_backend_create(
    db: *const strata_db,
    max_parallelism: u16,
    first: u16,
    last: u16,
    out: *mut *mut strata_keyed_backend,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        let d = handle(db, "db")?.db.clone();
        let backend = KeyedBackend::new(d, max_parallelism, KeyGroupRange::new(first, last))?;
        give_handle(strata_keyed_backend { backend }, out)?;
        Ok(Status::STRATA_OK)
    })
}

/// Destroys a keyed backend handle (its states stay in the database).
#[no_mangle]
pub unsafe extern "C" fn strata_keyed_backend_destroy(
    b: *mut strata_keyed_backend,
) -> strata_status {
    destroy_call(b, "keyed backend")
}

/// The key-group range of operator `index` of `parallelism` for `max_parallelism` (Flink's
/// `KeyGroupRangeAssignment`), in `*first`, `*last`.
#[no_mangle]
pub unsafe extern "C" fn strata_key_group_range_for_operator(
    max_parallelism: u16,
    parallelism: u16,
    index: u16,
    first: *mut u16,
    last: *mut u16,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(first, "first")?;
        need(last, "last")?;
        if max_parallelism == 0 || parallelism == 0 || parallelism > max_parallelism {
            return Err(invalid("need 0 < parallelism <= max_parallelism"));
        }
        if index >= parallelism {
            return Err(invalid("operator index must be below the parallelism"));
        }
        let r = KeyGroupRange::for_operator(max_parallelism, parallelism, index);
        *out_ptr(first, "first")? = r.start;
        *out_ptr(last, "last")? = r.end;
        Ok(Status::STRATA_OK)
    })
}

/// The key group of `key` (hashed as Java hashes a `byte[]`), in `*key_group`.
#[no_mangle]
pub unsafe extern "C" fn strata_keyed_key_group_of(
    b: *const strata_keyed_backend,
    key: *const u8,
    key_len: usize,
    key_group: *mut u16,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(key_group, "key_group")?;
        let kg = backend(b)?.key_group_of(bytes(key, key_len, "key")?);
        *out_ptr(key_group, "key_group")? = kg;
        Ok(Status::STRATA_OK)
    })
}

/// The stored key of (key, namespace, user key) (`user_key` empty except for map state),
/// as a `malloc`ed buffer in `*out`, `*out_len`.
#[no_mangle]
pub unsafe extern "C" fn strata_keyed_composite_key(
    b: *const strata_keyed_backend,
    key: *const u8,
    key_len: usize,
    ns: *const u8,
    ns_len: usize,
    user_key: *const u8,
    user_key_len: usize,
    out: *mut *mut u8,
    out_len: *mut usize,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        need(out_len, "out_len")?;
        let k = backend(b)?.composite_key(
            bytes(key, key_len, "key")?,
            bytes(ns, ns_len, "namespace")?,
            bytes(user_key, user_key_len, "user_key")?,
        )?;
        give_bytes(&k, out, out_len)?;
        Ok(Status::STRATA_OK)
    })
}

/// The stored (key, namespace) prefix of `key` in key group `key_group` (for keys whose
/// group the host computes itself), as a `malloc`ed buffer in `*out`, `*out_len`.
#[no_mangle]
pub unsafe extern "C" fn strata_keyed_composite_key_in_group(
    b: *const strata_keyed_backend,
    key_group: u16,
    key: *const u8,
    key_len: usize,
    ns: *const u8,
    ns_len: usize,
    out: *mut *mut u8,
    out_len: *mut usize,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        need(out_len, "out_len")?;
        let k = backend(b)?.composite_key_in_group(
            key_group,
            bytes(key, key_len, "key")?,
            bytes(ns, ns_len, "namespace")?,
        )?;
        give_bytes(&k, out, out_len)?;
        Ok(Status::STRATA_OK)
    })
}

/// The backend's key-group range in `*first`, `*last`, and the length of the key-group
/// prefix of its stored keys (1 or 2 bytes) in `*prefix_len`.
#[no_mangle]
pub unsafe extern "C" fn strata_keyed_backend_range(
    b: *const strata_keyed_backend,
    first: *mut u16,
    last: *mut u16,
    prefix_len: *mut usize,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(first, "first")?;
        need(last, "last")?;
        need(prefix_len, "prefix_len")?;
        let be = backend(b)?;
        let r = be.key_group_range();
        *out_ptr(first, "first")? = r.start;
        *out_ptr(last, "last")? = r.end;
        *out_ptr(prefix_len, "prefix_len")? = be.key_group_prefix_len();
        Ok(Status::STRATA_OK)
    })
}

fn backend<'a>(b: *const strata_keyed_backend) -> FfiResult<&'a KeyedBackend> {
    Ok(&handle(b, "keyed backend")?.backend)
}

// ---------------------------------------------------------------------------------------
// State descriptors

/// One value per (key, namespace).
pub const STRATA_STATE_VALUE: u32 = 0;
/// A list per (key, namespace).
pub const STRATA_STATE_LIST: u32 = 1;
/// A sorted map per (key, namespace).
pub const STRATA_STATE_MAP: u32 = 2;
/// A value folded with a reduce callback (`strata_state_descriptor_set_reduce`).
pub const STRATA_STATE_REDUCING: u32 = 3;
/// An accumulator folded with aggregate callbacks (`strata_state_descriptor_set_aggregate`).
pub const STRATA_STATE_AGGREGATING: u32 = 4;

/// TTL timestamps refreshed on create and write.
pub const STRATA_TTL_ON_CREATE_AND_WRITE: u32 = 0;
/// TTL timestamps refreshed on read and write.
pub const STRATA_TTL_ON_READ_AND_WRITE: u32 = 1;
/// Expired data is never returned.
pub const STRATA_TTL_NEVER_RETURN_EXPIRED: u32 = 0;
/// Expired data may be returned until cleaned up.
pub const STRATA_TTL_RETURN_EXPIRED_IF_NOT_CLEANED_UP: u32 = 1;

/// Declares a state: name, kind, TTL, callbacks. Not thread-safe.
pub struct strata_state_descriptor {
    name: String,
    kind: u32,
    ttl: Option<TtlConfig>,
    fixed_lengths: Option<(u16, u16)>,
    folded: Option<StateKind>,
}

/// A descriptor for state `name` of kind `STRATA_STATE_*`. Reducing and aggregating kinds
/// need their callbacks set before registering.
#[no_mangle]
pub unsafe extern "C" fn strata_state_descriptor_create(
    name: *const c_char,
    kind: u32,
    out: *mut *mut strata_state_descriptor,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        let name = string(name, "name")?;
        if name.is_empty() {
            return Err(invalid("state name is empty"));
        }
        if kind > STRATA_STATE_AGGREGATING {
            return Err(invalid(format!("unknown state kind {kind}")));
        }
        give_handle(
            strata_state_descriptor {
                name: name.to_string(),
                kind,
                ttl: None,
                fixed_lengths: None,
                folded: None,
            },
            out,
        )?;
        Ok(Status::STRATA_OK)
    })
}

/// Destroys a descriptor (registered states keep what they need).
#[no_mangle]
pub unsafe extern "C" fn strata_state_descriptor_destroy(
    d: *mut strata_state_descriptor,
) -> strata_status {
    destroy_call(d, "state descriptor")
}

/// Gives the state a time to live of `ttl_ms` (of the database's clock) with a
/// `STRATA_TTL_ON_*` update mode and a `STRATA_TTL_*_RETURN*` visibility.
#[no_mangle]
pub unsafe extern "C" fn strata_state_descriptor_set_ttl(
    d: *mut strata_state_descriptor,
    ttl_ms: u64,
    update: u32,
    visibility: u32,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let desc = handle_mut(d, "state descriptor")?;
        let update = match update {
            STRATA_TTL_ON_CREATE_AND_WRITE => TtlUpdate::OnCreateAndWrite,
            STRATA_TTL_ON_READ_AND_WRITE => TtlUpdate::OnReadAndWrite,
            u => return Err(invalid(format!("unknown TTL update mode {u}"))),
        };
        let visibility = match visibility {
            STRATA_TTL_NEVER_RETURN_EXPIRED => TtlVisibility::NeverReturnExpired,
            STRATA_TTL_RETURN_EXPIRED_IF_NOT_CLEANED_UP => {
                TtlVisibility::ReturnExpiredIfNotCleanedUp
            }
            v => return Err(invalid(format!("unknown TTL visibility {v}"))),
        };
        if ttl_ms == 0 {
            return Err(invalid("TTL must be positive"));
        }
        desc.ttl = Some(TtlConfig {
            ttl_ms,
            update,
            visibility,
        });
        Ok(Status::STRATA_OK)
    })
}

/// Declares that every serialized key has `key_len` bytes and every namespace `ns_len`
/// (map iteration and clear then read one hot-tier shard).
#[no_mangle]
pub unsafe extern "C" fn strata_state_descriptor_set_fixed_lengths(
    d: *mut strata_state_descriptor,
    key_len: u16,
    ns_len: u16,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        handle_mut(d, "state descriptor")?.fixed_lengths = Some((key_len, ns_len));
        Ok(Status::STRATA_OK)
    })
}

/// A reduce callback: folds `value` into `acc`; returns a `malloc`ed result (NULL: empty)
/// with its length in `*out_len`. Thread-safe, no calls back into the library.
pub type strata_reduce_fn = Option<
    unsafe extern "C" fn(
        state: *mut c_void,
        acc: *const u8,
        acc_len: usize,
        value: *const u8,
        value_len: usize,
        out_len: *mut usize,
    ) -> *mut u8,
>;

/// An aggregate's add: folds `input` into the accumulator (`has_acc` false: none yet);
/// returns a `malloc`ed accumulator with its length in `*out_len`.
pub type strata_aggregate_add_fn = Option<
    unsafe extern "C" fn(
        state: *mut c_void,
        acc: *const u8,
        acc_len: usize,
        has_acc: bool,
        input: *const u8,
        input_len: usize,
        out_len: *mut usize,
    ) -> *mut u8,
>;

/// An aggregate's result: turns the accumulator into the result (`malloc`ed).
pub type strata_aggregate_result_fn = Option<
    unsafe extern "C" fn(
        state: *mut c_void,
        acc: *const u8,
        acc_len: usize,
        out_len: *mut usize,
    ) -> *mut u8,
>;

/// Sets a reducing state's reduce callback; `destructor` (may be NULL) releases `state`
/// when no registered state uses it (it also runs if this call fails).
#[no_mangle]
pub unsafe extern "C" fn strata_state_descriptor_set_reduce(
    d: *mut strata_state_descriptor,
    state: *mut c_void,
    reduce: strata_reduce_fn,
    destructor: strata_destructor_fn,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let cb = Arc::new(Callback {
            state,
            f: reduce,
            destroy: destructor,
        });
        let desc = handle_mut(d, "state descriptor")?;
        if desc.kind != STRATA_STATE_REDUCING {
            return Err(invalid(
                "a reduce callback needs a STRATA_STATE_REDUCING state",
            ));
        }
        let Some(f) = cb.f else {
            return Err(invalid("reduce callback is null"));
        };
        desc.folded = Some(StateKind::Reducing(Arc::new(
            move |acc: &[u8], v: &[u8]| {
                let mut len = 0usize;
                // SAFETY: the registered callback with its state; pointers valid for the call.
                let p = unsafe {
                    f(
                        cb.state,
                        acc.as_ptr(),
                        acc.len(),
                        v.as_ptr(),
                        v.len(),
                        &mut len,
                    )
                };
                take_malloced(p, len)
            },
        )));
        Ok(Status::STRATA_OK)
    })
}

/// Sets an aggregating state's callbacks; `destructor` (may be NULL) releases `state` when
/// no registered state uses them (it also runs if this call fails).
#[no_mangle]
pub unsafe extern "C" fn strata_state_descriptor_set_aggregate(
    d: *mut strata_state_descriptor,
    state: *mut c_void,
    add: strata_aggregate_add_fn,
    result: strata_aggregate_result_fn,
    destructor: strata_destructor_fn,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let cb = Arc::new(Callback {
            state,
            f: (add, result),
            destroy: destructor,
        });
        let desc = handle_mut(d, "state descriptor")?;
        if desc.kind != STRATA_STATE_AGGREGATING {
            return Err(invalid(
                "aggregate callbacks need a STRATA_STATE_AGGREGATING state",
            ));
        }
        let (Some(add_f), Some(result_f)) = cb.f else {
            return Err(invalid("aggregate callbacks are null"));
        };
        let cb2 = cb.clone();
        desc.folded = Some(StateKind::Aggregating {
            add: Arc::new(move |acc: Option<&[u8]>, v: &[u8]| {
                let (ap, al) = acc.map_or((std::ptr::null(), 0), |a| (a.as_ptr(), a.len()));
                let mut len = 0usize;
                // SAFETY: the registered callback with its state; pointers valid for the call.
                let p = unsafe {
                    add_f(
                        cb.state,
                        ap,
                        al,
                        acc.is_some(),
                        v.as_ptr(),
                        v.len(),
                        &mut len,
                    )
                };
                take_malloced(p, len)
            }),
            result: Arc::new(move |acc: &[u8]| {
                let mut len = 0usize;
                // SAFETY: as above.
                let p = unsafe { result_f(cb2.state, acc.as_ptr(), acc.len(), &mut len) };
                take_malloced(p, len)
            }),
        });
        Ok(Status::STRATA_OK)
    })
}

// ---------------------------------------------------------------------------------------
// States

/// A registered state. Thread-safe.
pub struct strata_state {
    state: State,
}

/// Registers the state `d` declares (or returns the one already registered under its
/// name; a different kind is `STRATA_INVALID_ARGUMENT`).
#[no_mangle]
pub unsafe extern "C" fn strata_state_register(
    b: *const strata_keyed_backend,
    d: *const strata_state_descriptor,
    out: *mut *mut strata_state,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        let be = backend(b)?;
        let desc = handle(d, "state descriptor")?;
        let kind = match desc.kind {
            STRATA_STATE_VALUE => StateKind::Value,
            STRATA_STATE_LIST => StateKind::List,
            STRATA_STATE_MAP => StateKind::Map,
            _ => desc.folded.clone().ok_or_else(|| {
                invalid("reducing and aggregating states need their callbacks set")
            })?,
        };
        let mut sd = StateDescriptor::new(&desc.name, kind);
        sd.ttl = desc.ttl;
        sd.fixed_lengths = desc.fixed_lengths;
        let state = be.register(sd)?;
        give_handle(strata_state { state }, out)?;
        Ok(Status::STRATA_OK)
    })
}

/// Destroys a state handle (the state's data stays).
#[no_mangle]
pub unsafe extern "C" fn strata_state_destroy(s: *mut strata_state) -> strata_status {
    destroy_call(s, "state")
}

/// The table holding the state, for raw access with composite keys.
#[no_mangle]
pub unsafe extern "C" fn strata_state_table(
    s: *const strata_state,
    out: *mut *mut strata_table,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        let table = handle(s, "state")?.state.table().clone();
        give_handle(strata_table { table }, out)?;
        Ok(Status::STRATA_OK)
    })
}

/// Arguments every state call shares: backend, state, key, namespace.
struct Target<'a> {
    b: &'a KeyedBackend,
    s: &'a State,
    key: &'a [u8],
    ns: &'a [u8],
}

fn target<'a>(
    b: *const strata_keyed_backend,
    s: *const strata_state,
    key: *const u8,
    key_len: usize,
    ns: *const u8,
    ns_len: usize,
) -> FfiResult<Target<'a>> {
    Ok(Target {
        b: backend(b)?,
        s: &handle(s, "state")?.state,
        key: bytes(key, key_len, "key")?,
        ns: bytes(ns, ns_len, "namespace")?,
    })
}

fn give_list(items: Vec<Vec<u8>>, out: *mut *mut strata_values) -> FfiResult {
    give_handle(
        strata_values {
            items: items.into_iter().map(Some).collect(),
        },
        out,
    )?;
    Ok(Status::STRATA_OK)
}

/// ValueState: the value of (key, namespace) in `*value` (`malloc`ed), or
/// `STRATA_NOT_FOUND`.
#[no_mangle]
pub unsafe extern "C" fn strata_value_get(
    b: *const strata_keyed_backend,
    s: *const strata_state,
    key: *const u8,
    key_len: usize,
    ns: *const u8,
    ns_len: usize,
    value: *mut *mut u8,
    value_len: *mut usize,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(value, "value")?;
        need(value_len, "value_len")?;
        let t = target(b, s, key, key_len, ns, ns_len)?;
        found(t.b.value_get(t.s, t.key, t.ns)?, |v| {
            give_bytes(&v, value, value_len)
        })
    })
}

/// ValueState: sets the value of (key, namespace).
#[no_mangle]
pub unsafe extern "C" fn strata_value_update(
    b: *const strata_keyed_backend,
    s: *const strata_state,
    key: *const u8,
    key_len: usize,
    ns: *const u8,
    ns_len: usize,
    value: *const u8,
    value_len: usize,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let t = target(b, s, key, key_len, ns, ns_len)?;
        t.b.value_update(t.s, t.key, t.ns, bytes(value, value_len, "value")?)?;
        Ok(Status::STRATA_OK)
    })
}

/// ValueState for `n` (key, namespace) pairs at once (absent ones as absent entries).
#[no_mangle]
pub unsafe extern "C" fn strata_value_multi_get(
    b: *const strata_keyed_backend,
    s: *const strata_state,
    keys: *const *const u8,
    key_lens: *const usize,
    nss: *const *const u8,
    ns_lens: *const usize,
    n: usize,
    out: *mut *mut strata_values,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        let be = backend(b)?;
        let st = &handle(s, "state")?.state;
        let ks = key_array(keys, key_lens, n)?;
        let ns = key_array(nss, ns_lens, n)?;
        let pairs: Vec<(&[u8], &[u8])> = ks.into_iter().zip(ns).collect();
        let items = be.value_multi_get(st, &pairs)?;
        give_handle(strata_values { items }, out)?;
        Ok(Status::STRATA_OK)
    })
}

/// ValueState: sets `n` (key, namespace, value) triples atomically.
#[no_mangle]
pub unsafe extern "C" fn strata_value_multi_update(
    b: *const strata_keyed_backend,
    s: *const strata_state,
    keys: *const *const u8,
    key_lens: *const usize,
    nss: *const *const u8,
    ns_lens: *const usize,
    values: *const *const u8,
    value_lens: *const usize,
    n: usize,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let be = backend(b)?;
        let st = &handle(s, "state")?.state;
        let ks = key_array(keys, key_lens, n)?;
        let ns = key_array(nss, ns_lens, n)?;
        let vs = key_array(values, value_lens, n)?;
        let items: Vec<(&[u8], &[u8], &[u8])> = ks
            .into_iter()
            .zip(ns)
            .zip(vs)
            .map(|((k, n), v)| (k, n, v))
            .collect();
        be.value_multi_update(st, &items)?;
        Ok(Status::STRATA_OK)
    })
}

/// Clears (key, namespace) of any state kind.
#[no_mangle]
pub unsafe extern "C" fn strata_state_clear(
    b: *const strata_keyed_backend,
    s: *const strata_state,
    key: *const u8,
    key_len: usize,
    ns: *const u8,
    ns_len: usize,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let t = target(b, s, key, key_len, ns, ns_len)?;
        t.b.clear(t.s, t.key, t.ns)?;
        Ok(Status::STRATA_OK)
    })
}

/// ReducingState / AggregatingState: folds `value` in.
#[no_mangle]
pub unsafe extern "C" fn strata_state_add(
    b: *const strata_keyed_backend,
    s: *const strata_state,
    key: *const u8,
    key_len: usize,
    ns: *const u8,
    ns_len: usize,
    value: *const u8,
    value_len: usize,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let t = target(b, s, key, key_len, ns, ns_len)?;
        t.b.add(t.s, t.key, t.ns, bytes(value, value_len, "value")?)?;
        Ok(Status::STRATA_OK)
    })
}

/// ReducingState: the folded value; AggregatingState: the result (both `malloc`ed), or
/// `STRATA_NOT_FOUND`.
#[no_mangle]
pub unsafe extern "C" fn strata_state_get(
    b: *const strata_keyed_backend,
    s: *const strata_state,
    key: *const u8,
    key_len: usize,
    ns: *const u8,
    ns_len: usize,
    value: *mut *mut u8,
    value_len: *mut usize,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(value, "value")?;
        need(value_len, "value_len")?;
        let t = target(b, s, key, key_len, ns, ns_len)?;
        found(t.b.get(t.s, t.key, t.ns)?, |v| {
            give_bytes(&v, value, value_len)
        })
    })
}

/// ListState: appends one element (without reading the list).
#[no_mangle]
pub unsafe extern "C" fn strata_list_add(
    b: *const strata_keyed_backend,
    s: *const strata_state,
    key: *const u8,
    key_len: usize,
    ns: *const u8,
    ns_len: usize,
    element: *const u8,
    element_len: usize,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let t = target(b, s, key, key_len, ns, ns_len)?;
        t.b.list_add(t.s, t.key, t.ns, bytes(element, element_len, "element")?)?;
        Ok(Status::STRATA_OK)
    })
}

/// ListState: appends `n` elements in order, as one write.
#[no_mangle]
pub unsafe extern "C" fn strata_list_add_all(
    b: *const strata_keyed_backend,
    s: *const strata_state,
    key: *const u8,
    key_len: usize,
    ns: *const u8,
    ns_len: usize,
    elements: *const *const u8,
    element_lens: *const usize,
    n: usize,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let t = target(b, s, key, key_len, ns, ns_len)?;
        let es = key_array(elements, element_lens, n)?;
        t.b.list_add_all(t.s, t.key, t.ns, &es)?;
        Ok(Status::STRATA_OK)
    })
}

/// ListState: replaces the list by `n` elements (none: clears it).
#[no_mangle]
pub unsafe extern "C" fn strata_list_update(
    b: *const strata_keyed_backend,
    s: *const strata_state,
    key: *const u8,
    key_len: usize,
    ns: *const u8,
    ns_len: usize,
    elements: *const *const u8,
    element_lens: *const usize,
    n: usize,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let t = target(b, s, key, key_len, ns, ns_len)?;
        let es = key_array(elements, element_lens, n)?;
        t.b.list_update(t.s, t.key, t.ns, &es)?;
        Ok(Status::STRATA_OK)
    })
}

/// ListState: the elements in `*out` (empty list: zero entries).
#[no_mangle]
pub unsafe extern "C" fn strata_list_get(
    b: *const strata_keyed_backend,
    s: *const strata_state,
    key: *const u8,
    key_len: usize,
    ns: *const u8,
    ns_len: usize,
    out: *mut *mut strata_values,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        let t = target(b, s, key, key_len, ns, ns_len)?;
        give_list(t.b.list_get(t.s, t.key, t.ns)?, out)
    })
}

/// MapState: the value of `user_key` (`malloc`ed), or `STRATA_NOT_FOUND`.
#[no_mangle]
pub unsafe extern "C" fn strata_map_get(
    b: *const strata_keyed_backend,
    s: *const strata_state,
    key: *const u8,
    key_len: usize,
    ns: *const u8,
    ns_len: usize,
    user_key: *const u8,
    user_key_len: usize,
    value: *mut *mut u8,
    value_len: *mut usize,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(value, "value")?;
        need(value_len, "value_len")?;
        let t = target(b, s, key, key_len, ns, ns_len)?;
        let uk = bytes(user_key, user_key_len, "user_key")?;
        found(t.b.map_get(t.s, t.key, t.ns, uk)?, |v| {
            give_bytes(&v, value, value_len)
        })
    })
}

/// MapState: sets `user_key` to `value`.
#[no_mangle]
pub unsafe extern "C" fn strata_map_put(
    b: *const strata_keyed_backend,
    s: *const strata_state,
    key: *const u8,
    key_len: usize,
    ns: *const u8,
    ns_len: usize,
    user_key: *const u8,
    user_key_len: usize,
    value: *const u8,
    value_len: usize,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let t = target(b, s, key, key_len, ns, ns_len)?;
        let uk = bytes(user_key, user_key_len, "user_key")?;
        t.b.map_put(t.s, t.key, t.ns, uk, bytes(value, value_len, "value")?)?;
        Ok(Status::STRATA_OK)
    })
}

/// MapState: sets `n` (user key, value) pairs atomically.
#[no_mangle]
pub unsafe extern "C" fn strata_map_put_all(
    b: *const strata_keyed_backend,
    s: *const strata_state,
    key: *const u8,
    key_len: usize,
    ns: *const u8,
    ns_len: usize,
    user_keys: *const *const u8,
    user_key_lens: *const usize,
    values: *const *const u8,
    value_lens: *const usize,
    n: usize,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let t = target(b, s, key, key_len, ns, ns_len)?;
        let uks = key_array(user_keys, user_key_lens, n)?;
        let vs = key_array(values, value_lens, n)?;
        let entries: Vec<(&[u8], &[u8])> = uks.into_iter().zip(vs).collect();
        t.b.map_put_all(t.s, t.key, t.ns, &entries)?;
        Ok(Status::STRATA_OK)
    })
}

/// MapState: removes `user_key`.
#[no_mangle]
pub unsafe extern "C" fn strata_map_remove(
    b: *const strata_keyed_backend,
    s: *const strata_state,
    key: *const u8,
    key_len: usize,
    ns: *const u8,
    ns_len: usize,
    user_key: *const u8,
    user_key_len: usize,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let t = target(b, s, key, key_len, ns, ns_len)?;
        t.b.map_remove(t.s, t.key, t.ns, bytes(user_key, user_key_len, "user_key")?)?;
        Ok(Status::STRATA_OK)
    })
}

/// MapState: whether `user_key` is present, in `*present`.
#[no_mangle]
pub unsafe extern "C" fn strata_map_contains(
    b: *const strata_keyed_backend,
    s: *const strata_state,
    key: *const u8,
    key_len: usize,
    ns: *const u8,
    ns_len: usize,
    user_key: *const u8,
    user_key_len: usize,
    present: *mut bool,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(present, "present")?;
        let t = target(b, s, key, key_len, ns, ns_len)?;
        let uk = bytes(user_key, user_key_len, "user_key")?;
        let p = t.b.map_contains(t.s, t.key, t.ns, uk)?;
        *out_ptr(present, "present")? = p;
        Ok(Status::STRATA_OK)
    })
}

/// MapState: whether (key, namespace) has no entry, in `*empty`.
#[no_mangle]
pub unsafe extern "C" fn strata_map_is_empty(
    b: *const strata_keyed_backend,
    s: *const strata_state,
    key: *const u8,
    key_len: usize,
    ns: *const u8,
    ns_len: usize,
    empty: *mut bool,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(empty, "empty")?;
        let t = target(b, s, key, key_len, ns, ns_len)?;
        let e = t.b.map_is_empty(t.s, t.key, t.ns)?;
        *out_ptr(empty, "empty")? = e;
        Ok(Status::STRATA_OK)
    })
}

/// MapState: every entry in user-key order, the user keys in `*user_keys` and the values
/// in `*values` (entry i of each belong together).
#[no_mangle]
pub unsafe extern "C" fn strata_map_entries(
    b: *const strata_keyed_backend,
    s: *const strata_state,
    key: *const u8,
    key_len: usize,
    ns: *const u8,
    ns_len: usize,
    user_keys: *mut *mut strata_values,
    values: *mut *mut strata_values,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(user_keys, "user_keys")?;
        need(values, "values")?;
        let t = target(b, s, key, key_len, ns, ns_len)?;
        let (uk_out, v_out) = (out_ptr(user_keys, "user_keys")?, out_ptr(values, "values")?);
        let (ks, vs): (Vec<_>, Vec<_>) =
            t.b.map_entries(t.s, t.key, t.ns)?
                .into_iter()
                .map(|(k, v)| (Some(k), Some(v)))
                .unzip();
        *uk_out = crate::new_handle(strata_values { items: ks });
        *v_out = crate::new_handle(strata_values { items: vs });
        Ok(Status::STRATA_OK)
    })
}

/// Merges the state of `n` source namespaces into `target` and clears the sources
/// (session windows): lists concatenated, reducing/aggregating states folded.
#[no_mangle]
pub unsafe extern "C" fn strata_state_merge_namespaces(
    b: *const strata_keyed_backend,
    s: *const strata_state,
    key: *const u8,
    key_len: usize,
    target_ns: *const u8,
    target_ns_len: usize,
    sources: *const *const u8,
    source_lens: *const usize,
    n: usize,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let t = target(b, s, key, key_len, target_ns, target_ns_len)?;
        let srcs = key_array(sources, source_lens, n)?;
        t.b.merge_namespaces(t.s, t.key, t.ns, &srcs)?;
        Ok(Status::STRATA_OK)
    })
}

/// Every key of the backend's range with data in `namespace`, in storage order.
#[no_mangle]
pub unsafe extern "C" fn strata_state_keys(
    b: *const strata_keyed_backend,
    s: *const strata_state,
    ns: *const u8,
    ns_len: usize,
    out: *mut *mut strata_values,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        let be = backend(b)?;
        let st = &handle(s, "state")?.state;
        give_list(be.keys(st, bytes(ns, ns_len, "namespace")?)?, out)
    })
}

/// Visits one stored entry: returns 0 to go on, anything else to stop.
pub type strata_entry_fn = Option<
    unsafe extern "C" fn(
        ctx: *mut c_void,
        key_group: u16,
        key: *const u8,
        key_len: usize,
        ns: *const u8,
        ns_len: usize,
        user_key: *const u8,
        user_key_len: usize,
        value: *const u8,
        value_len: usize,
    ) -> i32,
>;

/// Visits every entry of the state in key groups `first..=last` (within the backend's
/// range) in key order; expired TTL entries are skipped. Stops early (with `STRATA_OK`)
/// when `f` returns non-zero.
#[no_mangle]
pub unsafe extern "C" fn strata_state_for_each(
    b: *const strata_keyed_backend,
    s: *const strata_state,
    first: u16,
    last: u16,
    f: strata_entry_fn,
    ctx: *mut c_void,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let be = backend(b)?;
        let st = &handle(s, "state")?.state;
        let Some(f) = f else {
            return Err(invalid("entry callback is null"));
        };
        if first > last {
            return Err(invalid("key-group range is empty (first > last)"));
        }
        const STOP: &str = "\0stop";
        let r = be.for_each_entry(st, KeyGroupRange::new(first, last), &mut |e| {
            // SAFETY: the caller's callback and context; pointers valid for the call.
            let go = unsafe {
                f(
                    ctx,
                    e.key_group,
                    e.key.as_ptr(),
                    e.key.len(),
                    e.namespace.as_ptr(),
                    e.namespace.len(),
                    e.user_key.as_ptr(),
                    e.user_key.len(),
                    e.value.as_ptr(),
                    e.value.len(),
                )
            };
            if go == 0 {
                Ok(())
            } else {
                Err(strata::Error::InvalidArgument(STOP.into()))
            }
        });
        match r {
            Err(strata::Error::InvalidArgument(m)) if m == STOP => Ok(Status::STRATA_OK),
            r => {
                r?;
                Ok(Status::STRATA_OK)
            }
        }
    })
}

// ---------------------------------------------------------------------------------------
// Timers

/// Event-time timers (fire when the watermark passes them).
pub const STRATA_EVENT_TIME: u32 = 0;
/// Processing-time timers (fire when the wall clock passes them).
pub const STRATA_PROCESSING_TIME: u32 = 1;

/// The timers of one keyed backend, stored in its database (so checkpoints include them).
/// Thread-safe.
pub struct strata_timer_service {
    timers: TimerService,
}

/// The timer queue `name` of backend `b`.
#[no_mangle]
pub unsafe extern "C" fn strata_timer_service_create(
    b: *const strata_keyed_backend,
    name: *const c_char,
    out: *mut *mut strata_timer_service,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(out, "out")?;
        let timers = TimerService::new(backend(b)?, string(name, "name")?)?;
        give_handle(strata_timer_service { timers }, out)?;
        Ok(Status::STRATA_OK)
    })
}

/// Destroys a timer service handle (its timers stay stored).
#[no_mangle]
pub unsafe extern "C" fn strata_timer_service_destroy(
    t: *mut strata_timer_service,
) -> strata_status {
    destroy_call(t, "timer service")
}

fn domain(d: u32) -> FfiResult<TimeDomain> {
    match d {
        STRATA_EVENT_TIME => Ok(TimeDomain::EventTime),
        STRATA_PROCESSING_TIME => Ok(TimeDomain::ProcessingTime),
        d => Err(invalid(format!("unknown time domain {d}"))),
    }
}

fn timer(
    timestamp: u64,
    key_group: u16,
    key: *const u8,
    key_len: usize,
    ns: *const u8,
    ns_len: usize,
) -> FfiResult<Timer> {
    Ok(Timer {
        timestamp,
        key_group,
        key: bytes(key, key_len, "key")?.to_vec(),
        namespace: bytes(ns, ns_len, "namespace")?.to_vec(),
    })
}

/// Registers a timer (registering the same one again is a no-op).
#[no_mangle]
pub unsafe extern "C" fn strata_timer_register(
    t: *const strata_timer_service,
    time_domain: u32,
    timestamp: u64,
    key_group: u16,
    key: *const u8,
    key_len: usize,
    ns: *const u8,
    ns_len: usize,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let ts = &handle(t, "timer service")?.timers;
        let tm = timer(timestamp, key_group, key, key_len, ns, ns_len)?;
        ts.register(domain(time_domain)?, &tm)?;
        Ok(Status::STRATA_OK)
    })
}

/// Deletes a timer (a no-op if it is not registered).
#[no_mangle]
pub unsafe extern "C" fn strata_timer_delete(
    t: *const strata_timer_service,
    time_domain: u32,
    timestamp: u64,
    key_group: u16,
    key: *const u8,
    key_len: usize,
    ns: *const u8,
    ns_len: usize,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let ts = &handle(t, "timer service")?.timers;
        let tm = timer(timestamp, key_group, key, key_len, ns, ns_len)?;
        ts.delete(domain(time_domain)?, &tm)?;
        Ok(Status::STRATA_OK)
    })
}

/// The earliest timer's timestamp in `*timestamp`, or `STRATA_NOT_FOUND` if none.
#[no_mangle]
pub unsafe extern "C" fn strata_timer_next_timestamp(
    t: *const strata_timer_service,
    time_domain: u32,
    timestamp: *mut u64,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        need(timestamp, "timestamp")?;
        let ts = &handle(t, "timer service")?.timers;
        found(ts.next_timestamp(domain(time_domain)?)?, |x| {
            *out_ptr(timestamp, "timestamp")? = x;
            Ok(())
        })
    })
}

/// Receives one fired timer: returns 0 on success; anything else stops the poll with
/// `STRATA_INVALID_ARGUMENT` (the timers handed out so far stay removed).
pub type strata_timer_fn = Option<
    unsafe extern "C" fn(
        ctx: *mut c_void,
        timestamp: u64,
        key_group: u16,
        key: *const u8,
        key_len: usize,
        ns: *const u8,
        ns_len: usize,
    ) -> i32,
>;

/// Removes every timer with timestamp <= `up_to` and hands each to `f` in timestamp order;
/// the number fired in `*fired` (may be NULL). `f` may register new timers through the
/// library (they fire too if due).
#[no_mangle]
pub unsafe extern "C" fn strata_timer_poll(
    t: *const strata_timer_service,
    time_domain: u32,
    up_to: u64,
    f: strata_timer_fn,
    ctx: *mut c_void,
    fired: *mut usize,
    err: *mut *mut c_char,
) -> strata_status {
    call(err, || {
        let ts = &handle(t, "timer service")?.timers;
        let d = domain(time_domain)?;
        let Some(f) = f else {
            return Err(invalid("timer callback is null"));
        };
        let n = ts.poll(d, up_to, &mut |tm| {
            // SAFETY: the caller's callback and context; pointers valid for the call.
            let r = unsafe {
                f(
                    ctx,
                    tm.timestamp,
                    tm.key_group,
                    tm.key.as_ptr(),
                    tm.key.len(),
                    tm.namespace.as_ptr(),
                    tm.namespace.len(),
                )
            };
            if r == 0 {
                Ok(())
            } else {
                Err(strata::Error::invalid(format!(
                    "timer callback returned {r}"
                )))
            }
        })?;
        if !fired.is_null() {
            *out_ptr(fired, "fired")? = n;
        }
        Ok(Status::STRATA_OK)
    })
}
