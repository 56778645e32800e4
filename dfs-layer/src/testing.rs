//! Test utilities for every layer: the storage conformance suite and a storage wrapper that
//! injects failures. Not part of the stable API.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::storage::{ObjectInfo, Storage};

/// Runs the [`Storage`] contract checks against `s` under the path prefix `root` (which
/// should be unique per run). Panics with a description on the first violation.
pub fn storage_conformance(s: &dyn Storage, root: &str) {
    let p = |name: &str| format!("{root}/{name}");
    let data = Bytes::from(
        (0..100_000u32)
            .flat_map(|i| i.to_le_bytes())
            .collect::<Vec<u8>>(),
    );
    // write, whole read, size
    s.put(&p("a/one"), data.clone()).expect("put");
    assert_eq!(s.read_all(&p("a/one")).expect("read_all"), data, "read_all");
    assert_eq!(
        s.size(&p("a/one")).expect("size"),
        data.len() as u64,
        "size"
    );
    // durability point: a no-op or an fsync of file and directory, never an error
    s.sync(&p("a/one")).expect("sync");
    // conditional create: the first writer wins, a second one writes nothing
    assert!(
        s.put_if_absent(&p("a/cond"), Bytes::from_static(b"first"))
            .expect("conditional put"),
        "creates a missing object"
    );
    assert!(
        !s.put_if_absent(&p("a/cond"), Bytes::from_static(b"second"))
            .expect("conditional put"),
        "refuses to replace an existing object"
    );
    assert_eq!(
        s.read_all(&p("a/cond")).expect("read"),
        Bytes::from_static(b"first")
    );
    s.delete(&p("a/cond")).expect("delete");
    // ranged reads: exact bytes, never partial
    for r in [0..1u64, 5..4096, 399_000..400_000, 123..123] {
        let got = s.read(&p("a/one"), r.clone()).expect("ranged read");
        assert_eq!(
            got,
            data.slice(r.start as usize..r.end as usize),
            "range {r:?}"
        );
    }
    assert!(
        s.read(&p("a/one"), 399_000..400_001).is_err(),
        "a read past the end must fail, not return a short buffer"
    );
    // overwrite replaces atomically
    s.put(&p("a/two"), Bytes::from_static(b"first"))
        .expect("put");
    s.put(&p("a/two"), Bytes::from_static(b"second"))
        .expect("overwrite");
    assert_eq!(
        s.read_all(&p("a/two")).unwrap(),
        Bytes::from_static(b"second")
    );
    s.put(&p("b/three"), Bytes::from_static(b"3")).expect("put");
    // list by prefix, sorted, with sizes
    let listed: Vec<ObjectInfo> = s.list(&p("a/")).expect("list");
    assert_eq!(
        listed,
        vec![
            ObjectInfo {
                path: p("a/one"),
                size: data.len() as u64
            },
            ObjectInfo {
                path: p("a/two"),
                size: 6
            },
        ],
        "list a/"
    );
    assert_eq!(s.list(&p("a/t")).unwrap().len(), 1, "partial-name prefix");
    assert_eq!(s.list(&p("zzz/")).unwrap(), vec![], "empty prefix listing");
    // missing objects
    for e in [
        s.read_all(&p("missing")).unwrap_err(),
        s.read(&p("missing"), 0..1).unwrap_err(),
        s.size(&p("missing")).unwrap_err(),
    ] {
        assert!(
            matches!(e, Error::NotFound(_)),
            "missing object gives NotFound, got {e:?}"
        );
    }
    // delete, and deleting a missing object is fine
    s.delete(&p("a/two")).expect("delete");
    s.delete(&p("a/two")).expect("delete again");
    assert_eq!(s.list(&p("a/")).unwrap().len(), 1);
    // concurrent ranged reads from several threads
    std::thread::scope(|scope| {
        for t in 0..4u64 {
            let data = data.clone();
            let path = p("a/one");
            scope.spawn(move || {
                for i in 0..25u64 {
                    let start = (t * 7919 + i * 3203) % 390_000;
                    let got = s.read(&path, start..start + 1000).expect("concurrent read");
                    assert_eq!(got, data.slice(start as usize..start as usize + 1000));
                }
            });
        }
    });
    for o in s.list(&format!("{root}/")).unwrap() {
        s.delete(&o.path).unwrap();
    }
    assert!(s.list(&format!("{root}/")).unwrap().is_empty(), "cleanup");
}

/// Wraps a store and fails writes on demand, to test that failures poison instead of
/// corrupting; it can also add latency to reads and count them (a slow remote store).
#[derive(Debug)]
pub struct FaultyStorage {
    inner: Arc<dyn Storage>,
    fail_prefix: Mutex<Option<String>>,
    fail_read_prefix: Mutex<Option<String>>,
    puts: AtomicU64,
    fail_after_puts: AtomicU64,
    read_latency_us: AtomicU64,
    reads: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
}

impl FaultyStorage {
    /// Wraps `inner`; no faults until one is armed.
    pub fn new(inner: Arc<dyn Storage>) -> Self {
        FaultyStorage {
            inner,
            fail_prefix: Mutex::new(None),
            fail_read_prefix: Mutex::new(None),
            puts: AtomicU64::new(0),
            fail_after_puts: AtomicU64::new(u64::MAX),
            read_latency_us: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
        }
    }

    /// Every read takes at least `latency` from now on (a simulated remote store).
    pub fn set_read_latency(&self, latency: std::time::Duration) {
        self.read_latency_us
            .store(latency.as_micros() as u64, Ordering::SeqCst);
    }

    /// Reads served so far.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::SeqCst)
    }

    /// The most reads that were in flight at once.
    pub fn max_in_flight(&self) -> u64 {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    fn timed_read<T>(&self, path: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        if let Some(p) = &*self.fail_read_prefix.lock() {
            if path.starts_with(p.as_str()) {
                return Err(Error::io(format!("read {path}"), "injected failure"));
            }
        }
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let us = self.read_latency_us.load(Ordering::SeqCst);
        if us > 0 {
            std::thread::sleep(std::time::Duration::from_micros(us));
        }
        let r = f();
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.reads.fetch_add(1, Ordering::SeqCst);
        r
    }

    /// Every put to a path starting with `prefix` fails from now on.
    pub fn fail_puts_under(&self, prefix: &str) {
        *self.fail_prefix.lock() = Some(prefix.to_string());
    }

    /// Every read of a path starting with `prefix` fails from now on.
    pub fn fail_reads_under(&self, prefix: &str) {
        *self.fail_read_prefix.lock() = Some(prefix.to_string());
    }

    /// Every put fails once `n` more have succeeded.
    pub fn fail_after_puts(&self, n: u64) {
        let now = self.puts.load(Ordering::SeqCst);
        self.fail_after_puts.store(now + n, Ordering::SeqCst);
    }

    /// Stops injecting faults.
    pub fn heal(&self) {
        *self.fail_prefix.lock() = None;
        *self.fail_read_prefix.lock() = None;
        self.fail_after_puts.store(u64::MAX, Ordering::SeqCst);
    }

    /// Number of successful puts so far.
    pub fn puts(&self) -> u64 {
        self.puts.load(Ordering::SeqCst)
    }
}

impl FaultyStorage {
    fn check_put(&self, path: &str) -> Result<()> {
        if let Some(p) = &*self.fail_prefix.lock() {
            if path.starts_with(p.as_str()) {
                return Err(Error::io(format!("put {path}"), "injected failure"));
            }
        }
        if self.puts.load(Ordering::SeqCst) >= self.fail_after_puts.load(Ordering::SeqCst) {
            return Err(Error::io(format!("put {path}"), "injected failure"));
        }
        Ok(())
    }
}

impl Storage for FaultyStorage {
    fn put(&self, path: &str, data: Bytes) -> Result<()> {
        self.check_put(path)?;
        self.inner.put(path, data)?;
        self.puts.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn put_if_absent(&self, path: &str, data: Bytes) -> Result<bool> {
        self.check_put(path)?;
        let written = self.inner.put_if_absent(path, data)?;
        if written {
            self.puts.fetch_add(1, Ordering::SeqCst);
        }
        Ok(written)
    }
    fn read(&self, path: &str, range: Range<u64>) -> Result<Bytes> {
        self.timed_read(path, || self.inner.read(path, range))
    }
    fn read_all(&self, path: &str) -> Result<Bytes> {
        self.timed_read(path, || self.inner.read_all(path))
    }
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.inner.list(prefix)
    }
    fn delete(&self, path: &str) -> Result<()> {
        self.inner.delete(path)
    }
    fn size(&self, path: &str) -> Result<u64> {
        self.inner.size(path)
    }
    fn sync(&self, path: &str) -> Result<()> {
        self.inner.sync(path)
    }
    fn is_remote(&self) -> bool {
        self.inner.is_remote()
    }
    fn location(&self) -> String {
        self.inner.location()
    }
    fn object_key(&self, path: &str) -> Option<(String, String)> {
        self.inner.object_key(path)
    }
    fn copy_from(&self, source: &dyn Storage, from: &str, to: &str) -> Result<bool> {
        self.check_put(to)?;
        self.inner.copy_from(source, from, to)
    }
}

/// A store that, on a simulated power loss, loses every put not yet made durable with
/// [`Storage::sync`] (as LevelDB's fault-injection env and Pebble's strict memory file
/// system do): a new object vanishes, an overwritten one reverts to its last durable
/// content. Until then reads see every put, as a page cache would. After the loss every
/// write fails, as on a machine whose power is off.
#[derive(Debug)]
pub struct PowerLossStorage {
    inner: Arc<dyn Storage>,
    state: Mutex<PowerState>,
}

#[derive(Debug, Default)]
struct PowerState {
    /// Paths put but not synced, with their last durable content (`None`: absent).
    unsynced: std::collections::HashMap<String, Option<Bytes>>,
    off: bool,
}

impl PowerLossStorage {
    /// Wraps `inner`; everything already in it counts as durable.
    pub fn new(inner: Arc<dyn Storage>) -> Self {
        PowerLossStorage {
            inner,
            state: Mutex::new(PowerState::default()),
        }
    }

    /// Cuts the power: undoes every unsynced put and refuses every later write. Returns
    /// how many objects were lost or reverted.
    pub fn power_loss(&self) -> usize {
        let mut st = self.state.lock();
        st.off = true;
        let lost = st.unsynced.len();
        for (path, before) in st.unsynced.drain() {
            let _ = match before {
                Some(b) => self.inner.put(&path, b),
                None => self.inner.delete(&path),
            };
        }
        lost
    }

    fn write(&self, path: &str, put: impl FnOnce() -> Result<bool>) -> Result<bool> {
        let mut st = self.state.lock();
        if st.off {
            return Err(Error::io(format!("put {path}"), "the power is off"));
        }
        if !st.unsynced.contains_key(path) {
            let before = self.inner.read_all(path).ok();
            let written = put()?;
            if written {
                st.unsynced.insert(path.to_string(), before);
            }
            return Ok(written);
        }
        put()
    }
}

impl Storage for PowerLossStorage {
    fn put(&self, path: &str, data: Bytes) -> Result<()> {
        self.write(path, || self.inner.put(path, data).map(|()| true))
            .map(drop)
    }
    fn put_if_absent(&self, path: &str, data: Bytes) -> Result<bool> {
        self.write(path, || self.inner.put_if_absent(path, data))
    }
    fn read(&self, path: &str, range: Range<u64>) -> Result<Bytes> {
        self.inner.read(path, range)
    }
    fn read_all(&self, path: &str) -> Result<Bytes> {
        self.inner.read_all(path)
    }
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.inner.list(prefix)
    }
    fn delete(&self, path: &str) -> Result<()> {
        let mut st = self.state.lock();
        if st.off {
            return Err(Error::io(format!("delete {path}"), "the power is off"));
        }
        st.unsynced.remove(path);
        self.inner.delete(path)
    }
    fn size(&self, path: &str) -> Result<u64> {
        self.inner.size(path)
    }
    fn sync(&self, path: &str) -> Result<()> {
        let mut st = self.state.lock();
        if st.off {
            return Err(Error::io(format!("sync {path}"), "the power is off"));
        }
        st.unsynced.remove(path);
        self.inner.sync(path)
    }
    fn location(&self) -> String {
        self.inner.location()
    }
}
