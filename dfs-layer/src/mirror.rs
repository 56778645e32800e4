//! A local mirror of a remote store's table files, for files a database reads but does not
//! own (a checkpoint it was restored from, on S3). Restoring reads nothing up front; a
//! background thread then copies each such file to a local directory with large sequential
//! reads, and from then on reads of that file are local positional reads, so throughput
//! reaches the local directory's while the first read was immediate (ForSt's file cache).
//!
//! Invariant: a file is readable locally only once it was copied whole and its size checked
//! (written to a temporary name, then renamed); until then reads go to the remote store.
//! Files are immutable, so a local copy never goes stale. The mirror holds at most
//! `max_bytes`; files past that stay remote.

use std::collections::HashMap;
use std::fs::File;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::storage::{ObjectInfo, Storage};

/// Bytes fetched per request while copying a file.
const FETCH_BYTES: u64 = 8 << 20;

/// A remote store with a local copy of the files [`Mirror::fetch`] brought over.
pub struct Mirror {
    inner: Arc<dyn Storage>,
    dir: PathBuf,
    max_bytes: u64,
    state: Mutex<MirrorState>,
    /// One copy at a time (the background thread and `Db::mirror_now` may both ask).
    fetching: Mutex<()>,
    /// Keep a local copy of every table file written through the mirror (a database that
    /// lives on the remote store: its own new files are read locally from the start).
    write_through: bool,
}

#[derive(Default)]
struct MirrorState {
    files: HashMap<String, (Arc<File>, u64)>,
    bytes: u64,
    next: u64,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} mirrored in {}", self.inner, self.dir.display())
    }
}

impl Mirror {
    /// Mirrors `inner` into `dir` (cleared first), holding at most `max_bytes`.
    pub fn new(inner: Arc<dyn Storage>, dir: PathBuf, max_bytes: u64) -> Result<Self> {
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(|e| Error::io(format!("clearing {}", dir.display()), e))?;
        }
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        Ok(Mirror {
            inner,
            dir,
            max_bytes,
            state: Mutex::new(MirrorState::default()),
            fetching: Mutex::new(()),
            write_through: false,
        })
    }

    /// Also keeps a local copy of every `.sst` object put through the mirror.
    pub fn with_write_through(mut self) -> Self {
        self.write_through = true;
        self
    }

    /// Writes `data` as the local copy of `path` (if it fits); returns the open file.
    fn write_local(&self, data: &[u8]) -> Option<(Arc<File>, u64)> {
        let size = data.len() as u64;
        let n = {
            let mut st = self.state.lock();
            if st.bytes + size > self.max_bytes {
                return None;
            }
            st.next += 1;
            st.next
        };
        let local = self.dir.join(format!("{n:012}.sst"));
        std::fs::write(&local, data).ok()?;
        let file = File::open(&local).ok();
        let _ = std::fs::remove_file(&local);
        Some((Arc::new(file?), size))
    }

    /// True if `path` is read locally.
    pub fn is_local(&self, path: &str) -> bool {
        self.state.lock().files.contains_key(path)
    }

    /// Bytes held locally.
    pub fn local_bytes(&self) -> u64 {
        self.state.lock().bytes
    }

    /// Copies `path` (of `size` bytes) to the local directory unless it is there or would
    /// not fit. `stop` is checked between requests (shutdown). Returns true if the file is
    /// local afterwards.
    pub fn fetch(&self, path: &str, size: u64, stop: &dyn Fn() -> bool) -> Result<bool> {
        let _one = self.fetching.lock();
        let n = {
            let mut st = self.state.lock();
            if st.files.contains_key(path) {
                return Ok(true);
            }
            if st.bytes + size > self.max_bytes {
                return Ok(false);
            }
            st.next += 1;
            st.next
        };
        let local = self.dir.join(format!("{n:012}.sst"));
        let tmp = local.with_extension("tmp");
        let io = |e: std::io::Error| Error::io(format!("mirroring {path} to {}", tmp.display()), e);
        let copied = (|| -> Result<bool> {
            use std::io::Write;
            let mut f = std::io::BufWriter::new(File::create(&tmp).map_err(io)?);
            let mut off = 0;
            while off < size {
                if stop() {
                    return Ok(false);
                }
                let end = (off + FETCH_BYTES).min(size);
                let chunk = self.inner.read(path, off..end)?;
                f.write_all(&chunk).map_err(io)?;
                off = end;
            }
            f.flush().map_err(io)?;
            Ok(true)
        })();
        match copied {
            Ok(true) => {}
            other => {
                let _ = std::fs::remove_file(&tmp);
                return other;
            }
        }
        std::fs::rename(&tmp, &local).map_err(io)?;
        let file = File::open(&local).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len != size {
            let _ = std::fs::remove_file(&local);
            return Err(Error::corruption(
                path,
                format!("mirrored copy is {len} bytes, expected {size}"),
            ));
        }
        // The file's directory entry is gone once the handle is all that refers to it.
        let _ = std::fs::remove_file(&local);
        let mut st = self.state.lock();
        st.bytes += size;
        st.files.insert(path.to_string(), (Arc::new(file), size));
        Ok(true)
    }

    /// Drops the local copy of `path` (the file left the database).
    pub fn evict(&self, path: &str) {
        let mut st = self.state.lock();
        if let Some((_, size)) = st.files.remove(path) {
            st.bytes -= size;
        }
    }

    fn local(&self, path: &str) -> Option<(Arc<File>, u64)> {
        self.state.lock().files.get(path).cloned()
    }
}

impl Storage for Mirror {
    fn put(&self, path: &str, data: Bytes) -> Result<()> {
        self.evict(path);
        let local = (self.write_through && path.ends_with(".sst"))
            .then(|| self.write_local(&data))
            .flatten();
        self.inner.put(path, data)?;
        if let Some((file, size)) = local {
            let mut st = self.state.lock();
            st.bytes += size;
            st.files.insert(path.to_string(), (file, size));
        }
        Ok(())
    }
    fn put_if_absent(&self, path: &str, data: Bytes) -> Result<bool> {
        self.inner.put_if_absent(path, data)
    }
    fn read(&self, path: &str, range: Range<u64>) -> Result<Bytes> {
        let Some((file, size)) = self.local(path) else {
            return self.inner.read(path, range);
        };
        if range.start > range.end || range.end > size {
            return Err(Error::invalid(format!("bad range {range:?} for {path}")));
        }
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; (range.end - range.start) as usize];
        file.read_exact_at(&mut buf, range.start)
            .map_err(|e| Error::io(format!("read {path} {range:?} (mirrored)"), e))?;
        Ok(Bytes::from(buf))
    }
    fn read_all(&self, path: &str) -> Result<Bytes> {
        match self.local(path) {
            Some((_, size)) => self.read(path, 0..size),
            None => self.inner.read_all(path),
        }
    }
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.inner.list(prefix)
    }
    fn delete(&self, path: &str) -> Result<()> {
        self.evict(path);
        self.inner.delete(path)
    }
    fn size(&self, path: &str) -> Result<u64> {
        match self.local(path) {
            Some((_, size)) => Ok(size),
            None => self.inner.size(path),
        }
    }
    fn sync(&self, path: &str) -> Result<()> {
        self.inner.sync(path)
    }
    /// Not remote for the block cache: mirrored files are local, and blocks of the others
    /// are not worth a second, block-level disk copy.
    fn is_remote(&self) -> bool {
        false
    }
    fn location(&self) -> String {
        self.inner.location()
    }
    fn object_key(&self, path: &str) -> Option<(String, String)> {
        self.inner.object_key(path)
    }
    fn copy_from(&self, source: &dyn Storage, from: &str, to: &str) -> Result<bool> {
        self.evict(to);
        self.inner.copy_from(source, from, to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::ObjectStorage;

    #[test]
    fn fetched_files_read_locally_and_bytes_are_bounded() {
        let remote: Arc<dyn Storage> = Arc::new(ObjectStorage::memory().unwrap());
        let data: Vec<u8> = (0..50_000u32).flat_map(|i| i.to_le_bytes()).collect();
        remote.put("a.sst", Bytes::from(data.clone())).unwrap();
        remote.put("b.sst", Bytes::from(data.clone())).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let m = Mirror::new(remote.clone(), dir.path().join("m"), 300_000).unwrap();
        assert!(!m.is_local("a.sst"));
        assert_eq!(m.read("a.sst", 4..12).unwrap(), &data[4..12]);
        assert!(m.fetch("a.sst", data.len() as u64, &|| false).unwrap());
        assert!(m.is_local("a.sst"));
        // The remote object can go away: the local copy serves.
        remote.delete("a.sst").unwrap();
        assert_eq!(m.read("a.sst", 1000..1016).unwrap(), &data[1000..1016]);
        assert_eq!(m.read_all("a.sst").unwrap(), &data[..]);
        assert!(m.read("a.sst", 0..data.len() as u64 + 1).is_err());
        // Over the bound: stays remote.
        assert!(!m.fetch("b.sst", data.len() as u64, &|| false).unwrap());
        assert_eq!(m.local_bytes(), data.len() as u64);
        // A stopped copy leaves nothing behind.
        m.evict("a.sst");
        assert!(!m.fetch("b.sst", data.len() as u64, &|| true).unwrap());
        assert!(!m.is_local("b.sst"));
        assert!(m.fetch("b.sst", data.len() as u64, &|| false).unwrap());
        // Write-through: a put is local at once.
        let wt = Mirror::new(remote.clone(), dir.path().join("w"), 1 << 20)
            .unwrap()
            .with_write_through();
        wt.put("d.sst", Bytes::from(data.clone())).unwrap();
        assert!(wt.is_local("d.sst"));
        wt.put("MANIFEST", Bytes::from_static(b"m")).unwrap();
        assert!(!wt.is_local("MANIFEST"), "only table files");
        wt.delete("d.sst").unwrap();
        assert!(!wt.is_local("d.sst") && wt.local_bytes() == 0);
        // A size that does not match the object is an error, not a short local copy.
        remote.put("c.sst", Bytes::from_static(b"short")).unwrap();
        assert!(m.fetch("c.sst", 10, &|| false).is_err());
        assert!(!m.is_local("c.sst"));
    }
}
