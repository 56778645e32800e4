//! The process's real memory, and the allocator's share of it that the engine's accounting
//! cannot see.
//!
//! The engine accounts what it holds (hot entries at their allocated sizes, chunks, cached
//! blocks), and that agrees with what the allocator has handed out to within a few MiB.
//! What it cannot see is memory the allocator keeps after it was freed. With glibc's
//! malloc that is most of the gap between the accounted figure and the resident set: each
//! thread that allocates (writers, maintenance, compaction) gets an arena, and after a
//! large buffer (a table file being built, a packing batch) is freed, glibc raises its
//! mmap threshold to that size, so later buffers of that size come from the arenas and stay
//! resident after they are freed. A 3M-key load into a 256 MiB budget measured 100 MiB
//! accounted, 200 MiB resident.
//!
//! Two remedies, both for glibc only (elsewhere they do nothing):
//! - [`tune_allocator`] (at open, `Settings::tune_allocator`) fixes the mmap threshold at
//!   1 MiB, which also stops glibc from raising it: buffers of a MiB or more are mapped
//!   and unmapped, never kept; and the trim threshold at 8 MiB.
//! - [`trim`] returns free pages inside the arenas to the OS (`malloc_trim`); maintenance
//!   calls it when the resident set exceeds the accounted memory by more than a slack
//!   (see `Shared::release_retained`).

/// The process's resident set in bytes (`/proc/self/statm`), if the OS reports it.
pub fn resident_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

fn page_size() -> usize {
    #[cfg(unix)]
    {
        // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
        let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if n > 0 {
            return n as usize;
        }
    }
    4096
}

/// Fixes glibc's mmap threshold at 1 MiB (see the module documentation). Process-wide and
/// idempotent; does nothing with other allocators.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: mallopt only changes the allocator's parameters; M_MMAP_THRESHOLD
            // accepts any value up to 32 MiB on 64-bit targets, M_TRIM_THRESHOLD any.
            // Fixing the mmap threshold also fixes the trim threshold, which glibc would
            // otherwise keep at twice the (raised) mmap threshold; left at its 128 KiB
            // default, every free near the top of a heap would shrink it and the next
            // allocation fault the pages back in (measured: list gets at 15M keys 97K ->
            // 67K/s). 8 MiB keeps that churn away; `trim` returns the rest.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
                libc::mallopt(libc::M_TRIM_THRESHOLD, 8 << 20);
            }
        });
    }
}

/// Returns the allocator's free pages to the OS. True if the allocator has such a call and
/// released anything.
pub fn trim() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim walks the allocator's own free lists under its locks.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test (the resident set is process-wide: two tests measuring it at once would
    /// disturb each other).
    #[test]
    #[cfg(target_os = "linux")]
    fn resident_bytes_follow_touched_and_trimmed_memory() {
        let before = resident_bytes().expect("linux reports statm");
        // 64 MiB, touched page by page: the resident set must grow by most of it.
        let mut v = vec![0u8; 64 << 20];
        for i in (0..v.len()).step_by(4096) {
            v[i] = 1;
        }
        let during = resident_bytes().expect("statm");
        assert!(during >= before + (48 << 20), "{before} -> {during}");
        drop(std::hint::black_box(v));

        #[cfg(target_env = "gnu")]
        {
            tune_allocator();
            // 100 MB of small blocks (below any mmap threshold), freed except every 64th:
            // the survivors pin the heap, so only malloc_trim can hand the free pages back.
            let blocks: Vec<Box<[u8; 1000]>> =
                (0..100_000).map(|_| Box::new([1u8; 1000])).collect();
            let keep: Vec<Box<[u8; 1000]>> = blocks.into_iter().step_by(64).collect();
            let before = resident_bytes().expect("statm");
            assert!(trim(), "glibc had free pages to release");
            let after = resident_bytes().expect("statm");
            assert!(after + (32 << 20) < before, "{before} -> {after}");
            std::hint::black_box(&keep);
        }
    }
}
