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
//! The remedy: [`trim`] returns free pages inside the arenas to the OS (glibc's
//! `malloc_trim`, or the function a process with another global allocator installed with
//! [`set_allocator_release`], e.g. a jemalloc purge); maintenance calls it when the
//! resident set exceeds the accounted memory by more than a slack (see
//! `Shared::release_retained`).
//!
//! Fixing glibc's thresholds with `mallopt` (mmap threshold 1 MiB, trim threshold 8 MiB)
//! cut more (a 15M-key run peaked 25-45 MiB lower) but is process-wide, and in a JVM host
//! with many threads each arena kept up to the trim threshold: the Java binding's 10^6
//! open/close test grew by 105 MiB. It is not done.

/// The process's resident and peak resident bytes (`VmRSS`, `VmHWM` in
/// `/proc/self/status`), if the OS reports them (Linux).
pub fn process_memory() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map(|kib| kib * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// The process's resident bytes ([`process_memory`]).
pub fn resident_bytes() -> Option<usize> {
    process_memory().map(|(rss, _)| rss as usize)
}

/// A process's own way to return its allocator's free pages, installed by
/// [`set_allocator_release`].
static RELEASE: std::sync::OnceLock<fn() -> bool> = std::sync::OnceLock::new();

/// Installs how [`trim`] returns free memory to the OS, for a process whose global allocator
/// is not glibc's malloc (jemalloc: purge every arena; see the benchmark binary). The first
/// call wins; returns false if a release function was already installed. Without one,
/// [`trim`] calls glibc's `malloc_trim`.
pub fn set_allocator_release(release: fn() -> bool) -> bool {
    RELEASE.set(release).is_ok()
}

/// Returns the allocator's free pages to the OS: the function installed by
/// [`set_allocator_release`], else glibc's `malloc_trim`. True if the allocator has such a
/// call and released anything.
pub fn trim() -> bool {
    if let Some(release) = RELEASE.get() {
        return release();
    }
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
        let before = resident_bytes().expect("linux reports VmRSS");
        // 64 MiB, touched page by page: the resident set must grow by most of it.
        let mut v = vec![0u8; 64 << 20];
        for i in (0..v.len()).step_by(4096) {
            v[i] = 1;
        }
        let during = resident_bytes().expect("VmRSS");
        assert!(during >= before + (48 << 20), "{before} -> {during}");
        drop(std::hint::black_box(v));

        #[cfg(target_env = "gnu")]
        {
            // 100 MB of small blocks (below any mmap threshold), freed except every 64th:
            // the survivors pin the heap, so only malloc_trim can hand the free pages back.
            let blocks: Vec<Box<[u8; 1000]>> =
                (0..100_000).map(|_| Box::new([1u8; 1000])).collect();
            let keep: Vec<Box<[u8; 1000]>> = blocks.into_iter().step_by(64).collect();
            let before = resident_bytes().expect("VmRSS");
            assert!(trim(), "glibc had free pages to release");
            let after = resident_bytes().expect("VmRSS");
            assert!(after + (32 << 20) < before, "{before} -> {after}");
            std::hint::black_box(&keep);
        }

        // Installed last: from here on `trim` calls the process's own release function
        // (a second one is refused), never glibc's.
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        fn counted() -> bool {
            CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            false
        }
        fn other() -> bool {
            true
        }
        assert!(set_allocator_release(counted));
        assert!(
            !set_allocator_release(other),
            "the first release function stays"
        );
        assert!(!trim(), "trim answers what the installed function answers");
        assert_eq!(CALLS.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
