//! The benchmark's allocator: jemalloc for the whole process, both engines alike.
//!
//! Strata allocates one node per hot entry and frees it when the entry leaves memory, from
//! the writer and the maintenance thread; glibc's malloc spends a tenth of a load's writer
//! time in its slow paths (`_int_malloc`, `malloc_consolidate`) for that pattern, jemalloc
//! does not. RocksDB's C++ allocations go through the same jemalloc (the symbols are
//! unprefixed), as in RocksDB's own builds and Flink's container images, so neither side is
//! measured with an allocator the other does not get.
//!
//! jemalloc keeps freed pages for a while (its decay); the engine's maintenance returns
//! them when the resident set runs past the accounted memory, through the release function
//! [`install`] gives it ([`purge`]).

use std::ffi::CStr;
use std::ptr;

/// Installs [`purge`] as the engine's way to return free allocator memory. Call once, at
/// the start of `main`.
pub fn install() {
    strata::set_allocator_release(purge);
}

/// `arena.<all>.purge`: returns every arena's unused dirty pages to the OS. True if the
/// call succeeded.
pub fn purge() -> bool {
    // MALLCTL_ARENAS_ALL (4096): the statement applies to every arena.
    let name = c"arena.4096.purge";
    // SAFETY: a purge takes no old or new value (both pointers null, lengths zero), which
    // is the only form jemalloc accepts for it; `name` is NUL-terminated.
    unsafe {
        tikv_jemalloc_sys::mallctl(
            name.as_ptr(),
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            0,
        ) == 0
    }
}

/// Reads a `size_t` statistic after refreshing jemalloc's statistics epoch.
fn stat(name: &CStr) -> Option<usize> {
    let mut epoch: u64 = 1;
    let mut value: usize = 0;
    let mut len = std::mem::size_of::<usize>();
    // SAFETY: `epoch` takes a u64 as its new value (pointer and exact length given), and
    // the statistics named below are `size_t` values read into `value` with `len` set to
    // its size; both names are NUL-terminated.
    let ok = unsafe {
        tikv_jemalloc_sys::mallctl(
            c"epoch".as_ptr(),
            ptr::null_mut(),
            ptr::null_mut(),
            (&mut epoch as *mut u64).cast(),
            std::mem::size_of::<u64>(),
        ) == 0
            && tikv_jemalloc_sys::mallctl(
                name.as_ptr(),
                (&mut value as *mut usize).cast(),
                &mut len,
                ptr::null_mut(),
                0,
            ) == 0
    };
    ok.then_some(value)
}

/// The allocator's view of memory, for the stats log: bytes handed out, and bytes resident
/// in its arenas (handed out plus free pages not yet returned).
pub fn describe() -> String {
    let mib = |b: Option<usize>| b.map_or(f64::NAN, |b| b as f64 / 1048576.0);
    format!(
        "jemalloc: {:.1} MiB allocated, {:.1} MiB resident\n",
        mib(stat(c"stats.allocated")),
        mib(stat(c"stats.resident"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[global_allocator]
    static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

    #[test]
    fn statistics_follow_allocations_and_purge_succeeds() {
        let before = stat(c"stats.allocated").expect("jemalloc statistics");
        let v = std::hint::black_box(vec![1u8; 64 << 20]);
        let during = stat(c"stats.allocated").expect("jemalloc statistics");
        assert!(during >= before + (60 << 20), "{before} -> {during}");
        drop(v);
        let after = stat(c"stats.allocated").expect("jemalloc statistics");
        assert!(after + (60 << 20) <= during, "{during} -> {after}");
        assert!(purge(), "arena.4096.purge");
        assert!(describe().starts_with("jemalloc: "));
    }
}
